/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Interactive task I/O (rlaunch, `trainctl attach`): the worker holds the
 * stdio of an interactive task — pipes, or a pseudo-terminal with --pty —
 * and streams it to clients that attach on the I/O port with a task token.
 *
 * Invariants:
 *   - Output is read only while someone takes it: an attached client, or
 *     "free running" (the owner detached, or nobody came in time), when it
 *     goes to the ring buffer and the log only. Before the first attach
 *     nothing is read, so a fast task's first bytes (and its exit) wait in
 *     the pipe for rlaunch instead of being lost.
 *   - Backpressure: reading stops while any attached connection's write
 *     queue is above its high-water mark (1 MiB on the I/O port) and resumes
 *     from the drain callback. The task then blocks in write(2); the worker
 *     holds at most the high-water mark plus one 64 KiB chunk per client.
 *   - Every byte read is appended to the rank's log (so `trainctl logs`
 *     works for interactive jobs) and to a ring of recent output (RING_CAP)
 *     that a late attach replays.
 *   - The owner (rlaunch) going away kills the task after OWNER_GRACE_MS,
 *     unless the job was submitted with --detach; observers (`trainctl
 *     attach`) never do. An owner that never attaches within ATTACH_WAIT_MS
 *     counts as gone.
 *   - A client's stream ends with an AttachOutput carrying `exited`, sent
 *     only after the task ended AND its output reached EOF, then END 0. A
 *     pty's EOF is the kernel's (EIO once drained), not libuv's hang-up
 *     shortcut (drain_pty), so no output comes after the exit status.
 *   - An attach that comes before its task (LaunchTask and the client's
 *     Attach travel on different connections) waits for the launch, with
 *     the client's deadline (attach_wait.c), instead of failing.
 *   - An iotask outlives its task record and is freed once that end was
 *     delivered and its handles closed.
 *
 * A node runs a handful of interactive tasks, so lists are plain. What
 * clients send to the task (stdin, signals, window sizes) is
 * attach_input.c's; the structures both files use are in
 * attach_internal.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/token/token.h"
#include "worker/attach_internal.h"
#include "worker/worker_internal.h"

#define RING_CAP (1024u * 1024u)
#define ATTACH_WAIT_MS 30000u
#define OWNER_GRACE_MS 3000u
#define DRAIN_CHECK_MS 1000u

static void update_reading(ty__iotask *io);
static void maybe_done(ty__iotask *io);

/* ---- lifetime ---------------------------------------------------------------- */

static void resume_attach(void *ud, ty_rpc_conn *c, const ty_rpc_msg *m, int launch_rc,
                          const char *launch_err, int64_t waited_us);

ty__ioreg *ty__ioreg_create(uv_loop_t *loop, const char *node, const ty_tasks *tasks) {
  ty__ioreg *reg = ty_xcalloc(1, sizeof *reg);
  reg->loop = loop;
  reg->node = ty_strdup(node);
  reg->tasks = tasks;
  reg->waits = ty__attach_waits_create(loop, node, resume_attach, reg);
  return reg;
}

static void maybe_free_reg(ty__ioreg *reg) {
  if (!reg->destroying || reg->head) return;
  free(reg->node);
  free(reg);
}

/* The task's ends of its pty or pipes: the worker keeps none once it started. */
static void close_task_ends(ty__iotask *io) {
  if (io->slave_fd >= 0) close(io->slave_fd);
  io->slave_fd = -1;
  for (int i = 0; i < 3; i++) {
    if (io->pipe_fds[i] >= 0) close(io->pipe_fds[i]);
    io->pipe_fds[i] = -1;
  }
}

static void free_io(ty__iotask *io) {
  ty__ioreg *reg = io->reg;
  for (ty__iotask **p = &reg->head; *p; p = &(*p)->next) {
    if (*p == io) {
      *p = io->next;
      break;
    }
  }
  while (io->ring_head) {
    ring_chunk *c = io->ring_head;
    io->ring_head = c->next;
    free(c);
  }
  if (io->log_fd >= 0) close(io->log_fd);
  if (io->master_fd >= 0 && !io->master_owned) close(io->master_fd);
  close_task_ends(io);
  free(io);
  maybe_free_reg(reg);
}

static void on_handle_closed(uv_handle_t *h) {
  ty__iotask *io = h->data;
  if (--io->open_handles == 0 && io->closing) free_io(io);
}

void ty__iotask_close_handle(uv_handle_t *h) {
  if (h->type != UV_UNKNOWN_HANDLE && !uv_is_closing(h)) uv_close(h, on_handle_closed);
}

static void init_handle(ty__iotask *io, uv_handle_t *h) {
  h->data = io;
  io->open_handles++;
}

/* Closes every handle; the last close callback frees io. */
static void close_io(ty__iotask *io) {
  if (io->closing) return;
  io->closing = true;
  io->hooks = (ty__iotask_hooks){0};
  io->out[0].active = io->out[1].active = io->in_active = false;
  ty__iotask_close_handle((uv_handle_t *)&io->out[0].pipe);
  ty__iotask_close_handle((uv_handle_t *)&io->out[1].pipe);
  ty__iotask_close_handle((uv_handle_t *)&io->in);
  ty__iotask_close_handle((uv_handle_t *)&io->life_timer);
  ty__iotask_close_handle((uv_handle_t *)&io->drain_timer);
  if (io->open_handles == 0) free_io(io);
}

/* ---- clients ------------------------------------------------------------------- */

static void on_attach_wait(uv_timer_t *h);

void ty__iotask_kill(ty__iotask *io, const char *why) {
  ty_info("job %" PRIu64 " rank %" PRIu32 ": killing the task: %s", io->job_id, io->rank, why);
  if (io->hooks.kill) io->hooks.kill(io->hooks.ud, why);
  io->free_running = true; /* let it write (and die) instead of blocking */
}

static void on_owner_grace(uv_timer_t *h) {
  ty__iotask *io = h->data;
  if (io->owners > 0 || io->done) return;
  ty__iotask_kill(io, "its rlaunch went away (the attached client left; no --detach)");
  update_reading(io);
}

/* The last owner left before the task's output ended. */
static void owner_gone(ty__iotask *io) {
  if (io->detach) {
    ty_info("job %" PRIu64 " rank %" PRIu32 ": client detached; the task keeps running", io->job_id,
            io->rank);
    io->free_running = true;
    return;
  }
  uv_timer_start(&io->life_timer, on_owner_grace, OWNER_GRACE_MS, 0);
}

/* Forgets cl; `end` also ends its stream (releasing the request). */
static void remove_client(ty__iotask *io, client *cl, bool end) {
  for (client **p = &io->clients; *p; p = &(*p)->next) {
    if (*p == cl) {
      *p = cl->next;
      break;
    }
  }
  if (end) (void)ty_rpc_stream_end(cl->conn, cl->request_id, 0, NULL);
  if (cl->owner && --io->owners == 0 && !io->done && !io->closing) owner_gone(io);
  free(cl);
}

/* Sends one AttachOutput to cl; drops cl when its stream is gone. */
static void send_to(ty__iotask *io, client *cl, const ty_attach_output *o) {
  ty_buf b;
  ty_buf_init(&b);
  int rc = ty__encode_attach_output(o, &b);
  if (rc == 0) rc = ty_rpc_stream_send(cl->conn, cl->request_id, b.data, b.len);
  ty_buf_close(&b);
  if (rc != 0) remove_client(io, cl, true);
}

static void send_all(ty__iotask *io, const ty_attach_output *o) {
  for (client *cl = io->clients, *next; cl; cl = next) {
    next = cl->next;
    send_to(io, cl, o);
  }
}

/* Microseconds from the task's start to t_ns; 0 when either is unknown. */
static uint64_t since_spawn_us(const ty__iotask *io, uint64_t t_ns) {
  return t_ns && io->spawned_ns && t_ns > io->spawned_ns ? (t_ns - io->spawned_ns) / 1000u : 0;
}

/* The end of a client's stream: the exit (with the worker's timing), then END 0. */
static void finish_client(ty__iotask *io, client *cl) {
  ty_attach_output o = {.rank = io->rank,
                        .exited = true,
                        .exit_code = io->exit_code,
                        .term_signal = io->term_signal,
                        .timed_out = io->timed_out};
  o.timing = (ty_task_timing){
      .prepare_us = io->create_ns > io->launch_ns ? (io->create_ns - io->launch_ns) / 1000u : 0,
      .spawn_us = io->spawned_ns > io->create_ns ? (io->spawned_ns - io->create_ns) / 1000u : 0,
      .attach_us = cl->attach_us,
      .first_output_us = since_spawn_us(io, io->first_output_ns),
      .exit_us = since_spawn_us(io, io->exit_ns)};
  ty_buf b;
  ty_buf_init(&b);
  if (ty__encode_attach_output(&o, &b) == 0)
    (void)ty_rpc_stream_send(cl->conn, cl->request_id, b.data, b.len);
  ty_buf_close(&b);
  remove_client(io, cl, true);
}

static void on_client_cancel(ty_rpc_conn *c, uint64_t request_id, void *ud) {
  ty__iotask *io = ud;
  for (client *cl = io->clients; cl; cl = cl->next) {
    if (cl->conn == c && cl->request_id == request_id) {
      remove_client(io, cl, true);
      update_reading(io);
      return;
    }
  }
}

static void replay(ty__iotask *io, client *cl) {
  for (ring_chunk *c = io->ring_head; c; c = c->next) {
    ty_attach_output o = {
        .rank = io->rank, .stream = c->stream, .data = c->data, .len = c->len, .replayed = true};
    ty_rpc_conn *conn = cl->conn;
    send_to(io, cl, &o);
    bool still = false;
    for (client *k = io->clients; k; k = k->next)
      still |= k == cl && k->conn == conn;
    if (!still) return;
  }
}

static void attach_client(ty__iotask *io, ty_rpc_conn *c, const ty_attach_request *req,
                          uint64_t request_id, int64_t waited_us) {
  client *cl = ty_xcalloc(1, sizeof *cl);
  int64_t since = (int64_t)((uv_hrtime() - io->spawned_ns) / 1000u);
  *cl = (client){.next = io->clients,
                 .conn = c,
                 .request_id = request_id,
                 .owner = req->owner,
                 .attach_us = since - waited_us};
  io->clients = cl;
  io->had_client = true;
  if (req->owner) {
    io->owners++;
    uv_timer_stop(&io->life_timer);
  }
  ty_info("job %" PRIu64 " rank %" PRIu32 ": %s attached from %s", io->job_id, io->rank,
          req->owner ? "owner" : "observer", ty_rpc_peer(c));
  if (ty_rpc_set_cancel_cb(c, request_id, on_client_cancel, io) != 0) {
    remove_client(io, cl, true);
    return;
  }
  ty_attach_output hello = {.rank = io->rank}; /* attached: input is accepted now */
  send_to(io, cl, &hello);
  bool present = false;
  for (client *k = io->clients; k; k = k->next)
    present |= k == cl;
  if (present && req->replay) replay(io, cl);
  present = false;
  for (client *k = io->clients; k; k = k->next)
    present |= k == cl;
  if (present && io->done) finish_client(io, cl);
  update_reading(io);
  if (io->done && !io->clients) close_io(io);
}

/* ---- output ------------------------------------------------------------------------ */

static void ring_add(ty__iotask *io, uint32_t stream, const uint8_t *p, size_t n) {
  ring_chunk *c = ty_xmalloc(sizeof *c + n);
  *c = (ring_chunk){.stream = stream, .len = n};
  memcpy(c->data, p, n);
  if (io->ring_tail)
    io->ring_tail->next = c;
  else
    io->ring_head = c;
  io->ring_tail = c;
  io->ring_bytes += n;
  while (io->ring_bytes > RING_CAP && io->ring_head != io->ring_tail) {
    ring_chunk *old = io->ring_head;
    io->ring_head = old->next;
    io->ring_bytes -= old->len;
    free(old);
  }
}

/* Appends to the rank's log; the page cache makes this cheap enough for the
 * loop thread, and a failing log must not stop the stream. */
static void log_append(ty__iotask *io, const uint8_t *p, size_t n) {
  while (io->log_fd >= 0 && n > 0) {
    ssize_t w = write(io->log_fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      ty_warn("job %" PRIu64 " rank %" PRIu32 ": cannot append to the log: %s", io->job_id,
              io->rank, strerror(errno));
      close(io->log_fd);
      io->log_fd = -1;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

static bool pressured(const ty__iotask *io) {
  for (const client *cl = io->clients; cl; cl = cl->next)
    if (ty_rpc_write_pressure(cl->conn)) return true;
  return false;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  ty__iotask *io = h->data;
  *buf = uv_buf_init(io->buf, sizeof io->buf);
}

static void close_out(out_chan *ch) {
  ch->active = false;
  ch->reading = false;
  ty__iotask_close_handle((uv_handle_t *)&ch->pipe);
  if (ch->io->pty) ch->io->in_active = false; /* the master was also stdin */
}

/* Output bytes of ch: to the ring, the log and every client. */
static void take_output(ty__iotask *io, out_chan *ch, const uint8_t *p, size_t n) {
  if (!io->first_output_ns) io->first_output_ns = uv_hrtime();
  io->bytes_read += (uint64_t)n;
  ring_add(io, ch->stream, p, n);
  log_append(io, p, n);
  ty_attach_output o = {.rank = io->rank, .stream = ch->stream, .data = p, .len = n};
  send_all(io, &o);
}

/* libuv calls a short read with POLLHUP the end of a stream. True of a
 * pipe (the read emptied it and no writer is left), but a pty master's
 * line discipline hands out only what it has taken in so far: what the
 * task wrote last may still wait in the terminal's buffers (up to 64 KiB)
 * when the hang-up comes. So the master is read to the kernel's own end,
 * EIO (everything read), before the output counts as ended; this is the
 * task's last output, bounded by those buffers, so it is read at once. */
static void drain_pty(ty__iotask *io, out_chan *ch) {
  for (;;) {
    ssize_t r = read(io->master_fd, io->buf, sizeof io->buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return; /* EIO: all read; EAGAIN: someone opened the terminal again */
    take_output(io, ch, (const uint8_t *)io->buf, (size_t)r);
  }
}

static void on_out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  out_chan *ch = container_of((uv_pipe_t *)s, out_chan, pipe);
  ty__iotask *io = ch->io;
  if (n == 0 || !ch->active) return;
  if (n > 0) {
    take_output(io, ch, (const uint8_t *)b->base, (size_t)n);
    update_reading(io);
    return;
  }
  /* EOF (a pty's only once drained), or EIO on a pty master once the
   * terminal's last user is gone. */
  if (n != UV_EOF && n != UV_EIO)
    ty_warn("job %" PRIu64 " rank %" PRIu32 ": reading its output: %s", io->job_id, io->rank,
            uv_strerror((int)n));
  if (n == UV_EOF && io->pty) drain_pty(io, ch);
  close_out(ch);
  maybe_done(io);
}

static void update_reading(ty__iotask *io) {
  bool want = !io->closing && (io->clients || io->free_running) && !pressured(io);
  for (int i = 0; i < 2; i++) {
    out_chan *ch = &io->out[i];
    if (!ch->active) continue;
    if (want && !ch->reading) {
      ch->reading = uv_read_start((uv_stream_t *)&ch->pipe, on_alloc, on_out_read) == 0;
      io->read_restarted = true; /* the drain check's interval starts again */
    } else if (!want && ch->reading) {
      uv_read_stop((uv_stream_t *)&ch->pipe);
      ch->reading = false;
    }
  }
}

/* The task ended and its output reached EOF: tell every client. */
static void maybe_done(ty__iotask *io) {
  if (io->done || !io->exited || io->out[0].active || io->out[1].active) return;
  io->done = true;
  uv_timer_stop(&io->drain_timer);
  uv_timer_stop(&io->life_timer);
  while (io->clients)
    finish_client(io, io->clients);
  if (io->had_client || io->free_running) close_io(io);
}

/* Whether bytes wait unread in an open output channel (FIONREAD: a pipe's
 * bytes, a pty master's line discipline's). */
static bool output_waiting(const ty__iotask *io) {
  for (int i = 0; i < 2; i++) {
    int fd = -1, n = 0;
    const out_chan *ch = &io->out[i];
    if (ch->active && uv_fileno((const uv_handle_t *)&ch->pipe, &fd) == 0 &&
        ioctl(fd, FIONREAD, &n) == 0 && n > 0)
      return true;
  }
  return false;
}

/* After the exit, output that stops without an EOF (a daemonised grandchild
 * still holds the pipe) ends the stream after one silent check: a whole
 * interval read throughout (not paused for backpressure or begun by a late
 * attach meanwhile), no byte read, and none waiting. */
static void on_drain_check(uv_timer_t *h) {
  ty__iotask *io = h->data;
  bool reading = io->out[0].reading || io->out[1].reading;
  bool silent =
      reading && !io->read_restarted && io->bytes_read == io->bytes_at_check && !output_waiting(io);
  io->read_restarted = false;
  io->bytes_at_check = io->bytes_read;
  if (!silent) return;
  for (int i = 0; i < 2; i++)
    if (io->out[i].active) close_out(&io->out[i]);
  maybe_done(io);
}

static void on_attach_wait(uv_timer_t *h) {
  ty__iotask *io = h->data;
  if (io->had_client || io->done) return;
  if (io->detach)
    io->free_running = true;
  else if (!io->exited) {
    char why[128];
    snprintf(why, sizeof why, "no rlaunch attached within %u s of the start (no --detach)",
             ATTACH_WAIT_MS / 1000u);
    ty__iotask_kill(io, why);
  }
  io->free_running = true;
  update_reading(io);
}

/* ---- creation ---------------------------------------------------------------------------- */

/* The terminal is the task's, as sshd and login make it: owned by its
 * user, group tty, mode 0620, so a program that reopens it by name ($(tty):
 * gpg's pinentry, mesg, screen) can. A root worker only; openpty made it
 * root's 0600. Best effort: a task that never reopens it runs either way. */
static void give_terminal(const ty__iotask *io, const ty_task_spec *spec) {
  if (geteuid() != 0 || !spec->has_uid) return;
  const struct group *tty = getgrnam("tty");
  gid_t gid = tty ? tty->gr_gid : (gid_t)spec->gid;
  if (fchown(io->slave_fd, (uid_t)spec->uid, gid) != 0 ||
      fchmod(io->slave_fd, tty ? 0620 : 0600) != 0)
    ty_warn("task pseudo-terminal on node %s: cannot give it to uid %u: %s", io->reg->node,
            (unsigned)spec->uid, strerror(errno));
}

static int open_pty(ty__iotask *io, const ty_task_spec *spec, char *err, size_t err_len) {
  struct winsize ws = {
      .ws_row = (unsigned short)(spec->interactive.rows ? spec->interactive.rows : 24),
      .ws_col = (unsigned short)(spec->interactive.cols ? spec->interactive.cols : 80)};
  if (openpty(&io->master_fd, &io->slave_fd, NULL, NULL, &ws) != 0)
    return ty_errf(err, err_len, TY_EIO, "cannot open a pseudo-terminal on node %s: %s",
                   io->reg->node, strerror(errno));
  /* Other tasks spawned meanwhile must not inherit this terminal. */
  fcntl(io->master_fd, F_SETFD, FD_CLOEXEC);
  fcntl(io->slave_fd, F_SETFD, FD_CLOEXEC);
  give_terminal(io, spec);
  uv_pipe_init(io->reg->loop, &io->out[0].pipe, 0);
  init_handle(io, (uv_handle_t *)&io->out[0].pipe);
  int rc = uv_pipe_open(&io->out[0].pipe, io->master_fd);
  if (rc != 0)
    return ty_errf(err, err_len, TY_EIO, "cannot watch the pseudo-terminal on node %s: %s",
                   io->reg->node, uv_strerror(rc));
  io->master_owned = true;
  return 0;
}

/* One stdio channel, a socket pair as libuv's UV_CREATE_PIPE makes
 * (close-on-exec both ends): the worker's end opened in p, the task's in
 * io->pipe_fds[fd], handed to the start as an inherited fd -- so the task
 * starts without uv_spawn (worker/direct.c). */
static int open_pipe(ty__iotask *io, uv_pipe_t *p, int fd, char *err, size_t err_len) {
  int ends[2];
  uv_pipe_init(io->reg->loop, p, 0);
  init_handle(io, (uv_handle_t *)p);
  int rc = uv_socketpair(SOCK_STREAM, 0, ends, 0, 0);
  if (rc == 0) {
    io->pipe_fds[fd] = ends[0];
    rc = uv_pipe_open(p, ends[1]);
    if (rc != 0) close(ends[1]);
  }
  if (rc != 0)
    return ty_errf(err, err_len, TY_EIO, "cannot make the task's stdio pipes on node %s: %s",
                   io->reg->node, uv_strerror(rc));
  return 0;
}

static int prepare_pipes(ty__iotask *io, const ty_task_spec *spec, int null_fd,
                         uv_stdio_container_t stdio[3], char *err, size_t err_len) {
  int rc = 0;
  for (int i = 0; i < 2 && rc == 0; i++)
    rc = open_pipe(io, &io->out[i].pipe, 1 + i, err, err_len);
  bool input = spec->interactive.stdin_all || spec->rank == 0;
  if (rc == 0 && input) rc = open_pipe(io, &io->in, STDIN_FILENO, err, err_len);
  for (int i = 0; i < 3; i++)
    stdio[i] = (uv_stdio_container_t){.flags = UV_INHERIT_FD,
                                      .data.fd = io->pipe_fds[i] >= 0 ? io->pipe_fds[i] : null_fd};
  return rc;
}

int ty__iotask_create(ty__ioreg *reg, const ty_task_spec *spec, int null_fd, int log_fd,
                      uint64_t launch_ns, uv_stdio_container_t stdio[3], char *err, size_t err_len,
                      ty__iotask **out_io) {
  ty__iotask *io = ty_xcalloc(1, sizeof *io);
  io->reg = reg;
  io->job_id = spec->job_id;
  io->rank = spec->rank;
  io->pty = spec->interactive.pty;
  io->detach = spec->interactive.detach;
  io->has_key = spec->attach_key && spec->attach_key_len == TY_TOKEN_KEY_LEN;
  if (io->has_key) memcpy(io->key, spec->attach_key, TY_TOKEN_KEY_LEN);
  io->slave_fd = io->master_fd = -1;
  io->pipe_fds[0] = io->pipe_fds[1] = io->pipe_fds[2] = -1;
  io->launch_ns = launch_ns;
  io->create_ns = uv_hrtime();
  io->log_fd = fcntl(log_fd, F_DUPFD_CLOEXEC, 3);
  io->out[0] = (out_chan){.io = io, .stream = STREAM_STDOUT};
  io->out[1] = (out_chan){.io = io, .stream = STREAM_STDERR};
  uv_timer_init(reg->loop, &io->life_timer);
  init_handle(io, (uv_handle_t *)&io->life_timer);
  uv_timer_init(reg->loop, &io->drain_timer);
  init_handle(io, (uv_handle_t *)&io->drain_timer);
  io->next = reg->head;
  reg->head = io;
  int rc = 0;
  if (spec->interactive.pty) {
    rc = open_pty(io, spec, err, err_len);
    for (int i = 0; i < 3; i++)
      stdio[i] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = io->slave_fd};
  } else {
    rc = prepare_pipes(io, spec, null_fd, stdio, err, err_len);
  }
  if (rc != 0) {
    close_io(io);
    return rc;
  }
  *out_io = io;
  return 0;
}

void ty__iotask_spawned(ty__iotask *io, int rc, const ty__iotask_hooks *hooks) {
  close_task_ends(io);
  if (rc != 0) {
    close_io(io);
    return;
  }
  io->spawned = true;
  io->spawned_ns = uv_hrtime();
  io->hooks = *hooks;
  io->out[0].active = true;
  io->out[1].active = !io->pty;
  io->in_active = io->pty || io->in.type == UV_NAMED_PIPE;
  uv_timer_start(&io->life_timer, on_attach_wait, ATTACH_WAIT_MS, 0);
}

void ty__iotask_exited(ty__iotask *io, int exit_code, int term_signal, bool timed_out) {
  io->exited = true;
  io->exit_ns = uv_hrtime();
  io->timed_out = timed_out;
  io->exit_code = exit_code;
  io->term_signal = term_signal;
  io->hooks = (ty__iotask_hooks){0}; /* the pid may be reused from now on */
  if (!io->pty && io->in_active) {
    io->in_active = false;
    ty__iotask_close_handle((uv_handle_t *)&io->in);
  }
  uv_timer_start(&io->drain_timer, on_drain_check, DRAIN_CHECK_MS, DRAIN_CHECK_MS);
  maybe_done(io);
}

void ty__ioreg_destroy(ty__ioreg *reg) {
  if (!reg) return;
  reg->destroying = true;
  ty__attach_waits_destroy(reg->waits);
  reg->waits = NULL;
  for (ty__iotask *io = reg->head, *next; io; io = next) {
    next = io->next;
    while (io->clients)
      remove_client(io, io->clients, true);
    close_io(io);
  }
  maybe_free_reg(reg);
}

/* ---- the I/O server's entry points --------------------------------------------------------- */

ty__iotask *ty__ioreg_find(ty__ioreg *reg, uint64_t job_id, uint32_t rank) {
  for (ty__iotask *io = reg->head; io; io = io->next)
    if (io->job_id == job_id && io->rank == rank && io->spawned && !io->closing) return io;
  return NULL;
}

/* Answers an attach whose task is running here: token check, then the stream. */
static void admit(ty__iotask *io, ty_rpc_conn *c, const ty_rpc_msg *m, const ty_attach_request *req,
                  int64_t waited_us) {
  char msg[TY_ERR_LEN], why[TY_ERR_LEN] = "no attach key";
  if (!io->has_key || ty_token_verify(io->key, m->credential, m->credential_len, req->job_id,
                                      req->rank, ty_now_ms(), why, sizeof why) != 0) {
    snprintf(msg, sizeof msg, "attach to job %" PRIu64 " rank %" PRIu32 " refused: %s", req->job_id,
             req->rank, why);
    ty_warn("%s (from %s)", msg, ty_rpc_peer(c));
    ty_rpc_stream_end(c, m->request_id, TY_EPERM, msg);
    return;
  }
  ty_rpc_conn_proven(c); /* a good token: not the first evicted at the address cap */
  attach_client(io, c, req, m->request_id, waited_us);
}

/* Whether the attach's token is good for a job that ran here (its key is
 * in the job's directory): refused (answered) if not, so a client without
 * one learns nothing of the job's tasks on this node. A job with no key
 * here (none of its tasks ran here yet) is checked once its task starts
 * (admit). */
static bool token_refused(ty__ioreg *reg, ty_rpc_conn *c, const ty_rpc_msg *m,
                          const ty_attach_request *req) {
  uint8_t key[TY_TOKEN_KEY_LEN];
  char msg[TY_ERR_LEN], why[256];
  if (ty_tasks_job_key(reg->tasks, req->job_id, key, sizeof key) != 0 ||
      ty_token_verify(key, m->credential, m->credential_len, req->job_id, req->rank, ty_now_ms(),
                      why, sizeof why) == 0)
    return false;
  snprintf(msg, sizeof msg, "attach to job %" PRIu64 " rank %" PRIu32 " refused: %s", req->job_id,
           req->rank, why);
  ty_warn("%s (from %s)", msg, ty_rpc_peer(c));
  ty_rpc_stream_end(c, m->request_id, TY_EPERM, msg);
  return true;
}

/* No running interactive task: its launch failed (that error), or hold the
 * attach until it starts (wait_ms), unless this node already knows the task
 * (ended, or not interactive). The token is checked first. */
static void no_task(ty__ioreg *reg, ty_rpc_conn *c, const ty_rpc_msg *m,
                    const ty_attach_request *req, bool may_wait) {
  char msg[TY_ERR_LEN];
  ty_task_report known;
  if (token_refused(reg, c, m, req)) return;
  int rc = ty__attach_waits_failed(reg->waits, req->job_id, req->rank, msg, sizeof msg);
  if (rc == 0 && may_wait && req->wait_ms &&
      ty_tasks_get(reg->tasks, req->job_id, req->rank, &known) != 0) {
    rc = ty__attach_waits_add(reg->waits, c, m, req->job_id, req->rank, req->wait_ms, msg,
                              sizeof msg);
    if (rc == 0) return;
  }
  if (rc != 0) {
    ty_rpc_stream_end(c, m->request_id, rc, msg);
    return;
  }
  snprintf(msg, sizeof msg, "job %" PRIu64 " rank %" PRIu32 " has no interactive task on node %s",
           req->job_id, req->rank, reg->node);
  ty_rpc_stream_end(c, m->request_id, TY_ENOTFOUND, msg);
}

static void attach(ty__ioreg *reg, ty_rpc_conn *c, const ty_rpc_msg *m, bool may_wait,
                   int64_t waited_us) {
  ty_attach_request req;
  if (!reg || reg->destroying) {
    ty_rpc_stream_end(c, m->request_id, TY_ESTATE, "the worker is shutting down");
    return;
  }
  if (ty__decode_attach(m->payload, m->payload_len, &req) != 0) {
    ty_rpc_stream_end(c, m->request_id, TY_EPROTO, "AttachRequest: malformed payload");
    return;
  }
  if (req.wait_ms > TY__ATTACH_WAIT_MAX_MS) {
    char msg[TY_ERR_LEN];
    snprintf(msg, sizeof msg, "AttachRequest.wait_ms: %" PRIu32 " is more than the %u allowed",
             req.wait_ms, TY__ATTACH_WAIT_MAX_MS);
    ty_rpc_stream_end(c, m->request_id, TY_EINVAL, msg);
    return;
  }
  ty__iotask *io = ty__ioreg_find(reg, req.job_id, req.rank);
  if (io)
    admit(io, c, m, &req, waited_us);
  else
    no_task(reg, c, m, &req, may_wait);
}

void ty__io_attach(ty__ioreg *reg, ty_rpc_conn *c, const ty_rpc_msg *m) {
  attach(reg, c, m, true, 0);
}

/* A held attach whose task was launched, or failed to. */
static void resume_attach(void *ud, ty_rpc_conn *c, const ty_rpc_msg *m, int launch_rc,
                          const char *launch_err, int64_t waited_us) {
  ty__ioreg *reg = ud;
  if (launch_rc == 0) {
    attach(reg, c, m, false, waited_us);
    return;
  }
  ty_rpc_stream_end(c, m->request_id, launch_rc, launch_err);
}

void ty__io_launched(ty__ioreg *reg, uint64_t job_id, uint32_t rank, int rc, const char *err) {
  if (reg) ty__attach_waits_wake(reg->waits, job_id, rank, rc, err);
}

void ty__io_conn_drained(ty__ioreg *reg, ty_rpc_conn *c) {
  for (ty__iotask *io = reg ? reg->head : NULL; io; io = io->next)
    for (client *cl = io->clients; cl; cl = cl->next)
      if (cl->conn == c) {
        update_reading(io);
        break;
      }
}

void ty__io_conn_closed(ty__ioreg *reg, ty_rpc_conn *c) {
  if (reg) ty__attach_waits_conn_closed(reg->waits, c);
  for (ty__iotask *io = reg ? reg->head : NULL; io; io = io->next) {
    for (in_write *w = io->writes; w; w = w->next)
      if (w->conn == c) w->conn = NULL;
    for (client *cl = io->clients, *next; cl; cl = next) {
      next = cl->next;
      if (cl->conn == c) remove_client(io, cl, false);
    }
    update_reading(io);
  }
}
