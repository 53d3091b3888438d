/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> cli structs for the scheduler's commands (UpdateQueue,
 * UpdateNode, UpdateJob, ListQueues, ExplainJob, GetShares). Encoders point
 * the messages at the caller's strings for the pack; decoders copy what they
 * keep, so every unpacked message is freed before returning.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/admin.h"
#include "proto/trainyard.pb-c.h"

static int pack(const ProtobufCMessage *m, ty_buf *out) {
  size_t n = protobuf_c_message_get_packed_size(m);
  int rc = ty_buf_reserve(out, n + 1);
  if (rc) return rc;
  out->len += protobuf_c_message_pack(m, out->data + out->len);
  return 0;
}

static char *s_or_empty(const char *s) { return (char *)(s ? s : ""); }
static char *dup(const char *s) { return ty_strdup(s ? s : ""); }

int ty_cli_encode_update_queue(const char *name, const char *user, const char *action,
                               char *const *settings, size_t n, ty_buf *out) {
  Trainyard__UpdateQueueRequest r = TRAINYARD__UPDATE_QUEUE_REQUEST__INIT;
  r.name = s_or_empty(name), r.user = s_or_empty(user), r.action = s_or_empty(action);
  r.n_settings = n;
  r.settings = (char **)settings;
  return pack(&r.base, out);
}

int ty_cli_encode_update_node(const char *name, const char *user, const char *action,
                              const char *reason, ty_buf *out) {
  Trainyard__UpdateNodeRequest r = TRAINYARD__UPDATE_NODE_REQUEST__INIT;
  r.name = s_or_empty(name), r.user = s_or_empty(user), r.action = s_or_empty(action);
  r.reason = s_or_empty(reason);
  return pack(&r.base, out);
}

int ty_cli_encode_update_job(uint64_t id, const char *user, const char *action,
                             int32_t priority, const char *queue, ty_buf *out) {
  Trainyard__UpdateJobRequest r = TRAINYARD__UPDATE_JOB_REQUEST__INIT;
  r.job_id = id, r.user = s_or_empty(user), r.action = s_or_empty(action);
  r.priority = priority, r.queue = s_or_empty(queue);
  return pack(&r.base, out);
}

static void queue_from(const Trainyard__QueueInfo *pb, ty_cli_queue *q) {
  *q = (ty_cli_queue){.name = dup(pb->name), .state = dup(pb->state), .tier = pb->tier,
                      .share = pb->share, .max_running = pb->max_running,
                      .max_gpus = pb->max_gpus, .max_gpus_per_user = pb->max_gpus_per_user,
                      .default_time_s = pb->default_time_s, .max_time_s = pb->max_time_s,
                      .preemptible = pb->preemptible, .pending = pb->pending,
                      .running = pb->running, .gpus_used = pb->gpus_used};
}

void ty_cli_queues_free(ty_cli_queue *qs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(qs[i].name);
    free(qs[i].state);
  }
  free(qs);
}

int ty_cli_decode_queues(const uint8_t *p, size_t n, ty_cli_queue **out, size_t *out_n) {
  Trainyard__ListQueuesResponse *r = trainyard__list_queues_response__unpack(NULL, n, p);
  if (!r) return TY_EPROTO;
  *out = ty_xcalloc(r->n_queues ? r->n_queues : 1, sizeof(**out));
  *out_n = r->n_queues;
  for (size_t i = 0; i < r->n_queues; i++) queue_from(r->queues[i], &(*out)[i]);
  trainyard__list_queues_response__free_unpacked(r, NULL);
  return 0;
}

int ty_cli_decode_update_queue(const uint8_t *p, size_t n, ty_cli_queue *out) {
  Trainyard__UpdateQueueResponse *r = trainyard__update_queue_response__unpack(NULL, n, p);
  if (!r) return TY_EPROTO;
  int rc = r->queue ? 0 : TY_EPROTO;
  if (rc == 0) queue_from(r->queue, out);
  trainyard__update_queue_response__free_unpacked(r, NULL);
  return rc;
}

void ty_cli_explain_close(ty_cli_explain *e) {
  free(e->reason);
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
  Trainyard__ExplainJobResponse *r = trainyard__explain_job_response__unpack(NULL, n, p);
  if (!r) return TY_EPROTO;
  *e = (ty_cli_explain){.job_id = r->job_id, .state = (int)r->state, .reason = dup(r->reason),
                        .position = r->position, .pending_total = r->pending_total,
                        .nodes_needed = r->nodes_needed, .nodes_fit = r->nodes_fit,
                        .priority = r->priority, .f_tier = r->f_tier, .f_age = r->f_age,
                        .f_fairshare = r->f_fairshare, .f_size = r->f_size,
                        .f_priority = r->f_priority, .fairshare = r->fairshare,
                        .usage = r->usage, .usage_norm = r->usage_norm, .share = r->share,
                        .est_start_ms = r->est_start_ms, .reserved_job = r->reserved_job};
  e->n_nodes = r->n_nodes;
  e->node_names = ty_xcalloc(r->n_nodes ? r->n_nodes : 1, sizeof(char *));
  e->node_whys = ty_xcalloc(r->n_nodes ? r->n_nodes : 1, sizeof(char *));
  for (size_t i = 0; i < r->n_nodes; i++) {
    e->node_names[i] = dup(r->nodes[i]->node);
    e->node_whys[i] = dup(r->nodes[i]->why);
  }
  trainyard__explain_job_response__free_unpacked(r, NULL);
  return 0;
}

void ty_cli_shares_free(ty_cli_share *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(s[i].queue);
    free(s[i].user);
  }
  free(s);
}

int ty_cli_decode_shares(const uint8_t *p, size_t n, ty_cli_share **out, size_t *out_n,
                         double *out_halflife_s) {
  Trainyard__GetSharesResponse *r = trainyard__get_shares_response__unpack(NULL, n, p);
  if (!r) return TY_EPROTO;
  *out = ty_xcalloc(r->n_shares ? r->n_shares : 1, sizeof(**out));
  *out_n = r->n_shares;
  *out_halflife_s = r->halflife_s;
  for (size_t i = 0; i < r->n_shares; i++) {
    const Trainyard__ShareInfo *s = r->shares[i];
    (*out)[i] = (ty_cli_share){.queue = dup(s->queue), .user = dup(s->user), .share = s->share,
                               .usage = s->usage, .usage_norm = s->usage_norm,
                               .factor = s->factor, .gpu_s = s->gpu_s, .cpu_s = s->cpu_s};
  }
  trainyard__get_shares_response__free_unpacked(r, NULL);
  return 0;
}

int ty_cli_decode_update_node(const uint8_t *p, size_t n, int *out_state, char **out_reason) {
  Trainyard__UpdateNodeResponse *r = trainyard__update_node_response__unpack(NULL, n, p);
  if (!r) return TY_EPROTO;
  int rc = r->node ? 0 : TY_EPROTO;
  if (rc == 0) {
    *out_state = (int)r->node->state;
    *out_reason = dup(r->node->reason);
  }
  trainyard__update_node_response__free_unpacked(r, NULL);
  return rc;
}

/* Re-wraps the JobInfo as a GetJobResponse so cli/convert.c decodes it. */
int ty_cli_decode_update_job(const uint8_t *p, size_t n, ty_cli_jobinfo *out) {
  Trainyard__UpdateJobResponse *r = trainyard__update_job_response__unpack(NULL, n, p);
  if (!r) return TY_EPROTO;
  int rc = TY_EPROTO;
  if (r->job) {
    Trainyard__GetJobResponse g = TRAINYARD__GET_JOB_RESPONSE__INIT;
    g.job = r->job;
    ty_buf b;
    ty_buf_init(&b);
    ty_cli_event *ev = NULL;
    size_t nev = 0;
    rc = pack(&g.base, &b);
    if (rc == 0) rc = ty_cli_decode_get_job(b.data, b.len, out, &ev, &nev);
    ty_cli_events_free(ev, nev);
    ty_buf_close(&b);
  }
  trainyard__update_job_response__free_unpacked(r, NULL);
  return rc;
}
