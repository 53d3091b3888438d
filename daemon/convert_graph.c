/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> controller structs for graph jobs: rendezvous requests,
 * progress reports and GetJob's progress fields. Pure, like convert.c.
 */
#include "daemon/graph.h"

#include <stdlib.h>
#include <string.h>

#include "proto/trainyard.pb-c.h"

static int pack_to(const ProtobufCMessage *m, ty_buf *out) {
  size_t len = protobuf_c_message_get_packed_size(m);
  int rc = ty_buf_reserve(out, len ? len : 1);
  if (rc != 0) return rc;
  protobuf_c_message_pack(m, out->data + out->len);
  out->len += len;
  return 0;
}

int ty__conv_rdv_put_req(const uint8_t *p, size_t n, uint64_t *out_job, char **out_key, uint8_t **out_value,
                         size_t *out_len) {
  Trainyard__RendezvousPutRequest *m = trainyard__rendezvous_put_request__unpack(NULL, n, p);
  if (!m) return TY_EPROTO;
  *out_job = m->job_id;
  *out_key = ty_strdup(m->key ? m->key : "");
  *out_len = m->value.len;
  *out_value = ty_xmalloc(m->value.len ? m->value.len : 1);
  if (m->value.len) memcpy(*out_value, m->value.data, m->value.len);
  trainyard__rendezvous_put_request__free_unpacked(m, NULL);
  return 0;
}

int ty__conv_rdv_get_req(const uint8_t *p, size_t n, uint64_t *out_job, char **out_key) {
  Trainyard__RendezvousGetRequest *m = trainyard__rendezvous_get_request__unpack(NULL, n, p);
  if (!m) return TY_EPROTO;
  *out_job = m->job_id;
  *out_key = ty_strdup(m->key ? m->key : "");
  trainyard__rendezvous_get_request__free_unpacked(m, NULL);
  return 0;
}

int ty__conv_rdv_get_resp(const uint8_t *value, size_t len, bool found, ty_buf *out) {
  Trainyard__RendezvousGetResponse r = TRAINYARD__RENDEZVOUS_GET_RESPONSE__INIT;
  r.found = found;
  r.value.data = (uint8_t *)value;
  r.value.len = len;
  return pack_to(&r.base, out);
}

int ty__conv_progress_req(const uint8_t *p, size_t n, uint64_t *out_job, uint32_t *out_rank, ty__progress *out) {
  Trainyard__ReportProgressRequest *m = trainyard__report_progress_request__unpack(NULL, n, p);
  if (!m) return TY_EPROTO;
  memset(out, 0, sizeof *out);
  *out_job = m->job_id;
  *out_rank = m->rank;
  if (m->progress) {
    const Trainyard__TrainProgress *g = m->progress;
    out->step = g->step;
    out->total_steps = g->total_steps;
    out->loss = g->loss;
    out->samples_per_s = g->samples_per_s;
    out->time_ms = g->time_ms;
    out->checkpoint_step = g->checkpoint_step;
    out->checkpoint_path = ty_strdup(g->checkpoint_path ? g->checkpoint_path : "");
    out->test_accuracy = g->test_accuracy;
    out->epoch = g->epoch;
  }
  trainyard__report_progress_request__free_unpacked(m, NULL);
  return 0;
}

/* GetJobResponse with only fields 60 and 61: appended to the encoded answer,
 * protobuf merges it into the same message. */
int ty__conv_graph_job_extra(const ty__progress *pr, const ty__ckpt *ck, size_t n_ck, ty_buf *out) {
  Trainyard__GetJobResponse r = TRAINYARD__GET_JOB_RESPONSE__INIT;
  Trainyard__TrainProgress tp = TRAINYARD__TRAIN_PROGRESS__INIT;
  if (pr) {
    tp.step = pr->step;
    tp.total_steps = pr->total_steps;
    tp.loss = pr->loss;
    tp.samples_per_s = pr->samples_per_s;
    tp.time_ms = pr->time_ms;
    tp.checkpoint_step = pr->checkpoint_step;
    tp.checkpoint_path = pr->checkpoint_path ? pr->checkpoint_path : "";
    tp.test_accuracy = pr->test_accuracy;
    tp.epoch = pr->epoch;
    r.progress = &tp;
  }
  Trainyard__CheckpointInfo *cs = ty_xcalloc(n_ck ? n_ck : 1, sizeof *cs);
  Trainyard__CheckpointInfo **cp = ty_xcalloc(n_ck ? n_ck : 1, sizeof *cp);
  for (size_t i = 0; i < n_ck; i++) {
    trainyard__checkpoint_info__init(&cs[i]);
    cs[i].step = ck[i].step;
    cs[i].time_ms = ck[i].time_ms;
    cs[i].path = ck[i].path ? ck[i].path : "";
    cp[i] = &cs[i];
  }
  r.n_checkpoints = n_ck;
  r.checkpoints = cp;
  int rc = pack_to(&r.base, out);
  free(cs);
  free(cp);
  return rc;
}
