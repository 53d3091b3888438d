/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker/: the testable core of trainworkerd, the per-node daemon.
 *
 *   - inventory: what the node has (CPUs, memory, GPUs, topology summary),
 *     detected with hwloc and, when built with CUDA, the CUDA runtime.
 *   - tasks: the processes the controller asked this node to run. Each task
 *     runs in its own session / process group, writes stdout+stderr straight
 *     into DIR/jobs/JOBID/rank<R>.log (the worker never copies those bytes),
 *     and is killed as a group (SIGTERM, SIGKILL after a grace period). An
 *     ended task keeps its result until the controller acknowledged it.
 *   - session: the connection to the controller (RegisterNode, Heartbeat,
 *     TaskUpdate out; LaunchTask, KillTask in), reconnecting forever.
 *   - io: the task I/O server (ReadLog) on its own port.
 *
 * Everything runs on one libuv loop thread; nothing here locks. The contract
 * of the behaviour is docs/cluster-protocol.md.
 */
#ifndef TY_WORKER_WORKER_H
#define TY_WORKER_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/auth/auth.h"
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "lib/wire/wire.h"

/* ---- inventory ------------------------------------------------------------ */

typedef struct ty_worker_gpu {
  uint32_t index; /* CUDA device ordinal, as in CUDA_VISIBLE_DEVICES */
  char name[256];
  uint64_t memory;     /* bytes */
  char uuid[48];       /* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
  char pci_bus_id[32]; /* "0000:3b:00.0" */
  int numa_node;       /* -1 when unknown */
  int nvlink_island;   /* 1.. : GPUs with equal ids share NVLink; -1 unknown */
} ty_worker_gpu;

/* Caller-owned; ty_worker_inventory_close() frees `gpus`. */
typedef struct ty_worker_inventory {
  char hostname[256];
  uint32_t cpus; /* logical CPUs (hwloc PUs) */
  uint32_t cores;
  uint64_t memory; /* bytes */
  uint32_t n_gpus;
  ty_worker_gpu *gpus; /* n_gpus entries, owned */
  char topology[256];  /* "1 package, 1 NUMA node, 2 cores, 2 PUs" */
} ty_worker_inventory;

/* Detects the node. A build without CUDA, or a machine without a CUDA device
 * or driver, has zero GPUs: that is not an error. Errors: TY_EIO when hwloc
 * cannot load the topology (memory then comes from sysinfo). */
int ty_worker_inventory_detect(ty_worker_inventory *out);
void ty_worker_inventory_close(ty_worker_inventory *inv);
/* Applies --gpus N: keeps the first N detected GPUs and, when N exceeds what
 * was detected, adds placeholder entries (name "override") so the scheduler
 * can be exercised on GPU-less machines. */
void ty_worker_inventory_set_gpus(ty_worker_inventory *inv, uint32_t n);

/* NVLink islands from a peer matrix: `link` is n*n, row-major, nonzero where
 * GPU i has a fast (NVLink-class) peer link to GPU j. A pair is linked only
 * when both directions are; islands are the connected components. Writes
 * out_island[i] = 1..k, numbered in order of each island's lowest GPU (a GPU
 * without links is an island of its own) and returns k. Pure. */
uint32_t ty_worker_nvlink_islands(const uint8_t *link, uint32_t n, int *out_island);

/* One line of /proc/PID/stat: its session id, CPU ticks (utime + stime +
 * cutime + cstime) and resident pages. The command (field 2) may hold spaces
 * and parentheses: the fields after it are found from its last ')'. Pure;
 * TY_EPROTO for a line that does not parse. */
int ty_worker_parse_proc_stat(const char *line, int *out_session, uint64_t *out_ticks,
                              uint64_t *out_rss_pages);

/* ---- tasks ---------------------------------------------------------------- */

/* A rank to run is a ty_task_spec and its state a ty_task_report (the wire
 * model, lib/wire/wire.h): every pointer in a spec is borrowed for the
 * duration of the call, ty_tasks_launch() copies what it keeps; a report's
 * `reason` is borrowed from the task record, valid until the record is
 * acknowledged. */
#define TY_TASK_DEFAULT_GRACE_S 10u

/* PATH of a task whose job carries none (Debian's login default, less the
 * games). */
#define TY_TASK_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

struct passwd;
/* Builds a task's environment, exactly (README, "Task environment"; nothing
 * else of the worker's own): `site` (the operator's --mpi-if-include and --task-env entries,
 * "NAME=value", NULL-terminated; may be NULL), then spec->env less what
 * ty_task_env_inherited drops, then
 * PATH=TY_TASK_DEFAULT_PATH when neither has a PATH, then -- when `pw` is
 * given, the user the task runs as -- HOME, USER, LOGNAME and SHELL from
 * that passwd entry, then RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
 * MASTER_ADDR, MASTER_PORT, TRAINYARD_JOB_ID, TRAINYARD_NODE and
 * CUDA_VISIBLE_DEVICES. A later entry replaces an earlier one of the same
 * name, so each name appears once. `site` and `pw` are borrowed for the
 * call; `pw` is NULL while tasks run as the worker's user. On success
 * *out_env is a NULL-terminated array the caller frees with
 * ty_task_env_free(). TY_EINVAL names a spec->env entry without '=' in
 * `err`. */
int ty_task_build_env(const ty_task_spec *spec, const char *node, char *const *site,
                      const struct passwd *pw, char *err, size_t err_len, char ***out_env);
/* Sets NAME=value in *env (ty_task_build_env's), replacing an entry of that
 * name, so it still appears once; *env may move. 0 or TY_ENOMEM (*env as
 * it was). */
int ty_task_env_set(char ***env, const char *name, const char *value);
/* Whether the job's environment entry "NAME=value" is one ty_task_build_env
 * drops: a job variable it sets itself (SLURM_JOB_ID, SLURM_MEM_PER_NODE,
 * TRAINYARD_NODELIST, ...), or a TMPDIR naming another task's private
 * directory (.../trainyard-job-JOB.RANK) -- what a job submitted from
 * inside another job inherits from it. */
bool ty_task_env_inherited(const char *entry);
/* Whether the operator's --task-env (site) or the job's own environment
 * names NAME (not in an entry ty_task_env_inherited drops): what
 * ty_task_build_env then keeps. */
bool ty_task_env_given(const ty_task_spec *spec, char *const *site, const char *name);
void ty_task_env_free(char **env);
/* Checks trainworkerd's --mpi-if-include LIST, which graph ranks get as Open
 * MPI's btl_tcp_if_include and oob_tcp_if_include: comma-separated items,
 * each the name of an interface this host has or an IPv4 network
 * "a.b.c.d/n". 0, or TY_EINVAL with what is wrong and the item in err. */
int ty_task_mpi_if_check(const char *list, char *err, size_t err_len);

typedef struct ty_tasks ty_tasks;
typedef struct ty_cgroups ty_cgroups; /* cgroup.c, below */
/* Called once when a task ends (exit or signal), and when the worker sent
 * a running task its --signal warning (state RUNNING, warned_signal set):
 * both go to the controller as TaskUpdate. The report stays valid during
 * the call. */
typedef void (*ty_tasks_end_cb)(ty_tasks *t, const ty_task_report *r, void *ud);

/* `state_dir` and `node` are copied. Logs go to state_dir/jobs/JOB/rank<R>.log. */
int ty_tasks_create(uv_loop_t *loop, const char *state_dir, const char *node,
                    ty_tasks_end_cb on_end, void *ud, ty_tasks **out_tasks);
/* How tasks start (docs/security.md): through the trainyard-exec helper at
 * `helper` (copied; required before the first launch), as their submitter
 * when the worker is root, each in its own cgroup under `cgroups` (owned by
 * the registry from now on; NULL = process groups only). */
void ty_tasks_set_isolation(ty_tasks *t, const char *helper, ty_cgroups *cgroups);
/* Forks the fence (fence.c), which kills every task once the worker is
 * gone, however it went; call after ty_tasks_set_isolation and before any
 * thread starts. Its pid, or -1 where it could not be forked. */
int ty_tasks_start_fence(ty_tasks *t);
/* Before the first registration of a restarted worker: every task a
 * previous run left in the cgroups is killed with its whole cgroup, so the
 * node's CPUs are free and nothing runs twice when the controller, not
 * hearing of those tasks, requeues their jobs. Returns how many. */
size_t ty_tasks_reap_previous(ty_tasks *t);
/* The job's task-token key, kept in its job directory (0600) from the
 * launch on, for checking tokens of ReadLog after the task is gone:
 * 0, or TY_ENOTFOUND. */
int ty_tasks_job_key(const ty_tasks *t, uint64_t job_id, uint8_t *out_key, size_t key_len);
/* Task logs (logs.c): each log is cut to its head and tail when it grows
 * past max_bytes (0 = no cap), and a job's directory is removed
 * retention_s after its last task here ended (0 = kept). */
#define TY_LOG_MAX_DEFAULT (64ull << 20)
#define TY_LOG_MAX_MIN (16ull << 10)
#define TY_LOG_RETENTION_DEFAULT (7u * 86400u)
void ty_tasks_set_log_limits(ty_tasks *t, uint64_t max_bytes, uint32_t retention_s);
/* The daemon's once-a-second duty: cuts the logs of running tasks that
 * are over the cap; once a minute also removes expired job directories. */
void ty_tasks_check_logs(ty_tasks *t);
/* Disk bytes under state_dir/jobs (logs and graph ranks' files). */
uint64_t ty_tasks_log_disk_bytes(ty_tasks *t);
/* ReadLog: the cut generation of a log, and following its cuts (see
 * ty__logs_follow). */
uint32_t ty_tasks_log_gen(const ty_tasks *t, uint64_t job_id, uint32_t rank);
void ty_tasks_log_follow(const ty_tasks *t, uint64_t job_id, uint32_t rank, uint32_t *gen,
                         uint64_t *offset);

/* The operator's --task-env entries ("NAME=value"), copied: every task
 * launched from now on starts with them (ty_task_build_env's `site`). */
void ty_tasks_set_site_env(ty_tasks *t, char *const *entries, size_t n);
/* trainworkerd --tmp-base DIR: an absolute path to a directory that is
 * sticky or root's, where each task gets its private TMPDIR (task_tmp.c).
 * check: 0, or an error in err saying what DIR is not. set: from now on
 * (the registry starts with /tmp). */
int ty_task_tmp_base_check(const char *dir, char *err, size_t err_len);
void ty_tasks_set_tmp_base(ty_tasks *t, const char *dir);
/* At the worker's start, before any task: queues the removal of the
 * private TMPDIRs that a previous run of this worker (same state
 * directory) recorded and never removed (it was killed). Returns how many. */
size_t ty_tasks_sweep_tmp(ty_tasks *t);
/* Stops watching tasks (running ones keep running: they are detached) and
 * frees the registry once its handles are closed; run the loop to finish.
 * Accepts NULL. */
void ty_tasks_destroy(ty_tasks *t);

/* Spawns one rank: the command has exec'd when this returns (milliseconds:
 * no helper for a plain task, see worker/direct.c), so its end is reported
 * only after. 0 once the process runs; otherwise an error and a message
 * for the controller in `err`: TY_EINVAL (empty argv, bad env entry),
 * TY_EEXIST (that job and rank already runs here), TY_ESTATE (shutting down),
 * TY_ENOTFOUND (cwd missing:
 * "cwd /x does not exist on node w1"), UV_ENOENT / UV_EACCES (argv[0] not
 * found or not executable), TY_EIO (log file). */
int ty_tasks_launch(ty_tasks *t, const ty_task_spec *spec, char *err, size_t err_len);
/* ty_tasks_launch, saying of a failure whether it is the node's
 * (*node_fault: its TMPDIR, job directory, log or cgroup could not be
 * made, a full disk, no descriptors or memory) or the job's (false: its
 * argv, cwd, user or env), which LaunchTaskResponse.node_fault carries. */
int ty_tasks_launch_classified(ty_tasks *t, const ty_task_spec *spec, bool *node_fault, char *err,
                               size_t err_len);
/* Kills every rank of `job_id` on this node. signal 0 = SIGTERM, then SIGKILL
 * after grace_s (0 = the grace given at launch); another signal is delivered
 * as is, once. An unknown job is fine (returns 0). */
int ty_tasks_kill(ty_tasks *t, uint64_t job_id, int signal, uint32_t grace_s);
/* scancel -b: signal (1-64) to the batch script's own process of every
 * running rank of `job_id` here, not to what it runs (a task that runs no
 * batch script: its first process; a graph rank: its trainrun, as
 * always). TY_EINVAL for another signal; an unknown job is fine. */
int ty_tasks_signal_batch(ty_tasks *t, uint64_t job_id, int signal);
/* A running job's new time limit (0 = none), counted from each rank's
 * start: every running rank of `job_id` here re-arms its limit timer (one
 * already past ends it now, as TIMEOUT) and its warning signal, unless that
 * was sent. An unknown job is fine (returns 0). */
int ty_tasks_set_limit(ty_tasks *t, uint64_t job_id, uint32_t time_limit_s);
/* SIGTERM to every running task, SIGKILL after each one's grace; from then
 * on launches are refused with TY_ESTATE (the worker is shutting down). */
void ty_tasks_kill_all(ty_tasks *t);
/* SIGKILL to every running task now. */
void ty_tasks_kill_all_now(ty_tasks *t);
/* Fencing (the controller's lease expired): SIGKILL, without grace, to
 * every running task not fenced yet, each one's report carrying `reason`
 * (copied). Returns how many were killed; counted in stats.fenced. */
uint32_t ty_tasks_fence(ty_tasks *t, const char *reason);

/* Calls `cb` for every running task and every ended task whose report was
 * not yet acknowledged, in launch order. */
void ty_tasks_foreach(ty_tasks *t, void (*cb)(const ty_task_report *r, void *ud), void *ud);
/* The controller acknowledged an ended task's report: forget it. Unknown or
 * still running tasks are ignored. */
/* Calls cb for every running task with its process id (the leader of the
 * task's session), the bit set of its GPU indices and whether it runs in
 * its own cgroup (of ty_tasks_cgroups). */
typedef void (*ty_tasks_running_cb)(uint64_t job_id, uint32_t rank, int pid, uint64_t gpus,
                                    bool in_cgroup, void *ud);
void ty_tasks_foreach_running(const ty_tasks *t, ty_tasks_running_cb cb, void *ud);
/* The cgroups the tasks run in (ty_tasks_set_isolation), or NULL. */
ty_cgroups *ty_tasks_cgroups(const ty_tasks *t);
/* Forgets the ended record of job_id's rank that ended at ended_ms (its
 * report's; 0: whichever ended record the rank has): the controller
 * stored that end. A later task of the same rank, relaunched meanwhile,
 * keeps its own. */
void ty_tasks_ack(ty_tasks *t, uint64_t job_id, uint32_t rank, int64_t ended_ms);
/* Fills the current report of one task; TY_ENOTFOUND when unknown. */
int ty_tasks_get(const ty_tasks *t, uint64_t job_id, uint32_t rank, ty_task_report *out);

/* Running counts and the resources they hold. */
uint32_t ty_tasks_running(const ty_tasks *t);
uint32_t ty_tasks_cpus_used(const ty_tasks *t);
uint32_t ty_tasks_gpus_used(const ty_tasks *t);
/* Whether job/rank runs now (log followers stop once it does not). */
bool ty_tasks_is_running(const ty_tasks *t, uint64_t job_id, uint32_t rank);
/* Writes the log path of job/rank into out (whether or not the file exists). */
int ty_tasks_log_path(const ty_tasks *t, uint64_t job_id, uint32_t rank, char *out, size_t n);
/* The end reason of a task that ended non-zero whose log's filesystem
 * (its job directory `dir`, as statvfs(3) described it in *st) is full:
 * less than 1 MiB or 1% of it free (f_bavail), or no inode free. Then
 * `reason` (NULL or "" for none) with "its log's filesystem (DIR) is full"
 * after "; " goes into out and it returns true: the task's own error
 * lines may be lost, and an exit code alone would not say why. */
struct statvfs;
bool ty_log_fs_full_reason(const struct statvfs *st, const char *dir, const char *reason, char *out,
                           size_t len);
const char *ty_tasks_node(const ty_tasks *t);

/* Lifetime counts, for /metrics. */
typedef struct ty_tasks_stats {
  uint64_t started;          /* processes spawned */
  uint64_t launch_failures;  /* LaunchTask refused (cwd, argv[0], ...) */
  uint64_t exit_success;     /* exited with code 0 */
  uint64_t exit_failure;     /* exited with another code */
  uint64_t exit_signaled;    /* killed by a signal, time limit excluded */
  uint64_t exit_timed_out;   /* killed by the time limit */
  uint64_t log_bytes_cut;    /* output bytes cut from logs over the cap */
  uint64_t log_dirs_removed; /* job directories removed after the retention */
  uint64_t fenced;           /* killed by ty_tasks_fence (lease expired) */
} ty_tasks_stats;
void ty_tasks_get_stats(const ty_tasks *t, ty_tasks_stats *out);

/* ---- cgroups (cgroup.c) --------------------------------------------------
 * A cgroup per task under the worker's own subtree (v2 where the unified
 * hierarchy carries the memory controller, else v1): limits, killing the
 * whole task, accounting, and finding a previous run's tasks. */

/* What a task may use: its job's memory on this node (all its ranks here
 * together, 0 = no limit), its CPUs (a quota), its GPUs among the node's
 * node_gpus (the others are denied where the hierarchy can). */
typedef struct ty_cgroup_limits {
  uint64_t mem_bytes;
  uint32_t cpus;
  const uint32_t *gpus;
  size_t n_gpus;
  uint32_t node_gpus;
} ty_cgroup_limits;

/* Finds a usable hierarchy and creates the subtree `name` under the
 * worker's own cgroup (or under `root`, a path inside each hierarchy, when
 * not NULL). pids_max: each job's processes and threads on this node at
 * most (pids.max at its job level; v1 then uses the pids hierarchy even
 * beside a freezer), 0 = no limit. NULL with the reason in `why` when
 * there is none. */
ty_cgroups *ty_cgroup_open(const char *root, const char *name, uint64_t pids_max, char *why,
                           size_t len);
/* A /proc/self/mountinfo line of a cgroup2 mount: its mount point into
 * mount (n bytes) and whether its super options hold favordynmods (task
 * moves without an RCU grace period); false for any other line. */
bool ty_cgroup2_mountinfo(const char *line, char *mount, size_t n, bool *favor_dynmods);
/* Removes the subtree where it is empty (tasks still inside keep it, for
 * the next start to find); accepts NULL. */
void ty_cgroup_close(ty_cgroups *cg);
/* "cgroup v1 (memory, cpu, ...) under /sys/fs/cgroup/freezer/trainyard-n1". */
const char *ty_cgroup_describe(const ty_cgroups *cg);
/* Creates job<J>/rank<R> with its limits. *out_procs: the cgroup.procs files
 * a process joins by writing its pid (NULL-terminated; ty_cgroup_procs_free).
 * TY_EIO with the path in err. */
int ty_cgroup_task_create(ty_cgroups *cg, uint64_t job, uint32_t rank, const ty_cgroup_limits *lim,
                          char ***out_procs, char *err, size_t len);
void ty_cgroup_procs_free(char **procs);
/* Sends sig to every process of the task; TY_ENOTFOUND when none is left. */
int ty_cgroup_task_signal(ty_cgroups *cg, uint64_t job, uint32_t rank, int sig);
/* SIGKILL to every process, with no window for a fork to escape. */
int ty_cgroup_task_kill(ty_cgroups *cg, uint64_t job, uint32_t rank);
bool ty_cgroup_task_empty(ty_cgroups *cg, uint64_t job, uint32_t rank);
/* CPU time, peak memory and block I/O of the task so far. */
void ty_cgroup_task_usage(ty_cgroups *cg, uint64_t job, uint32_t rank, ty_task_usage *out);
/* The task's working set now, as cAdvisor and the kubelet count it: the
 * cgroup's usage (memory.current, v1 memory.usage_in_bytes) less its
 * inactive page cache, which the kernel reclaims first; 0 when unknown. */
uint64_t ty_cgroup_task_memory(ty_cgroups *cg, uint64_t job, uint32_t rank);
/* usage less the inactive_file line of memory.stat text (v1:
 * total_inactive_file, the hierarchy's), never below 0; usage when the
 * line is missing. */
uint64_t ty_cgroup_working_set(uint64_t usage, const char *memory_stat, bool v2);
/* How many of the task's processes the kernel killed at its memory limit
 * (oom_kill of memory.events, v1 memory.oom_control); 0 when unknown. */
uint64_t ty_cgroup_task_oom_kills(ty_cgroups *cg, uint64_t job, uint32_t rank);
/* How many forks (or thread creations) of the task's processes the kernel
 * refused at the job's process limit (pids.events "max" of the job's or the
 * rank's cgroup); 0 when there is no limit or it is unknown. */
uint64_t ty_cgroup_task_forks_refused(ty_cgroups *cg, uint64_t job, uint32_t rank);
/* The limit ty_cgroup_open was given (0 = none). */
uint64_t ty_cgroup_pids_max(const ty_cgroups *cg);
/* Removes the (empty) rank cgroup, and the job's once it has no ranks. */
int ty_cgroup_task_remove(ty_cgroups *cg, uint64_t job, uint32_t rank);
/* The directory of job<J>/rank<R> (rank UINT32_MAX: the job's) in the
 * hierarchy of `controller` ("" = the one listing the task's processes);
 * TY_ENOTFOUND when no hierarchy has that controller. */
int ty_cgroup_task_path(const ty_cgroups *cg, const char *controller, uint64_t job, uint32_t rank,
                        char *out, size_t len);
/* Calls cb for every rank cgroup in the subtree: tasks of a previous run. */
void ty_cgroup_scan(ty_cgroups *cg, void (*cb)(uint64_t job, uint32_t rank, void *ud), void *ud);

/* ---- controller session ----------------------------------------------------- */

typedef struct ty_worker_session ty_worker_session;

/* Borrowed: every pointer must outlive the session. */
typedef struct ty_worker_session_opts {
  const char *host; /* controller */
  int port;
  const char *name;    /* node name */
  const char *io_addr; /* "host:port" of the task I/O listener; NULL: below */
  int io_port;         /* with io_addr NULL: advertise this port at the local
                        * address of the connection to the controller */
  const ty_worker_inventory *inv;
  ty_tasks *tasks;
  const char *trainrun; /* graph jobs: the trainrun binary (NULL = from PATH) */
  /* Authentication (docs/security.md): every call to the controller is
   * signed with `auth` (NULL = none), and LaunchTask and KillTask are
   * accepted only with a credential of root or service_uid (or the cluster
   * key). `queue` runs both off the loop (NULL: the session makes its own). */
  ty_auth *auth;
  ty_auth_queue *queue;
  uint32_t service_uid;
  /* Fencing: SIGKILL every task after this long without an answer from
   * the controller (0 = never; TY_LEASE_AUTO = two thirds of the node
   * timeout the controller tells at registration). */
  uint32_t lease_ms;
} ty_worker_session_opts;
#define TY_LEASE_AUTO UINT32_MAX
/* trainworkerd --max-pids-per-job's default: a job's processes and threads
 * on one node. A graph job of one 1-CPU trainrun rank per node measured 13
 * on rank 0's node (trainrun's threads, ompi-server, orted) and 9 on the
 * other; OpenBLAS adds a thread per further CPU of a rank. So 8192 holds
 * every rank of a 256-CPU node many times over, and stops a fork bomb long
 * before the kernel's pid_max (4194304 at most). */
#define TY_PIDS_PER_JOB_DEFAULT 8192

/* Starts connecting at once and keeps reconnecting (250 ms doubling to 5 s)
 * for as long as the session lives. */
int ty_worker_session_create(uv_loop_t *loop, const ty_worker_session_opts *opts,
                             ty_worker_session **out_session);
/* Closes the connection and frees the session once its handles are closed
 * (run the loop to finish). Tasks are not touched. Accepts NULL. */
void ty_worker_session_destroy(ty_worker_session *s);
/* A task ended: report it (now when registered, else at the next
 * registration) until the controller acknowledges it. */
void ty_worker_session_task_ended(ty_worker_session *s, const ty_task_report *r);
bool ty_worker_session_registered(const ty_worker_session *s);
/* The worker is stopping (SIGTERM): a heartbeat now, and every one after
 * it, tells the controller to place nothing more on this node
 * (HeartbeatRequest.stopping). Call it before killing the tasks. */
void ty_worker_session_leaving(ty_worker_session *s);
/* Ended tasks whose report the controller has not acknowledged yet. */
uint32_t ty_worker_session_unacked(const ty_worker_session *s);

/* ---- request decoding (convert.c) ------------------------------------------------
 * Pure: checks a payload against the caps on repeated fields and runs the
 * decoder the worker's handler of `method` uses, then frees the result. The
 * fuzzer's entry point (tests/fuzz/fuzz_worker.c). 0, or the error the
 * peer would get (the message in err). ty_worker_method(i) names the i-th
 * method the worker serves (NULL past the last). */
int ty_worker_decode_request(const char *method, const uint8_t *p, size_t n, char *err,
                             size_t err_len);
const char *ty_worker_method(size_t i);

/* ---- task I/O server ---------------------------------------------------------- */

typedef struct ty_worker_io ty_worker_io;
/* Serves ReadLog on host:port (0 = ephemeral) from the logs of `tasks`.
 * `limits` (copied; NULL = defaults) caps its connections (lib/rpc). */
int ty_worker_io_create(uv_loop_t *loop, const char *host, int port, ty_tasks *tasks,
                        const ty_rpc_limits *limits, ty_worker_io **out_io);
int ty_worker_io_port(const ty_worker_io *io);
/* Ends every stream, closes the listener; frees after the loop ran. NULL ok. */
void ty_worker_io_destroy(ty_worker_io *io);

/* trainrun's fatal error in a rank's log text: the first line starting
 * "trainrun: " (what trainrun prints before it exits non-zero; a second
 * such line only adds detail) after the text's last run marker
 * (TY_LOG_RUN_MARK: the log holds every run of the rank on this node, and
 * an earlier run's error is not this one's), without that prefix, into
 * out (cut to out_len - 1), each control byte as '?'. TY_ENOTFOUND when
 * there is none. Pure, for tests. */
int ty_worker_trainrun_error(const char *text, size_t len, char *out, size_t out_len);
/* The same for lines starting prefix (a batch runner's TY_BATCH_ERROR). */
int ty_worker_log_error(const char *prefix, const char *text, size_t len, char *out,
                        size_t out_len);

/* A graph rank's log tail parsed into p (the fields it finds: the last
 * "step S/T loss ...", "stopped at step S of T", accuracies). Pure, for
 * tests. */
void ty_worker_progress_parse(const char *text, size_t len, ty_train_progress *p);

#endif
