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
  ty_buf partial; /* prefix mode: bytes after the last newline */
  int status;     /* END status or transport error */
  char *message;  /* owned */
} log_stream;

struct logs_run {
  uv_loop_t loop;
  const ty__ctl *ctl;
  uint64_t job_id;
  bool follow, prefix;
  log_stream *streams;
  size_t n, next; /* next: the stream to start when reading one at a time */
};

static void start_next(logs_run *r);

static void emit(log_stream *s, const uint8_t *p, size_t n) {
  if (!s->run->prefix) {
    fwrite(p, 1, n, stdout);
    return;
  }
  ty_buf_append(&s->partial, p, n);
  size_t start = 0;
  for (size_t i = 0; i < s->partial.len; i++) {
    if (s->partial.data[i] != '\n') continue;
    printf("%u: %.*s\n", s->loc->rank, (int)(i - start), (const char *)s->partial.data + start);
    start = i + 1;
  }
  ty_buf_consume(&s->partial, start);
}

static void flush_partial(log_stream *s) {
  if (s->partial.len)
    printf("%u: %.*s\n", s->loc->rank, (int)s->partial.len, (const char *)s->partial.data);
  ty_buf_consume(&s->partial, s->partial.len);
  fflush(stdout);
}

static void finish(log_stream *s, ty_rpc_conn *conn, int status, const char *message) {
  s->status = status;
  s->message = ty_strdup(message && *message ? message : ty_strerror(status));
  flush_partial(s);
  if (conn) ty_rpc_close(conn);
  if (!s->run->follow) start_next(s->run);
}

static void on_answer(ty_rpc_conn *conn, int status, const ty_rpc_msg *msg, bool final, void *ud) {
  log_stream *s = ud;
  if (!final) {
    ty_buf data;
    ty_buf_init(&data);
    uint32_t rank;
    uint64_t off;
    if (ty_cli_decode_log_chunk(msg->payload, msg->payload_len, &rank, &off, &data) == 0)
      emit(s, data.data, data.len);
    fflush(stdout);
    ty_buf_close(&data);
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
  int rc = ty_cli_encode_read_log(s->run->job_id, s->loc->rank, 0, s->run->follow, &req);
  /* Following, a quiet task may say nothing for hours: no idle timeout. */
  uint32_t idle = s->run->follow ? 0 : s->run->ctl->g.timeout_ms;
  if (rc == 0)
    rc = ty_rpc_call(conn, TY_M_READ_LOG, req.data, req.len, s->loc->token, s->loc->token_len, idle,
                     on_answer, s, &rid);
  ty_buf_close(&req);
  if (rc != 0) finish(s, conn, rc, NULL);
}

static void start(log_stream *s) {
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

static void start_next(logs_run *r) {
  if (r->next < r->n) start(&r->streams[r->next++]);
}

/* Reports each failed stream; the exit code is 1 if any failed. */
static int report(const logs_run *r) {
  int code = 0;
  for (size_t i = 0; i < r->n; i++) {
    const log_stream *s = &r->streams[i];
    if (s->status == 0) continue;
    if (s->status < 0 && s->status > -4096) /* a libuv error: the worker was not reached */
      ty__ctl_err("rank %u: cannot read its log from %s at %s: %s", s->loc->rank, s->loc->node,
                  s->loc->io_addr, s->message);
    else
      ty__ctl_err("rank %u on %s: %s", s->loc->rank, s->loc->node, s->message);
    code = TY_CLI_EXIT_ERROR;
  }
  return code;
}

static int stream_all(const ty__ctl *c, uint64_t id, bool follow, const ty_task_location *ts,
                      size_t n) {
  logs_run r = {.ctl = c, .job_id = id, .follow = follow, .prefix = n > 1, .n = n};
  if (uv_loop_init(&r.loop) != 0) {
    ty__ctl_err("cannot start an event loop");
    return TY_CLI_EXIT_ERROR;
  }
  r.streams = ty_xcalloc(n, sizeof *r.streams);
  for (size_t i = 0; i < n; i++)
    r.streams[i] = (log_stream){.run = &r, .loc = &ts[i]};
  if (follow)
    while (r.next < r.n)
      start_next(&r);
  else
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
 * pod); without, there is nothing to show yet. */
static int locate_or_wait(ty__ctl *c, const ty_cli_logs_args *a, uint64_t id,
                          ty_task_locations *l) {
  bool told = false;
  for (;;) {
    int code = ty__ctl_locate(c, id, true, l);
    if (code || l->n) return code;
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

/* Keeps only --rank R; 0 or an exit code after saying which ranks exist. */
static int select_rank(const ty_cli_logs_args *a, uint64_t id, ty_task_locations *l) {
  if (a->rank < 0) return 0;
  ty_task_location *ts = l->tasks;
  for (size_t i = 0; i < l->n; i++) {
    if ((int64_t)ts[i].rank != a->rank) continue;
    ty_task_location keep = ts[i];
    ts[i] = ts[0], ts[0] = keep;
    return 0;
  }
  ty__ctl_err("job %" PRIu64 " has no rank %" PRId64 " (its ranks: 0-%u)", id, a->rank,
              l->n ? ts[l->n - 1].rank : 0);
  return TY_CLI_EXIT_ERROR;
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
  uint64_t id;
  int code = ty__ctl_job_id(c, &a.ref, &id);
  if (code == 0) code = locate_or_wait(c, &a, id, &l);
  if (code == 0) code = select_rank(&a, id, &l);
  if (code == 0) code = stream_all(c, id, a.follow, l.tasks, a.rank >= 0 ? 1 : l.n);
  ty_task_locations_close(&l);
  return code;
}
