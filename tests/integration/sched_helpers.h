/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers the scheduler integration tests share (test_scheduler.c and
 * test_sched_placement.c, one test binary): a cluster whose controller
 * reads a config file, and command jobs submitted over the RPC.
 */
#ifndef TY_TESTS_INTEGRATION_SCHED_HELPERS_H
#define TY_TESTS_INTEGRATION_SCHED_HELPERS_H

#include "tests/integration/harness.h"

#include <stdbool.h>
#include <stdint.h>

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x

/* A cluster of `workers` workers of `cpus` CPUs whose controller preempts
 * at once with a short grace. */
void start(it_cluster *c, size_t workers, int cpus);

typedef struct job_opts {
  const char *queue;
  uint32_t cpus, time_limit_s, warn_signal, warn_before_s;
  int32_t priority; /* sbatch --priority (--nice=N: -N) */
  bool no_requeue;  /* sbatch --no-requeue */
} job_opts;
/* Submits `/bin/sh -c script` as user "tester" with o's options; the id. */
uint64_t submit(ty_rpc_client *cl, const char *script, const job_opts *o);
/* Whether the file at path holds text (in its first 255 bytes). */
bool file_has(const char *path, const char *text);
/* id in decimal into buf (24 bytes), which it returns. */
char *id_str(uint64_t id, char *buf);

#endif
