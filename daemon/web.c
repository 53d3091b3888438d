/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web console (`traind --web-listen HOST:PORT`, off by
 * default): static pages built into the binary (web/, embedded at build
 * time by web/embed.py, Chart.js from Debian's libjs-chart.js among them)
 * and JSON documents (web_json.c), served by lib/metrics' HTTP server with
 * its limits and deadlines (listener "web" in the connection metrics).
 *
 * Routes (GET and HEAD; POST for actions):
 *   /                          the console (index.html; pages by #fragment)
 *   /static/NAME               its scripts, styles and Chart.js
 *                              (these two to anyone: they hold no data)
 *   /api/cluster               nodes, queues with counts and fair share, jobs by state, you
 *   /api/jobs?state=S,S&queue=Q&user=U&limit=N   newest first (limit 1..10000, 500;
 *                              each state once; U a name or uid this host knows)
 *   /api/jobs/ID               one job: ranks, events, progress, has_plan
 *   /api/jobs/ID/progress?after=STEP&attempt=A   its curve after that point (all
 *                              without; attempt 0 unless given)
 *   /api/jobs/ID/plan          its plan, as `trainctl plan --json` prints it
 *   /api/history?state=S&queue=Q&user=U&limit=N&before=END_MS:ID   ended jobs
 *                              from the store, a page at a time (GetHistory's query)
 *   /api/events?job=ID&after=STEP&attempt=A   live updates, text/event-stream
 *                              (web_events.c)
 *   POST /api/jobs/ID/cancel|hold|release   as trainctl cancel / job hold|release
 *                              (web_action.c; needs X-Requested-With); an array's
 *                              element as ARRAY_TASK, itself alone
 *   POST /api/arrays/ID/cancel|hold|release   the same on every element of array ID
 * Errors are JSON {"error": "..."} naming the bad part of the request;
 * a method a path does not take (GET or HEAD on an action, POST elsewhere,
 * any other method anywhere) is 405 with Allow naming those it takes.
 * Every answer forbids framing and anything but the console's own scripts
 * and styles (WEB_HEADERS).
 *
 * Who is asking: a per-user token from `trainctl web-token` (web_token.c)
 * acts as its user, with that user's rights; the console's shared token
 * (hex of the first 16 bytes of STATE_DIR/web.key, also in
 * STATE_DIR/web.token, both 0600: only whoever runs traind reads them) acts
 * as traind's own user, an operator; under --auth none a loopback client
 * without a token is traind's user too, as trainctl there is, when its Host
 * header names a loopback address (localhost, 127.x.x.x, [::1]): a page of
 * another site whose name was rebound to 127.0.0.1 (DNS rebinding) names
 * its own and needs a token.
 * --web-token-required asks loopback clients for a token under --auth none
 * too. A token comes only as "Authorization: Bearer TOKEN": the page
 * (web/app.js) takes it from the address's fragment (/#token=TOKEN, which
 * the browser never sends) into the tab's sessionStorage. Never a cookie:
 * cookies are not kept apart by port, so one would reach every other
 * service on the host. /?token=TOKEN, the older address, is a redirect to
 * /#token=TOKEN, and the console's pages clear the trainyard_token cookie
 * that it once set. A token that is presented must be good (401 naming
 * what is wrong with it), even where none is needed.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "daemon/web_internal.h"
#include "lib/json/json.h"
#include "lib/token/token.h"

#define JSON_TYPE "application/json; charset=utf-8"
#define WEB_LIMIT_DEFAULT 500
#define WEB_LIMIT_MAX 10000
/* On every answer: no page of another site may frame the console
 * (clickjacking its buttons), and the pages load only their own scripts
 * and styles (no inline ones, no other origin). */
#define WEB_HEADERS                                                                                \
  "X-Frame-Options: DENY\r\n"                                                                      \
  "Content-Security-Policy: frame-ancestors 'none'; default-src 'self'\r\n"

/* Deletes the cookie that /?token= once set (the token, sent by the
 * browser to every port of this host): the token is no cookie now. */
#define CLEAR_COOKIE "Set-Cookie: trainyard_token=; Path=/; Max-Age=0\r\n"

/* ---- answers --------------------------------------------------------------------------- */

/* Both answer helpers return 0, so a route can `return fail(...)`. */
static int fail(ty_http_response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ty_http_response *resp, int status, const char *fmt, ...) {
  char msg[TY_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  resp->body->len = 0;
  resp->status = status;
  resp->content_type = JSON_TYPE;
  ty_buf_printf(resp->body, "{\"error\":");
  ty_json_escape(resp->body, msg, strlen(msg));
  ty_buf_printf(resp->body, "}\n");
  return 0;
}

/* Appends a header line to the answer's. */
static void add_header(ty_http_response *resp, const char *line) {
  size_t used = strlen(resp->headers);
  snprintf(resp->headers + used, sizeof(resp->headers) - used, "%s", line);
}

static int json_done(ty_http_response *resp, int rc) {
  if (rc == TY_ENOTFOUND) return fail(resp, 404, "not found");
  if (rc != 0) return fail(resp, 500, "cannot build the answer: %s", ty_strerror(rc));
  resp->status = 200;
  resp->content_type = JSON_TYPE;
  snprintf(resp->headers, sizeof(resp->headers), "Cache-Control: no-store\r\n");
  return 0;
}

/* ---- queries ----------------------------------------------------------------------------- */

/* Decodes %XX and '+' of one query value into out (NUL-terminated);
 * TY_EINVAL for a bad escape or a value too long. */
static int url_decode(const char *s, size_t len, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '%') {
      if (len - i < 3 || !isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]))
        return TY_EINVAL;
      char hex[3] = {s[i + 1], s[i + 2], 0};
      c = (char)strtol(hex, NULL, 16), i += 2;
      if (c == 0) return TY_EINVAL;
    } else if (c == '+') {
      c = ' ';
    }
    if (o + 1 >= cap) return TY_EINVAL;
    out[o++] = c;
  }
  out[o] = '\0';
  return 0;
}

typedef struct query {
  char state[256], queue[128], user[128], limit[16], after[24], attempt[16], before[48], job[24],
      token[TY_HTTP_TOKEN_MAX];
} query;

/* Splits "a=1&b=2" into the known keys; an unknown key or a bad value is a
 * 400 naming it. */
static int parse_query(const char *q, query *out, char *err, size_t len) {
  memset(out, 0, sizeof(*out));
  struct {
    const char *name;
    char *dst;
    size_t cap;
  } keys[] = {
      {"state", out->state, sizeof(out->state)},    {"queue", out->queue, sizeof(out->queue)},
      {"user", out->user, sizeof(out->user)},       {"limit", out->limit, sizeof(out->limit)},
      {"after", out->after, sizeof(out->after)},    {"attempt", out->attempt, sizeof(out->attempt)},
      {"before", out->before, sizeof(out->before)}, {"job", out->job, sizeof(out->job)},
      {"token", out->token, sizeof(out->token)}};
  while (q && *q) {
    const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
    const char *eq = memchr(q, '=', (size_t)(end - q));
    size_t klen = eq ? (size_t)(eq - q) : (size_t)(end - q);
    size_t k = 0;
    while (k < TY_ARRAY_LEN(keys) &&
           !(strlen(keys[k].name) == klen && !memcmp(keys[k].name, q, klen)))
      k++;
    if (k == TY_ARRAY_LEN(keys))
      return ty_errf(err, len, TY_EINVAL, "unknown query parameter \"%.*s\"",
                     (int)(klen > 64 ? 64 : klen), q);
    const char *v = eq ? eq + 1 : end;
    if (url_decode(v, (size_t)(end - v), keys[k].dst, keys[k].cap) != 0)
      return ty_errf(err, len, TY_EINVAL, "%s: bad %%-escape or longer than %zu bytes",
                     keys[k].name, keys[k].cap - 1);
    q = amp ? amp + 1 : end;
  }
  return 0;
}

/* Each state of "RUNNING,PENDING,RUNNING" once, in states[] (at most
 * TY_JOB_STATE_MAX of them however often each is named). */
static int parse_states(const char *list, ty_list_filter *f, int *states, char *err, size_t len) {
  char buf[sizeof(((query *)0)->state)];
  snprintf(buf, sizeof(buf), "%s", list);
  uint32_t seen = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int st;
    if (ty_job_state_parse(tok, &st) != 0)
      return ty_errf(err, len, TY_EINVAL,
                     "state: \"%.32s\" is not a job state (PENDING, RUNNING, "
                     "COMPLETED, ...)",
                     tok);
    if (seen & (1u << st)) continue;
    seen |= 1u << st;
    states[f->n_states++] = st;
  }
  return 0;
}

/* Whether some job in memory is user's: a user of the cluster's, known
 * without asking NSS. */
static bool owns_a_job(ty_controller *ctl, const char *user) {
  for (size_t i = 0; i < ctl->n_jobs; i++)
    if (!strcmp(ctl->jobs[i]->spec.user, user)) return true;
  for (const ty_job *j = ctl->lru_head; j; j = j->lru_next)
    if (!strcmp(j->spec.user, user)) return true;
  return false;
}

/* user=NAME or user=UID as trainctl's -u takes it, into the name the
 * jobs carry (out, at most cap): 0, or TY_EINVAL naming a user this host
 * does not know (trainctl refuses it the same way). A user who owns a job
 * here is known without an NSS lookup. */
static int resolve_user(ty_controller *ctl, const char *user, char *out, size_t cap, char *err,
                        size_t len) {
  snprintf(out, cap, "%s", user);
  if (!user[0] || owns_a_job(ctl, user)) return 0;
  bool numeric = strlen(user) <= 10 && user[strspn(user, "0123456789")] == '\0';
  char buf[16384];
  struct passwd pw, *res = NULL;
  if (numeric) {
    unsigned long uid = strtoul(user, NULL, 10);
    if (uid <= UINT32_MAX && getpwuid_r((uid_t)uid, &pw, buf, sizeof buf, &res) == 0 && res &&
        strlen(res->pw_name) < cap)
      return snprintf(out, cap, "%s", res->pw_name), 0;
    return ty_errf(err, len, TY_EINVAL, "user: no user has uid %s here", user);
  }
  if (getpwnam_r(user, &pw, buf, sizeof buf, &res) == 0 && res) return 0;
  return ty_errf(err, len, TY_EINVAL, "user: \"%.64s\" is not a user here", user);
}

/* state=RUNNING,PENDING, queue, user (resolved into user_buf), limit ->
 * ListJobs' filter. */
static int jobs_filter(ty_controller *ctl, const query *q, ty_list_filter *f, int *states,
                       char *user_buf, char *err, size_t len) {
  *f = (ty_list_filter){
      .states = states, .user = user_buf, .queue = (char *)q->queue, .limit = WEB_LIMIT_DEFAULT};
  int rc = parse_states(q->state, f, states, err, len);
  if (rc == 0) rc = resolve_user(ctl, q->user, user_buf, sizeof(q->user), err, len);
  if (rc != 0) return rc;
  if (q->limit[0]) {
    char *end;
    unsigned long v = strtoul(q->limit, &end, 10);
    if (*end || q->limit[0] == '-' || v < 1 || v > WEB_LIMIT_MAX)
      return ty_errf(err, len, TY_EINVAL, "limit: \"%s\" is not a number from 1 to %d", q->limit,
                     WEB_LIMIT_MAX);
    f->limit = (uint32_t)v;
  }
  return 0;
}

/* ---- routes -------------------------------------------------------------------------------- */

/* Who a request acts as: its identity and whether it is an operator. */
typedef struct caller {
  ty_auth_id who;
  bool operator;
} caller;

/* The job's private parts (its plan, exit codes, the details of its
 * reasons) go to its owner and operators, as GetJob's do: the same check
 * on a reply-shaped view of the caller. */
static bool sees_job(const caller *c, const ty_job *j) {
  ty_reply view = {.who = c->who, .operator= c->operator};
  return ty__auth_sees_job(&view, j);
}

/* The job id that starts a path's rest ("42" of "42/plan"), *end past it:
 * 0, or -1 with 400 answered naming the text when it is not a job id (no
 * digits, a sign, or past 2^64-1, which strtoull would clamp to the
 * largest id and so name another job). */
static int path_job_id(const char *rest, unsigned long long *id, char **end,
                       ty_http_response *resp) {
  errno = 0;
  *id = isdigit((unsigned char)rest[0]) ? strtoull(rest, end, 10) : 0;
  if (isdigit((unsigned char)rest[0]) && errno == 0) return 0;
  size_t n = strcspn(rest, "/");
  fail(resp, 400, "job id: \"%.*s\" is not a job id (a number from 1 to %llu)",
       (int)(n > 32 ? 32 : n), rest, (unsigned long long)UINT64_MAX);
  return -1;
}

static int route_job(ty_controller *ctl, const caller *who, const char *rest, const query *q,
                     ty_http_response *resp) {
  char *end;
  unsigned long long id = 0;
  if (path_job_id(rest, &id, &end, resp) != 0) return 0;
  ty_job *j = ty__job_get(ctl, id); /* a finished job is read back from the store */
  if (!j || !j->committed) return fail(resp, 404, "job %llu not found", id);
  if (*end == '\0') return json_done(resp, ty__web_job_json(ctl, j, sees_job(who, j), resp->body));
  if (strcmp(end, "/plan") == 0) {
    if (!sees_job(who, j))
      return fail(resp, 403, "job %llu's plan: permission denied: it belongs to %s", id,
                  j->spec.user);
    if (j->spec.kind != TY_JOB_KIND_GRAPH)
      return fail(resp, 404, "job %llu has no plan: it is a command job", id);
    if (!j->plan_len)
      return fail(resp, 404,
                  "job %llu has no plan: its parallelism is data, which runs without one", id);
    return json_done(resp, ty__web_plan_json(j, resp->body));
  }
  if (strcmp(end, "/progress") != 0)
    return fail(resp, 404, "no such page: /api/jobs/%llu%.64s", id, end);
  uint64_t after = UINT64_MAX, attempt = 0;
  char *e;
  if (q->after[0] && ((after = strtoull(q->after, &e, 10)), *e || q->after[0] == '-'))
    return fail(resp, 400, "after: \"%s\" is not a step", q->after);
  if (q->attempt[0] && ((attempt = strtoull(q->attempt, &e, 10)),
                        *e || q->attempt[0] == '-' || attempt > UINT32_MAX || !q->after[0]))
    return fail(resp, 400, "attempt: \"%s\" is not an attempt number (with after=STEP)",
                q->attempt);
  return json_done(resp, ty__web_curve_json(ctl, j, (uint32_t)attempt, after, resp->body));
}

/* state, queue, user, limit (1..10000) and the
 * cursor before=END_MS:ID -> GetHistory's request for ended jobs. */
static int history_query(ty_controller *ctl, const query *q, ty__history_req *h, char *err,
                         size_t len) {
  ty_list_filter f;
  int states[TY_JOB_STATE_MAX];
  char user[sizeof(q->user)];
  int rc = jobs_filter(ctl, q, &f, states, user, err, len);
  for (size_t i = 0; rc == 0 && i < f.n_states; i++)
    if (!ty_job_state_terminal(states[i]))
      rc = ty_errf(err, len, TY_EINVAL,
                   "state: %s is not in the history (COMPLETED, FAILED, CANCELLED, TIMEOUT, "
                   "OUT_OF_MEMORY, "
                   "PREEMPTED, NODE_FAIL)",
                   ty_job_state_name(states[i]));
  char *e = NULL;
  long long end = 0;
  unsigned long long id = 0;
  if (rc == 0 && q->before[0] &&
      ((end = strtoll(q->before, &e, 10)),
       *e != ':' || end <= 0 || ((id = strtoull(e + 1, &e, 10)), *e || id == 0)))
    rc = ty_errf(err, len, TY_EINVAL, "before: \"%s\" is not a cursor (END_MS:ID, from \"next\")",
                 q->before);
  if (rc != 0) return rc;
  *h = (ty__history_req){.limit = q->limit[0] ? f.limit : 50,
                         .n_states = f.n_states,
                         .ended_only = true,
                         .before_end_ms = end,
                         .before_id = id};
  h->user = strdup(user), h->queue = strdup(q->queue);
  h->states = calloc(f.n_states + 1, sizeof(int));
  if (h->states) memcpy(h->states, states, f.n_states * sizeof(int));
  if (h->user && h->queue && h->states) return 0;
  ty__history_req_close(h);
  return ty_errf(err, len, TY_ENOMEM, "no memory for the query");
}

static int route_history(ty_controller *ctl, const caller *who, const query *q,
                         ty_http_response *resp) {
  char err[TY_ERR_LEN];
  ty__history_req h;
  int rc = history_query(ctl, q, &h, err, sizeof(err));
  if (rc == TY_ENOMEM) return fail(resp, 500, "%s", err);
  if (rc != 0) return fail(resp, 400, "%s", err);
  if (ty__web_history(ctl, &who->who, &h, resp) != 0)
    return fail(resp, 500, "no memory for the query");
  return 0;
}

/* Parses a decimal field of the query: 0, or 400 answered naming it. */
static int number(const char *name, const char *v, uint64_t max, uint64_t *out,
                  ty_http_response *resp) {
  char *e;
  *out = strtoull(v, &e, 10);
  if (*e || v[0] == '-' || v[0] == '+' || !v[0] || *out > max)
    return fail(resp, 400, "%s: \"%.32s\" is not a number up to %llu", name, v,
                (unsigned long long)max),
           -1;
  return 0;
}

/* GET /api/events?job=ID&after=STEP&attempt=A: the live updates
 * (web_events.c); HEAD gets the headers only. */
static int route_events(ty_controller *ctl, const ty_http_request *req, const query *q,
                        ty_http_response *resp) {
  uint64_t job = 0, step = 0, attempt = 0;
  if (q->job[0] && number("job", q->job, UINT64_MAX, &job, resp) != 0) return 0;
  if (q->after[0] && number("after", q->after, UINT64_MAX, &step, resp) != 0) return 0;
  if (q->attempt[0] && number("attempt", q->attempt, UINT32_MAX, &attempt, resp) != 0) return 0;
  if (q->job[0]) {
    ty_job *j = ty__job_get(ctl, job);
    if (!j || !j->committed) return fail(resp, 404, "job %llu not found", (unsigned long long)job);
  }
  if (req->method == TY_HTTP_HEAD) {
    resp->status = 200;
    resp->content_type = "text/event-stream; charset=utf-8";
    return 0;
  }
  if (ty__web_events_open(ctl, job, q->after[0] != 0, (uint32_t)attempt, step, resp) != 0)
    return fail(resp, 503, "no memory for another event stream; the page polls instead");
  return 0;
}

static int route_api(ty_controller *ctl, const ty_http_request *req, const caller *who,
                     const char *path, const query *q, ty_http_response *resp) {
  char err[TY_ERR_LEN];
  if (strcmp(path, "/api/cluster") == 0)
    return json_done(resp, ty__web_cluster_json(ctl, &who->who, who->operator, resp->body));
  if (strcmp(path, "/api/jobs") == 0) {
    ty_list_filter f;
    int states[TY_JOB_STATE_MAX];
    char user[sizeof(q->user)];
    if (jobs_filter(ctl, q, &f, states, user, err, sizeof(err)) != 0)
      return fail(resp, 400, "%s", err);
    ty_reply view = {.who = who->who, .operator= who->operator};
    return json_done(resp, ty__web_jobs_json(ctl, &f, &view, resp->body));
  }
  if (strncmp(path, "/api/jobs/", 10) == 0) return route_job(ctl, who, path + 10, q, resp);
  if (strcmp(path, "/api/history") == 0) return route_history(ctl, who, q, resp);
  if (strcmp(path, "/api/events") == 0) return route_events(ctl, req, q, resp);
  return fail(resp, 404, "no such page: %.128s", path);
}

/* What POST /api/jobs/ID/... (array false) or /api/arrays/ID/... acts on:
 * a job; an element of an array as trainctl names it (ARRAY_TASK), so its
 * page's action is not the whole array's, whose id the first element
 * shares; or an array, every element. 0, or -1 with 404 answered. */
static int action_target(ty_controller *ctl, unsigned long long id, bool array, ty_job_ref *ref,
                         ty_http_response *resp) {
  ty_job *j = ty__job_get(ctl, id);
  *ref = (ty_job_ref){.id = id};
  if (!array) {
    if (j && j->committed && j->array_id) *ref = (ty_job_ref){j->array_id, true, j->array_task};
    return 0; /* an unknown job: the handler says so, as to trainctl */
  }
  if (j && j->committed && j->array_id == id) return 0;
  fail(resp, 404, "array %llu not found%s", id,
       j && j->committed ? ": that job is not an array's id (/api/jobs/ID/ACTION acts on it)" : "");
  return -1;
}

#define POST_PATHS                                                                                 \
  "only /api/jobs/ID/ACTION and /api/arrays/ID/ACTION; ACTION cancel, hold, release"
#define ALLOW_GET "Allow: GET, HEAD\r\n"
#define ALLOW_POST "Allow: POST\r\n"

/* /api/jobs/ID/ACTION or /api/arrays/ID/ACTION (ID any one segment, so a
 * bad one is named by the POST), the paths that take POST and only POST. */
static bool action_path(const char *path) {
  const char *rest = strncmp(path, "/api/jobs/", 10) == 0     ? path + 10
                     : strncmp(path, "/api/arrays/", 12) == 0 ? path + 12
                                                              : NULL;
  const char *slash = rest ? strchr(rest, '/') : NULL;
  if (!slash || slash == rest) return false;
  return !strcmp(slash, "/cancel") || !strcmp(slash, "/hold") || !strcmp(slash, "/release");
}

/* 405 with the methods path takes in Allow: GET or HEAD on an action, and
 * any method but GET, HEAD and POST anywhere. POST elsewhere is
 * route_post's. Whether a request was refused (answered). */
static bool method_refused(const ty_http_request *req, const char *path, ty_http_response *resp) {
  bool action = action_path(path);
  if (req->method == TY_HTTP_POST || (req->method != TY_HTTP_OTHER && !action)) return false;
  if (req->method == TY_HTTP_OTHER)
    fail(resp, 405, "%s: %.128s takes %s only", req->method_name, path,
         action ? "POST (with X-Requested-With)" : "GET and HEAD");
  else
    fail(resp, 405, "%s: %.128s is an action: it takes POST only (with X-Requested-With)",
         req->method_name, path);
  add_header(resp, action ? ALLOW_POST : ALLOW_GET);
  return true;
}

/* 405 for POST on a path that takes GET and HEAD. */
static int refuse_post(const char *path, ty_http_response *resp) {
  fail(resp, 405, "%.128s does not take POST (" POST_PATHS ")", path);
  add_header(resp, ALLOW_GET);
  return 0;
}

/* POST /api/jobs/ID/ACTION and /api/arrays/ID/ACTION. Only the console's
 * own script may: it sends X-Requested-With, which a form or another
 * site's page cannot without a CORS preflight (an OPTIONS request, refused
 * here). */
static int route_post(ty_controller *ctl, const caller *who, const ty_http_request *req,
                      const char *path, ty_http_response *resp) {
  if (!req->requested_with)
    return fail(resp, 403,
                "POST needs the X-Requested-With header (the console's pages send it; a "
                "script may send any value)");
  bool array = strncmp(path, "/api/arrays/", 12) == 0;
  if (!array && strncmp(path, "/api/jobs/", 10) != 0) return refuse_post(path, resp);
  const char *rest = path + (array ? 12 : 10);
  char *end;
  unsigned long long id = 0;
  if (path_job_id(rest, &id, &end, resp) != 0) return 0;
  if (*end != '/') return refuse_post(path, resp);
  ty_job_ref ref;
  if (action_target(ctl, id, array, &ref, resp) != 0) return 0;
  int rc = ty__web_action(ctl, &who->who, id, &ref, end + 1, resp);
  if (rc == TY_ENOTFOUND)
    return fail(resp, 404, "action: \"%.32s\" is not one of cancel, hold, release", end + 1);
  if (rc != 0) return fail(resp, 500, "cannot run the action: %s", ty_strerror(rc));
  return 0;
}

static bool static_page(const char *path, bool *index, ty_http_response *resp) {
  const char *name = strcmp(path, "/") == 0              ? "index.html"
                     : strncmp(path, "/static/", 8) == 0 ? path + 8
                                                         : NULL;
  if (!name) return false;
  *index = strcmp(name, "index.html") == 0;
  for (size_t i = 0; i < ty__web_n_assets; i++) {
    const ty__web_asset *a = &ty__web_assets[i];
    if (strcmp(a->name, name) != 0) continue;
    ty_buf_append(resp->body, a->data, a->len);
    resp->status = 200;
    resp->content_type = a->type;
    /* The pages change with the binary: revalidate rather than keep a stale one. */
    snprintf(resp->headers, sizeof(resp->headers),
             "Cache-Control: no-cache\r\n"
             "X-Content-Type-Options: nosniff\r\n");
    return true;
  }
  fail(resp, 404, "no such file: %.128s", path);
  return true;
}

/* ---- who may look ------------------------------------------------------------------------ */

static bool token_ok(const ty_controller *ctl, const char *token) {
  const char *want = ctl->web_token;
  size_t n = strlen(want);
  if (strlen(token) != n) return false;
  unsigned diff = 0;
  for (size_t i = 0; i < n; i++)
    diff |= (unsigned char)(token[i] ^ want[i]);
  return diff == 0;
}

/* Whether token has the shape of a shared operator token (32 hex digits,
 * as in web.token), whichever controller's it is. */
static bool operator_shaped(const char *token) {
  size_t n = strlen(token);
  return n == 32 && strspn(token, "0123456789abcdef") == n;
}

/* Who the request acts as (see the top of the file): 0, or 401 answered. */
static int identify(ty_controller *ctl, const char *token, const char *token_bad, bool loopback,
                    caller *out, ty_http_response *resp) {
  char err[TY_ERR_LEN];
  /* A token that came unreadable is refused, not taken for none. */
  if (token_bad) return fail(resp, 401, "token: malformed (%s)", token_bad), -1;
  /* Loopback is traind's user only where trainctl needs no credential either. */
  if (ctl->cfg.client_auth != TY_AUTH_NONE || ctl->cfg.web_token_required) loopback = false;
  if (token[0] && !token_ok(ctl, token)) {
    if (operator_shaped(token))
      return fail(resp, 401,
                  "token: unknown to this controller (an operator token, as web.token holds, but "
                  "another controller's or one from before web.key was replaced)"),
             -1;
    if (ty__web_token_identify(ctl, token, &out->who, err, sizeof(err)) != 0)
      return fail(resp, 401, "%s", err), -1;
    out->operator= ty_policy_is_operator(&ctl->policy, &out->who, ctl->self.uid);
    return 0;
  }
  if (!token[0] && !loopback)
    return fail(resp, 401,
                "the console needs a token: run `trainctl web-token` and open the address "
                "it prints (operators: /#token= with web.token from traind's state "
                "directory)"),
           -1;
  out->who = ctl->self;
  out->operator= true;
  return 0;
}

/* GET /?token=TOKEN (a good token), the older address: to /#token=TOKEN,
 * where the page takes the token and the server never sees it again. */
static void token_redirect(const char *token, ty_http_response *resp) {
  resp->status = 303;
  resp->content_type = "text/plain; charset=utf-8";
  ty_buf_printf(resp->body, "the console is at /#token=...\n");
  snprintf(resp->headers, sizeof(resp->headers),
           "Location: /#token=%s\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n",
           token);
  add_header(resp, CLEAR_COOKIE);
}

static void handle(void *ud, const ty_http_request *req, bool loopback, ty_http_response *resp) {
  ty_controller *ctl = ud;
  char path[TY_HTTP_TARGET_MAX], err[TY_ERR_LEN];
  snprintf(path, sizeof(path), "%s", req->target);
  char *qs = strchr(path, '?');
  if (qs) *qs++ = '\0';
  query q;
  if (parse_query(qs, &q, err, sizeof(err)) != 0) {
    fail(resp, 400, "%s", err);
    return;
  }
  if (q.token[0] && strcmp(path, "/") != 0) {
    fail(resp, 400, "token: only / takes it in the address (send \"Authorization: Bearer\")");
    return;
  }
  if (method_refused(req, path, resp)) return;
  caller who = {0};
  /* A loopback peer is trusted only when it names this machine as one: a
   * page from another site rebound to 127.0.0.1 sends that site's Host. */
  bool trusted = loopback && req->host_loopback;
  /* The pages hold no data, so anyone may load them: the page brings its
   * token from the address's fragment to /api/. A token sent with a page
   * must still be good. */
  bool page = req->method != TY_HTTP_POST && strncmp(path, "/api/", 5) != 0;
  bool presented = q.token[0] || req->token[0] || req->token_bad;
  if ((!page || presented) &&
      identify(ctl, q.token[0] ? q.token : req->token, req->token_bad, trusted, &who, resp) != 0)
    return;
  bool index = false;
  if (req->method == TY_HTTP_POST)
    route_post(ctl, &who, req, path, resp);
  else if (q.token[0])
    token_redirect(q.token, resp);
  else if (strncmp(path, "/api/", 5) == 0)
    route_api(ctl, req, &who, path, &q, resp);
  else if (!static_page(path, &index, resp))
    fail(resp, 404, "no such page: %.128s", path);
  if (index) add_header(resp, CLEAR_COOKIE);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

/* STATE_DIR/web.token: the token as text, for the operator to hand on
 * (`cat`); written on every start, mode 0600 like web.key it comes from. */
static int write_token_file(const ty_controller *ctl, char *err, size_t len) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/web.token", ctl->cfg.state_dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return ty_errf(err, len, -errno, "%s: %s", path, strerror(errno));
  char line[40];
  int n = snprintf(line, sizeof(line), "%s\n", ctl->web_token);
  bool ok = fchmod(fd, 0600) == 0 && write(fd, line, (size_t)n) == n;
  int saved = errno;
  close(fd);
  return ok ? 0 : ty_errf(err, len, -saved, "%s: %s", path, strerror(saved));
}

int ty__web_start(ty_controller *ctl, char *err, size_t len) {
  if (!ctl->cfg.web_host) return 0;
  char path[4096];
  uint8_t key[TY_TOKEN_SECRET_LEN];
  snprintf(path, sizeof(path), "%s/web.key", ctl->cfg.state_dir);
  int rc = ty_token_secret_load(path, key, err, len);
  if (rc != 0) return rc;
  for (size_t i = 0; i < 16; i++)
    snprintf(ctl->web_token + 2 * i, 3, "%02x", key[i]);
  memset(key, 0, sizeof(key));
  if ((rc = write_token_file(ctl, err, len)) != 0) return rc;
  rc = ty_http_serve(ctl->loop, ctl->cfg.web_host, ctl->cfg.web_port, ctl->metrics, "web", handle,
                     ctl, &ctl->web);
  if (rc != 0)
    return ty_errf(err, len, rc, "cannot serve the web console on %s:%d: %s", ctl->cfg.web_host,
                   ctl->cfg.web_port, ty_strerror(rc));
  rc = ty_http_server_set_headers(ctl->web, WEB_HEADERS);
  return rc ? ty_errf(err, len, rc, "web console: its header lines are over %d bytes",
                      TY_HTTP_SERVER_HEADERS_MAX)
            : 0;
}
