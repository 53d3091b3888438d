/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl web-token: a web console token for the calling user (WebToken;
 * the credential names the user), printed with the console's address, or
 * --revoke to revoke every live token of the caller.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli/cli_internal.h"
#include "cli/cli_history.h"
#include "proto/methods.h"

const char ty__usage_web_token[] =
    "Usage: trainctl web-token [--ttl DURATION] [--json]\n"
    "       trainctl web-token --revoke\n"
    "\n"
    "Prints a token for the web console that acts as you: opening the address\n"
    "printed with it lets the console show and do what trainctl lets you (cancel,\n"
    "hold and release your own jobs; any job for an operator). Keep it like a\n"
    "password: traind keeps only its hash. The token is in the address's #fragment,\n"
    "which the browser never sends to a server; the page keeps it for its tab only.\n"
    "\n"
    "  --ttl DURATION  how long it works: 90s, 15m, 2h, 7d (default 7d, at most 90d)\n"
    "  --revoke        revoke every token of yours that still works\n"
    "  --json          {\"token\", \"url\", \"expires_ms\"} (or {\"revoked\"})\n";

typedef struct wt_args {
  uint32_t ttl_s;
  bool revoke, json, help, has_ttl;
} wt_args;

enum { WT_TTL = TY__CLI_OPT_FIRST, WT_REVOKE, WT_JSON, WT_HELP = 'h' };
static const struct option wt_opts[] = {{"ttl", required_argument, NULL, WT_TTL},
                                        {"revoke", no_argument, NULL, WT_REVOKE},
                                        {"json", no_argument, NULL, WT_JSON},
                                        {"help", no_argument, NULL, WT_HELP},
                                        {NULL, 0, NULL, 0}};

static int wt_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  wt_args *a = ud;
  (void)it;
  if (id == WT_REVOKE) {
    a->revoke = true;
  } else if (id == WT_JSON) {
    a->json = true;
  } else if (id == WT_HELP) {
    a->help = true;
  } else if (id == WT_TTL) {
    a->has_ttl = true;
    if (ty_parse_duration(v, &a->ttl_s) != 0 || a->ttl_s == 0)
      return ty_errf(err, err_len, TY_EINVAL, "--ttl: \"%s\" is not a duration (90s, 15m, 7d)", v);
    if (a->ttl_s > TY_WEB_TOKEN_TTL_MAX_S)
      return ty_errf(err, err_len, TY_EINVAL,
                     "--ttl: %s is longer than a token may live (at most 90d)", v);
  } else {
    return ty_errf(err, err_len, TY_EINVAL,
                   "web-token: unexpected argument \"%s\" (it takes only options: --ttl DURATION, "
                   "--revoke, --json)",
                   v);
  }
  return 0;
}

static void print_token(const ty_cli_web_token *t, bool json) {
  if (json) {
    printf("{\"token\":\"%s\",\"url\":\"%s\",\"expires_ms\":%lld}\n", t->token, t->url,
           (long long)t->expires_ms);
    return;
  }
  char when[64];
  time_t secs = (time_t)(t->expires_ms / 1000);
  struct tm tm;
  strftime(when, sizeof(when), "%Y-%m-%d %H:%M %Z", localtime_r(&secs, &tm));
  if (t->url[0])
    printf("%s\n", t->url);
  else
    printf("%s\n(the web console is off: traind --web-listen HOST:PORT turns it on)\n", t->token);
  fprintf(stderr, "valid until %s; `trainctl web-token --revoke` revokes it\n", when);
}

int ty__cmd_web_token(ty__ctl *c, int argc, char **argv) {
  wt_args a = {0};
  char err[TY_ERR_LEN] = "";
  int rc = ty__cli_parse(argc, argv, "h", wt_opts, wt_arg, &a, err, sizeof err);
  if (rc == 0 && a.revoke && a.has_ttl)
    rc = ty_errf(err, sizeof err, TY_EINVAL, "--ttl: not with --revoke");
  if (rc != 0) return ty__ctl_usage("web-token", err);
  if (a.help) return fputs(ty__usage_web_token, stdout), 0;
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  ty_cli_web_token t = {0};
  int code = ty_cli_encode_web_token(a.ttl_s, a.revoke, &req) == 0 ? 0 : TY_CLI_EXIT_ERROR;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_WEB_TOKEN, &req, &res);
  if (code == 0 && ty_cli_decode_web_token(res.payload, res.payload_len, &t) != 0)
    code = ty__ctl_bad_answer(TY_M_WEB_TOKEN);
  if (code == 0 && a.revoke)
    printf(a.json || c->g.json ? "{\"revoked\":%u}\n" : "revoked %u token(s)\n", t.revoked);
  else if (code == 0)
    print_token(&t, a.json || c->g.json);
  free(t.token), free(t.url);
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
  return code;
}
