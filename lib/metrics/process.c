/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Process metrics under the names every Prometheus client library uses, so
 * stock dashboards work: CPU seconds, resident and virtual memory, start
 * time, open and maximum file descriptors. Read from /proc/self at collect
 * time (Linux only); a file that cannot be read leaves its metric at the last
 * value rather than failing the scrape.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/metrics/metrics_internal.h"

typedef struct proc_metrics {
  ty_metric *cpu, *rss, *vsize, *start, *open_fds, *max_fds;
} proc_metrics;

/* Reads a small /proc file into buf (NUL-terminated); 0 or -1. */
static int read_small(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  size_t n = fread(buf, 1, cap - 1, f);
  fclose(f);
  buf[n] = '\0';
  return n > 0 ? 0 : -1;
}

/* Seconds since the epoch at which the system booted ("btime" in /proc/stat). */
static int boot_time(double *out) {
  FILE *f = fopen("/proc/stat", "re");
  if (!f) return -1;
  char line[256];
  int rc = -1;
  while (rc != 0 && fgets(line, sizeof line, f)) {
    unsigned long long bt;
    if (sscanf(line, "btime %llu", &bt) == 1) *out = (double)bt, rc = 0;
  }
  fclose(f);
  return rc;
}

/* /proc/self/stat: "pid (comm) state ppid ..."; comm may hold spaces and
 * parentheses, so fields are counted from the last ')'. utime and stime are
 * fields 14 and 15, starttime field 22 (man 5 proc). */
static void collect_stat(const proc_metrics *p) {
  char buf[1024];
  if (read_small("/proc/self/stat", buf, sizeof buf) != 0) return;
  char *rp = strrchr(buf, ')');
  if (!rp) return;
  unsigned long long utime = 0, stime = 0, starttime = 0;
  char *save = NULL;
  int field = 3;
  for (char *tok = strtok_r(rp + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
    if (field == 14)
      utime = strtoull(tok, NULL, 10);
    else if (field == 15)
      stime = strtoull(tok, NULL, 10);
    else if (field == 22) {
      starttime = strtoull(tok, NULL, 10);
      break;
    }
  }
  if (field != 22) return;
  double hz = (double)sysconf(_SC_CLK_TCK);
  if (hz <= 0) return;
  ty_metric_set(p->cpu, NULL, (double)(utime + stime) / hz);
  double bt;
  if (boot_time(&bt) == 0) ty_metric_set(p->start, NULL, bt + (double)starttime / hz);
}

static void collect_statm(const proc_metrics *p) {
  char buf[256];
  unsigned long long size, resident;
  if (read_small("/proc/self/statm", buf, sizeof buf) != 0) return;
  if (sscanf(buf, "%llu %llu", &size, &resident) != 2) return;
  double page = (double)sysconf(_SC_PAGESIZE);
  ty_metric_set(p->vsize, NULL, (double)size * page);
  ty_metric_set(p->rss, NULL, (double)resident * page);
}

static void collect_fds(const proc_metrics *p) {
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    int self = dirfd(d);
    double n = 0;
    char self_name[16];
    snprintf(self_name, sizeof self_name, "%d", self);
    for (struct dirent *e = readdir(d); e; e = readdir(d))
      if (e->d_name[0] != '.' && strcmp(e->d_name, self_name) != 0) n++;
    closedir(d);
    ty_metric_set(p->open_fds, NULL, n);
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    ty_metric_set(p->max_fds, NULL, rl.rlim_cur == RLIM_INFINITY ? -1.0 : (double)rl.rlim_cur);
}

static void collect_process(ty_metrics *m, void *ud) {
  (void)m;
  const proc_metrics *p = ud;
  collect_stat(p);
  collect_statm(p);
  collect_fds(p);
}

void ty_metrics_add_process(ty_metrics *m) {
  if (!m || ty__metrics_find(m, "process_cpu_seconds_total")) return;
  proc_metrics *p = ty_xcalloc(1, sizeof *p);
  p->cpu = ty_metrics_counter(m, "process_cpu_seconds_total",
                              "Total user and system CPU time spent in seconds.", NULL);
  p->rss =
      ty_metrics_gauge(m, "process_resident_memory_bytes", "Resident memory size in bytes.", NULL);
  p->vsize =
      ty_metrics_gauge(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL);
  p->start = ty_metrics_gauge(m, "process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.", NULL);
  p->open_fds = ty_metrics_gauge(m, "process_open_fds", "Number of open file descriptors.", NULL);
  p->max_fds =
      ty_metrics_gauge(m, "process_max_fds", "Maximum number of open file descriptors.", NULL);
  ty__metrics_on_collect_owned(m, collect_process, p, free);
}
