/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The only file of worker/ that touches protobuf-c generated types: it turns
 * wire messages into the wire model's plain structs (lib/wire/wire.h) and
 * back. Codecs are pure (bytes in, structs out) so they can be fuzzed.
 * Decoded structs borrow from the unpacked message, which the caller keeps
 * until it is done with them (ty__launch_free, or the owner pointer).
 */
#include <stdlib.h>
#include <string.h>

#include "lib/base/version.h"
#include "proto/convert.h"
#include "proto/methods.h"
#include "worker/worker_internal.h"

/* ---- controller -> worker -------------------------------------------------- */

static void decode_command(const Trainyard__CommandSpec *c, ty_task_spec *s) {
  if (!c) return;
  s->argv = (const char *const *)c->argv;
  s->argc = c->n_argv;
  s->env = (const char *const *)c->env;
  s->n_env = c->n_env;
  s->cwd = c->cwd;
}

static void decode_graph(const Trainyard__GraphLaunch *g, ty_task_spec *s) {
  if (!g) return;
  s->graph = true;
  s->model_path = g->model_path ? g->model_path : "";
  s->model_bytes = g->model_bytes.data;
  s->model_len = g->model_bytes.len;
  s->train_config = g->train_config.data;
  s->train_config_len = g->train_config.len;
  s->checkpoint_path = g->checkpoint_path ? g->checkpoint_path : "";
  s->checkpoint_root = g->checkpoint_root ? g->checkpoint_root : "";
  if (g->job_submit_ms) s->job_submit_ms = g->job_submit_ms;
  s->bucket_mb = g->bucket_mb;
  s->plan = g->plan.data;
  s->plan_len = g->plan.len;
}

int ty__decode_launch(const uint8_t *p, size_t n, ty__launch *out) {
  memset(out, 0, sizeof *out);
  Trainyard__LaunchTaskRequest *m =
      ty_wire_unpack(&trainyard__launch_task_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  ty_task_spec *s = &out->spec;
  s->job_id = m->job_id;
  s->rank = m->rank;
  s->local_rank = m->local_rank;
  s->world_size = m->world_size;
  s->local_world_size = m->local_world_size;
  s->master_addr = m->master_addr;
  s->master_port = m->master_port;
  s->gpu_indices = m->gpu_indices;
  s->n_gpus = m->n_gpu_indices;
  s->cpus = m->cpus;
  decode_command(m->command, s);
  s->time_limit_s = m->time_limit_s;
  s->warn_signal = m->warn_signal < 65 ? m->warn_signal : 0;
  s->warn_before_s = m->warn_before_s;
  s->warn_batch_only = m->warn_batch_only;
  s->kill_grace_s = m->kill_grace_s;
  s->user = m->user;
  if (m->run_as) {
    s->has_uid = true;
    s->uid = m->run_as->uid;
    s->gid = m->run_as->gid;
  }
  s->mem_per_node = m->mem_per_node;
  ty_proto_decode_interactive(m->interactive, &s->interactive);
  s->attach_key = m->attach_key.data;
  s->attach_key_len = m->attach_key.len;
  s->job_submit_ms = m->job_submit_ms;
  decode_graph(m->graph, s);
  s->array_job_id = m->array_job_id;
  s->array_task_id = m->array_task_id, s->array_task_count = m->array_task_count;
  s->array_task_min = m->array_task_min, s->array_task_max = m->array_task_max;
  s->array_task_step = m->array_task_step;
  s->job_name = m->job_name, s->queue = m->queue, s->nodelist = m->nodelist;
  s->num_nodes = m->num_nodes, s->node_index = m->node_index;
  s->cpus_on_node = m->cpus_on_node;
  ty_proto_decode_process(m->process, &s->process);
  s->restart_count = m->restart_count;
  out->pb = m;
  return 0;
}

void ty__launch_free(ty__launch *l) {
  if (!l) return;
  ty_wire_free(l->pb);
  l->pb = NULL;
}

int ty__decode_kill(const uint8_t *p, size_t n, uint64_t *out_job_id, int *out_signal,
                    uint32_t *out_grace_s, bool *out_batch_only) {
  Trainyard__KillTaskRequest *m = ty_wire_unpack(&trainyard__kill_task_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out_job_id = m->job_id;
  *out_signal = m->signal;
  *out_grace_s = m->grace_s;
  *out_batch_only = m->batch_only;
  ty_wire_free(m);
  return 0;
}

int ty__decode_set_limit(const uint8_t *p, size_t n, uint64_t *out_job_id,
                         uint32_t *out_time_limit_s) {
  Trainyard__SetTaskLimitRequest *m =
      ty_wire_unpack(&trainyard__set_task_limit_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out_job_id = m->job_id;
  *out_time_limit_s = m->time_limit_s;
  ty_wire_free(m);
  return 0;
}

/* ---- worker -> controller -------------------------------------------------- */

static void fill_task(Trainyard__RunningTask *t, const ty_task_report *r) {
  trainyard__running_task__init(t);
  t->job_id = r->job_id;
  t->rank = r->rank;
  t->state = (Trainyard__TaskState)r->state;
  t->exit_code = r->exit_code;
  t->term_signal = r->term_signal;
  t->timed_out = r->timed_out;
  t->fenced = r->fenced;
  t->worker_stopped = r->worker_stopped;
  t->oom_killed = r->oom_killed;
  t->reason = ty_wire_str(r->reason);
  t->master_port = r->master_port;
  t->cpu_usec = r->usage.cpu_usec;
  t->mem_peak_bytes = r->usage.mem_peak_bytes;
  t->io_read_bytes = r->usage.io_read_bytes;
  t->io_write_bytes = r->usage.io_write_bytes;
  t->ended_ms = r->ended_ms;
}

static void fill_gpu(Trainyard__Gpu *g, const ty_worker_gpu *src) {
  trainyard__gpu__init(g);
  g->index = src->index;
  g->name = (char *)src->name;
  g->memory = src->memory;
  g->uuid = (char *)src->uuid;
  g->pci_bus_id = (char *)src->pci_bus_id;
  g->numa_node = src->numa_node;
  g->nvlink_island = src->nvlink_island;
}

static void fill_node(Trainyard__NodeInfo *node, const ty__node_status *st) {
  const ty_worker_inventory *inv = st->inv;
  trainyard__node_info__init(node);
  node->name = (char *)st->name;
  node->state = TRAINYARD__NODE_STATE__NODE_UP;
  node->cpus = inv->cpus;
  node->memory = inv->memory;
  node->cpus_used = st->cpus_used;
  node->gpus_used = st->gpus_used;
  node->running_tasks = st->running;
  node->io_addr = (char *)st->io_addr;
  node->topology = (char *)inv->topology;
  node->sets_task_limit = true; /* SetTaskLimit is served (session.c) */
  node->version = (char *)ty_version;
}

int ty__encode_register(const ty__node_status *st, ty_buf *out) {
  const ty_worker_inventory *inv = st->inv;
  Trainyard__NodeInfo node;
  fill_node(&node, st);
  Trainyard__Gpu *gpus = ty_wire_calloc(inv->n_gpus, sizeof *gpus);
  Trainyard__Gpu **gpu_ptrs = ty_wire_calloc(inv->n_gpus, sizeof *gpu_ptrs);
  Trainyard__RunningTask *tasks = ty_wire_calloc(st->n_tasks, sizeof *tasks);
  Trainyard__RunningTask **ptrs = ty_wire_calloc(st->n_tasks, sizeof *ptrs);
  int rc = gpus && gpu_ptrs && tasks && ptrs ? 0 : TY_ENOMEM;
  for (uint32_t i = 0; rc == 0 && i < inv->n_gpus; i++) {
    fill_gpu(&gpus[i], &inv->gpus[i]);
    gpu_ptrs[i] = &gpus[i];
  }
  for (size_t i = 0; rc == 0 && i < st->n_tasks; i++) {
    fill_task(&tasks[i], &st->tasks[i]);
    ptrs[i] = &tasks[i];
  }
  node.n_gpus = inv->n_gpus;
  node.gpus = gpu_ptrs;
  Trainyard__RegisterNodeRequest req = TRAINYARD__REGISTER_NODE_REQUEST__INIT;
  req.node = &node;
  req.n_tasks = st->n_tasks;
  req.tasks = ptrs;
  if (rc == 0) rc = ty_wire_pack(&req.base, out);
  free(ptrs);
  free(tasks);
  free(gpu_ptrs);
  free(gpus);
  return rc;
}

int ty__decode_register_response(const uint8_t *p, size_t n, uint32_t *out_heartbeat_ms,
                                 uint32_t *out_node_timeout_ms) {
  Trainyard__RegisterNodeResponse *m =
      ty_wire_unpack(&trainyard__register_node_response__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out_heartbeat_ms = m->heartbeat_interval_ms;
  *out_node_timeout_ms = m->node_timeout_ms;
  ty_wire_free(m);
  return 0;
}

int ty__encode_heartbeat(const char *node, uint32_t running, bool stopping, ty_buf *out) {
  Trainyard__HeartbeatRequest m = TRAINYARD__HEARTBEAT_REQUEST__INIT;
  m.node = (char *)node;
  m.running_tasks = running;
  m.stopping = stopping;
  return ty_wire_pack(&m.base, out);
}

int ty__encode_launch_response(bool worker_stopping, bool node_fault, ty_buf *out) {
  Trainyard__LaunchTaskResponse m = TRAINYARD__LAUNCH_TASK_RESPONSE__INIT;
  m.worker_stopping = worker_stopping;
  m.node_fault = node_fault;
  return ty_wire_pack(&m.base, out);
}

int ty__encode_task_update(const ty_task_report *r, ty_buf *out) {
  Trainyard__TaskUpdateRequest m = TRAINYARD__TASK_UPDATE_REQUEST__INIT;
  m.job_id = r->job_id;
  m.rank = r->rank;
  m.state = (Trainyard__TaskState)r->state;
  m.exit_code = r->exit_code;
  m.term_signal = r->term_signal;
  m.reason = ty_wire_str(r->reason);
  m.timed_out = r->timed_out;
  m.fenced = r->fenced;
  m.worker_stopped = r->worker_stopped;
  m.oom_killed = r->oom_killed;
  m.warned_signal = r->warned_signal;
  m.cpu_usec = r->usage.cpu_usec;
  m.mem_peak_bytes = r->usage.mem_peak_bytes;
  m.io_read_bytes = r->usage.io_read_bytes;
  m.io_write_bytes = r->usage.io_write_bytes;
  m.ended_ms = r->ended_ms;
  return ty_wire_pack(&m.base, out);
}

int ty__encode_progress(uint64_t job_id, uint32_t rank, const ty_train_progress *p,
                        const ty_checkpoint_list *existing, ty_buf *out) {
  Trainyard__ReportProgressRequest r = TRAINYARD__REPORT_PROGRESS_REQUEST__INIT;
  Trainyard__TrainProgress tp;
  ty_proto_encode_progress(p, &tp);
  r.job_id = job_id;
  r.rank = rank;
  r.progress = &tp;
  Trainyard__CheckpointInfo **cp = NULL;
  int rc = 0;
  if (existing && existing->listed) {
    rc = ty_proto_encode_checkpoints(existing->v, existing->n, &cp);
    r.listed = true;
    r.n_existing = existing->n, r.existing = cp;
  }
  if (rc == 0) rc = ty_wire_pack(&r.base, out);
  free(cp);
  return rc;
}

/* ---- task I/O ------------------------------------------------------------- */

int ty__decode_read_log(const uint8_t *p, size_t n, ty_read_log *out) {
  Trainyard__ReadLogRequest *m = ty_wire_unpack(&trainyard__read_log_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out =
      (ty_read_log){.job_id = m->job_id, .rank = m->rank, .offset = m->offset, .follow = m->follow};
  ty_wire_free(m);
  return 0;
}

int ty__encode_log_chunk(uint32_t rank, uint64_t offset, const uint8_t *data, size_t len,
                         ty_buf *out) {
  Trainyard__LogChunk m = TRAINYARD__LOG_CHUNK__INIT;
  m.rank = rank;
  m.offset = offset;
  m.data = (ProtobufCBinaryData){len, (uint8_t *)data};
  return ty_wire_pack(&m.base, out);
}

/* ---- interactive attach ------------------------------------------------------ */

int ty__decode_attach(const uint8_t *p, size_t n, ty_attach_request *out) {
  Trainyard__AttachRequest *m = ty_wire_unpack(&trainyard__attach_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out = (ty_attach_request){.job_id = m->job_id,
                             .rank = m->rank,
                             .owner = m->owner,
                             .replay = m->replay,
                             .wait_ms = m->wait_ms};
  ty_wire_free(m);
  return 0;
}

int ty__decode_attach_input(const uint8_t *p, size_t n, ty_attach_input *out, void **out_owner) {
  Trainyard__AttachInputRequest *m =
      ty_wire_unpack(&trainyard__attach_input_request__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out = (ty_attach_input){.job_id = m->job_id,
                           .rank = m->rank,
                           .data = m->data.data,
                           .len = m->data.len,
                           .eof = m->eof,
                           .signal = m->signal,
                           .kill = m->kill,
                           .rows = m->rows,
                           .cols = m->cols};
  *out_owner = m;
  return 0;
}

int ty__encode_attach_output(const ty_attach_output *o, ty_buf *out) {
  Trainyard__AttachOutput m = TRAINYARD__ATTACH_OUTPUT__INIT;
  m.rank = o->rank;
  m.stream = o->stream;
  m.data = (ProtobufCBinaryData){o->len, (uint8_t *)o->data};
  m.replayed = o->replayed;
  m.exited = o->exited;
  m.exit_code = o->exit_code;
  m.term_signal = o->term_signal;
  m.timed_out = o->timed_out;
  Trainyard__TaskTiming t = TRAINYARD__TASK_TIMING__INIT;
  if (o->exited) {
    t.prepare_us = o->timing.prepare_us;
    t.spawn_us = o->timing.spawn_us, t.attach_us = o->timing.attach_us;
    t.first_output_us = o->timing.first_output_us, t.exit_us = o->timing.exit_us;
    m.timing = &t;
  }
  return ty_wire_pack(&m.base, out);
}

/* ---- the caps on requests, and decoding for the fuzzer ------------------------------ */

static int dec_launch(const uint8_t *p, size_t n) {
  ty__launch l;
  int rc = ty__decode_launch(p, n, &l);
  if (rc == 0) ty__launch_free(&l);
  return rc;
}

static int dec_kill(const uint8_t *p, size_t n) {
  uint64_t job;
  int sig;
  uint32_t grace;
  bool batch_only;
  return ty__decode_kill(p, n, &job, &sig, &grace, &batch_only);
}

static int dec_set_limit(const uint8_t *p, size_t n) {
  uint64_t job;
  uint32_t secs;
  return ty__decode_set_limit(p, n, &job, &secs);
}

static int dec_read_log(const uint8_t *p, size_t n) {
  ty_read_log r;
  return ty__decode_read_log(p, n, &r);
}

static int dec_attach(const uint8_t *p, size_t n) {
  ty_attach_request a;
  return ty__decode_attach(p, n, &a);
}

static int dec_attach_input(const uint8_t *p, size_t n) {
  ty_attach_input in;
  void *owner = NULL;
  int rc = ty__decode_attach_input(p, n, &in, &owner);
  ty_wire_free(owner);
  return rc;
}

/* Every method the worker serves: from the controller (session.c) and on
 * the task I/O port (io.c). */
static const ty_proto_method requests[] = {
    {TY_M_LAUNCH_TASK, &trainyard__launch_task_request__descriptor, dec_launch},
    {TY_M_KILL_TASK, &trainyard__kill_task_request__descriptor, dec_kill},
    {TY_M_READ_LOG, &trainyard__read_log_request__descriptor, dec_read_log},
    {TY_M_ATTACH, &trainyard__attach_request__descriptor, dec_attach},
    {TY_M_ATTACH_INPUT, &trainyard__attach_input_request__descriptor, dec_attach_input},
    {TY_M_SET_TASK_LIMIT, &trainyard__set_task_limit_request__descriptor, dec_set_limit},
};

int ty__check_request(const char *method, const uint8_t *p, size_t n, char *err, size_t err_len) {
  return ty_proto_check_method(requests, TY_ARRAY_LEN(requests), method, p, n, err, err_len);
}

int ty_worker_decode_request(const char *method, const uint8_t *p, size_t n, char *err,
                             size_t err_len) {
  return ty_proto_decode_method(requests, TY_ARRAY_LEN(requests), method, p, n, err, err_len);
}

const char *ty_worker_method(size_t i) {
  return i < TY_ARRAY_LEN(requests) ? requests[i].method : NULL;
}
