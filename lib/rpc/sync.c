/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_rpc_sync: the blocking client for one-shot commands (trainctl ls,
 * submit, show, cancel, ...). One TCP (or Unix stream) socket, the same frames and envelopes
 * as ty_rpc_conn (frame.c, envelope.c), and poll() with a deadline instead
 * of an event loop, so a process that makes one request neither loads nor
 * initialises libuv: nothing in this file or in what it calls refers to it
 * (issue 20 item 3; the integration test `ctl` checks the libraries ls
 * loads). Streams, several connections at once and signals stay with
 * ty_rpc_client (client.c).
 *
 * A call writes one REQUEST and reads frames until the RESPONSE (or END)
 * with its request id: STREAM items and answers to earlier, timed-out
 * calls are skipped, and a REQUEST from the peer is answered TY_ENOTFOUND
 * as a ty_rpc_conn without a handler would. A call that times out sends
 * CANCEL and leaves the connection usable; a closed connection, a write
 * that fails or a frame that does not decode ends it, and every later call
 * returns TY_ECLOSED. Not thread-safe: one client per thread.
 */
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "lib/rpc/rpc_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { READ_CHUNK = 64 * 1024 };

struct ty_rpc_sync {
  int fd; /* -1 once the connection has ended */
  ty_frame_reader rd;
  uint64_t next_id;
  uint64_t requests;  /* sent so far */
  ty_rpc_signer sign; /* makes each request's auth credential, or NULL */
  void *sign_ud;
};

void ty_rpc_result_close(ty_rpc_result *r) {
  if (!r) return;
  free(r->message);
  free(r->payload);
  *r = (ty_rpc_result){0};
}

void ty__rpc_result_fill(ty_rpc_result *out, int status, const char *message,
                         const uint8_t *payload, size_t len) {
  out->status = status;
  out->message = ty_strdup(message ? message : "");
  out->payload = NULL;
  out->payload_len = 0;
  if (payload && len) {
    out->payload = ty_xmalloc(len);
    memcpy(out->payload, payload, len);
    out->payload_len = len;
  }
}

/* ---- deadlines and waiting ---------------------------------------------------- */

/* -1: none; else the ty_mono_ms() by which it must be done. */
static int64_t deadline_in(uint32_t timeout_ms) {
  return timeout_ms ? ty_mono_ms() + timeout_ms : -1;
}

/* Waits until fd is ready for `events` (an error or hang-up counts as
 * ready: the read or write that follows reports it). 0, TY_ETIMEDOUT, or
 * -errno. */
static int wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    int ms = -1;
    if (deadline >= 0) {
      int64_t left = deadline - ty_mono_ms();
      if (left <= 0) return TY_ETIMEDOUT;
      ms = left > INT32_MAX ? INT32_MAX : (int)left;
    }
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, ms);
    if (n > 0) return 0;
    if (n == 0) return TY_ETIMEDOUT;
    if (errno != EINTR) return -errno;
  }
}

/* ---- connecting ------------------------------------------------------------------ */

/* A numeric address at once; a name through getaddrinfo (blocking: the
 * deadline does not bound the lookup), an IPv4 answer first, as daemons
 * listen on 0.0.0.0 by default and "localhost" often resolves to ::1 first.
 * TY_ENOTFOUND when the name has no address. */
static int resolve(const char *host, int port, struct sockaddr_storage *out, socklen_t *out_len) {
  memset(out, 0, sizeof *out);
  struct sockaddr_in *v4 = (struct sockaddr_in *)out;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *out_len = sizeof *v4;
    return 0;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    *out_len = sizeof *v6;
    return 0;
  }
  char service[8];
  snprintf(service, sizeof service, "%d", port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
  if (getaddrinfo(host, service, &hints, &res) != 0 || !res) return TY_ENOTFOUND;
  const struct addrinfo *pick = res;
  for (const struct addrinfo *a = res; a; a = a->ai_next)
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  int rc = pick->ai_addrlen <= sizeof *out ? 0 : TY_ENOTFOUND;
  if (rc == 0) {
    memcpy(out, pick->ai_addr, pick->ai_addrlen);
    *out_len = pick->ai_addrlen;
  }
  freeaddrinfo(res);
  return rc;
}

/* A non-blocking connect bounded by the deadline: 0, TY_ETIMEDOUT, or
 * -errno (-ECONNREFUSED, the same value as libuv's UV_ECONNREFUSED). */
static int connect_by(int fd, const struct sockaddr_storage *addr, socklen_t len,
                      int64_t deadline) {
  if (connect(fd, (const struct sockaddr *)addr, len) == 0) return 0;
  if (errno != EINPROGRESS && errno != EINTR) return -errno;
  int rc = wait_fd(fd, POLLOUT, deadline);
  if (rc != 0) return rc;
  int soerr = 0;
  socklen_t n = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &n) != 0) return -errno;
  return soerr ? -soerr : 0;
}

/* A Unix socket's address; TY_EINVAL when the path does not fit. */
static int unix_addr(const char *path, struct sockaddr_storage *out, socklen_t *out_len) {
  struct sockaddr_un *un = (struct sockaddr_un *)out;
  memset(out, 0, sizeof *out);
  if (strlen(path) >= sizeof un->sun_path) return TY_EINVAL;
  un->sun_family = AF_UNIX;
  memcpy(un->sun_path, path, strlen(path) + 1);
  *out_len = sizeof *un;
  return 0;
}

int ty_rpc_sync_open(const char *host, int port, uint32_t timeout_ms, ty_rpc_sync **out_client) {
  bool path = ty__rpc_is_path(host);
  if (!host || !host[0] || (!path && (port <= 0 || port > 65535)) || !out_client) return TY_EINVAL;
  int64_t deadline = deadline_in(timeout_ms);
  struct sockaddr_storage addr;
  socklen_t len = 0;
  int rc = path ? unix_addr(host, &addr, &len) : resolve(host, port, &addr, &len);
  if (rc != 0) return rc;
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  rc = connect_by(fd, &addr, len, deadline);
  ty_rpc_sync *c = rc == 0 ? calloc(1, sizeof *c) : NULL;
  if (rc == 0 && !c) rc = TY_ENOMEM;
  if (rc != 0) {
    close(fd);
    return rc;
  }
  int one = 1; /* requests are small and each waits for its answer */
  if (!path) (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->next_id = 1;
  ty_frame_reader_init(&c->rd, 0);
  *out_client = c;
  return 0;
}

static void end_connection(ty_rpc_sync *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
}

void ty_rpc_sync_close(ty_rpc_sync *c) {
  if (!c) return;
  end_connection(c);
  ty_frame_reader_close(&c->rd);
  free(c);
}

void ty_rpc_sync_set_signer(ty_rpc_sync *c, ty_rpc_signer sign, void *ud) {
  if (!c) return;
  c->sign = sign;
  c->sign_ud = ud;
}

uint64_t ty_rpc_sync_requests(const ty_rpc_sync *c) {
  return c ? c->requests : 0;
}

/* ---- frames out ------------------------------------------------------------------- */

/* Writes all of p by the deadline; TY_ECLOSED when the peer is gone. */
static int write_all(int fd, const uint8_t *p, size_t n, int64_t deadline) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w, n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return TY_ECLOSED;
    int rc = wait_fd(fd, POLLOUT, deadline);
    if (rc != 0) return rc;
  }
  return 0;
}

static int send_msg(ty_rpc_sync *c, const ty_rpc_msg *m, int64_t deadline) {
  uint8_t *frame = NULL;
  size_t len = 0;
  int rc = ty_rpc_encode(m, &frame, &len);
  if (rc != 0) return rc;
  if (len - TY_RPC_FRAME_HEADER > c->rd.max_frame) rc = TY_ETOOBIG;
  if (rc == 0) rc = write_all(c->fd, frame, len, deadline);
  free(frame);
  return rc;
}

/* The one place a request leaves the client, with its credential. */
static int send_request(ty_rpc_sync *c, const char *method, const void *payload, size_t len,
                        int64_t deadline, uint64_t *out_id) {
  ty_buf auth;
  ty_buf_init(&auth);
  int rc = c->sign ? c->sign(c->sign_ud, method, payload, len, &auth) : 0;
  ty_rpc_msg m = {.version = TY_RPC_VERSION,
                  .request_id = c->next_id,
                  .kind = TY_RPC_REQUEST,
                  .method = method,
                  .payload = payload,
                  .payload_len = len,
                  .auth = auth.data,
                  .auth_len = auth.len};
  if (rc == 0) rc = send_msg(c, &m, deadline);
  ty_buf_close(&auth);
  if (rc != 0) return rc;
  *out_id = c->next_id++;
  c->requests++;
  return 0;
}

/* A request from the peer: answered as a conn without a handler answers. */
static int refuse_request(ty_rpc_sync *c, const ty_rpc_msg *req, int64_t deadline) {
  char msg[TY_ERR_LEN];
  snprintf(msg, sizeof msg, "no handler for method %.100s", req->method);
  ty_rpc_msg m = {.version = TY_RPC_VERSION,
                  .request_id = req->request_id,
                  .kind = TY_RPC_RESPONSE,
                  .status = TY_ENOTFOUND,
                  .message = msg};
  return send_msg(c, &m, deadline);
}

/* ---- frames in -------------------------------------------------------------------- */

/* Reads what the socket has (waiting by the deadline) into the reader.
 * TY_ECLOSED at the end of the stream or on a read error. */
static int read_some(ty_rpc_sync *c, int64_t deadline) {
  for (;;) {
    uint8_t *space;
    size_t room;
    int rc = ty_frame_reader_space(&c->rd, READ_CHUNK, &space, &room);
    if (rc != 0) return rc;
    ssize_t n = read(c->fd, space, room);
    if (n > 0) {
      ty_frame_reader_commit(&c->rd, (size_t)n);
      return 0;
    }
    if (n == 0) return TY_ECLOSED;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return TY_ECLOSED;
    rc = wait_fd(c->fd, POLLIN, deadline);
    if (rc != 0) return rc;
  }
}

/* A streaming call's items (ty_rpc_sync_stream); NULL for a unary call,
 * whose STREAM frames are skipped. */
typedef struct items {
  int (*on_item)(const uint8_t *p, size_t n, void *ud);
  void *ud;
  int stopped; /* on_item's non-zero answer */
} items;

enum { FRAME_OTHER, FRAME_ANSWER, FRAME_ITEM };

/* One whole frame: FRAME_ANSWER when it answered request `id` (*out
 * filled; also when on_item stopped the stream), FRAME_ITEM for one of its
 * items, FRAME_OTHER, or an error that ends the connection. */
static int take_frame(ty_rpc_sync *c, const uint8_t *body, size_t len, uint64_t id,
                      int64_t deadline, items *it, ty_rpc_result *out) {
  ty_rpc_msg m;
  void *owner = NULL;
  int rc = ty_rpc_decode(body, len, &m, &owner);
  if (rc != 0) return TY_EPROTO;
  if (m.kind == TY_RPC_REQUEST) {
    rc = refuse_request(c, &m, deadline);
  } else if ((m.kind == TY_RPC_RESPONSE || m.kind == TY_RPC_END) &&
             (m.request_id == id || m.request_id == TY_RPC_REFUSAL_ID)) {
    ty__rpc_result_fill(out, m.status, m.message, m.payload, m.payload_len);
    rc = FRAME_ANSWER;
  } else if (it && m.kind == TY_RPC_STREAM && m.request_id == id) {
    it->stopped = it->on_item(m.payload, m.payload_len, it->ud);
    if (it->stopped) ty__rpc_result_fill(out, TY_ECLOSED, ty_strerror(TY_ECLOSED), NULL, 0);
    rc = it->stopped ? FRAME_ANSWER : FRAME_ITEM;
  }
  ty_rpc_msg_free(owner);
  return rc;
}

/* Reads frames until the answer to request `id`: 0 with *out filled, or a
 * transport error (TY_ETIMEDOUT, TY_ECLOSED, TY_EPROTO, TY_ETOOBIG). The
 * deadline starts again after each item (`idle_ms`). */
static int await_answer(ty_rpc_sync *c, uint64_t id, int64_t deadline, uint32_t idle_ms, items *it,
                        ty_rpc_result *out) {
  for (;;) {
    const uint8_t *body;
    size_t len;
    int rc = ty_frame_reader_next(&c->rd, &body, &len);
    if (rc == 1) rc = take_frame(c, body, len, id, deadline, it, out);
    if (rc == FRAME_ITEM) deadline = deadline_in(idle_ms);
    if (rc == FRAME_ANSWER) {
      ty_frame_reader_trim(&c->rd);
      return 0;
    }
    if (rc < 0) return rc;
    if (ty_frame_reader_has_frame(&c->rd)) continue;
    rc = read_some(c, deadline);
    if (rc != 0) return rc;
  }
}

static int call(ty_rpc_sync *c, const char *method, const void *payload, size_t len,
                uint32_t timeout_ms, items *it, ty_rpc_result *out) {
  *out = (ty_rpc_result){0};
  if (!c || !method || !method[0]) {
    ty__rpc_result_fill(out, TY_EINVAL, ty_strerror(TY_EINVAL), NULL, 0);
    return TY_EINVAL;
  }
  int64_t deadline = deadline_in(timeout_ms);
  uint64_t id = 0;
  int rc = c->fd >= 0 ? send_request(c, method, payload, len, deadline, &id) : TY_ECLOSED;
  if (rc == 0) rc = await_answer(c, id, deadline, timeout_ms, it, out);
  bool stopped = it && it->stopped; /* *out says TY_ECLOSED already */
  if (rc == 0 && !stopped) return 0;
  if (id && (rc == TY_ETIMEDOUT || stopped)) {
    /* Tell a peer still working on it to stop; a late answer is skipped. */
    ty_rpc_msg cancel = {.version = TY_RPC_VERSION, .request_id = id, .kind = TY_RPC_CANCEL};
    if (send_msg(c, &cancel, ty_mono_ms() + 1) != 0) end_connection(c);
  } else if (id || rc == TY_ETIMEDOUT || rc == TY_ECLOSED) {
    end_connection(c); /* a bad frame in, or a request written in part */
  }
  if (stopped) return it->stopped;
  ty__rpc_result_fill(out, rc, ty_strerror(rc), NULL, 0);
  return rc;
}

int ty_rpc_sync_call(ty_rpc_sync *c, const char *method, const void *payload, size_t len,
                     uint32_t timeout_ms, ty_rpc_result *out) {
  return call(c, method, payload, len, timeout_ms, NULL, out);
}

int ty_rpc_sync_stream(ty_rpc_sync *c, const char *method, const void *payload, size_t len,
                       uint32_t idle_timeout_ms,
                       int (*on_item)(const uint8_t *p, size_t n, void *ud), void *ud,
                       ty_rpc_result *out) {
  items it = {on_item, ud, 0};
  return call(c, method, payload, len, idle_timeout_ms, &it, out);
}
