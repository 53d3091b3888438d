/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/rpc: framing, connections, servers and clients for Trainyard's wire
 * protocol (see envelope.proto for the format, field by field).
 *
 * Layers, bottom up:
 *   - frame codec (pure): bytes in, frames out; unit-tested and fuzzable.
 *   - envelope codec (pure): frame bodies <-> ty_rpc_msg.
 *   - ty_rpc_conn: one libuv TCP stream; either side may call, the other
 *     answers with one response or a stream. Owned by the loop thread.
 *   - ty_rpc_server: accepts connections and hands each to a callback.
 *   - ty_rpc_client: a blocking client on a private loop, for CLIs and tests.
 *   - ty_rpc_sync: a blocking client on poll(), without libuv, for commands
 *     that make a request or two and exit (trainctl ls).
 *
 * A malformed, truncated or oversized frame closes only the connection it
 * arrived on, with a logged reason; the daemon keeps serving the others.
 */
#ifndef TY_LIB_RPC_RPC_H
#define TY_LIB_RPC_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/base/base.h"

#define TY_RPC_VERSION 1u
#define TY_RPC_FRAME_HEADER 4u
#define TY_RPC_MAX_FRAME_DEFAULT (64u * 1024u * 1024u)
/* The request id of a server's refusal of a connection it accepted over a
 * limit: a RESPONSE with UV_EBUSY and a message saying which limit, sent
 * before it closes. No request has it (ids start at 1); a client answers
 * its waiting calls with it. */
#define TY_RPC_REFUSAL_ID 0u

/* ---- frame codec (pure) --------------------------------------------------- */

/* Accumulates bytes from a stream and yields whole frames. Owns its buffer.
 * Bytes [off, len) of buf are unconsumed; consumed frames are only advanced
 * over (off grows) and the remainder is moved to the front lazily, when new
 * bytes need the room, so many small frames per read cost O(bytes). */
typedef struct ty_frame_reader {
  uint8_t *buf;
  size_t len, cap, off;
  size_t max_frame;
  int err; /* sticky: 0, or the TY_E* code every later call returns */
} ty_frame_reader;

void ty_frame_reader_init(ty_frame_reader *r, size_t max_frame);
void ty_frame_reader_close(ty_frame_reader *r);
/* Appends n bytes. TY_ENOMEM on allocation failure. */
int ty_frame_reader_feed(ty_frame_reader *r, const void *data, size_t n);
/* Yields the next whole frame body: returns 1 and points *out_body (valid until
 * the next feed/next call) at *out_len bytes; 0 when more bytes are needed;
 * TY_ETOOBIG when the header announces more than max_frame; TY_EPROTO for a
 * zero length. After an error the reader stays in error. */
int ty_frame_reader_next(ty_frame_reader *r, const uint8_t **out_body, size_t *out_len);
/* Writes the 4-byte big-endian header for a body of `len` bytes. */
void ty_frame_put_header(uint8_t out_header[4], uint32_t len);
/* Zero-copy feeding (addition): points *out_space at >= `want` writable bytes
 * at the end of the buffer (more when a frame being received needs more, up
 * to as many bytes as are already buffered: memory grows with bytes
 * received, never with the length a header announces), for
 * a read(2) or libuv alloc callback to fill; ty_frame_reader_commit() then
 * appends the n bytes actually written. TY_ENOMEM, or the sticky error. */
int ty_frame_reader_space(ty_frame_reader *r, size_t want, uint8_t **out_space, size_t *out_n);
void ty_frame_reader_commit(ty_frame_reader *r, size_t n);
/* Bytes received but not yet returned as frames (a partial frame at EOF). */
size_t ty_frame_reader_pending(const ty_frame_reader *r);
/* True when next() would return a frame or an error without more bytes. */
bool ty_frame_reader_has_frame(const ty_frame_reader *r);
/* Gives back memory the buffered bytes no longer need: all of it when the
 * reader is empty, the excess when at most a quarter is in use. Call it
 * after consuming frames; pointers from next() are invalid afterwards. */
void ty_frame_reader_trim(ty_frame_reader *r);

/* ---- messages ------------------------------------------------------------- */

typedef enum {
  TY_RPC_REQUEST = 1,
  TY_RPC_RESPONSE = 2,
  TY_RPC_STREAM = 3,
  TY_RPC_END = 4,
  TY_RPC_CANCEL = 5,
} ty_rpc_kind;

/* A decoded envelope. Pointers borrow from the decoder's storage and are valid
 * only during the callback that receives them. */
typedef struct ty_rpc_msg {
  uint32_t version;
  uint64_t request_id;
  ty_rpc_kind kind;
  const char *method; /* "" when absent */
  int status;
  const char *message;       /* "" when absent */
  const uint8_t *credential; /* a job-scoped token (task I/O, rendezvous) */
  size_t credential_len;
  const uint8_t *payload;
  size_t payload_len;
  const uint8_t *auth; /* who sends it: a lib/auth credential */
  size_t auth_len;
} ty_rpc_msg;

/* Encodes one whole frame (header + envelope) into a new heap buffer that the
 * caller frees. TY_EINVAL for an unknown kind or a REQUEST without a method.
 * NULL method/message/credential/payload are sent as empty. A message holding
 * a control byte or bytes that are not UTF-8 is sent escaped (ty_escape_text):
 * an answer may quote what a peer sent. */
int ty_rpc_encode(const ty_rpc_msg *m, uint8_t **out_frame, size_t *out_len);
/* Decodes a frame body. On success *out_msg borrows from *out_owner, which the
 * caller releases with ty_rpc_msg_free(). TY_EPROTO for garbage, an unknown
 * kind, or a REQUEST without a method. Does not check the version. */
int ty_rpc_decode(const uint8_t *body, size_t len, ty_rpc_msg *out_msg, void **out_owner);
void ty_rpc_msg_free(void *owner);

/* ---- connections ---------------------------------------------------------- */

typedef struct ty_rpc_conn ty_rpc_conn;

/* An incoming request. Answer it exactly once, now or later, with
 * ty_rpc_reply() or with ty_rpc_stream_send()... ty_rpc_stream_end(); until
 * then the conn keeps a small record of it (freed at the latest on close).
 * Requests of another protocol version never reach it (answered TY_EVERSION),
 * nor do requests reusing an id still open (answered TY_EINVAL). Without an
 * on_request every request is answered TY_ENOTFOUND. */
typedef void (*ty_rpc_request_cb)(ty_rpc_conn *c, const ty_rpc_msg *req, void *ud);
/* An answer frame to a call: called once for RESPONSE, once per STREAM frame
 * and once for END. On a timeout or a closed connection it is called once with
 * msg == NULL and status TY_ETIMEDOUT / TY_ECLOSED. `final` is true on the last
 * call for this request; the request's state is gone after it returns. */
typedef void (*ty_rpc_answer_cb)(ty_rpc_conn *c, int status, const ty_rpc_msg *msg, bool final,
                                 void *ud);
/* The connection is closing; `reason` is 0 for an orderly close or the error
 * (TY_EPROTO, TY_ETOOBIG, UV_EOF, ...). Outstanding calls have already been
 * answered with TY_ECLOSED. The conn is freed after this returns. */
typedef void (*ty_rpc_close_cb)(ty_rpc_conn *c, int reason, void *ud);

/* Limits at the door (nginx's and h2o's, for this protocol). Every field's
 * 0 means its default. A conn stops reading (uv_read_stop) while
 * `max_inflight` peer requests are unanswered or its write queue is above
 * write_high_water, and resumes once requests are answered and the queue
 * has drained below half the mark, so a peer that pipelines requests and
 * never reads costs at most one frame plus the high-water mark. A stream
 * that has sent its first frame is answered, not in flight: a peer may
 * hold up to TY_RPC_MAX_STREAMS of them open and still be read (its
 * CANCELs, its close), whatever max_inflight is.
 *
 * The timeouts and connection caps apply to conns a server accepted:
 *   - handshake: the first whole frame must arrive within handshake_ms of
 *     the accept;
 *   - idle: a conn that received no whole frame and completed no write for
 *     idle_ms is closed when nothing is in flight on it (no open request,
 *     no call of ours) or when its queued replies have not moved (a peer
 *     that stopped reading); open streams keep a quiet conn alive;
 *   - answers queued on all of a server's conns together are capped
 *     (max_queued_total);
 *   - a connection from an address that already has max_conns_per_addr
 *     closes that address's oldest connection whose peer never proved
 *     itself (ty_rpc_conn_proven; counted closed "unproven"), else is
 *     refused; one beyond max_conns in total likewise closes the oldest
 *     such connection of any address, else is refused; refusals are
 *     logged at most once per 10 s and counted in *stats. */
typedef struct ty_rpc_limits {
  uint32_t max_inflight;       /* 0 = TY_RPC_MAX_INFLIGHT_DEFAULT */
  uint32_t handshake_ms;       /* 0 = TY_RPC_HANDSHAKE_MS_DEFAULT */
  uint32_t idle_ms;            /* 0 = TY_RPC_IDLE_MS_DEFAULT */
  uint32_t max_conns;          /* 0 = TY_RPC_MAX_CONNS_DEFAULT */
  uint32_t max_conns_per_addr; /* 0 = TY_RPC_MAX_CONNS_PER_ADDR_DEFAULT */
  /* Server: memory of the answers queued on all its conns together. Above
   * it, a conn holding more than an even share of it (at least
   * TY_RPC_QUEUED_SHARE_MIN) is not read until the total is back under
   * half, so many peers that never read cost about twice this, not
   * max_conns write high-water marks. 0 = 32 MiB. */
  size_t max_queued_total;
  /* Counters of a server's connections, owned by the caller and updated on
   * the loop thread while the server or any of its conns lives; may be NULL. */
  ty_conn_stats *stats;
} ty_rpc_limits;

#define TY_RPC_MAX_INFLIGHT_DEFAULT 128u
#define TY_RPC_MAX_STREAMS 4096u /* open streams per conn before it stops reading */
#define TY_RPC_HANDSHAKE_MS_DEFAULT 10000u
#define TY_RPC_IDLE_MS_DEFAULT 300000u
#define TY_RPC_MAX_CONNS_DEFAULT 4096u
#define TY_RPC_MAX_CONNS_PER_ADDR_DEFAULT 512u
#define TY_RPC_MAX_QUEUED_TOTAL_DEFAULT ((size_t)32 << 20)
#define TY_RPC_QUEUED_SHARE_MIN ((size_t)4 << 10)

/* The daemons' flags for these limits (traind and trainworkerd share them):
 * put TY_RPC_LIMIT_OPTIONS in the getopt_long table, TY_RPC_LIMITS_USAGE
 * in the usage text, and hand each option id to ty_rpc_limits_parse_flag. */
enum {
  TY_RPC_OPT_MAX_CONNS = 0x7200,
  TY_RPC_OPT_MAX_CONNS_PER_ADDR,
  TY_RPC_OPT_MAX_INFLIGHT,
  TY_RPC_OPT_HANDSHAKE_MS,
  TY_RPC_OPT_IDLE_MS,
};
#define TY_RPC_LIMIT_OPTIONS                                                                       \
  {"max-conns", required_argument, NULL, TY_RPC_OPT_MAX_CONNS},                                    \
      {"max-conns-per-addr", required_argument, NULL, TY_RPC_OPT_MAX_CONNS_PER_ADDR},              \
      {"max-inflight", required_argument, NULL, TY_RPC_OPT_MAX_INFLIGHT},                          \
      {"handshake-timeout-ms", required_argument, NULL, TY_RPC_OPT_HANDSHAKE_MS}, {                \
    "idle-timeout-ms", required_argument, NULL, TY_RPC_OPT_IDLE_MS                                 \
  }
#define TY_RPC_LIMITS_USAGE                                                                        \
  "  --max-conns N               connections served at once (default 4096)\n"                      \
  "  --max-conns-per-addr N      connections from one peer address (default 512)\n"                \
  "  --max-inflight N            unanswered requests per connection before it is not read\n"       \
  "                              (default 128)\n"                                                  \
  "  --handshake-timeout-ms N    a new connection's first request is due within N ms\n"            \
  "                              (default 10000)\n"                                                \
  "  --idle-timeout-ms N         connections idle for N ms are closed (default 300000)\n"
/* 0 when `id` was one of the options above and `value` is valid (stored in
 * *l); TY_EINVAL with "--max-conns: \"x\" is not ..." in err; 1 when id is
 * not one of them. */
int ty_rpc_limits_parse_flag(ty_rpc_limits *l, int id, const char *value, char *err,
                             size_t err_len);

typedef struct ty_rpc_conn_opts {
  size_t max_frame; /* 0 = TY_RPC_MAX_FRAME_DEFAULT */
  ty_rpc_request_cb on_request;
  ty_rpc_close_cb on_close;
  void *ud;
  /* Writes beyond this many queued bytes make ty_rpc_write_queued() report
   * pressure so producers (log streaming) can pause, and stop reading
   * requests until the queue drains. 0 = 1 MiB. */
  size_t write_high_water;
  ty_rpc_limits limits;
} ty_rpc_conn_opts;

/* Sends a request. `timeout_ms` 0 means none; for a streaming answer it
 * bounds the silence before the first frame and between frames, so a long
 * log follow is not cut off. On a timeout a CANCEL is sent to the peer. `cb`
 * is called as described above. Returns 0 and sets *out_request_id (may be
 * NULL), or an error (the callback is then not called): TY_EINVAL,
 * TY_ECLOSED once closing, TY_ETOOBIG above max_frame. */
int ty_rpc_call(ty_rpc_conn *c, const char *method, const void *payload, size_t len,
                const void *credential, size_t credential_len, uint32_t timeout_ms,
                ty_rpc_answer_cb cb, void *ud, uint64_t *out_request_id);
/* The two credentials a request may carry (envelope.proto): a job-scoped
 * token in `credential`, the sender's lib/auth credential in `auth`. Both
 * are copied into the frame; NULL/0 = none. */
typedef struct ty_rpc_creds {
  const void *credential;
  size_t credential_len;
  const void *auth;
  size_t auth_len;
} ty_rpc_creds;
/* ty_rpc_call with both credentials (creds may be NULL). */
int ty_rpc_call_ex(ty_rpc_conn *c, const char *method, const void *payload, size_t len,
                   const ty_rpc_creds *creds, uint32_t timeout_ms, ty_rpc_answer_cb cb, void *ud,
                   uint64_t *out_request_id);
/* Answers a request with one RESPONSE. `message` may be NULL.
 * reply/stream_send/stream_end return TY_ENOTFOUND for a request_id that is
 * not an open request from the peer (already answered: a double reply), and
 * TY_ECLOSED when the peer cancelled it or the conn is closing (nothing is
 * sent; reply and stream_end still release the request). */
int ty_rpc_reply(ty_rpc_conn *c, uint64_t request_id, int status, const char *message,
                 const void *payload, size_t len);
int ty_rpc_stream_send(ty_rpc_conn *c, uint64_t request_id, const void *payload, size_t len);
int ty_rpc_stream_end(ty_rpc_conn *c, uint64_t request_id, int status, const char *message);
/* Tells the peer we no longer want answers to request_id; our callback is
 * called once more with final=true and status TY_ECLOSED. */
int ty_rpc_cancel(ty_rpc_conn *c, uint64_t request_id);
/* Addition: learns that the peer no longer wants answers to request_id (it
 * sent CANCEL, or the connection is closing), so a streaming producer can
 * stop. Called at most once per request, on the loop thread; afterwards
 * stream_send returns TY_ECLOSED and the producer should call
 * ty_rpc_stream_end() (or ty_rpc_reply()) to release the request, except
 * when the conn is closing, where the request is already released and the
 * conn is about to go. Set it from on_request. TY_ENOTFOUND for an id that
 * is not open; TY_ECLOSED (cb kept, not called) when already cancelled. */
typedef void (*ty_rpc_cancel_cb)(ty_rpc_conn *c, uint64_t request_id, void *ud);
int ty_rpc_set_cancel_cb(ty_rpc_conn *c, uint64_t request_id, ty_rpc_cancel_cb cb, void *ud);
/* Bytes written but not yet flushed to the socket. */
size_t ty_rpc_write_queued(const ty_rpc_conn *c);
/* Addition: true while ty_rpc_write_queued() >= write_high_water; pause
 * producing and resume from the drain callback. */
bool ty_rpc_write_pressure(const ty_rpc_conn *c);
/* Called when the write queue, having reached the high-water mark, drains
 * below half of it. */
void ty_rpc_set_drain_cb(ty_rpc_conn *c, void (*cb)(ty_rpc_conn *c, void *ud), void *ud);
/* Starts an orderly close (pending writes are flushed first, for at most 5 s
 * if the peer does not read). Idempotent. on_close follows from the loop. */
void ty_rpc_close(ty_rpc_conn *c);
/* The peer's uid, gid and pid as the kernel saw them at its connect
 * (SO_PEERCRED) on a Unix socket's conn: 0, TY_ENOTFOUND on TCP (no such
 * proof: the caller's identity comes from its credential), TY_EPERM on a
 * Unix socket's conn the kernel gave no credentials for. Any out
 * pointer may be NULL. */
int ty_rpc_peer_cred(const ty_rpc_conn *c, uint32_t *uid, uint32_t *gid, int32_t *pid);
/* The peer proved itself: a request of its was admitted (its credential
 * verified, or the server needs none and served it). At max_conns, or at
 * its address's max_conns_per_addr, a new connection evicts the oldest
 * connection (of any address, or of that address) whose peer never did,
 * not this one, so peers that never send an admitted request cannot lock
 * the others out. */
void ty_rpc_conn_proven(ty_rpc_conn *c);
/* The peer's requests on c not answered yet (open streams aside), the one
 * being handed to on_request included: what --max-inflight caps. */
size_t ty_rpc_inflight(const ty_rpc_conn *c);
/* "ip:port" of the peer (TCP) or "unix:uid=U,pid=P", for log lines. */
const char *ty_rpc_peer(const ty_rpc_conn *c);
/* This end's IP address (the local interface facing the peer) into out;
 * 0, or a negative libuv error. */
int ty_rpc_local_host(const ty_rpc_conn *c, char *out, size_t n);
void ty_rpc_set_ud(ty_rpc_conn *c, void *ud);
void *ty_rpc_get_ud(const ty_rpc_conn *c);
uv_loop_t *ty_rpc_loop(const ty_rpc_conn *c);

/* Outgoing connection. `cb` gets the connected conn or an error (conn NULL):
 * UV_ECONNREFUSED, TY_ETIMEDOUT after `timeout_ms` (0 = none), a lookup
 * error. Host names are resolved with uv_getaddrinfo, preferring IPv4. A
 * host that is an absolute path is a Unix stream socket (port ignored;
 * UV_ENOENT when absent, UV_EACCES when not allowed). A
 * non-zero return means the attempt did not start and `cb` is not called. */
typedef void (*ty_rpc_connect_cb)(ty_rpc_conn *c, int status, void *ud);
int ty_rpc_connect(uv_loop_t *loop, const char *host, int port, const ty_rpc_conn_opts *opts,
                   uint32_t timeout_ms, ty_rpc_connect_cb cb, void *ud);

/* ---- server ---------------------------------------------------------------- */

typedef struct ty_rpc_server ty_rpc_server;
/* A new connection was accepted; it already uses `opts` (on_request etc.). */
typedef void (*ty_rpc_accept_cb)(ty_rpc_server *s, ty_rpc_conn *c, void *ud);

/* Listens on host:port (port 0 picks an ephemeral port). host: "0.0.0.0",
 * "127.0.0.1", "::1", "::", a name (resolved once, blocking), NULL = any. */
int ty_rpc_server_create(uv_loop_t *loop, const char *host, int port, const ty_rpc_conn_opts *opts,
                         ty_rpc_accept_cb on_accept, void *ud, ty_rpc_server **out_server);
/* Listens on a Unix stream socket at `path` (absolute), made 0666: its
 * directory decides who may connect, and each conn's peer credentials
 * (ty_rpc_peer_cred) who the caller is. A socket already there is removed
 * only when nothing answers on it (a stale one); a live one is TY_EEXIST
 * and a file of another kind TY_EEXIST too, with the path in err. The same
 * limits apply as on TCP; max_conns_per_addr counts per peer uid. The file
 * is removed on destroy. */
int ty_rpc_server_create_unix(uv_loop_t *loop, const char *path, const ty_rpc_conn_opts *opts,
                              ty_rpc_accept_cb on_accept, void *ud, ty_rpc_server **out_server,
                              char *err, size_t err_len);
/* The TCP port; 0 for a Unix socket's server. */
int ty_rpc_server_port(const ty_rpc_server *s);
/* Stops listening and closes every connection it accepted; frees itself once
 * the handles are closed. Accepts NULL. */
void ty_rpc_server_destroy(ty_rpc_server *s);

/* ---- blocking client (CLIs, tests) ------------------------------------------ */

typedef struct ty_rpc_client ty_rpc_client;

/* Connects to host:port (or the Unix socket at host, an absolute path) on
 * a private loop. Errors: UV_ECONNREFUSED etc. */
int ty_rpc_client_open(const char *host, int port, uint32_t timeout_ms, ty_rpc_client **out_client);
void ty_rpc_client_close(ty_rpc_client *c);
/* Sets the credential sent with every request (copied). */
void ty_rpc_client_set_credential(ty_rpc_client *c, const void *cred, size_t len);
/* Called before every request to produce its `auth` credential: appends it
 * to *out (nothing = none) and returns 0, or an error that fails the call
 * before anything is sent. */
typedef int (*ty_rpc_signer)(void *ud, const char *method, const void *payload, size_t len,
                             ty_buf *out);
void ty_rpc_client_set_signer(ty_rpc_client *c, ty_rpc_signer sign, void *ud);

/* An answer: status, message and payload are owned by the caller, who frees
 * them with ty_rpc_result_close(). */
typedef struct ty_rpc_result {
  int status;
  char *message; /* "" when the peer sent none; never NULL after a call */
  uint8_t *payload;
  size_t payload_len;
} ty_rpc_result;
void ty_rpc_result_close(ty_rpc_result *r);

/* One request, one answer. Returns 0 when an answer arrived (its status may be
 * an error) or a transport error (TY_ETIMEDOUT, TY_ECLOSED, UV_*); `out` is
 * filled either way (status = the error, message = its name) and must be
 * closed. Once the connection has ended every call returns TY_ECLOSED. */
int ty_rpc_client_call(ty_rpc_client *c, const char *method, const void *payload, size_t len,
                       uint32_t timeout_ms, ty_rpc_result *out);
/* A streaming call: `on_item` is called for every STREAM frame; returning
 * non-zero from it cancels the stream, and the call then returns that value
 * with out->status TY_ECLOSED. `out` receives the END status (or a RESPONSE's
 * if the peer answered with one, e.g. TY_EVERSION). The timeout applies to
 * the gap between frames (0 = none). */
int ty_rpc_client_stream(ty_rpc_client *c, const char *method, const void *payload, size_t len,
                         uint32_t idle_timeout_ms,
                         int (*on_item)(const uint8_t *p, size_t n, void *ud), void *ud,
                         ty_rpc_result *out);

/* ---- blocking client without libuv (one-shot commands) --------------------------
 * The same framing, envelopes and signer as ty_rpc_client, on one socket
 * with poll() and a deadline (sync.c): a process whose only traffic is a
 * few requests neither loads nor initialises libuv. */

typedef struct ty_rpc_sync ty_rpc_sync;

/* Connects to host:port within timeout_ms (0 = none; a host name's lookup
 * is not bounded by it); a host that is an absolute path is a Unix stream
 * socket (port ignored; -ENOENT when absent, -EACCES when not allowed).
 * 0, TY_EINVAL (no host, port outside 1-65535),
 * TY_ENOTFOUND (the name has no address), TY_ETIMEDOUT, TY_ENOMEM, or
 * -errno (-ECONNREFUSED: UV_ECONNREFUSED's value). */
int ty_rpc_sync_open(const char *host, int port, uint32_t timeout_ms, ty_rpc_sync **out_client);
/* Closes the connection; accepts NULL. */
void ty_rpc_sync_close(ty_rpc_sync *c);
/* As ty_rpc_client_set_signer: `sign` makes every request's auth credential. */
void ty_rpc_sync_set_signer(ty_rpc_sync *c, ty_rpc_signer sign, void *ud);
/* One request, one answer, as ty_rpc_client_call: 0 when an answer arrived
 * (its status may be an error), else the transport error with `out`
 * filled (status = the error, message = its name) either way. Errors:
 * TY_ETIMEDOUT (a CANCEL is sent; the connection stays usable and the late
 * answer is skipped), TY_ECLOSED (the peer closed, or a write failed),
 * TY_EPROTO (a frame that does not decode), TY_ETOOBIG (a frame above
 * TY_RPC_MAX_FRAME_DEFAULT, either way), TY_EINVAL (no method), or the
 * signer's error (nothing sent). After TY_ECLOSED, TY_EPROTO or an
 * incoming TY_ETOOBIG every call returns TY_ECLOSED. */
int ty_rpc_sync_call(ty_rpc_sync *c, const char *method, const void *payload, size_t len,
                     uint32_t timeout_ms, ty_rpc_result *out);
/* A streaming call, as ty_rpc_client_stream's: `on_item` gets every STREAM
 * frame of the answer; a non-zero return cancels the stream (CANCEL sent,
 * the connection stays usable) and the call returns it with out->status
 * TY_ECLOSED. `out` receives the END's status (or a RESPONSE's). The
 * timeout bounds each gap between frames (0 = none). */
int ty_rpc_sync_stream(ty_rpc_sync *c, const char *method, const void *payload, size_t len,
                       uint32_t idle_timeout_ms,
                       int (*on_item)(const uint8_t *p, size_t n, void *ud), void *ud,
                       ty_rpc_result *out);
/* How many requests the client has sent. */
uint64_t ty_rpc_sync_requests(const ty_rpc_sync *c);

/* ---- the same client, driven by its caller ------------------------------------
 * For a caller that waits on several things at once: it starts calls here
 * and runs ty_rpc_client_loop() itself (uv_run), adding its own handles
 * (signals, other connections) to that loop. Blocking calls must not be
 * made from inside the loop's callbacks (uv_run is not reentrant). */

/* The client's private loop. */
uv_loop_t *ty_rpc_client_loop(ty_rpc_client *c);
/* Sends a request with the client's credential and returns at once; `cb`
 * gets its answers as with ty_rpc_call, while the caller runs the loop.
 * Errors as ty_rpc_call's (TY_ECLOSED once the connection has ended). */
int ty_rpc_client_start(ty_rpc_client *c, const char *method, const void *payload, size_t len,
                        uint32_t timeout_ms, ty_rpc_answer_cb cb, void *ud,
                        uint64_t *out_request_id);
/* Replaces the client's connection (closing the old one, whose calls end
 * with TY_ECLOSED) by a new one to host:port on the same loop, so handles
 * the caller added to the loop stay; errors as ty_rpc_client_open's. */
int ty_rpc_client_reopen(ty_rpc_client *c, const char *host, int port, uint32_t timeout_ms);
/* ty_rpc_cancel of a call started above. */
int ty_rpc_client_cancel(ty_rpc_client *c, uint64_t request_id);
/* How many requests the client has sent (blocking or not): what a caller
 * that must not poll can show it did not. */
uint64_t ty_rpc_client_requests(const ty_rpc_client *c);

#endif
