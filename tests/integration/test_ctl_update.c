/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl job update on a pending command job: its node count (-N), its
 * memory (--mem, with --time, -p, --priority, --nice and -J beside it) and
 * its task layout (scontrol update NumTasks=, MinCPUsNode=, Gres=):
 * --ntasks-per-node, -c/--cpus-per-task and --gres/--gpus-per-node/--gpus
 * (per node, as submit's command line takes it), parsed and limited as
 * submit parses and limits them, checked together against the cluster's
 * largest node, recorded with who. Part of the ctl program (test_ctl.c
 * has --time and the Slurm user's habits); a graph job's refusals are in
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

/* job update -N/--nodes (scontrol update NumNodes=): a pending job's node
 * count, recorded with who; more nodes than the cluster
 * has, fewer than its -w list, a running job and a bad count are refused,
 * naming why (a graph job's: test_graph.c). */
Test(ctl, job_update_nodes_resizes_a_pending_job, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 2, 1);
  char *out = NULL, *err = NULL, ids[32];
  uint64_t id = it_submit_cli(&c, (const char *const[]){"-H", "--", "true", NULL});
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  it_trainctl_ok(&c, &out, (const char *const[]){"job", "update", ids, "-N", "2", NULL});
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, "--json", NULL});
  cr_assert(strstr(out, "\"nodes\":2") && strstr(out, "nodes 1 -> 2 by root"), "%s", out);
  free(out);
  const struct {
    const char *count;
    int code;
    const char *says;
  } bad[] = {{"3", 1, "nodes of job"}, {"0", 2, "--nodes"}, {"two", 2, "--nodes"}};
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    cr_assert_eq(
        it_trainctl_err(&c, &out, &err,
                        (const char *const[]){"job", "update", ids, "--nodes", bad[i].count, NULL}),
        bad[i].code, "-N %s: %s", bad[i].count, err);
    cr_assert(strstr(err, bad[i].says), "-N %s: %s", bad[i].count, err);
    free(out), free(err);
  }
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, "--json", NULL});
  cr_assert(strstr(out, "\"nodes\":2"), "a refused count changed the job: %s", out);
  free(out);
  char w[64];
  snprintf(w, sizeof w, "%s,%s", c.name[0], c.name[1]);
  uint64_t pinned = it_submit_cli(&c, (const char *const[]){"-H", "-w", w, "--", "true", NULL});
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)pinned);
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err, (const char *const[]){"job", "update", ids, "-N", "1", NULL}),
      1);
  cr_assert(strstr(err, "1 is fewer than the 2 nodes it requires (-w/--nodelist"), "%s", err);
  free(out), free(err);
  uint64_t running = it_submit_cli(&c, (const char *const[]){"--", "sleep", "30", NULL});
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, running, TRAINYARD__JOB_STATE__JOB_RUNNING, 60000),
               TRAINYARD__JOB_STATE__JOB_RUNNING);
  ty_rpc_client_close(cl);
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)running);
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err, (const char *const[]){"job", "update", ids, "-N", "2", NULL}),
      1);
  cr_assert(strstr(err, "only pending jobs can be resized"), "%s", err);
  free(out), free(err);
  it_cluster_stop(&c);
}

/* job update --mem (scontrol update MinMemoryNode): a pending job's memory
 * per node; with --time in one command; recorded with who; an owner lowers
 * it, only an operator raises it (0 is no limit, the highest); a running
 * job, an --exclusive job, a bad size and more than the largest node has
 * are refused, naming why. Its
 * -p/--partition, --priority and --nice (scontrol's Partition=, Priority=,
 * Nice=) follow job move's and job priority's rules. */
Test(ctl, job_update_mem_changes_a_pending_jobs_memory, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  char *out = NULL, *err = NULL, ids[32];
  uint64_t id = it_submit_cli(&c, (const char *const[]){"-H", "--mem", "4000", "--", "true", NULL});
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  it_trainctl_ok(&c, &out,
                 (const char *const[]){"job", "update", ids, "--mem", "8G", "--time", "30m", NULL});
  cr_assert(strstr(out, "time limit 30:00") && strstr(out, "memory per node 8"), "%s", out);
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, "--json", NULL});
  cr_assert(strstr(out, "\"mem_per_node\":8589934592"), "--mem 8G not applied: %s", out);
  cr_assert(strstr(out, "memory per node 4000 MiB -> 8192 MiB by root"), "no event: %s", out);
  free(out);
  /* More than any node has: refused as at submit, the job unchanged. */
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *const[]){"job", "update", ids, "--mem", "100000G", NULL}),
      1, "%s", err);
  cr_assert(strstr(err, "memory of job") && strstr(err, "but the largest node has"), "%s", err);
  free(out), free(err);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, "--json", NULL});
  cr_assert(strstr(out, "\"mem_per_node\":8589934592"), "a refused --mem changed it: %s", out);
  free(out);
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *const[]){"job", "update", ids, "--mem", "lots", NULL}),
               2);
  cr_assert(strstr(err, "--mem") && strstr(err, "lots"), "%s", err);
  free(out), free(err);
  cr_assert_eq(it_trainctl_err(&c, &out, &err, (const char *const[]){"job", "update", ids, NULL}),
               2);
  cr_assert(strstr(err, "give what to change: --time LIMIT, --mem SIZE, -N/--nodes N, "
                        "--ntasks-per-node N, -c/--cpus-per-task N, --gres gpu:N (-G/--gpus N: "
                        "per node), -p/--partition QUEUE"),
            "%s", err);
  free(out), free(err);
  /* scontrol's Partition=, Nice= and Priority= as job update options: the
   * rules of job move and job priority (below: the owner's). */
  it_trainctl_ok(&c, &out, (const char *const[]){"queue", "create", "q2", NULL});
  free(out);
  it_trainctl_ok(&c, &out,
                 (const char *const[]){"job", "update", ids, "-p", "q2", "--nice", "5", NULL});
  cr_assert(strstr(out, "queue q2, priority -5"), "%s", out);
  free(out);
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *const[]){"job", "update", ids, "--partition", "nosuch", NULL}),
      1);
  cr_assert(strstr(err, "unknown queue \"nosuch\" (the queues are: default, q2)"), "%s", err);
  free(out), free(err);
  /* sbatch -p with a queue that does not exist: the refusal lists them. */
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *const[]){"submit", "-p", "nosuch", "--wrap", "true", NULL}),
      5);
  cr_assert(strstr(err, "unknown queue \"nosuch\" (-p/--partition; the queues are: default, q2)"),
            "%s", err);
  free(out), free(err);
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *const[]){"job", "update", ids, "--priority", "1",
                                                     "--nice", "1", NULL}),
               2);
  cr_assert(strstr(err, "--priority and --nice both set the priority"), "%s", err);
  free(out), free(err);
  /* JobName=: recorded, shown; a name too long, a job that is no array's
   * throttle, and an ended job are refused, naming why. */
  it_trainctl_ok(&c, &out, (const char *const[]){"job", "update", ids, "-J", "renamed", NULL});
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, NULL});
  cr_assert(strstr(out, "(renamed)") && strstr(out, "name \"true\" -> \"renamed\" by root"), "%s",
            out);
  free(out);
  char long_name[1100];
  memset(long_name, 'x', sizeof long_name - 1), long_name[sizeof long_name - 1] = '\0';
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *const[]){"job", "update", ids, "--name", long_name, NULL}),
      1);
  cr_assert(strstr(err, "name: longer than 256 bytes"), "%s", err);
  free(out), free(err);
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *const[]){"job", "update", ids, "--name", "two\nlines", NULL}),
      1);
  cr_assert(strstr(err, "name: control character 0x0a at offset 3 (it is shown on one line)"), "%s",
            err);
  free(out), free(err);
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *const[]){"job", "update", ids, "--name", "", NULL}),
               2);
  cr_assert(strstr(err, "--name: must not be empty"), "%s", err);
  free(out), free(err);
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *const[]){"job", "update", ids, "--array-throttle", "2", NULL}),
      1);
  cr_assert(strstr(err, "is not an array: --array-throttle is an array's %N"), "%s", err);
  free(out), free(err);

  char user[64];
  uid_t uid;
  gid_t gid;
  it_user_add(user, sizeof user, &uid, &gid);
  cr_assert_eq(it_trainctl_as(&c, uid, gid, "/", &out, &err,
                              (const char *const[]){"submit", "--parsable", "-H", "--mem", "1G",
                                                    "--command", "--", "true", NULL}),
               0, "%s", err);
  uint64_t mine = strtoull(out, NULL, 10);
  free(out), free(err);
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)mine);
  const char *raises[] = {"2G", "0"}, *to[] = {"2048 MiB", "no limit"};
  for (int i = 0; i < 2; i++) {
    cr_assert_neq(
        it_trainctl_as(&c, uid, gid, "/", &out, &err,
                       (const char *const[]){"job", "update", ids, "--mem", raises[i], NULL}),
        0, "a user raised their job's memory to %s: %s", raises[i], out);
    char want[96];
    snprintf(want, sizeof want, "only operators raise a memory limit (1024 MiB -> %s)", to[i]);
    cr_assert(strstr(err, want), "want %s: %s", want, err);
    free(out), free(err);
  }
  cr_assert_eq(it_trainctl_as(&c, uid, gid, "/", &out, &err,
                              (const char *const[]){"job", "update", ids, "--mem", "512M", NULL}),
               0, "the owner could not lower it: %s", err);
  free(out), free(err);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, "--json", NULL});
  cr_assert(strstr(out, "\"mem_per_node\":536870912"), "--mem 512M not applied: %s", out);
  free(out);
  /* A user may nice their job (lower its priority), not raise it. */
  cr_assert_eq(it_trainctl_as(&c, uid, gid, "/", &out, &err,
                              (const char *const[]){"job", "update", ids, "--nice", "10", NULL}),
               0, "the owner could not nice it: %s", err);
  cr_assert(strstr(out, "priority -10"), "%s", out);
  free(out), free(err);
  cr_assert_neq(it_trainctl_as(&c, uid, gid, "/", &out, &err,
                               (const char *const[]){"job", "update", ids, "--nice=-10", NULL}),
                0, "a user raised their job's priority: %s", out);
  cr_assert(strstr(err, "only operators raise a priority (-10 -> 10)"), "%s", err);
  free(out), free(err);
  /* ... nor submit one above 0 (sbatch --priority is an operator's). */
  const char *raised[] = {"--priority=5", "--nice=-5"};
  for (int i = 0; i < 2; i++) {
    cr_assert_neq(
        it_trainctl_as(&c, uid, gid, "/", &out, &err,
                       (const char *const[]){"submit", "-H", raised[i], "--wrap", "true", NULL}),
        0, "a user submitted above priority 0: %s", out);
    cr_assert(strstr(err, "job.priority: 5: only operators submit above 0"), "%s", err);
    free(out), free(err);
  }
  cr_assert_eq(
      it_trainctl_as(&c, uid, gid, "/", &out, &err,
                     (const char *const[]){"submit", "-H", "--nice=5", "--wrap", "true", NULL}),
      0, "a user could not submit niced: %s", err);
  free(out), free(err);

  uint64_t excl = it_submit_cli(&c, (const char *const[]){"-H", "--exclusive", "--", "true", NULL});
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)excl);
  cr_assert_neq(it_trainctl_err(&c, &out, &err,
                                (const char *const[]){"job", "update", ids, "--mem", "1G", NULL}),
                0);
  cr_assert(strstr(err, "--exclusive"), "%s", err);
  free(out), free(err);
  /* Dependency=: a pending job's conditions replaced, then removed; what
   * cannot be is refused naming why (bad syntax at trainctl; itself, a
   * later job, an unknown one at traind). */
  char older[64], dep[96];
  snprintf(older, sizeof older, "%llu", (unsigned long long)mine);
  snprintf(dep, sizeof dep, "afterany:%s", older);
  it_trainctl_ok(&c, &out, (const char *const[]){"job", "update", ids, "-d", dep, NULL});
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, NULL});
  cr_assert(strstr(out, "dependency none -> afterany:") && strstr(out, "depends on:  afterany:"),
            "%s", out);
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"job", "update", ids, "--dependency", "", NULL});
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, NULL});
  cr_assert(strstr(out, "-> none by root") && !strstr(out, "depends on:"), "%s", out);
  free(out);
  snprintf(dep, sizeof dep, "afterok:%s", ids);
  const struct {
    const char *job, *dep, *says;
    int exit;
  } bad_deps[] = {
      {ids, "bogus:1", "--dependency: \"bogus\" is not after", 2},
      {ids, dep, "cannot wait for itself", 1},
      {older, dep, "is not older than job", 1},
      {ids, "afterok:999999", "job 999999 not found", 4},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(bad_deps); i++) {
    cr_assert_eq(it_trainctl_err(&c, &out, &err,
                                 (const char *const[]){"job", "update", bad_deps[i].job, "-d",
                                                       bad_deps[i].dep, NULL}),
                 bad_deps[i].exit, "%s", bad_deps[i].dep);
    cr_assert(strstr(err, bad_deps[i].says), "want %s: %s", bad_deps[i].says, err);
    free(out), free(err);
  }
  uint64_t run =
      it_submit_cli(&c, (const char *const[]){"--mem", "64M", "--", "sleep", "60", NULL});
  ty_rpc_client *cl = it_client(&c);
  Trainyard__GetJobResponse *r = it_wait_job(cl, run, TRAINYARD__JOB_STATE__JOB_RUNNING, 60000);
  cr_assert(r, "job %llu never ran", (unsigned long long)run);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)run);
  cr_assert_neq(it_trainctl_err(&c, &out, &err,
                                (const char *const[]){"job", "update", ids, "--mem", "32M", NULL}),
                0);
  cr_assert(strstr(err, "only pending jobs can be given another memory limit"), "%s", err);
  free(out), free(err);
  it_trainctl_ok(&c, &out,
                 (const char *const[]){"job", "update", ids, "-J", "still-running", NULL});
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"cancel", ids, NULL});
  free(out);
  cr_assert_neq(it_trainctl_err(&c, &out, &err,
                                (const char *const[]){"job", "update", ids, "-J", "late", NULL}),
                0);
  cr_assert(strstr(err, "is already CANCELLED"), "%s", err);
  free(out), free(err);
  it_cluster_stop(&c);
}
