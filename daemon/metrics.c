/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's Prometheus metrics (docs/metrics.md lists them all).
 *
 * Three kinds of series live here:
 *   - Event counters and histograms, advanced where the event happens: RPCs
 *     (reply.c), refusals (auth.c), submits (submit.c), preemptions and backfills
 *     (sched_pass.c), and every job transition (ty__metrics_job_transition:
 *     queue wait, run time, ends by state). Those with a known set of labels
 *     are created at 0 on collect (touch_event_series).
 *   - Gauges that mirror state, cleared and refilled from the in-memory
 *     tables just before each scrape (collect): jobs by state, pending jobs
 *     by the scheduler's wait code, nodes by state and their heartbeat age,
 *     fair share, fragmentation of the free GPUs now (not after the last
 *     pass: with nothing pending no pass runs, and a value kept from the
 *     last one went stale).
 *   - Per running graph job: step, loss, samples/s, checkpoint step and test
 *     accuracy, labelled by job id (`job_id`: a scrape's own `job` label
 *     would shadow a `job` label) and name. They are refilled on collect
 *     from the running jobs only, so a job's series disappear with the job
 *     and their number is bounded by the running jobs.
 *
 * Workload: a scrape every 15 s or so; a collect walks the job table once
 * (thousands of jobs) and builds one fair-share input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

/* Queue waits and run times span seconds to days. */
static const double wait_bounds[] = {1,    5,    15,    60,    300,   900,   1800,
                                     3600, 7200, 14400, 28800, 43200, 86400, 259200};
static const double run_bounds[] = {1,    10,    60,    300,   900,   1800,   3600,
                                    7200, 14400, 28800, 43200, 86400, 259200, 604800};

/* ---- gauges rebuilt on collect -------------------------------------------------------- */

static size_t queue_index(const ty_controller *ctl, const char *name) {
  for (size_t q = 0; q < ctl->n_queues; q++)
    if (strcmp(ctl->queues[q].name, name) == 0) return q;
  return SIZE_MAX;
}

/* Jobs by (state, queue) and pending jobs by (queue, wait code), of the
 * live set: finished jobs are in the store, and their counts would grow
 * with history (the accounting is `trainctl history`). A pending job no
 * pass has looked at yet counts under "New". */
static void collect_jobs(ty_controller *ctl) {
  enum { NS = TY_JOB_STATE_MAX + 1, NW = TY_SCHED_WAIT_COUNT_ + 1 };
  size_t nq = ctl->n_queues ? ctl->n_queues : 1;
  uint32_t *counts = ty_xcalloc(nq * NS, sizeof(*counts));
  uint32_t *waits = ty_xcalloc(nq * NW, sizeof(*waits));
  ctl->stats.tick_jobs += ctl->n_jobs;
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    const ty_job *j = ctl->jobs[i];
    size_t q = queue_index(ctl, j->spec.queue);
    if (q == SIZE_MAX || j->state < 1 || j->state > TY_JOB_STATE_MAX) continue;
    counts[q * NS + (size_t)j->state]++;
    if (j->state == TY_JOB_PENDING) waits[q * NW + (j->has_wait ? (size_t)j->wait + 1 : 0)]++;
  }
  ty_metric_clear(ctl->m.jobs);
  ty_metric_clear(ctl->m.pending);
  for (size_t q = 0; q < ctl->n_queues; q++) {
    if (ctl->queues[q].state == TY_QUEUE_DELETED) continue; /* it holds no job: no series */
    for (int s = 1; s <= TY_JOB_STATE_MAX; s++) {
      const char *labels[] = {ty_job_state_name(s), ctl->queues[q].name};
      ty_metric_set(ctl->m.jobs, labels, counts[q * NS + (size_t)s]);
    }
    for (size_t w = 0; w < NW; w++) {
      const char *labels[] = {ctl->queues[q].name,
                              w ? ty_sched_wait_name((ty_sched_wait)(w - 1)) : "New"};
      ty_metric_set(ctl->m.pending, labels, waits[q * NW + w]);
    }
  }
  free(counts);
  free(waits);
}

static void collect_nodes(ty_controller *ctl) {
  uint32_t nc[TY_NODE_STATE_MAX + 1] = {0};
  int64_t now_ms = ty_now_ms(), now_mono = ty_mono_ms();
  ty_metric_clear(ctl->m.nodes);
  ty_metric_clear(ctl->m.heartbeat_age);
  for (size_t i = 0; i < ctl->n_nodes; i++) {
    const ty_cluster_node *n = ctl->nodes[i];
    if (n->state >= 1 && n->state <= TY_NODE_STATE_MAX) nc[n->state]++;
    const char *labels[] = {n->name};
    ty_metric_set(ctl->m.heartbeat_age, labels, ty__node_heartbeat_age_s(n, now_ms, now_mono));
  }
  for (int s = 1; s <= TY_NODE_STATE_MAX; s++) {
    const char *labels[] = {ty_node_state_name(s)};
    ty_metric_set(ctl->m.nodes, labels, nc[s]);
  }
  ty_metric_set(ctl->m.frag, NULL, ty__sched_fragmentation(ctl));
}

/* The scheduler's own share rows (what `trainctl share` prints). */
static void collect_shares(ty_controller *ctl) {
  ty_sched_share *rows = NULL;
  size_t n = 0;
  ty_metric_clear(ctl->m.fs_share);
  ty_metric_clear(ctl->m.fs_usage);
  ty_metric_clear(ctl->m.fs_user_usage);
  ty_metric_clear(ctl->m.fs_user_factor);
  if (ty__sched_usage_shares(ctl, &rows, &n) != 0) {
    ty_warn("metrics: fair share not collected: out of memory");
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const ty_sched_share *r = &rows[i];
    if (!r->user) {
      const char *labels[] = {r->queue};
      ty_metric_set(ctl->m.fs_share, labels, r->share);
      ty_metric_set(ctl->m.fs_usage, labels, r->usage_norm);
      continue;
    }
    const char *labels[] = {r->queue, r->user};
    ty_metric_set(ctl->m.fs_user_usage, labels, r->usage);
    ty_metric_set(ctl->m.fs_user_factor, labels, r->factor);
  }
  free(rows);
}

/* Training progress of the running graph jobs (rank 0's last report). */
static void collect_training(ty_controller *ctl) {
  ty_metric *const fams[] = {ctl->m.train_step, ctl->m.train_loss, ctl->m.train_rate,
                             ctl->m.train_ckpt, ctl->m.train_accuracy};
  for (size_t f = 0; f < TY_ARRAY_LEN(fams); f++)
    ty_metric_clear(fams[f]);
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    const ty_job *j = ctl->jobs[i];
    if (j->state != TY_JOB_RUNNING || j->spec.kind != TY_JOB_KIND_GRAPH) continue;
    const ty_train_progress *p = ty__graph_progress(ctl, j->id);
    if (!p) continue;
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)j->id);
    const char *labels[] = {id, j->spec.name ? j->spec.name : ""};
    ty_metric_set(ctl->m.train_step, labels, (double)p->step);
    ty_metric_set(ctl->m.train_loss, labels, p->loss);
    ty_metric_set(ctl->m.train_rate, labels, p->samples_per_s);
    ty_metric_set(ctl->m.train_ckpt, labels, (double)p->checkpoint_step);
    if (p->test_accuracy >= 0) ty_metric_set(ctl->m.train_accuracy, labels, p->test_accuracy);
  }
}

/* Event counters and histograms exist from 0 before their first event, so
 * increase() and rate() see that event: job ends and run times per queue
 * and end state, queue waits per queue (for queues created later too: on
 * every collect), model check outcomes and plan cache results. */
static void touch_event_series(ty_controller *ctl) {
  static const char *const checks[] = {"ok", "refused", "error"}, *const lookups[] = {"hit",
                                                                                      "miss"};
  for (size_t i = 0; i < TY_ARRAY_LEN(checks); i++)
    ty_metric_touch(ctl->m.checks, &checks[i]);
  for (size_t i = 0; i < TY_ARRAY_LEN(lookups); i++)
    ty_metric_touch(ctl->m.plan_cache, &lookups[i]);
  for (size_t q = 0; q < ctl->n_queues; q++) {
    if (ctl->queues[q].state == TY_QUEUE_DELETED) continue;
    const char *queue[] = {ctl->queues[q].name};
    ty_metric_touch(ctl->m.queue_wait, queue);
    for (int s = 1; s <= TY_JOB_STATE_MAX; s++) {
      if (!ty_job_state_terminal(s)) continue;
      const char *labels[] = {queue[0], ty_job_state_name(s)};
      ty_metric_touch(ctl->m.ends, labels);
      ty_metric_touch(ctl->m.run_time, labels);
    }
    const char *requeued[] = {queue[0], "REQUEUED"};
    ty_metric_touch(ctl->m.ends, requeued);
    ty_metric_touch(ctl->m.run_time, requeued);
  }
}

void ty__metrics_refresh(ty_controller *ctl) {
  touch_event_series(ctl);
  collect_jobs(ctl);
  ty_metric_set(ctl->m.cache_jobs, NULL, (double)ctl->done.count);
  ty_metric_set(ctl->m.cache_bytes, NULL, (double)ty__cache_bytes(ctl));
  collect_nodes(ctl);
  collect_shares(ctl);
  collect_training(ctl);
}

static void on_collect(ty_metrics *m, void *ud) {
  (void)m;
  ty__metrics_refresh(ud);
}

void ty__metrics_on_batch(size_t commits, size_t txns, void *ud) {
  ty_controller *ctl = ud;
  (void)txns;
  ty_metric_inc(ctl->m.commits, NULL, (double)commits);
}

/* ---- events ------------------------------------------------------------------------------- */

/* The state a run ended in, as the run metrics label it: a running job
 * sent back to the queue (job requeue, a failed rank's requeue) ended its run
 * REQUEUED, sacct's name, not PENDING; NULL when no run ended. */
static const char *run_end_state(int from, int to) {
  if (from == TY_JOB_RUNNING && to == TY_JOB_PENDING) return "REQUEUED";
  if (to != from && (ty_job_state_terminal(to) || to == TY_JOB_NODE_FAIL || to == TY_JOB_PREEMPTED))
    return ty_job_state_name(to);
  return NULL;
}

void ty__metrics_job_transition(ty_controller *ctl, ty_job *j, int from, int to, int64_t now_ms) {
  const char *queue[] = {j->spec.queue ? j->spec.queue : ""};
  const char *end = run_end_state(from, to);
  if (to == TY_JOB_PENDING) {
    j->pending_ms = now_ms;
    j->has_wait = false;
  }
  if (from == TY_JOB_PENDING && to == TY_JOB_RUNNING) {
    int64_t since = j->pending_ms ? j->pending_ms : j->submit_ms;
    ty_metric_observe(ctl->m.queue_wait, queue, (double)(now_ms - since) / 1000.0);
  }
  const char *labels[] = {queue[0], end};
  if (from == TY_JOB_RUNNING && end && j->start_ms)
    ty_metric_observe(ctl->m.run_time, labels, (double)(now_ms - j->start_ms) / 1000.0);
  if (end) ty_metric_inc(ctl->m.ends, labels, 1);
}

/* ---- registration --------------------------------------------------------------------------- */

static void register_jobs(ty_controller *ctl, ty_metrics *m) {
  ctl->m.jobs = ty_metrics_gauge(m, "trainyard_jobs",
                                 "Jobs in memory (not yet ended, or ended and not yet swept) by "
                                 "state and queue.",
                                 "state,queue");
  ctl->m.cache_jobs = ty_metrics_gauge(
      m, "trainyard_job_cache_jobs",
      "Ended jobs kept in memory for show and history (--job-cache, --min-job-age).", NULL);
  ctl->m.cache_bytes =
      ty_metrics_gauge(m, "trainyard_job_cache_bytes",
                       "Bytes the ended jobs kept in memory hold (stored specs, plans).", NULL);
  ctl->m.pending =
      ty_metrics_gauge(m, "trainyard_jobs_pending",
                       "Pending jobs by queue and the scheduler's wait reason.", "queue,reason");
  ctl->m.submitted = ty_metrics_counter(m, "trainyard_jobs_submitted_total",
                                        "Jobs accepted (committed) since start.", NULL);
  ctl->m.test_only = ty_metrics_counter(m, "trainyard_jobs_test_only_total",
                                        "Submits answered with a start estimate and not created "
                                        "(sbatch --test-only) since start.",
                                        NULL);
  ctl->m.ends = ty_metrics_counter(m, "trainyard_job_ends_total",
                                   "Runs ended, by queue and the state they ended in "
                                   "(COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, "
                                   "PREEMPTED, NODE_FAIL, REQUEUED).",
                                   "queue,state");
  ctl->m.queue_wait = ty_metrics_histogram(m, "trainyard_job_queue_wait_seconds",
                                           "Time from submit (or requeue) to start, by queue.",
                                           "queue", wait_bounds, TY_ARRAY_LEN(wait_bounds));
  ctl->m.run_time = ty_metrics_histogram(m, "trainyard_job_run_seconds",
                                         "Run time of ended runs, by queue and end state.",
                                         "queue,state", run_bounds, TY_ARRAY_LEN(run_bounds));
}

static void register_cluster(ty_controller *ctl, ty_metrics *m) {
  static const double pass_bounds[] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1};
  ctl->m.nodes = ty_metrics_gauge(m, "trainyard_nodes", "Nodes by state.", "state");
  ctl->m.heartbeat_age = ty_metrics_gauge(m, "trainyard_node_heartbeat_age_seconds",
                                          "Seconds since the node's last heartbeat.", "node");
  ctl->m.sched_seconds = ty_metrics_histogram(m, "trainyard_scheduler_pass_duration_seconds",
                                              "Duration of one scheduling pass.", NULL, pass_bounds,
                                              TY_ARRAY_LEN(pass_bounds));
  ctl->m.frag =
      ty_metrics_gauge(m, "trainyard_scheduler_fragmentation_ratio",
                       "Share of free GPUs (CPUs without GPUs) on partly used nodes, now.", NULL);
  ctl->m.preemptions = ty_metrics_counter(m, "trainyard_scheduler_preemptions_total",
                                          "Running jobs preempted for higher tiers.", NULL);
  ctl->m.backfilled =
      ty_metrics_counter(m, "trainyard_scheduler_backfilled_total",
                         "Jobs started ahead of the reserved job (backfill).", NULL);
  ctl->m.fs_share =
      ty_metrics_gauge(m, "trainyard_fairshare_share_ratio",
                       "A queue's normalised fair share (all queues sum to 1).", "queue");
  ctl->m.fs_usage = ty_metrics_gauge(m, "trainyard_fairshare_usage_ratio",
                                     "A queue's part of all decayed usage.", "queue");
  ctl->m.fs_user_usage = ty_metrics_gauge(m, "trainyard_fairshare_user_usage_seconds",
                                          "Decayed usage of a user in a queue (GPU-seconds plus "
                                          "weighted CPU-seconds).",
                                          "queue,user");
  ctl->m.fs_user_factor = ty_metrics_gauge(m, "trainyard_fairshare_user_factor",
                                           "Fair-share priority factor of a user in a queue "
                                           "(1 unused, towards 0 over its share).",
                                           "queue,user");
}

static void register_training(ty_controller *ctl, ty_metrics *m) {
  ctl->m.train_step = ty_metrics_gauge(m, "trainyard_train_step",
                                       "Last step a running graph job reported.", "job_id,name");
  ctl->m.train_loss = ty_metrics_gauge(m, "trainyard_train_loss",
                                       "Last training loss of a running graph job.", "job_id,name");
  ctl->m.train_rate =
      ty_metrics_gauge(m, "trainyard_train_samples_per_second",
                       "Training throughput of a running graph job.", "job_id,name");
  ctl->m.train_ckpt =
      ty_metrics_gauge(m, "trainyard_train_checkpoint_step",
                       "Step of a running graph job's last checkpoint.", "job_id,name");
  ctl->m.train_accuracy =
      ty_metrics_gauge(m, "trainyard_train_test_accuracy_ratio",
                       "Last test accuracy of a running graph job (0..1).", "job_id,name");
}

void ty__metrics_init(ty_controller *ctl) {
  static const double rpc_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05,   0.1,   0.25,   0.5,   1,    2.5};
  ty_metrics *m = ctl->metrics;
  register_jobs(ctl, m);
  ctl->m.rpc_total =
      ty_metrics_counter(m, "trainyard_rpc_requests_total",
                         "RPC requests answered, by method and status.", "method,status");
  ctl->m.rpc_seconds = ty_metrics_histogram(m, "trainyard_rpc_duration_seconds",
                                            "Time from request to answer, commit included.",
                                            "method", rpc_bounds, TY_ARRAY_LEN(rpc_bounds));
  ctl->m.refusals = ty_metrics_counter(m, "trainyard_rpc_refusals_total",
                                       "Requests refused for authentication or authorisation, "
                                       "by method and reason.",
                                       "method,reason");
  ctl->m.commits = ty_metrics_counter(m, "trainyard_store_commits_total",
                                      "SQLite transactions committed (group commits).", NULL);
  register_cluster(ctl, m);
  ctl->m.checks = ty_metrics_counter(m, "trainyard_model_checks_total",
                                     "Graph jobs checked in a child process, by outcome "
                                     "(ok, refused, error).",
                                     "result");
  ctl->m.plan_cache = ty_metrics_counter(m, "trainyard_plan_cache_lookups_total",
                                         "Plan cache lookups, by result (hit, miss).", "result");
  register_training(ctl, m);
  ty_metrics_add_process(m);
  ty_metrics_add_build_info(m);
  ty_metrics_on_collect(m, on_collect, ctl);
}
