/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> cli structs for the scheduler's commands (UpdateQueue,
 * UpdateNode, UpdateJob, ListQueues, ExplainJob, GetShares). Encoders point
 * the messages at the caller's strings for the pack; decoders copy what they
 * keep, so every unpacked message is freed before returning.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_admin.h"
#include "proto/convert.h"

int ty_cli_encode_update_queue(const char *name, const char *action, char *const *settings,
                               size_t n, ty_buf *out) {
  Trainyard__UpdateQueueRequest r = TRAINYARD__UPDATE_QUEUE_REQUEST__INIT;
  r.name = ty_wire_str(name), r.action = ty_wire_str(action);
  r.n_settings = n;
  r.settings = (char **)settings;
  return ty_wire_pack(&r.base, out);
}

int ty_cli_encode_update_node(const char *name, const char *action, const char *reason,
                              ty_buf *out) {
  Trainyard__UpdateNodeRequest r = TRAINYARD__UPDATE_NODE_REQUEST__INIT;
  r.name = ty_wire_str(name), r.action = ty_wire_str(action);
  r.reason = ty_wire_str(reason);
  return ty_wire_pack(&r.base, out);
}

int ty_cli_encode_signal(const ty_job_ref *ref, int32_t sig, bool batch_only, ty_buf *out) {
  Trainyard__UpdateJobRequest r = TRAINYARD__UPDATE_JOB_REQUEST__INIT;
  r.job_id = ref->id, r.has_task = ref->has_task, r.task = ref->task;
  r.action = "signal", r.signal = sig, r.batch_only = batch_only;
  return ty_wire_pack(&r.base, out);
}

int ty_cli_encode_update_job(const ty_job_ref *ref, const ty_cli_job_update *u, ty_buf *out) {
  Trainyard__UpdateJobRequest r = TRAINYARD__UPDATE_JOB_REQUEST__INIT;
  r.job_id = ref->id, r.has_task = ref->has_task, r.task = ref->task;
  r.time_limit_s = u->time_limit_s;
  r.time_delta_s = u->time_delta_s;
  r.mem_per_node = u->mem_per_node;
  r.array_max_running = u->array_max_running;
  r.nodes = u->nodes;
  r.tasks_per_node = u->tasks_per_node, r.cpus_per_task = u->cpus_per_task;
  r.gpus_per_node = u->gpus_per_node, r.has_gpus = u->has_gpus;
  r.name = ty_wire_str(u->name);
  r.dependency = ty_wire_str(u->dependency);
  r.action = ty_wire_str(u->action);
  r.priority = u->priority, r.queue = ty_wire_str(u->queue);
  return ty_wire_pack(&r.base, out);
}

/* A repeated access list as ty_queue_info's comma-separated text. */
static void join_allow(char *const *names, size_t n, char out[TY_QUEUE_ALLOW_LEN]) {
  size_t w = 0;
  out[0] = '\0';
  for (size_t i = 0; i < n && w < TY_QUEUE_ALLOW_LEN; i++)
    w += (size_t)snprintf(out + w, TY_QUEUE_ALLOW_LEN - w, "%s%s", i ? "," : "", names[i]);
}

static int queue_from(const Trainyard__QueueInfo *pb, ty_queue_info *q) {
  *q = (ty_queue_info){.state = ty_queue_state_parse(pb->state),
                       .tier = pb->tier,
                       .share = pb->share,
                       .max_running = pb->max_running,
                       .max_gpus = pb->max_gpus,
                       .max_gpus_per_user = pb->max_gpus_per_user,
                       .default_time_s = pb->default_time_s,
                       .max_time_s = pb->max_time_s,
                       .default_mem = pb->default_mem,
                       .max_mem = pb->max_mem,
                       .preemptible = pb->preemptible,
                       .pending = pb->pending,
                       .running = pb->running,
                       .gpus_used = pb->gpus_used};
  join_allow(pb->allow_groups, pb->n_allow_groups, q->allow_groups);
  join_allow(pb->allow_users, pb->n_allow_users, q->allow_users);
  q->name = ty_wire_strdup(pb->name);
  return q->name ? 0 : TY_ENOMEM;
}

void ty_cli_queues_free(ty_queue_info *qs, size_t n) {
  for (size_t i = 0; qs && i < n; i++)
    ty_queue_info_close(&qs[i]);
  free(qs);
}

int ty_cli_decode_queues(const uint8_t *p, size_t n, ty_queue_info **out, size_t *out_n) {
  Trainyard__ListQueuesResponse *r =
      ty_wire_unpack(&trainyard__list_queues_response__descriptor, p, n);
  if (!r) return TY_EPROTO;
  ty_queue_info *qs = ty_wire_calloc(r->n_queues, sizeof(*qs));
  int rc = qs ? 0 : TY_ENOMEM;
  size_t k = 0;
  for (; rc == 0 && k < r->n_queues; k++)
    rc = queue_from(r->queues[k], &qs[k]);
  ty_wire_free(r);
  if (rc != 0) {
    ty_cli_queues_free(qs, k);
    return rc;
  }
  *out = qs;
  *out_n = k;
  return 0;
}

int ty_cli_decode_update_queue(const uint8_t *p, size_t n, ty_queue_info *out) {
  Trainyard__UpdateQueueResponse *r =
      ty_wire_unpack(&trainyard__update_queue_response__descriptor, p, n);
  int rc = r && r->queue ? queue_from(r->queue, out) : TY_EPROTO;
  ty_wire_free(r);
  return rc;
}

void ty_cli_explain_close(ty_cli_explain *e) {
  free(e->reason);
  free(e->est_note);
  free(e->wait);
  for (size_t i = 0; i < e->n_nodes; i++) {
    free(e->node_names[i]);
    free(e->node_whys[i]);
  }
  free(e->node_names);
  free(e->node_whys);
  memset(e, 0, sizeof(*e));
}

int ty_cli_decode_explain(const uint8_t *p, size_t n, ty_cli_explain *e) {
  memset(e, 0, sizeof(*e));
  Trainyard__ExplainJobResponse *r =
      ty_wire_unpack(&trainyard__explain_job_response__descriptor, p, n);
  if (!r) return TY_EPROTO;
  *e = (ty_cli_explain){.job_id = r->job_id,
                        .state = (int)r->state,
                        .position = r->position,
                        .pending_total = r->pending_total,
                        .nodes_needed = r->nodes_needed,
                        .nodes_fit = r->nodes_fit,
                        .priority = r->priority,
                        .f_tier = r->f_tier,
                        .f_age = r->f_age,
                        .f_fairshare = r->f_fairshare,
                        .f_size = r->f_size,
                        .f_priority = r->f_priority,
                        .fairshare = r->fairshare,
                        .usage = r->usage,
                        .usage_norm = r->usage_norm,
                        .share = r->share,
                        .est_start_ms = r->est_start_ms,
                        .est_kind = (int)r->est_kind,
                        .est_lower_bound = r->est_lower_bound,
                        .reserved_job = r->reserved_job};
  e->reason = ty_wire_strdup(r->reason);
  e->est_note = ty_wire_strdup(r->est_note);
  e->wait = ty_wire_strdup(r->wait);
  e->node_names = ty_wire_calloc(r->n_nodes, sizeof(char *));
  e->node_whys = ty_wire_calloc(r->n_nodes, sizeof(char *));
  int rc = e->reason && e->est_note && e->wait && e->node_names && e->node_whys ? 0 : TY_ENOMEM;
  for (; rc == 0 && e->n_nodes < r->n_nodes; e->n_nodes++) {
    e->node_names[e->n_nodes] = ty_wire_strdup(r->nodes[e->n_nodes]->node);
    e->node_whys[e->n_nodes] = ty_wire_strdup(r->nodes[e->n_nodes]->why);
    if (!e->node_names[e->n_nodes] || !e->node_whys[e->n_nodes]) rc = TY_ENOMEM;
  }
  ty_wire_free(r);
  if (rc != 0) ty_cli_explain_close(e);
  return rc;
}

void ty_cli_shares_free(ty_cli_share *s, size_t n) {
  for (size_t i = 0; s && i < n; i++) {
    free(s[i].queue);
    free(s[i].user);
  }
  free(s);
}

int ty_cli_decode_shares(const uint8_t *p, size_t n, ty_cli_share **out, size_t *out_n,
                         double *out_halflife_s) {
  Trainyard__GetSharesResponse *r =
      ty_wire_unpack(&trainyard__get_shares_response__descriptor, p, n);
  if (!r) return TY_EPROTO;
  ty_cli_share *sh = ty_wire_calloc(r->n_shares, sizeof(*sh));
  int rc = sh ? 0 : TY_ENOMEM;
  size_t k = 0;
  for (; rc == 0 && k < r->n_shares; k++) {
    const Trainyard__ShareInfo *s = r->shares[k];
    sh[k] = (ty_cli_share){.queue = ty_wire_strdup(s->queue),
                           .user = ty_wire_strdup(s->user),
                           .share = s->share,
                           .usage = s->usage,
                           .usage_norm = s->usage_norm,
                           .factor = s->factor,
                           .gpu_s = s->gpu_s,
                           .cpu_s = s->cpu_s};
    if (!sh[k].queue || !sh[k].user) rc = TY_ENOMEM;
  }
  *out_halflife_s = r->halflife_s;
  ty_wire_free(r);
  if (rc != 0) {
    ty_cli_shares_free(sh, k);
    return rc;
  }
  *out = sh;
  *out_n = k;
  return 0;
}

int ty_cli_decode_update_node(const uint8_t *p, size_t n, int *out_state, char **out_reason) {
  Trainyard__UpdateNodeResponse *r =
      ty_wire_unpack(&trainyard__update_node_response__descriptor, p, n);
  int rc = r && r->node ? 0 : TY_EPROTO;
  if (rc == 0) {
    *out_state = (int)r->node->state;
    if (!(*out_reason = ty_wire_strdup(r->node->reason))) rc = TY_ENOMEM;
  }
  ty_wire_free(r);
  return rc;
}

/* Re-wraps the JobInfo as a GetJobResponse so cli/convert.c decodes it. */
int ty_cli_decode_update_job(const uint8_t *p, size_t n, ty_cli_jobinfo *out,
                             ty_cli_update_tally *out_tally) {
  Trainyard__UpdateJobResponse *r =
      ty_wire_unpack(&trainyard__update_job_response__descriptor, p, n);
  int rc = r && r->job ? 0 : TY_EPROTO;
  if (rc == 0 && out_tally) {
    out_tally->changed = r->changed, out_tally->refused = r->refused;
    if (!(out_tally->refusal = ty_wire_strdup(r->refusal))) rc = TY_ENOMEM;
  }
  if (rc == 0) {
    Trainyard__GetJobResponse g = TRAINYARD__GET_JOB_RESPONSE__INIT;
    g.job = r->job;
    ty_buf b;
    ty_buf_init(&b);
    ty_cli_event *ev = NULL;
    size_t nev = 0;
    rc = ty_wire_pack(&g.base, &b);
    if (rc == 0) rc = ty_cli_decode_get_job(b.data, b.len, out, &ev, &nev);
    if (rc == 0) ty_cli_events_free(ev, nev);
    ty_buf_close(&b);
  }
  ty_wire_free(r);
  return rc;
}

int ty_cli_decode_reconfigure(const uint8_t *p, size_t n, ty_cli_reconfigure *out) {
  *out = (ty_cli_reconfigure){0};
  Trainyard__ReconfigureResponse *r =
      ty_wire_unpack(&trainyard__reconfigure_response__descriptor, p, n);
  if (!r) return TY_EPROTO;
  out->config_file = ty_wire_strdup(r->config_file);
  out->changed = ty_wire_calloc(r->n_changed, sizeof(*out->changed));
  int rc = out->config_file && out->changed ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < r->n_changed; i++) {
    out->changed[i] = ty_wire_strdup(r->changed[i]);
    if (!out->changed[i]) rc = TY_ENOMEM;
    out->n_changed = i + 1;
  }
  ty_wire_free(r);
  if (rc != 0) ty_cli_reconfigure_free(out);
  return rc;
}

void ty_cli_reconfigure_free(ty_cli_reconfigure *r) {
  for (size_t i = 0; i < r->n_changed; i++)
    free(r->changed[i]);
  free(r->changed);
  free(r->config_file);
  *r = (ty_cli_reconfigure){0};
}

int ty_cli_encode_admin_events(const char *kind, int64_t since_ms, uint32_t limit, ty_buf *out) {
  Trainyard__ListAdminEventsRequest r = TRAINYARD__LIST_ADMIN_EVENTS_REQUEST__INIT;
  r.kind = ty_wire_str(kind);
  r.since_ms = since_ms;
  r.limit = limit;
  return ty_wire_pack(&r.base, out);
}

int ty_cli_decode_admin_events(const uint8_t *p, size_t n, ty_cli_admin_event **out,
                               size_t *out_n) {
  *out = NULL, *out_n = 0;
  Trainyard__ListAdminEventsResponse *r =
      ty_wire_unpack(&trainyard__list_admin_events_response__descriptor, p, n);
  if (!r) return TY_EPROTO;
  ty_cli_admin_event *ev = ty_wire_calloc(r->n_events, sizeof(*ev));
  int rc = ev ? 0 : TY_ENOMEM;
  size_t k = 0;
  for (; rc == 0 && k < r->n_events; k++) {
    const Trainyard__AdminEvent *e = r->events[k];
    ev[k] = (ty_cli_admin_event){e->time_ms,
                                 ty_wire_strdup(e->actor),
                                 ty_wire_strdup(e->kind),
                                 ty_wire_strdup(e->object),
                                 ty_wire_strdup(e->action),
                                 ty_wire_strdup(e->detail)};
    if (!ev[k].actor || !ev[k].kind || !ev[k].object || !ev[k].action || !ev[k].detail)
      rc = TY_ENOMEM;
  }
  ty_wire_free(r);
  if (rc != 0) {
    ty_cli_admin_events_free(ev, k);
    return rc;
  }
  *out = ev, *out_n = k;
  return 0;
}

void ty_cli_admin_events_free(ty_cli_admin_event *ev, size_t n) {
  for (size_t i = 0; ev && i < n; i++) {
    free(ev[i].actor), free(ev[i].kind), free(ev[i].object);
    free(ev[i].action), free(ev[i].detail);
  }
  free(ev);
}
