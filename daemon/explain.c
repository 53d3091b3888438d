/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ExplainJob (`trainctl why`): why a pending job waits and when it would
 * start, from a scheduling pass of the job alone (sched_pass.c), answered
 * as its caller may see it.
 */
#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

void ty__h_explain_job(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  ty_job_ref ref;
  int decoded = ty__conv_job_ref_req(p, n, &ref, NULL);
  if (decoded != 0) {
    ty__reply_bad_payload(r, decoded, "an ExplainJobRequest");
    return;
  }
  ty_job *j = ty__job_ref(ctl, &ref);
  if (!j || !j->committed) {
    char name[48];
    ty_job_ref_format(&ref, name, sizeof(name));
    ty__reply_finishf(r, TY_ENOTFOUND, "job %s not found", name);
    return;
  }
  /* A pending rlaunch job whose rlaunch left is in no pass (sched_pass.c):
   * its listed reason says when it is cancelled, and `why` says the same. */
  ty_sched_explain ex;
  bool explained = j->state == TY_JOB_PENDING && !ty__watch_abandoned(j);
  int rc = explained ? ty__sched_explain(ctl, j->id, &ex) : TY_ENOTFOUND;
  if (rc == TY_ENOMEM) {
    ty__reply_finish(r, rc, "out of memory");
    return;
  }
  rc = ty__conv_explain_resp(j, ty__auth_sees_job(r, j), rc == 0 ? &ex : NULL, ctl->nodes, &r->out);
  ty__reply_finish(r, rc, rc ? "cannot encode the answer" : NULL);
}
