/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> controller structs. Pure: bytes in, structs out, and back;
 * no I/O, no controller state, so every decoder can be fed garbage safely.
 * protobuf-c rejects malformed wire data; these functions add the checks the
 * controller needs (a SubmitJobRequest without a job is malformed, too).
 */
#include "daemon/convert.h"

#include <stdlib.h>
#include <string.h>

#include "proto/trainyard.pb-c.h"

static char *dup_str(const char *s) { return ty_strdup(s ? s : ""); }

static char **dup_strv(char *const *v, size_t n) {
  char **out = ty_xcalloc(n ? n : 1, sizeof(*out));
  for (size_t i = 0; i < n; i++) out[i] = dup_str(v[i]);
  return out;
}

static int pack_to(const ProtobufCMessage *m, ty_buf *out) {
  size_t len = protobuf_c_message_get_packed_size(m);
  int rc = ty_buf_reserve(out, len ? len : 1);
  if (rc != 0) return rc;
  protobuf_c_message_pack(m, out->data + out->len);
  out->len += len;
  return 0;
}

/* ---- job specs ------------------------------------------------------------------ */

static void spec_from_job(const Trainyard__Job *job, ty_job_spec *s) {
  memset(s, 0, sizeof(*s));
  s->name = dup_str(job->name);
  s->queue = dup_str(job->queue);
  s->user = dup_str(job->user);
  s->priority = job->priority;
  s->time_limit_s = job->time_limit_s;
  if (job->resources) {
    s->has_resources = true;
    s->nodes = job->resources->nodes;
    s->tasks_per_node = job->resources->tasks_per_node;
    s->gpus_per_node = job->resources->gpus_per_node;
    s->cpus_per_task = job->resources->cpus_per_task;
    s->mem_per_node = job->resources->mem_per_node;
  }
  if (job->kind_case == TRAINYARD__JOB__KIND_GRAPH) {
    s->kind = TY_JOB_KIND_GRAPH;
    if (job->graph) {
      const Trainyard__GraphSpec *g = job->graph;
      s->model_path = dup_str(g->model_path);
      s->model_len = g->model_bytes.len;
      s->model_bytes = ty_xmalloc(g->model_bytes.len ? g->model_bytes.len : 1);
      if (g->model_bytes.len) memcpy(s->model_bytes, g->model_bytes.data, g->model_bytes.len);
      s->train_config_len = g->train_config.len;
      s->train_config = ty_xmalloc(g->train_config.len ? g->train_config.len : 1);
      if (g->train_config.len) memcpy(s->train_config, g->train_config.data, g->train_config.len);
    }
  } else if (job->kind_case == TRAINYARD__JOB__KIND_COMMAND && job->command) {
    const Trainyard__CommandSpec *c = job->command;
    s->kind = TY_JOB_KIND_COMMAND;
    s->argv = dup_strv(c->argv, c->n_argv);
    s->argc = c->n_argv;
    s->env = dup_strv(c->env, c->n_env);
    s->envc = c->n_env;
    s->cwd = dup_str(c->cwd);
  }
  if (job->interactive) {
    s->interactive = true;
    s->pty = job->interactive->pty;
    s->stdin_all = job->interactive->stdin_all;
    s->detach = job->interactive->detach;
    s->rows = job->interactive->rows;
    s->cols = job->interactive->cols;
  }
  s->warn_signal = job->warn_signal;
  s->warn_before_s = job->warn_before_s;
  s->max_rank_failure_requeues = job->max_rank_failure_requeues;
}

int ty__conv_submit(const uint8_t *p, size_t n, ty_job_spec *out_spec, uint8_t **out_blob,
                    size_t *out_blob_len) {
  Trainyard__SubmitJobRequest *req = trainyard__submit_job_request__unpack(NULL, n, p);
  if (!req) return TY_EPROTO;
  if (!req->job) {
    trainyard__submit_job_request__free_unpacked(req, NULL);
    return TY_EPROTO;
  }
  spec_from_job(req->job, out_spec);
  size_t len = trainyard__job__get_packed_size(req->job);
  *out_blob = ty_xmalloc(len ? len : 1);
  *out_blob_len = trainyard__job__pack(req->job, *out_blob);
  trainyard__submit_job_request__free_unpacked(req, NULL);
  return 0;
}

uint8_t *ty__conv_normalize(const uint8_t *blob, size_t n, const ty_job_spec *spec,
                            size_t *out_len) {
  Trainyard__Job *job = trainyard__job__unpack(NULL, n, blob);
  if (!job) return NULL;
  Trainyard__Resources res = TRAINYARD__RESOURCES__INIT;
  res.nodes = spec->nodes;
  res.tasks_per_node = spec->tasks_per_node;
  res.gpus_per_node = spec->gpus_per_node;
  res.cpus_per_task = spec->cpus_per_task;
  res.mem_per_node = spec->mem_per_node;
  /* Borrow the spec's strings; put the unpacked ones back before freeing. */
  char *name = job->name, *queue = job->queue, *user = job->user;
  Trainyard__Resources *had = job->resources;
  job->name = spec->name, job->queue = spec->queue, job->user = spec->user;
  job->resources = &res;
  job->time_limit_s = spec->time_limit_s; /* the queue's default filled in */
  size_t len = trainyard__job__get_packed_size(job);
  uint8_t *out = ty_xmalloc(len ? len : 1);
  *out_len = trainyard__job__pack(job, out);
  job->name = name, job->queue = queue, job->user = user;
  job->resources = had;
  trainyard__job__free_unpacked(job, NULL);
  return out;
}

int ty__conv_spec(const uint8_t *blob, size_t n, ty_job_spec *out_spec) {
  Trainyard__Job *job = trainyard__job__unpack(NULL, n, blob);
  if (!job) return TY_EPROTO;
  spec_from_job(job, out_spec);
  trainyard__job__free_unpacked(job, NULL);
  return 0;
}

/* ---- client requests ----------------------------------------------------------- */

int ty__conv_list_jobs_req(const uint8_t *p, size_t n, ty_list_filter *out) {
  memset(out, 0, sizeof(*out));
  Trainyard__ListJobsRequest *req = trainyard__list_jobs_request__unpack(NULL, n, p);
  if (!req) return TY_EPROTO;
  out->n_states = req->n_states;
  out->states = ty_xcalloc(req->n_states ? req->n_states : 1, sizeof(int));
  for (size_t i = 0; i < req->n_states; i++) out->states[i] = (int)req->states[i];
  out->user = dup_str(req->user);
  out->queue = dup_str(req->queue);
  out->limit = req->limit;
  trainyard__list_jobs_request__free_unpacked(req, NULL);
  return 0;
}

void ty__list_filter_close(ty_list_filter *f) {
  free(f->states);
  free(f->user);
  free(f->queue);
  memset(f, 0, sizeof(*f));
}

int ty__conv_job_id_req(const uint8_t *p, size_t n, uint64_t *out_id) {
  /* GetJobRequest and GetTaskLocationsRequest share field 1 (uint64 job_id). */
  Trainyard__GetJobRequest *req = trainyard__get_job_request__unpack(NULL, n, p);
  if (!req) return TY_EPROTO;
  *out_id = req->job_id;
  trainyard__get_job_request__free_unpacked(req, NULL);
  return 0;
}

int ty__conv_cancel_req(const uint8_t *p, size_t n, uint64_t **out_ids, size_t *out_n,
                        char **out_user) {
  Trainyard__CancelJobRequest *req = trainyard__cancel_job_request__unpack(NULL, n, p);
  if (!req) return TY_EPROTO;
  *out_ids = ty_xcalloc(req->n_job_ids ? req->n_job_ids : 1, sizeof(uint64_t));
  memcpy(*out_ids, req->job_ids, req->n_job_ids * sizeof(uint64_t));
  *out_n = req->n_job_ids;
  *out_user = dup_str(req->user);
  trainyard__cancel_job_request__free_unpacked(req, NULL);
  return 0;
}

/* ---- worker requests ------------------------------------------------------------- */

static void task_from(ty_task_report *t, uint64_t job_id, uint32_t rank, int state, int32_t code,
                      int32_t sig, bool timed_out, const char *reason) {
  t->job_id = job_id;
  t->rank = rank;
  t->state = state;
  t->exit_code = code;
  t->term_signal = sig;
  t->timed_out = timed_out;
  t->reason = dup_str(reason);
}

/* Keeps what ListNodes shows besides live counters: GPUs and topology. */
static void encode_info(const Trainyard__NodeInfo *ni, uint8_t **out, size_t *out_len) {
  Trainyard__NodeInfo keep = TRAINYARD__NODE_INFO__INIT;
  keep.n_gpus = ni->n_gpus;
  keep.gpus = ni->gpus;
  keep.topology = ni->topology;
  size_t len = trainyard__node_info__get_packed_size(&keep);
  *out = ty_xmalloc(len ? len : 1);
  *out_len = trainyard__node_info__pack(&keep, *out);
}

int ty__conv_register_req(const uint8_t *p, size_t n, ty_node_report *out) {
  memset(out, 0, sizeof(*out));
  Trainyard__RegisterNodeRequest *req = trainyard__register_node_request__unpack(NULL, n, p);
  if (!req) return TY_EPROTO;
  if (!req->node) {
    trainyard__register_node_request__free_unpacked(req, NULL);
    return TY_EPROTO;
  }
  const Trainyard__NodeInfo *ni = req->node;
  out->name = dup_str(ni->name);
  out->cpus = ni->cpus;
  out->memory = ni->memory;
  out->n_gpus = (uint32_t)ni->n_gpus;
  out->io_addr = dup_str(ni->io_addr);
  encode_info(ni, &out->info, &out->info_len);
  out->n_tasks = req->n_tasks;
  out->tasks = ty_xcalloc(req->n_tasks ? req->n_tasks : 1, sizeof(*out->tasks));
  for (size_t i = 0; i < req->n_tasks; i++) {
    const Trainyard__RunningTask *t = req->tasks[i];
    task_from(&out->tasks[i], t->job_id, t->rank, (int)t->state, t->exit_code, t->term_signal,
              t->timed_out, t->reason);
  }
  trainyard__register_node_request__free_unpacked(req, NULL);
  return 0;
}

void ty__node_report_close(ty_node_report *r) {
  free(r->name);
  free(r->io_addr);
  free(r->info);
  for (size_t i = 0; i < r->n_tasks; i++) free(r->tasks[i].reason);
  free(r->tasks);
  memset(r, 0, sizeof(*r));
}

int ty__conv_heartbeat_req(const uint8_t *p, size_t n, char **out_node, uint32_t *out_running) {
  Trainyard__HeartbeatRequest *req = trainyard__heartbeat_request__unpack(NULL, n, p);
  if (!req) return TY_EPROTO;
  *out_node = dup_str(req->node);
  *out_running = req->running_tasks;
  trainyard__heartbeat_request__free_unpacked(req, NULL);
  return 0;
}

int ty__conv_task_update_req(const uint8_t *p, size_t n, ty_task_report *out) {
  Trainyard__TaskUpdateRequest *req = trainyard__task_update_request__unpack(NULL, n, p);
  if (!req) return TY_EPROTO;
  task_from(out, req->job_id, req->rank, (int)req->state, req->exit_code, req->term_signal,
            req->timed_out, req->reason);
  trainyard__task_update_request__free_unpacked(req, NULL);
  return 0;
}

uint32_t ty__conv_info_gpus(const uint8_t *info, size_t n) {
  if (!info || n == 0) return 0;
  Trainyard__NodeInfo *ni = trainyard__node_info__unpack(NULL, n, info);
  if (!ni) return 0;
  uint32_t g = (uint32_t)ni->n_gpus;
  trainyard__node_info__free_unpacked(ni, NULL);
  return g;
}

/* ---- responses ----------------------------------------------------------------------- */

int ty__conv_submit_resp(uint64_t id, ty_buf *out) {
  Trainyard__SubmitJobResponse r = TRAINYARD__SUBMIT_JOB_RESPONSE__INIT;
  r.job_id = id;
  return pack_to(&r.base, out);
}

/* Fills info from j. The spec is unpacked from the stored blob (freed by
 * info_close) so clients see exactly what was submitted. */
static void info_fill(Trainyard__JobInfo *info, const ty_job *j) {
  trainyard__job_info__init(info);
  info->id = j->id;
  info->spec = trainyard__job__unpack(NULL, j->blob_len, j->blob);
  info->state = (Trainyard__JobState)j->state;
  info->reason = j->reason ? j->reason : "";
  info->exit_code = j->exit_code;
  info->term_signal = j->term_signal;
  info->submit_time_ms = j->submit_ms;
  info->start_time_ms = j->start_ms;
  info->end_time_ms = j->end_ms;
  info->requeue_count = j->requeue_count;
  info->held = j->held;
  info->priority = j->state == TY_JOB_PENDING ? j->prio : 0;
  info->last_checkpoint_ms = j->last_ckpt_ms;
  /* A requeued job still remembers its old slots until placed again. */
  uint32_t n_nodes = j->state == TY_JOB_PENDING ? 0 : j->n_slots;
  info->n_nodes = n_nodes;
  info->nodes = ty_xcalloc(n_nodes ? n_nodes : 1, sizeof(char *));
  for (uint32_t i = 0; i < n_nodes; i++) info->nodes[i] = j->slots[i].node->name;
}

static void info_close(Trainyard__JobInfo *info) {
  if (info->spec) trainyard__job__free_unpacked(info->spec, NULL);
  free(info->nodes);
}

int ty__conv_list_jobs_resp(ty_job *const *jobs, size_t n, ty_buf *out) {
  Trainyard__ListJobsResponse r = TRAINYARD__LIST_JOBS_RESPONSE__INIT;
  Trainyard__JobInfo *infos = ty_xcalloc(n ? n : 1, sizeof(*infos));
  Trainyard__JobInfo **ptrs = ty_xcalloc(n ? n : 1, sizeof(*ptrs));
  for (size_t i = 0; i < n; i++) {
    info_fill(&infos[i], jobs[i]);
    ptrs[i] = &infos[i];
  }
  r.n_jobs = n;
  r.jobs = ptrs;
  int rc = pack_to(&r.base, out);
  for (size_t i = 0; i < n; i++) info_close(&infos[i]);
  free(infos);
  free(ptrs);
  return rc;
}

int ty__conv_get_job_resp(const ty_job *j, const ty_event_copy *ev, size_t n_ev, ty_buf *out) {
  Trainyard__GetJobResponse r = TRAINYARD__GET_JOB_RESPONSE__INIT;
  Trainyard__JobInfo info;
  info_fill(&info, j);
  Trainyard__JobEvent *evs = ty_xcalloc(n_ev ? n_ev : 1, sizeof(*evs));
  Trainyard__JobEvent **ptrs = ty_xcalloc(n_ev ? n_ev : 1, sizeof(*ptrs));
  for (size_t i = 0; i < n_ev; i++) {
    trainyard__job_event__init(&evs[i]);
    evs[i].time_ms = ev[i].time_ms;
    evs[i].from_state = (Trainyard__JobState)ev[i].from_state;
    evs[i].to_state = (Trainyard__JobState)ev[i].to_state;
    evs[i].reason = ev[i].reason;
    ptrs[i] = &evs[i];
  }
  r.job = &info;
  r.n_events = n_ev;
  r.events = ptrs;
  int rc = pack_to(&r.base, out);
  info_close(&info);
  free(evs);
  free(ptrs);
  return rc;
}

int ty__conv_cancel_resp(const ty_cancel_result *res, size_t n, ty_buf *out) {
  Trainyard__CancelJobResponse r = TRAINYARD__CANCEL_JOB_RESPONSE__INIT;
  Trainyard__CancelResult *rs = ty_xcalloc(n ? n : 1, sizeof(*rs));
  Trainyard__CancelResult **ptrs = ty_xcalloc(n ? n : 1, sizeof(*ptrs));
  for (size_t i = 0; i < n; i++) {
    trainyard__cancel_result__init(&rs[i]);
    rs[i].job_id = res[i].job_id;
    rs[i].status = res[i].status;
    rs[i].message = (char *)res[i].message;
    ptrs[i] = &rs[i];
  }
  r.n_results = n;
  r.results = ptrs;
  int rc = pack_to(&r.base, out);
  free(rs);
  free(ptrs);
  return rc;
}

static void node_fill(Trainyard__NodeInfo *ni, const ty_cluster_node *nd, const Trainyard__NodeInfo *u) {
  trainyard__node_info__init(ni);
  ni->name = nd->name;
  ni->state = (Trainyard__NodeState)nd->state;
  ni->cpus = nd->cpus;
  ni->memory = nd->memory;
  ni->cpus_used = nd->cpus_used;
  ni->gpus_used = (uint32_t)__builtin_popcountll(nd->gpus_used);
  ni->io_addr = nd->io_addr ? nd->io_addr : "";
  ni->last_heartbeat_ms = nd->last_seen_ms;
  ni->reason = nd->reason ? nd->reason : "";
  ni->running_tasks = nd->running_tasks;
  if (u) {
    ni->n_gpus = u->n_gpus;
    ni->gpus = u->gpus;
    ni->topology = u->topology;
  }
}

int ty__conv_list_nodes_resp(ty_cluster_node *const *nodes, size_t n, ty_buf *out) {
  Trainyard__ListNodesResponse r = TRAINYARD__LIST_NODES_RESPONSE__INIT;
  Trainyard__NodeInfo *infos = ty_xcalloc(n ? n : 1, sizeof(*infos));
  Trainyard__NodeInfo **ptrs = ty_xcalloc(n ? n : 1, sizeof(*ptrs));
  Trainyard__NodeInfo **unpacked = ty_xcalloc(n ? n : 1, sizeof(*unpacked));
  for (size_t i = 0; i < n; i++) {
    const ty_cluster_node *nd = nodes[i];
    if (nd->info && nd->info_len)
      unpacked[i] = trainyard__node_info__unpack(NULL, nd->info_len, nd->info);
    node_fill(&infos[i], nd, unpacked[i]);
    ptrs[i] = &infos[i];
  }
  r.n_nodes = n;
  r.nodes = ptrs;
  int rc = pack_to(&r.base, out);
  for (size_t i = 0; i < n; i++)
    if (unpacked[i]) trainyard__node_info__free_unpacked(unpacked[i], NULL);
  free(unpacked);
  free(infos);
  free(ptrs);
  return rc;
}

int ty__conv_task_locations_req(const uint8_t *p, size_t n, uint64_t *out_id,
                                bool *out_want_tokens, char **out_user) {
  Trainyard__GetTaskLocationsRequest *req =
      trainyard__get_task_locations_request__unpack(NULL, n, p);
  if (!req) return TY_EPROTO;
  *out_id = req->job_id;
  *out_want_tokens = req->want_tokens;
  *out_user = dup_str(req->user);
  trainyard__get_task_locations_request__free_unpacked(req, NULL);
  return 0;
}

int ty__conv_task_locations_resp(const ty_job *j, const uint8_t *tokens, size_t token_len,
                                 ty_buf *out) {
  Trainyard__GetTaskLocationsResponse r = TRAINYARD__GET_TASK_LOCATIONS_RESPONSE__INIT;
  uint32_t n = j->n_slots && j->state != TY_JOB_PENDING ? j->n_ranks : 0;
  Trainyard__TaskLocation *ls = ty_xcalloc(n ? n : 1, sizeof(*ls));
  Trainyard__TaskLocation **ptrs = ty_xcalloc(n ? n : 1, sizeof(*ptrs));
  for (uint32_t i = 0; i < n; i++) {
    const ty_cluster_node *nd = j->slots[j->ranks[i].slot].node;
    trainyard__task_location__init(&ls[i]);
    ls[i].rank = i;
    ls[i].node = nd->name;
    ls[i].io_addr = nd->io_addr ? nd->io_addr : "";
    if (tokens) {
      ls[i].token.data = (uint8_t *)tokens + (size_t)i * token_len;
      ls[i].token.len = token_len;
    }
    ptrs[i] = &ls[i];
  }
  r.n_tasks = n;
  r.tasks = ptrs;
  r.state = (Trainyard__JobState)j->state;
  r.reason = j->reason ? j->reason : "";
  int rc = pack_to(&r.base, out);
  free(ls);
  free(ptrs);
  return rc;
}

int ty__conv_register_resp(uint32_t heartbeat_ms, ty_buf *out) {
  Trainyard__RegisterNodeResponse r = TRAINYARD__REGISTER_NODE_RESPONSE__INIT;
  r.heartbeat_interval_ms = heartbeat_ms;
  return pack_to(&r.base, out);
}

/* ---- requests to workers ------------------------------------------------------------ */

int ty__conv_launch_req(const ty_launch *l, ty_buf *out) {
  Trainyard__LaunchTaskRequest r = TRAINYARD__LAUNCH_TASK_REQUEST__INIT;
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  uint32_t gpus[64];
  size_t ng = 0;
  for (uint32_t i = 0; i < 64; i++)
    if (l->gpus & (UINT64_C(1) << i)) gpus[ng++] = i;
  cmd.n_argv = l->spec->argc;
  cmd.argv = l->spec->argv;
  cmd.n_env = l->spec->envc;
  cmd.env = l->spec->env;
  cmd.cwd = l->spec->cwd ? l->spec->cwd : "";
  r.job_id = l->job_id;
  r.rank = l->rank;
  r.local_rank = l->local_rank;
  r.world_size = l->world_size;
  r.local_world_size = l->local_world_size;
  r.master_addr = (char *)(l->master_addr ? l->master_addr : "");
  r.master_port = l->master_port;
  r.n_gpu_indices = ng;
  r.gpu_indices = gpus;
  r.cpus = l->cpus;
  r.command = &cmd;
  r.time_limit_s = l->spec->time_limit_s;
  r.kill_grace_s = l->kill_grace_s;
  r.user = l->spec->user ? l->spec->user : "";
  Trainyard__InteractiveSpec ia = TRAINYARD__INTERACTIVE_SPEC__INIT;
  if (l->spec->interactive) {
    ia.pty = l->spec->pty;
    ia.stdin_all = l->spec->stdin_all;
    ia.detach = l->spec->detach;
    ia.rows = l->spec->rows;
    ia.cols = l->spec->cols;
    r.interactive = &ia;
  }
  /* Interactive and graph jobs (launch_rank sets it for those only). */
  r.attach_key.data = (uint8_t *)l->attach_key;
  r.attach_key.len = l->attach_key ? l->attach_key_len : 0;
  r.warn_signal = l->spec->warn_signal;
  r.warn_before_s = l->spec->warn_before_s;
  Trainyard__GraphLaunch gl = TRAINYARD__GRAPH_LAUNCH__INIT;
  if (l->spec->kind == TY_JOB_KIND_GRAPH) {
    gl.model_path = l->spec->model_path ? l->spec->model_path : "";
    gl.model_bytes.data = l->spec->model_bytes;
    gl.model_bytes.len = l->spec->model_len;
    gl.train_config.data = l->spec->train_config;
    gl.train_config.len = l->spec->train_config_len;
    gl.checkpoint_path = (char *)(l->checkpoint_path ? l->checkpoint_path : "");
    r.graph = &gl;
  }
  return pack_to(&r.base, out);
}

int ty__conv_kill_req(uint64_t job_id, int sig, uint32_t grace_s, ty_buf *out) {
  Trainyard__KillTaskRequest r = TRAINYARD__KILL_TASK_REQUEST__INIT;
  r.job_id = job_id;
  r.signal = sig;
  r.grace_s = grace_s;
  return pack_to(&r.base, out);
}
