/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by the files of worker/: the protobuf conversions
 * (convert.c is the only file that touches generated protobuf types) and the
 * metrics glue. Encoders return a heap buffer the caller frees with free();
 * decoders return TY_EPROTO for bytes that are not the expected message.
 */
#ifndef TY_WORKER_WORKER_INTERNAL_H
#define TY_WORKER_WORKER_INTERNAL_H

#include "lib/metrics/metrics.h"
#include "lib/rpc/rpc.h"
#include "worker/worker.h"

/* A decoded LaunchTaskRequest: `spec` borrows from the decoded message, which
 * ty__launch_free() releases. */
typedef struct ty__launch {
  ty_task_spec spec;
  void *pb;
} ty__launch;
int ty__decode_launch(const uint8_t *p, size_t n, ty__launch *out);
void ty__launch_free(ty__launch *l);

int ty__decode_kill(const uint8_t *p, size_t n, uint64_t *out_job_id, int *out_signal,
                    uint32_t *out_grace_s);

/* What RegisterNode and Heartbeat say about this node. */
typedef struct ty__node_status {
  const ty_worker_inventory *inv;
  const char *name;
  const char *io_addr;
  ty_tasks *tasks;
} ty__node_status;
int ty__encode_register(const ty__node_status *st, uint8_t **out, size_t *out_len);
int ty__decode_register_response(const uint8_t *p, size_t n, uint32_t *out_heartbeat_ms);
int ty__encode_heartbeat(const char *node, uint32_t running, uint8_t **out, size_t *out_len);
int ty__encode_task_update(const ty_task_report *r, uint8_t **out, size_t *out_len);

typedef struct ty__read_log {
  uint64_t job_id;
  uint32_t rank;
  uint64_t offset;
  bool follow;
} ty__read_log;
int ty__decode_read_log(const uint8_t *p, size_t n, ty__read_log *out);
int ty__encode_log_chunk(uint32_t rank, uint64_t offset, const uint8_t *data, size_t len,
                         uint8_t **out, size_t *out_len);

/* ---- interactive attach (attach.c; codecs in convert.c) ---- */

typedef struct ty__attach_req {
  uint64_t job_id;
  uint32_t rank;
  bool owner, replay;
} ty__attach_req;
int ty__decode_attach(const uint8_t *p, size_t n, ty__attach_req *out);

/* Borrows `data` from the decoded message, released by ty__attach_input_free. */
typedef struct ty__attach_input {
  uint64_t job_id;
  uint32_t rank;
  const uint8_t *data;
  size_t len;
  bool eof, kill;
  int signal;
  uint32_t rows, cols;
  void *pb;
} ty__attach_input;
int ty__decode_attach_input(const uint8_t *p, size_t n, ty__attach_input *out);
void ty__attach_input_free(ty__attach_input *in);

typedef struct ty__attach_output {
  uint32_t rank, stream; /* 1 stdout, 2 stderr */
  const uint8_t *data;
  size_t len;
  bool replayed, exited, timed_out;
  int exit_code, term_signal;
} ty__attach_output;
int ty__encode_attach_output(const ty__attach_output *o, uint8_t **out, size_t *out_len);

/* The stdio of one interactive task: pipes (or a pty) read by the worker, a
 * ring buffer of recent output, attached clients. It outlives its task
 * record: it is freed once the task ended, all its output was read and
 * delivered, and no client is attached (or nobody attached in time). */
typedef struct ty__iotask ty__iotask;
/* All iotasks of a worker; owned by ty_tasks. */
typedef struct ty__ioreg ty__ioreg;

ty__ioreg *ty__ioreg_create(uv_loop_t *loop, const char *node);
/* Closes every iotask (their tasks are not touched); frees once closed. */
void ty__ioreg_destroy(ty__ioreg *reg);
ty__ioreg *ty__tasks_ioreg(ty_tasks *t);

/* What the iotask may do to its task while it runs (task.c). */
typedef struct ty__iotask_hooks {
  void (*signal)(void *ud, int sig); /* to the task's process group */
  void (*kill)(void *ud);            /* SIGTERM, SIGKILL after the grace */
  void *ud;
} ty__iotask_hooks;

/* Prepares the stdio of `spec` (which must be interactive): fills stdio[3]
 * for uv_spawn (pipes, or the pty's slave), using null_fd as the stdin of
 * ranks that get none. log_fd is duplicated: output is also appended to the
 * rank's log. Errors: TY_EIO (pty), with a message in err. */
int ty__iotask_create(ty__ioreg *reg, const ty_task_spec *spec, int null_fd, int log_fd,
                      uv_stdio_container_t stdio[3], char *err, size_t err_len,
                      ty__iotask **out_io);
/* After uv_spawn: rc 0 = the task runs (hooks become active), else the
 * iotask is discarded. */
void ty__iotask_spawned(ty__iotask *io, int rc, const ty__iotask_hooks *hooks);
/* The task ended; the hooks are dropped. Output still unread is delivered
 * before the clients learn the exit. */
void ty__iotask_exited(ty__iotask *io, int exit_code, int term_signal, bool timed_out);

/* The I/O server's entry points (io.c): Attach and AttachInput requests,
 * and a connection's write queue draining or the connection closing. */
void ty__io_attach(ty_tasks *t, ty_rpc_conn *c, const ty_rpc_msg *m);
void ty__io_attach_input(ty_tasks *t, ty_rpc_conn *c, const ty_rpc_msg *m);
void ty__io_conn_drained(ty_tasks *t, ty_rpc_conn *c);
void ty__io_conn_closed(ty_tasks *t, ty_rpc_conn *c);

/* Worker metrics: registers the families on `m` and refreshes the gauges from
 * `tasks` and `inv` before each scrape. Owned by the caller (destroy). */
typedef struct ty__worker_stats ty__worker_stats;
ty__worker_stats *ty__worker_stats_create(ty_metrics *m, ty_tasks *tasks,
                                          const ty_worker_inventory *inv);
void ty__worker_stats_destroy(ty__worker_stats *s);

#endif
