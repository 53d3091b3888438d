/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's conversions between protobuf messages and its own
 * structs (daemon_internal.h): convert.c, convert_locations.c,
 * convert_admin.c, convert_check.c, convert_graph.c and convert_history.c
 * define them, and they are the only files of daemon/ that touch generated
 * protobuf types. Pure functions: no loop, no store, no controller state
 * beyond what they are passed.
 */
#ifndef TY_DAEMON_CONVERT_INTERNAL_H
#define TY_DAEMON_CONVERT_INTERNAL_H

#include "daemon/daemon_internal.h"

/* ==== convert.c ==============================================================================
 * Messages other binaries share are in proto/convert.h. Decoders take
 * request payload bytes and fill plain structs (TY_EPROTO when the bytes
 * are not the expected message); encoders append a response or outgoing request to a ty_buf.
 * Outputs are owned by the caller unless said.
 */

/* Decoders copy what they keep with malloc (the request's sizes are the
 * client's) and answer TY_ENOMEM when that fails, TY_EPROTO when the bytes
 * are not the expected message; nothing is left to free on error. */

/* The caps on repeated fields of `method`'s request (proto/convert.h),
 * checked by rpc.c before any handler runs: 0 or TY_EINVAL naming the
 * field. Methods without a line in convert_check.c pass. */
int ty__conv_check_request(const char *method, const uint8_t *p, size_t n, char *err,
                           size_t err_len);

/* A submitted Job as its request decoded it, kept (opaque outside
 * convert.c) until ty__conv_normalize encodes the job's stored spec from
 * it, so a submit unpacks its Job once. */
typedef struct Trainyard__Job ty__job_msg;
void ty__job_msg_free(ty__job_msg *m); /* accepts NULL */

/* SubmitJobRequest -> spec (unvalidated), the Job as sent, encoded (what a
 * request id's hash is of) and decoded (*out_msg, for ty__conv_normalize),
 * and its watch fields (no user). TY_EPROTO also when the request has no
 * job. */
typedef struct ty__watch_req ty__watch_req;
int ty__conv_submit(const uint8_t *p, size_t n, ty_job_spec *out_spec, uint8_t **out_blob,
                    size_t *out_blob_len, ty__job_msg **out_msg, char **out_request_id,
                    ty__watch_req *out_watch);
/* Encodes a submitted Job (m, as ty__conv_submit decoded it; left as it
 * was) with the defaults validation filled in (name, queue, user,
 * resources), so listings show what the job really asked for, and with
 * run_as the submitter's (whatever the client sent there): the job's
 * stored spec. *out is a new buffer; TY_ENOMEM. */
int ty__conv_normalize(ty__job_msg *m, const ty_job_spec *spec, uint8_t **out, size_t *out_len);
/* A stored, encoded Job -> spec. */
int ty__conv_spec(const uint8_t *blob, size_t n, ty_job_spec *out_spec);

typedef struct ty_list_filter {
  int *states;
  size_t n_states;
  char *user, *queue;
  uint32_t limit;
  uint32_t ended_limit; /* at most this many ended jobs, the newest (0 = the history cap) */
  int64_t since_ms;
  bool fold_arrays; /* pending elements of an array in a row: one JobInfo (history.c) */
  bool completing;  /* also ended jobs whose ranks are still ending */
  ty_job_ref *jobs; /* a job, an array's every element, or one (none = any) */
  size_t n_jobs;
  char **names; /* none = any */
  size_t n_names;
} ty_list_filter;
int ty__conv_list_jobs_req(const uint8_t *p, size_t n, ty_list_filter *out);
/* ListJobs' rule for a job in memory (history.c, for list_jobs.c): committed, one of the
 * states (none = any), user and queue ("" = any), since, one of the ids and
 * names. The web console uses it too. */
bool ty__job_matches(const ty_job *j, const ty_list_filter *f);
/* The ids and names part of it, for a stored job as well. */
bool ty__job_picked(const ty_list_filter *f, uint64_t id, uint64_t array_id, uint32_t task,
                    const char *name);
void ty__list_filter_close(ty_list_filter *f);
/* GetJobRequest and ExplainJobRequest: a job, or an element of an array;
 * GetJob's with_plan flag when out_with_plan is not NULL. */
int ty__conv_job_ref_req(const uint8_t *p, size_t n, ty_job_ref *out, bool *out_with_plan);
/* job_ids, then refs, as one list. */
int ty__conv_cancel_req(const uint8_t *p, size_t n, ty_job_ref **out_refs, size_t *out_n);

typedef struct ty_node_report {
  char *name;
  uint32_t cpus;
  uint64_t memory;
  uint32_t n_gpus;
  uint8_t *info;
  size_t info_len; /* gpus + topology, re-encoded */
  char *io_addr;
  ty_task_report *tasks;
  size_t n_tasks;
  bool sets_task_limit; /* NodeInfo.sets_task_limit: the worker serves SetTaskLimit */
} ty_node_report;
int ty__conv_register_req(const uint8_t *p, size_t n, ty_node_report *out);
void ty__node_report_close(ty_node_report *r);
int ty__conv_heartbeat_req(const uint8_t *p, size_t n, char **out_node, uint32_t *out_running,
                           bool *out_stopping);
/* The report's reason is owned: ty__task_report_close. */
int ty__conv_task_update_req(const uint8_t *p, size_t n, ty_task_report *out);
void ty__task_report_close(ty_task_report *r);

/* Number of GPUs recorded in a node's info blob. */
uint32_t ty__conv_info_gpus(const uint8_t *info, size_t n);

typedef struct ty_event_copy {
  int64_t time_ms;
  int from_state, to_state;
  char *reason;
} ty_event_copy;

int ty__conv_submit_resp(uint64_t id, uint32_t array_tasks, ty_buf *out);
/* A test-only submit's answer: ex's estimate, the names of the nodes it
 * would start on, the CPUs it would hold and its queue. */
int ty__conv_submit_test_resp(const ty_sched_explain *ex, const char *const *nodes, size_t n_nodes,
                              uint32_t cpus, const char *queue, ty_buf *out);

/* What a JobInfo shows of a job, from memory (ty__job_info) or from a
 * stored row (ty__job_view_row). Everything borrowed. */
typedef struct ty__job_view {
  uint64_t id;
  const uint8_t *spec; /* the stored, encoded Job */
  size_t spec_len;
  int state;
  const char *reason;
  int32_t exit_code, term_signal;
  int64_t submit_ms, start_ms, end_ms;
  const char *nodes_csv;
  uint32_t requeue_count;
  uint32_t ranks_ending; /* an ended job's ranks still being killed or exiting */
  bool held;
  double priority;
  int64_t last_ckpt_ms;
  uint64_t array_id;
  uint32_t array_task;
  const char *dependency; /* the conditions not yet met */
  ty_task_usage usage;
  bool usage_measured;
  bool redact;  /* leave out what only its owner and operators see */
  bool abridge; /* a listing's: leave out argv, env and a graph's payload */
} ty__job_view;
/* The JobInfo of v, appended to out. */
int ty__conv_job_info(const ty__job_view *v, ty_buf *out);
void ty__job_view_row(const ty_job_row *r, ty__job_view *v);
/* Appends length-delimited field `field` holding bytes p (a packed message)
 * to out: how responses are put together from JobInfos encoded earlier
 * (ListJobsResponse.jobs, GetJobResponse.job, ...), since a message's
 * encoding is the concatenation of its fields'. */
int ty__conv_field(uint32_t field, const uint8_t *p, size_t n, ty_buf *out);
/* GetJobResponse: the job's encoded JobInfo and its events. */
int ty__conv_get_job_resp(const uint8_t *info, size_t info_len, const ty_event_copy *ev,
                          size_t n_ev, ty_buf *out);
int ty__conv_cancel_resp(const ty_cancel_result *res, size_t n, ty_buf *out);
int ty__conv_list_nodes_resp(ty_cluster_node *const *nodes, size_t n, ty_buf *out);
/* One NodeInfo, as ListNodes shows it. */
int ty__conv_node_info(const ty_cluster_node *nd, ty_buf *out);
/* GetTaskLocationsRequest: want_tokens asks for task tokens (logs, attach). */
int ty__conv_task_locations_req(const uint8_t *p, size_t n, uint64_t *out_id,
                                bool *out_want_tokens);
/* One rank of one run, as a TaskLocation names it (io_addr "" when the
 * node is unknown now). */
typedef struct ty__run_loc {
  uint32_t run, rank;
  const char *node, *io_addr;
  int64_t start_ms;
} ty__run_loc;
/* Where an ended job read back from the store ran: its last run (rank i
 * at last[i]) and its earlier runs. Its exit code and signal only when
 * `full` (the caller is its owner or an operator), else the reason's
 * public form (ty_job_reason_public); the same for the two below. */
int ty__conv_stored_locations_resp(const ty_job *j, bool full, const ty__run_loc *last, uint32_t n,
                                   const ty__run_loc *earlier, uint32_t n_earlier,
                                   const uint8_t *tokens, size_t token_len, ty_buf *out);
/* Where a job in memory runs (or ran last), and its earlier runs. `tokens`
 * (NULL = none) holds a token of `token_len` bytes per rank, indexed by
 * rank, for every rank of either. */
int ty__conv_task_locations_resp(const ty_job *j, bool full, const ty__run_loc *earlier,
                                 uint32_t n_earlier, const uint8_t *tokens, size_t token_len,
                                 ty_buf *out);
int ty__conv_register_resp(uint32_t heartbeat_ms, uint32_t node_timeout_ms, ty_buf *out);
/* WatchJobRequest, and SubmitJobRequest's watch fields. */
struct ty__watch_req {
  uint64_t job_id;
  bool watch, want_tokens, timing;
  bool test_only; /* SubmitJobRequest.test_only (ty__conv_submit) */
};
int ty__conv_watch_req(const uint8_t *p, size_t n, ty__watch_req *out);
/* A JobWatchEvent: the job as GetTaskLocations answers it (tokens as
 * there), with the launch's stage times when timing is not NULL. */
int ty__conv_watch_event(const ty_job *j, bool full, const uint8_t *tokens, size_t token_len,
                         const ty_launch_timing *timing, ty_buf *out);

int ty__conv_launch_req(const ty_task_spec *t, ty_buf *out);
int ty__conv_kill_req(uint64_t job_id, int sig, uint32_t grace_s, bool batch_only, ty_buf *out);
int ty__conv_set_limit_req(uint64_t job_id, uint32_t time_limit_s, ty_buf *out);
/* A LaunchTask answer's payload (LaunchTaskResponse, empty from older
 * workers): whether the worker refused because it is stopping, and
 * whether the launch failed for the node's reason. */
int ty__conv_launch_resp(const uint8_t *p, size_t n, bool *out_worker_stopping,
                         bool *out_node_fault);

/* ==== history.c and convert_history.c ========================================================
 * Accounting: what GetHistory answers, as plain structs that the thread
 * pool fills from the store and memory fills for live jobs, and the
 * protobuf side of GetHistory and GetNode (convert_history.c, pure). */

typedef struct ty__history_req {
  char *user, *queue; /* "" = any */
  int64_t since_ms, until_ms;
  int *states;
  size_t n_states;
  uint32_t limit;
  uint64_t *ids;
  size_t n_ids;
  char **names, **nodes; /* GetHistoryRequest.names and .nodes */
  size_t n_names, n_nodes;
  bool ranks;
  /* Pages of history (the web console's, GetHistoryRequest's cursor): only
   * ended jobs, after the cursor (before_end_ms, before_id; 0 = from the
   * newest). */
  bool ended_only;
  int64_t before_end_ms;
  uint64_t before_id;
} ty__history_req;
int ty__conv_history_req(const uint8_t *p, size_t n, ty__history_req *out);
void ty__history_req_close(ty__history_req *r);

typedef struct ty__acct_rank {
  ty_rank_row row; /* row.node is `node` */
  char *node;
} ty__acct_rank;

/* One JobRecord; strings owned (ty__acct_job_close). */
typedef struct ty__acct_job {
  uint64_t id, array_id;
  uint32_t array_task;
  char *name, *user, *queue, *reason, *nodes;
  int state;
  int32_t exit_code, term_signal;
  int64_t submit_ms, start_ms, end_ms;
  uint32_t requeue_count, cpus, gpus, time_limit_s;
  uint64_t mem_bytes;
  int64_t cpu_ms, gpu_ms, mem_peak;
  bool measured;
  ty__acct_rank *ranks;
  size_t n_ranks;
  size_t n_mem_ranks; /* the first ones, from memory (history.c) */
} ty__acct_job;
void ty__acct_job_close(ty__acct_job *a);
int ty__conv_history_resp(const ty__acct_job *jobs, size_t n, bool truncated, ty_buf *out);
int ty__conv_get_node_req(const uint8_t *p, size_t n, char **out_name, uint32_t *out_limit);
int ty__conv_web_token_req(const uint8_t *p, size_t n, uint32_t *out_ttl_s, bool *out_revoke);
int ty__conv_web_token_resp(const char *token, int64_t expires_ms, uint32_t revoked,
                            const char *url, ty_buf *out);
int ty__conv_get_node_resp(const ty_cluster_node *nd, const ty_node_event_row *ev, size_t n,
                           ty_buf *out);

/* ==== admin.c and convert_admin.c ============================================================
 * The scheduler's operations (queues, node drains, job holds,
 * priorities and moves, why, shares). admin.c has the handlers and the pure
 * rules (queue settings, who may do what); convert_admin.c is the only place
 * here that touches their protobuf messages.
 *
 * Ownership: decoded requests own their strings (ty__admin_req_close);
 * encoders borrow everything and append to `out`.
 */

/* Any of the Update* requests, decoded. Unused fields are "" or 0. */
typedef struct ty_admin_req {
  char *name, *action, *reason, *queue;
  char **settings;
  size_t n_settings;
  uint64_t job_id;
  bool has_task; /* UpdateJob: element `task` of array job_id */
  uint32_t task;
  uint32_t time_limit_s;
  int32_t time_delta_s; /* UpdateJob "time": +/- seconds on the limit; time_limit_s unused */
  int32_t priority;
  int32_t signal;             /* UpdateJob "signal" */
  bool batch_only;            /* UpdateJob "signal": to the batch scripts alone (scancel -b) */
  uint64_t mem_per_node;      /* UpdateJob "mem": bytes, 0 = no limit */
  uint32_t array_max_running; /* UpdateJob "throttle": an array's %N, 0 = no limit */
  uint32_t nodes;             /* UpdateJob "nodes": a pending job's node count */
  /* UpdateJob "layout": 0 leaves tasks or CPUs as they are; GPUs only with has_gpus */
  uint32_t tasks_per_node, cpus_per_task, gpus_per_node;
  bool has_gpus;
  char *dependency; /* UpdateJob "dependency": sbatch's syntax, "" = none */
} ty_admin_req;
void ty__admin_req_close(ty_admin_req *r);

int ty__conv_update_queue_req(const uint8_t *p, size_t n, ty_admin_req *out);
int ty__conv_update_node_req(const uint8_t *p, size_t n, ty_admin_req *out);
int ty__conv_update_job_req(const uint8_t *p, size_t n, ty_admin_req *out);

/* Queues with their live counts, as ListQueues shows them. */
int ty__conv_list_queues_resp(const ty_queue_info *qs, size_t n, ty_buf *out);
int ty__conv_update_queue_resp(const ty_queue_info *q, ty_buf *out);
int ty__conv_update_node_resp(const ty_cluster_node *nd, ty_buf *out);
/* UpdateJobResponse: the (first) job changed, how many were, and how many
 * of an array's elements were refused for a node away (the first refusal). */
int ty__conv_update_job_resp(const uint8_t *info, size_t info_len, uint32_t changed,
                             uint32_t refused, const char *refusal, ty_buf *out);
/* `nodes` names the indices in ex->nodes (the pass's node order); the
 * reason in full when `full` (the caller is j's owner or an operator),
 * else its public form (ty_job_reason_public). */
int ty__conv_explain_resp(const ty_job *j, bool full, const ty_sched_explain *ex,
                          ty_cluster_node *const *nodes, ty_buf *out);
/* gpu_s[i] and cpu_s[i] belong to rows[i]. */
int ty__conv_shares_resp(const ty_sched_share *rows, const double *gpu_s, const double *cpu_s,
                         size_t n, double halflife_s, ty_buf *out);
/* ReconfigureResponse: the file read and what changed (borrowed). */
int ty__conv_reconfigure_resp(const char *file, char *const *changed, size_t n, ty_buf *out);
/* ListAdminEventsRequest into q (q->kind a copy to free): 0, or TY_EPROTO. */
int ty__conv_admin_events_req(const uint8_t *p, size_t n, ty_admin_event_query *q);
int ty__conv_admin_events_resp(const ty_admin_event_row *rows, size_t n, ty_buf *out);

/* Re-encodes a stored Job with the spec's priority, queue, time limit and
 * memory per node (after `job priority`, `job move` or `job update`) into a new *out; TY_EPROTO
 * when blob does not decode. */
int ty__conv_respec(const uint8_t *blob, size_t n, const ty_job_spec *spec, uint8_t **out,
                    size_t *out_len);
/* NVLink island per GPU index from a node's info blob (Gpu.nvlink_island;
 * unknown = island 0, which means "one island"). */
void ty__conv_info_islands(const uint8_t *info, size_t n, uint8_t *out_islands);

/* Answers an admin change once committed (r is the ty_reply), then asks
 * for a pass; "user:alice" (or "user:unknown") for an event's actor. */
void ty__admin_committed(int status, void *ud);
void ty__actor_of(const char *user, char *buf, size_t len);
/* One UpdateJob action on j (admin_job.c): 0 with *why saying what changed
 * (an event's reason; "" when the change recorded its own), or the refusal
 * in err. ty__admin_state_known refuses first a change to a RUNNING job
 * whose node is away (whether it still runs is not known). */
int ty__admin_job_change(ty_controller *ctl, ty_reply *r, ty_job *j, const ty_admin_req *a,
                         const char *actor, ty_txn *t, char *why, size_t wlen, char *err,
                         size_t len);
int ty__admin_state_known(const ty_job *j, const ty_admin_req *a, char *err, size_t len);
/* Writes j after a change: its stored spec, the columns that changed, and
 * the event saying what (why, "" for none) and who. */
void ty__admin_record(ty_controller *ctl, ty_job *j, const char *why, const char *actor,
                      const char *user, ty_txn *t);

/* ---- rules (admin.c) --------------------------------------------------------- */

/* What submission needs from the queue: it exists and is not deleted, it is
 * OPEN or PAUSED, the time limit is within its maximum (a job asking none
 * gets its default), the warning signal is valid. Fills spec defaults. */
int ty__sched_check_spec(ty_controller *ctl, ty_job_spec *spec, char *err, size_t len);
/* The memory per node a job asking `asked` bytes gets in queue q (0: none
 * asked; TY_MEM_ALL: all of the node), into *out_mem and *out_source
 * (ty_mem_source): its own ask, refused above the queue's max_mem (err
 * starts with `what` and names both sizes); else the queue's default_mem,
 * else the cluster's default_mem_per_node (cut to the queue's max_mem),
 * else 0 (no limit); all of the node is the queue's max_mem, or 0. */
int ty__mem_resolve(const ty_controller *ctl, const ty_queue_info *q, uint64_t asked,
                    const char *what, uint64_t *out_mem, int *out_source, char *err, size_t len);
/* A submitted spec's memory per node (Resources.mem_per_node: 0 none
 * asked, TY_MEM_ALL all of the node) made what it gets in queue q, as
 * ty__mem_resolve; an --exclusive job, or one without a queue (q NULL),
 * gets no default and no maximum. Sets spec->mem_source. */
int ty__mem_apply(const ty_controller *ctl, const ty_queue_info *q, ty_job_spec *spec, char *err,
                  size_t len);
/* What a job's memory came from as ty__mem_resolve takes it again (a move
 * to another queue): its own ask, 0 for a default, TY_MEM_ALL. */
uint64_t ty__mem_asked(const ty_job_spec *s);
/* "N MiB", or "no limit" for 0. */
const char *ty__mem_text(uint64_t bytes, char buf[32]);

/* ==== graph.c, check.c and convert_graph.c ===================================================
 * The controller's side of graph jobs (issues 6, 10 and 13).
 *
 *   - Submit-time checks and plans (check.c): a child process,
 *     trainyard-graphcheck, imports the model with shape inference (from
 *     model_bytes, or model_path on the shared filesystem), decodes and
 *     validates the TrainConfig, checks its feeds and loss against the
 *     model and, unless the job's parallelism is data, plans it with
 *     ops/plan for the resources it asks for (nodes x tasks_per_node
 *     devices). The child limits its CPU time and memory; a crash, a limit
 *     or the deadline refuses that submit and nothing else. Plans are
 *     cached by their search's key (graph, mesh, batch, cost model).
 *     Errors are the runtime's own words behind the field
 *     ("job.graph.model_bytes: node 3 (MatMul): ...").
 *   - Plans: stored with the job (the jobs table's plan column), answered
 *     by GetJob when asked (trainctl show), sent to each rank in LaunchTask.
 *   - Checkpoints: every rank is told one absolute checkpoint path, so a
 *     requeued job resumes wherever its rank 0 lands: the config's path when
 *     absolute, else CHECKPOINT_DIR/ID/<its basename or checkpoint.onnx>
 *     (traind --checkpoint-dir, on the filesystem the workers share; the
 *     worker creates ID/ for the job's user).
 *   - Rendezvous: a small key/value store per job (RendezvousPut/Get) that
 *     the ranks use to form their MPI world or to share the NCCL id. A job's
 *     keys are dropped when it (re)starts, so a requeued run never reads the
 *     previous run's port names.
 *   - Progress: what rank 0's worker reports (step, loss, samples/s, the
 *     last checkpoint), kept in memory and answered with GetJob together
 *     with the checkpoints seen so far (the last 64).
 *
 * Everything here runs on the controller's loop thread; the models
 * themselves are only ever read by the children.
 */

#define TY_GRAPH_MAX_KEYS 256          /* per job */
#define TY_GRAPH_MAX_VALUE (64 * 1024) /* bytes */
#define TY_GRAPH_MAX_CKPTS 64          /* remembered per job */
#define TY_GRAPH_MAX_POINTS 2048       /* progress points kept per job (then halved) */

/* One progress report, a point of the web console's charts. */
typedef struct ty__progress_point {
  uint32_t attempt; /* the job's requeue count when reported: a restart starts a new one */
  uint64_t step;
  int64_t time_ms;
  double loss, samples_per_s;
  double test_accuracy; /* -1 = none yet */
} ty__progress_point;

/* A submitted graph job's model_bytes on disk, so neither memory nor the
 * stored spec holds them: STATE_DIR/models/ID.onnx, written to a temporary
 * name, fsynced and renamed before the job is committed. *out_path is a
 * heap string; err names the file. */
int ty__model_write(ty_controller *ctl, uint64_t id, const uint8_t *bytes, size_t len,
                    char **out_path, char *err, size_t err_len);
/* Reads one back into out (for LaunchTask); err names the file. */
int ty__model_read(const char *path, ty_buf *out, char *err, size_t err_len);
void ty__model_remove(const char *path); /* logs a failure other than ENOENT */

/* The absolute checkpoint path of a graph job (owned by the controller,
 * valid while it runs); NULL when it cannot be made (logged). */
const char *ty__graph_checkpoint_path(ty_controller *ctl, const ty_job *j);
/* CHECKPOINT_DIR when that path is the job's default one inside it
 * (CHECKPOINT_DIR/JOB/FILE, which the worker makes for the job's user),
 * else "". */
const char *ty__graph_checkpoint_root(ty_controller *ctl, const ty_job *j);
/* The job (re)starts: forget its rendezvous keys. */
void ty__graph_job_started(ty_controller *ctl, const ty_job *j);
/* Appends GetJobResponse's graph fields (progress, checkpoints) to out;
 * their checkpoint paths only when `full` (the caller is j's owner or an
 * operator, ty__auth_sees_job), else "" (docs/security.md). */
int ty__graph_append_job(ty_controller *ctl, const ty_job *j, bool full, ty_buf *out);
/* j's progress and checkpoints into j->graph_saved, which its row's next
 * save writes (column graph_progress) when they changed; and back from it
 * into memory for a job read from the store (a swept one, or at load),
 * unless memory has them already. */
void ty__graph_save(ty_controller *ctl, ty_job *j);
void ty__graph_restore(ty_controller *ctl, const ty_job *j);
/* Its job left memory: drop its record. */
void ty__graph_forget(ty_controller *ctl, uint64_t id);
void ty__graph_destroy(ty_controller *ctl);
/* Rank 0's last progress report of job id (borrowed, valid until the next
 * report), or NULL when none came. */
const ty_train_progress *ty__graph_progress(ty_controller *ctl, uint64_t id);
/* The progress reports of job id in (attempt, step) order: a requeued job
 * restarts from its checkpoint in a new attempt (at most TY_GRAPH_MAX_POINTS,
 * thinned evenly beyond that; borrowed until the next report). */
const ty__progress_point *ty__graph_history(ty_controller *ctl, uint64_t id, size_t *out_n);

void ty__h_rendezvous_put(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_rendezvous_get(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_report_progress(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_plan_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);

/* convert_graph.c: the protobuf side (pure). Strings and buffers returned
 * are owned by the caller. */
int ty__conv_rdv_put_req(const uint8_t *p, size_t n, uint64_t *out_job, char **out_key,
                         uint8_t **out_value, size_t *out_len);
int ty__conv_rdv_get_req(const uint8_t *p, size_t n, uint64_t *out_job, char **out_key);
int ty__conv_rdv_get_resp(const uint8_t *value, size_t len, bool found, ty_buf *out);
/* ReportProgressRequest: the progress and the checkpoints the worker
 * found (both owned by the caller). */
int ty__conv_progress_req(const uint8_t *p, size_t n, uint64_t *out_job, uint32_t *out_rank,
                          ty_train_progress *out, ty_checkpoint_list *out_existing);
/* ty__conv_graph_job_extra's bytes back: *out_has says whether they hold a
 * progress (then *pr is it, its path the caller's); *ck the checkpoints. */
int ty__conv_graph_saved(const uint8_t *p, size_t n, ty_train_progress *pr, bool *out_has,
                         ty_checkpoint_list *ck);
/* GetJobResponse's fields 60 and 61: the progress (NULL: none) and the
 * checkpoints, their paths "" unless `paths`. */
int ty__conv_graph_job_extra(const ty_train_progress *pr, const ty_checkpoint_info *ck, size_t n_ck,
                             bool paths, ty_buf *out);

/* What a model check found (check.c). */
typedef struct ty__check_result {
  int status;               /* 0, or the refusal's code (TY_EINVAL: the job's fault) */
  char message[TY_ERR_LEN]; /* "job.graph...: why" when status != 0 */
  uint8_t *plan;            /* the plan file, NULL for parallelism data; owned by */
  size_t plan_len;          /* the result: a callback may take it (set plan NULL) */
  uint64_t cache_key;       /* of the plan's search */
  bool cached;              /* the plan came from the cache */
} ty__check_result;
typedef void (*ty__check_cb)(ty_controller *ctl, ty__check_result *res, void *ud);
/* Checks a validated graph job in a child process, as r's submitter
 * where the controller can vouch for who that is, and with want_plan plans
 * it too (mode: the job's parallelism; data gives the pure data-parallel
 * plan). cb runs once, on the loop, possibly before this returns (a full
 * queue, no memory); with TY_ECLOSED when the controller stops first. spec
 * is copied. */
void ty__check_start(ty_controller *ctl, const ty_reply *r, const ty_job_spec *spec, bool want_plan,
                     ty__check_cb cb, void *ud);
/* Answers the waiting checks TY_ECLOSED and kills the running children
 * (their callbacks follow from the loop). */
void ty__check_stop(ty_controller *ctl);
/* Frees the registry and the cache once the loop has run dry. */
void ty__check_destroy(ty_controller *ctl);
/* GetJob's plan field (with_plan), appended to out. */
int ty__conv_job_plan(const uint8_t *plan, size_t len, ty_buf *out);
/* GetJob's plan_withheld field (true), appended to out: the job has a plan
 * the caller may not see. */
int ty__conv_plan_withheld(ty_buf *out);
/* PlanJobRequest -> spec (unvalidated); PlanJobResponse. */
int ty__conv_plan_job_req(const uint8_t *p, size_t n, ty_job_spec *out_spec);
int ty__conv_plan_job_resp(const uint8_t *plan, size_t len, bool cached, ty_buf *out);
/* The config's checkpoint_path (heap, caller frees), or NULL when it has
 * none or does not decode. */
char *ty__graph_config_checkpoint(const uint8_t *cfg, size_t len);

#endif
