/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The only file of cli/ that sees protobuf-c types: plain cli structs in,
 * encoded requests out; answers in, plain structs out. Encoders point the
 * messages at the caller's strings for the duration of the pack (nothing is
 * copied twice); decoders copy what they keep, so the unpacked message can be
 * freed before returning.
 */
#include "cli/cli.h"
#include "cli/cli_history.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/convert.h"
#include "proto/train_config.pb-c.h"

/* Job files are small; this bounds what a mistaken path (a model, a disk
 * image) can make us read. */
#define MAX_JOB_FILE (64u * 1024u * 1024u)

int ty_cli_encode_submit(const ty_job_spec *j, const char *request_id, ty_buf *out) {
  ty_proto_job pj;
  ty_proto_encode_job(j, &pj);
  int rc = ty_proto_encode_job_extra(j, &pj);
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &pj.job;
  req.request_id = ty_wire_str(request_id);
  if (rc == 0) rc = ty_wire_pack(&req.base, out);
  ty_proto_job_close(&pj);
  return rc;
}

static int anchor_data_dir(Trainyard__TrainConfig *cfg, const char *cwd, ty_buf *raw);

/* A graph job file's relative paths are the submitter's, as those of
 * `submit --model --config` are: the model path and the config's data
 * directory (anchor_data_dir) are made absolute from this process's
 * working directory. g then points at *model and cfg's bytes (the caller
 * restores and frees). */
static int anchor_graph_file(Trainyard__GraphSpec *g, ty_buf *cfg, char **model) {
  char here[4096];
  const char *cwd = getcwd(here, sizeof here);
  if (!cwd) return 0; /* nothing to anchor to: the paths go as written */
  if (g->model_path && g->model_path[0] && g->model_path[0] != '/') {
    if (asprintf(model, "%s/%s", cwd, g->model_path) < 0) return TY_ENOMEM;
    g->model_path = *model;
  }
  if (g->train_config.len == 0) return 0;
  Trainyard__TrainConfig *c = ty_wire_unpack(&trainyard__train_config__descriptor,
                                             g->train_config.data, g->train_config.len);
  if (!c) return 0; /* the controller refuses it, with its reason */
  int rc = anchor_data_dir(c, cwd, cfg);
  if (rc == 0 && cfg->len) g->train_config.data = cfg->data, g->train_config.len = cfg->len;
  ty_wire_free(c);
  return rc;
}

int ty_cli_encode_submit_raw(const uint8_t *data, size_t len, const char *user,
                             const char *request_id, ty_buf *out) {
  Trainyard__Job *job = ty_wire_unpack(&trainyard__job__descriptor, data, len);
  if (!job) return TY_EPROTO;
  char *saved = job->user, *model = NULL;
  if ((!job->user || !*job->user) && user) job->user = (char *)user;
  Trainyard__GraphSpec *g = job->kind_case == TRAINYARD__JOB__KIND_GRAPH ? job->graph : NULL;
  char *saved_model = g ? g->model_path : NULL;
  ProtobufCBinaryData saved_cfg = g ? g->train_config : (ProtobufCBinaryData){0};
  ty_buf cfg;
  ty_buf_init(&cfg);
  int rc = g ? anchor_graph_file(g, &cfg, &model) : 0;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = job;
  req.request_id = ty_wire_str(request_id);
  if (rc == 0) rc = ty_wire_pack(&req.base, out);
  job->user = saved; /* ty_wire_free must not free the caller's string */
  if (g) g->model_path = saved_model, g->train_config = saved_cfg; /* nor ours */
  free(model);
  ty_buf_close(&cfg);
  ty_wire_free(job);
  return rc;
}

static int read_file(const char *path, ty_buf *out, char *err, size_t err_len) {
  FILE *f = fopen(path, "rb");
  if (!f) return ty_errf(err, err_len, TY_EIO, "%s: %s", path, strerror(errno));
  uint8_t chunk[65536];
  size_t n;
  int rc = 0;
  while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (out->len + n > MAX_JOB_FILE)
      rc = ty_errf(err, err_len, TY_ETOOBIG, "%s: larger than %u MiB, not a job file", path,
                   MAX_JOB_FILE >> 20);
    else
      rc = ty_buf_append(out, chunk, n);
  }
  if (rc == 0 && ferror(f)) rc = ty_errf(err, err_len, TY_EIO, "%s: %s", path, strerror(errno));
  fclose(f);
  return rc;
}

/* Protobuf text format is the usual mistake: say how to encode it. */
static bool looks_like_text(const ty_buf *b) {
  for (size_t i = 0; i < b->len; i++)
    if (b->data[i] < 0x09 || (b->data[i] > 0x0D && b->data[i] < 0x20)) return false;
  return true;
}

int ty_cli_load_job_file(const char *path, const char *user, const char *request_id, ty_buf *out,
                         char *err, size_t err_len) {
  ty_buf raw;
  ty_buf_init(&raw);
  int rc = read_file(path, &raw, err, err_len);
  if (rc == 0 && raw.len == 0)
    rc = ty_errf(err, err_len, TY_EPROTO, "%s: empty file, not a trainyard.Job message", path);
  if (rc == 0) {
    rc = ty_cli_encode_submit_raw(raw.data, raw.len, user, request_id, out);
    if (rc == TY_EPROTO && looks_like_text(&raw))
      ty_errf(err, err_len, rc,
              "%s: not a valid trainyard.Job message (protobuf decode failed); a batch "
              "script starts with #! (e.g. #!/bin/bash); if it is text format, encode it "
              "first: protoc --encode=trainyard.Job --proto_path=proto "
              "proto/trainyard.proto < %s > job.pb",
              path, path);
    else if (rc == TY_EPROTO)
      ty_errf(err, err_len, rc, "%s: not a valid trainyard.Job message (protobuf decode failed)",
              path);
  }
  ty_buf_close(&raw);
  return rc;
}

bool ty_cli_submit_is_graph(const uint8_t *req, size_t len) {
  Trainyard__SubmitJobRequest *m =
      ty_wire_unpack(&trainyard__submit_job_request__descriptor, req, len);
  bool graph = m && m->job && m->job->kind_case == TRAINYARD__JOB__KIND_GRAPH;
  ty_wire_free(m);
  return graph;
}

/* A graph job's ranks run in their worker's job directory, so the data
 * files a config names by relative path are taken from the submitter's
 * directory, as the model's path is: dataset.dir becomes cwd (when unset)
 * or cwd/dir (when relative), for the files of `train`, `test` and
 * `tokens`, and a relative dir of a named dataset (Fashion-MNIST's) too.
 * Fashion-MNIST's default directory ("" = Debian's) stays. The config
 * re-encoded into *raw; 0 also when nothing changed. */
static int anchor_data_dir(Trainyard__TrainConfig *cfg, const char *cwd, ty_buf *raw) {
  Trainyard__Dataset *d = cfg->dataset;
  bool files = d && (d->n_train || d->n_test || d->tokens);
  if (!d || !cwd || !cwd[0] || d->dir[0] == '/' || (!files && !d->dir[0])) return 0;
  char *old = d->dir, *dir = NULL;
  if (asprintf(&dir, d->dir[0] ? "%s/%s" : "%s", cwd, d->dir) < 0) return TY_ENOMEM;
  d->dir = dir;
  ty_buf_close(raw);
  ty_buf_init(raw);
  int rc = ty_wire_pack(&cfg->base, raw);
  d->dir = old; /* the unpacked message frees its own */
  free(dir);
  return rc;
}

int ty_cli_load_train_config(const char *path, ty_job_spec *job, char *err, size_t err_len) {
  ty_buf raw;
  ty_buf_init(&raw);
  char why[TY_ERR_LEN] = "";
  int rc = read_file(path, &raw, why, sizeof why);
  if (rc != 0) ty_errf(err, err_len, rc, "--config: %s", why);
  Trainyard__TrainConfig *cfg = NULL;
  if (rc == 0 && (raw.len == 0 || !(cfg = ty_wire_unpack(&trainyard__train_config__descriptor,
                                                         raw.data, raw.len)))) {
    rc = TY_EPROTO;
    if (raw.len && looks_like_text(&raw))
      ty_errf(err, err_len, rc,
              "--config: %s is not a binary trainyard.TrainConfig; if it is text format, "
              "encode it first: protoc --encode=trainyard.TrainConfig --proto_path=proto "
              "proto/train_config.proto < %s > config.pb",
              path, path);
    else
      ty_errf(err, err_len, rc, "--config: %s %s a trainyard.TrainConfig message", path,
              raw.len ? "does not decode as" : "is empty, not");
  }
  if (rc == 0 && anchor_data_dir(cfg, job->cwd, &raw) != 0)
    rc = ty_errf(err, err_len, TY_ENOMEM, "--config: out of memory");
  ty_wire_free(cfg);
  if (rc == 0) {
    free(job->train_config);
    job->train_config = raw.data, job->train_config_len = raw.len; /* moved */
    ty_buf_init(&raw);
  }
  ty_buf_close(&raw);
  return rc;
}

int ty_cli_encode_list_jobs(const ty_cli_ls_args *a, ty_buf *out) {
  Trainyard__ListJobsRequest req = TRAINYARD__LIST_JOBS_REQUEST__INIT;
  Trainyard__JobState states[TY_JOB_STATE_MAX];
  for (size_t i = 0; i < a->nstates; i++)
    states[i] = (Trainyard__JobState)a->states[i];
  req.n_states = a->all ? 0 : a->nstates;
  req.states = states;
  req.user = ty_wire_str(a->user), req.queue = ty_wire_str(a->queue);
  req.since_ms = a->since_ms;
  req.fold_arrays = a->fold;
  req.completing = a->live_default; /* squeue's default lists CG jobs too */
  /* --limit: the controller keeps the newest N, unless -u with several
   * users or -w pick here (ty_cli_ls_select keeps them then). Without it,
   * ended jobs are bounded (a long history is 100,000s). */
  req.limit = a->nusers > 1 || a->nnodes ? 0 : a->limit;
  req.ended_limit = a->limit || a->live_default ? 0 : TY_CLI_LS_ENDED_DEFAULT;
  /* -j and --name go to the controller too: it answers only those. */
  Trainyard__JobRef *refs = ty_wire_calloc(a->njobs, sizeof(*refs));
  Trainyard__JobRef **ptrs = ty_wire_calloc(a->njobs, sizeof(*ptrs));
  int rc = refs && ptrs ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < a->njobs; i++) {
    trainyard__job_ref__init(&refs[i]);
    refs[i].job_id = a->jobs[i].id, refs[i].has_task = a->jobs[i].has_task;
    refs[i].task = a->jobs[i].task;
    ptrs[i] = &refs[i];
  }
  req.n_jobs = a->njobs, req.jobs = ptrs;
  req.n_names = a->nnames, req.names = a->names;
  if (rc == 0) rc = ty_wire_pack(&req.base, out);
  free(refs), free(ptrs);
  return rc;
}

int ty_cli_encode_job_id(uint64_t id, ty_buf *out) {
  return ty_cli_encode_job_ref(&(ty_job_ref){.id = id}, out);
}

int ty_cli_encode_job_ref(const ty_job_ref *r, ty_buf *out) {
  /* ExplainJobRequest has GetJobRequest's fields 1, 4 and 5 (job_id,
   * has_task, task) and is packed through its own descriptor to stay honest. */
  Trainyard__ExplainJobRequest req = TRAINYARD__EXPLAIN_JOB_REQUEST__INIT;
  req.job_id = r->id, req.has_task = r->has_task, req.task = r->task;
  return ty_wire_pack(&req.base, out);
}

int ty__cli_encode_get_job(const ty_job_ref *ref, bool with_plan, ty_buf *out) {
  Trainyard__GetJobRequest req = TRAINYARD__GET_JOB_REQUEST__INIT;
  req.job_id = ref->id, req.has_task = ref->has_task, req.task = ref->task;
  req.with_plan = with_plan;
  return ty_wire_pack(&req.base, out);
}

int ty_cli_encode_locations(uint64_t job_id, bool want_tokens, ty_buf *out) {
  Trainyard__GetTaskLocationsRequest r = TRAINYARD__GET_TASK_LOCATIONS_REQUEST__INIT;
  r.job_id = job_id;
  r.want_tokens = want_tokens;
  return ty_wire_pack(&r.base, out);
}

int ty_cli_encode_cancel(const ty_job_ref *refs, size_t n, ty_buf *out) {
  /* Every reference goes in `refs`, so the results come back in the order given. */
  Trainyard__JobRef *v = ty_wire_calloc(n, sizeof *v);
  Trainyard__JobRef **pv = ty_wire_calloc(n, sizeof *pv);
  int rc = v && pv ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    trainyard__job_ref__init(&v[i]);
    v[i].job_id = refs[i].id, v[i].has_task = refs[i].has_task, v[i].task = refs[i].task;
    pv[i] = &v[i];
  }
  Trainyard__CancelJobRequest req = TRAINYARD__CANCEL_JOB_REQUEST__INIT;
  req.n_refs = n, req.refs = pv;
  if (rc == 0) rc = ty_wire_pack(&req.base, out);
  free(v), free(pv);
  return rc;
}

int ty_cli_encode_read_log(uint64_t id, uint32_t rank, uint64_t offset, bool follow, ty_buf *out) {
  Trainyard__ReadLogRequest req = TRAINYARD__READ_LOG_REQUEST__INIT;
  req.job_id = id, req.rank = rank, req.offset = offset, req.follow = follow;
  return ty_wire_pack(&req.base, out);
}

/* ---- decoders ----------------------------------------------------------------
 * Each copies what it keeps with checked allocations (the answer's sizes are
 * the controller's) and frees the unpacked message before returning. */

static int jobinfo_from_pb(const Trainyard__JobInfo *pb, ty_cli_jobinfo *j) {
  memset(j, 0, sizeof *j);
  j->id = pb->id;
  int rc = pb->spec ? ty_proto_decode_job(pb->spec, &j->spec) : 0;
  j->state = (int)pb->state;
  j->exit_code = pb->exit_code, j->term_signal = pb->term_signal;
  j->submit_ms = pb->submit_time_ms, j->start_ms = pb->start_time_ms, j->end_ms = pb->end_time_ms;
  j->requeue_count = pb->requeue_count;
  j->ranks_ending = pb->ranks_ending;
  j->last_ckpt_ms = pb->last_checkpoint_ms;
  j->held = pb->held, j->priority = pb->priority;
  j->array_job_id = pb->array_job_id, j->array_task_id = pb->array_task_id;
  j->usage =
      (ty_task_usage){pb->cpu_usec, pb->mem_peak_bytes, pb->io_read_bytes, pb->io_write_bytes};
  j->usage_measured = pb->usage_measured;
  j->redacted = pb->redacted;
  j->abridged = pb->abridged;
  if (rc == 0 && !(j->reason = ty_wire_strdup(pb->reason))) rc = TY_ENOMEM;
  if (rc == 0 && !(j->dependency = ty_wire_strdup(pb->dependency))) rc = TY_ENOMEM;
  if (rc == 0 && !(j->array_folded = ty_wire_strdup(pb->array_tasks_folded))) rc = TY_ENOMEM;
  if (rc == 0) rc = ty_wire_strv(pb->nodes, pb->n_nodes, &j->nodes);
  if (rc == 0) j->nnodes = pb->n_nodes;
  return rc;
}

void ty_cli_jobinfo_close(ty_cli_jobinfo *j) {
  if (!j) return;
  ty_job_spec_close(&j->spec);
  free(j->reason);
  free(j->dependency);
  free(j->array_folded);
  ty_wire_strv_free(j->nodes, j->nnodes);
  memset(j, 0, sizeof *j);
}

void ty_cli_jobinfos_free(ty_cli_jobinfo *js, size_t n) {
  for (size_t i = 0; js && i < n; i++)
    ty_cli_jobinfo_close(&js[i]);
  free(js);
}

int ty_cli_decode_submit(const uint8_t *p, size_t n, uint64_t *out_id, uint32_t *out_tasks) {
  Trainyard__SubmitJobResponse *r =
      ty_wire_unpack(&trainyard__submit_job_response__descriptor, p, n);
  if (!r) return TY_EPROTO;
  *out_id = r->job_id;
  if (out_tasks) *out_tasks = r->array_tasks;
  ty_wire_free(r);
  return 0;
}

int ty_cli_submit_mark_test_only(ty_buf *req) {
  Trainyard__SubmitJobRequest t = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  t.test_only = true;
  return ty_wire_pack(&t.base, req);
}

int ty_cli_decode_submit_test(const uint8_t *p, size_t n, ty_cli_submit_test *out) {
  memset(out, 0, sizeof *out);
  Trainyard__SubmitJobResponse *r =
      ty_wire_unpack(&trainyard__submit_job_response__descriptor, p, n);
  if (!r || !r->test_only) {
    ty_wire_free(r);
    return TY_EPROTO;
  }
  *out = (ty_cli_submit_test){.est_start_ms = r->est_start_ms,
                              .est_kind = (int)r->est_kind,
                              .est_lower_bound = r->est_lower_bound,
                              .cpus = r->cpus};
  out->est_note = ty_wire_strdup(r->est_note);
  out->queue = ty_wire_strdup(r->queue);
  int rc = out->est_note && out->queue ? 0 : TY_ENOMEM;
  if (rc == 0) rc = ty_wire_strv(r->nodes, r->n_nodes, &out->nodes);
  if (rc == 0) out->n_nodes = r->n_nodes;
  ty_wire_free(r);
  if (rc != 0) ty_cli_submit_test_close(out);
  return rc;
}

void ty_cli_submit_test_close(ty_cli_submit_test *t) {
  free(t->est_note);
  free(t->queue);
  ty_wire_strv_free(t->nodes, t->n_nodes);
  memset(t, 0, sizeof *t);
}

/* One answer holds a JobInfo per job (1,000s): unpacked in an arena, so
 * its strings and submessages are neither malloc'd nor freed one by one. */
int ty_cli_decode_list_jobs(const uint8_t *p, size_t n, ty_cli_jobinfo **out, size_t *out_n,
                            bool *truncated) {
  ty_wire_arena arena = {0};
  Trainyard__ListJobsResponse *r =
      ty_wire_unpack_in(&arena, &trainyard__list_jobs_response__descriptor, p, n);
  if (!r) {
    ty_wire_arena_close(&arena);
    return TY_EPROTO;
  }
  ty_cli_jobinfo *js = ty_wire_calloc(r->n_jobs, sizeof *js);
  int rc = js ? 0 : TY_ENOMEM;
  size_t k = 0;
  for (; rc == 0 && k < r->n_jobs; k++)
    rc = jobinfo_from_pb(r->jobs[k], &js[k]);
  if (truncated) *truncated = r->truncated;
  ty_wire_arena_close(&arena);
  if (rc != 0) {
    ty_cli_jobinfos_free(js, k);
    return rc;
  }
  *out = js;
  *out_n = k;
  return 0;
}

static int events_from_pb(const Trainyard__GetJobResponse *r, ty_cli_event **out) {
  ty_cli_event *ev = ty_wire_calloc(r->n_events, sizeof *ev);
  if (!ev) return TY_ENOMEM;
  for (size_t i = 0; i < r->n_events; i++) {
    ev[i].time_ms = r->events[i]->time_ms;
    ev[i].from = (int)r->events[i]->from_state, ev[i].to = (int)r->events[i]->to_state;
    if (!(ev[i].reason = ty_wire_strdup(r->events[i]->reason))) {
      ty_cli_events_free(ev, i);
      return TY_ENOMEM;
    }
  }
  *out = ev;
  return 0;
}

int ty_cli_decode_get_job(const uint8_t *p, size_t n, ty_cli_jobinfo *out_job,
                          ty_cli_event **out_events, size_t *out_nevents) {
  Trainyard__GetJobResponse *r = ty_wire_unpack(&trainyard__get_job_response__descriptor, p, n);
  int rc = r && r->job ? jobinfo_from_pb(r->job, out_job) : TY_EPROTO;
  if (rc == 0) rc = events_from_pb(r, out_events);
  if (rc == 0) out_job->plan_withheld = r->plan_withheld;
  if (rc == 0)
    *out_nevents = r->n_events;
  else if (r && r->job)
    ty_cli_jobinfo_close(out_job);
  ty_wire_free(r);
  return rc;
}

void ty_cli_events_free(ty_cli_event *ev, size_t n) {
  for (size_t i = 0; ev && i < n; i++)
    free(ev[i].reason);
  free(ev);
}

static int node_from_pb(const Trainyard__NodeInfo *pb, ty_cli_node *nd) {
  *nd = (ty_cli_node){.state = (int)pb->state,
                      .cpus = pb->cpus,
                      .cpus_used = pb->cpus_used,
                      .gpus = (uint32_t)pb->n_gpus,
                      .gpus_used = pb->gpus_used,
                      .running_tasks = pb->running_tasks,
                      .memory = pb->memory,
                      .last_heartbeat_ms = pb->last_heartbeat_ms};
  nd->name = ty_wire_strdup(pb->name), nd->io_addr = ty_wire_strdup(pb->io_addr);
  nd->reason = ty_wire_strdup(pb->reason), nd->topology = ty_wire_strdup(pb->topology);
  nd->version = ty_wire_strdup(pb->version), nd->switch_name = ty_wire_strdup(pb->switch_name);
  return nd->name && nd->io_addr && nd->reason && nd->topology && nd->version && nd->switch_name
             ? 0
             : TY_ENOMEM;
}

int ty_cli_decode_nodes(const uint8_t *p, size_t n, ty_cli_node **out, size_t *out_n) {
  Trainyard__ListNodesResponse *r =
      ty_wire_unpack(&trainyard__list_nodes_response__descriptor, p, n);
  if (!r) return TY_EPROTO;
  ty_cli_node *ns = ty_wire_calloc(r->n_nodes, sizeof *ns);
  int rc = ns ? 0 : TY_ENOMEM;
  size_t k = 0;
  for (; rc == 0 && k < r->n_nodes; k++)
    rc = node_from_pb(r->nodes[k], &ns[k]);
  ty_wire_free(r);
  if (rc != 0) {
    ty_cli_nodes_free(ns, k);
    return rc;
  }
  *out = ns;
  *out_n = k;
  return 0;
}

int ty_cli_encode_get_node(const char *name, uint32_t limit, ty_buf *out) {
  Trainyard__GetNodeRequest req = TRAINYARD__GET_NODE_REQUEST__INIT;
  req.name = ty_wire_str(name), req.limit = limit;
  return ty_wire_pack(&req.base, out);
}

static int node_event_from_pb(const Trainyard__NodeEvent *m, ty_cli_node_event *e) {
  *e = (ty_cli_node_event){
      .time_ms = m->time_ms, .from = (int)m->from_state, .to = (int)m->to_state};
  e->action = ty_wire_strdup(m->action), e->reason = ty_wire_strdup(m->reason);
  e->actor = ty_wire_strdup(m->actor);
  return e->action && e->reason && e->actor ? 0 : TY_ENOMEM;
}

int ty_cli_decode_get_node(const uint8_t *p, size_t n, ty_cli_node *out_node,
                           ty_cli_node_event **out_ev, size_t *out_nev) {
  Trainyard__GetNodeResponse *m = ty_wire_unpack(&trainyard__get_node_response__descriptor, p, n);
  if (!m || !m->node) {
    ty_wire_free(m);
    return TY_EPROTO;
  }
  memset(out_node, 0, sizeof *out_node);
  ty_cli_node_event *ev = ty_wire_calloc(m->n_events, sizeof *ev);
  int rc = ev ? node_from_pb(m->node, out_node) : TY_ENOMEM;
  size_t k = 0;
  while (rc == 0 && k < m->n_events)
    rc = node_event_from_pb(m->events[k], &ev[k]), k++;
  ty_wire_free(m);
  if (rc != 0) {
    ty_cli_node_events_free(ev, k);
    ty_cli_node_close(out_node);
    return rc;
  }
  *out_ev = ev, *out_nev = k;
  return 0;
}

void ty_cli_node_close(ty_cli_node *nd) {
  free(nd->name), free(nd->io_addr), free(nd->reason), free(nd->topology), free(nd->version);
  free(nd->switch_name);
  memset(nd, 0, sizeof *nd);
}

void ty_cli_nodes_free(ty_cli_node *ns, size_t n) {
  for (size_t i = 0; ns && i < n; i++)
    ty_cli_node_close(&ns[i]);
  free(ns);
}

static int by_rank(const void *a, const void *b) {
  const ty_task_location *x = a, *y = b;
  return x->rank < y->rank ? -1 : x->rank > y->rank;
}

static int location_from_pb(const Trainyard__TaskLocation *l, ty_task_location *t) {
  t->rank = l->rank;
  t->node = ty_wire_strdup(l->node);
  t->io_addr = ty_wire_strdup(l->io_addr);
  int rc = t->node && t->io_addr ? 0 : TY_ENOMEM;
  if (rc == 0) rc = ty_wire_bytes(l->token.data, l->token.len, &t->token);
  if (rc == 0) t->token_len = l->token.len;
  t->run = l->run, t->start_ms = l->start_ms;
  return rc;
}

int ty_cli_decode_locations(const uint8_t *p, size_t n, ty_task_locations *out) {
  memset(out, 0, sizeof *out);
  Trainyard__GetTaskLocationsResponse *r =
      ty_wire_unpack(&trainyard__get_task_locations_response__descriptor, p, n);
  if (!r) return TY_EPROTO;
  out->state = (int)r->state;
  out->reason = ty_wire_strdup(r->reason);
  out->exit_code = r->exit_code, out->term_signal = r->term_signal;
  out->failed_rank = r->failed_rank;
  out->tasks = ty_wire_calloc(r->n_tasks, sizeof *out->tasks);
  int rc = out->reason && out->tasks ? 0 : TY_ENOMEM;
  for (; rc == 0 && out->n < r->n_tasks; out->n++)
    rc = location_from_pb(r->tasks[out->n], &out->tasks[out->n]);
  out->earlier = ty_wire_calloc(r->n_earlier_runs, sizeof *out->earlier);
  if (rc == 0 && !out->earlier) rc = TY_ENOMEM;
  for (; rc == 0 && out->n_earlier < r->n_earlier_runs; out->n_earlier++)
    rc = location_from_pb(r->earlier_runs[out->n_earlier], &out->earlier[out->n_earlier]);
  ty_wire_free(r);
  if (rc != 0) {
    ty_task_locations_close(out);
    return rc;
  }
  qsort(out->tasks, out->n, sizeof *out->tasks, by_rank);
  return 0;
}

int ty_cli_decode_cancel(const uint8_t *p, size_t n, ty_cancel_result **out, size_t *out_n) {
  Trainyard__CancelJobResponse *r =
      ty_wire_unpack(&trainyard__cancel_job_response__descriptor, p, n);
  if (!r) return TY_EPROTO;
  ty_cancel_result *rs = ty_wire_calloc(r->n_results, sizeof *rs);
  for (size_t i = 0; rs && i < r->n_results; i++) {
    rs[i].job_id = r->results[i]->job_id, rs[i].status = r->results[i]->status;
    rs[i].has_task = r->results[i]->has_task, rs[i].task = r->results[i]->task;
    rs[i].cancelled = r->results[i]->cancelled;
    snprintf(rs[i].message, sizeof rs[i].message, "%s", ty_wire_str(r->results[i]->message));
  }
  *out = rs;
  *out_n = r->n_results;
  ty_wire_free(r);
  return rs ? 0 : TY_ENOMEM;
}

int ty_cli_decode_log_chunk(const uint8_t *p, size_t n, uint32_t *out_rank, uint64_t *out_offset,
                            ty_buf *data) {
  Trainyard__LogChunk *c = ty_wire_unpack(&trainyard__log_chunk__descriptor, p, n);
  if (!c) return TY_EPROTO;
  *out_rank = c->rank, *out_offset = c->offset;
  int rc = ty_buf_append(data, c->data.data, c->data.len);
  ty_wire_free(c);
  return rc;
}
