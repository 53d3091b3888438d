/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the collective benchmarks (bench/dp/allreduce_bench.c,
 * bench/plan/link_bench.c) share: a monotonic clock in seconds, the
 * rank's numbers from the environment a run script sets (RANK,
 * WORLD_SIZE, TRAINYARD_JOB_ID, TRAINYARD_CONTROLLER) and joining the
 * world with them.
 */
#ifndef TY_BENCH_RANK_ENV_H
#define TY_BENCH_RANK_ENV_H

#include "ops/collective/collective.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An unsigned environment variable, 0 when unset. */
static inline unsigned bench_env_u(const char *n) {
  const char *v = getenv(n);
  return v ? (unsigned)strtoul(v, NULL, 10) : 0;
}

/* The world of this rank, or exit 1 naming prog and the cause. */
static inline ty_coll *bench_join(const char *prog) {
  ty_coll_opts o = {.rank = bench_env_u("RANK"),
                    .world_size = bench_env_u("WORLD_SIZE"),
                    .job_id = bench_env_u("TRAINYARD_JOB_ID"),
                    .rendezvous = getenv("TRAINYARD_CONTROLLER"),
                    .timeout_ms = 60000};
  char err[1024];
  ty_coll *c = NULL;
  if (ty_coll_create(&o, &c, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", prog, err);
    exit(1);
  }
  return c;
}

#endif
