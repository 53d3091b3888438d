/* SPDX-License-Identifier: Apache-2.0 */
/*
 * protobuf-c <-> rlaunch structs: the interactive job and its watch events,
 * Attach, AttachOutput and AttachInput. Pure (bytes in, structs out), like cli/convert.c, the
 * only other cli file that sees generated types.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/rlaunch.h"
#include "proto/convert.h"
#include "proto/trainyard.pb-c.h"

int ty_rl_encode_submit(const ty_rl_opts *o, uint32_t rows, uint32_t cols, const char *request_id,
                        ty_buf *out) {
  ty_job_spec spec = o->job;
  spec.interactive = (ty_interactive){.on = true,
                                      .pty = o->pty,
                                      .detach = o->detach,
                                      .stdin_all = o->stdin_mode == TY_RL_STDIN_ALL,
                                      .rows = rows,
                                      .cols = cols};
  ty_proto_job pj;
  ty_proto_encode_job(&spec, &pj);
  int rc = ty_proto_encode_job_extra(&spec, &pj); /* --dependency's conditions */
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &pj.job;
  req.request_id = (char *)(request_id ? request_id : "");
  req.watch = true, req.want_tokens = true, req.timing = o->timing;
  if (rc == 0) rc = ty_wire_pack(&req.base, out);
  ty_proto_job_close(&pj);
  return rc;
}

int ty_rl_encode_watch(uint64_t job_id, bool want_tokens, ty_buf *out) {
  Trainyard__WatchJobRequest r = TRAINYARD__WATCH_JOB_REQUEST__INIT;
  r.job_id = job_id, r.want_tokens = want_tokens;
  return ty_wire_pack(&r.base, out);
}

static void timing_from_pb(const Trainyard__LaunchTiming *t, ty_launch_timing *out) {
  *out = (ty_launch_timing){.checks_us = t->checks_us,
                            .commit_us = t->commit_us,
                            .queued_us = t->queued_us,
                            .pass_us = t->pass_us,
                            .start_commit_us = t->start_commit_us,
                            .launch_us = t->launch_us,
                            .end_us = t->end_us};
}

int ty_rl_decode_watch_event(const uint8_t *p, size_t n, ty_job_watch_event *out) {
  memset(out, 0, sizeof *out);
  Trainyard__JobWatchEvent *ev = ty_wire_unpack(&trainyard__job_watch_event__descriptor, p, n);
  if (!ev || !ev->job) {
    ty_wire_free(ev);
    return TY_EPROTO;
  }
  out->job_id = ev->job_id;
  if (ev->timing) timing_from_pb(ev->timing, &out->timing);
  /* The locations' decoder (cli/convert.c) takes bytes: the embedded
   * message, packed again (a few hundred bytes). */
  ty_buf b;
  ty_buf_init(&b);
  int rc = ty_wire_pack(&ev->job->base, &b);
  if (rc == 0) rc = ty_cli_decode_locations(b.data, b.len, &out->job);
  ty_buf_close(&b);
  ty_wire_free(ev);
  return rc;
}

int ty_rl_encode_attach(const ty_attach_request *a, ty_buf *out) {
  Trainyard__AttachRequest r = TRAINYARD__ATTACH_REQUEST__INIT;
  r.job_id = a->job_id, r.rank = a->rank, r.owner = a->owner, r.replay = a->replay;
  r.wait_ms = a->wait_ms;
  return ty_wire_pack(&r.base, out);
}

int ty_rl_decode_output(const uint8_t *p, size_t n, ty_attach_output *out, void **out_owner) {
  Trainyard__AttachOutput *m = ty_wire_unpack(&trainyard__attach_output__descriptor, p, n);
  if (!m) return TY_EPROTO;
  *out = (ty_attach_output){.rank = m->rank,
                            .stream = m->stream,
                            .data = m->data.data,
                            .len = m->data.len,
                            .replayed = m->replayed,
                            .exited = m->exited,
                            .timed_out = m->timed_out,
                            .exit_code = m->exit_code,
                            .term_signal = m->term_signal};
  if (m->timing)
    out->timing = (ty_task_timing){.prepare_us = m->timing->prepare_us,
                                   .spawn_us = m->timing->spawn_us,
                                   .attach_us = m->timing->attach_us,
                                   .first_output_us = m->timing->first_output_us,
                                   .exit_us = m->timing->exit_us};
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
