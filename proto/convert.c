/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared message converters (see convert.h): a submitted Job as the
 * controller decodes it and as trainctl shows it, built by trainctl and
 * rlaunch; a TrainProgress as the worker sends it, the controller keeps it
 * and trainctl draws it.
 */
#include "proto/convert.h"

#include <stdlib.h>
#include <string.h>

static int decode_command(const Trainyard__CommandSpec *c, ty_job_spec *s) {
  s->kind = TY_JOB_KIND_COMMAND;
  int rc = ty_wire_strv(c->argv, c->n_argv, &s->argv);
  if (rc == 0) s->argc = c->n_argv;
  if (rc == 0) rc = ty_wire_strv(c->env, c->n_env, &s->env);
  if (rc == 0) s->envc = c->n_env;
  if (rc == 0 && !(s->cwd = ty_wire_strdup(c->cwd))) rc = TY_ENOMEM;
  return rc;
}

static int decode_graph(const Trainyard__GraphSpec *g, ty_job_spec *s) {
  s->kind = TY_JOB_KIND_GRAPH;
  if (!g) return 0;
  int rc = (s->model_path = ty_wire_strdup(g->model_path)) ? 0 : TY_ENOMEM;
  if (rc == 0) rc = ty_wire_bytes(g->model_bytes.data, g->model_bytes.len, &s->model_bytes);
  if (rc == 0) s->model_len = g->model_bytes.len;
  if (rc == 0) rc = ty_wire_bytes(g->train_config.data, g->train_config.len, &s->train_config);
  if (rc == 0) s->train_config_len = g->train_config.len;
  s->parallelism = (int)g->parallelism; /* the controller checks the range */
  if (rc == 0) rc = ty_wire_strv(g->env, g->n_env, &s->env);
  if (rc == 0) s->envc = g->n_env;
  return rc;
}

static int decode_resources(const Trainyard__Resources *r, ty_job_spec *s) {
  if (!r) return 0;
  s->has_resources = true;
  s->nodes = r->nodes;
  s->tasks_per_node = r->tasks_per_node;
  s->gpus_per_node = r->gpus_per_node;
  s->cpus_per_task = r->cpus_per_task;
  s->mem_per_node = r->mem_per_node;
  s->mem_source = (int)r->mem_source;
  s->exclusive = r->exclusive;
  int rc = ty_wire_strv(r->required_nodes, r->n_required_nodes, &s->req_nodes);
  if (rc == 0) s->n_req_nodes = r->n_required_nodes;
  if (rc == 0) rc = ty_wire_strv(r->excluded_nodes, r->n_excluded_nodes, &s->exc_nodes);
  if (rc == 0) s->n_exc_nodes = r->n_excluded_nodes;
  return rc;
}

void ty_proto_decode_interactive(const Trainyard__InteractiveSpec *m, ty_interactive *out) {
  *out = m ? (ty_interactive){.on = true,
                              .pty = m->pty,
                              .stdin_all = m->stdin_all,
                              .detach = m->detach,
                              .rows = m->rows,
                              .cols = m->cols}
           : (ty_interactive){0};
}

Trainyard__InteractiveSpec *ty_proto_encode_interactive(const ty_interactive *in,
                                                        Trainyard__InteractiveSpec *m) {
  if (!in->on) return NULL;
  trainyard__interactive_spec__init(m);
  m->pty = in->pty, m->stdin_all = in->stdin_all, m->detach = in->detach;
  m->rows = in->rows, m->cols = in->cols;
  return m;
}

void ty_proto_decode_process(const Trainyard__ProcessSettings *m, ty_proc_settings *out) {
  *out = (ty_proc_settings){0};
  if (!m) return;
  out->has_umask = m->has_umask, out->umask = m->umask;
  for (size_t i = 0; i < m->n_soft_limits; i++) {
    const Trainyard__SoftLimit *s = m->soft_limits[i];
    int l = (int)s->resource - 1; /* a resource this build does not know is skipped */
    if (l < 0 || l >= TY_LIMIT_COUNT) continue;
    out->has_soft[l] = true, out->soft[l] = s->soft;
  }
}

Trainyard__ProcessSettings *ty_proto_encode_process(const ty_proc_settings *in,
                                                    ty_proto_process *p) {
  Trainyard__ProcessSettings *m = &p->m;
  trainyard__process_settings__init(m);
  m->has_umask = in->has_umask, m->umask = in->umask;
  m->soft_limits = p->ptr;
  for (int l = 0; l < TY_LIMIT_COUNT; l++) {
    if (!in->has_soft[l]) continue;
    Trainyard__SoftLimit *s = &p->lim[m->n_soft_limits];
    trainyard__soft_limit__init(s);
    s->resource = (Trainyard__LimitResource)(l + 1), s->soft = in->soft[l];
    p->ptr[m->n_soft_limits++] = s;
  }
  return m->has_umask || m->n_soft_limits ? m : NULL;
}

static int decode_array(const Trainyard__ArraySpec *a, ty_array_spec *out) {
  if (!a) return 0;
  out->given = true;
  out->max_running = a->max_running;
  out->ranges = ty_wire_calloc(a->n_ranges, sizeof(*out->ranges));
  if (!out->ranges) return TY_ENOMEM;
  out->n = a->n_ranges;
  for (size_t i = 0; i < a->n_ranges; i++)
    out->ranges[i] = (ty_array_range){a->ranges[i]->first, a->ranges[i]->last,
                                      a->ranges[i]->step ? a->ranges[i]->step : 1};
  return 0;
}

static int decode_deps(const Trainyard__Job *job, ty_job_spec *s) {
  s->deps_any = job->dependency_any;
  s->on_invalid_dep = (ty_dep_invalid)job->on_invalid_dependency;
  if (job->n_dependencies == 0) return 0;
  s->deps = ty_wire_calloc(job->n_dependencies, sizeof(*s->deps));
  if (!s->deps) return TY_ENOMEM;
  s->n_deps = job->n_dependencies;
  for (size_t i = 0; i < job->n_dependencies; i++) {
    const Trainyard__Dependency *d = job->dependencies[i];
    const Trainyard__JobRef *r = d->job;
    s->deps[i] = (ty_dep){.kind = (ty_dep_kind)d->kind};
    if (r) s->deps[i].job = (ty_job_ref){r->job_id, r->has_task, r->task};
  }
  return 0;
}

int ty_proto_decode_job(const Trainyard__Job *job, ty_job_spec *s) {
  memset(s, 0, sizeof(*s));
  s->name = ty_wire_strdup(job->name);
  s->queue = ty_wire_strdup(job->queue);
  s->user = ty_wire_strdup(job->user);
  int rc = s->name && s->queue && s->user ? 0 : TY_ENOMEM;
  s->priority = job->priority;
  s->time_limit_s = job->time_limit_s;
  s->warn_signal = job->warn_signal;
  s->warn_before_s = job->warn_before_s;
  s->warn_batch_only = job->warn_batch_only;
  s->max_rank_failure_requeues = job->max_rank_failure_requeues;
  s->no_requeue = job->no_requeue;
  s->hold = job->hold;
  s->begin_ms = job->begin_time_ms;
  if (job->run_as) {
    s->has_uid = true;
    s->uid = job->run_as->uid;
    s->gid = job->run_as->gid;
  }
  if (rc == 0) rc = decode_resources(job->resources, s);
  ty_proto_decode_interactive(job->interactive, &s->interactive);
  ty_proto_decode_process(job->process, &s->process);
  if (rc == 0 && job->kind_case == TRAINYARD__JOB__KIND_GRAPH)
    rc = decode_graph(job->graph, s);
  else if (rc == 0 && job->kind_case == TRAINYARD__JOB__KIND_COMMAND && job->command)
    rc = decode_command(job->command, s);
  if (rc == 0) rc = decode_array(job->array, &s->array);
  if (rc == 0) rc = decode_deps(job, s);
  if (rc != 0) ty_job_spec_close(s);
  return rc;
}

void ty_proto_encode_job(const ty_job_spec *s, ty_proto_job *pj) {
  *pj = (ty_proto_job){.job = TRAINYARD__JOB__INIT,
                       .res = TRAINYARD__RESOURCES__INIT,
                       .cmd = TRAINYARD__COMMAND_SPEC__INIT,
                       .graph = TRAINYARD__GRAPH_SPEC__INIT,
                       .ia = TRAINYARD__INTERACTIVE_SPEC__INIT,
                       .run_as = TRAINYARD__UNIX_USER__INIT};
  Trainyard__Job *job = &pj->job;
  job->name = ty_wire_str(s->name), job->queue = ty_wire_str(s->queue);
  job->user = ty_wire_str(s->user);
  job->priority = s->priority, job->time_limit_s = s->time_limit_s;
  job->warn_signal = s->warn_signal, job->warn_before_s = s->warn_before_s;
  job->warn_batch_only = s->warn_batch_only;
  job->max_rank_failure_requeues = s->max_rank_failure_requeues;
  job->no_requeue = s->no_requeue;
  if (s->has_uid) {
    pj->run_as.uid = s->uid, pj->run_as.gid = s->gid;
    job->run_as = &pj->run_as;
  }
  pj->res.nodes = s->nodes, pj->res.tasks_per_node = s->tasks_per_node;
  pj->res.gpus_per_node = s->gpus_per_node, pj->res.cpus_per_task = s->cpus_per_task;
  pj->res.mem_per_node = s->mem_per_node;
  pj->res.mem_source = (Trainyard__MemSource)s->mem_source;
  pj->res.exclusive = s->exclusive;
  pj->res.n_required_nodes = s->n_req_nodes, pj->res.required_nodes = s->req_nodes;
  pj->res.n_excluded_nodes = s->n_exc_nodes, pj->res.excluded_nodes = s->exc_nodes;
  job->resources = &pj->res;
  if (s->kind == TY_JOB_KIND_GRAPH) {
    pj->graph.model_path = ty_wire_str(s->model_path);
    pj->graph.model_bytes = (ProtobufCBinaryData){s->model_len, s->model_bytes};
    pj->graph.train_config = (ProtobufCBinaryData){s->train_config_len, s->train_config};
    pj->graph.parallelism = (Trainyard__Parallelism)s->parallelism;
    pj->graph.n_env = s->envc, pj->graph.env = s->env;
    job->kind_case = TRAINYARD__JOB__KIND_GRAPH, job->graph = &pj->graph;
  } else {
    pj->cmd.n_argv = s->argc, pj->cmd.argv = s->argv;
    pj->cmd.n_env = s->envc, pj->cmd.env = s->env;
    pj->cmd.cwd = ty_wire_str(s->cwd);
    job->kind_case = TRAINYARD__JOB__KIND_COMMAND, job->command = &pj->cmd;
  }
  job->interactive = ty_proto_encode_interactive(&s->interactive, &pj->ia);
  job->dependency_any = s->deps_any;
  job->on_invalid_dependency = (Trainyard__InvalidDependency)s->on_invalid_dep;
  job->hold = s->hold;
  job->begin_time_ms = s->begin_ms;
  job->process = ty_proto_encode_process(&s->process, &pj->process);
}

int ty_proto_encode_job_extra(const ty_job_spec *s, ty_proto_job *pj) {
  /* One block each: the pointers, then the messages they point to. */
  size_t nr = s->array.n, nd = s->n_deps, bytes;
  size_t each_r = sizeof(Trainyard__ArrayRange *) + sizeof(Trainyard__ArrayRange);
  size_t each_d =
      sizeof(Trainyard__Dependency *) + sizeof(Trainyard__Dependency) + sizeof(Trainyard__JobRef);
  if (ty_mul_overflow(nr + 1, each_r, &bytes) || !(pj->ranges = malloc(bytes))) return TY_ENOMEM;
  if (ty_mul_overflow(nd + 1, each_d, &bytes) || !(pj->deps = malloc(bytes))) {
    free(pj->ranges);
    pj->ranges = NULL;
    return TY_ENOMEM;
  }
  Trainyard__ArrayRange **rp = pj->ranges, *rm = (Trainyard__ArrayRange *)(rp + nr);
  for (size_t i = 0; i < nr; i++) {
    trainyard__array_range__init(&rm[i]);
    rm[i].first = s->array.ranges[i].first, rm[i].last = s->array.ranges[i].last;
    rm[i].step = s->array.ranges[i].step;
    rp[i] = &rm[i];
  }
  if (nr) {
    trainyard__array_spec__init(&pj->array);
    pj->array.n_ranges = nr, pj->array.ranges = rp;
    pj->array.max_running = s->array.max_running;
    pj->job.array = &pj->array;
  }
  Trainyard__Dependency **dp = pj->deps, *dm = (Trainyard__Dependency *)(dp + nd);
  Trainyard__JobRef *jr = (Trainyard__JobRef *)(dm + nd);
  for (size_t i = 0; i < nd; i++) {
    trainyard__dependency__init(&dm[i]);
    trainyard__job_ref__init(&jr[i]);
    dm[i].kind = (Trainyard__DependencyKind)s->deps[i].kind;
    jr[i].job_id = s->deps[i].job.id, jr[i].has_task = s->deps[i].job.has_task;
    jr[i].task = s->deps[i].job.task;
    if (s->deps[i].kind != TY_DEP_SINGLETON) dm[i].job = &jr[i];
    dp[i] = &dm[i];
  }
  pj->job.n_dependencies = nd, pj->job.dependencies = dp;
  return 0;
}

void ty_proto_job_close(ty_proto_job *pj) {
  free(pj->ranges);
  free(pj->deps);
  pj->ranges = NULL;
  pj->deps = NULL;
}

int ty_proto_decode_progress(const Trainyard__TrainProgress *m, ty_train_progress *out) {
  *out = (ty_train_progress){.step = m->step,
                             .total_steps = m->total_steps,
                             .loss = m->loss,
                             .samples_per_s = m->samples_per_s,
                             .time_ms = m->time_ms,
                             .checkpoint_step = m->checkpoint_step,
                             .test_accuracy = m->test_accuracy,
                             .epoch = m->epoch,
                             .start_step = m->start_step};
  out->checkpoint_path = ty_wire_strdup(m->checkpoint_path);
  return out->checkpoint_path ? 0 : TY_ENOMEM;
}

void ty_proto_encode_progress(const ty_train_progress *p, Trainyard__TrainProgress *m) {
  trainyard__train_progress__init(m);
  m->step = p->step, m->total_steps = p->total_steps;
  m->loss = p->loss, m->samples_per_s = p->samples_per_s;
  m->time_ms = p->time_ms;
  m->checkpoint_step = p->checkpoint_step;
  m->checkpoint_path = ty_wire_str(p->checkpoint_path);
  m->test_accuracy = p->test_accuracy;
  m->epoch = p->epoch;
  m->start_step = p->start_step;
}

/* ---- request caps ---------------------------------------------------------- */

/* Sized for the largest legitimate request, with room: the job spec's own
 * limits (daemon.h: 4096 arguments), 64 GPUs a node (the scheduler's GPU
 * bit set), a worker reporting every task it runs after a restart. */
static const ty_wire_cap request_caps[] = {
    {"trainyard.CommandSpec.argv", 4096},
    {"trainyard.CommandSpec.env", 4096},
    {"trainyard.GraphSpec.env", 4096},
    {"trainyard.ListJobsRequest.states", 64},
    {"trainyard.CancelJobRequest.job_ids", TY_PROTO_MAX_CANCEL_REFS},
    {"trainyard.CancelJobRequest.refs", TY_PROTO_MAX_CANCEL_REFS},
    {"trainyard.ArraySpec.ranges", 1000}, /* TY_ARRAY_MAX_RANGES */
    {"trainyard.Resources.required_nodes", TY_JOB_MAX_NODE_NAMES},
    {"trainyard.Resources.excluded_nodes", TY_JOB_MAX_NODE_NAMES},
    {"trainyard.GetHistoryRequest.states", 64},
    {"trainyard.GetHistoryRequest.job_ids", 1024},
    {"trainyard.GetHistoryRequest.names", 1024},
    {"trainyard.GetHistoryRequest.nodes", TY_JOB_MAX_NODE_NAMES}, /* a hostlist's */
    {"trainyard.NodeInfo.gpus", 64},
    {"trainyard.RegisterNodeRequest.tasks", 65536},
    {"trainyard.LaunchTaskRequest.gpu_indices", 64},
    {"trainyard.UpdateQueueRequest.settings", 64},
};

/* The string fields of requests that may hold any bytes but NUL: what a
 * program or the kernel made, not a name a person gives. argv, the
 * environment and paths (Linux allows any bytes), rendezvous keys (the
 * training processes' own), and what carries them on: a worker's reasons
 * quote argv[0] and the cwd (cut to fit, maybe mid-character), and a job's
 * default name is its argv[0]'s last part. Every other string field must
 * be UTF-8. */
static const char *const request_raw[] = {
    "trainyard.CommandSpec.argv",
    "trainyard.CommandSpec.env",
    "trainyard.CommandSpec.cwd",
    "trainyard.GraphSpec.model_path",
    "trainyard.GraphSpec.env",
    "trainyard.GraphLaunch.model_path",
    "trainyard.GraphLaunch.checkpoint_path",
    "trainyard.GraphLaunch.checkpoint_root",
    "trainyard.TrainProgress.checkpoint_path",
    "trainyard.CheckpointInfo.path",
    "trainyard.RendezvousPutRequest.key",
    "trainyard.RendezvousGetRequest.key",
    "trainyard.TaskUpdateRequest.reason",
    "trainyard.RunningTask.reason",
    "trainyard.LaunchTaskRequest.job_name",
};

int ty_proto_check_request(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                           char *err, size_t err_len) {
  return ty_wire_check_strings(d, p, n, request_caps, sizeof request_caps / sizeof *request_caps,
                               TY_PROTO_MAX_REPEATED, request_raw,
                               sizeof request_raw / sizeof *request_raw, err, err_len);
}

static const ty_proto_method *find_method(const ty_proto_method *t, size_t n_t,
                                          const char *method) {
  for (size_t i = 0; i < n_t; i++)
    if (strcmp(t[i].method, method) == 0) return &t[i];
  return NULL;
}

int ty_proto_check_method(const ty_proto_method *t, size_t n_t, const char *method,
                          const uint8_t *p, size_t n, char *err, size_t err_len) {
  const ty_proto_method *m = find_method(t, n_t, method);
  return m ? ty_proto_check_request(m->request, p, n, err, err_len) : 0;
}

int ty_proto_decode_method(const ty_proto_method *t, size_t n_t, const char *method,
                           const uint8_t *p, size_t n, char *err, size_t err_len) {
  const ty_proto_method *m = find_method(t, n_t, method);
  if (!m) return ty_errf(err, err_len, TY_ENOTFOUND, "unknown method \"%.64s\"", method);
  int rc = ty_proto_check_request(m->request, p, n, err, err_len);
  if (rc != 0) return rc;
  if (m->decode) {
    rc = m->decode(p, n);
  } else { /* no fields, so the handler never looks; still, it must be protobuf */
    void *msg = ty_wire_unpack(m->request, p, n);
    rc = msg ? 0 : TY_EPROTO;
    ty_wire_free(msg);
  }
  if (rc != 0) ty_errf(err, err_len, rc, "payload is not a %s", m->request->name);
  return rc;
}

int ty_proto_decode_checkpoints(Trainyard__CheckpointInfo *const *m, size_t n,
                                ty_checkpoint_list *l) {
  l->n = 0;
  l->v = ty_wire_calloc(n, sizeof *l->v);
  if (!l->v) return TY_ENOMEM;
  for (; l->n < n; l->n++) {
    ty_checkpoint_info *to = &l->v[l->n];
    *to = (ty_checkpoint_info){
        .step = m[l->n]->step, .time_ms = m[l->n]->time_ms, .path = ty_wire_strdup(m[l->n]->path)};
    if (!to->path) {
      ty_checkpoint_list_close(l);
      return TY_ENOMEM;
    }
  }
  return 0;
}

int ty_proto_encode_checkpoints(const ty_checkpoint_info *v, size_t n,
                                Trainyard__CheckpointInfo ***out_ptrs) {
  /* One block: n pointers, then the n messages they point to. */
  size_t each = sizeof(Trainyard__CheckpointInfo *) + sizeof(Trainyard__CheckpointInfo), total;
  if (ty_mul_overflow(n ? n : 1, each, &total)) return TY_ENOMEM;
  Trainyard__CheckpointInfo **ptrs = malloc(total);
  if (!ptrs) return TY_ENOMEM;
  Trainyard__CheckpointInfo *msgs = (Trainyard__CheckpointInfo *)(ptrs + n);
  for (size_t i = 0; i < n; i++) {
    trainyard__checkpoint_info__init(&msgs[i]);
    msgs[i].step = v[i].step;
    msgs[i].time_ms = v[i].time_ms;
    msgs[i].path = ty_wire_str(v[i].path);
    ptrs[i] = &msgs[i];
  }
  *out_ptrs = ptrs;
  return 0;
}

/* ---- model checks -------------------------------------------------------------------- */

int ty_proto_pack_check(const ty_graph_check *c, ty_buf *out) {
  ty_proto_job pj;
  ty_proto_encode_job(&c->job, &pj);
  const ty_check_cluster *k = &c->cluster;
  Trainyard__PlanCluster cl = TRAINYARD__PLAN_CLUSTER__INIT;
  cl.nodes = k->nodes, cl.devices_per_node = k->devices_per_node;
  cl.device_flops = k->device_flops, cl.device_mem_bytes = k->device_mem_bytes;
  cl.intra_bw = k->intra_bw, cl.inter_bw = k->inter_bw;
  cl.intra_latency_s = k->intra_latency_s, cl.inter_latency_s = k->inter_latency_s;
  cl.launch_s = k->launch_s, cl.threads = k->threads;
  cl.rank_mem_bytes = k->rank_mem_bytes, cl.rank_reserve_bytes = k->rank_reserve_bytes;
  Trainyard__GraphCheckRequest m = TRAINYARD__GRAPH_CHECK_REQUEST__INIT;
  m.job = &pj.job;
  m.want_plan = c->want_plan;
  m.mode = (Trainyard__Parallelism)c->mode;
  m.cluster = &cl;
  return ty_wire_pack(&m.base, out);
}

int ty_proto_unpack_check(const uint8_t *p, size_t n, ty_graph_check *out) {
  memset(out, 0, sizeof *out);
  Trainyard__GraphCheckRequest *m =
      ty_wire_unpack(&trainyard__graph_check_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  int rc = m->job ? ty_proto_decode_job(m->job, &out->job) : TY_EPROTO;
  out->want_plan = m->want_plan;
  out->mode = (int)m->mode;
  const Trainyard__PlanCluster *cl = m->cluster;
  if (cl)
    out->cluster = (ty_check_cluster){.nodes = cl->nodes,
                                      .devices_per_node = cl->devices_per_node,
                                      .device_flops = cl->device_flops,
                                      .device_mem_bytes = cl->device_mem_bytes,
                                      .intra_bw = cl->intra_bw,
                                      .inter_bw = cl->inter_bw,
                                      .intra_latency_s = cl->intra_latency_s,
                                      .inter_latency_s = cl->inter_latency_s,
                                      .launch_s = cl->launch_s,
                                      .threads = cl->threads,
                                      .rank_mem_bytes = cl->rank_mem_bytes,
                                      .rank_reserve_bytes = cl->rank_reserve_bytes};
  ty_wire_free(m);
  return rc;
}

int ty_proto_pack_check_answer(const ty_graph_check_answer *a, ty_buf *out) {
  Trainyard__GraphCheckResponse m = TRAINYARD__GRAPH_CHECK_RESPONSE__INIT;
  m.stage = a->stage;
  m.status = a->status;
  m.message = ty_wire_str(a->message);
  m.cache_key = a->cache_key;
  m.device_flops = a->device_flops;
  m.plan = (ProtobufCBinaryData){a->plan_len, a->plan};
  m.wants_plan = a->wants_plan;
  return ty_wire_pack(&m.base, out);
}

int ty_proto_unpack_check_answer(const uint8_t *p, size_t n, ty_graph_check_answer *out) {
  memset(out, 0, sizeof *out);
  Trainyard__GraphCheckResponse *m =
      ty_wire_unpack(&trainyard__graph_check_response__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out = (ty_graph_check_answer){.stage = m->stage,
                                 .status = m->status,
                                 .cache_key = m->cache_key,
                                 .device_flops = m->device_flops,
                                 .plan_len = m->plan.len,
                                 .wants_plan = m->wants_plan};
  out->message = ty_wire_strdup(m->message);
  int rc = out->message ? ty_wire_bytes(m->plan.data, m->plan.len, &out->plan) : TY_ENOMEM;
  ty_wire_free(m);
  if (rc != 0) ty_graph_check_answer_close(out);
  return rc;
}
