/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl's followers across a controller restart, killed (-9) or stopped
 * and started again as an upgrade does (SIGTERM, then a new traind on the
 * same state): `submit -W` and `top` reconnect with a backoff and go on,
 * so -W exits with the job's own exit code rather than trainctl's "lost
 * the controller" (docs/cluster-protocol.md: a client reconnects and sends
 * WatchJob again). `watch`, which needs a graph job, is tested with the
 * graph jobs (test_graph_plan_cli.c). A job being requeued when the
 * controller restarts during its kill grace is still requeued, signalled
 * once. A kill sent while one of the job's workers was away reaches it
 * when it registers. A job whose worker has not registered again takes no
 * change (it may have ended there); an array's change names such an
 * element and exits 1, and a signal reaches every element or none. `cancel` and `job
 * hold`/`release` sent while the controller is down are retried until it is back, as submit is. A
 * controller whose state is gone gives job ids again, and the new job's log is its own. A
 * controller whose load outlasts the node timeout leaves the jobs running on its nodes alone. Part
 * of the ctl program.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/integration/harness.h"

static size_t count(const char *text, const char *needle) {
  size_t n = 0;
  for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

Test(ctl_restart, submit_wait_and_top_outlast_a_controller_restart, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  char log[400], top_log[400];
  /* top -n 6 beside the first submit -W: all six screens, one of them from
   * the controller after the kill -9 (its six seconds are the job's). */
  snprintf(top_log, sizeof top_log, "%s/top.log", c.dir);
  pid_t t =
      it_trainctl_spawn(&c, top_log, (const char *const[]){"top", "-d", "1", "-n", "6", NULL});
  it_wait_log(top_log, "trainyard top");
  for (int kill9 = 1; kill9 >= 0; kill9--) {
    const char *how = kill9 ? "kill -9" : "SIGTERM";
    snprintf(log, sizeof log, "%s/wait-%s.log", c.dir, kill9 ? "kill9" : "term");
    pid_t w = it_trainctl_spawn(&c, log,
                                (const char *const[]){"submit", "-W", "--quiet", "--command", "--",
                                                      "sh", "-c", "sleep 6; exit 3", NULL});
    it_wait_log(log, "\n"); /* the id: submitted, now waiting */
    it_sleep_ms(1000);
    it_controller_restart(&c, kill9);
    int rc = it_wait_exit(w, log, 60000);
    char *text = it_read_text(log);
    cr_assert_eq(rc, 3, "%s: submit -W exited %d, not the job's exit code 3:\n%s", how, rc, text);
    cr_assert(strstr(text, "reconnecting"), "%s: no word of the lost controller:\n%s", how, text);
    free(text);
    if (!kill9) continue;
    rc = it_wait_exit(t, top_log, 60000);
    text = it_read_text(top_log);
    cr_assert_eq(rc, 0, "top exited %d:\n%s", rc, text);
    cr_assert_eq(count(text, "trainyard top "), 6, "%s", text);
    free(text);
  }
  it_cluster_stop(&c);
}

/* Waits until the file at path holds `want`; fails the test after 30 s. */
static void wait_text(const char *path, const char *want) {
  char *text = NULL;
  for (int i = 0; i < 600 && (!(text = it_read_text(path)) || !strstr(text, want)); i++) {
    free(text), text = NULL;
    it_sleep_ms(50);
  }
  cr_assert(text, "%s never held \"%s\"", path, want);
  free(text);
}

/* Whether the process whose pid the file at path holds is gone (reaped)
 * within ms. */
static bool wait_gone(const char *path, int ms) {
  char *text = it_read_text(path);
  pid_t pid = text ? (pid_t)atoi(text) : 0;
  free(text);
  cr_assert_gt(pid, 0, "no pid in %s", path);
  for (int waited = 0; waited < ms; waited += 50) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return true;
    it_sleep_ms(50);
  }
  return false;
}

/* `job requeue` of a job whose rank outlives SIGTERM, the controller
 * stopped and started again during the kill grace: the kill is in the
 * job's row (kill_sent, requeue_asked), so the new controller neither
 * signals the rank again nor lets the worker's SIGKILL at the grace's end
 * make it FAILED: it is requeued and its second run completes. */
Test(ctl_restart, a_requeue_outlives_a_restart_during_its_kill_grace, .timeout = 180) {
  it_cluster c;
  it_cluster_start_with(
      &c, 1, 2, &(it_options){.traind_args = (const char *const[]){"--kill-grace-s", "8", NULL}});
  char runs[400], script[1200], ids[32], *out = NULL;
  snprintf(runs, sizeof runs, "%s/runs.txt", c.dir);
  snprintf(script, sizeof script,
           "echo \"start ${SLURM_RESTART_COUNT:-0}\" >> %s; [ -z \"$SLURM_RESTART_COUNT\" ] || "
           "exit 0; trap 'echo TERM >> %s' TERM; while :; do sleep 0.2; done",
           runs, runs);
  uint64_t id = it_submit_cli(&c, (const char *const[]){"--", "sh", "-c", script, NULL});
  wait_text(runs, "start 0\n");
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  it_trainctl_ok(&c, &out, (const char *const[]){"job", "requeue", ids, NULL});
  free(out);
  wait_text(runs, "TERM\n");
  it_controller_restart(&c, false);
  ty_rpc_client *cl = it_client(&c);
  int end = it_wait_state(cl, id, 0, 60000);
  ty_rpc_client_close(cl);
  char *text = it_read_text(runs);
  cr_assert_eq(end, TRAINYARD__JOB_STATE__JOB_COMPLETED,
               "job %s ended %d, not requeued and COMPLETED; its runs said:\n%s", ids, end, text);
  cr_assert(text && !strcmp(text, "start 0\nTERM\nstart 1\n"),
            "one SIGTERM, then the requeued run; the runs said:\n%s", text);
  free(text);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, NULL});
  cr_assert(strstr(out, "requeued as asked (trainctl job requeue)"), "%s", out);
  free(out);
  it_cluster_stop(&c);
}

/* A controller whose load takes longer than --node-timeout-ms (a store of
 * a few hundred thousand live jobs; TRAINYARD_TEST_LOAD_HOLD_MS stands in
 * for it) gives its nodes the timeout from when it listens: the worker
 * registers again, and the job running there runs on, once, to the end. */
Test(ctl_restart, a_slow_load_leaves_the_running_jobs_alone, .timeout = 180) {
  static const char *const no_fence[] = {"--lease-ms", "0", NULL}; /* no fence while it loads */
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.worker_args = no_fence, .node_timeout_ms = 8000});
  char runs[400], script[1000], ids[32], *out = NULL;
  snprintf(runs, sizeof runs, "%s/runs.txt", c.dir);
  snprintf(script, sizeof script, "echo start >> %s; sleep 20; echo end >> %s", runs, runs);
  uint64_t id = it_submit_cli(&c, (const char *const[]){"--", "sh", "-c", script, NULL});
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  wait_text(runs, "start\n");
  it_kill9(&c.traind);
  setenv("TRAINYARD_TEST_LOAD_HOLD_MS", "10000", 1); /* longer than the node timeout */
  it_controller_start(&c);
  unsetenv("TRAINYARD_TEST_LOAD_HOLD_MS");
  ty_rpc_client *cl = it_client(&c);
  int end = it_wait_state(cl, id, 0, 60000);
  ty_rpc_client_close(cl);
  char *text = it_read_text(runs);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, NULL});
  cr_assert_eq(end, TRAINYARD__JOB_STATE__JOB_COMPLETED, "job %s ended %d:\n%s", ids, end, out);
  cr_assert(text && !strcmp(text, "start\nend\n"), "one run to its end; the runs said:\n%s", text);
  cr_assert(!strstr(out, "NODE_FAIL") && !strstr(out, "requeued after"), "%s", out);
  free(text);
  free(out);
  it_cluster_stop(&c);
}

/* A cancelled job whose rank outlives SIGTERM, the controller restarted
 * during the kill grace: the new controller finds the rank of a job it no
 * longer runs and kills it, which the worker, already terminating it, takes
 * without a second SIGTERM; the grace's SIGKILL ends it. */
Test(ctl_restart, a_cancel_is_signalled_once_across_a_restart_during_its_grace, .timeout = 180) {
  it_cluster c;
  it_cluster_start_with(
      &c, 1, 2, &(it_options){.traind_args = (const char *const[]){"--kill-grace-s", "8", NULL}});
  char runs[400], pid_file[400], script[1600], ids[32], *out = NULL;
  snprintf(runs, sizeof runs, "%s/runs.txt", c.dir);
  snprintf(pid_file, sizeof pid_file, "%s/rank.pid", c.dir);
  snprintf(script, sizeof script,
           "echo $$ > %s; echo start >> %s; trap 'echo TERM >> %s' TERM; while :; do sleep 0.2; "
           "done",
           pid_file, runs, runs);
  uint64_t id = it_submit_cli(&c, (const char *const[]){"--", "sh", "-c", script, NULL});
  wait_text(runs, "start\n");
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  it_trainctl_ok(&c, &out, (const char *const[]){"cancel", ids, NULL});
  free(out);
  wait_text(runs, "TERM\n");
  it_controller_restart(&c, false);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, id, 0, 60000), TRAINYARD__JOB_STATE__JOB_CANCELLED);
  ty_rpc_client_close(cl);
  /* The grace's SIGKILL ends the rank: whatever it said is in runs then. */
  cr_assert(wait_gone(pid_file, 30000), "the rank outlived its grace by 20 s (logs in %s)", c.dir);
  char *text = it_read_text(runs);
  cr_assert(text && !strcmp(text, "start\nTERM\n"), "one SIGTERM; the rank said:\n%s", text);
  free(text);
  it_cluster_stop(&c);
}

/* A rank fails while the controller is down and the other rank's worker
 * is paused (SIGSTOP): the restarted controller hears of the failure from
 * the first worker to register and kills the job, while the paused one is
 * not connected; it gets the KillTask when it registers, so its rank is
 * killed and the job ends FAILED, rather than running on (and RUNNING)
 * until that rank ends by itself. */
Test(ctl_restart, a_kill_reaches_a_worker_that_registers_after_it_was_sent, .timeout = 180) {
  it_cluster c; /* a lease long enough that the paused worker does not fence its rank */
  it_cluster_start_with(&c, 2, 2, &(it_options){.node_timeout_ms = 30000});
  char runs[400], go[400], failing[400], script[2000], ids[32], *out = NULL;
  snprintf(runs, sizeof runs, "%s/runs.txt", c.dir);
  snprintf(go, sizeof go, "%s/go", c.dir);
  snprintf(failing, sizeof failing, "%s/failing", c.dir);
  /* Rank 1 exits 7 once the test says go (the controller is down then). */
  snprintf(script, sizeof script,
           "if [ \"$TRAINYARD_NODE\" = %s ]; then while [ ! -e %s ]; do sleep 0.05; done; "
           "touch %s; exit 7; fi; echo start >> %s; sleep 60; echo end >> %s",
           c.name[1], go, failing, runs, runs);
  uint64_t id = it_submit_quiet(
      &c, (const char *const[]){"-N", "2", "--command", "--", "sh", "-c", script, NULL});
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  wait_text(runs, "start\n");
  kill(c.worker[0], SIGSTOP); /* rank 0's worker: back only after the kill was sent */
  int st;
  kill(c.traind, SIGTERM);
  waitpid(c.traind, &st, 0);
  c.traind = 0;
  cr_assert_eq(close(open(go, O_WRONLY | O_CREAT, 0644)), 0, "%s", go);
  wait_text(failing, ""); /* rank 1 exits 7 ... */
  it_sleep_ms(500);       /* ... and its worker has seen it */
  it_controller_start(&c);
  ty_rpc_client *cl = it_client(&c);
  bool back = it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000);
  it_sleep_ms(1000); /* the failure reported, the kill sent to the node that is back */
  kill(c.worker[0], SIGCONT);
  cr_assert(back, "%s did not register again", c.name[1]);
  int end = it_wait_state(cl, id, 0, 25000); /* well before rank 0's 60 s */
  ty_rpc_client_close(cl);
  cr_assert_eq(end, TRAINYARD__JOB_STATE__JOB_FAILED, "job %s ended %d, not FAILED", ids, end);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, NULL});
  cr_assert(strstr(out, "rank 1 exited with code 7"), "%s", out);
  free(out);
  char *text = it_read_text(runs);
  cr_assert(text && !strcmp(text, "start\n"), "rank 0 ran to its end:\n%s", text);
  free(text);
  it_cluster_stop(&c);
}

/* Asserts that trainctl ARGS fails, its stderr naming `node` as not
 * registered since traind started. */
static void refused_until_back(const it_cluster *c, const char *node, const char *const *args) {
  char *out = NULL, *err = NULL;
  int rc = it_trainctl_err(c, &out, &err, args);
  cr_assert_neq(rc, 0, "%s %s was taken while its node was away:\n%s", args[0], args[1], out);
  cr_assert(err && strstr(err, node) && strstr(err, "has not registered since traind started") &&
                strstr(err, "once the node is back"),
            "%s", err);
  free(out);
  free(err);
}

/* A job that ends while the controller is down (kill -9), its worker not
 * registered again yet: the restarted controller holds it RUNNING, but
 * whether it still runs is not known, so `job update --time` and `job
 * priority` are refused naming the node, not recorded as changes to a
 * running job ahead of its earlier end; `job hold`, which only a pending
 * job takes, is refused as for any running job. Once the worker registers the job
 * is COMPLETED and its history goes forward in time. */
Test(ctl_restart, a_job_whose_node_is_not_back_takes_no_change, .timeout = 180) {
  static const char *const no_fence[] = {"--lease-ms", "0", NULL}; /* it ends on its own */
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.worker_args = no_fence, .node_timeout_ms = 30000});
  char ids[32], begun[400], mark[400], script[1000];
  snprintf(begun, sizeof begun, "%s/begun-mark", c.dir);
  snprintf(mark, sizeof mark, "%s/ended-mark", c.dir);
  snprintf(script, sizeof script, "touch %s; sleep 2; touch %s", begun, mark);
  uint64_t id = it_submit_cli(&c, (const char *const[]){"--", "sh", "-c", script, NULL});
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  wait_text(begun, ""); /* its task runs on the worker */
  it_kill9(&c.traind);
  wait_text(mark, "");        /* the job ends meanwhile */
  it_sleep_ms(1000);          /* and its worker has seen it end */
  kill(c.worker[0], SIGSTOP); /* back only when the test says */
  it_controller_start(&c);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_job_state(cl, id), TRAINYARD__JOB_STATE__JOB_RUNNING);
  refused_until_back(&c, c.name[0],
                     (const char *const[]){"job", "update", ids, "--time", "5", NULL});
  refused_until_back(&c, c.name[0], (const char *const[]){"job", "priority", ids, "7", NULL});
  char *out = NULL, *err = NULL; /* a hold never applies to it: no use waiting for the node */
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *const[]){"job", "hold", ids, NULL}), 0,
                "%s", out);
  cr_assert(strstr(err, "only pending jobs can be held") && !strstr(err, "node is back"), "%s",
            err);
  free(out), free(err);
  kill(c.worker[0], SIGCONT);
  cr_assert_eq(it_wait_state(cl, id, 0, 30000), TRAINYARD__JOB_STATE__JOB_COMPLETED);
  Trainyard__GetJobResponse *g = it_get_job(cl, id);
  for (size_t i = 0; i < g->n_events; i++) {
    cr_expect(!strstr(g->events[i]->reason, "priority") && !strstr(g->events[i]->reason, "limit"),
              "event %zu: %s", i, g->events[i]->reason);
    cr_expect(i == 0 || g->events[i]->time_ms >= g->events[i - 1]->time_ms,
              "event %zu (%s) is before the one above it", i, g->events[i]->reason);
  }
  char all[4096] = "";
  for (size_t i = 0, k = 0; i < g->n_events && k < sizeof all; i++)
    k += (size_t)snprintf(all + k, sizeof all - k, "\n  %lld %d->%d %s",
                          (long long)g->events[i]->time_ms, g->events[i]->from_state,
                          g->events[i]->to_state, g->events[i]->reason);
  cr_expect_eq(g->events[g->n_events - 1]->to_state, TRAINYARD__JOB_STATE__JOB_COMPLETED,
               "the last event is not the end:%s", all);
  trainyard__get_job_response__free_unpacked(g, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* Runs trainctl ARGS, which must fail with `want` on stderr. */
static void fails_saying(const it_cluster *c, const char *want, const char *const *args) {
  char *out = NULL, *err = NULL;
  int rc = it_trainctl_err(c, &out, &err, args);
  cr_assert_neq(rc, 0, "%s %s exited 0:\n%s%s", args[0], args[1], out, err);
  cr_assert(err && strstr(err, want), "no \"%s\" in:\n%s", want, err);
  free(out);
  free(err);
}

/* An array with an element on each of two workers, one of them not
 * registered again after a controller restart: `job update ARRAY --time`
 * changes the element whose node is back, warns naming the other and
 * exits 1; `cancel -s` signals no element (all or none) and exits 1. */
Test(ctl_restart, an_array_change_reports_the_element_whose_node_is_away, .timeout = 180) {
  it_cluster c;
  it_cluster_start_with(&c, 2, 2, &(it_options){.node_timeout_ms = 30000});
  char ids[32], want[128];
  uint64_t a = it_submit_quiet(&c, (const char *const[]){"-a", "0-1", "--cpus", "2", "--time", "10",
                                                         "--wrap", "sleep 300", NULL});
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)a);
  ty_rpc_client *cl = it_client(&c);
  for (uint64_t e = a; e < a + 2; e++)
    cr_assert_eq(it_wait_state(cl, e, TRAINYARD__JOB_STATE__JOB_RUNNING, 30000),
                 TRAINYARD__JOB_STATE__JOB_RUNNING);
  ty_rpc_client_close(cl);
  kill(c.worker[1], SIGSTOP); /* back only when the test says */
  int st;
  kill(c.traind, SIGTERM);
  waitpid(c.traind, &st, 0);
  c.traind = 0;
  it_controller_start(&c);
  cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000));
  snprintf(want, sizeof want, "warning: 1 element not changed: job %llu_", (unsigned long long)a);
  fails_saying(&c, want, (const char *const[]){"job", "update", ids, "--time", "20", NULL});
  fails_saying(&c, c.name[1], (const char *const[]){"job", "update", ids, "--time", "20", NULL});
  fails_saying(&c, "no element was signalled",
               (const char *const[]){"cancel", "-s", "USR1", ids, NULL});
  kill(c.worker[1], SIGCONT);
  char *out = NULL;
  it_trainctl_ok(&c, &out, (const char *const[]){"cancel", ids, NULL});
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* Starts `trainctl --timeout 30 ARGS...` into DIR/NAME.log. */
static pid_t spawn_logged(const it_cluster *c, char *log, size_t len, const char *name,
                          const char *const *args) {
  snprintf(log, len, "%s/%s.log", c->dir, name);
  return it_trainctl_spawn(c, log, args);
}

/* Waits for the trainctl at pid to exit 0 having said it retried and
 * then `want`. */
static void expect_retried(pid_t pid, const char *log, const char *want) {
  int rc = it_wait_exit(pid, log, 60000);
  char *text = it_read_text(log);
  cr_assert_eq(rc, 0, "%s exited %d across the restart:\n%s", log, rc, text);
  cr_expect(strstr(text, "retrying"), "%s: no word of the retry:\n%s", log, text);
  cr_expect(strstr(text, want), "%s: no \"%s\":\n%s", log, want, text);
  free(text);
}

/* The controller stopped (as for maintenance), `cancel ID`, `job hold ID`
 * and `job release ID` started meanwhile, then the controller started
 * again: each is sent once it is back and succeeds, as submit's. */
Test(ctl_restart, cancel_hold_and_release_wait_out_a_stopped_controller, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  char ran[32], held[32], pending[32];
  uint64_t r = it_submit_cli(&c, (const char *const[]){"--", "sleep", "300", NULL});
  uint64_t h = it_submit_cli(&c, (const char *const[]){"-H", "--", "true", NULL});
  uint64_t p = it_submit_cli(&c, (const char *const[]){"-b", "now+1h", "--", "true", NULL});
  snprintf(ran, sizeof ran, "%llu", (unsigned long long)r);
  snprintf(held, sizeof held, "%llu", (unsigned long long)h);
  snprintf(pending, sizeof pending, "%llu", (unsigned long long)p);
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, r, TRAINYARD__JOB_STATE__JOB_RUNNING, 30000),
               TRAINYARD__JOB_STATE__JOB_RUNNING);
  ty_rpc_client_close(cl);
  int st;
  kill(c.traind, SIGTERM);
  waitpid(c.traind, &st, 0);
  c.traind = 0;
  char logs[3][400];
  pid_t cancel = spawn_logged(&c, logs[0], sizeof logs[0], "cancel",
                              (const char *const[]){"--timeout", "30", "cancel", ran, NULL});
  pid_t release =
      spawn_logged(&c, logs[1], sizeof logs[1], "release",
                   (const char *const[]){"--timeout", "30", "job", "release", held, NULL});
  pid_t hold = spawn_logged(&c, logs[2], sizeof logs[2], "hold",
                            (const char *const[]){"--timeout", "30", "job", "hold", pending, NULL});
  it_wait_log(logs[0], "retrying");
  it_sleep_ms(1000);
  it_controller_start(&c);
  expect_retried(cancel, logs[0], "Cancelled job");
  expect_retried(release, logs[1], "PENDING");
  expect_retried(hold, logs[2], ", held");
  cl = it_client(&c);
  cr_expect_eq(it_wait_state(cl, r, TRAINYARD__JOB_STATE__JOB_CANCELLED, 30000),
               TRAINYARD__JOB_STATE__JOB_CANCELLED);
  cr_expect_eq(it_wait_state(cl, h, 0, 30000), TRAINYARD__JOB_STATE__JOB_COMPLETED,
               "released job %s did not run", held);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A controller whose state is gone (reset, or restored from an older
 * backup) gives job ids again; a worker keeps the earlier job's directory.
 * The new job with the old id must start with a log of its own: the
 * worker tells the two jobs apart by their submit times (LaunchTask's
 * job_submit_ms, worker/job_dir.c's stamp), never appends to or hands
 * over the earlier job's output. */
Test(ctl_restart, a_reused_job_id_never_shows_the_earlier_jobs_log, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  char err[256], state[300], sid[24];
  uint64_t first = 0, second = 0;
  cr_assert_eq(it_submit_sh(cl, "echo output-of-the-earlier-job", "one", &first, err, sizeof err),
               0, "%s", err);
  cr_assert_eq(it_wait_state(cl, first, 0, 30000), TRAINYARD__JOB_STATE__JOB_COMPLETED);
  ty_rpc_client_close(cl);
  kill(c.traind, SIGTERM);
  waitpid(c.traind, NULL, 0);
  c.traind = 0;
  snprintf(state, sizeof state, "rm -rf '%s/traind'", c.dir);
  cr_assert_eq(system(state), 0, "%s", state);
  it_controller_start(&c);
  cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000));
  cr_assert_eq(it_submit_sh(cl, "echo output-of-the-new-job", "two", &second, err, sizeof err), 0,
               "%s", err);
  cr_assert_eq(second, first, "the reset controller did not give the id again");
  cr_assert_eq(it_wait_state(cl, second, 0, 30000), TRAINYARD__JOB_STATE__JOB_COMPLETED);
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)second);
  char *out = NULL;
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"logs", sid, NULL}), 0);
  cr_expect(strstr(out, "output-of-the-new-job"), "%s", out);
  cr_expect(!strstr(out, "output-of-the-earlier-job"), "the earlier job's log shows: %s", out);
  free(out);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
