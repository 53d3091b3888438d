/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's local Unix socket, as trainctl and rlaunch choose it
 * (cli/socket.c; docs/security.md). Declared apart from cli.h so that the
 * clients' connection code is all that needs it.
 */
#ifndef TY_CLI_SOCKET_H
#define TY_CLI_SOCKET_H

#include <stdbool.h>
#include <stdint.h>

/* The socket a controller started as the system service listens on. */
#define TY_CLI_SOCKET_DEFAULT "/run/trainyard/traind.sock"

/* Decides, once per process, which socket stands for the controller at
 * host:port: `flag` (trainctl --socket; "none" = never) for any host;
 * else `env` ($TRAINYARD_SOCKET; "none" = never) unless host is remote;
 * else TY_CLI_SOCKET_DEFAULT when host is loopback (127.0.0.0/8, ::1,
 * localhost) and port the default port. A remote host keeps TCP. */
void ty_cli_socket_choose(const char *flag, const char *env, const char *host, int port);
/* The socket to try before TCP for a connection to host:port, or NULL
 * (none chosen, another controller, or it failed before). */
const char *ty_cli_socket_for(const char *host, int port);
/* After opening the socket failed with rc (-errno or libuv's equivalent):
 * when it is absent (-ENOENT) the fallback to TCP is silent; any other
 * failure (permission, nothing listening) is reported on stderr naming
 * the path, once. Either way the socket is not tried again. */
void ty_cli_socket_failed(int rc);

/* connect.c (libuv): ty_rpc_client_reopen to the same controller, the
 * local socket first as ty_cli_connect does. */
struct ty_rpc_client;
int ty_cli_reconnect(struct ty_rpc_client *c, const char *host, int port, uint32_t timeout_ms);

#endif
