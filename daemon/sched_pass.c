/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's side of the scheduler: it turns the in-memory tables into
 * a ty_sched_input (pending jobs, nodes with their switch groups and NVLink
 * islands, queues, running jobs with their checkpoints, decayed usage),
 * runs scheduler/'s pass and applies what it decides: placements start jobs
 * with their effective time limit, preemptions send KillTask (SIGTERM, then
 * SIGKILL after the preemption grace) and the victim ends PREEMPTED and is
 * requeued once its ranks are gone; pending jobs get the pass's reason and
 * priority.
 *
 * Tick duties (ty__sched_tick, once a second): charge GPU- and CPU-seconds
 * of running jobs to (user, queue) with the configured half-life, store the
 * accounts that changed, and move DRAINING nodes with nothing left running
 * to DRAINED.
 *
 * Workload: a pass per task end, node change, second, and submit burst
 * that could start or preempt something (ty__sched_on_request), over the live set
 * (thousands of jobs; history is not in memory). Every array built here is
 * freed before returning. Before each pass, the dependencies of the jobs
 * whose targets changed are rechecked (deps.c).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

static uint64_t gpu_mask(uint32_t n) {
  return n >= 64 ? UINT64_MAX : (UINT64_C(1) << n) - 1;
}

/* ---- building the input --------------------------------------------------------- */

static void sched_node(const ty_cluster_node *n, ty_sched_node *out) {
  memset(out, 0, sizeof(*out));
  out->name = n->name;
  out->schedulable = n->state == TY_NODE_UP && n->conn != NULL && !n->drain;
  out->cpus_total = n->cpus;
  out->cpus_free = n->cpus > n->cpus_used ? n->cpus - n->cpus_used : 0;
  out->gpus_total = n->n_gpus;
  out->gpus_free = gpu_mask(n->n_gpus) & ~n->gpus_used;
  out->mem_total = n->memory;
  out->mem_free = n->memory > n->mem_used ? n->memory - n->mem_used : 0;
  out->switch_id = n->switch_id;
  memcpy(out->gpu_island, n->gpu_island, sizeof(out->gpu_island));
}

static void sched_job(const ty_job *j, ty_sched_job *out) {
  *out = (ty_sched_job){.id = j->id,
                        .queue = j->sched_queue ? j->sched_queue : j->spec.queue,
                        .user = j->sched_user ? j->sched_user : j->spec.user,
                        .priority = j->spec.priority,
                        .submit_time_ms = j->submit_ms,
                        .nodes = j->spec.nodes,
                        .tasks_per_node = j->spec.tasks_per_node,
                        .cpus_per_task = j->spec.cpus_per_task,
                        .gpus_per_node = j->spec.gpus_per_node,
                        .mem_per_node = j->spec.mem_per_node,
                        .time_limit_s = j->spec.time_limit_s,
                        .held = j->held,
                        .held_by = j->held_by,
                        .begin_ms = j->spec.begin_ms,
                        .array_id = j->array_id,
                        .array_max_running = j->spec.array.max_running,
                        .dep_reason = j->dep == TY__DEP_MET ? NULL : j->dep_reason,
                        .exclusive = j->spec.exclusive,
                        .req_nodes = (const char *const *)j->spec.req_nodes,
                        .exc_nodes = (const char *const *)j->spec.exc_nodes,
                        .n_req_nodes = (uint32_t)j->spec.n_req_nodes,
                        .n_exc_nodes = (uint32_t)j->spec.n_exc_nodes};
}

static ty_sched_queue_state queue_state(ty_queue_state s) {
  if (s == TY_QUEUE_PAUSED) return TY_SCHED_QUEUE_PAUSED;
  if (s == TY_QUEUE_CLOSED || s == TY_QUEUE_DELETED) return TY_SCHED_QUEUE_CLOSED;
  return TY_SCHED_QUEUE_OPEN;
}

static bool schedulable_job(const ty_job *j) {
  return j->state == TY_JOB_PENDING && j->committed && !j->store_wait && j->live_ranks == 0;
}

/* Whether a pass input takes j as a pending job. The pass takes no held
 * job (with_held false): it could only list it as held, and 58,000 held
 * array elements made each pass ~80 ms (bench/RESULTS.md); a held job's
 * listing is set when it is held (ty__sched_list_held). `why` and the
 * share views take held jobs too. Nor does it take an rlaunch job whose
 * rlaunch went away (watch.c): it waits for it to reconnect or is
 * cancelled, never started with nobody to attach; watch.c sets its
 * listing meanwhile, and `why` answers with it. */
static bool input_takes(const ty_job *j, bool with_held) {
  return schedulable_job(j) && (with_held || (!j->held && !ty__watch_abandoned(j)));
}

void ty__sched_list_held(ty_job *j) {
  char why[160];
  free(j->reason);
  j->reason = ty_strdup(ty_sched_held_reason(j->held_by, why, sizeof why));
  j->prio = 0; /* as Slurm's: a held job's priority is 0 until released */
  j->wait = TY_SCHED_WAIT_HELD;
  j->has_wait = true;
}

typedef struct input_buf {
  ty_sched_input in;
  ty_sched_job *jobs;
  ty_job **src; /* src[k]: the controller's job behind jobs[k] */
  ty_sched_node *nodes;
  ty_sched_queue *queues;
  ty_sched_running *running;
  ty_sched_slot *slots;
  ty_sched_usage *usage;
} input_buf;

static void add_running(input_buf *b, const ty_job *j, size_t *ns) {
  ty_sched_running *r = &b->running[b->in.n_running++];
  *r = (ty_sched_running){.id = j->id,
                          .queue = j->sched_queue ? j->sched_queue : j->spec.queue,
                          .user = j->sched_user ? j->sched_user : j->spec.user,
                          .priority = j->spec.priority,
                          .start_time_ms = j->start_ms,
                          .time_limit_s = j->spec.time_limit_s,
                          .last_checkpoint_ms = j->last_ckpt_ms,
                          .ending = j->kill_sent || j->state != TY_JOB_RUNNING,
                          .slots = &b->slots[*ns],
                          .array_id = j->array_id,
                          .exclusive = j->spec.exclusive};
  for (uint32_t s = 0; s < j->n_slots; s++) {
    const ty_slot *sl = &j->slots[s];
    if (!sl->held) continue;
    b->slots[(*ns)++] = (ty_sched_slot){
        .node = sl->node->index, .gpus = sl->gpus, .cpus = sl->cpus, .mem = sl->mem};
    r->n_slots++;
  }
}

/* The queues and the decayed usage of b (its arrays allocated), the
 * config and the time: all that fair share needs. A deleted queue (kept
 * in ctl->queues as a tombstone) and its usage are left out: its share,
 * tier and usage would still weigh on the live queues' priorities. */
static void input_queues_usage(ty_controller *ctl, input_buf *b) {
  size_t nq = 0, nu = 0;
  for (size_t q = 0; q < ctl->n_queues; q++) {
    const ty_queue_info *qu = &ctl->queues[q];
    if (qu->state == TY_QUEUE_DELETED) continue; /* no share, no tier, no row */
    b->queues[nq++] = (ty_sched_queue){.name = qu->name,
                                       .tier = qu->tier,
                                       .share = qu->share,
                                       .max_running = qu->max_running,
                                       .max_gpus = qu->max_gpus,
                                       .max_gpus_per_user = qu->max_gpus_per_user,
                                       .preemptible = qu->preemptible,
                                       .state = queue_state(qu->state),
                                       .default_time_s = qu->default_time_s,
                                       .max_time_s = qu->max_time_s,
                                       .max_mem_per_node = qu->max_mem};
  }
  for (size_t u = 0; u < ctl->n_usage; u++) {
    const ty_queue_info *qu = ty__queue_find(ctl, ctl->usage[u].queue);
    if (qu && qu->state == TY_QUEUE_DELETED) continue; /* not in the others' totals */
    b->usage[nu++] =
        (ty_sched_usage){ctl->usage[u].user, ctl->usage[u].queue,
                         ctl->usage[u].gpu_s + ctl->sched.cpu_usage_weight * ctl->usage[u].cpu_s};
  }
  b->in.queues = b->queues, b->in.n_queues = nq;
  b->in.usage = b->usage, b->in.n_usage = nu;
  b->in.config = &ctl->sched;
  b->in.now_ms = ty_now_ms();
}

static void intern_names(ty_controller *ctl, ty_job *j) {
  if (!j->sched_user) j->sched_user = ty__name_intern(ctl, j->spec.user);
  if (!j->sched_queue) j->sched_queue = ty__name_intern(ctl, j->spec.queue);
}

/* Fills b from the controller's tables: the pending jobs with no live
 * ranks (held ones only `with_held`) and the running ones. Everything
 * borrows from ctl; input_close frees the arrays. */
static void input_build(ty_controller *ctl, input_buf *b, bool with_held) {
  memset(b, 0, sizeof(*b));
  size_t nj = 0, nr = 0, nslots = 0;
  ctl->stats.pass_jobs += ctl->n_jobs;
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    const ty_job *j = ctl->jobs[i];
    if (input_takes(j, with_held))
      nj++;
    else if (j->live_ranks)
      nr++, nslots += j->n_slots;
  }
  b->jobs = ty_xcalloc(nj ? nj : 1, sizeof(*b->jobs));
  b->src = ty_xcalloc(nj ? nj : 1, sizeof(*b->src));
  b->nodes = ty_xcalloc(ctl->n_nodes ? ctl->n_nodes : 1, sizeof(*b->nodes));
  b->queues = ty_xcalloc(ctl->n_queues ? ctl->n_queues : 1, sizeof(*b->queues));
  b->running = ty_xcalloc(nr ? nr : 1, sizeof(*b->running));
  b->slots = ty_xcalloc(nslots ? nslots : 1, sizeof(*b->slots));
  b->usage = ty_xcalloc(ctl->n_usage ? ctl->n_usage : 1, sizeof(*b->usage));
  size_t ns = 0;
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    if (input_takes(j, with_held)) {
      intern_names(ctl, j);
      b->src[b->in.n_jobs] = j;
      sched_job(j, &b->jobs[b->in.n_jobs++]);
    } else if (j->live_ranks) {
      intern_names(ctl, j);
      add_running(b, j, &ns);
    }
  }
  for (size_t i = 0; i < ctl->n_nodes; i++)
    sched_node(ctl->nodes[i], &b->nodes[i]);
  b->in.jobs = b->jobs;
  b->in.nodes = b->nodes, b->in.n_nodes = ctl->n_nodes;
  b->in.running = b->running;
  input_queues_usage(ctl, b);
}

static void input_close(input_buf *b) {
  free(b->jobs);
  free(b->src);
  free(b->nodes);
  free(b->queues);
  free(b->running);
  free(b->slots);
  free(b->usage);
}

/* ---- applying a pass ------------------------------------------------------------ */

static void preempt(ty_controller *ctl, const ty_sched_preemption *pr) {
  ty_job *v = ty__job_find(ctl, pr->victim_id);
  ty_job *for_job = ty__job_find(ctl, pr->for_job_id);
  if (!v || v->state != TY_JOB_RUNNING || v->kill_sent) return;
  v->preempt_for = pr->for_job_id;
  ty_info("job %llu: preempting it for job %llu (queue %s): SIGTERM, SIGKILL after %u s",
          (unsigned long long)v->id, (unsigned long long)pr->for_job_id,
          for_job ? for_job->spec.queue : "?", ctl->sched.preempt_grace_s);
  ty_metric_inc(ctl->m.preemptions, NULL, 1);
  char why[TY_ERR_LEN];
  snprintf(why, sizeof(why),
           "preemption notice: SIGTERM for job %llu (queue %.64s), SIGKILL after "
           "%u s",
           (unsigned long long)pr->for_job_id, for_job ? for_job->spec.queue : "?",
           ctl->sched.preempt_grace_s);
  ty_txn *t = ty_txn_create();
  ty__job_note(v, why, "scheduler", t);
  ty__commit(ctl, t, NULL, NULL);
  ty__job_kill_grace(ctl, v, ctl->sched.preempt_grace_s);
}

/* "<the pass's reason> (position N)" into buf; its length. Once per
 * pending job per pass: snprintf's format parsing was a sixth of a pass's
 * cost on the controller with an array's elements pending. */
static size_t pending_reason(const ty_sched_pending *pd, char *buf, size_t size) {
  static const char pos[] = " (position ";
  char digits[16];
  size_t nd = 0;
  uint32_t v = pd->position;
  do
    digits[nd++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  size_t n = strnlen(pd->reason, sizeof(pd->reason));
  size_t room = size - (sizeof(pos) - 1) - nd - 2; /* the suffix, ')' and NUL always fit */
  if (n > room) n = room;
  memcpy(buf, pd->reason, n);
  memcpy(buf + n, pos, sizeof(pos) - 1);
  n += sizeof(pos) - 1;
  while (nd)
    buf[n++] = digits[--nd];
  buf[n++] = ')';
  buf[n] = '\0';
  return n;
}

/* The pending job behind pd: through the input's src (a binary search of
 * the live set per pending job was a sixth of a pass with 58,000 held
 * jobs), checked against its id. */
static ty_job *pending_job(ty_controller *ctl, const input_buf *b, const ty_sched_pending *pd) {
  ty_job *j = pd->job_index < b->in.n_jobs ? b->src[pd->job_index] : NULL;
  return j && j->id == pd->job_id ? j : ty__job_find(ctl, pd->job_id);
}

static void apply(ty_controller *ctl, const input_buf *b, const ty_sched_output *out) {
  for (size_t i = 0; i < out->n_preemptions; i++)
    preempt(ctl, &out->preemptions[i]);
  for (size_t i = 0; i < out->n_placements; i++) {
    const ty_sched_placement *p = &out->placements[i];
    ty_job *j = ty__job_find(ctl, p->job_id);
    ty_slot *slots = ty_xcalloc(p->n_slots, sizeof(*slots));
    for (uint32_t s = 0; s < p->n_slots; s++)
      slots[s] = (ty_slot){.node = ctl->nodes[p->slots[s].node],
                           .gpus = p->slots[s].gpus,
                           .cpus = p->slots[s].cpus,
                           .mem = p->slots[s].mem};
    j->spec.time_limit_s = p->time_limit_s;
    j->preempt_for = 0;
    if (p->backfilled) ty_metric_inc(ctl->m.backfilled, NULL, 1);
    ty__job_start(ctl, j, slots, p->n_slots);
  }
  for (size_t i = 0; i < out->n_pending; i++) {
    ty_job *j = pending_job(ctl, b, &out->pending[i]);
    char reason[TY_ERR_LEN];
    pending_reason(&out->pending[i], reason, sizeof(reason));
    /* Only a change costs a listing's re-encoding of this job. The age and
     * fair-share factors move a little every pass: the listed priority
     * follows when it has moved by a whole unit (as Slurm recalculates its
     * integer priorities every PriorityCalcPeriod), so that a listing
     * between passes is answered from the cached reply; `why` computes the
     * exact factors. */
    bool same = strcmp(reason, j->reason) == 0;
    if (same && fabs(j->prio - out->pending[i].priority) < TY__PRIO_LIST_STEP) continue;
    if (!same) {
      ty__watch_touch(ctl, j, false); /* in memory only */
      free(j->reason);
      j->reason = ty_strdup(reason);
    }
    j->prio = out->pending[i].priority;
    j->wait = out->pending[i].wait;
    j->has_wait = true;
    ty__job_dirty(ctl, j);
  }
}

/* Whether a pass over these pending jobs can change nothing a new job does
 * not fit: none was held back by the reservation, FIFO order or backfill
 * depth (a new job ahead of it could move the reservation), none is
 * waiting for victims of a preemption. */
static bool saturated(const ty_sched_output *out) {
  for (size_t i = 0; i < out->n_pending; i++)
    if (out->pending[i].wait == TY_SCHED_WAIT_PRIORITY ||
        out->pending[i].wait == TY_SCHED_WAIT_PREEMPTING)
      return false;
  return true;
}

void ty__sched_run(ty_controller *ctl) {
  if (ctl->stopping) return;
  /* Requests made from here on (by the dependency update, by the starts
   * below) ask for the next pass. */
  ctl->sched_other = false;
  ctl->n_sched_new = 0;
  ctl->sched_saturated = false;
  ty__deps_update(ctl);
  size_t n_pending = 0;
  for (size_t i = 0; i < ctl->n_jobs; i++)
    n_pending += input_takes(ctl->jobs[i], false);
  ctl->stats.pass_jobs += ctl->n_jobs;
  if (n_pending == 0) {
    ctl->sched_saturated = true;
    return;
  }
  ctl->stats.pass_runs++;
  uint64_t t0 = ctl->pass_t0_ns = uv_hrtime();
  input_buf b;
  input_build(ctl, &b, false);
  ty_sched_output out;
  if (ty_sched_pass(&b.in, &out) == 0) {
    apply(ctl, &b, &out);
    ctl->sched_saturated = out.n_preemptions == 0 && saturated(&out);
    ty_sched_output_close(&out);
  } else {
    ty_error("scheduler: pass failed: out of memory");
  }
  input_close(&b);
  ty_metric_observe(ctl->m.sched_seconds, NULL, (double)(uv_hrtime() - t0) / 1e9);
  ty__watch_flush(ctl); /* the pending jobs' new reasons */
}

/* ---- submits that need no pass ------------------------------------------------------ */

/* Whether a job of queue `queue` could preempt: preemption is on and some
 * queue of a lower tier is preemptible (as the scheduler's own test). */
static bool may_preempt(ty_controller *ctl, const char *queue) {
  if (!ctl->sched.preemption) return false;
  int32_t tier = 0;
  for (size_t q = 0; q < ctl->n_queues; q++)
    if (strcmp(ctl->queues[q].name, queue) == 0) tier = ctl->queues[q].tier;
  for (size_t q = 0; q < ctl->n_queues; q++)
    if (ctl->queues[q].preemptible && ctl->queues[q].tier < tier) return true;
  return false;
}

/* Whether the pending job j can be left waiting without a pass: it waits
 * for no dependency check, cannot preempt, and does not fit what is free. */
static bool stays_pending(ty_controller *ctl, const ty_job *j, const ty_sched_node *nodes) {
  if (j->held) return true;
  if (!schedulable_job(j) || j->dep != TY__DEP_MET || may_preempt(ctl, j->spec.queue)) return false;
  ty_sched_job sj;
  sched_job(j, &sj);
  return !ty_sched_fits_free(&sj, nodes, ctl->n_nodes);
}

/* Whether every job submitted since the last pass stays pending (an
 * array's elements share one request: its first element speaks for all;
 * a job no longer pending was cancelled or ended and frees nothing). */
static bool new_jobs_stay_pending(ty_controller *ctl) {
  ty_sched_node *nodes = ty_xcalloc(ctl->n_nodes ? ctl->n_nodes : 1, sizeof(*nodes));
  for (size_t i = 0; i < ctl->n_nodes; i++)
    sched_node(ctl->nodes[i], &nodes[i]);
  bool stay = true;
  for (size_t k = 0; k < ctl->n_sched_new && stay; k++) {
    const ty_job *j = ty__job_find(ctl, ctl->sched_new[k][0]);
    stay = !j || j->state != TY_JOB_PENDING || stays_pending(ctl, j, nodes);
  }
  free(nodes);
  return stay;
}

/* The new jobs' wait until the tick's pass ranks them (and gives their
 * position): the scheduler's own words for a job that does not fit. */
static void mark_waiting(ty_controller *ctl) {
  bool up = false;
  for (size_t i = 0; i < ctl->n_nodes && !up; i++)
    up = ctl->nodes[i]->state == TY_NODE_UP && ctl->nodes[i]->conn && !ctl->nodes[i]->drain;
  const char *why = up ? "Resources: not enough free resources now"
                       : "Resources: no schedulable nodes (all are down or draining)";
  for (size_t k = 0; k < ctl->n_sched_new; k++) {
    uint64_t lo = ctl->sched_new[k][0];
    size_t at, n = ty__live_between(ctl, lo, lo + ctl->sched_new[k][1], &at);
    for (size_t i = 0; i < n; i++) {
      ty_job *j = ctl->jobs[at + i];
      if (j->state != TY_JOB_PENDING || j->has_wait) continue;
      free(j->reason);
      j->reason = ty_strdup(why);
      j->wait = up ? TY_SCHED_WAIT_RESOURCES : TY_SCHED_WAIT_NO_NODES;
      j->has_wait = true;
      ty__watch_touch(ctl, j, false);
      ty__job_dirty(ctl, j);
    }
  }
  ctl->n_sched_new = 0;
  ty__watch_flush(ctl);
}

/*
 * A pass after a burst of submits only, when the last pass left every
 * pending job waiting for resources (saturated) and no new job fits what
 * is free now or may preempt, places nothing and preempts nothing: the
 * jobs it considered still find the same free resources, and a job that
 * does not fit them only adds a claim. Such a pass is left to the tick,
 * which refreshes reasons and positions within a second; anything else
 * that asked (a task end, a node, a cancel) runs it now.
 */
void ty__sched_on_request(ty_controller *ctl) {
  if (!ctl->sched_other && ctl->sched_saturated && ctl->n_dep_changed == 0 &&
      new_jobs_stay_pending(ctl)) {
    ctl->stats.pass_skipped++;
    mark_waiting(ctl);
    return;
  }
  ctl->stats.pass_requested++;
  ty__sched_run(ctl);
}

/* A memory refusal of a job that did not ask for memory: the size came
 * from a default, which the user would otherwise look for in vain. */
static void name_default_mem(const ty_job_spec *spec, char *why, size_t len) {
  bool queue = spec->mem_source == TY_MEM_QUEUE_DEFAULT;
  size_t used = strlen(why);
  if (!strstr(why, "resources.mem_per_node is") ||
      (!queue && spec->mem_source != TY_MEM_CLUSTER_DEFAULT) || used >= len)
    return;
  if (queue)
    snprintf(why + used, len - used,
             "; that is queue %.64s's default memory (queue update --default-mem): give the job "
             "--mem",
             spec->queue);
  else
    snprintf(why + used, len - used,
             "; that is the cluster's default memory (default_mem_per_node in traind's "
             "--config): give the job --mem");
}

int ty__sched_fits(ty_controller *ctl, const ty_job_spec *spec, char *why, size_t len) {
  ty_sched_node *nodes = ty_xcalloc(ctl->n_nodes ? ctl->n_nodes : 1, sizeof(*nodes));
  for (size_t i = 0; i < ctl->n_nodes; i++)
    sched_node(ctl->nodes[i], &nodes[i]);
  ty_job tmp = {.spec = *spec};
  ty_sched_job sj;
  sched_job(&tmp, &sj);
  int rc = ty_sched_check_fits(&sj, nodes, ctl->n_nodes, why, len);
  free(nodes);
  if (rc != 0) name_default_mem(spec, why, len);
  return rc;
}

double ty__sched_fragmentation(ty_controller *ctl) {
  ty_sched_node *nodes = ty_xcalloc(ctl->n_nodes ? ctl->n_nodes : 1, sizeof(*nodes));
  for (size_t i = 0; i < ctl->n_nodes; i++)
    sched_node(ctl->nodes[i], &nodes[i]);
  double f = ty_sched_fragmentation(nodes, ctl->n_nodes);
  free(nodes);
  return f;
}

int ty__sched_explain(ty_controller *ctl, uint64_t job_id, ty_sched_explain *out) {
  input_buf b;
  input_build(ctl, &b, true);
  int rc = ty_sched_explain_job(&b.in, job_id, out);
  input_close(&b);
  return rc;
}

int ty__sched_explain_new(ty_controller *ctl, ty_job *j, ty_sched_explain *out) {
  input_buf b;
  input_build(ctl, &b, true);
  /* Its id is past every live one, so it goes last, where a submitted job
   * would be. */
  b.jobs = ty_xrealloc(b.jobs, (b.in.n_jobs + 1) * sizeof(*b.jobs));
  intern_names(ctl, j);
  sched_job(j, &b.jobs[b.in.n_jobs++]);
  b.in.jobs = b.jobs;
  int rc = ty_sched_explain_job(&b.in, j->id, out);
  input_close(&b);
  return rc;
}

int ty__sched_shares(ty_controller *ctl, ty_sched_share **out, size_t *out_n) {
  input_buf b;
  input_build(ctl, &b, true);
  int rc = ty_sched_shares(&b.in, out, out_n);
  input_close(&b);
  return rc;
}

int ty__sched_usage_shares(ty_controller *ctl, ty_sched_share **out, size_t *out_n) {
  input_buf b;
  memset(&b, 0, sizeof(b));
  b.queues = ty_xcalloc(ctl->n_queues ? ctl->n_queues : 1, sizeof(*b.queues));
  b.usage = ty_xcalloc(ctl->n_usage ? ctl->n_usage : 1, sizeof(*b.usage));
  input_queues_usage(ctl, &b);
  int rc = ty_sched_shares(&b.in, out, out_n);
  input_close(&b);
  return rc;
}

/* ---- topology ------------------------------------------------------------------------ */

void ty__node_topology(ty_controller *ctl, ty_cluster_node *n) {
  n->switch_id = ty_sched_topology_switch_of(&ctl->topo, n->name);
  free(n->switch_name);
  n->switch_name =
      n->switch_id == TY_SCHED_NO_SWITCH ? NULL : ty_strdup(ctl->topo.switches[n->switch_id].name);
  ty__conv_info_islands(n->info, n->info_len, n->gpu_island);
}

/* ---- usage and drains (the tick) ------------------------------------------------------ */

/* Adds gpus and cpus held for secs seconds to j's user's usage in its queue. */
static void charge(ty_controller *ctl, const ty_job *j, double gpus, double cpus, double secs) {
  ty_usage *u = ty__usage_get(ctl, j->spec.user, j->spec.queue);
  u->gpu_s += gpus * secs;
  u->cpu_s += cpus * secs;
  u->dirty = true;
}

/* Charges what j's run holds now (the CPUs and GPUs of its held slots)
 * for secs seconds. */
static void charge_job(ty_controller *ctl, const ty_job *j, double secs) {
  double gpus = 0, cpus = 0;
  for (uint32_t s = 0; s < j->n_slots; s++) {
    if (!j->slots[s].held) continue;
    gpus += __builtin_popcountll(j->slots[s].gpus);
    cpus += j->slots[s].cpus;
  }
  charge(ctl, j, gpus, cpus, secs);
}

/* The wall time j's run was charged up to: its start, or later. */
static int64_t charged_from(const ty_job *j) {
  return j->usage_until_ms > j->start_ms ? j->usage_until_ms : j->start_ms;
}

/* The seconds of j's run to charge now: since its last charge in this
 * process on the monotonic clock, else (just placed, or loaded after a
 * restart) the wall clock's gap since it was last charged, which holds a
 * traind outage: the run is charged for it once. */
static double job_charge_s(ty_job *j, int64_t wall, int64_t mono) {
  double secs;
  if (j->usage_mono)
    secs = (double)(mono - j->usage_mono) / 1000.0;
  else
    secs = wall > charged_from(j) ? (double)(wall - charged_from(j)) / 1000.0 : 0;
  j->usage_mono = mono, j->usage_until_ms = wall;
  return secs > 0 ? secs : 0;
}

void ty__usage_run_ended(ty_controller *ctl, ty_job *j, int64_t end_ms) {
  int64_t from = charged_from(j);
  if (end_ms > from) { /* what the run was placed with: its slots may be released by now */
    charge(ctl, j, j->alloc_gpus, j->alloc_cpus, (double)(end_ms - from) / 1000.0);
    j->usage_until_ms = end_ms;
  }
  j->usage_mono = 0;
}

void ty__usage_loaded(ty_controller *ctl) {
  int64_t now = ty_now_ms();
  for (size_t i = 0; i < ctl->n_usage; i++) { /* it faded while traind was down */
    ty_usage *u = &ctl->usage[i];
    double gone_s = u->stored_ms && now > u->stored_ms ? (double)(now - u->stored_ms) / 1000 : 0;
    u->gpu_s = ty_sched_decay(u->gpu_s, gone_s, ctl->sched.halflife_s);
    u->cpu_s = ty_sched_decay(u->cpu_s, gone_s, ctl->sched.halflife_s);
  }
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    if (j->state != TY_JOB_RUNNING) continue;
    ty_usage *u = ty__usage_get(ctl, j->spec.user, j->spec.queue);
    j->usage_until_ms = u->stored_ms, j->usage_mono = 0;
  }
}

/* Whether every node holding j's run is connected: after a restart, its
 * worker has registered and reported what became of the run (a run that
 * ended meanwhile is charged to its end, not to now). A run not charged
 * meanwhile is charged for the time at its next charge. */
static bool nodes_connected(const ty_job *j) {
  for (uint32_t s = 0; s < j->n_slots; s++)
    if (j->slots[s].held && !j->slots[s].node->conn) return false;
  return true;
}

static void charge_usage(ty_controller *ctl, double dt_s) {
  for (size_t i = 0; i < ctl->n_usage; i++) {
    ty_usage *u = &ctl->usage[i];
    double g = ty_sched_decay(u->gpu_s, dt_s, ctl->sched.halflife_s);
    double c = ty_sched_decay(u->cpu_s, dt_s, ctl->sched.halflife_s);
    u->dirty |= g != u->gpu_s || c != u->cpu_s;
    u->gpu_s = g, u->cpu_s = c;
  }
  int64_t wall = ty_now_ms(), mono = ty_mono_ms();
  ctl->stats.tick_jobs += ctl->n_jobs;
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    if (j->state != TY_JOB_RUNNING || j->live_ranks == 0 || !nodes_connected(j)) continue;
    charge_job(ctl, j, job_charge_s(j, wall, mono));
  }
}

static bool node_busy(ty_controller *ctl, const ty_cluster_node *n) {
  ctl->stats.tick_jobs += ctl->n_jobs;
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    const ty_job *j = ctl->jobs[i];
    if (!j->live_ranks) continue;
    for (uint32_t s = 0; s < j->n_slots; s++)
      if (j->slots[s].node == n && j->slots[s].live) return true;
  }
  return false;
}

void ty__sched_tick(ty_controller *ctl) {
  int64_t now = ty_mono_ms();
  if (ctl->usage_mono == 0) ctl->usage_mono = now;
  double dt = (double)(now - ctl->usage_mono) / 1000.0;
  ctl->usage_mono = now;
  if (dt > 0) charge_usage(ctl, dt);
  ty_txn *t = ty_txn_create();
  int64_t wall = ty_now_ms();
  for (size_t i = 0; i < ctl->n_usage; i++) {
    ty_usage *u = &ctl->usage[i];
    if (!u->dirty) continue;
    u->dirty = false;
    u->stored_ms = wall;
    ty_usage_row row = {u->user, u->queue, u->gpu_s, u->cpu_s, wall};
    ty_txn_upsert_usage(t, &row);
  }
  for (size_t i = 0; i < ctl->n_nodes; i++) {
    ty_cluster_node *n = ctl->nodes[i];
    if (n->state != TY_NODE_DRAINING || node_busy(ctl, n)) continue;
    ty_info("node %s: DRAINING -> DRAINED (nothing left running)", n->name);
    ty__node_event(n, n->state, TY_NODE_DRAINED, "drained", "nothing left running", "controller",
                   t);
    n->state = TY_NODE_DRAINED;
    ty__node_save(n, t);
  }
  if (ty_txn_len(t))
    ty__commit(ctl, t, NULL, NULL);
  else
    ty_txn_destroy(t);
}
