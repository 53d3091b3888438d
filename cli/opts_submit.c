/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `trainctl submit`'s command line into ty_cli_submit_args: a job file, a
 * batch script (its #SBATCH lines first: cli/script.c reads them, this file
 * applies them as options, the command line's win), a --command or a graph
 * job. Pure apart from what a user expects from Slurm: `--export NAME` and
 * `--export=ALL` (a script's default) copy the caller's environment, a
 * relative --cwd or --model is resolved against the caller's cwd, a
 * script is read, and -o/-e's directory is looked for (a warning). Every rejected value yields a
 * message that starts with the option's name (or, in a script, its file and line).
 */
#include "cli/cli_internal.h"
#include "cli/rlaunch.h"
#include "cli/script.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h> /* environ */

static void push_str(char ***arr, size_t *n, const char *s) {
  *arr = ty_xrealloc(*arr, (*n + 1) * sizeof **arr);
  (*arr)[(*n)++] = ty_strdup(s);
}

static const char *opt_name(const struct option *opts, int id) {
  for (; opts->name; opts++)
    if (opts->val == id) return opts->name;
  return "?";
}

/* ---- submit ---------------------------------------------------------------- */

/* Options with a short alias return that letter; the others count up from
 * TY__CLI_OPT_FIRST, past every letter. */
enum {
  S_COMMAND = TY__CLI_OPT_FIRST,
  S_NTASKS,
  S_MEM,
  S_PRIORITY,
  S_SIGNAL,
  S_REQUEUE,
  S_CWD,
  S_EXPORT,
  S_KILL_INVALID,
  S_MODEL,
  S_CONFIG,
  S_PARALLELISM,
  S_JSON,
  S_WRAP,
  S_PARSABLE,
  S_GPUS_PER_NODE,
  S_WAIT = 'W',
  S_HOLD = 'H',
  S_OUTPUT = 'o',
  S_ERROR = 'e',
  S_QUIET = 'q',
  S_HELP = 'h',
  /* sbatch's short options */
  S_GPUS = 'G',
  S_CPUS = 'c',
  S_NODES = 'N',
  S_NTASKS_ALL = 'n',
  S_QUEUE = 'p',
  S_NAME = 'J',
  S_TIME = 't',
  S_ARRAY = 'a',
  S_DEPENDENCY = 'd',
};
/* Ours, then the letters of sbatch's in ty__slurm_opts from "D:" on. */
static const char submit_shortopts[] = "qhG:c:N:n:p:J:t:a:d:o:e:D:A:Hw:x:C:Wi:kL:M:m:OsS:b:";
static const struct option submit_opts[] = {
    {"command", no_argument, NULL, S_COMMAND},
    {"model", required_argument, NULL, S_MODEL},
    {"config", required_argument, NULL, S_CONFIG},
    {"parallelism", required_argument, NULL, S_PARALLELISM},
    {"gpus", required_argument, NULL, S_GPUS},
    {"cpus", required_argument, NULL, S_CPUS},
    {"nodes", required_argument, NULL, S_NODES},
    {"ntasks-per-node", required_argument, NULL, S_NTASKS},
    {"mem", required_argument, NULL, S_MEM},
    {"queue", required_argument, NULL, S_QUEUE},
    {"priority", required_argument, NULL, S_PRIORITY},
    {"name", required_argument, NULL, S_NAME},
    {"array", required_argument, NULL, S_ARRAY},
    {"dependency", required_argument, NULL, S_DEPENDENCY},
    {"kill-on-invalid-dep", required_argument, NULL, S_KILL_INVALID},
    {"time", required_argument, NULL, S_TIME},
    {"signal", required_argument, NULL, S_SIGNAL},
    {"requeue-on-failure", required_argument, NULL, S_REQUEUE},
    {"cwd", required_argument, NULL, S_CWD},
    {"export", required_argument, NULL, S_EXPORT},
    {"quiet", no_argument, NULL, S_QUIET},
    {"json", no_argument, NULL, S_JSON},
    {"help", no_argument, NULL, S_HELP},
    /* sbatch's spellings */
    {"ntasks", required_argument, NULL, S_NTASKS_ALL},
    {"cpus-per-task", required_argument, NULL, S_CPUS},
    {"gpus-per-node", required_argument, NULL, S_GPUS_PER_NODE},
    {"partition", required_argument, NULL, S_QUEUE},
    {"job-name", required_argument, NULL, S_NAME},
    {"output", required_argument, NULL, S_OUTPUT},
    {"error", required_argument, NULL, S_ERROR},
    {"wrap", required_argument, NULL, S_WRAP},
    {"parsable", no_argument, NULL, S_PARSABLE},
    {"wait", no_argument, NULL, S_WAIT},
    {"hold", no_argument, NULL, S_HOLD},
    {NULL, 0, NULL, 0},
};

/* submit_opts, then sbatch's in ty__slurm_opts (built once; trainctl
 * parses on one thread). */
static const struct option *submit_options(void) {
  static struct option all[96];
  static bool built;
  if (!built) ty__slurm_options(submit_opts, TY__SLURM_SBATCH, all, TY_ARRAY_LEN(all));
  built = true;
  return all;
}

static bool valid_env_name(const char *s, size_t n) {
  if (n == 0 || isdigit((unsigned char)s[0])) return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '_') return false;
  return true;
}

static int add_export(ty_job_spec *j, const char *v, char *err, size_t err_len) {
  const char *eq = strchr(v, '=');
  size_t n = eq ? (size_t)(eq - v) : strlen(v);
  if (!valid_env_name(v, n))
    return ty_errf(err, err_len, TY_EINVAL,
                   "--export: \"%s\" is not NAME=VALUE (NAME: letters, digits, _)", v);
  if (eq) {
    push_str(&j->env, &j->envc, v);
    return 0;
  }
  const char *cur = getenv(v);
  if (!cur)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--export: %s is not set in your environment (use %s=VALUE)", v, v);
  char *kv = ty_xmalloc(n + strlen(cur) + 2);
  sprintf(kv, "%s=%s", v, cur);
  push_str(&j->env, &j->envc, kv);
  free(kv);
  return 0;
}

/* --export's value, as sbatch takes it: NAME=VALUE (the value may hold
 * commas) or NAME alone, or a comma list whose items are ALL (your
 * environment), NONE (none of it) or NAME[=VALUE], e.g. ALL,A=1 or A,B. */
typedef struct export_ctx {
  ty_cli_submit_args *a;
  char *err;
  size_t err_len;
} export_ctx;

static int export_item(const char *item, void *ud) {
  export_ctx *x = ud;
  if (!strcmp(item, "ALL")) x->a->export_all = true;
  if (!strcmp(item, "ALL") || !strcmp(item, "NONE")) return 0;
  return add_export(&x->a->job, item, x->err, x->err_len);
}

static int submit_export(ty_cli_submit_args *a, const char *v, char *err, size_t err_len) {
  a->export_given = true;
  export_ctx x = {a, err, err_len};
  return ty__slurm_export_items(v, export_item, &x);
}

static bool env_has(const ty_job_spec *j, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < j->envc; i++)
    if (!strncmp(j->env[i], name, n) && j->env[i][n] == '=') return true;
  return false;
}

/* sbatch's SLURM_SUBMIT_DIR is the directory it ran in, which -D/--chdir
 * does not change. The worker sets it to the job's working directory
 * unless the job carries it: so it is sent only when the two differ (and
 * the job's --export did not set it). */
static void submit_dir(ty_job_spec *j, const char *cwd) {
  if (!j->cwd || !strcmp(j->cwd, cwd) || env_has(j, "SLURM_SUBMIT_DIR")) return;
  char *kv = ty_xmalloc(strlen(cwd) + sizeof "SLURM_SUBMIT_DIR=");
  sprintf(kv, "SLURM_SUBMIT_DIR=%s", cwd);
  push_str(&j->env, &j->envc, kv);
  free(kv);
}

/* Adds every variable of environ that rlaunch would pass and that the job
 * does not set already (its --export NAME=VALUE wins). Not a
 * SLURM_SUBMIT_DIR, SLURM_SUBMIT_HOST or SLURM_OPEN_MODE: a submit from
 * inside a job has its job's, and this one's are where this submit runs
 * (trainctl sets the host) and its own --open-mode. */
static void export_environment(ty_job_spec *j) {
  size_t given = j->envc;
  for (char **e = environ; *e; e++) {
    if (ty_rl_env_denied(*e, false) || !strncmp(*e, "SLURM_SUBMIT_DIR=", 17) ||
        !strncmp(*e, "SLURM_SUBMIT_HOST=", 18) || !strncmp(*e, "SLURM_OPEN_MODE=", 16))
      continue;
    size_t n = (size_t)(strchr(*e, '=') - *e);
    bool set = false;
    for (size_t i = 0; i < given && !set; i++)
      set = !strncmp(j->env[i], *e, n) && j->env[i][n] == '=';
    if (!set) push_str(&j->env, &j->envc, *e);
  }
}

/* A path made absolute against cwd (the daemons do not share the caller's). */
static int set_path(const char *what, char **field, const char *v, const char *cwd, char *err,
                    size_t err_len) {
  if (!*v) return ty_errf(err, err_len, TY_EINVAL, "%s: must not be empty", what);
  free(*field);
  if (v[0] == '/' || !cwd) {
    *field = ty_strdup(v);
    return 0;
  }
  *field = ty_xmalloc(strlen(cwd) + strlen(v) + 2);
  sprintf(*field, "%s/%s", cwd, v);
  return 0;
}

static int parse_yes_no(const char *v, ty_dep_invalid *out, char *err, size_t err_len) {
  if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1"))
    *out = TY_DEP_INVALID_KILL;
  else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0"))
    *out = TY_DEP_INVALID_KEEP;
  else
    return ty_errf(err, err_len, TY_EINVAL, "--kill-on-invalid-dep: \"%s\" is not yes or no", v);
  return 0;
}

static int job_option(ty_job_spec *j, int id, const char *v, const char *cwd, char *err,
                      size_t err_len) {
  switch (id) {
  case S_GPUS:
  case S_GPUS_PER_NODE:
    return ty__cli_layout_arg(j, NULL, id == S_GPUS ? "gpus" : "gpus-per-node", v, err, err_len);
  case S_CPUS:
    return ty__cli_layout_arg(j, NULL, "cpus", v, err, err_len);
  case S_NTASKS:
    return ty__cli_layout_arg(j, NULL, "ntasks-per-node", v, err, err_len);
  case S_MEM: /* 0: sbatch's "all of the node's memory" (the queue's max_mem, or no limit) */
    return ty__cli_parse_job_mem(v, &j->mem_per_node, err, err_len);
  case S_QUEUE:
    return ty__cli_set_queue(&j->queue, v, err, err_len);
  case S_PRIORITY:
    return ty__cli_parse_priority("--priority", v, &j->priority, err, err_len);
  case S_NAME:
    return ty__cli_set_text("--name", &j->name, v, err, err_len);
  case S_TIME:
    return ty_parse_time_limit("--time", v, &j->time_limit_s, err, err_len);
  case S_SIGNAL:
    return ty_cli_parse_signal("--signal", v, j, err, err_len);
  case S_REQUEUE:
    return ty__cli_parse_u32("--requeue-on-failure", v, 0, 100, &j->max_rank_failure_requeues, err,
                             err_len);
  case S_CWD:
    return set_path("--cwd", &j->cwd, v, cwd, err, err_len);
  case S_ARRAY:
    ty_array_spec_close(&j->array);
    return ty_array_parse("--array", v, &j->array, err, err_len);
  case S_DEPENDENCY:
    free(j->deps), j->deps = NULL, j->n_deps = 0;
    return ty_dep_parse("--dependency", v, &j->deps, &j->n_deps, &j->deps_any, err, err_len);
  case S_KILL_INVALID:
    return parse_yes_no(v, &j->on_invalid_dep, err, err_len);
  case S_HOLD:
    j->hold = true;
    return 0;
  default:
    return ty_errf(err, err_len, TY_EINTERNAL, "unhandled option");
  }
}

/* ---- --signal SIG[@SECONDS] ------------------------------------------------- */

static const struct {
  const char *name;
  int sig;
} signal_names[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT}, {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CONT", SIGCONT},
    {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"URG", SIGURG},   {"XCPU", SIGXCPU}, {"WINCH", SIGWINCH},
};

static int parse_signal_name(const char *what, const char *s, size_t n, uint32_t *out, char *err,
                             size_t err_len) {
  char buf[16];
  if (n == 0 || n >= sizeof buf)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: \"%.*s\" is not a signal (examples: USR1, TERM, 10)", what,
                   (int)(n < 64 ? n : 64), s);
  memcpy(buf, s, n), buf[n] = '\0';
  if (isdigit((unsigned char)buf[0])) return ty__cli_parse_u32(what, buf, 1, 64, out, err, err_len);
  const char *name = strncasecmp(buf, "SIG", 3) == 0 ? buf + 3 : buf;
  for (size_t i = 0; i < TY_ARRAY_LEN(signal_names); i++)
    if (strcasecmp(name, signal_names[i].name) == 0) {
      *out = (uint32_t)signal_names[i].sig;
      return 0;
    }
  return ty_errf(err, err_len, TY_EINVAL,
                 "%s: \"%s\" is not a signal name (examples: USR1, SIGUSR2, TERM, 10)", what, buf);
}

int ty_cli_parse_signal_name(const char *what, const char *s, uint32_t *out, char *err,
                             size_t err_len) {
  return parse_signal_name(what, s, strlen(s), out, err, err_len);
}

int ty_cli_parse_signal(const char *what, const char *s, ty_job_spec *j, char *err,
                        size_t err_len) {
  size_t flags = strspn(s, "BR");
  bool batch = false;
  if (flags && flags <= 2 && s[flags] == ':') {
    batch = memchr(s, 'B', flags) != NULL;
    s += flags + 1;
  }
  /* Slurm's SIG[@TIME]: a bare value is the signal (a name or a number),
   * 60 s before the limit. */
  const char *at = strchr(s, '@');
  uint32_t sig = SIGUSR1, secs = 60;
  if (parse_signal_name(what, s, at ? (size_t)(at - s) : strlen(s), &sig, err, err_len) != 0)
    return TY_EINVAL;
  if (at && ty_parse_duration(at + 1, &secs) != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: \"%s\" is not SIG[@SECONDS] (examples: USR1, USR1@300, TERM@5m)", what, s);
  if (secs == 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: the warning must come at least 1 s before the limit", what);
  j->warn_signal = sig, j->warn_before_s = secs, j->warn_batch_only = batch;
  return 0;
}

/* Defaults a command job gets from the caller; the controller fills the rest. */
static void command_defaults(ty_job_spec *j, const char *cwd, const char *user) {
  if (!j->cwd && cwd) j->cwd = ty_strdup(cwd);
  if (!j->user && user) j->user = ty_strdup(user);
  if (!j->name && j->argc) {
    const char *base = strrchr(j->argv[0], '/');
    j->name = ty_strdup(base && base[1] ? base + 1 : j->argv[0]);
  }
}

/* A graph job's name: its model file's, less ".onnx". */
static void graph_defaults(ty_job_spec *j) {
  j->kind = TY_JOB_KIND_GRAPH;
  if (j->name || !j->model_path) return;
  const char *base = strrchr(j->model_path, '/');
  base = base ? base + 1 : j->model_path;
  size_t n = strlen(base);
  if (n > 5 && strcmp(base + n - 5, ".onnx") == 0) n -= 5;
  j->name = ty_xmalloc(n + 1);
  memcpy(j->name, base, n), j->name[n] = '\0';
}

static int submit_positional(ty_cli_submit_args *a, ty_opts *it, const char *v, char *err,
                             size_t err_len) {
  if (a->command_mode || a->script) {
    ty_opts_stop(it); /* the command's (the script's) own options are not ours */
    push_str(&a->job.argv, &a->job.argc, v);
    return 0;
  }
  if (a->file || a->graph_mode)
    return ty_errf(err, err_len, TY_EINVAL, "submit: unexpected argument \"%s\"%s", v,
                   a->graph_mode ? " (a graph job is --model and --config)" : "");
  if (ty_cli_is_script(v)) {
    ty_opts_stop(it); /* what follows is the script's arguments, as for sbatch */
    a->script = ty_strdup(v);
    return 0;
  }
  a->file = ty_strdup(v);
  return 0;
}

static int graph_check(const ty_cli_submit_args *a, char *err, size_t err_len) {
  if (a->command_mode)
    return ty_errf(err, err_len, TY_EINVAL, "submit: give --model or --command, not both");
  if (a->file) return ty_errf(err, err_len, TY_EINVAL, "submit: give a FILE or --model, not both");
  if (!a->job.model_path)
    return ty_errf(err, err_len, TY_EINVAL,
                   "submit --config: a graph job also needs --model M.onnx");
  if (!a->config_file)
    return ty_errf(err, err_len, TY_EINVAL,
                   "submit --model: a graph job also needs --config C.pb (an encoded "
                   "trainyard.TrainConfig)");
  return 0;
}

/* A batch script: a SCRIPT file, or the one --wrap makes. */
static bool scripted(const ty_cli_submit_args *a) {
  return a->script || a->wrap;
}

static int submit_check(ty_cli_submit_args *a, const char *first_job_opt, char *err,
                        size_t err_len) {
  if (a->help) return 0;
  if ((a->output || a->error || a->slurm.open_mode) && !scripted(a))
    return ty_errf(err, err_len, TY_EINVAL,
                   "--%s applies to batch scripts (trainctl submit SCRIPT); a command job's "
                   "output is kept by the workers: trainctl logs ID",
                   a->output  ? "output"
                   : a->error ? "error"
                              : "open-mode");
  if (a->graph_mode) return graph_check(a, err, err_len);
  if (a->command_mode || scripted(a)) {
    if (a->file)
      return ty_errf(err, err_len, TY_EINVAL, "submit: give a FILE or --command, not both");
    if (a->job.argc == 0 && !scripted(a))
      return ty_errf(err, err_len, TY_EINVAL,
                     "submit --command: no command given (e.g. trainctl "
                     "submit --command --gpus 1 -- python train.py)");
    if (a->job.no_requeue && a->job.max_rank_failure_requeues)
      return ty_errf(err, err_len, TY_EINVAL,
                     "--no-requeue: the job is never requeued, so it cannot be with "
                     "--requeue-on-failure %u (give one of them)",
                     a->job.max_rank_failure_requeues);
    if (a->job.warn_signal && a->job.time_limit_s && a->job.warn_before_s >= a->job.time_limit_s)
      return ty_errf(err, err_len, TY_EINVAL,
                     "--signal: %u s before the limit is not within --time (%u s)",
                     a->job.warn_before_s, a->job.time_limit_s);
    return 0;
  }
  if (!a->file)
    return ty_errf(err, err_len, TY_EINVAL,
                   "submit: missing SCRIPT, FILE (a binary trainyard.Job), --wrap STRING or "
                   "--command -- CMD ARGS...");
  if (first_job_opt)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--%s only applies with --command or a batch script (a job file "
                   "carries its own resources)",
                   first_job_opt);
  return 0;
}

typedef struct submit_ctx {
  ty_cli_submit_args *out;
  const char *cwd;
  const char *first_job_opt; /* the first resource option, for file mode's error */
  bool directive;            /* parsing a batch script's #SBATCH line */
  bool after_quiet;          /* the option just before was -q/--quiet */
} submit_ctx;

/* Options a script's directive may not set: they are about this command
 * line, not the job. */
static int directive_refuses(int id, const char *v, char *err, size_t err_len) {
  switch (id) {
  case TY_OPT_POSITIONAL:
    return ty_errf(err, err_len, TY_EINVAL, "unexpected word \"%s\" (not an option)", v);
  case S_COMMAND:
  case S_MODEL:
  case S_CONFIG:
  case S_PARALLELISM:
  case S_QUIET:
  case S_JSON:
  case S_HELP:
  case S_WRAP:
    return ty_errf(err, err_len, TY_EINVAL, "--%s is not a job option a script can set",
                   opt_name(submit_opts, id));
  default:
    return 0;
  }
}

/* Slurm's options of ty__slurm_opts, and -N N or MIN-MAX; TY__SLURM_NOT_MINE
 * for the others. */
static int slurm_arg(submit_ctx *c, int id, const char *v, char *err, size_t err_len) {
  ty_cli_submit_args *a = c->out;
  bool gpus = id == S_GPUS || id == S_GPUS_PER_NODE;
  if (id == S_MEM && ty__slurm_mem_option(&a->slurm, "--mem", err, err_len)) return TY_EINVAL;
  if (id == S_MEM || gpus) ty__slurm_per_node(&a->slurm, id == S_MEM, gpus);
  if (id == S_GPUS && c->directive) /* sbatch's -G/--gpus: the whole job's */
    return ty__cli_parse_u32("--gpus", v, 0, 1024 * 100000, &a->slurm.gpus_total, err, err_len);
  if (id == S_NODES) return ty__slurm_nodes(&a->job, &a->slurm, v, 100000, err, err_len);
  return ty__slurm_arg(&a->job, &a->slurm, TY__SLURM_SBATCH, id, v, c->cwd, err, err_len);
}

/* A Slurm user's "-q normal" is sbatch's --qos; here -q is --quiet, so the
 * QOS would be read as the job FILE and refused later for something else
 * ("give no FILE beside --wrap", "cannot open normal"). A word right after
 * -q that is no file says what happened instead. */
static int quiet_then_word(const char *v, char *err, size_t err_len) {
  if (access(v, F_OK) == 0) return 0;
  return ty_errf(err, err_len, TY_EINVAL,
                 "-q is trainctl's --quiet (print only the job id), not sbatch's --qos, so "
                 "\"%s\" was read as the job FILE, and there is no such file; a QOS means "
                 "nothing here: leave it out, or give --qos %s (accepted with a warning)",
                 v, v);
}

static int submit_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  submit_ctx *c = ud;
  ty_cli_submit_args *a = c->out;
  int rc = c->directive ? directive_refuses(id, v, err, err_len) : 0;
  if (rc == 0 && c->after_quiet && id == TY_OPT_POSITIONAL && !c->directive && !a->command_mode &&
      !a->script)
    rc = quiet_then_word(v, err, err_len);
  c->after_quiet = id == S_QUIET;
  if (rc != 0) return rc;
  if (id != TY_OPT_POSITIONAL && (rc = slurm_arg(c, id, v, err, err_len)) != TY__SLURM_NOT_MINE) {
    if (!c->first_job_opt) c->first_job_opt = opt_name(submit_options(), id);
    return rc;
  }
  switch (id) {
  case S_EXPORT:
    if (!c->first_job_opt) c->first_job_opt = "export";
    return submit_export(a, v, err, err_len);
  case S_OUTPUT:
    return ty__cli_set_text("--output", &a->output, v, err, err_len);
  case S_ERROR:
    return ty__cli_set_text("--error", &a->error, v, err, err_len);
  case S_WRAP:
    return ty__cli_set_text("--wrap", &a->wrap, v, err, err_len);
  case TY_OPT_POSITIONAL:
    return submit_positional(a, it, v, err, err_len);
  case S_COMMAND:
    a->command_mode = true;
    return 0;
  case S_QUIET:
  case S_PARSABLE:
    a->quiet = true;
    return 0;
  case S_WAIT:
    a->wait = true;
    return 0;
  case S_JSON:
    a->json = true;
    return 0;
  case S_HELP:
    a->help = true;
    return 0;
  case S_MODEL:
    a->graph_mode = true;
    return set_path("--model", &a->job.model_path, v, c->cwd, err, err_len);
  case S_CONFIG:
    a->graph_mode = true;
    return ty__cli_set_text("--config", &a->config_file, v, err, err_len);
  case S_NTASKS_ALL:
    if (!c->first_job_opt) c->first_job_opt = "ntasks";
    return ty__cli_parse_u32("--ntasks", v, 1, UINT32_MAX, &a->ntasks, err, err_len);
  case S_PARALLELISM:
    a->graph_mode = true;
    if (ty_parallelism_parse(v, &a->job.parallelism) != 0)
      return ty_errf(err, err_len, TY_EINVAL,
                     "--parallelism: \"%s\" is not auto, data, tensor or grid", v);
    return 0;
  default:
    if (!c->first_job_opt) c->first_job_opt = opt_name(submit_opts, id);
    return job_option(&a->job, id, v, c->cwd, err, err_len);
  }
}

/* In a script, -q is sbatch's --qos (trainctl's own -q, --quiet, is no job
 * option): "-q X" and "-qX" are read as --qos. The words are the caller's
 * heap strings; a rewritten one is replaced by another, which it frees. */
static int apply_directive(char **words, int n, void *ud, char *err, size_t err_len) {
  for (int i = 0; i < n; i++) {
    if (strncmp(words[i], "-q", 2) != 0 || words[i][2] == '-') continue;
    size_t len = strlen(words[i]) + sizeof "--qos=";
    char *qos = ty_xmalloc(len);
    snprintf(qos, len, "--qos%s%s", words[i][2] ? "=" : "", words[i] + 2);
    free(words[i]);
    words[i] = qos;
  }
  return ty__cli_parse(n, words, submit_shortopts, submit_options(), submit_arg, ud, err, err_len);
}

/* sbatch's input variables, read as the options they stand for (flags
 * take any value), after a script's directives and before the command
 * line, as sbatch reads them: each one that has an option here, so that
 * one Trainyard refuses or ignores is refused or warned about as the
 * option is, never dropped without a word. */
static const struct {
  const char *var, *option;
  bool flag;
} sbatch_vars[] = {
    {"SBATCH_PARTITION", "--partition", false},
    {"SBATCH_TIMELIMIT", "--time", false},
    {"SBATCH_JOB_NAME", "--job-name", false},
    {"SBATCH_ACCOUNT", "--account", false},
    {"SBATCH_QOS", "--qos", false},
    {"SBATCH_GRES", "--gres", false},
    {"SBATCH_GPUS", "--gpus", false},
    {"SBATCH_GPUS_PER_NODE", "--gpus-per-node", false},
    {"SBATCH_GPUS_PER_TASK", "--gpus-per-task", false},
    {"SBATCH_MEM_PER_CPU", "--mem-per-cpu", false},
    {"SBATCH_MEM_PER_GPU", "--mem-per-gpu", false},
    {"SBATCH_MEM_PER_NODE", "--mem", false},
    {"SBATCH_EXPORT", "--export", false},
    {"SBATCH_OPEN_MODE", "--open-mode", false},
    {"SBATCH_SIGNAL", "--signal", false},
    {"SBATCH_ARRAY_INX", "--array", false},
    {"SBATCH_EXCLUSIVE", "--exclusive", true},
    {"SBATCH_REQUEUE", "--requeue", true},
    {"SBATCH_NO_REQUEUE", "--no-requeue", true},
    {"SBATCH_WAIT", "--wait", true},
    {"SBATCH_OUTPUT", "--output", false},
    {"SBATCH_ERROR", "--error", false},
    /* Refused, as their options are: the job would run where its author
     * said it must not. */
    {"SBATCH_CONSTRAINT", "--constraint", false},
    {"SBATCH_RESERVATION", "--reservation", false},
    {"SBATCH_CLUSTERS", "--clusters", false},
    {"SBATCH_CONTAINER", "--container", false},
    {"SBATCH_CPUS_PER_GPU", "--cpus-per-gpu", false},
    {"SBATCH_BATCH", "--batch", false},
    /* Ignored with their options' warnings. */
    {"SBATCH_WCKEY", "--wckey", false},
    {"SBATCH_PROFILE", "--profile", false},
    {"SBATCH_ACCTG_FREQ", "--acctg-freq", false},
    {"SBATCH_DISTRIBUTION", "--distribution", false},
    {"SBATCH_HINT", "--hint", false},
    {"SBATCH_CORE_SPEC", "--core-spec", false},
    {"SBATCH_THREADS_PER_CORE", "--threads-per-core", false},
    {"SBATCH_NETWORK", "--network", false},
    {"SBATCH_REQ_SWITCH", "--switches", false},
    {"SBATCH_CPU_FREQ_REQ", "--cpu-freq", false},
    {"SBATCH_MEM_BIND", "--mem-bind", false},
    {"SBATCH_GPU_BIND", "--gpu-bind", false},
    {"SBATCH_GPU_FREQ", "--gpu-freq", false},
    {"SBATCH_GET_USER_ENV", "--get-user-env", true},
    {"SBATCH_NO_KILL", "--no-kill", true},
    {"SBATCH_OVERCOMMIT", "--overcommit", true},
    {"SBATCH_SPREAD_JOB", "--spread-job", true},
    {"SBATCH_USE_MIN_NODES", "--use-min-nodes", true},
};

static int sbatch_environment(submit_ctx *c, char *err, size_t err_len) {
  int rc = 0;
  /* Variables have no order to say which of the two wins. */
  if (getenv("SBATCH_REQUEUE") && getenv("SBATCH_NO_REQUEUE"))
    return ty_errf(err, err_len, TY_EINVAL,
                   "SBATCH_REQUEUE and SBATCH_NO_REQUEUE are both set (your environment): unset "
                   "one, or give --requeue or --no-requeue");
  for (size_t i = 0; i < TY_ARRAY_LEN(sbatch_vars) && rc == 0; i++) {
    const char *v = getenv(sbatch_vars[i].var);
    if (!v) continue;
    char *words[] = {(char *)sbatch_vars[i].option, sbatch_vars[i].flag ? NULL : (char *)v};
    char why[TY_ERR_LEN] = "";
    rc = ty__cli_parse(sbatch_vars[i].flag ? 1 : 2, words, submit_shortopts, submit_options(),
                       submit_arg, c, why, sizeof why);
    if (rc != 0)
      ty_errf(err, err_len, rc, "%s=%s (your environment): %s", sbatch_vars[i].var, v, why);
  }
  return rc;
}

/* A batch script or --wrap: a script's directives, then sbatch's input
 * variables, then the command line again, whose options win (sbatch's
 * order); then the command that runs the script, and the script's name as
 * the job's by default. */
static int script_pass(int argc, char **argv, submit_ctx *c, char *err, size_t err_len) {
  ty_cli_submit_args *a = c->out;
  char *path = a->script, *text = NULL;
  a->script = NULL;
  ty_cli_submit_args_close(a);
  int rc = path ? ty_cli_script_read(path, &text, err, err_len) : 0;
  bool from_stdin = path && !strcmp(path, TY_CLI_STDIN_SCRIPT);
  if (rc == 0 && from_stdin && !text[strspn(text, " \t\r\n")])
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "submit: the script on standard input is empty (as sbatch's \"Batch script is "
                 "empty!\"); give a SCRIPT, --wrap or --command");
  else if (rc == 0 && from_stdin && strncmp(text, "#!", 2) != 0)
    rc = ty_errf(err, err_len, TY_EINVAL,
                 "submit: the script on standard input does not start with #! and its "
                 "interpreter (e.g. #!/bin/bash), as sbatch wants; or give a SCRIPT, --wrap or "
                 "--command");
  c->directive = true;
  if (rc == 0 && path) rc = ty_cli_script_directives(path, text, apply_directive, c, err, err_len);
  a->slurm.mem_given = NULL; /* each source's memory option may override another's */
  if (rc == 0) rc = sbatch_environment(c, err, err_len);
  a->slurm.mem_given = NULL;
  c->directive = false;
  if (rc == 0)
    rc = ty__cli_parse(argc, argv, submit_shortopts, submit_options(), submit_arg, c, err, err_len);
  if (!path) return rc; /* --wrap: wrap_pass goes on */
  if (rc == 0 && from_stdin && !a->script) a->script = ty_strdup(path); /* no positional names it */
  if (rc == 0 && !a->job.name && from_stdin) a->job.name = ty_strdup("sbatch"); /* sbatch's */
  if (rc == 0 && !a->job.name) {
    const char *base = strrchr(path, '/');
    a->job.name = ty_strdup(base && base[1] ? base + 1 : path);
  }
  if (rc == 0) ty_cli_script_command(&a->job, text, a->output, a->error);
  free(text);
  free(path);
  return rc;
}

/* sbatch --wrap: the string is the body of a /bin/sh script, named "wrap"
 * unless --name says otherwise; nothing else may say what to run. */
static int wrap_pass(ty_cli_submit_args *a, char *err, size_t err_len) {
  if (a->script || a->file || a->command_mode || a->graph_mode)
    return ty_errf(err, err_len, TY_EINVAL,
                   "--wrap: the string is the job's command; give no %s beside it",
                   a->script         ? "SCRIPT"
                   : a->file         ? "FILE"
                   : a->command_mode ? "--command"
                                     : "--model or --config");
  if (!a->wrap[0] || strspn(a->wrap, " \t\n") == strlen(a->wrap))
    return ty_errf(err, err_len, TY_EINVAL, "--wrap: the command string is empty");
  ty_buf text;
  ty_buf_init(&text);
  ty_buf_printf(&text, "#!/bin/sh\n%s\n", a->wrap);
  if (!a->job.name) a->job.name = ty_strdup("wrap");
  ty_cli_script_command(&a->job, (const char *)text.data, a->output, a->error);
  ty_buf_close(&text);
  return 0;
}

/* ---- a script on standard input -------------------------------------------------------- */

static bool stdin_allowed;

void ty_cli_submit_stdin_script(bool on) {
  stdin_allowed = on;
}

/* sbatch given no script reads one from its standard input: here when the
 * caller allowed it and stdin is a pipe or a file (never a terminal, and
 * not /dev/null: a character device). */
static bool script_on_stdin(const ty_cli_submit_args *a) {
  struct stat st;
  if (!stdin_allowed || a->script || a->wrap || a->file || a->command_mode || a->graph_mode ||
      a->help || fstat(STDIN_FILENO, &st) != 0)
    return false;
  return S_ISFIFO(st.st_mode) || S_ISREG(st.st_mode);
}

/* sbatch does not look, and a job whose -o or -e directory is missing fails
 * at its start with its output lost: a warning now, naming the directory
 * (a node may have it: the job is still submitted). Patterns in the
 * directory part are known only on the node; a relative one is the job's
 * working directory's. */
static void warn_missing_dir(ty_cli_submit_args *a, const char *opt, const char *pattern) {
  const char *slash = pattern ? strrchr(pattern, '/') : NULL;
  if (!slash || slash == pattern || memchr(pattern, '%', (size_t)(slash - pattern))) return;
  const char *base = pattern[0] == '/' || !a->job.cwd ? "" : a->job.cwd;
  char dir[4096];
  int n = snprintf(dir, sizeof dir, "%s%s%.*s", base, *base ? "/" : "", (int)(slash - pattern),
                   pattern);
  struct stat st;
  if (n < 0 || (size_t)n >= sizeof dir || (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))) return;
  ty__slurm_warn(&a->slurm,
                 "%s %s: the directory %s does not exist here; the job fails at its start "
                 "unless its node has it",
                 opt, pattern, dir);
}

int ty_cli_parse_submit(int argc, char **argv, const char *cwd, const char *user,
                        ty_cli_submit_args *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  submit_ctx c = {.out = out, .cwd = cwd};
  int rc =
      ty__cli_parse(argc, argv, submit_shortopts, submit_options(), submit_arg, &c, err, err_len);
  if (rc == 0 && script_on_stdin(out)) out->script = ty_strdup(TY_CLI_STDIN_SCRIPT);
  if (rc == 0 && (out->script || out->wrap) && !out->help)
    rc = script_pass(argc, argv, &c, err, err_len);
  if (rc == 0 && out->wrap && !out->help) rc = wrap_pass(out, err, err_len);
  if (rc == 0) rc = submit_check(out, c.first_job_opt, err, err_len);
  if (rc == 0) rc = ty__cli_spread_ntasks(&out->job, out->ntasks, 65536, err, err_len);
  if (rc == 0) rc = ty__slurm_resolve(&out->job, &out->slurm, err, err_len);
  /* Slurm's own variable for it: the runner reads it (cli/script.c). */
  if (rc == 0 && out->slurm.open_mode)
    push_str(&out->job.env, &out->job.envc,
             out->slurm.open_mode == 'a' ? "SLURM_OPEN_MODE=a" : "SLURM_OPEN_MODE=t");
  if (rc == 0 && out->graph_mode) graph_defaults(&out->job);
  /* A script, like sbatch's, takes your environment unless --export says
   * otherwise; a --command only what --export names. */
  if (rc == 0 && !out->help && (out->export_all || (scripted(out) && !out->export_given)))
    export_environment(&out->job);
  if (rc == 0 && !out->help) ty_rl_script_dir(&out->job, getenv("TRAINYARD_SCRIPT_DIR"));
  if (rc == 0 && cwd && !out->help && (out->command_mode || scripted(out)))
    submit_dir(&out->job, cwd);
  if (rc == 0 && (out->command_mode || out->graph_mode || scripted(out)))
    command_defaults(&out->job, cwd, user);
  if (rc == 0 && !out->help) {
    warn_missing_dir(out, "--output", out->output);
    warn_missing_dir(out, "--error", out->error);
  }
  if (rc) ty_cli_submit_args_close(out);
  return rc;
}

void ty_cli_submit_args_close(ty_cli_submit_args *a) {
  if (!a) return;
  free(a->file);
  free(a->config_file);
  free(a->script);
  free(a->wrap);
  free(a->output);
  free(a->error);
  ty_cli_slurm_close(&a->slurm);
  ty_job_spec_close(&a->job);
  memset(a, 0, sizeof *a);
}
