/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainyard-stream: trainctl's commands that read the workers' streams on
 * libuv's event loop, `logs` (cmd_logs.c) and `attach` (cmd_attach.c).
 * trainctl runs it in its own place with its whole command line
 * (helper_exec.c), so only these commands load libuv; this main() parses
 * the same global options and hands the command the same context as
 * trainctl's.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_internal.h"
#include "cli/socket.h"

static const ty__ctl_cmd commands[] = {
    {.name = "logs", .run = ty__cmd_logs},
    {.name = "attach", .run = ty__cmd_attach},
};

static int dispatch(ty__ctl *c, int argc, char **argv) {
  const char *name = argv[c->g.cmd_index];
  for (size_t i = 0; i < TY_ARRAY_LEN(commands); i++)
    if (strcmp(commands[i].name, name) == 0)
      return commands[i].run(c, argc - c->g.cmd_index - 1, argv + c->g.cmd_index + 1);
  char err[TY_ERR_LEN] = "";
  ty_errf(err, sizeof err, TY_EINVAL,
          "trainyard-stream runs only trainctl's logs and attach, not \"%s\"", name);
  return ty__ctl_usage(NULL, err);
}

/* argv: trainctl's (trainctl execs this with its whole command line). */
int main(int argc, char **argv) {
  ty__ctl c = {.argc = argc, .argv = argv};
  char err[TY_ERR_LEN] = "";
  int code;
  if (ty_cli_parse_global(argc, argv, getenv("TRAINYARD_CONTROLLER"), getenv("TRAINYARD_PORT"),
                          &c.g, err, sizeof err) != 0)
    code = ty__ctl_usage(NULL, err);
  else if (c.g.cmd_index >= argc)
    code = ty__ctl_usage(NULL, "trainyard-stream: a command (logs or attach) is required");
  else {
    /* As trainctl's main() does: without it logs and attach ignored
     * --socket and $TRAINYARD_SOCKET and went to TCP. */
    ty_cli_socket_choose(c.g.socket, getenv("TRAINYARD_SOCKET"), c.g.host, c.g.port);
    code = dispatch(&c, argc, argv);
  }
  ty_rpc_sync_close(c.client);
  ty_cli_signer_close(&c.signer);
  ty_cli_global_close(&c.g);
  return code;
}
