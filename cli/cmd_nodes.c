/* SPDX-License-Identifier: Apache-2.0 */
/* trainctl nodes: the cluster's nodes, their load and their health. */
#include <stdio.h>

#include "cli/cli_internal.h"
#include "proto/methods.h"

const char ty__usage_nodes[] =
    "Usage: trainctl nodes [--json]\n"
    "\n"
    "Columns: NAME STATE (UP, DOWN, DRAINING, DRAINED) CPUS (used/total) GPUS\n"
    "(used/total) MEM TASKS (running) HEARTBEAT (age of the last one) REASON (why\n"
    "it is down or draining). --json: a JSON array, one node per line.\n"
    "sinfo's -N/--Node and -l/--long are taken: a line per node, these columns.\n"
    "Its partition summary (sinfo, -s, -p) is trainctl queue ls: a queue is no set\n"
    "of nodes here.\n";

int ty__cmd_nodes(ty__ctl *c, int argc, char **argv) {
  ty_cli_nodes_args a;
  char err[TY_ERR_LEN] = "";
  if (ty_cli_parse_nodes(argc, argv, &a, err, sizeof err) != 0) return ty__ctl_usage("nodes", err);
  if (a.help) {
    fputs(ty__usage_nodes, stdout);
    return 0;
  }
  ty_buf req, out;
  ty_buf_init(&req), ty_buf_init(&out);
  ty_rpc_result res = {0};
  ty_cli_node *ns = NULL;
  size_t n = 0;
  /* ListNodesRequest has no fields: its encoding is empty. */
  int code = ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_LIST_NODES, &req, &res);
  if (code == 0 && ty_cli_decode_nodes(res.payload, res.payload_len, &ns, &n) != 0)
    code = ty__ctl_bad_answer(TY_M_LIST_NODES);
  if (code == 0 && ty_cli_render_nodes(ns, n, ty_now_ms(), a.json || c->g.json, &out) == 0)
    code = ty__ctl_write(&out);
  ty_cli_nodes_free(ns, n);
  ty_rpc_result_close(&res);
  ty_buf_close(&out), ty_buf_close(&req);
  return code;
}
