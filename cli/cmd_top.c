/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `trainctl top`: the cluster like top(1). Every --delay seconds it asks the
 * controller for the nodes (ListNodes), the pending and running jobs
 * (ListJobs) and, for the running graph jobs that fit on the screen, their
 * progress (GetJob), and redraws the screen in place (cursor home, each line
 * cleared to its end, the rest of the screen cleared): nothing scrolls.
 * Off a terminal, or with -n, it prints that many screens one after another,
 * without escapes. After the first screen a restarting controller is
 * reconnected to for up to --timeout. Rendering is format_top.c's (pure).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_internal.h"
#include "proto/methods.h"

const char ty__usage_top[] =
    "Usage: trainctl top [-d SECONDS] [-n COUNT]\n"
    "\n"
    "The cluster, refreshed in place: nodes by state with CPUs and GPUs used,\n"
    "running jobs (a graph job's step, loss and throughput; a command job's share\n"
    "of its time limit), pending jobs counted by why they wait (Resources,\n"
    "Priority, Held, QueuePaused, QueueLimit, Preempting, NoNodes). q or Ctrl-C\n"
    "quits.\n"
    "  -d, --delay SECONDS   between refreshes (default 2; 1 to 3600)\n"
    "  -n, --iterations N    stop after N screens (off a terminal: default 1)\n"
    "A controller restart between refreshes is waited out for up to --timeout.\n";

enum { T_DELAY = 'd', T_ITER = 'n', T_HELP = 'h' };
static const struct option top_opts[] = {{"delay", required_argument, NULL, T_DELAY},
                                         {"iterations", required_argument, NULL, T_ITER},
                                         {"help", no_argument, NULL, T_HELP},
                                         {NULL, 0, NULL, 0}};

typedef struct top_args {
  uint32_t delay_s, iterations; /* 0 iterations = until stopped */
  bool help;
} top_args;

static int top_arg(ty_opts *it, int id, const char *v, void *ud, char *err, size_t err_len) {
  top_args *a = ud;
  (void)it;
  if (id == T_HELP) return a->help = true, 0;
  if (id == T_DELAY) return ty__cli_parse_u32("--delay", v, 1, 3600, &a->delay_s, err, err_len);
  if (id == T_ITER)
    return ty__cli_parse_u32("--iterations", v, 1, UINT32_MAX, &a->iterations, err, err_len);
  return ty_errf(err, err_len, TY_EINVAL, "top: unexpected argument \"%s\"", v);
}

/* One screen's worth of answers. */
typedef struct top_data {
  ty_cli_node *nodes;
  size_t n_nodes;
  ty_cli_jobinfo *jobs;
  size_t n_jobs;
  ty__cli_graph *graphs;              /* per job; .graph false when not fetched */
  const ty_train_progress **progress; /* per job, into graphs */
} top_data;

static void data_close(top_data *d) {
  for (size_t i = 0; d->graphs && i < d->n_jobs; i++)
    ty__cli_graph_close(&d->graphs[i]);
  free(d->graphs);
  free(d->progress);
  ty_cli_nodes_free(d->nodes, d->n_nodes);
  ty_cli_jobinfos_free(d->jobs, d->n_jobs);
  memset(d, 0, sizeof(*d));
}

/* One request; `again` (every refresh after the first) reconnects to a
 * restarted controller for up to --timeout. */
static int call(ty__ctl *c, bool again, const char *method, const ty_buf *req, ty_rpc_result *res) {
  if (again)
    return ty__ctl_call_reconnecting(c, TY_CLI_OP_OTHER, method, req, c->g.timeout_ms, res);
  return ty__ctl_call(c, TY_CLI_OP_OTHER, method, req, res);
}

/* Progress of the first `max` running graph jobs (the ones on screen). */
static void fetch_progress(ty__ctl *c, bool again, top_data *d, size_t max) {
  d->graphs = ty_xcalloc(d->n_jobs ? d->n_jobs : 1, sizeof(*d->graphs));
  d->progress = ty_xcalloc(d->n_jobs ? d->n_jobs : 1, sizeof(*d->progress));
  for (size_t i = 0, shown = 0; i < d->n_jobs && shown < max; i++) {
    const ty_cli_jobinfo *j = &d->jobs[i];
    if (j->state != TY_JOB_RUNNING) continue;
    shown++;
    if (j->spec.kind != TY_JOB_KIND_GRAPH) continue;
    ty_buf req;
    ty_buf_init(&req);
    ty_rpc_result res = {0};
    ty_job_ref ref = {.id = j->id};
    if (ty__cli_encode_get_job(&ref, false, &req) == 0 &&
        call(c, again, TY_M_GET_JOB, &req, &res) == 0 &&
        ty__cli_decode_graph(res.payload, res.payload_len, &d->graphs[i]) == 0 &&
        d->graphs[i].has_progress)
      d->progress[i] = &d->graphs[i].progress;
    ty_rpc_result_close(&res);
    ty_buf_close(&req);
  }
}

static int fetch(ty__ctl *c, bool again, size_t max_jobs, top_data *d) {
  memset(d, 0, sizeof(*d));
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  int code = call(c, again, TY_M_LIST_NODES, &req, &res);
  if (code == 0 && ty_cli_decode_nodes(res.payload, res.payload_len, &d->nodes, &d->n_nodes) != 0)
    code = ty__ctl_bad_answer(TY_M_LIST_NODES);
  ty_rpc_result_close(&res);
  ty_cli_ls_args ls = {.states = {TY_JOB_PENDING, TY_JOB_RUNNING}, .nstates = 2};
  if (code == 0 && ty_cli_encode_list_jobs(&ls, &req) != 0) code = TY_CLI_EXIT_ERROR;
  if (code == 0) code = call(c, again, TY_M_LIST_JOBS, &req, &res);
  if (code == 0 &&
      ty_cli_decode_list_jobs(res.payload, res.payload_len, &d->jobs, &d->n_jobs, NULL) != 0)
    code = ty__ctl_bad_answer(TY_M_LIST_JOBS);
  ty_rpc_result_close(&res);
  ty_buf_close(&req);
  if (code == 0) fetch_progress(c, again, d, max_jobs);
  return code;
}

static void screen_size(bool tty, int *cols, int *rows) {
  struct winsize ws;
  *cols = 0, *rows = 0;
  if (tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) *cols = ws.ws_col, *rows = ws.ws_row;
  if (tty && *cols <= 0) *cols = 80;
  if (tty && *rows <= 0) *rows = 24;
}

/* Draws one screen; on a terminal over the previous one. */
static int draw(ty__ctl *c, bool again, bool tty) {
  int cols, rows;
  screen_size(tty, &cols, &rows);
  top_data d;
  int code = fetch(c, again, rows > 0 ? (size_t)rows : SIZE_MAX, &d);
  if (code != 0) return code;
  ty_cli_top t = {.now_ms = ty_now_ms(),
                  .nodes = d.nodes,
                  .n_nodes = d.n_nodes,
                  .jobs = d.jobs,
                  .n_jobs = d.n_jobs,
                  .progress = d.progress};
  ty_buf text, out;
  ty_buf_init(&text), ty_buf_init(&out);
  ty_cli_render_top(&t, cols, rows, &text);
  if (!tty) {
    ty_buf_append(&out, text.data, text.len);
  } else {
    /* Home, then each line cleared to its end, then the rest of the screen. */
    ty_buf_printf(&out, "\033[H");
    for (size_t i = 0, start = 0; i < text.len; i++)
      if (text.data[i] == '\n') {
        ty_buf_append(&out, text.data + start, i - start);
        ty_buf_printf(&out, "\033[K%s", i + 1 < text.len ? "\n" : "");
        start = i + 1;
      }
    ty_buf_printf(&out, "\033[J");
  }
  fwrite(out.data, 1, out.len, stdout);
  if (!tty) putchar('\n');
  fflush(stdout);
  ty_buf_close(&text), ty_buf_close(&out);
  data_close(&d);
  return 0;
}

/* Set by SIGINT and SIGTERM while top runs on a terminal, so it can put the
 * terminal back before it ends (the one global a signal handler needs). */
static volatile sig_atomic_t stop_requested;
static void on_stop_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

/* Waits up to `seconds` for a key on a terminal: true when it was q, or a
 * signal asked to stop. */
static bool wait_quit(bool keys, uint32_t seconds) {
  if (!keys) {
    struct timespec ts = {(time_t)seconds, 0};
    nanosleep(&ts, NULL);
    return stop_requested;
  }
  fd_set in;
  FD_ZERO(&in);
  FD_SET(STDIN_FILENO, &in);
  struct timeval tv = {(time_t)seconds, 0};
  char ch = 0;
  if (select(STDIN_FILENO + 1, &in, NULL, NULL, &tv) > 0 && read(STDIN_FILENO, &ch, 1) == 1)
    return ch == 'q' || ch == 'Q';
  return stop_requested;
}

int ty__cmd_top(ty__ctl *c, int argc, char **argv) {
  top_args a = {.delay_s = 2};
  char err[TY_ERR_LEN] = "";
  if (ty__cli_parse(argc, argv, "d:n:h", top_opts, top_arg, &a, err, sizeof err) != 0)
    return ty__ctl_usage("top", err);
  if (a.help) return fputs(ty__usage_top, stdout), 0;
  bool tty = isatty(STDOUT_FILENO);
  if (!tty && a.iterations == 0) a.iterations = 1;
  /* Keys without Enter: the terminal leaves canonical mode while top runs. */
  struct termios saved, raw;
  bool keys = tty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
  if (keys) {
    raw = saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    keys = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
  }
  if (tty) printf("\033[2J");
  int code = 0;
  for (uint32_t i = 0; a.iterations == 0 || i < a.iterations; i++) {
    if ((code = draw(c, i > 0, tty)) != 0) break;
    if (a.iterations && i + 1 == a.iterations) break;
    if (wait_quit(keys, a.delay_s)) break;
  }
  if (keys) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  if (tty) printf("\n");
  return code;
}
