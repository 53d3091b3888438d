/* SPDX-License-Identifier: Apache-2.0 */
/* The controller's request decoding as the fuzzer drives it
 * (ty_controller_decode_request): every method's decoder on an empty and on
 * a garbage payload, the caps on repeated fields with their message, and
 * string fields: a NUL refused in every one, and bytes that are not UTF-8
 * in all but argv, the environment, paths and a worker's reasons. */
#include <criterion/criterion.h>
#include <stdlib.h>
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

/* A packed message whose '@' bytes are made NUL (protobuf-c packs a string
 * up to its first NUL, so one cannot be put there before packing). */
typedef struct packed {
  uint8_t b[4096];
  size_t n;
} packed;

static void nul_for_at(packed *m) {
  for (size_t i = 0; i < m->n; i++)
    if (m->b[i] == '@') m->b[i] = 0;
}

static packed submit_of(const char *name, const char *queue, char **argv, size_t argc) {
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.argv = argv, cmd.n_argv = argc;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = (char *)name, job.queue = (char *)queue;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND, job.command = &cmd;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &job;
  packed m;
  cr_assert_leq(trainyard__submit_job_request__get_packed_size(&req), sizeof m.b);
  m.n = trainyard__submit_job_request__pack(&req, m.b);
  nul_for_at(&m);
  return m;
}

/* The method's answer to m: `want` ("" for accepted) is the error. */
static void expect_check(const char *method, const packed *m, const char *want) {
  char err[TY_ERR_LEN] = "";
  int rc = ty_controller_decode_request(method, m->b, m->n, err, sizeof err);
  if (!want[0]) {
    cr_expect_eq(rc, 0, "%s: refused: %s", method, err);
    return;
  }
  cr_expect_eq(rc, TY_EINVAL, "%s: %d, not TY_EINVAL (%s), for %s", method, rc, err, want);
  cr_expect_str_eq(err, want, "%s", method);
}

Test(decode, a_string_with_a_nul_is_refused_naming_the_field) {
  char *argv[] = {"true", "x@y"}, *raw[] = {"true", "\xff\xfe/\x80"};
  packed m = submit_of("a@b", "", raw, 1);
  expect_check(TY_M_SUBMIT_JOB, &m, "job.name: holds a NUL byte (at byte 1)");
  m = submit_of("ok", "q@", raw, 1);
  expect_check(TY_M_SUBMIT_JOB, &m, "job.queue: holds a NUL byte (at byte 1)");
  m = submit_of("ok", "", argv, 2);
  expect_check(TY_M_SUBMIT_JOB, &m, "job.command.argv: holds a NUL byte (at byte 1)");
  m = submit_of("ok", "", raw, 2); /* Linux's argv: any bytes but NUL */
  expect_check(TY_M_SUBMIT_JOB, &m, "");
  m = submit_of("\xe9t\xe9", "", raw, 1); /* Latin-1, not UTF-8: names must be UTF-8 */
  expect_check(TY_M_SUBMIT_JOB, &m, "job.name: not valid UTF-8 (at byte 0)");

  Trainyard__UpdateJobRequest uj = TRAINYARD__UPDATE_JOB_REQUEST__INIT;
  uj.job_id = 1, uj.action = "name", uj.name = "new@name";
  m.n = trainyard__update_job_request__pack(&uj, m.b), nul_for_at(&m);
  expect_check(TY_M_UPDATE_JOB, &m, "name: holds a NUL byte (at byte 3)");
  uj.action = "dependency", uj.name = "", uj.dependency = "afterok:1@";
  m.n = trainyard__update_job_request__pack(&uj, m.b), nul_for_at(&m);
  expect_check(TY_M_UPDATE_JOB, &m, "dependency: holds a NUL byte (at byte 9)");

  Trainyard__UpdateNodeRequest un = TRAINYARD__UPDATE_NODE_REQUEST__INIT;
  un.name = "w1", un.action = "drain", un.reason = "disk@full";
  m.n = trainyard__update_node_request__pack(&un, m.b), nul_for_at(&m);
  expect_check(TY_M_UPDATE_NODE, &m, "reason: holds a NUL byte (at byte 4)");

  Trainyard__HeartbeatRequest hb = TRAINYARD__HEARTBEAT_REQUEST__INIT;
  hb.node = "w@1";
  m.n = trainyard__heartbeat_request__pack(&hb, m.b), nul_for_at(&m);
  expect_check(TY_M_HEARTBEAT, &m, "node: holds a NUL byte (at byte 1)");

  /* A worker's reason quotes argv[0], which need not be UTF-8. */
  Trainyard__TaskUpdateRequest tu = TRAINYARD__TASK_UPDATE_REQUEST__INIT;
  tu.job_id = 1, tu.reason = "argv[0] \"\xff\" not found";
  m.n = trainyard__task_update_request__pack(&tu, m.b);
  expect_check(TY_M_TASK_UPDATE, &m, "");
  tu.reason = "cut@";
  m.n = trainyard__task_update_request__pack(&tu, m.b), nul_for_at(&m);
  expect_check(TY_M_TASK_UPDATE, &m, "reason: holds a NUL byte (at byte 3)");
}
