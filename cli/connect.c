/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The libuv connection to traind for the clients that wait on several
 * things at once (rlaunch: a streamed answer, workers, signals, stdin): a
 * ty_rpc_client signed as ty_cli_open's blocking one (auth.c). Its own
 * file, so that an executable that never calls it (trainctl) does not link
 * libuv through auth.c.
 */
#include "cli/cli.h"

int ty_cli_connect(const char *host, int port, uint32_t timeout_ms, ty_cli_signer *signer,
                   ty_rpc_client **out) {
  int rc = ty_rpc_client_open(host, port, timeout_ms, out);
  if (rc != 0 || !signer) return rc;
  ty_cli_signer_init(signer);
  ty_rpc_client_set_signer(*out, ty_cli_sign, signer);
  return 0;
}
