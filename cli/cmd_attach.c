/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl attach: reattaches to a running interactive job (rlaunch) as an
 * observer; any other job is pointed at trainctl logs -f. Each worker first replays the rank's
 * recent output from its ring buffer, then streams what follows until the task ends. Observers send
 * no input and their going away never stops the job.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/rlaunch.h"
#include "cli/script.h"
#include "proto/methods.h"

enum { A_RANK = 'r', A_HELP = 'h' };
static const struct option attach_opts[] = {{"rank", required_argument, NULL, A_RANK},
                                            {"help", no_argument, NULL, A_HELP},
                                            {NULL, 0, NULL, 0}};

typedef struct attach_args {
  ty_job_ref ref; /* a job, or an array element (42_7) */
  int64_t rank;   /* -1 = all */
  bool help, have_id;
} attach_args;

static int attach_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  attach_args *a = ud;
  uint32_t r;
  (void)it;
  if (id == A_HELP) {
    a->help = true;
    return 0;
  }
  if (id == A_RANK) {
    int rc = ty__cli_parse_u32("--rank", v, 0, UINT32_MAX - 1, &r, err, err_len);
    if (rc == 0) a->rank = r;
    return rc;
  }
  if (a->have_id)
    return ty_errf(err, err_len, TY_EINVAL, "attach: one job id, got \"%s\" as well", v);
  a->have_id = true;
  ty_job_ref *refs = NULL;
  size_t n = 0;
  int rc = ty_job_refs_parse("attach", v, &refs, &n, err, err_len);
  if (rc == 0 && n != 1)
    rc = ty_errf(err, err_len, TY_EINVAL, "attach: \"%s\" names several jobs; give one", v);
  if (rc == 0) a->ref = refs[0];
  free(refs);
  return rc;
}

/* Only an interactive job's tasks (rlaunch's) keep their output on the
 * workers for attach; a batch script's or a --command job's goes to its
 * log, which the workers would answer "no interactive task" for, rank by
 * rank. Told here from the job (GetJob): 0, or the exit code after saying
 * what to run instead. */
static int check_interactive(ty__ctl *c, uint64_t id) {
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  ty_cli_jobinfo job = {0};
  ty_cli_event *ev = NULL;
  size_t nev = 0;
  int code = ty__cli_encode_get_job(&(ty_job_ref){.id = id}, false, &req) ? TY_CLI_EXIT_ERROR : 0;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_JOB, TY_M_GET_JOB, &req, &res);
  if (code == 0 && ty_cli_decode_get_job(res.payload, res.payload_len, &job, &ev, &nev) != 0)
    code = ty__ctl_bad_answer(TY_M_GET_JOB);
  const char *text, *out, *err;
  char *const *args;
  size_t nargs;
  if (code == 0 && !job.spec.interactive.on) {
    bool batch = ty_cli_script_view(&job.spec, &text, &out, &err, &args, &nargs);
    ty__ctl_err("job %" PRIu64 " is %s: follow its output with trainctl logs -f %" PRIu64, id,
                batch ? "a batch job" : "not an interactive job (rlaunch's)", id);
    code = TY_CLI_EXIT_ERROR;
  }
  ty_cli_events_free(ev, nev);
  ty_cli_jobinfo_close(&job);
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
  return code;
}

static int parse(int argc, char **argv, attach_args *a, char *err, size_t err_len) {
  *a = (attach_args){.rank = -1};
  int rc = ty__cli_parse(argc, argv, "r:h", attach_opts, attach_arg, a, err, err_len);
  if (rc == 0 && !a->have_id && !a->help)
    rc = ty_errf(err, err_len, TY_EINVAL, "attach: a job id is required");
  return rc;
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
  uint64_t id;
  int code = ty__ctl_job_id(c, &a.ref, &id);
  if (code == 0) code = ty__ctl_locate(c, id, true, &l);
  if (code) return code;
  if (ty_job_state_terminal(l.state)) {
    /* Its workers would wait for a task that never comes: say so now. */
    ty__ctl_err("job %" PRIu64 " is %s: attach follows a running job's output; what it wrote: "
                "trainctl logs %" PRIu64,
                id, ty_job_state_name(l.state), id);
    ty_task_locations_close(&l);
    return TY_CLI_EXIT_ERROR;
  }
  if (l.n == 0) {
    ty__ctl_err("job %" PRIu64 " is %s and has no running tasks%s%s", id,
                ty_job_state_name(l.state), l.reason[0] ? ": " : "", l.reason);
    ty_task_locations_close(&l);
    return TY_CLI_EXIT_ERROR;
  }
  code = check_interactive(c, id);
  if (code) {
    ty_task_locations_close(&l);
    return code;
  }
  const ty_task_location *tasks = l.tasks;
  size_t n = l.n;
  if (a.rank >= 0) {
    for (n = 0; n < l.n && (int64_t)l.tasks[n].rank != a.rank; n++) {
    }
    if (n == l.n) {
      ty__ctl_err("job %" PRIu64 " has no rank %" PRId64, id, a.rank);
      ty_task_locations_close(&l);
      return TY_CLI_EXIT_ERROR;
    }
    tasks = &l.tasks[n];
    n = 1;
  }
  ty_rl_session_opts so = {.job_id = id,
                           .tasks = tasks,
                           .n = n,
                           .owner = false,
                           .replay = true,
                           .prefix = n > 1,
                           .line_mode = n > 1,
                           .prog = "trainctl"};
  int rc = ty_rl_session_run(&so);
  ty_task_locations_close(&l);
  /* The task's own exit code is the job's business (trainctl show); attach
   * succeeded when the stream ended cleanly. */
  return rc >= TY_RL_EXIT_UNREACHABLE && rc <= TY_RL_EXIT_NOCMD && rc != TY_RL_EXIT_TIMEOUT
             ? TY_CLI_EXIT_ERROR
             : TY_CLI_EXIT_OK;
}
