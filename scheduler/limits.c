/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A queue's GPU limits for one pending job: max_gpus for the queue and
 * max_gpus_per_user for the job's user, against what runs and what this
 * pass placed. held_back (scheduler.c) checks the GPUs a job asks for
 * before its nodes are searched; an exclusive job is charged every GPU of
 * the whole nodes it gets, so those are checked again once they are found.
 */
#include <stdio.h>

#include "lib/base/base.h"
#include "scheduler/sched_internal.h"

/* The account (queue, user) holds its running jobs' GPUs and what this pass
 * placed: O(1) per job instead of a walk over every running job. */
const char *ty__gpu_limit(ty__pass *p, size_t ji, uint64_t gpus, const char *how, char *buf,
                          size_t len) {
  const ty_sched_job *j = &p->in->jobs[ji];
  int q = p->qi[ji];
  if (q < 0) return NULL;
  const ty_sched_queue *qu = &p->in->queues[q];
  if (qu->max_gpus && p->qs[q].gpus + gpus > qu->max_gpus) {
    snprintf(buf, len, "QueueLimit: queue %s uses %llu GPUs, +%llu%s exceeds max_gpus %u", qu->name,
             (unsigned long long)p->qs[q].gpus, (unsigned long long)gpus, how, qu->max_gpus);
    return buf;
  }
  if (!qu->max_gpus_per_user || !gpus) return NULL;
  uint64_t mine = j->user ? ty__fs_acct_gpus(p->fs, ty__fs_job_acct(p->fs, ji)) : 0;
  if (mine + gpus <= qu->max_gpus_per_user) return NULL;
  snprintf(buf, len,
           "QueueLimit: user %s uses %llu GPUs in queue %s, +%llu%s exceeds max_gpus_per_user %u",
           j->user, (unsigned long long)mine, qu->name, (unsigned long long)gpus, how,
           qu->max_gpus_per_user);
  return buf;
}

const char *ty__whole_over_limit(ty__pass *p, size_t ji, uint32_t want, char *buf, size_t len) {
  const ty_sched_job *j = &p->in->jobs[ji];
  uint64_t gpus = 0;
  for (uint32_t s = 0; s < want; s++)
    gpus += p->in->nodes[p->picked[s]].gpus_total;
  if (gpus <= (uint64_t)ty__job_want(j) * j->gpus_per_node) return NULL;
  return ty__gpu_limit(p, ji, gpus, " (its whole nodes)", buf, len);
}
