/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attach session of rlaunch and `trainctl attach`: one connection per
 * rank straight to the worker that runs it (the controller is not in the
 * I/O path), an Attach stream carrying the rank's task token, output written
 * to our stdout/stderr as it arrives, stdin and signals forwarded.
 *
 * Backpressure, end to end: output is written with blocking writes from the
 * loop thread, so a slow stdout stops us reading the sockets, TCP fills, the
 * worker's write queue passes its high-water mark and it stops reading the
 * task's pipe, and the task blocks. Stdin is read one 64 KiB chunk at a
 * time, and the next read waits until every receiving rank has fewer than
 * STDIN_WINDOW bytes unacknowledged, so neither side buffers without bound.
 *
 * An attach that finds no task yet (LaunchTask still on its way, on the
 * controller's connection to the worker) waits on the worker for it
 * (TY_RL_ATTACH_WAIT_MS); a launch that failed ends the session with the
 * worker's reason. Nothing here sleeps or polls.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/rlaunch.h"
#include "proto/methods.h"

#define CONNECT_TIMEOUT_MS 10000u
#define STDIN_CHUNK (64u * 1024u)
#define STDIN_WINDOW (256u * 1024u)
#define DOUBLE_INT_MS 1000

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
#define N_SIGNALS (sizeof forwarded / sizeof forwarded[0])

typedef struct rl_session rl_session;

typedef struct rl_rank {
  rl_session *s;
  uint32_t rank;
  char *node, *io_addr; /* owned */
  uint8_t *token;       /* owned */
  size_t token_len;
  ty_rpc_conn *conn;
  ty_rl_rank_times *times; /* the caller's entry, or `own` */
  ty_rl_rank_times own;
  bool attached, ended, got_exit, stdin_open, timed_out;
  int exit_code, term_signal;
  int fail;          /* 0, or rlaunch's exit code for this rank's failure */
  char *fail_msg;    /* owned */
  size_t in_flight;  /* stdin bytes not yet acknowledged */
  ty_buf partial[2]; /* line mode: stdout, stderr bytes after the last newline */
  char prefix[16];
} rl_rank;

struct rl_session {
  uv_loop_t loop;
  const ty_rl_session_opts *o;
  rl_rank *ranks;
  size_t n, live;
  uv_fs_t stdin_req;
  uv_timer_t stdin_retry;
  bool stdin_busy, stdin_done;
  uint8_t stdin_buf[STDIN_CHUNK];
  uv_signal_t sigs[N_SIGNALS];
  int64_t last_int_ms;
  bool raw, killed, stdout_broken;
  struct termios saved;
};

typedef struct input_call {
  rl_rank *rk;
  size_t len;
} input_call;

static void maybe_read_stdin(rl_session *s);
static void start_attach(rl_rank *rk);

/* ---- output ------------------------------------------------------------------------ */

static void msg(const rl_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg(const rl_session *s, const char *fmt, ...) {
  char line[TY_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  /* In raw mode the terminal does not turn \n into \r\n. */
  fprintf(stderr, "%s: %s%s", s->o->prog, line, s->raw ? "\r\n" : "\n");
}

/* Blocking write; stdout may share a non-blocking file description with a
 * terminal stdin, so EAGAIN waits for room instead of failing. */
static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      poll(&pfd, 1, -1);
      continue;
    }
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void send_input(rl_rank *rk, const ty_attach_input *in);

static void kill_all(rl_session *s) {
  s->killed = true;
  for (size_t i = 0; i < s->n; i++) {
    if (!s->ranks[i].attached || s->ranks[i].ended) continue;
    ty_attach_input in = {.job_id = s->o->job_id, .rank = s->ranks[i].rank, .kill = true};
    send_input(&s->ranks[i], &in);
  }
}

static void emit(rl_rank *rk, uint32_t stream, const uint8_t *p, size_t n) {
  rl_session *s = rk->s;
  int fd = stream == 2 ? 2 : 1;
  int rc;
  if (s->o->line_mode) {
    ty_buf out;
    ty_buf_init(&out);
    ty_rl_frame_lines(&rk->partial[fd - 1], rk->prefix, p, n, &out);
    rc = out.len ? write_all(fd, out.data, out.len) : 0;
    ty_buf_close(&out);
  } else {
    rc = write_all(fd, p, n);
  }
  if (rc != 0 && fd == 1 && !s->stdout_broken) {
    /* Like a local pipeline whose reader went away: stop the job. */
    s->stdout_broken = true;
    if (s->o->owner) kill_all(s);
  }
}

static void flush_rank(rl_rank *rk) {
  for (int i = 0; i < 2; i++) {
    ty_buf out;
    ty_buf_init(&out);
    ty_rl_frame_flush(&rk->partial[i], rk->prefix, &out);
    if (out.len) (void)write_all(i + 1, out.data, out.len);
    ty_buf_close(&out);
  }
}

/* ---- ranks ending -------------------------------------------------------------------- */

static void rank_done(rl_rank *rk) {
  if (rk->ended) return;
  rk->ended = true;
  rk->stdin_open = false;
  flush_rank(rk);
  if (rk->conn) ty_rpc_close(rk->conn);
  rk->conn = NULL;
  if (--rk->s->live == 0)
    uv_stop(&rk->s->loop);
  else
    maybe_read_stdin(rk->s);
}

static void rank_fail(rl_rank *rk, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rank_fail(rl_rank *rk, int code, const char *fmt, ...) {
  if (rk->ended) return;
  char text[TY_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  ty_verrf(text, sizeof text, code, fmt, ap);
  va_end(ap);
  rk->fail = code;
  free(rk->fail_msg);
  rk->fail_msg = ty_strdup(text);
  rank_done(rk);
}

/* The controller's verdict on a launch that failed (reason from jobs.c:
 * "launch failed on NODE: argv[0] "x" not found on node NODE"). */
static int launch_failure_code(const char *reason) {
  if (strstr(reason, "not found on node")) return TY_RL_EXIT_NOCMD;
  if (strstr(reason, "is not executable")) return TY_RL_EXIT_NOEXEC;
  return TY_RL_EXIT_NOT_STARTED;
}

/* The worker has no task for us: its launch failed, it never came within
 * the attach's wait, or it already ended. */
static void not_started(rl_rank *rk, const char *worker_msg) {
  rl_session *s = rk->s;
  if (strstr(worker_msg, "launch failed"))
    rank_fail(rk, launch_failure_code(worker_msg), "job %" PRIu64 ": %s", s->o->job_id, worker_msg);
  else
    rank_fail(rk, TY_RL_EXIT_IO, "rank %" PRIu32 " on %s: %s", rk->rank, rk->node, worker_msg);
}

/* ---- the Attach stream ------------------------------------------------------------------ */

static void send_winsize(rl_rank *rk) {
  struct winsize ws;
  if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) != 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0)
    return;
  ty_attach_input in = {
      .job_id = rk->s->o->job_id, .rank = rk->rank, .rows = ws.ws_row, .cols = ws.ws_col};
  if (in.rows && in.cols) send_input(rk, &in);
}

static void on_item(rl_rank *rk, const ty_rpc_msg *m) {
  ty_attach_output out;
  void *owner = NULL;
  if (ty_rl_decode_output(m->payload, m->payload_len, &out, &owner) != 0) return;
  if (out.exited) {
    rk->times->exit_ns = uv_hrtime();
    rk->times->worker = out.timing;
    rk->got_exit = true;
    rk->exit_code = out.exit_code;
    rk->term_signal = out.term_signal;
    rk->timed_out = out.timed_out;
  } else if (out.stream == 0) {
    rk->times->attached_ns = uv_hrtime();
    rk->attached = true;
    if (rk->s->o->pty && rk->s->o->owner) send_winsize(rk);
    maybe_read_stdin(rk->s);
  } else if (out.len) {
    if (!rk->times->first_byte_ns) rk->times->first_byte_ns = uv_hrtime();
    emit(rk, out.stream, out.data, out.len);
  }
  ty_wire_free(owner);
}

static void on_attach_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *m, bool final,
                             void *ud) {
  (void)c;
  rl_rank *rk = ud;
  if (!final) {
    on_item(rk, m);
    return;
  }
  int st = m ? m->status : status;
  const char *text = m && m->message[0] ? m->message : ty_strerror(st);
  if (rk->ended) return;
  if (st == 0 && rk->got_exit) {
    rank_done(rk);
  } else if (st == TY_ENOTFOUND || strstr(text, "launch failed")) {
    not_started(rk, text);
  } else if (st == 0 || st == TY_ECLOSED) {
    rank_fail(rk, TY_RL_EXIT_IO, "rank %" PRIu32 ": lost the connection to %s (%s)", rk->rank,
              rk->node, rk->io_addr);
  } else {
    rank_fail(rk, TY_RL_EXIT_IO, "rank %" PRIu32 " on %s: %s", rk->rank, rk->node, text);
  }
}

static void on_connected(ty_rpc_conn *c, int status, void *ud) {
  rl_rank *rk = ud;
  if (status != 0) {
    rank_fail(rk, TY_RL_EXIT_IO, "rank %" PRIu32 ": cannot reach worker %s at %s: %s", rk->rank,
              rk->node, rk->io_addr, ty_strerror(status));
    return;
  }
  rk->conn = c;
  rk->times->connected_ns = uv_hrtime();
  if (rk->ended) {
    ty_rpc_close(c);
    return;
  }
  ty_buf req;
  ty_buf_init(&req);
  const ty_rl_session_opts *o = rk->s->o;
  ty_attach_request a = {.job_id = o->job_id,
                         .rank = rk->rank,
                         .owner = o->owner,
                         .replay = o->replay,
                         .wait_ms = TY_RL_ATTACH_WAIT_MS};
  int rc = ty_rl_encode_attach(&a, &req);
  if (rc == 0)
    rc = ty_rpc_call(c, TY_M_ATTACH, req.data, req.len, rk->token, rk->token_len, 0,
                     on_attach_answer, rk, NULL);
  ty_buf_close(&req);
  if (rc != 0)
    rank_fail(rk, TY_RL_EXIT_IO, "rank %" PRIu32 ": cannot attach: %s", rk->rank, ty_strerror(rc));
}

static void start_attach(rl_rank *rk) {
  char *host = NULL;
  int port = 0;
  char err[TY_ERR_LEN] = "";
  int rc = ty_cli_parse_addr("io_addr", rk->io_addr, 0, &host, &port, err, sizeof err);
  if (rc == 0 && port == 0) rc = TY_EINVAL;
  ty_rpc_conn_opts copts = {.ud = rk};
  rk->times->connect_ns = uv_hrtime();
  if (rc == 0)
    rc = ty_rpc_connect(&rk->s->loop, host, port, &copts, CONNECT_TIMEOUT_MS, on_connected, rk);
  free(host);
  if (rc != 0)
    rank_fail(rk, TY_RL_EXIT_IO, "rank %" PRIu32 ": bad worker address \"%s\" for %s", rk->rank,
              rk->io_addr, rk->node);
}

/* ---- input: stdin, signals, window size ----------------------------------------------------- */

static void on_input_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *m, bool final, void *ud) {
  (void)c;
  input_call *ic = ud;
  rl_rank *rk = ic->rk;
  int st = m ? m->status : status;
  if (final) {
    rk->in_flight -= ic->len;
    if (st != 0 && ic->len) rk->stdin_open = false; /* the task closed its stdin, or ended */
    free(ic);
    maybe_read_stdin(rk->s);
  }
}

static void send_input(rl_rank *rk, const ty_attach_input *in) {
  if (!rk->conn || rk->ended) return;
  ty_buf b;
  ty_buf_init(&b);
  input_call *ic = ty_xcalloc(1, sizeof *ic);
  *ic = (input_call){.rk = rk, .len = in->len};
  int rc = ty_rl_encode_input(in, &b);
  if (rc == 0)
    rc = ty_rpc_call(rk->conn, TY_M_ATTACH_INPUT, b.data, b.len, NULL, 0, 0, on_input_answer, ic,
                     NULL);
  ty_buf_close(&b);
  if (rc != 0) {
    free(ic);
    return;
  }
  rk->in_flight += in->len;
}

static void on_stdin_retry(uv_timer_t *h) {
  maybe_read_stdin(h->data);
}

static void on_stdin(uv_fs_t *req) {
  rl_session *s = container_of(req, rl_session, stdin_req);
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  s->stdin_busy = false;
  if (n == UV_EAGAIN || n == UV_EINTR) {
    uv_timer_start(&s->stdin_retry, on_stdin_retry, 10, 0);
    return;
  }
  for (size_t i = 0; i < s->n; i++) {
    rl_rank *rk = &s->ranks[i];
    if (!rk->stdin_open || rk->ended) continue;
    ty_attach_input in = {.job_id = s->o->job_id,
                          .rank = rk->rank,
                          .data = s->stdin_buf,
                          .len = n > 0 ? (size_t)n : 0,
                          .eof = n <= 0};
    send_input(rk, &in);
    if (n <= 0) rk->stdin_open = false;
  }
  if (n <= 0) s->stdin_done = true; /* EOF (or an unreadable stdin: EOF too) */
  maybe_read_stdin(s);
}

/* Reads the next chunk once every receiving rank is attached and has room. */
static void maybe_read_stdin(rl_session *s) {
  if (s->stdin_busy || s->stdin_done || !s->o->owner) return;
  bool any = false;
  for (size_t i = 0; i < s->n; i++) {
    const rl_rank *rk = &s->ranks[i];
    if (!rk->stdin_open || rk->ended) continue;
    if (!rk->attached || rk->in_flight >= STDIN_WINDOW) return;
    any = true;
  }
  if (!any) return;
  uv_buf_t b = uv_buf_init((char *)s->stdin_buf, sizeof s->stdin_buf);
  if (uv_fs_read(&s->loop, &s->stdin_req, STDIN_FILENO, &b, 1, -1, on_stdin) == 0)
    s->stdin_busy = true;
}

static void forward(rl_session *s, int sig) {
  for (size_t i = 0; i < s->n; i++) {
    rl_rank *rk = &s->ranks[i];
    if (!rk->attached || rk->ended) continue;
    if (sig == SIGWINCH) {
      send_winsize(rk);
      continue;
    }
    ty_attach_input in = {.job_id = s->o->job_id, .rank = rk->rank, .signal = sig};
    send_input(rk, &in);
  }
}

static void on_signal(uv_signal_t *h, int sig) {
  rl_session *s = h->data;
  if (sig == SIGWINCH && !s->o->pty) return;
  if (sig == SIGINT) {
    int64_t now = ty_mono_ms();
    if (s->last_int_ms && now - s->last_int_ms <= DOUBLE_INT_MS) {
      msg(s, "killing job %" PRIu64, s->o->job_id);
      /* Cancel first: the controller then records CANCELLED by the user
       * before the ranks' deaths could read as a failure. */
      if (s->o->cancel) s->o->cancel(s->o->ud);
      kill_all(s);
      return;
    }
    s->last_int_ms = now;
    msg(s, "interrupt (Ctrl-C again within 1 s kills job %" PRIu64 ")", s->o->job_id);
  }
  forward(s, sig);
}

/* ---- the session
 * ---------------------------------------------------------------------------------- */

static void start_signals(rl_session *s) {
  signal(SIGPIPE, SIG_IGN);
  if (!s->o->owner) return;
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < N_SIGNALS; i++) {
    uv_signal_init(&s->loop, &s->sigs[i]);
    s->sigs[i].data = s;
    uv_signal_start(&s->sigs[i], on_signal, forwarded[i]);
    sigaddset(&set, forwarded[i]);
  }
  /* rlaunch blocks them while the job is pending; libuv's handlers take over. */
  sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static void set_raw(rl_session *s) {
  if (!s->o->pty || !s->o->owner || !isatty(STDIN_FILENO)) return;
  if (tcgetattr(STDIN_FILENO, &s->saved) != 0) return;
  struct termios raw = s->saved;
  cfmakeraw(&raw);
  s->raw = tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0;
}

static void restore_tty(rl_session *s) {
  if (s->raw) tcsetattr(STDIN_FILENO, TCSADRAIN, &s->saved);
  s->raw = false;
}

static void init_rank(rl_session *s, rl_rank *rk, const ty_task_location *t) {
  const ty_rl_session_opts *o = s->o;
  rk->s = s;
  rk->rank = t->rank;
  rk->node = ty_strdup(t->node);
  rk->io_addr = ty_strdup(t->io_addr);
  rk->token = ty_xmalloc(t->token_len ? t->token_len : 1);
  if (t->token_len) memcpy(rk->token, t->token, t->token_len);
  rk->token_len = t->token_len;
  rk->stdin_open = o->owner && (o->stdin_mode == TY_RL_STDIN_ALL || t->rank == 0);
  snprintf(rk->prefix, sizeof rk->prefix, o->prefix ? "%" PRIu32 ": " : "", t->rank);
  ty_buf_init(&rk->partial[0]);
  ty_buf_init(&rk->partial[1]);
  rk->times = o->times ? &o->times[rk - s->ranks] : &rk->own;
}

static bool rank_failed(const rl_rank *rk) {
  return !rk->fail && (rk->exit_code != 0 || rk->term_signal != 0);
}

/* Like srun, the code of a job whose rank failed is that rank's: the
 * others were killed because of it. NULL when no rank failed, or when
 * several did and the controller cannot say which was first. */
static const rl_rank *first_failure(rl_session *s) {
  const rl_rank *only = NULL;
  size_t failed = 0;
  for (size_t i = 0; i < s->n; i++)
    if (rank_failed(&s->ranks[i])) failed++, only = &s->ranks[i];
  if (failed <= 1) return only;
  int32_t r = s->o->first_failure ? s->o->first_failure(s->o->ud) : -1;
  for (size_t i = 0; r >= 0 && i < s->n; i++)
    if (s->ranks[i].rank == (uint32_t)r) return &s->ranks[i];
  return NULL;
}

static void say_end(rl_session *s, const rl_rank *rk, const rl_rank *first) {
  char after[48] = "";
  if (first && first != rk)
    snprintf(after, sizeof after, " after rank %" PRIu32 " failed", first->rank);
  if (rk->term_signal) {
    const char *name = sigabbrev_np(rk->term_signal);
    msg(s, "rank %" PRIu32 " on %s: killed by signal %d (SIG%s)%s", rk->rank, rk->node,
        rk->term_signal, name ? name : "?", after);
  } else if (s->n > 1) {
    msg(s, "rank %" PRIu32 " on %s: exited with code %d%s", rk->rank, rk->node, rk->exit_code,
        after);
  }
}

/* Reports failures and signals; returns the exit code. */
static int verdict(rl_session *s) {
  int code = 0, fail = 0;
  bool timed_out = false;
  for (size_t i = 0; i < s->n; i++) {
    const rl_rank *rk = &s->ranks[i];
    if (rk->fail) {
      msg(s, "%s", rk->fail_msg);
      if (!fail) fail = rk->fail;
    }
    timed_out |= rk->timed_out;
  }
  const rl_rank *first = fail || timed_out || s->killed ? NULL : first_failure(s);
  if (first) say_end(s, first, NULL);
  for (size_t i = 0; i < s->n; i++) {
    const rl_rank *rk = &s->ranks[i];
    if (rk->fail) continue;
    if (rk != first && rank_failed(rk) && !s->killed && !rk->timed_out) say_end(s, rk, first);
    int c = ty_rl_rank_exit(rk->exit_code, rk->term_signal);
    if (c > code) code = c;
  }
  if (first) code = ty_rl_rank_exit(first->exit_code, first->term_signal);
  if (fail) return fail;
  if (s->stdout_broken) return 128 + SIGPIPE;
  if (timed_out) {
    msg(s, "job %" PRIu64 ": a rank reached the time limit and was killed", s->o->job_id);
    return TY_RL_EXIT_TIMEOUT;
  }
  return code;
}

/* The session of this process, kept reachable until exit (see the end of
 * ty_rl_session_run): a thread-pool read may still hold it. */
static rl_session *volatile live_session; /* volatile: a store never read is not elided */

int ty_rl_session_run(const ty_rl_session_opts *o) {
  rl_session *s = ty_xcalloc(1, sizeof *s);
  live_session = s;
  s->o = o;
  if (uv_loop_init(&s->loop) != 0) {
    free(s);
    live_session = NULL;
    return TY_RL_EXIT_IO;
  }
  s->n = s->live = o->n;
  s->ranks = ty_xcalloc(o->n ? o->n : 1, sizeof *s->ranks);
  uv_timer_init(&s->loop, &s->stdin_retry);
  s->stdin_retry.data = s;
  for (size_t i = 0; i < o->n; i++)
    init_rank(s, &s->ranks[i], &o->tasks[i]);
  start_signals(s);
  set_raw(s);
  for (size_t i = 0; i < o->n; i++)
    start_attach(&s->ranks[i]);
  if (s->live > 0) uv_run(&s->loop, UV_RUN_DEFAULT);
  restore_tty(s);
  int code = verdict(s);
  fflush(stdout);
  /* The loop is not closed: a read of a terminal stdin may still be blocked
   * in the thread pool, and the process is about to exit anyway. */
  return code;
}
