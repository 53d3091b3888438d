/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task supervision: spawning ranks as their users in their own cgroups,
 * killing them, time limits, and keeping each ended task's result until the
 * controller has acknowledged it.
 *
 * Invariants:
 *   - A task starts through trainyard-exec (spawn.c, exec.c): its own session
 *     (its pid is its process group id), its cgroup joined before the exec,
 *     the submitter's uid, gid and groups on a root worker.
 *   - With cgroups, signals go to every process in the task's cgroup and a
 *     kill is the whole cgroup's (cgroup.c): a double fork does not escape.
 *     When the task's main process exits, whatever it left behind is killed,
 *     and its end is reported only once the cgroup is empty, with what the
 *     cgroup used (accounting). Without cgroups, the process group stands in.
 *   - stdout and stderr of the task are the log file itself (UV_INHERIT_FD);
 *     the worker never copies output bytes, so a chatty task costs the worker
 *     nothing and output survives a worker restart. Interactive tasks
 *     (rlaunch) are the exception: their stdio are pipes or a pty held by an
 *     iotask (attach.c), which copies output to the log and to clients.
 *   - A task record is freed only when its report was acknowledged (or the
 *     registry is destroyed) and its libuv handles have closed.
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
#include <sys/wait.h>
#include <unistd.h>

#include "lib/token/token.h"
#include "worker/worker_internal.h"

/* After a task's main process exits: how often and how long to wait for the
 * rest of its cgroup to die before reporting the end anyway. */
#define REAP_POLL_MS 10
#define REAP_MAX_POLLS 500
#define SWEEP_MS 60000 /* how often expired job directories are looked for, at most */
#define ENDED_LOGS 64  /* logs of ended tasks still checked against the cap */
#define ENDED_CHECKS 3 /* ... at this many more checks */

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
  bool in_cgroup; /* its processes live in job<J>/rank<R> */
  int reap_polls; /* after exit: waits for the cgroup to empty */
  ty_task_usage usage;
  uint64_t job_id;
  uint32_t rank, master_port, cpus, n_gpus, kill_grace_s;
  uint64_t gpu_mask; /* its GPU indices (below 64), for per-task metrics */
  int pid;
  ty_task_state state;
  int exit_code, term_signal;
  bool timed_out;
  char *reason;
  bool fenced;    /* SIGKILLed by ty_tasks_fence: once is enough */
  ty__iotask *io; /* interactive stdio, until the task ends */
  /* Started by ty_tasks_launch_async, until the helper's verdict: its
   * watch, who gets the launch's outcome, the log (for a failed start's
   * note), and an exit that came first (handled after the verdict, so the
   * launch is answered before the end is reported). */
  ty__verdict *verdict;
  ty_tasks_started_cb started_cb;
  void *started_ud;
  int log_fd;
  bool exit_seen, start_failed;
  int64_t exit_status;
  int exit_term;
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
  char *helper;     /* trainyard-exec */
  ty_cgroups *cg;   /* NULL: process groups only */
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
  for (size_t i = 0; t->site_env && t->site_env[i]; i++)
    free(t->site_env[i]);
  free(t->site_env);
  t->site_env = NULL;
}

void ty_tasks_set_site_env(ty_tasks *t, char *const *entries, size_t n) {
  free_site_env(t);
  t->site_env = ty_xcalloc(n + 1, sizeof *t->site_env);
  for (size_t i = 0; i < n; i++)
    t->site_env[i] = ty_strdup(entries[i]);
}

static void maybe_free_registry(ty_tasks *t) {
  if (t->destroying && !t->head) {
    free_site_env(t);
    ty__logs_destroy(t->logs);
    free(t->state_dir);
    free(t->node);
    free(t->helper);
    ty_cgroup_close(t->cg);
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
  r->fenced = k->fenced;
  r->reason = k->reason ? k->reason : "";
  r->master_port = k->master_port;
  r->usage = k->usage;
  r->warned_signal = 0;
}

/* ---- lifecycle ------------------------------------------------------------- */

static void abandon_start(task *k); /* launch, below */

int ty_tasks_create(uv_loop_t *loop, const char *state_dir, const char *node,
                    ty_tasks_end_cb on_end, void *ud, ty_tasks **out_tasks) {
  if (!loop || !state_dir || !node) return TY_EINVAL;
  ty_tasks *t = ty_xcalloc(1, sizeof *t);
  t->loop = loop;
  t->state_dir = ty_strdup(state_dir);
  t->node = ty_strdup(node);
  t->on_end = on_end;
  t->ud = ud;
  t->ioreg = ty__ioreg_create(loop, node, t);
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
  for (task *k = t->head; k; k = k->next)
    if (k->verdict) abandon_start(k);
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

void ty_tasks_set_isolation(ty_tasks *t, const char *helper, ty_cgroups *cgroups) {
  free(t->helper);
  t->helper = helper ? ty_strdup(helper) : NULL;
  ty_cgroup_close(t->cg);
  t->cg = cgroups;
}

/* ---- signals ----------------------------------------------------------------- */

/* To every process of the task: its cgroup, else its process group. A
 * SIGKILL of a cgroup leaves no window for a fork to escape. */
static void signal_group(task *k, int sig) {
  if (k->pid <= 0) return;
  ty_tasks *t = k->owner;
  if (k->in_cgroup && sig == SIGKILL && ty_cgroup_task_kill(t->cg, k->job_id, k->rank) == 0) return;
  if (k->in_cgroup && ty_cgroup_task_signal(t->cg, k->job_id, k->rank, sig) == 0) return;
  /* Fall back to the leader alone if the group is already gone. */
  if (uv_kill(-k->pid, sig) != 0) (void)uv_kill(k->pid, sig);
}

static void on_grace_expired(uv_timer_t *h) {
  task *k = h->data;
  if (!k->running) return;
  ty_info("job %" PRIu64 " rank %" PRIu32 ": still running after grace, sending SIGKILL", k->job_id,
          k->rank);
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
  for (task *k = t->head; k; k = k->next)
    terminate(k, k->kill_grace_s);
}

void ty_tasks_kill_all_now(ty_tasks *t) {
  for (task *k = t->head; k; k = k->next)
    if (k->running) signal_group(k, SIGKILL);
}

uint32_t ty_tasks_fence(ty_tasks *t, const char *reason) {
  uint32_t n = 0;
  for (task *k = t->head; k; k = k->next) {
    if (!k->running || k->fenced) continue;
    free(k->reason);
    k->reason = ty_strdup(reason);
    k->fenced = true;
    signal_group(k, SIGKILL);
    n++;
  }
  t->stats.fenced += n;
  return n;
}

/* ---- exit ------------------------------------------------------------------- */

/* The end is final: the cgroup's accounting, the cgroup gone, the report. */
static void finish(task *k) {
  ty_tasks *t = k->owner;
  if (k->in_cgroup) {
    ty_cgroup_task_usage(t->cg, k->job_id, k->rank, &k->usage);
    if (ty_cgroup_task_remove(t->cg, k->job_id, k->rank) != 0)
      ty_warn("job %" PRIu64 " rank %" PRIu32 ": its cgroup could not be removed", k->job_id,
              k->rank);
    k->in_cgroup = false;
  }
  close_handles(k);
  ty_task_report r;
  fill_report(k, &r);
  if (t->on_end) t->on_end(t, &r, t->ud);
}

/* Polls until the task's cgroup is empty (the SIGKILLed rest exits). */
static void on_reap_poll(uv_timer_t *h) {
  task *k = h->data;
  bool empty = ty_cgroup_task_empty(k->owner->cg, k->job_id, k->rank);
  if (!empty && ++k->reap_polls < REAP_MAX_POLLS) {
    if (k->reap_polls % 50 == 0) ty_cgroup_task_kill(k->owner->cg, k->job_id, k->rank);
    return;
  }
  if (!empty)
    ty_warn("job %" PRIu64 " rank %" PRIu32 ": processes remain in its cgroup after SIGKILL "
            "(uninterruptible?); reporting its end anyway",
            k->job_id, k->rank);
  uv_timer_stop(h);
  finish(k);
}

static void process_exited(task *k, int64_t exit_status, int term_signal) {
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
  /* Whatever the task left behind goes with it, so no stray process keeps
   * writing to the log, holding a GPU or using CPUs the next job gets. */
  if (!k->in_cgroup)
    (void)uv_kill(-k->pid, SIGKILL);
  else if (!ty_cgroup_task_empty(t->cg, k->job_id, k->rank))
    ty_cgroup_task_kill(t->cg, k->job_id, k->rank);
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
  uv_timer_stop(&k->grace_timer);
  uv_timer_stop(&k->limit_timer);
  uv_timer_stop(&k->warn_timer);
  if (k->in_cgroup && !ty_cgroup_task_empty(t->cg, k->job_id, k->rank)) {
    uv_timer_start(&k->grace_timer, on_reap_poll, REAP_POLL_MS, REAP_POLL_MS);
    return;
  }
  finish(k);
}

/* A task whose command never ran (its helper failed): no report; its
 * record and cgroup go once the helper has exited. */
static void drop_failed_start(task *k) {
  ty_tasks *t = k->owner;
  if (k->in_cgroup) ty_cgroup_task_remove(t->cg, k->job_id, k->rank);
  k->in_cgroup = false;
  close_handles(k);
}

static void on_process_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
  task *k = p->data;
  if (k->verdict) { /* the helper's verdict is not in yet: after it */
    k->exit_seen = true;
    k->exit_status = exit_status, k->exit_term = term_signal;
  } else if (k->start_failed) {
    drop_failed_start(k);
  } else {
    process_exited(k, exit_status, term_signal);
  }
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
    if (!spec->argv[i]) return ty_errf(err, err_len, TY_EINVAL, "command.argv[%zu]: missing", i);
  }
  if (t->stopping) return ty_errf(err, err_len, TY_ESTATE, "node %s is shutting down", t->node);
  task *old = find(t, spec->job_id, spec->rank);
  if (old && old->running)
    return ty_errf(err, err_len, TY_EEXIST,
                   "job %" PRIu64 " rank %" PRIu32 " already runs on node %s (pid %d)",
                   spec->job_id, spec->rank, t->node, old->pid);
  return check_cwd(t, spec->cwd, err, err_len);
}

/* DIR/jobs/JOB: the worker's (0755), so a task's user cannot swap its files. */
static void job_dir(const ty_tasks *t, uint64_t job_id, char *out, size_t n) {
  snprintf(out, n, "%s/jobs/%" PRIu64, t->state_dir, job_id);
}

/* Keeps the job's task-token key next to its logs (0600, the worker's), so
 * ReadLog tokens verify after the task is gone and across restarts. */
static void keep_job_key(const ty_tasks *t, const ty_task_spec *spec) {
  if (!spec->attach_key || spec->attach_key_len != TY_TOKEN_KEY_LEN) return;
  char path[4096];
  job_dir(t, spec->job_id, path, sizeof path);
  size_t n = strlen(path);
  snprintf(path + n, sizeof path - n, "/token.key");
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0 || write(fd, spec->attach_key, TY_TOKEN_KEY_LEN) != (ssize_t)TY_TOKEN_KEY_LEN)
    ty_warn("job %" PRIu64 ": cannot keep its token key in %s: %s", spec->job_id, path,
            strerror(errno));
  if (fd >= 0) close(fd);
}

int ty_tasks_job_key(const ty_tasks *t, uint64_t job_id, uint8_t *out_key, size_t key_len) {
  char path[4096];
  job_dir(t, job_id, path, sizeof path);
  size_t n = strlen(path);
  snprintf(path + n, sizeof path - n, "/token.key");
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  ssize_t got = fd >= 0 ? read(fd, out_key, key_len) : -1;
  if (fd >= 0) close(fd);
  return got == (ssize_t)key_len ? 0 : TY_ENOTFOUND;
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
    if (spec->gpu_indices && spec->gpu_indices[g] < 64)
      k->gpu_mask |= UINT64_C(1) << spec->gpu_indices[g];
  k->kill_grace_s = spec->kill_grace_s ? spec->kill_grace_s : TY_TASK_DEFAULT_GRACE_S;
  k->proc.data = k;
  k->grace_timer.data = k;
  k->limit_timer.data = k;
  k->warn_timer.data = k;
  k->warn_signal = (int)spec->warn_signal;
  return k;
}

static void hook_signal(void *ud, int sig) {
  signal_group(ud, sig);
}

static void hook_kill(void *ud) {
  task *k = ud;
  terminate(k, k->kill_grace_s);
}

/* What the task may use: its job's memory here, its CPUs, its GPUs. */
static ty_cgroup_limits limits_of(const ty_task_spec *spec) {
  uint32_t node_gpus = 0;
  for (size_t i = 0; i < spec->n_gpus; i++)
    if (spec->gpu_indices[i] + 1 > node_gpus) node_gpus = spec->gpu_indices[i] + 1;
  return (ty_cgroup_limits){.mem_bytes = spec->mem_per_node,
                            .cpus = spec->cpus,
                            .gpus = spec->gpu_indices,
                            .n_gpus = spec->n_gpus,
                            .node_gpus = node_gpus > 64 ? node_gpus : 64};
}

/* Spawns k through the exec helper: plain tasks write straight into the
 * log; interactive ones get pipes or a pty from an iotask. On error `err`
 * says why. */
static void on_verdict(void *ud, int rc, const char *err);

/* The helper's verdict: waited for, or (async) watched by the loop, which
 * calls on_verdict. A watch that cannot start fails the launch. */
static int spawn_helper(ty_tasks *t, task *k, const ty__spawn *sp, bool async, char *err,
                        size_t err_len) {
  if (!async) return ty__spawn_task(t->loop, &k->proc, sp, err, err_len);
  int fd;
  int rc = ty__spawn_start(t->loop, &k->proc, sp, &fd, err, err_len);
  if (rc != 0) return rc;
  rc = ty__verdict_watch(t->loop, fd, k->proc.pid, sp, on_verdict, k, &k->verdict);
  if (rc == 0) return 0;
  close(fd);
  kill(k->proc.pid, SIGKILL);
  waitpid(k->proc.pid, NULL, 0);
  return ty_errf(err, err_len, TY_EIO, "cannot start the task on node %s: %s", t->node,
                 ty_strerror(rc));
}

static int start_process(ty_tasks *t, task *k, const ty_task_spec *spec, const ty__runas *who,
                         char **env, int null_fd, int log_fd, bool async, char *err,
                         size_t err_len) {
  ty__spawn sp = {.helper = t->helper,
                  .node = t->node,
                  .who = who,
                  .ctty = spec->interactive.pty,
                  .cwd = spec->cwd,
                  .argv = spec->argv,
                  .argc = spec->argc,
                  .env = env,
                  .exit_cb = on_process_exit,
                  .stdio = {{.flags = UV_INHERIT_FD, .data.fd = null_fd},
                            {.flags = UV_INHERIT_FD, .data.fd = log_fd},
                            {.flags = UV_INHERIT_FD, .data.fd = log_fd}}};
  if (!t->helper) return ty_errf(err, err_len, TY_EINTERNAL, "node %s has no exec helper", t->node);
  ty__iotask *io = NULL;
  if (spec->interactive.on) {
    int rc = ty__iotask_create(t->ioreg, spec, null_fd, log_fd, sp.stdio, err, err_len, &io);
    if (rc != 0) return rc;
  }
  ty_cgroup_limits lim = limits_of(spec);
  int rc =
      t->cg ? ty_cgroup_task_create(t->cg, spec->job_id, spec->rank, &lim, &sp.procs, err, err_len)
            : 0;
  k->in_cgroup = t->cg && rc == 0;
  if (rc == 0) rc = spawn_helper(t, k, &sp, async && !io, err, err_len);
  ty_cgroup_procs_free(sp.procs);
  if (rc != 0 && k->in_cgroup) {
    ty_cgroup_task_remove(t->cg, spec->job_id, spec->rank);
    k->in_cgroup = false;
  }
  ty__iotask_hooks hooks = {.signal = hook_signal, .kill = hook_kill, .ud = k};
  if (io) ty__iotask_spawned(io, rc, &hooks);
  k->io = rc == 0 ? io : NULL;
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

/* Opens the task's log and /dev/null (its stdin) into fds[0..1]. */
static int open_stdio(ty_tasks *t, const ty_task_spec *spec, const ty__runas *who, int *fds,
                      char *err, size_t err_len) {
  char dir[4096], path[4096];
  job_dir(t, spec->job_id, dir, sizeof dir);
  if (ty_tasks_log_path(t, spec->job_id, spec->rank, path, sizeof path) != 0)
    return ty_errf(err, err_len, TY_EIO, "log path of job %" PRIu64 " too long", spec->job_id);
  fds[1] = ty__open_task_log(dir, path, who, t->node, err, err_len);
  if (fds[1] < 0) return fds[1];
  keep_job_key(t, spec);
  fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fds[0] < 0) return ty_errf(err, err_len, TY_EIO, "cannot open /dev/null on node %s", t->node);
  return 0;
}

/* A task that could not start: recorded only long enough to close its
 * handle (libuv initialises it only once the child is forked). */
static void drop_unstarted(ty_tasks *t, task *k) {
  if (k->proc.type != UV_PROCESS) {
    free(k);
    return;
  }
  k->acked = true; /* nobody waits for a report of a task that never ran */
  k->open_handles = 1;
  k->next = t->head;
  t->head = k;
  uv_close((uv_handle_t *)&k->proc, on_handle_closed);
}

/* The launch's common part. Started asynchronously (k->verdict set), the
 * task is listed at once and on_verdict finishes the launch; otherwise it
 * is finished here. */
static int launch(ty_tasks *t, const ty_task_spec *spec, bool async, ty_tasks_started_cb cb,
                  void *ud, char *err, size_t err_len) {
  char **env = NULL;
  int fds[2] = {-1, -1}; /* stdin (/dev/null), the log */
  ty__runas who;
  int rc = check_spec(t, spec, err, err_len);
  if (rc == 0)
    rc = ty__runas_resolve(spec, t->node, &who, err, err_len);
  else
    memset(&who, 0, sizeof who);
  struct passwd pw = {.pw_name = who.user, .pw_dir = who.home, .pw_shell = who.shell};
  if (rc == 0) rc = ty_task_build_env(spec, t->node, t->site_env, &pw, err, err_len, &env);
  if (rc == 0) rc = open_stdio(t, spec, &who, fds, err, err_len);
  if (rc != 0) goto fail;
  forget_old(t, spec->job_id, spec->rank);
  task *k = new_task(t, spec);
  k->log_fd = -1;
  rc = start_process(t, k, spec, &who, env, fds[0], fds[1], async, err, err_len);
  if (rc != 0) {
    log_failure(fds[1], err);
    drop_unstarted(t, k);
    goto fail;
  }
  k->pid = k->proc.pid;
  k->running = true;
  k->state = TY_TASK_RUNNING;
  start_timers(t, k, spec->time_limit_s, spec->warn_before_s);
  /* Append at the tail so reports come out in launch order. */
  task **tail = &t->head;
  while (*tail)
    tail = &(*tail)->next;
  *tail = k;
  if (k->verdict) {
    k->started_cb = cb, k->started_ud = ud;
    k->log_fd = fds[1], fds[1] = -1;
    goto out;
  }
  t->stats.started++;
  ty_info("job %" PRIu64 " rank %" PRIu32 ": started pid %d as %s%s: %s", k->job_id, k->rank,
          k->pid, who.user, k->in_cgroup ? " in its cgroup" : "", spec->argv[0]);
fail:
  if (rc != 0) t->stats.launch_failures++;
  /* After the task is listed: a woken attach looks it up. */
  ty__io_launched(t->ioreg, spec->job_id, spec->rank, rc, rc ? err : NULL);
  if (cb) cb(ud, rc, rc ? err : NULL);
out:
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0) close(fds[i]);
  ty_task_env_free(env);
  ty__runas_close(&who);
  return rc;
}

int ty_tasks_launch(ty_tasks *t, const ty_task_spec *spec, char *err, size_t err_len) {
  return launch(t, spec, false, NULL, NULL, err, err_len);
}

void ty_tasks_launch_async(ty_tasks *t, const ty_task_spec *spec, ty_tasks_started_cb cb,
                           void *ud) {
  char err[TY_ERR_LEN] = "";
  launch(t, spec, true, cb, ud, err, sizeof err);
}

/* The helper of an asynchronous start said whether the command runs: the
 * launch is answered, then an exit that came meanwhile is handled. */
static void on_verdict(void *ud, int rc, const char *err) {
  task *k = ud;
  ty_tasks *t = k->owner;
  k->verdict = NULL;
  if (rc == 0) {
    t->stats.started++;
    ty_info("job %" PRIu64 " rank %" PRIu32 ": started pid %d%s", k->job_id, k->rank, k->pid,
            k->in_cgroup ? " in its cgroup" : "");
  } else {
    log_failure(k->log_fd, err);
    t->stats.launch_failures++;
    /* Never reported, never found: only its exit is still awaited. */
    k->start_failed = true;
    k->running = false;
    k->acked = true;
  }
  close(k->log_fd);
  k->log_fd = -1;
  ty__io_launched(t->ioreg, k->job_id, k->rank, rc, err);
  ty_tasks_started_cb cb = k->started_cb;
  k->started_cb = NULL;
  if (cb) cb(k->started_ud, rc, err);
  if (!k->exit_seen) return;
  if (rc != 0)
    drop_failed_start(k);
  else
    process_exited(k, k->exit_status, k->exit_term);
}

/* Destroying the registry: a start still waiting for its verdict is
 * answered TY_ESTATE, and its task goes with the others. */
static void abandon_start(task *k) {
  ty__verdict_cancel(k->verdict);
  k->verdict = NULL;
  if (k->log_fd >= 0) close(k->log_fd);
  k->log_fd = -1;
  ty_tasks_started_cb cb = k->started_cb;
  k->started_cb = NULL;
  char err[TY_ERR_LEN];
  ty_errf(err, sizeof err, TY_ESTATE, "node %s is shutting down", k->owner->node);
  if (cb) cb(k->started_ud, TY_ESTATE, err);
}

/* ---- a previous run's tasks ---------------------------------------------------- */

/* One task a killed worker left behind: killed with its whole cgroup. It
 * is not reported: the controller, not hearing of it in RegisterNode,
 * counts it lost and requeues its job (NODE_FAIL), once it is dead. */
typedef struct reap_ctx {
  ty_cgroups *cg;
  size_t n;
} reap_ctx;

static void reap_one(uint64_t job, uint32_t rank, void *ud) {
  reap_ctx *r = ud;
  ty_cgroups *cg = r->cg;
  r->n++;
  ty_cgroup_task_kill(cg, job, rank);
  for (int i = 0; i < REAP_MAX_POLLS && !ty_cgroup_task_empty(cg, job, rank); i++) {
    if (i % 50 == 49) ty_cgroup_task_kill(cg, job, rank);
    uv_sleep(REAP_POLL_MS);
  }
  bool gone = ty_cgroup_task_empty(cg, job, rank) && ty_cgroup_task_remove(cg, job, rank) == 0;
  ty_warn("job %" PRIu64 " rank %" PRIu32 " was still in its cgroup from a previous run of this "
          "worker: %s",
          job, rank,
          gone ? "killed it before registering" : "killed it, but its cgroup could not be removed");
}

size_t ty_tasks_reap_previous(ty_tasks *t) {
  reap_ctx r = {t->cg, 0};
  if (t->cg) ty_cgroup_scan(t->cg, reap_one, &r);
  return r.n;
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
    if (k->running && k->pid > 0) cb(k->job_id, k->rank, k->pid, k->gpu_mask, k->in_cgroup, ud);
}

ty_cgroups *ty_tasks_cgroups(const ty_tasks *t) {
  return t->cg;
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
  for (const task *k = t->head; k; k = k->next)
    n += k->running;
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

const char *ty_tasks_node(const ty_tasks *t) {
  return t->node;
}

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
    if (--e->checks_left == 0)
      *e = t->ended_logs[--t->n_ended_logs];
    else
      i++;
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

ty__ioreg *ty__tasks_ioreg(ty_tasks *t) {
  return t->ioreg;
}
