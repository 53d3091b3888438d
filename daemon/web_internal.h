/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The read-only web console's side of traind (web.c, web_json.c,
 * web_action.c, web_events.c, web_token.c): what those files share with
 * each other and with controller.c (start, event flush) and rpc.c
 * (WebToken). Split from daemon_internal.h, which it builds on.
 */
#ifndef TY_DAEMON_WEB_INTERNAL_H
#define TY_DAEMON_WEB_INTERNAL_H

#include "daemon/daemon_internal.h"

typedef struct ty_list_filter ty_list_filter; /* convert_internal.h */
/* Starts the console when cfg.web_host is set (its token from
 * STATE_DIR/web.key); 0 or the error, in err. */
int ty__web_start(ty_controller *ctl, char *err, size_t len);
/* WebToken (web_token.c): a console token for the caller, or revokes its tokens. */
void ty__h_web_token(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
/* Who a console token acts for: 0 with *who filled, or TY_EPERM with the
 * reason in err (malformed, unknown, expired, revoked). Recent answers are
 * kept (TY__WEB_IDS of them, for up to a minute; a revocation drops its
 * user's at once), so a page's requests cost neither a store read nor the
 * NSS lookups of the user's groups each. */
#define TY__WEB_IDS 32
typedef struct ty__web_id {
  char hash[65];
  ty_auth_id id;
  int64_t expires_ms;  /* the token's (Unix ms) */
  int64_t cached_mono; /* when looked up; 0 = an empty slot */
} ty__web_id;
int ty__web_token_identify(ty_controller *ctl, const char *token, ty_auth_id *who, char *err,
                           size_t len);
/* JSON documents (web_json.c), appended to out: 0, TY_ENOTFOUND or TY_ENOMEM. */
int ty__web_cluster_json(ty_controller *ctl, const ty_auth_id *who, bool operator, ty_buf * out);
/* POST /api/jobs/ID/ACTION (ref a job, or an element as ARRAY_TASK) and
 * /api/arrays/ID/ACTION (ref the array: every element) as who
 * (web_action.c), path_id the path's ID (the answer's "job"): answers
 * through ty_http_defer; TY_ENOTFOUND for an unknown action, TY_ENOMEM. */
int ty__web_action(ty_controller *ctl, const ty_auth_id *who, uint64_t path_id,
                   const ty_job_ref *ref, const char *action, ty_http_response *resp);
/* The jobs as view's caller sees them, and one job (`full`: the caller is
 * its owner or an operator, ty__auth_sees_job): others get its exit codes
 * withheld and its reasons in their public form (ty_job_reason_public). */
int ty__web_jobs_json(ty_controller *ctl, const ty_list_filter *f, const ty_reply *view,
                      ty_buf *out);
int ty__web_job_json(ty_controller *ctl, const ty_job *j, bool full, ty_buf *out);
int ty__web_plan_json(const ty_job *j, ty_buf *out);
/* The curve's points with a step above `after` (UINT64_MAX: all of them). */
int ty__web_curve_json(ty_controller *ctl, const ty_job *j, uint32_t after_attempt, uint64_t after,
                       ty_buf *out);
/* GET /api/history as who (web_action.c): GetHistory's query of q (taken
 * over) answered through ty_http_defer; TY_ENOMEM. */
struct ty__history_req;
struct ty__acct_job;
int ty__web_history(ty_controller *ctl, const ty_auth_id *who, struct ty__history_req *q,
                    ty_http_response *resp);
/* The history document (web_json.c): a ty__history_encode. */
int ty__web_history_json(const struct ty__acct_job *jobs, size_t n, bool truncated, ty_buf *out);
/* The console's event streams (web_events.c): GET /api/events opens one
 * (the job's events too when job_id, its curve after (attempt, step) when
 * has_cursor) through ty_http_stream_start; flush sends what changed
 * (after each group commit and on the tick); free forgets any left. */
typedef struct ty__web_events {
  struct web_sub *subs;
  size_t n;
} ty__web_events;
int ty__web_events_open(ty_controller *ctl, uint64_t job_id, bool has_cursor, uint32_t attempt,
                        uint64_t step, ty_http_response *resp);
void ty__web_events_flush(ty_controller *ctl);
void ty__web_events_free(ty_controller *ctl);
/* The console's files, generated from web/ at build time (web/embed.py). */
typedef struct ty__web_asset {
  const char *name; /* "index.html", "app.js", ... */
  const char *type; /* its Content-Type */
  const unsigned char *data;
  size_t len;
} ty__web_asset;
extern const ty__web_asset ty__web_assets[];
extern const size_t ty__web_n_assets;

#endif
