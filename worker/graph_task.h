/* SPDX-License-Identifier: Apache-2.0 */
/*
 * worker/graph_task: the worker's side of graph jobs (issue 6).
 *
 * Launch: a LaunchTaskRequest with `graph` set becomes a `trainrun` command
 * for that rank. The worker writes model_bytes (when the model is not a
 * shared path) and the TrainConfig into DIR/jobs/JOB/ (model.onnx,
 * config.pb), and runs
 *
 *   TRAINRUN --model M --config DIR/jobs/JOB/config.pb --checkpoint C
 *            --threads CPUS
 *
 * in that directory, with TRAINYARD_CONTROLLER=HOST:PORT (the controller as
 * this worker reaches it: the ranks' rendezvous) added to the standard task
 * environment (RANK, WORLD_SIZE, TRAINYARD_JOB_ID...).
 *
 * Progress (progress.c): for every rank 0 it started, the worker reads the
 * tail of the rank's log at each heartbeat -- trainrun's progress lines,
 * "step S/T loss L lr X samples/s N" and "epoch E test_accuracy A ..." --
 * and the step recorded in the checkpoint's PATH.state header, and sends
 * ReportProgress when something changed, plus once more after the task
 * ended. Reading the log keeps trainrun free of any worker protocol.
 */
#ifndef TY_WORKER_GRAPH_TASK_H
#define TY_WORKER_GRAPH_TASK_H

#include "lib/rpc/rpc.h"
#include "worker/worker.h"

/* ReportProgress for rank `rank` of job_id, appended to out (convert.c). */
int ty__encode_progress(uint64_t job_id, uint32_t rank, const ty_train_progress *p, ty_buf *out);

/* One per session. `trainrun` and `controller` ("host:port") are copied. */
typedef struct ty__graph_worker ty__graph_worker;
ty__graph_worker *ty__graph_worker_create(ty_tasks *tasks, const char *trainrun, const char *controller);
void ty__graph_worker_destroy(ty__graph_worker *gw);

/* The command of a graph rank; the spec's argv/env/cwd point into it until
 * ty__graph_cmd_close. */
typedef struct ty__graph_cmd {
  char *argv[16];
  size_t argc;
  char *env[4];
  size_t n_env;
  char *cwd;
} ty__graph_cmd;

/* When spec is a graph rank, writes the job's files and points spec's
 * argv, env and cwd at `cmd`; returns 1. Returns 0 for a command task, or
 * an error with a message in err. */
int ty__graph_prepare(ty__graph_worker *gw, ty_task_spec *spec, ty__graph_cmd *cmd, char *err,
                      size_t err_len);
void ty__graph_cmd_close(ty__graph_cmd *cmd);
/* A graph rank 0 started: watch its progress. */
void ty__graph_watch(ty__graph_worker *gw, const ty_task_spec *spec, const char *checkpoint_path);
/* At each heartbeat: sends ReportProgress over conn for what changed. */
void ty__graph_tick(ty__graph_worker *gw, ty_rpc_conn *conn);

/* progress.c: parses a log tail into p (fields it finds); pure, for tests. */
void ty__progress_parse(const char *text, size_t len, ty_train_progress *p);

#endif
