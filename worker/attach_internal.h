/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The interactive task I/O's state, shared by attach.c (an iotask's life,
 * its clients and its output) and attach_input.c (what clients send to the
 * task: stdin, signals, window sizes). The rest of the worker sees only
 * the opaque ty__iotask and ty__ioreg (worker_internal.h). Everything here
 * lives on the worker's loop thread.
 */
#ifndef TY_WORKER_ATTACH_INTERNAL_H
#define TY_WORKER_ATTACH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/token/token.h"
#include "worker/worker_internal.h"

#define CHUNK (64u * 1024u)

enum { STREAM_STDOUT = 1, STREAM_STDERR = 2 };

typedef struct ring_chunk {
  struct ring_chunk *next;
  uint32_t stream;
  size_t len;
  uint8_t data[];
} ring_chunk;

typedef struct client {
  struct client *next;
  ty_rpc_conn *conn;
  uint64_t request_id;
  int64_t attach_us; /* arrived this long after the task's start (< 0: it waited) */
  bool owner;
} client;

/* One write to the task's stdin; answered when it completes. */
typedef struct in_write {
  uv_write_t req;
  struct in_write *next;
  ty__iotask *io;
  ty_rpc_conn *conn; /* NULL once the connection closed */
  uint64_t request_id;
  uint8_t data[];
} in_write;

typedef struct out_chan {
  uv_pipe_t pipe;
  ty__iotask *io;
  uint32_t stream;
  bool active; /* open and not yet at EOF */
  bool reading;
} out_chan;

struct ty__iotask {
  ty__iotask *next;
  ty__ioreg *reg;
  uint64_t job_id;
  uint32_t rank;
  uint8_t key[TY_TOKEN_KEY_LEN];
  bool has_key, pty, detach;
  bool master_owned; /* master_fd belongs to out[0].pipe */
  int slave_fd, master_fd, log_fd;
  int pipe_fds[3]; /* the task's ends of its stdio pipes until it started; -1: none */
  out_chan out[2]; /* stdout, stderr; with a pty only out[0] (the master) */
  uv_pipe_t in;    /* stdin, without a pty */
  uv_shutdown_t in_shutdown;
  bool in_active; /* stdin can take bytes */
  in_write *writes;
  uv_timer_t life_timer;  /* waiting for the first attach, or an owner's return */
  uv_timer_t drain_timer; /* after the exit: gives up on an EOF that never comes */
  ty__iotask_hooks hooks;
  client *clients;
  int owners;
  bool had_client, free_running, spawned, exited, timed_out, done, closing;
  int exit_code, term_signal;
  uint64_t bytes_read, bytes_at_check;
  bool read_restarted; /* reading (re)started since the last drain check */
  ring_chunk *ring_head, *ring_tail;
  size_t ring_bytes;
  int open_handles;
  uint64_t launch_ns, create_ns, spawned_ns, first_output_ns, exit_ns; /* uv_hrtime; 0 = not yet */
  char buf[CHUNK];
};

struct ty__ioreg {
  uv_loop_t *loop;
  char *node;
  const ty_tasks *tasks;   /* the task records, to tell an ended task from one to come */
  ty__attach_waits *waits; /* attaches that came before their task (attach_wait.c) */
  ty__iotask *head;
  bool destroying;
};

/* io's task is killed (the hooks' kill) and io's output runs free; why is
 * logged and becomes the task's end reason (`trainctl show`, history:
 * "rank 0 killed by signal 15 (SIGTERM): its rlaunch went away ..."). */
void ty__iotask_kill(ty__iotask *io, const char *why);
/* Closes one of an iotask's handles unless closed or closing already; the
 * last close frees a closing iotask. */
void ty__iotask_close_handle(uv_handle_t *h);
/* The running, not closing, iotask of (job_id, rank) in reg, or NULL. */
ty__iotask *ty__ioreg_find(ty__ioreg *reg, uint64_t job_id, uint32_t rank);

#endif
