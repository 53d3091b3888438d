/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Starting a task's process as its user (docs/security.md): who it runs as
 * on this node, its log file, and the spawn through trainyard-exec
 * (worker/exec.c), whose status pipe tells whether the command itself
 * started.
 *
 *   - A root worker runs a task with the submitter's uid (LaunchTask's
 *     run_as, from the MUNGE credential), its gid and the uid's
 *     supplementary groups (getgrouplist: what initgroups gives a login). A
 *     uid without a passwd entry on this node fails the launch. A job
 *     without run_as (stored before authentication) is refused.
 *   - A worker that is not root (development) runs every task as itself.
 *   - Logs are created 0600 and owned by the task's user, opened without
 *     following links (the job directory is the worker's, 0755, and this
 *     job's: job_dir.c). A run appends to a log of its user (a requeue);
 *     one of another user is replaced, never given to the task's.
 *
 * The lookups (getpwuid_r, getgrouplist) are NSS calls on the loop thread,
 * answered from files or nscd/sssd caches on a node, and remembered for
 * the next launches of the same submitter while /etc/passwd, /etc/group
 * and /etc/nsswitch.conf are unchanged, up to 30 s (usercache.c); the
 * helper itself makes system calls only. Waiting for the helper's status
 * is bounded (HELPER_WAIT_MS), as uv_spawn itself waits for its exec.
 * Only ThreadSanitizer builds start tasks through the helper; others start
 * them without it (direct.c), whose failures are turned into the same
 * errors here (ty__spawn_verdict).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/worker_internal.h"

#define HELPER_WAIT_MS 10000
#define MAX_GROUPS 1024

/* ---- who ------------------------------------------------------------------------------------- */

static void fill_from(const struct passwd *pw, ty__runas *out) {
  snprintf(out->user, sizeof out->user, "%s", pw->pw_name);
  snprintf(out->home, sizeof out->home, "%s", pw->pw_dir);
  snprintf(out->shell, sizeof out->shell, "%s",
           pw->pw_shell && pw->pw_shell[0] ? pw->pw_shell : "/bin/sh");
}

static void runs_as_self(ty__runas *out) {
  char buf[16384];
  struct passwd pw, *res = NULL;
  out->uid = (uint32_t)geteuid();
  out->gid = (uint32_t)getegid();
  if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) == 0 && res)
    fill_from(res, out);
  else
    snprintf(out->user, sizeof out->user, "uid %u", out->uid);
}

/* The passwd entry and groups of spec's submitter, from NSS. */
static int look_up(const ty_task_spec *spec, const char *node, ty__runas *out, char *err,
                   size_t len) {
  char buf[16384];
  struct passwd pw, *res = NULL;
  int e = getpwuid_r((uid_t)spec->uid, &pw, buf, sizeof buf, &res);
  if (e != 0 || !res)
    return ty_errf(err, len, TY_ENOTFOUND,
                   "uid %u (%s) is unknown on node %s: no passwd entry, "
                   "so the job cannot run as its submitter here",
                   spec->uid, spec->user && spec->user[0] ? spec->user : "?", node);
  fill_from(res, out);
  out->switch_user = true;
  out->uid = spec->uid;
  out->gid = spec->gid;
  gid_t groups[MAX_GROUPS];
  int n = MAX_GROUPS;
  if (getgrouplist(res->pw_name, (gid_t)spec->gid, groups, &n) < 0) n = MAX_GROUPS;
  out->n_groups = (size_t)(n < 0 ? 0 : n);
  out->groups = ty_xcalloc(out->n_groups ? out->n_groups : 1, sizeof *out->groups);
  for (size_t i = 0; i < out->n_groups; i++)
    out->groups[i] = (uint32_t)groups[i];
  return 0;
}

int ty__runas_resolve(ty__usercache *cache, const ty_task_spec *spec, const char *node,
                      ty__runas *out, char *err, size_t len) {
  memset(out, 0, sizeof *out);
  if (geteuid() != 0) {
    runs_as_self(out);
    return 0;
  }
  if (!spec->has_uid)
    return ty_errf(err, len, TY_EPERM,
                   "job %" PRIu64 " carries no submitter uid (it was stored "
                   "before authentication); resubmit it",
                   spec->job_id);
  int64_t now = ty_mono_ms();
  if (ty__usercache_get(cache, spec->uid, spec->gid, now, out)) return 0;
  int rc = look_up(spec, node, out, err, len);
  if (rc == 0) ty__usercache_put(cache, out, now);
  return rc;
}

void ty__runas_close(ty__runas *r) {
  free(r->groups);
  r->groups = NULL;
}

/* ---- logs ------------------------------------------------------------------------------------ */

/* Whether the open log fd is who's to append to: a file of the task's
 * user (a requeued run's, the same job's). */
static bool log_is_theirs(int fd, const ty__runas *who) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (!who->switch_user || st.st_uid == who->uid);
}

/* The existing log at path when it is who's; else none (-1, errno ENOENT),
 * another user's or not a file having been removed: never given to who. */
static int open_existing(const char *path, const ty__runas *who, const char *node) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 || log_is_theirs(fd, who)) return fd;
  close(fd);
  ty_warn("log %s on node %s is not uid %u's (an earlier job's of the same id): replaced", path,
          node, who->uid);
  if (unlink(path) != 0) return -1;
  errno = ENOENT;
  return -1;
}

int ty__open_task_log(const char *path, const ty__runas *who, const char *node, char *err,
                      size_t len) {
  bool made = false;
  int fd = open_existing(path, who, node);
  if (fd < 0 && errno == ENOENT) {
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    made = true;
  }
  if (fd < 0)
    return ty_errf(err, len, TY_EIO, "cannot open log %s on node %s: %s", path, node,
                   strerror(errno));
  if (made && who->switch_user && fchown(fd, (uid_t)who->uid, (gid_t)who->gid) != 0) {
    int e = errno;
    close(fd);
    return ty_errf(err, len, TY_EIO, "cannot give log %s to uid %u on node %s: %s", path, who->uid,
                   node, strerror(e));
  }
  fchmod(fd, 0600); /* an older worker's log may be 0644 */
  return fd;
}

/* ---- the helper's command line --------------------------------------------------------------- */

typedef struct argv_b {
  char **v;
  size_t n, cap;
} argv_b;

static void push(argv_b *a, const char *s) {
  if (a->n + 2 > a->cap) {
    a->cap = a->cap ? a->cap * 2 : 32;
    a->v = ty_xrealloc(a->v, a->cap * sizeof *a->v);
  }
  a->v[a->n++] = ty_strdup(s);
  a->v[a->n] = NULL;
}

static void push_num(argv_b *a, uint64_t v) {
  char s[32];
  snprintf(s, sizeof s, "%" PRIu64, v);
  push(a, s);
}

static void free_argv(argv_b *a) {
  for (size_t i = 0; i < a->n; i++)
    free(a->v[i]);
  free(a->v);
}

static void helper_argv(const ty__spawn *s, argv_b *a) {
  push(a, s->helper);
  push(a, "--status-fd"), push(a, "3");
  push(a, "--env-fd"), push(a, "4");
  for (size_t i = 0; s->procs && s->procs[i]; i++)
    push(a, "--cgroup"), push(a, s->procs[i]);
  if (s->who->switch_user) {
    push(a, "--uid"), push_num(a, s->who->uid);
    push(a, "--gid"), push_num(a, s->who->gid);
    ty_buf g;
    ty_buf_init(&g);
    for (size_t i = 0; i < s->who->n_groups; i++)
      ty_buf_printf(&g, "%s%" PRIu32, i ? "," : "", s->who->groups[i]);
    ty_buf_append(&g, "", 1);
    if (s->who->n_groups) push(a, "--groups"), push(a, (const char *)g.data);
    ty_buf_close(&g);
  }
  if (s->process && s->process->has_umask) {
    char um[16];
    snprintf(um, sizeof um, "%04" PRIo32, s->process->umask & 0777);
    push(a, "--umask"), push(a, um);
  }
  for (int l = 0; s->process && l < TY_LIMIT_COUNT; l++) {
    if (!s->process->has_soft[l]) continue;
    char lim[64];
    snprintf(lim, sizeof lim, "%d:%" PRIu64, ty_limit_rlimit(l), s->process->soft[l]);
    push(a, "--rlimit"), push(a, lim);
  }
  if (s->ctty) push(a, "--ctty");
  if (s->cwd && s->cwd[0]) push(a, "--cwd"), push(a, s->cwd);
  push(a, "--");
  for (size_t i = 0; i < s->argc; i++)
    push(a, s->argv[i]);
}

/* ---- the helper's verdict -------------------------------------------------------------------- */

/* The helper's status line, read until EOF (the exec closed the pipe) or
 * the deadline; returns the bytes read, -1 on timeout. */
static ssize_t read_status(int fd, char *buf, size_t cap) {
  size_t len = 0;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, HELPER_WAIT_MS);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || (len += (size_t)n) + 1 >= cap) break;
  }
  buf[len] = '\0';
  return (ssize_t)len;
}

/* What a verdict's messages name. */
typedef struct verdict_names {
  char argv0[256], cwd[1024], user[256], node[256];
} verdict_names;

static void names_of(const ty__spawn *s, verdict_names *n) {
  snprintf(n->argv0, sizeof n->argv0, "%s", s->argv[0]);
  snprintf(n->cwd, sizeof n->cwd, "%s", s->cwd ? s->cwd : "");
  snprintf(n->user, sizeof n->user, "%s", s->who->user);
  snprintf(n->node, sizeof n->node, "%s", s->node);
}

/* Whether errno e says the node ran short (space, descriptors, memory,
 * processes, its disk), not that the job asked for something wrong. */
static bool node_short_of(int e) {
  return e == ENOSPC || e == EDQUOT || e == EMFILE || e == ENFILE || e == EIO || e == ENOMEM ||
         e == EAGAIN;
}

/* Turns "STEP\tERRNO\tMESSAGE" into the launch's error code and message:
 * the job's own failures (argv[0], cwd, user, limits, an exec the job's
 * arguments failed) as UV_ENOENT, UV_EACCES, TY_ENOTFOUND, TY_EPERM or
 * TY_EINVAL; the node's (cgroup, stdio, the node short of something) as
 * TY_EIO. */
static int verdict(const verdict_names *s, char *line, char *err, size_t len) {
  char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
  int e = t1 ? atoi(t1 + 1) : EIO;
  const char *msg = t2 ? t2 + 1 : line;
  if (t1) *t1 = '\0';
  if (!strcmp(line, "exec") && (e == ENOENT || e == EACCES || e == ENOEXEC)) {
    int rc = e == ENOENT ? UV_ENOENT : UV_EACCES;
    return ty_errf(err, len, rc, "argv[0] \"%s\" %s on node %s", s->argv0,
                   e == ENOENT ? "not found" : "is not executable (permission denied)", s->node);
  }
  if (!strcmp(line, "cwd"))
    return ty_errf(err, len, e == ENOENT ? TY_ENOTFOUND : TY_EPERM, "cwd %s %s for %s on node %s",
                   s->cwd, e == ENOENT ? "does not exist" : "is not accessible", s->user, s->node);
  bool job_step = !strcmp(line, "exec") || !strcmp(line, "user") || !strcmp(line, "limits");
  int rc = job_step && !node_short_of(e) ? (!strcmp(line, "user") ? TY_EPERM : TY_EINVAL) : TY_EIO;
  return ty_errf(err, len, rc, "cannot start the task on node %s: %s", s->node, msg);
}

/* The error of a helper that said nothing within HELPER_WAIT_MS. */
static int timed_out(const char *node, char *err, size_t len) {
  return ty_errf(err, len, TY_ETIMEDOUT,
                 "cannot start the task on node %s: the exec helper did "
                 "not finish within %d s",
                 node, HELPER_WAIT_MS / 1000);
}

/* The task's environment for the helper's --env-fd: "NAME=value" entries,
 * each ended by a NUL, in an unlinked memory file read from its start.
 * The helper runs as root until it changes user, so the environment is
 * never its own: LD_PRELOAD, LD_LIBRARY_PATH, GCONV_PATH or a sanitizer's
 * log_path there would act in a root process (docs/security.md). */
static int env_file(const ty__spawn *s, char *err, size_t len) {
  int fd = memfd_create("trainyard-task-env", MFD_CLOEXEC);
  for (size_t i = 0; fd >= 0 && s->env && s->env[i]; i++) {
    size_t n = strlen(s->env[i]) + 1;
    if (write(fd, s->env[i], n) != (ssize_t)n) {
      close(fd);
      fd = -1;
    }
  }
  if (fd >= 0 && lseek(fd, 0, SEEK_SET) == 0) return fd;
  int e = errno;
  if (fd >= 0) close(fd);
  return ty_errf(err, len, TY_EIO, "cannot start the task on node %s: its environment: %s", s->node,
                 strerror(e));
}

/* The helper runs in *proc; *status_fd is the read end of its status pipe. */
static int spawn_start(uv_loop_t *loop, uv_process_t *proc, const ty__spawn *s, int *status_fd,
                       char *err, size_t len) {
  int fds[2];
  *status_fd = -1;
  int env_fd = env_file(s, err, len);
  if (env_fd < 0) return env_fd;
  if (pipe2(fds, O_CLOEXEC) != 0) {
    close(env_fd);
    return ty_errf(err, len, TY_EIO, "cannot start the task on node %s: pipe: %s", s->node,
                   strerror(errno));
  }
  argv_b a = {0};
  helper_argv(s, &a);
  uv_stdio_container_t stdio[5] = {s->stdio[0],
                                   s->stdio[1],
                                   s->stdio[2],
                                   {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
                                   {.flags = UV_INHERIT_FD, .data.fd = env_fd}};
  char *no_env[] = {NULL};
  uv_process_options_t opts = {.exit_cb = s->exit_cb,
                               .file = a.v[0],
                               .args = a.v,
                               .env = no_env,
                               .stdio_count = 5,
                               .stdio = stdio};
  int rc = uv_spawn(loop, proc, &opts);
  close(fds[1]);
  close(env_fd);
  free_argv(&a);
  if (rc != 0) {
    close(fds[0]);
    return ty_errf(err, len, rc, "cannot start the exec helper %s on node %s: %s", s->helper,
                   s->node, ty_strerror(rc));
  }
  *status_fd = fds[0];
  return 0;
}

int ty__spawn_task(uv_loop_t *loop, uv_process_t *proc, const ty__spawn *s, char *err, size_t len) {
  int fd;
  int rc = spawn_start(loop, proc, s, &fd, err, len);
  if (rc != 0) return rc;
  char line[1200];
  ssize_t n = read_status(fd, line, sizeof line);
  close(fd);
  if (n == 0) return 0;
  /* The helper failed (or hangs): it is reaped here, not by the loop. */
  if (n < 0) kill(proc->pid, SIGKILL);
  waitpid(proc->pid, NULL, 0);
  if (n < 0) return timed_out(s->node, err, len);
  return ty__spawn_verdict(s, line, err, len);
}

int ty__spawn_verdict(const ty__spawn *s, char *line, char *err, size_t len) {
  verdict_names names;
  names_of(s, &names);
  return verdict(&names, line, err, len);
}
