/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parallel plans end to end on CPU (issue 10): real trainrun ranks form an
 * Open MPI world through a real traind's rendezvous and run a plan, each
 * on its slices, with the plan's collectives between their kernels.
 *
 *   - tensor parallel on 2 ranks and data x tensor on 4 (2 x 2) end with the
 *     weights of a single-process run of the same global batch (float
 *     tolerance), for the Fashion-MNIST MLP (Gemm) and a wide MatMul chain,
 *     and the ranks' final evaluation together is the process's;
 *   - so does data parallel on 3 ranks, whose batch of 64 splits 22, 21, 21;
 *   - a checkpoint written by 2 tensor-parallel ranks is the single-process
 *     format and resumes on 1 rank and on 4 ranks under another plan, where
 *     an uninterrupted run ends;
 *   - gradient clipping (config.max_grad_norm) on tensor parallel, data x
 *     tensor and 2 pipeline stages ends with the weights of a clipping
 *     single process, every rank logging its whole-model gradient norm;
 *   - a mask and a state built from the batch size (ConstantOfShape of
 *     Shape(x)[0]) under a data plan on 2 ranks and a 2 x 2 grid end with
 *     one process's weights;
 *   - so do scores read only through ArgMax and an output head the loss
 *     does not read, under tensor and grid plans that split every op;
 *   - a class-weighted, ignore_index mean loss under a data plan, 2
 *     pipeline stages of 2 micro-batches, and both, ends with one
 *     process's weights;
 *   - a residual skip whose activation two later stages of 4 read ends
 *     with one process's weights;
 *   - a plan file made with --write-plan runs; a corrupted one, one made
 *     for another world size or cluster, and ranks holding different plans
 *     stop at start (exit code 2) with a message naming the cause.
 *
 * The cost model's rates are fixed on the command line so the plans do not
 * depend on this machine's speed. Under the sanitizers (TY_TEST_SUBSET,
 * tests/support/subset.h) the two matches run the MLP only, and the uneven
 * batch, the batch-shaped mask, the undifferentiated values, the weighted
 * mean, the resumed checkpoint and clipping are the first pass's
 * (rk_full_pass_only). Paths come from meson: TY_TRAINRUN,
 * TY_MLP_ONNX, TY_WIDE_ONNX, TY_MASKED_ONNX, TY_PICKED_ONNX, TY_WEIGHTED_ONNX, TY_SKIP_ONNX,
 * TY_MLP_CONFIG.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ops/plan/plan.h"
#include "proto/train_config.pb-c.h"
#include "tests/integration/ranks.h"
#include "tests/support/subset.h"

#define STEPS 8 /* --steps below repeats it */
#define MAX_RANKS 8

/* Fixed rates, and the plan asked for. */
#define RATES "--device-flops", "1e11", "--intra-gbps", "10", "--inter-gbps", "1.25"

static uint64_t next_job(void) {
  static uint64_t n;
  return 700000 + (uint64_t)getpid() * 64 + n++;
}

/* Runs `world` ranks of one job with the extra args; their exit codes in
 * codes, logs in dir/<tag>.rank<r>.log. */
static void run_ranks(const it_cluster *c, const char *model, const char *cfg, uint32_t world,
                      const char *const *extra, const char *tag, int *codes) {
  uint64_t job = next_job();
  pid_t pid[MAX_RANKS];
  for (uint32_t r = 0; r < world; r++) {
    char log[400];
    snprintf(log, sizeof log, "%s/%s.rank%u.log", c->dir, tag, r);
    rk_set_token(c, job, r);
    pid[r] = rk_start(model, cfg, r, world, job, c->rpc_port, log, extra);
  }
  for (uint32_t r = 0; r < world; r++)
    codes[r] = rk_wait_exit(pid[r]);
}

static char *rank_log(const it_cluster *c, const char *tag, uint32_t r) {
  char log[400];
  size_t n;
  snprintf(log, sizeof log, "%s/%s.rank%u.log", c->dir, tag, r);
  return (char *)rk_read_all(log, &n);
}

static void expect_ok(const it_cluster *c, const char *tag, const int *codes, uint32_t world) {
  for (uint32_t r = 0; r < world; r++) {
    char *text = codes[r] ? rank_log(c, tag, r) : NULL;
    cr_assert_eq(codes[r], 0, "%s: rank %u exited %d:\n%s", tag, r, codes[r], text ? text : "");
    free(text);
  }
}

/* Every rank of tag exited 2 and its log says `why`. */
static void expect_refused(const it_cluster *c, const char *tag, const int *codes, uint32_t world,
                           const char *why) {
  for (uint32_t r = 0; r < world; r++) {
    char *text = rank_log(c, tag, r);
    cr_assert_eq(codes[r], 2, "%s: rank %u exited %d, not 2:\n%s", tag, r, codes[r], text);
    cr_assert(strstr(text, why), "%s: rank %u does not say \"%s\":\n%s", tag, r, why, text);
    free(text);
  }
}

/* model trained `steps` steps by one process, no plan, into out. */
static void reference(const it_cluster *c, const char *model, uint64_t steps, const char *out) {
  char cfg[400];
  snprintf(cfg, sizeof cfg, "%s/ref-%llu.pb", c->dir, (unsigned long long)steps);
  rk_write_config(cfg, steps, 0, out);
  int code;
  run_ranks(c, model, cfg, 1, NULL, "ref", &code);
  expect_ok(c, "ref", &code, 1);
}

/* The final evaluation rank 0 printed (its ranks evaluate their blocks
 * together, ops/train/eval_shard.c) is the reference process's, to the
 * printed digits, and rank 1 printed none. */
static void expect_same_evaluation(const it_cluster *c, const char *tag, const char *text) {
  char *ref = rank_log(c, "ref", 0), *other = rank_log(c, tag, 1);
  const char *a = strstr(text, "final test_accuracy"), *b = strstr(ref, "final test_accuracy");
  double acc_a = -1, loss_a = -1, acc_b = -2, loss_b = -2;
  cr_assert(a && b, "%s: a final evaluation is missing:\n%s\n%s", tag, text, ref);
  sscanf(a, "final test_accuracy %lf test_loss %lf", &acc_a, &loss_a);
  sscanf(b, "final test_accuracy %lf test_loss %lf", &acc_b, &loss_b);
  cr_assert(fabs(acc_a - acc_b) < 2e-4 && fabs(loss_a - loss_b) < 2e-4,
            "%s: evaluated %.4f / %.4f, one process %.4f / %.4f", tag, acc_a, loss_a, acc_b,
            loss_b);
  cr_assert_null(strstr(other, "test_accuracy"), "%s: rank 1 reported:\n%s", tag, other);
  free(ref);
  free(other);
}

/* model on `world` ranks with the plan options; weights as a process's. */
static void expect_matches(const it_cluster *c, const char *model, uint32_t world,
                           const char *const *plan, const char *tag) {
  char ref[400], out[400], cfg[400];
  snprintf(ref, sizeof ref, "%s/%s.ref.onnx", c->dir, tag);
  snprintf(out, sizeof out, "%s/%s.onnx", c->dir, tag);
  snprintf(cfg, sizeof cfg, "%s/%s.pb", c->dir, tag);
  reference(c, model, STEPS, ref);
  rk_write_config(cfg, STEPS, 0, out);
  int codes[MAX_RANKS];
  run_ranks(c, model, cfg, world, plan, tag, codes);
  expect_ok(c, tag, codes, world);
  double d = rk_weight_diff(ref, out);
  cr_assert(d < 1e-4, "%s: weights differ from a single process by %g (logs in %s)", tag, d,
            c->dir);
  char *text = rank_log(c, tag, 0);
  cr_assert(strstr(text, "plan: mesh "), "%s: no plan line:\n%s", tag, text);
  expect_same_evaluation(c, tag, text);
  free(text);
}

Test(plan, tensor_parallel_on_two_ranks_matches_one_process, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* the controller alone: the rendezvous */
  const char *const tp[] = {"--parallelism", "tensor", "--mesh", "1x2", RATES, NULL};
  expect_matches(&c, rk_env("TY_MLP_ONNX"), 2, tp, "mlp-tp");
  if (!ty_test_subset()) /* the sanitizer pass: the MLP's Gemm stands for the MatMul chain */
    expect_matches(&c, rk_env("TY_WIDE_ONNX"), 2, tp, "wide-tp");
  it_cluster_stop(&c);
}

Test(plan, data_x_tensor_on_four_ranks_matches_one_process, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* the controller alone: the rendezvous */
  const char *const grid[] = {"--parallelism", "grid", "--mesh", "2x2", RATES, NULL};
  expect_matches(&c, rk_env("TY_MLP_ONNX"), 4, grid, "mlp-grid");
  if (!ty_test_subset()) expect_matches(&c, rk_env("TY_WIDE_ONNX"), 4, grid, "wide-grid");
  it_cluster_stop(&c);
}

/* 3 ranks do not divide the batch of 64: the plan splits it 22, 21, 21,
 * each rank reads its rows and the loss divides by the global batch, so
 * the run ends with one process's weights. */
Test(plan, data_on_three_ranks_splits_the_batch_unevenly_and_matches_one_process, .timeout = 300) {
  rk_full_pass_only();
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* the controller alone: the rendezvous */
  const char *const dp[] = {"--parallelism", "data", "--mesh", "1x3", RATES, NULL};
  expect_matches(&c, rk_env("TY_MLP_ONNX"), 3, dp, "mlp-dp3");
  char *text = rank_log(&c, "mlp-dp3", 0);
  cr_assert(strstr(text, "plan: mesh 1x3"), "%s", text);
  free(text);
  it_cluster_stop(&c);
}

/* A mask and a state built from the batch size (torch.ones(x.shape[0], 1),
 * x.new_zeros(x.size(0), 32): ConstantOfShape of Concat(Shape(x)[0], k))
 * under plans that split the batch: each rank makes its rows of them, and
 * the run ends with one process's weights. */
Test(plan, batch_shaped_mask_and_state_under_a_batch_split_match_one_process, .timeout = 300) {
  rk_full_pass_only();
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* the controller alone: the rendezvous */
  const char *const data[] = {"--parallelism", "data", "--mesh", "1x2", RATES, NULL};
  expect_matches(&c, rk_env("TY_MASKED_ONNX"), 2, data, "masked-data");
  if (!ty_test_subset()) {
    const char *const grid[] = {"--parallelism", "grid", "--mesh", "2x2", RATES, NULL};
    expect_matches(&c, rk_env("TY_MASKED_ONNX"), 4, grid, "masked-grid");
  }
  it_cluster_stop(&c);
}

/* Slow devices and free links: every op a rule can split is split (at
 * RATES this small model runs mostly replicated), as bench/plan/zoo_sweep.py
 * plans the zoo. */
#define SPLIT_RATES                                                                                \
  "--device-flops", "1e6", "--intra-gbps", "1000", "--inter-gbps", "1000", "--latency-us", "0",    \
      "--inter-latency-us", "0", "--launch-us", "0"

/* Scores read only through ArgMax (its index picks an element of each
 * row) and an output head the loss does not read: no gradient comes back
 * to either, so their values move forward only (the shard built backward
 * routes the plan had no collectives for, and refused it as inconsistent).
 * Tensor on 2 ranks and a 2 x 2 grid end with one process's weights. */
Test(plan, values_the_loss_does_not_differentiate_under_split_plans, .timeout = 300) {
  rk_full_pass_only();
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* the controller alone: the rendezvous */
  const char *const tp[] = {"--parallelism", "tensor", "--mesh", "1x2", SPLIT_RATES, NULL};
  expect_matches(&c, rk_env("TY_PICKED_ONNX"), 2, tp, "picked-tp");
  if (!ty_test_subset()) {
    const char *const grid[] = {"--parallelism", "grid", "--mesh", "2x2", SPLIT_RATES, NULL};
    expect_matches(&c, rk_env("TY_PICKED_ONNX"), 4, grid, "picked-grid");
  }
  it_cluster_stop(&c);
}

/* weighted.onnx's config: the MLP's with loss_output "loss" (its own
 * class-weighted, ignore_index loss), with pipeline stages and
 * micro-batches when stages is not NULL, checkpointing to ckpt. */
static void weighted_config(const char *path, const char *stages, const char *micro,
                            const char *ckpt) {
  size_t n;
  uint8_t *raw = stages ? rk_make_pipeline_config(STEPS, stages, micro, ckpt, &n)
                        : rk_make_config(STEPS, 0, ckpt, &n);
  Trainyard__TrainConfig *m = trainyard__train_config__unpack(NULL, n, raw);
  cr_assert(m);
  Trainyard__TrainConfig__LossCase was = m->loss_case;
  Trainyard__SoftmaxCrossEntropy *sce = m->softmax_cross_entropy;
  m->loss_case = TRAINYARD__TRAIN_CONFIG__LOSS_LOSS_OUTPUT;
  m->loss_output = "loss";
  size_t len = trainyard__train_config__get_packed_size(m);
  uint8_t *out = malloc(len + 1);
  trainyard__train_config__pack(m, out);
  rk_write_file(path, out, len);
  m->loss_case = was;
  m->softmax_cross_entropy = sce;
  trainyard__train_config__free_unpacked(m, NULL);
  free(out);
  free(raw);
}

/* A weighted and ignore_index mean loss (weighted.onnx: class weights,
 * class 3 ignored) is a mean over the whole batch's label weights: under a
 * data-parallel plan each rank's loss is its rows' sum over the global
 * batch's weights, and in a pipeline each micro-batch's; the weights end
 * as one process's on data 1x2, 2 stages x 2 micro-batches, and 2 stages
 * of 2 data-parallel ranks (both; refused before). */
Test(plan, weighted_mean_loss_over_split_batches_and_micro_batches, .timeout = 300) {
  rk_full_pass_only();
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* the controller alone: the rendezvous */
  const char *model = rk_env("TY_WEIGHTED_ONNX");
  char ref[400], cfg[400], out[400];
  snprintf(ref, sizeof ref, "%s/weighted.ref.onnx", c.dir);
  snprintf(cfg, sizeof cfg, "%s/weighted.ref.pb", c.dir);
  weighted_config(cfg, NULL, NULL, ref);
  int codes[MAX_RANKS];
  run_ranks(&c, model, cfg, 1, NULL, "weighted-ref", codes);
  expect_ok(&c, "weighted-ref", codes, 1);
  const char *const data2[] = {"--parallelism", "data", "--mesh", "1x2", RATES, NULL};
  const char *const auto2[] = {"--parallelism", "auto", "--mesh", "1x2", RATES, NULL};
  const char *const data4[] = {"--parallelism", "data", "--mesh", "1x4", RATES, NULL};
  const struct {
    const char *tag, *stages;
    uint32_t world;
    const char *const *opts;
  } runs[] = {{"weighted-data", NULL, 2, data2},
              {"weighted-pipe", "2", 2, auto2},
              {"weighted-data-pipe", "2", 4, data4}};
  for (size_t i = 0; i < (ty_test_subset() ? 1 : sizeof runs / sizeof runs[0]); i++) {
    snprintf(cfg, sizeof cfg, "%s/%s.pb", c.dir, runs[i].tag);
    snprintf(out, sizeof out, "%s/%s.onnx", c.dir, runs[i].tag);
    weighted_config(cfg, runs[i].stages, "2", out);
    run_ranks(&c, model, cfg, runs[i].world, runs[i].opts, runs[i].tag, codes);
    expect_ok(&c, runs[i].tag, codes, runs[i].world);
    double d = rk_weight_diff(ref, out);
    cr_assert(d < 1e-4, "%s: weights differ from a single process by %g (logs in %s)", runs[i].tag,
              d, c.dir);
  }
  it_cluster_stop(&c);
}

/* A residual skip across stages (skip.onnx: h = fc1(x) read by fc2 and
 * by the Add after fc3): 4 stages of one weight each, so stage 0 sends h
 * to stages 1 and 2 and gets back the sum of their gradients, which its
 * backward counts once (it counted h's seed once per receiving stage, and
 * fc1's update came out twice one process's). Ends with one process's
 * weights. */
Test(plan, an_activation_two_later_stages_read_matches_one_process, .timeout = 300) {
  rk_full_pass_only();
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* the controller alone: the rendezvous */
  const char *model = rk_env("TY_SKIP_ONNX");
  char ref[400], cfg[400], out[400];
  snprintf(ref, sizeof ref, "%s/skip.ref.onnx", c.dir);
  snprintf(cfg, sizeof cfg, "%s/skip.pb", c.dir);
  snprintf(out, sizeof out, "%s/skip.onnx", c.dir);
  reference(&c, model, STEPS, ref);
  size_t n;
  uint8_t *raw = rk_make_pipeline_config(STEPS, "4", "2", out, &n);
  rk_write_file(cfg, raw, n);
  free(raw);
  const char *const auto4[] = {"--parallelism", "auto", "--mesh", "1x4", RATES, NULL};
  int codes[MAX_RANKS];
  run_ranks(&c, model, cfg, 4, auto4, "skip-pipe", codes);
  expect_ok(&c, "skip-pipe", codes, 4);
  char *text = rank_log(&c, "skip-pipe", 3);
  cr_assert(strstr(text, "pipeline: rank 3 runs stage 3 of 4"), "no 4 stages:\n%s", text);
  free(text);
  double d = rk_weight_diff(ref, out);
  cr_assert(d < 1e-4, "4 stages with a skip: %g from a single process (logs in %s)", d, c.dir);
  it_cluster_stop(&c);
}

static void copy_checkpoint(const char *from, const char *to) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s' && cp '%s.state' '%s.state'", from, to, from, to);
  cr_assert_eq(system(cmd), 0);
}

/* A minute under ASan (four runs, one of 4 ranks): there the same code is
 * tests/unit/ops/train's parallel_ckpt checkpoint_resumes_on_other_device_
 * counts (the ranks as threads), and a multi-rank checkpoint written and
 * resumed across processes is the graph suite's killed_rank_requeues_
 * once_by_policy. */
Test(plan, checkpoint_resumes_on_other_device_counts, .timeout = 300) {
  rk_full_pass_only();
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* the controller alone: the rendezvous */
  const char *model = rk_env("TY_MLP_ONNX");
  char ref[400], tp[400], one[400], four[400], cfg[400];
  snprintf(ref, sizeof ref, "%s/uninterrupted.onnx", c.dir);
  reference(&c, model, 2 * STEPS, ref);
  snprintf(tp, sizeof tp, "%s/tp.onnx", c.dir);
  snprintf(cfg, sizeof cfg, "%s/tp.pb", c.dir);
  rk_write_config(cfg, 2 * STEPS, 0, tp); /* the schedule of the whole run ... */
  int codes[MAX_RANKS];
  const char *const tp2[] = {"--steps", "8",   "--parallelism", "tensor",
                             "--mesh",  "1x2", RATES,           NULL};
  run_ranks(&c, model, cfg, 2, tp2, "tp", codes); /* ... its first half on 2 ranks */
  expect_ok(&c, "tp", codes, 2);
  snprintf(one, sizeof one, "%s/one.onnx", c.dir);
  snprintf(four, sizeof four, "%s/four.onnx", c.dir);
  copy_checkpoint(tp, one);
  copy_checkpoint(tp, four);
  snprintf(cfg, sizeof cfg, "%s/one.pb", c.dir);
  rk_write_config(cfg, 2 * STEPS, 0, one);
  run_ranks(&c, model, cfg, 1, (const char *const[]){"--resume", NULL}, "one", codes);
  expect_ok(&c, "one", codes, 1);
  snprintf(cfg, sizeof cfg, "%s/four.pb", c.dir);
  rk_write_config(cfg, 2 * STEPS, 0, four);
  const char *const grid[] = {"--resume", "--parallelism", "grid", "--mesh", "2x2", RATES, NULL};
  run_ranks(&c, model, cfg, 4, grid, "four", codes);
  expect_ok(&c, "four", codes, 4);
  char *text = rank_log(&c, "four", 0);
  cr_assert(strstr(text, "resumed from "), "the 4 ranks did not resume:\n%s", text);
  free(text);
  double d1 = rk_weight_diff(ref, one), d4 = rk_weight_diff(ref, four);
  cr_assert(d1 < 1e-4, "resumed on 1 rank: %g from an uninterrupted run (logs in %s)", d1, c.dir);
  cr_assert(d4 < 1e-4, "resumed on 2x2 ranks: %g from an uninterrupted run (logs in %s)", d4,
            c.dir);
  it_cluster_stop(&c);
}

/* trainrun --write-plan into path. */
static void write_plan(const it_cluster *c, const char *cfg, const char *path, const char *mode,
                       const char *mesh) {
  int code;
  const char *const args[] = {"--write-plan", path, "--parallelism", mode,
                              "--mesh",       mesh, RATES,           NULL};
  run_ranks(c, rk_env("TY_MLP_ONNX"), cfg, 1, args, "write-plan", &code);
  expect_ok(c, "write-plan", &code, 1);
}

Test(plan, plan_files_run_and_bad_ones_stop_at_start, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* the controller alone: the rendezvous */
  const char *model = rk_env("TY_MLP_ONNX");
  char ref[400], out[400], cfg[400], tp[400], dp[400], bad[400];
  snprintf(ref, sizeof ref, "%s/ref.onnx", c.dir);
  snprintf(out, sizeof out, "%s/file.onnx", c.dir);
  snprintf(cfg, sizeof cfg, "%s/file.pb", c.dir);
  snprintf(tp, sizeof tp, "%s/tp.plan", c.dir);
  snprintf(dp, sizeof dp, "%s/dp.plan", c.dir);
  snprintf(bad, sizeof bad, "%s/bad.plan", c.dir);
  reference(&c, model, STEPS, ref);
  rk_write_config(cfg, STEPS, 0, out);
  write_plan(&c, cfg, tp, "tensor", "1x2");
  write_plan(&c, cfg, dp, "data", "1x2");
  int codes[MAX_RANKS];
  run_ranks(&c, model, cfg, 2, (const char *const[]){"--plan", tp, NULL}, "file", codes);
  expect_ok(&c, "file", codes, 2);
  cr_assert(rk_weight_diff(ref, out) < 1e-4, "the plan file's run differs from a single process");

  size_t n;
  uint8_t *bytes = rk_read_all(tp, &n);
  bytes[n / 2] ^= 0x40; /* one flipped bit */
  rk_write_file(bad, bytes, n);
  free(bytes);
  run_ranks(&c, model, cfg, 2, (const char *const[]){"--plan", bad, NULL}, "corrupt", codes);
  expect_refused(&c, "corrupt", codes, 2, "corrupt: the CRC-32");
  run_ranks(&c, model, cfg, 4, (const char *const[]){"--plan", tp, NULL}, "world", codes);
  expect_refused(&c, "world", codes, 4, "made for 2 devices (mesh 1x2), but WORLD_SIZE is 4");
  run_ranks(&c, model, cfg, 2, (const char *const[]){"--plan", tp, "--mesh", "2x1", NULL}, "mesh",
            codes);
  expect_refused(&c, "mesh", codes, 2, "made for a cluster of 1 x 2 devices, but --mesh is 2x1");
  setenv("LOCAL_WORLD_SIZE", "1", 1);
  run_ranks(&c, model, cfg, 2, (const char *const[]){"--plan", tp, NULL}, "local", codes);
  unsetenv("LOCAL_WORLD_SIZE");
  expect_refused(&c, "local", codes, 2,
                 "mesh mismatch: made for 2 devices per node, but LOCAL_WORLD_SIZE is 1");
  run_ranks(&c, model, cfg, 2, (const char *const[]){"--plan", tp, "--mesh", "junk", NULL},
            "badmesh", codes);
  expect_refused(&c, "badmesh", codes, 2, "--mesh: expected NODESxDEVICES");
  run_ranks(&c, model, cfg, 2, (const char *const[]){"--plan", c.dir, NULL}, "dir", codes);
  expect_refused(&c, "dir", codes, 2, ": is a directory (a plan file is");

  /* Ranks holding different plans: each one alone is fine, together they are not. */
  uint64_t job = next_job();
  char log0[400], log1[400];
  snprintf(log0, sizeof log0, "%s/mixed.rank0.log", c.dir);
  snprintf(log1, sizeof log1, "%s/mixed.rank1.log", c.dir);
  rk_set_token(&c, job, 0);
  pid_t p0 =
      rk_start(model, cfg, 0, 2, job, c.rpc_port, log0, (const char *const[]){"--plan", tp, NULL});
  rk_set_token(&c, job, 1);
  pid_t p1 =
      rk_start(model, cfg, 1, 2, job, c.rpc_port, log1, (const char *const[]){"--plan", dp, NULL});
  codes[0] = rk_wait_exit(p0);
  codes[1] = rk_wait_exit(p1);
  expect_refused(&c, "mixed", codes, 2, "plan mismatch: rank 1 runs plan ");

  /* A pipelined plan file: 2 stages, activations over Open MPI point to
   * point, the weights of one process. */
  char ppcfg[400], pp[400], ppout[400];
  snprintf(ppcfg, sizeof ppcfg, "%s/pp.pb", c.dir);
  snprintf(pp, sizeof pp, "%s/pp.plan", c.dir);
  snprintf(ppout, sizeof ppout, "%s/pp.onnx", c.dir);
  uint8_t *raw = rk_make_pipeline_config(STEPS, "2", "4", ppout, &n);
  rk_write_file(ppcfg, raw, n);
  free(raw);
  write_plan(&c, ppcfg, pp, "auto", "1x2");
  run_ranks(&c, model, ppcfg, 2, (const char *const[]){"--plan", pp, "--report", NULL}, "pipeline",
            codes);
  expect_ok(&c, "pipeline", codes, 2);
  char *pl = rank_log(&c, "pipeline", 1);
  cr_assert(strstr(pl, "pipeline: rank 1 runs stage 1 of 2 (replica 0 of 1), 4 micro-batches"),
            "%s", pl);
  cr_assert(strstr(pl, "report: pipeline stage 1 (rank 1), 1 micro-batch in flight: predicted "
                       "peak memory per device ") &&
                strstr(pl, "report: rank 1 held at most "),
            "%s", pl);
  free(pl);
  double dp_diff = rk_weight_diff(ref, ppout);
  cr_assert(dp_diff < 1e-4, "the pipelined run differs from a single process by %g", dp_diff);
  /* The plan's 4 micro-batches against a config that asks for 2: refused,
   * not trained with the plan's count. */
  char pp2cfg[400];
  snprintf(pp2cfg, sizeof pp2cfg, "%s/pp2.pb", c.dir);
  raw = rk_make_pipeline_config(STEPS, "2", "2", ppout, &n);
  rk_write_file(pp2cfg, raw, n);
  free(raw);
  run_ranks(&c, model, pp2cfg, 2, (const char *const[]){"--plan", pp, NULL}, "pp2", codes);
  expect_refused(&c, "pp2", codes, 2, "config.micro_batches: 2, but the plan runs 4 micro-batches");
  /* Its stages evaluated together (ops/train/pipe_eval.c), activations over Open MPI. */
  pl = rank_log(&c, "pipeline", 0);
  cr_assert_null(strstr(pl, "gathers"), "%s", pl);
  expect_same_evaluation(&c, "pipeline", pl);
  free(pl);
  it_cluster_stop(&c);
}

/* ---- gradient clipping ------------------------------------------------------------ */

#define CLIP 0.05f /* below the MLP's gradient norm at every step of the runs */

/* The MLP's config, `steps` steps with config.max_grad_norm CLIP and a
 * progress line per step, pipelined when stages is set, into path. */
static void write_clip_config(const char *path, uint64_t steps, const char *stages,
                              const char *ckpt) {
  size_t n;
  uint8_t *raw = stages ? rk_make_pipeline_config(steps, stages, "4", ckpt, &n)
                        : rk_make_config(steps, 0, ckpt, &n);
  Trainyard__TrainConfig *m = trainyard__train_config__unpack(NULL, n, raw);
  cr_assert(m);
  m->max_grad_norm = CLIP;
  m->log_interval = 1;
  size_t len = trainyard__train_config__get_packed_size(m);
  uint8_t *out = malloc(len + 1);
  trainyard__train_config__pack(m, out);
  rk_write_file(path, out, len);
  free(out);
  trainyard__train_config__free_unpacked(m, NULL);
  free(raw);
}

/* The grad_norm of each progress line of rank r's log (at most STEPS). */
static int logged_norms(const it_cluster *c, const char *tag, uint32_t r, double *out) {
  char *text = rank_log(c, tag, r);
  int n = 0;
  for (const char *at = text; n < STEPS && (at = strstr(at, " grad_norm ")) != NULL; at += 11)
    out[n++] = strtod(at + 11, NULL);
  free(text);
  return n;
}

/* Asserts that the plan file at path splits some parameter over its ranks
 * and keeps another whole on every rank. */
static void expect_split_and_whole(const char *path) {
  size_t n;
  uint8_t *bytes = rk_read_all(path, &n);
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_plan_decode(bytes, n, &p, err, sizeof err), 0, "%s: %s", path, err);
  free(bytes);
  int split = 0, whole = 0;
  for (size_t i = 0; i < p->n_params; i++) {
    bool cut = false;
    for (int d = 0; d < p->params[i].layout.rank; d++)
      cut = cut || p->params[i].layout.dim_axes[d] != 0;
    split += cut;
    whole += !cut;
  }
  cr_assert(split > 0 && whole > 0, "%s: %d parameters split, %d whole", path, split, whole);
  ty_plan_destroy(p);
}

/* Gradient clipping (config.max_grad_norm) on real ranks over Open MPI:
 * tensor parallel on 2 (a weight split, a bias kept whole on both), data x
 * tensor on 4 and 2 pipeline stages, with a limit below every step's norm,
 * end with the weights of one trainrun clipping the same way, and every
 * rank logs the same norm at every step, that process's (the whole
 * model's, not its part). */
Test(plan, clipping_on_plans_matches_one_process, .timeout = 300) {
  rk_full_pass_only();
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* the controller alone: the rendezvous */
  const char *model = rk_env("TY_MLP_ONNX");
  char ref[400], cfg[400], out[400];
  snprintf(ref, sizeof ref, "%s/clip-ref.onnx", c.dir);
  snprintf(cfg, sizeof cfg, "%s/clip-ref.pb", c.dir);
  write_clip_config(cfg, STEPS, NULL, ref);
  int codes[MAX_RANKS];
  run_ranks(&c, model, cfg, 1, NULL, "clip-ref", codes);
  expect_ok(&c, "clip-ref", codes, 1);
  double want[STEPS];
  cr_assert_eq(logged_norms(&c, "clip-ref", 0, want), STEPS, "a grad_norm per step (logs in %s)",
               c.dir);
  for (int s = 0; s < STEPS; s++)
    cr_assert_gt(want[s], 2 * CLIP, "step %d's norm %g: clipping would not act", s + 1, want[s]);
  /* The tensor plan splits a weight and keeps another parameter whole on
   * both ranks: the norm must count the one by its slices, the other once. */
  char tp_plan[400];
  snprintf(tp_plan, sizeof tp_plan, "%s/clip-tp.plan", c.dir);
  write_plan(&c, cfg, tp_plan, "tensor", "1x2");
  expect_split_and_whole(tp_plan);
  const struct {
    const char *tag, *stages;
    uint32_t world;
    const char *const *args;
  } runs[] = {
      {"clip-tp", NULL, 2, (const char *const[]){"--plan", tp_plan, NULL}},
      {"clip-grid", NULL, 4,
       (const char *const[]){"--parallelism", "grid", "--mesh", "2x2", RATES, NULL}},
      {"clip-pp", "2", 2,
       (const char *const[]){"--parallelism", "auto", "--mesh", "1x2", RATES, NULL}},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(runs); i++) {
    snprintf(cfg, sizeof cfg, "%s/%s.pb", c.dir, runs[i].tag);
    snprintf(out, sizeof out, "%s/%s.onnx", c.dir, runs[i].tag);
    write_clip_config(cfg, STEPS, runs[i].stages, out);
    run_ranks(&c, model, cfg, runs[i].world, runs[i].args, runs[i].tag, codes);
    expect_ok(&c, runs[i].tag, codes, runs[i].world);
    double d = rk_weight_diff(ref, out);
    cr_assert(d < 1e-4, "%s: weights differ from one process by %g (logs in %s)", runs[i].tag, d,
              c.dir);
    double first[STEPS], got[STEPS];
    cr_assert_eq(logged_norms(&c, runs[i].tag, 0, first), STEPS, "%s: rank 0", runs[i].tag);
    for (uint32_t r = 0; r < runs[i].world; r++) {
      cr_assert_eq(logged_norms(&c, runs[i].tag, r, got), STEPS, "%s: rank %u", runs[i].tag, r);
      for (int s = 0; s < STEPS; s++) {
        cr_assert(got[s] == first[s], "%s, step %d: rank %u logs grad_norm %g, rank 0 %g",
                  runs[i].tag, s + 1, r, got[s], first[s]);
        cr_assert(fabs(got[s] - want[s]) <= 1e-3 * want[s],
                  "%s, step %d: grad_norm %g, one process's %g", runs[i].tag, s + 1, got[s],
                  want[s]);
      }
    }
  }
  char *text = rank_log(&c, "clip-pp", 1);
  cr_assert(strstr(text, "pipeline: rank 1 runs stage 1 of 2"), "clip-pp is no pipeline:\n%s",
            text);
  free(text);
  it_cluster_stop(&c);
}

/* A stage that dies: its neighbour's wait for the next stage message ends
 * at the collective deadline with the peer named, instead of hanging. */
/* Issue 18: a pipelined plan file whose 2 stages each run on a 2x2 mesh,
 * data parallel on axis 0 and tensor parallel on axis 1 (grid mode): the
 * stage's collectives go over ops/collective's inner axes (communicators
 * split inside each stage), the activations point to point, each rank
 * holds its blocks (--report says so), and the checkpoint gathered from
 * them has the weights of one process. */
Test(plan, data_x_tensor_pipeline_stages_over_open_mpi, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  const char *model = rk_env("TY_MLP_ONNX");
  char ref[400], cfg[400], pp[400], out[400];
  snprintf(ref, sizeof ref, "%s/ref.onnx", c.dir);
  snprintf(cfg, sizeof cfg, "%s/grid.pb", c.dir);
  snprintf(pp, sizeof pp, "%s/grid.plan", c.dir);
  snprintf(out, sizeof out, "%s/grid.onnx", c.dir);
  reference(&c, model, STEPS, ref);
  size_t n;
  uint8_t *raw = rk_make_pipeline_config(STEPS, "2", "2", out, &n);
  rk_write_file(cfg, raw, n);
  free(raw);
  write_plan(&c, cfg, pp, "grid", "1x8");
  int codes[MAX_RANKS];
  run_ranks(&c, model, cfg, 8, (const char *const[]){"--plan", pp, "--report", NULL}, "grid",
            codes);
  expect_ok(&c, "grid", codes, 8);
  char *text = rank_log(&c, "grid", 7);
  cr_assert(strstr(text, "pipeline: rank 7 runs stage 1 of 2 (rank 3 of its 2x2 mesh, its "
                         "intra-stage plan through ops/shard)"),
            "%s", text);
  cr_assert(strstr(text, "of parameters, their gradient sums and optimizer state (its blocks of "
                         "its stage's parameters, as planned)"),
            "%s", text);
  free(text);
  double d = rk_weight_diff(ref, out);
  cr_assert(d < 1e-4, "2 stages of 2x2 over Open MPI: %g from a single process (logs in %s)", d,
            c.dir);
  it_cluster_stop(&c);
}

Test(plan, a_dead_pipeline_stage_fails_its_neighbour, .timeout = 300) {
  setenv("TRAINYARD_COLLECTIVE_TIMEOUT_S", "5", 1);
  setenv("TRAINYARD_STEP_DELAY_MS", "20", 1); /* a long run the kill lands in */
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  const char *model = rk_env("TY_MLP_ONNX");
  char cfg[400], pp[400], log0[400], log1[400];
  snprintf(cfg, sizeof cfg, "%s/dead.pb", c.dir);
  snprintf(pp, sizeof pp, "%s/dead.plan", c.dir);
  snprintf(log0, sizeof log0, "%s/dead.rank0.log", c.dir);
  snprintf(log1, sizeof log1, "%s/dead.rank1.log", c.dir);
  size_t n;
  uint8_t *raw = rk_make_pipeline_config(100000, "2", "4", NULL, &n);
  rk_write_file(cfg, raw, n);
  free(raw);
  write_plan(&c, cfg, pp, "auto", "1x2");
  uint64_t job = next_job();
  const char *const extra[] = {"--plan", pp, NULL};
  rk_set_token(&c, job, 0);
  pid_t p0 = rk_start(model, cfg, 0, 2, job, c.rpc_port, log0, extra);
  rk_set_token(&c, job, 1);
  pid_t p1 = rk_start(model, cfg, 1, 2, job, c.rpc_port, log1, extra);
  bool running = false; /* both stages have logged a step */
  for (int i = 0; i < 600 && !running; i++) {
    it_sleep_ms(100);
    size_t l0 = 0;
    char *t0 = (char *)rk_read_all(log0, &l0);
    running = t0 && strstr(t0, "step 5/");
    free(t0);
  }
  cr_assert(running, "the pipeline never reached step 5 (logs in %s)", c.dir);
  kill(p1, SIGKILL);
  cr_assert_eq(rk_wait_exit(p1), 128 + SIGKILL);
  int code = rk_wait_exit(p0);
  char *text = rank_log(&c, "dead", 0);
  cr_assert_neq(code, 0, "rank 0 outlived its dead neighbour:\n%s", text);
  /* Which wait sees the dead peer first depends on timing: a stage message
   * (names the peer) or the stop agreement (a collective). */
  cr_assert((strstr(text, "pipeline: rank 0 (stage 0)") && strstr(text, "from rank 1 (stage 1)")) ||
                strstr(text, "agreeing on a stop with the other ranks failed: "),
            "rank 0 exited %d:\n%s", code, text);
  free(text);
  unsetenv("TRAINYARD_STEP_DELAY_MS");
  it_cluster_stop(&c);
}

/* A data-parallel rank whose peer stops answering (SIGSTOP: alive, its
 * connections open) fails at the collective's timeout, and its first
 * "trainrun: " line, which the worker makes the job's reason of, carries
 * the collective's own words rather than only "request timed out". */
Test(plan, a_silent_peer_is_named_in_the_first_error_line, .timeout = 300) {
  setenv("TRAINYARD_COLLECTIVE_TIMEOUT_S", "5", 1);
  setenv("TRAINYARD_STEP_DELAY_MS", "20", 1); /* a long run the stop lands in */
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  const char *model = rk_env("TY_MLP_ONNX");
  char cfg[400], log[2][400];
  snprintf(cfg, sizeof cfg, "%s/silent.pb", c.dir);
  size_t n;
  uint8_t *raw = rk_make_config(100000, 0, NULL, &n);
  rk_write_file(cfg, raw, n);
  free(raw);
  uint64_t job = next_job();
  pid_t p[2];
  for (uint32_t r = 0; r < 2; r++) {
    snprintf(log[r], sizeof log[r], "%s/silent.rank%u.log", c.dir, r);
    rk_set_token(&c, job, r);
    p[r] = rk_start(model, cfg, r, 2, job, c.rpc_port, log[r], NULL);
  }
  bool running = false;
  for (int i = 0; i < 600 && !running; i++) {
    it_sleep_ms(100);
    char *t0 = (char *)rk_read_all(log[0], &n);
    running = t0 && strstr(t0, "step 5/");
    free(t0);
  }
  cr_assert(running, "the ranks never reached step 5 (logs in %s)", c.dir);
  kill(p[1], SIGSTOP);
  int code = rk_wait_exit(p[0]);
  kill(p[1], SIGKILL);
  kill(p[1], SIGCONT);
  rk_wait_exit(p[1]);
  char *text = rank_log(&c, "silent", 0);
  cr_assert_neq(code, 0, "rank 0 outlived its silent peer:\n%s", text);
  const char *first = strstr(text, "trainrun: ");
  cr_assert(first, "no error line:\n%s", text);
  const char *eol = strchr(first, '\n');
  size_t len = eol ? (size_t)(eol - first) : strlen(first);
  cr_assert(memmem(first, len, "no answer from the other ranks within 5000 ms", 45), "%.*s",
            (int)len, first);
  free(text);
  unsetenv("TRAINYARD_STEP_DELAY_MS");
  unsetenv("TRAINYARD_COLLECTIVE_TIMEOUT_S");
  it_cluster_stop(&c);
}

/* Whether process pid has a handler for sig (its SigCgt mask in /proc). */
static bool catches(pid_t pid, int sig) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  unsigned long long mask = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "SigCgt: %llx", &mask) == 1) break;
  if (f) fclose(f);
  return (mask >> (sig - 1)) & 1;
}

/* A rank stopped (SIGTERM: a cancel, requeue or preemption) while it waits
 * for the others to form the world ends at once, by the signal, saying it
 * had nothing to save, rather than waiting out the world's timeout or the
 * worker's kill grace. Rank 0 of 2 started alone, so it never steps. */
Test(plan, a_rank_stopped_before_its_first_step_ends_by_the_signal, .timeout = 120) {
  setenv("TRAINYARD_COLLECTIVE_TIMEOUT_S", "60", 1);
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  char cfg[400], log[400];
  snprintf(cfg, sizeof cfg, "%s/alone.pb", c.dir);
  snprintf(log, sizeof log, "%s/alone.rank0.log", c.dir);
  size_t n;
  uint8_t *raw = rk_make_config(100000, 0, NULL, &n);
  rk_write_file(cfg, raw, n);
  free(raw);
  uint64_t job = next_job();
  rk_set_token(&c, job, 0);
  pid_t p = rk_start(rk_env("TY_MLP_ONNX"), cfg, 0, 2, job, c.rpc_port, log, NULL);
  bool waiting = false; /* its SIGTERM handler installed */
  for (int i = 0; i < 300 && !waiting; i++) {
    it_sleep_ms(100);
    waiting = catches(p, SIGTERM);
  }
  cr_assert(waiting, "rank 0 never took SIGTERM (logs in %s)", c.dir);
  it_sleep_ms(1000); /* on its way into the world's formation */
  kill(p, SIGTERM);
  int code = rk_wait_exit(p);
  char *text = rank_log(&c, "alone", 0);
  cr_assert_eq(code, 128 + SIGTERM, "rank 0 exited %d:\n%s", code, text);
  cr_assert(strstr(text, "trainrun: stopped before the first step: nothing to save"), "%s", text);
  cr_assert(!strstr(text, "step 1/"), "%s", text);
  free(text);
  unsetenv("TRAINYARD_COLLECTIVE_TIMEOUT_S");
  it_cluster_stop(&c);
}

/* dir/held.onnx's checkpoint lock (dir/held.lock) held as another run
 * holds it: the open lock; and a config checkpointing there. */
static int hold_checkpoint_lock(const it_cluster *c, char *cfg, size_t n) {
  char ckpt[400], lock[400];
  snprintf(ckpt, sizeof ckpt, "%s/held.onnx", c->dir);
  snprintf(lock, sizeof lock, "%s/held.lock", c->dir);
  int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  cr_assert(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "cannot lock %s", lock);
  snprintf(cfg, n, "%s/held.pb", c->dir);
  size_t len;
  uint8_t *raw = rk_make_config(100000, 0, ckpt, &len);
  rk_write_file(cfg, raw, len);
  free(raw);
  return fd;
}

/* Whether the file at path says `what` within ms. */
static bool says_within(const char *path, const char *what, int ms) {
  for (int waited = 0;; waited += 100) {
    bool found = false;
    if (access(path, R_OK) == 0) { /* not yet created: not yet said */
      size_t n;
      char *text = (char *)rk_read_all(path, &n);
      found = strstr(text, what) != NULL;
      free(text);
    }
    if (found || waited >= ms) return found;
    it_sleep_ms(100);
  }
}

/* pid's exit code (128 + a signal's number), or -1 when it is still
 * running after ms: then it is killed. */
static int exit_within(pid_t pid, int ms) {
  int st;
  for (int waited = 0; waited < ms; waited += 50) {
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    it_sleep_ms(50);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

static const char lock_notice[] = "held.lock is locked by another run: waiting up to 60 s";

/* A rank waiting for its checkpoint's lock says so while it waits (its
 * stdout a file: line-buffered, not held back), and a stop then, which
 * ends it by the signal, keeps the line. */
Test(plan, a_rank_waiting_for_its_checkpoints_lock_says_so_while_it_waits, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  char cfg[400], log[400];
  int lock = hold_checkpoint_lock(&c, cfg, sizeof cfg);
  snprintf(log, sizeof log, "%s/held.rank0.log", c.dir);
  uint64_t job = next_job();
  rk_set_token(&c, job, 0);
  pid_t p = rk_start(rk_env("TY_MLP_ONNX"), cfg, 0, 1, job, c.rpc_port, log, NULL);
  bool said = says_within(log, lock_notice, 30000);
  kill(p, SIGTERM);
  int code = exit_within(p, 10000);
  char *text = rank_log(&c, "held", 0);
  cr_assert(said, "no \"%s\" while it waited:\n%s", lock_notice, text);
  cr_assert_eq(code, 128 + SIGTERM, "exited %d:\n%s", code, text);
  cr_assert(strstr(text, lock_notice), "%s", text);
  free(text);
  close(lock);
  it_cluster_stop(&c);
}

/* Two ranks stopped while rank 0 waits for its checkpoint's lock and rank
 * 1, in its first step, waits for rank 0's gradients: neither has anything
 * to save, both end by the signal at once, not at the kill grace. */
Test(plan, ranks_stopped_in_or_before_their_first_step_end_by_the_signal, .timeout = 120) {
  setenv("TRAINYARD_COLLECTIVE_TIMEOUT_S", "60", 1);
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  char cfg[400];
  int lock = hold_checkpoint_lock(&c, cfg, sizeof cfg);
  uint64_t job = next_job();
  pid_t pid[2];
  for (uint32_t r = 0; r < 2; r++) {
    char log[400];
    snprintf(log, sizeof log, "%s/held.rank%u.log", c.dir, r);
    rk_set_token(&c, job, r);
    pid[r] = rk_start(rk_env("TY_MLP_ONNX"), cfg, r, 2, job, c.rpc_port, log, NULL);
  }
  char log0[400];
  snprintf(log0, sizeof log0, "%s/held.rank0.log", c.dir);
  cr_assert(says_within(log0, lock_notice, 30000), "rank 0 never waited (logs in %s)", c.dir);
  it_sleep_ms(2000); /* rank 1 into its first step's exchange */
  for (int r = 0; r < 2; r++)
    kill(pid[r], SIGTERM);
  for (uint32_t r = 0; r < 2; r++) {
    int code = exit_within(pid[r], 5000);
    char *text = rank_log(&c, "held", r);
    cr_assert_eq(code, 128 + SIGTERM, "rank %u exited %d (-1: not within 5 s):\n%s", r, code, text);
    cr_assert(strstr(text, "trainrun: stopped before the first step: nothing to save"), "%s", text);
    free(text);
  }
  close(lock);
  unsetenv("TRAINYARD_COLLECTIVE_TIMEOUT_S");
  it_cluster_stop(&c);
}
