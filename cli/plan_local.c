/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainyard-plan: `trainctl plan --mesh`, planning a graph job on this
 * machine with ops/plan and the cost model's options (no controller). A
 * program of its own so that trainctl links none of the planner's search,
 * the model importer, OpenBLAS or GLPK: trainctl runs this in its place
 * (helper_exec.c) with the same arguments and exit codes.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli_internal.h"
#include "ops/plan/plan.h"
#include "ops/train/train.h"

/* The request of --mesh and the cost model's options: 0, or exit code 2. */
static int local_request(const ty_cli_plan_args *a, const ty_job_spec *s, ty_plan_request *req) {
  char err[TY_ERR_LEN] = "", what[32];
  ty_plan_request_init(req);
  req->mode = (ty_plan_mode)s->parallelism;
  int rc = ty_plan_parse_mesh("--mesh", a->mesh, &req->cluster.nodes,
                              &req->cluster.devices_per_node, err, sizeof err);
  for (int i = 0; rc == 0 && i < TY_PLAN_N_CLUSTER_OPTIONS; i++) {
    if (!a->rates[i]) continue;
    snprintf(what, sizeof what, "--%s", ty_cli_plan_rate_key(i));
    rc = ty_plan_cluster_set(&req->cluster, ty_cli_plan_rate_key(i), what, a->rates[i], err,
                             sizeof err);
  }
  if (rc == 0 && req->cluster.device_flops == 0 &&
      ty_plan_cpu_flops(NULL, (int)(s->cpus_per_task ? s->cpus_per_task : 1), err, sizeof err,
                        &req->cluster.device_flops) != 0) {
    ty__ctl_err("--device-flops cpu: %s", err);
    return TY_CLI_EXIT_ERROR;
  }
  return rc == 0 ? 0 : ty__ctl_usage("plan", err);
}

/* Imports the job's model and config here and plans them: 0, or the exit
 * code after saying why (5: the job's fault), in the controller's words. */
static int plan_here(const ty_cli_plan_args *a, const ty_job_spec *s, ty_plan **out) {
  ty_plan_request req;
  int code = local_request(a, s, &req);
  if (code != 0) return code;
  char err[TY_ERR_LEN] = "", why[TY_ERR_LEN];
  const char *what = "";
  ty_train_job job;
  int rc = ty_train_job_load(s->model_path, s->model_bytes, s->model_len, s->train_config,
                             s->train_config_len, &job, &what, err, sizeof err);
  if (rc != 0) {
    ty__ctl_err("%s: job.graph.%s: %s", a->file ? a->file : a->model, what,
                err[0] ? err : ty_strerror(rc));
    return rc == TY_ENOMEM ? TY_CLI_EXIT_ERROR : TY_CLI_EXIT_INVALID;
  }
  if (ty_train_plan_request(job.graph, &job.config, &req) != 0) {
    ty__ctl_err("%s: %s", a->file ? a->file : a->model, ty_strerror(TY_ENOMEM));
    ty_train_job_close(&job);
    return TY_CLI_EXIT_ERROR;
  }
  /* A data job runs without a plan (this one only predicts it), so it
   * needs the batch the controller's check needs: equal shares. */
  uint32_t world = (uint32_t)(req.cluster.nodes * req.cluster.devices_per_node);
  if (s->parallelism == TY_PARALLELISM_DATA &&
      (rc = ty_train_check_data_job(&job.config, world, &what, err, sizeof err)) != 0) {
    ty__ctl_err("%s: job.graph.train_config.%s: %s", a->file ? a->file : a->model, what, err);
    ty_train_plan_request_close(&req);
    ty_train_job_close(&job);
    return TY_CLI_EXIT_INVALID;
  }
  if ((rc = ty_plan_search(job.graph, &req, err, sizeof err, out)) != 0) {
    ty_train_plan_refusal(&req, rc, err, why, sizeof why);
    ty__ctl_err("%s: job.graph: %s", a->file ? a->file : a->model, why);
  }
  ty_train_plan_request_close(&req);
  ty_train_job_close(&job);
  return rc == 0 ? 0 : rc == TY_ENOMEM ? TY_CLI_EXIT_ERROR : TY_CLI_EXIT_INVALID;
}

int ty__cmd_plan_local(ty__ctl *c, int argc, char **argv) {
  ty_cli_plan_args a;
  char err[TY_ERR_LEN] = "";
  if (ty_cli_parse_plan(argc, argv, &a, err, sizeof err) != 0) return ty__ctl_usage("plan", err);
  if (a.help || !a.mesh) {
    fputs(ty__usage_plan, a.help ? stdout : stderr);
    return a.help ? TY_CLI_EXIT_OK : TY_CLI_EXIT_USAGE;
  }
  ty_job_spec s;
  int code = ty__cli_plan_load_job(c, &a, &s);
  if (code != 0) return code;
  ty_plan *p = NULL;
  code = plan_here(&a, &s, &p);
  if (code == 0) code = ty__cli_print_plan(&a, &s, p, false);
  ty_plan_destroy(p);
  ty_job_spec_close(&s);
  return code;
}

/* argv: the arguments of `trainctl plan` (trainctl execs this with them). */
int main(int argc, char **argv) {
  ty__ctl c = {0};
  char cwd[PATH_MAX];
  c.cwd = getcwd(cwd, sizeof cwd);
  return ty__cmd_plan_local(&c, argc - 1, argv + 1);
}
