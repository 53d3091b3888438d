/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GPU suite: a training step of the example MLP, CNN, ResNet and GPT (forward,
 * the builtin loss, backward) on the GPU executor matches the CPU executor:
 * the loss and every parameter's gradient, to 1e-4 of the gradient's
 * largest element (1e-3 for the ResNet's and the GPT's normalisations). Two steps,
 * with an SGD update of the weights on the host between them, so the second
 * step runs on re-uploaded weights as a trainer's does. cuBLAS, cuDNN
 * (convolution, pooling, batch normalisation), the generated regions and
 * the loss kernel all run; a step a launcher declines runs on the CPU and
 * is printed. A label outside the classes fails the GPU step naming the row.
 *
 * TY_MODELS_DIR (set by meson) holds the generated example models. Exits
 * 77 (skipped) where no GPU is visible or the models were not generated.
 */
#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/cuda/cuda.h"
#include "ops/cuda/exec.h"
#include "ops/exec.h"
#include "ops/graph.h"
#include "ops/train/train.h"
#include "tests/gpu/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BATCH 16
#define CLASSES 10 /* both example models classify Fashion-MNIST */

typedef struct model {
  ty_graph *g;
  int loss;
  int params[64], grads[64];
  size_t np;
  ty_tensor *weights[64]; /* the host weights both executors are bound to */
  ty_tensor *inputs[8];
  int input_ids[8];
  size_t n_inputs;
} model;

/* The training graph: model + builtin loss + backward of each float weight. */
static void load(const char *dir, const char *name, model *m) {
  char path[512], err[512] = "";
  ty_graph *onnx = NULL;
  snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
  CHECK(ty_graph_load_file(path, err, sizeof err, &onnx) == 0, "%s: %s", path, err);
  ty_train_config c;
  snprintf(path, sizeof path, "%s/%s.config.pb", dir, name);
  CHECK(ty_train_config_load(path, &c, err, sizeof err) == 0, "%s", err);
  CHECK(ty_train_plan_graph(onnx, &c, false, &m->g, err, sizeof err) == 0, "%s: %s", name, err);
  ty_train_config_close(&c);
  ty_graph_destroy(onnx);
  m->loss = TY_NO_VALUE;
  for (size_t i = 0; i < ty_graph_n_outputs(m->g); i++) {
    const ty_graph_value *v = ty_graph_value_at(m->g, ty_graph_output(m->g, i));
    if (v->dtype == TY_DTYPE_F32 && ty_shape_numel(&v->shape) == 1)
      m->loss = ty_graph_output(m->g, i);
  }
  CHECK(m->loss != TY_NO_VALUE, "%s: no scalar loss", name);
  for (size_t i = 0; i < ty_graph_n_initializers(m->g) && m->np < 64; i++) {
    int id = ty_graph_initializer(m->g, i);
    const ty_graph_value *v = ty_graph_value_at(m->g, id);
    if (v->dtype != TY_DTYPE_F32 || v->shape.rank == 0) continue;
    m->params[m->np] = id;
    CHECK(ty_tensor_create_from(TY_DTYPE_F32, &v->init->shape, v->init->data, v->init->nbytes,
                                &m->weights[m->np]) == 0,
          "weights");
    m->np++;
  }
  CHECK(ty_autodiff(m->g, m->loss, m->params, m->np, m->grads, err, sizeof err) == 0, "%s: %s",
        name, err);
}

/* Inputs of BATCH samples: floats in [-1, 1), labels in [0, CLASSES). */
static void make_inputs(model *m) {
  ty_rng rng = ty_rng_make(11);
  for (size_t i = 0; i < ty_graph_n_inputs(m->g) && i < 8; i++) {
    int id = ty_graph_input(m->g, i);
    const ty_graph_value *v = ty_graph_value_at(m->g, id);
    ty_shape s = v->shape;
    for (int d = 0; d < s.rank; d++)
      if (s.dims[d] < 0) s.dims[d] = BATCH;
    ty_tensor *t = NULL;
    CHECK(ty_tensor_create(v->dtype, &s, &t) == 0, "input %s", v->name);
    for (int64_t e = 0; e < ty_shape_numel(&s); e++) {
      if (v->dtype == TY_DTYPE_I64)
        ((int64_t *)t->data)[e] = (int64_t)(ty_rng_uniform(&rng) * CLASSES) % CLASSES;
      else
        ((float *)t->data)[e] = ty_rng_uniform(&rng) * 2.0f - 1.0f;
    }
    m->inputs[m->n_inputs] = t;
    m->input_ids[m->n_inputs++] = id;
  }
}

static void bind_cpu(model *m, ty_exec *cpu) {
  char err[512];
  for (size_t i = 0; i < m->np; i++)
    CHECK(ty_exec_bind_id(cpu, m->params[i], m->weights[i], err, sizeof err) == 0, "%s", err);
  for (size_t i = 0; i < m->n_inputs; i++)
    CHECK(ty_exec_bind_id(cpu, m->input_ids[i], m->inputs[i], err, sizeof err) == 0, "%s", err);
}

static void bind_gpu(model *m, ty_cuda_exec *gpu) {
  char err[512];
  for (size_t i = 0; i < m->np; i++)
    CHECK(ty_cuda_exec_bind_id(gpu, m->params[i], m->weights[i], err, sizeof err) == 0, "%s", err);
  for (size_t i = 0; i < m->n_inputs; i++)
    CHECK(ty_cuda_exec_bind_id(gpu, m->input_ids[i], m->inputs[i], err, sizeof err) == 0, "%s",
          err);
}

/* want and got agree to tol of want's largest element. */
static void compare(const char *what, const ty_tensor *want, const ty_tensor *got, float tol) {
  CHECK(want && got, "%s: missing (cpu %p gpu %p)", what, (const void *)want, (const void *)got);
  CHECK(ty_shape_equal(&want->shape, &got->shape), "%s: shapes differ", what);
  const float *w = want->data, *g = got->data;
  int64_t n = ty_tensor_numel(want);
  float scale = 1e-6f;
  for (int64_t i = 0; i < n; i++)
    scale = fmaxf(scale, fabsf(w[i]));
  for (int64_t i = 0; i < n; i++)
    CHECK(fabsf(w[i] - g[i]) <= tol * scale, "%s element %lld: gpu %g cpu %g (largest %g)", what,
          (long long)i, g[i], w[i], scale);
}

/* Two steps on both executors with an SGD update in between; gradients
 * to tol of each one's largest element. */
static void check_model(const char *dir, const char *name, float tol) {
  char probe[512];
  snprintf(probe, sizeof probe, "%s/%s.onnx", dir, name);
  if (access(probe, R_OK) != 0) { /* gpt.onnx needs python3-torch at build time */
    printf("%s: not generated, not checked\n", name);
    return;
  }
  model m = {0};
  char err[512] = "", sum[2048];
  load(dir, name, &m);
  make_inputs(&m);
  ty_exec *cpu = NULL;
  ty_cuda_exec *gpu = NULL;
  ty_exec_opts co = {.training = true, .keep_values = m.grads, .n_keep_values = m.np};
  ty_cuda_exec_opts go = {.training = true, .keep_values = m.grads, .n_keep_values = m.np};
  CHECK(ty_exec_create(m.g, &co, &cpu) == 0, "cpu executor");
  CHECK(ty_cuda_exec_create(m.g, &go, &gpu, err, sizeof err) == 0, "%s: %s", name, err);
  CHECK(ty_cuda_plan_summary(ty_cuda_exec_get_plan(gpu), m.g, sum, sizeof sum) == 0, "summary");
  printf("%s: %s\n", name, sum);
  bind_cpu(&m, cpu);
  bind_gpu(&m, gpu);
  /* Only weights can stay on the device across runs. */
  CHECK(ty_cuda_exec_bind_resident(gpu, m.input_ids[0], m.inputs[0], err, sizeof err) ==
                TY_EINVAL &&
            strstr(err, "a graph input cannot be resident"),
        "%s: resident input: %s", name, err);
  for (int step = 0; step < 2; step++) {
    CHECK(ty_exec_run(cpu, err, sizeof err) == 0, "%s cpu: %s", name, err);
    CHECK(ty_cuda_exec_run(gpu, err, sizeof err) == 0, "%s gpu: %s", name, err);
    char what[256];
    snprintf(what, sizeof what, "%s step %d loss", name, step);
    compare(what, ty_exec_value(cpu, m.loss), ty_cuda_exec_value(gpu, m.loss), 1e-5f);
    for (size_t p = 0; p < m.np; p++) {
      snprintf(what, sizeof what, "%s step %d gradient of \"%s\"", name, step,
               ty_graph_value_at(m.g, m.params[p])->name);
      const ty_tensor *want = ty_exec_value(cpu, m.grads[p]);
      compare(what, want, ty_cuda_exec_value(gpu, m.grads[p]), tol);
      float *w = m.weights[p]->data; /* SGD on the host, as the trainer does */
      for (int64_t i = 0; i < ty_tensor_numel(want); i++)
        w[i] -= 0.1f * ((const float *)want->data)[i];
    }
    printf("%s step %d: loss %g, %zu gradients: gpu == cpu\n", name, step,
           ty_tensor_f32(ty_exec_value(cpu, m.loss))[0], m.np);
  }
  ty_cuda_exec_stats st;
  ty_cuda_exec_get_stats(gpu, &st);
  printf("%s: %zu steps (%zu gpu, %zu cpu, %zu host), %llu declined%s%s, %llu B up, %llu B down, "
         "peak %zu B on the device\n",
         name, st.steps, st.gpu_steps, st.cpu_steps, st.host_steps, (unsigned long long)st.declined,
         st.declined ? ": " : "", st.last_declined, (unsigned long long)st.h2d_bytes,
         (unsigned long long)st.d2h_bytes, st.dev_peak_bytes);
  /* A bad label fails the GPU step, naming the row (the classifiers: the
   * GPT's token ids share the value range). */
  if (!strcmp(name, "gpt")) goto done;
  for (size_t i = 0; i < m.n_inputs; i++)
    if (m.inputs[i]->dtype == TY_DTYPE_I64) ((int64_t *)m.inputs[i]->data)[3] = CLASSES + 2;
  CHECK(ty_cuda_exec_run(gpu, err, sizeof err) != 0, "%s: a label of %d ran", name, CLASSES + 2);
  CHECK(strstr(err, "label of row 3 is outside [0, 10)"), "%s: %s", name, err);
done:
  ty_cuda_exec_destroy(gpu);
  ty_exec_destroy(cpu);
  for (size_t i = 0; i < m.np; i++)
    ty_tensor_destroy(m.weights[i]);
  for (size_t i = 0; i < m.n_inputs; i++)
    ty_tensor_destroy(m.inputs[i]);
  ty_graph_destroy(m.g);
}

int main(void) {
  const char *dir = getenv("TY_MODELS_DIR");
  char path[512];
  if (ty_cuda_device_count() == 0) {
    printf("no CUDA device on this machine: skipped\n");
    return 77;
  }
  snprintf(path, sizeof path, "%s/mlp.onnx", dir ? dir : ".");
  if (!dir || access(path, R_OK) != 0) {
    printf("no example models (python3-onnx at build time): skipped\n");
    return 77;
  }
  check_model(dir, "mlp", 1e-4f);
  check_model(dir, "cnn", 1e-4f);
  /* BatchNormalization's and LayerNormalization's gradients subtract
   * means (cancellation), the GPT's embedding sums with atomics: 1e-3. */
  check_model(dir, "resnet", 1e-3f);
  check_model(dir, "gpt", 1e-3f);
  return 0;
}
