/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The planner's pipeline stages, predicted (issue 18; what ranks measure
 * running them is bench_pipeline_run.c's):
 *
 *   1. a 4-stage MLP on 4 devices (2 nodes x 2) for each micro-batch count:
 *      the predicted step, throughput and bubble beside the ideal 1F1B
 *      bubble (S - 1) / (M + S - 1) of equal stages;
 *   2. the search time of pipeline_stages auto against no pipeline on the
 *      GPT-like decoder bench_plan uses (1,000+ ops), and what it chose;
 *   3. (printed before 2) stage 0's peak memory with and without activation
 *      recomputation, and its step-time cost, under a budget that forces it.
 *
 * Results and the command are in bench/RESULTS.md.
 *
 * Usage: bench_pipeline [--layers N] [--hidden H] [--batch B] [--gpt-layers N] [--devices D]
 */
#include "bench/plan/pipeline_mlp.h"
#include "ops/plan/plan.h"
#include "tests/unit/ops/plan/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct opts {
  bench_mlp mlp;
  int gpt_layers, devices;
} opts;

static int parse(int argc, char **argv, opts *o) {
  *o = (opts){.mlp = {.layers = 8, .hidden = 1024, .batch = 64}, .gpt_layers = 32, .devices = 64};
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return fprintf(stderr, "bench_pipeline: %s needs a value\n", a), 2;
    if (bench_mlp_option(&o->mlp, a, v))
      continue;
    else if (strcmp(a, "--gpt-layers") == 0)
      o->gpt_layers = atoi(v);
    else if (strcmp(a, "--devices") == 0)
      o->devices = atoi(v);
    else
      return fprintf(stderr, "bench_pipeline: unknown option %s\n", a), 2;
  }
  return o->mlp.layers > 0 && o->mlp.hidden > 0 && o->mlp.batch > 0 && o->devices > 0 ? 0 : 2;
}

static ty_plan *search(const ty_graph *g, const ty_plan_request *r, double *out_cpu_ms) {
  char err[TY_ERR_LEN] = "";
  ty_plan *p = NULL;
  double t0 = cpu_ms();
  int rc = ty_plan_search(g, r, err, sizeof err, &p);
  if (out_cpu_ms) *out_cpu_ms = cpu_ms() - t0;
  if (rc != 0) fprintf(stderr, "bench_pipeline: %s\n", err);
  return p;
}

/* 1. Step, throughput and bubble against the micro-batch count. */
static int micro_batches(const opts *o) {
  ty_graph *g = bench_mlp_build(&o->mlp, false);
  if (!g) return 1;
  ty_plan_request r;
  ty_plan_request_init(&r);
  r.batch = o->mlp.batch;
  bench_mlp_cluster(&r);
  r.pipeline_stages = 4;
  printf("MLP: %d layers, hidden %lld, batch %lld, 4 stages on 2 x 2 devices\n", o->mlp.layers,
         (long long)o->mlp.hidden, (long long)o->mlp.batch);
  printf("%6s %10s %14s %9s %13s %9s %s\n", "micro", "step_ms", "samples_per_s", "bubble",
         "ideal_bubble", "ratio", "stages (layers)");
  for (int m = 1; m <= o->mlp.batch && m <= 64; m *= 2) {
    r.micro_batches = m;
    ty_plan *p = search(g, &r, NULL);
    if (!p) continue;
    double ideal = 3.0 / (m + 3.0);
    printf("%6d %10.3f %14.0f %8.1f%% %12.1f%% %9.2f", m, p->step_s * 1e3,
           (double)o->mlp.batch / p->step_s, 100 * p->bubble, 100 * ideal,
           ideal > 0 ? p->bubble / ideal : 0);
    for (int k = 0; k < p->n_stages; k++)
      printf(" %d", p->stages[k].n_layers);
    printf("\n");
    ty_plan_destroy(p);
  }
  ty_graph_destroy(g);
  return 0;
}

/* 3. Peak memory with and without recomputation: the 4-stage MLP at 8
 * micro-batches with room, then with one byte less than stage 0 needs. */
static int recompute(const opts *o) {
  ty_graph *g = bench_mlp_build(&o->mlp, false);
  if (!g) return 1;
  ty_plan_request r;
  ty_plan_request_init(&r);
  r.batch = o->mlp.batch * 8;
  bench_mlp_cluster(&r);
  r.pipeline_stages = 4;
  r.micro_batches = 8;
  printf("\nMLP as above, batch %lld, 8 micro-batches: stage 0 with and without room\n",
         (long long)r.batch);
  printf("%-12s %10s %12s %16s %10s\n", "budget", "step_ms", "stage0_peak", "without_recompute",
         "recompute");
  ty_plan *p = search(g, &r, NULL);
  for (int pass = 0; p && pass < 2; pass++) {
    char budget[32];
    snprintf(budget, sizeof budget, "%.2f MiB", (double)r.cluster.device_mem_bytes / 1048576);
    const ty_plan_stage *s0 = &p->stages[0];
    printf("%-12s %10.3f %9.2f MiB %13.2f MiB %10s\n", pass ? budget : "16 GiB", p->step_s * 1e3,
           (double)s0->memory_bytes / 1048576, (double)s0->memory_no_recompute_bytes / 1048576,
           s0->recompute ? "yes" : "no");
    r.cluster.device_mem_bytes = s0->memory_bytes - 1;
    ty_plan_destroy(p);
    p = pass ? NULL : search(g, &r, NULL);
  }
  ty_plan_destroy(p);
  ty_graph_destroy(g);
  return 0;
}

/* 2. The search with pipelines against without, on the GPT-like decoder. */
static int gpt(const opts *o) {
  ty_graph *g = model_transformer(o->gpt_layers, 1024, 1024, 16, 4096, 1);
  if (!g) return 1;
  ty_plan_request r;
  ty_plan_request_init(&r);
  r.batch = o->devices;
  r.cluster.nodes = o->devices / 8 ? o->devices / 8 : 1;
  r.cluster.devices_per_node = o->devices < 8 ? o->devices : 8;
  r.cluster.device_flops = 67e12;
  r.cluster.device_mem_bytes = 80ull << 30;
  r.cluster.intra_bw = 300e9;
  r.cluster.inter_bw = 25e9;
  printf("\nGPT-like decoder: %d layers, %zu ops, %d devices\n", o->gpt_layers, ty_graph_n_nodes(g),
         o->devices);
  printf("%-16s %9s %10s %s\n", "pipeline_stages", "cpu_ms", "step_ms", "chosen");
  for (int auto_ = 0; auto_ < 2; auto_++) {
    double ms;
    r.pipeline_stages = auto_ ? 0 : 1;
    ty_plan *p = search(g, &r, &ms);
    if (!p) continue;
    printf("%-16s %9.1f %10.3f %s\n", auto_ ? "auto" : "1", ms, p->step_s * 1e3,
           p->alternatives[p->n_alternatives - 1].why);
    ty_plan_destroy(p);
  }
  ty_graph_destroy(g);
  return 0;
}

int main(int argc, char **argv) {
  opts o;
  if (parse(argc, argv, &o) != 0) {
    fprintf(stderr, "usage: bench_pipeline [--layers N] [--hidden H] [--batch B] "
                    "[--gpt-layers N] [--devices D]\n");
    return 2;
  }
  int rc = micro_batches(&o);
  if (rc == 0) rc = recompute(&o);
  return rc ? rc : gpt(&o);
}
