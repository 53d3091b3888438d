/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> cli structs for `trainctl history`: GetHistoryRequest
 * out, GetHistoryResponse in (JobRecords with their RankRecords); and
 * `trainctl web-token`'s WebToken. Like
 * convert.c, the decoder copies what it keeps.
 */
#include "cli/cli.h"
#include "cli/cli_history.h"

#include <stdlib.h>
#include <string.h>

#include "proto/convert.h"

int ty_cli_encode_history(const ty_cli_history_args *a, ty_buf *out) {
  Trainyard__GetHistoryRequest req = TRAINYARD__GET_HISTORY_REQUEST__INIT;
  Trainyard__JobState states[TY_JOB_STATE_MAX];
  for (size_t i = 0; i < a->nstates; i++)
    states[i] = (Trainyard__JobState)a->states[i];
  req.n_states = a->nstates, req.states = states;
  req.user = ty_wire_str(a->all_users ? NULL : a->user), req.queue = ty_wire_str(a->queue);
  req.since_ms = a->since_ms, req.until_ms = a->until_ms, req.limit = a->limit;
  req.n_job_ids = a->nids, req.job_ids = a->ids;
  req.n_names = a->nnames, req.names = a->names;
  req.n_nodes = a->nnodes, req.nodes = a->nodes;
  req.ranks = a->ranks;
  return ty_wire_pack(&req.base, out);
}

static int rank_from_pb(const Trainyard__RankRecord *m, ty_cli_rank_record *r) {
  *r = (ty_cli_rank_record){.run = m->run,
                            .rank = m->rank,
                            .start_ms = m->start_ms,
                            .end_ms = m->end_ms,
                            .state = (int)m->state,
                            .exit_code = m->exit_code,
                            .term_signal = m->term_signal,
                            .cpus = m->cpus,
                            .gpus = m->gpus,
                            .cpu_s = m->cpu_seconds,
                            .gpu_s = m->gpu_seconds,
                            .mem_peak = m->mem_peak_bytes,
                            .measured = m->measured,
                            .run_state = (int)m->run_state};
  r->node = ty_wire_strdup(m->node);
  return r->node ? 0 : TY_ENOMEM;
}

/* "a,b" from the repeated nodes. */
static char *join_nodes(char **v, size_t n) {
  ty_buf b;
  ty_buf_init(&b);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = ty_buf_printf(&b, "%s%s", i ? "," : "", v[i]);
  if (rc == 0) rc = ty_buf_append(&b, "", 1);
  char *s = rc == 0 ? ty_wire_strdup((const char *)b.data) : NULL;
  ty_buf_close(&b);
  return s;
}

static int record_from_pb(const Trainyard__JobRecord *m, ty_cli_record *r) {
  *r = (ty_cli_record){.id = m->id,
                       .array_job_id = m->array_job_id,
                       .array_task_id = m->array_task_id,
                       .state = (int)m->state,
                       .exit_code = m->exit_code,
                       .term_signal = m->term_signal,
                       .submit_ms = m->submit_ms,
                       .start_ms = m->start_ms,
                       .end_ms = m->end_ms,
                       .requeue_count = m->requeue_count,
                       .cpus = m->cpus,
                       .gpus = m->gpus,
                       .time_limit_s = m->time_limit_s,
                       .mem_bytes = m->mem_bytes,
                       .mem_peak = m->mem_peak_bytes,
                       .cpu_s = m->cpu_seconds,
                       .gpu_s = m->gpu_seconds,
                       .measured = m->measured};
  r->name = ty_wire_strdup(m->name), r->user = ty_wire_strdup(m->user);
  r->queue = ty_wire_strdup(m->queue), r->reason = ty_wire_strdup(m->reason);
  r->nodes = join_nodes(m->nodes, m->n_nodes);
  r->ranks = ty_wire_calloc(m->n_ranks, sizeof *r->ranks);
  int rc = r->name && r->user && r->queue && r->reason && r->nodes && r->ranks ? 0 : TY_ENOMEM;
  for (; rc == 0 && r->nranks < m->n_ranks; r->nranks++)
    rc = rank_from_pb(m->ranks[r->nranks], &r->ranks[r->nranks]);
  return rc;
}

int ty_cli_decode_history(const uint8_t *p, size_t n, ty_cli_record **out, size_t *out_n,
                          bool *out_truncated) {
  Trainyard__GetHistoryResponse *m =
      ty_wire_unpack(&trainyard__get_history_response__descriptor, p, n);
  if (!m) return TY_EPROTO;
  ty_cli_record *rs = ty_wire_calloc(m->n_jobs, sizeof *rs);
  int rc = rs ? 0 : TY_ENOMEM;
  size_t k = 0;
  while (rc == 0 && k < m->n_jobs)
    rc = record_from_pb(m->jobs[k], &rs[k]), k++;
  *out_truncated = m->truncated;
  ty_wire_free(m);
  if (rc != 0) {
    ty_cli_records_free(rs, k);
    return rc;
  }
  *out = rs, *out_n = k;
  return 0;
}

/* ---- trainctl web-token ------------------------------------------------------------------- */

int ty_cli_encode_web_token(uint32_t ttl_s, bool revoke, ty_buf *out) {
  Trainyard__WebTokenRequest req = TRAINYARD__WEB_TOKEN_REQUEST__INIT;
  req.ttl_s = ttl_s;
  req.revoke = revoke;
  return ty_wire_pack(&req.base, out);
}

int ty_cli_decode_web_token(const uint8_t *p, size_t n, ty_cli_web_token *out) {
  Trainyard__WebTokenResponse *m = ty_wire_unpack(&trainyard__web_token_response__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out = (ty_cli_web_token){.token = strdup(m->token ? m->token : ""),
                            .url = strdup(m->url ? m->url : ""),
                            .expires_ms = m->expires_ms,
                            .revoked = m->revoked};
  ty_wire_free(m);
  if (out->token && out->url) return 0;
  free(out->token), free(out->url);
  return TY_ENOMEM;
}
