/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hardening (the suite of test_hardening.c): a full state disk (a small
 * tmpfs under the controller's state): a submit is refused and never
 * appears, a cancel kills the tasks and says it is not stored yet, and
 * once there is room every job is written again, so a SIGKILLed
 * controller comes back with the cancellation and every accepted job; a
 * queue create or node drain refused as not stored is not in effect (not
 * listed, not drained), then or after a restart; a job whose RUNNING
 * record could not be stored is not launched (a restarted controller
 * would find it PENDING and run it a second time): it waits PENDING,
 * saying why, and runs once when the disk has room; an array element
 * whose first write failed is repaired with its cancel.
 * Behaviour only: the time bounds are there so a broken build fails
 * instead of hanging. The controllers retry the store every second
 * (--store-retry-ms 1000, not 5000): the rewrite after the disk has room
 * comes on the next tick, the same code path 4 s sooner.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/auth/auth.h"
#include "lib/base/base.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"
#include "tests/integration/jobs_helpers.h"

/* ---- a full state disk ------------------------------------------------------------------ */

/* One controller, one worker of two CPUs; the store retried every tick. */
static void cluster_start(it_cluster *c) {
  static const char *const retry[] = {"--store-retry-ms", "1000", NULL};
  it_cluster_start_with(c, 1, 2, &(it_options){.traind_args = retry});
}

static char tmpfs_at[320]; /* the tmpfs under the controller's state, until unmounted */

static void unmount_state(void) {
  if (tmpfs_at[0]) umount2(tmpfs_at, MNT_DETACH);
  tmpfs_at[0] = '\0';
}

/* Restarts the controller on a copy of its state in a 16 MiB tmpfs (as
 * root, which CI is); skips the test when it cannot mount one. */
static void state_on_tmpfs(it_cluster *c) {
  char state[320], disk[340], cmd[800];
  snprintf(state, sizeof state, "%s/traind", c->dir);
  snprintf(disk, sizeof disk, "%s/traind.disk", c->dir);
  it_kill9(&c->traind);
  cr_assert_eq(rename(state, disk), 0, "%s", strerror(errno));
  cr_assert_eq(mkdir(state, 0700), 0, "%s", strerror(errno));
  if (mount("tmpfs", state, "tmpfs", 0, "size=16m,mode=0700") != 0) {
    rmdir(state);
    rename(disk, state);
    it_controller_start(c);
    it_cluster_stop(c);
    cr_skip_test("cannot mount a tmpfs: %s", strerror(errno));
  }
  snprintf(tmpfs_at, sizeof tmpfs_at, "%s", state);
  atexit(unmount_state); /* also when an assertion ends the test */
  snprintf(cmd, sizeof cmd, "cp -a '%s/.' '%s/'", disk, state);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  it_controller_start(c);
}

/* Fills the file system of path until a write of one page fails. */
static void fill_disk(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
  static char block[1 << 16];
  for (size_t len = sizeof block; len >= 4096; len /= 2)
    while (write(fd, block, len) == (ssize_t)len) {
    }
  close(fd);
}

/* Polls the controller's log for `text`. */
static bool log_says(const it_cluster *c, const char *text) {
  char path[340];
  snprintf(path, sizeof path, "%s/traind.stderr", c->dir);
  for (int i = 0; i < 300; i++) {
    char *log = it_read_text(path);
    bool found = log && strstr(log, text);
    free(log);
    if (found) return true;
    it_sleep_ms(100);
  }
  return false;
}

/* `ls --all` and `history` list job `id` (a decimal string). */
static void listed_ended(it_cluster *c, const char *id) {
  const char *const ls[] = {"ls", "--all", "--noheader", "-o", "%i", NULL};
  const char *const hist[] = {"history", "--noheader", "-o", "id", NULL};
  const char *const *argvs[] = {ls, hist};
  for (size_t k = 0; k < 2; k++) {
    char *out = NULL;
    it_trainctl_ok(c, &out, argvs[k]);
    bool found = false;
    for (char *line = strtok(out, "\n"); line && !found; line = strtok(NULL, "\n"))
      found = strtoull(line, NULL, 10) == strtoull(id, NULL, 10);
    cr_assert(found, "trainctl %s does not list job %s while the store is full", argvs[k][0], id);
    free(out);
  }
}

Test(hardening, a_full_state_disk_loses_no_job_and_no_cancel, .timeout = 240) {
  it_cluster c;
  cluster_start(&c);
  state_on_tmpfs(&c);
  uint64_t run = it_submit_cli(&c, (const char *const[]){"--", "sleep", "300", NULL});
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, run, TRAINYARD__JOB_STATE__JOB_RUNNING, 60000),
               TRAINYARD__JOB_STATE__JOB_RUNNING);
  char filler[360];
  snprintf(filler, sizeof filler, "%s/filler", tmpfs_at);
  fill_disk(filler);
  /* Submits until the store can no longer grow; each refused one says so. */
  uint64_t accepted[200];
  size_t n_ok = 0;
  bool refused = false;
  for (int i = 0; i < 200 && !refused; i++) {
    char *out = NULL, *err = NULL;
    int rc = it_trainctl_err(
        &c, &out, &err,
        (const char *const[]){"submit", "--parsable", "--hold", "--command", "--", "true", NULL});
    if (rc == 0) {
      accepted[n_ok++] = strtoull(out, NULL, 10);
    } else {
      cr_assert(strstr(err, "the job was not stored, so it was not accepted"), "%s", err);
      refused = true;
    }
    free(out), free(err);
  }
  cr_assert(refused, "200 submits were stored on a full disk");
  char ids[32], *out = NULL, *err = NULL;
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)run);
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *const[]){"cancel", ids, NULL}), 0);
  cr_assert(strstr(err, "cancelled, but not stored yet"), "%s", err);
  free(out), free(err);
  /* The tasks go anyway. */
  cr_assert_eq(it_wait_state(cl, run, 0, 60000), TRAINYARD__JOB_STATE__JOB_CANCELLED);
  ty_rpc_client_close(cl);
  /* Still listed after the sweeps of the next ticks: the store holds it as
   * RUNNING (its end was not stored), so memory answers for it (once, the
   * ended job left the live set and neither half listed it). */
  it_sleep_ms(2500);
  listed_ended(&c, ids);
  cr_assert_eq(unlink(filler), 0);
  cr_assert(log_says(&c, "every job and node in memory was written again"),
            "no rewrite after the disk had room again");
  /* What the store holds now is what a new controller serves. */
  it_kill9(&c.traind);
  it_controller_start(&c);
  cl = it_client(&c);
  cr_assert_eq(it_job_state(cl, run), TRAINYARD__JOB_STATE__JOB_CANCELLED);
  for (size_t i = 0; i < n_ok; i++)
    cr_assert_eq(it_job_state(cl, accepted[i]), TRAINYARD__JOB_STATE__JOB_PENDING,
                 "accepted job %llu", (unsigned long long)accepted[i]);
  ty_rpc_client_close(cl);
  /* And nothing else: the refused submit left no job behind. */
  out = NULL;
  cr_assert_eq(
      it_trainctl(&c, &out, (const char *const[]){"ls", "--all", "--noheader", "-o", "%i", NULL}),
      0);
  size_t lines = 0;
  for (const char *p = out; (p = strchr(p, '\n')); p++)
    lines++;
  cr_assert_eq(lines, n_ok + 1, "jobs listed: %s", out);
  free(out);
  it_cluster_stop(&c);
  unmount_state();
}

/* Submits until one is refused for the full disk. */
static void submit_until_refused(it_cluster *c) {
  for (int i = 0; i < 200; i++) {
    char *out = NULL, *err = NULL;
    int rc = it_trainctl_err(
        c, &out, &err,
        (const char *const[]){"submit", "--parsable", "--hold", "--command", "--", "true", NULL});
    free(out), free(err);
    if (rc != 0) return;
  }
  cr_assert_fail("200 submits were stored on a full disk");
}

/* `trainctl ARGV` fails saying the change was not stored. */
static void refused_not_stored(it_cluster *c, const char *const *argv) {
  char *out = NULL, *err = NULL;
  cr_assert_neq(it_trainctl_err(c, &out, &err, argv), 0, "%s %s was stored on a full disk", argv[0],
                argv[1]);
  cr_assert(strstr(err, "the change was not stored"), "%s", err);
  free(out), free(err);
}

/* The queue ls and nodes output: no queue q1, and the worker not drained. */
static void change_not_in_effect(it_cluster *c) {
  char *out = NULL;
  it_trainctl_ok(c, &out, (const char *const[]){"queue", "ls", NULL});
  cr_assert_null(strstr(out, "q1"), "a queue not stored is listed: %s", out);
  free(out);
  it_trainctl_ok(c, &out, (const char *const[]){"nodes", NULL});
  cr_assert_null(strstr(out, "DRAIN"), "a drain not stored is in effect: %s", out);
  free(out);
}

Test(hardening, a_queue_or_node_change_not_stored_is_not_in_effect, .timeout = 240) {
  it_cluster c;
  cluster_start(&c);
  state_on_tmpfs(&c);
  /* The worker's registration may not have been stored before the kill:
   * the drain below needs it known again. */
  ty_rpc_client *cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000),
            "the worker did not register with the restarted controller");
  ty_rpc_client_close(cl);
  char filler[360];
  snprintf(filler, sizeof filler, "%s/filler", tmpfs_at);
  fill_disk(filler);
  submit_until_refused(&c);
  refused_not_stored(&c,
                     (const char *const[]){"queue", "create", "q1", "--max-running", "1", NULL});
  refused_not_stored(&c, (const char *const[]){"node", "drain", c.name[0], "--reason", "x", NULL});
  change_not_in_effect(&c);
  cr_assert_eq(unlink(filler), 0);
  cr_assert(log_says(&c, "every job and node in memory was written again"),
            "no rewrite after the disk had room again");
  change_not_in_effect(&c);
  /* The retry is a create like the first, and its queue takes jobs. */
  char *out = NULL;
  it_trainctl_ok(&c, &out,
                 (const char *const[]){"queue", "create", "q1", "--max-running", "1", NULL});
  free(out);
  it_submit_cli(&c, (const char *const[]){"-H", "-p", "q1", "--", "true", NULL});
  it_kill9(&c.traind);
  it_controller_start(&c);
  it_trainctl_ok(&c, &out, (const char *const[]){"queue", "ls", NULL});
  cr_assert(strstr(out, "q1"), "the stored queue is gone after a restart: %s", out);
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"nodes", NULL});
  cr_assert_null(strstr(out, "DRAIN"), "a drain not stored is in effect: %s", out);
  free(out);
  it_cluster_stop(&c);
  unmount_state();
}

/* `trainctl show ID` says `text`. */
static void show_says(it_cluster *c, uint64_t id, const char *text) {
  char ids[32], *out = NULL;
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  it_trainctl_ok(c, &out, (const char *const[]){"show", ids, NULL});
  cr_assert(strstr(out, text), "job %s does not say \"%s\": %s", ids, text, out);
  free(out);
}

Test(hardening, a_start_not_stored_is_not_launched_and_runs_once, .timeout = 240) {
  it_cluster c;
  cluster_start(&c);
  state_on_tmpfs(&c);
  ty_rpc_client *cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000),
            "the worker did not register with the restarted controller");
  char marks[340], script[400], filler[360];
  snprintf(marks, sizeof marks, "%s/runs", c.dir);
  snprintf(script, sizeof script, "echo run >> '%s'", marks);
  snprintf(filler, sizeof filler, "%s/filler", tmpfs_at);
  uint64_t id =
      it_submit_cli(&c, (const char *const[]){"-b", "now+5s", "--", "sh", "-c", script, NULL});
  char after[48], want[80];
  snprintf(after, sizeof after, "after:%llu", (unsigned long long)id);
  uint64_t dep =
      it_submit_cli(&c, (const char *const[]){"--dependency", after, "--", "true", NULL});
  fill_disk(filler);
  submit_until_refused(&c); /* the store's own slack used up too */
  cr_assert(log_says(&c, "RUNNING record was not"), "the start was stored");
  it_sleep_ms(2000);
  cr_assert_eq(it_job_state(cl, id), TRAINYARD__JOB_STATE__JOB_PENDING);
  show_says(&c, id, "the controller's store failed: retried when it writes again");
  /* Its `after:` waiter waits on: the start that met it did not happen. */
  snprintf(want, sizeof want, "%s(PENDING)", after);
  cr_assert_eq(it_job_state(cl, dep), TRAINYARD__JOB_STATE__JOB_PENDING);
  show_says(&c, dep, want);
  cr_assert_neq(access(marks, F_OK), 0, "job %llu ran although its RUNNING record was not stored",
                (unsigned long long)id);
  cr_assert_eq(unlink(filler), 0);
  cr_assert(log_says(&c, "every job and node in memory was written again"),
            "no rewrite after the disk had room again");
  cr_assert_eq(it_wait_state(cl, id, TRAINYARD__JOB_STATE__JOB_COMPLETED, 60000),
               TRAINYARD__JOB_STATE__JOB_COMPLETED);
  cr_assert_eq(it_wait_state(cl, dep, TRAINYARD__JOB_STATE__JOB_COMPLETED, 60000),
               TRAINYARD__JOB_STATE__JOB_COMPLETED);
  ty_rpc_client_close(cl);
  /* What the store holds is that one run: a new controller runs it not again. */
  it_kill9(&c.traind);
  it_controller_start(&c);
  cl = it_client(&c);
  cr_assert_eq(it_job_state(cl, id), TRAINYARD__JOB_STATE__JOB_COMPLETED);
  ty_rpc_client_close(cl);
  it_sleep_ms(2000);
  cr_assert_eq(it_count_lines(marks), 1, "job %llu ran %d times", (unsigned long long)id,
               it_count_lines(marks));
  it_cluster_stop(&c);
  unmount_state();
}

/* An array's elements whose first writes (their RUNNING records) were not
 * stored are back in the array's record: a cancel of one, not stored
 * either, is stored with the store's repair once the disk has room, the
 * other runs, and a new controller finds them CANCELLED and COMPLETED. */
Test(hardening, an_array_element_not_stored_is_repaired_with_its_cancel, .timeout = 240) {
  it_cluster c;
  cluster_start(&c);
  state_on_tmpfs(&c);
  ty_rpc_client *cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000),
            "the worker did not register with the restarted controller");
  char filler[360], second[48], *out = NULL, *err = NULL;
  snprintf(filler, sizeof filler, "%s/filler", tmpfs_at);
  uint64_t arr = it_submit_cli(
      &c, (const char *const[]){"-a", "0-1", "-b", "now+5s", "--", "sleep", "2", NULL});
  fill_disk(filler);
  submit_until_refused(&c); /* the store's own slack used up too */
  cr_assert(log_says(&c, "RUNNING record was not"), "the start was stored");
  it_sleep_ms(1000);
  cr_assert_eq(it_job_state(cl, arr), TRAINYARD__JOB_STATE__JOB_PENDING);
  snprintf(second, sizeof second, "%llu_1", (unsigned long long)arr);
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *const[]){"cancel", second, NULL}), 0);
  cr_assert(strstr(err, "cancelled, but not stored yet"), "%s", err);
  free(out), free(err);
  cr_assert_eq(unlink(filler), 0);
  cr_assert(log_says(&c, "every job and node in memory was written again"),
            "no rewrite after the disk had room again");
  cr_assert_eq(it_wait_state(cl, arr, TRAINYARD__JOB_STATE__JOB_COMPLETED, 60000),
               TRAINYARD__JOB_STATE__JOB_COMPLETED);
  ty_rpc_client_close(cl);
  /* What the store holds now is what a new controller serves. */
  it_kill9(&c.traind);
  it_controller_start(&c);
  cl = it_client(&c);
  cr_assert_eq(it_job_state(cl, arr), TRAINYARD__JOB_STATE__JOB_COMPLETED);
  cr_assert_eq(it_job_state(cl, arr + 1), TRAINYARD__JOB_STATE__JOB_CANCELLED);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
  unmount_state();
}

/* traind's --store-retry-ms is checked where it is parsed: a number of
 * milliseconds, no shorter than the controller's 1 s tick. */
Test(hardening, a_bad_store_retry_ms_is_refused_naming_it) {
  const char *bin = it_bin("TY_TRAIND");
  const char *bad[] = {"0", "999", "x", "-1000", "4294967296", "1000ms"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char cmd[600], out[4096] = "";
    snprintf(cmd, sizeof cmd, "%s --store-retry-ms %s 2>&1", bin, bad[i]);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "%s", cmd);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_assert_eq(WEXITSTATUS(st), 2, "--store-retry-ms %s: exit %d", bad[i], WEXITSTATUS(st));
    cr_assert(strstr(out, "--store-retry-ms: \"") &&
                  strstr(out, "is not a number of milliseconds of at least 1000"),
              "--store-retry-ms %s: %s", bad[i], out);
  }
}
