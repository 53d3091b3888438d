/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainworkerd: one per node. Parses the flags of docs/cluster-protocol.md,
 * detects the node, and wires the parts of worker/ together on one libuv
 * loop: the task registry, the controller session, the task I/O server and
 * /metrics. Everything the daemon owns hangs off one `ty_worker`.
 *
 * SIGTERM/SIGINT: the controller is told the worker is leaving (it places
 * nothing more here), the tasks get SIGTERM (SIGKILL after their grace),
 * their ends are reported as ended by the worker's stop (their jobs are
 * requeued, not failed), then the worker exits. A second signal SIGKILLs
 * the tasks at once. SIGHUP (`systemctl reload
 * trainworkerd`) reads --metrics-token-file again; nothing else changes.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/version.h"
#include "lib/http/http.h"
#include "lib/notify/notify.h"
#include "proto/methods.h"
#include "worker/worker_internal.h"

/* How long a stopping worker waits for the controller to acknowledge the
 * reports of the tasks it killed. */
#define REPORT_WAIT_MS 3000
#define STOP_CHECK_MS 100
#define LOGS_CHECK_MS 1000 /* logs over the cap are cut within a second */

typedef struct worker_opts {
  char controller_host[256];
  int controller_port;
  char name[256];
  char state_dir[1024];
  char io_host[256];
  int io_port;
  char metrics_host[256];
  int metrics_port;
  const char *metrics_token_file; /* --metrics-token-file: NULL = /metrics open */
  const char *advertise;
  char trainrun[1024]; /* graph jobs; "" = searched at start (find_trainrun) */
  long cpus, gpus;     /* -1 = detected */
  uint64_t memory;     /* 0 = detected */
  const char *port_file;
  ty_rpc_limits limits; /* of the task I/O port */
  ty_log_level log_level;
  /* Authentication and isolation (docs/security.md). */
  ty_auth_mode auth;
  const char *cluster_key, *munge_socket, *service_user;
  char exec_helper[1024]; /* "" = next to this binary */
  const char *cgroup_root, *cgroup_name;
  bool no_cgroups;
  long max_pids;   /* --max-pids-per-job: each job's pids.max here, 0 = none */
  char **task_env; /* --task-env, resolved to NAME=value (owned) */
  size_t n_task_env;
  const char *mpi_if;       /* --mpi-if-include (points into argv); NULL = Open MPI's choice */
  const char *tmp_base;     /* --tmp-base (points into argv, or "/tmp") */
  uint64_t log_max;         /* --log-max-size, 0 = no cap */
  uint32_t log_retention_s; /* --log-retention, 0 = keep */
  uint32_t lease_ms;        /* --lease-ms: TY_LEASE_AUTO, or 0 = no fencing */
} worker_opts;

typedef struct ty_worker {
  uv_loop_t loop;
  worker_opts o;
  ty_worker_inventory inv;
  char io_addr[300];
  char metrics_token[TY_HTTP_TOKEN_MAX]; /* "" = /metrics open */
  ty_tasks *tasks;
  ty_worker_io *io;
  ty_worker_session *session;
  ty_metrics *metrics;
  ty_http_server *http;
  ty__worker_stats *stats;
  ty_auth *auth;
  ty_auth_queue *authq;
  uint32_t service_uid;
  uv_signal_t sigterm, sigint, sighup;
  uv_timer_t stop_timer;
  uv_timer_t logs_timer;       /* once a second: ty_tasks_check_logs */
  ty_notify_watchdog watchdog; /* WatchdogSec= of trainworkerd.service */
  int stop_signals;
  int64_t all_ended_ms; /* when the last task ended during a stop; 0 = not yet */
  int exit_code;
} ty_worker;

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
    "                          (default 64M, at least 16K; 0 = no cap)\n"
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

/* Returns -1 to go on, or the process exit code. The values of --advertise
 * and --port-file point into argv. */
static int parse_args(int argc, char **argv, worker_opts *o) {
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

/* ---- start-up ------------------------------------------------------------------ */

static int write_port_file(const ty_worker *w) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", w->o.port_file);
  FILE *f = fopen(tmp, "w");
  if (!f) return TY_EIO;
  fprintf(f, "io=%d\nmetrics=%d\n", ty_worker_io_port(w->io), ty_http_server_port(w->http));
  if (fclose(f) != 0 || rename(tmp, w->o.port_file) != 0) return TY_EIO;
  return 0;
}

static void detect(ty_worker *w) {
  if (ty_worker_inventory_detect(&w->inv) != 0)
    ty_warn("hwloc could not load the topology; using sysconf/sysinfo");
  if (w->o.cpus > 0) w->inv.cpus = (uint32_t)w->o.cpus;
  if (w->o.gpus >= 0) ty_worker_inventory_set_gpus(&w->inv, (uint32_t)w->o.gpus);
  if (w->o.memory > 0) w->inv.memory = w->o.memory;
  if (!w->o.name[0]) snprintf(w->o.name, sizeof w->o.name, "%s", w->inv.hostname);
  if (!w->o.state_dir[0])
    snprintf(w->o.state_dir, sizeof w->o.state_dir, "./var/worker-%s", w->o.name);
}

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
static void find_trainrun(worker_opts *o) {
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
static void find_helper(worker_opts *o) {
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

/* The scheme of calls to and from the controller, munged checked now: a
 * worker that could never register says so at start. */
static int start_auth(ty_worker *w) {
  char err[TY_ERR_LEN] = "";
  ty_auth_config cfg = {
      .mode = w->o.auth, .munge_socket = w->o.munge_socket, .key_file = w->o.cluster_key};
  int rc = ty_auth_create(&cfg, &w->auth, err, sizeof err);
  if (rc == 0) rc = ty_auth_probe(w->auth, err, sizeof err);
  if (rc == 0) rc = ty_auth_queue_create(&w->loop, &w->authq);
  struct passwd *pw = rc == 0 ? getpwnam(w->o.service_user) : NULL;
  if (rc == 0 && !pw)
    rc = ty_errf(err, sizeof err, TY_EINVAL, "--service-user: no user \"%s\"", w->o.service_user);
  if (rc != 0) {
    ty_error("cannot start: %s%s", err,
             w->o.auth == TY_AUTH_MUNGE ? " (start munged, or run "
                                          "--auth none against a traind started with --auth none)"
                                        : "");
    return rc;
  }
  w->service_uid = (uint32_t)pw->pw_uid;
  if (w->o.auth == TY_AUTH_NONE)
    ty_warn("--auth none: calls to and from the controller are not authenticated");
  return 0;
}

/* Tasks run as their users in their own cgroups; says at start what this
 * worker can do. A previous run's tasks are killed before registering. */
static int start_isolation(ty_worker *w) {
  find_helper(&w->o);
  if (geteuid() != 0)
    ty_warn("trainworkerd runs as uid %u, not root: every task runs as uid %u, whoever submitted "
            "it (a development setup)",
            (unsigned)geteuid(), (unsigned)geteuid());
  ty_cgroups *cg = NULL;
  char why[TY_ERR_LEN] = "--no-cgroups", name[300];
  snprintf(name, sizeof name, "%s", w->o.cgroup_name ? w->o.cgroup_name : "");
  if (!name[0]) snprintf(name, sizeof name, "trainyard-%s", w->o.name);
  if (!w->o.no_cgroups)
    cg = ty_cgroup_open(w->o.cgroup_root, name, (uint64_t)w->o.max_pids, why, sizeof why);
  char pids[48] = "no limit";
  if (w->o.max_pids) snprintf(pids, sizeof pids, "at most %ld", w->o.max_pids);
  if (cg)
    ty_info("tasks run in their own cgroups: %s; processes and threads per job: %s",
            ty_cgroup_describe(cg), pids);
  else
    ty_warn("no usable cgroup hierarchy (%s): tasks are tracked and killed by process group, "
            "without limits or accounting, and a task that escapes its group outlives its job",
            why);
  ty_tasks_set_isolation(w->tasks, w->o.exec_helper, cg);
  size_t reaped = ty_tasks_reap_previous(w->tasks);
  if (reaped)
    ty_warn("killed %zu task%s a previous run of this worker left running", reaped,
            reaped == 1 ? "" : "s");
  /* The fence is forked before anything starts a thread (worker/fence.c):
   * the sweep's removals run on libuv's thread pool. */
  if (ty_tasks_start_fence(w->tasks) < 0)
    ty_warn("cannot fork the fence (%s): tasks will outlive this worker if it is killed outright",
            strerror(errno));
  size_t swept = ty_tasks_sweep_tmp(w->tasks);
  if (swept)
    ty_info("removing %zu TMPDIR%s a previous run of this worker left", swept,
            swept == 1 ? "" : "s");
  return 0;
}

static void on_task_end(ty_tasks *t, const ty_task_report *r, void *ud) {
  (void)t;
  ty_worker *w = ud;
  ty_worker_session_task_ended(w->session, r);
}

/* --metrics-token-file, read before anything starts: a file others may
 * read is refused, naming it, and the worker does not start (SIGHUP reads
 * it again). */
static int read_metrics_token(ty_worker *w) {
  if (!w->o.metrics_token_file) return 0;
  char err[TY_ERR_LEN] = "";
  int rc = ty_http_read_token_file(w->o.metrics_token_file, w->metrics_token,
                                   sizeof w->metrics_token, err, sizeof err);
  if (rc != 0) ty_error("cannot start: --metrics-token-file: %s", err);
  return rc;
}

static int start_listeners(ty_worker *w) {
  w->metrics = ty_metrics_create();
  w->o.limits.stats = ty_metrics_conn_stats(w->metrics, "io");
  int rc =
      ty_worker_io_create(&w->loop, w->o.io_host, w->o.io_port, w->tasks, &w->o.limits, &w->io);
  if (rc != 0) {
    ty_error("cannot listen for task I/O on %s:%d: %s", w->o.io_host, w->o.io_port,
             ty_strerror(rc));
    return rc;
  }
  w->stats = ty__worker_stats_create(w->metrics, w->tasks, &w->inv);
  rc = ty_http_serve_metrics(&w->loop, w->o.metrics_host, w->o.metrics_port, w->metrics, &w->http);
  if (rc != 0) {
    ty_error("cannot serve /metrics on %s:%d: %s", w->o.metrics_host, w->o.metrics_port,
             ty_strerror(rc));
    return rc;
  }
  if ((rc = ty_http_server_require_token(w->http, w->metrics_token)) != 0) return rc;
  /* Without --advertise a specific listener is its own address; a wildcard
   * one is advertised by the session, at the address facing the controller. */
  const char *host = w->o.advertise ? w->o.advertise : w->o.io_host;
  bool wildcard = !strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !host[0];
  if (!wildcard) snprintf(w->io_addr, sizeof w->io_addr, "%s:%d", host, ty_worker_io_port(w->io));
  if (w->o.port_file && write_port_file(w) != 0) {
    ty_error("cannot write the port file %s", w->o.port_file);
    return TY_EIO;
  }
  return 0;
}

/* ---- shutdown -------------------------------------------------------------------- */

static void on_stop_check(uv_timer_t *h) {
  ty_worker *w = h->data;
  if (ty_tasks_running(w->tasks) > 0) return;
  if (w->all_ended_ms == 0) w->all_ended_ms = ty_mono_ms();
  bool reported = ty_worker_session_unacked(w->session) == 0;
  bool can_report = ty_worker_session_registered(w->session);
  if (!reported && can_report && ty_mono_ms() - w->all_ended_ms < REPORT_WAIT_MS) return;
  if (!reported)
    ty_warn("exiting with %u task reports the controller has not acknowledged",
            ty_worker_session_unacked(w->session));
  uv_timer_stop(h);
  uv_stop(&w->loop);
}

static void on_signal(uv_signal_t *h, int signum) {
  ty_worker *w = h->data;
  if (w->stop_signals++ > 0) {
    ty_warn("signal %d again: killing tasks now", signum);
    ty_tasks_kill_all_now(w->tasks);
    return;
  }
  ty_info("signal %d: stopping %u tasks, then exiting", signum, ty_tasks_running(w->tasks));
  ty_notify_stopping("stopping: ending tasks and reporting them");
  ty_worker_session_leaving(w->session);
  ty_tasks_kill_all(w->tasks);
  uv_timer_start(&w->stop_timer, on_stop_check, 0, STOP_CHECK_MS);
}

/* SIGHUP: /metrics' token read again from its file. A file that cannot be
 * read, or that others may read, is refused in the log and the running
 * token stays. The token itself is never logged. */
static void on_reload(uv_signal_t *h, int signum) {
  (void)signum;
  ty_worker *w = h->data;
  if (!w->o.metrics_token_file) {
    ty_info("received SIGHUP: no --metrics-token-file to read again; nothing changes");
    return;
  }
  char token[TY_HTTP_TOKEN_MAX], err[TY_ERR_LEN] = "";
  int rc = ty_http_read_token_file(w->o.metrics_token_file, token, sizeof token, err, sizeof err);
  if (rc == 0 && strcmp(token, w->metrics_token) == 0) {
    ty_info("received SIGHUP: the metrics token in %s is unchanged", w->o.metrics_token_file);
    return;
  }
  if (rc == 0) rc = ty_http_server_require_token(w->http, token);
  if (rc != 0) {
    ty_error("received SIGHUP: %s; the running metrics token stays",
             err[0] ? err : ty_strerror(rc));
    return;
  }
  snprintf(w->metrics_token, sizeof w->metrics_token, "%s", token);
  ty_info("received SIGHUP: metrics token replaced (read from %s)", w->o.metrics_token_file);
}

static void on_logs_timer(uv_timer_t *h) {
  ty_worker *w = h->data;
  ty_tasks_check_logs(w->tasks);
}

static void start_signals(ty_worker *w) {
  uv_signal_init(&w->loop, &w->sigterm);
  uv_signal_init(&w->loop, &w->sigint);
  uv_timer_init(&w->loop, &w->stop_timer);
  uv_timer_init(&w->loop, &w->logs_timer);
  uv_signal_init(&w->loop, &w->sighup);
  w->sigterm.data = w->sigint.data = w->sighup.data = w->stop_timer.data = w->logs_timer.data = w;
  uv_signal_start(&w->sigterm, on_signal, SIGTERM);
  uv_signal_start(&w->sigint, on_signal, SIGINT);
  uv_signal_start(&w->sighup, on_reload, SIGHUP);
}

/* Frees everything; runs the loop until every handle has closed. */
static void teardown(ty_worker *w) {
  ty_worker_session_destroy(w->session);
  ty_worker_io_destroy(w->io);
  ty_http_server_stop(w->http);
  ty_tasks_destroy(w->tasks);
  uv_close((uv_handle_t *)&w->sigterm, NULL);
  uv_close((uv_handle_t *)&w->sigint, NULL);
  uv_close((uv_handle_t *)&w->sighup, NULL);
  uv_close((uv_handle_t *)&w->stop_timer, NULL);
  uv_close((uv_handle_t *)&w->logs_timer, NULL);
  ty_notify_watchdog_close(&w->watchdog);
  ty_auth_queue_destroy(w->authq); /* frees itself once its callbacks ran */
  uv_run(&w->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&w->loop) != 0) ty_warn("event loop closed with handles still open");
  ty_auth_destroy(w->auth);
  ty__worker_stats_destroy(w->stats);
  ty_metrics_destroy(w->metrics);
  ty_worker_inventory_close(&w->inv);
}

/* Every task's first variables: TRAINYARD_CONTROLLER (this worker's
 * controller, so `trainctl job checkpoint $TRAINYARD_JOB_ID` in a task
 * reaches it), --mpi-if-include as Open MPI's own MCA variables, then
 * --task-env, so an operator's explicit entries win. ompi-server inherits
 * its rank 0's environment, and mpirun hands OMPI_MCA_* on to the
 * processes it starts; a command job's own environment comes later and
 * still replaces them. */
static void set_site_env(ty_worker *w) {
  static const char *const vars[] = {"OMPI_MCA_btl_tcp_if_include", "OMPI_MCA_oob_tcp_if_include"};
  size_t n = 0, cap = 1 + TY_ARRAY_LEN(vars) + w->o.n_task_env;
  char **all = ty_xcalloc(cap, sizeof *all);
  bool v6 = strchr(w->o.controller_host, ':') != NULL; /* an IPv6 literal: [::1]:7810 */
  size_t clen = strlen(w->o.controller_host) + 48;
  char *controller = ty_xmalloc(clen);
  snprintf(controller, clen, "TRAINYARD_CONTROLLER=%s%s%s:%d", v6 ? "[" : "", w->o.controller_host,
           v6 ? "]" : "", w->o.controller_port);
  all[n++] = controller;
  for (size_t i = 0; w->o.mpi_if && i < TY_ARRAY_LEN(vars); i++) {
    size_t len = strlen(vars[i]) + strlen(w->o.mpi_if) + 2;
    all[n] = ty_xmalloc(len);
    snprintf(all[n++], len, "%s=%s", vars[i], w->o.mpi_if);
  }
  for (size_t i = 0; i < w->o.n_task_env; i++)
    all[n++] = w->o.task_env[i];
  ty_tasks_set_site_env(w->tasks, all, n);
  for (size_t i = 0; w->o.mpi_if && i < TY_ARRAY_LEN(vars); i++)
    free(all[1 + i]);
  free(controller);
  free(all);
  if (w->o.mpi_if) ty_info("tasks' Open MPI uses only %s", w->o.mpi_if);
}

static int run(ty_worker *w) {
  if (read_metrics_token(w) != 0) return 1;
  detect(w);
  find_trainrun(&w->o);
  if (ty_mkdir_p(w->o.state_dir) != 0) {
    ty_error("cannot create the state directory %s", w->o.state_dir);
    return 1;
  }
  /* Tasks run in their job's cwd, so every path handed to them (logs, a graph
   * rank's model and config) must not depend on the worker's own cwd. */
  char abs[PATH_MAX];
  if (!realpath(w->o.state_dir, abs) || strlen(abs) >= sizeof w->o.state_dir) {
    ty_error("cannot resolve the state directory %s", w->o.state_dir);
    return 1;
  }
  snprintf(w->o.state_dir, sizeof w->o.state_dir, "%s", abs);
  uv_loop_init(&w->loop);
  start_signals(w);
  int rc = start_auth(w);
  if (rc == 0) rc = ty_tasks_create(&w->loop, w->o.state_dir, w->o.name, on_task_end, w, &w->tasks);
  if (rc == 0) rc = start_isolation(w);
  if (rc == 0) {
    set_site_env(w);
    ty_tasks_set_tmp_base(w->tasks, w->o.tmp_base);
    ty_tasks_set_log_limits(w->tasks, w->o.log_max, w->o.log_retention_s);
    uv_timer_start(&w->logs_timer, on_logs_timer, 0, LOGS_CHECK_MS);
  }
  if (rc == 0) rc = start_listeners(w);
  ty_worker_session_opts so = {.host = w->o.controller_host,
                               .port = w->o.controller_port,
                               .name = w->o.name,
                               .io_addr = w->io_addr[0] ? w->io_addr : NULL,
                               .io_port = w->io ? ty_worker_io_port(w->io) : 0,
                               .inv = &w->inv,
                               .tasks = w->tasks,
                               .trainrun = w->o.trainrun,
                               .auth = w->auth,
                               .queue = w->authq,
                               .service_uid = w->service_uid,
                               .lease_ms = w->o.lease_ms};
  if (rc == 0) rc = ty_worker_session_create(&w->loop, &so, &w->session);
  if (rc == 0) {
    ty_info("node %s: %u CPUs, %u GPUs, %" PRIu64 " MiB, %s; task I/O on %s, metrics on %s:%d, "
            "controller %s:%d, state in %s",
            w->o.name, w->inv.cpus, w->inv.n_gpus, w->inv.memory >> 20, w->inv.topology,
            w->io_addr[0] ? w->io_addr
                          : "every address (advertised: the one facing the controller)",
            w->o.metrics_host, ty_http_server_port(w->http), w->o.controller_host,
            w->o.controller_port, w->o.state_dir);
    if (ty_notify_watchdog_init(&w->loop, &w->watchdog) != 0)
      ty_warn("cannot start the watchdog keep-alive");
    /* Listening, with the controller session started (it registers and
     * reconnects on its own): ready, as a worker that waits for a
     * controller must not hold up its host's boot. */
    ty_notify_ready(w->io_addr);
    uv_run(&w->loop, UV_RUN_DEFAULT);
  }
  teardown(w);
  return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  ty_worker *w = ty_xcalloc(1, sizeof *w);
  int rc = parse_args(argc, argv, &w->o);
  if (rc < 0) {
    ty_log_init("trainworkerd", w->o.log_level);
    signal(SIGPIPE, SIG_IGN);
    ty_raise_fd_limit(); /* tasks, their logs and I/O clients all take descriptors */
    rc = run(w);
  }
  for (size_t i = 0; i < w->o.n_task_env; i++)
    free(w->o.task_env[i]);
  free(w->o.task_env);
  free(w);
  return rc;
}
