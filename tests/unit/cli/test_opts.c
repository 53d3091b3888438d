/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for cli/opts_submit.c: `trainctl submit`'s options (command, file and graph
 * modes, signals, arrays, dependencies) into the job, and every bad value rejected with a
 * message naming it. The other commands' options are in test_opts_commands.c. */
#include <criterion/criterion.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "proto/train_config.pb-c.h"
#include "proto/trainyard.pb-c.h"
#include "tests/support/tree.h"

#include "tests/unit/cli/args.h"

Test(submit, command_options_fill_the_job) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  int rc =
      SUBMIT("--command", "--gpus", "4", "--cpus=8", "--nodes", "2", "--ntasks-per-node", "4",
             "--mem", "16G", "--queue", "gpu", "--priority", "-5", "--name", "train", "--time",
             "1:30:00", "--cwd", "work", "--export", "A=1", "--", "python", "t.py", "--lr", "3");
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert(a.command_mode);
  cr_assert_eq(a.job.gpus_per_node, 4u);
  cr_assert_eq(a.job.cpus_per_task, 8u);
  cr_assert_eq(a.job.nodes, 2u);
  cr_assert_eq(a.job.tasks_per_node, 4u);
  cr_assert_eq(a.job.mem_per_node, 16ull << 30);
  cr_assert_str_eq(a.job.queue, "gpu");
  cr_assert_eq(a.job.priority, -5);
  cr_assert_str_eq(a.job.name, "train");
  cr_assert_eq(a.job.time_limit_s, 5400u);
  cr_assert_str_eq(a.job.cwd, "/home/a/work");
  cr_assert_eq(a.job.envc, 2u);
  cr_assert_str_eq(a.job.env[0], "A=1");
  cr_assert_str_eq(a.job.env[1], "SLURM_SUBMIT_DIR=/home/a", "where it was submitted, not --cwd");
  cr_assert_eq(a.job.argc, 4u);
  cr_assert_str_eq(a.job.argv[0], "python");
  cr_assert_str_eq(a.job.argv[2], "--lr"); /* the command's options are its own */
  cr_assert_str_eq(a.job.user, "alice");
  ty_cli_submit_args_close(&a);
}

Test(submit, sbatch_spellings) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  int rc = SUBMIT("--command", "-N", "2", "-n", "8", "-c", "3", "-G", "1", "-p", "gpu", "-J", "x",
                  "-t", "15m", "-a", "0-9%2", "-d", "afterok:4", "--", "true");
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert(a.job.nodes == 2 && a.job.tasks_per_node == 4 && a.job.cpus_per_task == 3);
  cr_assert(a.job.gpus_per_node == 1 && a.job.time_limit_s == 900);
  cr_assert_str_eq(a.job.queue, "gpu");
  cr_assert_str_eq(a.job.name, "x");
  cr_assert(a.job.array.n == 1 && a.job.array.ranges[0].last == 9 && a.job.array.max_running == 2);
  cr_assert(a.job.n_deps == 1 && a.job.deps[0].kind == TY_DEP_AFTEROK && a.job.deps[0].job.id == 4);
  ty_cli_submit_args_close(&a);
  rc = SUBMIT("--command", "--ntasks=2", "--cpus-per-task=2", "--gpus-per-node=1", "--partition=q",
              "--job-name=n", "--", "true");
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert(a.job.tasks_per_node == 2 && a.job.cpus_per_task == 2 && a.job.gpus_per_node == 1);
  cr_assert_str_eq(a.job.queue, "q");
  ty_cli_submit_args_close(&a);
}

/* A job's time limit as sbatch and srun write it: a bare number is minutes. */
Test(submit, time_limits_as_slurm_writes_them) {
  static const struct {
    const char *v;
    uint32_t secs;
  } ok[] = {{"60", 3600},      {"30:00", 1800},       {"1:30:00", 5400},   {"2-12", 216000},
            {"0-01:30", 5400}, {"1-00:00:30", 86430}, {"90s", 90},         {"15m", 900},
            {"2h", 7200},      {"1d", 86400},         {"0000000090", 5400}};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    ty_cli_submit_args a;
    char err[TY_ERR_LEN] = "";
    cr_assert_eq(SUBMIT("--command", "-t", (char *)ok[i].v, "--", "true"), 0, "%s: %s", ok[i].v,
                 err);
    cr_assert_eq(a.job.time_limit_s, ok[i].secs, "%s", ok[i].v);
    ty_cli_submit_args_close(&a);
  }
  /* "0" is Slurm's no limit (UNLIMITED): tests/unit/cli/test_slurm_opts.c */
  static const char *const bad[] = {
      "0:00", "0-0",         "abc",     "1-",         "-5",
      "1-x",  "99999999999", "1:2:3:4", "1234567890", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ty_cli_submit_args a;
    char err[TY_ERR_LEN] = "";
    cr_assert_neq(SUBMIT("--command", "--time", (char *)bad[i], "--", "true"), 0, "%s accepted",
                  bad[i]);
    cr_assert(!strncmp(err, "--time: ", 8), "%s: %s", bad[i], err);
  }
}

Test(submit, command_defaults_cwd_user_and_name) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--command", "-q", "--", "/usr/bin/hostname"), 0, "%s", err);
  cr_assert(a.quiet);
  cr_assert_str_eq(a.job.cwd, "/home/a");
  cr_assert_str_eq(a.job.user, "alice");
  cr_assert_str_eq(a.job.name, "hostname");
  cr_assert_eq(a.job.nodes, 0u); /* the controller's default */
  ty_cli_submit_args_close(&a);
}

Test(submit, command_without_dashdash_starts_at_first_word) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--command", "echo", "--gpus", "2"), 0, "%s", err);
  cr_assert_eq(a.job.argc, 3u);
  cr_assert_eq(a.job.gpus_per_node, 0u);
  ty_cli_submit_args_close(&a);
}

Test(submit, export_without_value_copies_the_environment) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  setenv("TY_TEST_EXPORTED", "v a l", 1);
  cr_assert_eq(SUBMIT("--command", "--export", "TY_TEST_EXPORTED", "--", "env"), 0, "%s", err);
  cr_assert_str_eq(a.job.env[0], "TY_TEST_EXPORTED=v a l");
  ty_cli_submit_args_close(&a);
}

Test(submit, file_mode) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("job.pb", "--json"), 0, "%s", err);
  cr_assert(!a.command_mode);
  cr_assert(a.json);
  cr_assert_str_eq(a.file, "job.pb");
  ty_cli_submit_args_close(&a);
  /* -q before a FILE that exists is --quiet, as ever (not sbatch's --qos). */
  cr_assert_eq(SUBMIT("-q", "/dev/null"), 0, "%s", err);
  cr_assert(a.quiet);
  cr_assert_str_eq(a.file, "/dev/null");
  ty_cli_submit_args_close(&a);
}

Test(submit, graph_mode_builds_a_graph_job) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--model", "models/enc.onnx", "--config", "enc.pb", "--nodes", "2",
                      "--ntasks-per-node", "4", "--parallelism", "tensor", "--time", "1h"),
               0, "%s", err);
  cr_assert(a.graph_mode && !a.command_mode);
  cr_assert_eq(a.job.kind, TY_JOB_KIND_GRAPH);
  cr_assert_str_eq(a.job.model_path, "/home/a/models/enc.onnx"); /* the nodes open it by path */
  cr_assert_str_eq(a.config_file, "enc.pb");
  cr_assert_str_eq(a.job.name, "enc");
  cr_assert_str_eq(a.job.user, "alice");
  cr_assert_eq(a.job.parallelism, TY_PARALLELISM_TENSOR);
  cr_assert_eq(a.job.nodes, 2u);
  cr_assert_eq(a.job.tasks_per_node, 4u);
  cr_assert_eq(a.job.time_limit_s, 3600u);
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--config", "c.pb", "--model", "/abs/gpt", "--name", "mine"), 0, "%s", err);
  cr_assert_str_eq(a.job.model_path, "/abs/gpt");
  cr_assert_str_eq(a.job.name, "mine");
  cr_assert_eq(a.job.parallelism, TY_PARALLELISM_AUTO);
  ty_cli_submit_args_close(&a);
}

Test(submit, graph_mode_reads_and_checks_the_config) {
  char dir[TY_TEST_DIR_LEN], path[TY_TEST_DIR_LEN + 16];
  cr_assert_eq(ty_test_make_dir(dir, "cli-cfg"), 0);
  ty_job_spec j;
  memset(&j, 0, sizeof j);
  char err[TY_ERR_LEN] = "";
  static const struct {
    const char *bytes;
    size_t len;
    int rc;
    const char *want;
  } cases[] = {
      {"\x40\x20", 2, 0, ""}, /* batch_size (field 8): 32 */
      {"", 0, TY_EPROTO, "is empty, not a trainyard.TrainConfig"},
      {"batch_size: 32\n", 15, TY_EPROTO, "if it is text format, encode it first: protoc"},
      {"\x01\x02\x03", 3, TY_EPROTO, "does not decode as a trainyard.TrainConfig"},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(cases); i++) {
    snprintf(path, sizeof path, "%s/c%zu.pb", dir, i);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(cases[i].bytes, 1, cases[i].len, f);
    fclose(f);
    err[0] = '\0';
    cr_expect_eq(ty_cli_load_train_config(path, &j, err, sizeof err), cases[i].rc, "case %zu: %s",
                 i, err);
    cr_expect(strstr(err, cases[i].want), "case %zu: want \"%s\", got \"%s\"", i, cases[i].want,
              err);
    if (cases[i].rc == 0) cr_expect_eq(j.train_config_len, cases[i].len);
    remove(path);
  }
  cr_expect_eq(ty_cli_load_train_config("/nonexistent/c.pb", &j, err, sizeof err), TY_EIO);
  cr_expect(strstr(err, "--config: /nonexistent/c.pb"), "%s", err);
  ty_job_spec_close(&j);
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

/* The dataset.dir that ty_cli_load_train_config leaves in a config holding
 * `ds` (NULL: none), loaded by a job submitted from cwd. */
static char *dir_after_load(Trainyard__Dataset *ds, const char *cwd) {
  Trainyard__TrainConfig c = TRAINYARD__TRAIN_CONFIG__INIT;
  c.dataset = ds;
  c.batch_size = 8;
  uint8_t buf[512];
  size_t n = trainyard__train_config__pack(&c, buf);
  char path[] = "/tmp/ty-cli-cfg-XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0 && write(fd, buf, n) == (ssize_t)n);
  close(fd);
  ty_job_spec j;
  memset(&j, 0, sizeof j);
  j.cwd = strdup(cwd);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_load_train_config(path, &j, err, sizeof err), 0, "%s", err);
  remove(path);
  Trainyard__TrainConfig *back =
      trainyard__train_config__unpack(NULL, j.train_config_len, j.train_config);
  cr_assert(back && back->batch_size == 8);
  char *dir = strdup(back->dataset ? back->dataset->dir : "(none)");
  trainyard__train_config__free_unpacked(back, NULL);
  ty_job_spec_close(&j);
  return dir;
}

/* A graph job's ranks run in their worker's job directory: relative data
 * paths are taken from the submitter's directory, as the model path is. */
Test(submit, graph_mode_anchors_relative_data_paths_at_the_submit_directory) {
  Trainyard__TokenStream tok = TRAINYARD__TOKEN_STREAM__INIT;
  tok.train_path = "train.bin";
  Trainyard__Dataset ds = TRAINYARD__DATASET__INIT;
  ds.tokens = &tok;
  char *d = dir_after_load(&ds, "/home/a");
  cr_assert_str_eq(d, "/home/a");
  free(d);
  ds.dir = "data";
  d = dir_after_load(&ds, "/home/a");
  cr_assert_str_eq(d, "/home/a/data");
  free(d);
  ds.dir = "/srv/data"; /* absolute: kept */
  d = dir_after_load(&ds, "/home/a");
  cr_assert_str_eq(d, "/srv/data");
  free(d);
  Trainyard__Dataset fmnist = TRAINYARD__DATASET__INIT; /* "" = Debian's directory */
  d = dir_after_load(&fmnist, "/home/a");
  cr_assert_str_eq(d, "");
  free(d);
  d = dir_after_load(NULL, "/home/a");
  cr_assert_str_eq(d, "(none)");
  free(d);
}

Test(submit, signal_forms) {
  static const struct {
    const char *v;
    uint32_t sig, secs;
    bool batch; /* B: the batch script alone */
  } ok[] = {
      {"USR2", SIGUSR2, 60, false},       {"15", SIGTERM, 60, false}, /* Slurm's: 60 s */
      {"B:USR1", SIGUSR1, 60, true},      {"USR1@300", SIGUSR1, 300, false},
      {"SIGUSR2@10", SIGUSR2, 10, false}, {"term@5m", SIGTERM, 300, false},
      {"sigint@1", SIGINT, 1, false},     {"10@60", 10, 60, false},
      {"WINCH@2", SIGWINCH, 2, false},    {"64@1", 64, 1, false},
      {"B:USR1@60", SIGUSR1, 60, true},   {"R:USR2@5", SIGUSR2, 5, false},
      {"BR:TERM@30", SIGTERM, 30, true},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(ok); i++) {
    const char *args[] = {"--command", "--time", "1h", "--signal", ok[i].v, "--", "true"};
    ty_cli_submit_args a;
    char err[TY_ERR_LEN] = "";
    cr_assert_eq(ty_cli_parse_submit(7, (char **)args, "/tmp", "u", &a, err, sizeof err), 0,
                 "%s: %s", ok[i].v, err);
    cr_expect_eq(a.job.warn_signal, ok[i].sig, "%s", ok[i].v);
    cr_expect_eq(a.job.warn_before_s, ok[i].secs, "%s", ok[i].v);
    cr_expect_eq(a.job.warn_batch_only, ok[i].batch, "%s", ok[i].v);
    ty_cli_submit_args_close(&a);
  }
}

Test(submit, signal_reaches_the_encoded_job) {
  const char *args[] = {"--command", "--signal", "TERM@90", "--requeue-on-failure",
                        "2",         "--",       "true"};
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_submit(7, (char **)args, "/tmp", "u", &a, err, sizeof err), 0, "%s",
               err);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_encode_submit(&a.job, NULL, &b), 0);
  Trainyard__SubmitJobRequest *req = trainyard__submit_job_request__unpack(NULL, b.len, b.data);
  cr_assert_not_null(req);
  cr_expect_eq(req->job->warn_signal, (uint32_t)SIGTERM);
  cr_expect_eq(req->job->warn_before_s, 90u);
  cr_expect_eq(req->job->max_rank_failure_requeues, 2u);
  cr_expect(!req->job->no_requeue);
  trainyard__submit_job_request__free_unpacked(req, NULL);
  ty_buf_close(&b);
  ty_cli_submit_args_close(&a);
}

Test(submit, no_requeue_reaches_the_encoded_job) {
  const char *args[] = {"--command", "--no-requeue", "--", "true"};
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_submit(4, (char **)args, "/tmp", "u", &a, err, sizeof err), 0, "%s",
               err);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_encode_submit(&a.job, NULL, &b), 0);
  Trainyard__SubmitJobRequest *req = trainyard__submit_job_request__unpack(NULL, b.len, b.data);
  cr_assert_not_null(req);
  cr_expect(req->job->no_requeue);
  trainyard__submit_job_request__free_unpacked(req, NULL);
  ty_buf_close(&b);
  ty_cli_submit_args_close(&a);
}

typedef struct bad_case {
  const char *args[8];
  const char *want; /* substring of the message */
} bad_case;

static const bad_case bad_submits[] = {
    {{"--command", "-N", "2", "-n", "3", "--", "true"}, "--ntasks 3 does not divide evenly"},
    {{"--command", "-N1", "-n4", "--ntasks-per-node", "2", "--", "true"}, "--ntasks 4 disagrees"},
    {{"--command", "-n", "3", "--ntasks-per-node", "2", "--", "true"}, "is not a multiple of"},
    {{"--command", "-n", "0", "--", "true"}, "--ntasks: 0 is not allowed"},
    {{"-n", "2", "job.pb"}, "--ntasks only applies with --command"},
    {{"-N", "2", "job.pb"}, "--nodes only applies with --command"},
    {{"--command", "--gpus", "x", "--", "true"}, "--gpus: \"x\" is not a non-negative integer"},
    {{"--command", "--gpus", "-1", "--", "true"}, "--gpus: \"-1\""},
    {{"--command", "--gpus", "99999", "--", "true"}, "--gpus: 99999 is too large"},
    {{"--command", "--cpus", "0", "--", "true"}, "--cpus: 0 is not allowed"},
    {{"--command", "--cpus", "2x", "--", "true"}, "--cpus: \"2x\""},
    {{"--command", "--nodes", "0", "--", "true"}, "--nodes: 0 is not allowed"},
    {{"--command", "--nodes", "", "--", "true"}, "--nodes: \"\""},
    {{"--command", "--ntasks-per-node", "0", "--", "true"}, "--ntasks-per-node: 0"},
    {{"--command", "--mem", "5Q", "--", "true"}, "--mem: \"5Q\" is not a size"},
    {{"--command", "--mem", "-1G", "--", "true"}, "--mem: \"-1G\" is not a size"},
    {{"--command", "--queue", "", "--", "true"}, "--queue: must not be empty"},
    {{"--command", "--priority", "high", "--", "true"}, "--priority: \"high\" is not an integer"},
    {{"--command", "--priority", "99999999999", "--", "true"},
     "--priority: 99999999999 is out of range"},
    {{"--command", "--name", "", "--", "true"}, "--name: must not be empty"},
    {{"--command", "--time", "5x", "--", "true"},
     "--time: \"5x\" is not a time limit (as Slurm's: 60 = 60 minutes"},
    {{"--command", "--time", "0:00", "--", "true"},
     "--time: \"0:00\" is not a time limit above 0 (UNLIMITED or 0 for none)"},
    {{"--command", "--time", "UNLIMITEDx", "--", "true"}, "--time: \"UNLIMITEDx\" is not a time"},
    {{"--command", "--cwd", "", "--", "true"}, "--cwd: must not be empty"},
    {{"--command", "--signal", "soon", "--", "true"}, "--signal: \"soon\" is not a signal name"},
    {{"--command", "--signal", "0", "--", "true"}, "--signal: 0 is not allowed"},
    {{"--command", "--signal", "120", "--", "true"}, "--signal: 120 is too large"},
    {{"--command", "--signal", "USR1@0", "--", "true"},
     "--signal: the warning must come at least 1 s"},
    {{"--command", "--signal", "USR1@", "--", "true"}, "--signal: \"USR1@\" is not SIG[@SECONDS]"},
    {{"--command", "--signal", "@60", "--", "true"}, "--signal: \"\" is not a signal"},
    {{"--command", "--signal", "FOO@60", "--", "true"}, "--signal: \"FOO\" is not a signal name"},
    {{"--command", "--signal", "SIG@60", "--", "true"}, "--signal: \"SIG\" is not a signal name"},
    {{"--command", "--signal", "65@60", "--", "true"}, "--signal: 65 is too large"},
    {{"--command", "--signal", "0@60", "--", "true"}, "--signal: 0 is not allowed"},
    {{"--command", "--signal", "-2@60", "--", "true"}, "--signal: \"-2\" is not a signal name"},
    {{"--command", "--signal", "SIGVERYLONGNAME@60", "--", "true"},
     "--signal: \"SIGVERYLONGNAME\""},
    {{"--command", "--time", "60s", "--signal", "60", "--", "true"},
     "--signal: 60 s before the limit is not within --time (60 s)"},
    {{"--signal", "60", "job.pb"}, "--signal only applies with --command"},
    {{"--command", "--requeue-on-failure", "101", "--", "true"},
     "--requeue-on-failure: 101 is too large"},
    {{"--command", "--requeue-on-failure", "x", "--", "true"}, "--requeue-on-failure: \"x\""},
    {{"--command", "--export", "1A=b", "--", "true"}, "--export: \"1A=b\" is not NAME=VALUE"},
    {{"--command", "--export", "=b", "--", "true"}, "--export: \"=b\""},
    {{"--command", "--export", "TY_SURELY_UNSET_VAR", "--", "true"},
     "--export: TY_SURELY_UNSET_VAR is not set"},
    {{"--command", "--gpus"}, "--gpus needs a value"},
    {{"--command", "--quiet=yes", "--", "true"}, "--quiet does not take a value"},
    {{"--command", "--frobnicate", "--", "true"}, "unknown option --frobnicate"},
    {{"--command", "-z", "--", "true"}, "unknown option -z"},
    {{"--command"}, "submit --command: no command given"},
    {{"--command", "--"}, "submit --command: no command given"},
    {{"--gpus", "2", "job.pb"}, "--gpus only applies with --command"},
    {{"--quiet"}, "submit: missing SCRIPT, FILE"},
    /* sbatch's -q QOS: trainctl's -q is --quiet, and the QOS no file. */
    {{"-q", "normal", "--wrap", "hostname"},
     "-q is trainctl's --quiet (print only the job id), not sbatch's --qos, so \"normal\" was "
     "read as the job FILE"},
    {{"-q", "normal", "job.pb"}, "give --qos normal (accepted with a warning)"},
    /* sbatch's aftercorr: refused with what to write instead */
    {{"--array", "0-3", "--dependency", "aftercorr:12", "--wrap", "true"},
     "--dependency: aftercorr (each element waits for the same element of another array) is not "
     "supported: give afterok:ID"},
    {{"--dependency", "afterburstbuffer:12", "--wrap", "true"}, "there are no burst buffers"},
    /* sbatch's after:ID+MINUTES: named as such, not as a bad job id */
    {{"--dependency", "after:45+5", "--wrap", "true"},
     "--dependency: \"after:45+5\": +time (start that many minutes after the job started) is not "
     "supported: give after:45 (start once it started), or --begin now+Nm"},
    /* a forgotten -J value: --wrap is not the job's name */
    {{"-J", "--wrap", "true"}, "-J needs a value (the next argument, --wrap, is an option)"},
    {{"--job-name", "--wrap=true"},
     "--job-name needs a value (the next argument, --wrap=true, is an option)"},
    {{"a.pb", "b.pb"}, "submit: unexpected argument \"b.pb\""},
    {{"a.pb", "--command", "--", "true"}, "not both"},
    {{"--model", "m.onnx"}, "submit --model: a graph job also needs --config C.pb"},
    {{"--config", "c.pb"}, "submit --config: a graph job also needs --model M.onnx"},
    {{"--model", "m.onnx", "--config", "c.pb", "--command", "--", "true"},
     "give --model or --command, not both"},
    {{"job.pb", "--model", "m.onnx", "--config", "c.pb"}, "give a FILE or --model, not both"},
    {{"--model", "m.onnx", "--config", "c.pb", "extra"},
     "unexpected argument \"extra\" (a graph job is --model and --config)"},
    {{"--model", "", "--config", "c.pb"}, "--model: must not be empty"},
    {{"--model", "m.onnx", "--config", "c.pb", "--parallelism", "sideways"},
     "--parallelism: \"sideways\" is not auto, data, tensor or grid"},
    {{"--model", "m.onnx", "--config", "c.pb", "--nodes", "0"}, "--nodes: 0 is not allowed"},
};

/* More job ids than a job may wait for: refused, naming the limit and the
 * array, which waits for any number of jobs under one id. */
Test(submit, a_dependency_on_too_many_jobs_says_to_use_an_array) {
  ty_buf dep;
  ty_buf_init(&dep);
  ty_buf_printf(&dep, "afterok");
  for (int id = 1; id <= 257; id++)
    ty_buf_printf(&dep, ":%d", id);
  ty_buf_append(&dep, "", 1);
  char *args[] = {"--dependency", (char *)dep.data, "--wrap", "true"};
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_submit(4, args, "/tmp", "u", &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "--dependency: more than 256 conditions") &&
                strstr(err, "afterok:ARRAY waits for every element"),
            "%s", err);
  ty_buf_close(&dep);
}

Test(submit, every_bad_option_is_rejected_by_name) {
  for (size_t i = 0; i < TY_ARRAY_LEN(bad_submits); i++) {
    const bad_case *c = &bad_submits[i];
    int n = 0;
    while (c->args[n])
      n++;
    ty_cli_submit_args a;
    char err[TY_ERR_LEN] = "";
    int rc = ty_cli_parse_submit(n, (char **)c->args, "/tmp", "u", &a, err, sizeof err);
    cr_expect_eq(rc, TY_EINVAL, "case %zu (%s) accepted", i, c->want);
    cr_expect(strstr(err, c->want), "case %zu: want \"%s\", got \"%s\"", i, c->want, err);
  }
}

Test(submit, arrays_and_dependencies) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--command", "--array", "0-999:2%10", "--dependency", "afterok:5:6,singleton",
                      "--kill-on-invalid-dep", "yes", "--", "true"),
               0, "%s", err);
  cr_assert_eq(a.job.array.n, 1u);
  cr_assert(a.job.array.ranges[0].last == 999 && a.job.array.ranges[0].step == 2);
  cr_assert_eq(a.job.array.max_running, 10u);
  cr_assert_eq(a.job.n_deps, 3u);
  cr_assert(a.job.deps[1].kind == TY_DEP_AFTEROK && a.job.deps[1].job.id == 6);
  cr_assert_eq(a.job.deps[2].kind, TY_DEP_SINGLETON);
  cr_assert_eq(a.job.on_invalid_dep, TY_DEP_INVALID_KILL);
  ty_cli_submit_args_close(&a);
  /* Every bad value names its option. */
  static char *const bad[][2] = {{"--array", "5-1"},
                                 {"--array", "0-10%x"},
                                 {"--array", "a"},
                                 {"--dependency", "afterok"},
                                 {"--dependency", "after:x"},
                                 {"--dependency", "soon:4"},
                                 {"--dependency", "afterok:1,afterany:2?afterok:3"},
                                 {"--dependency", "afterok:1:"},
                                 {"--dependency", "afterok:1::2"},
                                 {"--dependency", "afterok:1,,singleton"},
                                 {"--dependency", "afterok:1,"},
                                 {"--dependency", "afterok:1??afterany:2"},
                                 {"--kill-on-invalid-dep", "maybe"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    cr_assert_eq(SUBMIT("--command", bad[i][0], bad[i][1], "--", "true"), TY_EINVAL, "%s %s",
                 bad[i][0], bad[i][1]);
    cr_assert(strncmp(err, bad[i][0], strlen(bad[i][0])) == 0, "%s", err);
  }
}
