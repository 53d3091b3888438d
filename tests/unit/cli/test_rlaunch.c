/* SPDX-License-Identifier: Apache-2.0 */
/* rlaunch's pure parts (cli/cli.h): the command line and each rejection,
 * the environment deny-list, line framing, exit codes and the codecs. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/rlaunch.h"
#include "proto/trainyard.pb-c.h"

static int parse(ty_rl_opts *o, char *err, size_t err_len, const char *const *args) {
  char *argv[32] = {"rlaunch"};
  int argc = 1;
  for (size_t i = 0; args[i]; i++)
    argv[argc++] = (char *)args[i];
  char *env[] = {"FOO=bar",   "DISPLAY=:0", "SSH_AUTH_SOCK=/x",        "TERM=xterm",
                 "PWD=/here", "RANK=9",     "SLURM_SUBMIT_HOST=outer", NULL};
  return ty_rl_parse(argc, argv, "/work", "alice", env, o, err, err_len);
}

Test(rlaunch_args, options_and_command) {
  ty_rl_opts o;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse(&o, err, sizeof err,
                     (const char *[]){"--gpu", "2",       "--cpu=3",     "--mem",
                                      "16G",   "--nodes", "2",           "--ntasks-per-node",
                                      "4",     "--queue", "q",           "--priority",
                                      "-5",    "--time",  "1:30:00",     "--name",
                                      "n",     "--label", "--stdin=all", "--detach",
                                      "--",    "python",  "-u",          "x.py",
                                      NULL}),
               0, "%s", err);
  cr_assert_eq(o.job.gpus_per_node, 2);
  cr_assert_eq(o.job.cpus_per_task, 3);
  cr_assert_eq(o.job.mem_per_node, 16ull << 30);
  cr_assert_eq(o.job.nodes, 2);
  cr_assert_eq(o.job.tasks_per_node, 4);
  cr_assert_str_eq(o.job.queue, "q");
  cr_assert_eq(o.job.priority, -5);
  cr_assert_eq(o.job.time_limit_s, 5400);
  cr_assert(o.label && o.detach && !o.pty);
  cr_assert_eq(o.stdin_mode, TY_RL_STDIN_ALL);
  cr_assert_eq(o.job.argc, 3);
  cr_assert_str_eq(o.job.argv[1], "-u"); /* the command's options stay its own */
  cr_assert_str_eq(o.job.cwd, "/work");
  cr_assert_str_eq(o.job.user, "alice");
  cr_assert_eq(o.job.envc, 1, "not the outer job's SLURM_SUBMIT_HOST");
  cr_assert_str_eq(o.job.env[0], "FOO=bar");
  /* srun's SLURM_SUBMIT_HOST: this host, unless --export gave one */
  char host[256] = "", want[300];
  cr_assert_eq(gethostname(host, sizeof host - 1), 0);
  snprintf(want, sizeof want, "SLURM_SUBMIT_HOST=%s", host);
  ty_rl_submit_host(&o.job);
  cr_assert_eq(o.job.envc, 2);
  cr_assert_str_eq(o.job.env[1], want);
  ty_rl_opts_close(&o);
  cr_assert_eq(parse(&o, err, sizeof err,
                     (const char *[]){"--export", "SLURM_SUBMIT_HOST=login1", "--", "true", NULL}),
               0, "%s", err);
  ty_rl_submit_host(&o.job);
  size_t n = 0;
  for (size_t i = 0; i < o.job.envc; i++)
    n += !strncmp(o.job.env[i], "SLURM_SUBMIT_HOST=", 18);
  cr_assert_eq(n, 1);
  cr_assert_str_eq(o.job.env[0], "SLURM_SUBMIT_HOST=login1");
  /* srun's SLURM_UMASK: this process's umask, left as it was */
  mode_t old = umask(027);
  ty_rl_submit_process(&o.job, o.slurm.no_propagate);
  cr_expect_eq(umask(old), 027, "the umask was not put back");
  cr_expect(o.job.process.has_umask && o.job.process.umask == 027, "umask %o", o.job.process.umask);
  /* PropagateResourceLimits=ALL: the soft limits, NOFILE's among them */
  struct rlimit nofile;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &nofile), 0);
  cr_expect(o.job.process.has_soft[TY_LIMIT_NOFILE] &&
            o.job.process.soft[TY_LIMIT_NOFILE] == (uint64_t)nofile.rlim_cur);
  cr_expect(o.job.process.has_soft[TY_LIMIT_CORE] && o.job.process.has_soft[TY_LIMIT_CPU]);
  ty_rl_opts_close(&o);
}

Test(rlaunch_args, command_without_dashes_and_pty_keeps_term) {
  ty_rl_opts o;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse(&o, err, sizeof err, (const char *[]){"--pty", "bash", "-l", NULL}), 0, "%s",
               err);
  cr_assert_eq(o.job.argc, 2);
  bool term = false;
  for (size_t i = 0; i < o.job.envc; i++)
    term |= strcmp(o.job.env[i], "TERM=xterm") == 0;
  cr_assert(term, "--pty keeps TERM");
  ty_rl_opts_close(&o);
}

/* srun's short options with an optional joined value (-K[0|1], -k[off])
 * are ignored with a warning as srun takes them: -K1 is not -K then an
 * unknown -1, -koff not -k then -o ff; every letter takes a value as the
 * option table says. */
Test(rlaunch_args, optional_joined_short_values_are_srun_s) {
  ty_rl_opts o;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_rl_check_shortopts(err, sizeof err), 0, "%s", err);
  const char *const cases[][5] = {{"-K1", "-n1", "true", NULL},
                                  {"-K0", "true", NULL},
                                  {"-koff", "true", NULL},
                                  {"-K", "-k", "true", NULL}};
  for (size_t i = 0; i < TY_ARRAY_LEN(cases); i++) {
    cr_assert_eq(parse(&o, err, sizeof err, cases[i]), 0, "%s: %s", cases[i][0], err);
    cr_assert(o.job.argc == 1 && strcmp(o.job.argv[0], "true") == 0, "%s", cases[i][0]);
    ty_rl_opts_close(&o);
  }
}

Test(rlaunch_args, sruns_spellings) {
  ty_rl_opts o;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse(&o, err, sizeof err,
                     (const char *[]){"-N", "2", "-n", "8", "-c", "3", "-G", "1", "-p", "q", "-t",
                                      "15m", "-J", "x", "-l", "hostname", "-n", NULL}),
               0, "%s", err);
  cr_assert(o.job.nodes == 2 && o.job.tasks_per_node == 4 && o.job.cpus_per_task == 3);
  cr_assert(o.job.gpus_per_node == 1 && o.job.time_limit_s == 900 && o.label);
  cr_assert_str_eq(o.job.queue, "q");
  cr_assert_str_eq(o.job.name, "x");
  cr_assert(o.job.argc == 2 && strcmp(o.job.argv[1], "-n") == 0); /* the command's own -n */
  ty_rl_opts_close(&o);
  cr_assert_eq(parse(&o, err, sizeof err,
                     (const char *[]){"--ntasks=3", "--cpus-per-task=2", "--gpus-per-node=2",
                                      "--partition=p", "--job-name=j", "true", NULL}),
               0, "%s", err);
  cr_assert(o.job.tasks_per_node == 3 && o.job.cpus_per_task == 2 && o.job.gpus_per_node == 2);
  cr_assert_str_eq(o.job.queue, "p");
  cr_assert_str_eq(o.job.name, "j");
  ty_rl_opts_close(&o);
  cr_assert_eq(
      parse(&o, err, sizeof err,
            (const char *[]){"-N", "2", "--ntasks-per-node", "3", "-n", "6", "true", NULL}),
      0, "%s", err); /* consistent: both may be given */
  cr_assert_eq(o.job.tasks_per_node, 3);
  ty_rl_opts_close(&o);
  cr_assert_eq(parse(&o, err, sizeof err,
                     (const char *[]){"-n", "4", "--ntasks-per-node", "2", "true", NULL}),
               0, "%s", err); /* srun's: no -N, so 4 / 2 = 2 nodes */
  cr_assert(o.job.nodes == 2 && o.job.tasks_per_node == 2);
  ty_rl_opts_close(&o);
}

/* srun's --mem=4000 is megabytes, as sbatch's; -t UNLIMITED asks for no limit. */
Test(rlaunch_args, bare_memory_is_megabytes_and_time_may_be_unlimited) {
  ty_rl_opts o;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(
      parse(&o, err, sizeof err, (const char *[]){"--mem=4000", "-t", "UNLIMITED", "true", NULL}),
      0, "%s", err);
  cr_assert_eq(o.job.mem_per_node, 4000ull << 20);
  cr_assert_eq(o.job.time_limit_s, TY_TIME_LIMIT_UNLIMITED);
  ty_rl_opts_close(&o);
}

static void rejects(const char *const *args, const char *what) {
  ty_rl_opts o;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse(&o, err, sizeof err, args), TY_EINVAL, "accepted: %s", what);
  cr_assert(strstr(err, what), "message [%s] lacks [%s]", err, what);
}

Test(rlaunch_args, rejections_name_the_option) {
  rejects((const char *[]){"--gpu", "x", "--", "true", NULL}, "--gpu");
  rejects((const char *[]){"--gpu", "65", "--", "true", NULL}, "--gpu");
  rejects((const char *[]){"--cpu", "0", "--", "true", NULL}, "--cpu");
  rejects((const char *[]){"--mem", "lots", "--", "true", NULL}, "--mem");
  rejects((const char *[]){"--nodes", "0", "--", "true", NULL}, "--nodes");
  rejects((const char *[]){"--ntasks-per-node", "-1", "--", "true", NULL}, "--ntasks-per-node");
  rejects((const char *[]){"--priority", "high", "--", "true", NULL}, "--priority");
  rejects((const char *[]){"-n", "0", "true", NULL}, "--ntasks: 0 is not allowed");
  rejects((const char *[]){"-N", "2", "-n", "3", "true", NULL},
          "--ntasks 3 does not divide evenly over 2 nodes");
  rejects((const char *[]){"-N", "1", "-n", "4", "--ntasks-per-node", "2", "true", NULL},
          "--ntasks 4 disagrees with --nodes 1 x --ntasks-per-node 2");
  rejects((const char *[]){"-n", "3", "--ntasks-per-node", "2", "true", NULL},
          "--ntasks 3 is not a multiple of --ntasks-per-node 2");
  rejects((const char *[]){"-n", "2000", "true", NULL}, "2000 ranks per node (at most 1024");
  rejects((const char *[]){"-p", "gpu,cpu", "true", NULL}, "\"gpu,cpu\" is a list of queues");
  rejects((const char *[]){"--time", "soon", "--", "true", NULL}, "--time");
  rejects((const char *[]){"--stdin=1", "--", "true", NULL}, "--stdin");
  rejects((const char *[]){"--signal", "NOPE@5", "--", "true", NULL}, "--signal");
  rejects((const char *[]){"--signal", "0", "--", "true", NULL}, "--signal");
  rejects((const char *[]){"--queue", "", "--", "true", NULL}, "--queue");
  rejects((const char *[]){"--name", "", "--", "true", NULL}, "--name");
  rejects((const char *[]){"--label=yes", "--", "true", NULL}, "--label");
  rejects((const char *[]){"--bogus", "--", "true", NULL}, "--bogus");
  rejects((const char *[]){"--gpu", NULL}, "--gpu");
  rejects((const char *[]){"--label", NULL}, "no command");
}

Test(rlaunch_args, deny_list) {
  cr_assert(ty_rl_env_denied("HOSTNAME=h", false));
  cr_assert(ty_rl_env_denied("SSH_CONNECTION=x", false));
  cr_assert(ty_rl_env_denied("XDG_SESSION_ID=3", false));
  cr_assert(ty_rl_env_denied("_=/usr/bin/rlaunch", false));
  cr_assert(ty_rl_env_denied("CUDA_VISIBLE_DEVICES=0", false));
  cr_assert(ty_rl_env_denied("TERM=xterm", false));
  cr_assert(!ty_rl_env_denied("TERM=xterm", true));
  cr_assert(!ty_rl_env_denied("PATH=/bin", false));
  cr_assert(!ty_rl_env_denied("HOSTNAMES=a,b", false), "only the exact name");
  cr_assert(ty_rl_env_denied("noequals", false));
}

Test(rlaunch_args, lines_are_framed_whole) {
  ty_buf partial, out;
  ty_buf_init(&partial);
  ty_buf_init(&out);
  ty_rl_frame_lines(&partial, "1: ", (const uint8_t *)"ab", 2, &out);
  cr_assert_eq(out.len, 0);
  ty_rl_frame_lines(&partial, "1: ", (const uint8_t *)"c\nd\ne", 5, &out);
  ty_rl_frame_flush(&partial, "1: ", &out);
  cr_assert_eq(out.len, strlen("1: abc\n1: d\n1: e"));
  cr_assert_eq(memcmp(out.data, "1: abc\n1: d\n1: e", out.len), 0);
  ty_buf_close(&partial);
  ty_buf_close(&out);
}

Test(rlaunch_args, exit_codes) {
  cr_assert_eq(ty_rl_rank_exit(3, 0), 3);
  cr_assert_eq(ty_rl_rank_exit(0, SIGKILL), 137);
}

Test(rlaunch_args, codecs_round_trip_and_reject_garbage) {
  ty_buf b;
  ty_buf_init(&b);
  ty_task_locations l;
  cr_assert_eq(ty_cli_decode_locations((const uint8_t *)"\xff\xff\xff", 3, &l), TY_EPROTO);
  ty_attach_output o;
  void *owner = NULL;
  cr_assert_eq(ty_rl_decode_output((const uint8_t *)"\xff\xff\xff", 3, &o, &owner), TY_EPROTO);
  ty_attach_input in = {.job_id = 7, .rank = 1, .signal = SIGINT, .rows = 40, .cols = 120};
  cr_assert_eq(ty_rl_encode_input(&in, &b), 0);
  cr_assert_gt(b.len, 0);
  ty_buf_close(&b);
}

Test(rlaunch_args, timing_asks_the_controller_for_its_stage_times) {
  ty_rl_opts o;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse(&o, err, sizeof err, (const char *[]){"--timing", "true", NULL}), 0, "%s",
               err);
  cr_assert(o.timing);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_rl_encode_submit(&o, 0, 0, "abc123", &b), 0);
  Trainyard__SubmitJobRequest *r = trainyard__submit_job_request__unpack(NULL, b.len, b.data);
  cr_assert_not_null(r);
  cr_expect(r->watch && r->want_tokens && r->timing, "the placement is pushed, with tokens");
  cr_expect(r->job->interactive);
  cr_expect_str_eq(r->request_id, "abc123", "a retried submit is the same job");
  trainyard__submit_job_request__free_unpacked(r, NULL);
  ty_buf_close(&b);
  ty_rl_opts_close(&o);
}

/* srun's -d reaches the controller: the request carries the conditions. */
Test(rlaunch_args, dependency_is_in_the_submit) {
  ty_rl_opts o;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(
      parse(&o, err, sizeof err, (const char *[]){"-d", "afterok:5:7_2,singleton", "true", NULL}),
      0, "%s", err);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_rl_encode_submit(&o, 0, 0, "abc123", &b), 0);
  Trainyard__SubmitJobRequest *r = trainyard__submit_job_request__unpack(NULL, b.len, b.data);
  cr_assert_not_null(r);
  cr_assert_eq(r->job->n_dependencies, 3u);
  cr_expect_eq(r->job->dependencies[1]->job->job_id, 7u);
  cr_expect(r->job->dependencies[1]->job->has_task && r->job->dependencies[1]->job->task == 2);
  cr_expect_null(r->job->dependencies[2]->job, "singleton names no job");
  trainyard__submit_job_request__free_unpacked(r, NULL);
  ty_buf_close(&b);
  ty_rl_opts_close(&o);
}

Test(rlaunch_args, watch_events_decode_and_garbage_is_refused) {
  Trainyard__TaskLocation loc = TRAINYARD__TASK_LOCATION__INIT;
  loc.rank = 0, loc.node = "n1", loc.io_addr = "127.0.0.1:9";
  loc.token = (ProtobufCBinaryData){3, (uint8_t *)"tok"};
  Trainyard__TaskLocation *locs[] = {&loc};
  Trainyard__GetTaskLocationsResponse job = TRAINYARD__GET_TASK_LOCATIONS_RESPONSE__INIT;
  job.state = TRAINYARD__JOB_STATE__JOB_RUNNING, job.n_tasks = 1, job.tasks = locs;
  Trainyard__LaunchTiming t = TRAINYARD__LAUNCH_TIMING__INIT;
  t.pass_us = 12, t.end_us = 34;
  Trainyard__JobWatchEvent ev = TRAINYARD__JOB_WATCH_EVENT__INIT;
  ev.job_id = 42, ev.job = &job, ev.timing = &t;
  uint8_t buf[256];
  size_t n = trainyard__job_watch_event__pack(&ev, buf);
  ty_job_watch_event out;
  cr_assert_eq(ty_rl_decode_watch_event(buf, n, &out), 0);
  cr_expect_eq(out.job_id, 42);
  cr_expect_eq(out.job.state, TY_JOB_RUNNING);
  cr_assert_eq(out.job.n, 1);
  cr_expect_str_eq(out.job.tasks[0].node, "n1");
  cr_expect_eq(out.job.tasks[0].token_len, 3);
  cr_expect_eq(out.timing.pass_us, 12);
  cr_expect_eq(out.timing.end_us, 34);
  ty_job_watch_event_close(&out);
  cr_expect_eq(ty_rl_decode_watch_event((const uint8_t *)"\xff\xff\xff", 3, &out), TY_EPROTO);
  Trainyard__JobWatchEvent empty = TRAINYARD__JOB_WATCH_EVENT__INIT;
  n = trainyard__job_watch_event__pack(&empty, buf);
  cr_expect_eq(ty_rl_decode_watch_event(buf, n, &out), TY_EPROTO, "an event without its job");
}

Test(rlaunch_args, timing_report_marks_stages_not_reached) {
  ty_rl_launch_times t = {.main_ns = 1000000,
                          .connect_ns = 1500000,
                          .connected_ns = 2000000,
                          .controller = {.commit_us = 250},
                          .requests_waiting = 0};
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  ty_rl_print_timing(f, 7, &t);
  fclose(f);
  cr_expect(strstr(text, "rlaunch: timing of job 7"), "%s", text);
  cr_expect(strstr(text, "client     start              0.500 ms"), "%s", text);
  cr_expect(strstr(text, "  traind   commit             0.250 ms"), "%s", text);
  cr_expect(strstr(text, "  traind   pass                   -    "), "%s", text);
  cr_expect(strstr(text, "while waiting for the placement: 0\n"), "%s", text);
  free(text);
}

/* -V/--version (srun's) needs no command, as --help. */
/* The pending status line says the scheduler's countdown in minutes, not
 * raw seconds; text that only looks like it is left alone. */
Test(rlaunch_args, pending_countdown_reads_in_minutes) {
  static const char *const cases[][2] = {
      {"Priority: would delay job 1, reserved to start in 90 s",
       "Priority: would delay job 1, reserved to start in 1m30s"},
      {"Resources: needs 1 node; 0 have; reserved to start in 86400 s",
       "Resources: needs 1 node; 0 have; reserved to start in 24h00m"},
      {"reserved to start in 5 s; later", "reserved to start in 5s; later"},
      {"reserved to start in 3600 s", "reserved to start in 1h00m"},
      {"start in 12 sec", "start in 12 sec"},
      {"start in x s, start in 61 s", "start in x s, start in 1m01s"},
      {"BeginTime", "BeginTime"},
      {"", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[128];
    ty_rl_countdown_text(cases[i][0], out, sizeof out);
    cr_expect_str_eq(out, cases[i][1], "case %zu", i);
  }
  char small[12]; /* cut, never overrun */
  ty_rl_countdown_text("reserved to start in 90 s", small, sizeof small);
  cr_expect_str_eq(small, "reserved to");
}

Test(rlaunch_args, version_needs_no_command) {
  static const char *const spellings[] = {"--version", "-V"};
  for (size_t i = 0; i < 2; i++) {
    ty_rl_opts o;
    char err[TY_ERR_LEN] = "";
    cr_assert_eq(parse(&o, err, sizeof err, (const char *[]){spellings[i], NULL}), 0, "%s: %s",
                 spellings[i], err);
    cr_assert(o.version, "%s", spellings[i]);
    ty_rl_opts_close(&o);
  }
}
