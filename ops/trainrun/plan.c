/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainrun's parallel plans (see trainrun_internal.h and the README's
 * trainrun section): a plan file given with --plan, or one planned at
 * start from --parallelism, the cluster shape (--mesh, default from
 * WORLD_SIZE and LOCAL_WORLD_SIZE) and the cost model's rates. Every rank
 * plans the same graph with the same request, so the plans agree; main.c
 * checks that they do (a hash exchange) before the first step. A plan a
 * rank cannot run (made for another world, cluster or graph, or a file
 * that does not decode) stops it at start with exit code 2 and the cause.
 */
#include "ops/trainrun/trainrun_internal.h"

#include "lib/base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool tr_plan_wanted(const tr_plan_args *a) {
  return a->plan_file || a->parallelism || a->write_plan;
}

static int usage(const char *opt, const char *v, const char *why) {
  fprintf(stderr, "trainrun: %s: %s, got \"%s\"\n", opt, why, v ? v : "");
  return TY_EINVAL;
}

/* NODESxDEVICES (ops/plan's parser: the same words as trainctl plan's). */
static int parse_mesh(const char *v, int *nodes, int *per) {
  char err[TY_ERR_LEN];
  int rc = ty_plan_parse_mesh("--mesh", v, nodes, per, err, sizeof err);
  if (rc != 0) fprintf(stderr, "trainrun: %s\n", err);
  return rc;
}

static int env_int(const char *name, int dflt) {
  const char *s = getenv(name);
  return s && *s ? atoi(s) : dflt;
}

/* The physical cluster: --mesh, else WORLD_SIZE / LOCAL_WORLD_SIZE. */
static int cluster_shape(const tr_plan_args *a, uint32_t world, int *nodes, int *per) {
  if (a->mesh) {
    if (parse_mesh(a->mesh, nodes, per) != 0) return TY_EINVAL;
    if (!a->write_plan && (uint64_t)*nodes * (uint64_t)*per != world)
      return fprintf(stderr, "trainrun: --mesh %s holds %d devices, but WORLD_SIZE is %u\n",
                     a->mesh, *nodes * *per, world),
             TY_EINVAL;
    return 0;
  }
  int local = env_int("LOCAL_WORLD_SIZE", 0);
  *per = local > 0 && world % (uint32_t)local == 0 ? local : (int)world;
  *nodes = (int)world / *per;
  return 0;
}

static int parse_mode(const char *v, ty_plan_mode *out) {
  static const char *const names[] = {"auto", "data", "tensor", "grid"};
  for (int i = 0; i < 4; i++)
    if (v && strcmp(v, names[i]) == 0) {
      *out = (ty_plan_mode)i;
      return 0;
    }
  return usage("--parallelism", v, "expected auto, data, tensor or grid");
}

/* The cost model's rates; device_flops 0 means "measure the CPU". */
static int rates(const tr_plan_args *a, ty_plan_cluster *c) {
  const struct {
    const char *key, *value;
  } opts[] = {{"device-flops", a->device_flops}, {"device-mem", a->device_mem},
              {"intra-gbps", a->intra_gbps},     {"inter-gbps", a->inter_gbps},
              {"latency-us", a->latency_us},     {"inter-latency-us", a->inter_latency_us},
              {"launch-us", a->launch_us}};
  c->device_flops = 0;
  char what[32], err[TY_ERR_LEN];
  for (size_t i = 0; i < TY_ARRAY_LEN(opts); i++) {
    if (!opts[i].value) continue;
    snprintf(what, sizeof what, "--%s", opts[i].key);
    if (ty_plan_cluster_set(c, opts[i].key, what, opts[i].value, err, sizeof err) != 0)
      return fprintf(stderr, "trainrun: %s\n", err), TY_EINVAL;
  }
  return 0;
}

/* The --plan file, a regular one: a FIFO or a directory is refused at
 * once, never waited on. */
static int read_file(const char *path, ty_buf *out) {
  const char *why;
  int rc = ty_read_regular(path, out, &why);
  if (rc == TY_EINVAL)
    fprintf(stderr, "trainrun: --plan %s: %s (a plan file is trainrun --write-plan's)\n", path,
            why);
  else if (rc != 0)
    fprintf(stderr, "trainrun: --plan %s: %s\n", path,
            rc == TY_ENOMEM ? "cannot hold it in memory" : strerror(errno));
  return rc;
}

/* A plan file: decoded, and made for this world and cluster. */
static int load_plan(const tr_plan_args *a, uint32_t world, ty_plan **out) {
  ty_buf b;
  ty_buf_init(&b);
  char err[TY_ERR_LEN] = "";
  int rc = read_file(a->plan_file, &b);
  if (rc == 0 && (rc = ty_plan_decode(b.data, b.len, out, err, sizeof err)) != 0)
    fprintf(stderr, "trainrun: --plan %s: %s\n", a->plan_file, err);
  ty_buf_close(&b);
  if (rc != 0) return rc;
  const ty_plan *p = *out;
  int nodes, per, local = env_int("LOCAL_WORLD_SIZE", 0);
  if ((uint32_t)p->devices != world)
    rc = fprintf(stderr,
                 "trainrun: --plan %s: made for %d devices (mesh %dx%d), but WORLD_SIZE is %u\n",
                 a->plan_file, p->devices, p->mesh[0], p->mesh[1], world);
  else if (a->mesh && parse_mesh(a->mesh, &nodes, &per) != 0)
    rc = TY_EINVAL; /* parse_mesh said why */
  else if (a->mesh && (nodes != p->nodes || per != p->devices_per_node))
    rc = fprintf(stderr,
                 "trainrun: --plan %s: made for a cluster of %d x %d devices, but --mesh is %s\n",
                 a->plan_file, p->nodes, p->devices_per_node, a->mesh);
  else if (local > 0 && local != p->devices_per_node)
    rc = fprintf(stderr,
                 "trainrun: --plan %s: mesh mismatch: made for %d devices per node, but "
                 "LOCAL_WORLD_SIZE is %d\n",
                 a->plan_file, p->devices_per_node, local);
  if (rc != 0) {
    ty_plan_destroy(*out);
    *out = NULL;
    return TY_EINVAL;
  }
  return 0;
}

int tr_plan_resolve(const tr_plan_args *a, uint32_t world, ty_plan **out_plan,
                    ty_plan_request *out_req) {
  *out_plan = NULL;
  ty_plan_request_init(out_req);
  bool rates_given = a->device_flops || a->device_mem || a->intra_gbps || a->inter_gbps ||
                     a->latency_us || a->inter_latency_us || a->launch_us;
  if (a->plan_file && (a->parallelism || a->write_plan || rates_given)) {
    fprintf(
        stderr,
        "trainrun: --plan runs a plan as it is: --parallelism, --write-plan and the cost model's "
        "rates (--device-flops ...) plan one instead\n");
    return TY_EINVAL;
  }
  if (a->plan_file) return load_plan(a, world, out_plan);
  int rc = parse_mode(a->parallelism ? a->parallelism : "auto", &out_req->mode);
  if (rc == 0)
    rc = cluster_shape(a, world, &out_req->cluster.nodes, &out_req->cluster.devices_per_node);
  if (rc == 0) rc = rates(a, &out_req->cluster);
  return rc;
}

int tr_plan_cpu_flops(int threads, double *out_flops) {
  char dir[1024], path[1100], err[TY_ERR_LEN] = "";
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  const char *cache = NULL;
  if (xdg && *xdg)
    snprintf(dir, sizeof dir, "%s/trainyard", xdg);
  else if (home && *home)
    snprintf(dir, sizeof dir, "%s/.cache/trainyard", home);
  else
    dir[0] = 0;
  if (dir[0]) {
    char parent[1024];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = 0;
    mkdir(parent, 0755);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/cpu-flops", dir);
    cache = path;
  }
  int rc = ty_plan_cpu_flops(cache, threads, err, sizeof err, out_flops);
  if (rc != 0) fprintf(stderr, "trainrun: measuring the CPU for the cost model: %s\n", err);
  return rc;
}

int tr_plan_write(const tr_plan_args *a, const ty_graph *model, const ty_train_config *config) {
  ty_plan *p = NULL;
  ty_plan_request req;
  int world = env_int("WORLD_SIZE", 1), rc = tr_plan_resolve(a, (uint32_t)world, &p, &req);
  char err[TY_ERR_LEN] = "";
  if (rc == 0 && req.cluster.device_flops == 0)
    rc = tr_plan_cpu_flops(a->threads, &req.cluster.device_flops);
  if (rc != 0) return 2;
  if ((rc = ty_train_make_plan(model, config, true, &req, &p, err, sizeof err)) != 0) {
    fprintf(stderr, "trainrun: %s\n", err);
    return 2;
  }
  ty_buf b, text;
  ty_buf_init(&b);
  ty_buf_init(&text);
  rc = ty_plan_encode(p, &b);
  FILE *f = rc == 0 ? fopen(a->write_plan, "wb") : NULL;
  if (!f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0) {
    fprintf(stderr, "trainrun: --write-plan %s: %s\n", a->write_plan, strerror(errno));
    rc = TY_EIO;
  }
  if (rc == 0 && ty_plan_to_text(p, &text) == 0) {
    const ty_plan_cluster *cl = &req.cluster;
    printf("cost model: %d x %d devices of %.3g FLOP/s and %.1f GiB; %.3g GB/s and %.3g us per "
           "ring step inside a "
           "node, %.3g GB/s and %.3g us across; %.3g us per collective\n",
           cl->nodes, cl->devices_per_node, cl->device_flops,
           (double)cl->device_mem_bytes / 1073741824.0, cl->intra_bw / 1e9,
           cl->intra_latency_s * 1e6, cl->inter_bw / 1e9, cl->inter_latency_s * 1e6,
           cl->launch_s * 1e6);
    fwrite(text.data, 1, text.len, stdout);
    printf("plan: written to %s (%zu bytes, format version %u)\n", a->write_plan, b.len,
           (unsigned)b.data[4]); /* the encoder writes the oldest version that holds it */
  }
  ty_buf_close(&b);
  ty_buf_close(&text);
  ty_plan_destroy(p);
  return rc == 0 ? 0 : 1;
}

void tr_plan_print(const tr_plan_args *a, const ty_train *t, uint32_t rank) {
  const ty_plan *p = ty_train_plan(t);
  if (!p) return;
  if (p->n_stages > 0) {
    int per = p->devices / p->n_stages, s = (int)rank / per;
    printf("plan: %d pipeline stage%s x %d devices on %d x %d devices, %d micro-batches of %lld, "
           "predicted step %.3f ms, bubble %.1f%%; rank %u runs stage %d (layers %d..%d)%s\n",
           p->n_stages, p->n_stages == 1 ? "" : "s", per, p->nodes, p->devices_per_node,
           p->micro_batches, (long long)p->batch, p->step_s * 1e3, p->bubble * 100, rank, s,
           p->stages[s].first_layer, p->stages[s].first_layer + p->stages[s].n_layers - 1,
           p->stages[s].recompute ? ", recomputing activations" : "");
    if (ty_plan_memory_fallback(p)) printf("plan: %s\n", ty_plan_memory_fallback(p));
    fflush(stdout);
    return;
  }
  int c[TY_PLAN_AXES];
  ty_plan_coords(p, (int)rank, c);
  size_t rerouted = 0, points = ty_shard_n_points(ty_train_shard(t), &rerouted);
  char mem[32];
  snprintf(mem, sizeof mem, "%.1f MiB", (double)p->memory_bytes / 1048576.0);
  const char *why = p->n_alternatives ? p->alternatives[p->n_alternatives - 1].why : "";
  printf("plan: mesh %dx%d on %d x %d devices (%s), predicted step %.3f ms, %s per device; rank %u "
         "at (%d,%d): "
         "%zu reshard points (%zu rerouted), %zu collectives in the plan\n",
         p->mesh[0], p->mesh[1], p->nodes, p->devices_per_node, why, p->step_s * 1e3, mem, rank,
         c[0], c[1], points, rerouted, p->n_collectives);
  if (a->print_plan && rank == 0) {
    ty_buf b;
    ty_buf_init(&b);
    if (ty_plan_to_text(p, &b) == 0) fwrite(b.data, 1, b.len, stdout);
    ty_buf_close(&b);
  }
  fflush(stdout);
}
