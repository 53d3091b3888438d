/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainyard-exec: the few steps between trainworkerd's fork and a task's
 * exec that libuv's uv_spawn cannot take (docs/security.md, "Tasks run as
 * their user"), for ThreadSanitizer builds; other builds take the same
 * steps in the worker's own child (worker/direct.c), kept in step with
 * this file.
 * trainworkerd spawns it with the task's stdio and an empty environment:
 * the task's comes on --env-fd (NUL-ended "NAME=value" entries), so nothing
 * a user puts there (LD_PRELOAD, LD_LIBRARY_PATH, a sanitizer's options)
 * reaches the dynamic loader or the runtime of this root process; it is
 * read first and becomes the environment the command is exec'd with;
 * every descriptor above stdio is then made close-on-exec (close_range),
 * so the task gets none of trainworkerd's. It then, in this order:
 *
 *   1. starts a new session (the task's pid is its process group's id) and,
 *      with --ctty, makes its stdin terminal the controlling one (^C and job
 *      control for pty tasks);
 *   2. joins every --cgroup FILE (its pid into a cgroup.procs, "0" into a
 *      cgroup v1 tasks file), so the task and everything it ever forks live
 *      in the task's cgroup;
 *   3. with --uid: setgroups(--groups), setgid(--gid), setuid(--uid), and
 *      checks that root cannot be regained (uv_spawn's setuid would drop
 *      the supplementary groups initgroups gives a login);
 *      then sets --umask OCTAL (the submitter's, as sbatch's SLURM_UMASK)
 *      and each --rlimit RESOURCE:SOFT (RLIMIT_* number, the submitter's
 *      soft limit, capped at the hard one, which stays);
 *   4. asks for SIGKILL when trainworkerd dies (after the uid change, which
 *      would reset it), unless the worker is already gone;
 *   5. changes into --cwd as the task's user, then execvp()s the command
 *      with PATH from its environment.
 *
 * Nothing here looks up users: trainworkerd resolved the groups, so this
 * program makes system calls only and cannot hang on NSS.
 *
 * Failure protocol: fd --status-fd (a pipe, close-on-exec) gets one line
 * "STEP<TAB>ERRNO<TAB>MESSAGE" and the helper exits 127; a successful exec
 * closes the pipe with nothing written.
 *
 * A second, unrelated mode, `--wait-status FILE -- CMD`, runs inside a
 * batch script's task as its user: worker/exec_wait.c. `--version` alone
 * prints the build's version, as every Trainyard program does.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/base/version.h"
#include "worker/exec_wait.h"

#define MAX_CGROUPS 16
#define MAX_GROUPS 1024
#define MAX_RLIMITS 16

typedef struct plan {
  int status_fd;
  const char *cgroups[MAX_CGROUPS];
  int n_cgroups;
  bool set_user, ctty, set_umask;
  mode_t umask;                /* --umask, with set_umask */
  int rlimit_res[MAX_RLIMITS]; /* --rlimit RESOURCE:SOFT */
  unsigned long long rlimit_soft[MAX_RLIMITS];
  int n_rlimits;
  uid_t uid;
  gid_t gid;
  gid_t groups[MAX_GROUPS];
  int n_groups;
  const char *cwd;
  char **argv;
  int env_fd; /* -1: none (an empty environment) */
} plan;

static int status_fd = -1;

static void fail(const char *step, int err, const char *fmt, const char *arg) {
  char line[1024];
  int n = snprintf(line, sizeof line, "%s\t%d\t", step, err);
  if (n > 0 && n < (int)sizeof line)
    n += snprintf(line + n, sizeof line - (size_t)n, fmt, arg, strerror(err));
  if (status_fd >= 0 && n > 0 && write(status_fd, line, (size_t)n) < 0) n = 0;
  fprintf(stderr, "trainyard-exec: %s\n", strchr(strchr(line, '\t') + 1, '\t') + 1);
  _exit(127);
}

static unsigned long number(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end) fail("usage", EINVAL, "%s: not a number (%s)", what);
  return v;
}

static mode_t octal_umask(const char *s) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 8);
  if (errno || end == s || *end || v > 0777)
    fail("usage", EINVAL, "%s: not an octal umask 0-0777 (%s)", "--umask");
  return (mode_t)v;
}

static void parse_rlimit(plan *p, const char *v) {
  char *end;
  errno = 0;
  long res = strtol(v, &end, 10);
  if (errno || end == v || *end != ':' || res < 0 || res >= RLIM_NLIMITS)
    fail("usage", EINVAL, "%s: not RESOURCE:SOFT (%s)", "--rlimit");
  const char *soft = end + 1;
  unsigned long long n = strtoull(soft, &end, 10);
  if (errno || end == soft || *end) fail("usage", EINVAL, "%s: not RESOURCE:SOFT (%s)", "--rlimit");
  p->rlimit_res[p->n_rlimits] = (int)res;
  p->rlimit_soft[p->n_rlimits++] = n;
}

/* Each --rlimit's soft limit, capped at the hard limit (which stays). */
static void set_limits(const plan *p) {
  for (int i = 0; i < p->n_rlimits; i++) {
    struct rlimit r;
    if (getrlimit(p->rlimit_res[i], &r) != 0) fail("limits", errno, "getrlimit: %s%s", "");
    r.rlim_cur = p->rlimit_soft[i] < r.rlim_max ? (rlim_t)p->rlimit_soft[i] : r.rlim_max;
    if (setrlimit(p->rlimit_res[i], &r) != 0) fail("limits", errno, "setrlimit: %s%s", "");
  }
}

static void parse_groups(plan *p, char *list) {
  for (char *save = NULL, *g = strtok_r(list, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
    if (p->n_groups == MAX_GROUPS) fail("usage", E2BIG, "%s: too many groups (%s)", "--groups");
    p->groups[p->n_groups++] = (gid_t)number(g, "--groups");
  }
}

static void parse(plan *p, int argc, char **argv) {
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *opt = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(opt, "--ctty")) {
      p->ctty = true;
      continue;
    }
    if (!v) fail("usage", EINVAL, "%s needs a value (%s)", opt);
    i++;
    if (!strcmp(opt, "--status-fd"))
      status_fd = p->status_fd = (int)number(v, opt);
    else if (!strcmp(opt, "--env-fd"))
      p->env_fd = (int)number(v, opt);
    else if (!strcmp(opt, "--cgroup") && p->n_cgroups < MAX_CGROUPS)
      p->cgroups[p->n_cgroups++] = v;
    else if (!strcmp(opt, "--uid"))
      p->uid = (uid_t)number(v, opt), p->set_user = true;
    else if (!strcmp(opt, "--gid"))
      p->gid = (gid_t)number(v, opt);
    else if (!strcmp(opt, "--groups"))
      parse_groups(p, argv[i]);
    else if (!strcmp(opt, "--cwd"))
      p->cwd = v;
    else if (!strcmp(opt, "--rlimit") && p->n_rlimits < MAX_RLIMITS)
      parse_rlimit(p, v);
    else if (!strcmp(opt, "--umask"))
      p->umask = octal_umask(v), p->set_umask = true;
    else
      fail("usage", EINVAL, "unknown option %s (%s)", opt);
  }
  if (i + 1 >= argc) fail("usage", EINVAL, "%s: no command after -- (%s)", "trainyard-exec");
  p->argv = argv + i + 1;
}

/* Whether path is a cgroup v1 tasks file: "0" there moves this thread. */
static bool tasks_file(const char *path) {
  size_t n = strlen(path);
  return n >= 6 && !strcmp(path + n - 6, "/tasks");
}

static void join_cgroups(const plan *p) {
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  for (int i = 0; i < p->n_cgroups; i++) {
    bool self = tasks_file(p->cgroups[i]);
    int fd = open(p->cgroups[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, self ? "0\n" : pid, self ? 2 : (size_t)n) != (self ? 2 : n))
      fail("cgroup", errno, "cannot join %s: %s", p->cgroups[i]);
    close(fd);
  }
}

#define MAX_ENV_BYTES (64u << 20)
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

/* The task's environment from --env-fd (closed here): NUL-ended entries,
 * as trainworkerd wrote them. */
static void read_env(const plan *p) {
  static char *none[] = {NULL};
  environ = none;
  if (p->env_fd < 0) return;
  size_t len = 0, cap = 65536;
  char *buf = malloc(cap);
  for (;;) {
    if (buf && len == cap) {
      if (cap >= MAX_ENV_BYTES) fail("env", E2BIG, "%sthe environment is too large (%s)", "");
      buf = realloc(buf, cap *= 2);
    }
    if (!buf) fail("env", ENOMEM, "%scannot hold the environment: %s", "");
    ssize_t n = read(p->env_fd, buf + len, cap - len);
    if (n == 0) break;
    if (n < 0 && errno != EINTR) fail("env", errno, "%scannot read the environment: %s", "");
    if (n > 0) len += (size_t)n;
  }
  close(p->env_fd);
  size_t count = 0;
  for (size_t i = 0; i < len; i++)
    count += buf[i] == '\0';
  char **env = calloc(count + 1, sizeof *env);
  if (!env) fail("env", ENOMEM, "%scannot hold the environment: %s", "");
  for (size_t i = 0, k = 0, start = 0; i < len; i++)
    if (buf[i] == '\0') env[k++] = buf + start, start = i + 1;
  environ = env;
}

/* None of trainworkerd's descriptors but stdio reaches the task: all
 * close at the exec (before Linux 5.11, all but the status pipe close now;
 * before 5.9, the close-on-exec flags are all there is). */
static void cloexec_all(const plan *p) {
  if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0 || errno == ENOSYS) return;
  unsigned s = p->status_fd >= 3 ? (unsigned)p->status_fd : 2u;
  if ((s > 3 && syscall(SYS_close_range, 3u, s - 1, 0u) != 0) ||
      syscall(SYS_close_range, s + 1, ~0u, 0u) != 0)
    fail("fds", errno, "%scannot close trainworkerd's descriptors: %s", "");
}

static void become_user(const plan *p) {
  if (setgroups((size_t)p->n_groups, p->groups) != 0)
    fail("user", errno, "setgroups for uid %s: %s", "the task's user");
  if (setgid(p->gid) != 0) fail("user", errno, "setgid: %s%s", "");
  if (setuid(p->uid) != 0) fail("user", errno, "setuid: %s%s", "");
  if (p->uid != 0 && setuid(0) == 0)
    fail("user", EPERM, "%sroot could be regained after setuid (%s)", "");
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "--version")) {
    ty_version_print(stdout, "trainyard-exec");
    return 0;
  }
  if (argc > 1 && !strcmp(argv[1], "--wait-status")) return ty_exec_wait_main(argc, argv);
  plan p = {.status_fd = -1, .env_fd = -1};
  parse(&p, argc, argv);
  if (p.status_fd >= 0) fcntl(p.status_fd, F_SETFD, FD_CLOEXEC);
  read_env(&p);
  cloexec_all(&p);
  pid_t parent = getppid();
  if (setsid() < 0 && errno != EPERM) fail("session", errno, "setsid: %s%s", "");
  if (p.ctty && ioctl(STDIN_FILENO, TIOCSCTTY, 0) != 0)
    fail("session", errno, "cannot make the pty the controlling terminal: %s%s", "");
  join_cgroups(&p);
  if (p.set_user) become_user(&p);
  if (p.set_umask) umask(p.umask);
  set_limits(&p);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    fail("worker", ESRCH, "%strainworkerd exited before the task started (%s)", "");
  if (p.cwd && p.cwd[0] && chdir(p.cwd) != 0) fail("cwd", errno, "cwd %s: %s", p.cwd);
  execvp(p.argv[0], p.argv);
  fail("exec", errno, "%s: %s", p.argv[0]);
  return 127;
}
