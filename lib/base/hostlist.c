/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node lists written as Slurm writes them (SLURM_JOB_NODELIST, its
 * hostlist expressions): consecutive names that differ only in a trailing
 * number share one bracket, `gpu[01-03,07],login1`. The order of the names
 * is kept (a job's node order is its ranks' order), so only neighbours are
 * merged; a number written with a leading zero joins only numbers of the
 * same width, as Slurm reads them back. A name that contains a bracket or a
 * comma is written as it is, never merged. Reading one back into names is
 * hostnames.c's (ty_hostnames_parse).
 */
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"

typedef struct name_parts {
  size_t prefix_len; /* the name without its trailing digits */
  const char *num;   /* the trailing digits; NULL when there are none */
  size_t num_len;
  unsigned long long value;
} name_parts;

static name_parts split_name(const char *s) {
  name_parts p = {.prefix_len = strlen(s)};
  size_t end = p.prefix_len, i = end;
  while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9' && end - i < 18)
    i--;
  if (i == end || strpbrk(s, "[],")) return p;
  p.prefix_len = i, p.num = s + i, p.num_len = end - i;
  for (size_t k = i; k < end; k++)
    p.value = p.value * 10 + (unsigned)(s[k] - '0');
  return p;
}

/* Whether b's number can sit in the same bracket as a's. */
static bool same_family(const char *a, const name_parts *pa, const char *b, const name_parts *pb) {
  if (!pa->num || !pb->num || pa->prefix_len != pb->prefix_len) return false;
  if (strncmp(a, b, pa->prefix_len) != 0) return false;
  bool padded = pa->num[0] == '0' || pb->num[0] == '0';
  return !padded || pa->num_len == pb->num_len;
}

/* Appends names[from..to) (one family) as prefix[ranges], or the bare name
 * when there is only one. */
static void put_family(ty_buf *out, const char *const *names, const name_parts *parts, size_t from,
                       size_t to) {
  if (to - from == 1) {
    ty_buf_printf(out, "%s", names[from]);
    return;
  }
  ty_buf_printf(out, "%.*s[", (int)parts[from].prefix_len, names[from]);
  for (size_t i = from; i < to;) {
    size_t j = i + 1;
    while (j < to && parts[j].value == parts[j - 1].value + 1)
      j++;
    ty_buf_printf(out, "%s%.*s", i > from ? "," : "", (int)parts[i].num_len, parts[i].num);
    if (j - i > 1) ty_buf_printf(out, "-%.*s", (int)parts[j - 1].num_len, parts[j - 1].num);
    i = j;
  }
  ty_buf_printf(out, "]");
}

void ty_hostlist_write(const char *const *names, size_t n, ty_buf *out) {
  name_parts *parts = ty_xcalloc(n ? n : 1, sizeof *parts);
  for (size_t i = 0; i < n; i++)
    parts[i] = split_name(names[i]);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && same_family(names[i], &parts[i], names[j], &parts[j]))
      j++;
    if (i > 0) ty_buf_printf(out, ",");
    put_family(out, names, parts, i, j);
    i = j;
  }
  ty_buf_append(out, "", 1);
  free(parts);
}
