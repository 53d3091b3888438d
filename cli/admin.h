/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The testable core of trainctl's scheduler commands (queue, node drain and
 * resume, job hold/release/priority/move/checkpoint, why, share): request
 * encoders and answer decoders (cli/convert_admin.c, the only one of these
 * files that sees generated types) and table/JSON rendering
 * (cli/format_admin.c). Like cli.h: plain structs, no sockets.
 *
 * Ownership: decoded structs own their strings; free them with the matching
 * _free/_close. Encoders borrow their arguments and append to `out`.
 */
#ifndef TY_CLI_ADMIN_H
#define TY_CLI_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/cli.h"

/* Queues are the wire model's ty_queue_info; ty_cli_queues_free closes an
 * array of them. */
void ty_cli_queues_free(ty_queue_info *qs, size_t n);

typedef struct ty_cli_explain {
  uint64_t job_id;
  int state;
  char *reason;
  uint32_t position, pending_total, nodes_needed, nodes_fit;
  double priority, f_tier, f_age, f_fairshare, f_size, f_priority;
  double fairshare, usage, usage_norm, share;
  char **node_names, **node_whys; /* n_nodes each */
  size_t n_nodes;
  int64_t est_start_ms;
  uint64_t reserved_job;
} ty_cli_explain;
void ty_cli_explain_close(ty_cli_explain *e);

typedef struct ty_cli_share {
  char *queue, *user; /* user "" = the queue's row */
  double share, usage, usage_norm, factor, gpu_s, cpu_s;
} ty_cli_share;
void ty_cli_shares_free(ty_cli_share *s, size_t n);

/* ---- requests ------------------------------------------------------------- */
/* action: create, update, delete; settings: "key=value". */
int ty_cli_encode_update_queue(const char *name, const char *user, const char *action,
                               char *const *settings, size_t n, ty_buf *out);
int ty_cli_encode_update_node(const char *name, const char *user, const char *action,
                              const char *reason, ty_buf *out);
int ty_cli_encode_update_job(uint64_t id, const char *user, const char *action,
                             int32_t priority, const char *queue, ty_buf *out);

/* ---- answers (TY_EPROTO when they do not decode) ---------------------------- */
int ty_cli_decode_queues(const uint8_t *p, size_t n, ty_queue_info **out, size_t *out_n);
int ty_cli_decode_update_queue(const uint8_t *p, size_t n, ty_queue_info *out);
int ty_cli_decode_explain(const uint8_t *p, size_t n, ty_cli_explain *out);
int ty_cli_decode_shares(const uint8_t *p, size_t n, ty_cli_share **out, size_t *out_n,
                         double *out_halflife_s);
/* UpdateNodeResponse: the node's state and reason (owned). */
int ty_cli_decode_update_node(const uint8_t *p, size_t n, int *out_state, char **out_reason);
/* UpdateJobResponse: the job after the change. */
int ty_cli_decode_update_job(const uint8_t *p, size_t n, ty_cli_jobinfo *out);

/* ---- command lines --------------------------------------------------------------
 * Queue options to settings: --tier N, --share W, --max-running N, --max-gpus N,
 * --max-gpus-per-user N, --preemptible, --no-preemptible, --default-time D,
 * --max-time D, --state S. Positional arguments go to *out_name (exactly one).
 * Values are checked by the controller, which names the bad one. */
typedef struct ty_cli_queue_args {
  char *name;
  char **settings; size_t n_settings;
  bool json, help;
} ty_cli_queue_args;
int ty_cli_parse_queue_args(int argc, char **argv, bool want_name, ty_cli_queue_args *out,
                            char *err, size_t err_len);
void ty_cli_queue_args_close(ty_cli_queue_args *a);

/* ---- output ----------------------------------------------------------------------- */
int ty_cli_render_queues(const ty_queue_info *qs, size_t n, bool json, ty_buf *out);
int ty_cli_render_explain(const ty_cli_explain *e, int64_t now_ms, bool json, ty_buf *out);
int ty_cli_render_shares(const ty_cli_share *s, size_t n, double halflife_s, bool json,
                         ty_buf *out);

#endif
