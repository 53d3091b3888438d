/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The limits an operator sets for shared nodes (docs/security.md,
 * "Limits"): a queue's default and maximum memory per node (Slurm's
 * DefMemPerNode and MaxMemPerNode), the cluster's default memory in
 * traind's --config (reloaded on SIGHUP), and trainworkerd's
 * --max-pids-per-job (a fork bomb stops at the job's pids.max, and the
 * node starts the next job). Part of the ctl program (test_ctl.c has the
 * other trainctl commands).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define ST(s) TRAINYARD__JOB_STATE__JOB_##s

/* trainctl ARGS: its exit status, with stdout and stderr in *out and *err
 * (the caller frees). */
static int ctl_err(const it_cluster *c, char **out, char **err, const char *const *args) {
  *out = *err = NULL;
  return it_trainctl_err(c, out, err, args);
}

/* `trainctl ARGS` succeeds and its stdout holds want. */
static void expect_out(const it_cluster *c, const char *const *args, const char *want) {
  char *out = NULL, *err = NULL;
  int rc = ctl_err(c, &out, &err, args);
  cr_assert_eq(rc, 0, "%s %s: %d: %s", args[0], args[1] ? args[1] : "", rc, err);
  cr_assert(strstr(out, want), "%s %s: want [%s] in:\n%s", args[0], args[1] ? args[1] : "", want,
            out);
  free(out), free(err);
}

/* `trainctl ARGS` exits `code` and its stderr holds want. */
static void expect_refused(const it_cluster *c, const char *const *args, int code,
                           const char *want) {
  char *out = NULL, *err = NULL;
  int rc = ctl_err(c, &out, &err, args);
  cr_assert_eq(rc, code, "%s %s: exit %d: %s%s", args[0], args[1], rc, out, err);
  cr_assert(strstr(err, want), "%s %s: want [%s] in:\n%s", args[0], args[1], want, err);
  free(out), free(err);
}

/* A held job (-H) of queue q (NULL: default) with --mem mem (NULL: none): its id. */
static uint64_t held(const it_cluster *c, const char *q, const char *mem, char id[32]) {
  const char *args[12] = {"-H"};
  size_t n = 1;
  if (q) args[n++] = "-p", args[n++] = q;
  if (mem) args[n++] = "--mem", args[n++] = mem;
  args[n++] = "--", args[n++] = "true", args[n] = NULL;
  uint64_t job = it_submit_cli(c, args);
  snprintf(id, 32, "%llu", (unsigned long long)job);
  return job;
}

/* Rewrites the cluster's --config (as harness.c writes it) with `more`,
 * sends traind SIGHUP and waits until its log holds `text`. */
static void reload(const it_cluster *c, const char *more, const char *text) {
  FILE *f = fopen(c->config, "w");
  cr_assert(f, "%s: %s", c->config, strerror(errno));
  fprintf(f, "auth.nodes = w[1-%d]\n%s\n", IT_MAX_WORKERS, more);
  fclose(f);
  char path[300];
  snprintf(path, sizeof path, "%s/traind.stderr", c->dir);
  cr_assert_eq(kill(c->traind, SIGHUP), 0);
  for (int i = 0; i < 500; i++) {
    char *log = it_read_text(path);
    bool seen = log && strstr(log, text);
    free(log);
    if (seen) return;
    it_sleep_ms(20);
  }
  cr_assert_fail("traind never logged \"%s\" after SIGHUP (%s)", text, path);
}

/* Each bad value is refused naming its option or key, and nothing is made. */
static void queue_refusals(const it_cluster *c) {
  expect_refused(c, (const char *const[]){"queue", "create", "bad", "--default-mem", "-1", NULL}, 2,
                 "--default-mem: \"-1\" is not a size");
  expect_refused(c, (const char *const[]){"queue", "create", "bad", "--max-mem", "lots", NULL}, 2,
                 "--max-mem: \"lots\" is not a size");
  expect_refused(c,
                 (const char *const[]){"queue", "create", "bad", "--default-mem", "2G", "--max-mem",
                                       "1G", NULL},
                 2, "default_mem: 2147483648 bytes exceeds max_mem 1073741824 bytes");
  expect_refused(c, (const char *const[]){"queue", "update", "bad", "--max-mem", "1G", NULL}, 1,
                 "queue bad not found");
}

/* A queue's --default-mem is what a job asking no --mem gets: shown with
 * where it came from, and the memory limit of the job's cgroup. */
static void queue_default_applies(const it_cluster *c, ty_rpc_client *cl) {
  char script[800], out_pat[400], path[440], sid[32];
  snprintf(out_pat, sizeof out_pat, "%s/mem-%%j.out", c->dir);
  snprintf(script, sizeof script,
           "m=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup); "
           "lim=$(cat /sys/fs/cgroup/memory$(dirname \"$m\")/memory.limit_in_bytes 2>/dev/null "
           "|| cat /sys/fs/cgroup$(dirname \"$m\")/memory.max 2>/dev/null); "
           "echo mem=$SLURM_MEM_PER_NODE lim=$((${lim:-0} >> 20))");
  char *out = NULL, *err = NULL;
  cr_assert_eq(ctl_err(c, &out, &err,
                       (const char *[]){"submit", "-q", "-p", "small", "-o", out_pat, "--wrap",
                                        script, NULL}),
               0, "%s", err);
  uint64_t job = strtoull(out, NULL, 10);
  free(out), free(err);
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)job);
  cr_assert_eq(it_wait_state(cl, job, 0, 30000), ST(COMPLETED));
  expect_out(c, (const char *const[]){"show", sid, NULL}, "memory 256M (queue default)");
  expect_out(c, (const char *const[]){"show", sid, "--json", NULL},
             "\"mem_per_node\":268435456,\"mem_source\":\"queue default\"");
  snprintf(path, sizeof path, "%s/mem-%s.out", c->dir, sid);
  char *text = it_read_text(path);
  cr_assert(text && strstr(text, "mem=256"), "%s: %s", path, text ? text : "(none)");
  if (it_worker_has_cgroups(c)) cr_assert(strstr(text, "lim=256"), "%s: %s", path, text);
  free(text);
}

/* sbatch's --mem=0 (all of the node) is the queue's max; more than the max
 * is refused at submit, at job update --mem and at a move into the queue,
 * naming both sizes; a default follows the job into its new queue. */
static void queue_maximum_holds(const it_cluster *c) {
  char all[32], asked[32], big[32], dflt[32];
  held(c, "small", "0", all);
  expect_out(c, (const char *const[]){"show", all, NULL}, "memory 512M (all of the node)");
  expect_refused(c,
                 (const char *const[]){"submit", "-p", "small", "--mem", "1G", "--command", "--",
                                       "true", NULL},
                 5,
                 "job.resources.mem_per_node: 1024 MiB per node exceeds queue small's max_mem of "
                 "512 MiB");
  held(c, "small", "128M", asked);
  expect_refused(c, (const char *const[]){"job", "update", asked, "--mem", "1G", NULL}, 1,
                 "mem_per_node: 1024 MiB per node exceeds queue small's max_mem of 512 MiB");
  expect_out(c, (const char *const[]){"show", asked, NULL}, "memory 128M\n");
  held(c, NULL, "1G", big);
  char want[160];
  snprintf(want, sizeof want,
           "queue: job %s's memory: 1024 MiB per node exceeds queue small's max_mem of 512 MiB",
           big);
  expect_refused(c, (const char *const[]){"job", "update", big, "-p", "small", NULL}, 1, want);
  /* The cluster's default in the default queue; the queue's in small. */
  held(c, NULL, NULL, dflt);
  expect_out(c, (const char *const[]){"show", dflt, NULL}, "memory 64M (cluster default)");
  expect_out(c, (const char *const[]){"job", "update", dflt, "-p", "small", NULL}, "");
  expect_out(c, (const char *const[]){"show", dflt, NULL}, "memory 256M (queue default)");
  expect_out(c, (const char *const[]){"show", dflt, NULL},
             "memory per node 64 MiB -> 256 MiB (queue default)");
  const char *ids[] = {all, asked, big, dflt};
  for (size_t i = 0; i < TY_ARRAY_LEN(ids); i++)
    cr_assert_eq(it_trainctl(c, NULL, (const char *const[]){"cancel", ids[i], NULL}), 0);
}

Test(ctl, queue_memory_defaults_and_maximums, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.config_extra = "default_mem_per_node = 64M"});
  ty_rpc_client *cl = it_client(&c);
  queue_refusals(&c);
  expect_out(&c,
             (const char *const[]){"queue", "create", "small", "--default-mem", "256M", "--max-mem",
                                   "512", NULL},
             "");
  expect_out(&c, (const char *const[]){"queue", "ls", "--json", NULL},
             "\"default_mem\":268435456,\"max_mem\":536870912");
  expect_out(&c, (const char *const[]){"queue", "ls", NULL}, "DEF_MEM");
  queue_default_applies(&c, cl);
  queue_maximum_holds(&c);
  /* SIGHUP: the cluster's default changes for jobs submitted from then on;
   * a bad value is refused naming the key, and the running one stays. */
  reload(&c, "default_mem_per_node = 96M", "default_mem_per_node: 64 MiB -> 96 MiB");
  char id[32];
  held(&c, NULL, NULL, id);
  expect_out(&c, (const char *const[]){"show", id, NULL}, "memory 96M (cluster default)");
  reload(&c, "default_mem_per_node = -5",
         "refused, the running settings stay: line 2: default_mem_per_node: \"-5\" is not a size");
  held(&c, NULL, NULL, id);
  expect_out(&c, (const char *const[]){"show", id, NULL}, "memory 96M (cluster default)");
  /* A default larger than every node: the refusal says where the size came from. */
  expect_out(&c, (const char *const[]){"queue", "create", "huge", "--default-mem", "100T", NULL},
             "");
  expect_refused(&c, (const char *const[]){"submit", "-p", "huge", "--command", "--", "true", NULL},
                 5,
                 "that is queue huge's default memory (queue update --default-mem): give the job "
                 "--mem");
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A fork bomb (bounded: a shell starting 64 sleeps) under
 * --max-pids-per-job 16 stops at the limit: the job fails with the
 * refused forks in its reason (show) and its rank's log (logs),
 * and the node starts the next job. */
Test(ctl, a_fork_bomb_stops_at_the_job_process_limit, .timeout = 120) {
  it_cluster c;
  const char *wargs[] = {"--max-pids-per-job", "16", NULL};
  it_cluster_start_with(&c, 1, 2, &(it_options){.worker_args = wargs});
  if (!it_worker_has_cgroups(&c)) cr_skip_test("the worker found no usable cgroup hierarchy");
  ty_rpc_client *cl = it_client(&c);
  char out_pat[400], path[440], sid[32];
  snprintf(out_pat, sizeof out_pat, "%s/bomb-%%j.out", c.dir);
  char *out = NULL, *err = NULL;
  cr_assert_eq(ctl_err(&c, &out, &err,
                       (const char *[]){"submit", "-q", "-o", out_pat, "--wrap",
                                        "i=0; while [ $i -lt 64 ]; do sleep 30 & i=$((i+1)); done; "
                                        "wait",
                                        NULL}),
               0, "%s", err);
  uint64_t bomb = strtoull(out, NULL, 10);
  free(out), free(err);
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)bomb);
  cr_assert_eq(it_wait_state(cl, bomb, 0, 60000), ST(FAILED));
  expect_out(&c, (const char *const[]){"show", sid, NULL}, "refused at the job's limit of 16");
  snprintf(path, sizeof path, "%s/bomb-%s.out", c.dir, sid);
  char *text = it_read_text(path);
  cr_assert(text && strstr(text, "fork"), "%s: %s", path, text ? text : "(none)");
  free(text);
  /* The worker's own log of the rank (trainctl logs) says why. */
  expect_out(&c, (const char *const[]){"logs", sid, NULL}, "trainworkerd: process limit: ");
  uint64_t next = it_submit_cli(&c, (const char *const[]){"--", "true", NULL});
  cr_assert_eq(it_wait_state(cl, next, 0, 30000), ST(COMPLETED));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
