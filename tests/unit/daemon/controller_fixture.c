/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon_controller tests' fixture (test_controller.c,
 * test_worker_rpc.c): a real controller whose loop runs on a thread of
 * its own, so a test's blocking clients (and a test playing a worker on a
 * loop of its own) talk to it over loopback as traind's would.
 */
#include "controller_fixture.h"

#include <criterion/criterion.h>

static void on_stop(uv_async_t *h) {
  running *r = h->data;
  uv_close((uv_handle_t *)&r->stop, NULL);
  ty_controller_stop(r->ctl);
}

static void *loop_main(void *ud) {
  running *r = ud;
  uv_run(&r->loop, UV_RUN_DEFAULT);
  return NULL;
}

void ctl_start(running *r, const char *dir, uint32_t node_timeout_ms) {
  ctl_start_framed(r, dir, node_timeout_ms, 0);
}

void ctl_start_framed(running *r, const char *dir, uint32_t node_timeout_ms, size_t max_frame) {
  ty_controller_config cfg = {.listen_host = "127.0.0.1",
                              .max_frame = max_frame,
                              .metrics_host = "127.0.0.1",
                              .state_dir = dir,
                              .heartbeat_ms = 1000,
                              .node_timeout_ms = node_timeout_ms,
                              .kill_grace_s = 1};
  char err[TY_ERR_LEN];
  cr_assert_eq(uv_loop_init(&r->loop), 0);
  cr_assert_eq(ty_controller_create(&r->loop, &cfg, &r->ctl, err, sizeof err), 0, "%s", err);
  r->stop.data = r;
  cr_assert_eq(uv_async_init(&r->loop, &r->stop, on_stop), 0);
  cr_assert_eq(pthread_create(&r->thread, NULL, loop_main, r), 0);
}

void ctl_stop(running *r) {
  uv_async_send(&r->stop);
  pthread_join(r->thread, NULL);
}

ty_rpc_client *ctl_client(const running *r) {
  ty_rpc_client *cl = NULL;
  cr_assert_eq(ty_rpc_client_open("127.0.0.1", ty_controller_rpc_port(r->ctl), 10000, &cl), 0);
  return cl;
}

int ctl_call(ty_rpc_client *cl, const char *method, const uint8_t *p, size_t n, ty_buf *out) {
  ty_rpc_result res;
  cr_assert_eq(ty_rpc_client_call(cl, method, p, n, 10000, &res), 0);
  int status = res.status;
  if (out) {
    ty_buf_init(out);
    ty_buf_append(out, res.payload, res.payload_len);
  }
  ty_rpc_result_close(&res);
  return status;
}
