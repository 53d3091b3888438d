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

/* Worker metrics: registers the families on `m` and refreshes the gauges from
 * `tasks` and `inv` before each scrape. Owned by the caller (destroy). */
typedef struct ty__worker_stats ty__worker_stats;
ty__worker_stats *ty__worker_stats_create(ty_metrics *m, ty_tasks *tasks,
                                          const ty_worker_inventory *inv);
void ty__worker_stats_destroy(ty__worker_stats *s);

#endif
