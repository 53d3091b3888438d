/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rlaunch: runs a command on the cluster as if it ran here (like srun).
 *
 *   1. SubmitJob with Job.interactive and `watch` set: a normal job, so
 *      queues, priorities, accounting, `trainctl ls` and `cancel` all
 *      apply; the answer is a stream that pushes the job as it changes, so
 *      rlaunch asks nothing while it waits. A status line on stderr says
 *      why the job waits (after STATUS_AFTER_MS, so a job placed at once
 *      shows none): rewritten in place on a terminal, one line per change
 *      otherwise. Ctrl-C (SIGTERM, SIGHUP, SIGQUIT) cancels the pending job.
 *   2. With the placement (and the task tokens) pushed, attaches straight
 *      to the workers (rlaunch_io.c), which hold an attach that beats its
 *      LaunchTask until the task starts, and exits with the job's exit code.
 *   3. The stream stays open while the job runs; after the ranks end,
 *      rlaunch reads its final event for the controller's verdict (which
 *      rank failed first; a cancel, preemption or memory kill the ranks'
 *      exits do not tell; with --timing, the controller's account).
 */
#include <errno.h>
#include <fcntl.h>
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
#include "cli/rlaunch.h"
#include "cli/socket.h"
#include "lib/base/version.h"
#include "proto/methods.h"

#define CALL_TIMEOUT_MS 10000u
#define STATUS_AFTER_MS 300    /* a job placed quicker than this shows no status line */
#define VERDICT_WAIT_MS 10000u /* for the job's final event after its ranks ended */
#define RETRY_FIRST_MS 100u    /* a lost controller: retries back off from here ... */
#define RETRY_MAX_MS 2000u     /* ... doubling to this */

extern char **environ;

static const int pending_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define N_PENDING_SIGNALS (sizeof pending_signals / sizeof pending_signals[0])

typedef struct rlaunch {
  ty_rl_opts o;
  const char *controller;
  ty_rpc_client *client;
  char *host; /* the controller's, for reconnecting */
  int port;
  ty_buf submit;       /* the SubmitJobRequest, sent again as it is on a retry */
  ty_rng rng;          /* retry jitter */
  uint32_t retry_ms;   /* the next retry's base delay */
  int64_t deadline_ms; /* retries stop here */
  bool retry_due;
  uint64_t job_id;
  /* The watch stream (SubmitJob's answer). */
  uint64_t watch_id;     /* its request */
  ty_task_locations job; /* the latest event's view of the job */
  bool placed, final, stream_over;
  int stream_status;
  char stream_msg[TY_ERR_LEN];
  /* Waiting for the placement. */
  uv_signal_t sigs[N_PENDING_SIGNALS];
  uv_timer_t status_timer, verdict_timer;
  int signal; /* a pending_signals one that arrived; 0 = none */
  bool status_due, status_tty, status_shown, verdict_late;
  char last_status[TY_ERR_LEN];
  ty_rl_launch_times t;
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

/* The next wait before a retry: RETRY_FIRST_MS doubling to RETRY_MAX_MS,
 * with up to half of it as jitter (as cli/retry.c's); 0 once the time to
 * recover (CALL_TIMEOUT_MS from the first failure since the controller last
 * answered) would be spent. */
static uint32_t next_retry(rlaunch *r) {
  if (!r->retry_ms) r->deadline_ms = ty_mono_ms() + CALL_TIMEOUT_MS;
  uint32_t d = r->retry_ms ? r->retry_ms : RETRY_FIRST_MS;
  r->retry_ms = d * 2 < RETRY_MAX_MS ? d * 2 : RETRY_MAX_MS;
  uint32_t wait = d / 2 + (uint32_t)(ty_rng_next(&r->rng) % (d / 2 + 1));
  return ty_mono_ms() + wait < r->deadline_ms ? wait : 0;
}

static void sleep_ms(uint32_t ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Opens the connection, retried while the controller is unreachable (it
 * may be restarting) until the submit's time is spent. */
static int connect_controller(rlaunch *r) {
  char e[TY_ERR_LEN] = "";
  if (ty_cli_parse_addr("TRAINYARD_CONTROLLER", r->controller, 7810, &r->host, &r->port, e,
                        sizeof e) != 0) {
    err("%s", e);
    return TY_RL_EXIT_USAGE;
  }
  ty_cli_socket_choose(NULL, getenv("TRAINYARD_SOCKET"), r->host, r->port);
  r->rng = ty_rng_make((uint64_t)ty_mono_ms() ^ (uint64_t)getpid());
  r->t.connect_ns = uv_hrtime();
  for (;;) {
    int rc = ty_cli_connect(r->host, r->port, CALL_TIMEOUT_MS, &r->signer, &r->client);
    r->t.connected_ns = uv_hrtime();
    if (rc == 0) return 0;
    uint32_t wait = next_retry(r);
    if (!wait) {
      err("cannot reach the controller at %s: %s", r->controller, ty_strerror(rc));
      return TY_RL_EXIT_UNREACHABLE;
    }
    sleep_ms(wait); /* nothing submitted yet, nothing else to watch */
  }
}

/* ---- the status line ------------------------------------------------------------------ */

/* Whether two status lines say the same but for the seconds of the
 * scheduler's countdown ("reserved to start in 86384 s"), which moves at
 * every pass: off a terminal that is no news worth a line of its own. */
static bool same_but_countdown(const char *a, const char *b) {
  static const char mark[] = "start in ";
  const char *ma = strstr(a, mark), *mb = strstr(b, mark);
  if (!ma || !mb || ma - a != mb - b || strncmp(a, b, (size_t)(ma - a)) != 0) return false;
  ma += sizeof mark - 1, mb += sizeof mark - 1;
  ma += strspn(ma, "0123456789"), mb += strspn(mb, "0123456789");
  return strcmp(ma, mb) == 0;
}

static void show_status(rlaunch *r) {
  char line[TY_ERR_LEN];
  if (!r->status_due || r->placed || r->job.state != TY_JOB_PENDING) return;
  snprintf(line, sizeof line, "job %" PRIu64 " pending: %s", r->job_id,
           r->job.reason && r->job.reason[0] ? r->job.reason : "waiting to be scheduled");
  if (strcmp(line, r->last_status) == 0) return;
  if (!r->status_tty && same_but_countdown(line, r->last_status)) return;
  snprintf(r->last_status, sizeof r->last_status, "%s", line);
  char shown[TY_ERR_LEN]; /* the countdown in minutes, not raw seconds */
  ty_rl_countdown_text(line, shown, sizeof shown);
  if (r->status_tty)
    fprintf(stderr, "\r\033[Krlaunch: %s", shown);
  else
    fprintf(stderr, "rlaunch: %s\n", shown);
  fflush(stderr);
  r->status_shown = true;
}

static void clear_status(rlaunch *r) {
  if (r->status_shown && r->status_tty) fputs("\r\033[K", stderr);
  r->status_shown = false;
}

static void on_status_due(uv_timer_t *h) {
  rlaunch *r = h->data;
  r->status_due = true;
  show_status(r);
}

/* ---- the watch stream ------------------------------------------------------------------ */

static void on_event(rlaunch *r, const uint8_t *p, size_t n) {
  ty_job_watch_event ev;
  if (ty_rl_decode_watch_event(p, n, &ev) != 0) {
    snprintf(r->stream_msg, sizeof r->stream_msg, "an event of the job's watch did not decode");
    r->stream_status = TY_EPROTO;
    ty_rpc_client_cancel(r->client, r->watch_id);
    return;
  }
  if (!r->t.stored_ns) r->t.stored_ns = uv_hrtime();
  r->retry_ms = 0; /* the controller answers: a later loss starts its retries afresh */
  r->job_id = ev.job_id;
  r->t.controller = ev.timing;
  ty_task_locations_close(&r->job);
  r->job = ev.job; /* taken */
  ev.job = (ty_task_locations){0};
  ty_job_watch_event_close(&ev);
  r->final = ty_job_state_terminal(r->job.state);
  if (!r->placed && r->job.n > 0 && r->job.tasks[0].token_len) {
    r->placed = true;
    r->t.placed_ns = uv_hrtime();
  }
  show_status(r);
}

static void on_watch(ty_rpc_conn *c, int status, const ty_rpc_msg *m, bool final, void *ud) {
  (void)c;
  rlaunch *r = ud;
  if (!final) {
    on_event(r, m->payload, m->payload_len);
    return;
  }
  r->stream_over = true;
  if (r->stream_status) return; /* ours: a bad event */
  r->stream_status = m ? m->status : status;
  snprintf(r->stream_msg, sizeof r->stream_msg, "%s",
           m && m->message[0] ? m->message : ty_strerror(r->stream_status));
}

/* Encodes the submit once: every retry sends the same request id. */
static int encode_submit(rlaunch *r) {
  struct winsize ws = {0};
  if (r->o.pty) ioctl(STDIN_FILENO, TIOCGWINSZ, &ws);
  char rid[TY_CLI_REQUEST_ID_LEN + 1];
  ty_buf_init(&r->submit);
  int rc = ty_cli_request_id(rid);
  if (rc == 0) rc = ty_rl_encode_submit(&r->o, ws.ws_row, ws.ws_col, rid, &r->submit);
  if (rc == 0) return 0;
  err("cannot encode the job: %s", ty_strerror(rc));
  return TY_RL_EXIT_USAGE;
}

static int send_submit(rlaunch *r) {
  r->stream_over = false;
  r->stream_status = 0;
  r->stream_msg[0] = '\0';
  if (!r->t.submit_ns) r->t.submit_ns = uv_hrtime();
  return ty_rpc_client_start(r->client, TY_M_SUBMIT_JOB, r->submit.data, r->submit.len, 0, on_watch,
                             r, &r->watch_id);
}

/* Runs the client's loop until *flag, the stream's end or a signal. */
static void run_until(rlaunch *r, const bool *flag) {
  uv_loop_t *loop = ty_rpc_client_loop(r->client);
  while (!*flag && !r->stream_over && !r->signal)
    if (uv_run(loop, UV_RUN_ONCE) == 0) break;
}

/* ---- waiting for placement ------------------------------------------------------------ */

/* CancelJob for our job; the answer does not matter (it may have ended). */
static void cancel_job(rlaunch *r) {
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  if (ty_cli_encode_cancel(&(ty_job_ref){.id = r->job_id}, 1, &req) == 0)
    (void)ty_rpc_client_call(r->client, TY_M_CANCEL_JOB, req.data, req.len, CALL_TIMEOUT_MS, &res);
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
}

static void cancel_cb(void *ud) {
  cancel_job(ud);
}

static void on_pending_signal(uv_signal_t *h, int sig) {
  rlaunch *r = h->data;
  r->signal = sig;
}

static void watch_signals(rlaunch *r, bool on) {
  uv_loop_t *loop = ty_rpc_client_loop(r->client);
  for (size_t i = 0; i < N_PENDING_SIGNALS; i++) {
    if (on) {
      uv_signal_init(loop, &r->sigs[i]);
      r->sigs[i].data = r;
      uv_signal_start(&r->sigs[i], on_pending_signal, pending_signals[i]);
    } else {
      uv_close((uv_handle_t *)&r->sigs[i], NULL);
    }
  }
}

/* What ended the wait without a placement: an exit code, said. */
static int not_placed(rlaunch *r) {
  clear_status(r);
  if (r->signal) {
    /* A signal before the first event: the job may be on its way to the
     * store, so its id is awaited (not a timer: the answer) before the cancel. */
    uv_loop_t *loop = ty_rpc_client_loop(r->client);
    while (!r->t.stored_ns && !r->stream_over)
      if (uv_run(loop, UV_RUN_ONCE) == 0) break;
    if (r->t.stored_ns) cancel_job(r);
    const char *name = sigabbrev_np(r->signal);
    err("job %" PRIu64 " cancelled while pending (SIG%s)", r->job_id, name ? name : "?");
    return TY_RL_EXIT_NOT_STARTED;
  }
  if (r->final) {
    err("job %" PRIu64 " ended without running (%s)%s%s", r->job_id,
        ty_job_state_name(r->job.state), r->job.reason[0] ? ": " : "", r->job.reason);
    return TY_RL_EXIT_NOT_STARTED;
  }
  if (!r->t.stored_ns && r->stream_status != TY_ECLOSED && r->stream_status != TY_ETIMEDOUT &&
      r->stream_status != TY_EPROTO) {
    err("job refused: %s", r->stream_msg);
    const char *hint = ty_cli_signer_hint(&r->signer, r->stream_status);
    if (hint) err("(the request carried no MUNGE credential: %s)", hint);
    return TY_RL_EXIT_REFUSED;
  }
  err("lost the controller at %s while waiting for job %" PRIu64 ": %s", r->controller, r->job_id,
      r->stream_msg);
  return TY_RL_EXIT_UNREACHABLE;
}

static void on_retry_due(uv_timer_t *h) {
  rlaunch *r = h->data;
  r->retry_due = true;
}

/* The stream broke before the placement (connection lost, or the
 * controller stopping): waits a backoff, reconnects and sends the same
 * submit, which the controller answers with the job's watch (its request
 * id makes it the same job). False when the time is spent, or a signal
 * came meanwhile. */
static bool resubmit(rlaunch *r) {
  bool lost = r->stream_status == TY_ECLOSED || r->stream_status == TY_ETIMEDOUT;
  uint32_t wait = lost ? next_retry(r) : 0;
  if (!wait) return false;
  r->retry_due = false;
  uv_timer_start(&r->status_timer, on_retry_due, wait, 0); /* the status line is idle here */
  r->stream_over = false;
  run_until(r, &r->retry_due);
  if (r->signal) return false;
  int rc = ty_cli_reconnect(r->client, r->host, r->port, CALL_TIMEOUT_MS);
  if (rc == 0) rc = send_submit(r);
  if (rc != 0) { /* still lost: the next round retries again */
    r->stream_over = true, r->stream_status = TY_ECLOSED;
    snprintf(r->stream_msg, sizeof r->stream_msg, "%s", ty_strerror(rc));
  }
  r->status_due = true; /* the wait is already long */
  return true;
}

/* Submits and waits for the placement, pushed on the same connection. */
static int submit_and_wait(rlaunch *r) {
  int code = encode_submit(r);
  if (code) return code;
  uv_loop_t *loop = ty_rpc_client_loop(r->client);
  uint64_t sent = ty_rpc_client_requests(r->client) + 1;
  if (send_submit(r) != 0) r->stream_over = true, r->stream_status = TY_ECLOSED;
  watch_signals(r, true);
  uv_timer_init(loop, &r->status_timer);
  r->status_timer.data = r;
  uv_timer_start(&r->status_timer, on_status_due, STATUS_AFTER_MS, 0);
  do {
    run_until(r, &r->placed);
  } while (!r->placed && !r->final && !r->signal && r->stream_over && resubmit(r));
  r->t.requests_waiting = ty_rpc_client_requests(r->client) - sent;
  uv_close((uv_handle_t *)&r->status_timer, NULL);
  watch_signals(r, false);
  if (!r->placed || r->signal) return not_placed(r);
  clear_status(r);
  return 0;
}

/* ---- after the ranks ended ------------------------------------------------------------- */

static void on_verdict_late(uv_timer_t *h) {
  rlaunch *r = h->data;
  r->verdict_late = true;
}

/* Reads the stream up to the job's final event (bounded by VERDICT_WAIT_MS:
 * the workers report the ends to the controller on their own). */
static void wait_final(rlaunch *r) {
  if (r->final || r->stream_over) return;
  uv_loop_t *loop = ty_rpc_client_loop(r->client);
  uv_timer_init(loop, &r->verdict_timer);
  r->verdict_timer.data = r;
  uv_timer_start(&r->verdict_timer, on_verdict_late, VERDICT_WAIT_MS, 0);
  while (!r->final && !r->stream_over && !r->verdict_late)
    if (uv_run(loop, UV_RUN_ONCE) == 0) break;
  uv_close((uv_handle_t *)&r->verdict_timer, NULL);
}

static int32_t first_failure_cb(void *ud) {
  rlaunch *r = ud;
  wait_final(r);
  return r->final ? r->job.failed_rank : -1;
}

/* The controller's verdict where the ranks' own exits do not tell it: a
 * job cancelled, preempted or killed at its memory limit is said so (as
 * srun's "CANCELLED", "Out Of Memory"), and one whose command still exited
 * 0 (it trapped the SIGTERM) exits 128+SIGTERM: `rlaunch cmd && next` must
 * not go on after a cancel. Anything else keeps the ranks' code. */
static int verdict(rlaunch *r, int code) {
  wait_final(r);
  ty_job_state s = r->final ? r->job.state : TY_JOB_RUNNING;
  if (s != TY_JOB_CANCELLED && s != TY_JOB_PREEMPTED && s != TY_JOB_OUT_OF_MEMORY) return code;
  err("job %" PRIu64 " %s%s%s", r->job_id, ty_job_state_name(s), r->job.reason[0] ? ": " : "",
      r->job.reason);
  return code == 0 ? 128 + SIGTERM : code;
}

/* ---- main ------------------------------------------------------------------------------ */

static const char *caller(char *buf, size_t cap) {
  struct passwd *pw = getpwuid(getuid());
  if (pw && pw->pw_name && *pw->pw_name) return pw->pw_name;
  snprintf(buf, cap, "%u", (unsigned)getuid());
  return buf;
}

static int run(rlaunch *r) {
  int code = connect_controller(r);
  if (code == 0) code = submit_and_wait(r);
  if (code != 0) return code;
  ty_rl_session_opts so = {.job_id = r->job_id,
                           .tasks = r->job.tasks,
                           .n = r->job.n,
                           .owner = true,
                           .prefix = r->o.label,
                           .line_mode = r->o.label || r->job.n > 1,
                           .pty = r->o.pty,
                           .stdin_mode = r->o.stdin_mode,
                           .prog = "rlaunch",
                           .first_failure = first_failure_cb,
                           .cancel = cancel_cb,
                           .ud = r};
  ty_rl_rank_times *times = ty_xcalloc(r->job.n ? r->job.n : 1, sizeof *times);
  so.times = times;
  /* The session copies what it needs of r->job's tasks when it starts; a
   * later event (read during a cancel or the verdict) may replace them. */
  code = ty_rl_session_run(&so);
  r->t.done_ns = uv_hrtime();
  r->t.rank0 = times[0];
  free(times);
  code = verdict(r, code);
  if (r->o.timing) ty_rl_print_timing(stderr, r->job_id, &r->t);
  return code;
}

/* --input=none: rlaunch reads /dev/null in place of its own stdin, so
 * rank 0 sees EOF at once and the terminal's input stays the shell's. */
static int no_input(char *e, size_t cap) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || dup2(fd, STDIN_FILENO) < 0) {
    snprintf(e, cap, "--input=none: cannot read /dev/null: %s", strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  if (fd != STDIN_FILENO) close(fd);
  return 0;
}

int main(int argc, char **argv) {
  rlaunch r = {.t.main_ns = uv_hrtime()};
  char e[TY_ERR_LEN] = "";
  char cwd[PATH_MAX], uid[32];
  const char *dir = getcwd(cwd, sizeof cwd);
  int cwd_errno = errno; /* before anything else can change it */
  if (ty_rl_parse(argc, argv, dir, caller(uid, sizeof uid), environ, &r.o, e, sizeof e) != 0) {
    err("%s", e);
    fputs("Try 'rlaunch --help'.\n", stderr);
    return TY_RL_EXIT_USAGE;
  }
  for (size_t i = 0; i < r.o.slurm.n_warnings; i++)
    fprintf(stderr, "rlaunch: warning: %s\n", r.o.slurm.warnings[i]);
  if (r.o.version && !r.o.help) {
    ty_version_print(stdout, "rlaunch");
    ty_rl_opts_close(&r.o);
    return 0;
  }
  if (r.o.help) {
    for (const char *const *u = ty_rl_usage; *u; u++)
      fputs(*u, stdout);
    ty_rl_opts_close(&r.o);
    return 0;
  }
  if (r.o.stdin_mode == TY_RL_STDIN_NONE && no_input(e, sizeof e) != 0) {
    err("%s", e);
    ty_rl_opts_close(&r.o);
    return TY_RL_EXIT_USAGE;
  }
  ty_rl_submit_host(&r.o.job); /* srun's: where rlaunch runs */
  ty_rl_submit_process(&r.o.job, r.o.slurm.no_propagate);
  if (!dir) {
    err("cannot tell the current directory%s: %s", cwd_errno == ENOENT ? " (it was deleted)" : "",
        strerror(cwd_errno));
    ty_rl_opts_close(&r.o);
    return TY_RL_EXIT_USAGE;
  }
  const char *env = getenv("TRAINYARD_CONTROLLER");
  char local[TY_CLI_LOCAL_CONTROLLER_LEN];
  if (!(env && *env) &&
      ty_cli_local_controller(getenv("TRAINYARD_PORT"), local, sizeof local, e, sizeof e) != 0) {
    err("%s", e);
    ty_rl_opts_close(&r.o);
    return TY_RL_EXIT_USAGE;
  }
  r.controller = env && *env ? env : local;
  r.status_tty = isatty(STDERR_FILENO);
  int code = run(&r);
  ty_rpc_client_close(r.client);
  ty_task_locations_close(&r.job);
  ty_cli_signer_close(&r.signer);
  free(r.host);
  ty_buf_close(&r.submit);
  ty_rl_opts_close(&r.o);
  /* _exit: a read of a terminal stdin may still block in libuv's thread
   * pool, and libuv's library destructor would wait for it forever. */
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}
