/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A --config read again while traind runs (SIGHUP, `systemctl reload
 * traind`, or the Reconfigure RPC of `trainctl reconfigure`, as
 * slurmctld's `scontrol reconfigure`): this file owns reading the file,
 * saying what changed and applying it to a running controller. A file that
 * does not parse is refused before anything changes, so the running
 * settings stay. --metrics-token-file is read again with it (the token
 * rotated without a restart); a token file that cannot be read, or that
 * others may read, refuses the reconfigure the same way. Reconfigure is for operators (auth.c) and
 * is recorded in the admin events (kind "config") with who asked, applied or refused.
 *
 * Applied at once: the scheduler's weights and switches (priority, age,
 * fair share, preemption, backfill, the switch groups), the cluster's
 * default memory per node (to jobs submitted from then on) and the auth. lists
 * (auth.operators, auth.operator_group, auth.nodes; a connected node no
 * longer listed is drained at once, with a node event and a line in the
 * answer and the admin event: its running jobs go on, it gets no new ones,
 * and its next RegisterNode is refused; `node resume` is refused while it
 * is not listed). Refused,
 * naming the key, with nothing changed: a change of auth.workers,
 * auth.cluster_key or auth.service_user, which the workers' credentials
 * were checked against at start (restart traind for those), an
 * auth.operator_group that names no group on this host and an
 * auth.operators name that is no user here. Warned of, and applied: switch
 * group members that are no known node and that no worker may register as.
 */
#include "daemon/daemon_internal.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/convert_internal.h"
#include "scheduler/scheduler.h"

/* The most --config may hold: a file larger than this is a mistake (or
 * /dev/zero behind a link), refused without reading it all. */
#define CONFIG_MAX (1u << 20)

/* path opened without waiting into *fd (a FIFO is refused, not waited on:
 * this runs on the event loop) and checked to be a regular file. */
static int open_config(const char *path, int *fd, char *err, size_t len) {
  struct stat st;
  const char *why;
  if ((*fd = ty_open_regular(path, &st, &why)) >= 0) return 0;
  return why ? ty_errf(err, len, TY_EINVAL, "%s", why)
             : ty_errf(err, len, TY_EIO, "%s", strerror(errno));
}

/* A NUL byte would end the text the parsers see, hiding the lines after
 * it: refused, naming its line. */
static int check_no_nul(const uint8_t *p, size_t n, char *err, size_t len) {
  const uint8_t *nul = n ? memchr(p, '\0', n) : NULL;
  if (!nul) return 0;
  int line = 1;
  for (const uint8_t *q = p; q < nul; q++)
    line += *q == '\n';
  return ty_errf(err, len, TY_EINVAL, "line %d: holds a NUL byte", line);
}

/* The whole file into b, NUL-terminated: at most CONFIG_MAX bytes. */
static int read_config_file(const char *path, ty_buf *b, char *err, size_t len) {
  int fd;
  int rc = open_config(path, &fd, err, len);
  if (rc != 0) return rc;
  char chunk[4096];
  ssize_t n = 0;
  while (b->len <= CONFIG_MAX && (n = read(fd, chunk, sizeof chunk)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    ty_buf_append(b, chunk, (size_t)n);
  }
  int saved = errno;
  close(fd);
  if (n < 0) return ty_errf(err, len, TY_EIO, "read failed: %s", strerror(saved));
  if (b->len > CONFIG_MAX)
    return ty_errf(err, len, TY_EINVAL, "larger than %u bytes (1 MiB)", CONFIG_MAX);
  rc = check_no_nul(b->data, b->len, err, len);
  ty_buf_append(b, "", 1);
  return rc;
}

int ty_controller_read_config(const char *path, ty_sched_config *cfg, ty_sched_topology *topo,
                              ty_auth_policy *policy, char *err, size_t len) {
  ty_sched_config_default(cfg);
  memset(topo, 0, sizeof(*topo));
  memset(policy, 0, sizeof(*policy));
  if (!path) return 0;
  ty_buf b;
  ty_buf_init(&b);
  int rc = read_config_file(path, &b, err, len);
  if (rc == 0) rc = ty_policy_take_config((char *)b.data, policy, err, len);
  if (rc == 0) rc = ty_sched_config_parse((const char *)b.data, cfg, topo, err, len);
  ty_buf_close(&b);
  return rc;
}

/* ---- what changed ------------------------------------------------------------------ */

void ty_reconfig_changes_close(ty_reconfig_changes *c) {
  for (size_t i = 0; c && i < c->n; i++)
    free(c->v[i]);
  if (c) free(c->v), c->v = NULL, c->n = 0;
}

static void add_change(ty_reconfig_changes *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_change(ty_reconfig_changes *c, const char *fmt, ...) {
  if (!c) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  c->v = ty_xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
  c->v[c->n++] = ty_strdup(line);
}

/* The scheduler's keys as the config file names them (scheduler/config.c). */
#define SCHED_NUMBERS(X)                                                                           \
  X("weight.tier", w_tier)                                                                         \
  X("weight.age", w_age)                                                                           \
  X("weight.fairshare", w_fairshare)                                                               \
  X("weight.size", w_size)                                                                         \
  X("weight.priority", w_priority)                                                                 \
  X("age_max", age_max_s)                                                                          \
  X("fairshare.halflife", halflife_s)                                                              \
  X("fairshare.cpu_weight", cpu_usage_weight)                                                      \
  X("preempt.min_run", min_run_s)                                                                  \
  X("preempt.grace", preempt_grace_s)                                                              \
  X("unknown_runtime", unknown_runtime_s)                                                          \
  X("backfill.depth", backfill_depth)
#define SCHED_SWITCHES(X) X("preemption", preemption) X("backfill", backfill)

static void sched_changes(const ty_sched_config *a, const ty_sched_config *b,
                          ty_reconfig_changes *c) {
#define NUM_(key, f)                                                                               \
  if (a->f != b->f) add_change(c, "%s: %g -> %g", key, (double)a->f, (double)b->f);
#define ONOFF_(key, f)                                                                             \
  if (a->f != b->f) add_change(c, "%s: %s -> %s", key, a->f ? "on" : "off", b->f ? "on" : "off");
  SCHED_NUMBERS(NUM_)
  SCHED_SWITCHES(ONOFF_)
#undef NUM_
#undef ONOFF_
  if (a->default_mem_per_node != b->default_mem_per_node)
    add_change(c, "default_mem_per_node: %g MiB -> %g MiB",
               (double)a->default_mem_per_node / (1 << 20),
               (double)b->default_mem_per_node / (1 << 20));
}

static bool same_list(char *const *a, size_t na, char *const *b, size_t nb) {
  if (na != nb) return false;
  for (size_t i = 0; i < na; i++)
    if (strcmp(a[i], b[i]) != 0) return false;
  return true;
}

static bool same_topology(const ty_sched_topology *a, const ty_sched_topology *b) {
  if (a->n_switches != b->n_switches) return false;
  for (size_t i = 0; i < a->n_switches; i++) {
    const ty_sched_switch *x = &a->switches[i], *y = &b->switches[i];
    if (strcmp(x->name, y->name) != 0 || !same_list(x->nodes, x->n_nodes, y->nodes, y->n_nodes))
      return false;
  }
  return true;
}

/* "a, b, c" (at most len bytes), or "(none)". */
static const char *joined(char *const *v, size_t n, char *out, size_t len) {
  size_t w = 0;
  out[0] = '\0';
  for (size_t i = 0; i < n && w < len; i++)
    w += (size_t)snprintf(out + w, len - w, "%s%s", i ? ", " : "", v[i]);
  return n ? out : "(none)";
}

static bool same_str(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

static void policy_changes(const ty_auth_policy *a, const ty_auth_policy *b,
                           ty_reconfig_changes *c) {
  char x[200], y[200];
  if (!same_list(a->operators, a->n_operators, b->operators, b->n_operators))
    add_change(c, "auth.operators: %s -> %s", joined(a->operators, a->n_operators, x, sizeof x),
               joined(b->operators, b->n_operators, y, sizeof y));
  if (!same_str(a->operator_group, b->operator_group))
    add_change(c, "auth.operator_group: %s -> %s", a->operator_group ? a->operator_group : "(none)",
               b->operator_group ? b->operator_group : "(none)");
  if (a->nodes_listed != b->nodes_listed || !same_list(a->nodes, a->n_nodes, b->nodes, b->n_nodes))
    add_change(c, "auth.nodes: %s -> %s",
               a->nodes_listed ? joined(a->nodes, a->n_nodes, x, sizeof x) : "(any)",
               b->nodes_listed ? joined(b->nodes, b->n_nodes, y, sizeof y) : "(any)");
}

/* The keys a running controller keeps as they were at its start. */
static int check_fixed(const ty_controller *ctl, ty_auth_policy *p, char *err, size_t len) {
  const ty_auth_policy *now = &ctl->policy;
  if (!p->workers_set) p->workers = ctl->cfg.client_auth; /* as ty__auth_init */
  const char *key = p->workers != now->workers                      ? "auth.workers"
                    : !same_str(p->cluster_key, now->cluster_key)   ? "auth.cluster_key"
                    : !same_str(p->service_user, now->service_user) ? "auth.service_user"
                                                                    : NULL;
  if (!key) return 0;
  return ty_errf(err, len, TY_EINVAL,
                 "%s differs from the running controller's, which checks the workers' "
                 "credentials with it: restart traind to change it",
                 key);
}

static int resolve_group(ty_auth_policy *p, char *err, size_t len) {
  p->has_operator_gid = false;
  if (!p->operator_group) return 0;
  struct group *g = getgrnam(p->operator_group);
  if (!g)
    return ty_errf(err, len, TY_EINVAL, "auth.operator_group: no group \"%s\" on this host",
                   p->operator_group);
  p->has_operator_gid = true;
  p->operator_gid = (uint32_t)g->gr_gid;
  return 0;
}

/* A warning per switch group with members that are no known node and that
 * no worker may register as (a typo: the group would never hold them),
 * logged and in the answer; the reconfigure applies. */
static void switch_warnings(ty_controller *ctl, const ty_sched_topology *topo,
                            const ty_auth_policy *p, ty_reconfig_changes *changed) {
  for (size_t i = 0; topo && i < topo->n_switches; i++) {
    const ty_sched_switch *sw = &topo->switches[i];
    char names[200] = "";
    size_t w = 0, n = 0;
    for (size_t k = 0; k < sw->n_nodes; k++) {
      const char *name = sw->nodes[k];
      if (ty__node_find(ctl, name) || ty_policy_may_register(p, name)) continue;
      if (w < sizeof names)
        w += (size_t)snprintf(names + w, sizeof names - w, "%s%s", n ? ", " : "", name);
      n++;
    }
    if (!n) continue;
    ty_warn("reconfigure: switch.%s: %s %s no known node and %s no auth.nodes entry", sw->name,
            names, n == 1 ? "is" : "are", n == 1 ? "matches" : "match");
    add_change(changed, "warning: switch.%s: %s %s no known node and %s no auth.nodes entry",
               sw->name, names, n == 1 ? "is" : "are", n == 1 ? "matches" : "match");
  }
}

/* Drains nd, a connected node the new auth.nodes no longer lists (one an
 * operator drained already keeps its reason): its running jobs go on, it
 * gets no new ones, and its next RegisterNode is refused. */
static void drain_unlisted(ty_cluster_node *nd, ty_txn *t, ty_reconfig_changes *changed) {
  int from = nd->state;
  nd->drain = true;
  if (nd->state == TY_NODE_UP) nd->state = TY_NODE_DRAINING;
  free(nd->reason);
  nd->reason = ty_strdup(TY__UNLISTED_REASON);
  ty__node_save(nd, t);
  ty__node_event(nd, from, nd->state, "drain", TY__UNLISTED_REASON, "reconfigure", t);
  ty_warn("reconfigure: node %s drained: " TY__UNLISTED_REASON, nd->name);
  add_change(changed,
             "node %s: drained, not listed in auth.nodes (its running jobs go on; no new ones; "
             "it may not register again)",
             nd->name);
}

/* Every connected node the running policy no longer lets register,
 * drained at once (auth.nodes changes apply at once, not at the node's
 * next registration); stored, with a node event each. */
static void drain_unlisted_nodes(ty_controller *ctl, ty_reconfig_changes *changed) {
  ty_txn *t = NULL;
  for (size_t i = 0; i < ctl->n_nodes; i++) {
    ty_cluster_node *nd = ctl->nodes[i];
    if (!nd->conn || nd->drain || ty_policy_may_register(&ctl->policy, nd->name)) continue;
    if (!t) t = ty_txn_create();
    drain_unlisted(nd, t, changed);
  }
  if (t) ty__commit(ctl, t, NULL, NULL);
}

int ty_controller_reconfigure(ty_controller *ctl, const ty_sched_config *sched,
                              const ty_sched_topology *topo, const ty_auth_policy *policy,
                              ty_reconfig_changes *changed, char *err, size_t len) {
  ty_auth_policy p;
  ty_policy_copy(policy, &p);
  int rc = check_fixed(ctl, &p, err, len);
  if (rc == 0) rc = resolve_group(&p, err, len);
  if (rc == 0) rc = ty__auth_check_operators(&p, err, len);
  if (rc != 0) {
    ty_policy_close(&p);
    return rc;
  }
  sched_changes(&ctl->sched, sched, changed);
  if (!same_topology(&ctl->topo, topo))
    add_change(changed, "switch groups: %zu -> %zu switches (switch.* lines)", ctl->topo.n_switches,
               topo->n_switches);
  policy_changes(&ctl->policy, &p, changed);
  switch_warnings(ctl, topo, &p, changed);
  ty_policy_close(&ctl->policy);
  ctl->policy = p; /* moved */
  ctl->sched = *sched;
  ty_sched_topology_close(&ctl->topo);
  ty__topology_copy(topo, &ctl->topo);
  for (size_t i = 0; i < ctl->n_nodes; i++)
    ty__node_topology(ctl, ctl->nodes[i]);
  drain_unlisted_nodes(ctl, changed);
  ctl->ls_gen++;          /* listings' priorities and operators' views change */
  ty__sched_request(ctl); /* a pass under the new weights and rules */
  return 0;
}

/* ---- Reconfigure (trainctl reconfigure) ---------------------------------------------- */

/* What a reconfigure reads: --config, else the metrics token's file. */
static const char *reloaded(const ty_controller *ctl) {
  return ctl->cfg.config_file          ? ctl->cfg.config_file
         : ctl->cfg.metrics_token_file ? ctl->cfg.metrics_token_file
                                       : "(no file)";
}

/* The admin event of a reconfigure: what changed, or why it was refused. */
static void record(ty_controller *ctl, const ty_reply *r, const char *action, const char *detail) {
  ty_txn *t = ty_txn_create();
  ty__admin_event(t, r->who.user, "config", reloaded(ctl), action, detail);
  ty__commit(ctl, t, NULL, NULL);
}

static void join_changes(const ty_reconfig_changes *c, char *out, size_t len) {
  size_t w = 0;
  out[0] = '\0';
  for (size_t i = 0; i < c->n && w < len; i++)
    w += (size_t)snprintf(out + w, len - w, "%s%s", i ? "; " : "", c->v[i]);
  if (c->n == 0) snprintf(out, len, "nothing changed");
}

/* --config read and applied. */
static int apply_file(ty_controller *ctl, ty_reconfig_changes *changed, char *err, size_t len) {
  ty_sched_config sched;
  ty_sched_topology topo;
  ty_auth_policy policy;
  char why[TY_ERR_LEN];
  int rc = ty_controller_read_config(ctl->cfg.config_file, &sched, &topo, &policy, why, sizeof why);
  if (rc == 0)
    rc = ty_controller_reconfigure(ctl, &sched, &topo, &policy, changed, why, sizeof why);
  ty_sched_topology_close(&topo);
  ty_policy_close(&policy);
  if (rc != 0)
    ty_errf(err, len, rc, "--config %s refused, the running settings stay: %s",
            ctl->cfg.config_file, why);
  return rc;
}

/* The token of /metrics, replaced when its file now holds another (the
 * token itself is never logged). */
static int apply_token(ty_controller *ctl, const char *token, ty_reconfig_changes *changed,
                       char *err, size_t len) {
  if (strcmp(token, ctl->metrics_token) == 0) return 0;
  int rc = ty_http_server_require_token(ctl->http, token);
  if (rc != 0) return ty_errf(err, len, rc, "the metrics token: %s", ty_strerror(rc));
  snprintf(ctl->metrics_token, sizeof ctl->metrics_token, "%s", token);
  add_change(changed, "metrics token: replaced (read from %s)", ctl->cfg.metrics_token_file);
  return 0;
}

int ty_controller_reload(ty_controller *ctl, ty_reconfig_changes *changed, char *err, size_t len) {
  const char *token_file = ctl->cfg.metrics_token_file;
  if (!ctl->cfg.config_file && !token_file)
    return ty_errf(err, len, TY_ESTATE,
                   "traind runs without --config or --metrics-token-file: there is no file to "
                   "read again (the defaults are in force)");
  /* The token file is read first: a bad one refuses the whole reconfigure. */
  char token[TY_HTTP_TOKEN_MAX] = "", why[TY_ERR_LEN];
  int rc =
      token_file ? ty_http_read_token_file(token_file, token, sizeof token, why, sizeof why) : 0;
  /* The file's mode, not the caller's rights: no EPERM, which clients read
   * as their own credential refused ("did you start munged?"). */
  if (rc != 0)
    return ty_errf(err, len, rc == TY_EPERM ? TY_EINVAL : rc, "%s; the running settings stay", why);
  rc = ctl->cfg.config_file ? apply_file(ctl, changed, err, len) : 0;
  return rc == 0 && token_file ? apply_token(ctl, token, changed, err, len) : rc;
}

void ty_controller_record_reload(ty_controller *ctl, const char *actor, int rc, const char *err,
                                 const ty_reconfig_changes *changed) {
  char detail[TY_ERR_LEN];
  if (rc == 0) join_changes(changed, detail, sizeof detail);
  ty_txn *t = ty_txn_create();
  ty__admin_event_by(t, actor, "config", reloaded(ctl), rc ? "refused" : "reconfigure",
                     rc ? err : detail);
  ty__commit(ctl, t, NULL, NULL);
}

void ty__h_reconfigure(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  (void)p, (void)n; /* ReconfigureRequest has no fields */
  char err[TY_ERR_LEN], detail[TY_ERR_LEN];
  int rc = ty__auth_operator(r, "reconfigure", err, sizeof(err));
  if (rc != 0) {
    r->refusal = "not_operator";
    ty__reply_finish(r, rc, err);
    return;
  }
  ty_reconfig_changes changed = {0};
  rc = ty_controller_reload(ctl, &changed, err, sizeof err);
  if (rc != 0) {
    ty_error("reconfigure by %s: %s", r->who.user, err);
    record(ctl, r, "refused", err);
    ty__reply_finish(r, rc, err);
    return;
  }
  join_changes(&changed, detail, sizeof detail);
  ty_txn *t = ty_txn_create();
  ty__admin_event(t, r->who.user, "config", reloaded(ctl), "reconfigure", detail);
  rc = ty__conv_reconfigure_resp(reloaded(ctl), changed.v, changed.n, &r->out);
  ty_reconfig_changes_close(&changed);
  if (rc != 0) {
    ty__commit(ctl, t, NULL, NULL);
    ty__reply_finish(r, rc, "cannot encode the answer");
    return;
  }
  ty__commit(ctl, t, ty__admin_committed, r);
}
