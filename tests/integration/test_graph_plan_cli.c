/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `trainctl plan` against a real traind (split from test_graph_plan.c):
 * with --mesh (no controller) and without (PlanJob), the text, the JSON
 * document, the cache and each bad input's message and exit code; and a
 * job of four pipeline stages on two workers, planned and shown by the
 * controller, run to completion, and one of two under parallelism data; a job the cluster cannot
 * hold refused as a submit refuses it; and `trainctl watch` following a graph job across controller
 * restarts.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops/plan/plan.h"
#include "proto/methods.h"
#include "proto/train_config.pb-c.h"
#include "tests/integration/ranks.h"

static int plan_cmd(const it_cluster *c, char **out, char **err, const char *const *args) {
  const char *argv[24] = {"plan"};
  size_t k = 1;
  for (size_t i = 0; args[i] && k < 23; i++)
    argv[k++] = args[i];
  argv[k] = NULL;
  return it_trainctl_err(c, out, err, argv);
}

static void expect_plan_error(const it_cluster *c, int code, const char *want,
                              const char *const *args) {
  char *out = NULL, *err = NULL;
  int got = plan_cmd(c, &out, &err, args);
  cr_assert_eq(got, code, "trainctl plan %s ... exited %d, not %d: %s", args[0], got, code, err);
  cr_assert(strstr(err, want), "trainctl plan %s ...: \"%s\" not in: %s", args[0], want, err);
  free(out);
  free(err);
}

/* One PlanJob call with a raw payload: its status and message. */
static int plan_job_rpc(const it_cluster *c, const uint8_t *p, size_t n, char *msg, size_t len) {
  ty_rpc_client *cl = it_client(c);
  ty_rpc_result res;
  int rc = ty_rpc_client_call(cl, TY_M_PLAN_JOB, p, n, 10000, &res);
  if (rc == 0) rc = res.status;
  snprintf(msg, len, "%s", res.message ? res.message : "");
  ty_rpc_result_close(&res);
  ty_rpc_client_close(cl);
  return rc;
}

/* The MLP job on 1 x 2 devices with the config's pipeline knobs set. */
static void write_pipeline_job(const char *path, const char *stages, const char *micro) {
  size_t len;
  uint8_t *cfg = rk_make_pipeline_config(10, stages, micro, NULL, &len);
  rk_write_job(path, "mlp-pp", 1, 2, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_AUTO);
  free(cfg);
}

/* `trainctl plan` shows the stages a config asks for, here and from the
 * controller, and names bad pipeline knobs. */
static void expect_pipeline_plans(const it_cluster *c) {
  char job[400], *out = NULL, *err = NULL;
  snprintf(job, sizeof job, "%s/pp.job.pb", c->dir);
  write_pipeline_job(job, "2", "4");
  cr_assert_eq(plan_cmd(c, &out, &err, (const char *const[]){"--mesh", "1x2", job, NULL}), 0, "%s",
               err);
  cr_assert(
      strstr(out, "pipeline: 2 stages of mesh 1x1, 4 micro-batches of 16 (global batch 64)") &&
          strstr(out, "no pipeline") && strstr(out, "IN FLIGHT"),
      "%s", out);
  free(out), free(err);
  cr_assert_eq(plan_cmd(c, &out, &err, (const char *const[]){job, NULL}), 0, "%s", err);
  cr_assert(strstr(out, "planned by the controller") && strstr(out, "pipeline: 2 stages"), "%s",
            out);
  free(out), free(err);
  /* Issue 18: tensor mode with stages: each stage's own intra-operator
   * plan, its weights split over the stage's two devices. */
  cr_assert_eq(
      plan_cmd(c, &out, &err,
               (const char *const[]){"--mesh", "1x4", "--parallelism", "tensor", job, NULL}),
      0, "%s", err);
  cr_assert(strstr(out, "pipeline: 2 stages of mesh 1x2") && strstr(out, "column split") &&
                !strstr(out, "batch split"),
            "%s", out);
  free(out), free(err);
  write_pipeline_job(job, "40", "");
  expect_plan_error(c, 5, "pipeline_stages: 40 stages do not divide the 2 devices",
                    (const char *const[]){"--mesh", "1x2", job, NULL});
  expect_plan_error(c, 5, "pipeline_stages: 40 stages do not divide the 2 devices",
                    (const char *const[]){job, NULL});
  write_pipeline_job(job, "2", "3");
  expect_plan_error(c, 5, "config.micro_batches: 3 does not divide config.batch_size 64",
                    (const char *const[]){"--mesh", "1x2", job, NULL});
  write_pipeline_job(job, "some", "");
  expect_plan_error(c, 5, "config.pipeline_stages: expected \"auto\" or a count",
                    (const char *const[]){job, NULL});
}

/* A 4-stage pipeline (the wide model's four weight layers) on 2 workers
 * x 2 slots: the controller plans and dispatches it, every rank runs its
 * stage, the job completes. */
Test(graph_plan, four_pipeline_stages_on_two_workers_run_to_completion, .timeout = 300) {
  it_cluster c;
  it_cluster_start_with(&c, 2, 2, &(it_options){.traind_args = rk_plan_rates});
  char path[400];
  snprintf(path, sizeof path, "%s/pp4.job.pb", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_pipeline_config(6, "4", "4", NULL, &len);
  rk_job j;
  rk_graph_job(&j, 2, 2, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_AUTO);
  j.graph.model_path = (char *)rk_env("TY_WIDE_ONNX");
  j.job.name = "wide-pp4";
  rk_write_job_file(path, &j);
  free(cfg);
  uint64_t id = rk_submit_file(&c, path);
  rk_expect_completed(&c, id);
  char *text = rk_show(&c, id);
  cr_assert(strstr(text, "Plan: 4 pipeline stages of mesh 1x1, 4 micro-batches") &&
                strstr(text, "step 6/6"),
            "%s", text);
  free(text);
  it_cluster_stop(&c);
}

/* Parallelism data with pipeline_stages "2" on 1 worker x 2 slots: the
 * controller plans it in data mode with the stages (it refused it before,
 * though trainrun --parallelism data runs it), stores and shows the plan,
 * and both ranks run their stage to the end. */
Test(graph_plan, a_data_job_with_pipeline_stages_runs_its_plan, .timeout = 300) {
  /* Under ASan the daemons' side of a pipelined plan (planned, stored,
   * shown, each rank started on its stage) is the 4-stage job's. */
  it_full_pass_only("four_pipeline_stages_on_two_workers_run_to_completion");
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.traind_args = rk_plan_rates});
  char path[400];
  snprintf(path, sizeof path, "%s/data-pp.job.pb", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_pipeline_config(6, "2", "2", NULL, &len);
  rk_write_job(path, "mlp-data-pp", 1, 2, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  free(cfg);
  uint64_t id = rk_submit_file(&c, path);
  rk_expect_completed(&c, id);
  char *text = rk_show(&c, id);
  cr_assert(strstr(text, "Plan: 2 pipeline stages of mesh 1x1, 2 micro-batches") &&
                strstr(text, "step 6/6"),
            "%s", text);
  free(text);
  it_cluster_stop(&c);
}

Test(graph_plan, trainctl_plan_with_and_without_the_controller, .timeout = 300) {
  it_cluster c;
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = rk_plan_rates});
  char job[400], cmdjob[400];
  snprintf(job, sizeof job, "%s/job.pb", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(10, 0, NULL, &len);
  rk_write_job(job, "mlp", 1, 2, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_TENSOR);
  free(cfg);
  /* Here, for a mesh. */
  char *out = NULL, *err = NULL;
  cr_assert_eq(plan_cmd(&c, &out, &err, (const char *const[]){"--mesh", "1x2", job, NULL}), 0, "%s",
               err);
  cr_assert(strstr(out, "job mlp: parallelism tensor, 1 node x 2 devices, planned here"), "%s",
            out);
  cr_assert(strstr(out, "ALTERNATIVE") && strstr(out, "data parallel ") &&
                strstr(out, "chosen                     1x2"),
            "%s", out);
  cr_assert(strstr(out, "column split (axis 1)") && strstr(out, "row split (axis 1)"), "%s", out);
  cr_assert(!strstr(out, "a data job runs without a plan"), "%s", out);
  free(out), free(err);
  /* A data job's plan is the planner's view of it: it runs without one. */
  cr_assert_eq(plan_cmd(&c, &out, &err,
                        (const char *const[]){"--mesh", "1x2", "--parallelism", "data", job, NULL}),
               0, "%s", err);
  cr_assert(strstr(out, "parallelism data, 1 node x 2 devices, planned here\n(a data job runs "
                        "without a plan"),
            "%s", out);
  free(out), free(err);
  cr_assert_eq(plan_cmd(&c, &out, &err,
                        (const char *const[]){"--json", "--mesh", "2x2", "--parallelism", "grid",
                                              job, NULL}),
               0, "%s", err);
  const char *keys[] = {"{\"plan\":{",
                        "\"ops\":[",
                        "\"sharding\":",
                        "\"collectives\":[",
                        "\"kind\":\"all-reduce\"",
                        "\"mesh_axis\":",
                        "\"phase\":\"",
                        "\"predicted_step_s\":",
                        "\"memory_per_device_bytes\":",
                        "\"alternatives\":[",
                        "\"fits\":true",
                        "\"search_ms\":"};
  for (size_t i = 0; i < TY_ARRAY_LEN(keys); i++)
    cr_assert(strstr(out, keys[i]), "%s not in %s", keys[i], out);
  free(out), free(err);
  /* The controller, for the resources the job asks for; then from its cache. */
  cr_assert_eq(plan_cmd(&c, &out, &err, (const char *const[]){job, NULL}), 0, "%s", err);
  cr_assert(strstr(out, "1 node x 2 devices, planned by the controller\n"), "%s", out);
  free(out), free(err);
  cr_assert_eq(plan_cmd(&c, &out, &err, (const char *const[]){job, NULL}), 0, "%s", err);
  cr_assert(strstr(out, "planned by the controller (cached)"), "%s", out);
  free(out), free(err);
  /* Bad input, here and there. */
  expect_plan_error(&c, 2, "--mesh: 0x2 is a mesh of 0 devices",
                    (const char *const[]){"--mesh", "0x2", job, NULL});
  expect_plan_error(&c, 2, "--device-mem: only with --mesh",
                    (const char *const[]){"--device-mem", "1K", job, NULL});
  expect_plan_error(
      &c, 5,
      "job.graph: cannot plan it for 1 node x 2 devices: cluster.device_mem_bytes: the "
      "tensor parallel plan does not fit in 1.0 KiB per device",
      (const char *const[]){"--mesh", "1x2", "--device-mem", "1K", job, NULL});
  /* 3 devices split a batch of 64 unevenly under a plan; a data job, which
   * runs without one, needs equal shares. */
  cr_assert_eq(plan_cmd(&c, &out, &err, (const char *const[]){"--mesh", "1x3", job, NULL}), 0, "%s",
               err);
  cr_assert(strstr(out, "data parallel              1x3"), "%s", out);
  free(out), free(err);
  expect_plan_error(&c, 5,
                    "job.graph.train_config.batch_size: 64 is not divisible by the 3 ranks, as "
                    "data parallelism without a plan needs (each rank trains an equal share); a "
                    "plan (parallelism auto) splits it unevenly",
                    (const char *const[]){"--mesh", "1x3", "--parallelism", "data", job, NULL});
  /* Pipeline stages under parallelism data: the planner's data plan with
   * stages (pipeline x data), here and by the controller, as trainrun
   * --parallelism data plans it (both refused it before). */
  char ppjob[400];
  snprintf(ppjob, sizeof ppjob, "%s/pp-job.pb", c.dir);
  size_t pplen;
  uint8_t *ppcfg = rk_make_pipeline_config(10, "2", "4", NULL, &pplen);
  rk_write_job(ppjob, "mlp", 1, 2, ppcfg, pplen, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  free(ppcfg);
  const char *const pp_here[] = {"--mesh", "1x2", ppjob, NULL}, *const pp_ctl[] = {ppjob, NULL};
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(plan_cmd(&c, &out, &err, i ? pp_ctl : pp_here), 0, "%s", err);
    cr_assert(strstr(out, "job mlp: parallelism data, 1 node x 2 devices, planned ") &&
                  strstr(out, "2 pipeline stages") && !strstr(out, "runs without a plan"),
              "%s", out);
    free(out), free(err);
  }
  /* --model with submit's --mem: the controller's device memory is the
   * job's memory per rank less what a trainrun rank takes for itself
   * (traind --plan-rank-reserve, 256M by default), as at submit; a job
   * that leaves nothing for the model is refused with the least to ask. */
  char cfgpath[400];
  snprintf(cfgpath, sizeof cfgpath, "%s/mlp.config.pb", c.dir);
  cfg = rk_make_config(10, 0, NULL, &len);
  rk_write_file(cfgpath, cfg, len);
  free(cfg);
  expect_plan_error(
      &c, 5,
      "job.graph: cannot plan it: job.resources.mem_per_node gives each rank 250.0 MiB (2 per "
      "node), and a trainrun rank uses about 256.0 MiB of that before its model (traind "
      "--plan-rank-reserve): ask for more than 256.0 MiB per rank (--mem)",
      (const char *const[]){"--model", rk_env("TY_MLP_ONNX"), "--config", cfgpath,
                            "--ntasks-per-node", "2", "--mem", "500M", NULL});
  expect_plan_error(&c, 5,
                    "no plan fits in 1.0 MiB per device (the job's --mem per rank less the 256.0 "
                    "MiB a trainrun rank uses before its model, traind --plan-rank-reserve); the "
                    "smallest plan needs ",
                    (const char *const[]){"--model", rk_env("TY_MLP_ONNX"), "--config", cfgpath,
                                          "--ntasks-per-node", "2", "--mem", "514M", NULL});
  cr_assert_eq(plan_cmd(&c, &out, &err,
                        (const char *const[]){"--model", rk_env("TY_MLP_ONNX"), "--config", cfgpath,
                                              "--ntasks-per-node", "2", "--mem", "600M", NULL}),
               0, "%s", err);
  cr_assert(strstr(out, "of 44.0 MiB"), "%s", out);
  free(out), free(err);
  /* Without --mem, the queue's --default-mem is the job's memory, which its
   * plan must fit (docs/security.md, "Limits for shared nodes"). */
  cr_assert_eq(
      it_trainctl(&c, NULL,
                  (const char *const[]){"queue", "create", "q500", "--default-mem", "500M", NULL}),
      0);
  const char *in_q500[] = {
      "--model", rk_env("TY_MLP_ONNX"), "--config", cfgpath, "--ntasks-per-node", "2", "-p", "q500",
      NULL};
  char *sub[12] = {"submit"};
  for (size_t i = 0; in_q500[i]; i++)
    sub[i + 1] = (char *)in_q500[i];
  cr_assert_eq(it_trainctl_err(&c, &out, &err, (const char *const *)sub), 5, "%s", err);
  cr_assert(strstr(err, "mem_per_node gives each rank 250.0 MiB (2 per node)"), "%s", err);
  free(out), free(err);
  /* trainctl plan -p: the queue's default as a submit gets it; a queue a
   * submit would be refused is refused too. */
  expect_plan_error(&c, 5, "mem_per_node gives each rank 250.0 MiB (2 per node)", in_q500);
  const char *in_none[] = {"--model", rk_env("TY_MLP_ONNX"), "--config", cfgpath, "-p", "nosuch",
                           NULL};
  expect_plan_error(&c, 5, "job.queue: unknown queue \"nosuch\"", in_none);
  cfg = rk_make_config(10, 0, NULL, &len);
  rk_write_job(job, "mlp3", 1, 3, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  free(cfg);
  expect_plan_error(&c, 5,
                    "job.graph.train_config.batch_size: 64 is not divisible by the 3 ranks, as "
                    "data parallelism without a plan needs",
                    (const char *const[]){job, NULL});
  snprintf(cmdjob, sizeof cmdjob, "%s/cmd.pb", c.dir);
  rk_write_file(cmdjob, (const uint8_t *)"\x32\x04\x0a\x02ls", 6); /* Job{command{argv:"ls"}} */
  expect_plan_error(&c, 5, "not a graph job", (const char *const[]){cmdjob, NULL});
  /* PlanJob itself refuses what trainctl would not send. */
  char msg[512];
  cr_assert_eq(plan_job_rpc(&c, (const uint8_t *)"\xff\xff", 2, msg, sizeof msg), TY_EPROTO);
  cr_assert_str_eq(msg, "payload is not a PlanJobRequest carrying a job");
  cr_assert_eq(plan_job_rpc(&c, (const uint8_t *)"\x0a\x06\x32\x04\x0a\x02ls", 8, msg, sizeof msg),
               TY_EINVAL);
  cr_assert_str_eq(msg, "job.graph: only graph jobs have plans; this one runs a command");
  expect_pipeline_plans(&c);
  it_cluster_stop(&c);
}

/* trainctl plan refuses what a submit would refuse for the cluster's shape,
 * in the submit's words and with its exit code, instead of planning a
 * mesh no node set can hold. */
Test(graph_plan, plan_refuses_a_job_the_cluster_cannot_hold, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(&c, 2, 2, &(it_options){.traind_args = rk_plan_rates});
  char cfgpath[400];
  snprintf(cfgpath, sizeof cfgpath, "%s/mlp.config.pb", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(10, 0, NULL, &len);
  rk_write_file(cfgpath, cfg, len);
  free(cfg);
  const char *model = rk_env("TY_MLP_ONNX");
  expect_plan_error(&c, 5, "job.resources.nodes is 3 but only 2 nodes can hold one slot each",
                    (const char *const[]){"--model", model, "--config", cfgpath, "--nodes", "3",
                                          "--ntasks-per-node", "1", NULL});
  expect_plan_error(&c, 5,
                    "job.resources: tasks_per_node * cpus_per_task is 4 CPUs but the largest node "
                    "has 2",
                    (const char *const[]){"--model", model, "--config", cfgpath, "--nodes", "1",
                                          "--ntasks-per-node", "4", NULL});
  char *out = NULL, *err = NULL;
  cr_assert_eq(plan_cmd(&c, &out, &err,
                        (const char *const[]){"--model", model, "--config", cfgpath, "--nodes", "2",
                                              "--ntasks-per-node", "2", NULL}),
               0, "%s", err);
  cr_assert(strstr(out, "2 nodes x 2 devices, planned by the controller"), "%s", out);
  free(out), free(err);
  it_cluster_stop(&c);
}

/* The compute time of `trainctl plan`'s "predicted step: X ms (compute Y
 * ms, ...)" line. */
static double planned_compute_ms(const it_cluster *c, const char *job) {
  char *out = NULL, *err = NULL;
  cr_assert_eq(plan_cmd(c, &out, &err, (const char *const[]){job, NULL}), 0, "%s", err);
  const char *at = strstr(out, "(compute ");
  cr_assert_not_null(at, "%s", out);
  double ms = strtod(at + strlen("(compute "), NULL);
  free(out), free(err);
  return ms;
}

/* Without --plan-device-flops the controller measures a CPU rank's rate
 * once and keeps it in its state directory: a restarted controller plans
 * with the kept rate (here one made ten times slower) instead of a new
 * measurement whose noise could flip a close choice between plans. */
Test(graph_plan, the_measured_cpu_rate_is_kept_across_restarts, .timeout = 300) {
  it_cluster c;
  it_cluster_start_with(&c, 0, 1, NULL);
  char job[400], rate[400];
  snprintf(job, sizeof job, "%s/job.pb", c.dir);
  snprintf(rate, sizeof rate, "%s/traind/cpu-flops-1", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(10, 0, NULL, &len);
  rk_write_job(job, "mlp", 1, 2, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_TENSOR);
  free(cfg);
  double before = planned_compute_ms(&c, job);
  uint8_t *line = rk_read_all(rate, &len);
  cr_assert_not_null(line, "no %s after the first plan", rate);
  double flops = 0;
  int th = 0, used = 0;
  cr_assert_eq(
      sscanf((char *)line, "trainyard-cpu-flops 1 threads=%d flops=%lf cpu=%n", &th, &flops, &used),
      2, "%s", line);
  cr_assert(th == 1 && flops > 1e6 && used > 0, "%s", line);
  char slower[700];
  snprintf(slower, sizeof slower, "trainyard-cpu-flops 1 threads=1 flops=%.17g cpu=%s", flops / 10,
           (char *)line + used);
  free(line);
  rk_write_file(rate, (const uint8_t *)slower, strlen(slower));
  kill(c.traind, SIGTERM);
  cr_assert_eq(rk_wait_exit(c.traind), 0);
  it_controller_start(&c);
  double after = planned_compute_ms(&c, job);
  cr_assert(after > 9 * before && after < 11 * before,
            "compute %.4f ms before, %.4f ms after the rate was cut tenfold", before, after);
  it_cluster_stop(&c);
}

/* trainctl watch across controller restarts (kill -9, then SIGTERM and a
 * new start, as an upgrade does): it reconnects, polls on and ends with the
 * job, here cancelled while it waits for a worker the cluster lacks. */
Test(graph_plan, watch_outlasts_controller_restarts, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(&c, 0, 1, NULL);
  char job[400], log[400], sid[24];
  snprintf(job, sizeof job, "%s/watched.pb", c.dir);
  snprintf(log, sizeof log, "%s/watch.log", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(10, 0, NULL, &len);
  rk_write_job(job, "mlp", 1, 1, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  free(cfg);
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)rk_submit_file(&c, job));
  pid_t w = it_trainctl_spawn(&c, log, (const char *const[]){"watch", sid, NULL});
  it_wait_log(log, "is PENDING");
  it_controller_restart(&c, true);
  it_sleep_ms(1500);
  it_controller_restart(&c, false);
  it_sleep_ms(1500);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *const[]){"cancel", sid, NULL}), 0);
  int rc = it_wait_exit(w, log, 30000);
  char *text = it_read_text(log);
  cr_assert(rc == 1 && strstr(text, "CANCELLED"), "watch exited %d:\n%s", rc, text);
  cr_assert(strstr(text, "reconnecting"), "no word of the lost controller:\n%s", text);
  /* It never ran: no run trained nothing, no log to read. */
  cr_assert(strstr(text, "job CANCELLED: ended before it started") &&
                !strstr(text, "without a training step"),
            "%s", text);
  free(text);
  it_cluster_stop(&c);
}
