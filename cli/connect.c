/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The libuv connection to traind for the clients that wait on several
 * things at once (rlaunch: a streamed answer, workers, signals, stdin): a
 * ty_rpc_client signed as ty_cli_open's blocking one (auth.c). Its own
 * file, so that an executable that never calls it (trainctl) does not link
 * libuv through auth.c. Both try the controller's local socket first when
 * one is chosen (cli/socket.c).
 */
#include "cli/cli.h"
#include "cli/socket.h"

int ty_cli_reconnect(ty_rpc_client *c, const char *host, int port, uint32_t timeout_ms) {
  const char *local = ty_cli_socket_for(host, port);
  if (local) {
    int lrc = ty_rpc_client_reopen(c, local, 0, timeout_ms);
    if (lrc == 0) return 0;
    ty_cli_socket_failed(lrc);
  }
  return ty_rpc_client_reopen(c, host, port, timeout_ms);
}

int ty_cli_connect(const char *host, int port, uint32_t timeout_ms, ty_cli_signer *signer,
                   ty_rpc_client **out) {
  const char *local = ty_cli_socket_for(host, port);
  if (local) {
    int lrc = ty_rpc_client_open(local, 0, timeout_ms, out);
    if (lrc == 0) return 0; /* identified by the kernel: nothing to sign */
    ty_cli_socket_failed(lrc);
  }
  int rc = ty_rpc_client_open(host, port, timeout_ms, out);
  if (rc != 0 || !signer) return rc;
  ty_cli_signer_init(signer);
  ty_rpc_client_set_signer(*out, ty_cli_sign, signer);
  return 0;
}
