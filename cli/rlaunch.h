/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rlaunch: interactive remote execution, like srun. The testable parts
 * (ty_rlaunch library): the command line, the environment deny-list, the
 * protobuf conversions of interactive execution (rlaunch_convert.c, the only
 * rlaunch file that sees generated types), line framing for --label, and
 * the attach session that streams a job's I/O straight from its workers
 * (rlaunch_io.c, shared with `trainctl attach`).
 *
 * Ownership: structs holding heap memory have a _close that frees it and
 * accepts a zeroed struct. Parse errors go into the caller's `err`
 * (TY_ERR_LEN) naming the option, without the "rlaunch: " prefix.
 */
#ifndef TY_CLI_RLAUNCH_H
#define TY_CLI_RLAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/cli.h"
#include "lib/rpc/rpc.h"

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

typedef enum { TY_RL_STDIN_RANK0 = 0, TY_RL_STDIN_ALL = 1 } ty_rl_stdin;

typedef struct ty_rl_opts {
  ty_job_spec job; /* resources, name, queue, priority, time, argv, env, cwd, user */
  bool label, pty, detach, help;
  ty_rl_stdin stdin_mode;
} ty_rl_opts;

/* Parses argv[1..]: options, then the command (after "--", or from the
 * first argument that is not an option). job.cwd = cwd, job.user = user,
 * job.env = `env` (NULL-terminated, e.g. environ) minus the deny-list.
 * Errors: TY_EINVAL with the option named in err. */
int ty_rl_parse(int argc, char **argv, const char *cwd, const char *user, char *const *env,
                ty_rl_opts *out, char *err, size_t err_len);
void ty_rl_opts_close(ty_rl_opts *o);
/* The --help text, exit codes included. */
extern const char ty_rl_usage[];

/* Whether a caller's "NAME=value" stays behind: variables that describe the
 * caller's terminal, display, login session or shell rather than the job
 * (HOSTNAME, DISPLAY, XAUTHORITY, SSH_*, PWD, OLDPWD, SHLVL, _, TMUX*, STY,
 * WINDOW, XDG_RUNTIME_DIR, XDG_SESSION_*, DBUS_SESSION_BUS_ADDRESS; TERM,
 * TERMCAP, COLUMNS and LINES unless `pty`), and the variables the worker
 * sets per rank (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
 * MASTER_ADDR, MASTER_PORT, CUDA_VISIBLE_DEVICES, TRAINYARD_JOB_ID,
 * TRAINYARD_NODE). */
bool ty_rl_env_denied(const char *entry, bool pty);

/* A rank's contribution to the exit code: 128+N for signal N, else code. */
int ty_rl_rank_exit(int exit_code, int term_signal);

/* ---- conversions (rlaunch_convert.c) -----------------------------------------
 * Task locations are decoded by ty_cli_decode_locations (cli.h). */

/* SubmitJobRequest for an interactive job; rows/cols: the pty's size. */
int ty_rl_encode_submit(const ty_rl_opts *o, uint32_t rows, uint32_t cols, ty_buf *out);
int ty_rl_encode_attach(uint64_t job_id, uint32_t rank, bool owner, bool replay, ty_buf *out);
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

typedef struct ty_rl_session_opts {
  uint64_t job_id;
  const ty_task_location *tasks; /* borrowed; tokens included */
  size_t n;
  bool owner;              /* rlaunch: forwards stdin and signals; false: trainctl attach */
  bool replay;
  bool prefix;             /* "R: " before each line */
  bool line_mode;          /* whole lines only (several ranks, or prefix) */
  bool pty;
  ty_rl_stdin stdin_mode;
  const char *prog;        /* "rlaunch" or "trainctl", for messages */
  /* Asks the controller about the job when an attach finds no task (not
   * launched yet, or its launch failed); returns 0 and fills *out, which the
   * session closes. NULL: no retries. */
  int (*locate)(void *ud, ty_task_locations *out);
  void *locate_ud;
} ty_rl_session_opts;

/* Attaches to every task, streams until all have ended, and returns the
 * exit code (see above). Installs its own signal handlers while it runs;
 * with pty and a terminal on stdin, puts it in raw mode and restores it. */
int ty_rl_session_run(const ty_rl_session_opts *o);

#endif
