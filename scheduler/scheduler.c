/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduling pass: order pending jobs by queue tier, then multifactor
 * priority, hold back what queues, holds and limits forbid, place whole
 * gangs by topology, let blocked jobs of higher tiers preempt, give the
 * first job that still does not fit a reservation and backfill around it
 * (EASY); without backfill, start nothing behind that job.
 *
 * Invariants:
 *   - A job gets all of its `nodes` slots in one pass or none (gang), so two
 *     gangs that each half-fit never hold half a cluster each and deadlock.
 *   - A node slot gets tasks_per_node * cpus_per_task CPUs, gpus_per_node GPUs
 *     (one NVLink island where possible) and mem_per_node bytes.
 *   - After the reservation is made, a job starts only if its time limit ends
 *     before the reservation's start or it uses only the reserved nodes'
 *     spare: the reserved job is never delayed by a backfilled one.
 *   - The input is never modified: free resources live in the node index.
 *
 * Workload: the controller runs a pass on every submit and task end and once
 * a second with tens to thousands of pending jobs; the trace simulator runs
 * it with 100,000 jobs on 10,000 nodes. Cost: O(J log J) to order, then per
 * job O(GPU buckets x switches) when it cannot fit and about the nodes it
 * scans when it can; the reservation is O(R log R) once per pass. A job of
 * the shape whose search last failed, on an index unchanged since (an
 * array's blocked elements), costs O(1) instead (find_memo).
 */
#include "scheduler/scheduler.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base/base.h"
#include "scheduler/sched_internal.h"

/* ---- set-up ------------------------------------------------------------------- */

static int64_t latest_submit(const ty_sched_input *in) {
  int64_t t = 0;
  for (size_t i = 0; i < in->n_jobs; i++)
    if (in->jobs[i].submit_time_ms > t) t = in->jobs[i].submit_time_ms;
  return t;
}

/* Whether some queue limits GPUs (max_gpus, max_gpus_per_user): only
 * then do the GPU charges of queues and accounts have a reader. */
static bool any_gpu_limit(const ty_sched_input *in) {
  for (size_t q = 0; q < in->n_queues; q++)
    if (in->queues[q].max_gpus || in->queues[q].max_gpus_per_user) return true;
  return false;
}

/* Running jobs counted in their queues and, when a queue limits GPUs,
 * their GPUs charged to queues and accounts (ty__gpu_limit reads them):
 * the slots, a cache miss per running job, are read only then. */
static void charge_running(ty__pass *p) {
  for (size_t r = 0; r < p->in->n_running; r++) {
    const ty_sched_running *rj = &p->in->running[r];
    uint64_t gpus = 0;
    for (uint32_t s = 0; p->gpu_limits && s < rj->n_slots; s++)
      gpus += ty__popcount(rj->slots[s].gpus);
    if (p->gpu_limits && rj->user) ty__fs_charge_gpus(p->fs, ty__fs_run_acct(p->fs, r), gpus);
    int q = p->rqi[r];
    if (q < 0) continue;
    p->qs[q].running++;
    p->qs[q].gpus += gpus;
  }
}

/* ---- arrays' caps on running elements ---------------------------------------------- */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Index of array id in p->arr_ids, or -1. */
static ptrdiff_t arr_find(const ty__pass *p, uint64_t id) {
  size_t lo = 0, hi = p->n_arr;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (p->arr_ids[mid] == id) return (ptrdiff_t)mid;
    if (p->arr_ids[mid] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

/* The capped arrays of the pending jobs and their running elements: one
 * sort per pass, and a binary search per running element and per capped
 * job. Nothing at all when no job has a cap. */
static int arrays_init(ty__pass *p) {
  size_t n = 0;
  for (size_t i = 0; i < p->in->n_jobs; i++)
    n += p->in->jobs[i].array_max_running > 0;
  if (n == 0) return 0;
  p->arr_ids = malloc(n * sizeof(*p->arr_ids));
  p->arr_run = calloc(n, sizeof(*p->arr_run));
  if (!p->arr_ids || !p->arr_run) return TY_ENOMEM;
  for (size_t i = 0; i < p->in->n_jobs; i++)
    if (p->in->jobs[i].array_max_running) p->arr_ids[p->n_arr++] = p->in->jobs[i].array_id;
  qsort(p->arr_ids, p->n_arr, sizeof(*p->arr_ids), cmp_u64);
  size_t k = 0;
  for (size_t i = 0; i < p->n_arr; i++)
    if (k == 0 || p->arr_ids[k - 1] != p->arr_ids[i]) p->arr_ids[k++] = p->arr_ids[i];
  p->n_arr = k;
  for (size_t r = 0; r < p->in->n_running; r++) {
    const ty_sched_running *rj = &p->in->running[r];
    ptrdiff_t a = rj->array_id ? arr_find(p, rj->array_id) : -1;
    if (a >= 0 && !rj->ending) p->arr_run[a]++;
  }
  return 0;
}

static int pass_init(ty__pass *p, const ty_sched_input *in, ty_sched_output *out) {
  memset(p, 0, sizeof(*p));
  memset(out, 0, sizeof(*out));
  ty__arena_open(&p->arena);
  ty__arena *a = &p->arena;
  p->in = in;
  p->out = out;
  if (in->config)
    p->cfg = *in->config;
  else
    ty_sched_config_default(&p->cfg);
  p->now = in->now_ms ? in->now_ms : latest_submit(in);
  p->gpu_limits = any_gpu_limit(in);
  size_t nj = in->n_jobs ? in->n_jobs : 1, nr = in->n_running ? in->n_running : 1;
  size_t nn = in->n_nodes ? in->n_nodes : 1;
  p->max_nodes = 1;
  for (size_t i = 0; i < in->n_jobs; i++)
    if (ty__job_want(&in->jobs[i]) > p->max_nodes) p->max_nodes = ty__job_want(&in->jobs[i]);
  /* Per-job arrays are written whole below (ty__fs_create, ty__priority,
   * ty__pass_order) or before they are read (placed_ji), so they are not zeroed. */
  p->qi = ty__arena_alloc(a, nj * sizeof(*p->qi));
  p->rqi = ty__arena_alloc(a, nr * sizeof(*p->rqi));
  p->prio = ty__arena_alloc(a, nj * sizeof(*p->prio));
  p->order = ty__arena_alloc(a, nj * sizeof(*p->order));
  p->placed_ji = ty__arena_alloc(a, nj * sizeof(*p->placed_ji));
  p->qs = calloc(in->n_queues + 1, sizeof(*p->qs));
  p->picked = ty__arena_zalloc(a, (p->max_nodes > nn ? p->max_nodes : nn) * sizeof(*p->picked));
  p->victim = ty__arena_zalloc(a, nr * sizeof(*p->victim));
  p->claimed = ty__arena_zalloc(a, nn * sizeof(*p->claimed));
  /* Not zeroed: every entry is written whole when it is added, and with
   * 100,000 pending jobs zeroing alone cost a tenth of a pass. */
  out->placements = malloc(nj * sizeof(*out->placements));
  out->pending = malloc(nj * sizeof(*out->pending));
  out->preemptions = malloc(nr * sizeof(*out->preemptions));
  if (!p->qi || !p->rqi || !p->prio || !p->order || !p->placed_ji || !p->qs || !p->picked ||
      !p->victim || !p->claimed || !out->placements || !out->pending || !out->preemptions)
    return TY_ENOMEM;
  int rc = ty__idx_init(&p->idx, in->nodes, in->n_nodes, a);
  if (rc == 0) rc = ty__fs_create_sized(in, &p->idx.sizes, p->qi, p->rqi, &p->fs);
  if (rc != 0) return rc;
  charge_running(p);
  if ((rc = arrays_init(p)) != 0) return rc;
  for (size_t i = 0; i < in->n_jobs; i++) {
    ty__priority(in, &p->cfg, p->fs, i, p->qi[i], p->now, &p->prio[i]);
    p->order[i] = (uint32_t)i;
  }
  return ty__pass_order(p, in->n_jobs);
}

static void pass_close(ty__pass *p) {
  ty__idx_close(&p->idx);
  ty__fs_destroy(p->fs);
  free(p->qs);
  free(p->arr_ids);
  free(p->arr_run);
  free(p->by_name);
  free(p->filt.mark);
  free(p->filt.req);
  ty__arena_close(&p->arena);
}

/* ---- reasons ------------------------------------------------------------------- */

static ty_sched_pending *add_pending(ty__pass *p, size_t ji, ty_sched_wait wait) {
  ty_sched_pending *pd = &p->out->pending[p->out->n_pending++];
  pd->job_id = p->in->jobs[ji].id;
  pd->job_index = (uint32_t)ji;
  pd->position = (uint32_t)p->out->n_pending;
  pd->priority = p->prio[ji].total;
  pd->wait = wait;
  pd->est_start_ms = 0;
  pd->est_kind = TY_SCHED_EST_UNKNOWN;
  pd->reserved = false;
  pd->reason[0] = '\0';
  return pd;
}

/* A bounded string appender: format_need runs for many blocked jobs per
 * pass, and snprintf's format parsing was most of its cost. */
typedef struct appender {
  char *buf;
  size_t len, at;
} appender;

static void put_str(appender *a, const char *s) {
  while (*s && a->at + 1 < a->len)
    a->buf[a->at++] = *s++;
  a->buf[a->at] = '\0';
}

static void put_u64(appender *a, uint64_t v) {
  char tmp[24];
  int n = 0;
  do
    tmp[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  char out[24];
  for (int i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
  put_str(a, out);
}

/* "<v> <unit>" with an "s" unless v is 1. */
static void put_count(appender *a, uint64_t v, const char *unit) {
  put_u64(a, v);
  put_str(a, " ");
  put_str(a, unit);
  if (v != 1) put_str(a, "s");
}

static void format_need(char *out, size_t len, const ty_sched_job *j, const ty__need *n,
                        size_t have) {
  appender a = {out, len, 0};
  put_str(&a, "Resources: needs ");
  put_count(&a, j->nodes, "node");
  put_str(&a, " with ");
  put_count(&a, n->cpus, "free CPU");
  if (n->gpus) {
    put_str(&a, ", ");
    put_count(&a, n->gpus, "GPU");
  }
  if (n->mem) {
    put_str(&a, ", ");
    put_u64(&a, (n->mem + (1u << 20) - 1) >> 20);
    put_str(&a, " MiB memory");
  }
  put_str(&a, "; ");
  put_u64(&a, have);
  put_str(&a, have == 1 ? " has" : " have");
}

static uint32_t job_gpus(const ty_sched_job *j) {
  return ty__job_want(j) * j->gpus_per_node;
}

/* "BeginTime: not before 2026-12-04 10:00:00 UTC". */
static const char *begin_reason(int64_t begin_ms, char *buf, size_t len) {
  time_t t = (time_t)(begin_ms / 1000);
  struct tm tm;
  char when[32] = "?";
  if (gmtime_r(&t, &tm)) strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
  snprintf(buf, len, "BeginTime: not before %s", when);
  return buf;
}

static uint32_t limit_of(const ty__pass *p, size_t ji);

/* A reason (and its code in *out_wait) when job ji asks more than its
 * queue's max_time or max_mem allow, else NULL: limits lowered after it was
 * submitted hold it back, as Slurm's PartitionTimeLimit. An exclusive job
 * has its nodes' whole memory, which max_mem does not limit. */
static const char *over_queue_max(const ty__pass *p, size_t ji, const ty_sched_queue *qu, char *buf,
                                  size_t len, ty_sched_wait *out_wait) {
  const ty_sched_job *j = &p->in->jobs[ji];
  uint32_t t = limit_of(p, ji);
  *out_wait = TY_SCHED_WAIT_QUEUE_TIME_LIMIT;
  if (qu->max_time_s && t > qu->max_time_s) {
    snprintf(buf, len, "QueueTimeLimit: time limit of %u s exceeds queue %s's max_time of %u s", t,
             qu->name, qu->max_time_s);
    return buf;
  }
  *out_wait = TY_SCHED_WAIT_QUEUE_MEM_LIMIT;
  if (qu->max_mem_per_node && !j->exclusive && j->mem_per_node > qu->max_mem_per_node) {
    snprintf(buf, len, "QueueMemLimit: %llu MiB per node exceeds queue %s's max_mem of %llu MiB",
             (unsigned long long)(j->mem_per_node >> 20), qu->name,
             (unsigned long long)(qu->max_mem_per_node >> 20));
    return buf;
  }
  return NULL;
}

/* A reason (and its code in *out_wait) when the job's queue or an operator
 * holds it back, else NULL. */
static const char *held_back(ty__pass *p, size_t ji, char *buf, size_t len,
                             ty_sched_wait *out_wait) {
  const ty_sched_job *j = &p->in->jobs[ji];
  *out_wait = TY_SCHED_WAIT_HELD;
  if (j->held) return ty_sched_held_reason(j->held_by, buf, len);
  *out_wait = TY_SCHED_WAIT_BEGIN_TIME;
  if (j->begin_ms > p->now) return begin_reason(j->begin_ms, buf, len);
  *out_wait = TY_SCHED_WAIT_DEPENDENCY;
  if (j->dep_reason) return j->dep_reason;
  ptrdiff_t a = j->array_max_running ? arr_find(p, j->array_id) : -1;
  *out_wait = TY_SCHED_WAIT_ARRAY_LIMIT;
  if (a >= 0 && p->arr_run[a] >= j->array_max_running) {
    snprintf(buf, len, "ArrayTaskLimit: array %llu runs %u element%s, its limit is %u",
             (unsigned long long)j->array_id, p->arr_run[a], p->arr_run[a] == 1 ? "" : "s",
             j->array_max_running);
    return buf;
  }
  int q = p->qi[ji];
  if (q < 0) return NULL;
  const ty_sched_queue *qu = &p->in->queues[q];
  *out_wait = TY_SCHED_WAIT_QUEUE_PAUSED;
  if (qu->state == TY_SCHED_QUEUE_PAUSED) {
    snprintf(buf, len, "QueuePaused: queue %s is paused", qu->name);
    return buf;
  }
  const char *over = over_queue_max(p, ji, qu, buf, len, out_wait);
  if (over) return over;
  *out_wait = TY_SCHED_WAIT_QUEUE_LIMIT;
  if (qu->max_running && p->qs[q].running >= qu->max_running) {
    snprintf(buf, len, "QueueLimit: queue %s runs %u jobs, max_running is %u", qu->name,
             p->qs[q].running, qu->max_running);
    return buf;
  }
  return ty__gpu_limit(p, ji, job_gpus(j), "", buf, len);
}

/* ---- placing ----------------------------------------------------------------------- */

static uint32_t limit_of(const ty__pass *p, size_t ji) {
  const ty_sched_job *j = &p->in->jobs[ji];
  uint32_t t = j->time_limit_s;
  if (!t && p->qi[ji] >= 0) t = p->in->queues[p->qi[ji]].default_time_s;
  return t;
}

/* a - b, never below zero. */
static void res_take(ty__res *a, const ty__res *b) {
  a->cpus -= b->cpus < a->cpus ? b->cpus : a->cpus;
  a->gpus &= ~b->gpus;
  a->mem -= b->mem < a->mem ? b->mem : a->mem;
}

static int place(ty__pass *p, size_t ji, const ty__need *n, uint32_t want, bool backfilled) {
  ty_sched_slot *slots = calloc(want, sizeof(*slots));
  if (!slots) return TY_ENOMEM;
  uint64_t gpus = 0; /* what the slots hold: an exclusive job's are its nodes' */
  for (uint32_t s = 0; s < want; s++) {
    uint32_t i = p->picked[s];
    ty__res avail = ty__idx_avail(&p->idx, i, backfilled);
    ty__res f = p->idx.free[i];
    ty__res t = ty__take(&p->in->nodes[i], n, avail.gpus);
    slots[s] = (ty_sched_slot){.node = i, .cpus = t.cpus, .mem = t.mem, .gpus = t.gpus};
    gpus += ty__popcount(t.gpus);
    res_take(&f, &t);
    ty__idx_set(&p->idx, i, &f);
    ty__cap *c = backfilled ? ty__idx_cap(&p->idx, i) : NULL;
    if (c) res_take(&c->spare, &t);
  }
  p->placed_ji[p->out->n_placements] = (uint32_t)ji;
  ty_sched_placement *pl = &p->out->placements[p->out->n_placements++];
  *pl = (ty_sched_placement){.job_id = p->in->jobs[ji].id,
                             .job_index = (uint32_t)ji,
                             .n_slots = want,
                             .slots = slots,
                             .time_limit_s = limit_of(p, ji),
                             .backfilled = p->resv};
  int q = p->qi[ji];
  if (q >= 0) {
    p->qs[q].running++;
    p->qs[q].gpus += gpus;
  }
  ptrdiff_t a = p->in->jobs[ji].array_max_running ? arr_find(p, p->in->jobs[ji].array_id) : -1;
  if (a >= 0) p->arr_run[a]++;
  if (p->in->jobs[ji].user) ty__fs_charge_gpus(p->fs, ty__fs_job_acct(p->fs, ji), gpus);
  return 0;
}

/* Whether a job started now would still run at the reservation's start. */
static bool outlasts_reservation(const ty__pass *p, size_t ji) {
  if (!p->resv) return false;
  uint32_t t = limit_of(p, ji);
  if (!t) t = p->cfg.unknown_runtime_s;
  return p->now + (int64_t)t * 1000 > p->resv_t;
}

/* strlcpy: snprintf("%s") costs a format parse per pending job. */
static void copy_reason(char *buf, size_t len, const char *text) {
  size_t n = strlen(text);
  if (n >= len) n = len - 1;
  memcpy(buf, text, n);
  buf[n] = '\0';
}

/* The reason of every job the reservation holds back: formatted once per
 * pass, since the reservation never changes once made. */
static void resv_reason(ty__pass *p, char *buf, size_t len) {
  if (!p->resv_text[0] && p->resv_assumed)
    snprintf(p->resv_text, sizeof(p->resv_text),
             "Priority: would delay job %llu, reserved until job %llu (no time limit) ends",
             (unsigned long long)p->resv_job, (unsigned long long)p->resv_assumed);
  else if (!p->resv_text[0])
    snprintf(p->resv_text, sizeof(p->resv_text),
             "Priority: would delay job %llu, reserved to start in %lld s",
             (unsigned long long)p->resv_job, (long long)((p->resv_t - p->now + 999) / 1000));
  copy_reason(buf, len, p->resv_text);
}

/* The reason of a job beyond backfill.depth: the pass never tried it, so
 * it is not known to delay the reserved job. */
static void depth_reason(const ty__pass *p, char *buf, size_t len) {
  snprintf(buf, len, "Priority: beyond backfill.depth %u behind job %llu's reservation (not tried)",
           p->cfg.backfill_depth, (unsigned long long)p->resv_job);
}

/* "Resources: ..." for job j, from the pass's memo when a job of the same
 * shape was refused with the same count before: blocked jobs come in a few
 * shapes, and formatting each one anew was a sixth of a large pass. */
static void need_reason(ty__pass *p, const ty_sched_job *j, const ty__need *n, uint32_t have,
                        char *buf, size_t len) {
  for (int k = 0; k < TY__REASON_MEMO; k++) {
    const ty__reason_memo *m = &p->memo[k];
    if (m->used && m->nodes == j->nodes && m->have == have && ty__need_eq(&m->need, n)) {
      copy_reason(buf, len, m->text);
      return;
    }
  }
  ty__reason_memo *m = &p->memo[p->memo_next++ % TY__REASON_MEMO];
  *m = (ty__reason_memo){.need = *n, .nodes = j->nodes, .have = have, .used = true};
  format_need(m->text, sizeof(m->text), j, n, have);
  copy_reason(buf, len, m->text);
}

/* "Resources: waiting for a whole free node (exclusive), 0 are free; node
 * n1 has jobs 12, 14": an exclusive job's reason names the first node that
 * would fit but for the jobs on it, and those jobs. */
static void whole_format(ty__pass *p, const ty_sched_job *j, uint32_t want, uint32_t have,
                         char *buf, size_t len) {
  appender a = {buf, len, 0};
  put_str(&a, "Resources: waiting for ");
  if (want == 1)
    put_str(&a, "a whole free node");
  else {
    put_u64(&a, want);
    put_str(&a, " whole free nodes");
  }
  put_str(&a, " (exclusive), ");
  put_u64(&a, have);
  put_str(&a, have == 1 ? " is free" : " are free");
  ty__need n = ty__need_of(j);
  for (uint32_t i = 0; i < p->in->n_nodes; i++) {
    ty__need mine = n;
    mine.whole = false;
    ty__res whole = {p->in->nodes[i].cpus_total, ty__gpu_mask(p->in->nodes[i].gpus_total),
                     p->in->nodes[i].mem_total};
    if (!p->idx.ok[i] || p->claimed[i] || !ty__res_fits(&whole, &mine)) continue;
    char jobs[96];
    if (ty__node_jobs(p, i, jobs, sizeof(jobs)) == 0) continue;
    put_str(&a, "; node ");
    put_str(&a, p->in->nodes[i].name ? p->in->nodes[i].name : "?");
    put_str(&a, " has ");
    put_str(&a, jobs);
    return;
  }
}

/* whole_format's text, from the pass's memo when the job before asked the
 * same on the unchanged index (an array's exclusive elements). */
static void whole_reason(ty__pass *p, const ty_sched_job *j, uint32_t have, char *buf, size_t len) {
  uint32_t want = j->nodes ? j->nodes : 1;
  ty__need n = ty__need_of(j);
  if (p->whole_used && p->whole_gen == p->idx_gen && p->whole_nodes == want &&
      p->whole_have == have && ty__need_eq(&p->whole_need, &n)) {
    copy_reason(buf, len, p->whole_text);
    return;
  }
  p->whole_used = true, p->whole_gen = p->idx_gen, p->whole_nodes = want, p->whole_have = have;
  p->whole_need = n;
  whole_format(p, j, want, have, p->whole_text, sizeof(p->whole_text));
  copy_reason(buf, len, p->whole_text);
}

/* ty__idx_find, answered from the memo when the same search failed on the
 * unchanged index (so it would fail again): exact. A filtered job's search
 * is its own (ty__filter_find). */
static bool find_nodes(ty__pass *p, const ty__need *n, uint32_t want, bool caps) {
  if (n->filter) return ty__filter_find(&p->idx, n, want, caps, p->picked);
  ty__find_memo *m = &p->find_memo[caps];
  if (m->used && m->gen == p->idx_gen && m->want == want && ty__need_eq(&m->need, n)) {
    p->find_memo_hits++;
    return false;
  }
  if (ty__idx_find(&p->idx, n, want, caps, p->picked)) return true;
  *m = (ty__find_memo){.need = *n, .want = want, .gen = p->idx_gen, .used = true};
  return false;
}

/* The nodes that hold n with nothing reserved (a refused job's reason
 * names them), counted once per need on the unchanged index (a filtered
 * job's: those it may use, each time). */
static uint32_t nodes_fitting(ty__pass *p, const ty__need *n) {
  if (n->filter) return ty__filter_count(&p->idx, n, false);
  ty__count_memo *m = &p->count_memo;
  if (!m->used || m->gen != p->idx_gen || !ty__need_eq(&m->need, n))
    *m = (ty__count_memo){.need = *n,
                          .have = ty__idx_count_fitting(&p->idx, n, false),
                          .gen = p->idx_gen,
                          .used = true};
  return m->have;
}

/* A required node (-w) of a filtered job that cannot be used now: not
 * among the nodes, or down or draining. True with the reason in pd. */
static bool req_node_down(ty__pass *p, size_t ji, const ty__need *n) {
  const ty__filter *f = n->filter;
  const char *name = f->missing, *why = "is not a registered node";
  for (uint32_t k = 0; !name && k < f->n_req; k++)
    if (!p->idx.ok[f->req[k]]) {
      name = p->in->nodes[f->req[k]].name;
      why = "is down or draining";
    }
  if (!name) return false;
  ty_sched_pending *pd = add_pending(p, ji, TY_SCHED_WAIT_REQ_NODE);
  snprintf(pd->reason, sizeof(pd->reason), "ReqNodeNotAvail: required node %.64s %s", name, why);
  return true;
}

/* "Resources: ..." for a filtered job: the first required node that does
 * not fit and what holds it, else the count of the nodes it may use and
 * the ones it excludes ("...; 2 have; nodes w[1-2] are excluded (-x)"). */
static void filter_reason(ty__pass *p, const ty_sched_job *j, const ty__need *n, uint32_t have,
                          char *buf, size_t len) {
  const ty__filter *f = n->filter;
  for (uint32_t k = 0; k < f->n_req; k++) {
    uint32_t i = f->req[k];
    ty__res r = p->idx.free[i];
    if (!p->claimed[i] && ty__fits_on(&p->in->nodes[i], &r, n)) continue;
    char jobs[64], why[96];
    appender a = {buf, len, 0};
    put_str(&a, "Resources: waiting for required node ");
    put_str(&a, p->in->nodes[i].name ? p->in->nodes[i].name : "?");
    put_str(&a, ": ");
    if (ty__node_jobs(p, i, jobs, sizeof(jobs)) > 0) {
      put_str(&a, "it runs ");
      put_str(&a, jobs);
    } else {
      ty__node_why(p, i, n, why, sizeof(why));
      put_str(&a, why);
    }
    return;
  }
  ty_sched_job shape = *j;
  shape.nodes = ty__job_want(j);
  format_need(buf, len, &shape, n, have);
  if (!j->n_exc_nodes) return;
  appender a = {buf, len, strlen(buf)};
  ty_buf names; /* "w[1-2]": the job's -x as it would write it */
  ty_buf_init(&names);
  ty_hostlist_write(j->exc_nodes, j->n_exc_nodes, &names);
  put_str(&a, j->n_exc_nodes == 1 ? "; node " : "; nodes ");
  put_str(&a, (const char *)names.data);
  put_str(&a, j->n_exc_nodes == 1 ? " is excluded (-x)" : " are excluded (-x)");
  ty_buf_close(&names);
}

/* Handles one eligible job; returns 0 or TY_ENOMEM. */
static int try_job(ty__pass *p, size_t ji, bool *out_blocked) {
  const ty_sched_job *j = &p->in->jobs[ji];
  ty__need n = ty__need_of(j); /* a job with -w/-x gets its filter: */
  if (ty__has_filter(j) && ty__job_need(p, ji, &n) != 0) return TY_ENOMEM;
  uint32_t want = ty__job_want(j);
  *out_blocked = false;
  if (n.gpus > TY_SCHED_MAX_GPUS) {
    ty_sched_pending *pd = add_pending(p, ji, TY_SCHED_WAIT_NO_NODES);
    snprintf(pd->reason, sizeof(pd->reason), "Resources: %u GPUs per node is above the limit of %d",
             n.gpus, TY_SCHED_MAX_GPUS);
    return 0;
  }
  if (n.filter && req_node_down(p, ji, &n)) return 0;
  bool caps = outlasts_reservation(p, ji);
  if (find_nodes(p, &n, want, caps)) {
    char buf[160];
    const char *over = n.whole ? ty__whole_over_limit(p, ji, want, buf, sizeof(buf)) : NULL;
    if (over) {
      ty_sched_pending *pd = add_pending(p, ji, TY_SCHED_WAIT_QUEUE_LIMIT);
      copy_reason(pd->reason, sizeof(pd->reason), over);
      return 0;
    }
    p->idx_gen++;
    return place(p, ji, &n, want, caps);
  }
  bool fits_uncapped = caps && find_nodes(p, &n, want, false);
  *out_blocked = true;
  if (!fits_uncapped && !p->cfg.fifo && p->cfg.preemption && ty__preempt(p, ji, &n, want)) {
    p->idx_gen++; /* it claimed nodes (one that finds no victims changes nothing) */
    ty_sched_pending *pd = add_pending(p, ji, TY_SCHED_WAIT_PREEMPTING);
    snprintf(pd->reason, sizeof(pd->reason), "Preempting: waiting for preempted jobs to exit");
    /* Victims get SIGTERM now and SIGKILL after the grace period. */
    pd->est_start_ms = p->now + (int64_t)p->cfg.preempt_grace_s * 1000;
    pd->est_kind = TY_SCHED_EST_PREEMPTION;
    return 0;
  }
  ty_sched_pending *pd =
      add_pending(p, ji, fits_uncapped ? TY_SCHED_WAIT_PRIORITY : TY_SCHED_WAIT_RESOURCES);
  if (fits_uncapped) {
    resv_reason(p, pd->reason, sizeof(pd->reason));
    return 0;
  }
  uint32_t have = nodes_fitting(p, &n);
  if (n.filter)
    filter_reason(p, j, &n, have, pd->reason, sizeof(pd->reason));
  else if (n.whole)
    whole_reason(p, j, have, pd->reason, sizeof(pd->reason));
  else
    need_reason(p, j, &n, have, pd->reason, sizeof(pd->reason));
  int64_t t;
  uint64_t counted = n.filter ? UINT64_MAX : have; /* a filter's count is not its worth */
  if (!p->resv && !p->cfg.fifo && p->cfg.backfill &&
      ty__reserve(p, j, &n, want, counted, true, &t)) {
    p->idx_gen++; /* it capped nodes (a failed one changes nothing) */
    pd->reserved = true;
    pd->est_start_ms = t;
    pd->est_kind = TY_SCHED_EST_LIMITS;
    size_t l = strlen(pd->reason);
    if (p->resv_assumed) /* as why puts it: no estimate rests on a guess */
      snprintf(pd->reason + l, sizeof(pd->reason) - l,
               "; reserved, its start waiting for job %llu, which has no time limit",
               (unsigned long long)p->resv_assumed);
    else
      snprintf(pd->reason + l, sizeof(pd->reason) - l, "; reserved to start in %lld s",
               (long long)((t - p->now + 999) / 1000));
  }
  return 0;
}

static int run_pass(ty__pass *p) {
  const ty_sched_input *in = p->in;
  size_t up = p->idx.n_up, tried_after_resv = 0;
  uint64_t fifo_block = 0;
  char fifo_why[160] = ""; /* formatted once: every later job waits behind one */
  for (size_t k = 0; k < in->n_jobs; k++) {
    size_t ji = p->order[k];
    char buf[160];
    ty_sched_wait wait;
    const char *why = held_back(p, ji, buf, sizeof(buf), &wait);
    if (!why && up == 0) {
      why = "Resources: no schedulable nodes (all are down or draining)";
      wait = TY_SCHED_WAIT_NO_NODES;
    }
    if (!why && fifo_block) {
      wait = TY_SCHED_WAIT_PRIORITY;
      if (!fifo_why[0])
        snprintf(fifo_why, sizeof(fifo_why), "Priority: waiting behind job %llu (%s)",
                 (unsigned long long)fifo_block, p->cfg.fifo ? "FIFO" : "backfill is off");
      why = fifo_why;
    }
    if (!why && p->resv && p->cfg.backfill_depth && ++tried_after_resv > p->cfg.backfill_depth) {
      depth_reason(p, buf, sizeof(buf));
      why = buf;
      wait = TY_SCHED_WAIT_PRIORITY;
    }
    if (why) {
      ty_sched_pending *pd = add_pending(p, ji, wait);
      copy_reason(pd->reason, sizeof(pd->reason), why);
      continue;
    }
    bool blocked;
    int rc = try_job(p, ji, &blocked);
    if (rc != 0) return rc;
    /* Without backfill (Slurm's sched/builtin) nothing starts ahead of a
     * blocked job: every queue shares every node, so one blocks all. */
    if (blocked && (p->cfg.fifo || !p->cfg.backfill)) fifo_block = in->jobs[ji].id;
  }
  p->out->fragmentation = 0;
  return 0;
}

/* Fragmentation of the index's free resources after the pass (as
 * ty_sched_fragmentation, without copying the nodes). With GPUs, from the
 * index alone: a linked node's bucket is its free GPU count (at most its
 * GPUs, so never clipped); without, from the nodes' CPUs. */
static double index_fragmentation(const ty__pass *p) {
  bool gpus = p->idx.sizes.gpus > 0;
  double free_all = 0, free_idle = 0;
  for (size_t i = 0; i < p->in->n_nodes; i++) {
    if (!p->idx.ok[i] || p->claimed[i]) continue;
    double f = gpus ? p->idx.bucket[i] : p->idx.free[i].cpus;
    double total = gpus ? p->idx.gpus_total[i] : p->in->nodes[i].cpus_total;
    free_all += f;
    if (f >= total && total > 0) free_idle += f;
  }
  return free_all > 0 ? 1.0 - free_idle / free_all : 0;
}

int ty__pass_run(ty__pass *p, const ty_sched_input *in, ty_sched_output *out) {
  int rc = pass_init(p, in, out);
  if (rc == 0) rc = run_pass(p);
  if (rc == 0) out->fragmentation = index_fragmentation(p);
  return rc;
}

void ty__pass_close(ty__pass *p) {
  pass_close(p);
}

int ty_sched_pass(const ty_sched_input *in, ty_sched_output *out) {
  ty__pass p;
  int rc = ty__pass_run(&p, in, out);
  pass_close(&p);
  if (rc != 0) ty_sched_output_close(out);
  return rc;
}

const char *ty_sched_held_reason(const char *held_by, char *buf, size_t len) {
  if (held_by && held_by[0])
    snprintf(buf, len,
             "JobHeldAdmin: held by an operator (%.64s) until an operator releases it "
             "(trainctl job release)",
             held_by);
  else
    snprintf(buf, len, "JobHeldUser: held until released (trainctl job release)");
  return buf;
}

const char *ty_sched_wait_name(ty_sched_wait w) {
  static const char *const names[] = {
#define TY_SCHED_WAIT_NAME_(e, s) s,
      TY_SCHED_WAIT_LIST(TY_SCHED_WAIT_NAME_)
#undef TY_SCHED_WAIT_NAME_
  };
  return (unsigned)w < TY_ARRAY_LEN(names) ? names[w] : "?";
}

void ty_sched_output_close(ty_sched_output *out) {
  if (!out) return;
  for (size_t i = 0; i < out->n_placements; i++)
    free(out->placements[i].slots);
  free(out->placements);
  free(out->pending);
  free(out->preemptions);
  memset(out, 0, sizeof(*out));
}

double ty_sched_fragmentation(const ty_sched_node *nodes, size_t n) {
  uint64_t gpus = 0;
  for (size_t i = 0; i < n; i++)
    gpus += nodes[i].gpus_total;
  double free_all = 0, free_idle = 0;
  for (size_t i = 0; i < n; i++) {
    const ty_sched_node *nd = &nodes[i];
    if (!nd->schedulable) continue;
    double f, total;
    if (gpus) {
      f = ty__popcount(nd->gpus_free & ty__gpu_mask(nd->gpus_total));
      total = nd->gpus_total;
    } else {
      f = nd->cpus_free;
      total = nd->cpus_total;
    }
    free_all += f;
    if (f >= total && total > 0) free_idle += f;
  }
  return free_all > 0 ? 1.0 - free_idle / free_all : 0;
}
