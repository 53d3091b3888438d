/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Plain-text tables in the style of squeue and kubectl: a header row, columns
 * as wide as their widest cell, two spaces between columns, no trailing
 * blanks; or sacct --parsable2's cells with a delimiter between them. Widths count UTF-8 code
 * points so a name in Cyrillic lines up. Cells are sanitised on the way in (control bytes -> '?')
 * because they carry user-chosen text that must not move the cursor or split a row.
 */
#include "cli/cli.h"
#include "cli/cli_history.h"

#include <stdlib.h>
#include <string.h>

/* A cell: its sanitised text in the table's one text buffer, and its width. */
typedef struct cell {
  size_t off, width;
} cell;

struct ty_cli_table {
  size_t ncols;
  bool *right; /* ncols */
  cell *cells; /* nrows * ncols, row 0 the headers */
  ty_buf text; /* every cell, NUL-terminated, one after the other */
  size_t nrows, cap;
};

ty_cli_table *ty_cli_table_create(const char *const *headers, const bool *right, size_t ncols) {
  ty_cli_table *t = ty_xcalloc(1, sizeof *t);
  t->ncols = ncols;
  t->right = ty_xcalloc(ncols, sizeof *t->right);
  ty_buf_init(&t->text);
  if (right) memcpy(t->right, right, ncols * sizeof *right);
  if (ty_cli_table_add(t, headers) != 0) {
    ty_cli_table_destroy(t);
    return NULL;
  }
  return t;
}

void ty_cli_table_destroy(ty_cli_table *t) {
  if (!t) return;
  ty_buf_close(&t->text);
  free(t->cells);
  free(t->right);
  free(t);
}

/* Appends s to the text with control bytes as '?'; its width in code points
 * (lead bytes only) into *width. */
static int put_text(ty_buf *text, const char *s, size_t *width) {
  size_t n = s ? strlen(s) : 0, w = 0;
  int rc = ty_buf_reserve(text, n + 1);
  if (rc) return rc;
  unsigned char *d = text->data + text->len;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    d[i] = c < 0x20 || c == 0x7F ? '?' : c;
    w += (c & 0xC0) != 0x80;
  }
  d[n] = '\0';
  text->len += n + 1;
  *width = w;
  return 0;
}

int ty_cli_table_add(ty_cli_table *t, const char *const *cells) {
  if (t->nrows == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 16;
    t->cells = ty_xrealloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
  }
  cell *row = &t->cells[t->nrows * t->ncols];
  for (size_t c = 0; c < t->ncols; c++) {
    row[c].off = t->text.len;
    if (put_text(&t->text, cells[c], &row[c].width) != 0) return TY_ENOMEM;
  }
  t->nrows++;
  return 0;
}

static const char *text_of(const ty_cli_table *t, const cell *c) {
  return (const char *)t->text.data + c->off;
}

/* Appends n blanks (out has the room: render_row reserved it). */
static void pad(ty_buf *out, size_t n) {
  memset(out->data + out->len, ' ', n);
  out->len += n;
}

/* Appends the cell clipped to w code points (the last one '+' when clipped). */
static void put_cell(ty_buf *out, const char *s, size_t width, size_t w) {
  size_t n = strlen(s);
  if (width > w) {
    const char *p = s;
    for (size_t k = 0; k + 1 < w; k++) /* w - 1 code points, then the mark */
      do
        p++;
      while ((*(const unsigned char *)p & 0xC0) == 0x80);
    n = (size_t)(p - s);
  }
  memcpy(out->data + out->len, s, n);
  out->len += n;
  if (width > w) out->data[out->len++] = '+';
}

static int render_row(const ty_cli_table *t, size_t r, const size_t *w, ty_buf *out) {
  const cell *row = &t->cells[r * t->ncols];
  /* The last column is never padded, so find the last non-empty cell to avoid
   * trailing blanks when the row ends in empty cells. */
  size_t last = t->ncols, room = 1;
  while (last > 1 && row[last - 1].width == 0 && text_of(t, &row[last - 1])[0] == '\0')
    last--;
  for (size_t c = 0; c < last; c++) /* a clipped cell is at most its width's bytes + 1 */
    room += 2 + (w[c] > row[c].width ? w[c] : 0) + strlen(text_of(t, &row[c])) + 1;
  int rc = ty_buf_reserve(out, room);
  for (size_t c = 0; c < last && rc == 0; c++) {
    size_t cw = row[c].width, gap = w[c] > cw ? w[c] - cw : 0;
    if (c > 0) pad(out, 2);
    if (t->right[c]) pad(out, gap);
    put_cell(out, text_of(t, &row[c]), cw, w[c]);
    if (!t->right[c] && c + 1 < last) pad(out, gap);
  }
  if (rc == 0) out->data[out->len++] = '\n';
  return rc;
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

/* A row as sacct -P prints it: the cells as they are, o->delim between. */
static int render_delimited(const ty_cli_table *t, size_t r, const ty_cli_table_opts *o,
                            ty_buf *out) {
  const cell *row = &t->cells[r * t->ncols];
  int rc = 0;
  for (size_t c = 0; c < t->ncols && rc == 0; c++)
    rc = c ? ty_buf_printf(out, "%c%s", o->delim, text_of(t, &row[c]))
           : ty_buf_printf(out, "%s", text_of(t, &row[c]));
  if (rc == 0 && o->delim_last) rc = ty_buf_printf(out, "%c", o->delim);
  if (rc == 0) rc = ty_buf_printf(out, "\n");
  return rc;
}

int ty_cli_table_render_opts(const ty_cli_table *t, const ty_cli_table_opts *o, ty_buf *out) {
  size_t first = o && o->noheader ? 1 : 0;
  if (o && o->delim) {
    int rc = 0;
    for (size_t r = first; r < t->nrows && rc == 0; r++)
      rc = render_delimited(t, r, o, out);
    return rc;
  }
  size_t *w = ty_xcalloc(t->ncols, sizeof *w);
  for (size_t r = first; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++) {
      size_t cw = t->cells[r * t->ncols + c].width;
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

int ty_cli_put_template(ty_buf *out, const char *tmpl, const char *codes, ty_cli_cell_fn *cell,
                        void *ctx) {
  int rc = 0;
  for (const char *p = tmpl; *p && rc == 0;) {
    if (*p != '%') {
      size_t lit = strcspn(p, "%");
      rc = ty_buf_append(out, p, lit);
      p += lit;
      continue;
    }
    bool right = *++p == '.';
    p += right;
    size_t width = 0; /* ty_cli_put_cell caps it */
    for (; *p >= '0' && *p <= '9'; p++)
      width = width < TY_CLI_CELL_MAX_WIDTH ? width * 10 + (size_t)(*p - '0') : width;
    p += strspn(p, ".-0123456789");
    const char *c = *p ? strchr(codes, *p) : NULL;
    if (!c) return TY_EINVAL; /* the caller's check refused it */
    p++;
    rc = ty_cli_put_cell(out, cell(ctx, (size_t)(c - codes)), width, right);
  }
  return rc ? rc : ty_buf_append(out, "\n", 1);
}

int ty_cli_put_cell(ty_buf *out, const char *v, size_t width, bool right) {
  if (width > TY_CLI_CELL_MAX_WIDTH) width = TY_CLI_CELL_MAX_WIDTH; /* "%99999999999N" */
  size_t len = strlen(v);
  if (width && len > width) len = width;
  size_t pad = width > len ? width - len : 0;
  int rc = right ? ty_buf_printf(out, "%*s", (int)pad, "") : 0;
  if (rc == 0) rc = ty_buf_append(out, v, len);
  if (rc == 0 && !right) rc = ty_buf_printf(out, "%*s", (int)pad, "");
  return rc;
}
