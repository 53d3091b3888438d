/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by the controller's files (controller.c: lifecycle, tick
 * and scheduling; jobs.c: job transitions and completion; rpc_client.c and
 * rpc_worker.c: request handlers; convert.c: protobuf <-> these structs).
 *
 * Everything here lives on the loop thread. Jobs and nodes are never freed
 * while the controller runs (ids are never reused; finished jobs stay for
 * listings), so pointers to them stay valid; asynchronous callbacks still
 * carry ids, not pointers, and look the job up again, because a job may have
 * moved on (requeued: `run` counts its incarnations) while they were waiting.
 */
#ifndef TY_DAEMON_DAEMON_INTERNAL_H
#define TY_DAEMON_DAEMON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/commit.h"
#include "daemon/controller.h"
#include "daemon/job.h"
#include "daemon/store.h"
#include "lib/base/base.h"
#include "lib/metrics/metrics.h"
#include "lib/rpc/rpc.h"
#include "scheduler/scheduler.h"

typedef struct ty__graph_reg ty__graph_reg; /* daemon/graph.c */

typedef struct ty_cluster_node {
  char *name;
  int state;              /* ty_node_state */
  uint32_t cpus;
  uint64_t memory;
  uint32_t n_gpus;
  uint8_t *info;       /* encoded NodeInfo holding gpus and topology (convert.c) */
  size_t info_len;
  char *io_addr;       /* "host:port" */
  char *host;          /* host part of io_addr: MASTER_ADDR for rank 0 */
  char *reason;
  int64_t last_seen_ms;   /* wall clock, reported */
  int64_t last_seen_mono; /* monotonic, for the timeout */
  ty_rpc_conn *conn;      /* the registered worker connection, or NULL */
  uint32_t cpus_used;
  uint64_t gpus_used;     /* bit set of allocated GPU indices */
  uint64_t mem_used;
  uint32_t running_tasks; /* as last heartbeat said */
  bool drain;             /* an operator drains it: DRAINING, then DRAINED */
  uint32_t switch_id;     /* switch group from the config, TY_SCHED_NO_SWITCH if none */
  uint8_t gpu_island[TY_SCHED_MAX_GPUS]; /* NVLink island per GPU, from its info */
} ty_cluster_node;

typedef enum { RANK_WAIT = 0, RANK_LAUNCHING, RANK_RUNNING, RANK_ENDED } ty_rank_state;

typedef struct ty_rank {
  uint32_t slot;          /* index into job->slots */
  ty_rank_state state;
  int task_state;         /* TY_TASK_* once ended */
  int32_t exit_code, term_signal;
  bool timed_out;
  char *reason;           /* FAILED_START's reason, or why it was lost */
  uint32_t end_seq;       /* 1-based order of ending; 0 while live */
  uint32_t seen_gen;      /* the RegisterNode that last reported it */
} ty_rank;

typedef struct ty_slot {
  ty_cluster_node *node;
  uint64_t gpus;
  uint32_t cpus;
  uint64_t mem;
  uint32_t live;          /* ranks on this slot not ended */
  bool held;              /* resources still charged to the node */
} ty_slot;

typedef struct ty_job {
  uint64_t id;
  ty_job_spec spec;       /* validated */
  uint8_t *blob;          /* the encoded trainyard.Job, as stored */
  size_t blob_len;
  int state;
  char *reason;
  int32_t exit_code, term_signal;
  int64_t submit_ms, start_ms, end_ms;
  uint32_t requeue_count;
  uint32_t fail_requeues; /* requeues after a failed rank (in memory only) */
  uint32_t run;           /* incarnation: +1 on every placement */
  bool committed;         /* the submit is durable; only then schedulable */
  bool kill_sent;
  ty_slot *slots; uint32_t n_slots;
  ty_rank *ranks; uint32_t n_ranks;
  uint32_t live_ranks;
  uint32_t ended;         /* end_seq counter */
  /* The scheduler (sched_pass.c, admin.c). */
  bool held;              /* an operator holds it */
  int64_t last_ckpt_ms;   /* the last checkpoint it reported */
  double prio;            /* multifactor priority of the last pass */
  uint64_t preempt_for;   /* RUNNING and being preempted for this job; 0 = not */
} ty_job;

/* Decayed fair-share usage of one user in one queue. */
typedef struct ty_usage {
  char *user, *queue;
  double gpu_s, cpu_s;
  bool dirty;             /* changed since last stored */
} ty_usage;

/* A request being answered (now, or once its commit is durable). */
typedef struct ty_reply {
  ty_controller *ctl;
  ty_rpc_conn *conn;      /* NULL once the connection closed */
  uint64_t request_id;
  const char *method;     /* static string from the dispatch table */
  uint64_t t0_ns;
  uint64_t job_id;        /* handler-specific */
  /* The request envelope's credential: borrowed, valid only during the
   * handler's synchronous call (NULL/0 when absent). */
  const uint8_t *credential;
  size_t credential_len;
  ty_buf out;             /* encoded answer payload */
  struct ty_reply *prev, *next;
} ty_reply;

struct ty_controller {
  uv_loop_t *loop;
  ty_controller_config cfg;
  ty_store *store;
  ty_committer *commit;
  ty_rpc_server *server;
  ty_metrics *metrics;
  ty_metrics_http *http;
  uv_timer_t tick;
  uv_idle_t sched_idle;   /* runs a coalesced scheduling pass */
  bool sched_wanted;
  ty_job **jobs; size_t n_jobs, cap_jobs; /* sorted by id */
  uint64_t next_id;
  ty_cluster_node **nodes; size_t n_nodes;
  ty_queue_info *queues; size_t n_queues; /* live counts unused; DELETED ones kept */
  ty_reply *replies;      /* outstanding replies (for connection close) */
  int64_t start_mono;
  uint32_t reg_gen;       /* counts RegisterNode requests */
  bool stopping;
  int handles_open;
  uint8_t attach_secret[32]; /* task-token secret (token.c) */
  struct {
    ty_metric *jobs, *submitted, *rpc_total, *rpc_seconds, *nodes, *sched_seconds, *commits;
    ty_metric *frag, *preemptions, *backfilled; /* sched_pass.c */
  } m;
  /* The scheduler's settings (--config) and state (sched_pass.c). */
  ty_sched_config sched;
  ty_sched_topology topo;
  ty_usage *usage; size_t n_usage;
  int64_t usage_mono;     /* when usage was last charged */
  double frag;            /* fragmentation after the last pass */
  /* Graph jobs: rendezvous keys, progress, checkpoint paths (graph.c). */
  struct ty__graph_reg *graph;
};

/* ---- controller.c ---- */
ty_job *ty__job_find(ty_controller *ctl, uint64_t id);
ty_cluster_node *ty__node_find(ty_controller *ctl, const char *name);
ty_cluster_node *ty__node_by_conn(ty_controller *ctl, const ty_rpc_conn *c);
ty_queue_info *ty__queue_find(ty_controller *ctl, const char *name);
void ty__job_add(ty_controller *ctl, ty_job *j);
void ty__job_free(ty_job *j);
void ty__sched_request(ty_controller *ctl);
/* ty_sched_check_fits against every known node; why starts with the field. */
int ty__sched_fits(ty_controller *ctl, const ty_job_spec *spec, char *why, size_t len);
void ty__node_persist(ty_controller *ctl, ty_cluster_node *n);
void ty__node_down(ty_controller *ctl, ty_cluster_node *n, const char *reason);
/* The host part of "host:port" (a new string). */
char *ty__host_of(const char *addr);

/* ---- jobs.c ---- */
/* Fills a store row that borrows from j (alloc is a heap string the caller frees). */
void ty__job_row(const ty_job *j, ty_job_row *out, char **out_nodes, char **out_alloc);
/* Restores slots and rank results from a stored row (on start). */
int ty__job_restore_alloc(ty_controller *ctl, ty_job *j, const char *nodes, const char *alloc);
/* Moves j to `to` in memory and adds the job row and one event to txn. */
void ty__job_transition(ty_controller *ctl, ty_job *j, int to, const char *reason,
                        const char *actor, ty_txn *txn);
/* Adds the current job row (no event) to txn. */
void ty__job_save(const ty_job *j, ty_txn *txn);
/* Places j on the given slots: RUNNING, commit, then LaunchTask each rank. */
void ty__job_start(ty_controller *ctl, ty_job *j, ty_slot *slots, uint32_t n_slots);
/* Sends LaunchTask for every rank still RANK_WAIT of run `run`. */
void ty__job_launch(ty_controller *ctl, ty_job *j);
/* Sends KillTask to every node that still runs ranks of j. */
void ty__job_kill(ty_controller *ctl, ty_job *j);
/* Records a rank's end; may complete, fail or time out the job (into txn). */
void ty__rank_ended(ty_controller *ctl, ty_job *j, uint32_t rank, int task_state,
                    int32_t exit_code, int32_t term_signal, bool timed_out, const char *reason,
                    ty_txn *txn);
/* Node loss or a lost rank: RUNNING -> NODE_FAIL -> PENDING (into txn). */
void ty__job_requeue(ty_controller *ctl, ty_job *j, const char *reason, ty_txn *txn);
/* Commits txn; cb may be NULL. Logs a failed commit. */
void ty__commit(ty_controller *ctl, ty_txn *txn, ty_commit_cb cb, void *ud);

/* ---- sched_pass.c: the scheduler's side of the controller ---- */
/* Runs one pass: placements, preemptions, reasons (also from the tick). */
void ty__sched_run(ty_controller *ctl);
/* Tick duties: charge running jobs' usage (decayed), move drained nodes to
 * DRAINED, store what changed. */
void ty__sched_tick(ty_controller *ctl);
/* Every rank of a job being preempted ended: PREEMPTED, then requeued. */
void ty__job_preempted(ty_controller *ctl, ty_job *j, ty_txn *txn);
/* The queue's scheduler view and a node's switch and islands, on load. */
void ty__node_topology(ty_controller *ctl, ty_cluster_node *n);
ty_usage *ty__usage_get(ty_controller *ctl, const char *user, const char *queue);
/* Builds a pass input over the pending jobs and explains one; 0,
 * TY_ENOTFOUND (not pending) or TY_ENOMEM. */
int ty__sched_explain(ty_controller *ctl, uint64_t job_id, ty_sched_explain *out);
/* Share rows (borrowing names from ctl) and each row's gpu/cpu seconds. */
int ty__sched_shares(ty_controller *ctl, ty_sched_share **out, size_t *out_n);
/* Sends KillTask with `grace_s` to every node that still runs ranks of j. */
void ty__job_kill_grace(ty_controller *ctl, ty_job *j, uint32_t grace_s);

/* ---- admin.c: queue, node and job administration ---- */
void ty__h_list_queues(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_update_queue(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_update_node(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_update_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_explain_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_get_shares(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);

/* ---- token.c: task tokens for interactive attach ---- */
/* Loads (or creates) STATE_DIR/attach.key. */
int ty__token_init(ty_controller *ctl, char *err, size_t len);
/* The job's attach key (32 bytes) for LaunchTask. */
void ty__token_job_key(const ty_controller *ctl, uint64_t job_id, uint8_t *out_key);
/* One token per rank of j, concatenated; the caller frees the array. NULL
 * when out of memory (a job's rank count is its submitter's choice). */
uint8_t *ty__token_issue(const ty_controller *ctl, const ty_job *j, size_t *out_token_len);

/* ---- rpc.c ---- */
void ty__rpc_on_request(ty_rpc_conn *c, const ty_rpc_msg *req, void *ud);
void ty__rpc_on_close(ty_rpc_conn *c, int reason, void *ud);
/* Answers r (status 0 sends r->out as payload) and frees it. */
void ty__reply_finish(ty_reply *r, int status, const char *message);
void ty__reply_finishf(ty_reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Answers a request whose payload did not decode (rc from a ty__conv_*
 * decoder): TY_EPROTO "payload is not WHAT", or TY_ENOMEM when copying it
 * ran out of memory. */
void ty__reply_bad_payload(ty_reply *r, int rc, const char *what);

/* ---- handlers (rpc_client.c, rpc_worker.c) ---- */
void ty__h_submit(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_list_jobs(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_get_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_cancel(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_list_nodes(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_task_locations(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_register(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_heartbeat(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_task_update(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);

#endif
