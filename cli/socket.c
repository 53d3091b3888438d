/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which Unix socket trainctl and rlaunch use for the controller (issue 20):
 * a controller on this host listens on one (traind --socket) beside its
 * TCP port, and a request there needs no MUNGE credential: traind takes
 * the caller's uid from the kernel. So a connection to a local controller
 * tries the socket first and falls back to TCP with MUNGE, silently when
 * the socket is not there, with a warning naming it otherwise.
 *
 * The choice is the process's (one controller per command), made once
 * after the command line is parsed; ty_cli_open (auth.c) and
 * ty_cli_connect (connect.c) consult it for every connection, retries'
 * included. Nothing here links libuv.
 */
#include "cli/socket.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "lib/base/base.h"
#include "proto/methods.h"

static struct {
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  char host[256];
  int port;
  bool on; /* a socket is chosen and has not failed */
} chosen;

static bool loopback(const char *host) {
  return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
         strcmp(host, "localhost") == 0;
}

static void pick(const char *path, const char *host, int port) {
  if (!path || strcmp(path, "none") == 0 || path[0] != '/') return;
  if (strlen(path) >= sizeof chosen.path || strlen(host) >= sizeof chosen.host) return;
  snprintf(chosen.path, sizeof chosen.path, "%s", path);
  snprintf(chosen.host, sizeof chosen.host, "%s", host);
  chosen.port = port;
  chosen.on = true;
}

void ty_cli_socket_choose(const char *flag, const char *env, const char *host, int port) {
  chosen.on = false;
  if (!host) return;
  if (flag && *flag) {
    pick(flag, host, port);
  } else if (env && *env) {
    if (loopback(host)) pick(env, host, port);
  } else if (loopback(host) && port == TY_CONTROLLER_PORT) {
    pick(TY_CLI_SOCKET_DEFAULT, host, port);
  }
}

const char *ty_cli_socket_for(const char *host, int port) {
  if (!chosen.on || !host || port != chosen.port || strcmp(host, chosen.host) != 0) return NULL;
  return chosen.path;
}

void ty_cli_socket_failed(int rc) {
  if (!chosen.on) return;
  chosen.on = false;
  if (rc == -ENOENT) return; /* no controller socket on this host: TCP, as before */
  fprintf(stderr, "warning: cannot use the controller's local socket %s: %s; using TCP at %s:%d\n",
          chosen.path, rc < 0 && rc > -4096 ? strerror(-rc) : ty_strerror(rc), chosen.host,
          chosen.port);
}
