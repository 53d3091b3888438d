/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Plain-text tables in the style of squeue and kubectl: a header row, columns
 * as wide as their widest cell, two spaces between columns, no trailing
 * blanks. Widths count UTF-8 code points so a name in Cyrillic lines up. Cells
 * are sanitised on the way in (control bytes -> '?') because they carry
 * user-chosen text that must not move the cursor or split a row.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

struct ty_cli_table {
  size_t ncols;
  bool *right;  /* ncols */
  char **cells; /* nrows * ncols, row 0 the headers */
  size_t nrows, cap;
};

static char *sanitise(const char *s) {
  char *c = ty_strdup(s ? s : "");
  for (unsigned char *p = (unsigned char *)c; *p; p++)
    if (*p < 0x20 || *p == 0x7F) *p = '?';
  return c;
}

static size_t width(const char *s) {
  size_t w = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if ((*p & 0xC0) != 0x80) w++; /* count lead bytes only */
  return w;
}

ty_cli_table *ty_cli_table_create(const char *const *headers, const bool *right, size_t ncols) {
  ty_cli_table *t = ty_xcalloc(1, sizeof *t);
  t->ncols = ncols;
  t->right = ty_xcalloc(ncols, sizeof *t->right);
  if (right) memcpy(t->right, right, ncols * sizeof *right);
  if (ty_cli_table_add(t, headers) != 0) {
    ty_cli_table_destroy(t);
    return NULL;
  }
  return t;
}

void ty_cli_table_destroy(ty_cli_table *t) {
  if (!t) return;
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
  free(t->right);
  free(t);
}

int ty_cli_table_add(ty_cli_table *t, const char *const *cells) {
  if (t->nrows == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 16;
    t->cells = ty_xrealloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
  }
  for (size_t c = 0; c < t->ncols; c++)
    t->cells[t->nrows * t->ncols + c] = sanitise(cells[c]);
  t->nrows++;
  return 0;
}

static int pad(ty_buf *out, size_t n) {
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = ty_buf_append(out, " ", 1);
  return rc;
}

/* Appends cell clipped to w code points (the last one '+' when clipped). */
static int put_cell(ty_buf *out, const char *cell, size_t w) {
  if (width(cell) <= w) return ty_buf_append(out, cell, strlen(cell));
  const char *p = cell;
  for (size_t k = 0; k + 1 < w; k++) /* w - 1 code points, then the mark */
    do
      p++;
    while ((*(const unsigned char *)p & 0xC0) == 0x80);
  int rc = ty_buf_append(out, cell, (size_t)(p - cell));
  return rc ? rc : ty_buf_append(out, "+", 1);
}

static int render_row(const ty_cli_table *t, size_t r, const size_t *w, ty_buf *out) {
  /* The last column is never padded, so find the last non-empty cell to avoid
   * trailing blanks when the row ends in empty cells. */
  size_t last = t->ncols;
  while (last > 1 && t->cells[r * t->ncols + last - 1][0] == '\0')
    last--;
  int rc = 0;
  for (size_t c = 0; c < last && rc == 0; c++) {
    const char *cell = t->cells[r * t->ncols + c];
    size_t cw = width(cell), gap = w[c] > cw ? w[c] - cw : 0;
    if (c > 0) rc = ty_buf_append(out, "  ", 2);
    if (rc == 0 && t->right[c]) rc = pad(out, gap);
    if (rc == 0) rc = put_cell(out, cell, w[c]);
    if (rc == 0 && !t->right[c] && c + 1 < last) rc = pad(out, gap);
  }
  return rc ? rc : ty_buf_append(out, "\n", 1);
}

/* The narrowest a clipped column gets: room for "ab+" and the header's start. */
#define MIN_CLIP 4

/* Narrows text columns, widest first, until a row fits in max (or none
 * can give more). */
static void fit(const ty_cli_table *t, size_t *w, size_t max) {
  size_t total = 2 * (t->ncols - 1);
  for (size_t c = 0; c < t->ncols; c++)
    total += w[c];
  while (total > max) {
    size_t widest = t->ncols;
    for (size_t c = 0; c < t->ncols; c++)
      if (!t->right[c] && w[c] > MIN_CLIP && (widest == t->ncols || w[c] > w[widest])) widest = c;
    if (widest == t->ncols) return;
    size_t give = w[widest] - MIN_CLIP < total - max ? w[widest] - MIN_CLIP : total - max;
    w[widest] -= give, total -= give;
  }
}

int ty_cli_table_render_opts(const ty_cli_table *t, const ty_cli_table_opts *o, ty_buf *out) {
  size_t first = o && o->noheader ? 1 : 0;
  size_t *w = ty_xcalloc(t->ncols, sizeof *w);
  for (size_t r = first; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++) {
      size_t cw = width(t->cells[r * t->ncols + c]);
      if (cw > w[c]) w[c] = cw;
    }
  if (o && o->max_width) fit(t, w, o->max_width);
  int rc = 0;
  for (size_t r = first; r < t->nrows && rc == 0; r++)
    rc = render_row(t, r, w, out);
  free(w);
  return rc;
}

int ty_cli_table_render(const ty_cli_table *t, ty_buf *out) {
  return ty_cli_table_render_opts(t, NULL, out);
}
