/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainyard-graphcheck: the child process in which traind checks a graph
 * job, so that no model, however broken or hostile, runs code inside the
 * controller (issue 13: a short raw_data initializer once crashed traind
 * from its event loop). traind starts one per submit (daemon/check.c),
 * with the submitting user's uid where it can vouch for it, and keeps
 * serving whatever happens here.
 *
 * It first limits itself (before reading a byte of input): CPU time
 * (RLIMIT_CPU: SIGXCPU at --cpu-s, SIGKILL a second later), address space
 * (RLIMIT_AS at --mem; not under AddressSanitizer, whose shadow memory
 * needs terabytes of it) and no core files. Then, on its pipes (the
 * protocol of proto/trainyard.proto's GraphCheckRequest):
 *
 *   stdin   one framed GraphCheckRequest (4-byte big-endian length, message)
 *   stdout  a framed GraphCheckResponse: the check's outcome and, when a
 *           plan is wanted (asked for, or wants_plan: a data job with
 *           pipeline stages runs one), its cache key (graph fingerprint,
 *           mesh, batch, rates: ops/plan's ty_plan_request_key)
 *   stdin   one byte: 'C' (traind has that plan: exit) or 'P' (plan)
 *   stdout  a second GraphCheckResponse carrying the plan file
 *
 * The check: the ONNX model is imported with shape inference (from the
 * path, read with this process's rights, or from the bytes), the
 * TrainConfig decoded and validated, its feeds and loss checked against
 * the model (ops/train, without the data: the controller has none), and
 * for parallelism data without pipeline stages the global batch against
 * the rank count. A plan is
 * searched for the mesh and rates traind sends; a device rate of 0 means
 * "measure this CPU", and the rate used goes back so traind measures once.
 *
 * Exit status 0 whenever an answer was written (the answer says whether
 * the job passed); 2 for a bad command line, 3 for input that is not a
 * request. A signal or another exit code means it crashed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "ops/plan/plan.h"
#include "ops/train/train.h"
#include "proto/convert.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

typedef struct limits {
  uint32_t cpu_s;
  uint64_t mem_bytes, max_input;
} limits;

static int parse_args(int argc, char **argv, limits *l) {
  *l = (limits){.cpu_s = 60, .mem_bytes = 4ull << 30, .max_input = 64ull << 20};
  int bad = 0;
  for (int i = 1; i < argc && !bad; i += 2) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v)
      bad = 1;
    else if (!strcmp(argv[i], "--cpu-s"))
      bad = ty_parse_duration(v, &l->cpu_s) || !l->cpu_s;
    else if (!strcmp(argv[i], "--mem"))
      bad = ty_parse_size(v, &l->mem_bytes) || !l->mem_bytes;
    else if (!strcmp(argv[i], "--max-input"))
      bad = ty_parse_size(v, &l->max_input) || !l->max_input;
    else
      bad = 1;
  }
  if (bad)
    fprintf(stderr,
            "usage: trainyard-graphcheck [--cpu-s SECONDS] [--mem BYTES] [--max-input BYTES]\n"
            "(started by traind: a GraphCheckRequest on stdin, answers on stdout)\n");
  return bad ? 2 : 0;
}

static int limit(int what, rlim_t soft, rlim_t hard) {
  struct rlimit r = {soft, hard};
  return setrlimit(what, &r) == 0 ? 0 : -errno;
}

static int apply_limits(const limits *l) {
  int rc = limit(RLIMIT_CPU, (rlim_t)l->cpu_s, (rlim_t)l->cpu_s + 1);
  if (rc == 0) rc = limit(RLIMIT_CORE, 0, 0);
#ifndef UNDER_ASAN
  if (rc == 0) rc = limit(RLIMIT_AS, (rlim_t)l->mem_bytes, (rlim_t)l->mem_bytes);
#endif
  if (rc != 0) fprintf(stderr, "trainyard-graphcheck: setrlimit: %s\n", strerror(-rc));
  return rc;
}

/* ---- framing on the pipes ----------------------------------------------------------- */

static int read_exact(int fd, uint8_t *p, size_t n) {
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return TY_EPROTO;
    p += r, n -= (size_t)r;
  }
  return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return TY_EIO;
    p += w, n -= (size_t)w;
  }
  return 0;
}

/* One frame from stdin (malloc'd into *out). */
static int read_frame(size_t max, uint8_t **out, size_t *out_len) {
  uint8_t h[4];
  int rc = read_exact(0, h, 4);
  size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
  if (rc != 0 || n > max) return TY_EPROTO;
  *out = malloc(n ? n : 1);
  if (!*out) return TY_ENOMEM;
  *out_len = n;
  return read_exact(0, *out, n);
}

static int answer(const ty_graph_check_answer *a) {
  ty_buf b;
  ty_buf_init(&b);
  uint8_t h[4];
  int rc = ty_proto_pack_check_answer(a, &b);
  ty_frame_put_header(h, (uint32_t)b.len);
  if (rc == 0) rc = write_all(1, h, 4);
  if (rc == 0) rc = write_all(1, b.data, b.len);
  ty_buf_close(&b);
  return rc;
}

/* ---- the check ---------------------------------------------------------------------- */

typedef struct checked {
  ty_train_job job; /* the model, its config, the forward + loss graph */
  ty_plan_request req;
  uint64_t reserve; /* the device memory is the job's per rank less this */
} checked;

/* Bytes as the planner writes them ("256.0 MiB"). */
static const char *mib(uint64_t b, char out[32]) {
  snprintf(out, 32, "%.1f MiB", (double)b / (1 << 20));
  return out;
}

/* "job.graph[.field]: inner" into a->message, status rc. */
static int refuse(ty_graph_check_answer *a, int rc, const char *field, const char *inner) {
  char msg[TY_ERR_LEN];
  ty_errf(msg, sizeof msg, rc, "job.graph%s%s: %s", field[0] ? "." : "", field,
          inner[0] ? inner : ty_strerror(rc));
  a->status = rc;
  a->message = strdup(msg);
  return rc;
}

static int load(const ty_graph_check *in, checked *c, ty_graph_check_answer *a) {
  const ty_job_spec *s = &in->job;
  char err[TY_ERR_LEN] = "";
  const char *what = "";
  int rc = ty_train_job_load(s->model_path, s->model_bytes, s->model_len, s->train_config,
                             s->train_config_len, &c->job, &what, err, sizeof err);
  if (rc != 0) return refuse(a, rc, what, err);
  uint32_t world = in->cluster.nodes * in->cluster.devices_per_node;
  /* A data job runs without a plan, each rank training an equal share of
   * every batch (PlanJob's plan for it only predicts; a plan splits a
   * batch the ranks do not divide unevenly, so auto is what works), but
   * with pipeline stages it runs the planner's data plan with stages
   * (wants_plan below). */
  bool data_job = !in->want_plan || in->mode == TY_PARALLELISM_DATA;
  if (!data_job ||
      (rc = ty_train_check_data_job(&c->job.config, world, &what, err, sizeof err)) == 0)
    return 0;
  char field[48];
  snprintf(field, sizeof field, "train_config.%s", what);
  return refuse(a, rc, field, err);
}

/* The job's memory per rank less what trainrun itself takes there (its
 * libraries, MPI and BLAS buffers: a rank of a CUDA-enabled build holds
 * about 200 MiB before it loads a model): the cgroup limit of --mem covers
 * the whole process, so planning for all of it let a plan "fit" whose
 * ranks the kernel killed at start. A job that leaves nothing for the
 * model is refused with the least memory that leaves some. */
static int device_mem(const ty_graph_check *in, checked *c, char *err, size_t len) {
  const ty_check_cluster *k = &in->cluster;
  if (k->rank_mem_bytes == 0) {
    c->req.cluster.device_mem_bytes = 16ull << 30; /* ops/plan's default */
    return 0;
  }
  char have[32], keep[32];
  mib(k->rank_mem_bytes, have);
  mib(k->rank_reserve_bytes, keep);
  if (k->rank_mem_bytes <= k->rank_reserve_bytes)
    return ty_errf(err, len, TY_EINVAL,
                   "cannot plan it: job.resources.mem_per_node gives each rank %s (%u per "
                   "node), and a trainrun rank uses about %s of that before its model (traind "
                   "--plan-rank-reserve): ask for more than %s per rank (--mem)",
                   have, k->devices_per_node, keep, keep);
  c->req.cluster.device_mem_bytes = k->rank_mem_bytes - k->rank_reserve_bytes;
  c->reserve = k->rank_reserve_bytes;
  return 0;
}

/* The request traind asked for, the config's batch, loss and optimizer,
 * and the CPU's rate when traind has none yet. */
static int request(const ty_graph_check *in, checked *c, ty_graph_check_answer *a) {
  const ty_check_cluster *k = &in->cluster;
  ty_plan_request *r = &c->req;
  ty_plan_request_init(r);
  r->mode = (ty_plan_mode)in->mode;
  r->cluster = (ty_plan_cluster){.nodes = (int)k->nodes,
                                 .devices_per_node = (int)k->devices_per_node,
                                 .device_flops = k->device_flops,
                                 .device_mem_bytes = k->device_mem_bytes,
                                 .intra_bw = k->intra_bw,
                                 .inter_bw = k->inter_bw,
                                 .intra_latency_s = k->intra_latency_s,
                                 .inter_latency_s = k->inter_latency_s,
                                 .launch_s = k->launch_s};
  if (ty_train_plan_request(c->job.graph, &c->job.config, r) != 0)
    return refuse(a, TY_ENOMEM, "", "cannot list the trained parameters: out of memory");
  char err[TY_ERR_LEN] = "";
  if (r->cluster.device_mem_bytes == 0 && device_mem(in, c, err, sizeof err) != 0)
    return refuse(a, TY_EINVAL, "", err);
  if (r->cluster.device_flops <= 0 &&
      ty_plan_cpu_flops(NULL, (int)k->threads, err, sizeof err, &r->cluster.device_flops) != 0)
    return refuse(a, TY_EINTERNAL, "", err);
  a->device_flops = r->cluster.device_flops;
  a->cache_key = ty_plan_request_key(r, ty_plan_fingerprint(c->job.graph));
  return 0;
}

static int plan(checked *c, ty_graph_check_answer *a) {
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "", why[TY_ERR_LEN];
  int rc = ty_plan_search(c->job.graph, &c->req, err, sizeof err, &p);
  if (rc != 0) {
    ty_train_plan_refusal(&c->req, rc, err, why, sizeof why);
    /* Where the budget is named, say where it came from: the planner's
     * hints after it may then be cut at the message's length, not this. */
    const char *at = strstr(why, "cluster.device_mem_bytes: ");
    at = at ? strstr(at, " per device") : NULL;
    if (c->reserve && at) {
      char out[TY_ERR_LEN], keep[32];
      size_t head = (size_t)(at - why) + strlen(" per device");
      snprintf(out, sizeof out,
               "%.*s (the job's --mem per rank less the %s a trainrun rank uses before its "
               "model, traind --plan-rank-reserve)%s",
               (int)head, why, mib(c->reserve, keep), why + head);
      return refuse(a, rc, "", out);
    }
    return refuse(a, rc, "", why);
  }
  ty_buf b;
  ty_buf_init(&b);
  rc = ty_plan_encode(p, &b);
  ty_plan_destroy(p);
  if (rc != 0) {
    ty_buf_close(&b);
    return refuse(a, rc, "", "cannot encode the plan");
  }
  a->plan = b.data;
  a->plan_len = b.len;
  return 0;
}

static int run(const ty_graph_check *in) {
  checked c = {0};
  ty_graph_check_answer a = {0};
  a.stage = 1;
  int rc = load(in, &c, &a);
  /* A data job with pipeline stages runs a plan though submit asked for
   * none: the answer says so, and traind goes on as if it had asked. */
  bool planned = in->want_plan;
  if (rc == 0 && !planned && in->mode == TY_PARALLELISM_DATA &&
      ty_train_data_job_planned(&c.job.config))
    planned = a.wants_plan = true;
  if (rc == 0 && planned) rc = request(in, &c, &a);
  int io = answer(&a);
  uint8_t go = 0;
  if (io == 0 && rc == 0 && planned && read_exact(0, &go, 1) == 0 && go == 'P') {
    ty_graph_check_answer_close(&a);
    a.stage = 2;
    plan(&c, &a);
    io = answer(&a);
  }
  ty_graph_check_answer_close(&a);
  ty_train_plan_request_close(&c.req);
  ty_train_job_close(&c.job);
  return io == 0 ? 0 : 3;
}

int main(int argc, char **argv) {
  limits l;
  int rc = parse_args(argc, argv, &l);
  if (rc != 0) return rc;
  if (apply_limits(&l) != 0) return 2;
  ty_log_init("trainyard-graphcheck", TY_LOG_WARN);
  uint8_t *bytes = NULL;
  size_t n = 0;
  ty_graph_check in;
  if (read_frame((size_t)l.max_input, &bytes, &n) != 0 ||
      ty_proto_unpack_check(bytes, n, &in) != 0) {
    fprintf(stderr, "trainyard-graphcheck: stdin does not hold a GraphCheckRequest\n");
    free(bytes);
    return 3;
  }
  free(bytes);
  rc = run(&in);
  ty_graph_check_close(&in);
  return rc;
}
