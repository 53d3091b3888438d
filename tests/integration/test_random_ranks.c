/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Random ops across ranks: the VAE of examples/models/vae_random.py, whose
 * reparameterisation draws its noise with RandomNormalLike, on trainrun
 * ranks that form their world through a real traind's rendezvous.
 *
 *   - on 2 data-parallel ranks (no plan) its loss falls as on one process:
 *     each rank draws its own noise (ops/train: the rank is in the seed);
 *     so do a denoiser's with noise injection and stochastic depth and an
 *     autoencoder's with nn.Dropout (its masks keyed by the rank too);
 *   - under a 2-rank plan that splits the batch (--parallelism data), each
 *     rank draws its slice of the one-process noise (ops/shard positions
 *     the draw), so the run ends with the weights of a single process
 *     training the same global batches; so does the denoiser, whose
 *     stochastic-depth mask is built from the batch size, and an
 *     autoencoder with nn.Dropout, whose masks draw as the random ops do
 *     (its rank's slice of the one-process mask);
 *   - on 2 pipeline stages of 2 micro-batches each micro-batch draws its
 *     rows of the one-process masks: the autoencoder's weights are again
 *     one process's.
 *
 * The model comes from vae_random.py --export (PyTorch); without torch the
 * tests skip. Paths come from meson: TY_TRAINRUN, TY_PYTHON,
 * TY_VAE_SCRIPT, TY_PROTO_DIR.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/train_config.pb-c.h"
#include "tests/integration/ranks.h"

#define STEPS "200"

static uint64_t next_job(void) {
  static uint64_t n;
  return 900000 + (uint64_t)getpid() * 64 + n++;
}

/* Exports the VAE, its data and config into dir/vae (skips without torch). */
static void export_vae(const it_cluster *c, char *dir, size_t n) {
  snprintf(dir, n, "%s/vae", c->dir);
  char cmd[2000];
  snprintf(
      cmd, sizeof cmd, "'%s' '%s' --export '%s' --proto '%s' --steps %s > '%s/export.log' 2>&1",
      rk_env("TY_PYTHON"), rk_env("TY_VAE_SCRIPT"), dir, rk_env("TY_PROTO_DIR"), STEPS, c->dir);
  int st = system(cmd);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 77) cr_skip_test("vae_random.py: torch is missing");
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed (see %s/export.log)", cmd, c->dir);
}

/* `world` ranks of one job with config dir/<cfg_name> (extra args
 * appended); logs dir/<tag>.rank<r>.log. */
static void run_ranks_cfg(const it_cluster *c, const char *dir, const char *name,
                          const char *cfg_name, uint32_t world, const char *const *extra,
                          const char *tag) {
  char model[400], cfg[400];
  snprintf(model, sizeof model, "%s/%s.onnx", dir, name);
  snprintf(cfg, sizeof cfg, "%s/%s", dir, cfg_name);
  uint64_t job = next_job();
  pid_t pid[4];
  for (uint32_t r = 0; r < world; r++) {
    char log[400];
    snprintf(log, sizeof log, "%s/%s.rank%u.log", c->dir, tag, r);
    rk_set_token(c, job, r);
    pid[r] = rk_start(model, cfg, r, world, job, c->rpc_port, log, extra);
  }
  for (uint32_t r = 0; r < world; r++) {
    int code = rk_wait_exit(pid[r]);
    char log[400];
    size_t n;
    snprintf(log, sizeof log, "%s/%s.rank%u.log", c->dir, tag, r);
    char *text = code ? (char *)rk_read_all(log, &n) : NULL;
    cr_assert_eq(code, 0, "%s: rank %u exited %d:\n%s", tag, r, code, text ? text : "");
    free(text);
  }
}

/* The same with the export's config, dir/vae.config.pb. */
static void run_ranks(const it_cluster *c, const char *dir, const char *name, uint32_t world,
                      const char *const *extra, const char *tag) {
  run_ranks_cfg(c, dir, name, "vae.config.pb", world, extra, tag);
}

/* The first and the mean of the last five losses rank 0 logged. */
static void losses(const it_cluster *c, const char *tag, double *first, double *last) {
  char log[400];
  size_t n;
  snprintf(log, sizeof log, "%s/%s.rank0.log", c->dir, tag);
  char *text = (char *)rk_read_all(log, &n);
  double v[512];
  int k = 0;
  for (char *p = text; (p = strstr(p, "step ")) && k < 512; p++) {
    unsigned long long s, total;
    if (sscanf(p, "step %llu/%llu loss %lf", &s, &total, &v[k]) == 3) k++;
  }
  cr_assert(k >= 6, "%s: %d losses logged:\n%s", tag, k, text);
  *first = v[0];
  *last = (v[k - 1] + v[k - 2] + v[k - 3] + v[k - 4] + v[k - 5]) / 5;
  free(text);
}

Test(random_ranks, vae_trains_on_two_data_parallel_ranks, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* the controller alone: the rendezvous */
  char dir[400];
  export_vae(&c, dir, sizeof dir);
  run_ranks(&c, dir, "vae", 2, (const char *const[]){"--steps", STEPS, NULL}, "dp");
  double first, last;
  losses(&c, "dp", &first, &last);
  cr_assert(last < 0.7 * first, "2 data-parallel ranks: loss %g -> %g (logs in %s)", first, last,
            c.dir);
  /* noise injection and stochastic depth (a draw shaped by the batch) */
  char ck[500];
  snprintf(ck, sizeof ck, "%s/denoiser.ckpt.onnx", dir);
  run_ranks(&c, dir, "denoiser", 2,
            (const char *const[]){"--steps", STEPS, "--checkpoint", ck, NULL}, "dp.denoiser");
  losses(&c, "dp.denoiser", &first, &last);
  cr_assert(last < 0.5 * first, "2 data-parallel ranks, denoiser: loss %g -> %g (logs in %s)",
            first, last, c.dir);
  /* Dropout's masks keyed by the rank as the random ops' draws are */
  snprintf(ck, sizeof ck, "%s/dropnet.ckpt.onnx", dir);
  run_ranks(&c, dir, "dropnet", 2,
            (const char *const[]){"--steps", STEPS, "--checkpoint", ck, NULL}, "dp.dropnet");
  losses(&c, "dp.dropnet", &first, &last);
  cr_assert(last < 0.7 * first, "2 data-parallel ranks, dropnet: loss %g -> %g (logs in %s)", first,
            last, c.dir);
  it_cluster_stop(&c);
}

/* model (vae.onnx of the export) 8 steps on one process and on 2 ranks under a
 * plan splitting the batch: the same weights. */
static void expect_split_matches(const char *name) {
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  char dir[400], ref[400], out[400], tag[64];
  export_vae(&c, dir, sizeof dir);
  snprintf(ref, sizeof ref, "%s/%s.ref.onnx", c.dir, name);
  snprintf(out, sizeof out, "%s/%s.split.onnx", c.dir, name);
  snprintf(tag, sizeof tag, "%s.ref", name);
  run_ranks(&c, dir, name, 1, (const char *const[]){"--steps", "8", "--checkpoint", ref, NULL},
            tag);
  snprintf(tag, sizeof tag, "%s.split", name);
  run_ranks(&c, dir, name, 2,
            (const char *const[]){"--steps", "8", "--checkpoint", out, "--parallelism", "data",
                                  "--mesh", "1x2", "--device-flops", "1e11", NULL},
            tag);
  double d = rk_weight_diff(ref, out);
  cr_assert(d < 1e-4,
            "%s: a batch split on 2 ranks: weights differ from one process by %g (logs in %s)",
            name, d, c.dir);
  it_cluster_stop(&c);
}

Test(random_ranks, batch_split_draws_the_one_process_noise, .timeout = 300) {
  expect_split_matches("vae");
}

/* Stochastic depth's keep mask is a RandomUniformLike over
 * ConstantOfShape(Concat(Shape(x)[0], 1)): under the batch split each rank
 * makes its rows of it (ops/shard gives the node its block's shape) and
 * draws them from the one-process tensor. */
Test(random_ranks, denoiser_batch_split_matches_one_process, .timeout = 300) {
  expect_split_matches("denoiser");
}

/* Dropout draws its mask position by position from the random ops' key
 * (ops/kernels/random.c), so under the batch split each rank draws its
 * rows of the one-process masks: the run ends with one process's weights
 * (with the masks of the old per-step stream, 0.21 apart). */
Test(random_ranks, dropout_batch_split_matches_one_process, .timeout = 300) {
  expect_split_matches("dropnet");
}

/* dir/vae.config.pb as dir/pipe.config.pb with 2 pipeline stages of 2
 * micro-batches. */
static void write_pipe_config(const char *dir) {
  char path[450];
  size_t n;
  snprintf(path, sizeof path, "%s/vae.config.pb", dir);
  uint8_t *raw = rk_read_all(path, &n);
  Trainyard__TrainConfig *m = trainyard__train_config__unpack(NULL, n, raw);
  cr_assert(m, "%s does not decode", path);
  char *old_stages = m->pipeline_stages, *old_micro = m->micro_batches;
  m->pipeline_stages = (char *)"2";
  m->micro_batches = (char *)"2";
  size_t len = trainyard__train_config__get_packed_size(m);
  uint8_t *out = malloc(len + 1);
  trainyard__train_config__pack(m, out);
  m->pipeline_stages = old_stages, m->micro_batches = old_micro;
  trainyard__train_config__free_unpacked(m, NULL);
  snprintf(path, sizeof path, "%s/pipe.config.pb", dir);
  rk_write_file(path, out, len);
  free(out);
  free(raw);
}

/* Issue 18: a pipeline's micro-batches draw their rows of the one-process
 * Dropout masks (ops/train/pipe_random.c): the autoencoder with two
 * nn.Dropout on 2 pipeline stages of 2 micro-batches over Open MPI ends
 * with the weights of one process (with the old per-micro-batch masks,
 * 0.24 apart). */
Test(random_ranks, dropout_pipeline_stages_match_one_process, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  char dir[400], ref[400], out[400], log[500];
  export_vae(&c, dir, sizeof dir);
  write_pipe_config(dir);
  snprintf(ref, sizeof ref, "%s/dropnet.ref.onnx", c.dir);
  snprintf(out, sizeof out, "%s/dropnet.pipe.onnx", c.dir);
  run_ranks(&c, dir, "dropnet", 1, (const char *const[]){"--steps", "8", "--checkpoint", ref, NULL},
            "dropnet.ref");
  run_ranks_cfg(&c, dir, "dropnet", "pipe.config.pb", 2,
                (const char *const[]){"--steps", "8", "--checkpoint", out, "--parallelism", "auto",
                                      "--mesh", "1x2", "--device-flops", "1e11", NULL},
                "dropnet.pipe");
  snprintf(log, sizeof log, "%s/dropnet.pipe.rank1.log", c.dir);
  size_t n;
  char *text = (char *)rk_read_all(log, &n);
  cr_assert(strstr(text, "pipeline: rank 1 runs stage 1 of 2"), "no pipeline:\n%s", text);
  free(text);
  double d = rk_weight_diff(ref, out);
  cr_assert(d < 1e-4, "2 pipeline stages: weights differ from one process by %g (logs in %s)", d,
            c.dir);
  it_cluster_stop(&c);
}
