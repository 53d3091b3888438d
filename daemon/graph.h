/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/graph: the controller's side of graph jobs (issue 6).
 *
 *   - Submit-time checks: the model is imported and shape-inferred with
 *     ops/graph (from model_bytes, or model_path on the shared filesystem)
 *     and the TrainConfig decoded and validated with ops/train, and the
 *     config's input/output names are looked up in the model, all before the
 *     job is acknowledged. Errors are the runtime's own words behind the
 *     field ("job.graph.model_bytes: node 3 (MatMul): ...").
 *   - Checkpoints: every rank is told one absolute checkpoint path, so a
 *     requeued job resumes wherever its rank 0 lands: the config's path when
 *     absolute, else STATE_DIR/jobs/ID/<its basename or checkpoint.onnx>
 *     (the state dir must then be on the filesystem the workers share).
 *   - Rendezvous: a small key/value store per job (RendezvousPut/Get) that
 *     the ranks use to form their MPI world or to share the NCCL id. A job's
 *     keys are dropped when it (re)starts, so a requeued run never reads the
 *     previous run's port names.
 *   - Progress: what rank 0's worker reports (step, loss, samples/s, the
 *     last checkpoint), kept in memory and answered with GetJob together
 *     with the checkpoints seen so far (the last 64).
 *
 * Everything runs on the controller's loop thread. Model import happens on
 * it too: submit is rare and the models this serves are a few MiB.
 */
#ifndef TY_DAEMON_GRAPH_H
#define TY_DAEMON_GRAPH_H

#include "daemon/daemon_internal.h"

#define TY_GRAPH_MAX_KEYS 256          /* per job */
#define TY_GRAPH_MAX_VALUE (64 * 1024) /* bytes */
#define TY_GRAPH_MAX_CKPTS 64          /* remembered per job */

/* Submit-time checks: ty__graph_check in daemon/graph_check.h. */
/* The absolute checkpoint path of a graph job (owned by the controller,
 * valid while it runs); NULL when it cannot be made (logged). */
const char *ty__graph_checkpoint_path(ty_controller *ctl, const ty_job *j);
/* The job (re)starts: forget its rendezvous keys. */
void ty__graph_job_started(ty_controller *ctl, const ty_job *j);
/* Appends GetJobResponse's graph fields (progress, checkpoints) to out. */
int ty__graph_append_job(ty_controller *ctl, const ty_job *j, ty_buf *out);
void ty__graph_destroy(ty_controller *ctl);

void ty__h_rendezvous_put(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_rendezvous_get(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);
void ty__h_report_progress(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n);

/* convert_graph.c: the protobuf side (pure). Strings and buffers returned
 * are owned by the caller. */
int ty__conv_rdv_put_req(const uint8_t *p, size_t n, uint64_t *out_job, char **out_key, uint8_t **out_value,
                         size_t *out_len);
int ty__conv_rdv_get_req(const uint8_t *p, size_t n, uint64_t *out_job, char **out_key);
int ty__conv_rdv_get_resp(const uint8_t *value, size_t len, bool found, ty_buf *out);
int ty__conv_progress_req(const uint8_t *p, size_t n, uint64_t *out_job, uint32_t *out_rank,
                          ty_train_progress *out);
int ty__conv_graph_job_extra(const ty_train_progress *pr, const ty_checkpoint_info *ck, size_t n_ck,
                             ty_buf *out);

#endif
