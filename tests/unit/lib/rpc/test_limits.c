/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The limits at the door of lib/rpc (ty_rpc_limits) over real loopback
 * sockets: a pipelining peer that never reads stops being read instead of
 * growing the write queue; requests beyond max_inflight wait in the socket;
 * the handshake deadline, the idle timeout and a stalled reader each close
 * only their connection; connections beyond the per-address and total caps
 * are refused and counted. Raw blocking sockets play the hostile peers.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "rpc_test_util.h"

/* 0 once the whole frame is sent; -1 when the socket took less (with
 * MSG_DONTWAIT: its buffers are full; a partial frame is never completed). */
static int send_request(int fd, uint64_t id, const char *method, const void *payload, size_t n,
                        int flags) {
  ty_rpc_msg m = {.version = TY_RPC_VERSION,
                  .request_id = id,
                  .kind = TY_RPC_REQUEST,
                  .method = method,
                  .payload = payload,
                  .payload_len = n};
  uint8_t *frame;
  size_t len;
  cr_assert_eq(ty_rpc_encode(&m, &frame, &len), 0);
  ssize_t w = send(fd, frame, len, MSG_NOSIGNAL | flags);
  free(frame);
  if (w < 0) cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "send: %s", strerror(errno));
  return w == (ssize_t)len ? 0 : -1;
}

/* True when something arrives on fd within ms. */
static bool readable_within(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, ms) == 1;
}

/* The server's counters, retried while a cap refuses the Stats connection. */
static tserver_stats stats_of(tserver *t) {
  tserver_stats s = tserver_get_stats(t->port);
  for (int i = 0; i < 100 && s.accepted < 0; i++) {
    usleep(50 * 1000);
    s = tserver_get_stats(t->port);
  }
  cr_assert_geq(s.accepted, 0, "Stats never answered");
  return s;
}

/* The server's counters asked over fd, an admitted connection with nothing
 * else in flight (a new connection could be refused or evict one). */
static tserver_stats stats_over(int fd) {
  cr_assert_eq(send_request(fd, 99, "Stats", NULL, 0, 0), 0);
  ty_frame_reader rd;
  ty_frame_reader_init(&rd, 0);
  ty_rpc_msg m;
  void *owner;
  cr_assert_eq(raw_read_msg(fd, &rd, &m, &owner), 0);
  tserver_stats st;
  cr_assert_eq(m.payload_len, sizeof st);
  memcpy(&st, m.payload, sizeof st);
  ty_rpc_msg_free(owner);
  ty_frame_reader_close(&rd);
  return st;
}

/* Answers every Hold request, through a connection of its own. */
static void release_held(const tserver *t) {
  ty_rpc_client *c;
  cr_assert_eq(ty_rpc_client_open("127.0.0.1", t->port, 5000, &c), 0);
  ty_rpc_result r;
  cr_assert_eq(ty_rpc_client_call(c, "Release", NULL, 0, 5000, &r), 0);
  ty_rpc_result_close(&r);
  ty_rpc_client_close(c);
}

static void expect_answers(int fd, uint64_t first, uint64_t n) {
  ty_frame_reader r;
  ty_frame_reader_init(&r, 0);
  for (uint64_t i = 0; i < n; i++) {
    ty_rpc_msg m;
    void *owner;
    cr_assert_eq(raw_read_msg(fd, &r, &m, &owner), 0, "answer %llu of %llu missing",
                 (unsigned long long)i, (unsigned long long)n);
    cr_assert_eq(m.request_id, first + i, "answers out of order");
    cr_assert_eq(m.status, 0);
    ty_rpc_msg_free(owner);
  }
  ty_frame_reader_close(&r);
}

/* The refusal a connection over a cap gets before it closes: busy, naming
 * the limit (`flag`). */
static void expect_refusal(int fd, const char *flag) {
  ty_frame_reader r;
  ty_frame_reader_init(&r, 0);
  ty_rpc_msg m;
  void *owner;
  cr_assert_eq(raw_read_msg(fd, &r, &m, &owner), 0, "no refusal before the close");
  cr_assert_eq(m.request_id, TY_RPC_REFUSAL_ID);
  cr_assert_eq(m.status, UV_EBUSY);
  cr_assert(m.message && strstr(m.message, "the server is busy: ") && strstr(m.message, flag),
            "refusal: %s", m.message ? m.message : "(none)");
  ty_rpc_msg_free(owner);
  ty_frame_reader_close(&r);
}

Test(limits, pipelining_without_reading_stops_reading_not_memory) {
  tserver t;
  cr_assert_eq(tserver_start(&t, NULL, 0), 0); /* write high water: 64 KiB */
  int fd = raw_connect(t.port);
  cr_assert_geq(fd, 0);
  static char payload[1024];
  memset(payload, 'p', sizeof payload);
  /* Send until the kernel's buffers are full: the server stopped reading. */
  uint64_t sent = 0;
  while (sent < 200000 &&
         send_request(fd, sent + 1, "Echo", payload, sizeof payload, MSG_DONTWAIT) == 0)
    sent++;
  cr_assert_lt(sent, 200000, "the server read %llu requests without being read",
               (unsigned long long)sent);
  tserver_stats s = stats_of(&t);
  cr_assert_leq(s.max_queued, 64 * 1024 + 2 * sizeof payload, "queued %u bytes", s.max_queued);
  /* Reading the answers lets the server read the rest, in order. */
  expect_answers(fd, 1, sent);
  close(fd);
  tserver_stop(&t);
}

Test(limits, requests_beyond_max_inflight_wait_until_answers_free_room) {
  tserver t;
  ty_rpc_limits l = {.max_inflight = 4};
  cr_assert_eq(tserver_start_limits(&t, &l, 0), 0);
  int fd = raw_connect(t.port);
  for (uint64_t id = 1; id <= 4; id++)
    cr_assert_eq(send_request(fd, id, "Hold", NULL, 0, 0), 0);
  cr_assert_eq(send_request(fd, 5, "Echo", "x", 1, 0), 0);
  cr_assert_not(readable_within(fd, 300), "the fifth request was served past max_inflight");
  release_held(&t);
  /* The four held answers (any order among themselves), then the Echo. */
  ty_frame_reader rd;
  ty_frame_reader_init(&rd, 0);
  uint64_t seen = 0;
  for (int i = 0; i < 5; i++) {
    ty_rpc_msg m;
    void *owner;
    cr_assert_eq(raw_read_msg(fd, &rd, &m, &owner), 0);
    seen |= 1u << m.request_id;
    if (i < 4) cr_assert_neq(m.request_id, 5, "Echo answered before the room was freed");
    ty_rpc_msg_free(owner);
  }
  cr_assert_eq(seen, 0x3e);
  ty_frame_reader_close(&rd);
  close(fd);
  tserver_stop(&t);
}

/* A stream that sent its first frame is answered, not in flight: a peer
 * may hold more open streams than max_inflight and is still read (once,
 * 130 WatchJobs wedged traind's connection: the 129th never started, the
 * CANCELs and the close were never read, and the watches outlived it). */
Test(limits, open_streams_do_not_count_as_in_flight) {
  tserver t;
  ty_rpc_limits l = {.max_inflight = 4};
  cr_assert_eq(tserver_start_limits(&t, &l, 0), 0);
  int fd = raw_connect(t.port);
  enum { STREAMS = 10 };
  for (uint64_t id = 1; id <= STREAMS; id++)
    cr_assert_eq(send_request(fd, id, "Forever", NULL, 0, 0), 0);
  ty_frame_reader rd;
  ty_frame_reader_init(&rd, 0);
  uint32_t started = 0;
  for (int i = 0; i < 20000 && started != (1u << STREAMS) - 1; i++) {
    ty_rpc_msg m;
    void *owner;
    cr_assert_eq(raw_read_msg(fd, &rd, &m, &owner), 0);
    if (m.kind == TY_RPC_STREAM && m.request_id >= 1 && m.request_id <= STREAMS)
      started |= 1u << (m.request_id - 1);
    ty_rpc_msg_free(owner);
  }
  cr_assert_eq(started, (1u << STREAMS) - 1, "streams started: %#x of %#x", started,
               (1u << STREAMS) - 1);
  ty_frame_reader_close(&rd);
  close(fd); /* the close is read: every stream ends with the connection */
  /* Up to 30 s for the server to read the close and end the streams (a
   * loaded machine's server loop may be slow to get there). */
  tserver_stats s = stats_of(&t);
  for (int64_t end = ty_mono_ms() + 30000; s.cancels < STREAMS && ty_mono_ms() < end;) {
    usleep(20 * 1000);
    s = stats_of(&t);
  }
  cr_assert_eq(s.cancels, STREAMS, "%d of %d streams ended with their connection", s.cancels,
               STREAMS);
  tserver_stop(&t);
}

Test(limits, handshake_deadline_closes_silent_and_slow_peers) {
  tserver t;
  ty_rpc_limits l = {.handshake_ms = 200};
  cr_assert_eq(tserver_start_limits(&t, &l, 0), 0);
  int silent = raw_connect(t.port);
  int slow = raw_connect(t.port);
  static const uint8_t part[] = {0, 0, 0, 40, 1, 2}; /* a header and 2 of 40 bytes */
  cr_assert_eq(raw_send_all(slow, part, sizeof part), 0);
  cr_assert_eq(raw_wait_closed(silent), 0, "a silent connection outlived the handshake deadline");
  cr_assert_eq(raw_wait_closed(slow), 0, "a slow header outlived the handshake deadline");
  close(silent);
  close(slow);
  /* At least: the Stats connection is held to the same 200 ms itself, and
   * a loaded host may stall this thread that long between its connect and
   * its request (stats_of then asks again). */
  tserver_stats s = stats_of(&t);
  cr_assert_geq(s.conns.closed_handshake, 2);
  tserver_stop(&t);
}

Test(limits, idle_connections_close_but_quiet_streams_stay) {
  tserver t;
  ty_rpc_limits l = {.idle_ms = 200};
  cr_assert_eq(tserver_start_limits(&t, &l, 0), 0);
  int idle = raw_connect(t.port);
  int holding = raw_connect(t.port);
  cr_assert_eq(send_request(idle, 1, "Echo", "x", 1, 0), 0);
  cr_assert_eq(send_request(holding, 1, "Hold", NULL, 0, 0), 0);
  expect_answers(idle, 1, 1);
  cr_assert_eq(raw_wait_closed(idle), 0, "an idle connection was kept");
  close(idle);
  /* Three idle periods later the held request still gets its answer. */
  usleep(600 * 1000);
  release_held(&t);
  expect_answers(holding, 1, 1);
  close(holding);
  tserver_stats s = stats_of(&t);
  cr_assert_geq(s.conns.closed_idle, 1);
  tserver_stop(&t);
}

Test(limits, a_peer_that_stopped_reading_is_closed) {
  tserver t;
  ty_rpc_limits l = {.idle_ms = 300};
  cr_assert_eq(tserver_start_limits(&t, &l, 0), 0);
  int fd = raw_connect(t.port);
  static uint8_t payload[8192];
  ty_rpc_msg m = {.version = TY_RPC_VERSION,
                  .kind = TY_RPC_REQUEST,
                  .method = "Echo",
                  .payload = payload,
                  .payload_len = sizeof payload};
  uint8_t *frame;
  size_t len;
  cr_assert_eq(ty_rpc_encode(&m, &frame, &len), 0); /* one id for all: answered in turn */
  /* Keep pipelining, never read: once the kernel's buffers are full the
   * server's replies stop moving and it gives up on the connection. The
   * bound is time, not a count of sends: the server's receive buffer grows
   * up to net.ipv4.tcp_rmem's maximum (32 MiB on some hosts) before the
   * sends ever block (2000 sends of 8 KiB once fell short of that). */
  size_t off = 0;
  int closed = 0;
  for (int64_t end = ty_now_ms() + 30000; ty_now_ms() < end && !closed;) {
    ssize_t w = send(fd, frame + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0)
      off = (off + (size_t)w) % len;
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
      usleep(5000);
    else
      closed = 1;
  }
  free(frame);
  cr_assert(closed, "a peer that never reads was kept");
  close(fd);
  tserver_stats s = stats_of(&t);
  cr_assert_eq(s.conns.closed_stalled, 1);
  tserver_stop(&t);
}

Test(limits, connections_beyond_the_caps_are_refused_and_counted) {
  tserver t;
  ty_rpc_limits l = {.max_conns_per_addr = 3, .max_conns = 5};
  cr_assert_eq(tserver_start_limits(&t, &l, 0), 0);
  int fds[3];
  for (int i = 0; i < 3; i++) { /* each shows a credential: none is evicted */
    fds[i] = raw_connect(t.port);
    cr_assert_eq(send_request(fds[i], 1, "Prove", NULL, 0, 0), 0);
    expect_answers(fds[i], 1, 1);
  }
  int extra = raw_connect(t.port);
  cr_assert_eq(raw_wait_closed(extra), 0, "a fourth connection from one address was served");
  close(extra);
  /* Other addresses are still admitted, up to the total cap; with every
   * connection proven, a sixth is refused, saying so before it closes. */
  int other[3];
  for (int i = 0; i < 2; i++) {
    other[i] = raw_connect_from("127.0.0.2", t.port);
    cr_assert_eq(send_request(other[i], 7, "Prove", NULL, 0, 0), 0);
    expect_answers(other[i], 7, 1);
  }
  other[2] = raw_connect_from("127.0.0.3", t.port);
  expect_refusal(other[2], "--max-conns");
  cr_assert_eq(raw_wait_closed(other[2]), 0, "a sixth connection was served past the total cap");
  /* Ask over an admitted connection: a new one could be refused itself. */
  tserver_stats st = stats_over(fds[0]);
  cr_assert_eq(st.conns.refused_per_addr, 1);
  cr_assert_eq(st.conns.refused_total, 1);
  cr_assert_eq(st.conns.accepted, 5);
  cr_assert_eq(st.conns.open, 5);
  for (int i = 0; i < 3; i++)
    close(fds[i]), close(other[i]);
  tserver_stop(&t);
}

/* At its address's cap, a new connection evicts the oldest one that never
 * showed a credential, so peers that never authenticate (a hog holding
 * every slot of a login node's address) lock no one out; one that showed a
 * credential is never evicted. */
Test(limits, the_address_cap_evicts_connections_without_a_credential) {
  tserver t;
  ty_rpc_limits l = {.max_conns_per_addr = 3};
  cr_assert_eq(tserver_start_limits(&t, &l, 0), 0);
  int proven = raw_connect(t.port);
  cr_assert_eq(send_request(proven, 1, "Prove", NULL, 0, 0), 0);
  expect_answers(proven, 1, 1);
  int hog[2];
  for (int i = 0; i < 2; i++) {
    hog[i] = raw_connect(t.port);
    cr_assert_eq(send_request(hog[i], 1, "Echo", "x", 1, 0), 0);
    expect_answers(hog[i], 1, 1);
  }
  int fresh = raw_connect(t.port); /* the oldest hog goes */
  cr_assert_eq(send_request(fresh, 1, "Echo", "y", 1, 0), 0);
  expect_answers(fresh, 1, 1);
  cr_assert_eq(raw_wait_closed(hog[0]), 0, "the oldest connection without a credential stayed");
  cr_assert_eq(send_request(proven, 2, "Echo", "z", 1, 0), 0);
  expect_answers(proven, 2, 1);
  cr_assert_eq(send_request(hog[1], 2, "Echo", "z", 1, 0), 0);
  expect_answers(hog[1], 2, 1);
  /* Asked over a connection of the three: a new one would evict another. */
  tserver_stats s = stats_over(proven);
  cr_assert_eq(s.conns.closed_unproven, 1);
  cr_assert_eq(s.conns.refused_per_addr, 0);
  close(hog[0]), close(hog[1]), close(fresh), close(proven);
  tserver_stop(&t);
}

/* At the total cap, spread over many addresses each under its own cap, a
 * new connection evicts the oldest one of all that never showed a
 * credential: idle peers on several addresses lock no one out either. */
Test(limits, the_total_cap_evicts_connections_without_a_credential) {
  tserver t;
  ty_rpc_limits l = {.max_conns_per_addr = 3, .max_conns = 4};
  cr_assert_eq(tserver_start_limits(&t, &l, 0), 0);
  int proven = raw_connect(t.port);
  cr_assert_eq(send_request(proven, 1, "Prove", NULL, 0, 0), 0);
  expect_answers(proven, 1, 1);
  int hog[3];
  for (int i = 0; i < 3; i++) { /* one each from three addresses, never a request */
    char from[16];
    snprintf(from, sizeof from, "127.0.0.%d", i + 2);
    hog[i] = raw_connect_from(from, t.port);
  }
  /* Served in turn, so the server has admitted the hogs before it. */
  cr_assert_eq(send_request(proven, 2, "Echo", "z", 1, 0), 0);
  expect_answers(proven, 2, 1);
  int fresh = raw_connect_from("127.0.0.9", t.port); /* the oldest hog goes */
  cr_assert_eq(send_request(fresh, 1, "Echo", "y", 1, 0), 0);
  expect_answers(fresh, 1, 1);
  cr_assert_eq(raw_wait_closed(hog[0]), 0, "the oldest connection without a credential stayed");
  tserver_stats s = stats_over(proven);
  cr_assert_eq(s.conns.closed_unproven, 1);
  cr_assert_eq(s.conns.refused_total, 0);
  for (int i = 0; i < 3; i++)
    close(hog[i]);
  close(fresh), close(proven);
  tserver_stop(&t);
}

/* Near the process's descriptor limit (RLIMIT_NOFILE, lowered here as
 * prlimit would) a connection is refused while descriptors remain, said to
 * the peer, logged and counted, instead of libuv dropping connections
 * unseen once accept fails with EMFILE. Peer and server share the
 * process, so each connection takes two descriptors of it. */
Test(limits, the_descriptor_limit_refuses_connections_before_it_is_reached) {
  tserver t;
  cr_assert_eq(tserver_start_limits(&t, &(ty_rpc_limits){0}, 0), 0);
  int probe = raw_connect(t.port); /* admitted, to ask for the stats later */
  cr_assert_eq(send_request(probe, 1, "Prove", NULL, 0, 0), 0);
  expect_answers(probe, 1, 1);
  struct rlimit old, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  int lowest = dup(0);
  close(lowest);
  low = (struct rlimit){.rlim_cur = (rlim_t)lowest + 48, .rlim_max = old.rlim_max};
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  int fds[40], n = 0;
  bool refused = false;
  while (n < 40 && !refused) {
    fds[n] = raw_connect(t.port);
    cr_assert_geq(fds[n], 0, "the peer ran out of descriptors before any refusal");
    int fd = fds[n++];
    cr_assert_eq(send_request(fd, 1, "Prove", NULL, 0, 0), 0); /* none may be evicted */
    ty_frame_reader r;
    ty_frame_reader_init(&r, 0);
    ty_rpc_msg m;
    void *owner;
    cr_assert_eq(raw_read_msg(fd, &r, &m, &owner), 0, "connection %d closed without a word", n);
    refused = m.request_id == TY_RPC_REFUSAL_ID;
    if (refused)
      cr_assert(m.status == UV_EBUSY && strstr(m.message, "RLIMIT_NOFILE"), "refusal: %s",
                m.message);
    ty_rpc_msg_free(owner);
    ty_frame_reader_close(&r);
  }
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  cr_assert(refused, "%d connections near the descriptor limit, none refused", n);
  tserver_stats s = stats_over(probe);
  cr_assert_geq(s.conns.refused_total, 1);
  for (int i = 0; i < n; i++)
    close(fds[i]);
  close(probe);
  tserver_stop(&t);
}

/* Near the descriptor limit, as at the connection caps, the oldest
 * connection that never had a request admitted makes room for a new one:
 * silent peers filling the descriptors lock no one out. */
Test(limits, near_the_descriptor_limit_silent_connections_make_room) {
  tserver t;
  cr_assert_eq(tserver_start_limits(&t, &(ty_rpc_limits){0}, 0), 0);
  struct rlimit old, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  int lowest = dup(0);
  close(lowest);
  low = (struct rlimit){.rlim_cur = (rlim_t)lowest + 48, .rlim_max = old.rlim_max};
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  /* Peer and server share the process: two descriptors a connection, so
   * these pass the server's reserve (a quarter of the limit) by a few. */
  int reserve = (lowest + 48) / 4, n = (48 - reserve) / 2 + 3, hog[24];
  cr_assert_leq(n, 24);
  for (int i = 0; i < n; i++) {
    hog[i] = raw_connect(t.port);
    cr_assert_geq(hog[i], 0, "the peer ran out of descriptors");
    usleep(20 * 1000); /* accepted in turn: the oldest is hog[0] */
  }
  int fresh = raw_connect(t.port);
  cr_assert_geq(fresh, 0);
  cr_assert_eq(send_request(fresh, 1, "Echo", "y", 1, 0), 0);
  expect_answers(fresh, 1, 1);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  cr_assert_eq(raw_wait_closed(hog[0]), 0, "no silent connection made room");
  for (int i = 0; i < n; i++)
    close(hog[i]);
  close(fresh);
  tserver_stop(&t);
}

/* Twenty peers pipeline 2000 requests each; a request on a fresh
 * connection is served within a few turns, not after their 40,000. The
 * server's loop is stalled (Stall) while every request is sent, so that
 * all of them wait when it goes on, whatever the scheduler does to this
 * thread meanwhile. */
Test(limits, pipelining_peers_do_not_starve_a_new_request) {
  enum { PEERS = 20, EACH = 2000 };
  tserver t;
  cr_assert_eq(tserver_start(&t, NULL, 0), 0);
  int fds[PEERS];
  ty_buf burst;
  ty_buf_init(&burst);
  for (uint64_t id = 1; id <= EACH; id++) {
    ty_rpc_msg m = {.version = TY_RPC_VERSION,
                    .request_id = id,
                    .kind = TY_RPC_REQUEST,
                    .method = "Echo",
                    .payload = (const uint8_t *)"x",
                    .payload_len = 1};
    uint8_t *frame;
    size_t len;
    cr_assert_eq(ty_rpc_encode(&m, &frame, &len), 0);
    ty_buf_append(&burst, frame, len);
    free(frame);
  }
  /* Each peer's burst (~50 KB) is sent while the server's loop is stalled:
   * it must fit in the peer's send buffer and the server's receive window,
   * whatever the kernel's defaults, or the send blocks for good. */
  for (int i = 0; i < PEERS; i++) {
    fds[i] = raw_connect(t.port);
    int big = 1 << 20;
    setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  }
  int probe = raw_connect(t.port), go[2], stopped[2];
  cr_assert(pipe(go) == 0 && pipe(stopped) == 0);
  int stall[2] = {go[0], stopped[1]};
  char b;
  cr_assert_eq(send_request(probe, 1, "Stall", stall, sizeof stall, 0), 0);
  cr_assert_eq(read(stopped[0], &b, 1), 1, "the server's loop did not stall");
  for (int i = 0; i < PEERS; i++)
    cr_assert_eq(raw_send_all(fds[i], burst.data, burst.len), 0);
  cr_assert_eq(send_request(probe, 2, "Echo", "probe", 5, 0), 0);
  cr_assert_eq(write(go[1], "g", 1), 1);
  expect_answers(probe, 1, 2); /* the Stall's, then the probe's */
  for (int i = 0; i < PEERS; i++)
    expect_answers(fds[i], 1, EACH);
  tserver_stats s = stats_of(&t);
  cr_assert_eq(s.echoes, PEERS * EACH + 1);
  cr_assert_lt(s.echoes_before_probe, PEERS * EACH / 2, "the new request waited for %u others",
               s.echoes_before_probe);
  for (int i = 0; i < PEERS; i++)
    close(fds[i]);
  close(probe);
  for (int i = 0; i < 2; i++)
    close(go[i]), close(stopped[i]);
  ty_buf_close(&burst);
  tserver_stop(&t);
}

/* Eight peers pipeline without reading against a 1 MiB write high-water
 * mark each: past the server's 256 KiB budget for queued answers, a conn
 * holding more than its share stops being read, so none gets near 1 MiB. */
Test(limits, queued_answers_of_all_conns_are_capped) {
  enum { PEERS = 8, FRAMES = 400 };
  tserver t;
  ty_rpc_limits l = {.max_queued_total = 256 * 1024};
  cr_assert_eq(tserver_start_limits(&t, &l, 1024 * 1024), 0);
  /* Each peer's script: FRAMES Echo requests of 32 KiB (large answers fill
   * the kernel's buffers soon), sent as far as its socket takes them. */
  static uint8_t payload[32 * 1024];
  ty_buf script;
  ty_buf_init(&script);
  size_t frame_len = 0;
  for (uint64_t id = 1; id <= FRAMES; id++) {
    ty_rpc_msg m = {.version = TY_RPC_VERSION,
                    .request_id = id,
                    .kind = TY_RPC_REQUEST,
                    .method = "Echo",
                    .payload = payload,
                    .payload_len = sizeof payload};
    uint8_t *frame;
    cr_assert_eq(ty_rpc_encode(&m, &frame, &frame_len), 0);
    ty_buf_append(&script, frame, frame_len);
    free(frame);
  }
  int fds[PEERS];
  size_t off[PEERS] = {0};
  for (int i = 0; i < PEERS; i++)
    fds[i] = raw_connect(t.port);
  for (int idle = 0; idle < 50;) {
    bool any = false;
    for (int i = 0; i < PEERS; i++) {
      ssize_t w =
          send(fds[i], script.data + off[i], script.len - off[i], MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) off[i] += (size_t)w, any = true;
    }
    idle = any ? 0 : idle + 1;
    if (!any) usleep(10 * 1000);
  }
  tserver_stats s = stats_of(&t);
  cr_assert_lt(s.max_queued, 512 * 1024, "one conn queued %u bytes", s.max_queued);
  /* Reading lets everything through. */
  for (int i = 0; i < PEERS; i++) {
    expect_answers(fds[i], 1, off[i] / frame_len);
    close(fds[i]);
  }
  ty_buf_close(&script);
  tserver_stop(&t);
}
