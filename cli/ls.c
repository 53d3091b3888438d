/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `trainctl ls` as a table, like squeue: named fields (`--format`), the
 * sort (`--sort -priority,id`), folded array lines ("123_[5-999]") and
 * columns clipped to the terminal; and the refs cancel's filters make of
 * the jobs they match. Pure: the clock comes in as now_ms.
 */
#include "cli/cli.h"
#include "cli/cli_history.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
  J_ID,
  J_NAME,
  J_USER,
  J_QUEUE,
  J_PRI,
  J_STATE,
  J_ELAPSED,
  J_NODES,
  J_REASON,
  J_PRIORITY,
  J_SUBMIT,
  J_START,
  J_END,
  J_TIMELIMIT,
  J_NUMNODES,
  J_CPUS,
  J_GPUS,
  J_HELD,
  J_DEPENDENCY,
  J_REQUEUES,
  J_EXIT,
  J_EXCLUSIVE,
  J_REQNODES,
  J_EXCNODES,
  J_ST,
  J_RAWID,
  J_ARRAYJOB,
  J_ARRAYTASK,
  J_TIMELEFT,
  J_MEM,
  J_MINCPUS,
  J_WORKDIR,
  J_UID,
  J_COUNT
};

const ty_cli_field ty_cli_ls_fields[] = {
    [J_ID] = {"id", "ID", true, "job id (123, 123_7 for an array element)"},
    [J_NAME] = {"name", "NAME", false, "job name"},
    [J_USER] = {"user", "USER", false, "owner"},
    [J_QUEUE] = {"queue", "QUEUE", false, "queue"},
    [J_PRI] = {"pri", "PRI", true, "the job's own priority (-1000..1000)"},
    [J_STATE] = {"state", "STATE", false, "job state"},
    [J_ELAPSED] = {"elapsed", "TIME", true, "run time so far"},
    [J_NODES] = {"nodes", "NODES", false, "node names, or how many it asks for while pending"},
    [J_REASON] = {"reason", "REASON", false, "why it is pending, or why it ended"},
    [J_PRIORITY] = {"priority", "PRIORITY", true, "the scheduler's multifactor priority (pending)"},
    [J_SUBMIT] = {"submit", "SUBMIT", false, "submit time"},
    [J_START] = {"start", "START", false, "start time"},
    [J_END] = {"end", "END", false,
               "end time; a running job's expected end, its start + time limit (Unknown "
               "without one), as squeue's %e"},
    [J_TIMELIMIT] = {"timelimit", "TIMELIMIT", true, "time limit"},
    [J_NUMNODES] = {"numnodes", "NNODES", true, "nodes asked for"},
    [J_CPUS] = {"cpus", "CPUS", true, "CPUs asked for, over all its nodes"},
    [J_GPUS] = {"gpus", "GPUS", true, "GPUs asked for, over all its nodes"},
    [J_HELD] = {"held", "HELD", false,
                "yes when held until released (reason: JobHeldUser or JobHeldAdmin)"},
    [J_DEPENDENCY] = {"dependency", "DEPENDENCY", false, "conditions not yet met"},
    [J_REQUEUES] = {"requeues", "REQUEUES", true, "times requeued"},
    [J_EXIT] = {"exit", "EXIT", true, "exit code:signal once ended (- for another user's job)"},
    [J_EXCLUSIVE] = {"exclusive", "EXCLUSIVE", false,
                     "yes when it holds whole nodes (--exclusive)"},
    [J_REQNODES] = {"reqnodes", "REQ_NODES", false, "nodes it must run on (-w/--nodelist)"},
    [J_EXCNODES] = {"excnodes", "EXC_NODES", false, "nodes it never runs on (-x/--exclude)"},
    [J_ST] = {"st", "ST", false,
              "job state, squeue's compact form (PD, R, CD, F, CA, TO, CG while ranks end, ...)"},
    [J_RAWID] = {"rawid", "JOBID", true, "the job's own id, an array element's too (squeue's %A)"},
    [J_ARRAYJOB] = {"arrayjobid", "ARRAY_JOB_ID", true,
                    "the array's id, or the job's when it is none (squeue's %F)"},
    [J_ARRAYTASK] = {"arraytaskid", "ARRAY_TASK_ID", true,
                     "the element's index (5-999 on a folded line), N/A for no array (%K)"},
    [J_TIMELEFT] = {"timeleft", "TIME_LEFT", true,
                    "time limit less the run time so far, UNLIMITED without one (squeue's %L)"},
    [J_MEM] = {"mem", "MIN_MEMORY", true,
               "memory per node asked for, 0 for no limit (squeue's %m)"},
    [J_MINCPUS] = {"mincpus", "MIN_CPUS", true,
                   "CPUs per node asked for: tasks per node x CPUs per task (squeue's %c)"},
    [J_WORKDIR] = {"workdir", "WORK_DIR", false,
                   "working directory, - for the worker's or another user's job (squeue's %Z)"},
    [J_UID] = {"uid", "UID", true, "the owner's numeric uid, - when not recorded (squeue's %U)"},
};
const size_t ty_cli_n_ls_fields = J_COUNT;
const char ty_cli_ls_default_format[] = "id,name,user,queue,pri,state,elapsed,nodes,reason";

/* ---- squeue's -o ----------------------------------------------------------------------------- */

/* squeue's -o codes and the fields they name (its -S sort keys too); NULL
 * for one that names nothing here but prints what squeue prints when it is
 * unset (%a the account, %q the QOS: "(null)", as without accounting). */
static const char codes[] = "iAjuPtTMlDNRrQpyVSeCbEnxFKLmcZUaq";
static const char *const names[] = {
    "id",         "rawid",     "name",     "user",       "queue",       "st",       "state",
    "elapsed",    "timelimit", "numnodes", "nodes",      "reason",      "reason",   "priority",
    "priority",   "pri",       "submit",   "start",      "end",         "cpus",     "gpus",
    "dependency", "reqnodes",  "excnodes", "arrayjobid", "arraytaskid", "timeleft", "mem",
    "mincpus",    "workdir",   "uid",      NULL,         NULL};
_Static_assert(sizeof codes - 1 == sizeof names / sizeof *names, "one name per code");

int ty_cli_ls_squeue_format(const char *fmt, char **out, char *err, size_t err_len) {
  const char *used[sizeof codes];
  size_t n_used = 0;
  ty_buf b;
  ty_buf_init(&b);
  for (const char *p = strchr(fmt, '%'); p; p = strchr(p, '%')) {
    p++;
    p += strspn(p, ".-0123456789"); /* alignment and width */
    const char *c = *p ? strchr(codes, *p) : NULL;
    if (*p == 'o') {
      ty_buf_close(&b);
      return ty_errf(err, err_len, TY_EINVAL,
                     "--format: squeue's %%o (the command) is not in a listing here: trainctl "
                     "show ID prints a job's command or script");
    }
    if (!c) {
      ty_buf_close(&b);
      return ty_errf(err, err_len, TY_EINVAL,
                     "--format: squeue's %%%c has no counterpart (codes: %s)", *p ? *p : ' ',
                     codes);
    }
    const char *name = names[c - codes];
    /* Once each: %R and %r, %Q and %p name the same field here. */
    bool seen = name == NULL;
    for (size_t k = 0; k < n_used && !seen; k++)
      seen = used[k] == name;
    if (!seen && n_used < TY_ARRAY_LEN(used)) {
      used[n_used++] = name;
      ty_buf_printf(&b, "%s%s", b.len ? "," : "", name);
    }
    p++;
  }
  /* Only %a or %q: no field, but a table format must name one (unused:
   * the line is the template's). */
  ty_buf_append(&b, b.len ? "" : "id", b.len ? 1 : 3);
  *out = ty_strdup((const char *)b.data);
  ty_buf_close(&b);
  return 0;
}

/* ---- sort ---------------------------------------------------------------------------------- */

int ty_cli_parse_sort(const char *what, const char *list, ty_cli_sort *out, char *err,
                      size_t err_len) {
  memset(out, 0, sizeof *out);
  char *copy = ty_strdup(list ? list : ""), *save = NULL;
  /* room for every one-letter key (2 bytes with its comma) to grow to its
   * field's name (at most 11: "arraytaskid") */
  char *keys = ty_xmalloc(strlen(copy) * 6 + 16);
  bool desc[TY_CLI_MAX_FIELDS] = {false};
  size_t k = 0;
  /* "-priority,id": strip the signs, then parse the names as a format.
   * squeue -S takes its -o codes ("-t,i"): a one-letter key is one. */
  keys[0] = '\0';
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save), k++) {
    if (k < TY_CLI_MAX_FIELDS) desc[k] = *t == '-';
    const char *key = *t == '-' || *t == '+' ? t + 1 : t;
    const char *code = key[0] && !key[1] ? strchr(codes, key[0]) : NULL;
    if (code && !names[code - codes]) code = NULL; /* %a, %q: an unknown field */
    strcat(keys, k ? "," : "");
    strcat(keys, code ? names[code - codes] : key);
  }
  int rc = ty_cli_parse_format(what, keys, ty_cli_ls_fields, J_COUNT, &out->keys, err, err_len);
  for (size_t i = 0; rc == 0 && i < out->keys.n; i++)
    out->desc[i] = desc[i];
  free(copy), free(keys);
  return rc;
}

static uint32_t nz(uint32_t v) {
  return v ? v : 1;
}

/* squeue's %L: j's time limit less its run time so far, at least 0 (a
 * pending job's whole limit); j has a limit. */
static int64_t time_left_ms(const ty_cli_jobinfo *j, int64_t now_ms) {
  int64_t left = (int64_t)j->spec.time_limit_s * 1000 - ty_cli_job_elapsed(j, now_ms);
  return left > 0 ? left : 0;
}

/* squeue's %e: when j ended, or when a running j is expected to, its start
 * plus its time limit; INT64_MAX for a running job without a limit, 0 for
 * one not started. */
static int64_t end_ms(const ty_cli_jobinfo *j) {
  if (j->state != TY_JOB_RUNNING) return j->end_ms;
  if (!j->spec.time_limit_s) return INT64_MAX;
  return j->start_ms + (int64_t)j->spec.time_limit_s * 1000;
}

/* A numeric field's value; false for a text field. */
static bool number(const ty_cli_jobinfo *j, int f, int64_t now_ms, double *out) {
  const ty_job_spec *s = &j->spec;
  switch (f) {
  case J_ID:
  case J_RAWID:
    *out = (double)j->id;
    return true;
  case J_ARRAYJOB:
    *out = (double)(j->array_job_id ? j->array_job_id : j->id);
    return true;
  case J_ARRAYTASK: /* none: text's N/A */
    *out = j->array_task_id;
    return j->array_job_id != 0;
  case J_PRI:
    *out = s->priority;
    return true;
  case J_PRIORITY:
    *out = j->priority;
    return true;
  case J_ELAPSED:
    *out = (double)ty_cli_job_elapsed(j, now_ms);
    return true;
  case J_SUBMIT:
    *out = (double)j->submit_ms;
    return true;
  case J_START:
    *out = (double)j->start_ms;
    return true;
  case J_END: /* a running job without a limit sorts last */
    *out = (double)end_ms(j);
    return true;
  case J_TIMELIMIT:
    *out = s->time_limit_s;
    return true;
  case J_TIMELEFT: /* seconds; none sorts last */
    *out = s->time_limit_s ? (double)time_left_ms(j, now_ms) / 1000 : 1e12;
    return true;
  case J_NUMNODES:
    *out = nz(s->nodes);
    return true;
  case J_CPUS:
    *out = (double)nz(s->nodes) * nz(s->tasks_per_node) * nz(s->cpus_per_task);
    return true;
  case J_GPUS:
    *out = (double)nz(s->nodes) * s->gpus_per_node;
    return true;
  case J_REQUEUES:
    *out = j->requeue_count;
    return true;
  case J_EXIT:
    *out = j->exit_code;
    return true;
  case J_MEM:
    *out = (double)s->mem_per_node;
    return true;
  case J_MINCPUS:
    *out = (double)nz(s->tasks_per_node) * nz(s->cpus_per_task);
    return true;
  case J_UID: /* none sorts last */
    *out = s->has_uid ? s->uid : 1e12;
    return true;
  default:
    return false;
  }
}

typedef struct sort_item {
  const ty_cli_jobinfo *j;
  size_t at; /* original position: equal keys keep their order */
} sort_item;

typedef struct sort_ctx {
  const ty_cli_sort *s;
  int64_t now_ms;
} sort_ctx;

const char *ty_cli_state_name(const ty_cli_jobinfo *j) {
  return j->ranks_ending ? "COMPLETING" : ty_job_state_name(j->state);
}

/* squeue's compact state (%t): "PD", "R", "CD"..., "CG" while an ended
 * job's ranks still end. */
static const char *state_abbrev(const ty_cli_jobinfo *j) {
  if (j->ranks_ending) return "CG";
  switch (j->state) {
#define TY_LS_ABBREV_(name, num, abbrev)                                                           \
  case TY_JOB_##name:                                                                              \
    return abbrev;
    TY_JOB_STATE_MAP(TY_LS_ABBREV_)
#undef TY_LS_ABBREV_
  default:
    return "?";
  }
}

static const char *text(const ty_cli_jobinfo *j, int f) {
  switch (f) {
  case J_ST:
    return state_abbrev(j);
  case J_NAME:
    return j->spec.name ? j->spec.name : "";
  case J_USER:
    return j->spec.user ? j->spec.user : "";
  case J_QUEUE:
    return j->spec.queue && *j->spec.queue ? j->spec.queue : "default";
  case J_STATE:
    return ty_cli_state_name(j);
  case J_REASON:
    return j->reason ? j->reason : "";
  case J_HELD:
    return j->held ? "yes" : "no";
  case J_EXCLUSIVE:
    return j->spec.exclusive ? "yes" : "no";
  case J_DEPENDENCY:
    return j->dependency ? j->dependency : "";
  case J_ARRAYTASK:
    return "N/A"; /* squeue's %K of a job that is no array's */
  case J_WORKDIR: /* withheld from other users (JobInfo.redacted) */
    return j->spec.cwd && *j->spec.cwd ? j->spec.cwd : "-";
  default:
    return ""; /* J_NODES sorts by names, below */
  }
}

static int compare_key(const ty_cli_jobinfo *a, const ty_cli_jobinfo *b, int f, int64_t now_ms) {
  double x, y;
  if (number(a, f, now_ms, &x) && number(b, f, now_ms, &y)) return (x > y) - (x < y);
  if (f == J_NODES) {
    const char *p = a->nnodes ? a->nodes[0] : "", *q = b->nnodes ? b->nodes[0] : "";
    return strcmp(p, q);
  }
  return strcmp(text(a, f), text(b, f));
}

static int by_keys(const void *pa, const void *pb, void *ud) {
  const sort_item *a = pa, *b = pb;
  const sort_ctx *c = ud;
  for (size_t i = 0; i < c->s->keys.n; i++) {
    int r = compare_key(a->j, b->j, c->s->keys.idx[i], c->now_ms);
    if (r) return c->s->desc[i] ? -r : r;
  }
  return (a->at > b->at) - (a->at < b->at);
}

/* ---- -j/--jobs, --name and -w/--nodelist
 * --------------------------------------------------------------- */

static bool ref_names(const ty_job_ref *r, const ty_cli_jobinfo *j) {
  if (r->has_task) return j->array_job_id == r->id && j->array_task_id == r->task;
  return j->id == r->id || j->array_job_id == r->id;
}

/* squeue -w: a job allocated any of the nodes (a pending one has none). */
static bool on_nodes(const ty_cli_jobinfo *j, const ty_cli_ls_args *a) {
  for (size_t i = 0; i < a->nnodes; i++)
    for (size_t k = 0; k < j->nnodes; k++)
      if (!strcmp(j->nodes[k], a->nodes[i])) return true;
  return a->nnodes == 0;
}

static bool selected(const ty_cli_jobinfo *j, const ty_cli_ls_args *a) {
  bool id = a->njobs == 0, name = a->nnames == 0, user = a->nusers == 0, queue = a->nqueues == 0;
  for (size_t i = 0; i < a->nusers && !user; i++)
    user = j->spec.user && !strcmp(j->spec.user, a->users[i]);
  for (size_t i = 0; i < a->nqueues && !queue; i++) /* "" is "default" */
    queue = !strcmp(text(j, J_QUEUE), a->queues[i]);
  for (size_t i = 0; i < a->njobs && !id; i++)
    id = ref_names(&a->jobs[i], j);
  for (size_t i = 0; i < a->nnames && !name; i++)
    name = j->spec.name && !strcmp(j->spec.name, a->names[i]);
  return id && name && user && queue && on_nodes(j, a);
}

bool ty_cli_ls_select(ty_cli_jobinfo *js, size_t *n, const ty_cli_ls_args *a) {
  size_t kept = 0, wanted = 0;
  for (size_t i = 0; i < *n; i++)
    wanted += selected(&js[i], a);
  size_t skip = a->limit && wanted > a->limit ? wanted - a->limit : 0; /* the oldest */
  for (size_t i = 0; i < *n; i++) {
    if (!selected(&js[i], a) || (skip && skip--)) {
      ty_cli_jobinfo_close(&js[i]);
      continue;
    }
    if (kept != i) js[kept] = js[i];
    kept++;
  }
  *n = kept;
  return a->limit && wanted > a->limit;
}

/* ---- cancel's refs ------------------------------------------------------------------------- */

/* An array element's identity: its array's id and its task. */
typedef struct {
  uint64_t array;
  uint32_t task;
} element_key;

static int by_key(const void *a, const void *b) {
  const element_key *x = a, *y = b;
  if (x->array != y->array) return (x->array > y->array) - (x->array < y->array);
  return (x->task > y->task) - (x->task < y->task);
}

/* The sorted identities of js's array elements (those kept, when keep). */
static element_key *element_keys(const ty_cli_jobinfo *js, size_t n, const bool *keep,
                                 size_t *out_n) {
  element_key *v = ty_xcalloc(n ? n : 1, sizeof *v);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (js[i].array_job_id && (!keep || keep[i]))
      v[k++] = (element_key){js[i].array_job_id, js[i].array_task_id};
  qsort(v, k, sizeof *v, by_key);
  *out_n = k;
  return v;
}

static bool has_key(const element_key *v, size_t n, element_key k) {
  return n && bsearch(&k, v, n, sizeof *v, by_key) != NULL;
}

/* Whether array `id` may be cancelled by its id: live lists it, and every
 * one of its live elements is among the matched ones. */
static bool whole_array(uint64_t id, const element_key *matched, size_t nm, const element_key *live,
                        size_t nl) {
  element_key lo = {id, 0};
  size_t i = 0, hi = nl;
  while (i < hi) { /* the first live element of id */
    size_t mid = i + (hi - i) / 2;
    if (by_key(&live[mid], &lo) < 0)
      i = mid + 1;
    else
      hi = mid;
  }
  if (i == nl || live[i].array != id) return false;
  for (; i < nl && live[i].array == id; i++)
    if (!has_key(matched, nm, live[i])) return false;
  return true;
}

/* The sorted ids of the arrays of matched (sorted) that may be cancelled
 * by their id (whole_array). */
static uint64_t *whole_arrays(const element_key *matched, size_t nm, const element_key *live,
                              size_t nl, size_t *out_n) {
  uint64_t *v = ty_xcalloc(nm ? nm : 1, sizeof *v);
  size_t k = 0;
  for (size_t i = 0; i < nm; i++)
    if ((i == 0 || matched[i].array != matched[i - 1].array) &&
        whole_array(matched[i].array, matched, nm, live, nl))
      v[k++] = matched[i].array;
  *out_n = k;
  return v;
}

static int by_id(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

size_t ty_cli_cancel_refs(const ty_cli_jobinfo *js, size_t n, const char *name,
                          const ty_cli_jobinfo *live, size_t nlive, bool live_cut,
                          ty_job_ref *out) {
  bool *keep = ty_xcalloc(n ? n : 1, sizeof *keep);
  for (size_t i = 0; i < n; i++)
    keep[i] = !name || !strcmp(js[i].spec.name ? js[i].spec.name : "", name);
  size_t nm, nl, nw, k = 0;
  element_key *matched = element_keys(js, n, keep, &nm);
  element_key *all = element_keys(live, live_cut ? 0 : nlive, NULL, &nl);
  uint64_t *whole = whole_arrays(matched, nm, all, nl, &nw);
  bool *done = ty_xcalloc(nw ? nw : 1, sizeof *done);
  for (size_t i = 0; i < n; i++) {
    const ty_cli_jobinfo *j = &js[i];
    uint64_t a = j->array_job_id;
    const uint64_t *w = a && nw ? bsearch(&a, whole, nw, sizeof *whole, by_id) : NULL;
    if (!keep[i]) continue;
    if (!a)
      out[k++] = (ty_job_ref){.id = j->id};
    else if (!w)
      out[k++] = (ty_job_ref){a, true, j->array_task_id};
    else if (!done[w - whole])
      done[w - whole] = true, out[k++] = (ty_job_ref){.id = a};
  }
  free(done), free(whole), free(all), free(matched), free(keep);
  return k;
}

int ty_cli_sort_jobs(ty_cli_jobinfo *js, size_t n, const ty_cli_sort *s, int64_t now_ms) {
  if (!s || s->keys.n == 0 || n < 2) return 0;
  sort_item *v = ty_wire_calloc(n, sizeof *v);
  ty_cli_jobinfo *copy = ty_wire_calloc(n, sizeof *copy);
  if (!v || !copy) {
    free(v), free(copy);
    return TY_ENOMEM;
  }
  for (size_t i = 0; i < n; i++)
    v[i] = (sort_item){&js[i], i};
  sort_ctx ctx = {s, now_ms};
  qsort_r(v, n, sizeof *v, by_keys, &ctx);
  for (size_t i = 0; i < n; i++)
    copy[i] = *v[i].j;
  memcpy(js, copy, n * sizeof *js);
  free(v), free(copy);
  return 0;
}

/* ---- the table --------------------------------------------------------------------------- */

/* v in decimal into out (cap >= 21). */
static const char *decimal(uint64_t v, char *out) {
  char b[24], *p = b + sizeof b;
  *--p = '\0';
  do
    *--p = (char)('0' + v % 10);
  while (v /= 10);
  memcpy(out, p, (size_t)(b + sizeof b - p));
  return out;
}

static const char *job_nodes(const ty_cli_jobinfo *j, char *out, size_t cap) {
  if (j->nnodes == 0) return decimal(j->spec.nodes ? j->spec.nodes : 1, out);
  if (j->nnodes == 1) return j->nodes[0];
  ty_buf b;
  ty_buf_init(&b);
  ty_cli_job_nodes(j, &b);
  snprintf(out, cap, "%s", b.data ? (const char *)b.data : "");
  ty_buf_close(&b);
  return out;
}

/* A -w/-x list as a hostlist ("w[1-3]"), "" for none, into out. */
static const char *node_names(char *const *names, size_t n, char *out, size_t cap) {
  if (n == 0) return "";
  ty_buf b;
  ty_buf_init(&b);
  ty_hostlist_write((const char *const *)names, n, &b);
  snprintf(out, cap, "%s", (const char *)b.data);
  ty_buf_close(&b);
  return out;
}

/* The text of field f of j: a string of j's, a constant, or out (cap bytes,
 * at least 32) when it is formatted. A listing formats thousands of cells,
 * so text is not copied and integers are not printf'd. */
static const char *cell(const ty_cli_jobinfo *j, int f, int64_t now_ms, char *out, size_t cap) {
  double v = 0;
  switch (f) {
  case J_NODES:
    return job_nodes(j, out, cap);
  case J_REQNODES:
    return node_names(j->spec.req_nodes, j->spec.n_req_nodes, out, cap);
  case J_EXCNODES:
    return node_names(j->spec.exc_nodes, j->spec.n_exc_nodes, out, cap);
  case J_ELAPSED:
    if (ty_cli_job_elapsed(j, now_ms) < 1000) return "0:00"; /* every pending job */
    ty_cli_format_elapsed(ty_cli_job_elapsed(j, now_ms), out, cap);
    return out;
  case J_SUBMIT:
    ty_cli_format_time(j->submit_ms, 'T', out, cap);
    return out;
  case J_START:
    ty_cli_format_time(j->start_ms, 'T', out, cap);
    return out;
  case J_END:
    if (end_ms(j) == INT64_MAX) return "Unknown"; /* running, no limit */
    ty_cli_format_time(end_ms(j), 'T', out, cap);
    return out;
  case J_TIMELIMIT:
    if (!j->spec.time_limit_s) return "UNLIMITED"; /* none, as squeue's %l */
    ty_cli_format_elapsed((int64_t)j->spec.time_limit_s * 1000, out, cap);
    return out;
  case J_TIMELEFT:
    if (!j->spec.time_limit_s) return "UNLIMITED"; /* as squeue's %L */
    if (time_left_ms(j, now_ms) < 1000) return "0:00";
    ty_cli_format_elapsed(time_left_ms(j, now_ms), out, cap);
    return out;
  case J_PRIORITY:
    if (j->state != TY_JOB_PENDING) return "-";
    snprintf(out, cap, "%.4f", j->priority);
    return out;
  case J_MEM:
    if (!j->spec.mem_per_node) return "0"; /* no limit, as squeue's %m */
    ty_cli_format_size(j->spec.mem_per_node, out, cap);
    return out;
  case J_UID:
    if (!j->spec.has_uid) return "-"; /* stored before authentication */
    return decimal(j->spec.uid, out);
  case J_EXIT: /* "-": not ended, or withheld (another user's job) */
    if (!ty_job_state_terminal(j->state) || j->redacted) return "-";
    snprintf(out, cap, "%" PRId32 ":%" PRId32, j->exit_code, j->term_signal);
    return out;
  default:
    if (!number(j, f, now_ms, &v)) return text(j, f);
    if (v >= 0 && v < 1e18 && v == (double)(uint64_t)v) return decimal((uint64_t)v, out);
    snprintf(out, cap, "%.0f", v);
    return out;
  }
}

static int by_task(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static bool foldable(const ty_cli_jobinfo *j) {
  return j->array_job_id && j->state == TY_JOB_PENDING;
}

/* With fold, the pending elements of one array that follow js[i] (jobs
 * come by id, and an array's elements have consecutive ids) share its
 * line, labelled "123_[5-999]"; *used says how many jobs the line took. */
static int row_label(const ty_cli_jobinfo *js, size_t n, size_t i, bool fold, ty_buf *label,
                     size_t *used) {
  const ty_cli_jobinfo *j = &js[i];
  size_t k = i + 1;
  while (fold && foldable(j) && k < n && foldable(&js[k]) && js[k].array_job_id == j->array_job_id)
    k++;
  *used = k - i;
  if (k == i + 1 && j->array_folded && j->array_folded[0]) /* folded by the controller */
    return ty_buf_printf(label, "%" PRIu64 "_[%s]", j->array_job_id, j->array_folded);
  if (k == i + 1) {
    if (j->array_job_id)
      return ty_buf_printf(label, "%" PRIu64 "_%" PRIu32, j->array_job_id, j->array_task_id);
    return ty_buf_printf(label, "%" PRIu64, j->id);
  }
  uint32_t *tasks = ty_wire_calloc(k - i, sizeof *tasks);
  if (!tasks) return TY_ENOMEM;
  for (size_t x = i; x < k; x++)
    tasks[x - i] = js[x].array_task_id;
  /* --sort -id (or any order) lists them descending: fold ranges as squeue does */
  qsort(tasks, k - i, sizeof *tasks, by_task);
  int rc = ty_buf_printf(label, "%" PRIu64 "_[", j->array_job_id);
  if (rc == 0) rc = ty_array_fold(tasks, k - i, label);
  if (rc == 0) rc = ty_buf_printf(label, "]");
  free(tasks);
  return rc;
}

/* A folded line's tasks, "5-999" of "12_[5-999]", as squeue's %K. */
static const char *folded_tasks(const char *label, char *out, size_t cap) {
  const char *open = strstr(label, "_[");
  size_t n = strlen(open + 2);
  snprintf(out, cap, "%.*s", (int)(n ? n - 1 : 0), open + 2);
  return out;
}

/* The cell of field f on the line of j labelled label (an id, or a folded
 * "12_[5-999]"). */
static const char *row_cell(const ty_cli_jobinfo *j, int f, const char *label, int64_t now_ms,
                            char *out, size_t cap) {
  if (f == J_ID) return label;
  if (f == J_ARRAYTASK && strstr(label, "_[")) return folded_tasks(label, out, cap);
  return cell(j, f, now_ms, out, cap);
}

int ty_cli_render_jobs_table(const ty_cli_jobinfo *js, size_t n, int64_t now_ms, bool fold,
                             const ty_cli_format *fmt, const ty_cli_table_opts *o, ty_buf *out) {
  const char *hdr[TY_CLI_MAX_FIELDS];
  bool right[TY_CLI_MAX_FIELDS];
  for (size_t c = 0; c < fmt->n; c++) {
    hdr[c] = ty_cli_ls_fields[fmt->idx[c]].header;
    right[c] = ty_cli_ls_fields[fmt->idx[c]].right;
  }
  ty_cli_table *t = ty_cli_table_create(hdr, right, fmt->n);
  ty_buf id;
  ty_buf_init(&id);
  int rc = 0;
  char cells[TY_CLI_MAX_FIELDS][256];
  const char *row[TY_CLI_MAX_FIELDS];
  for (size_t i = 0, used = 1; i < n && rc == 0; i += used) {
    id.len = 0;
    rc = row_label(js, n, i, fold, &id, &used);
    if (rc == 0) rc = ty_buf_append(&id, "", 1);
    for (size_t c = 0; rc == 0 && c < fmt->n; c++)
      row[c] =
          row_cell(&js[i], fmt->idx[c], (const char *)id.data, now_ms, cells[c], sizeof cells[c]);
    if (rc == 0) rc = ty_cli_table_add(t, row);
  }
  ty_buf_close(&id);
  if (rc == 0) rc = ty_cli_table_render_opts(t, o, out);
  ty_cli_table_destroy(t);
  return rc;
}

/* ---- squeue's -o, line by line ------------------------------------------------------------- */

/* squeue's header of each code in codes[] (GPUS: %b is a count here). */
static const char *const sq_headers[] = {
    "JOBID",        "JOBID",         "NAME",       "USER",       "PARTITION",   "ST",
    "STATE",        "TIME",          "TIME_LIMIT", "NODES",      "NODELIST",    "NODELIST(REASON)",
    "REASON",       "PRIORITY",      "PRIORITY",   "NICE",       "SUBMIT_TIME", "START_TIME",
    "END_TIME",     "CPUS",          "GPUS",       "DEPENDENCY", "REQ_NODES",   "EXC_NODES",
    "ARRAY_JOB_ID", "ARRAY_TASK_ID", "TIME_LEFT",  "MIN_MEMORY", "MIN_CPUS",    "WORK_DIR",
    "UID",          "ACCOUNT",       "QOS"};
_Static_assert(sizeof codes - 1 == sizeof sq_headers / sizeof *sq_headers, "one header per code");

/* squeue's %r: the name a pending job's reason starts with ("Resources:
 * needs 2 nodes..." is Resources), which scripts compare; a held job's is
 * Slurm's JobHeldUser or JobHeldAdmin (an operator's hold), and an older
 * controller's "Held" JobHeldUser. Every other job's is "None", as squeue's. */
const char *ty_cli_reason_name(const ty_cli_jobinfo *j, char *out, size_t cap) {
  const char *r = j->reason;
  if (j->state != TY_JOB_PENDING || !r) return "None";
  size_t n = strspn(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
  if (n == 0) return "None";
  if (n == 4 && !strncmp(r, "Held", 4)) return "JobHeldUser";
  snprintf(out, cap, "%.*s", (int)n, r);
  return out;
}

static const char *code_value(const ty_cli_jobinfo *j, size_t k, const char *label, int64_t now_ms,
                              char *out, size_t cap) {
  char name[64];
  switch (codes[k]) {
  case 'r':
    return ty_cli_reason_name(j, out, cap);
  case 'R': /* squeue's NODELIST(REASON): its nodes as a hostlist */
    if (j->state != TY_JOB_PENDING) return node_names(j->nodes, j->nnodes, out, cap);
    snprintf(out, cap, "(%s)", ty_cli_reason_name(j, name, sizeof name));
    return out;
  case 'N': /* a hostlist; a pending job is on no node yet */
    return node_names(j->nodes, j->nnodes, out, cap);
  case 'Q': /* squeue's %Q is a whole number; %p (and ls's priority) keep the fraction */
    if (j->state != TY_JOB_PENDING) return "-";
    snprintf(out, cap, "%.0f", j->priority);
    return out;
  case 'a': /* no accounts or QOS here: squeue's text for none */
  case 'q':
    return "(null)";
  case 'E': { /* squeue's "(null)" when nothing is waited for */
    const char *dep = row_cell(j, J_DEPENDENCY, label, now_ms, out, cap);
    return dep[0] ? dep : "(null)";
  }
  default:
    for (size_t f = 0; f < J_COUNT; f++)
      if (!strcmp(ty_cli_ls_fields[f].name, names[k]))
        return row_cell(j, (int)f, label, now_ms, out, cap);
    return "";
  }
}

/* A line's cells: j's (labelled label), or the header's when j is NULL. */
typedef struct squeue_row {
  const ty_cli_jobinfo *j;
  const char *label;
  int64_t now_ms;
  char buf[256];
} squeue_row;

static const char *squeue_cell(void *ctx, size_t k) {
  squeue_row *r = ctx;
  return r->j ? code_value(r->j, k, r->label, r->now_ms, r->buf, sizeof r->buf) : sq_headers[k];
}

static int squeue_line(const char *tmpl, const ty_cli_jobinfo *j, const char *label, int64_t now_ms,
                       ty_buf *out) {
  squeue_row r = {.j = j, .label = label, .now_ms = now_ms};
  return ty_cli_put_template(out, tmpl, codes, squeue_cell, &r);
}

int ty_cli_render_jobs_squeue(const ty_cli_jobinfo *js, size_t n, int64_t now_ms, bool fold,
                              const char *tmpl, bool noheader, ty_buf *out) {
  ty_buf id;
  ty_buf_init(&id);
  int rc = noheader ? 0 : squeue_line(tmpl, NULL, NULL, now_ms, out);
  for (size_t i = 0, used = 1; i < n && rc == 0; i += used) {
    id.len = 0;
    rc = row_label(js, n, i, fold, &id, &used);
    if (rc == 0) rc = ty_buf_append(&id, "", 1);
    if (rc == 0) rc = squeue_line(tmpl, &js[i], (const char *)id.data, now_ms, out);
  }
  ty_buf_close(&id);
  return rc;
}
