/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tasks' private TMPDIRs (worker/task_tmp.c) with real processes on a real
 * libuv loop: removed after the task (also one killed by SIGKILL), a job's
 * own TMPDIR kept, and a restarted worker's sweep of the previous run's
 * directories, which must never touch a new task's directory of the same
 * name.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/worker/task_fixture.h"
#include "worker/worker.h"

/* Runs the loop until path is gone (the removal runs on the thread pool). */
static bool gone_soon(fixture *f, const char *path) {
  struct stat st;
  for (int i = 0; i < 500 && lstat(path, &st) == 0; i++) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(10000);
  }
  return lstat(path, &st) != 0 && errno == ENOENT;
}

/* A task's TMPDIR is its private directory, BASE/trainyard-job-J.R, 0700
 * and its user's, and it goes when the task ends, files and all, even when
 * the task was SIGKILLed and no trap of its own ran. */
Test(task, private_tmpdir_is_removed_after_sigkill) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s =
      shell(60, "mkdir -p \"$TMPDIR/a/b\" && echo x > \"$TMPDIR/a/b/f\" && "
                "echo \"tmp=$TMPDIR $(stat -c '%a %u' \"$TMPDIR\")\" && kill -KILL $$");
  fx_launch(&f, &s);
  run_until_ended(&f, 1);
  cr_expect_eq(f.last.term_signal, SIGKILL);
  char *log = read_log(&f, 60, 0), want[300], dir[256];
  snprintf(dir, sizeof dir, "%s/trainyard-job-60.0", f.dir);
  snprintf(want, sizeof want, "tmp=%s 700 %u\n", dir, (unsigned)getuid());
  cr_expect(strstr(log, want) != NULL, "want [%s] in [%s]", want, log);
  free(log);
  cr_expect(gone_soon(&f, dir), "%s is still there", dir);
  fx_teardown(&f);
}

/* A TMPDIR the job names itself (--export) is kept; the private directory
 * is made all the same and goes at the end. */
Test(task, a_jobs_own_tmpdir_is_kept) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(61, "echo \"tmp=$TMPDIR\"");
  const char *env[] = {"TMPDIR=/var/tmp"};
  s.env = env, s.n_env = 1;
  fx_launch(&f, &s);
  run_until_ended(&f, 1);
  char *log = read_log(&f, 61, 0), dir[256];
  cr_expect(strstr(log, "tmp=/var/tmp\n") != NULL, "[%s]", log);
  free(log);
  snprintf(dir, sizeof dir, "%s/trainyard-job-61.0", f.dir);
  cr_expect(gone_soon(&f, dir), "%s is still there", dir);
  fx_teardown(&f);
}

/* A worker killed while its task ran left the task's TMPDIR; its next
 * start on the same state directory removes it, and only what its own
 * records name (a look-alike directory stays). */
Test(task, a_previous_runs_tmpdir_is_removed_at_the_next_start) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(62, "touch \"$TMPDIR/f\"; sleep 60");
  fx_launch(&f, &s);
  char dir[256], file[300], other[256];
  snprintf(dir, sizeof dir, "%s/trainyard-job-62.0", f.dir);
  snprintf(file, sizeof file, "%s/f", dir);
  snprintf(other, sizeof other, "%s/trainyard-job-63.0", f.dir);
  cr_assert_eq(mkdir(other, 0700), 0);
  for (int i = 0; i < 500 && access(file, F_OK) != 0; i++)
    usleep(10000);
  cr_assert_eq(access(file, F_OK), 0, "the task never wrote into its TMPDIR");
  /* The worker goes without seeing its task end: the directory stays. */
  ty_tasks_kill_all_now(f.tasks);
  ty_tasks_destroy(f.tasks);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  cr_assert_eq(access(file, F_OK), 0);
  cr_assert_eq(ty_tasks_create(&f.loop, f.dir, "w1", NULL, NULL, &f.tasks), 0);
  cr_expect_eq(ty_tasks_sweep_tmp(f.tasks), 1);
  cr_expect(gone_soon(&f, dir), "%s is still there", dir);
  cr_expect_eq(access(other, F_OK), 0, "a directory it never made was removed");
  fx_teardown(&f);
}

/* A worker that died between moving a task's TMPDIR aside (NAME.gone-TIME,
 * the removal's first step) and removing it: its next start finds the
 * directory by its record's DEV.INO and removes it; a NAME.gone-N it never
 * made (another worker's on a shared base) and a link so named stay, and
 * the link's target is not touched. */
Test(task, a_tmpdir_moved_aside_by_a_worker_that_died_is_removed_at_the_next_start) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(64, "touch \"$TMPDIR/f\"; sleep 60");
  fx_launch(&f, &s);
  char dir[256], file[300], gone[300], other[300], link[300], target[300];
  snprintf(dir, sizeof dir, "%s/trainyard-job-64.0", f.dir);
  snprintf(file, sizeof file, "%s/f", dir);
  snprintf(gone, sizeof gone, "%s.gone-123456789", dir);
  snprintf(other, sizeof other, "%s.gone-5", dir);
  snprintf(link, sizeof link, "%s.gone-6", dir);
  snprintf(target, sizeof target, "%s/keep", f.dir);
  for (int i = 0; i < 500 && access(file, F_OK) != 0; i++)
    usleep(10000);
  cr_assert_eq(access(file, F_OK), 0, "the task never wrote into its TMPDIR");
  ty_tasks_kill_all_now(f.tasks);
  ty_tasks_destroy(f.tasks);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  /* As ty__task_tmp_remove's rename left it. */
  cr_assert_eq(rename(dir, gone), 0, "%s", strerror(errno));
  cr_assert_eq(mkdir(other, 0700), 0);
  cr_assert_eq(mkdir(target, 0700), 0);
  cr_assert_eq(symlink(target, link), 0);
  cr_assert_eq(ty_tasks_create(&f.loop, f.dir, "w1", NULL, NULL, &f.tasks), 0);
  cr_expect_eq(ty_tasks_sweep_tmp(f.tasks), 1);
  cr_expect(gone_soon(&f, gone), "%s is still there", gone);
  cr_expect_eq(access(other, F_OK), 0, "a directory it never made was removed");
  struct stat st;
  cr_expect(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the link was removed");
  cr_expect_eq(access(target, F_OK), 0, "the link was followed");
  fx_teardown(&f);
}

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static bool pool_released;

/* Holds a thread of the pool until release_the_pool(). */
static void hold_the_pool_a_while(uv_work_t *w) {
  (void)w;
  pthread_mutex_lock(&pool_mu);
  while (!pool_released)
    pthread_cond_wait(&pool_cv, &pool_mu);
  pthread_mutex_unlock(&pool_mu);
}

static void release_the_pool(void) {
  pthread_mutex_lock(&pool_mu);
  pool_released = true;
  pthread_cond_broadcast(&pool_cv);
  pthread_mutex_unlock(&pool_mu);
}

/* The entry of dir named PREFIX-something, or "" (out: dir/entry). */
static void find_entry(const char *dir, const char *prefix, char *out, size_t len);

/* A worker restarted while a rank of its ran: the rank is requeued and
 * starts there again at once, while the sweep of the previous run's
 * TMPDIRs still waits for the thread pool. The sweep takes the old
 * directory away from the shared name before it returns, so the new
 * TMPDIR is neither set aside nor removed by a removal that went by that
 * name (it once removed the new, empty one, or failed on its files, and
 * left the old one's record). */
Test(task, a_sweep_leaves_the_new_tmpdir_of_a_rank_started_again_at_once) {
  fixture f;
  fx_setup(&f);
  ty_task_spec s = shell(67, "touch \"$TMPDIR/f\"; sleep 60");
  fx_launch(&f, &s);
  char dir[256], file[300], record[400], tmpdirs[300], left[400];
  snprintf(dir, sizeof dir, "%s/trainyard-job-67.0", f.dir);
  snprintf(file, sizeof file, "%s/f", dir);
  snprintf(tmpdirs, sizeof tmpdirs, "%s/tmpdirs", f.dir);
  for (int i = 0; i < 500 && access(file, F_OK) != 0; i++)
    usleep(10000);
  cr_assert_eq(access(file, F_OK), 0, "the task never wrote into its TMPDIR");
  find_entry(tmpdirs, "trainyard-job-67.0@", record, sizeof record);
  cr_assert(record[0], "no record of the task's TMPDIR");
  ty_tasks_kill_all_now(f.tasks);
  ty_tasks_destroy(f.tasks);
  uv_run(&f.loop, UV_RUN_DEFAULT);

  static uv_work_t hold[1024]; /* every thread of the pool, whatever its size */
  for (size_t i = 0; i < TY_ARRAY_LEN(hold); i++)
    cr_assert_eq(uv_queue_work(&f.loop, &hold[i], hold_the_pool_a_while, NULL), 0);
  if (ty_tasks_create(&f.loop, f.dir, "w1", NULL, NULL, &f.tasks) != 0) {
    release_the_pool();
    cr_assert_fail("cannot make the registry again");
  }
  ty_tasks_set_tmp_base(f.tasks, f.dir);
  cr_expect_eq(ty_tasks_sweep_tmp(f.tasks), 1);
  struct stat st;
  cr_expect(lstat(dir, &st) != 0,
            "the sweep left %s to a removal by that name, which a new "
            "TMPDIR of the same name races",
            dir);

  ty_task_spec again = shell(67, "touch \"$TMPDIR/g\"; echo ready; sleep 60");
  char err[256] = "";
  bool launched = ty_tasks_launch(f.tasks, &again, err, sizeof err) == 0;
  cr_expect(launched, "the rank did not start again: %s", err);
  if (launched) wait_for_output(&f, 67, "ready");
  cr_expect_eq(lstat(dir, &st), 0, "the new TMPDIR is not there");
  find_entry(f.dir, "trainyard-job-67.0.old-", left, sizeof left);
  cr_expect_not(left[0], "the old TMPDIR still had the name when the rank started again");

  release_the_pool();
  cr_expect(gone_soon(&f, record), "%s is still there", record);
  find_entry(f.dir, "trainyard-job-67.0.gone-", left, sizeof left);
  cr_expect(!left[0] || gone_soon(&f, left), "%s is still there", left);
  struct stat now;
  cr_expect(lstat(dir, &now) == 0 && now.st_ino == st.st_ino,
            "the new TMPDIR was removed or replaced");
  snprintf(file, sizeof file, "%s/g", dir);
  cr_expect_eq(access(file, F_OK), 0, "the new TMPDIR lost its file");
  fx_teardown(&f);
}

/* Holds a thread of the pool for good (a removal queued after it waits). */
static void hold_the_pool(uv_work_t *w) {
  (void)w;
  for (;;)
    pause();
}

/* A worker that launches job/rank 0 of `script` and dies at once, before
 * anything queued on the thread pool (a TMPDIR's removal) ran: a child
 * process whose pool is held. Its exit status: 0 once launched. */
static int launch_and_die(fixture *f, uint64_t job, const char *script) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    static uv_work_t hold[1024]; /* more than libuv's largest pool */
    setenv("UV_THREADPOOL_SIZE", "1", 1);
    if (uv_loop_fork(&f->loop) != 0) _exit(2);
    for (size_t i = 0; i < TY_ARRAY_LEN(hold); i++)
      if (uv_queue_work(&f->loop, &hold[i], hold_the_pool, NULL) != 0) _exit(3);
    ty_task_spec s = shell(job, script);
    char err[256] = "";
    _exit(ty_tasks_launch(f->tasks, &s, err, sizeof err) == 0 ? 0 : 4);
  }
  int st = 0;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The entry of dir named PREFIX-something, or "" (out: dir/entry). */
static void find_entry(const char *dir, const char *prefix, char *out, size_t len) {
  DIR *d = opendir(dir);
  cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
  out[0] = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (!strncmp(e->d_name, prefix, strlen(prefix))) snprintf(out, len, "%s/%s", dir, e->d_name);
  closedir(d);
}

/* Whatever had a new TMPDIR's name (a directory of a run no record names)
 * is moved aside as NAME.old-TIME and removed in the background. A worker
 * that died before that removal ran left it with a record of its own
 * (written before the rename): its next start removes it. */
Test(task, a_tmpdir_set_aside_by_a_worker_that_died_is_removed_at_the_next_start) {
  fixture f;
  fx_setup(&f);
  char dir[256], file[300], old[400], record[400], tmpdirs[300];
  snprintf(dir, sizeof dir, "%s/trainyard-job-66.0", f.dir);
  snprintf(file, sizeof file, "%s/f", dir);
  snprintf(tmpdirs, sizeof tmpdirs, "%s/tmpdirs", f.dir);
  cr_assert_eq(mkdir(dir, 0700), 0);
  FILE *fp = fopen(file, "w");
  cr_assert_not_null(fp);
  fclose(fp);
  cr_assert_eq(launch_and_die(&f, 66, "true"), 0, "the dying worker did not launch its task");
  find_entry(f.dir, "trainyard-job-66.0.old-", old, sizeof old);
  cr_assert(old[0], "what had the TMPDIR's name was not moved aside");
  find_entry(tmpdirs, "trainyard-job-66.0.old-", record, sizeof record);
  cr_expect(record[0], "no record names %s: a crash leaves it for good", old);

  ty_tasks_destroy(f.tasks);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  cr_assert_eq(ty_tasks_create(&f.loop, f.dir, "w1", NULL, NULL, &f.tasks), 0);
  cr_expect_eq(ty_tasks_sweep_tmp(f.tasks), 2, "the task's TMPDIR and the one set aside");
  cr_expect(gone_soon(&f, old), "%s is still there", old);
  cr_expect(gone_soon(&f, dir), "%s is still there", dir);
  cr_expect(gone_soon(&f, record), "%s is still there", record);
  fx_teardown(&f);
}
