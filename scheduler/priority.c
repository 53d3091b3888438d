/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Multifactor priority and fair share.
 *
 * Fair share is a two-level tree like Slurm's: queues get shares in
 * proportion to their weights; within a queue, the users who have usage or
 * jobs split the queue's share equally. A user's factor is
 * 2^(-usage_norm / share_norm) (Slurm's classic formula): 1 for no usage,
 * 0.5 at exactly the fair share, towards 0 above it. Usage is decayed by the
 * caller (ty_sched_decay) so old usage fades with the configured half-life.
 *
 * The table of (queue, user) accounts is an open-addressing hash built once
 * per pass: passes see up to 100,000 jobs but a few hundred accounts. In
 * front of it, a small table keyed by the strings' addresses answers the
 * jobs of callers that share one string per user and queue (the simulator,
 * the controller: daemon/sched_pass.c) without hashing or comparing text.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "scheduler/sched_internal.h"

typedef struct acct {
  const char *user; /* borrowed; "" for a job without a user */
  int qi;
  double usage;
  uint64_t gpus; /* GPUs its running jobs and this pass's placements hold */
} acct;

/* A remembered (user, queue) -> account answer, by the strings' addresses. */
typedef struct memo {
  const char *user, *queue;
  int qi;
  uint32_t acct; /* index + 1; 0 = empty */
} memo;

#define MEMO_BITS 11
#define MEMO_SLOTS (1u << MEMO_BITS)

struct ty__fs {
  memo memo[MEMO_SLOTS];
  acct *accts; /* dense, in first-seen order */
  size_t n_acct, cap_acct;
  uint32_t *slots;    /* open addressing: account index + 1, 0 = empty */
  size_t cap;         /* power of two, at least twice n_acct */
  uint32_t *job_acct; /* per pending job of the input */
  uint32_t *run_acct; /* per running job */
  double total_usage;
  double *qshare;   /* normalised share per queue; [n_queues] is "no queue" */
  uint32_t *qusers; /* accounts per queue */
  size_t nq;
  int32_t max_tier;
  ty__sizes sizes; /* the cluster's, for the size factor */
};

void ty_sched_config_default(ty_sched_config *c) {
  *c = (ty_sched_config){.w_tier = 100000,
                         .w_age = 1000,
                         .w_fairshare = 10000,
                         .w_size = 1000,
                         .w_priority = 10000,
                         .age_max_s = 7 * 86400,
                         .halflife_s = 7 * 86400,
                         .cpu_usage_weight = 0.0625,
                         .preemption = true,
                         .backfill = true,
                         .min_run_s = 600,
                         .preempt_grace_s = 60,
                         .unknown_runtime_s = 86400,
                         .backfill_depth = 0};
}

double ty_sched_decay(double usage, double elapsed_s, double halflife_s) {
  if (halflife_s <= 0 || elapsed_s <= 0) return usage;
  return usage * exp2(-elapsed_s / halflife_s);
}

int ty__queue_index(const ty_sched_input *in, const char *name) {
  if (!name) return -1;
  for (size_t i = 0; i < in->n_queues; i++)
    if (in->queues[i].name && strcmp(in->queues[i].name, name) == 0) return (int)i;
  return -1;
}

static uint64_t hash_acct(const char *user, int qi) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)(qi + 2);
  for (const unsigned char *p = (const unsigned char *)user; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  return h;
}

/* The hash slot of (user, qi): the account's, or the empty one where it
 * belongs. */
static uint32_t *lookup(const ty__fs *fs, const char *user, int qi) {
  uint64_t h = hash_acct(user, qi);
  for (size_t k = 0;; k++) {
    uint32_t *slot = &fs->slots[(h + k) & (fs->cap - 1)];
    if (*slot == 0) return slot;
    const acct *a = &fs->accts[*slot - 1];
    if (a->qi == qi && strcmp(a->user, user) == 0) return slot;
  }
}

/* Doubles the hash when it is half full (accounts are few; jobs many). The
 * dense accounts do not move, so indexes handed out stay valid. */
static int grow(ty__fs *fs) {
  size_t cap = fs->cap * 2;
  uint32_t *slots = calloc(cap, sizeof(*slots));
  acct *accts = realloc(fs->accts, cap / 2 * sizeof(*accts));
  if (!slots || !accts) {
    free(slots);
    if (accts) fs->accts = accts;
    return TY_ENOMEM;
  }
  free(fs->slots);
  fs->slots = slots, fs->cap = cap, fs->accts = accts, fs->cap_acct = cap / 2;
  for (size_t i = 0; i < fs->n_acct; i++)
    *lookup(fs, fs->accts[i].user, fs->accts[i].qi) = (uint32_t)i + 1;
  return 0;
}

/* Adds usage to (user, qi), creating the account; its index in *out_acct. */
static int add_acct(ty__fs *fs, const char *user, int qi, double usage, uint32_t *out_acct) {
  const char *u = user ? user : "";
  uint32_t *slot = lookup(fs, u, qi);
  if (*slot == 0) {
    if (2 * (fs->n_acct + 1) > fs->cap) {
      if (grow(fs) != 0) return TY_ENOMEM;
      slot = lookup(fs, u, qi);
    }
    fs->accts[fs->n_acct] = (acct){.user = u, .qi = qi};
    *slot = (uint32_t)++fs->n_acct;
    fs->qusers[qi < 0 ? fs->nq - 1 : (size_t)qi]++;
  }
  fs->accts[*slot - 1].usage += usage;
  fs->total_usage += usage;
  if (out_acct) *out_acct = *slot - 1;
  return 0;
}

static void set_shares(ty__fs *fs, const ty_sched_input *in) {
  double sum = 0;
  for (size_t q = 0; q < in->n_queues; q++) {
    double s = in->queues[q].share > 0 ? in->queues[q].share : 1;
    fs->qshare[q] = s;
    sum += s;
  }
  /* Jobs of no known queue share one account group; with queues given they
   * get no share at all (the controller never sends such jobs). */
  if (in->n_queues == 0) {
    fs->qshare[fs->nq - 1] = 1;
    sum += 1;
  }
  for (size_t q = 0; q < in->n_queues; q++)
    if (in->queues[q].tier > fs->max_tier) fs->max_tier = in->queues[q].tier;
  for (size_t q = 0; q < fs->nq; q++)
    fs->qshare[q] /= sum;
}

/* Fibonacci hashing of the two addresses: strings a fixed stride apart (a
 * table of names) spread over the slots. */
static memo *memo_slot(ty__fs *fs, const char *user, const char *queue) {
  uint64_t k = (uint64_t)(uintptr_t)user ^ ((uint64_t)(uintptr_t)queue * 31);
  return &fs->memo[(k * 0x9e3779b97f4a7c15ull) >> (64 - MEMO_BITS)];
}

/* The account of (user, queue) with its queue index in *out_qi: from the
 * memo when both strings were seen before at the same addresses (the
 * controller hands the pass one copy of each name), else looked up. */
static int job_acct(ty__fs *fs, const ty_sched_input *in, const char *user, const char *queue,
                    int *out_qi, uint32_t *out_acct) {
  memo *m = memo_slot(fs, user, queue);
  if (m->acct && m->user == user && m->queue == queue) {
    *out_qi = m->qi;
    *out_acct = m->acct - 1;
    return 0;
  }
  *out_qi = ty__queue_index(in, queue);
  int rc = add_acct(fs, user, *out_qi, 0, out_acct);
  if (rc == 0) *m = (memo){.user = user, .queue = queue, .qi = *out_qi, .acct = *out_acct + 1};
  return rc;
}

/* Every usage row, pending job and running job gets its account; the jobs'
 * queue indexes go to job_qi and run_qi when given. */
static int add_accounts(ty__fs *fs, const ty_sched_input *in, int *job_qi, int *run_qi) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < in->n_usage; i++)
    rc = add_acct(fs, in->usage[i].user, ty__queue_index(in, in->usage[i].queue),
                  in->usage[i].usage > 0 ? in->usage[i].usage : 0, NULL);
  for (size_t i = 0; rc == 0 && i < in->n_jobs; i++) {
    int qi;
    rc = job_acct(fs, in, in->jobs[i].user, in->jobs[i].queue, &qi, &fs->job_acct[i]);
    if (job_qi) job_qi[i] = qi;
  }
  for (size_t i = 0; rc == 0 && i < in->n_running; i++) {
    const ty_sched_running *rj = &in->running[i];
    int qi;
    rc = job_acct(fs, in, rj->user, rj->queue, &qi, &fs->run_acct[i]);
    if (run_qi) run_qi[i] = qi;
  }
  return rc;
}

/* The cluster's sizes from the nodes (a caller without a node index). */
static ty__sizes node_sizes(const ty_sched_input *in) {
  ty__sizes z = {0, 0, 0, 0};
  for (size_t i = 0; i < in->n_nodes; i++) {
    z.gpus += in->nodes[i].gpus_total;
    z.cpus += in->nodes[i].cpus_total;
    if (in->nodes[i].gpus_total > z.big_gpus) z.big_gpus = in->nodes[i].gpus_total;
    if (in->nodes[i].cpus_total > z.big_cpus) z.big_cpus = in->nodes[i].cpus_total;
  }
  return z;
}

int ty__fs_create(const ty_sched_input *in, int *job_qi, int *run_qi, ty__fs **out) {
  ty__sizes z = node_sizes(in);
  return ty__fs_create_sized(in, &z, job_qi, run_qi, out);
}

int ty__fs_create_sized(const ty_sched_input *in, const ty__sizes *sizes, int *job_qi, int *run_qi,
                        ty__fs **out) {
  ty__fs *fs = calloc(1, sizeof(*fs));
  if (!fs) return TY_ENOMEM;
  fs->sizes = *sizes;
  fs->cap = 64;
  fs->cap_acct = fs->cap / 2;
  fs->nq = in->n_queues + 1;
  fs->slots = calloc(fs->cap, sizeof(*fs->slots));
  fs->accts = malloc(fs->cap_acct * sizeof(*fs->accts));
  fs->job_acct = malloc((in->n_jobs ? in->n_jobs : 1) * sizeof(*fs->job_acct));
  fs->run_acct = malloc((in->n_running ? in->n_running : 1) * sizeof(*fs->run_acct));
  fs->qshare = calloc(fs->nq, sizeof(*fs->qshare));
  fs->qusers = calloc(fs->nq, sizeof(*fs->qusers));
  int rc = TY_ENOMEM;
  if (fs->slots && fs->accts && fs->job_acct && fs->run_acct && fs->qshare && fs->qusers) {
    set_shares(fs, in);
    rc = add_accounts(fs, in, job_qi, run_qi);
  }
  if (rc != 0) {
    ty__fs_destroy(fs);
    return rc;
  }
  *out = fs;
  return 0;
}

void ty__fs_destroy(ty__fs *fs) {
  if (!fs) return;
  free(fs->slots);
  free(fs->accts);
  free(fs->job_acct);
  free(fs->run_acct);
  free(fs->qshare);
  free(fs->qusers);
  free(fs);
}

/* Share, usage and factor of account a (NULL: an account with no usage in
 * queue qi). */
static void account(const ty__fs *fs, const acct *a, int qi, double *share, double *usage,
                    double *usage_norm, double *factor) {
  size_t q = qi < 0 ? fs->nq - 1 : (size_t)qi;
  uint32_t users = fs->qusers[q] ? fs->qusers[q] : 1;
  *share = fs->qshare[q] / users;
  *usage = a ? a->usage : 0;
  *usage_norm = fs->total_usage > 0 ? *usage / fs->total_usage : 0;
  *factor = *share > 0 ? exp2(-*usage_norm / *share) : 0;
}

uint32_t ty__fs_job_acct(const ty__fs *fs, size_t ji) {
  return fs->job_acct[ji];
}
uint32_t ty__fs_run_acct(const ty__fs *fs, size_t ri) {
  return fs->run_acct[ri];
}
uint64_t ty__fs_acct_gpus(const ty__fs *fs, uint32_t a) {
  return fs->accts[a].gpus;
}
void ty__fs_charge_gpus(ty__fs *fs, uint32_t a, uint64_t gpus) {
  fs->accts[a].gpus += gpus;
}

void ty__priority(const ty_sched_input *in, const ty_sched_config *cfg, const ty__fs *fs, size_t ji,
                  int qi, int64_t now, ty__prio *out) {
  const ty_sched_job *j = &in->jobs[ji];
  memset(out, 0, sizeof(*out));
  int32_t max_tier = fs->max_tier;
  int32_t tier = qi >= 0 ? in->queues[qi].tier : 0;
  if (max_tier > 0 && tier > 0) out->tier = cfg->w_tier * (double)tier / max_tier;
  double age_s = (double)(now - j->submit_time_ms) / 1000.0;
  if (age_s > 0 && cfg->age_max_s)
    out->age = cfg->w_age * (age_s >= cfg->age_max_s ? 1.0 : age_s / cfg->age_max_s);
  account(fs, &fs->accts[fs->job_acct[ji]], qi, &out->share, &out->usage, &out->usage_norm,
          &out->fs_factor);
  out->fairshare = cfg->w_fairshare * out->fs_factor;
  uint64_t cl_gpus = fs->sizes.gpus, cl_cpus = fs->sizes.cpus;
  ty__need n = ty__need_of(j);
  if (n.whole) { /* it will hold whole nodes: sized as the largest */
    if (fs->sizes.big_gpus > n.gpus) n.gpus = fs->sizes.big_gpus;
    if (fs->sizes.big_cpus > n.cpus) n.cpus = fs->sizes.big_cpus;
  }
  uint32_t nodes = j->nodes ? j->nodes : 1;
  double size = cl_gpus ? (double)n.gpus * nodes / (double)cl_gpus
                        : (cl_cpus ? (double)n.cpus * nodes / (double)cl_cpus : 0);
  out->size = cfg->w_size * (size > 1 ? 1 : size);
  int32_t p = j->priority < -1000 ? -1000 : j->priority > 1000 ? 1000 : j->priority;
  out->prio = cfg->w_priority * (double)(p + 1000) / 2000.0;
  out->total = out->tier + out->age + out->fairshare + out->size + out->prio;
}

int ty_sched_shares(const ty_sched_input *in, ty_sched_share **out, size_t *out_n) {
  ty__fs *fs;
  int rc = ty__fs_create(in, NULL, NULL, &fs);
  if (rc != 0) return rc;
  ty_sched_share *rows = calloc(in->n_queues + fs->n_acct + 1, sizeof(*rows));
  if (!rows) {
    ty__fs_destroy(fs);
    return TY_ENOMEM;
  }
  size_t n = 0;
  for (size_t q = 0; q < in->n_queues; q++) {
    double usage = 0;
    for (size_t k = 0; k < fs->n_acct; k++)
      if (fs->accts[k].qi == (int)q) usage += fs->accts[k].usage;
    double norm = fs->total_usage > 0 ? usage / fs->total_usage : 0;
    rows[n++] = (ty_sched_share){.queue = in->queues[q].name,
                                 .share = fs->qshare[q],
                                 .usage = usage,
                                 .usage_norm = norm,
                                 .factor = exp2(-norm / fs->qshare[q])};
  }
  for (size_t q = 0; q < in->n_queues; q++)
    for (size_t k = 0; k < fs->cap; k++) {
      const acct *a = fs->slots[k] ? &fs->accts[fs->slots[k] - 1] : NULL;
      if (!a || a->qi != (int)q) continue;
      ty_sched_share *r = &rows[n++];
      r->queue = in->queues[q].name;
      r->user = a->user;
      account(fs, a, a->qi, &r->share, &r->usage, &r->usage_norm, &r->factor);
    }
  ty__fs_destroy(fs);
  *out = rows;
  *out_n = n;
  return 0;
}
