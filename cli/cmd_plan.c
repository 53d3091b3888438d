/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl plan: how a graph job would be split over its devices, and why.
 * Without --mesh the controller plans the job for the resources it asks
 * for (PlanJob: the same model check and the same plan cache as a submit);
 * with --mesh NODESxDEVICES this process plans it with ops/plan and the
 * cost model's options, no controller needed (the model is read here, the
 * labels' shape derived from it: no data is opened). Either way the chosen
 * plan prints beside the alternatives it beat (ops/plan's text, or with
 * --json its JSON document, docs/planner.md).
 *
 * Also `trainctl show`'s short "Plan:" block of a job's stored plan.
 *
 * Planning here needs the planner's search and the model importer (and
 * with them OpenBLAS, GLPK, libgfortran), which no other command needs:
 * that half lives in the helper trainyard-plan (plan_local.c) that
 * `plan --mesh` runs in trainctl's place, so every other trainctl
 * command starts without loading them (OpenBLAS starts a thread per CPU
 * when loaded). This file is compiled into both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "ops/plan/plan.h"
#include "proto/methods.h"

const char ty__usage_plan[] =
    "Usage: trainctl plan [--json] [--parallelism MODE] JOB.pb\n"
    "       trainctl plan [--json] [--parallelism MODE] --mesh NODESxDEVICES [COST MODEL] JOB.pb\n"
    "       trainctl plan [...] --model M.onnx --config C.pb [--nodes N] [--ntasks-per-node T]\n"
    "                     [--gpus G] [--mem M] [-p QUEUE]   (the job `submit --model` would\n"
    "                     send; in place of JOB.pb)\n"
    "\n"
    "How the graph job in JOB.pb (a binary trainyard.Job, as for submit) would be split\n"
    "over its devices: the chosen plan (per-op sharding, the collectives of a step,\n"
    "predicted step time and memory per device) beside pure data parallelism, pure\n"
    "tensor parallelism and the best data x tensor grid, each with its predicted step\n"
    "time and whether it fits in memory.\n"
    "\n"
    "Without --mesh the controller plans it for the resources the job asks for\n"
    "(nodes x tasks_per_node devices), with its own cost model, as a submit would;\n"
    "each device may use the job's memory per node (--mem, else its queue's or the\n"
    "cluster's default memory) / tasks per node, else 16G. Resources no set of the\n"
    "cluster's nodes could hold are refused as a submit refuses them.\n"
    "With --mesh this machine plans it, with no controller, for NODES x DEVICES:\n"
    "  --mesh NODESxDEVICES     the cluster, e.g. 2x4 (both at least 1)\n"
    "  --device-flops F|cpu     FLOP/s of one device (default 1e11; cpu: measure\n"
    "                           this machine's GEMM)\n"
    "  --device-mem BYTES       memory one device may use, K/M/G/T (default 16G)\n"
    "  --intra-gbps G           GB/s between devices of a node (default 10)\n"
    "  --inter-gbps G           GB/s between nodes (default 1.25)\n"
    "  --latency-us U           per ring step inside a node (default 2)\n"
    "  --inter-latency-us U     per ring step across nodes (default 20)\n"
    "  --launch-us U            fixed cost of one collective (default 5)\n"
    "Both:\n"
    "  --parallelism MODE       auto, data, tensor or grid (default: the job's)\n"
    "  --json                   ops/plan's JSON document (docs/planner.md)\n"
    "Exit codes: 0 planned, 2 usage, 3 controller unreachable, 5 the job cannot be\n"
    "planned (bad model or config, no plan fits the memory, a batch smaller than the\n"
    "data-parallel degree, a data job without pipeline stages whose ranks do not\n"
    "divide its batch, resources the cluster cannot hold), 1 any other error.\n"
    "A data job runs without a plan unless its config sets pipeline_stages (more\n"
    "than 1, or auto): then it runs the planner's pipeline x data plan.\n";

/* ---- show's block --------------------------------------------------------------------- */

static void fmt_bytes(uint64_t b, char *out, size_t len) {
  if (b >= (1ull << 30))
    snprintf(out, len, "%.1f GiB", (double)b / (1ull << 30));
  else if (b >= (1ull << 20))
    snprintf(out, len, "%.1f MiB", (double)b / (1ull << 20));
  else
    snprintf(out, len, "%.1f KiB", (double)b / 1024.0);
}

void ty__cli_render_plan(const uint8_t *plan, size_t len, ty_buf *out) {
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "", mem[32], budget[32];
  if (ty_plan_decode(plan, len, &p, err, sizeof err) != 0) {
    ty_buf_printf(out, "Plan: %zu bytes that do not decode (%s)\n", len, err);
    return;
  }
  const ty_plan_alternative *chosen =
      p->n_alternatives ? &p->alternatives[p->n_alternatives - 1] : NULL;
  size_t split = 0;
  for (size_t i = 0; i < p->n_ops; i++) /* "replicated (fallback)" is not split either */
    split += strncmp(p->ops[i].strategy, "replicated", 10) != 0;
  fmt_bytes(p->memory_bytes, mem, sizeof mem);
  fmt_bytes(p->budget_bytes, budget, sizeof budget);
  ty_buf_printf(
      out,
      "Plan: %s, mesh %dx%d on %d x %d devices: %zu of %zu ops split, %zu collectives per step\n",
      chosen ? chosen->why : "a plan", p->mesh[0], p->mesh[1], p->nodes, p->devices_per_node, split,
      p->n_ops, p->n_collectives);
  char note[2 * TY_ERR_LEN];
  if (ty_plan_replicated_note(p, note, sizeof note)[0]) ty_buf_printf(out, "  note: %s\n", note);
  ty_buf_printf(
      out, "  predicted step %.3f ms (compute %.3f, communication %.3f), %s per device of %s\n",
      p->step_s * 1e3, p->compute_s * 1e3, p->comm_s * 1e3, mem, budget);
  ty_buf_printf(out, "  compared:");
  for (size_t i = 0; i + 1 < p->n_alternatives; i++) {
    const ty_plan_alternative *a = &p->alternatives[i];
    if (!a->applicable)
      ty_buf_printf(out, "%s %s n/a", i ? "," : "", a->name);
    else
      ty_buf_printf(out, "%s %s %.3f ms (%s)", i ? "," : "", a->name, a->step_s * 1e3,
                    a->fits ? "fits" : "does not fit");
  }
  ty_buf_printf(out, "\n");
  ty_plan_destroy(p);
}

/* ---- asking the controller ------------------------------------------------------------ */

static int plan_there(ty__ctl *c, const ty_job_spec *s, ty_plan **out, bool *out_cached) {
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  uint8_t *bytes = NULL;
  size_t len = 0;
  int code = ty__cli_encode_plan_job(s, &req) == 0 ? 0 : TY_CLI_EXIT_ERROR;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_SUBMIT, TY_M_PLAN_JOB, &req, &res);
  if (code == 0 &&
      ty__cli_decode_plan_job(res.payload, res.payload_len, &bytes, &len, out_cached) != 0)
    code = ty__ctl_bad_answer(TY_M_PLAN_JOB);
  char err[TY_ERR_LEN] = "";
  if (code == 0 && ty_plan_decode(bytes, len, out, err, sizeof err) != 0) {
    ty__ctl_err("the controller's plan does not decode: %s", err);
    code = TY_CLI_EXIT_ERROR;
  }
  free(bytes);
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
  return code;
}

/* ---- the command ---------------------------------------------------------------------- */

int ty__cli_print_plan(const ty_cli_plan_args *a, const ty_job_spec *s, const ty_plan *p,
                       bool cached) {
  ty_buf out;
  ty_buf_init(&out);
  int rc = 0;
  if (a->json) {
    rc = ty_plan_to_json(p, &out);
    if (rc == 0) rc = ty_buf_printf(&out, "\n");
  } else {
    rc = ty_buf_printf(&out, "job %s: parallelism %s, %d node%s x %d devices, planned %s\n",
                       s->name && s->name[0] ? s->name
                       : a->file             ? a->file
                                             : a->model,
                       ty_parallelism_name(s->parallelism), p->nodes, p->nodes == 1 ? "" : "s",
                       p->devices_per_node,
                       a->mesh  ? "here"
                       : cached ? "by the controller (cached)"
                                : "by the controller");
    if (rc == 0 && s->parallelism == TY_PARALLELISM_DATA && p->n_stages <= 1)
      rc = ty_buf_printf(&out, "(a data job runs without a plan: each rank trains its share of "
                               "every batch and all-reduces the gradients; this is the "
                               "planner's data-parallel plan for its predicted step and memory)\n");
    if (rc == 0) rc = ty_plan_to_text(p, &out);
  }
  int code = rc == 0 ? ty__ctl_write(&out) : TY_CLI_EXIT_ERROR;
  ty_buf_close(&out);
  return code;
}

/* --model's job, as submit --model builds it (same parser, same checks). */
static int job_from_model(ty__ctl *c, const ty_cli_plan_args *a, ty_job_spec *out) {
  const char *argv[16] = {"--model", a->model, "--config", a->config};
  int n = 4;
  if (a->nodes) argv[n++] = "--nodes", argv[n++] = a->nodes;
  if (a->ntasks) argv[n++] = "--ntasks-per-node", argv[n++] = a->ntasks;
  if (a->gpus) argv[n++] = "--gpus", argv[n++] = a->gpus;
  if (a->mem) argv[n++] = "--mem", argv[n++] = a->mem;
  if (a->queue) argv[n++] = "--partition", argv[n++] = a->queue;
  ty_cli_submit_args s;
  char err[TY_ERR_LEN] = "";
  int rc = ty_cli_parse_submit(n, (char **)argv, c->cwd, ty__ctl_user(c), &s, err, sizeof err);
  if (rc != 0) return ty__ctl_usage("plan", err);
  rc = ty_cli_load_train_config(s.config_file, &s.job, err, sizeof err);
  if (rc != 0) {
    ty__ctl_err("%s", err);
    ty_cli_submit_args_close(&s);
    return rc == TY_EPROTO ? TY_CLI_EXIT_INVALID : TY_CLI_EXIT_USAGE;
  }
  *out = s.job; /* moved */
  memset(&s.job, 0, sizeof s.job);
  ty_cli_submit_args_close(&s);
  if (a->parallelism >= 0) out->parallelism = a->parallelism;
  return 0;
}

/* The job (file or --model) as a graph job spec: 0, or the exit code after
 * saying why. */
int ty__cli_plan_load_job(ty__ctl *c, const ty_cli_plan_args *a, ty_job_spec *out) {
  if (a->model) return job_from_model(c, a, out);
  ty_buf raw;
  ty_buf_init(&raw);
  char err[TY_ERR_LEN] = "";
  int rc = ty_cli_load_job_file(a->file, ty__ctl_user(c), "", &raw, err, sizeof err);
  int code = rc == 0 ? 0 : rc == TY_EPROTO ? TY_CLI_EXIT_INVALID : TY_CLI_EXIT_USAGE;
  if (rc == 0 && (rc = ty__cli_decode_submit(raw.data, raw.len, out)) != 0) {
    snprintf(err, sizeof err, "%s: not a valid trainyard.Job message", a->file);
    code = TY_CLI_EXIT_INVALID;
  }
  if (rc == 0 && out->kind != TY_JOB_KIND_GRAPH) {
    snprintf(err, sizeof err, "%s: not a graph job (job.graph is empty): nothing to plan", a->file);
    code = TY_CLI_EXIT_INVALID;
    ty_job_spec_close(out);
  }
  ty_buf_close(&raw);
  if (code != 0) ty__ctl_err("%s", err);
  if (code == 0 && a->parallelism >= 0) out->parallelism = a->parallelism;
  return code;
}

int ty__cmd_plan(ty__ctl *c, int argc, char **argv) {
  ty_cli_plan_args a;
  char err[TY_ERR_LEN] = "";
  if (ty_cli_parse_plan(argc, argv, &a, err, sizeof err) != 0) return ty__ctl_usage("plan", err);
  if (a.help) {
    fputs(ty__usage_plan, stdout);
    return TY_CLI_EXIT_OK;
  }
  if (a.mesh) return ty__cmd_plan_local(c, argc, argv);
  ty_job_spec s;
  int code = ty__cli_plan_load_job(c, &a, &s);
  if (code != 0) return code;
  ty_plan *p = NULL;
  bool cached = false;
  code = plan_there(c, &s, &p, &cached);
  if (code == 0) code = ty__cli_print_plan(&a, &s, p, cached);
  ty_plan_destroy(p);
  ty_job_spec_close(&s);
  return code;
}
