/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task supervision: the registry of a node's tasks, signalling and killing
 * them, time limits, their exits, and keeping each ended task's result until
 * the controller has acknowledged it. Starting a task is launch.c's.
 *
 * Invariants:
 *   - A task starts in its own session (its pid is its process group id),
 *     its cgroup joined before the exec, with the submitter's uid, gid and
 *     groups on a root worker: by the worker itself (direct.c), or through
 *     trainyard-exec (spawn.c, exec.c) in a ThreadSanitizer build.
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
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/worker_internal.h"

/* After a task's main process exits: how often and how long to wait for the
 * rest of its cgroup to die before reporting the end anyway. */
#define REAP_POLL_MS 10
#define REAP_MAX_POLLS 500
#define SWEEP_MS 60000 /* how often expired job directories are looked for, at most */
#define ENDED_CHECKS 3 /* logs of ended tasks are checked against the cap this many more times */

typedef ty__task task;

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
    ty__usercache_destroy(t->users);
    free(t->state_dir);
    free(t->node);
    free(t->helper);
    free(t->tmp_base);
    ty__fence_stop(t->fence);
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

void ty__task_on_handle_closed(uv_handle_t *h) {
  task *k = h->data;
  k->open_handles--;
  maybe_free_task(k);
}

void ty__task_on_poll_closed(uv_handle_t *h) {
  task *k = h->data;
  if (k->pidfd >= 0) close(k->pidfd);
  k->pidfd = -1;
  ty__task_on_handle_closed(h);
}

static void close_handles(task *k) {
  uv_handle_t *hs[] = {(uv_handle_t *)&k->proc, (uv_handle_t *)&k->exit_poll,
                       (uv_handle_t *)&k->grace_timer, (uv_handle_t *)&k->limit_timer,
                       (uv_handle_t *)&k->warn_timer};
  for (size_t i = 0; i < TY_ARRAY_LEN(hs); i++) {
    /* Records are calloc'ed: a handle never initialised is UV_UNKNOWN_HANDLE. */
    if (hs[i]->type != UV_UNKNOWN_HANDLE && !uv_is_closing(hs[i]))
      uv_close(hs[i], hs[i] == (uv_handle_t *)&k->exit_poll ? ty__task_on_poll_closed
                                                            : ty__task_on_handle_closed);
  }
}

task *ty__task_find(const ty_tasks *t, uint64_t job_id, uint32_t rank) {
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
  r->worker_stopped = k->stopped;
  r->oom_killed = k->oom_killed;
  r->reason = k->reason ? k->reason : "";
  r->master_port = k->master_port;
  r->usage = k->usage;
  r->ended_ms = k->ended_ms;
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
  t->ioreg = ty__ioreg_create(loop, node, t);
  t->logs = ty__logs_create(state_dir);
  t->tmp_base = ty_strdup("/tmp");
  static const char *const user_files[] = {"/etc/passwd", "/etc/group", "/etc/nsswitch.conf"};
  t->users = ty__usercache_create(user_files, TY_ARRAY_LEN(user_files), TY__USERCACHE_TTL_MS);
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

void ty_tasks_set_tmp_base(ty_tasks *t, const char *dir) {
  free(t->tmp_base);
  t->tmp_base = ty_strdup(dir);
}

void ty_tasks_set_isolation(ty_tasks *t, const char *helper, ty_cgroups *cgroups) {
  free(t->helper);
  t->helper = helper ? ty_strdup(helper) : NULL;
  ty_cgroup_close(t->cg);
  t->cg = cgroups;
}

int ty_tasks_start_fence(ty_tasks *t) {
  if (!t->fence) t->fence = ty__fence_start(t->cg);
  return t->fence ? ty__fence_pid(t->fence) : -1;
}

/* ---- signals ----------------------------------------------------------------- */

/* To every process of the task: its cgroup, else its process group. A
 * SIGKILL of a cgroup leaves no window for a fork to escape. A graph
 * rank's other signals (the stop's SIGTERM, --signal's warning) go to
 * trainrun alone: it stops its ranks together and then finalizes MPI
 * through the helpers it started (each rank's singleton orted, rank 0's
 * ompi-server), which the same SIGTERM used to kill first, so every
 * multi-rank stop logged "ORTE_ERROR_LOG: Unreachable" from
 * MPI_Finalize. What outlives trainrun goes with the task's end. */
void ty__task_signal(task *k, int sig) {
  if (k->pid <= 0) return;
  if (k->graph && sig != SIGKILL) {
    (void)uv_kill(k->pid, sig);
    return;
  }
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
  ty__task_signal(k, SIGKILL);
}

/* SIGTERM now, SIGKILL after grace_s. A task already being terminated is
 * not signalled again: its SIGTERM was sent and its earlier escalation
 * deadline stands (a controller restarted during the grace kills again
 * what it finds running of a job it no longer runs). */
void ty__task_terminate(task *k, uint32_t grace_s) {
  if (!k->running || uv_is_active((uv_handle_t *)&k->grace_timer)) return;
  ty__task_signal(k, SIGTERM);
  uv_timer_start(&k->grace_timer, on_grace_expired, (uint64_t)grace_s * 1000u, 0);
}

static void on_time_limit(uv_timer_t *h) {
  task *k = h->data;
  if (!k->running) return;
  ty_info("job %" PRIu64 " rank %" PRIu32 ": time limit reached, killing it", k->job_id, k->rank);
  k->timed_out = true;
  ty__task_terminate(k, k->kill_grace_s);
}

int ty_tasks_kill(ty_tasks *t, uint64_t job_id, int signal, uint32_t grace_s) {
  if (signal < 0 || signal >= 65) return TY_EINVAL;
  for (task *k = t->head; k; k = k->next) {
    if (k->job_id != job_id || !k->running) continue;
    if (signal == 0) {
      ty__task_terminate(k, grace_s ? grace_s : k->kill_grace_s);
    } else {
      ty__task_signal(k, signal);
    }
  }
  return 0;
}

int ty_tasks_signal_batch(ty_tasks *t, uint64_t job_id, int signal) {
  if (signal < 1 || signal >= 65) return TY_EINVAL;
  for (task *k = t->head; k; k = k->next) {
    if (k->job_id != job_id || !k->running) continue;
    pid_t script = k->graph ? 0 : ty__task_script_pid(k->pid);
    ty_info("job %" PRIu64 " rank %" PRIu32 ": signal %d%s", k->job_id, k->rank, signal,
            script > 0 ? " to the batch script alone" : "");
    if (script > 0)
      (void)uv_kill(script, signal);
    else
      ty__task_signal(k, signal);
  }
  return 0;
}

void ty_tasks_kill_all(ty_tasks *t) {
  t->stopping = true;
  for (task *k = t->head; k; k = k->next) {
    if (k->running) k->stopped = true; /* its job is requeued, not failed */
    ty__task_terminate(k, k->kill_grace_s);
  }
}

void ty_tasks_kill_all_now(ty_tasks *t) {
  for (task *k = t->head; k; k = k->next)
    if (k->running) ty__task_signal(k, SIGKILL);
}

uint32_t ty_tasks_fence(ty_tasks *t, const char *reason) {
  uint32_t n = 0;
  for (task *k = t->head; k; k = k->next) {
    if (!k->running || k->fenced) continue;
    free(k->reason);
    k->reason = ty_strdup(reason);
    k->fenced = true;
    ty__task_signal(k, SIGKILL);
    n++;
  }
  t->stats.fenced += n;
  return n;
}

/* ---- exit ------------------------------------------------------------------- */

/* A task whose processes the kernel killed at its memory limit says so
 * in its report (oom_killed: the job ends OUT_OF_MEMORY) and its reason:
 * its exit code alone (137, or a shell's 1) would not. Only a task with a
 * limit has its count read: a short task's end stays one file read fewer. */
static void note_oom(task *k) {
  if (!k->mem_limited) return;
  uint64_t n = ty_cgroup_task_oom_kills(k->owner->cg, k->job_id, k->rank);
  if (!n) return;
  k->oom_killed = true;
  if (k->reason) return; /* the fence's or a start's reason stands */
  char why[160];
  snprintf(why, sizeof why,
           "out of memory: %" PRIu64 " process%s killed at the job's memory limit (--mem)", n,
           n == 1 ? "" : "es");
  k->reason = ty_strdup(why);
  ty_info("job %" PRIu64 " rank %" PRIu32 ": %s", k->job_id, k->rank, why);
}

/* A task whose forks the kernel refused at the job's process limit
 * (--max-pids-per-job) says so in its reason (trainctl show, why, the
 * history) and at the end of its log: its own message ("Cannot fork",
 * "Resource temporarily unavailable") does not name the limit. */
static void note_forks_refused(task *k) {
  uint64_t n = ty_cgroup_task_forks_refused(k->owner->cg, k->job_id, k->rank);
  if (!n) return;
  char why[200], path[4096];
  snprintf(why, sizeof why,
           "process limit: %" PRIu64 " fork%s refused at the job's limit of %" PRIu64
           " processes and threads per node (trainworkerd --max-pids-per-job)",
           n, n == 1 ? "" : "s", ty_cgroup_pids_max(k->owner->cg));
  ty_info("job %" PRIu64 " rank %" PRIu32 ": %s", k->job_id, k->rank, why);
  if (ty_tasks_log_path(k->owner, k->job_id, k->rank, path, sizeof path) == 0) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd >= 0 && dprintf(fd, "trainworkerd: %s\n", why) < 0)
      ty_debug("cannot note it in the log");
    if (fd >= 0) close(fd);
  }
  if (!k->reason) k->reason = ty_strdup(why); /* an OOM's, a fence's or a start's stands */
}

/* A graph rank that exits non-zero said why in its log ("trainrun:
 * config.dataset.train[0].path: x.npy: missing"), as does a batch runner
 * that could not open the script's --output or --error (TY_BATCH_ERROR
 * "cannot open output file PATH: WHY"): its report's reason carries that,
 * so the job's failure reason (trainctl show, its history) names the
 * cause, not only the exit code. Read once, at the end. */
static void note_exit_error(task *k) {
  const char *prefix = k->graph ? "trainrun: " : k->batch ? TY_BATCH_ERROR : NULL;
  if (!prefix || k->reason || k->state != TY_TASK_EXITED || k->exit_code == 0) return;
  char path[4096], why[512];
  if (ty_tasks_log_path(k->owner, k->job_id, k->rank, path, sizeof path) != 0 ||
      ty__log_exit_reason(path, prefix, why, sizeof why) != 0)
    return;
  k->reason = ty_strdup(why);
}

/* A task that ended non-zero while its log's filesystem is full (its
 * output filled it, or something else did) says so in its reason, and the
 * worker warns: its own error lines, and the cause, may be lost. */
static void note_full_log(task *k) {
  if (k->state == TY_TASK_EXITED && k->exit_code == 0) return;
  char dir[4096], why[TY_ERR_LEN];
  struct statvfs st;
  snprintf(dir, sizeof dir, "%s/jobs/%" PRIu64, k->owner->state_dir, k->job_id);
  if (statvfs(dir, &st) != 0 || !ty_log_fs_full_reason(&st, dir, k->reason, why, sizeof why))
    return;
  ty_warn("job %" PRIu64 " rank %" PRIu32 ": ended %s; its log's filesystem (%s) is full: free "
          "space there",
          k->job_id, k->rank, k->state == TY_TASK_EXITED ? "non-zero" : "by a signal", dir);
  free(k->reason);
  k->reason = ty_strdup(why);
}

/* The end is final: the cgroup's accounting, the cgroup gone, the report. */
static void finish(task *k) {
  ty_tasks *t = k->owner;
  if (!k->ended_ms) k->ended_ms = ty_now_ms(); /* reported until acked, traind down or not */
  if (k->in_cgroup) {
    ty_cgroup_task_usage(t->cg, k->job_id, k->rank, &k->usage);
    note_oom(k);
    note_forks_refused(k);
    if (ty_cgroup_task_remove(t->cg, k->job_id, k->rank) != 0)
      ty_warn("job %" PRIu64 " rank %" PRIu32 ": its cgroup could not be removed", k->job_id,
              k->rank);
    k->in_cgroup = false;
  }
  note_exit_error(k);
  note_full_log(k);
  /* Its processes are gone (its cgroup is empty, or it had none): what
   * they left in their TMPDIR goes. */
  ty__task_tmp_remove(t, &k->tmp, k->job_id, k->rank);
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

void ty__task_exited(task *k, int64_t exit_status, int term_signal) {
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
  if (t->n_ended_logs < TY__ENDED_LOGS)
    t->ended_logs[t->n_ended_logs++] = (struct ended_log){k->job_id, k->rank, ENDED_CHECKS};
  /* Whatever the task left behind goes with it, so no stray process keeps
   * writing to the log, holding a GPU or using CPUs the next job gets. */
  bool empty = k->in_cgroup && ty_cgroup_task_empty(t->cg, k->job_id, k->rank);
  if (!k->in_cgroup)
    (void)uv_kill(-k->pid, SIGKILL);
  else if (!empty)
    ty_cgroup_task_kill(t->cg, k->job_id, k->rank);
  ty__fence_remove(t->fence, k->pid);
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
  if (k->in_cgroup && !empty && !ty_cgroup_task_empty(t->cg, k->job_id, k->rank)) {
    uv_timer_start(&k->grace_timer, on_reap_poll, REAP_POLL_MS, REAP_POLL_MS);
    return;
  }
  finish(k);
}

void ty__task_on_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
  ty__task_exited(p->data, exit_status, term_signal);
}

/* A task's pidfd became readable: it exited (reaped here). */
void ty__task_on_pidfd(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  task *k = h->data;
  int64_t code = 0;
  int sig = 0;
  int rc = ty__reap_pidfd(k->pidfd, &code, &sig);
  if (rc == 1) return; /* woken early: it still runs */
  uv_poll_stop(h);
  if (rc != 0) {
    ty_warn("job %" PRIu64 " rank %" PRIu32 ": cannot reap pid %d; counting it killed", k->job_id,
            k->rank, k->pid);
    sig = SIGKILL;
  }
  ty__task_exited(k, code, sig);
}

/* ---- timers ----------------------------------------------------------------- */

static void on_warn(uv_timer_t *h) {
  task *k = h->data;
  if (!k->running) return;
  k->warned = true;
  pid_t script = k->warn_batch_only ? ty__task_script_pid(k->pid) : 0;
  ty_info("job %" PRIu64 " rank %" PRIu32 ": time limit near, sending signal %d%s", k->job_id,
          k->rank, k->warn_signal, script ? " to the batch script alone" : "");
  if (script)
    (void)uv_kill(script, k->warn_signal);
  else
    ty__task_signal(k, k->warn_signal);
  /* The controller records it in the job's history. */
  ty_task_report r;
  fill_report(k, &r);
  r.warned_signal = k->warn_signal;
  if (k->owner->on_end) k->owner->on_end(k->owner, &r, k->owner->ud);
}

/* The limit and warning timers of k for a limit of time_limit_s from
 * k->limit_from_ms (0: none); a deadline already past fires at once. */
static void arm_limit(task *k, uint32_t time_limit_s, bool warn) {
  uint64_t now = uv_now(k->owner->loop), ran = now - k->limit_from_ms;
  uint64_t limit_ms = (uint64_t)time_limit_s * 1000u;
  uv_timer_stop(&k->limit_timer);
  if (time_limit_s > 0)
    uv_timer_start(&k->limit_timer, on_time_limit, limit_ms > ran ? limit_ms - ran : 0, 0);
  if (!warn) return;
  uv_timer_stop(&k->warn_timer);
  if (time_limit_s > 0 && k->warn_signal > 0) {
    uint64_t at = k->warn_before_s < time_limit_s ? limit_ms - k->warn_before_s * 1000ull : 0;
    uv_timer_start(&k->warn_timer, on_warn, at > ran ? at - ran : 0, 0);
  }
}

void ty__task_start_timers(ty_tasks *t, task *k, uint32_t time_limit_s, uint32_t warn_before_s) {
  uv_timer_init(t->loop, &k->grace_timer);
  uv_timer_init(t->loop, &k->limit_timer);
  uv_timer_init(t->loop, &k->warn_timer);
  k->open_handles = 4;
  k->warn_before_s = warn_before_s;
  k->limit_from_ms = uv_now(t->loop);
  arm_limit(k, time_limit_s, true);
}

int ty_tasks_set_limit(ty_tasks *t, uint64_t job_id, uint32_t time_limit_s) {
  for (task *k = t->head; k; k = k->next) {
    /* A rank being killed (its limit, a cancel) keeps its course. */
    if (k->job_id != job_id || !k->running || uv_is_active((uv_handle_t *)&k->grace_timer))
      continue;
    ty_info("job %" PRIu64 " rank %" PRIu32 ": time limit now %" PRIu32 " s", job_id, k->rank,
            time_limit_s);
    arm_limit(k, time_limit_s, !k->warned); /* a warning sent is not sent again */
  }
  return 0;
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

void ty_tasks_ack(ty_tasks *t, uint64_t job_id, uint32_t rank, int64_t ended_ms) {
  for (task *k = t->head; k; k = k->next) {
    if (k->job_id == job_id && k->rank == rank && !k->running && !k->acked &&
        (!ended_ms || k->ended_ms == ended_ms)) {
      k->acked = true;
      maybe_free_task(k);
      return;
    }
  }
}

int ty_tasks_get(const ty_tasks *t, uint64_t job_id, uint32_t rank, ty_task_report *out) {
  const task *k = ty__task_find(t, job_id, rank);
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
  const task *k = ty__task_find(t, job_id, rank);
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
