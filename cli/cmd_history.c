/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl history (accounting, like sacct) and trainctl node show (a node
 * and its events). Each is one request to the controller, decoded by
 * cli/convert_history.c (cli/convert.c for nodes) and rendered by
 * cli/history.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/cli_internal.h"
#include "cli/cli_history.h"
#include "proto/methods.h"

const char ty__usage_history[] =
    "Usage: trainctl history [--user U | --all-users] [--since T] [--until T]\n"
    "                        [--state S,S] [--queue Q] [--job ID,ID] [--name N,N]\n"
    "                        [-N LIST] [--ranks] [--limit N] [--format F,F]\n"
    "                        [--noheader] [-P|-p] [--json]\n"
    "\n"
    "Accounting, like sacct: jobs that ended (from the controller's store) and those\n"
    "still pending or running, by id as sacct lists them (the newest N of --limit).\n"
    "Without --user or --all-users, yours.\n"
    "  -u, --user U,U     only these users' jobs (names or uids; an unknown one is\n"
    "                     refused, as sacct's)   -a, --all-users  every user's\n"
    "  -S, --since T      jobs that ended at or after T (live ones always show)\n"
    "  -E, --until T      jobs submitted before T\n"
    "                     T: now, now-2h, 2h (ago), @EPOCH, YYYY-MM-DD[THH:MM[:SS]]\n"
    "                     or sacct's: now-2hours, now-90 (seconds), HH:MM[:SS] (its\n"
    "                     last past occurrence), midnight, noon, teatime, MM/DD[/YY],\n"
    "                     MMDD[YY] (a date's last past one), each with -HH:MM[:SS]\n"
    "                     (YY is 20YY, as sacct reads it: 12/31/69 is 2069)\n"
    "  -s, --state S,S    only these states (pending, running, completed, failed, ...)\n"
    "  -r, --queue Q      only jobs of queue Q (sacct's --partition; -q is sacct's\n"
    "                     --qos, refused: there is no QOS)\n"
    "  -j, --job ID,ID    only these jobs (an array's id: its elements; 12_3 one;\n"
    "                     sacct's 12.batch is job 12)\n"
    "  --name N,N         only jobs with these names (sacct's; an old one is found\n"
    "                     however many newer jobs --limit leaves out)\n"
    "  -N, --nodelist L   only jobs that ran on any of these nodes (a hostlist:\n"
    "                     n[1-3]; sacct's; n1 is not n10)\n"
    "  --ranks            a line per rank (ID.RANK; ID.RANK#RUN after a requeue)\n"
    "                     under each job; its STATE is how its run ended, as sacct's\n"
    "                     steps (PREEMPTED, NODE_FAIL, REQUEUED, TIMEOUT, COMPLETED,\n"
    "                     ...; the process's, EXITED or SIGNALED, while the run is\n"
    "                     on; RUNNING for a rank still running), its EXIT the\n"
    "                     process's (JSON: run_state and state)\n"
    "  --limit N          the newest N jobs (the controller caps an answer too)\n"
    "  -o, --format F,F   the fields to show (--help-format lists them)\n"
    "  -n, --noheader     no header line (and no note under the table)\n"
    "  -P, --parsable2    cells with '|' between them, unpadded (sacct's); -p,\n"
    "                     --parsable: a '|' ends each line too. -X is taken (jobs\n"
    "                     are listed without steps) and --jobs is --job\n"
    "  sacct's spellings: --allusers, --starttime, --endtime, -r/--partition (the\n"
    "                     queue), -b/--brief (--format id,state,exit)\n"
    "  --json             a JSON array, one job per line\n"
    "CPU and GPU time marked ~ are the allocation (elapsed x CPUs or GPUs held),\n"
    "not a measurement; JSON says \"accounting\": \"allocated\" or \"measured\".\n";

/* Columns of the terminal stdout is, or 0 (no clipping) when it is none. */
size_t ty__ctl_term_width(void) {
  struct winsize ws;
  if (!isatty(STDOUT_FILENO) || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0) return 0;
  return ws.ws_col;
}

static int history_help(const ty_cli_history_args *a) {
  if (a->help) {
    fputs(ty__usage_history, stdout);
    return 0;
  }
  ty_buf b;
  ty_buf_init(&b);
  ty_buf_printf(&b, "Fields of trainctl history --format:\n");
  ty_cli_describe_fields(ty_cli_history_fields, ty_cli_n_history_fields, &b);
  int code = ty__ctl_write(&b);
  ty_buf_close(&b);
  return code;
}

/* One GetHistory of a's filters (a->user: one user or none), its records
 * appended to *rs. Returns a trainctl exit code. */
static int fetch_history(ty__ctl *c, const ty_cli_history_args *a, ty_cli_record **rs, size_t *n,
                         bool *truncated) {
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  ty_cli_record *got = NULL;
  size_t ngot = 0;
  bool cut = false;
  int code = ty_cli_encode_history(a, &req) == 0 ? 0 : TY_CLI_EXIT_ERROR;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_GET_HISTORY, &req, &res);
  if (code == 0 && ty_cli_decode_history(res.payload, res.payload_len, &got, &ngot, &cut) != 0)
    code = ty__ctl_bad_answer(TY_M_GET_HISTORY);
  if (code == 0 && ngot) {
    *rs = ty_xrealloc(*rs, (*n + ngot) * sizeof **rs);
    memcpy(*rs + *n, got, ngot * sizeof *got);
    *n += ngot;
  }
  *truncated |= cut;
  free(got); /* its records were moved to *rs */
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
  return code;
}

/* sacct -u A,B: a request for each user (the controller's scope and
 * limits per user), then the newest --limit of them all. rs is by id. */
static int fetch_users(ty__ctl *c, ty_cli_history_args *a, ty_cli_record **rs, size_t *n,
                       bool *truncated) {
  int code = 0;
  for (size_t i = 0; code == 0 && i < a->nusers; i++) {
    a->user = a->users[i];
    code = fetch_history(c, a, rs, n, truncated);
  }
  a->user = NULL;
  if (code == 0) ty_cli_history_select(*rs, n, a);
  size_t drop = code == 0 && a->limit && *n > a->limit ? *n - a->limit : 0;
  if (drop) {
    ty_cli_records_free_range(*rs, drop);
    memmove(*rs, *rs + drop, (*n - drop) * sizeof **rs);
    *n -= drop, *truncated = true;
  }
  return code;
}

int ty__cmd_history(ty__ctl *c, int argc, char **argv) {
  ty_cli_history_args a;
  char err[TY_ERR_LEN] = "";
  int64_t now = ty_now_ms();
  if (ty_cli_parse_history(argc, argv, now, &a, err, sizeof err) != 0 ||
      ty_cli_resolve_users("--user", a.users, &a.nusers, &a.user, err, sizeof err) != 0) {
    ty_cli_history_args_close(&a);
    return ty__ctl_usage("history", err);
  }
  if (a.help || a.help_format) {
    int code = history_help(&a);
    ty_cli_history_args_close(&a);
    return code;
  }
  if (!a.nusers && !a.all_users) a.user = ty_strdup(ty__ctl_user(c)); /* sacct's default: yours */
  a.json |= c->g.json;
  ty_buf out;
  ty_buf_init(&out);
  ty_cli_record *rs = NULL;
  size_t n = 0;
  bool truncated = false;
  int code = a.nusers > 1 ? fetch_users(c, &a, &rs, &n, &truncated)
                          : fetch_history(c, &a, &rs, &n, &truncated);
  if (code == 0 && a.nusers <= 1) ty_cli_history_select(rs, &n, &a); /* --job 12_3; by id */
  if (code == 0 && ty_cli_render_history(rs, n, &a, now, ty__ctl_term_width(), &out) == 0)
    code = ty__ctl_write(&out);
  if (code == 0 && truncated)
    ty__ctl_err("more jobs matched; the newest %zu are shown (--limit, --since narrow it)", n);
  ty_cli_records_free(rs, n);
  ty_buf_close(&out);
  ty_cli_history_args_close(&a);
  return code;
}

/* `node show NAME [--limit N] [--json]`. */
typedef struct show_args {
  const char *name;
  uint32_t limit;
  bool json, help;
} show_args;

enum { NS_JSON = TY__CLI_OPT_FIRST, NS_LIMIT, NS_HELP = 'h' };
static const struct option show_opts[] = {{"json", no_argument, NULL, NS_JSON},
                                          {"limit", required_argument, NULL, NS_LIMIT},
                                          {"help", no_argument, NULL, NS_HELP},
                                          {NULL, 0, NULL, 0}};

static int show_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  show_args *a = ud;
  (void)it;
  if (id == NS_JSON)
    a->json = true;
  else if (id == NS_HELP)
    a->help = true;
  else if (id == NS_LIMIT)
    return ty__cli_parse_u32("--limit", v, 1, 100000, &a->limit, err, err_len);
  else if (a->name)
    return ty_errf(err, err_len, TY_EINVAL, "node show: unexpected argument \"%s\" (one NODE)", v);
  else
    a->name = v;
  return 0;
}

int ty__cmd_node_show(ty__ctl *c, int argc, char **argv) {
  show_args a = {0};
  char err[TY_ERR_LEN] = "";
  int rc = ty__cli_parse(argc, argv, "h", show_opts, show_arg, &a, err, sizeof err);
  if (rc == 0 && !a.name && !a.help)
    rc = ty_errf(err, sizeof err, TY_EINVAL, "node show: a node name is required");
  if (rc != 0) return ty__ctl_usage("node", err);
  if (a.help) {
    fputs(ty__usage_node, stdout);
    return 0;
  }
  ty_buf req, out;
  ty_buf_init(&req), ty_buf_init(&out);
  ty_rpc_result res = {0};
  ty_cli_node nd = {0};
  ty_cli_node_event *ev = NULL;
  size_t nev = 0;
  int code = ty_cli_encode_get_node(a.name, a.limit, &req) == 0 ? 0 : TY_CLI_EXIT_ERROR;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_GET_NODE, &req, &res);
  if (code == 0 && ty_cli_decode_get_node(res.payload, res.payload_len, &nd, &ev, &nev) != 0)
    code = ty__ctl_bad_answer(TY_M_GET_NODE);
  if (code == 0 &&
      ty_cli_render_node_show(&nd, ev, nev, ty_now_ms(), a.json || c->g.json, &out) == 0)
    code = ty__ctl_write(&out);
  ty_cli_node_close(&nd);
  ty_cli_node_events_free(ev, nev);
  ty_rpc_result_close(&res);
  ty_buf_close(&out), ty_buf_close(&req);
  return code;
}
