/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scheduler/: the scheduling policy as a pure library. Plain structs in,
 * decisions out: no sockets, no SQLite, no protobuf. The controller builds a
 * ty_sched_input from its in-memory state on every scheduling pass, calls
 * ty_sched_pass(), and applies the placements and preemptions it returns; the
 * trace simulator in bench/sched/ drives the same call.
 *
 * The policy, in the order a pass applies it:
 *   1. Priority (multifactor, like Slurm's priority/multifactor): a weighted
 *      sum of the queue's tier, the job's age, its owner's fair-share factor,
 *      its size and its own priority. Pending jobs are tried in that order.
 *   2. Queues: a paused queue starts nothing; a queue's limits (running jobs,
 *      GPUs, GPUs per user) hold a job back without blocking the others; an
 *      operator's hold, an unmet dependency and an array's cap on running
 *      elements (%N) do the same.
 *   3. Gang placement: a job gets all of its nodes in one pass or none, packed
 *      into the fewest network switches and, within a node, onto GPUs of one
 *      NVLink island where it can be. An exclusive job's nodes are whole
 *      nodes with nothing allocated, and it takes all of each.
 *   4. Preemption: a job that does not fit may evict running jobs of
 *      preemptible queues with a lower tier; victims by least work lost
 *      (time since their last checkpoint), then lowest priority; never a job
 *      that has run less than min_run_s.
 *   5. Reservation and EASY backfill: the first job that still does not fit
 *      gets a reservation at the earliest time the running jobs' time limits
 *      free enough nodes; a later job starts now only if it ends before that
 *      time or uses only what the reservation leaves over.
 *
 * Ownership: everything in ty_sched_input is borrowed for the call and never
 * modified. ty_sched_output owns its arrays (ty_sched_output_close()).
 */
#ifndef TY_SCHEDULER_SCHEDULER_H
#define TY_SCHEDULER_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TY_SCHED_MAX_GPUS 64 /* per node: GPU sets are 64-bit masks */
#define TY_SCHED_NO_SWITCH UINT32_MAX

/* ---- configuration -------------------------------------------------------- */

/* Weights and knobs; ty_sched_config_default() fills the documented defaults.
 * Priority = w_tier * tier/max_tier + w_age * min(age/age_max_s, 1)
 *          + w_fairshare * fairshare + w_size * job_gpus(or cpus)/cluster's
 *          + w_priority * (clamp(priority, -1000, 1000) + 1000) / 2000. */
typedef struct ty_sched_config {
  double w_tier, w_age, w_fairshare, w_size, w_priority;
  uint32_t age_max_s;      /* age at which the age factor reaches 1 */
  double halflife_s;       /* fair-share usage half-life */
  double cpu_usage_weight; /* usage = gpu_s + cpu_weight * cpu_s */
  bool preemption, backfill;
  uint32_t min_run_s;         /* no preemption before a job ran this long */
  uint32_t preempt_grace_s;   /* SIGTERM -> SIGKILL for victims (controller) */
  uint32_t unknown_runtime_s; /* assumed run time of a job without limit */
  uint32_t backfill_depth;    /* jobs tried after the reservation; 0 = all */
  bool fifo;                  /* baseline: submit order, stop at the first
                                 job that does not fit (no backfill) */
  /* Memory per node, bytes, of a job that asks none in a queue without a
   * default_mem (Slurm's DefMemPerNode; 0 = none: no limit). The
   * controller applies it at submit; the scheduler counts what the job got. */
  uint64_t default_mem_per_node;
} ty_sched_config;

void ty_sched_config_default(ty_sched_config *out);

/* Network switch groups (like Slurm's topology.conf): switch names and, for
 * each node name, which switch it hangs off. Owned; ty_sched_topology_close(). */
typedef struct ty_sched_switch {
  char *name;
  char **nodes;
  size_t n_nodes;
} ty_sched_switch;

typedef struct ty_sched_topology {
  ty_sched_switch *switches;
  size_t n_switches;
} ty_sched_topology;

void ty_sched_topology_close(ty_sched_topology *t); /* accepts a zeroed struct */
/* The switch index of a node, or TY_SCHED_NO_SWITCH. */
uint32_t ty_sched_topology_switch_of(const ty_sched_topology *t, const char *node);

/* Parses the controller's config file (text): one `key = value` per line,
 * '#' comments, blank lines ignored. Keys: weight.tier, weight.age,
 * weight.fairshare, weight.size, weight.priority, age_max, fairshare.halflife,
 * fairshare.cpu_weight, preemption (on|off), preempt.min_run, preempt.grace,
 * backfill (on|off), backfill.depth, unknown_runtime (durations take 90, 90s,
 * 15m, 2h, 1d), default_mem_per_node (a size: megabytes, or 512M, 16G), and `switch.NAME = node1,
 * node2, ...` (Slurm hostlists: n[1-4], gpu[01-02]; an empty entry or a bad hostlist is refused).
 * Fields not named keep what *cfg holds. On error returns TY_EINVAL and writes "line 3: weight.age:
 * \"x\" is not a number" into err; *topo is then empty. */
int ty_sched_config_parse(const char *text, ty_sched_config *cfg, ty_sched_topology *topo,
                          char *err, size_t err_len);

/* ---- input ---------------------------------------------------------------- */

typedef enum ty_sched_queue_state {
  TY_SCHED_QUEUE_OPEN = 0,   /* accepts jobs and starts them */
  TY_SCHED_QUEUE_CLOSED = 1, /* refuses new jobs; pending ones still start */
  TY_SCHED_QUEUE_PAUSED = 2, /* accepts jobs, starts none */
} ty_sched_queue_state;

typedef struct ty_sched_queue {
  const char *name;     /* borrowed */
  int32_t tier;         /* higher first; preempts preemptible lower tiers */
  double share;         /* fair-share weight; <= 0 counts as 1 */
  uint32_t max_running; /* 0 = no limit */
  uint32_t max_gpus;    /* GPUs of its running jobs; 0 = no limit */
  uint32_t max_gpus_per_user;
  bool preemptible;
  ty_sched_queue_state state;
  uint32_t default_time_s;   /* time limit of jobs asking none; 0 = none */
  uint32_t max_time_s;       /* 0 = none; a job above it waits (QueueTimeLimit) */
  uint64_t max_mem_per_node; /* bytes, 0 = none; a job above it waits (QueueMemLimit) */
} ty_sched_queue;

typedef struct ty_sched_node {
  const char *name; /* borrowed */
  bool schedulable; /* UP and not draining */
  uint32_t cpus_total;
  uint32_t cpus_free;
  uint32_t gpus_total;
  uint64_t gpus_free; /* bit i set = GPU index i is free */
  uint64_t mem_total; /* bytes */
  uint64_t mem_free;
  uint32_t switch_id; /* index of its switch group; 0 for all = one switch */
  /* NVLink island of each GPU (GPUs with equal ids share NVLink); all 0 =
   * one island, what a worker reports when it cannot tell. */
  uint8_t gpu_island[TY_SCHED_MAX_GPUS];
} ty_sched_node;

typedef struct ty_sched_job {
  uint64_t id;
  const char *queue; /* borrowed; NULL or unknown = no queue limits */
  const char *user;  /* borrowed */
  int32_t priority;
  int64_t submit_time_ms;
  uint32_t nodes;          /* >= 1 */
  uint32_t tasks_per_node; /* >= 1 */
  uint32_t cpus_per_task;  /* >= 1 */
  uint32_t gpus_per_node;
  uint64_t mem_per_node; /* bytes, 0 = no limit */
  uint32_t time_limit_s; /* 0 = the queue's default */
  bool held;             /* it waits for its release */
  const char *held_by;   /* borrowed: the operator whose hold it is; NULL = its owner's */
  int64_t begin_ms;      /* not before this (epoch ms, as now_ms); 0 = now */
  /* Arrays and dependencies (issue 15); zero for a plain job. */
  uint64_t array_id;          /* the array it is an element of, 0 = none */
  uint32_t array_max_running; /* that array's %N: its running elements' cap, 0 = none */
  const char *dep_reason;     /* borrowed: why a dependency holds it back ("Dependency:
                                 ..." or "DependencyNeverSatisfied: ..."), NULL = none */
  /* Whole nodes (sbatch's --exclusive): it is placed only on nodes with
   * nothing allocated, and each of its slots takes all of the node's CPUs,
   * GPUs and memory, so nothing else is placed there while it runs. Its
   * request above is then a minimum per node. */
  bool exclusive;
  /* sbatch's -w/--nodelist and -x/--exclude (borrowed node names; NULL/0
   * for the common job): every required node is one of its nodes, which
   * are then at least as many as they, and an excluded node never is. A
   * required node that is down, draining or not among `nodes` makes it
   * wait (ReqNodeNotAvail). */
  const char *const *req_nodes;
  const char *const *exc_nodes;
  uint32_t n_req_nodes, n_exc_nodes;
} ty_sched_job;

/* One node of a placement: which node and which of its GPUs. */
typedef struct ty_sched_slot {
  uint32_t node; /* index into input.nodes */
  uint64_t gpus; /* GPU indices given to the job on that node */
  uint32_t cpus;
  uint64_t mem;
} ty_sched_slot;

typedef struct ty_sched_running {
  uint64_t id;
  const char *queue, *user; /* borrowed */
  int32_t priority;
  int64_t start_time_ms;
  uint32_t time_limit_s;      /* 0 = unknown: assumed unknown_runtime_s */
  int64_t last_checkpoint_ms; /* 0 = never: all work since start is at stake */
  bool ending;                /* already being killed or preempted */
  const ty_sched_slot *slots;
  uint32_t n_slots;  /* borrowed */
  uint64_t array_id; /* the array it is an element of, 0 = none */
  bool exclusive;    /* holds its nodes whole (explain names it) */
} ty_sched_running;

/* Decayed usage of one user in one queue (ty_sched_decay keeps it). */
typedef struct ty_sched_usage {
  const char *user, *queue; /* borrowed */
  double usage;             /* gpu_s + cpu_weight * cpu_s, decayed */
} ty_sched_usage;

typedef struct ty_sched_input {
  const ty_sched_job *jobs; /* pending jobs, any order */
  size_t n_jobs;
  const ty_sched_node *nodes;
  size_t n_nodes;
  /* Optional below: all NULL/0 gives the plain behaviour (no limits, no
   * preemption candidates, fair share neutral, default config). */
  const ty_sched_queue *queues;
  size_t n_queues;
  const ty_sched_running *running;
  size_t n_running;
  const ty_sched_usage *usage;
  size_t n_usage;
  const ty_sched_config *config; /* NULL = defaults */
  int64_t now_ms;                /* 0 = the latest submit time */
} ty_sched_input;

/* ---- output --------------------------------------------------------------- */

typedef struct ty_sched_placement {
  uint64_t job_id;
  uint32_t job_index;    /* the job's index in the input's jobs */
  uint32_t n_slots;      /* == job.nodes */
  ty_sched_slot *slots;  /* owned by the output */
  uint32_t time_limit_s; /* the effective limit (job's, else queue default) */
  bool backfilled;       /* started ahead of the reserved job */
} ty_sched_placement;

typedef struct ty_sched_preemption {
  uint64_t victim_id;
  uint64_t for_job_id;
} ty_sched_preemption;

/* Why a job waits, as a code (the reason text says it in words and starts
 * with the code's name). X(enum suffix, name). */
#define TY_SCHED_WAIT_LIST(X)                                                                      \
  X(RESOURCES, "Resources") /* not enough free nodes now */                                        \
  X(PRIORITY, "Priority")   /* would delay the reserved job; FIFO's block */                       \
  X(HELD, "Held")           /* held until released */                                              \
  X(QUEUE_PAUSED, "QueuePaused")                                                                   \
  X(QUEUE_LIMIT, "QueueLimit")          /* max_running, max_gpus, max_gpus_per_user */             \
  X(PREEMPTING, "Preempting")           /* jobs are being preempted to make room */                \
  X(NO_NODES, "NoNodes")                /* no schedulable node, or a request too large */          \
  X(DEPENDENCY, "Dependency")           /* its dependency is not met (or never will be) */         \
  X(ARRAY_LIMIT, "ArrayTaskLimit")      /* its array runs its %N elements already */               \
  X(BEGIN_TIME, "BeginTime")            /* not before its begin time */                            \
  X(REQ_NODE, "ReqNodeNotAvail")        /* a required node (-w) is down, draining or unknown */    \
  X(QUEUE_TIME_LIMIT, "QueueTimeLimit") /* its time limit is above its queue's max_time */         \
  X(QUEUE_MEM_LIMIT, "QueueMemLimit")   /* its memory per node is above its queue's max_mem */

typedef enum ty_sched_wait {
#define TY_SCHED_WAIT_ENUM_(e, s) TY_SCHED_WAIT_##e,
  TY_SCHED_WAIT_LIST(TY_SCHED_WAIT_ENUM_)
#undef TY_SCHED_WAIT_ENUM_
      TY_SCHED_WAIT_COUNT_
} ty_sched_wait;

/* A held job's reason (its wait is TY_SCHED_WAIT_HELD), in buf[len]:
 * squeue's JobHeldAdmin when an operator (held_by, not NULL or "") holds
 * it, which only an operator releases, else JobHeldUser (its owner's). */
const char *ty_sched_held_reason(const char *held_by, char *buf, size_t len);

/* "Resources", "Held", ...; "?" out of range. Never NULL. */
const char *ty_sched_wait_name(ty_sched_wait w);

/* What a start estimate rests on. */
typedef enum ty_sched_est_kind {
  TY_SCHED_EST_UNKNOWN = 0,    /* no estimate; the note says why */
  TY_SCHED_EST_NOW = 1,        /* the pass would start it now */
  TY_SCHED_EST_LIMITS = 2,     /* when running jobs reach their time limits,
                                  honouring the pass's reservation */
  TY_SCHED_EST_PREEMPTION = 3, /* when the jobs preempted for it exit: at most
                                  the preemption grace period; or, for a job
                                  the pass will preempt for once lower-tier
                                  jobs have run min_run_s, that moment */
} ty_sched_est_kind;

typedef struct ty_sched_pending {
  uint64_t job_id;
  uint32_t job_index; /* the job's index in the input's jobs */
  uint32_t position;  /* 1-based rank among jobs still pending after the pass */
  double priority;
  ty_sched_wait wait;
  /* Start estimate: the reserved job's reservation start, or the end of a
   * preemption's grace period; else 0 / UNKNOWN (ty_sched_explain_job
   * computes one for any job). */
  int64_t est_start_ms;
  ty_sched_est_kind est_kind;
  bool reserved;    /* holds the pass's reservation */
  char reason[160]; /* e.g. "Resources: needs 2 nodes with 4 free GPUs, 1 has" */
} ty_sched_pending;

typedef struct ty_sched_output {
  ty_sched_placement *placements;
  size_t n_placements;
  ty_sched_pending *pending;
  size_t n_pending;
  ty_sched_preemption *preemptions;
  size_t n_preemptions;
  double fragmentation; /* after the pass: see ty_sched_fragmentation() */
} ty_sched_output;

/* Runs one pass. Does not modify the input; fills *out, which the caller
 * releases with ty_sched_output_close(). Returns 0 or TY_ENOMEM. */
int ty_sched_pass(const ty_sched_input *in, ty_sched_output *out);
void ty_sched_output_close(ty_sched_output *out);

/* Checks a job's request against the largest node of the cluster's shape;
 * returns 0 or TY_EINVAL and writes why into reason (e.g. "resources.gpus_per_node
 * is 16 but the largest node has 8 GPUs"). Used to refuse jobs that can never
 * run at submit time. */
int ty_sched_check_fits(const ty_sched_job *job, const ty_sched_node *nodes, size_t n_nodes,
                        char *reason, size_t reason_len);

/* Whether the job's request fits the nodes' free resources now: at least
 * job->nodes schedulable nodes (1 when 0) each with the CPUs, GPUs and
 * memory of one slot free. Topology, queue limits and reservations are not
 * looked at, so false means no pass could place it without preempting. */
bool ty_sched_fits_free(const ty_sched_job *job, const ty_sched_node *nodes, size_t n_nodes);

/* Share of free GPUs (CPUs on a cluster without GPUs) stranded on partly used
 * nodes: 0 when every free GPU sits on an idle node, 1 when none does.
 * Unschedulable nodes do not count. 0 when nothing is free. */
double ty_sched_fragmentation(const ty_sched_node *nodes, size_t n_nodes);

/* ---- fair share ----------------------------------------------------------- */

/* usage * 2^(-elapsed_s / halflife_s); halflife <= 0 keeps usage. */
double ty_sched_decay(double usage, double elapsed_s, double halflife_s);

/* One row of `trainctl share`: a queue (user NULL) or a user within a queue. */
typedef struct ty_sched_share {
  const char *queue, *user; /* borrowed from the input */
  double share;             /* normalised: all queues sum to 1 */
  double usage;             /* decayed */
  double usage_norm;        /* of all usage */
  double factor;            /* 2^(-usage_norm / share), 1 when unused */
} ty_sched_share;

/* Every queue, then every user with usage or jobs, per queue. *out is owned
 * (free()). Returns 0 or TY_ENOMEM. */
int ty_sched_shares(const ty_sched_input *in, ty_sched_share **out, size_t *out_n);

/* ---- why is my job pending ------------------------------------------------ */

#define TY_SCHED_EXPLAIN_NODES 16

typedef struct ty_sched_explain {
  uint64_t job_id;
  bool pending; /* false: the pass would start it now */
  uint32_t position, n_pending;
  double priority;
  /* Weighted contributions; they sum to priority. */
  double f_tier, f_age, f_fairshare, f_size, f_priority;
  double fairshare; /* the owner's factor, 0..1 */
  double user_usage, user_share, usage_norm;
  uint32_t nodes_needed, nodes_fit; /* gang members, and nodes that hold one now */
  size_t n_nodes;                   /* entries of nodes[] */
  struct {
    uint32_t node; /* index into input.nodes */
    char why[96];  /* "2 of 4 GPUs free" */
  } nodes[TY_SCHED_EXPLAIN_NODES];
  /* Estimated start, from the same timeline the reservation uses: running
   * jobs and this pass's placements end at their time limits, and the
   * reserved job keeps its nodes from its start for its own limit. */
  int64_t est_start_ms; /* 0 when est_kind is UNKNOWN */
  ty_sched_est_kind est_kind;
  /* Jobs ahead of it that the estimate does not model (blocked jobs other
   * than the reservation's) may start first: then the estimate is a lower
   * bound, "not before". */
  bool est_lower_bound;
  char est_note[160];    /* what the estimate assumes, or why there is none */
  uint64_t reserved_job; /* the job holding the reservation, 0 = none */
  /* When the pass would start it (est_kind NOW): the nodes of its
   * placement, indices into input.nodes (the first TY_SCHED_EXPLAIN_NODES
   * of them; n_start_nodes counts them all). */
  uint32_t n_start_nodes;
  uint32_t start_nodes[TY_SCHED_EXPLAIN_NODES];
  ty_sched_wait wait;
  char reason[160];
} ty_sched_explain;

/* Runs the pass and explains one pending job. TY_ENOTFOUND when job_id is
 * not among in->jobs; TY_ENOMEM. */
int ty_sched_explain_job(const ty_sched_input *in, uint64_t job_id, ty_sched_explain *out);

#endif
