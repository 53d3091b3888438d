/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The graph-job parts of a GetJobResponse (progress, checkpoints, the
 * plan) for `trainctl show`, `watch` and `checkpoint ls`, and PlanJob's
 * messages for `trainctl plan`. Pure, like convert.c.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "proto/convert.h"

static int decode_job(const Trainyard__JobInfo *j, ty__cli_graph *out) {
  out->state = (int)j->state;
  out->start_ms = j->start_time_ms;
  out->term_signal = j->term_signal;
  out->graph = j->spec && j->spec->kind_case == TRAINYARD__JOB__KIND_GRAPH;
  out->redacted = j->redacted;
  out->reason = ty_wire_strdup(j->reason);
  out->name = ty_wire_strdup(j->spec ? j->spec->name : NULL);
  return out->reason && out->name ? 0 : TY_ENOMEM;
}

static int decode_ckpts(const Trainyard__GetJobResponse *m, ty__cli_graph *out) {
  ty_checkpoint_list l = {0};
  int rc = ty_proto_decode_checkpoints(m->checkpoints, m->n_checkpoints, &l);
  out->ckpts = l.v, out->n_ckpts = l.n;
  return rc;
}

int ty__cli_decode_graph(const uint8_t *p, size_t n, ty__cli_graph *out) {
  memset(out, 0, sizeof *out);
  Trainyard__GetJobResponse *m = ty_wire_unpack(&trainyard__get_job_response__descriptor, p, n);
  if (!m) return TY_EPROTO;
  Trainyard__JobInfo none = TRAINYARD__JOB_INFO__INIT;
  int rc = decode_job(m->job ? m->job : &none, out);
  out->has_progress = m->progress != NULL;
  out->plan_withheld = m->plan_withheld;
  if (rc == 0 && m->progress) rc = ty_proto_decode_progress(m->progress, &out->progress);
  if (rc == 0) rc = decode_ckpts(m, out);
  if (rc == 0 && m->plan.len) rc = ty_wire_bytes(m->plan.data, m->plan.len, &out->plan);
  if (rc == 0) out->plan_len = m->plan.len;
  ty_wire_free(m);
  if (rc != 0) ty__cli_graph_close(out);
  return rc;
}

void ty__cli_graph_close(ty__cli_graph *g) {
  if (!g) return;
  free(g->reason);
  free(g->name);
  free(g->progress.checkpoint_path);
  for (size_t i = 0; g->ckpts && i < g->n_ckpts; i++)
    free(g->ckpts[i].path);
  free(g->ckpts);
  free(g->plan);
  memset(g, 0, sizeof *g);
}

int ty__cli_decode_submit(const uint8_t *p, size_t n, ty_job_spec *out) {
  Trainyard__SubmitJobRequest *m = ty_wire_unpack(&trainyard__submit_job_request__descriptor, p, n);
  int rc = m && m->job ? ty_proto_decode_job(m->job, out) : TY_EPROTO;
  ty_wire_free(m);
  return rc;
}

int ty__cli_encode_plan_job(const ty_job_spec *spec, ty_buf *out) {
  ty_proto_job pj;
  ty_proto_encode_job(spec, &pj);
  Trainyard__PlanJobRequest req = TRAINYARD__PLAN_JOB_REQUEST__INIT;
  req.job = &pj.job;
  return ty_wire_pack(&req.base, out);
}

int ty__cli_decode_plan_job(const uint8_t *p, size_t n, uint8_t **out_plan, size_t *out_len,
                            bool *out_cached) {
  Trainyard__PlanJobResponse *m = ty_wire_unpack(&trainyard__plan_job_response__descriptor, p, n);
  if (!m) return TY_EPROTO;
  int rc = m->plan.len ? ty_wire_bytes(m->plan.data, m->plan.len, out_plan) : TY_EPROTO;
  *out_len = m->plan.len;
  *out_cached = m->cached;
  ty_wire_free(m);
  return rc;
}
