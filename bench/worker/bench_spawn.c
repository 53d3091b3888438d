/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cost of isolation per task launch (issue 12), side by side in one
 * run on this machine: creating and removing a task's cgroup (every
 * hierarchy, its limits), and a whole launch of `true` through ty_tasks and
 * trainyard-exec -- from the LaunchTask call to the task's end report --
 * with a cgroup per task (running as another user: nobody) against process
 * groups only (running as root). Run as root; prints a markdown table with
 * the ratio. PIDS_MAX is trainworkerd's --max-pids-per-job (default 0, no
 * limit; with one, v1 adds the pids hierarchy, never pooled).
 *
 *   bench_spawn [N [PIDS_MAX]]
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/worker.h"

static double now_us(void) {
  return (double)uv_hrtime() / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return v[n / 2];
}

static void on_end(ty_tasks *t, const ty_task_report *r, void *ud) {
  (void)t, (void)r;
  (*(int *)ud)++;
}

/* Median microseconds from launch to the end report of `true`. */
static double launches(const char *dir, ty_cgroups *cg, uint32_t uid, uint32_t gid, int n) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ty_tasks *t = NULL;
  int ended = 0;
  ty_tasks_create(&loop, dir, "bench", on_end, &ended, &t);
  ty_tasks_set_isolation(t, TY_EXEC_HELPER, cg);
  double *v = calloc((size_t)n, sizeof *v);
  static const char *const argv[] = {"true"};
  for (int i = 0; i < n; i++) {
    ty_task_spec s = {.job_id = (uint64_t)i + 1,
                      .argv = argv,
                      .argc = 1,
                      .cpus = 1,
                      .has_uid = true,
                      .uid = uid,
                      .gid = gid,
                      .cwd = "/"};
    char err[TY_ERR_LEN];
    double t0 = now_us();
    if (ty_tasks_launch(t, &s, err, sizeof err) != 0) {
      fprintf(stderr, "bench_spawn: %s\n", err);
      exit(1);
    }
    while (ended <= i)
      uv_run(&loop, UV_RUN_ONCE);
    v[i] = now_us() - t0;
    ty_tasks_ack(t, s.job_id, 0, 0); /* its one ended record */
  }
  double m = median(v, n);
  free(v);
  ty_tasks_destroy(t);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return m;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 200;
  uint64_t pids_max = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
  if (geteuid() != 0) {
    fprintf(stderr, "bench_spawn: run it as root (cgroups, another uid)\n");
    return 1;
  }
  char dir[] = "/tmp/ty-bench-spawn-XXXXXX", why[TY_ERR_LEN], name[64];
  if (!mkdtemp(dir)) return 1;
  snprintf(name, sizeof name, "tybench-%d", (int)getpid());
  ty_cgroups *cg = ty_cgroup_open(NULL, name, pids_max, why, sizeof why);
  if (!cg) {
    fprintf(stderr, "bench_spawn: no usable cgroup hierarchy: %s\n", why);
    return 1;
  }
  char what[1100]; /* cg goes to the registry below */
  snprintf(what, sizeof what, "%s, pids.max %s", ty_cgroup_describe(cg),
           pids_max ? argv[2] : "none");
  double *v = calloc((size_t)n, sizeof *v);
  ty_cgroup_limits lim = {.mem_bytes = 1ull << 30, .cpus = 1};
  for (int i = 0; i < n; i++) {
    char **procs = NULL, err[TY_ERR_LEN];
    double t0 = now_us();
    uint64_t job = (uint64_t)i + 1; /* a new job each time, as launches are */
    if (ty_cgroup_task_create(cg, job, 0, &lim, &procs, err, sizeof err) != 0 ||
        ty_cgroup_task_remove(cg, job, 0) != 0) {
      fprintf(stderr, "bench_spawn: %s\n", err);
      return 1;
    }
    v[i] = now_us() - t0;
    ty_cgroup_procs_free(procs);
  }
  double setup = median(v, n);
  free(v);
  struct passwd *pw = getpwnam("nobody");
  double plain = launches(dir, NULL, 0, 0, n);
  double isolated = launches(dir, cg, pw->pw_uid, pw->pw_gid, n); /* the registry owns cg now */
  printf("| %d launches of `true`, median (%s) | us |\n| --- | --- |\n", n, what);
  printf("| a job's and a task's cgroups created (limits set) and removed, no process | %.0f |\n",
         setup);
  printf("| launch to end report, process group only, as root | %.0f |\n", plain);
  printf("| launch to end report, own cgroup, as another uid | %.0f |\n", isolated);
  printf("| isolated / plain | %.2f |\n", isolated / plain);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : 1;
}
