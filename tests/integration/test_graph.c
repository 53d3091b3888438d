/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Graph jobs end to end on CPU (issue 6): a real traind, real workers that
 * start real trainrun ranks, which form an Open MPI world through the
 * controller's rendezvous and all-reduce gradients. The jobs here are
 * data parallel (parallelism: data); test_graph_plan.c runs planned ones.
 *
 *   - an invalid model or config is refused at submit with the runtime's words;
 *   - 2 workers x 1 rank and 1 worker x 2 ranks end with the weights of a
 *     single-process run of the same global batch (float tolerance), and the
 *     final model passes python3-onnx's checker;
 *   - ranks training different models fail within the first step with a
 *     message naming the rank and the tensors;
 *   - a rank trainrun refuses to start fails the job with trainrun's error
 *     in the job's reason;
 *   - a rank killed mid-run fails the job with a reason naming it, or, with
 *     max_rank_failure_requeues = 1, requeues it once and it completes from
 *     its checkpoint;
 *   - a job requeued after losing a node resumes from its checkpoint and
 *     ends where an uninterrupted run ends.
 * Who may join a job's Open MPI world and which interfaces it uses are in
 * test_graph_mpi.c (the same program).
 *
 * Paths come from meson: TY_TRAINRUN, TY_MLP_ONNX, TY_CNN_ONNX, TY_MLP_CONFIG.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ops/graph.h"
#include "proto/methods.h"
#include "proto/train_config.pb-c.h"
#include "tests/integration/ranks.h"
#include "tests/support/subset.h"

#define STEPS 40

/* Runs trainrun directly (no worker) and returns its pid. */
static pid_t start_trainrun(const char *model, const char *cfg, uint32_t rank, uint32_t world,
                            uint64_t job, int ctl_port, const char *log) {
  return rk_start(model, cfg, rank, world, job, ctl_port, log, NULL);
}

/* Single-process reference weights after `steps` steps. */
static void reference(const char *dir, uint64_t steps, char *out_path, size_t n) {
  rk_reference(dir, steps, out_path, n);
}

static void onnx_check(const char *path) {
  char cmd[600];
  snprintf(
      cmd, sizeof cmd,
      "/usr/bin/python3 -c 'import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]))' %s",
      path);
  cr_assert_eq(system(cmd), 0, "onnx.checker rejected %s", path);
}

static uint64_t submit_graph_rq(ty_rpc_client *cl, uint32_t nodes, uint32_t tpn, const uint8_t *cfg,
                                size_t cfg_len, uint32_t requeues) {
  rk_job j; /* data parallel: plans are test_graph_plan.c's */
  rk_graph_job(&j, nodes, tpn, cfg, cfg_len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  j.job.name = "mlp-dp";
  j.job.max_rank_failure_requeues = requeues;
  uint64_t id = 0;
  char err[512] = "";
  cr_assert_eq(it_submit_job(cl, &j.job, &id, err, sizeof err), 0, "submit: %s", err);
  return id;
}

static uint64_t submit_graph(ty_rpc_client *cl, uint32_t nodes, uint32_t tpn, const uint8_t *cfg,
                             size_t cfg_len) {
  return submit_graph_rq(cl, nodes, tpn, cfg, cfg_len, 0);
}

static void expect_dp_matches(size_t workers, int cpus, uint32_t nodes, uint32_t tpn,
                              bool relative_state) {
  it_cluster c;
  if (relative_state)
    it_cluster_start_relative(&c, workers, cpus);
  else
    it_cluster_start(&c, workers, cpus);
  /* Under the sanitizers (tests/support/subset.h) half the steps: still a
   * checkpoint, and all-reduces enough to tell a wrong one. */
  uint64_t steps = (uint64_t)ty_test_cases(STEPS, STEPS / 2);
  char ref[400], out[400];
  reference(c.dir, steps, ref, sizeof ref);
  snprintf(out, sizeof out, "%s/dp.onnx", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(steps, 20, out, &len);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = submit_graph(cl, nodes, tpn, cfg, len);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 120000);
  cr_assert(r, "job %llu did not end (logs in %s)", (unsigned long long)id, c.dir);
  cr_assert_eq(r->job->state, TRAINYARD__JOB_STATE__JOB_COMPLETED, "job ended %d: %s (logs in %s)",
               r->job->state, r->job->reason, c.dir);
  /* The answer that first says COMPLETED holds rank 0's last step and
   * checkpoint: the worker forwards them before the rank's end (a
   * heartbeat later, `submit -W` then `show` printed no step at all). */
  cr_assert(r->progress && r->progress->step == steps && r->n_checkpoints > 0,
            "job %llu ended without its final progress: step %llu, %zu checkpoints",
            (unsigned long long)id, r->progress ? (unsigned long long)r->progress->step : 0ull,
            r->n_checkpoints);
  trainyard__get_job_response__free_unpacked(r, NULL);
  double d = rk_weight_diff(ref, out);
  cr_assert(d < 1e-4, "data-parallel weights differ from single-process ones by %g", d);
  onnx_check(out);
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(graph, two_workers_one_rank_each_match_single_process, .timeout = 300) {
  expect_dp_matches(2, 1, 2, 1, false);
}

Test(graph, one_worker_two_ranks_match_single_process, .timeout = 300) {
  rk_full_pass_only();
  expect_dp_matches(1, 2, 1, 2, false);
}

/* Daemons started with relative --state-dir paths (the quick start's layout):
 * every path handed to a rank must still resolve from the rank's own cwd. */
Test(graph, daemons_with_relative_state_dirs_run_graph_jobs, .timeout = 300) {
  expect_dp_matches(2, 1, 2, 1, true);
}

/* Issue 14: checkpoints are named by step, only the newest 3 stay, and
 * `checkpoint ls` lists exactly the ones that exist. */
Test(graph, checkpoints_are_kept_by_step_and_listed_as_they_exist, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  char out[400];
  snprintf(out, sizeof out, "%s/kept.onnx", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(STEPS, 5, out, &len);
  ty_rpc_client *cl = it_client(&c);
  /* Pending: no checkpoint yet, which is not an error. */
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
  uint64_t id = submit_graph(cl, 1, 1, cfg, len);
  char sid[24], *text = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(it_trainctl(&c, &text, (const char *[]){"checkpoint", "ls", sid, NULL}), 0);
  cr_assert(strstr(text, "has no checkpoint yet"), "[%s]", text);
  free(text);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "resume", "default", NULL}), 0);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 120000);
  cr_assert(r && r->job->state == TRAINYARD__JOB_STATE__JOB_COMPLETED,
            "job ended badly (logs in %s)", c.dir);
  trainyard__get_job_response__free_unpacked(r, NULL);
  /* Every 5 steps over 40: the newest 3 stay, the configured path links the newest. */
  char p[600];
  for (int step = 5; step <= STEPS; step += 5) {
    snprintf(p, sizeof p, "%s/kept.step-%06d.onnx", c.dir, step);
    cr_assert_eq(access(p, F_OK) == 0, step >= STEPS - 10, "%s", p);
  }
  cr_assert_eq(access(out, F_OK), 0);
  /* The list follows the worker's next look at the directory. */
  bool listed = false;
  for (int i = 0; i < 100 && !listed; i++) {
    r = it_get_job(cl, id);
    listed = r && r->n_checkpoints == 3 && r->checkpoints[0]->step == STEPS - 10 &&
             r->checkpoints[2]->step == STEPS;
    trainyard__get_job_response__free_unpacked(r, NULL);
    if (!listed) it_sleep_ms(100);
  }
  cr_assert(listed, "checkpoint ls does not list exactly the 3 that exist");
  cr_assert_eq(it_trainctl(&c, &text, (const char *[]){"checkpoint", "ls", sid, "--json", NULL}),
               0);
  snprintf(p, sizeof p, "\"step\":%d,", STEPS - 10);
  cr_assert(strstr(text, p) && strstr(text, "kept.step-000040.onnx"), "%s", text);
  cr_assert_null(strstr(text, "kept.step-000025.onnx"), "%s", text);
  cr_assert(strstr(text, "\"exists\":true"), "%s", text);
  free(text);
  /* One removed since (pruned by a later run of the same path): marked.
   * The worker looks at the directory once more at its first heartbeat
   * after rank 0 ended (the end's own report may precede the last lines of
   * the log); removed before that look, the file would drop out of the list
   * instead (seen under ASan): the look is over well within 3 s. */
  it_sleep_ms(3000);
  snprintf(p, sizeof p, "%s/kept.step-%06d.onnx", c.dir, STEPS - 10);
  cr_assert_eq(unlink(p), 0);
  cr_assert_eq(it_trainctl(&c, &text, (const char *[]){"checkpoint", "ls", sid, NULL}), 0);
  cr_assert(strstr(text, "kept.step-000030.onnx (removed)") &&
                !strstr(text, "kept.step-000040.onnx (removed)"),
            "%s", text);
  free(text);
  cr_assert_eq(it_trainctl(&c, &text, (const char *[]){"checkpoint", "ls", sid, "--json", NULL}),
               0);
  cr_assert(strstr(text, "kept.step-000030.onnx\",\"exists\":false"), "%s", text);
  free(text);
  /* The same config again: its checkpoint is at the end, it trains nothing,
   * and show says so (not "starting"). */
  uint64_t again = submit_graph(cl, 1, 1, cfg, len);
  r = it_wait_job(cl, again, 0, 120000);
  cr_assert(r && r->job->state == TRAINYARD__JOB_STATE__JOB_COMPLETED, "(logs in %s)", c.dir);
  trainyard__get_job_response__free_unpacked(r, NULL);
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)again);
  cr_assert_eq(it_trainctl(&c, &text, (const char *[]){"show", sid, NULL}), 0);
  cr_assert(strstr(text, "job COMPLETED: ended without a training step reported"), "%s", text);
  free(text);
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* Job id's progress (at step STEPS) and its 3 checkpoints, from GetJob,
 * `show` and `checkpoint ls`, `when` says at what point of the test. */
static void expect_kept(const it_cluster *c, uint64_t id, const char *when) {
  ty_rpc_client *cl = it_client(c);
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  cr_assert(r, "%s: job %llu not found", when, (unsigned long long)id);
  cr_assert(r->progress && r->progress->step == STEPS, "%s: progress lost (step %llu)", when,
            r->progress ? (unsigned long long)r->progress->step : 0ull);
  cr_assert(r->n_checkpoints == 3 && r->checkpoints[2]->step == STEPS, "%s: %zu checkpoints", when,
            r->n_checkpoints);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  char sid[24], *text = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(it_trainctl(c, &text, (const char *[]){"checkpoint", "ls", sid, NULL}), 0);
  cr_assert(strstr(text, "swept.step-000040.onnx") && !strstr(text, "no checkpoint yet"),
            "%s: [%s]", when, text);
  free(text);
  cr_assert_eq(it_trainctl(c, &text, (const char *[]){"show", sid, NULL}), 0);
  cr_assert(strstr(text, "Progress:"), "%s: show has no progress: [%s]", when, text);
  free(text);
}

/* A graph job's last progress and checkpoints outlive its time in memory:
 * once the sweep dropped it from the finished cache (--job-cache 1: two
 * later jobs push it out) and after a traind restart, GetJob, `show` and
 * `checkpoint ls` still have them (the job's row keeps them). */
Test(graph, progress_and_checkpoints_outlive_the_sweep_and_a_restart, .timeout = 300) {
  it_cluster c;
  const char *const args[] = {"--job-cache", "1", "--min-job-age", "1s", NULL};
  it_cluster_start_with(&c, 1, 1, &(it_options){.traind_args = args});
  char out[400];
  snprintf(out, sizeof out, "%s/swept.onnx", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(STEPS, 5, out, &len);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = submit_graph(cl, 1, 1, cfg, len);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 120000);
  cr_assert(r && r->job->state == TRAINYARD__JOB_STATE__JOB_COMPLETED,
            "job ended badly (logs in %s)", c.dir);
  trainyard__get_job_response__free_unpacked(r, NULL);
  bool listed = false; /* the worker's next look at the directory: the newest 3 */
  for (int i = 0; i < 100 && !listed; i++) {
    r = it_get_job(cl, id);
    listed = r && r->n_checkpoints == 3 && r->checkpoints[2]->step == STEPS;
    trainyard__get_job_response__free_unpacked(r, NULL);
    if (!listed) it_sleep_ms(100);
  }
  cr_assert(listed, "the 3 newest checkpoints were never listed");
  expect_kept(&c, id, "in memory");
  for (int i = 0; i < 2; i++) {
    uint64_t later = it_submit_cli(&c, (const char *[]){"--", "true", NULL});
    cr_assert_eq(it_wait_state(cl, later, 0, 60000), TRAINYARD__JOB_STATE__JOB_COMPLETED);
  }
  it_sleep_ms(2500); /* the sweeps that cache the later jobs and drop this one */
  expect_kept(&c, id, "after the sweep");
  ty_rpc_client_close(cl);
  it_kill9(&c.traind);
  it_controller_start(&c);
  expect_kept(&c, id, "after a restart");
  free(cfg);
  it_cluster_stop(&c);
}

Test(graph, invalid_model_refused_at_submit, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  size_t len;
  uint8_t *cfg = rk_make_config(10, 0, NULL, &len);
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  Trainyard__GraphSpec g = TRAINYARD__GRAPH_SPEC__INIT;
  job.kind_case = TRAINYARD__JOB__KIND_GRAPH;
  job.graph = &g;
  g.model_bytes.data = (uint8_t *)"definitely not ONNX";
  g.model_bytes.len = 19;
  g.train_config.data = cfg;
  g.train_config.len = len;
  uint64_t id;
  char err[512] = "";
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.graph.model_bytes: "), "%s", err);
  g.model_bytes.len = 0;
  g.model_path = (char *)rk_env("TY_MLP_ONNX");
  g.train_config.data = (uint8_t *)"\xff\xff";
  g.train_config.len = 2;
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.graph.train_config: "), "%s", err);
  g.model_path = "/nonexistent/model.onnx";
  g.train_config.data = cfg;
  g.train_config.len = len;
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.graph.model_path: "), "%s", err);
  /* A pending graph job keeps its node count (job update -N): its model
   * and plan were checked for it. */
  g.model_path = (char *)rk_env("TY_MLP_ONNX");
  job.hold = true;
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), 0, "%s", err);
  char sid[24], *out = NULL, *why = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(
      it_trainctl_err(&c, &out, &why, (const char *[]){"job", "update", sid, "-N", "2", NULL}), 1);
  cr_assert(strstr(why, "a graph job's model and plan were checked for its 1 node at submit"), "%s",
            why);
  free(out), free(why);
  /* and its task layout (job update --ntasks-per-node, -c, --gres). */
  cr_assert_eq(
      it_trainctl_err(&c, &out, &why, (const char *[]){"job", "update", sid, "-c", "2", NULL}), 1);
  cr_assert(strstr(why, "a graph job's model and plan were checked for its 1 task per node"), "%s",
            why);
  free(out), free(why);
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(graph, mismatched_collective_is_named, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  char cfgp[300], log0[300], log1[300];
  snprintf(cfgp, sizeof cfgp, "%s/mm.pb", c.dir);
  snprintf(log0, sizeof log0, "%s/mm0.log", c.dir);
  snprintf(log1, sizeof log1, "%s/mm1.log", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(10, 0, NULL, &len);
  rk_write_file(cfgp, cfg, len);
  free(cfg);
  uint64_t job = 900000 + (uint64_t)getpid();
  rk_set_token(&c, job, 0);
  pid_t p0 = start_trainrun(rk_env("TY_MLP_ONNX"), cfgp, 0, 2, job, c.rpc_port, log0);
  rk_set_token(&c, job, 1);
  pid_t p1 = start_trainrun(rk_env("TY_CNN_ONNX"), cfgp, 1, 2, job, c.rpc_port, log1);
  cr_assert_neq(rk_wait_exit(p0), 0);
  cr_assert_neq(rk_wait_exit(p1), 0);
  size_t n;
  char *text = (char *)rk_read_all(log0, &n);
  cr_assert(strstr(text, "collective mismatch: rank 1 reduces gradient bucket seq 0 holding "),
            "%s", text);
  cr_assert(strstr(text, "fc1.weight") && strstr(text, "conv1.weight"), "tensors not named: %s",
            text);
  free(text);
  it_cluster_stop(&c);
}

/* Worker w1 of c from a copy of trainworkerd (and its exec helper) in
 * DIR/sbin, started with PATH = DIR/bin (trainrun alone, a link to the
 * build's) and the system's directories: an installed layout, where
 * trainrun is in neither the worker's directory nor a build tree, nor in a
 * task's PATH (the default, TY_TASK_DEFAULT_PATH). */
static void start_installed_worker(it_cluster *c) {
  char cmd[2048], sbin[300], exe[340], path[400];
  snprintf(sbin, sizeof sbin, "%s/sbin", c->dir);
  snprintf(exe, sizeof exe, "%s", rk_env("TY_TRAINWORKERD"));
  *strrchr(exe, '/') = 0;
  snprintf(
      cmd, sizeof cmd,
      "mkdir %s %s/bin && cp %s/trainworkerd %s/trainyard-exec %s/ && ln -s %s %s/bin/trainrun",
      sbin, c->dir, exe, exe, sbin, rk_env("TY_TRAINRUN"), c->dir);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  char *saved_path = ty_strdup(getenv("PATH")), *saved_bin = ty_strdup(rk_env("TY_TRAINWORKERD"));
  snprintf(path, sizeof path, "%s/bin:/usr/sbin:/usr/bin:/sbin:/bin", c->dir);
  snprintf(exe, sizeof exe, "%s/trainworkerd", sbin);
  setenv("PATH", path, 1), setenv("TY_TRAINWORKERD", exe, 1);
  c->n_workers = 1;
  it_worker_start(c, 0, 1);
  setenv("PATH", saved_path, 1), setenv("TY_TRAINWORKERD", saved_bin, 1);
  free(saved_path), free(saved_bin);
}

/* A worker that finds trainrun in its own PATH keeps the absolute path it
 * resolved at start, so its ranks start although a task's PATH does not
 * hold that directory (it once kept the bare name, and every graph job on
 * the node failed "argv[0] "trainrun" not found on node w1"). */
Test(graph, a_worker_finding_trainrun_in_its_path_runs_graph_jobs, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  start_installed_worker(&c);
  ty_rpc_client *cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000), "w1 is not UP");
  size_t len;
  uint8_t *cfg = rk_make_config(5, 0, NULL, &len);
  uint64_t id = submit_graph(cl, 1, 1, cfg, len);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 120000);
  cr_assert(r, "job %llu did not end (logs in %s)", (unsigned long long)id, c.dir);
  cr_assert_eq(r->job->state, TRAINYARD__JOB_STATE__JOB_COMPLETED, "job ended %d: %s (logs in %s)",
               r->job->state, r->job->reason, c.dir);
  trainyard__get_job_response__free_unpacked(r, NULL);
  char log[300];
  snprintf(log, sizeof log, "%s/w1.stderr", c.dir);
  it_wait_log(log, "graph jobs' ranks run /"); /* the absolute path */
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A rank that trainrun refuses to start (its data is not on the nodes:
 * the controller's check never reads data) fails the job with trainrun's
 * own words in the job's reason, not only its exit code. */
Test(graph, a_failed_rank_names_trainruns_error_in_the_reason, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  size_t n;
  uint8_t *raw = rk_make_config(10, 0, NULL, &n);
  Trainyard__TrainConfig *m = trainyard__train_config__unpack(NULL, n, raw);
  cr_assert(m);
  Trainyard__Dataset ds = TRAINYARD__DATASET__INIT, *old = m->dataset;
  if (old) ds = *old;
  ds.dir = "/nonexistent-trainyard-data";
  m->dataset = &ds;
  size_t len = trainyard__train_config__get_packed_size(m);
  uint8_t *cfg = malloc(len + 1);
  trainyard__train_config__pack(m, cfg);
  m->dataset = old;
  trainyard__train_config__free_unpacked(m, NULL);
  free(raw);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = submit_graph(cl, 1, 1, cfg, len);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 60000);
  cr_assert(r, "job %llu did not end (logs in %s)", (unsigned long long)id, c.dir);
  cr_assert_eq(r->job->state, TRAINYARD__JOB_STATE__JOB_FAILED);
  cr_assert(strstr(r->job->reason, "rank 0 exited with code 2: ") &&
                strstr(r->job->reason, "/nonexistent-trainyard-data"),
            "reason: %s", r->job->reason);
  cr_assert_null(strstr(r->job->reason, "trainrun: "), "the prefix is left out: %s",
                 r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A graph job whose trainrun the kernel kills at the job's memory limit
 * ends OUT_OF_MEMORY (Slurm's, 0:125), as a command job does; the reason
 * keeps the kill and says out of memory. */
Test(graph, a_rank_over_its_memory_limit_ends_out_of_memory, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  if (!it_worker_has_cgroups(&c)) cr_skip_test("the worker found no usable cgroup hierarchy");
  size_t len;
  uint8_t *cfg = rk_make_config(10, 0, NULL, &len);
  rk_job j;
  rk_graph_job(&j, 1, 1, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  j.res.mem_per_node = 8u << 20; /* far below what trainrun maps */
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = 0;
  char err[512] = "";
  cr_assert_eq(it_submit_job(cl, &j.job, &id, err, sizeof err), 0, "submit: %s", err);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 60000);
  cr_assert(r, "job %llu did not end (logs in %s)", (unsigned long long)id, c.dir);
  cr_assert_eq(r->job->state, TRAINYARD__JOB_STATE__JOB_OUT_OF_MEMORY, "ended %d: %s (logs in %s)",
               r->job->state, r->job->reason, c.dir);
  cr_assert_eq(r->job->exit_code, 0);
  cr_assert_eq(r->job->term_signal, 125);
  cr_assert(strstr(r->job->reason, "rank 0 ") && strstr(r->job->reason, "out of memory: "),
            "reason: %s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* The pid of trainrun running rank `rank` of job `job` in the cluster whose
 * directory is dir: tests running beside this one number their jobs from 1
 * too, so the directory is part of what is matched. */
static pid_t find_rank(const char *dir, uint64_t job, uint32_t rank) {
  char want[64];
  snprintf(want, sizeof want, "/jobs/%llu/config.rank%u.pb", (unsigned long long)job, rank);
  return rk_find_trainrun(dir, want, NULL);
}

static void wait_step(ty_rpc_client *cl, uint64_t id, uint64_t step, bool ckpt) {
  for (int i = 0; i < 1200; i++) {
    Trainyard__GetJobResponse *r = it_get_job(cl, id);
    bool ok = r && r->progress && (ckpt ? r->progress->checkpoint_step : r->progress->step) >= step;
    trainyard__get_job_response__free_unpacked(r, NULL);
    if (ok) return;
    it_sleep_ms(100);
  }
  cr_assert_fail("job %llu never reached step %llu", (unsigned long long)id,
                 (unsigned long long)step);
}

/* Slow steps (inherited by workers and their ranks) so a kill lands mid-run
 * however fast training is; the weights are unaffected. A lost peer ends
 * a collective after 20 s. */
static void slow_steps(void) {
  setenv("TRAINYARD_COLLECTIVE_TIMEOUT_S", "20", 1);
  setenv("TRAINYARD_STEP_DELAY_MS", "25", 1);
}

/* SIGKILLs rank 1 of job id once it trained 10 steps: the job fails,
 * naming that rank and the signal (`what`: the rank in messages). */
static void kill_rank1_fails_the_job(ty_rpc_client *cl, uint64_t id, const char *what,
                                     const char *dir) {
  wait_step(cl, id, 10, false);
  pid_t victim = find_rank(dir, id, 1);
  cr_assert(victim > 0, "%s of job %llu not found", what, (unsigned long long)id);
  kill(victim, SIGKILL);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 60000);
  cr_assert(r, "job did not end after its %s was killed (logs in %s)", what, dir);
  cr_assert_eq(r->job->state, TRAINYARD__JOB_STATE__JOB_FAILED);
  cr_assert(strstr(r->job->reason, "rank 1") && strstr(r->job->reason, "signal 9"), "reason: %s",
            r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
}

Test(graph, killed_rank_fails_the_job, .timeout = 180) {
  slow_steps();
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  size_t len;
  uint8_t *cfg = rk_make_config(100000, 0, NULL, &len);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = submit_graph(cl, 2, 1, cfg, len);
  kill_rank1_fails_the_job(cl, id, "rank 1", c.dir);
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A pipeline stage killed mid-run: the job fails naming that rank, and
 * the other stage, waiting for its messages, does not keep it running. */
Test(graph, killed_pipeline_stage_fails_the_job, .timeout = 180) {
  it_full_pass_only("killed_rank_fails_the_job (the daemons' side) and plan's "
                    "a_dead_pipeline_stage_fails_its_neighbour (the stage's)");
  slow_steps();
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  size_t len;
  uint8_t *cfg = rk_make_pipeline_config(100000, "2", "4", NULL, &len);
  ty_rpc_client *cl = it_client(&c);
  rk_job j;
  rk_graph_job(&j, 2, 1, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_AUTO);
  j.job.name = "mlp-pp";
  uint64_t id = 0;
  char err[512] = "";
  cr_assert_eq(it_submit_job(cl, &j.job, &id, err, sizeof err), 0, "submit: %s", err);
  kill_rank1_fails_the_job(cl, id, "stage 1", c.dir);
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A minute under ASan (three runs of 250 slow steps); there the daemons'
 * paths are those of killed_rank_requeues_once_by_policy (a graph job
 * requeued, its rank 0 resuming from its checkpoint) and of
 * cluster_workers' killed_worker_ends_jobs_node_fail_and_requeues (a
 * lost worker's job requeued). */
Test(graph, requeued_job_resumes_from_its_checkpoint, .timeout = 300) {
  it_full_pass_only("killed_rank_requeues_once_by_policy");
  slow_steps();
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  /* 250 steps of 25 ms, as in killed_rank_requeues_once_by_policy: the
   * kill after the checkpoint of step 40 lands with 5 s of training left
   * even when a loaded machine reports the checkpoint late (120 steps left
   * 2 s, and the job could complete before it lost its node). */
  const uint64_t steps = 250;
  char ref[400], out[400];
  size_t len;
  ty_rpc_client *cl = it_client(&c);
  /* The reference is the same job uninterrupted: two ranks sum their
   * gradients in another order than one process does, a drift that grows
   * with the steps (1.9e-4 after 120 on AVX-512 OpenBLAS), and that is
   * not what this test is about. */
  snprintf(ref, sizeof ref, "%s/uninterrupted.onnx", c.dir);
  uint8_t *cfg = rk_make_config(steps, 0, ref, &len);
  Trainyard__GetJobResponse *r = it_wait_job(cl, submit_graph(cl, 2, 1, cfg, len), 0, 180000);
  cr_assert(r && r->job->state == TRAINYARD__JOB_STATE__JOB_COMPLETED,
            "the uninterrupted job did not complete (logs in %s)", c.dir);
  trainyard__get_job_response__free_unpacked(r, NULL);
  free(cfg);
  snprintf(out, sizeof out, "%s/resumed.onnx", c.dir);
  cfg = rk_make_config(steps, 20, out, &len);
  uint64_t id = submit_graph(cl, 2, 1, cfg, len);
  wait_step(cl, id, 40, true);
  /* Lose the node of rank 1: its worker and the rank with it. */
  r = it_get_job(cl, id);
  cr_assert(r && r->job->n_nodes == 2);
  size_t w = strcmp(r->job->nodes[1], c.name[0]) == 0 ? 0 : 1;
  trainyard__get_job_response__free_unpacked(r, NULL);
  pid_t rank1 = find_rank(c.dir, id, 1);
  it_kill9(&c.worker[w]);
  if (rank1 > 0) kill(rank1, SIGKILL);
  r = it_wait_job(cl, id, TRAINYARD__JOB_STATE__JOB_PENDING, 60000);
  cr_assert(r, "job was not requeued (logs in %s)", c.dir);
  cr_assert_geq(r->job->requeue_count, 1u);
  trainyard__get_job_response__free_unpacked(r, NULL);
  it_worker_start(&c, w, 1);
  r = it_wait_job(cl, id, 0, 180000);
  cr_assert(r && r->job->state == TRAINYARD__JOB_STATE__JOB_COMPLETED,
            "job did not complete after the requeue (%s)", r ? r->job->reason : "timeout");
  trainyard__get_job_response__free_unpacked(r, NULL);
  /* It resumed (rather than starting over) ... */
  bool resumed = false;
  for (size_t i = 0; i < 2 && !resumed; i++) {
    char log[400];
    snprintf(log, sizeof log, "%s/%s/jobs/%llu/rank0.log", c.dir, c.name[i],
             (unsigned long long)id);
    if (access(log, R_OK) != 0) continue;
    size_t n;
    char *text = (char *)rk_read_all(log, &n);
    resumed = strstr(text, "resumed from ") != NULL;
    free(text);
  }
  cr_assert(resumed, "no rank 0 log says it resumed (logs in %s)", c.dir);
  /* ... and the loss curve continued: same end point as an uninterrupted run. */
  double d = rk_weight_diff(ref, out);
  cr_log_info("resumed weights differ from the uninterrupted job's by %g", d);
  cr_assert(d < 1e-5, "resumed weights differ from the uninterrupted job's by %g", d);
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

static bool rank0_resumed(const it_cluster *c, uint64_t id) {
  for (size_t i = 0; i < 2; i++) {
    char log[400];
    snprintf(log, sizeof log, "%s/%s/jobs/%llu/rank0.log", c->dir, c->name[i],
             (unsigned long long)id);
    if (access(log, R_OK) != 0) continue;
    size_t n;
    char *text = (char *)rk_read_all(log, &n);
    bool yes = strstr(text, "resumed from ") != NULL;
    free(text);
    if (yes) return true;
  }
  return false;
}

Test(graph, killed_rank_requeues_once_by_policy, .timeout = 300) {
  slow_steps();
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  char out[400];
  snprintf(out, sizeof out, "%s/requeued.onnx", c.dir);
  size_t len;
  /* 250 steps of 25 ms: the kill after the checkpoint of step 40 lands
   * with 5 s of training left, even when a loaded machine reports the
   * checkpoint late (120 steps left 2 s, and a run at load 7 saw the job
   * complete before the kill reached a training rank). */
  uint8_t *cfg = rk_make_config(250, 20, out, &len);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = submit_graph_rq(cl, 2, 1, cfg, len, 1);
  wait_step(cl, id, 40, true);
  pid_t victim = find_rank(c.dir, id, 1);
  cr_assert(victim > 0, "rank 1 of job %llu not found", (unsigned long long)id);
  kill(victim, SIGKILL);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 180000);
  cr_assert(r, "job did not end after the requeue (logs in %s)", c.dir);
  cr_assert_eq(r->job->state, TRAINYARD__JOB_STATE__JOB_COMPLETED, "reason: %s", r->job->reason);
  cr_assert_eq(r->job->requeue_count, 1u);
  bool seen = false;
  for (size_t i = 0; i < r->n_events && !seen; i++)
    seen = r->events[i]->to_state == TRAINYARD__JOB_STATE__JOB_PENDING &&
           strstr(r->events[i]->reason, "rank 1 killed by signal 9 (SIGKILL); requeued (1 of 1)");
  cr_assert(seen, "no PENDING event names the killed rank and the requeue");
  trainyard__get_job_response__free_unpacked(r, NULL);
  cr_assert(rank0_resumed(&c, id), "no rank 0 log says it resumed (logs in %s)", c.dir);
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* The step rank `rank` of job id says it stopped at ("stopped at step N"
 * in its log on either node), 0 when no log says so. */
static uint64_t rank_stopped_at(const it_cluster *c, uint64_t id, unsigned rank) {
  uint64_t step = 0;
  for (size_t i = 0; i < 2 && !step; i++) {
    char log[400];
    snprintf(log, sizeof log, "%s/%s/jobs/%llu/rank%u.log", c->dir, c->name[i],
             (unsigned long long)id, rank);
    if (access(log, R_OK) != 0) continue;
    size_t n;
    char *text = (char *)rk_read_all(log, &n);
    const char *at = strstr(text, "stopped at step ");
    if (at) step = strtoull(at + strlen("stopped at step "), NULL, 10);
    free(text);
  }
  return step;
}

/* SIGTERM reaches the ranks of a data-parallel job each at its own moment
 * (a requeue, a preemption or a worker's stop signals every rank's process
 * group; here only rank 1's, the extreme case): a rank signalled after its
 * last gradient exchange of a step must not leave after that step while
 * its peer, which saw no stop, waits for it in the next step's exchange.
 * Every rank stops after the same step and rank 0 writes its checkpoint,
 * the work a requeued job resumes from. */
Test(graph, sigterm_to_one_rank_stops_every_rank_at_one_step, .timeout = 180) {
  slow_steps();
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  char out[400], step_file[440];
  snprintf(out, sizeof out, "%s/stopped.onnx", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(100000, 0, out, &len);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = submit_graph(cl, 2, 1, cfg, len);
  wait_step(cl, id, 10, false);
  pid_t victim = find_rank(c.dir, id, 1);
  cr_assert(victim > 0, "rank 1 of job %llu not found", (unsigned long long)id);
  kill(victim, SIGTERM);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 60000);
  cr_assert(r, "job did not end after rank 1's SIGTERM (logs in %s)", c.dir);
  cr_assert_neq(r->job->state, TRAINYARD__JOB_STATE__JOB_FAILED, "reason: %s (logs in %s)",
                r->job->reason, c.dir);
  trainyard__get_job_response__free_unpacked(r, NULL);
  uint64_t s0 = rank_stopped_at(&c, id, 0), s1 = rank_stopped_at(&c, id, 1);
  cr_assert(s0 > 0 && s0 == s1, "rank 0 stopped at step %llu, rank 1 at %llu (logs in %s)",
            (unsigned long long)s0, (unsigned long long)s1, c.dir);
  snprintf(step_file, sizeof step_file, "%s/stopped.step-%06llu.onnx.state", c.dir,
           (unsigned long long)s0);
  cr_assert_eq(access(step_file, R_OK), 0, "no checkpoint of step %llu (logs in %s)",
               (unsigned long long)s0, c.dir);
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* The worker's stop SIGTERM (a cancel here; a time limit, a preemption and
 * a requeue take the same path) reaches trainrun alone: the MPI helpers it
 * started (each rank's singleton orted, rank 0's ompi-server) live until
 * the ranks have stopped and finalized (once, the SIGTERM killed them
 * first and every rank logged "ORTE_ERROR_LOG: Unreachable"). */
Test(graph, a_stopped_multi_rank_job_finalizes_mpi_cleanly, .timeout = 180) {
  slow_steps();
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  char out[400], sid[24];
  snprintf(out, sizeof out, "%s/finalized.onnx", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(100000, 0, out, &len);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = submit_graph(cl, 2, 1, cfg, len);
  wait_step(cl, id, 10, false);
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  bool gone = false; /* every rank ended: nothing more comes to the logs */
  for (int i = 0; i < 600 && !gone; i++, it_sleep_ms(100)) {
    Trainyard__GetJobResponse *r = it_get_job(cl, id);
    gone = r && r->job->state == TRAINYARD__JOB_STATE__JOB_CANCELLED && !r->job->ranks_ending;
    trainyard__get_job_response__free_unpacked(r, NULL);
  }
  cr_assert(gone, "the ranks of job %s did not end (logs in %s)", sid, c.dir);
  for (unsigned rank = 0; rank < 2; rank++) {
    cr_assert_gt(rank_stopped_at(&c, id, rank), 0, "rank %u did not stop (logs in %s)", rank,
                 c.dir);
    for (size_t i = 0; i < 2; i++) {
      char log[400];
      snprintf(log, sizeof log, "%s/%s/jobs/%s/rank%u.log", c.dir, c.name[i], sid, rank);
      char *text = access(log, R_OK) == 0 ? (char *)rk_read_all(log, &len) : NULL;
      cr_assert(!text || !strstr(text, "ORTE_ERROR_LOG"), "rank %u's log:\n%s", rank, text);
      free(text);
    }
  }
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A --signal TERM warning: trainrun checkpoints and stops short of its
 * last step, every rank exiting 0; the job ends TIMEOUT (it ran out of
 * time), not COMPLETED, naming the step it stopped at and its checkpoint.
 * Before it, `job checkpoint` is refused: the ranks report their own. */
Test(graph, a_term_warning_ends_the_job_timeout_not_completed, .timeout = 180) {
  slow_steps();
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  char out[400];
  snprintf(out, sizeof out, "%s/warned.onnx", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(100000, 0, out, &len);
  ty_rpc_client *cl = it_client(&c);
  rk_job j;
  rk_graph_job(&j, 1, 1, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  /* The warning 6 s into the run: step 2 and the refused `job checkpoint`
   * come well before it. */
  j.job.time_limit_s = 120, j.job.warn_signal = SIGTERM, j.job.warn_before_s = 114;
  uint64_t id = 0;
  char err[512] = "";
  cr_assert_eq(it_submit_job(cl, &j.job, &id, err, sizeof err), 0, "submit: %s", err);
  /* job checkpoint is for command jobs: a graph job's ranks report theirs. */
  wait_step(cl, id, 2, false);
  char sid[24], *out_text = NULL, *err_text = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(
      it_trainctl_err(&c, &out_text, &err_text, (const char *[]){"job", "checkpoint", sid, NULL}),
      1);
  cr_assert(strstr(err_text, "is a graph job: its ranks report the checkpoints they write"), "%s",
            err_text);
  free(out_text), free(err_text);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 90000);
  cr_assert(r, "job did not end after its warning (logs in %s)", c.dir);
  cr_assert_eq(r->job->state, TRAINYARD__JOB_STATE__JOB_TIMEOUT, "%d: %s (logs in %s)",
               r->job->state, r->job->reason, c.dir);
  unsigned long long at = 0, ckpt = 1;
  cr_assert(sscanf(r->job->reason, "stopped at step %llu of", &at) == 1 &&
                strstr(r->job->reason, " after the --signal warning (SIGTERM 114 s before the time "
                                       "limit of 120 s); its checkpoint at step ") &&
                sscanf(strstr(r->job->reason, "checkpoint at step "), "checkpoint at step %llu",
                       &ckpt) == 1 &&
                at == ckpt,
            "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
