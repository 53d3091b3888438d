/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainworkerd: one per node. Takes the flags worker/flags.c parses,
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
#include <errno.h>
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
#include "worker/flags.h"
#include "worker/worker_internal.h"

/* How long a stopping worker waits for the controller to acknowledge the
 * reports of the tasks it killed. */
#define REPORT_WAIT_MS 3000
#define STOP_CHECK_MS 100
#define LOGS_CHECK_MS 1000 /* logs over the cap are cut within a second */

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
  ty_worker_find_helper(&w->o);
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
  ty_worker_find_trainrun(&w->o);
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
  int rc = ty_worker_flags_parse(argc, argv, &w->o);
  if (rc < 0) {
    ty_log_init("trainworkerd", w->o.log_level);
    signal(SIGPIPE, SIG_IGN);
    ty_raise_fd_limit(); /* tasks, their logs and I/O clients all take descriptors */
    rc = run(w);
  }
  ty_worker_flags_free(&w->o);
  free(w);
  return rc;
}
