/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The output layer: jobs, nodes and cancel results as tables for people and
 * as JSON for scripts. Every function is a pure function of its arguments
 * (the clock comes in as `now_ms`) so tests can pin the exact text.
 *
 * JSON shape: listings are arrays with one record per line (shell scripts
 * count records with `grep -c`); field names follow proto/trainyard.proto;
 * states are their names ("RUNNING"); an empty queue is shown as "default".
 */
#include "cli/cli.h"
#include "cli/cli_history.h"
#include "cli/script.h"

#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ty_cli_format_elapsed(int64_t ms, char *out, size_t cap) {
  int64_t s = ms < 0 ? 0 : ms / 1000;
  int64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
  if (d)
    snprintf(out, cap, "%" PRId64 "-%02" PRId64 ":%02" PRId64 ":%02" PRId64, d, h, m, sec);
  else if (h)
    snprintf(out, cap, "%" PRId64 ":%02" PRId64 ":%02" PRId64, h, m, sec);
  else
    snprintf(out, cap, "%" PRId64 ":%02" PRId64, m, sec);
}

void ty_cli_format_span(int64_t s, char *out, size_t cap) {
  if (s >= 3600)
    snprintf(out, cap, "%" PRId64 "h%02" PRId64 "m", s / 3600, s / 60 % 60);
  else if (s >= 60)
    snprintf(out, cap, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
  else
    snprintf(out, cap, "%" PRId64 "s", s);
}

void ty_cli_format_size(uint64_t bytes, char *out, size_t cap) {
  static const char units[] = "KMGTPE";
  int u = -1;
  double v = (double)bytes;
  while (v >= 1024.0 && u < 5)
    v /= 1024.0, u++;
  if (u < 0)
    snprintf(out, cap, "%" PRIu64, bytes);
  else if (bytes % (1ull << (10 * (u + 1))) == 0)
    snprintf(out, cap, "%.0f%c", v, units[u]);
  else
    snprintf(out, cap, "%.1f%c", v, units[u]);
}

static const char *queue_name(const char *q) {
  return q && *q ? q : "default";
}

int64_t ty_cli_job_elapsed(const ty_cli_jobinfo *j, int64_t now_ms) {
  /* A requeued job pending again keeps its last run's start: not a run. */
  if (j->start_ms <= 0 || j->state == TY_JOB_PENDING) return 0;
  int64_t end = j->end_ms > 0 ? j->end_ms : now_ms;
  return end > j->start_ms ? end - j->start_ms : 0;
}

void ty_cli_job_nodes(const ty_cli_jobinfo *j, ty_buf *b) {
  for (size_t i = 0; i < j->nnodes; i++)
    ty_buf_printf(b, "%s%s", i ? "," : "", j->nodes[i]);
  if (j->nnodes == 0) ty_buf_printf(b, "%u", j->spec.nodes ? j->spec.nodes : 1);
  ty_buf_append(b, "", 1);
}

static void json_str_array(ty_json *js, const char *key, char **v, size_t n) {
  ty_json_key(js, key);
  ty_json_begin_array(js);
  for (size_t i = 0; i < n; i++)
    ty_json_string(js, v[i]);
  ty_json_end_array(js);
}

static void json_spec(ty_json *js, const ty_job_spec *s) {
  ty_json_key(js, "time_limit_s"), ty_json_uint(js, s->time_limit_s);
  ty_json_key(js, "no_requeue"), ty_json_bool(js, s->no_requeue);
  ty_json_key(js, "resources"), ty_json_begin_object(js);
  ty_json_key(js, "nodes"), ty_json_uint(js, s->nodes ? s->nodes : 1);
  ty_json_key(js, "tasks_per_node"), ty_json_uint(js, s->tasks_per_node ? s->tasks_per_node : 1);
  ty_json_key(js, "gpus_per_node"), ty_json_uint(js, s->gpus_per_node);
  ty_json_key(js, "cpus_per_task"), ty_json_uint(js, s->cpus_per_task ? s->cpus_per_task : 1);
  ty_json_key(js, "mem_per_node"), ty_json_uint(js, s->mem_per_node);
  ty_json_key(js, "mem_source");
  ty_json_string(js, s->mem_source != TY_MEM_ASKED ? ty_mem_source_name(s->mem_source)
                     : s->mem_per_node             ? "asked"
                                                   : "none");
  ty_json_key(js, "exclusive"), ty_json_bool(js, s->exclusive);
  ty_json_key(js, "required_nodes"), ty_json_begin_array(js);
  for (size_t i = 0; i < s->n_req_nodes; i++)
    ty_json_string(js, s->req_nodes[i]);
  ty_json_end_array(js);
  ty_json_key(js, "excluded_nodes"), ty_json_begin_array(js);
  for (size_t i = 0; i < s->n_exc_nodes; i++)
    ty_json_string(js, s->exc_nodes[i]);
  ty_json_end_array(js);
  ty_json_end_object(js);
  ty_json_key(js, "kind"), ty_json_string(js, s->kind == TY_JOB_KIND_GRAPH ? "graph" : "command");
  if (s->kind == TY_JOB_KIND_GRAPH) {
    ty_json_key(js, "graph"), ty_json_begin_object(js);
    ty_json_key(js, "model_path"), ty_json_string(js, s->model_path ? s->model_path : "");
    ty_json_end_object(js);
    return;
  }
  ty_json_key(js, "command"), ty_json_begin_object(js);
  json_str_array(js, "argv", s->argv, s->argc);
  json_str_array(js, "env", s->env, s->envc);
  ty_json_key(js, "cwd"), ty_json_string(js, s->cwd ? s->cwd : "");
  ty_json_end_object(js);
}

static void json_job(ty_json *js, const ty_cli_jobinfo *j) {
  ty_json_key(js, "id"), ty_json_uint(js, j->id);
  ty_json_key(js, "name"), ty_json_string(js, j->spec.name ? j->spec.name : "");
  ty_json_key(js, "user"), ty_json_string(js, j->spec.user ? j->spec.user : "");
  ty_json_key(js, "queue"), ty_json_string(js, queue_name(j->spec.queue));
  ty_json_key(js, "priority"), ty_json_int(js, j->spec.priority);
  ty_json_key(js, "state"), ty_json_string(js, ty_job_state_name(j->state));
  ty_json_key(js, "reason"), ty_json_string(js, j->reason ? j->reason : "");
  ty_json_key(js, "exit_code"), ty_json_int(js, j->exit_code);
  ty_json_key(js, "term_signal"), ty_json_int(js, j->term_signal);
  ty_json_key(js, "submit_time_ms"), ty_json_int(js, j->submit_ms);
  ty_json_key(js, "start_time_ms"), ty_json_int(js, j->start_ms);
  ty_json_key(js, "end_time_ms"), ty_json_int(js, j->end_ms);
  json_str_array(js, "nodes", j->nodes, j->nnodes);
  ty_json_key(js, "requeue_count"), ty_json_uint(js, j->requeue_count);
  ty_json_key(js, "ranks_ending"), ty_json_uint(js, j->ranks_ending);
  ty_json_key(js, "held"), ty_json_bool(js, j->held);
  if (j->array_job_id) {
    ty_json_key(js, "array_job_id"), ty_json_uint(js, j->array_job_id);
    ty_json_key(js, "array_task_id"), ty_json_uint(js, j->array_task_id);
  }
  ty_json_key(js, "dependency"), ty_json_string(js, j->dependency ? j->dependency : "");
  ty_json_key(js, "usage"), ty_json_begin_object(js);
  ty_json_key(js, "cpu_usec"), ty_json_uint(js, j->usage.cpu_usec);
  ty_json_key(js, "mem_peak_bytes"), ty_json_uint(js, j->usage.mem_peak_bytes);
  ty_json_key(js, "io_read_bytes"), ty_json_uint(js, j->usage.io_read_bytes);
  ty_json_key(js, "io_write_bytes"), ty_json_uint(js, j->usage.io_write_bytes);
  ty_json_key(js, "accounting"), ty_json_string(js, j->usage_measured ? "measured" : "allocated");
  ty_json_end_object(js);
  ty_json_key(js, "redacted"), ty_json_bool(js, j->redacted);
  ty_json_key(js, "abridged"), ty_json_bool(js, j->abridged);
  json_spec(js, &j->spec);
}

int ty_cli_render_jobs(const ty_cli_jobinfo *js, size_t n, int64_t now_ms, bool json, bool fold,
                       ty_buf *out) {
  if (!json) {
    ty_cli_format f;
    char err[TY_ERR_LEN];
    int rc = ty_cli_parse_format("--format", ty_cli_ls_default_format, ty_cli_ls_fields,
                                 ty_cli_n_ls_fields, &f, err, sizeof err);
    return rc ? rc : ty_cli_render_jobs_table(js, n, now_ms, fold, &f, NULL, out);
  }
  ty_json w;
  ty_json_init(&w, out);
  w.lines = true;
  ty_json_begin_array(&w);
  for (size_t i = 0; i < n; i++) {
    ty_json_begin_object(&w);
    json_job(&w, &js[i]);
    ty_json_end_object(&w);
  }
  ty_json_end_array(&w);
  return ty_json_finish(&w);
}

/* ---- show ------------------------------------------------------------------ */

void ty_cli_format_time(int64_t ms, char sep, char *out, size_t cap) {
  if (ms <= 0) {
    snprintf(out, cap, "-");
    return;
  }
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  char fmt[] = "%Y-%m-%d %H:%M:%S";
  fmt[8] = sep;
  localtime_r(&t, &tm);
  strftime(out, cap, fmt, &tm);
}

static void format_time(int64_t ms, char *out, size_t cap) {
  ty_cli_format_time(ms, ' ', out, cap);
}

/* Whether s holds bytes a terminal would act on instead of showing: C0 and
 * C1 controls (ESC starts a colour or a cursor move, U+009B is a CSI of its
 * own) or bytes that are not UTF-8 (a raw 0x9B is CSI on 8-bit terminals). */
static bool needs_escape(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t len = ty_utf8_decode(p + i, n - i, &cp);
    if (len == 0 || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return true;
    i += len;
  }
  return false;
}

/* $'...' quoting (bash's ANSI-C form, what ls prints for such names): every
 * control byte and every byte that is not UTF-8 as an escape, so the text
 * is shown, never acted on, and can be pasted back into a shell. */
static void ansi_c_quote(ty_buf *b, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  ty_buf_append(b, "$'", 2);
  for (size_t i = 0; i < n;) {
    uint32_t cp = 0;
    size_t len = ty_utf8_decode(p + i, n - i, &cp);
    if (len == 0 || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      if (len == 1 && p[i] >= '\a' && p[i] <= '\r') /* \a \b \t \n \v \f \r */
        ty_buf_printf(b, "\\%c", "abtnvfr"[p[i] - '\a']);
      else
        for (size_t k = 0; k < (len ? len : 1); k++)
          ty_buf_printf(b, "\\%03o", p[i + k]);
    } else if (p[i] == '\'' || p[i] == '\\') {
      ty_buf_printf(b, "\\%c", p[i]);
    } else {
      ty_buf_append(b, p + i, len);
    }
    i += len ? len : 1;
  }
  ty_buf_append(b, "'", 1);
}

void ty_cli_shown(ty_buf *b, const char *s) {
  if (needs_escape(s))
    ansi_c_quote(b, s);
  else
    ty_buf_printf(b, "%s", s);
}

/* Shell-quotes one word unless it is plainly safe, so a printed command can
 * be pasted back into a shell. */
static void shell_word(ty_buf *b, const char *w) {
  bool plain = *w != '\0';
  for (const char *p = w; *p && plain; p++)
    plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%", *p);
  if (plain) {
    ty_buf_printf(b, "%s", w);
    return;
  }
  if (needs_escape(w)) {
    ansi_c_quote(b, w);
    return;
  }
  ty_buf_append(b, "'", 1);
  for (const char *p = w; *p; p++)
    if (*p == '\'')
      ty_buf_append(b, "'\\''", 4);
    else
      ty_buf_append(b, p, 1);
  ty_buf_append(b, "'", 1);
}

static void kv(ty_buf *b, const char *key, const char *val) {
  ty_buf_printf(b, "  %-12s ", key);
  ty_cli_shown(b, val);
  ty_buf_append(b, "\n", 1);
}

static void show_resources(ty_buf *b, const ty_job_spec *s) {
  char mem[32] = "no limit", from[48] = "";
  if (s->mem_per_node) ty_cli_format_size(s->mem_per_node, mem, sizeof mem);
  /* Where a limit the job did not ask came from: the queue's or cluster's
   * default, or --mem=0 made the queue's max_mem. */
  if (s->mem_source != TY_MEM_ASKED)
    snprintf(from, sizeof from, " (%s)", ty_mem_source_name(s->mem_source));
  ty_buf_printf(b, "  %-12s %u node(s) x %u task(s), %u GPU(s)/node, %u CPU(s)/task, memory %s%s\n",
                "resources:", s->nodes ? s->nodes : 1, s->tasks_per_node ? s->tasks_per_node : 1,
                s->gpus_per_node, s->cpus_per_task ? s->cpus_per_task : 1, mem, from);
  if (s->exclusive)
    ty_buf_printf(b, "  %-12s yes: whole nodes, with all their CPUs, GPUs and memory\n",
                  "exclusive:");
  if (s->n_req_nodes) {
    ty_buf_printf(b, "  %-12s ", "nodelist:");
    ty_hostlist_write((const char *const *)s->req_nodes, s->n_req_nodes, b);
    b->len--; /* its NUL */
    ty_buf_printf(b, " (required, -w)\n");
  }
  if (s->n_exc_nodes) {
    ty_buf_printf(b, "  %-12s ", "exclude:");
    ty_hostlist_write((const char *const *)s->exc_nodes, s->n_exc_nodes, b);
    b->len--;
    ty_buf_printf(b, " (never used, -x)\n");
  }
}

static void show_command(ty_buf *b, const ty_job_spec *s) {
  if (s->kind == TY_JOB_KIND_GRAPH) {
    kv(b, "model:", s->model_path && *s->model_path ? s->model_path : "(inline bytes)");
    return;
  }
  const char *text, *out, *err;
  char *const *argv = s->argv;
  size_t argc = s->argc;
  bool script = ty_cli_script_view(s, &text, &out, &err, &argv, &argc);
  if (script) {
    const char *nl = strchr(text, '\n');
    ty_buf_printf(b, "  %-12s %zu bytes, %.*s\n", "script:", strlen(text),
                  (int)(nl ? nl - text : (ptrdiff_t)strlen(text)), text);
    kv(b, "output:", *out ? out : "kept by the worker (trainctl logs)");
    if (*err || *out) kv(b, "error:", *err ? err : "with the output");
  }
  ty_buf_printf(b, "  %-12s ", script ? "arguments:" : "command:");
  for (size_t i = 0; i < argc; i++) {
    if (i) ty_buf_append(b, " ", 1);
    shell_word(b, argv[i]);
  }
  ty_buf_append(b, "\n", 1);
  kv(b, "cwd:", s->cwd && *s->cwd ? s->cwd : "(the worker's)");
  for (size_t i = 0; i < s->envc; i++)
    kv(b, i ? "" : "env:", s->env[i]);
}

/* The array spec and the dependency conditions a job was submitted with. */
static void show_array(ty_buf *b, const ty_job_spec *s) {
  ty_buf v;
  ty_buf_init(&v);
  if (s->array.n && ty_array_format(&s->array, &v) == 0 && ty_buf_append(&v, "", 1) == 0)
    kv(b, "array:", (char *)v.data);
  v.len = 0;
  if (s->n_deps && ty_dep_format(s->deps, s->n_deps, s->deps_any, &v) == 0 &&
      ty_buf_append(&v, "", 1) == 0)
    kv(b, "depends on:", (char *)v.data);
  ty_buf_close(&v);
}

/* "12.3 s CPU, 45.1 MiB peak memory, 1.0 MiB read, 2.0 MiB written"; CPU
 * time that no cgroup measured (CPUs held x wall clock) says so. */
static void show_usage(ty_buf *b, const ty_task_usage *u, bool measured) {
  if (!u->cpu_usec && !u->mem_peak_bytes && !u->io_read_bytes && !u->io_write_bytes) return;
  char buf[200];
  snprintf(buf, sizeof buf, "%.1f s CPU%s, %.1f MiB peak memory, %.1f MiB read, %.1f MiB written",
           (double)u->cpu_usec / 1e6, measured ? "" : " (allocated, not all measured)",
           (double)u->mem_peak_bytes / 1048576.0, (double)u->io_read_bytes / 1048576.0,
           (double)u->io_write_bytes / 1048576.0);
  kv(b, "usage:", buf);
}

/* A job pending again after a requeue has not started this time: its
 * start is the last run's, said so. */
static void show_started(const ty_cli_jobinfo *j, ty_buf *b) {
  char t1[64], buf[128];
  format_time(j->start_ms, t1, sizeof t1);
  if (j->state == TY_JOB_PENDING && j->start_ms > 0) {
    snprintf(buf, sizeof buf, "- (pending again; its last run started %s)", t1);
    kv(b, "started:", buf);
  } else {
    kv(b, "started:", t1);
  }
}

static void show_text(const ty_cli_jobinfo *j, int64_t now_ms, ty_buf *b) {
  char t1[64], buf[128];
  ty_buf_printf(b, "Job %" PRIu64 " (", j->id);
  if (j->array_job_id)
    ty_buf_printf(b, "element %" PRIu64 "_%" PRIu32 ", ", j->array_job_id, j->array_task_id);
  ty_cli_shown(b, j->spec.name ? j->spec.name : "");
  ty_buf_append(b, ")\n", 2);
  if (j->ranks_ending) {
    snprintf(buf, sizeof buf, "%s (completing: %" PRIu32 " rank%s still ending, holding %s)",
             ty_job_state_name(j->state), j->ranks_ending, j->ranks_ending == 1 ? "" : "s",
             j->ranks_ending == 1 ? "its resources" : "their resources");
    kv(b, "state:", buf);
  } else {
    kv(b, "state:", ty_job_state_name(j->state));
  }
  if (j->reason && *j->reason) kv(b, "reason:", j->reason);
  if (j->held)
    kv(b, "held:",
       ty_job_state_terminal(j->state)
           ? "yes (kept for a requeue, which waits until trainctl job release ID)"
           : "yes (trainctl job release ID lets it start)");
  if (j->dependency && *j->dependency) kv(b, "dependency:", j->dependency);
  show_array(b, &j->spec);
  kv(b, "user:", j->spec.user ? j->spec.user : "");
  snprintf(buf, sizeof buf, "%s, priority %" PRId32, queue_name(j->spec.queue), j->spec.priority);
  if (j->state == TY_JOB_PENDING)
    snprintf(buf + strlen(buf), sizeof buf - strlen(buf), " (scheduler: %.4f)", j->priority);
  kv(b, "queue:", buf);
  format_time(j->submit_ms, t1, sizeof t1), kv(b, "submitted:", t1);
  show_started(j, b);
  format_time(j->end_ms, t1, sizeof t1), kv(b, "ended:", t1);
  ty_cli_format_elapsed(ty_cli_job_elapsed(j, now_ms), t1, sizeof t1), kv(b, "elapsed:", t1);
  if (j->spec.time_limit_s)
    ty_cli_format_elapsed((int64_t)j->spec.time_limit_s * 1000, t1, sizeof t1);
  kv(b, "time limit:", j->spec.time_limit_s ? t1 : "UNLIMITED"); /* traind set the default */
  if (j->spec.warn_signal) {
    const char *name = sigabbrev_np((int)j->spec.warn_signal);
    snprintf(buf, sizeof buf, "SIG%s %" PRIu32 " s before the time limit%s (--signal)",
             name ? name : "?", j->spec.warn_before_s,
             j->spec.warn_batch_only ? ", to the batch script alone" : "");
    kv(b, "signal:", buf);
  }
  show_resources(b, &j->spec);
  if (j->redacted) /* a graph job's model path too */
    kv(b, j->spec.kind == TY_JOB_KIND_GRAPH ? "model:" : "command:",
       "(withheld: only its owner and operators see it)");
  else
    show_command(b, &j->spec);
  show_usage(b, &j->usage, j->usage_measured);
  ty_buf nodes;
  ty_buf_init(&nodes);
  ty_cli_job_nodes(j, &nodes);
  kv(b, "nodes:", j->nnodes ? (char *)nodes.data : "-");
  ty_buf_close(&nodes);
  /* A job that has not ended has no exit code (a requeued one has none of
   * its current run either). */
  if (ty_job_state_terminal(j->state) && j->redacted) {
    kv(b, "exit code:", "(withheld: only its owner and operators see it)");
  } else if (ty_job_state_terminal(j->state)) {
    if (j->term_signal)
      snprintf(buf, sizeof buf, "%" PRId32 " (signal %" PRId32 ")", j->exit_code, j->term_signal);
    else
      snprintf(buf, sizeof buf, "%" PRId32, j->exit_code);
    kv(b, "exit code:", buf);
  }
  snprintf(buf, sizeof buf, "%" PRIu32, j->requeue_count), kv(b, "requeued:", buf);
  if (j->spec.no_requeue)
    snprintf(buf, sizeof buf,
             "no-requeue (--no-requeue): never requeued; node loss ends it NODE_FAIL, "
             "preemption PREEMPTED");
  else if (j->spec.max_rank_failure_requeues)
    snprintf(buf, sizeof buf, "up to %" PRIu32 " times when a rank fails (--requeue-on-failure)",
             j->spec.max_rank_failure_requeues);
  else
    snprintf(buf, sizeof buf, "on preemption or node loss only");
  kv(b, "requeue policy:", buf);
  if (j->last_ckpt_ms) format_time(j->last_ckpt_ms, t1, sizeof t1), kv(b, "last checkpoint:", t1);
}

static int events_table(const ty_cli_event *ev, size_t n, ty_buf *out) {
  static const char *const hdr[] = {"TIME", "FROM", "TO", "REASON"};
  ty_cli_table *t = ty_cli_table_create(hdr, NULL, TY_ARRAY_LEN(hdr));
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    char when[64];
    format_time(ev[i].time_ms, when, sizeof when);
    const char *row[] = {when, ev[i].from ? ty_job_state_name(ev[i].from) : "-",
                         ty_job_state_name(ev[i].to), ev[i].reason};
    rc = ty_cli_table_add(t, row);
  }
  if (rc == 0) rc = ty_buf_printf(out, "Events:\n");
  if (rc == 0) rc = ty_cli_table_render(t, out);
  ty_cli_table_destroy(t);
  return rc;
}

/* [D-]HH:MM:SS, as scontrol writes RunTime and TimeLimit. */
static void slurm_duration(int64_t s, char *out, size_t cap) {
  if (s >= 86400)
    snprintf(out, cap, "%" PRId64 "-%02d:%02d:%02d", s / 86400, (int)(s % 86400 / 3600),
             (int)(s % 3600 / 60), (int)(s % 60));
  else
    snprintf(out, cap, "%02d:%02d:%02d", (int)(s / 3600), (int)(s % 3600 / 60), (int)(s % 60));
}

static void slurm_time(ty_buf *b, const char *key, int64_t ms) {
  char t[64];
  ty_cli_format_time(ms, 'T', t, sizeof t);
  ty_buf_printf(b, " %s=%s", key, ms > 0 ? t : "Unknown");
}

/* " KEY=VALUE" with VALUE one word: its spaces as '_' ("afterok:5(3 of 3
 * ended)" -> "afterok:5(3_of_3_ended)"), so the line splits on spaces. */
static void slurm_word(ty_buf *b, const char *key, const char *value) {
  ty_buf_printf(b, " %s=", key);
  for (const char *p = value; *p; p++)
    ty_buf_printf(b, "%c", *p == ' ' ? '_' : *p);
}

/* A group's name from /etc/group read as a file (fgetgrent, no NSS module:
 * trainctl is linked statically, and a getgrgid there can crash inside
 * libnss_systemd); "" when it is not there (a directory service's group),
 * which scontrol prints as GroupId=(GID) too. */
static const char *group_name(uint32_t gid, char *buf, size_t cap) {
  buf[0] = '\0';
  FILE *f = fopen("/etc/group", "re");
  if (!f) return buf;
  for (struct group *g; (g = fgetgrent(f));)
    if (g->gr_gid == gid) {
      snprintf(buf, cap, "%s", g->gr_name);
      break;
    }
  fclose(f);
  return buf;
}

int ty_cli_render_job_slurm(const ty_cli_jobinfo *j, int64_t now_ms, ty_buf *out) {
  const ty_job_spec *s = &j->spec;
  char t[64];
  ty_buf_printf(out, "JobId=%" PRIu64, j->id);
  if (j->array_job_id)
    ty_buf_printf(out, " ArrayJobId=%" PRIu64 " ArrayTaskId=%" PRIu32, j->array_job_id,
                  j->array_task_id);
  ty_buf_printf(out, " JobName=%s UserId=%s", s->name ? s->name : "", s->user ? s->user : "");
  char group[64];
  if (s->has_uid)
    ty_buf_printf(out, "(%" PRIu32 ") GroupId=%s(%" PRIu32 ")", s->uid,
                  group_name(s->gid, group, sizeof group), s->gid);
  char why[64];
  ty_buf_printf(out, " Priority=%" PRId32 " JobState=%s Reason=%s", s->priority,
                ty_cli_state_name(j), ty_cli_reason_name(j, why, sizeof why));
  slurm_word(out, "Dependency", j->dependency && *j->dependency ? j->dependency : "(null)");
  ty_buf_printf(out, " Requeue=%d Restarts=%" PRIu32, !s->no_requeue, j->requeue_count);
  if (ty_job_state_terminal(j->state) && j->redacted)
    ty_buf_printf(out, " ExitCode=(withheld)");
  else if (ty_job_state_terminal(j->state))
    ty_buf_printf(out, " ExitCode=%" PRId32 ":%" PRId32, j->exit_code, j->term_signal);
  else
    ty_buf_printf(out, " ExitCode=0:0");
  slurm_duration(ty_cli_job_elapsed(j, now_ms) / 1000, t, sizeof t);
  ty_buf_printf(out, " RunTime=%s", t);
  slurm_duration(s->time_limit_s, t, sizeof t);
  ty_buf_printf(out, " TimeLimit=%s", s->time_limit_s ? t : "UNLIMITED");
  slurm_time(out, "SubmitTime", j->submit_ms);
  /* pending again after a requeue: this run has not started (RunTime=0) */
  slurm_time(out, "StartTime", j->state == TY_JOB_PENDING ? 0 : j->start_ms);
  slurm_time(out, "EndTime", j->end_ms);
  ty_buf_printf(out, " Partition=%s", queue_name(s->queue));
  ty_buf nodes;
  ty_buf_init(&nodes);
  ty_hostlist_write((const char *const *)j->nodes, j->nnodes, &nodes);
  ty_buf_printf(out, " NodeList=%s", j->nnodes ? (char *)nodes.data : "(null)");
  ty_buf_close(&nodes);
  uint32_t n = s->nodes ? s->nodes : 1, tasks = s->tasks_per_node ? s->tasks_per_node : 1;
  uint32_t cpus = s->cpus_per_task ? s->cpus_per_task : 1;
  ty_buf_printf(out,
                " NumNodes=%" PRIu32 " NumCPUs=%" PRIu64 " NumTasks=%" PRIu64 " CPUs/Task=%" PRIu32,
                n, (uint64_t)n * tasks * cpus, (uint64_t)n * tasks, cpus);
  if (!j->redacted) ty_buf_printf(out, " WorkDir=%s", s->cwd && *s->cwd ? s->cwd : "(null)");
  return ty_buf_printf(out, "\n");
}

int ty_cli_render_job(const ty_cli_jobinfo *j, const ty_cli_event *ev, size_t nev, int64_t now_ms,
                      bool json, ty_buf *out) {
  if (!json) {
    show_text(j, now_ms, out);
    return events_table(ev, nev, out);
  }
  ty_json w;
  ty_json_init(&w, out);
  ty_json_begin_object(&w);
  json_job(&w, j);
  if (j->spec.kind == TY_JOB_KIND_GRAPH) /* its plan is its owner's and the operators' */
    ty_json_key(&w, "plan_withheld"), ty_json_bool(&w, j->plan_withheld);
  ty_json_key(&w, "events");
  ty_json_begin_array(&w);
  for (size_t i = 0; i < nev; i++) {
    ty_json_begin_object(&w);
    ty_json_key(&w, "time_ms"), ty_json_int(&w, ev[i].time_ms);
    ty_json_key(&w, "from_state");
    ty_json_string(&w, ev[i].from ? ty_job_state_name(ev[i].from) : "");
    ty_json_key(&w, "to_state"), ty_json_string(&w, ty_job_state_name(ev[i].to));
    ty_json_key(&w, "reason"), ty_json_string(&w, ev[i].reason ? ev[i].reason : "");
    ty_json_end_object(&w);
  }
  ty_json_end_array(&w);
  ty_json_end_object(&w);
  return ty_json_finish(&w);
}

/* ---- nodes, cancel, submit -------------------------------------------------- */

static void heartbeat_age(int64_t last_ms, int64_t now_ms, char *out, size_t cap) {
  if (last_ms <= 0)
    snprintf(out, cap, "-");
  else
    snprintf(out, cap, "%" PRId64 "s ago", now_ms > last_ms ? (now_ms - last_ms) / 1000 : 0);
}

static int nodes_table(const ty_cli_node *ns, size_t n, int64_t now_ms, ty_buf *out) {
  static const char *const hdr[] = {"NAME", "STATE", "CPUS",      "GPUS",
                                    "MEM",  "TASKS", "HEARTBEAT", "REASON"};
  static const bool right[] = {false, false, true, true, true, true, true, false};
  ty_cli_table *t = ty_cli_table_create(hdr, right, TY_ARRAY_LEN(hdr));
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const ty_cli_node *nd = &ns[i];
    char cpus[32], gpus[32], mem[32], tasks[16], hb[32];
    snprintf(cpus, sizeof cpus, "%" PRIu32 "/%" PRIu32, nd->cpus_used, nd->cpus);
    snprintf(gpus, sizeof gpus, "%" PRIu32 "/%" PRIu32, nd->gpus_used, nd->gpus);
    ty_cli_format_size(nd->memory, mem, sizeof mem);
    snprintf(tasks, sizeof tasks, "%" PRIu32, nd->running_tasks);
    heartbeat_age(nd->last_heartbeat_ms, now_ms, hb, sizeof hb);
    const char *row[] = {nd->name,  ty_node_state_name(nd->state), cpus, gpus, mem, tasks, hb,
                         nd->reason};
    rc = ty_cli_table_add(t, row);
  }
  if (rc == 0) rc = ty_cli_table_render(t, out);
  ty_cli_table_destroy(t);
  return rc;
}

static void json_node(ty_json *w, const ty_cli_node *nd) {
  ty_json_begin_object(w);
  ty_json_key(w, "name"), ty_json_string(w, nd->name);
  ty_json_key(w, "state"), ty_json_string(w, ty_node_state_name(nd->state));
  ty_json_key(w, "cpus"), ty_json_uint(w, nd->cpus);
  ty_json_key(w, "cpus_used"), ty_json_uint(w, nd->cpus_used);
  ty_json_key(w, "gpus"), ty_json_uint(w, nd->gpus);
  ty_json_key(w, "gpus_used"), ty_json_uint(w, nd->gpus_used);
  ty_json_key(w, "memory"), ty_json_uint(w, nd->memory);
  ty_json_key(w, "running_tasks"), ty_json_uint(w, nd->running_tasks);
  ty_json_key(w, "io_addr"), ty_json_string(w, nd->io_addr);
  ty_json_key(w, "last_heartbeat_ms"), ty_json_int(w, nd->last_heartbeat_ms);
  ty_json_key(w, "topology"), ty_json_string(w, nd->topology);
  ty_json_key(w, "reason"), ty_json_string(w, nd->reason);
  ty_json_key(w, "version"), ty_json_string(w, nd->version ? nd->version : "");
  ty_json_key(w, "switch"), ty_json_string(w, nd->switch_name ? nd->switch_name : "");
  ty_json_end_object(w);
}

int ty_cli_render_nodes(const ty_cli_node *ns, size_t n, int64_t now_ms, bool json, ty_buf *out) {
  if (!json) return nodes_table(ns, n, now_ms, out);
  ty_json w;
  ty_json_init(&w, out);
  w.lines = true;
  ty_json_begin_array(&w);
  for (size_t i = 0; i < n; i++)
    json_node(&w, &ns[i]);
  ty_json_end_array(&w);
  return ty_json_finish(&w);
}

int ty_cli_render_cancel(const ty_cancel_result *rs, size_t n, bool json, ty_buf *out,
                         ty_buf *errs) {
  if (!json) {
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
      char name[48];
      ty_job_ref_format(&(ty_job_ref){rs[i].job_id, rs[i].has_task, rs[i].task}, name, sizeof name);
      if (rs[i].status == 0 && rs[i].cancelled > 1)
        rc = ty_buf_printf(out, "Cancelled array %s (%u jobs)\n", name, rs[i].cancelled);
      else if (rs[i].status == 0)
        rc = ty_buf_printf(out, "Cancelled job %s\n", name);
      else if (rs[i].message[0])
        rc = ty_buf_printf(errs, "trainctl: %s\n", rs[i].message);
      else
        rc = ty_buf_printf(errs, "trainctl: job %s: %s\n", name, ty_strerror(rs[i].status));
    }
    return rc;
  }
  ty_json w;
  ty_json_init(&w, out);
  w.lines = true;
  ty_json_begin_array(&w);
  for (size_t i = 0; i < n; i++) {
    ty_json_begin_object(&w);
    ty_json_key(&w, "id"), ty_json_uint(&w, rs[i].job_id);
    if (rs[i].has_task) ty_json_key(&w, "task"), ty_json_uint(&w, rs[i].task);
    ty_json_key(&w, "cancelled"), ty_json_bool(&w, rs[i].status == 0);
    ty_json_key(&w, "status"), ty_json_int(&w, rs[i].status);
    ty_json_key(&w, "message"), ty_json_string(&w, rs[i].message);
    ty_json_key(&w, "jobs"), ty_json_uint(&w, rs[i].cancelled); /* an array's elements */
    ty_json_end_object(&w);
  }
  ty_json_end_array(&w);
  return ty_json_finish(&w);
}

int ty_cli_cancel_exit(const ty_cancel_result *rs, size_t n) {
  int code = TY_CLI_EXIT_OK;
  for (size_t i = 0; i < n; i++) {
    int c = ty_cli_exit_for_status(TY_CLI_OP_JOB, rs[i].status);
    if (c == TY_CLI_EXIT_NOTFOUND) return c;
    if (c != TY_CLI_EXIT_OK) code = c;
  }
  return code;
}

int ty_cli_render_submitted(uint64_t id, uint32_t tasks, bool quiet, bool json, ty_buf *out) {
  if (json && tasks)
    return ty_buf_printf(out, "{\"id\":%" PRIu64 ",\"array_tasks\":%" PRIu32 "}\n", id, tasks);
  if (json) return ty_buf_printf(out, "{\"id\":%" PRIu64 "}\n", id);
  if (quiet) return ty_buf_printf(out, "%" PRIu64 "\n", id);
  /* sbatch's words, an array's too: scripts take the id as the fourth
   * word (awk '{print $4}') or the last (${out##* }). */
  return ty_buf_printf(out, "Submitted batch job %" PRIu64 "\n", id);
}
