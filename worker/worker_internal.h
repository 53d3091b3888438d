/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by the files of worker/: the protobuf conversions
 * (convert.c is the only file that touches generated protobuf types) into
 * the wire model (lib/wire/wire.h) and the metrics glue. Decoders return
 * TY_EPROTO for bytes that are not the expected message.
 */
#ifndef TY_WORKER_WORKER_INTERNAL_H
#define TY_WORKER_WORKER_INTERNAL_H

#include "lib/metrics/metrics.h"
#include "lib/rpc/rpc.h"
#include "lib/base/rmtree.h"
#include "worker/usercache.h"
#include "worker/worker.h"

/* A decoded LaunchTaskRequest: `spec` (graph part included) borrows from
 * the decoded message, which ty__launch_free() releases. */
typedef struct ty__launch {
  ty_task_spec spec;
  void *pb;
} ty__launch;
int ty__decode_launch(const uint8_t *p, size_t n, ty__launch *out);
void ty__launch_free(ty__launch *l);

int ty__decode_kill(const uint8_t *p, size_t n, uint64_t *out_job_id, int *out_signal,
                    uint32_t *out_grace_s, bool *out_batch_only);
int ty__decode_set_limit(const uint8_t *p, size_t n, uint64_t *out_job_id,
                         uint32_t *out_time_limit_s);

/* The caps on repeated fields of `method`'s request (proto/convert.h),
 * checked before a handler decodes: 0, or TY_EINVAL naming the field.
 * Methods the worker does not serve pass (they are answered TY_ENOTFOUND). */
int ty__check_request(const char *method, const uint8_t *p, size_t n, char *err, size_t err_len);

/* What RegisterNode says about this node: its inventory, its load and the
 * tasks it runs or whose end is not acknowledged yet (all borrowed). */
typedef struct ty__node_status {
  const ty_worker_inventory *inv;
  const char *name;
  const char *io_addr;
  uint32_t cpus_used, gpus_used, running;
  const ty_task_report *tasks;
  size_t n_tasks;
} ty__node_status;
/* Encoders append the message to `out`: 0 or TY_ENOMEM. */
int ty__encode_register(const ty__node_status *st, ty_buf *out);
int ty__decode_register_response(const uint8_t *p, size_t n, uint32_t *out_heartbeat_ms,
                                 uint32_t *out_node_timeout_ms);
int ty__encode_heartbeat(const char *node, uint32_t running, bool stopping, ty_buf *out);
/* LaunchTaskResponse: worker_stopping marks a refusal made because the
 * worker stops (the controller requeues the job and drains the node);
 * node_fault a launch that failed for the node's reason (the controller
 * drains the node and requeues the job). */
int ty__encode_launch_response(bool worker_stopping, bool node_fault, ty_buf *out);
int ty__encode_task_update(const ty_task_report *r, ty_buf *out);

int ty__decode_read_log(const uint8_t *p, size_t n, ty_read_log *out);
int ty__encode_log_chunk(uint32_t rank, uint64_t offset, const uint8_t *data, size_t len,
                         ty_buf *out);

/* ---- interactive attach (attach.c; codecs in convert.c) ---- */

int ty__decode_attach(const uint8_t *p, size_t n, ty_attach_request *out);
/* `data` borrows from the decoded message: *out_owner, for ty_wire_free. */
int ty__decode_attach_input(const uint8_t *p, size_t n, ty_attach_input *out, void **out_owner);
int ty__encode_attach_output(const ty_attach_output *o, ty_buf *out);

/* The stdio of one interactive task: pipes (or a pty) read by the worker, a
 * ring buffer of recent output, attached clients. It outlives its task
 * record: it is freed once the task ended, all its output was read and
 * delivered, and no client is attached (or nobody attached in time). */
typedef struct ty__iotask ty__iotask;
/* All iotasks of a worker; owned by ty_tasks. */
typedef struct ty__ioreg ty__ioreg;

/* `tasks` (borrowed) tells an attach for a task that ended, or is not
 * interactive, from one for a task still to come. */
ty__ioreg *ty__ioreg_create(uv_loop_t *loop, const char *node, const ty_tasks *tasks);
/* Closes every iotask (their tasks are not touched); frees once closed. */
void ty__ioreg_destroy(ty__ioreg *reg);
ty__ioreg *ty__tasks_ioreg(ty_tasks *t);

/* What the iotask may do to its task while it runs (task.c). */
typedef struct ty__iotask_hooks {
  void (*signal)(void *ud, int sig); /* to the task's process group */
  /* SIGTERM, SIGKILL after the grace; why becomes the task's end reason */
  void (*kill)(void *ud, const char *why);
  void *ud;
} ty__iotask_hooks;

/* Prepares the stdio of `spec` (which must be interactive): fills stdio[3]
 * with the task's ends to inherit (socket pairs, or the pty's slave), using
 * null_fd as the stdin of ranks that get none. log_fd is duplicated: output
 * is also appended to the rank's log. launch_ns (uv_hrtime) is when the
 * launch began, for the task's timing. Errors: TY_EIO, with a message. */
int ty__iotask_create(ty__ioreg *reg, const ty_task_spec *spec, int null_fd, int log_fd,
                      uint64_t launch_ns, uv_stdio_container_t stdio[3], char *err, size_t err_len,
                      ty__iotask **out_io);
/* After the start: rc 0 = the task runs (hooks become active), else the
 * iotask is discarded. */
void ty__iotask_spawned(ty__iotask *io, int rc, const ty__iotask_hooks *hooks);
/* The task ended; the hooks are dropped. Output still unread is delivered
 * before the clients learn the exit. */
void ty__iotask_exited(ty__iotask *io, int exit_code, int term_signal, bool timed_out);

/* The I/O server's entry points (io.c): Attach and AttachInput requests,
 * and a connection's write queue draining or the connection closing. */
void ty__io_attach(ty__ioreg *reg, ty_rpc_conn *c, const ty_rpc_msg *m);
void ty__io_attach_input(ty__ioreg *reg, ty_rpc_conn *c, const ty_rpc_msg *m);
void ty__io_conn_drained(ty__ioreg *reg, ty_rpc_conn *c);
void ty__io_conn_closed(ty__ioreg *reg, ty_rpc_conn *c);
/* The launch of (job_id, rank) ended: rc 0 = it runs, else its error (err).
 * Wakes the attaches waiting for it. */
void ty__io_launched(ty__ioreg *reg, uint64_t job_id, uint32_t rank, int rc, const char *err);

/* ---- attaches waiting for their task (attach_wait.c) ----
 * Each holds a copy of its request until the task's launch (resume gets
 * the copy back, valid during the call, with the launch's outcome, "launch
 * failed on NODE: why" when it failed, and how long it waited), its
 * deadline (TY_ENOTFOUND), a cancel or its connection's end. The last
 * launch failures are remembered, so an attach that comes after one is
 * refused at once with the launch's error (ty__attach_waits_failed). */
#define TY__ATTACH_WAIT_MAX_MS 60000u /* AttachRequest.wait_ms's cap */
typedef struct ty__attach_waits ty__attach_waits;
typedef void (*ty__attach_resume_fn)(void *ud, ty_rpc_conn *c, const ty_rpc_msg *m, int launch_rc,
                                     const char *launch_err, int64_t waited_us);
ty__attach_waits *ty__attach_waits_create(uv_loop_t *loop, const char *node,
                                          ty__attach_resume_fn resume, void *ud);
/* Ends every held attach (TY_ESTATE); frees once their timers closed. */
void ty__attach_waits_destroy(ty__attach_waits *w);
/* Holds m's attach for (job_id, rank) up to wait_ms. TY_ESTATE when the
 * node holds too many, TY_ENOMEM; err says which. */
int ty__attach_waits_add(ty__attach_waits *w, ty_rpc_conn *c, const ty_rpc_msg *m, uint64_t job_id,
                         uint32_t rank, uint32_t wait_ms, char *err, size_t err_len);
/* The remembered failure of (job_id, rank)'s launch: its code, with
 * "launch failed on NODE: why" in err; 0 when none. */
int ty__attach_waits_failed(const ty__attach_waits *w, uint64_t job_id, uint32_t rank, char *err,
                            size_t err_len);
void ty__attach_waits_wake(ty__attach_waits *w, uint64_t job_id, uint32_t rank, int launch_rc,
                           const char *launch_err);
/* Forgets the attaches of a closing connection (their requests went with it). */
void ty__attach_waits_conn_closed(ty__attach_waits *w, ty_rpc_conn *c);

/* ==== running tasks as their user: spawn.c, exec.c ===========================================
 * Who a task runs as on this node, its log file, and its spawn: by the
 * worker itself (direct.c), or through the trainyard-exec helper, whose
 * status pipe says whether the command started (a ThreadSanitizer build);
 * both take the same steps (cgroup join, setgroups/setgid/setuid,
 * session, cwd, exec). ty__runas is in usercache.h. */
/* Resolves the submitter (spec->uid) on this node; a non-root worker runs
 * everything as itself. TY_ENOTFOUND for a uid without a passwd entry,
 * TY_EPERM for a job without one; the message names the node. `cache`
 * (NULL: none) answers for a submitter it resolved before (usercache.c). */
int ty__runas_resolve(ty__usercache *cache, const ty_task_spec *spec, const char *node,
                      ty__runas *out, char *err, size_t len);
/* Opens path (in the job's directory, which job_dir.c made) for
 * appending, 0600, owned by the task's user, not following links: the fd,
 * or TY_EIO with a message. A log there of another user is replaced,
 * never given to this one. */
int ty__open_task_log(const char *path, const ty__runas *who, const char *node, char *err,
                      size_t len);

typedef struct ty__spawn {
  const char *helper; /* trainyard-exec */
  const char *node;   /* for messages */
  char **procs;       /* cgroup.procs files to join (NULL-terminated), or NULL */
  const ty__runas *who;
  bool ctty;                       /* pty: stdin becomes the controlling terminal */
  const char *cwd;                 /* NULL/"" = the worker's */
  const ty_proc_settings *process; /* the submitter's umask, set after the user change */
  const char *const *argv;
  size_t argc;
  char **env;
  uv_stdio_container_t stdio[3];
  uv_exit_cb exit_cb;
} ty__spawn;
/* Spawns the task through the helper into *proc and waits (at most 10 s)
 * for its verdict: 0 once the command exec'd; UV_ENOENT / UV_EACCES for
 * argv[0], TY_ENOTFOUND / TY_EPERM for the cwd, TY_EPERM / TY_EINVAL for
 * the job's user or limits or another exec failure, else (the node's
 * fault) TY_EIO, each with a message. On error the helper has been reaped and *proc must be closed
 * if uv_spawn initialised it (proc->type == UV_PROCESS). ThreadSanitizer builds. */
int ty__spawn_task(uv_loop_t *loop, uv_process_t *proc, const ty__spawn *s, char *err, size_t len);
/* A start's failure "STEP<TAB>ERRNO<TAB>MESSAGE" (trainyard-exec's status
 * line) as ty__spawn_task's code and message; line is modified. */
int ty__spawn_verdict(const ty__spawn *s, char *line, char *err, size_t len);

/* direct.c: starts a task (s->stdio are inherited fds; s->helper is
 * not used) without the helper, taking its steps in a child that shares
 * the worker's memory until the exec: 0 once the command exec'd, with its
 * pid and a pidfd (close-on-exec, readable once it exits; the caller owns
 * it), else ty__spawn_task's codes and messages and the child is reaped. */
int ty__spawn_direct(const ty__spawn *s, int *out_pid, int *out_pidfd, char *err, size_t len);
/* Reaps the process of pidfd if it has exited: 0 with its exit code or
 * terminating signal, 1 while it runs, TY_EIO when the pidfd is not one. */
int ty__reap_pidfd(int pidfd, int64_t *out_status, int *out_signal);
/* SIGKILLs a task started by ty__spawn_direct, reaps it, closes its pidfd. */
void ty__kill_pidfd(int pid, int pidfd);

/* Worker metrics: registers the families on `m` and refreshes the gauges from
 * `tasks` and `inv` before each scrape. Owned by the caller (destroy). */
typedef struct ty__worker_stats ty__worker_stats;
ty__worker_stats *ty__worker_stats_create(ty_metrics *m, ty_tasks *tasks,
                                          const ty_worker_inventory *inv);
void ty__worker_stats_destroy(ty__worker_stats *s);

/* ==== what running tasks use: usage.c ========================================================= */
typedef struct ty__task_usage {
  uint64_t job_id;
  uint32_t rank;
  int pid;          /* the task's session */
  uint64_t gpus;    /* bit set of its GPU indices */
  bool in_cgroup;   /* it runs in its own cgroup of `cg` below */
  double cpu_s;     /* out: CPU seconds of the task's processes */
  double rss_bytes; /* out: their memory */
} ty__task_usage;
/* Fills cpu_s and rss_bytes of every entry: from its cgroup where it has
 * one (cg), else from one pass over /proc for the others. */
void ty__usage_sample(ty_cgroups *cg, ty__task_usage *tasks, size_t n);
/* NVML through dlopen; NULL where there is none (or no CUDA build). */
typedef struct ty__nvml ty__nvml;
ty__nvml *ty__nvml_open(void);
/* Utilisation (0..1) and used memory of GPU `index`; TY_ENOTFOUND if unknown. */
int ty__nvml_sample(ty__nvml *n, uint32_t index, double *out_util, double *out_mem_bytes);
void ty__nvml_close(ty__nvml *n); /* accepts NULL */

/* ==== task logs: logs.c =======================================================================
 * The size cap and the retention of task logs (see logs.c for the cut's
 * format and its race). Owned by ty_tasks; loop thread only. */
typedef struct ty__logs ty__logs;

/* One log cut at least once: where its head ends, the marker, and where the
 * last cut moved its tail (for readers to follow). */
typedef struct ty__logcut {
  uint64_t job_id;
  uint32_t rank;
  uint64_t head;               /* bytes kept from the start, fixed by the first cut */
  uint64_t marker_len;         /* the marker line now at `head` */
  uint64_t cut_total;          /* output bytes removed so far */
  uint32_t gen;                /* cuts so far */
  uint64_t old_tail, new_tail; /* the last cut moved [old_tail, end) to new_tail */
} ty__logcut;

/* Logs under state_dir/jobs; limits at their defaults. */
ty__logs *ty__logs_create(const char *state_dir);
void ty__logs_destroy(ty__logs *lg); /* NULL ok */
void ty__logs_set_limits(ty__logs *lg, uint64_t max_bytes, uint32_t retention_s);
uint32_t ty__logs_retention(const ty__logs *lg);
/* Cuts the log of job/rank at path if it is over the cap. */
void ty__logs_check(ty__logs *lg, uint64_t job, uint32_t rank, const char *path);
/* A reader at *offset that has seen cut generation *gen of job/rank's log:
 * moves both to where the same bytes are now (to the marker when the bytes
 * were cut). */
void ty__logs_follow(const ty__logs *lg, uint64_t job, uint32_t rank, uint32_t *gen,
                     uint64_t *offset);
uint32_t ty__logs_gen(const ty__logs *lg, uint64_t job, uint32_t rank);
/* Walks the job directories: with `remove`, removes those past retention
 * whose job is not `busy` here. Returns the disk bytes of what stays. */
uint64_t ty__logs_sweep(ty__logs *lg, int64_t now_s, bool (*busy)(uint64_t job, void *ud), void *ud,
                        bool remove);
/* Forgets the cuts of job's logs (its directory was moved aside). */
void ty__logs_forget(ty__logs *lg, uint64_t job);
/* Lifetime counts for /metrics. */
void ty__logs_counts(const ty__logs *lg, uint64_t *out_bytes_cut, uint64_t *out_dirs_removed);

/* ==== graph jobs: graph_task.c, progress.c ===================================================
 * The worker's side of graph jobs (issue 6).
 *
 * Launch: a LaunchTaskRequest with `graph` set becomes a `trainrun` command
 * for that rank. The worker writes model_bytes (when the model is not a
 * shared path) and the TrainConfig into DIR/jobs/JOB/ (model.onnx,
 * config.pb), and runs
 *
 *   TRAINRUN --model M --config DIR/jobs/JOB/config.pb --checkpoint C
 *            --threads CPUS
 *
 * in that directory, with TRAINYARD_CONTROLLER=HOST:PORT (the controller as
 * this worker reaches it: the ranks' rendezvous) added to the standard task
 * environment (RANK, WORLD_SIZE, TRAINYARD_JOB_ID...).
 *
 * Progress (progress.c): for every rank 0 it started, the worker reads the
 * tail of the rank's log at each heartbeat -- trainrun's progress lines,
 * "step S/T loss L lr X samples/s N" and "epoch E test_accuracy A ..." --
 * and the step recorded in the checkpoint's PATH.state header, and sends
 * ReportProgress when something changed, plus once more after the task
 * ended. Reading the log keeps trainrun free of any worker protocol.
 */

/* ReportProgress for rank `rank` of job_id, with the checkpoints that exist
 * (NULL: not listed), appended to out (convert.c). */
int ty__encode_progress(uint64_t job_id, uint32_t rank, const ty_train_progress *p,
                        const ty_checkpoint_list *existing, ty_buf *out);

/* One per session. `trainrun` and `controller` ("host:port") are copied. */
typedef struct ty__graph_worker ty__graph_worker;
ty__graph_worker *ty__graph_worker_create(ty_tasks *tasks, const char *trainrun,
                                          const char *controller);
void ty__graph_worker_destroy(ty__graph_worker *gw);

/* The command of a graph rank; the spec's argv/env/cwd point into it until
 * ty__graph_cmd_close. */
typedef struct ty__graph_cmd {
  char *argv[16];
  size_t argc;
  char **env; /* the job's (--export), then the rank's own: owned */
  size_t n_env;
  char *cwd;
} ty__graph_cmd;

/* Rank 0 of a graph job whose checkpoints go to traind's CHECKPOINT_DIR
 * (spec->checkpoint_root): makes CHECKPOINT_DIR/JOB, 0700 and the job's
 * user's (a root worker gives it to them), stamped with the job's id and
 * submit time; keeps one that is this job's (a requeue) and moves anything
 * else there aside (worker/graph_ckpt_dir.c). Otherwise does nothing; 0,
 * or an error with a message in err. */
int ty__graph_ckpt_dir(const ty_task_spec *spec, char *err, size_t err_len);

/* job_dir.c: makes DIR/jobs/JOB (its path in out) for spec's job, first
 * moving aside one stamped for an earlier job of the same id (as
 * JOB<TY__JOB_DIR_REPLACED>TIME, which retention removes); keeps this
 * job's (a requeue). 0, or an error with a message in err. */
#define TY__JOB_DIR_REPLACED ".replaced-"
int ty__job_dir_claim(ty_tasks *t, const ty_task_spec *spec, char *out, size_t n, char *err,
                      size_t err_len);

/* When spec is a graph rank, writes the job's files and points spec's
 * argv, env and cwd at `cmd`; returns 1. Returns 0 for a command task, or
 * an error with a message in err. */
int ty__graph_prepare(ty__graph_worker *gw, ty_task_spec *spec, ty__graph_cmd *cmd, char *err,
                      size_t err_len);
void ty__graph_cmd_close(ty__graph_cmd *cmd);
/* A graph rank 0 started: watch its progress. */
void ty__graph_watch(ty__graph_worker *gw, const ty_task_spec *spec, const char *checkpoint_path);
/* At each heartbeat: sends ReportProgress through the session for what
 * changed. */
void ty__graph_tick(ty__graph_worker *gw, ty_worker_session *s);
/* Sends job_id's progress now if it changed: called as its rank 0 ends,
 * before the end's TaskUpdate on the same connection, so the controller
 * holds the last step and checkpoint when the job ends, not a heartbeat
 * later (a `submit -W` then `show` printed no step at all). */
void ty__graph_report_now(ty__graph_worker *gw, ty_worker_session *s, uint64_t job_id);

/* session.c: a call to the controller, signed with the worker's scheme off
 * the loop and in order, sent if the session's connection is still the
 * one it was at the call; otherwise cb gets TY_ECLOSED with a NULL conn. A
 * signing failure reaches cb as that status with munged's words. */
void ty__session_call(ty_worker_session *s, const char *method, const ty_buf *payload,
                      uint32_t timeout_ms, ty_rpc_answer_cb cb, void *ud);

/* progress.c: the error line starting prefix (trainrun's "trainrun: ", a
 * batch runner's TY_BATCH_ERROR) over the last 4 KiB of a rank's log, this
 * run's only (ty_worker_log_error). */
int ty__log_exit_reason(const char *log_path, const char *prefix, char *out, size_t out_len);

/* The per-session graph state shared by graph_task.c and progress.c. */
/* One rank 0 whose progress is forwarded. */
typedef struct ty__watch {
  uint64_t job_id;
  char *log_path, *ckpt_path;
  ty_train_progress last; /* as last sent; checkpoint_path not kept */
  uint64_t listed_sig;    /* of the checkpoint list last sent */
  bool sent, ended;
  bool owned_only;      /* a root worker: read only files the job's user owns */
  uid_t uid;            /* the job's user */
  char ckpt_file[4096]; /* the newest step checkpoint's model, for `last` */
} ty__watch;
void ty__watch_close(ty__watch *w);

struct ty__graph_worker {
  ty_tasks *tasks;
  char *trainrun, *controller;
  ty__watch *watches;
  size_t n;
};

/* ---- a task's private TMPDIR (task_tmp.c) ---- */

#define TY__TASK_TMP_BASE_MAX 900 /* --tmp-base's length at most */

/* BASE/name, the directory it is (st_dev, st_ino); name "" when none. */
typedef struct ty__task_tmp {
  char name[96]; /* trainyard-job-JOB.RANK */
  dev_t dev;
  ino_t ino;
} ty__task_tmp;
/* Whether path's last part is a task's private TMPDIR's name,
 * trainyard-job-JOB.RANK: another task's, removed when that task ends (a
 * job submitted from inside a job carries it in its environment). */
bool ty__task_tmp_named(const char *path);
/* Makes BASE/trainyard-job-JOB.RANK, 0700, owned by who's user (the
 * worker's own when who does not switch users); whatever had the name goes
 * aside and away. 0, or an error in err naming the directory. */
int ty__task_tmp_make(ty_tasks *t, const ty_task_spec *spec, const ty__runas *who,
                      ty__task_tmp *out, char *err, size_t err_len);
/* Removes tmp's directory on the thread pool (a warning when some is left)
 * and marks tmp none; nothing when it is none already. */
void ty__task_tmp_remove(ty_tasks *t, ty__task_tmp *tmp, uint64_t job_id, uint32_t rank);

/* ---- task records (task.c supervises, launch.c starts) ---- */

#define TY__ENDED_LOGS 64 /* logs of ended tasks still checked against the cap */

/* One rank on this node, from its launch until its end is acknowledged
 * and its handles have closed. Owned by its registry's list. */
typedef struct ty__task {
  struct ty__task *next;
  ty_tasks *owner;
  uv_process_t proc;      /* a task started through the helper (ThreadSanitizer builds) */
  uv_poll_t exit_poll;    /* a task started by direct.c: its pidfd, readable at its exit */
  int pidfd;              /* -1 when none */
  uint64_t launch_ns;     /* uv_hrtime when its launch began (rlaunch --timing) */
  uv_timer_t grace_timer; /* SIGTERM -> SIGKILL escalation */
  uv_timer_t limit_timer; /* time limit */
  uv_timer_t warn_timer;  /* warning signal before the time limit */
  int warn_signal;
  bool warn_batch_only; /* to the batch script's process alone (task.c) */
  uint32_t warn_before_s;
  bool warned;            /* its warning signal was sent: never twice */
  uint64_t limit_from_ms; /* uv_now when its timers started: a new limit counts from it */
  int open_handles;
  bool running;
  bool acked;
  bool in_cgroup;   /* its processes live in job<J>/rank<R> */
  bool mem_limited; /* its cgroup has the job's --mem as its limit */
  bool oom_killed;  /* its cgroup counted a kill at that limit (note_oom) */
  bool graph;       /* a graph rank (trainrun): a failed exit's reason is its error line */
  bool batch;       /* a batch script's runner: a failed exit's reason is its error line */
  int reap_polls;   /* after exit: waits for the cgroup to empty */
  ty_task_usage usage;
  int64_t ended_ms; /* wall clock (ms since the epoch) when it ended; 0 = running */
  uint64_t job_id;
  uint32_t rank, master_port, cpus, n_gpus, kill_grace_s;
  uint64_t gpu_mask; /* its GPU indices (below 64), for per-task metrics */
  int pid;
  ty_task_state state;
  int exit_code, term_signal;
  bool timed_out;
  char *reason;
  bool fenced;      /* SIGKILLed by ty_tasks_fence: once is enough */
  bool stopped;     /* ended by ty_tasks_kill_all: the worker stops, not the job */
  ty__iotask *io;   /* interactive stdio, until the task ends */
  ty__task_tmp tmp; /* its private TMPDIR, until it ends */
} ty__task;

/* The registry of a node's tasks (worker.h's ty_tasks). */
/* fence.c: the child that kills the tasks once the worker is gone (a
 * worker killed outright included); each task's process group registered
 * while it runs. NULL from start: no fence (the warning says so). */
typedef struct ty__fence ty__fence;
ty__fence *ty__fence_start(ty_cgroups *cg);
void ty__fence_add(ty__fence *f, pid_t pgid);
void ty__fence_remove(ty__fence *f, pid_t pgid);
pid_t ty__fence_pid(const ty__fence *f);
/* The worker stops in order: the fence kills what is left and is reaped. */
void ty__fence_stop(ty__fence *f);

struct ty_tasks {
  uv_loop_t *loop;
  char *state_dir;
  char *node;
  ty_tasks_end_cb on_end;
  void *ud;
  ty__task *head;
  bool destroying;
  bool stopping; /* the worker is shutting down: no new tasks */
  ty_tasks_stats stats;
  ty__ioreg *ioreg;     /* interactive tasks' stdio (attach.c) */
  char *helper;         /* trainyard-exec */
  ty_cgroups *cg;       /* NULL: process groups only */
  ty__fence *fence;     /* NULL: none (ty_tasks_start_fence) */
  char **site_env;      /* --task-env, NULL-terminated (or NULL) */
  char *tmp_base;       /* --tmp-base: where tasks' private TMPDIRs go */
  ty__logs *logs;       /* caps and retention (logs.c) */
  ty__usercache *users; /* submitters resolved before (usercache.c) */
  int64_t last_sweep_ms;
  /* Logs of tasks that just ended, looked at a few more times: an
   * interactive task's last output reaches its log after the exit. */
  struct ended_log {
    uint64_t job_id;
    uint32_t rank, checks_left;
  } ended_logs[TY__ENDED_LOGS];
  size_t n_ended_logs;
};

/* task.c: the record of job/rank not yet acknowledged (NULL if none);
 * signals to the task's cgroup or process group; SIGTERM then SIGKILL
 * after grace_s; the exit callback of an interactive task's process, the
 * poll callback of a plain task's pidfd, and what follows an exit; a
 * closed handle counted (the record goes with its last); a new task's
 * timers started. */
ty__task *ty__task_find(const ty_tasks *t, uint64_t job_id, uint32_t rank);
void ty__task_signal(ty__task *k, int sig);
/* script_pid.c: the process a batch task's script runs in (the child of
 * its trainyard-exec --wait-status), else the task's leader. */
pid_t ty__task_script_pid(pid_t leader);
void ty__task_terminate(ty__task *k, uint32_t grace_s);
void ty__task_on_exit(uv_process_t *p, int64_t exit_status, int term_signal);
void ty__task_on_pidfd(uv_poll_t *h, int status, int events);
void ty__task_exited(ty__task *k, int64_t exit_status, int term_signal);
void ty__task_on_handle_closed(uv_handle_t *h);
void ty__task_on_poll_closed(uv_handle_t *h); /* closes the pidfd too */
void ty__task_start_timers(ty_tasks *t, ty__task *k, uint32_t time_limit_s, uint32_t warn_before_s);

#endif
