/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rlaunch's part of the ty_cli library (cli.h holds the rest): its command
 * line, exit codes, conversions, line framing, the attach session it shares
 * with `trainctl attach`, and --timing.
 */
#ifndef TY_CLI_RLAUNCH_H
#define TY_CLI_RLAUNCH_H

#include "cli/cli.h"

/* ==== rlaunch: rlaunch_args.c, rlaunch_convert.c, rlaunch_io.c ===============================
 * rlaunch: interactive remote execution, like srun. The testable parts: the
 * command line, the environment deny-list, the
 * protobuf conversions of interactive execution (rlaunch_convert.c, the only
 * rlaunch file that sees generated types), line framing for --label, and
 * the attach session that streams a job's I/O straight from its workers
 * (rlaunch_io.c, shared with `trainctl attach`).
 *
 * Ownership: structs holding heap memory have a _close that frees it and
 * accepts a zeroed struct. Parse errors go into the caller's `err`
 * (TY_ERR_LEN) naming the option, without the "rlaunch: " prefix.
 */

/* ---- exit codes (rlaunch --help) -------------------------------------------
 * 0-119 and 128-255 are the remote command's: the largest exit code over the
 * ranks, 128+N when a rank died of signal N. rlaunch's own failures use
 * 120-127, like timeout(1) and the shell's 126/127. */
enum {
  TY_RL_EXIT_UNREACHABLE = 120, /* the controller could not be reached, or was lost */
  TY_RL_EXIT_REFUSED = 121,     /* the controller refused the job (invalid, does not fit) */
  TY_RL_EXIT_NOT_STARTED = 122, /* the job ended without running: cancelled, launch failed */
  TY_RL_EXIT_IO = 123,          /* a worker was unreachable, refused the attach, or was lost */
  TY_RL_EXIT_TIMEOUT = 124,     /* a rank reached the time limit (--time) */
  TY_RL_EXIT_USAGE = 125,       /* bad command line */
  TY_RL_EXIT_NOEXEC = 126,      /* the command is not executable on the node */
  TY_RL_EXIT_NOCMD = 127,       /* the command was not found on the node */
};

/* ---- the command line ----------------------------------------------------- */

/* Where rlaunch's stdin goes: rank 0, every rank, or nowhere (srun's
 * --input=none: rlaunch reads /dev/null instead, so rank 0 sees EOF). */
typedef enum { TY_RL_STDIN_RANK0 = 0, TY_RL_STDIN_ALL = 1, TY_RL_STDIN_NONE = 2 } ty_rl_stdin;

typedef struct ty_rl_opts {
  ty_job_spec job; /* resources, name, queue, priority, time, argv, env, cwd, user */
  bool label, pty, detach, help, version;
  bool timing; /* --timing: where the launch's time went, on stderr at the end */
  ty_rl_stdin stdin_mode;
  uint32_t ntasks;    /* -n: ranks in all, spread evenly over the nodes; 0 = not given */
  ty_cli_slurm slurm; /* srun's options' part */
  /* --export: NAME=VALUE entries (owned) before the environment's, which
   * export_none (an --export without ALL) leaves out. */
  char **exports;
  size_t n_exports;
  bool export_none, export_all;
  bool gpu_short; /* -G was given: rlaunch's --gpu, per node, not srun's -G */
  char *cwd;      /* owned; the caller's, for -D DIR relative to it */
} ty_rl_opts;

/* Parses argv[1..]: options, then the command (after "--", or from the
 * first argument that is not an option). job.cwd = cwd, job.user = user,
 * job.env = `env` (NULL-terminated, e.g. environ) minus the deny-list.
 * Errors: TY_EINVAL with the option named in err. */
int ty_rl_parse(int argc, char **argv, const char *cwd, const char *user, char *const *env,
                ty_rl_opts *out, char *err, size_t err_len);
void ty_rl_opts_close(ty_rl_opts *o);
/* Whether rlaunch's short option letters take a value as srun's option
 * table says (none, required, or optional and joined only: -K1, -koff):
 * 0, or TY_EINVAL naming the first letter that does not. */
int ty_rl_check_shortopts(char *err, size_t err_len);
/* The --help text, exit codes included. */
extern const char *const ty_rl_usage[]; /* NULL-ended parts */

/* Whether a caller's "NAME=value" stays behind: variables that describe the
 * caller's terminal, display, login session or shell rather than the job
 * (HOSTNAME, DISPLAY, XAUTHORITY, SSH_*, PWD, OLDPWD, SHLVL, _, TMUX*, STY,
 * WINDOW, XDG_RUNTIME_DIR, XDG_SESSION_*, DBUS_SESSION_BUS_ADDRESS; TERM,
 * TERMCAP, COLUMNS and LINES unless `pty`), and the variables the worker
 * sets per rank (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
 * MASTER_ADDR, MASTER_PORT, CUDA_VISIBLE_DEVICES, TRAINYARD_JOB_ID,
 * TRAINYARD_NODE), and an array element's TRAINYARD_ARRAY_* and SLURM_ARRAY_*. */
bool ty_rl_env_denied(const char *entry, bool pty);
/* sbatch's and srun's SLURM_SUBMIT_HOST, the host this client runs on,
 * into j's environment unless its --export set one (submit and rlaunch
 * leave an inherited one out: it names the host of the job they may run
 * in). */
void ty_rl_submit_host(ty_job_spec *j);
/* A job sent from inside a batch script (script_dir: its
 * TRAINYARD_SCRIPT_DIR, NULL outside one) whose environment carries a
 * PATH gets TRAINYARD_SCRIPT_DIR too, unless it has one: that PATH holds
 * the script's directory, which goes when the outer task ends, and the
 * worker removes from PATH the entry the variable names (worker/env.c).
 * Under --export=ALL the variable comes with the rest; this sends it
 * where --export names PATH alone (--export=PATH, NONE,PATH=...). */
void ty_rl_script_dir(ty_job_spec *j, const char *script_dir);
/* sbatch's and srun's SLURM_UMASK and PropagateResourceLimits=ALL: this
 * process's umask (read and put back at once) and soft limits of
 * ty_limit's resources into j->process, which the worker sets in the task;
 * not the limits of `skip` (bit 1 << l: --propagate's no_propagate). */
void ty_rl_submit_process(ty_job_spec *j, unsigned skip);

/* A rank's contribution to the exit code: 128+N for signal N, else code. */
int ty_rl_rank_exit(int exit_code, int term_signal);

/* ---- conversions (rlaunch_convert.c) -----------------------------------------
 * Task locations are decoded by ty_cli_decode_locations (cli.h). */

/* SubmitJobRequest for an interactive job, answered by a watch stream of
 * JobWatchEvent with task tokens (and the controller's stage times with
 * o->timing); rows/cols: the pty's size; request_id as ty_cli_encode_submit's. */
int ty_rl_encode_submit(const ty_rl_opts *o, uint32_t rows, uint32_t cols, const char *request_id,
                        ty_buf *out);
/* WatchJobRequest (trainctl attach waits for the job's verdict with it). */
int ty_rl_encode_watch(uint64_t job_id, bool want_tokens, ty_buf *out);
/* One JobWatchEvent; close *out with ty_job_watch_event_close. */
int ty_rl_decode_watch_event(const uint8_t *p, size_t n, ty_job_watch_event *out);
int ty_rl_encode_attach(const ty_attach_request *a, ty_buf *out);
/* One AttachOutput; `data` borrows from *out_owner (free with ty_wire_free). */
int ty_rl_decode_output(const uint8_t *p, size_t n, ty_attach_output *out, void **out_owner);
int ty_rl_encode_input(const ty_attach_input *in, ty_buf *out);

/* ---- line framing (--label, several ranks) ------------------------------------
 * Whole lines only, so ranks never interleave inside a line: complete lines
 * of `p` go to `out` (each after `prefix`, which may be ""), the rest waits
 * in `partial` for its newline; flush emits it at the end. */
void ty_rl_frame_lines(ty_buf *partial, const char *prefix, const uint8_t *p, size_t n,
                       ty_buf *out);
void ty_rl_frame_flush(ty_buf *partial, const char *prefix, ty_buf *out);

/* ---- the attach session (rlaunch_io.c) -------------------------------------------- */

/* How long an attach waits on the worker for a task not started yet: the
 * controller sends LaunchTask before the placement reaches rlaunch, but on
 * another connection, so the attach may still arrive first. */
#define TY_RL_ATTACH_WAIT_MS 30000u

/* One rank's attach, on the client's monotonic clock (uv_hrtime, ns; 0 =
 * not reached), and the worker's own account of the task. */
typedef struct ty_rl_rank_times {
  uint64_t connect_ns, connected_ns, attached_ns, first_byte_ns, exit_ns;
  ty_task_timing worker; /* with the exit */
} ty_rl_rank_times;

typedef struct ty_rl_session_opts {
  uint64_t job_id;
  const ty_task_location *tasks; /* borrowed; tokens included */
  size_t n;
  bool owner; /* rlaunch: forwards stdin and signals; false: trainctl attach */
  bool replay;
  bool prefix;    /* "R: " before each line */
  bool line_mode; /* whole lines only (several ranks, or prefix) */
  bool pty;
  ty_rl_stdin stdin_mode;
  const char *prog; /* "rlaunch" or "trainctl", for messages */
  /* Several ranks failed: the rank whose failure ended the job, as the
   * controller saw the ends arrive (it waits for the job's final state);
   * -1 when it cannot tell. NULL: the session does not say which. */
  int32_t (*first_failure)(void *ud);
  /* A second Ctrl-C: cancels the job at the controller, so its history
   * says the user cancelled it (the session also kills the tasks at once).
   * NULL: only the kill. */
  void (*cancel)(void *ud);
  void *ud;                /* for first_failure and cancel */
  ty_rl_rank_times *times; /* n entries, filled as the session goes; NULL = none */
} ty_rl_session_opts;

/* ---- --timing (rlaunch_timing.c) ------------------------------------------------- */

/* One launch, stage by stage: the client's stamps on its monotonic clock
 * (uv_hrtime ns; 0 = not reached), the controller's and the worker's as
 * durations on their own clocks (so no two clocks need to agree). */
typedef struct ty_rl_launch_times {
  uint64_t main_ns, connect_ns, connected_ns; /* main(); connecting; connected */
  uint64_t submit_ns, stored_ns, placed_ns;   /* SubmitJob sent; job stored; placement */
  uint64_t done_ns;                           /* every rank ended */
  ty_launch_timing controller;
  ty_rl_rank_times rank0;
  uint64_t requests_waiting; /* requests to the controller between submit and placement */
} ty_rl_launch_times;

/* Prints the stages, in milliseconds, one per line, after "rlaunch: ". */
void ty_rl_print_timing(FILE *f, uint64_t job_id, const ty_rl_launch_times *t);

/* A pending job's reason as the status line shows it: the scheduler's
 * countdown "start in 5400 s" reads "start in 1h30m" (and 90 s "1m30s",
 * 45 s "45s"); the rest is copied. out_len bytes, always NUL-ended. */
void ty_rl_countdown_text(const char *reason, char *out, size_t out_len);

/* Attaches to every task, streams until all have ended, and returns the
 * exit code (see above). Installs its own signal handlers while it runs;
 * with pty and a terminal on stdin, puts it in raw mode and restores it. */
int ty_rl_session_run(const ty_rl_session_opts *o);

#endif
