/* SPDX-License-Identifier: Apache-2.0 */
/*
 * traind: the Trainyard controller. Parses flags (docs/cluster-protocol.md),
 * creates the controller on the default loop, writes the port file once
 * listening, reads --config again on SIGHUP (applied, or refused with the
 * running settings kept), and shuts down in order on SIGTERM/SIGINT: stop
 * listening, commit and answer what is queued, close. Tasks keep running
 * on workers.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "lib/base/version.h"
#include "lib/http/http.h"
#include "lib/notify/notify.h"
#include "lib/rpc/rpc.h"
#include "ops/plan/plan.h"
#include "proto/methods.h"
#include "scheduler/scheduler.h"

typedef struct opts {
  char listen_host[256], metrics_host[256], web_host[256]; /* web_host "" = no console */
  int listen_port, metrics_port, web_port;
  bool web_token_required;
  const char *state_dir, *port_file, *config_file, *munge_socket, *checkpoint_dir;
  const char *socket;             /* --socket: NULL = STATE_DIR/traind.sock, "none" = no socket */
  const char *backup;             /* --backup FILE: copy the store there and exit */
  const char *metrics_token_file; /* --metrics-token-file: NULL = /metrics open */
  ty_auth_mode auth;
  uint32_t heartbeat_ms, node_timeout_ms, kill_grace_s, rlaunch_gone_s, store_retry_ms;
  uint64_t max_frame;
  ty_rpc_limits limits;
  ty_log_level level;
  /* Graph jobs' checks and plans (daemon/check.c). */
  char graphcheck[1024]; /* "" = next to traind */
  uint32_t check_cpu_s, check_timeout_s, check_jobs;
  uint64_t check_mem;
  /* Memory and history (issue 15): 0 = the controller's default. */
  uint32_t job_cache, min_job_age_s, purge_after_s;
  bool kill_on_invalid_dep;
  uint32_t max_user_jobs; /* 0 = the controller's default */
  ty_plan_cluster rates;  /* device_flops 0 = measured, device_mem_bytes 0 = the job's */
  uint64_t rank_reserve;  /* of a job's memory per rank, not the model's */
} opts;

/* The --plan-* flags: the cost model's options (ops/plan's list and parser). */
static const char *const plan_keys[] = {
#define KEY_(key, i) [i] = key,
    TY_PLAN_CLUSTER_OPTIONS(KEY_)
#undef KEY_
};
#define PLAN_OPT_FIRST 1000

typedef struct daemon_state {
  uv_signal_t sigterm, sigint, sighup;
  ty_notify_watchdog watchdog; /* WatchdogSec= of traind.service */
  ty_controller *ctl;
} daemon_state;

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: traind [options]\n"
      "  --listen HOST:PORT          clients and workers (default 127.0.0.1:%d; port 0 = "
      "ephemeral)\n"
      "  --metrics-listen HOST:PORT  Prometheus /metrics (default 127.0.0.1:%d)\n"
      "  --metrics-token-file FILE   /metrics answers only \"Authorization: Bearer TOKEN\"\n"
      "                              with the token in FILE (mode 600 or 640; default: open)\n"
      "  --web-listen HOST:PORT      the web console (default off): its users may cancel,\n"
      "                              hold and release what trainctl lets them\n"
      "                              (docs/web-console.md)\n"
      "  --web-token-required        with --auth none, loopback clients need the console's token "
      "too\n"
      "  --state-dir DIR             SQLite state in DIR/traind.db (default ./var/traind);\n"
      "                              one traind per DIR (DIR/traind.lock)\n"
      "  --socket PATH|none          local clients' Unix socket, callers identified by the\n"
      "                              kernel (default DIR/traind.sock; the service uses\n"
      "                              /run/trainyard/traind.sock; docs/security.md)\n"
      "  --backup FILE               copy DIR/traind.db to FILE and exit; safe while traind\n"
      "                              runs (SQLite's online backup; docs/deploy.md)\n"
      "  --checkpoint-dir DIR        graph jobs' default checkpoints, DIR/JOB/ (shared with\n"
      "                              the workers; made 0711, each JOB by its rank 0's worker;\n"
      "                              default: checkpoints next to the state dir)\n"
      "  --heartbeat-ms N            heartbeat interval told to workers (default 2000)\n"
      "  --node-timeout-ms N         silence before a node is DOWN (default 15000)\n"
      "  --kill-grace-s N            SIGTERM to SIGKILL delay (default 10)\n"
      "  --rlaunch-gone-s N          a pending rlaunch job whose rlaunch went away is\n"
      "                              cancelled after N s unless it comes back (default\n"
      "                              30; rlaunch retries for 10 s, 10 s a try at most)\n"
      "  --store-retry-ms N          after failed store writes (a full disk), every job and\n"
      "                              node is written again every N ms until stored\n"
      "                              (default 5000; at least 1000, the controller's tick)\n"
      "  --max-frame BYTES           largest RPC frame (default 64M)\n" TY_RPC_LIMITS_USAGE
      "  --config FILE               scheduler and auth. settings: key = value lines (README)\n"
      "  --auth munge|none           client authentication (default munge; none: a\n"
      "                              single-user development cluster, no credentials)\n"
      "  --munge-socket PATH         munged's socket (default /run/munge/munge.socket.2)\n"
      "Jobs in memory and history (finished jobs are read back from the store):\n"
      "  --job-cache N               finished jobs kept in memory (default 1000)\n"
      "  --min-job-age DURATION      ... for at most this long after last use (5m)\n"
      "  --purge-after DURATION      delete jobs from the store this long after they\n"
      "                              ended, and node events (node show) this old,\n"
      "                              e.g. 30d (default: keep them); a pruned graph\n"
      "                              job's CHECKPOINT_DIR/JOB goes with it\n"
      "  --kill-on-invalid-dep       cancel jobs whose dependency can never be met\n"
      "                              (default: leave them pending with the reason)\n"
      "  --max-user-jobs N|none      jobs not ended one user may hold; a submit past it\n"
      "                              is refused (default 100000; docs/security.md)\n",
      TY_CONTROLLER_PORT, TY_CONTROLLER_METRICS_PORT);
  /* Two strings: C11 promises string literals of 4095 bytes only. */
  fputs("Graph jobs are checked and planned in a child process, trainyard-graphcheck:\n"
        "  --graphcheck PATH           its binary (default: next to traind,\n"
        "                              graphcheck/trainyard-graphcheck in a build tree, else\n"
        "                              " TY_LIBEXECDIR "/trainyard-graphcheck)\n"
        "  --check-cpu-s N             its CPU time limit (default 60)\n"
        "  --check-mem BYTES           its address-space limit (default 4G)\n"
        "  --check-timeout-s N         its wall-clock limit, then SIGKILL (default 120)\n"
        "  --check-jobs N              checks running at once (default 4)\n"
        "The planner's cost model (docs/planner.md):\n"
        "  --plan-device-flops F|cpu   FLOP/s of one device (default cpu: measured once;\n"
        "                              jobs with GPUs 1e11)\n"
        "  --plan-device-mem BYTES     memory of one device (default the job's memory\n"
        "                              per task less --plan-rank-reserve, else 16G)\n"
        "  --plan-rank-reserve BYTES   of a job's memory per task, what trainrun uses\n"
        "                              before its model (default 256M; 0: none)\n"
        "  --plan-intra-gbps, --plan-inter-gbps  GB/s inside a node, across (10, 1.25)\n"
        "  --plan-latency-us, --plan-inter-latency-us, --plan-launch-us  (2, 20, 5)\n"
        "  --port-file FILE            write rpc=PORT and metrics=PORT once listening\n"
        "  --log-level LEVEL           debug|info|warn|error (default info)\n"
        "  --help                      this text\n"
        "  --version                   the version\n",
        f);
}

/* A usage error: the message, the usage on stderr, exit code 2. */
static int usage_error(const char *msg) {
  fprintf(stderr, "traind: %s\n", msg);
  usage(stderr);
  return 2;
}

static int parse_u32(const char *s, uint32_t min, uint32_t *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *end || end == s || s[0] == '-' || v > UINT32_MAX || v < min) return TY_EINVAL;
  *out = (uint32_t)v;
  return 0;
}

static int bad_flag(const char *flag, const char *value, const char *want) {
  fprintf(stderr, "traind: %s: \"%s\" is not %s\n", flag, value, want);
  return 2;
}

static int parse_flag(opts *o, int c, const char *arg) {
  switch (c) {
  case 'l':
    return ty_parse_hostport(arg, o->listen_host, sizeof(o->listen_host), &o->listen_port)
               ? bad_flag("--listen", arg, "HOST:PORT")
               : 0;
  case 'm':
    return ty_parse_hostport(arg, o->metrics_host, sizeof(o->metrics_host), &o->metrics_port)
               ? bad_flag("--metrics-listen", arg, "HOST:PORT")
               : 0;
  case 'w':
    return ty_parse_hostport(arg, o->web_host, sizeof(o->web_host), &o->web_port)
               ? bad_flag("--web-listen", arg, "HOST:PORT")
               : 0;
  case 'W':
    o->web_token_required = true;
    return 0;
  case 's':
    o->state_dir = arg;
    return 0;
  case 'b':
    return parse_u32(arg, 1, &o->heartbeat_ms)
               ? bad_flag("--heartbeat-ms", arg, "a positive number")
               : 0;
  case 't':
    return parse_u32(arg, 1, &o->node_timeout_ms)
               ? bad_flag("--node-timeout-ms", arg, "a positive number")
               : 0;
  case 'k':
    return parse_u32(arg, 0, &o->kill_grace_s)
               ? bad_flag("--kill-grace-s", arg, "a number of seconds")
               : 0;
  case 'r':
    return parse_u32(arg, 1, &o->rlaunch_gone_s)
               ? bad_flag("--rlaunch-gone-s", arg, "a positive number of seconds")
               : 0;
  case 'y':
    return parse_u32(arg, 1000, &o->store_retry_ms)
               ? bad_flag("--store-retry-ms", arg, "a number of milliseconds of at least 1000")
               : 0;
  case 'f':
    return ty_parse_size(arg, &o->max_frame) || o->max_frame < 1024 || o->max_frame > UINT32_MAX
               ? bad_flag("--max-frame", arg, "a size between 1K and 4G")
               : 0;
  case 'p':
    o->port_file = arg;
    return 0;
  case 'c':
    o->config_file = arg;
    return 0;
  case 'a':
    return ty_auth_mode_parse(arg, &o->auth) || o->auth == TY_AUTH_KEY
               ? bad_flag("--auth", arg, "munge or none")
               : 0;
  case 'S':
    o->munge_socket = arg;
    return 0;
  case 'D':
    o->checkpoint_dir = arg;
    return 0;
  case 'v':
    return ty_log_parse_level(arg, &o->level)
               ? bad_flag("--log-level", arg, "debug|info|warn|error")
               : 0;
  case 'g':
    return snprintf(o->graphcheck, sizeof o->graphcheck, "%s", arg) >= (int)sizeof o->graphcheck
               ? bad_flag("--graphcheck", arg, "a path")
               : 0;
  case 'C':
    return parse_u32(arg, 1, &o->check_cpu_s) ? bad_flag("--check-cpu-s", arg, "a positive number")
                                              : 0;
  case 'M':
    return ty_parse_size(arg, &o->check_mem) || o->check_mem < (64u << 20)
               ? bad_flag("--check-mem", arg, "a size of at least 64M")
               : 0;
  case 'T':
    return parse_u32(arg, 1, &o->check_timeout_s)
               ? bad_flag("--check-timeout-s", arg, "a positive number")
               : 0;
  case 'J':
    return parse_u32(arg, 1, &o->check_jobs) ? bad_flag("--check-jobs", arg, "a positive number")
                                             : 0;
  case 'R':
    return ty_parse_size(arg, &o->rank_reserve) ? bad_flag("--plan-rank-reserve", arg, "a size")
                                                : 0;
  case 'N':
    return parse_u32(arg, 1, &o->job_cache) ? bad_flag("--job-cache", arg, "a positive number") : 0;
  case 'A':
    return ty_parse_duration(arg, &o->min_job_age_s) || !o->min_job_age_s
               ? bad_flag("--min-job-age", arg, "a duration above 0 (e.g. 300, 5m)")
               : 0;
  case 'P':
    return ty_parse_duration(arg, &o->purge_after_s) || !o->purge_after_s
               ? bad_flag("--purge-after", arg, "a duration above 0 (e.g. 30d, 720h)")
               : 0;
  case 'K':
    o->kill_on_invalid_dep = true;
    return 0;
  case 'u':
    if (!strcmp(arg, "none")) {
      o->max_user_jobs = UINT32_MAX;
      return 0;
    }
    return parse_u32(arg, 1, &o->max_user_jobs) || o->max_user_jobs == UINT32_MAX
               ? bad_flag("--max-user-jobs", arg, "a positive number or none")
               : 0;
  case 'B':
    o->backup = arg;
    return 0;
  case 'Q':
    o->metrics_token_file = arg;
    return 0;
  case 'U':
    if (strcmp(arg, "none") != 0 && arg[0] != '/')
      return bad_flag("--socket", arg, "an absolute path or none");
    o->socket = arg;
    return 0;
  case 'h':
    usage(stdout);
    return -1;
  case 'V':
    ty_version_print(stdout, "traind");
    return -1;
  default:
    break;
  }
  if (c >= PLAN_OPT_FIRST && c < PLAN_OPT_FIRST + (int)TY_ARRAY_LEN(plan_keys)) {
    char what[64], err[TY_ERR_LEN];
    snprintf(what, sizeof what, "--plan-%s", plan_keys[c - PLAN_OPT_FIRST]);
    if (ty_plan_cluster_set(&o->rates, plan_keys[c - PLAN_OPT_FIRST], what, arg, err, sizeof err) ==
        0)
      return 0;
    fprintf(stderr, "traind: %s\n", err);
    return 2;
  }
  char err[TY_ERR_LEN];
  int rc = ty_rpc_limits_parse_flag(&o->limits, c, arg, err, sizeof(err));
  if (rc < 0) {
    fprintf(stderr, "traind: %s\n", err);
    return 2;
  }
  return rc == 0 ? 0 : usage_error("unhandled option");
}

static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"metrics-listen", required_argument, NULL, 'm'},
                                         {"web-listen", required_argument, NULL, 'w'},
                                         {"web-token-required", no_argument, NULL, 'W'},
                                         {"state-dir", required_argument, NULL, 's'},
                                         {"heartbeat-ms", required_argument, NULL, 'b'},
                                         {"node-timeout-ms", required_argument, NULL, 't'},
                                         {"kill-grace-s", required_argument, NULL, 'k'},
                                         {"rlaunch-gone-s", required_argument, NULL, 'r'},
                                         {"store-retry-ms", required_argument, NULL, 'y'},
                                         {"max-frame", required_argument, NULL, 'f'},
                                         {"port-file", required_argument, NULL, 'p'},
                                         {"log-level", required_argument, NULL, 'v'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"auth", required_argument, NULL, 'a'},
                                         {"munge-socket", required_argument, NULL, 'S'},
                                         {"checkpoint-dir", required_argument, NULL, 'D'},
                                         {"graphcheck", required_argument, NULL, 'g'},
                                         {"check-cpu-s", required_argument, NULL, 'C'},
                                         {"check-mem", required_argument, NULL, 'M'},
                                         {"check-timeout-s", required_argument, NULL, 'T'},
                                         {"check-jobs", required_argument, NULL, 'J'},
                                         {"plan-rank-reserve", required_argument, NULL, 'R'},
                                         {"job-cache", required_argument, NULL, 'N'},
                                         {"min-job-age", required_argument, NULL, 'A'},
                                         {"purge-after", required_argument, NULL, 'P'},
                                         {"kill-on-invalid-dep", no_argument, NULL, 'K'},
                                         {"max-user-jobs", required_argument, NULL, 'u'},
                                         {"backup", required_argument, NULL, 'B'},
                                         {"socket", required_argument, NULL, 'U'},
                                         {"metrics-token-file", required_argument, NULL, 'Q'},
#define PLAN_OPT_(key, i) {"plan-" key, required_argument, NULL, PLAN_OPT_FIRST + i},
                                         TY_PLAN_CLUSTER_OPTIONS(PLAN_OPT_)
#undef PLAN_OPT_
                                             TY_RPC_LIMIT_OPTIONS,
                                         {NULL, 0, NULL, 0}};

static int parse_args(int argc, char **argv, opts *o) {
  *o = (opts){.listen_host = "127.0.0.1",
              .metrics_host = "127.0.0.1",
              .listen_port = TY_CONTROLLER_PORT,
              .metrics_port = TY_CONTROLLER_METRICS_PORT,
              .state_dir = "./var/traind",
              .heartbeat_ms = 2000,
              .node_timeout_ms = 15000,
              .kill_grace_s = 10,
              .rlaunch_gone_s = 30,
              .store_retry_ms = 5000,
              .max_frame = 64u << 20,
              .level = TY_LOG_INFO,
              .check_cpu_s = 60,
              .check_timeout_s = 120,
              .check_jobs = 4,
              .check_mem = 4ull << 30,
              .rank_reserve = 256ull << 20,
              .auth = TY_AUTH_MUNGE};
  ty_plan_request req;
  ty_plan_request_init(&req);
  o->rates = req.cluster;
  o->rates.device_flops = 0;     /* measured, or ops/plan's default for GPUs */
  o->rates.device_mem_bytes = 0; /* the job's, else ops/plan's default */
  ty_opts it;
  char err[TY_ERR_LEN];
  /* Long options only: the letters are ids, not short options. */
  if (ty_opts_init(&it, argc - 1, argv + 1, "", longopts) != 0) return usage_error("out of memory");
  int rc = 0;
  while (rc == 0) {
    const char *arg = NULL;
    int c = ty_opts_next(&it, &arg, err, sizeof(err));
    if (c == TY_OPT_END) break;
    if (c == TY_OPT_POSITIONAL) snprintf(err, sizeof(err), "unexpected argument \"%s\"", arg);
    if (c < 0)
      rc = usage_error(err);
    else
      rc = parse_flag(o, c, arg);
  }
  ty_opts_close(&it);
  return rc;
}

/* trainyard-graphcheck next to traind, in the build tree's
 * daemon/graphcheck, or installed in LIBEXECDIR/trainyard. With none of
 * them executable the installed path stays (a failed spawn names it) and
 * a warning says now what every graph submit would find out; so does one
 * for a --graphcheck that is no executable file. */
static void find_graphcheck(opts *o) {
  if (o->graphcheck[0] && strchr(o->graphcheck, '/') && access(o->graphcheck, X_OK) != 0)
    ty_warn("--graphcheck %s: not an executable file; every graph job will be refused",
            o->graphcheck);
  if (o->graphcheck[0]) return;
  const char *installed = TY_LIBEXECDIR "/trainyard-graphcheck";
  snprintf(o->graphcheck, sizeof o->graphcheck, "%s", installed);
  char exe[900];
  size_t n = sizeof exe;
  char *slash = uv_exepath(exe, &n) == 0 ? strrchr(exe, '/') : NULL;
  if (slash) *slash = 0;
  const char *rel[] = {"/trainyard-graphcheck", "/graphcheck/trainyard-graphcheck"};
  for (size_t i = 0; slash && i < TY_ARRAY_LEN(rel); i++) {
    char cand[1024], abs[PATH_MAX];
    snprintf(cand, sizeof cand, "%s%s", exe, rel[i]);
    if (access(cand, X_OK) == 0 && realpath(cand, abs) && strlen(abs) < sizeof o->graphcheck) {
      snprintf(o->graphcheck, sizeof o->graphcheck, "%s", abs);
      return;
    }
  }
  if (access(installed, X_OK) == 0) return;
  ty_warn("no trainyard-graphcheck next to traind (%s), in a build tree (%s/graphcheck) or in "
          "%s: every graph job will be refused until one is there; give --graphcheck PATH",
          slash ? exe : "?", slash ? exe : "?", TY_LIBEXECDIR);
}

/* The cost model as the controller passes it to each check. */
static ty_check_cluster check_rates(const ty_plan_cluster *c, uint64_t rank_reserve) {
  return (ty_check_cluster){.device_flops = c->device_flops,
                            .device_mem_bytes = c->device_mem_bytes,
                            .intra_bw = c->intra_bw,
                            .inter_bw = c->inter_bw,
                            .intra_latency_s = c->intra_latency_s,
                            .inter_latency_s = c->inter_latency_s,
                            .launch_s = c->launch_s,
                            .rank_reserve_bytes = rank_reserve};
}

/* Writes FILE.tmp and renames it, so readers never see half a file. */
static int write_port_file(const char *path, int rpc, int metrics, int web) {
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) return TY_EINVAL;
  FILE *f = fopen(tmp, "w");
  if (!f) return -errno;
  fprintf(f, "rpc=%d\nmetrics=%d\n", rpc, metrics);
  if (web >= 0) fprintf(f, "web=%d\n", web);
  if (fclose(f) != 0) return -errno;
  if (rename(tmp, path) != 0) return -errno;
  return 0;
}

/* Reads and parses --config FILE into the scheduler's settings and the
 * auth. policy (both zeroed or defaults first: close policy and topo
 * whatever the answer); TY_EINVAL or the errno with a sentence naming the
 * line in err. */
/* read_config at start: prints why not (naming the file and line) and
 * returns 2 on error. */
static int load_config(const char *path, ty_sched_config *cfg, ty_sched_topology *topo,
                       ty_auth_policy *policy) {
  char err[TY_ERR_LEN];
  if (ty_controller_read_config(path, cfg, topo, policy, err, sizeof err) == 0) return 0;
  fprintf(stderr, "traind: --config %s: %s\n", path, err);
  return 2;
}

/* Graph jobs' default checkpoints go to ranks on other nodes, as their
 * users: an absolute path (default: `checkpoints` next to the state dir),
 * made 0711: users may pass through it but make nothing in it, so nobody
 * can plant another job's directory there. Rank 0's root worker makes each
 * job's directory, 0700 and the job's user's (worker/graph_ckpt_dir.c). */
static int checkpoint_dir(opts *o, char *abs) {
  char def[PATH_MAX];
  if (!o->checkpoint_dir) { /* /var/lib/traind -> /var/lib/checkpoints */
    snprintf(def, sizeof def, "%s", o->state_dir);
    char *slash = strrchr(def, '/');
    if (slash) *slash = '\0';
    size_t n = strlen(def);
    snprintf(def + n, sizeof def - n, "/checkpoints");
    o->checkpoint_dir = def;
  }
  struct stat st;
  if (ty_mkdir_p(o->checkpoint_dir) != 0 || !realpath(o->checkpoint_dir, abs) ||
      stat(abs, &st) != 0) {
    fprintf(stderr, "traind: --checkpoint-dir %s: cannot create or resolve it: %s\n",
            o->checkpoint_dir, strerror(errno));
    return 1;
  }
  if ((st.st_mode & 07777) != 0711 && chmod(abs, 0711) != 0)
    fprintf(stderr,
            "traind: --checkpoint-dir %s: cannot make it 0711 (%s); users may make or "
            "read entries in it\n",
            abs, strerror(errno));
  o->checkpoint_dir = abs;
  return 0;
}

/* The local socket's path: --socket's, none, or STATE_DIR/traind.sock when
 * it fits a socket address (a deep state dir goes without, saying so). */
static const char *local_socket(const opts *o, char *def, size_t n) {
  if (o->socket) return strcmp(o->socket, "none") == 0 ? NULL : o->socket;
  int w = snprintf(def, n, "%s/traind.sock", o->state_dir);
  if (w > 0 && (size_t)w < n && (size_t)w < sizeof(((struct sockaddr_un *)0)->sun_path)) return def;
  ty_warn("no local socket: %s/traind.sock is longer than a socket path may be; give --socket "
          "PATH (clients then use TCP with MUNGE)",
          o->state_dir);
  return NULL;
}

/* SIGHUP (`systemctl reload traind`): --config and --metrics-token-file
 * read again and applied (daemon/reconfig.c says what changes at once). A
 * file that does not parse, or changes what needs a restart, is refused
 * with the reason in the log and the running settings stay, so a typo
 * never stops the controller. */
static void on_reload(uv_signal_t *s, int signum) {
  (void)signum;
  daemon_state *d = s->data;
  char err[TY_ERR_LEN];
  ty_reconfig_changes changed = {0};
  int rc = ty_controller_reload(d->ctl, &changed, err, sizeof err);
  if (rc == TY_ESTATE)
    ty_info("received SIGHUP: %s; nothing changes", err);
  else if (rc != 0)
    ty_error("received SIGHUP: %s", err);
  else
    ty_info("received SIGHUP: files read again and applied (%zu change%s)", changed.n,
            changed.n == 1 ? "" : "s");
  for (size_t i = 0; i < changed.n; i++)
    ty_info("  %s", changed.v[i]);
  ty_controller_record_reload(d->ctl, "signal:SIGHUP", rc, err, &changed);
  ty_reconfig_changes_close(&changed);
}

/* Closes the signal handlers and the watchdog keep-alive (once). */
static void close_daemon_handles(daemon_state *d) {
  ty_notify_watchdog_close(&d->watchdog);
  uv_handle_t *h[] = {(uv_handle_t *)&d->sigterm, (uv_handle_t *)&d->sigint,
                      (uv_handle_t *)&d->sighup};
  for (size_t i = 0; i < TY_ARRAY_LEN(h); i++)
    if (!uv_is_closing(h[i])) uv_close(h[i], NULL);
}

/* The signal handlers and the watchdog keep-alive do not keep the loop
 * running: once the controller stops for any reason (a signal, or a store
 * that failed its integrity check) the loop ends and traind exits. */
static void keep_loop_to_controller(daemon_state *d) {
  uv_unref((uv_handle_t *)&d->sigterm);
  uv_unref((uv_handle_t *)&d->sigint);
  uv_unref((uv_handle_t *)&d->sighup);
  if (d->watchdog.started) uv_unref((uv_handle_t *)&d->watchdog.timer);
}

static void on_signal(uv_signal_t *s, int signum) {
  daemon_state *d = s->data;
  ty_info("received %s: shutting down (tasks keep running on the workers)",
          signum == SIGTERM ? "SIGTERM" : "SIGINT");
  ty_notify_stopping("stopping: committing and answering what is queued");
  ty_controller_stop(d->ctl);
  close_daemon_handles(d);
}

/* --metrics-token-file at start: a file others may read is refused,
 * naming it, and traind does not start (a reconfigure reads it again). */
static int read_metrics_token(const char *path, char token[TY_HTTP_TOKEN_MAX]) {
  char err[TY_ERR_LEN];
  if (ty_http_read_token_file(path, token, TY_HTTP_TOKEN_MAX, err, sizeof err) == 0) return 0;
  ty_error("cannot start: --metrics-token-file: %s", err);
  return 1;
}

/* traind --backup FILE: the store of --state-dir, copied while it may be in
 * use; a line on stdout says what was written. */
static int backup(const opts *o) {
  char db[PATH_MAX], err[TY_ERR_LEN];
  if (snprintf(db, sizeof db, "%s/traind.db", o->state_dir) >= (int)sizeof db)
    return usage_error("--state-dir: path too long");
  ty_store_backup_info info;
  int rc = ty_store_backup(db, o->backup, &info, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "traind: --backup %s: %s\n", o->backup, err);
    return 1;
  }
  printf("traind: backed up %s to %s (%llu bytes, schema version %d)\n", db, o->backup,
         (unsigned long long)info.bytes, info.user_version);
  return 0;
}

int main(int argc, char **argv) {
  opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc != 0) return rc < 0 ? 0 : rc;
  if (o.backup) return backup(&o);
  ty_sched_config sched;
  ty_sched_topology topo;
  ty_auth_policy policy;
  if ((rc = load_config(o.config_file, &sched, &topo, &policy)) != 0) {
    ty_policy_close(&policy);
    return rc;
  }
  ty_log_init("traind", o.level);
  signal(SIGPIPE, SIG_IGN);
  uint64_t fds = ty_raise_fd_limit();
  uint32_t max_conns = o.limits.max_conns ? o.limits.max_conns : TY_RPC_MAX_CONNS_DEFAULT;
  if (fds < (uint64_t)max_conns + 256)
    ty_warn("the descriptor limit is %llu: fewer than --max-conns %u connections fit; raise "
            "ulimit -n (accepts beyond it are refused and counted)",
            (unsigned long long)fds, max_conns);
  /* Job environments, the token secret and port files are traind's alone. */
  umask(077);
  char state_abs[PATH_MAX], ckpt_abs[PATH_MAX];
  if (ty_mkdir_p(o.state_dir) != 0 || !realpath(o.state_dir, state_abs)) {
    fprintf(stderr, "traind: --state-dir %s: cannot create or resolve it: %s\n", o.state_dir,
            strerror(errno));
    return 1;
  }
  o.state_dir = state_abs;
  if ((rc = checkpoint_dir(&o, ckpt_abs)) != 0) return rc;
  char socket_def[PATH_MAX];
  const char *socket_path = local_socket(&o, socket_def, sizeof socket_def);
  find_graphcheck(&o);
  if (geteuid() == 0 && o.auth == TY_AUTH_NONE)
    ty_warn("running as root with --auth none: graph jobs' models are read with root's rights "
            "(daemon/check.c, run_as); run traind as a user that may read them");
  char metrics_token[TY_HTTP_TOKEN_MAX] = "";
  if (o.metrics_token_file && (rc = read_metrics_token(o.metrics_token_file, metrics_token)) != 0)
    return rc;
  uv_loop_t *loop = uv_default_loop();
  ty_controller_config cfg = {.metrics_token = metrics_token,
                              .metrics_token_file = o.metrics_token_file,
                              .listen_host = o.listen_host,
                              .listen_port = o.listen_port,
                              .metrics_host = o.metrics_host,
                              .metrics_port = o.metrics_port,
                              .web_host = o.web_host[0] ? o.web_host : NULL,
                              .web_port = o.web_port,
                              .web_token_required = o.web_token_required,
                              .state_dir = o.state_dir,
                              .socket_path = socket_path,
                              .checkpoint_dir = o.checkpoint_dir,
                              .heartbeat_ms = o.heartbeat_ms,
                              .node_timeout_ms = o.node_timeout_ms,
                              .kill_grace_s = o.kill_grace_s,
                              .rlaunch_gone_s = o.rlaunch_gone_s,
                              .store_retry_ms = o.store_retry_ms,
                              .max_frame = (size_t)o.max_frame,
                              .limits = o.limits,
                              .sched = &sched,
                              .topo = &topo,
                              .client_auth = o.auth,
                              .munge_socket = o.munge_socket,
                              .policy = &policy,
                              .graphcheck = o.graphcheck,
                              .check_cpu_s = o.check_cpu_s,
                              .check_mem_bytes = o.check_mem,
                              .check_timeout_s = o.check_timeout_s,
                              .check_jobs = o.check_jobs,
                              .plan_rates = check_rates(&o.rates, o.rank_reserve),
                              .job_cache = o.job_cache,
                              .min_job_age_s = o.min_job_age_s,
                              .purge_after_s = o.purge_after_s,
                              .kill_on_invalid_dep = o.kill_on_invalid_dep,
                              .max_user_jobs = o.max_user_jobs,
                              .config_file = o.config_file};
  daemon_state d = {0};
  char err[TY_ERR_LEN] = "";
  rc = ty_controller_create(loop, &cfg, &d.ctl, err, sizeof(err));
  ty_sched_topology_close(&topo); /* the controller keeps its own copies */
  ty_policy_close(&policy);
  if (rc != 0) {
    ty_error("cannot start: %s", err[0] ? err : ty_strerror(rc));
    return 1;
  }
  int rpc_port = ty_controller_rpc_port(d.ctl), metrics_port = ty_controller_metrics_port(d.ctl);
  ty_info("traind %s listening on %s:%d (rpc) and %s:%d (metrics); state in %s/traind.db",
          ty_version, o.listen_host, rpc_port, o.metrics_host, metrics_port, o.state_dir);
  int web_port = ty_controller_web_port(d.ctl);
  if (web_port >= 0)
    ty_info("web console on http://%s:%d/ (%s need a token: `trainctl web-token` prints one "
            "for its user; operators' is in %s/web.token; see docs/web-console.md)",
            o.web_host, web_port,
            o.auth == TY_AUTH_NONE && !o.web_token_required ? "clients not on loopback" : "clients",
            o.state_dir);
  if (o.port_file && (rc = write_port_file(o.port_file, rpc_port, metrics_port, web_port)) != 0) {
    ty_error("cannot write the port file %s: %s", o.port_file, ty_strerror(rc));
    ty_controller_stop(d.ctl);
    uv_run(loop, UV_RUN_DEFAULT);
    ty_controller_destroy(d.ctl);
    return 1;
  }
  uv_signal_init(loop, &d.sigterm);
  uv_signal_init(loop, &d.sigint);
  d.sigterm.data = d.sigint.data = &d;
  uv_signal_start(&d.sigterm, on_signal, SIGTERM);
  uv_signal_start(&d.sigint, on_signal, SIGINT);
  uv_signal_init(loop, &d.sighup);
  d.sighup.data = &d;
  uv_signal_start(&d.sighup, on_reload, SIGHUP);
  if ((rc = ty_notify_watchdog_init(loop, &d.watchdog)) != 0)
    ty_warn("cannot start the watchdog keep-alive: %s", ty_strerror(rc));
  keep_loop_to_controller(&d);
  /* Listening, the store open and the port file written: ready. */
  char status[128];
  snprintf(status, sizeof status, "rpc on port %d, metrics on port %d", rpc_port, metrics_port);
  ty_notify_ready(status);
  uv_run(loop, UV_RUN_DEFAULT);
  close_daemon_handles(&d);
  uv_run(loop, UV_RUN_DEFAULT);
  bool failed = ty_controller_failure(d.ctl) != NULL; /* logged when it stopped */
  ty_controller_destroy(d.ctl);
  uv_loop_close(loop);
  ty_info("stopped");
  return failed ? 1 : 0;
}
