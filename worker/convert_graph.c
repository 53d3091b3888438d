/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c codecs of graph jobs on the worker: the `graph` part of a
 * LaunchTaskRequest and ReportProgress. Pure, like convert.c.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "proto/trainyard.pb-c.h"
#include "worker/graph_task.h"

static uint8_t *dup_bytes(const ProtobufCBinaryData *b) {
  uint8_t *p = ty_xmalloc(b->len ? b->len : 1);
  if (b->len) memcpy(p, b->data, b->len);
  return p;
}

int ty__decode_graph_launch(const uint8_t *p, size_t n, ty__graph_launch *out) {
  memset(out, 0, sizeof *out);
  Trainyard__LaunchTaskRequest *m = trainyard__launch_task_request__unpack(NULL, n, p);
  if (!m) return TY_EPROTO;
  const Trainyard__GraphLaunch *g = m->graph;
  if (g) {
    out->present = true;
    out->model_path = ty_strdup(g->model_path ? g->model_path : "");
    out->model_bytes = dup_bytes(&g->model_bytes);
    out->model_len = g->model_bytes.len;
    out->train_config = dup_bytes(&g->train_config);
    out->train_config_len = g->train_config.len;
    out->checkpoint_path = ty_strdup(g->checkpoint_path ? g->checkpoint_path : "");
    out->bucket_mb = g->bucket_mb;
  }
  trainyard__launch_task_request__free_unpacked(m, NULL);
  return 0;
}

void ty__graph_launch_close(ty__graph_launch *g) {
  if (!g) return;
  free(g->model_path);
  free(g->model_bytes);
  free(g->train_config);
  free(g->checkpoint_path);
  memset(g, 0, sizeof *g);
}

int ty__encode_progress(const ty__train_progress *p, uint8_t **out, size_t *out_len) {
  Trainyard__ReportProgressRequest r = TRAINYARD__REPORT_PROGRESS_REQUEST__INIT;
  Trainyard__TrainProgress tp = TRAINYARD__TRAIN_PROGRESS__INIT;
  r.job_id = p->job_id;
  r.rank = p->rank;
  tp.step = p->step;
  tp.total_steps = p->total_steps;
  tp.loss = p->loss;
  tp.samples_per_s = p->samples_per_s;
  tp.time_ms = p->time_ms;
  tp.checkpoint_step = p->checkpoint_step;
  tp.checkpoint_path = (char *)(p->checkpoint_path ? p->checkpoint_path : "");
  tp.test_accuracy = p->test_accuracy;
  tp.epoch = p->epoch;
  r.progress = &tp;
  size_t n = trainyard__report_progress_request__get_packed_size(&r);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return TY_ENOMEM;
  *out_len = trainyard__report_progress_request__pack(&r, buf);
  *out = buf;
  return 0;
}
