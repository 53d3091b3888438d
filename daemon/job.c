/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The job state machine, a run's end time as the controller records it,
 * and submit-time validation of a job spec. All are
 * pure functions over plain structs; the controller calls them on its loop.
 * Validation names the first bad field so users can fix their spec without
 * reading the daemon's log.
 */
#include "daemon/daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"

/* allowed[from] is a bit set of the states `from` may move to. */
#define BIT(s) (1u << (s))
static const unsigned allowed[TY_JOB_STATE_MAX + 1] = {
    [TY_JOB_PENDING] = BIT(TY_JOB_RUNNING) | BIT(TY_JOB_CANCELLED),
    [TY_JOB_RUNNING] = BIT(TY_JOB_COMPLETED) | BIT(TY_JOB_FAILED) | BIT(TY_JOB_CANCELLED) |
                       BIT(TY_JOB_TIMEOUT) | BIT(TY_JOB_NODE_FAIL) | BIT(TY_JOB_PREEMPTED) |
                       BIT(TY_JOB_OUT_OF_MEMORY) |
                       BIT(TY_JOB_PENDING), /* a failed rank, requeued by policy */
    [TY_JOB_NODE_FAIL] = BIT(TY_JOB_PENDING),
    [TY_JOB_PREEMPTED] = BIT(TY_JOB_PENDING),
};

int ty_job_check_transition(int from, int to) {
  if (from < 1 || from > TY_JOB_STATE_MAX || to < 1 || to > TY_JOB_STATE_MAX) return TY_ESTATE;
  return (allowed[from] & BIT(to)) ? 0 : TY_ESTATE;
}

int64_t ty_job_end_time(int64_t start_ms, int64_t reported, int64_t now, int64_t ran_ms) {
  if (start_ms > 0 && ran_ms >= 0) {
    int64_t measured = start_ms + ran_ms;
    if (now - measured > TY_END_SKEW_MS || measured - now > TY_END_SKEW_MS) return measured;
  }
  if (reported <= 0 || reported > now) return now;
  return start_ms > 0 && reported < start_ms ? start_ms : reported;
}

/* A valid environment entry is NAME=value with NAME of [A-Za-z_][A-Za-z0-9_]*. */
static bool env_ok(const char *e) {
  const char *eq = strchr(e, '=');
  if (!eq || eq == e) return false;
  for (const char *p = e; p < eq; p++) {
    char c = *p;
    bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!alpha && !(p > e && c >= '0' && c <= '9')) return false;
  }
  return true;
}

/* Each entry NAME=value (the value any bytes but NUL, as Linux allows). */
static int check_env(const ty_job_spec *s, const char *field, char *err, size_t len) {
  for (size_t i = 0; i < s->envc; i++)
    if (!s->env[i] || !env_ok(s->env[i]))
      return ty_errf(err, len, TY_EINVAL, "%s[%zu]: \"%.64s\" is not NAME=value", field, i,
                     s->env[i] ? s->env[i] : "");
  return 0;
}

static int check_command(const ty_job_spec *s, char *err, size_t len) {
  if (s->argc == 0) return ty_errf(err, len, TY_EINVAL, "job.command.argv: must not be empty");
  if (s->argc > TY_JOB_MAX_ARGS)
    return ty_errf(err, len, TY_EINVAL, "job.command.argv: %zu arguments, at most %d are allowed",
                   s->argc, TY_JOB_MAX_ARGS);
  if (!s->argv[0] || !s->argv[0][0])
    return ty_errf(err, len, TY_EINVAL, "job.command.argv[0]: must not be empty");
  for (size_t i = 0; i < s->argc; i++)
    if (!s->argv[i] || strlen(s->argv[i]) > TY_JOB_MAX_ARG_LEN)
      return ty_errf(err, len, TY_EINVAL, "job.command.argv[%zu]: longer than %d bytes", i,
                     TY_JOB_MAX_ARG_LEN);
  int rc = check_env(s, "job.command.env", err, len);
  if (rc != 0) return rc;
  if (s->cwd && s->cwd[0] && s->cwd[0] != '/')
    return ty_errf(err, len, TY_EINVAL, "job.command.cwd: \"%.128s\" is not an absolute path",
                   s->cwd);
  return 0;
}

/* One -w/-x list: well-formed names, each once (a name given twice is
 * kept once, as Slurm's hostlists do). */
static int check_names(const char *field, char **v, size_t *n, char *err, size_t len) {
  if (*n > TY_JOB_MAX_NODE_NAMES)
    return ty_errf(err, len, TY_EINVAL, "job.resources.%s: %zu names, at most %d are allowed",
                   field, *n, TY_JOB_MAX_NODE_NAMES);
  for (size_t i = 0; i < *n; i++) /* all checked before any is dropped: the spec stays whole */
    if (!ty_node_name_ok(v[i]))
      return ty_errf(err, len, TY_EINVAL,
                     "job.resources.%s[%zu]: \"%.64s\" is not a node name (" TY_NODE_NAME_RULE ")",
                     field, i, v[i] ? v[i] : "");
  size_t k = 0;
  for (size_t i = 0; i < *n; i++) {
    bool seen = false;
    for (size_t m = 0; m < k && !seen; m++)
      seen = strcmp(v[m], v[i]) == 0;
    if (seen)
      free(v[i]);
    else
      v[k++] = v[i];
  }
  *n = k;
  return 0;
}

/* -w/--nodelist and -x/--exclude: no node in both; nodes at least the
 * required ones' count (sbatch raises -N so). Names are checked against
 * the cluster's nodes later (ty_sched_check_fits). */
static int check_lists(ty_job_spec *s, char *err, size_t len) {
  int rc = check_names("required_nodes", s->req_nodes, &s->n_req_nodes, err, len);
  if (rc == 0) rc = check_names("excluded_nodes", s->exc_nodes, &s->n_exc_nodes, err, len);
  for (size_t i = 0; rc == 0 && i < s->n_req_nodes; i++)
    for (size_t k = 0; rc == 0 && k < s->n_exc_nodes; k++)
      if (strcmp(s->req_nodes[i], s->exc_nodes[k]) == 0)
        rc = ty_errf(err, len, TY_EINVAL,
                     "job.resources: node %s is both required (-w/--nodelist) and excluded "
                     "(-x/--exclude)",
                     s->req_nodes[i]);
  if (rc == 0 && s->n_req_nodes > s->nodes) s->nodes = (uint32_t)s->n_req_nodes;
  return rc;
}

static int check_resources(ty_job_spec *s, char *err, size_t len) {
  if (!s->has_resources) {
    s->nodes = 1, s->tasks_per_node = 1, s->cpus_per_task = 1;
    s->gpus_per_node = 0, s->mem_per_node = 0;
    return 0;
  }
  /* proto3 cannot tell an unset field from 0, so 0 takes the documented
   * default (1) for nodes, tasks_per_node and cpus_per_task. */
  if (s->nodes == 0) s->nodes = 1;
  int rc = check_lists(s, err, len);
  if (rc != 0) return rc;
  if (s->nodes > TY_JOB_MAX_NODES)
    return ty_errf(err, len, TY_EINVAL, "job.resources.nodes: %u is above the limit of %d",
                   s->nodes, TY_JOB_MAX_NODES);
  if (s->tasks_per_node == 0) s->tasks_per_node = 1;
  if (s->cpus_per_task == 0) s->cpus_per_task = 1;
  return ty_job_check_layout(s, err, len);
}

int ty_job_check_layout(const ty_job_spec *s, char *err, size_t len) {
  if (s->tasks_per_node > TY_JOB_MAX_TASKS_PER_NODE)
    return ty_errf(err, len, TY_EINVAL, "job.resources.tasks_per_node: %u is above the limit of %d",
                   s->tasks_per_node, TY_JOB_MAX_TASKS_PER_NODE);
  if (s->cpus_per_task > TY_JOB_MAX_CPUS_PER_TASK)
    return ty_errf(err, len, TY_EINVAL, "job.resources.cpus_per_task: %u is above the limit of %d",
                   s->cpus_per_task, TY_JOB_MAX_CPUS_PER_TASK);
  if (s->gpus_per_node > 64)
    return ty_errf(err, len, TY_EINVAL, "job.resources.gpus_per_node: %u is above the limit of 64",
                   s->gpus_per_node);
  return 0;
}

/* Names and variables are shown in listings and terminals and stored as
 * text: they must be well-formed UTF-8 (proto3 strings are, by the spec). */
static int check_utf8(const char *what, const char *s, char *err, size_t len) {
  size_t bad;
  if (!s || ty_utf8_valid(s, &bad)) return 0;
  return ty_errf(err, len, TY_EINVAL, "%s: not valid UTF-8 (byte 0x%02x at offset %zu)", what,
                 (unsigned char)s[bad], bad);
}

int ty_one_line_check(const char *what, const char *s, size_t max, char *err, size_t len) {
  int rc = check_utf8(what, s, err, len);
  for (size_t i = 0; rc == 0 && s && s[i]; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
      rc = ty_errf(err, len, TY_EINVAL,
                   "%s: control character 0x%02x at offset %zu (it is shown on one line)", what,
                   (unsigned char)s[i], i);
  if (rc == 0 && s && strlen(s) > max)
    rc = ty_errf(err, len, TY_EINVAL, "%s: longer than %zu bytes", what, max);
  return rc;
}

/* A name is a cell of parsable listings too (history -P, ls -o "%i|%j"),
 * where '|' separates cells: one in a name would shift every later cell. */
int ty_job_name_check(const char *what, const char *name, char *err, size_t len) {
  int rc = ty_one_line_check(what, name, TY_JOB_MAX_NAME, err, len);
  const char *bar = rc == 0 && name ? strchr(name, '|') : NULL;
  if (bar)
    rc = ty_errf(err, len, TY_EINVAL,
                 "%s: '|' at offset %zu (it separates the cells of parsable listings: "
                 "history -P, ls -o)",
                 what, (size_t)(bar - name));
  return rc;
}

static int check_text(const ty_job_spec *s, char *err, size_t len) {
  int rc = ty_job_name_check("job.name", s->name, err, len);
  if (rc == 0) rc = check_utf8("job.user", s->user, err, len);
  if (rc == 0) rc = check_utf8("job.queue", s->queue, err, len);
  if (rc == 0 && (s->priority < TY_JOB_PRIORITY_MIN || s->priority > TY_JOB_PRIORITY_MAX))
    rc = ty_errf(err, len, TY_EINVAL, "job.priority: %d is outside %d..%d", s->priority,
                 TY_JOB_PRIORITY_MIN, TY_JOB_PRIORITY_MAX);
  return rc;
}

static char *basename_dup(const char *path) {
  const char *slash = strrchr(path, '/');
  return ty_strdup(slash && slash[1] ? slash + 1 : path);
}

/* A graph job: the model and config must be there (their contents are the
 * controller's to check); one rank per GPU when GPUs are asked for. */
static int check_graph(ty_job_spec *s, char *err, size_t len) {
  bool has_path = s->model_path && s->model_path[0];
  if (!has_path && s->model_len == 0)
    return ty_errf(err, len, TY_EINVAL, "job.graph: model_path or model_bytes is required");
  if (has_path && s->model_len)
    return ty_errf(err, len, TY_EINVAL, "job.graph: give model_path or model_bytes, not both");
  if (has_path && s->model_path[0] != '/')
    return ty_errf(err, len, TY_EINVAL, "job.graph.model_path: \"%.128s\" is not an absolute path",
                   s->model_path);
  if (s->train_config_len == 0)
    return ty_errf(err, len, TY_EINVAL,
                   "job.graph.train_config: required (an encoded trainyard.TrainConfig)");
  if (!ty_parallelism_name(s->parallelism))
    return ty_errf(err, len, TY_EINVAL,
                   "job.graph.parallelism: %d is not auto (0), data (1), tensor (2) or grid (3)",
                   s->parallelism);
  int rc = check_env(s, "job.graph.env", err, len);
  if (rc == 0) rc = check_resources(s, err, len);
  if (rc == 0 && s->gpus_per_node > 0 && s->tasks_per_node == 1)
    s->tasks_per_node = s->gpus_per_node;
  return rc;
}

int ty_job_spec_validate(ty_job_spec *s, char *err, size_t len) {
  if (err && len) err[0] = '\0';
  if (s->kind != TY_JOB_KIND_COMMAND && s->kind != TY_JOB_KIND_GRAPH)
    return ty_errf(err, len, TY_EINVAL, "job.command: a command (or a graph) is required");
  int rc = s->kind == TY_JOB_KIND_GRAPH ? check_graph(s, err, len) : check_command(s, err, len);
  if (rc == 0 && s->kind == TY_JOB_KIND_COMMAND) rc = check_resources(s, err, len);
  if (rc == 0) rc = check_text(s, err, len);
  if (rc != 0) return rc;
  if (s->user && strlen(s->user) > TY_JOB_MAX_NAME)
    return ty_errf(err, len, TY_EINVAL, "job.user: longer than %d bytes", TY_JOB_MAX_NAME);
  if (s->queue && strlen(s->queue) > TY_JOB_MAX_NAME)
    return ty_errf(err, len, TY_EINVAL, "job.queue: longer than %d bytes", TY_JOB_MAX_NAME);
  if (s->no_requeue && s->max_rank_failure_requeues)
    return ty_errf(err, len, TY_EINVAL,
                   "job.no_requeue: a job that is never requeued (--no-requeue) cannot also be "
                   "requeued up to %u times when a rank fails (max_rank_failure_requeues)",
                   s->max_rank_failure_requeues);
  if (!s->queue || !s->queue[0]) {
    free(s->queue);
    s->queue = ty_strdup("default");
  }
  if (!s->name || !s->name[0]) { /* the command's name, the model's, or "graph" */
    free(s->name);
    bool graph = s->kind == TY_JOB_KIND_GRAPH;
    s->name = basename_dup(!graph                              ? s->argv[0]
                           : s->model_path && s->model_path[0] ? s->model_path
                                                               : "graph");
  }
  if (!s->user || !s->user[0]) {
    free(s->user);
    s->user = ty_strdup("nobody");
  }
  return 0;
}

int ty_job_check_request_id(const char *id, char *err, size_t len) {
  size_t n = strlen(id);
  if (n > TY_JOB_MAX_REQUEST_ID)
    return ty_errf(err, len, TY_EINVAL, "request_id: longer than %d bytes", TY_JOB_MAX_REQUEST_ID);
  for (size_t i = 0; i < n; i++)
    if (id[i] <= ' ' || id[i] > '~')
      return ty_errf(err, len, TY_EINVAL, "request_id: byte %zu is not printable ASCII (0x%02x)", i,
                     (unsigned char)id[i]);
  return 0;
}

/* ---- what other users see of a reason ------------------------------------------------------ */

/* The last "; requeued (" or "; not requeued (" in reason and what follows
 * (the controller's own words, appended after a rank's), or "". */
static const char *requeue_tail(const char *reason) {
  static const char *const marks[] = {"; requeued (", "; not requeued ("};
  const char *tail = NULL;
  for (size_t m = 0; m < sizeof marks / sizeof *marks; m++)
    for (const char *p = strstr(reason, marks[m]); p; p = strstr(p + 1, marks[m]))
      if (!tail || p > tail) tail = p;
  return tail ? tail : "";
}

/* What "rank N " followed by rest says publicly, or NULL when rest is not
 * one of the controller's descriptions of a rank's end. */
static const char *rank_end_public(const char *rest) {
  static const struct {
    const char *starts, *says;
  } ends[] = {{"exited with code", "failed"},
              {"killed by signal", "failed"},
              {"failed to start", "failed to start"},
              {"lost", "lost"},
              {"exited 0 after", "completed"}};
  for (size_t i = 0; i < sizeof ends / sizeof *ends; i++)
    if (strncmp(rest, ends[i].starts, strlen(ends[i].starts)) == 0) return ends[i].says;
  return NULL;
}

void ty_job_reason_public(const char *reason, char *out, size_t len) {
  static const char launch[] = "launch failed on ";
  const char *r = reason ? reason : "";
  unsigned rank = 0;
  int at = 0;
  const char *says = NULL;
  if (strncmp(r, launch, sizeof launch - 1) == 0) {
    const char *node = r + sizeof launch - 1;
    snprintf(out, len, "%s%.*s", launch, (int)strcspn(node, ":;"), node);
  } else if (sscanf(r, "rank %u %n", &rank, &at) == 1 && at > 0 &&
             (says = rank_end_public(r + at)) != NULL) {
    snprintf(out, len, "rank %u %s%s", rank, says, requeue_tail(r));
  } else {
    snprintf(out, len, "%s", r);
  }
}
