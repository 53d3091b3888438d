/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by the scheduler's files: the node index (place.c), the
 * priority and fair-share math (priority.c), the pass (scheduler.c),
 * reservations/preemption (reserve.c) and the pass's scratch memory
 * (arena.c).
 *
 * The node index keeps, per switch group, one doubly linked list of nodes per
 * number of free GPUs, with counts. A job asking g GPUs per node looks only at
 * lists g..max (best fit first, which also packs), and a gang of N nodes that
 * cannot fit anywhere is refused from the counts alone, without touching a
 * node: that is what keeps a pass over thousands of blocked jobs on 10,000
 * nodes cheap.
 */
#ifndef TY_SCHEDULER_SCHED_INTERNAL_H
#define TY_SCHEDULER_SCHED_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scheduler/scheduler.h"

/* A job's node filter for one pass (-w/--nodelist, -x/--exclude; filter.c). */
typedef struct ty__filter {
  uint8_t *mark;       /* per node: 0 excluded (never used), 1 may be used, 2 required */
  uint32_t *req;       /* the required nodes' indices, in the job's order */
  uint32_t n_req;      /* distinct required nodes found among the input's */
  uint32_t n_excluded; /* nodes of the input it excludes */
  const char *missing; /* a required name no node of the input has, or NULL */
  size_t ji;           /* the pending job it was built for */
  bool built;
} ty__filter;

typedef struct ty__need {
  uint32_t cpus;
  uint32_t gpus;
  uint64_t mem;
  bool whole;               /* an exclusive job: only a node with everything free fits */
  const ty__filter *filter; /* NULL: any node (every job without -w/-x) */
} ty__need;

typedef struct ty__res {
  uint32_t cpus;
  uint64_t gpus; /* mask */
  uint64_t mem;
} ty__res;

/* What a reserved node may give a job that outlasts the reservation: the
 * spare left once the reserved job has what it needs there. */
typedef struct ty__cap {
  uint32_t node;
  ty__res spare;
  ty__res held; /* what the reserved job takes there (its slot) */
} ty__cap;

/* ---- arena.c: the pass's scratch, kept mapped between passes ---- */
typedef struct ty__arena {
  struct ty__block *block;  /* carved from the start; parked at close */
  size_t used;              /* bytes of block handed out */
  struct ty__spill *spills; /* what did not fit, malloc'ed one by one */
  size_t spilled, need;     /* spill bytes; the most used + spilled at once */
} ty__arena;

/* Takes the parked block (if any) for a pass. */
void ty__arena_open(ty__arena *a);
/* n bytes (64-byte aligned) that live until ty__arena_release of an
 * earlier mark or ty__arena_close; NULL on ENOMEM. zalloc: zeroed. */
void *ty__arena_alloc(ty__arena *a, size_t n);
void *ty__arena_zalloc(ty__arena *a, size_t n);
size_t ty__arena_mark(const ty__arena *a);
void ty__arena_release(ty__arena *a, size_t mark);
/* Frees the spills and parks a block for the next pass (sized for this
 * one's need). Everything allocated from a is gone. */
void ty__arena_close(ty__arena *a);

/* The cluster's size, for the priority's size factor: every node's CPUs
 * and GPUs summed, and the largest node's (an exclusive job's per node). */
typedef struct ty__sizes {
  uint64_t gpus, cpus;
  uint32_t big_gpus, big_cpus;
} ty__sizes;

typedef struct ty__idx {
  const ty_sched_node *nodes; /* borrowed input */
  size_t n;
  uint32_t n_sw, nb;    /* switch groups, buckets (max GPUs + 1) */
  ty__res *free;        /* current free resources per node */
  bool *ok;             /* schedulable */
  uint32_t *sw;         /* switch group per node, 0..n_sw-1 */
  int32_t *next, *prev; /* bucket list links, -1 = none */
  uint8_t *bucket;      /* free GPU count the node is filed under */
  int32_t *head;        /* [n_sw * nb] */
  uint32_t *ge;         /* [nb * n_sw]: ge[g * n_sw + s], nodes of switch s with >= g free GPUs */
  uint32_t *gcnt;       /* [nb], all switches */
  /* The reserved nodes' caps, sorted by node, and a bit per node that has
   * one (ty__idx_cap): a reservation holds a gang's few nodes, so nothing
   * per node but the bit is allocated, let alone zeroed. NULL until then. */
  ty__cap *cap;
  uint32_t n_cap;
  uint64_t *capped;
  /* Read from the nodes in the same walk, so no one else walks them: */
  uint32_t *gpus_total; /* per node */
  uint32_t n_up;        /* schedulable nodes */
  ty__sizes sizes;
} ty__idx;

/* Bits set in x. Inline SWAR rather than __builtin_popcountll, which
 * compiles to a libgcc call without -mpopcnt and was 7% of a pass. */
static inline uint32_t ty__popcount(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

uint64_t ty__gpu_mask(uint32_t total);
ty__need ty__need_of(const ty_sched_job *j);
bool ty__res_fits(const ty__res *r, const ty__need *n);
/* Whether r, what node nd offers, holds n: ty__res_fits, and for a whole
 * need, every CPU, GPU and byte of the node free. */
static inline bool ty__fits_on(const ty_sched_node *nd, const ty__res *r, const ty__need *n) {
  if (!ty__res_fits(r, n)) return false;
  if (!n->whole) return true;
  uint64_t all = nd->gpus_total >= 64 ? UINT64_MAX : (UINT64_C(1) << nd->gpus_total) - 1;
  return r->cpus >= nd->cpus_total && (r->gpus & all) == all && r->mem >= nd->mem_total;
}
/* What a slot of need n takes on node nd out of the GPUs `gpus` offered:
 * n's CPUs, memory and GPUs (one NVLink island where possible), or for a
 * whole need all of the node's. */
ty__res ty__take(const ty_sched_node *nd, const ty__need *n, uint64_t gpus);
/* Whether two needs are the same request (the pass's memos). */
static inline bool ty__need_eq(const ty__need *a, const ty__need *b) {
  if (a->filter || b->filter) return false; /* a filtered job's answers are its own */
  return a->cpus == b->cpus && a->gpus == b->gpus && a->mem == b->mem && a->whole == b->whole;
}

/* The per-node arrays come from the pass's arena (ty__idx_close leaves
 * them to it). */
int ty__idx_init(ty__idx *x, const ty_sched_node *nodes, size_t n, ty__arena *arena);
void ty__idx_close(ty__idx *x);
void ty__idx_set(ty__idx *x, uint32_t node, const ty__res *r); /* refiles the node */
/* Nodes with at least g free GPUs (an upper bound on nodes that fit). */
uint32_t ty__idx_count_ge(const ty__idx *x, uint32_t g);
/* The GPUs of `free` a job asking g of them gets: one NVLink island when one
 * holds them all (the fullest such island), else the largest islands first. */
uint64_t ty__pick_gpus(const ty_sched_node *node, uint64_t free, uint32_t g);

/* Looks for `want` nodes that each hold `need`, fewest switches first. With
 * use_caps, reserved nodes offer only their spare. Fills picked[want] and
 * returns true, or returns false. */
bool ty__idx_find(const ty__idx *x, const ty__need *need, uint32_t want, bool use_caps,
                  uint32_t *picked);
/* The nodes that hold `need` (for a refused job's reason). */
uint32_t ty__idx_count_fitting(const ty__idx *x, const ty__need *need, bool use_caps);
/* Node i's cap, or NULL when it has none. */
static inline ty__cap *ty__idx_cap(const ty__idx *x, uint32_t i) {
  if (!x->capped || !((x->capped[i >> 6] >> (i & 63)) & 1)) return NULL;
  uint32_t lo = 0, hi = x->n_cap;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (x->cap[mid].node < i)
      lo = mid + 1;
    else
      hi = mid;
  }
  return &x->cap[lo]; /* the bit says it is there */
}
/* Available resources of node i for a job (caps applied when use_caps). */
ty__res ty__idx_avail(const ty__idx *x, uint32_t i, bool use_caps);

/* How much node i counts towards reaching a need's goal (reserve.c's
 * counts of nodes that fit): 1 for any node without a filter; with one, 0
 * for an excluded node and 1 + n_nodes for a required one, so that the goal
 * (ty__goal) is reached only when every required node fits and `want`
 * nodes in all do. */
static inline uint64_t ty__worth(const ty__need *n, uint32_t i, size_t n_nodes) {
  if (!n->filter) return 1;
  uint8_t m = n->filter->mark[i];
  return m == 2 ? 1 + (uint64_t)n_nodes : m;
}
static inline uint64_t ty__goal(const ty__need *n, uint32_t want, size_t n_nodes) {
  if (!n->filter) return want;
  if (n->filter->missing) return UINT64_MAX; /* a required node that is not there */
  return want + (uint64_t)n->filter->n_req * n_nodes;
}

/* ---- priority.c ---- */

typedef struct ty__fs ty__fs; /* fair-share table of one pass */

typedef struct ty__prio {
  double total, tier, age, fairshare, size, prio;
  double fs_factor, usage, share, usage_norm;
} ty__prio;

/* Resolves a queue name to an index into in->queues, or -1. */
int ty__queue_index(const ty_sched_input *in, const char *name);
/* Builds the (queue, user) accounts of every usage row, pending and running
 * job, once per pass; fills job_qi[n_jobs] and run_qi[n_running] with the
 * jobs' queue indexes when not NULL, so nothing compares names again. */
int ty__fs_create(const ty_sched_input *in, int *job_qi, int *run_qi, ty__fs **out);
/* The same with the cluster's sizes already known (the node index's), so
 * the nodes are not walked again; ty__fs_create computes them. */
int ty__fs_create_sized(const ty_sched_input *in, const ty__sizes *sizes, int *job_qi, int *run_qi,
                        ty__fs **out);
void ty__fs_destroy(ty__fs *fs);
/* Pending job ji's (running job ri's) account (a dense index), and the GPUs
 * that account holds: what the pass charged for its running jobs and its
 * placements (ty__fs_charge_gpus). Jobs without a user hold none. */
uint32_t ty__fs_job_acct(const ty__fs *fs, size_t ji);
uint32_t ty__fs_run_acct(const ty__fs *fs, size_t ri);
/* (running jobs are charged only with p->gpu_limits: no one reads them else) */
uint64_t ty__fs_acct_gpus(const ty__fs *fs, uint32_t acct);
void ty__fs_charge_gpus(ty__fs *fs, uint32_t acct, uint64_t gpus);
void ty__priority(const ty_sched_input *in, const ty_sched_config *cfg, const ty__fs *fs, size_t ji,
                  int qi, int64_t now, ty__prio *out);

/* ---- the pass (scheduler.c) and reservations/preemption (reserve.c) ---- */

typedef struct ty__qstat {
  uint32_t running;
  uint64_t gpus;
} ty__qstat;

/* A formatted "Resources" reason and the shape it was formatted for. */
#define TY__REASON_MEMO 8
typedef struct ty__reason_memo {
  ty__need need;
  uint32_t nodes, have;
  bool used;
  char text[160];
} ty__reason_memo;

/* The last search for free nodes that failed, per use of the caps: a job
 * of the same shape finds the same while the index is unchanged (gen), so
 * an array's blocked elements search once per pass, not once each. */
typedef struct ty__find_memo {
  ty__need need;
  uint32_t want;
  uint64_t gen;
  bool used;
} ty__find_memo;

/* The last count of nodes that fit a need, on the unchanged index. */
typedef struct ty__count_memo {
  ty__need need;
  uint32_t have;
  uint64_t gen;
  bool used;
} ty__count_memo;

typedef struct ty__pass {
  const ty_sched_input *in;
  ty_sched_config cfg;
  int64_t now;
  ty__idx idx;
  ty__fs *fs;
  /* From the arena: qi, rqi, prio, order, placed_ji, picked, victim,
   * claimed, work, work_set and the index's per-node arrays. */
  int *qi;             /* per job: queue index or -1 */
  int *rqi;            /* per running job */
  ty__prio *prio;      /* per job */
  uint32_t *order;     /* job indices, highest priority first */
  uint32_t *placed_ji; /* job index of each placement in out */
  ty__qstat *qs;       /* per queue (gpus: only with gpu_limits) */
  bool gpu_limits;     /* a queue has max_gpus or max_gpus_per_user */
  uint32_t *picked;    /* scratch: nodes of one gang */
  uint32_t max_nodes;
  bool *victim;       /* per running job: chosen this pass */
  bool *claimed;      /* per node: promised to a preemptor */
  ty__res *work;      /* scratch: hypothetical free resources per node */
  uint64_t *work_set; /* ty__reserve: a bit per node whose work is set (else free) */
  uint32_t preempt_tries;
  bool resv; /* a reservation exists */
  uint64_t resv_job;
  int64_t resv_t;
  int64_t resv_end;    /* the reserved job's start + its time limit */
  bool resv_unlimited; /* the reserved job has no time limit */
  /* A running job without a time limit whose assumed end (unknown_runtime)
   * the reservation's start rests on, else 0: reasons say so, as why does. */
  uint64_t resv_assumed;
  char resv_text[160]; /* the reservation's reason, once formatted */
  ty__reason_memo memo[TY__REASON_MEMO];
  uint32_t memo_next;
  /* The last exclusive job's reason, for the next of the same gang size
   * and count on the unchanged index: it walks the running jobs once. */
  char whole_text[160];
  ty__need whole_need;
  uint32_t whole_nodes, whole_have;
  uint64_t whole_gen;
  bool whole_used;
  /* +1 whenever this pass changed idx (a placement, a preemption's claim,
   * the reservation's caps); the failed searches it remembers. */
  uint64_t idx_gen;
  ty__find_memo find_memo[2];
  ty__count_memo count_memo;
  uint64_t find_memo_hits; /* searches answered by find_memo (a test hook) */
  /* Arrays with a cap on running elements (%N) among the pending jobs,
   * sorted, and their running elements (this pass's placements counted);
   * none allocated when no pending job has a cap. */
  uint64_t *arr_ids;
  uint32_t *arr_run;
  size_t n_arr;
  /* -w/-x (filter.c): the node names sorted, once the pass meets a job
   * with a list, and that job's filter. */
  struct ty__named *by_name;
  ty__filter filt;
  ty_sched_output *out;
  ty__arena arena; /* the per-pass arrays above that say so */
} ty__pass;

typedef struct ty__named {
  const char *name;
  uint32_t i;
} ty__named;

/* Runs a whole pass into out, leaving p's state for inspection (explain);
 * ty__pass_close frees it whatever the result. */
int ty__pass_run(ty__pass *p, const ty_sched_input *in, ty_sched_output *out);
void ty__pass_close(ty__pass *p);
/* Fills p->order with the n pending jobs' indices in the order the pass
 * tries them (order.c): highest queue tier first (Slurm's PriorityTier),
 * then the multifactor total p->prio, the job's priority, FIFO, id; FIFO
 * mode by submit time alone. TY_ENOMEM. */
int ty__pass_order(ty__pass *p, size_t n);
/* End time of running job r, as the reservation sees it. */
int64_t ty__running_end(const ty__pass *p, size_t r);
/* Finds when job j (need n, want nodes) could start as running jobs and this
 * pass's placements end. Returns true with *out_t; with `commit`, also makes
 * it the pass's reservation (caps on the reserved nodes). `have`: how many
 * usable nodes hold n now when the caller has counted them (a need without
 * a filter: ty__idx_count_fitting), else UINT64_MAX to count them here. */
bool ty__reserve(ty__pass *p, const ty_sched_job *j, const ty__need *n, uint32_t want,
                 uint64_t have, bool commit, int64_t *out_t);
/* When pending job ji could start: the reservation's timeline (running jobs
 * and this pass's placements end at their limits) with the pass's
 * reservation honoured, i.e. while the reserved job would run, ji may use
 * only what it leaves on its nodes. Returns true with *out_t; false when
 * no end frees enough. *out_unlimited is the id of a job without a time
 * limit whose assumed end the answer depends on, else 0. */
bool ty__estimate(ty__pass *p, size_t ji, int64_t *out_t, uint64_t *out_unlimited);
/* When the scheduler's preemption rule would make room for pending job
 * ji (preemption on, not FIFO): running jobs are released when they end
 * by their limits or, for candidates (preemptible queue, lower tier, not
 * ending), as soon as they have run min_run_s, whichever is earlier; the
 * first release after which the gang fits is *out_t. True only when a
 * candidate's release is needed (*out_ripe: the last one, whose min_run
 * the moment waits for; the pass then picks its victims by its own order
 * among those ripe) and no job without a time limit is waited for by an
 * assumed end; else false. */
bool ty__preempt_estimate(ty__pass *p, size_t ji, int64_t *out_t, uint64_t *out_ripe);
/* The jobs allocated on node i (running ones, then this pass's
 * placements) as "job 12" or "jobs 12, 14" into buf; how many. */
uint32_t ty__node_jobs(const ty__pass *p, uint32_t i, char *buf, size_t len);
/* Why node i does not hold need n now, in words ("3 of 4 CPUs free, 8
 * needed", "excluded (-x/--exclude)"). */
void ty__node_why(const ty__pass *p, uint32_t i, const ty__need *n, char *out, size_t len);
/* ---- filter.c: -w/--nodelist and -x/--exclude ---- */
/* Whether job j has a node list (a filter). */
static inline bool ty__has_filter(const ty_sched_job *j) {
  return j->n_req_nodes > 0 || j->n_exc_nodes > 0;
}
/* The nodes' names sorted (NULL on ENOMEM; the caller frees), and the
 * index of the node named `name` in them, or -1. */
struct ty__named *ty__names_index(const ty_sched_node *nodes, size_t n);
int64_t ty__names_find(const struct ty__named *x, size_t n, const char *name);
/* Pending job ji's need: ty__need_of, with the pass's filter built for it
 * when it has a list. 0 or TY_ENOMEM. */
int ty__job_need(ty__pass *p, size_t ji, ty__need *out);
/* The nodes job j gets: nodes, raised to its required nodes' count. */
static inline uint32_t ty__job_want(const ty_sched_job *j) {
  uint32_t want = j->nodes ? j->nodes : 1;
  return j->n_req_nodes > want ? j->n_req_nodes : want;
}
/* Queue GPU limits (limits.c). The reason, into buf, when `gpus` more
 * GPUs would take job ji's queue past max_gpus or its user past
 * max_gpus_per_user (`how` follows the count); NULL when not. */
const char *ty__gpu_limit(ty__pass *p, size_t ji, uint64_t gpus, const char *how, char *buf,
                          size_t len);
/* The same for an exclusive job on the nodes found (picked[want]): all of
 * their GPUs count. */
const char *ty__whole_over_limit(ty__pass *p, size_t ji, uint32_t want, char *buf, size_t len);
/* ty__idx_find for a need with a filter: every required node (they come
 * first in picked), then others it may use. */
bool ty__filter_find(const ty__idx *x, const ty__need *n, uint32_t want, bool use_caps,
                     uint32_t *picked);
/* The nodes a filtered need may use that fit it (a refused job's reason). */
uint32_t ty__filter_count(const ty__idx *x, const ty__need *n, bool use_caps);

/* Tries to make room for job j by preempting; true when it will fit once
 * the victims (recorded in p->out) and jobs already ending are gone. */
bool ty__preempt(ty__pass *p, size_t job, const ty__need *n, uint32_t want);

#endif
