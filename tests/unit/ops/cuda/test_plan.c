/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GPU executor's plan without a GPU: for each example model's training
 * graph (forward, loss, backward) every node is in exactly one step, every
 * step comes after the steps producing what it reads, every CPU step says
 * why, and the MLP, CNN and ResNet run wholly on the device (cuDNN's
 * convolution, pooling and batch normalisation included), the GPT all
 * but its integer shape arithmetic; for small
 * graphs, a node the executor cannot launch yet (ReduceSum, the loss with
 * log_prob) runs on the CPU naming what is missing, Shape is host metadata
 * and integer arithmetic stays on the host.
 *
 * Paths come from the environment meson sets: TY_MODELS_DIR (the generated
 * example models and configs).
 */
#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/cuda/exec.h"
#include "ops/graph.h"
#include "ops/train/train.h"
#include "tests/unit/ops/cuda/helpers.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Node coverage, dependency order and reasons of plan p over g. */
static void check_plan(const ty_graph *g, const ty_cuda_plan *p, const char *name) {
  size_t nn = ty_graph_n_nodes(g), nv = ty_graph_n_values(g);
  int *covered = calloc(nn + 1, sizeof *covered);
  bool *ready = calloc(nv + 1, sizeof *ready);
  for (size_t i = 0; i < nv; i++) {
    const ty_graph_value *v = ty_graph_value_at(g, (int)i);
    ready[i] = v->producer < 0;
  }
  for (size_t k = 0; k < p->n_steps; k++) {
    const ty_cuda_step *s = &p->steps[k];
    if (s->kind == TY_CUDA_STEP_REGION) {
      const ty_fused_src *r = &p->regions[s->region];
      for (int i = 0; i < r->n_in; i++)
        cr_assert(ready[r->in_ids[i]], "%s: step %zu (%s) reads \"%s\" before it is computed", name,
                  k, r->name, ty_graph_value_at(g, r->in_ids[i])->name);
      for (size_t m = 0; m < r->n_nodes; m++)
        covered[r->nodes[m]]++;
      for (int j = 0; j < r->n_out; j++)
        ready[r->out_ids[j]] = true;
      continue;
    }
    const ty_graph_node *n = ty_graph_node_at(g, s->node);
    for (int i = 0; i < n->n_inputs; i++)
      cr_assert(n->inputs[i] == TY_NO_VALUE || ready[n->inputs[i]],
                "%s: step %zu (%s) reads \"%s\" before it is computed", name, k, ty_op_name(n->op),
                ty_graph_value_at(g, n->inputs[i])->name);
    for (int j = 0; j < n->n_outputs; j++)
      if (n->outputs[j] != TY_NO_VALUE) ready[n->outputs[j]] = true;
    covered[s->node]++;
    if (s->kind == TY_CUDA_STEP_CPU)
      cr_assert(s->why[0], "%s: CPU step %zu without a reason", name, k);
    if (s->kind == TY_CUDA_STEP_GPU)
      cr_assert(s->how && s->how[0], "%s: GPU step without a launcher", name);
  }
  for (size_t i = 0; i < nn; i++)
    cr_assert_eq(covered[i], 1, "%s: node %zu (%s) is in %d steps", name, i,
                 ty_op_name(ty_graph_node_at(g, i)->op), covered[i]);
  cr_assert_eq(p->gpu_nodes + p->host_nodes + p->cpu_nodes, nn, "%s: counts", name);
  free(covered);
  free(ready);
}

Test(cuda_plan, example_models_training_graphs) {
  const char *dir = getenv("TY_MODELS_DIR");
  if (!dir) cr_skip_test("TY_MODELS_DIR not set");
  const char *names[] = {"mlp", "cnn", "resnet", "gpt"};
  size_t found = 0;
  for (size_t m = 0; m < sizeof names / sizeof *names; m++) {
    char path[512], err[512] = "", sum[2048];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, names[m]);
    if (access(path, R_OK) != 0) continue; /* gpt.onnx needs python3-torch at build time */
    found++;
    ty_graph *g = training_graph(dir, names[m]);
    ty_cuda_plan *p = NULL;
    cr_assert_eq(ty_cuda_plan_create(g, NULL, 0, &p, err, sizeof err), 0, "%s: %s", names[m], err);
    check_plan(g, p, names[m]);
    cr_assert_eq(ty_cuda_plan_summary(p, g, sum, sizeof sum), 0);
    cr_log_info("%s: %s", names[m], sum);
    /* MLP: cuBLAS, regions, the loss; CNN and ResNet: cuDNN too. */
    if (strcmp(names[m], "gpt") != 0)
      cr_assert_eq(p->cpu_nodes, 0, "%s runs wholly on the GPU: %s", names[m], sum);
    /* The GPT: every float node too; only integer shape arithmetic stays. */
    for (size_t k = 0; k < p->n_steps; k++) {
      const ty_cuda_step *s = &p->steps[k];
      if (s->kind != TY_CUDA_STEP_CPU) continue;
      const ty_graph_node *n = ty_graph_node_at(g, s->node);
      for (int j = 0; j < n->n_outputs; j++)
        cr_assert(n->outputs[j] == TY_NO_VALUE ||
                      ty_graph_value_at(g, n->outputs[j])->dtype != TY_DTYPE_F32,
                  "%s: a float node on the CPU: %s", names[m], s->why);
    }
    ty_cuda_plan_destroy(p);
    ty_graph_destroy(g);
  }
  if (!found) cr_skip_test("no example models in %s (python3-onnx at build time)", dir);
}

static size_t add_node(ty_graph *g, ty_op op, const int *in, int n_in, const int *out, int n_out) {
  int idx;
  cr_assert_eq(ty_graph_add_node(g, op, NULL, in, n_in, out, n_out, &idx), 0);
  return (size_t)idx;
}

static const ty_cuda_step *step_of(const ty_cuda_plan *p, size_t node) {
  for (size_t k = 0; k < p->n_steps; k++)
    if (p->steps[k].kind != TY_CUDA_STEP_REGION && p->steps[k].node == node) return &p->steps[k];
  return NULL;
}

/* One node of each kind: launched, host metadata, integer arithmetic on
 * the host, placed on the GPU but not launchable yet, and placed on the CPU. */
Test(cuda_plan, where_each_node_runs_and_why) {
  ty_graph *g = NULL;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[2] = {4, 8}, wd[2] = {8, 10}, ld[1] = {4}, gd[1] = {10};
  int x = add_value(g, "x", TY_DTYPE_F32, 2, xd), w = add_value(g, "w", TY_DTYPE_F32, 2, wd);
  int gamma = add_value(g, "gamma", TY_DTYPE_F32, 1, gd);
  ty_graph_mark_input(g, gamma);
  int lab = add_value(g, "lab", TY_DTYPE_I64, 1, ld);
  ty_graph_mark_input(g, x);
  ty_graph_mark_input(g, w);
  ty_graph_mark_input(g, lab);
  int m = add_value(g, "m", TY_DTYPE_F32, -1, NULL),
      sh = add_value(g, "sh", TY_DTYPE_I64, -1, NULL);
  int sh2 = add_value(g, "sh2", TY_DTYPE_I64, -1, NULL),
      ln = add_value(g, "ln", TY_DTYPE_F32, -1, NULL);
  int loss = add_value(g, "loss", TY_DTYPE_F32, -1, NULL),
      lp = add_value(g, "lp", TY_DTYPE_F32, -1, NULL);
  int loss2 = add_value(g, "loss2", TY_DTYPE_F32, -1, NULL),
      st = add_value(g, "st", TY_DTYPE_F32, -1, NULL);
  int cat = add_value(g, "cat", TY_DTYPE_F32, -1, NULL);
  size_t n_mm = add_node(g, TY_OP_MATMUL, (int[]){x, w}, 2, &m, 1);
  size_t n_shape = add_node(g, TY_OP_SHAPE, &m, 1, &sh, 1);
  size_t n_add = add_node(g, TY_OP_ADD, (int[]){sh, sh}, 2, &sh2, 1);
  size_t n_ln = add_node(g, TY_OP_LAYER_NORM, (int[]){m, gamma}, 2, &ln, 1);
  size_t n_ce = add_node(g, TY_OP_SOFTMAX_CE_LOSS, (int[]){m, lab}, 2, &loss, 1);
  size_t n_ce2 = add_node(g, TY_OP_SOFTMAX_CE_LOSS, (int[]){ln, lab}, 2, (int[]){loss2, lp}, 2);
  size_t n_std = add_node(g, TY_OP_ATAN, &ln, 1, &st, 1);
  size_t n_cat = add_node(g, TY_OP_REDUCE_SUM, &m, 1, &cat, 1);
  int outs[] = {sh2, loss, loss2, lp, st, cat};
  for (size_t i = 0; i < sizeof outs / sizeof *outs; i++)
    ty_graph_mark_output(g, outs[i]);
  char err[512] = "", sum[1024];
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  ty_cuda_plan *p = NULL;
  cr_assert_eq(ty_cuda_plan_create(g, NULL, 0, &p, err, sizeof err), 0, "%s", err);
  check_plan(g, p, "small");
  const ty_cuda_step *s = step_of(p, n_mm);
  cr_assert(s && s->kind == TY_CUDA_STEP_GPU && !strcmp(s->how, "cuBLAS"));
  s = step_of(p, n_ce);
  cr_assert(s && s->kind == TY_CUDA_STEP_GPU && !strcmp(s->how, "cross_entropy.cu"));
  s = step_of(p, n_shape);
  cr_assert(s && s->kind == TY_CUDA_STEP_HOST, "Shape is host metadata");
  s = step_of(p, n_add);
  cr_assert(s && s->kind == TY_CUDA_STEP_CPU && strstr(s->why, "Add on INT64"), "%s",
            s ? s->why : "no step");
  s = step_of(p, n_ln);
  cr_assert(s && s->kind == TY_CUDA_STEP_GPU && !strcmp(s->how, "layer_norm.cu"));
  s = step_of(p, n_cat);
  cr_assert(s && s->kind == TY_CUDA_STEP_CPU, "ReduceSum has no launcher yet");
  cr_assert(strstr(s->why, "ReduceSum: the executor has no launcher for reduce.cu yet"), "%s",
            s->why);
  s = step_of(p, n_ce2);
  cr_assert(s && s->kind == TY_CUDA_STEP_CPU && strstr(s->why, "no launcher for cross_entropy.cu"),
            "the loss with log_prob: %s", s ? s->why : "no step");
  bool atan_on_gpu = false; /* Atan is elementwise: a region of one when ops/fusion takes it */
  for (size_t k = 0; k < p->n_steps; k++)
    if (p->steps[k].kind == TY_CUDA_STEP_REGION)
      for (size_t i = 0; i < p->regions[p->steps[k].region].n_nodes; i++)
        atan_on_gpu |= p->regions[p->steps[k].region].nodes[i] == n_std;
  if (!atan_on_gpu) cr_assert(step_of(p, n_std) && step_of(p, n_std)->why[0]);
  cr_assert_eq(ty_cuda_plan_summary(p, g, sum, sizeof sum), 0);
  cr_assert(strstr(sum, "GPU: ") && strstr(sum, "host: 1; CPU: "), "%s", sum);
  char tiny[30];
  cr_assert_eq(ty_cuda_plan_summary(p, g, tiny, sizeof tiny), 0);
  cr_assert(strlen(tiny) == sizeof tiny - 1 && strstr(tiny, "..."), "%s", tiny);
  cr_assert_eq(ty_cuda_plan_summary(p, g, tiny, 0), TY_EINVAL);
  ty_cuda_plan_destroy(p);
  ty_graph_destroy(g);
}

/* cuDNN's path takes 2-D images: a 1-D Conv (and its gradient) stays on
 * the CPU saying so; a 2-D one and a [N, C] BatchNormalization go to cuDNN. */
Test(cuda_plan, cudnn_takes_2d_images) {
  ty_graph *g = NULL;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t x1[3] = {2, 3, 16}, w1[3] = {4, 3, 3}, x2[4] = {2, 3, 8, 8}, w2[4] = {4, 3, 3, 3};
  int64_t bd[2] = {2, 3}, cd[1] = {3};
  int a = add_value(g, "a", TY_DTYPE_F32, 3, x1), wa = add_value(g, "wa", TY_DTYPE_F32, 3, w1);
  int b = add_value(g, "b", TY_DTYPE_F32, 4, x2), wb = add_value(g, "wb", TY_DTYPE_F32, 4, w2);
  int v = add_value(g, "v", TY_DTYPE_F32, 2, bd);
  int bn_in[5];
  const char *bn_names[4] = {"scale", "bias", "mean", "var"};
  bn_in[0] = v;
  for (int i = 0; i < 4; i++)
    bn_in[i + 1] = add_value(g, bn_names[i], TY_DTYPE_F32, 1, cd);
  int ins[] = {a, wa, b, wb, v, bn_in[1], bn_in[2], bn_in[3], bn_in[4]};
  for (size_t i = 0; i < sizeof ins / sizeof *ins; i++)
    ty_graph_mark_input(g, ins[i]);
  int ya = add_value(g, "ya", TY_DTYPE_F32, -1, NULL),
      yb = add_value(g, "yb", TY_DTYPE_F32, -1, NULL);
  int yv = add_value(g, "yv", TY_DTYPE_F32, -1, NULL);
  size_t n1 = add_node(g, TY_OP_CONV, (int[]){a, wa}, 2, &ya, 1);
  size_t n2 = add_node(g, TY_OP_CONV, (int[]){b, wb}, 2, &yb, 1);
  size_t n3 = add_node(g, TY_OP_BATCH_NORM, bn_in, 5, &yv, 1);
  ty_graph_mark_output(g, ya);
  ty_graph_mark_output(g, yb);
  ty_graph_mark_output(g, yv);
  char err[512] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  ty_cuda_plan *p = NULL;
  cr_assert_eq(ty_cuda_plan_create(g, NULL, 0, &p, err, sizeof err), 0, "%s", err);
  check_plan(g, p, "convs");
  const ty_cuda_step *s = step_of(p, n1);
#ifdef TY_HAVE_CUDNN
  cr_assert(s && s->kind == TY_CUDA_STEP_CPU &&
                strstr(s->why, "Conv on a rank-3 input: the cuDNN path takes 2-D images"),
            "%s", s ? s->why : "no step");
  s = step_of(p, n2);
  cr_assert(s && s->kind == TY_CUDA_STEP_GPU && !strcmp(s->how, "cuDNN"));
  s = step_of(p, n3);
  cr_assert(s && s->kind == TY_CUDA_STEP_GPU && !strcmp(s->how, "cuDNN"));
#else
  cr_assert(s && s->kind == TY_CUDA_STEP_CPU && strstr(s->why, "this build has no cuDNN"));
  (void)n2;
  (void)n3;
#endif
  ty_cuda_plan_destroy(p);
  ty_graph_destroy(g);
}
