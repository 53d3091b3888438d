/* SPDX-License-Identifier: Apache-2.0 */
/* Task logs (worker/logs.c through the task registry): a log over the cap
 * is cut to its head, one marker line and its tail, readers follow the cut,
 * and job directories are removed after the retention. Real processes on
 * a real loop, as in test_task.c. */
#include <criterion/criterion.h>
#include <sys/statvfs.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "tests/unit/worker/task_fixture.h"
#include "worker/worker.h"

static char *slurp(const char *path, size_t *out_len) {
  FILE *fp = fopen(path, "rb");
  cr_assert_not_null(fp, "%s", path);
  char *buf = calloc(1, 1 << 20);
  *out_len = fread(buf, 1, (1 << 20) - 1, fp);
  fclose(fp);
  return buf;
}

static void launch(fixture *f, uint64_t job, const char *script) {
  ty_task_spec s = shell(job, script);
  fx_launch(f, &s);
}

/* The log of job once it holds `word` (the task is then idle). */
static char *log_with(fixture *f, uint64_t job, const char *word, char *path, size_t *len) {
  cr_assert_eq(ty_tasks_log_path(f->tasks, job, 0, path, 512), 0);
  for (;;) {
    char *text = slurp(path, len);
    if (strstr(text, word)) return text;
    free(text);
    usleep(10000);
  }
}

Test(logs, a_log_over_the_cap_keeps_head_marker_and_tail, .timeout = 60) {
  fixture f;
  fx_setup(&f);
  ty_tasks_set_log_limits(f.tasks, 16384, 0);
  launch(&f, 1,
         "i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done; "
         "echo done-writing; sleep 30");
  char path[512];
  size_t before_len, after_len;
  char *before = log_with(&f, 1, "done-writing", path, &before_len);
  cr_assert_gt(before_len, 16384u);
  uint32_t gen = ty_tasks_log_gen(f.tasks, 1, 0);
  uint64_t in_tail = before_len - 100, in_cut = 9000;
  ty_tasks_check_logs(f.tasks);
  char *after = slurp(path, &after_len);
  cr_assert_leq(after_len, 16384u * 3 / 4 + 300);
  cr_assert(strncmp(after, "line 0\nline 1\n", 14) == 0);
  cr_assert(after_len > 13 && strcmp(after + after_len - 13, "done-writing\n") == 0);
  char *m = strstr(after, "\n[trainworkerd: ");
  cr_assert(m, "no marker");
  cr_assert_null(strstr(m + 2, "[trainworkerd: "), "one marker only");
  unsigned long long cut = 0, head = 0;
  cr_assert_eq(sscanf(m,
                      "\n[trainworkerd: %llu bytes of output cut here; this log keeps its first "
                      "%llu bytes",
                      &cut, &head),
               2, "%.200s", m);
  cr_assert_eq(head, (unsigned long long)(m - after));
  cr_assert(head <= 8192 && after[head - 1] == '\n', "the head ends at a line end");
  char *nl = strchr(m + 1, '\n');
  size_t mlen = (size_t)(nl + 1 - m);
  cr_assert_eq(after_len - mlen + cut, before_len, "every byte is kept or counted as cut");
  cr_assert(strncmp(nl + 1, "line ", 5) == 0, "the tail starts at a line start: %.20s", nl + 1);
  /* A reader in the tail reads on from the same bytes; one in the cut part
   * goes to the marker. */
  uint32_t g = gen;
  uint64_t off = in_tail;
  ty_tasks_log_follow(f.tasks, 1, 0, &g, &off);
  cr_assert_eq(g, gen + 1);
  cr_assert(memcmp(after + off, before + in_tail, 100) == 0);
  g = gen, off = in_cut;
  ty_tasks_log_follow(f.tasks, 1, 0, &g, &off);
  cr_assert_eq(off, head);
  ty_tasks_stats st;
  ty_tasks_get_stats(f.tasks, &st);
  cr_assert_eq(st.log_bytes_cut, cut);
  free(before), free(after);
  fx_teardown(&f);
}

/* Bytes of `echo "line $i"` for i in [from, to). */
static size_t lines_bytes(int from, int to) {
  size_t n = 0;
  char b[32];
  for (int i = from; i < to; i++)
    n += (size_t)snprintf(b, sizeof b, "line %d\n", i);
  return n;
}

/* A second cut replaces the marker: still one, counting everything cut. */
Test(logs, a_second_cut_counts_all_that_was_cut, .timeout = 60) {
  fixture f;
  fx_setup(&f);
  ty_tasks_set_log_limits(f.tasks, 16384, 0);
  char script[600];
  snprintf(script, sizeof script,
           "i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done; echo done-1; "
           "while [ ! -e %s/go ]; do sleep 0.01; done; "
           "while [ $i -lt 5000 ]; do echo \"line $i\"; i=$((i+1)); done; echo done-2; sleep 30",
           f.dir);
  launch(&f, 2, script);
  char path[512], go[300];
  size_t len;
  free(log_with(&f, 2, "done-1", path, &len));
  ty_tasks_check_logs(f.tasks);
  snprintf(go, sizeof go, "%s/go", f.dir);
  fclose(fopen(go, "w"));
  char *text = log_with(&f, 2, "done-2", path, &len);
  ty_tasks_check_logs(f.tasks);
  free(text);
  text = slurp(path, &len);
  char *m = strstr(text, "\n[trainworkerd: ");
  cr_assert(m && !strstr(m + 2, "[trainworkerd: "), "one marker: %s", text);
  unsigned long long cut = 0;
  cr_assert_eq(sscanf(m, "\n[trainworkerd: %llu", &cut), 1);
  size_t mlen = (size_t)(strchr(m + 1, '\n') + 1 - m);
  size_t written = lines_bytes(0, 5000) + strlen("done-1\n") + strlen("done-2\n");
  cr_assert_eq(len - mlen + cut, written);
  cr_assert_eq(ty_tasks_log_gen(f.tasks, 2, 0), 2u);
  free(text);
  fx_teardown(&f);
}

static void make_job_dir(const fixture *f, const char *job, time_t mtime) {
  char dir[256], file[300];
  snprintf(dir, sizeof dir, "%s/jobs/%s", f->dir, job);
  cr_assert_eq(ty_mkdir_p(dir), 0);
  snprintf(file, sizeof file, "%s/rank0.log", dir);
  FILE *fp = fopen(file, "w");
  fputs("some output\n", fp);
  fclose(fp);
  struct timeval tv[2] = {{mtime, 0}, {mtime, 0}};
  cr_assert_eq(utimes(file, tv), 0);
  cr_assert_eq(utimes(dir, tv), 0);
}

Test(logs, job_directories_go_after_the_retention, .timeout = 60) {
  fixture f;
  fx_setup(&f);
  ty_tasks_set_log_limits(f.tasks, 0, 3600);
  time_t now = time(NULL);
  make_job_dir(&f, "5", now - 7200);
  make_job_dir(&f, "6", now - 60);
  launch(&f, 7, "sleep 30"); /* still running here: kept whatever its age */
  make_job_dir(&f, "7", now - 7200);
  cr_assert_gt(ty_tasks_log_disk_bytes(f.tasks), 0u);
  ty_tasks_check_logs(f.tasks);
  char dir[256];
  snprintf(dir, sizeof dir, "%s/jobs/5", f.dir);
  cr_assert_neq(access(dir, F_OK), 0, "an expired job directory stayed");
  snprintf(dir, sizeof dir, "%s/jobs/6", f.dir);
  cr_assert_eq(access(dir, F_OK), 0);
  snprintf(dir, sizeof dir, "%s/jobs/7", f.dir);
  cr_assert_eq(access(dir, F_OK), 0, "a running job's directory was removed");
  ty_tasks_stats st;
  ty_tasks_get_stats(f.tasks, &st);
  cr_assert_eq(st.log_dirs_removed, 1u);
  fx_teardown(&f);
}

/* A task that ends non-zero with its log's filesystem full says so after
 * its own reason: its error lines may be what the full disk lost. */
Test(logs, a_full_log_filesystem_is_named_in_the_end_reason) {
  char out[512] = "untouched";
  struct statvfs roomy = {
      .f_frsize = 4096, .f_blocks = 5120, .f_bavail = 2000, .f_files = 100, .f_favail = 50};
  cr_expect_not(ty_log_fs_full_reason(&roomy, "/s/jobs/7", NULL, out, sizeof out));
  cr_expect_str_eq(out, "untouched");
  struct statvfs full = roomy;
  full.f_bavail = 0;
  cr_assert(ty_log_fs_full_reason(&full, "/s/jobs/7", NULL, out, sizeof out));
  cr_expect_str_eq(out, "its log's filesystem (/s/jobs/7) is full");
  cr_assert(ty_log_fs_full_reason(&full, "/s/jobs/7", "out of memory", out, sizeof out));
  cr_expect_str_eq(out, "out of memory; its log's filesystem (/s/jobs/7) is full");
  struct statvfs nearly = roomy; /* 20 MiB: under 1% (204 KiB) free is full */
  nearly.f_bavail = 40;
  cr_expect(ty_log_fs_full_reason(&nearly, "/s/jobs/7", "", out, sizeof out));
  struct statvfs no_inodes = roomy;
  no_inodes.f_favail = 0;
  cr_expect(ty_log_fs_full_reason(&no_inodes, "/s/jobs/7", "", out, sizeof out));
}
