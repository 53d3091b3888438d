/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train's device choice: a DEVICE_GPU job trains on the GPU executor
 * where the build has it and a GPU is visible, and otherwise on the CPU
 * executor saying why, once. Either way its weights after 20 steps match
 * a CPU job's of the same config: exactly on the CPU, to 1e-3 of each
 * tensor's largest weight on a GPU (where the weights and the SGD momentum
 * stay on the device and come back through ty_train_steps' sync).
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/synth.h"

#ifdef TY_HAVE_CUDA_EXEC
#include "ops/cuda/cuda.h"
#endif

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void setup(void) {
  synth_blob_files("", 128, 1);
}

TestSuite(device, .init = setup, .fini = synth_cleanup);

static bool gpu_expected(void) {
#ifdef TY_HAVE_CUDA_EXEC
  return ty_cuda_device_count() > 0;
#else
  return false;
#endif
}

/* 20 steps of the synthetic MLP with config c and log (both borrowed by
 * the trainer; config.gpu = gpu); the log's text in *log_text. */
static ty_train *train(const ty_graph *g, ty_train_config *c, FILE *log, bool gpu,
                       char **log_text) {
  synth_config(c, 20, false);
  c->gpu = gpu;
  ty_train *t = synth_trainer(g, c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, 20, err, sizeof err), 0, "%s", err);
  *log_text = synth_log_text(log);
  return t;
}

Test(device, gpu_job_trains_on_the_gpu_or_says_why, .timeout = 120) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  char *gpu_log = NULL, *cpu_log = NULL;
  ty_train_config cg, cc;
  FILE *lg = tmpfile(), *lc = tmpfile();
  ty_train *tg = train(g, &cg, lg, true, &gpu_log), *tc = train(g, &cc, lc, false, &cpu_log);
  if (gpu_expected()) {
    cr_assert(strstr(gpu_log, "GPU executor: GPU: "), "%s", gpu_log);
  } else {
    const char *why = strstr(gpu_log, "device GPU: the training step runs on the CPU executor: ");
    cr_assert(why, "%s", gpu_log);
    cr_assert(strstr(why, "no CUDA device is visible") || strstr(why, "has no GPU executor"), "%s",
              why);
    cr_assert_null(strstr(why + 1, "device GPU:"), "said once: %s", gpu_log);
  }
  cr_assert_null(strstr(cpu_log, "device GPU"), "%s", cpu_log);
  cr_assert_eq(ty_train_n_params(tg), ty_train_n_params(tc));
  for (size_t i = 0; i < ty_train_n_params(tc); i++) {
    const ty_tensor *a = ty_train_param(tg, i), *b = ty_train_param(tc, i);
    const float *x = a->data, *y = b->data;
    float scale = 1e-6f;
    for (int64_t k = 0; k < ty_tensor_numel(b); k++)
      scale = fmaxf(scale, fabsf(y[k]));
    float tol = gpu_expected() ? 1e-3f * scale : 0.0f;
    for (int64_t k = 0; k < ty_tensor_numel(b); k++)
      cr_assert_leq(fabsf(x[k] - y[k]), tol, "%s[%lld]: gpu job %g, cpu job %g",
                    ty_train_param_name(tc, i), (long long)k, x[k], y[k]);
  }
  free(gpu_log);
  free(cpu_log);
  ty_train_destroy(tg);
  ty_train_destroy(tc);
  ty_train_config_close(&cg);
  ty_train_config_close(&cc);
  fclose(lg);
  fclose(lc);
  ty_graph_destroy(g);
}
