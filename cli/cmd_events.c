/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl events: the admin events traind recorded (ListAdminEvents; as
 * Slurm's `sacctmgr show transactions`): queue create/update/delete and
 * each reconfigure or SIGHUP reload, applied or refused, with who made
 * them and when, oldest first; operators only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_admin.h"
#include "cli/cli_history.h"
#include "cli/cli_internal.h"
#include "lib/json/json.h"
#include "proto/methods.h"

const char ty__usage_events[] =
    "Usage: trainctl events [--kind queue|config] [--since T] [--limit N] [--json]\n"
    "\n"
    "The admin events traind recorded, oldest first: queue create, update and\n"
    "delete, and each reconfigure (trainctl reconfigure, user:NAME; a SIGHUP\n"
    "reload, signal:SIGHUP), applied or refused, with who and what. Operators only.\n"
    "\n"
    "  --kind K    only events of kind queue or config\n"
    "  --since T   only events at or after T (now-1h, 2h, @EPOCH, YYYY-MM-DD[THH:MM])\n"
    "  --limit N   the newest N (default 1000, at most 100000)\n"
    "  --json      one object per line: time_ms, actor, kind, object, action, detail\n";

typedef struct ev_args {
  const char *kind;
  int64_t since_ms;
  uint32_t limit;
  bool json, help;
} ev_args;

enum { EV_KIND = TY__CLI_OPT_FIRST, EV_SINCE, EV_LIMIT, EV_JSON, EV_HELP = 'h' };
static const struct option ev_opts[] = {
    {"kind", required_argument, NULL, EV_KIND},   {"since", required_argument, NULL, EV_SINCE},
    {"limit", required_argument, NULL, EV_LIMIT}, {"json", no_argument, NULL, EV_JSON},
    {"help", no_argument, NULL, EV_HELP},         {NULL, 0, NULL, 0}};

static int parse_limit(const char *v, uint32_t *out, char *err, size_t len) {
  char *end = NULL;
  unsigned long long n = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
  if (!end || *end || n < 1 || n > 100000)
    return ty_errf(err, len, TY_EINVAL, "--limit: \"%s\" is not a number from 1 to 100000", v);
  *out = (uint32_t)n;
  return 0;
}

static int ev_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  ev_args *a = ud;
  (void)it;
  switch (id) {
  case EV_KIND:
    if (strcmp(v, "queue") != 0 && strcmp(v, "config") != 0)
      return ty_errf(err, err_len, TY_EINVAL, "--kind: \"%s\" is not queue or config", v);
    a->kind = v;
    return 0;
  case EV_SINCE:
    return ty_cli_parse_time("--since", v, ty_now_ms(), &a->since_ms, err, err_len);
  case EV_LIMIT:
    return parse_limit(v, &a->limit, err, err_len);
  case EV_JSON:
    a->json = true;
    return 0;
  case EV_HELP:
    a->help = true;
    return 0;
  default:
    return ty_errf(err, err_len, TY_EINVAL, "events: unexpected argument \"%s\"", v);
  }
}

static int render_json(const ty_cli_admin_event *ev, size_t n, ty_buf *out) {
  ty_json w;
  ty_json_init(&w, out);
  w.lines = true;
  ty_json_begin_array(&w);
  for (size_t i = 0; i < n; i++) {
    ty_json_begin_object(&w);
    ty_json_key(&w, "time_ms"), ty_json_int(&w, ev[i].time_ms);
    ty_json_key(&w, "actor"), ty_json_string(&w, ev[i].actor);
    ty_json_key(&w, "kind"), ty_json_string(&w, ev[i].kind);
    ty_json_key(&w, "object"), ty_json_string(&w, ev[i].object);
    ty_json_key(&w, "action"), ty_json_string(&w, ev[i].action);
    ty_json_key(&w, "detail"), ty_json_string(&w, ev[i].detail);
    ty_json_end_object(&w);
  }
  ty_json_end_array(&w);
  return ty_json_finish(&w);
}

static int render(const ty_cli_admin_event *ev, size_t n, bool json, ty_buf *out) {
  if (json) return render_json(ev, n, out);
  if (n == 0)
    return ty_buf_printf(out, "No admin events match.\n"); /* none, or none of --kind/--since */
  static const char *const hdr[] = {"TIME", "BY", "KIND", "OBJECT", "ACTION", "DETAIL"};
  ty_cli_table *t = ty_cli_table_create(hdr, NULL, TY_ARRAY_LEN(hdr));
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    char when[32];
    ty_cli_format_time(ev[i].time_ms, 'T', when, sizeof when);
    const char *row[] = {when, ev[i].actor, ev[i].kind, ev[i].object, ev[i].action, ev[i].detail};
    rc = ty_cli_table_add(t, row);
  }
  if (rc == 0) rc = ty_cli_table_render(t, out);
  ty_cli_table_destroy(t);
  return rc;
}

int ty__cmd_events(ty__ctl *c, int argc, char **argv) {
  ev_args a = {0};
  char err[TY_ERR_LEN] = "";
  if (ty__cli_parse(argc, argv, "h", ev_opts, ev_arg, &a, err, sizeof err) != 0)
    return ty__ctl_usage("events", err);
  if (a.help) return fputs(ty__usage_events, stdout), 0;
  ty_buf req, out;
  ty_buf_init(&req), ty_buf_init(&out);
  ty_rpc_result res = {0};
  ty_cli_admin_event *ev = NULL;
  size_t n = 0;
  int code = ty_cli_encode_admin_events(a.kind, a.since_ms, a.limit, &req) == 0
                 ? ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_LIST_ADMIN_EVENTS, &req, &res)
                 : ty__ctl_bad_answer(TY_M_LIST_ADMIN_EVENTS);
  if (code == 0 && ty_cli_decode_admin_events(res.payload, res.payload_len, &ev, &n) != 0)
    code = ty__ctl_bad_answer(TY_M_LIST_ADMIN_EVENTS);
  if (code == 0 && render(ev, n, a.json || c->g.json, &out) == 0) code = ty__ctl_write(&out);
  ty_cli_admin_events_free(ev, n);
  ty_rpc_result_close(&res);
  ty_buf_close(&out), ty_buf_close(&req);
  return code;
}
