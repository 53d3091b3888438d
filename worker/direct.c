/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Starting a task without the exec helper (issues 15 and 20: the worker's
 * cost per task, rlaunch's latency). The worker's own thread clones a child that shares its
 * memory and runs until the task's exec (CLONE_VM, as glibc's posix_spawn,
 * the wait below in place of its CLONE_VFORK), so there is no copy of the
 * worker's page tables and no exec of trainyard-exec. The child takes trainyard-exec's steps, in
 * its order (worker/exec.c has the reasons):
 *
 *   1. default signal dispositions and an empty mask (as uv_spawn's child),
 *      stdio on 0, 1, 2;
 *   2. a new session (--ctty: the pty becomes the controlling terminal);
 *   3. every cgroup of the task joined (opened by the worker before the
 *      clone): its pid into a cgroup.procs, "0" into a v1 tasks file; then
 *      every descriptor above 2 made close-on-exec (close_range);
 *   4. setgroups, setgid, setuid by raw system calls (glibc's wrappers
 *      would change every thread of the worker: the child shares them), and
 *      the check that root cannot be regained;
 *      then the submitter's umask and soft resource limits (Job.process,
 *      each soft limit capped at the hard one), as trainyard-exec's --umask
 *      and --rlimit;
 *   5. SIGKILL when the worker dies; the worker must still be its parent;
 *   6. chdir(cwd) as the task's user, then the command searched in PATH of
 *      the task's environment, as execvp does (ENOEXEC: /bin/sh runs it).
 *
 * The child touches only what the worker prepared (the plan) and makes
 * system calls; on a failed step it records the step and errno in the
 * plan and exits 127. The worker waits (every signal blocked) until the
 * child has exec'd or exited, which closes the child's copy of a
 * close-on-exec pipe, so the outcome is known when ty__spawn_direct
 * returns. The wait is bounded (START_WAIT_MS, as the helper's in
 * spawn.c): from its setuid to its exec the child is the task user's
 * process, which that user may stop with SIGSTOP; CLONE_VFORK would then
 * hold the worker's loop thread for ever (no heartbeats, every job on the
 * node lost), so the child is a CLONE_VM one without it, killed and
 * reaped when it has not exec'd in time. The child comes with a pidfd
 * (CLONE_PIDFD), readable when the task exits; the loop polls it and
 * waitid(P_PIDFD) reaps the task.
 *
 * An interactive task's pipes or pty are made by its iotask (attach.c) and
 * arrive here as inherited fds like a plain task's log. ThreadSanitizer
 * builds start tasks through uv_spawn and trainyard-exec (spawn.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/worker_internal.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define MAX_CGROUP_FDS 16
#define CHILD_STACK (64 * 1024)
#define DEFAULT_PATH "/bin:/usr/bin" /* execvp's, for an environment without PATH */
#define START_WAIT_MS 10000          /* a child not exec'd by then is killed */

/* What the child does, prepared by the worker, and what it reports. */
typedef struct plan {
  int stdio[3];
  int cg_fds[MAX_CGROUP_FDS];
  bool cg_self[MAX_CGROUP_FDS]; /* a v1 tasks file: "0" moves this thread */
  int n_cg;
  bool set_user, ctty, set_umask;
  mode_t umask;                    /* the submitter's, with set_umask */
  const ty_proc_settings *process; /* its soft limits, set before the exec */
  uid_t uid;
  gid_t gid;
  gid_t *groups;
  size_t n_groups;
  pid_t parent;
  const char *cwd;
  char *const *argv;
  char *const *envp;
  const char *path; /* PATH of the task's environment */
  char **sh_argv;   /* /bin/sh FILE ARGS... for a file without #! (ENOEXEC) */
  int sync_fd;      /* the write end the worker waits on (close-on-exec) */
  /* out, written by the child before it exits 127 */
  const char *step;
  int err;
  int cg_failed; /* which cgroup could not be joined */
} plan;

/* The child's stack: one start at a time, on the loop thread. */
static _Alignas(64) char child_stack[CHILD_STACK];

static int child_fail(plan *p, const char *step, int err) {
  p->step = step;
  p->err = err;
  _exit(127);
}

/* execve of file, or of /bin/sh with it when the kernel cannot run it. */
static void exec_one(plan *p, const char *file) {
  execve(file, p->argv, p->envp);
  if (errno != ENOEXEC) return;
  p->sh_argv[1] = (char *)file;
  execve("/bin/sh", p->sh_argv, p->envp);
  errno = ENOEXEC;
}

/* execvp's search: every PATH entry ("" is the cwd), EACCES remembered. */
static void exec_search(plan *p) {
  const char *file = p->argv[0];
  if (strchr(file, '/')) {
    exec_one(p, file);
    return;
  }
  size_t flen = strlen(file);
  char buf[PATH_MAX + NAME_MAX + 2];
  bool eacces = false;
  for (const char *d = p->path;; d++) {
    const char *end = strchrnul(d, ':');
    size_t dlen = (size_t)(end - d);
    if (dlen + flen + 2 <= sizeof buf) {
      memcpy(buf, dlen ? d : ".", dlen ? dlen : 1);
      size_t at = dlen ? dlen : 1;
      buf[at] = '/';
      memcpy(buf + at + 1, file, flen + 1);
      exec_one(p, buf);
      if (errno == EACCES)
        eacces = true;
      else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV &&
               errno != ETIMEDOUT)
        return;
    }
    if (!*end) break;
    d = end;
  }
  errno = eacces ? EACCES : ENOENT;
}

/* Puts the task's stdio on 0, 1, 2 (inheritable); fds below 3 moved first. */
static void child_stdio(plan *p) {
  for (int i = 0; i < 3; i++)
    if (p->stdio[i] < 3 && p->stdio[i] != i &&
        (p->stdio[i] = fcntl(p->stdio[i], F_DUPFD_CLOEXEC, 3)) < 0)
      child_fail(p, "stdio", errno);
  for (int i = 0; i < 3; i++) {
    int rc = p->stdio[i] == i ? fcntl(i, F_SETFD, 0) : dup2(p->stdio[i], i);
    if (rc < 0) child_fail(p, "stdio", errno);
  }
}

/* Every descriptor above stdio closes at the exec: the task gets none of
 * the worker's, whether the worker forgot close-on-exec on it, inherited it
 * from whoever started it, or a library's thread opened it meanwhile. */
static void child_cloexec(plan *p) {
  if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0) return;
  if (errno == ENOSYS) return; /* before Linux 5.9: close-on-exec flags only */
  /* Before 5.11 (no CLOSE_RANGE_CLOEXEC): closed now, all but the pipe
   * the worker waits on, which closes at the exec itself. */
  unsigned s = (unsigned)p->sync_fd;
  if ((s > 3 && syscall(SYS_close_range, 3u, s - 1, 0u) != 0) ||
      syscall(SYS_close_range, s + 1, ~0u, 0u) != 0)
    child_fail(p, "fds", errno);
}

static void child_user(plan *p) {
  if (syscall(SYS_setgroups, p->n_groups, p->groups) != 0) child_fail(p, "user", errno);
  if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) != 0) child_fail(p, "user", errno);
  if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) != 0) child_fail(p, "user", errno);
  if (p->uid != 0 && syscall(SYS_setuid, 0) == 0) child_fail(p, "root", EPERM);
}

/* "PID\n" into buf (no stdio in the child); its length. */
/* The submitter's soft limits, each capped at the hard limit (which stays). */
static void child_limits(plan *p) {
  for (int l = 0; p->process && l < TY_LIMIT_COUNT; l++) {
    struct rlimit r;
    if (!p->process->has_soft[l]) continue;
    if (getrlimit(ty_limit_rlimit(l), &r) != 0) child_fail(p, "limits", errno);
    if (p->process->soft[l] < (uint64_t)r.rlim_max)
      r.rlim_cur = (rlim_t)p->process->soft[l];
    else
      r.rlim_cur = r.rlim_max;
    if (setrlimit(ty_limit_rlimit(l), &r) != 0) child_fail(p, "limits", errno);
  }
}

static int pid_line(pid_t pid, char *buf) {
  char rev[16];
  int n = 0, len = 0;
  do
    rev[n++] = (char)('0' + pid % 10);
  while ((pid /= 10) > 0);
  while (n > 0)
    buf[len++] = rev[--n];
  buf[len++] = '\n';
  return len;
}

static int child_main(void *arg) {
  plan *p = arg;
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  for (int n = 1; n < 32; n++)
    if (n != SIGKILL && n != SIGSTOP) sigaction(n, &dfl, NULL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  child_stdio(p);
  if (setsid() < 0) child_fail(p, "session", errno);
  if (p->ctty && ioctl(STDIN_FILENO, TIOCSCTTY, 0) != 0) child_fail(p, "ctty", errno);
  char pid[24];
  int n = pid_line(getpid(), pid);
  for (int i = 0; i < p->n_cg; i++) {
    bool self = p->cg_self[i];
    if (write(p->cg_fds[i], self ? "0\n" : pid, self ? 2 : (size_t)n) != (self ? 2 : n)) {
      p->cg_failed = i;
      child_fail(p, "cgroup", errno);
    }
  }
  child_cloexec(p);
  if (p->set_user) child_user(p);
  if (p->set_umask) umask(p->umask);
  child_limits(p);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != p->parent) child_fail(p, "worker", ESRCH);
  if (p->cwd && p->cwd[0] && chdir(p->cwd) != 0) child_fail(p, "cwd", errno);
  exec_search(p);
  return child_fail(p, "exec", errno);
}

/* ---- the worker's side ------------------------------------------------------------------------
 */

static const char *env_path(char *const *env) {
  for (size_t i = 0; env && env[i]; i++)
    if (!strncmp(env[i], "PATH=", 5)) return env[i] + 5;
  return DEFAULT_PATH;
}

static int open_cgroups(const ty__spawn *s, plan *p, char *err, size_t len) {
  for (size_t i = 0; s->procs && s->procs[i]; i++) {
    if (p->n_cg == MAX_CGROUP_FDS)
      return ty_errf(err, len, TY_EIO, "cannot start the task on node %s: more than %d cgroups",
                     s->node, MAX_CGROUP_FDS);
    int fd = open(s->procs[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0)
      return ty_errf(err, len, TY_EIO, "cannot start the task on node %s: cannot join %s: %s",
                     s->node, s->procs[i], strerror(errno));
    size_t len = strlen(s->procs[i]);
    p->cg_self[p->n_cg] = len >= 6 && !strcmp(s->procs[i] + len - 6, "/tasks");
    p->cg_fds[p->n_cg++] = fd;
  }
  return 0;
}

/* The launch's error for a child that stopped at p->step. */
static int child_error(const ty__spawn *s, const plan *p, char *err, size_t len) {
  char line[1200], what[1024];
  const char *step = p->step ? p->step : "start";
  if (!strcmp(step, "cgroup"))
    snprintf(what, sizeof what, "cannot join %s: %s", s->procs[p->cg_failed], strerror(p->err));
  else if (!strcmp(step, "root"))
    snprintf(what, sizeof what, "root could be regained after setuid");
  else if (!strcmp(step, "worker"))
    snprintf(what, sizeof what, "trainworkerd exited before the task started");
  else if (!strcmp(step, "limits"))
    snprintf(what, sizeof what, "cannot set the submitter's soft resource limits: %s",
             strerror(p->err));
  else if (!strcmp(step, "ctty"))
    snprintf(what, sizeof what, "cannot make the pty the controlling terminal: %s",
             strerror(p->err));
  else
    snprintf(what, sizeof what, "%s: %s", step, strerror(p->err));
  snprintf(line, sizeof line, "%s\t%d\t%s", step, p->err, what);
  return ty__spawn_verdict(s, line, err, len);
}

/* Waits until the child has exec'd or exited (both close its copy of the
 * pipe's write end): whether it did within START_WAIT_MS. */
static bool wait_started(int sync_fd) {
  struct pollfd pf = {.fd = sync_fd, .events = POLLIN};
  int r;
  do
    r = poll(&pf, 1, START_WAIT_MS);
  while (r < 0 && errno == EINTR);
  return r > 0;
}

/* Clones the child and waits for its exec, every signal blocked meanwhile
 * (no handler of the worker may run in the child, which shares its memory,
 * nor interrupt the wait): its pid, or -1 with errno; *started false when
 * it did not exec or exit in time. */
static int clone_child(plan *p, int *pidfd, bool *started) {
  int sync[2];
  if (pipe2(sync, O_CLOEXEC) != 0) return -1;
  p->sync_fd = sync[1];
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int pid = clone(child_main, child_stack + sizeof child_stack, CLONE_VM | CLONE_PIDFD | SIGCHLD, p,
                  pidfd);
  int e = errno;
  close(sync[1]);
  *started = pid >= 0 && wait_started(sync[0]);
  close(sync[0]);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = e;
  return pid;
}

int ty__spawn_direct(const ty__spawn *s, int *out_pid, int *out_pidfd, char *err, size_t len) {
  plan p = {.stdio = {s->stdio[0].data.fd, s->stdio[1].data.fd, s->stdio[2].data.fd},
            .set_user = s->who->switch_user,
            .ctty = s->ctty,
            .set_umask = s->process && s->process->has_umask,
            .process = s->process,
            .umask = s->process ? (mode_t)(s->process->umask & 0777) : 0,
            .uid = (uid_t)s->who->uid,
            .gid = (gid_t)s->who->gid,
            .n_groups = s->who->n_groups,
            .parent = getpid(),
            .cwd = s->cwd,
            .envp = s->env,
            .path = env_path(s->env)};
  int rc = open_cgroups(s, &p, err, len);
  p.groups = ty_xcalloc(p.n_groups ? p.n_groups : 1, sizeof *p.groups);
  for (size_t i = 0; i < p.n_groups; i++)
    p.groups[i] = (gid_t)s->who->groups[i];
  /* argv NULL-terminated (a decoded spec's is not), and /bin/sh's. */
  p.sh_argv = ty_xcalloc(s->argc + 2, sizeof *p.sh_argv);
  char **argv = ty_xcalloc(s->argc + 1, sizeof *argv);
  p.sh_argv[0] = "/bin/sh";
  for (size_t i = 0; i < s->argc; i++)
    p.sh_argv[i + 1] = argv[i] = (char *)s->argv[i];
  p.argv = argv;
  int pidfd = -1, pid = -1;
  bool started = false;
  if (rc == 0 && (pid = clone_child(&p, &pidfd, &started)) < 0)
    rc = ty_errf(err, len, TY_EIO, "cannot start the task on node %s: clone: %s", s->node,
                 strerror(errno));
  if (rc == 0 && !started) {
    ty__kill_pidfd(pid, pidfd); /* the child is gone: the plan may go */
    rc = ty_errf(err, len, TY_ETIMEDOUT,
                 "cannot start the task on node %s: it did not reach its exec within %d s "
                 "(stopped on the way, as its user may do)",
                 s->node, START_WAIT_MS / 1000);
  }
  for (int i = 0; i < p.n_cg; i++)
    close(p.cg_fds[i]);
  free(p.groups);
  free(p.sh_argv);
  free(argv);
  if (rc != 0) return rc;
  if (p.step) { /* the child exited 127 without exec'ing */
    siginfo_t si;
    (void)waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
    close(pidfd);
    return child_error(s, &p, err, len);
  }
  *out_pid = pid;
  *out_pidfd = pidfd;
  return 0;
}

int ty__reap_pidfd(int pidfd, int64_t *out_status, int *out_signal) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) != 0) return TY_EIO;
  if (si.si_pid == 0) return 1; /* not yet */
  bool killed = si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED;
  *out_status = killed ? 0 : si.si_status;
  *out_signal = killed ? si.si_status : 0;
  return 0;
}

void ty__kill_pidfd(int pid, int pidfd) {
  kill(pid, SIGKILL);
  siginfo_t si;
  (void)waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
  close(pidfd);
}
