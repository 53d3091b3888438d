/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's Prometheus metrics. Gauges mirror state and are recomputed
 * from the task registry just before each scrape; counters are advanced by
 * the difference between the registry's lifetime counts and what they
 * showed at the previous scrape, so the task code needs no metrics hooks.
 *
 *   trainyard_worker_slots{kind="cpu|gpu",state="total|used"}  gauge
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
 *   process_*                                                 (lib/metrics)
 */
#include <stdlib.h>

#include "worker/worker_internal.h"

struct ty__worker_stats {
  ty_tasks *tasks;
  const ty_worker_inventory *inv;
  ty_metric *slots, *memory, *running, *started, *launch_failures, *exits;
  ty_metric *log_bytes, *log_cut, *log_removed;
  ty_tasks_stats last; /* counts already added to the counters */
};

static void advance(ty_metric *m, const char *const *labels, uint64_t now, uint64_t *last) {
  /* Adding 0 still creates the series, so every result shows from the start. */
  ty_metric_inc(m, labels, now > *last ? (double)(now - *last) : 0.0);
  *last = now;
}

static void collect(ty_metrics *m, void *ud) {
  (void)m;
  ty__worker_stats *s = ud;
  static const char *const cpu_total[] = {"cpu", "total"}, *const cpu_used[] = {"cpu", "used"};
  static const char *const gpu_total[] = {"gpu", "total"}, *const gpu_used[] = {"gpu", "used"};
  ty_metric_set(s->slots, cpu_total, s->inv->cpus);
  ty_metric_set(s->slots, cpu_used, ty_tasks_cpus_used(s->tasks));
  ty_metric_set(s->slots, gpu_total, s->inv->n_gpus);
  ty_metric_set(s->slots, gpu_used, ty_tasks_gpus_used(s->tasks));
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
  ty_metric_set(s->log_bytes, NULL, (double)ty_tasks_log_disk_bytes(s->tasks));
}

ty__worker_stats *ty__worker_stats_create(ty_metrics *m, ty_tasks *tasks,
                                          const ty_worker_inventory *inv) {
  ty__worker_stats *s = ty_xcalloc(1, sizeof *s);
  s->tasks = tasks;
  s->inv = inv;
  s->slots = ty_metrics_gauge(m, "trainyard_worker_slots",
                              "CPU and GPU slots of this node, total and used by tasks",
                              "kind,state");
  s->memory = ty_metrics_gauge(m, "trainyard_worker_memory_bytes",
                               "Memory of this node in bytes", NULL);
  s->running = ty_metrics_gauge(m, "trainyard_worker_tasks_running",
                                "Tasks running on this node", NULL);
  s->started = ty_metrics_counter(m, "trainyard_worker_tasks_started_total",
                                  "Task processes spawned", NULL);
  s->launch_failures = ty_metrics_counter(m, "trainyard_worker_launch_failures_total",
                                          "LaunchTask requests refused (bad cwd, argv[0], ...)",
                                          NULL);
  s->exits = ty_metrics_counter(m, "trainyard_worker_task_exits_total",
                                "Tasks ended, by result", "result");
  s->log_bytes = ty_metrics_gauge(m, "trainyard_worker_log_bytes",
                                  "Disk bytes used by task logs and job files on this node", NULL);
  s->log_cut = ty_metrics_counter(m, "trainyard_worker_log_cut_bytes_total",
                                  "Output bytes cut from task logs over --log-max-size", NULL);
  s->log_removed = ty_metrics_counter(m, "trainyard_worker_log_dirs_removed_total",
                                      "Job directories removed --log-retention after the job ended",
                                      NULL);
  ty_metrics_add_process(m);
  ty_metrics_on_collect(m, collect, s);
  /* Series exist from the first scrape on, even before any task ran. */
  collect(m, s);
  return s;
}

void ty__worker_stats_destroy(ty__worker_stats *s) { free(s); }
