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
