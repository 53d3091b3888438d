/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainrun: trains one rank of a graph job.
 *
 *   trainrun --model M.onnx --config C.pb [--resume] [--checkpoint PATH]
 *            [--steps N] [--threads N] [--no-fusion] [--report] [--data-dir DIR]
 *            [--plan FILE | --parallelism M [--mesh NxD] [cost model rates]]
 *            [--write-plan FILE] [--print-plan]
 *   trainrun --model CHECKPOINT.onnx [--config C.pb] --export-inference OUT.onnx
 *            [--output NAME]...
 *
 * The worker daemon starts one per rank (RANK and WORLD_SIZE in the
 * environment name it). With a plan (plan.c) the ranks run it: each its
 * slices, the plan's collectives between its kernels (ops/shard, ops/train).
 * Without one, with WORLD_SIZE > 1 the ranks train data-parallel:
 * they form their world through the controller named by
 * TRAINYARD_CONTROLLER (HOST:PORT) for job TRAINYARD_JOB_ID and all-reduce
 * gradient buckets of --bucket-mb MiB (default 25; --bucket-kb for small models) through
 * ops/collective; TRAINYARD_COLLECTIVE_TIMEOUT_S (default 60) bounds every wait;
 * TRAINYARD_STEP_DELAY_MS (default 0) sleeps after each step, so tests and
 * demos can act on a running job however fast it trains. SIGTERM and SIGINT finish the current step
 * (data-parallel ranks: the step whose gradient exchange first carries any rank's request; a plan's
 * ranks: the next step where they agree, every 1 to 8 steps as their step time allows a quarter of
 * a second, every step for one rank; either way every rank stops after the same step), write a
 * checkpoint and exit 0, which is how preemption keeps the work done; until the run's first step
 * has completed (the ranks forming their world, rank 0 waiting for the checkpoint's lock, a rank
 * in that step's exchange) they end the rank by the signal at once: nothing new to save.
 *
 * --export-inference writes the model's inference form (ops/train/inference.c)
 * and exits without training.
 *
 * Where the build has CUDA there are two programs: trainrun, which every
 * job starts and which loads no CUDA library (they cost a process ~0.2 s
 * and ~150 MiB at start), and trainrun-gpu beside it, with ops/cuda's GPU
 * executor and NCCL, to which trainrun hands a DEVICE_GPU job (exec, the
 * same arguments, device.c) once it has read the config.
 *
 * Exit codes: 0 trained (or stopped cleanly), 1 training failed, 2 bad
 * command line, config or model.
 */
#include "lib/base/base.h"
#include "lib/base/version.h"
#include "ops/exec.h"
#include "ops/graph.h"
#include "ops/memplan/memplan.h"
#include "ops/train/train.h"
#include "ops/trainrun/trainrun_internal.h"
#ifdef TY_HAVE_COLLECTIVE
#include "ops/collective/collective.h"
#endif

#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_EXPORT_OUTPUTS 64

typedef struct args {
  const char *model, *config, *checkpoint, *data_dir;
  const char *export_inference;                /* --export-inference OUT */
  const char *outputs[MAX_EXPORT_OUTPUTS + 1]; /* --output NAME ... */
  size_t n_outputs;
  uint64_t steps, bucket_mb, bucket_kb;
  int threads;
  bool resume, no_fusion, report, help, version;
  bool gpu; /* config.device: NCCL collectives */
  tr_plan_args plan;
} args;

static void usage(FILE *f) {
  fputs("usage: trainrun --model M.onnx --config C.pb [options]\n"
        "  --model PATH       ONNX model to train (its graph computes the forward pass)\n"
        "  --config PATH      serialised trainyard.TrainConfig (proto/train_config.proto);\n"
        "                     encode a text one with protoc --encode=trainyard.TrainConfig;\n"
        "                     a regular file (a FIFO or directory is refused, as for --plan)\n"
        "  --resume           continue from the checkpoint (fail if there is none)\n"
        "  --checkpoint PATH  checkpoint path (overrides config.checkpoint_path)\n"
        "  --steps N          stop after N (1 or more) optimizer steps in total, before or\n"
        "                     past the config's epochs / max_steps (the schedule keeps the\n"
        "                     config's length)\n"
        "  --threads N        threads the kernels (and OpenBLAS) use\n"
        "                     (default: the CPUs this process may run on)\n"
        "  --no-fusion        one kernel per node (for comparison)\n"
        "  --report           print parameter and activation memory, then train\n"
        "  --data-dir DIR     overrides config.dataset.dir\n"
        "                     (Fashion-MNIST's, or where relative data paths start)\n"
        "  --bucket-mb N      gradient all-reduce bucket size in MiB (default 25)\n"
        "  --bucket-kb N      the same in KiB, for models of a few MiB (overrides --bucket-mb)\n"
        "Parallel plans (ops/plan; without them, WORLD_SIZE > 1 ranks train data parallel):\n"
        "  --plan FILE        run this plan file (trainrun --write-plan, or the controller's)\n"
        "  --parallelism M    plan at start: auto (the planner's choice), data, tensor, or grid\n"
        "                     (the best data x tensor mesh); every rank plans the same\n"
        "  --mesh NxD         the cluster: N nodes x D devices\n"
        "                     (default WORLD_SIZE / LOCAL_WORLD_SIZE x LOCAL_WORLD_SIZE)\n"
        "  --device-flops F   FLOP/s of one device, or cpu (default: rank 0 measures its GEMM)\n"
        "  --device-mem B     memory per device, e.g. 8G (default 16G)\n"
        "  --intra-gbps G     GB/s between the devices of a node (default 10)\n"
        "  --inter-gbps G     GB/s between nodes, per device (default 1.25)\n"
        "  --latency-us U     per ring step inside a node (default 2)\n"
        "  --inter-latency-us U  per ring step across nodes (default 20)\n"
        "  --launch-us U      fixed cost of one collective (default 5)\n"
        "  --write-plan FILE  plan this model and config, write the plan file, print it, exit\n"
        "  --print-plan       print the whole plan at start (rank 0)\n"
        "Inference export (no training):\n"
        "  --export-inference OUT  write the model (e.g. a checkpoint) for inference: Dropout\n"
        "                     off, BatchNormalization on its running statistics, only what\n"
        "                     the outputs need (the loss and its labels dropped); then exit\n"
        "  --output NAME      a value to output (repeatable; default: the model's outputs\n"
        "                     but the config's loss_output, so --config is optional here)\n"
        "  --help             this text\n"
        "  --version          the version\n"
        "Environment: RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, TRAINYARD_CONTROLLER,\n"
        "  TRAINYARD_JOB_ID and TRAINYARD_RENDEZVOUS_TOKEN (the rendezvous of several ranks,\n"
        "  set by trainworkerd: they run as a cluster job, trainctl submit --model ...\n"
        "  --parallelism tensor|grid), TRAINYARD_COLLECTIVE_TIMEOUT_S (default 60),\n"
        "  TRAINYARD_STEP_DELAY_MS (sleep after each step; for tests and demos, default 0);\n"
        "  the fused kernels: TRAINYARD_KERNEL_CACHE (their compiled cache, else\n"
        "  $XDG_CACHE_HOME/trainyard/kernels or ~/.cache/trainyard/kernels), CC (the C\n"
        "  compiler that builds them, default cc), TRAINYARD_NO_JIT=1 (none compiled: an\n"
        "  interpreter runs them, slower).\n"
        "Without a checkpoint path the trained weights are not saved.\n"
        "SIGTERM/SIGINT finish the current step (several ranks: the step all of them agree\n"
        "on; a plan's ranks: the next step at which they agree, within about a quarter of\n"
        "a second, one on one rank), write a checkpoint and exit 0.\n",
        f);
}

static int parse_u64(const char *opt, const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = s ? strtoull(s, &end, 10) : 0;
  if (!s || !*s || *end || errno || s[0] == '-') {
    fprintf(stderr, "trainrun: %s: expected a non-negative integer, got \"%s\"\n", opt, s ? s : "");
    return TY_EINVAL;
  }
  *out = v;
  return 0;
}

/* Reads a number option into *out and checks it against [lo, hi]. */
static int parse_range(const char *opt, const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
  if (parse_u64(opt, v, out) != 0) return TY_EINVAL;
  if (*out >= lo && *out <= hi) return 0;
  fprintf(stderr, "trainrun: %s: must be %llu..%llu, got %s\n", opt, (unsigned long long)lo,
          (unsigned long long)hi, v);
  return TY_EINVAL;
}

/* --steps N: 1 or more (a->steps 0 means the option was not given, so 0
 * itself would train the config's whole length). */
static int parse_steps(const char *v, uint64_t *out) {
  if (parse_u64("--steps", v, out) != 0) return TY_EINVAL;
  if (*out > 0) return 0;
  fprintf(stderr,
          "trainrun: --steps: 0; the optimizer steps the run ends at in all, 1 or more (leave it "
          "out for the config's epochs / max_steps; to evaluate a checkpoint without training, "
          "give its step)\n");
  return TY_EINVAL;
}

/* clang-format off: one option per entry, kept in tables */
enum {
  OPT_MODEL = 256,
  OPT_CONFIG,
  OPT_RESUME,
  OPT_CHECKPOINT,
  OPT_STEPS,
  OPT_THREADS,
  OPT_NO_FUSION,
  OPT_REPORT,
  OPT_DATA_DIR,
  OPT_BUCKET_MB,
  OPT_BUCKET_KB,
  OPT_PLAN,
  OPT_PARALLELISM,
  OPT_MESH,
  OPT_DEVICE_FLOPS,
  OPT_DEVICE_MEM,
  OPT_INTRA_GBPS,
  OPT_INTER_GBPS,
  OPT_LATENCY_US,
  OPT_INTER_LATENCY_US,
  OPT_LAUNCH_US,
  OPT_WRITE_PLAN,
  OPT_PRINT_PLAN,
  OPT_EXPORT_INFERENCE,
  OPT_OUTPUT,
  OPT_VERSION
};

static const struct option long_opts[] = {
    {"model", required_argument, NULL, OPT_MODEL},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"no-fusion", no_argument, NULL, OPT_NO_FUSION},
    {"report", no_argument, NULL, OPT_REPORT},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"bucket-mb", required_argument, NULL, OPT_BUCKET_MB},
    {"bucket-kb", required_argument, NULL, OPT_BUCKET_KB},
    {"help", no_argument, NULL, 'h'},
    {"plan", required_argument, NULL, OPT_PLAN},
    {"parallelism", required_argument, NULL, OPT_PARALLELISM},
    {"mesh", required_argument, NULL, OPT_MESH},
    {"device-flops", required_argument, NULL, OPT_DEVICE_FLOPS},
    {"device-mem", required_argument, NULL, OPT_DEVICE_MEM},
    {"intra-gbps", required_argument, NULL, OPT_INTRA_GBPS},
    {"inter-gbps", required_argument, NULL, OPT_INTER_GBPS},
    {"latency-us", required_argument, NULL, OPT_LATENCY_US},
    {"inter-latency-us", required_argument, NULL, OPT_INTER_LATENCY_US},
    {"launch-us", required_argument, NULL, OPT_LAUNCH_US},
    {"write-plan", required_argument, NULL, OPT_WRITE_PLAN},
    {"print-plan", no_argument, NULL, OPT_PRINT_PLAN},
    {"export-inference", required_argument, NULL, OPT_EXPORT_INFERENCE},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* One option; TY_EINVAL (message printed) for a bad value. */
static int apply_opt(int c, const char *v, args *a) {
  uint64_t n = 0;
  switch (c) {
  case 'h':
    a->help = true;
    return 0;
  case OPT_VERSION:
    a->version = true;
    return 0;
  case OPT_MODEL:
    a->model = v;
    return 0;
  case OPT_CONFIG:
    a->config = v;
    return 0;
  case OPT_RESUME:
    a->resume = true;
    return 0;
  case OPT_CHECKPOINT:
    a->checkpoint = v;
    return 0;
  case OPT_NO_FUSION:
    a->no_fusion = true;
    return 0;
  case OPT_REPORT:
    a->report = true;
    return 0;
  case OPT_DATA_DIR:
    a->data_dir = v;
    return 0;
  case OPT_STEPS:
    return parse_steps(v, &a->steps);
  case OPT_THREADS:
    if (parse_range("--threads", v, 1, 1024, &n) != 0) return TY_EINVAL;
    a->threads = (int)n;
    return 0;
  case OPT_BUCKET_MB:
    return parse_range("--bucket-mb", v, 1, 4096, &a->bucket_mb);
  case OPT_BUCKET_KB:
    return parse_range("--bucket-kb", v, 1, (uint64_t)4096 << 10, &a->bucket_kb);
  case OPT_PLAN:
    a->plan.plan_file = v;
    return 0;
  case OPT_PARALLELISM:
    a->plan.parallelism = v;
    return 0;
  case OPT_MESH:
    a->plan.mesh = v;
    return 0;
  case OPT_DEVICE_FLOPS:
    a->plan.device_flops = v;
    return 0;
  case OPT_DEVICE_MEM:
    a->plan.device_mem = v;
    return 0;
  case OPT_INTRA_GBPS:
    a->plan.intra_gbps = v;
    return 0;
  case OPT_INTER_GBPS:
    a->plan.inter_gbps = v;
    return 0;
  case OPT_LATENCY_US:
    a->plan.latency_us = v;
    return 0;
  case OPT_INTER_LATENCY_US:
    a->plan.inter_latency_us = v;
    return 0;
  case OPT_LAUNCH_US:
    a->plan.launch_us = v;
    return 0;
  case OPT_WRITE_PLAN:
    a->plan.write_plan = v;
    return 0;
  case OPT_PRINT_PLAN:
    a->plan.print_plan = true;
    return 0;
  case OPT_EXPORT_INFERENCE:
    a->export_inference = v;
    return 0;
  case OPT_OUTPUT:
    if (a->n_outputs == MAX_EXPORT_OUTPUTS) {
      fprintf(stderr, "trainrun: --output: at most %d outputs\n", MAX_EXPORT_OUTPUTS);
      return TY_EINVAL;
    }
    a->outputs[a->n_outputs++] = v;
    return 0;
  default:
    return TY_EINVAL;
  }
}
/* clang-format on */

static int parse_args(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  opterr = 0; /* our own messages, in the same form as the others */
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
    const char *opt = argv[optind - 1];
    if (c == '?') {
      fprintf(stderr, "trainrun: unknown option \"%s\" (see --help)\n", opt);
      return TY_EINVAL;
    }
    if (c == ':') {
      fprintf(stderr, "trainrun: %s: missing value\n", opt);
      return TY_EINVAL;
    }
    if (apply_opt(c, optarg, a) != 0) return TY_EINVAL;
  }
  if (optind < argc) {
    fprintf(stderr, "trainrun: unexpected argument \"%s\" (see --help)\n", argv[optind]);
    return TY_EINVAL;
  }
  a->plan.threads = a->threads;
  if (a->help || a->version) return 0;
  if (a->n_outputs && !a->export_inference) {
    fprintf(stderr, "trainrun: --output is for --export-inference (see --help)\n");
    return TY_EINVAL;
  }
  if (a->export_inference && a->model) return 0;
  if (!a->model || !a->config) {
    fprintf(stderr, "trainrun: --model and --config are required (see --help)\n");
    return TY_EINVAL;
  }
  return 0;
}

static int env_u32(const char *name, uint32_t dflt, uint32_t *out) {
  const char *s = getenv(name);
  uint64_t v = dflt;
  if (s && *s && parse_u64(name, s, &v) != 0) return TY_EINVAL;
  *out = (uint32_t)v;
  return 0;
}

/* Weights, and peak activation memory of one training step at the
 * configured batch with and without ops/memplan's planning (with
 * gradient accumulation: of one micro-batch, the most a step holds). */
static void report(const ty_train *t, const ty_train_config *c, bool no_fusion) {
  const ty_graph *g = ty_train_graph(t);
  uint64_t pbytes = 0;
  for (size_t i = 0; i < ty_train_n_params(t); i++)
    pbytes += ty_train_param(t, i)->nbytes;
  printf("report: %zu parameter tensors, %.2f MiB of weights; %zu nodes (forward + backward), "
         "batch %u\n",
         ty_train_n_params(t), (double)pbytes / 1048576.0, ty_graph_n_nodes(g), c->batch_size);
  ty_memplan_report r;
  char err[TY_ERR_LEN] = "";
  ty_memplan_opts mo = {.no_fusion = no_fusion};
  bool accum = c->micro_batches > 1 && !ty_train_plan(t);
  uint32_t rows = accum ? c->batch_size / (uint32_t)c->micro_batches : c->batch_size;
  if (accum)
    printf("report: gradient accumulation: %d micro-batches of %u rows; activation memory is one "
           "micro-batch's\n",
           c->micro_batches, rows);
  if (ty_memplan_report_graph(g, rows, &mo, err, sizeof err, &r) != 0) {
    printf("report: memory planning unavailable: %s\n", err);
    return;
  }
  printf("report: peak activation memory without planning %.2f MiB, with planning %.2f MiB "
         "(%zu activations in %zu buffers, %zu in place, %zu steps%s)\n",
         (double)r.unplanned_bytes / 1048576.0, (double)r.planned_bytes / 1048576.0,
         r.n_activations, r.n_buffers, r.n_inplace, r.n_steps, no_fusion ? ", fusion off" : "");
  fflush(stdout);
}

/* A pipelined plan's rank: its stage's predicted memory per device with
 * and without activation recomputation (the plan's choice marked). */
static void report_stage(const ty_train *t, uint32_t rank) {
  const ty_plan *p = ty_train_plan(t);
  if (!p || p->n_stages <= 0) return;
  int s = (int)rank / (p->devices / p->n_stages);
  const ty_plan_stage *st = &p->stages[s];
  printf("report: pipeline stage %d (rank %u), %d micro-batch%s in flight: predicted peak memory "
         "per device %.2f MiB without recomputation%s, %.2f MiB as planned (%s)\n",
         s, rank, st->in_flight, st->in_flight == 1 ? "" : "es",
         (double)st->memory_no_recompute_bytes / 1048576.0,
         st->recompute ? "" : " (the plan's choice)", (double)st->memory_bytes / 1048576.0,
         st->recompute ? "recomputing activations in backward" : "keeping activations");
  fflush(stdout);
}

/* ... and after training, what it held. */
static void report_stage_held(const ty_train *t, uint32_t rank) {
  const ty_plan *p = ty_train_plan(t);
  if (!p || p->n_stages <= 0) return;
  printf("report: rank %u held at most %.2f MiB of micro-batch tensors (inputs, activations "
         "received and kept, gradients)\n",
         rank, (double)ty_train_pipeline_peak_bytes(t) / 1048576.0);
  printf("report: rank %u holds %.2f MiB of parameters, their gradient sums and optimizer state "
         "(%s)\n",
         rank, (double)ty_train_pipeline_state_bytes(t) / 1048576.0,
         p->devices / p->n_stages > 1 ? "its blocks of its stage's parameters, as planned"
                                      : "its stage's parameters, as planned");
  fflush(stdout);
}

#ifdef TY_HAVE_COLLECTIVE
/* Joins the job's world (ops/collective; a world of one needs no
 * rendezvous) and wires it into the trainer's options: the gradient
 * all-reduce of data parallelism, or a plan's collectives. */
static int join_world(const args *a, ty_train_opts *o, ty_train_parallel *par, ty_coll **out_coll) {
  uint64_t job = 0;
  uint32_t timeout_s = 60;
  const char *ctl = getenv("TRAINYARD_CONTROLLER"), *js = getenv("TRAINYARD_JOB_ID");
  if (o->world_size > 1 && (!ctl || !*ctl || !js || parse_u64("TRAINYARD_JOB_ID", js, &job) != 0)) {
    fprintf(stderr,
            "trainrun: WORLD_SIZE=%u needs TRAINYARD_CONTROLLER and TRAINYARD_JOB_ID for the "
            "rendezvous\n",
            o->world_size);
    return TY_EINVAL;
  }
  if (env_u32("TRAINYARD_COLLECTIVE_TIMEOUT_S", 60, &timeout_s) != 0) return TY_EINVAL;
  char err[TY_ERR_LEN] = "";
  ty_coll_opts co = {.rank = o->rank,
                     .world_size = o->world_size,
                     .job_id = job,
                     .rendezvous = ctl,
                     .timeout_ms = (timeout_s ? timeout_s : 60) * 1000u,
                     .backend = a->gpu ? TY_COLL_NCCL : TY_COLL_MPI,
                     .stop = &tr_stop_requested,
                     .stop_agreed = &tr_stop_agreed};
  int rc = ty_coll_create(&co, out_coll, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "trainrun: %s\n", err);
    return rc;
  }
  o->bucket_bytes =
      a->bucket_kb ? (size_t)a->bucket_kb << 10 : (size_t)(a->bucket_mb ? a->bucket_mb : 25) << 20;
  if (par) {
    par->comm = (ty_shard_comm){ty_coll_mesh_all_reduce, ty_coll_mesh_all_gather,
                                ty_coll_mesh_reduce_scatter, ty_coll_mesh_all_to_all, *out_coll};
    par->start = ty_coll_mesh_start;
    par->wait = ty_coll_wait_hook;
    par->progress = ty_coll_progress_hook;
    par->gather = ty_coll_gather;
    par->agree_stop = ty_coll_agree_stop;
    par->send = ty_coll_send;
    par->recv = ty_coll_recv;
    par->flush = ty_coll_flush;
    o->parallel = par;
  } else {
    o->allreduce = ty_coll_allreduce;
    o->async = (ty_train_async_allreduce){
        .start = ty_coll_start_hook, .wait = ty_coll_wait_hook, .progress = ty_coll_progress_hook};
    if (a->gpu) { /* NCCL: the GPU executor's gradient buckets stay on the device */
      o->async.start_device = ty_coll_start_device_hook;
      o->async.wait_device = ty_coll_wait_device_hook;
    }
    o->sum = ty_coll_world_sum;
    o->allreduce_user = *out_coll;
    ty_coll_set_bucket_bytes(*out_coll, o->bucket_bytes);
  }
  if (o->world_size > 1)
    printf("collective: rank %u of %u joined through the controller at %s (Open MPI)\n", o->rank,
           o->world_size, ctl);
  fflush(stdout);
  return 0;
}

/* Names the gradient tensors so a mismatched collective says which. */
static void describe_params(ty_train *t, ty_coll *coll) {
  for (size_t i = 0; coll && i < ty_train_n_params(t); i++) {
    const ty_tensor *p = ty_train_param(t, i);
    ty_coll_add_tensor(coll, ty_train_param_name(t, i), p->shape.dims, (size_t)p->shape.rank);
  }
}

/* The cost model's CPU rate when asked for: rank 0 measures, every rank
 * uses its number (so every rank plans with the same bits). */
static int shared_cpu_flops(const args *a, const ty_train_opts *o, ty_coll *coll,
                            ty_plan_request *req) {
  if (req->cluster.device_flops > 0) return 0;
  int rc = o->rank == 0 ? tr_plan_cpu_flops(a->threads, &req->cluster.device_flops) : 0;
  double v = rc == 0 ? req->cluster.device_flops : -1;
  if (ty_coll_bcast_f64(coll, &v) != 0 || !(v > 0)) {
    fprintf(stderr, "trainrun: rank %u: no CPU rate for the cost model (%s)\n", o->rank,
            rc ? "measuring failed" : ty_coll_error(coll));
    return TY_EIO;
  }
  req->cluster.device_flops = v;
  return 0;
}

/* Every rank runs the same plan: a hash exchange, then the mesh's
 * communicators. Exit code 2 on a mismatch. */
static int agree_plan(const ty_train *t, uint32_t rank, uint32_t world, ty_coll *coll) {
  const ty_plan *p = ty_train_plan(t);
  uint64_t mine = ty_plan_hash(p), *all = calloc(world + 1, sizeof *all);
  int rc = all ? ty_coll_allgather_u64(coll, mine, all) : TY_ENOMEM;
  for (uint32_t r = 1; rc == 0 && r < world; r++)
    if (all[r] != all[0]) {
      fprintf(stderr,
              "trainrun: rank %u: plan mismatch: rank %u runs plan %016llx, rank 0 plan %016llx; "
              "every rank "
              "must run the same plan (same file, or the same --parallelism, --mesh and rates)\n",
              rank, r, (unsigned long long)all[r], (unsigned long long)all[0]);
      rc = TY_EINVAL;
    }
  free(all);
  /* a pipelined plan's collectives: over a stage's replicas (axis 1) and the world */
  int m0 = p->n_stages > 0 ? p->n_stages : p->mesh[0];
  int m1 = p->n_stages > 0 ? p->devices / p->n_stages : p->mesh[1];
  if (rc == 0 && (rc = ty_coll_set_mesh(coll, m0, m1)) != 0)
    fprintf(stderr, "trainrun: mesh %dx%d: %s\n", m0, m1, ty_coll_error(coll));
  /* a stage mesh with both axes split: its axes inside axis 1 (ops/train/pipe_shard.c) */
  if (rc == 0 && p->n_stages > 0 && p->mesh[0] > 1 && p->mesh[1] > 1 &&
      (rc = ty_coll_set_mesh_inner(coll, p->mesh[0], p->mesh[1])) != 0)
    fprintf(stderr, "trainrun: stage mesh %dx%d: %s\n", p->mesh[0], p->mesh[1],
            ty_coll_error(coll));
  return rc;
}

static void print_stats(ty_coll *coll) {
  ty_coll_stats cs;
  ty_coll_get_stats(coll, &cs);
  printf("collective: %llu buckets, %.1f MiB reduced; shape checks %.3f s, reductions %.3f s, "
         "blocked %.3f s",
         (unsigned long long)cs.ops, (double)cs.bytes / 1048576.0, cs.check_s, cs.reduce_s,
         cs.wait_s);
  if (cs.mesh_ops)
    printf("; %llu plan collectives, %.1f MiB, %.3f s", (unsigned long long)cs.mesh_ops,
           (double)cs.mesh_bytes / 1048576.0, cs.mesh_s);
  if (cs.p2p_msgs)
    printf("; %llu pipeline messages, %.1f MiB", (unsigned long long)cs.p2p_msgs,
           (double)cs.p2p_bytes / 1048576.0);
  printf("\n");
  fflush(stdout);
}
#endif

/* The CPUs of this process' affinity mask (what a worker's cpuset or
 * taskset grants), at least 1. */
static int cpus_allowed(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  int n = CPU_COUNT(&set);
  return n > 0 ? (n < 1024 ? n : 1024) : 1;
}

/* Joins the world and resolves the plan; 0, or the exit code. */
static int prepare(const args *a, ty_train_opts *o, ty_train_parallel *par, ty_plan **plan,
                   ty_plan_request *req, void **coll) {
  bool planned = tr_plan_wanted(&a->plan);
  if (planned && tr_plan_resolve(&a->plan, o->world_size, plan, req) != 0) return 2;
  par->plan = *plan;
  par->request = req;
#ifdef TY_HAVE_COLLECTIVE
  ty_coll *c = NULL;
  if ((o->world_size > 1 || planned) && join_world(a, o, planned ? par : NULL, &c) != 0) return 1;
  *coll = c;
  if (planned && !*plan && shared_cpu_flops(a, o, c, req) != 0) return 1;
#else
  (void)coll;
  if (o->world_size > 1 || planned) {
    fprintf(stderr, "trainrun: WORLD_SIZE=%u%s but this build has no ops/collective (no MPI)\n",
            o->world_size, planned ? " with a parallel plan" : "");
    return 2;
  }
#endif
  return 0;
}

static int train(const args *a, ty_train_config *c) {
  char err[TY_ERR_LEN] = "";
  ty_graph *model = NULL;
  ty_train *t = NULL;
  ty_plan *plan = NULL;
  ty_plan_request req;
  ty_train_parallel par;
  memset(&par, 0, sizeof par);
  void *coll = NULL;
  int rc = ty_graph_load_file(a->model, err, sizeof err, &model), code = 2;
  if (rc != 0) {
    size_t n = strlen(a->model); /* "cannot open" names the path already */
    bool named = strncmp(err, a->model, n) == 0 && err[n] == ':';
    fprintf(stderr, "trainrun: %s%s%s\n", named ? "" : a->model, named ? "" : ": ", err);
    return 2;
  }
  ty_workers *workers = NULL;
  ty_train_opts o = {.resume = a->resume,
                     .no_fusion = a->no_fusion || !c->fusion,
                     .prefetch = true,
                     .max_steps = a->steps,
                     .model_path = a->model,
                     .stop = &tr_stop_requested,
                     .trained = &tr_training_started,
                     .checkpoint_lock_wait_s = 60}; /* a cancelled run's last save */
  if (env_u32("RANK", 0, &o.rank) != 0 || env_u32("WORLD_SIZE", 1, &o.world_size) != 0 ||
      env_u32("TRAINYARD_STEP_DELAY_MS", 0, &o.step_delay_ms) != 0)
    goto done;
  if (o.world_size > 1) o.stop = &tr_stop_agreed;
  if (a->plan.write_plan) {
    code = tr_plan_write(&a->plan, model, c);
    goto done;
  }
  if (c->gpu && (code = tr_gpu_check(o.rank)) != 0) goto done;
  if ((code = prepare(a, &o, &par, &plan, &req, &coll)) != 0) goto done;
  /* After prepare: its CPU benchmark sets OpenBLAS' threads, the pool resets them to one. */
  if ((rc = ty_workers_create(a->threads > 0 ? a->threads : cpus_allowed(), &workers)) != 0) {
    fprintf(stderr, "trainrun: cannot start %d threads: %s\n", a->threads, ty_strerror(rc));
    code = 1;
    goto done;
  }
  o.workers = workers;
  if ((rc = ty_train_create(model, c, &o, &t, err, sizeof err)) != 0) {
    fprintf(stderr, "trainrun: %s\n", err);
    code = rc == TY_EINVAL || rc == TY_EUNSUPPORTED || rc == TY_ENOTFOUND ? 2 : 1;
    goto done;
  }
  /* The rank trains its own tensors (a plan's rank: its slices): the
   * model's weights go, so between steps it holds one copy of what it
   * trains (a plan's rank: what its plan was made for, docs/planner.md). */
  if ((rc = ty_train_drop_model_data(t, model, NULL)) != 0) {
    fprintf(stderr, "trainrun: freeing the model's weights: %s\n", ty_strerror(rc));
    code = 1;
    goto done;
  }
#ifdef TY_HAVE_COLLECTIVE
  if (ty_train_plan(t) && agree_plan(t, o.rank, o.world_size, coll) != 0) {
    code = 2;
    goto done;
  }
  if (!ty_train_plan(t)) describe_params(t, coll);
#endif
  tr_plan_print(&a->plan, t, o.rank);
  if (c->gpu && o.rank == 0) tr_gpu_print_placement(t);
  if (a->report) report(t, c, o.no_fusion);
  if (a->report) report_stage(t, o.rank);
  bool stopped = false;
  code = 1;
  if ((rc = ty_train_run(t, &stopped, err, sizeof err)) != 0) {
    const char *why = "";
#ifdef TY_HAVE_COLLECTIVE
    why = coll ? ty_coll_error(coll) : "";
    if (strstr(err, why)) why = "";
#endif
    /* One line: the worker makes the job's reason of the run's first
     * "trainrun: " line, and a collective's own words ("no answer from the
     * other ranks within 60000 ms") say more than the step's code. */
    fprintf(stderr, "trainrun: %s%s%s%s\n", err, why[0] ? " (collective: " : "", why,
            why[0] ? ")" : "");
    goto done;
  }
  if (a->report) report_stage_held(t, o.rank);
  code = 0;
done:
  ty_train_destroy(t);
  ty_workers_destroy(workers);
  ty_graph_destroy(model);
  ty_plan_destroy(plan);
#ifdef TY_HAVE_COLLECTIVE
  if (coll && code == 0 && o.world_size > 1) print_stats(coll);
  ty_coll_destroy(coll);
#endif
  return code;
}

/* Replaces *field by a copy of value when the command line gives one. */
static int override(char **field, const char *value) {
  if (!value) return 0;
  char *copy = strdup(value);
  if (!copy) return TY_ENOMEM;
  free(*field);
  *field = copy;
  return 0;
}

/* --export-inference: the config (when given) names the loss output the
 * export leaves out. */
static int export_inference(const args *a) {
  char err[TY_ERR_LEN] = "";
  ty_train_config c = {0};
  if (a->config && ty_train_config_load(a->config, &c, err, sizeof err) != 0) {
    fprintf(stderr, "trainrun: --config %s\n", err);
    return 2;
  }
  int rc = ty_train_export_inference(a->model, a->outputs, a->n_outputs, c.loss_output,
                                     a->export_inference, err, sizeof err);
  if (a->config) ty_train_config_close(&c);
  if (rc != 0) {
    fprintf(stderr, "trainrun: --export-inference: %s\n", err);
    return rc == TY_ENOMEM ? 1 : 2;
  }
  printf("inference model written to %s\n", a->export_inference);
  return 0;
}

int main(int argc, char **argv) {
  /* Line by line, also into a job's log file: a line printed before the
   * first step (a checkpoint lock waited for, a resume) is read while the
   * rank waits, and a stop then, which ends the rank by the signal without
   * flushing stdio, loses none. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  args a;
  if (parse_args(argc, argv, &a) != 0) return 2;
  if (a.help) {
    usage(stdout);
    return 0;
  }
  if (a.version) {
    ty_version_print(stdout, "trainrun");
    return 0;
  }
  if (a.export_inference) return export_inference(&a);
  char err[TY_ERR_LEN] = "";
  ty_train_config c;
  if (ty_train_config_load(a.config, &c, err, sizeof err) != 0) {
    fprintf(stderr, "trainrun: --config %s\n", err);
    return 2;
  }
  if (override(&c.checkpoint_path, a.checkpoint) != 0 || override(&c.data_dir, a.data_dir) != 0) {
    fprintf(stderr, "trainrun: out of memory\n");
    ty_train_config_close(&c);
    return 1;
  }
  tr_take_signals();
  /* A peer rank that dies leaves its sockets half-closed: a write to one
   * must fail with EPIPE, which the collective names, not end this rank
   * silently. */
  signal(SIGPIPE, SIG_IGN);
  a.gpu = c.gpu;
  int code = c.gpu ? tr_gpu_handoff(argv) : -1;
  if (code >= 0) {
    ty_train_config_close(&c);
    return code;
  }
  code = train(&a, &c);
  ty_train_config_close(&c);
  return code;
}
