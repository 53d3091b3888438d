/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for cli/format_top.c: `trainctl watch`'s line and `trainctl
 * top`'s screen fit the terminal (no line reaches the last column), drop
 * what matters least first, and count pending jobs by wait reason. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static char *take(ty_buf *b) {
  ty_buf_append(b, "", 1);
  return (char *)b->data;
}

/* The widest line of text, in columns (UTF-8 characters). */
static size_t widest(const char *text, size_t *out_lines) {
  size_t best = 0, cur = 0, lines = 0;
  for (const char *p = text; *p; p++) {
    if (*p == '\n') {
      best = cur > best ? cur : best;
      cur = 0;
      lines++;
      continue;
    }
    cur += ((unsigned char)*p & 0xC0) != 0x80;
  }
  if (out_lines) *out_lines = lines + (cur > 0);
  return cur > best ? cur : best;
}

static ty_train_progress progress(void) {
  return (ty_train_progress){.step = 1234,
                             .total_steps = 10000,
                             .loss = 0.4321,
                             .samples_per_s = 51234,
                             .time_ms = 100000,
                             .checkpoint_step = 1000,
                             .test_accuracy = 0.9731};
}

Test(progress_line, fits_every_width_and_keeps_the_step) {
  ty_train_progress p = progress();
  for (int cols = 20; cols <= 200; cols++) {
    ty_buf b;
    ty_buf_init(&b);
    ty_cli_render_progress_line(&p, 50000, cols, &b);
    char *line = take(&b);
    cr_assert_lt(widest(line, NULL), (size_t)cols, "%d columns: \"%s\"", cols, line);
    cr_assert(strstr(line, "step 1234/10000") || cols < 30, "%d columns: \"%s\"", cols, line);
    ty_buf_close(&b);
  }
}

Test(progress_line, drops_the_least_important_first) {
  ty_train_progress p = progress();
  ty_buf b;
  ty_buf_init(&b);
  ty_cli_render_progress_line(&p, 50000, 60, &b);
  char *line = take(&b);
  cr_assert(line[0] == '[', "a bar at 60 columns: %s", line);
  cr_assert(strstr(line, "loss 0.4321"), "%s", line);
  cr_assert(strstr(line, "ckpt@") == NULL, "%s", line);
  b.len = 0;
  ty_cli_render_progress_line(&p, 50000, 200, &b);
  line = take(&b);
  cr_assert(strstr(line, "51234 samples/s") && strstr(line, "acc 0.9731") &&
                strstr(line, "ckpt@1000") && strstr(line, "ETA 5m55s"),
            "%s", line);
  b.len = 0;
  ty_cli_render_progress_line(&p, 50000, 0, &b);
  cr_assert_str_eq(take(&b), "step 1234/10000 ( 12%) loss 0.4321 51234 samples/s ETA 5m55s acc "
                             "0.9731 ckpt@1000");
  ty_buf_close(&b);
}

/* show's and watch's line for a job killed at the end of its kill grace
 * says so (it saved no stop checkpoint), rather than guess that a run
 * resumed at its end; that guess is a COMPLETED job's alone. */
Test(job_progress, a_kill_after_the_grace_is_named_not_guessed) {
  ty_buf b;
  ty_buf_init(&b);
  ty_cli_job_progress j = {.state = TY_JOB_TIMEOUT, .start_ms = 1000, .term_signal = SIGKILL};
  ty_cli_render_job_progress(&j, 0, &b);
  char *line = take(&b);
  cr_assert(strstr(line, "job TIMEOUT: killed (SIGKILL) at the end of its kill grace before it "
                         "reported a training step") &&
                strstr(line, "saved no stop checkpoint") && !strstr(line, "resumed"),
            "%s", line);
  ty_train_progress p = progress();
  j.progress = &p;
  b.len = 0;
  ty_cli_render_job_progress(&j, 0, &b);
  line = take(&b);
  cr_assert(
      strstr(line, "step 1234/10000") &&
          strstr(line, "(killed by SIGKILL at the end of its kill grace: no stop checkpoint)"),
      "%s", line);
  j = (ty_cli_job_progress){.state = TY_JOB_FAILED, .start_ms = 1000};
  b.len = 0;
  ty_cli_render_job_progress(&j, 0, &b);
  cr_assert_str_eq(take(&b), "job FAILED: ended without a training step reported (trainctl logs "
                             "has its log)");
  j.state = TY_JOB_COMPLETED;
  b.len = 0;
  ty_cli_render_job_progress(&j, 0, &b);
  line = take(&b);
  cr_assert(strstr(line, "a run resumed at its end trains nothing"), "%s", line);
  ty_buf_close(&b);
}

/* The ETA counts this run's steps only: resumed at step 1000 and at 1234
 * 50 s after its start, 234 steps took 50 s, so the 8766 left take
 * 1873 s, not the 355 s that 1234 steps in 50 s would say. A pending
 * (requeued) job has no ETA, nor an ended one. */
Test(job_progress, the_eta_counts_this_runs_steps_and_only_while_running) {
  ty_train_progress p = progress();
  p.start_step = 1000;
  ty_buf b;
  ty_buf_init(&b);
  ty_cli_job_progress j = {.state = TY_JOB_RUNNING, .start_ms = 50000, .progress = &p};
  ty_cli_render_job_progress(&j, 0, &b);
  char *line = take(&b);
  cr_assert(strstr(line, "ETA 31m13s"), "%s", line);
  p.start_step = p.step; /* no step of this run yet: no rate */
  b.len = 0;
  ty_cli_render_job_progress(&j, 0, &b);
  line = take(&b);
  cr_assert(strstr(line, "ETA ?"), "%s", line);
  p.start_step = 1000;
  int not_running[] = {TY_JOB_PENDING, TY_JOB_COMPLETED, TY_JOB_PREEMPTED};
  for (size_t i = 0; i < TY_ARRAY_LEN(not_running); i++) {
    j.state = not_running[i];
    b.len = 0;
    ty_cli_render_job_progress(&j, 0, &b);
    line = take(&b);
    cr_assert(strstr(line, "step 1234/10000") && !strstr(line, "ETA"), "%s", line);
  }
  ty_buf_close(&b);
}

static ty_cli_jobinfo job(uint64_t id, int state, const char *name, const char *reason) {
  ty_cli_jobinfo j = {.id = id, .state = state, .start_ms = state == TY_JOB_RUNNING ? 1000 : 0};
  j.spec.name = (char *)name;
  j.spec.user = "alice";
  j.spec.queue = "default";
  j.spec.nodes = 1;
  j.spec.time_limit_s = 100;
  j.reason = (char *)reason;
  return j;
}

Test(top, counts_pending_by_reason_and_fits) {
  ty_cli_node nodes[30];
  memset(nodes, 0, sizeof(nodes));
  char names[30][16];
  for (int i = 0; i < 30; i++) {
    snprintf(names[i], sizeof(names[i]), "node%02d", i);
    nodes[i] = (ty_cli_node){.name = names[i],
                             .state = i == 3 ? TY_NODE_DOWN : TY_NODE_UP,
                             .cpus = 8,
                             .cpus_used = 2,
                             .last_heartbeat_ms = 50000};
  }
  ty_cli_jobinfo jobs[] = {
      job(1, TY_JOB_RUNNING, "train-\xc3\xa9t\xc3\xa9-very-long-name\x1b[31m", ""),
      job(2, TY_JOB_RUNNING, "cmd", ""),
      job(3, TY_JOB_PENDING, "a", "Resources: needs 1 node with 8 free CPUs (position 1)"),
      job(4, TY_JOB_PENDING, "b", "Resources: needs 1 node (position 2)"),
      job(5, TY_JOB_PENDING, "c", "Held: by an operator (position 3)"),
      job(6, TY_JOB_PENDING, "d", ""),
  };
  ty_train_progress p = progress();
  const ty_train_progress *prog[] = {&p, NULL, NULL, NULL, NULL, NULL};
  ty_cli_top t = {
      .now_ms = 51000, .nodes = nodes, .n_nodes = 30, .jobs = jobs, .n_jobs = 6, .progress = prog};
  for (int cols = 40; cols <= 160; cols += 20) {
    ty_buf b;
    ty_buf_init(&b);
    cr_assert_eq(ty_cli_render_top(&t, cols, 24, &b), 0);
    char *text = take(&b);
    size_t lines;
    cr_assert_lt(widest(text, &lines), (size_t)cols, "%d columns:\n%s", cols, text);
    cr_assert_leq(lines, 24, "%zu lines for 24 rows:\n%s", lines, text);
    cr_assert(strchr(text, '\x1b') == NULL, "an escape from a job name reached the screen");
    if (cols >= 80) {
      cr_assert(strstr(text, "jobs 2 running 4 pending (Resources 2, Held 1, New 1)"), "%s", text);
      cr_assert(strstr(text, "nodes 29 up 1 down 0 draining  cpus 60/240"), "%s", text);
      cr_assert(strstr(text, "more nodes"), "%s", text);
      cr_assert(strstr(text, "step 1234/10000"), "%s", text);
      cr_assert(strstr(text, "50% of time limit"), "%s", text);
    }
    ty_buf_close(&b);
  }
}

/* Off a terminal (cols 0): no cut anywhere, a graph job's progress
 * included (every field, as `trainctl watch` off a terminal). */
Test(top, without_limits_shows_everything) {
  ty_cli_node n = {.name = "n1", .state = TY_NODE_UP, .cpus = 4};
  ty_cli_jobinfo jobs[] = {job(9, TY_JOB_RUNNING, "x", ""), job(10, TY_JOB_RUNNING, "graph", "")};
  ty_train_progress p = progress();
  const ty_train_progress *prog[] = {NULL, &p};
  ty_cli_top t = {
      .now_ms = 2000, .nodes = &n, .n_nodes = 1, .jobs = jobs, .n_jobs = 2, .progress = prog};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_top(&t, 0, 0, &b), 0);
  char *text = take(&b);
  cr_assert(strstr(text, "\nn1 ") && strstr(text, "\n9 "), "%s", text);
  cr_assert(strstr(text, "more") == NULL, "%s", text);
  cr_assert(strstr(text, "step 1234/10000 ( 12%) loss 0.4321 51234 samples/s"),
            "graph job's PROGRESS cell off a terminal:\n%s", text);
  cr_assert(strstr(text, "ckpt@1000"), "%s", text);
  ty_buf_close(&b);
}
