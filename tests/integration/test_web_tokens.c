/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who may look at the web console and what they may do (issue 16):
 *   - with --web-token-required, or under MUNGE, nothing without the token,
 *     the token as a bearer, never a cookie;
 *   - per-user tokens from `trainctl web-token` under MUNGE: a user's
 *     console may cancel and hold only that user's jobs, as trainctl; an
 *     expired, revoked or malformed token is refused, naming why;
 *   - the event streams a user's console follows, and a job page that
 *     goes live on them;
 *   - another user's job: its exit codes, a graph job's paths and plan
 *     withheld in trainctl, GetJob and the console alike.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "proto/methods.h"
#include "tests/integration/harness.h"
#include "tests/integration/ranks.h"
#include "tests/integration/web_client.h"
#include "tests/support/subset.h"

/* Under MUNGE (the harness' default) loopback is nobody in particular: the
 * token is needed, as a bearer. */
Test(web, token_needed_under_munge, .timeout = 60) {
  it_cluster c;
  it_options o = {.traind_args = (const char *[]){"--web-listen", "127.0.0.1:0", NULL}};
  it_cluster_start_with(&c, 0, 1, &o);
  int port = web_port(&c);
  char token[64] = "", path[200], hdr[200];
  web_read_token(&c, token, sizeof(token));
  char *r = web_expect_raw(port, "/api/cluster", NULL, 401);
  cr_assert(strstr(r, "web.token"), "the refusal should say where the token is: %s", r);
  free(r);
  /* Another controller's operator token: the operator format, unknown here. */
  r = web_expect_raw(port, "/", "Authorization: Bearer 0123456789abcdef0123456789abcdef", 401);
  cr_assert(strstr(r, "token: unknown to this controller (an operator token") &&
                !strstr(r, "not a console token"),
            "%s", r);
  free(r);
  r = web_expect_raw(port, "/api/cluster", "Authorization: Bearer bad token", 401);
  cr_assert(strstr(r, "token: malformed"), "a bad token is not a missing one: %s", r);
  free(r);
  snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token);
  web_expect_only(port, "/api/cluster", hdr, 200);
  /* The token is never a cookie (a cookie goes to every port of the host):
   * the older address /?token= sends the browser on to /#token=, where the
   * page keeps it, and clears the cookie it once set; a cookie admits
   * nobody. */
  char want[200], leaked[200];
  snprintf(leaked, sizeof(leaked), "trainyard_token=%s", token);
  snprintf(path, sizeof(path), "/?token=%s", token);
  r = web_expect_raw(port, path, NULL, 303);
  snprintf(want, sizeof(want), "Location: /#token=%s\r\n", token);
  cr_assert(strstr(r, want) && strstr(r, "Set-Cookie: trainyard_token=; Path=/; Max-Age=0\r\n") &&
                !strstr(r, leaked),
            "%s", r);
  free(r);
  r = web_expect_raw(port, "/", hdr, 200);
  cr_assert(strstr(r, "Max-Age=0") && !strstr(r, leaked), "%s", r);
  free(r);
  web_expect_only(port, "/?token=wrong", NULL, 401);
  snprintf(hdr, sizeof(hdr), "Cookie: other=1; trainyard_token=%s", token);
  web_expect_only(port, "/api/jobs", hdr, 401);
  it_cluster_stop(&c);
}

/* --auth none with --web-token-required: loopback needs the token too. */
Test(web, token_required_when_asked, .timeout = 60) {
  it_cluster c;
  it_options o = {
      .auth_none = true,
      .traind_args = (const char *[]){"--web-listen", "127.0.0.1:0", "--web-token-required", NULL}};
  it_cluster_start_with(&c, 0, 1, &o);
  int port = web_port(&c);
  char token[64] = "", hdr[200];
  web_read_token(&c, token, sizeof(token));
  web_expect_only(port, "/api/cluster", NULL, 401);
  snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token);
  web_expect_only(port, "/api/cluster", hdr, 200);
  it_cluster_stop(&c);
}

/* DNS rebinding: a page of another site whose name was rebound to
 * 127.0.0.1 reaches the console from loopback, sending its own Host. Under
 * --auth none loopback is traind's user only when it names this machine,
 * so that page gets 401, not an operator's cancel. */
Test(web, loopback_trust_needs_a_loopback_host, .timeout = 60) {
  it_cluster c;
  int port = web_start_local(&c);
  uint64_t id = it_submit_quiet(&c, (const char *[]){"-H", "--wrap", "true", NULL});
  char path[64];
  snprintf(path, sizeof(path), "/api/jobs/%llu/cancel", (unsigned long long)id);
  char *r = web_http(port, "POST", path,
                     "Host: attacker.example:8080\r\nOrigin: http://attacker.example:8080\r\n"
                     "X-Requested-With: XMLHttpRequest\r\nContent-Length: 0\r\n");
  cr_assert_eq(web_status(r), 401, "%s", r);
  free(r);
  web_expect_only(port, "/api/cluster", "Host: localhost:1", 200);
  web_expect_only(port, "/api/cluster", "Host: [::1]:1", 200);
  web_expect_only(port, "/api/cluster", "Host: 127.9.9.9", 200);
  web_expect_only(port, "/api/cluster", "Host: 127.0.0.1.attacker.example", 401);
  ty_rpc_client *cl = it_client(&c);
  Trainyard__GetJobResponse *g = it_get_job(cl, id);
  cr_assert_eq(g->job->state, TRAINYARD__JOB_STATE__JOB_PENDING, "the job was cancelled");
  trainyard__get_job_response__free_unpacked(g, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A token that came but cannot be read (a space in it, too long, quoted,
 * or an Authorization that is not Bearer) is refused by name: not taken
 * for none, which on loopback under --auth none is traind's own user. */
Test(web, malformed_tokens_are_refused_by_name, .timeout = 60) {
  it_cluster c;
  int port = web_start_local(&c);
  char big[200], hdr[256];
  memset(big, 'a', 150);
  big[150] = '\0';
  snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", big);
  const char *bad[][2] = {
      {"Authorization: Bearer bad token", "token: malformed (a character other than"},
      {"Authorization: Bearer \"0123456789abcdef\"", "token: malformed (a character other than"},
      {hdr, "token: malformed (longer than 127 bytes)"},
      {"Authorization: Basic dXNlcjpwYXNz", "token: malformed (Authorization is not"}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char *r = web_expect_raw(port, "/api/cluster", bad[i][0], 401);
    cr_assert(strstr(r, bad[i][1]) && !strstr(r, "\"you\""), "%.40s: %s", bad[i][0], r);
    free(r);
  }
  web_expect_only(port, "/api/cluster", NULL, 200);
  it_cluster_stop(&c);
}

/* ---- per-user tokens ----------------------------------------------------------------------- */

typedef struct user {
  char name[32];
  uid_t uid;
  gid_t gid;
} user;

/* trainctl ARGS... as u: its exit status; stdout in *out (heap). */
static int trainctl_as(const it_cluster *c, const user *u, char **out, const char *const *args) {
  const char *argv[16] = {getenv("TY_TRAINCTL")};
  size_t n = 1;
  for (size_t i = 0; args[i] && n < 15; i++)
    argv[n++] = args[i];
  char *err = NULL;
  int rc = it_run_as(c, u->uid, u->gid, "/tmp", out, &err, argv);
  if (rc != 0) fprintf(stderr, "trainctl as %s: %s", u->name, err);
  free(err);
  return rc;
}

static uint64_t sleep_as(const it_cluster *c, const user *u) {
  char *out = NULL;
  cr_assert_eq(
      trainctl_as(c, u, &out,
                  (const char *[]){"submit", "--command", "-q", "--", "sleep", "300", NULL}),
      0);
  uint64_t id = strtoull(out, NULL, 10);
  free(out);
  cr_assert_gt(id, 0);
  return id;
}

/* `trainctl web-token [ttl]` as u: the token from the address it prints. */
static void token_as(const it_cluster *c, const user *u, const char *ttl, char *tok, size_t cap) {
  char *out = NULL;
  const char *args[] = {"web-token", ttl ? "--ttl" : NULL, ttl, NULL};
  cr_assert_eq(trainctl_as(c, u, &out, args), 0);
  const char *t = strstr(out, "/#token=");
  cr_assert(t && strstr(out, "http://127.0.0.1:"), "web-token printed no console address: %s", out);
  snprintf(tok, cap, "%.*s", (int)strcspn(t + 8, "\n"), t + 8);
  cr_assert_eq(strlen(tok), 37, "token \"%s\"", tok);
  free(out);
}

/* METHOD path as the token's user; the answer must be `status` and say `says`. */
static void as_token(int port, const char *method, const char *path, const char *tok, int status,
                     const char *says) {
  char hdr[256];
  snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\nX-Requested-With: test\r\n", tok);
  char *r = web_http(port, method, path, hdr);
  cr_assert_eq(web_status(r), status, "%s %s: %s", method, path, r);
  cr_assert(strstr(r, says), "%s %s should say \"%s\": %s", method, path, says, r);
  free(r);
}

static void job_path(char *buf, size_t cap, uint64_t id, const char *tail) {
  snprintf(buf, cap, "/api/jobs/%llu%s", (unsigned long long)id, tail);
}

/* ---- event streams -------------------------------------------------------------------------- */

/* Opens GET path (with header lines hdr) and leaves the stream open. */
static int sse_open(int port, const char *path, const char *hdr) {
  int fd = it_raw_connect(port);
  cr_assert_geq(fd, 0);
  char req[1024];
  int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", path, hdr);
  cr_assert_eq(write(fd, req, (size_t)n), n);
  struct timeval tv = {.tv_sec = 30};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

/* Reads the stream into seen (NUL-terminated) until it holds `needle`. */
static void sse_until(int fd, ty_buf *seen, const char *needle) {
  while (!seen->data || !strstr((char *)seen->data, needle)) {
    char chunk[4096];
    ssize_t got = read(fd, chunk, sizeof(chunk));
    cr_assert_gt(got, 0, "the stream ended or went quiet before \"%s\":\n%s", needle,
                 seen->data ? (char *)seen->data : "");
    ty_buf_append(seen, chunk, (size_t)got);
    ty_buf_append(seen, "", 1);
    seen->len--;
  }
}

/* Streams as alice: the head, then a job event when an operator holds
 * bob's job that she watches, and a cluster event when she cancels hers;
 * bad parameters named. */
static void check_streams(int port, const char *tok, const char *admin, uint64_t mine,
                          uint64_t bobs) {
  char hdr[160], path[96], want[96];
  snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", tok);
  snprintf(path, sizeof(path), "/api/events?job=%llu", (unsigned long long)bobs);
  int job_fd = sse_open(port, path, hdr), all_fd = sse_open(port, "/api/events", hdr);
  ty_buf job_seen = {0}, all_seen = {0};
  sse_until(job_fd, &job_seen, "retry: 3000\n\n");
  sse_until(all_fd, &all_seen, "retry: 3000\n\n");
  cr_assert(strstr((char *)job_seen.data, "HTTP/1.1 200") &&
                strstr((char *)job_seen.data, "Content-Type: text/event-stream"),
            "%s", (char *)job_seen.data);
  job_path(path, sizeof(path), bobs, "/hold");
  as_token(port, "POST", path, admin, 200, "\"action\":\"hold\"");
  snprintf(want, sizeof(want), "event: job\ndata: {\"id\":%llu,\"state\":\"PENDING\"}\n\n",
           (unsigned long long)bobs);
  sse_until(job_fd, &job_seen, want);
  job_path(path, sizeof(path), mine, "/cancel");
  as_token(port, "POST", path, tok, 200, "\"ok\":true");
  sse_until(all_fd, &all_seen, "event: cluster\ndata: {\"gen\":");
  close(job_fd), close(all_fd);
  ty_buf_close(&job_seen), ty_buf_close(&all_seen);
  as_token(port, "GET", "/api/events?job=abc", tok, 400, "job: \\\"abc\\\" is not a number");
  as_token(port, "GET", "/api/events?job=99999", tok, 404, "job 99999 not found");
  as_token(port, "GET", "/api/events?job=1&after=-1", tok, 400, "after");
}

/* The job page follows the job through the event stream, not by polling:
 * opened on alice's job, it shows the cancel made elsewhere while its
 * stream is live (the page would poll only every 30 s then). */
static void check_live_page(const it_cluster *c, int port, const char *tok, uint64_t id) {
  if (!web_have_chromium()) return; /* the API half ran; no browser here */
  char profile[400], url[256], ready[400], path[96];
  snprintf(profile, sizeof(profile), "%s/chromium-live", c->dir);
  snprintf(ready, sizeof(ready), "%s/live.ready", c->dir);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/#/job/%llu?token=%s", port,
           (unsigned long long)id, tok);
  const char *wait = "document.body.dataset.live === 'events' && "
                     "document.querySelector('#job-summary .state-CANCELLED')";
  pid_t pid = web_browser_start(url, profile, "job-live", wait, ready,
                                "document.body.dataset.live === 'events' && "
                                "document.querySelector('#job-summary .state-PENDING')");
  for (int i = 0; access(ready, F_OK) != 0; i++) {
    cr_assert_lt(i, 600, "the page never went live");
    it_sleep_ms(50);
  }
  job_path(path, sizeof(path), id, "/cancel");
  as_token(port, "POST", path, tok, 200, "\"ok\":true");
  char *dom = web_browser_finish(pid, profile, wait);
  cr_assert(strstr(dom, "(live)"), "%s", dom);
  free(dom);
}

/* The address `trainctl web-token` printed (/#token=), and the older
 * /?token= one (a redirect to it), opened in a browser: the page acts as
 * alice, keeps the token in the tab's sessionStorage, and takes it out of
 * the address. */
static void check_token_page(const it_cluster *c, int port, const char *tok, const char *name) {
  if (!web_have_chromium()) return; /* the API half ran; no browser here */
  char profile[400], url[256], wait[512];
  snprintf(profile, sizeof(profile), "%s/chromium-token", c->dir);
  snprintf(wait, sizeof(wait),
           "document.getElementById('you').textContent === '%s' && location.hash === '#/' && "
           "!location.href.includes('token') && "
           "sessionStorage.getItem('trainyard_token') === '%s'",
           name, tok);
  /* Under ASan (tests/support/subset.h) the /?token= address alone: the
   * daemon's redirect, then the same page as /#token=, which the daemon
   * never sees (an address's fragment stays in the browser). */
  if (!ty_test_subset()) {
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/#token=%s", port, tok);
    free(web_chromium(url, profile, NULL, wait));
  }
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/?token=%s", port, tok);
  free(web_chromium(url, profile, NULL, wait));
}

/* Alice's console acts as alice: her jobs, not bob's, as `trainctl cancel`
 * and `trainctl job hold` would; what it may not do is a 403 naming why. */
static void check_user_actions(int port, const char *tok, uint64_t mine, uint64_t bobs,
                               const char *bob) {
  char path[128], want[128];
  as_token(port, "GET", "/api/cluster", tok, 200, "\"operator\":false");
  job_path(path, sizeof(path), bobs, "/cancel");
  snprintf(want, sizeof(want), "permission denied: it belongs to %s", bob);
  as_token(port, "POST", path, tok, 403, want);
  job_path(path, sizeof(path), bobs, "/hold");
  as_token(port, "POST", path, tok, 403, want);
  /* Without X-Requested-With (a form, another site): refused before anything. */
  char hdr[128];
  snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", tok);
  job_path(path, sizeof(path), mine, "/cancel");
  char *r = web_http(port, "POST", path, hdr);
  cr_assert(web_status(r) == 403 && strstr(r, "X-Requested-With"), "%s", r);
  free(r);
  job_path(path, sizeof(path), mine, "/explode");
  as_token(port, "POST", path, tok, 404, "is not one of cancel, hold, release");
  as_token(port, "POST", "/api/jobs/99999/cancel", tok, 404, "job 99999 not found");
  as_token(port, "POST", "/api/cluster", tok, 405, "does not take POST");
  job_path(path, sizeof(path), mine, "/cancel");
  as_token(port, "POST", path, tok, 200, "\"ok\":true");
  as_token(port, "POST", path, tok, 409, "is already CANCELLED");
  job_path(path, sizeof(path), mine, "");
  as_token(port, "GET", path, tok, 200, "\"to\":\"CANCELLED\"");
  /* History is hers alone, as `trainctl history`'s. */
  snprintf(want, sizeof(want), "{\"id\":%llu,", (unsigned long long)mine);
  as_token(port, "GET", "/api/history", tok, 200, want);
  snprintf(path, sizeof(path), "/api/history?user=%s", bob);
  as_token(port, "GET", path, tok, 403, "only operators see other users' jobs");
}

Test(web, per_user_tokens_act_as_their_user, .timeout = 180) {
  it_cluster c;
  it_options o = {.traind_args = (const char *[]){"--web-listen", "127.0.0.1:0", NULL}};
  it_cluster_start_with(&c, 1, 1, &o);
  int port = web_port(&c);
  user alice, bob;
  it_user_add(alice.name, sizeof(alice.name), &alice.uid, &alice.gid);
  it_user_add(bob.name, sizeof(bob.name), &bob.uid, &bob.gid);
  user root = {"root", 0, 0}; /* a drained node keeps the jobs pending: holdable */
  cr_assert_eq(trainctl_as(&c, &root, NULL, (const char *[]){"node", "drain", c.name[0], NULL}), 0);
  uint64_t mine = sleep_as(&c, &alice), bobs = sleep_as(&c, &bob), watched = sleep_as(&c, &alice),
           streamed = sleep_as(&c, &alice);
  char tok[64], short_tok[64], admin[64];
  token_as(&c, &alice, NULL, tok, sizeof(tok));
  check_user_actions(port, tok, mine, bobs, bob.name);
  /* The shared token (web.token, traind's user) is an operator's. */
  web_read_token(&c, admin, sizeof(admin));
  check_streams(port, tok, admin, streamed, bobs);
  check_live_page(&c, port, tok, watched);
  check_token_page(&c, port, tok, alice.name);
  /* Expired, revoked, malformed and unknown tokens: 401 naming which. */
  token_as(&c, &alice, "1s", short_tok, sizeof(short_tok));
  it_sleep_ms(1500);
  as_token(port, "GET", "/api/cluster", short_tok, 401, "token: expired");
  char *out = NULL;
  cr_assert_eq(trainctl_as(&c, &alice, &out, (const char *[]){"web-token", "--revoke", NULL}), 0);
  cr_assert(strstr(out, "revoked 1 token"), "%s", out);
  free(out);
  as_token(port, "GET", "/api/cluster", tok, 401, "token: revoked");
  as_token(port, "GET", "/api/cluster", "tyw1.zz", 401, "token: not a console token");
  as_token(port, "GET", "/api/cluster", "tyw1.0123456789abcdef0123456789abcdef", 401,
           "token: unknown to this controller");
  /* trainctl's own rejections: usage errors (exit 2), a --ttl past the
   * 90 days a token may live too, never sent to traind. */
  cr_assert_eq(trainctl_as(&c, &alice, NULL, (const char *[]){"web-token", "--ttl", "100d", NULL}),
               2);
  cr_assert_eq(trainctl_as(&c, &alice, NULL, (const char *[]){"web-token", "--ttl", "soon", NULL}),
               2);
  it_cluster_stop(&c);
}

/* ---- exit codes are the owner's ------------------------------------------------------------ */

typedef struct locations_as {
  const it_cluster *c;
  uint64_t id;
} locations_as;

/* In a child as some user: GetTaskLocations of the job, "EXIT:SIGNAL|REASON" in msg. */
static int locations_child(void *ud, char *msg, size_t msg_len) {
  const locations_as *x = ud;
  ty_rpc_client *cl = it_client_self(x->c);
  Trainyard__GetTaskLocationsRequest q = TRAINYARD__GET_TASK_LOCATIONS_REQUEST__INIT;
  q.job_id = x->id;
  uint8_t buf[64];
  size_t n = trainyard__get_task_locations_request__pack(&q, buf);
  ty_rpc_result res = {0};
  int rc = ty_rpc_client_call(cl, TY_M_GET_TASK_LOCATIONS, buf, n, 10000, &res);
  if (rc != 0 || res.status != 0) return rc ? rc : res.status;
  Trainyard__GetTaskLocationsResponse *r =
      trainyard__get_task_locations_response__unpack(NULL, res.payload_len, res.payload);
  if (!r) _exit(122);
  snprintf(msg, msg_len, "%d:%d|%s", r->exit_code, r->term_signal, r->reason);
  return 0;
}

static void locations_expect(const it_cluster *c, const user *u, uint64_t id, const char *want) {
  locations_as x = {c, id};
  char msg[512];
  cr_assert_eq(it_as(u->uid, u->gid, locations_child, &x, msg, sizeof msg), 0, "as %s: %s", u->name,
               msg);
  cr_expect_str_eq(msg, want, "GetTaskLocations %llu as %s", (unsigned long long)id, u->name);
}

/* trainctl ARGS as u: stdout (heap), which must hold `has` and not `hasnt` (NULL: skip). */
static char *ctl_expect(const it_cluster *c, const user *u, const char *const *args,
                        const char *has, const char *hasnt) {
  char *out = NULL;
  cr_assert_eq(trainctl_as(c, u, &out, args), 0);
  cr_expect(!has || strstr(out, has), "trainctl %s as %s: want \"%s\" in:\n%s", args[0], u->name,
            has, out);
  cr_expect(!hasnt || !strstr(out, hasnt), "trainctl %s as %s: \"%s\" leaked in:\n%s", args[0],
            u->name, hasnt, out);
  return out;
}

/* GET path as the token's user: the body holds `has` and not `hasnt`. */
static void web_expect(int port, const char *tok, const char *path, const char *has,
                       const char *hasnt) {
  char hdr[160];
  snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", tok);
  char *r = web_http(port, "GET", path, hdr);
  cr_assert_eq(web_status(r), 200, "GET %s: %s", path, r);
  cr_expect(strstr(r, has), "GET %s: want \"%s\" in: %s", path, has, r);
  cr_expect(!hasnt || !strstr(r, hasnt), "GET %s: \"%s\" leaked in: %s", path, hasnt, r);
  free(r);
}

/* A job's exit code and the reasons quoting it or its argv[0] are its
 * owner's and the operators' (docs/security.md): another user reads them
 * nowhere, neither in show, ls, why, the web console nor GetTaskLocations
 * (they once showed "exit_code":42 and "exit code: 0", and a launch
 * failure's reason named the owner's program). */
Test(web, another_users_exit_codes_are_withheld, .timeout = 120) {
  it_cluster c;
  it_options o = {.traind_args = (const char *[]){"--web-listen", "127.0.0.1:0", NULL}};
  it_cluster_start_with(&c, 1, 1, &o);
  int port = web_port(&c);
  user alice, eve, root = {"root", 0, 0};
  it_user_add(alice.name, sizeof(alice.name), &alice.uid, &alice.gid);
  it_user_add(eve.name, sizeof(eve.name), &eve.uid, &eve.gid);
  char *out = ctl_expect(
      &c, &alice, (const char *[]){"submit", "--command", "-q", "--", "sh", "-c", "exit 42", NULL},
      NULL, NULL);
  uint64_t exiter = strtoull(out, NULL, 10);
  free(out);
  out = ctl_expect(&c, &alice,
                   (const char *[]){"submit", "--command", "-q", "--", "/opt/alice-secret/run",
                                    "--password=x", NULL},
                   NULL, NULL);
  uint64_t missing = strtoull(out, NULL, 10);
  free(out);
  ty_rpc_client *cl = it_client(&c);
  for (uint64_t id = exiter; id <= missing; id++)
    trainyard__get_job_response__free_unpacked(
        it_wait_job(cl, id, TRAINYARD__JOB_STATE__JOB_FAILED, 30000), NULL);
  ty_rpc_client_close(cl);
  char a[24], m[24], apath[64], mpath[64];
  snprintf(a, sizeof a, "%llu", (unsigned long long)exiter);
  snprintf(m, sizeof m, "%llu", (unsigned long long)missing);
  job_path(apath, sizeof apath, exiter, "");
  job_path(mpath, sizeof mpath, missing, "");
  /* eve: withheld everywhere. */
  free(ctl_expect(&c, &eve, (const char *[]){"show", a, NULL}, "(withheld", "code 42"));
  free(ctl_expect(&c, &eve, (const char *[]){"show", a, NULL}, "rank 0 failed",
                  "exit code:      0"));
  free(ctl_expect(&c, &eve, (const char *[]){"show", m, NULL}, "launch failed on", "alice-secret"));
  free(ctl_expect(&c, &eve, (const char *[]){"why", m, NULL}, "launch failed on", "alice-secret"));
  free(ctl_expect(&c, &eve,
                  (const char *[]){"ls", "-t", "all", "--noheader", "-o", "id,exit", NULL}, NULL,
                  "0:0"));
  char tok[64];
  token_as(&c, &eve, NULL, tok, sizeof(tok));
  web_expect(port, tok, apath, "\"exit_code\":null", "code 42");
  web_expect(port, tok, apath, "\"redacted\":true", "\"exit_code\":42");
  web_expect(port, tok, mpath, "launch failed on", "alice-secret");
  web_expect(port, tok, "/api/jobs?state=FAILED", "\"redacted\":true", "alice-secret");
  locations_expect(&c, &eve, exiter, "0:0|rank 0 failed");
  /* alice, the owner, and root, an operator: in full. */
  token_as(&c, &alice, NULL, tok, sizeof(tok));
  web_expect(port, tok, apath, "\"exit_code\":42", NULL);
  web_expect(port, tok, mpath, "alice-secret", NULL);
  free(ctl_expect(&c, &alice, (const char *[]){"show", a, NULL}, "exited with code 42", NULL));
  free(ctl_expect(&c, &root,
                  (const char *[]){"ls", "-t", "all", "--noheader", "-o", "id,exit", NULL}, "42:0",
                  NULL));
  locations_expect(&c, &alice, exiter, "42:0|rank 0 exited with code 42");
  locations_expect(&c, &root, exiter, "42:0|rank 0 exited with code 42");
  it_cluster_stop(&c);
}

/* ---- another user's graph job ---------------------------------------------------------------- */

/* u's graph job: the MLP for 10 steps on 1 node x 2 devices, tensor
 * parallel (so the controller plans it at submit), checkpointing every 5
 * steps to the controller's checkpoint directory, through `trainctl
 * submit FILE`; run to completion. */
static uint64_t run_planned_as(const it_cluster *c, const user *u) {
  char file[400];
  snprintf(file, sizeof file, "%s/planned-%s.pb", c->dir, u->name);
  size_t len;
  uint8_t *cfg = rk_make_config(10, 5, NULL, &len);
  rk_write_job(file, "planned", 1, 2, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_TENSOR);
  free(cfg);
  cr_assert_eq(chmod(file, 0644), 0);
  char *out = NULL;
  cr_assert_eq(trainctl_as(c, u, &out, (const char *[]){"submit", "--quiet", file, NULL}), 0);
  uint64_t id = strtoull(out, NULL, 10);
  free(out);
  cr_assert_gt(id, 0);
  rk_expect_completed(c, id);
  return id;
}

/* In a child as some user: GetJob with_plan of the job, as any client
 * sees it: "MODEL_PATH|PROGRESS_CHECKPOINT|LAST_CHECKPOINT|PLAN_BYTES|WITHHELD". */
static int get_job_child(void *ud, char *msg, size_t msg_len) {
  const locations_as *x = ud;
  ty_rpc_client *cl = it_client_self(x->c);
  Trainyard__GetJobRequest q = TRAINYARD__GET_JOB_REQUEST__INIT;
  q.job_id = x->id, q.with_plan = true;
  uint8_t buf[64];
  size_t n = trainyard__get_job_request__pack(&q, buf);
  ty_rpc_result res = {0};
  int rc = ty_rpc_client_call(cl, TY_M_GET_JOB, buf, n, 10000, &res);
  if (rc != 0 || res.status != 0) return rc ? rc : res.status;
  Trainyard__GetJobResponse *r =
      trainyard__get_job_response__unpack(NULL, res.payload_len, res.payload);
  if (!r || !r->job || !r->job->spec || !r->job->spec->graph || !r->progress ||
      r->n_checkpoints == 0)
    _exit(122);
  snprintf(msg, msg_len, "%s|%s|%s|%zu|%d", r->job->spec->graph->model_path,
           r->progress->checkpoint_path, r->checkpoints[r->n_checkpoints - 1]->path, r->plan.len,
           r->plan_withheld);
  return 0;
}

/* get_job_child's line as u, into msg. */
static void get_job_as(const it_cluster *c, const user *u, uint64_t id, char *msg, size_t cap) {
  locations_as x = {c, id};
  cr_assert_eq(it_as(u->uid, u->gid, get_job_child, &x, msg, cap), 0, "as %s: %s", u->name, msg);
}

/* A graph job's model path, its checkpoints' paths and its plan are its
 * owner's and the operators' (docs/security.md): another user once read
 * graph.model_path in `show --json`, the checkpoint paths in `show` and
 * `checkpoint ls`, and was told "Plan: none" of a planned job (the console
 * offered the plan, then failed on its 403). Now: empty on the wire,
 * "(withheld)" printed, the plan said to be withheld. */
Test(web, another_users_graph_paths_are_withheld, .timeout = 240) {
  it_cluster c;
  it_options o = {.traind_args = (const char *[]){"--web-listen", "127.0.0.1:0", NULL}};
  it_cluster_start_with(&c, 1, 2, &o);
  int port = web_port(&c);
  user alice, eve, root = {"root", 0, 0};
  it_user_add(alice.name, sizeof(alice.name), &alice.uid, &alice.gid);
  it_user_add(eve.name, sizeof(eve.name), &eve.uid, &eve.gid);
  uint64_t id = run_planned_as(&c, &alice);
  const char *model = rk_env("TY_MLP_ONNX");
  char ids[24], path[64], line[2048], ckpt[1024], want[1200];
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  job_path(path, sizeof path, id, "");
  /* alice, the owner, and root, an operator: in full. */
  get_job_as(&c, &alice, id, line, sizeof line);
  char *f[5] = {line};
  for (int i = 1; i < 5; i++) {
    f[i] = f[i - 1] ? strchr(f[i - 1], '|') : NULL;
    if (f[i]) *f[i]++ = '\0';
  }
  cr_assert(f[4] && strcmp(f[0], model) == 0 && f[1][0] == '/' && f[2][0] == '/' &&
                strcmp(f[3], "0") != 0 && strcmp(f[4], "0") == 0,
            "GetJob as alice: %s|%s|%s|%s|%s", line, f[1], f[2], f[3], f[4]);
  snprintf(ckpt, sizeof ckpt, "%s", f[2]);
  snprintf(want, sizeof want, "%s|%s|%s|%s|0", model, f[1], ckpt, f[3]);
  get_job_as(&c, &root, id, line, sizeof line);
  cr_expect_str_eq(line, want, "GetJob as root");
  for (const user *u = &alice; u; u = u == &alice ? &root : NULL) {
    free(ctl_expect(&c, u, (const char *[]){"show", "--json", ids, NULL}, model,
                    "\"plan_withheld\":true"));
    snprintf(want, sizeof want, "Last checkpoint: step 10 %s", ckpt);
    free(ctl_expect(&c, u, (const char *[]){"show", ids, NULL}, want, "(withheld"));
    free(ctl_expect(&c, u, (const char *[]){"checkpoint", "ls", ids, NULL}, ckpt, NULL));
  }
  char tok[64];
  token_as(&c, &alice, NULL, tok, sizeof(tok));
  web_expect(port, tok, path, "\"has_plan\":true", "plan_withheld");
  /* eve: nothing of alice's paths, and the plan withheld, not absent. */
  get_job_as(&c, &eve, id, line, sizeof line);
  cr_expect_str_eq(line, "|||0|1", "GetJob as eve");
  free(ctl_expect(&c, &eve, (const char *[]){"show", "--json", ids, NULL}, "\"model_path\":\"\"",
                  model));
  free(ctl_expect(&c, &eve, (const char *[]){"show", "--json", ids, NULL}, "\"plan_withheld\":true",
                  ckpt));
  free(ctl_expect(&c, &eve, (const char *[]){"show", ids, NULL},
                  "Plan: (withheld: only its owner and operators see it)", "Plan: none"));
  free(ctl_expect(&c, &eve, (const char *[]){"show", ids, NULL},
                  "Last checkpoint: step 10 (withheld)", ckpt));
  free(ctl_expect(&c, &eve, (const char *[]){"show", ids, NULL}, "model:", model));
  free(ctl_expect(&c, &eve, (const char *[]){"checkpoint", "ls", ids, NULL}, "(withheld)", ckpt));
  free(ctl_expect(&c, &eve, (const char *[]){"checkpoint", "ls", "--json", ids, NULL},
                  "\"path\":\"\"", ckpt));
  free(ctl_expect(&c, &eve, (const char *[]){"ls", "-t", "all", "--json", NULL},
                  "\"redacted\":true", model));
  token_as(&c, &eve, NULL, tok, sizeof(tok));
  web_expect(port, tok, path, "\"has_plan\":false", ckpt);
  web_expect(port, tok, path, "\"plan_withheld\":true", model);
  it_cluster_stop(&c);
}
