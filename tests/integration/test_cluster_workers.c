/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A worker lost or stopped under its jobs, through a real traind and real
 * trainworkerd processes on loopback: kill -9 (its tasks die with it, the
 * jobs end NODE_FAIL and are requeued, or not with --no-requeue) and a
 * stop (SIGTERM: the node takes nothing more, its jobs lose their node and
 * keep how their ranks ended), and a node that cannot start tasks for its
 * own reason (drained, its job requeued elsewhere). Behaviour only, never wall-clock time; the
 * bounds are there so a broken build fails instead of hanging. The rest of
 * the cluster's tests are in test_cluster.c.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "tests/integration/harness.h"

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x

/* ---- worker loss ----------------------------------------------------------- */

/* Whether process pid is gone: no such process, or a zombie. */
static bool process_gone(pid_t pid) {
  char path[64], *stat;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  if (!(stat = it_read_text(path))) return true;
  const char *state = strrchr(stat, ')');
  bool zombie = state && (state[2] == 'Z' || state[2] == 'X');
  free(stat);
  return zombie;
}

/* The killed worker's task dies with it (its fence, worker/fence.c): the
 * job's requeued run is then the only one. */
Test(cluster, killed_worker_ends_jobs_node_fail_and_requeues, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id;
  char err[256];
  /* The marker file makes the second run finish at once. */
  char script[2048], pid_file[300];
  snprintf(pid_file, sizeof pid_file, "%s/sleep.pid", c.dir);
  snprintf(script, sizeof script,
           "if [ -e %s/ran ]; then exit 0; fi; touch %s/ran; sleep 30 & echo $! > %s.tmp; "
           "mv %s.tmp %s; wait",
           c.dir, c.dir, pid_file, pid_file, pid_file);
  cr_assert_eq(it_submit_sh(cl, script, "victim", &id, err, sizeof err), 0, "%s", err);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, ST(RUNNING), 30000);
  cr_assert(r && r->job->n_nodes == 1, "job never ran");
  size_t victim = strcmp(r->job->nodes[0], c.name[0]) == 0 ? 0 : 1;
  trainyard__get_job_response__free_unpacked(r, NULL);
  char *pid_text = NULL;
  for (int i = 0; i < 1500 && !(pid_text = it_read_text(pid_file)); i++)
    it_sleep_ms(20);
  cr_assert(pid_text, "the task never wrote %s", pid_file);
  pid_t task = (pid_t)atoi(pid_text);
  free(pid_text);
  cr_assert(task > 1 && !process_gone(task));
  it_kill9(&c.worker[victim]);
  for (int i = 0; i < 500 && !process_gone(task); i++)
    it_sleep_ms(20);
  cr_assert(process_gone(task), "the task (pid %d) outlived its killed worker", (int)task);

  r = it_wait_job(cl, id, ST(COMPLETED), 60000);
  cr_assert(r, "job was not requeued and completed elsewhere; logs in %s", c.dir);
  cr_assert_geq(r->job->requeue_count, 1u);
  cr_assert_str_neq(r->job->nodes[0], c.name[victim]);
  bool saw_node_fail = false;
  for (size_t i = 0; i < r->n_events; i++)
    if ((int)r->events[i]->to_state == ST(NODE_FAIL)) saw_node_fail = true;
  cr_assert(saw_node_fail, "no NODE_FAIL event recorded");
  trainyard__get_job_response__free_unpacked(r, NULL);
  it_expect_run_state(&c, id, 1, "NODE_FAIL");
  it_expect_run_state(&c, id, 2, "COMPLETED");
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_DOWN, 10000));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* sbatch --no-requeue: a job whose worker is killed ends NODE_FAIL (final,
 * with the reason, in show and history, and after a controller restart)
 * and never runs again, while a default job on another lost node is
 * requeued and completes on the third. `job requeue` is refused for it (as
 * scontrol's is); afternotok on it runs, afterok never does; an array's
 * every element carries the policy. */
static void wait_path(const char *path) {
  for (int i = 0; i < 1500 && access(path, F_OK) != 0; i++)
    it_sleep_ms(20);
  cr_assert_eq(access(path, F_OK), 0, "never made: %s", path);
}

Test(cluster, killed_worker_ends_a_no_requeue_job_node_fail_for_good, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 3, 1);
  ty_rpc_client *cl = it_client(&c);
  char a_script[1024], b_script[1024], a_runs[300], b_ran[300];
  snprintf(a_runs, sizeof a_runs, "%s/a-runs", c.dir);
  snprintf(b_ran, sizeof b_ran, "%s/b-ran", c.dir);
  snprintf(a_script, sizeof a_script, "echo run >> %s; sleep 60", a_runs);
  snprintf(b_script, sizeof b_script, "if [ -e %s ]; then exit 0; fi; touch %s; sleep 60", b_ran,
           b_ran);
  uint64_t a = it_submit_cli(&c, (const char *[]){"--no-requeue", "--name", "once", "--", "/bin/sh",
                                                  "-c", a_script, NULL});
  uint64_t b = it_submit_cli(&c, (const char *[]){"--", "/bin/sh", "-c", b_script, NULL});
  wait_path(a_runs), wait_path(b_ran);
  size_t victims[2];
  uint64_t ids[2] = {a, b};
  for (size_t k = 0; k < 2; k++) {
    Trainyard__GetJobResponse *r = it_wait_job(cl, ids[k], ST(RUNNING), 30000);
    cr_assert(r && r->job->n_nodes == 1, "job %llu never ran", (unsigned long long)ids[k]);
    victims[k] = 0;
    while (victims[k] < 3 && strcmp(r->job->nodes[0], c.name[victims[k]]) != 0)
      victims[k]++;
    cr_assert_lt(victims[k], 3u);
    trainyard__get_job_response__free_unpacked(r, NULL);
  }
  cr_assert_neq(victims[0], victims[1], "one CPU per node: two nodes");
  it_kill9(&c.worker[victims[0]]);
  it_kill9(&c.worker[victims[1]]);

  Trainyard__GetJobResponse *r = it_wait_job(cl, a, ST(NODE_FAIL), 60000);
  cr_assert(r, "the no-requeue job did not end NODE_FAIL; logs in %s", c.dir);
  cr_assert(strstr(r->job->reason, "DOWN") && strstr(r->job->reason, "not requeued (--no-requeue)"),
            "%s", r->job->reason);
  cr_assert_eq(r->job->requeue_count, 0u);
  bool to_pending = false;
  for (size_t i = 0; i < r->n_events; i++)
    to_pending |= (int)r->events[i]->to_state == ST(PENDING) && r->events[i]->from_state != 0;
  cr_assert(!to_pending, "the no-requeue job went back to PENDING");
  trainyard__get_job_response__free_unpacked(r, NULL);

  r = it_wait_job(cl, b, ST(COMPLETED), 60000);
  cr_assert(r, "the default job was not requeued and completed elsewhere; logs in %s", c.dir);
  cr_assert_geq(r->job->requeue_count, 1u);
  trainyard__get_job_response__free_unpacked(r, NULL);
  cr_assert_eq(it_job_state(cl, a), ST(NODE_FAIL), "still NODE_FAIL");
  cr_assert_eq(it_count_lines(a_runs), 1, "the no-requeue job ran again");

  char sa[24], dep_ok[64], dep_notok[64], *out = NULL, *err = NULL;
  snprintf(sa, sizeof sa, "%llu", (unsigned long long)a);
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *[]){"job", "requeue", sa, NULL}), 0,
                "%s", out);
  cr_assert(err && strstr(err, "was submitted with --no-requeue and is never requeued"), "%s", err);
  free(out), free(err);
  cr_assert_eq(it_job_state(cl, a), ST(NODE_FAIL));
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", sa, NULL}), 0);
  cr_assert(strstr(out, "NODE_FAIL") && strstr(out, "no-requeue (--no-requeue)") &&
                strstr(out, "exit code:"),
            "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", "--json", sa, NULL}), 0);
  cr_assert(strstr(out, "\"no_requeue\":true") && strstr(out, "\"state\":\"NODE_FAIL\""), "%s",
            out);
  free(out);
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *[]){"history", "--state", "NODE_FAIL", "--json", NULL}),
      0);
  cr_assert(strstr(out, "\"state\":\"NODE_FAIL\"") && strstr(out, "not requeued (--no-requeue)"),
            "%s", out);
  free(out);

  snprintf(dep_ok, sizeof dep_ok, "afterok:%s", sa);
  snprintf(dep_notok, sizeof dep_notok, "afternotok:%s", sa);
  uint64_t ok = it_submit_cli(&c, (const char *[]){"--dependency", dep_ok, "--kill-on-invalid-dep",
                                                   "yes", "--", "true", NULL});
  uint64_t notok =
      it_submit_cli(&c, (const char *[]){"--dependency", dep_notok, "--", "true", NULL});
  cr_assert_eq(it_wait_state(cl, notok, 0, 60000), ST(COMPLETED), "afternotok on NODE_FAIL");
  r = it_wait_job(cl, ok, 0, 60000);
  cr_assert(r && (int)r->job->state == ST(CANCELLED), "afterok on NODE_FAIL never runs");
  cr_assert(strstr(r->job->reason, "DependencyNeverSatisfied"), "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);

  uint64_t arr =
      it_submit_cli(&c, (const char *[]){"--no-requeue", "-H", "--array=0-1", "--", "true", NULL});
  char s1[24];
  snprintf(s1, sizeof s1, "%llu", (unsigned long long)arr + 1);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", "--json", s1, NULL}), 0);
  cr_assert(strstr(out, "\"no_requeue\":true"), "the array's second element: %s", out);
  free(out);

  /* Final in the store too: a restarted controller does not load it live. */
  it_kill9(&c.traind);
  it_controller_start(&c);
  ty_rpc_client_close(cl);
  cl = it_client(&c);
  cr_assert_eq(it_job_state(cl, a), ST(NODE_FAIL));
  cr_assert_eq(it_trainctl_err(&c, NULL, NULL, (const char *[]){"job", "requeue", sa, NULL}) != 0,
               true);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- worker stop ------------------------------------------------------------ */

/* A worker stopped by SIGTERM exits 0 (reaped). */
static void reap_worker(pid_t *pid) {
  int st = 0;
  cr_assert_eq(waitpid(*pid, &st, 0), *pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker exited with status %d", st);
  *pid = 0;
}

static size_t node_of(const it_cluster *c, ty_rpc_client *cl, uint64_t id) {
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, ST(RUNNING), 30000);
  cr_assert(r && r->job->n_nodes == 1, "job %llu never ran", (unsigned long long)id);
  size_t i = 0;
  while (i < c->n_workers && strcmp(r->job->nodes[0], c->name[i]) != 0)
    i++;
  cr_assert_lt(i, c->n_workers);
  trainyard__get_job_response__free_unpacked(r, NULL);
  return i;
}

/* A worker that is stopped (SIGTERM: systemctl stop or restart) tells the
 * controller first: its node takes nothing more ("worker shutting down"),
 * and the jobs its stop killed lose their node instead of failing on the
 * signal. A requeueable job runs again on the one node not stopping (the
 * one whose task ignores SIGTERM keeps its worker, still connected and
 * free once the SIGKILL came, for the whole grace); a --no-requeue job ends
 * NODE_FAIL saying why. The restarted worker's node is UP again. */
Test(cluster, stopped_worker_requeues_its_jobs_and_takes_no_new_ones, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 3, 1);
  ty_rpc_client *cl = it_client(&c);
  char a_script[1024], b_script[1024], a_ran[300], b_runs[300];
  snprintf(a_ran, sizeof a_ran, "%s/a-ran", c.dir);
  snprintf(b_runs, sizeof b_runs, "%s/b-runs", c.dir);
  snprintf(a_script, sizeof a_script,
           "if [ -e %s ]; then exit 0; fi; trap '' TERM; touch %s; sleep 60", a_ran, a_ran);
  snprintf(b_script, sizeof b_script, "echo run >> %s; sleep 60", b_runs);
  uint64_t a = it_submit_cli(&c, (const char *[]){"--", "/bin/sh", "-c", a_script, NULL});
  uint64_t b =
      it_submit_cli(&c, (const char *[]){"--no-requeue", "--", "/bin/sh", "-c", b_script, NULL});
  wait_path(a_ran), wait_path(b_runs);
  size_t x = node_of(&c, cl, a), y = node_of(&c, cl, b), z = 3 - x - y;
  cr_assert_neq(x, y, "one CPU per node: two nodes");
  cr_assert_eq(kill(c.worker[x], SIGTERM), 0); /* as systemctl stop sends it */
  cr_assert_eq(kill(c.worker[y], SIGTERM), 0);

  /* x's task ignores SIGTERM: its worker stays the grace, leaving, and
   * says so first. Its node's event says so for good ("worker shutting
   * down" in `node ls` lasts only the grace, a window a loaded machine's
   * polling can miss). */
  char *out = NULL;
  bool leaving = false;
  for (int64_t end = ty_mono_ms() + 30000; !leaving && ty_mono_ms() < end;) {
    free(out);
    cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"node", "show", c.name[x], "--json", NULL}),
                 0);
    const char *ev = strstr(out, "\"action\":\"stopping\"");
    leaving = ev && strstr(ev, "\"reason\":\"worker shutting down\"");
    if (!leaving) it_sleep_ms(50);
  }
  cr_assert(leaving, "%s's node never said its worker was shutting down (logs in %s): %s",
            c.name[x], c.dir, out);
  free(out);
  reap_worker(&c.worker[x]);
  reap_worker(&c.worker[y]);

  Trainyard__GetJobResponse *r = it_wait_job(cl, a, ST(COMPLETED), 60000);
  cr_assert(r, "the stopped worker's job was not requeued and completed; logs in %s", c.dir);
  cr_assert_geq(r->job->requeue_count, 1u);
  cr_assert_str_eq(r->job->nodes[0], c.name[z], "requeued onto a stopping node");
  bool saw = false;
  for (size_t i = 0; i < r->n_events; i++)
    saw |= (int)r->events[i]->to_state == ST(NODE_FAIL) && strstr(r->events[i]->reason, "stopped");
  cr_assert(saw, "no NODE_FAIL event saying the worker was stopped");
  trainyard__get_job_response__free_unpacked(r, NULL);

  r = it_wait_job(cl, b, ST(NODE_FAIL), 60000);
  cr_assert(r, "the no-requeue job did not end NODE_FAIL; logs in %s", c.dir);
  cr_assert(strstr(r->job->reason, "was stopped") &&
                strstr(r->job->reason, "not requeued (--no-requeue)"),
            "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  cr_assert_eq(it_count_lines(b_runs), 1, "the no-requeue job ran again");

  it_worker_start(&c, x, 1);
  cr_assert(it_wait_nodes(cl, 2, TRAINYARD__NODE_STATE__NODE_UP, 30000),
            "the restarted worker's node is not UP again");
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A worker stopped while its rank ran ends the rank itself and says how
 * (killed by SIGTERM) and what it used: the run's rank record is that --
 * its process SIGNALED 0:15, its CPU time and peak memory measured where
 * the worker has cgroups -- while the job is requeued, the run NODE_FAIL,
 * as for any lost node (not UNKNOWN 0:0 with the allocation). */
Test(cluster, stopped_worker_records_how_its_rank_ended, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  char script[512], ran[300];
  snprintf(ran, sizeof ran, "%s/ran", c.dir);
  snprintf(script, sizeof script,
           "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; touch %s; sleep 60", ran);
  uint64_t id = it_submit_cli(&c, (const char *[]){"--", "/bin/sh", "-c", script, NULL});
  wait_path(ran);
  cr_assert_eq(kill(c.worker[0], SIGTERM), 0);
  reap_worker(&c.worker[0]);
  it_wait_state(cl, id, ST(PENDING), 30000);

  char sid[24], *out = NULL;
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *[]){"history", "-j", sid, "--ranks", "--json", NULL}), 0);
  const char *rank = strstr(out, "\"ranks\":[{");
  cr_assert(rank, "no rank record: %s", out);
  cr_assert(strstr(rank, "\"state\":\"SIGNALED\",\"run_state\":\"NODE_FAIL\","
                         "\"exit_code\":0,\"term_signal\":15,"),
            "the stopped rank's record is not its worker's report (logs in %s): %s", c.dir, rank);
  if (it_worker_has_cgroups(&c))
    cr_assert(strstr(rank, "\"accounting\":\"measured\"") && !strstr(rank, "\"mem_peak_bytes\":0,"),
              "the stopped rank's usage was not kept: %s", rank);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* ---- a node that cannot launch --------------------------------------------- */

/* A node whose job directories cannot be made (here its jobs/ is a file;
 * in life a full disk, no descriptors) fails the launch for the node's
 * reason, not the job's: the controller drains it ("drained by controller:
 * launch failed: ...") and requeues the job, which completes on the other
 * node, instead of failing every job sent there. Two one-CPU nodes and two
 * jobs: one of them is placed on the broken node. */
Test(cluster, node_that_cannot_make_job_dirs_is_drained_and_its_job_requeued, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  ty_rpc_client *cl = it_client(&c);
  char jobs[300];
  snprintf(jobs, sizeof jobs, "%s/%s/jobs", c.dir, c.name[0]);
  rmdir(jobs);
  FILE *f = fopen(jobs, "w");
  cr_assert(f, "cannot replace %s by a file", jobs);
  fclose(f);
  uint64_t id[2];
  for (int i = 0; i < 2; i++)
    id[i] = it_submit_cli(&c, (const char *[]){"--", "/bin/sh", "-c", "sleep 1", NULL});
  for (int i = 0; i < 2; i++) {
    Trainyard__GetJobResponse *r = it_wait_job(cl, id[i], ST(COMPLETED), 60000);
    cr_assert(r, "job %llu did not complete (logs in %s)", (unsigned long long)id[i], c.dir);
    cr_assert_str_eq(r->job->nodes[0], c.name[1], "job %llu ran on the broken node",
                     (unsigned long long)id[i]);
    trainyard__get_job_response__free_unpacked(r, NULL);
  }
  char *out = NULL;
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"node", "show", c.name[0], "--json", NULL}),
               0);
  cr_assert(strstr(out, "\"state\":\"DRAIN") &&
                strstr(out, "drained by controller: launch failed: cannot create job directory ") &&
                strstr(out, "Not a directory") && strstr(out, "\"action\":\"drain\""),
            "the broken node was not drained for its launch failure (logs in %s): %s", c.dir, out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
