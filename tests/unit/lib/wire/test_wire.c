/* SPDX-License-Identifier: Apache-2.0 */
/* lib/wire: state names and parsers, queue rules and each rejection, the
 * pack/unpack helper and checked copies; proto/convert: a Job and a
 * TrainProgress survive encode -> bytes -> decode. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wire/wire.h"
#include "proto/convert.h"

Test(wire, job_states_round_trip_by_name_and_short_form) {
  for (int s = 1; s <= TY_JOB_STATE_MAX; s++) {
    int back = 0;
    cr_assert_eq(ty_job_state_parse(ty_job_state_name(s), &back), 0, "%d", s);
    cr_assert_eq(back, s);
  }
  int st = 0;
  cr_assert_eq(ty_job_state_parse("node-fail", &st), 0);
  cr_assert_eq(st, TY_JOB_NODE_FAIL);
  cr_assert_eq(ty_job_state_parse("pd", &st), 0);
  cr_assert_eq(st, TY_JOB_PENDING);
  cr_assert_eq(ty_job_state_parse("canceled", &st), 0);
  cr_assert_eq(st, TY_JOB_CANCELLED);
  /* Slurm's OUT_OF_MEMORY: squeue's compact OOM, any case, '-' for '_'. */
  cr_assert_eq(ty_job_state_parse("oom", &st), 0);
  cr_assert_eq(st, TY_JOB_OUT_OF_MEMORY);
  cr_assert_eq(ty_job_state_parse("out-of-memory", &st), 0);
  cr_assert_eq(st, TY_JOB_OUT_OF_MEMORY);
  cr_assert_str_eq(ty_job_state_name(TY_JOB_OUT_OF_MEMORY), "OUT_OF_MEMORY");
  cr_assert(ty_job_state_terminal(TY_JOB_OUT_OF_MEMORY));
  cr_assert_eq(ty_job_state_parse("bogus", &st), TY_EINVAL);
  cr_assert_eq(ty_job_state_parse("", &st), TY_EINVAL);
  cr_assert_str_eq(ty_job_state_name(0), "UNKNOWN");
  cr_assert_str_eq(ty_job_state_name(99), "UNKNOWN");
  cr_assert(ty_job_state_terminal(TY_JOB_TIMEOUT) && ty_job_state_terminal(TY_JOB_PREEMPTED));
  cr_assert(!ty_job_state_terminal(TY_JOB_RUNNING) && !ty_job_state_terminal(TY_JOB_PENDING));
}

Test(wire, node_task_and_queue_states) {
  cr_assert_str_eq(ty_node_state_name(TY_NODE_DRAINING), "DRAINING");
  cr_assert_str_eq(ty_node_state_name(7), "UNKNOWN");
  cr_assert(ty_task_state_ended(TY_TASK_FAILED_START) && !ty_task_state_ended(TY_TASK_RUNNING));
  cr_assert_eq(ty_queue_state_parse("paused"), TY_QUEUE_PAUSED);
  cr_assert_eq(ty_queue_state_parse("UP"), TY_QUEUE_OPEN); /* schema 1 */
  cr_assert_eq(ty_queue_state_parse("nope"), 0);
  cr_assert_str_eq(ty_queue_state_name(TY_QUEUE_DELETED), "DELETED");
}

Test(wire, parallelism_names) {
  int p = -1;
  cr_assert_str_eq(ty_parallelism_name(TY_PARALLELISM_AUTO), "auto");
  cr_assert_str_eq(ty_parallelism_name(TY_PARALLELISM_GRID), "grid");
  cr_assert_null(ty_parallelism_name(4));
  cr_assert_null(ty_parallelism_name(-1));
  cr_assert_eq(ty_parallelism_parse("Tensor", &p), 0);
  cr_assert_eq(p, TY_PARALLELISM_TENSOR);
  cr_assert_eq(ty_parallelism_parse("model", &p), TY_EINVAL);
  cr_assert_eq(ty_parallelism_parse(NULL, &p), TY_EINVAL);
}

Test(wire, queue_settings_apply_in_order) {
  ty_queue_info q = {.state = TY_QUEUE_OPEN, .share = 1};
  char *set[] = {"tier=5",           "share=2.5",           "max_running=3",
                 "max_gpus=8",       "max_gpus_per_user=2", "preemptible=yes",
                 "state=paused",     "default_time=15m",    "max_time=2h",
                 "default_mem=4000", "max_mem=16G"};
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_queue_apply(&q, set, TY_ARRAY_LEN(set), err, sizeof err), 0, "%s", err);
  cr_assert(q.tier == 5 && q.share == 2.5 && q.max_running == 3 && q.max_gpus == 8);
  cr_assert(q.max_gpus_per_user == 2 && q.preemptible && q.state == TY_QUEUE_PAUSED);
  cr_assert(q.default_time_s == 900 && q.max_time_s == 7200);
  /* Memory as Slurm's DefMemPerNode: a bare number is megabytes. */
  cr_assert(q.default_mem == 4000ull << 20 && q.max_mem == 16ull << 30);
}

/* A queue's time limits read as Slurm's partition DefaultTime and MaxTime,
 * and as a job's --time: a bare number is minutes, not seconds. */
static uint32_t max_time_of(const char *value) {
  ty_queue_info q = {.state = TY_QUEUE_OPEN, .share = 1, .max_time_s = 12345};
  char setting[64], *set[] = {setting}, err[TY_ERR_LEN] = "";
  snprintf(setting, sizeof setting, "max_time=%s", value);
  cr_assert_eq(ty_queue_apply(&q, set, 1, err, sizeof err), 0, "%s: %s", setting, err);
  return q.max_time_s;
}

Test(wire, queue_times_read_as_slurm_time_limits) {
  cr_assert_eq(max_time_of("120"), 7200u, "a bare number is minutes");
  cr_assert_eq(max_time_of("30:00"), 1800u);
  cr_assert_eq(max_time_of("1:30:00"), 5400u);
  cr_assert_eq(max_time_of("2-12"), 2 * 86400u + 12 * 3600u);
  cr_assert_eq(max_time_of("1-00:30:00"), 86400u + 1800u);
  cr_assert_eq(max_time_of("90s"), 90u);
  cr_assert_eq(max_time_of("1d"), 86400u);
  cr_assert_eq(max_time_of("UNLIMITED"), 0u, "no limit");
  cr_assert_eq(max_time_of("0"), 0u, "no limit");
  ty_queue_info q = {0};
  char *set[] = {"default_time=60"}, err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_queue_apply(&q, set, 1, err, sizeof err), 0, "%s", err);
  cr_assert_eq(q.default_time_s, 3600u);
}

static void rejects(const char *setting, const char *what) {
  ty_queue_info q = {.state = TY_QUEUE_OPEN, .share = 1};
  char *set[] = {(char *)setting};
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_queue_apply(&q, set, 1, err, sizeof err), TY_EINVAL, "accepted %s", setting);
  cr_assert(strstr(err, what), "[%s] lacks [%s]", err, what);
}

Test(wire, queue_settings_name_the_bad_key) {
  rejects("tier=x", "tier:");
  rejects("tier=2000000", "tier:");
  rejects("share=0", "share:");
  rejects("share=-1", "share:");
  rejects("max_running=-1", "max_running:");
  rejects("max_gpus=lots", "max_gpus:");
  rejects("preemptible=maybe", "preemptible:");
  rejects("state=deleted", "state:");
  rejects("state=up", "state:");
  rejects("max_time=soon", "max_time: \"soon\" is not a time limit");
  rejects("default_time=-5", "default_time: \"-5\" is not a time limit");
  rejects("default_mem=-1", "default_mem: \"-1\" is not a size");
  rejects("max_mem=lots", "max_mem: \"lots\" is not a size");
  rejects("max_mem=16Q", "max_mem:");
  rejects("default_mem=99999999999999999999", "default_mem:");
  rejects("bogus=1", "bogus: unknown setting");
  rejects("no-equals", "is not key=value");
  ty_queue_info q = {0};
  char *set[] = {"default_time=2h", "max_time=1h"};
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_queue_apply(&q, set, 2, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "default_time:"), "%s", err);
  ty_queue_info m = {0};
  char *mem[] = {"default_mem=2G", "max_mem=1G"};
  cr_assert_eq(ty_queue_apply(&m, mem, 2, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "default_mem: 2147483648 bytes exceeds max_mem 1073741824 bytes"), "%s",
            err);
}

/* allow_groups and allow_users: comma-separated names, kept in order; ALL
 * or "" is everyone (stored as ""). */
Test(wire, queue_access_lists) {
  ty_queue_info q = {0};
  char *set[] = {"allow_groups=hpc-admins,ml_team", "allow_users=bob,svc.x,host$"};
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_queue_apply(&q, set, 2, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(q.allow_groups, "hpc-admins,ml_team");
  cr_assert_str_eq(q.allow_users, "bob,svc.x,host$");
  cr_assert(ty_queue_allow_has(q.allow_users, "svc.x"));
  cr_assert_not(ty_queue_allow_has(q.allow_users, "svc"), "a prefix is not a name");
  cr_assert_not(ty_queue_allow_has(q.allow_groups, "hpc-admins,ml_team"));
  char name[TY_QUEUE_ALLOW_NAME_LEN + 1];
  cr_assert(ty_queue_allow_name(q.allow_groups, 1, name, sizeof name));
  cr_assert_str_eq(name, "ml_team");
  cr_assert_not(ty_queue_allow_name(q.allow_groups, 2, name, sizeof name));
  cr_assert_not(ty_queue_allow_name("", 0, name, sizeof name), "an empty list has no names");
  char *all[] = {"allow_groups=ALL", "allow_users=all"};
  cr_assert_eq(ty_queue_apply(&q, all, 2, err, sizeof err), 0, "%s", err);
  cr_assert(!q.allow_groups[0] && !q.allow_users[0], "ALL is everyone: no list");
  char *set2[] = {"allow_users=bob", "allow_users="};
  cr_assert_eq(ty_queue_apply(&q, set2, 2, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(q.allow_users, "", "an empty value is everyone too");
}

/* Every bad access list is refused naming its key and what is wrong. */
Test(wire, queue_access_lists_refuse_bad_names) {
  rejects("allow_users=a b", "allow_users: \"a b\" is not a user or group name");
  rejects("allow_users=-bob", "allow_users: \"-bob\" is not a user or group name");
  rejects("allow_groups=a,,b", "allow_groups: \"\" is not a user or group name");
  rejects("allow_groups=a,", "allow_groups: \"\" is not a user or group name");
  rejects("allow_groups=,a", "allow_groups: \"\" is not a user or group name");
  rejects("allow_users=a$b", "allow_users: \"a$b\" is not");
  rejects("allow_users=a/b", "allow_users: \"a/b\" is not");
  rejects("allow_groups=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "allow_groups: \"aaaa");
  rejects("allow_users=bob,alice,bob", "allow_users: \"bob\" is named twice");
  rejects("allow_groups=ALL,wheel", "allow_groups: ALL means everyone");
  rejects("allow_users=bob,all", "allow_users: ALL means everyone");
  /* At most TY_QUEUE_ALLOW_NAMES names. */
  char many[TY_QUEUE_ALLOW_LEN + 64] = "allow_users=";
  for (int i = 0; i <= TY_QUEUE_ALLOW_NAMES; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many), "%su%d", i ? "," : "", i);
  rejects(many, "allow_users: more than 32 names");
  /* A refused list leaves the queue's list as it was. */
  ty_queue_info q = {0};
  snprintf(q.allow_users, sizeof q.allow_users, "carol");
  char *set[] = {"allow_users=x,x"}, err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_queue_apply(&q, set, 1, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(q.allow_users, "carol");
}

Test(wire, queue_names) {
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_queue_check_name("gpu-a_1.x", err, sizeof err), 0);
  cr_assert_eq(ty_queue_check_name("", err, sizeof err), TY_EINVAL);
  cr_assert_eq(ty_queue_check_name("bad name", err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "name:"), "%s", err);
  char long_name[TY_QUEUE_MAX_NAME + 2];
  memset(long_name, 'a', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  cr_assert_eq(ty_queue_check_name(long_name, err, sizeof err), TY_EINVAL);
}

/* A new queue's name does not start with '-' or '.': `queue delete -x`
 * would read it as an option, and "." or ".." as a path. */
Test(wire, new_queue_names_start_with_a_letter_digit_or_underscore) {
  char err[TY_ERR_LEN] = "";
  static const char *const bad[] = {".", "..", "-x", "--all", ".hidden"};
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    cr_assert_eq(ty_queue_check_new_name(bad[i], err, sizeof err), TY_EINVAL, "%s", bad[i]);
    cr_assert(strstr(err, "name: \"") && strstr(err, bad[i]) && strstr(err, "may not start with"),
              "%s", err);
  }
  cr_assert_eq(ty_queue_check_new_name("", err, sizeof err), TY_EINVAL);
  cr_assert_eq(ty_queue_check_new_name("bad name", err, sizeof err), TY_EINVAL);
  static const char *const good[] = {"gpu", "_scratch", "2026.q1", "a-b_c.d", "x.."};
  for (size_t i = 0; i < TY_ARRAY_LEN(good); i++)
    cr_assert_eq(ty_queue_check_new_name(good[i], err, sizeof err), 0, "%s: %s", good[i], err);
  cr_assert_eq(ty_queue_check_name("-x", err, sizeof err), 0, "an old queue is still named");
}

Test(wire, checked_copies) {
  char *s = ty_wire_strdup(NULL);
  cr_assert_str_eq(s, "");
  free(s);
  char *v[] = {"a", NULL, "c"}, **d = NULL;
  cr_assert_eq(ty_wire_strv(v, 3, &d), 0);
  cr_assert_str_eq(d[1], "");
  cr_assert_str_eq(d[2], "c");
  ty_wire_strv_free(d, 3);
  uint8_t *b = NULL;
  cr_assert_eq(ty_wire_bytes(NULL, 0, &b), 0);
  cr_assert_not_null(b);
  free(b);
  cr_assert_null(ty_wire_calloc(SIZE_MAX, 16), "overflow must fail, not wrap");
}

Test(wire, pack_unpack_and_garbage) {
  Trainyard__ListJobsRequest req = TRAINYARD__LIST_JOBS_REQUEST__INIT;
  Trainyard__JobState states[] = {TRAINYARD__JOB_STATE__JOB_PENDING,
                                  TRAINYARD__JOB_STATE__JOB_RUNNING};
  req.n_states = 2, req.states = states, req.user = "alice";
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_wire_pack(&req.base, &b), 0);
  Trainyard__ListJobsRequest *m =
      ty_wire_unpack(&trainyard__list_jobs_request__descriptor, b.data, b.len);
  cr_assert_not_null(m);
  cr_assert(m->n_states == 2 && m->states[1] == TRAINYARD__JOB_STATE__JOB_RUNNING);
  cr_assert_str_eq(m->user, "alice");
  ty_wire_free(m);
  ty_wire_free(NULL);
  static const uint8_t junk[] = {0xff, 0xff, 0xff};
  cr_assert_null(ty_wire_unpack(&trainyard__list_jobs_request__descriptor, junk, 3));
  ty_buf_close(&b);
}

/* A message unpacked in an arena (3,000 jobs: more than its first block):
 * every string and submessage is there, and bad bytes give NULL. */
Test(wire, unpack_in_an_arena) {
  enum { N = 3000 };
  Trainyard__ListJobsResponse resp = TRAINYARD__LIST_JOBS_RESPONSE__INIT;
  Trainyard__JobInfo *infos = calloc(N, sizeof *infos), **ptrs = calloc(N, sizeof *ptrs);
  Trainyard__Job spec = TRAINYARD__JOB__INIT;
  spec.name = "a-name-long-enough-to-take-room", spec.user = "alice";
  for (size_t i = 0; i < N; i++) {
    infos[i] = (Trainyard__JobInfo)TRAINYARD__JOB_INFO__INIT;
    infos[i].id = i + 1, infos[i].reason = "Resources", infos[i].spec = &spec;
    ptrs[i] = &infos[i];
  }
  resp.n_jobs = N, resp.jobs = ptrs;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_wire_pack(&resp.base, &b), 0);
  ty_wire_arena a = {0};
  Trainyard__ListJobsResponse *m =
      ty_wire_unpack_in(&a, &trainyard__list_jobs_response__descriptor, b.data, b.len);
  cr_assert_not_null(m);
  cr_assert_eq(m->n_jobs, N);
  for (size_t i = 0; i < N; i++) {
    cr_assert_eq(m->jobs[i]->id, i + 1);
    cr_assert_str_eq(m->jobs[i]->spec->user, "alice");
  }
  cr_assert_not_null(a.blocks);
  static const uint8_t junk[] = {0x0a, 0xff, 0xff};
  cr_assert_null(ty_wire_unpack_in(&a, &trainyard__list_jobs_response__descriptor, junk, 3));
  ty_wire_arena_close(&a);
  cr_assert_null(a.blocks);
  ty_wire_arena_close(&a); /* a closed one again */
  ty_buf_close(&b);
  free(infos), free(ptrs);
}

Test(proto_convert, job_round_trip) {
  char *argv[] = {"python", "-u", "train.py"}, *env[] = {"A=1"};
  ty_job_spec in = {.name = "n",
                    .queue = "q",
                    .user = "u",
                    .priority = -3,
                    .time_limit_s = 60,
                    .nodes = 2,
                    .tasks_per_node = 4,
                    .gpus_per_node = 1,
                    .cpus_per_task = 2,
                    .mem_per_node = 1 << 20,
                    .argv = argv,
                    .argc = 3,
                    .env = env,
                    .envc = 1,
                    .cwd = "/w",
                    .interactive = {.on = true, .pty = true, .rows = 40, .cols = 120},
                    .warn_signal = 10,
                    .warn_before_s = 30,
                    .max_rank_failure_requeues = 2};
  ty_proto_job pj;
  ty_proto_encode_job(&in, &pj);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_wire_pack(&pj.job.base, &b), 0);
  Trainyard__Job *job = ty_wire_unpack(&trainyard__job__descriptor, b.data, b.len);
  cr_assert_not_null(job);
  ty_job_spec out;
  cr_assert_eq(ty_proto_decode_job(job, &out), 0);
  ty_wire_free(job);
  cr_assert_str_eq(out.name, "n");
  cr_assert_str_eq(out.queue, "q");
  cr_assert(out.kind == TY_JOB_KIND_COMMAND && out.has_resources && out.argc == 3);
  cr_assert_str_eq(out.argv[2], "train.py");
  cr_assert_str_eq(out.env[0], "A=1");
  cr_assert(out.nodes == 2 && out.tasks_per_node == 4 && out.mem_per_node == 1 << 20);
  cr_assert(out.interactive.on && out.interactive.pty && out.interactive.rows == 40);
  cr_assert(out.priority == -3 && out.warn_signal == 10 && out.max_rank_failure_requeues == 2);
  ty_job_spec_close(&out);
  ty_buf_close(&b);
}

/* The submitter's umask travels in Job.process; a Job without the message
 * (an older client) decodes to none, and nothing is sent for none. */
Test(proto_convert, process_settings_round_trip) {
  ty_job_spec in = {.name = "n", .process = {.has_umask = true, .umask = 077}};
  ty_proto_job pj;
  ty_proto_encode_job(&in, &pj);
  cr_assert_not_null(pj.job.process);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_wire_pack(&pj.job.base, &b), 0);
  Trainyard__Job *job = ty_wire_unpack(&trainyard__job__descriptor, b.data, b.len);
  cr_assert_not_null(job);
  ty_job_spec out;
  cr_assert_eq(ty_proto_decode_job(job, &out), 0);
  cr_expect(out.process.has_umask && out.process.umask == 077, "umask %o", out.process.umask);
  ty_job_spec_close(&out);
  Trainyard__ProcessSettings *sent = job->process;
  job->process = NULL; /* as an older client sends it */
  cr_assert_eq(ty_proto_decode_job(job, &out), 0);
  cr_expect(!out.process.has_umask);
  ty_job_spec_close(&out);
  job->process = sent; /* freed with the job */
  ty_wire_free(job);
  ty_buf_close(&b);
  in.process = (ty_proc_settings){0};
  ty_proto_encode_job(&in, &pj);
  cr_expect_null(pj.job.process, "no umask: no message");
}

/* Soft limits travel by resource (LimitResource = ty_limit + 1), unlimited
 * as UINT64_MAX; one not sent stays unset; a resource unknown to this
 * build (a newer client's) is skipped. */
Test(proto_convert, soft_limits_round_trip_by_resource) {
  ty_job_spec in = {.name = "n"};
  in.process.has_soft[TY_LIMIT_NOFILE] = true, in.process.soft[TY_LIMIT_NOFILE] = 256;
  in.process.has_soft[TY_LIMIT_AS] = true, in.process.soft[TY_LIMIT_AS] = TY_LIMIT_UNLIMITED;
  ty_proto_job pj;
  ty_proto_encode_job(&in, &pj);
  cr_assert_not_null(pj.job.process, "limits alone make a message");
  cr_assert_eq(pj.job.process->n_soft_limits, 2);
  cr_expect_eq(pj.job.process->soft_limits[0]->resource, TRAINYARD__LIMIT_RESOURCE__LIMIT_NOFILE);
  Trainyard__SoftLimit odd = TRAINYARD__SOFT_LIMIT__INIT,
                       *lims[3] = {pj.job.process->soft_limits[0], pj.job.process->soft_limits[1],
                                   &odd};
  odd.resource = (Trainyard__LimitResource)99, odd.soft = 1;
  pj.job.process->soft_limits = lims, pj.job.process->n_soft_limits = 3;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_wire_pack(&pj.job.base, &b), 0);
  Trainyard__Job *job = ty_wire_unpack(&trainyard__job__descriptor, b.data, b.len);
  cr_assert_not_null(job);
  ty_job_spec out;
  cr_assert_eq(ty_proto_decode_job(job, &out), 0);
  cr_expect(out.process.has_soft[TY_LIMIT_NOFILE] && out.process.soft[TY_LIMIT_NOFILE] == 256);
  cr_expect(out.process.has_soft[TY_LIMIT_AS] &&
            out.process.soft[TY_LIMIT_AS] == TY_LIMIT_UNLIMITED);
  cr_expect(!out.process.has_soft[TY_LIMIT_CORE] && !out.process.has_umask);
  ty_job_spec_close(&out);
  ty_wire_free(job);
  ty_buf_close(&b);
}

Test(proto_convert, progress_round_trip) {
  ty_train_progress in = {.step = 7,
                          .total_steps = 100,
                          .loss = 0.5,
                          .samples_per_s = 900,
                          .time_ms = 42,
                          .checkpoint_step = 5,
                          .checkpoint_path = "/c.onnx",
                          .test_accuracy = -1,
                          .epoch = 1};
  Trainyard__TrainProgress m;
  ty_proto_encode_progress(&in, &m);
  ty_train_progress out;
  cr_assert_eq(ty_proto_decode_progress(&m, &out), 0);
  cr_assert(out.step == 7 && out.total_steps == 100 && out.loss == 0.5 && out.epoch == 1);
  cr_assert(out.test_accuracy == -1 && out.checkpoint_step == 5);
  cr_assert_str_eq(out.checkpoint_path, "/c.onnx");
  free(out.checkpoint_path);
}

/* ---- caps on repeated fields (lib/wire/check.c, proto's table) ---------------- */

static int check(const ProtobufCMessage *m, char *err) {
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_wire_pack(m, &b), 0);
  err[0] = '\0';
  int rc = ty_proto_check_request(m->descriptor, b.data, b.len, err, TY_ERR_LEN);
  ty_buf_close(&b);
  return rc;
}

Test(wire_check, packed_ids_are_counted_and_capped) {
  uint64_t ids[1025];
  for (size_t i = 0; i < 1025; i++)
    ids[i] = i + 1;
  Trainyard__CancelJobRequest req = TRAINYARD__CANCEL_JOB_REQUEST__INIT;
  req.job_ids = ids;
  req.n_job_ids = 1024;
  char err[TY_ERR_LEN];
  cr_assert_eq(check(&req.base, err), 0, "%s", err);
  req.n_job_ids = 1025;
  cr_assert_eq(check(&req.base, err), TY_EINVAL);
  cr_assert_str_eq(err, "job_ids: 1025 entries or more; at most 1024 are allowed");
}

Test(wire_check, nested_fields_are_named_by_their_path) {
  char *argv[4097];
  for (size_t i = 0; i < 4097; i++)
    argv[i] = "x";
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.argv = argv;
  cmd.n_argv = 4097;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND;
  job.command = &cmd;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &job;
  char err[TY_ERR_LEN];
  cr_assert_eq(check(&req.base, err), TY_EINVAL);
  cr_assert_str_eq(err, "job.command.argv: 4097 entries or more; at most 4096 are allowed");
  cmd.n_argv = 4096;
  cr_assert_eq(check(&req.base, err), 0, "%s", err);
}

/* -w/-x lists may name up to TY_JOB_MAX_NODE_NAMES nodes, above the
 * default cap; one more is refused naming the field. */
Test(wire_check, node_lists_have_their_own_cap) {
  static char *names[TY_JOB_MAX_NODE_NAMES + 1];
  for (size_t i = 0; i <= TY_JOB_MAX_NODE_NAMES; i++)
    names[i] = "w1";
  Trainyard__Resources res = TRAINYARD__RESOURCES__INIT;
  res.required_nodes = names, res.n_required_nodes = TY_JOB_MAX_NODE_NAMES;
  res.excluded_nodes = names, res.n_excluded_nodes = TY_JOB_MAX_NODE_NAMES;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.resources = &res;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &job;
  char err[TY_ERR_LEN];
  cr_assert_eq(check(&req.base, err), 0, "%s", err);
  res.n_excluded_nodes = TY_JOB_MAX_NODE_NAMES + 1;
  cr_assert_eq(check(&req.base, err), TY_EINVAL);
  cr_assert_str_eq(err,
                   "job.resources.excluded_nodes: 4097 entries or more; at most 4096 are allowed");
}

Test(wire_check, fields_without_a_cap_get_the_default) {
  Trainyard__RunningTask t = TRAINYARD__RUNNING_TASK__INIT;
  Trainyard__RunningTask *ts[TY_PROTO_MAX_REPEATED + 1];
  for (size_t i = 0; i <= TY_PROTO_MAX_REPEATED; i++)
    ts[i] = &t;
  /* RegisterNodeRequest.tasks has its own, larger cap ... */
  Trainyard__NodeInfo node = TRAINYARD__NODE_INFO__INIT;
  Trainyard__RegisterNodeRequest reg = TRAINYARD__REGISTER_NODE_REQUEST__INIT;
  reg.node = &node;
  reg.tasks = ts;
  reg.n_tasks = TY_PROTO_MAX_REPEATED + 1;
  char err[TY_ERR_LEN];
  cr_assert_eq(check(&reg.base, err), 0, "%s", err);
  /* ... a response's repeated field checked as a request gets the default. */
  Trainyard__JobEvent ev = TRAINYARD__JOB_EVENT__INIT;
  Trainyard__JobEvent *evs[TY_PROTO_MAX_REPEATED + 1];
  for (size_t i = 0; i <= TY_PROTO_MAX_REPEATED; i++)
    evs[i] = &ev;
  Trainyard__GetJobResponse resp = TRAINYARD__GET_JOB_RESPONSE__INIT;
  resp.events = evs;
  resp.n_events = TY_PROTO_MAX_REPEATED + 1;
  cr_assert_eq(check(&resp.base, err), TY_EINVAL);
  cr_assert(strstr(err, "events: "), "%s", err);
}

Test(wire_check, unknown_fields_depth_and_garbage) {
  char err[TY_ERR_LEN];
  /* 65 unknown varint fields (field 99) in a HeartbeatRequest. */
  uint8_t unk[65 * 3];
  for (size_t i = 0; i < 65; i++)
    unk[3 * i] = 0x98, unk[3 * i + 1] = 0x06, unk[3 * i + 2] = 1;
  cr_assert_eq(ty_proto_check_request(&trainyard__heartbeat_request__descriptor, unk, sizeof unk,
                                      err, sizeof err),
               TY_EINVAL);
  cr_assert_str_eq(err, "(unknown fields): more than 64 in one message");
  cr_assert_eq(ty_proto_check_request(&trainyard__heartbeat_request__descriptor, unk, 64 * 3, err,
                                      sizeof err),
               0);
  /* Garbage is protobuf-c's to refuse: the check passes it on. */
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  cr_assert_eq(ty_proto_check_request(&trainyard__cancel_job_request__descriptor, junk, sizeof junk,
                                      err, sizeof err),
               0);
  /* A packed run of 2000 one-byte varints in 2000 bytes. */
  uint8_t packed[2003] = {0x0a, 0xd0, 0x0f};
  memset(packed + 3, 1, 2000);
  cr_assert_eq(ty_proto_check_request(&trainyard__cancel_job_request__descriptor, packed,
                                      sizeof packed, err, sizeof err),
               TY_EINVAL);
  cr_assert_str_eq(err, "job_ids: 2000 entries or more; at most 1024 are allowed");
}

Test(wire, checkpoint_file_names) {
  char p[128];
  cr_assert_eq(ty_ckpt_step_path("/ck/mlp.onnx", 120, p, sizeof p), 0);
  cr_assert_str_eq(p, "/ck/mlp.step-000120.onnx");
  cr_assert_eq(ty_ckpt_step_path("run/ckpt", 1234567, p, sizeof p), 0);
  cr_assert_str_eq(p, "run/ckpt.step-1234567.onnx");
  cr_assert_eq(ty_ckpt_step_path("/ck/mlp.onnx", 1, p, 10), TY_EINVAL);
  uint64_t s = 0;
  cr_assert(ty_ckpt_step_of("/ck/mlp.onnx", "mlp.step-000120.onnx", &s));
  cr_assert_eq(s, 120u);
  cr_assert(ty_ckpt_step_of("run/ckpt", "ckpt.step-1234567.onnx", &s));
  cr_assert_eq(s, 1234567u);
  cr_assert_not(ty_ckpt_step_of("/ck/mlp.onnx", "mlp.step-000120.onnx.state", &s));
  cr_assert_not(ty_ckpt_step_of("/ck/mlp.onnx", "mlp.step-12.onnx", &s), "6 digits at least");
  cr_assert_not(ty_ckpt_step_of("/ck/mlp.onnx", "mlp2.step-000120.onnx", &s));
  cr_assert_not(ty_ckpt_step_of("/ck/mlp.onnx", "mlp.onnx", &s));
  cr_assert_not(ty_ckpt_step_of("/ck/mlp.onnx", "mlp.step-000120.onnx.tmp.77", &s));
}

/* traind <-> trainyard-graphcheck: the request and both answers. */
Test(proto_convert, graph_check_round_trip) {
  uint8_t cfg[] = {8, 64}, plan[] = {'T', 'Y', 'P', 'L', 0, 1};
  ty_graph_check in = {.job = {.name = "mlp",
                               .kind = TY_JOB_KIND_GRAPH,
                               .model_path = "/m/mlp.onnx",
                               .train_config = cfg,
                               .train_config_len = sizeof cfg,
                               .nodes = 2,
                               .tasks_per_node = 2,
                               .parallelism = TY_PARALLELISM_GRID},
                       .want_plan = true,
                       .mode = TY_PARALLELISM_GRID,
                       .cluster = {.nodes = 2,
                                   .devices_per_node = 2,
                                   .device_flops = 1e11,
                                   .device_mem_bytes = 1ull << 34,
                                   .intra_bw = 1e10,
                                   .inter_bw = 1.25e9,
                                   .intra_latency_s = 2e-6,
                                   .inter_latency_s = 2e-5,
                                   .launch_s = 5e-6,
                                   .threads = 3}};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_proto_pack_check(&in, &b), 0);
  ty_graph_check out;
  cr_assert_eq(ty_proto_unpack_check(b.data, b.len, &out), 0);
  cr_assert_str_eq(out.job.model_path, "/m/mlp.onnx");
  cr_assert(out.job.kind == TY_JOB_KIND_GRAPH && out.job.train_config_len == 2);
  cr_assert(out.job.parallelism == TY_PARALLELISM_GRID && out.want_plan &&
            out.mode == TY_PARALLELISM_GRID);
  cr_assert(out.cluster.nodes == 2 && out.cluster.threads == 3 && out.cluster.launch_s == 5e-6);
  cr_assert(out.cluster.device_mem_bytes == 1ull << 34 && out.cluster.inter_bw == 1.25e9);
  ty_graph_check_close(&out);
  ty_graph_check_close(NULL);
  static const uint8_t junk[] = {0xff, 0xff, 0xff};
  cr_assert_eq(ty_proto_unpack_check(junk, sizeof junk, &out), TY_EPROTO);
  b.len = 0;
  ty_graph_check_answer a = {.stage = 2,
                             .status = TY_EINVAL,
                             .message = "job.graph: no",
                             .cache_key = 0xfeedfacecafebeefull,
                             .device_flops = 4e10,
                             .plan = plan,
                             .plan_len = sizeof plan,
                             .wants_plan = true};
  cr_assert_eq(ty_proto_pack_check_answer(&a, &b), 0);
  ty_graph_check_answer got;
  cr_assert_eq(ty_proto_unpack_check_answer(b.data, b.len, &got), 0);
  cr_assert(got.stage == 2 && got.status == TY_EINVAL && got.cache_key == a.cache_key);
  cr_assert(got.device_flops == 4e10 && got.plan_len == sizeof plan && got.plan[3] == 'L');
  cr_assert(got.wants_plan, "wants_plan lost in the round trip");
  cr_assert_str_eq(got.message, "job.graph: no");
  ty_graph_check_answer_close(&got);
  cr_assert_eq(ty_proto_unpack_check_answer(junk, sizeof junk, &got), TY_EPROTO);
  ty_buf_close(&b);
}

/* An array's indices are sorted and without repeats whatever the order of
 * its ranges (ranges already in order skip the sort). */
static void check_tasks(const char *ranges, const uint32_t *want, size_t n_want) {
  ty_array_spec a = {0};
  char err[256];
  cr_assert_eq(ty_array_parse("array", ranges, &a, err, sizeof err), 0, "%s: %s", ranges, err);
  uint32_t count = 0, *tasks = NULL;
  size_t n = 0;
  cr_assert_eq(ty_array_check("array", &a, &count, err, sizeof err), 0, "%s: %s", ranges, err);
  cr_assert_eq(ty_array_tasks(&a, &tasks, &n), 0);
  cr_assert_eq(n, n_want, "%s: %zu indices", ranges, n);
  cr_assert_eq(count, n_want, "%s: counted %u", ranges, count);
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(tasks[i], want[i], "%s: index %zu is %u, want %u", ranges, i, tasks[i], want[i]);
  free(tasks);
  ty_array_spec_close(&a);
}

Test(wire, array_tasks_are_sorted_and_unique_in_any_range_order) {
  check_tasks("0-4:2", (const uint32_t[]){0, 2, 4}, 3);
  check_tasks("0-3,3-5", (const uint32_t[]){0, 1, 2, 3, 4, 5}, 6);
  check_tasks("5-7,0-2,6-9:3", (const uint32_t[]){0, 1, 2, 5, 6, 7, 9}, 7);
  check_tasks("8,1-3,2", (const uint32_t[]){1, 2, 3, 8}, 4);
}
