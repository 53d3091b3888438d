/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> controller structs for the scheduler's operations
 * (ListQueues, UpdateQueue, UpdateNode, UpdateJob, ExplainJob, GetShares,
 * ListAdminEvents).
 * Pure like convert.c: bytes in, structs out, and back; every decoder can be
 * fed garbage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "proto/convert.h"

void ty__admin_req_close(ty_admin_req *r) {
  free(r->name);
  free(r->action);
  free(r->reason);
  free(r->queue);
  free(r->dependency);
  for (size_t i = 0; i < r->n_settings; i++)
    free(r->settings[i]);
  free(r->settings);
  memset(r, 0, sizeof(*r));
}

/* The strings every Update* request carries; absent ones become "". (Their
 * deprecated `user` is not read: the caller is the credential's.) */
static int admin_strings(ty_admin_req *out, const char *name, const char *action,
                         const char *reason, const char *queue) {
  out->name = ty_wire_strdup(name);
  out->action = ty_wire_strdup(action);
  out->reason = ty_wire_strdup(reason);
  out->queue = ty_wire_strdup(queue);
  if (out->name && out->action && out->reason && out->queue) return 0;
  ty__admin_req_close(out);
  return TY_ENOMEM;
}

int ty__conv_update_queue_req(const uint8_t *p, size_t n, ty_admin_req *out) {
  memset(out, 0, sizeof(*out));
  Trainyard__UpdateQueueRequest *m =
      ty_wire_unpack(&trainyard__update_queue_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  int rc = admin_strings(out, m->name, m->action, NULL, NULL);
  if (rc == 0) rc = ty_wire_strv(m->settings, m->n_settings, &out->settings);
  if (rc == 0)
    out->n_settings = m->n_settings;
  else
    ty__admin_req_close(out);
  ty_wire_free(m);
  return rc;
}

int ty__conv_update_node_req(const uint8_t *p, size_t n, ty_admin_req *out) {
  memset(out, 0, sizeof(*out));
  Trainyard__UpdateNodeRequest *m =
      ty_wire_unpack(&trainyard__update_node_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  int rc = admin_strings(out, m->name, m->action, m->reason, NULL);
  ty_wire_free(m);
  return rc;
}

int ty__conv_update_job_req(const uint8_t *p, size_t n, ty_admin_req *out) {
  memset(out, 0, sizeof(*out));
  Trainyard__UpdateJobRequest *m = ty_wire_unpack(&trainyard__update_job_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  out->job_id = m->job_id;
  out->priority = m->priority;
  out->has_task = m->has_task, out->task = m->task;
  out->time_limit_s = m->time_limit_s;
  out->time_delta_s = m->time_delta_s;
  out->signal = m->signal, out->batch_only = m->batch_only;
  out->mem_per_node = m->mem_per_node;
  out->array_max_running = m->array_max_running;
  out->nodes = m->nodes;
  out->tasks_per_node = m->tasks_per_node, out->cpus_per_task = m->cpus_per_task;
  out->gpus_per_node = m->gpus_per_node, out->has_gpus = m->has_gpus;
  int rc = admin_strings(out, m->name, m->action, NULL, m->queue);
  if (rc == 0 && !(out->dependency = ty_wire_strdup(m->dependency))) {
    ty__admin_req_close(out);
    rc = TY_ENOMEM;
  }
  ty_wire_free(m);
  return rc;
}

/* An access list's names as a repeated string: pointers into buf. */
typedef struct allow_split {
  char buf[TY_QUEUE_ALLOW_LEN];
  char *names[TY_QUEUE_ALLOW_NAMES];
  size_t n;
} allow_split;

static void split_allow(const char *list, allow_split *a) {
  snprintf(a->buf, sizeof a->buf, "%s", list);
  a->n = 0;
  for (char *p = a->buf; *p && a->n < TY_QUEUE_ALLOW_NAMES;) {
    a->names[a->n++] = p;
    p += strcspn(p, ",");
    if (*p) *p++ = '\0';
  }
}

/* qi from q; its allow lists point into lists[0] (groups) and lists[1]. */
static void queue_fill(Trainyard__QueueInfo *qi, const ty_queue_info *q, allow_split lists[2]) {
  trainyard__queue_info__init(qi);
  split_allow(q->allow_groups, &lists[0]);
  split_allow(q->allow_users, &lists[1]);
  qi->allow_groups = lists[0].names, qi->n_allow_groups = lists[0].n;
  qi->allow_users = lists[1].names, qi->n_allow_users = lists[1].n;
  qi->name = q->name;
  qi->tier = q->tier;
  qi->share = q->share;
  qi->max_running = q->max_running;
  qi->max_gpus = q->max_gpus;
  qi->max_gpus_per_user = q->max_gpus_per_user;
  qi->preemptible = q->preemptible;
  qi->state = (char *)ty_queue_state_name(q->state);
  qi->default_time_s = q->default_time_s;
  qi->max_time_s = q->max_time_s;
  qi->default_mem = q->default_mem;
  qi->max_mem = q->max_mem;
  qi->pending = q->pending;
  qi->running = q->running;
  qi->gpus_used = q->gpus_used;
}

int ty__conv_list_queues_resp(const ty_queue_info *v, size_t n, ty_buf *out) {
  Trainyard__ListQueuesResponse r = TRAINYARD__LIST_QUEUES_RESPONSE__INIT;
  Trainyard__QueueInfo *qs = ty_wire_calloc(n, sizeof(*qs));
  Trainyard__QueueInfo **ptrs = ty_wire_calloc(n, sizeof(*ptrs));
  allow_split *lists = ty_wire_calloc(2 * n, sizeof(*lists));
  int rc = qs && ptrs && lists ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    queue_fill(&qs[i], &v[i], &lists[2 * i]);
    ptrs[i] = &qs[i];
  }
  r.n_queues = n;
  r.queues = ptrs;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  free(qs);
  free(ptrs);
  free(lists);
  return rc;
}

int ty__conv_update_queue_resp(const ty_queue_info *q, ty_buf *out) {
  Trainyard__UpdateQueueResponse r = TRAINYARD__UPDATE_QUEUE_RESPONSE__INIT;
  Trainyard__QueueInfo qi;
  allow_split lists[2];
  queue_fill(&qi, q, lists);
  r.queue = &qi;
  return ty_wire_pack(&r.base, out);
}

int ty__conv_update_node_resp(const ty_cluster_node *nd, ty_buf *out) {
  Trainyard__UpdateNodeResponse r = TRAINYARD__UPDATE_NODE_RESPONSE__INIT;
  Trainyard__NodeInfo ni = TRAINYARD__NODE_INFO__INIT;
  ni.name = nd->name;
  ni.state = (Trainyard__NodeState)nd->state;
  ni.cpus = nd->cpus;
  ni.memory = nd->memory;
  ni.cpus_used = nd->cpus_used;
  ni.gpus_used = (uint32_t)__builtin_popcountll(nd->gpus_used);
  ni.io_addr = ty_wire_str(nd->io_addr);
  ni.reason = ty_wire_str(nd->reason);
  r.node = &ni;
  return ty_wire_pack(&r.base, out);
}

int ty__conv_update_job_resp(const uint8_t *info, size_t info_len, uint32_t changed,
                             uint32_t refused, const char *refusal, ty_buf *out) {
  Trainyard__UpdateJobResponse r = TRAINYARD__UPDATE_JOB_RESPONSE__INIT;
  r.changed = changed;
  r.refused = refused;
  r.refusal = ty_wire_str(refusal);
  int rc = info ? ty__conv_field(1, info, info_len, out) : 0;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  return rc;
}

int ty__conv_explain_resp(const ty_job *j, bool full, const ty_sched_explain *ex,
                          ty_cluster_node *const *nodes, ty_buf *out) {
  Trainyard__ExplainJobResponse r = TRAINYARD__EXPLAIN_JOB_RESPONSE__INIT;
  r.job_id = j->id;
  r.state = (Trainyard__JobState)j->state;
  r.reason = ty_wire_str(ex ? ex->reason : j->reason);
  char pub[TY_ERR_LEN + 64];
  if (!full) {
    ty_job_reason_public(r.reason, pub, sizeof pub);
    r.reason = pub;
  }
  Trainyard__NodeFit fits[TY_SCHED_EXPLAIN_NODES], *ptrs[TY_SCHED_EXPLAIN_NODES];
  if (ex) {
    r.position = ex->position, r.pending_total = ex->n_pending, r.priority = ex->priority;
    r.f_tier = ex->f_tier, r.f_age = ex->f_age, r.f_fairshare = ex->f_fairshare;
    r.f_size = ex->f_size, r.f_priority = ex->f_priority, r.fairshare = ex->fairshare;
    r.usage = ex->user_usage, r.usage_norm = ex->usage_norm, r.share = ex->user_share;
    r.nodes_needed = ex->nodes_needed, r.nodes_fit = ex->nodes_fit;
    r.est_start_ms = ex->est_start_ms, r.reserved_job = ex->reserved_job;
    r.est_kind = (Trainyard__StartEstimate)ex->est_kind;
    r.est_note = (char *)ex->est_note;
    r.est_lower_bound = ex->est_lower_bound;
    r.wait = (char *)ty_sched_wait_name(ex->wait);
    for (size_t i = 0; i < ex->n_nodes; i++) {
      trainyard__node_fit__init(&fits[i]);
      fits[i].node = nodes[ex->nodes[i].node]->name;
      fits[i].why = (char *)ex->nodes[i].why;
      ptrs[i] = &fits[i];
    }
    r.n_nodes = ex->n_nodes;
    r.nodes = ptrs;
  }
  return ty_wire_pack(&r.base, out);
}

int ty__conv_shares_resp(const ty_sched_share *rows, const double *gpu_s, const double *cpu_s,
                         size_t n, double halflife_s, ty_buf *out) {
  Trainyard__GetSharesResponse r = TRAINYARD__GET_SHARES_RESPONSE__INIT;
  Trainyard__ShareInfo *s = ty_wire_calloc(n, sizeof(*s));
  Trainyard__ShareInfo **ptrs = ty_wire_calloc(n, sizeof(*ptrs));
  int rc = s && ptrs ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    trainyard__share_info__init(&s[i]);
    s[i].queue = ty_wire_str(rows[i].queue);
    s[i].user = ty_wire_str(rows[i].user);
    s[i].share = rows[i].share;
    s[i].usage = rows[i].usage;
    s[i].usage_norm = rows[i].usage_norm;
    s[i].factor = rows[i].factor;
    s[i].gpu_s = gpu_s[i];
    s[i].cpu_s = cpu_s[i];
    ptrs[i] = &s[i];
  }
  r.n_shares = n;
  r.shares = ptrs;
  r.halflife_s = halflife_s;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  free(s);
  free(ptrs);
  return rc;
}

int ty__conv_reconfigure_resp(const char *file, char *const *changed, size_t n, ty_buf *out) {
  Trainyard__ReconfigureResponse r = TRAINYARD__RECONFIGURE_RESPONSE__INIT;
  r.config_file = ty_wire_str(file);
  r.n_changed = n;
  r.changed = (char **)changed;
  return ty_wire_pack(&r.base, out);
}

int ty__conv_respec(const uint8_t *blob, size_t n, const ty_job_spec *spec, uint8_t **out,
                    size_t *out_len) {
  Trainyard__Job *job = ty_wire_unpack(&trainyard__job__descriptor, blob, n);
  if (!job) return TY_EPROTO;
  /* The dependencies as the spec has them now (job update --dependency),
   * in messages of their own, put back before the free. */
  ty_proto_job pj = {.job = TRAINYARD__JOB__INIT};
  if (ty_proto_encode_job_extra(spec, &pj) != 0) {
    ty_wire_free(job);
    return TY_ENOMEM;
  }
  char *queue = job->queue, *name = job->name;
  Trainyard__Dependency **deps = job->dependencies;
  size_t n_deps = job->n_dependencies;
  job->queue = spec->queue;
  job->name = spec->name ? spec->name : name;
  job->priority = spec->priority;
  job->time_limit_s = spec->time_limit_s;
  /* A job submitted without resources has the defaults, which job update
   * may since have changed: they are written then, in a message of ours
   * taken back before the free. */
  Trainyard__Resources res = TRAINYARD__RESOURCES__INIT;
  bool own_res = !job->resources;
  if (own_res) job->resources = &res;
  job->resources->mem_per_node = spec->mem_per_node;
  job->resources->mem_source = (Trainyard__MemSource)spec->mem_source;
  job->resources->nodes = spec->nodes;
  job->resources->tasks_per_node = spec->tasks_per_node;
  job->resources->cpus_per_task = spec->cpus_per_task;
  job->resources->gpus_per_node = spec->gpus_per_node;
  if (job->array) job->array->max_running = spec->array.max_running; /* an element's */
  job->dependencies = pj.job.dependencies, job->n_dependencies = pj.job.n_dependencies;
  job->dependency_any = spec->deps_any;
  ty_buf b;
  ty_buf_init(&b);
  int rc = ty_wire_pack(&job->base, &b);
  job->queue = queue, job->name = name;
  job->dependencies = deps, job->n_dependencies = n_deps;
  if (own_res) job->resources = NULL;
  ty_proto_job_close(&pj);
  ty_wire_free(job);
  *out = b.data;
  *out_len = b.len;
  return rc;
}

void ty__conv_info_islands(const uint8_t *info, size_t n, uint8_t *out_islands) {
  memset(out_islands, 0, TY_SCHED_MAX_GPUS);
  if (!info || n == 0) return;
  Trainyard__NodeInfo *ni = ty_wire_unpack(&trainyard__node_info__descriptor, info, n);
  if (!ni) return;
  for (size_t i = 0; i < ni->n_gpus; i++) {
    const Trainyard__Gpu *g = ni->gpus[i];
    if (g->index < TY_SCHED_MAX_GPUS && g->nvlink_island > 0)
      out_islands[g->index] = (uint8_t)(g->nvlink_island % 256);
  }
  ty_wire_free(ni);
}

int ty__conv_admin_events_req(const uint8_t *p, size_t n, ty_admin_event_query *q) {
  Trainyard__ListAdminEventsRequest *r =
      ty_wire_unpack(&trainyard__list_admin_events_request__descriptor, p, n);
  if (!r) return TY_EPROTO;
  *q = (ty_admin_event_query){ty_strdup(r->kind), r->since_ms, r->limit};
  ty_wire_free(r);
  return 0;
}

int ty__conv_admin_events_resp(const ty_admin_event_row *rows, size_t n, ty_buf *out) {
  Trainyard__ListAdminEventsResponse r = TRAINYARD__LIST_ADMIN_EVENTS_RESPONSE__INIT;
  Trainyard__AdminEvent *ev = ty_wire_calloc(n, sizeof(*ev));
  Trainyard__AdminEvent **ptrs = ty_wire_calloc(n, sizeof(*ptrs));
  int rc = ev && ptrs ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    trainyard__admin_event__init(&ev[i]);
    ev[i].time_ms = rows[i].time_ms;
    ev[i].actor = ty_wire_str(rows[i].actor);
    ev[i].kind = ty_wire_str(rows[i].kind);
    ev[i].object = ty_wire_str(rows[i].object);
    ev[i].action = ty_wire_str(rows[i].action);
    ev[i].detail = ty_wire_str(rows[i].detail);
    ptrs[i] = &ev[i];
  }
  r.n_events = n;
  r.events = ptrs;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  free(ev);
  free(ptrs);
  return rc;
}
