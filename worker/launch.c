/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Starting a task: checking its spec, resolving its user, its environment,
 * its job directory, log and token key, its cgroup, and spawning it by
 * the worker itself (direct.c: no helper, no fork of the worker's page
 * tables; an interactive task's pipes or pty made by its iotask first), or
 * through trainyard-exec (spawn.c, exec.c) in a ThreadSanitizer build.
 * Either way the outcome is known when the launch
 * returns, before the loop can see the task's exit: a task's launch is
 * answered before its end is reported, and a start that fails is never
 * reported as a task. task.c supervises the task from then on.
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
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "lib/token/token.h"
#include "worker/worker_internal.h"

typedef ty__task task;

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
  task *old = ty__task_find(t, spec->job_id, spec->rank);
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

/* The job's task-token key is kept with its logs, so ReadLog tokens verify
 * after the task is gone and across restarts: as an extended attribute of
 * the job directory in the trusted namespace, which only a process with
 * CAP_SYS_ADMIN (a root worker) can read or write, so a task's user cannot,
 * and no inode is allocated for it (a file is most of the cost of a short
 * task's start on ext4); else, on a worker that is not root or a file
 * system without trusted attributes, as DIR/jobs/JOB/token.key (0600, the
 * worker's). */
#define KEY_XATTR "trusted.trainyard.token_key"

static void key_file(const ty_tasks *t, uint64_t job_id, char *out, size_t n) {
  job_dir(t, job_id, out, n);
  size_t len = strlen(out);
  snprintf(out + len, n - len, "/token.key");
}

static void keep_job_key(const ty_tasks *t, const ty_task_spec *spec) {
  if (!spec->attach_key || spec->attach_key_len != TY_TOKEN_KEY_LEN) return;
  char path[4096];
  job_dir(t, spec->job_id, path, sizeof path);
  if (setxattr(path, KEY_XATTR, spec->attach_key, TY_TOKEN_KEY_LEN, 0) == 0) return;
  key_file(t, spec->job_id, path, sizeof path);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0 || write(fd, spec->attach_key, TY_TOKEN_KEY_LEN) != (ssize_t)TY_TOKEN_KEY_LEN)
    ty_warn("job %" PRIu64 ": cannot keep its token key in %s: %s", spec->job_id, path,
            strerror(errno));
  if (fd >= 0) close(fd);
}

int ty_tasks_job_key(const ty_tasks *t, uint64_t job_id, uint8_t *out_key, size_t key_len) {
  char path[4096];
  job_dir(t, job_id, path, sizeof path);
  if (getxattr(path, KEY_XATTR, out_key, key_len) == (ssize_t)key_len) return 0;
  key_file(t, job_id, path, sizeof path);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  ssize_t got = fd >= 0 ? read(fd, out_key, key_len) : -1;
  if (fd >= 0) close(fd);
  return got == (ssize_t)key_len ? 0 : TY_ENOTFOUND;
}

static bool is_batch_runner(const ty_task_spec *spec);

static task *new_task(ty_tasks *t, const ty_task_spec *spec) {
  task *k = ty_xcalloc(1, sizeof *k);
  k->owner = t;
  k->job_id = spec->job_id;
  k->rank = spec->rank;
  k->master_port = spec->master_port;
  k->cpus = spec->cpus;
  k->mem_limited = spec->mem_per_node > 0;
  k->graph = spec->graph;
  k->batch = is_batch_runner(spec);
  k->n_gpus = (uint32_t)spec->n_gpus;
  for (size_t g = 0; g < spec->n_gpus; g++)
    if (spec->gpu_indices && spec->gpu_indices[g] < 64)
      k->gpu_mask |= UINT64_C(1) << spec->gpu_indices[g];
  k->kill_grace_s = spec->kill_grace_s ? spec->kill_grace_s : TY_TASK_DEFAULT_GRACE_S;
  k->proc.data = k;
  k->exit_poll.data = k;
  k->pidfd = -1;
  k->grace_timer.data = k;
  k->limit_timer.data = k;
  k->warn_timer.data = k;
  k->warn_signal = (int)spec->warn_signal;
  k->warn_batch_only = spec->warn_batch_only;
  return k;
}

static void hook_signal(void *ud, int sig) {
  ty__task_signal(ud, sig);
}

static void hook_kill(void *ud, const char *why) {
  task *k = ud;
  if (!k->reason) k->reason = ty_strdup(why); /* a fence's or a start's stands */
  ty__task_terminate(k, k->kill_grace_s);
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

/* ThreadSanitizer keeps its own record of signal handlers and file
 * descriptors in the process's memory, which direct.c's child, sharing
 * that memory until it execs, would rewrite (false races, lost handlers):
 * a ThreadSanitizer build starts every task through the helper. */
#if defined(__SANITIZE_THREAD__)
#define DIRECT_START false
#else
#define DIRECT_START true
#endif

/* A task through direct.c, its exit watched by polling its pidfd. */
static int spawn_direct(ty_tasks *t, task *k, const ty__spawn *sp, char *err, size_t err_len) {
  int pid, pidfd;
  int rc = ty__spawn_direct(sp, &pid, &pidfd, err, err_len);
  if (rc != 0) return rc;
  rc = uv_poll_init(t->loop, &k->exit_poll, pidfd);
  if (rc == 0) rc = uv_poll_start(&k->exit_poll, UV_READABLE, ty__task_on_pidfd);
  if (rc != 0) {
    ty__kill_pidfd(pid, pidfd); /* an initialised poll handle is closed by drop_unstarted */
    return ty_errf(err, err_len, TY_EIO, "cannot watch the task on node %s: %s", t->node,
                   ty_strerror(rc));
  }
  k->pidfd = pidfd;
  k->pid = pid;
  return 0;
}

/* Spawns k: plain tasks write straight into the log; interactive ones get
 * pipes or a pty from an iotask. On error `err` says why. */
static int start_process(ty_tasks *t, task *k, const ty_task_spec *spec, const ty__runas *who,
                         char **env, int null_fd, int log_fd, char *err, size_t err_len) {
  ty__spawn sp = {.helper = t->helper,
                  .node = t->node,
                  .who = who,
                  .ctty = spec->interactive.pty,
                  .cwd = spec->cwd,
                  .process = &spec->process,
                  .argv = spec->argv,
                  .argc = spec->argc,
                  .env = env,
                  .exit_cb = ty__task_on_exit,
                  .stdio = {{.flags = UV_INHERIT_FD, .data.fd = null_fd},
                            {.flags = UV_INHERIT_FD, .data.fd = log_fd},
                            {.flags = UV_INHERIT_FD, .data.fd = log_fd}}};
  if (!DIRECT_START && !t->helper)
    return ty_errf(err, err_len, TY_EINTERNAL, "node %s has no exec helper", t->node);
  ty__iotask *io = NULL;
  if (spec->interactive.on) {
    int rc = ty__iotask_create(t->ioreg, spec, null_fd, log_fd, k->launch_ns, sp.stdio, err,
                               err_len, &io);
    if (rc != 0) return rc;
  }
  ty_cgroup_limits lim = limits_of(spec);
  int rc =
      t->cg ? ty_cgroup_task_create(t->cg, spec->job_id, spec->rank, &lim, &sp.procs, err, err_len)
            : 0;
  k->in_cgroup = t->cg && rc == 0;
  if (rc == 0 && !DIRECT_START) {
    rc = ty__spawn_task(t->loop, &k->proc, &sp, err, err_len);
    if (rc == 0) k->pid = k->proc.pid;
  } else if (rc == 0) {
    rc = spawn_direct(t, k, &sp, err, err_len);
  }
  ty_cgroup_procs_free(sp.procs);
  if (rc == 0) ty__fence_add(t->fence, k->pid); /* its session: pgid = pid */
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

/* Drops an ended, unacknowledged record of the same job and rank: the
 * controller launched the rank again, so it no longer waits for the old one. */
static void forget_old(ty_tasks *t, uint64_t job_id, uint32_t rank) {
  task *old = ty__task_find(t, job_id, rank);
  if (old && !old->running) ty_tasks_ack(t, job_id, rank, old->ended_ms);
}

/* A run after the first begins its output in the log with the run's
 * marker line (TY_LOG_RUN_MARK, lib/wire/wire.h): the log of a rank that
 * ran here before goes on after that run's output. */
static void mark_run(int log_fd, const ty_task_spec *spec, const char *node) {
  if (spec->restart_count == 0) return;
  time_t now = time(NULL);
  struct tm tm;
  char when[32] = "?", line[512];
  if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  int n = snprintf(line, sizeof line,
                   TY_LOG_RUN_MARK "%" PRIu32 " (node %s, started %s)" TY_LOG_RUN_MARK_END "\n",
                   spec->restart_count + 1, node, when);
  if (n > 0 && (size_t)n < sizeof line && write(log_fd, line, (size_t)n) < 0)
    ty_debug("job %" PRIu64 " rank %" PRIu32 ": cannot mark run %" PRIu32 " in the log",
             spec->job_id, spec->rank, spec->restart_count + 1);
}

/* Opens the task's log in its job's directory (job_dir.c: this job's, not
 * an earlier one's of the same id), marking a run after the first, and
 * /dev/null (its stdin) into fds[0..1]. */
static int open_stdio(ty_tasks *t, const ty_task_spec *spec, const ty__runas *who, int *fds,
                      char *err, size_t err_len) {
  char dir[4096], path[4096];
  int rc = ty__job_dir_claim(t, spec, dir, sizeof dir, err, err_len);
  if (rc != 0) return rc;
  if (ty_tasks_log_path(t, spec->job_id, spec->rank, path, sizeof path) != 0)
    return ty_errf(err, err_len, TY_EIO, "log path of job %" PRIu64 " too long", spec->job_id);
  fds[1] = ty__open_task_log(path, who, t->node, err, err_len);
  if (fds[1] < 0) return fds[1];
  mark_run(fds[1], spec, t->node);
  keep_job_key(t, spec);
  fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fds[0] < 0) return ty_errf(err, err_len, TY_EIO, "cannot open /dev/null on node %s", t->node);
  return 0;
}

/* A task that could not start: recorded only long enough to close its
 * handles (libuv initialises the process one only once the child is
 * forked). */
static void drop_unstarted(ty_tasks *t, task *k) {
  uv_handle_t *hs[] = {(uv_handle_t *)&k->proc, (uv_handle_t *)&k->exit_poll};
  uv_close_cb cbs[] = {ty__task_on_handle_closed, ty__task_on_poll_closed};
  for (size_t i = 0; i < TY_ARRAY_LEN(hs); i++)
    k->open_handles += hs[i]->type != UV_UNKNOWN_HANDLE;
  if (k->open_handles == 0) {
    free(k);
    return;
  }
  k->acked = true; /* nobody waits for a report of a task that never ran */
  k->next = t->head;
  t->head = k;
  for (size_t i = 0; i < TY_ARRAY_LEN(hs); i++)
    if (hs[i]->type != UV_UNKNOWN_HANDLE) uv_close(hs[i], cbs[i]);
}

/* A batch script's task (trainctl's runner, cli/script.c: /bin/sh -c
 * RUNNER trainyard-batch TEXT ...) learns the path of trainyard-exec in
 * TRAINYARD_EXEC, to run the script through its --wait-status mode and
 * pass on the script's exact end (worker/exec_wait.c). No other task's
 * environment changes, nor a batch task's where the helper has no absolute
 * path (the task's cwd is not the worker's): its runner then reads $?. */
static bool is_batch_runner(const ty_task_spec *spec) {
  return spec->argc >= 4 && strcmp(spec->argv[0], "/bin/sh") == 0 &&
         strcmp(spec->argv[1], "-c") == 0 && strcmp(spec->argv[3], "trainyard-batch") == 0;
}

static int note_batch_runner(const ty_tasks *t, const ty_task_spec *spec, char ***env, char *err,
                             size_t err_len) {
  if (!is_batch_runner(spec) || !t->helper || t->helper[0] != '/') return 0;
  if (ty_task_env_set(env, "TRAINYARD_EXEC", t->helper) == 0) return 0;
  return ty_errf(err, err_len, TY_ENOMEM, "command.env: no memory for TRAINYARD_EXEC");
}

/* A batch script's text is the runner's argv[4], and a process's arguments
 * are every local user's to read (/proc/PID/cmdline, ps) for as long as
 * the runner waits for its script: the whole script, secrets and all. Its
 * environment only its user and root read, so the text goes to the runner
 * in TRAINYARD_BATCH_SCRIPT, with "" left in argv[4], where the runner
 * reads it there (trainctl's does, and unsets it for the script; an older
 * runner, which reads only $1, keeps its argv). As Slurm keeps a batch
 * script in a file of its spool. *out is spec or *copy (a spec whose argv
 * is *argv, both the caller's to free). */
static int hide_batch_script(const ty_task_spec *spec, char ***env, ty_task_spec *copy,
                             const char ***argv, const ty_task_spec **out, char *err,
                             size_t err_len) {
  *out = spec;
  if (!is_batch_runner(spec) || spec->argc < 5 || !strstr(spec->argv[2], "TRAINYARD_BATCH_SCRIPT"))
    return 0;
  if (ty_task_env_set(env, "TRAINYARD_BATCH_SCRIPT", spec->argv[4]) != 0 ||
      !(*argv = malloc((spec->argc + 1) * sizeof **argv)))
    return ty_errf(err, err_len, TY_ENOMEM, "command.env: no memory for the batch script");
  memcpy(*argv, spec->argv, spec->argc * sizeof **argv);
  (*argv)[4] = "";
  (*argv)[spec->argc] = NULL;
  *copy = *spec;
  copy->argv = *argv;
  *out = copy;
  return 0;
}

/* The task's private TMPDIR (task_tmp.c), its TMPDIR unless the operator
 * (--task-env) or the job (--export) named one. */
static int private_tmp(ty_tasks *t, const ty_task_spec *spec, const ty__runas *who,
                       ty__task_tmp *tmp, char ***env, char *err, size_t err_len) {
  int rc = ty__task_tmp_make(t, spec, who, tmp, err, err_len);
  if (rc != 0 || ty_task_env_given(spec, t->site_env, "TMPDIR")) return rc;
  char path[TY__TASK_TMP_BASE_MAX + sizeof tmp->name + 2];
  snprintf(path, sizeof path, "%s/%s", t->tmp_base, tmp->name);
  if (ty_task_env_set(env, "TMPDIR", path) == 0) return 0;
  return ty_errf(err, err_len, TY_ENOMEM, "command.env: no memory for TMPDIR");
}

/* Whether start_process's failure rc is the node's: all but the job's own
 * (argv[0] not found or not executable, its cwd, its user, its limits:
 * ty__spawn_task's codes for those) and a start that did not reach its exec
 * in time (TY_ETIMEDOUT): between setuid and exec the process is its
 * user's, who may stop it, and a user must not be able to drain a node. */
static bool start_is_node_fault(int rc) {
  return rc != UV_ENOENT && rc != UV_EACCES && rc != TY_ENOTFOUND && rc != TY_EPERM &&
         rc != TY_EINVAL && rc != TY_ETIMEDOUT;
}

int ty_tasks_launch(ty_tasks *t, const ty_task_spec *spec, char *err, size_t err_len) {
  bool node_fault;
  return ty_tasks_launch_classified(t, spec, &node_fault, err, err_len);
}

/* The launch: listed as running, or refused with err. Its steps up to the
 * environment check the job (its argv, cwd, user, env); its TMPDIR, job
 * directory and log, and its cgroup are the node's: failing there (a full
 * disk, no descriptors) is the node's fault, as is running out of memory
 * anywhere. */
int ty_tasks_launch_classified(ty_tasks *t, const ty_task_spec *spec, bool *node_fault, char *err,
                               size_t err_len) {
  uint64_t launch_ns = uv_hrtime();
  char **env = NULL;
  int fds[2] = {-1, -1}; /* stdin (/dev/null), the log */
  ty__runas who;
  ty_task_spec hidden;
  const ty_task_spec *run = spec; /* what starts: spec, or hidden without the script's text */
  const char **run_argv = NULL;
  ty__task_tmp tmp = {.name = ""};
  int rc = check_spec(t, spec, err, err_len);
  if (rc == 0)
    rc = ty__runas_resolve(t->users, spec, t->node, &who, err, err_len);
  else
    memset(&who, 0, sizeof who);
  struct passwd pw = {.pw_name = who.user, .pw_dir = who.home, .pw_shell = who.shell};
  if (rc == 0) rc = ty_task_build_env(spec, t->node, t->site_env, &pw, err, err_len, &env);
  bool node = false; /* whether the step that failed is the node's */
  if (rc == 0) node = (rc = private_tmp(t, spec, &who, &tmp, &env, err, err_len)) != 0;
  if (rc == 0) rc = note_batch_runner(t, spec, &env, err, err_len);
  if (rc == 0) rc = hide_batch_script(spec, &env, &hidden, &run_argv, &run, err, err_len);
  if (rc == 0) node = (rc = open_stdio(t, spec, &who, fds, err, err_len)) != 0;
  if (rc != 0) goto fail;
  forget_old(t, spec->job_id, spec->rank);
  task *k = new_task(t, spec);
  k->launch_ns = launch_ns;
  rc = start_process(t, k, run, &who, env, fds[0], fds[1], err, err_len);
  if (rc != 0) {
    node = start_is_node_fault(rc);
    log_failure(fds[1], err);
    drop_unstarted(t, k);
    goto fail;
  }
  k->tmp = tmp;
  tmp.name[0] = 0; /* the task's now: removed at its end */
  k->running = true;
  k->state = TY_TASK_RUNNING;
  ty__task_start_timers(t, k, spec->time_limit_s, spec->warn_before_s);
  /* Append at the tail so reports come out in launch order. */
  task **tail = &t->head;
  while (*tail)
    tail = &(*tail)->next;
  *tail = k;
  t->stats.started++;
  ty_info("job %" PRIu64 " rank %" PRIu32 ": started pid %d as %s%s: %s", k->job_id, k->rank,
          k->pid, who.user, k->in_cgroup ? " in its cgroup" : "", spec->argv[0]);
fail:
  *node_fault = rc != 0 && (node || rc == TY_ENOMEM);
  if (rc != 0) t->stats.launch_failures++;
  ty__task_tmp_remove(t, &tmp, spec->job_id, spec->rank);
  /* After the task is listed: a woken attach looks it up. */
  ty__io_launched(t->ioreg, spec->job_id, spec->rank, rc, rc ? err : NULL);
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0) close(fds[i]);
  ty_task_env_free(env);
  free(run_argv);
  ty__runas_close(&who);
  return rc;
}
