/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the scheduler's unit tests: an idle node of a given size, a
 * job of whole-node GPUs, a running job on one slot, and the lookups of one job's placement or
 * pending entry in a pass's output. Everything returned is borrowed: a
 * node's name is the caller's string, an entry points into the output.
 */
#ifndef TY_TESTS_UNIT_SCHEDULER_SCHED_FIXTURE_H
#define TY_TESTS_UNIT_SCHEDULER_SCHED_FIXTURE_H

#include <stdint.h>

#include "scheduler/scheduler.h"

/* A schedulable node with every CPU, GPU (cpus and gpus of them) and byte
 * of mem free. */
ty_sched_node sf_node(const char *name, uint32_t cpus, uint32_t gpus, uint64_t mem);
/* Running job id of user "x" on one slot, started at start_ms with a
 * limit of limit_s (0: unknown); the slot is borrowed. */
ty_sched_running sf_running(uint64_t id, int64_t start_ms, uint32_t limit_s,
                            const ty_sched_slot *slot);
/* sf_node with memory to spare (a TiB): for policies that count CPUs
 * and GPUs. */
ty_sched_node sf_gnode(const char *name, uint32_t cpus, uint32_t gpus);
/* Job id of queue and user on nodes nodes, one task of one CPU and gpus
 * GPUs each, submitted at 1000 ms with a limit of limit_s (0: unknown). */
ty_sched_job sf_gjob(uint64_t id, const char *queue, const char *user, uint32_t nodes,
                     uint32_t gpus, uint32_t limit_s);
/* The next of a xorshift64 sequence in *s (not 0): the simulations'
 * draws, the same on every machine. */
uint64_t sf_rng(uint64_t *s);
/* Job id's placement in o, or NULL when the pass did not place it. */
const ty_sched_placement *sf_placed(const ty_sched_output *o, uint64_t id);
/* Job id's pending entry in o, or NULL when it is not pending. */
const ty_sched_pending *sf_pending(const ty_sched_output *o, uint64_t id);

#endif
