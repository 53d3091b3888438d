/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/rpc on Unix stream sockets (local.c): the socket file a server makes
 * (mode, stale-socket removal, refusals, removal on destroy), the peer's
 * kernel credentials on an accepted conn, and the clients' errors for a
 * socket that is not there. One loop, one thread: server and client share
 * it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "lib/rpc/rpc.h"

static char dir[64], path[96];

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/ty-rpc-local-XXXXXX");
  cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
  snprintf(path, sizeof path, "%s/s.sock", dir);
}

static void stale_socket_at(const char *p) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", p);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind: %s", strerror(errno));
  close(fd); /* bound and never listening: nothing answers */
}

static void finish(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(loop), 0, "handles left open");
}

Test(rpc_local, a_stale_socket_is_replaced_a_live_one_and_a_file_are_not) {
  make_dir();
  uv_loop_t loop;
  uv_loop_init(&loop);
  char err[TY_ERR_LEN] = "";
  ty_rpc_server *s = NULL, *twin = NULL;
  cr_assert_eq(
      ty_rpc_server_create_unix(&loop, "rel/s.sock", NULL, NULL, NULL, &s, err, sizeof err),
      TY_EINVAL);
  cr_expect(strstr(err, "not absolute"), "%s", err);

  stale_socket_at(path);
  cr_assert_eq(ty_rpc_server_create_unix(&loop, path, NULL, NULL, NULL, &s, err, sizeof err), 0,
               "%s", err);
  struct stat st;
  cr_assert_eq(lstat(path, &st), 0);
  cr_expect(S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0666, "mode %o", st.st_mode);
  cr_expect_eq(ty_rpc_server_port(s), 0);

  err[0] = '\0';
  cr_expect_eq(ty_rpc_server_create_unix(&loop, path, NULL, NULL, NULL, &twin, err, sizeof err),
               TY_EEXIST);
  cr_expect(strstr(err, path) && strstr(err, "accepts connections"), "%s", err);
  cr_expect_eq(lstat(path, &st), 0, "a refused second server removed the live socket");

  ty_rpc_server_destroy(s);
  finish(&loop);
  cr_expect(lstat(path, &st) != 0 && errno == ENOENT, "destroy left %s behind", path);

  int fd = open(path, O_CREAT | O_WRONLY, 0600);
  close(fd);
  uv_loop_init(&loop);
  err[0] = '\0';
  cr_expect_eq(ty_rpc_server_create_unix(&loop, path, NULL, NULL, NULL, &s, err, sizeof err),
               TY_EEXIST);
  cr_expect(strstr(err, "is not a socket"), "%s", err);
  cr_expect(lstat(path, &st) == 0 && S_ISREG(st.st_mode), "the regular file was removed");
  finish(&loop);
  unlink(path);
  rmdir(dir);
}

typedef struct seen {
  int accepted_rc, client_rc, tcp_rc;
  uint32_t uid, gid;
  int32_t pid;
  char peer[64];
  ty_rpc_server *s, *tcp;
} seen;

static void on_accept(ty_rpc_server *s, ty_rpc_conn *c, void *ud) {
  (void)s;
  seen *w = ud;
  w->accepted_rc = ty_rpc_peer_cred(c, &w->uid, &w->gid, &w->pid);
  snprintf(w->peer, sizeof w->peer, "%s", ty_rpc_peer(c));
  ty_rpc_server_destroy(w->s);
}

static void on_tcp_accept(ty_rpc_server *s, ty_rpc_conn *c, void *ud) {
  (void)s;
  seen *w = ud;
  w->tcp_rc = ty_rpc_peer_cred(c, NULL, NULL, NULL);
  ty_rpc_server_destroy(w->tcp);
}

static void on_connected(ty_rpc_conn *c, int status, void *ud) {
  seen *w = ud;
  w->client_rc = status;
  if (c) ty_rpc_close(c);
}

Test(rpc_local, peer_credentials_are_the_kernels_and_tcp_has_none) {
  make_dir();
  uv_loop_t loop;
  uv_loop_init(&loop);
  seen w = {.accepted_rc = 1, .client_rc = 1, .tcp_rc = 1};
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_rpc_server_create_unix(&loop, path, NULL, on_accept, &w, &w.s, err, sizeof err),
               0, "%s", err);
  cr_assert_eq(ty_rpc_server_create(&loop, "127.0.0.1", 0, NULL, on_tcp_accept, &w, &w.tcp), 0);
  cr_assert_eq(ty_rpc_connect(&loop, path, 0, NULL, 5000, on_connected, &w), 0);
  cr_assert_eq(
      ty_rpc_connect(&loop, "127.0.0.1", ty_rpc_server_port(w.tcp), NULL, 5000, on_connected, &w),
      0);
  finish(&loop);
  cr_expect_eq(w.client_rc, 0);
  cr_expect_eq(w.accepted_rc, 0, "no peer credentials on a Unix socket's conn");
  cr_expect_eq(w.uid, (uint32_t)geteuid());
  cr_expect_eq(w.gid, (uint32_t)getegid());
  cr_expect_eq(w.pid, (int32_t)getpid());
  char want[64];
  snprintf(want, sizeof want, "unix:uid=%u,pid=%d", (unsigned)geteuid(), (int)getpid());
  cr_expect_str_eq(w.peer, want);
  cr_expect_eq(w.tcp_rc, TY_ENOTFOUND, "a TCP conn claimed kernel credentials");
  rmdir(dir);
}

Test(rpc_local, clients_say_when_the_socket_is_absent) {
  ty_rpc_sync *c = NULL;
  cr_expect_eq(ty_rpc_sync_open("/nonexistent/ty.sock", 0, 1000, &c), -ENOENT);
  ty_rpc_client *cl = NULL;
  cr_expect_eq(ty_rpc_client_open("/nonexistent/ty.sock", 0, 1000, &cl), UV_ENOENT);
  cr_expect_eq(ty_rpc_sync_open("relative.sock", 0, 1000, &c), TY_EINVAL,
               "a relative name is a host, and needs a port");
}

/* The TCP port's guards, reused: max_conns_per_addr counts a uid's
 * connections on a socket (here two from this process: one refused). */
typedef struct capped {
  ty_rpc_server *s;
  ty_rpc_conn *clients[2];
  int n_clients, accepted;
  uv_timer_t done;
  const ty_conn_stats *st;
  uint64_t give_up; /* loop time (ms) after which it ends regardless */
} capped;

static void on_capped_accept(ty_rpc_server *s, ty_rpc_conn *c, void *ud) {
  (void)s, (void)c;
  ((capped *)ud)->accepted++;
}

static void on_capped_connected(ty_rpc_conn *c, int status, void *ud) {
  capped *k = ud;
  cr_expect_eq(status, 0);
  if (c) k->clients[k->n_clients++] = c;
}

/* The refused client's conn closes on its own when the server drops it:
 * forget it then, so that the end does not close it twice. */
static void on_client_closed(ty_rpc_conn *c, int reason, void *ud) {
  (void)reason;
  capped *k = ud;
  for (int i = 0; i < k->n_clients; i++)
    if (k->clients[i] == c) k->clients[i] = NULL;
}

/* Every 20 ms: ends once both conns were accepted and the older one
 * evicted, or after 30 s (the checks then say what is missing). */
static void on_capped_done(uv_timer_t *t) {
  capped *k = t->data;
  if (!(k->accepted >= 2 && k->st->closed_unproven >= 1) && uv_now(t->loop) < k->give_up) return;
  uv_timer_stop(t);
  for (int i = 0; i < k->n_clients; i++)
    if (k->clients[i]) ty_rpc_close(k->clients[i]);
  ty_rpc_server_destroy(k->s);
  uv_close((uv_handle_t *)t, NULL);
}

Test(rpc_local, connections_per_uid_are_capped_like_per_address) {
  make_dir();
  uv_loop_t loop;
  uv_loop_init(&loop);
  ty_conn_stats st = {0};
  ty_rpc_conn_opts opts = {.limits = {.max_conns_per_addr = 1, .stats = &st}};
  capped k = {.st = &st};
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(
      ty_rpc_server_create_unix(&loop, path, &opts, on_capped_accept, &k, &k.s, err, sizeof err), 0,
      "%s", err);
  ty_rpc_conn_opts client = {.on_close = on_client_closed, .ud = &k};
  for (int i = 0; i < 2; i++)
    cr_assert_eq(ty_rpc_connect(&loop, path, 0, &client, 5000, on_capped_connected, &k), 0);
  uv_timer_init(&loop, &k.done);
  k.done.data = &k;
  /* Waits for the events rather than 300 ms of a loop time cached at
   * uv_loop_init (a loaded machine's set-up could use them all up). */
  uv_update_time(&loop);
  k.give_up = uv_now(&loop) + 30000;
  uv_timer_start(&k.done, on_capped_done, 20, 20);
  finish(&loop);
  /* Neither showed a credential: the newer one takes the older's place. */
  cr_expect_eq(k.accepted, 2);
  cr_expect_eq(st.closed_unproven, 1);
  cr_expect_eq(st.refused_per_addr, 0);
  rmdir(dir);
}
