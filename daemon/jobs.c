/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Job transitions on the controller: slots, rank ends and completion, a
 * launch that failed, cancellation kills, node-loss requeue (a job
 * submitted with --no-requeue, Job.no_requeue, or an rlaunch job its client
 * attends, ends NODE_FAIL instead;
 * placing a job and sending its LaunchTasks is launch.c's; its row, saves
 * and JobInfo are job_row.c's). Every
 * transition goes through ty__job_transition, which writes the job row and
 * one event row into the same txn, so the accounting record can never
 * disagree with the job's state.
 *
 * A RUNNING job's slots and the results of ranks that already ended are
 * persisted in the `alloc` column ("S<gpus-hex>,<cpus>,<mem>" per node slot,
 * then "E<rank>,<task-state>,<exit>,<signal>,<timed-out>" per ended rank in
 * end order, ';'-separated), so a restarted controller knows which ranks it
 * still waits for and why the job will end.
 *
 * A pending array is stored as one record (store.c, schema 8) and its
 * elements in memory are `unsplit`: the first write of such an element
 * (ty__job_save: it starts, or is cancelled, held or changed alone) splits
 * it off -- its jobs row as it is now and the submit event the record
 * stood for go into the txn of that change, before the change's own event.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "proto/methods.h"

/* ---- slots and rank ends (the alloc column is read back here) ---------------------- */

void ty__job_set_slots(ty_job *j, ty_slot *slots, uint32_t n_slots) {
  for (uint32_t i = 0; i < j->n_ranks; i++)
    free(j->ranks[i].reason);
  free(j->ranks);
  free(j->slots);
  uint32_t tpn = j->spec.tasks_per_node ? j->spec.tasks_per_node : 1;
  j->slots = slots;
  j->n_slots = n_slots;
  j->n_ranks = n_slots * tpn;
  j->ranks = ty_xcalloc(j->n_ranks ? j->n_ranks : 1, sizeof(*j->ranks));
  for (uint32_t r = 0; r < j->n_ranks; r++)
    j->ranks[r].slot = r / tpn;
  for (uint32_t s = 0; s < n_slots; s++) {
    ty_slot *sl = &slots[s];
    sl->live = tpn;
    sl->held = true;
    sl->node->cpus_used += sl->cpus;
    sl->node->gpus_used |= sl->gpus;
    sl->node->mem_used += sl->mem;
  }
  j->live_ranks = j->n_ranks;
  j->ended = 0;
  j->kill_sent = false;
}

void ty__job_drop_slots(ty_job *j) {
  for (uint32_t s = 0; s < j->n_slots; s++) {
    ty_slot *sl = &j->slots[s];
    if (!sl->held) continue;
    sl->node->cpus_used -= sl->cpus;
    sl->node->gpus_used &= ~sl->gpus;
    sl->node->mem_used -= sl->mem;
  }
  for (uint32_t i = 0; i < j->n_ranks; i++)
    free(j->ranks[i].reason);
  free(j->ranks);
  free(j->slots);
  j->ranks = NULL, j->slots = NULL;
  j->n_ranks = j->n_slots = j->live_ranks = j->ended = 0;
  j->alloc_cpus = j->alloc_gpus = 0;
}

static int parse_slot(ty_controller *ctl, const char *tok, const char *name, ty_slot *out) {
  unsigned long long gpus, mem;
  unsigned cpus;
  if (sscanf(tok, "S%llx,%u,%llu", &gpus, &cpus, &mem) != 3) return TY_EINVAL;
  ty_cluster_node *n = ty__node_find(ctl, name);
  if (!n) return TY_ENOTFOUND;
  *out = (ty_slot){.node = n, .gpus = gpus, .cpus = cpus, .mem = mem};
  return 0;
}

static void mark_ended(ty_job *j, uint32_t r, int task_state, int32_t code, int32_t sig,
                       unsigned how) {
  ty_rank *rk = &j->ranks[r];
  ty_slot *s = &j->slots[rk->slot];
  rk->state = RANK_ENDED;
  rk->task_state = task_state;
  rk->exit_code = code;
  rk->term_signal = sig;
  rk->timed_out = how & TY__RANK_TIMED_OUT;
  rk->oom_killed = how & TY__RANK_OOM_KILLED;
  rk->end_seq = ++j->ended;
  rk->end_ms = 0; /* the caller's, when it knows */
  j->live_ranks--;
  if (s->live && --s->live == 0 && s->held) {
    s->node->cpus_used -= s->cpus;
    s->node->gpus_used &= ~s->gpus;
    s->node->mem_used -= s->mem;
    s->held = false;
  }
}

/* The accounting record of rank r, which just ended. CPU time and memory
 * are what the rank's cgroup measured (`use`, from the worker's
 * TaskUpdate); a rank nothing measured (no cgroup hierarchy on its worker,
 * or a lost rank: use NULL or all zero) counts its CPUs held x wall clock
 * (the run's start to now) and leaves the job's accounting marked
 * allocated. GPUs are always held x wall clock. */
static void account_rank(ty_job *j, uint32_t r, const ty_task_usage *use, ty_txn *txn) {
  const ty_rank *rk = &j->ranks[r];
  const ty_slot *sl = &j->slots[rk->slot];
  uint32_t tpn = j->spec.tasks_per_node ? j->spec.tasks_per_node : 1;
  int64_t now = rk->end_ms ? rk->end_ms : ty_now_ms();
  int64_t ms = j->start_ms && now > j->start_ms ? now - j->start_ms : 0;
  uint32_t slot_gpus = (uint32_t)__builtin_popcountll(sl->gpus);
  bool measured = use && (use->cpu_usec || use->mem_peak_bytes);
  uint32_t cpus = ty__rank_cpus(j, r);
  ty_rank_row row = {.job_id = j->id,
                     .run = j->acct_run,
                     .rank = r,
                     .node = sl->node->name,
                     .start_ms = j->start_ms,
                     .end_ms = now,
                     .state = rk->task_state,
                     .exit_code = rk->exit_code,
                     .term_signal = rk->term_signal,
                     .cpus = cpus,
                     .gpus = slot_gpus / tpn,
                     .cpu_ms = ms * cpus,
                     .gpu_ms = ms * slot_gpus / tpn,
                     .measured = measured,
                     .run_state = j->state == TY_JOB_RUNNING ? 0 : j->run_state};
  if (measured) {
    row.cpu_ms = (int64_t)(use->cpu_usec / 1000), row.mem_peak = (int64_t)use->mem_peak_bytes;
    ty_task_usage_add(&j->usage, use);
  } else {
    j->usage.cpu_usec += (uint64_t)row.cpu_ms * 1000;
  }
  /* Measured only if every rank of every run so far was: the first rank to
   * end in the first run decides, the others can only take it back. */
  bool first = j->acct_run <= 1 && rk->end_seq == 1;
  j->acct_measured = measured && (first || j->acct_measured);
  j->acct_gpu_ms += row.gpu_ms;
  j->ranks[r].acct = row;
  ty_txn_add_rank(txn, &row);
}

int64_t ty__end_time(const ty_job *j, int64_t reported, int64_t now) {
  /* j->clock.placed: when this controller started the run (uv_hrtime,
   * monotonic), 0 when it was restarted since. */
  int64_t ran_ms = j->clock.placed ? (int64_t)((uv_hrtime() - j->clock.placed) / 1000000) : -1;
  int64_t moved = j->start_ms && ran_ms >= 0 ? now - (j->start_ms + ran_ms) : 0;
  if (moved > TY_END_SKEW_MS || moved < -TY_END_SKEW_MS)
    ty_warn("job %llu: the wall clock moved %lld ms since its run started; its end is its start "
            "+ the %lld ms it ran (monotonic clock)",
            (unsigned long long)j->id, (long long)moved, (long long)ran_ms);
  else if (reported > now + TY_END_SKEW_MS)
    ty_warn("job %llu: a worker reports an end %lld ms ahead of this controller's clock; "
            "taking now (check the hosts' time sync)",
            (unsigned long long)j->id, (long long)(reported - now));
  return ty_job_end_time(j->start_ms, reported, now, ran_ms);
}

/* When a run whose ranks all ended ended: its last rank's end, as their
 * workers reported it (a job that ended while traind was down is not
 * charged for the downtime); now when no rank's end is known. */
static int64_t run_end(const ty_job *j, int64_t now) {
  int64_t last = 0;
  for (uint32_t r = 0; j->live_ranks == 0 && r < j->n_ranks; r++)
    if (j->ranks[r].end_ms > last) last = j->ranks[r].end_ms;
  return last ? last : now;
}

void ty__rank_lost(ty_job *j, uint32_t r, const char *why, ty_txn *txn) {
  ty_rank *rk = &j->ranks[r];
  if (rk->state == RANK_ENDED) return;
  mark_ended(j, r, 0, 0, 0, 0);
  free(rk->reason);
  rk->reason = ty_strdup(why);
  account_rank(j, r, NULL, txn);
}

void ty__rank_lost_reported(ty_job *j, const ty_task_report *tr, const char *why, ty_txn *txn) {
  ty_rank *rk = &j->ranks[tr->rank];
  if (rk->state == RANK_ENDED) return;
  mark_ended(j, tr->rank, (int)tr->state, tr->exit_code, tr->term_signal, 0);
  rk->end_ms = ty__end_time(j, tr->ended_ms, ty_now_ms());
  free(rk->reason);
  rk->reason = ty_strdup(why);
  account_rank(j, tr->rank, &tr->usage, txn);
}

int ty__job_restore_alloc(ty_controller *ctl, ty_job *j, const char *nodes, const char *alloc) {
  char *names = ty_strdup(nodes), *spec = ty_strdup(alloc);
  char *save_n = NULL, *save_a = NULL;
  ty_slot *slots = ty_xcalloc(j->spec.nodes ? j->spec.nodes : 1, sizeof(*slots));
  uint32_t n = 0;
  int rc = 0;
  char *tok = strtok_r(spec, ";", &save_a);
  for (char *name = strtok_r(names, ",", &save_n); name && rc == 0;
       name = strtok_r(NULL, ",", &save_n), tok = strtok_r(NULL, ";", &save_a)) {
    if (!tok || n >= j->spec.nodes)
      rc = TY_EINVAL;
    else
      rc = parse_slot(ctl, tok, name, &slots[n++]);
  }
  if (rc == 0 && n == 0) rc = TY_EINVAL;
  if (rc != 0) {
    free(slots);
    goto done;
  }
  ty__job_set_slots(j, slots, n);
  for (uint32_t r = 0; r < j->n_ranks; r++)
    j->ranks[r].state = RANK_RUNNING; /* assumed */
  for (; tok; tok = strtok_r(NULL, ";", &save_a)) {
    unsigned r;
    int st, code, sig;
    unsigned how; /* TY__RANK_* bits; 0 or 1 (timed out) before OUT_OF_MEMORY */
    if (sscanf(tok, "E%u,%d,%d,%d,%u", &r, &st, &code, &sig, &how) != 5 || r >= j->n_ranks ||
        j->ranks[r].state == RANK_ENDED)
      continue;
    mark_ended(j, r, st, code, sig, how);
  }
done:
  free(names);
  free(spec);
  return rc;
}

/* ---- transitions --------------------------------------------------------------------- */

/* A job leaving RUNNING ends its run: how (the state it goes to; PENDING
 * is a requeue with no other name, REQUEUED) goes onto the run's rank rows
 * written so far, and those of ranks that end after it carry it
 * (account_rank): a preempted run's ranks say PREEMPTED, not only the
 * exit after their SIGTERM. */
static void end_run(ty_job *j, int to, ty_txn *txn) {
  j->run_state = to == TY_JOB_PENDING ? TY_RUN_REQUEUED : to;
  ty_txn_set_run_state(txn, j->id, j->acct_run, j->run_state);
  for (uint32_t r = 0; r < j->n_ranks; r++) /* the copies history reads from memory */
    if (j->ranks[r].acct.job_id && j->ranks[r].acct.run == j->acct_run)
      j->ranks[r].acct.run_state = j->run_state;
}

/* `passing`: a NODE_FAIL or PREEMPTED that the job leaves for PENDING in
 * the same txn (a requeue): recorded, but not an end (no end time, no
 * dependency fires). */
static void transition(ty_controller *ctl, ty_job *j, int to, const char *reason, const char *actor,
                       bool passing, ty_txn *txn) {
  int from = j->state;
  if (ty_job_check_transition(from, to) != 0) {
    ty_error("bug: job %llu: invalid transition %s -> %s ignored", (unsigned long long)j->id,
             ty_job_state_name(from), ty_job_state_name(to));
    return;
  }
  int64_t now = ty_now_ms();
  bool left_pending = from == TY_JOB_PENDING && to != TY_JOB_PENDING;  /* begins a run, or ends */
  bool pending_again = to == TY_JOB_PENDING && from != TY_JOB_PENDING; /* requeued */
  j->state = to;
  ty__user_jobs_state(ctl, j);
  free(j->reason);
  j->reason = ty_strdup(reason ? reason : "");
  bool ends = ty_job_state_terminal(to) && !passing;
  if (to == TY_JOB_RUNNING) j->start_ms = now, j->end_ms = 0, j->run_state = 0;
  if (from == TY_JOB_RUNNING && to != TY_JOB_RUNNING) end_run(j, to, txn);
  if (ends) j->end_ms = from == TY_JOB_RUNNING ? run_end(j, now) : now;
  if (from == TY_JOB_RUNNING && to != TY_JOB_RUNNING)
    ty__usage_run_ended(ctl, j, ends ? j->end_ms : now);
  ty__metrics_job_transition(ctl, j, from, to, ends ? j->end_ms : now);
  if (left_pending || ends)
    ty__deps_target_changed(ctl, j, left_pending);
  else
    ty__deps_target_moved(ctl, j, pending_again);
  if (j->spec.kind == TY_JOB_KIND_GRAPH) ty__graph_save(ctl, j); /* its progress, with the end */
  ty__job_save(ctl, j, txn);
  ty_event_row ev = {.job_id = j->id,
                     .time_ms = ends ? j->end_ms : now,
                     .from_state = from,
                     .to_state = to,
                     .reason = j->reason,
                     .actor = actor};
  ty_txn_add_event(txn, &ev);
  ty__watch_touch(ctl, j, true);
  ty_info("job %llu: %s -> %s%s%s", (unsigned long long)j->id, ty_job_state_name(from),
          ty_job_state_name(to), j->reason[0] ? ": " : "", j->reason);
}

void ty__job_transition(ty_controller *ctl, ty_job *j, int to, const char *reason,
                        const char *actor, ty_txn *txn) {
  transition(ctl, j, to, reason, actor, false, txn);
}

void ty__job_note(const ty_job *j, const char *reason, const char *actor, ty_txn *txn) {
  ty_event_row ev = {.job_id = j->id,
                     .time_ms = ty_now_ms(),
                     .from_state = j->state,
                     .to_state = j->state,
                     .reason = reason,
                     .actor = actor};
  ty_txn_add_event(txn, &ev);
  ty_info("job %llu: %s", (unsigned long long)j->id, reason);
}

/* ---- launch failures and kills ------------------------------------------------------ */

/* Rank `rank` ends as FAILED_START (msg) into t; why: the job's reason. */
static void rank_not_started(ty_job *j, uint32_t rank, const char *msg, char *why, size_t len,
                             ty_txn *t) {
  ty_cluster_node *n = j->slots[j->ranks[rank].slot].node;
  snprintf(why, len, "launch failed on %s: %s", n->name, msg);
  mark_ended(j, rank, TY_TASK_FAILED_START, 0, 0, 0);
  free(j->ranks[rank].reason);
  j->ranks[rank].reason = ty_strdup(msg);
  account_rank(j, rank, NULL, t);
}

void ty__job_launch_failed(ty_controller *ctl, ty_job *j, uint32_t rank, const char *msg) {
  char why[TY_ERR_LEN];
  ty_txn *t = ty_txn_create();
  rank_not_started(j, rank, msg, why, sizeof(why), t);
  ty__job_transition(ctl, j, TY_JOB_FAILED, why, "controller", t);
  ty__commit(ctl, t, NULL, NULL);
  if (j->live_ranks) ty__job_kill(ctl, j);
  ty__sched_request(ctl);
}

void ty__job_launch_node_failed(ty_controller *ctl, ty_job *j, uint32_t rank, const char *msg) {
  char why[TY_ERR_LEN];
  ty_txn *t = ty_txn_create();
  ty__node_launch_failed(j->slots[j->ranks[rank].slot].node, msg, t);
  rank_not_started(j, rank, msg, why, sizeof(why), t);
  if (!ty__job_never_requeued(j)) {
    ty__job_requeue(ctl, j, why, t); /* kills its other ranks, asks the scheduler */
    ty__commit(ctl, t, NULL, NULL);
    return;
  }
  ty__job_transition(ctl, j, TY_JOB_FAILED, why, "controller", t);
  ty__commit(ctl, t, NULL, NULL);
  if (j->live_ranks) ty__job_kill(ctl, j);
  ty__sched_request(ctl);
}

/* ud: the job's id (owned). */
static void on_kill_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *msg, bool final,
                           void *ud) {
  uint64_t *job_id = ud;
  if (!final) return;
  bool said = msg && msg->message && msg->message[0];
  if (status != 0 && status != TY_ECLOSED)
    ty_warn("job %llu: KillTask to %s answered %s%s%s", (unsigned long long)*job_id, ty_rpc_peer(c),
            ty_strerror(status), said ? ": " : "", said ? msg->message : "");
  free(job_id);
}

void ty__job_kill(ty_controller *ctl, ty_job *j) {
  ty__job_kill_grace(ctl, j, ctl->cfg.kill_grace_s);
}

/* KillTask for j to every connected node with a live rank (n = NULL) or
 * to n alone; sig (> 0) signals without killing, to the batch scripts
 * alone with batch_only. A node not connected now gets a kill when it
 * registers again (ty__job_kill_node). */
static void send_kill(ty_controller *ctl, ty_job *j, const ty_cluster_node *only, int sig,
                      bool batch_only, uint32_t grace_s) {
  ty_buf b;
  ty_buf_init(&b);
  if (ty__conv_kill_req(j->id, sig, grace_s, batch_only, &b) != 0) return;
  for (uint32_t s = 0; s < j->n_slots; s++) {
    ty_cluster_node *n = j->slots[s].node;
    if (j->slots[s].live == 0 || !n->conn || (only && n != only)) continue;
    uint64_t *id = ty_xcalloc(1, sizeof(*id));
    *id = j->id;
    ty__node_call(ctl, n, TY_M_KILL_TASK, &b, TY__TASK_CALL_TIMEOUT_MS, on_kill_answer, id);
  }
  ty_buf_close(&b);
}

void ty__job_signal(ty_controller *ctl, ty_job *j, int sig, bool batch_only) {
  send_kill(ctl, j, NULL, sig, batch_only, 0);
}

void ty__job_kill_node(ty_controller *ctl, ty_job *j, ty_cluster_node *n) {
  if (j->kill_sent) send_kill(ctl, j, n, 0, false, j->kill_grace_s);
}

/* A running job's kill is in its row (kill_sent, with requeue_asked and
 * preempt_for saying where it goes when its ranks end), in a txn of its
 * own queued before the caller's: a controller restarted during the grace
 * neither signals it again nor forgets that it is requeued or preempted.
 * A job already ended or pending is not reloaded running, so its kill is
 * not stored. */
static void save_kill(ty_controller *ctl, ty_job *j) {
  if (j->state != TY_JOB_RUNNING) return;
  ty_txn *t = ty_txn_create();
  ty__job_save(ctl, j, t);
  ty__commit(ctl, t, NULL, NULL);
}

static void finish(ty_controller *ctl, ty_job *j, ty_txn *txn);

void ty__job_kill_grace(ty_controller *ctl, ty_job *j, uint32_t grace_s) {
  j->kill_sent = true;
  j->kill_grace_s = grace_s;
  /* Ranks whose LaunchTask was never sent have nothing to kill: they end now. */
  bool freed = false;
  for (uint32_t r = 0; r < j->n_ranks; r++) {
    if (j->ranks[r].state != RANK_WAIT) continue;
    mark_ended(j, r, 0, 0, 0, 0);
    free(j->ranks[r].reason);
    j->ranks[r].reason = ty_strdup("never launched");
    freed = true;
  }
  if (freed) ty__sched_request(ctl);
  if (j->state == TY_JOB_RUNNING && j->live_ranks == 0) {
    /* None was launched (a requeue or preemption right after the start):
     * no worker will report an end, so the run ends here. */
    ty_txn *t = ty_txn_create();
    finish(ctl, j, t);
    ty__commit(ctl, t, NULL, NULL);
    return;
  }
  save_kill(ctl, j);
  send_kill(ctl, j, NULL, 0, false, grace_s);
}

/* ---- ends --------------------------------------------------------------------------------- */

static bool rank_failed(const ty_rank *rk) {
  return rk->timed_out || rk->task_state != TY_TASK_EXITED || rk->exit_code != 0;
}

/* The worker's reason for an exit ("out of memory: ..."), after ": ". */
static const char *exit_note(const ty_rank *rk, char *buf, size_t len) {
  if (!rk->reason || !rk->reason[0]) return "";
  snprintf(buf, len, ": %.200s", rk->reason);
  return buf;
}

static void describe_failure(const ty_job *j, uint32_t r, char *out, size_t len) {
  const ty_rank *rk = &j->ranks[r];
  char note[256];
  switch (rk->task_state) {
  case TY_TASK_EXITED:
    snprintf(out, len, "rank %u exited with code %d%s", r, rk->exit_code,
             exit_note(rk, note, sizeof note));
    break;
  case TY_TASK_SIGNALED: {
    const char *name = sigabbrev_np(rk->term_signal);
    snprintf(out, len, "rank %u killed by signal %d (SIG%s)%s", r, rk->term_signal,
             name ? name : "?", exit_note(rk, note, sizeof note));
    break;
  }
  case TY_TASK_FAILED_START:
    snprintf(out, len, "rank %u failed to start: %s", r, rk->reason ? rk->reason : "");
    break;
  default:
    snprintf(out, len, "rank %u lost: %s", r, rk->reason ? rk->reason : "");
  }
}

const char *ty__job_never_requeued(const ty_job *j) {
  if (j->spec.no_requeue) return "--no-requeue";
  if (j->spec.interactive.on && !j->spec.interactive.detach)
    return "an rlaunch job: its rlaunch saw this run end";
  return NULL;
}

/* A rank that exited non-zero or died of a signal requeues the job while
 * its policy allows (Job.max_rank_failure_requeues); it resumes from its
 * last checkpoint. Returns false when the job should fail instead. */
static bool requeue_after_failure(ty_controller *ctl, ty_job *j, uint32_t first, ty_txn *txn) {
  int ts = j->ranks[first].task_state;
  uint32_t max = j->spec.max_rank_failure_requeues;
  if (ty__job_never_requeued(j)) return false; /* submit refuses both; a stored job may say so */
  if ((ts != TY_TASK_EXITED && ts != TY_TASK_SIGNALED) || j->fail_requeues >= max) return false;
  char why[TY_ERR_LEN];
  describe_failure(j, first, why, sizeof(why));
  j->fail_requeues++;
  j->requeue_count++;
  size_t n = strlen(why);
  snprintf(why + n, sizeof(why) - n, "; requeued (%u of %u)", j->fail_requeues, max);
  ty__job_transition(ctl, j, TY_JOB_PENDING, why, "controller", txn);
  ty__sched_request(ctl);
  return true;
}

/* Every rank of a job being preempted ended: PREEMPTED, then requeued; a
 * no_requeue job ends PREEMPTED (Slurm cancels a job it cannot requeue
 * under PreemptMode=REQUEUE, and sacct shows it PREEMPTED). */
static void preempted(ty_controller *ctl, ty_job *j, ty_txn *txn) {
  char why[TY_ERR_LEN];
  const ty_job *for_job = ty__job_find(ctl, j->preempt_for);
  const char *never = ty__job_never_requeued(j);
  snprintf(why, sizeof(why), "preempted by job %llu (queue %s)%s%s%s",
           (unsigned long long)j->preempt_for, for_job ? for_job->spec.queue : "?",
           never ? "; not requeued (" : "", never ? never : "", never ? ")" : "");
  j->preempt_for = 0;
  transition(ctl, j, TY_JOB_PREEMPTED, why, "scheduler", !never, txn);
  if (never) {
    ty__sched_request(ctl);
    return;
  }
  j->requeue_count++;
  char again[TY_ERR_LEN + 32]; /* why, and the words around it */
  snprintf(again, sizeof(again), "requeued after PREEMPTED (%s)", why);
  ty__job_transition(ctl, j, TY_JOB_PENDING, again, "scheduler", txn);
  ty__sched_request(ctl);
}

/* A failing job one of whose ranks (r) the kernel killed at the memory
 * limit ends OUT_OF_MEMORY, as Slurm's: its exit code is Slurm's 0:125
 * (slurm.h's SIG_OOM, 253, less the signal flag 128), whatever the kill
 * left; the reason keeps what rank r's process really ended by. It is
 * not requeued under max_rank_failure_requeues: resumed from its last
 * checkpoint with the same limit it would be killed again, and each try
 * would hold the nodes for nothing. */
static void out_of_memory(ty_controller *ctl, ty_job *j, uint32_t r, ty_txn *txn) {
  char why[TY_ERR_LEN];
  describe_failure(j, r, why, sizeof(why));
  if (j->spec.max_rank_failure_requeues > 0 && !j->spec.no_requeue) {
    size_t n = strlen(why);
    snprintf(why + n, sizeof(why) - n,
             "; not requeued (--requeue-on-failure): it would reach its memory limit again");
  }
  j->first_failed = r + 1;
  j->exit_code = 0;
  j->term_signal = TY_JOB_OOM_SIGNAL;
  ty__job_transition(ctl, j, TY_JOB_OUT_OF_MEMORY, why, "controller", txn);
}

/* Every rank has ended: decide COMPLETED, FAILED, OUT_OF_MEMORY or TIMEOUT
 * (or PREEMPTED and requeued, whatever the ranks did, when the scheduler preempted it;
 * or PENDING again when `job requeue` asked). */
/* A graph job whose ranks all exited 0 short of their last step after this
 * run's --signal warning (a warning of SIGTERM: trainrun checkpoints and
 * stops): it ran out of time, it did not train to its end. */
static bool stopped_after_warning(ty_controller *ctl, const ty_job *j, char *why, size_t len) {
  bool warned = j->spec.kind == TY_JOB_KIND_GRAPH && j->warned_run == j->run;
  const ty_train_progress *p = warned ? ty__graph_progress(ctl, j->id) : NULL;
  /* The stop's checkpoint may be newer than the last progress line. */
  uint64_t at = p && p->checkpoint_step > p->step ? p->checkpoint_step : p ? p->step : 0;
  if (!p || !p->total_steps || at >= p->total_steps) return false;
  const char *sig = sigabbrev_np((int)j->spec.warn_signal);
  snprintf(why, len,
           "stopped at step %llu of %llu after the --signal warning (SIG%s %u s before the time "
           "limit of %u s); its checkpoint at step %llu resumes it",
           (unsigned long long)at, (unsigned long long)p->total_steps, sig ? sig : "?",
           j->spec.warn_before_s, j->spec.time_limit_s, (unsigned long long)p->checkpoint_step);
  return true;
}

static void finish(ty_controller *ctl, ty_job *j, ty_txn *txn) {
  if (j->preempt_for) {
    preempted(ctl, j, txn);
    return;
  }
  if (j->requeue_asked) {
    j->requeue_asked = false;
    j->requeue_count++;
    ty__job_transition(ctl, j, TY_JOB_PENDING, "requeued as asked (trainctl job requeue)",
                       "controller", txn);
    ty__sched_request(ctl);
    return;
  }
  uint32_t first = UINT32_MAX, first_seq = UINT32_MAX, timed = UINT32_MAX, oom = UINT32_MAX;
  for (uint32_t r = 0; r < j->n_ranks; r++) {
    const ty_rank *rk = &j->ranks[r];
    if (rk->timed_out && timed == UINT32_MAX) timed = r;
    if (rk->oom_killed && oom == UINT32_MAX) oom = r;
    if (rank_failed(rk) && rk->end_seq < first_seq) first = r, first_seq = rk->end_seq;
  }
  /* Like srun, the job's code is the first failing rank's: the others were
   * most likely killed because of it, and their SIGTERM says nothing. */
  j->first_failed = first == UINT32_MAX ? 0 : first + 1;
  j->exit_code = first == UINT32_MAX ? 0 : j->ranks[first].exit_code;
  j->term_signal = first == UINT32_MAX ? 0 : j->ranks[first].term_signal;
  char why[TY_ERR_LEN];
  if (timed != UINT32_MAX) {
    snprintf(why, sizeof(why), "rank %u exceeded the time limit of %u s", timed,
             j->spec.time_limit_s);
    ty__job_transition(ctl, j, TY_JOB_TIMEOUT, why, "controller", txn);
  } else if (first != UINT32_MAX && oom != UINT32_MAX) {
    out_of_memory(ctl, j, oom, txn);
  } else if (first != UINT32_MAX && requeue_after_failure(ctl, j, first, txn)) {
    return;
  } else if (first != UINT32_MAX) {
    describe_failure(j, first, why, sizeof(why));
    ty__job_transition(ctl, j, TY_JOB_FAILED, why, "controller", txn);
  } else if (stopped_after_warning(ctl, j, why, sizeof(why))) {
    ty__job_transition(ctl, j, TY_JOB_TIMEOUT, why, "controller", txn);
  } else if (oom != UINT32_MAX) { /* a child killed at --mem, the rank went on: said */
    const char *what = j->ranks[oom].reason;
    snprintf(why, sizeof(why), "rank %u exited 0 after %s", oom,
             what && *what ? what : "a process was killed at the job's memory limit (--mem)");
    ty__job_transition(ctl, j, TY_JOB_COMPLETED, why, "controller", txn);
  } else {
    ty__job_transition(ctl, j, TY_JOB_COMPLETED, "", "controller", txn);
  }
}

void ty__rank_ended(ty_controller *ctl, ty_job *j, uint32_t rank, int task_state, int32_t exit_code,
                    int32_t term_signal, unsigned how, const char *reason, const ty_task_usage *use,
                    int64_t ended_ms, ty_txn *txn) {
  ty_rank *rk = &j->ranks[rank];
  if (rk->state == RANK_ENDED) return;
  mark_ended(j, rank, task_state, exit_code, term_signal, how);
  rk->end_ms = ty__end_time(j, ended_ms, ty_now_ms());
  free(rk->reason);
  rk->reason = ty_strdup(reason ? reason : "");
  account_rank(j, rank, use, txn);
  if (j->slots[rk->slot].live == 0) ty__sched_request(ctl);
  if (j->state == TY_JOB_RUNNING) {
    if (rank_failed(rk) && !j->kill_sent && j->live_ranks > 0) ty__job_kill(ctl, j);
    if (j->state == TY_JOB_RUNNING && j->live_ranks == 0) { /* else the kill finished it */
      j->clock.last_update = uv_hrtime();
      finish(ctl, j, txn);
      return;
    }
  }
  /* A running job cancelled ends with the signal that ended its first
   * rank killed by one (the cancel's SIGTERM, the grace's SIGKILL), as
   * sacct's CANCELLED 0:15; one cancelled pending, or whose trap exited,
   * keeps 0:0. */
  if (j->state == TY_JOB_CANCELLED && rk->term_signal > 0 && j->exit_code == 0 &&
      j->term_signal == 0)
    j->term_signal = rk->term_signal;
  /* A job ended while its ranks ran (cancelled, or a final NODE_FAIL)
   * held their resources until the last ended (COMPLETING): its end is
   * that rank's, as a run that ends by itself (a TIMEOUT's too). */
  if (ty_job_state_terminal(j->state) && j->live_ranks == 0 && j->end_ms > 0) {
    int64_t last = run_end(j, j->end_ms);
    if (last > j->end_ms) j->end_ms = last;
  }
  ty__job_save(ctl, j, txn);
}

void ty__job_revive(ty_controller *ctl, ty_job *j, const char *actor, ty_txn *txn) {
  int from = j->state;
  ty__job_unretire(ctl, j);
  ty__deps_requeued(ctl, j, from);
  char why[TY_ERR_LEN];
  snprintf(why, sizeof(why), "requeued after %s by %.64s", ty_job_state_name(from),
           strncmp(actor, "user:", 5) == 0 ? actor + 5 : actor);
  j->state = TY_JOB_PENDING;
  ty__user_jobs_state(ctl, j);
  free(j->reason);
  j->reason = ty_strdup(why);
  j->end_ms = 0;
  j->exit_code = j->term_signal = 0;
  j->first_failed = 0;
  j->requeue_count++;
  ty__deps_pending_again(ctl, j);
  if (j->held) ty__sched_list_held(j); /* its reason says so, not the requeue */
  ty__job_save(ctl, j, txn);
  ty_event_row ev = {.job_id = j->id,
                     .time_ms = ty_now_ms(),
                     .from_state = from,
                     .to_state = TY_JOB_PENDING,
                     .reason = why,
                     .actor = actor};
  ty_txn_add_event(txn, &ev);
  ty_info("job %llu: %s -> PENDING: %s", (unsigned long long)j->id, ty_job_state_name(from), why);
  ty__sched_request(ctl);
}

void ty__job_requeue(ty_controller *ctl, ty_job *j, const char *reason, ty_txn *txn) {
  char why[TY_ERR_LEN];
  const char *never = ty__job_never_requeued(j);
  if (never) {
    snprintf(why, sizeof(why), "%.400s; not requeued (%s)", reason, never);
    transition(ctl, j, TY_JOB_NODE_FAIL, why, "controller", false, txn);
  } else {
    transition(ctl, j, TY_JOB_NODE_FAIL, reason, "controller", true, txn);
    j->requeue_count++;
    snprintf(why, sizeof(why), "requeued after NODE_FAIL (%s)", reason);
    ty__job_transition(ctl, j, TY_JOB_PENDING, why, "controller", txn);
  }
  if (j->live_ranks) ty__job_kill(ctl, j);
  ty__sched_request(ctl);
}
