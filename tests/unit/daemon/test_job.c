/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for daemon/job: the state machine and submit validation. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"

Test(job_state, valid_transitions) {
  const int ok[][2] = {
      {TY_JOB_PENDING, TY_JOB_RUNNING},   {TY_JOB_PENDING, TY_JOB_CANCELLED},
      {TY_JOB_RUNNING, TY_JOB_COMPLETED}, {TY_JOB_RUNNING, TY_JOB_FAILED},
      {TY_JOB_RUNNING, TY_JOB_CANCELLED}, {TY_JOB_RUNNING, TY_JOB_TIMEOUT},
      {TY_JOB_RUNNING, TY_JOB_NODE_FAIL}, {TY_JOB_RUNNING, TY_JOB_PREEMPTED},
      {TY_JOB_NODE_FAIL, TY_JOB_PENDING}, {TY_JOB_PREEMPTED, TY_JOB_PENDING},
      {TY_JOB_RUNNING, TY_JOB_PENDING},   {TY_JOB_RUNNING, TY_JOB_OUT_OF_MEMORY},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(ok); i++)
    cr_assert_eq(ty_job_check_transition(ok[i][0], ok[i][1]), 0, "%s -> %s",
                 ty_job_state_name(ok[i][0]), ty_job_state_name(ok[i][1]));
}

Test(job_state, invalid_transitions) {
  const int bad[][2] = {
      {TY_JOB_PENDING, TY_JOB_COMPLETED},
      {TY_JOB_PENDING, TY_JOB_NODE_FAIL},
      {TY_JOB_COMPLETED, TY_JOB_RUNNING},
      {TY_JOB_CANCELLED, TY_JOB_CANCELLED},
      {TY_JOB_FAILED, TY_JOB_PENDING},
      {TY_JOB_TIMEOUT, TY_JOB_RUNNING},
      {TY_JOB_NODE_FAIL, TY_JOB_RUNNING},
      {TY_JOB_PENDING, TY_JOB_OUT_OF_MEMORY}, /* only a run is killed at its memory limit */
      {TY_JOB_OUT_OF_MEMORY, TY_JOB_RUNNING},
      {TY_JOB_OUT_OF_MEMORY, TY_JOB_PENDING}, /* final: `job requeue` revives it, as FAILED */
      {0, TY_JOB_PENDING},
      {TY_JOB_PENDING, 99},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++)
    cr_assert_eq(ty_job_check_transition(bad[i][0], bad[i][1]), TY_ESTATE, "%d -> %d", bad[i][0],
                 bad[i][1]);
}

Test(job_state, names_and_terminal) {
  cr_assert_str_eq(ty_job_state_name(TY_JOB_NODE_FAIL), "NODE_FAIL");
  cr_assert_str_eq(ty_job_state_name(42), "UNKNOWN");
  cr_assert(ty_job_state_terminal(TY_JOB_TIMEOUT));
  cr_assert_not(ty_job_state_terminal(TY_JOB_RUNNING));
  cr_assert_str_eq(ty_job_state_name(TY_JOB_OUT_OF_MEMORY), "OUT_OF_MEMORY");
  cr_assert(ty_job_state_terminal(TY_JOB_OUT_OF_MEMORY));
  /* NODE_FAIL and PREEMPTED are only ever at rest as a no_requeue job's
   * end (a requeued job passes through them to PENDING in one txn). */
  cr_assert(ty_job_state_terminal(TY_JOB_NODE_FAIL));
  cr_assert(ty_job_state_terminal(TY_JOB_PREEMPTED));
  cr_assert_not(ty_job_state_terminal(TY_JOB_PENDING));
}

/* A run's end as the controller records it: the worker's report between
 * the run's start and now; and, when the wall clock was stepped during
 * the run (the monotonic run length and the wall clock disagree), the
 * start + the time it ran. Once a job with a 60 s limit whose clock was
 * set back 2 minutes showed Elapsed 00:00:00, End == Start, and after a
 * forward step a run far longer than it ran. */
Test(job_state, a_runs_end_follows_the_monotonic_clock_when_the_wall_clock_steps) {
  const int64_t start = 1800000000000, ran = 60000;
  /* No step: the report, kept within [start, now]; 0 = now. */
  cr_assert_eq(ty_job_end_time(start, start + 59000, start + ran, ran), start + 59000);
  cr_assert_eq(ty_job_end_time(start, 0, start + ran, ran), start + ran);
  cr_assert_eq(ty_job_end_time(start, start + ran + 3000, start + ran, ran), start + ran,
               "a report ahead of now is now");
  cr_assert_eq(ty_job_end_time(start, start - 1000, start + ran, ran), start,
               "a report before the start is the start");
  /* Stepped back 2 minutes during the run: now (and the report) precede
   * the start; the run still ran 60 s. */
  cr_assert_eq(ty_job_end_time(start, start + ran - 120000, start + ran - 120000, ran),
               start + ran);
  /* Stepped forward 2 minutes: not a run of 3 minutes. */
  cr_assert_eq(ty_job_end_time(start, start + ran + 120000, start + ran + 120000, ran),
               start + ran);
  /* Within the skew allowed, and without a monotonic length (a controller
   * restarted since the start), the wall clocks as before. */
  cr_assert_eq(ty_job_end_time(start, start + ran + 4000, start + ran + 4000, ran),
               start + ran + 4000);
  cr_assert_eq(ty_job_end_time(start, start - 60000, start - 60000, -1), start);
}

static char **strv(int n, ...) {
  char **v = calloc((size_t)n + 1, sizeof(*v));
  va_list ap;
  va_start(ap, n);
  for (int i = 0; i < n; i++)
    v[i] = ty_strdup(va_arg(ap, const char *));
  va_end(ap);
  return v;
}

static ty_job_spec good_spec(void) {
  ty_job_spec s = {0};
  s.kind = TY_JOB_KIND_COMMAND;
  s.argv = strv(2, "/bin/echo", "hi");
  s.argc = 2;
  return s;
}

static void expect_bad(ty_job_spec *s, int code, const char *msg) {
  char err[256];
  cr_assert_eq(ty_job_spec_validate(s, err, sizeof(err)), code, "%s", err);
  cr_assert_str_eq(err, msg);
  ty_job_spec_close(s);
}

Test(job_spec, defaults_are_filled) {
  ty_job_spec s = good_spec();
  char err[256];
  cr_assert_eq(ty_job_spec_validate(&s, err, sizeof(err)), 0, "%s", err);
  cr_assert_str_eq(s.queue, "default");
  cr_assert_str_eq(s.name, "echo");
  cr_assert_str_eq(s.user, "nobody");
  cr_assert_eq(s.nodes, 1u);
  cr_assert_eq(s.tasks_per_node, 1u);
  cr_assert_eq(s.cpus_per_task, 1u);
  ty_job_spec_close(&s);
  ty_job_spec_close(NULL);
}

Test(job_spec, no_kind) {
  ty_job_spec s = {0};
  expect_bad(&s, TY_EINVAL, "job.command: a command (or a graph) is required");
}

Test(job_spec, graph_needs_model) {
  ty_job_spec s = {0};
  s.kind = TY_JOB_KIND_GRAPH;
  expect_bad(&s, TY_EINVAL, "job.graph: model_path or model_bytes is required");
}

Test(job_spec, graph_relative_model_path) {
  ty_job_spec s = {0};
  s.kind = TY_JOB_KIND_GRAPH;
  s.model_path = ty_strdup("mlp.onnx");
  expect_bad(&s, TY_EINVAL, "job.graph.model_path: \"mlp.onnx\" is not an absolute path");
}

Test(job_spec, graph_needs_config) {
  ty_job_spec s = {0};
  s.kind = TY_JOB_KIND_GRAPH;
  s.model_path = ty_strdup("/m/mlp.onnx");
  expect_bad(&s, TY_EINVAL, "job.graph.train_config: required (an encoded trainyard.TrainConfig)");
}

Test(job_spec, graph_unknown_parallelism) {
  ty_job_spec s = {0};
  s.kind = TY_JOB_KIND_GRAPH;
  s.model_path = ty_strdup("/m/mlp.onnx");
  s.train_config = ty_xcalloc(1, 1);
  s.train_config_len = 1;
  s.parallelism = 7;
  expect_bad(&s, TY_EINVAL,
             "job.graph.parallelism: 7 is not auto (0), data (1), tensor (2) or grid (3)");
}

/* A graph job's env (submit --model ... --export) is checked as a command's. */
Test(job_spec, graph_bad_env) {
  ty_job_spec s = {0};
  s.kind = TY_JOB_KIND_GRAPH;
  s.model_path = ty_strdup("/m/mlp.onnx");
  s.train_config = ty_xcalloc(1, 1);
  s.train_config_len = 1;
  s.env = strv(2, "OK=1", "NOEQUALS");
  s.envc = 2;
  expect_bad(&s, TY_EINVAL, "job.graph.env[1]: \"NOEQUALS\" is not NAME=value");
}

Test(job_spec, graph_one_rank_per_gpu) {
  ty_job_spec s = {0};
  s.kind = TY_JOB_KIND_GRAPH;
  s.model_path = ty_strdup("/m/mlp.onnx");
  s.train_config = ty_xcalloc(1, 1);
  s.train_config_len = 1;
  s.has_resources = true;
  s.gpus_per_node = 4;
  char err[256];
  cr_assert_eq(ty_job_spec_validate(&s, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(s.tasks_per_node, 4u);
  cr_assert_str_eq(s.name, "mlp.onnx");
  ty_job_spec_close(&s);
}

/* --no-requeue with a rank-failure requeue policy contradicts itself. */
Test(job_spec, no_requeue_with_rank_failure_requeues) {
  ty_job_spec s = good_spec();
  s.no_requeue = true;
  char err[256];
  cr_assert_eq(ty_job_spec_validate(&s, err, sizeof(err)), 0, "%s", err);
  ty_job_spec_close(&s);
  s = good_spec();
  s.no_requeue = true, s.max_rank_failure_requeues = 3;
  expect_bad(&s, TY_EINVAL,
             "job.no_requeue: a job that is never requeued (--no-requeue) cannot also be "
             "requeued up to 3 times when a rank fails (max_rank_failure_requeues)");
}

Test(job_spec, empty_argv) {
  ty_job_spec s = {0};
  s.kind = TY_JOB_KIND_COMMAND;
  expect_bad(&s, TY_EINVAL, "job.command.argv: must not be empty");
}

Test(job_spec, empty_argv0) {
  ty_job_spec s = good_spec();
  s.argv[0][0] = '\0';
  expect_bad(&s, TY_EINVAL, "job.command.argv[0]: must not be empty");
}

Test(job_spec, bad_env) {
  ty_job_spec s = good_spec();
  s.env = strv(2, "OK=1", "1BAD=x");
  s.envc = 2;
  expect_bad(&s, TY_EINVAL, "job.command.env[1]: \"1BAD=x\" is not NAME=value");
  s = good_spec();
  s.env = strv(1, "NOEQUALS");
  s.envc = 1;
  expect_bad(&s, TY_EINVAL, "job.command.env[0]: \"NOEQUALS\" is not NAME=value");
}

/* Issue 14: the priority's range and UTF-8 names and variables. */
Test(job_spec, priority_out_of_range) {
  ty_job_spec s = good_spec();
  s.priority = 5000;
  expect_bad(&s, TY_EINVAL, "job.priority: 5000 is outside -1000..1000");
  s = good_spec();
  s.priority = -1001;
  expect_bad(&s, TY_EINVAL, "job.priority: -1001 is outside -1000..1000");
  s = good_spec();
  s.priority = -1000;
  char err[256];
  cr_assert_eq(ty_job_spec_validate(&s, err, sizeof(err)), 0, "%s", err);
  ty_job_spec_close(&s);
}

Test(job_spec, invalid_utf8_in_names_and_variables) {
  ty_job_spec s = good_spec();
  s.name = ty_strdup("tr\xffin");
  expect_bad(&s, TY_EINVAL, "job.name: not valid UTF-8 (byte 0xff at offset 2)");
  s = good_spec();
  s.user = ty_strdup("\xc3");
  expect_bad(&s, TY_EINVAL, "job.user: not valid UTF-8 (byte 0xc3 at offset 0)");
  s = good_spec();
  s.name = ty_strdup("caf\xc3\xa9 \xe2\x9c\x93");
  char err[256];
  cr_assert_eq(ty_job_spec_validate(&s, err, sizeof(err)), 0, "%s", err);
  ty_job_spec_close(&s);
}

/* A variable's value is any bytes but NUL, as Linux allows and sbatch
 * passes (docs/cluster-protocol.md): a Latin-1 value in the submitter's
 * environment does not refuse `--export=ALL`, a batch script's default. */
Test(job_spec, env_values_need_not_be_utf8) {
  ty_job_spec s = good_spec();
  s.env = strv(2, "A=caf\xc3\xa9", "LEGACY=caf\xe9");
  s.envc = 2;
  char err[256];
  cr_assert_eq(ty_job_spec_validate(&s, err, sizeof(err)), 0, "%s", err);
  ty_job_spec_close(&s);
}

Test(job_spec, relative_cwd) {
  ty_job_spec s = good_spec();
  s.cwd = ty_strdup("tmp");
  expect_bad(&s, TY_EINVAL, "job.command.cwd: \"tmp\" is not an absolute path");
}

Test(job_spec, zero_resources_take_defaults) {
  ty_job_spec s = good_spec();
  s.has_resources = true;
  s.gpus_per_node = 2;
  char err[256];
  cr_assert_eq(ty_job_spec_validate(&s, err, sizeof(err)), 0, "%s", err);
  cr_assert_eq(s.nodes, 1u);
  cr_assert_eq(s.tasks_per_node, 1u);
  cr_assert_eq(s.cpus_per_task, 1u);
  cr_assert_eq(s.gpus_per_node, 2u);
  ty_job_spec_close(&s);
}

Test(job_spec, too_many_nodes) {
  ty_job_spec s = good_spec();
  s.has_resources = true;
  s.nodes = TY_JOB_MAX_NODES + 1;
  expect_bad(&s, TY_EINVAL, "job.resources.nodes: 10001 is above the limit of 10000");
}

Test(job_spec, resource_limits) {
  ty_job_spec s = good_spec();
  s.has_resources = true, s.nodes = 1, s.tasks_per_node = 5000;
  expect_bad(&s, TY_EINVAL, "job.resources.tasks_per_node: 5000 is above the limit of 1024");
  s = good_spec();
  s.has_resources = true, s.nodes = 1, s.cpus_per_task = 5000;
  expect_bad(&s, TY_EINVAL, "job.resources.cpus_per_task: 5000 is above the limit of 4096");
  s = good_spec();
  s.has_resources = true, s.nodes = 1, s.gpus_per_node = 65;
  expect_bad(&s, TY_EINVAL, "job.resources.gpus_per_node: 65 is above the limit of 64");
}

/* -w/-x: names given twice kept once, nodes raised to the required
 * count; a malformed name, or one in both lists, refused naming it. */
Test(job_spec, node_lists) {
  ty_job_spec s = good_spec();
  s.has_resources = true, s.nodes = 1;
  s.req_nodes = strv(3, "w1", "w2", "w1"), s.n_req_nodes = 3;
  s.exc_nodes = strv(2, "w3", "w3"), s.n_exc_nodes = 2;
  char err[256];
  cr_assert_eq(ty_job_spec_validate(&s, err, sizeof(err)), 0, "%s", err);
  cr_expect_eq(s.n_req_nodes, 2u);
  cr_expect_str_eq(s.req_nodes[1], "w2");
  cr_expect_eq(s.n_exc_nodes, 1u);
  cr_expect_eq(s.nodes, 2u, "-N 1 -w w1,w2 gets two nodes");
  ty_job_spec_close(&s);
  s = good_spec();
  s.has_resources = true, s.nodes = 3;
  s.req_nodes = strv(1, "w1"), s.n_req_nodes = 1;
  cr_assert_eq(ty_job_spec_validate(&s, err, sizeof(err)), 0, "%s", err);
  cr_expect_eq(s.nodes, 3u, "a larger -N stays");
  ty_job_spec_close(&s);
  s = good_spec();
  s.has_resources = true;
  s.req_nodes = strv(1, "w2"), s.n_req_nodes = 1;
  s.exc_nodes = strv(2, "w1", "w2"), s.n_exc_nodes = 2;
  expect_bad(&s, TY_EINVAL,
             "job.resources: node w2 is both required (-w/--nodelist) and excluded (-x/--exclude)");
  s = good_spec();
  s.has_resources = true;
  s.exc_nodes = strv(2, "w1", "w[2]"), s.n_exc_nodes = 2;
  expect_bad(&s, TY_EINVAL,
             "job.resources.excluded_nodes[1]: \"w[2]\" is not a node name ([A-Za-z0-9._-], 1 "
             "to 255 bytes)");
  s = good_spec();
  s.has_resources = true;
  s.req_nodes = strv(1, ""), s.n_req_nodes = 1;
  expect_bad(&s, TY_EINVAL,
             "job.resources.required_nodes[0]: \"\" is not a node name ([A-Za-z0-9._-], 1 to 255 "
             "bytes)");
  /* A bad name after a duplicate: refused with the list whole (the spec's
   * close freed the dropped duplicate a second time; found by fuzz_daemon). */
  s = good_spec();
  s.has_resources = true;
  s.req_nodes = strv(3, "w1", "w1", "w 2"), s.n_req_nodes = 3;
  expect_bad(&s, TY_EINVAL,
             "job.resources.required_nodes[2]: \"w 2\" is not a node name ([A-Za-z0-9._-], 1 to "
             "255 bytes)");
}

Test(job_spec, long_name) {
  ty_job_spec s = good_spec();
  s.name = calloc(TY_JOB_MAX_NAME + 2, 1);
  memset(s.name, 'a', TY_JOB_MAX_NAME + 1);
  expect_bad(&s, TY_EINVAL, "job.name: longer than 256 bytes");
}

/* Listings and `show -o` print a name as a field of one line. */
Test(job_spec, name_with_a_control_character) {
  ty_job_spec s = good_spec();
  s.name = strdup("a\tb");
  expect_bad(&s, TY_EINVAL,
             "job.name: control character 0x09 at offset 1 (it is shown on one line)");
}

/* history -P and ls -o "%i|%j" separate cells with '|': a name with one
 * shifted every later cell of its line. Refused at submit and at
 * `job update --name` (admin_job.c checks with ty_job_name_check). */
Test(job_spec, name_with_a_bar) {
  ty_job_spec s = good_spec();
  s.name = strdup("prep|train");
  expect_bad(&s, TY_EINVAL,
             "job.name: '|' at offset 4 (it separates the cells of parsable listings: history "
             "-P, ls -o)");
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_job_name_check("name", "a|", err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "name: '|' at offset 1"), "%s", err);
  cr_assert_eq(ty_job_name_check("name", "prep-train", err, sizeof err), 0);
}

Test(job_spec, long_user_and_queue) {
  ty_job_spec s = good_spec();
  s.user = calloc(TY_JOB_MAX_NAME + 2, 1);
  memset(s.user, 'u', TY_JOB_MAX_NAME + 1);
  expect_bad(&s, TY_EINVAL, "job.user: longer than 256 bytes");
  s = good_spec();
  s.queue = calloc(TY_JOB_MAX_NAME + 2, 1);
  memset(s.queue, 'q', TY_JOB_MAX_NAME + 1);
  expect_bad(&s, TY_EINVAL, "job.queue: longer than 256 bytes");
}

Test(job_spec, too_many_args) {
  ty_job_spec s = good_spec();
  s.argv = realloc(s.argv, (TY_JOB_MAX_ARGS + 1) * sizeof(char *));
  for (size_t i = 2; i < TY_JOB_MAX_ARGS + 1; i++)
    s.argv[i] = ty_strdup("x");
  s.argc = TY_JOB_MAX_ARGS + 1;
  expect_bad(&s, TY_EINVAL, "job.command.argv: 4097 arguments, at most 4096 are allowed");
}

/* Found by fuzz_daemon: a model path ending in '/' left the name empty and
 * the command's default (argv[0], absent for a graph) was read. */
Test(job_spec, graph_names_default_from_the_model_or_graph) {
  const char *paths[] = {"/m/", NULL};
  const char *names[] = {"/m/", "graph"};
  for (int i = 0; i < 2; i++) {
    ty_job_spec s = {0};
    s.kind = TY_JOB_KIND_GRAPH;
    if (paths[i])
      s.model_path = ty_strdup(paths[i]);
    else
      s.model_bytes = ty_xcalloc(1, 4), s.model_len = 4;
    s.train_config = ty_xcalloc(1, 1);
    s.train_config_len = 1;
    char err[256];
    cr_assert_eq(ty_job_spec_validate(&s, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(s.name, names[i]);
    ty_job_spec_close(&s);
  }
}

/* What other users read of a reason (docs/security.md): the controller's
 * descriptions of a rank's end or a failed launch lose their exit codes,
 * signals, argv[0] and paths; the requeue words after them stay. */
Test(job_reason, public_form_withholds_the_owners_details) {
  static const char *const cases[][2] = {
      {"rank 0 exited with code 42", "rank 0 failed"},
      {"rank 3 killed by signal 9 (SIGKILL): out of memory", "rank 3 failed"},
      {"rank 1 exited with code 2: x; requeued (1 of 3)", "rank 1 failed; requeued (1 of 3)"},
      {"launch failed on worker1: /opt/alice-secret-project/run: not found on worker1",
       "launch failed on worker1"},
      {"rank 0 failed to start: /opt/secret: is not executable", "rank 0 failed to start"},
      {"rank 2 exited 0 after a process was killed at the job's memory limit (--mem)",
       "rank 2 completed"},
      {"rank 0 exceeded the time limit of 60 s", "rank 0 exceeded the time limit of 60 s"},
      {"preempted by job 7 (queue high)", "preempted by job 7 (queue high)"},
      {"", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char out[256];
    ty_job_reason_public(cases[i][0], out, sizeof out);
    cr_expect_str_eq(out, cases[i][1], "public form of \"%s\"", cases[i][0]);
  }
  char out[32];
  ty_job_reason_public(NULL, out, sizeof out);
  cr_expect_str_eq(out, "");
}
