/* SPDX-License-Identifier: Apache-2.0 */
/* trainctl nodes: the cluster's nodes, their load and their health. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_history.h"
#include "cli/cli_internal.h"
#include "proto/methods.h"

const char ty__usage_nodes[] =
    "Usage: trainctl nodes [--json] [-o FORMAT] [-t STATES] [-h] [-N] [-R]\n"
    "\n"
    "Columns: NAME STATE (UP, DOWN, DRAINING, DRAINED) CPUS (used/total) GPUS\n"
    "(used/total) MEM TASKS (running) HEARTBEAT (age of the last one) REASON (why\n"
    "it is down or draining). --json: a JSON array, one node per line.\n"
    "sinfo's -N/--Node and -l/--long are taken: a line per node, these columns.\n"
    "  -o, --format F    sinfo's codes instead, printed as sinfo prints them: %N\n"
    "                    nodes (a hostlist), %n name, %D count, %T state (idle,\n"
    "                    mixed, allocated, down, draining, drained), %t its short\n"
    "                    form, %c CPUs, %C CPUs A/I/O/T (the line's nodes', added\n"
    "                    up), %m memory (MB), %G GPUs (gpu:N), %E reason, %z S:C:T;\n"
    "                    nodes whose lines read the same but for %N %n %D %C share\n"
    "                    one unless -N: sinfo -h -t idle -o %N, sinfo -h -o %C\n"
    "  -t, --states S,S  only nodes in these sinfo states (idle, mix, alloc, down,\n"
    "                    drng, drain, up, all)\n"
    "  -R, --list-reasons  sinfo -R's: the nodes down, draining or drained, a line\n"
    "                    each: REASON (an operator's drain: the words given), USER\n"
    "                    and TIMESTAMP (who set it, when), NODELIST\n"
    "  -h, --noheader    no header line (--help is this help)\n"
    "Its partition summary (sinfo, -s, -p) is trainctl queue ls: a queue is no set\n"
    "of nodes here.\n";

/* nodes -R: each node out of service with its events (a GetNode each: a
 * few nodes, where sinfo -R is asked). */
static int render_reasons(ty__ctl *c, const ty_cli_node *ns, size_t n, bool noheader, ty_buf *out) {
  ty_cli_node_reason *rs = ty_xcalloc(n ? n : 1, sizeof *rs);
  ty_cli_node_event **evs = ty_xcalloc(n ? n : 1, sizeof *evs); /* owned: rs[i].ev */
  size_t k = 0;
  int code = 0;
  for (size_t i = 0; i < n && code == 0; i++) {
    if (!ty_cli_node_out_of_service(&ns[i])) continue;
    ty_buf req;
    ty_buf_init(&req);
    ty_rpc_result res = {0};
    ty_cli_node nd = {0};
    rs[k].node = &ns[i];
    code = ty_cli_encode_get_node(ns[i].name, 0, &req) == 0 ? 0 : TY_CLI_EXIT_ERROR;
    if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_GET_NODE, &req, &res);
    if (code == 0 &&
        ty_cli_decode_get_node(res.payload, res.payload_len, &nd, &evs[k], &rs[k].nev) != 0)
      code = ty__ctl_bad_answer(TY_M_GET_NODE);
    rs[k].ev = evs[k];
    k++;
    ty_cli_node_close(&nd);
    ty_rpc_result_close(&res);
    ty_buf_close(&req);
  }
  if (code == 0) ty_cli_render_node_reasons(rs, k, noheader, out);
  for (size_t i = 0; i < k; i++)
    ty_cli_node_events_free(evs[i], rs[i].nev);
  free(evs);
  free(rs);
  return code;
}

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
  size_t shown = code == 0 ? ty_cli_nodes_in_states(ns, n, a.states) : 0; /* -t, every form */
  if (code == 0 && a.reasons) {
    code = render_reasons(c, ns, shown, a.noheader, &out);
  } else if (code == 0 && a.format && !a.json && !c->g.json)
    rc = ty_cli_render_nodes_sinfo(ns, shown, a.format, a.per_node, a.noheader, &out);
  else if (code == 0)
    rc = ty_cli_render_nodes(ns, shown, ty_now_ms(), a.json || c->g.json, &out);
  if (code == 0 && rc == 0 && a.noheader && !a.format && !a.reasons && !a.json && !c->g.json &&
      out.len) {
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
