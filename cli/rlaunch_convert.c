/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> rlaunch structs: the interactive job, Attach, AttachOutput
 * and AttachInput. Pure (bytes in, structs out), like cli/convert.c, the
 * only other cli file that sees generated types.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/trainyard.pb-c.h"

int ty_rl_encode_submit(const ty_rl_opts *o, uint32_t rows, uint32_t cols, const char *request_id,
                        ty_buf *out) {
  ty_job_spec spec = o->job;
  spec.interactive = (ty_interactive){.on = true, .pty = o->pty, .detach = o->detach,
                                      .stdin_all = o->stdin_mode == TY_RL_STDIN_ALL,
                                      .rows = rows, .cols = cols};
  return ty_cli_encode_submit(&spec, request_id, out);
}

int ty_rl_encode_attach(uint64_t job_id, uint32_t rank, bool owner, bool replay, ty_buf *out) {
  Trainyard__AttachRequest r = TRAINYARD__ATTACH_REQUEST__INIT;
  r.job_id = job_id, r.rank = rank, r.owner = owner, r.replay = replay;
  return ty_wire_pack(&r.base, out);
}

int ty_rl_decode_output(const uint8_t *p, size_t n, ty_attach_output *out, void **out_owner) {
  Trainyard__AttachOutput *m = ty_wire_unpack(&trainyard__attach_output__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out = (ty_attach_output){.rank = m->rank, .stream = m->stream, .data = m->data.data,
                        .len = m->data.len, .replayed = m->replayed, .exited = m->exited,
                        .timed_out = m->timed_out, .exit_code = m->exit_code,
                        .term_signal = m->term_signal};
  *out_owner = m;
  return 0;
}

int ty_rl_encode_input(const ty_attach_input *in, ty_buf *out) {
  Trainyard__AttachInputRequest r = TRAINYARD__ATTACH_INPUT_REQUEST__INIT;
  r.job_id = in->job_id, r.rank = in->rank;
  r.data.data = (uint8_t *)in->data, r.data.len = in->len;
  r.eof = in->eof, r.kill = in->kill, r.signal = in->signal;
  r.rows = in->rows, r.cols = in->cols;
  return ty_wire_pack(&r.base, out);
}
