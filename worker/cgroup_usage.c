/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A task's cgroup counters, read when it ends and while it runs: CPU time,
 * peak memory and the working set now, block I/O bytes, the kernel's OOM kills and the
 * forks its pids.max refused (the layout and the making of the cgroups are
 * worker/cgroup.c's). Small synchronous reads of cgroupfs on the loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/cgroup_internal.h"

/* Sums the Read and Write lines of blkio.throttle.io_service_bytes (v1) or
 * the rbytes= and wbytes= fields of io.stat (v2). */
static void io_bytes(const char *text, bool v2, ty_task_usage *u) {
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    const char *r = v2 ? strstr(p, "rbytes=") : NULL, *w = v2 ? strstr(p, "wbytes=") : NULL;
    const char *nl = strchr(p, '\n');
    if (v2) {
      if (r && (!nl || r < nl)) u->io_read_bytes += strtoull(r + 7, NULL, 10);
      if (w && (!nl || w < nl)) u->io_write_bytes += strtoull(w + 7, NULL, 10);
      continue;
    }
    char dev[32], op[16];
    unsigned long long v;
    if (sscanf(p, "%31s %15s %llu", dev, op, &v) != 3) continue;
    if (!strcmp(op, "Read")) u->io_read_bytes += v;
    if (!strcmp(op, "Write")) u->io_write_bytes += v;
  }
}

void ty_cgroup_task_usage(ty_cgroups *cg, uint64_t job, uint32_t rank, ty_task_usage *out) {
  *out = (ty_task_usage){0};
  char dir[PATH_MAX], buf[8192];
  const hier *h;
  if (cg->version == 2) {
    ty__cg_task_dir(&cg->h[0], job, rank, dir, sizeof dir);
    if (ty__cg_read_file(dir, "cpu.stat", buf, sizeof buf) == 0 && strstr(buf, "usage_usec "))
      out->cpu_usec = strtoull(strstr(buf, "usage_usec ") + 11, NULL, 10);
    out->mem_peak_bytes = ty__cg_read_u64(dir, "memory.peak");
    if (ty__cg_read_file(dir, "io.stat", buf, sizeof buf) == 0) io_bytes(buf, true, out);
    return;
  }
  if ((h = ty__cg_find(cg, "cpuacct"))) {
    ty__cg_task_dir(h, job, rank, dir, sizeof dir);
    out->cpu_usec = ty__cg_read_u64(dir, "cpuacct.usage") / 1000;
  }
  if ((h = ty__cg_find(cg, "memory"))) {
    ty__cg_task_dir(h, job, rank, dir, sizeof dir);
    out->mem_peak_bytes = ty__cg_read_u64(dir, "memory.max_usage_in_bytes");
  }
  if ((h = ty__cg_find(cg, "blkio"))) {
    ty__cg_task_dir(h, job, rank, dir, sizeof dir);
    if (ty__cg_read_file(dir, "blkio.throttle.io_service_bytes", buf, sizeof buf) == 0)
      io_bytes(buf, false, out);
  }
}

uint64_t ty_cgroup_working_set(uint64_t usage, const char *memory_stat, bool v2) {
  const char *key = v2 ? "inactive_file " : "total_inactive_file ";
  size_t klen = strlen(key);
  for (const char *p = memory_stat; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncmp(p, key, klen) != 0) continue;
    uint64_t inactive = strtoull(p + klen, NULL, 10);
    return usage > inactive ? usage - inactive : 0;
  }
  return usage;
}

uint64_t ty_cgroup_task_memory(ty_cgroups *cg, uint64_t job, uint32_t rank) {
  char dir[PATH_MAX], stat[8192];
  bool v2 = cg->version == 2;
  const hier *h = v2 ? &cg->h[0] : ty__cg_find(cg, "memory");
  if (!h) return 0;
  ty__cg_task_dir(h, job, rank, dir, sizeof dir);
  uint64_t usage = ty__cg_read_u64(dir, v2 ? "memory.current" : "memory.usage_in_bytes");
  if (ty__cg_read_file(dir, "memory.stat", stat, sizeof stat) != 0) return usage;
  return ty_cgroup_working_set(usage, stat, v2);
}

uint64_t ty_cgroup_task_oom_kills(ty_cgroups *cg, uint64_t job, uint32_t rank) {
  char dir[PATH_MAX], buf[1024];
  const hier *h = cg->version == 2 ? &cg->h[0] : ty__cg_find(cg, "memory");
  if (!h) return 0;
  ty__cg_task_dir(h, job, rank, dir, sizeof dir);
  if (ty__cg_read_file(dir, cg->version == 2 ? "memory.events" : "memory.oom_control", buf,
                       sizeof buf) != 0)
    return 0;
  const char *p = strstr(buf, "oom_kill ");
  return p ? strtoull(p + 9, NULL, 10) : 0;
}

/* Kernels differ in where pids.events counts a refused fork: in the cgroup
 * whose pids.max refused it (the job level), or in the one the forking
 * process is in (the rank, as 6.x kernels' v1 does), and v2 may count it in
 * every ancestor too. The larger of the two is the rank's count either way. */
uint64_t ty_cgroup_task_forks_refused(ty_cgroups *cg, uint64_t job, uint32_t rank) {
  const hier *h = cg->version == 2 ? &cg->h[0] : ty__cg_find(cg, "pids");
  uint64_t most = 0;
  for (int level = 0; h && cg->pids_max && level < 2; level++) {
    char dir[PATH_MAX], buf[256];
    ty__cg_task_dir(h, job, level ? rank : UINT32_MAX, dir, sizeof dir);
    const char *p =
        ty__cg_read_file(dir, "pids.events", buf, sizeof buf) == 0 ? strstr(buf, "max ") : 0;
    uint64_t n = p ? strtoull(p + 4, NULL, 10) : 0;
    if (n > most) most = n;
  }
  return most;
}

uint64_t ty_cgroup_pids_max(const ty_cgroups *cg) {
  return cg->pids_max;
}
