/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/notify: tells a service manager how a daemon is doing, through
 * systemd's sd_notify protocol (libsystemd from Debian's libsystemd-dev).
 * traind and trainworkerd run as Type=notify units (deploy/systemd/): they
 * send READY=1 once they listen and their state is open, STOPPING=1 when a
 * signal starts their shutdown, and WATCHDOG=1 from their event loop when
 * the unit sets WatchdogSec=, so a loop that hangs gets the daemon
 * restarted.
 *
 * Outside systemd (NOTIFY_SOCKET unset) every call does nothing; so does a
 * build without libsystemd (meson option systemd=disabled), whose units
 * then must be Type=simple. Nothing here fails a daemon: a notification
 * that cannot be sent is logged once as a warning.
 */
#ifndef TY_LIB_NOTIFY_NOTIFY_H
#define TY_LIB_NOTIFY_NOTIFY_H

#include <stdbool.h>
#include <uv.h>

/* READY=1 with STATUS=status (a short line for `systemctl status`). */
void ty_notify_ready(const char *status);
/* STOPPING=1 with STATUS=status. */
void ty_notify_stopping(const char *status);
/* Whether this build speaks sd_notify (libsystemd was found). */
bool ty_notify_supported(void);

/* The watchdog's keep-alive: a timer on the daemon's loop that sends
 * WATCHDOG=1 at half the unit's WatchdogSec=. Caller-owned; the timer is
 * a member, so the struct must stay put until ty_notify_watchdog_close's
 * close has run (the loop's next turn). */
typedef struct ty_notify_watchdog {
  uv_timer_t timer;
  bool started;
} ty_notify_watchdog;

/* Starts the keep-alive when the service manager asked for one (systemd's
 * WATCHDOG_USEC for this process); otherwise does nothing. Returns 0, or
 * a libuv error from the timer. */
int ty_notify_watchdog_init(uv_loop_t *loop, ty_notify_watchdog *wd);
/* Stops and closes the timer (when started); the loop must run once more
 * before wd is freed. Accepts a watchdog that was never started. */
void ty_notify_watchdog_close(ty_notify_watchdog *wd);

#endif
