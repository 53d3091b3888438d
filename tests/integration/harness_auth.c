/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who an integration test acts as: the MUNGE signer of the test process's
 * own clients (it_client: root, an operator), test users made with useradd
 * and removed at exit, and RPCs and binaries run as them in a child that
 * setuid to the user, so the controller sees that user's credential.
 */
#include "tests/integration/harness.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/auth/auth.h"

/* Signs with the cluster's munged as whoever this process is. */
static int sign(void *ud, const char *method, const void *payload, size_t len, ty_buf *out) {
  ty_auth *a = ud;
  uint8_t *cred = NULL;
  size_t n = 0;
  char err[TY_ERR_LEN];
  int rc = ty_auth_sign(a, method, payload, len, &cred, &n, err, sizeof err);
  cr_assert_eq(rc, 0, "munge: %s", err);
  ty_buf_append(out, cred, n);
  free(cred);
  return 0;
}

static ty_auth *process_auth; /* one per test process, for its clients (any thread) */

static void make_signer(void) {
  ty_auth_config cfg = {.mode = TY_AUTH_MUNGE, .munge_socket = getenv("TRAINYARD_MUNGE_SOCKET")};
  char err[TY_ERR_LEN];
  if (ty_auth_create(&cfg, &process_auth, err, sizeof err) != 0) process_auth = NULL;
}

static ty_auth *signer(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, make_signer);
  cr_assert(process_auth, "cannot create a MUNGE signer");
  return process_auth;
}

ty_rpc_client *it_client(const it_cluster *c) {
  ty_rpc_client *cl = NULL;
  int rc = ty_rpc_client_open(it_controller_host(c), c->rpc_port, 5000, &cl);
  cr_assert_eq(rc, 0, "connect to traind on port %d: %s", c->rpc_port, ty_strerror(rc));
  if (!c->opts.auth_none) ty_rpc_client_set_signer(cl, sign, signer());
  return cl;
}

static void become(uid_t uid, gid_t gid) {
  if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(120);
}

int it_as(uid_t uid, gid_t gid, int (*fn)(void *ud, char *msg, size_t msg_len), void *ud, char *msg,
          size_t msg_len) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    become(uid, gid);
    char m[TY_ERR_LEN + 32] = "";
    int status = fn(ud, m, sizeof m);
    dprintf(fds[1], "%d\n%s", status, m);
    _exit(0);
  }
  close(fds[1]);
  char buf[TY_ERR_LEN + 64] = "";
  size_t n = 0;
  ssize_t r;
  while (n + 1 < sizeof buf && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)r;
  buf[n] = '\0';
  close(fds[0]);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client as uid %d failed (exit %d)", (int)uid,
            WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  char *nl = strchr(buf, '\n');
  if (msg) snprintf(msg, msg_len, "%s", nl ? nl + 1 : "");
  return atoi(buf);
}

typedef struct call_as {
  const it_cluster *c;
  const char *method;
  const ty_buf *req;
} call_as;

ty_rpc_client *it_client_self(const it_cluster *c) {
  ty_auth_config cfg = {.mode = TY_AUTH_MUNGE, .munge_socket = c->munged.socket};
  ty_auth *a = NULL;
  ty_rpc_client *cl = NULL;
  char err[TY_ERR_LEN];
  if (ty_auth_create(&cfg, &a, err, sizeof err) != 0 ||
      ty_rpc_client_open(it_controller_host(c), c->rpc_port, 5000, &cl) != 0)
    _exit(121);
  ty_rpc_client_set_signer(cl, sign, a);
  return cl;
}

/* it_call_as's child: its own MUNGE signer, as the user it now is. */
static int call_as_child(void *ud, char *msg, size_t msg_len) {
  const call_as *x = ud;
  ty_rpc_client *cl = it_client_self(x->c);
  ty_rpc_result res = {0};
  int rc = ty_rpc_client_call(cl, x->method, x->req->data, x->req->len, 10000, &res);
  snprintf(msg, msg_len, "%s", res.message ? res.message : "");
  return rc ? rc : res.status;
}

int it_call_as(const it_cluster *c, uid_t uid, gid_t gid, const char *method, const ty_buf *req,
               char *msg, size_t msg_len) {
  call_as x = {c, method, req};
  return it_as(uid, gid, call_as_child, &x, msg, msg_len);
}

/* ---- test users ---------------------------------------------------------------------------- */

static char users[8][32];
static size_t n_users;
static char groups[4][32]; /* it_group_add's, removed with the users */
static size_t n_groups;

static int run_tool(const char *path, char *const argv[]) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 1), dup2(null, 2);
    execv(path, argv);
    _exit(127);
  }
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void it_users_remove(void) {
  while (n_users > 0) {
    char *name = users[--n_users];
    char *argv[] = {"userdel", "-f", name, NULL};
    run_tool("/usr/sbin/userdel", argv);
  }
  while (n_groups > 0) {
    char *argv[] = {"groupdel", groups[--n_groups], NULL};
    run_tool("/usr/sbin/groupdel", argv);
  }
}

/* it_users_remove at exit, also when an assertion ends the test. */
static void remove_at_exit(void) {
  static bool registered;
  if (!registered) atexit(it_users_remove);
  registered = true;
}

void it_group_add(char *name, size_t name_len, const char *member) {
  if (geteuid() != 0) cr_skip_test("creating test groups needs root");
  cr_assert_lt(n_groups, sizeof groups / sizeof groups[0]);
  remove_at_exit();
  char *g = groups[n_groups];
  snprintf(g, sizeof groups[0], "tyit%dg%zu", (int)getpid(), n_groups);
  char *add[] = {"groupadd", g, NULL};
  cr_assert_eq(run_tool("/usr/sbin/groupadd", add), 0, "groupadd %s failed", g);
  n_groups++;
  char *join[] = {"usermod", "-a", "-G", g, (char *)member, NULL};
  cr_assert_eq(run_tool("/usr/sbin/usermod", join), 0, "usermod -a -G %s %s failed", g, member);
  snprintf(name, name_len, "%s", g);
}

void it_user_del(const char *name) {
  char *argv[] = {"userdel", "-f", (char *)name, NULL};
  cr_assert_eq(run_tool("/usr/sbin/userdel", argv), 0, "userdel %s failed", name);
  for (size_t i = 0; i < n_users; i++)
    if (!strcmp(users[i], name)) memmove(users[i], users[--n_users], sizeof users[0]);
}

void it_user_add(char *name, size_t name_len, uid_t *uid, gid_t *gid) {
  if (geteuid() != 0) cr_skip_test("creating test users needs root");
  cr_assert_lt(n_users, sizeof users / sizeof users[0]);
  remove_at_exit();
  char *u = users[n_users];
  snprintf(u, sizeof users[0], "tyit%dx%zu", (int)getpid(), n_users);
  char *argv[] = {"useradd", "-M", "-s", "/bin/sh", u, NULL};
  cr_assert_eq(run_tool("/usr/sbin/useradd", argv), 0, "useradd %s failed", u);
  n_users++;
  struct passwd *pw = getpwnam(u);
  cr_assert(pw, "no passwd entry for %s after useradd", u);
  snprintf(name, name_len, "%s", u);
  *uid = pw->pw_uid;
  *gid = pw->pw_gid;
}

/* Reads both pipes to EOF (poll: neither may fill up and stall the child). */
static void read_both(int out_fd, int err_fd, char **out, char **err) {
  ty_buf b[2];
  ty_buf_init(&b[0]), ty_buf_init(&b[1]);
  struct pollfd p[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
  int open_fds = 2;
  while (open_fds > 0 && poll(p, 2, -1) > 0) {
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !p[i].revents) continue;
      char chunk[4096];
      ssize_t n = read(p[i].fd, chunk, sizeof chunk);
      if (n > 0)
        ty_buf_append(&b[i], chunk, (size_t)n);
      else
        p[i].fd = -1, open_fds--;
    }
  }
  ty_buf_append(&b[0], "", 1), ty_buf_append(&b[1], "", 1);
  if (out)
    *out = (char *)b[0].data;
  else
    ty_buf_close(&b[0]);
  if (err)
    *err = (char *)b[1].data;
  else
    ty_buf_close(&b[1]);
}

int it_run_as(const it_cluster *c, uid_t uid, gid_t gid, const char *cwd, char **out, char **err,
              const char *const *argv) {
  int po[2], pe[2];
  cr_assert(pipe(po) == 0 && pipe(pe) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(po[1], 1), dup2(pe[1], 2);
    close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
    become(uid, gid);
    char addr[64];
    snprintf(addr, sizeof addr, "%s:%d", it_controller_host(c), c->rpc_port);
    setenv("TRAINYARD_CONTROLLER", addr, 1);
    if (cwd && chdir(cwd) != 0) _exit(126);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(po[1]), close(pe[1]);
  read_both(po[0], pe[0], out, err);
  close(po[0]), close(pe[0]);
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
