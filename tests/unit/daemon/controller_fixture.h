/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon_controller tests' fixture (controller_fixture.c): a real
 * controller on loopback, its loop on a thread of its own, and blocking
 * clients of it. */
#ifndef TY_TESTS_UNIT_DAEMON_CONTROLLER_FIXTURE_H
#define TY_TESTS_UNIT_DAEMON_CONTROLLER_FIXTURE_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"

typedef struct running {
  uv_loop_t loop;
  uv_async_t stop;
  ty_controller *ctl;
  pthread_t thread;
} running;

/* Starts a controller on the state in `dir` (heartbeats every second, a
 * kill grace of 1 s) and runs its loop on a thread. */
void ctl_start(running *r, const char *dir, uint32_t node_timeout_ms);
/* The same with max_frame bytes as its largest frame (0: the default). */
void ctl_start_framed(running *r, const char *dir, uint32_t node_timeout_ms, size_t max_frame);
/* Stops it and joins its thread; r->ctl stays for its stats and failure
 * until the caller destroys it and closes r->loop. */
void ctl_stop(running *r);
/* A client of r's controller (the caller closes it). */
ty_rpc_client *ctl_client(const running *r);
/* One call that must be answered: its status, and the answer's bytes in
 * *out (initialised here; the caller closes it) when out is not NULL. */
int ctl_call(ty_rpc_client *cl, const char *method, const uint8_t *p, size_t n, ty_buf *out);

#endif
