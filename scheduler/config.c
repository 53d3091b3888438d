/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler section of traind's config file, parsed from text (the
 * controller reads the file; this stays pure so it can be unit-tested and
 * fuzzed). Format: `key = value` lines, `#` comments. Errors name the line
 * and the key. See scheduler.h for the keys and README's "Scheduler
 * configuration" for an example.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/scheduler.h"

void ty_sched_topology_close(ty_sched_topology *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n_switches; i++) {
    for (size_t k = 0; k < t->switches[i].n_nodes; k++)
      free(t->switches[i].nodes[k]);
    free(t->switches[i].nodes);
    free(t->switches[i].name);
  }
  free(t->switches);
  memset(t, 0, sizeof(*t));
}

uint32_t ty_sched_topology_switch_of(const ty_sched_topology *t, const char *node) {
  for (size_t i = 0; t && node && i < t->n_switches; i++)
    for (size_t k = 0; k < t->switches[i].n_nodes; k++)
      if (strcmp(t->switches[i].nodes[k], node) == 0) return (uint32_t)i;
  return TY_SCHED_NO_SWITCH;
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s))
    s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1]))
    *--e = '\0';
  return s;
}

static int parse_double(const char *v, double *out) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (errno || end == v || *end || !isfinite(d) || d < 0) return TY_EINVAL;
  *out = d;
  return 0;
}

static int parse_bool(const char *v, bool *out) {
  if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"))
    *out = true;
  else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"))
    *out = false;
  else
    return TY_EINVAL;
  return 0;
}

/* Durations: "90", "90s", "15m", "2h", "1d". */
static int parse_secs(const char *v, uint32_t *out) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno || end == v || v[0] == '-') return TY_EINVAL;
  unsigned long long mul = 1;
  if (*end == 's')
    mul = 1, end++;
  else if (*end == 'm')
    mul = 60, end++;
  else if (*end == 'h')
    mul = 3600, end++;
  else if (*end == 'd')
    mul = 86400, end++;
  if (*end || n > UINT32_MAX / mul) return TY_EINVAL; /* before n * mul can wrap */
  *out = (uint32_t)(n * mul);
  return 0;
}

/* The most nodes one switch group names, as a job's -w list. */
#define SWITCH_MAX_NODES 4096

/* The node names of a switch group's list: Slurm hostlists ("n[1-4],
 * gpu01") separated by commas outside brackets, blanks around each allowed.
 * TY_EINVAL, why naming the fault, for an empty entry ("n1,,n2") or a bad
 * hostlist ("n[1-"). */
static int switch_names(char *list, char ***names, size_t *n, char *why, size_t why_len) {
  int depth = 0, rc = 0;
  char *start = list;
  for (char *p = list; rc == 0; p++) {
    depth += *p == '[' ? 1 : *p == ']' ? -1 : 0;
    if (*p && (*p != ',' || depth > 0)) continue;
    bool last = !*p;
    *p = '\0';
    char *item = trim(start);
    if (!*item)
      rc = ty_errf(why, why_len, TY_EINVAL, "an empty entry in the list");
    else
      rc = ty_hostnames_parse(item, SWITCH_MAX_NODES, names, n, why, why_len);
    if (last) break;
    start = p + 1;
  }
  return rc;
}

/* A duration that must be more than none: fairshare.halflife (the decay
 * takes 0 as "never"), and unknown_runtime (backfill would take every job
 * without a time limit to end at once, and start others on its nodes). */
static int parse_positive_secs(const char *v, uint32_t *out) {
  uint32_t s = 0;
  if (parse_secs(v, &s) != 0 || s == 0) return TY_EINVAL;
  *out = s;
  return 0;
}

static int add_switch(ty_sched_topology *t, const char *name, char *list, char *err, size_t len,
                      int line) {
  for (size_t i = 0; i < t->n_switches; i++)
    if (strcmp(t->switches[i].name, name) == 0)
      return ty_errf(err, len, TY_EINVAL, "line %d: switch.%s is defined twice", line, name);
  if (!*list) return ty_errf(err, len, TY_EINVAL, "line %d: switch.%s lists no nodes", line, name);
  t->switches = ty_xrealloc(t->switches, (t->n_switches + 1) * sizeof(*t->switches));
  ty_sched_switch *sw = &t->switches[t->n_switches++];
  *sw = (ty_sched_switch){.name = ty_strdup(name)};
  char why[TY_ERR_LEN] = "";
  if (switch_names(list, &sw->nodes, &sw->n_nodes, why, sizeof why) != 0)
    return ty_errf(err, len, TY_EINVAL, "line %d: switch.%s: %s", line, name, why);
  for (size_t k = 0; k < sw->n_nodes; k++) {
    if (ty_sched_topology_switch_of(t, sw->nodes[k]) != t->n_switches - 1)
      return ty_errf(err, len, TY_EINVAL, "line %d: node %s is in two switches", line,
                     sw->nodes[k]);
    for (size_t j = 0; j < k; j++)
      if (!strcmp(sw->nodes[j], sw->nodes[k]))
        return ty_errf(err, len, TY_EINVAL, "line %d: switch.%s lists node %s twice", line, name,
                       sw->nodes[k]);
  }
  return 0;
}

static int set_key(ty_sched_config *c, const char *k, const char *v) {
  uint32_t s;
  if (!strcmp(k, "weight.tier")) return parse_double(v, &c->w_tier);
  if (!strcmp(k, "weight.age")) return parse_double(v, &c->w_age);
  if (!strcmp(k, "weight.fairshare")) return parse_double(v, &c->w_fairshare);
  if (!strcmp(k, "weight.size")) return parse_double(v, &c->w_size);
  if (!strcmp(k, "weight.priority")) return parse_double(v, &c->w_priority);
  if (!strcmp(k, "fairshare.cpu_weight")) return parse_double(v, &c->cpu_usage_weight);
  if (!strcmp(k, "preemption")) return parse_bool(v, &c->preemption);
  if (!strcmp(k, "backfill")) return parse_bool(v, &c->backfill);
  if (!strcmp(k, "age_max")) return parse_secs(v, &c->age_max_s);
  if (!strcmp(k, "preempt.min_run")) return parse_secs(v, &c->min_run_s);
  if (!strcmp(k, "preempt.grace")) return parse_secs(v, &c->preempt_grace_s);
  if (!strcmp(k, "unknown_runtime")) return parse_positive_secs(v, &c->unknown_runtime_s);
  if (!strcmp(k, "backfill.depth")) {
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n > UINT32_MAX) return TY_EINVAL;
    c->backfill_depth = (uint32_t)n;
    return 0;
  }
  if (!strcmp(k, "default_mem_per_node")) return ty_parse_mem_mb(v, &c->default_mem_per_node);
  if (!strcmp(k, "fairshare.halflife")) {
    if (parse_positive_secs(v, &s) != 0) return TY_EINVAL;
    c->halflife_s = s;
    return 0;
  }
  return TY_ENOTFOUND;
}

static const char *expects(const char *k) {
  if (!strncmp(k, "weight.", 7) || !strcmp(k, "fairshare.cpu_weight")) return "a number >= 0";
  if (!strcmp(k, "preemption") || !strcmp(k, "backfill")) return "on or off";
  if (!strcmp(k, "backfill.depth")) return "a count";
  if (!strcmp(k, "default_mem_per_node"))
    return "a size (a bare number is megabytes: 4000; or 512M, 16G; 0 = none)";
  if (!strcmp(k, "unknown_runtime") || !strcmp(k, "fairshare.halflife"))
    return "a duration above 0 (90, 90s, 15m, 2h, 1d)";
  return "a duration (90, 90s, 15m, 2h, 1d)";
}

static int parse_line(char *line, int no, ty_sched_config *c, ty_sched_topology *t, char *err,
                      size_t len) {
  char *hash = strchr(line, '#');
  if (hash) *hash = '\0';
  char *s = trim(line);
  if (!*s) return 0;
  char *eq = strchr(s, '=');
  if (!eq) return ty_errf(err, len, TY_EINVAL, "line %d: expected key = value", no);
  *eq = '\0';
  char *k = trim(s), *v = trim(eq + 1);
  if (!strncmp(k, "switch.", 7)) {
    if (!k[7]) return ty_errf(err, len, TY_EINVAL, "line %d: switch. needs a name", no);
    return add_switch(t, k + 7, v, err, len, no);
  }
  int rc = set_key(c, k, v);
  if (rc == TY_ENOTFOUND)
    return ty_errf(err, len, TY_EINVAL, "line %d: unknown key \"%.64s\"", no, k);
  if (rc != 0)
    return ty_errf(err, len, TY_EINVAL, "line %d: %.64s: \"%.64s\" is not %s", no, k, v,
                   expects(k));
  return 0;
}

int ty_sched_config_parse(const char *text, ty_sched_config *cfg, ty_sched_topology *topo,
                          char *err, size_t err_len) {
  memset(topo, 0, sizeof(*topo));
  char *copy = ty_strdup(text ? text : "");
  ty_sched_config c = *cfg;
  int rc = 0, no = 0;
  for (char *line = copy; line && rc == 0;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    rc = parse_line(line, ++no, &c, topo, err, err_len);
    line = nl ? nl + 1 : NULL;
  }
  free(copy);
  if (rc != 0) {
    ty_sched_topology_close(topo);
    return rc;
  }
  *cfg = c;
  return 0;
}
