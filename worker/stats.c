/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's Prometheus metrics. Gauges mirror state and are recomputed
 * from the task registry just before each scrape; counters are advanced by
 * the difference between the registry's lifetime counts and what they
 * showed at the previous scrape, so the task code needs no metrics hooks.
 *
 *   trainyard_worker_slots_capacity{kind="cpu|gpu"}            gauge
 *   trainyard_worker_slots_used{kind="cpu|gpu"}                gauge
 *   trainyard_worker_task_cpu_seconds_total{job_id,rank}         counter (usage.c: its cgroup,
 *   trainyard_worker_task_memory_bytes{job_id,rank}              gauge    else /proc)
 *   trainyard_worker_gpu_utilization_ratio{gpu,job_id}           gauge   (NVML, usage.c)
 *   trainyard_worker_gpu_memory_used_bytes{gpu,job_id}           gauge   (NVML, usage.c)
 *   trainyard_worker_memory_bytes                             gauge
 *   trainyard_worker_tasks_running                            gauge
 *   trainyard_worker_tasks_started_total                      counter
 *   trainyard_worker_launch_failures_total                    counter
 *   trainyard_worker_task_exits_total{result="success|failure|signaled|timed_out"}
 *   trainyard_worker_log_bytes                                gauge: disk used by task logs
 *                                                             and job files (DIR/jobs)
 *   trainyard_worker_log_cut_bytes_total                      counter: output cut from logs
 *                                                             over --log-max-size
 *   trainyard_worker_log_dirs_removed_total                   counter: job directories removed
 *                                                             after --log-retention
 *   trainyard_worker_fenced_tasks_total                       counter: tasks killed because
 *                                                             the controller's lease expired
 *   process_*                                                 (lib/metrics)
 *
 * Per-task series are cleared and refilled on every scrape from the running
 * tasks, so a task's series go with it. docs/metrics.md lists them all.
 */
#include <stdlib.h>

#include "worker/worker_internal.h"

struct ty__worker_stats {
  ty_tasks *tasks;
  const ty_worker_inventory *inv;
  ty_metric *slots_total, *slots_used, *task_cpu, *task_mem, *gpu_util, *gpu_mem;
  ty__nvml *nvml;
  bool nvml_tried;
  ty_metric *memory, *running, *started, *launch_failures, *exits;
  ty_metric *log_bytes, *log_cut, *log_removed, *fenced;
  ty_tasks_stats last; /* counts already added to the counters */
};

static void advance(ty_metric *m, const char *const *labels, uint64_t now, uint64_t *last) {
  /* Adding 0 still creates the series, so every result shows from the start. */
  ty_metric_inc(m, labels, now > *last ? (double)(now - *last) : 0.0);
  *last = now;
}

typedef struct usage_list {
  ty__task_usage *v;
  size_t n, cap;
} usage_list;

static void add_running(uint64_t job_id, uint32_t rank, int pid, uint64_t gpus, bool in_cgroup,
                        void *ud) {
  usage_list *l = ud;
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 8;
    l->v = ty_xrealloc(l->v, l->cap * sizeof(*l->v));
  }
  l->v[l->n++] = (ty__task_usage){
      .job_id = job_id, .rank = rank, .pid = pid, .gpus = gpus, .in_cgroup = in_cgroup};
}

/* The job id on each GPU index, or "" for a free one. */
static const char *gpu_job(const usage_list *l, uint32_t gpu, char *buf, size_t len) {
  for (size_t i = 0; i < l->n; i++)
    if (gpu < 64 && (l->v[i].gpus >> gpu) & 1) {
      snprintf(buf, len, "%llu", (unsigned long long)l->v[i].job_id);
      return buf;
    }
  return "";
}

static void collect_gpus(ty__worker_stats *s, const usage_list *l) {
  if (!s->nvml_tried && s->inv->n_gpus > 0) s->nvml = ty__nvml_open(), s->nvml_tried = true;
  ty_metric_clear(s->gpu_util);
  ty_metric_clear(s->gpu_mem);
  for (uint32_t g = 0; s->nvml && g < s->inv->n_gpus; g++) {
    double util, mem;
    uint32_t index = s->inv->gpus ? s->inv->gpus[g].index : g;
    if (ty__nvml_sample(s->nvml, index, &util, &mem) != 0) continue;
    char gpu[16], job[24];
    snprintf(gpu, sizeof(gpu), "%u", index);
    const char *labels[] = {gpu, gpu_job(l, index, job, sizeof(job))};
    ty_metric_set(s->gpu_util, labels, util);
    ty_metric_set(s->gpu_mem, labels, mem);
  }
}

static void collect_tasks(ty__worker_stats *s) {
  usage_list l = {0};
  ty_tasks_foreach_running(s->tasks, add_running, &l);
  ty__usage_sample(ty_tasks_cgroups(s->tasks), l.v, l.n);
  ty_metric_clear(s->task_cpu);
  ty_metric_clear(s->task_mem);
  for (size_t i = 0; i < l.n; i++) {
    char job[24], rank[16];
    snprintf(job, sizeof(job), "%llu", (unsigned long long)l.v[i].job_id);
    snprintf(rank, sizeof(rank), "%u", l.v[i].rank);
    const char *labels[] = {job, rank};
    ty_metric_set(s->task_cpu, labels, l.v[i].cpu_s);
    ty_metric_set(s->task_mem, labels, l.v[i].rss_bytes);
  }
  collect_gpus(s, &l);
  free(l.v);
}

static void collect(ty_metrics *m, void *ud) {
  (void)m;
  ty__worker_stats *s = ud;
  static const char *const cpu[] = {"cpu"}, *const gpu[] = {"gpu"};
  ty_metric_set(s->slots_total, cpu, s->inv->cpus);
  ty_metric_set(s->slots_used, cpu, ty_tasks_cpus_used(s->tasks));
  ty_metric_set(s->slots_total, gpu, s->inv->n_gpus);
  ty_metric_set(s->slots_used, gpu, ty_tasks_gpus_used(s->tasks));
  collect_tasks(s);
  ty_metric_set(s->memory, NULL, (double)s->inv->memory);
  ty_metric_set(s->running, NULL, ty_tasks_running(s->tasks));

  ty_tasks_stats now;
  ty_tasks_get_stats(s->tasks, &now);
  static const char *const success[] = {"success"}, *const failure[] = {"failure"};
  static const char *const signaled[] = {"signaled"}, *const timed_out[] = {"timed_out"};
  advance(s->started, NULL, now.started, &s->last.started);
  advance(s->launch_failures, NULL, now.launch_failures, &s->last.launch_failures);
  advance(s->exits, success, now.exit_success, &s->last.exit_success);
  advance(s->exits, failure, now.exit_failure, &s->last.exit_failure);
  advance(s->exits, signaled, now.exit_signaled, &s->last.exit_signaled);
  advance(s->exits, timed_out, now.exit_timed_out, &s->last.exit_timed_out);
  advance(s->log_cut, NULL, now.log_bytes_cut, &s->last.log_bytes_cut);
  advance(s->log_removed, NULL, now.log_dirs_removed, &s->last.log_dirs_removed);
  advance(s->fenced, NULL, now.fenced, &s->last.fenced);
  ty_metric_set(s->log_bytes, NULL, (double)ty_tasks_log_disk_bytes(s->tasks));
}

ty__worker_stats *ty__worker_stats_create(ty_metrics *m, ty_tasks *tasks,
                                          const ty_worker_inventory *inv) {
  ty__worker_stats *s = ty_xcalloc(1, sizeof *s);
  s->tasks = tasks;
  s->inv = inv;
  s->slots_total = ty_metrics_gauge(m, "trainyard_worker_slots_capacity",
                                    "CPU and GPU slots of this node", "kind");
  s->slots_used = ty_metrics_gauge(m, "trainyard_worker_slots_used",
                                   "CPU and GPU slots of this node used by running tasks", "kind");
  s->task_cpu = ty_metrics_counter(m, "trainyard_worker_task_cpu_seconds_total",
                                   "CPU seconds used by a running task's processes", "job_id,rank");
  s->task_mem = ty_metrics_gauge(m, "trainyard_worker_task_memory_bytes",
                                 "Memory of a running task: its cgroup's working set (usage less "
                                 "inactive page cache), else its processes' resident memory",
                                 "job_id,rank");
  s->gpu_util =
      ty_metrics_gauge(m, "trainyard_worker_gpu_utilization_ratio",
                       "GPU utilisation (NVML), with the job using the GPU", "gpu,job_id");
  s->gpu_mem = ty_metrics_gauge(m, "trainyard_worker_gpu_memory_used_bytes",
                                "GPU memory used (NVML), with the job using the GPU", "gpu,job_id");
  s->memory =
      ty_metrics_gauge(m, "trainyard_worker_memory_bytes", "Memory of this node in bytes", NULL);
  s->running =
      ty_metrics_gauge(m, "trainyard_worker_tasks_running", "Tasks running on this node", NULL);
  s->started =
      ty_metrics_counter(m, "trainyard_worker_tasks_started_total", "Task processes spawned", NULL);
  s->launch_failures =
      ty_metrics_counter(m, "trainyard_worker_launch_failures_total",
                         "LaunchTask requests refused (bad cwd, argv[0], ...)", NULL);
  s->exits = ty_metrics_counter(m, "trainyard_worker_task_exits_total", "Tasks ended, by result",
                                "result");
  s->log_bytes = ty_metrics_gauge(m, "trainyard_worker_log_bytes",
                                  "Disk bytes used by task logs and job files on this node", NULL);
  s->log_cut = ty_metrics_counter(m, "trainyard_worker_log_cut_bytes_total",
                                  "Output bytes cut from task logs over --log-max-size", NULL);
  s->log_removed =
      ty_metrics_counter(m, "trainyard_worker_log_dirs_removed_total",
                         "Job directories removed --log-retention after the job ended", NULL);
  s->fenced = ty_metrics_counter(m, "trainyard_worker_fenced_tasks_total",
                                 "Tasks killed because the controller was unreachable for the "
                                 "lease (--lease-ms)",
                                 NULL);
  ty_metrics_add_process(m);
  ty_metrics_add_build_info(m);
  ty_metrics_on_collect(m, collect, s);
  /* Series exist from the first scrape on, even before any task ran. */
  collect(m, s);
  return s;
}

void ty__worker_stats_destroy(ty__worker_stats *s) {
  if (!s) return;
  ty__nvml_close(s->nvml);
  free(s);
}
