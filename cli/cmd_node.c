/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl node ls|drain|resume. `ls` is `trainctl nodes`; drain takes a node
 * out of scheduling while its running jobs finish (DRAINING, then DRAINED),
 * resume puts it back. Both are recorded with the caller's name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/admin.h"
#include "cli/trainctl.h"
#include "proto/methods.h"

const char ty__usage_node[] =
    "Usage: trainctl node ls [--json]\n"
    "       trainctl node drain NAME [--reason TEXT]\n"
    "       trainctl node resume NAME\n"
    "\n"
    "drain: the node takes no new jobs; running ones finish, then it is DRAINED.\n"
    "resume: the node takes jobs again.\n";

/* Parses NAME [--reason TEXT] (the reason only for drain). */
static int parse_node(int argc, char **argv, bool reason_ok, const char **name,
                      const char **reason, char *err, size_t err_len) {
  *name = NULL;
  *reason = "";
  for (int i = 0; i < argc; i++) {
    if (reason_ok && !strcmp(argv[i], "--reason")) {
      if (i + 1 >= argc) return ty_errf(err, err_len, TY_EINVAL, "--reason: needs a value");
      *reason = argv[++i];
    } else if (reason_ok && !strncmp(argv[i], "--reason=", 9)) {
      *reason = argv[i] + 9;
    } else if (argv[i][0] == '-') {
      return ty_errf(err, err_len, TY_EINVAL, "unknown option \"%s\"", argv[i]);
    } else if (*name) {
      return ty_errf(err, err_len, TY_EINVAL, "unexpected argument \"%s\"", argv[i]);
    } else {
      *name = argv[i];
    }
  }
  if (!*name) return ty_errf(err, err_len, TY_EINVAL, "a node name is required");
  return 0;
}

int ty__cmd_node(ty__ctl *c, int argc, char **argv) {
  char err[TY_ERR_LEN] = "";
  if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
    fputs(ty__usage_node, argc < 1 ? stderr : stdout);
    return argc < 1 ? TY_CLI_EXIT_USAGE : 0;
  }
  if (!strcmp(argv[0], "ls")) return ty__cmd_nodes(c, argc - 1, argv + 1);
  bool drain = !strcmp(argv[0], "drain");
  if (!drain && strcmp(argv[0], "resume") != 0) {
    ty_errf(err, sizeof err, TY_EINVAL, "node: unknown subcommand \"%s\"", argv[0]);
    return ty__ctl_usage("node", err);
  }
  const char *name, *reason;
  if (parse_node(argc - 1, argv + 1, drain, &name, &reason, err, sizeof err) != 0)
    return ty__ctl_usage("node", err);
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  int code = ty_cli_encode_update_node(name, c->user, argv[0], reason, &req) == 0
                 ? 0 : TY_CLI_EXIT_ERROR;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_UPDATE_NODE, &req, &res);
  int state = 0;
  char *why = NULL;
  if (code == 0 && ty_cli_decode_update_node(res.payload, res.payload_len, &state, &why) != 0)
    code = ty__ctl_bad_answer(TY_M_UPDATE_NODE);
  if (code == 0) printf("Node %s is %s\n", name, ty_node_state_name(state));
  free(why);
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
  return code;
}
