/* SPDX-License-Identifier: Apache-2.0 */
/*
 * traind: the Trainyard controller. Parses flags (docs/cluster-protocol.md),
 * creates the controller on the default loop, writes the port file once
 * listening, and shuts down in order on SIGTERM/SIGINT: stop listening,
 * commit and answer what is queued, close. Tasks keep running on workers.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "proto/methods.h"
#include "scheduler/scheduler.h"

typedef struct opts {
  char listen_host[256], metrics_host[256];
  int listen_port, metrics_port;
  const char *state_dir, *port_file, *config_file;
  uint32_t heartbeat_ms, node_timeout_ms, kill_grace_s;
  uint64_t max_frame;
  ty_log_level level;
} opts;

typedef struct daemon_state {
  uv_signal_t sigterm, sigint;
  ty_controller *ctl;
} daemon_state;

static void usage(FILE *f) {
  fprintf(f,
          "usage: traind [options]\n"
          "  --listen HOST:PORT          clients and workers (default 127.0.0.1:%d; port 0 = ephemeral)\n"
          "  --metrics-listen HOST:PORT  Prometheus /metrics (default 127.0.0.1:%d)\n"
          "  --state-dir DIR             SQLite state in DIR/traind.db (default ./var/traind)\n"
          "  --heartbeat-ms N            heartbeat interval told to workers (default 2000)\n"
          "  --node-timeout-ms N         silence before a node is DOWN (default 15000)\n"
          "  --kill-grace-s N            SIGTERM to SIGKILL delay (default 10)\n"
          "  --max-frame BYTES           largest RPC frame (default 64M)\n"
          "  --config FILE               scheduler settings: key = value lines (README)\n"
          "  --port-file FILE            write rpc=PORT and metrics=PORT once listening\n"
          "  --log-level LEVEL           debug|info|warn|error (default info)\n"
          "  --help                      this text\n",
          TY_CONTROLLER_PORT, TY_CONTROLLER_METRICS_PORT);
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
  case 'l': return ty_parse_hostport(arg, o->listen_host, sizeof(o->listen_host), &o->listen_port)
                   ? bad_flag("--listen", arg, "HOST:PORT") : 0;
  case 'm': return ty_parse_hostport(arg, o->metrics_host, sizeof(o->metrics_host), &o->metrics_port)
                   ? bad_flag("--metrics-listen", arg, "HOST:PORT") : 0;
  case 's': o->state_dir = arg; return 0;
  case 'b': return parse_u32(arg, 1, &o->heartbeat_ms) ? bad_flag("--heartbeat-ms", arg, "a positive number") : 0;
  case 't': return parse_u32(arg, 1, &o->node_timeout_ms) ? bad_flag("--node-timeout-ms", arg, "a positive number") : 0;
  case 'k': return parse_u32(arg, 0, &o->kill_grace_s) ? bad_flag("--kill-grace-s", arg, "a number of seconds") : 0;
  case 'f': return ty_parse_size(arg, &o->max_frame) || o->max_frame < 1024 || o->max_frame > UINT32_MAX
                   ? bad_flag("--max-frame", arg, "a size between 1K and 4G") : 0;
  case 'p': o->port_file = arg; return 0;
  case 'c': o->config_file = arg; return 0;
  case 'v': return ty_log_parse_level(arg, &o->level) ? bad_flag("--log-level", arg, "debug|info|warn|error") : 0;
  case 'h': usage(stdout); return -1;
  default: return usage_error("unhandled option");
  }
}

static const struct option longopts[] = {
    {"listen", required_argument, NULL, 'l'},     {"metrics-listen", required_argument, NULL, 'm'},
    {"state-dir", required_argument, NULL, 's'},  {"heartbeat-ms", required_argument, NULL, 'b'},
    {"node-timeout-ms", required_argument, NULL, 't'},
    {"kill-grace-s", required_argument, NULL, 'k'}, {"max-frame", required_argument, NULL, 'f'},
    {"port-file", required_argument, NULL, 'p'},  {"log-level", required_argument, NULL, 'v'},
    {"config", required_argument, NULL, 'c'},     {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static int parse_args(int argc, char **argv, opts *o) {
  *o = (opts){.listen_host = "127.0.0.1", .metrics_host = "127.0.0.1",
              .listen_port = TY_CONTROLLER_PORT, .metrics_port = TY_CONTROLLER_METRICS_PORT,
              .state_dir = "./var/traind", .heartbeat_ms = 2000, .node_timeout_ms = 15000,
              .kill_grace_s = 10, .max_frame = 64u << 20, .level = TY_LOG_INFO};
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
    if (c < 0) rc = usage_error(err);
    else rc = parse_flag(o, c, arg);
  }
  ty_opts_close(&it);
  return rc;
}

/* Writes FILE.tmp and renames it, so readers never see half a file. */
static int write_port_file(const char *path, int rpc, int metrics) {
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) return TY_EINVAL;
  FILE *f = fopen(tmp, "w");
  if (!f) return -errno;
  fprintf(f, "rpc=%d\nmetrics=%d\n", rpc, metrics);
  if (fclose(f) != 0) return -errno;
  if (rename(tmp, path) != 0) return -errno;
  return 0;
}

/* Reads and parses --config FILE into the scheduler's settings; prints why
 * not (naming the file and line) and returns 2 on error. */
static int load_config(const char *path, ty_sched_config *cfg, ty_sched_topology *topo) {
  ty_sched_config_default(cfg);
  memset(topo, 0, sizeof(*topo));
  if (!path) return 0;
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "traind: --config %s: %s\n", path, strerror(errno));
    return 2;
  }
  ty_buf b;
  ty_buf_init(&b);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) ty_buf_append(&b, chunk, n);
  fclose(f);
  ty_buf_append(&b, "", 1);
  char err[TY_ERR_LEN];
  int rc = ty_sched_config_parse((const char *)b.data, cfg, topo, err, sizeof(err));
  ty_buf_close(&b);
  if (rc != 0) {
    fprintf(stderr, "traind: --config %s: %s\n", path, err);
    return 2;
  }
  return 0;
}

static void on_signal(uv_signal_t *s, int signum) {
  daemon_state *d = s->data;
  ty_info("received %s: shutting down (tasks keep running on the workers)",
          signum == SIGTERM ? "SIGTERM" : "SIGINT");
  ty_controller_stop(d->ctl);
  uv_close((uv_handle_t *)&d->sigterm, NULL);
  uv_close((uv_handle_t *)&d->sigint, NULL);
}

int main(int argc, char **argv) {
  opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc != 0) return rc < 0 ? 0 : rc;
  ty_sched_config sched;
  ty_sched_topology topo;
  if ((rc = load_config(o.config_file, &sched, &topo)) != 0) return rc;
  ty_log_init("traind", o.level);
  signal(SIGPIPE, SIG_IGN);
  /* Checkpoint paths of graph jobs default to the state dir and are handed to
   * ranks that run elsewhere, so the state dir must be absolute. */
  char state_abs[PATH_MAX];
  if (ty_mkdir_p(o.state_dir) != 0 || !realpath(o.state_dir, state_abs)) {
    fprintf(stderr, "traind: --state-dir %s: cannot create or resolve it\n", o.state_dir);
    return 1;
  }
  o.state_dir = state_abs;
  uv_loop_t *loop = uv_default_loop();
  ty_controller_config cfg = {.listen_host = o.listen_host, .listen_port = o.listen_port,
                              .metrics_host = o.metrics_host, .metrics_port = o.metrics_port,
                              .state_dir = o.state_dir, .heartbeat_ms = o.heartbeat_ms,
                              .node_timeout_ms = o.node_timeout_ms,
                              .kill_grace_s = o.kill_grace_s, .max_frame = (size_t)o.max_frame,
                              .sched = &sched, .topo = &topo};
  daemon_state d = {0};
  char err[TY_ERR_LEN] = "";
  rc = ty_controller_create(loop, &cfg, &d.ctl, err, sizeof(err));
  ty_sched_topology_close(&topo); /* the controller keeps its own copy */
  if (rc != 0) {
    ty_error("cannot start: %s", err[0] ? err : ty_strerror(rc));
    return 1;
  }
  int rpc_port = ty_controller_rpc_port(d.ctl), metrics_port = ty_controller_metrics_port(d.ctl);
  ty_info("traind %s listening on %s:%d (rpc) and %s:%d (metrics); state in %s/traind.db",
          TY_VERSION, o.listen_host, rpc_port, o.metrics_host, metrics_port, o.state_dir);
  if (o.port_file && (rc = write_port_file(o.port_file, rpc_port, metrics_port)) != 0) {
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
  uv_run(loop, UV_RUN_DEFAULT);
  ty_controller_destroy(d.ctl);
  uv_loop_close(loop);
  ty_info("stopped");
  return 0;
}
