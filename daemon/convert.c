/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> controller structs. Pure: bytes in, structs out, and back;
 * no I/O, no controller state, so every decoder can be fed garbage safely.
 * protobuf-c rejects malformed wire data; these functions add the checks the
 * controller needs (a SubmitJobRequest without a job is malformed, too).
 */
#include "daemon/daemon_internal.h"

#include <stdlib.h>
#include <string.h>

#include "proto/convert.h"

int ty__conv_submit(const uint8_t *p, size_t n, ty_job_spec *out_spec, uint8_t **out_blob,
                    size_t *out_blob_len, char **out_request_id) {
  Trainyard__SubmitJobRequest *req = ty_wire_unpack(&trainyard__submit_job_request__descriptor, p, n);
  if (!req || !req->job) {
    ty_wire_free(req);
    return TY_EPROTO;
  }
  ty_buf blob;
  ty_buf_init(&blob);
  int rc = ty_wire_pack(&req->job->base, &blob);
  char *rid = rc == 0 ? ty_wire_strdup(req->request_id) : NULL;
  if (rc == 0 && !rid) rc = TY_ENOMEM;
  if (rc == 0) rc = ty_proto_decode_job(req->job, out_spec);
  ty_wire_free(req);
  if (rc != 0) {
    free(rid);
    ty_buf_close(&blob);
    return rc;
  }
  *out_request_id = rid;
  *out_blob = blob.data;
  *out_blob_len = blob.len;
  return 0;
}

int ty__conv_normalize(const uint8_t *blob, size_t n, const ty_job_spec *spec, uint8_t **out,
                       size_t *out_len) {
  Trainyard__Job *job = ty_wire_unpack(&trainyard__job__descriptor, blob, n);
  if (!job) return TY_EPROTO;
  Trainyard__Resources res = TRAINYARD__RESOURCES__INIT;
  res.nodes = spec->nodes;
  res.tasks_per_node = spec->tasks_per_node;
  res.gpus_per_node = spec->gpus_per_node;
  res.cpus_per_task = spec->cpus_per_task;
  res.mem_per_node = spec->mem_per_node;
  /* The submitter is the credential's, whatever the client put in run_as. */
  Trainyard__UnixUser run_as = TRAINYARD__UNIX_USER__INIT;
  run_as.uid = spec->uid, run_as.gid = spec->gid;
  /* Borrow the spec's strings; put the unpacked ones back before freeing. */
  char *name = job->name, *queue = job->queue, *user = job->user;
  Trainyard__Resources *had = job->resources;
  Trainyard__UnixUser *had_run_as = job->run_as;
  job->name = spec->name, job->queue = spec->queue, job->user = spec->user;
  job->resources = &res;
  job->run_as = spec->has_uid ? &run_as : NULL;
  job->time_limit_s = spec->time_limit_s; /* the queue's default filled in */
  ty_buf b;
  ty_buf_init(&b);
  int rc = ty_wire_pack(&job->base, &b);
  job->name = name, job->queue = queue, job->user = user;
  job->resources = had;
  job->run_as = had_run_as;
  ty_wire_free(job);
  *out = b.data;
  *out_len = b.len;
  return rc;
}

int ty__conv_spec(const uint8_t *blob, size_t n, ty_job_spec *out_spec) {
  Trainyard__Job *job = ty_wire_unpack(&trainyard__job__descriptor, blob, n);
  if (!job) return TY_EPROTO;
  int rc = ty_proto_decode_job(job, out_spec);
  ty_wire_free(job);
  return rc;
}

/* ---- client requests ----------------------------------------------------------- */

int ty__conv_list_jobs_req(const uint8_t *p, size_t n, ty_list_filter *out) {
  memset(out, 0, sizeof(*out));
  Trainyard__ListJobsRequest *req = ty_wire_unpack(&trainyard__list_jobs_request__descriptor, p, n);
  if (!req) return TY_EPROTO;
  out->n_states = req->n_states;
  out->states = ty_wire_calloc(req->n_states, sizeof(int));
  for (size_t i = 0; out->states && i < req->n_states; i++) out->states[i] = (int)req->states[i];
  out->user = ty_wire_strdup(req->user);
  out->queue = ty_wire_strdup(req->queue);
  out->limit = req->limit;
  ty_wire_free(req);
  if (out->states && out->user && out->queue) return 0;
  ty__list_filter_close(out);
  return TY_ENOMEM;
}

void ty__list_filter_close(ty_list_filter *f) {
  free(f->states);
  free(f->user);
  free(f->queue);
  memset(f, 0, sizeof(*f));
}

int ty__conv_get_job_req(const uint8_t *p, size_t n, uint64_t *out_id, bool *out_with_plan) {
  /* GetJob, GetTaskLocations and ExplainJob requests share field 1 (job_id). */
  Trainyard__GetJobRequest *req = ty_wire_unpack(&trainyard__get_job_request__descriptor, p, n);
  if (!req) return TY_EPROTO;
  *out_id = req->job_id;
  if (out_with_plan) *out_with_plan = req->with_plan;
  ty_wire_free(req);
  return 0;
}

int ty__conv_job_id_req(const uint8_t *p, size_t n, uint64_t *out_id) {
  return ty__conv_get_job_req(p, n, out_id, NULL);
}

int ty__conv_cancel_req(const uint8_t *p, size_t n, uint64_t **out_ids, size_t *out_n) {
  Trainyard__CancelJobRequest *req =
      ty_wire_unpack(&trainyard__cancel_job_request__descriptor, p, n);
  if (!req) return TY_EPROTO;
  uint64_t *ids = ty_wire_calloc(req->n_job_ids, sizeof(uint64_t));
  if (ids && req->n_job_ids) memcpy(ids, req->job_ids, req->n_job_ids * sizeof(uint64_t));
  *out_n = req->n_job_ids;
  ty_wire_free(req);
  if (!ids) return TY_ENOMEM;
  *out_ids = ids;
  return 0;
}

/* ---- worker requests ------------------------------------------------------------- */

/* RunningTask and TaskUpdateRequest carry the same fields. */
#define TASK_FROM(t, m)                                                                            \
  task_from(t, (m)->job_id, (m)->rank, (int)(m)->state, (m)->exit_code, (m)->term_signal,          \
            (m)->timed_out, (m)->reason,                                                           \
            &(ty_task_usage){(m)->cpu_usec, (m)->mem_peak_bytes, (m)->io_read_bytes,               \
                             (m)->io_write_bytes})

static int task_from(ty_task_report *t, uint64_t job_id, uint32_t rank, int state, int32_t code,
                     int32_t sig, bool timed_out, const char *reason, const ty_task_usage *use) {
  *t = (ty_task_report){.job_id = job_id, .rank = rank, .state = (ty_task_state)state,
                        .exit_code = code, .term_signal = sig, .timed_out = timed_out,
                        .reason = ty_wire_strdup(reason), .usage = *use};
  return t->reason ? 0 : TY_ENOMEM;
}

void ty__task_report_close(ty_task_report *r) {
  free(r->reason);
  r->reason = NULL;
}

/* Keeps what ListNodes shows besides live counters: GPUs and topology. */
static int encode_info(const Trainyard__NodeInfo *ni, uint8_t **out, size_t *out_len) {
  Trainyard__NodeInfo keep = TRAINYARD__NODE_INFO__INIT;
  keep.n_gpus = ni->n_gpus;
  keep.gpus = ni->gpus;
  keep.topology = ni->topology;
  ty_buf b;
  ty_buf_init(&b);
  int rc = ty_wire_pack(&keep.base, &b);
  *out = b.data;
  *out_len = b.len;
  return rc;
}

static int register_from(const Trainyard__RegisterNodeRequest *req, ty_node_report *out) {
  const Trainyard__NodeInfo *ni = req->node;
  out->cpus = ni->cpus;
  out->memory = ni->memory;
  out->n_gpus = (uint32_t)ni->n_gpus;
  out->name = ty_wire_strdup(ni->name);
  out->io_addr = ty_wire_strdup(ni->io_addr);
  int rc = out->name && out->io_addr ? 0 : TY_ENOMEM;
  if (rc == 0) rc = encode_info(ni, &out->info, &out->info_len);
  if (rc == 0 && !(out->tasks = ty_wire_calloc(req->n_tasks, sizeof(*out->tasks)))) rc = TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < req->n_tasks; i++, out->n_tasks++) {
    rc = TASK_FROM(&out->tasks[i], req->tasks[i]);
  }
  return rc;
}

int ty__conv_register_req(const uint8_t *p, size_t n, ty_node_report *out) {
  memset(out, 0, sizeof(*out));
  Trainyard__RegisterNodeRequest *req =
      ty_wire_unpack(&trainyard__register_node_request__descriptor, p, n);
  int rc = req && req->node ? register_from(req, out) : TY_EPROTO;
  ty_wire_free(req);
  if (rc != 0) ty__node_report_close(out);
  return rc;
}

void ty__node_report_close(ty_node_report *r) {
  free(r->name);
  free(r->io_addr);
  free(r->info);
  for (size_t i = 0; r->tasks && i < r->n_tasks; i++) ty__task_report_close(&r->tasks[i]);
  free(r->tasks);
  memset(r, 0, sizeof(*r));
}

int ty__conv_heartbeat_req(const uint8_t *p, size_t n, char **out_node, uint32_t *out_running) {
  Trainyard__HeartbeatRequest *req = ty_wire_unpack(&trainyard__heartbeat_request__descriptor, p, n);
  if (!req) return TY_EPROTO;
  *out_node = ty_wire_strdup(req->node);
  *out_running = req->running_tasks;
  ty_wire_free(req);
  return *out_node ? 0 : TY_ENOMEM;
}

int ty__conv_task_update_req(const uint8_t *p, size_t n, ty_task_report *out) {
  Trainyard__TaskUpdateRequest *req =
      ty_wire_unpack(&trainyard__task_update_request__descriptor, p, n);
  if (!req) return TY_EPROTO;
  int rc = TASK_FROM(out, req);
  out->warned_signal = req->warned_signal;
  ty_wire_free(req);
  return rc;
}

uint32_t ty__conv_info_gpus(const uint8_t *info, size_t n) {
  if (!info || n == 0) return 0;
  Trainyard__NodeInfo *ni = ty_wire_unpack(&trainyard__node_info__descriptor, info, n);
  uint32_t g = ni ? (uint32_t)ni->n_gpus : 0;
  ty_wire_free(ni);
  return g;
}

/* ---- responses ----------------------------------------------------------------------- */

int ty__conv_submit_resp(uint64_t id, ty_buf *out) {
  Trainyard__SubmitJobResponse r = TRAINYARD__SUBMIT_JOB_RESPONSE__INIT;
  r.job_id = id;
  return ty_wire_pack(&r.base, out);
}

/* Leaves out what only the job's owner and operators see: the command,
 * its environment and working directory, a graph job's model bytes and
 * config. The parts are freed here and replaced by empty ones that the
 * message's free_unpacked frees like its own. */
static int redact(Trainyard__Job *spec) {
  if (spec->kind_case == TRAINYARD__JOB__KIND_COMMAND && spec->command) {
    trainyard__command_spec__free_unpacked(spec->command, NULL);
    spec->command = malloc(sizeof *spec->command);
    if (!spec->command) return TY_ENOMEM;
    trainyard__command_spec__init(spec->command);
  }
  if (spec->kind_case == TRAINYARD__JOB__KIND_GRAPH && spec->graph) {
    free(spec->graph->model_bytes.data);
    free(spec->graph->train_config.data);
    spec->graph->model_bytes = (ProtobufCBinaryData){0, NULL};
    spec->graph->train_config = (ProtobufCBinaryData){0, NULL};
  }
  return 0;
}

/* Fills info from j. The spec is unpacked from the stored blob (freed by
 * info_close) so clients see exactly what was submitted; without `full` it
 * is redacted. */
static int info_fill(Trainyard__JobInfo *info, const ty_job *j, bool full) {
  trainyard__job_info__init(info);
  info->id = j->id;
  info->spec = ty_wire_unpack(&trainyard__job__descriptor, j->blob, j->blob_len);
  if (!full && info->spec && redact(info->spec) != 0) return TY_ENOMEM;
  info->redacted = !full;
  info->cpu_usec = j->usage.cpu_usec;
  info->mem_peak_bytes = j->usage.mem_peak_bytes;
  info->io_read_bytes = j->usage.io_read_bytes;
  info->io_write_bytes = j->usage.io_write_bytes;
  info->state = (Trainyard__JobState)j->state;
  info->reason = ty_wire_str(j->reason);
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
  info->nodes = ty_wire_calloc(n_nodes, sizeof(char *));
  for (uint32_t i = 0; info->nodes && i < n_nodes; i++) info->nodes[i] = j->slots[i].node->name;
  return info->nodes ? 0 : TY_ENOMEM;
}

static void info_close(Trainyard__JobInfo *info) {
  ty_wire_free(info->spec);
  free(info->nodes);
}

int ty__conv_list_jobs_resp(ty_job *const *jobs, const bool *full, size_t n, ty_buf *out) {
  Trainyard__ListJobsResponse r = TRAINYARD__LIST_JOBS_RESPONSE__INIT;
  Trainyard__JobInfo *infos = ty_wire_calloc(n, sizeof(*infos));
  Trainyard__JobInfo **ptrs = ty_wire_calloc(n, sizeof(*ptrs));
  int rc = infos && ptrs ? 0 : TY_ENOMEM;
  size_t filled = 0;
  for (; rc == 0 && filled < n; filled++) {
    rc = info_fill(&infos[filled], jobs[filled], full[filled]);
    ptrs[filled] = &infos[filled];
  }
  r.n_jobs = n;
  r.jobs = ptrs;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  for (size_t i = 0; i < filled; i++) info_close(&infos[i]);
  free(infos);
  free(ptrs);
  return rc;
}

int ty__conv_get_job_resp(const ty_job *j, bool full, const ty_event_copy *ev, size_t n_ev,
                          ty_buf *out) {
  Trainyard__GetJobResponse r = TRAINYARD__GET_JOB_RESPONSE__INIT;
  Trainyard__JobInfo info;
  int rc = info_fill(&info, j, full);
  Trainyard__JobEvent *evs = ty_wire_calloc(n_ev, sizeof(*evs));
  Trainyard__JobEvent **ptrs = ty_wire_calloc(n_ev, sizeof(*ptrs));
  if (!evs || !ptrs) rc = TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n_ev; i++) {
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
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  info_close(&info);
  free(evs);
  free(ptrs);
  return rc;
}

int ty__conv_cancel_resp(const ty_cancel_result *res, size_t n, ty_buf *out) {
  Trainyard__CancelJobResponse r = TRAINYARD__CANCEL_JOB_RESPONSE__INIT;
  Trainyard__CancelResult *rs = ty_wire_calloc(n, sizeof(*rs));
  Trainyard__CancelResult **ptrs = ty_wire_calloc(n, sizeof(*ptrs));
  int rc = rs && ptrs ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    trainyard__cancel_result__init(&rs[i]);
    rs[i].job_id = res[i].job_id;
    rs[i].status = res[i].status;
    rs[i].message = (char *)res[i].message;
    ptrs[i] = &rs[i];
  }
  r.n_results = n;
  r.results = ptrs;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
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
  ni->io_addr = ty_wire_str(nd->io_addr);
  ni->last_heartbeat_ms = nd->last_seen_ms;
  ni->reason = ty_wire_str(nd->reason);
  ni->running_tasks = nd->running_tasks;
  if (u) {
    ni->n_gpus = u->n_gpus;
    ni->gpus = u->gpus;
    ni->topology = u->topology;
  }
}

int ty__conv_list_nodes_resp(ty_cluster_node *const *nodes, size_t n, ty_buf *out) {
  Trainyard__ListNodesResponse r = TRAINYARD__LIST_NODES_RESPONSE__INIT;
  Trainyard__NodeInfo *infos = ty_wire_calloc(n, sizeof(*infos));
  Trainyard__NodeInfo **ptrs = ty_wire_calloc(n, sizeof(*ptrs));
  Trainyard__NodeInfo **unpacked = ty_wire_calloc(n, sizeof(*unpacked));
  int rc = infos && ptrs && unpacked ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const ty_cluster_node *nd = nodes[i];
    if (nd->info && nd->info_len)
      unpacked[i] = ty_wire_unpack(&trainyard__node_info__descriptor, nd->info, nd->info_len);
    node_fill(&infos[i], nd, unpacked[i]);
    ptrs[i] = &infos[i];
  }
  r.n_nodes = n;
  r.nodes = ptrs;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  for (size_t i = 0; unpacked && i < n; i++) ty_wire_free(unpacked[i]);
  free(unpacked);
  free(infos);
  free(ptrs);
  return rc;
}

int ty__conv_task_locations_req(const uint8_t *p, size_t n, uint64_t *out_id,
                                bool *out_want_tokens) {
  Trainyard__GetTaskLocationsRequest *req =
      ty_wire_unpack(&trainyard__get_task_locations_request__descriptor, p, n);
  if (!req) return TY_EPROTO;
  *out_id = req->job_id;
  *out_want_tokens = req->want_tokens;
  ty_wire_free(req);
  return 0;
}

int ty__conv_task_locations_resp(const ty_job *j, const uint8_t *tokens, size_t token_len,
                                 ty_buf *out) {
  Trainyard__GetTaskLocationsResponse r = TRAINYARD__GET_TASK_LOCATIONS_RESPONSE__INIT;
  uint32_t n = j->n_slots && j->state != TY_JOB_PENDING ? j->n_ranks : 0;
  Trainyard__TaskLocation *ls = ty_wire_calloc(n, sizeof(*ls));
  Trainyard__TaskLocation **ptrs = ty_wire_calloc(n, sizeof(*ptrs));
  int rc = ls && ptrs ? 0 : TY_ENOMEM;
  for (uint32_t i = 0; rc == 0 && i < n; i++) {
    const ty_cluster_node *nd = j->slots[j->ranks[i].slot].node;
    trainyard__task_location__init(&ls[i]);
    ls[i].rank = i;
    ls[i].node = nd->name;
    ls[i].io_addr = ty_wire_str(nd->io_addr);
    if (tokens) ls[i].token = (ProtobufCBinaryData){token_len, (uint8_t *)tokens + (size_t)i * token_len};
    ptrs[i] = &ls[i];
  }
  r.n_tasks = n;
  r.tasks = ptrs;
  r.state = (Trainyard__JobState)j->state;
  r.reason = ty_wire_str(j->reason);
  r.exit_code = j->exit_code, r.term_signal = j->term_signal;
  r.failed_rank = j->first_failed ? (int32_t)j->first_failed - 1 : -1;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  free(ls);
  free(ptrs);
  return rc;
}

int ty__conv_register_resp(uint32_t heartbeat_ms, ty_buf *out) {
  Trainyard__RegisterNodeResponse r = TRAINYARD__REGISTER_NODE_RESPONSE__INIT;
  r.heartbeat_interval_ms = heartbeat_ms;
  return ty_wire_pack(&r.base, out);
}

/* ---- requests to workers ------------------------------------------------------------ */

int ty__conv_launch_req(const ty_task_spec *t, ty_buf *out) {
  Trainyard__LaunchTaskRequest r = TRAINYARD__LAUNCH_TASK_REQUEST__INIT;
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.n_argv = t->argc, cmd.argv = (char **)t->argv;
  cmd.n_env = t->n_env, cmd.env = (char **)t->env;
  cmd.cwd = ty_wire_str(t->cwd);
  r.job_id = t->job_id, r.rank = t->rank, r.local_rank = t->local_rank;
  r.world_size = t->world_size, r.local_world_size = t->local_world_size;
  r.master_addr = ty_wire_str(t->master_addr), r.master_port = t->master_port;
  r.n_gpu_indices = t->n_gpus, r.gpu_indices = (uint32_t *)t->gpu_indices;
  r.cpus = t->cpus;
  r.command = &cmd;
  r.time_limit_s = t->time_limit_s, r.kill_grace_s = t->kill_grace_s;
  r.user = ty_wire_str(t->user);
  Trainyard__UnixUser run_as = TRAINYARD__UNIX_USER__INIT;
  if (t->has_uid) {
    run_as.uid = t->uid, run_as.gid = t->gid;
    r.run_as = &run_as;
  }
  r.mem_per_node = t->mem_per_node;
  Trainyard__InteractiveSpec ia;
  r.interactive = ty_proto_encode_interactive(&t->interactive, &ia);
  r.attach_key = (ProtobufCBinaryData){t->attach_key ? t->attach_key_len : 0,
                                       (uint8_t *)t->attach_key};
  r.warn_signal = t->warn_signal, r.warn_before_s = t->warn_before_s;
  Trainyard__GraphLaunch gl = TRAINYARD__GRAPH_LAUNCH__INIT;
  if (t->graph) {
    gl.model_path = ty_wire_str(t->model_path);
    gl.model_bytes = (ProtobufCBinaryData){t->model_len, (uint8_t *)t->model_bytes};
    gl.train_config = (ProtobufCBinaryData){t->train_config_len, (uint8_t *)t->train_config};
    gl.checkpoint_path = ty_wire_str(t->checkpoint_path);
    gl.bucket_mb = t->bucket_mb;
    gl.plan = (ProtobufCBinaryData){t->plan_len, (uint8_t *)t->plan};
    r.graph = &gl;
  }
  return ty_wire_pack(&r.base, out);
}

int ty__conv_kill_req(uint64_t job_id, int sig, uint32_t grace_s, ty_buf *out) {
  Trainyard__KillTaskRequest r = TRAINYARD__KILL_TASK_REQUEST__INIT;
  r.job_id = job_id;
  r.signal = sig;
  r.grace_s = grace_s;
  return ty_wire_pack(&r.base, out);
}
