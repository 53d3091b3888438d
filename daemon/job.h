/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/job: the controller's view of a job spec and the job state machine,
 * free of protobuf and SQLite so both can be unit-tested directly.
 *
 * State values equal trainyard.JobState's numbers, so convert.c and the store
 * can pass them through. Transitions (docs/cluster-protocol.md):
 *
 *   PENDING  -> RUNNING | CANCELLED
 *   RUNNING  -> COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | PREEMPTED
 *   NODE_FAIL, PREEMPTED -> PENDING   (requeue)
 *   COMPLETED, FAILED, CANCELLED, TIMEOUT: terminal
 */
#ifndef TY_DAEMON_JOB_H
#define TY_DAEMON_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ty_job_state {
  TY_JOB_PENDING = 1,
  TY_JOB_RUNNING = 2,
  TY_JOB_COMPLETED = 3,
  TY_JOB_FAILED = 4,
  TY_JOB_CANCELLED = 5,
  TY_JOB_TIMEOUT = 6,
  TY_JOB_PREEMPTED = 7,
  TY_JOB_NODE_FAIL = 8,
} ty_job_state;

#define TY_JOB_STATE_MAX 8

/* "PENDING", "RUNNING", ...; "UNKNOWN" for anything else. Never NULL. */
const char *ty_job_state_name(int state);
/* True for COMPLETED, FAILED, CANCELLED and TIMEOUT. */
bool ty_job_state_terminal(int state);
/* 0 when from -> to is a valid transition, TY_ESTATE otherwise. */
int ty_job_check_transition(int from, int to);

typedef enum { TY_JOB_KIND_NONE = 0, TY_JOB_KIND_COMMAND = 1, TY_JOB_KIND_GRAPH = 2 } ty_job_kind;

/* A job's request, as submitted. Every string and array is owned by the spec
 * and freed by ty_job_spec_close(). */
typedef struct ty_job_spec {
  char *name;
  char *queue;   /* "" or NULL means "default" until validated */
  char *user;
  int32_t priority;
  uint32_t time_limit_s;
  bool has_resources; /* the Resources message was present */
  uint32_t nodes, tasks_per_node, gpus_per_node, cpus_per_task;
  uint64_t mem_per_node;
  ty_job_kind kind;
  char **argv; size_t argc;
  char **env; size_t envc;
  char *cwd;
  /* Interactive execution (rlaunch, Job.interactive): the tasks keep their
   * stdio on the worker for an attached client. */
  bool interactive, pty, stdin_all, detach;
  uint32_t rows, cols; /* initial pty window size, 0 = unset */
  /* Like Slurm's --signal: warn_signal to the tasks warn_before_s seconds
   * before the time limit (0 = none). */
  uint32_t warn_signal, warn_before_s;
  /* A failed rank requeues the job up to this many times (0 = it fails). */
  uint32_t max_rank_failure_requeues;
  /* Graph jobs (Job.graph): the ONNX model as a path on the shared
   * filesystem or as bytes, and the encoded trainyard.TrainConfig. The
   * controller checks both (daemon/graph.c) before acknowledging. */
  char *model_path;
  uint8_t *model_bytes; size_t model_len;
  uint8_t *train_config; size_t train_config_len;
} ty_job_spec;

void ty_job_spec_close(ty_job_spec *s); /* accepts NULL; leaves s zeroed */

/* Limits applied by validation. */
#define TY_JOB_MAX_NAME 256
#define TY_JOB_MAX_NODES 10000
#define TY_JOB_MAX_TASKS_PER_NODE 1024
#define TY_JOB_MAX_CPUS_PER_TASK 4096
#define TY_JOB_MAX_ARGS 4096
#define TY_JOB_MAX_ARG_LEN 65536

/* Checks a submitted spec and fills in defaults (queue "default", name from
 * argv[0], resources defaults 1/1/0/1/0 also for fields sent as 0, since
 * proto3 cannot tell 0 from unset, user "nobody" when the client sent
 * none). Graph jobs need a model (path or bytes) and a config; one rank
 * runs per GPU (tasks_per_node defaults to gpus_per_node) or per CPU slot.
 * Returns 0 or TY_EINVAL and writes the
 * reason, starting with the bad field ("job.command.argv: must not be empty"),
 * into err. Does not know queues or nodes: the controller checks those. */
int ty_job_spec_validate(ty_job_spec *s, char *err, size_t err_len);

#endif
