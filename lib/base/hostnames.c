/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Slurm hostlist expressions read into node names, as sbatch's and srun's
 * -w/--nodelist and -x/--exclude take them: `w1,w2`, `w[1-4,7]`,
 * `n[01-10]` (a number written with a leading zero keeps its width),
 * several brackets in one name `r[1-2]n[1-3]` (every combination, the last
 * bracket varying fastest, as Slurm orders them), and files of such
 * expressions (--nodefile, and a -w value with a '/'). Every refusal names
 * the text at fault. The names are the caller's (ty_hostnames_free). Also
 * the rule a node's name and an advertised host follow.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"

/* One bracket's numbers: [lo, hi] with the width to pad to (0 = none). */
typedef struct range {
  unsigned long long lo, hi;
  int pad;
} range;

/* A name of the expression: literal text and brackets, alternating. */
typedef struct part {
  const char *text; /* literal text before the bracket (or the tail) */
  size_t text_len;
  range *ranges; /* this bracket's ranges; NULL for the tail */
  size_t n_ranges;
} part;

typedef struct parser {
  const char *expr;
  size_t max, *n;
  char ***names;
  char *err;
  size_t err_len;
} parser;

static bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

/* One range "7", "1-4" or "01-10" of bracket text [s, end). */
static int parse_range(parser *ps, const char *s, const char *end, range *out) {
  const char *dash = memchr(s, '-', (size_t)(end - s));
  const char *lo_end = dash ? dash : end, *hi_s = dash ? dash + 1 : s;
  int w = (int)(end - s);
  for (const char *c = s; c < end; c++)
    if (c != dash && (*c < '0' || *c > '9'))
      return ty_errf(ps->err, ps->err_len, TY_EINVAL,
                     "hostlist \"%s\": \"%.*s\" is not a number or a range N-M", ps->expr, w, s);
  if (lo_end == s || hi_s == end || lo_end - s > 18 || end - hi_s > 18)
    return ty_errf(ps->err, ps->err_len, TY_EINVAL,
                   "hostlist \"%s\": \"%.*s\" is not a number or a range N-M", ps->expr, w, s);
  out->lo = strtoull(s, NULL, 10), out->hi = strtoull(hi_s, NULL, 10);
  out->pad = s[0] == '0' && lo_end - s > 1 ? (int)(lo_end - s) : 0;
  if (out->hi < out->lo)
    return ty_errf(ps->err, ps->err_len, TY_EINVAL,
                   "hostlist \"%s\": the range \"%.*s\" is reversed", ps->expr, w, s);
  return 0;
}

/* The ranges of bracket text [s, end) ("1-4,7") into p. */
static int parse_bracket(parser *ps, const char *s, const char *end, part *p) {
  if (s == end)
    return ty_errf(ps->err, ps->err_len, TY_EINVAL, "hostlist \"%s\": an empty bracket \"[]\"",
                   ps->expr);
  for (const char *r = s; r <= end;) {
    const char *comma = memchr(r, ',', (size_t)(end - r));
    const char *stop = comma ? comma : end;
    p->ranges = ty_xrealloc(p->ranges, (p->n_ranges + 1) * sizeof(*p->ranges));
    int rc = parse_range(ps, r, stop, &p->ranges[p->n_ranges++]);
    if (rc != 0) return rc;
    r = stop + 1;
  }
  return 0;
}

/* How many names parts[0..n) make, saturating at limit. */
static unsigned long long count_names(const part *parts, size_t n, unsigned long long limit) {
  unsigned long long total = 1;
  for (size_t k = 0; k < n; k++) {
    unsigned long long here = 0;
    for (size_t r = 0; r < parts[k].n_ranges; r++)
      here += parts[k].ranges[r].hi - parts[k].ranges[r].lo + 1;
    if (!parts[k].ranges) continue;
    if (here > limit || (here && total > limit / here)) return limit + 1;
    total *= here;
  }
  return total;
}

static void add_name(parser *ps, ty_buf *name) {
  *ps->names = ty_xrealloc(*ps->names, (*ps->n + 1) * sizeof(**ps->names));
  (*ps->names)[(*ps->n)++] = ty_strdup((const char *)name->data);
}

/* Every name of parts[k..n) after the prefix already in name. */
static void emit(parser *ps, const part *parts, size_t k, size_t n, ty_buf *name) {
  size_t keep = name->len;
  ty_buf_printf(name, "%.*s", (int)parts[k].text_len, parts[k].text);
  if (!parts[k].ranges) {
    add_name(ps, name);
  } else {
    size_t at = name->len;
    for (size_t r = 0; r < parts[k].n_ranges; r++)
      for (unsigned long long v = parts[k].ranges[r].lo;; v++) {
        name->len = at;
        ty_buf_printf(name, "%0*llu", parts[k].ranges[r].pad, v);
        emit(ps, parts, k + 1, n, name);
        if (v == parts[k].ranges[r].hi) break;
      }
  }
  name->len = keep;
  if (name->data) name->data[keep] = '\0';
}

static void free_parts(part *parts, size_t n) {
  for (size_t k = 0; k < n; k++)
    free(parts[k].ranges);
  free(parts);
}

/* One item of the expression, [s, end): its parts, then its names. */
static int parse_item(parser *ps, const char *s, const char *end) {
  if (s == end)
    return ty_errf(ps->err, ps->err_len, TY_EINVAL, "hostlist \"%s\": an empty node name",
                   ps->expr);
  part *parts = NULL;
  size_t n = 0;
  int rc = 0;
  for (const char *c = s; rc == 0;) {
    const char *open = c;
    while (open < end && *open != '[' && *open != ']')
      open++;
    parts = ty_xrealloc(parts, (n + 1) * sizeof(*parts));
    parts[n++] = (part){.text = c, .text_len = (size_t)(open - c)};
    for (const char *t = c; t < open && rc == 0; t++)
      if (!name_char(*t))
        rc = ty_errf(ps->err, ps->err_len, TY_EINVAL,
                     "hostlist \"%s\": '%c' may not be in a node name (\"%.*s\")", ps->expr, *t,
                     (int)(end - s), s);
    if (rc != 0 || open == end) break;
    const char *close = open + 1;
    while (close < end && *close != ']' && *close != '[')
      close++;
    if (*open == ']' || close == end || *close == '[') {
      rc = ty_errf(ps->err, ps->err_len, TY_EINVAL,
                   "hostlist \"%s\": unbalanced brackets in \"%.*s\"", ps->expr, (int)(end - s), s);
      break;
    }
    rc = parse_bracket(ps, open + 1, close, &parts[n - 1]);
    c = close + 1;
  }
  if (rc == 0) {
    unsigned long long room = ps->max - *ps->n;
    if (count_names(parts, n, room) > room)
      rc = ty_errf(ps->err, ps->err_len, TY_EINVAL,
                   "hostlist \"%s\": \"%.*s\" names more than the %zu nodes allowed", ps->expr,
                   (int)(end - s), s, ps->max);
  }
  if (rc == 0) {
    ty_buf name;
    ty_buf_init(&name);
    emit(ps, parts, 0, n, &name);
    ty_buf_close(&name);
  }
  free_parts(parts, n);
  return rc;
}

/* The end of the item at s: the first comma outside brackets. */
static const char *item_end(const char *s) {
  int depth = 0;
  for (; *s; s++) {
    if (*s == '[') depth++;
    if (*s == ']' && depth > 0) depth--;
    if (*s == ',' && depth == 0) break;
  }
  return s;
}

/* Frees names[from..*n) and makes *n from. */
static void drop(char **names, size_t from, size_t *n) {
  for (size_t i = from; i < *n; i++)
    free(names[i]);
  *n = from;
}

int ty_hostnames_parse(const char *expr, size_t max, char ***names, size_t *n, char *err,
                       size_t err_len) {
  parser ps = {expr, max, n, names, err, err_len};
  size_t before = *n;
  int rc = 0;
  if (!*expr) rc = ty_errf(err, err_len, TY_EINVAL, "hostlist: no node names given");
  for (const char *s = expr; rc == 0 && *s;) {
    const char *e = item_end(s);
    rc = parse_item(&ps, s, e);
    if (rc == 0 && *e == ',' && !e[1])
      rc = ty_errf(err, err_len, TY_EINVAL, "hostlist \"%s\": an empty node name", expr);
    s = *e ? e + 1 : e;
  }
  if (rc != 0) drop(*names, before, n); /* nothing of a refused expression stays */
  return rc;
}

int ty_hostnames_read_file(const char *path, size_t max, char ***names, size_t *n, char *err,
                           size_t err_len) {
  FILE *f = fopen(path, "r");
  if (!f) return ty_errf(err, err_len, TY_EINVAL, "%s: %s", path, strerror(errno));
  size_t before = *n;
  int rc = 0;
  char word[4096];
  while (rc == 0 && fscanf(f, " %4095[^ \t\r\n]", word) == 1) {
    if (strlen(word) == sizeof(word) - 1)
      rc = ty_errf(err, err_len, TY_EINVAL, "%s: a hostlist longer than %zu bytes", path,
                   sizeof(word) - 2);
    char why[512] = "";
    if (rc == 0 && ty_hostnames_parse(word, max, names, n, why, sizeof why) != 0)
      rc = ty_errf(err, err_len, TY_EINVAL, "%s: %s", path, why);
  }
  if (rc == 0 && ferror(f)) rc = ty_errf(err, err_len, TY_EINVAL, "%s: read error", path);
  if (rc == 0 && *n == before) rc = ty_errf(err, err_len, TY_EINVAL, "%s: names no nodes", path);
  fclose(f);
  if (rc != 0) drop(*names, before, n);
  return rc;
}

void ty_hostnames_free(char **names, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

bool ty_node_name_ok(const char *name) {
  size_t l = name ? strlen(name) : 0;
  if (l == 0 || l > 255) return false;
  for (; *name; name++)
    if (!name_char(*name)) return false;
  return true;
}

bool ty_host_ok(const char *host) {
  unsigned char addr[16];
  if (!host || !host[0]) return false;
  if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) return true;
  size_t l = strlen(host);
  if (l > 253 || host[0] == '.' || strstr(host, "..")) return false;
  for (; *host; host++)
    if (!name_char(*host)) return false;
  return true;
}
