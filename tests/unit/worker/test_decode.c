/* SPDX-License-Identifier: Apache-2.0 */
/* The worker's request decoding as the fuzzer drives it
 * (ty_worker_decode_request): every method on empty and garbage payloads,
 * and the cap on LaunchTask's GPU list. */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/methods.h"
#include "proto/trainyard.pb-c.h"
#include "worker/worker.h"

Test(worker_decode, every_method_answers_empty_and_garbage_payloads) {
  static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x7f, 0x01};
  size_t n = 0;
  for (const char *m; (m = ty_worker_method(n)); n++) {
    char err[TY_ERR_LEN] = "";
    cr_expect_eq(ty_worker_decode_request(m, NULL, 0, err, sizeof err), 0, "%s: %s", m, err);
    cr_expect_eq(ty_worker_decode_request(m, junk, sizeof junk, err, sizeof err), TY_EPROTO, "%s",
                 m);
    cr_expect(strstr(err, "payload is not a trainyard."), "%s: %s", m, err);
  }
  cr_expect_eq(n, 6);
}

Test(worker_decode, launch_with_too_many_gpus_is_refused) {
  uint32_t gpus[65] = {0};
  Trainyard__LaunchTaskRequest req = TRAINYARD__LAUNCH_TASK_REQUEST__INIT;
  req.gpu_indices = gpus;
  req.n_gpu_indices = 65;
  uint8_t buf[1024];
  size_t n = trainyard__launch_task_request__pack(&req, buf);
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_worker_decode_request(TY_M_LAUNCH_TASK, buf, n, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "gpu_indices: 65 entries or more; at most 64 are allowed");
}

/* A graph rank's fatal line becomes the job's reason, which every client
 * prints: a path the user chose with terminal escapes in it arrives with
 * each control byte as '?'. */
Test(worker_decode, trainrun_error_drops_control_bytes) {
  static const char log[] = "step 1 loss 2.0\n"
                            "trainrun: cannot open /d/\033]0;PWNED\007\033[31mX: No such file\n";
  char out[128];
  cr_assert_eq(ty_worker_trainrun_error(log, sizeof log - 1, out, sizeof out), 0);
  cr_assert_str_eq(out, "cannot open /d/?]0;PWNED??[31mX: No such file");
  cr_assert_eq(ty_worker_trainrun_error("no error\n", 9, out, sizeof out), TY_ENOTFOUND);
}

/* A rank's log holds each of its runs on the node, each after the first
 * behind its run marker: the reason is this run's error, not an earlier
 * run's (once a requeued run's save failure was reported as run 1's), and
 * within the run its first error line (the next ones add detail). */
Test(worker_decode, trainrun_error_is_the_last_runs) {
  static const char log[] = "trainrun: m.step-000060.onnx.state.tmp.10084: write failed\n"
                            "trainrun: detail of run 1\n"
                            "==> run 2 (node w1, started 2026-12-07T16:26:47Z) <==\n"
                            "step 70 loss 1.5\n"
                            "trainrun: m.step-000080.onnx.state.tmp.11494: write failed\n"
                            "trainrun: detail of run 2\n";
  char out[128];
  cr_assert_eq(ty_worker_trainrun_error(log, sizeof log - 1, out, sizeof out), 0);
  cr_assert_str_eq(out, "m.step-000080.onnx.state.tmp.11494: write failed");
  static const char ok[] = "trainrun: run 1 failed\n"
                           "==> run 2 (node w1, started 2026-12-07T16:26:47Z) <==\n"
                           "step 90 loss 1.0\n";
  cr_assert_eq(ty_worker_trainrun_error(ok, sizeof ok - 1, out, sizeof out), TY_ENOTFOUND,
               "run 1's error taken for run 2's: %s", out);
}

/* A stop between two logged steps (log_interval 50, stopped at 9) is the
 * job's progress: once it showed "ended without a training step". */
Test(worker_decode, progress_takes_a_stop_between_logged_steps) {
  static const char log[] = "step 50/400 loss 1.2000 lr 0.1 samples/s 900\n"
                            "stopped at step 73 of 400; checkpoint /c/m.onnx\n";
  ty_train_progress p = {.test_accuracy = -1};
  ty_worker_progress_parse(log, sizeof log - 1, &p);
  cr_assert_eq(p.step, 73u);
  cr_assert_eq(p.total_steps, 400u);
  cr_assert_eq(p.loss, 1.2, "the loss is the last logged step's");
}

/* The run's first step: its checkpoint's when it resumed (the path may
 * hold " at step "), 0 when it started afresh; the ETA counts the steps
 * since then. Once a resume was not read, and every step before it
 * counted as this run's, so the ETA after a requeue was far too short. */
Test(worker_decode, progress_takes_the_step_a_run_resumed_at) {
  static const char log[] = "resumed from /c/x at step 9/m.onnx at step 120 (epoch 2, batch 20)\n"
                            "step 130/400 loss 1.2000 lr 0.1 samples/s 900\n";
  ty_train_progress p = {.test_accuracy = -1};
  ty_worker_progress_parse(log, sizeof log - 1, &p);
  cr_assert_eq(p.start_step, 120u);
  cr_assert_eq(p.step, 130u);
  static const char fresh[] = "no checkpoint at /c/m.onnx yet: training from step 0\n"
                              "step 10/400 loss 1.5000 lr 0.1 samples/s 900\n";
  ty_worker_progress_parse(fresh, sizeof fresh - 1, &p);
  cr_assert_eq(p.start_step, 0u, "a later run that started afresh");
}

/* A batch runner that could not open the script's --output says so in
 * its rank's log (cli/script.c): that line, less its prefix, is the
 * reason, so the job's names the file and why, not only "exited with
 * code 1"; the script's own lines before it are not. */
Test(worker_decode, batch_runner_error_is_the_reason) {
  static const char log[] =
      "hello\n" TY_BATCH_ERROR "cannot open output file nodir/x-7.out: Directory nonexistent\n";
  char out[128];
  cr_assert_eq(ty_worker_log_error(TY_BATCH_ERROR, log, sizeof log - 1, out, sizeof out), 0);
  cr_assert_str_eq(out, "cannot open output file nodir/x-7.out: Directory nonexistent");
  cr_assert_eq(ty_worker_log_error(TY_BATCH_ERROR, "hello\n", 6, out, sizeof out), TY_ENOTFOUND);
}
