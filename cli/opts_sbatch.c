/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbatch's options that `trainctl submit` takes so that a Slurm batch
 * script runs unchanged (opts_submit.c parses, this file knows sbatch):
 *   - the table of sbatch options with no counterpart here: each is either
 *     ignored with a warning that says why the job is still right without
 *     it (an account, mail, a CPU binding hint), or refused naming why
 *     (a node list, a start time: ignoring them would run the job where or
 *     when its author said it must not);
 *   - sbatch's spellings whose values need translating: --gres=gpu:N,
 *     --nice, -N MIN-MAX, --open-mode, and the per-CPU, per-GPU and
 *     per-task amounts, which become per-node amounts once the whole
 *     command line is known (ty__sbatch_resolve).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"

/* Why an ignored option does not change what the job does, or why a
 * refused one cannot be honoured. */
#define PLACEMENT "a placement hint: the scheduler places by the resources asked and topology"
#define NO_ACCOUNTING "Trainyard has no accounts or QOS: queues and fair share per user decide"
#define NODES_CHOSEN                                                                               \
  "the scheduler chooses the nodes (an operator drains a node to keep jobs off it)"

const ty__sbatch_opt ty__sbatch_opts[] = {
    /* ignored: accounting and notification */
    {"account", required_argument, 'A', false, NO_ACCOUNTING},
    {"qos", required_argument, 0, false, NO_ACCOUNTING},
    {"wckey", required_argument, 0, false, NO_ACCOUNTING},
    {"comment", required_argument, 0, false, "jobs carry no comment here"},
    {"mcs-label", required_argument, 0, false, NO_ACCOUNTING},
    {"licenses", required_argument, 'L', false, "Trainyard schedules no licenses"},
    {"mail-type", required_argument, 0, false, "Trainyard sends no mail"},
    {"mail-user", required_argument, 0, false, "Trainyard sends no mail"},
    {"profile", required_argument, 0, false, "accounting is always on (trainctl history)"},
    {"acctg-freq", required_argument, 0, false, "accounting is always on (trainctl history)"},
    {"get-user-env", optional_argument, 0, false, "the job takes your environment (--export)"},
    {"propagate", optional_argument, 0, false, "the tasks get the worker's resource limits"},
    {"time-min", required_argument, 0, false, "the job runs with its --time"},
    {"requeue", no_argument, 0, false, "a job whose node is lost is always requeued"},
    /* ignored: placement and binding hints */
    {"exclusive", optional_argument, 0, false,
     "the job shares its nodes and holds what -c/--cpus-per-task and --mem ask"},
    {"hint", required_argument, 0, false, PLACEMENT},
    {"distribution", required_argument, 'm', false, PLACEMENT},
    {"threads-per-core", required_argument, 0, false, PLACEMENT},
    {"cores-per-socket", required_argument, 0, false, PLACEMENT},
    {"sockets-per-node", required_argument, 0, false, PLACEMENT},
    {"ntasks-per-core", required_argument, 0, false, PLACEMENT},
    {"ntasks-per-socket", required_argument, 0, false, PLACEMENT},
    {"core-spec", required_argument, 'S', false, PLACEMENT},
    {"overcommit", no_argument, 'O', false, PLACEMENT},
    {"oversubscribe", no_argument, 's', false, PLACEMENT},
    {"spread-job", no_argument, 0, false, PLACEMENT},
    {"use-min-nodes", no_argument, 0, false, PLACEMENT},
    {"switches", required_argument, 0, false, PLACEMENT},
    {"network", required_argument, 0, false, PLACEMENT},
    {"mincpus", required_argument, 0, false, PLACEMENT},
    {"tmp", required_argument, 0, false, "local disk is not scheduled here"},
    {"cpu-freq", required_argument, 0, false, PLACEMENT},
    {"gpu-bind", required_argument, 0, false, PLACEMENT},
    {"gpu-freq", required_argument, 0, false, PLACEMENT},
    {"mem-bind", required_argument, 0, false, PLACEMENT},
    {"no-kill", optional_argument, 'k', false, "a job whose node is lost is requeued"},
    /* refused */
    {"nodelist", required_argument, 'w', true, NODES_CHOSEN},
    {"exclude", required_argument, 'x', true, NODES_CHOSEN},
    {"constraint", required_argument, 'C', true, "nodes have no features to constrain on"},
    {"nodefile", required_argument, 0, true, NODES_CHOSEN},
    {"reservation", required_argument, 0, true, "Trainyard has no reservations"},
    {"begin", required_argument, 0, true, "no deferred start: use --dependency, or submit later"},
    {"deadline", required_argument, 0, true, "no deadlines: give --time"},
    {"hold", no_argument, 'H', true, "submit, then trainctl job hold ID (or use --dependency)"},
    {"no-requeue", no_argument, 0, true, "a job whose node is lost is always requeued"},
    {"wait", no_argument, 'W', true, "follow the job with trainctl watch ID"},
    {"test-only", no_argument, 0, true, "use trainctl why ID on a submitted job"},
    {"input", required_argument, 'i', true, "a batch script's input is /dev/null"},
    {"uid", required_argument, 0, true, "a job runs as its submitter"},
    {"gid", required_argument, 0, true, "a job runs as its submitter"},
    {"clusters", required_argument, 'M', true, "one controller is one cluster"},
    {"export-file", required_argument, 0, true, "give --export NAME=VALUE"},
    {"cpus-per-gpu", required_argument, 0, true, "give -c/--cpus-per-task"},
    {"container", required_argument, 0, true, "no container support"},
    {"bb", required_argument, 0, true, "no burst buffers"},
    {"bbf", required_argument, 0, true, "no burst buffers"},
    {"batch", required_argument, 0, true, "nodes have no features to constrain on"},
};
const size_t ty__sbatch_n = TY_ARRAY_LEN(ty__sbatch_opts);
_Static_assert(TY_ARRAY_LEN(ty__sbatch_opts) <= TY__SBATCH_MAX, "raise TY__SBATCH_MAX");

int ty__sbatch_id(size_t i) {
  return ty__sbatch_opts[i].letter ? ty__sbatch_opts[i].letter : TY__SBATCH_ID0 + (int)i;
}

const ty__sbatch_opt *ty__sbatch_find(int id) {
  for (size_t i = 0; i < ty__sbatch_n; i++)
    if (ty__sbatch_id(i) == id) return &ty__sbatch_opts[i];
  return NULL;
}

void ty__sbatch_warn(ty_cli_submit_args *a, const char *fmt, ...) {
  char msg[TY_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  a->warnings = ty_xrealloc(a->warnings, (a->n_warnings + 1) * sizeof *a->warnings);
  a->warnings[a->n_warnings++] = ty_strdup(msg);
}

int ty__sbatch_apply(ty_cli_submit_args *a, const ty__sbatch_opt *o, const char *v, char *err,
                     size_t err_len) {
  const char *eq = v ? "=" : "";
  if (o->refused)
    return ty_errf(err, err_len, TY_EINVAL, "--%s%s%s is not supported: %s", o->name, eq,
                   v ? v : "", o->why);
  ty__sbatch_warn(a, "--%s%s%s ignored: %s", o->name, eq, v ? v : "", o->why);
  return 0;
}

/* ---- values that need translating ------------------------------------------------------- */

int ty__sbatch_gres(ty_cli_submit_args *a, const char *v, char *err, size_t err_len) {
  /* gpu, gpu:N, gpu:TYPE:N; nothing else is a resource here. */
  if (strncmp(v, "gpu", 3) != 0 || (v[3] && v[3] != ':') || strchr(v, ','))
    return ty_errf(err, err_len, TY_EINVAL,
                   "--gres: \"%s\" is not gpu[:TYPE]:N (GPUs are the only generic resource "
                   "here)",
                   v);
  const char *count = v[3] ? strrchr(v, ':') + 1 : "1";
  const char *type_end = strrchr(v, ':');
  if (v[3] && type_end != v + 3)
    ty__sbatch_warn(a, "--gres %s: the GPU type is ignored (nodes' GPUs are not typed here)", v);
  a->gpus_per_task = 0;
  return ty__cli_parse_u32("--gres", count, 0, 1024, &a->job.gpus_per_node, err, err_len);
}

int ty__sbatch_nice(ty_cli_submit_args *a, const char *v, char *err, size_t err_len) {
  int32_t adj = 100; /* sbatch's default adjustment */
  if (v && ty__cli_parse_i32("--nice", v, &adj, err, err_len) != 0) return TY_EINVAL;
  if (adj > -TY_JOB_PRIORITY_MIN || adj < -TY_JOB_PRIORITY_MAX)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--nice: %" PRId32 " is outside %d..%d (it sets the priority to its negative)",
                   adj, -TY_JOB_PRIORITY_MAX, -TY_JOB_PRIORITY_MIN);
  a->job.priority = -adj;
  return 0;
}

int ty__sbatch_nodes(ty_cli_submit_args *a, const char *v, char *err, size_t err_len) {
  const char *dash = strchr(v, '-');
  if (!dash) return ty__cli_parse_u32("--nodes", v, 1, 100000, &a->job.nodes, err, err_len);
  char min[32];
  uint32_t lo = 0, hi = 0;
  size_t n = (size_t)(dash - v);
  if (n == 0 || n >= sizeof min)
    return ty_errf(err, err_len, TY_EINVAL, "--nodes: \"%s\" is not N or MIN-MAX", v);
  memcpy(min, v, n), min[n] = '\0';
  if (ty__cli_parse_u32("--nodes", min, 1, 100000, &lo, err, err_len) != 0 ||
      ty__cli_parse_u32("--nodes", dash + 1, 1, 100000, &hi, err, err_len) != 0)
    return TY_EINVAL;
  if (hi < lo)
    return ty_errf(err, err_len, TY_EINVAL, "--nodes: %s has its maximum below its minimum", v);
  if (hi != lo)
    ty__sbatch_warn(a, "--nodes %s: the job gets exactly %u nodes (the minimum)", v, lo);
  a->job.nodes = lo;
  return 0;
}

int ty__sbatch_open_mode(ty_cli_submit_args *a, const char *v, char *err, size_t err_len) {
  if (strcmp(v, "append") != 0 && strcmp(v, "truncate") != 0)
    return ty_errf(err, err_len, TY_EINVAL, "--open-mode: \"%s\" is not append or truncate", v);
  a->open_mode = v[0];
  return 0;
}

int ty__sbatch_size(const char *what, const char *v, uint64_t *out, char *err, size_t err_len) {
  if (ty_parse_size(v, out) != 0 || *out == 0)
    return ty_errf(err, err_len, TY_EINVAL, "%s: \"%s\" is not a size (examples: 512M, 16G)", what,
                   v);
  return 0;
}

/* ---- per-CPU, per-GPU and per-task amounts into per-node ones ---------------------------- */

static int mul_checked(const char *what, uint64_t a, uint64_t b, uint64_t max, uint64_t *out,
                       char *err, size_t err_len) {
  if (b && a > max / b)
    return ty_errf(err, err_len, TY_EINVAL, "%s: %" PRIu64 " x %" PRIu64 " per node is too large",
                   what, a, b);
  *out = a * b;
  return 0;
}

int ty__sbatch_resolve(ty_cli_submit_args *a, char *err, size_t err_len) {
  ty_job_spec *j = &a->job;
  uint64_t tasks = j->tasks_per_node ? j->tasks_per_node : 1;
  uint64_t cpus = j->cpus_per_task ? j->cpus_per_task : 1, v = 0;
  if (a->gpus_per_task) {
    if (mul_checked("--gpus-per-task", a->gpus_per_task, tasks, 1024, &v, err, err_len) != 0)
      return TY_EINVAL;
    j->gpus_per_node = (uint32_t)v;
  }
  if (a->mem_per_cpu && mul_checked("--mem-per-cpu", a->mem_per_cpu, cpus * tasks, UINT64_MAX,
                                    &j->mem_per_node, err, err_len) != 0)
    return TY_EINVAL;
  if (a->mem_per_gpu && !j->gpus_per_node)
    return ty_errf(err, err_len, TY_EINVAL, "--mem-per-gpu: the job asks for no GPUs");
  if (a->mem_per_gpu && mul_checked("--mem-per-gpu", a->mem_per_gpu, j->gpus_per_node, UINT64_MAX,
                                    &j->mem_per_node, err, err_len) != 0)
    return TY_EINVAL;
  return 0;
}
