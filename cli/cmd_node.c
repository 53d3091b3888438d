/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl node ls|show|drain|resume|delete. `ls` is `trainctl nodes`,
 * `show` is cmd_history.c's; drain takes a node out of scheduling while its
 * running jobs finish (DRAINING, then DRAINED), resume puts it back, delete
 * removes a DOWN or DRAINED node without running tasks (Slurm's scontrol
 * delete nodename). Each is recorded with the caller's name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/cli_admin.h"
#include "proto/methods.h"

const char ty__usage_node[] =
    "Usage: trainctl node ls [--json] [-o FORMAT] [-t STATES] [-h] [-N] (trainctl nodes)\n"
    "       trainctl node show NAME [--limit N] [--json]\n"
    "       trainctl node drain NAME [--reason TEXT]\n"
    "       trainctl node resume NAME\n"
    "       trainctl node delete NAME [--reason TEXT]\n"
    "\n"
    "drain: the node takes no new jobs; running ones finish, then it is DRAINED.\n"
    "  --reason is one line of at most 200 bytes (no control characters).\n"
    "resume: the node takes jobs again.\n"
    "delete: removes a DOWN or DRAINED node with no running tasks (operators only):\n"
    "  `nodes` no longer lists it and its name is free; a worker of that name that\n"
    "  registers (again) is a new node. Its history keeps a delete event with who.\n"
    "show: the node and its events, oldest first (the newest N, default 100):\n"
    "registrations, DOWN and UP, drains and resumes, with the reason and who.\n";

enum { N_REASON = TY__CLI_OPT_FIRST, N_HELP = 'h' };
static const struct option drain_opts[] = {{"reason", required_argument, NULL, N_REASON},
                                           {"help", no_argument, NULL, N_HELP},
                                           {NULL, 0, NULL, 0}};

typedef struct node_args {
  const char *name, *reason; /* borrowed from argv */
  const char *sub;           /* "drain", "resume" or "delete", for messages */
  bool help;
} node_args;

static int node_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  node_args *a = ud;
  (void)it;
  if (id == N_REASON)
    a->reason = v;
  else if (id == N_HELP)
    a->help = true;
  else if (a->name)
    return ty_errf(err, err_len, TY_EINVAL, "node %s: unexpected argument \"%s\" (one NODE)",
                   a->sub, v);
  else
    a->name = v;
  return 0;
}

/* Parses NAME [--reason TEXT] (the reason not for resume) and --help. */
static int parse_node(int argc, char **argv, const char *sub, node_args *a, char *err,
                      size_t err_len) {
  *a = (node_args){.reason = "", .sub = sub};
  /* resume takes no --reason: its table starts after it. */
  bool reason = strcmp(sub, "resume") != 0;
  int rc = ty__cli_parse(argc, argv, "h", reason ? drain_opts : drain_opts + 1, node_arg, a, err,
                         err_len);
  if (rc == 0 && !a->name && !a->help)
    rc = ty_errf(err, err_len, TY_EINVAL, "node %s: a node name is required", a->sub);
  return rc;
}

int ty__cmd_node(ty__ctl *c, int argc, char **argv) {
  char err[TY_ERR_LEN] = "";
  const char *sub = NULL;
  int group = ty__ctl_group("node", ty__usage_node, argc, argv, &sub);
  if (group >= 0) return group;
  if (!strcmp(argv[0], "ls")) return ty__cmd_nodes(c, argc - 1, argv + 1);
  if (!strcmp(argv[0], "show")) return ty__cmd_node_show(c, argc - 1, argv + 1);
  bool del = !strcmp(argv[0], "delete");
  if (strcmp(argv[0], "drain") != 0 && strcmp(argv[0], "resume") != 0 && !del) {
    ty_errf(err, sizeof err, TY_EINVAL, "node: unknown subcommand \"%s\"", argv[0]);
    return ty__ctl_usage("node", err);
  }
  node_args a;
  if (parse_node(argc - 1, argv + 1, argv[0], &a, err, sizeof err) != 0)
    return ty__ctl_usage("node", err);
  if (a.help) {
    fputs(ty__usage_node, stdout);
    return 0;
  }
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  int code =
      ty_cli_encode_update_node(a.name, argv[0], a.reason, &req) == 0 ? 0 : TY_CLI_EXIT_ERROR;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_UPDATE_NODE, &req, &res);
  int state = 0;
  char *why = NULL;
  if (code == 0 && ty_cli_decode_update_node(res.payload, res.payload_len, &state, &why) != 0)
    code = ty__ctl_bad_answer(TY_M_UPDATE_NODE);
  if (code == 0 && del)
    printf("Node %s deleted\n", a.name);
  else if (code == 0)
    printf("Node %s is %s\n", a.name, ty_node_state_name(state));
  free(why);
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
  return code;
}
