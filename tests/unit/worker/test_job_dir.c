/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A job's directory on the node (worker/job_dir.c) and its logs
 * (worker/spawn.c) when job ids are given again, as by a controller whose
 * store was reset or restored: a new job with an earlier job's id starts
 * afresh and never gets that job's logs, while a requeued run of the same
 * job appends to its log after its run marker. Real tasks, as root where
 * users matter.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/wire/wire.h"
#include "tests/unit/worker/task_fixture.h"
#include "worker/worker.h"

/* Runs `script` as rank 0 of job with the identity submit_ms, as uid/gid. */
static void run_job(fixture *f, uint64_t job, uint64_t submit_ms, const char *script, uid_t uid,
                    gid_t gid, uint32_t restart_count) {
  ty_task_spec s = shell(job, script);
  s.job_submit_ms = submit_ms;
  s.uid = uid, s.gid = gid;
  s.restart_count = restart_count;
  int before = f->ended;
  fx_launch(f, &s);
  run_until_ended(f, before + 1);
  ty_tasks_ack(f->tasks, job, 0, f->last.ended_ms);
}

/* The name of the directory in DIR/jobs that starts with prefix, or "". */
static void find_entry(fixture *f, const char *prefix, char *out, size_t n) {
  char jobs[128];
  snprintf(jobs, sizeof jobs, "%s/jobs", f->dir);
  DIR *d = opendir(jobs);
  cr_assert_not_null(d);
  out[0] = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) snprintf(out, n, "%s", e->d_name);
  closedir(d);
}

Test(job_dir, a_new_job_with_an_old_id_never_gets_the_earlier_jobs_log) {
  if (geteuid() != 0) cr_skip_test("needs root");
  struct passwd *pw = getpwnam("nobody");
  cr_assert(pw);
  fixture f;
  fx_setup(&f);
  run_job(&f, 40, 1000, "echo alice-secret", 0, 0, 0);
  run_job(&f, 40, 2000, "echo eve", pw->pw_uid, pw->pw_gid, 0);
  char *log = read_log(&f, 40, 0);
  cr_expect_str_eq(log, "eve\n");
  free(log);
  char path[512];
  struct stat st;
  cr_assert_eq(ty_tasks_log_path(f.tasks, 40, 0, path, sizeof path), 0);
  cr_assert_eq(stat(path, &st), 0);
  cr_expect_eq(st.st_uid, pw->pw_uid);
  /* The earlier job's logs were moved aside, still root's. */
  char aside[256];
  find_entry(&f, "40.replaced-", aside, sizeof aside);
  cr_assert(aside[0], "no moved-aside directory in %s/jobs", f.dir);
  snprintf(path, sizeof path, "%s/jobs/%s/rank0.log", f.dir, aside);
  cr_assert_eq(stat(path, &st), 0);
  cr_expect_eq(st.st_uid, 0u);
  fx_teardown(&f);
}

Test(job_dir, a_requeued_run_appends_to_its_log_after_its_marker) {
  fixture f;
  fx_setup(&f);
  run_job(&f, 41, 1000, "echo first", getuid(), getgid(), 0);
  run_job(&f, 41, 1000, "echo second", getuid(), getgid(), 1);
  char *log = read_log(&f, 41, 0);
  cr_expect(strncmp(log, "first\n" TY_LOG_RUN_MARK "2 (node w1, started ", 26) == 0, "log: %s",
            log);
  cr_expect(strstr(log, TY_LOG_RUN_MARK_END "\nsecond\n"), "log: %s", log);
  free(log);
  char aside[256];
  find_entry(&f, "41.", aside, sizeof aside);
  cr_expect_str_eq(aside, "", "a requeue moved its own directory aside");
  fx_teardown(&f);
}

/* Without a submit time (an older traind) the directory is kept, but a
 * log of another user is replaced, never given to the new job's user. */
Test(job_dir, another_users_log_is_replaced_not_given_away) {
  if (geteuid() != 0) cr_skip_test("needs root");
  struct passwd *pw = getpwnam("nobody");
  cr_assert(pw);
  fixture f;
  fx_setup(&f);
  run_job(&f, 42, 0, "echo alice-secret", 0, 0, 0);
  run_job(&f, 42, 0, "echo eve", pw->pw_uid, pw->pw_gid, 0);
  char *log = read_log(&f, 42, 0);
  cr_expect_str_eq(log, "eve\n");
  free(log);
  fx_teardown(&f);
}

/* A node whose jobs/ folder is a file: the launch fails saying the job
 * directory cannot be made and why, not that an earlier job's directory
 * could not be moved aside (there is none); a stray file where the job's
 * own directory goes is moved aside as an earlier job's would be. */
Test(job_dir, a_jobs_folder_that_is_a_file_is_named_as_such) {
  fixture f;
  fx_setup(&f);
  char jobs[128], err[512] = "";
  snprintf(jobs, sizeof jobs, "%s/jobs", f.dir);
  rmdir(jobs);
  FILE *file = fopen(jobs, "w");
  cr_assert(file);
  fclose(file);
  ty_task_spec s = shell(43, "true");
  s.job_submit_ms = 1000;
  cr_assert_neq(ty_tasks_launch(f.tasks, &s, err, sizeof err), 0);
  cr_expect(strstr(err, "cannot create job directory") && strstr(err, "Not a directory"), "%s",
            err);
  cr_expect(!strstr(err, "earlier job"), "%s", err);
  unlink(jobs);
  cr_assert_eq(mkdir(jobs, 0755), 0);
  char stray[160];
  snprintf(stray, sizeof stray, "%s/44", jobs);
  file = fopen(stray, "w");
  cr_assert(file);
  fclose(file);
  run_job(&f, 44, 1000, "echo fresh", 0, 0, 0);
  char *log = read_log(&f, 44, 0);
  cr_expect_str_eq(log, "fresh\n");
  free(log);
  fx_teardown(&f);
}
