/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> controller structs for accounting: GetHistory (JobRecord,
 * RankRecord) and GetNode (NodeInfo with its NodeEvents). Pure like
 * convert.c: bytes in, structs out, and back; safe on the thread pool,
 * where history answers are encoded.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "proto/convert.h"

void ty__history_req_close(ty__history_req *r) {
  free(r->user);
  free(r->queue);
  free(r->states);
  free(r->ids);
  ty_wire_strv_free(r->names, r->n_names);
  ty_wire_strv_free(r->nodes, r->n_nodes);
  memset(r, 0, sizeof(*r));
}

int ty__conv_history_req(const uint8_t *p, size_t n, ty__history_req *out) {
  memset(out, 0, sizeof(*out));
  Trainyard__GetHistoryRequest *m =
      ty_wire_unpack(&trainyard__get_history_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out = (ty__history_req){.since_ms = m->since_ms,
                           .until_ms = m->until_ms,
                           .limit = m->limit,
                           .ranks = m->ranks,
                           .n_states = m->n_states,
                           .n_ids = m->n_job_ids,
                           .ended_only = m->before_end_ms != 0,
                           .before_end_ms = m->before_end_ms,
                           .before_id = m->before_id};
  out->user = ty_wire_strdup(m->user);
  out->queue = ty_wire_strdup(m->queue);
  out->states = ty_wire_calloc(m->n_states, sizeof(int));
  out->ids = ty_wire_calloc(m->n_job_ids, sizeof(uint64_t));
  for (size_t i = 0; out->states && i < m->n_states; i++)
    out->states[i] = (int)m->states[i];
  if (out->ids && m->n_job_ids) memcpy(out->ids, m->job_ids, m->n_job_ids * sizeof(uint64_t));
  bool lists = ty_wire_strv(m->names, m->n_names, &out->names) == 0;
  if (lists) out->n_names = m->n_names;
  lists = lists && ty_wire_strv(m->nodes, m->n_nodes, &out->nodes) == 0;
  if (lists) out->n_nodes = m->n_nodes;
  ty_wire_free(m);
  if (out->user && out->queue && out->states && out->ids && lists) return 0;
  ty__history_req_close(out);
  return TY_ENOMEM;
}

static void rank_fill(Trainyard__RankRecord *m, const ty_rank_row *r) {
  trainyard__rank_record__init(m);
  m->run = r->run, m->rank = r->rank, m->node = ty_wire_str(r->node);
  m->start_ms = r->start_ms, m->end_ms = r->end_ms;
  m->state = (Trainyard__TaskState)r->state;
  m->exit_code = r->exit_code, m->term_signal = r->term_signal;
  m->cpus = r->cpus, m->gpus = r->gpus;
  m->cpu_seconds = (double)r->cpu_ms / 1000.0, m->gpu_seconds = (double)r->gpu_ms / 1000.0;
  m->mem_peak_bytes = (uint64_t)r->mem_peak, m->measured = r->measured;
  m->run_state = (Trainyard__RunState)r->run_state;
}

static void record_fill(Trainyard__JobRecord *m, const ty__acct_job *a) {
  trainyard__job_record__init(m);
  m->id = a->id, m->name = a->name, m->user = a->user, m->queue = a->queue;
  m->state = (Trainyard__JobState)a->state, m->reason = a->reason;
  m->exit_code = a->exit_code, m->term_signal = a->term_signal;
  m->submit_ms = a->submit_ms, m->start_ms = a->start_ms, m->end_ms = a->end_ms;
  m->requeue_count = a->requeue_count;
  m->array_job_id = a->array_id, m->array_task_id = a->array_task;
  m->cpus = a->cpus, m->gpus = a->gpus, m->mem_bytes = a->mem_bytes;
  m->cpu_seconds = (double)a->cpu_ms / 1000.0, m->gpu_seconds = (double)a->gpu_ms / 1000.0;
  m->mem_peak_bytes = (uint64_t)a->mem_peak, m->measured = a->measured;
  m->time_limit_s = a->time_limit_s;
}

/* One JobRecord with its ranks, packed as field 1 of the response. */
static int pack_record(const ty__acct_job *a, ty_buf *out) {
  Trainyard__JobRecord m;
  record_fill(&m, a);
  Trainyard__RankRecord *rs = ty_wire_calloc(a->n_ranks, sizeof(*rs));
  Trainyard__RankRecord **ptrs = ty_wire_calloc(a->n_ranks, sizeof(*ptrs));
  char **nodes = NULL;
  size_t n_nodes = 0;
  int rc = rs && ptrs ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < a->n_ranks; i++) {
    rank_fill(&rs[i], &a->ranks[i].row);
    ptrs[i] = &rs[i];
  }
  /* nodes: "a,b" as the repeated field. */
  char *copy = rc == 0 ? ty_wire_strdup(a->nodes) : NULL;
  size_t count = copy && copy[0] ? 1 : 0;
  for (const char *c = copy; c && *c; c++)
    count += *c == ',';
  if (rc == 0 && (!copy || !(nodes = ty_wire_calloc(count, sizeof(char *))))) rc = TY_ENOMEM;
  char *save = NULL;
  for (char *t = rc == 0 ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
    nodes[n_nodes++] = t;
  m.n_nodes = n_nodes, m.nodes = nodes;
  m.n_ranks = a->n_ranks, m.ranks = ptrs;
  ty_buf b;
  ty_buf_init(&b);
  if (rc == 0) rc = ty_wire_pack(&m.base, &b);
  if (rc == 0) rc = ty__conv_field(1, b.data, b.len, out);
  ty_buf_close(&b);
  free(nodes), free(copy), free(rs), free(ptrs);
  return rc;
}

int ty__conv_history_resp(const ty__acct_job *jobs, size_t n, bool truncated, ty_buf *out) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = pack_record(&jobs[i], out);
  Trainyard__GetHistoryResponse r = TRAINYARD__GET_HISTORY_RESPONSE__INIT;
  r.truncated = truncated;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  return rc;
}

int ty__conv_get_node_req(const uint8_t *p, size_t n, char **out_name, uint32_t *out_limit) {
  Trainyard__GetNodeRequest *m = ty_wire_unpack(&trainyard__get_node_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out_name = ty_wire_strdup(m->name);
  *out_limit = m->limit;
  ty_wire_free(m);
  return *out_name ? 0 : TY_ENOMEM;
}

int ty__conv_get_node_resp(const ty_cluster_node *nd, const ty_node_event_row *ev, size_t n,
                           ty_buf *out) {
  Trainyard__GetNodeResponse r = TRAINYARD__GET_NODE_RESPONSE__INIT;
  Trainyard__NodeEvent *es = ty_wire_calloc(n, sizeof(*es));
  Trainyard__NodeEvent **ptrs = ty_wire_calloc(n, sizeof(*ptrs));
  int rc = es && ptrs ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    trainyard__node_event__init(&es[i]);
    es[i].time_ms = ev[i].time_ms;
    es[i].from_state = (Trainyard__NodeState)ev[i].from_state;
    es[i].to_state = (Trainyard__NodeState)ev[i].to_state;
    es[i].action = ty_wire_str(ev[i].action);
    es[i].reason = ty_wire_str(ev[i].reason);
    es[i].actor = ty_wire_str(ev[i].actor);
    ptrs[i] = &es[i];
  }
  ty_buf node;
  ty_buf_init(&node);
  if (rc == 0) rc = ty__conv_node_info(nd, &node);
  if (rc == 0) rc = ty__conv_field(1, node.data, node.len, out);
  r.n_events = n, r.events = ptrs;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  ty_buf_close(&node);
  free(es);
  free(ptrs);
  return rc;
}

/* ---- WebToken ------------------------------------------------------------------------------ */

int ty__conv_web_token_req(const uint8_t *p, size_t n, uint32_t *out_ttl_s, bool *out_revoke) {
  Trainyard__WebTokenRequest *m = ty_wire_unpack(&trainyard__web_token_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out_ttl_s = m->ttl_s;
  *out_revoke = m->revoke;
  ty_wire_free(m);
  return 0;
}

int ty__conv_web_token_resp(const char *token, int64_t expires_ms, uint32_t revoked,
                            const char *url, ty_buf *out) {
  Trainyard__WebTokenResponse r = TRAINYARD__WEB_TOKEN_RESPONSE__INIT;
  r.token = ty_wire_str(token);
  r.expires_ms = expires_ms;
  r.revoked = revoked;
  r.url = ty_wire_str(url);
  return ty_wire_pack(&r.base, out);
}
