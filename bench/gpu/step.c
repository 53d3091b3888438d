/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Training step time of the example models, GPU executor vs CPU executor,
 * side by side in one run (bench/gpu/run.sh prints the rows):
 *
 *   gpu_step MODELS_DIR [STEPS]
 *
 * A step is what trainrun's step runs on each executor: forward, the
 * builtin loss and backward of the training graph, then every gradient
 * read on the host (the optimizer runs there on both paths, so it is left
 * out). Inputs are random (features in [-1, 1), integers in [0, 10): class
 * labels, and token ids the GPT example's vocabulary holds), at each
 * config's batch size. Three warm-up steps, then the mean over STEPS
 * (default 20). The CPU executor uses every CPU of this process' affinity.
 * Prints markdown rows | metric | value | reference | ratio |; exits 77
 * without a GPU.
 */
#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/cuda/cuda.h"
#include "ops/cuda/exec.h"
#include "ops/exec.h"
#include "ops/graph.h"
#include "ops/train/train.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct bench_model {
  ty_graph *g;
  int grads[256];
  size_t np;
  uint32_t batch;
  ty_tensor *inputs[8];
  int input_ids[8];
  size_t n_inputs;
} bench_model;

static void die(const char *what, const char *err) {
  fprintf(stderr, "gpu_step: %s: %s\n", what, err);
  exit(1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* model + builtin loss + backward of its rank > 0 float initializers. */
static bool load(const char *dir, const char *name, bench_model *m) {
  char path[512], err[TY_ERR_LEN];
  ty_graph *onnx = NULL;
  ty_train_config c;
  snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
  if (access(path, R_OK) != 0) return false;
  if (ty_graph_load_file(path, err, sizeof err, &onnx) != 0) die(path, err);
  snprintf(path, sizeof path, "%s/%s.config.pb", dir, name);
  if (ty_train_config_load(path, &c, err, sizeof err) != 0) die(path, err);
  if (ty_train_plan_graph(onnx, &c, false, &m->g, err, sizeof err) != 0) die(name, err);
  m->batch = c.batch_size ? c.batch_size : 64;
  ty_train_config_close(&c);
  ty_graph_destroy(onnx);
  int loss = TY_NO_VALUE, params[256];
  for (size_t i = 0; i < ty_graph_n_outputs(m->g); i++)
    if (ty_shape_numel(&ty_graph_value_at(m->g, ty_graph_output(m->g, i))->shape) == 1)
      loss = ty_graph_output(m->g, i);
  for (size_t i = 0; i < ty_graph_n_initializers(m->g) && m->np < 256; i++) {
    const ty_graph_value *v = ty_graph_value_at(m->g, ty_graph_initializer(m->g, i));
    if (v->dtype == TY_DTYPE_F32 && v->shape.rank > 0)
      params[m->np++] = ty_graph_initializer(m->g, i);
  }
  if (ty_autodiff(m->g, loss, params, m->np, m->grads, err, sizeof err) != 0) die(name, err);
  return true;
}

static void make_inputs(bench_model *m) {
  ty_rng rng = ty_rng_make(3);
  for (size_t i = 0; i < ty_graph_n_inputs(m->g) && i < 8; i++) {
    int id = ty_graph_input(m->g, i);
    const ty_graph_value *v = ty_graph_value_at(m->g, id);
    ty_shape s = v->shape;
    for (int d = 0; d < s.rank; d++)
      if (s.dims[d] < 0) s.dims[d] = m->batch;
    ty_tensor *t = NULL;
    if (ty_tensor_create(v->dtype, &s, &t) != 0) die(v->name, "no memory");
    for (int64_t e = 0; e < ty_shape_numel(&s); e++) {
      if (v->dtype == TY_DTYPE_I64)
        ((int64_t *)t->data)[e] = (int64_t)(ty_rng_uniform(&rng) * 10) % 10;
      else
        ((float *)t->data)[e] = ty_rng_uniform(&rng) * 2.0f - 1.0f;
    }
    m->inputs[m->n_inputs] = t;
    m->input_ids[m->n_inputs++] = id;
  }
}

static double time_cpu(bench_model *m, int steps, ty_workers *w) {
  char err[TY_ERR_LEN];
  ty_exec *e = NULL;
  ty_exec_opts o = {
      .training = true, .keep_values = m->grads, .n_keep_values = m->np, .workers = w};
  if (ty_exec_create(m->g, &o, &e) != 0) die("cpu executor", "create");
  for (size_t i = 0; i < m->n_inputs; i++)
    if (ty_exec_bind_id(e, m->input_ids[i], m->inputs[i], err, sizeof err) != 0) die("bind", err);
  double t0 = 0;
  for (int s = 0; s < steps + 3; s++) {
    if (s == 3) t0 = now_s();
    if (ty_exec_run(e, err, sizeof err) != 0) die("cpu step", err);
    for (size_t p = 0; p < m->np; p++)
      if (!ty_exec_value(e, m->grads[p])) die("cpu step", "a gradient is missing");
  }
  double ms = (now_s() - t0) * 1000.0 / steps;
  ty_exec_destroy(e);
  return ms;
}

static double time_gpu(bench_model *m, int steps, char *plan, size_t plan_len) {
  char err[TY_ERR_LEN];
  ty_cuda_exec *e = NULL;
  ty_cuda_exec_opts o = {.training = true, .keep_values = m->grads, .n_keep_values = m->np};
  if (ty_cuda_exec_create(m->g, &o, &e, err, sizeof err) != 0) die("gpu executor", err);
  ty_cuda_plan_summary(ty_cuda_exec_get_plan(e), m->g, plan, plan_len);
  for (size_t i = 0; i < m->n_inputs; i++)
    if (ty_cuda_exec_bind_id(e, m->input_ids[i], m->inputs[i], err, sizeof err) != 0)
      die("bind", err);
  double t0 = 0;
  for (int s = 0; s < steps + 3; s++) {
    if (s == 3) t0 = now_s();
    if (ty_cuda_exec_run(e, err, sizeof err) != 0) die("gpu step", err);
    for (size_t p = 0; p < m->np; p++)
      if (!ty_cuda_exec_value(e, m->grads[p])) die("gpu step", "a gradient is missing");
  }
  double ms = (now_s() - t0) * 1000.0 / steps;
  ty_cuda_exec_destroy(e);
  return ms;
}

static int cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: gpu_step MODELS_DIR [STEPS]\n");
    return 2;
  }
  if (ty_cuda_device_count() == 0) {
    printf("no GPU\n");
    return 77;
  }
  int steps = argc == 3 ? atoi(argv[2]) : 20;
  if (steps < 1) steps = 1;
  ty_workers *w = NULL;
  if (ty_workers_create(cpus(), &w) != 0) die("threads", "cannot start");
  const char *names[] = {"mlp", "cnn", "gpt"};
  for (size_t i = 0; i < 3; i++) {
    bench_model m = {0};
    if (!load(argv[1], names[i], &m)) continue;
    make_inputs(&m);
    char plan[1024] = "";
    double gpu = time_gpu(&m, steps, plan, sizeof plan);
    double cpu = time_cpu(&m, steps, w);
    printf("| %s training step (batch %u), GPU executor vs CPU executor (%d threads), ms | %.2f | "
           "%.2f | %.1fx |\n",
           names[i], m.batch, cpus(), gpu, cpu, gpu > 0 ? cpu / gpu : 0);
    fprintf(stderr, "%s plan: %s\n", names[i], plan);
    for (size_t k = 0; k < m.n_inputs; k++)
      ty_tensor_destroy(m.inputs[k]);
    ty_graph_destroy(m.g);
  }
  ty_workers_destroy(w);
  return 0;
}
