/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reservations (EASY backfill's shadow time) and preemption, both worked out
 * on a scratch copy of the free resources per node.
 *
 * Reservation: release running jobs (and this pass's placements) in the
 * order their time limits end (a heap, popped only as far as needed) until
 * enough nodes would hold the job; that end is the reservation's start. The reserved nodes are
 * capped: a job that would still run then may use only what the reserved job leaves over there.
 *
 * An exclusive job's need is whole (ty__fits_on): its reservation waits
 * for nodes to empty, its held slot is the whole node, and its victims must
 * leave whole nodes free.
 *
 * Preemption: victims are running jobs of preemptible queues with a lower
 * tier that have run at least min_run_s and are not already ending. Jobs
 * already ending (killed or preempted earlier) count as free at no cost.
 * Victims are added by least work lost (now - last checkpoint, or - start),
 * then lowest priority, until the gang would fit; then every victim that is
 * not needed after all is dropped again, latest first. The nodes the
 * preemptor will use are claimed for the rest of the pass, so later jobs
 * cannot take what the victims free. By the same rule, the moment a later
 * pass could preempt for a job (candidates reaching min_run_s) is worked
 * out for explain's estimate.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/sched_internal.h"

#define PREEMPT_TRIES_PER_PASS 32

int64_t ty__running_end(const ty__pass *p, size_t r) {
  const ty_sched_running *rj = &p->in->running[r];
  if (rj->ending || p->victim[r]) return p->now;
  uint32_t t = rj->time_limit_s ? rj->time_limit_s : p->cfg.unknown_runtime_s;
  int64_t end = rj->start_time_ms + (int64_t)t * 1000;
  return end < p->now ? p->now : end;
}

static void res_add(ty__res *r, const ty_sched_slot *s) {
  r->cpus += s->cpus;
  r->gpus |= s->gpus;
  r->mem += s->mem;
}

static void res_sub(ty__res *r, const ty_sched_slot *s) {
  r->cpus -= s->cpus < r->cpus ? s->cpus : r->cpus;
  r->gpus &= ~s->gpus;
  r->mem -= s->mem < r->mem ? s->mem : r->mem;
}

static int ensure_work(ty__pass *p) {
  if (p->work) return 0;
  p->work = ty__arena_alloc(&p->arena, (p->in->n_nodes ? p->in->n_nodes : 1) * sizeof(*p->work));
  return p->work ? 0 : TY_ENOMEM;
}

/* ---- reservation ------------------------------------------------------------------ */

/* One end: of running job src, or of this pass's placement src -
 * n_running. Small (the heap moves them), the rest is read when popped. */
typedef struct end_ev {
  int64_t t;
  size_t src;
} end_ev;

static const ty_sched_slot *ev_slots(const ty__pass *p, const end_ev *e, uint32_t *out_n) {
  size_t nr = p->in->n_running;
  if (e->src < nr) {
    *out_n = p->in->running[e->src].n_slots;
    return p->in->running[e->src].slots;
  }
  const ty_sched_placement *pl = &p->out->placements[e->src - nr];
  *out_n = pl->n_slots;
  return pl->slots;
}

/* The job's id when e's time is only an assumption (no time limit), else 0. */
static uint64_t ev_unlimited(const ty__pass *p, const end_ev *e) {
  size_t nr = p->in->n_running;
  if (e->src < nr) {
    const ty_sched_running *rj = &p->in->running[e->src];
    return !rj->time_limit_s && !rj->ending && !p->victim[e->src] ? rj->id : 0;
  }
  const ty_sched_placement *pl = &p->out->placements[e->src - nr];
  return pl->time_limit_s ? 0 : pl->job_id;
}

/* A binary min-heap by end time: the reservation usually needs only the
 * first few ends of thousands, so heapify (O(R)) and pop beats sorting. */
static void sift_down(end_ev *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && h[l].t < h[m].t) m = l;
    if (r < n && h[r].t < h[m].t) m = r;
    if (m == i) return;
    end_ev tmp = h[i];
    h[i] = h[m];
    h[m] = tmp;
    i = m;
  }
}

static end_ev heap_pop(end_ev *h, size_t *n) {
  end_ev top = h[0];
  h[0] = h[--*n];
  sift_down(h, *n, 0);
  return top;
}

static size_t collect_ends(const ty__pass *p, end_ev *ev) {
  size_t n = 0;
  for (size_t r = 0; r < p->in->n_running; r++)
    ev[n++] = (end_ev){ty__running_end(p, r), r};
  for (size_t k = 0; k < p->out->n_placements; k++) {
    const ty_sched_placement *pl = &p->out->placements[k];
    uint32_t t = pl->time_limit_s ? pl->time_limit_s : p->cfg.unknown_runtime_s;
    ev[n++] = (end_ev){p->now + (int64_t)t * 1000, p->in->n_running + k};
  }
  return n;
}

/* Gathers the end events, heapified, from the arena (the caller releases
 * them). NULL on ENOMEM. */
static end_ev *ends_heap(ty__pass *p, size_t *out_n) {
  size_t cap = p->in->n_running + p->out->n_placements;
  end_ev *ev = ty__arena_alloc(&p->arena, (cap ? cap : 1) * sizeof(*ev));
  if (!ev) return NULL;
  *out_n = collect_ends(p, ev);
  for (size_t i = *out_n / 2; i-- > 0;)
    sift_down(ev, *out_n, i);
  return ev;
}

static bool usable(const ty__pass *p, uint32_t i) {
  return p->idx.ok[i] && !p->claimed[i];
}

/* Whether r, on node i, holds n (a whole need: only all of the node). */
static bool fits(const ty__pass *p, size_t i, const ty__res *r, const ty__need *n) {
  return ty__fits_on(&p->in->nodes[i], r, n);
}

/* What node i, offering r, adds to the count of nodes that hold n: its
 * worth (ty__worth: 0 for a node n's filter excludes) when it fits. */
static uint64_t gain(const ty__pass *p, uint32_t i, const ty__res *r, const ty__need *n) {
  return usable(p, i) && fits(p, i, r, n) ? ty__worth(n, i, p->in->n_nodes) : 0;
}

/* Node i in the reservation's timeline: p->work once an end touched it
 * (work_touch copies it from the index then), else the index's free.
 * Ends touch a few nodes, so the other nodes are never copied. */
static bool work_has(const ty__pass *p, uint32_t i) {
  return (p->work_set[i >> 6] >> (i & 63)) & 1;
}

static const ty__res *work_of(const ty__pass *p, uint32_t i) {
  return work_has(p, i) ? &p->work[i] : &p->idx.free[i];
}

static ty__res *work_touch(ty__pass *p, uint32_t i) {
  if (!work_has(p, i)) {
    p->work_set[i >> 6] |= UINT64_C(1) << (i & 63);
    p->work[i] = p->idx.free[i];
  }
  return &p->work[i];
}

/* Caps node i for the reserved job: its slot there is held. */
static void cap_node(ty__pass *p, uint32_t i, const ty__need *n) {
  const ty__res *w = work_of(p, i);
  ty__res t = ty__take(&p->in->nodes[i], n, w->gpus);
  p->idx.cap[p->idx.n_cap++] = (ty__cap){
      .node = i, .spare = {w->cpus - t.cpus, w->gpus & ~t.gpus, w->mem - t.mem}, .held = t};
  p->idx.capped[i >> 6] |= UINT64_C(1) << (i & 63);
}

static int cmp_cap(const void *a, const void *b) {
  uint32_t x = ((const ty__cap *)a)->node, y = ((const ty__cap *)b)->node;
  return x < y ? -1 : x > y;
}

/* Caps the first `want` nodes that fit in the timeline: a filtered job's
 * required nodes first, then nodes it may use. Once per pass (try_job
 * reserves only while no reservation exists). */
static int commit_reservation(ty__pass *p, const ty_sched_job *j, const ty__need *n, uint32_t want,
                              int64_t t) {
  size_t nn = p->in->n_nodes;
  p->idx.cap = malloc((want ? want : 1) * sizeof(*p->idx.cap));
  p->idx.capped = calloc(nn / 64 + 1, sizeof(*p->idx.capped));
  if (!p->idx.cap || !p->idx.capped) return TY_ENOMEM;
  uint32_t got = 0;
  for (uint32_t k = 0; n->filter && k < n->filter->n_req && got < want; k++) {
    uint32_t i = n->filter->req[k];
    if (!gain(p, i, work_of(p, i), n)) continue;
    cap_node(p, i, n);
    got++;
  }
  for (uint32_t i = 0; i < nn && got < want; i++) {
    if (!gain(p, i, work_of(p, i), n) || (n->filter && n->filter->mark[i] == 2)) continue;
    cap_node(p, i, n);
    got++;
  }
  qsort(p->idx.cap, p->idx.n_cap, sizeof(*p->idx.cap), cmp_cap);
  p->resv = true;
  p->resv_job = j->id;
  p->resv_t = t;
  uint32_t limit = j->time_limit_s;
  for (size_t k = 0; !limit && k < p->in->n_jobs; k++)
    if (&p->in->jobs[k] == j && p->qi[k] >= 0) limit = p->in->queues[p->qi[k]].default_time_s;
  p->resv_unlimited = limit == 0;
  p->resv_end = t + (int64_t)(limit ? limit : p->cfg.unknown_runtime_s) * 1000;
  return 0;
}

/* The earliest end after which `goal` worth of usable nodes hold n, in
 * *out_t (now when they already do); false when no end frees enough.
 * `fit`: the worth that holds n now; *out_assumed: a job without a time
 * limit whose assumed end it waited for (the last), else 0. Leaves the
 * timeline in p->work/p->work_set for commit_reservation. */
static bool first_fit_end(ty__pass *p, const ty__need *n, uint64_t fit, uint64_t goal, end_ev *ev,
                          size_t ne, int64_t *out_t, uint64_t *out_assumed) {
  size_t nn = p->in->n_nodes;
  *out_t = p->now;
  *out_assumed = 0;
  while (ne > 0 && fit < goal) {
    end_ev e = heap_pop(ev, &ne);
    if (ev_unlimited(p, &e)) *out_assumed = ev_unlimited(p, &e);
    uint32_t ns;
    const ty_sched_slot *sl = ev_slots(p, &e, &ns);
    for (uint32_t s = 0; s < ns; s++) {
      uint32_t i = sl[s].node;
      if (i >= nn || !usable(p, i)) continue;
      ty__res *w = work_touch(p, i);
      uint64_t before = gain(p, i, w, n);
      res_add(w, &sl[s]);
      if (!before) fit += gain(p, i, w, n);
    }
    *out_t = e.t;
  }
  return fit >= goal;
}

/* The worth of the usable nodes that hold n now: for a need without a
 * filter (worth 1 each) the caller's count when it has one, which is the
 * same sum (ty__idx_count_fitting reads the same free resources, and a
 * claimed node, zeroed, holds nothing), so 10,000 nodes are not read
 * again. */
static uint64_t fitting_now(const ty__pass *p, const ty__need *n, uint64_t have) {
  if (have != UINT64_MAX && !n->filter) return have;
  uint64_t fit = 0;
  for (size_t i = 0; i < p->in->n_nodes; i++)
    fit += gain(p, (uint32_t)i, &p->idx.free[i], n);
  return fit;
}

bool ty__reserve(ty__pass *p, const ty_sched_job *j, const ty__need *n, uint32_t want,
                 uint64_t have, bool commit, int64_t *out_t) {
  size_t nn = p->in->n_nodes, ne = 0;
  if (ensure_work(p) != 0) return false;
  size_t mark = ty__arena_mark(&p->arena);
  p->work_set = ty__arena_zalloc(&p->arena, (nn / 64 + 1) * sizeof(*p->work_set));
  end_ev *ev = p->work_set ? ends_heap(p, &ne) : NULL;
  int64_t t;
  uint64_t assumed;
  bool ok = ev && first_fit_end(p, n, fitting_now(p, n, have), ty__goal(n, want, nn), ev, ne, &t,
                                &assumed);
  if (ok) *out_t = t;
  if (ok && commit && commit_reservation(p, j, n, want, t) != 0) ok = false;
  if (ok && commit) p->resv_assumed = assumed;
  ty__arena_release(&p->arena, mark);
  p->work_set = NULL;
  return ok;
}

/* ---- estimates ------------------------------------------------------------------- */

/* What node i offers job ji at time t when ji runs for dur_ms: everything
 * free, less the reserved job's slot when the two would overlap in time. */
static ty__res offer(const ty__pass *p, uint32_t i, bool holder, int64_t t, int64_t dur_ms) {
  ty__res r = p->work[i];
  const ty__cap *c = ty__idx_cap(&p->idx, i);
  bool overlaps = p->resv && !holder && t + dur_ms > p->resv_t && t < p->resv_end;
  if (!c || !overlaps) return r;
  r.cpus = r.cpus > c->held.cpus ? r.cpus - c->held.cpus : 0;
  r.gpus &= ~c->held.gpus;
  r.mem = r.mem > c->held.mem ? r.mem - c->held.mem : 0;
  return r;
}

static uint64_t fitting_at(const ty__pass *p, const ty__need *n, bool holder, int64_t t,
                           int64_t dur_ms) {
  uint64_t fit = 0;
  for (uint32_t i = 0; i < p->in->n_nodes; i++) {
    if (!usable(p, i)) continue;
    ty__res r = offer(p, i, holder, t, dur_ms);
    fit += gain(p, i, &r, n);
  }
  return fit;
}

bool ty__estimate(ty__pass *p, size_t ji, int64_t *out_t, uint64_t *out_unlimited) {
  const ty_sched_job *j = &p->in->jobs[ji];
  ty__need n;
  if (ty__job_need(p, ji, &n) != 0) return false;
  uint32_t want = ty__job_want(j), limit = j->time_limit_s;
  uint64_t goal = ty__goal(&n, want, p->in->n_nodes);
  if (!limit && p->qi[ji] >= 0) limit = p->in->queues[p->qi[ji]].default_time_s;
  int64_t dur = (int64_t)(limit ? limit : p->cfg.unknown_runtime_s) * 1000;
  bool holder = p->resv && p->resv_job == j->id;
  size_t ne = 0;
  if (ensure_work(p) != 0) return false;
  size_t mark = ty__arena_mark(&p->arena);
  end_ev *ev = ends_heap(p, &ne);
  if (!ev) return false;
  for (size_t i = 0; i < p->in->n_nodes; i++)
    p->work[i] = p->idx.free[i];
  /* The reserved job's end is one more event: after it, its nodes are free
   * again (offer() stops subtracting its slot). */
  bool resv_open = p->resv && !holder;
  int64_t t = p->now;
  uint64_t unlimited = 0;
  bool found = false;
  for (;;) {
    if (fitting_at(p, &n, holder, t, dur) >= goal) {
      found = true;
      break;
    }
    int64_t next = ne > 0 ? ev[0].t : INT64_MAX;
    if (resv_open && p->resv_end <= next) {
      t = p->resv_end > t ? p->resv_end : t;
      if (p->resv_unlimited) unlimited = p->resv_job;
      resv_open = false;
      continue;
    }
    if (ne == 0) break;
    end_ev e = heap_pop(ev, &ne);
    uint32_t ns;
    const ty_sched_slot *sl = ev_slots(p, &e, &ns);
    for (uint32_t s = 0; s < ns; s++)
      if (sl[s].node < p->in->n_nodes) res_add(&p->work[sl[s].node], &sl[s]);
    if (ev_unlimited(p, &e)) unlimited = ev_unlimited(p, &e);
    t = e.t > t ? e.t : t;
  }
  ty__arena_release(&p->arena, mark);
  *out_t = t;
  *out_unlimited = unlimited;
  return found;
}

/* ---- preemption ------------------------------------------------------------------- */

typedef struct cand {
  size_t r;
  int64_t lost;
  int32_t priority;
  int64_t start;
} cand;

static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->lost != y->lost) return x->lost < y->lost ? -1 : 1;
  if (x->priority != y->priority) return x->priority < y->priority ? -1 : 1;
  if (x->start != y->start) return x->start > y->start ? -1 : 1;
  return x->r < y->r ? -1 : x->r > y->r;
}

static int32_t tier_of(const ty__pass *p, int q) {
  return q >= 0 ? p->in->queues[q].tier : 0;
}

/* Adds (sign > 0) or removes a running job's resources in p->work and
 * keeps *fit, the count of usable nodes that hold n (gain), current. */
static void apply(ty__pass *p, size_t r, int sign, const ty__need *n, uint64_t *fit) {
  const ty_sched_running *rj = &p->in->running[r];
  for (uint32_t s = 0; s < rj->n_slots; s++) {
    uint32_t i = rj->slots[s].node;
    if (i >= p->in->n_nodes || !usable(p, i)) continue;
    uint64_t before = gain(p, i, &p->work[i], n);
    if (sign > 0)
      res_add(&p->work[i], &rj->slots[s]);
    else
      res_sub(&p->work[i], &rj->slots[s]);
    uint64_t after = gain(p, i, &p->work[i], n);
    *fit += after - before;
  }
}

static size_t candidates(ty__pass *p, size_t job, cand *c) {
  int32_t tier = tier_of(p, p->qi[job]);
  size_t k = 0;
  for (size_t r = 0; r < p->in->n_running; r++) {
    const ty_sched_running *rj = &p->in->running[r];
    int q = p->rqi[r];
    if (rj->ending || p->victim[r] || q < 0 || !p->in->queues[q].preemptible) continue;
    if (tier_of(p, q) >= tier) continue;
    if (p->now - rj->start_time_ms < (int64_t)p->cfg.min_run_s * 1000) continue;
    int64_t since =
        rj->last_checkpoint_ms > rj->start_time_ms ? rj->last_checkpoint_ms : rj->start_time_ms;
    c[k++] = (cand){r, p->now - since, rj->priority, rj->start_time_ms};
  }
  qsort(c, k, sizeof(*c), cand_cmp);
  return k;
}

static void claim_node(ty__pass *p, uint32_t i) {
  p->claimed[i] = true;
  ty__res zero = {0, 0, 0};
  ty__idx_set(&p->idx, i, &zero);
}

/* Claims `want` fitting nodes of p->work for the preemptor (a filtered
 * one's required nodes first, then nodes it may use), nodes that hold
 * victims first, so later jobs of this pass leave them alone. */
static void claim(ty__pass *p, const ty__need *n, uint32_t want) {
  uint32_t got = 0;
  for (uint32_t k = 0; n->filter && k < n->filter->n_req && got < want; k++) {
    uint32_t i = n->filter->req[k];
    if (!gain(p, i, &p->work[i], n)) continue;
    claim_node(p, i);
    got++;
  }
  for (int round = 0; round < 2 && got < want; round++)
    for (uint32_t i = 0; i < p->in->n_nodes && got < want; i++) {
      if (!gain(p, i, &p->work[i], n) || (n->filter && n->filter->mark[i] == 2)) continue;
      bool busy = p->work[i].cpus != p->idx.free[i].cpus || p->work[i].gpus != p->idx.free[i].gpus;
      if ((round == 0) != busy) continue;
      claim_node(p, i);
      got++;
    }
}

bool ty__preempt(ty__pass *p, size_t job, const ty__need *n, uint32_t want) {
  if (p->preempt_tries >= PREEMPT_TRIES_PER_PASS || ensure_work(p) != 0) return false;
  int32_t tier = tier_of(p, p->qi[job]);
  bool any = false;
  for (size_t q = 0; q < p->in->n_queues && !any; q++)
    any = p->in->queues[q].preemptible && p->in->queues[q].tier < tier;
  if (!any) return false;
  p->preempt_tries++;
  cand *c = malloc((p->in->n_running ? p->in->n_running : 1) * sizeof(*c));
  if (!c) return false;
  uint64_t fit = 0, goal = ty__goal(n, want, p->in->n_nodes);
  for (uint32_t i = 0; i < p->in->n_nodes; i++) {
    p->work[i] = p->idx.free[i];
    fit += gain(p, i, &p->work[i], n);
  }
  for (size_t r = 0; r < p->in->n_running; r++)
    if (p->in->running[r].ending) apply(p, r, +1, n, &fit);
  size_t nc = fit >= goal ? 0 : candidates(p, job, c), used = 0;
  for (; used < nc && fit < goal; used++)
    apply(p, c[used].r, +1, n, &fit);
  if (fit < goal) {
    free(c);
    return false;
  }
  /* Drop victims that turned out not to be needed, latest first. */
  for (size_t k = used; k-- > 0;) {
    apply(p, c[k].r, -1, n, &fit);
    if (fit >= goal)
      c[k].r = SIZE_MAX;
    else
      apply(p, c[k].r, +1, n, &fit);
  }
  for (size_t k = 0; k < used; k++) {
    if (c[k].r == SIZE_MAX) continue;
    p->victim[c[k].r] = true;
    p->out->preemptions[p->out->n_preemptions++] =
        (ty_sched_preemption){p->in->running[c[k].r].id, p->in->jobs[job].id};
  }
  claim(p, n, want);
  free(c);
  return true;
}

/* ---- when preemption becomes possible ---------------------------------------------- */

/* A running job's release in the preemption timeline: when it ends by its
 * limit, or, as a candidate, when it has run min_run_s (the earlier). */
typedef struct release {
  int64_t t;
  size_t r;
  bool by_preemption;
} release;

static int release_cmp(const void *a, const void *b) {
  const release *x = a, *y = b;
  if (x->t != y->t) return x->t < y->t ? -1 : 1;
  return x->r < y->r ? -1 : x->r > y->r;
}

static release release_of(const ty__pass *p, size_t r, int32_t tier) {
  const ty_sched_running *rj = &p->in->running[r];
  int q = p->rqi[r];
  release e = {ty__running_end(p, r), r, false};
  bool cand = !rj->ending && q >= 0 && p->in->queues[q].preemptible && tier_of(p, q) < tier;
  int64_t ripe = rj->start_time_ms + (int64_t)p->cfg.min_run_s * 1000;
  if (ripe < p->now) ripe = p->now;
  if (cand && ripe < e.t) e = (release){ripe, r, true};
  return e;
}

bool ty__preempt_estimate(ty__pass *p, size_t ji, int64_t *out_t, uint64_t *out_ripe) {
  ty__need n;
  if (!p->cfg.preemption || p->cfg.fifo || ty__job_need(p, ji, &n) != 0 || ensure_work(p) != 0)
    return false;
  int32_t tier = tier_of(p, p->qi[ji]);
  uint64_t fit = 0, goal = ty__goal(&n, ty__job_want(&p->in->jobs[ji]), p->in->n_nodes);
  release *ev = malloc((p->in->n_running ? p->in->n_running : 1) * sizeof(*ev));
  if (!ev) return false;
  size_t ne = 0;
  for (size_t r = 0; r < p->in->n_running; r++)
    if (!p->victim[r]) ev[ne++] = release_of(p, r, tier);
  qsort(ev, ne, sizeof(*ev), release_cmp);
  for (uint32_t i = 0; i < p->in->n_nodes; i++) {
    p->work[i] = p->idx.free[i];
    fit += gain(p, i, &p->work[i], &n);
  }
  bool assumed = false;
  *out_ripe = 0;
  for (size_t k = 0; k < ne && fit < goal; k++) {
    const ty_sched_running *rj = &p->in->running[ev[k].r];
    apply(p, ev[k].r, +1, &n, &fit);
    if (ev[k].by_preemption) *out_ripe = rj->id;
    assumed |= !ev[k].by_preemption && !rj->ending && !rj->time_limit_s;
    *out_t = ev[k].t;
  }
  bool ok = fit >= goal && *out_ripe && !assumed;
  free(ev);
  return ok;
}
