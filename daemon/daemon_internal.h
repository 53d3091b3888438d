/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by the controller's files. They call each other in one
 * direction only, lowest first (no call circle):
 *
 *   state.c, reply.c, token.c   tables and lookups, the commit and
 *                               scheduling triggers, answering requests
 *   auth.c                      admitting requests (credentials, who may do
 *                               what), signing calls to workers
 *   convert*.c                  protobuf <-> these structs (pure; declared in
 *                               convert_internal.h)
 *   check.c                     graph jobs' model checks and plans, in a
 *                               child process; the plan cache
 *   graph.c                     graph jobs: checkpoints, rendezvous, plans
 *   jobs.c                      job transitions, slots, kill, ends
 *   launch.c                    placing a job and sending LaunchTask
 *   sched_pass.c                the scheduler's pass and tick duties
 *   admin.c, rpc_worker.c,      request handlers
 *   rpc_client.c, submit.c
 *   rpc.c                       the dispatch table
 *   metrics.c                   Prometheus metrics (docs/metrics.md)
 *   controller.c                lifecycle, loading, the tick
 *
 * The controller's state (nodes, jobs, ranks, slots, the controller) and
 * its lifetimes are in daemon/controller_types.h.
 */
#ifndef TY_DAEMON_DAEMON_INTERNAL_H
#define TY_DAEMON_DAEMON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/controller_types.h"
#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "lib/http/http.h"
#include "lib/rpc/rpc.h"
#include "scheduler/scheduler.h"

/* ---- state.c: tables, lookups and triggers ---- */
/* A growing list of job ids (v owned, free it); ty__ids_add appends one,
 * shaped as ty_store_array_rows' callback. */
typedef struct ty__ids {
  uint64_t *v;
  size_t n, cap;
} ty__ids;
int ty__ids_add(uint64_t id, void *ids);
/* A job in memory: the live set, then the finished cache (touched as used). */
ty_job *ty__job_find(ty_controller *ctl, uint64_t id);
/* The live jobs with ids in [lo, hi) (a submit's jobs, say): ctl->jobs[*at]
 * and the count returned after it, in id order, as one search and a walk
 * rather than a search per id. Valid until the live set changes. */
size_t ty__live_between(const ty_controller *ctl, uint64_t lo, uint64_t hi, size_t *at);
/* ty__job_find, else a finished job read back from the store into the
 * cache; NULL when there is no such job (or its row does not decode). */
ty_job *ty__job_get(ty_controller *ctl, uint64_t id);
/* A job named by a reference: a plain id, or element `task` of array id
 * (in memory, else in the store). NULL when none. */
ty_job *ty__job_ref(ty_controller *ctl, const ty_job_ref *r);
/* Adds j to the live set; a job with a request id is also indexed by it. */
void ty__job_add(ty_controller *ctl, ty_job *j);
/* The job uid `uid` submitted with request id `rid` (not ""), or NULL. */
ty_job *ty__job_by_request(ty_controller *ctl, uint32_t uid, const char *rid);
/* Takes the job out of the table and frees it (a submit that was not stored). */
void ty__job_remove(ty_controller *ctl, uint64_t id);
/* How many jobs of the live set uid submitted (the ended ones with ranks
 * still to report included). */
uint32_t ty__user_live_jobs(const ty_controller *ctl, uint32_t uid);
/* After j's state changed: its user's count of jobs not ended follows. */
void ty__user_jobs_state(ty_controller *ctl, ty_job *j);
/* Frees the per-user counts (controller destroy). */
void ty__user_jobs_close(ty_controller *ctl);
void ty__job_free(ty_job *j);
/* ty_idmap_put for the controller's own bookkeeping: out of memory aborts,
 * as ty_xmalloc does (base.h's allocation policy). */
void ty__idmap_xput(ty_idmap *m, ty_id_node *n, uint64_t id);
/* A finished job from its stored row (no slots or ranks; nodes as text). */
ty_job *ty__job_from_row(ty_controller *ctl, const ty_job_row *r);
/* Something listings show of j changed: its encoded JobInfo is stale. */
void ty__job_dirty(ty_controller *ctl, ty_job *j);
/* The tick's sweep: ended jobs with no ranks left leave the live set for the
 * finished cache, and the cache keeps at most --job-cache jobs, none unused
 * for longer than --min-job-age. */
void ty__jobs_sweep(ty_controller *ctl);
/* An ended job becomes live again (requeued): out of the cache, into the
 * live set. */
void ty__job_unretire(ty_controller *ctl, ty_job *j);
/* A trimmed job (an ended job in the cache, a pending array element that
 * never started) holds no decoded argv and env: they are decoded from its
 * stored spec, which holds them, when it launches. 0, or err names the job
 * whose stored spec does not decode. */
int ty__job_untrim(ty_job *j, char *err, size_t len);
/* Drops j's decoded argv and env and its encoded infos (ty__job_untrim
 * brings argv and env back). */
void ty__job_trim(ty_job *j);
/* The finished cache's jobs and the bytes they hold (ty__job_kept_bytes
 * each): the trainyard_job_cache_* gauges. */
size_t ty__cache_bytes(const ty_controller *ctl);
/* The bytes a job holds beyond its fixed fields: its stored spec, decoded
 * argv and env, plan, graph progress and encoded JobInfos. */
size_t ty__job_kept_bytes(const ty_job *j);
ty_cluster_node *ty__node_find(ty_controller *ctl, const char *name);
ty_cluster_node *ty__node_by_conn(ty_controller *ctl, const ty_rpc_conn *c);
void ty__node_add(ty_controller *ctl, ty_cluster_node *n); /* takes n */
/* Takes n out of ctl->nodes (the later ones' index moves down by one) into
 * ctl->deleted_nodes: its name is free for a new node, the memory stays. */
void ty__node_remove(ty_controller *ctl, ty_cluster_node *n);
/* Puts a removed node back (a deletion that was not stored), last. */
void ty__node_unremove(ty_controller *ctl, ty_cluster_node *n);
/* The controller's one copy of name s (user and queue names), made on
 * first use and kept for the controller's life; NULL for NULL. A hash
 * table: a cluster's tens of thousands of users cost a probe each. */
const char *ty__name_intern(ty_controller *ctl, const char *s);
void ty__node_free(ty_cluster_node *n);
/* Seconds since n's last heartbeat, for people and metrics: from the wall
 * clock (now_ms - last_seen_ms, which the store keeps for a DOWN node), so a
 * controller restart does not reset a DOWN node's; from the monotonic clock
 * for a node not heard from since the controller started (last_seen_ms 0:
 * a node restored from the store, whose last heartbeat before the restart
 * was never stored; last_seen_mono is the timeout's clock, set to the
 * start at load as a grace). Never below 0. */
double ty__node_heartbeat_age_s(const ty_cluster_node *n, int64_t now_ms, int64_t now_mono);
/* The host part of "host:port" (a new string). */
char *ty__host_of(const char *addr);
/* Adds n's row to t; ty__node_persist commits it on its own. */
void ty__node_save(const ty_cluster_node *n, ty_txn *t);
/* On the tick: after writes that failed, every job and node in memory is
 * written whole again until that is stored (resync.c). */
void ty__store_resync(ty_controller *ctl);
/* A pending job's reason while it waits for the store (store_wait): its
 * RUNNING record was not stored, so it was not launched. */
#define TY__STORE_WAIT_REASON "the controller's store failed: retried when it writes again"
/* The reason of a connected node drained because a reconfigure took it
 * out of auth.nodes (reconfig.c). */
#define TY__UNLISTED_REASON "not listed in auth.nodes since a reconfigure"

void ty__node_persist(ty_controller *ctl, ty_cluster_node *n);
/* Adds a node event to t: n moved from `from` to `to` (equal: an action
 * that changed no state), with why and who. */
void ty__node_event(const ty_cluster_node *n, int from, int to, const char *action,
                    const char *reason, const char *actor, ty_txn *t);
ty_queue_info *ty__queue_find(ty_controller *ctl, const char *name);
/* "default, gpu" (the queues a job may name: not DELETED ones; CLOSED
 * ones too, which say so when named), cut to len with "...". */
void ty__queue_names(const ty_controller *ctl, char *out, size_t len);
/* The (user, queue) usage account, created at zero when absent. */
ty_usage *ty__usage_get(ty_controller *ctl, const char *user, const char *queue);
/* Commits txn; cb may be NULL. Logs a failed commit. */
void ty__commit(ty_controller *ctl, ty_txn *txn, ty_commit_cb cb, void *ud);
/* Asks for a scheduling pass soon (coalesced; controller.c runs it). */
void ty__sched_request(ty_controller *ctl);
/* The same for a stored submit of jobs first..first+n-1: the pass may be
 * left to the tick when it could place nothing (sched_pass.c). */
void ty__sched_request_submit(ty_controller *ctl, uint64_t first, uint32_t n);

/* ---- reply.c: answering requests ---- */
ty_reply *ty__reply_new(ty_controller *ctl, ty_rpc_conn *c, const ty_rpc_msg *req,
                        const char *method);
/* A request from inside traind on behalf of `who` (the web console's
 * actions): run a method's handler on it like an RPC's, and its answer
 * (status, message, r->out) goes to sink, which must not free r. */
ty_reply *ty__reply_local(ty_controller *ctl, const char *method, const ty_auth_id *who,
                          void (*sink)(ty_reply *r, int status, const char *message), void *ud);
/* Answers r (status 0 sends r->out as payload) and frees it. */
void ty__reply_finish(ty_reply *r, int status, const char *message);
void ty__reply_finishf(ty_reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Answers a request whose change was lost by the commit (status, not 0):
 * "WHAT: the controller's store failed (database or disk is full); THEN",
 * with SQLite's words for the failure, or that the controller is
 * stopping (TY_ECLOSED). */
void ty__reply_not_stored(ty_reply *r, int status, const char *what, const char *then);
/* The request's answer is a stream its handler now owns: r is counted as
 * answered and freed without sending anything. */
void ty__reply_streaming(ty_reply *r);
/* Answers a request whose payload did not decode (rc from a ty__conv_*
 * decoder): TY_EPROTO "payload is not WHAT", or TY_ENOMEM when copying it
 * ran out of memory. */
void ty__reply_bad_payload(ty_reply *r, int rc, const char *what);

/* ---- auth.c: admitting requests, who may do what, signed calls to workers ---- */
typedef enum {
  TY_AUTH_CLASS_CLIENT = 1, /* a user's MUNGE credential (or --auth none) */
  TY_AUTH_CLASS_WORKER,     /* the cluster's service (auth.workers) */
  TY_AUTH_CLASS_TOKEN,      /* a job-scoped token the handler checks */
} ty_auth_class;
/* Runs an admitted request: payload and cred (TOKEN class: the envelope's
 * credential) are valid during the call only. */
typedef void (*ty__admit_fn)(ty_controller *ctl, ty_reply *r, const uint8_t *payload, size_t len,
                             const uint8_t *cred, size_t cred_len);
/* Creates the schemes (probing munged: TY_EPERM when unreachable) and the
 * queue, resolves auth.service_user and auth.operator_group. */
int ty__auth_init(ty_controller *ctl, char *err, size_t len);
/* Every auth.operators name is a user on this host (getpwnam): a typo is
 * refused naming it, at start and at a reload, as auth.operator_group's. */
int ty__auth_check_operators(const ty_auth_policy *p, char *err, size_t len);
void ty__auth_close(ty_controller *ctl); /* on stop: the queue drains, then frees */
void ty__auth_free(ty_controller *ctl);  /* on destroy */
/* Verifies req's credential off the loop and calls `then` in arrival
 * order; refusals are answered here. */
void ty__auth_admit(ty_controller *ctl, ty_reply *r, ty_auth_class klass, const ty_rpc_msg *req,
                    ty__admit_fn then);
/* r's connection closed: its credential check, while still queued, is
 * skipped when its turn comes (no munged round trip for nobody). */
void ty__auth_withdraw(ty_reply *r);
/* Answers TY_EPERM, counted under `reason` (a static label). */
/* local.c: the Unix socket for local clients. Start: listens on
 * cfg.socket_path (nothing when NULL) with the TCP port's opts; an error
 * names the path. Stop: closes it and removes the file. refuses: true
 * (and r answered TY_EPERM) when r came on the socket and its method is
 * not CLIENT-class, or the kernel gave no peer credentials. */
int ty__local_start(ty_controller *ctl, const ty_rpc_conn_opts *opts, char *err, size_t len);
void ty__local_stop(ty_controller *ctl);
bool ty__local_refuses(ty_reply *r, ty_auth_class klass);

/* The store readers' gate (store_gate.c). ty__gate_admit: true when r may
 * run fn now (it holds a slot until its reply); false when it waits (fn
 * runs later with a copy of p) or was answered (out of memory). */
typedef void (*ty__gate_fn)(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__gate_init(ty_controller *ctl);
bool ty__gate_admit(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n, ty__gate_fn fn);
void ty__gate_leave(ty_controller *ctl, ty_reply *r);
void ty__gate_conn_closed(ty_controller *ctl, const ty_rpc_conn *c);
void ty__gate_stop(ty_controller *ctl);
void ty__auth_refuse(ty_reply *r, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Counts a refusal that is not the whole answer (one id of a CancelJob). */
void ty__auth_count(ty_controller *ctl, const char *method, const char *reason);
/* 0 when r's caller owns j or is an operator; else TY_EPERM and a sentence
 * naming `op`, the job, its owner and the caller. */
int ty__auth_job(const ty_reply *r, const ty_job *j, const char *op, char *err, size_t len);
/* 0 for operators; else TY_EPERM naming `op` and the caller. */
int ty__auth_operator(const ty_reply *r, const char *op, char *err, size_t len);
/* ---- queue_access.c: who may put jobs in which queue ---- */
/* (ty_queue_access_resolve and ty_queue_access_allows: daemon.h.) */
/* 0 when r's caller may put a job in queue `queue` (or there is no such
 * queue: its caller refuses that), else TY_EPERM: "queue Q: user U may not
 * `what` here (allowed: groups ...; users ...)", with r's refusal label. */
int ty__queue_admit(ty_controller *ctl, ty_reply *r, const char *queue, const char *what, char *err,
                    size_t len);

/* Whether r's caller may see j's command, environment and graph payload. */
bool ty__auth_sees_job(const ty_reply *r, const ty_job *j);
/* Signs the call with the workers' scheme (off the loop, in order) and
 * sends it on n's connection if that is still the one it was at the call;
 * otherwise cb gets TY_ECLOSED with a NULL conn. A signing failure reaches
 * cb as that status with a message. */
void ty__node_call(ty_controller *ctl, ty_cluster_node *n, const char *method, const ty_buf *b,
                   uint32_t timeout_ms, ty_rpc_answer_cb cb, void *ud);

/* ---- token.c: task tokens for interactive attach ---- */
/* Loads (or creates) STATE_DIR/attach.key. */
int ty__token_init(ty_controller *ctl, char *err, size_t len);
/* The job's attach key (32 bytes) for LaunchTask. */
void ty__token_job_key(const ty_controller *ctl, uint64_t job_id, uint8_t *out_key);
/* One token per rank of j, concatenated; the caller frees the array. NULL
 * when out of memory (a job's rank count is its submitter's choice). */
uint8_t *ty__token_issue(const ty_controller *ctl, const ty_job *j, size_t *out_token_len);
/* The same for n_ranks ranks of job_id (a job read back from the store). */
uint8_t *ty__token_issue_n(const ty_controller *ctl, uint64_t job_id, uint32_t n_ranks,
                           size_t *out_token_len);

/* ---- watch.c: job watches (WatchJob, SubmitJob with watch) ---- */
/* 0, or TY_ESTATE when the controller, or `who`, holds as many watches as
 * it takes (err names which). */
int ty__watch_admit(const ty_controller *ctl, const ty_auth_id *who, char *err, size_t len);
/* Sends j as it is on (c, request_id) and keeps sending it as it changes;
 * ends the stream after a final state. c NULL (the client left): nothing.
 * uid asked for it (counted by ty__watch_admit); `full`: uid is j's owner
 * or an operator, who see its exit code and its reasons in full. */
void ty__watch_start(ty_controller *ctl, ty_rpc_conn *c, uint64_t request_id, uint32_t uid,
                     bool full, ty_job *j, bool want_tokens, bool timing);
/* j changed: in the txn being built (in_txn), or only in memory. */
void ty__watch_touch(ty_controller *ctl, const ty_job *j, bool in_txn);
/* Sends the events whose change is durable (after each commit batch and
 * each scheduling pass). */
void ty__watch_flush(ty_controller *ctl);
void ty__watch_stop_all(ty_controller *ctl);
/* A pending rlaunch job (interactive, not --detach) is attended while a
 * watch with task tokens (its rlaunch's) is open on it. Loaded at a
 * controller start, it is not yet: its rlaunch reconnects and sends its
 * submit again within the grace below. */
void ty__watch_loaded(const ty_controller *ctl, ty_job *j);
/* That grace: --rlaunch-gone-s, in ms. */
int64_t ty__rlaunch_gone_ms(const ty_controller *ctl);
/* Whether j is a pending rlaunch job whose rlaunch left (the scheduler
 * places it only once its rlaunch is back; meanwhile its reason says when
 * it is cancelled, and `why` gives that reason). */
bool ty__watch_abandoned(const ty_job *j);
/* The tick's duty: a pending rlaunch job left unattended longer than
 * rlaunch's reconnect backoff is CANCELLED ("rlaunch went away while the
 * job was pending"), so it never runs its command with nobody attached. */
void ty__watch_cancel_abandoned(ty_controller *ctl);
void ty__h_watch_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);

/* ---- jobs.c ---- */
/* Fills a store row that borrows from j (alloc is a heap string the caller frees). */
void ty__job_row(const ty_job *j, ty_job_row *out, char **out_nodes, char **out_alloc);
/* Fills j->req_list and exc_list from its spec (a new or restored job). */
void ty__job_lists(ty_job *j);
/* Adds j's row to txn as an INSERT and records what was written. TY_ENOMEM
 * when its spec cannot be copied. */
int ty__job_insert(ty_job *j, ty_txn *txn);
/* Restores slots and rank results from a stored row (on start). */
int ty__job_restore_alloc(ty_controller *ctl, ty_job *j, const char *nodes, const char *alloc);
/* Moves j to `to` in memory and adds the job row and one event to txn. */
void ty__job_transition(ty_controller *ctl, ty_job *j, int to, const char *reason,
                        const char *actor, ty_txn *txn);
/* Adds the columns of j's row that changed since it was last written (no
 * event) to txn, and marks j changed for listings. */
void ty__job_save(ty_controller *ctl, ty_job *j, ty_txn *txn);
/* What of a job a JobInfo shows: all of it (GetJob of its owner or an
 * operator); a listing's (ListJobs: no argv, env or graph payload, which
 * listings never print and which may be megabytes); or what anyone may see. */
typedef enum ty__info_view { TY__INFO_FULL, TY__INFO_LISTED, TY__INFO_REDACTED } ty__info_view;
/* j's encoded JobInfo as `view` shows it, made again only when j changed
 * since (ty__job_dirty). Owned by j. NULL when out of memory. */
const ty_buf *ty__job_info(ty_controller *ctl, ty_job *j, ty__info_view view);
/* Adds an event that changes no state (a warning signal, a preemption
 * notice) to txn: the job's history records it with its actor. */
void ty__job_note(const ty_job *j, const char *reason, const char *actor, ty_txn *txn);
/* j's events, oldest first: the store's, or for an element still in its
 * array's record the submit event that record stands for. */
int ty__job_events(ty_controller *ctl, const ty_job *j, int (*cb)(const ty_event_row *r, void *ud),
                   void *ud);
/* Gives j its slots (j owns them from now on): charges the nodes and
 * creates tasks_per_node ranks per slot, all waiting for launch. */
void ty__job_set_slots(ty_job *j, ty_slot *slots, uint32_t n_slots);
/* Takes back the slots ty__job_set_slots gave j before any rank was
 * launched: the nodes are no longer charged and j has no ranks. */
void ty__job_drop_slots(ty_job *j);
/* Rank `rank`'s LaunchTask failed (msg says why): the rank ends as
 * FAILED_START, the job FAILED (committed), its other ranks are killed. */
void ty__job_launch_failed(ty_controller *ctl, ty_job *j, uint32_t rank, const char *msg);
/* Rank `rank`'s LaunchTask failed for its node's reason (the worker's
 * LaunchTaskResponse.node_fault: its job directory, log or cgroup, a full
 * disk, no descriptors): the rank ends as FAILED_START, the node is
 * drained (ty__node_launch_failed) and the job requeued to run elsewhere,
 * which max_rank_failure_requeues does not count; a job never requeued
 * FAILs as in ty__job_launch_failed. Committed. */
void ty__job_launch_node_failed(ty_controller *ctl, ty_job *j, uint32_t rank, const char *msg);
/* Sends KillTask to every node that still runs ranks of j. */
void ty__job_kill(ty_controller *ctl, ty_job *j);
/* How a rank ended besides its exit code or signal: ty__rank_ended's
 * `how`, and the last number of a stored rank end (its jobs row's alloc). */
enum { TY__RANK_TIMED_OUT = 1, TY__RANK_OOM_KILLED = 2 };
/* Records a rank's end, with what its cgroup measured (`use`; NULL = not
 * reported) and when its worker saw it end (`ended_ms`, the worker's clock;
 * 0 = now); may complete, fail, time out or end the job OUT_OF_MEMORY
 * (into txn). `how`: TY__RANK_* bits. */
void ty__rank_ended(ty_controller *ctl, ty_job *j, uint32_t rank, int task_state, int32_t exit_code,
                    int32_t term_signal, unsigned how, const char *reason, const ty_task_usage *use,
                    int64_t ended_ms, ty_txn *txn);
/* A worker's end time `reported` (ms since the epoch; 0 = none) of a
 * rank of j's current run as the controller records it at `now`
 * (ty_job_end_time, with the run's length on the monotonic clock when
 * this controller started it), logging a report more than TY_END_SKEW_MS
 * ahead (the worker's clock runs ahead) and a wall clock stepped during
 * the run. */
int64_t ty__end_time(const ty_job *j, int64_t reported, int64_t now);
/* `job requeue` of an ended job: PENDING again (a new run), back in the
 * live set, the change and its actor into txn. */
void ty__job_revive(ty_controller *ctl, ty_job *j, const char *actor, ty_txn *txn);
/* Why job j is never requeued (node loss, preemption, a rank's failure,
 * `job requeue`), or NULL: --no-requeue, or an rlaunch job its client
 * attends (interactive, not --detach), whose client saw the run end and
 * exited with it: a rerun would repeat what the command did with nobody
 * attached. */
const char *ty__job_never_requeued(const ty_job *j);
/* Node loss or a lost rank: RUNNING -> NODE_FAIL -> PENDING (into txn);
 * a job never requeued (above) ends NODE_FAIL. */
void ty__job_requeue(ty_controller *ctl, ty_job *j, const char *reason, ty_txn *txn);
/* Sends KillTask with `grace_s` to every connected node that still runs
 * ranks of j (the others get it when they register: ty__job_kill_node);
 * a RUNNING job's kill (kill_sent, requeue_asked, preempt_for) is stored
 * first, so a restart during the grace does not forget it (the workers,
 * sent it again when they register, do not signal the ranks twice). */
void ty__job_kill_grace(ty_controller *ctl, ty_job *j, uint32_t grace_s);
/* Sends KillTask again to node n (registered again) if j's kill is
 * outstanding and n runs ranks of j: a node not connected when the kill
 * was sent (its worker paused, or registered after a controller restart)
 * would otherwise run them on and keep the job RUNNING. The worker takes a
 * second kill of a task it is terminating without a second SIGTERM. */
void ty__job_kill_node(ty_controller *ctl, ty_job *j, ty_cluster_node *n);
/* Sends signal sig (1-64) to j's running ranks, killing nothing (scancel
 * --signal); with batch_only to each rank's batch script alone (scancel
 * -b). */
void ty__job_signal(ty_controller *ctl, ty_job *j, int sig, bool batch_only);
/* Rank r's node was lost: it ends without a result (its accounting record
 * into txn); the caller decides what becomes of the job. */
void ty__rank_lost(ty_job *j, uint32_t r, const char *why, ty_txn *txn);
/* Rank tr->rank lost its node, but its worker ended it and said how (the
 * worker was stopped, or fenced its tasks): lost as ty__rank_lost, its
 * record the worker's -- the process's end (SIGNALED 0:15), what its cgroup
 * measured, when it ended. */
void ty__rank_lost_reported(ty_job *j, const ty_task_report *tr, const char *why, ty_txn *txn);
/* How long a LaunchTask or KillTask waits for the worker's answer. */
#define TY__TASK_CALL_TIMEOUT_MS 30000

/* ---- launch.c ---- */
/* Places j on the given slots: RUNNING, commit, then LaunchTask each rank. */
void ty__job_start(ty_controller *ctl, ty_job *j, ty_slot *slots, uint32_t n_slots);
/* The CPUs rank r holds: cpus_per_task, or for an exclusive job its share
 * of its node's (the slot's CPUs split over the node's ranks, the first
 * ones taking the remainder, so the node's ranks hold all of them). */
uint32_t ty__rank_cpus(const ty_job *j, uint32_t r);
/* Sends LaunchTask for every rank still RANK_WAIT of run `run`. */
void ty__job_launch(ty_controller *ctl, ty_job *j);

/* ---- deps.c: dependencies and the arrays they name ---- */
/* Resolves j's conditions against the jobs that exist (submit: an unknown
 * or later job is refused with err naming the condition; `loading`: such a
 * condition can never be met) and evaluates them. */
int ty__deps_resolve(ty_controller *ctl, ty_job *j, bool loading, char *err, size_t len);
/* Registers j with the targets it waits on (once its submit is durable, or
 * at load) and queues it for the next pass's check. */
void ty__deps_watch(ty_controller *ctl, ty_job *j);
/* j left PENDING (`left_pending`: it began a run, or ended unstarted) or
 * ended: its waiters, and its array's, are rechecked on the next pass; its
 * array counts it started (begun its current run) when it left PENDING.
 * From ty__job_transition. */
void ty__deps_target_changed(ty_controller *ctl, ty_job *j, bool left_pending);
/* j changed state without leaving PENDING or ending (a requeue: RUNNING ->
 * PENDING, `pending_again`, which its array counts as not started until
 * its next run begins): its waiters are rechecked on the next pass, so
 * their reasons name the state it is in. */
void ty__deps_target_moved(ty_controller *ctl, const ty_job *j, bool pending_again);
/* A job left without ending (a submit that was not stored): its waiters
 * find it gone. */
void ty__deps_forget(ty_controller *ctl, uint64_t id);
/* Before each pass: rechecks the queued jobs' conditions and singletons;
 * cancels those that can never run when their policy says so. */
void ty__deps_update(ty_controller *ctl);
/* j's first start was not stored (it is PENDING again, its start_ms 0):
 * the `after:` conditions that start met, in jobs still pending, wait
 * again. */
void ty__deps_start_undone(ty_controller *ctl, ty_job *j);
/* Pending j's `after:` conditions met by a start that was then not
 * stored (its target in memory has not begun after all) wait again. */
void ty__deps_recheck_after(ty_controller *ctl, ty_job *j);
/* Ended j was requeued (from its end state `from`): its array counts it
 * as not ended, and pending jobs that found a condition on it (or its
 * array) never met wait on it again from the next pass. */
void ty__deps_requeued(ty_controller *ctl, ty_job *j, int from);
/* Pending j's conditions anew (a requeue, a load), resolved and watched
 * as at submit; those it found met stay met, all but singleton when it
 * ever started (as Slurm keeps no satisfied dependency), though their
 * target has left the store since. */
void ty__deps_pending_again(ty_controller *ctl, ty_job *j);
void ty__deps_destroy(ty_controller *ctl);
/* The array's record (counts of its elements, its span): made when absent,
 * from `total` for a new array, else counted in the store. */
ty__array *ty__array_note(ty_controller *ctl, uint64_t id, const ty_array_spec *spec,
                          uint32_t total);
ty__array *ty__array_get(ty_controller *ctl, uint64_t id);
/* An element's array's size and span, for its LaunchTask. */
void ty__array_span(ty_controller *ctl, const ty_job *j, uint32_t *count, uint32_t *min,
                    uint32_t *max, uint32_t *step);

/* ---- metrics.c ---- */
/* Registers every family of the controller on ctl->metrics. */
void ty__metrics_init(ty_controller *ctl);
/* Rebuilds the gauges that mirror state (also run before each scrape). */
void ty__metrics_refresh(ty_controller *ctl);
/* The committer's batch callback (ud = ctl). */
void ty__metrics_on_batch(size_t commits, size_t txns, void *ud);
/* A job moved from -> to at now_ms (for an end, the job's end time: its
 * last rank's, as its worker reported it): queue wait, run time, ends. */
void ty__metrics_job_transition(ty_controller *ctl, ty_job *j, int from, int to, int64_t now_ms);

/* ---- sched_pass.c: the scheduler's side of the controller ---- */
/* Runs one pass: placements, preemptions, reasons (also from the tick). */
void ty__sched_run(ty_controller *ctl);
/* On a coalesced request: a pass, unless only submits asked and the pass
 * could place and preempt nothing (the tick then gives their reasons). */
void ty__sched_on_request(ty_controller *ctl);
/* Tick duties: charge running jobs' usage (decayed), move drained nodes to
 * DRAINED, store what changed. */
void ty__sched_tick(ty_controller *ctl);
/* Fair share across ends and restarts (sched_pass.c). A run leaving
 * RUNNING at end_ms (wall) is charged from its last charge to then, which
 * holds a traind outage it ended in (its end reported at re-registration).
 * ty__usage_loaded, once the state is loaded: the stored usage decays for
 * the time since it was stored, and each RUNNING job goes on from the time
 * its usage row was last charged, so an outage is charged once. */
void ty__usage_run_ended(ty_controller *ctl, ty_job *j, int64_t end_ms);
void ty__usage_loaded(ty_controller *ctl);
/* A deep copy of a topology into a zeroed or closed one (from may be NULL). */
void ty__topology_copy(const ty_sched_topology *from, ty_sched_topology *to);
/* A node's switch and NVLink islands, from the topology and its info. */
void ty__node_topology(ty_controller *ctl, ty_cluster_node *n);
/* ty_sched_check_fits against every known node; why starts with the field. */
int ty__sched_fits(ty_controller *ctl, const ty_job_spec *spec, char *why, size_t len);
/* What a submit checks against the controller's tables (submit.c): its
 * queue (ty__sched_check_spec) and the cluster's shape (ty__sched_fits:
 * "job.resources.nodes is 3 but only 2 nodes can hold one slot each").
 * PlanJob runs it too, so a plan is refused where a submit would be. */
int ty__submit_check_placeable(ty_controller *ctl, ty_job_spec *s, char *err, size_t len);
/* A held job's listing, which no pass refreshes while it is held: its
 * reason (ty_sched_held_reason), wait code and priority 0. The caller marks
 * it changed (ty__job_dirty, or a save) where it is already listed. */
void ty__sched_list_held(ty_job *j);
/* Builds a pass input over the pending jobs and explains one; 0,
 * TY_ENOTFOUND (not pending) or TY_ENOMEM. */
int ty__sched_explain(ty_controller *ctl, uint64_t job_id, ty_sched_explain *out);
/* The same for j, a pending job that is not in the live set (a test-only
 * submit's, borrowed): it is explained as if it were. 0 or TY_ENOMEM. */
int ty__sched_explain_new(ty_controller *ctl, ty_job *j, ty_sched_explain *out);
/* A checked test-only submit of spec (taken: closed here): answered with
 * its start estimate, nothing created (submit_test.c). */
void ty__submit_test(ty_controller *ctl, ty_reply *r, ty_job_spec *spec);
/* Fragmentation of the free GPUs (CPUs) now (ty_sched_fragmentation). */
double ty__sched_fragmentation(ty_controller *ctl);
/* Share rows (borrowing names from ctl) and each row's gpu/cpu seconds. */
int ty__sched_shares(ty_controller *ctl, ty_sched_share **out, size_t *out_n);
/* The same from queues and usage alone (no walk of the jobs): every queue,
 * and the users with usage. For metrics and the web console. */
int ty__sched_usage_shares(ty_controller *ctl, ty_sched_share **out, size_t *out_n);

/* ---- request handlers: admin.c, rpc_client.c, submit.c, rpc_worker.c ---- */
void ty__h_list_queues(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_update_queue(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_update_node(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
/* UpdateNode's "delete" of node n, checked and authorized (node_delete.c):
 * answers r. */
void ty__node_delete(ty_controller *ctl, ty_reply *r, ty_cluster_node *n, const char *reason);
/* UpdateJob (update_job.c): the job or array it names, changed. */
void ty__h_update_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
/* ExplainJob (explain.c). */
void ty__h_explain_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_get_shares(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
/* Reconfigure: --config read again and applied (reconfig.c). */
void ty__h_reconfigure(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
/* ListAdminEvents: the admin events read back (admin_events.c). */
void ty__h_list_admin_events(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
/* A row of the admin events (admin.c): `kind` `object` `action` by user,
 * with `detail`, into t (and the log). */
void ty__admin_event(ty_txn *t, const char *user, const char *kind, const char *object,
                     const char *action, const char *detail);
/* The same by `actor` as it is ("signal:SIGHUP"). */
void ty__admin_event_by(ty_txn *t, const char *actor, const char *kind, const char *object,
                        const char *action, const char *detail);
void ty__h_submit(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_list_jobs(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_get_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_cancel(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_list_nodes(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_task_locations(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_register(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_heartbeat(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_task_update(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
/* n's worker is stopping (HeartbeatRequest.stopping, or a LaunchTask it
 * refused as shutting down): nothing more is placed there (DRAINING, reason
 * "worker shutting down", unless an operator drained it already) until it
 * registers again. Into t; once per stop. */
void ty__node_leaving(ty_cluster_node *n, ty_txn *t);
/* A launch on n failed for the node's reason (msg): n is drained by the
 * controller (DRAINING, reason "drained by controller: launch failed:
 * MSG", kept until `trainctl node resume`, as an operator's drain), unless
 * it is drained already. Into t. */
void ty__node_launch_failed(ty_cluster_node *n, const char *msg, ty_txn *t);

/* ---- history.c: GetHistory, GetNode (accounting); list_jobs.c: ListJobs ---- */
/* The filters both share (history.c). */
size_t ty__ended_states(const int *states, size_t n, int out[7]);
/* 0, or TY_EINVAL naming the first of states that is no job state. */
int ty__check_states(const int *states, size_t n, char *err, size_t len);
void ty__h_get_history(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_get_node(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
struct ty__history_req;
struct ty__acct_job;
/* GetHistory's query for the decoded request q (taken over), answered
 * through r with encode's rendering of the jobs (ty__conv_history_resp for
 * the RPC, ty__web_history_json for the web console): the same scope
 * (operators everyone's, users their own), caps and store query. */
typedef int (*ty__history_encode)(const struct ty__acct_job *jobs, size_t n, bool truncated,
                                  ty_buf *out);
void ty__history_run(ty_controller *ctl, ty_reply *r, struct ty__history_req *q,
                     ty__history_encode encode);

/* ---- check_child.c: a model-check child's environment and stderr ---- */
/* The child's fixed environment (NULL-terminated; free the array only). */
char **ty__check_child_env(void);
#define TY__CHECK_STDERR_LINE 240 /* a longer line is logged in pieces */
/* A child's stderr on its way to traind's log, line by line under a
 * prefix naming the asker, bounded per check. */
typedef struct ty__check_stderr {
  char who[96];                         /* "USER (uid U)" */
  char line[TY__CHECK_STDERR_LINE + 1]; /* the line being read */
  size_t len;
  uint32_t lines;   /* logged */
  uint64_t dropped; /* bytes past the bound, not logged */
  char chunk[1024]; /* the pipe's read buffer */
} ty__check_stderr;
void ty__check_stderr_init(ty__check_stderr *e, const char *user, uint32_t uid);
void ty__check_stderr_feed(ty__check_stderr *e, const char *p, size_t n);
/* The child's stderr closed: its last partial line and what was dropped. */
void ty__check_stderr_end(ty__check_stderr *e);

/* ---- rpc.c: the dispatch ---- */
void ty__rpc_on_request(ty_rpc_conn *c, const ty_rpc_msg *req, void *ud);
void ty__rpc_on_close(ty_rpc_conn *c, int reason, void *ud);

#endif
