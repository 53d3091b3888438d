/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CSV files (tabular data) as arrays: some columns of a CSV file, parsed
 * once at open into a heap array of the model input's type. The quoting
 * (RFC 4180: quoted fields, "" for a quote inside one, line breaks inside
 * quotes, CRLF, LF or CR rows) is libcsv's, a well-kept parser, not ours; this
 * file picks the columns, turns cells into numbers and says where a cell
 * is wrong: every rejection names the file, the line and the column, e.g.
 *   iris.csv:12: column 3 ("petal_width"): not a number: "n/a"
 *
 * The file is mapped and fed to libcsv one line at a time, so that every
 * cell and row libcsv reports is known to end on the line just fed; a row
 * is placed on the line its first cell ends on. Blank lines are skipped
 * (libcsv's default). Unquoted cells lose their leading and trailing spaces
 * and tabs.
 *
 * One pass may feed several arrays (a file of feature columns and a label
 * column feeds two model inputs): each takes its own columns and type, and
 * the file is tokenized once for all of them, as that is most of a read.
 * Each array is refused as its own pass would refuse it, and the refusal
 * reported is the first array's in the order given, so that one pass and
 * one pass per array say the same thing.
 *
 * Output: one selected column gives a 1-D array [N], several give [N, F] in
 * the order they are listed. Floats are parsed as doubles (strtod, the C
 * locale's '.') and rounded to float32 for a float32 input, as numpy's
 * loadtxt(...).astype(float32) and loadtxt(dtype=float32) do: strtof
 * rounds once and so differs from numpy for decimals close to a float32
 * midpoint, and neither it nor strtod_l with a C locale object was faster
 * (6.4M cells: 0.39 s each); a cell must be written as a decimal number
 * (or inf / nan, refused as not finite): strtod's hexadecimal ("0x10",
 * "0x1p3") is refused as numpy.loadtxt refuses it. Integers (int64
 * inputs) must be whole numbers ("3" or "3.0"). With categories, the single column's cells are
 * strings and sample i's id is the rank of its string among the sorted
 * unique strings of the file (the list is kept with the array), or among
 * a given list (a test file takes its training file's, so an id means the
 * same class in both).
 *
 * Memory: the selected values (4 or 8 bytes each) plus 4 bytes per row and
 * array for the row's line number (for the label range check's message); the
 * categories' strings while they are sorted. The mapped file costs page
 * cache only. Growth follows the rows actually parsed, never a size the
 * file announces.
 */
#include "ops/data/data_internal.h"

#include "lib/base/base.h"

#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One array's share of the pass: its options, the columns it takes and
 * the values parsed so far. */
typedef struct sink {
  const ty_data_csv_opts *o;
  size_t *sel; /* ncols entries: output position + 1, 0 if not taken */
  size_t width;
  size_t esize;
  uint8_t *vals; /* rows * width values */
  size_t cap_rows, rows;
  uint32_t *lines;
  char **cells; /* categories: one string per row, NULL past the last */
} sink;

/* One pass over a file feeding sinks[0..n). Each sink fails as its own
 * pass would have (at its first refusal, in file order); the refusal
 * reported is that of the first sink to fail in the order given, as if
 * the sinks had been parsed one after the other. So sinks[0..live) are
 * still fed, and err holds the refusal of sinks[live] when live < n:
 * once sink j fails, the sinks after it can no longer be the one
 * reported and are dropped too, and a refusal of the file itself (bad
 * quoting, a ragged row) fails sinks[0]. */
typedef struct parse {
  const char *name;
  bool header;
  char *err;
  size_t err_len;
  int rc; /* sinks[live]'s code */
  sink *sinks;
  size_t n, live;
  size_t line;     /* the line being fed, from 1 */
  size_t rec_line; /* the line the current row's first cell ended on */
  size_t row_end;  /* the line the last row ended on */
  size_t col;      /* cells of the current row so far */
  size_t ncols;    /* cells of the first row; 0 until it ends */
  char **first;    /* the first row's cells, until the selection is known */
  size_t n_first, cap_first;
  bool nul_fed; /* a NUL byte was among the lines fed so far: cells are checked for one */
} parse;

static int vfail_at(parse *p, size_t j, int rc, const char *fmt, va_list ap) {
  if (j >= p->live) return p->rc;
  p->rc = ty_verrf(p->err, p->err_len, rc, fmt, ap);
  p->live = j;
  return p->rc;
}

/* Sink j is refused (a selection it cannot have, a cell it cannot take). */
static int fail_at(parse *p, size_t j, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(parse *p, size_t j, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail_at(p, j, rc, fmt, ap);
  va_end(ap);
  return p->rc;
}

/* The file is refused: every sink's pass would stop here. */
static int fail(parse *p, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(parse *p, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail_at(p, 0, rc, fmt, ap);
  va_end(ap);
  return p->rc;
}

/* "column 3 (\"petal_width\")" or "column 3" when there is no header. */
static const char *col_name(const parse *p, size_t c, char *buf, size_t len) {
  if (p->header && c < p->n_first)
    snprintf(buf, len, "column %zu (\"%.64s\")", c, p->first[c]);
  else
    snprintf(buf, len, "column %zu", c);
  return buf;
}

/* ---- cells ------------------------------------------------------------------ */

/* The first 40 bytes of cell s for a message, control characters (a line
 * break inside a quoted cell) escaped as \n, \r, \t or \xNN. */
static const char *shown(const char *s, char *buf, size_t len) {
  size_t at = 0;
  for (size_t i = 0; s[i] && i < 40 && at + 5 < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    const char *esc = ch == '\n' ? "\\n" : ch == '\r' ? "\\r" : ch == '\t' ? "\\t" : NULL;
    if (esc)
      at += (size_t)snprintf(buf + at, len - at, "%s", esc);
    else if (ch < 0x20 || ch == 0x7f)
      at += (size_t)snprintf(buf + at, len - at, "\\x%02x", ch);
    else
      buf[at++] = (char)ch;
  }
  buf[at] = '\0';
  return buf;
}

/* Whether s is written as a decimal number ([0-9+-.eE], after any
 * leading space strtod skips) or as inf, infinity or nan: strtod also
 * reads hexadecimal ("0x10", "0x1p3"), which numpy.loadtxt refuses. */
static bool decimal(const char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  if (s[strspn(s, "0123456789+-.eE")] == '\0') return true;
  const char *w = *s == '+' || *s == '-' ? s + 1 : s;
  return strcasecmp(w, "inf") == 0 || strcasecmp(w, "infinity") == 0 || strcasecmp(w, "nan") == 0;
}

static void cell_float(parse *p, size_t j, size_t c, const char *s, uint8_t *out) {
  const sink *k = &p->sinks[j];
  char *end = (char *)s;
  bool dec = decimal(s);
  double v = dec ? strtod(s, &end) : 0;
  char cn[128], sv[200];
  if (!dec || end == s || *end != '\0') {
    fail_at(p, j, TY_EPROTO, "%s:%zu: %s: not a number: \"%s\"", p->name, p->line,
            col_name(p, c, cn, sizeof cn), shown(s, sv, sizeof sv));
    return;
  }
  if (!isfinite(v) || (k->esize == 4 && !isfinite((float)v))) {
    fail_at(p, j, TY_EPROTO, "%s:%zu: %s: \"%s\" is not finite in %s", p->name, p->line,
            col_name(p, c, cn, sizeof cn), shown(s, sv, sizeof sv), ty_data_type_name(k->o->to));
    return;
  }
  if (k->esize == 4) {
    float f = (float)v;
    memcpy(out, &f, sizeof f);
  } else {
    memcpy(out, &v, sizeof v);
  }
}

static void cell_int(parse *p, size_t j, size_t c, const char *s, uint8_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end == s || *end != '\0' || errno == ERANGE) {
    /* pandas writes integer columns with missing values as floats: 3.0 */
    bool dec = decimal(s);
    double d = dec ? strtod(s, &end) : NAN;
    char cn[128], sv[200];
    if (!dec || end == s || *end != '\0' || !(fabs(d) <= 9007199254740992.0) || d != floor(d)) {
      fail_at(p, j, TY_EPROTO,
              "%s:%zu: %s: not an integer: \"%s\" (int64 input: class ids or integers; "
              "set csv.categories for labels that are strings)",
              p->name, p->line, col_name(p, c, cn, sizeof cn), shown(s, sv, sizeof sv));
      return;
    }
    v = (long long)d;
  }
  int64_t w = v;
  memcpy(out, &w, sizeof w);
}

/* Room for one more row in sink j; rows grow by doubling as they are parsed. */
static int grow(parse *p, size_t j) {
  sink *k = &p->sinks[j];
  if (k->rows < k->cap_rows) return 0;
  if (k->rows >= UINT32_MAX)
    return fail_at(p, j, TY_ETOOBIG, "%s:%zu: more than %u rows", p->name, p->line, UINT32_MAX);
  size_t cap = k->cap_rows ? k->cap_rows * 2 : 64;
  if (cap > SIZE_MAX / (k->width * k->esize + sizeof(char *)))
    return fail_at(p, j, TY_ETOOBIG, "%s: too many rows", p->name);
  uint8_t *v = realloc(k->vals, cap * k->width * k->esize);
  if (v) k->vals = v;
  uint32_t *l = v ? realloc(k->lines, cap * sizeof *l) : NULL;
  if (l) k->lines = l;
  char **s = l && k->o->categories ? realloc(k->cells, cap * sizeof *s) : NULL;
  if (s) {
    k->cells = s;
    memset(s + k->cap_rows, 0, (cap - k->cap_rows) * sizeof *s);
  }
  if (!v || !l || (k->o->categories && !s))
    return fail_at(p, j, TY_ENOMEM, "%s: no memory for %zu rows", p->name, cap);
  k->cap_rows = cap;
  return 0;
}

/* Cell c of a data row for sink j (s NULL for an empty unquoted cell). */
static void sink_cell(parse *p, size_t j, size_t c, const char *s) {
  sink *k = &p->sinks[j];
  char cn[128];
  if (!k->sel[c] || grow(p, j) != 0) return;
  if (!s || !*s) {
    fail_at(p, j, TY_EPROTO, "%s:%zu: %s: empty cell", p->name, p->line,
            col_name(p, c, cn, sizeof cn));
    return;
  }
  if (k->o->categories) {
    if (!(k->cells[k->rows] = strdup(s))) fail_at(p, j, TY_ENOMEM, "%s: no memory", p->name);
    return;
  }
  uint8_t *out = k->vals + (k->rows * k->width + k->sel[c] - 1) * k->esize;
  if (k->o->to == TY_DATA_I64)
    cell_int(p, j, c, s, out);
  else
    cell_float(p, j, c, s, out);
}

/* Cell c of a data row, to every sink still fed. */
static void data_cell(parse *p, size_t c, const char *s) {
  if (p->ncols && c >= p->ncols) {
    fail(p, TY_EPROTO, "%s:%zu: ragged row: more than the %zu cells of the first row", p->name,
         p->rec_line, p->ncols);
    return;
  }
  for (size_t j = 0; j < p->live; j++)
    sink_cell(p, j, c, s);
}

/* ---- the column selection ----------------------------------------------------- */

static bool parse_index(const char *s, const char *stop, size_t *out) {
  if (s == stop) return false;
  size_t v = 0;
  for (; s < stop; s++) {
    if (*s < '0' || *s > '9' || v > (SIZE_MAX - 9) / 10) return false;
    v = v * 10 + (size_t)(*s - '0');
  }
  *out = v;
  return true;
}

/* Takes column c as sink j's next output position. */
static int take(parse *p, size_t j, size_t c, const char *spec) {
  sink *k = &p->sinks[j];
  char cn[128];
  if (k->sel[c])
    return fail_at(p, j, TY_EINVAL, "%s: %s is selected twice (csv.columns \"%s\")", p->name,
                   col_name(p, c, cn, sizeof cn), spec);
  k->sel[c] = ++k->width;
  return 0;
}

/* The header's columns as "a, b, c" for a missing name's message. */
static void header_list(const parse *p, char *buf, size_t len) {
  size_t at = 0;
  buf[0] = '\0';
  for (size_t c = 0; c < p->n_first && at + 1 < len; c++) {
    int k = snprintf(buf + at, len - at, "%s%s", c ? ", " : "", p->first[c]);
    at = k < 0 ? len : at + (size_t)k;
  }
}

/* A header name of sink j's selection: its column, or SIZE_MAX when the
 * header has no such name (or there is no header). */
static size_t named(parse *p, size_t j, const char *spec) {
  size_t hit = SIZE_MAX;
  for (size_t c = 0; p->header && c < p->ncols; c++)
    if (strcmp(p->first[c], spec) == 0) {
      if (hit != SIZE_MAX) {
        fail_at(p, j, TY_EINVAL, "%s: the header names columns %zu and %zu \"%s\"", p->name, hit, c,
                spec);
        return SIZE_MAX;
      }
      hit = c;
    }
  return hit;
}

/* One entry of sink j's csv.columns: a header name, an index or a range A..B / A.. */
static int select_one(parse *p, size_t j, const char *spec) {
  size_t hit = named(p, j, spec);
  if (j >= p->live) return p->rc;
  if (hit != SIZE_MAX) return take(p, j, hit, spec);
  const char *dots = strstr(spec, "..");
  size_t a, b = SIZE_MAX;
  bool ok = dots ? parse_index(spec, dots, &a) &&
                       (dots[2] == '\0' || parse_index(dots + 2, dots + strlen(dots), &b))
                 : parse_index(spec, spec + strlen(spec), &a);
  if (!ok && p->header) {
    char list[512];
    header_list(p, list, sizeof list);
    return fail_at(p, j, TY_EINVAL, "%s:1: no column named \"%s\" (the header has: %s)", p->name,
                   spec, list);
  }
  if (!ok)
    return fail_at(p, j, TY_EINVAL,
                   "%s: csv.columns \"%s\": not a 0-based index or range A..B (the file has no "
                   "header row to name columns by)",
                   p->name, spec);
  if (!dots) b = a;
  if (b == SIZE_MAX) b = p->ncols - 1;
  if (a > b)
    return fail_at(p, j, TY_EINVAL,
                   "%s: csv.columns \"%s\": the range is reversed (%zu > %zu); write it as "
                   "\"%zu..%zu\"",
                   p->name, spec, a, b, b, a);
  if (b >= p->ncols)
    return fail_at(p, j, TY_EINVAL, "%s: csv.columns \"%s\": the rows have %zu columns (0..%zu)",
                   p->name, spec, p->ncols, p->ncols - 1);
  for (size_t c = a; c <= b && j < p->live; c++)
    take(p, j, c, spec);
  return j < p->live ? 0 : p->rc;
}

/* At the end of the first row: which columns feed which of sink j's
 * output positions. */
static void select_columns(parse *p, size_t j) {
  sink *k = &p->sinks[j];
  if (!(k->sel = calloc(p->ncols, sizeof *k->sel))) {
    fail_at(p, j, TY_ENOMEM, "no memory");
    return;
  }
  for (size_t i = 0; i < k->o->n_columns && j < p->live; i++)
    select_one(p, j, k->o->columns[i]);
  for (size_t c = 0; k->o->n_columns == 0 && c < p->ncols; c++)
    k->sel[c] = ++k->width;
  if (j < p->live && k->o->categories && k->width != 1)
    fail_at(p, j, TY_EINVAL,
            "%s: csv.categories maps one label column to ids; %zu columns are selected", p->name,
            k->width);
}

/* ---- libcsv callbacks --------------------------------------------------------- */

/* A cell of the first row, kept as a string until the selection is known. */
static void first_cell(parse *p, const char *s) {
  if (p->n_first == p->cap_first) {
    size_t cap = p->cap_first ? p->cap_first * 2 : 16;
    char **f = realloc(p->first, cap * sizeof *f);
    if (!f) {
      fail(p, TY_ENOMEM, "%s: no memory", p->name);
      return;
    }
    p->first = f;
    p->cap_first = cap;
  }
  if (!(p->first[p->n_first] = strdup(s ? s : "")))
    fail(p, TY_ENOMEM, "%s: no memory", p->name);
  else
    p->n_first++;
}

static void on_cell(void *s, size_t len, void *data) {
  parse *p = data;
  if (p->live == 0) return;
  if (p->col == 0) p->rec_line = p->line;
  size_t c = p->col++;
  if (s && p->nul_fed && memchr(s, 0, len)) /* CSV_APPEND_NULL ends s with one NUL */
    fail(p, TY_EPROTO, "%s:%zu: cell %zu holds a NUL byte", p->name, p->line, c);
  else if (p->ncols)
    data_cell(p, c, s);
  else
    first_cell(p, s);
}

static void on_row(int term, void *data) {
  parse *p = data;
  (void)term;
  if (p->live == 0) return;
  size_t cells = p->col;
  p->col = 0;
  p->row_end = p->line;
  if (!p->ncols) {
    p->ncols = p->n_first;
    for (size_t j = 0; j < p->live; j++)
      select_columns(p, j);
    if (p->header) return;
    for (size_t c = 0; c < p->n_first && p->live; c++) /* the first row was data */
      data_cell(p, c, p->first[c]);
  } else if (cells != p->ncols) {
    fail(p, TY_EPROTO, "%s:%zu: ragged row: %zu cells, the first row has %zu", p->name, p->rec_line,
         cells, p->ncols);
  }
  for (size_t j = 0; j < p->live; j++)
    if (grow(p, j) == 0) {
      sink *k = &p->sinks[j];
      k->lines[k->rows++] = p->rec_line > UINT32_MAX ? UINT32_MAX : (uint32_t)p->rec_line;
    }
}

/* ---- categories and the result ------------------------------------------------ */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sink j's row i id among o->known (a training file's categories, sorted):
 * a string the training file did not have would get no id, or another
 * file's, so it is refused at its line. */
static int known_ids(parse *p, size_t j) {
  sink *k = &p->sinks[j];
  size_t c = 0;
  while (k->sel[c] != 1)
    c++;
  for (size_t i = 0; i < k->rows; i++) {
    const char *const *hit =
        bsearch(&k->cells[i], k->o->known, k->o->n_known, sizeof(char *), cmp_str);
    char cn[128], sv[200];
    if (!hit)
      return fail_at(p, j, TY_EINVAL, "%s:%u: %s: \"%s\" is not a category of the training file",
                     p->name, k->lines[i], col_name(p, c, cn, sizeof cn),
                     shown(k->cells[i], sv, sizeof sv));
    int64_t id = (int64_t)(hit - k->o->known);
    memcpy(k->vals + i * sizeof id, &id, sizeof id);
  }
  return 0;
}

/* Replaces sink j's strings by their ids; the sorted unique strings go to a. */
static int to_categories(parse *p, size_t j, ty_data_array *a) {
  sink *k = &p->sinks[j];
  if (k->o->known) return known_ids(p, j);
  char **u = malloc(k->rows * sizeof *u);
  if (!u) return fail_at(p, j, TY_ENOMEM, "%s: no memory", p->name);
  memcpy(u, k->cells, k->rows * sizeof *u);
  qsort(u, k->rows, sizeof *u, cmp_str);
  size_t n = 0;
  for (size_t i = 0; i < k->rows; i++)
    if (n == 0 || strcmp(u[n - 1], u[i]) != 0) u[n++] = u[i];
  char **names = calloc(n, sizeof *names);
  for (size_t i = 0; names && i < n; i++)
    if (!(names[i] = strdup(u[i]))) break;
  for (size_t i = 0; names && i < k->rows; i++) {
    char **hit = bsearch(&k->cells[i], u, n, sizeof *u, cmp_str);
    int64_t id = (int64_t)(hit - u);
    memcpy(k->vals + i * sizeof id, &id, sizeof id);
  }
  free(u);
  a->categories = names;
  a->n_categories = names ? n : 0;
  if (!names || (n && !names[n - 1])) return fail_at(p, j, TY_ENOMEM, "%s: no memory", p->name);
  return 0;
}

/* The sinks still fed become out[0..live) (those before a refused one
 * are whole: the caller may use them up to the refused one). */
static int finish(parse *p, ty_data_array *out) {
  if (p->live && p->sinks[0].rows == 0)
    fail(p, TY_EPROTO, "%s: %s", p->name,
         p->n_first ? "a header row and no data rows" : "empty: no rows");
  for (size_t j = 0; j < p->live; j++)
    if (p->sinks[j].o->categories) to_categories(p, j, &out[j]);
  for (size_t j = 0; j < p->live; j++) {
    sink *k = &p->sinks[j];
    ty_data_array *a = &out[j];
    a->type = k->o->to;
    a->ndims = k->width == 1 ? 1 : 2;
    a->dims[0] = k->rows;
    if (k->width > 1) a->dims[1] = k->width;
    a->nbytes = k->rows * k->width * k->esize;
    a->data = k->vals;
    a->storage.heap = k->vals;
    a->lines = k->lines;
    k->vals = NULL;
    k->lines = NULL;
  }
  return p->live == p->n ? 0 : p->rc;
}

static void parse_free(parse *p) {
  for (size_t i = 0; i < p->n_first; i++)
    free(p->first[i]);
  free(p->first);
  for (size_t j = 0; j < p->n; j++) {
    sink *k = &p->sinks[j];
    for (size_t i = 0; k->cells && i < k->cap_rows; i++)
      free(k->cells[i]);
    free(k->cells);
    free(k->sel);
    free(k->vals);
    free(k->lines);
  }
}

/* libcsv stopped inside the line being fed. */
static void parser_failed(parse *p, struct csv_parser *cp) {
  int e = csv_error(cp);
  if (e == CSV_EPARSE)
    fail(p, TY_EPROTO,
         "%s:%zu: bad quoting (RFC 4180: a quoted cell ends with a quote followed by the "
         "delimiter or the end of the row; a quote inside it is doubled, \"\")",
         p->name, p->line);
  else
    fail(p, e == CSV_ENOMEM ? TY_ENOMEM : TY_ETOOBIG, "%s:%zu: %s", p->name, p->line,
         csv_strerror(e));
}

/* Options j, as its own pass would check them before reading a line. */
static int check_opts(parse *p, size_t j) {
  const ty_data_csv_opts *o = p->sinks[j].o, *o0 = p->sinks[0].o;
  const char *name = p->name;
  if (o->to != TY_DATA_F32 && o->to != TY_DATA_F64 && o->to != TY_DATA_I64)
    return fail_at(p, j, TY_EINVAL, "%s: a CSV file feeds float32, float64 or int64 inputs, not %s",
                   name, ty_data_type_name(o->to));
  if (o->categories && o->to != TY_DATA_I64)
    return fail_at(p, j, TY_EINVAL, "%s: csv.categories makes int64 class ids; the input takes %s",
                   name, ty_data_type_name(o->to));
  char d = o->delimiter;
  if (d == '"' || d == '\n' || d == '\r' || d == ' ')
    return fail_at(p, j, TY_EINVAL, "%s: csv.delimiter cannot be a quote, a space or a line break",
                   name);
  if (o->header != o0->header || (d ? d : ',') != (o0->delimiter ? o0->delimiter : ','))
    return fail_at(p, j, TY_EINVAL,
                   "%s: the arrays read in one pass need one csv.header and csv.delimiter", name);
  return 0;
}

/* The bytes of the line starting at b, its end included: LF, CRLF or a
 * bare CR (classic Mac OS and Excel's "CSV (Macintosh)" end rows with
 * CR alone, and libcsv takes each as a row end). *nl is the next LF at or
 * after b that an earlier call found, or NULL when none is left: kept
 * across the lines, so a file of CR-only lines is not searched to its end
 * for an LF once per line (which made reading it quadratic). */
static size_t line_len(const uint8_t *b, size_t len, const uint8_t **nl) {
  if (*nl && *nl < b) *nl = memchr(b, '\n', len);
  size_t n = *nl ? (size_t)(*nl - b) + 1 : len;
  const uint8_t *cr = memchr(b, '\r', n);
  if (!cr) return n;
  size_t at = (size_t)(cr - b) + 1;
  return at < len && b[at] == '\n' ? at + 1 : at;
}

/* Feeds buf[0..len) to libcsv one line at a time. */
static void feed(parse *p, const uint8_t *buf, size_t len) {
  struct csv_parser cp;
  if (csv_init(&cp, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL | CSV_EMPTY_IS_NULL) != 0) {
    fail(p, TY_ENOMEM, "%s: no memory for the CSV parser", p->name);
    return;
  }
  char d = p->sinks[0].o->delimiter;
  csv_set_delim(&cp, (unsigned char)(d ? d : ','));
  size_t at = 0;
  const uint8_t *nl = memchr(buf, '\n', len);
  while (at < len && p->live) {
    size_t n = line_len(buf + at, len - at, &nl);
    /* One scan per line instead of one per cell (strlen per cell was 8%
     * of a read); once set it stays, as a quoted cell spans lines. */
    if (!p->nul_fed && memchr(buf + at, 0, n)) p->nul_fed = true;
    if (csv_parse(&cp, buf + at, n, on_cell, on_row, p) != n) parser_failed(p, &cp);
    at += n;
    p->line++;
  }
  p->line--;
  if (p->live && csv_fini(&cp, on_cell, on_row, p) != 0)
    fail(p, TY_EPROTO, "%s:%zu: a quoted cell is never closed (its row starts after line %zu)",
         p->name, p->line, p->row_end);
  csv_free(&cp);
}

int ty_data_csv_parse_many(const uint8_t *buf, size_t len, const char *name,
                           const ty_data_csv_opts *opts, size_t n, ty_data_array *out_arrays,
                           size_t *out_failed, char *err, size_t err_len) {
  if (out_failed) *out_failed = 0;
  if (n == 0 || n > TY_DATA_MAX_COLUMNS)
    return ty_errf(err, err_len, TY_EINVAL, "%s: one pass feeds 1 to %d arrays, not %zu", name,
                   TY_DATA_MAX_COLUMNS, n);
  sink sinks[TY_DATA_MAX_COLUMNS];
  memset(sinks, 0, sizeof sinks);
  parse p = {.name = name,
             .header = opts[0].header,
             .err = err,
             .err_len = err_len,
             .sinks = sinks,
             .n = n,
             .live = n,
             .line = 1};
  for (size_t j = 0; j < n; j++) {
    sinks[j].o = &opts[j];
    sinks[j].esize = ty_data_type_size(opts[j].to);
  }
  for (size_t j = 0; j < p.live; j++)
    check_opts(&p, j);
  /* A UTF-8 byte order mark (Excel's "CSV UTF-8") is not text: skipped,
   * as pandas skips it, rather than read into the first cell. */
  if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) buf += 3, len -= 3;
  if (p.live) feed(&p, buf, len);
  int rc = finish(&p, out_arrays);
  parse_free(&p);
  if (rc != 0 && out_failed) *out_failed = p.live;
  return rc;
}

int ty_data_csv_parse(const uint8_t *buf, size_t len, const char *name, const ty_data_csv_opts *o,
                      ty_data_array *out_array, char *err, size_t err_len) {
  return ty_data_csv_parse_many(buf, len, name, o, 1, out_array, NULL, err, err_len);
}

int ty_data_csv_open_many(const char *path, const ty_data_csv_opts *opts, size_t n,
                          ty_data_array *out_arrays, size_t *out_failed, char *err,
                          size_t err_len) {
  if (out_failed) *out_failed = 0;
  if (path == NULL || opts == NULL || out_arrays == NULL) return TY_EINVAL;
  if (n == 0 || n > TY_DATA_MAX_COLUMNS)
    return ty_errf(err, err_len, TY_EINVAL, "%s: one pass feeds 1 to %d arrays, not %zu", path,
                   TY_DATA_MAX_COLUMNS, n);
  for (size_t j = 0; j < n; j++) {
    memset(&out_arrays[j], 0, sizeof out_arrays[j]);
    if ((out_arrays[j].path = strdup(path)) == NULL) return TY_ENOMEM;
  }
  const uint8_t *b;
  size_t len;
  ty_data_storage st;
  int rc = ty__data_map(path, "a CSV file", &b, &len, &st, err, err_len);
  if (rc == 0)
    rc = ty_data_csv_parse_many(b, len, path, opts, n, out_arrays, out_failed, err, err_len);
  ty__data_storage_free(&st);
  return rc;
}

int ty_data_csv_open(const char *path, const ty_data_csv_opts *o, ty_data_array *out_array,
                     char *err, size_t err_len) {
  return ty_data_csv_open_many(path, o, 1, out_array, NULL, err, err_len);
}
