/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/wire: the plain C model of what crosses a process boundary
 * (proto/trainyard.proto), defined once for traind, trainworkerd, trainctl
 * and rlaunch. Enum values equal the proto enums' numbers, so converters
 * pass them through; structs mirror the messages that more than one binary
 * reads or writes, field by field.
 *
 * Here: the state enums and their names (one X-macro table each), the job
 * spec (its arrays, dependencies and job references: jobref.h), a task's report, the launch of one
 * rank, interactive attach, log reads, training progress and checkpoints, task locations, cancel
 * results, queue settings with their rules, and the one protobuf pack/unpack helper every convert
 * file uses. Not here: generated types (only convert files see them; converters of messages several
 * binaries share are proto/convert.h) and anything a single binary keeps to itself.
 *
 * Ownership: `char *` and `uint8_t *` members are owned by the struct when a
 * decoder filled it (free them with its _close); a producer may instead
 * point them at its own storage for one encode and then never closes the
 * struct. `const` members are always borrowed.
 *
 * Allocation: everything here decodes what another process sent, so it
 * allocates with malloc and returns TY_ENOMEM (the policy of base.h); no
 * function aborts.
 */
#ifndef TY_LIB_WIRE_WIRE_H
#define TY_LIB_WIRE_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/base.h"
#include "lib/wire/jobref.h"

/* ---- states ----------------------------------------------------------------
 * X(NAME, number, short form): trainyard.JobState. The short forms are
 * squeue's, accepted by `trainctl ls --state`. */
#define TY_JOB_STATE_MAP(X)                                                                        \
  X(PENDING, 1, "PD")                                                                              \
  X(RUNNING, 2, "R")                                                                               \
  X(COMPLETED, 3, "CD")                                                                            \
  X(FAILED, 4, "F")                                                                                \
  X(CANCELLED, 5, "CA")                                                                            \
  X(TIMEOUT, 6, "TO")                                                                              \
  X(PREEMPTED, 7, "PR")      /* requeued PENDING at once, or final (no_requeue) */                 \
  X(NODE_FAIL, 8, "NF")      /* requeued PENDING at once, or final (no_requeue) */                 \
  X(OUT_OF_MEMORY, 9, "OOM") /* killed at its memory limit (--mem); final */

typedef enum ty_job_state {
#define TY_JOB_STATE_ENUM_(name, num, abbrev) TY_JOB_##name = num,
  TY_JOB_STATE_MAP(TY_JOB_STATE_ENUM_)
#undef TY_JOB_STATE_ENUM_
} ty_job_state;
#define TY_JOB_STATE_MAX 9
/* An OUT_OF_MEMORY job's signal (its exit code reads 0:125): Slurm's, whose
 * SIG_OOM (253) less the signal flag (128) sacct prints. Not a real signal. */
#define TY_JOB_OOM_SIGNAL 125

/* "PENDING", "NODE_FAIL", ...; "UNKNOWN" for anything else. Never NULL. */
const char *ty_job_state_name(int state);
/* Names case-insensitively, '-' for '_' ("node-fail"), the short forms and
 * the American "CANCELED". TY_EINVAL for anything else. */
int ty_job_state_parse(const char *s, int *out_state);
/* The states a job rests in once it has ended: COMPLETED, FAILED,
 * CANCELLED, TIMEOUT, OUT_OF_MEMORY, and PREEMPTED and NODE_FAIL (a job is
 * only ever seen in those when it was not requeued: Job.no_requeue). */
bool ty_job_state_terminal(int state);
/* trainyard.RunState: how one run of a job ended, the same numbers as the
 * job states it shares (COMPLETED .. OUT_OF_MEMORY) and REQUEUED, a run
 * that went back to PENDING without one of them; 0 = not known. */
#define TY_RUN_REQUEUED 10
/* "PREEMPTED", "REQUEUED", ...; "" for 0 and anything else. Never NULL. */
const char *ty_run_state_name(int state);

/* trainyard.NodeState. */
#define TY_NODE_STATE_MAP(X)                                                                       \
  X(UP, 1)                                                                                         \
  X(DOWN, 2)     /* missed heartbeats or connection lost */                                        \
  X(DRAINING, 3) /* takes no new jobs; running jobs finish */                                      \
  X(DRAINED, 4)                                                                                    \
  X(UNKNOWN, 5) /* known from before a controller restart; not re-registered since */

typedef enum ty_node_state {
#define TY_NODE_STATE_ENUM_(name, num) TY_NODE_##name = num,
  TY_NODE_STATE_MAP(TY_NODE_STATE_ENUM_)
#undef TY_NODE_STATE_ENUM_
} ty_node_state;
#define TY_NODE_STATE_MAX 5
const char *ty_node_state_name(int state); /* "UP", ...; "UNKNOWN" also out of range */

/* trainyard.TaskState: a rank's process on a worker. */
typedef enum ty_task_state {
  TY_TASK_STARTING = 1,
  TY_TASK_RUNNING = 2,
  TY_TASK_EXITED = 3,      /* exit_code set */
  TY_TASK_SIGNALED = 4,    /* term_signal set */
  TY_TASK_FAILED_START = 5 /* could not be spawned: reason set */
} ty_task_state;
/* EXITED, SIGNALED and FAILED_START. */
bool ty_task_state_ended(int state);

/* ---- the job spec (trainyard.Job) --------------------------------------------- */

typedef enum { TY_JOB_KIND_NONE = 0, TY_JOB_KIND_COMMAND = 1, TY_JOB_KIND_GRAPH = 2 } ty_job_kind;

/* X(NAME, number, word): trainyard.Parallelism, how a graph job's ranks
 * split the work. The numbers are also ops/plan's ty_plan_mode. */
#define TY_PARALLELISM_MAP(X)                                                                      \
  X(AUTO, 0, "auto")     /* the planner's choice; the default */                                   \
  X(DATA, 1, "data")     /* no plan: data parallel, as before plans */                             \
  X(TENSOR, 2, "tensor") /* the planner's tensor-parallel plan */                                  \
  X(GRID, 3, "grid")     /* the planner's best data x tensor grid */

typedef enum ty_parallelism {
#define TY_PARALLELISM_ENUM_(name, num, word) TY_PARALLELISM_##name = num,
  TY_PARALLELISM_MAP(TY_PARALLELISM_ENUM_)
#undef TY_PARALLELISM_ENUM_
} ty_parallelism;
#define TY_PARALLELISM_MAX 3
/* "auto", "data", "tensor", "grid"; NULL for anything else. */
const char *ty_parallelism_name(int p);
/* The word (any case) -> the value; TY_EINVAL for anything else. */
int ty_parallelism_parse(const char *s, int *out);

/* Interactive execution (rlaunch; trainyard.InteractiveSpec): the tasks keep
 * their stdio on the worker for an attached client. */
typedef struct ty_interactive {
  bool on; /* the message was present */
  bool pty, stdin_all, detach;
  uint32_t rows, cols; /* initial pty window size, 0 = unset */
} ty_interactive;

/* The resource limits whose soft values a job carries (trainyard's
 * LimitResource less one: TY_LIMIT_CORE is LIMIT_CORE), as Slurm's
 * PropagateResourceLimits=ALL less RLIMIT_NPROC, which stays the worker's. */
typedef enum ty_limit {
  TY_LIMIT_CORE,
  TY_LIMIT_NOFILE,
  TY_LIMIT_AS,
  TY_LIMIT_STACK,
  TY_LIMIT_DATA,
  TY_LIMIT_FSIZE,
  TY_LIMIT_CPU,
  TY_LIMIT_COUNT
} ty_limit;
#define TY_LIMIT_UNLIMITED UINT64_MAX /* a soft limit of RLIM_INFINITY */
/* RLIMIT_NOFILE and the others, by ty_limit. */
int ty_limit_rlimit(ty_limit l);

/* The submitter's process settings (trainyard.ProcessSettings), as
 * sbatch's SLURM_UMASK and PropagateResourceLimits=ALL: trainctl and
 * rlaunch read them, the worker's child applies them before the exec.
 * has_umask false: the worker's umask; has_soft[l] false: its limit. */
typedef struct ty_proc_settings {
  bool has_umask;
  uint32_t umask; /* 0..0777 */
  bool has_soft[TY_LIMIT_COUNT];
  uint64_t soft[TY_LIMIT_COUNT]; /* TY_LIMIT_UNLIMITED = none */
} ty_proc_settings;

/* A job's own priority (Job.priority): trainctl and rlaunch refuse values
 * outside it, traind refuses them at submit and in `job priority`. */
#define TY_JOB_PRIORITY_MIN (-1000)
#define TY_JOB_PRIORITY_MAX 1000
/* Names in one job's -w/--nodelist or -x/--exclude list (Resources). */
#define TY_JOB_MAX_NODE_NAMES 4096
/* Job.time_limit_s (and UpdateJobRequest's) asking for no limit, Slurm's
 * --time=UNLIMITED: traind makes it the queue's max_time, or none. */
#define TY_TIME_LIMIT_UNLIMITED UINT32_MAX
/* A time limit as Slurm's --time and partition MaxTime/DefaultTime take
 * one (a bare number is MINUTES; MIN:SEC, H:MIN:SEC, DAYS-H, DAYS-H:MIN,
 * DAYS-H:MIN:SEC) or with a unit (90s, 15m, 2h, 1d); UNLIMITED, INFINITE
 * (any case) or 0 for no limit: TY_TIME_LIMIT_UNLIMITED. Seconds in *out,
 * or TY_EINVAL with a message naming `what` (lib/wire/timelimit.c). */
int ty_parse_time_limit(const char *what, const char *s, uint32_t *out, char *err, size_t err_len);
/* WebTokenRequest.ttl_s: how long a web console token lives; 0 asks for
 * the default, more than the maximum is refused (trainctl web-token --ttl
 * before sending, traind on receipt). */
#define TY_WEB_TOKEN_TTL_DEFAULT_S (7u * 24 * 3600)
#define TY_WEB_TOKEN_TTL_MAX_S (90u * 24 * 3600)
/* Resources.mem_per_node as submitted for sbatch's --mem=0 (all of the
 * node): traind makes it the queue's max_mem, or no limit (0). */
#define TY_MEM_ALL UINT64_MAX

/* Where a job's memory per node came from (trainyard.MemSource). */
typedef enum ty_mem_source {
  TY_MEM_ASKED = 0,           /* its own --mem (0: none asked, no default) */
  TY_MEM_QUEUE_DEFAULT = 1,   /* the queue's default_mem */
  TY_MEM_CLUSTER_DEFAULT = 2, /* traind's sched.default_mem_per_node */
  TY_MEM_ALL_OF_NODE = 3,     /* --mem=0: the queue's max_mem, or no limit */
} ty_mem_source;
/* "queue default", "cluster default", "all of the node", or "" (asked). */
const char *ty_mem_source_name(int source);

/* A job as submitted. Owns every string and array once decoded or built by
 * a parser; ty_job_spec_close frees them. Counts left 0 take the
 * controller's defaults. */
typedef struct ty_job_spec {
  char *name;
  char *queue; /* "" or NULL means "default" */
  char *user;  /* output only: the submitter, from the credential */
  /* The submitter's uid and gid (Job.uid, Job.gid), set by traind from the
   * credential; has_uid is false for a job stored before authentication. */
  bool has_uid;
  uint32_t uid, gid;
  int32_t priority;      /* TY_JOB_PRIORITY_MIN..MAX */
  uint32_t time_limit_s; /* 0 = the queue's default; TY_TIME_LIMIT_UNLIMITED = none */
  bool has_resources;    /* the Resources message was present */
  uint32_t nodes, tasks_per_node, gpus_per_node, cpus_per_task;
  uint64_t mem_per_node; /* bytes, 0 = no limit (submitted: Resources.mem_per_node) */
  int mem_source;        /* ty_mem_source: set by traind at submit */
  bool exclusive;        /* whole nodes (Resources.exclusive, sbatch's --exclusive) */
  /* -w/--nodelist and -x/--exclude: node names (Resources.required_nodes,
   * excluded_nodes), owned; at most TY_JOB_MAX_NODE_NAMES each. */
  char **req_nodes, **exc_nodes;
  size_t n_req_nodes, n_exc_nodes;
  ty_job_kind kind;
  char **argv;
  size_t argc;
  char **env; /* "NAME=value" */
  size_t envc;
  char *cwd;
  ty_interactive interactive;
  /* Like Slurm's --signal: warn_signal to the tasks warn_before_s seconds
   * before the time limit (0 = none); with --signal=B:, to the batch
   * script's process alone. */
  uint32_t warn_signal, warn_before_s;
  bool warn_batch_only;
  /* A failed rank requeues the job up to this many times (0 = it fails). */
  uint32_t max_rank_failure_requeues;
  /* Job.no_requeue (sbatch --no-requeue): never requeued by the controller;
   * node loss ends it NODE_FAIL, preemption PREEMPTED. */
  bool no_requeue;
  /* Graph jobs (Job.graph): the ONNX model as a path on the shared
   * filesystem or as bytes, and the encoded trainyard.TrainConfig. */
  char *model_path;
  uint8_t *model_bytes;
  size_t model_len;
  uint8_t *train_config;
  size_t train_config_len;
  int parallelism; /* ty_parallelism */
  /* Arrays and dependencies (Job.array, Job.dependencies). */
  ty_array_spec array;
  ty_dep *deps;
  size_t n_deps;
  bool deps_any; /* '?': any one condition suffices */
  ty_dep_invalid on_invalid_dep;
  bool hold;                /* Job.hold: submitted held */
  int64_t begin_ms;         /* Job.begin_time_ms: not before (epoch ms), 0 = now */
  ty_proc_settings process; /* Job.process: the submitter's umask */
} ty_job_spec;
void ty_job_spec_close(ty_job_spec *s); /* accepts NULL; leaves s zeroed */
/* A deep copy of `from` into *out (everything malloc'd); TY_ENOMEM with
 * nothing left to free. */
int ty_job_spec_copy(const ty_job_spec *from, ty_job_spec *out);

/* ---- workers: launch and report -------------------------------------------------- */

/* One rank to start (trainyard.LaunchTaskRequest). Every pointer is
 * borrowed: from the controller's job while it encodes, from the decoded
 * message on the worker. */
typedef struct ty_task_spec {
  uint64_t job_id;
  uint32_t rank, local_rank, world_size, local_world_size;
  const char *master_addr;
  uint32_t master_port;
  const uint32_t *gpu_indices; /* for CUDA_VISIBLE_DEVICES */
  size_t n_gpus;
  uint32_t cpus;
  const char *const *argv; /* argc entries; argv[0] is looked up in PATH */
  size_t argc;
  const char *const *env; /* "NAME=value" entries added to the base env */
  size_t n_env;
  const char *cwd;       /* NULL or "" = the worker's cwd */
  uint32_t time_limit_s; /* 0 = none */
  uint32_t kill_grace_s; /* 0 = the worker's default */
  const char *user;      /* the submitter's name, for messages */
  /* Isolation (LaunchTaskRequest fields 100+): who the task runs as
   * (has_uid false: refused by a root worker) and the memory its job may use
   * on this node, all its ranks there together (0 = no limit). */
  bool has_uid;
  uint32_t uid, gid;
  uint64_t mem_per_node;
  /* Interactive tasks (rlaunch): stdio stays on the worker for attached
   * clients; attach_key (lib/token) verifies their task tokens. Graph ranks
   * get the key too: the worker signs their rendezvous tokens with it. */
  ty_interactive interactive;
  const uint8_t *attach_key;
  size_t attach_key_len;
  /* Like Slurm's --signal: warn_signal to the task's process group
   * warn_before_s seconds before time_limit_s (0 = no warning), or with
   * warn_batch_only to the batch script's process alone. */
  uint32_t warn_signal, warn_before_s;
  bool warn_batch_only;
  /* Graph ranks (LaunchTaskRequest.graph): the worker starts trainrun with
   * the model (a shared path, or bytes it writes out) and the config, and
   * argv is ignored. */
  bool graph;
  const char *model_path; /* "" = model_bytes */
  const uint8_t *model_bytes;
  size_t model_len;
  const uint8_t *train_config;
  size_t train_config_len;
  const char *checkpoint_path; /* absolute; where rank 0 checkpoints */
  /* traind's CHECKPOINT_DIR when checkpoint_path is the job's default one
   * (CHECKPOINT_DIR/JOB/...), else "": a root worker makes CHECKPOINT_DIR/JOB
   * for the job's user before rank 0 starts. */
  const char *checkpoint_root;
  /* The job's submit time (ms): with job_id, the stamp that tells this
   * job's DIR/jobs/JOB and CHECKPOINT_DIR/JOB from an earlier job's of the
   * same id; 0 = none sent (an older traind). */
  uint64_t job_submit_ms;
  uint32_t bucket_mb; /* gradient bucket size, 0 = trainrun's default */
  /* A job array's element (array_job_id != 0): its task index and the
   * array's count, smallest and largest index and step, for the
   * TRAINYARD_ARRAY_* and SLURM_ARRAY_* variables. */
  uint64_t array_job_id;
  uint32_t array_task_id, array_task_count, array_task_min, array_task_max, array_task_step;
  /* The job's plan file (ops/plan/plan.h's format), which the worker writes
   * into the job's directory for trainrun --plan; 0 bytes = data parallel. */
  const uint8_t *plan;
  size_t plan_len;
  /* The job as its tasks see it (LaunchTaskRequest fields 110+): name,
   * queue, its nodes as a Slurm hostlist in rank order, their count and
   * this node's index among them. */
  const char *job_name, *queue, *nodelist;
  uint32_t num_nodes, node_index;
  /* The CPUs the job holds on this node, all its ranks there (an
   * exclusive job's: the node's); 0 = cpus * local_world_size. */
  uint32_t cpus_on_node;
  uint32_t restart_count;   /* times the job was requeued before (SLURM_RESTART_COUNT) */
  ty_proc_settings process; /* the submitter's umask (LaunchTaskRequest.process) */
} ty_task_spec;

/* What a task's cgroup used (accounting), read when it ended; zero without
 * cgroups. */
typedef struct ty_task_usage {
  uint64_t cpu_usec;                      /* user + system CPU time */
  uint64_t mem_peak_bytes;                /* the peak of its memory use */
  uint64_t io_read_bytes, io_write_bytes; /* on block devices */
} ty_task_usage;
/* Adds b into a: times and bytes summed, the peak the larger one. */
void ty_task_usage_add(ty_task_usage *a, const ty_task_usage *b);

/* The state of one rank as a worker reports it (RegisterNode's tasks,
 * TaskUpdate). */
typedef struct ty_task_report {
  uint64_t job_id;
  uint32_t rank;
  ty_task_state state;
  int32_t exit_code, term_signal;
  bool timed_out;
  bool fenced;         /* killed by the worker's lease (fencing), not by its job */
  bool worker_stopped; /* killed because its worker was stopped, not by its job */
  bool oom_killed;     /* its cgroup counted a kill at the memory limit (--mem) */
  char *reason;        /* "" when none */
  uint32_t master_port;
  /* A RUNNING report sent when the worker delivered the job's --signal
   * warning: that signal; 0 otherwise. */
  int32_t warned_signal;
  ty_task_usage usage;
  /* When the task ended, ms since the epoch on the worker's clock; 0 = not
   * ended (or a worker that does not say). */
  int64_t ended_ms;
} ty_task_report;

/* ---- task I/O: logs and interactive attach ------------------------------------- */

typedef struct ty_read_log {
  uint64_t job_id;
  uint32_t rank;
  uint64_t offset;
  bool follow; /* keep streaming until the task ends */
} ty_read_log;

typedef struct ty_attach_request {
  uint64_t job_id;
  uint32_t rank;
  bool owner;       /* rlaunch: its disappearance kills the task (unless detach) */
  bool replay;      /* first the task's recent output */
  uint32_t wait_ms; /* how long to wait for a task not started yet; 0 = not at all */
} ty_attach_request;

/* stdin, signals and window size for an attached task. */
typedef struct ty_attach_input {
  uint64_t job_id;
  uint32_t rank;
  const uint8_t *data;
  size_t len;
  bool eof, kill;
  int signal;          /* 0 = none */
  uint32_t rows, cols; /* 0 = unchanged */
} ty_attach_input;

/* Where one task's time went on its worker (rlaunch --timing), in
 * microseconds of the worker's clock. */
typedef struct ty_task_timing {
  uint64_t prepare_us;      /* launch handled -> stdio prepared (user, env, log, key) */
  uint64_t spawn_us;        /* stdio prepared -> process started (cgroup, fork, exec) */
  int64_t attach_us;        /* the attach arrived this long after the start (< 0: before) */
  uint64_t first_output_us; /* start -> first byte of output read; 0 = none */
  uint64_t exit_us;         /* start -> exit reaped */
} ty_task_timing;

/* One item of the Attach stream. */
typedef struct ty_attach_output {
  uint32_t rank, stream; /* 0 = the "attached" hello, 1 stdout, 2 stderr */
  const uint8_t *data;
  size_t len;
  bool replayed, exited, timed_out;
  int exit_code, term_signal;
  ty_task_timing timing; /* with exited */
} ty_attach_output;

/* Where each rank of a job runs (GetTaskLocations), with task tokens when
 * asked for. */
typedef struct ty_task_location {
  uint32_t rank;
  char *node, *io_addr;
  uint8_t *token; /* token_len bytes, 0 = none */
  size_t token_len;
  uint32_t run;     /* of the job, 1 = the first; 0 = not told */
  int64_t start_ms; /* when that run started */
} ty_task_location;
typedef struct ty_task_locations {
  int state;    /* ty_job_state */
  char *reason; /* why it is pending, or why it ended */
  /* Once it ended: the first rank that failed (-1 = none) and its exit code
   * or signal, which are the job's. */
  int32_t exit_code, term_signal, failed_rank;
  ty_task_location *tasks; /* the current (or last) run */
  size_t n;
  ty_task_location *earlier; /* the runs a requeue ended, by run then rank */
  size_t n_earlier;
} ty_task_locations;
void ty_task_locations_close(ty_task_locations *l); /* accepts a zeroed struct */

/* The line a worker writes into a rank's log when a run after the first
 * starts there (LaunchTaskRequest.restart_count > 0), so that the runs of
 * a job that ran on one node more than once can be told apart (trainctl
 * logs reads each run from its marker to the next):
 *   ==> run N (node NODE, started YYYY-MM-DDTHH:MM:SSZ) <==
 * N is restart_count + 1; the time is the worker's, in UTC. */
#define TY_LOG_RUN_MARK "==> run "
#define TY_LOG_RUN_MARK_END " <=="

/* The line a batch script's runner (trainctl's, cli/script.c) writes into
 * its rank's log before it exits 1 when it cannot open the script's
 * --output or --error file: TY_BATCH_ERROR "cannot open output file PATH:
 * WHY". The worker makes the rest of the line the rank's reason, so the
 * job's (show, ls, history) names the file, not only the exit code. */
#define TY_BATCH_ERROR "trainyard-batch: "

/* Where one launch spent its time on the controller (rlaunch --timing),
 * each stage in microseconds of the controller's clock; 0 until reached. */
typedef struct ty_launch_timing {
  uint64_t checks_us;       /* SubmitJob received -> its transaction queued */
  uint64_t commit_us;       /* queued -> committed */
  uint64_t queued_us;       /* committed -> the start of the pass that placed it */
  uint64_t pass_us;         /* that pass, to the placement */
  uint64_t start_commit_us; /* placed -> RUNNING committed */
  uint64_t launch_us;       /* RUNNING committed -> LaunchTask sent to every rank */
  uint64_t end_us;          /* the last rank's TaskUpdate received -> the end committed */
} ty_launch_timing;

/* One event of a job watch (WatchJob, SubmitJob with watch): the job as it
 * is now. */
typedef struct ty_job_watch_event {
  uint64_t job_id;
  ty_task_locations job; /* owned: ty_job_watch_event_close */
  ty_launch_timing timing;
} ty_job_watch_event;
void ty_job_watch_event_close(ty_job_watch_event *e); /* accepts a zeroed struct */

/* ---- training progress (graph jobs) ------------------------------------------------ */

typedef struct ty_train_progress {
  uint64_t step, total_steps;
  double loss, samples_per_s;
  int64_t time_ms; /* when the worker read it */
  uint64_t checkpoint_step;
  char *checkpoint_path;
  double test_accuracy; /* -1 = none yet */
  uint32_t epoch;
  uint64_t start_step; /* the step this run began at (its checkpoint's when it resumed) */
} ty_train_progress;

typedef struct ty_checkpoint_info {
  uint64_t step;
  int64_t time_ms;
  char *path;
} ty_checkpoint_info;

/* The checkpoints that exist (ReportProgress.existing), as the worker
 * listed them. */
typedef struct ty_checkpoint_list {
  bool listed;           /* listed at all: an empty list then means none exists */
  ty_checkpoint_info *v; /* n entries, oldest first */
  size_t n;
} ty_checkpoint_list;
void ty_checkpoint_list_close(ty_checkpoint_list *l); /* accepts a zeroed struct */

/* Checkpoint files: the names trainrun (ops/train) writes, the worker lists
 * and the controller reports. For the checkpoint path P of a run, the
 * checkpoint of step S is the ONNX model B.step-S.onnx and its training
 * state B.step-S.onnx.state, where B is P less a final ".onnx" and S is
 * zero-padded to 6 digits ("mlp.step-000120.onnx"); P and P.state are hard
 * links to the newest. Only the newest `keep` (TrainConfig.keep_checkpoints,
 * default TY_CKPT_KEEP_DEFAULT) are kept. */
#define TY_CKPT_KEEP_DEFAULT 3
/* Writes step S's model path for P into out: 0, or TY_EINVAL when it does
 * not fit in n bytes. */
int ty_ckpt_step_path(const char *path, uint64_t step, char *out, size_t n);
/* Whether `name` (a file name, without its directory) is the model of a
 * step checkpoint of P: true with *out_step set. */
bool ty_ckpt_step_of(const char *path, const char *name, uint64_t *out_step);
/* Writes the lock of P's checkpoints into out: B.lock, so that the paths
 * "m" and "m.onnx", which share their step files, share their lock too.
 * 0, or TY_EINVAL when it does not fit in n bytes. */
int ty_ckpt_lock_path(const char *path, char *out, size_t n);

/* ---- answers ------------------------------------------------------------------------ */

/* One id of a CancelJob. */
typedef struct ty_cancel_result {
  uint64_t job_id;
  bool has_task; /* the request named element `task` of array job_id */
  uint32_t task;
  uint32_t cancelled; /* jobs cancelled (an array's elements) */
  int status;         /* 0 or the TY_E* code */
  char message[TY_ERR_LEN];
} ty_cancel_result;

/* ---- queues --------------------------------------------------------------------------- */

#define TY_QUEUE_STATE_MAP(X)                                                                      \
  X(OPEN, 1)                                                                                       \
  X(CLOSED, 2)  /* refuses new jobs */                                                             \
  X(PAUSED, 3)  /* accepts jobs, starts none */                                                    \
  X(DELETED, 4) /* inside traind only: kept for the record, hidden */

typedef enum ty_queue_state {
#define TY_QUEUE_STATE_ENUM_(name, num) TY_QUEUE_##name = num,
  TY_QUEUE_STATE_MAP(TY_QUEUE_STATE_ENUM_)
#undef TY_QUEUE_STATE_ENUM_
} ty_queue_state;
const char *ty_queue_state_name(int state); /* "OPEN", ...; "UNKNOWN" */
/* "OPEN" (any case) -> TY_QUEUE_OPEN; also the store's old "UP". 0 when
 * unknown. */
int ty_queue_state_parse(const char *s);

/* An access list: at most TY_QUEUE_ALLOW_NAMES user or group names of at
 * most TY_QUEUE_ALLOW_NAME_LEN bytes each, comma-separated. */
#define TY_QUEUE_ALLOW_NAMES 32
#define TY_QUEUE_ALLOW_NAME_LEN 32
#define TY_QUEUE_ALLOW_LEN (TY_QUEUE_ALLOW_NAMES * (TY_QUEUE_ALLOW_NAME_LEN + 1))

/* A queue and its settings (trainyard.QueueInfo). `name` is owned. */
typedef struct ty_queue_info {
  char *name;
  ty_queue_state state;
  int32_t tier; /* higher tiers start first and may preempt lower ones */
  double share; /* fair-share weight */
  uint32_t max_running, max_gpus, max_gpus_per_user; /* 0 = no limit */
  bool preemptible;
  uint32_t default_time_s, max_time_s; /* 0 = none */
  /* Memory per node, bytes (0 = none): a job asking none gets default_mem;
   * none may ask more than max_mem (Slurm's DefMemPerNode, MaxMemPerNode). */
  uint64_t default_mem, max_mem;
  /* Who may put jobs in it (Slurm's AllowGroups, and AllowAccounts of
   * users): comma-separated names, "" = everyone. Operators always may. */
  char allow_groups[TY_QUEUE_ALLOW_LEN], allow_users[TY_QUEUE_ALLOW_LEN];
  /* Inside traind only: allow_groups' gids on its host, as last resolved. */
  uint32_t allow_gids[TY_QUEUE_ALLOW_NAMES], n_allow_gids;
  uint32_t pending, running, gpus_used; /* live counts (ListQueues) */
} ty_queue_info;
void ty_queue_info_close(ty_queue_info *q); /* accepts a zeroed struct */

#define TY_QUEUE_MAX_NAME 64
/* The rules of queues, shared by trainctl (which refuses a bad value before
 * sending it) and traind (which applies it). Messages start with `what`
 * (the key when NULL): `tier: "x" is not a whole number ...`, `bogus:
 * unknown setting (...)`; trainctl passes its option's name. default_time
 * and max_time read as ty_parse_time_limit (a bare number is minutes;
 * UNLIMITED or 0 is 0: no limit). allow_groups and allow_users take a
 * comma-separated list of user or group names (letters, digits, '.', '_',
 * '-', not starting with '-', an optional final '$'), each once; "" or ALL
 * is everyone and is stored as "". Whether the names exist is traind's
 * check (on its host). */
int ty_queue_set(ty_queue_info *q, const char *key, const char *value, const char *what, char *err,
                 size_t err_len);
/* Whether `name` is one of the access list's (allow_groups, allow_users). */
bool ty_queue_allow_has(const char *list, const char *name);
/* The n-th name of an access list into buf (NUL-terminated); false past
 * its last. */
bool ty_queue_allow_name(const char *list, size_t n, char *buf, size_t buf_len);
/* Applies "key=value" settings in order, then checks that default_time does
 * not exceed max_time, nor default_mem max_mem. */
int ty_queue_apply(ty_queue_info *q, char *const *settings, size_t n, char *err, size_t err_len);
/* 1..64 bytes of letters, digits, '-', '_' and '.'. */
int ty_queue_check_name(const char *name, char *err, size_t err_len);
/* A new queue's name (`queue create`): as above, and not starting with
 * '-' (it would read as an option: `queue delete -x`) or '.' ("." and
 * ".."). Queues created before keep their names: the rule is at create. */
int ty_queue_check_new_name(const char *name, char *err, size_t err_len);

/* ---- model checks (traind <-> trainyard-graphcheck) ---------------------------------------
 * traind checks each graph job in a child process (daemon/graphcheck;
 * proto/trainyard.proto's GraphCheckRequest and GraphCheckResponse carry
 * these; proto/convert.h packs them). */

/* The devices a plan is made for and the cost model's rates (ops/plan's
 * ty_plan_cluster, as the controller sends it). */
typedef struct ty_check_cluster {
  uint32_t nodes, devices_per_node;
  double device_flops; /* 0: measure this CPU's GEMM with `threads` threads */
  uint64_t device_mem_bytes;
  double intra_bw, inter_bw;               /* bytes/s */
  double intra_latency_s, inter_latency_s; /* per ring step */
  double launch_s;                         /* per collective */
  uint32_t threads;                        /* one rank's CPU threads */
  /* With device_mem_bytes 0: the job's memory per rank (0: none, plan for
   * 16 GiB) and the part of it a trainrun rank uses before its model. */
  uint64_t rank_mem_bytes, rank_reserve_bytes;
} ty_check_cluster;

typedef struct ty_graph_check {
  ty_job_spec job; /* a graph job, validated by the controller */
  bool want_plan;  /* false: check the model and config only (parallelism data) */
  int mode;        /* ty_parallelism */
  ty_check_cluster cluster;
} ty_graph_check;
void ty_graph_check_close(ty_graph_check *c); /* accepts a zeroed struct */

/* One answer of the child: the check's outcome (status 0, or a TY_E* code
 * with a message naming the job field), the plan's cache key and the rate
 * it was planned with; then, when asked, the plan file. */
typedef struct ty_graph_check_answer {
  uint32_t stage; /* 1: the check, 2: the plan */
  int status;
  char *message;
  uint64_t cache_key;
  double device_flops;
  uint8_t *plan; /* plan_len bytes; 0 = none */
  size_t plan_len;
  bool wants_plan; /* the request wanted none, but the job runs one (parallelism data with
                      pipeline stages): traind answers 'C' or 'P' as when it asked */
} ty_graph_check_answer;
void ty_graph_check_answer_close(ty_graph_check_answer *a); /* accepts a zeroed struct */

/* ---- packing and copying ----------------------------------------------------------------
 * The one pack/unpack pair of every convert file. */

/* Appends m's encoding to out; TY_ENOMEM when out cannot grow. */
int ty_wire_pack(const ProtobufCMessage *m, ty_buf *out);
/* Decodes p as a message of type d: the message (free with ty_wire_free),
 * or NULL when the bytes are not one (protobuf-c reports running out of
 * memory the same way). */
void *ty_wire_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n);
void ty_wire_free(void *m); /* accepts NULL */

/* An arena for decoding a large answer in one go: every allocation of the
 * unpack comes from a few large blocks, and closing the arena frees them
 * all, so a listing of 1,000 jobs costs no malloc and no free per string
 * or submessage. A message unpacked in an arena is never given to
 * ty_wire_free; it lives until ty_wire_arena_close. Zero-initialise. */
typedef struct ty_wire_arena {
  struct ty_wire_block *blocks; /* owned: the newest first */
} ty_wire_arena;
void *ty_wire_unpack_in(ty_wire_arena *a, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                        size_t n);
void ty_wire_arena_close(ty_wire_arena *a); /* accepts a zeroed one */

/* ---- limits on what a request may hold ---------------------------------------------------
 * protobuf-c's unpack sizes arrays from the input: a 64 MiB frame of packed
 * varints or empty submessages would cost gigabytes before any convert file
 * could look at a count. ty_wire_check walks the encoded bytes first, with
 * no allocation proportional to the input, and refuses a message in which
 * one instance of a repeated field holds more elements than its cap, a
 * message instance carries more than TY_WIRE_MAX_UNKNOWN unknown fields (kept
 * by protobuf-c, so they cost memory too), or submessages nest deeper than
 * TY_WIRE_MAX_DEPTH. Caps name fields by their full proto name
 * ("trainyard.CancelJobRequest.job_ids"); fields without one get
 * `default_max`. The error names the field by its path in the request:
 * "job.command.argv: 5000 entries, at most 4096". Malformed bytes are left
 * to protobuf-c (0 here), which refuses them on unpack. */
typedef struct ty_wire_cap {
  const char *field;
  uint32_t max;
} ty_wire_cap;

#define TY_WIRE_MAX_UNKNOWN 64
#define TY_WIRE_MAX_DEPTH 16

int ty_wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                  const ty_wire_cap *caps, size_t n_caps, uint32_t default_max, char *err,
                  size_t err_len);
/* The same, and every string field's bytes with no NUL byte (protobuf-c
 * would cut the string there) and valid UTF-8, but for the n_raw fields
 * named in raw by their full proto name ("trainyard.CommandSpec.argv":
 * argv, environment, paths, which Linux lets hold any bytes but NUL):
 * "checkpoint_path: holds a NUL byte (at byte 2)", "name: not valid UTF-8
 * (at byte 0)". */
int ty_wire_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                          const ty_wire_cap *caps, size_t n_caps, uint32_t default_max,
                          const char *const *raw, size_t n_raw, char *err, size_t err_len);

/* protobuf-c wants `char *` and "" for absent strings; the message only
 * borrows them. */
static inline char *ty_wire_str(const char *s) {
  return (char *)(s ? s : "");
}
/* Copies for decoders. NULL becomes ""; returns NULL only when out of memory. */
char *ty_wire_strdup(const char *s);
/* n strings (NULL entries become ""): 0, or TY_ENOMEM with nothing to free. */
int ty_wire_strv(char *const *v, size_t n, char ***out);
void ty_wire_strv_free(char **v, size_t n); /* accepts NULL */
/* n bytes (a 1-byte buffer for n = 0, so the result is never NULL on
 * success): 0 or TY_ENOMEM. */
int ty_wire_bytes(const void *p, size_t n, uint8_t **out);
/* calloc of count elements, overflow checked; NULL when out of memory. A
 * count of 0 allocates one element, so NULL always means failure. */
void *ty_wire_calloc(size_t count, size_t size);

#endif
