/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler's operations on the controller: ListQueues, UpdateQueue
 * (create, update, delete; pause and resume are updates of `state`),
 * UpdateNode (drain, resume; delete is node_delete.c's) and GetShares
 * (`trainctl share`); the job operations are update_job.c's (UpdateJob,
 * each action admin_job.c's) and explain.c's (ExplainJob).
 *
 * Every change is applied in memory, written with an event naming the actor
 * ("user:alice") in one group-committed transaction, and answered only once
 * that is durable; a queue or node change whose write fails is undone, so
 * one answered "not stored" is not in effect. Job changes are rows in `events` (state unchanged,
 * the reason says what changed); queue changes are rows in `admin_events`, node changes in
 * `node_events` (with the node's state before and after).
 *
 * Who may do what (auth.c, docs/security.md): job changes need the job's
 * owner or an operator, and only operators raise a priority; queue and node
 * changes need an operator. The caller is the one its credential names;
 * every change is recorded with that name.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

/* ---- commits and answers --------------------------------------------------------- */

void ty__admin_committed(int status, void *ud) {
  ty_reply *r = ud;
  ty_controller *ctl = r->ctl; /* r is freed once answered */
  if (status != 0) {
    ty__reply_not_stored(r, status, "the change was not stored", "retry");
    return;
  }
  ty__reply_finish(r, 0, NULL);
  ty__sched_request(ctl);
}

void ty__actor_of(const char *user, char *buf, size_t len) {
  snprintf(buf, len, "user:%.64s", user && user[0] ? user : "unknown");
}

void ty__admin_event(ty_txn *t, const char *user, const char *kind, const char *object,
                     const char *action, const char *detail) {
  char actor[96];
  ty__actor_of(user, actor, sizeof(actor));
  ty__admin_event_by(t, actor, kind, object, action, detail);
}

void ty__admin_event_by(ty_txn *t, const char *actor, const char *kind, const char *object,
                        const char *action, const char *detail) {
  ty_admin_event_row ev = {.time_ms = ty_now_ms(),
                           .actor = actor,
                           .kind = kind,
                           .object = object,
                           .action = action,
                           .detail = detail};
  ty_txn_add_admin_event(t, &ev);
  ty_info("%s %s: %s by %s%s%s", kind, object, action, actor, detail[0] ? ": " : "", detail);
}

/* ---- submission ------------------------------------------------------------------ */

/* A memory size for messages: "N MiB", or "no limit" for 0. */
const char *ty__mem_text(uint64_t bytes, char buf[32]) {
  if (!bytes) return "no limit";
  snprintf(buf, 32, "%.0f MiB", (double)bytes / (1ull << 20));
  return buf;
}

int ty__mem_resolve(const ty_controller *ctl, const ty_queue_info *q, uint64_t asked,
                    const char *what, uint64_t *out_mem, int *out_source, char *err, size_t len) {
  uint64_t mem = asked, def = ctl->sched.default_mem_per_node;
  int src = TY_MEM_ASKED;
  if (asked == TY_MEM_ALL)
    mem = q->max_mem, src = TY_MEM_ALL_OF_NODE;
  else if (!asked && q->default_mem)
    mem = q->default_mem, src = TY_MEM_QUEUE_DEFAULT;
  else if (!asked && def)
    mem = def, src = TY_MEM_CLUSTER_DEFAULT;
  if (q->max_mem && mem > q->max_mem && src == TY_MEM_ASKED) {
    char a[32], m[32];
    return ty_errf(err, len, TY_EINVAL, "%s: %s per node exceeds queue %.64s's max_mem of %s", what,
                   ty__mem_text(mem, a), q->name, ty__mem_text(q->max_mem, m));
  }
  /* The cluster's default is for queues that set none: a queue's max wins. */
  if (q->max_mem && mem > q->max_mem) mem = q->max_mem;
  *out_mem = mem;
  *out_source = src;
  return 0;
}

int ty__mem_apply(const ty_controller *ctl, const ty_queue_info *q, ty_job_spec *s, char *err,
                  size_t len) {
  /* --exclusive has its nodes' whole memory (launch.c): no default, no max
   * (q is NULL only for a caller that checked no queue). */
  if (s->exclusive || !q) {
    s->mem_source = TY_MEM_ASKED;
    if (s->mem_per_node == TY_MEM_ALL) s->mem_per_node = 0;
    return 0;
  }
  /* mem_source is traind's word: what the client sent is replaced. */
  return ty__mem_resolve(ctl, q, s->mem_per_node, "job.resources.mem_per_node", &s->mem_per_node,
                         &s->mem_source, err, len);
}

uint64_t ty__mem_asked(const ty_job_spec *s) {
  if (s->mem_source == TY_MEM_ALL_OF_NODE) return TY_MEM_ALL;
  return s->mem_source == TY_MEM_ASKED ? s->mem_per_node : 0;
}

int ty__sched_check_spec(ty_controller *ctl, ty_job_spec *s, char *err, size_t len) {
  ty_queue_info *q = ty__queue_find(ctl, s->queue);
  if (!q || q->state == TY_QUEUE_DELETED) {
    char names[256];
    ty__queue_names(ctl, names, sizeof names);
    return ty_errf(err, len, TY_ENOTFOUND,
                   "job.queue: unknown queue \"%.128s\" (-p/--partition; the queues are: %s)",
                   s->queue, names);
  }
  if (q->state == TY_QUEUE_CLOSED)
    return ty_errf(err, len, TY_ESTATE, "job.queue: queue \"%.128s\" is CLOSED and accepts no jobs",
                   s->queue);
  /* --time=UNLIMITED: as long as the queue allows (0: no limit at all). */
  bool unlimited = s->time_limit_s == TY_TIME_LIMIT_UNLIMITED;
  if (unlimited) s->time_limit_s = q->max_time_s;
  if (!unlimited && q->max_time_s && s->time_limit_s > q->max_time_s)
    return ty_errf(err, len, TY_EINVAL,
                   "job.time_limit_s: %u s exceeds queue %.64s's max_time of %u s", s->time_limit_s,
                   q->name, q->max_time_s);
  /* None asked: the queue's default, else its max (Slurm's DefaultTime, else MaxTime). */
  if (!unlimited && !s->time_limit_s)
    s->time_limit_s = q->default_time_s ? q->default_time_s : q->max_time_s;
  int rc = ty__mem_apply(ctl, q, s, err, len);
  if (rc != 0) return rc;
  if (s->warn_signal > 64)
    return ty_errf(err, len, TY_EINVAL, "job.warn_signal: %u is not a signal number (1-64)",
                   s->warn_signal);
  if (s->warn_signal && s->time_limit_s && s->warn_before_s >= s->time_limit_s)
    return ty_errf(err, len, TY_EINVAL,
                   "job.warn_before_s: %u s is not below the time limit of %u s", s->warn_before_s,
                   s->time_limit_s);
  if (s->process.has_umask && s->process.umask > 0777)
    return ty_errf(err, len, TY_EINVAL, "job.process.umask: %#o is not a umask (0-0777)",
                   s->process.umask);
  if (s->max_rank_failure_requeues > 100)
    return ty_errf(err, len, TY_EINVAL, "job.max_rank_failure_requeues: %u is above 100",
                   s->max_rank_failure_requeues);
  /* Up to ten years ahead: anything later is a unit mistake (seconds for ms). */
  int64_t begin_max = ty_now_ms() + 10LL * 366 * 86400 * 1000;
  if (s->begin_ms < 0 || s->begin_ms > begin_max)
    return ty_errf(err, len, TY_EINVAL,
                   "job.begin_time_ms: %lld is not a time from now to ten years ahead (ms since "
                   "the epoch; 0 = now)",
                   (long long)s->begin_ms);
  return 0;
}

/* ---- queues ---------------------------------------------------------------------------- */

/* q with its live counts; borrows q's name. */
static ty_queue_info view_of(ty_controller *ctl, const ty_queue_info *q) {
  ty_queue_info v = *q;
  v.pending = v.running = v.gpus_used = 0;
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    const ty_job *j = ctl->jobs[i];
    if (!j->committed || strcmp(j->spec.queue, q->name) != 0) continue;
    if (j->state == TY_JOB_PENDING) v.pending++;
    if (j->state == TY_JOB_RUNNING) {
      v.running++;
      for (uint32_t s = 0; s < j->n_slots; s++)
        v.gpus_used += (uint32_t)__builtin_popcountll(j->slots[s].gpus);
    }
  }
  return v;
}

void ty__h_list_queues(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  (void)p, (void)n; /* ListQueuesRequest has no fields */
  ty_queue_info *v = ty_xcalloc(ctl->n_queues ? ctl->n_queues : 1, sizeof(*v));
  size_t k = 0;
  for (size_t i = 0; i < ctl->n_queues; i++)
    if (ctl->queues[i].state != TY_QUEUE_DELETED) v[k++] = view_of(ctl, &ctl->queues[i]);
  int rc = ty__conv_list_queues_resp(v, k, &r->out);
  free(v);
  ty__reply_finish(r, rc, rc ? "cannot encode the answer" : NULL);
}

static void queue_persist(const ty_queue_info *q, ty_txn *t) {
  ty_queue_row row = {.name = q->name,
                      .priority_tier = q->tier,
                      .state = ty_queue_state_name(q->state),
                      .share = q->share,
                      .max_running = q->max_running,
                      .max_gpus = q->max_gpus,
                      .max_gpus_per_user = q->max_gpus_per_user,
                      .preemptible = q->preemptible,
                      .default_time_s = q->default_time_s,
                      .max_time_s = q->max_time_s,
                      .default_mem = q->default_mem,
                      .max_mem = q->max_mem,
                      .allow_groups = q->allow_groups,
                      .allow_users = q->allow_users};
  ty_txn_upsert_queue(t, &row);
}

static void join_settings(const ty_admin_req *a, char *out, size_t len) {
  out[0] = '\0';
  for (size_t i = 0, w = 0; i < a->n_settings && w < len; i++)
    w += (size_t)snprintf(out + w, len - w, "%s%s", i ? " " : "", a->settings[i]);
}

static int queue_delete(ty_controller *ctl, const ty_admin_req *a, const ty_queue_info *cur,
                        ty_queue_info *q, char *err, size_t len) {
  if (!strcmp(a->name, "default"))
    return ty_errf(err, len, TY_EINVAL, "queue default cannot be deleted");
  ty_queue_info v = view_of(ctl, cur);
  if (v.pending + v.running)
    return ty_errf(err, len, TY_ESTATE,
                   "queue %.64s has %u pending and %u running jobs; move or cancel them first",
                   a->name, v.pending, v.running);
  q->state = TY_QUEUE_DELETED;
  return 0;
}

/* Applies a's settings to q and resolves its access lists on this host:
 * a name that does not exist is refused when the request sets that list;
 * otherwise the gids are refreshed and a group gone since matches no one. */
static int queue_settings(ty_queue_info *q, const ty_admin_req *a, char *err, size_t len) {
  int rc = ty_queue_apply(q, a->settings, a->n_settings, err, len);
  if (rc != 0) return rc;
  bool sets_lists = false;
  for (size_t i = 0; i < a->n_settings; i++)
    if (!strncmp(a->settings[i], "allow_groups=", 13) ||
        !strncmp(a->settings[i], "allow_users=", 12))
      sets_lists = true;
  char why[TY_ERR_LEN];
  rc = ty_queue_access_resolve(q, sets_lists ? err : why, sets_lists ? len : sizeof why);
  return sets_lists ? rc : 0;
}

/* Builds the new version of the queue the request names into *q (its name
 * owned by *q). */
static int queue_change(ty_controller *ctl, const ty_admin_req *a, ty_queue_info *q, bool *created,
                        char *err, size_t len) {
  ty_queue_info *cur = ty__queue_find(ctl, a->name);
  bool live = cur && cur->state != TY_QUEUE_DELETED;
  bool create = !strcmp(a->action, "create");
  *created = create;
  if (create && live) return ty_errf(err, len, TY_EEXIST, "queue %.64s already exists", a->name);
  if (create && ty_queue_check_new_name(a->name, err, len) != 0) return TY_EINVAL;
  if (!create && !live) return ty_errf(err, len, TY_ENOTFOUND, "queue %.64s not found", a->name);
  *q = create ? (ty_queue_info){.state = TY_QUEUE_OPEN, .share = 1} : *cur;
  q->name = ty_strdup(a->name);
  if (create) return queue_settings(q, a, err, len);
  if (!strcmp(a->action, "update")) {
    if (a->n_settings == 0) return ty_errf(err, len, TY_EINVAL, "settings: nothing to change");
    return queue_settings(q, a, err, len);
  }
  if (!strcmp(a->action, "delete")) return queue_delete(ctl, a, cur, q, err, len);
  return ty_errf(err, len, TY_EINVAL, "action: \"%.32s\" is not create, update or delete",
                 a->action);
}

/* A queue change waiting for its commit, with the version it replaced: a
 * change answered "not stored" must not stay in effect (the store still has
 * the old version, and jobs sent to a queue only memory has would fail their
 * foreign key for good). */
typedef struct queue_undo {
  ty_reply *r;
  char *name;
  bool existed;      /* false: the change created the queue */
  ty_queue_info old; /* what existed held before (its name owned) */
} queue_undo;

static void queue_restore(ty_controller *ctl, queue_undo *u) {
  ty_queue_info *slot = ty__queue_find(ctl, u->name);
  if (!slot) return;
  ty_warn("queue %s: the change was not stored; the queue is as it was before", u->name);
  if (!u->existed) { /* a create undone: the queue is gone, as a deleted one is */
    slot->state = TY_QUEUE_DELETED;
    return;
  }
  ty_queue_info_close(slot);
  *slot = u->old;
  u->old = (ty_queue_info){0};
}

static void queue_committed(int status, void *ud) {
  queue_undo *u = ud;
  if (status != 0) queue_restore(u->r->ctl, u);
  ty__admin_committed(status, u->r);
  ty_queue_info_close(&u->old);
  free(u->name);
  free(u);
}

void ty__h_update_queue(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  ty_admin_req a;
  char err[TY_ERR_LEN];
  int decoded = ty__conv_update_queue_req(p, n, &a);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "an UpdateQueueRequest");
    return;
  }
  ty_queue_info q = {0};
  bool created = false;
  char op[128];
  snprintf(op, sizeof op, "queue %.32s %.64s", a.action, a.name);
  int rc = ty__auth_operator(r, op, err, sizeof(err));
  if (rc == 0) rc = ty_queue_check_name(a.name, err, sizeof(err));
  if (rc == 0) rc = queue_change(ctl, &a, &q, &created, err, sizeof(err));
  if (rc != 0) {
    ty_queue_info_close(&q);
    ty__admin_req_close(&a);
    r->refusal = "not_operator";
    ty__reply_finish(r, rc, err);
    return;
  }
  queue_undo *u = ty_xcalloc(1, sizeof(*u));
  u->r = r;
  u->name = ty_strdup(a.name);
  ty_queue_info *slot = ty__queue_find(ctl, a.name);
  u->existed = slot && !created;
  if (!slot) {
    ctl->queues = ty_xrealloc(ctl->queues, (ctl->n_queues + 1) * sizeof(*ctl->queues));
    slot = &ctl->queues[ctl->n_queues++];
  } else if (u->existed) {
    u->old = *slot; /* the old version moves to the undo */
  } else {
    ty_queue_info_close(slot);
  }
  *slot = q;
  ty_txn *t = ty_txn_create();
  queue_persist(slot, t);
  char detail[TY_ERR_LEN];
  join_settings(&a, detail, sizeof(detail));
  ty__admin_event(t, r->who.user, "queue", a.name, created ? "create" : a.action, detail);
  ty_queue_info v = view_of(ctl, slot);
  ty__conv_update_queue_resp(&v, &r->out);
  ty__admin_req_close(&a);
  ty__commit(ctl, t, queue_committed, u);
}

/* ---- nodes --------------------------------------------------------------------------- */

static int node_change(const ty_controller *ctl, ty_cluster_node *nd, const ty_admin_req *a,
                       const char *user, char *err, size_t len) {
  if (!strcmp(a->action, "drain")) {
    char why[TY_ERR_LEN];
    snprintf(why, sizeof(why), "drained by %.64s%s%s", user, a->reason[0] ? ": " : "", a->reason);
    nd->drain = true;
    if (nd->state == TY_NODE_UP) nd->state = TY_NODE_DRAINING;
    free(nd->reason);
    nd->reason = ty_strdup(why);
    return 0;
  }
  if (!strcmp(a->action, "resume")) {
    if (!nd->drain)
      return ty_errf(err, len, TY_ESTATE, "node %.64s is not drained (it is %s)", nd->name,
                     ty_node_state_name(nd->state));
    if (!ty_policy_may_register(&ctl->policy, nd->name))
      return ty_errf(err, len, TY_ESTATE,
                     "node %.64s is not listed in auth.nodes: list it in --config and run "
                     "`trainctl reconfigure` before resuming it",
                     nd->name);
    nd->drain = false;
    if (nd->state == TY_NODE_DRAINING || nd->state == TY_NODE_DRAINED) {
      nd->state = TY_NODE_UP;
      free(nd->reason);
      nd->reason = ty_strdup("");
    }
    return 0;
  }
  return ty_errf(err, len, TY_EINVAL, "action: \"%.32s\" is not drain, resume or delete",
                 a->action);
}

/* A node change waiting for its commit, with what it replaced (as for
 * queues: a change answered "not stored" is not in effect). */
typedef struct node_undo {
  ty_reply *r;
  char *name;
  int from, to; /* the state before and after the change */
  bool drain;
  char *reason;
} node_undo;

static void node_restore(ty_controller *ctl, node_undo *u) {
  ty_cluster_node *nd = ty__node_find(ctl, u->name);
  if (!nd) return;
  ty_warn("node %s: the change was not stored; the node is as it was before", u->name);
  nd->drain = u->drain;
  free(nd->reason);
  nd->reason = u->reason;
  u->reason = NULL;
  if (nd->state == u->to)
    nd->state = u->from;
  else if (!nd->drain && !nd->leaving &&
           (nd->state == TY_NODE_DRAINING || nd->state == TY_NODE_DRAINED))
    nd->state = TY_NODE_UP; /* an undone drain that went on to DRAINED */
}

static void node_undo_free(node_undo *u) {
  free(u->reason);
  free(u->name);
  free(u);
}

static void node_committed(int status, void *ud) {
  node_undo *u = ud;
  if (status != 0) node_restore(u->r->ctl, u);
  ty__admin_committed(status, u->r);
  node_undo_free(u);
}

static node_undo *node_undo_new(ty_reply *r, const ty_cluster_node *nd) {
  node_undo *u = ty_xcalloc(1, sizeof(*u));
  u->r = r;
  u->name = ty_strdup(nd->name);
  u->from = nd->state;
  u->drain = nd->drain;
  u->reason = ty_strdup(nd->reason ? nd->reason : "");
  return u;
}

void ty__h_update_node(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  ty_admin_req a;
  char err[TY_ERR_LEN];
  int decoded = ty__conv_update_node_req(p, n, &a);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "an UpdateNodeRequest");
    return;
  }
  ty_cluster_node *nd = a.name[0] ? ty__node_find(ctl, a.name) : NULL;
  int rc = 0, from = nd ? nd->state : 0;
  char op[128];
  snprintf(op, sizeof op, "node %.32s %.64s", a.action, a.name);
  if ((rc = ty__auth_operator(r, op, err, sizeof(err))) != 0)
    r->refusal = "not_operator";
  else if (!a.name[0])
    rc = ty_errf(err, sizeof(err), TY_EINVAL, "name: a node name is required");
  else if (!nd)
    rc = ty_errf(err, sizeof(err), TY_ENOTFOUND, "node %.64s not found", a.name);
  else
    rc = ty_one_line_check("reason", a.reason, TY_NODE_MAX_REASON, err, sizeof(err));
  if (rc == 0 && !strcmp(a.action, "delete")) {
    ty__node_delete(ctl, r, nd, a.reason);
    ty__admin_req_close(&a);
    return;
  }
  node_undo *u = rc == 0 && nd ? node_undo_new(r, nd) : NULL;
  if (u) rc = node_change(ctl, nd, &a, r->who.user, err, sizeof(err));
  if (rc != 0) {
    if (u) node_undo_free(u);
    ty__admin_req_close(&a);
    ty__reply_finish(r, rc, err);
    return;
  }
  u->to = nd->state;
  ty_txn *t = ty_txn_create();
  ty__node_save(nd, t);
  char actor[96];
  ty__actor_of(r->who.user, actor, sizeof(actor));
  ty__node_event(nd, from, nd->state, a.action, a.reason, actor, t);
  ty_info("node %s: %s by %s%s%s", nd->name, a.action, actor, a.reason[0] ? ": " : "", a.reason);
  ty__conv_update_node_resp(nd, &r->out);
  ty__admin_req_close(&a);
  ty__commit(ctl, t, node_committed, u);
}

/* ---- why and share ------------------------------------------------------------------------ */

void ty__h_get_shares(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  (void)p, (void)n; /* GetSharesRequest has no fields */
  ty_sched_share *rows = NULL;
  size_t nr = 0;
  if (ty__sched_shares(ctl, &rows, &nr) != 0) {
    ty__reply_finish(r, TY_ENOMEM, "out of memory");
    return;
  }
  double *g = ty_xcalloc(nr ? nr : 1, sizeof(*g)), *c = ty_xcalloc(nr ? nr : 1, sizeof(*c));
  for (size_t i = 0; i < nr; i++)
    for (size_t u = 0; u < ctl->n_usage; u++) {
      const ty_usage *us = &ctl->usage[u];
      if (strcmp(us->queue, rows[i].queue) != 0) continue;
      if (rows[i].user && strcmp(us->user, rows[i].user) != 0) continue;
      g[i] += us->gpu_s;
      c[i] += us->cpu_s;
    }
  int rc = ty__conv_shares_resp(rows, g, c, nr, ctl->sched.halflife_s, &r->out);
  free(rows);
  free(g);
  free(c);
  ty__reply_finish(r, rc, rc ? "cannot encode the answer" : NULL);
}
