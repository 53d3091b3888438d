/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl's side of the controller connection: one blocking ty_rpc_sync
 * per invocation (no libuv: poll() with a deadline), opened on first use and, for the
 * followers (submit -W, watch, top), opened again with a backoff when the controller restarts
 * under them. Everything that can go
 * wrong between "connect" and "decoded answer" is turned into one line naming the controller's
 * address, and into the documented exit code, here and nowhere else.
 */
#include "cli/cli_internal.h"

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto/methods.h"

void ty__ctl_err(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("trainctl: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int ty__ctl_usage(const char *cmd, const char *err) {
  ty__ctl_err("%s", err);
  if (cmd)
    fprintf(stderr, "Try 'trainctl %s --help'.\n", cmd);
  else
    fprintf(stderr, "Try 'trainctl --help'.\n");
  return TY_CLI_EXIT_USAGE;
}

int ty__ctl_write(const ty_buf *b) {
  if (b->len && fwrite(b->data, 1, b->len, stdout) != b->len) {
    ty__ctl_err("cannot write the output: %s", strerror(ferror(stdout) ? errno : EIO));
    return TY_CLI_EXIT_ERROR;
  }
  fflush(stdout);
  return TY_CLI_EXIT_OK;
}

const char *ty__ctl_user(ty__ctl *c) {
  if (c->user) return c->user;
  struct passwd *pw = getpwuid(getuid());
  if (pw && pw->pw_name && *pw->pw_name)
    snprintf(c->user_buf, sizeof c->user_buf, "%s", pw->pw_name);
  else
    snprintf(c->user_buf, sizeof c->user_buf, "%u", (unsigned)getuid());
  return c->user = c->user_buf;
}

int ty__ctl_bad_answer(const char *method) {
  ty__ctl_err("the controller's answer to %s did not decode (is it another Trainyard version?)",
              method);
  return TY_CLI_EXIT_ERROR;
}

static int ensure_client(ty__ctl *c) {
  if (c->client) return 0;
  int rc = ty_cli_open(c->g.host, c->g.port, c->g.timeout_ms, &c->signer, &c->client);
  if (rc == 0) return 0;
  c->client = NULL;
  if (rc == TY_ETIMEDOUT)
    ty__ctl_err("cannot reach the controller at %s: no connection within %u s", c->g.controller,
                c->g.timeout_ms / 1000);
  else if (rc == TY_ENOTFOUND)
    ty__ctl_err("cannot reach the controller at %s: no address for host \"%s\"", c->g.controller,
                c->g.host);
  else
    ty__ctl_err("cannot reach the controller at %s: %s", c->g.controller, ty_strerror(rc));
  return ty_cli_exit_for_transport(rc);
}

static void report_transport(const ty__ctl *c, const char *method, int rc) {
  if (rc == TY_ETIMEDOUT)
    ty__ctl_err("the controller at %s did not answer %s within %u s", c->g.controller, method,
                c->g.timeout_ms / 1000);
  else if (rc == TY_EPROTO || rc == TY_ETOOBIG)
    ty__ctl_err("the answer from %s to %s is not a Trainyard frame (%s); is it a Trainyard "
                "controller?",
                c->g.controller, method, ty_strerror(rc));
  else
    ty__ctl_err("lost the connection to the controller at %s during %s: %s", c->g.controller,
                method, ty_strerror(rc));
}

/* An answer's status -> exit code, with the controller's message on stderr
 * (and, for a refusal of a request that went unsigned, why it was). */
static int answered(const ty__ctl *c, ty_cli_op op, ty_rpc_result *out) {
  int code = ty_cli_exit_for_status(op, out->status);
  if (code == TY_CLI_EXIT_OK) return 0;
  const char *msg = out->message && *out->message ? out->message : ty_strerror(out->status);
  if (code == TY_CLI_EXIT_INVALID)
    ty__ctl_err("invalid job spec: %s", msg);
  else
    ty__ctl_err("%s", msg);
  const char *hint = ty_cli_signer_hint(&c->signer, out->status);
  if (hint) ty__ctl_err("(the request carried no MUNGE credential: %s)", hint);
  ty_rpc_result_close(out);
  return code;
}

int ty__ctl_call(ty__ctl *c, ty_cli_op op, const char *method, const ty_buf *req,
                 ty_rpc_result *out) {
  *out = (ty_rpc_result){0};
  int code = ensure_client(c);
  if (code) return code;
  int rc = ty_rpc_sync_call(c->client, method, req->data, req->len, c->g.timeout_ms, out);
  if (rc != 0) {
    report_transport(c, method, rc);
    ty_rpc_result_close(out);
    return ty_cli_exit_for_transport(rc);
  }
  return answered(c, op, out);
}

/* Whether losing the controller with `rc` is worth reconnecting over: not
 * when what answered is no Trainyard controller. */
static bool reconnectable(int rc) {
  return rc != TY_EPROTO && rc != TY_ETOOBIG && rc != TY_EINVAL && rc != TY_ENOMEM;
}

/* After losing the controller (rc: the transport error, or TY_ECLOSED for
 * one that said it is shutting down): drops the connection, says so on
 * the first attempt of an outage and sleeps the backoff's next wait. False,
 * after saying why, when the window is spent or rc is not worth it. */
static bool wait_to_reconnect(ty__ctl *c, const char *method, int rc, int attempt,
                              uint32_t window_ms, ty_cli_backoff *b) {
  ty_rpc_sync_close(c->client);
  c->client = NULL;
  uint32_t wait = reconnectable(rc) ? ty_cli_backoff_next(b) : 0;
  if (wait == 0) {
    if (!reconnectable(rc))
      report_transport(c, method, rc);
    else
      ty__ctl_err("lost the controller at %s during %s and could not reconnect within %u s: %s",
                  c->g.controller, method, window_ms / 1000, ty_strerror(rc));
    return false;
  }
  if (attempt == 1)
    ty__ctl_err("lost the controller at %s during %s (%s); reconnecting", c->g.controller, method,
                ty_strerror(rc));
  ty_cli_sleep_ms(wait);
  return true;
}

/* Opens the connection if there is none: 0 or the transport error. */
static int reopen(ty__ctl *c) {
  if (c->client) return 0;
  int rc = ty_cli_open(c->g.host, c->g.port, c->g.timeout_ms, &c->signer, &c->client);
  if (rc != 0) c->client = NULL;
  return rc;
}

int ty__ctl_call_reconnecting(ty__ctl *c, ty_cli_op op, const char *method, const ty_buf *req,
                              uint32_t window_ms, ty_rpc_result *out) {
  ty_cli_backoff b;
  ty_cli_backoff_start(&b, window_ms);
  for (int attempt = 1;; attempt++) {
    *out = (ty_rpc_result){0};
    int rc = reopen(c);
    if (rc == 0)
      rc = ty_rpc_sync_call(c->client, method, req->data, req->len, c->g.timeout_ms, out);
    if (rc == 0 && out->status != TY_ECLOSED) return answered(c, op, out);
    if (rc == 0) rc = out->status;
    ty_rpc_result_close(out);
    if (!wait_to_reconnect(c, method, rc, attempt, window_ms, &b))
      return ty_cli_exit_for_transport(rc);
  }
}

/* A stream's items passed on, noting whether any came and whether on_item
 * stopped it (its answer). */
typedef struct relay {
  int (*on_item)(const uint8_t *p, size_t n, void *ud);
  void *ud;
  int stopped;
  bool got;
} relay;

static int relay_item(const uint8_t *p, size_t n, void *ud) {
  relay *r = ud;
  r->got = true;
  return r->stopped = r->on_item(p, n, r->ud);
}

int ty__ctl_stream(ty__ctl *c, ty_cli_op op, const char *method, const ty_buf *req,
                   int (*on_item)(const uint8_t *p, size_t n, void *ud), void *ud,
                   uint32_t window_ms, ty_rpc_result *out) {
  relay r = {on_item, ud, 0, false};
  ty_cli_backoff b;
  ty_cli_backoff_start(&b, window_ms);
  for (int attempt = 1;; attempt++) {
    *out = (ty_rpc_result){0};
    r.got = false;
    /* No gap limit: a stream speaks when something changes, which may be hours. */
    int rc = reopen(c);
    if (rc == 0)
      rc = ty_rpc_sync_stream(c->client, method, req->data, req->len, 0, relay_item, &r, out);
    if (r.stopped) {
      ty_rpc_result_close(out);
      return r.stopped;
    }
    if (rc == 0 && out->status != TY_ECLOSED) return answered(c, op, out);
    if (rc == 0) rc = out->status;
    ty_rpc_result_close(out);
    if (r.got) /* it was back: losing it again is a new outage */
      ty_cli_backoff_start(&b, window_ms), attempt = 1;
    if (!wait_to_reconnect(c, method, rc, attempt, window_ms, &b))
      return ty_cli_exit_for_transport(rc);
  }
}

typedef struct retry_ctx {
  const ty__ctl *c;
  const char *method;
  int attempts, last_rc; /* attempts failed so far; the error last printed */
} retry_ctx;

/* One line when retrying starts and one when the error changes, not one per
 * attempt: a controller down for the whole --timeout would print ~100. */
static void on_retry(int attempt, int rc, uint32_t delay_ms, void *ud) {
  retry_ctx *x = ud;
  (void)delay_ms;
  x->attempts = attempt;
  if (attempt > 1 && rc == x->last_rc) return;
  x->last_rc = rc;
  ty__ctl_err("no answer from the controller at %s to %s (%s, attempt %d); retrying for up to "
              "%u s in all",
              x->c->g.controller, x->method, ty_strerror(rc), attempt, x->c->g.timeout_ms / 1000);
}

int ty__ctl_call_retrying(ty__ctl *c, ty_cli_op op, const char *method, const ty_buf *req,
                          ty_rpc_result *out) {
  *out = (ty_rpc_result){0};
  retry_ctx x = {c, method, 0, 0};
  int rc = ty_cli_call_retrying(&c->client, c->g.host, c->g.port, &c->signer, method, req,
                                c->g.timeout_ms, out, on_retry, &x);
  if (rc != 0) {
    ty__ctl_err("no answer from the controller at %s to %s within %u s (%d attempts): %s",
                c->g.controller, method, c->g.timeout_ms / 1000, x.attempts + 1, ty_strerror(rc));
    ty_rpc_result_close(out);
    return ty_cli_exit_for_transport(rc);
  }
  return answered(c, op, out);
}

int ty__ctl_locate(ty__ctl *c, uint64_t job_id, bool want_tokens, ty_task_locations *out) {
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  int code = ty_cli_encode_locations(job_id, want_tokens, &req) ? TY_CLI_EXIT_ERROR : 0;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_JOB, TY_M_GET_TASK_LOCATIONS, &req, &res);
  if (code == 0 && ty_cli_decode_locations(res.payload, res.payload_len, out) != 0)
    code = ty__ctl_bad_answer(TY_M_GET_TASK_LOCATIONS);
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
  return code;
}

int ty__ctl_job_id(ty__ctl *c, const ty_job_ref *ref, uint64_t *out) {
  *out = ref->id;
  if (!ref->has_task) return 0;
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  ty_cli_jobinfo job = {0};
  ty_cli_event *ev = NULL;
  size_t nev = 0;
  int code = ty__cli_encode_get_job(ref, false, &req) ? TY_CLI_EXIT_ERROR : 0;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_JOB, TY_M_GET_JOB, &req, &res);
  if (code == 0 && ty_cli_decode_get_job(res.payload, res.payload_len, &job, &ev, &nev) != 0)
    code = ty__ctl_bad_answer(TY_M_GET_JOB);
  if (code == 0) *out = job.id;
  ty_cli_events_free(ev, nev);
  ty_cli_jobinfo_close(&job);
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
  return code;
}

typedef struct group_arg {
  const char *sub;
  bool help;
} group_arg;

/* Only the first item counts: --help, or the subcommand (whose own options follow it). */
static int on_group_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  group_arg *a = ud;
  (void)it, (void)err, (void)err_len;
  if (id == 'h')
    a->help = true;
  else
    a->sub = v;
  return TY__CLI_STOP;
}

int ty__ctl_group(const char *group, const char *usage, int argc, char **argv,
                  const char **out_sub) {
  char err[TY_ERR_LEN] = "";
  group_arg a = {0};
  int rc = ty__cli_parse(argc, argv, "h", ty__cli_help_only, on_group_arg, &a, err, sizeof err);
  if (rc != 0) return ty__ctl_usage(group, err);
  if (a.help) return fputs(usage, stdout), TY_CLI_EXIT_OK;
  if (!a.sub) return fputs(usage, stderr), TY_CLI_EXIT_USAGE;
  *out_sub = a.sub;
  return -1;
}
