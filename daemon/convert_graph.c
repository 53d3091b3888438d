/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> controller structs for graph jobs: rendezvous requests,
 * progress reports and GetJob's progress fields. Pure, like convert.c.
 */
#include "daemon/daemon_internal.h"

#include <stdlib.h>
#include <string.h>

#include "proto/convert.h"

int ty__conv_rdv_put_req(const uint8_t *p, size_t n, uint64_t *out_job, char **out_key, uint8_t **out_value,
                         size_t *out_len) {
  Trainyard__RendezvousPutRequest *m = ty_wire_unpack(&trainyard__rendezvous_put_request__descriptor, p, n);
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
  Trainyard__RendezvousGetRequest *m = ty_wire_unpack(&trainyard__rendezvous_get_request__descriptor, p, n);
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
                          ty_train_progress *out) {
  Trainyard__ReportProgressRequest *m =
      ty_wire_unpack(&trainyard__report_progress_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out_job = m->job_id;
  *out_rank = m->rank;
  Trainyard__TrainProgress none = TRAINYARD__TRAIN_PROGRESS__INIT;
  int rc = ty_proto_decode_progress(m->progress ? m->progress : &none, out);
  ty_wire_free(m);
  return rc;
}

/* GetJobResponse with only fields 60 and 61: appended to the encoded answer,
 * protobuf merges it into the same message. */
int ty__conv_graph_job_extra(const ty_train_progress *pr, const ty_checkpoint_info *ck, size_t n_ck,
                             ty_buf *out) {
  Trainyard__GetJobResponse r = TRAINYARD__GET_JOB_RESPONSE__INIT;
  Trainyard__TrainProgress tp;
  if (pr) {
    ty_proto_encode_progress(pr, &tp);
    r.progress = &tp;
  }
  Trainyard__CheckpointInfo *cs = ty_wire_calloc(n_ck, sizeof *cs);
  Trainyard__CheckpointInfo **cp = ty_wire_calloc(n_ck, sizeof *cp);
  int rc = cs && cp ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n_ck; i++) {
    trainyard__checkpoint_info__init(&cs[i]);
    cs[i].step = ck[i].step;
    cs[i].time_ms = ck[i].time_ms;
    cs[i].path = ty_wire_str(ck[i].path);
    cp[i] = &cs[i];
  }
  r.n_checkpoints = n_ck;
  r.checkpoints = cp;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  free(cs);
  free(cp);
  return rc;
}
