/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scheduler integration tests through a real traind (started with a
 * --config file) and real trainworkerd processes: preemption (the task sees
 * SIGTERM, the job is requeued and runs again), node drain and resume, hold
 * and release, the time limit's warning signal, and queue administration
 * with its errors. They check states, files the tasks write and the CLI's
 * exit codes, never wall-clock time; the bounds only keep a broken build
 * from hanging.
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
#include "proto/methods.h"
#include "tests/integration/harness.h"

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x
#define NODE(x) TRAINYARD__NODE_STATE__NODE_##x

/* ---- a cluster whose controller reads a config file --------------------------------- */

static void start(it_cluster *c, size_t workers, int cpus) {
  it_options o = {.config_extra = "# integration tests: preempt at once, short grace\n"
                                  "preempt.min_run = 0\npreempt.grace = 5\n"};
  it_cluster_start_with(c, workers, cpus, &o);
}

/* ---- helpers ------------------------------------------------------------------------- */

typedef struct job_opts {
  const char *queue;
  uint32_t cpus, time_limit_s, warn_signal, warn_before_s;
  bool no_requeue; /* sbatch --no-requeue */
} job_opts;

static uint64_t submit(ty_rpc_client *cl, const char *script, const job_opts *o) {
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  char *argv[] = {"/bin/sh", "-c", (char *)script};
  cmd.n_argv = 3, cmd.argv = argv, cmd.cwd = "/tmp";
  Trainyard__Resources res = TRAINYARD__RESOURCES__INIT;
  res.cpus_per_task = o->cpus;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = "sched-it", job.user = "tester";
  job.queue = (char *)(o->queue ? o->queue : "");
  job.resources = &res;
  job.time_limit_s = o->time_limit_s;
  job.warn_signal = o->warn_signal, job.warn_before_s = o->warn_before_s;
  job.no_requeue = o->no_requeue;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND;
  job.command = &cmd;
  uint64_t id = 0;
  char err[256] = "";
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), 0, "submit: %s", err);
  return id;
}

static bool has_event(ty_rpc_client *cl, uint64_t id, int to, const char *reason_part) {
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  bool found = false;
  for (size_t i = 0; r && i < r->n_events; i++)
    if ((int)r->events[i]->to_state == to && strstr(r->events[i]->reason, reason_part))
      found = true;
  if (r) trainyard__get_job_response__free_unpacked(r, NULL);
  return found;
}

static bool file_has(const char *path, const char *text) {
  FILE *f = fopen(path, "r");
  if (!f) return false;
  char buf[256] = "";
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return strstr(buf, text) != NULL;
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

static int ctl(const it_cluster *c, char **out, const char *const *args) {
  return it_trainctl(c, out, args);
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

static char *id_str(uint64_t id, char *buf) {
  snprintf(buf, 24, "%llu", (unsigned long long)id);
  return buf;
}

/* ---- preemption --------------------------------------------------------------------------- */

/* A cluster with a preemptible queue `low` and a higher tier `high`, and
 * a job in `low` running on all its CPUs (no_requeue: --no-requeue) that
 * writes c->dir/term on SIGTERM, then, run again, c->dir/second. */
static uint64_t start_preemptible(it_cluster *c, ty_rpc_client **cl, bool no_requeue) {
  start(c, 1, 2);
  cr_assert_eq(ctl(c, NULL, (const char *[]){"queue", "create", "low", "--preemptible", NULL}), 0);
  cr_assert_eq(ctl(c, NULL, (const char *[]){"queue", "create", "high", "--tier", "10", NULL}), 0);
  *cl = it_client(c);
  char script[2048];
  snprintf(script, sizeof script,
           "if [ -e %s/ran-once ]; then echo second > %s/second; exit 0; fi; "
           "trap 'echo term > %s/term; touch %s/ran-once; exit 143' TERM; "
           "touch %s/started; sleep 60 & wait",
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
      ctl(&c, &out, (const char *[]){"node", "drain", "w1", "--reason", "disk swap", NULL}), 0);
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
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"node", "resume", "w1", NULL}), 0);
  cr_assert_eq(it_wait_state(cl, waiting, 0, 30000), ST(COMPLETED));
  /* Errors name what is wrong. */
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"node", "resume", "w1", NULL}), 1);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"node", "drain", "nosuch", NULL}), 1);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"node", "reboot", "w1", NULL}), 2);
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
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "pause", "default", NULL}), 0);
  uint64_t id = submit(cl, "echo released", &(job_opts){.cpus = 1});
  char sid[24], *out = NULL;
  id_str(id, sid);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "hold", sid, NULL}), 0);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "hold", sid, NULL}), 1, "held twice");
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "resume", "default", NULL}), 0);
  it_sleep_ms(1500); /* a few passes */
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  cr_assert_eq((int)r->job->state, ST(PENDING), "a held job started");
  cr_assert(r->job->held);
  cr_assert(strstr(r->job->reason, "Held"), "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"why", sid, NULL}), 0);
  cr_assert(strstr(out, "Position:") && strstr(out, "Held"), "%s", out);
  free(out);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "priority", sid, "77", NULL}), 0);
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
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  cr_assert_eq(it_wait_state(cl, id, 0, 30000), ST(COMPLETED));
  cr_assert(has_event(cl, id, ST(PENDING), "held by"), "no hold event");
  cr_assert(has_event(cl, id, ST(PENDING), "priority 0 -> 77 by"), "no priority event");
  cr_assert(has_event(cl, id, ST(PENDING), "released by"), "no release event");
  /* Only pending jobs can be held; unknown jobs exit 4. */
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "hold", sid, NULL}), 1);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "release", "999", NULL}), 4);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "priority", sid, "5000", NULL}), 2);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "priority", sid, NULL}), 2);
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
  cr_assert_eq(ctl(&c, &out,
                   (const char *[]){"submit", "--quiet", "--hold", "--array", "0-199", "--command",
                                    "--", "true", NULL}),
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
  cr_assert_str_eq(r->job->reason, "Held: until released (trainctl job release)");
  cr_assert_eq(r->job->priority, 0.0, "a held job's priority: %f", r->job->priority);
  trainyard__get_job_response__free_unpacked(r, NULL);
  char sid[48];
  snprintf(sid, sizeof sid, "%llu_7", (unsigned long long)first);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"job", "release", sid, NULL}), 0);
  cr_assert_eq(it_wait_state(cl, first + 7, 0, 30000), ST(COMPLETED));
  cr_assert_gt(it_metric(c.metrics_port, passes), before, "the released job ran without a pass");
  /* `why` still explains a held job. */
  snprintf(sid, sizeof sid, "%llu_8", (unsigned long long)first);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"why", sid, NULL}), 0, "%s", out);
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

/* ---- queue administration
 * -------------------------------------------------------------------------- */

Test(scheduler, queue_admin_limits_and_errors, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char *out = NULL;
  cr_assert_eq(
      ctl(&c, NULL,
          (const char *[]){"queue", "create", "gpu", "--tier", "5", "--share", "2", "--max-running",
                           "1", "--max-time", "1h", "--default-time", "10m", NULL}),
      0);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "create", "gpu", NULL}), 1, "created twice");
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "update", "gpu", "--share", "-1", NULL}), 2);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "update", "nosuch", "--tier", "1", NULL}),
               1);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "create", "bad name", NULL}), 2);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "create", "x", "--bogus", "1", NULL}), 2);
  /* Usage errors trainctl can tell without the controller exit 2 (issue 14). */
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "update", "gpu", NULL}), 2, "no settings");
  cr_assert_eq(ctl(&c, NULL,
                   (const char *[]){"queue", "create", "y", "--default-time", "2h", "--max-time",
                                    "1h", NULL}),
               2);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "frobnicate", "gpu", NULL}), 2);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "pause", "gpu", "--tier", "1", NULL}), 2);
  /* trainctl refuses those before sending; the controller still checks what
   * any client sends. */
  char qerr[TY_ERR_LEN] = "";
  cr_assert_eq(update_queue(cl, "bad name", "create", NULL, qerr, sizeof qerr), TY_EINVAL);
  cr_assert(strstr(qerr, "name: \"bad name\""), "%s", qerr);
  cr_assert_eq(update_queue(cl, "gpu", "update", "share=-1", qerr, sizeof qerr), TY_EINVAL);
  cr_assert(strstr(qerr, "share: \"-1\" is not a number > 0"), "%s", qerr);
  cr_assert_eq(update_queue(cl, "gpu", "update", "bogus=1", qerr, sizeof qerr), TY_EINVAL);
  cr_assert(strstr(qerr, "bogus: unknown setting"), "%s", qerr);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"queue", "ls", "--json", NULL}), 0);
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
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "delete", "gpu", NULL}), 1,
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
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "update", "gpu", "--state", "closed", NULL}),
               0);
  job.time_limit_s = 0;
  cr_assert_eq(it_submit_job(cl, &job, &bad, err, sizeof err), TY_ESTATE, "%s", err);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "delete", "gpu", NULL}), 0);
  cr_assert_eq(it_submit_job(cl, &job, &bad, err, sizeof err), TY_ENOTFOUND, "%s", err);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "delete", "default", NULL}), 1);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"share", "--json", NULL}), 0);
  cr_assert(strstr(out, "\"queue\":\"default\""), "%s", out);
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
    int rc = ctl(c, &out, (const char *[]){"why", sid, "--json", NULL});
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
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "create", "low", "--preemptible", NULL}), 0);
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"queue", "create", "high", "--tier", "10", NULL}), 0);
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
  cr_assert_eq(ctl(&c, &out, (const char *[]){"why", sid, NULL}), 0);
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
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
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
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"watch", sid, NULL}), 2);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"checkpoint", "ls", sid, NULL}), 2);
  cr_assert_str_eq(out, "", "an error and nothing else: [%s]", out);
  free(out);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"job", "checkpoint", sid, NULL}), 0);
  cr_assert(strstr(out, "checkpoint recorded at"), "[%s]", out);
  free(out);
  cr_assert(has_event(cl, id, ST(RUNNING), "checkpoint reported by"), "not in the history");
  cr_assert_eq(ctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- exclusive (whole-node) jobs ---------------------------------------------------------- */

/* Polls `trainctl ARGS...` until its output holds `text`; returns it. */
static char *ctl_until(const it_cluster *c, const char *const *args, const char *text) {
  char last[2048] = "";
  for (int i = 0; i < 300; i++) {
    char *out = NULL;
    int rc = ctl(c, &out, args);
    if (rc == 0 && out && strstr(out, text)) return out;
    snprintf(last, sizeof last, "rc %d: %s", rc, out ? out : "");
    free(out);
    it_sleep_ms(50);
  }
  cr_assert_fail("trainctl %s %s never said %s; it last said %s", args[0], args[1], text, last);
  return NULL;
}

static void touch(const it_cluster *c, const char *name) {
  char path[300];
  snprintf(path, sizeof path, "%s/%s", c->dir, name);
  FILE *f = fopen(path, "w");
  cr_assert(f, "%s", path);
  fclose(f);
}

/* sbatch --exclusive on one node of 2 CPUs: it waits while a 1-CPU job
 * runs there (why names that job), across a controller restart; it starts
 * once the node is empty, its task sees the node's 2 CPUs and memory (and,
 * where the worker has cgroups, is limited to them), and a 1-CPU job
 * waits while it runs (why names it as the node's holder). history charges
 * it the node's CPUs; a bad --exclusive value is refused naming it. */
Test(scheduler, exclusive_jobs_hold_whole_nodes, .timeout = 180) {
  it_cluster c;
  start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char script[1600], out_pat[400], sid[24], sx[24], sb[24];
  snprintf(script, sizeof script, "while [ ! -e %s/finish-small ]; do sleep 0.05; done", c.dir);
  uint64_t small = submit(cl, script, &(job_opts){.cpus = 1});
  cr_assert_eq(it_wait_state(cl, small, ST(RUNNING), 30000), ST(RUNNING));
  id_str(small, sid);

  snprintf(out_pat, sizeof out_pat, "%s/excl-%%j.out", c.dir);
  /* It prints what it sees: the node's CPUs, and the memory limit and CPU
   * quota of its cgroups (the job's level holds the memory limit, the
   * rank's the quota; docs/security.md). */
  snprintf(script, sizeof script,
           "echo cpus=$SLURM_CPUS_ON_NODE ty=$TRAINYARD_CPUS_ON_NODE "
           "task=$SLURM_CPUS_PER_TASK; "
           "m=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup); "
           "q=$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print $3}' /proc/self/cgroup); "
           "lim=$(cat /sys/fs/cgroup/memory$(dirname \"$m\")/memory.limit_in_bytes 2>/dev/null "
           "|| cat /sys/fs/cgroup$(dirname \"$m\")/memory.max 2>/dev/null); "
           "quota=$(cat /sys/fs/cgroup/cpu*$q/cpu.cfs_quota_us 2>/dev/null "
           "|| cat /sys/fs/cgroup$q/cpu.max 2>/dev/null); "
           "echo mem=$SLURM_MEM_PER_NODE lim=$((${lim:-0} >> 20)) quota=$quota; "
           "while [ ! -e %s/finish-excl ]; do sleep 0.05; done",
           c.dir);
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"submit", "-q", "--exclusive", "-o", out_pat,
                                                "--wrap", script, NULL}),
               0, "%s", err);
  uint64_t excl = strtoull(out, NULL, 10);
  free(out), free(err);
  id_str(excl, sx);
  char want[160];
  snprintf(want, sizeof want,
           "waiting for a whole free node (exclusive), 0 are free; node w1 has "
           "job %s",
           sid);
  out = ctl_until(&c, (const char *[]){"why", sx, NULL}, want);
  free(out);
  cr_assert_eq(it_job_state(cl, excl), ST(PENDING), "started beside a running job");
  cr_assert_eq(ctl(&c, &out, (const char *[]){"show", sx, NULL}), 0);
  cr_assert(strstr(out, "exclusive:") && strstr(out, "whole nodes"), "%s", out);
  free(out);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"ls", "--format", "id,exclusive", NULL}), 0);
  char row[64];
  snprintf(row, sizeof row, "%s", sx);
  cr_assert(strstr(out, "EXCLUSIVE") && strstr(out, "yes") && strstr(out, "no"), "%s", out);
  free(out);

  /* The controller restarts: the job is still exclusive and still waits. */
  ty_rpc_client_close(cl);
  it_kill9(&c.traind);
  it_controller_start(&c);
  cl = it_client(&c);
  out = ctl_until(&c, (const char *[]){"why", sx, NULL}, want);
  free(out);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"show", sx, NULL}), 0);
  cr_assert(strstr(out, "exclusive:"), "lost across a restart: %s", out);
  free(out);

  /* The small job ends: the node is whole, the exclusive job runs. */
  touch(&c, "finish-small");
  cr_assert_eq(it_wait_state(cl, small, 0, 30000), ST(COMPLETED));
  cr_assert_eq(it_wait_state(cl, excl, ST(RUNNING), 30000), ST(RUNNING));
  char path[440];
  snprintf(path, sizeof path, "%s/excl-%s.out", c.dir, sx);
  for (int i = 0; i < 500 && !file_has(path, "cpus="); i++)
    it_sleep_ms(20);
  cr_assert(file_has(path, "cpus=2 ty=2 task=2"), "the task does not see the whole node (%s)",
            path);
  for (int i = 0; i < 500 && !file_has(path, "quota="); i++)
    it_sleep_ms(20);
  char *seen = it_read_text(path);
  const char *cg = seen ? strstr(seen, "mem=") : NULL;
  unsigned long long mem_mib = 0, lim_mib = 0;
  cr_assert(cg && sscanf(cg, "mem=%llu lim=%llu", &mem_mib, &lim_mib) == 2, "%s", seen);
  cr_assert_gt(mem_mib, 0, "no memory given, yet it holds the node's: %s", seen);
  if (it_worker_has_cgroups(&c)) {
    cr_assert_eq(lim_mib, mem_mib, "the job's cgroup is not limited to the node's memory: %s",
                 seen);
    cr_assert(strstr(cg, "quota=200000") || strstr(cg, "quota=200000 100000"),
              "the rank's CPU quota is not the node's 2 CPUs: %s", seen);
  }
  free(seen);

  /* Nothing else starts on its node while it runs. */
  uint64_t after = submit(cl, "true", &(job_opts){.cpus = 1});
  id_str(after, sb);
  char holder[96];
  snprintf(holder, sizeof holder, "allocated whole to exclusive job %s", sx);
  out = ctl_until(&c, (const char *[]){"why", sb, NULL}, holder);
  free(out);
  cr_assert_eq(it_job_state(cl, after), ST(PENDING), "a job started on a node held whole");
  touch(&c, "finish-excl");
  cr_assert_eq(it_wait_state(cl, excl, 0, 30000), ST(COMPLETED));
  cr_assert_eq(it_wait_state(cl, after, 0, 30000), ST(COMPLETED));

  /* Accounting: the node's CPUs, not the one asked for. */
  out = ctl_until(&c, (const char *[]){"history", "--format", "id,cpus", NULL}, sx);
  char line[64];
  snprintf(line, sizeof line, "%s", sx);
  const char *at = strstr(out, line);
  cr_assert(at, "%s", out);
  unsigned long long got_id = 0;
  unsigned cpus = 0;
  cr_assert_eq(sscanf(at, "%llu %u", &got_id, &cpus), 2, "%s", out);
  cr_assert_eq(cpus, 2u, "history charges %u CPUs: %s", cpus, out);
  free(out);

  /* A value sbatch does not know is refused, naming it. */
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *[]){"submit", "--exclusive=topo", "--wrap", "true", NULL}),
      2, "%s", err);
  cr_assert(strstr(err, "--exclusive: \"topo\" is not user or mcs"), "%s", err);
  free(out), free(err);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- -w/--nodelist and -x/--exclude ------------------------------------------------------- */

/* The nodes job id was placed on (GetJob's), comma-joined into buf. */
static const char *placed_on(ty_rpc_client *cl, uint64_t id, char *buf, size_t len) {
  Trainyard__GetJobResponse *r = it_get_job(cl, id);
  cr_assert(r && r->job);
  buf[0] = '\0';
  for (size_t i = 0; i < r->job->n_nodes; i++) {
    size_t at = strlen(buf);
    snprintf(buf + at, len - at, "%s%s", i ? "," : "", r->job->nodes[i]);
  }
  trainyard__get_job_response__free_unpacked(r, NULL);
  return buf;
}

/* `trainctl submit -q ARGS...`'s job id (the submit must succeed). */
static uint64_t submit_ctl(const it_cluster *c, const char *const *args) {
  const char *full[16] = {"submit", "-q"};
  size_t n = 2;
  for (; args[n - 2] && n < 15; n++)
    full[n] = args[n - 2];
  full[n] = NULL;
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_trainctl_err(c, &out, &err, full), 0, "submit %s: %s", args[0], err);
  uint64_t id = strtoull(out, NULL, 10);
  free(out), free(err);
  cr_assert_gt(id, 0);
  return id;
}

/* Three workers of 2 CPUs: -w w2 runs on w2; jobs of -x w1 never run on
 * w1 while it is free (the third waits, its reason counting the excluded
 * node), a job required on a busy node waits naming the job there, an
 * unknown name and a node both required and excluded are refused at
 * submit, naming them; the lists survive a controller restart (show, ls
 * --format reqnodes,excnodes), and the waiting jobs start on their nodes
 * once those are free. */
Test(scheduler, nodelist_and_exclude_pin_and_avoid_nodes, .timeout = 180) {
  it_cluster c;
  start(&c, 3, 2);
  ty_rpc_client *cl = it_client(&c);
  char nodes[128], hold[400], sid[24], sx[24], sw[24], want[256];
  uint64_t pinned = submit_ctl(&c, (const char *[]){"-w", "w2", "--wrap", "true", NULL});
  cr_assert_eq(it_wait_state(cl, pinned, 0, 30000), ST(COMPLETED));
  cr_assert_str_eq(placed_on(cl, pinned, nodes, sizeof nodes), "w2");

  /* Two whole-node jobs that avoid w1 take w2 and w3; a third waits, w1 free. */
  snprintf(hold, sizeof hold, "while [ ! -e %s/finish-x ]; do sleep 0.05; done", c.dir);
  uint64_t x[3];
  for (int k = 0; k < 3; k++)
    x[k] = submit_ctl(&c, (const char *[]){"-x", "w1", "-c", "2", "--wrap", hold, NULL});
  cr_assert_eq(it_wait_state(cl, x[0], ST(RUNNING), 30000), ST(RUNNING));
  cr_assert_eq(it_wait_state(cl, x[1], ST(RUNNING), 30000), ST(RUNNING));
  char a[128], b[128];
  placed_on(cl, x[0], a, sizeof a), placed_on(cl, x[1], b, sizeof b);
  cr_assert(strcmp(a, "w1") && strcmp(b, "w1") && strcmp(a, b), "ran on %s and %s", a, b);
  id_str(x[2], sx);
  char *out = ctl_until(&c, (const char *[]){"why", sx, NULL},
                        "Resources: needs 1 node with 2 free CPUs; 0 have; node w1 is excluded "
                        "(-x)");
  free(out);
  cr_assert_eq(it_job_state(cl, x[2]), ST(PENDING), "a job of -x w1 started while w1 was free");

  /* -w on a busy node waits naming the job there; w1 is still free. */
  uint64_t busy = submit_ctl(&c, (const char *[]){"-w", a, "--wrap", "true", NULL});
  id_str(busy, sw), id_str(x[0], sid);
  snprintf(want, sizeof want, "waiting for required node %s: it runs job %s", a, sid);
  out = ctl_until(&c, (const char *[]){"why", sw, NULL}, want);
  free(out);

  /* Refused at submit, naming what is wrong. */
  char *err = NULL;
  cr_assert_neq(it_trainctl_err(&c, &out, &err,
                                (const char *[]){"submit", "-w", "w[2,9]", "--wrap", "true", NULL}),
                0);
  cr_assert(strstr(err, "Invalid node name specified: w9 is not a node of this cluster"), "%s",
            err);
  free(out), free(err);
  cr_assert_neq(it_trainctl_err(&c, &out, &err,
                                (const char *[]){"submit", "-x", "nosuch", "--wrap", "true", NULL}),
                0);
  cr_assert(strstr(err, "Invalid node name specified: nosuch"), "%s", err);
  free(out), free(err);
  cr_assert_neq(it_trainctl_err(
                    &c, &out, &err,
                    (const char *[]){"submit", "-w", "w2", "-x", "w[1-2]", "--wrap", "true", NULL}),
                0);
  cr_assert(strstr(err, "node w2 is both required (-w/--nodelist) and excluded"), "%s", err);
  free(out), free(err);
  cr_assert_neq(it_trainctl_err(&c, &out, &err,
                                (const char *[]){"submit", "-w", "w[3-1]", "--wrap", "true", NULL}),
                0);
  cr_assert(strstr(err, "--nodelist: hostlist \"w[3-1]\": the range \"3-1\" is reversed"), "%s",
            err);
  free(out), free(err);

  /* The controller restarts: the lists are still the job's. */
  ty_rpc_client_close(cl);
  it_kill9(&c.traind);
  it_controller_start(&c);
  cl = it_client(&c);
  out = ctl_until(&c, (const char *[]){"why", sx, NULL}, "; node w1 is excluded (-x)");
  free(out);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"show", sx, NULL}), 0);
  cr_assert(strstr(out, "exclude:") && strstr(out, "w1 (never used, -x)"), "lost: %s", out);
  free(out);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"show", sw, NULL}), 0);
  snprintf(want, sizeof want, "%s (required, -w)", a);
  cr_assert(strstr(out, "nodelist:") && strstr(out, want), "lost: %s", out);
  free(out);
  cr_assert_eq(ctl(&c, &out, (const char *[]){"ls", "--format", "id,reqnodes,excnodes", NULL}), 0);
  cr_assert(strstr(out, "REQ_NODES") && strstr(out, "EXC_NODES") && strstr(out, "w1"), "%s", out);
  free(out);
  cr_assert_eq(it_job_state(cl, x[2]), ST(PENDING));

  /* Their nodes free: the waiting jobs start there, never on w1. */
  touch(&c, "finish-x");
  for (int k = 0; k < 3; k++)
    cr_assert_eq(it_wait_state(cl, x[k], 0, 30000), ST(COMPLETED));
  cr_assert_eq(it_wait_state(cl, busy, 0, 30000), ST(COMPLETED));
  cr_assert_str_neq(placed_on(cl, x[2], nodes, sizeof nodes), "w1");
  cr_assert_str_eq(placed_on(cl, busy, nodes, sizeof nodes), a);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- reloading the config ------------------------------------------------------------ */

/* Rewrites the cluster's --config with its start's lines and `more`. */
static void rewrite_config(const it_cluster *c, const char *more) {
  FILE *f = fopen(c->config, "w");
  cr_assert(f, "%s: %s", c->config, strerror(errno));
  fprintf(f, "auth.nodes = w[1-%d]\npreempt.min_run = 0\npreempt.grace = 5\n%s\n", IT_MAX_WORKERS,
          more);
  fclose(f);
}

/* Sends traind SIGHUP and waits until its log has said `text` n times. */
static void reload(const it_cluster *c, const char *text, int n) {
  char path[300];
  snprintf(path, sizeof path, "%s/traind.stderr", c->dir);
  cr_assert_eq(kill(c->traind, SIGHUP), 0);
  for (int i = 0; i < 500; i++) {
    char *log = it_read_text(path);
    int seen = 0;
    for (const char *p = log; p && (p = strstr(p, text)); p++)
      seen++;
    free(log);
    if (seen >= n) return;
    it_sleep_ms(20);
  }
  cr_assert_fail("traind never logged \"%s\" %d times after SIGHUP (%s)", text, n, path);
}

static void expect_why(const it_cluster *c, const char *id, const char *text) {
  char *out = NULL;
  cr_assert_eq(ctl(c, &out, (const char *const[]){"why", id, NULL}), 0);
  cr_assert(strstr(out, text), "want \"%s\" in:\n%s", text, out);
  free(out);
}

/* SIGHUP (systemctl reload) reads --config again, as slurmctld's
 * reconfigure: a good file applies at once (the job priority weight shows
 * in why); a file that does not parse, or that changes how workers
 * authenticate, is refused with the reason in the log, and the controller
 * keeps running with the settings it had. */
Test(scheduler, sighup_reloads_the_config_and_keeps_it_when_the_new_one_is_bad, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  job_opts o = {.cpus = 1};
  uint64_t run = submit(cl, "sleep 60", &o), wait = submit(cl, "sleep 60", &o);
  cr_assert_eq(it_wait_state(cl, run, ST(RUNNING), 30000), ST(RUNNING));
  char id[32];
  snprintf(id, sizeof id, "%llu", (unsigned long long)wait);
  expect_why(&c, id, "job priority 5000"); /* the default weight, 10000, of 0.5 */
  rewrite_config(&c, "weight.priority = 2000");
  reload(&c, "read again and applied", 1);
  expect_why(&c, id, "job priority 1000");
  rewrite_config(&c, "weight.priority = 2000\nweight.bogus = 1");
  reload(&c, "refused, the running settings stay: line 5: unknown key \"weight.bogus\"", 1);
  rewrite_config(&c, "auth.service_user = nobody");
  reload(&c, "refused, the running settings stay: auth.service_user differs", 1);
  cr_assert_eq(kill(c.traind, 0), 0, "traind died on SIGHUP");
  expect_why(&c, id, "job priority 1000");
  /* The controller still schedules: the waiting job starts when the first ends. */
  char rid[32];
  snprintf(rid, sizeof rid, "%llu", (unsigned long long)run);
  cr_assert_eq(ctl(&c, NULL, (const char *const[]){"cancel", rid, NULL}), 0);
  cr_assert_eq(it_wait_state(cl, wait, ST(RUNNING), 30000), ST(RUNNING));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
