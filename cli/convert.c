/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The only file of cli/ that sees protobuf-c types: plain cli structs in,
 * encoded requests out; answers in, plain structs out. Encoders point the
 * messages at the caller's strings for the duration of the pack (nothing is
 * copied twice); decoders copy what they keep, so the unpacked message can be
 * freed before returning.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/trainyard.pb-c.h"

/* Job files are small; this bounds what a mistaken path (a model, a disk
 * image) can make us read. */
#define MAX_JOB_FILE (64u * 1024u * 1024u)

static int pack(const ProtobufCMessage *m, ty_buf *out) {
  size_t n = protobuf_c_message_get_packed_size(m);
  int rc = ty_buf_reserve(out, n + 1);
  if (rc) return rc;
  out->len += protobuf_c_message_pack(m, out->data + out->len);
  return 0;
}

static char *str_or_empty(const char *s) {
  return (char *)(s ? s : "");
}

int ty_cli_encode_submit(const ty_cli_job *j, ty_buf *out) {
  Trainyard__Resources res = TRAINYARD__RESOURCES__INIT;
  res.nodes = j->nodes, res.tasks_per_node = j->tasks_per_node;
  res.gpus_per_node = j->gpus_per_node, res.cpus_per_task = j->cpus_per_task;
  res.mem_per_node = j->mem_per_node;
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.n_argv = j->argc, cmd.argv = j->argv;
  cmd.n_env = j->envc, cmd.env = j->env;
  cmd.cwd = str_or_empty(j->cwd);
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = str_or_empty(j->name), job.queue = str_or_empty(j->queue);
  job.user = str_or_empty(j->user);
  job.priority = j->priority, job.time_limit_s = j->time_limit_s;
  job.warn_signal = j->warn_signal, job.warn_before_s = j->warn_before_s;
  job.max_rank_failure_requeues = j->max_rank_failure_requeues;
  job.resources = &res;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND;
  job.command = &cmd;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &job;
  return pack(&req.base, out);
}

int ty_cli_encode_submit_raw(const uint8_t *data, size_t len, const char *user, ty_buf *out) {
  Trainyard__Job *job = trainyard__job__unpack(NULL, len, data);
  if (!job) return TY_EPROTO;
  char *saved = job->user;
  if ((!job->user || !*job->user) && user) job->user = (char *)user;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = job;
  int rc = pack(&req.base, out);
  job->user = saved; /* free_unpacked must not free the caller's string */
  trainyard__job__free_unpacked(job, NULL);
  return rc;
}

static int read_file(const char *path, ty_buf *out, ty_cli_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return ty_cli_errf(err, TY_EIO, "%s: %s", path, strerror(errno));
  uint8_t chunk[65536];
  size_t n;
  int rc = 0;
  while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (out->len + n > MAX_JOB_FILE)
      rc = ty_cli_errf(err, TY_ETOOBIG, "%s: larger than %u MiB, not a job file", path,
                       MAX_JOB_FILE >> 20);
    else
      rc = ty_buf_append(out, chunk, n);
  }
  if (rc == 0 && ferror(f)) rc = ty_cli_errf(err, TY_EIO, "%s: %s", path, strerror(errno));
  fclose(f);
  return rc;
}

/* Protobuf text format is the usual mistake: say how to encode it. */
static bool looks_like_text(const ty_buf *b) {
  for (size_t i = 0; i < b->len; i++)
    if (b->data[i] < 0x09 || (b->data[i] > 0x0D && b->data[i] < 0x20)) return false;
  return true;
}

int ty_cli_load_job_file(const char *path, const char *user, ty_buf *out, ty_cli_err *err) {
  ty_buf raw;
  ty_buf_init(&raw);
  int rc = read_file(path, &raw, err);
  if (rc == 0 && raw.len == 0)
    rc = ty_cli_errf(err, TY_EPROTO, "%s: empty file, not a trainyard.Job message", path);
  if (rc == 0) {
    rc = ty_cli_encode_submit_raw(raw.data, raw.len, user, out);
    if (rc == TY_EPROTO && looks_like_text(&raw))
      ty_cli_errf(err, rc,
                  "%s: not a valid trainyard.Job message (protobuf decode failed); if it "
                  "is text format, encode it first: protoc --encode=trainyard.Job "
                  "--proto_path=proto proto/trainyard.proto < %s > job.pb",
                  path, path);
    else if (rc == TY_EPROTO)
      ty_cli_errf(err, rc, "%s: not a valid trainyard.Job message (protobuf decode failed)", path);
  }
  ty_buf_close(&raw);
  return rc;
}

int ty_cli_encode_list_jobs(const ty_cli_ls_args *a, ty_buf *out) {
  Trainyard__ListJobsRequest req = TRAINYARD__LIST_JOBS_REQUEST__INIT;
  Trainyard__JobState states[TY_CLI_JOB_STATE_MAX];
  for (size_t i = 0; i < a->nstates; i++)
    states[i] = (Trainyard__JobState)a->states[i];
  req.n_states = a->all ? 0 : a->nstates;
  req.states = states;
  req.user = str_or_empty(a->user), req.queue = str_or_empty(a->queue);
  return pack(&req.base, out);
}

int ty_cli_encode_job_id(uint64_t id, ty_buf *out) {
  /* GetJobRequest and GetTaskLocationsRequest are both { uint64 job_id = 1; }
   * but are packed through their own descriptors to stay honest. */
  Trainyard__GetJobRequest req = TRAINYARD__GET_JOB_REQUEST__INIT;
  req.job_id = id;
  return pack(&req.base, out);
}

int ty_cli_encode_cancel(const uint64_t *ids, size_t n, const char *user, ty_buf *out) {
  Trainyard__CancelJobRequest req = TRAINYARD__CANCEL_JOB_REQUEST__INIT;
  req.n_job_ids = n, req.job_ids = (uint64_t *)ids;
  req.user = str_or_empty(user);
  return pack(&req.base, out);
}

int ty_cli_encode_read_log(uint64_t id, uint32_t rank, uint64_t offset, bool follow, ty_buf *out) {
  Trainyard__ReadLogRequest req = TRAINYARD__READ_LOG_REQUEST__INIT;
  req.job_id = id, req.rank = rank, req.offset = offset, req.follow = follow;
  return pack(&req.base, out);
}

/* ---- decoders ---------------------------------------------------------------- */

static char **copy_strs(char **src, size_t n) {
  char **dst = n ? ty_xcalloc(n, sizeof *dst) : NULL;
  for (size_t i = 0; i < n; i++)
    dst[i] = ty_strdup(src[i] ? src[i] : "");
  return dst;
}

static char *copy_str(const char *s) {
  return ty_strdup(s ? s : "");
}

static void job_from_pb(const Trainyard__Job *pb, ty_cli_job *j) {
  memset(j, 0, sizeof *j);
  if (!pb) return;
  j->name = copy_str(pb->name), j->queue = copy_str(pb->queue), j->user = copy_str(pb->user);
  j->priority = pb->priority, j->time_limit_s = pb->time_limit_s;
  j->warn_signal = pb->warn_signal, j->warn_before_s = pb->warn_before_s;
  j->max_rank_failure_requeues = pb->max_rank_failure_requeues;
  if (pb->resources) {
    j->nodes = pb->resources->nodes, j->tasks_per_node = pb->resources->tasks_per_node;
    j->gpus_per_node = pb->resources->gpus_per_node;
    j->cpus_per_task = pb->resources->cpus_per_task;
    j->mem_per_node = pb->resources->mem_per_node;
  }
  if (pb->kind_case == TRAINYARD__JOB__KIND_COMMAND && pb->command) {
    j->argv = copy_strs(pb->command->argv, pb->command->n_argv), j->argc = pb->command->n_argv;
    j->env = copy_strs(pb->command->env, pb->command->n_env), j->envc = pb->command->n_env;
    j->cwd = copy_str(pb->command->cwd);
  } else if (pb->kind_case == TRAINYARD__JOB__KIND_GRAPH && pb->graph) {
    j->is_graph = true;
    j->model_path = copy_str(pb->graph->model_path);
  }
}

static void jobinfo_from_pb(const Trainyard__JobInfo *pb, ty_cli_jobinfo *j) {
  memset(j, 0, sizeof *j);
  j->id = pb->id;
  job_from_pb(pb->spec, &j->spec);
  j->state = (int)pb->state;
  j->reason = copy_str(pb->reason);
  j->exit_code = pb->exit_code, j->term_signal = pb->term_signal;
  j->submit_ms = pb->submit_time_ms, j->start_ms = pb->start_time_ms, j->end_ms = pb->end_time_ms;
  j->nodes = copy_strs(pb->nodes, pb->n_nodes), j->nnodes = pb->n_nodes;
  j->requeue_count = pb->requeue_count;
}

void ty_cli_jobinfo_close(ty_cli_jobinfo *j) {
  if (!j) return;
  ty_cli_job_close(&j->spec);
  free(j->reason);
  for (size_t i = 0; i < j->nnodes; i++)
    free(j->nodes[i]);
  free(j->nodes);
  memset(j, 0, sizeof *j);
}

void ty_cli_jobinfos_free(ty_cli_jobinfo *js, size_t n) {
  for (size_t i = 0; js && i < n; i++)
    ty_cli_jobinfo_close(&js[i]);
  free(js);
}

int ty_cli_decode_submit(const uint8_t *p, size_t n, uint64_t *out_id) {
  Trainyard__SubmitJobResponse *r = trainyard__submit_job_response__unpack(NULL, n, p);
  if (!r) return TY_EPROTO;
  *out_id = r->job_id;
  trainyard__submit_job_response__free_unpacked(r, NULL);
  return 0;
}

int ty_cli_decode_list_jobs(const uint8_t *p, size_t n, ty_cli_jobinfo **out, size_t *out_n) {
  Trainyard__ListJobsResponse *r = trainyard__list_jobs_response__unpack(NULL, n, p);
  if (!r) return TY_EPROTO;
  *out = r->n_jobs ? ty_xcalloc(r->n_jobs, sizeof **out) : NULL;
  *out_n = r->n_jobs;
  for (size_t i = 0; i < r->n_jobs; i++)
    jobinfo_from_pb(r->jobs[i], &(*out)[i]);
  trainyard__list_jobs_response__free_unpacked(r, NULL);
  return 0;
}

int ty_cli_decode_get_job(const uint8_t *p, size_t n, ty_cli_jobinfo *out_job,
                          ty_cli_event **out_events, size_t *out_nevents) {
  Trainyard__GetJobResponse *r = trainyard__get_job_response__unpack(NULL, n, p);
  if (!r || !r->job) {
    if (r) trainyard__get_job_response__free_unpacked(r, NULL);
    return TY_EPROTO;
  }
  jobinfo_from_pb(r->job, out_job);
  ty_cli_event *ev = r->n_events ? ty_xcalloc(r->n_events, sizeof *ev) : NULL;
  for (size_t i = 0; i < r->n_events; i++) {
    ev[i].time_ms = r->events[i]->time_ms;
    ev[i].from = (int)r->events[i]->from_state, ev[i].to = (int)r->events[i]->to_state;
    ev[i].reason = copy_str(r->events[i]->reason);
  }
  *out_events = ev;
  *out_nevents = r->n_events;
  trainyard__get_job_response__free_unpacked(r, NULL);
  return 0;
}

void ty_cli_events_free(ty_cli_event *ev, size_t n) {
  for (size_t i = 0; ev && i < n; i++)
    free(ev[i].reason);
  free(ev);
}

int ty_cli_decode_nodes(const uint8_t *p, size_t n, ty_cli_node **out, size_t *out_n) {
  Trainyard__ListNodesResponse *r = trainyard__list_nodes_response__unpack(NULL, n, p);
  if (!r) return TY_EPROTO;
  ty_cli_node *ns = r->n_nodes ? ty_xcalloc(r->n_nodes, sizeof *ns) : NULL;
  for (size_t i = 0; i < r->n_nodes; i++) {
    const Trainyard__NodeInfo *pb = r->nodes[i];
    ns[i].name = copy_str(pb->name), ns[i].io_addr = copy_str(pb->io_addr);
    ns[i].reason = copy_str(pb->reason), ns[i].topology = copy_str(pb->topology);
    ns[i].state = (int)pb->state;
    ns[i].cpus = pb->cpus, ns[i].cpus_used = pb->cpus_used;
    ns[i].gpus = (uint32_t)pb->n_gpus, ns[i].gpus_used = pb->gpus_used;
    ns[i].running_tasks = pb->running_tasks, ns[i].memory = pb->memory;
    ns[i].last_heartbeat_ms = pb->last_heartbeat_ms;
  }
  *out = ns;
  *out_n = r->n_nodes;
  trainyard__list_nodes_response__free_unpacked(r, NULL);
  return 0;
}

void ty_cli_nodes_free(ty_cli_node *ns, size_t n) {
  for (size_t i = 0; ns && i < n; i++)
    free(ns[i].name), free(ns[i].io_addr), free(ns[i].reason), free(ns[i].topology);
  free(ns);
}

int ty_cli_decode_task_locs(const uint8_t *p, size_t n, ty_cli_task_loc **out, size_t *out_n,
                            int *out_state) {
  Trainyard__GetTaskLocationsResponse *r =
      trainyard__get_task_locations_response__unpack(NULL, n, p);
  if (!r) return TY_EPROTO;
  ty_cli_task_loc *ts = r->n_tasks ? ty_xcalloc(r->n_tasks, sizeof *ts) : NULL;
  for (size_t i = 0; i < r->n_tasks; i++) {
    ts[i].rank = r->tasks[i]->rank;
    ts[i].node = copy_str(r->tasks[i]->node), ts[i].io_addr = copy_str(r->tasks[i]->io_addr);
  }
  *out = ts;
  *out_n = r->n_tasks;
  *out_state = (int)r->state;
  trainyard__get_task_locations_response__free_unpacked(r, NULL);
  return 0;
}

void ty_cli_task_locs_free(ty_cli_task_loc *ts, size_t n) {
  for (size_t i = 0; ts && i < n; i++)
    free(ts[i].node), free(ts[i].io_addr);
  free(ts);
}

int ty_cli_decode_cancel(const uint8_t *p, size_t n, ty_cli_cancel_result **out, size_t *out_n) {
  Trainyard__CancelJobResponse *r = trainyard__cancel_job_response__unpack(NULL, n, p);
  if (!r) return TY_EPROTO;
  ty_cli_cancel_result *rs = r->n_results ? ty_xcalloc(r->n_results, sizeof *rs) : NULL;
  for (size_t i = 0; i < r->n_results; i++) {
    rs[i].id = r->results[i]->job_id, rs[i].status = r->results[i]->status;
    rs[i].message = copy_str(r->results[i]->message);
  }
  *out = rs;
  *out_n = r->n_results;
  trainyard__cancel_job_response__free_unpacked(r, NULL);
  return 0;
}

void ty_cli_cancel_results_free(ty_cli_cancel_result *rs, size_t n) {
  for (size_t i = 0; rs && i < n; i++)
    free(rs[i].message);
  free(rs);
}

int ty_cli_decode_log_chunk(const uint8_t *p, size_t n, uint32_t *out_rank, uint64_t *out_offset,
                            ty_buf *data) {
  Trainyard__LogChunk *c = trainyard__log_chunk__unpack(NULL, n, p);
  if (!c) return TY_EPROTO;
  *out_rank = c->rank, *out_offset = c->offset;
  int rc = ty_buf_append(data, c->data.data, c->data.len);
  trainyard__log_chunk__free_unpacked(c, NULL);
  return rc;
}
