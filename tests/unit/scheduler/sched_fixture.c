/* SPDX-License-Identifier: Apache-2.0 */
/* The scheduler tests' nodes, jobs and output lookups (see sched_fixture.h). */
#include "sched_fixture.h"

#include <stddef.h>

ty_sched_node sf_node(const char *name, uint32_t cpus, uint32_t gpus, uint64_t mem) {
  ty_sched_node n = {.name = name,
                     .schedulable = true,
                     .cpus_total = cpus,
                     .cpus_free = cpus,
                     .gpus_total = gpus,
                     .gpus_free = gpus >= 64 ? UINT64_MAX : (UINT64_C(1) << gpus) - 1,
                     .mem_total = mem,
                     .mem_free = mem};
  return n;
}

ty_sched_node sf_gnode(const char *name, uint32_t cpus, uint32_t gpus) {
  return sf_node(name, cpus, gpus, 1ull << 40);
}

ty_sched_job sf_gjob(uint64_t id, const char *queue, const char *user, uint32_t nodes,
                     uint32_t gpus, uint32_t limit_s) {
  return (ty_sched_job){.id = id,
                        .queue = queue,
                        .user = user,
                        .submit_time_ms = 1000,
                        .nodes = nodes,
                        .tasks_per_node = 1,
                        .cpus_per_task = 1,
                        .gpus_per_node = gpus,
                        .time_limit_s = limit_s};
}

ty_sched_running sf_running(uint64_t id, int64_t start_ms, uint32_t limit_s,
                            const ty_sched_slot *slot) {
  return (ty_sched_running){.id = id,
                            .user = "x",
                            .start_time_ms = start_ms,
                            .time_limit_s = limit_s,
                            .slots = slot,
                            .n_slots = 1};
}

uint64_t sf_rng(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return *s;
}

const ty_sched_placement *sf_placed(const ty_sched_output *o, uint64_t id) {
  for (size_t i = 0; i < o->n_placements; i++)
    if (o->placements[i].job_id == id) return &o->placements[i];
  return NULL;
}

const ty_sched_pending *sf_pending(const ty_sched_output *o, uint64_t id) {
  for (size_t i = 0; i < o->n_pending; i++)
    if (o->pending[i].job_id == id) return &o->pending[i];
  return NULL;
}
