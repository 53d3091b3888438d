/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Slurm's options that `trainctl submit` (sbatch's) and rlaunch (srun's)
 * take so that scripts and habits written for Slurm work unchanged; the
 * parsers (opts_submit.c, rlaunch_args.c) hand them here. One table says,
 * for each, which of the two tools takes it and what becomes of it:
 *   - translated: -D, --nice, --gres=gpu:N, --open-mode, --exclusive (whole
 *     nodes; =user and =mcs mean the same, stricter), -w/--nodelist,
 *     --test-only (sbatch's: the start estimated, nothing submitted;
 *     cmd_submit.c), --nodefile and -x/--exclude (hostlists expanded into names here, a
 *     -w value with a '/' being a file of them, as Slurm's), --no-requeue
 *     and --requeue (the job's requeue policy, the later wins), --propagate
 *     (the soft limits the job carries: ALL, NONE or a list), the per-CPU,
 *     per-GPU and per-task amounts, which become per-node amounts once the
 *     whole command line is known (ty__slurm_resolve), and --mincpus, the
 *     CPUs per task that give each node that many; -N MIN-MAX is the
 *     parsers' own -N, read here (ty__slurm_nodes);
 *   - ignored, with a warning that says why the job is still right
 *     without it (an account, mail, a CPU binding hint);
 *   - refused, naming why (node features, a reservation: ignoring them
 *     would run the job where or when its author said it must not).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_internal.h"

/* Why an ignored option does not change what the job does, or why a
 * refused one cannot be honoured. */
#define PLACEMENT "a placement hint: the scheduler places by the resources asked and topology"
#define NO_ACCOUNTING "Trainyard has no accounts or QOS: queues and fair share per user decide"
#define IGNORED TY__SLURM_IGNORED
#define REFUSED TY__SLURM_REFUSED
#define VALUE TY__SLURM_VALUE
#define SBATCH TY__SLURM_SBATCH
#define SRUN TY__SLURM_SRUN
#define BOTH (TY__SLURM_SBATCH | TY__SLURM_SRUN)

const ty__slurm_opt ty__slurm_opts[] = {
    /* translated (ty__slurm_arg) */
    {"chdir", required_argument, 'D', BOTH, VALUE, NULL},
    {"nice", optional_argument, 0, BOTH, VALUE, NULL},
    {"gres", required_argument, 0, BOTH, VALUE, NULL},
    {"gpus-per-task", required_argument, 0, BOTH, VALUE, NULL},
    {"gpus", required_argument, 0, SRUN, VALUE, NULL}, /* the job's (sbatch's: opts_submit.c) */
    {"mem-per-cpu", required_argument, 0, BOTH, VALUE, NULL},
    {"mem-per-gpu", required_argument, 0, BOTH, VALUE, NULL},
    {"mincpus", required_argument, 0, BOTH, VALUE, NULL},
    {"open-mode", required_argument, 0, SBATCH, VALUE, NULL},
    {"exclusive", optional_argument, 0, BOTH, VALUE, NULL},
    {"nodelist", required_argument, 'w', BOTH, VALUE, NULL},
    {"exclude", required_argument, 'x', BOTH, VALUE, NULL},
    {"nodefile", required_argument, 0, BOTH, VALUE, NULL},
    {"requeue", no_argument, 0, SBATCH, VALUE, NULL},
    {"propagate", optional_argument, 0, BOTH, VALUE, NULL},
    {"no-requeue", no_argument, 0, SBATCH, VALUE, NULL},
    /* ignored: accounting and notification */
    {"account", required_argument, 'A', BOTH, IGNORED, NO_ACCOUNTING},
    {"qos", required_argument, 0, SBATCH, IGNORED, NO_ACCOUNTING}, /* -q: opts_submit.c */
    {"qos", required_argument, 'q', SRUN, IGNORED, NO_ACCOUNTING}, /* srun's -q, as Slurm's */
    {"wckey", required_argument, 0, BOTH, IGNORED, NO_ACCOUNTING},
    {"comment", required_argument, 0, BOTH, IGNORED, "jobs carry no comment here"},
    {"mcs-label", required_argument, 0, BOTH, IGNORED, NO_ACCOUNTING},
    {"licenses", required_argument, 'L', BOTH, IGNORED, "Trainyard schedules no licenses"},
    {"mail-type", required_argument, 0, BOTH, IGNORED, "Trainyard sends no mail"},
    {"mail-user", required_argument, 0, BOTH, IGNORED, "Trainyard sends no mail"},
    {"profile", required_argument, 0, BOTH, IGNORED, "accounting is always on (trainctl history)"},
    {"acctg-freq", required_argument, 0, BOTH, IGNORED,
     "accounting is always on (trainctl history)"},
    {"get-user-env", optional_argument, 0, SBATCH, IGNORED,
     "the job takes your environment (--export)"},
    {"time-min", required_argument, 0, BOTH, IGNORED, "the job runs with its --time"},
    /* ignored: srun's I/O and launch details */
    {"unbuffered", no_argument, 'u', SRUN, IGNORED, "rlaunch passes output on as it comes"},
    {"kill-on-bad-exit", optional_argument, 'K', SRUN, IGNORED,
     "the other ranks are killed when one fails"},
    {"mpi", required_argument, 0, SRUN, IGNORED,
     "ranks get RANK, WORLD_SIZE and MASTER_ADDR; Open MPI ranks start as singletons"},
    {"overlap", no_argument, 0, SRUN, IGNORED, "every rlaunch is a job of its own"},
    {"exact", no_argument, 0, SRUN, IGNORED, "every rlaunch is a job of its own"},
    {"disable-status", no_argument, 'X', SRUN, IGNORED, "Ctrl-C goes to the ranks"},
    {"quiet", no_argument, 'Q', SRUN, IGNORED, "rlaunch prints nothing of its own"},
    {"wait", required_argument, 'W', SRUN, IGNORED, "rlaunch ends when the first rank fails"},
    /* ignored: placement and binding hints */
    {"hint", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"distribution", required_argument, 'm', BOTH, IGNORED, PLACEMENT},
    {"threads-per-core", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"cores-per-socket", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"sockets-per-node", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"ntasks-per-core", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"ntasks-per-socket", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"core-spec", required_argument, 'S', BOTH, IGNORED, PLACEMENT},
    {"overcommit", no_argument, 'O', BOTH, IGNORED, PLACEMENT},
    {"oversubscribe", no_argument, 's', BOTH, IGNORED, PLACEMENT},
    {"spread-job", no_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"use-min-nodes", no_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"switches", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"network", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"tmp", required_argument, 0, BOTH, IGNORED, "local disk is not scheduled here"},
    {"cpu-bind", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"cpu-freq", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"gpu-bind", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"gpu-freq", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"mem-bind", required_argument, 0, BOTH, IGNORED, PLACEMENT},
    {"no-kill", optional_argument, 'k', BOTH, IGNORED,
     "a job whose node is lost is requeued (or ends NODE_FAIL with --no-requeue)"},
    /* refused */
    {"constraint", required_argument, 'C', BOTH, REFUSED, "nodes have no features to constrain on"},
    {"reservation", required_argument, 0, BOTH, REFUSED, "Trainyard has no reservations"},
    {"begin", required_argument, 'b', SBATCH, VALUE, NULL},
    {"begin", required_argument, 'b', SRUN, REFUSED, "an interactive job starts when it can"},
    {"deadline", required_argument, 0, BOTH, REFUSED, "no deadlines: give --time"},
    {"hold", no_argument, 'H', SRUN, REFUSED, "an interactive job is not held"},
    {"test-only", no_argument, 0, SBATCH, VALUE, NULL},
    {"test-only", no_argument, 0, SRUN, REFUSED,
     "rlaunch runs the job: give trainctl submit --test-only the same options for its "
     "estimated start"},
    {"input", required_argument, 'i', SBATCH, REFUSED, "give the command its input yourself"},
    {"immediate", optional_argument, 'I', SRUN, REFUSED,
     "an interactive job waits for its resources (Ctrl-C cancels it while it waits)"},
    {"verbose", no_argument, 'v', SRUN, IGNORED, "--timing says where the launch's time went"},
    {"quit-on-interrupt", no_argument, 0, SRUN, IGNORED,
     "a second Ctrl-C within 1 s kills the job"},
    {"output", required_argument, 'o', SRUN, REFUSED, "redirect rlaunch's own output"},
    {"error", required_argument, 'e', SRUN, REFUSED, "redirect rlaunch's own output"},
    {"uid", required_argument, 0, BOTH, REFUSED, "a job runs as its submitter"},
    {"gid", required_argument, 0, BOTH, REFUSED, "a job runs as its submitter"},
    {"clusters", required_argument, 'M', BOTH, REFUSED, "one controller is one cluster"},
    {"export-file", required_argument, 0, SBATCH, REFUSED, "give --export NAME=VALUE"},
    {"cpus-per-gpu", required_argument, 0, BOTH, REFUSED, "give -c/--cpus-per-task"},
    {"jobid", required_argument, 0, SRUN, REFUSED,
     "there are no job steps: every rlaunch is a job"},
    {"het-group", required_argument, 0, SRUN, REFUSED, "there are no heterogeneous jobs"},
    {"multi-prog", no_argument, 0, SRUN, REFUSED, "every rank runs the same command"},
    {"container", required_argument, 0, BOTH, REFUSED, "no container support"},
    {"bb", required_argument, 0, BOTH, REFUSED, "no burst buffers"},
    {"bbf", required_argument, 0, BOTH, REFUSED, "no burst buffers"},
    {"batch", required_argument, 0, SBATCH, REFUSED, "nodes have no features to constrain on"},
};
const size_t ty__slurm_n = TY_ARRAY_LEN(ty__slurm_opts);

int ty__slurm_id(size_t i) {
  return ty__slurm_opts[i].letter ? ty__slurm_opts[i].letter : TY__SLURM_ID0 + (int)i;
}

size_t ty__slurm_options(const struct option *base, unsigned tool, struct option *out, size_t cap) {
  size_t n = 0;
  for (; base->name && n + 1 < cap; base++)
    out[n++] = *base;
  for (size_t i = 0; i < ty__slurm_n && n + 1 < cap; i++)
    if (ty__slurm_opts[i].tools & tool)
      out[n++] =
          (struct option){ty__slurm_opts[i].name, ty__slurm_opts[i].has_arg, NULL, ty__slurm_id(i)};
  out[n] = (struct option){NULL, 0, NULL, 0};
  return n;
}

static const ty__slurm_opt *find(int id, unsigned tool) {
  for (size_t i = 0; i < ty__slurm_n; i++)
    if (ty__slurm_id(i) == id && (ty__slurm_opts[i].tools & tool)) return &ty__slurm_opts[i];
  return NULL;
}

void ty__slurm_warn(ty_cli_slurm *s, const char *fmt, ...) {
  char msg[TY_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  s->warnings = ty_xrealloc(s->warnings, (s->n_warnings + 1) * sizeof *s->warnings);
  s->warnings[s->n_warnings++] = ty_strdup(msg);
}

void ty_cli_slurm_close(ty_cli_slurm *s) {
  for (size_t i = 0; i < s->n_warnings; i++)
    free(s->warnings[i]);
  free(s->warnings);
  memset(s, 0, sizeof *s);
}

/* ---- values that need translating ------------------------------------------------------- */

/* gpu, gpu:N, gpu:TYPE:N: GPUs per node, as Slurm's generic resources are. */
static int gres(ty_job_spec *j, ty_cli_slurm *s, const char *v, char *err, size_t err_len) {
  if (strncmp(v, "gpu", 3) != 0 || (v[3] && v[3] != ':') || strchr(v, ','))
    return ty_errf(err, err_len, TY_EINVAL,
                   "--gres: \"%s\" is not gpu[:TYPE]:N (GPUs are the only generic resource "
                   "here)",
                   v);
  const char *last = strrchr(v, ':');
  if (v[3] && last != v + 3 && s)
    ty__slurm_warn(s, "--gres %s: the GPU type is ignored (nodes' GPUs are not typed here)", v);
  if (s) s->gpus_per_task = s->gpus_total = 0;
  return ty__cli_parse_u32("--gres", v[3] ? last + 1 : "1", 0, 1024, &j->gpus_per_node, err,
                           err_len);
}

int ty__cli_layout_arg(ty_job_spec *j, ty_cli_slurm *s, const char *name, const char *v, char *err,
                       size_t err_len) {
  if (!strcmp(name, "gres")) return gres(j, s, v, err, err_len);
  if (!strcmp(name, "gpus") || !strcmp(name, "gpus-per-node"))
    return ty__cli_parse_u32(name[4] ? "--gpus-per-node" : "--gpus", v, 0, 1024, &j->gpus_per_node,
                             err, err_len);
  if (!strcmp(name, "cpus"))
    return ty__cli_parse_u32("-c/--cpus", v, 1, 65536, &j->cpus_per_task, err, err_len);
  if (!strcmp(name, "ntasks-per-node"))
    return ty__cli_parse_u32("--ntasks-per-node", v, 1, 65536, &j->tasks_per_node, err, err_len);
  return ty_errf(err, err_len, TY_EINTERNAL, "--%s: not a task layout option", name);
}

/* --nice[=ADJ]: the priority -ADJ (Slurm's nice lowers it), 100 alone. */
static int nice_to(ty_job_spec *j, const char *v, char *err, size_t err_len) {
  int32_t adj = 100;
  if (v && ty__cli_parse_i32("--nice", v, &adj, err, err_len) != 0) return TY_EINVAL;
  if (adj > -TY_JOB_PRIORITY_MIN || adj < -TY_JOB_PRIORITY_MAX)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--nice: %" PRId32 " is outside %d..%d (it sets the priority to its negative)",
                   adj, -TY_JOB_PRIORITY_MAX, -TY_JOB_PRIORITY_MIN);
  j->priority = -adj;
  return 0;
}

/* A bare number is megabytes, as Slurm's. */
static int size(const char *what, const char *v, uint64_t *out, char *err, size_t err_len) {
  return ty__cli_parse_mem(what, v, false, out, err, err_len);
}

/* ---- --export ----------------------------------------------------------------------------------
 */

int ty__slurm_export_items(const char *v, int (*item)(const char *it, void *ud), void *ud) {
  /* A list when a comma comes before the first '=' (A,B=1; ALL,A=1;
   * NONE,A) or there is no '=': only a leading NAME=VALUE keeps its commas. */
  const char *eq = strchr(v, '='), *comma = strchr(v, ',');
  bool list = !eq || (comma && comma < eq);
  if (!list) return item(v, ud);
  char *copy = ty_strdup(v), *save = NULL;
  int rc = 0;
  for (char *it = strtok_r(copy, ",", &save); it && rc == 0; it = strtok_r(NULL, ",", &save))
    rc = item(it, ud);
  free(copy);
  return rc;
}

/* ---- --begin --------------------------------------------------------------------------------- */

/* "now+N[unit]": seconds (the default), minutes, hours, days or weeks. */
static int begin_relative(const char *v, time_t now, int64_t *out) {
  static const struct {
    const char *unit;
    int64_t secs;
  } units[] = {{"", 1},        {"s", 1},         {"sec", 1},       {"secs", 1},     {"seconds", 1},
               {"m", 60},      {"min", 60},      {"mins", 60},     {"minutes", 60}, {"h", 3600},
               {"hour", 3600}, {"hours", 3600},  {"d", 86400},     {"day", 86400},  {"days", 86400},
               {"w", 604800},  {"week", 604800}, {"weeks", 604800}};
  char *end = NULL;
  long long n = strtoll(v, &end, 10);
  if (end == v || n < 0 || n > 10LL * 366 * 86400) return TY_EINVAL;
  for (size_t i = 0; i < TY_ARRAY_LEN(units); i++)
    if (!strcmp(end, units[i].unit)) {
      *out = ((int64_t)now + n * units[i].secs) * 1000;
      return 0;
    }
  return TY_EINVAL;
}

/* HH:MM[:SS], nothing after: TY_EINVAL when c is not one, or names no
 * time of day (why says which part is wrong: "hour 25 is not 0-23"). */
static int parse_clock(const char *c, int *h, int *mi, int *s, char *why, size_t why_len) {
  int n = 0, k = 0;
  *s = 0;
  if (sscanf(c, "%2d:%2d%n", h, mi, &n) != 2) return TY_EINVAL;
  if (c[n] == ':' && sscanf(c + n, ":%2d%n", s, &k) != 1) return TY_EINVAL;
  n += k;
  if (c[n]) return TY_EINVAL;
  return ty_cli_clock_exists(*h, *mi, *s, why, why_len) ? 0 : TY_EINVAL;
}

/* YYYY-MM-DD[THH:MM[:SS]] or HH:MM[:SS] (today, or tomorrow once past), in
 * local time as sbatch reads them; a day that does not exist (31
 * February) is refused, why saying so, not rolled over into March. */
static int begin_absolute(const char *v, time_t now, int64_t *out, char *why, size_t why_len) {
  struct tm tm;
  localtime_r(&now, &tm);
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, n = 0;
  const char *clock = v;
  bool date = sscanf(v, "%4d-%2d-%2d%n", &y, &mo, &d, &n) == 3;
  if (date) {
    if (v[n] && v[n] != 'T') return TY_EINVAL;
    if (!ty_cli_date_exists(y, mo, d, why, why_len)) return TY_EINVAL;
    clock = v[n] ? v + n + 1 : NULL;
    tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d;
  }
  if (clock && parse_clock(clock, &h, &mi, &s, why, why_len) != 0) return TY_EINVAL;
  tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = s, tm.tm_isdst = -1;
  time_t t = mktime(&tm);
  if (t == (time_t)-1) return TY_EINVAL;
  if (!date && t <= now) t += 86400; /* that time tomorrow */
  *out = (int64_t)t * 1000;
  return 0;
}

/* sbatch's named times: the next such time of day, or the start of today
 * (eligible at once) or of tomorrow. */
static const char *begin_word(const char *v) {
  static const struct {
    const char *word, *clock;
  } words[] = {{"midnight", "00:00"},  {"tomorrow", "00:00"}, {"noon", "12:00"},
               {"elevenses", "11:00"}, {"fika", "15:00"},     {"teatime", "16:00"}};
  for (size_t i = 0; i < TY_ARRAY_LEN(words); i++)
    if (!strcmp(v, words[i].word)) return words[i].clock;
  return NULL;
}

int ty__slurm_begin(const char *v, time_t now, int64_t *out_ms, char *err, size_t err_len) {
  int rc = TY_EINVAL;
  char why[TY_ERR_LEN] = "";
  const char *word = begin_word(v);
  if (!strcmp(v, "now") || !strcmp(v, "today"))
    *out_ms = 0, rc = 0;
  else if (word)
    rc = begin_absolute(word, now, out_ms, why, sizeof why);
  else if (!strncmp(v, "now+", 4))
    rc = begin_relative(v + 4, now, out_ms);
  else
    rc = begin_absolute(v, now, out_ms, why, sizeof why);
  if (rc != 0 && why[0])
    return ty_errf(err, err_len, TY_EINVAL, "--begin: \"%s\" is not a time: %s", v, why);
  if (rc != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--begin: \"%s\" is not now, now+N[s|m|h|d|w], HH:MM[:SS], YYYY-MM-DD, "
                   "YYYY-MM-DDTHH:MM[:SS], today, tomorrow, midnight, noon, elevenses, fika or "
                   "teatime",
                   v);
  return 0;
}

/* --exclusive[=user|mcs]: whole nodes. Slurm's =user and =mcs let jobs of
 * one user or MCS label share a node; here no job shares one, which is
 * stricter and never wrong for the job. */
static int exclusive(ty_job_spec *j, const char *v, char *err, size_t err_len) {
  if (v && strcmp(v, "user") != 0 && strcmp(v, "mcs") != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--exclusive: \"%s\" is not user or mcs (give --exclusive alone for whole "
                   "nodes)",
                   v);
  j->exclusive = true;
  return 0;
}

/* -w/--nodelist, --nodefile and -x/--exclude: the names of a hostlist, or
 * of a file of them (--nodefile; a -w value with a '/', Slurm's rule; a
 * relative path is the caller's), replacing any list given before (the
 * command line's win over #SBATCH lines). */
static int node_list(const char *opt, const char *v, bool file, char ***names, size_t *n, char *err,
                     size_t err_len) {
  char **got = NULL, why[TY_ERR_LEN] = "";
  size_t k = 0;
  int rc = file ? ty_hostnames_read_file(v, TY_JOB_MAX_NODE_NAMES, &got, &k, why, sizeof why)
                : ty_hostnames_parse(v, TY_JOB_MAX_NODE_NAMES, &got, &k, why, sizeof why);
  if (rc != 0) {
    ty_hostnames_free(got, k);
    return ty_errf(err, err_len, TY_EINVAL, "%s: %s", opt, why);
  }
  ty_hostnames_free(*names, *n);
  *names = got, *n = k;
  return 0;
}

/* -D DIR made absolute against cwd (the nodes do not share the caller's). */
static int chdir_to(ty_job_spec *j, const char *v, const char *cwd, char *err, size_t err_len) {
  if (!*v) return ty_errf(err, err_len, TY_EINVAL, "--chdir: must not be empty");
  free(j->cwd);
  if (v[0] == '/' || !cwd) {
    j->cwd = ty_strdup(v);
    return 0;
  }
  j->cwd = ty_xmalloc(strlen(cwd) + strlen(v) + 2);
  sprintf(j->cwd, "%s/%s", cwd, v);
  return 0;
}

/* --propagate[=ALL|NONE|LIMIT,...] (Slurm's names): which of the
 * submitter's soft limits the job carries (ty_rl_submit_process). MEMLOCK,
 * NPROC and RSS never go: the tasks keep the worker's, said in a warning.
 * ALL and NONE stand alone; an empty value is refused (a bare --propagate
 * is ALL, as srun's). */
static int propagate(ty_cli_slurm *s, const char *v, char *err, size_t err_len) {
  static const char *const names[TY_LIMIT_COUNT] = {
      [TY_LIMIT_CORE] = "CORE",   [TY_LIMIT_NOFILE] = "NOFILE", [TY_LIMIT_AS] = "AS",
      [TY_LIMIT_STACK] = "STACK", [TY_LIMIT_DATA] = "DATA",     [TY_LIMIT_FSIZE] = "FSIZE",
      [TY_LIMIT_CPU] = "CPU"};
  unsigned all = (1u << TY_LIMIT_COUNT) - 1, chosen = 0;
  if (v && !*v)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--propagate: the value is empty: give ALL, NONE or a list of limits, or "
                   "--propagate alone for ALL");
  if (v && v[strlen(v) - 1] == ',') /* an empty last item, as an empty first one */
    return ty_errf(err, err_len, TY_EINVAL,
                   "--propagate: \"\" is not ALL, NONE or a limit (AS, CORE, CPU, DATA, "
                   "FSIZE, MEMLOCK, NOFILE, NPROC, RSS, STACK)");
  if (!v || !strcmp(v, "ALL")) chosen = all;
  for (const char *p = v && strcmp(v, "ALL") && strcmp(v, "NONE") ? v : ""; *p;) {
    size_t n = strcspn(p, ",");
    if ((n == 3 && !strncmp(p, "ALL", 3)) || (n == 4 && !strncmp(p, "NONE", 4)))
      return ty_errf(err, err_len, TY_EINVAL,
                     "--propagate=%s: %.*s stands alone, not in a list of limits", v, (int)n, p);
    int l = 0;
    while (l < TY_LIMIT_COUNT && (strlen(names[l]) != n || strncmp(p, names[l], n)))
      l++;
    if (l < TY_LIMIT_COUNT)
      chosen |= 1u << l;
    else if ((n == 7 && !strncmp(p, "MEMLOCK", 7)) || (n == 5 && !strncmp(p, "NPROC", 5)) ||
             (n == 3 && !strncmp(p, "RSS", 3)))
      ty__slurm_warn(s, "--propagate=%.*s ignored: the tasks get the worker's %.*s limit", (int)n,
                     p, (int)n, p);
    else
      return ty_errf(err, err_len, TY_EINVAL,
                     "--propagate: \"%.*s\" is not ALL, NONE or a limit (AS, CORE, CPU, DATA, "
                     "FSIZE, MEMLOCK, NOFILE, NPROC, RSS, STACK)",
                     (int)n, p);
    p += n + (p[n] == ',');
  }
  s->no_propagate = all & ~chosen;
  return 0;
}

static int value(ty_job_spec *j, ty_cli_slurm *s, const char *name, const char *v, const char *cwd,
                 char *err, size_t err_len) {
  /* sbatch's --no-requeue: never requeued (node loss ends it NODE_FAIL,
   * preemption PREEMPTED); --requeue: the cluster's default, requeued. */
  if (!strcmp(name, "test-only")) { /* sbatch --test-only: cmd_submit.c asks for an estimate */
    s->test_only = true;
    return 0;
  }
  if (!strcmp(name, "no-requeue") || !strcmp(name, "requeue")) {
    j->no_requeue = name[0] == 'n';
    return 0;
  }
  if (!strcmp(name, "chdir")) return chdir_to(j, v, cwd, err, err_len);
  if (!strcmp(name, "propagate")) return propagate(s, v, err, err_len);
  if (!strcmp(name, "nice")) return nice_to(j, v, err, err_len);
  if (!strcmp(name, "gres")) return gres(j, s, v, err, err_len);
  if (!strcmp(name, "gpus")) {
    s->gpus_per_task = 0;
    return ty__cli_parse_u32("--gpus", v, 0, 1024 * 100000, &s->gpus_total, err, err_len);
  }
  if (!strcmp(name, "gpus-per-task"))
    return ty__cli_parse_u32("--gpus-per-task", v, 1, 1024, &s->gpus_per_task, err, err_len);
  if (!strcmp(name, "mincpus"))
    return ty__cli_parse_u32("--mincpus", v, 1, 65536, &s->min_cpus, err, err_len);
  if (!strcmp(name, "mem-per-cpu")) {
    s->mem_per_gpu = 0;
    int rc = ty__slurm_mem_option(s, "--mem-per-cpu", err, err_len);
    return rc ? rc : size("--mem-per-cpu", v, &s->mem_per_cpu, err, err_len);
  }
  if (!strcmp(name, "mem-per-gpu")) {
    s->mem_per_cpu = 0;
    int rc = ty__slurm_mem_option(s, "--mem-per-gpu", err, err_len);
    return rc ? rc : size("--mem-per-gpu", v, &s->mem_per_gpu, err, err_len);
  }
  if (!strcmp(name, "exclusive")) return exclusive(j, v, err, err_len);
  if (!strcmp(name, "nodelist"))
    return node_list("--nodelist", v, strchr(v, '/') != NULL, &j->req_nodes, &j->n_req_nodes, err,
                     err_len);
  if (!strcmp(name, "nodefile"))
    return node_list("--nodefile", v, true, &j->req_nodes, &j->n_req_nodes, err, err_len);
  if (!strcmp(name, "exclude"))
    return node_list("--exclude", v, false, &j->exc_nodes, &j->n_exc_nodes, err, err_len);
  if (!strcmp(name, "begin")) return ty__slurm_begin(v, time(NULL), &j->begin_ms, err, err_len);
  if (strcmp(name, "open-mode") != 0)
    return ty_errf(err, err_len, TY_EINTERNAL, "--%s: no translation", name);
  if (strcmp(v, "append") != 0 && strcmp(v, "truncate") != 0)
    return ty_errf(err, err_len, TY_EINVAL, "--open-mode: \"%s\" is not append or truncate", v);
  s->open_mode = v[0];
  return 0;
}

int ty__slurm_arg(ty_job_spec *j, ty_cli_slurm *s, unsigned tool, int id, const char *v,
                  const char *cwd, char *err, size_t err_len) {
  const ty__slurm_opt *o = find(id, tool);
  if (!o) return TY__SLURM_NOT_MINE;
  const char *eq = v ? "=" : "";
  switch (o->kind) {
  case TY__SLURM_VALUE:
    return value(j, s, o->name, v, cwd, err, err_len);
  case TY__SLURM_REFUSED:
    return ty_errf(err, err_len, TY_EINVAL, "--%s%s%s is not supported: %s", o->name, eq,
                   v ? v : "", o->why);
  default:
    ty__slurm_warn(s, "--%s%s%s ignored: %s", o->name, eq, v ? v : "", o->why);
    return 0;
  }
}

int ty__slurm_mem_option(ty_cli_slurm *s, const char *name, char *err, size_t err_len) {
  if (s->mem_given && strcmp(s->mem_given, name))
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s and %s exclude each other, as sbatch's and srun's: give one", s->mem_given,
                   name);
  s->mem_given = name;
  return 0;
}

void ty__slurm_per_node(ty_cli_slurm *s, bool mem, bool gpus) {
  if (mem) s->mem_per_cpu = s->mem_per_gpu = 0;
  if (gpus) s->gpus_per_task = s->gpus_total = 0;
}

int ty__slurm_nodes(ty_job_spec *j, ty_cli_slurm *s, const char *v, uint32_t max, char *err,
                    size_t err_len) {
  const char *dash = strchr(v, '-');
  if (!dash) return ty__cli_parse_u32("--nodes", v, 1, max, &j->nodes, err, err_len);
  char min[32];
  uint32_t lo = 0, hi = 0;
  size_t n = (size_t)(dash - v);
  if (n == 0 || n >= sizeof min)
    return ty_errf(err, err_len, TY_EINVAL, "--nodes: \"%s\" is not N or MIN-MAX", v);
  memcpy(min, v, n), min[n] = '\0';
  if (ty__cli_parse_u32("--nodes", min, 1, max, &lo, err, err_len) != 0 ||
      ty__cli_parse_u32("--nodes", dash + 1, 1, max, &hi, err, err_len) != 0)
    return TY_EINVAL;
  if (hi < lo)
    return ty_errf(err, err_len, TY_EINVAL, "--nodes: %s has its maximum below its minimum", v);
  if (hi != lo)
    ty__slurm_warn(s, "--nodes %s: the job gets exactly %u node%s (the minimum)", v, lo,
                   lo == 1 ? "" : "s");
  j->nodes = lo;
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

/* sbatch's --mincpus N: each node has at least N CPUs allocated. CPUs are
 * allocated per task here, so a node's tasks get enough CPUs each to make
 * N (-n1 --mincpus 4 is -c 4), said in a warning; a layout that has them
 * already is left alone. */
static void min_cpus(ty_job_spec *j, ty_cli_slurm *s) {
  uint32_t tasks = j->tasks_per_node ? j->tasks_per_node : 1;
  uint32_t cpus = j->cpus_per_task ? j->cpus_per_task : 1;
  if (!s->min_cpus || (uint64_t)tasks * cpus >= s->min_cpus) return;
  j->cpus_per_task = (s->min_cpus + tasks - 1) / tasks;
  ty__slurm_warn(s,
                 "--mincpus %u: %u CPUs per task (%u task(s) per node), so that each node has "
                 "at least %u",
                 s->min_cpus, j->cpus_per_task, tasks, s->min_cpus);
}

int ty__slurm_resolve(ty_job_spec *j, ty_cli_slurm *s, char *err, size_t err_len) {
  min_cpus(j, s);
  uint64_t tasks = j->tasks_per_node ? j->tasks_per_node : 1;
  uint64_t cpus = j->cpus_per_task ? j->cpus_per_task : 1, v = 0;
  uint32_t nodes = j->nodes ? j->nodes : 1;
  if (s->gpus_total && s->gpus_total % nodes)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--gpus: %u GPUs in all (a script's --gpus counts the job's, as sbatch's) do "
                   "not divide over %u nodes",
                   s->gpus_total, nodes);
  if (s->gpus_total) j->gpus_per_node = s->gpus_total / nodes;
  if (s->gpus_per_task) {
    if (mul_checked("--gpus-per-task", s->gpus_per_task, tasks, 1024, &v, err, err_len) != 0)
      return TY_EINVAL;
    j->gpus_per_node = (uint32_t)v;
  }
  if (s->mem_per_cpu && mul_checked("--mem-per-cpu", s->mem_per_cpu, cpus * tasks, UINT64_MAX,
                                    &j->mem_per_node, err, err_len) != 0)
    return TY_EINVAL;
  if (s->mem_per_gpu && !j->gpus_per_node)
    return ty_errf(err, err_len, TY_EINVAL, "--mem-per-gpu: the job asks for no GPUs");
  if (s->mem_per_gpu && mul_checked("--mem-per-gpu", s->mem_per_gpu, j->gpus_per_node, UINT64_MAX,
                                    &j->mem_per_node, err, err_len) != 0)
    return TY_EINVAL;
  return 0;
}
