/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the collective benchmarks (bench/dp/allreduce_bench.c,
 * bench/plan/link_bench.c) share: a monotonic clock in seconds and the
 * rank's numbers from the environment a run script sets (RANK,
 * WORLD_SIZE, TRAINYARD_JOB_ID).
 */
#ifndef TY_BENCH_RANK_ENV_H
#define TY_BENCH_RANK_ENV_H

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

#endif
