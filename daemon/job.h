/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/job: the job state machine and the controller's checks of a job
 * spec, free of protobuf and SQLite so both can be unit-tested directly.
 *
 * Transitions (docs/cluster-protocol.md):
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

#include "lib/wire/wire.h"

/* 0 when from -> to is a valid transition, TY_ESTATE otherwise. States and
 * the job spec are the wire model's (lib/wire/wire.h). */
int ty_job_check_transition(int from, int to);

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
