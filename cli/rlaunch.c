/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rlaunch: runs a command on the cluster as if it ran here (like srun).
 *
 *   1. SubmitJob with Job.interactive set: a normal job, so queues,
 *      priorities, accounting, `trainctl ls` and `cancel` all apply.
 *   2. Waits for placement, polling GetTaskLocations (5 ms at first, so an
 *      idle cluster starts the command within milliseconds, backing off to
 *      250 ms), with one status line on stderr saying why the job waits:
 *      rewritten in place on a terminal, one line per change otherwise.
 *      Signals are blocked meanwhile and collected with sigtimedwait, which
 *      is also the poll's sleep: Ctrl-C cancels the pending job.
 *   3. Attaches straight to the workers with the task tokens the controller
 *      issued (rlaunch_io.c) and exits with the job's exit code.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "proto/methods.h"

#define CALL_TIMEOUT_MS 10000u
#define STATUS_AFTER_MS 300 /* a job placed quicker than this shows no status line */

extern char **environ;

typedef struct rlaunch {
  ty_rl_opts o;
  const char *controller;
  ty_rpc_client *client;
  char *host; /* the controller's, for reconnecting */
  int port;
  uint64_t job_id;
  sigset_t sigs;      /* blocked while pending */
  bool status_tty;    /* stderr is a terminal: rewrite the status line */
  bool status_shown;
  char last_status[TY_ERR_LEN];
  ty_cli_signer signer; /* each request's MUNGE credential */
} rlaunch;

static void err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void err(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("rlaunch: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* One call to the controller; 0 with *out filled, or an exit code after
 * saying what went wrong (out closed). */
static int call(rlaunch *r, const char *method, const ty_buf *req, ty_rpc_result *out) {
  int rc = ty_rpc_client_call(r->client, method, req->data, req->len, CALL_TIMEOUT_MS, out);
  if (rc != 0) {
    err("lost the controller at %s during %s: %s", r->controller, method, ty_strerror(rc));
    ty_rpc_result_close(out);
    return TY_RL_EXIT_UNREACHABLE;
  }
  return 0;
}

static int connect_controller(rlaunch *r) {
  char *host = NULL;
  int port = 0;
  char e[TY_ERR_LEN] = "";
  if (ty_cli_parse_addr("TRAINYARD_CONTROLLER", r->controller, 7810, &host, &port, e, sizeof e) != 0) {
    err("%s", e);
    return TY_RL_EXIT_USAGE;
  }
  int rc = ty_cli_connect(host, port, CALL_TIMEOUT_MS, &r->signer, &r->client);
  r->host = host;
  r->port = port;
  if (rc == 0) return 0;
  err("cannot reach the controller at %s: %s", r->controller, ty_strerror(rc));
  return TY_RL_EXIT_UNREACHABLE;
}

static int submit(rlaunch *r) {
  struct winsize ws = {0};
  if (r->o.pty) ioctl(STDIN_FILENO, TIOCGWINSZ, &ws);
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  char rid[TY_CLI_REQUEST_ID_LEN + 1];
  int code = ty_cli_request_id(rid) || ty_rl_encode_submit(&r->o, ws.ws_row, ws.ws_col, rid, &req)
                 ? TY_RL_EXIT_USAGE : 0;
  /* Retried on a lost connection: the request id makes it one job. */
  int rc = code ? 0
                    : ty_cli_call_retrying(&r->client, r->host, r->port, &r->signer,
                                           TY_M_SUBMIT_JOB, &req, CALL_TIMEOUT_MS, &res, NULL, NULL);
  ty_buf_close(&req);
  if (rc != 0) {
    err("lost the controller at %s during %s: %s", r->controller, TY_M_SUBMIT_JOB, ty_strerror(rc));
    ty_rpc_result_close(&res);
    return TY_RL_EXIT_UNREACHABLE;
  }
  if (code) return code;
  if (res.status != 0) {
    err("job refused: %s", res.message[0] ? res.message : ty_strerror(res.status));
    const char *hint = ty_cli_signer_hint(&r->signer, res.status);
    if (hint) err("(the request carried no MUNGE credential: %s)", hint);
    code = TY_RL_EXIT_REFUSED;
  } else if (ty_cli_decode_submit(res.payload, res.payload_len, &r->job_id, NULL) != 0) {
    err("the controller's answer to SubmitJob did not decode");
    code = TY_RL_EXIT_UNREACHABLE;
  }
  ty_rpc_result_close(&res);
  return code;
}

static int locate(rlaunch *r, ty_task_locations *out) {
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  int code = ty_cli_encode_locations(r->job_id, true, &req) ? TY_RL_EXIT_USAGE : 0;
  if (code == 0) code = call(r, TY_M_GET_TASK_LOCATIONS, &req, &res);
  ty_buf_close(&req);
  if (code) return code;
  if (res.status != 0) {
    err("job %" PRIu64 ": %s", r->job_id, res.message[0] ? res.message : ty_strerror(res.status));
    code = TY_RL_EXIT_IO;
  } else if (ty_cli_decode_locations(res.payload, res.payload_len, out) != 0) {
    err("the controller's answer to GetTaskLocations did not decode");
    code = TY_RL_EXIT_UNREACHABLE;
  }
  ty_rpc_result_close(&res);
  return code;
}

static int locate_cb(void *ud, ty_task_locations *out) { return locate(ud, out); }

/* ---- waiting for placement ------------------------------------------------------------ */

static void show_status(rlaunch *r, const char *reason) {
  char line[TY_ERR_LEN];
  snprintf(line, sizeof line, "job %" PRIu64 " pending: %s", r->job_id,
           reason[0] ? reason : "waiting to be scheduled");
  if (strcmp(line, r->last_status) == 0) return;
  snprintf(r->last_status, sizeof r->last_status, "%s", line);
  if (r->status_tty) fprintf(stderr, "\r\033[Krlaunch: %s", line);
  else fprintf(stderr, "rlaunch: %s\n", line);
  fflush(stderr);
  r->status_shown = true;
}

static void clear_status(rlaunch *r) {
  if (r->status_shown && r->status_tty) fputs("\r\033[K", stderr);
  r->status_shown = false;
}

/* CancelJob for our job; the answer does not matter (it may have ended). */
static void cancel_job(rlaunch *r) {
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  if (ty_cli_encode_cancel(&(ty_job_ref){.id = r->job_id}, 1, &req) == 0 &&
      call(r, TY_M_CANCEL_JOB, &req, &res) == 0)
    ty_rpc_result_close(&res);
  ty_buf_close(&req);
}

static void cancel_cb(void *ud) { cancel_job(ud); }

/* Ctrl-C (or SIGTERM, SIGHUP, SIGQUIT) while pending: the job ended
 * without running, exit 122 as documented. */
static int cancel_pending(rlaunch *r, int sig) {
  clear_status(r);
  cancel_job(r);
  const char *name = sigabbrev_np(sig);
  err("job %" PRIu64 " cancelled while pending (SIG%s)", r->job_id, name ? name : "?");
  return TY_RL_EXIT_NOT_STARTED;
}

/* Sleeps ms, or less when a signal arrives: returns it (0 = none). */
static int nap(rlaunch *r, int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  int sig = sigtimedwait(&r->sigs, NULL, &ts);
  return sig > 0 ? sig : 0;
}

/* Not placed but over: cancelled, or refused at launch. */
static int ended_unplaced(rlaunch *r, const ty_task_locations *l) {
  clear_status(r);
  err("job %" PRIu64 " ended without running (%s)%s%s", r->job_id, ty_job_state_name(l->state),
      l->reason[0] ? ": " : "", l->reason);
  return TY_RL_EXIT_NOT_STARTED;
}

/* Polls until the job has tasks (with tokens); 0 with *out filled, or an
 * exit code. */
static int wait_placed(rlaunch *r, ty_task_locations *out) {
  int64_t t0 = ty_mono_ms();
  for (;;) {
    int code = locate(r, out);
    if (code) return code;
    if (out->n > 0 && out->tasks[0].token_len) break;
    if (out->state != TY_JOB_PENDING && out->state != TY_JOB_RUNNING) return ended_unplaced(r, out);
    int64_t waited = ty_mono_ms() - t0;
    if (out->state == TY_JOB_PENDING && waited >= STATUS_AFTER_MS) show_status(r, out->reason);
    ty_task_locations_close(out);
    int sig = nap(r, waited < 100 ? 5 : waited < 2000 ? 25 : 250);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT)
      return cancel_pending(r, sig);
  }
  clear_status(r);
  return 0;
}

/* ---- main ------------------------------------------------------------------------------ */

static const char *caller(char *buf, size_t cap) {
  struct passwd *pw = getpwuid(getuid());
  if (pw && pw->pw_name && *pw->pw_name) return pw->pw_name;
  snprintf(buf, cap, "%u", (unsigned)getuid());
  return buf;
}

static void block_signals(rlaunch *r) {
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
  sigemptyset(&r->sigs);
  for (size_t i = 0; i < TY_ARRAY_LEN(sigs); i++) sigaddset(&r->sigs, sigs[i]);
  sigprocmask(SIG_BLOCK, &r->sigs, NULL);
}

static int run(rlaunch *r) {
  ty_task_locations l = {0};
  int code = connect_controller(r);
  if (code == 0) code = submit(r);
  if (code == 0) code = wait_placed(r, &l);
  if (code != 0) return code;
  ty_rl_session_opts so = {
      .job_id = r->job_id, .tasks = l.tasks, .n = l.n, .owner = true,
      .prefix = r->o.label, .line_mode = r->o.label || l.n > 1, .pty = r->o.pty,
      .stdin_mode = r->o.stdin_mode, .prog = "rlaunch", .locate = locate_cb, .cancel = cancel_cb,
      .locate_ud = r};
  code = ty_rl_session_run(&so);
  ty_task_locations_close(&l);
  return code;
}

int main(int argc, char **argv) {
  rlaunch r = {0};
  char e[TY_ERR_LEN] = "";
  char cwd[PATH_MAX], uid[32];
  const char *dir = getcwd(cwd, sizeof cwd);
  int cwd_errno = errno; /* before anything else can change it */
  if (ty_rl_parse(argc, argv, dir, caller(uid, sizeof uid), environ, &r.o, e, sizeof e) != 0) {
    err("%s", e);
    fputs("Try 'rlaunch --help'.\n", stderr);
    return TY_RL_EXIT_USAGE;
  }
  if (r.o.help) {
    fputs(ty_rl_usage, stdout);
    ty_rl_opts_close(&r.o);
    return 0;
  }
  if (!dir) {
    err("cannot tell the current directory%s: %s",
        cwd_errno == ENOENT ? " (it was deleted)" : "", strerror(cwd_errno));
    ty_rl_opts_close(&r.o);
    return TY_RL_EXIT_USAGE;
  }
  const char *env = getenv("TRAINYARD_CONTROLLER");
  r.controller = env && *env ? env : "127.0.0.1:7810";
  r.status_tty = isatty(STDERR_FILENO);
  block_signals(&r);
  int code = run(&r);
  ty_rpc_client_close(r.client);
  ty_cli_signer_close(&r.signer);
  free(r.host);
  ty_rl_opts_close(&r.o);
  /* _exit: a read of a terminal stdin may still block in libuv's thread
   * pool, and libuv's library destructor would wait for it forever. */
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}
