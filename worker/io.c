/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The task I/O server: ReadLog streams DIR/jobs/JOB/rank<R>.log to clients
 * straight from the worker (the controller is never on the data path), to
 * holders of the rank's task token (the job's owner and operators get it
 * from traind's GetTaskLocations; the worker keeps the job's key next to
 * its logs).
 * Attach and AttachInput (interactive tasks) are handed to attach.c.
 *
 * Each stream reads the file with uv_fs_read on libuv's thread pool, 64 KiB
 * at a time, and sends one LogChunk per read. It pauses while the
 * connection's write queue is above HIGH_WATER (resumed by the drain
 * callback, and re-checked by the 100 ms poll timer in case a drain is never
 * signalled), so a slow reader costs the worker at most HIGH_WATER bytes.
 * With `follow`, EOF while the task runs re-polls the file every 100 ms; EOF
 * on a read that began after the task had ended finishes with END 0, so no
 * byte written before the exit is lost. A log cut to its head and tail
 * while a stream reads it (logs.c) moves the stream to where its next byte
 * is now, or to the cut's marker when that byte was cut.
 *
 * A stream is freed once it is done, its read is not in flight and its timer
 * has closed; the connection may be gone long before that.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/rpc/rpc.h"
#include "lib/token/token.h"
#include "proto/methods.h"
#include "worker/worker_internal.h"

#define CHUNK (64u * 1024u)
#define HIGH_WATER (1024u * 1024u)
#define POLL_MS 100u
#define READ_LOG_MAX_OFFSET (UINT64_C(1) << 62) /* ReadLog's offset: no log is this long */

typedef struct io_conn io_conn;

typedef struct log_stream {
  struct log_stream *next;
  ty_worker_io *io;
  io_conn *ic; /* NULL once the connection closed */
  uint64_t request_id;
  ty_read_log req;
  uint64_t offset;
  uint32_t gen; /* the log's cut generation `offset` refers to (logs.c) */
  int fd;
  uv_fs_t fs;
  uv_timer_t poll;
  bool reading; /* fs request in flight */
  bool done;
  bool timer_closed;
  bool was_running; /* the task ran when the current read began */
  uint8_t buf[CHUNK];
} log_stream;

struct io_conn {
  io_conn *next;
  ty_worker_io *io;
  ty_rpc_conn *c;
  log_stream *streams;
};

struct ty_worker_io {
  uv_loop_t *loop;
  ty_tasks *tasks;
  ty_rpc_server *server;
  io_conn *conns;
  int live_streams;
  bool destroying;
  ty_ratelog refusal_log; /* refusals logged per peer address (log_refusal) */
};

static void pump(log_stream *st);

/* A refused request's line, at most TY_RATELOG_BURST per peer address per
 * 10 s: a peer sending requests without a token once wrote 3 MB of them. */
static void log_refusal(ty_worker_io *io, ty_rpc_conn *c, ty_log_level level, const char *what) {
  char addr[64];
  snprintf(addr, sizeof addr, "%s", ty_rpc_peer(c));
  char *colon = strrchr(addr, ':');
  if (colon) *colon = '\0';
  uint32_t dropped = 0;
  if (!ty_ratelog_admit(&io->refusal_log, addr, ty_mono_ms(), &dropped)) return;
  if (dropped)
    ty_log(level, "task I/O: refused %s from %s [%" PRIu32 " more refusals not logged]", what,
           ty_rpc_peer(c), dropped);
  else
    ty_log(level, "task I/O: refused %s from %s", what, ty_rpc_peer(c));
}

/* ---- lifetime --------------------------------------------------------------- */

static void maybe_free_io(ty_worker_io *io) {
  if (io->destroying && !io->conns && io->live_streams == 0) free(io);
}

static void unlink_stream(log_stream *st) {
  if (!st->ic) return;
  for (log_stream **p = &st->ic->streams; *p; p = &(*p)->next) {
    if (*p == st) {
      *p = st->next;
      break;
    }
  }
  st->ic = NULL;
}

static void maybe_free_stream(log_stream *st, ty_worker_io *io) {
  if (!st->done || st->reading || !st->timer_closed) return;
  if (st->fd >= 0) close(st->fd);
  free(st);
  io->live_streams--;
  maybe_free_io(io);
}

static void on_poll_closed(uv_handle_t *h) {
  log_stream *st = h->data;
  st->timer_closed = true;
  maybe_free_stream(st, st->io);
}

/* Ends the stream. END always goes through ty_rpc_stream_end, which also
 * releases the request; it sends nothing when the peer cancelled or the
 * connection is closing. */
static void finish(log_stream *st, int status, const char *message) {
  if (st->done) return;
  st->done = true;
  if (st->ic) (void)ty_rpc_stream_end(st->ic->c, st->request_id, status, message);
  unlink_stream(st);
  uv_close((uv_handle_t *)&st->poll, on_poll_closed);
}

/* ---- reading ----------------------------------------------------------------- */

static void on_poll(uv_timer_t *h) {
  pump(h->data);
}

static void send_chunk(log_stream *st, size_t n) {
  ty_buf frame;
  ty_buf_init(&frame);
  int rc = ty__encode_log_chunk(st->req.rank, st->offset, st->buf, n, &frame);
  if (rc == 0) rc = ty_rpc_stream_send(st->ic->c, st->request_id, frame.data, frame.len);
  ty_buf_close(&frame);
  if (rc != 0) {
    /* Cancelled by the peer, or the connection is going away. */
    finish(st, 0, NULL);
    return;
  }
  st->offset += n;
}

/* The log was cut while a read was in flight: moves the stream to where its
 * bytes are now and says so. */
static bool cut_meanwhile(log_stream *st) {
  uint32_t gen = st->gen;
  ty_tasks_log_follow(st->io->tasks, st->req.job_id, st->req.rank, &gen, &st->offset);
  bool cut = gen != st->gen;
  st->gen = gen;
  return cut;
}

static void on_read(uv_fs_t *req) {
  log_stream *st = container_of(req, log_stream, fs);
  ty_worker_io *io = st->io;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  st->reading = false;
  if (st->done || !st->ic) {
    finish(st, 0, NULL);
    maybe_free_stream(st, io);
    return;
  }
  if (n < 0) {
    char msg[TY_ERR_LEN];
    snprintf(msg, sizeof msg, "reading log of job %" PRIu64 " rank %" PRIu32 ": %s", st->req.job_id,
             st->req.rank, uv_strerror((int)n));
    finish(st, TY_EIO, msg);
  } else if (n > 0 && cut_meanwhile(st)) {
    pump(st); /* the bytes read may straddle the cut: read again where they are now */
  } else if (n > 0) {
    send_chunk(st, (size_t)n);
    pump(st);
  } else if (st->req.follow && st->was_running) {
    uv_timer_start(&st->poll, on_poll, POLL_MS, 0);
  } else {
    finish(st, 0, NULL);
  }
}

static void pump(log_stream *st) {
  if (st->done || st->reading || !st->ic) return;
  ty_worker_io *io = st->io;
  if (ty_rpc_write_queued(st->ic->c) >= HIGH_WATER) {
    /* The drain callback resumes us; the timer is a safety net. */
    uv_timer_start(&st->poll, on_poll, POLL_MS, 0);
    return;
  }
  uv_timer_stop(&st->poll);
  /* A cut since the last read moved the bytes after our offset (logs.c). */
  ty_tasks_log_follow(io->tasks, st->req.job_id, st->req.rank, &st->gen, &st->offset);
  st->was_running = ty_tasks_is_running(io->tasks, st->req.job_id, st->req.rank);
  uv_buf_t b = uv_buf_init((char *)st->buf, CHUNK);
  int rc = uv_fs_read(io->loop, &st->fs, st->fd, &b, 1, (int64_t)st->offset, on_read);
  if (rc != 0) {
    finish(st, TY_EIO, "cannot read the log file");
    return;
  }
  st->reading = true;
}

/* ---- requests ----------------------------------------------------------------- */

/* The client sent CANCEL (or the connection is closing): stop reading. */
static void on_cancel(ty_rpc_conn *c, uint64_t request_id, void *ud) {
  (void)c;
  (void)request_id;
  finish(ud, 0, NULL);
}

static void start_read_log(io_conn *ic, const ty_rpc_msg *m) {
  ty_worker_io *io = ic->io;
  ty_read_log req;
  if (ty__decode_read_log(m->payload, m->payload_len, &req) != 0) {
    ty_rpc_stream_end(ic->c, m->request_id, TY_EPROTO, "ReadLogRequest: malformed payload");
    return;
  }
  /* A file offset is an off_t (from 2^63 pump() read from the start) and
   * offset + a chunk must be one too: no log is 2^62 bytes long. */
  if (req.offset > READ_LOG_MAX_OFFSET) {
    char msg[TY_ERR_LEN];
    snprintf(msg, sizeof msg, "offset: %" PRIu64 " is beyond any log", req.offset);
    ty_rpc_stream_end(ic->c, m->request_id, TY_EINVAL, msg);
    return;
  }
  /* Logs are the job owner's and operators': traind gives them the token.
   * A job that never ran here has no key (and no log). */
  uint8_t key[TY_TOKEN_KEY_LEN];
  char why[256];
  if (ty_tasks_job_key(io->tasks, req.job_id, key, sizeof key) != 0) {
    snprintf(why, sizeof why, "no log for job %" PRIu64 " rank %" PRIu32 " on node %s", req.job_id,
             req.rank, ty_tasks_node(io->tasks));
    ty_rpc_stream_end(ic->c, m->request_id, TY_ENOTFOUND, why);
    return;
  }
  if (ty_token_verify(key, m->credential, m->credential_len, req.job_id, req.rank, ty_now_ms(), why,
                      sizeof why) != 0) {
    char msg[TY_ERR_LEN];
    snprintf(msg, sizeof msg,
             "ReadLog of job %" PRIu64 " rank %" PRIu32 " on node %s: permission "
             "denied: %s",
             req.job_id, req.rank, ty_tasks_node(io->tasks), why);
    log_refusal(io, ic->c, TY_LOG_WARN, msg);
    ty_rpc_stream_end(ic->c, m->request_id, TY_EPERM, msg);
    return;
  }
  ty_rpc_conn_proven(ic->c); /* a good token: not the first evicted at the address cap */
  char path[4096];
  int fd = -1;
  if (ty_tasks_log_path(io->tasks, req.job_id, req.rank, path, sizeof path) == 0)
    fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    char msg[TY_ERR_LEN];
    snprintf(msg, sizeof msg, "no log for job %" PRIu64 " rank %" PRIu32 " on node %s", req.job_id,
             req.rank, ty_tasks_node(io->tasks));
    ty_rpc_stream_end(ic->c, m->request_id, TY_ENOTFOUND, msg);
    return;
  }
  log_stream *st = ty_xcalloc(1, sizeof *st);
  st->io = io;
  st->ic = ic;
  st->request_id = m->request_id;
  st->req = req;
  st->offset = req.offset;
  st->gen = ty_tasks_log_gen(io->tasks, req.job_id, req.rank);
  st->fd = fd;
  uv_timer_init(io->loop, &st->poll);
  st->poll.data = st;
  st->next = ic->streams;
  ic->streams = st;
  io->live_streams++;
  if (ty_rpc_set_cancel_cb(ic->c, m->request_id, on_cancel, st) != 0) {
    finish(st, 0, NULL);
    return;
  }
  pump(st);
}

static void on_request(ty_rpc_conn *c, const ty_rpc_msg *m, void *ud) {
  (void)ud;
  io_conn *ic = ty_rpc_get_ud(c);
  char err[TY_ERR_LEN];
  if (m->kind != TY_RPC_REQUEST) {
    return;
  } else if (ty__check_request(m->method, m->payload, m->payload_len, err, sizeof err) != 0) {
    char what[TY_ERR_LEN + 80];
    snprintf(what, sizeof what, "%.64s: %s", m->method, err);
    log_refusal(ic->io, c, TY_LOG_INFO, what);
    ty_rpc_reply(c, m->request_id, TY_EINVAL, err, NULL, 0);
  } else if (strcmp(m->method, TY_M_READ_LOG) == 0) {
    start_read_log(ic, m);
  } else if (strcmp(m->method, TY_M_ATTACH) == 0) {
    ty__io_attach(ty__tasks_ioreg(ic->io->tasks), c, m);
  } else if (strcmp(m->method, TY_M_ATTACH_INPUT) == 0) {
    ty__io_attach_input(ty__tasks_ioreg(ic->io->tasks), c, m);
  } else {
    char msg[TY_ERR_LEN];
    snprintf(msg, sizeof msg, "unknown method \"%.100s\" on the task I/O port of node %s",
             m->method, ty_tasks_node(ic->io->tasks));
    ty_rpc_reply(c, m->request_id, TY_ENOTFOUND, msg, NULL, 0);
  }
}

/* ---- connections -------------------------------------------------------------- */

static void on_drain(ty_rpc_conn *c, void *ud) {
  io_conn *ic = ud;
  for (log_stream *st = ic->streams; st; st = st->next)
    pump(st);
  ty__io_conn_drained(ty__tasks_ioreg(ic->io->tasks), c);
}

static void on_close(ty_rpc_conn *c, int reason, void *ud) {
  (void)reason;
  (void)ud;
  io_conn *ic = ty_rpc_get_ud(c);
  ty_worker_io *io = ic->io;
  while (ic->streams)
    finish(ic->streams, 0, NULL);
  /* Once destroying, the task registry may be gone: destroy told attach.c. */
  if (!io->destroying) ty__io_conn_closed(ty__tasks_ioreg(io->tasks), c);
  for (io_conn **p = &io->conns; *p; p = &(*p)->next) {
    if (*p == ic) {
      *p = ic->next;
      break;
    }
  }
  free(ic);
  maybe_free_io(io);
}

static void on_accept(ty_rpc_server *srv, ty_rpc_conn *c, void *ud) {
  (void)srv;
  ty_worker_io *io = ud;
  io_conn *ic = ty_xcalloc(1, sizeof *ic);
  ic->io = io;
  ic->c = c;
  ic->next = io->conns;
  io->conns = ic;
  ty_rpc_set_ud(c, ic);
  ty_rpc_set_drain_cb(c, on_drain, ic);
}

int ty_worker_io_create(uv_loop_t *loop, const char *host, int port, ty_tasks *tasks,
                        const ty_rpc_limits *limits, ty_worker_io **out_io) {
  if (!loop || !host || !tasks || port < 0 || port > 65535) return TY_EINVAL;
  ty_worker_io *io = ty_xcalloc(1, sizeof *io);
  io->loop = loop;
  io->tasks = tasks;
  ty_rpc_conn_opts opts = {
      .on_request = on_request, .on_close = on_close, .ud = io, .write_high_water = HIGH_WATER};
  if (limits) opts.limits = *limits;
  int rc = ty_rpc_server_create(loop, host, port, &opts, on_accept, io, &io->server);
  if (rc != 0) {
    free(io);
    return rc;
  }
  *out_io = io;
  return 0;
}

int ty_worker_io_port(const ty_worker_io *io) {
  return ty_rpc_server_port(io->server);
}

void ty_worker_io_destroy(ty_worker_io *io) {
  if (!io || io->destroying) return;
  io->destroying = true;
  /* Interactive clients forget their connections now, while the tasks are
   * still there; the connections' close callbacks come later. */
  for (io_conn *ic = io->conns; ic; ic = ic->next)
    ty__io_conn_closed(ty__tasks_ioreg(io->tasks), ic->c);
  ty_rpc_server_destroy(io->server);
  io->server = NULL;
  maybe_free_io(io);
}
