/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/notify: sd_notify messages for systemd's Type=notify units (see
 * notify.h). libsystemd's sd_notify does the protocol (a datagram on
 * NOTIFY_SOCKET, abstract or path, with credentials); this file only
 * chooses when and what. Messages are tiny and the socket is local, so
 * sending them from the loop thread never blocks for long.
 */
#include "lib/notify/notify.h"

#include <stdint.h>
#include <stdio.h>

#include "lib/base/base.h"

#ifdef TY_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static void send_state(const char *state, const char *status) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s\nSTATUS=%s", state, status ? status : "");
  int rc = sd_notify(0, msg);
  if (rc < 0) ty_warn("sd_notify %s: %s (is NOTIFY_SOCKET reachable?)", state, ty_strerror(rc));
}

bool ty_notify_supported(void) {
  return true;
}

static void on_watchdog(uv_timer_t *t) {
  (void)t;
  sd_notify(0, "WATCHDOG=1");
}

int ty_notify_watchdog_init(uv_loop_t *loop, ty_notify_watchdog *wd) {
  wd->started = false;
  uint64_t usec = 0;
  /* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if any) is ours. */
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return 0;
  uint64_t period_ms = usec / 2000; /* half the timeout, as sd_watchdog_enabled(3) advises */
  if (period_ms == 0) period_ms = 1;
  int rc = uv_timer_init(loop, &wd->timer);
  if (rc != 0) return rc;
  wd->started = true;
  ty_info("watchdog: keep-alive every %llu ms", (unsigned long long)period_ms);
  return uv_timer_start(&wd->timer, on_watchdog, 0, period_ms);
}
#else
static void send_state(const char *state, const char *status) {
  (void)state;
  (void)status;
}

bool ty_notify_supported(void) {
  return false;
}

int ty_notify_watchdog_init(uv_loop_t *loop, ty_notify_watchdog *wd) {
  (void)loop;
  wd->started = false;
  return 0;
}
#endif

void ty_notify_ready(const char *status) {
  send_state("READY=1", status);
}

void ty_notify_stopping(const char *status) {
  send_state("STOPPING=1", status);
}

void ty_notify_watchdog_close(ty_notify_watchdog *wd) {
  if (!wd->started) return;
  uv_timer_stop(&wd->timer);
  uv_close((uv_handle_t *)&wd->timer, NULL);
  wd->started = false;
}
