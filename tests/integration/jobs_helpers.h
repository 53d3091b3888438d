/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers the job integration tests share (test_jobs.c and
 * test_jobs_arrays.c, one test binary): a job's final state.
 */
#ifndef TY_TESTS_INTEGRATION_JOBS_HELPERS_H
#define TY_TESTS_INTEGRATION_JOBS_HELPERS_H

#include "tests/integration/harness.h"

#include <stddef.h>
#include <stdint.h>

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x

/* Job id's state once it ended (failing the test after 60 s), its reason
 * into reason (cap bytes) when not NULL. */
int final_state(ty_rpc_client *cl, uint64_t id, char *reason, size_t cap);

#endif
