/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scheduler integration tests of placement, through a real traind (started
 * with a --config file) and real trainworkerd processes: exclusive
 * (whole-node) jobs, and -w/--nodelist and -x/--exclude pinning jobs to
 * nodes and keeping them off others. The rest of the scheduler's tests are
 * in test_scheduler.c (the same test binary). They check states, files the
 * tasks write and the CLI's output, never wall-clock time.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"
#include "tests/integration/sched_helpers.h"

/* ---- exclusive (whole-node) jobs ---------------------------------------------------------- */

/* Polls `trainctl ARGS...` until its output holds `text`; returns it. */
static char *ctl_until(const it_cluster *c, const char *const *args, const char *text) {
  char last[2048] = "";
  for (int i = 0; i < 300; i++) {
    char *out = NULL;
    int rc = it_trainctl(c, &out, args);
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
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", sx, NULL}), 0);
  cr_assert(strstr(out, "exclusive:") && strstr(out, "whole nodes"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"ls", "--format", "id,exclusive", NULL}), 0);
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
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", sx, NULL}), 0);
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
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", sx, NULL}), 0);
  cr_assert(strstr(out, "exclude:") && strstr(out, "w1 (never used, -x)"), "lost: %s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"show", sw, NULL}), 0);
  snprintf(want, sizeof want, "%s (required, -w)", a);
  cr_assert(strstr(out, "nodelist:") && strstr(out, want), "lost: %s", out);
  free(out);
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *[]){"ls", "--format", "id,reqnodes,excnodes", NULL}), 0);
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
