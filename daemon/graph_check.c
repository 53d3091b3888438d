/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Submit-time checks of a graph job with the training runtime itself: the
 * model is imported and shape-inferred by ops/graph, the TrainConfig decoded
 * and validated by ops/train, and the config's names looked up in the
 * model. Kept apart from graph.c because ops/ and the controller both name
 * a type ty_cluster_node; this file sees only daemon/job.h of the controller.
 */
#include "daemon/graph_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "ops/graph.h"
#include "ops/train/train.h"

/* ---- submit-time checks -------------------------------------------------------- */

static int check_names(const ty_graph *m, const ty_train_config *c, char *err, size_t len) {
  const char *din = c->data_input;
  if (!din && ty_graph_n_inputs(m) >= 1) din = ty_graph_value_at(m, ty_graph_input(m, 0))->name;
  int id = din ? ty_graph_find_value(m, din) : TY_NO_VALUE;
  if (id == TY_NO_VALUE || !ty_graph_value_at(m, id)->is_input)
    return ty_errf(err, len, TY_EINVAL, "job.graph.train_config: data_input \"%s\" is not an input of the model", din ? din : "");
  const char *out = c->loss_output ? c->loss_output : c->logits_output;
  id = out ? ty_graph_find_value(m, out) : TY_NO_VALUE;
  if (id == TY_NO_VALUE || !ty_graph_value_at(m, id)->is_output)
    return ty_errf(err, len, TY_EINVAL, "job.graph.train_config: %s \"%s\" is not an output of the model",
             c->loss_output ? "loss_output" : "softmax_cross_entropy.logits_output", out ? out : "");
  return 0;
}

int ty__graph_check(const ty_job_spec *s, char *err, size_t err_len) {
  char inner[TY_ERR_LEN] = "";
  ty_graph *m = NULL;
  bool by_path = s->model_path && s->model_path[0];
  int rc = by_path ? ty_graph_load_file(s->model_path, inner, sizeof inner, &m)
                   : ty_graph_load_bytes(s->model_bytes, s->model_len, inner, sizeof inner, &m);
  if (rc != 0)
    return ty_errf(err, err_len, TY_EINVAL, "job.graph.%s: %s",
                   by_path ? "model_path" : "model_bytes", inner[0] ? inner : ty_strerror(rc));
  ty_train_config c;
  rc = ty_train_config_decode(s->train_config, s->train_config_len, &c, inner, sizeof inner);
  if (rc != 0) {
    ty_graph_destroy(m);
    return ty_errf(err, err_len, TY_EINVAL, "job.graph.train_config: %s",
                   inner[0] ? inner : ty_strerror(rc));
  }
  rc = check_names(m, &c, err, err_len);
  uint32_t world = s->nodes * s->tasks_per_node;
  if (rc == 0 && world && c.batch_size % world != 0)
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "job.graph.train_config: batch_size %u is not divisible by the %u ranks "
                 "(%u nodes x %u tasks)",
                 c.batch_size, world, s->nodes, s->tasks_per_node);
  ty_train_config_close(&c);
  ty_graph_destroy(m);
  return rc;
}

char *ty__graph_config_checkpoint(const uint8_t *cfg, size_t len) {
  ty_train_config c;
  char inner[TY_ERR_LEN];
  if (ty_train_config_decode(cfg, len, &c, inner, sizeof inner) != 0) return NULL;
  char *path = c.checkpoint_path ? ty_strdup(c.checkpoint_path) : NULL;
  ty_train_config_close(&c);
  return path;
}
