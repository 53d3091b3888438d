/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> rlaunch structs: the interactive job, task locations with
 * tokens, Attach, AttachOutput and AttachInput. Pure (bytes in, structs
 * out), like cli/convert.c, the only other cli file that sees generated
 * types.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/rlaunch.h"
#include "proto/trainyard.pb-c.h"

static int pack(const ProtobufCMessage *m, ty_buf *out) {
  size_t len = protobuf_c_message_get_packed_size(m);
  int rc = ty_buf_reserve(out, len ? len : 1);
  if (rc != 0) return rc;
  protobuf_c_message_pack(m, out->data + out->len);
  out->len += len;
  return 0;
}

static char *str(char *s) { return s ? s : ""; }

int ty_rl_encode_submit(const ty_rl_opts *o, uint32_t rows, uint32_t cols, ty_buf *out) {
  const ty_cli_job *j = &o->job;
  Trainyard__Resources res = TRAINYARD__RESOURCES__INIT;
  res.nodes = j->nodes, res.tasks_per_node = j->tasks_per_node;
  res.gpus_per_node = j->gpus_per_node, res.cpus_per_task = j->cpus_per_task;
  res.mem_per_node = j->mem_per_node;
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.n_argv = j->argc, cmd.argv = j->argv;
  cmd.n_env = j->envc, cmd.env = j->env;
  cmd.cwd = str(j->cwd);
  Trainyard__InteractiveSpec ia = TRAINYARD__INTERACTIVE_SPEC__INIT;
  ia.pty = o->pty, ia.stdin_all = o->stdin_mode == TY_RL_STDIN_ALL, ia.detach = o->detach;
  ia.rows = rows, ia.cols = cols;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = str(j->name), job.queue = str(j->queue), job.user = str(j->user);
  job.priority = j->priority, job.time_limit_s = j->time_limit_s;
  job.warn_signal = j->warn_signal, job.warn_before_s = j->warn_before_s;
  job.resources = &res;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND;
  job.command = &cmd;
  job.interactive = &ia;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &job;
  return pack(&req.base, out);
}

int ty_rl_encode_locations(uint64_t job_id, const char *user, bool want_tokens, ty_buf *out) {
  Trainyard__GetTaskLocationsRequest r = TRAINYARD__GET_TASK_LOCATIONS_REQUEST__INIT;
  r.job_id = job_id;
  r.want_tokens = want_tokens;
  r.user = (char *)(user ? user : "");
  return pack(&r.base, out);
}

static int by_rank(const void *a, const void *b) {
  const ty_rl_task *x = a, *y = b;
  return x->rank < y->rank ? -1 : x->rank > y->rank;
}

int ty_rl_decode_locations(const uint8_t *p, size_t n, ty_rl_locations *out) {
  memset(out, 0, sizeof *out);
  Trainyard__GetTaskLocationsResponse *r =
      trainyard__get_task_locations_response__unpack(NULL, n, p);
  if (!r) return TY_EPROTO;
  out->state = (int)r->state;
  out->reason = ty_strdup(str(r->reason));
  out->n = r->n_tasks;
  out->tasks = ty_xcalloc(r->n_tasks ? r->n_tasks : 1, sizeof *out->tasks);
  for (size_t i = 0; i < r->n_tasks; i++) {
    const Trainyard__TaskLocation *l = r->tasks[i];
    ty_rl_task *t = &out->tasks[i];
    t->rank = l->rank;
    t->node = ty_strdup(str(l->node));
    t->io_addr = ty_strdup(str(l->io_addr));
    t->token_len = l->token.len;
    t->token = ty_xmalloc(l->token.len ? l->token.len : 1);
    if (l->token.len) memcpy(t->token, l->token.data, l->token.len);
  }
  qsort(out->tasks, out->n, sizeof *out->tasks, by_rank);
  trainyard__get_task_locations_response__free_unpacked(r, NULL);
  return 0;
}

void ty_rl_locations_close(ty_rl_locations *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; i++)
    free(l->tasks[i].node), free(l->tasks[i].io_addr), free(l->tasks[i].token);
  free(l->tasks);
  free(l->reason);
  memset(l, 0, sizeof *l);
}

int ty_rl_encode_attach(uint64_t job_id, uint32_t rank, bool owner, bool replay, ty_buf *out) {
  Trainyard__AttachRequest r = TRAINYARD__ATTACH_REQUEST__INIT;
  r.job_id = job_id, r.rank = rank, r.owner = owner, r.replay = replay;
  return pack(&r.base, out);
}

int ty_rl_decode_output(const uint8_t *p, size_t n, ty_rl_output *out, void **out_owner) {
  Trainyard__AttachOutput *m = trainyard__attach_output__unpack(NULL, n, p);
  if (!m) return TY_EPROTO;
  *out = (ty_rl_output){.rank = m->rank, .stream = m->stream, .data = m->data.data,
                        .len = m->data.len, .replayed = m->replayed, .exited = m->exited,
                        .timed_out = m->timed_out, .exit_code = m->exit_code,
                        .term_signal = m->term_signal};
  *out_owner = m;
  return 0;
}

void ty_rl_output_free(void *owner) {
  if (owner) trainyard__attach_output__free_unpacked(owner, NULL);
}

int ty_rl_encode_input(const ty_rl_input *in, ty_buf *out) {
  Trainyard__AttachInputRequest r = TRAINYARD__ATTACH_INPUT_REQUEST__INIT;
  r.job_id = in->job_id, r.rank = in->rank;
  r.data.data = (uint8_t *)in->data, r.data.len = in->len;
  r.eof = in->eof, r.kill = in->kill, r.signal = in->signal;
  r.rows = in->rows, r.cols = in->cols;
  return pack(&r.base, out);
}
