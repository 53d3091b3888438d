/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fence: a child the worker forks once at start, which outlives the
 * worker only to kill its tasks. A worker killed outright (SIGKILL, a
 * crash, the OOM killer) takes no step of its own: its tasks, each in a
 * session of its own (only its first process dies with the worker,
 * PR_SET_PDEATHSIG), would run on unseen while the controller, once the
 * node is DOWN, requeues their jobs on other nodes, so that one job runs
 * in two places. The fence reads a pipe whose only writer is the worker
 * (close-on-exec: no task holds it); at its end (the worker gone, however
 * it went) it SIGKILLs every task: each task cgroup under the worker's, as
 * a restarted worker's reap does (task.c), and each process group the
 * worker registered (the only handle without cgroups), then exits. A
 * worker that stops in order has ended its tasks first, and leaves the
 * fence nothing to kill.
 *
 * Messages, one line each: "+PGID" a task started (PGID: its session and
 * process group), "-PGID" the worker reaped it and killed what was left of
 * its group (task.c), in the same loop callback. A group id is not reused
 * while any process of the group lives, so only a worker that dies inside
 * that callback could leave the fence an id that is free again.
 *
 * It is forked before the worker starts any thread (the auth queue's pool
 * starts with the first request) and allocates nothing after the fork but
 * in the cgroup sweep; it ignores the signals a service stop sends the
 * worker's whole group (SIGTERM, SIGINT, SIGHUP) and closes every
 * descriptor but the pipe and stderr.
 */
#include "worker/worker_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define FENCE_GROUPS_MAX 65536 /* tasks on one node at once */

struct ty__fence {
  int fd; /* the pipe's write end; -1 once the fence is gone */
  pid_t pid;
};

typedef struct groups {
  pid_t *ids;
  size_t n;
} groups;

static void groups_apply(groups *g, char op, pid_t id) {
  for (size_t i = 0; i < g->n; i++)
    if (g->ids[i] == id) {
      if (op == '-') g->ids[i] = g->ids[--g->n];
      return;
    }
  if (op == '+' && g->n < FENCE_GROUPS_MAX) g->ids[g->n++] = id;
}

typedef struct cgroup_sweep {
  ty_cgroups *cg;
  size_t n;
} cgroup_sweep;

static void kill_cgroup_task(uint64_t job, uint32_t rank, void *ud) {
  cgroup_sweep *s = ud;
  ty_cgroup_task_kill(s->cg, job, rank);
  s->n++;
}

/* The worker is gone: every task dies. */
static void kill_all(const groups *g, ty_cgroups *cg) {
  size_t killed = 0;
  for (size_t i = 0; i < g->n; i++)
    killed += kill(-g->ids[i], SIGKILL) == 0;
  cgroup_sweep s = {cg, 0};
  if (cg) ty_cgroup_scan(cg, kill_cgroup_task, &s);
  char line[160];
  int n = snprintf(line, sizeof line,
                   "trainworkerd fence: the worker is gone: killed %zu task process group%s and "
                   "%zu task cgroup%s\n",
                   killed, killed == 1 ? "" : "s", s.n, s.n == 1 ? "" : "s");
  if (killed || s.n) (void)!write(2, line, (size_t)n);
}

static void fence_main(int rfd, ty_cgroups *cg, groups g) {
  static const int ignored[] = {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
    signal(ignored[i], SIG_IGN);
  prctl(PR_SET_NAME, "ty-fence");
  if (rfd != 3) {
    dup2(rfd, 3);
    rfd = 3;
  }
  syscall(SYS_close_range, 4u, ~0u, 0u);
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) dup2(null, 0), dup2(null, 1), close(null);
  char buf[4096], line[32];
  size_t len = 0;
  for (;;) {
    ssize_t r = read(rfd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break; /* the worker is gone */
    for (ssize_t i = 0; i < r; i++) {
      if (buf[i] != '\n') {
        if (len < sizeof line - 1) line[len++] = buf[i];
        continue;
      }
      line[len] = '\0';
      long id = len > 1 ? strtol(line + 1, NULL, 10) : 0;
      if (id > 1 && (line[0] == '+' || line[0] == '-')) groups_apply(&g, line[0], (pid_t)id);
      len = 0;
    }
  }
  kill_all(&g, cg);
  _exit(0);
}

ty__fence *ty__fence_start(ty_cgroups *cg) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return NULL;
  ty__fence *f = calloc(1, sizeof *f);
  groups g = {malloc(FENCE_GROUPS_MAX * sizeof *g.ids), 0}; /* the child's */
  pid_t pid = f && g.ids ? fork() : -1;
  if (pid == 0) {
    close(p[1]);
    fence_main(p[0], cg, g);
  }
  free(g.ids);
  close(p[0]);
  if (pid < 0) {
    close(p[1]);
    free(f);
    return NULL;
  }
  f->fd = p[1];
  f->pid = pid;
  return f;
}

static void say(ty__fence *f, char op, pid_t pgid) {
  if (!f || f->fd < 0 || pgid <= 1) return;
  char line[32];
  int n = snprintf(line, sizeof line, "%c%d\n", op, (int)pgid);
  ssize_t w;
  do
    w = write(f->fd, line, (size_t)n);
  while (w < 0 && errno == EINTR);
  if (w == n) return;
  ty_warn("the fence (pid %d) is gone (%s): tasks will outlive a worker killed outright",
          (int)f->pid, w < 0 ? strerror(errno) : "short write");
  close(f->fd);
  f->fd = -1;
}

void ty__fence_add(ty__fence *f, pid_t pgid) {
  say(f, '+', pgid);
}

void ty__fence_remove(ty__fence *f, pid_t pgid) {
  say(f, '-', pgid);
}

pid_t ty__fence_pid(const ty__fence *f) {
  return f ? f->pid : -1;
}

void ty__fence_stop(ty__fence *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd); /* the fence kills what is left, reaped below */
  int st;
  while (waitpid(f->pid, &st, 0) < 0 && errno == EINTR) {
  }
  free(f);
}
