/* SPDX-License-Identifier: Apache-2.0 */
#include "tests/unit/ops/train/helpers.h"

#include "lib/base/base.h"
#include "proto/train_config.pb-c.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool have_fashion_mnist(void) {
  return access(FMNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0;
}

static int param(ty_graph *g, const char *name, int rank, const int64_t *dims, int fan_in,
                 uint64_t *rng) {
  ty_shape s = ty_shape_make(rank, dims);
  ty_tensor *t;
  int id;
  ty_tensor_create(TY_DTYPE_F32, &s, &t);
  double bound = 1.0 / sqrt((double)fan_in);
  for (int64_t i = 0; i < ty_tensor_numel(t); i++) {
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    ty_tensor_f32(t)[i] = (float)((2.0 * (double)(*rng >> 11) / 9007199254740992.0 - 1.0) * bound);
  }
  ty_graph_add_value(g, name, TY_DTYPE_F32, &s, &id);
  ty_graph_set_initializer(g, id, t);
  return id;
}

static int linear(ty_graph *g, const char *name, int x, int in, int out, const char *out_name,
                  uint64_t *rng) {
  char wn[64], bn[64];
  snprintf(wn, sizeof wn, "%s.weight", name);
  snprintf(bn, sizeof bn, "%s.bias", name);
  int w = param(g, wn, 2, (int64_t[]){out, in}, in, rng),
      b = param(g, bn, 1, (int64_t[]){out}, in, rng), y, idx;
  ty_graph_add_value(g, out_name, TY_DTYPE_INVALID, NULL, &y);
  ty_graph_add_node(g, TY_OP_GEMM, name, (int[]){x, w, b}, 3, &y, 1, &idx);
  ty_graph_node_set_int(g, (size_t)idx, "transB", 1);
  return y;
}

ty_graph *make_mlp(int hidden, uint64_t seed) {
  return make_mlp_act(hidden, seed, TY_OP_RELU);
}

ty_graph *make_mlp_act(int hidden, uint64_t seed, ty_op act) {
  ty_graph *g;
  uint64_t rng = seed;
  ty_graph_create(&g);
  ty_graph_set_opset(g, 13);
  ty_shape xs = ty_shape_make(2, (int64_t[]){TY_DIM_BATCH, 784});
  int x, h, r, idx;
  ty_graph_add_value(g, "x", TY_DTYPE_F32, &xs, &x);
  ty_graph_mark_input(g, x);
  h = linear(g, "fc1", x, 784, hidden, "fc1.out", &rng);
  ty_graph_add_value(g, "relu1.out", TY_DTYPE_INVALID, NULL, &r);
  ty_graph_add_node(g, act, "relu1", &h, 1, &r, 1, &idx);
  int logits = linear(g, "fc2", r, hidden, 10, "logits", &rng);
  ty_graph_mark_output(g, logits);
  char err[256];
  if (ty_graph_infer_shapes(g, err, sizeof err) != 0) abort();
  return g;
}

/* A node of one output named out_name; returns the output's id. */
static int node1(ty_graph *g, ty_op op, const int *in, int n_in, const char *out_name,
                 int *out_index) {
  int y, idx;
  ty_graph_add_value(g, out_name, TY_DTYPE_INVALID, NULL, &y);
  ty_graph_add_node(g, op, NULL, in, n_in, &y, 1, &idx);
  if (out_index) *out_index = idx;
  return y;
}

static int constant_i64(ty_graph *g, int rank, int64_t len, const int64_t *v) {
  ty_shape s = ty_shape_make(rank, &len);
  ty_tensor *t;
  int idx;
  ty_tensor_create_from(TY_DTYPE_I64, &s, v, (size_t)ty_shape_numel(&s) * 8, &t);
  int id = node1(g, TY_OP_CONSTANT, NULL, 0, NULL, &idx);
  ty_graph_node_set_tensor(g, (size_t)idx, "value", t);
  return id;
}

ty_graph *make_exported_mlp(int hidden, uint64_t seed) {
  ty_graph *g;
  uint64_t rng = seed;
  ty_graph_create(&g);
  ty_graph_set_opset(g, 20);
  ty_shape xs = ty_shape_make(4, (int64_t[]){TY_DIM_BATCH, 1, 28, 28});
  int x, k;
  ty_graph_add_value(g, "x", TY_DTYPE_F32, &xs, &x);
  ty_graph_mark_input(g, x);
  int shape = node1(g, TY_OP_SHAPE, &x, 1, NULL, NULL);
  int n =
      node1(g, TY_OP_GATHER, (int[]){shape, constant_i64(g, 0, 1, (int64_t[]){0})}, 2, NULL, NULL);
  int u =
      node1(g, TY_OP_UNSQUEEZE, (int[]){n, constant_i64(g, 1, 1, (int64_t[]){0})}, 2, NULL, NULL);
  int cat = node1(g, TY_OP_CONCAT, (int[]){u, constant_i64(g, 1, 1, (int64_t[]){-1})}, 2, NULL, &k);
  ty_graph_node_set_int(g, (size_t)k, "axis", 0);
  int flat = node1(g, TY_OP_RESHAPE, (int[]){x, cat}, 2, "flat", NULL);
  int h = linear(g, "fc1", flat, 784, hidden, "fc1.out", &rng);
  int act = node1(g, TY_OP_GELU, &h, 1, "gelu.out", NULL);
  int scale = param(g, "ln.weight", 1, (int64_t[]){hidden}, 1, &rng),
      bias = param(g, "ln.bias", 1, (int64_t[]){hidden}, 1, &rng);
  int ln = node1(g, TY_OP_LAYER_NORM, (int[]){act, scale, bias}, 3, "ln.out", NULL);
  int logits = linear(g, "fc2", ln, hidden, 10, "logits", &rng);
  ty_graph_mark_output(g, logits);
  char err[256];
  if (ty_graph_infer_shapes(g, err, sizeof err) != 0) abort();
  return g;
}

void make_config(ty_train_config *c, uint64_t max_steps, const char *ckpt) {
  memset(c, 0, sizeof *c);
  c->logits_output = ty_strdup("logits");
  c->label_input = ty_strdup("labels");
  c->data_input = ty_strdup("x");
  ty_optim_opts_default(TY_OPTIM_SGD, &c->optim);
  c->optim.momentum = 0.9f;
  c->optim.weight_decay = 1e-4f;
  c->schedule = (ty_lr_schedule){.kind = TY_LR_COSINE, .base_lr = 0.05, .warmup_steps = 20};
  c->batch_size = 64;
  c->max_steps = max_steps;
  c->mean = 0.2860f;
  c->std = 0.3530f;
  c->shuffle = true;
  c->seed = 3;
  c->checkpoint_path = ckpt ? ty_strdup(ckpt) : NULL;
  c->log_interval = 1000000;
  c->fusion = true;
  c->eval_each_epoch = true;
}

uint8_t *pack_config(uint64_t max_steps, uint32_t epochs, const char *ckpt, size_t *out_len) {
  Trainyard__TrainConfig m = TRAINYARD__TRAIN_CONFIG__INIT;
  Trainyard__SoftmaxCrossEntropy sce = TRAINYARD__SOFTMAX_CROSS_ENTROPY__INIT;
  Trainyard__Sgd sgd = TRAINYARD__SGD__INIT;
  sce.logits_output = "logits";
  m.loss_case = TRAINYARD__TRAIN_CONFIG__LOSS_SOFTMAX_CROSS_ENTROPY;
  m.softmax_cross_entropy = &sce;
  sgd.lr = 0.05f;
  sgd.momentum = 0.9f;
  m.optimizer_case = TRAINYARD__TRAIN_CONFIG__OPTIMIZER_SGD;
  m.sgd = &sgd;
  m.data_input = "x";
  m.max_steps = max_steps;
  m.epochs = epochs;
  m.seed = 3;
  m.log_interval = 1;
  if (ckpt) m.checkpoint_path = (char *)ckpt;
  *out_len = trainyard__train_config__get_packed_size(&m);
  uint8_t *buf = malloc(*out_len + 1);
  trainyard__train_config__pack(&m, buf);
  return buf;
}
