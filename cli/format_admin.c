/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Command lines and output of trainctl's scheduler commands: queue options
 * turned into "key=value" settings (the controller checks the values and
 * names a bad one), and tables or JSON for `queue ls`, `why` and `share`.
 * Pure: the same inputs give the same bytes, `now_ms` included.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/cli_admin.h"

/* ---- queue options -----------------------------------------------------------------
 * Each option is one queue setting; its value is checked here with the
 * controller's own rules (lib/wire), so a bad one is a usage error naming the
 * option before anything is sent. */

enum {
  Q_TIER = TY__CLI_OPT_FIRST,
  Q_SHARE,
  Q_MAXRUN,
  Q_MAXGPU,
  Q_MAXGPU_USER,
  Q_PREEMPT,
  Q_NOPREEMPT,
  Q_DEFTIME,
  Q_MAXTIME,
  Q_DEFMEM,
  Q_MAXMEM,
  Q_STATE,
  Q_ALLOW_GROUPS,
  Q_ALLOW_USERS,
  Q_JSON,
  Q_HELP = 'h'
};

static const struct option queue_opts[] = {
    {"tier", required_argument, NULL, Q_TIER},
    {"share", required_argument, NULL, Q_SHARE},
    {"max-running", required_argument, NULL, Q_MAXRUN},
    {"max-gpus", required_argument, NULL, Q_MAXGPU},
    {"max-gpus-per-user", required_argument, NULL, Q_MAXGPU_USER},
    {"preemptible", no_argument, NULL, Q_PREEMPT},
    {"no-preemptible", no_argument, NULL, Q_NOPREEMPT},
    {"default-time", required_argument, NULL, Q_DEFTIME},
    {"max-time", required_argument, NULL, Q_MAXTIME},
    {"default-mem", required_argument, NULL, Q_DEFMEM},
    {"max-mem", required_argument, NULL, Q_MAXMEM},
    {"state", required_argument, NULL, Q_STATE},
    {"allow-groups", required_argument, NULL, Q_ALLOW_GROUPS},
    {"allow-users", required_argument, NULL, Q_ALLOW_USERS},
    {"json", no_argument, NULL, Q_JSON},
    {"help", no_argument, NULL, Q_HELP},
    {NULL, 0, NULL, 0},
};

static const char *const setting_key[] = {[Q_TIER - Q_TIER] = "tier",
                                          [Q_SHARE - Q_TIER] = "share",
                                          [Q_MAXRUN - Q_TIER] = "max_running",
                                          [Q_MAXGPU - Q_TIER] = "max_gpus",
                                          [Q_MAXGPU_USER - Q_TIER] = "max_gpus_per_user",
                                          [Q_PREEMPT - Q_TIER] = "preemptible",
                                          [Q_NOPREEMPT - Q_TIER] = "preemptible",
                                          [Q_DEFTIME - Q_TIER] = "default_time",
                                          [Q_MAXTIME - Q_TIER] = "max_time",
                                          [Q_DEFMEM - Q_TIER] = "default_mem",
                                          [Q_MAXMEM - Q_TIER] = "max_mem",
                                          [Q_STATE - Q_TIER] = "state",
                                          [Q_ALLOW_GROUPS - Q_TIER] = "allow_groups",
                                          [Q_ALLOW_USERS - Q_TIER] = "allow_users"};

/* Checks key=val with the queue rules, then keeps it as a setting. */
static int add_setting(ty_cli_queue_args *a, int id, const char *val, char *err, size_t err_len) {
  const char *key = setting_key[id - Q_TIER], *name = "?";
  for (const struct option *o = queue_opts; o->name; o++)
    if (o->val == id) name = o->name;
  char what[64];
  snprintf(what, sizeof what, "--%s", name);
  ty_queue_info scratch = {0};
  int rc = ty_queue_set(&scratch, key, val, what, err, err_len);
  if (rc != 0) return rc;
  /* A time goes as seconds with their unit ("7200s", "0" for none), which
   * every traind reads alike (one before 120 meant minutes read seconds). */
  char secs[16] = "0";
  uint32_t t = id == Q_DEFTIME ? scratch.default_time_s : scratch.max_time_s;
  if (t) snprintf(secs, sizeof secs, "%" PRIu32 "s", t);
  if (id == Q_DEFTIME || id == Q_MAXTIME) val = secs;
  size_t n = strlen(key) + strlen(val) + 2;
  char *s = ty_xmalloc(n);
  snprintf(s, n, "%s=%s", key, val);
  a->settings = ty_xrealloc(a->settings, (a->n_settings + 1) * sizeof(*a->settings));
  a->settings[a->n_settings++] = s;
  return 0;
}

void ty_cli_queue_args_close(ty_cli_queue_args *a) {
  free(a->name);
  for (size_t i = 0; i < a->n_settings; i++)
    free(a->settings[i]);
  free(a->settings);
  memset(a, 0, sizeof(*a));
}

typedef struct queue_ctx {
  ty_cli_queue_args *out;
  bool want_name;
} queue_ctx;

static int queue_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  queue_ctx *c = ud;
  ty_cli_queue_args *a = c->out;
  (void)it;
  if (id == TY_OPT_POSITIONAL) {
    if (!c->want_name || a->name)
      return ty_errf(err, err_len, TY_EINVAL, "unexpected argument \"%s\"", v);
    int rc = ty_queue_check_name(v, err, err_len);
    if (rc == 0) a->name = ty_strdup(v);
    return rc;
  }
  if (id == Q_JSON)
    a->json = true;
  else if (id == Q_HELP)
    a->help = true;
  else if (id == Q_PREEMPT || id == Q_NOPREEMPT)
    return add_setting(a, id, id == Q_PREEMPT ? "true" : "false", err, err_len);
  else
    return add_setting(a, id, v, err, err_len);
  return 0;
}

int ty_cli_parse_queue_args(int argc, char **argv, bool want_name, ty_cli_queue_args *out,
                            char *err, size_t err_len) {
  memset(out, 0, sizeof(*out));
  queue_ctx c = {.out = out, .want_name = want_name};
  int rc = ty__cli_parse(argc, argv, "h", queue_opts, queue_arg, &c, err, err_len);
  if (rc == 0 && want_name && !out->name && !out->help)
    rc = ty_errf(err, err_len, TY_EINVAL, "a queue name is required");
  if (rc != 0) ty_cli_queue_args_close(out);
  return rc;
}

/* ---- queue ls -------------------------------------------------------------------------- */

static void fmt_limit(uint32_t v, char *b, size_t n) {
  if (v)
    snprintf(b, n, "%u", v);
  else
    snprintf(b, n, "-");
}

static void fmt_time(uint32_t s, char *b, size_t n) {
  if (s)
    ty_cli_format_elapsed((int64_t)s * 1000, b, n);
  else
    snprintf(b, n, "-");
}

static void fmt_mem(uint64_t bytes, char *b, size_t n) {
  if (bytes)
    ty_cli_format_size(bytes, b, n);
  else
    snprintf(b, n, "-");
}

/* Who may submit: "ALL", or "groups=a,b users=c". */
static void fmt_allow(const ty_queue_info *q, char *b, size_t n) {
  if (!q->allow_groups[0] && !q->allow_users[0]) {
    snprintf(b, n, "ALL");
    return;
  }
  snprintf(b, n, "%s%s%s%s%s", q->allow_groups[0] ? "groups=" : "", q->allow_groups,
           q->allow_groups[0] && q->allow_users[0] ? " " : "", q->allow_users[0] ? "users=" : "",
           q->allow_users);
}

static int queues_table(const ty_queue_info *qs, size_t n, ty_buf *out) {
  static const char *const h[] = {"NAME",     "STATE",    "TIER",          "SHARE",
                                  "PREEMPT",  "PENDING",  "RUNNING",       "GPUS",
                                  "MAX_RUN",  "MAX_GPUS", "MAX_GPUS/USER", "DEF_TIME",
                                  "MAX_TIME", "DEF_MEM",  "MAX_MEM",       "ALLOW"};
  static const bool right[] = {false, false, true, true, false, true, true, true,
                               true,  true,  true, true, true,  true, true, false};
  ty_cli_table *t = ty_cli_table_create(h, right, TY_ARRAY_LEN(h));
  for (size_t i = 0; i < n; i++) {
    const ty_queue_info *q = &qs[i];
    char tier[16], share[24], pend[16], run[16], gpus[16], mr[16], mg[16], mu[16], dt[32], mt[32],
        dm[32], mm[32], allow[2 * TY_QUEUE_ALLOW_LEN + 16];
    fmt_allow(q, allow, sizeof allow);
    snprintf(tier, sizeof tier, "%d", q->tier);
    snprintf(share, sizeof share, "%g", q->share);
    snprintf(pend, sizeof pend, "%u", q->pending);
    snprintf(run, sizeof run, "%u", q->running);
    snprintf(gpus, sizeof gpus, "%u", q->gpus_used);
    fmt_limit(q->max_running, mr, sizeof mr);
    fmt_limit(q->max_gpus, mg, sizeof mg);
    fmt_limit(q->max_gpus_per_user, mu, sizeof mu);
    fmt_time(q->default_time_s, dt, sizeof dt);
    fmt_time(q->max_time_s, mt, sizeof mt);
    fmt_mem(q->default_mem, dm, sizeof dm);
    fmt_mem(q->max_mem, mm, sizeof mm);
    const char *row[] = {q->name,
                         ty_queue_state_name(q->state),
                         tier,
                         share,
                         q->preemptible ? "yes" : "no",
                         pend,
                         run,
                         gpus,
                         mr,
                         mg,
                         mu,
                         dt,
                         mt,
                         dm,
                         mm,
                         allow};
    ty_cli_table_add(t, row);
  }
  int rc = ty_cli_table_render(t, out);
  ty_cli_table_destroy(t);
  return rc;
}

/* An access list as an array of names ([] = everyone). */
static void json_allow(ty_json *w, const char *key, const char *list) {
  char name[TY_QUEUE_ALLOW_NAME_LEN + 1];
  ty_json_key(w, key);
  ty_json_begin_array(w);
  for (size_t i = 0; ty_queue_allow_name(list, i, name, sizeof name); i++)
    ty_json_string(w, name);
  ty_json_end_array(w);
}

static void json_queue(ty_json *w, const ty_queue_info *q) {
  ty_json_begin_object(w);
  ty_json_key(w, "name"), ty_json_string(w, q->name);
  ty_json_key(w, "state"), ty_json_string(w, ty_queue_state_name(q->state));
  ty_json_key(w, "tier"), ty_json_int(w, q->tier);
  ty_json_key(w, "share"), ty_json_double(w, q->share);
  ty_json_key(w, "preemptible"), ty_json_bool(w, q->preemptible);
  ty_json_key(w, "max_running"), ty_json_uint(w, q->max_running);
  ty_json_key(w, "max_gpus"), ty_json_uint(w, q->max_gpus);
  ty_json_key(w, "max_gpus_per_user"), ty_json_uint(w, q->max_gpus_per_user);
  ty_json_key(w, "default_time_s"), ty_json_uint(w, q->default_time_s);
  ty_json_key(w, "max_time_s"), ty_json_uint(w, q->max_time_s);
  ty_json_key(w, "default_mem"), ty_json_uint(w, q->default_mem);
  ty_json_key(w, "max_mem"), ty_json_uint(w, q->max_mem);
  json_allow(w, "allow_groups", q->allow_groups);
  json_allow(w, "allow_users", q->allow_users);
  ty_json_key(w, "pending"), ty_json_uint(w, q->pending);
  ty_json_key(w, "running"), ty_json_uint(w, q->running);
  ty_json_key(w, "gpus_used"), ty_json_uint(w, q->gpus_used);
  ty_json_end_object(w);
}

int ty_cli_render_queues(const ty_queue_info *qs, size_t n, bool json, ty_buf *out) {
  if (!json) return queues_table(qs, n, out);
  ty_json w;
  ty_json_init(&w, out);
  w.lines = true;
  ty_json_begin_array(&w);
  for (size_t i = 0; i < n; i++)
    json_queue(&w, &qs[i]);
  ty_json_end_array(&w);
  return ty_json_finish(&w);
}

/* ---- why --------------------------------------------------------------------------------- */

static const char *est_kind_name(int kind) {
  switch (kind) {
  case TY_CLI_EST_NOW:
    return "now";
  case TY_CLI_EST_LIMITS:
    return "limits";
  case TY_CLI_EST_PREEMPTION:
    return "preemption";
  default:
    return "unknown";
  }
}

/* "Est. start:" says when and on what the scheduler bases it; an estimate
 * it cannot make is "unknown" with the reason, never a guess. */
static int estimate_text(const ty_cli_explain *e, int64_t now_ms, ty_buf *out) {
  const char *note = e->est_note && *e->est_note ? e->est_note : "no reason given";
  if (e->est_kind == TY_CLI_EST_NOW || (e->est_kind != TY_CLI_EST_UNKNOWN && !e->est_start_ms))
    return ty_buf_printf(out, "Est. start:  now (the next scheduling pass starts it)\n");
  if (e->est_kind == TY_CLI_EST_UNKNOWN)
    return ty_buf_printf(out, "Est. start:  unknown: %s\n", note);
  int64_t d = e->est_start_ms - now_ms;
  if (d <= 0) return ty_buf_printf(out, "Est. start:  due now (%s)\n", note);
  char in[32];
  ty_cli_format_elapsed(d, in, sizeof in);
  if (e->est_lower_bound)
    return ty_buf_printf(out, "Est. start:  not before %s from now (%s)\n", in, note);
  return ty_buf_printf(out, "Est. start:  in %s (%s)\n", in, note);
}

/* The reason may quote a rank's log (a path the user chose): quoted when
 * it holds control bytes (ty_cli_shown), as ls and show print it. */
static int explain_text(const ty_cli_explain *e, int64_t now_ms, ty_buf *out) {
  int rc = e->name[0] ? ty_buf_printf(out, "Job %s (id %" PRIu64 "): %s\n", e->name, e->job_id,
                                      ty_job_state_name(e->state))
                      : ty_buf_printf(out, "Job %" PRIu64 ": %s\n", e->job_id,
                                      ty_job_state_name(e->state));
  if (e->reason && *e->reason) {
    rc |= ty_buf_printf(out, "Reason:      ");
    ty_cli_shown(out, e->reason);
    rc |= ty_buf_printf(out, "\n");
  }
  if (e->state != TY_JOB_PENDING || e->position == 0) return rc;
  rc |= ty_buf_printf(out, "Position:    %u of %u pending jobs\n", e->position, e->pending_total);
  rc |= ty_buf_printf(out,
                      "Priority:    %.0f = tier %.0f + age %.0f + fair-share %.0f + size "
                      "%.0f + job priority %.0f\n",
                      e->priority, e->f_tier, e->f_age, e->f_fairshare, e->f_size, e->f_priority);
  rc |= ty_buf_printf(out, "Fair share:  factor %.3f (usage %.0f, %.1f%% of all; share %.1f%%)\n",
                      e->fairshare, e->usage, e->usage_norm * 100, e->share * 100);
  rc |= ty_buf_printf(out, "Gang:        needs %u node%s, %u would hold a member now\n",
                      e->nodes_needed, e->nodes_needed == 1 ? "" : "s", e->nodes_fit);
  for (size_t i = 0; i < e->n_nodes; i++)
    rc |= ty_buf_printf(out, "  %-12s %s\n", e->node_names[i], e->node_whys[i]);
  rc |= estimate_text(e, now_ms, out);
  if (e->reserved_job)
    rc |= ty_buf_printf(out, "Reservation: held by job %" PRIu64 "%s\n", e->reserved_job,
                        e->reserved_job == e->job_id ? " (this job)" : "");
  return rc;
}

int ty_cli_render_explain(const ty_cli_explain *e, int64_t now_ms, bool json, ty_buf *out) {
  if (!json) return explain_text(e, now_ms, out);
  ty_json w;
  ty_json_init(&w, out);
  ty_json_begin_object(&w);
  ty_json_key(&w, "id"), ty_json_uint(&w, e->job_id);
  ty_json_key(&w, "state"), ty_json_string(&w, ty_job_state_name(e->state));
  ty_json_key(&w, "reason"), ty_json_string(&w, e->reason);
  ty_json_key(&w, "position"), ty_json_uint(&w, e->position);
  ty_json_key(&w, "pending_total"), ty_json_uint(&w, e->pending_total);
  ty_json_key(&w, "priority"), ty_json_double(&w, e->priority);
  ty_json_key(&w, "factors"), ty_json_begin_object(&w);
  ty_json_key(&w, "tier"), ty_json_double(&w, e->f_tier);
  ty_json_key(&w, "age"), ty_json_double(&w, e->f_age);
  ty_json_key(&w, "fairshare"), ty_json_double(&w, e->f_fairshare);
  ty_json_key(&w, "size"), ty_json_double(&w, e->f_size);
  ty_json_key(&w, "job_priority"), ty_json_double(&w, e->f_priority);
  ty_json_end_object(&w);
  ty_json_key(&w, "fairshare"), ty_json_double(&w, e->fairshare);
  ty_json_key(&w, "usage"), ty_json_double(&w, e->usage);
  ty_json_key(&w, "usage_norm"), ty_json_double(&w, e->usage_norm);
  ty_json_key(&w, "share"), ty_json_double(&w, e->share);
  ty_json_key(&w, "nodes_needed"), ty_json_uint(&w, e->nodes_needed);
  ty_json_key(&w, "nodes_fit"), ty_json_uint(&w, e->nodes_fit);
  ty_json_key(&w, "nodes"), ty_json_begin_array(&w);
  for (size_t i = 0; i < e->n_nodes; i++) {
    ty_json_begin_object(&w);
    ty_json_key(&w, "node"), ty_json_string(&w, e->node_names[i]);
    ty_json_key(&w, "why"), ty_json_string(&w, e->node_whys[i]);
    ty_json_end_object(&w);
  }
  ty_json_end_array(&w);
  ty_json_key(&w, "wait"), ty_json_string(&w, e->wait ? e->wait : "");
  ty_json_key(&w, "est_start_ms"), ty_json_int(&w, e->est_start_ms);
  ty_json_key(&w, "est_kind"), ty_json_string(&w, est_kind_name(e->est_kind));
  ty_json_key(&w, "est_lower_bound"), ty_json_bool(&w, e->est_lower_bound);
  ty_json_key(&w, "est_note"), ty_json_string(&w, e->est_note ? e->est_note : "");
  ty_json_key(&w, "reserved_job"), ty_json_uint(&w, e->reserved_job);
  ty_json_end_object(&w);
  return ty_json_finish(&w);
}

/* ---- submit --test-only --------------------------------------------------------------------- */

/* sbatch's "Job 5 to start at 2026-12-06T02:00:00 using 4 processors on
 * nodes n1 in partition p" in Trainyard's words: no id (none was given),
 * CPUs, queue; the nodes only when known (a job that would start now). */
static int submit_test_text(const ty_cli_submit_test *t, ty_buf *out) {
  const char *note = t->est_note && *t->est_note ? t->est_note : "no reason given";
  if (t->est_kind == TY_CLI_EST_UNKNOWN || !t->est_start_ms)
    return ty_buf_printf(out, "trainctl: Job's start cannot be estimated in queue %s: %s\n",
                         t->queue, note);
  char when[32];
  ty_cli_format_time(t->est_start_ms, 'T', when, sizeof when);
  int rc = ty_buf_printf(out, "trainctl: Job would start %s%s using %" PRIu32 " CPUs",
                         t->est_lower_bound ? "not before " : "at ", when, t->cpus);
  for (size_t i = 0; i < t->n_nodes; i++)
    rc |= ty_buf_printf(out, "%s%s", i ? "," : " on nodes ", t->nodes[i]);
  rc |= ty_buf_printf(out, " in queue %s", t->queue);
  if (t->est_kind != TY_CLI_EST_NOW) rc |= ty_buf_printf(out, " (%s)", note);
  return rc | ty_buf_printf(out, "\n");
}

int ty_cli_render_submit_test(const ty_cli_submit_test *t, bool json, ty_buf *out) {
  if (!json) return submit_test_text(t, out);
  ty_json w;
  ty_json_init(&w, out);
  ty_json_begin_object(&w);
  ty_json_key(&w, "test_only"), ty_json_bool(&w, true);
  ty_json_key(&w, "est_start_ms"), ty_json_int(&w, t->est_start_ms);
  ty_json_key(&w, "est_kind"), ty_json_string(&w, est_kind_name(t->est_kind));
  ty_json_key(&w, "est_lower_bound"), ty_json_bool(&w, t->est_lower_bound);
  ty_json_key(&w, "est_note"), ty_json_string(&w, t->est_note ? t->est_note : "");
  ty_json_key(&w, "cpus"), ty_json_uint(&w, t->cpus);
  ty_json_key(&w, "nodes"), ty_json_begin_array(&w);
  for (size_t i = 0; i < t->n_nodes; i++)
    ty_json_string(&w, t->nodes[i]);
  ty_json_end_array(&w);
  ty_json_key(&w, "queue"), ty_json_string(&w, t->queue ? t->queue : "");
  ty_json_end_object(&w);
  return ty_json_finish(&w);
}

/* ---- share ---------------------------------------------------------------------------------- */

int ty_cli_render_shares(const ty_cli_share *s, size_t n, double halflife_s, bool json,
                         ty_buf *out) {
  if (json) {
    ty_json w;
    ty_json_init(&w, out);
    w.lines = true;
    ty_json_begin_array(&w);
    for (size_t i = 0; i < n; i++) {
      ty_json_begin_object(&w);
      ty_json_key(&w, "queue"), ty_json_string(&w, s[i].queue);
      ty_json_key(&w, "user"), ty_json_string(&w, s[i].user);
      ty_json_key(&w, "share"), ty_json_double(&w, s[i].share);
      ty_json_key(&w, "usage"), ty_json_double(&w, s[i].usage);
      ty_json_key(&w, "usage_norm"), ty_json_double(&w, s[i].usage_norm);
      ty_json_key(&w, "factor"), ty_json_double(&w, s[i].factor);
      ty_json_key(&w, "gpu_seconds"), ty_json_double(&w, s[i].gpu_s);
      ty_json_key(&w, "cpu_seconds"), ty_json_double(&w, s[i].cpu_s);
      ty_json_end_object(&w);
    }
    ty_json_end_array(&w);
    return ty_json_finish(&w);
  }
  static const char *const h[] = {"QUEUE",  "USER",      "SHARE",     "USAGE",
                                  "USAGE%", "FAIRSHARE", "GPU_HOURS", "CPU_HOURS"};
  static const bool right[] = {false, false, true, true, true, true, true, true};
  ty_cli_table *t = ty_cli_table_create(h, right, TY_ARRAY_LEN(h));
  for (size_t i = 0; i < n; i++) {
    char sh[24], us[24], un[24], f[24], g[24], c[24];
    snprintf(sh, sizeof sh, "%.1f%%", s[i].share * 100);
    snprintf(us, sizeof us, "%.0f", s[i].usage);
    snprintf(un, sizeof un, "%.1f%%", s[i].usage_norm * 100);
    snprintf(f, sizeof f, "%.3f", s[i].factor);
    snprintf(g, sizeof g, "%.2f", s[i].gpu_s / 3600);
    snprintf(c, sizeof c, "%.2f", s[i].cpu_s / 3600);
    const char *row[] = {s[i].queue, s[i].user[0] ? s[i].user : "-", sh, us, un, f, g, c};
    ty_cli_table_add(t, row);
  }
  int rc = ty_cli_table_render(t, out);
  ty_cli_table_destroy(t);
  if (rc == 0)
    rc = ty_buf_printf(out, "Usage decays with a half-life of %.1f h.\n", halflife_s / 3600);
  return rc;
}
