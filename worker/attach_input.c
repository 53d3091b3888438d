/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What attached clients send to an interactive task (AttachInput): bytes
 * and EOF for its stdin, a signal, a kill, a new window size for its pty.
 * Only a connection attached to the task (attach.c) may send them. A
 * request with bytes is answered once they are written to the pipe or the
 * pty master, or could not be.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "worker/attach_internal.h"
#include "worker/worker_internal.h"

static void reply(ty_rpc_conn *c, uint64_t request_id, int status, const char *msg) {
  if (c) (void)ty_rpc_reply(c, request_id, status, status ? msg : NULL, NULL, 0);
}

static void on_in_written(uv_write_t *req, int status) {
  in_write *w = container_of(req, in_write, req);
  ty__iotask *io = w->io;
  for (in_write **p = &io->writes; *p; p = &(*p)->next) {
    if (*p == w) {
      *p = w->next;
      break;
    }
  }
  char msg[TY_ERR_LEN] = "";
  if (status < 0) { /* uv_strerror allocates, and leaks, for a code it does not know, such as 0 */
    char why[128];
    snprintf(msg, sizeof msg, "stdin of job %" PRIu64 " rank %" PRIu32 " is closed: %s", io->job_id,
             io->rank, uv_strerror_r(status, why, sizeof why));
  }
  reply(w->conn, w->request_id, status < 0 ? TY_ECLOSED : 0, msg);
  free(w);
}

static void on_in_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  ty__iotask *io = container_of(req, ty__iotask, in_shutdown);
  ty__iotask_close_handle((uv_handle_t *)&io->in);
}

/* Writes to the task's stdin (pipe or pty master); answers when written.
 * EOF closes a pipe, or sends the terminal's EOF character to a pty. */
static void write_input(ty__iotask *io, ty_rpc_conn *c, uint64_t rid, const ty_attach_input *in) {
  if (!io->in_active) {
    char msg[TY_ERR_LEN];
    snprintf(msg, sizeof msg, "stdin of job %" PRIu64 " rank %" PRIu32 " is closed", io->job_id,
             io->rank);
    reply(c, rid, TY_ECLOSED, msg);
    return;
  }
  uv_stream_t *dst = io->pty ? (uv_stream_t *)&io->out[0].pipe : (uv_stream_t *)&io->in;
  size_t n = in->len + (in->eof && io->pty ? 1 : 0);
  in_write *w = malloc(sizeof *w + (n ? n : 1)); /* n is the client's */
  if (!w) {
    reply(c, rid, TY_ENOMEM, "no memory to buffer the input for the task's stdin");
    return;
  }
  *w = (in_write){.next = io->writes, .io = io, .conn = c, .request_id = rid};
  if (in->len) memcpy(w->data, in->data, in->len);
  if (in->eof && io->pty) w->data[in->len] = 0x04; /* VEOF: ^D */
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
  int rc = n ? uv_write(&w->req, dst, &b, 1, on_in_written) : 0;
  if (rc != 0 || n == 0) {
    free(w);
    reply(c, rid, rc ? TY_ECLOSED : 0, "cannot write to the task's stdin");
  } else {
    io->writes = w;
  }
  if (in->eof && !io->pty) {
    io->in_active = false;
    if (uv_shutdown(&io->in_shutdown, (uv_stream_t *)&io->in, on_in_shutdown) != 0)
      ty__iotask_close_handle((uv_handle_t *)&io->in);
  }
}

static void apply_input(ty__iotask *io, ty_rpc_conn *c, uint64_t rid, const ty_attach_input *in) {
  if (in->signal < 0 || in->signal > 64) {
    reply(c, rid, TY_EINVAL, "signal: not a signal number (1-64)");
    return;
  }
  if (io->pty && in->rows && in->cols && io->out[0].active) {
    struct winsize ws = {.ws_row = (unsigned short)in->rows, .ws_col = (unsigned short)in->cols};
    if (ioctl(io->master_fd, TIOCSWINSZ, &ws) != 0)
      ty_debug("job %" PRIu64 ": TIOCSWINSZ: %s", io->job_id, strerror(errno));
  }
  if (in->signal && io->hooks.signal) io->hooks.signal(io->hooks.ud, in->signal);
  if (in->kill) ty__iotask_kill(io, "killed at the attached client's request");
  if (in->len || in->eof)
    write_input(io, c, rid, in);
  else
    reply(c, rid, 0, NULL);
}

void ty__io_attach_input(ty__ioreg *reg, ty_rpc_conn *c, const ty_rpc_msg *m) {
  ty_attach_input in;
  void *owner = NULL;
  char msg[TY_ERR_LEN];
  if (ty__decode_attach_input(m->payload, m->payload_len, &in, &owner) != 0) {
    ty_rpc_reply(c, m->request_id, TY_EPROTO, "AttachInputRequest: malformed payload", NULL, 0);
    return;
  }
  ty__iotask *io = reg ? ty__ioreg_find(reg, in.job_id, in.rank) : NULL;
  bool attached = false;
  for (client *cl = io ? io->clients : NULL; cl; cl = cl->next)
    attached |= cl->conn == c;
  if (attached) {
    apply_input(io, c, m->request_id, &in);
  } else {
    snprintf(msg, sizeof msg,
             "AttachInput: this connection is not attached to job %" PRIu64 " rank %" PRIu32,
             in.job_id, in.rank);
    ty_rpc_reply(c, m->request_id, TY_EPERM, msg, NULL, 0);
  }
  ty_wire_free(owner);
}
