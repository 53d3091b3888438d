/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainworkerd's flags: the usage text, each flag's parsing and check, and
 * the search for the binaries the flags name (trainrun for graph jobs, the
 * exec helper for tasks). No libuv loop: parsing runs before the daemon
 * starts anything.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/version.h"
#include "proto/methods.h"
#include "worker/flags.h"
#include "worker/worker_internal.h"

/* In two pieces: one literal would pass C99's 4095 bytes. */
static const char usage_node[] =
    "usage: trainworkerd [options]\n"
    "  --controller HOST:PORT  controller address (default 127.0.0.1:7810)\n"
    "  --name NAME             node name, unique in the cluster, of [A-Za-z0-9._-]\n"
    "                          (default: hostname)\n"
    "  --state-dir DIR         task logs in DIR/jobs/JOB/rank<R>.log (default ./var/worker-NAME)\n"
    "  --io-listen HOST:PORT   task I/O (ReadLog) listener (default 127.0.0.1:7820; port 0 = any)\n"
    "  --metrics-listen HOST:PORT  Prometheus /metrics (default 127.0.0.1:7821)\n"
    "  --metrics-token-file FILE  /metrics answers only \"Authorization: Bearer TOKEN\"\n"
    "                          with the token in FILE (mode 600 or 640; default: open)\n"
    "  --advertise HOST        host (a DNS name or IP address, no port) in io_addr and\n"
    "                          MASTER_ADDR (default: the --io-listen host,\n"
    "                          or, when that is 0.0.0.0 or ::, this host's address on the\n"
    "                          connection to the controller)\n"
    "  --cpus N, --gpus N, --memory SIZE  override what is detected\n"
    "  --port-file FILE        write io=PORT and metrics=PORT once listening\n"
    "Limits of the task I/O port:\n" TY_RPC_LIMITS_USAGE;
static const char usage_tasks[] =
    "  --trainrun PATH         trainrun binary for graph jobs (default: next to trainworkerd,\n"
    "                          ../ops/trainrun/trainrun in a build tree, " TY_BINDIR "/trainrun,\n"
    "                          else the first in trainworkerd's PATH); kept as an absolute\n"
    "                          path, so tasks' own PATH does not matter\n"
    "  --log-max-size SIZE     cut a task log that grows past SIZE to its head and tail\n"
    "                          (default 64M, at least 16K; 0 = no cap); checked once a\n"
    "                          second, so a log may pass SIZE by about a second of output\n"
    "  --log-retention D       remove a job's logs and files D after its last task here\n"
    "                          ended: 90s, 15m, 2h, 7d (default 7d; 0 = keep them)\n"
    "  --task-env NAME[=VALUE]\n"
    "                          give every task this variable: VALUE, or this daemon's own\n"
    "                          value of NAME (none when unset); repeatable. Tasks get\n"
    "                          nothing else of this daemon's environment\n"
    "  --mpi-if-include LIST   the interfaces (eth0) or IPv4 networks (10.1.0.0/16),\n"
    "                          comma-separated, that tasks' Open MPI uses: graph ranks\n"
    "                          and ompi-server, and mpirun in command jobs unless their\n"
    "                          own environment names others (default: every interface)\n"
    "  --tmp-base DIR          tasks' private TMPDIRs go in DIR: absolute, sticky or root's\n"
    "                          (default /tmp)\n"
    "  --lease-ms N            kill this node's tasks after N ms without an answer from the\n"
    "                          controller (fencing; default two thirds of the controller's\n"
    "                          --node-timeout-ms; 0 = never)\n"
    "  --log-level LEVEL       debug, info, warn or error (default info)\n"
    "  --auth munge|key|none   how the worker and the controller prove they are the cluster's\n"
    "                          service (default munge; as traind's auth.workers)\n"
    "  --cluster-key FILE      the key file of --auth key (0600, owned by this user or root;\n"
    "                          or 0640 root:GROUP, shared with a traind of GROUP's user)\n"
    "  --munge-socket PATH     munged's socket (default /run/munge/munge.socket.2)\n"
    "  --service-user NAME     whose MUNGE credentials may launch and kill tasks here, besides\n"
    "                          root's (default root)\n"
    "  --exec-helper PATH      the trainyard-exec helper (default: next to trainworkerd)\n"
    "  --cgroup-root PATH      parent of the worker's cgroup subtree in each hierarchy\n"
    "                          (default: the worker's own cgroup)\n"
    "  --cgroup-name NAME      the worker's cgroup subtree (default trainyard-NODE)\n"
    "  --no-cgroups            track tasks by process group only\n"
    "  --max-pids-per-job N    processes and threads of one job on this node at most (its\n"
    "                          cgroup's pids.max; a fork bomb stops there; default 8192;\n"
    "                          0 = no limit)\n"
    "  --help                  this text\n"
    "  --version               the version\n";

static void put_usage(FILE *f) {
  fputs(usage_node, f);
  fputs(usage_tasks, f);
}

/* ---- flags ------------------------------------------------------------------ */

static int usage_error(const char *flag, const char *value, const char *what) {
  fprintf(stderr, "trainworkerd: %s: \"%s\" %s\n", flag, value ? value : "", what);
  put_usage(stderr);
  return 2;
}

static int parse_count(const char *s, long *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || !s[0] || *end || v < 0 || v > 1000000) return TY_EINVAL;
  *out = v;
  return 0;
}

static void default_opts(worker_opts *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->controller_host, sizeof o->controller_host, "127.0.0.1");
  o->controller_port = TY_CONTROLLER_PORT;
  snprintf(o->io_host, sizeof o->io_host, "127.0.0.1");
  o->io_port = TY_WORKER_IO_PORT;
  snprintf(o->metrics_host, sizeof o->metrics_host, "127.0.0.1");
  o->metrics_port = TY_WORKER_METRICS_PORT;
  o->cpus = o->gpus = -1;
  o->log_level = TY_LOG_INFO;
  o->auth = TY_AUTH_MUNGE;
  o->service_user = "root";
  o->log_max = TY_LOG_MAX_DEFAULT;
  o->log_retention_s = TY_LOG_RETENTION_DEFAULT;
  o->lease_ms = TY_LEASE_AUTO;
  o->max_pids = TY_PIDS_PER_JOB_DEFAULT;
  o->tmp_base = "/tmp";
}

static const struct option longopts[] = {{"controller", required_argument, NULL, 'c'},
                                         {"io-listen", required_argument, NULL, 'i'},
                                         {"metrics-listen", required_argument, NULL, 'm'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"state-dir", required_argument, NULL, 's'},
                                         {"trainrun", required_argument, NULL, 't'},
                                         {"advertise", required_argument, NULL, 'a'},
                                         {"cpus", required_argument, NULL, 'C'},
                                         {"gpus", required_argument, NULL, 'G'},
                                         {"memory", required_argument, NULL, 'M'},
                                         {"port-file", required_argument, NULL, 'p'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"task-env", required_argument, NULL, 'e'},
                                         {"mpi-if-include", required_argument, NULL, 'I'},
                                         {"log-max-size", required_argument, NULL, 'L'},
                                         {"log-retention", required_argument, NULL, 'R'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"auth", required_argument, NULL, 'A'},
                                         {"cluster-key", required_argument, NULL, 'K'},
                                         {"munge-socket", required_argument, NULL, 'S'},
                                         {"service-user", required_argument, NULL, 'U'},
                                         {"exec-helper", required_argument, NULL, 'E'},
                                         {"cgroup-root", required_argument, NULL, 'O'},
                                         {"cgroup-name", required_argument, NULL, 'N'},
                                         {"no-cgroups", no_argument, NULL, 'X'},
                                         {"max-pids-per-job", required_argument, NULL, 'P'},
                                         {"lease-ms", required_argument, NULL, 'W'},
                                         {"metrics-token-file", required_argument, NULL, 'Q'},
                                         {"tmp-base", required_argument, NULL, 'T'},
                                         TY_RPC_LIMIT_OPTIONS,
                                         {NULL, 0, NULL, 0}};

/* Copies v into a fixed buffer; false when it is empty or too long. */
static bool set_path(char *dst, size_t cap, const char *v) {
  if (!v[0] || strlen(v) >= cap) return false;
  snprintf(dst, cap, "%s", v);
  return true;
}

static int parse_listener(int c, worker_opts *o, const char *v) {
  if (c == 'c')
    return ty_parse_hostport(v, o->controller_host, sizeof o->controller_host,
                             &o->controller_port) ||
                   o->controller_port == 0
               ? usage_error("--controller", v, "is not HOST:PORT")
               : 0;
  if (c == 'i')
    return ty_parse_hostport(v, o->io_host, sizeof o->io_host, &o->io_port)
               ? usage_error("--io-listen", v, "is not HOST:PORT")
               : 0;
  return ty_parse_hostport(v, o->metrics_host, sizeof o->metrics_host, &o->metrics_port)
             ? usage_error("--metrics-listen", v, "is not HOST:PORT")
             : 0;
}

/* The authentication and isolation options. */
static int parse_isolation(worker_opts *o, int c, const char *v) {
  switch (c) {
  case 'A':
    return ty_auth_mode_parse(v, &o->auth) ? usage_error("--auth", v, "is not munge, key or none")
                                           : 0;
  case 'K':
    o->cluster_key = v;
    return 0;
  case 'S':
    o->munge_socket = v;
    return 0;
  case 'U':
    o->service_user = v;
    return v[0] ? 0 : usage_error("--service-user", v, "is not a user");
  case 'E':
    return set_path(o->exec_helper, sizeof o->exec_helper, v)
               ? 0
               : usage_error("--exec-helper", v, "is not a path");
  case 'O':
    o->cgroup_root = v;
    return v[0] == '/' ? 0 : usage_error("--cgroup-root", v, "is not an absolute path");
  case 'N':
    o->cgroup_name = v;
    if (v[0] && !strpbrk(v, "/ \t\n")) return 0;
    return usage_error("--cgroup-name", v, "is not a directory name");
  case 'X':
    o->no_cgroups = true;
    return 0;
  case 'P':
    return parse_count(v, &o->max_pids)
               ? usage_error("--max-pids-per-job", v,
                             "is not a count (0 = no limit, at most 1000000)")
               : 0;
  default:
    return usage_error("option", NULL, "is not handled");
  }
}

/* --task-env NAME=VALUE, or NAME for this daemon's value (skipped when it
 * has none). */
static int add_task_env(worker_opts *o, const char *v) {
  size_t name = strcspn(v, "=");
  bool ok = name > 0 && !isdigit((unsigned char)v[0]);
  for (size_t i = 0; ok && i < name; i++)
    ok = isalnum((unsigned char)v[i]) || v[i] == '_';
  if (!ok) return usage_error("--task-env", v, "is not NAME or NAME=VALUE");
  const char *own = v[name] ? NULL : getenv(v);
  if (!v[name] && !own) return 0;
  ty_buf b;
  ty_buf_init(&b);
  ty_buf_printf(&b, v[name] ? "%s" : "%s=%s", v, own ? own : "");
  ty_buf_append(&b, "", 1);
  o->task_env = ty_xrealloc(o->task_env, (o->n_task_env + 1) * sizeof *o->task_env);
  o->task_env[o->n_task_env++] = ty_strdup((const char *)b.data);
  ty_buf_close(&b);
  return 0;
}

/* --log-max-size and --log-retention; "0" turns each off. */
static int parse_log_flag(worker_opts *o, int c, const char *v) {
  bool off = strcmp(v, "0") == 0;
  if (c == 'L') {
    o->log_max = 0;
    if (!off && (ty_parse_size(v, &o->log_max) != 0 || o->log_max < TY_LOG_MAX_MIN))
      return usage_error("--log-max-size", v, "is not a size of at least 16K (or 0)");
    return 0;
  }
  o->log_retention_s = 0;
  if (!off && ty_parse_duration(v, &o->log_retention_s) != 0)
    return usage_error("--log-retention", v, "is not a duration like 7d (or 0)");
  return 0;
}

/* One option with its value; returns 0, or the exit code for a usage error. */
static int parse_flag(worker_opts *o, int c, const char *v) {
  switch (c) {
  case 'c':
  case 'i':
  case 'm':
    return parse_listener(c, o, v);
  case 'n':
    return !ty_node_name_ok(v) || !set_path(o->name, sizeof o->name, v)
               ? usage_error("--name", v, "is not a node name (" TY_NODE_NAME_RULE ")")
               : 0;
  case 's':
    return set_path(o->state_dir, sizeof o->state_dir, v)
               ? 0
               : usage_error("--state-dir", v, "is not a path");
  case 't':
    return set_path(o->trainrun, sizeof o->trainrun, v)
               ? 0
               : usage_error("--trainrun", v, "is not a path");
  case 'a':
    if (!ty_host_ok(v))
      return usage_error("--advertise", v,
                         "is not a host (a DNS name of [A-Za-z0-9._-] or an IP address)");
    o->advertise = v;
    return 0;
  case 'C':
    return parse_count(v, &o->cpus) || o->cpus == 0 ? usage_error("--cpus", v, "is not a count > 0")
                                                    : 0;
  case 'G':
    return parse_count(v, &o->gpus) ? usage_error("--gpus", v, "is not a count") : 0;
  case 'M':
    return ty_parse_size(v, &o->memory) || o->memory == 0
               ? usage_error("--memory", v, "is not a size like 64G")
               : 0;
  case 'p':
    o->port_file = v;
    return 0;
  case 'e':
    return add_task_env(o, v);
  case 'I': {
    char err[TY_ERR_LEN];
    if (ty_task_mpi_if_check(v, err, sizeof err) != 0)
      return usage_error("--mpi-if-include", v, err);
    o->mpi_if = v;
    return 0;
  }
  case 'Q':
    o->metrics_token_file = v;
    return 0;
  case 'T': {
    char err[TY_ERR_LEN];
    if (ty_task_tmp_base_check(v, err, sizeof err) != 0) return usage_error("--tmp-base", v, err);
    o->tmp_base = v;
    return 0;
  }
  case 'W': {
    long ms = 0;
    if (parse_count(v, &ms) != 0 || (ms > 0 && ms < 100))
      return usage_error("--lease-ms", v, "is not 0 or a count of milliseconds from 100 on");
    o->lease_ms = (uint32_t)ms;
    return 0;
  }
  case 'L':
  case 'R':
    return parse_log_flag(o, c, v);
  case 'l':
    return ty_log_parse_level(v, &o->log_level)
               ? usage_error("--log-level", v, "is not a log level")
               : 0;
  case 'A':
  case 'K':
  case 'S':
  case 'U':
  case 'E':
  case 'O':
  case 'N':
  case 'X':
  case 'P':
    return parse_isolation(o, c, v);
  default:
    break;
  }
  char err[TY_ERR_LEN];
  int rc = ty_rpc_limits_parse_flag(&o->limits, c, v, err, sizeof err);
  if (rc < 0) fprintf(stderr, "trainworkerd: %s\n", err), put_usage(stderr);
  return rc < 0 ? 2 : rc == 0 ? 0 : usage_error("option", NULL, "is not handled");
}

int ty_worker_flags_parse(int argc, char **argv, worker_opts *o) {
  default_opts(o);
  ty_opts it;
  char err[TY_ERR_LEN];
  if (ty_opts_init(&it, argc - 1, argv + 1, "h", longopts) != 0) return 1;
  int rc = -1;
  while (rc < 0) {
    const char *v = NULL;
    int c = ty_opts_next(&it, &v, err, sizeof err);
    if (c == TY_OPT_END) break;
    if (c == 'h') {
      put_usage(stdout);
      rc = 0;
    } else if (c == 'V') {
      ty_version_print(stdout, "trainworkerd");
      rc = 0;
    } else if (c == TY_OPT_POSITIONAL || c < 0) {
      if (c == TY_OPT_POSITIONAL) snprintf(err, sizeof err, "unexpected argument \"%s\"", v);
      fprintf(stderr, "trainworkerd: %s\n", err);
      put_usage(stderr);
      rc = 2;
    } else {
      rc = parse_flag(o, c, v);
      if (rc == 0) rc = -1;
    }
  }
  ty_opts_close(&it);
  return rc;
}

void ty_worker_flags_free(worker_opts *o) {
  for (size_t i = 0; i < o->n_task_env; i++)
    free(o->task_env[i]);
  free(o->task_env);
  o->task_env = NULL;
  o->n_task_env = 0;
}

/* ---- the binaries the flags name ------------------------------------------------ */

/* cand as an absolute path in out (PATH_MAX) when it is an executable file. */
static bool executable_at(const char *cand, char *out) {
  return access(cand, X_OK) == 0 && realpath(cand, out) != NULL;
}

/* The first executable `name` in one of PATH's directories, as an absolute
 * path in out (PATH_MAX). */
static bool find_in_path(const char *name, char *out) {
  const char *path = getenv("PATH");
  for (const char *p = path; p && *p;) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char cand[PATH_MAX];
    snprintf(cand, sizeof cand, "%.*s/%s", (int)len, p, name);
    if (len && executable_at(cand, out)) return true;
    p = end ? end + 1 : p + len;
  }
  return false;
}

/* trainrun next to this binary, in the build tree's ops/trainrun,
 * installed in BINDIR (trainworkerd itself is in sbin), or the first in
 * this daemon's PATH, as an absolute path in out (PATH_MAX). */
static bool search_trainrun(char *out) {
  char exe[PATH_MAX];
  size_t n = sizeof exe;
  char *slash = uv_exepath(exe, &n) == 0 ? strrchr(exe, '/') : NULL;
  if (slash) *slash = 0;
  const char *rel[] = {"/trainrun", "/../ops/trainrun/trainrun"};
  for (size_t i = 0; slash && i < TY_ARRAY_LEN(rel); i++) {
    char cand[PATH_MAX + 32];
    snprintf(cand, sizeof cand, "%s%s", exe, rel[i]);
    if (executable_at(cand, out)) return true;
  }
  return executable_at(TY_BINDIR "/trainrun", out) || find_in_path("trainrun", out);
}

/* --trainrun's binary, or the one search_trainrun finds, kept as an
 * absolute path: a task is started with its job's PATH (or
 * TY_TASK_DEFAULT_PATH), not this daemon's, so a bare name found here could
 * be "not found" at launch. When there is none, a warning now: every graph
 * job placed on this node would fail. */
void ty_worker_find_trainrun(worker_opts *o) {
  char found[PATH_MAX];
  bool given = o->trainrun[0] != 0, ok;
  if (!given)
    ok = search_trainrun(found);
  else if (strchr(o->trainrun, '/'))
    ok = executable_at(o->trainrun, found);
  else
    ok = find_in_path(o->trainrun, found);
  if (ok && strlen(found) < sizeof o->trainrun) {
    snprintf(o->trainrun, sizeof o->trainrun, "%s", found);
    ty_info("graph jobs' ranks run %s", o->trainrun);
  } else if (given) {
    ty_warn("--trainrun %s: not an executable file (nor one in PATH): graph jobs will fail on "
            "this node until it is there; command jobs run",
            o->trainrun);
  } else {
    snprintf(o->trainrun, sizeof o->trainrun, "trainrun"); /* PATH's at launch */
    ty_warn("no trainrun next to trainworkerd, in its build tree, in " TY_BINDIR
            " or in PATH: graph jobs will fail on this node until one is there (or give "
            "--trainrun PATH); command jobs run");
  }
}

/* The exec helper next to this binary (the build tree), installed in
 * LIBEXECDIR/trainyard, or PATH's. */
void ty_worker_find_helper(worker_opts *o) {
  if (o->exec_helper[0]) return;
  char exe[900];
  size_t n = sizeof exe;
  const char *installed = TY_LIBEXECDIR "/trainyard-exec";
  snprintf(o->exec_helper, sizeof o->exec_helper, "%s",
           access(installed, X_OK) == 0 ? installed : "trainyard-exec");
  if (uv_exepath(exe, &n) != 0 || !strrchr(exe, '/')) return;
  *strrchr(exe, '/') = 0;
  char cand[1024];
  snprintf(cand, sizeof cand, "%s/trainyard-exec", exe);
  if (access(cand, X_OK) == 0 && realpath(cand, o->exec_helper)) return;
}
