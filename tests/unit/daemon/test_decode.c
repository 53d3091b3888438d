/* SPDX-License-Identifier: Apache-2.0 */
/* The controller's request decoding as the fuzzer drives it
 * (ty_controller_decode_request): every method's decoder on an empty and on
 * a garbage payload, and the caps on repeated fields with their message. */
#include <criterion/criterion.h>
#include <string.h>

#include "daemon/daemon.h"
#include "proto/methods.h"
#include "proto/trainyard.pb-c.h"

Test(decode, every_method_answers_empty_and_garbage_payloads) {
  static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x7f, 0x01};
  size_t n = 0;
  for (const char *m; (m = ty_controller_method(n)); n++) {
    char err[TY_ERR_LEN] = "";
    int rc = ty_controller_decode_request(m, NULL, 0, err, sizeof err);
    /* Only messages that must carry a part (a job, a node) refuse nothing. */
    if (!strcmp(m, TY_M_SUBMIT_JOB) || !strcmp(m, TY_M_REGISTER_NODE) ||
        !strcmp(m, TY_M_PLAN_JOB)) {
      cr_expect_eq(rc, TY_EPROTO, "%s", m);
      cr_expect(strstr(err, "payload is not a trainyard."), "%s: %s", m, err);
    } else {
      cr_expect_eq(rc, 0, "%s: %s", m, err);
    }
    cr_expect_eq(ty_controller_decode_request(m, junk, sizeof junk, err, sizeof err), TY_EPROTO,
                 "%s", m);
  }
  cr_expect_geq(n, 19, "every method of the dispatch table is listed");
  char err[TY_ERR_LEN];
  cr_expect_eq(ty_controller_decode_request("Bogus", NULL, 0, err, sizeof err), TY_ENOTFOUND);
}

Test(decode, cancel_with_too_many_ids_is_refused_before_decoding) {
  uint64_t ids[5000];
  for (size_t i = 0; i < 5000; i++)
    ids[i] = i + 1;
  Trainyard__CancelJobRequest req = TRAINYARD__CANCEL_JOB_REQUEST__INIT;
  req.job_ids = ids;
  req.n_job_ids = 5000;
  uint8_t buf[64 * 1024];
  size_t n = trainyard__cancel_job_request__pack(&req, buf);
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_controller_decode_request(TY_M_CANCEL_JOB, buf, n, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "job_ids: 5000 entries or more; at most 1024 are allowed");
}
