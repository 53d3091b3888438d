/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/admin: the scheduler's operations (queues, node drains, job holds,
 * priorities and moves, why, shares). admin.c has the handlers and the pure
 * rules (queue settings, who may do what); convert_admin.c is the only place
 * here that touches their protobuf messages. Internal to daemon/.
 *
 * Ownership: decoded requests own their strings (ty__admin_req_close);
 * encoders borrow everything and append to `out`.
 */
#ifndef TY_DAEMON_ADMIN_H
#define TY_DAEMON_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/daemon_internal.h"

/* Any of the Update* requests, decoded. Unused fields are "" or 0. */
typedef struct ty_admin_req {
  char *name, *user, *action, *reason, *queue;
  char **settings; size_t n_settings;
  uint64_t job_id;
  int32_t priority;
} ty_admin_req;
void ty__admin_req_close(ty_admin_req *r);

int ty__conv_update_queue_req(const uint8_t *p, size_t n, ty_admin_req *out);
int ty__conv_update_node_req(const uint8_t *p, size_t n, ty_admin_req *out);
int ty__conv_update_job_req(const uint8_t *p, size_t n, ty_admin_req *out);

/* Queues with their live counts, as ListQueues shows them. */
int ty__conv_list_queues_resp(const ty_queue_info *qs, size_t n, ty_buf *out);
int ty__conv_update_queue_resp(const ty_queue_info *q, ty_buf *out);
int ty__conv_update_node_resp(const ty_cluster_node *nd, ty_buf *out);
int ty__conv_update_job_resp(const ty_job *j, ty_buf *out);
/* `nodes` names the indices in ex->nodes (the pass's node order). */
int ty__conv_explain_resp(const ty_job *j, const ty_sched_explain *ex, ty_cluster_node *const *nodes,
                          ty_buf *out);
/* gpu_s[i] and cpu_s[i] belong to rows[i]. */
int ty__conv_shares_resp(const ty_sched_share *rows, const double *gpu_s, const double *cpu_s,
                         size_t n, double halflife_s, ty_buf *out);

/* Re-encodes a stored Job with the spec's priority, queue and time limit
 * (after `job priority` or `job move`) into a new *out; TY_EPROTO when blob
 * does not decode. */
int ty__conv_respec(const uint8_t *blob, size_t n, const ty_job_spec *spec, uint8_t **out,
                    size_t *out_len);
/* NVLink island per GPU index from a node's info blob (Gpu.nvlink_island;
 * unknown = island 0, which means "one island"). */
void ty__conv_info_islands(const uint8_t *info, size_t n, uint8_t *out_islands);

/* ---- rules (admin.c) --------------------------------------------------------- */

/* What submission needs from the queue: it exists and is not deleted, it is
 * OPEN or PAUSED, the time limit is within its maximum (a job asking none
 * gets its default), the warning signal is valid. Fills spec defaults. */
int ty__sched_check_spec(ty_controller *ctl, ty_job_spec *spec, char *err, size_t len);

#endif
