/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl attach: reattaches to a running interactive job (rlaunch) as an
 * observer. Each worker first replays the rank's recent output from its
 * ring buffer, then streams what follows until the task ends. Observers send
 * no input and their going away never stops the job.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/rlaunch.h"
#include "cli/trainctl.h"
#include "proto/methods.h"

const char ty__usage_attach[] =
    "Usage: trainctl attach ID [--rank R]\n"
    "\n"
    "Shows a running interactive job's output (rlaunch): first its recent output,\n"
    "kept by each worker (the last MiB per rank), then what follows until the job\n"
    "ends. With several ranks each line starts with \"R: \". Older output: trainctl logs.\n"
    "  -r, --rank R    only rank R, without prefixes\n";

enum { A_RANK, A_HELP };
static const ty__cli_opt attach_opts[] = {{"rank", 'r', true, A_RANK}, {"help", 'h', false, A_HELP}};

typedef struct attach_args {
  uint64_t id;
  int64_t rank; /* -1 = all */
  bool help;
} attach_args;

static int parse(int argc, char **argv, attach_args *a, char *err, size_t err_len) {
  *a = (attach_args){.rank = -1};
  ty__cli_args it;
  ty__cli_args_init(&it, argc, argv, attach_opts, TY_ARRAY_LEN(attach_opts));
  bool have_id = false;
  for (;;) {
    const char *v = NULL;
    uint32_t r;
    int id = ty__cli_args_next(&it, &v, err, err_len);
    if (id == TY__ARG_END) break;
    if (id == TY__ARG_ERROR) return TY_EINVAL;
    if (id == A_HELP) a->help = true;
    else if (id == A_RANK) {
      if (ty__cli_parse_u32("--rank", v, 0, UINT32_MAX - 1, &r, err, err_len) != 0) return TY_EINVAL;
      a->rank = r;
    } else if (have_id) {
      return ty_errf(err, err_len, TY_EINVAL, "attach: one job id, got \"%s\" as well", v);
    } else if (ty_cli_parse_job_id(v, &a->id, err, err_len) != 0) {
      return TY_EINVAL;
    } else {
      have_id = true;
    }
  }
  if (!have_id && !a->help) return ty_errf(err, err_len, TY_EINVAL, "attach: a job id is required");
  return 0;
}

int ty__cmd_attach(ty__ctl *c, int argc, char **argv) {
  attach_args a;
  char err[TY_ERR_LEN] = "";
  if (parse(argc, argv, &a, err, sizeof err) != 0) return ty__ctl_usage("attach", err);
  if (a.help) {
    fputs(ty__usage_attach, stdout);
    return 0;
  }
  ty_task_locations l = {0};
  int code = ty__ctl_locate(c, a.id, true, &l);
  if (code) return code;
  if (l.n == 0) {
    ty__ctl_err("job %" PRIu64 " is %s and has no running tasks%s%s", a.id,
                ty_job_state_name(l.state), l.reason[0] ? ": " : "", l.reason);
    ty_task_locations_close(&l);
    return TY_CLI_EXIT_ERROR;
  }
  const ty_task_location *tasks = l.tasks;
  size_t n = l.n;
  if (a.rank >= 0) {
    for (n = 0; n < l.n && (int64_t)l.tasks[n].rank != a.rank; n++) {}
    if (n == l.n) {
      ty__ctl_err("job %" PRIu64 " has no rank %" PRId64, a.id, a.rank);
      ty_task_locations_close(&l);
      return TY_CLI_EXIT_ERROR;
    }
    tasks = &l.tasks[n];
    n = 1;
  }
  ty_rl_session_opts so = {.job_id = a.id, .tasks = tasks, .n = n, .owner = false,
                           .replay = true, .prefix = n > 1, .line_mode = n > 1,
                           .prog = "trainctl"};
  int rc = ty_rl_session_run(&so);
  ty_task_locations_close(&l);
  /* The task's own exit code is the job's business (trainctl show); attach
   * succeeded when the stream ended cleanly. */
  return rc >= TY_RL_EXIT_UNREACHABLE && rc <= TY_RL_EXIT_NOCMD && rc != TY_RL_EXIT_TIMEOUT
             ? TY_CLI_EXIT_ERROR
             : TY_CLI_EXIT_OK;
}
