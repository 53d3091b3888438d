/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Search time of the planner on a GPT-like decoder of at least 1,000 ops
 * (tests/unit/ops/plan/models.c builds it) for 8, 64 and 512 devices of
 * 8-GPU nodes, H100-like: 67 TFLOP/s FP32, 80 GiB, NVLink inside a node,
 * InfiniBand across (BENCH_MEM_GIB overrides the 80 GiB). Prints one row
 * per device count: the search's wall and CPU time (the best of --repeat
 * runs; the search is single-threaded, so CPU time is what it costs on a
 * busy machine) and the chosen plan against pure data parallelism. Results
 * and the command are in bench/RESULTS.md.
 *
 * Usage: bench_plan [--layers N] [--hidden H] [--seq S] [--batch-per-device B]
 *                   [--repeat R] [--devices 8,64,512]
 */
#include "ops/plan/plan.h"
#include "tests/unit/ops/plan/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_ms(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct opts {
  int layers, repeat;
  int64_t hidden, seq, batch_per_device;
  int devices[8], n_devices;
} opts;

static int parse(int argc, char **argv, opts *o) {
  *o = (opts){.layers = 32,
              .repeat = 3,
              .hidden = 1024,
              .seq = 1024,
              .batch_per_device = 1,
              .devices = {8, 64, 512},
              .n_devices = 3};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return fprintf(stderr, "bench_plan: %s needs a value\n", a), 2;
    if (strcmp(a, "--layers") == 0)
      o->layers = atoi(v);
    else if (strcmp(a, "--hidden") == 0)
      o->hidden = atoll(v);
    else if (strcmp(a, "--seq") == 0)
      o->seq = atoll(v);
    else if (strcmp(a, "--batch-per-device") == 0)
      o->batch_per_device = atoll(v);
    else if (strcmp(a, "--repeat") == 0)
      o->repeat = atoi(v);
    else if (strcmp(a, "--devices") == 0) {
      o->n_devices = 0;
      for (char *s = argv[i + 1]; *s && o->n_devices < 8; s += *s == ',')
        o->devices[o->n_devices++] = (int)strtol(s, &s, 10);
    } else {
      return fprintf(stderr, "bench_plan: unknown option %s\n", a), 2;
    }
    i++;
  }
  if (o->layers < 1 || o->hidden < 16 || o->seq < 1 || o->batch_per_device < 1 || o->repeat < 1)
    return fprintf(stderr, "bench_plan: every size must be positive\n"), 2;
  return 0;
}

int main(int argc, char **argv) {
  opts o;
  int rc = parse(argc, argv, &o);
  if (rc) return rc;
  ty_graph *g = model_transformer(o.layers, o.seq, o.hidden, o.hidden / 64, 4 * o.hidden, 1);
  if (!g) return 1;
  printf("GPT-like decoder: %d layers, hidden %lld, seq %lld, %zu ops\n", o.layers,
         (long long)o.hidden, (long long)o.seq, ty_graph_n_nodes(g));
  printf("%8s %8s %10s %10s %6s %14s %14s %10s %s\n", "devices", "mesh", "search_ms", "cpu_ms",
         "exact", "chosen_step_ms", "dp_step_ms", "dp/chosen", "chosen");
  for (int d = 0; d < o.n_devices; d++) {
    ty_plan_request r;
    ty_plan_request_init(&r);
    int n = o.devices[d];
    r.cluster = (ty_plan_cluster){
        .nodes = n >= 8 ? n / 8 : 1,
        .devices_per_node = n >= 8 ? 8 : n,
        .device_flops = 67e12,
        .device_mem_bytes =
            (uint64_t)(getenv("BENCH_MEM_GIB") ? atof(getenv("BENCH_MEM_GIB")) : 80) * (1ull << 30),
        .intra_bw = 300e9,
        .inter_bw = 25e9,
        .intra_latency_s = 3e-6,
        .inter_latency_s = 8e-6,
        .launch_s = 10e-6};
    r.batch = o.batch_per_device * n;
    double best = 1e300, cpu = 1e300;
    ty_plan *p = NULL;
    for (int k = 0; k < o.repeat; k++) {
      char err[TY_ERR_LEN];
      ty_plan_destroy(p);
      double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_THREAD_CPUTIME_ID);
      if ((rc = ty_plan_search(g, &r, err, sizeof err, &p)) != 0) {
        fprintf(stderr, "bench_plan: %d devices: %s\n", n, err);
        return 1;
      }
      double t = clock_ms(CLOCK_MONOTONIC) - t0, c = clock_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
      best = t < best ? t : best;
      cpu = c < cpu ? c : cpu;
    }
    const ty_plan_alternative *dp = &p->alternatives[0],
                              *ch = &p->alternatives[p->n_alternatives - 1];
    char mesh[16], ratio[16] = "-", dps[32] = "-";
    snprintf(mesh, sizeof mesh, "%dx%d", p->mesh[0], p->mesh[1]);
    if (dp->applicable && dp->fits) {
      snprintf(ratio, sizeof ratio, "%.2f", dp->step_s / p->step_s);
      snprintf(dps, sizeof dps, "%.3f", dp->step_s * 1e3);
    } else if (dp->applicable) {
      snprintf(dps, sizeof dps, "(no fit)");
    }
    printf("%8d %8s %10.1f %10.1f %6s %14.3f %14s %10s %s\n", n, mesh, best, cpu,
           p->exact ? "yes" : "no", p->step_s * 1e3, dps, ratio, ch->why);
    ty_plan_destroy(p);
  }
  ty_graph_destroy(g);
  return 0;
}
