/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A graph job no flat plan fits (part of the graph_plan program, beside
 * test_graph_plan.c): grouped.onnx (three 1x1 Convs of 2 groups to 512
 * channels, then 512 x 10) on 3 devices of 4 MiB, where no mesh splits a
 * grouped Conv's weight (the wide MLP's 512 now split 171, 171, 170 and
 * fit) and every flat plan holds all four weights, but three stages hold
 * one or two each. With the default config (pipeline_stages left empty, parallelism
 * auto) the controller plans the pipeline at submit, the ranks run it and
 * end with the weights of one process; `trainctl plan` (here and through
 * the controller, then from its cache), `trainctl show` and rank 0's log
 * say why it is pipelined. The same config with pipeline_stages "1" keeps
 * the refusal, naming the setting that fits: the cache, whose key holds
 * the difference, does not answer it with the pipeline.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/train_config.pb-c.h"
#include "tests/integration/ranks.h"

#define STEPS 12

static const char *const tight[] = {"--plan-device-flops",
                                    "1e11",
                                    "--plan-intra-gbps",
                                    "10",
                                    "--plan-inter-gbps",
                                    "1.25",
                                    "--plan-device-mem",
                                    "4M",
                                    NULL};

/* The grouped model with cfg on 1 x 3 ranks, parallelism auto, as a job file. */
static void write_grouped_job(const char *path, const uint8_t *cfg, size_t len) {
  rk_job j;
  rk_graph_job(&j, 1, 3, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_AUTO);
  j.graph.model_path = (char *)rk_env("TY_GROUPED_ONNX");
  j.job.name = "grouped-auto";
  rk_write_job_file(path, &j);
}

/* `trainctl ARGS...`: its exit code, stdout and stderr (freed by the caller). */
static int ctl(const it_cluster *c, char **out, char **err, const char *const *args) {
  *out = *err = NULL;
  return it_trainctl_err(c, out, err, args);
}

/* The one-process weights: the grouped model trained STEPS steps, no plan. */
static void reference(const it_cluster *c, char *out, size_t n) {
  char cfgp[400], log[400];
  snprintf(out, n, "%s/grouped-ref.onnx", c->dir);
  snprintf(cfgp, sizeof cfgp, "%s/grouped-ref.pb", c->dir);
  snprintf(log, sizeof log, "%s/grouped-ref.log", c->dir);
  size_t len;
  uint8_t *cfg = rk_make_config(STEPS, 0, out, &len);
  rk_write_file(cfgp, cfg, len);
  free(cfg);
  cr_assert_eq(rk_wait_exit(rk_start(rk_env("TY_GROUPED_ONNX"), cfgp, 0, 1, 0, 1, log, NULL)), 0,
               "reference run failed: %s", log);
}

/* What `trainctl plan` says of the job, here for the same 8 MiB and
 * through the controller (twice: the second from its cache). */
static void expect_planned_text(const it_cluster *c, const char *job) {
  const char *why = "why: no flat plan fits in 4.0 MiB per device; pipelined: 3 stages of mesh 1x1";
  char *out, *err;
  const char *here[] = {"plan", "--mesh", "1x3", "--device-mem", "4M", job, NULL};
  cr_assert_eq(ctl(c, &out, &err, here), 0, "%s", err);
  cr_assert(strstr(out, why) && strstr(out, "no pipeline") && strstr(out, "the smallest needs "),
            "%s", out);
  free(out), free(err);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(ctl(c, &out, &err, (const char *const[]){"plan", job, NULL}), 0, "%s", err);
    cr_assert(strstr(out, why) && (i == 0 || strstr(out, "planned by the controller (cached)")),
              "%s", out);
    free(out), free(err);
  }
}

Test(graph_plan, a_model_no_flat_plan_fits_is_pipelined_and_trains_as_one_process, .timeout = 300) {
  it_cluster c;
  it_cluster_start_with(&c, 1, 3, &(it_options){.traind_args = tight});
  char ref[400], trained[400], job[400], num[32], log[500];
  reference(&c, ref, sizeof ref);
  snprintf(trained, sizeof trained, "%s/grouped-auto.onnx", c.dir);
  snprintf(job, sizeof job, "%s/grouped-auto.job.pb", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(STEPS, 0, trained, &len);
  write_grouped_job(job, cfg, len);
  free(cfg);
  expect_planned_text(&c, job);
  char *out, *err;
  cr_assert_eq(ctl(&c, &out, &err, (const char *const[]){"submit", "--quiet", job, NULL}), 0, "%s",
               err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  ty_rpc_client *cl = it_client(&c);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 180000);
  cr_assert(r && r->job->state == TRAINYARD__JOB_STATE__JOB_COMPLETED,
            "job ended %d: %s (logs in %s)", r ? (int)r->job->state : -1, r ? r->job->reason : "",
            c.dir);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  double d = rk_weight_diff(ref, trained);
  cr_assert(d < 1e-4, "weights differ from one process by %g (logs in %s)", d, c.dir);
  snprintf(num, sizeof num, "%llu", (unsigned long long)id);
  cr_assert_eq(ctl(&c, &out, &err, (const char *const[]){"show", num, NULL}), 0, "%s", err);
  cr_assert(strstr(out, "Plan: no flat plan fits in 4.0 MiB per device; pipelined: 3 stages of "
                        "mesh 1x1, "),
            "%s", out);
  free(out), free(err);
  snprintf(log, sizeof log, "%s/%s/jobs/%llu/rank0.log", c.dir, c.name[0], (unsigned long long)id);
  char *text = (char *)rk_read_all(log, &len);
  cr_assert(strstr(text, "plan: no flat plan fits in 4.0 MiB per device; pipelined: "), "%s", text);
  free(text);
  /* Asked for no pipeline: refused, with what would fit. */
  cfg = rk_make_pipeline_config(STEPS, "1", "", NULL, &len);
  write_grouped_job(job, cfg, len);
  free(cfg);
  cr_assert_eq(ctl(&c, &out, &err, (const char *const[]){"plan", job, NULL}), 5, "%s", out);
  cr_assert(strstr(err, "no plan fits in 4.0 MiB per device; the smallest plan needs 5.8 MiB per "
                        "device (mesh 1x3); pipeline stages fit: pipeline_stages: \"auto\"") &&
                strstr(err, "; not taken automatically: the training config asks for "
                            "pipeline_stages: \"1\""),
            "%s", err);
  free(out), free(err);
  it_cluster_stop(&c);
}
