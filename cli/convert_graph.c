/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The graph-job parts of a GetJobResponse (progress, checkpoints) for
 * `trainctl show`, `watch` and `checkpoint ls`. Pure, like convert.c.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/graph_cli.h"
#include "lib/base/base.h"
#include "proto/trainyard.pb-c.h"

int ty__cli_decode_graph(const uint8_t *p, size_t n, ty__cli_graph *out) {
  memset(out, 0, sizeof *out);
  Trainyard__GetJobResponse *m = trainyard__get_job_response__unpack(NULL, n, p);
  if (!m) return TY_EPROTO;
  if (m->job) {
    out->state = (int)m->job->state;
    out->reason = ty_strdup(m->job->reason ? m->job->reason : "");
    out->name = ty_strdup(m->job->spec && m->job->spec->name ? m->job->spec->name : "");
    out->start_ms = m->job->start_time_ms;
    out->graph = m->job->spec && m->job->spec->kind_case == TRAINYARD__JOB__KIND_GRAPH;
  }
  if (m->progress) {
    const Trainyard__TrainProgress *g = m->progress;
    out->has_progress = true;
    out->step = g->step;
    out->total_steps = g->total_steps;
    out->loss = g->loss;
    out->samples_per_s = g->samples_per_s;
    out->time_ms = g->time_ms;
    out->checkpoint_step = g->checkpoint_step;
    out->test_accuracy = g->test_accuracy;
    out->epoch = g->epoch;
  }
  out->n_ckpts = m->n_checkpoints;
  out->ckpts = ty_xcalloc(m->n_checkpoints ? m->n_checkpoints : 1, sizeof *out->ckpts);
  for (size_t i = 0; i < m->n_checkpoints; i++) {
    out->ckpts[i].step = m->checkpoints[i]->step;
    out->ckpts[i].time_ms = m->checkpoints[i]->time_ms;
    out->ckpts[i].path = ty_strdup(m->checkpoints[i]->path ? m->checkpoints[i]->path : "");
  }
  trainyard__get_job_response__free_unpacked(m, NULL);
  return 0;
}

void ty__cli_graph_close(ty__cli_graph *g) {
  if (!g) return;
  free(g->reason);
  free(g->name);
  for (size_t i = 0; i < g->n_ckpts; i++) free(g->ckpts[i].path);
  free(g->ckpts);
  memset(g, 0, sizeof *g);
}
