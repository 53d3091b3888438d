/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's local Unix socket (issue 20, docs/security.md): who a
 * caller is there (the kernel's uid, whatever credential it sends), what
 * is refused there (workers' methods, bad frames, as on TCP), and how the
 * clients fall back to TCP with MUNGE when the socket is gone. Runs as
 * root, with test users made by useradd (harness_auth.c).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/auth/auth.h"
#include "lib/wire/wire.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"
#include "tests/integration/rlaunch_run.h"

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x

typedef struct user {
  char name[32];
  uid_t uid;
  gid_t gid;
} user;

/* A socket directory traind creates (0755) outside the private state dir. */
static char sock_dir[64], sock_path[96];

static void start(it_cluster *c) {
  snprintf(sock_dir, sizeof sock_dir, "/tmp/tyit-sock-%d", (int)getpid());
  snprintf(sock_path, sizeof sock_path, "%s/traind.sock", sock_dir);
  static const char *args[3];
  args[0] = "--socket", args[1] = sock_path, args[2] = NULL;
  it_options o = {.traind_args = args};
  it_cluster_start_with(c, 1, 2, &o);
}

static void stop(it_cluster *c) {
  it_cluster_stop(c);
  struct stat st;
  cr_expect(lstat(sock_path, &st) != 0 && errno == ENOENT,
            "traind left its socket %s behind after a clean stop", sock_path);
  rmdir(sock_dir);
}

/* trainctl --socket PATH ARGS... as u: exit status, stdout, stderr (heap). */
static int ctl_as(const it_cluster *c, const user *u, const char *socket, char **out, char **err,
                  const char *const *args) {
  const char *argv[32] = {getenv("TY_TRAINCTL"), "--socket", socket};
  size_t n = 3;
  for (size_t i = 0; args[i] && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  return it_run_as(c, u->uid, u->gid, "/tmp", out, err, argv);
}

/* Signs with root's credential made in advance (the `cred` it carries). */
typedef struct canned {
  uint8_t *cred;
  size_t len;
} canned;

static int sign_canned(void *ud, const char *method, const void *payload, size_t len, ty_buf *out) {
  (void)method, (void)payload, (void)len;
  canned *k = ud;
  return ty_buf_append(out, k->cred, k->len);
}

static canned root_credential(const it_cluster *c, const char *method, const ty_buf *req) {
  ty_auth_config cfg = {.mode = TY_AUTH_MUNGE, .munge_socket = c->munged.socket};
  ty_auth *a = NULL;
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), 0, "%s", err);
  canned k = {0};
  cr_assert_eq(ty_auth_sign(a, method, req->data, req->len, &k.cred, &k.len, err, sizeof err), 0,
               "munge: %s", err);
  ty_auth_destroy(a);
  return k;
}

typedef struct cancel_call {
  const char *host;
  int port;
  const ty_buf *req;
  canned *k;
} cancel_call;

/* cancel_as_with's child, as the user. */
static int cancel_child(void *ud, char *msg, size_t msg_len) {
  const cancel_call *x = ud;
  ty_rpc_client *cl = NULL;
  ty_rpc_result res = {0};
  if (ty_rpc_client_open(x->host, x->port, 5000, &cl) != 0) _exit(121);
  ty_rpc_client_set_signer(cl, sign_canned, x->k);
  int rc = ty_rpc_client_call(cl, TY_M_CANCEL_JOB, x->req->data, x->req->len, 10000, &res);
  int status = rc ? rc : res.status;
  const char *m = res.message ? res.message : "";
  Trainyard__CancelJobResponse *cr =
      status == 0 ? trainyard__cancel_job_response__unpack(NULL, res.payload_len, res.payload)
                  : NULL;
  if (cr && cr->n_results) status = cr->results[0]->status, m = cr->results[0]->message;
  snprintf(msg, msg_len, "%s", m);
  return status;
}

/* As u, on `host` (the socket's path, or 127.0.0.1 with port): CancelJob
 * `req` carrying root's credential k. Returns the first result's status
 * and its message in msg. */
static int cancel_as_with(const user *u, const char *host, int port, const ty_buf *req, canned *k,
                          char *msg, size_t msg_len) {
  cancel_call x = {host, port, req, k};
  return it_as(u->uid, u->gid, cancel_child, &x, msg, msg_len);
}

static ty_buf cancel_req(uint64_t id) {
  Trainyard__CancelJobRequest m = TRAINYARD__CANCEL_JOB_REQUEST__INIT;
  m.n_job_ids = 1;
  m.job_ids = &id;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_wire_pack((const ProtobufCMessage *)&m, &b), 0);
  return b;
}

static uint64_t root_job(ty_rpc_client *cl) {
  uint64_t id = 0;
  char err[TY_ERR_LEN];
  cr_assert_eq(it_submit_sh(cl, "sleep 300", "roots", &id, err, sizeof err), 0, "%s", err);
  return id;
}

/* With munged out of the clients' reach, a request can only succeed on the
 * socket: over TCP it would carry no credential and be refused. */
Test(local, users_act_as_themselves_on_the_socket, .timeout = 300) {
  it_cluster c;
  start(&c);
  user alice;
  it_user_add(alice.name, sizeof alice.name, &alice.uid, &alice.gid);
  ty_rpc_client *cl = it_client(&c);
  uint64_t theirs = root_job(cl);
  char sid[24];
  snprintf(sid, sizeof sid, "%lu", (unsigned long)theirs);
  char *saved = strdup(getenv("TRAINYARD_MUNGE_SOCKET"));
  setenv("TRAINYARD_MUNGE_SOCKET", "/nonexistent/munge.socket", 1);

  char *out = NULL, *err = NULL;
  int rc = ctl_as(&c, &alice, sock_path, &out, &err,
                  (const char *[]){"submit", "--command", "-q", "--", "sh", "-c", "id -u", NULL});
  cr_assert_eq(rc, 0, "submit as %s on the socket: %s", alice.name, err);
  uint64_t mine = strtoull(out, NULL, 10);
  free(out), free(err);
  Trainyard__GetJobResponse *g = it_get_job(cl, mine);
  cr_assert(g && g->job && g->job->spec, "job %lu not found", (unsigned long)mine);
  cr_expect_str_eq(g->job->spec->user, alice.name, "the job runs as %s, not %s", g->job->spec->user,
                   alice.name);
  trainyard__get_job_response__free_unpacked(g, NULL);

  rc = ctl_as(&c, &alice, sock_path, NULL, &err, (const char *[]){"cancel", sid, NULL});
  cr_expect_neq(rc, 0, "%s cancelled root's job on the socket", alice.name);
  cr_expect(strstr(err, "permission denied") && strstr(err, alice.name), "the refusal names %s: %s",
            alice.name, err);
  free(err);
  rc = ctl_as(&c, &alice, sock_path, &out, &err, (const char *[]){"ls", NULL});
  cr_expect_eq(rc, 0, "ls as %s on the socket: %s", alice.name, err);
  free(out), free(err);

  setenv("TRAINYARD_MUNGE_SOCKET", saved, 1);
  free(saved);
  Trainyard__GetJobResponse *w = it_wait_job(cl, mine, ST(COMPLETED), 30000);
  cr_expect(w, "%s's job did not complete", alice.name);
  if (w) trainyard__get_job_response__free_unpacked(w, NULL);
  /* logs runs in trainyard-stream, which must take the socket as well:
   * over TCP, with munged out of reach, it would be refused. */
  saved = strdup(getenv("TRAINYARD_MUNGE_SOCKET"));
  setenv("TRAINYARD_MUNGE_SOCKET", "/nonexistent/munge.socket", 1);
  char mid[24];
  snprintf(mid, sizeof mid, "%lu", (unsigned long)mine);
  rc = ctl_as(&c, &alice, sock_path, &out, &err, (const char *[]){"logs", mid, NULL});
  cr_expect_eq(rc, 0, "logs as %s on the socket: %s", alice.name, err);
  char uid[24];
  snprintf(uid, sizeof uid, "%u", (unsigned)alice.uid);
  cr_expect(out && strstr(out, uid), "logs shows %s's uid %s: %s", alice.name, uid, out);
  free(out), free(err);
  setenv("TRAINYARD_MUNGE_SOCKET", saved, 1);
  free(saved);
  ty_rpc_client_close(cl);
  stop(&c);
}

/* Root's valid MUNGE credential, sent on the socket by alice, is not read:
 * she stays alice. The same kind of credential over TCP makes her root,
 * which shows the credential was good. */
Test(local, another_users_credential_is_ignored_on_the_socket, .timeout = 300) {
  it_cluster c;
  start(&c);
  user alice;
  it_user_add(alice.name, sizeof alice.name, &alice.uid, &alice.gid);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = root_job(cl);
  ty_buf req = cancel_req(id);
  char msg[TY_ERR_LEN];
  canned k = root_credential(&c, TY_M_CANCEL_JOB, &req);
  int st = cancel_as_with(&alice, sock_path, 0, &req, &k, msg, sizeof msg);
  cr_expect_eq(st, TY_EPERM, "alice with root's credential on the socket: %d %s", st, msg);
  cr_expect(strstr(msg, alice.name), "the refusal names alice: %s", msg);
  free(k.cred);
  k = root_credential(&c, TY_M_CANCEL_JOB, &req);
  st = cancel_as_with(&alice, it_controller_host(&c), c.rpc_port, &req, &k, msg, sizeof msg);
  cr_expect_eq(st, 0, "root's credential over TCP: %d %s", st, msg);
  free(k.cred);
  ty_buf_close(&req);
  ty_rpc_client_close(cl);
  stop(&c);
}

/* Workers prove the cluster's service over TCP; on the socket their
 * methods are refused, naming the socket, before anything is decoded. */
Test(local, worker_methods_are_refused_on_the_socket, .timeout = 120) {
  it_cluster c;
  start(&c);
  ty_rpc_client *cl = NULL;
  cr_assert_eq(ty_rpc_client_open(sock_path, 0, 5000, &cl), 0);
  const char *methods[] = {TY_M_REGISTER_NODE, TY_M_HEARTBEAT, TY_M_RENDEZVOUS_GET};
  for (size_t i = 0; i < TY_ARRAY_LEN(methods); i++) {
    ty_rpc_result res = {0};
    cr_assert_eq(ty_rpc_client_call(cl, methods[i], NULL, 0, 5000, &res), 0);
    cr_expect_eq(res.status, TY_EPERM, "%s on the socket: %d %s", methods[i], res.status,
                 res.message);
    cr_expect(strstr(res.message, "only client requests") && strstr(res.message, sock_path),
              "%s: %s", methods[i], res.message);
    ty_rpc_result_close(&res);
  }
  ty_rpc_result res = {0};
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_LIST_NODES, NULL, 0, 5000, &res), 0);
  cr_expect_eq(res.status, 0, "ListNodes on the socket: %s", res.message);
  ty_rpc_result_close(&res);
  ty_rpc_client_close(cl);
  stop(&c);
}

/* A frame above the limit closes the connection, logged as on TCP. */
Test(local, a_bad_frame_on_the_socket_is_named_like_tcps, .timeout = 120) {
  it_cluster c;
  start(&c);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "%s", strerror(errno));
  const uint8_t huge[4] = {0x7f, 0xff, 0xff, 0xff};
  cr_assert_eq(write(fd, huge, 4), 4);
  cr_expect(it_closed_by_peer(fd), "traind kept a connection that announced a 2 GB frame");
  close(fd);
  char log[400];
  snprintf(log, sizeof log, "%s/traind.stderr", c.dir);
  bool found = false;
  for (int i = 0; i < 50 && !found; i++) {
    FILE *f = fopen(log, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f))
      found |=
          strstr(line, "closing connection from unix:uid=0") && strstr(line, "exceeds the maximum");
    if (f) fclose(f);
    if (!found) it_sleep_ms(100);
  }
  cr_expect(found, "no log line naming the bad frame and its unix peer in %s", log);
  stop(&c);
}

/* The socket gone: trainctl uses TCP with MUNGE, silently. A socket that
 * nobody answers on: TCP too, with a warning naming it. */
Test(local, clients_fall_back_to_tcp, .timeout = 120) {
  it_cluster c;
  start(&c);
  char gone[96];
  snprintf(gone, sizeof gone, "%s/absent.sock", sock_dir);
  user root = {"root", 0, 0};
  char *out = NULL, *err = NULL;
  int rc = ctl_as(&c, &root, gone, &out, &err, (const char *[]){"ls", NULL});
  cr_expect_eq(rc, 0, "ls with an absent socket: %s", err);
  cr_expect_str_eq(err, "", "the fallback from an absent socket is silent");
  free(out), free(err);
  char stale[96];
  snprintf(stale, sizeof stale, "%s/stale.sock", sock_dir);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", stale);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "%s", strerror(errno));
  close(fd); /* bound, never listening: connect is refused */
  rc = ctl_as(&c, &root, stale, &out, &err, (const char *[]){"ls", NULL});
  cr_expect_eq(rc, 0, "ls with a stale socket: %s", err);
  cr_expect(strstr(err, stale) && strstr(err, "using TCP"), "the warning names %s: %s", stale, err);
  free(out), free(err);
  unlink(stale);
  stop(&c);
}

/* A stale socket at the path (a traind that did not stop cleanly) is
 * replaced at start; a file of another kind is not, and traind says why. */
Test(local, a_stale_socket_is_replaced_at_start, .timeout = 120) {
  it_cluster c;
  start(&c);
  it_kill9(&c.traind); /* leaves the socket file behind */
  struct stat st;
  cr_assert_eq(lstat(sock_path, &st), 0, "kill -9 should leave %s behind", sock_path);
  it_controller_start(&c);
  ty_rpc_client *cl = NULL;
  cr_assert_eq(ty_rpc_client_open(sock_path, 0, 5000, &cl), 0, "no traind on %s after a restart",
               sock_path);
  ty_rpc_result res = {0};
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_LIST_JOBS, NULL, 0, 5000, &res), 0);
  cr_expect_eq(res.status, 0, "%s", res.message);
  ty_rpc_result_close(&res);
  ty_rpc_client_close(cl);
  stop(&c);
}

/* rlaunch takes the socket from $TRAINYARD_SOCKET: with munged out of its
 * reach, its job can only be submitted and watched there. */
Test(local, rlaunch_uses_the_socket, .timeout = 120) {
  const char *bin = getenv("TY_RLAUNCH");
  if (!bin || !*bin) cr_skip_test("rlaunch is not built");
  it_cluster c;
  start(&c);
  char sock_env[128];
  snprintf(sock_env, sizeof sock_env, "TRAINYARD_SOCKET=%s", sock_path);
  const char *env[] = {sock_env, "TRAINYARD_MUNGE_SOCKET=/nonexistent/munge.socket", NULL};
  int rc = rl_wait(
      rl_start(&c, "sock", NULL, (const char *[]){"--", "sh", "-c", "echo via-socket", NULL}, env));
  char *err = rl_output(&c, "sock", "err");
  cr_expect_eq(rc, 0, "rlaunch on the socket exited %d: %s", rc, err);
  free(err);
  rl_expect_in(&c, "sock", "out", "via-socket");
  stop(&c);
}
