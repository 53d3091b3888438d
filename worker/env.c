/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A task's environment (docs/cluster-protocol.md, "Task environment"), and
 * the one place it is assembled: the operator's --mpi-if-include and --task-env variables, the
 * job's CommandSpec.env (rlaunch sends the submitter's environment less the
 * documented exclusions), then what the worker adds -- PATH when neither
 * set one, TMPDIR (/tmp, as Slurm's) likewise -- launch.c then gives the task its private
 * directory instead (task_tmp.c) -- the login variables of the user the task runs as
 * when that user is given -- then the variables torchrun-style programs read to find their place in
 * the job. The job's environment loses the job variables set here, and a TMPDIR that is another
 * task's private directory, and PATH the batch script directories of other tasks
 * (cli/script.c), first: a job submitted from inside another job carries that job's.
 * Nothing of the worker's own environment reaches a task: its HOME, TERM or SHLVL would be
 * the daemon's, not the user's. Later entries replace earlier ones of the same name, so a job
 * cannot shadow RANK by accident and each name appears exactly once.
 *
 * Environments hold tens of entries, so the quadratic name check is cheaper
 * than any hash table would be. The job's entries come from the request, so
 * every allocation is checked: running out of memory fails the launch with
 * TY_ENOMEM instead of aborting the worker.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <net/if.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/worker.h"
#include "worker/worker_internal.h"

typedef struct env_list {
  char **v;
  size_t n, cap;
  bool oom; /* an entry could not be stored */
} env_list;

static size_t name_len(const char *entry) {
  const char *eq = strchr(entry, '=');
  return eq ? (size_t)(eq - entry) : strlen(entry);
}

/* Takes ownership of `entry` (heap string "NAME=value", NULL when its
 * allocation failed). */
static void env_put(env_list *l, char *entry) {
  if (!entry || l->oom) {
    free(entry);
    l->oom = true;
    return;
  }
  size_t len = name_len(entry);
  for (size_t i = 0; i < l->n; i++) {
    if (name_len(l->v[i]) == len && strncmp(l->v[i], entry, len) == 0) {
      free(l->v[i]);
      l->v[i] = entry;
      return;
    }
  }
  if (l->n + 2 > l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    char **v = realloc(l->v, cap * sizeof *v);
    if (!v) {
      free(entry);
      l->oom = true;
      return;
    }
    l->v = v, l->cap = cap;
  }
  l->v[l->n++] = entry;
  l->v[l->n] = NULL;
}

static void env_putf(env_list *l, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One vsnprintf into a stack buffer (a task's values are short), one
 * allocation for the entry: the environment is built for every task. */
static void env_putf(env_list *l, const char *name, const char *fmt, ...) {
  char val[256], *heap = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(val, sizeof val, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n >= sizeof val && (heap = malloc((size_t)n + 1))) {
    va_start(ap, fmt);
    vsnprintf(heap, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  const char *v = heap ? heap : val;
  size_t name_n = strlen(name);
  char *entry = n < 0 || (!heap && (size_t)n >= sizeof val) ? NULL : malloc(name_n + (size_t)n + 2);
  if (entry) {
    memcpy(entry, name, name_n);
    entry[name_n] = '=';
    memcpy(entry + name_n + 1, v, (size_t)n + 1);
  }
  free(heap);
  env_put(l, entry); /* NULL: out of memory, the launch fails */
}

static void put_gpus(env_list *l, const ty_task_spec *spec) {
  ty_buf b;
  ty_buf_init(&b);
  for (size_t i = 0; i < spec->n_gpus; i++)
    ty_buf_printf(&b, "%s%" PRIu32, i ? "," : "", spec->gpu_indices[i]);
  ty_buf_append(&b, "", 1);
  env_putf(l, "CUDA_VISIBLE_DEVICES", "%s", (const char *)b.data);
  ty_buf_close(&b);
}

/* An array element's place in its array, in Trainyard's names and in
 * Slurm's, so scripts written for sbatch --array run unchanged. */
static void put_array(env_list *l, const ty_task_spec *spec) {
  if (!spec->array_job_id) return;
  env_putf(l, "TRAINYARD_ARRAY_JOB_ID", "%" PRIu64, spec->array_job_id);
  env_putf(l, "TRAINYARD_ARRAY_TASK_ID", "%" PRIu32, spec->array_task_id);
  env_putf(l, "SLURM_ARRAY_JOB_ID", "%" PRIu64, spec->array_job_id);
  env_putf(l, "SLURM_ARRAY_TASK_ID", "%" PRIu32, spec->array_task_id);
  env_putf(l, "SLURM_ARRAY_TASK_COUNT", "%" PRIu32, spec->array_task_count);
  env_putf(l, "SLURM_ARRAY_TASK_MIN", "%" PRIu32, spec->array_task_min);
  env_putf(l, "SLURM_ARRAY_TASK_MAX", "%" PRIu32, spec->array_task_max);
  env_putf(l, "SLURM_ARRAY_TASK_STEP", "%" PRIu32,
           spec->array_task_step ? spec->array_task_step : 1);
}

/* The job as its task sees it, in Trainyard's names and in the ones sbatch
 * and srun set (Slurm's "OUTPUT ENVIRONMENT VARIABLES"), so that scripts
 * written for Slurm find their job id, rank and node list unchanged. A
 * controller older than these fields sends no node list: those names are
 * then left out rather than set wrong. */
/* TRAINYARD_NODENAMES: the node list's names, space-separated, what a batch
 * script's `scontrol show hostnames` prints (cli/script.c); left out when
 * the list does not expand into num_nodes names. */
static void put_node_names(env_list *l, const ty_task_spec *spec) {
  char **names = NULL, why[256];
  size_t n = 0;
  if (!spec->nodelist || !spec->nodelist[0] ||
      ty_hostnames_parse(spec->nodelist, spec->num_nodes, &names, &n, why, sizeof why) != 0 ||
      n != spec->num_nodes) {
    ty_hostnames_free(names, n);
    return;
  }
  ty_buf joined;
  ty_buf_init(&joined);
  for (size_t i = 0; i < n; i++)
    ty_buf_printf(&joined, "%s%s", i ? " " : "", names[i]);
  ty_buf_append(&joined, "", 1);
  env_putf(l, "TRAINYARD_NODENAMES", "%s", (const char *)joined.data);
  ty_buf_close(&joined);
  ty_hostnames_free(names, n);
}

/* SLURM_GTIDS: the ranks on this node, "4,5,6,7". A node's ranks are
 * consecutive (rank = node_index * local_world_size + local_rank, the
 * controller's layout), the last node's possibly fewer. */
static void put_gtids(env_list *l, const ty_task_spec *spec) {
  if (spec->local_rank > spec->rank) return;
  uint32_t first = spec->rank - spec->local_rank, n = spec->local_world_size;
  if (spec->world_size && first + n > spec->world_size) n = spec->world_size - first;
  ty_buf b;
  ty_buf_init(&b);
  for (uint32_t i = 0; i < n; i++)
    ty_buf_printf(&b, "%s%" PRIu32, i ? "," : "", first + i);
  ty_buf_append(&b, "", 1);
  env_putf(l, "SLURM_GTIDS", "%s", (const char *)b.data);
  ty_buf_close(&b);
}

static bool has_name(const env_list *l, const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; i < l->n; i++)
    if (name_len(l->v[i]) == len && strncmp(l->v[i], name, len) == 0) return true;
  return false;
}

static void put_job(env_list *l, const ty_task_spec *spec, const char *node) {
  const char *name = spec->job_name ? spec->job_name : "";
  const char *queue = spec->queue && spec->queue[0] ? spec->queue : "default";
  env_putf(l, "TRAINYARD_JOB_NAME", "%s", name);
  env_putf(l, "TRAINYARD_QUEUE", "%s", queue);
  env_putf(l, "SLURM_JOB_ID", "%" PRIu64, spec->job_id);
  env_putf(l, "SLURM_JOBID", "%" PRIu64, spec->job_id);
  env_putf(l, "SLURM_JOB_NAME", "%s", name);
  env_putf(l, "SLURM_JOB_PARTITION", "%s", queue);
  if (spec->user && spec->user[0]) env_putf(l, "SLURM_JOB_USER", "%s", spec->user);
  if (spec->has_uid) {
    env_putf(l, "SLURM_JOB_UID", "%" PRIu32, spec->uid);
    env_putf(l, "SLURM_JOB_GID", "%" PRIu32, spec->gid);
  }
  env_putf(l, "SLURM_NTASKS", "%" PRIu32, spec->world_size);
  env_putf(l, "SLURM_NPROCS", "%" PRIu32, spec->world_size);
  env_putf(l, "SLURM_NTASKS_PER_NODE", "%" PRIu32, spec->local_world_size);
  env_putf(l, "SLURM_PROCID", "%" PRIu32, spec->rank);
  env_putf(l, "SLURM_LOCALID", "%" PRIu32, spec->local_rank);
  put_gtids(l, spec);
  env_putf(l, "SLURMD_NODENAME", "%s", node ? node : "");
  uint32_t on_node = spec->cpus_on_node ? spec->cpus_on_node : spec->cpus * spec->local_world_size;
  if (spec->cpus) {
    env_putf(l, "SLURM_CPUS_PER_TASK", "%" PRIu32, spec->cpus);
    env_putf(l, "SLURM_CPUS_ON_NODE", "%" PRIu32, on_node);
    env_putf(l, "TRAINYARD_CPUS_ON_NODE", "%" PRIu32, on_node);
    /* sbatch's "C" or "C(xN)": every node of a job holds the same CPUs. */
    if (spec->num_nodes > 1)
      env_putf(l, "SLURM_JOB_CPUS_PER_NODE", "%" PRIu32 "(x%" PRIu32 ")", on_node, spec->num_nodes);
    else
      env_putf(l, "SLURM_JOB_CPUS_PER_NODE", "%" PRIu32, on_node);
  }
  if (spec->mem_per_node) env_putf(l, "SLURM_MEM_PER_NODE", "%" PRIu64, spec->mem_per_node >> 20);
  /* The client turned --mem-per-cpu into the node's memory: its share per
   * CPU of the node gives the request back (rounded down when --mem was
   * given instead), for scripts that size their workers by it. */
  if (spec->mem_per_node && on_node)
    env_putf(l, "SLURM_MEM_PER_CPU", "%" PRIu64, (spec->mem_per_node >> 20) / on_node);
  /* No SLURM_STEP_ID / SLURM_STEPID: Open MPI takes them for a launch by
   * srun and MPI_Init then refuses to start ("direct launched using srun,
   * but OMPI was not built with SLURM's PMI support"), which ended every
   * graph job's ranks and any mpirun inside a task. */
  if (spec->n_gpus) env_putf(l, "SLURM_GPUS_ON_NODE", "%zu", spec->n_gpus);
  /* Where sbatch ran, which -D/--chdir does not change: the client sends
   * it in the job's environment; a job from an older client has only its
   * working directory. */
  if (spec->cwd && spec->cwd[0] && !has_name(l, "SLURM_SUBMIT_DIR"))
    env_putf(l, "SLURM_SUBMIT_DIR", "%s", spec->cwd);
  /* Slurm sets it once the job was requeued: scripts resume from a checkpoint. */
  if (spec->restart_count) env_putf(l, "SLURM_RESTART_COUNT", "%" PRIu32, spec->restart_count);
  /* The submitter's umask, in octal as sbatch and srun send it. */
  if (spec->process.has_umask) env_putf(l, "SLURM_UMASK", "%04" PRIo32, spec->process.umask);
  if (!spec->num_nodes || !spec->nodelist) return;
  env_putf(l, "TRAINYARD_NODELIST", "%s", spec->nodelist);
  env_putf(l, "TRAINYARD_NUM_NODES", "%" PRIu32, spec->num_nodes);
  env_putf(l, "TRAINYARD_NODE_INDEX", "%" PRIu32, spec->node_index);
  put_node_names(l, spec);
  env_putf(l, "SLURM_JOB_NODELIST", "%s", spec->nodelist);
  env_putf(l, "SLURM_NODELIST", "%s", spec->nodelist);
  env_putf(l, "SLURM_JOB_NUM_NODES", "%" PRIu32, spec->num_nodes);
  env_putf(l, "SLURM_NNODES", "%" PRIu32, spec->num_nodes);
  env_putf(l, "SLURM_NODEID", "%" PRIu32, spec->node_index);
  if (spec->num_nodes > 1)
    env_putf(l, "SLURM_TASKS_PER_NODE", "%" PRIu32 "(x%" PRIu32 ")", spec->local_world_size,
             spec->num_nodes);
  else
    env_putf(l, "SLURM_TASKS_PER_NODE", "%" PRIu32, spec->local_world_size);
}

/* The login variables of the user the task runs as (login(1) sets the
 * same), replacing whatever the job carried for them. */
static void put_user(env_list *l, const struct passwd *pw) {
  if (!pw) return;
  env_putf(l, "HOME", "%s", pw->pw_dir ? pw->pw_dir : "/");
  env_putf(l, "USER", "%s", pw->pw_name ? pw->pw_name : "");
  env_putf(l, "LOGNAME", "%s", pw->pw_name ? pw->pw_name : "");
  env_putf(l, "SHELL", "%s", pw->pw_shell && pw->pw_shell[0] ? pw->pw_shell : "/bin/sh");
}

/* The job variables this file sets (put_job, put_array, ty_task_build_env),
 * and those the batch script's srun sets for its step (cli/script.c).
 * A job submitted from inside another (a self-resubmitting script, an
 * rlaunch in a batch job) carries the outer job's copies in its
 * environment: those the inner job does not set again (its SLURM_MEM_PER_NODE when
 * it has no --mem, its SLURM_RESTART_COUNT when not requeued) would describe the
 * outer job. So every one is dropped from the job's environment first.
 * Not SLURM_SUBMIT_DIR: the client sends its own (see put_job). */
static const char *const job_names[] = {"TRAINYARD_JOB_ID",
                                        "TRAINYARD_SCRIPT_DIR",
                                        "TRAINYARD_NODE",
                                        "TRAINYARD_JOB_NAME",
                                        "TRAINYARD_QUEUE",
                                        "TRAINYARD_CPUS_ON_NODE",
                                        "TRAINYARD_NODELIST",
                                        "TRAINYARD_NUM_NODES",
                                        "TRAINYARD_NODE_INDEX",
                                        "TRAINYARD_NODENAMES",
                                        "TRAINYARD_ARRAY_JOB_ID",
                                        "TRAINYARD_ARRAY_TASK_ID",
                                        "SLURM_JOB_ID",
                                        "SLURM_JOBID",
                                        "SLURM_JOB_NAME",
                                        "SLURM_JOB_PARTITION",
                                        "SLURM_JOB_USER",
                                        "SLURM_JOB_UID",
                                        "SLURM_JOB_GID",
                                        "SLURM_NTASKS",
                                        "SLURM_NPROCS",
                                        "SLURM_NTASKS_PER_NODE",
                                        "SLURM_PROCID",
                                        "SLURM_LOCALID",
                                        "SLURM_GTIDS",
                                        "SLURMD_NODENAME",
                                        "SLURM_CPUS_PER_TASK",
                                        "SLURM_CPUS_ON_NODE",
                                        "SLURM_JOB_CPUS_PER_NODE",
                                        "SLURM_MEM_PER_NODE",
                                        "SLURM_MEM_PER_CPU",
                                        "SLURM_GPUS_ON_NODE",
                                        "SLURM_RESTART_COUNT",
                                        "SLURM_UMASK",
                                        "SLURM_JOB_NODELIST",
                                        "SLURM_NODELIST",
                                        "SLURM_JOB_NUM_NODES",
                                        "SLURM_NNODES",
                                        "SLURM_NODEID",
                                        "SLURM_TASKS_PER_NODE",
                                        "SLURM_ARRAY_JOB_ID",
                                        "SLURM_ARRAY_TASK_ID",
                                        "SLURM_ARRAY_TASK_COUNT",
                                        "SLURM_ARRAY_TASK_MIN",
                                        "SLURM_ARRAY_TASK_MAX",
                                        "SLURM_ARRAY_TASK_STEP",
                                        "SLURM_STEP_ID",
                                        "SLURM_STEPID",
                                        "SLURM_STEP_NODELIST",
                                        "SLURM_STEP_NUM_TASKS",
                                        "SLURM_STEP_NUM_NODES",
                                        "SLURM_STEP_TASKS_PER_NODE"};

bool ty_task_env_inherited(const char *entry) {
  size_t len = name_len(entry);
  if (len == 6 && !strncmp(entry, "TMPDIR", 6) && entry[6] == '=')
    return ty__task_tmp_named(entry + 7);
  for (size_t i = 0; i < sizeof job_names / sizeof *job_names; i++)
    if (strlen(job_names[i]) == len && !strncmp(entry, job_names[i], len)) return true;
  return false;
}

/* The job's PATH less the outer batch script's own directory, dir (its
 * TRAINYARD_SCRIPT_DIR: cli/script.c puts it first on PATH, and it is gone
 * once that task ended; each generation of a self-resubmitting script would
 * add one). Only that directory: an entry the user put there stays. NULL
 * with *oom false when nothing is left, so the default applies. */
static char *path_without_script(const char *entry, const char *dir, bool *oom) {
  char *out = ty_wire_strdup(entry);
  *oom = !out;
  if (!out) return NULL;
  const char *p = entry + sizeof "PATH=" - 1;
  char *w = out + sizeof "PATH=" - 1;
  bool kept = false;
  for (;;) {
    size_t n = strcspn(p, ":");
    if (!dir || strlen(dir) != n || strncmp(p, dir, n) != 0) {
      if (kept) *w++ = ':';
      memcpy(w, p, n);
      w += n, kept = true;
    }
    if (!p[n]) break;
    p += n + 1;
  }
  *w = 0;
  if (kept) return out;
  free(out);
  return NULL;
}

/* The value of NAME in the job's environment, or NULL. */
static const char *job_value(const ty_task_spec *spec, const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; i < spec->n_env; i++)
    if (name_len(spec->env[i]) == len && !strncmp(spec->env[i], name, len))
      return spec->env[i] + len + 1;
  return NULL;
}

/* One entry of the job's environment, unless an outer job's (above);
 * script_dir: the outer batch script's directory, or NULL. */
static void put_job_entry(env_list *l, const char *entry, const char *script_dir) {
  if (ty_task_env_inherited(entry)) return;
  if (name_len(entry) != 4 || strncmp(entry, "PATH", 4) != 0 || !script_dir) {
    env_put(l, ty_wire_strdup(entry));
    return;
  }
  bool oom;
  char *path = path_without_script(entry, script_dir, &oom);
  if (path || oom) env_put(l, path);
}

int ty_task_build_env(const ty_task_spec *spec, const char *node, char *const *site,
                      const struct passwd *pw, char *err, size_t err_len, char ***out_env) {
  env_list l = {0};
  for (size_t i = 0; i < spec->n_env; i++) {
    const char *e = spec->env[i];
    if (!e || !strchr(e, '=') || e[0] == '=')
      return ty_errf(err, err_len, TY_EINVAL, "command.env[%zu]: \"%s\" is not NAME=value", i,
                     e ? e : "");
  }
  for (size_t i = 0; site && site[i]; i++)
    env_put(&l, ty_wire_strdup(site[i]));
  const char *script_dir = job_value(spec, "TRAINYARD_SCRIPT_DIR");
  for (size_t i = 0; i < spec->n_env; i++)
    put_job_entry(&l, spec->env[i], script_dir);
  if (!has_name(&l, "PATH")) env_putf(&l, "PATH", "%s", TY_TASK_DEFAULT_PATH);
  if (!has_name(&l, "TMPDIR")) env_putf(&l, "TMPDIR", "/tmp"); /* as slurmstepd's default */
  put_user(&l, pw);
  env_putf(&l, "RANK", "%" PRIu32, spec->rank);
  env_putf(&l, "LOCAL_RANK", "%" PRIu32, spec->local_rank);
  env_putf(&l, "WORLD_SIZE", "%" PRIu32, spec->world_size);
  env_putf(&l, "LOCAL_WORLD_SIZE", "%" PRIu32, spec->local_world_size);
  env_putf(&l, "MASTER_ADDR", "%s", spec->master_addr ? spec->master_addr : "");
  env_putf(&l, "MASTER_PORT", "%" PRIu32, spec->master_port);
  env_putf(&l, "TRAINYARD_JOB_ID", "%" PRIu64, spec->job_id);
  env_putf(&l, "TRAINYARD_NODE", "%s", node ? node : "");
  put_job(&l, spec, node);
  put_array(&l, spec);
  put_gpus(&l, spec);
  if (l.oom) {
    if (l.v) ty_task_env_free(l.v);
    return ty_errf(err, err_len, TY_ENOMEM, "command.env: no memory for %zu entries", l.n);
  }
  *out_env = l.v;
  return 0;
}

bool ty_task_env_given(const ty_task_spec *spec, char *const *site, const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; site && site[i]; i++)
    if (name_len(site[i]) == len && !strncmp(site[i], name, len)) return true;
  for (size_t i = 0; i < spec->n_env; i++)
    if (spec->env[i] && name_len(spec->env[i]) == len && !strncmp(spec->env[i], name, len) &&
        !ty_task_env_inherited(spec->env[i]))
      return true;
  return false;
}

int ty_task_env_set(char ***env, const char *name, const char *value) {
  size_t n = 0, len = strlen(name);
  while ((*env)[n])
    n++;
  char *entry = malloc(len + strlen(value) + 2);
  if (!entry) return TY_ENOMEM;
  sprintf(entry, "%s=%s", name, value);
  for (size_t i = 0; i < n; i++)
    if (!strncmp((*env)[i], name, len) && (*env)[i][len] == '=') {
      free((*env)[i]);
      (*env)[i] = entry;
      return 0;
    }
  char **grown = realloc(*env, (n + 2) * sizeof *grown);
  if (!grown) {
    free(entry);
    return TY_ENOMEM;
  }
  grown[n] = entry, grown[n + 1] = NULL;
  *env = grown;
  return 0;
}

void ty_task_env_free(char **env) {
  if (!env) return;
  for (size_t i = 0; env[i]; i++)
    free(env[i]);
  free(env);
}

/* ---- --mpi-if-include ---------------------------------------------------------- */

/* One item of the list: an IPv4 network "a.b.c.d/n" (Open MPI 4.1 matches
 * CIDR items against IPv4 addresses only), or the name of an interface this
 * host has now. Open MPI answers a name it does not find with a warning in
 * each rank's log and turns its TCP transport off, so ranks on two hosts
 * would fail to meet far from the cause: it is refused here, at start. */
static int check_if_item(const char *item, size_t len, char *err, size_t err_len) {
  char s[64];
  if (len == 0) return ty_errf(err, err_len, TY_EINVAL, "has an empty item");
  if (len >= sizeof s)
    return ty_errf(err, err_len, TY_EINVAL, "has \"%.*s\", which is too long for an item", (int)len,
                   item);
  memcpy(s, item, len);
  s[len] = 0;
  char *slash = strchr(s, '/');
  if (slash) {
    *slash = 0;
    struct in_addr a;
    char *end = NULL;
    long bits = isdigit((unsigned char)slash[1]) ? strtol(slash + 1, &end, 10) : -1;
    if (inet_pton(AF_INET, s, &a) == 1 && end && !*end && bits >= 0 && bits <= 32) return 0;
    *slash = '/';
    return ty_errf(err, err_len, TY_EINVAL,
                   "has \"%s\", which is not an IPv4 network like 10.1.0.0/16", s);
  }
  if (strlen(s) >= IF_NAMESIZE || if_nametoindex(s) == 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "names \"%s\", which is no network interface of this host "
                   "(`ip link` lists them)",
                   s);
  return 0;
}

int ty_task_mpi_if_check(const char *list, char *err, size_t err_len) {
  const char *p = list;
  for (;;) {
    size_t len = strcspn(p, ",");
    int rc = check_if_item(p, len, err, err_len);
    if (rc != 0 || !p[len]) return rc;
    p += len + 1;
  }
}
