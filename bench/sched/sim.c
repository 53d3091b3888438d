/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sched_sim: replays a synthetic trace through scheduler/ (ty_sched_pass)
 * and reports placements per second, p50/p99 time of a scheduling pass, GPU
 * utilisation and mean wait, for the multifactor policy (priority, fair
 * share, topology, reservation + EASY backfill) and a strict FIFO baseline on
 * the same trace.
 *
 * The trace (deterministic per --seed): Poisson arrivals sized so the
 * offered GPU-time equals the cluster's capacity over the arrival window
 * (--load scales it); job sizes from 1 GPU to 32 whole nodes, mostly small;
 * time limits from 10 minutes to 24 hours and actual run times 30-100% of
 * the limit; 200 users in three queues (tiers 1/0/0, shares 3/2/1).
 * Nodes: --gpus per node in two NVLink islands, 8 CPUs per GPU, 32 nodes
 * per switch. The controller's tick is modelled as one pass every --tick
 * simulated seconds; fair-share usage decays with a one-day half-life.
 * Preemption is off (no queue is preemptible): what is measured is the
 * placement policy.
 *
 * Only the ty_sched_pass call is timed, in thread CPU time (so other load
 * on the machine does not inflate it); building the input is the
 * controller's business and is excluded. GPU utilisation is measured while
 * jobs arrive (the drain at the end, with its long tail, is left out);
 * mean wait is submit to start over all jobs; makespan is first submit to
 * last end.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base/base.h"
#include "scheduler/scheduler.h"

#define N_USERS 200
#define N_QUEUES 3
#define SWITCH_SIZE 32

typedef struct trace_job {
  ty_sched_job j;     /* what the scheduler sees */
  int64_t runtime_ms; /* actual run time (<= time limit) */
  uint32_t gpus;      /* total */
  uint32_t user;      /* index into user_names */
} trace_job;

typedef struct opts {
  uint32_t jobs, nodes, gpus, tick_s;
  double load;
  uint64_t seed;
  uint32_t user_gpus; /* max_gpus_per_user of every queue; 0 = none */
  const char *policy; /* run only this policy ("multifactor", "fifo"); NULL = both */
} opts;

static const char *const queue_names[N_QUEUES] = {"prod", "research", "batch"};
static char user_names[N_USERS][16];

/* ---- trace ------------------------------------------------------------------- */

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return *s;
}

static double unif(uint64_t *s) {
  return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

/* GPUs per job: mostly single-node jobs, a tail of gangs. */
static void job_shape(uint64_t *s, uint32_t gpn, uint32_t *nodes, uint32_t *gpus_per_node) {
  double u = unif(s);
  *nodes = 1;
  if (u < 0.35)
    *gpus_per_node = 1;
  else if (u < 0.50)
    *gpus_per_node = 2 <= gpn ? 2 : gpn;
  else if (u < 0.65)
    *gpus_per_node = 4 <= gpn ? 4 : gpn;
  else if (u < 0.82)
    *gpus_per_node = gpn;
  else {
    *gpus_per_node = gpn;
    *nodes = u < 0.92 ? 2 : u < 0.97 ? 4 : u < 0.99 ? 8 : 32;
  }
}

static trace_job *make_trace(const opts *o, int64_t *out_span_ms) {
  uint64_t s = o->seed * 2654435761u + 1;
  trace_job *t = calloc(o->jobs, sizeof(*t));
  double gpu_ms = 0;
  for (uint32_t i = 0; i < o->jobs; i++) {
    trace_job *tj = &t[i];
    uint32_t nodes, gpn;
    job_shape(&s, o->gpus, &nodes, &gpn);
    /* Limits log-uniform in [10 min, 24 h]; runs use 30-100% of theirs. */
    double limit_s = 600.0 * pow(144.0, unif(&s));
    tj->runtime_ms = (int64_t)(limit_s * (0.3 + 0.7 * unif(&s)) * 1000);
    uint32_t user = (uint32_t)(rnd(&s) % N_USERS);
    tj->gpus = nodes * gpn;
    tj->user = user;
    tj->j = (ty_sched_job){.id = i + 1,
                           .queue = queue_names[user % N_QUEUES],
                           .user = user_names[user],
                           .priority = (int32_t)(rnd(&s) % 201) - 100,
                           .nodes = nodes,
                           .tasks_per_node = gpn,
                           .cpus_per_task = 8,
                           .gpus_per_node = gpn,
                           .time_limit_s = (uint32_t)limit_s};
    gpu_ms += (double)tj->gpus * (double)tj->runtime_ms;
  }
  /* Poisson arrivals over the window that offers `load` x capacity. */
  double window_ms = gpu_ms / ((double)o->nodes * o->gpus * o->load);
  double mean_gap = window_ms / o->jobs, at = 0;
  for (uint32_t i = 0; i < o->jobs; i++) {
    at += -log(1.0 - unif(&s)) * mean_gap;
    t[i].j.submit_time_ms = (int64_t)at;
  }
  *out_span_ms = (int64_t)at;
  return t;
}

/* ---- cluster and run state ---------------------------------------------------------- */

typedef struct run_job {
  uint32_t ti; /* trace index */
  int64_t end_ms;
  ty_sched_slot *slots;
} run_job;

typedef struct sim {
  const opts *o;
  trace_job *trace;
  ty_sched_node *nodes;
  ty_sched_job *pending;
  size_t n_pending;
  ty_sched_running *running;
  run_job *rjobs;
  size_t n_running;
  double usage[N_USERS];
  ty_sched_usage usage_in[N_USERS];
  ty_sched_queue queues[N_QUEUES];
  ty_sched_config cfg;
  double *pass_ms;
  size_t n_pass, cap_pass;
  uint64_t placements;
  uint64_t digest; /* FNV-1a over every placement, in pass order */
  double wait_ms_sum;
  double busy_gpu_ms; /* of every job, run to its end */
  double window_busy; /* GPU-ms in use while jobs still arrive */
  uint64_t busy_gpus; /* GPUs in use now */
  int64_t first_ms, last_end_ms, last_submit_ms;
  double frag_sum;
} sim;

static void sim_init(sim *m, const opts *o, trace_job *trace, bool fifo) {
  memset(m, 0, sizeof(*m));
  m->o = o;
  m->trace = trace;
  m->nodes = calloc(o->nodes, sizeof(*m->nodes));
  for (uint32_t i = 0; i < o->nodes; i++) {
    ty_sched_node *n = &m->nodes[i];
    n->name = "node";
    n->schedulable = true;
    n->cpus_total = n->cpus_free = 8 * o->gpus;
    n->gpus_total = o->gpus;
    n->gpus_free = o->gpus >= 64 ? UINT64_MAX : (UINT64_C(1) << o->gpus) - 1;
    n->mem_total = n->mem_free = 1ull << 40;
    n->switch_id = i / SWITCH_SIZE;
    for (uint32_t g = 0; g < o->gpus; g++)
      n->gpu_island[g] = (uint8_t)(g * 2 / o->gpus);
  }
  m->pending = calloc(o->jobs, sizeof(*m->pending));
  m->running = calloc(o->jobs, sizeof(*m->running));
  m->rjobs = calloc(o->jobs, sizeof(*m->rjobs));
  m->cap_pass = 4 * (size_t)o->jobs + 1024;
  m->pass_ms = calloc(m->cap_pass, sizeof(*m->pass_ms));
  m->queues[0] = (ty_sched_queue){.name = "prod", .tier = 1, .share = 3};
  m->queues[1] = (ty_sched_queue){.name = "research", .tier = 0, .share = 2};
  m->queues[2] = (ty_sched_queue){.name = "batch", .tier = 0, .share = 1};
  for (int q = 0; q < N_QUEUES; q++)
    m->queues[q].max_gpus_per_user = o->user_gpus;
  m->digest = 0xcbf29ce484222325ull;
  ty_sched_config_default(&m->cfg);
  m->cfg.halflife_s = 86400;
  m->cfg.preemption = false;
  m->cfg.fifo = fifo;
  for (uint32_t u = 0; u < N_USERS; u++)
    m->usage_in[u] = (ty_sched_usage){user_names[u], queue_names[u % N_QUEUES], 0};
}

static void sim_close(sim *m) {
  for (size_t r = 0; r < m->n_running; r++)
    free(m->rjobs[r].slots);
  free(m->nodes);
  free(m->pending);
  free(m->running);
  free(m->rjobs);
  free(m->pass_ms);
}

static void finish_due(sim *m, int64_t now) {
  for (size_t r = 0; r < m->n_running;) {
    if (m->rjobs[r].end_ms > now) {
      r++;
      continue;
    }
    const ty_sched_running *rj = &m->running[r];
    for (uint32_t s = 0; s < rj->n_slots; s++) {
      ty_sched_node *n = &m->nodes[rj->slots[s].node];
      n->gpus_free |= rj->slots[s].gpus;
      n->cpus_free += rj->slots[s].cpus;
      n->mem_free += rj->slots[s].mem;
    }
    if (m->rjobs[r].end_ms > m->last_end_ms) m->last_end_ms = m->rjobs[r].end_ms;
    m->busy_gpus -= m->trace[m->rjobs[r].ti].gpus;
    free(m->rjobs[r].slots);
    m->n_running--;
    m->running[r] = m->running[m->n_running];
    m->rjobs[r] = m->rjobs[m->n_running];
    m->running[r].slots = m->rjobs[r].slots;
  }
}

static void charge_usage(sim *m, double dt_s) {
  for (uint32_t u = 0; u < N_USERS; u++)
    m->usage[u] = ty_sched_decay(m->usage[u], dt_s, m->cfg.halflife_s);
  for (size_t r = 0; r < m->n_running; r++) {
    const trace_job *tj = &m->trace[m->rjobs[r].ti];
    m->usage[tj->user] += tj->gpus * dt_s;
  }
  for (uint32_t u = 0; u < N_USERS; u++)
    m->usage_in[u].usage = m->usage[u];
}

/* Folds one placement (time, job, each slot's node and GPUs) into the
 * digest, so two builds of the scheduler can be shown to place a trace
 * identically. */
static void digest_placement(sim *m, const ty_sched_placement *p, int64_t now) {
  uint64_t words[3] = {(uint64_t)now, p->job_id, p->backfilled};
  for (int w = 0; w < 3 + 2 * (int)p->n_slots; w++) {
    uint64_t v = w < 3         ? words[w]
                 : (w - 3) % 2 ? p->slots[(w - 3) / 2].gpus
                               : p->slots[(w - 3) / 2].node;
    for (int b = 0; b < 8; b++)
      m->digest = (m->digest ^ ((v >> (8 * b)) & 0xff)) * 0x100000001b3ull;
  }
}

static void start_job(sim *m, const ty_sched_placement *p, int64_t now) {
  digest_placement(m, p, now);
  uint32_t ti = (uint32_t)(p->job_id - 1);
  const trace_job *tj = &m->trace[ti];
  ty_sched_slot *slots = malloc(p->n_slots * sizeof(*slots));
  memcpy(slots, p->slots, p->n_slots * sizeof(*slots));
  for (uint32_t s = 0; s < p->n_slots; s++) {
    ty_sched_node *n = &m->nodes[slots[s].node];
    n->gpus_free &= ~slots[s].gpus;
    n->cpus_free -= slots[s].cpus;
    n->mem_free -= slots[s].mem;
  }
  size_t r = m->n_running++;
  m->rjobs[r] = (run_job){ti, now + tj->runtime_ms, slots};
  m->running[r] = (ty_sched_running){.id = tj->j.id,
                                     .queue = tj->j.queue,
                                     .user = tj->j.user,
                                     .priority = tj->j.priority,
                                     .start_time_ms = now,
                                     .time_limit_s = tj->j.time_limit_s,
                                     .slots = slots,
                                     .n_slots = p->n_slots};
  m->placements++;
  m->wait_ms_sum += (double)(now - tj->j.submit_time_ms);
  m->busy_gpu_ms += (double)tj->gpus * (double)tj->runtime_ms;
  m->busy_gpus += tj->gpus;
}

/* Removes started jobs from the pending array (order does not matter). */
static void drop_started(sim *m, const ty_sched_output *out) {
  uint8_t *gone = calloc(m->o->jobs + 1, 1);
  for (size_t k = 0; k < out->n_placements; k++)
    gone[out->placements[k].job_id] = 1;
  size_t w = 0;
  for (size_t i = 0; i < m->n_pending; i++)
    if (!gone[m->pending[i].id]) m->pending[w++] = m->pending[i];
  m->n_pending = w;
  free(gone);
}

static double now_ms_wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The pass's own CPU time: robust to other processes sharing the machine. */
static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int one_pass(sim *m, int64_t now) {
  ty_sched_input in = {.jobs = m->pending,
                       .n_jobs = m->n_pending,
                       .nodes = m->nodes,
                       .n_nodes = m->o->nodes,
                       .queues = m->queues,
                       .n_queues = N_QUEUES,
                       .running = m->running,
                       .n_running = m->n_running,
                       .usage = m->usage_in,
                       .n_usage = N_USERS,
                       .config = &m->cfg,
                       .now_ms = now};
  ty_sched_output out;
  double t0 = cpu_ms();
  int rc = ty_sched_pass(&in, &out);
  double dt = cpu_ms() - t0;
  if (m->n_pass == m->cap_pass) {
    m->cap_pass *= 2;
    m->pass_ms = realloc(m->pass_ms, m->cap_pass * sizeof(*m->pass_ms));
    if (!m->pass_ms) return TY_ENOMEM;
  }
  m->pass_ms[m->n_pass++] = dt;
  if (rc != 0) return rc;
  for (size_t k = 0; k < out.n_placements; k++)
    start_job(m, &out.placements[k], now);
  m->frag_sum += out.fragmentation;
  drop_started(m, &out);
  ty_sched_output_close(&out);
  return 0;
}

static int run(sim *m) {
  const opts *o = m->o;
  int64_t tick = (int64_t)o->tick_s * 1000, now = 0;
  uint32_t next = 0;
  m->first_ms = m->trace[0].j.submit_time_ms;
  m->last_submit_ms = m->trace[o->jobs - 1].j.submit_time_ms;
  while (next < o->jobs || m->n_pending || m->n_running) {
    finish_due(m, now);
    while (next < o->jobs && m->trace[next].j.submit_time_ms <= now)
      m->pending[m->n_pending++] = m->trace[next++].j;
    charge_usage(m, (double)o->tick_s);
    if (m->n_pending && one_pass(m, now) != 0) return TY_ENOMEM;
    if (now >= m->first_ms && now < m->last_submit_ms)
      m->window_busy += (double)m->busy_gpus * tick;
    now += tick;
  }
  return 0;
}

/* ---- report ---------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *name, sim *m, double wall_s) {
  qsort(m->pass_ms, m->n_pass, sizeof(double), cmp_double);
  double total = 0;
  for (size_t i = 0; i < m->n_pass; i++)
    total += m->pass_ms[i];
  double p50 = m->n_pass ? m->pass_ms[m->n_pass / 2] : 0;
  double p99 = m->n_pass ? m->pass_ms[(size_t)((double)(m->n_pass - 1) * 0.99)] : 0;
  double span_ms = (double)(m->last_end_ms - m->first_ms);
  double gpus = (double)m->o->nodes * m->o->gpus;
  double util = m->window_busy / (gpus * (double)(m->last_submit_ms - m->first_ms));
  printf("%-12s %7zu %10llu %13.0f %11.2f %11.2f %8.1f%% %13.1f %10.1f %7.3f %7.1f %016llx\n", name,
         m->n_pass, (unsigned long long)m->placements,
         total > 0 ? (double)m->placements / (total / 1000.0) : 0, p50, p99, util * 100,
         m->placements ? m->wait_ms_sum / (double)m->placements / 60000.0 : 0, span_ms / 3.6e6,
         m->n_pass ? m->frag_sum / (double)m->n_pass : 0, wall_s, (unsigned long long)m->digest);
}

static int parse(int argc, char **argv, opts *o) {
  *o = (opts){.jobs = 100000, .nodes = 10000, .gpus = 8, .tick_s = 30, .load = 1.0, .seed = 1};
  static const struct option lo[] = {{"jobs", 1, NULL, 'j'},      {"nodes", 1, NULL, 'n'},
                                     {"gpus", 1, NULL, 'g'},      {"tick", 1, NULL, 't'},
                                     {"load", 1, NULL, 'l'},      {"seed", 1, NULL, 's'},
                                     {"user-gpus", 1, NULL, 'u'}, {"help", 0, NULL, 'h'},
                                     {"policy", 1, NULL, 'p'},    {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    if (c == 'p') {
      if (strcmp(optarg, "multifactor") != 0 && strcmp(optarg, "fifo") != 0) {
        fprintf(stderr, "sched_sim: --policy: \"%s\" is not multifactor or fifo\n", optarg);
        return 2;
      }
      o->policy = optarg;
      continue;
    }
    char *end = NULL;
    double v = optarg ? strtod(optarg, &end) : 0;
    if (c != 'h' && (!end || *end || v <= 0)) {
      fprintf(stderr, "sched_sim: --%s: \"%s\" is not a positive number\n",
              lo[c == 'j'   ? 0
                 : c == 'n' ? 1
                 : c == 'g' ? 2
                 : c == 't' ? 3
                 : c == 'l' ? 4
                 : c == 's' ? 5
                            : 6]
                  .name,
              optarg ? optarg : "");
      return 2;
    }
    switch (c) {
    case 'j':
      o->jobs = (uint32_t)v;
      break;
    case 'n':
      o->nodes = (uint32_t)v;
      break;
    case 'g':
      o->gpus = v > 64 ? 64 : (uint32_t)v;
      break;
    case 't':
      o->tick_s = (uint32_t)v;
      break;
    case 'l':
      o->load = v;
      break;
    case 's':
      o->seed = (uint64_t)v;
      break;
    case 'u':
      o->user_gpus = (uint32_t)v;
      break;
    case 'h':
      printf("usage: sched_sim [--jobs N] [--nodes N] [--gpus N] [--tick S] [--load X] [--seed N]\n"
             "                 [--user-gpus N]   (max_gpus_per_user of every queue)\n"
             "                 [--policy multifactor|fifo]   (only this one; default both)\n"
             "Prints one row per policy; `digest` hashes every placement (time, job,\n"
             "nodes, GPUs), so equal digests mean identical schedules.\n");
      return 1;
    default:
      return 2;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  opts o;
  int rc = parse(argc, argv, &o);
  if (rc) return rc == 1 ? 0 : rc;
  if (o.user_gpus && o.user_gpus < 32 * o.gpus) {
    /* The trace's largest gang has 32 whole nodes; a lower limit would hold
     * it back forever and the run would never end. */
    fprintf(stderr, "sched_sim: --user-gpus: must be at least %u (the largest job's GPUs)\n",
            32 * o.gpus);
    return 2;
  }
  for (uint32_t u = 0; u < N_USERS; u++)
    snprintf(user_names[u], sizeof user_names[u], "u%u", u);
  int64_t span;
  trace_job *trace = make_trace(&o, &span);
  printf("trace: %u jobs over %.1f h on %u nodes x %u GPUs (%u GPUs, %u switches), load %.2f, "
         "tick %u s, seed %llu\n",
         o.jobs, (double)span / 3.6e6, o.nodes, o.gpus, o.nodes * o.gpus,
         (o.nodes + SWITCH_SIZE - 1) / SWITCH_SIZE, o.load, o.tick_s, (unsigned long long)o.seed);
  printf("%-12s %7s %10s %13s %11s %11s %9s %13s %10s %7s %7s %16s\n", "policy", "passes",
         "placements", "placements/s", "pass_p50_ms", "pass_p99_ms", "gpu_util", "mean_wait_min",
         "makespan_h", "frag", "wall_s", "digest");
  const struct {
    const char *name;
    bool fifo;
  } policies[] = {{"multifactor", false}, {"fifo", true}};
  for (size_t p = 0; p < 2; p++) {
    if (o.policy && strcmp(o.policy, policies[p].name) != 0) continue;
    sim m;
    sim_init(&m, &o, trace, policies[p].fifo);
    double t0 = now_ms_wall();
    rc = run(&m);
    if (rc == 0) report(policies[p].name, &m, (now_ms_wall() - t0) / 1000.0);
    sim_close(&m);
    if (rc != 0) {
      fprintf(stderr, "sched_sim: a pass failed: %s\n", ty_strerror(rc));
      break;
    }
  }
  free(trace);
  return rc ? 1 : 0;
}
