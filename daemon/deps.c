/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Job dependencies and the arrays they may name (sbatch's --dependency).
 *
 * A job's conditions (afterok:12, afterany:7_3, after:40, singleton) are
 * resolved at submit: each names a job, an array (its id without a task:
 * every element) or an element, which must exist. A condition's result is
 * WAIT, MET or NEVER, final once not WAIT but for requeues: a requeued
 * job's conditions are resolved anew (those it found met stay met), and
 * the NEVER of a job still pending on a requeued target waits again
 * (ty__deps_requeued). The job waits while its
 * conditions together (all of them, or any one with '?') are WAIT; when
 * they can never hold it keeps the reason DependencyNeverSatisfied and is
 * cancelled if its policy (or traind's --kill-on-invalid-dep) says so.
 *
 * Nothing here walks history or the live set per event (the requeues
 * before a pass search it once, in that pass): each target keeps
 * the list of jobs waiting on it (ctl->waiters). A target that starts or
 * ends queues its waiters (ty__deps_target_changed, from the transition
 * itself), as does any other change of its state (ty__deps_target_moved:
 * a requeue, so their reasons show its state now), and the next
 * scheduling pass rechecks exactly those (ty__deps_update) before it
 * builds its input, so a cascade of cancellations runs as a loop over a
 * queue, not as recursion inside a transition. A target no longer in
 * memory is read back from the store by id. Arrays with elements left
 * keep their counts in ctl->arrays, updated by their elements'
 * transitions; an array whose elements all ended is counted in the store
 * once its waiters were rechecked (the store may not hold the last end
 * yet when they are). Singleton, the one condition about other jobs by
 * name, is rechecked on each pass for the (few) jobs that carry it,
 * against the live set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon_internal.h"

/* ---- arrays ------------------------------------------------------------------------ */

static void array_fill_span(ty__array *a, const ty_array_spec *s) {
  uint32_t lo = UINT32_MAX, hi = 0;
  for (size_t i = 0; i < s->n; i++) {
    const ty_array_range *r = &s->ranges[i];
    uint32_t last = r->first + (r->last - r->first) / r->step * r->step;
    if (r->first < lo) lo = r->first;
    if (last > hi) hi = last;
  }
  a->min = s->n ? lo : 0;
  a->max = hi;
  a->step = s->n == 1 ? s->ranges[0].step : 1;
}

ty__array *ty__array_get(ty_controller *ctl, uint64_t id) {
  ty_id_node *n = ty_idmap_get(&ctl->arrays, id);
  return n ? container_of(n, ty__array, node) : NULL;
}

ty__array *ty__array_note(ty_controller *ctl, uint64_t id, const ty_array_spec *spec,
                          uint32_t total) {
  ty__array *a = ty__array_get(ctl, id);
  if (a) return a;
  a = ty_xcalloc(1, sizeof(*a));
  a->id = id;
  if (total) {
    a->n.total = total; /* a new array: nothing happened to it yet */
  } else if (ty_store_array_counts(ctl->store, id, &a->n) != 0) {
    ty_warn("array %llu: cannot count its elements in the store: %s", (unsigned long long)id,
            ty_store_errmsg(ctl->store));
  }
  array_fill_span(a, spec);
  ty__idmap_xput(&ctl->arrays, &a->node, id);
  return a;
}

void ty__array_span(ty_controller *ctl, const ty_job *j, uint32_t *count, uint32_t *min,
                    uint32_t *max, uint32_t *step) {
  ty__array *a = ty__array_note(ctl, j->array_id, &j->spec.array, 0);
  *count = a->n.total, *min = a->min, *max = a->max, *step = a->step;
}

/* ---- conditions ----------------------------------------------------------------------- */

static uint8_t eval_job(int kind, int state, bool started) {
  bool ended = ty_job_state_terminal(state);
  switch (kind) {
  case TY_DEP_AFTER:
    return started || ended ? TY__DEP_MET : TY__DEP_WAIT;
  case TY_DEP_AFTERANY:
    return ended ? TY__DEP_MET : TY__DEP_WAIT;
  case TY_DEP_AFTEROK:
    return !ended ? TY__DEP_WAIT : state == TY_JOB_COMPLETED ? TY__DEP_MET : TY__DEP_NEVER;
  case TY_DEP_AFTERNOTOK:
    return !ended ? TY__DEP_WAIT : state != TY_JOB_COMPLETED ? TY__DEP_MET : TY__DEP_NEVER;
  default:
    return TY__DEP_WAIT;
  }
}

static uint8_t eval_array(int kind, const ty_array_counts *c) {
  bool all_ended = c->ended >= c->total, any_failed = c->ended > c->completed;
  switch (kind) {
  case TY_DEP_AFTER:
    return c->started >= c->total ? TY__DEP_MET : TY__DEP_WAIT;
  case TY_DEP_AFTERANY:
    return all_ended ? TY__DEP_MET : TY__DEP_WAIT;
  case TY_DEP_AFTEROK:
    return any_failed ? TY__DEP_NEVER : all_ended ? TY__DEP_MET : TY__DEP_WAIT;
  case TY_DEP_AFTERNOTOK:
    return !all_ended ? TY__DEP_WAIT : any_failed ? TY__DEP_MET : TY__DEP_NEVER;
  default:
    return TY__DEP_WAIT;
  }
}

/* Whether pending o's own singleton condition is met: it may start any
 * pass now. */
static bool singleton_met(const ty_job *o) {
  for (size_t i = 0; o->deps && i < o->spec.n_deps; i++)
    if (o->spec.deps[i].kind == TY_DEP_SINGLETON && o->deps[i].result == TY__DEP_MET) return true;
  return false;
}

/* Whether o, not ended, is another job of j's user and name. */
static bool same_name(const ty_job *j, const ty_job *o) {
  return o != j && !ty_job_state_terminal(o->state) && o->committed &&
         !strcmp(o->spec.user, j->spec.user) && !strcmp(o->spec.name, j->spec.name);
}

/* The job of j's user and name that j's singleton waits for (live set
 * only: an ended job cannot hold it back), or NULL: one that runs (for a
 * j requeued after later ones went ahead too), or an earlier one still
 * pending (first come, first run). A later pending job never holds j: it
 * waits for j in turn (ty__deps_pending_again takes back its met
 * singleton), so the two cannot wait on each other. */
static const ty_job *singleton_holder(const ty_controller *ctl, const ty_job *j) {
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    const ty_job *o = ctl->jobs[i];
    if (same_name(j, o) && (o->id < j->id || o->state != TY_JOB_PENDING)) return o;
  }
  return NULL;
}

/* Array id's counts: its record in memory, or the store's once the array
 * has ended and left memory (so a reason reads the same either way). */
static ty_array_counts array_counts(ty_controller *ctl, uint64_t id) {
  const ty__array *a = ty__array_get(ctl, id);
  ty_array_counts c = {0};
  if (a)
    c = a->n;
  else
    ty_store_array_counts(ctl->store, id, &c);
  return c;
}

/* Whether t has begun its current run (`after:`): a requeued job, pending
 * again, keeps its last start_ms but has not begun this one. */
static bool begun(const ty_job *t) {
  return t->state != TY_JOB_PENDING && t->start_ms > 0;
}

/* Evaluates condition i of j (only while it waits: results are final). */
static void eval_dep(ty_controller *ctl, ty_job *j, size_t i) {
  ty__dep *d = &j->deps[i];
  int kind = j->spec.deps[i].kind;
  if (d->result != TY__DEP_WAIT) return;
  if (kind == TY_DEP_SINGLETON) {
    const ty_job *h = singleton_holder(ctl, j);
    d->result = h ? TY__DEP_WAIT : TY__DEP_MET;
    d->holder = h ? h->id : 0, d->seen = h ? h->state : 0;
    return;
  }
  if (d->is_array) {
    ty_array_counts c = array_counts(ctl, d->target);
    d->result = c.total ? eval_array(kind, &c) : TY__DEP_NEVER;
    return;
  }
  ty_job *t = ty__job_get(ctl, d->target);
  d->seen = t ? t->state : 0;
  d->result = t ? eval_job(kind, t->state, begun(t)) : TY__DEP_NEVER;
}

/* "afterok:12(FAILED)", "singleton(job 9 RUNNING)", an array's
 * "afterany:12(3 of 10 ended)" for condition i, into b, after a ',' (all
 * must hold) or a '?' (any one), as squeue's %E joins them. */
static void describe_dep(ty_controller *ctl, const ty_job *j, size_t i, ty_buf *b) {
  const ty_dep *sd = &j->spec.deps[i];
  const ty__dep *d = &j->deps[i];
  const char *sep = b->len ? (j->spec.deps_any ? "?" : ",") : "";
  ty_buf_printf(b, "%s%s", sep, ty_dep_kind_name(sd->kind));
  if (sd->kind == TY_DEP_SINGLETON && d->holder)
    ty_buf_printf(b, "(job %llu %s)", (unsigned long long)d->holder, ty_job_state_name(d->seen));
  if (sd->kind == TY_DEP_SINGLETON) return;
  char ref[48];
  ty_job_ref_format(&sd->job, ref, sizeof(ref));
  ty_buf_printf(b, ":%s", ref);
  if (!j->deps[i].is_array && j->deps[i].seen)
    ty_buf_printf(b, "(%s)", ty_job_state_name(j->deps[i].seen));
  ty_array_counts c = {0};
  if (j->deps[i].is_array) c = array_counts(ctl, j->deps[i].target);
  if (c.total) ty_buf_printf(b, "(%u of %u ended)", c.ended < c.total ? c.ended : c.total, c.total);
}

/* j's overall result and its reason, from its conditions. */
static void combine(ty_controller *ctl, ty_job *j) {
  size_t met = 0, never = 0;
  for (size_t i = 0; i < j->spec.n_deps; i++) {
    met += j->deps[i].result == TY__DEP_MET;
    never += j->deps[i].result == TY__DEP_NEVER;
  }
  size_t n = j->spec.n_deps;
  uint8_t r = j->spec.deps_any ? (met          ? TY__DEP_MET
                                  : never == n ? TY__DEP_NEVER
                                               : TY__DEP_WAIT)
                               : (never      ? TY__DEP_NEVER
                                  : met == n ? TY__DEP_MET
                                             : TY__DEP_WAIT);
  ty_buf b;
  ty_buf_init(&b);
  for (size_t i = 0; r != TY__DEP_MET && i < n; i++)
    if (j->deps[i].result == (r == TY__DEP_NEVER ? TY__DEP_NEVER : TY__DEP_WAIT))
      describe_dep(ctl, j, i, &b);
  ty_buf_append(&b, "", 1);
  char *reason = NULL;
  if (r != TY__DEP_MET) {
    size_t len = b.len + 48;
    reason = ty_xmalloc(len);
    snprintf(reason, len, "%s: %s", r == TY__DEP_NEVER ? "DependencyNeverSatisfied" : "Dependency",
             (char *)b.data);
  }
  ty_buf_close(&b);
  bool changed = r != j->dep || (reason && (!j->dep_reason || strcmp(reason, j->dep_reason)));
  j->dep = r;
  free(j->dep_reason);
  j->dep_reason = reason;
  if (changed) ty__job_dirty(ctl, j);
}

/* ---- resolving at submit and load --------------------------------------------------- */

/* Whether id names an array (its elements), in memory or in the store. */
static bool is_array_id(ty_controller *ctl, uint64_t id) {
  if (id == 0) return false; /* every plain job's array_id */
  if (ty__array_get(ctl, id)) return true;
  ty_job *t = ty__job_find(ctl, id);
  if (t) return t->array_id == id;
  ty_array_counts c;
  return ty_store_array_counts(ctl->store, id, &c) == 0 && c.total > 0;
}

static int resolve_one(ty_controller *ctl, ty_job *j, size_t i, char *err, size_t len) {
  const ty_dep *sd = &j->spec.deps[i];
  ty__dep *d = &j->deps[i];
  char ref[48];
  ty_job_ref_format(&sd->job, ref, sizeof(ref));
  if (sd->kind < 1 || sd->kind > TY_DEP_KIND_MAX)
    return ty_errf(err, len, TY_EINVAL, "job.dependencies[%zu].kind: %d is not a dependency kind",
                   i, (int)sd->kind);
  if (sd->kind == TY_DEP_SINGLETON) return 0;
  if (!sd->job.has_task && is_array_id(ctl, sd->job.id)) {
    *d = (ty__dep){.target = sd->job.id, .is_array = true};
  } else {
    ty_job *t = ty__job_ref(ctl, &sd->job);
    if (!t || t->id >= j->id)
      return ty_errf(err, len, TY_ENOTFOUND, "job.dependencies[%zu]: job %s not found", i, ref);
    *d = (ty__dep){.target = t->id};
  }
  if (d->target == j->id || (d->is_array && d->target == j->array_id))
    return ty_errf(err, len, TY_EINVAL, "job.dependencies[%zu]: job %s cannot wait for itself", i,
                   ref);
  return 0;
}

static ty__waiters *waiters_of(ty_controller *ctl, uint64_t target) {
  ty_id_node *n = ty_idmap_get(&ctl->waiters, target);
  return n ? container_of(n, ty__waiters, node) : NULL;
}

static void watch(ty_controller *ctl, uint64_t target, uint64_t waiter) {
  ty__waiters *w = waiters_of(ctl, target);
  if (!w) {
    w = ty_xcalloc(1, sizeof(*w));
    ty__idmap_xput(&ctl->waiters, &w->node, target);
  }
  if (w->n && w->ids[w->n - 1] == waiter) return;
  if (w->n == w->cap) {
    w->cap = w->cap ? w->cap * 2 : 4;
    w->ids = ty_xrealloc(w->ids, w->cap * sizeof(*w->ids));
  }
  w->ids[w->n++] = waiter;
}

static void recheck(ty_controller *ctl, uint64_t id) {
  if (ctl->n_dep_changed == ctl->cap_dep_changed) {
    ctl->cap_dep_changed = ctl->cap_dep_changed ? ctl->cap_dep_changed * 2 : 64;
    ctl->dep_changed = ty_xrealloc(ctl->dep_changed, ctl->cap_dep_changed * sizeof(uint64_t));
  }
  ctl->dep_changed[ctl->n_dep_changed++] = id;
  ty__sched_request(ctl);
}

int ty__deps_resolve(ty_controller *ctl, ty_job *j, bool loading, char *err, size_t len) {
  j->dep = TY__DEP_MET;
  if (j->spec.n_deps == 0) return 0;
  if (j->spec.n_deps > TY_DEP_MAX)
    return ty_errf(err, len, TY_EINVAL, "job.dependencies: %zu conditions, at most %d",
                   j->spec.n_deps, TY_DEP_MAX);
  free(j->deps);
  j->deps = ty_xcalloc(j->spec.n_deps, sizeof(*j->deps));
  for (size_t i = 0; i < j->spec.n_deps; i++) {
    int rc = resolve_one(ctl, j, i, err, len);
    if (rc != 0 && !loading) return rc;
    if (rc != 0) j->deps[i].result = TY__DEP_NEVER; /* its target was pruned meanwhile */
  }
  for (size_t i = 0; i < j->spec.n_deps; i++)
    eval_dep(ctl, j, i);
  j->dep = TY__DEP_WAIT;
  combine(ctl, j);
  return 0;
}

void ty__deps_watch(ty_controller *ctl, ty_job *j) {
  for (size_t i = 0; i < j->spec.n_deps; i++)
    if (j->deps[i].result == TY__DEP_WAIT && j->deps[i].target)
      watch(ctl, j->deps[i].target, j->id);
  if (j->spec.n_deps) recheck(ctl, j->id); /* the first pass applies NEVER's policy */
}

/* ---- targets that changed ------------------------------------------------------------- */

static void wake(ty_controller *ctl, uint64_t target, bool final) {
  ty__waiters *w = waiters_of(ctl, target);
  if (!w) return;
  for (size_t i = 0; i < w->n; i++)
    recheck(ctl, w->ids[i]);
  if (!final) return;
  ty_idmap_del(&ctl->waiters, target);
  free(w->ids);
  free(w);
}

void ty__deps_forget(ty_controller *ctl, uint64_t id) {
  wake(ctl, id, true);
}

void ty__deps_target_changed(ty_controller *ctl, ty_job *j, bool left_pending) {
  bool ended = ty_job_state_terminal(j->state);
  /* An array's first element has the array's id: the waiters on that id
   * are the element's and the whole array's, so its own end must not drop
   * the list (the array's last end does, below). */
  wake(ctl, j->id, ended && j->array_id != j->id);
  if (!j->array_id) return;
  ty__array *a = ty__array_note(ctl, j->array_id, &j->spec.array, 0);
  if (left_pending) a->n.started++; /* begun this run, or ended unstarted */
  if (ended) a->n.ended++, a->n.completed += j->state == TY_JOB_COMPLETED;
  bool all_ended = a->n.ended >= a->n.total;
  wake(ctl, a->id, all_ended);
  if (!all_ended) return;
  /* Its waiters are rechecked before the next pass, perhaps before this
   * end is committed: from these counts, not the store's (forget_spent). */
  if (ctl->n_spent_arrays == ctl->cap_spent_arrays) {
    ctl->cap_spent_arrays = ctl->cap_spent_arrays ? ctl->cap_spent_arrays * 2 : 8;
    ctl->spent_arrays =
        ty_xrealloc(ctl->spent_arrays, ctl->cap_spent_arrays * sizeof(*ctl->spent_arrays));
  }
  ctl->spent_arrays[ctl->n_spent_arrays++] = a->id;
}

void ty__deps_target_moved(ty_controller *ctl, const ty_job *j, bool pending_again) {
  wake(ctl, j->id, false);
  if (!pending_again || !j->array_id) return;
  ty__array *a = ty__array_note(ctl, j->array_id, &j->spec.array, 0);
  if (a->n.started) a->n.started--; /* its next run has not begun */
}

/* The arrays whose elements all ended, once their waiters were rechecked
 * and their last end is durable: out of memory (an element requeued later
 * counts them from the store). Until then a job that names the array and
 * whose submit was committed after that end (its waiters were woken
 * before it watched) is rechecked from these counts: the store's may
 * still miss the last end, and nothing would wake it again. */
static void forget_spent(ty_controller *ctl) {
  size_t keep = 0;
  for (size_t i = 0; i < ctl->n_spent_arrays; i++) {
    ty__array *a = ty__array_get(ctl, ctl->spent_arrays[i]);
    if (!a || a->n.ended < a->n.total) continue; /* requeued meanwhile */
    if (!a->spent_txn) a->spent_txn = ctl->txn_queued;
    if (ctl->txn_done < a->spent_txn) {
      ctl->spent_arrays[keep++] = a->id;
      continue;
    }
    ty_idmap_del(&ctl->arrays, a->id);
    free(a);
  }
  ctl->n_spent_arrays = keep;
}

static void note_requeued(ty_controller *ctl, uint64_t id) {
  if (ctl->n_dep_requeued == ctl->cap_dep_requeued) {
    ctl->cap_dep_requeued = ctl->cap_dep_requeued ? ctl->cap_dep_requeued * 2 : 16;
    ctl->dep_requeued = ty_xrealloc(ctl->dep_requeued, ctl->cap_dep_requeued * sizeof(uint64_t));
  }
  ctl->dep_requeued[ctl->n_dep_requeued++] = id;
}

void ty__deps_requeued(ty_controller *ctl, ty_job *j, int from) {
  note_requeued(ctl, j->id);
  if (j->array_id) note_requeued(ctl, j->array_id);
  ty__sched_request(ctl);
  if (!j->array_id) return;
  ty__array *a = ty__array_note(ctl, j->array_id, &j->spec.array, 0);
  a->spent_txn = 0; /* live again: spent anew when its last end comes */
  if (a->n.ended) a->n.ended--;
  if (a->n.started) a->n.started--; /* counted by its end: its next run has not begun */
  if (from == TY_JOB_COMPLETED && a->n.completed) a->n.completed--;
}

static bool has_singleton(const ty_job *j) {
  for (size_t i = 0; i < j->spec.n_deps; i++)
    if (j->spec.deps[i].kind == TY_DEP_SINGLETON) return true;
  return false;
}

/* Singleton j is pending again: the later pending jobs of its name whose
 * singleton was met (free to start while j had ended) wait again, now
 * for j, which is older; the next pass evaluates them. */
static void singletons_wait_again(ty_controller *ctl, const ty_job *j) {
  for (size_t k = 0; k < ctl->n_jobs; k++) {
    ty_job *o = ctl->jobs[k];
    if (o->id < j->id || o->state != TY_JOB_PENDING || !same_name(j, o) || !singleton_met(o))
      continue;
    for (size_t i = 0; i < o->spec.n_deps; i++)
      if (o->spec.deps[i].kind == TY_DEP_SINGLETON) o->deps[i].result = TY__DEP_WAIT;
    o->dep = TY__DEP_WAIT;
    combine(ctl, o);
    recheck(ctl, o->id);
  }
}

void ty__deps_pending_again(ty_controller *ctl, ty_job *j) {
  if (has_singleton(j)) singletons_wait_again(ctl, j);
  uint8_t was[TY_DEP_MAX] = {0};
  for (size_t i = 0; j->deps && i < j->spec.n_deps && i < TY_DEP_MAX; i++)
    was[i] = j->deps[i].result;
  bool ran = j->start_ms > 0; /* it started once: all of them were met */
  if (ty__deps_resolve(ctl, j, true, NULL, 0) != 0 || !j->spec.n_deps) return;
  bool kept = false;
  for (size_t i = 0; i < j->spec.n_deps; i++) {
    ty__dep *d = &j->deps[i];
    if (j->spec.deps[i].kind == TY_DEP_SINGLETON || d->result == TY__DEP_MET) continue;
    if (!ran && (i >= TY_DEP_MAX || was[i] != TY__DEP_MET)) continue;
    d->result = TY__DEP_MET; /* its target may have gone from the store since */
    kept = true;
  }
  if (kept) j->dep = TY__DEP_WAIT, combine(ctl, j);
  ty__deps_watch(ctl, j);
}

/* Whether condition i of j, found met, no longer is: an `after:` whose
 * target (in memory) has, after all, not begun, because the start that
 * met it was not stored. Other conditions are met by ends, which stand. */
static bool after_undone(ty_controller *ctl, const ty_job *j, size_t i) {
  const ty__dep *d = &j->deps[i];
  if (j->spec.deps[i].kind != TY_DEP_AFTER || d->result != TY__DEP_MET) return false;
  if (d->is_array) {
    const ty__array *a = ty__array_get(ctl, d->target);
    return a && a->n.started < a->n.total;
  }
  const ty_job *t = ty__job_find(ctl, d->target);
  return t && t->state == TY_JOB_PENDING;
}

void ty__deps_recheck_after(ty_controller *ctl, ty_job *j) {
  if (j->state != TY_JOB_PENDING || !j->deps) return;
  bool undone = false;
  for (size_t i = 0; i < j->spec.n_deps; i++) {
    if (!after_undone(ctl, j, i)) continue;
    j->deps[i].result = TY__DEP_WAIT;
    undone = true;
  }
  if (!undone) return;
  combine(ctl, j);
  recheck(ctl, j->id); /* the next pass evaluates them from the targets' states */
}

void ty__deps_start_undone(ty_controller *ctl, ty_job *j) {
  /* Its array counted it as not started when it went back to PENDING
   * (ty__deps_target_moved). */
  uint64_t targets[2] = {j->id, j->array_id};
  for (int k = 0; k < 2 && targets[k]; k++) {
    ty__waiters *w = waiters_of(ctl, targets[k]);
    for (size_t i = 0; w && i < w->n; i++) {
      ty_job *waiter = ty__job_find(ctl, w->ids[i]);
      if (waiter) ty__deps_recheck_after(ctl, waiter);
    }
  }
}

static int cmp_id(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Pending jobs with a condition found never met on a job or array
 * requeued since the last pass (it, or an element, had failed or been
 * cancelled), not cancelled for it: that condition waits again, for the
 * target's next end, and is evaluated in this pass. Their waiter lists
 * went with the target's end, so the live set is searched, once per pass
 * with requeues however many there were (a whole array's). A condition
 * reopened needlessly (an element's id that is also its array's) is only
 * evaluated again, from its target's state. */
static void reopen_waiters(ty_controller *ctl) {
  size_t n = ctl->n_dep_requeued;
  if (!n) return;
  uint64_t *ids = ctl->dep_requeued;
  qsort(ids, n, sizeof(*ids), cmp_id);
  for (size_t k = 0; k < ctl->n_jobs; k++) {
    ty_job *w = ctl->jobs[k];
    if (w->state != TY_JOB_PENDING || !w->deps) continue;
    bool reopened = false;
    for (size_t i = 0; i < w->spec.n_deps; i++) {
      ty__dep *d = &w->deps[i];
      if (d->result != TY__DEP_NEVER || !bsearch(&d->target, ids, n, sizeof(*ids), cmp_id))
        continue;
      d->result = TY__DEP_WAIT;
      watch(ctl, d->target, w->id);
      reopened = true;
    }
    if (reopened) recheck(ctl, w->id);
  }
  ctl->n_dep_requeued = 0;
}

/* NEVER and the policy says cancel: the job ends here, with the reason. */
static void cancel_invalid(ty_controller *ctl, ty_job *j, ty_txn *t) {
  bool kill = j->spec.on_invalid_dep == TY_DEP_INVALID_KILL ||
              (j->spec.on_invalid_dep == TY_DEP_INVALID_DEFAULT && ctl->cfg.kill_on_invalid_dep);
  if (!kill) return;
  char why[TY_ERR_LEN];
  snprintf(why, sizeof(why), "%.400s; cancelled (kill-on-invalid-dep)", j->dep_reason);
  ty__job_transition(ctl, j, TY_JOB_CANCELLED, why, "controller", t);
}

void ty__deps_update(ty_controller *ctl) {
  ty_txn *t = NULL;
  reopen_waiters(ctl);
  /* Cancelling a job may queue its own waiters: the queue grows while read. */
  for (size_t k = 0; k < ctl->n_dep_changed; k++) {
    ty_job *j = ty__job_find(ctl, ctl->dep_changed[k]);
    /* NEVER already at submit (its target had ended): this first pass
     * applies the policy (ty__deps_watch queued it). */
    if (!j || j->state != TY_JOB_PENDING || j->dep == TY__DEP_MET) continue;
    for (size_t i = 0; i < j->spec.n_deps; i++)
      eval_dep(ctl, j, i);
    combine(ctl, j);
    if (j->dep != TY__DEP_NEVER) continue;
    if (!t) t = ty_txn_create();
    cancel_invalid(ctl, j, t);
  }
  ctl->n_dep_changed = 0;
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    if (j->state != TY_JOB_PENDING || j->dep != TY__DEP_WAIT) continue;
    bool single = false;
    for (size_t d = 0; d < j->spec.n_deps && !single; d++)
      single = j->spec.deps[d].kind == TY_DEP_SINGLETON && j->deps[d].result == TY__DEP_WAIT;
    if (!single) continue;
    for (size_t d = 0; d < j->spec.n_deps; d++)
      eval_dep(ctl, j, d);
    combine(ctl, j);
  }
  forget_spent(ctl);
  if (t && ty_txn_len(t))
    ty__commit(ctl, t, NULL, NULL);
  else
    ty_txn_destroy(t);
}

void ty__deps_destroy(ty_controller *ctl) {
  for (ty_id_node *n; (n = ty_idmap_pop(&ctl->waiters));) {
    ty__waiters *w = container_of(n, ty__waiters, node);
    free(w->ids);
    free(w);
  }
  ty_idmap_close(&ctl->waiters);
  for (ty_id_node *n; (n = ty_idmap_pop(&ctl->arrays));)
    free(container_of(n, ty__array, node));
  ty_idmap_close(&ctl->arrays);
  free(ctl->dep_changed);
  free(ctl->spent_arrays);
  free(ctl->dep_requeued);
}
