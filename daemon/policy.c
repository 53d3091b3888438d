/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who may do what on the controller, as configured (the `auth.` keys of
 * traind --config, docs/security.md): operators (names and a group, like
 * Slurm's AdminLevel), the nodes allowed to register (names and patterns),
 * how workers prove they are the cluster's service. Pure: strings in,
 * verdicts out, so every rule is unit-tested without a daemon; the
 * controller's RPC side applies them (daemon/auth.c).
 *
 * Node patterns: `*` and `?` as in shell globs, and `[...]` as Slurm's
 * hostlists: comma-separated numbers and ranges, `gpu[01-16,20]`. A range
 * whose bounds are written with a leading zero matches only names with as
 * many digits (gpu01, not gpu1), as Slurm's.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"

/* ---- node patterns ----------------------------------------------------------------------- */

/* Checks one bracket list "01-16,20" (without the brackets) and, when num
 * (digits_len digits) is given, whether it contains it. */
static int bracket(const char *list, size_t len, const char *num, size_t digits, bool *hit) {
  *hit = false;
  const char *p = list, *end = list + len;
  unsigned long long v = 0;
  for (size_t i = 0; num && i < digits; i++)
    v = v * 10 + (unsigned)(num[i] - '0');
  while (p < end) {
    const char *lo = p;
    while (p < end && isdigit((unsigned char)*p))
      p++;
    size_t lo_len = (size_t)(p - lo);
    const char *hi = lo;
    size_t hi_len = lo_len;
    if (p < end && *p == '-') {
      hi = ++p;
      while (p < end && isdigit((unsigned char)*p))
        p++;
      hi_len = (size_t)(p - hi);
    }
    if (!lo_len || !hi_len || lo_len > 18 || hi_len > 18 || (p < end && *p != ','))
      return TY_EINVAL;
    unsigned long long a = strtoull(lo, NULL, 10), b = strtoull(hi, NULL, 10);
    if (a > b) return TY_EINVAL;
    bool padded = lo_len > 1 && lo[0] == '0';
    bool width_ok = num && (padded ? digits == lo_len : (digits == 1 || num[0] != '0'));
    if (width_ok && v >= a && v <= b) *hit = true;
    if (p < end) p++; /* the comma */
  }
  return 0;
}

static bool match(const char *pat, const char *name) {
  for (;; pat++, name++) {
    if (*pat == '*') {
      for (const char *n = name;; n++) {
        if (match(pat + 1, n)) return true;
        if (!*n) return false;
      }
    }
    if (*pat == '[') {
      const char *close = strchr(pat, ']');
      size_t digits = 0;
      while (isdigit((unsigned char)name[digits]))
        digits++;
      bool hit = false;
      if (!close || !digits || digits > 18 ||
          bracket(pat + 1, (size_t)(close - pat - 1), name, digits, &hit) != 0 || !hit)
        return false;
      return match(close + 1, name + digits);
    }
    if (!*pat) return !*name;
    if (!*name || (*pat != '?' && *pat != *name)) return false;
  }
}

int ty_policy_check_pattern(const char *pat, char *err, size_t len) {
  if (!pat[0]) return ty_errf(err, len, TY_EINVAL, "an empty node pattern");
  for (const char *p = pat; *p; p++) {
    if (*p == ']') return ty_errf(err, len, TY_EINVAL, "\"%s\": ']' without '['", pat);
    if (*p != '[') continue;
    const char *close = strchr(p, ']');
    bool hit;
    if (!close || bracket(p + 1, (size_t)(close - p - 1), NULL, 0, &hit) != 0)
      return ty_errf(err, len, TY_EINVAL,
                     "\"%s\": a [...] list takes numbers and ranges like "
                     "[01-16,20]",
                     pat);
    p = close;
  }
  return 0;
}

bool ty_policy_node_allowed(const ty_auth_policy *p, const char *name) {
  for (size_t i = 0; i < p->n_nodes; i++)
    if (match(p->nodes[i], name)) return true;
  return false;
}

bool ty_policy_may_register(const ty_auth_policy *p, const char *name) {
  if (!p->nodes_listed) return p->workers == TY_AUTH_NONE;
  return ty_policy_node_allowed(p, name);
}

/* ---- who is who ----------------------------------------------------------------------------- */

bool ty_policy_is_operator(const ty_auth_policy *p, const ty_auth_id *id, uint32_t self_uid) {
  if (id->uid == 0 || id->uid == self_uid) return true;
  for (size_t i = 0; id->known && i < p->n_operators; i++)
    if (!strcmp(p->operators[i], id->user)) return true;
  return p->has_operator_gid && ty_auth_id_in_group(id, p->operator_gid);
}

/* ---- configuration ------------------------------------------------------------------------- */

static char *trim(char *s) {
  while (isspace((unsigned char)*s))
    s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1]))
    *--e = '\0';
  return s;
}

/* Splits "a, b, c" at commas outside brackets into *out (appended). */
static int split_list(const char *v, bool brackets, char ***out, size_t *n, char *err, size_t len) {
  char *copy = ty_strdup(v), *start = copy;
  int depth = 0, rc = 0;
  for (char *p = copy;; p++) {
    if (brackets && *p == '[') depth++;
    if (brackets && *p == ']') depth--;
    if (*p && (*p != ',' || depth > 0)) continue;
    bool last = !*p;
    *p = '\0';
    char *item = trim(start);
    if (!item[0]) rc = ty_errf(err, len, TY_EINVAL, "an empty entry in the list");
    if (rc == 0 && brackets) rc = ty_policy_check_pattern(item, err, len);
    if (rc != 0) break;
    *out = ty_xrealloc(*out, (*n + 1) * sizeof(**out));
    (*out)[(*n)++] = ty_strdup(item);
    if (last) break;
    start = p + 1;
  }
  free(copy);
  return rc;
}

static int set_string(char **slot, const char *v, char *err, size_t len, const char *key) {
  if (!v[0]) return ty_errf(err, len, TY_EINVAL, "auth.%s: needs a value", key);
  free(*slot);
  *slot = ty_strdup(v);
  return 0;
}

int ty_policy_set(ty_auth_policy *p, const char *key, const char *v, char *err, size_t len) {
  char why[TY_ERR_LEN];
  if (!strcmp(key, "operators"))
    return split_list(v, false, &p->operators, &p->n_operators, why, sizeof why)
               ? ty_errf(err, len, TY_EINVAL, "auth.operators: %s", why)
               : 0;
  if (!strcmp(key, "nodes")) {
    p->nodes_listed = true;
    return split_list(v, true, &p->nodes, &p->n_nodes, why, sizeof why)
               ? ty_errf(err, len, TY_EINVAL, "auth.nodes: %s", why)
               : 0;
  }
  if (!strcmp(key, "operator_group")) return set_string(&p->operator_group, v, err, len, key);
  if (!strcmp(key, "service_user")) return set_string(&p->service_user, v, err, len, key);
  if (!strcmp(key, "cluster_key")) return set_string(&p->cluster_key, v, err, len, key);
  if (!strcmp(key, "workers")) {
    if (ty_auth_mode_parse(v, &p->workers) != 0)
      return ty_errf(err, len, TY_EINVAL, "auth.workers: \"%.64s\" is not munge, key or none", v);
    p->workers_set = true;
    return 0;
  }
  return ty_errf(err, len, TY_EINVAL,
                 "unknown key \"auth.%.64s\" (operators, operator_group, "
                 "nodes, workers, service_user, cluster_key)",
                 key);
}

/* One line: 0 when it is not an auth. line (left alone), else parsed and
 * blanked so the scheduler's parser skips it with its line numbers intact. */
static int take_line(char *line, int no, ty_auth_policy *p, char *err, size_t len) {
  char *hash = strchr(line, '#');
  char *end = hash ? hash : line + strlen(line);
  char *k = line;
  while (k < end && isspace((unsigned char)*k))
    k++;
  if (strncmp(k, "auth.", 5) != 0 || k >= end) return 0;
  char *eq = memchr(k, '=', (size_t)(end - k));
  if (!eq) return ty_errf(err, len, TY_EINVAL, "line %d: expected key = value", no);
  char saved = *end;
  *end = '\0';
  *eq = '\0';
  char why[TY_ERR_LEN];
  int rc = ty_policy_set(p, trim(k + 5), trim(eq + 1), why, sizeof why);
  *end = saved;
  if (rc != 0) return ty_errf(err, len, rc, "line %d: %s", no, why);
  memset(line, ' ', (size_t)(end - line));
  return 0;
}

int ty_policy_take_config(char *text, ty_auth_policy *p, char *err, size_t len) {
  int no = 0;
  for (char *line = text; line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    int rc = take_line(line, ++no, p, err, len);
    if (nl) *nl = '\n';
    if (rc != 0) return rc;
    line = nl ? nl + 1 : NULL;
  }
  return 0;
}

static char **copy_strv(char *const *v, size_t n) {
  char **out = ty_xcalloc(n ? n : 1, sizeof *out);
  for (size_t i = 0; i < n; i++)
    out[i] = ty_strdup(v[i]);
  return out;
}

static char *copy_str(const char *s) {
  return s ? ty_strdup(s) : NULL;
}

void ty_policy_copy(const ty_auth_policy *from, ty_auth_policy *to) {
  *to = *from;
  to->operators = copy_strv(from->operators, from->n_operators);
  to->nodes = copy_strv(from->nodes, from->n_nodes);
  to->operator_group = copy_str(from->operator_group);
  to->service_user = copy_str(from->service_user);
  to->cluster_key = copy_str(from->cluster_key);
}

void ty_policy_close(ty_auth_policy *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n_operators; i++)
    free(p->operators[i]);
  for (size_t i = 0; i < p->n_nodes; i++)
    free(p->nodes[i]);
  free(p->operators);
  free(p->nodes);
  free(p->operator_group);
  free(p->service_user);
  free(p->cluster_key);
  memset(p, 0, sizeof *p);
}
