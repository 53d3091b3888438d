/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli: the testable core of `trainctl` and `rlaunch` (the ty_cli library) —
 * argument parsing into plain structs,
 * the protobuf conversions (cli/convert.c is the only file that sees generated
 * types), the JSON writer and the table/JSON output layer, and the mapping
 * from answers to exit codes. None of it opens a socket: the subcommands in
 * cli/cmd_*.c do the RPCs and use these pieces, so every rule a user can trip
 * over (a bad option, a garbage job file, an escaped string) is unit-tested
 * without a controller. rlaunch's own parts are in cli/rlaunch.h, the named
 * output fields and accounting in cli/cli_history.h, the scheduler commands
 * in cli/cli_admin.h (each includes this header).
 *
 * Ownership: every struct below that holds heap strings has a `_close`
 * function that frees them and accepts a zeroed struct; parsed structs own
 * copies of what they need, never pointers into argv.
 *
 * Errors: parse functions return 0 or a negative TY_E* code and, on error,
 * write a one-line message naming the bad option or field into the caller's
 * `err` (TY_ERR_LEN bytes; without the "trainctl: " prefix, which main adds).
 */
#ifndef TY_CLI_CLI_H
#define TY_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/auth/auth.h"
#include "lib/base/base.h"
#include "lib/json/json.h"
#include "lib/rpc/rpc.h"
#include "lib/wire/wire.h"
#include "ops/plan/plan.h" /* TY_PLAN_CLUSTER_OPTIONS only: no code of ops/ */

/* ---- exit codes (docs/cluster-protocol.md, "trainctl exit codes") ---------- */
enum {
  TY_CLI_EXIT_OK = 0,
  TY_CLI_EXIT_ERROR = 1,       /* an error reported by the controller (or a worker) */
  TY_CLI_EXIT_USAGE = 2,       /* bad command line */
  TY_CLI_EXIT_UNREACHABLE = 3, /* the controller could not be reached or did not answer */
  TY_CLI_EXIT_NOTFOUND = 4,    /* unknown job id */
  TY_CLI_EXIT_INVALID = 5,     /* invalid job spec (refused, or a job file that does not decode) */
};

/* What kind of request an answer belongs to; the same status means different
 * things to different requests (TY_ENOTFOUND is an unknown job for `show` but
 * an unknown queue, hence an invalid spec, for `submit`). */
typedef enum {
  TY_CLI_OP_SUBMIT,
  TY_CLI_OP_JOB,   /* a request naming job ids: show, logs, cancel */
  TY_CLI_OP_OTHER, /* ls, nodes */
} ty_cli_op;

/* Exit code for an answer's status (0 -> 0). */
int ty_cli_exit_for_status(ty_cli_op op, int status);
/* Exit code for a transport error of the blocking client (connection refused,
 * timed out, closed before the answer): always TY_CLI_EXIT_UNREACHABLE. */
int ty_cli_exit_for_transport(int rc);

/* States, the job spec, task locations and cancel results are the wire
 * model's (lib/wire/wire.h): ty_job_state_name(), ty_job_state_parse(),
 * ty_node_state_name(), ty_job_spec, ty_task_locations, ty_cancel_result. */

/* ---- command lines ------------------------------------------------------------ */

/* Global options, before the subcommand. */
typedef struct ty_cli_global {
  char *host; /* owned */
  int port;
  char *controller;    /* owned, "HOST:PORT" as given, for messages */
  char *socket;        /* owned, --socket PATH|none, or NULL (cli/socket.h) */
  uint32_t timeout_ms; /* per connect and per call; default 10 s */
  bool timeout_given;  /* --timeout was on the command line */
  bool json;
  bool help, version;
  int cmd_index; /* argv index of the subcommand; argc when absent */
} ty_cli_global;
/* Parses argv[1..] up to the subcommand. The controller is --controller,
 * else `env_controller` (TRAINYARD_CONTROLLER), else 127.0.0.1 at port
 * `env_port` (TRAINYARD_PORT, as deploy/cluster.sh reads it), else
 * 127.0.0.1:7810; either variable NULL or "" when unset, and read only when
 * it decides (a bad one is an error naming it). An address without a port
 * means port 7810. On error nothing is left to free (true of every
 * ty_cli_parse_*). */
int ty_cli_parse_global(int argc, char **argv, const char *env_controller, const char *env_port,
                        ty_cli_global *out, char *err, size_t err_len);
void ty_cli_global_close(ty_cli_global *g);
/* The controller on this host when no address is given (trainctl's and
 * rlaunch's default): "127.0.0.1:$TRAINYARD_PORT" (`env_port`), or
 * "127.0.0.1:7810" when it is NULL or ""; into out (at least
 * TY_CLI_LOCAL_CONTROLLER_LEN bytes). TY_EINVAL naming TRAINYARD_PORT for
 * a value that is not a port. */
#define TY_CLI_LOCAL_CONTROLLER_LEN 32
int ty_cli_local_controller(const char *env_port, char *out, size_t out_len, char *err,
                            size_t err_len);

/* Splits "HOST:PORT", "[v6]:PORT" or "HOST" (port = default_port). `what`
 * names the option or variable in the error message. *out_host is owned. */
int ty_cli_parse_addr(const char *what, const char *s, int default_port, char **out_host,
                      int *out_port, char *err, size_t err_len);

/* Whether YEAR-MON-DAY is a day of the calendar (not 31 February), and
 * H:MI:SEC a time of day (not 25:00); when not, false with why saying what
 * is wrong ("February 2027 has 28 days", "minute 99 is not 0-59"). */
bool ty_cli_date_exists(int year, int mon, int day, char *why, size_t why_len);
bool ty_cli_clock_exists(int h, int mi, int sec, char *why, size_t why_len);
/* True when s is shaped as a time of day, H:MM or H:MM:SS: digits, ':',
 * digits, perhaps ':' and digits, nothing else, whether or not it exists. */
bool ty_cli_clock_shaped(const char *s);

/* A signal by number (1-64) or name, with or without SIG (USR1, SIGTERM). */
int ty_cli_parse_signal_name(const char *what, const char *s, uint32_t *out, char *err,
                             size_t err_len);
/* Parses --signal's "[{B|R}:]SIG[@SECONDS]" into j's warning (as
 * Slurm's --signal): SIG is a number (1-64) or a name with or without
 * "SIG" (USR1, SIGUSR2, TERM, ...); SECONDS (> 0, or a duration such as
 * 5m; default 60) is how long before the time limit the signal goes to
 * the tasks; B: sends it to the batch script's process alone
 * (warn_batch_only), R: (a reservation's end) changes nothing: there are
 * none. `what` names the option in errors. */
int ty_cli_parse_signal(const char *what, const char *s, ty_job_spec *j, char *err, size_t err_len);

/* Parses "42" into a job id (> 0). */
int ty_cli_parse_job_id(const char *s, uint64_t *out_id, char *err, size_t err_len);

/* `submit FILE`, `submit [options] SCRIPT [ARGS...]` (a batch script: FILE
 * starting with "#!", cli/script.h), `submit --command [options] -- CMD
 * ARGS...` or `submit --model M.onnx --config C.pb [options]` (a graph
 * job). Arguments start after the subcommand name. For a command, a script
 * or a graph job, job.cwd defaults to `cwd` and job.user to `user` (both may
 * be NULL); a graph job's model path is made absolute against `cwd` (the
 * workers open it by that path) and its name defaults to the model file's,
 * less ".onnx"; a script's job runs it with /bin/sh (job.argv) and is named
 * after it. */
/* What Slurm's options (sbatch's and srun's, cli/opts_slurm.c) add to a
 * job while its command line is read: per-task, per-CPU and per-GPU
 * amounts (0 = not given), made per node once it is all read, and the
 * warnings for options accepted but ignored. */
typedef struct ty_cli_slurm {
  uint32_t gpus_per_task;
  uint32_t gpus_total; /* a script's #SBATCH --gpus: the job's, as sbatch counts them */
  uint64_t mem_per_cpu, mem_per_gpu;
  uint32_t min_cpus;     /* --mincpus: CPUs each node must have allocated; 0 = not given */
  const char *mem_given; /* "--mem", "--mem-per-cpu" or "--mem-per-gpu" of this source */
  char open_mode;        /* --open-mode: 'a'ppend, 't'runcate, 0 = not given */
  bool test_only;        /* sbatch --test-only: estimate the start, submit nothing */
  /* --propagate: the ty_limit resources (bit 1 << l) whose soft limits the
   * job does NOT carry; 0 = all of them (ALL, the default) */
  unsigned no_propagate;
  char **warnings; /* owned; "--account=x ignored: why" */
  size_t n_warnings;
} ty_cli_slurm;
void ty_cli_slurm_close(ty_cli_slurm *s);

typedef struct ty_cli_submit_args {
  bool command_mode, graph_mode, quiet, json, help;
  bool wait;                     /* --wait: until the job ends, exiting with its exit code */
  bool export_given, export_all; /* some --export; --export=ALL among them */
  char *file;                    /* owned; job file path (file mode) */
  char *script;                  /* owned; a batch script's path (script mode) */
  char *wrap;                    /* owned; --wrap's command string (a script made of it) */
  char *output;                  /* owned; a script's --output pattern, or NULL */
  char *error;                   /* owned; a script's --error pattern, or NULL */
  char *config_file;             /* owned; graph mode: the encoded TrainConfig's path */
  ty_job_spec job;               /* command, script and graph mode */
  uint32_t ntasks;               /* -n: ranks in all, spread evenly over the nodes; 0 = not given */
  ty_cli_slurm slurm;            /* sbatch's options' part */
} ty_cli_submit_args;
int ty_cli_parse_submit(int argc, char **argv, const char *cwd, const char *user,
                        ty_cli_submit_args *out, char *err, size_t err_len);
void ty_cli_submit_args_close(ty_cli_submit_args *a);
/* Lets ty_cli_parse_submit read the script from standard input when none
 * is named (a pipe or a file: `trainctl submit <<EOF`, as sbatch reads
 * one); off by default, so that a parse never blocks on a caller's stdin.
 * `trainctl submit` turns it on. */
void ty_cli_submit_stdin_script(bool on);
/* The path a script from standard input is read from (and named by). */
#define TY_CLI_STDIN_SCRIPT "/dev/stdin"

/* Reads a binary trainyard.TrainConfig (graph mode's --config) into
 * job->train_config after checking that it decodes: TY_EIO (unreadable),
 * TY_ETOOBIG, or TY_EPROTO (empty, not a TrainConfig; text format gets the
 * protoc command that encodes it), with the path in err. */
int ty_cli_load_train_config(const char *path, ty_job_spec *job, char *err, size_t err_len);

/* `plan JOB.pb [--json] [--parallelism M] [--mesh NxD [cost model]]`, or
 * `plan --model M.onnx --config C.pb [--nodes N] [--ntasks-per-node T]
 * [--gpus G] [--mem M] ...` for the job `submit --model` would send (the
 * resource options only with --model; --mem, the controller's device
 * memory, not with --mesh). Values are borrowed from argv and checked by
 * their users (ops/plan's parser, submit's for the --model job), except
 * --parallelism. Rates need --mesh; rates[i] is the value
 * of ops/plan's option i (TY_PLAN_CLUSTER_OPTIONS: --device-flops, ...). */
typedef struct ty_cli_plan_args {
  const char *file;
  const char *model, *config;        /* the job as submit --model builds it */
  const char *nodes, *ntasks, *gpus; /* its resources (submit's options) */
  const char *mem;                   /* submit's --mem: memory per node */
  const char *queue;                 /* submit's -p: its default and maximum memory */
  bool json, help;
  const char *mesh;                             /* NULL: ask the controller */
  int parallelism;                              /* ty_parallelism, -1: the job's */
  const char *rates[TY_PLAN_N_CLUSTER_OPTIONS]; /* NULL: ops/plan's default */
} ty_cli_plan_args;
/* The option name of rates[i] ("device-flops", ...). */
const char *ty_cli_plan_rate_key(int i);
int ty_cli_parse_plan(int argc, char **argv, ty_cli_plan_args *out, char *err, size_t err_len);

/* One field a listing can show: its --format name and its column. */
typedef struct ty_cli_field {
  const char *name;   /* lower case, as --format takes it */
  const char *header; /* the column's header */
  bool right;         /* numbers: right-aligned, never clipped */
  const char *help;   /* one line for --help-format */
} ty_cli_field;
#define TY_CLI_MAX_FIELDS 32
/* Chosen fields, as indices into a command's field table. */
typedef struct ty_cli_format {
  uint8_t idx[TY_CLI_MAX_FIELDS];
  size_t n;
} ty_cli_format;
/* --sort's keys ("-priority,id": a '-' sorts that key descending). */
typedef struct ty_cli_sort {
  ty_cli_format keys;
  bool desc[TY_CLI_MAX_FIELDS];
} ty_cli_sort;

typedef struct ty_cli_ls_args {
  int states[TY_JOB_STATE_MAX]; /* wanted states; nstates 0 = all (with --all) */
  size_t nstates;
  bool live_default;  /* no --state, no --all: the states are squeue's PENDING, RUNNING */
  char *user, *queue; /* owned; NULL = any (user: the one of users, queue: of queues, when one) */
  char **users;       /* owned: -u/--user U,U (squeue's list; several picked here) */
  size_t nusers;
  char **queues; /* owned: -p/--queue Q,Q (squeue's list; several picked here); none = any */
  size_t nqueues;
  bool all, json, help;
  bool array; /* -r, --array: one line per array element (no folding) */
  bool noheader, help_format;
  int64_t since_ms;     /* --since: jobs submitted, started or ended since; 0 = any */
  ty_cli_format format; /* --format (ls's fields, cli/ls.c); default its columns */
  char *squeue_format;  /* owned: a -o of squeue's codes ("%i|%t"), printed line by line as
                         * squeue prints it (text between kept, widths applied); NULL = a table */
  ty_cli_sort sort;     /* --sort; no keys = by id */
  bool fold;            /* asks the controller to fold pending array elements (fold_arrays):
                         * ls sets it for a table in id order, where it would fold them itself */
  ty_job_ref *jobs;     /* owned: -j/--jobs (squeue's), jobs or array elements; none = any */
  size_t njobs;
  char **names; /* owned: --name (squeue's), job names; none = any */
  size_t nnames;
  char **nodes; /* owned: -w/--nodelist (squeue's), jobs on any of them; none = any */
  size_t nnodes;
  uint32_t limit; /* --limit N: the newest N jobs; 0 = no limit */
} ty_cli_ls_args;
/* ls's bound on ended jobs without --limit: the newest this many (the
 * controller's ListJobsRequest.ended_limit), as history's default. */
#define TY_CLI_LS_ENDED_DEFAULT 1000u
/* Default (no --state, no --all): PENDING and RUNNING, like squeue. */
int ty_cli_parse_ls(int argc, char **argv, ty_cli_ls_args *out, char *err, size_t err_len);
void ty_cli_ls_args_close(ty_cli_ls_args *a);

typedef struct ty_cli_show_args {
  uint64_t id;
  bool has_task; /* "ID_TASK": element `task` of array `id` */
  uint32_t task;
  bool json, help;
  bool oneliner; /* show -o: scontrol show job -o's Key=Value line */
} ty_cli_show_args;
int ty_cli_parse_show(int argc, char **argv, ty_cli_show_args *out, char *err, size_t err_len);
/* The same for another command of that shape (why, checkpoint ls): its
 * errors name cmd. */
int ty_cli_parse_one_job(const char *cmd, int argc, char **argv, ty_cli_show_args *out, char *err,
                         size_t err_len);

typedef struct ty_cli_logs_args {
  ty_job_ref ref; /* a job, or an array element (42_7) */
  bool follow, help;
  int64_t rank; /* -1 = every rank */
} ty_cli_logs_args;
int ty_cli_parse_logs(int argc, char **argv, ty_cli_logs_args *out, char *err, size_t err_len);

typedef struct ty_cli_cancel_args {
  ty_job_ref *refs; /* owned: jobs, arrays, elements ("123_[1-5]" expanded) */
  size_t nrefs;
  bool json, help;
  /* Filters instead of ids (scancel's -u, -n, -t, -p): the live jobs that
   * match all of them; states default to pending and running. */
  bool filtered;
  char *user, *name, *queue; /* owned; NULL = any (user, queue: the one of their lists, when one) */
  char **users;              /* owned: -u/--user U,U; none = any */
  size_t nusers;
  char **queues; /* owned: -p/--queue Q,Q (scancel's list): jobs in any of them; none = any */
  size_t nqueues;
  char **nodes; /* owned: scancel's -w/--nodelist, jobs on any of them */
  size_t nnodes;
  int states[TY_JOB_STATE_MAX];
  size_t nstates;
  uint32_t signal; /* scancel's --signal: send it instead of cancelling; 0 = cancel */
  bool batch_only; /* scancel's -b/--batch: the signal to each task's batch script alone */
} ty_cli_cancel_args;
int ty_cli_parse_cancel(int argc, char **argv, ty_cli_cancel_args *out, char *err, size_t err_len);
/* -u/--user's users (ls, cancel, history), as sacct and squeue take them:
 * a numeric uid becomes its user's name; a name or uid this host does not
 * know is TY_EINVAL naming it and `what`; a user named twice is kept
 * once (*n the users kept). Then *user is the name when
 * there is one user (the controller filters by it), else NULL (several:
 * the command picks them). Nothing to do when n is 0. */
int ty_cli_resolve_users(const char *what, char **users, size_t *n, char **user, char *err,
                         size_t err_len);
void ty_cli_cancel_args_close(ty_cli_cancel_args *a);

typedef struct ty_cli_nodes_args {
  bool json, help;
  bool noheader, per_node; /* sinfo's -h and -N */
  char *format;            /* owned: sinfo's -o ("%N %T"); NULL = the table */
  unsigned states;         /* sinfo's -t (ty_cli_sinfo_states); 0 = any */
  bool reasons;            /* sinfo's -R/--list-reasons */
} ty_cli_nodes_args;
/* sinfo's options too: -h/--noheader, -o/--format, -t/--states, -N. */
int ty_cli_parse_nodes(int argc, char **argv, ty_cli_nodes_args *out, char *err, size_t err_len);
void ty_cli_nodes_args_close(ty_cli_nodes_args *a);
/* The same for another command of only --json and --help (share): its
 * errors name cmd. */
int ty_cli_parse_json_only(const char *cmd, int argc, char **argv, ty_cli_nodes_args *out,
                           char *err, size_t err_len);

/* ---- what the controller answers, as plain structs ------------------------- */
typedef struct ty_cli_jobinfo {
  uint64_t id;
  ty_job_spec spec;
  int state;
  char *reason; /* owned, "" when none */
  int32_t exit_code, term_signal;
  int64_t submit_ms, start_ms, end_ms; /* 0 = not yet */
  char **nodes;                        /* owned */
  size_t nnodes;
  uint32_t requeue_count;
  uint32_t ranks_ending; /* ended, but this many ranks still end (COMPLETING) */
  int64_t last_ckpt_ms;  /* the last checkpoint the job reported, 0 = none */
  bool held;             /* an operator holds it */
  double priority;       /* the scheduler's multifactor priority while pending */
  uint64_t array_job_id; /* the array it is an element of, 0 = none */
  uint32_t array_task_id;
  char *array_folded;  /* owned: with ls's fold, the pending elements' tasks this one
                        * stands for ("5-999"); "" = itself only */
  char *dependency;    /* owned: the conditions not yet met, "" = none */
  ty_task_usage usage; /* accounting: the ranks' cgroups (see usage_measured) */
  bool usage_measured; /* false: some rank's CPU time is its CPUs held x wall clock */
  bool redacted;       /* command, env and graph payload withheld: not the caller's job */
  bool abridged;       /* a listing's: argv, env and graph payload left out (show has them) */
  bool plan_withheld;  /* GetJob's: it has a plan the caller may not see (false in listings) */
} ty_cli_jobinfo;
void ty_cli_jobinfo_close(ty_cli_jobinfo *j);
void ty_cli_jobinfos_free(ty_cli_jobinfo *js, size_t n); /* closes each, frees the array */

typedef struct ty_cli_event {
  int64_t time_ms;
  int from, to;
  char *reason; /* owned */
} ty_cli_event;
void ty_cli_events_free(ty_cli_event *ev, size_t n);

typedef struct ty_cli_node {
  char *name, *io_addr, *reason, *topology; /* owned */
  char *version;                            /* owned: the worker's build, "" from an older worker */
  char *switch_name; /* owned: its switch group (switch.* in traind's config), "" = none */
  int state;
  uint32_t cpus, cpus_used, gpus, gpus_used, running_tasks;
  uint64_t memory;
  int64_t last_heartbeat_ms;
} ty_cli_node;
void ty_cli_nodes_free(ty_cli_node *ns, size_t n);
/* Frees one node's strings (not nd itself) and zeroes it. */
void ty_cli_node_close(ty_cli_node *nd);

/* ---- screens redrawn in place (cli/format_top.c) ------------------------------ */

/* `trainctl watch`'s line: with cols > 0, a progress bar and as many of
 * step, loss, samples/s, ETA, test accuracy and checkpoint (dropped from the
 * end of that order of importance: step, loss, ETA, samples/s, ...) as fit
 * in cols - 1 columns; cols <= 0: every field, no bar. start_ms: when the
 * job (last) started, for the ETA (this run's rate: its steps since
 * p->start_step); 0: no ETA. No newline. */
void ty_cli_render_progress_line(const ty_train_progress *p, int64_t start_ms, int cols,
                                 ty_buf *out);

/* A graph job's progress as `trainctl show` and `watch` print it. */
typedef struct ty_cli_job_progress {
  int state;                         /* ty_job_state */
  int64_t start_ms;                  /* when it (last) started; 0: never */
  int term_signal;                   /* the signal that ended it (JobInfo's), 0 if none */
  const ty_train_progress *progress; /* the last one reported; NULL: none */
} ty_cli_job_progress;

/* One status line (no newline): the progress line (an ETA only while
 * RUNNING), or why there is none; a job killed at the end of its kill
 * grace (SIGKILL after SIGTERM: it did not stop in time) says that it
 * saved no stop checkpoint. cols as ty_cli_render_progress_line. */
void ty_cli_render_job_progress(const ty_cli_job_progress *j, int cols, ty_buf *out);

/* What `trainctl top` shows; everything borrowed. progress[i] is job i's
 * last training progress, or NULL (a command job, no report yet); progress
 * itself may be NULL. */
typedef struct ty_cli_top {
  int64_t now_ms;
  const ty_cli_node *nodes;
  size_t n_nodes;
  const ty_cli_jobinfo *jobs; /* pending and running */
  size_t n_jobs;
  const ty_train_progress *const *progress;
} ty_cli_top;
/* A summary (nodes by state, CPUs and GPUs used, jobs running, pending
 * counts by the scheduler's wait reason), the nodes, the running jobs with
 * their progress. Every line fits cols - 1 columns and the whole fits `rows`
 * lines ("... N more" where not); cols or rows <= 0: no limit. */
int ty_cli_render_top(const ty_cli_top *t, int cols, int rows, ty_buf *out);

/* ---- retry-safe submits (cli/retry.c) ------------------------------------------ */

/* A SubmitJob request id: 32 random hex digits (getrandom). 0 or TY_EIO. */
#define TY_CLI_REQUEST_ID_LEN 32
int ty_cli_request_id(char out[TY_CLI_REQUEST_ID_LEN + 1]);
/* The wait between reconnects: 100 ms doubling to 2 s, each with up to half
 * of it as jitter (clients that lost one controller together do not return
 * together), within a window from ty_cli_backoff_start (0 = no limit). */
typedef struct ty_cli_backoff {
  int64_t deadline_ms; /* ty_mono_ms(); 0 = none */
  uint32_t delay_ms;   /* the next wait's base */
  ty_rng rng;
} ty_cli_backoff;
void ty_cli_backoff_start(ty_cli_backoff *b, uint32_t window_ms);
/* The next wait in ms, or 0 when it would end past the window. */
uint32_t ty_cli_backoff_next(ty_cli_backoff *b);
/* Sleeps `ms`, through signals. */
void ty_cli_sleep_ms(uint32_t ms);
/* Told before each retry: the attempt that failed (1 = the first), its error
 * and the wait before the next. */
typedef void (*ty_cli_retry_cb)(int attempt, int rc, uint32_t delay_ms, void *ud);
struct ty_cli_signer;
/* Sends a request that is safe to repeat (a SubmitJob with a request id)
 * until an answer arrives or `timeout_ms` in all has passed: when the
 * connection cannot be opened, breaks before the answer or the call times
 * out, or the answer is TY_ECLOSED (the controller is shutting down), it
 * reconnects *client (opened here when NULL, with ty_cli_open and
 * `signer`; the caller closes it) after an exponential backoff and sends
 * again, each copy with a credential of its own (munged refuses one it has
 * seen). Returns 0 with the answer in *out (whose status may be an error),
 * or the last transport error (*out then holds it like
 * ty_rpc_sync_call's). */
int ty_cli_call_retrying(ty_rpc_sync **client, const char *host, int port,
                         struct ty_cli_signer *signer, const char *method, const ty_buf *req,
                         uint32_t timeout_ms, ty_rpc_result *out, ty_cli_retry_cb on_retry,
                         void *ud);

/* ---- protobuf conversions (cli/convert.c) ------------------------------------
 * Encoders append a request message to `out` (initialised by the caller).
 * Decoders return TY_EPROTO when the payload does not decode, TY_ENOMEM when
 * copying it ran out of memory; the arrays they return are owned by the
 * caller and freed with the matching _free (free() for cancel results). */
/* SubmitJob requests carry `request_id` (ty_cli_request_id; NULL = none). */
int ty_cli_encode_submit(const ty_job_spec *job, const char *request_id, ty_buf *out);
/* Wraps an encoded trainyard.Job (a job file) into a SubmitJobRequest, filling
 * `user` when the file leaves it empty. A graph job's relative model path
 * and config data directory are made absolute from this process's working
 * directory, as `submit --model --config` makes them. TY_EPROTO when it is
 * not a Job. */
int ty_cli_encode_submit_raw(const uint8_t *job, size_t len, const char *user,
                             const char *request_id, ty_buf *out);
/* Reads a job file and does the above; err names the file:
 * `FILE: not a valid trainyard.Job message (protobuf decode failed)`. */
int ty_cli_load_job_file(const char *path, const char *user, const char *request_id, ty_buf *out,
                         char *err, size_t err_len);
/* Whether an encoded SubmitJobRequest holds a graph job (its answer waits
 * for the controller's model check and plan). */
bool ty_cli_submit_is_graph(const uint8_t *req, size_t len);
int ty_cli_encode_list_jobs(const ty_cli_ls_args *a, ty_buf *out);
int ty_cli_encode_job_id(uint64_t id, ty_buf *out); /* GetJob, ExplainJob */
/* ExplainJob (and GetJob) of a job or an array element ("123_7"). */
int ty_cli_encode_job_ref(const ty_job_ref *r, ty_buf *out);
/* GetTaskLocations; want_tokens asks for task tokens (logs, attach), which
 * traind gives only to the job's owner and operators. */
int ty_cli_encode_locations(uint64_t job_id, bool want_tokens, ty_buf *out);
/* Jobs, arrays (every element still pending or running) and elements. */
int ty_cli_encode_cancel(const ty_job_ref *refs, size_t n, ty_buf *out);
int ty_cli_encode_read_log(uint64_t id, uint32_t rank, uint64_t offset, bool follow, ty_buf *out);

/* The job's id, or an array's with its element count in *out_tasks (0 for
 * a job that is no array; out_tasks may be NULL). */
int ty_cli_decode_submit(const uint8_t *p, size_t n, uint64_t *out_id, uint32_t *out_tasks);
/* Makes an encoded SubmitJobRequest test-only (sbatch --test-only) by
 * appending the field: protobuf merges a field that comes later. */
int ty_cli_submit_mark_test_only(ty_buf *req);
/* A test-only submit's answer: when the job would start, on which nodes
 * (known when it would start now), with how many CPUs, in which queue. */
typedef struct ty_cli_submit_test {
  int64_t est_start_ms;   /* 0 = unknown */
  int est_kind;           /* TY_CLI_EST_* */
  bool est_lower_bound;   /* "not before": jobs ahead may start first */
  char *est_note, *queue; /* owned */
  char **nodes;           /* owned, n_nodes of them */
  size_t n_nodes;
  uint32_t cpus;
} ty_cli_submit_test;
/* TY_EPROTO also for an answer that is not a test-only one. */
int ty_cli_decode_submit_test(const uint8_t *p, size_t n, ty_cli_submit_test *out);
void ty_cli_submit_test_close(ty_cli_submit_test *t);
/* sbatch --test-only's line, "trainctl: Job would start at TIME using N
 * CPUs on nodes LIST in queue Q" (or why there is no estimate), or JSON. */
int ty_cli_render_submit_test(const ty_cli_submit_test *t, bool json, ty_buf *out);
/* *truncated (may be NULL): the controller's answer was cut (a limit, the
 * history cap, the largest frame): more jobs matched than it holds. */
int ty_cli_decode_list_jobs(const uint8_t *p, size_t n, ty_cli_jobinfo **out, size_t *out_n,
                            bool *truncated);
int ty_cli_decode_get_job(const uint8_t *p, size_t n, ty_cli_jobinfo *out_job,
                          ty_cli_event **out_events, size_t *out_nevents);
int ty_cli_decode_nodes(const uint8_t *p, size_t n, ty_cli_node **out, size_t *out_n);
/* The tasks come sorted by rank; the earlier runs' by run then rank, as
 * the controller sends them. */
int ty_cli_decode_locations(const uint8_t *p, size_t n, ty_task_locations *out);
int ty_cli_decode_cancel(const uint8_t *p, size_t n, ty_cancel_result **out, size_t *out_n);
/* A LogChunk: appends its data to `data` and sets rank and offset. */
int ty_cli_decode_log_chunk(const uint8_t *p, size_t n, uint32_t *out_rank, uint64_t *out_offset,
                            ty_buf *data);

/* The JSON writer (ty_json_*) lives in lib/json/json.h, included above. */

/* ---- tables (cli/table.c) -----------------------------------------------------
 * Columns are as wide as their widest cell (counted in UTF-8 code points),
 * separated by two spaces; the last column is not padded. Control characters
 * in cells are shown as '?' so a job name cannot break the layout. */
typedef struct ty_cli_table ty_cli_table;
/* `right` (may be NULL) marks right-aligned (numeric) columns. */
ty_cli_table *ty_cli_table_create(const char *const *headers, const bool *right, size_t ncols);
void ty_cli_table_destroy(ty_cli_table *t);
/* Adds one row of ncols cells (copied; NULL shows as ""). */
int ty_cli_table_add(ty_cli_table *t, const char *const *cells);
int ty_cli_table_render(const ty_cli_table *t, ty_buf *out);

/* ---- rendering (cli/format.c) --------------------------------------------------
 * `now_ms` is passed in so the output is a pure function of its inputs. */
/* "0:05", "12:34", "1:02:03", "3-04:05:06" (squeue's TIME). */
void ty_cli_format_elapsed(int64_t ms, char *out, size_t cap);
/* A span a person reads at a glance: "45s", "1m30s", "23h59m" (top's
 * ETA, rlaunch's pending countdown); s >= 0. */
void ty_cli_format_span(int64_t s, char *out, size_t cap);
/* Local time "2026-12-01T08:00:00" (sep 'T') or "2026-12-01 08:00:00"
 * (sep ' '); "-" for 0 (not yet). */
void ty_cli_format_time(int64_t ms, char sep, char *out, size_t cap);
/* "512", "64K", "1.5G" (powers of 1024). */
void ty_cli_format_size(uint64_t bytes, char *out, size_t cap);
/* User-chosen text (a name, a reason) appended as is, or as bash's $'...'
 * when it holds anything a terminal would act on (control bytes, bytes
 * that are not UTF-8): shown, never acted on. */
void ty_cli_shown(ty_buf *b, const char *s);
/* A job's run time so far (0 before it starts). */
int64_t ty_cli_job_elapsed(const ty_cli_jobinfo *j, int64_t now_ms);
/* Node names when placed, else how many nodes it asks for; NUL-terminated. */
void ty_cli_job_nodes(const ty_cli_jobinfo *j, ty_buf *b);
/* fold: an array's pending elements share one line ("123_[5-999]", like squeue). */
int ty_cli_render_jobs(const ty_cli_jobinfo *js, size_t n, int64_t now_ms, bool json, bool fold,
                       ty_buf *out);
/* scontrol show job -o's line: Slurm's Key=Value names (JobId, JobName,
 * UserId, JobState, Reason, ExitCode, RunTime, TimeLimit, Partition,
 * NodeList, NumNodes, NumCPUs, NumTasks, ...), one line, for scripts that
 * grep them. */
int ty_cli_render_job_slurm(const ty_cli_jobinfo *j, int64_t now_ms, ty_buf *out);
/* squeue's %T: the job's state, or COMPLETING while an ended job's ranks
 * still end (Slurm's CG: they hold their resources till then). */
const char *ty_cli_state_name(const ty_cli_jobinfo *j);
/* squeue's %r: a pending job's reason name (Dependency, Resources,
 * JobHeldUser, ...), "None" for any other job; one word, no spaces. */
const char *ty_cli_reason_name(const ty_cli_jobinfo *j, char *out, size_t cap);
int ty_cli_render_job(const ty_cli_jobinfo *j, const ty_cli_event *ev, size_t nev, int64_t now_ms,
                      bool json, ty_buf *out);
int ty_cli_render_nodes(const ty_cli_node *ns, size_t n, int64_t now_ms, bool json, ty_buf *out);
/* Successes go to `out` ("Cancelled job 5"), failures to `errs` (the
 * controller's message, "trainctl: "-prefixed); JSON puts both in `out`. */
int ty_cli_render_cancel(const ty_cancel_result *rs, size_t n, bool json, ty_buf *out,
                         ty_buf *errs);
/* Exit code of a cancel: 4 if any id was unknown, else 1 if any failed, else 0. */
int ty_cli_cancel_exit(const ty_cancel_result *rs, size_t n);
/* "Submitted batch job 42" (sbatch's line, an array's too), "42" (quiet) or
 * {"id":42}; an array (tasks > 0) in JSON: {"id":42,"array_tasks":1000}. */
int ty_cli_render_submitted(uint64_t id, uint32_t tasks, bool quiet, bool json, ty_buf *out);

/* ---- credentials (auth.c) -------------------------------------------------------------------
 * Every request to traind carries a MUNGE credential (lib/auth) from munged
 * at $TRAINYARD_MUNGE_SOCKET or munged's default socket. When munged cannot
 * be reached the request goes without one (a controller started with
 * --auth none accepts it) and `failure` keeps the reason. */
typedef struct ty_cli_signer {
  bool ready; /* ty_cli_signer_init ran */
  ty_auth *auth;
  char failure[TY_ERR_LEN]; /* why the last request had no credential, or "" */
} ty_cli_signer;
/* On a zeroed signer; again later, it does nothing. */
void ty_cli_signer_init(ty_cli_signer *s);
void ty_cli_signer_close(ty_cli_signer *s);
/* Opens a connection to traind whose every request carries a credential of
 * its own from `signer` (initialised here when it is not yet; NULL =
 * requests go unsigned). ty_cli_open's is the blocking client without
 * libuv (ty_rpc_sync_open; trainctl's commands); ty_cli_connect's (in
 * connect.c) the libuv one that rlaunch and the attach session drive
 * (ty_rpc_client_open). */
int ty_cli_open(const char *host, int port, uint32_t timeout_ms, ty_cli_signer *signer,
                ty_rpc_sync **out);
int ty_cli_connect(const char *host, int port, uint32_t timeout_ms, ty_cli_signer *signer,
                   ty_rpc_client **out);
/* A ty_rpc_signer (ud: the ty_cli_signer) for ty_rpc_sync_set_signer and
 * ty_rpc_client_set_signer. */
int ty_cli_sign(void *ud, const char *method, const void *payload, size_t len, ty_buf *out);
/* For a refused request (TY_EPERM) that went without a credential: why it
 * had none; NULL otherwise. */
const char *ty_cli_signer_hint(const ty_cli_signer *s, int status);

#endif
