/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What each UpdateJob action does to one job (hold, release, priority,
 * move, checkpoint, time, mem, nodes, layout, requeue, throttle, name,
 * dependency, signal: ty__admin_job_change) and how the change is written
 * (ty__admin_record). Which jobs a request names, array-wide changes and
 * the answer are update_job.c's; ExplainJob (`trainctl why`) is
 * explain.c's.
 *
 * Who may (auth.c, docs/security.md): the job's (the array's) owner or an
 * operator, as for cancel; raising a priority, a time limit or a memory limit
 * is for operators only (as Slurm's scontrol: users may only lower them); a
 * running job's time limit too, sent to its workers (SetTaskLimit). The
 * caller is the one its credential names; every change is recorded with
 * that name.
 *
 * Requeue (like scontrol requeue): a running job's ranks are killed (the
 * kill grace applies) and once they have ended it is PENDING again, a new
 * run; an ended job is PENDING again at once, brought back from the
 * finished cache or the store into the live set. A job submitted with
 * --no-requeue (Job.no_requeue) is refused, as scontrol refuses it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "proto/methods.h"

/* How a message names j: its id, or an element as its user names it
 * ("7_3"), whose own id they never typed. */
typedef struct job_label {
  char s[48];
} job_label;

static job_label label(const ty_job *j) {
  job_label l;
  if (j->array_id)
    snprintf(l.s, sizeof l.s, "%llu_%u", (unsigned long long)j->array_id, j->array_task);
  else
    snprintf(l.s, sizeof l.s, "%llu", (unsigned long long)j->id);
  return l;
}

static int need_pending(const ty_job *j, const char *what, char *err, size_t len) {
  if (j->state == TY_JOB_PENDING) return 0;
  return ty_errf(err, len, TY_ESTATE, "job %s is %s; only pending jobs can be %s", label(j).s,
                 ty_job_state_name(j->state), what);
}

static int not_ended(const ty_job *j, char *err, size_t len) {
  if (!ty_job_state_terminal(j->state)) return 0;
  return ty_errf(err, len, TY_ESTATE, "job %s is already %s", label(j).s,
                 ty_job_state_name(j->state));
}

static int job_move(ty_controller *ctl, ty_job *j, const char *to, char *why, size_t wlen,
                    char *err, size_t len) {
  int rc = need_pending(j, "moved", err, len);
  if (rc != 0) return rc;
  ty_queue_info *q = ty__queue_find(ctl, to);
  if (!to[0] || !q || q->state == TY_QUEUE_DELETED) {
    char names[256];
    ty__queue_names(ctl, names, sizeof names);
    return ty_errf(err, len, TY_EINVAL, "queue: unknown queue \"%.64s\" (the queues are: %s)", to,
                   names);
  }
  if (q->state == TY_QUEUE_CLOSED)
    return ty_errf(err, len, TY_ESTATE, "queue: queue %.64s is CLOSED and accepts no jobs", to);
  if (q->max_time_s && j->spec.time_limit_s > q->max_time_s)
    return ty_errf(err, len, TY_EINVAL,
                   "queue: job %s's time limit of %u s exceeds queue %.64s's max_time of %u s",
                   label(j).s, j->spec.time_limit_s, to, q->max_time_s);
  /* Its memory again in the new queue: a default is the new queue's, an
   * ask must be within its max_mem. */
  uint64_t mem = j->spec.mem_per_node;
  int src = j->spec.mem_source;
  char what[96], was[32], now[32];
  snprintf(what, sizeof what, "queue: job %s's memory", label(j).s);
  if (!j->spec.exclusive &&
      (rc = ty__mem_resolve(ctl, q, ty__mem_asked(&j->spec), what, &mem, &src, err, len)) != 0)
    return rc;
  /* A job with no time limit gets the new queue's max_time where it has one. */
  uint32_t secs = j->spec.time_limit_s ? j->spec.time_limit_s : q->max_time_s;
  int at = snprintf(why, wlen, "moved from queue %.64s to %.64s", j->spec.queue, to);
  if (mem != j->spec.mem_per_node && at > 0 && (size_t)at < wlen)
    at += snprintf(why + at, wlen - (size_t)at, ", memory per node %s -> %s (%s)",
                   ty__mem_text(j->spec.mem_per_node, was), ty__mem_text(mem, now),
                   src == TY_MEM_ASKED ? "asked" : ty_mem_source_name(src));
  if (secs != j->spec.time_limit_s && at > 0 && (size_t)at < wlen)
    snprintf(why + at, wlen - (size_t)at, ", time limit UNLIMITED -> %u s (the queue's max_time)",
             secs);
  j->spec.mem_per_node = mem, j->spec.mem_source = src;
  j->spec.time_limit_s = secs;
  free(j->spec.queue);
  j->spec.queue = ty_strdup(to);
  j->sched_queue = NULL;
  return 0;
}

/* A time limit for messages: "N s", or UNLIMITED for 0 (none). */
static const char *limit_text(uint32_t secs, char buf[32]) {
  if (!secs) return "UNLIMITED";
  snprintf(buf, 32, "%u s", secs);
  return buf;
}

/* The limit a (secs, or the job's own +/- delta seconds) asks of j, into
 * *out_secs: TY_TIME_LIMIT_UNLIMITED stays so for the caller. Errors name
 * `job update`'s --time (scontrol's TimeLimit=), which the fields carry. */
static int time_asked(const ty_job *j, const ty_admin_req *a, uint32_t *out_secs, char *err,
                      size_t len) {
  if (!a->time_delta_s) {
    *out_secs = a->time_limit_s;
    return a->time_limit_s
               ? 0
               : ty_errf(err, len, TY_EINVAL, "--time: a time limit must be at least 1 s");
  }
  if (!j->spec.time_limit_s)
    return ty_errf(err, len, TY_EINVAL,
                   "--time %+lld s: job %s has no time limit to add to or take from (give one: "
                   "--time T)",
                   (long long)a->time_delta_s, label(j).s);
  int64_t to = (int64_t)j->spec.time_limit_s + a->time_delta_s;
  if (to < 1)
    return ty_errf(err, len, TY_EINVAL,
                   "--time %lld s: taking %lld s from job %s's time limit of %u s would leave "
                   "%lld s, and a time limit is at least 1 s (take less than %u s, or give the "
                   "new limit itself: --time T)",
                   (long long)a->time_delta_s, llabs((long long)a->time_delta_s), label(j).s,
                   j->spec.time_limit_s, (long long)to, j->spec.time_limit_s);
  if (to >= TY_TIME_LIMIT_UNLIMITED)
    return ty_errf(err, len, TY_EINVAL,
                   "--time +%lld s: adding it to job %s's time limit of %u s would make %lld s, "
                   "more than a limit can be (for none: --time UNLIMITED)",
                   (long long)a->time_delta_s, label(j).s, j->spec.time_limit_s, (long long)to);
  *out_secs = (uint32_t)to;
  return 0;
}

/* A running job's ranks enforce their limit on their workers: each must
 * take a new one (NodeInfo.sets_task_limit), or the limit the controller
 * shows would not be the one that ends the job. */
static int workers_take_limit(const ty_job *j, char *err, size_t len) {
  if (j->kill_sent)
    return ty_errf(err, len, TY_ESTATE, "job %s is being killed; its time limit stays", label(j).s);
  for (uint32_t s = 0; s < j->n_slots; s++) {
    const ty_cluster_node *n = j->slots[s].node;
    if (j->slots[s].live && n->conn && !n->sets_task_limit)
      return ty_errf(err, len, TY_ESTATE,
                     "job %s runs on node %s, whose trainworkerd is older than traind and cannot "
                     "change a running job's time limit (upgrade it, or change the limit while "
                     "the job is pending)",
                     label(j).s, n->name);
  }
  return 0;
}

static void on_limit_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *msg, bool final,
                            void *ud) {
  uint64_t *job_id = ud;
  if (!final) return;
  if (status != 0 && status != TY_ECLOSED)
    ty_warn("job %llu: SetTaskLimit to %s answered %s%s%s", (unsigned long long)*job_id,
            ty_rpc_peer(c), ty_strerror(status), msg && msg->message ? ": " : "",
            msg && msg->message ? msg->message : "");
  free(job_id);
}

/* The new limit to every worker that runs ranks of j (a rank not yet
 * launched takes it with its LaunchTask). */
static void send_limit(ty_controller *ctl, const ty_job *j) {
  ty_buf b;
  ty_buf_init(&b);
  if (ty__conv_set_limit_req(j->id, j->spec.time_limit_s, &b) == 0) {
    for (uint32_t s = 0; s < j->n_slots; s++) {
      ty_cluster_node *n = j->slots[s].node;
      if (!j->slots[s].live || !n->conn) continue;
      uint64_t *id = ty_xcalloc(1, sizeof(*id));
      *id = j->id;
      ty__node_call(ctl, n, TY_M_SET_TASK_LIMIT, &b, TY__TASK_CALL_TIMEOUT_MS, on_limit_answer, id);
    }
  }
  ty_buf_close(&b);
}

/* `job update --time` (scontrol's TimeLimit=, +T and -T too): within the
 * queue's max_time, above the warning; owners may lower it, operators
 * raise it. A running job's workers re-arm its ranks' limits, counted from
 * their start as before. */
static int job_time(ty_controller *ctl, const ty_reply *r, ty_job *j, const ty_admin_req *a,
                    char *why, size_t wlen, char *err, size_t len) {
  char buf[32];
  uint32_t secs = 0;
  bool running = j->state == TY_JOB_RUNNING;
  int rc = running || j->state == TY_JOB_PENDING
               ? 0
               : ty_errf(err, len, TY_ESTATE,
                         "job %s is %s; only a pending or running job's time limit can change",
                         label(j).s, ty_job_state_name(j->state));
  if (rc == 0 && running) rc = workers_take_limit(j, err, len);
  if (rc == 0) rc = time_asked(j, a, &secs, err, len);
  if (rc != 0) return rc;
  const ty_queue_info *q = ty__queue_find(ctl, j->spec.queue);
  /* UNLIMITED: the queue's max_time, or no limit (0, above any limit). */
  bool unlimited = secs == TY_TIME_LIMIT_UNLIMITED;
  if (unlimited) secs = q ? q->max_time_s : 0;
  if (j->spec.time_limit_s && (!secs || secs > j->spec.time_limit_s) && !r->operator)
    return ty_errf(err, len, TY_EPERM,
                   "time limit of job %s: permission denied: only "
                   "operators raise a time limit (%u s -> %s); its owner may lower it",
                   label(j).s, j->spec.time_limit_s, limit_text(secs, buf));
  if (!unlimited && q && q->max_time_s && secs > q->max_time_s)
    return ty_errf(err, len, TY_EINVAL, "time_limit_s: %u s exceeds queue %.64s's max_time of %u s",
                   secs, q->name, q->max_time_s);
  if (secs && j->spec.warn_signal && j->spec.warn_before_s >= secs)
    return ty_errf(err, len, TY_EINVAL,
                   "time_limit_s: %u s is not above the job's --signal warning (%u s before)", secs,
                   j->spec.warn_before_s);
  if (secs == j->spec.time_limit_s) return 0; /* no change: no event */
  char was[32];
  snprintf(why, wlen, "time limit %s -> %s%s", limit_text(j->spec.time_limit_s, was),
           limit_text(secs, buf), running ? " (running)" : "");
  j->spec.time_limit_s = secs;
  if (running) send_limit(ctl, j);
  return 0;
}

/* `job update --mem` (scontrol update MinMemoryNode): a pending job's
 * memory per node, within its queue's max_mem (0: all of the node, the
 * queue's max_mem or no limit) and what the largest node has, as at
 * submit. A running job's cgroups keep the limit they were made with. An
 * --exclusive job has its nodes' whole memory. A graph job whose plan was
 * searched at submit for its memory (plan_len > 0) may get more but not
 * less, which the plan may not fit. */
static int job_mem(ty_controller *ctl, const ty_reply *r, ty_job *j, uint64_t bytes, char *why,
                   size_t wlen, char *err, size_t len) {
  char was[32], to[32];
  int rc = need_pending(
      j, "given another memory limit (a running job keeps the one its cgroups were made with)", err,
      len);
  if (rc != 0) return rc;
  if (j->spec.exclusive)
    return ty_errf(err, len, TY_EINVAL,
                   "job %s runs --exclusive: it has all the memory of its nodes, there is no limit "
                   "to change",
                   label(j).s);
  const ty_queue_info *q = ty__queue_find(ctl, j->spec.queue);
  int src = TY_MEM_ASKED;
  if (q && (rc = ty__mem_resolve(ctl, q, bytes ? bytes : TY_MEM_ALL, "mem_per_node", &bytes, &src,
                                 err, len)) != 0)
    return rc;
  uint64_t cur = j->spec.mem_per_node;
  bool raise = cur && (!bytes || bytes > cur), lower = bytes && (!cur || bytes < cur);
  if (raise && !r->operator)
    return ty_errf(err, len, TY_EPERM,
                   "memory of job %s: permission denied: only operators raise a memory limit (%s "
                   "-> %s); its owner may lower it",
                   label(j).s, ty__mem_text(cur, was), ty__mem_text(bytes, to));
  if (lower && j->plan_len > 0)
    return ty_errf(err, len, TY_EINVAL,
                   "memory of job %s: its parallel plan was searched for %s per node at submit and "
                   "may not fit %s; submit it again with the lower --mem",
                   label(j).s, ty__mem_text(cur, was), ty__mem_text(bytes, to));
  ty_job_spec s = j->spec;
  s.mem_per_node = bytes, s.mem_source = src;
  char fit[TY_ERR_LEN];
  if (ty__sched_fits(ctl, &s, fit, sizeof fit) != 0)
    return ty_errf(err, len, TY_EINVAL, "memory of job %s: %s", label(j).s, fit);
  snprintf(why, wlen, "memory per node %s -> %s", ty__mem_text(cur, was), ty__mem_text(bytes, to));
  j->spec.mem_per_node = bytes, j->spec.mem_source = src;
  return 0;
}

/* `job update -N/--nodes N` (scontrol update NumNodes=): a pending job's
 * node count, by its owner or an operator, as Slurm lets a user resize a
 * pending job. It must still fit the cluster as at submit and hold its
 * -w/--nodelist nodes; a graph job's model and plan were checked for its
 * world at submit. */
static int job_nodes(ty_controller *ctl, ty_job *j, uint32_t nodes, char *why, size_t wlen,
                     char *err, size_t len) {
  int rc = need_pending(j, "resized (a running job keeps the nodes it was placed on)", err, len);
  if (rc != 0) return rc;
  if (nodes == 0 || nodes > TY_JOB_MAX_NODES)
    return ty_errf(err, len, TY_EINVAL, "nodes: %u is not a node count (1 to %d)", nodes,
                   TY_JOB_MAX_NODES);
  if (nodes < j->spec.n_req_nodes)
    return ty_errf(err, len, TY_EINVAL,
                   "nodes of job %s: %u is fewer than the %zu nodes it requires (-w/--nodelist "
                   "%s)",
                   label(j).s, nodes, j->spec.n_req_nodes, j->req_list ? j->req_list : "");
  if (j->spec.train_config_len > 0)
    return ty_errf(err, len, TY_EINVAL,
                   "nodes of job %s: a graph job's model and plan were checked for its %u "
                   "node%s at submit; submit it again with -N %u",
                   label(j).s, j->spec.nodes, j->spec.nodes == 1 ? "" : "s", nodes);
  ty_job_spec s = j->spec;
  s.nodes = nodes;
  char fit[TY_ERR_LEN];
  if (ty__sched_fits(ctl, &s, fit, sizeof fit) != 0)
    return ty_errf(err, len, TY_EINVAL, "nodes of job %s: %s", label(j).s, fit);
  snprintf(why, wlen, "nodes %u -> %u", j->spec.nodes, nodes);
  j->spec.nodes = nodes;
  return 0;
}

/* "tasks per node 1 -> 4, CPUs per task 2 -> 1": what a layout change
 * changed, from the job's spec before (o) and after (s). */
static void layout_why(const ty_job_spec *o, const ty_job_spec *s, char *why, size_t wlen) {
  const struct {
    const char *what;
    uint32_t was, now;
  } f[] = {{"tasks per node", o->tasks_per_node, s->tasks_per_node},
           {"CPUs per task", o->cpus_per_task, s->cpus_per_task},
           {"GPUs per node", o->gpus_per_node, s->gpus_per_node}};
  size_t at = 0;
  why[0] = '\0';
  for (size_t i = 0; i < TY_ARRAY_LEN(f) && at < wlen; i++)
    if (f[i].was != f[i].now)
      at += (size_t)snprintf(why + at, wlen - at, "%s%s %u -> %u", at ? ", " : "", f[i].what,
                             f[i].was, f[i].now);
  if (!why[0]) snprintf(why, wlen, "task layout unchanged");
}

/* `job update --ntasks-per-node N --cpus-per-task N --gres gpu:N`
 * (scontrol update NumTasks=, MinCPUsNode=, Gres=): a pending command
 * job's task layout, by its owner or an operator, the three checked
 * together so that trading tasks for CPUs is one change. Submit's limits
 * (ty_job_check_layout) and its "can never run" check (ty__sched_fits: the
 * largest node, the -w/--nodelist nodes, -N/--nodes) apply as at submit.
 * A running job's ranks were launched with theirs; a graph job's model and
 * plan were checked for its ranks at submit. */
static int job_layout(ty_controller *ctl, ty_job *j, const ty_admin_req *a, char *why, size_t wlen,
                      char *err, size_t len) {
  if (j->state != TY_JOB_PENDING)
    return ty_errf(err, len, TY_ESTATE,
                   "job %s is %s; only a pending job's tasks per node, CPUs per task and GPUs "
                   "per node can change (a running job keeps the ones it was launched with)",
                   label(j).s, ty_job_state_name(j->state));
  if (j->spec.train_config_len > 0)
    return ty_errf(err, len, TY_EINVAL,
                   "layout of job %s: a graph job's model and plan were checked for its %u "
                   "task%s per node at submit; submit it again with the new layout",
                   label(j).s, j->spec.tasks_per_node, j->spec.tasks_per_node == 1 ? "" : "s");
  ty_job_spec s = j->spec;
  if (a->tasks_per_node) s.tasks_per_node = a->tasks_per_node;
  if (a->cpus_per_task) s.cpus_per_task = a->cpus_per_task;
  if (a->has_gpus) s.gpus_per_node = a->gpus_per_node;
  char fit[TY_ERR_LEN];
  if (ty_job_check_layout(&s, fit, sizeof fit) != 0 ||
      ty__sched_fits(ctl, &s, fit, sizeof fit) != 0)
    return ty_errf(err, len, TY_EINVAL, "layout of job %s: %s", label(j).s, fit);
  layout_why(&j->spec, &s, why, wlen);
  j->spec.tasks_per_node = s.tasks_per_node;
  j->spec.cpus_per_task = s.cpus_per_task;
  j->spec.gpus_per_node = s.gpus_per_node;
  return 0;
}

/* `job update --array-throttle N` (scontrol's ArrayTaskThrottle): the
 * array's %N, on each live element, which the scheduler reads at its next
 * pass. Its owner may set any value, as Slurm lets them: the throttle
 * holds their own elements back, it takes nothing from anyone. Running
 * elements above a lowered limit run on; no more start until under it. */
static int job_throttle(ty_job *j, const ty_admin_req *a, char *why, size_t wlen, char *err,
                        size_t len) {
  uint32_t n = a->array_max_running;
  if (!j->array_id)
    return ty_errf(err, len, TY_EINVAL,
                   "job %s is not an array: --array-throttle is an array's %%N (--array=1-9%%2)",
                   label(j).s);
  /* One limit for the array: an element's own would not be one. */
  if (a->has_task || a->job_id != j->array_id)
    return ty_errf(err, len, TY_EINVAL,
                   "job %s: --array-throttle is the whole array's; give the array's id, %llu",
                   label(j).s, (unsigned long long)j->array_id);
  if (n > TY_ARRAY_MAX_TASKS)
    return ty_errf(err, len, TY_EINVAL, "array_max_running: %u is above %d", n, TY_ARRAY_MAX_TASKS);
  int rc = not_ended(j, err, len);
  if (rc != 0) return rc;
  char was[16], to[16];
  snprintf(was, sizeof was, "%u", j->spec.array.max_running);
  snprintf(to, sizeof to, "%u", n);
  snprintf(why, wlen, "array throttle %s -> %s", j->spec.array.max_running ? was : "none",
           n ? to : "none");
  j->spec.array.max_running = n;
  return 0;
}

/* `job update --name` (scontrol's JobName=): a job not ended yet, as
 * Slurm's; a running one keeps the SLURM_JOB_NAME it started with. A
 * singleton waiting on the old name no longer waits on this job. */
static int job_rename(ty_job *j, const char *to, char *why, size_t wlen, char *err, size_t len) {
  if (!to[0]) return ty_errf(err, len, TY_EINVAL, "name: must not be empty");
  int rc = ty_job_name_check("name", to, err, len);
  if (rc == 0) rc = not_ended(j, err, len);
  if (rc != 0) return rc;
  snprintf(why, wlen, "name \"%.64s\" -> \"%.64s\"", j->spec.name ? j->spec.name : "", to);
  free(j->spec.name);
  j->spec.name = ty_strdup(to);
  return 0;
}

/* A job's conditions as sbatch writes them, or "none". */
static void deps_text(const ty_job_spec *s, char *out, size_t len) {
  ty_buf b;
  ty_buf_init(&b);
  if (!s->n_deps || ty_dep_format(s->deps, s->n_deps, s->deps_any, &b) != 0 ||
      ty_buf_append(&b, "", 1) != 0)
    snprintf(out, len, "none");
  else
    snprintf(out, len, "%s", (const char *)b.data);
  ty_buf_close(&b);
}

/* Targets must be older than j (ids grow with submission), which keeps
 * the graph free of cycles: j itself and a later job that exists are
 * named as such here; one that does not, ty__deps_resolve says is not
 * found. */
static int deps_older(ty_controller *ctl, const ty_job *j, const ty_dep *d, size_t n, char *err,
                      size_t len) {
  for (size_t i = 0; i < n; i++) {
    uint64_t id = d[i].job.id;
    if (d[i].kind == TY_DEP_SINGLETON || id < j->id) continue;
    if (id == j->id || id == j->array_id)
      return ty_errf(err, len, TY_EINVAL, "dependency: job %s cannot wait for itself", label(j).s);
    if (ty__job_find(ctl, id))
      return ty_errf(err, len, TY_EINVAL,
                     "dependency: job %llu is not older than job %s; a job waits only for jobs "
                     "submitted before it (so that no two wait for each other)",
                     (unsigned long long)id, label(j).s);
  }
  return 0;
}

/* `job update --dependency` (scontrol's Dependency=): a pending job's
 * conditions replaced, "" none; resolved as at submit (targets must
 * exist), then watched. The old targets' waiter lists may still name the
 * job: waking it only rechecks the conditions it has now. */
static int job_dependency(ty_controller *ctl, ty_job *j, const char *text, char *why, size_t wlen,
                          char *err, size_t len) {
  int rc = need_pending(j, "given another dependency", err, len);
  ty_dep *deps = NULL;
  size_t n = 0;
  bool any = false;
  if (rc == 0 && text[0]) rc = ty_dep_parse("dependency", text, &deps, &n, &any, err, len);
  if (rc == 0) rc = deps_older(ctl, j, deps, n, err, len);
  if (rc != 0) return free(deps), rc;
  char was[256], to[256];
  deps_text(&j->spec, was, sizeof was);
  ty_job_spec old = j->spec;
  j->spec.deps = deps, j->spec.n_deps = n, j->spec.deps_any = any;
  if ((rc = ty__deps_resolve(ctl, j, false, err, len)) != 0) {
    j->spec.deps = old.deps, j->spec.n_deps = old.n_deps, j->spec.deps_any = old.deps_any;
    ty__deps_resolve(ctl, j, true, NULL, 0); /* they resolved before */
    return free(deps), rc;
  }
  free(old.deps);
  if (!n) { /* resolve stops early when there is none: no reason is left */
    free(j->dep_reason);
    j->dep_reason = NULL;
    ty__job_dirty(ctl, j);
  }
  ty__deps_watch(ctl, j);
  deps_text(&j->spec, to, sizeof to);
  snprintf(why, wlen, "dependency %.200s -> %.200s", was, to);
  return 0;
}

static int job_requeue(ty_controller *ctl, ty_job *j, const char *actor, ty_txn *t, char *why,
                       size_t wlen, char *err, size_t len) {
  if (j->spec.no_requeue) /* Slurm's scontrol requeue: "presently disabled" */
    return ty_errf(err, len, TY_ESTATE,
                   "job %s was submitted with --no-requeue and is never requeued (submit it "
                   "again to run it again)",
                   label(j).s);
  if (ty__job_never_requeued(j))
    return ty_errf(err, len, TY_ESTATE,
                   "job %s is an rlaunch job and is never requeued: its rlaunch saw the run end "
                   "(run rlaunch again; rlaunch --detach jobs can be requeued)",
                   label(j).s);
  if (j->state == TY_JOB_PENDING)
    return ty_errf(err, len, TY_ESTATE, "job %s is PENDING already", label(j).s);
  if (j->state == TY_JOB_RUNNING && (j->kill_sent || j->requeue_asked))
    return ty_errf(err, len, TY_ESTATE, "job %s is being ended already", label(j).s);
  if (j->state == TY_JOB_RUNNING) {
    j->requeue_asked = true;
    snprintf(why, wlen, "requeue (its ranks are killed, then it is pending again) asked");
    return 0;
  }
  if (!ty_job_state_terminal(j->state) || j->live_ranks)
    return ty_errf(err, len, TY_ESTATE, "job %s is %s and cannot be requeued now", label(j).s,
                   ty_job_state_name(j->state));
  why[0] = '\0'; /* the transition is the record */
  ty__job_revive(ctl, j, actor, t);
  return 0;
}

/* Owners may lower their job's priority (Slurm's nice); raising it is for
 * operators, or everyone would run at the top. */
static int priority_change(const ty_reply *r, ty_job *j, int32_t to, char *why, size_t wlen,
                           char *err, size_t len) {
  int rc = not_ended(j, err, len);
  if (rc != 0) return rc;
  if (to < TY_JOB_PRIORITY_MIN || to > TY_JOB_PRIORITY_MAX)
    return ty_errf(err, len, TY_EINVAL, "priority: %d is outside %d..%d", to, TY_JOB_PRIORITY_MIN,
                   TY_JOB_PRIORITY_MAX);
  if (to > j->spec.priority && !r->operator)
    return ty_errf(err, len, TY_EPERM,
                   "priority of job %s: permission denied: only operators "
                   "raise a priority (%d -> %d); its owner may lower it",
                   label(j).s, j->spec.priority, to);
  snprintf(why, wlen, "priority %d -> %d", j->spec.priority, to);
  j->spec.priority = to;
  return 0;
}

/* The first node holding a live rank of j that is not connected now, or NULL. */
static const ty_cluster_node *unreachable_node(const ty_job *j) {
  for (uint32_t s = 0; s < j->n_slots; s++)
    if (j->slots[s].live && !j->slots[s].node->conn) return j->slots[s].node;
  return NULL;
}

/* scancel --signal: sig to every running task of j, nothing else changed.
 * All or none: a signal is not queued for a node that is away (unlike a
 * kill, it would arrive at a moment nobody chose), so one of j's nodes not
 * connected refuses it whole (state_known, before every change). */
static int job_signal(ty_controller *ctl, ty_job *j, int32_t sig, bool batch_only, char *why,
                      size_t wlen, char *err, size_t len) {
  if (sig < 1 || sig > 64)
    return ty_errf(err, len, TY_EINVAL, "signal: %d is not a signal number (1-64)", sig);
  if (j->state != TY_JOB_RUNNING || j->kill_sent)
    return ty_errf(err, len, TY_ESTATE, "job %s is %s; only a running job takes a signal",
                   label(j).s, j->kill_sent ? "being killed" : ty_job_state_name(j->state));
  ty__job_signal(ctl, j, sig, batch_only);
  snprintf(why, wlen, "signal %d sent%s", sig, batch_only ? " to the batch script" : "");
  return 0;
}

/* Holds pending j: an operator's hold (JobHeldAdmin, held_by) is released
 * only by an operator, its owner's (JobHeldUser) by either, as Slurm's. An
 * operator's hold on a job its owner holds makes it the operator's. */
static int job_hold(ty_controller *ctl, const ty_reply *r, ty_job *j, char *why, size_t wlen,
                    char *err, size_t len) {
  int rc = need_pending(j, "held", err, len);
  if (rc != 0) return rc;
  if (j->held && (j->held_by || !r->operator))
    return ty_errf(err, len, TY_ESTATE, "job %s is already held%s%s%s", label(j).s,
                   j->held_by ? " by an operator (" : "", j->held_by ? j->held_by : "",
                   j->held_by ? ")" : "");
  snprintf(why, wlen, j->held ? "held by an operator instead of its owner" : "held");
  j->held = true;
  free(j->held_by);
  j->held_by = r->operator? ty_strdup(r->who.user) : NULL;
  ty__sched_list_held(j);
  ty__watch_touch(ctl, j, true);
  return 0;
}

static int job_release(ty_reply *r, ty_job *j, char *why, size_t wlen, char *err, size_t len) {
  if (!j->held) return ty_errf(err, len, TY_ESTATE, "job %s is not held", label(j).s);
  int rc = need_pending(j, "released", err, len); /* an ended one keeps its hold for a requeue */
  if (rc != 0) return rc;
  if (j->held_by && !r->operator) {
    r->refusal = "not_operator";
    return ty_errf(err, len, TY_EPERM,
                   "release job %s: permission denied: held by an operator (%s); only an "
                   "operator may release it (%s is not one)",
                   label(j).s, j->held_by, r->who.user);
  }
  j->held = false;
  free(j->held_by);
  j->held_by = NULL;
  snprintf(why, wlen, "released");
  return 0;
}

/* Whether action may change a running job. The others (hold, release,
 * move, dependency, nodes, layout, throttle) apply to pending jobs only
 * and refuse a running one themselves, node away or not: waiting for the
 * node would not help. */
static bool changes_running(const char *action) {
  static const char *const running[] = {"time",       "mem",     "priority", "signal",
                                        "checkpoint", "requeue", "name"};
  for (size_t i = 0; i < sizeof running / sizeof *running; i++)
    if (!strcmp(action, running[i])) return true;
  return false;
}

/* A RUNNING job with ranks on a node not connected now (its worker not
 * registered since traind started, or lost since) may have ended there:
 * the worker reports the end when it registers, with the time it ended.
 * A change accepted meanwhile would be taken as one to a running job
 * (which it may no longer be), and its event would come before that
 * earlier end in the job's history. So every change waits until the node
 * is back, as a signal does (a cancel does not: it is the job's end, and
 * reaches the node when it registers; nor do the changes that only a
 * pending job takes, changes_running); a node that does not come back
 * goes DOWN after the node timeout and the job is requeued or ends
 * NODE_FAIL. Unlike slurmctld, which enforces time limits itself and
 * accepts changes to the jobs of a node not responding, here a running
 * job's workers hold its limit. */
int ty__admin_state_known(const ty_job *j, const ty_admin_req *a, char *err, size_t len) {
  const ty_cluster_node *away = j->state == TY_JOB_RUNNING ? unreachable_node(j) : NULL;
  if (!away || !changes_running(a->action)) return 0;
  char what[96];
  if (!strcmp(a->action, "signal"))
    snprintf(what, sizeof what, "signal %d was not sent to any task (send it again", a->signal);
  else
    snprintf(what, sizeof what, "nothing was changed (%.32s: try again", a->action);
  return ty_errf(err, len, TY_ESTATE,
                 "job %s: node %s, which runs its tasks, %s, so whether the job still runs is "
                 "not known; %s once the node is back)",
                 label(j).s, away->name,
                 away->state == TY_NODE_UNKNOWN ? "has not registered since traind started"
                                                : "is not connected now",
                 what);
}

/* Applies the change to j; *why says what changed (an event's reason; ""
 * when the change recorded its own). */
int ty__admin_job_change(ty_controller *ctl, ty_reply *r, ty_job *j, const ty_admin_req *a,
                         const char *actor, ty_txn *t, char *why, size_t wlen, char *err,
                         size_t len) {
  int rc = ty__admin_state_known(j, a, err, len);
  if (rc != 0) return rc;
  if (!strcmp(a->action, "hold")) {
    rc = job_hold(ctl, r, j, why, wlen, err, len);
  } else if (!strcmp(a->action, "release")) {
    rc = job_release(r, j, why, wlen, err, len);
  } else if (!strcmp(a->action, "priority")) {
    rc = priority_change(r, j, a->priority, why, wlen, err, len);
  } else if (!strcmp(a->action, "move")) {
    rc = ty__queue_admit(ctl, r, a->queue, "move jobs", err, len);
    if (rc == 0) rc = job_move(ctl, j, a->queue, why, wlen, err, len);
  } else if (!strcmp(a->action, "checkpoint")) {
    if (j->state != TY_JOB_RUNNING)
      return ty_errf(err, len, TY_ESTATE, "job %s is %s; only running jobs checkpoint", label(j).s,
                     ty_job_state_name(j->state));
    if (j->spec.kind == TY_JOB_KIND_GRAPH) /* a recorded time would be none it has */
      return ty_errf(err, len, TY_EINVAL,
                     "job %s is a graph job: its ranks report the checkpoints they write "
                     "(trainctl checkpoint ls %s); job checkpoint records those of command jobs",
                     label(j).s, label(j).s);
    j->last_ckpt_ms = ty_now_ms();
    snprintf(why, wlen, "checkpoint reported");
  } else if (!strcmp(a->action, "time")) {
    rc = job_time(ctl, r, j, a, why, wlen, err, len);
  } else if (!strcmp(a->action, "mem")) {
    rc = job_mem(ctl, r, j, a->mem_per_node, why, wlen, err, len);
  } else if (!strcmp(a->action, "requeue")) {
    rc = job_requeue(ctl, j, actor, t, why, wlen, err, len);
  } else if (!strcmp(a->action, "signal")) {
    rc = job_signal(ctl, j, a->signal, a->batch_only, why, wlen, err, len);
  } else if (!strcmp(a->action, "throttle")) {
    rc = job_throttle(j, a, why, wlen, err, len);
  } else if (!strcmp(a->action, "name")) {
    rc = job_rename(j, a->name, why, wlen, err, len);
  } else if (!strcmp(a->action, "dependency")) {
    rc = job_dependency(ctl, j, a->dependency, why, wlen, err, len);
  } else if (!strcmp(a->action, "nodes")) {
    rc = job_nodes(ctl, j, a->nodes, why, wlen, err, len);
  } else if (!strcmp(a->action, "layout")) {
    rc = job_layout(ctl, j, a, why, wlen, err, len);
  } else {
    rc = ty_errf(err, len, TY_EINVAL,
                 "action: \"%.32s\" is not hold, release, priority, move, checkpoint, time, "
                 "mem, nodes, layout, requeue, signal, throttle, name or dependency",
                 a->action);
  }
  return rc;
}

/* Writes j after a change: its stored spec when the spec changed, the
 * columns that changed, and the event saying what (why[0]) and who. */
void ty__admin_record(ty_controller *ctl, ty_job *j, const char *why, const char *actor,
                      const char *user, ty_txn *t) {
  size_t len = 0;
  uint8_t *blob = NULL;
  if (ty__conv_respec(j->blob, j->blob_len, &j->spec, &blob, &len) == 0) {
    free(j->blob);
    j->blob = blob;
    j->blob_len = len;
  } else {
    free(blob);
  }
  ty__job_save(ctl, j, t);
  if (!why[0]) return;
  char reason[TY_ERR_LEN];
  snprintf(reason, sizeof(reason), "%s by %.64s", why, user);
  ty__job_note(j, reason, actor, t);
}
