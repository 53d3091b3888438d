/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metric registry: families (counter, gauge, histogram) in registration
 * order, each holding its series in an array sorted by label values.
 *
 * Tuned for a daemon that registers a few dozen families at start-up and
 * updates a few thousand series at most: a lookup is a binary search over
 * pointers (O(log n) string compares), a new series costs one memmove of the
 * pointer array, and a scrape walks everything once. Sorting by label values
 * gives the exposition a stable order without a separate sort at render time.
 *
 * Invariants: a family's series array is sorted and duplicate-free; a series
 * of a family with k labels owns k UTF-8 strings; histogram series keep
 * per-bucket (not cumulative) counts, n_bounds + 1 of them, the last one
 * being +Inf, and count == sum of the buckets.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/metrics/metrics_internal.h"

enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

typedef struct series {
  char **values; /* n_labels owned strings, NULL when the family has none */
  double value;  /* counter and gauge */
  double sum;    /* histogram */
  uint64_t count;
  uint64_t *buckets; /* histogram: n_bounds + 1 per-bucket counts */
} series;

struct ty_metric {
  int kind;
  char *name;
  char *help;
  char **labels;
  size_t n_labels;
  double *bounds;
  size_t n_bounds;
  series **series;
  size_t n_series, cap_series;
  int warned; /* one warning per family for misuse or cardinality */
};

typedef struct collector {
  void (*cb)(ty_metrics *m, void *ud);
  void *ud;
  void (*free_ud)(void *ud);
} collector;

struct ty_metrics {
  ty_metric **families;
  size_t n_families, cap_families;
  collector *collectors;
  size_t n_collectors, cap_collectors;
};

/* ---- names and strings --------------------------------------------------- */

static int valid_name(const char *s, int allow_colon) {
  if (!s || !*s) return 0;
  for (const char *p = s; *p; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             (allow_colon && c == ':') || (p != s && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *p) {
  unsigned c = p[0];
  if (c < 0x80) return 1;
  size_t n;
  unsigned min;
  if ((c & 0xE0) == 0xC0)
    n = 2, min = 0x80, c &= 0x1F;
  else if ((c & 0xF0) == 0xE0)
    n = 3, min = 0x800, c &= 0x0F;
  else if ((c & 0xF8) == 0xF0)
    n = 4, min = 0x10000, c &= 0x07;
  else
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    c = (c << 6) | (p[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  return n;
}

static int valid_utf8(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    size_t n = utf8_seq(p);
    if (!n) return 0;
    p += n;
  }
  return 1;
}

/* A copy of s with every invalid byte replaced by U+FFFD. */
static char *utf8_sanitize(const char *s) {
  size_t len = strlen(s);
  char *out = ty_xmalloc(len * 3 + 1);
  const unsigned char *p = (const unsigned char *)s;
  size_t o = 0;
  while (*p) {
    size_t n = utf8_seq(p);
    if (n) {
      memcpy(out + o, p, n), o += n, p += n;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3), o += 3, p++;
    }
  }
  out[o] = '\0';
  return out;
}

void ty__metrics_fmt_double(char out[32], double v) {
  if (isnan(v)) {
    strcpy(out, "NaN");
  } else if (isinf(v)) {
    strcpy(out, v > 0 ? "+Inf" : "-Inf");
  } else {
    snprintf(out, 32, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, 32, "%.17g", v);
  }
}

/* ---- families ------------------------------------------------------------ */

static void free_strv(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* Splits "a, b" into owned names; returns -1 naming the bad one. */
static int parse_labels(const char *metric, const char *spec, int kind, char ***out_v,
                        size_t *out_n) {
  *out_v = NULL, *out_n = 0;
  if (!spec || !*spec) return 0;
  char *copy = ty_strdup(spec), *rest = copy;
  for (char *tok = strsep(&rest, ","); tok; tok = strsep(&rest, ",")) {
    while (*tok == ' ')
      tok++;
    size_t len = strlen(tok);
    while (len && tok[len - 1] == ' ')
      tok[--len] = '\0';
    const char *why = NULL;
    if (!valid_name(tok, 0))
      why = "is not a valid label name";
    else if (strncmp(tok, "__", 2) == 0)
      why = "starts with the reserved \"__\"";
    else if (kind == KIND_HISTOGRAM && strcmp(tok, "le") == 0)
      why = "is reserved for buckets";
    for (size_t i = 0; !why && i < *out_n; i++)
      if (strcmp((*out_v)[i], tok) == 0) why = "is listed twice";
    if (why) {
      ty_error("metrics: %s: label \"%s\" %s", metric, tok, why);
      free_strv(*out_v, *out_n), free(copy);
      *out_v = NULL, *out_n = 0;
      return -1;
    }
    *out_v = ty_xrealloc(*out_v, (*out_n + 1) * sizeof(char *));
    (*out_v)[(*out_n)++] = ty_strdup(tok);
  }
  free(copy);
  return 0;
}

static int check_bounds(const char *name, const double *b, size_t *n) {
  if (*n && !b) {
    ty_error("metrics: %s: bounds is NULL but n_bounds is %zu", name, *n);
    return -1;
  }
  if (*n && isinf(b[*n - 1]) && b[*n - 1] > 0) (*n)--; /* +Inf is implied */
  for (size_t i = 0; i < *n; i++) {
    if (!isfinite(b[i])) {
      ty_error("metrics: %s: bounds[%zu] is not finite", name, i);
      return -1;
    }
    if (i > 0 && !(b[i] > b[i - 1])) {
      ty_error("metrics: %s: bounds[%zu] is not above bounds[%zu]", name, i, i - 1);
      return -1;
    }
  }
  return 0;
}

static series *series_new(ty_metric *f, char **values) {
  series *s = ty_xcalloc(1, sizeof *s);
  s->values = values;
  if (f->kind == KIND_HISTOGRAM) s->buckets = ty_xcalloc(f->n_bounds + 1, sizeof(uint64_t));
  return s;
}

static void series_free(ty_metric *f, series *s) {
  free_strv(s->values, f->n_labels);
  free(s->buckets);
  free(s);
}

static void family_free(ty_metric *f) {
  ty_metric_clear(f);
  free(f->series);
  free_strv(f->labels, f->n_labels);
  free(f->bounds);
  free(f->name);
  free(f->help);
  free(f);
}

static ty_metric *family_add(ty_metrics *m, int kind, const char *name, const char *help,
                             const char *labels, const double *bounds, size_t n_bounds) {
  if (!m) return NULL;
  if (!valid_name(name, 1)) {
    ty_error("metrics: \"%s\" is not a valid metric name", name ? name : "(null)");
    return NULL;
  }
  if (ty__metrics_find(m, name)) {
    ty_error("metrics: %s is already registered", name);
    return NULL;
  }
  ty_metric *f = ty_xcalloc(1, sizeof *f);
  f->kind = kind;
  f->name = ty_strdup(name);
  f->help = ty_strdup(help ? help : "");
  if (parse_labels(name, labels, kind, &f->labels, &f->n_labels) != 0) goto fail;
  if (kind == KIND_HISTOGRAM) {
    if (check_bounds(name, bounds, &n_bounds) != 0) goto fail;
    f->n_bounds = n_bounds;
    f->bounds = ty_xmalloc((n_bounds ? n_bounds : 1) * sizeof(double));
    if (n_bounds) memcpy(f->bounds, bounds, n_bounds * sizeof(double));
  }
  if (m->n_families == m->cap_families) {
    m->cap_families = m->cap_families ? m->cap_families * 2 : 16;
    m->families = ty_xrealloc(m->families, m->cap_families * sizeof(ty_metric *));
  }
  m->families[m->n_families++] = f;
  /* A label-less family has exactly one series; it exists from the start so
   * that a counter nobody incremented yet still renders as 0. */
  if (f->n_labels == 0) {
    f->series = ty_xmalloc(sizeof(series *));
    f->cap_series = f->n_series = 1;
    f->series[0] = series_new(f, NULL);
  }
  return f;
fail:
  family_free(f);
  return NULL;
}

ty_metric *ty_metrics_counter(ty_metrics *m, const char *name, const char *help,
                              const char *labels) {
  return family_add(m, KIND_COUNTER, name, help, labels, NULL, 0);
}

ty_metric *ty_metrics_gauge(ty_metrics *m, const char *name, const char *help, const char *labels) {
  return family_add(m, KIND_GAUGE, name, help, labels, NULL, 0);
}

ty_metric *ty_metrics_histogram(ty_metrics *m, const char *name, const char *help,
                                const char *labels, const double *bounds, size_t n_bounds) {
  return family_add(m, KIND_HISTOGRAM, name, help, labels, bounds, n_bounds);
}

const double *ty_metrics_default_buckets(size_t *out_n) {
  static const double b[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                             0.25,  0.5,    1,     2.5,  5,     10};
  if (out_n) *out_n = TY_ARRAY_LEN(b);
  return b;
}

ty_metric *ty__metrics_find(ty_metrics *m, const char *name) {
  for (size_t i = 0; m && name && i < m->n_families; i++)
    if (strcmp(m->families[i]->name, name) == 0) return m->families[i];
  return NULL;
}

/* ---- series -------------------------------------------------------------- */

static const char *value_at(const char *const *values, size_t i) {
  return values[i] ? values[i] : "";
}

static int cmp_values(const ty_metric *f, const char *const *a, char *const *b) {
  for (size_t i = 0; i < f->n_labels; i++) {
    int c = strcmp(value_at(a, i), b[i]);
    if (c) return c;
  }
  return 0;
}

static void warn_once(ty_metric *f, const char *what) {
  if (f->warned) return;
  f->warned = 1;
  ty_warn("metrics: %s: %s (further problems with this family are not logged)", f->name, what);
}

/* Binary search; *out_pos is where the series is or would be inserted. */
static series *series_find(ty_metric *f, const char *const *values, size_t *out_pos) {
  size_t lo = 0, hi = f->n_series;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = cmp_values(f, values, f->series[mid]->values);
    if (c == 0) {
      *out_pos = mid;
      return f->series[mid];
    }
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  *out_pos = lo;
  return NULL;
}

static series *series_insert(ty_metric *f, const char *const *values, size_t pos) {
  if (f->n_series >= TY_METRICS_MAX_SERIES) {
    warn_once(f, "too many label combinations; new ones are dropped");
    return NULL;
  }
  char **copy = f->n_labels ? ty_xmalloc(f->n_labels * sizeof(char *)) : NULL;
  for (size_t i = 0; i < f->n_labels; i++)
    copy[i] = ty_strdup(value_at(values, i));
  if (f->n_series == f->cap_series) {
    f->cap_series = f->cap_series ? f->cap_series * 2 : 8;
    f->series = ty_xrealloc(f->series, f->cap_series * sizeof(series *));
  }
  memmove(f->series + pos + 1, f->series + pos, (f->n_series - pos) * sizeof(series *));
  f->series[pos] = series_new(f, copy);
  f->n_series++;
  return f->series[pos];
}

/* The series for values, created on first use; NULL if it cannot exist. */
static series *series_get(ty_metric *f, const char *const *values) {
  if (f->n_labels == 0) {
    if (f->n_series == 0) return series_insert(f, NULL, 0);
    return f->series[0];
  }
  if (!values) {
    warn_once(f, "values is NULL but the family has labels");
    return NULL;
  }
  int clean = 1;
  for (size_t i = 0; clean && i < f->n_labels; i++)
    clean = valid_utf8(value_at(values, i));
  const char *const *use = values;
  char **fixed = NULL;
  if (!clean) {
    fixed = ty_xmalloc(f->n_labels * sizeof(char *));
    for (size_t i = 0; i < f->n_labels; i++)
      fixed[i] = utf8_sanitize(value_at(values, i));
    use = (const char *const *)fixed;
  }
  size_t pos;
  series *s = series_find(f, use, &pos);
  if (!s) s = series_insert(f, use, pos);
  free_strv(fixed, fixed ? f->n_labels : 0);
  return s;
}

void ty_metric_inc(ty_metric *f, const char *const *values, double by) {
  if (!f) return;
  if (f->kind == KIND_HISTOGRAM) {
    warn_once(f, "inc on a histogram");
    return;
  }
  if (f->kind == KIND_COUNTER && !(by >= 0)) {
    warn_once(f, "a counter cannot go down (negative or NaN increment)");
    return;
  }
  series *s = series_get(f, values);
  if (s) s->value += by;
}

void ty_metric_set(ty_metric *f, const char *const *values, double v) {
  if (!f) return;
  if (f->kind == KIND_HISTOGRAM) {
    warn_once(f, "set on a histogram");
    return;
  }
  series *s = series_get(f, values);
  if (s) s->value = v;
}

void ty_metric_observe(ty_metric *f, const char *const *values, double v) {
  if (!f) return;
  if (f->kind != KIND_HISTOGRAM) {
    warn_once(f, "observe on a counter or gauge");
    return;
  }
  series *s = series_get(f, values);
  if (!s) return;
  /* The first bucket whose upper bound is >= v ("le" is inclusive). NaN
   * compares false everywhere and lands in +Inf, as in the client libraries. */
  size_t lo = 0, hi = f->n_bounds;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v <= f->bounds[mid])
      hi = mid;
    else
      lo = mid + 1;
  }
  s->buckets[lo]++;
  s->count++;
  s->sum += v;
}

void ty_metric_touch(ty_metric *f, const char *const *values) {
  if (f) series_get(f, values);
}

void ty_metric_clear(ty_metric *f) {
  if (!f) return;
  for (size_t i = 0; i < f->n_series; i++)
    series_free(f, f->series[i]);
  f->n_series = 0;
}

/* ---- registry ------------------------------------------------------------ */

ty_metrics *ty_metrics_create(void) {
  return ty_xcalloc(1, sizeof(ty_metrics));
}

void ty_metrics_destroy(ty_metrics *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n_families; i++)
    family_free(m->families[i]);
  for (size_t i = 0; i < m->n_collectors; i++)
    if (m->collectors[i].free_ud) m->collectors[i].free_ud(m->collectors[i].ud);
  free(m->families);
  free(m->collectors);
  free(m);
}

void ty__metrics_on_collect_owned(ty_metrics *m, void (*cb)(ty_metrics *m, void *ud), void *ud,
                                  void (*free_ud)(void *ud)) {
  if (!m || !cb) return;
  if (m->n_collectors == m->cap_collectors) {
    m->cap_collectors = m->cap_collectors ? m->cap_collectors * 2 : 4;
    m->collectors = ty_xrealloc(m->collectors, m->cap_collectors * sizeof(collector));
  }
  m->collectors[m->n_collectors++] = (collector){cb, ud, free_ud};
}

void *ty__metrics_collector_ud(ty_metrics *m, void (*cb)(ty_metrics *m, void *ud)) {
  for (size_t i = 0; m && i < m->n_collectors; i++)
    if (m->collectors[i].cb == cb) return m->collectors[i].ud;
  return NULL;
}

void ty_metrics_on_collect(ty_metrics *m, void (*cb)(ty_metrics *m, void *ud), void *ud) {
  ty__metrics_on_collect_owned(m, cb, ud, NULL);
}

/* ---- exposition ---------------------------------------------------------- */

/* Appends s with `\` and newline escaped, and `"` too when quoted. */
static int put_escaped(ty_buf *out, const char *s, int quoted) {
  int rc = 0;
  const char *run = s;
  for (const char *p = s; rc == 0 && *p; p++) {
    const char *esc = *p == '\\'              ? "\\\\"
                      : *p == '\n'            ? "\\n"
                      : (quoted && *p == '"') ? "\\\""
                                              : NULL;
    if (!esc) continue;
    rc = ty_buf_append(out, run, (size_t)(p - run));
    if (rc == 0) rc = ty_buf_append(out, esc, 2);
    run = p + 1;
  }
  if (rc == 0) rc = ty_buf_append(out, run, strlen(run));
  return rc;
}

/* name{l="v",...,le="b"} value\n; `le` is NULL outside histogram buckets. */
static int put_sample(ty_buf *out, const ty_metric *f, const char *suffix, const series *s,
                      const char *le, double v) {
  char num[32];
  int rc = ty_buf_printf(out, "%s%s", f->name, suffix);
  size_t n = f->n_labels + (le ? 1 : 0);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    int is_le = i == f->n_labels;
    rc = ty_buf_printf(out, "%s%s=\"", i ? "," : "{", is_le ? "le" : f->labels[i]);
    if (rc == 0) rc = put_escaped(out, is_le ? le : s->values[i], 1);
    if (rc == 0) rc = ty_buf_append(out, "\"", 1);
  }
  if (rc == 0 && n) rc = ty_buf_append(out, "}", 1);
  ty__metrics_fmt_double(num, v);
  if (rc == 0) rc = ty_buf_printf(out, " %s\n", num);
  return rc;
}

static int put_histogram(ty_buf *out, const ty_metric *f, const series *s) {
  char le[32];
  uint64_t cum = 0;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i <= f->n_bounds; i++) {
    cum += s->buckets[i];
    if (i < f->n_bounds)
      ty__metrics_fmt_double(le, f->bounds[i]);
    else
      strcpy(le, "+Inf");
    rc = put_sample(out, f, "_bucket", s, le, (double)cum);
  }
  if (rc == 0) rc = put_sample(out, f, "_sum", s, NULL, s->sum);
  if (rc == 0) rc = put_sample(out, f, "_count", s, NULL, (double)s->count);
  return rc;
}

static int put_family(ty_buf *out, const ty_metric *f) {
  static const char *const type[] = {"counter", "gauge", "histogram"};
  int rc = ty_buf_printf(out, "# HELP %s ", f->name);
  if (rc == 0) rc = put_escaped(out, f->help, 0);
  if (rc == 0) rc = ty_buf_printf(out, "\n# TYPE %s %s\n", f->name, type[f->kind]);
  for (size_t i = 0; rc == 0 && i < f->n_series; i++) {
    const series *s = f->series[i];
    if (f->kind == KIND_HISTOGRAM)
      rc = put_histogram(out, f, s);
    else
      rc = put_sample(out, f, "", s, NULL, s->value);
  }
  return rc;
}

int ty_metrics_render(ty_metrics *m, ty_buf *out) {
  if (!m || !out) return TY_EINVAL;
  for (size_t i = 0; i < m->n_collectors; i++)
    m->collectors[i].cb(m, m->collectors[i].ud);
  size_t start = out->len;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < m->n_families; i++)
    rc = put_family(out, m->families[i]);
  if (rc) out->len = start; /* never hand out half an exposition */
  return rc;
}
