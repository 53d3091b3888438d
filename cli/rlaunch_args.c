/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rlaunch's command line, the environment it forwards, and line framing.
 * Pure: no sockets, no terminal; unit-tested in tests/unit/cli.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h> /* getrlimit */
#include <sys/stat.h>     /* umask */
#include <unistd.h>       /* gethostname */

#include "cli/cli_internal.h"
#include "cli/rlaunch.h"

static const char usage_options[] =
    "Usage: rlaunch [OPTIONS] [--] CMD [ARGS...]\n"
    "\n"
    "Runs CMD on the cluster as if it ran here: output appears as it is produced,\n"
    "stdin, Ctrl-C and the exit code work, the working directory and environment\n"
    "are yours. The job goes through the queue like any other (trainctl ls shows it).\n"
    "\n"
    "Options:\n"
    "  -G, --gpu N          GPUs per node (default 0)\n"
    "  -c, --cpu N          CPUs per task (default 1)\n"
    "  --mem SIZE           memory per node: 16G, 4000 (MB); default no limit\n"
    "  -N, --nodes N        nodes (default 1)\n"
    "  --ntasks-per-node N  ranks per node (default 1)\n"
    "  -n, --ntasks N       ranks in all, the same number on every node (with\n"
    "                       --ntasks-per-node Q and no -N: N/Q nodes, as srun's)\n"
    "  -p, --queue Q        queue (default \"default\")\n"
    "  --priority P         priority within the queue, -1000..1000; higher runs first\n"
    "                       (default 0)\n"
    "  -t, --time LIMIT     time limit as srun's: 60 (minutes), 1:30:00, 1-12:00:00, or\n"
    "                       with a unit: 90s, 15m, 2h, 1d (default: the queue's)\n"
    "  --signal SIG[@SECS]  send SIG to the ranks SECS (default 60) before the time limit\n"
    "  -J, --name NAME      job name (default: CMD)\n"
    "  -l, --label          prefix every output line with its rank, \"R: \"\n"
    "  --stdin=0|all|none   stdin goes to rank 0 (default), to every rank (EOF included)\n"
    "                       or nowhere (rlaunch reads none; rank 0 sees EOF at once)\n"
    "  --pty                run CMD under a pseudo-terminal (shells, REPLs, top); the local\n"
    "                       terminal is put in raw mode and window-size changes follow\n"
    "  --detach             keep the job running if rlaunch dies or loses its connection\n"
    "                       (default: the remote tasks are killed after a 3 s grace)\n"
    "  --timing             at the end, print on stderr where the launch's time went:\n"
    "                       client, controller (submit, commit, scheduling, LaunchTask)\n"
    "                       and worker (spawn, first byte, exit), each side's own clock\n"
    "  -h, --help           this text\n"
    "  -V, --version        the version\n"
    "srun's spellings work too: --cpus-per-task, --gpus-per-node, --partition,\n"
    "--job-name, -N MIN-MAX (the minimum), -D/--chdir DIR, --export=ALL|NONE,NAME[=V],\n"
    "--gres=gpu[:TYPE]:N (per node), --gpus N (the job's), --gpus-per-task, --mem=0,\n"
    "--mem-per-cpu, --mem-per-gpu, --nice[=N], --exclusive (whole nodes, as sbatch's),\n"
    "-w/--nodelist LIST, --nodefile FILE, -x/--exclude LIST (nodes it must all run on,\n"
    "nodes it never runs on: Slurm hostlists such as w[1-4], as sbatch's), -i 0|all|none\n"
    "(--stdin's), -d/--dependency (the job waits for it, as sbatch's),\n"
    "--propagate[=ALL|NONE|LIST] (which of your soft limits the tasks get: AS, CORE,\n"
    "CPU, DATA, FSIZE, NOFILE, STACK; all by default).\n"
    "srun options that change nothing here (-u, --mpi, -A/--account, -q/--qos VALUE,\n"
    "--cpu-bind, --quit-on-interrupt, ...) are ignored with a warning saying why;\n"
    "those that cannot be honoured (--constraint, --jobid, -o/--output, ...) are\n"
    "refused, naming why.\n";

/* The rest: one literal would pass the 4,095 bytes C99 promises. */
static const char usage_rest[] =
    "\n"
    "The controller is $TRAINYARD_CONTROLLER (HOST:PORT), else 127.0.0.1 at\n"
    "$TRAINYARD_PORT, else 127.0.0.1:7810, reached on its local socket when it is on\n"
    "this host ($TRAINYARD_SOCKET, default /run/trainyard/traind.sock for\n"
    "127.0.0.1:7810), else over TCP with MUNGE.\n"
    "\n"
    "CMD runs in your current directory, which must exist on the nodes (a shared\n"
    "filesystem is assumed), with your environment (only what --export names when it\n"
    "does not say ALL, as srun's; a --pty's TERM still) minus what belongs to this\n"
    "terminal or login (HOSTNAME, DISPLAY, XAUTHORITY, SSH_*, PWD, OLDPWD, SHLVL, _,\n"
    "TMUX*, STY, WINDOW, XDG_RUNTIME_DIR, XDG_SESSION_*, DBUS_SESSION_BUS_ADDRESS, and\n"
    "TERM, TERMCAP, COLUMNS, LINES unless --pty), plus the torchrun variables RANK,\n"
    "LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, and\n"
    "CUDA_VISIBLE_DEVICES, TRAINYARD_JOB_ID, TRAINYARD_NODE (and no TRAINYARD_ARRAY_*\n"
    "or SLURM_ARRAY_* of a job array's element you may be running in); its\n"
    "SLURM_SUBMIT_HOST is this host, as srun's, unless --export gives one.\n"
    "\n"
    "Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to\n"
    "the remote process groups. A second Ctrl-C within 1 s kills the job (SIGTERM,\n"
    "then SIGKILL after the grace period). While the job is pending, Ctrl-C cancels it.\n"
    "\n"
    "Exit codes:\n"
    "  0-119, 128-255  the command's: that of the first rank that failed (the\n"
    "                  others are killed then), 128+N if it died of signal N;\n"
    "                  143 (128+SIGTERM) for a job cancelled or preempted whose\n"
    "                  command exited 0 (rlaunch says the job's end on stderr)\n"
    "  120  the controller could not be reached (or was lost while waiting)\n"
    "  121  the controller refused the job (invalid, or it can never fit)\n"
    "  122  the job ended without running (cancelled while pending, launch failed,\n"
    "       e.g. the working directory does not exist on the node)\n"
    "  123  a worker could not be reached, refused the attach, or the connection\n"
    "       to it was lost\n"
    "  124  a rank reached the time limit\n"
    "  125  usage error\n"
    "  126  CMD is not executable on the node\n"
    "  127  CMD was not found on the node\n";

const char *const ty_rl_usage[] = {usage_options, usage_rest, NULL};

enum {
  O_GPU = TY__CLI_OPT_FIRST,
  O_CPU,
  O_MEM,
  O_NODES,
  O_NTASKS,
  O_QUEUE,
  O_PRIORITY,
  O_TIME,
  O_NAME,
  O_LABEL,
  O_STDIN,
  O_PTY,
  O_DETACH,
  O_SIGNAL,
  O_TIMING,
  O_EXPORT,
  O_HELP = 'h',
  O_VERSION = 'V',
  /* srun's short options */
  S_NODES = 'N',
  S_NTASKS_ALL = 'n',
  S_CPU = 'c',
  S_GPU = 'G',
  S_QUEUE = 'p',
  S_TIME = 't',
  S_NAME = 'J',
  S_LABEL = 'l',
  S_INPUT = 'i',
  S_DEPENDENCY = 'd',
};
/* Ours, then the letters of srun's in ty__slurm_opts from "D:" on, each
 * with its argument kind there (ty_rl_check_shortopts). */
static const char shortopts[] = "hVN:n:c:G:p:t:J:li:d:D:A:w:x:C:Ho:e:M:m:OsS:k::K::uXQq:W:L:b:I::v";

static const struct option opts[] = {
    {"gpu", required_argument, NULL, O_GPU},
    {"cpu", required_argument, NULL, O_CPU},
    {"mem", required_argument, NULL, O_MEM},
    {"nodes", required_argument, NULL, O_NODES},
    {"ntasks-per-node", required_argument, NULL, O_NTASKS},
    {"queue", required_argument, NULL, O_QUEUE},
    {"priority", required_argument, NULL, O_PRIORITY},
    {"time", required_argument, NULL, O_TIME},
    {"name", required_argument, NULL, O_NAME},
    {"label", no_argument, NULL, O_LABEL},
    {"stdin", required_argument, NULL, O_STDIN},
    {"pty", no_argument, NULL, O_PTY},
    {"detach", no_argument, NULL, O_DETACH},
    {"timing", no_argument, NULL, O_TIMING},
    {"signal", required_argument, NULL, O_SIGNAL},
    {"help", no_argument, NULL, O_HELP},
    {"version", no_argument, NULL, O_VERSION},
    /* srun's spellings */
    {"ntasks", required_argument, NULL, S_NTASKS_ALL},
    {"cpus-per-task", required_argument, NULL, O_CPU},
    {"gpus-per-node", required_argument, NULL, O_GPU},
    {"partition", required_argument, NULL, O_QUEUE},
    {"job-name", required_argument, NULL, O_NAME},
    {"export", required_argument, NULL, O_EXPORT},
    {"input", required_argument, NULL, S_INPUT},
    {"dependency", required_argument, NULL, S_DEPENDENCY},
    {NULL, 0, NULL, 0},
};

/* opts, then srun's in ty__slurm_opts (built once; rlaunch parses on one
 * thread). */
static const struct option *all_options(void) {
  static struct option all[96];
  static bool built;
  if (!built) ty__slurm_options(opts, TY__SLURM_SRUN, all, TY_ARRAY_LEN(all));
  built = true;
  return all;
}

/* getopt's argument kind of letter c in shortopts (-1: not there). */
static int letter_kind(char c) {
  const char *p = strchr(shortopts, c);
  if (!c || !p || *p == ':') return -1;
  return p[1] != ':' ? no_argument : p[2] == ':' ? optional_argument : required_argument;
}

int ty_rl_check_shortopts(char *err, size_t err_len) {
  for (size_t i = 0; i < ty__slurm_n; i++) {
    const ty__slurm_opt *o = &ty__slurm_opts[i];
    if (!(o->tools & TY__SLURM_SRUN) || !o->letter) continue;
    int k = letter_kind(o->letter);
    if (k != o->has_arg)
      return ty_errf(err, err_len, TY_EINVAL,
                     "rlaunch's short option -%c (--%s) %s in shortopts, takes %s in the table",
                     o->letter, o->name,
                     k < 0                    ? "is missing"
                     : k == no_argument       ? "takes no value"
                     : k == required_argument ? "takes a value"
                                              : "takes an optional value",
                     o->has_arg == no_argument         ? "none"
                     : o->has_arg == required_argument ? "a value"
                                                       : "an optional value");
  }
  return 0;
}

static void push(char ***arr, size_t *n, const char *s) {
  *arr = ty_xrealloc(*arr, (*n + 1) * sizeof **arr);
  (*arr)[(*n)++] = ty_strdup(s);
}

static int set_text(const char *what, char **field, const char *v, char *err, size_t err_len) {
  if (!*v) return ty_errf(err, err_len, TY_EINVAL, "%s: must not be empty", what);
  free(*field);
  *field = ty_strdup(v);
  return 0;
}

/* --export as srun's: ALL (the default), NONE (none of your environment),
 * NAME=VALUE or NAME (yours: looked up by resolve_exports), comma-separated;
 * a NAME=VALUE holding commas alone. A list without ALL passes only what it
 * names, as srun and sbatch do (ty_rl_parse sets export_none). */
typedef struct export_ctx {
  ty_rl_opts *o;
  char *err;
  size_t err_len;
} export_ctx;

static int export_item(const char *item, void *ud) {
  export_ctx *x = ud;
  if (!strcmp(item, "ALL"))
    x->o->export_all = true;
  else if (!strcmp(item, "NONE"))
    return 0;
  else if (item[0] && item[0] != '=')
    push(&x->o->exports, &x->o->n_exports, item);
  else
    return ty_errf(x->err, x->err_len, TY_EINVAL,
                   "--export: \"%s\" is not ALL, NONE or NAME[=VALUE]", item);
  return 0;
}

static int export_list(ty_rl_opts *o, const char *v, char *err, size_t err_len) {
  export_ctx x = {o, err, err_len};
  o->export_none = true; /* until an ALL */
  return ty__slurm_export_items(v, export_item, &x);
}

/* Each bare NAME of --export becomes NAME=VALUE from env. */
static int resolve_exports(ty_rl_opts *o, char *const *env, char *err, size_t err_len) {
  for (size_t i = 0; i < o->n_exports; i++) {
    char *name = o->exports[i];
    if (strchr(name, '=')) continue;
    size_t n = strlen(name);
    const char *found = NULL;
    for (size_t k = 0; env && env[k] && !found; k++)
      if (!strncmp(env[k], name, n) && env[k][n] == '=') found = env[k];
    if (!found)
      return ty_errf(err, err_len, TY_EINVAL,
                     "--export: %s is not set in your environment (use %s=VALUE)", name, name);
    o->exports[i] = ty_strdup(found);
    free(name);
  }
  return 0;
}

static int option(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  ty_rl_opts *o = ud;
  ty_job_spec *j = &o->job;
  if (id == O_MEM && ty__slurm_mem_option(&o->slurm, "--mem", err, err_len)) return TY_EINVAL;
  if (id == O_MEM || id == O_GPU || id == S_GPU)
    ty__slurm_per_node(&o->slurm, id == O_MEM, id != O_MEM);
  int rc = ty__slurm_arg(j, &o->slurm, TY__SLURM_SRUN, id, v, o->cwd, err, err_len);
  if (rc != TY__SLURM_NOT_MINE) return rc;
  switch (id) {
  case TY_OPT_POSITIONAL:
    ty_opts_stop(it); /* the command's own options are its own */
    push(&j->argv, &j->argc, v);
    return 0;
  case O_GPU:
  case S_GPU:
    o->gpu_short = true;
    return ty__cli_parse_u32("--gpu", v, 0, 64, &j->gpus_per_node, err, err_len);
  case O_CPU:
  case S_CPU:
    return ty__cli_parse_u32("-c/--cpu", v, 1, 65536, &j->cpus_per_task, err, err_len);
  case O_NODES:
  case S_NODES:
    return ty__slurm_nodes(j, &o->slurm, v, 10000, err, err_len);
  case O_NTASKS:
    return ty__cli_parse_u32("--ntasks-per-node", v, 1, 1024, &j->tasks_per_node, err, err_len);
  case S_NTASKS_ALL:
    return ty__cli_parse_u32("--ntasks", v, 1, 1024 * 10000, &o->ntasks, err, err_len);
  case O_PRIORITY:
    return ty__cli_parse_priority("--priority", v, &j->priority, err, err_len);
  case O_QUEUE:
  case S_QUEUE:
    return ty__cli_set_queue(&j->queue, v, err, err_len);
  case O_NAME:
  case S_NAME:
    return set_text("--name", &j->name, v, err, err_len);
  case O_MEM: /* 0: srun's "all of the node's memory" (the queue's max_mem, or no limit) */
    return ty__cli_parse_job_mem(v, &j->mem_per_node, err, err_len);
  case O_EXPORT:
    return export_list(o, v, err, err_len);
  case O_TIME:
  case S_TIME:
    return ty_parse_time_limit("--time", v, &j->time_limit_s, err, err_len);
  case O_SIGNAL:
    return ty_cli_parse_signal("--signal", v, j, err, err_len);
  case O_STDIN:
  case S_INPUT: /* srun's -i 0, -i all and -i none; a file is the shell's < FILE */
    if (strcmp(v, "0") == 0)
      o->stdin_mode = TY_RL_STDIN_RANK0;
    else if (strcmp(v, "all") == 0)
      o->stdin_mode = TY_RL_STDIN_ALL;
    else if (strcmp(v, "none") == 0)
      o->stdin_mode = TY_RL_STDIN_NONE;
    else
      return ty_errf(err, err_len, TY_EINVAL,
                     "%s: \"%s\" is not 0 (rank 0), all (every rank) or none; for a file, "
                     "give rlaunch's own input one (< FILE)",
                     id == S_INPUT ? "--input" : "--stdin", v);
    return 0;
  case S_DEPENDENCY:
    free(j->deps), j->deps = NULL, j->n_deps = 0;
    return ty_dep_parse("--dependency", v, &j->deps, &j->n_deps, &j->deps_any, err, err_len);
  case O_LABEL:
  case S_LABEL:
    o->label = true;
    return 0;
  case O_PTY:
    o->pty = true;
    return 0;
  case O_DETACH:
    o->detach = true;
    return 0;
  case O_TIMING:
    o->timing = true;
    return 0;
  case O_VERSION:
    o->version = true;
    return 0;
  default:
    o->help = true;
    return 0;
  }
}

static bool has_prefix(const char *s, const char *p) {
  return strncmp(s, p, strlen(p)) == 0;
}

static bool name_is(const char *entry, const char *name) {
  size_t n = strlen(name);
  return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

bool ty_rl_env_denied(const char *entry, bool pty) {
  static const char *const exact[] = {"HOSTNAME",
                                      "DISPLAY",
                                      "XAUTHORITY",
                                      "PWD",
                                      "OLDPWD",
                                      "SHLVL",
                                      "_",
                                      "STY",
                                      "WINDOW",
                                      "XDG_RUNTIME_DIR",
                                      "DBUS_SESSION_BUS_ADDRESS",
                                      "RANK",
                                      "LOCAL_RANK",
                                      "WORLD_SIZE",
                                      "LOCAL_WORLD_SIZE",
                                      "MASTER_ADDR",
                                      "MASTER_PORT",
                                      "CUDA_VISIBLE_DEVICES",
                                      "TRAINYARD_JOB_ID",
                                      "TRAINYARD_NODE"};
  static const char *const terminal[] = {"TERM", "TERMCAP", "COLUMNS", "LINES"};
  /* An array element's variables (the worker sets them for elements only):
   * an rlaunch from inside one must not pass them to a job that is not. */
  static const char *const prefixes[] = {"SSH_", "TMUX", "XDG_SESSION_", "TRAINYARD_ARRAY_",
                                         "SLURM_ARRAY_"};
  if (!strchr(entry, '=') || entry[0] == '=') return true;
  for (size_t i = 0; i < TY_ARRAY_LEN(exact); i++)
    if (name_is(entry, exact[i])) return true;
  for (size_t i = 0; !pty && i < TY_ARRAY_LEN(terminal); i++)
    if (name_is(entry, terminal[i])) return true;
  for (size_t i = 0; i < TY_ARRAY_LEN(prefixes); i++)
    if (has_prefix(entry, prefixes[i])) return true;
  return false;
}

int ty_rl_rank_exit(int exit_code, int term_signal) {
  return term_signal > 0 ? 128 + term_signal : exit_code;
}

/* Whether --export NAME=VALUE set the variable of environment entry e. */
static bool exported(const ty_rl_opts *o, const char *e) {
  size_t n = strcspn(e, "=");
  for (size_t i = 0; i < o->n_exports; i++)
    if (!strncmp(o->exports[i], e, n) && o->exports[i][n] == '=') return true;
  return false;
}

void ty_rl_opts_close(ty_rl_opts *o) {
  if (!o) return;
  ty_job_spec_close(&o->job);
  ty_cli_slurm_close(&o->slurm);
  for (size_t i = 0; i < o->n_exports; i++)
    free(o->exports[i]);
  free(o->exports);
  free(o->cwd);
  memset(o, 0, sizeof *o);
}

void ty_rl_submit_host(ty_job_spec *j) {
  char host[256] = "";
  for (size_t i = 0; i < j->envc; i++)
    if (!strncmp(j->env[i], "SLURM_SUBMIT_HOST=", 18)) return;
  if (gethostname(host, sizeof host - 1) != 0 || !host[0]) return;
  char *kv = ty_xmalloc(strlen(host) + sizeof "SLURM_SUBMIT_HOST=");
  sprintf(kv, "SLURM_SUBMIT_HOST=%s", host);
  j->env = ty_xrealloc(j->env, (j->envc + 1) * sizeof *j->env);
  j->env[j->envc++] = kv;
}

static bool job_has(const ty_job_spec *j, const char *name) {
  for (size_t i = 0; i < j->envc; i++)
    if (name_is(j->env[i], name)) return true;
  return false;
}

void ty_rl_script_dir(ty_job_spec *j, const char *script_dir) {
  if (!script_dir || !*script_dir || !job_has(j, "PATH") || job_has(j, "TRAINYARD_SCRIPT_DIR"))
    return;
  char *kv = ty_xmalloc(strlen(script_dir) + sizeof "TRAINYARD_SCRIPT_DIR=");
  sprintf(kv, "TRAINYARD_SCRIPT_DIR=%s", script_dir);
  j->env = ty_xrealloc(j->env, (j->envc + 1) * sizeof *j->env);
  j->env[j->envc++] = kv;
}

void ty_rl_submit_process(ty_job_spec *j, unsigned skip) {
  mode_t mask = umask(022);
  umask(mask);
  j->process.has_umask = true;
  j->process.umask = (uint32_t)mask & 0777;
  for (int l = 0; l < TY_LIMIT_COUNT; l++) {
    struct rlimit r;
    if ((skip & 1u << l) || getrlimit(ty_limit_rlimit(l), &r) != 0) continue;
    j->process.has_soft[l] = true;
    j->process.soft[l] = r.rlim_cur == RLIM_INFINITY ? TY_LIMIT_UNLIMITED : (uint64_t)r.rlim_cur;
  }
}

int ty_rl_parse(int argc, char **argv, const char *cwd, const char *user, char *const *env,
                ty_rl_opts *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  out->cwd = cwd ? ty_strdup(cwd) : NULL;
  int rc = ty__cli_parse(argc - 1, argv + 1, shortopts, all_options(), option, out, err, err_len);
  if (rc == 0) rc = ty__cli_spread_ntasks(&out->job, out->ntasks, 1024, err, err_len);
  if (rc == 0) rc = ty__slurm_resolve(&out->job, &out->slurm, err, err_len);
  if (rc == 0) rc = resolve_exports(out, env, err, err_len);
  if (rc == 0 && !out->help && !out->version && out->job.argc == 0)
    rc = ty_errf(err, err_len, TY_EINVAL, "no command given (rlaunch [OPTIONS] -- CMD [ARGS...])");
  if (rc != 0) {
    ty_rl_opts_close(out);
    return rc;
  }
  out->export_none &= !out->export_all;
  if (out->gpu_short && out->job.nodes > 1 && out->job.gpus_per_node)
    ty__slurm_warn(&out->slurm,
                   "-G %u is rlaunch's --gpu, GPUs per node: %u on each of %u nodes (srun's -G "
                   "is the job's total: give --gpus N for that)",
                   out->job.gpus_per_node, out->job.gpus_per_node, out->job.nodes);
  if (cwd && !out->job.cwd) out->job.cwd = ty_strdup(cwd); /* -D's otherwise */
  if (user) out->job.user = ty_strdup(user);
  for (size_t i = 0; i < out->n_exports; i++)
    push(&out->job.env, &out->job.envc, out->exports[i]);
  /* An inherited SLURM_SUBMIT_HOST is the outer job's: rlaunch sets its own.
   * Under export_none, a --pty's TERM still goes: the terminal is rlaunch's. */
  for (size_t i = 0; env && env[i]; i++)
    if ((!out->export_none || (out->pty && name_is(env[i], "TERM"))) &&
        !ty_rl_env_denied(env[i], out->pty) && !exported(out, env[i]) &&
        strncmp(env[i], "SLURM_SUBMIT_HOST=", 18))
      push(&out->job.env, &out->job.envc, env[i]);
  for (size_t i = 0; env && env[i]; i++)
    if (name_is(env[i], "TRAINYARD_SCRIPT_DIR"))
      ty_rl_script_dir(&out->job, env[i] + sizeof "TRAINYARD_SCRIPT_DIR");
  return 0;
}

/* ---- line framing ------------------------------------------------------------------ */

void ty_rl_frame_lines(ty_buf *partial, const char *prefix, const uint8_t *p, size_t n,
                       ty_buf *out) {
  size_t plen = strlen(prefix);
  while (n > 0) {
    const uint8_t *nl = memchr(p, '\n', n);
    if (!nl) {
      ty_buf_append(partial, p, n);
      return;
    }
    size_t take = (size_t)(nl - p) + 1;
    ty_buf_append(out, prefix, plen);
    if (partial->len) ty_buf_append(out, partial->data, partial->len);
    ty_buf_append(out, p, take);
    partial->len = 0;
    p += take;
    n -= take;
  }
}

void ty_rl_frame_flush(ty_buf *partial, const char *prefix, ty_buf *out) {
  if (partial->len == 0) return;
  ty_buf_append(out, prefix, strlen(prefix));
  ty_buf_append(out, partial->data, partial->len);
  partial->len = 0;
}
