/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scheduler integration tests through a real traind (started with a
 * --config file) and real trainworkerd processes: preemption (the task sees
 * SIGTERM, the job is requeued and runs again, also when the controller
 * restarts during the grace), node drain and resume, hold
 * and release, the time limit's warning signal, queue administration
 * with its errors, start estimates (why) and training commands on a
 * command job. Placement (exclusive nodes, -w and -x) is in
 * test_sched_placement.c, reloading the config in test_reconfigure.c, the
 * shared helpers in sched_helpers.c; one test binary. They check states, files the tasks write and
 * the CLI's exit codes, never wall-clock time; the bounds only keep a broken build from hanging.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "lib/wire/wire.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"
#include "tests/integration/sched_helpers.h"

#define NODE(x) TRAINYARD__NODE_STATE__NODE_##x

static bool has_event(ty_rpc_client *cl, uint64_t id, int to, const char *reason_part) {
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  bool found = false;
  for (size_t i = 0; r && i < r->n_events; i++)
    if ((int)r->events[i]->to_state == to && strstr(r->events[i]->reason, reason_part))
      found = true;
  if (r) trainyard__get_job_response__free_unpacked(r, NULL);
  return found;
}

/* Waits up to 10 s for the file `name` in the cluster's folder, which a
 * job's script makes once it is past its setup (its trap is set). */
static void wait_file(const it_cluster *c, const char *name) {
  char path[300];
  snprintf(path, sizeof path, "%s/%s", c->dir, name);
  for (int i = 0; i < 500 && access(path, F_OK) != 0; i++)
    it_sleep_ms(20);
  cr_assert_eq(access(path, F_OK), 0, "the job's script never made %s", path);
}

/* UpdateQueue straight to the controller, as any client may send it:
 * the status, with the controller's message in err. */
static int update_queue(ty_rpc_client *cl, const char *name, const char *action, char *setting,
                        char *err, size_t err_len) {
  Trainyard__UpdateQueueRequest req = TRAINYARD__UPDATE_QUEUE_REQUEST__INIT;
  req.name = (char *)name, req.action = (char *)action;
  req.n_settings = setting ? 1 : 0, req.settings = &setting;
  uint8_t buf[512];
  size_t n = trainyard__update_queue_request__pack(&req, buf);
  ty_rpc_result res;
  int rc = ty_rpc_client_call(cl, TY_M_UPDATE_QUEUE, buf, n, 10000, &res);
  snprintf(err, err_len, "%s", res.message ? res.message : "");
  if (rc == 0) rc = res.status;
  ty_rpc_result_close(&res);
  return rc;
}

/* ---- preemption --------------------------------------------------------------------------- */

/* A cluster with a preemptible queue `low` and a higher tier `high`, and
 * a job in `low` running on all its CPUs (no_requeue: --no-requeue) that
 * writes c->dir/term on SIGTERM, then, run again, c->dir/second. */
static uint64_t start_preemptible(it_cluster *c, ty_rpc_client **cl, bool no_requeue) {
  start(c, 1, 2);
  cr_assert_eq(
      it_trainctl(c, NULL, (const char *[]){"queue", "create", "low", "--preemptible", NULL}), 0);
  cr_assert_eq(
      it_trainctl(c, NULL, (const char *[]){"queue", "create", "high", "--tier", "10", NULL}), 0);
  *cl = it_client(c);
  char script[2048];
  snprintf(script, sizeof script,
           "if [ -e %s/ran-once ]; then echo second > %s/second; echo output-of-run-two; exit 0; "
           "fi; trap 'echo term > %s/term; touch %s/ran-once; exit 143' TERM; "
           "echo output-of-run-one; touch %s/started; sleep 60 & wait",
           c->dir, c->dir, c->dir, c->dir, c->dir);
  uint64_t low =
      submit(*cl, script, &(job_opts){.queue = "low", .cpus = 2, .no_requeue = no_requeue});
  it_wait_state(*cl, low, ST(RUNNING), 30000);
  wait_file(c, "started");
  return low;
}

Test(scheduler, preempted_job_sees_sigterm_is_requeued_and_runs_again, .timeout = 120) {
  it_cluster c;
  ty_rpc_client *cl;
  uint64_t low = start_preemptible(&c, &cl, false);

  uint64_t high = submit(cl, "echo high", &(job_opts){.queue = "high", .cpus = 2});
  cr_assert_eq(it_wait_state(cl, high, 0, 60000), ST(COMPLETED));
  char path[300];
  snprintf(path, sizeof path, "%s/term", c.dir);
  cr_assert(file_has(path, "term"), "the preempted task did not see SIGTERM (logs in %s)", c.dir);
  cr_assert(has_event(cl, low, ST(PREEMPTED), "preempted by job"), "no PREEMPTED event");
  cr_assert(has_event(cl, low, ST(RUNNING), "preemption notice: SIGTERM for job"),
            "the notice is not in the history");
  cr_assert(has_event(cl, low, ST(PENDING), "requeued after PREEMPTED"), "not requeued");

  cr_assert_eq(it_wait_state(cl, low, 0, 60000), ST(COMPLETED), "the requeued job did not finish");
  snprintf(path, sizeof path, "%s/second", c.dir);
  cr_assert(file_has(path, "second"), "the requeued job did not run again");
  Trainyard__GetJobResponse *r = it_get_job(cl, low);
  cr_assert_geq(r->job->requeue_count, 1u);
  trainyard__get_job_response__free_unpacked(r, NULL);
  /* The preempted run's rank exited after its SIGTERM; the run was PREEMPTED. */
  it_expect_run_state(&c, low, 1, "PREEMPTED");
  it_expect_run_state(&c, low, 2, "COMPLETED");
  /* Both runs appended to the one log on the one node: each is shown once,
   * under its own marker, not the whole log under each run. */
  char sid[24], *out = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)low);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"logs", sid, NULL}), 0);
  it_expect_in_order(out,
                     (const char *[]){"==> run 1 (node ", "output-of-run-one\n", "==> run 2 (node ",
                                      "output-of-run-two\n", NULL},
                     "logs of the preempted job");
  free(out);
  char *metrics = it_http_get_metrics(c.metrics_port);
  cr_assert(strstr(metrics, "trainyard_scheduler_preemptions_total 1"), "%s", metrics);
  free(metrics);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A preempted --no-requeue job is not requeued: it ends PREEMPTED for good
 * (Slurm cancels a job it cannot requeue under PreemptMode=REQUEUE), after
 * its task saw SIGTERM, and never runs again. */
Test(scheduler, preempted_no_requeue_job_ends_preempted, .timeout = 120) {
  it_cluster c;
  ty_rpc_client *cl;
  uint64_t low = start_preemptible(&c, &cl, true);

  uint64_t high = submit(cl, "echo high", &(job_opts){.queue = "high", .cpus = 2});
  cr_assert_eq(it_wait_state(cl, high, 0, 60000), ST(COMPLETED));
  cr_assert_eq(it_wait_state(cl, low, 0, 60000), ST(PREEMPTED), "logs in %s", c.dir);
  char path[300];
  snprintf(path, sizeof path, "%s/term", c.dir);
  cr_assert(file_has(path, "term"), "the preempted task did not see SIGTERM (logs in %s)", c.dir);
  cr_assert(has_event(cl, low, ST(PREEMPTED), "not requeued (--no-requeue)"), "no final PREEMPTED");
  cr_assert(!has_event(cl, low, ST(PENDING), "requeued"), "requeued all the same");
  /* A pass or two more: nothing puts it back. */
  uint64_t after = submit(cl, "true", &(job_opts){.queue = "high", .cpus = 2});
  cr_assert_eq(it_wait_state(cl, after, 0, 60000), ST(COMPLETED));
  Trainyard__GetJobResponse *r = it_get_job(cl, low);
  cr_assert_eq((int)r->job->state, ST(PREEMPTED));
  cr_assert_eq(r->job->requeue_count, 0u);
  trainyard__get_job_response__free_unpacked(r, NULL);
  snprintf(path, sizeof path, "%s/second", c.dir);
  cr_assert_neq(access(path, F_OK), 0, "the no-requeue job ran again");
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

static size_t count_events(ty_rpc_client *cl, uint64_t id, const char *reason_part) {
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  size_t n = 0;
  for (size_t i = 0; r && i < r->n_events; i++)
    n += strstr(r->events[i]->reason, reason_part) != NULL;
  if (r) trainyard__get_job_response__free_unpacked(r, NULL);
  return n;
}

/* A victim whose task ignores SIGTERM, the controller stopped during the
 * grace and started again with preemption off: the preemption is in the
 * victim's row (kill_sent, preempt_for), so the victim is neither
 * signalled nor noted again, and when the worker's SIGKILL ends it, it is
 * PREEMPTED and requeued, not FAILED. */
Test(scheduler, a_preemption_outlives_a_restart_during_its_grace, .timeout = 180) {
  it_cluster c;
  it_cluster_start_with(&c, 1, 2,
                        &(it_options){.config_extra = "preempt.min_run = 0\npreempt.grace = 8\n"});
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"queue", "create", "low", "--preemptible", NULL}), 0);
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"queue", "create", "high", "--tier", "10", NULL}), 0);
  ty_rpc_client *cl = it_client(&c);
  char script[2048], terms[300];
  snprintf(terms, sizeof terms, "%s/terms", c.dir);
  snprintf(script, sizeof script,
           "if [ -e %s/ran-once ]; then exit 0; fi; touch %s/ran-once; "
           "trap 'echo term >> %s' TERM; touch %s/started; while :; do sleep 0.2; done",
           c.dir, c.dir, terms, c.dir);
  uint64_t low = submit(cl, script, &(job_opts){.queue = "low", .cpus = 2});
  it_wait_state(cl, low, ST(RUNNING), 30000);
  wait_file(&c, "started");
  uint64_t high = submit(cl, "sleep 1", &(job_opts){.queue = "high", .cpus = 2});
  for (int i = 0; i < 500 && !file_has(terms, "term"); i++)
    it_sleep_ms(20);
  cr_assert(file_has(terms, "term"), "the victim never saw SIGTERM (logs in %s)", c.dir);
  ty_rpc_client_close(cl);
  FILE *f = fopen(c.config, "a");
  cr_assert(f, "%s", c.config);
  fputs("preemption = off\n", f);
  fclose(f);
  it_controller_restart(&c, false);
  cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, high, 0, 60000), ST(COMPLETED), "logs in %s", c.dir);
  cr_assert_eq(it_wait_state(cl, low, 0, 60000), ST(COMPLETED), "logs in %s", c.dir);
  cr_assert(has_event(cl, low, ST(PENDING), "requeued after PREEMPTED"), "not requeued");
  cr_assert_eq(count_events(cl, low, "preemption notice"), 1u, "the notice was recorded again");
  char *text = it_read_text(terms);
  cr_assert(text && !strcmp(text, "term\n"), "the victim saw SIGTERM more than once:\n%s", text);
  free(text);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* How long job id ran (start to end), in seconds. */
static double ran_s(ty_rpc_client *cl, uint64_t id) {
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  double s = (double)(r->job->end_time_ms - r->job->start_time_ms) / 1000.0;
  trainyard__get_job_response__free_unpacked(r, NULL);
  return s;
}

/* Fair share charges the time jobs held while traind was down (an
 * upgrade): one that ended during the outage (its end reported at
 * re-registration) and one that ran across it, each once. */
Test(scheduler, a_traind_outage_is_charged_to_fair_share_once, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char a_script[600], b_script[600], flag[300];
  snprintf(a_script, sizeof a_script, "while [ ! -e %s/end-a ]; do sleep 0.05; done", c.dir);
  snprintf(b_script, sizeof b_script, "while [ ! -e %s/end-b ]; do sleep 0.05; done", c.dir);
  uint64_t a = submit(cl, a_script, &(job_opts){.cpus = 1});
  uint64_t b = submit(cl, b_script, &(job_opts){.cpus = 1});
  it_wait_state(cl, a, ST(RUNNING), 30000);
  it_wait_state(cl, b, ST(RUNNING), 30000);
  it_sleep_ms(1500);
  ty_rpc_client_close(cl);
  kill(c.traind, SIGTERM); /* an upgrade: stopped, started again later */
  waitpid(c.traind, NULL, 0);
  c.traind = 0;
  it_sleep_ms(5000);
  snprintf(flag, sizeof flag, "%s/end-a", c.dir);
  FILE *f = fopen(flag, "w");
  cr_assert(f, "%s", flag);
  fclose(f);
  it_sleep_ms(3000);
  it_controller_start(&c);
  cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, a, 0, 30000), ST(COMPLETED), "logs in %s", c.dir);
  it_sleep_ms(1500);
  snprintf(flag, sizeof flag, "%s/end-b", c.dir);
  cr_assert((f = fopen(flag, "w")), "%s", flag);
  fclose(f);
  cr_assert_eq(it_wait_state(cl, b, 0, 30000), ST(COMPLETED), "logs in %s", c.dir);
  double held = ran_s(cl, a) + ran_s(cl, b); /* 1 CPU each */
  cr_assert(held > 14, "the jobs ran %.1f s in all", held);
  it_sleep_ms(1500); /* a tick stores the usage */
  char *out = NULL;
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"share", "--json", NULL}), 0);
  const char *cpu = strstr(out, "\"cpu_seconds\":");
  cr_assert(cpu, "%s", out);
  double charged = strtod(cpu + strlen("\"cpu_seconds\":"), NULL);
  cr_assert(charged > held - 2 && charged < held + 2,
            "%.1f CPU-s charged for %.1f CPU-s held (logs in %s): %s", charged, held, c.dir, out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A higher tier's job runs even when a preemptible lower tier's job has
 * the larger weighted priority (Slurm's PriorityTier orders tiers
 * strictly): it preempts that job once and the job, requeued, waits
 * behind it; with both pending, the lower tier's job does not start first
 * only to be preempted (the acceptance test saw that repeat forever). */
Test(scheduler, a_higher_tier_job_preempts_once_and_runs_before_a_heavier_lower_tier,
     .timeout = 120) {
  it_cluster c;
  it_options o = {.config_extra = "preempt.min_run = 0\npreempt.grace = 5\n"
                                  "weight.priority = 60000\n"};
  it_cluster_start_with(&c, 1, 2, &o);
  cr_assert_eq(
      it_trainctl(&c, NULL,
                  (const char *[]){"queue", "create", "t9", "--tier", "9", "--preemptible", NULL}),
      0);
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"queue", "create", "high", "--tier", "10", NULL}), 0);
  ty_rpc_client *cl = it_client(&c);
  char script[1024];
  snprintf(script, sizeof script,
           "if [ -e %s/ran-once ]; then exit 0; fi; "
           "trap 'touch %s/ran-once; exit 143' TERM; touch %s/started; sleep 60 & wait",
           c.dir, c.dir, c.dir);
  /* Tier 9 at priority 0 weighs 90,000 + 30,000 (+ its fair share, which
   * its run costs), tier 10 at -1000 100,000 + 10,000: the lower tier's job
   * has the larger total. */
  uint64_t low = submit(cl, script, &(job_opts){.queue = "t9", .cpus = 2});
  it_wait_state(cl, low, ST(RUNNING), 30000);
  wait_file(&c, "started");
  uint64_t high =
      submit(cl, "echo high", &(job_opts){.queue = "high", .cpus = 2, .priority = -1000});
  cr_assert_eq(it_wait_state(cl, high, 0, 60000), ST(COMPLETED),
               "the tier-10 job never ran (logs in %s)", c.dir);
  cr_assert_eq(it_wait_state(cl, low, 0, 60000), ST(COMPLETED), "logs in %s", c.dir);
  Trainyard__GetJobResponse *r = it_get_job(cl, low);
  cr_assert_eq(r->job->requeue_count, 1u, "job %llu was preempted %u times",
               (unsigned long long)low, r->job->requeue_count);
  trainyard__get_job_response__free_unpacked(r, NULL);
  /* Both pending when the node frees: the tier-10 job starts first, so the
   * tier-9 one is never started only to be preempted. */
  snprintf(script, sizeof script, "while [ ! -e %s/go ]; do sleep 0.05; done", c.dir);
  uint64_t blocker = submit(cl, script, &(job_opts){.cpus = 2});
  it_wait_state(cl, blocker, ST(RUNNING), 30000);
  low = submit(cl, "sleep 2", &(job_opts){.queue = "t9", .cpus = 2});
  high = submit(cl, "echo high", &(job_opts){.queue = "high", .cpus = 2, .priority = -1000});
  char go[300];
  snprintf(go, sizeof go, "%s/go", c.dir);
  close(open(go, O_CREAT | O_WRONLY, 0644));
  cr_assert_eq(it_wait_state(cl, high, 0, 60000), ST(COMPLETED), "logs in %s", c.dir);
  cr_assert_eq(it_wait_state(cl, low, 0, 60000), ST(COMPLETED), "logs in %s", c.dir);
  r = it_get_job(cl, low);
  cr_assert_eq(r->job->requeue_count, 0u, "job %llu ran first and was preempted",
               (unsigned long long)low);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- drain ----------------------------------------------------------------------------------- */

Test(scheduler, drain_lets_running_jobs_finish_then_resume_takes_jobs_again, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char script[1024], flag[300];
  snprintf(flag, sizeof flag, "%s/finish", c.dir);
  snprintf(script, sizeof script, "while [ ! -e %s ]; do sleep 0.05; done; echo done", flag);
  uint64_t running = submit(cl, script, &(job_opts){.cpus = 1});
  it_wait_state(cl, running, ST(RUNNING), 30000);
  char *out = NULL;
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *[]){"node", "drain", "w1", "--reason", "disk swap", NULL}),
      0);
  cr_assert(strstr(out, "DRAINING"), "%s", out);
  free(out);
  uint64_t waiting = submit(cl, "echo after", &(job_opts){.cpus = 1});
  it_sleep_ms(1500); /* a few passes: it must not start on a draining node */
  Trainyard__GetJobResponse *r = it_get_job(cl, waiting);
  cr_assert_eq((int)r->job->state, ST(PENDING), "started on a draining node");
  trainyard__get_job_response__free_unpacked(r, NULL);
  cr_assert_eq(it_count_nodes_in_state(cl, NODE(DRAINING)), 1u);

  FILE *f = fopen(flag, "w");
  cr_assert(f);
  fclose(f);
  cr_assert_eq(it_wait_state(cl, running, 0, 30000), ST(COMPLETED), "drain killed a running job");
  cr_assert(it_wait_nodes(cl, 1, NODE(DRAINED), 10000), "node never DRAINED");
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"node", "resume", "w1", NULL}), 0);
  cr_assert_eq(it_wait_state(cl, waiting, 0, 30000), ST(COMPLETED));
  /* Errors name what is wrong. */
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"node", "resume", "w1", NULL}), 1);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"node", "drain", "nosuch", NULL}), 1);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"node", "reboot", "w1", NULL}), 2);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- hold and release -------------------------------------------------------------------------
 */

Test(scheduler, held_job_waits_until_released, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  /* Keep the job from starting while it is held: pause its queue first. */
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
  uint64_t id = submit(cl, "echo released", &(job_opts){.cpus = 1});
  char sid[24], *out = NULL;
  id_str(id, sid);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "hold", sid, NULL}), 0);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "hold", sid, NULL}), 1, "held twice");
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "resume", "default", NULL}), 0);
  it_sleep_ms(1500); /* a few passes */
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  cr_assert_eq((int)r->job->state, ST(PENDING), "a held job started");
  cr_assert(r->job->held);
  cr_assert(strstr(r->job->reason, "Held"), "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"why", sid, NULL}), 0);
  cr_assert(strstr(out, "Position:") && strstr(out, "Held"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "priority", sid, "77", NULL}), 0);
  /* The controller checks what any client sends. */
  Trainyard__UpdateJobRequest uj = TRAINYARD__UPDATE_JOB_REQUEST__INIT;
  uj.job_id = id, uj.action = "priority", uj.priority = 5000;
  uint8_t ujb[128];
  size_t ujn = trainyard__update_job_request__pack(&uj, ujb);
  ty_rpc_result res;
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_UPDATE_JOB, ujb, ujn, 10000, &res), 0);
  cr_assert_eq(res.status, TY_EINVAL);
  cr_assert(strstr(res.message, "priority: 5000 is outside -1000..1000"), "%s", res.message);
  ty_rpc_result_close(&res);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  cr_assert_eq(it_wait_state(cl, id, 0, 30000), ST(COMPLETED));
  cr_assert(has_event(cl, id, ST(PENDING), "held by"), "no hold event");
  cr_assert(has_event(cl, id, ST(PENDING), "priority 0 -> 77 by"), "no priority event");
  cr_assert(has_event(cl, id, ST(PENDING), "released by"), "no release event");
  /* Only pending jobs can be held; unknown jobs exit 4. */
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "hold", sid, NULL}), 1);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "release", "999", NULL}), 4);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "priority", sid, "5000", NULL}), 2);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "priority", sid, NULL}), 2);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* Held jobs are listed as held at once, with priority 0 (Slurm's), and take
 * no part in scheduling passes: with only held jobs pending, the ticks run
 * no pass at all; released, a job is scheduled and runs. */
Test(scheduler, held_jobs_stay_out_of_the_passes, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char *out = NULL;
  cr_assert_eq(it_trainctl(&c, &out,
                           (const char *[]){"submit", "--quiet", "--hold", "--array", "0-199",
                                            "--command", "--", "true", NULL}),
               0, "%s", out);
  uint64_t first = strtoull(out, NULL, 10);
  free(out);
  cr_assert_gt(first, 0);
  static const char passes[] = "trainyard_scheduler_pass_duration_seconds_count";
  double before = it_metric(c.metrics_port, passes);
  it_sleep_ms(2500); /* two ticks or more */
  cr_assert_eq(it_metric(c.metrics_port, passes), before,
               "held jobs alone made the ticks run passes");
  Trainyard__GetJobResponse *r = it_get_job(cl, first + 7);
  cr_assert_eq((int)r->job->state, ST(PENDING));
  cr_assert_str_eq(r->job->reason, "JobHeldUser: held until released (trainctl job release)");
  cr_assert_eq(r->job->priority, 0.0, "a held job's priority: %f", r->job->priority);
  trainyard__get_job_response__free_unpacked(r, NULL);
  char sid[48];
  snprintf(sid, sizeof sid, "%llu_7", (unsigned long long)first);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  cr_assert_eq(it_wait_state(cl, first + 7, 0, 30000), ST(COMPLETED));
  cr_assert_gt(it_metric(c.metrics_port, passes), before, "the released job ran without a pass");
  /* `why` still explains a held job. */
  snprintf(sid, sizeof sid, "%llu_8", (unsigned long long)first);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"why", sid, NULL}), 0, "%s", out);
  cr_assert(strstr(out, "Held"), "%s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- time limit with a warning signal
 * ------------------------------------------------------------ */

Test(scheduler, time_limit_sends_the_warning_signal_then_times_out, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char script[1024], path[300];
  snprintf(path, sizeof path, "%s/warned", c.dir);
  snprintf(script, sizeof script,
           "trap 'echo warned > %s' USR1; i=0; while [ $i -lt 600 ]; do sleep 0.1; "
           "i=$((i+1)); done",
           path);
  uint64_t id =
      submit(cl, script,
             &(job_opts){.cpus = 1, .time_limit_s = 3, .warn_signal = SIGUSR1, .warn_before_s = 2});
  cr_assert_eq(it_wait_state(cl, id, 0, 60000), ST(TIMEOUT));
  cr_assert(file_has(path, "warned"), "the task never got the warning signal (logs in %s)", c.dir);
  cr_assert(has_event(cl, id, ST(RUNNING),
                      "warning: SIGUSR1 sent to the tasks 2 s before the "
                      "time limit of 3 s"),
            "the warning is not in the history");
  /* A warning at or after the limit is refused, naming the field. */
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  char *argv[] = {"true"};
  cmd.n_argv = 1, cmd.argv = argv;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND, job.command = &cmd, job.user = "tester";
  job.time_limit_s = 5, job.warn_signal = SIGUSR1, job.warn_before_s = 5;
  uint64_t bad;
  char err[256] = "";
  cr_assert_eq(it_submit_job(cl, &job, &bad, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.warn_before_s"), "%s", err);
  job.warn_signal = 99;
  cr_assert_eq(it_submit_job(cl, &job, &bad, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.warn_signal"), "%s", err);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A batch script submitted with --signal=B:SIG@T into dir/name.sh: it
 * traps USR1, starts `sleep 6` and waits for it, then writes the sleep's
 * exit status into dir/name.log. */
static void trap_script(const char *dir, const char *name) {
  char path[400];
  snprintf(path, sizeof path, "%s/%s.sh", dir, name);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fprintf(f,
          "#!/bin/sh\n"
          "trap 'echo trapped >> %s/%s.log' USR1\n"
          "sleep 6 & p=$!\n"
          "wait $p; wait $p; echo \"sleep: $?\" >> %s/%s.log\n",
          dir, name, dir, name);
  fclose(f);
}

/* sbatch's --signal=B:: the warning reaches the batch script alone (its
 * trap runs, the program it started runs on); without B: every process
 * of the task gets it (the sleep dies of USR1). */
Test(scheduler, a_batch_only_warning_reaches_the_script_alone, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  const char *names[2] = {"batch", "all"}, *signals[2] = {"B:USR1@17", "USR1@17"};
  uint64_t ids[2];
  for (int k = 0; k < 2; k++) {
    char script[400];
    trap_script(c.dir, names[k]);
    snprintf(script, sizeof script, "%s/%s.sh", c.dir, names[k]);
    ids[k] = it_submit_quiet(&c, (const char *[]){"--time", "0:20", "--signal", signals[k], "-o",
                                                  "/dev/null", script, NULL});
  }
  for (int k = 0; k < 2; k++)
    cr_assert_eq(it_wait_state(cl, ids[k], 0, 60000), ST(COMPLETED), "%s (logs in %s)", names[k],
                 c.dir);
  char log[400];
  snprintf(log, sizeof log, "%s/batch.log", c.dir);
  cr_assert(file_has(log, "trapped") && file_has(log, "sleep: 0"), "%s", log);
  snprintf(log, sizeof log, "%s/all.log", c.dir);
  cr_assert(file_has(log, "trapped") && file_has(log, "sleep: 138"), "%s", log);
  char id[32], *out = NULL;
  snprintf(id, sizeof id, "%llu", (unsigned long long)ids[0]);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", id, NULL}), 0);
  cr_assert(strstr(out, "SIGUSR1 17 s before the time limit, to the batch script alone"), "%s",
            out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* scancel -b -s USR1: the signal reaches each task's batch script alone
 * (its trap runs, the program it started runs on), where without -b
 * every process of the task gets it (the sleep dies of USR1). -b was once
 * taken and dropped, killing the program the trap meant to keep. */
Test(scheduler, cancel_batch_signals_the_script_alone, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  const char *names[2] = {"batch", "all"};
  uint64_t ids[2];
  for (int k = 0; k < 2; k++) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s.sh", c.dir, names[k]);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "#!/bin/sh\n"
            "trap 'echo trapped >> %s/%s.log' USR1\n"
            "sleep 6 & p=$!\n"
            "touch %s/%s.ready\n"
            "wait $p; wait $p; echo \"sleep: $?\" >> %s/%s.log\n",
            c.dir, names[k], c.dir, names[k], c.dir, names[k]);
    fclose(f);
    ids[k] = it_submit_quiet(&c, (const char *[]){"-o", "/dev/null", path, NULL});
  }
  for (int k = 0; k < 2; k++) {
    char ready[64], id[32], *out = NULL;
    snprintf(ready, sizeof ready, "%s.ready", names[k]);
    wait_file(&c, ready);
    snprintf(id, sizeof id, "%llu", (unsigned long long)ids[k]);
    const char *batch[] = {"cancel", "-b", "-s", "USR1", id, NULL};
    const char *all[] = {"cancel", "-s", "USR1", id, NULL};
    cr_assert_eq(it_trainctl(&c, &out, k == 0 ? batch : all), 0, "%s", out ? out : "");
    free(out);
  }
  for (int k = 0; k < 2; k++)
    cr_assert_eq(it_wait_state(cl, ids[k], 0, 60000), ST(COMPLETED), "%s (logs in %s)", names[k],
                 c.dir);
  char log[400];
  snprintf(log, sizeof log, "%s/batch.log", c.dir);
  cr_assert(file_has(log, "trapped") && file_has(log, "sleep: 0"), "%s", log);
  snprintf(log, sizeof log, "%s/all.log", c.dir);
  cr_assert(file_has(log, "trapped") && file_has(log, "sleep: 138"), "%s", log);
  char id[32], *out = NULL;
  snprintf(id, sizeof id, "%llu", (unsigned long long)ids[0]);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", id, NULL}), 0);
  cr_assert(strstr(out, "signal 10 sent to the batch script by"), "%s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- queue administration
 * -------------------------------------------------------------------------- */

Test(scheduler, queue_admin_limits_and_errors, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char *out = NULL;
  cr_assert_eq(it_trainctl(&c, NULL,
                           (const char *[]){"queue", "create", "gpu", "--tier", "5", "--share", "2",
                                            "--max-running", "1", "--max-time", "1h",
                                            "--default-time", "10m", NULL}),
               0);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "create", "gpu", NULL}), 1,
               "created twice");
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"queue", "update", "gpu", "--share", "-1", NULL}), 2);
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"queue", "update", "nosuch", "--tier", "1", NULL}), 1);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "create", "bad name", NULL}), 2);
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"queue", "create", "x", "--bogus", "1", NULL}), 2);
  /* Usage errors trainctl can tell without the controller exit 2 (issue 14). */
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "update", "gpu", NULL}), 2,
               "no settings");
  cr_assert_eq(it_trainctl(&c, NULL,
                           (const char *[]){"queue", "create", "y", "--default-time", "2h",
                                            "--max-time", "1h", NULL}),
               2);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "frobnicate", "gpu", NULL}), 2);
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"queue", "pause", "gpu", "--tier", "1", NULL}), 2);
  /* trainctl refuses those before sending; the controller still checks what
   * any client sends. */
  char qerr[TY_ERR_LEN] = "";
  cr_assert_eq(update_queue(cl, "bad name", "create", NULL, qerr, sizeof qerr), TY_EINVAL);
  cr_assert(strstr(qerr, "name: \"bad name\""), "%s", qerr);
  cr_assert_eq(update_queue(cl, "gpu", "update", "share=-1", qerr, sizeof qerr), TY_EINVAL);
  cr_assert(strstr(qerr, "share: \"-1\" is not a number > 0"), "%s", qerr);
  cr_assert_eq(update_queue(cl, "gpu", "update", "bogus=1", qerr, sizeof qerr), TY_EINVAL);
  cr_assert(strstr(qerr, "bogus: unknown setting"), "%s", qerr);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"queue", "ls", "--json", NULL}), 0);
  cr_assert(strstr(out, "\"name\":\"gpu\"") && strstr(out, "\"max_running\":1") &&
                strstr(out, "\"default_time_s\":600"),
            "%s", out);
  free(out);

  /* max_running 1: the second job waits with the limit as its reason. */
  char flag[300], script[1024];
  snprintf(flag, sizeof flag, "%s/go", c.dir);
  snprintf(script, sizeof script, "while [ ! -e %s ]; do sleep 0.05; done", flag);
  uint64_t a = submit(cl, script, &(job_opts){.queue = "gpu", .cpus = 1});
  uint64_t b = submit(cl, "true", &(job_opts){.queue = "gpu", .cpus = 1});
  it_wait_state(cl, a, ST(RUNNING), 30000);
  it_sleep_ms(1200);
  Trainyard__GetJobResponse *r = it_get_job(cl, b);
  cr_assert_eq((int)r->job->state, ST(PENDING));
  cr_assert(strstr(r->job->reason, "max_running is 1"), "%s", r->job->reason);
  cr_assert_eq(r->job->spec->time_limit_s, 600u, "the queue's default time limit");
  trainyard__get_job_response__free_unpacked(r, NULL);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "delete", "gpu", NULL}), 1,
               "deleted with jobs");

  /* A time limit above the queue's maximum is refused at submit. */
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  char *argv[] = {"true"};
  cmd.n_argv = 1, cmd.argv = argv;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND, job.command = &cmd, job.user = "tester";
  job.queue = "gpu", job.time_limit_s = 7200;
  uint64_t bad;
  char err[256] = "";
  cr_assert_eq(it_submit_job(cl, &job, &bad, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "job.time_limit_s: 7200 s exceeds queue gpu's max_time of 3600 s"), "%s",
            err);

  FILE *f = fopen(flag, "w");
  cr_assert(f);
  fclose(f);
  cr_assert_eq(it_wait_state(cl, a, 0, 30000), ST(COMPLETED));
  cr_assert_eq(it_wait_state(cl, b, 0, 30000), ST(COMPLETED));
  /* Closed: refuses new jobs. Deleted: gone from ls, unknown to submit. */
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"queue", "update", "gpu", "--state", "closed", NULL}),
      0);
  job.time_limit_s = 0;
  cr_assert_eq(it_submit_job(cl, &job, &bad, err, sizeof err), TY_ESTATE, "%s", err);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "delete", "gpu", NULL}), 0);
  cr_assert_eq(it_submit_job(cl, &job, &bad, err, sizeof err), TY_ENOTFOUND, "%s", err);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"queue", "delete", "default", NULL}), 1);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"share", "--json", NULL}), 0);
  cr_assert(strstr(out, "\"queue\":\"default\""), "%s", out);
  /* The deleted queue's share, tier and usage weigh on nothing any more. */
  cr_assert_null(strstr(out, "\"queue\":\"gpu\""), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"share", NULL}), 0);
  cr_assert(strstr(out, "100.0%"), "the only queue left has not the whole share: %s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- start estimates (trainctl why)
 * ----------------------------------------------------------------- */

/* Polls `trainctl why ID --json` until its output holds `text`; returns it. */
static char *why_until(const it_cluster *c, uint64_t id, const char *text) {
  char sid[24];
  id_str(id, sid);
  char last[2048] = "";
  for (int i = 0; i < 300; i++) {
    char *out = NULL;
    int rc = it_trainctl(c, &out, (const char *[]){"why", sid, "--json", NULL});
    if (rc == 0 && out && strstr(out, text)) return out;
    snprintf(last, sizeof last, "rc %d: %s", rc, out ? out : "");
    free(out);
    it_sleep_ms(50);
  }
  cr_assert_fail("why %s never said %s; it last said %s", sid, text, last);
  return NULL;
}

Test(scheduler, why_estimates_follow_the_reservation_and_preemption, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 2);
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"queue", "create", "low", "--preemptible", NULL}), 0);
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"queue", "create", "high", "--tier", "10", NULL}), 0);
  ty_rpc_client *cl = it_client(&c);
  /* Holds the node for 10 minutes by its limit; ignores SIGTERM, so a
   * preemption takes the whole grace period. */
  char stubborn[512];
  snprintf(stubborn, sizeof stubborn,
           "trap '' TERM; touch %s/trapped; while true; do sleep 0.1; done", c.dir);
  (void)submit(cl, stubborn, &(job_opts){.queue = "low", .cpus = 2, .time_limit_s = 600});
  /* RUNNING is the controller's word: the shell may not have set its trap
   * yet, and a SIGTERM before it ends the job at once. */
  wait_file(&c, "trapped");
  uint64_t first = submit(cl, "true", &(job_opts){.queue = "low", .cpus = 2, .time_limit_s = 300});
  uint64_t second = submit(cl, "true", &(job_opts){.queue = "low", .cpus = 2, .time_limit_s = 60});
  /* The second waits behind the first's reservation: its start is the
   * reservation's end (10 + 5 minutes), not "now". */
  char *out = why_until(&c, second, "\"est_kind\":\"limits\"");
  char reserved[64];
  snprintf(reserved, sizeof reserved, "job %llu's reservation", (unsigned long long)first);
  cr_assert(strstr(out, reserved), "%s", out);
  free(out);
  char sid[24];
  id_str(second, sid);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"why", sid, NULL}), 0);
  cr_assert(strstr(out, "Est. start:  in 14:") || strstr(out, "Est. start:  in 15:00"), "%s", out);
  cr_assert(strstr(out, reserved), "%s", out);
  free(out);
  /* A job of a higher tier preempts the stubborn one: while it ignores
   * SIGTERM, the estimate is the preemption's grace period. */
  uint64_t high = submit(cl, "true", &(job_opts){.queue = "high", .cpus = 2});
  out = why_until(&c, high, "\"est_kind\":\"preemption\"");
  cr_assert(strstr(out, "grace period 5 s"), "%s", out);
  free(out);
  cr_assert_eq(it_wait_state(cl, high, 0, 60000), ST(COMPLETED));
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A high job that the scheduler will preempt for once the low job has run
 * preempt.min_run (10 minutes), long before its hour's limit: why and
 * submit --test-only both give that moment and name the preemption. */
Test(scheduler, why_and_test_only_wait_for_min_run_not_the_limit, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.config_extra = "preempt.min_run = 10m\n"});
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"queue", "create", "low", "--preemptible", NULL}), 0);
  cr_assert_eq(
      it_trainctl(&c, NULL, (const char *[]){"queue", "create", "high", "--tier", "10", NULL}), 0);
  ty_rpc_client *cl = it_client(&c);
  uint64_t low =
      submit(cl, "sleep 600", &(job_opts){.queue = "low", .cpus = 2, .time_limit_s = 3600});
  it_wait_state(cl, low, ST(RUNNING), 30000);
  uint64_t high = submit(cl, "true", &(job_opts){.queue = "high", .cpus = 2});
  char *out = why_until(&c, high, "\"est_kind\":\"preemption\"");
  char victim[96];
  snprintf(victim, sizeof victim, "can preempt once job %llu has run preempt.min_run (600 s)",
           (unsigned long long)low);
  cr_assert(strstr(out, victim), "%s", out);
  free(out);
  char sid[24];
  id_str(high, sid);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"why", sid, NULL}), 0);
  cr_assert(strstr(out, "Est. start:  in 9:") || strstr(out, "Est. start:  in 10:00"), "%s", out);
  free(out);
  char *err = NULL;
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "--test-only", "-p", "high", "-c", "2",
                                                "--wrap", "true", NULL}),
               0);
  snprintf(victim, sizeof victim, "(preemption once job %llu has run preempt.min_run (600 s)",
           (unsigned long long)low);
  cr_assert(strstr(err, "trainctl: Job would start at ") && strstr(err, victim), "%s", err);
  free(out), free(err);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  id_str(low, sid);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- training commands on a command job; job checkpoint (issue 14) ----------------------------
 */

Test(scheduler, command_jobs_have_no_training_and_checkpoints_are_confirmed, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id = submit(cl, "sleep 60", &(job_opts){.cpus = 1});
  it_wait_state(cl, id, ST(RUNNING), 30000);
  char sid[24], *out = NULL;
  id_str(id, sid);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"watch", sid, NULL}), 2);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"checkpoint", "ls", sid, NULL}), 2);
  cr_assert_str_eq(out, "", "an error and nothing else: [%s]", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"job", "checkpoint", sid, NULL}), 0);
  cr_assert(strstr(out, "checkpoint recorded at"), "[%s]", out);
  free(out);
  cr_assert(has_event(cl, id, ST(RUNNING), "checkpoint reported by"), "not in the history");
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
