/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> controller structs. Pure: bytes in, structs out, and back;
 * no I/O, no controller state, so every decoder can be fed garbage safely.
 * protobuf-c rejects malformed wire data; these functions add the checks the
 * controller needs (a SubmitJobRequest without a job is malformed, too).
 */
#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

#include <stdlib.h>
#include <string.h>

#include "proto/convert.h"

void ty__job_msg_free(ty__job_msg *m) {
  ty_wire_free(m);
}

int ty__conv_submit(const uint8_t *p, size_t n, ty_job_spec *out_spec, uint8_t **out_blob,
                    size_t *out_blob_len, ty__job_msg **out_msg, char **out_request_id,
                    ty__watch_req *out_watch) {
  Trainyard__SubmitJobRequest *req =
      ty_wire_unpack(&trainyard__submit_job_request__descriptor, p, n);
  if (!req || !req->job) {
    ty_wire_free(req);
    return TY_EPROTO;
  }
  *out_watch = (ty__watch_req){.watch = req->watch,
                               .want_tokens = req->want_tokens,
                               .timing = req->timing,
                               .test_only = req->test_only};
  ty_buf blob;
  ty_buf_init(&blob);
  int rc = ty_wire_pack(&req->job->base, &blob);
  char *rid = rc == 0 ? ty_wire_strdup(req->request_id) : NULL;
  if (rc == 0 && !rid) rc = TY_ENOMEM;
  if (rc == 0) rc = ty_proto_decode_job(req->job, out_spec);
  Trainyard__Job *job = req->job;
  req->job = NULL; /* kept for ty__conv_normalize: its own allocation, as unpacked */
  ty_wire_free(req);
  if (rc != 0) {
    ty_wire_free(job);
    free(rid);
    ty_buf_close(&blob);
    return rc;
  }
  *out_msg = job;
  *out_request_id = rid;
  *out_blob = blob.data;
  *out_blob_len = blob.len;
  return 0;
}

int ty__conv_normalize(ty__job_msg *job, const ty_job_spec *spec, uint8_t **out, size_t *out_len) {
  Trainyard__Resources res = TRAINYARD__RESOURCES__INIT;
  res.nodes = spec->nodes;
  res.tasks_per_node = spec->tasks_per_node;
  res.gpus_per_node = spec->gpus_per_node;
  res.cpus_per_task = spec->cpus_per_task;
  res.mem_per_node = spec->mem_per_node; /* the default traind applied, and whence */
  res.mem_source = (Trainyard__MemSource)spec->mem_source;
  res.exclusive = spec->exclusive;
  res.n_required_nodes = spec->n_req_nodes, res.required_nodes = spec->req_nodes;
  res.n_excluded_nodes = spec->n_exc_nodes, res.excluded_nodes = spec->exc_nodes;
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
  /* model_bytes moved to a file (spec->model_len 0): the stored spec keeps
   * no copy of them. */
  Trainyard__GraphSpec *g = job->kind_case == TRAINYARD__JOB__KIND_GRAPH ? job->graph : NULL;
  ProtobufCBinaryData model = g ? g->model_bytes : (ProtobufCBinaryData){0, NULL};
  if (g) g->model_bytes = (ProtobufCBinaryData){spec->model_len, spec->model_bytes};
  ty_buf b;
  ty_buf_init(&b);
  int rc = ty_wire_pack(&job->base, &b);
  if (g) g->model_bytes = model;
  job->name = name, job->queue = queue, job->user = user;
  job->resources = had;
  job->run_as = had_run_as;
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
  for (size_t i = 0; out->states && i < req->n_states; i++)
    out->states[i] = (int)req->states[i];
  out->user = ty_wire_strdup(req->user);
  out->queue = ty_wire_strdup(req->queue);
  out->limit = req->limit;
  out->ended_limit = req->ended_limit;
  out->since_ms = req->since_ms;
  out->fold_arrays = req->fold_arrays;
  out->completing = req->completing;
  out->n_jobs = req->n_jobs;
  out->jobs = ty_wire_calloc(req->n_jobs, sizeof(*out->jobs));
  for (size_t i = 0; out->jobs && i < req->n_jobs; i++)
    out->jobs[i] = (ty_job_ref){req->jobs[i]->job_id, req->jobs[i]->has_task, req->jobs[i]->task};
  out->names = ty_wire_calloc(req->n_names, sizeof(*out->names));
  for (size_t i = 0; out->names && i < req->n_names; i++)
    if ((out->names[i] = ty_wire_strdup(req->names[i]))) out->n_names++;
  bool names = out->names && out->n_names == req->n_names;
  ty_wire_free(req);
  if (out->states && out->user && out->queue && out->jobs && names) return 0;
  ty__list_filter_close(out);
  return TY_ENOMEM;
}

void ty__list_filter_close(ty_list_filter *f) {
  free(f->states);
  free(f->user);
  free(f->queue);
  free(f->jobs);
  for (size_t i = 0; i < f->n_names; i++)
    free(f->names[i]);
  free(f->names);
  memset(f, 0, sizeof(*f));
}

int ty__conv_job_ref_req(const uint8_t *p, size_t n, ty_job_ref *out, bool *out_with_plan) {
  /* GetJob and ExplainJob requests share fields 1, 4 and 5 (job_id,
   * has_task, task); GetTaskLocations shares field 1. */
  Trainyard__GetJobRequest *req = ty_wire_unpack(&trainyard__get_job_request__descriptor, p, n);
  if (!req) return TY_EPROTO;
  *out = (ty_job_ref){req->job_id, req->has_task, req->task};
  if (out_with_plan) *out_with_plan = req->with_plan;
  ty_wire_free(req);
  return 0;
}

int ty__conv_cancel_req(const uint8_t *p, size_t n, ty_job_ref **out_refs, size_t *out_n) {
  Trainyard__CancelJobRequest *req =
      ty_wire_unpack(&trainyard__cancel_job_request__descriptor, p, n);
  if (!req) return TY_EPROTO;
  size_t total = req->n_job_ids + req->n_refs;
  ty_job_ref *refs = ty_wire_calloc(total, sizeof(*refs));
  for (size_t i = 0; refs && i < req->n_job_ids; i++)
    refs[i] = (ty_job_ref){.id = req->job_ids[i]};
  for (size_t i = 0; refs && i < req->n_refs; i++) {
    const Trainyard__JobRef *r = req->refs[i];
    refs[req->n_job_ids + i] = (ty_job_ref){r->job_id, r->has_task, r->task};
  }
  *out_n = total;
  ty_wire_free(req);
  if (!refs) return TY_ENOMEM;
  *out_refs = refs;
  return 0;
}

/* ---- worker requests ------------------------------------------------------------- */

/* RunningTask and TaskUpdateRequest carry the same fields. */
#define TASK_FROM(t, m)                                                                            \
  task_from(t, (m)->job_id, (m)->rank, (int)(m)->state, (m)->exit_code, (m)->term_signal,          \
            (m)->timed_out, (m)->fenced, (m)->oom_killed, (m)->reason,                             \
            &(ty_task_usage){(m)->cpu_usec, (m)->mem_peak_bytes, (m)->io_read_bytes,               \
                             (m)->io_write_bytes},                                                 \
            (m)->ended_ms)

static int task_from(ty_task_report *t, uint64_t job_id, uint32_t rank, int state, int32_t code,
                     int32_t sig, bool timed_out, bool fenced, bool oom_killed, const char *reason,
                     const ty_task_usage *use, int64_t ended_ms) {
  *t = (ty_task_report){.job_id = job_id,
                        .rank = rank,
                        .state = (ty_task_state)state,
                        .exit_code = code,
                        .term_signal = sig,
                        .timed_out = timed_out,
                        .fenced = fenced,
                        .oom_killed = oom_killed,
                        .reason = ty_wire_strdup(reason),
                        .usage = *use,
                        .ended_ms = ended_ms};
  return t->reason ? 0 : TY_ENOMEM;
}

void ty__task_report_close(ty_task_report *r) {
  free(r->reason);
  r->reason = NULL;
}

/* Keeps what ListNodes shows besides live counters: GPUs, topology and the
 * worker's version (stored with the node: ty__node_save). */
static int encode_info(const Trainyard__NodeInfo *ni, uint8_t **out, size_t *out_len) {
  Trainyard__NodeInfo keep = TRAINYARD__NODE_INFO__INIT;
  keep.n_gpus = ni->n_gpus;
  keep.gpus = ni->gpus;
  keep.topology = ni->topology;
  keep.version = ni->version;
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
  out->sets_task_limit = ni->sets_task_limit;
  int rc = out->name && out->io_addr ? 0 : TY_ENOMEM;
  if (rc == 0) rc = encode_info(ni, &out->info, &out->info_len);
  if (rc == 0 && !(out->tasks = ty_wire_calloc(req->n_tasks, sizeof(*out->tasks)))) rc = TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < req->n_tasks; i++, out->n_tasks++) {
    rc = TASK_FROM(&out->tasks[i], req->tasks[i]);
    out->tasks[i].worker_stopped = req->tasks[i]->worker_stopped;
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
  for (size_t i = 0; r->tasks && i < r->n_tasks; i++)
    ty__task_report_close(&r->tasks[i]);
  free(r->tasks);
  memset(r, 0, sizeof(*r));
}

int ty__conv_heartbeat_req(const uint8_t *p, size_t n, char **out_node, uint32_t *out_running,
                           bool *out_stopping) {
  Trainyard__HeartbeatRequest *req =
      ty_wire_unpack(&trainyard__heartbeat_request__descriptor, p, n);
  if (!req) return TY_EPROTO;
  *out_node = ty_wire_strdup(req->node);
  *out_running = req->running_tasks;
  *out_stopping = req->stopping;
  ty_wire_free(req);
  return *out_node ? 0 : TY_ENOMEM;
}

int ty__conv_task_update_req(const uint8_t *p, size_t n, ty_task_report *out) {
  Trainyard__TaskUpdateRequest *req =
      ty_wire_unpack(&trainyard__task_update_request__descriptor, p, n);
  if (!req) return TY_EPROTO;
  int rc = TASK_FROM(out, req);
  out->warned_signal = req->warned_signal;
  out->worker_stopped = req->worker_stopped;
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

int ty__conv_submit_resp(uint64_t id, uint32_t array_tasks, ty_buf *out) {
  Trainyard__SubmitJobResponse r = TRAINYARD__SUBMIT_JOB_RESPONSE__INIT;
  r.job_id = id;
  r.array_tasks = array_tasks;
  return ty_wire_pack(&r.base, out);
}

int ty__conv_submit_test_resp(const ty_sched_explain *ex, const char *const *nodes, size_t n_nodes,
                              uint32_t cpus, const char *queue, ty_buf *out) {
  Trainyard__SubmitJobResponse r = TRAINYARD__SUBMIT_JOB_RESPONSE__INIT;
  r.test_only = true;
  r.est_start_ms = ex->est_start_ms;
  r.est_kind = (Trainyard__StartEstimate)ex->est_kind; /* equal numbers (the proto says) */
  r.est_note = (char *)ex->est_note;
  r.est_lower_bound = ex->est_lower_bound;
  r.nodes = (char **)nodes, r.n_nodes = n_nodes;
  r.cpus = cpus;
  r.queue = (char *)queue;
  return ty_wire_pack(&r.base, out);
}

/* ---- JobInfo: encoded once per change ------------------------------------------------
 * A JobInfo is packed without its spec, then the stored spec (an encoded
 * Job) is appended as field 2 by hand: protobuf fields may come in any
 * order, and a job's spec is bytes the controller already holds, so
 * nothing is unpacked and packed again per listing. Responses that carry
 * JobInfos are put together the same way (ty__conv_field). */

static int put_varint(ty_buf *out, uint64_t v) {
  uint8_t b[10];
  size_t n = 0;
  do {
    b[n] = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v) b[n] |= 0x80;
    n++;
  } while (v);
  return ty_buf_append(out, b, n);
}

int ty__conv_field(uint32_t field, const uint8_t *p, size_t n, ty_buf *out) {
  int rc = put_varint(out, (uint64_t)field << 3 | 2); /* length-delimited */
  if (rc == 0) rc = put_varint(out, n);
  if (rc == 0 && n) rc = ty_buf_append(out, p, n);
  return rc;
}

/* "a,b,c" -> names (malloc'd array pointing into *copy, also malloc'd). */
static int split_nodes(const char *csv, char ***names, size_t *n, char **copy) {
  *names = NULL, *n = 0, *copy = NULL;
  if (!csv || !csv[0]) return 0;
  size_t count = 1;
  for (const char *c = csv; *c; c++)
    count += *c == ',';
  *copy = ty_wire_strdup(csv);
  *names = ty_wire_calloc(count, sizeof(char *));
  if (!*copy || !*names) {
    free(*copy), free(*names);
    *copy = NULL, *names = NULL;
    return TY_ENOMEM;
  }
  char *save = NULL;
  for (char *t = strtok_r(*copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
    (*names)[(*n)++] = t;
  return 0;
}

/* Leaves out what only the job's owner and operators see: the command,
 * its environment and working directory, a graph job's model path, model
 * bytes and config (the config names its data and checkpoint paths). The
 * parts are freed here and replaced by empty ones that the message's
 * free_unpacked frees like its own. */
static int redact(Trainyard__Job *spec) {
  if (spec->kind_case == TRAINYARD__JOB__KIND_COMMAND && spec->command) {
    trainyard__command_spec__free_unpacked(spec->command, NULL);
    spec->command = malloc(sizeof *spec->command);
    if (!spec->command) return TY_ENOMEM;
    trainyard__command_spec__init(spec->command);
  }
  if (spec->kind_case == TRAINYARD__JOB__KIND_GRAPH && spec->graph) {
    Trainyard__Parallelism parallelism = spec->graph->parallelism;
    trainyard__graph_spec__free_unpacked(spec->graph, NULL);
    spec->graph = malloc(sizeof *spec->graph);
    if (!spec->graph) return TY_ENOMEM;
    trainyard__graph_spec__init(spec->graph);
    spec->graph->parallelism = parallelism; /* a mode, not the owner's: the plan's kind */
  }
  return 0;
}

/* Leaves out what a listing never shows and may be large: the command's
 * argv (a batch script is in it) and env, a graph job's model bytes and
 * config. The cwd and model_path stay. */
static void abridge(Trainyard__Job *spec) {
  if (spec->kind_case == TRAINYARD__JOB__KIND_COMMAND && spec->command) {
    ty_wire_strv_free(spec->command->argv, spec->command->n_argv);
    ty_wire_strv_free(spec->command->env, spec->command->n_env);
    spec->command->argv = spec->command->env = NULL;
    spec->command->n_argv = spec->command->n_env = 0;
  }
  if (spec->kind_case == TRAINYARD__JOB__KIND_GRAPH && spec->graph) {
    ty_wire_strv_free(spec->graph->env, spec->graph->n_env);
    spec->graph->env = NULL, spec->graph->n_env = 0;
    free(spec->graph->model_bytes.data);
    free(spec->graph->train_config.data);
    spec->graph->model_bytes = (ProtobufCBinaryData){0, NULL};
    spec->graph->train_config = (ProtobufCBinaryData){0, NULL};
  }
}

/* Field 2 of a JobInfo: the stored spec as it is, or redacted or abridged
 * (unpacked, cut and packed again: such an encoding is cached like a full
 * one). */
static int spec_field(const ty__job_view *v, ty_buf *out) {
  if (!v->spec_len) return 0;
  if (!v->redact && !v->abridge) return ty__conv_field(2, v->spec, v->spec_len, out);
  Trainyard__Job *job = ty_wire_unpack(&trainyard__job__descriptor, v->spec, v->spec_len);
  if (!job) return TY_EPROTO;
  ty_buf b;
  ty_buf_init(&b);
  if (v->abridge) abridge(job);
  int rc = v->redact ? redact(job) : 0;
  if (rc == 0) rc = ty_wire_pack(&job->base, &b);
  if (rc == 0) rc = ty__conv_field(2, b.data, b.len, out);
  ty_buf_close(&b);
  ty_wire_free(job);
  return rc;
}

int ty__conv_job_info(const ty__job_view *v, ty_buf *out) {
  Trainyard__JobInfo info = TRAINYARD__JOB_INFO__INIT;
  info.id = v->id;
  info.state = (Trainyard__JobState)v->state;
  info.reason = ty_wire_str(v->reason);
  info.exit_code = v->exit_code, info.term_signal = v->term_signal;
  info.submit_time_ms = v->submit_ms, info.start_time_ms = v->start_ms;
  info.end_time_ms = v->end_ms;
  info.requeue_count = v->requeue_count;
  info.ranks_ending = v->ranks_ending;
  info.held = v->held;
  info.priority = v->priority;
  info.last_checkpoint_ms = v->last_ckpt_ms;
  info.array_job_id = v->array_id, info.array_task_id = v->array_task;
  info.dependency = ty_wire_str(v->dependency);
  info.cpu_usec = v->usage.cpu_usec, info.mem_peak_bytes = v->usage.mem_peak_bytes;
  info.io_read_bytes = v->usage.io_read_bytes, info.io_write_bytes = v->usage.io_write_bytes;
  info.usage_measured = v->usage_measured;
  info.redacted = v->redact;
  char reason[TY_ERR_LEN + 64];
  info.abridged = v->abridge && !v->redact;
  if (v->redact) { /* accounting is the owner's and operators' (docs/security.md) */
    ty_job_reason_public(v->reason, reason, sizeof reason);
    info.reason = reason;
    info.exit_code = info.term_signal = 0;
    info.cpu_usec = info.mem_peak_bytes = info.io_read_bytes = info.io_write_bytes = 0;
    info.usage_measured = false;
  }
  char *copy = NULL;
  int rc = split_nodes(v->nodes_csv, &info.nodes, &info.n_nodes, &copy);
  if (rc == 0) rc = ty_wire_pack(&info.base, out);
  if (rc == 0) rc = spec_field(v, out);
  free(info.nodes);
  free(copy);
  return rc;
}

void ty__job_view_row(const ty_job_row *r, ty__job_view *v) {
  *v = (ty__job_view){.id = r->id,
                      .spec = r->spec,
                      .spec_len = r->spec_len,
                      .state = r->state,
                      .reason = r->reason,
                      .exit_code = r->exit_code,
                      .term_signal = r->term_signal,
                      .submit_ms = r->submit_ms,
                      .start_ms = r->start_ms,
                      .end_ms = r->end_ms,
                      .nodes_csv = r->nodes,
                      .requeue_count = r->requeue_count,
                      .held = r->held,
                      .last_ckpt_ms = r->last_ckpt_ms,
                      .array_id = (uint64_t)r->array_id,
                      .array_task = r->array_task,
                      .usage = {(uint64_t)r->cpu_usec, (uint64_t)r->mem_peak, (uint64_t)r->io_read,
                                (uint64_t)r->io_write},
                      .usage_measured = r->acct_measured};
}

int ty__conv_get_job_resp(const uint8_t *info, size_t info_len, const ty_event_copy *ev,
                          size_t n_ev, ty_buf *out) {
  Trainyard__GetJobResponse r = TRAINYARD__GET_JOB_RESPONSE__INIT;
  Trainyard__JobEvent *evs = ty_wire_calloc(n_ev, sizeof(*evs));
  Trainyard__JobEvent **ptrs = ty_wire_calloc(n_ev, sizeof(*ptrs));
  int rc = evs && ptrs ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n_ev; i++) {
    trainyard__job_event__init(&evs[i]);
    evs[i].time_ms = ev[i].time_ms;
    evs[i].from_state = (Trainyard__JobState)ev[i].from_state;
    evs[i].to_state = (Trainyard__JobState)ev[i].to_state;
    evs[i].reason = ev[i].reason;
    ptrs[i] = &evs[i];
  }
  r.n_events = n_ev;
  r.events = ptrs;
  if (rc == 0) rc = ty__conv_field(1, info, info_len, out);
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
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
    rs[i].has_task = res[i].has_task, rs[i].task = res[i].task;
    rs[i].cancelled = res[i].cancelled;
    ptrs[i] = &rs[i];
  }
  r.n_results = n;
  r.results = ptrs;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  free(rs);
  free(ptrs);
  return rc;
}

/* A node whose worker is refused at registration shows that, and when it
 * last tried (a drain's reason after it), whatever reason it had before. */
static char *node_reason(const ty_cluster_node *nd, char *buf, size_t len) {
  if (nd->conn || !nd->refused[0]) return ty_wire_str(nd->reason);
  const char *drain = nd->drain && nd->reason ? strstr(nd->reason, "drained by ") : NULL;
  snprintf(buf, len, "registration refused: %s (last try %lld s ago)%s%s", nd->refused,
           (long long)((ty_mono_ms() - nd->refused_mono) / 1000), drain ? "; " : "",
           drain ? drain : "");
  return buf;
}

static void node_fill(Trainyard__NodeInfo *ni, const ty_cluster_node *nd,
                      const Trainyard__NodeInfo *u, char *reason, size_t reason_len) {
  trainyard__node_info__init(ni);
  ni->name = nd->name;
  ni->state = (Trainyard__NodeState)nd->state;
  ni->cpus = nd->cpus;
  ni->memory = nd->memory;
  ni->cpus_used = nd->cpus_used;
  ni->gpus_used = (uint32_t)__builtin_popcountll(nd->gpus_used);
  ni->io_addr = ty_wire_str(nd->io_addr);
  ni->last_heartbeat_ms = nd->last_seen_ms;
  ni->reason = node_reason(nd, reason, reason_len);
  ni->running_tasks = nd->running_tasks;
  ni->switch_name = ty_wire_str(nd->switch_name);
  if (u) {
    ni->n_gpus = u->n_gpus;
    ni->gpus = u->gpus;
    ni->topology = u->topology;
    ni->version = u->version;
  }
}

int ty__conv_node_info(const ty_cluster_node *nd, ty_buf *out) {
  Trainyard__NodeInfo *u =
      nd->info && nd->info_len
          ? ty_wire_unpack(&trainyard__node_info__descriptor, nd->info, nd->info_len)
          : NULL;
  Trainyard__NodeInfo ni;
  char reason[256];
  node_fill(&ni, nd, u, reason, sizeof reason);
  int rc = ty_wire_pack(&ni.base, out);
  ty_wire_free(u);
  return rc;
}

int ty__conv_list_nodes_resp(ty_cluster_node *const *nodes, size_t n, ty_buf *out) {
  Trainyard__ListNodesResponse r = TRAINYARD__LIST_NODES_RESPONSE__INIT;
  Trainyard__NodeInfo *infos = ty_wire_calloc(n, sizeof(*infos));
  Trainyard__NodeInfo **ptrs = ty_wire_calloc(n, sizeof(*ptrs));
  Trainyard__NodeInfo **unpacked = ty_wire_calloc(n, sizeof(*unpacked));
  char(*reasons)[256] = ty_wire_calloc(n, sizeof(*reasons));
  int rc = infos && ptrs && unpacked && reasons ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const ty_cluster_node *nd = nodes[i];
    if (nd->info && nd->info_len)
      unpacked[i] = ty_wire_unpack(&trainyard__node_info__descriptor, nd->info, nd->info_len);
    node_fill(&infos[i], nd, unpacked[i], reasons[i], sizeof reasons[i]);
    ptrs[i] = &infos[i];
  }
  r.n_nodes = n;
  r.nodes = ptrs;
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  for (size_t i = 0; unpacked && i < n; i++)
    ty_wire_free(unpacked[i]);
  free(unpacked);
  free(reasons);
  free(infos);
  free(ptrs);
  return rc;
}

int ty__conv_register_resp(uint32_t heartbeat_ms, uint32_t node_timeout_ms, ty_buf *out) {
  Trainyard__RegisterNodeResponse r = TRAINYARD__REGISTER_NODE_RESPONSE__INIT;
  r.heartbeat_interval_ms = heartbeat_ms;
  r.node_timeout_ms = node_timeout_ms;
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
  r.cpus_on_node = t->cpus_on_node;
  r.restart_count = t->restart_count;
  r.job_submit_ms = t->job_submit_ms;
  ty_proto_process process;
  r.process = ty_proto_encode_process(&t->process, &process);
  Trainyard__InteractiveSpec ia;
  r.interactive = ty_proto_encode_interactive(&t->interactive, &ia);
  r.attach_key =
      (ProtobufCBinaryData){t->attach_key ? t->attach_key_len : 0, (uint8_t *)t->attach_key};
  r.warn_signal = t->warn_signal, r.warn_before_s = t->warn_before_s;
  r.warn_batch_only = t->warn_batch_only;
  Trainyard__GraphLaunch gl = TRAINYARD__GRAPH_LAUNCH__INIT;
  if (t->graph) {
    gl.model_path = ty_wire_str(t->model_path);
    gl.model_bytes = (ProtobufCBinaryData){t->model_len, (uint8_t *)t->model_bytes};
    gl.train_config = (ProtobufCBinaryData){t->train_config_len, (uint8_t *)t->train_config};
    gl.checkpoint_path = ty_wire_str(t->checkpoint_path);
    gl.checkpoint_root = ty_wire_str(t->checkpoint_root);
    gl.job_submit_ms = t->job_submit_ms;
    gl.bucket_mb = t->bucket_mb;
    gl.plan = (ProtobufCBinaryData){t->plan_len, (uint8_t *)t->plan};
    r.graph = &gl;
  }
  r.array_job_id = t->array_job_id, r.array_task_id = t->array_task_id;
  r.array_task_count = t->array_task_count, r.array_task_min = t->array_task_min;
  r.array_task_max = t->array_task_max, r.array_task_step = t->array_task_step;
  r.job_name = ty_wire_str(t->job_name), r.queue = ty_wire_str(t->queue);
  r.nodelist = ty_wire_str(t->nodelist);
  r.num_nodes = t->num_nodes, r.node_index = t->node_index;
  return ty_wire_pack(&r.base, out);
}

int ty__conv_kill_req(uint64_t job_id, int sig, uint32_t grace_s, bool batch_only, ty_buf *out) {
  Trainyard__KillTaskRequest r = TRAINYARD__KILL_TASK_REQUEST__INIT;
  r.job_id = job_id;
  r.signal = sig;
  r.grace_s = grace_s;
  r.batch_only = batch_only;
  return ty_wire_pack(&r.base, out);
}

int ty__conv_set_limit_req(uint64_t job_id, uint32_t time_limit_s, ty_buf *out) {
  Trainyard__SetTaskLimitRequest r = TRAINYARD__SET_TASK_LIMIT_REQUEST__INIT;
  r.job_id = job_id;
  r.time_limit_s = time_limit_s;
  return ty_wire_pack(&r.base, out);
}

int ty__conv_launch_resp(const uint8_t *p, size_t n, bool *out_worker_stopping,
                         bool *out_node_fault) {
  *out_worker_stopping = false;
  *out_node_fault = false;
  if (n == 0) return 0;
  Trainyard__LaunchTaskResponse *r =
      ty_wire_unpack(&trainyard__launch_task_response__descriptor, p, n);
  if (!r) return TY_EPROTO;
  *out_worker_stopping = r->worker_stopping;
  *out_node_fault = r->node_fault;
  ty_wire_free(r);
  return 0;
}
