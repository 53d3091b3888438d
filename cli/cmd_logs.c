/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl logs: asks the controller where each rank ran and for each
 * rank's task token (GetTaskLocations; traind gives tokens only to the
 * job's owner and operators), then streams ReadLog with the token straight
 * from each worker's I/O port — the controller is never on the data path.
 *
 * All streams share one private libuv loop. Without -f the ranks are read one
 * after another, so each rank's output stays together; with -f they all
 * stream at once and lines interleave as they come. With several ranks (and
 * no --rank) each line is prefixed "R: " like `srun --label`; a rank's partial
 * line is held back until its newline so prefixes never land mid-line.
 *
 * A requeued job has run more than once, maybe on other nodes: its runs are
 * printed in order, each under a line "==> run N (node X, started T) <==",
 * each rank's output of a run read from the log on the node that ran it.
 * A rank that ran on one node more than once has one log there, where the
 * worker marked each run after the first with its TY_LOG_RUN_MARK line: a
 * run's part is from its marker (the log's start for run 1) to the next
 * marker. With -f the earlier runs are printed, then the current one
 * followed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_internal.h"
#include "proto/methods.h"

typedef struct logs_run logs_run;

typedef struct log_stream {
  logs_run *run;
  const ty_task_location *loc;
  ty_buf partial; /* prefix or section mode: bytes after the last newline */
  bool follow;    /* the current run's stream under -f */
  bool section;   /* only loc->run's part of the log (the job ran more than once) */
  bool in_run;    /* section: in loc->run's part now */
  bool past;      /* section: its part ended (the next run's marker) */
  bool ended;     /* finish() ran */
  int status;     /* END status or transport error */
  char *message;  /* owned */
} log_stream;

struct logs_run {
  uv_loop_t loop;
  const ty__ctl *ctl;
  uint64_t job_id;
  bool prefix, runs;   /* runs: several runs, each under its marker line */
  uint32_t marked_run; /* the run whose marker line was printed last */
  log_stream *streams;
  size_t n, next; /* next: the stream to start when reading one at a time */
};

static void start_next(logs_run *r);

/* Whether line[0..len) is a worker's run marker; *out_run its run. */
static bool run_marker(const char *line, size_t len, uint32_t *out_run) {
  size_t mark = strlen(TY_LOG_RUN_MARK), end = strlen(TY_LOG_RUN_MARK_END);
  if (len <= mark + end || memcmp(line, TY_LOG_RUN_MARK, mark) != 0 ||
      memcmp(line + len - end, TY_LOG_RUN_MARK_END, end) != 0)
    return false;
  char *after = NULL;
  unsigned long run = strtoul(line + mark, &after, 10);
  if (after == line + mark || *after != ' ' || run > UINT32_MAX) return false;
  *out_run = (uint32_t)run;
  return true;
}

/* One line of the log (without its newline; nl: it had one). */
static void line_out(log_stream *s, const char *line, size_t len, bool nl) {
  uint32_t run;
  if (s->section && run_marker(line, len, &run)) {
    if (run == s->loc->run)
      s->in_run = true;
    else if (s->in_run)
      s->in_run = false, s->past = true;
    return;
  }
  if (s->section && !s->in_run) return;
  if (s->run->prefix)
    printf("%u: %.*s\n", s->loc->rank, (int)len, line);
  else
    printf("%.*s%s", (int)len, line, nl ? "\n" : "");
}

static void emit(log_stream *s, const uint8_t *p, size_t n) {
  if (!s->run->prefix && !s->section) {
    fwrite(p, 1, n, stdout);
    return;
  }
  ty_buf_append(&s->partial, p, n);
  size_t start = 0;
  for (size_t i = 0; i < s->partial.len; i++) {
    if (s->partial.data[i] != '\n') continue;
    line_out(s, (const char *)s->partial.data + start, i - start, true);
    start = i + 1;
  }
  ty_buf_consume(&s->partial, start);
}

static void flush_partial(log_stream *s) {
  if (s->partial.len) line_out(s, (const char *)s->partial.data, s->partial.len, false);
  ty_buf_consume(&s->partial, s->partial.len);
  fflush(stdout);
}

/* A run after the first whose part of the log was never found: its
 * rank never started there, or the log's cap cut its marker. */
static void note_missing_run(const log_stream *s) {
  if (!s->section || s->in_run || s->past || s->status != 0 || s->loc->run <= 1) return;
  fprintf(stderr,
          "trainctl: run %" PRIu32 " of rank %" PRIu32 ": no start of it in the log on %s"
          " (the rank never started there, or the log was cut: trainworkerd --log-max-size)\n",
          s->loc->run, s->loc->rank, s->loc->node);
}

static void finish(log_stream *s, ty_rpc_conn *conn, int status, const char *message) {
  if (s->ended) return;
  s->ended = true;
  s->status = status;
  s->message = ty_strdup(message && *message ? message : ty_strerror(status));
  flush_partial(s);
  note_missing_run(s);
  if (conn) ty_rpc_close(conn);
  if (!s->follow) start_next(s->run);
}

static void on_answer(ty_rpc_conn *conn, int status, const ty_rpc_msg *msg, bool final, void *ud) {
  log_stream *s = ud;
  if (s->ended) return; /* its part of the log was read: closed */
  if (!final) {
    ty_buf data;
    ty_buf_init(&data);
    uint32_t rank;
    uint64_t off;
    if (ty_cli_decode_log_chunk(msg->payload, msg->payload_len, &rank, &off, &data) == 0)
      emit(s, data.data, data.len);
    fflush(stdout);
    ty_buf_close(&data);
    if (s->past) finish(s, conn, 0, NULL); /* the rest is later runs' */
    return;
  }
  if (msg)
    finish(s, conn, msg->status, msg->message);
  else
    finish(s, conn, status, NULL);
}

static void on_connected(ty_rpc_conn *conn, int status, void *ud) {
  log_stream *s = ud;
  if (status < 0) {
    finish(s, NULL, status, NULL);
    return;
  }
  ty_buf req;
  ty_buf_init(&req);
  uint64_t rid;
  int rc = ty_cli_encode_read_log(s->run->job_id, s->loc->rank, 0, s->follow, &req);
  /* Following, a quiet task may say nothing for hours: no idle timeout. */
  uint32_t idle = s->follow ? 0 : s->run->ctl->g.timeout_ms;
  if (rc == 0)
    rc = ty_rpc_call(conn, TY_M_READ_LOG, req.data, req.len, s->loc->token, s->loc->token_len, idle,
                     on_answer, s, &rid);
  ty_buf_close(&req);
  if (rc != 0) finish(s, conn, rc, NULL);
}

/* Whether streams [first, i) of r name node i's node already. */
static bool node_listed(const logs_run *r, size_t first, size_t i) {
  for (size_t k = first; k < i; k++)
    if (!strcmp(r->streams[k].loc->node, r->streams[i].loc->node)) return true;
  return false;
}

/* "==> run N (node X, started T) <==" before the first stream of run N
 * ("nodes X,Y" for the nodes of its several ranks). */
static void mark_run(logs_run *r, const log_stream *s) {
  uint32_t run = s->loc->run;
  if (!r->runs || run == r->marked_run) return;
  r->marked_run = run;
  size_t first = (size_t)(s - r->streams), end = first, distinct = 0;
  for (; end < r->n && r->streams[end].loc->run == run; end++)
    distinct += !node_listed(r, first, end);
  char when[64];
  ty_cli_format_time(s->loc->start_ms, 'T', when, sizeof when);
  printf("==> run %" PRIu32 " (node%s ", run, distinct > 1 ? "s" : "");
  for (size_t i = first, listed = 0; i < end; i++)
    if (!node_listed(r, first, i)) printf("%s%s", listed++ ? "," : "", r->streams[i].loc->node);
  printf(", started %s) <==\n", when);
  fflush(stdout);
}

static void start(log_stream *s) {
  mark_run(s->run, s);
  char *host = NULL;
  int port = 0;
  char err[TY_ERR_LEN] = "";
  int rc = ty_cli_parse_addr("io_addr", s->loc->io_addr, 0, &host, &port, err, sizeof err);
  if (rc == 0 && port == 0) rc = TY_EINVAL;
  ty_rpc_conn_opts opts = {0};
  if (rc == 0)
    rc = ty_rpc_connect(&s->run->loop, host, port, &opts, s->run->ctl->g.timeout_ms, on_connected,
                        s);
  free(host);
  if (rc != 0) finish(s, NULL, rc, NULL);
}

/* The next stream, or with -f at the current run all of them at once. */
static void start_next(logs_run *r) {
  if (r->next >= r->n) return;
  if (!r->streams[r->next].follow) {
    start(&r->streams[r->next++]);
    return;
  }
  while (r->next < r->n)
    start(&r->streams[r->next++]);
}

/* Reports each failed stream; the exit code is 1 if any failed. */
static int report(const logs_run *r) {
  int code = 0;
  for (size_t i = 0; i < r->n; i++) {
    const log_stream *s = &r->streams[i];
    if (s->status == 0) continue;
    char run[32] = "";
    if (r->runs) snprintf(run, sizeof run, " (run %" PRIu32 ")", s->loc->run);
    if (s->status < 0 && s->status > -4096) /* a libuv error: the worker was not reached */
      ty__ctl_err("rank %u%s: cannot read its log from %s at %s: %s", s->loc->rank, run,
                  s->loc->node, s->loc->io_addr, s->message);
    else
      ty__ctl_err("rank %u%s on %s: %s", s->loc->rank, run, s->loc->node, s->message);
    code = TY_CLI_EXIT_ERROR;
  }
  return code;
}

/* Streams locs[n] (earlier runs first, then the current run's `current`
 * last ones, followed with -f). */
static int stream_all(const ty__ctl *c, uint64_t id, bool follow,
                      const ty_task_location *const *locs, size_t n, size_t current) {
  logs_run r = {.ctl = c, .job_id = id, .n = n, .runs = current < n};
  for (size_t i = 1; i < n && !r.prefix; i++)
    r.prefix = locs[i]->rank != locs[0]->rank;
  if (uv_loop_init(&r.loop) != 0) {
    ty__ctl_err("cannot start an event loop");
    return TY_CLI_EXIT_ERROR;
  }
  r.streams = ty_xcalloc(n, sizeof *r.streams);
  for (size_t i = 0; i < n; i++)
    r.streams[i] = (log_stream){.run = &r,
                                .loc = locs[i],
                                .follow = follow && i >= n - current,
                                .section = r.runs,
                                .in_run = locs[i]->run <= 1};
  start_next(&r);
  uv_run(&r.loop, UV_RUN_DEFAULT);
  uv_loop_close(&r.loop);
  int code = report(&r);
  for (size_t i = 0; i < n; i++)
    free(r.streams[i].message), ty_buf_close(&r.streams[i].partial);
  free(r.streams);
  return code;
}

/* ---- where the ranks ran ------------------------------------------------------ */

/* With -f a pending job is waited for (like `kubectl logs -f` on a starting
 * pod); without, there is nothing to show yet but its earlier runs' output
 * when it was requeued. */
static int locate_or_wait(ty__ctl *c, const ty_cli_logs_args *a, uint64_t id,
                          ty_task_locations *l) {
  bool told = false;
  for (;;) {
    int code = ty__ctl_locate(c, id, true, l);
    if (code || l->n || (l->n_earlier && !a->follow)) return code;
    int state = l->state;
    ty_task_locations_close(l);
    if (state != TY_JOB_PENDING) {
      ty__ctl_err("job %" PRIu64 " has no output: it never ran (%s)", id, ty_job_state_name(state));
      return TY_CLI_EXIT_ERROR;
    }
    if (!a->follow) {
      ty__ctl_err("job %" PRIu64 " is PENDING and has no output yet (-f waits for it)", id);
      return TY_CLI_EXIT_ERROR;
    }
    if (!told)
      fprintf(stderr, "trainctl: job %" PRIu64 " is PENDING; waiting for it to start\n", id);
    told = true;
    nanosleep(&(struct timespec){1, 0}, NULL);
  }
}

/* The highest rank among ts[n], or 0. */
static uint32_t last_rank(const ty_task_location *ts, size_t n, uint32_t max) {
  for (size_t i = 0; i < n; i++)
    if (ts[i].rank > max) max = ts[i].rank;
  return max;
}

/* Appends the locations of ts[n] that --rank keeps to out. */
static void keep_rank(const ty_cli_logs_args *a, const ty_task_location *ts, size_t n,
                      const ty_task_location **out, size_t *out_n) {
  for (size_t i = 0; i < n; i++)
    if (a->rank < 0 || (int64_t)ts[i].rank == a->rank) out[(*out_n)++] = &ts[i];
}

/* The streams to read, earlier runs first; *out_current: how many of the
 * last are the current run's. 0 or an exit code after saying which ranks
 * exist. */
static int select_streams(const ty_cli_logs_args *a, uint64_t id, const ty_task_locations *l,
                          const ty_task_location ***out, size_t *out_n, size_t *out_current) {
  const ty_task_location **v = ty_xcalloc(l->n_earlier + l->n + 1, sizeof *v);
  size_t n = 0;
  keep_rank(a, l->earlier, l->n_earlier, v, &n);
  size_t before = n;
  keep_rank(a, l->tasks, l->n, v, &n);
  if (n == 0) {
    ty__ctl_err("job %" PRIu64 " has no rank %" PRId64 " (its ranks: 0-%u)", id, a->rank,
                last_rank(l->earlier, l->n_earlier, last_rank(l->tasks, l->n, 0)));
    free(v);
    return TY_CLI_EXIT_ERROR;
  }
  *out = v, *out_n = n, *out_current = n - before;
  return 0;
}

int ty__cmd_logs(ty__ctl *c, int argc, char **argv) {
  ty_cli_logs_args a;
  char err[TY_ERR_LEN] = "";
  if (ty_cli_parse_logs(argc, argv, &a, err, sizeof err) != 0) return ty__ctl_usage("logs", err);
  if (a.help) {
    fputs(ty__usage_logs, stdout);
    return 0;
  }
  ty_task_locations l = {0};
  const ty_task_location **locs = NULL;
  size_t n = 0, current = 0;
  uint64_t id;
  int code = ty__ctl_job_id(c, &a.ref, &id);
  if (code == 0) code = locate_or_wait(c, &a, id, &l);
  if (code == 0) code = select_streams(&a, id, &l, &locs, &n, &current);
  if (code == 0) code = stream_all(c, id, a.follow, locs, n, current);
  free(locs);
  ty_task_locations_close(&l);
  return code;
}
