/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Answers for people: why a job is pending (ty_sched_explain_job), and
 * whether a request can ever run on this cluster (ty_sched_check_fits) or
 * could start on what is free now (ty_sched_fits_free).
 *
 * Explaining runs a whole pass, so the answer is exactly what the scheduler
 * would decide now: the job's rank among pending jobs, its priority split
 * into the weighted factors, its owner's fair-share standing, the nodes that
 * would hold a member of its gang after the jobs ahead of it were placed, up
 * to TY_SCHED_EXPLAIN_NODES nodes that would not and why, and an estimated
 * start from the same timeline the reservation uses (running jobs end at
 * their limits; the reserved job keeps its nodes for its own limit). An
 * estimate says what it rests on, is marked "not before" when blocked jobs
 * ahead may start first, and is absent ("unknown") rather than wrong: for a
 * held job or a full queue, or when it would rest on a job without a time
 * limit. A job waiting for preempted jobs starts within the grace period;
 * one the scheduler will preempt for once a lower-tier job has run
 * preempt.min_run, sooner than limits free enough, starts at that moment
 * (the same rule as the pass's preemption; its reason says so).
 * An exclusive job's nodes that are not wholly free name the jobs on them;
 * a node an exclusive job holds names that job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/sched_internal.h"

/* Appends id to "job 12" / "jobs 12, 14" in buf (k ids so far). */
static void add_job(char *buf, size_t len, uint32_t k, uint64_t id) {
  size_t at = strlen(buf);
  if (k == 1 && at + 1 < len) { /* "job 12" becomes "jobs 12" */
    memmove(buf + 4, buf + 3, at - 2);
    buf[3] = 's';
    at++;
  }
  if (at < len) snprintf(buf + at, len - at, k ? ", %llu" : "job %llu", (unsigned long long)id);
}

uint32_t ty__node_jobs(const ty__pass *p, uint32_t i, char *buf, size_t len) {
  uint32_t k = 0;
  if (len) buf[0] = '\0';
  for (size_t r = 0; r < p->in->n_running; r++) {
    const ty_sched_running *rj = &p->in->running[r];
    for (uint32_t s = 0; s < rj->n_slots; s++)
      if (rj->slots[s].node == i) {
        add_job(buf, len, k++, rj->id);
        break;
      }
  }
  for (size_t q = 0; q < p->out->n_placements; q++) {
    const ty_sched_placement *pl = &p->out->placements[q];
    for (uint32_t s = 0; s < pl->n_slots; s++)
      if (pl->slots[s].node == i) {
        add_job(buf, len, k++, pl->job_id);
        break;
      }
  }
  return k;
}

/* The exclusive job holding node i whole, or 0. */
static uint64_t exclusive_holder(const ty__pass *p, uint32_t i) {
  for (size_t r = 0; r < p->in->n_running; r++) {
    const ty_sched_running *rj = &p->in->running[r];
    for (uint32_t s = 0; rj->exclusive && s < rj->n_slots; s++)
      if (rj->slots[s].node == i) return rj->id;
  }
  for (size_t q = 0; q < p->out->n_placements; q++) {
    const ty_sched_placement *pl = &p->out->placements[q];
    if (!p->in->jobs[p->placed_ji[q]].exclusive) continue;
    for (uint32_t s = 0; s < pl->n_slots; s++)
      if (pl->slots[s].node == i) return pl->job_id;
  }
  return 0;
}

void ty__node_why(const ty__pass *p, uint32_t i, const ty__need *n, char *out, size_t len) {
  const ty_sched_node *nd = &p->in->nodes[i];
  ty__res f = p->idx.free[i];
  uint64_t holder = nd->schedulable && !p->claimed[i] ? exclusive_holder(p, i) : 0;
  char jobs[64];
  if (n->filter && n->filter->mark[i] == 0)
    snprintf(out, len, "excluded (-x/--exclude)");
  else if (!nd->schedulable)
    snprintf(out, len, "not schedulable (down or draining)");
  else if (p->claimed[i])
    snprintf(out, len, "promised to a preempting job");
  else if (holder)
    snprintf(out, len, "allocated whole to exclusive job %llu", (unsigned long long)holder);
  else if (n->whole && ty__res_fits(&f, n) && ty__node_jobs(p, i, jobs, sizeof(jobs)))
    snprintf(out, len, "not a whole free node: has %.64s", jobs);
  else if (n->whole && ty__res_fits(&f, n))
    snprintf(out, len, "not a whole free node");
  else if (n->gpus > nd->gpus_total)
    snprintf(out, len, "has %u GPUs, %u needed", nd->gpus_total, n->gpus);
  else if (ty__popcount(f.gpus) < n->gpus)
    snprintf(out, len, "%d of %u GPUs free, %u needed", ty__popcount(f.gpus), nd->gpus_total,
             n->gpus);
  else if (f.cpus < n->cpus)
    snprintf(out, len, "%u of %u CPUs free, %u needed", f.cpus, nd->cpus_total, n->cpus);
  else
    snprintf(out, len, "%llu MiB of memory free, %llu MiB needed",
             (unsigned long long)(f.mem >> 20), (unsigned long long)(n->mem >> 20));
}

/* A filtered job's required nodes that do not fit come first in the list;
 * its excluded nodes are listed as excluded, and count as not fitting. */
static void explain_node(const ty__pass *p, uint32_t i, const ty__need *n, ty_sched_explain *ex) {
  ty__res f = p->idx.free[i];
  bool allowed = !n->filter || n->filter->mark[i] != 0;
  if (allowed && p->in->nodes[i].schedulable && !p->claimed[i] &&
      ty__fits_on(&p->in->nodes[i], &f, n)) {
    ex->nodes_fit++;
    return;
  }
  if (ex->n_nodes == TY_SCHED_EXPLAIN_NODES) return;
  ex->nodes[ex->n_nodes].node = i;
  ty__node_why(p, i, n, ex->nodes[ex->n_nodes].why, sizeof(ex->nodes[0].why));
  if (n->filter && n->filter->mark[i] == 2) {
    size_t l = strlen(ex->nodes[ex->n_nodes].why);
    snprintf(ex->nodes[ex->n_nodes].why + l, sizeof(ex->nodes[0].why) - l, " (required)");
  }
  ex->n_nodes++;
}

static void explain_nodes(ty__pass *p, size_t ji, ty_sched_explain *ex) {
  const ty_sched_job *j = &p->in->jobs[ji];
  ty__need n;
  if (ty__job_need(p, ji, &n) != 0) n = ty__need_of(j);
  ex->nodes_needed = ty__job_want(j);
  for (uint32_t k = 0; n.filter && k < n.filter->n_req; k++)
    explain_node(p, n.filter->req[k], &n, ex);
  for (uint32_t i = 0; i < p->in->n_nodes; i++)
    if (!n.filter || n.filter->mark[i] != 2) explain_node(p, i, &n, ex);
}

/* Blocked jobs ahead of the one at `position` that the estimate does not
 * model: they may take nodes first. The reservation's holder is modelled;
 * held and queue-limited jobs are not competing for nodes now. */
static uint32_t unmodelled_ahead(const ty__pass *p, uint32_t position) {
  uint32_t ahead = position ? position - 1 : 0;
  for (size_t k = 0; k < p->out->n_pending && k + 1 < position; k++) {
    const ty_sched_pending *o = &p->out->pending[k];
    bool competes = o->wait == TY_SCHED_WAIT_RESOURCES || o->wait == TY_SCHED_WAIT_PRIORITY ||
                    o->wait == TY_SCHED_WAIT_PREEMPTING;
    if (o->reserved || !competes) ahead--;
  }
  return ahead;
}

/* Appends "; not before: N jobs ahead may start first" at w of the note
 * (cut short, as every note, when it would not fit). */
static void note_ahead(ty_sched_explain *ex, int w, uint32_t ahead) {
  if (w <= 0 || (size_t)w >= sizeof(ex->est_note)) return;
  size_t room = sizeof(ex->est_note) - (size_t)w;
  int n = snprintf(ex->est_note + w, room, "; not before: %u job%s ahead may start first", ahead,
                   ahead == 1 ? "" : "s");
  if (n < 0) ex->est_note[w] = '\0';
}

/* A job waiting for resources that the scheduler will make room for by
 * preemption once a lower-tier job has run preempt.min_run, sooner than
 * running jobs' limits (`before`) free enough: the estimate is that
 * moment, and the reason says so. False when preemption is no sooner. */
static bool min_run_estimate(ty__pass *p, size_t ji, const ty_sched_pending *pd, int64_t before,
                             ty_sched_explain *ex) {
  int64_t t;
  uint64_t ripe;
  if (!ty__preempt_estimate(p, ji, &t, &ripe) || t >= before) return false;
  ex->est_kind = TY_SCHED_EST_PREEMPTION;
  ex->est_start_ms = t;
  snprintf(ex->reason, sizeof(ex->reason),
           "Resources: can preempt once job %llu has run preempt.min_run (%u s), in %lld s",
           (unsigned long long)ripe, p->cfg.min_run_s, (long long)((t - p->now + 999) / 1000));
  int w = snprintf(ex->est_note, sizeof(ex->est_note),
                   "preemption once job %llu has run preempt.min_run (%u s); its victims may "
                   "take preempt.grace (%u s) to exit",
                   (unsigned long long)ripe, p->cfg.min_run_s, p->cfg.preempt_grace_s);
  uint32_t ahead = unmodelled_ahead(p, pd->position);
  ex->est_lower_bound = ahead > 0;
  if (ahead) note_ahead(ex, w, ahead);
  return true;
}

/* When running jobs' time limits (and the reservation) free what the job
 * needs: the estimate of a job waiting for resources or priority. */
static void limits_estimate(ty__pass *p, size_t ji, const ty_sched_pending *pd,
                            ty_sched_explain *ex) {
  int64_t t = 0;
  uint64_t unlimited = 0;
  bool found = ty__estimate(p, ji, &t, &unlimited);
  if (pd->wait == TY_SCHED_WAIT_RESOURCES &&
      min_run_estimate(p, ji, pd, found && !unlimited ? t : INT64_MAX, ex))
    return;
  if (!found) {
    snprintf(ex->est_note, sizeof(ex->est_note),
             "none: not enough nodes even when every running job has ended");
    return;
  }
  if (unlimited) {
    snprintf(ex->est_note, sizeof(ex->est_note),
             "none: it depends on job %llu, which has no time limit",
             (unsigned long long)unlimited);
    return;
  }
  ex->est_kind = TY_SCHED_EST_LIMITS;
  ex->est_start_ms = t;
  uint32_t ahead = unmodelled_ahead(p, pd->position);
  ex->est_lower_bound = ahead > 0;
  int w = snprintf(ex->est_note, sizeof(ex->est_note), "from running jobs' time limits");
  if (p->resv && p->resv_job != p->in->jobs[ji].id && w > 0 && (size_t)w < sizeof(ex->est_note))
    w += snprintf(ex->est_note + w, sizeof(ex->est_note) - (size_t)w, " and job %llu's reservation",
                  (unsigned long long)p->resv_job);
  if (ahead) note_ahead(ex, w, ahead);
}

/* A job not to start before its begin time (sbatch --begin): the later of
 * that time and when running jobs' limits free its resources, as squeue
 * --start and sbatch --test-only give it; none when those give none. */
static void begin_estimate(ty__pass *p, size_t ji, const ty_sched_pending *pd,
                           ty_sched_explain *ex) {
  int64_t begin = p->in->jobs[ji].begin_ms;
  limits_estimate(p, ji, pd, ex);
  if (ex->est_kind != TY_SCHED_EST_LIMITS || ex->est_start_ms >= begin) return;
  ex->est_start_ms = begin;
  int w = snprintf(ex->est_note, sizeof(ex->est_note), "its --begin time");
  if (ex->est_lower_bound) note_ahead(ex, w, unmodelled_ahead(p, pd->position));
}

static void estimate(ty__pass *p, size_t ji, const ty_sched_pending *pd, ty_sched_explain *ex) {
  switch (pd->wait) {
  case TY_SCHED_WAIT_DEPENDENCY: /* which conditions: "Dependency: afterok:12(RUNNING)" */
    snprintf(ex->est_note, sizeof(ex->est_note), "none while it waits for: %.*s",
             (int)(sizeof(ex->est_note) - sizeof("none while it waits for: ")), pd->reason);
    return;
  case TY_SCHED_WAIT_HELD:
  case TY_SCHED_WAIT_QUEUE_PAUSED:
  case TY_SCHED_WAIT_QUEUE_LIMIT:
  case TY_SCHED_WAIT_NO_NODES:
  case TY_SCHED_WAIT_ARRAY_LIMIT:
  case TY_SCHED_WAIT_REQ_NODE:
  case TY_SCHED_WAIT_QUEUE_TIME_LIMIT:
  case TY_SCHED_WAIT_QUEUE_MEM_LIMIT:
    snprintf(ex->est_note, sizeof(ex->est_note), "none while it waits for: %s",
             ty_sched_wait_name(pd->wait));
    return;
  case TY_SCHED_WAIT_PREEMPTING:
    ex->est_kind = TY_SCHED_EST_PREEMPTION;
    ex->est_start_ms = pd->est_start_ms;
    snprintf(ex->est_note, sizeof(ex->est_note),
             "when the jobs preempted for it exit (grace period %u s)", p->cfg.preempt_grace_s);
    return;
  case TY_SCHED_WAIT_BEGIN_TIME:
    begin_estimate(p, ji, pd, ex);
    return;
  default:
    limits_estimate(p, ji, pd, ex);
    return;
  }
}

/* The nodes of job id's placement in out (sbatch --test-only names them). */
static void start_nodes(const ty_sched_output *out, uint64_t id, ty_sched_explain *ex) {
  for (size_t k = 0; k < out->n_placements; k++) {
    const ty_sched_placement *pl = &out->placements[k];
    if (pl->job_id != id) continue;
    ex->n_start_nodes = pl->n_slots;
    for (uint32_t s = 0; s < pl->n_slots && s < TY_SCHED_EXPLAIN_NODES; s++)
      ex->start_nodes[s] = pl->slots[s].node;
    return;
  }
}

static void fill(ty__pass *p, size_t ji, const ty_sched_output *out, ty_sched_explain *ex) {
  const ty_sched_job *j = &p->in->jobs[ji];
  const ty__prio *pr = &p->prio[ji];
  ex->priority = pr->total;
  ex->f_tier = pr->tier, ex->f_age = pr->age, ex->f_fairshare = pr->fairshare;
  ex->f_size = pr->size, ex->f_priority = pr->prio;
  ex->fairshare = pr->fs_factor;
  ex->user_usage = pr->usage, ex->user_share = pr->share, ex->usage_norm = pr->usage_norm;
  ex->n_pending = (uint32_t)out->n_pending;
  ex->reserved_job = p->resv ? p->resv_job : 0;
  const ty_sched_pending *pd = NULL;
  for (size_t k = 0; k < out->n_pending && !pd; k++)
    if (out->pending[k].job_id == j->id) pd = &out->pending[k];
  if (!pd) {
    snprintf(ex->reason, sizeof(ex->reason), "would start now");
    ex->est_start_ms = p->now;
    ex->est_kind = TY_SCHED_EST_NOW;
    start_nodes(out, j->id, ex);
    return;
  }
  ex->pending = true;
  ex->position = pd->position;
  ex->wait = pd->wait;
  snprintf(ex->reason, sizeof(ex->reason), "%s", pd->reason);
  explain_nodes(p, ji, ex);
  estimate(p, ji, pd, ex);
}

int ty_sched_explain_job(const ty_sched_input *in, uint64_t job_id, ty_sched_explain *out) {
  memset(out, 0, sizeof(*out));
  out->job_id = job_id;
  size_t ji = SIZE_MAX;
  for (size_t i = 0; i < in->n_jobs && ji == SIZE_MAX; i++)
    if (in->jobs[i].id == job_id) ji = i;
  if (ji == SIZE_MAX) return TY_ENOTFOUND;
  ty__pass p;
  ty_sched_output o;
  int rc = ty__pass_run(&p, in, &o);
  if (rc == 0) fill(&p, ji, &o, out);
  ty__pass_close(&p);
  ty_sched_output_close(&o);
  return rc;
}

/* ---- the cluster's shape ---------------------------------------------------- */

static int refuse(char *reason, size_t len, const char *fmt, unsigned long long a,
                  unsigned long long b) {
  if (reason && len) snprintf(reason, len, fmt, a, b);
  return TY_EINVAL;
}

/* Bytes as --mem and `trainctl nodes` write them: "100G", "23.5G", "512M". */
static void mem_text(unsigned long long b, char *out, size_t len) {
  static const char units[] = "KMGT";
  double v = (double)b / 1024;
  int u = 0;
  while (v >= 1024 && u < 3)
    v /= 1024, u++;
  if (v == (double)(unsigned long long)v)
    snprintf(out, len, "%llu%c", (unsigned long long)v, units[u]);
  else
    snprintf(out, len, "%.1f%c", v, units[u]);
}

/* More memory than any node has: in --mem's units, the bytes after (a
 * raw 107374182400 is what the user must otherwise divide out). */
static int refuse_mem(unsigned long long mem, unsigned long long max, char *reason, size_t len) {
  char want[32], have[32];
  mem_text(mem, want, sizeof want);
  mem_text(max, have, sizeof have);
  if (reason && len)
    snprintf(reason, len,
             "resources.mem_per_node is %s (%llu bytes) but the largest node has %s (%llu)", want,
             mem, have, max);
  return TY_EINVAL;
}

/* Too many CPUs for any node. sbatch -n 8 finds the nodes itself; here
 * the job names their count, so a job of several tasks is told how. */
static int refuse_cpus(const ty_sched_job *job, unsigned long long cpus, unsigned long long max,
                       char *reason, size_t len) {
  if (reason && len)
    snprintf(reason, len,
             "resources: tasks_per_node * cpus_per_task is %llu CPUs but the largest node has "
             "%llu%s",
             cpus, max,
             job->tasks_per_node > 1 ? " (give -N/--nodes to spread the tasks over nodes)" : "");
  return TY_EINVAL;
}

/* Whether node nd could ever hold one slot of n. */
static bool can_hold(const ty_sched_node *nd, const ty__need *n) {
  uint32_t g = nd->gpus_total > TY_SCHED_MAX_GPUS ? TY_SCHED_MAX_GPUS : nd->gpus_total;
  return nd->cpus_total >= n->cpus && g >= n->gpus && nd->mem_total >= n->mem;
}

/* The per-node mark of job's lists (0 excluded, 1 may, 2 required) into
 * mark[n_nodes], or the first name that is no node's, with its list. */
static int mark_lists(const ty_sched_job *job, const ty_sched_node *nodes, size_t n_nodes,
                      uint8_t *mark, char *reason, size_t len) {
  ty__named *x = ty__names_index(nodes, n_nodes);
  if (!x) return TY_ENOMEM;
  memset(mark, 1, n_nodes);
  int rc = 0;
  for (int req = 0; req < 2 && rc == 0; req++) {
    const char *const *names = req ? job->req_nodes : job->exc_nodes;
    uint32_t n = req ? job->n_req_nodes : job->n_exc_nodes;
    for (uint32_t k = 0; k < n && rc == 0; k++) {
      int64_t i = ty__names_find(x, n_nodes, names[k]);
      if (i >= 0)
        mark[i] = req ? 2 : 0;
      else {
        if (reason && len)
          snprintf(reason, len,
                   "resources.%s: Invalid node name specified: %.64s is not a node of this "
                   "cluster (%s)",
                   req ? "required_nodes" : "excluded_nodes", names[k],
                   req ? "-w/--nodelist" : "-x/--exclude");
        rc = TY_EINVAL;
      }
    }
  }
  free(x);
  return rc;
}

/* check_fits for a job with -w/-x: every name known, each required node
 * able to hold one slot, and enough nodes it may use. */
static int check_lists(const ty_sched_job *job, const ty__need *n, const ty_sched_node *nodes,
                       size_t n_nodes, char *reason, size_t len) {
  uint8_t *mark = malloc(n_nodes ? n_nodes : 1);
  if (!mark) return TY_ENOMEM;
  int rc = mark_lists(job, nodes, n_nodes, mark, reason, len);
  size_t can_host = 0;
  for (size_t i = 0; rc == 0 && i < n_nodes; i++) {
    if (mark[i] == 2 && !can_hold(&nodes[i], n)) {
      if (reason && len)
        snprintf(reason, len,
                 "resources.required_nodes: node %.64s cannot hold one slot of the job (it has "
                 "%u CPUs, %u GPUs)",
                 nodes[i].name, nodes[i].cpus_total, nodes[i].gpus_total);
      rc = TY_EINVAL;
    }
    can_host += mark[i] && can_hold(&nodes[i], n);
  }
  free(mark);
  if (rc == 0 && can_host < ty__job_want(job))
    rc = refuse(reason, len,
                "resources.nodes is %llu but only %llu of the nodes it may use (less "
                "-x/--exclude) can hold one slot each",
                ty__job_want(job), can_host);
  return rc;
}

/* Checks the request against the cluster's shape: each per-node resource
 * against the largest node, then the number of nodes that could each hold one
 * slot against `nodes`. Every known node counts, UP or not, because a DOWN
 * node may come back. With no nodes known there is nothing to check against,
 * but names in -w/-x lists, which must each be a known node's. */
int ty_sched_check_fits(const ty_sched_job *job, const ty_sched_node *nodes, size_t n_nodes,
                        char *reason, size_t reason_len) {
  if (reason && reason_len) reason[0] = '\0';
  if (job->nodes == 0) {
    if (reason && reason_len) snprintf(reason, reason_len, "resources.nodes: 0 is not allowed");
    return TY_EINVAL;
  }
  if (job->gpus_per_node > TY_SCHED_MAX_GPUS)
    return refuse(reason, reason_len,
                  "resources.gpus_per_node is %llu but at most %llu are supported",
                  job->gpus_per_node, TY_SCHED_MAX_GPUS);
  if (n_nodes == 0 && ty__has_filter(job)) {
    const char *name = job->n_req_nodes ? job->req_nodes[0] : job->exc_nodes[0];
    if (reason && reason_len)
      snprintf(reason, reason_len,
               "resources.%s: Invalid node name specified: %.64s is not a node of this cluster "
               "(no node is registered)",
               job->n_req_nodes ? "required_nodes" : "excluded_nodes", name);
    return TY_EINVAL;
  }
  if (n_nodes == 0) return 0;
  ty__need n = ty__need_of(job);
  uint32_t max_cpus = 0, max_gpus = 0;
  uint64_t max_mem = 0;
  size_t can_host = 0;
  for (size_t i = 0; i < n_nodes; i++) {
    const ty_sched_node *nd = &nodes[i];
    uint32_t g = nd->gpus_total > TY_SCHED_MAX_GPUS ? TY_SCHED_MAX_GPUS : nd->gpus_total;
    if (nd->cpus_total > max_cpus) max_cpus = nd->cpus_total;
    if (g > max_gpus) max_gpus = g;
    if (nd->mem_total > max_mem) max_mem = nd->mem_total;
    if (nd->cpus_total >= n.cpus && g >= n.gpus && nd->mem_total >= n.mem) can_host++;
  }
  if (n.gpus > max_gpus)
    return refuse(reason, reason_len,
                  "resources.gpus_per_node is %llu but the largest node has %llu GPUs", n.gpus,
                  max_gpus);
  if (n.cpus > max_cpus) return refuse_cpus(job, n.cpus, max_cpus, reason, reason_len);
  if (n.mem > max_mem) return refuse_mem(n.mem, max_mem, reason, reason_len);
  if (ty__has_filter(job)) return check_lists(job, &n, nodes, n_nodes, reason, reason_len);
  if (can_host < job->nodes)
    return refuse(reason, reason_len,
                  "resources.nodes is %llu but only %llu nodes can hold one slot each", job->nodes,
                  can_host);
  return 0;
}

/* fits_free for a job with -w/-x: every required node fits, and enough
 * nodes it may use do. */
static bool fits_free_lists(const ty_sched_job *job, const ty__need *n, const ty_sched_node *nodes,
                            size_t n_nodes) {
  uint8_t *mark = malloc(n_nodes ? n_nodes : 1);
  if (!mark) return true; /* "may fit": the caller then runs a pass */
  bool ok = mark_lists(job, nodes, n_nodes, mark, NULL, 0) == 0;
  uint64_t have = 0;
  for (size_t i = 0; ok && i < n_nodes; i++) {
    const ty_sched_node *nd = &nodes[i];
    ty__res f = {.cpus = nd->cpus_free, .gpus = nd->gpus_free, .mem = nd->mem_free};
    bool fit = mark[i] && nd->schedulable && ty__fits_on(nd, &f, n);
    if (mark[i] == 2 && !fit) ok = false;
    have += fit;
  }
  free(mark);
  return ok && have >= ty__job_want(job);
}

bool ty_sched_fits_free(const ty_sched_job *job, const ty_sched_node *nodes, size_t n_nodes) {
  ty__need n = ty__need_of(job);
  if (ty__has_filter(job)) return fits_free_lists(job, &n, nodes, n_nodes);
  uint64_t want = job->nodes ? job->nodes : 1, have = 0;
  for (size_t i = 0; i < n_nodes && have < want; i++) {
    const ty_sched_node *nd = &nodes[i];
    ty__res f = {.cpus = nd->cpus_free, .gpus = nd->gpus_free, .mem = nd->mem_free};
    have += nd->schedulable && ty__fits_on(nd, &f, &n);
  }
  return have >= want;
}
