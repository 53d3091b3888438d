/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/convert: the only place in daemon/ that touches generated protobuf
 * types. Decoders take request payload bytes and fill plain structs (TY_EPROTO
 * when the bytes are not the expected message); encoders append a response or
 * outgoing request to a ty_buf. Outputs are owned by the caller unless said.
 */
#ifndef TY_DAEMON_CONVERT_H
#define TY_DAEMON_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/daemon_internal.h"

/* Decoders copy what they keep with malloc (the request's sizes are the
 * client's) and answer TY_ENOMEM when that fails, TY_EPROTO when the bytes
 * are not the expected message; nothing is left to free on error. */

/* SubmitJobRequest -> spec (unvalidated) and the encoded Job, kept as the
 * job's stored spec. TY_EPROTO also when the request has no job. */
int ty__conv_submit(const uint8_t *p, size_t n, ty_job_spec *out_spec, uint8_t **out_blob,
                    size_t *out_blob_len);
/* Re-encodes a submitted Job with the defaults validation filled in (name,
 * queue, user, resources), so listings show what the job really asked for.
 * *out is a new buffer; TY_EPROTO when blob does not decode. */
int ty__conv_normalize(const uint8_t *blob, size_t n, const ty_job_spec *spec, uint8_t **out,
                       size_t *out_len);
/* A stored, encoded Job -> spec. */
int ty__conv_spec(const uint8_t *blob, size_t n, ty_job_spec *out_spec);

typedef struct ty_list_filter {
  int *states; size_t n_states;
  char *user, *queue;
  uint32_t limit;
} ty_list_filter;
int ty__conv_list_jobs_req(const uint8_t *p, size_t n, ty_list_filter *out);
void ty__list_filter_close(ty_list_filter *f);
/* GetJobRequest and GetTaskLocationsRequest carry only job_id. */
int ty__conv_job_id_req(const uint8_t *p, size_t n, uint64_t *out_id);
int ty__conv_cancel_req(const uint8_t *p, size_t n, uint64_t **out_ids, size_t *out_n,
                        char **out_user);

typedef struct ty_node_report {
  char *name;
  uint32_t cpus;
  uint64_t memory;
  uint32_t n_gpus;
  uint8_t *info; size_t info_len; /* gpus + topology, re-encoded */
  char *io_addr;
  ty_task_report *tasks; size_t n_tasks;
} ty_node_report;
int ty__conv_register_req(const uint8_t *p, size_t n, ty_node_report *out);
void ty__node_report_close(ty_node_report *r);
int ty__conv_heartbeat_req(const uint8_t *p, size_t n, char **out_node, uint32_t *out_running);
/* The report's reason is owned: ty__task_report_close. */
int ty__conv_task_update_req(const uint8_t *p, size_t n, ty_task_report *out);
void ty__task_report_close(ty_task_report *r);

/* Number of GPUs recorded in a node's info blob. */
uint32_t ty__conv_info_gpus(const uint8_t *info, size_t n);

typedef struct ty_event_copy {
  int64_t time_ms;
  int from_state, to_state;
  char *reason;
} ty_event_copy;

int ty__conv_submit_resp(uint64_t id, ty_buf *out);
int ty__conv_list_jobs_resp(ty_job *const *jobs, size_t n, ty_buf *out);
int ty__conv_get_job_resp(const ty_job *j, const ty_event_copy *ev, size_t n_ev, ty_buf *out);
int ty__conv_cancel_resp(const ty_cancel_result *res, size_t n, ty_buf *out);
int ty__conv_list_nodes_resp(ty_cluster_node *const *nodes, size_t n, ty_buf *out);
/* GetTaskLocationsRequest: want_tokens and user are for interactive attach. */
int ty__conv_task_locations_req(const uint8_t *p, size_t n, uint64_t *out_id,
                                bool *out_want_tokens, char **out_user);
/* `tokens` (NULL = none) holds n_ranks tokens of `token_len` bytes each. */
int ty__conv_task_locations_resp(const ty_job *j, const uint8_t *tokens, size_t token_len,
                                 ty_buf *out);
int ty__conv_register_resp(uint32_t heartbeat_ms, ty_buf *out);

int ty__conv_launch_req(const ty_task_spec *t, ty_buf *out);
int ty__conv_kill_req(uint64_t job_id, int sig, uint32_t grace_s, ty_buf *out);

#endif
