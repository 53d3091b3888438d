/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl ls, show and cancel: the job queries. Each is one request to the
 * controller, decoded by cli/convert.c and rendered by cli/format.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/cli_admin.h"
#include "cli/cli_history.h"
#include "proto/convert.h"
#include "proto/methods.h"

const char ty__usage_ls[] =
    "Usage: trainctl ls [--state S[,S...]] [--user U|--me] [-p Q] [--jobs ID,ID]\n"
    "                   [--name N,N] [-w LIST] [--all] [--since T] [--limit N]\n"
    "                   [--format F,F] [--sort [-]F,F] [--noheader] [--array] [--json]\n"
    "\n"
    "Lists jobs: pending and running ones unless --state or --all says otherwise.\n"
    "  -s, --state S,S   pending, running, completed, failed, cancelled, timeout,\n"
    "                    out_of_memory, preempted, node_fail (or PD, R, CD, F, CA,\n"
    "                    TO, OOM, PR, NF); all (squeue's -t all) is --all\n"
    "  -u, --user U,U    only these users' jobs (names or uids; --me: yours)\n"
    "  -p, --queue Q,Q   only jobs in these queues (squeue's --partition list; -q is\n"
    "                    squeue's --qos, refused: there is no QOS)\n"
    "  -j, --jobs ID,ID  only these jobs (an array's id: its elements; 12_3 one);\n"
    "                    exit 4 when none is listed, as squeue -j's\n"
    "  --name N,N        only jobs with these names (squeue's -n is --noheader here)\n"
    "  -w, --nodelist L  only jobs on any of these nodes (a hostlist: w[1-3],gpu7)\n"
    "  -a, --all         jobs in every state, finished ones included (the newest\n"
    "                    1000 ended ones unless --limit says; a note on stderr\n"
    "                    when there are more)\n"
    "  --limit N         the newest N jobs (by id), live or ended\n"
    "  -r, --array       one line per array element (by default an array's pending\n"
    "                    elements share one line, 123_[5-999], like squeue)\n"
    "  --since T         only jobs submitted, started or ended since T (now-2h, 2h,\n"
    "                    @EPOCH, YYYY-MM-DD[THH:MM[:SS]])\n"
    "  -o, --format F,F  the fields to show (--help-format lists them), or squeue's\n"
    "                    codes: -o \"%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R\",\n"
    "                    printed as squeue prints them (text between kept, widths\n"
    "                    applied, %r the reason's name: Dependency, JobHeldUser)\n"
    "  -S, --sort F,F    sort by these fields; -F sorts that one descending\n"
    "                    (default: by id)\n"
    "  -n, --noheader    no header line (-h too, as squeue's: --help is this help)\n"
    "  --json            a JSON array, one job per line (sorted, all fields)\n"
    "squeue's spellings work too: -t/--states, -p/--partition, --me, -l/--long\n"
    "(the time limit and node count too), -O/--Format\n"
    "(field names, :WIDTH dropped); in -o, %t is the compact state (PD, R), %T\n"
    "the long one.\n"
    "Columns by default: ID NAME USER QUEUE PRI STATE TIME (elapsed) NODES (names,\n"
    "or the count asked for while pending) REASON (why it is pending, or why it\n"
    "ended). On a terminal, text columns are clipped to its width (a '+' ends a\n"
    "clipped cell).\n"
    "A listing leaves out each job's command, environment and graph payload (the\n"
    "batch script is in the command): --json's command has no argv or env and says\n"
    "\"abridged\": true; trainctl show ID has them. An answer too large for one\n"
    "frame keeps the newest jobs that fit, with the note.\n";

const char ty__usage_show[] =
    "Usage: trainctl show ID|ARRAY_TASK [--json | -o]\n"
    "\n"
    "Everything about job ID: its spec, state, times, nodes, exit status and its\n"
    "event history (every state change with the reason). Another user's job\n"
    "shows \"(withheld)\" for its command, a graph job's model path, checkpoint\n"
    "paths and plan, and its exit code (--json: those fields empty, and\n"
    "\"plan_withheld\": true for a graph job with a plan).\n"
    "  -o, --oneliner  scontrol show job -o's line instead: Slurm's Key=Value names\n"
    "                  (JobId, JobName, UserId, JobState, Reason, ExitCode, RunTime,\n"
    "                  TimeLimit, Partition, NodeList, NumNodes, NumCPUs, ...); an\n"
    "                  array's id: a line per element, as scontrol's\n";

const char ty__usage_cancel[] =
    "Usage: trainctl cancel [--signal SIG] ID... [--json]\n"
    "       trainctl cancel [--signal SIG] [--user U|--me] [--name N] [--state S] [--queue Q]\n"
    "                       [-w LIST]\n"
    "\n"
    "Cancels jobs: pending ones at once, running ones are killed (SIGTERM, then\n"
    "SIGKILL after the grace period). An array's id cancels every element still\n"
    "pending or running; 123_7 one element, 123_[1-5,9] several. Prints one result\n"
    "per id; exits 4 if any id is unknown, 1 if any other could not be cancelled.\n"
    "A controller restart is waited out: a cancel (and the filters' job list)\n"
    "whose answer was lost is sent again with a backoff for up to --timeout in all\n"
    "(as submit's); when the first copy was applied before its answer was lost,\n"
    "the job is reported as already CANCELLED. --signal is sent once.\n"
    "  -s, --signal SIG  send SIG (USR1, TERM, 10, ...) to the jobs' running tasks\n"
    "                    instead, cancelling nothing (scancel --signal), e.g. to ask\n"
    "                    for a checkpoint; recorded in each job's history. Every\n"
    "                    process of the tasks gets it (the script and what it runs),\n"
    "                    as with scancel -f (-f/--full is taken)\n"
    "  -b, --batch       with --signal: to each task's batch script alone, not to\n"
    "                    what it runs, as scancel -b (its trap decides what to do);\n"
    "                    a task that runs no script: to its first process\n"
    "Instead of ids, filters (scancel's -u, -n, -t, -p, -w) cancel every pending or\n"
    "running job that matches all of them:\n"
    "  -u, --user U,U    these users' jobs (names or uids; --me: yours)\n"
    "  -n, --name N      jobs named N\n"
    "  -t, --state S,S   pending and/or running only\n"
    "  -p, --queue Q,Q   jobs in any of these queues (also --partition)\n"
    "  -w, --nodelist L  jobs running on any of these nodes (a hostlist: w[1-3])\n"
    "An array whose pending and running elements all match (each of them, by\n"
    "element) is cancelled (and printed) as its id, the elements of another one\n"
    "by one; any number of jobs is cancelled, 1024 ids a request. When more jobs\n"
    "match than one listing of the controller holds (it cuts a listing at its\n"
    "largest frame), nothing is cancelled and cancel exits 1: narrow the filters\n"
    "or cancel by id.\n";

static int64_t now_ms(void) {
  return ty_now_ms();
}

/* One ListJobs with args' filters (ls and cancel's filters): the jobs the
 * controller answered into *out_js (the caller frees them with
 * ty_cli_jobinfos_free) and *out_n, *cut when it left some out (a bound);
 * retried through a controller restart when `retry` (cancel's). Returns a
 * trainctl exit code. */
static int list_jobs(ty__ctl *c, const ty_cli_ls_args *args, bool retry, ty_cli_jobinfo **out_js,
                     size_t *out_n, bool *cut) {
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  *out_js = NULL, *out_n = 0;
  int code = ty_cli_encode_list_jobs(args, &req) == 0 ? 0 : TY_CLI_EXIT_ERROR;
  if (code == 0)
    code = retry ? ty__ctl_call_retrying(c, TY_CLI_OP_OTHER, TY_M_LIST_JOBS, &req, &res)
                 : ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_LIST_JOBS, &req, &res);
  if (code == 0 && ty_cli_decode_list_jobs(res.payload, res.payload_len, out_js, out_n, cut) != 0)
    code = ty__ctl_bad_answer(TY_M_LIST_JOBS);
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
  return code;
}

int ty__cmd_ls(ty__ctl *c, int argc, char **argv) {
  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  if (ty_cli_parse_ls(argc, argv, &a, err, sizeof err) != 0 ||
      ty_cli_resolve_users("--user", a.users, &a.nusers, &a.user, err, sizeof err) != 0) {
    ty_cli_ls_args_close(&a);
    return ty__ctl_usage("ls", err);
  }
  if (a.help || a.help_format) {
    ty_buf b;
    ty_buf_init(&b);
    if (a.help)
      ty_buf_printf(&b, "%s", ty__usage_ls);
    else
      ty_buf_printf(&b, "Fields of trainctl ls --format and --sort:\n");
    if (a.help_format) ty_cli_describe_fields(ty_cli_ls_fields, ty_cli_n_ls_fields, &b);
    int code = ty__ctl_write(&b);
    ty_buf_close(&b);
    ty_cli_ls_args_close(&a);
    return code;
  }
  ty_buf out;
  ty_buf_init(&out);
  ty_cli_jobinfo *js = NULL;
  size_t n = 0;
  /* A table in id order folds pending array elements: the controller does,
   * so the answer holds one entry per array instead of one per element. */
  a.fold =
      !a.array && !a.json && !c->g.json && a.sort.keys.n == 0 && !a.njobs && !a.nnames && !a.nnodes;
  bool cut = false;
  int code = list_jobs(c, &a, false, &js, &n, &cut);
  if (code == 0)
    cut |= ty_cli_ls_select(js, &n, &a); /* -u U,U, -p Q,Q, -w: here, not in the request */
  if (code == 0 && cut)
    ty__ctl_err(a.limit ? "ls: more jobs matched; the newest %" PRIu32 " are shown"
                        : "ls: more jobs matched; the newest are shown (the newest %" PRIu32
                          " ended ones at most: --limit N, --since, --state narrow or widen it)",
                a.limit ? a.limit : TY_CLI_LS_ENDED_DEFAULT);
  /* squeue -j of jobs it no longer holds fails, and scripts wait on that:
   * while squeue -j $id >/dev/null 2>&1; do sleep 30; done. Its jobs are
   * the live ones here (or every one with --all); a --state of the user's
   * is a filter, which may leave nothing, as squeue -t's. */
  if (code == 0 && a.njobs && n == 0 && (a.all || a.live_default)) {
    ty__ctl_err(a.all ? "ls -j: no such job"
                      : "ls -j: none of these jobs is pending or running (an ended one: ls --all "
                        "-j, or history -j)");
    code = TY_CLI_EXIT_NOTFOUND;
  }
  int64_t now = now_ms();
  if (code == 0 && ty_cli_sort_jobs(js, n, &a.sort, now) != 0) code = TY_CLI_EXIT_ERROR;
  ty_cli_table_opts o = {.noheader = a.noheader, .max_width = ty__ctl_term_width()};
  int rc = 0;
  if (code == 0 && (a.json || c->g.json))
    rc = ty_cli_render_jobs(js, n, now, true, false, &out);
  else if (code == 0 && a.squeue_format)
    rc = ty_cli_render_jobs_squeue(js, n, now, !a.array, a.squeue_format, a.noheader, &out);
  else if (code == 0)
    rc = ty_cli_render_jobs_table(js, n, now, !a.array, &a.format, &o, &out);
  if (code == 0) code = rc == 0 ? ty__ctl_write(&out) : TY_CLI_EXIT_ERROR;
  ty_cli_jobinfos_free(js, n);
  ty_buf_close(&out);
  ty_cli_ls_args_close(&a);
  return code;
}

/* scontrol show job -o ARRAYID: a line per element of the array, ended
 * ones too, in id order, as scontrol prints each of its tasks (the
 * array's id is its first element's, which GetJob answers alone). */
static int show_array_oneliners(ty__ctl *c, uint64_t array_id, ty_buf *out) {
  ty_job_ref ref = {array_id, false, 0};
  ty_cli_ls_args ls = {
      .all = true, .array = true, .jobs = &ref, .njobs = 1, .limit = TY_ARRAY_MAX_TASKS};
  ty_cli_jobinfo *js = NULL;
  size_t n = 0;
  bool cut = false;
  int code = list_jobs(c, &ls, false, &js, &n, &cut);
  if (code == 0 && cut)
    ty__ctl_err("show -o: array %" PRIu64 " has more elements than one listing holds; the "
                "newest are shown",
                array_id);
  int64_t now = now_ms();
  for (size_t i = 0; code == 0 && i < n; i++)
    if (ty_cli_render_job_slurm(&js[i], now, out) != 0) code = TY_CLI_EXIT_ERROR;
  ty_cli_jobinfos_free(js, n);
  return code;
}

int ty__cmd_show(ty__ctl *c, int argc, char **argv) {
  ty_cli_show_args a;
  char err[TY_ERR_LEN] = "";
  if (ty_cli_parse_show(argc, argv, &a, err, sizeof err) != 0) return ty__ctl_usage("show", err);
  if (a.help) {
    fputs(ty__usage_show, stdout);
    return 0;
  }
  ty_buf req, out;
  ty_buf_init(&req), ty_buf_init(&out);
  ty_rpc_result res = {0};
  ty_cli_jobinfo job = {0};
  ty_cli_event *ev = NULL;
  size_t nev = 0;
  bool json = a.json || c->g.json;
  int code = ty__cli_encode_get_job(&(ty_job_ref){a.id, a.has_task, a.task}, !json, &req) == 0
                 ? 0
                 : TY_CLI_EXIT_ERROR;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_JOB, TY_M_GET_JOB, &req, &res);
  if (code == 0 && ty_cli_decode_get_job(res.payload, res.payload_len, &job, &ev, &nev) != 0)
    code = ty__ctl_bad_answer(TY_M_GET_JOB);
  bool whole_array = a.oneliner && !a.has_task && job.array_job_id == a.id;
  if (code == 0 && whole_array) code = show_array_oneliners(c, a.id, &out);
  if (code == 0 && whole_array)
    code = ty__ctl_write(&out);
  else if (code == 0 && a.oneliner && ty_cli_render_job_slurm(&job, now_ms(), &out) == 0)
    code = ty__ctl_write(&out);
  else if (code == 0 && !a.oneliner &&
           ty_cli_render_job(&job, ev, nev, now_ms(), a.json || c->g.json, &out) == 0)
    code = ty__ctl_write(&out);
  if (code == 0 && !(a.json || c->g.json) && !a.oneliner)
    ty__cmd_show_graph(res.payload, res.payload_len);
  ty_cli_events_free(ev, nev);
  ty_cli_jobinfo_close(&job);
  ty_rpc_result_close(&res);
  ty_buf_close(&out), ty_buf_close(&req);
  return code;
}

/* The live (pending, running) jobs of the users of a's filters, array
 * elements one by one: what an array's id would cancel; *cut when the
 * controller left some out. */
static int live_jobs(ty__ctl *c, const ty_cli_cancel_args *a, ty_cli_jobinfo **js, size_t *n,
                     bool *cut) {
  ty_cli_ls_args ls = {.user = a->user,
                       .users = a->users,
                       .nusers = a->nusers,
                       .array = true,
                       .states = {TY_JOB_PENDING, TY_JOB_RUNNING},
                       .nstates = 2};
  int code = list_jobs(c, &ls, true, js, n, cut);
  if (code == 0) ty_cli_ls_select(*js, n, &ls); /* -u U,U */
  return code;
}

static bool has_array_element(const ty_cli_jobinfo *js, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (js[i].array_job_id) return true;
  return false;
}

/* cancel's filters: the live jobs matching them, from one ListJobs, into
 * a->refs: an array whose live elements all match as one ref (its id),
 * the elements of another one by one, as 123_7 (ty_cli_cancel_refs).
 * A listing the controller cut (more jobs than one answer holds; ListJobs
 * has no cursor) is refused: cancelling part of the matching jobs would
 * pass for cancelling them all. */
static int refs_from_filters(ty__ctl *c, ty_cli_cancel_args *a) {
  ty_cli_ls_args ls = {.user = a->user,
                       .users = a->users,
                       .nusers = a->nusers,
                       .queue = a->queue,
                       .queues = a->queues,
                       .nqueues = a->nqueues,
                       .names = a->name ? &a->name : NULL,
                       .nnames = a->name ? 1 : 0,
                       .array = true,
                       .nodes = a->nodes,
                       .nnodes = a->nnodes};
  memcpy(ls.states, a->states, sizeof ls.states);
  ls.nstates = a->nstates;
  ty_cli_jobinfo *js = NULL, *live = NULL;
  size_t n = 0, nlive = 0;
  bool cut = false, live_cut = false;
  int code = list_jobs(c, &ls, true, &js, &n, &cut);
  if (code == 0 && cut) {
    ty__ctl_err("cancel: more jobs match these filters than one listing holds (the controller "
                "cut it); nothing was cancelled: narrow them (--name, --state, --queue, --user, "
                "-w) or cancel by id");
    code = TY_CLI_EXIT_ERROR;
  }
  if (code == 0) ty_cli_ls_select(js, &n, &ls); /* -u U,U, -p Q,Q, -w: here */
  if (code == 0 && has_array_element(js, n)) code = live_jobs(c, a, &live, &nlive, &live_cut);
  if (code == 0) {
    a->refs = ty_xcalloc(n ? n : 1, sizeof *a->refs);
    a->nrefs = ty_cli_cancel_refs(js, n, a->name, live, nlive, live_cut, a->refs);
  }
  ty_cli_jobinfos_free(live, nlive);
  ty_cli_jobinfos_free(js, n);
  return code;
}

/* One CancelJob per TY_PROTO_MAX_CANCEL_REFS refs (the most one request
 * may hold), their results appended to *rs in the order given. */
static int cancel_refs(ty__ctl *c, const ty_job_ref *refs, size_t nrefs, ty_cancel_result **rs,
                       size_t *n) {
  int code = 0;
  for (size_t at = 0; code == 0 && at < nrefs; at += TY_PROTO_MAX_CANCEL_REFS) {
    size_t k = nrefs - at < TY_PROTO_MAX_CANCEL_REFS ? nrefs - at : TY_PROTO_MAX_CANCEL_REFS;
    ty_buf req;
    ty_buf_init(&req);
    ty_rpc_result res = {0};
    ty_cancel_result *part = NULL;
    size_t np = 0;
    code = ty_cli_encode_cancel(refs + at, k, &req) == 0 ? 0 : TY_CLI_EXIT_ERROR;
    /* Safe to repeat: a second copy cancels nothing more. */
    if (code == 0) code = ty__ctl_call_retrying(c, TY_CLI_OP_JOB, TY_M_CANCEL_JOB, &req, &res);
    if (code == 0 && ty_cli_decode_cancel(res.payload, res.payload_len, &part, &np) != 0)
      code = ty__ctl_bad_answer(TY_M_CANCEL_JOB);
    if (code == 0 && np) {
      *rs = ty_xrealloc(*rs, (*n + np) * sizeof **rs);
      memcpy(*rs + *n, part, np * sizeof *part);
      *n += np;
    }
    free(part);
    ty_rpc_result_close(&res);
    ty_buf_close(&req);
  }
  return code;
}

/* cancel --signal: one UpdateJob "signal" per id, a line for each. */
static int signal_jobs(ty__ctl *c, const ty_cli_cancel_args *a) {
  int worst = 0;
  for (size_t i = 0; i < a->nrefs; i++) {
    char name[48];
    ty_job_ref_format(&a->refs[i], name, sizeof name);
    ty_buf req;
    ty_buf_init(&req);
    ty_rpc_result res = {0};
    int code = ty_cli_encode_signal(&a->refs[i], (int32_t)a->signal, a->batch_only, &req) == 0
                   ? ty__ctl_call(c, TY_CLI_OP_JOB, TY_M_UPDATE_JOB, &req, &res)
                   : TY_CLI_EXIT_ERROR;
    if (code == 0) printf("Signalled job %s with signal %u\n", name, a->signal);
    ty_rpc_result_close(&res);
    ty_buf_close(&req);
    if (code == TY_CLI_EXIT_UNREACHABLE) return code;
    worst = code == TY_CLI_EXIT_NOTFOUND || worst == TY_CLI_EXIT_NOTFOUND ? TY_CLI_EXIT_NOTFOUND
            : code                                                        ? code
                                                                          : worst;
  }
  return worst;
}

int ty__cmd_cancel(ty__ctl *c, int argc, char **argv) {
  ty_cli_cancel_args a;
  char err[TY_ERR_LEN] = "";
  if (ty_cli_parse_cancel(argc, argv, &a, err, sizeof err) != 0 ||
      ty_cli_resolve_users("--user", a.users, &a.nusers, &a.user, err, sizeof err) != 0) {
    ty_cli_cancel_args_close(&a);
    return ty__ctl_usage("cancel", err);
  }
  if (a.help) {
    fputs(ty__usage_cancel, stdout);
    ty_cli_cancel_args_close(&a);
    return 0;
  }
  if (a.filtered) {
    int code = refs_from_filters(c, &a);
    if (code == 0 && a.nrefs == 0) fprintf(stderr, "trainctl: cancel: no live job matches\n");
    if (code != 0 || a.nrefs == 0) {
      ty_cli_cancel_args_close(&a);
      return code;
    }
  }
  if (a.signal) {
    int code = signal_jobs(c, &a);
    ty_cli_cancel_args_close(&a);
    return code;
  }
  ty_buf out, errs;
  ty_buf_init(&out), ty_buf_init(&errs);
  ty_cancel_result *rs = NULL;
  size_t n = 0;
  int code = cancel_refs(c, a.refs, a.nrefs, &rs, &n);
  /* One line per id, in the order given: each on its stream as it comes,
   * so a terminal shows them in that order. */
  bool json = a.json || c->g.json;
  for (size_t i = 0; code == 0 && i < (json ? 1 : n); i++) {
    out.len = errs.len = 0;
    if (ty_cli_render_cancel(rs + i, json ? n : 1, json, &out, &errs) != 0) break;
    code = ty__ctl_write(&out);
    if (errs.len) fwrite(errs.data, 1, errs.len, stderr), fflush(stderr);
  }
  if (code == 0) code = ty_cli_cancel_exit(rs, n);
  free(rs);
  ty_buf_close(&errs), ty_buf_close(&out);
  ty_cli_cancel_args_close(&a);
  return code;
}
