/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Screens that redraw in place: `trainctl watch`'s progress line and
 * `trainctl top`. Both are pure (structs in, text out) and fit a given
 * terminal width: a line one column too wide wraps, and every redraw then
 * scrolls the screen instead of replacing what was there. The width is in
 * columns; multi-byte UTF-8 in job names is cut on a character boundary and
 * counted as one column per character (wide CJK characters would need
 * wcwidth, which depends on the locale; names are short and rarely wide).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

/* ---- columns and cutting ------------------------------------------------------------ */

static size_t columns(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += ((unsigned char)s[i] & 0xC0) != 0x80;
  return n;
}

/* Appends at most `cols` columns of s, cut on a character boundary, control
 * bytes as '?'; returns the columns appended. */
static size_t put_cut(ty_buf *out, const void *str, size_t len, size_t cols) {
  const char *s = str;
  size_t i = 0, n = 0;
  while (i < len) {
    size_t j = i + 1;
    while (j < len && ((unsigned char)s[j] & 0xC0) == 0x80)
      j++;
    if (n + 1 > cols) break;
    n++;
    /* Control bytes from job names would drive the terminal: '?' instead. */
    bool ctl = j == i + 1 && ((unsigned char)s[i] < 0x20 || s[i] == 0x7f);
    ty_buf_append(out, ctl ? "?" : s + i, ctl ? 1 : j - i);
    i = j;
  }
  return n;
}

/* A left-aligned cell of exactly `width` columns and a space. */
static void put_cell(ty_buf *out, const char *s, size_t width) {
  size_t n = put_cut(out, s ? s : "", s ? strlen(s) : 0, width);
  ty_buf_printf(out, "%*s", (int)(width - n + 1), "");
}

static void fmt_dur(double s, char *out, size_t n) {
  if (s < 0 || s > 1e7)
    snprintf(out, n, "?");
  else
    ty_cli_format_span((int64_t)s, out, n);
}

/* ---- the progress line ----------------------------------------------------------------- */

/* The fields after the bar, most important first; later ones are dropped
 * when the line does not fit. */
enum { F_STEP, F_LOSS, F_ETA, F_RATE, F_ACC, F_CKPT, F_COUNT };

static void progress_fields(const ty_train_progress *p, int64_t start_ms, char f[F_COUNT][64]) {
  double frac = p->total_steps ? (double)p->step / (double)p->total_steps : 0;
  if (frac > 1) frac = 1;
  snprintf(f[F_STEP], 64, "step %" PRIu64 "/%" PRIu64 " (%3.0f%%)", p->step, p->total_steps,
           frac * 100);
  snprintf(f[F_LOSS], 64, "loss %.4f", p->loss);
  /* ETA from this run's rate: the steps since it (last) started, at
   * start_step when it resumed; the earlier runs' took other time. */
  char eta[32];
  double left = p->total_steps > p->step ? (double)(p->total_steps - p->step) : 0;
  double elapsed = start_ms && p->time_ms > start_ms ? (double)(p->time_ms - start_ms) / 1000 : 0;
  double done = p->step > p->start_step ? (double)(p->step - p->start_step) : 0;
  fmt_dur(elapsed > 0 && done > 0 ? left * elapsed / done : -1, eta, sizeof eta);
  snprintf(f[F_ETA], 64, "ETA %s", eta);
  if (!start_ms) f[F_ETA][0] = '\0'; /* not running (ended): nothing to estimate */
  snprintf(f[F_RATE], 64, "%.0f samples/s", p->samples_per_s);
  f[F_ACC][0] = f[F_CKPT][0] = '\0';
  if (p->test_accuracy >= 0) snprintf(f[F_ACC], 64, "acc %.4f", p->test_accuracy);
  if (p->checkpoint_step) snprintf(f[F_CKPT], 64, "ckpt@%" PRIu64, p->checkpoint_step);
}

/* Fields 0..n joined by spaces, in F order (the line reads as before). */
static void join_fields(char f[F_COUNT][64], int n, ty_buf *out) {
  static const int order[] = {F_STEP, F_LOSS, F_RATE, F_ETA, F_ACC, F_CKPT};
  for (size_t k = 0; k < TY_ARRAY_LEN(order); k++)
    if (order[k] < n && f[order[k]][0])
      ty_buf_printf(out, "%s%s", out->len && out->data[out->len - 1] != ' ' ? " " : "",
                    f[order[k]]);
}

void ty_cli_render_progress_line(const ty_train_progress *p, int64_t start_ms, int cols,
                                 ty_buf *out) {
  char f[F_COUNT][64];
  progress_fields(p, start_ms, f);
  ty_buf text;
  ty_buf_init(&text);
  if (cols <= 0) {
    join_fields(f, F_COUNT, &text);
    ty_buf_append(out, text.data, text.len);
    ty_buf_close(&text);
    return;
  }
  /* The widest set of fields that leaves room for a bar of 10; then the
   * bar takes what is left, up to 40. The last column stays free: a
   * character there makes some terminals wrap. */
  size_t room = (size_t)cols - 1;
  int n = F_COUNT;
  for (; n > 1; n--) {
    text.len = 0;
    join_fields(f, n, &text);
    if (text.len + 13 <= room) break;
  }
  if (n == 1) text.len = 0, join_fields(f, 1, &text);
  size_t bar = text.len + 13 <= room ? room - text.len - 3 : 0;
  if (bar > 40) bar = 40;
  if (bar) {
    double frac = p->total_steps ? (double)p->step / (double)p->total_steps : 0;
    size_t fill = (size_t)((frac > 1 ? 1 : frac) * (double)bar + 0.5);
    ty_buf_printf(out, "[");
    for (size_t i = 0; i < bar; i++)
      ty_buf_append(out, i < fill ? "#" : ".", 1);
    ty_buf_printf(out, "] ");
  }
  put_cut(out, text.data, text.len, room - (bar ? bar + 3 : 0));
  ty_buf_close(&text);
}

/* ---- top ------------------------------------------------------------------------------ */

/* Ends the line being built in `line` at `cols` - 1 columns, onto out. */
static void put_line(ty_buf *out, ty_buf *line, int cols) {
  size_t room = cols > 1 ? (size_t)cols - 1 : 0;
  if (cols <= 0) room = line->len;
  put_cut(out, line->data, line->len, room);
  ty_buf_append(out, "\n", 1);
  line->len = 0;
}

/* The scheduler's wait code at the start of a pending job's reason
 * ("Resources: needs ..." -> "Resources"); "New" before any pass. */
static void wait_code(const char *reason, char *out, size_t n) {
  size_t len = reason ? strcspn(reason, ": (") : 0;
  if (len == 0)
    snprintf(out, n, "New");
  else
    snprintf(out, n, "%.*s", (int)len, reason);
}

typedef struct reason_count {
  char name[32];
  size_t n;
} reason_count;

static void summary(const ty_cli_top *t, ty_buf *line, ty_buf *out, int cols) {
  size_t ns[TY_NODE_STATE_MAX + 1] = {0};
  uint64_t cpu = 0, cpu_used = 0, gpu = 0, gpu_used = 0;
  for (size_t i = 0; i < t->n_nodes; i++) {
    const ty_cli_node *n = &t->nodes[i];
    if (n->state >= 0 && n->state <= TY_NODE_STATE_MAX) ns[n->state]++;
    cpu += n->cpus, cpu_used += n->cpus_used, gpu += n->gpus, gpu_used += n->gpus_used;
  }
  time_t now = (time_t)(t->now_ms / 1000);
  struct tm tm;
  char when[16];
  strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&now, &tm));
  ty_buf_printf(line,
                "trainyard top %s  nodes %zu up %zu down %zu draining  cpus %" PRIu64 "/%" PRIu64
                "  gpus %" PRIu64 "/%" PRIu64,
                when, ns[TY_NODE_UP], ns[TY_NODE_DOWN], ns[TY_NODE_DRAINING] + ns[TY_NODE_DRAINED],
                cpu_used, cpu, gpu_used, gpu);
  put_line(out, line, cols);
  reason_count rc[16];
  size_t nrc = 0, running = 0, pending = 0;
  for (size_t i = 0; i < t->n_jobs; i++) {
    if (t->jobs[i].state == TY_JOB_RUNNING) running++;
    if (t->jobs[i].state != TY_JOB_PENDING) continue;
    pending++;
    char code[32];
    wait_code(t->jobs[i].reason, code, sizeof(code));
    size_t k = 0;
    while (k < nrc && strcmp(rc[k].name, code) != 0)
      k++;
    if (k == nrc && nrc < TY_ARRAY_LEN(rc)) {
      snprintf(rc[nrc].name, sizeof(rc[0].name), "%s", code);
      rc[nrc++].n = 0;
    }
    if (k < nrc) rc[k].n++;
  }
  ty_buf_printf(line, "jobs %zu running %zu pending", running, pending);
  for (size_t k = 0; k < nrc; k++)
    ty_buf_printf(line, "%s%s %zu%s", k ? ", " : " (", rc[k].name, rc[k].n,
                  k + 1 == nrc ? ")" : "");
  put_line(out, line, cols);
}

static void node_rows(const ty_cli_top *t, size_t max, ty_buf *line, ty_buf *out, int cols) {
  ty_buf_printf(line, "%-16s %-9s %9s %7s %5s %9s", "NODE", "STATE", "CPUS", "GPUS", "TASKS",
                "HEARTBEAT");
  put_line(out, line, cols);
  for (size_t i = 0; i < t->n_nodes && i < max; i++) {
    const ty_cli_node *n = &t->nodes[i];
    char cpus[24], gpus[24], hb[24];
    snprintf(cpus, sizeof(cpus), "%u/%u", n->cpus_used, n->cpus);
    snprintf(gpus, sizeof(gpus), "%u/%u", n->gpus_used, n->gpus);
    fmt_dur(n->last_heartbeat_ms ? (double)(t->now_ms - n->last_heartbeat_ms) / 1000 : -1, hb,
            sizeof(hb));
    ty_buf_printf(line, "%-16.16s %-9s %9s %7s %5u %9s", n->name, ty_node_state_name(n->state),
                  cpus, gpus, n->running_tasks, hb);
    put_line(out, line, cols);
  }
  if (t->n_nodes > max) {
    ty_buf_printf(line, "... %zu more nodes", t->n_nodes - max);
    put_line(out, line, cols);
  }
}

/* Killed by SIGKILL after SIGTERM (the end of the kill grace of a time
 * limit, a cancel or a preemption): it did not stop in time. */
static bool killed_after_grace(const ty_cli_job_progress *j) {
  return j->term_signal == SIGKILL && (j->state == TY_JOB_TIMEOUT || j->state == TY_JOB_CANCELLED ||
                                       j->state == TY_JOB_PREEMPTED);
}

/* Why an ended job has no progress line. */
static void render_no_step(const ty_cli_job_progress *j, ty_buf *out) {
  const char *state = ty_job_state_name(j->state);
  if (!j->start_ms)
    ty_buf_printf(out, "job %s: ended before it started", state);
  else if (killed_after_grace(j))
    ty_buf_printf(out,
                  "job %s: killed (SIGKILL) at the end of its kill grace before it reported a "
                  "training step: it did not stop in time and saved no stop checkpoint "
                  "(trainctl logs has its log)",
                  state);
  else if (j->state == TY_JOB_COMPLETED)
    ty_buf_printf(out,
                  "job %s: ended without a training step reported (a run resumed at its end "
                  "trains nothing; trainctl logs has its log)",
                  state);
  else
    ty_buf_printf(out, "job %s: ended without a training step reported (trainctl logs has its log)",
                  state);
}

void ty_cli_render_job_progress(const ty_cli_job_progress *j, int cols, ty_buf *out) {
  bool ended = ty_job_state_terminal(j->state);
  if (!j->progress || j->progress->total_steps == 0) {
    if (ended)
      render_no_step(j, out);
    else
      ty_buf_printf(out, "job %s: starting (no step reported yet)", ty_job_state_name(j->state));
    return;
  }
  /* Only a running job has an ETA (start 0): an ended one has nothing
   * left, a pending one (requeued) no rate. */
  ty_cli_render_progress_line(j->progress, j->state == TY_JOB_RUNNING ? j->start_ms : 0, cols, out);
  if (ended && killed_after_grace(j))
    ty_buf_printf(out, " (killed by SIGKILL at the end of its kill grace: no stop checkpoint)");
}

/* A running job's progress column: a graph job's step and loss, else the
 * share of its time limit used. width: the columns left on the line, < 0
 * for no limit (no terminal: every field, no bar). */
static void job_progress(const ty_cli_top *t, size_t i, int width, ty_buf *line) {
  const ty_cli_jobinfo *j = &t->jobs[i];
  const ty_train_progress *p = t->progress ? t->progress[i] : NULL;
  if (p && p->total_steps) {
    int64_t start_ms = j->state == TY_JOB_RUNNING ? j->start_ms : 0; /* an ETA while running */
    ty_cli_render_progress_line(p, start_ms, width < 0 ? 0 : width + 1, line);
    return;
  }
  if (j->spec.time_limit_s && j->start_ms) {
    double used = (double)(t->now_ms - j->start_ms) / 1000.0 / j->spec.time_limit_s;
    ty_buf_printf(line, "%3.0f%% of time limit", used > 1 ? 100.0 : used * 100);
    return;
  }
  ty_buf_printf(line, "-");
}

static void job_rows(const ty_cli_top *t, size_t max, ty_buf *line, ty_buf *out, int cols) {
  ty_buf_printf(line, "%-7s %-8s %-8s %-14s %5s %8s ", "JOB", "USER", "QUEUE", "NAME", "NODES",
                "TIME");
  ty_buf_printf(line, "PROGRESS");
  put_line(out, line, cols);
  size_t shown = 0, running = 0;
  for (size_t i = 0; i < t->n_jobs; i++) {
    const ty_cli_jobinfo *j = &t->jobs[i];
    if (j->state != TY_JOB_RUNNING) continue;
    if (running++ >= max) continue;
    shown++;
    char id[24], time[24];
    snprintf(id, sizeof(id), "%" PRIu64, j->id);
    ty_cli_format_elapsed(t->now_ms - j->start_ms, time, sizeof(time));
    put_cell(line, id, 7);
    put_cell(line, j->spec.user, 8);
    put_cell(line, j->spec.queue, 8);
    put_cell(line, j->spec.name, 14);
    ty_buf_printf(line, "%5u %8s ", j->spec.nodes, time);
    int used = (int)columns((const char *)line->data, line->len);
    int left = cols - 1 - used;
    job_progress(t, i, cols > 0 ? (left > 0 ? left : 0) : -1, line);
    put_line(out, line, cols);
  }
  if (running > shown) {
    ty_buf_printf(line, "... %zu more running jobs", running - shown);
    put_line(out, line, cols);
  }
}

int ty_cli_render_top(const ty_cli_top *t, int cols, int rows, ty_buf *out) {
  ty_buf line;
  ty_buf_init(&line);
  summary(t, &line, out, cols);
  ty_buf_append(out, "\n", 1);
  /* Nodes get up to a third of the screen, jobs the rest. */
  size_t body = rows > 8 ? (size_t)rows - 8 : 4;
  size_t max_nodes = rows > 0 ? (body / 3 > 2 ? body / 3 : 2) : SIZE_MAX;
  if (max_nodes >= t->n_nodes) max_nodes = t->n_nodes;
  node_rows(t, max_nodes, &line, out, cols);
  ty_buf_append(out, "\n", 1);
  size_t node_lines = max_nodes + (t->n_nodes > max_nodes);
  size_t max_jobs = rows > 0 ? (body > node_lines + 1 ? body - node_lines - 1 : 1) : SIZE_MAX;
  job_rows(t, max_jobs, &line, out, cols);
  ty_buf_close(&line);
  return 0;
}
