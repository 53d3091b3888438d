/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers the job integration tests share (jobs_helpers.h): test_jobs.c
 * (batch scripts, submit --wait, cancel, hold, moves) and
 * test_jobs_arrays.c (arrays and dependencies).
 */
#include "tests/integration/jobs_helpers.h"

#include <criterion/criterion.h>
#include <stdio.h>

int final_state(ty_rpc_client *cl, uint64_t id, char *reason, size_t cap) {
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 60000);
  cr_assert(r, "job %llu did not end", (unsigned long long)id);
  int s = (int)r->job->state;
  if (reason) snprintf(reason, cap, "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  return s;
}
