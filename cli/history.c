/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The testable core of `trainctl history` (accounting, like sacct): its
 * command line, its named fields, and the jobs as text or JSON (`node show`
 * is node_show.c's). Pure: the clock comes in as now_ms.
 *
 * CPU time and peak memory are measured by the worker from each rank's
 * cgroup when it has a usable hierarchy; a rank without one counts wall
 * clock x the CPUs held. GPU time is always the allocation (wall clock x
 * the GPUs held): cgroups do not measure GPUs. The text marks allocated
 * times with "~" and says so under the table; JSON says "accounting":
 * "measured" or "allocated" (of CPU time) per job and rank.
 */
#include "cli/cli_internal.h"
#include "cli/cli_history.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fields ------------------------------------------------------------------------------ */

enum {
  F_ID,
  F_NAME,
  F_USER,
  F_QUEUE,
  F_STATE,
  F_EXIT,
  F_REASON,
  F_SUBMIT,
  F_START,
  F_END,
  F_ELAPSED,
  F_TIMELIMIT,
  F_NODES,
  F_CPUS,
  F_GPUS,
  F_REQMEM,
  F_CPUTIME,
  F_GPUTIME,
  F_MAXMEM,
  F_REQUEUES,
  F_RAWID,
  F_NCPUS,
  F_NNODES,
  F_TOTALCPU,
  F_CPUTIMERAW,
  F_COUNT
};

const ty_cli_field ty_cli_history_fields[] = {
    [F_ID] = {"id", "ID", false,
              "job id: 123, 123_7 (array element), 123.R (rank R), 123.R#2 (its 2nd run)"},
    [F_NAME] = {"name", "NAME", false, "job name"},
    [F_USER] = {"user", "USER", false, "owner"},
    [F_QUEUE] = {"queue", "QUEUE", false, "queue"},
    [F_STATE] = {"state", "STATE", false, "job state (a rank's: EXITED, SIGNALED, ...)"},
    [F_EXIT] = {"exit", "EXIT", true, "exit code:signal, like sacct's ExitCode"},
    [F_REASON] = {"reason", "REASON", false, "why it ended (or waits)"},
    [F_SUBMIT] = {"submit", "SUBMIT", false, "submit time"},
    [F_START] = {"start", "START", false, "start time"},
    [F_END] = {"end", "END", false, "end time"},
    [F_ELAPSED] = {"elapsed", "ELAPSED", true, "run time"},
    [F_TIMELIMIT] = {"timelimit", "TIMELIMIT", true, "time limit"},
    [F_NODES] = {"nodes", "NODES", false, "node list (of the last run)"},
    [F_CPUS] = {"cpus", "CPUS", true, "CPUs allocated"},
    [F_GPUS] = {"gpus", "GPUS", true, "GPUs allocated"},
    [F_REQMEM] = {"reqmem", "REQMEM", true, "memory requested"},
    [F_CPUTIME] = {"cputime", "CPUTIME", true, "CPU time (~: allocated = elapsed x CPUs)"},
    [F_GPUTIME] = {"gputime", "GPUTIME", true, "GPU time (~: allocated = elapsed x GPUs)"},
    [F_MAXMEM] = {"maxmem", "MAXMEM", true, "peak memory of the largest rank (- = not measured)"},
    [F_REQUEUES] = {"requeues", "REQUEUES", true, "times requeued"},
    [F_RAWID] = {"rawid", "JOBIDRAW", false,
                 "the job's own id, an array element's too (sacct's JobIDRaw)"},
    [F_NCPUS] = {"ncpus", "NCPUS", true, "CPUs allocated (sacct's NCPUS, beside its AllocCPUS)"},
    [F_NNODES] = {"numnodes", "NNODES", true, "how many nodes (of the last run)"},
    [F_TOTALCPU] = {"totalcpu", "TOTALCPU", true,
                    "CPU time used, to the millisecond (sacct's TotalCPU; ~: allocated)"},
    [F_CPUTIMERAW] = {"cputimeraw", "CPUTIMERAW", true,
                      "the allocation in seconds: elapsed x CPUs (sacct's CPUTimeRAW)"},
};
const size_t ty_cli_n_history_fields = F_COUNT;

static const char default_format[] = "id,name,user,queue,state,exit,elapsed,cpus,gpus,cputime,"
                                     "gputime,maxmem,nodes";

/* ---- command line ------------------------------------------------------------------------ */

enum {
  H_JSON = TY__CLI_OPT_FIRST,
  H_RANKS,
  H_LIMIT,
  H_HELP_FORMAT,
  H_NAME,
  H_NODELIST = 'N',
  H_QUEUE,
  H_QOS = 'q', /* sacct's -q/--qos, not a queue: refused with a pointer */
  H_BRIEF = 'b',
  H_PARTITION = 'r',
  H_ALLOCATIONS = 'X',
  H_PARSABLE = 'p',
  H_PARSABLE2 = 'P',
  H_USER = 'u',
  H_ALL = 'a',
  H_SINCE = 'S',
  H_UNTIL = 'E',
  H_STATE = 's',
  H_JOB = 'j',
  H_FORMAT = 'o',
  H_NOHEADER = 'n',
  H_HELP = 'h'
};
static const struct option history_opts[] = {
    {"user", required_argument, NULL, H_USER},
    {"all-users", no_argument, NULL, H_ALL},
    {"since", required_argument, NULL, H_SINCE},
    {"until", required_argument, NULL, H_UNTIL},
    {"state", required_argument, NULL, H_STATE},
    {"queue", required_argument, NULL, H_QUEUE},
    /* sacct's long names of the same options (its -a, -S, -E, -r, -b) */
    {"allusers", no_argument, NULL, H_ALL},
    {"starttime", required_argument, NULL, H_SINCE},
    {"endtime", required_argument, NULL, H_UNTIL},
    {"partition", required_argument, NULL, H_PARTITION},
    {"brief", no_argument, NULL, H_BRIEF},
    {"name", required_argument, NULL, H_NAME},
    {"nodelist", required_argument, NULL, H_NODELIST},
    {"qos", required_argument, NULL, H_QOS},
    {"job", required_argument, NULL, H_JOB},
    {"jobs", required_argument, NULL, H_JOB}, /* sacct's spelling */
    {"parsable", no_argument, NULL, H_PARSABLE},
    {"parsable2", no_argument, NULL, H_PARSABLE2},
    {"allocations", no_argument, NULL, H_ALLOCATIONS},
    {"ranks", no_argument, NULL, H_RANKS},
    {"limit", required_argument, NULL, H_LIMIT},
    {"format", required_argument, NULL, H_FORMAT},
    {"noheader", no_argument, NULL, H_NOHEADER},
    {"json", no_argument, NULL, H_JSON},
    {"help-format", no_argument, NULL, H_HELP_FORMAT},
    {"help", no_argument, NULL, H_HELP},
    {NULL, 0, NULL, 0},
};

typedef struct history_ctx {
  ty_cli_history_args *a;
  int64_t now_ms;
  bool brief; /* sacct -b: JobID, State, ExitCode unless --format says */
} history_ctx;

static int text_opt(const char *what, char **field, const char *v, char *err, size_t err_len) {
  if (!*v) return ty_errf(err, err_len, TY_EINVAL, "%s: must not be empty", what);
  free(*field);
  *field = ty_strdup(v);
  return 0;
}

/* --user U,U (sacct's list; its uids are read by ty_cli_resolve_users):
 * a->user is the one user when it is one. */
static int add_users(ty_cli_history_args *a, const char *v, char *err, size_t err_len) {
  if (!*v) return ty_errf(err, err_len, TY_EINVAL, "--user: must not be empty");
  int rc = ty__cli_add_names("--user", v, &a->users, &a->nusers, err, err_len);
  free(a->user);
  a->user = rc == 0 && a->nusers == 1 ? ty_strdup(a->users[0]) : NULL;
  return rc;
}

static void add_id(ty_cli_history_args *a, uint64_t id) {
  for (size_t i = 0; i < a->nids; i++)
    if (a->ids[i] == id) return;
  a->ids = ty_xrealloc(a->ids, (a->nids + 1) * sizeof *a->ids);
  a->ids[a->nids++] = id;
}

/* --job 12,13_2,14.batch: jobs (an array's id names its elements), array
 * elements and, as sacct takes them, steps (their job). */
static int add_ids(ty_cli_history_args *a, const char *v, char *err, size_t err_len) {
  size_t before = a->nrefs;
  int rc = ty_job_ref_list_parse("--job", v, true, &a->refs, &a->nrefs, err, err_len);
  for (size_t i = before; rc == 0 && i < a->nrefs; i++)
    add_id(a, a->refs[i].id);
  return rc;
}

static int history_option(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  history_ctx *c = ud;
  ty_cli_history_args *a = c->a;
  (void)it;
  switch (id) {
  case TY_OPT_POSITIONAL:
    return ty_errf(err, err_len, TY_EINVAL, "history: unexpected argument \"%s\" (--job ID)", v);
  case H_USER:
    return add_users(a, v, err, err_len);
  case H_QUEUE:
    return text_opt("--queue", &a->queue, v, err, err_len);
  case H_PARTITION:
    return text_opt("--partition", &a->queue, v, err, err_len);
  case H_BRIEF:
    c->brief = true;
    return 0;
  case H_NAME:
    return ty__cli_add_names("--name", v, &a->names, &a->nnames, err, err_len);
  case H_NODELIST:
    return ty__cli_node_list("-N/--nodelist", v, &a->nodes, &a->nnodes, err, err_len);
  case H_QOS: /* sacct -q QOS found nothing when -q was --queue: say so */
    return ty_errf(err, err_len, TY_EINVAL,
                   "history -q/--qos %s: Trainyard has no QOS (sacct's -q); -r/--partition or "
                   "--queue Q filters by queue",
                   v);
  case H_ALL:
    a->all_users = true;
    return 0;
  case H_SINCE:
    return ty_cli_parse_time("--since", v, c->now_ms, &a->since_ms, err, err_len);
  case H_UNTIL: {
    int rc = ty_cli_parse_time("--until", v, c->now_ms, &a->until_ms, err, err_len);
    if (rc == 0 && a->until_ms <= 0) /* 0 would read as no bound */
      rc = ty_errf(err, err_len, TY_EINVAL,
                   "--until: \"%s\" is at or before 1970-01-01 00:00 UTC: no job was submitted "
                   "before it",
                   v);
    return rc;
  }
  case H_STATE:
    return ty__cli_add_states(a->states, &a->nstates, v, err, err_len);
  case H_JOB:
    return add_ids(a, v, err, err_len);
  case H_RANKS:
    a->ranks = true;
    return 0;
  case H_LIMIT:
    return ty__cli_parse_u32("--limit", v, 1, UINT32_MAX, &a->limit, err, err_len);
  case H_FORMAT:
    ty_cli_slurm_headers(v, ty_cli_history_fields, F_COUNT, a->headers);
    return ty_cli_parse_format("--format", v, ty_cli_history_fields, F_COUNT, &a->format, err,
                               err_len);
  case H_NOHEADER:
    a->noheader = true;
    return 0;
  case H_PARSABLE:
  case H_PARSABLE2:
    a->parsable = (char)id;
    return 0;
  case H_ALLOCATIONS: /* sacct -X: jobs without their steps, which is what history lists */
    return 0;
  case H_JSON:
    a->json = true;
    return 0;
  case H_HELP_FORMAT:
    a->help_format = true;
    return 0;
  case H_HELP:
    a->help = true;
    return 0;
  default:
    return ty_errf(err, err_len, TY_EINTERNAL, "unhandled option");
  }
}

int ty_cli_parse_history(int argc, char **argv, int64_t now_ms, ty_cli_history_args *out, char *err,
                         size_t err_len) {
  memset(out, 0, sizeof *out);
  history_ctx c = {.a = out, .now_ms = now_ms};
  int rc = ty__cli_parse(argc, argv, "u:aS:E:s:q:r:j:o:N:nhpPXb", history_opts, history_option, &c,
                         err, err_len);
  if (rc == 0 && out->nusers && out->all_users)
    rc = ty_errf(err, err_len, TY_EINVAL, "history: --user and --all-users exclude each other");
  if (rc == 0 && out->since_ms && out->until_ms && out->until_ms <= out->since_ms)
    rc = ty_errf(err, err_len, TY_EINVAL, "--until: must be after --since");
  /* sacct -b's columns under sacct's headers */
  const char *fmt = c.brief ? "JobID,State,ExitCode" : default_format;
  if (rc == 0 && out->format.n == 0) {
    ty_cli_slurm_headers(fmt, ty_cli_history_fields, F_COUNT, out->headers);
    rc = ty_cli_parse_format("--format", fmt, ty_cli_history_fields, F_COUNT, &out->format, err,
                             err_len);
  }
  if (rc) ty_cli_history_args_close(out);
  return rc;
}

void ty_cli_history_args_close(ty_cli_history_args *a) {
  if (!a) return;
  free(a->user), free(a->queue), free(a->ids), free(a->refs);
  for (size_t i = 0; i < a->nusers; i++)
    free(a->users[i]);
  free(a->users);
  for (size_t i = 0; i < a->nnames; i++)
    free(a->names[i]);
  free(a->names);
  ty_hostnames_free(a->nodes, a->nnodes);
  memset(a, 0, sizeof *a);
}

static void record_close(ty_cli_record *r) {
  free(r->name), free(r->user), free(r->queue), free(r->reason), free(r->nodes);
  for (size_t k = 0; k < r->nranks; k++)
    free(r->ranks[k].node);
  free(r->ranks);
}

void ty_cli_records_free_range(ty_cli_record *rs, size_t n) {
  for (size_t i = 0; rs && i < n; i++)
    record_close(&rs[i]);
}

void ty_cli_records_free(ty_cli_record *rs, size_t n) {
  ty_cli_records_free_range(rs, n);
  free(rs);
}

static bool ref_names(const ty_job_ref *f, const ty_cli_record *r) {
  if (f->has_task) return r->array_job_id == f->id && r->array_task_id == f->task;
  return r->id == f->id || r->array_job_id == f->id;
}

/* Whether node is one of a record's comma-separated nodes. */
static bool ran_on(const char *nodes, const char *node) {
  size_t n = strlen(node);
  for (const char *p = nodes; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
    if (!strncmp(p, node, n) && (p[n] == ',' || p[n] == '\0')) return true;
  return false;
}

/* Whether r is among what --job, --name and --nodelist ask for; the controller
 * answered whole arrays for elements. It applies --name and --nodelist
 * itself, before its limit; a controller from before it did answers every
 * name and node, and this keeps that answer right too. */
static bool selected(const ty_cli_record *r, const ty_cli_history_args *a, bool elements) {
  bool named = !elements;
  for (size_t k = 0; k < a->nrefs && !named; k++)
    named = ref_names(&a->refs[k], r);
  bool name_ok = a->nnames == 0;
  for (size_t k = 0; k < a->nnames && !name_ok; k++)
    name_ok = !strcmp(a->names[k], r->name);
  bool node_ok = a->nnodes == 0;
  for (size_t k = 0; k < a->nnodes && !node_ok; k++)
    node_ok = ran_on(r->nodes, a->nodes[k]);
  return named && name_ok && node_ok;
}

static int by_id(const void *x, const void *y) {
  const ty_cli_record *a = x, *b = y;
  return a->id < b->id ? -1 : a->id > b->id;
}

void ty_cli_history_select(ty_cli_record *rs, size_t *n, const ty_cli_history_args *a) {
  bool elements = false;
  for (size_t i = 0; i < a->nrefs; i++)
    elements |= a->refs[i].has_task;
  size_t kept = 0;
  for (size_t i = 0; i < *n; i++) {
    if (!selected(&rs[i], a, elements)) {
      record_close(&rs[i]);
      continue;
    }
    if (kept != i) rs[kept] = rs[i];
    kept++;
  }
  *n = kept;
  /* The controller answers the newest first (its --limit keeps those);
   * sacct lists by job id, oldest first, and so does history. */
  if (kept > 1) qsort(rs, kept, sizeof *rs, by_id);
}

/* ---- text -------------------------------------------------------------------------------- */

/* trainyard.TaskState's names, as the proto spells them. */
static const char *task_state_name(int state) {
  static const char *const names[] = {"UNKNOWN", "STARTING", "RUNNING",
                                      "EXITED",  "SIGNALED", "FAILED_START"};
  return state > 0 && state < (int)TY_ARRAY_LEN(names) ? names[state] : "UNKNOWN";
}

static int64_t span_ms(int64_t start, int64_t end, int64_t now_ms) {
  if (start <= 0) return 0;
  int64_t e = end > 0 ? end : now_ms;
  return e > start ? e - start : 0;
}

/* A row's values, whether a job's or one rank's. */
typedef struct row_view {
  const ty_cli_record *job;
  const ty_cli_rank_record *rank; /* NULL for the job's own row */
  int64_t now_ms;
  bool sacct; /* the column was named as sacct names it: its time and size formats */
} row_view;

/* A span as history prints it, [D-]H:MM:SS; in a column named as sacct
 * names it, sacct's [D-]HH:MM:SS (00:00:05), which scripts split on ':'. */
static void span_cell(const row_view *v, int64_t ms, char *out, size_t cap) {
  if (!v->sacct) {
    ty_cli_format_elapsed(ms, out, cap);
    return;
  }
  int64_t s = ms < 0 ? 0 : ms / 1000;
  int64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
  if (d)
    snprintf(out, cap, "%" PRId64 "-%02" PRId64 ":%02" PRId64 ":%02" PRId64, d, h, m, sec);
  else
    snprintf(out, cap, "%02" PRId64 ":%02" PRId64 ":%02" PRId64, h, m, sec);
}

/* A point in time; none yet (a pending job's start, a live one's end) is
 * "-", or sacct's "Unknown" in a column named as sacct names it. */
static void time_cell(const row_view *v, int64_t ms, char *out, size_t cap) {
  if (ms <= 0 && v->sacct)
    snprintf(out, cap, "Unknown");
  else
    ty_cli_format_time(ms, 'T', out, cap);
}

/* CPU or GPU seconds as a span, "~" first when allocated, not measured
 * (not in sacct's format: it has no mark). */
static void seconds_cell(const row_view *v, double s, bool measured, char *out, size_t cap) {
  char t[32];
  span_cell(v, (int64_t)(s * 1000.0), t, sizeof t);
  snprintf(out, cap, "%s%s", measured || v->sacct ? "" : "~", t);
}

/* CPU seconds as sacct's TotalCPU prints them: [D-]HH:MM:SS from an hour
 * on, MM:SS.mmm below it (a rank's 0.3 s is no 00:00:00). */
static void total_cpu_cell(const row_view *v, double s, bool measured, char *out, size_t cap) {
  int64_t ms = s > 0 ? (int64_t)(s * 1000.0 + 0.5) : 0;
  char t[32];
  if (ms >= 3600 * 1000)
    span_cell(&(row_view){.sacct = true}, ms, t, sizeof t);
  else
    snprintf(t, sizeof t, "%02" PRId64 ":%02" PRId64 ".%03" PRId64, ms / 60000, ms / 1000 % 60,
             ms % 1000);
  snprintf(out, cap, "%s%s", measured || v->sacct ? "" : "~", t);
}

/* The allocation of a row, elapsed x CPUs, in milliseconds: sacct's
 * CPUTime (measured use is its TotalCPU). */
static int64_t alloc_cpu_ms(int64_t elapsed_ms, uint32_t cpus) {
  return elapsed_ms * (int64_t)cpus;
}

/* A CPU time column: under sacct's names CPUTime is the allocation and
 * CPUTimeRAW its seconds; history's own cputime is the measured use (or
 * the allocation, marked ~); TotalCPU the measured use to the ms. */
static void cpu_cell(const row_view *v, int f, int64_t elapsed_ms, uint32_t cpus, double cpu_s,
                     bool measured, char *out, size_t cap) {
  int64_t alloc_ms = alloc_cpu_ms(elapsed_ms, cpus);
  if (f == F_CPUTIMERAW)
    snprintf(out, cap, "%" PRId64, alloc_ms / 1000);
  else if (f == F_TOTALCPU)
    total_cpu_cell(v, cpu_s, measured, out, cap);
  else if (v->sacct)
    span_cell(v, alloc_ms, out, cap);
  else
    seconds_cell(v, cpu_s, measured, out, cap);
}

/* How many distinct nodes are in a comma-separated list (sacct's NNodes). */
static size_t count_nodes(const char *nodes) {
  size_t n = 0;
  for (const char *p = nodes; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
    size_t len = strcspn(p, ",");
    bool seen = false;
    for (const char *q = nodes; q < p && !seen; q = strchr(q, ',') + 1)
      seen = strcspn(q, ",") == len && !strncmp(q, p, len);
    n += !seen;
  }
  return n;
}

/* A peak as history prints it, 1.3M; in a column named as sacct names it
 * (MaxRSS), sacct's whole KiB, 1184K, which scripts strip of its K and
 * add up. "-" when not measured, in both: an empty cell would shift the
 * columns after it for awk. */
static void mem_cell(const row_view *v, uint64_t bytes, char *out, size_t cap) {
  if (!bytes)
    snprintf(out, cap, "-");
  else if (v->sacct)
    snprintf(out, cap, "%" PRIu64 "K", bytes / 1024 + (bytes % 1024 != 0));
  else
    ty_cli_format_size(bytes, out, cap);
}

static void rank_cell(const row_view *v, int f, char *out, size_t cap) {
  const ty_cli_rank_record *r = v->rank;
  switch (f) {
  case F_ID:
  case F_RAWID:
    if (r->run > 1)
      snprintf(out, cap, "%" PRIu64 ".%" PRIu32 "#%" PRIu32, v->job->id, r->rank, r->run);
    else
      snprintf(out, cap, "%" PRIu64 ".%" PRIu32, v->job->id, r->rank);
    break;
  case F_STATE: /* how its run ended, as sacct's steps; the process's when not known */
    snprintf(out, cap, "%s",
             r->run_state ? ty_run_state_name(r->run_state) : task_state_name(r->state));
    break;
  case F_EXIT:
    snprintf(out, cap, "%" PRId32 ":%" PRId32, r->exit_code, r->term_signal);
    break;
  case F_START:
    time_cell(v, r->start_ms, out, cap);
    break;
  case F_END:
    time_cell(v, r->end_ms, out, cap);
    break;
  case F_ELAPSED:
    span_cell(v, span_ms(r->start_ms, r->end_ms, v->now_ms), out, cap);
    break;
  case F_NODES:
    snprintf(out, cap, "%s", r->node);
    break;
  case F_NNODES:
    snprintf(out, cap, "1");
    break;
  case F_CPUS:
  case F_NCPUS:
    snprintf(out, cap, "%" PRIu32, r->cpus);
    break;
  case F_GPUS:
    snprintf(out, cap, "%" PRIu32, r->gpus);
    break;
  case F_CPUTIME:
  case F_TOTALCPU:
  case F_CPUTIMERAW:
    cpu_cell(v, f, span_ms(r->start_ms, r->end_ms, v->now_ms), r->cpus, r->cpu_s, r->measured, out,
             cap);
    break;
  case F_GPUTIME:
    seconds_cell(v, r->gpu_s, r->gpu_s == 0, out, cap);
    break; /* 0: none held */
  case F_MAXMEM:
    mem_cell(v, r->mem_peak, out, cap);
    break;
  default:
    out[0] = '\0'; /* the job's row says it */
  }
}

/* The job's nodes as sacct's NodeList folds them, n[1-3]: the store keeps
 * them comma-separated, in rank order (a name once). */
static void nodes_cell(const char *nodes, char *out, size_t cap) {
  if (!nodes[0]) {
    snprintf(out, cap, "-");
    return;
  }
  char *copy = ty_strdup(nodes), *save = NULL;
  const char **names = NULL;
  size_t n = 0;
  for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    bool seen = false;
    for (size_t i = 0; i < n && !seen; i++)
      seen = !strcmp(names[i], tok);
    if (seen) continue;
    names = ty_xrealloc(names, (n + 1) * sizeof *names);
    names[n++] = tok;
  }
  ty_buf b;
  ty_buf_init(&b);
  ty_hostlist_write(names, n, &b);
  snprintf(out, cap, "%s", b.len ? (const char *)b.data : "-");
  ty_buf_close(&b);
  free(names);
  free(copy);
}

static void job_cell(const row_view *v, int f, char *out, size_t cap) {
  const ty_cli_record *j = v->job;
  switch (f) {
  case F_ID:
    if (j->array_job_id)
      snprintf(out, cap, "%" PRIu64 "_%" PRIu32, j->array_job_id, j->array_task_id);
    else
      snprintf(out, cap, "%" PRIu64, j->id);
    break;
  case F_RAWID:
    snprintf(out, cap, "%" PRIu64, j->id);
    break;
  case F_NAME:
    snprintf(out, cap, "%s", j->name);
    break;
  case F_USER:
    snprintf(out, cap, "%s", j->user);
    break;
  case F_QUEUE:
    snprintf(out, cap, "%s", j->queue[0] ? j->queue : "default");
    break;
  case F_STATE:
    snprintf(out, cap, "%s", ty_job_state_name(j->state));
    break;
  case F_EXIT:
    snprintf(out, cap, "%" PRId32 ":%" PRId32, j->exit_code, j->term_signal);
    break;
  case F_REASON: /* sacct's Reason of a job with none is "None" */
    snprintf(out, cap, "%s", j->reason[0] || !v->sacct ? j->reason : "None");
    break;
  case F_SUBMIT:
    ty_cli_format_time(j->submit_ms, 'T', out, cap);
    break;
  case F_START:
    time_cell(v, j->start_ms, out, cap);
    break;
  case F_END:
    time_cell(v, j->end_ms, out, cap);
    break;
  case F_ELAPSED:
    span_cell(v, span_ms(j->start_ms, j->end_ms, v->now_ms), out, cap);
    break;
  case F_TIMELIMIT:
    if (j->time_limit_s)
      span_cell(v, (int64_t)j->time_limit_s * 1000, out, cap);
    else
      snprintf(out, cap, "UNLIMITED"); /* none, as sacct's Timelimit */
    break;
  case F_NODES:
    nodes_cell(j->nodes, out, cap);
    break;
  case F_NNODES:
    snprintf(out, cap, "%zu", count_nodes(j->nodes));
    break;
  case F_CPUS:
  case F_NCPUS:
    snprintf(out, cap, "%" PRIu32, j->cpus);
    break;
  case F_GPUS:
    snprintf(out, cap, "%" PRIu32, j->gpus);
    break;
  case F_REQMEM:
    if (j->mem_bytes)
      ty_cli_format_size(j->mem_bytes, out, cap);
    else
      snprintf(out, cap, "-");
    break;
  case F_CPUTIME:
  case F_TOTALCPU:
  case F_CPUTIMERAW:
    cpu_cell(v, f, span_ms(j->start_ms, j->end_ms, v->now_ms), j->cpus, j->cpu_s, j->measured, out,
             cap);
    break;
  case F_GPUTIME:
    seconds_cell(v, j->gpu_s, j->gpu_s == 0, out, cap);
    break; /* 0: none held */
  case F_MAXMEM:
    mem_cell(v, j->mem_peak, out, cap);
    break;
  case F_REQUEUES:
    snprintf(out, cap, "%" PRIu32, j->requeue_count);
    break;
  default:
    out[0] = '\0';
  }
}

/* The row's cells (each up to 256 bytes of `cells`) into t; headers: the
 * columns named as sacct names them (ty_cli_history_args.headers). */
static int add_row(ty_cli_table *t, const ty_cli_format *fmt, const char *const *headers,
                   row_view *v) {
  char cells[TY_CLI_MAX_FIELDS][256];
  const char *row[TY_CLI_MAX_FIELDS];
  for (size_t i = 0; i < fmt->n; i++) {
    v->sacct = headers[i] != NULL;
    if (v->rank)
      rank_cell(v, fmt->idx[i], cells[i], sizeof cells[i]);
    else
      job_cell(v, fmt->idx[i], cells[i], sizeof cells[i]);
    row[i] = cells[i];
  }
  return ty_cli_table_add(t, row);
}

/* Whether any time the format shows is an allocation, not a measurement. */
static bool shows_allocated(const ty_cli_record *rs, size_t n, const ty_cli_format *fmt) {
  bool cpu = false, gpu = false;
  for (size_t i = 0; i < fmt->n; i++)
    cpu |= fmt->idx[i] == F_CPUTIME || fmt->idx[i] == F_TOTALCPU, gpu |= fmt->idx[i] == F_GPUTIME;
  for (size_t i = 0; i < n; i++)
    if ((cpu && !rs[i].measured) || (gpu && rs[i].gpu_s > 0)) return true;
  return false;
}

static int history_text(const ty_cli_record *rs, size_t n, const ty_cli_history_args *a,
                        int64_t now_ms, size_t max_width, ty_buf *out) {
  const char *hdr[TY_CLI_MAX_FIELDS];
  bool right[TY_CLI_MAX_FIELDS];
  for (size_t i = 0; i < a->format.n; i++) {
    hdr[i] = a->headers[i] ? a->headers[i] : ty_cli_history_fields[a->format.idx[i]].header;
    right[i] = ty_cli_history_fields[a->format.idx[i]].right;
  }
  ty_cli_table *t = ty_cli_table_create(hdr, right, a->format.n);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    row_view v = {&rs[i], NULL, now_ms, false};
    rc = add_row(t, &a->format, a->headers, &v);
    for (size_t k = 0; rc == 0 && k < rs[i].nranks; k++) {
      v.rank = &rs[i].ranks[k];
      rc = add_row(t, &a->format, a->headers, &v);
    }
  }
  ty_cli_table_opts o = {.noheader = a->noheader,
                         .max_width = a->parsable ? 0 : max_width,
                         .delim = a->parsable ? '|' : 0,
                         .delim_last = a->parsable == 'p'};
  if (rc == 0) rc = ty_cli_table_render_opts(t, &o, out);
  ty_cli_table_destroy(t);
  if (rc == 0 && !a->noheader && !a->parsable && shows_allocated(rs, n, &a->format))
    rc = ty_buf_printf(out, "~ allocated, not measured: elapsed x the CPUs (GPUs) held\n");
  return rc;
}

/* ---- JSON -------------------------------------------------------------------------------- */

static void json_times(ty_json *js, double cpu_s, double gpu_s, uint64_t mem_peak, bool measured) {
  ty_json_key(js, "cpu_seconds"), ty_json_double(js, cpu_s);
  ty_json_key(js, "gpu_seconds"), ty_json_double(js, gpu_s);
  ty_json_key(js, "mem_peak_bytes"), ty_json_uint(js, mem_peak);
  ty_json_key(js, "accounting"), ty_json_string(js, measured ? "measured" : "allocated");
}

static void json_rank(ty_json *js, const ty_cli_rank_record *r) {
  ty_json_begin_object(js);
  ty_json_key(js, "run"), ty_json_uint(js, r->run);
  ty_json_key(js, "rank"), ty_json_uint(js, r->rank);
  ty_json_key(js, "node"), ty_json_string(js, r->node);
  ty_json_key(js, "state"), ty_json_string(js, task_state_name(r->state));
  ty_json_key(js, "run_state"), ty_json_string(js, ty_run_state_name(r->run_state));
  ty_json_key(js, "exit_code"), ty_json_int(js, r->exit_code);
  ty_json_key(js, "term_signal"), ty_json_int(js, r->term_signal);
  ty_json_key(js, "start_time_ms"), ty_json_int(js, r->start_ms);
  ty_json_key(js, "end_time_ms"), ty_json_int(js, r->end_ms);
  ty_json_key(js, "cpus"), ty_json_uint(js, r->cpus);
  ty_json_key(js, "gpus"), ty_json_uint(js, r->gpus);
  json_times(js, r->cpu_s, r->gpu_s, r->mem_peak, r->measured);
  ty_json_end_object(js);
}

static void json_record(ty_json *js, const ty_cli_record *j, int64_t now_ms) {
  ty_json_begin_object(js);
  ty_json_key(js, "id"), ty_json_uint(js, j->id);
  if (j->array_job_id) {
    ty_json_key(js, "array_job_id"), ty_json_uint(js, j->array_job_id);
    ty_json_key(js, "array_task_id"), ty_json_uint(js, j->array_task_id);
  }
  ty_json_key(js, "name"), ty_json_string(js, j->name);
  ty_json_key(js, "user"), ty_json_string(js, j->user);
  ty_json_key(js, "queue"), ty_json_string(js, j->queue[0] ? j->queue : "default");
  ty_json_key(js, "state"), ty_json_string(js, ty_job_state_name(j->state));
  ty_json_key(js, "reason"), ty_json_string(js, j->reason);
  ty_json_key(js, "exit_code"), ty_json_int(js, j->exit_code);
  ty_json_key(js, "term_signal"), ty_json_int(js, j->term_signal);
  ty_json_key(js, "submit_time_ms"), ty_json_int(js, j->submit_ms);
  ty_json_key(js, "start_time_ms"), ty_json_int(js, j->start_ms);
  ty_json_key(js, "end_time_ms"), ty_json_int(js, j->end_ms);
  ty_json_key(js, "elapsed_ms"), ty_json_int(js, span_ms(j->start_ms, j->end_ms, now_ms));
  ty_json_key(js, "time_limit_s"), ty_json_uint(js, j->time_limit_s);
  ty_json_key(js, "nodes"), ty_json_string(js, j->nodes);
  ty_json_key(js, "requeue_count"), ty_json_uint(js, j->requeue_count);
  ty_json_key(js, "cpus"), ty_json_uint(js, j->cpus);
  ty_json_key(js, "gpus"), ty_json_uint(js, j->gpus);
  ty_json_key(js, "mem_bytes"), ty_json_uint(js, j->mem_bytes);
  json_times(js, j->cpu_s, j->gpu_s, j->mem_peak, j->measured);
  if (j->nranks) {
    ty_json_key(js, "ranks"), ty_json_begin_array(js);
    for (size_t k = 0; k < j->nranks; k++)
      json_rank(js, &j->ranks[k]);
    ty_json_end_array(js);
  }
  ty_json_end_object(js);
}

int ty_cli_render_history(const ty_cli_record *rs, size_t n, const ty_cli_history_args *a,
                          int64_t now_ms, size_t max_width, ty_buf *out) {
  if (!a->json) return history_text(rs, n, a, now_ms, max_width, out);
  ty_json w;
  ty_json_init(&w, out);
  w.lines = true;
  ty_json_begin_array(&w);
  for (size_t i = 0; i < n; i++)
    json_record(&w, &rs[i], now_ms);
  ty_json_end_array(&w);
  return ty_json_finish(&w);
}
