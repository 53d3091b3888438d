/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `trainctl nodes -o FORMAT` and `-t STATES`: sinfo's format codes and
 * state names, so that the scripts that ask sinfo for idle nodes
 * (`sinfo -h -t idle -o %N`) or read a node's CPUs and state read the same
 * here. Each line is FORMAT with its codes replaced, as sinfo prints it:
 * the text between codes kept, `%.8N` right-justified in 8 columns and
 * `%8N` left-justified (both cut to 8), no padding without a width.
 * Without -N, as sinfo's, nodes whose lines read the same share one line,
 * their names folded into a hostlist (%N), counted (%D) and their CPUs
 * summed (%C: `sinfo -h -o %C` is the cluster's allocated/idle/other/total
 * on one line); with -N a line is one node. Pure: nodes in, text out.
 */
#include "cli/cli.h"
#include "cli/cli_history.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The codes, and sinfo's header of each. */
static const char codes[] = "NnDTtcCmGEz";
static const char *const headers[] = {"NODELIST", "HOSTNAMES", "NODES",         "STATE",
                                      "STATE",    "CPUS",      "CPUS(A/I/O/T)", "MEMORY",
                                      "GRES",     "REASON",    "S:C:T"};
_Static_assert(sizeof codes - 1 == sizeof headers / sizeof *headers, "one header per code");

/* sinfo's state of a node, long ("mixed") or compact ("mix"): an UP node
 * is idle, mixed or allocated by the CPUs its jobs hold. */
static const char *sinfo_state(const ty_cli_node *nd, bool compact) {
  switch (nd->state) {
  case TY_NODE_UP:
    if (nd->cpus_used == 0 && nd->gpus_used == 0) return "idle";
    if (nd->cpus_used >= nd->cpus) return compact ? "alloc" : "allocated";
    return compact ? "mix" : "mixed";
  case TY_NODE_DOWN:
    return "down";
  case TY_NODE_DRAINING:
    return compact ? "drng" : "draining";
  case TY_NODE_DRAINED:
    return compact ? "drain" : "drained";
  default:
    return compact ? "unk" : "unknown";
  }
}

int ty_cli_sinfo_states(const char *list, unsigned *out_mask, char *err, size_t err_len) {
  static const struct {
    const char *name;
    unsigned mask;
  } names[] = {{"idle", 1},       {"mixed", 2},  {"mix", 2},       {"allocated", 4},
               {"alloc", 4},      {"down", 8},   {"draining", 16}, {"drng", 16},
               {"drained", 32},   {"drain", 48}, {"unknown", 64},  {"unk", 64},
               {"up", 1 | 2 | 4}, {"all", 127}};
  *out_mask = 0;
  char *copy = ty_strdup(list), *save = NULL;
  int rc = 0;
  for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
    size_t k = 0;
    while (k < TY_ARRAY_LEN(names) && strcasecmp(names[k].name, t))
      k++;
    if (k == TY_ARRAY_LEN(names))
      rc = ty_errf(err, err_len, TY_EINVAL,
                   "--states: unknown node state \"%.32s\" (sinfo's: idle, mixed, allocated, "
                   "down, draining, drained, drain, unknown, up, all)",
                   t);
    else
      *out_mask |= names[k].mask;
  }
  free(copy);
  if (rc == 0 && !*out_mask)
    rc = ty_errf(err, err_len, TY_EINVAL, "--states: must name a node state");
  return rc;
}

/* The bit of nd's state in ty_cli_sinfo_states' mask. */
static unsigned state_bit(const ty_cli_node *nd) {
  static const char *const order[] = {"idle", "mixed", "allocated", "down", "draining", "drained"};
  const char *s = sinfo_state(nd, false);
  for (size_t i = 0; i < TY_ARRAY_LEN(order); i++)
    if (!strcmp(order[i], s)) return 1u << i;
  return 64;
}

size_t ty_cli_nodes_in_states(ty_cli_node *ns, size_t n, unsigned states) {
  if (!states) return n;
  ty_cli_node *rest = ty_xcalloc(n + 1, sizeof *rest);
  size_t kept = 0, left = 0;
  for (size_t i = 0; i < n; i++)
    if (states & state_bit(&ns[i]))
      ns[kept++] = ns[i];
    else
      rest[left++] = ns[i];
  memcpy(ns + kept, rest, left * sizeof *rest);
  free(rest);
  return kept;
}

int ty_cli_sinfo_check(const char *fmt, char *err, size_t err_len) {
  for (const char *p = strchr(fmt, '%'); p; p = strchr(p + 1, '%')) {
    const char *c = p + 1 + strspn(p + 1, ".-0123456789");
    if (!*c || !strchr(codes, *c))
      return ty_errf(err, err_len, TY_EINVAL,
                     "--format: sinfo's %%%c has no counterpart (codes: %s; a partition's "
                     "codes are trainctl queue ls's)",
                     *c ? *c : ' ', codes);
    p = c;
  }
  return 0;
}

/* A line's cells: nd's (names, count and cpus: its folded nodes'; key: the
 * line as a grouping key, without what its nodes add up), or the header's
 * when nd is NULL. */
typedef struct sinfo_row {
  const ty_cli_node *nd;
  const char *names;
  size_t count;
  uint64_t cpus[4]; /* allocated, idle, other, total */
  bool key;
  char buf[128];
} sinfo_row;

/* Adds nd's CPUs to aiot (allocated/idle/other/total): a node out of
 * service's free CPUs are other, as sinfo counts them. */
static void add_cpus(const ty_cli_node *nd, uint64_t aiot[4]) {
  uint32_t used = nd->cpus_used < nd->cpus ? nd->cpus_used : nd->cpus;
  aiot[0] += nd->cpus_used;
  aiot[nd->state == TY_NODE_UP ? 1 : 2] += nd->cpus - used;
  aiot[3] += nd->cpus;
}

/* Code k's text for r's line. */
static const char *value(sinfo_row *r, size_t k) {
  const ty_cli_node *nd = r->nd;
  char *out = r->buf;
  size_t cap = sizeof r->buf;
  switch (codes[k]) {
  case 'N':
  case 'n':
    return r->names;
  case 'D':
    snprintf(out, cap, "%zu", r->count);
    return out;
  case 'T':
  case 't':
    return sinfo_state(nd, codes[k] == 't');
  case 'c':
    snprintf(out, cap, "%" PRIu32, nd->cpus);
    return out;
  case 'C': /* the line's nodes' allocated/idle/other/total, summed */
    if (r->key) return "";
    snprintf(out, cap, "%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64, r->cpus[0], r->cpus[1],
             r->cpus[2], r->cpus[3]);
    return out;
  case 'm': /* megabytes, as sinfo's */
    snprintf(out, cap, "%" PRIu64, nd->memory >> 20);
    return out;
  case 'G':
    if (!nd->gpus) return "(null)";
    snprintf(out, cap, "gpu:%" PRIu32, nd->gpus);
    return out;
  case 'E':
    return nd->reason && *nd->reason ? nd->reason : "none";
  default: /* 'z': no sockets or threads are counted here */
    snprintf(out, cap, "%" PRIu32 ":1:1", nd->cpus);
    return out;
  }
}

static const char *sinfo_cell(void *ctx, size_t k) {
  sinfo_row *r = ctx;
  return r->nd ? value(r, k) : headers[k];
}

static int line(const char *fmt, sinfo_row *r, ty_buf *out) {
  return ty_cli_put_template(out, fmt, codes, sinfo_cell, r);
}

/* Each node's line without its names and CPU sums (its grouping key),
 * once, in keys at offsets off[i]. */
static int node_keys(const ty_cli_node *ns, size_t n, const char *fmt, ty_buf *keys, size_t *off) {
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    off[i] = keys->len;
    sinfo_row r = {.nd = &ns[i], .names = "", .count = 1, .key = true};
    rc = line(fmt, &r, keys);
    if (rc == 0) rc = ty_buf_append(keys, "", 1);
  }
  return rc;
}

int ty_cli_render_nodes_sinfo(const ty_cli_node *ns, size_t n, const char *fmt, bool per_node,
                              bool noheader, ty_buf *out) {
  sinfo_row header = {0};
  int rc = noheader ? 0 : line(fmt, &header, out);
  size_t *off = ty_xcalloc(n + 1, sizeof *off);
  const char **names = ty_xcalloc(n + 1, sizeof *names);
  ty_buf keys, list;
  ty_buf_init(&keys), ty_buf_init(&list);
  if (rc == 0) rc = node_keys(ns, n, fmt, &keys, off);
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (off[i] == SIZE_MAX) continue; /* on an earlier line */
    const char *mine = (const char *)keys.data + off[i];
    /* The nodes whose lines read as this one's but for the names. */
    sinfo_row r = {.nd = &ns[i]};
    for (size_t j = i; j < n && (j == i || !per_node); j++) {
      if (off[j] == SIZE_MAX || (j != i && strcmp((const char *)keys.data + off[j], mine)))
        continue;
      off[j] = j == i ? off[j] : SIZE_MAX;
      names[r.count++] = ns[j].name;
      add_cpus(&ns[j], r.cpus);
    }
    list.len = 0;
    ty_hostlist_write(names, r.count, &list);
    rc = ty_buf_append(&list, "", 1);
    r.names = (const char *)list.data;
    if (rc == 0) rc = line(fmt, &r, out);
  }
  ty_buf_close(&keys), ty_buf_close(&list);
  free(names), free(off);
  return rc;
}

/* ---- sinfo -R ------------------------------------------------------------------------- */

bool ty_cli_node_out_of_service(const ty_cli_node *nd) {
  return nd->state == TY_NODE_DOWN || nd->state == TY_NODE_DRAINING || nd->state == TY_NODE_DRAINED;
}

/* The newest event that put r's node where it is: a drain for a draining or
 * drained node, else one into its state; NULL when the store kept none. */
static const ty_cli_node_event *reason_event(const ty_cli_node_reason *r) {
  bool drain = r->node->state != TY_NODE_DOWN;
  for (size_t i = r->nev; i-- > 0;) {
    const ty_cli_node_event *e = &r->ev[i];
    if (drain ? e->action && !strcmp(e->action, "drain") : e->to == r->node->state) return e;
  }
  return NULL;
}

int ty_cli_render_node_reasons(const ty_cli_node_reason *rs, size_t n, bool noheader, ty_buf *out) {
  if (!noheader)
    ty_buf_printf(out, "%-20s %-9s %-19s %s\n", "REASON", "USER", "TIMESTAMP", "NODELIST");
  for (size_t i = 0; i < n; i++) {
    const ty_cli_node *nd = rs[i].node;
    const ty_cli_node_event *e = reason_event(&rs[i]);
    const char *reason = nd->reason && nd->reason[0] ? nd->reason : "none";
    char user[80] = "Unknown", when[32] = "Unknown";
    const char *actor = e && e->actor && e->actor[0] ? e->actor : NULL;
    if (actor)
      snprintf(user, sizeof user, "%s", strchr(actor, ':') ? strchr(actor, ':') + 1 : actor);
    /* "drained by alice: bad disk": sinfo -R's reason is the operator's words */
    int by = 0;
    if (sscanf(reason, "drained by %79[^:]%n", user, &by) == 1 && by > 0) {
      reason = reason[by] == ':' ? reason + by + 1 + (reason[by + 1] == ' ') : "none";
    }
    if (e) ty_cli_format_time(e->time_ms, 'T', when, sizeof when);
    ty_buf_printf(out, "%-20s %-9s %-19s %s\n", reason, user, when, nd->name ? nd->name : "");
  }
  return 0;
}
