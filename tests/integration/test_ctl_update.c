/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl job update's task layout (scontrol update NumTasks=,
 * MinCPUsNode=, Gres=): --ntasks-per-node, -c/--cpus-per-task and
 * --gres/--gpus-per-node/--gpus (per node, as submit's command line takes
 * it) on a pending command job, parsed and limited as
 * submit parses and limits them, checked together against the cluster's
 * largest node, recorded with who. Part of the ctl program (test_ctl.c
 * has the other job update options); a graph job's refusal is in
 * test_graph.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"

/* trainctl ARGS as uid/gid (0: as the test runs): its exit status, with
 * stdout and stderr in *out and *err (the caller frees). */
static int run_as(const it_cluster *c, uid_t uid, gid_t gid, char **out, char **err,
                  const char *const *args) {
  return uid ? it_trainctl_as(c, uid, gid, "/", out, err, args)
             : it_trainctl_err(c, out, err, args);
}

/* `trainctl show ID --json` holds want. */
static void expect_shown(const it_cluster *c, const char *id, const char *want) {
  char *out = NULL;
  cr_assert_eq(it_trainctl(c, &out, (const char *const[]){"show", id, "--json", NULL}), 0);
  cr_assert(strstr(out, want), "job %s: want %s in %s", id, want, out);
  free(out);
}

/* The refusals: each update's exit code and words; the job unchanged. */
static void layout_refusals(const it_cluster *c, const char *id, uid_t uid, gid_t gid) {
  const struct {
    const char *opt, *val;
    int code;
    const char *says;
    uid_t as;
  } bad[] = {
      {"-c", "0", 2, "--cpus: ", 0},
      {"--ntasks-per-node", "two", 2, "--ntasks-per-node: ", 0},
      {"--gres", "disk:1", 2, "--gres: \"disk:1\" is not gpu[:TYPE]:N", 0},
      {"--ntasks-per-node", "2000", 1, "layout of job ",
       0}, /* submit's limit: job.resources.tasks_per_node */
      {"--ntasks-per-node", "3", 1, "is 6 CPUs but the largest node has 2", 0},
      {"--gres", "gpu:1", 1, "gpus_per_node is 1 but the largest node has 0 GPUs", 0},
      {"-G", "1", 1, "the largest node has 0 GPUs", 0},
      /* --gpus as submit's command line takes it: GPUs per node. */
      {"--gpus", "1", 1, "gpus_per_node is 1 but the largest node has 0 GPUs", 0},
      {"--gpus", "many", 2, "--gpus: \"many\" is not a non-negative integer", 0},
      {"-c", "1", 1, "permission denied: it belongs to", uid},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    char *out = NULL, *err = NULL;
    int code = run_as(c, bad[i].as, gid, &out, &err,
                      (const char *const[]){"job", "update", id, bad[i].opt, bad[i].val, NULL});
    cr_assert_eq(code, bad[i].code, "%s %s: %d: %s", bad[i].opt, bad[i].val, code, err);
    cr_assert(strstr(err, bad[i].says), "%s %s: %s", bad[i].opt, bad[i].val, err);
    if (i == 3)
      cr_assert(strstr(err, "tasks_per_node: 2000 is above the limit of 1024"), "%s", err);
    free(out), free(err);
  }
  expect_shown(c, id, "\"tasks_per_node\":1,\"gpus_per_node\":0,\"cpus_per_task\":2");
}

Test(ctl, job_update_layout_changes_a_pending_job, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  char *out = NULL, *err = NULL, id[32], busy_id[32];
  /* One of the node's two CPUs busy: a job of 2 CPUs waits. */
  uint64_t busy = it_submit_cli(&c, (const char *const[]){"--", "sleep", "30", NULL});
  cr_assert_eq(it_wait_state(cl, busy, TRAINYARD__JOB_STATE__JOB_RUNNING, 30000),
               TRAINYARD__JOB_STATE__JOB_RUNNING);
  uint64_t job = it_submit_cli(&c, (const char *const[]){"-c", "2", "--", "true", NULL});
  snprintf(id, sizeof id, "%llu", (unsigned long long)job);
  snprintf(busy_id, sizeof busy_id, "%llu", (unsigned long long)busy);
  cr_assert_eq(it_job_state(cl, job), TRAINYARD__JOB_STATE__JOB_PENDING);

  char user[64];
  uid_t uid;
  gid_t gid;
  it_user_add(user, sizeof user, &uid, &gid);
  layout_refusals(&c, id, uid, gid);
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *const[]){"job", "update", busy_id, "-c", "2", NULL}),
               1);
  cr_assert(strstr(err, "is RUNNING; only a pending job's tasks per node, CPUs per task and GPUs "
                        "per node can change"),
            "%s", err);
  free(out), free(err);

  /* Two tasks of one CPU for one task of two: one change, checked whole
   * (two tasks of two CPUs would not fit), still two CPUs: it waits. */
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *const[]){"job", "update", id, "--ntasks-per-node", "2",
                                            "--cpus-per-task", "1", "--gres", "gpu:0", NULL}),
      0, "%s", err);
  free(out), free(err);
  expect_shown(&c, id, "\"tasks_per_node\":2,\"gpus_per_node\":0,\"cpus_per_task\":1");
  expect_shown(&c, id, "tasks per node 1 -> 2, CPUs per task 2 -> 1 by root");
  cr_assert_eq(it_job_state(cl, job), TRAINYARD__JOB_STATE__JOB_PENDING);
  /* One task: it fits beside the busy job and starts. */
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *const[]){"job", "update", id, "--ntasks-per-node", "1", NULL}),
      0, "%s", err);
  free(out), free(err);
  cr_assert_eq(it_wait_state(cl, job, TRAINYARD__JOB_STATE__JOB_COMPLETED, 30000),
               TRAINYARD__JOB_STATE__JOB_COMPLETED);

  /* An array: every pending element, by their owner. */
  cr_assert_eq(run_as(&c, uid, gid, &out, &err,
                      (const char *const[]){"submit", "--parsable", "-H", "-a", "0-2", "--command",
                                            "--", "true", NULL}),
               0, "%s", err);
  snprintf(id, sizeof id, "%llu", strtoull(out, NULL, 10));
  free(out), free(err);
  cr_assert_eq(
      run_as(&c, uid, gid, &out, &err, (const char *const[]){"job", "update", id, "-c", "2", NULL}),
      0, "%s", err);
  cr_assert(strstr(out, "task layout applied to 3 elements"), "%s", out);
  free(out), free(err);
  char last[48];
  snprintf(last, sizeof last, "%s_2", id);
  expect_shown(&c, last, "\"cpus_per_task\":2");
  char want[96];
  snprintf(want, sizeof want, "CPUs per task 1 -> 2 by %s", user);
  expect_shown(&c, last, want);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* The job's other constraints hold after the change: a layout that only
 * the larger node can hold is refused for a job of two nodes (-N 2) and
 * for one pinned to the smaller (-w), and taken by a job free to use the
 * larger. */
Test(ctl, job_update_layout_keeps_nodes_and_nodelist, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  c.n_workers = 2;
  it_worker_start(&c, 1, 4); /* w1 has 2 CPUs, w2 4 */
  ty_rpc_client *cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 2, TRAINYARD__NODE_STATE__NODE_UP, 10000));
  ty_rpc_client_close(cl);
  const struct {
    const char *opts[3];
    const char *says; /* NULL: taken */
  } cases[] = {
      {{"-N", "2", NULL}, "resources.nodes is 2 but only 1 nodes can hold one slot each"},
      {{"-w", "w1", NULL}, "node w1 cannot hold one slot of the job (it has 2 CPUs"},
      {{"-t", "5", NULL}, NULL},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(cases); i++) {
    char id[32], *out = NULL, *err = NULL;
    uint64_t job = it_submit_cli(
        &c, (const char *const[]){"-H", cases[i].opts[0], cases[i].opts[1], "--", "true", NULL});
    snprintf(id, sizeof id, "%llu", (unsigned long long)job);
    int code = it_trainctl_err(&c, &out, &err,
                               (const char *const[]){"job", "update", id, "-c", "3", NULL});
    cr_assert_eq(code, cases[i].says ? 1 : 0, "%s %s: %s", cases[i].opts[0], cases[i].opts[1], err);
    if (cases[i].says) cr_assert(strstr(err, cases[i].says), "%s", err);
    free(out), free(err);
    expect_shown(&c, id, cases[i].says ? "\"cpus_per_task\":1" : "\"cpus_per_task\":3");
  }
  it_cluster_stop(&c);
}
