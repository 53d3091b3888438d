/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The order in which a pass tries pending jobs (p->order): queue tier,
 * then the multifactor total (priority.c), the job's own priority, submit
 * time and id; by submit time alone in FIFO mode. A merge sort with the
 * comparator inlined, for passes of 100,000 jobs.
 */
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/sched_internal.h"

typedef struct sort_key {
  int32_t tier; /* the queue's: compared first (Slurm's PriorityTier) */
  double total;
  int32_t priority;
  int64_t submit;
  uint64_t id;
  uint32_t ji;
} sort_key;

static inline int key_cmp(const sort_key *x, const sort_key *y) {
  if (x->tier != y->tier) return x->tier > y->tier ? -1 : 1;
  if (x->total != y->total) return x->total > y->total ? -1 : 1;
  if (x->priority != y->priority) return x->priority > y->priority ? -1 : 1;
  if (x->submit != y->submit) return x->submit < y->submit ? -1 : 1;
  if (x->id != y->id) return x->id < y->id ? -1 : 1;
  return 0;
}

static bool key_before(const sort_key *x, const sort_key *y) {
  return key_cmp(x, y) < 0;
}

/* Merge sort of n keys through tmp, with the comparator inlined: qsort's
 * indirect calls were a sixth of a pass with 100,000 pending jobs. The
 * order is total (ids are unique), so the result equals qsort's. */
static void sort_keys(sort_key *a, sort_key *tmp, size_t n) {
  if (n <= 16) {
    for (size_t i = 1; i < n; i++) {
      sort_key k = a[i];
      size_t j = i;
      for (; j > 0 && key_before(&k, &a[j - 1]); j--)
        a[j] = a[j - 1];
      a[j] = k;
    }
    return;
  }
  size_t h = n / 2;
  sort_keys(a, tmp, h);
  sort_keys(a + h, tmp, n - h);
  if (!key_before(&a[h], &a[h - 1])) return; /* already in order */
  memcpy(tmp, a, h * sizeof(*a));
  size_t i = 0, j = h, k = 0;
  while (i < h && j < n)
    a[k++] = key_before(&a[j], &tmp[i]) ? a[j++] : tmp[i++];
  while (i < h)
    a[k++] = tmp[i++];
}

/* Highest queue tier first (strict, as Slurm's PriorityTier: a lower
 * tier's job never ranks above a higher tier's, whatever its weighted
 * factors, so a job never preempts one the next pass would schedule
 * ahead of it), then highest priority, then job priority, then FIFO,
 * then id. FIFO mode (the baseline) orders by submit time alone. */
int ty__pass_order(ty__pass *p, size_t n) {
  size_t mark = ty__arena_mark(&p->arena);
  sort_key *keys = ty__arena_alloc(&p->arena, (n ? 2 * n : 1) * sizeof(*keys));
  if (!keys) return TY_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const ty_sched_job *j = &p->in->jobs[i];
    int q = p->qi[i];
    keys[i] = (sort_key){.tier = p->cfg.fifo || q < 0 ? 0 : p->in->queues[q].tier,
                         .total = p->cfg.fifo ? 0 : p->prio[i].total,
                         .priority = p->cfg.fifo ? 0 : j->priority,
                         .submit = j->submit_time_ms,
                         .id = j->id,
                         .ji = (uint32_t)i};
  }
  sort_keys(keys, keys + n, n);
  for (size_t i = 0; i < n; i++)
    p->order[i] = keys[i].ji;
  ty__arena_release(&p->arena, mark);
  return 0;
}
