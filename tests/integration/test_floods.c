/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hardening (the suite of test_hardening.c): floods of requests.
 *   - pipelined ListJobs or GetHistory on the local socket, never read, do
 *     not starve the workers' heartbeats nor grow the controller;
 *   - a client posing as a worker (worker methods with a replayed MUNGE
 *     credential, pipelined) is refused at the door, before any credential
 *     check on the workers' credential thread;
 *   - the store readers' gate is fair between users: two users whose
 *     pipelined GetHistory keep every slot busy do not hold back a third
 *     user's request until their backlogs are read.
 * Behaviour only: the time bounds are there so a broken build fails
 * instead of hanging.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/auth/auth.h"
#include "lib/base/base.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"
#include "tests/integration/jobs_helpers.h"

/* ---- store reads flooded on the local socket ---------------------------------------------- */

static int local_connect(const it_cluster *c) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  int n = snprintf(a.sun_path, sizeof a.sun_path, "%.90s/traind/traind.sock", c->dir);
  cr_assert(n > 0 && (size_t)n < sizeof a.sun_path, "the socket path is too long");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  cr_assert(fd >= 0);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect %s: %s", a.sun_path,
               strerror(errno));
  return fd;
}

/* `n` pipelined requests for `method` with an empty payload, as one blob. */
static ty_buf pipelined(const char *method, int n) {
  ty_buf b;
  ty_buf_init(&b);
  for (int i = 0; i < n; i++) {
    ty_rpc_msg m = {.version = TY_RPC_VERSION,
                    .request_id = (uint64_t)i + 1,
                    .kind = TY_RPC_REQUEST,
                    .method = method};
    uint8_t *f;
    size_t len;
    cr_assert_eq(ty_rpc_encode(&m, &f, &len), 0);
    cr_assert_eq(ty_buf_append(&b, f, len), 0);
    free(f);
  }
  return b;
}

static long rss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  if (f) fclose(f);
  return kib;
}

/* One user pipelining store reads (ListJobs, GetHistory) on many
 * connections without reading an answer: the worker's heartbeats are not
 * held behind them (its node stays UP, its job is not requeued), another
 * client is answered, and traind's memory stays bounded. */
static void flood_store_reads(const char *method) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id;
  char err[256];
  cr_assert_eq(it_submit_sh(cl, "sleep 300", "victim", &id, err, sizeof err), 0, "%s", err);
  it_wait_state(cl, id, ST(RUNNING), 30000);
  long rss0 = rss_kib(c.traind), rss_max = rss0;
  enum { CONNS = 30 };
  int fds[CONNS];
  size_t sent[CONNS] = {0};
  for (int i = 0; i < CONNS; i++)
    fds[i] = local_connect(&c);
  ty_buf blob = pipelined(method, 5000);
  int64_t t0 = ty_mono_ms(), next_probe = t0 + 1000;
  while (ty_mono_ms() - t0 < (int64_t)c.node_timeout_ms * 2 + 2000) {
    for (int i = 0; i < CONNS; i++) {
      ssize_t k = sent[i] < blob.len ? send(fds[i], blob.data + sent[i], blob.len - sent[i], 0) : 0;
      if (k > 0) sent[i] += (size_t)k;
    }
    usleep(20000);
    if (ty_mono_ms() < next_probe) continue;
    ty_rpc_result r; /* answered within the call's bound, not after the flood */
    int rc = ty_rpc_client_call(cl, TY_M_LIST_NODES, NULL, 0, 10000, &r);
    cr_expect(rc == 0 && r.status == 0, "another client's ListNodes failed: %s", r.message);
    ty_rpc_result_close(&r);
    long rss = rss_kib(c.traind);
    if (rss > rss_max) rss_max = rss;
    next_probe = ty_mono_ms() + 1000;
  }
  for (int i = 0; i < CONNS; i++)
    close(fds[i]);
  ty_buf_close(&blob);
  cr_expect_eq(it_job_state(cl, id), ST(RUNNING), "the running job was disturbed");
  char path[340];
  snprintf(path, sizeof path, "%s/traind.stderr", c.dir);
  char *log = it_read_text(path);
  cr_expect(log && !strstr(log, "is DOWN"), "the node went DOWN:\n%s", log ? log : "(no log)");
  free(log);
  /* Under a sanitizer freed memory is quarantined: no bound to check. */
  cr_expect(it_sanitized() || rss_max - rss0 < 64 * 1024, "traind grew from %ld KiB to %ld KiB",
            rss0, rss_max);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(hardening, a_list_jobs_flood_does_not_starve_heartbeats, .timeout = 180) {
  flood_store_reads(TY_M_LIST_JOBS);
}

/* The flood's paths (pipelined requests held on their connections, store
 * reads beside the heartbeats, the commit thread) are the ListJobs
 * flood's: under the sanitizers, where a flood lasts 22 s, that one runs
 * them. */
Test(hardening, a_get_history_flood_does_not_starve_heartbeats, .timeout = 180) {
  it_unsanitized_only("a_list_jobs_flood_does_not_starve_heartbeats");
  flood_store_reads(TY_M_GET_HISTORY);
}

/* ---- a client posing as a worker ---------------------------------------------------- */

/* Appends one REQUEST frame for `method` (empty payload) with the
 * credential `auth` to b. */
static void request_frame(ty_buf *b, uint64_t id, const char *method, const uint8_t *auth,
                          size_t auth_len) {
  ty_rpc_msg m = {.version = TY_RPC_VERSION,
                  .request_id = id,
                  .kind = TY_RPC_REQUEST,
                  .method = method,
                  .auth = auth,
                  .auth_len = auth_len};
  uint8_t *f;
  size_t len;
  cr_assert_eq(ty_rpc_encode(&m, &f, &len), 0);
  cr_assert_eq(ty_buf_append(b, f, len), 0);
  free(f);
}

/* One answer frame read from fd (10 s at most): its status and message by
 * request id (ids 1 to 3). */
static void read_answer(int fd, int status[4], char msg[4][TY_ERR_LEN]) {
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  uint8_t head[4];
  cr_assert_eq(recv(fd, head, 4, MSG_WAITALL), 4, "no answer: %s", strerror(errno));
  uint32_t n = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
  uint8_t *body = malloc(n);
  cr_assert(body);
  cr_assert_eq(recv(fd, body, n, MSG_WAITALL), (ssize_t)n, "a short answer");
  ty_rpc_msg m;
  void *owner;
  cr_assert_eq(ty_rpc_decode(body, n, &m, &owner), 0);
  cr_assert(m.request_id >= 1 && m.request_id <= 3, "answer to request %llu",
            (unsigned long long)m.request_id);
  status[m.request_id] = m.status;
  snprintf(msg[m.request_id], TY_ERR_LEN, "%s", m.message);
  ty_rpc_msg_free(owner);
  free(body);
}

/* Worker methods are checked on the workers' own credential thread, one
 * munged round trip each (a replayed credential too), ahead of every
 * node's heartbeat: a client pipelining them there on many connections
 * held the heartbeats back until every node went DOWN. On a connection
 * that is no registered node's, a worker method other than one
 * RegisterNode at a time is refused at the door, before its credential is
 * looked at: here all three carry one credential (for the first), so a
 * check would have answered "replayed" or "does not match". */
Test(hardening, a_client_posing_as_a_worker_is_refused_before_any_credential_check, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_auth *auth;
  char err[TY_ERR_LEN];
  ty_auth_config cfg = {.mode = TY_AUTH_MUNGE, .munge_socket = c.munged.socket};
  cr_assert_eq(ty_auth_create(&cfg, &auth, err, sizeof err), 0, "%s", err);
  uint8_t *cred = NULL;
  size_t cred_len = 0;
  cr_assert_eq(ty_auth_sign(auth, TY_M_REGISTER_NODE, NULL, 0, &cred, &cred_len, err, sizeof err),
               0, "%s", err);
  ty_buf b;
  ty_buf_init(&b);
  request_frame(&b, 1, TY_M_REGISTER_NODE, cred, cred_len);
  request_frame(&b, 2, TY_M_REGISTER_NODE, cred, cred_len);
  request_frame(&b, 3, TY_M_HEARTBEAT, cred, cred_len);
  int fd = it_raw_connect(c.rpc_port);
  cr_assert_eq(send(fd, b.data, b.len, 0), (ssize_t)b.len);
  int status[4] = {0};
  char msg[4][TY_ERR_LEN] = {{0}};
  for (int i = 0; i < 3; i++)
    read_answer(fd, status, msg);
  cr_expect_eq(status[2], TY_ESTATE, "%s", msg[2]);
  cr_expect(strstr(msg[2], "RegisterNode while another request is in flight on this connection"),
            "the second RegisterNode: %s", msg[2]);
  cr_expect_eq(status[3], TY_ESTATE, "%s", msg[3]);
  cr_expect(strstr(msg[3], "Heartbeat before RegisterNode on this connection"), "the Heartbeat: %s",
            msg[3]);
  cr_expect(!strstr(msg[1], "in flight"), "the first RegisterNode was checked: %s", msg[1]);
  close(fd);
  ty_buf_close(&b);
  free(cred);
  ty_auth_destroy(auth);
  /* The real worker, registered, is served as before. */
  ty_rpc_client *cl = it_client(&c);
  uint64_t id;
  cr_assert_eq(it_submit_sh(cl, "true", "after", &id, err, sizeof err), 0, "%s", err);
  cr_expect_eq(it_wait_state(cl, id, ST(COMPLETED), 30000), ST(COMPLETED));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- the store readers' gate between users -------------------------------------------- */

/* Counts the whole frames in `n` bytes read from a stream (*head, *got and
 * *left carry a frame cut between reads). */
static int count_frames(const uint8_t *p, size_t n, uint8_t head[4], size_t *got, size_t *left) {
  int frames = 0;
  for (size_t k = 0; k < n;) {
    if (*left) {
      size_t take = n - k < *left ? n - k : *left;
      *left -= take, k += take;
      frames += *left == 0;
      continue;
    }
    head[(*got)++] = p[k++];
    if (*got < 4) continue;
    *got = 0;
    *left = (size_t)head[0] << 24 | (size_t)head[1] << 16 | (size_t)head[2] << 8 | head[3];
    frames += *left == 0;
  }
  return frames;
}

/* A child as uid: `CONNS` connections each pipelining `n` GetHistory
 * requests, each with a MUNGE credential of its own; it counts the answers
 * into *answered (shared) until it is killed. */
enum { FLOOD_CONNS = 2 };
static pid_t history_reader_as(const it_cluster *c, uid_t uid, gid_t gid, int n, int *answered) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid > 0) return pid;
  if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(120);
  ty_auth_config cfg = {.mode = TY_AUTH_MUNGE, .munge_socket = c->munged.socket};
  ty_auth *a;
  char err[TY_ERR_LEN];
  if (ty_auth_create(&cfg, &a, err, sizeof err) != 0) _exit(121);
  struct pollfd p[FLOOD_CONNS];
  uint8_t head[FLOOD_CONNS][4];
  size_t got[FLOOD_CONNS] = {0}, left[FLOOD_CONNS] = {0};
  for (int i = 0; i < FLOOD_CONNS; i++) {
    ty_buf b;
    ty_buf_init(&b);
    for (int k = 0; k < n; k++) {
      uint8_t *cred;
      size_t len;
      if (ty_auth_sign(a, TY_M_GET_HISTORY, NULL, 0, &cred, &len, err, sizeof err) != 0) _exit(122);
      request_frame(&b, (uint64_t)k + 1, TY_M_GET_HISTORY, cred, len);
      free(cred);
    }
    p[i] = (struct pollfd){.fd = it_raw_connect(c->rpc_port), .events = POLLIN};
    if (send(p[i].fd, b.data, b.len, 0) != (ssize_t)b.len) _exit(123);
    ty_buf_close(&b);
  }
  static uint8_t chunk[1 << 16];
  while (poll(p, FLOOD_CONNS, -1) > 0)
    for (int i = 0; i < FLOOD_CONNS; i++) {
      ssize_t k = p[i].revents ? read(p[i].fd, chunk, sizeof chunk) : 0;
      if (k > 0)
        __atomic_add_fetch(answered, count_frames(chunk, (size_t)k, head[i], &got[i], &left[i]),
                           __ATOMIC_SEQ_CST);
    }
  _exit(0);
}

/* Two operators (they read everyone's 10000 ended jobs) pipeline GetHistory
 * on two connections each, so their reads hold all 4 of the gate's slots,
 * 2 each, for many reads. A third user's GetHistory goes in the next slot
 * that frees: answered while most of their backlog still waits. (The gate
 * once ran the oldest waiter that fit: each freed slot went to its owner's
 * own older waiters, and the third user waited for both backlogs.) */
Test(hardening, a_third_users_store_read_is_not_held_behind_two_backlogs, .timeout = 240) {
  char a_name[64], b_name[64], extra[200];
  uid_t a_uid, b_uid;
  gid_t a_gid, b_gid;
  it_user_add(a_name, sizeof a_name, &a_uid, &a_gid);
  it_user_add(b_name, sizeof b_name, &b_uid, &b_gid);
  snprintf(extra, sizeof extra, "auth.operators = %s\nauth.operators = %s\n", a_name, b_name);
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.config_extra = extra});
  uint64_t arr = it_submit_cli(&c, (const char *[]){"-H", "--array", "0-9999", "--", "true", NULL});
  char sid[24], *out = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)arr);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"cancel", sid, NULL}), 0);
  free(out);
  enum { EACH = 100 }; /* per connection: under --max-inflight, all read at once */
  int *answered =
      mmap(NULL, 2 * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert(answered != MAP_FAILED);
  answered[0] = answered[1] = 0;
  pid_t a = history_reader_as(&c, a_uid, a_gid, EACH, &answered[0]);
  pid_t b = history_reader_as(&c, b_uid, b_gid, EACH, &answered[1]);
  for (int i = 0; i < 3000 && (__atomic_load_n(&answered[0], __ATOMIC_SEQ_CST) == 0 ||
                               __atomic_load_n(&answered[1], __ATOMIC_SEQ_CST) == 0);
       i++)
    it_sleep_ms(10); /* both backlogs are queued and being read */
  ty_rpc_client *cl = it_client(&c);
  ty_rpc_result r;
  int rc = ty_rpc_client_call(cl, TY_M_GET_HISTORY, NULL, 0, 120000, &r);
  int done = __atomic_load_n(&answered[0], __ATOMIC_SEQ_CST) +
             __atomic_load_n(&answered[1], __ATOMIC_SEQ_CST);
  cr_expect(rc == 0 && r.status == 0, "the third user's GetHistory: %s", r.message);
  ty_rpc_result_close(&r);
  cr_expect_lt(done, 2 * FLOOD_CONNS * EACH / 2,
               "%d of the two backlogs' %d reads were answered before the third user's", done,
               2 * FLOOD_CONNS * EACH);
  kill(a, SIGKILL), kill(b, SIGKILL);
  waitpid(a, NULL, 0), waitpid(b, NULL, 0);
  munmap(answered, 2 * sizeof(int));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
