/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task supervision: spawning ranks, killing them as process groups, time
 * limits, and keeping each ended task's result until the controller has
 * acknowledged it.
 *
 * Invariants:
 *   - A running task is its own session leader (UV_PROCESS_DETACHED), so its
 *     pid is also its process group id and every kill targets -pid: children
 *     the task forked die with it.
 *   - stdout and stderr of the task are the log file itself (UV_INHERIT_FD);
 *     the worker never copies output bytes, so a chatty task costs the worker
 *     nothing and output survives a worker restart. Interactive tasks
 *     (rlaunch) are the exception: their stdio are pipes or a pty held by an
 *     iotask (attach.c), which copies output to the log and to clients. A pty
 *     task starts through setsid(1) --ctty, since uv_spawn cannot make the
 *     terminal the session's controlling one (needed for ^C and job control).
 *   - A task record is freed only when its report was acknowledged (or the
 *     registry is destroyed) and its three libuv handles have closed.
 *
 * A node runs a handful of tasks, so the registry is a plain linked list.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker/worker_internal.h"

/* util-linux, Essential in Debian: starts a pty task as a session leader with
 * the terminal as its controlling tty. */
#define SETSID_PATH "/usr/bin/setsid"
#define SWEEP_MS 60000 /* how often expired job directories are looked for, at most */
#define ENDED_LOGS 64   /* logs of ended tasks still checked against the cap */
#define ENDED_CHECKS 3  /* ... at this many more checks */

typedef struct task {
  struct task *next;
  ty_tasks *owner;
  uv_process_t proc;
  uv_timer_t grace_timer; /* SIGTERM -> SIGKILL escalation */
  uv_timer_t limit_timer; /* time limit */
  uv_timer_t warn_timer;  /* warning signal before the time limit */
  int warn_signal;
  int open_handles;
  bool running;
  bool acked;
  uint64_t job_id;
  uint32_t rank, master_port, cpus, n_gpus, kill_grace_s;
  uint64_t gpu_mask; /* its GPU indices (below 64), for per-task metrics */
  int pid;
  ty_task_state state;
  int exit_code, term_signal;
  bool timed_out;
  char *reason;
  ty__iotask *io; /* interactive stdio, until the task ends */
} task;

struct ty_tasks {
  uv_loop_t *loop;
  char *state_dir;
  char *node;
  ty_tasks_end_cb on_end;
  void *ud;
  task *head;
  bool destroying;
  bool stopping; /* the worker is shutting down: no new tasks */
  ty_tasks_stats stats;
  ty__ioreg *ioreg; /* interactive tasks' stdio (attach.c) */
  char **site_env;  /* --task-env, NULL-terminated (or NULL) */
  ty__logs *logs;   /* caps and retention (logs.c) */
  int64_t last_sweep_ms;
  /* Logs of tasks that just ended, looked at a few more times: an
   * interactive task's last output reaches its log after the exit. */
  struct ended_log {
    uint64_t job_id;
    uint32_t rank, checks_left;
  } ended_logs[ENDED_LOGS];
  size_t n_ended_logs;
};

/* ---- records ---------------------------------------------------------------- */

static void free_site_env(ty_tasks *t) {
  for (size_t i = 0; t->site_env && t->site_env[i]; i++) free(t->site_env[i]);
  free(t->site_env);
  t->site_env = NULL;
}

void ty_tasks_set_site_env(ty_tasks *t, char *const *entries, size_t n) {
  free_site_env(t);
  t->site_env = ty_xcalloc(n + 1, sizeof *t->site_env);
  for (size_t i = 0; i < n; i++) t->site_env[i] = ty_strdup(entries[i]);
}

static void maybe_free_registry(ty_tasks *t) {
  if (t->destroying && !t->head) {
    free_site_env(t);
    ty__logs_destroy(t->logs);
    free(t->state_dir);
    free(t->node);
    free(t);
  }
}

static void unlink_task(ty_tasks *t, task *k) {
  for (task **p = &t->head; *p; p = &(*p)->next) {
    if (*p == k) {
      *p = k->next;
      return;
    }
  }
}

/* Frees k once nobody needs it: handles closed and report acknowledged. */
static void maybe_free_task(task *k) {
  ty_tasks *t = k->owner;
  if (k->open_handles > 0 || (!k->acked && !t->destroying)) return;
  unlink_task(t, k);
  free(k->reason);
  free(k);
  maybe_free_registry(t);
}

static void on_handle_closed(uv_handle_t *h) {
  task *k = h->data;
  k->open_handles--;
  maybe_free_task(k);
}

static void close_handles(task *k) {
  uv_handle_t *hs[] = {(uv_handle_t *)&k->proc, (uv_handle_t *)&k->grace_timer,
                       (uv_handle_t *)&k->limit_timer, (uv_handle_t *)&k->warn_timer};
  for (size_t i = 0; i < TY_ARRAY_LEN(hs); i++) {
    /* Records are calloc'ed: a handle never initialised is UV_UNKNOWN_HANDLE. */
    if (hs[i]->type != UV_UNKNOWN_HANDLE && !uv_is_closing(hs[i]))
      uv_close(hs[i], on_handle_closed);
  }
}

static task *find(const ty_tasks *t, uint64_t job_id, uint32_t rank) {
  for (task *k = t->head; k; k = k->next)
    if (k->job_id == job_id && k->rank == rank && !(k->acked && !k->running)) return k;
  return NULL;
}

static void fill_report(const task *k, ty_task_report *r) {
  r->job_id = k->job_id;
  r->rank = k->rank;
  r->state = k->state;
  r->exit_code = k->exit_code;
  r->term_signal = k->term_signal;
  r->timed_out = k->timed_out;
  r->reason = k->reason ? k->reason : "";
  r->master_port = k->master_port;
  r->warned_signal = 0;
}

/* ---- lifecycle ------------------------------------------------------------- */

int ty_tasks_create(uv_loop_t *loop, const char *state_dir, const char *node,
                    ty_tasks_end_cb on_end, void *ud, ty_tasks **out_tasks) {
  if (!loop || !state_dir || !node) return TY_EINVAL;
  ty_tasks *t = ty_xcalloc(1, sizeof *t);
  t->loop = loop;
  t->state_dir = ty_strdup(state_dir);
  t->node = ty_strdup(node);
  t->on_end = on_end;
  t->ud = ud;
  t->ioreg = ty__ioreg_create(loop, node);
  t->logs = ty__logs_create(state_dir);
  *out_tasks = t;
  return 0;
}

void ty_tasks_destroy(ty_tasks *t) {
  if (!t) return;
  t->destroying = true;
  ty__ioreg_destroy(t->ioreg);
  t->ioreg = NULL;
  if (!t->head) {
    maybe_free_registry(t);
    return;
  }
  /* The last task to go frees the registry (maybe_free_task). */
  task *k = t->head;
  while (k) {
    task *next = k->next;
    if (k->open_handles > 0) {
      close_handles(k);
    } else {
      maybe_free_task(k);
    }
    k = next;
  }
}

/* ---- signals ----------------------------------------------------------------- */

static void signal_group(task *k, int sig) {
  if (k->pid <= 0) return;
  /* Fall back to the leader alone if the group is already gone. */
  if (uv_kill(-k->pid, sig) != 0) (void)uv_kill(k->pid, sig);
}

static void on_grace_expired(uv_timer_t *h) {
  task *k = h->data;
  if (!k->running) return;
  ty_info("job %" PRIu64 " rank %" PRIu32 ": still running after grace, sending SIGKILL",
          k->job_id, k->rank);
  signal_group(k, SIGKILL);
}

/* SIGTERM now, SIGKILL after grace_s; an earlier escalation deadline stands. */
static void terminate(task *k, uint32_t grace_s) {
  if (!k->running) return;
  signal_group(k, SIGTERM);
  if (uv_is_active((uv_handle_t *)&k->grace_timer)) return;
  uv_timer_start(&k->grace_timer, on_grace_expired, (uint64_t)grace_s * 1000u, 0);
}

static void on_time_limit(uv_timer_t *h) {
  task *k = h->data;
  if (!k->running) return;
  ty_info("job %" PRIu64 " rank %" PRIu32 ": time limit reached, killing it", k->job_id, k->rank);
  k->timed_out = true;
  terminate(k, k->kill_grace_s);
}

int ty_tasks_kill(ty_tasks *t, uint64_t job_id, int signal, uint32_t grace_s) {
  if (signal < 0 || signal >= 65) return TY_EINVAL;
  for (task *k = t->head; k; k = k->next) {
    if (k->job_id != job_id || !k->running) continue;
    if (signal == 0) {
      terminate(k, grace_s ? grace_s : k->kill_grace_s);
    } else {
      signal_group(k, signal);
    }
  }
  return 0;
}

void ty_tasks_kill_all(ty_tasks *t) {
  t->stopping = true;
  for (task *k = t->head; k; k = k->next) terminate(k, k->kill_grace_s);
}

void ty_tasks_kill_all_now(ty_tasks *t) {
  for (task *k = t->head; k; k = k->next)
    if (k->running) signal_group(k, SIGKILL);
}

/* ---- exit ------------------------------------------------------------------- */

static void on_process_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
  task *k = p->data;
  ty_tasks *t = k->owner;
  k->running = false;
  if (term_signal != 0) {
    k->state = TY_TASK_SIGNALED;
    k->term_signal = term_signal;
  } else {
    k->state = TY_TASK_EXITED;
    k->exit_code = (int)exit_status;
  }
  if (k->io) ty__iotask_exited(k->io, k->exit_code, k->term_signal, k->timed_out);
  k->io = NULL;
  /* The job directory's mtime says when its last task here ended: the
   * retention of its logs counts from then (logs.c). */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/jobs/%" PRIu64, t->state_dir, k->job_id);
  (void)utimensat(AT_FDCWD, dir, NULL, 0);
  if (t->n_ended_logs < ENDED_LOGS)
    t->ended_logs[t->n_ended_logs++] = (struct ended_log){k->job_id, k->rank, ENDED_CHECKS};
  /* Whatever the task left behind in its group goes with it, so no stray
   * process keeps writing to the log or holding a GPU. */
  (void)uv_kill(-k->pid, SIGKILL);
  ty_info("job %" PRIu64 " rank %" PRIu32 " (pid %d) %s %d%s", k->job_id, k->rank, k->pid,
          term_signal ? "killed by signal" : "exited with code",
          term_signal ? term_signal : (int)exit_status, k->timed_out ? " (time limit)" : "");
  if (k->timed_out) {
    t->stats.exit_timed_out++;
  } else if (term_signal != 0) {
    t->stats.exit_signaled++;
  } else if (exit_status == 0) {
    t->stats.exit_success++;
  } else {
    t->stats.exit_failure++;
  }
  close_handles(k);
  ty_task_report r;
  fill_report(k, &r);
  if (t->on_end) t->on_end(t, &r, t->ud);
}

/* ---- launch ----------------------------------------------------------------- */

int ty_tasks_log_path(const ty_tasks *t, uint64_t job_id, uint32_t rank, char *out, size_t n) {
  int len = snprintf(out, n, "%s/jobs/%" PRIu64 "/rank%" PRIu32 ".log", t->state_dir, job_id, rank);
  return (len < 0 || (size_t)len >= n) ? TY_EINVAL : 0;
}

static int check_cwd(const ty_tasks *t, const char *cwd, char *err, size_t err_len) {
  struct stat st;
  if (!cwd || !cwd[0]) return 0;
  if (stat(cwd, &st) != 0)
    return ty_errf(err, err_len, TY_ENOTFOUND, "cwd %s does not exist on node %s", cwd, t->node);
  if (!S_ISDIR(st.st_mode))
    return ty_errf(err, err_len, TY_EINVAL, "cwd %s is not a directory on node %s", cwd, t->node);
  return 0;
}

static int check_spec(const ty_tasks *t, const ty_task_spec *spec, char *err, size_t err_len) {
  if (spec->argc == 0 || !spec->argv || !spec->argv[0] || !spec->argv[0][0])
    return ty_errf(err, err_len, TY_EINVAL, "command.argv: must not be empty");
  for (size_t i = 0; i < spec->argc; i++) {
    if (!spec->argv[i])
      return ty_errf(err, err_len, TY_EINVAL, "command.argv[%zu]: missing", i);
  }
  if (t->stopping)
    return ty_errf(err, err_len, TY_ESTATE, "node %s is shutting down", t->node);
  task *old = find(t, spec->job_id, spec->rank);
  if (old && old->running)
    return ty_errf(err, err_len, TY_EEXIST, "job %" PRIu64 " rank %" PRIu32 " already runs on node %s (pid %d)",
             spec->job_id, spec->rank, t->node, old->pid);
  return check_cwd(t, spec->cwd, err, err_len);
}

/* Opens (appending) the rank's log, creating its job directory. */
static int open_log(const ty_tasks *t, const ty_task_spec *spec, char *err, size_t err_len) {
  char path[4096];
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/jobs/%" PRIu64, t->state_dir, spec->job_id);
  if (ty_tasks_log_path(t, spec->job_id, spec->rank, path, sizeof path) != 0 ||
      ty_mkdir_p(dir) != 0) {
    return ty_errf(err, err_len, TY_EIO, "cannot create log directory %s on node %s", dir, t->node);
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return ty_errf(err, err_len, TY_EIO, "cannot open log %s on node %s: %s", path, t->node, strerror(errno));
  return fd;
}

static void describe_spawn_error(const ty_tasks *t, const char *argv0, int rc, char *err,
                                 size_t err_len) {
  if (rc == UV_ENOENT)
    ty_errf(err, err_len, rc, "argv[0] \"%s\" not found on node %s", argv0, t->node);
  else if (rc == UV_EACCES)
    ty_errf(err, err_len, rc, "argv[0] \"%s\" is not executable on node %s (permission denied)",
            argv0, t->node);
  else
    ty_errf(err, err_len, rc, "cannot start argv[0] \"%s\" on node %s: %s", argv0, t->node,
            ty_strerror(rc));
}

static task *new_task(ty_tasks *t, const ty_task_spec *spec) {
  task *k = ty_xcalloc(1, sizeof *k);
  k->owner = t;
  k->job_id = spec->job_id;
  k->rank = spec->rank;
  k->master_port = spec->master_port;
  k->cpus = spec->cpus;
  k->n_gpus = (uint32_t)spec->n_gpus;
  for (size_t g = 0; g < spec->n_gpus; g++)
    if (spec->gpu_indices && spec->gpu_indices[g] < 64) k->gpu_mask |= UINT64_C(1) << spec->gpu_indices[g];
  k->kill_grace_s = spec->kill_grace_s ? spec->kill_grace_s : TY_TASK_DEFAULT_GRACE_S;
  k->proc.data = k;
  k->grace_timer.data = k;
  k->limit_timer.data = k;
  k->warn_timer.data = k;
  k->warn_signal = (int)spec->warn_signal;
  return k;
}

/* Spawns the process of k with the given stdio. A pty task runs as
 * `setsid --ctty CMD...`: not detached by libuv, so setsid(2) succeeds
 * without a fork and the pid stays the process group's id. */
static int spawn(ty_tasks *t, task *k, const ty_task_spec *spec, char **env,
                 uv_stdio_container_t stdio[3]) {
  size_t pre = spec->interactive.pty ? 2 : 0;
  char **args = ty_wire_calloc(spec->argc + pre + 1, sizeof *args); /* argc is the job's */
  if (!args) return TY_ENOMEM;
  if (spec->interactive.pty) args[0] = SETSID_PATH, args[1] = "--ctty";
  for (size_t i = 0; i < spec->argc; i++) args[pre + i] = (char *)spec->argv[i];
  uv_process_options_t opts = {
      .exit_cb = on_process_exit,
      .file = args[0],
      .args = args,
      .env = env,
      .cwd = (spec->cwd && spec->cwd[0]) ? spec->cwd : NULL,
      .flags = spec->interactive.pty ? 0 : UV_PROCESS_DETACHED,
      .stdio_count = 3,
      .stdio = stdio,
  };
  int rc = uv_spawn(t->loop, &k->proc, &opts);
  free(args);
  return rc;
}

/* Whether argv0 would be found and executable with env's PATH: a pty task
 * runs through setsid(1), whose own failure would come too late for
 * LaunchTask's answer. 0, UV_ENOENT or UV_EACCES. */
static int check_exec(const char *argv0, char *const *env) {
  if (strchr(argv0, '/')) return access(argv0, X_OK) == 0 ? 0 : (errno == ENOENT ? UV_ENOENT : UV_EACCES);
  const char *path = TY_TASK_DEFAULT_PATH;
  for (size_t i = 0; env && env[i]; i++)
    if (strncmp(env[i], "PATH=", 5) == 0) path = env[i] + 5;
  int rc = UV_ENOENT;
  char full[4096];
  for (const char *p = path; *p || p == path;) {
    const char *colon = strchr(p, ':');
    size_t n = colon ? (size_t)(colon - p) : strlen(p);
    snprintf(full, sizeof full, "%.*s/%s", (int)n, n ? p : ".", argv0);
    if (access(full, X_OK) == 0) return 0;
    if (errno == EACCES) rc = UV_EACCES;
    if (!colon) break;
    p = colon + 1;
  }
  return rc;
}

static void hook_signal(void *ud, int sig) { signal_group(ud, sig); }

static void hook_kill(void *ud) {
  task *k = ud;
  terminate(k, k->kill_grace_s);
}

/* Spawns k: plain tasks write straight into the log; interactive ones get
 * pipes or a pty from an iotask. On error `err` says why. */
static int start_process(ty_tasks *t, task *k, const ty_task_spec *spec, char **env, int null_fd,
                         int log_fd, char *err, size_t err_len) {
  uv_stdio_container_t stdio[3] = {
      {.flags = UV_INHERIT_FD, .data.fd = null_fd},
      {.flags = UV_INHERIT_FD, .data.fd = log_fd},
      {.flags = UV_INHERIT_FD, .data.fd = log_fd},
  };
  ty__iotask *io = NULL;
  if (spec->interactive.on) {
    int rc = ty__iotask_create(t->ioreg, spec, null_fd, log_fd, stdio, err, err_len, &io);
    if (rc != 0) return rc;
  }
  int rc = spec->interactive.pty ? check_exec(spec->argv[0], env) : 0;
  if (rc == 0) rc = spawn(t, k, spec, env, stdio);
  ty__iotask_hooks hooks = {.signal = hook_signal, .kill = hook_kill, .ud = k};
  if (io) ty__iotask_spawned(io, rc, &hooks);
  k->io = rc == 0 ? io : NULL;
  if (rc != 0) describe_spawn_error(t, spec->argv[0], rc, err, err_len);
  return rc;
}

/* Leaves the reason of a failed start in the log, where users look first. */
static void log_failure(int log_fd, const char *err) {
  char line[1200];
  int n = snprintf(line, sizeof line, "trainworkerd: launch failed: %s\n", err);
  if (n > 0 && write(log_fd, line, (size_t)n) < 0) ty_debug("cannot note the failure in the log");
}

static void on_warn(uv_timer_t *h) {
  task *k = h->data;
  if (!k->running) return;
  ty_info("job %" PRIu64 " rank %" PRIu32 ": time limit near, sending signal %d", k->job_id,
          k->rank, k->warn_signal);
  signal_group(k, k->warn_signal);
  /* The controller records it in the job's history. */
  ty_task_report r;
  fill_report(k, &r);
  r.warned_signal = k->warn_signal;
  if (k->owner->on_end) k->owner->on_end(k->owner, &r, k->owner->ud);
}

static void start_timers(ty_tasks *t, task *k, uint32_t time_limit_s, uint32_t warn_before_s) {
  uv_timer_init(t->loop, &k->grace_timer);
  uv_timer_init(t->loop, &k->limit_timer);
  uv_timer_init(t->loop, &k->warn_timer);
  k->open_handles = 4;
  if (time_limit_s > 0)
    uv_timer_start(&k->limit_timer, on_time_limit, (uint64_t)time_limit_s * 1000u, 0);
  if (time_limit_s > 0 && k->warn_signal > 0) {
    uint64_t at = warn_before_s < time_limit_s ? (uint64_t)(time_limit_s - warn_before_s) : 0;
    uv_timer_start(&k->warn_timer, on_warn, at * 1000u, 0);
  }
}

/* Drops an ended, unacknowledged record of the same job and rank: the
 * controller launched the rank again, so it no longer waits for the old one. */
static void forget_old(ty_tasks *t, uint64_t job_id, uint32_t rank) {
  task *old = find(t, job_id, rank);
  if (old && !old->running) ty_tasks_ack(t, job_id, rank);
}

int ty_tasks_launch(ty_tasks *t, const ty_task_spec *spec, char *err, size_t err_len) {
  char **env = NULL;
  int null_fd = -1, log_fd = -1;
  int rc = check_spec(t, spec, err, err_len);
  if (rc == 0) rc = ty_task_build_env(spec, t->node, t->site_env, NULL, err, err_len, &env);
  if (rc != 0) goto fail;
  log_fd = open_log(t, spec, err, err_len);
  if (log_fd < 0) {
    rc = log_fd;
    goto fail;
  }
  null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    rc = ty_errf(err, err_len, TY_EIO, "cannot open /dev/null on node %s", t->node);
    goto fail;
  }
  forget_old(t, spec->job_id, spec->rank);
  task *k = new_task(t, spec);
  rc = start_process(t, k, spec, env, null_fd, log_fd, err, err_len);
  if (rc != 0) {
    log_failure(log_fd, err);
    /* libuv initialises the handle only once the child is forked, so a
     * failed spawn may leave nothing to close. */
    if (k->proc.type == UV_PROCESS) {
      k->acked = true; /* nobody waits for a report of a task that never ran */
      k->open_handles = 1;
      k->next = t->head;
      t->head = k;
      uv_close((uv_handle_t *)&k->proc, on_handle_closed);
    } else {
      free(k);
    }
    goto fail;
  }
  t->stats.started++;
  k->pid = k->proc.pid;
  k->running = true;
  k->state = TY_TASK_RUNNING;
  start_timers(t, k, spec->time_limit_s, spec->warn_before_s);
  /* Append at the tail so reports come out in launch order. */
  task **tail = &t->head;
  while (*tail) tail = &(*tail)->next;
  *tail = k;
  ty_info("job %" PRIu64 " rank %" PRIu32 ": started pid %d: %s", k->job_id, k->rank, k->pid,
          spec->argv[0]);
fail:
  if (rc != 0) t->stats.launch_failures++;
  if (null_fd >= 0) close(null_fd);
  if (log_fd >= 0) close(log_fd);
  ty_task_env_free(env);
  return rc;
}

/* ---- queries ------------------------------------------------------------------ */

void ty_tasks_foreach(ty_tasks *t, void (*cb)(const ty_task_report *r, void *ud), void *ud) {
  for (task *k = t->head; k; k = k->next) {
    if (k->acked) continue;
    ty_task_report r;
    fill_report(k, &r);
    cb(&r, ud);
  }
}

void ty_tasks_foreach_running(const ty_tasks *t, ty_tasks_running_cb cb, void *ud) {
  for (const task *k = t->head; k; k = k->next)
    if (k->running && k->pid > 0) cb(k->job_id, k->rank, k->pid, k->gpu_mask, ud);
}

void ty_tasks_ack(ty_tasks *t, uint64_t job_id, uint32_t rank) {
  for (task *k = t->head; k; k = k->next) {
    if (k->job_id == job_id && k->rank == rank && !k->running && !k->acked) {
      k->acked = true;
      maybe_free_task(k);
      return;
    }
  }
}

int ty_tasks_get(const ty_tasks *t, uint64_t job_id, uint32_t rank, ty_task_report *out) {
  const task *k = find(t, job_id, rank);
  if (!k) return TY_ENOTFOUND;
  fill_report(k, out);
  return 0;
}

uint32_t ty_tasks_running(const ty_tasks *t) {
  uint32_t n = 0;
  for (const task *k = t->head; k; k = k->next) n += k->running;
  return n;
}

uint32_t ty_tasks_cpus_used(const ty_tasks *t) {
  uint32_t n = 0;
  for (const task *k = t->head; k; k = k->next)
    if (k->running) n += k->cpus ? k->cpus : 1;
  return n;
}

uint32_t ty_tasks_gpus_used(const ty_tasks *t) {
  uint32_t n = 0;
  for (const task *k = t->head; k; k = k->next)
    if (k->running) n += k->n_gpus;
  return n;
}

bool ty_tasks_is_running(const ty_tasks *t, uint64_t job_id, uint32_t rank) {
  const task *k = find(t, job_id, rank);
  return k && k->running;
}

const char *ty_tasks_node(const ty_tasks *t) { return t->node; }

void ty_tasks_get_stats(const ty_tasks *t, ty_tasks_stats *out) {
  *out = t->stats;
  ty__logs_counts(t->logs, &out->log_bytes_cut, &out->log_dirs_removed);
}

/* ---- logs ------------------------------------------------------------------------ */

void ty_tasks_set_log_limits(ty_tasks *t, uint64_t max_bytes, uint32_t retention_s) {
  ty__logs_set_limits(t->logs, max_bytes, retention_s);
}

/* Whether job has a task record here (running, or its end not yet
 * acknowledged): its directory is still in use. */
static bool job_here(uint64_t job_id, void *ud) {
  const ty_tasks *t = ud;
  for (const task *k = t->head; k; k = k->next)
    if (k->job_id == job_id) return true;
  return false;
}

void ty_tasks_check_logs(ty_tasks *t) {
  char path[4096];
  for (task *k = t->head; k; k = k->next)
    if (k->running && ty_tasks_log_path(t, k->job_id, k->rank, path, sizeof path) == 0)
      ty__logs_check(t->logs, k->job_id, k->rank, path);
  for (size_t i = 0; i < t->n_ended_logs;) {
    struct ended_log *e = &t->ended_logs[i];
    if (ty_tasks_log_path(t, e->job_id, e->rank, path, sizeof path) == 0)
      ty__logs_check(t->logs, e->job_id, e->rank, path);
    if (--e->checks_left == 0) *e = t->ended_logs[--t->n_ended_logs];
    else i++;
  }
  /* Often enough that a directory outlives its retention by a quarter of
   * it at most, and at most once a minute. */
  int64_t now = ty_mono_ms(), every = SWEEP_MS;
  uint32_t keep = ty__logs_retention(t->logs);
  if (keep && (int64_t)keep * 250 < every) every = keep < 4 ? 1000 : (int64_t)keep * 250;
  if (t->last_sweep_ms && now - t->last_sweep_ms < every) return;
  t->last_sweep_ms = now;
  (void)ty__logs_sweep(t->logs, ty_now_ms() / 1000, job_here, t, true);
}

uint64_t ty_tasks_log_disk_bytes(ty_tasks *t) {
  return ty__logs_sweep(t->logs, ty_now_ms() / 1000, job_here, t, false);
}

uint32_t ty_tasks_log_gen(const ty_tasks *t, uint64_t job_id, uint32_t rank) {
  return ty__logs_gen(t->logs, job_id, rank);
}

void ty_tasks_log_follow(const ty_tasks *t, uint64_t job_id, uint32_t rank, uint32_t *gen,
                         uint64_t *offset) {
  ty__logs_follow(t->logs, job_id, rank, gen, offset);
}

ty__ioreg *ty__tasks_ioreg(ty_tasks *t) { return t->ioreg; }
