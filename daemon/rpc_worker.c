/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Worker methods: RegisterNode (first on a connection; reconciles the tasks
 * the worker reports with what the controller believes), Heartbeat and
 * TaskUpdate. Answers that make a worker forget a task result (RegisterNode,
 * TaskUpdate) are sent only after the result is committed, so a controller
 * crash can never lose a task's end.
 *
 * A worker that is stopped says so first (a heartbeat with `stopping`): its
 * node takes no new jobs until it registers again, and the tasks its stop
 * killed lose their node (the job is requeued, as after a node failure)
 * instead of failing on the signal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "proto/methods.h"

/* The rank of job j that runs (or should run) on node n, or NULL. */
static ty_rank *our_rank(ty_job *j, uint32_t rank, const ty_cluster_node *n) {
  if (!j || j->n_slots == 0 || rank >= j->n_ranks) return NULL;
  ty_rank *rk = &j->ranks[rank];
  if (rk->state == RANK_ENDED || j->slots[rk->slot].node != n) return NULL;
  return rk;
}

static bool job_has_live_on(const ty_job *j, const ty_cluster_node *n) {
  for (uint32_t s = 0; s < j->n_slots; s++)
    if (j->slots[s].node == n && j->slots[s].live) return true;
  return false;
}

/* A rank ended. A rank its worker fenced (the lease ran out while this
 * controller still counted the node alive: the link healed between the two
 * timeouts), or killed because the worker itself was stopped, lost its
 * node: the job is requeued as after a node failure, not failed by the
 * signal; its record is still how the worker saw it end (SIGNALED 0:15,
 * what it used, when). */
static void rank_ended(ty_controller *ctl, ty_job *j, const ty_task_report *tr,
                       const ty_cluster_node *n, ty_txn *t) {
  if (!tr->fenced && !tr->worker_stopped) {
    unsigned how =
        (tr->timed_out ? TY__RANK_TIMED_OUT : 0u) | (tr->oom_killed ? TY__RANK_OOM_KILLED : 0u);
    ty__rank_ended(ctl, j, tr->rank, tr->state, tr->exit_code, tr->term_signal, how, tr->reason,
                   &tr->usage, tr->ended_ms, t);
    return;
  }
  char why[TY_ERR_LEN];
  if (tr->fenced)
    snprintf(why, sizeof(why), "node %.64s fenced its tasks (%.300s)", n->name, tr->reason);
  else
    snprintf(why, sizeof(why), "the worker on node %.64s was stopped and ended rank %u", n->name,
             tr->rank);
  ty_warn("job %llu rank %u: %s", (unsigned long long)j->id, tr->rank, why);
  ty__rank_lost_reported(j, tr, why, t);
  if (j->state == TY_JOB_RUNNING)
    ty__job_requeue(ctl, j, why, t);
  else
    ty__job_save(ctl, j, t);
}

/* ---- RegisterNode ---------------------------------------------------------------------- */

typedef struct reg_ctx {
  ty_reply *r;
  char *node;
  uint64_t *kill; /* jobs whose reported tasks the controller does not run */
  size_t n_kill;
} reg_ctx;

/* The register event's reason: the worker's address, and what it reports
 * differently from the node's last registration (a host back with other
 * CPUs, memory or GPUs says so in `node show`). */
static void register_reason(const ty_cluster_node *n, const ty_node_report *rep, const char *peer,
                            char *out, size_t len) {
  int w = snprintf(out, len, "%s", peer);
  if (!n || !n->cpus) return; /* a new node: nothing to compare */
  const char *sep = "; resources changed: ";
  if (rep->cpus != n->cpus && w >= 0 && (size_t)w < len)
    w += snprintf(out + w, len - w, "%sCPUs %u -> %u", sep, n->cpus, rep->cpus), sep = ", ";
  if (rep->memory != n->memory && w >= 0 && (size_t)w < len)
    w += snprintf(out + w, len - w, "%smemory %llu -> %llu MiB", sep,
                  (unsigned long long)(n->memory >> 20), (unsigned long long)(rep->memory >> 20)),
        sep = ", ";
  if (rep->n_gpus != n->n_gpus && w >= 0 && (size_t)w < len)
    snprintf(out + w, len - w, "%sGPUs %u -> %u", sep, n->n_gpus, rep->n_gpus);
}

/* The node rep describes, created or updated; takes rep's name, io_addr
 * and info (copies of the request the decoder made) instead of copying
 * them again. */
static ty_cluster_node *node_upsert(ty_controller *ctl, ty_node_report *rep, ty_rpc_conn *c,
                                    ty_txn *t) {
  ty_cluster_node *n = ty__node_find(ctl, rep->name);
  int from = n ? n->state : 0;
  char why[256];
  register_reason(n, rep, ty_rpc_peer(c), why, sizeof why);
  if (!n) {
    n = ty_xcalloc(1, sizeof(*n));
    n->name = rep->name, rep->name = NULL;
    n->state = TY_NODE_UP;
    ty__node_add(ctl, n);
  }
  n->refused[0] = '\0', n->refused_mono = 0;
  n->cpus = rep->cpus;
  n->memory = rep->memory;
  n->n_gpus = rep->n_gpus;
  n->sets_task_limit = rep->sets_task_limit;
  free(n->info);
  n->info = rep->info, n->info_len = rep->info_len, rep->info = NULL;
  free(n->io_addr);
  n->io_addr = rep->io_addr, rep->io_addr = NULL;
  free(n->host);
  n->host = ty__host_of(n->io_addr);
  if (n->state == TY_NODE_DOWN || n->state == TY_NODE_UNKNOWN || n->state == 0) {
    /* A drained node that went down and came back is still drained. */
    n->state = n->drain ? TY_NODE_DRAINING : TY_NODE_UP;
    const char *drain = n->drain && n->reason ? strstr(n->reason, "drained by ") : NULL;
    char *now = ty_strdup(drain ? drain : ""); /* the operator's reason, the loss's gone */
    free(n->reason);
    n->reason = now;
  }
  if (n->leaving) { /* back after a stop: its own drain ends, an operator's stays */
    n->leaving = false;
    if (!n->drain && (n->state == TY_NODE_DRAINING || n->state == TY_NODE_DRAINED)) {
      n->state = TY_NODE_UP;
      free(n->reason);
      n->reason = ty_strdup("");
    }
  }
  ty__node_topology(ctl, n);
  n->last_seen_ms = ty_now_ms();
  n->last_seen_mono = ty_mono_ms();
  if (n->conn != c) n->conn_gen++;
  n->conn = c;
  char actor[96];
  snprintf(actor, sizeof(actor), "node:%.64s", n->name);
  ty__node_event(n, from, n->state, "register", why, actor, t);
  return n;
}

/* Applies the reported tasks; collects jobs to kill into rc. */
static void reconcile_reported(ty_controller *ctl, ty_cluster_node *n, const ty_node_report *rep,
                               reg_ctx *rc, ty_txn *t) {
  n->running_tasks = 0; /* what it runs now, not what it ran before it left */
  for (size_t i = 0; i < rep->n_tasks; i++) {
    const ty_task_report *tr = &rep->tasks[i];
    n->running_tasks += !ty_task_state_ended(tr->state);
    ty_job *j = ty__job_find(ctl, tr->job_id);
    ty_rank *rk = our_rank(j, tr->rank, n);
    if (rk && ty_task_state_ended(tr->state)) {
      rank_ended(ctl, j, tr, n, t);
    } else if (rk) {
      rk->state = RANK_RUNNING;
      rk->seen_gen = ctl->reg_gen;
    } else if (!ty_task_state_ended(tr->state) && !(j && job_has_live_on(j, n))) {
      ty_warn("node %s runs job %llu rank %u, which the controller does not run: killing it",
              n->name, (unsigned long long)tr->job_id, tr->rank);
      rc->kill[rc->n_kill++] = tr->job_id; /* room for every reported task */
    }
  }
}

static bool missing(const ty_controller *ctl, const ty_job *j, const ty_rank *rk,
                    const ty_cluster_node *n) {
  return j->slots[rk->slot].node == n && rk->seen_gen != ctl->reg_gen &&
         (rk->state == RANK_RUNNING || rk->state == RANK_LAUNCHING);
}

/* Ranks the controller believes run on n but the worker did not report are
 * lost; a RUNNING job that lost one is requeued, its lost ranks ended first
 * as lost (not as failures), so the requeue's KillTask goes only to the
 * nodes where its other ranks still run: n has not had its RegisterNode
 * answer yet and would refuse one. */
static void reconcile_missing(ty_controller *ctl, ty_cluster_node *n, ty_txn *t) {
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    if (j->live_ranks == 0 || !job_has_live_on(j, n)) continue;
    uint32_t first = UINT32_MAX;
    for (uint32_t r = 0; r < j->n_ranks && first == UINT32_MAX; r++)
      if (missing(ctl, j, &j->ranks[r], n)) first = r;
    if (first == UINT32_MAX) continue;
    char why[TY_ERR_LEN];
    snprintf(why, sizeof(why), "rank %u was not running on %s when it registered", first, n->name);
    bool running = j->state == TY_JOB_RUNNING;
    for (uint32_t r = 0; r < j->n_ranks; r++) {
      if (!missing(ctl, j, &j->ranks[r], n)) continue;
      if (running)
        ty__rank_lost(j, r, why, t);
      else
        ty__rank_ended(ctl, j, r, 0, 0, 0, 0, why, NULL, 0, t);
    }
    if (running) ty__job_requeue(ctl, j, why, t);
  }
}

static void on_kill_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *msg, bool final,
                           void *ud) {
  (void)msg, (void)ud;
  if (final && status != 0 && status != TY_ECLOSED)
    ty_warn("KillTask to %s answered %s", ty_rpc_peer(c), ty_strerror(status));
}

static void on_register_committed(int status, void *ud) {
  reg_ctx *rc = ud;
  ty_controller *ctl = rc->r->ctl;
  ty_cluster_node *n = ty__node_find(ctl, rc->node);
  if (status != 0) {
    ty__reply_finish(rc->r, TY_ESTORE, "the node's state was not stored; register again");
  } else {
    ty__conv_register_resp(ctl->cfg.heartbeat_ms, ctl->cfg.node_timeout_ms, &rc->r->out);
    ty__reply_finish(rc->r, 0, NULL);
  }
  if (n && n->conn) {
    ty_buf b;
    ty_buf_init(&b);
    for (size_t i = 0; i < rc->n_kill; i++) {
      b.len = 0;
      if (ty__conv_kill_req(rc->kill[i], 0, ctl->cfg.kill_grace_s, false, &b) == 0)
        ty__node_call(ctl, n, TY_M_KILL_TASK, &b, 30000, on_kill_answer, NULL);
    }
    ty_buf_close(&b);
    for (size_t i = 0; i < ctl->n_jobs; i++) {
      ty_job *j = ctl->jobs[i];
      if (!j->live_ranks || !job_has_live_on(j, n)) continue;
      ty__job_kill_node(ctl, j, n); /* a kill it missed while away */
      ty__job_launch(ctl, j);       /* ranks still waiting for their LaunchTask */
    }
  }
  ty__sched_request(ctl);
  free(rc->kill);
  free(rc->node);
  free(rc);
}

/* A refused node name for a message: its first 64 bytes, control bytes
 * shown as '?'. */
static const char *shown_name(const char *name, char out[65]) {
  size_t i = 0;
  for (; name[i] && i < 64; i++)
    out[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i];
  out[i] = '\0';
  return out;
}

/* The name is one hostlists and -w/-x can write: checked before the
 * auth.nodes list, so a malformed one is named as such. */
static int check_name(const char *name, char *err, size_t len) {
  char shown[65];
  if (ty_node_name_ok(name)) return 0;
  return ty_errf(err, len, TY_EINVAL,
                 "node.name: \"%s\" is not a node name (" TY_NODE_NAME_RULE ")",
                 shown_name(name, shown));
}

static int check_register(ty_controller *ctl, ty_rpc_conn *c, const ty_node_report *rep, char *err,
                          size_t len) {
  if (!rep->io_addr[0] || !strchr(rep->io_addr, ':'))
    return ty_errf(err, len, TY_EINVAL, "node.io_addr: \"%.64s\" is not host:port", rep->io_addr);
  if (rep->n_gpus > 64)
    return ty_errf(err, len, TY_EINVAL, "node.gpus: %u GPUs, at most 64 are supported",
                   rep->n_gpus);
  ty_cluster_node *mine = ty__node_by_conn(ctl, c);
  if (mine && strcmp(mine->name, rep->name) != 0)
    return ty_errf(err, len, TY_ESTATE, "this connection is already registered as node %.64s",
                   mine->name);
  ty_cluster_node *n = ty__node_find(ctl, rep->name);
  if (n && n->conn && n->conn != c) {
    int64_t silent = ty_mono_ms() - n->last_seen_mono;
    if (silent < (int64_t)ctl->cfg.node_timeout_ms)
      return ty_errf(err, len, TY_EEXIST, "node %.64s is already connected from %s", rep->name,
                     ty_rpc_peer(n->conn));
    ty_warn("node %s: replacing a silent connection from %s", n->name, ty_rpc_peer(n->conn));
    ty_rpc_conn *old = n->conn;
    n->conn = NULL;
    ty_rpc_close(old);
  }
  return 0;
}

void ty__h_register(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t len) {
  ty_node_report rep;
  char err[TY_ERR_LEN];
  int decoded = ty__conv_register_req(p, len, &rep);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "a RegisterNodeRequest carrying a node");
    return;
  }
  if (check_name(rep.name, err, sizeof err) != 0) {
    ty__node_report_close(&rep);
    ty__reply_finish(r, TY_EINVAL, err);
    return;
  }
  if (!ty_policy_may_register(&ctl->policy, rep.name)) {
    ty_cluster_node *known = ty__node_find(ctl, rep.name);
    if (known) {
      snprintf(known->refused, sizeof known->refused, "not listed in auth.nodes");
      known->refused_mono = ty_mono_ms();
    }
    ty__auth_refuse(r, "node_not_listed",
                    "RegisterNode: permission denied: node \"%.64s\" is "
                    "not listed in auth.nodes of traind's configuration",
                    rep.name);
    ty__node_report_close(&rep);
    return;
  }
  int rc = check_register(ctl, r->conn, &rep, err, sizeof(err));
  if (rc != 0 || !r->conn) {
    ty__node_report_close(&rep);
    ty__reply_finish(r, rc ? rc : TY_ECLOSED, rc ? err : "connection closed");
    return;
  }
  /* The jobs to kill are among the reported tasks, whose count is the
   * worker's: checked, not aborted on. */
  uint64_t *kill = ty_wire_calloc(rep.n_tasks, sizeof(*kill));
  if (!kill) {
    ty__node_report_close(&rep);
    ty__reply_finishf(r, TY_ENOMEM, "tasks: no memory to reconcile %zu reported tasks",
                      rep.n_tasks);
    return;
  }
  ty_txn *t = ty_txn_create();
  ty_cluster_node *n = node_upsert(ctl, &rep, r->conn, t);
  ty_info("node %s registered from %s: %u cpus, %u gpus, %llu bytes, io %s, %zu tasks reported",
          n->name, ty_rpc_peer(r->conn), n->cpus, n->n_gpus, (unsigned long long)n->memory,
          n->io_addr, rep.n_tasks);
  reg_ctx *rcx = ty_xcalloc(1, sizeof(*rcx));
  rcx->r = r;
  rcx->kill = kill;
  rcx->node = ty_strdup(n->name);
  ctl->reg_gen++;
  ty__node_save(n, t);
  reconcile_reported(ctl, n, &rep, rcx, t);
  reconcile_missing(ctl, n, t);
  ty__node_report_close(&rep);
  ty__commit(ctl, t, on_register_committed, rcx);
}

/* ---- Heartbeat ----------------------------------------------------------------------------- */

void ty__node_leaving(ty_cluster_node *n, ty_txn *t) {
  if (n->leaving) return;
  n->leaving = true;
  ty_info("node %s: its worker is stopping; placing nothing more there", n->name);
  int from = n->state;
  if (n->state == TY_NODE_UP) {
    n->state = TY_NODE_DRAINING;
    free(n->reason);
    n->reason = ty_strdup("worker shutting down");
  }
  char actor[96];
  snprintf(actor, sizeof(actor), "node:%.64s", n->name);
  ty__node_event(n, from, n->state, "stopping", "worker shutting down", actor, t);
  ty__node_save(n, t);
}

void ty__node_launch_failed(ty_cluster_node *n, const char *msg, ty_txn *t) {
  if (n->drain) return;
  char why[TY_ERR_LEN], reason[TY_ERR_LEN + 32];
  snprintf(why, sizeof(why), "launch failed: %.400s", msg);
  snprintf(reason, sizeof(reason), "drained by controller: %s", why);
  ty_warn("node %s: draining it: %s", n->name, why);
  int from = n->state;
  n->drain = true;
  if (n->state == TY_NODE_UP) n->state = TY_NODE_DRAINING;
  free(n->reason);
  n->reason = ty_strdup(reason);
  ty__node_event(n, from, n->state, "drain", why, "controller", t);
  ty__node_save(n, t);
}

void ty__h_heartbeat(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t len) {
  char *name = NULL;
  uint32_t running = 0;
  bool stopping = false;
  int decoded = ty__conv_heartbeat_req(p, len, &name, &running, &stopping);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "a HeartbeatRequest");
    return;
  }
  ty_cluster_node *n = ty__node_by_conn(ctl, r->conn);
  if (name[0] && strcmp(name, n->name) != 0) {
    ty__reply_finishf(r, TY_EINVAL, "node: heartbeat names %.64s on the connection of %.64s", name,
                      n->name);
    free(name);
    return;
  }
  free(name);
  n->last_seen_mono = ty_mono_ms();
  n->last_seen_ms = ty_now_ms();
  n->running_tasks = running;
  if (stopping && !n->leaving) {
    ty_txn *t = ty_txn_create();
    ty__node_leaving(n, t);
    ty__commit(ctl, t, NULL, NULL);
  }
  ty__reply_finish(r, 0, NULL);
}

/* ---- TaskUpdate ------------------------------------------------------------------------------ */

static void on_update_committed(int status, void *ud) {
  ty_reply *r = ud;
  if (status != 0)
    ty__reply_finish(r, TY_ESTORE, "the task result was not stored; resend it");
  else
    ty__reply_finish(r, 0, NULL);
}

/* A worker sent the job's --signal warning: one history entry per run (every
 * rank's worker reports it). NULL when already recorded. */
static ty_txn *warned(ty_job *j, int32_t sig, const ty_cluster_node *n) {
  if (j->warned_run == j->run || j->state != TY_JOB_RUNNING) return NULL;
  j->warned_run = j->run;
  const char *name = sigabbrev_np(sig);
  char why[TY_ERR_LEN], actor[96];
  snprintf(why, sizeof(why), "warning: SIG%s sent to the tasks %u s before the time limit of %u s",
           name ? name : "?", j->spec.warn_before_s, j->spec.time_limit_s);
  snprintf(actor, sizeof(actor), "worker:%.64s", n->name);
  ty_txn *t = ty_txn_create();
  ty__job_note(j, why, actor, t);
  return t;
}

void ty__h_task_update(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t len) {
  ty_task_report tr;
  int decoded = ty__conv_task_update_req(p, len, &tr);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "a TaskUpdateRequest");
    return;
  }
  ty_cluster_node *n = ty__node_by_conn(ctl, r->conn);
  /* A node's running_tasks is what its worker last said (registration,
   * heartbeats), +1 per launch it accepted (launch.c) and -1 per end it
   * reported since, so an end shows before the next heartbeat; 0 once it is
   * DOWN (controller.c), or once a stopping worker's connection closes
   * (rpc.c: it exits only after its tasks ended, with no heartbeat after
   * them). Any end reported is a task no longer running there, ours or
   * stale. */
  if (ty_task_state_ended(tr.state) && n->running_tasks > 0) n->running_tasks--;
  ty_job *j = ty__job_find(ctl, tr.job_id);
  ty_rank *rk = our_rank(j, tr.rank, n);
  if (!rk) {
    /* Stale: the rank already ended, or belongs to an earlier run. The
     * worker forgets the task on this answer, and the end it repeats may be
     * in a commit still in flight (a resent report: its first copy ended
     * the rank in memory), so the answer waits for every transaction before
     * it, as an empty one's callback runs after theirs. */
    ty_debug("node %s: TaskUpdate for job %llu rank %u ignored (not running there)", n->name,
             (unsigned long long)tr.job_id, tr.rank);
    ty__task_report_close(&tr);
    ty__commit(ctl, ty_txn_create(), on_update_committed, r);
    return;
  }
  if (!ty_task_state_ended(tr.state)) {
    if (rk->state == RANK_LAUNCHING) rk->state = RANK_RUNNING;
    ty_txn *t = tr.warned_signal ? warned(j, tr.warned_signal, n) : NULL;
    ty__task_report_close(&tr);
    if (t)
      ty__commit(ctl, t, on_update_committed, r);
    else
      ty__reply_finish(r, 0, NULL);
    return;
  }
  ty_txn *t = ty_txn_create();
  rank_ended(ctl, j, &tr, n, t);
  ty__task_report_close(&tr);
  ty__commit(ctl, t, on_update_committed, r);
}
