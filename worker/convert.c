/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The only file of worker/ that touches protobuf-c generated types: it turns
 * wire messages into the worker's plain structs and back. Codecs are pure
 * (bytes in, structs out) so they can be fuzzed.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/trainyard.pb-c.h"
#include "worker/worker_internal.h"

/* Packs m into a new heap buffer (never NULL, even for an empty message). */
static int pack(const ProtobufCMessage *m, uint8_t **out, size_t *out_len) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return TY_ENOMEM;
  *out_len = protobuf_c_message_pack(m, buf);
  *out = buf;
  return 0;
}

/* ---- controller -> worker -------------------------------------------------- */

int ty__decode_launch(const uint8_t *p, size_t n, ty__launch *out) {
  memset(out, 0, sizeof *out);
  Trainyard__LaunchTaskRequest *m = trainyard__launch_task_request__unpack(NULL, n, p);
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
  if (m->command) {
    s->argv = (const char *const *)m->command->argv;
    s->argc = m->command->n_argv;
    s->env = (const char *const *)m->command->env;
    s->n_env = m->command->n_env;
    s->cwd = m->command->cwd;
  }
  s->time_limit_s = m->time_limit_s;
  s->warn_signal = m->warn_signal < 65 ? m->warn_signal : 0;
  s->warn_before_s = m->warn_before_s;
  s->kill_grace_s = m->kill_grace_s;
  s->user = m->user;
  if (m->interactive) {
    s->interactive = true;
    s->pty = m->interactive->pty;
    s->stdin_all = m->interactive->stdin_all;
    s->detach = m->interactive->detach;
    s->rows = m->interactive->rows;
    s->cols = m->interactive->cols;
  }
  /* Interactive tasks verify attach tokens with it; graph ranks sign their
   * rendezvous token with it. */
  s->attach_key = m->attach_key.data;
  s->attach_key_len = m->attach_key.len;
  out->pb = m;
  return 0;
}

void ty__launch_free(ty__launch *l) {
  if (!l || !l->pb) return;
  trainyard__launch_task_request__free_unpacked(l->pb, NULL);
  l->pb = NULL;
}

int ty__decode_kill(const uint8_t *p, size_t n, uint64_t *out_job_id, int *out_signal,
                    uint32_t *out_grace_s) {
  Trainyard__KillTaskRequest *m = trainyard__kill_task_request__unpack(NULL, n, p);
  if (!m) return TY_EPROTO;
  *out_job_id = m->job_id;
  *out_signal = m->signal;
  *out_grace_s = m->grace_s;
  trainyard__kill_task_request__free_unpacked(m, NULL);
  return 0;
}

/* ---- worker -> controller -------------------------------------------------- */

typedef struct task_list {
  Trainyard__RunningTask *items;
  Trainyard__RunningTask **ptrs;
  size_t n, cap;
} task_list;

static void add_task(const ty_task_report *r, void *ud) {
  task_list *l = ud;
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->items = ty_xrealloc(l->items, l->cap * sizeof *l->items);
  }
  Trainyard__RunningTask t = TRAINYARD__RUNNING_TASK__INIT;
  t.job_id = r->job_id;
  t.rank = r->rank;
  t.state = (Trainyard__TaskState)r->state;
  t.exit_code = r->exit_code;
  t.term_signal = r->term_signal;
  t.timed_out = r->timed_out;
  t.reason = (char *)r->reason;
  t.master_port = r->master_port;
  l->items[l->n++] = t;
}

static void fill_gpu(Trainyard__Gpu *g, const ty_worker_gpu *src) {
  Trainyard__Gpu init = TRAINYARD__GPU__INIT;
  *g = init;
  g->index = src->index;
  g->name = (char *)src->name;
  g->memory = src->memory;
  g->uuid = (char *)src->uuid;
  g->pci_bus_id = (char *)src->pci_bus_id;
  g->numa_node = src->numa_node;
  g->nvlink_island = src->nvlink_island;
}

int ty__encode_register(const ty__node_status *st, uint8_t **out, size_t *out_len) {
  const ty_worker_inventory *inv = st->inv;
  Trainyard__NodeInfo node = TRAINYARD__NODE_INFO__INIT;
  node.name = (char *)st->name;
  node.state = TRAINYARD__NODE_STATE__NODE_UP;
  node.cpus = inv->cpus;
  node.memory = inv->memory;
  node.cpus_used = ty_tasks_cpus_used(st->tasks);
  node.gpus_used = ty_tasks_gpus_used(st->tasks);
  node.running_tasks = ty_tasks_running(st->tasks);
  node.io_addr = (char *)st->io_addr;
  node.topology = (char *)inv->topology;
  Trainyard__Gpu *gpus = ty_xcalloc(inv->n_gpus + 1u, sizeof *gpus);
  Trainyard__Gpu **gpu_ptrs = ty_xcalloc(inv->n_gpus + 1u, sizeof *gpu_ptrs);
  for (uint32_t i = 0; i < inv->n_gpus; i++) {
    fill_gpu(&gpus[i], &inv->gpus[i]);
    gpu_ptrs[i] = &gpus[i];
  }
  node.n_gpus = inv->n_gpus;
  node.gpus = gpu_ptrs;

  task_list l = {0};
  ty_tasks_foreach(st->tasks, add_task, &l);
  l.ptrs = ty_xcalloc(l.n + 1, sizeof *l.ptrs);
  for (size_t i = 0; i < l.n; i++) l.ptrs[i] = &l.items[i];

  Trainyard__RegisterNodeRequest req = TRAINYARD__REGISTER_NODE_REQUEST__INIT;
  req.node = &node;
  req.n_tasks = l.n;
  req.tasks = l.ptrs;
  int rc = pack(&req.base, out, out_len);
  free(l.ptrs);
  free(l.items);
  free(gpu_ptrs);
  free(gpus);
  return rc;
}

int ty__decode_register_response(const uint8_t *p, size_t n, uint32_t *out_heartbeat_ms) {
  Trainyard__RegisterNodeResponse *m = trainyard__register_node_response__unpack(NULL, n, p);
  if (!m) return TY_EPROTO;
  *out_heartbeat_ms = m->heartbeat_interval_ms;
  trainyard__register_node_response__free_unpacked(m, NULL);
  return 0;
}

int ty__encode_heartbeat(const char *node, uint32_t running, uint8_t **out, size_t *out_len) {
  Trainyard__HeartbeatRequest m = TRAINYARD__HEARTBEAT_REQUEST__INIT;
  m.node = (char *)node;
  m.running_tasks = running;
  return pack(&m.base, out, out_len);
}

int ty__encode_task_update(const ty_task_report *r, uint8_t **out, size_t *out_len) {
  Trainyard__TaskUpdateRequest m = TRAINYARD__TASK_UPDATE_REQUEST__INIT;
  m.job_id = r->job_id;
  m.rank = r->rank;
  m.state = (Trainyard__TaskState)r->state;
  m.exit_code = r->exit_code;
  m.term_signal = r->term_signal;
  m.reason = (char *)r->reason;
  m.timed_out = r->timed_out;
  return pack(&m.base, out, out_len);
}

/* ---- task I/O ------------------------------------------------------------- */

int ty__decode_read_log(const uint8_t *p, size_t n, ty__read_log *out) {
  Trainyard__ReadLogRequest *m = trainyard__read_log_request__unpack(NULL, n, p);
  if (!m) return TY_EPROTO;
  out->job_id = m->job_id;
  out->rank = m->rank;
  out->offset = m->offset;
  out->follow = m->follow;
  trainyard__read_log_request__free_unpacked(m, NULL);
  return 0;
}

int ty__encode_log_chunk(uint32_t rank, uint64_t offset, const uint8_t *data, size_t len,
                         uint8_t **out, size_t *out_len) {
  Trainyard__LogChunk m = TRAINYARD__LOG_CHUNK__INIT;
  m.rank = rank;
  m.offset = offset;
  m.data.data = (uint8_t *)data;
  m.data.len = len;
  return pack(&m.base, out, out_len);
}

/* ---- interactive attach ------------------------------------------------------ */

int ty__decode_attach(const uint8_t *p, size_t n, ty__attach_req *out) {
  Trainyard__AttachRequest *m = trainyard__attach_request__unpack(NULL, n, p);
  if (!m) return TY_EPROTO;
  out->job_id = m->job_id;
  out->rank = m->rank;
  out->owner = m->owner;
  out->replay = m->replay;
  trainyard__attach_request__free_unpacked(m, NULL);
  return 0;
}

int ty__decode_attach_input(const uint8_t *p, size_t n, ty__attach_input *out) {
  memset(out, 0, sizeof *out);
  Trainyard__AttachInputRequest *m = trainyard__attach_input_request__unpack(NULL, n, p);
  if (!m) return TY_EPROTO;
  out->job_id = m->job_id;
  out->rank = m->rank;
  out->data = m->data.data;
  out->len = m->data.len;
  out->eof = m->eof;
  out->signal = m->signal;
  out->kill = m->kill;
  out->rows = m->rows;
  out->cols = m->cols;
  out->pb = m;
  return 0;
}

void ty__attach_input_free(ty__attach_input *in) {
  if (in && in->pb) trainyard__attach_input_request__free_unpacked(in->pb, NULL);
  if (in) in->pb = NULL;
}

int ty__encode_attach_output(const ty__attach_output *o, uint8_t **out, size_t *out_len) {
  Trainyard__AttachOutput m = TRAINYARD__ATTACH_OUTPUT__INIT;
  m.rank = o->rank;
  m.stream = o->stream;
  m.data.data = (uint8_t *)o->data;
  m.data.len = o->len;
  m.replayed = o->replayed;
  m.exited = o->exited;
  m.exit_code = o->exit_code;
  m.term_signal = o->term_signal;
  m.timed_out = o->timed_out;
  return pack(&m.base, out, out_len);
}
