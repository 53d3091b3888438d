/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What each running task uses, for the worker's metrics (stats.c): CPU
 * seconds and memory of the task's processes, and the use of its GPUs.
 *
 * A task in its own cgroup (a worker running as root, issue 12) is read
 * from the cgroup: exact, and cheap. Otherwise a task is the leader of its
 * own session, so its processes are those whose
 * session id (field 6 of /proc/PID/stat) is the task's pid; one pass over
 * /proc per scrape sums utime + stime + cutime + cstime (children already
 * reaped count through their parent) and RSS for every task at once. A
 * process that leaves the session (setsid again) or is reparented to init
 * and reaped there is lost to the sum, so the CPU counter may go down;
 * Prometheus' rate() treats that as a reset.
 *
 * GPUs: NVML, opened with dlopen at the first scrape (nothing links
 * against the driver, so a node without one still starts), and only where
 * the worker was built with CUDA. Utilisation and used memory per GPU.
 *
 * Workload: a scrape every 15 s; /proc of a busy node holds a few thousand
 * processes, read in a few milliseconds.
 */
#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/worker_internal.h"

/* ---- /proc ------------------------------------------------------------------------------ */

int ty_worker_parse_proc_stat(const char *line, int *out_session, uint64_t *out_ticks,
                              uint64_t *out_rss_pages) {
  const char *p = strrchr(line, ')');
  if (!p) return TY_EPROTO;
  /* Fields 3.. after ") ": state ppid pgrp session tty tpgid flags minflt
   * cminflt majflt cmajflt utime stime cutime cstime prio nice threads
   * itreal starttime vsize rss. */
  char state;
  int ppid, pgrp, session;
  unsigned long long utime, stime, rss;
  long long cutime, cstime;
  int n = sscanf(p + 1,
                 " %c %d %d %d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld %*d %*d %*d %*d "
                 "%*u %*u %llu",
                 &state, &ppid, &pgrp, &session, &utime, &stime, &cutime, &cstime, &rss);
  if (n != 9) return TY_EPROTO;
  *out_session = session;
  *out_ticks =
      utime + stime + (uint64_t)(cutime > 0 ? cutime : 0) + (uint64_t)(cstime > 0 ? cstime : 0);
  *out_rss_pages = rss;
  return 0;
}

static bool read_stat(const char *pid, int *session, uint64_t *ticks, uint64_t *rss) {
  char path[64], line[1024];
  snprintf(path, sizeof(path), "/proc/%s/stat", pid);
  FILE *f = fopen(path, "re");
  if (!f) return false; /* it exited meanwhile */
  bool ok = fgets(line, sizeof(line), f) != NULL;
  fclose(f);
  return ok && ty_worker_parse_proc_stat(line, session, ticks, rss) == 0;
}

/* A task in its own cgroup: the cgroup's CPU time (every process that ever
 * ran in it) and its memory now, page cache included, as the limit counts it. */
static void sample_cgroup(ty_cgroups *cg, ty__task_usage *u) {
  ty_task_usage acc;
  ty_cgroup_task_usage(cg, u->job_id, u->rank, &acc);
  u->cpu_s = (double)acc.cpu_usec / 1e6;
  u->rss_bytes = (double)ty_cgroup_task_memory(cg, u->job_id, u->rank);
}

void ty__usage_sample(ty_cgroups *cg, ty__task_usage *tasks, size_t n) {
  size_t in_proc = 0;
  for (size_t i = 0; i < n; i++) {
    tasks[i].cpu_s = 0, tasks[i].rss_bytes = 0;
    if (cg && tasks[i].in_cgroup)
      sample_cgroup(cg, &tasks[i]);
    else
      in_proc++;
  }
  if (in_proc == 0) return;
  DIR *d = opendir("/proc");
  if (!d) return;
  double tick = (double)sysconf(_SC_CLK_TCK);
  double page = (double)sysconf(_SC_PAGESIZE);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!isdigit((unsigned char)e->d_name[0])) continue;
    int session;
    uint64_t ticks, rss;
    if (!read_stat(e->d_name, &session, &ticks, &rss)) continue;
    for (size_t i = 0; i < n; i++) {
      if (tasks[i].pid != session || (cg && tasks[i].in_cgroup)) continue;
      tasks[i].cpu_s += (double)ticks / tick;
      tasks[i].rss_bytes += (double)rss * page;
      break;
    }
  }
  closedir(d);
}

/* ---- NVML ------------------------------------------------------------------------------- */

#ifdef TY_HAVE_CUDA
/* The few NVML entry points used, with the ABI nvml.h declares (the header
 * is not part of the toolkit installed here). */
typedef struct nvml_util {
  unsigned int gpu, memory;
} nvml_util;
typedef struct nvml_memory {
  unsigned long long total, free, used;
} nvml_memory;

struct ty__nvml {
  void *lib;
  int (*init)(void);
  int (*shutdown)(void);
  int (*by_index)(unsigned int, void **);
  int (*util)(void *, nvml_util *);
  int (*mem)(void *, nvml_memory *);
};

ty__nvml *ty__nvml_open(void) {
  void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    ty_debug("metrics: no NVML (%s): no GPU use metrics", dlerror());
    return NULL;
  }
  ty__nvml *n = ty_xcalloc(1, sizeof(*n));
  n->lib = lib;
  *(void **)&n->init = dlsym(lib, "nvmlInit_v2");
  *(void **)&n->shutdown = dlsym(lib, "nvmlShutdown");
  *(void **)&n->by_index = dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
  *(void **)&n->util = dlsym(lib, "nvmlDeviceGetUtilizationRates");
  *(void **)&n->mem = dlsym(lib, "nvmlDeviceGetMemoryInfo");
  if (!n->init || !n->shutdown || !n->by_index || !n->util || !n->mem || n->init() != 0) {
    ty_warn("metrics: NVML found but not usable: no GPU use metrics");
    dlclose(lib);
    free(n);
    return NULL;
  }
  return n;
}

int ty__nvml_sample(ty__nvml *n, uint32_t index, double *out_util, double *out_mem_bytes) {
  void *dev;
  nvml_util u;
  nvml_memory m;
  if (!n || n->by_index(index, &dev) != 0 || n->util(dev, &u) != 0 || n->mem(dev, &m) != 0)
    return TY_ENOTFOUND;
  *out_util = u.gpu / 100.0;
  *out_mem_bytes = (double)m.used;
  return 0;
}

void ty__nvml_close(ty__nvml *n) {
  if (!n) return;
  n->shutdown();
  dlclose(n->lib);
  free(n);
}
#else
ty__nvml *ty__nvml_open(void) {
  return NULL;
}
int ty__nvml_sample(ty__nvml *n, uint32_t index, double *out_util, double *out_mem_bytes) {
  (void)n, (void)index, (void)out_util, (void)out_mem_bytes;
  return TY_ENOTFOUND;
}
void ty__nvml_close(ty__nvml *n) {
  (void)n;
}
#endif
