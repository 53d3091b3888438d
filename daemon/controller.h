/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/controller: traind's one top-level object. It owns the libuv loop
 * (borrowed from main), the SQLite store and its group-commit writer, the RPC
 * server for clients and workers, the in-memory job/node/queue tables, the
 * metrics registry and its HTTP server, and the 1 s tick.
 */
#ifndef TY_DAEMON_CONTROLLER_H
#define TY_DAEMON_CONTROLLER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ty_controller ty_controller;

typedef struct ty_controller_config {
  const char *listen_host;   /* borrowed for the controller's lifetime */
  int listen_port;           /* 0 = ephemeral */
  const char *metrics_host;
  int metrics_port;
  const char *state_dir;     /* the database is STATE_DIR/traind.db */
  uint32_t heartbeat_ms;
  uint32_t node_timeout_ms;
  uint32_t kill_grace_s;
  size_t max_frame;
  /* The scheduler (--config FILE): copied at create; NULL = defaults. The
   * topology's strings are copied too. */
  const struct ty_sched_config *sched;
  const struct ty_sched_topology *topo;
} ty_controller_config;

/* Opens the store (creating the state dir), loads state, starts listening
 * and the tick. On failure returns an error and writes a sentence into err. */
int ty_controller_create(uv_loop_t *loop, const ty_controller_config *cfg,
                         ty_controller **out_ctl, char *err, size_t err_len);
int ty_controller_rpc_port(const ty_controller *ctl);
int ty_controller_metrics_port(const ty_controller *ctl);
/* Orderly shutdown: stops listening, commits what is queued (answering those
 * requests), closes every handle. Running tasks keep running on the workers.
 * The loop then runs to completion; call ty_controller_destroy after it. */
void ty_controller_stop(ty_controller *ctl);
void ty_controller_destroy(ty_controller *ctl); /* accepts NULL */

#endif
