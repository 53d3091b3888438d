/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Job arrays, dependencies and references to jobs, in the syntax Slurm users
 * already type (see jobref.h): "--array 0-999:2%10", "--dependency
 * afterok:12:13,singleton", "123_7". trainctl parses them to refuse a bad
 * value before sending it; traind checks the structured form it receives
 * (ty_array_check) and formats both back for `show`.
 *
 * Everything here reads text a user typed or a peer sent: every number is
 * range-checked before use, every count is bounded (TY_ARRAY_MAX_*,
 * TY_DEP_MAX, TY_JOB_REF_MAX_EXPAND) before anything is allocated from it,
 * and allocation failures are TY_ENOMEM, never an abort.
 */
#include "lib/wire/wire.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- numbers ------------------------------------------------------------------ */

/* A decimal number of at most `max` at *p, advancing *p past it. */
static bool read_num(const char **p, uint64_t max, uint64_t *out) {
  const char *s = *p;
  if (!isdigit((unsigned char)*s)) return false;
  uint64_t v = 0;
  while (isdigit((unsigned char)*s)) {
    uint64_t d = (uint64_t)(*s - '0');
    if (v > (max - d) / 10) return false; /* v * 10 + d > max, without overflow */
    v = v * 10 + d;
    s++;
  }
  *p = s;
  *out = v;
  return true;
}

/* ---- arrays ------------------------------------------------------------------ */

void ty_array_spec_close(ty_array_spec *a) {
  if (!a) return;
  free(a->ranges);
  memset(a, 0, sizeof(*a));
}

/* One part of a spec: "7", "0-999" or "0-999:4", ending at `end`. */
static int parse_range(const char *what, const char *s, const char *end, ty_array_range *r,
                       char *err, size_t len) {
  const char *p = s;
  uint64_t first, last, step = 1;
  bool ok = read_num(&p, TY_ARRAY_MAX_INDEX, &first);
  last = first;
  if (ok && *p == '-') p++, ok = read_num(&p, TY_ARRAY_MAX_INDEX, &last);
  if (ok && *p == ':' && last != first) p++, ok = read_num(&p, TY_ARRAY_MAX_INDEX, &step);
  if (!ok || p != end || step == 0 || last < first)
    return ty_errf(err, len, TY_EINVAL,
                   "%s: \"%.*s\" is not INDEX, FIRST-LAST or FIRST-LAST:STEP with indices 0-%d "
                   "(examples: 0-999, 1,3,5-9, 0-99:2%%10)",
                   what, (int)(end - s < 64 ? end - s : 64), s, TY_ARRAY_MAX_INDEX);
  *r = (ty_array_range){(uint32_t)first, (uint32_t)last, (uint32_t)step};
  return 0;
}

/* The ranges of "a,b-c:d" (no %), appended to *v. */
static int parse_ranges(const char *what, const char *s, const char *end, ty_array_range **v,
                        size_t *n, char *err, size_t len) {
  if (s == end) return ty_errf(err, len, TY_EINVAL, "%s: no task index given", what);
  while (s <= end) {
    const char *comma = memchr(s, ',', (size_t)(end - s));
    const char *stop = comma ? comma : end;
    if (*n >= TY_ARRAY_MAX_RANGES)
      return ty_errf(err, len, TY_EINVAL, "%s: more than %d comma-separated parts", what,
                     TY_ARRAY_MAX_RANGES);
    ty_array_range *grown = realloc(*v, (*n + 1) * sizeof(**v));
    if (!grown) return TY_ENOMEM;
    *v = grown;
    int rc = parse_range(what, s, stop, &(*v)[*n], err, len);
    if (rc != 0) return rc;
    (*n)++;
    s = stop + 1;
  }
  return 0;
}

int ty_array_parse(const char *what, const char *s, ty_array_spec *out, char *err, size_t len) {
  memset(out, 0, sizeof(*out));
  const char *pct = strchr(s, '%');
  const char *end = pct ? pct : s + strlen(s);
  int rc = parse_ranges(what, s, end, &out->ranges, &out->n, err, len);
  if (rc == 0 && pct) {
    const char *p = pct + 1;
    uint64_t max = 0;
    if (!read_num(&p, TY_ARRAY_MAX_TASKS, &max) || *p || max == 0)
      rc = ty_errf(err, len, TY_EINVAL, "%s: \"%s\" after %% is not a number of elements (1-%d)",
                   what, pct + 1, TY_ARRAY_MAX_TASKS);
    out->max_running = (uint32_t)max;
  }
  uint32_t count;
  if (rc == 0) rc = ty_array_check(what, out, &count, err, len);
  if (rc != 0) ty_array_spec_close(out);
  return rc;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Every index of the ranges, sorted and without repeats; *out_n counts
 * them. Callers bound the ranges' total first. */
static int expand(const ty_array_spec *a, uint64_t total, uint32_t **out, size_t *out_n) {
  uint32_t *v = malloc((size_t)(total ? total : 1) * sizeof(*v));
  if (!v) return TY_ENOMEM;
  size_t n = 0;
  bool sorted = true; /* ranges in order (one range, say) need no sort */
  for (size_t i = 0; i < a->n; i++) {
    if (n && a->ranges[i].first < v[n - 1]) sorted = false;
    for (uint64_t t = a->ranges[i].first; t <= a->ranges[i].last; t += a->ranges[i].step)
      v[n++] = (uint32_t)t;
  }
  if (!sorted) qsort(v, n, sizeof(*v), cmp_u32);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (k == 0 || v[k - 1] != v[i]) v[k++] = v[i];
  *out = v;
  *out_n = k;
  return 0;
}

int ty_array_check(const char *what, const ty_array_spec *a, uint32_t *out_count, char *err,
                   size_t len) {
  if (a->n == 0) return ty_errf(err, len, TY_EINVAL, "%s: no task index given", what);
  if (a->n > TY_ARRAY_MAX_RANGES)
    return ty_errf(err, len, TY_EINVAL, "%s: %zu ranges, at most %d are allowed", what, a->n,
                   TY_ARRAY_MAX_RANGES);
  uint64_t total = 0;
  for (size_t i = 0; i < a->n; i++) {
    const ty_array_range *r = &a->ranges[i];
    if (r->step == 0 || r->first > r->last || r->last > TY_ARRAY_MAX_INDEX)
      return ty_errf(err, len, TY_EINVAL,
                     "%s: range %zu (%" PRIu32 "-%" PRIu32 ":%" PRIu32
                     ") needs first <= last <= %d and a step of at least 1",
                     what, i, r->first, r->last, r->step, TY_ARRAY_MAX_INDEX);
    total += (uint64_t)(r->last - r->first) / r->step + 1;
    if (total > TY_ARRAY_MAX_TASKS)
      return ty_errf(err, len, TY_EINVAL, "%s: more than %d elements", what, TY_ARRAY_MAX_TASKS);
  }
  uint32_t *tasks;
  size_t n;
  if (expand(a, total, &tasks, &n) != 0) return TY_ENOMEM;
  free(tasks);
  if (a->max_running > TY_ARRAY_MAX_TASKS)
    return ty_errf(err, len, TY_EINVAL, "%s: %%%" PRIu32 " is above %d", what, a->max_running,
                   TY_ARRAY_MAX_TASKS);
  *out_count = (uint32_t)n;
  return 0;
}

int ty_array_tasks(const ty_array_spec *a, uint32_t **out, size_t *out_n) {
  uint64_t total = 0;
  for (size_t i = 0; i < a->n; i++)
    total += (uint64_t)(a->ranges[i].last - a->ranges[i].first) / a->ranges[i].step + 1;
  return expand(a, total, out, out_n);
}

int ty_array_format(const ty_array_spec *a, ty_buf *out) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < a->n; i++) {
    const ty_array_range *r = &a->ranges[i];
    rc = ty_buf_printf(out, "%s%" PRIu32, i ? "," : "", r->first);
    if (rc == 0 && r->last != r->first) rc = ty_buf_printf(out, "-%" PRIu32, r->last);
    if (rc == 0 && r->last != r->first && r->step > 1)
      rc = ty_buf_printf(out, ":%" PRIu32, r->step);
  }
  if (rc == 0 && a->max_running) rc = ty_buf_printf(out, "%%%" PRIu32, a->max_running);
  return rc;
}

int ty_array_fold(const uint32_t *t, size_t n, ty_buf *out) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n;) {
    size_t j = i;
    while (j + 1 < n && t[j + 1] == t[j] + 1)
      j++;
    rc = ty_buf_printf(out, "%s%" PRIu32, i ? "," : "", t[i]);
    if (rc == 0 && j > i) rc = ty_buf_printf(out, "-%" PRIu32, t[j]);
    i = j + 1;
  }
  return rc;
}

/* ---- references --------------------------------------------------------------- */

static int push_ref(ty_job_ref **refs, size_t *n, ty_job_ref r) {
  ty_job_ref *grown = realloc(*refs, (*n + 1) * sizeof(**refs));
  if (!grown) return TY_ENOMEM;
  *refs = grown;
  (*refs)[(*n)++] = r;
  return 0;
}

/* "123_[1-5,9]": one ref per task index. */
static int expand_refs(const char *what, const char *s, uint64_t id, const char *open,
                       ty_job_ref **refs, size_t *n, char *err, size_t len) {
  const char *close = strchr(open, ']');
  if (!close || close[1])
    return ty_errf(err, len, TY_EINVAL, "%s: \"%s\" has no closing ] at its end", what, s);
  ty_array_spec a = {0};
  int rc = parse_ranges(what, open + 1, close, &a.ranges, &a.n, err, len);
  uint32_t count = 0;
  if (rc == 0) rc = ty_array_check(what, &a, &count, err, len);
  if (rc == 0 && *n + count > TY_JOB_REF_MAX_EXPAND)
    rc = ty_errf(err, len, TY_EINVAL, "%s: names more than %d jobs", what, TY_JOB_REF_MAX_EXPAND);
  uint32_t *tasks = NULL;
  size_t nt = 0;
  if (rc == 0) rc = ty_array_tasks(&a, &tasks, &nt);
  for (size_t i = 0; rc == 0 && i < nt; i++)
    rc = push_ref(refs, n, (ty_job_ref){.id = id, .has_task = true, .task = tasks[i]});
  free(tasks);
  ty_array_spec_close(&a);
  return rc;
}

int ty_job_refs_parse(const char *what, const char *s, ty_job_ref **refs, size_t *n, char *err,
                      size_t len) {
  const char *p = s;
  uint64_t id = 0, task = 0;
  if (!read_num(&p, INT64_MAX, &id) || id == 0)
    return ty_errf(err, len, TY_EINVAL,
                   "%s: \"%s\" is not a job id (examples: 42, 42_7 for element 7 of array 42, "
                   "42_[1-5])",
                   what, s);
  if (*p == '\0') return push_ref(refs, n, (ty_job_ref){.id = id});
  if (*p == '_' && p[1] == '[') return expand_refs(what, s, id, p + 1, refs, n, err, len);
  if (*p == '_' && (p++, read_num(&p, TY_ARRAY_MAX_INDEX, &task)) && *p == '\0')
    return push_ref(refs, n, (ty_job_ref){.id = id, .has_task = true, .task = (uint32_t)task});
  return ty_errf(err, len, TY_EINVAL,
                 "%s: \"%s\" is not ID, ID_TASK or ID_[TASKS] (task indices 0-%d)", what, s,
                 TY_ARRAY_MAX_INDEX);
}

/* "14.batch", "14.3", "14.extern" -> "14" (sacct's steps: the job). */
static void cut_step(char *t) {
  char *dot = strchr(t, '.');
  if (!dot) return;
  bool digits = dot[1] && strspn(dot + 1, "0123456789") == strlen(dot + 1);
  if (digits || !strcmp(dot + 1, "batch") || !strcmp(dot + 1, "extern")) *dot = '\0';
}

int ty_job_ref_list_parse(const char *what, const char *s, bool steps, ty_job_ref **refs, size_t *n,
                          char *err, size_t len) {
  if (!*s) return ty_errf(err, len, TY_EINVAL, "%s: must not be empty", what);
  char *copy = strdup(s);
  if (!copy) return TY_ENOMEM;
  int rc = 0, depth = 0;
  for (char *item = copy, *p = copy; rc == 0; p++) {
    depth += (*p == '[') - (*p == ']');
    if (*p && (*p != ',' || depth > 0)) continue;
    bool last = !*p;
    *p = '\0';
    if (!*item) {
      rc = ty_errf(err, len, TY_EINVAL, "%s: an empty job id in \"%s\"", what, s);
      break;
    }
    if (steps) cut_step(item);
    rc = ty_job_refs_parse(what, item, refs, n, err, len);
    if (last) break;
    item = p + 1;
  }
  free(copy);
  return rc;
}

void ty_job_ref_format(const ty_job_ref *r, char *out, size_t cap) {
  if (r->has_task)
    snprintf(out, cap, "%" PRIu64 "_%" PRIu32, r->id, r->task);
  else
    snprintf(out, cap, "%" PRIu64, r->id);
}

/* ---- dependencies ---------------------------------------------------------------- */

static const char *const dep_words[TY_DEP_KIND_MAX + 1] = {
#define WORD_(name, num, word) [num] = word,
    TY_DEP_KIND_MAP(WORD_)
#undef WORD_
};

const char *ty_dep_kind_name(int kind) {
  return kind >= 1 && kind <= TY_DEP_KIND_MAX ? dep_words[kind] : "?";
}

static int push_dep(const char *what, ty_dep **deps, size_t *n, ty_dep d, char *err, size_t len) {
  if (*n >= TY_DEP_MAX)
    return ty_errf(err, len, TY_EINVAL,
                   "%s: more than %d conditions (job ids); to wait for more jobs, submit them as "
                   "an array and name its id (afterok:ARRAY waits for every element)",
                   what, TY_DEP_MAX);
  ty_dep *grown = realloc(*deps, (*n + 1) * sizeof(**deps));
  if (!grown) return TY_ENOMEM;
  *deps = grown;
  (*deps)[(*n)++] = d;
  return 0;
}

/* "afterok:12:13_4" or "singleton" (the text between separators). */
static int parse_condition(const char *what, char *c, ty_dep **deps, size_t *n, char *err,
                           size_t len) {
  char *colon = strchr(c, ':');
  if (colon) *colon = '\0';
  int kind = 0;
  for (int k = 1; k <= TY_DEP_KIND_MAX; k++)
    if (strcmp(c, dep_words[k]) == 0) kind = k;
  /* Slurm's other kinds, with what to write instead of an unknown word. */
  if (!kind && strcmp(c, "aftercorr") == 0)
    return ty_errf(err, len, TY_EINVAL,
                   "%s: aftercorr (each element waits for the same element of another array) is "
                   "not supported: give afterok:ID for the whole array, or submit each element "
                   "with afterok:ID_N",
                   what);
  if (!kind && strcmp(c, "afterburstbuffer") == 0)
    return ty_errf(err, len, TY_EINVAL,
                   "%s: afterburstbuffer: there are no burst buffers (use "
                   "afterany)",
                   what);
  if (!kind)
    return ty_errf(err, len, TY_EINVAL,
                   "%s: \"%s\" is not after, afterany, afterok, afternotok or singleton", what, c);
  if (kind == TY_DEP_SINGLETON) {
    if (colon) return ty_errf(err, len, TY_EINVAL, "%s: singleton takes no job ids", what);
    return push_dep(what, deps, n, (ty_dep){.kind = TY_DEP_SINGLETON}, err, len);
  }
  if (!colon || !colon[1])
    return ty_errf(err, len, TY_EINVAL, "%s: %s needs job ids (%s:ID[:ID...])", what, c, c);
  int rc = 0;
  for (char *rest = colon + 1, *id; rc == 0 && (id = strsep(&rest, ":")) != NULL;) {
    if (!*id) /* "afterok:12:" or "afterok:12::13": sbatch refuses them too */
      return ty_errf(err, len, TY_EINVAL, "%s: %s has an empty job id (%s:ID[:ID...])", what, c, c);
    /* sbatch's after:ID+MINUTES: a start delay the scheduler has no timer
     * for; say so rather than call 45+5 a bad id. */
    if (strchr(id, '+'))
      return ty_errf(err, len, TY_EINVAL,
                     "%s: \"%s:%s\": +time (start that many minutes after the job started) is "
                     "not supported: give %s:%.*s (start once it started), or --begin now+Nm",
                     what, c, id, c, (int)(strchr(id, '+') - id), id);
    ty_job_ref *refs = NULL;
    size_t nr = 0;
    rc = ty_job_refs_parse(what, id, &refs, &nr, err, len);
    for (size_t i = 0; rc == 0 && i < nr; i++)
      rc = push_dep(what, deps, n, (ty_dep){.kind = (ty_dep_kind)kind, .job = refs[i]}, err, len);
    free(refs);
  }
  return rc;
}

int ty_dep_parse(const char *what, const char *s, ty_dep **deps, size_t *n, bool *out_any,
                 char *err, size_t len) {
  bool comma = strchr(s, ',') != NULL, any = strchr(s, '?') != NULL;
  if (comma && any)
    return ty_errf(err, len, TY_EINVAL, "%s: use ',' (all conditions) or '?' (any one), not both",
                   what);
  if (!*s) return ty_errf(err, len, TY_EINVAL, "%s: must not be empty", what);
  char *copy = strdup(s);
  if (!copy) return TY_ENOMEM;
  int rc = 0;
  for (char *rest = copy, *c; rc == 0 && (c = strsep(&rest, any ? "?" : ",")) != NULL;)
    rc = *c ? parse_condition(what, c, deps, n, err, len)
            : ty_errf(err, len, TY_EINVAL, "%s: an empty condition in \"%s\"", what, s);
  free(copy);
  if (rc == 0) *out_any = any;
  return rc;
}

int ty_dep_format(const ty_dep *d, size_t n, bool any, ty_buf *out) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    bool same = i > 0 && d[i].kind == d[i - 1].kind && d[i].kind != TY_DEP_SINGLETON;
    if (!same)
      rc = ty_buf_printf(out, "%s%s", i ? (any ? "?" : ",") : "", ty_dep_kind_name(d[i].kind));
    if (rc == 0 && d[i].kind != TY_DEP_SINGLETON) {
      char ref[48];
      ty_job_ref_format(&d[i].job, ref, sizeof(ref));
      rc = ty_buf_printf(out, ":%s", ref);
    }
  }
  return rc;
}

/* ---- copying a spec -------------------------------------------------------------- */

static int dup_bytes(const void *p, size_t n, void **out) {
  *out = NULL;
  if (!p) return 0;
  *out = malloc(n ? n : 1);
  if (!*out) return TY_ENOMEM;
  if (n) memcpy(*out, p, n);
  return 0;
}

static int dup_str(const char *s, char **out) {
  return dup_bytes(s, s ? strlen(s) + 1 : 0, (void **)out);
}

static int dup_strv(char *const *v, size_t n, char ***out) {
  *out = NULL;
  if (!v) return 0;
  return ty_wire_strv(v, n, out);
}

int ty_job_spec_copy(const ty_job_spec *from, ty_job_spec *out) {
  *out = *from;
  out->name = out->queue = out->user = out->cwd = out->model_path = NULL;
  out->argv = out->env = out->req_nodes = out->exc_nodes = NULL;
  out->model_bytes = out->train_config = NULL;
  out->array.ranges = NULL;
  out->deps = NULL;
  int rc = dup_str(from->name, &out->name);
  if (rc == 0) rc = dup_str(from->queue, &out->queue);
  if (rc == 0) rc = dup_str(from->user, &out->user);
  if (rc == 0) rc = dup_str(from->cwd, &out->cwd);
  if (rc == 0) rc = dup_str(from->model_path, &out->model_path);
  if (rc == 0) rc = dup_strv(from->argv, from->argc, &out->argv);
  if (rc == 0) rc = dup_strv(from->env, from->envc, &out->env);
  if (rc == 0) rc = dup_strv(from->req_nodes, from->n_req_nodes, &out->req_nodes);
  if (rc == 0) rc = dup_strv(from->exc_nodes, from->n_exc_nodes, &out->exc_nodes);
  if (rc == 0) rc = dup_bytes(from->model_bytes, from->model_len, (void **)&out->model_bytes);
  if (rc == 0)
    rc = dup_bytes(from->train_config, from->train_config_len, (void **)&out->train_config);
  if (rc == 0)
    rc = dup_bytes(from->array.ranges, from->array.n * sizeof(ty_array_range),
                   (void **)&out->array.ranges);
  if (rc == 0) rc = dup_bytes(from->deps, from->n_deps * sizeof(ty_dep), (void **)&out->deps);
  if (rc != 0) ty_job_spec_close(out);
  return rc;
}
