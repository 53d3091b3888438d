/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli: the scheduler commands (cli/format_admin.c, cli/convert_admin.c).
 * The testable core of trainctl's scheduler commands (queue, node drain and
 * resume, job hold/release/priority/move/checkpoint, why, share): request
 * encoders and answer decoders (cli/convert_admin.c, the only one of these
 * files that sees generated types) and table/JSON rendering
 * (cli/format_admin.c). Plain structs, no sockets.
 *
 * Ownership: decoded structs own their strings; free them with the matching
 * _free/_close. Encoders borrow their arguments and append to `out`.
 */
#ifndef TY_CLI_CLI_ADMIN_H
#define TY_CLI_CLI_ADMIN_H

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
  int64_t est_start_ms; /* 0 unless est_kind is NOW, LIMITS or PREEMPTION */
  int est_kind;         /* TY_CLI_EST_*: the numbers of scheduler.h's ty_sched_est_kind */
  bool est_lower_bound; /* "not before": jobs ahead may start first */
  char *est_note;       /* what the estimate assumes, or why there is none */
  char *wait;           /* why it waits, as a code ("Resources"); "" when not pending */
  uint64_t reserved_job;
  char name[48]; /* how the caller named an element ("7_8"); "" = job_id alone */
} ty_cli_explain;
enum {
  TY_CLI_EST_UNKNOWN = 0,
  TY_CLI_EST_NOW = 1,
  TY_CLI_EST_LIMITS = 2,
  TY_CLI_EST_PREEMPTION = 3
};
void ty_cli_explain_close(ty_cli_explain *e);

typedef struct ty_cli_share {
  char *queue, *user; /* user "" = the queue's row */
  double share, usage, usage_norm, factor, gpu_s, cpu_s;
} ty_cli_share;
void ty_cli_shares_free(ty_cli_share *s, size_t n);

/* ---- requests ------------------------------------------------------------- */
/* action: create, update, delete; settings: "key=value". */
/* The caller is not sent: traind takes it from the request's credential. */
int ty_cli_encode_update_queue(const char *name, const char *action, char *const *settings,
                               size_t n, ty_buf *out);
int ty_cli_encode_update_node(const char *name, const char *action, const char *reason,
                              ty_buf *out);
/* One UpdateJob change: the action and the value it takes (borrowed). */
typedef struct ty_cli_job_update {
  /* hold, release, priority, move, checkpoint, time, mem, nodes, layout, requeue, throttle,
   * name, dependency */
  const char *action;
  int32_t priority;           /* "priority" */
  const char *queue;          /* "move" */
  uint32_t time_limit_s;      /* "time" */
  int32_t time_delta_s;       /* "time": scontrol's +T / -T, seconds on the limit as it is */
  uint64_t mem_per_node;      /* "mem": bytes, 0 = no limit */
  uint32_t array_max_running; /* "throttle": an array's %N, 0 = no limit */
  uint32_t nodes;             /* "nodes": a pending job's node count */
  /* "layout": 0 leaves tasks or CPUs as they are; GPUs only with has_gpus */
  uint32_t tasks_per_node, cpus_per_task, gpus_per_node;
  bool has_gpus;
  const char *name;       /* "name" */
  const char *dependency; /* "dependency": sbatch's syntax, "" = none */
} ty_cli_job_update;
/* ref: a job, an array (every element that can take the action) or an
 * element. */
int ty_cli_encode_update_job(const ty_job_ref *ref, const ty_cli_job_update *u, ty_buf *out);
/* UpdateJob "signal": sig to ref's running tasks (cancel --signal), to
 * each task's batch script alone with batch_only (cancel -b). */
int ty_cli_encode_signal(const ty_job_ref *ref, int32_t sig, bool batch_only, ty_buf *out);

/* ---- answers (TY_EPROTO when they do not decode) ---------------------------- */
int ty_cli_decode_queues(const uint8_t *p, size_t n, ty_queue_info **out, size_t *out_n);
int ty_cli_decode_update_queue(const uint8_t *p, size_t n, ty_queue_info *out);
int ty_cli_decode_explain(const uint8_t *p, size_t n, ty_cli_explain *out);
int ty_cli_decode_shares(const uint8_t *p, size_t n, ty_cli_share **out, size_t *out_n,
                         double *out_halflife_s);
/* ReconfigureResponse: the file traind read and what changed (owned;
 * free with ty_cli_reconfigure_free). */
typedef struct ty_cli_reconfigure {
  char *config_file;
  char **changed;
  size_t n_changed;
} ty_cli_reconfigure;
int ty_cli_decode_reconfigure(const uint8_t *p, size_t n, ty_cli_reconfigure *out);
void ty_cli_reconfigure_free(ty_cli_reconfigure *r);
/* ListAdminEvents: the request (kind "" = all; since_ms 0 = all; limit 0 =
 * traind's default), and the events answered (owned; free with
 * ty_cli_admin_events_free). */
int ty_cli_encode_admin_events(const char *kind, int64_t since_ms, uint32_t limit, ty_buf *out);
typedef struct ty_cli_admin_event {
  int64_t time_ms;
  char *actor, *kind, *object, *action, *detail;
} ty_cli_admin_event;
int ty_cli_decode_admin_events(const uint8_t *p, size_t n, ty_cli_admin_event **out, size_t *out_n);
void ty_cli_admin_events_free(ty_cli_admin_event *ev, size_t n);
/* UpdateNodeResponse: the node's state and reason (owned). */
int ty_cli_decode_update_node(const uint8_t *p, size_t n, int *out_state, char **out_reason);
/* UpdateJobResponse: how many jobs changed, and how many of an array's
 * elements were not, their node being away, with the first refusal
 * (owned: free it; "" when none). */
typedef struct ty_cli_update_tally {
  uint32_t changed, refused;
  char *refusal;
} ty_cli_update_tally;
/* The job changed (an array's first element) and the tally (may be NULL). */
int ty_cli_decode_update_job(const uint8_t *p, size_t n, ty_cli_jobinfo *out,
                             ty_cli_update_tally *out_tally);

/* ---- command lines --------------------------------------------------------------
 * Queue options to settings: --tier N, --share W, --max-running N, --max-gpus N,
 * --max-gpus-per-user N, --preemptible, --no-preemptible, --default-time D,
 * --max-time D, --default-mem SIZE, --max-mem SIZE, --state S, --allow-groups LIST,
 * --allow-users LIST. Positional arguments go to *out_name
 * (exactly one). Values are checked by the controller, which names the bad one. */
typedef struct ty_cli_queue_args {
  char *name;
  char **settings;
  size_t n_settings;
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
