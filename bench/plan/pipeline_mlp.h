/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MLP both pipeline benches plan and run (bench_pipeline.c predicts,
 * bench_pipeline_run.c measures): its options, the model and the cluster
 * of four devices its four stages go on, written once so both measure the
 * same thing.
 */
#ifndef TY_BENCH_PLAN_PIPELINE_MLP_H
#define TY_BENCH_PLAN_PIPELINE_MLP_H

#include "ops/graph.h"
#include "ops/plan/plan.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct bench_mlp {
  int layers;
  int64_t hidden, batch;
} bench_mlp;

/* Takes option a with value v when it is --layers, --hidden or --batch:
 * 1 taken, 0 not one of them. */
int bench_mlp_option(bench_mlp *m, const char *a, const char *v);
/* tests/unit/ops/plan's model_mlp of m's layers and width; with weights,
 * seeded values of +-1/sqrt(hidden) (the builder leaves them zero, which
 * plans the same but would train nothing). NULL on failure. */
ty_graph *bench_mlp_build(const bench_mlp *m, bool weights);
/* The benches' cluster: 2 nodes x 2 devices, the request's other fields kept. */
void bench_mlp_cluster(ty_plan_request *r);

#endif
