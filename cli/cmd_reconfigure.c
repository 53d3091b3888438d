/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl reconfigure: traind reads its --config again and applies it
 * (Reconfigure; as Slurm's `scontrol reconfigure` and `systemctl reload
 * traind`, from any host). Prints what changed; a refused file's reason
 * (its line and key) is the error, and the running settings stay.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli_internal.h"
#include "cli/cli_admin.h"
#include "lib/json/json.h"
#include "proto/methods.h"

const char ty__usage_reconfigure[] =
    "Usage: trainctl reconfigure [--json]\n"
    "\n"
    "Has traind read its --config file again and apply it, as `systemctl reload\n"
    "traind` (SIGHUP) does, from any host: the scheduler's weights and switches,\n"
    "the switch groups and the auth. lists change at once. Prints what changed.\n"
    "A file that does not parse, or that changes auth.workers, auth.cluster_key\n"
    "or auth.service_user (restart traind for those), or names an auth.operators\n"
    "user or auth.operator_group that this host does not know, is refused with\n"
    "the key, and the running settings stay. A switch group member that is no\n"
    "known node and matches no auth.nodes entry is printed as a warning (the file\n"
    "applies). Operators only; traind records who asked in its admin events.\n"
    "\n"
    "  --json  {\"config_file\", \"changed\": [\"key: old -> new\", ...]}\n";

typedef struct rc_args {
  bool json, help;
} rc_args;

enum { RC_JSON = TY__CLI_OPT_FIRST, RC_HELP = 'h' };
static const struct option rc_opts[] = {
    {"json", no_argument, NULL, RC_JSON}, {"help", no_argument, NULL, RC_HELP}, {NULL, 0, NULL, 0}};

static int rc_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  rc_args *a = ud;
  (void)it;
  if (id == RC_JSON)
    a->json = true;
  else if (id == RC_HELP)
    a->help = true;
  else
    return ty_errf(err, err_len, TY_EINVAL,
                   "reconfigure: unexpected argument \"%s\" (it takes none: traind reads its "
                   "--config file again)",
                   v);
  return 0;
}

static int render(const ty_cli_reconfigure *r, bool json, ty_buf *out) {
  if (json) {
    ty_json w;
    ty_json_init(&w, out);
    w.lines = true;
    ty_json_begin_object(&w);
    ty_json_key(&w, "config_file"), ty_json_string(&w, r->config_file);
    ty_json_key(&w, "changed"), ty_json_begin_array(&w);
    for (size_t i = 0; i < r->n_changed; i++)
      ty_json_string(&w, r->changed[i]);
    ty_json_end_array(&w);
    ty_json_end_object(&w);
    return ty_json_finish(&w);
  }
  int rc = ty_buf_printf(out, "traind read %s again and applied it:%s\n", r->config_file,
                         r->n_changed ? "" : " nothing changed");
  for (size_t i = 0; rc == 0 && i < r->n_changed; i++)
    rc = ty_buf_printf(out, "  %s\n", r->changed[i]);
  return rc;
}

int ty__cmd_reconfigure(ty__ctl *c, int argc, char **argv) {
  rc_args a = {0};
  char err[TY_ERR_LEN] = "";
  if (ty__cli_parse(argc, argv, "h", rc_opts, rc_arg, &a, err, sizeof err) != 0)
    return ty__ctl_usage("reconfigure", err);
  if (a.help) return fputs(ty__usage_reconfigure, stdout), 0;
  ty_buf req, out;
  ty_buf_init(&req), ty_buf_init(&out);
  ty_rpc_result res = {0};
  ty_cli_reconfigure r = {0};
  int code = ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_RECONFIGURE, &req, &res);
  if (code == 0 && ty_cli_decode_reconfigure(res.payload, res.payload_len, &r) != 0)
    code = ty__ctl_bad_answer(TY_M_RECONFIGURE);
  if (code == 0 && render(&r, a.json || c->g.json, &out) == 0) code = ty__ctl_write(&out);
  ty_cli_reconfigure_free(&r);
  ty_rpc_result_close(&res);
  ty_buf_close(&out), ty_buf_close(&req);
  return code;
}
