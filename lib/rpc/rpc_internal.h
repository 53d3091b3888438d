/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by lib/rpc's files (envelope.c, conn.c, server.c,
 * client.c). Not for use outside lib/rpc.
 */
#ifndef TY_LIB_RPC_RPC_INTERNAL_H
#define TY_LIB_RPC_RPC_INTERNAL_H

#include "lib/rpc/rpc.h"

/* Like ty_rpc_encode(), but the frame starts `prefix` bytes into a fresh heap
 * block (*out_block, freed by the caller), so a write request can carry its
 * frame in the same allocation. *out_frame_len counts header + body. */
int ty__rpc_encode_prefixed(const ty_rpc_msg *m, size_t prefix, uint8_t **out_block,
                            size_t *out_frame_len);

/* ---- connections (conn.c, connect.c) ------------------------------------- */

typedef enum {
  TY__CONN_CONNECTING, /* ty_rpc_connect() in progress; not yet the user's */
  TY__CONN_OPEN,
  TY__CONN_CLOSING, /* calls answered; flushing, then closing handles */
} ty__conn_state;

struct ty_rpc_server;

struct ty_rpc_conn {
  union {           /* data: none; container_of recovers the conn */
    uv_tcp_t tcp;   /* TCP: every use goes through it as a uv_stream_t... */
    uv_pipe_t pipe; /* ...or a Unix stream socket (local) at the same address */
  };
  uv_timer_t timer; /* connect timeout; accepted: handshake and idle; the close linger */
  uv_timer_t kick;  /* 0 ms: resumes reading from the loop, not from a reply */
  uv_shutdown_t shutdown_req;
  uv_connect_t connect_req;
  uv_getaddrinfo_t gai;
  uv_loop_t *loop;
  ty_rpc_conn_opts opts; /* opts.ud is the user's ud (ty_rpc_set_ud) */
  ty_frame_reader rd;
  ty_idmap calls;   /* our outstanding requests (struct call) */
  ty_idmap inbound; /* peer requests we have not finished answering */
  size_t streaming; /* of those, streams that sent their first frame (not in flight) */
  uint64_t next_id;
  size_t queued;          /* bytes handed to uv_write, not yet completed */
  size_t held;            /* the memory those writes hold (frames and requests) */
  bool pressured;         /* queued reached the high-water mark */
  bool reading;           /* uv_read_start in force (flow control may stop it) */
  bool peer_eof;          /* the peer half-closed: answer what it sent, then close */
  bool got_frame;         /* a whole frame arrived: the handshake deadline is met */
  bool accepted;          /* by a server: the handshake and idle deadlines apply */
  bool counted;           /* counted in opts.limits.stats->open */
  bool proven;            /* a request of the peer's was admitted (ty_rpc_conn_proven) */
  uint64_t last_progress; /* uv_now of the last whole frame in or write done */
  void (*drain_cb)(ty_rpc_conn *c, void *ud);
  void *drain_ud;
  ty__conn_state state;
  int close_reason;
  int open_handles; /* tcp + timer + kick until their close callbacks ran */
  bool handles_closing;
  bool gai_pending;
  bool delivered; /* the user has it: on_close will be called */
  ty_rpc_connect_cb connect_cb;
  void *connect_ud;
  struct ty_rpc_server *server; /* accepted by this server, or NULL */
  ty_rpc_conn *srv_prev, *srv_next;
  bool backlogged; /* in the server's backlog (frames wait) */
  ty_rpc_conn *bl_prev, *bl_next;
  struct sockaddr_storage addr; /* the peer's, for per-address caps */
  char peer[64];
  /* A Unix stream socket: the peer's credentials from SO_PEERCRED, read
   * once when the conn starts (the kernel's, as of the peer's connect). */
  bool local;
  bool has_cred;
  uint32_t peer_uid, peer_gid;
  int32_t peer_pid;
};

/* Allocates a conn with initialised stream (a uv_pipe_t when `local`, else
 * a uv_tcp_t) and timer handles. */
int ty__conn_create(uv_loop_t *loop, const ty_rpc_conn_opts *opts, bool local,
                    ty_rpc_conn **out_conn);
/* After accept/connect: sets TCP_NODELAY (TCP) or reads the peer's
 * credentials (local), records the peer, starts reading,
 * and marks the conn as the user's (on_close will be called). */
int ty__conn_start(ty_rpc_conn *c);
/* Accepted conns: counts the conn in the stats and arms the handshake
 * deadline, then the idle timeout (ty_rpc_limits). */
void ty__conn_admitted(ty_rpc_conn *c);
/* True when two conns' peers have the same address (port aside). */
bool ty__conn_same_addr(const ty_rpc_conn *a, const ty_rpc_conn *b);
/* Closes c, which never had a request admitted, for a newer one at a cap
 * (`cap` says which, for the log: "its address is at the connection
 * limit"; counted closed_unproven). */
void ty__conn_evict(ty_rpc_conn *c, const char *cap);
/* Refuses c, just accepted and over a limit (`why`): answers request
 * TY_RPC_REFUSAL_ID with UV_EBUSY and "the server is busy: WHY; retry
 * later", so its client can say why, then closes it. */
void ty__conn_refuse(ty_rpc_conn *c, const char *why);
/* Starts closing: answers calls with TY_ECLOSED, tells inbound requests'
 * cancel callbacks, then flushes (graceful) or not, and closes the handles.
 * Idempotent. */
void ty__conn_begin_close(ty_rpc_conn *c, int reason, bool graceful);
/* Frees the conn once its handles are closed and no lookup is pending. */
void ty__conn_maybe_free(ty_rpc_conn *c);
/* Server hook, called from the conn's final close (server.c). */
void ty__server_forget(struct ty_rpc_server *s, ty_rpc_conn *c);
/* One turn for c: dispatches up to a turn's share of its buffered frames;
 * if whole frames remain it stops reading and waits for its next turn (in
 * the server's backlog, or on its kick timer), else it reads again when
 * the limits allow. Returns the frames dispatched. */
int ty__conn_serve(ty_rpc_conn *c);
/* Queues c (not reading, frames buffered) for a turn from the server's
 * round-robin; idempotent. */
void ty__server_backlog(struct ty_rpc_server *s, ty_rpc_conn *c);
/* Answer bytes queued on the server's conns: +len on a write, -len when it
 * completes. Back under half of the cap, conns held by it read again. */
void ty__server_queued(struct ty_rpc_server *s, size_t len, bool add);
/* How much queued-answer memory one of the server's conns may hold and
 * still be read: unlimited while the server is under max_queued_total,
 * else an even share of it (at least TY_RPC_QUEUED_SHARE_MIN). */
size_t ty__server_share(const struct ty_rpc_server *s);
/* Re-evaluates whether c may read (a limit was lifted). */
void ty__conn_update_reading(ty_rpc_conn *c);
/* A local conn: reads SO_PEERCRED into peer_uid/gid/pid and names the
 * peer "unix:uid=U,pid=P" (local.c). */
void ty__conn_local_peer(ty_rpc_conn *c);
/* The socket file a local server created: removed on destroy only while
 * it is still that file (same device and inode), so a successor's socket
 * at the same path is never taken away. */
typedef struct ty__unix_owner {
  char path[108];
  bool bound;
  uint64_t dev, ino;
} ty__unix_owner;
/* Binds h to path (local.c): a stale socket there, one nobody answers on,
 * is removed first; a live one, or a file that is not a socket, is an
 * error naming it. The socket is made 0666 (who may connect is decided by
 * the directory it is in and by the peer's uid on each request). */
int ty__unix_bind(uv_pipe_t *h, const char *path, ty__unix_owner *owner, char *err, size_t err_len);
void ty__unix_release(ty__unix_owner *owner);
/* Whether host names a Unix socket (an absolute path) rather than an
 * address or a name. Inline: sync.c must not pull local.c, and libuv with
 * it, into one-shot clients (trainctl loads no libuv). */
static inline bool ty__rpc_is_path(const char *host) {
  return host && host[0] == '/';
}
/* Fills out with copies of message ("" for NULL) and payload (sync.c; both
 * clients answer through it). */
void ty__rpc_result_fill(ty_rpc_result *out, int status, const char *message,
                         const uint8_t *payload, size_t len);

#endif
