/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl submit: a binary trainyard.Job file, a batch script with
 * #SBATCH lines (like sbatch; cli/script.c), a batch command built from
 * options (like sbatch --wrap / srun), or a graph job from a model and its
 * encoded training config. The job is acknowledged only once the
 * controller has committed it, so a printed id is a job that exists. The
 * request carries a fresh request id and is retried when the connection is
 * lost before the answer (cli/retry.c), so the job exists exactly once.
 * With --test-only (sbatch's) the controller checks the job as a submit
 * would and answers with its estimated start instead of creating it.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/rlaunch.h"
#include "proto/methods.h"

const char ty__usage_submit[] =
    "Usage: trainctl submit [--quiet] [--json] FILE\n"
    "       trainctl submit [OPTIONS] SCRIPT [ARGS...]\n"
    "       trainctl submit [OPTIONS] --wrap 'COMMAND STRING'\n"
    "       trainctl submit --command [OPTIONS] [--] CMD [ARGS...]\n"
    "       trainctl submit --model M.onnx --config C.pb [--parallelism MODE] [OPTIONS]\n"
    "\n"
    "FILE is a binary trainyard.Job message (proto/trainyard.proto); encode a text\n"
    "one with: protoc --encode=trainyard.Job --proto_path=proto proto/trainyard.proto\n"
    "An empty `user` is filled in with yours.\n"
    "\n"
    "With none of these, a script is read from standard input (a pipe or a file,\n"
    "as sbatch reads one: trainctl submit <<EOF), named \"sbatch\" unless -J says.\n"
    "A SCRIPT is a file whose first line starts with #! (a batch script, as sbatch\n"
    "takes): its #SBATCH or #TRAINYARD lines before the first command give options\n"
    "(those on the command line win); it runs with ARGS on every task of the job,\n"
    "from a copy made on the node (at most 65000 bytes). Besides the options below:\n"
    "  -o, --output PATTERN  the script's output to this file (relative to --cwd);\n"
    "                        %j job id, %x name, %A %a array job and task, %t rank,\n"
    "                        %N node, %u user, %% a %; default: kept by the worker\n"
    "                        (trainctl logs ID)\n"
    "  -e, --error PATTERN   its errors to this file (default: with the output)\n"
    "  --wrap STRING         the script is /bin/sh running STRING (like sbatch --wrap;\n"
    "                        named \"wrap\" unless --name says otherwise)\n"
    "\n"
    "A graph job trains the ONNX model M.onnx (a path every node can read: it is made\n"
    "absolute) with C.pb, a binary trainyard.TrainConfig (proto/train_config.proto;\n"
    "encode a text one with protoc --encode=trainyard.TrainConfig ...), one rank per\n"
    "task; the controller checks both before it answers:\n"
    "  --parallelism MODE    auto (the planner chooses, the default), data, tensor or grid\n";

/* The rest of submit's usage: one literal would pass the 4,095 bytes C99
 * promises to support. */
static const char usage_options[] =
    "\n"
    "Options for a SCRIPT, --command and --model (resources are per node unless said\n"
    "otherwise):\n"
    "  --nodes N             nodes (default 1)\n"
    "  --ntasks-per-node N   tasks (ranks) on each node (default 1)\n"
    "  --gpus N              GPUs per node (default 0)\n"
    "  --cpus N              CPUs per task (default 1)\n"
    "  --mem SIZE            memory per node: 16G, 512M, 4000 (MB); default none\n"
    "  --time LIMIT          as sbatch's: 60 (minutes), 1:30:00, 2-12 (days-hours), 2h\n"
    "  --signal SIG[@SECS]   send SIG (a name like USR1, TERM, SIGUSR2 or a number)\n"
    "                        to the tasks SECS (default 60) before the time limit,\n"
    "                        as Slurm's --signal; e.g. --signal USR1@120\n"
    "  --requeue-on-failure N  requeue the job up to N times (0-100, default 0) when\n"
    "                        a rank exits non-zero or dies of a signal; it resumes\n"
    "                        from its last checkpoint (not a rank killed at its\n"
    "                        memory limit: that job ends OUT_OF_MEMORY)\n"
    "  --queue Q             queue (default \"default\")\n"
    "  --priority P          priority within the queue, -1000..1000, higher first\n"
    "                        (default 0)\n"
    "  --name NAME           job name (default the command's or the model's name;\n"
    "                        one line, without '|': it separates parsable cells)\n"
    "  --cwd DIR             working directory on the nodes (default your current one)\n"
    "  --export NAME=VALUE   add to the tasks' environment (repeatable); NAME copies\n"
    "                        yours; ALL, NONE, A,B=1 as sbatch's (a SCRIPT: ALL if\n"
    "                        none given)\n"
    "  --array SPEC          a job array, one job per task index, like sbatch --array:\n"
    "                        0-999, 1,3,5-9, 0-99:2 (step), 0-999%10 (at most 10\n"
    "                        running at once); each element gets TRAINYARD_ARRAY_JOB_ID,\n"
    "                        TRAINYARD_ARRAY_TASK_ID and Slurm's SLURM_ARRAY_* variables\n"
    "  --dependency LIST     start only once LIST holds: afterok:ID[:ID...],\n"
    "                        afterany:ID, afternotok:ID, after:ID, singleton, joined\n"
    "                        by ',' (all) or '?' (any); ID may be an array (all its\n"
    "                        elements) or one element (123_7); at most 256 IDs in\n"
    "                        all; not sbatch's after:ID+MINUTES (use --begin now+Nm)\n"
    "                        (after:ID: once ID has begun its current run; a\n"
    "                        requeued ID pending again is waited for)\n"
    "  --kill-on-invalid-dep yes|no  cancel the job if its dependency can never be met\n"
    "                        (default: the controller's setting)\n"
    "  -H, --hold            submit it held: it waits until trainctl job release ID\n"
    "                        (an array: every element, until the array or it is released)\n"
    "  -b, --begin TIME      not before TIME: now+N[s|m|h|d|w] (seconds by default),\n"
    "                        HH:MM[:SS] (the next one), YYYY-MM-DD[THH:MM[:SS]] (local),\n"
    "                        midnight, noon, teatime (16:00), tomorrow, today (now)\n"
    "A graph job's submit waits up to 150 s (--timeout) for the model check.\n"
    "Output:\n"
    "  -q, --quiet           print only the job id (sbatch's --parsable too)\n"
    "  -W, --wait            then wait until the job ends (an array: every element)\n"
    "                        and exit with its exit code (the highest of an array's;\n"
    "                        1 if it ended by a signal or without a code: killed,\n"
    "                        cancelled, timed out, OUT_OF_MEMORY), as sbatch --wait;\n"
    "                        a controller restart is waited out (up to --timeout\n"
    "                        when given) and the wait goes on\n"
    "  --json                print {\"id\": N} ({\"id\": N, \"array_tasks\": T} for an array)\n";

/* sbatch's options, for scripts written for Slurm (cli/opts_sbatch.c). */
static const char usage_sbatch[] =
    "\n"
    "sbatch's spellings work too: -N N or MIN-MAX (the minimum is allocated),\n"
    "-n/--ntasks N (ranks in all, the same number on every node; with --ntasks-per-node Q\n"
    "and no -N, N/Q nodes), -c/--cpus-per-task, --mincpus N (each node's tasks get\n"
    "enough CPUs to make N), -G/--gpus-per-node, --gres=gpu[:TYPE]:N (per node; the type\n"
    "is not matched), --gpus-per-task, --mem=0 (all of the node), --mem-per-cpu,\n"
    "--mem-per-gpu, -p/--partition,\n"
    "-J/--job-name, -t, -a (--array), -d (--dependency), -D/--chdir, --nice[=N] (the\n"
    "priority -N, default 100), --signal=[B:]SIG@SECS, --open-mode=append|truncate,\n"
    "--exclusive (whole nodes: each of the job's nodes runs it alone, and it holds and\n"
    "is charged every CPU, GPU and byte of memory there; =user and =mcs mean the same),\n"
    "-w/--nodelist LIST (nodes it must all run on; -N is raised to their count),\n"
    "-x/--exclude LIST (nodes it never runs on): Slurm hostlists, w[1-4,7],n[01-10],\n"
    "r[1-2]n[1-3]; a -w value with a '/' (and --nodefile FILE) is a file of them.\n"
    "--no-requeue: never requeued (node loss ends it NODE_FAIL, preemption\n"
    "PREEMPTED, both final; job requeue is refused; not with --requeue-on-failure);\n"
    "--requeue: requeued on node loss and preemption (the default).\n"
    "--propagate[=ALL|NONE|LIST]: which of your soft limits the tasks get (AS, CORE,\n"
    "CPU, DATA, FSIZE, NOFILE, STACK; all by default, NONE: the worker's).\n"
    "--test-only: the controller checks the job as a submit would and prints when\n"
    "it would start (\"trainctl: Job would start at TIME using N CPUs on nodes LIST\n"
    "in queue Q\", on stderr), creating nothing (no id; not for a graph job).\n"
    "sbatch's SBATCH_* input variables (SBATCH_PARTITION, SBATCH_TIMELIMIT, ...) count\n"
    "over a script's #SBATCH lines and under the command line, as for sbatch.\n"
    "The script runs on every task; an `srun [OPTIONS] CMD` line in it runs CMD in\n"
    "that task (Slurm's job step): -n, -N and --ntasks-per-node pick the tasks that\n"
    "run it, placed as srun places a step (srun -N2 -n2 in a 2-node job: one task on\n"
    "each node; a step larger than the job is refused), -D/--chdir and --export=NAME=V\n"
    "apply, -l/--label starts each line with the step rank (\"0: \"), srun's other\n"
    "options are skipped saying so, an unknown one is refused (docs/slurm.md).\n"
    "An output file several\n"
    "tasks share (no %t in a job of more than one task) is appended to by each.\n"
    "sbatch options that change nothing here (--account, --qos, --mail-type,\n"
    "--hint, ...) are ignored with a warning saying why; those that cannot be\n"
    "honoured (--constraint, --reservation, --deadline, ...) are refused, naming why.\n";

const char *const ty__usage_submit_more[] = {usage_options, usage_sbatch, NULL};

/* A graph submit's default wait: traind's model check limit (120 s by
 * default) and some. */
#define GRAPH_SUBMIT_TIMEOUT_MS 150000u

static int build_request(ty_cli_submit_args *a, ty_buf *req) {
  char err[TY_ERR_LEN] = "", rid[TY_CLI_REQUEST_ID_LEN + 1];
  if (ty_cli_request_id(rid) != 0) {
    ty__ctl_err("cannot draw a random request id (getrandom failed)");
    return TY_CLI_EXIT_ERROR;
  }
  if (a->graph_mode) {
    int rc = ty_cli_load_train_config(a->config_file, &a->job, err, sizeof err);
    if (rc != 0) {
      ty__ctl_err("%s", err);
      return rc == TY_EPROTO ? TY_CLI_EXIT_INVALID : TY_CLI_EXIT_USAGE;
    }
  }
  int rc = 0;
  /* Here, not in the parser, which keeps to its arguments. */
  if (a->command_mode || a->script || a->wrap) {
    ty_rl_submit_host(&a->job);
    ty_rl_submit_process(&a->job, a->slurm.no_propagate);
  }
  if (a->command_mode || a->graph_mode || a->script || a->wrap) {
    if (ty_cli_encode_submit(&a->job, rid, req) == 0 &&
        (!a->slurm.test_only || ty_cli_submit_mark_test_only(req) == 0))
      return 0;
    ty__ctl_err("out of memory");
    return TY_CLI_EXIT_ERROR;
  }
  rc = ty_cli_load_job_file(a->file, NULL, rid, req, err, sizeof err);
  if (rc == 0 && a->slurm.test_only) rc = ty_cli_submit_mark_test_only(req);
  if (rc == TY_ENOMEM) {
    ty__ctl_err("out of memory");
    return TY_CLI_EXIT_ERROR;
  }
  if (rc == 0) return 0;
  ty__ctl_err("%s", err);
  return rc == TY_EPROTO ? TY_CLI_EXIT_INVALID : TY_CLI_EXIT_USAGE;
}

/* --test-only's answer: sbatch writes its line to stderr (nothing was
 * submitted, so standard output, where an id would go, stays empty);
 * --json goes to standard output. */
static int test_only_answer(ty__ctl *c, const ty_cli_submit_args *a, const ty_rpc_result *res) {
  ty_cli_submit_test t;
  if (ty_cli_decode_submit_test(res->payload, res->payload_len, &t) != 0)
    return ty__ctl_bad_answer(TY_M_SUBMIT_JOB);
  ty_buf out;
  ty_buf_init(&out);
  bool json = a->json || c->g.json;
  int code = ty_cli_render_submit_test(&t, json, &out) == 0 ? 0 : TY_CLI_EXIT_ERROR;
  if (code == 0 && json) code = ty__ctl_write(&out);
  if (code == 0 && !json) fwrite(out.data, 1, out.len, stderr);
  ty_buf_close(&out);
  ty_cli_submit_test_close(&t);
  return code;
}

/* ---- --wait ------------------------------------------------------------------------------ */

/* How a watched job ended. */
typedef struct ended {
  int state;
  int32_t exit_code, term_signal;
  bool bad; /* an event that does not decode */
} ended;

static int on_event(const uint8_t *p, size_t n, void *ud) {
  ended *e = ud;
  ty_job_watch_event ev = {0};
  if (ty_rl_decode_watch_event(p, n, &ev) != 0) {
    e->bad = true;
    return TY_CLI_EXIT_ERROR;
  }
  e->state = ev.job.state, e->exit_code = ev.job.exit_code, e->term_signal = ev.job.term_signal;
  ty_job_watch_event_close(&ev);
  return 0;
}

/* sbatch --wait's exit code for one job: 0 when it COMPLETED, else its
 * exit code when it exited with one (a script's `exit 137` is 137), or 1:
 * ended by a signal (0:9; an OUT_OF_MEMORY job's 0:125 too), or without
 * either (cancelled, timed out, never ran). Slurm's sbatch --wait takes
 * WEXITSTATUS of an exited job and 1 for any other. */
static int job_exit(const ended *e) {
  if (e->state == TY_JOB_COMPLETED) return 0;
  if (e->term_signal > 0) return 1;
  return e->exit_code > 0 ? e->exit_code : 1;
}

/* Follows job `id` (an array's `tasks` elements, ids id.., in turn) with
 * WatchJob until it ends: the highest of their exit codes, or trainctl's
 * own when the controller could not say. A controller restarting under it
 * (an upgrade) is reconnected to and WatchJob sent again, which starts from
 * the job's state then: for as long as it takes, or --timeout when given. */
static int wait_for(ty__ctl *c, uint64_t id, uint32_t tasks) {
  uint32_t window_ms = c->g.timeout_given ? c->g.timeout_ms : 0;
  int worst = 0;
  for (uint32_t i = 0; i < (tasks ? tasks : 1); i++) {
    ty_buf req;
    ty_buf_init(&req);
    ended e = {.state = -1};
    ty_rpc_result res = {0};
    int code =
        ty_rl_encode_watch(id + i, false, &req) == 0
            ? ty__ctl_stream(c, TY_CLI_OP_JOB, TY_M_WATCH_JOB, &req, on_event, &e, window_ms, &res)
            : TY_CLI_EXIT_ERROR;
    ty_buf_close(&req);
    ty_rpc_result_close(&res);
    if (e.bad) return ty__ctl_bad_answer(TY_M_WATCH_JOB);
    if (code != 0) return code;
    int x = job_exit(&e);
    worst = x > worst ? x : worst;
  }
  return worst;
}

int ty__cmd_submit(ty__ctl *c, int argc, char **argv) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  /* No user name: the controller makes the job its caller's (the MUNGE
   * credential's uid, or its own user under --auth none) whatever the
   * request says, so looking it up (NSS) would be work for nothing. */
  ty_cli_submit_stdin_script(true); /* trainctl submit <<EOF, as sbatch */
  if (ty_cli_parse_submit(argc, argv, c->cwd, NULL, &a, err, sizeof err) != 0)
    return ty__ctl_usage("submit", err);
  if (a.slurm.test_only && a.wait) {
    ty_cli_submit_args_close(&a);
    return ty__ctl_usage("submit", "--wait: --test-only submits nothing to wait for");
  }
  for (size_t i = 0; i < a.slurm.n_warnings; i++)
    fprintf(stderr, "trainctl: warning: %s\n", a.slurm.warnings[i]);
  if (a.help) {
    fputs(ty__usage_submit, stdout);
    for (const char *const *m = ty__usage_submit_more; *m; m++)
      fputs(*m, stdout);
    ty_cli_submit_args_close(&a);
    return 0;
  }
  ty_buf req, out;
  ty_buf_init(&req), ty_buf_init(&out);
  ty_rpc_result res = {0};
  uint64_t id = 0;
  uint32_t tasks = 0;
  int code = build_request(&a, &req);
  if (code == 0 && !c->g.timeout_given && c->g.timeout_ms < GRAPH_SUBMIT_TIMEOUT_MS &&
      ty_cli_submit_is_graph(req.data, req.len))
    c->g.timeout_ms = GRAPH_SUBMIT_TIMEOUT_MS;
  if (code == 0) code = ty__ctl_call_retrying(c, TY_CLI_OP_SUBMIT, TY_M_SUBMIT_JOB, &req, &res);
  if (code == 0 && a.slurm.test_only)
    code = test_only_answer(c, &a, &res);
  else if (code == 0 && ty_cli_decode_submit(res.payload, res.payload_len, &id, &tasks) != 0)
    code = ty__ctl_bad_answer(TY_M_SUBMIT_JOB);
  else if (code == 0) {
    ty_cli_render_submitted(id, tasks, a.quiet, a.json || c->g.json, &out);
    code = ty__ctl_write(&out);
  }
  if (code == 0 && a.wait) {
    fflush(stdout); /* the id before the wait, for whoever reads it */
    code = wait_for(c, id, tasks);
  }
  ty_rpc_result_close(&res);
  ty_buf_close(&out), ty_buf_close(&req);
  ty_cli_submit_args_close(&a);
  return code;
}
