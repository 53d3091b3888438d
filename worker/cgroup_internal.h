/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What worker/cgroup.c (a cgroup per task: discovery, making, killing,
 * removing) shares with worker/cgroup_usage.c (reading a task's
 * accounting and limit counters): the hierarchies and the file helpers.
 * Internal to the worker.
 */
#ifndef TY_WORKER_CGROUP_INTERNAL_H
#define TY_WORKER_CGROUP_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/worker_internal.h"

#define MAX_HIER 12
#define MAX_SPARES 64 /* spare task cgroups kept per pooled hierarchy */

/* One hierarchy: its controllers and the worker's subtree in it. */
typedef struct hier {
  bool v1;
  size_t mount_len;      /* base's first mount_len bytes are the mount point */
  char controllers[128]; /* "memory", "cpu,cpuacct", ...; v2: what it delegates */
  char base[PATH_MAX];   /* <mount>/<parent>/<name> */
} hier;

struct ty_cgroups {
  int version; /* 1 or 2 */
  hier h[MAX_HIER];
  size_t n;
  int primary;       /* the hierarchy whose cgroup.procs lists a task's processes */
  uint64_t gpu_devs; /* v1: /dev/nvidiaN present at open (bit N), for the devices rules */
  uint32_t spares;   /* v1 spare cgroups spare0..spares-1 ready in the pooled hierarchies */
  uint64_t pids_max; /* each job's pids.max on this node; 0 = none */
  char describe[1024];
};

/* Reads a small file dir/file into buf (NUL-terminated); 0 or a negative errno. */
int ty__cg_read_file(const char *dir, const char *file, char *buf, size_t cap);
/* dir/file's number, 0 when it cannot be read. */
uint64_t ty__cg_read_u64(const char *dir, const char *file);
/* The first hierarchy carrying the controller, or NULL. */
const hier *ty__cg_find(const ty_cgroups *cg, const char *controller);
/* base/job<J> (rank UINT32_MAX) or base/job<J>/rank<R>; "" when too long. */
void ty__cg_task_dir(const hier *h, uint64_t job, uint32_t rank, char *out, size_t cap);

#endif
