/* SPDX-License-Identifier: Apache-2.0 */
/* The shared task-registry fixture (task_fixture.h). */
#include "tests/unit/worker/task_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_end(ty_tasks *t, const ty_task_report *r, void *ud) {
  (void)t;
  fixture *f = ud;
  if (r->state == TY_TASK_RUNNING) { /* a --signal warning, not an end */
    f->warned = r->warned_signal;
    return;
  }
  f->ended++;
  f->last = *r;
  f->last.reason = ""; /* borrowed: do not keep the pointer */
}

void fx_setup(fixture *f) {
  memset(f, 0, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/ty-worker-test-XXXXXX");
  cr_assert_not_null(mkdtemp(f->dir));
  cr_assert_eq(uv_loop_init(&f->loop), 0);
  cr_assert_eq(ty_tasks_create(&f->loop, f->dir, "w1", on_end, f, &f->tasks), 0);
  ty_tasks_set_isolation(f->tasks, getenv("TY_EXEC_HELPER"), NULL);
  ty_tasks_set_tmp_base(f->tasks, f->dir); /* root's: its tasks' TMPDIRs go with it */
}

void fx_teardown(fixture *f) {
  ty_tasks_kill_all_now(f->tasks);
  ty_tasks_destroy(f->tasks);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  cr_expect_eq(uv_loop_close(&f->loop), 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  cr_expect_eq(system(cmd), 0);
}

void run_until_ended(fixture *f, int n) {
  while (f->ended < n)
    uv_run(&f->loop, UV_RUN_ONCE);
}

ty_task_spec shell(uint64_t job, const char *script) {
  static const char *argv[3];
  argv[0] = "sh";
  argv[1] = "-c";
  argv[2] = script;
  ty_task_spec s = {.job_id = job,
                    .rank = 0,
                    .world_size = 1,
                    .local_world_size = 1,
                    .master_addr = "127.0.0.1",
                    .master_port = 29501,
                    .argv = argv,
                    .argc = 3,
                    .cpus = 1,
                    .has_uid = true,
                    .uid = getuid(),
                    .gid = getgid()};
  return s;
}

char *read_log(fixture *f, uint64_t job, uint32_t rank) {
  char path[512];
  cr_assert_eq(ty_tasks_log_path(f->tasks, job, rank, path, sizeof path), 0);
  FILE *fp = fopen(path, "r");
  cr_assert_not_null(fp, "no log at %s", path);
  char *buf = calloc(1, 65536);
  size_t n = fread(buf, 1, 65535, fp);
  buf[n] = '\0';
  fclose(fp);
  return buf;
}

void wait_for_output(fixture *f, uint64_t job, const char *word) {
  for (;;) {
    char *log = read_log(f, job, 0);
    bool found = strstr(log, word) != NULL;
    free(log);
    if (found) return;
    usleep(10000);
  }
}

void fx_launch(fixture *f, const ty_task_spec *s) {
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(f->tasks, s, err, sizeof err), 0, "%s", err);
}
