/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scheduler/: the scheduling policy as a pure library. Plain structs in,
 * decisions out: no sockets, no SQLite, no protobuf. The controller builds a
 * ty_sched_input from its in-memory state on every scheduling pass, calls
 * ty_sched_pass(), and applies the placements it returns; the trace
 * simulator in bench/ drives the same call.
 *
 * This first policy orders pending jobs by priority (higher first), then by
 * submit time, then id, and places each whole gang (all of its nodes or none)
 * on the first nodes with enough free CPUs, GPUs and memory. A job that does
 * not fit gets a reason. The full multifactor / backfill / preemption policy
 * replaces the body of ty_sched_pass() behind this same interface.
 */
#ifndef TY_SCHEDULER_SCHEDULER_H
#define TY_SCHEDULER_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TY_SCHED_MAX_GPUS 64 /* per node: GPU sets are 64-bit masks */

typedef struct ty_sched_node {
  const char *name;      /* borrowed */
  bool schedulable;      /* UP and not draining */
  uint32_t cpus_total;
  uint32_t cpus_free;
  uint32_t gpus_total;
  uint64_t gpus_free;    /* bit i set = GPU index i is free */
  uint64_t mem_total;    /* bytes */
  uint64_t mem_free;
} ty_sched_node;

typedef struct ty_sched_job {
  uint64_t id;
  const char *queue;     /* borrowed */
  const char *user;      /* borrowed */
  int32_t priority;
  int64_t submit_time_ms;
  uint32_t nodes;          /* >= 1 */
  uint32_t tasks_per_node; /* >= 1 */
  uint32_t cpus_per_task;  /* >= 1 */
  uint32_t gpus_per_node;
  uint64_t mem_per_node;   /* bytes, 0 = no limit */
} ty_sched_job;

typedef struct ty_sched_input {
  const ty_sched_job *jobs; /* pending jobs, any order */
  size_t n_jobs;
  const ty_sched_node *nodes;
  size_t n_nodes;
} ty_sched_input;

/* One node of a placement: which node and which of its GPUs. */
typedef struct ty_sched_slot {
  uint32_t node;      /* index into input.nodes */
  uint64_t gpus;      /* GPU indices given to the job on that node */
  uint32_t cpus;
  uint64_t mem;
} ty_sched_slot;

typedef struct ty_sched_placement {
  uint64_t job_id;
  uint32_t n_slots;   /* == job.nodes */
  ty_sched_slot *slots; /* owned by the output */
} ty_sched_placement;

typedef struct ty_sched_pending {
  uint64_t job_id;
  uint32_t position;  /* 1-based rank among jobs still pending after the pass */
  char reason[160];   /* e.g. "Resources: needs 2 nodes with 4 free GPUs, 1 has" */
} ty_sched_pending;

typedef struct ty_sched_output {
  ty_sched_placement *placements; size_t n_placements;
  ty_sched_pending *pending; size_t n_pending;
} ty_sched_output;

/* Runs one pass. Does not modify the input; fills *out, which the caller
 * releases with ty_sched_output_close(). Returns 0 or TY_ENOMEM. */
int ty_sched_pass(const ty_sched_input *in, ty_sched_output *out);
void ty_sched_output_close(ty_sched_output *out);

/* Checks a job's request against the largest node of the cluster's shape;
 * returns 0 or TY_EINVAL and writes why into reason (e.g. "resources.gpus_per_node
 * is 16 but the largest node has 8 GPUs"). Used to refuse jobs that can never
 * run at submit time. */
int ty_sched_check_fits(const ty_sched_job *job, const ty_sched_node *nodes, size_t n_nodes,
                        char *reason, size_t reason_len);

#endif
