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

/* Server <-> conn glue. A server-accepted conn is linked into its server's
 * list so that destroying the server closes it; the conn unlinks itself when
 * it is freed. */
typedef struct ty__conn_link {
  struct ty__conn_link *prev, *next;
} ty__conn_link;

/* Creates a conn with an initialised (not yet connected) TCP handle. */
int ty__conn_create(uv_loop_t *loop, const ty_rpc_conn_opts *opts, ty_rpc_conn **out_conn);
uv_tcp_t *ty__conn_tcp(ty_rpc_conn *c);
/* After accept/connect: sets TCP_NODELAY, records the peer, starts reading. */
int ty__conn_start(ty_rpc_conn *c);
/* Closes at once, without flushing, and without calling on_close when the
 * conn was never handed to the user. */
void ty__conn_abort(ty_rpc_conn *c, int reason);
ty__conn_link *ty__conn_link_of(ty_rpc_conn *c);
ty_rpc_conn *ty__conn_from_link(ty__conn_link *l);
/* Called when the conn is freed, so the owner (a server) can unlink it. */
void ty__conn_set_unlink(ty_rpc_conn *c, void (*fn)(ty_rpc_conn *c, void *owner), void *owner);

#endif
