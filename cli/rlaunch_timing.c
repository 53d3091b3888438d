/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rlaunch --timing: where one launch's milliseconds went, stage by stage,
 * from the client's clock (a timeline from main() to the last exit) and
 * the controller's and worker's own accounts (durations, each on its own
 * clock, indented under the client stage that contains them); and the
 * pending status line's countdown, in minutes rather than raw seconds.
 * Pure formatting, unit-tested in tests/unit/cli.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/rlaunch.h"
#include "proto/methods.h"

/* ms between two client stamps; -1 when either is missing. */
static double span(uint64_t from_ns, uint64_t to_ns) {
  return from_ns && to_ns >= from_ns ? (double)(to_ns - from_ns) / 1e6 : -1;
}

static void line(FILE *f, const char *who, const char *stage, double ms, const char *what) {
  if (ms < 0)
    fprintf(f, "rlaunch:   %-10s %-14s %9s    %s\n", who, stage, "-", what);
  else
    fprintf(f, "rlaunch:   %-10s %-14s %9.3f ms %s\n", who, stage, ms, what);
}

static double us(uint64_t v) {
  return v ? (double)v / 1e3 : -1;
}

static void controller_part(FILE *f, const ty_rl_launch_times *t) {
  const ty_rl_rank_times *r = &t->rank0;
  const ty_launch_timing *c = &t->controller;
  line(f, "client", "submit", span(t->submit_ns, t->stored_ns), "SubmitJob sent -> job stored");
  line(f, "  traind", "checks", us(c->checks_us), "received -> its txn queued");
  line(f, "  traind", "commit", us(c->commit_us), "queued -> durable (group commit)");
  line(f, "client", "placement", span(t->stored_ns, t->placed_ns),
       "job stored -> placement pushed to us");
  line(f, "  traind", "queued", us(c->queued_us), "durable -> the scheduling pass began");
  line(f, "  traind", "pass", us(c->pass_us), "pass began -> placed");
  line(f, "  traind", "start commit", us(c->start_commit_us), "placed -> RUNNING durable");
  line(f, "  traind", TY_M_LAUNCH_TASK, us(c->launch_us), "RUNNING durable -> launch sent");
  line(f, "client", "attach", span(t->placed_ns, r->attached_ns),
       "placement -> attached to rank 0");
  line(f, "client", "  setup", span(t->placed_ns, r->connect_ns), "-> connecting to the worker");
  line(f, "client", "  tcp", span(r->connect_ns, r->connected_ns), "connected to the worker");
  line(f, "client", "  admitted", span(r->connected_ns, r->attached_ns), "Attach sent -> attached");
}

static void worker_part(FILE *f, const ty_rl_launch_times *t) {
  const ty_rl_rank_times *r = &t->rank0;
  const ty_task_timing *w = &r->worker;
  line(f, "  worker", "prepare", us(w->prepare_us), "LaunchTask checked -> stdio ready");
  line(f, "  worker", "spawn", us(w->spawn_us), "stdio ready -> process started");
  fprintf(f, "rlaunch:   %-10s %-14s %9.3f ms %s\n", "  worker", "attach at",
          (double)w->attach_us / 1e3, "after the start (< 0: the attach waited for it)");
  line(f, "client", "first byte", span(r->attached_ns, r->first_byte_ns),
       "attached -> first output byte");
  line(f, "  worker", "first byte", us(w->first_output_us), "process start -> first byte read");
  line(f, "client", "exit", span(r->first_byte_ns ? r->first_byte_ns : r->attached_ns, r->exit_ns),
       "-> the exit reached us");
  line(f, "  worker", "exit", us(w->exit_us), "process start -> exit reaped");
  line(f, "client", "end", span(r->exit_ns, t->done_ns), "-> every rank ended");
  line(f, "  traind", "end", us(t->controller.end_us), "last rank's report -> end durable");
}

void ty_rl_print_timing(FILE *f, uint64_t job_id, const ty_rl_launch_times *t) {
  fprintf(f, "rlaunch: timing of job %" PRIu64 " (ms; traind and worker on their own clocks)\n",
          job_id);
  line(f, "client", "start", span(t->main_ns, t->connect_ns), "main() -> connecting");
  line(f, "client", "connect", span(t->connect_ns, t->connected_ns), "to the controller");
  controller_part(f, t);
  worker_part(f, t);
  line(f, "client", "total", span(t->main_ns, t->done_ns), "main() -> every rank ended");
  fprintf(f, "rlaunch: requests to the controller while waiting for the placement: %" PRIu64 "\n",
          t->requests_waiting);
}

/* ---- the pending countdown ------------------------------------------------------------- */

/* Appends n bytes of s to out (cut at out_len - 1), NUL-ended; the new length. */
static size_t append(char *out, size_t out_len, size_t o, const char *s, size_t n) {
  if (n > out_len - 1 - o) n = out_len - 1 - o;
  memcpy(out + o, s, n);
  out[o + n] = '\0';
  return o + n;
}

void ty_rl_countdown_text(const char *reason, char *out, size_t out_len) {
  static const char mark[] = "start in ";
  size_t o = 0;
  if (!out_len) return;
  out[0] = '\0';
  while (*reason) {
    const char *m = strstr(reason, mark);
    const char *num = m ? m + sizeof mark - 1 : reason + strlen(reason);
    o = append(out, out_len, o, reason, (size_t)(num - reason));
    reason = num;
    char *end = NULL;
    long long s = m && isdigit((unsigned char)*num) ? strtoll(num, &end, 10) : -1;
    /* "N s" and a word's end, or it is not the countdown */
    if (s < 0 || strncmp(end, " s", 2) != 0 || isalnum((unsigned char)end[2])) continue;
    char t[32]; /* the scheduler's exact seconds (for `why` and scripts), read at a glance */
    ty_cli_format_span(s, t, sizeof t);
    o = append(out, out_len, o, t, strlen(t));
    reason = end + 2;
  }
}
