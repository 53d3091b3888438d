/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Partitions and fencing across virtual hosts (issue 19; netns.h): links
 * cut at the bridge with `ip link set down`, then healed.
 *
 *   - A worker cut off from the controller kills its own tasks once its
 *     lease (two thirds of the node timeout) runs out, before the
 *     controller declares the node DOWN and requeues the job elsewhere: no
 *     job runs in two places at once. After the heal the node registers
 *     again and the job's record stays as it ended.
 *   - A cut shorter than the lease loses nothing: the job runs on, never
 *     requeued, nothing fenced.
 *   - A heal after the lease but before the node timeout: the node stays
 *     UP, its task was fenced, and the fenced report requeues the job
 *     instead of failing it.
 *   - A controller cut off from every worker keeps its state: ended jobs
 *     stay as they were, running ones are fenced by their workers, then
 *     requeued and run again once the workers are back.
 *   - Delay and loss on every link (tc netem) slow jobs without failing
 *     them (skipped where the kernel has no netem).
 *
 * Each timeline is asserted from the job's history (its events) and a trace
 * its tasks write: "HOST PID MS" every 100 ms. The clocks are one machine's,
 * and the assertions order events, never measure them.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/integration/harness.h"

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x
#define NODE_TIMEOUT_MS 4500 /* the workers' lease is then 3000 ms */

/* A failed assertion ends the test without atexit handlers: its hosts go here. */
TestSuite(partition, .fini = it_net_destroy_all);

static const it_options partition_opts = {.node_timeout_ms = NODE_TIMEOUT_MS};

/* A job writing "HOST PID MS" to DIR/trace.JOB every 100 ms: `first`
 * times in its first run, `again` times in a rerun (a first run cut off
 * unfenced would still be writing when the rerun starts). */
static uint64_t submit_traced(const it_cluster *c, ty_rpc_client *cl, int first, int again) {
  char script[800];
  snprintf(script, sizeof script,
           "t=%s/trace.$TRAINYARD_JOB_ID; n=%d; if [ -e $t ]; then n=%d; fi; "
           "for i in $(seq $n); do echo \"$(hostname) $$ $(date +%%s%%3N)\" >> $t; sleep 0.1; done",
           c->dir, first, again);
  uint64_t id = 0;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(it_submit_sh(cl, script, "traced", &id, err, sizeof err), 0, "%s", err);
  return id;
}

typedef struct trace_line {
  char host[32];
  long pid;
  long long ms;
} trace_line;

/* The trace of job id (at most `cap` lines); returns the count. */
static size_t read_trace(const it_cluster *c, uint64_t id, trace_line *out, size_t cap) {
  char path[400];
  snprintf(path, sizeof path, "%s/trace.%llu", c->dir, (unsigned long long)id);
  FILE *f = fopen(path, "r");
  size_t n = 0;
  while (f && n < cap && fscanf(f, "%31s %ld %lld", out[n].host, &out[n].pid, &out[n].ms) == 3)
    n++;
  if (f) fclose(f);
  return n;
}

static void wait_traced(const it_cluster *c, uint64_t id) {
  trace_line l[1];
  for (int i = 0; i < 1500 && read_trace(c, id, l, 1) == 0; i++)
    it_sleep_ms(20);
  cr_assert_eq(read_trace(c, id, l, 1), 1u, "job %llu never started (logs in %s)",
               (unsigned long long)id, c->dir);
}

/* The worker (index) a running job is on. */
static size_t running_on(const it_cluster *c, ty_rpc_client *cl, uint64_t id) {
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, ST(RUNNING), 30000);
  cr_assert(r && r->job->n_nodes == 1, "job %llu never ran", (unsigned long long)id);
  size_t w = 0;
  while (w < c->n_workers && strcmp(c->name[w], r->job->nodes[0]) != 0)
    w++;
  cr_assert_lt(w, c->n_workers, "job ran on unknown node %s", r->job->nodes[0]);
  trainyard__get_job_response__free_unpacked(r, NULL);
  return w;
}

/* The time of the first event into `state` at or after `from` (-1: none). */
static long long event_time(const Trainyard__GetJobResponse *r, int state, long long from) {
  for (size_t i = 0; i < r->n_events; i++)
    if ((int)r->events[i]->to_state == state && r->events[i]->time_ms >= from)
      return r->events[i]->time_ms;
  return -1;
}

/* A job that was requeued once after a node failure and completed: the
 * first run's lines all precede the NODE_FAIL, and after the rerun started
 * only the rerun writes. Returns the first run's host in first_host. */
static void expect_fenced_then_rerun(const it_cluster *c, ty_rpc_client *cl, uint64_t id,
                                     char *first_host) {
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, ST(COMPLETED), 90000);
  cr_assert(r, "job %llu did not complete after the requeue (logs in %s)", (unsigned long long)id,
            c->dir);
  cr_assert_geq(r->job->requeue_count, 1u);
  long long ran = event_time(r, ST(RUNNING), 0), failed = event_time(r, ST(NODE_FAIL), ran);
  long long pending = event_time(r, ST(PENDING), failed),
            rerun = event_time(r, ST(RUNNING), failed);
  cr_assert(ran > 0 && failed >= ran && pending >= failed && rerun >= pending,
            "history is not RUNNING, NODE_FAIL, PENDING, RUNNING: %lld %lld %lld %lld", ran, failed,
            pending, rerun);
  trainyard__get_job_response__free_unpacked(r, NULL);
  static trace_line t[4096];
  size_t n = read_trace(c, id, t, 4096);
  cr_assert_gt(n, 1u);
  long first_pid = t[0].pid;
  snprintf(first_host, 32, "%s", t[0].host);
  long rerun_pid = 0;
  for (size_t i = 0; i < n; i++) {
    if (t[i].pid == first_pid && !strcmp(t[i].host, first_host)) {
      cr_assert_lt(t[i].ms, failed,
                   "the first run (%s pid %ld) still wrote at %lld, after the "
                   "NODE_FAIL at %lld: it was not fenced in time",
                   first_host, first_pid, t[i].ms, failed);
      continue;
    }
    cr_assert_geq(t[i].ms, rerun, "%s pid %ld wrote at %lld, before the rerun started at %lld",
                  t[i].host, t[i].pid, t[i].ms, rerun);
    cr_assert(!rerun_pid || rerun_pid == t[i].pid, "two reruns wrote the trace");
    rerun_pid = t[i].pid;
  }
  cr_assert(rerun_pid, "the rerun wrote no trace");
}

/* A cluster on hosts "ctl", "w1" and "w2" and a traced job running on
 * *out_victim (its first line written); the client is *out_cl. */
static uint64_t start_traced(it_cluster *c, it_net *net, ty_rpc_client **out_cl, int first,
                             int again, size_t *out_victim) {
  it_cluster_start_hosts(c, net, 2, 1, &partition_opts);
  *out_cl = it_client(c);
  uint64_t id = submit_traced(c, *out_cl, first, again);
  *out_victim = running_on(c, *out_cl, id);
  wait_traced(c, id);
  return id;
}

static void stop(it_cluster *c, it_net *net, ty_rpc_client *cl) {
  ty_rpc_client_close(cl);
  it_cluster_stop(c);
  it_net_destroy(net);
}

/* trainyard_worker_fenced_tasks_total of worker w. */
static long fenced(const it_cluster *c, size_t w) {
  char *body = it_http_get_metrics_at(it_worker_host(c, w), c->worker_metrics_port[w]);
  const char *p = strstr(body, "\ntrainyard_worker_fenced_tasks_total ");
  cr_assert(p, "no trainyard_worker_fenced_tasks_total on %s", c->name[w]);
  long v = strtol(p + strlen("\ntrainyard_worker_fenced_tasks_total "), NULL, 10);
  free(body);
  return v;
}

static bool log_says(const it_cluster *c, const char *name, const char *text) {
  char path[400], buf[65536];
  snprintf(path, sizeof path, "%s/%s.stderr", c->dir, name);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = '\0';
  return strstr(buf, text) != NULL;
}

/* The node's own history: registered, DOWN for silence, registered again
 * (the last event is durable a moment after the node is UP). */
static void expect_down_and_back(const it_cluster *c, const char *node) {
  char *out = NULL;
  const char *show[] = {"node", "show", node, "--json", NULL};
  bool seen = false;
  for (int64_t end = ty_mono_ms() + 30000; !seen && ty_mono_ms() < end;) {
    if (out) it_sleep_ms(20);
    free(out);
    cr_assert_eq(it_trainctl(c, &out, show), 0);
    const char *reg = strstr(out, "\"action\":\"register\"");
    const char *down = reg ? strstr(reg, "\"action\":\"down\"") : NULL;
    seen = down && strstr(down, "\"action\":\"register\"");
  }
  cr_assert(seen, "node events are not register, down, register: %s", out);
  free(out);
}

Test(partition, cut_worker_fences_its_task_before_the_requeue, .timeout = 180) {
  it_cluster c;
  it_net net;
  ty_rpc_client *cl;
  size_t victim;
  uint64_t id = start_traced(&c, &net, &cl, 200, 10, &victim);
  cr_assert(log_says(&c, "w1", "lease 3000 ms"), "w1 did not take 2/3 of the node timeout");
  it_net_link(&net, victim + 1, false);
  char first[32];
  expect_fenced_then_rerun(&c, cl, id, first);
  cr_assert_str_eq(first, c.name[victim]);
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  cr_assert_str_neq(r->job->nodes[0], c.name[victim], "the rerun went to the cut-off node");
  trainyard__get_job_response__free_unpacked(r, NULL);
  /* Heal: the node comes back, its late report changes nothing. */
  it_net_link(&net, victim + 1, true);
  cr_assert(it_wait_nodes(cl, 2, TRAINYARD__NODE_STATE__NODE_UP, 30000),
            "the healed node did not come back (logs in %s)", c.dir);
  cr_assert(log_says(&c, c.name[victim], "fenced: node"), "no fencing in %s's log", c.name[victim]);
  expect_down_and_back(&c, c.name[victim]);
  cr_assert_eq(fenced(&c, victim), 1);
  cr_assert_eq(fenced(&c, 1 - victim), 0);
  r = it_wait_job(cl, id, ST(COMPLETED), 1000);
  cr_assert(r, "job %llu is no longer COMPLETED after the heal", (unsigned long long)id);
  trainyard__get_job_response__free_unpacked(r, NULL);
  stop(&c, &net, cl);
}

Test(partition, heal_before_the_lease_loses_nothing, .timeout = 120) {
  it_cluster c;
  it_net net;
  ty_rpc_client *cl;
  size_t victim;
  uint64_t id = start_traced(&c, &net, &cl, 30, 30, &victim);
  it_net_link(&net, victim + 1, false);
  it_sleep_ms(500); /* a sixth of the lease */
  it_net_link(&net, victim + 1, true);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 60000);
  cr_assert(r && (int)r->job->state == ST(COMPLETED), "job ended %d (logs in %s)",
            r ? (int)r->job->state : -1, c.dir);
  cr_assert_eq(r->job->requeue_count, 0u);
  cr_assert_eq(event_time(r, ST(NODE_FAIL), 0), -1, "a NODE_FAIL for a short cut");
  trainyard__get_job_response__free_unpacked(r, NULL);
  static trace_line t[1024];
  size_t n = read_trace(&c, id, t, 1024);
  cr_assert_eq(n, 30u, "the one run wrote %zu of its 30 lines", n);
  for (size_t i = 1; i < n; i++)
    cr_assert(t[i].pid == t[0].pid && !strcmp(t[i].host, t[0].host), "a second run wrote");
  cr_assert_eq(fenced(&c, victim), 0);
  cr_assert_eq(it_count_nodes_in_state(cl, TRAINYARD__NODE_STATE__NODE_UP), 2u);
  stop(&c, &net, cl);
}

/* A heal after the lease but before the node timeout: the worker killed the
 * task, the controller never lost the node. The fenced report requeues the
 * job (the node failed it), where the SIGKILL alone would have failed it. */
Test(partition, heal_after_the_lease_requeues_the_fenced_job, .timeout = 120) {
  /* A long node timeout: after the heal, TCP retransmits what the cut held
   * back on its backoff (0.2 s doubling), up to ~6 s after the cut. */
  static const char *const short_lease[] = {"--lease-ms", "1000", NULL};
  it_cluster c;
  it_net net;
  it_cluster_start_hosts(&c, &net, 2, 1,
                         &(it_options){.node_timeout_ms = 12000, .worker_args = short_lease});
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = submit_traced(&c, cl, 200, 10);
  size_t victim = running_on(&c, cl, id);
  wait_traced(&c, id);
  it_net_link(&net, victim + 1, false);
  /* Up to 30 s (its metrics are behind the cut): the lease runs out after
   * 1 s, but a loaded machine may take seconds more to fence and log it. */
  for (int64_t end = ty_mono_ms() + 30000;
       ty_mono_ms() < end && !log_says(&c, c.name[victim], "fenced: node");)
    it_sleep_ms(20);
  cr_assert(log_says(&c, c.name[victim], "fenced: node"), "%s did not fence (logs in %s)",
            c.name[victim], c.dir);
  it_net_link(&net, victim + 1, true);
  char first[32];
  expect_fenced_then_rerun(&c, cl, id, first);
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  bool said = false;
  for (size_t i = 0; i < r->n_events; i++)
    if ((int)r->events[i]->to_state == ST(NODE_FAIL) &&
        strstr(r->events[i]->reason, "fenced its tasks"))
      said = true;
  cr_assert(said, "no NODE_FAIL event for the fenced task");
  trainyard__get_job_response__free_unpacked(r, NULL);
  char *out = NULL;
  const char *show[] = {"node", "show", c.name[victim], "--json", NULL};
  cr_assert_eq(it_trainctl(&c, &out, show), 0);
  cr_assert(!strstr(out, "\"action\":\"down\""), "the node went DOWN: %s", out);
  free(out);
  stop(&c, &net, cl);
}

Test(partition, controller_cut_from_all_workers_keeps_its_state, .timeout = 240) {
  it_cluster c;
  it_net net;
  it_cluster_start_hosts(&c, &net, 2, 1, &partition_opts);
  ty_rpc_client *cl = it_client(&c);
  uint64_t done = 0;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(it_submit_sh(cl, "true", "before", &done, err, sizeof err), 0, "%s", err);
  Trainyard__GetJobResponse *before = it_wait_job(cl, done, ST(COMPLETED), 30000);
  cr_assert(before, "the first job did not complete");
  trainyard__get_job_response__free_unpacked(before, NULL);
  uint64_t id = submit_traced(&c, cl, 200, 10);
  size_t w = running_on(&c, cl, id);
  wait_traced(&c, id);
  before = it_get_job(cl, done); /* its history as it stands when the cut comes */
  cr_assert(before);
  ty_rpc_client_close(cl);
  it_net_link(&net, 0, false);
  /* The task's worker fences it after its lease; the controller, alone,
   * declares both nodes DOWN after its node timeout. */
  int waited = 0;
  for (; waited < 20000 && fenced(&c, w) == 0; waited += 100)
    it_sleep_ms(100);
  cr_assert_eq(fenced(&c, w), 1, "%s did not fence its task (logs in %s)", c.name[w], c.dir);
  if (waited < NODE_TIMEOUT_MS + 1500) /* past the node timeout since the cut */
    it_sleep_ms(NODE_TIMEOUT_MS + 1500 - waited);
  it_net_link(&net, 0, true);
  int st;
  cr_assert_eq(waitpid(c.traind, &st, WNOHANG), 0, "traind exited while cut off");
  cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 2, TRAINYARD__NODE_STATE__NODE_UP, 30000),
            "the workers did not come back (logs in %s)", c.dir);
  Trainyard__GetJobResponse *after = it_get_job(cl, done);
  cr_assert(after && (int)after->job->state == ST(COMPLETED));
  cr_assert_eq(after->n_events, before->n_events,
               "the ended job's history changed: %zu events, then %zu", before->n_events,
               after->n_events);
  for (size_t i = 0; i < after->n_events; i++)
    cr_assert(after->events[i]->to_state == before->events[i]->to_state &&
                  after->events[i]->time_ms == before->events[i]->time_ms,
              "the ended job's event %zu changed", i);
  trainyard__get_job_response__free_unpacked(after, NULL);
  trainyard__get_job_response__free_unpacked(before, NULL);
  char first[32];
  expect_fenced_then_rerun(&c, cl, id, first);
  stop(&c, &net, cl);
}

Test(partition, netem_delay_and_loss_slow_but_do_not_fail_jobs, .timeout = 180) {
  it_net_require();
  if (!it_net_has_netem())
    cr_skip_test("tc qdisc netem is not available on this kernel (no sch_netem module)");
  it_cluster c;
  it_net net;
  it_cluster_start_hosts(&c, &net, 2, 1, &partition_opts);
  for (size_t h = 0; h < net.n_hosts; h++)
    cr_assert(it_net_netem(&net, h, "delay 10ms 2ms loss 1%"));
  ty_rpc_client *cl = it_client(&c);
  uint64_t a = submit_traced(&c, cl, 20, 20), b = submit_traced(&c, cl, 20, 20);
  for (int k = 0; k < 2; k++) {
    Trainyard__GetJobResponse *r = it_wait_job(cl, k ? b : a, 0, 90000);
    cr_assert(r && (int)r->job->state == ST(COMPLETED), "job ended %d under netem (logs in %s)",
              r ? (int)r->job->state : -1, c.dir);
    cr_assert_eq(r->job->requeue_count, 0u);
    trainyard__get_job_response__free_unpacked(r, NULL);
  }
  cr_assert_eq(fenced(&c, 0) + fenced(&c, 1), 0);
  stop(&c, &net, cl);
}

/* --lease-ms is checked where it is parsed (no root needed). */
Test(partition, bad_lease_flag_is_refused_naming_it) {
  const char *bin = getenv("TY_TRAINWORKERD");
  cr_assert(bin && *bin);
  const char *bad[] = {"50", "x", "-1", "2000000"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char cmd[600], out[4096] = "";
    snprintf(cmd, sizeof cmd, "%s --lease-ms %s 2>&1", bin, bad[i]);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_assert_eq(WEXITSTATUS(st), 2, "--lease-ms %s: exit %d", bad[i], WEXITSTATUS(st));
    cr_assert(strstr(out, "--lease-ms: \"") && strstr(out, "is not 0 or a count of milliseconds"),
              "--lease-ms %s: %s", bad[i], out);
  }
}
