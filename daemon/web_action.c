/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web console's requests that are trainctl's: the actions (POST
 * /api/jobs/ID/cancel, /hold, /release) are the RPCs a trainctl command
 * sends (CancelJob, UpdateJob), and the history pages (GET /api/history)
 * GetHistory's query; each runs the same handler on a reply made inside
 * traind for the console's user (ty__reply_local), so the console allows
 * and shows exactly what trainctl does for that user and refuses with the
 * same words. The HTTP answer waits for the handler's, which comes once a
 * change is durable or the store answered.
 *
 * An element of an array is named as trainctl names it (122_0), so an
 * action on its page is on it alone, never on the array whose id it
 * shares; the array as a whole is named by POST /api/arrays/ID/ACTION.
 *
 * Answers: 200 {"ok":true,"job":ID,"target":"122_0","action":"cancel"} or the history
 * document, or {"error": the handler's message} with 403 (not the user's
 * job, another user's history), 404 (no such job), 409 (not in a state the
 * action applies to), 400 or 500.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "daemon/web_internal.h"
#include "lib/json/json.h"
#include "proto/convert.h"
#include "proto/methods.h"

#define JSON_TYPE "application/json; charset=utf-8"

typedef struct action_ctx {
  ty_http_later *later;
  uint64_t path_id; /* the ID of the path: the answer's "job" */
  ty_job_ref ref;
  char action[16]; /* "" = the answer's payload is the document (history) */
} action_ctx;

static int http_status(int status) {
  switch (status) {
  case 0:
    return 200;
  case TY_EPERM:
    return 403;
  case TY_ENOTFOUND:
    return 404;
  case TY_ESTATE:
    return 409;
  case TY_EINVAL:
    return 400;
  default:
    return 500;
  }
}

static void on_answer(ty_reply *r, int status, const char *message) {
  action_ctx *a = r->sink_ud;
  if (status == 0 && !a->action[0]) {
    ty_http_later_answer(a->later, 200, JSON_TYPE, (const char *)r->out.data, r->out.len);
    free(a);
    return;
  }
  ty_buf b;
  ty_buf_init(&b);
  ty_json w;
  ty_json_init(&w, &b);
  ty_json_begin_object(&w);
  if (status == 0) {
    ty_json_key(&w, "ok");
    ty_json_bool(&w, true);
    char target[48];
    ty_job_ref_format(&a->ref, target, sizeof(target));
    ty_json_key(&w, "job");
    ty_json_uint(&w, a->path_id);
    ty_json_key(&w, "target"); /* "7", "122_0" (an element), "122" (an array: every element) */
    ty_json_string(&w, target);
    ty_json_key(&w, "action");
    ty_json_string(&w, a->action);
  } else {
    const char *msg = message && message[0] ? message : ty_strerror(status);
    ty_json_key(&w, "error");
    ty_json_string(&w, msg);
  }
  ty_json_end_object(&w);
  int rc = ty_json_finish(&w);
  if (rc == 0) ty_buf_append(&b, "\n", 1);
  ty_http_later_answer(a->later, rc ? 500 : http_status(status), JSON_TYPE,
                       rc ? NULL : (const char *)b.data, rc ? 0 : b.len);
  ty_buf_close(&b);
  free(a);
}

/* The request trainctl would send for the action on ref (`trainctl cancel
 * 122_0` names the element in CancelJob's refs, `job hold 122_0` in
 * UpdateJob's task): CancelJob for "cancel", UpdateJob for "hold" and
 * "release". */
static int encode(const char *action, const ty_job_ref *ref, const char **method, ty_buf *out) {
  if (!strcmp(action, "cancel")) {
    Trainyard__JobRef r = TRAINYARD__JOB_REF__INIT, *rp = &r;
    r.job_id = ref->id, r.has_task = ref->has_task, r.task = ref->task;
    Trainyard__CancelJobRequest m = TRAINYARD__CANCEL_JOB_REQUEST__INIT;
    m.n_refs = 1;
    m.refs = &rp;
    *method = TY_M_CANCEL_JOB;
    return ty_wire_pack(&m.base, out);
  }
  if (strcmp(action, "hold") != 0 && strcmp(action, "release") != 0) return TY_ENOTFOUND;
  Trainyard__UpdateJobRequest m = TRAINYARD__UPDATE_JOB_REQUEST__INIT;
  m.job_id = ref->id, m.has_task = ref->has_task, m.task = ref->task;
  m.action = (char *)action;
  *method = TY_M_UPDATE_JOB;
  return ty_wire_pack(&m.base, out);
}

int ty__web_action(ty_controller *ctl, const ty_auth_id *who, uint64_t path_id,
                   const ty_job_ref *ref, const char *action, ty_http_response *resp) {
  const char *method = NULL;
  ty_buf req;
  ty_buf_init(&req);
  int rc = encode(action, ref, &method, &req);
  action_ctx *a = rc == 0 ? calloc(1, sizeof(*a)) : NULL;
  if (rc == 0 && !a) rc = TY_ENOMEM;
  if (rc == 0 && !(a->later = ty_http_defer(resp))) rc = TY_ENOMEM;
  if (rc != 0) {
    free(a);
    ty_buf_close(&req);
    return rc;
  }
  a->ref = *ref;
  a->path_id = path_id;
  snprintf(a->action, sizeof(a->action), "%s", action);
  ty_reply *r = ty__reply_local(ctl, method, who, on_answer, a);
  if (!strcmp(method, TY_M_CANCEL_JOB))
    ty__h_cancel(ctl, r, req.data, req.len);
  else
    ty__h_update_job(ctl, r, req.data, req.len);
  ty_buf_close(&req);
  return 0;
}

int ty__web_history(ty_controller *ctl, const ty_auth_id *who, ty__history_req *q,
                    ty_http_response *resp) {
  action_ctx *a = calloc(1, sizeof(*a));
  if (!a || !(a->later = ty_http_defer(resp))) {
    free(a);
    ty__history_req_close(q);
    return TY_ENOMEM;
  }
  ty_reply *r = ty__reply_local(ctl, TY_M_GET_HISTORY, who, on_answer, a);
  ty__history_run(ctl, r, q, ty__web_history_json);
  return 0;
}
