/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `traind --backup FILE` (docs/deploy.md, "Backup and restore") through a
 * real controller and worker: a backup taken while jobs run and while more
 * are being submitted holds every job acknowledged before it started, and
 * a controller started on nothing but that backup (the state directory
 * lost) serves them: the finished job's record, the running job that its
 * worker reports again and that can still be cancelled, new jobs with ids
 * after the old ones. The refusals name what is wrong. Asserts states,
 * never wall-clock time.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "tests/integration/harness.h"

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x

/* traind ARGS (NULL-terminated, at most 8): its exit status, stdout and
 * stderr as heap strings. */
static int traind(const it_cluster *c, char **out, char **err, const char *const *args) {
  const char *argv[10] = {getenv("TY_TRAIND")};
  for (size_t i = 0; args[i] && i < 8; i++)
    argv[i + 1] = args[i];
  return it_run_as(c, getuid(), getgid(), c->dir, out, err, argv);
}

static void backup_to(const it_cluster *c, const char *dest) {
  char state[300], *out = NULL, *err = NULL;
  snprintf(state, sizeof state, "%s/traind", c->dir);
  int rc = traind(c, &out, &err, (const char *[]){"--state-dir", state, "--backup", dest, NULL});
  cr_assert_eq(rc, 0, "traind --backup exited %d: %s", rc, err);
  cr_assert(strstr(out, "backed up") && strstr(out, dest), "%s", out);
  free(out), free(err);
}

/* The state directory lost: a new one holding only the backup. */
static void restore_only(const it_cluster *c, const char *backup) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "mv %s/traind %s/traind.lost && mkdir -m 700 %s/traind && cp %s %s/traind/traind.db",
           c->dir, c->dir, c->dir, backup, c->dir);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(backup, taken_while_jobs_run_restores_into_a_working_controller, .timeout = 240) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  ty_rpc_client *cl = it_client(&c);
  uint64_t done = it_submit_cli(&c, (const char *[]){"--name", "bk-done", "--", "true", NULL});
  cr_assert_eq(it_wait_state(cl, done, 0, 60000), ST(COMPLETED));
  uint64_t live =
      it_submit_cli(&c, (const char *[]){"--name", "bk-live", "--", "sleep", "120", NULL});
  cr_assert_eq(it_wait_state(cl, live, ST(RUNNING), 60000), ST(RUNNING));
  /* Submits acknowledged just before the backup: their commits race its
   * read transaction, and an acknowledged job must be in the copy. */
  uint64_t queued[6];
  for (size_t i = 0; i < TY_ARRAY_LEN(queued); i++)
    queued[i] = it_submit_cli(&c, (const char *[]){"--name", "bk-queued", "--", "true", NULL});
  char backup[300];
  snprintf(backup, sizeof backup, "%s/backup.db", c.dir);
  backup_to(&c, backup);
  struct stat st;
  cr_assert_eq(stat(backup, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600, "the backup holds job environments: mode %o", st.st_mode);
  char tmp[320];
  snprintf(tmp, sizeof tmp, "%s.tmp", backup);
  cr_assert_neq(access(tmp, F_OK), 0, "the temporary copy was left behind");
  /* A second backup over the first replaces it. */
  backup_to(&c, backup);
  ty_rpc_client_close(cl);

  it_kill9(&c.traind);
  restore_only(&c, backup);
  it_controller_start(&c);
  cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 30000),
            "the worker did not re-register");
  cr_assert_eq(it_wait_state(cl, done, 0, 60000), ST(COMPLETED));
  for (size_t i = 0; i < TY_ARRAY_LEN(queued); i++)
    cr_assert_eq(it_wait_state(cl, queued[i], 0, 60000), ST(COMPLETED), "job %llu",
                 (unsigned long long)queued[i]);
  /* The job that ran through the backup and the restore is still the
   * controller's: running, then cancelled on request. */
  cr_assert_eq(it_wait_state(cl, live, ST(RUNNING), 60000), ST(RUNNING));
  char sid[24];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)live);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  cr_assert_eq(it_wait_state(cl, live, 0, 60000), ST(CANCELLED));
  uint64_t after = it_submit_cli(&c, (const char *[]){"--name", "bk-after", "--", "true", NULL});
  cr_assert_gt(after, queued[TY_ARRAY_LEN(queued) - 1], "job ids were reused after the restore");
  cr_assert_eq(it_wait_state(cl, after, 0, 60000), ST(COMPLETED));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A --state-dir or --checkpoint-dir traind cannot create: the refusal
 * says why (a regular file where a directory must go). */
Test(backup, unusable_state_and_checkpoint_dirs_say_why, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  char file[300], under[320], state[300], *out = NULL, *err = NULL, want[700];
  snprintf(file, sizeof file, "%s/a-file", c.dir);
  FILE *f = fopen(file, "w");
  cr_assert(f, "%s", file);
  fclose(f);
  snprintf(under, sizeof under, "%s/dir", file);
  snprintf(state, sizeof state, "%s/state2", c.dir);
  const char *bad_state[] = {"--state-dir", under, NULL};
  cr_assert_eq(traind(&c, &out, &err, bad_state), 1);
  snprintf(want, sizeof want, "--state-dir %s: cannot create or resolve it: Not a directory",
           under);
  cr_assert(strstr(err, want), "no [%s] in: %s", want, err);
  free(out), free(err);
  const char *bad_ckpt[] = {"--state-dir", state, "--checkpoint-dir", under, NULL};
  cr_assert_eq(traind(&c, &out, &err, bad_ckpt), 1);
  snprintf(want, sizeof want, "--checkpoint-dir %s: cannot create or resolve it: Not a directory",
           under);
  cr_assert(strstr(err, want), "no [%s] in: %s", want, err);
  free(out), free(err);
  it_cluster_stop(&c);
}

Test(backup, refusals_name_what_is_wrong, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  char *out = NULL, *err = NULL, state[300], dest[300], missing[300];
  snprintf(state, sizeof state, "%s/traind", c.dir);
  snprintf(missing, sizeof missing, "%s/no-such-state", c.dir);
  /* No store in the state directory. */
  snprintf(dest, sizeof dest, "%s/b1.db", c.dir);
  cr_assert_eq(
      traind(&c, &out, &err, (const char *[]){"--state-dir", missing, "--backup", dest, NULL}), 1);
  cr_assert(strstr(err, "no store at") && strstr(err, missing), "%s", err);
  cr_assert_neq(access(dest, F_OK), 0);
  free(out), free(err);
  /* A destination in a directory that does not exist: named with the
   * system's words, not SQLite's "unable to open database file". */
  snprintf(dest, sizeof dest, "%s/no-such-dir/b.db", c.dir);
  cr_assert_eq(
      traind(&c, &out, &err, (const char *[]){"--state-dir", state, "--backup", dest, NULL}), 1);
  char want[700];
  snprintf(want, sizeof want,
           "cannot create %s: its directory %s/no-such-dir: No such file or "
           "directory",
           dest, c.dir);
  cr_assert(strstr(err, want), "no [%s] in: %s", want, err);
  free(out), free(err);
  /* A file that is not a store: nothing is written. */
  char bogus[300];
  snprintf(bogus, sizeof bogus, "%s/bogus", c.dir);
  cr_assert_eq(mkdir(bogus, 0700), 0);
  snprintf(dest, sizeof dest, "%s/bogus/traind.db", c.dir);
  FILE *f = fopen(dest, "w");
  cr_assert(f);
  fputs("not a database, just text long enough to have a header of its own\n", f);
  fclose(f);
  snprintf(dest, sizeof dest, "%s/b2.db", c.dir);
  cr_assert_eq(
      traind(&c, &out, &err, (const char *[]){"--state-dir", bogus, "--backup", dest, NULL}), 1);
  cr_assert(strstr(err, "--backup") && strstr(err, "bogus/traind.db"), "%s", err);
  cr_assert_neq(access(dest, F_OK), 0, "a failed backup left %s", dest);
  free(out), free(err);
  /* A directory this user may not write to (a test user: root may). */
  char name[64], locked[280];
  uid_t uid;
  gid_t gid;
  it_user_add(name, sizeof name, &uid, &gid);
  snprintf(locked, sizeof locked, "%s/locked", c.dir);
  cr_assert_eq(mkdir(locked, 0755), 0);
  snprintf(dest, sizeof dest, "%s/b3.db", locked);
  const char *as_user[] = {getenv("TY_TRAIND"), "--state-dir", state, "--backup", dest, NULL};
  cr_assert_eq(it_run_as(&c, uid, gid, c.dir, &out, &err, as_user), 1);
  snprintf(want, sizeof want, "cannot create %s in %s: Permission denied (uid %u)", dest, locked,
           (unsigned)uid);
  cr_assert(strstr(err, want), "no [%s] in: %s", want, err);
  free(out), free(err);
  /* --backup without its file is a usage error. */
  cr_assert_eq(traind(&c, &out, &err, (const char *[]){"--backup", NULL}), 2);
  cr_assert(strstr(err, "backup"), "%s", err);
  free(out), free(err);
  it_cluster_stop(&c);
}
