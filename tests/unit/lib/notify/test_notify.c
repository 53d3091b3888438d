/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/notify against a notification socket of the test's own, as systemd
 * would hold one for a Type=notify unit: READY=1 and STOPPING=1 with their
 * STATUS lines, the watchdog keep-alive at half of WATCHDOG_USEC from a
 * running loop, no keep-alive when the watchdog is meant for another pid,
 * and silence without NOTIFY_SOCKET. Skips (exit 77 per test) in a build
 * without libsystemd.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "lib/notify/notify.h"

typedef struct listener {
  int fd;
  char path[108];
} listener;

/* A datagram socket in a fresh directory, named in NOTIFY_SOCKET. */
static void listen_notify(listener *l) {
  char dir[] = "/tmp/ty-notify-XXXXXX";
  cr_assert(mkdtemp(dir));
  snprintf(l->path, sizeof l->path, "%s/notify", dir);
  l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  cr_assert(l->fd >= 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", l->path);
  cr_assert_eq(bind(l->fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {.tv_sec = 5};
  setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setenv("NOTIFY_SOCKET", l->path, 1);
}

static void close_listener(listener *l) {
  close(l->fd);
  unlink(l->path);
  *strrchr(l->path, '/') = '\0';
  rmdir(l->path);
  unsetenv("NOTIFY_SOCKET");
}

/* The next datagram, or "" after 5 s. */
static void next_msg(listener *l, char *out, size_t cap) {
  ssize_t n = recv(l->fd, out, cap - 1, 0);
  out[n > 0 ? n : 0] = '\0';
}

static void need_systemd(void) {
  if (!ty_notify_supported()) cr_skip_test("built without libsystemd (systemd=disabled)");
}

Test(notify, ready_and_stopping_carry_their_status) {
  need_systemd();
  listener l;
  listen_notify(&l);
  char msg[512];
  ty_notify_ready("rpc on port 7810");
  next_msg(&l, msg, sizeof msg);
  cr_assert_str_eq(msg, "READY=1\nSTATUS=rpc on port 7810");
  ty_notify_stopping("stopping");
  next_msg(&l, msg, sizeof msg);
  cr_assert_str_eq(msg, "STOPPING=1\nSTATUS=stopping");
  close_listener(&l);
}

static void on_stop(uv_timer_t *t) {
  uv_stop(t->loop);
}

/* Runs a loop with the watchdog for `ms` and counts WATCHDOG=1 messages. */
static int keepalives(listener *l, int ms, bool *out_started) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ty_notify_watchdog wd;
  cr_assert_eq(ty_notify_watchdog_init(&loop, &wd), 0);
  *out_started = wd.started;
  uv_timer_t stop;
  uv_timer_init(&loop, &stop);
  uv_timer_start(&stop, on_stop, (uint64_t)ms, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  ty_notify_watchdog_close(&wd);
  uv_close((uv_handle_t *)&stop, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0, "the watchdog left a handle open");
  struct timeval tv = {.tv_usec = 1000};
  setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int n = 0;
  char msg[64];
  for (;;) {
    next_msg(l, msg, sizeof msg);
    if (!msg[0]) break;
    cr_assert_str_eq(msg, "WATCHDOG=1");
    n++;
  }
  return n;
}

Test(notify, watchdog_keeps_alive_at_half_the_timeout) {
  need_systemd();
  listener l;
  listen_notify(&l);
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  setenv("WATCHDOG_PID", pid, 1);
  setenv("WATCHDOG_USEC", "100000", 1); /* 100 ms: a keep-alive every 50 ms */
  bool started;
  int n = keepalives(&l, 400, &started);
  cr_assert(started);
  /* One at once and one due at 50 ms, which libuv runs before the stop
   * timer due at 400 ms however late the loop gets to them. */
  cr_assert_geq(n, 2, "%d keep-alives in 400 ms", n);
  /* A watchdog meant for another process (a parent's) is not ours. */
  setenv("WATCHDOG_PID", "1", 1);
  setenv("WATCHDOG_USEC", "100000", 1);
  cr_assert_eq(keepalives(&l, 100, &started), 0);
  cr_assert_not(started);
  unsetenv("WATCHDOG_PID");
  unsetenv("WATCHDOG_USEC");
  close_listener(&l);
}

Test(notify, nothing_happens_outside_systemd) {
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  ty_notify_ready("x"); /* no socket: no error, no crash */
  ty_notify_stopping("x");
  uv_loop_t loop;
  uv_loop_init(&loop);
  ty_notify_watchdog wd;
  cr_assert_eq(ty_notify_watchdog_init(&loop, &wd), 0);
  cr_assert_not(wd.started);
  ty_notify_watchdog_close(&wd);
  cr_assert_eq(uv_loop_close(&loop), 0);
}
