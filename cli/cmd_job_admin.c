/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl job hold|release|priority|move|checkpoint and trainctl why: an
 * operator's (or owner's) changes to one job, and the scheduler's answer to
 * "why is my job pending". Changes are recorded in the job's history with
 * the caller's name (`trainctl show ID`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_internal.h"
#include "proto/methods.h"

const char ty__usage_job[] =
    "Usage: trainctl job hold ID          keep a pending job from starting\n"
    "       trainctl job release ID       let a held job start again\n"
    "       trainctl job priority ID N    set its priority in its queue (-1000..1000)\n"
    "       trainctl job move ID QUEUE    move a pending job to another queue\n"
    "       trainctl job checkpoint ID    report a checkpoint now (running jobs; from\n"
    "                                     the job: $TRAINYARD_JOB_ID), so preemption\n"
    "                                     picks jobs that lose the least work\n";

const char ty__usage_why[] =
    "Usage: trainctl why ID [--json]\n"
    "\n"
    "Why job ID is pending, in numbers: its position among pending jobs, its\n"
    "priority split into weighted factors (tier, age, fair share, size, job\n"
    "priority), its owner's fair-share standing, how many nodes would hold a member\n"
    "of its gang and why others would not, and an estimated start from the running\n"
    "jobs' time limits (the backfill reservation).\n";

static int job_change(ty__ctl *c, const char *action, uint64_t id, int32_t prio,
                      const char *queue) {
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  ty_cli_jobinfo j = {0};
  int code = ty_cli_encode_update_job(id, action, prio, queue, &req) == 0
                 ? 0 : TY_CLI_EXIT_ERROR;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_JOB, TY_M_UPDATE_JOB, &req, &res);
  if (code == 0 && ty_cli_decode_update_job(res.payload, res.payload_len, &j) != 0)
    code = ty__ctl_bad_answer(TY_M_UPDATE_JOB);
  if (code == 0 && !strcmp(action, "checkpoint")) {
    time_t t = (time_t)(j.last_ckpt_ms / 1000);
    struct tm tm;
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    printf("Job %llu: checkpoint recorded at %s; a preemption now loses only the work done "
           "since\n", (unsigned long long)id, when);
  } else if (code == 0) {
    printf("Job %llu: %s (queue %s, priority %d%s)\n", (unsigned long long)id,
           ty_job_state_name(j.state), j.spec.queue ? j.spec.queue : "",
           j.spec.priority, !strcmp(action, "hold") ? ", held" : "");
  }
  ty_cli_jobinfo_close(&j);
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
  return code;
}

typedef struct job_argv {
  const char **args;
  int nargs, n;
  bool help;
} job_argv;

static int on_job_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  job_argv *a = ud;
  (void)it, (void)err, (void)err_len;
  if (id == 'h')
    a->help = true;
  else if (a->n == a->nargs)
    return TY_EINVAL;
  else
    a->args[a->n++] = v;
  return 0;
}

/* ACTION's arguments (ID, and N or QUEUE) and --help, in any order; 0, -1
 * for --help, or TY_EINVAL with err set. */
static int job_args(int argc, char **argv, int nargs, const char **args, char *err,
                    size_t err_len) {
  job_argv a = {.args = args, .nargs = nargs};
  int rc = ty__cli_parse(argc, argv, "h", ty__cli_help_only, on_job_arg, &a, err, err_len);
  if (rc == 0 && !a.help && a.n != nargs) rc = TY_EINVAL;
  return rc == 0 && a.help ? -1 : rc;
}

int ty__cmd_job(ty__ctl *c, int argc, char **argv) {
  static const struct {
    const char *action, *expects;
    int nargs;
  } subs[] = {{"hold", "ID", 1},         {"release", "ID", 1},   {"priority", "ID N", 2},
              {"move", "ID QUEUE", 2}, {"checkpoint", "ID", 1}};
  char err[TY_ERR_LEN] = "";
  const char *sub = NULL, *args[2] = {NULL, ""};
  int code = ty__ctl_group("job", ty__usage_job, argc, argv, &sub);
  if (code >= 0) return code;
  for (size_t i = 0; i < TY_ARRAY_LEN(subs); i++) {
    if (strcmp(sub, subs[i].action) != 0) continue;
    int rc = job_args(argc - 1, argv + 1, subs[i].nargs, args, err, sizeof err);
    if (rc == -1) return fputs(ty__usage_job, stdout), TY_CLI_EXIT_OK;
    if (rc == TY_EINVAL && !err[0])
      ty_errf(err, sizeof err, TY_EINVAL, "job %s: expects %s", sub, subs[i].expects);
    if (rc != 0) return ty__ctl_usage("job", err);
    uint64_t id;
    int32_t prio = 0;
    if (ty_cli_parse_job_id(args[0], &id, err, sizeof err) != 0) return ty__ctl_usage("job", err);
    bool priority = !strcmp(sub, "priority");
    if (priority && ty__cli_parse_priority("priority", args[1], &prio, err, sizeof err) != 0)
      return ty__ctl_usage("job", err);
    return job_change(c, sub, id, prio, priority ? "" : args[1]);
  }
  ty_errf(err, sizeof err, TY_EINVAL, "job: unknown subcommand \"%s\"", sub);
  return ty__ctl_usage("job", err);
}

int ty__cmd_why(ty__ctl *c, int argc, char **argv) {
  ty_cli_show_args a; /* the same shape: ID [--json] */
  char err[TY_ERR_LEN] = "";
  if (ty_cli_parse_show(argc, argv, &a, err, sizeof err) != 0) return ty__ctl_usage("why", err);
  if (a.help) {
    fputs(ty__usage_why, stdout);
    return 0;
  }
  ty_buf req, out;
  ty_buf_init(&req), ty_buf_init(&out);
  ty_rpc_result res = {0};
  ty_cli_explain e = {0};
  int code = ty_cli_encode_job_id(a.id, &req) == 0 ? 0 : TY_CLI_EXIT_ERROR;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_JOB, TY_M_EXPLAIN_JOB, &req, &res);
  if (code == 0 && ty_cli_decode_explain(res.payload, res.payload_len, &e) != 0)
    code = ty__ctl_bad_answer(TY_M_EXPLAIN_JOB);
  if (code == 0 && ty_cli_render_explain(&e, ty_now_ms(), a.json || c->g.json, &out) == 0)
    code = ty__ctl_write(&out);
  ty_cli_explain_close(&e);
  ty_rpc_result_close(&res);
  ty_buf_close(&out), ty_buf_close(&req);
  return code;
}
