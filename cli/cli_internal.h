/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli internals: the option style every trainctl subcommand and rlaunch
 * parse with (ty_opts of lib/base: getopt_long, exact long names, messages
 * that name the option), the number parsers whose errors name the option,
 * and the trainctl executable's own parts (its subcommands and the one
 * place that talks to the controller).
 */
#ifndef TY_CLI_CLI_INTERNAL_H
#define TY_CLI_CLI_INTERNAL_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "cli/cli.h"

/* Ids of long options without a short alias start here, above every letter
 * a short alias returns. */
#define TY__CLI_OPT_FIRST 256
/* Called for every option (id, its value or NULL) and every positional
 * argument (id TY_OPT_POSITIONAL) of a command line: 0 to go on,
 * TY__CLI_STOP to end the parse there, or an error code with err set. */
#define TY__CLI_STOP 1
/* The option table of commands whose only option is -h/--help. */
extern const struct option ty__cli_help_only[];
typedef int (*ty__cli_arg_fn)(ty_opts *it, int id, const char *v, void *ud, char *err,
                              size_t err_len);
/* Parses args (no program name) with ty_opts, handing each item to `on`;
 * 0, or the first error (usage errors are TY_EINVAL with err naming the
 * option). */
int ty__cli_parse(int argc, char **argv, const char *shortopts, const struct option *opts,
                  ty__cli_arg_fn on, void *ud, char *err, size_t err_len);

/* Slurm's options (opts_slurm.c), for trainctl submit (sbatch's) and
 * rlaunch (srun's): translated into the job, ignored with a warning, or
 * refused, each of the last two saying why. An entry's option id is its
 * short letter, or TY__SLURM_ID0 + its index. */
#define TY__SLURM_ID0 (TY__CLI_OPT_FIRST + 128)
#define TY__SLURM_NOT_MINE 1 /* ty__slurm_arg: another option (errors are negative) */
enum { TY__SLURM_SBATCH = 1, TY__SLURM_SRUN = 2 };                  /* tools */
enum { TY__SLURM_VALUE = 1, TY__SLURM_IGNORED, TY__SLURM_REFUSED }; /* kinds */
typedef struct ty__slurm_opt {
  const char *name;
  int has_arg;    /* getopt's no_argument, required_argument, optional_argument */
  char letter;    /* the short alias, or 0 */
  unsigned tools; /* TY__SLURM_SBATCH | TY__SLURM_SRUN: which takes it */
  int kind;
  const char *why; /* an ignored or refused option's reason */
} ty__slurm_opt;
extern const ty__slurm_opt ty__slurm_opts[];
extern const size_t ty__slurm_n;
int ty__slurm_id(size_t i);
/* base's options (up to its NULL entry), then the table's for `tool`, into
 * out (cap entries, NULL-ended); how many. */
size_t ty__slurm_options(const struct option *base, unsigned tool, struct option *out, size_t cap);
/* Option `id` of `tool` with value v (NULL: none), into j and s (a -D path
 * is made absolute against cwd): 0, TY_EINVAL naming the option and why,
 * or TY__SLURM_NOT_MINE when id is not one of the table's. */
int ty__slurm_arg(ty_job_spec *j, ty_cli_slurm *s, unsigned tool, int id, const char *v,
                  const char *cwd, char *err, size_t err_len);
void ty__slurm_warn(ty_cli_slurm *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Submit's task layout options, as submit parses them, for submit and job
 * update: name is "ntasks-per-node", "cpus" (-c/--cpus-per-task), "gpus",
 * "gpus-per-node" or "gres" (gpu[:TYPE]:N; a TYPE is warned about in s
 * unless s is NULL), the value into j; 0 or TY_EINVAL naming the option. */
int ty__cli_layout_arg(ty_job_spec *j, ty_cli_slurm *s, const char *name, const char *v, char *err,
                       size_t err_len);
/* A per-node amount given after a per-task, per-CPU or per-GPU one replaces
 * it (the command line's come after a script's): --mem, --gpus. */
void ty__slurm_per_node(ty_cli_slurm *s, bool mem, bool gpus);
/* --mem, --mem-per-cpu and --mem-per-gpu (name) exclude each other within
 * one source (the command line, a script's directives, sbatch's input
 * variables), as Slurm's; across sources the later wins (s->mem_given is
 * reset between them). TY_EINVAL naming both. */
int ty__slurm_mem_option(ty_cli_slurm *s, const char *name, char *err, size_t err_len);
/* -N N or MIN-MAX (the minimum, with a warning when they differ). */
int ty__slurm_nodes(ty_job_spec *j, ty_cli_slurm *s, const char *v, uint32_t max, char *err,
                    size_t err_len);
/* --export's value as sbatch and srun split it: a NAME=VALUE whose value
 * may hold commas, or a comma list of ALL, NONE, NAME and NAME=VALUE (a
 * comma before the first '=', as in A,B=1, or no '=' at all); each
 * item to `item` in order, stopping at its first non-zero answer. */
int ty__slurm_export_items(const char *v, int (*item)(const char *it, void *ud), void *ud);
/* s's per-task, per-CPU and per-GPU amounts into j's per-node ones, once
 * the whole command line (and a script's directives) is read; --mincpus
 * raises j's CPUs per task (warned in s). */
int ty__slurm_resolve(ty_job_spec *j, ty_cli_slurm *s, char *err, size_t err_len);
/* --begin's value at `now`: now, now+N[s|m|h|d|w] (seconds by default;
 * minutes, hours, days, weeks spelled out too), HH:MM[:SS] (the next such
 * time), YYYY-MM-DD[THH:MM[:SS]] (local time), into *out_ms (epoch ms; 0
 * for now). TY_EINVAL naming --begin otherwise. */
int ty__slurm_begin(const char *v, time_t now, int64_t *out_ms, char *err, size_t err_len);

/* --state's "running,PD": states (TY_JOB_STATE_MAX at most) appended to
 * states[*nstates], duplicates dropped; errors name --state. */
int ty__cli_add_states(int *states, size_t *nstates, const char *v, char *err, size_t err_len);

/* Number parsing that names the option in its error messages. */
/* -n N (srun's and sbatch's): N ranks in all, the same number on each of
 * j's nodes (j->tasks_per_node), at most max_per_node; 0 leaves j alone.
 * Without -N (j->nodes 0) an explicit --ntasks-per-node Q makes N/Q nodes,
 * as Slurm derives them. An error names both options when N does not
 * divide or disagrees with an explicit --ntasks-per-node. */
int ty__cli_spread_ntasks(ty_job_spec *j, uint32_t ntasks, uint32_t max_per_node, char *err,
                          size_t err_len);
int ty__cli_parse_u32(const char *what, const char *s, uint32_t min, uint32_t max, uint32_t *out,
                      char *err, size_t err_len);
int ty__cli_parse_i32(const char *what, const char *s, int32_t *out, char *err, size_t err_len);
/* A memory amount as sbatch and srun take it: a bare number is MEGABYTES
 * (--mem=4000 is 4000M), or with a unit K, M, G or T (binary; 512M, 16G,
 * 1.5G is not taken); 0 only where allow_zero (--mem=0: no limit). Bytes
 * into *out; TY_EINVAL naming `what` otherwise. */
int ty__cli_parse_mem(const char *what, const char *s, bool allow_zero, uint64_t *out, char *err,
                      size_t err_len);
/* A job's --mem as submitted (Resources.mem_per_node): --mem=0 is all of
 * the node, TY_MEM_ALL, which traind makes the queue's max_mem or no limit. */
int ty__cli_parse_job_mem(const char *s, uint64_t *out, char *err, size_t err_len);
/* squeue's and sacct's --name "train,eval": each name added to *names
 * (copies, grown as needed); TY_EINVAL naming `what` when v names none. */
int ty__cli_add_names(const char *what, const char *v, char ***names, size_t *n, char *err,
                      size_t err_len);
/* A hostlist ("w[1-3],gpu7", squeue -w, scancel -w, sacct -N) into *names;
 * TY_EINVAL naming `what` when it is not one. */
int ty__cli_node_list(const char *what, const char *v, char ***names, size_t *n, char *err,
                      size_t err_len);
/* Replaces *field with a copy of v; TY_EINVAL naming `what` when v is empty. */
int ty__cli_set_text(const char *what, char **field, const char *v, char *err, size_t err_len);
/* A job's -p/--partition: one queue; sbatch's list of partitions (a,b:
 * the first that starts it) is refused naming it, not taken for a queue
 * named "a,b". */
int ty__cli_set_queue(char **field, const char *v, char *err, size_t err_len);
/* A job priority: an integer in TY_JOB_PRIORITY_MIN..MAX. */
int ty__cli_parse_priority(const char *what, const char *s, int32_t *out, char *err,
                           size_t err_len);

/* ==== trainctl: main.c, client.c, cmd_*.c ====================================================
 * Internals of the `trainctl` executable (not of the ty_cli library): the
 * per-invocation context, the subcommands, and the one place that talks to
 * the controller and turns its answers into messages and exit codes.
 *
 * Each subcommand takes the arguments after its name and returns the
 * process's exit code; it prints its own output and errors.
 */

/* One invocation of trainctl. Owned by main(); no globals. */
typedef struct ty__ctl {
  ty_cli_global g;
  const char *user;    /* ty__ctl_user's answer once asked, else NULL */
  char user_buf[256];  /* where ty__ctl_user keeps it (LOGIN_NAME_MAX) */
  const char *cwd;     /* the caller's working directory, or NULL */
  ty_rpc_sync *client; /* opened on first use, closed by main */
  int argc;            /* main's command line, for a helper run in its place */
  char **argv;
  ty_cli_signer signer; /* each request's MUNGE credential */
} ty__ctl;

/* The caller's login name, or the uid as text, looked up (NSS: nsswitch.conf,
 * passwd) on first use, so that only the commands that send it pay for it. */
const char *ty__ctl_user(ty__ctl *c);

typedef struct ty__ctl_cmd {
  const char *name;
  int (*run)(ty__ctl *c, int argc, char **argv);
  const char *summary; /* one line for `trainctl --help` */
  const char *usage;   /* `trainctl CMD --help` */
  /* The rest of it, NULL-ended, or NULL (a literal is at most 4,095 bytes). */
  const char *const *usage_more;
} ty__ctl_cmd;

int ty__cmd_submit(ty__ctl *c, int argc, char **argv);
int ty__cmd_ls(ty__ctl *c, int argc, char **argv);
int ty__cmd_show(ty__ctl *c, int argc, char **argv);
int ty__cmd_cancel(ty__ctl *c, int argc, char **argv);
/* cmd_logs.c and cmd_attach.c run in trainyard-stream (stream_main.c);
 * trainctl's entry for both is ty__cmd_stream (helper_exec.c), which runs
 * trainyard-stream in its place with main's command line. */
int ty__cmd_logs(ty__ctl *c, int argc, char **argv);
int ty__cmd_stream(ty__ctl *c, int argc, char **argv);
int ty__cmd_nodes(ty__ctl *c, int argc, char **argv);
/* cmd_attach.c: reattach to an interactive job (rlaunch) */
int ty__cmd_attach(ty__ctl *c, int argc, char **argv);
extern const char ty__usage_attach[];
/* The scheduler's commands (cmd_queue.c, cmd_node.c, cmd_job_admin.c). */
int ty__cmd_queue(ty__ctl *c, int argc, char **argv);
int ty__cmd_node(ty__ctl *c, int argc, char **argv);
int ty__cmd_job(ty__ctl *c, int argc, char **argv);
int ty__cmd_why(ty__ctl *c, int argc, char **argv);
int ty__cmd_share(ty__ctl *c, int argc, char **argv);
/* Accounting (cmd_history.c): trainctl history, trainctl node show. */
int ty__cmd_history(ty__ctl *c, int argc, char **argv);
int ty__cmd_node_show(ty__ctl *c, int argc, char **argv);
extern const char ty__usage_history[];
/* The web console's per-user tokens (cmd_web_token.c). */
int ty__cmd_web_token(ty__ctl *c, int argc, char **argv);
extern const char ty__usage_web_token[];
int ty__cmd_reconfigure(ty__ctl *c, int argc, char **argv);
extern const char ty__usage_reconfigure[];
int ty__cmd_events(ty__ctl *c, int argc, char **argv);
extern const char ty__usage_events[];
/* Columns of the terminal stdout is, or 0 when it is not one (no clipping). */
size_t ty__ctl_term_width(void);
extern const char ty__usage_queue[], ty__usage_node[], ty__usage_job[], ty__usage_why[],
    ty__usage_share[];

/* Graph jobs (cmd_watch.c): watch, checkpoint ls, and show's progress block
 * from a GetJobResponse payload. */
int ty__cmd_watch(ty__ctl *c, int argc, char **argv);
int ty__cmd_top(ty__ctl *c, int argc, char **argv); /* cmd_top.c */
extern const char ty__usage_top[];
int ty__cmd_checkpoint(ty__ctl *c, int argc, char **argv);
void ty__cmd_show_graph(const uint8_t *payload, size_t len);
extern const char ty__usage_watch[], ty__usage_checkpoint[];

extern const char *const ty__usage_submit_more[];
extern const char ty__usage_submit[], ty__usage_ls[], ty__usage_show[], ty__usage_cancel[],
    ty__usage_logs[], ty__usage_nodes[];

/* Calls `method` on the controller (connecting on first use). Returns the
 * exit code: 0 with *out holding the answer (the caller closes it), or
 * non-zero after printing why (unreachable, timed out, the controller's
 * message) with *out already closed. */
int ty__ctl_call(ty__ctl *c, ty_cli_op op, const char *method, const ty_buf *req,
                 ty_rpc_result *out);
/* The same for a request that is safe to repeat (SubmitJob with a request
 * id; CancelJob; an UpdateJob that sets a value): a lost connection is retried with backoff until
 * --timeout in all (ty_cli_call_retrying); stderr says so once (again when the error changes) and
 * the attempts made when the time is spent. */
int ty__ctl_call_retrying(ty__ctl *c, ty_cli_op op, const char *method, const ty_buf *req,
                          ty_rpc_result *out);
/* The same for a request that is safe to repeat while following something
 * (GetJob, ListJobs, ListNodes): when the controller is lost (the
 * connection breaks or cannot be opened, the call times out, or it says it
 * is shutting down: a restart) it reconnects with ty_cli_backoff and sends
 * again, for at most window_ms (0 = until it is back), saying so on stderr
 * once per outage. */
int ty__ctl_call_reconnecting(ty__ctl *c, ty_cli_op op, const char *method, const ty_buf *req,
                              uint32_t window_ms, ty_rpc_result *out);
/* A streaming request (WatchJob): on_item gets each item; a non-zero return
 * stops the stream and is returned. A lost controller is reconnected to and
 * the request sent again as ty__ctl_call_reconnecting's (window_ms counts
 * from each loss), so the request must be one that starts from the current
 * state. Otherwise as ty__ctl_call: 0 when it ended with status 0, else the
 * exit code with the reason on stderr. */
int ty__ctl_stream(ty__ctl *c, ty_cli_op op, const char *method, const ty_buf *req,
                   int (*on_item)(const uint8_t *p, size_t n, void *ud), void *ud,
                   uint32_t window_ms, ty_rpc_result *out);
/* One GetTaskLocations (with task tokens when want_tokens): 0 with *out
 * filled (the caller closes it), or the exit code after saying why. */
int ty__ctl_locate(ty__ctl *c, uint64_t job_id, bool want_tokens, ty_task_locations *out);
/* The job id a reference names: its own, or for an array element (42_7)
 * the element's, asked of the controller (GetJob). 0 or an exit code after
 * printing why (no such element). */
int ty__ctl_job_id(ty__ctl *c, const ty_job_ref *ref, uint64_t *out);
/* The first word of a command group (queue, node, job, checkpoint): -1 with
 * *out_sub set to go on, or the exit code after printing `usage` (on
 * stdout for -h/--help, exit 0; on stderr when the word is missing, exit
 * 2) or a usage error. */
int ty__ctl_group(const char *group, const char *usage, int argc, char **argv,
                  const char **out_sub);
/* Prints "trainctl: <fmt>" on stderr. */
void ty__ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a usage error ("trainctl: MSG" and a hint) and returns 2. */
int ty__ctl_usage(const char *cmd, const char *err);
/* Writes b to stdout and flushes; returns 0 or 1 (write error reported). */
int ty__ctl_write(const ty_buf *b);
/* A reply that did not decode as the expected message: reports it, returns 1. */
int ty__ctl_bad_answer(const char *method);

/* ==== graph jobs: cmd_watch.c, convert_graph.c ===============================================
 * Graph-job views (issue 6). `trainctl watch ID` polls GetJob once a
 * second and draws a progress bar on a terminal (one line rewritten in
 * place: step of total, loss, samples/s, ETA, test accuracy), plain lines
 * when stdout is not a terminal; it ends with the job and exits 0 when the
 * job COMPLETED, 1 otherwise. `trainctl checkpoint ls ID` lists the
 * checkpoints the job reported. `trainctl show ID` adds a progress block.
 */

/* What GetJob says about a job's training. Strings owned. */
typedef struct ty__cli_graph {
  int state; /* ty_job_state */
  char *reason, *name;
  int64_t start_ms;
  int term_signal; /* JobInfo's: the signal that ended it, 0 if none */
  bool graph, has_progress;
  bool redacted;      /* another user's job: checkpoint paths "" (print "(withheld)") */
  bool plan_withheld; /* it has a plan the caller may not see */
  ty_train_progress progress;
  ty_checkpoint_info *ckpts;
  size_t n_ckpts;
  uint8_t *plan; /* the plan file when asked for (GetJob with_plan); NULL: none */
  size_t plan_len;
} ty__cli_graph;

int ty__cli_decode_graph(const uint8_t *p, size_t n, ty__cli_graph *out);
void ty__cli_graph_close(ty__cli_graph *g);
/* GetJobRequest, asking for the plan or not. */
int ty__cli_encode_get_job(const ty_job_ref *ref, bool with_plan, ty_buf *out);

/* ==== plans: cmd_plan.c, convert_graph.c =====================================================
 * `trainctl plan JOB.pb`: the plan the controller makes for a graph job
 * (PlanJob), or, with --mesh, the one this process makes with ops/plan for
 * that mesh; printed as text or as ops/plan's JSON. `trainctl show` prints
 * a job's plan in short (ty__cli_render_plan). */

/* A loaded job file (a SubmitJobRequest, ty_cli_load_job_file) -> spec. */
int ty__cli_decode_submit(const uint8_t *p, size_t n, ty_job_spec *out);
int ty__cli_encode_plan_job(const ty_job_spec *spec, ty_buf *out);
/* PlanJobResponse: the plan file (malloc'd) and whether it was cached. */
int ty__cli_decode_plan_job(const uint8_t *p, size_t n, uint8_t **out_plan, size_t *out_len,
                            bool *out_cached);
int ty__cmd_plan(ty__ctl *c, int argc, char **argv);
extern const char ty__usage_plan[];
/* plan --mesh: trainyard-plan's planning (plan_local.c); in trainctl, the
 * exec of trainyard-plan beside it (helper_exec.c). argv as for plan. */
int ty__cmd_plan_local(ty__ctl *c, int argc, char **argv);
/* The job file as a graph job spec (with --parallelism applied): 0, or the
 * exit code after saying why. */
int ty__cli_plan_load_job(ty__ctl *c, const ty_cli_plan_args *a, ty_job_spec *out);
/* Prints a plan as text (or --json), "planned here" or "by the controller". */
int ty__cli_print_plan(const ty_cli_plan_args *a, const ty_job_spec *s, const struct ty_plan *p,
                       bool cached);
/* Appends show's "Plan:" block for a plan file (a line saying why when it
 * does not decode). */
void ty__cli_render_plan(const uint8_t *plan, size_t len, ty_buf *out);

/* Renders one status line (no newline) into out: with cols > 0 a progress
 * bar first and the line fitting cols - 1 columns (ty_cli_render_job_progress). */
void ty__cli_render_progress(const ty__cli_graph *g, int cols, ty_buf *out);
/* Appends the "Plan:" and "Progress:" blocks of `trainctl show` (nothing
 * for non-graph jobs, no plan for data-parallel ones, no progress before
 * the first report). */
void ty__cli_render_show(const ty__cli_graph *g, ty_buf *out);

#endif
