/* SPDX-License-Identifier: Apache-2.0 */
/* trainctl nodes: the cluster's nodes, their load and their health. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_history.h"
#include "cli/cli_internal.h"
#include "proto/methods.h"

const char ty__usage_nodes[] =
    "Usage: trainctl nodes [--json] [-o FORMAT] [-t STATES] [-h] [-N]\n"
    "\n"
    "Columns: NAME STATE (UP, DOWN, DRAINING, DRAINED) CPUS (used/total) GPUS\n"
    "(used/total) MEM TASKS (running) HEARTBEAT (age of the last one) REASON (why\n"
    "it is down or draining). --json: a JSON array, one node per line.\n"
    "sinfo's -N/--Node and -l/--long are taken: a line per node, these columns.\n"
    "  -o, --format F    sinfo's codes instead, printed as sinfo prints them: %N\n"
    "                    nodes (a hostlist), %n name, %D count, %T state (idle,\n"
    "                    mixed, allocated, down, draining, drained), %t its short\n"
    "                    form, %c CPUs, %C CPUs A/I/O/T, %m memory (MB), %G GPUs\n"
    "                    (gpu:N), %E reason, %z S:C:T; nodes whose lines read the\n"
    "                    same share one unless -N: sinfo -h -t idle -o %N\n"
    "  -t, --states S,S  only nodes in these sinfo states (idle, mix, alloc, down,\n"
    "                    drng, drain, up, all)\n"
    "  -h, --noheader    no header line (--help is this help)\n"
    "Its partition summary (sinfo, -s, -p) is trainctl queue ls: a queue is no set\n"
    "of nodes here.\n";

int ty__cmd_nodes(ty__ctl *c, int argc, char **argv) {
  ty_cli_nodes_args a;
  char err[TY_ERR_LEN] = "";
  if (ty_cli_parse_nodes(argc, argv, &a, err, sizeof err) != 0) return ty__ctl_usage("nodes", err);
  if (a.help) {
    fputs(ty__usage_nodes, stdout);
    ty_cli_nodes_args_close(&a);
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
  int rc = 0;
  if (code == 0 && a.format && !a.json && !c->g.json)
    rc = ty_cli_render_nodes_sinfo(ns, n, a.format, a.states, a.per_node, a.noheader, &out);
  else if (code == 0)
    rc = ty_cli_render_nodes(ns, n, ty_now_ms(), a.json || c->g.json, &out);
  if (code == 0 && rc == 0 && a.noheader && !a.format && !a.json && !c->g.json && out.len) {
    /* the table's header is its first line, which sinfo -h leaves out */
    size_t hdr = (size_t)((uint8_t *)memchr(out.data, '\n', out.len) - out.data) + 1;
    memmove(out.data, out.data + hdr, out.len - hdr);
    out.len -= hdr;
  }
  if (code == 0) code = rc == 0 ? ty__ctl_write(&out) : TY_CLI_EXIT_ERROR;
  ty_cli_nodes_args_close(&a);
  ty_cli_nodes_free(ns, n);
  ty_rpc_result_close(&res);
  ty_buf_close(&out), ty_buf_close(&req);
  return code;
}
