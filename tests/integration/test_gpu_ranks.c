/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DEVICE_GPU data parallelism end to end (issue 17): two trainrun ranks,
 * one GPU each (CUDA_VISIBLE_DEVICES, as a worker sets it), form an NCCL
 * world through a real traind's rendezvous and train the example MLP on
 * the GPU executor, their gradient buckets reduced on the device; the
 * weights end as those of one CPU process (Open MPI path's reference, the
 * same global batch) to 1e-3. A pipelined DEVICE_GPU job (issue 18) sends
 * its stages' activations and gradients with NCCL send/recv and ends as
 * one CPU process too. Skipped, naming why, where this node has fewer
 * than two GPUs. Paths come from meson: TY_TRAINRUN, TY_MLP_ONNX,
 * TY_MLP_CONFIG.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/cuda/cuda.h"
#include "proto/train_config.pb-c.h"
#include "tests/integration/ranks.h"

#define STEPS 8

/* Config bytes raw (freed here) for device `dev`, written to path. */
static void write_device_config(const char *path, int dev, uint8_t *raw, size_t n) {
  Trainyard__TrainConfig *c = trainyard__train_config__unpack(NULL, n, raw);
  cr_assert(c);
  c->device = dev;
  size_t len = trainyard__train_config__get_packed_size(c);
  uint8_t *out = malloc(len + 1);
  trainyard__train_config__pack(c, out);
  rk_write_file(path, out, len);
  trainyard__train_config__free_unpacked(c, NULL);
  free(raw);
  free(out);
}

/* rk_make_config's config for device `dev`, written to path. */
static void write_config(const char *path, int dev, const char *ckpt) {
  size_t n;
  uint8_t *raw = rk_make_config(STEPS, 0, ckpt, &n);
  write_device_config(path, dev, raw, n);
}

static int run(const it_cluster *c, const char *cfg, uint32_t world, uint64_t job,
               const char *tag) {
  pid_t pid[2];
  for (uint32_t r = 0; r < world; r++) {
    char log[400], gpu[16];
    snprintf(log, sizeof log, "%s/%s.rank%u.log", c->dir, tag, r);
    snprintf(gpu, sizeof gpu, "%u", r);
    setenv("CUDA_VISIBLE_DEVICES", gpu, 1); /* inherited: one GPU per rank */
    rk_set_token(c, job, r);
    pid[r] = rk_start(rk_env("TY_MLP_ONNX"), cfg, r, world, job, c->rpc_port, log, NULL);
  }
  unsetenv("CUDA_VISIBLE_DEVICES");
  int bad = 0;
  for (uint32_t r = 0; r < world; r++)
    bad |= rk_wait_exit(pid[r]);
  return bad;
}

Test(gpu_ranks, nccl_on_two_gpus_matches_one_cpu_process, .timeout = 600) {
  int n = ty_cuda_device_count();
  if (n < 2) cr_skip_test("needs two GPUs on this node, it has %d", n);
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* the controller alone: the rendezvous */
  char ref[400], out[400], cpu_cfg[400], gpu_cfg[400], log[400];
  snprintf(ref, sizeof ref, "%s/ref.onnx", c.dir);
  snprintf(out, sizeof out, "%s/gpu.onnx", c.dir);
  snprintf(cpu_cfg, sizeof cpu_cfg, "%s/cpu.pb", c.dir);
  snprintf(gpu_cfg, sizeof gpu_cfg, "%s/gpu.pb", c.dir);
  write_config(cpu_cfg, TRAINYARD__DEVICE__DEVICE_CPU, ref);
  write_config(gpu_cfg, TRAINYARD__DEVICE__DEVICE_GPU, out);
  uint64_t job = 900000 + (uint64_t)getpid() * 4;
  cr_assert_eq(run(&c, cpu_cfg, 1, job, "ref"), 0, "the CPU reference failed (logs in %s)", c.dir);
  cr_assert_eq(run(&c, gpu_cfg, 2, job + 1, "gpu"), 0, "the GPU ranks failed (logs in %s)", c.dir);
  size_t len;
  snprintf(log, sizeof log, "%s/gpu.rank0.log", c.dir);
  char *text = (char *)rk_read_all(log, &len);
  cr_assert(strstr(text, "GPU executor: "), "rank 0 did not train on the GPU:\n%s", text);
  free(text);
  double d = rk_weight_diff(ref, out);
  cr_assert(d < 1e-3, "the GPU ranks' weights differ from one CPU process by %g (logs in %s)", d,
            c.dir);
  it_cluster_stop(&c);
}

Test(gpu_ranks, pipeline_stages_over_nccl_match_one_cpu_process, .timeout = 600) {
  int n = ty_cuda_device_count();
  if (n < 2) cr_skip_test("needs two GPUs on this node, it has %d", n);
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  char ref[400], out[400], cpu_cfg[400], gpu_cfg[400], log[400];
  snprintf(ref, sizeof ref, "%s/ref.onnx", c.dir);
  snprintf(out, sizeof out, "%s/pipe.onnx", c.dir);
  snprintf(cpu_cfg, sizeof cpu_cfg, "%s/cpu.pb", c.dir);
  snprintf(gpu_cfg, sizeof gpu_cfg, "%s/pipe.pb", c.dir);
  write_config(cpu_cfg, TRAINYARD__DEVICE__DEVICE_CPU, ref);
  size_t len;
  uint8_t *raw = rk_make_pipeline_config(STEPS, "2", "4", out, &len);
  write_device_config(gpu_cfg, TRAINYARD__DEVICE__DEVICE_GPU, raw, len);
  uint64_t job = 910000 + (uint64_t)getpid() * 4;
  cr_assert_eq(run(&c, cpu_cfg, 1, job, "ref"), 0, "the CPU reference failed (logs in %s)", c.dir);
  cr_assert_eq(run(&c, gpu_cfg, 2, job + 1, "pipe"), 0,
               "the pipelined GPU ranks failed (logs in %s)", c.dir);
  snprintf(log, sizeof log, "%s/pipe.rank1.log", c.dir);
  char *text = (char *)rk_read_all(log, &len);
  cr_assert(strstr(text, "collectives through NCCL") &&
                strstr(text, "pipeline: rank 1 runs stage 1 of 2"),
            "rank 1 did not run stage 1 over NCCL:\n%s", text);
  free(text);
  double d = rk_weight_diff(ref, out);
  cr_assert(d < 1e-4,
            "the pipelined GPU ranks' weights differ from one CPU process by %g (logs in %s)", d,
            c.dir);
  it_cluster_stop(&c);
}
