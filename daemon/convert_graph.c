/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> controller structs for graph jobs: rendezvous requests,
 * progress reports and GetJob's progress fields. Pure, like convert.c.
 */
#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

#include <stdlib.h>
#include <string.h>

#include "proto/convert.h"

int ty__conv_rdv_put_req(const uint8_t *p, size_t n, uint64_t *out_job, char **out_key,
                         uint8_t **out_value, size_t *out_len) {
  Trainyard__RendezvousPutRequest *m =
      ty_wire_unpack(&trainyard__rendezvous_put_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out_job = m->job_id;
  *out_len = m->value.len;
  *out_key = ty_wire_strdup(m->key);
  int rc = *out_key ? ty_wire_bytes(m->value.data, m->value.len, out_value) : TY_ENOMEM;
  ty_wire_free(m);
  if (rc != 0) free(*out_key);
  return rc;
}

int ty__conv_rdv_get_req(const uint8_t *p, size_t n, uint64_t *out_job, char **out_key) {
  Trainyard__RendezvousGetRequest *m =
      ty_wire_unpack(&trainyard__rendezvous_get_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out_job = m->job_id;
  *out_key = ty_wire_strdup(m->key);
  ty_wire_free(m);
  return *out_key ? 0 : TY_ENOMEM;
}

int ty__conv_rdv_get_resp(const uint8_t *value, size_t len, bool found, ty_buf *out) {
  Trainyard__RendezvousGetResponse r = TRAINYARD__RENDEZVOUS_GET_RESPONSE__INIT;
  r.found = found;
  r.value = (ProtobufCBinaryData){len, (uint8_t *)value};
  return ty_wire_pack(&r.base, out);
}

int ty__conv_progress_req(const uint8_t *p, size_t n, uint64_t *out_job, uint32_t *out_rank,
                          ty_train_progress *out, ty_checkpoint_list *out_existing) {
  Trainyard__ReportProgressRequest *m =
      ty_wire_unpack(&trainyard__report_progress_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out_job = m->job_id;
  *out_rank = m->rank;
  Trainyard__TrainProgress none = TRAINYARD__TRAIN_PROGRESS__INIT;
  int rc = ty_proto_decode_progress(m->progress ? m->progress : &none, out);
  memset(out_existing, 0, sizeof *out_existing);
  out_existing->listed = m->listed;
  if (rc == 0) rc = ty_proto_decode_checkpoints(m->existing, m->n_existing, out_existing);
  if (rc != 0) free(out->checkpoint_path);
  ty_wire_free(m);
  return rc;
}

/* GetJobResponse with only fields 60 and 61: appended to the encoded answer,
 * protobuf merges it into the same message. Without `paths` (another
 * user's job) every checkpoint path is "": steps and times stay. */
int ty__conv_graph_job_extra(const ty_train_progress *pr, const ty_checkpoint_info *ck, size_t n_ck,
                             bool paths, ty_buf *out) {
  Trainyard__GetJobResponse r = TRAINYARD__GET_JOB_RESPONSE__INIT;
  Trainyard__TrainProgress tp;
  if (pr) {
    ty_proto_encode_progress(pr, &tp);
    if (!paths) tp.checkpoint_path = ty_wire_str(NULL);
    r.progress = &tp;
  }
  Trainyard__CheckpointInfo **cp = NULL;
  int rc = ty_proto_encode_checkpoints(ck, n_ck, &cp);
  for (size_t i = 0; rc == 0 && !paths && i < n_ck; i++)
    cp[i]->path = ty_wire_str(NULL);
  r.n_checkpoints = n_ck;
  r.checkpoints = cp;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  free(cp);
  return rc;
}

int ty__conv_graph_saved(const uint8_t *p, size_t n, ty_train_progress *pr, bool *out_has,
                         ty_checkpoint_list *ck) {
  Trainyard__GetJobResponse *m = ty_wire_unpack(&trainyard__get_job_response__descriptor, p, n);
  if (!m) return TY_EPROTO;
  memset(ck, 0, sizeof *ck);
  *out_has = m->progress != NULL;
  int rc = m->progress ? ty_proto_decode_progress(m->progress, pr) : 0;
  if (rc == 0) rc = ty_proto_decode_checkpoints(m->checkpoints, m->n_checkpoints, ck);
  if (rc != 0 && *out_has) free(pr->checkpoint_path);
  ty_wire_free(m);
  return rc;
}

/* GetJobResponse with only field 62, merged like the graph fields above. */
int ty__conv_job_plan(const uint8_t *plan, size_t len, ty_buf *out) {
  Trainyard__GetJobResponse r = TRAINYARD__GET_JOB_RESPONSE__INIT;
  r.plan = (ProtobufCBinaryData){len, (uint8_t *)plan};
  return ty_wire_pack(&r.base, out);
}

/* GetJobResponse with only field 63, merged like the fields above. */
int ty__conv_plan_withheld(ty_buf *out) {
  Trainyard__GetJobResponse r = TRAINYARD__GET_JOB_RESPONSE__INIT;
  r.plan_withheld = true;
  return ty_wire_pack(&r.base, out);
}

int ty__conv_plan_job_req(const uint8_t *p, size_t n, ty_job_spec *out_spec) {
  Trainyard__PlanJobRequest *m = ty_wire_unpack(&trainyard__plan_job_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  int rc = m->job ? ty_proto_decode_job(m->job, out_spec) : TY_EPROTO;
  ty_wire_free(m);
  return rc;
}

int ty__conv_plan_job_resp(const uint8_t *plan, size_t len, bool cached, ty_buf *out) {
  Trainyard__PlanJobResponse r = TRAINYARD__PLAN_JOB_RESPONSE__INIT;
  r.plan = (ProtobufCBinaryData){len, (uint8_t *)plan};
  r.cached = cached;
  return ty_wire_pack(&r.base, out);
}
