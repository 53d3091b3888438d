/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The graph-job parts of a GetJobResponse (progress, checkpoints) for
 * `trainctl show`, `watch` and `checkpoint ls`. Pure, like convert.c.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "proto/convert.h"

static int decode_job(const Trainyard__JobInfo *j, ty__cli_graph *out) {
  out->state = (int)j->state;
  out->start_ms = j->start_time_ms;
  out->graph = j->spec && j->spec->kind_case == TRAINYARD__JOB__KIND_GRAPH;
  out->reason = ty_wire_strdup(j->reason);
  out->name = ty_wire_strdup(j->spec ? j->spec->name : NULL);
  return out->reason && out->name ? 0 : TY_ENOMEM;
}

static int decode_ckpts(const Trainyard__GetJobResponse *m, ty__cli_graph *out) {
  out->ckpts = ty_wire_calloc(m->n_checkpoints, sizeof *out->ckpts);
  if (!out->ckpts) return TY_ENOMEM;
  for (; out->n_ckpts < m->n_checkpoints; out->n_ckpts++) {
    const Trainyard__CheckpointInfo *c = m->checkpoints[out->n_ckpts];
    ty_checkpoint_info *to = &out->ckpts[out->n_ckpts];
    *to = (ty_checkpoint_info){.step = c->step, .time_ms = c->time_ms,
                               .path = ty_wire_strdup(c->path)};
    if (!to->path) return TY_ENOMEM;
  }
  return 0;
}

int ty__cli_decode_graph(const uint8_t *p, size_t n, ty__cli_graph *out) {
  memset(out, 0, sizeof *out);
  Trainyard__GetJobResponse *m = ty_wire_unpack(&trainyard__get_job_response__descriptor, p, n);
  if (!m) return TY_EPROTO;
  Trainyard__JobInfo none = TRAINYARD__JOB_INFO__INIT;
  int rc = decode_job(m->job ? m->job : &none, out);
  out->has_progress = m->progress != NULL;
  if (rc == 0 && m->progress) rc = ty_proto_decode_progress(m->progress, &out->progress);
  if (rc == 0) rc = decode_ckpts(m, out);
  ty_wire_free(m);
  if (rc != 0) ty__cli_graph_close(out);
  return rc;
}

void ty__cli_graph_close(ty__cli_graph *g) {
  if (!g) return;
  free(g->reason);
  free(g->name);
  free(g->progress.checkpoint_path);
  for (size_t i = 0; g->ckpts && i < g->n_ckpts; i++) free(g->ckpts[i].path);
  free(g->ckpts);
  memset(g, 0, sizeof *g);
}
