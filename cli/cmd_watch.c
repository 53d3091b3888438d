/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `trainctl watch ID`, `trainctl checkpoint ls ID` and the progress block of
 * `trainctl show` (see cli_internal.h). Watching polls GetJob once a second:
 * progress changes at the worker's heartbeat, so faster polling shows
 * nothing new; a controller restarting meanwhile is reconnected to.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_internal.h"
#include "lib/json/json.h"
#include "proto/methods.h"

void ty__cli_render_progress(const ty__cli_graph *g, int cols, ty_buf *out) {
  ty_cli_job_progress j = {.state = g->state,
                           .start_ms = g->start_ms,
                           .term_signal = g->term_signal,
                           .progress = g->has_progress ? &g->progress : NULL};
  ty_cli_render_job_progress(&j, cols, out);
}

/* A checkpoint's path as printed: "(withheld)" for another user's job
 * (the controller sends it empty). */
static const char *ckpt_path(const ty__cli_graph *g, const ty_checkpoint_info *c) {
  return g->redacted ? "(withheld)" : c->path;
}

void ty__cli_render_show(const ty__cli_graph *g, ty_buf *out) {
  if (g->graph && g->plan_len)
    ty__cli_render_plan(g->plan, g->plan_len, out);
  else if (g->graph && g->plan_withheld)
    ty_buf_printf(out, "Plan: (withheld: only its owner and operators see it)\n");
  else if (g->graph)
    ty_buf_printf(out,
                  "Plan: none: data parallel (each rank trains the whole model on its share of "
                  "each batch)\n");
  if (!g->graph || !g->has_progress) return;
  ty_buf_printf(out, "Progress:\n  ");
  ty__cli_render_progress(g, 0, out);
  ty_buf_printf(out, "\n");
  if (g->n_ckpts)
    ty_buf_printf(out, "Last checkpoint: step %" PRIu64 " %s\n", g->ckpts[g->n_ckpts - 1].step,
                  ckpt_path(g, &g->ckpts[g->n_ckpts - 1]));
}

/* watch and checkpoint ls are about training: a command job has neither
 * steps nor checkpoints, which is the caller's mistake (exit 2). */
static int not_graph(uint64_t id, const char *cmd, ty__cli_graph *g) {
  fprintf(stderr,
          "trainctl: %s: job %" PRIu64 " is a command job, not a graph job: it reports "
          "no training steps or checkpoints (its output: trainctl logs %" PRIu64 ")\n",
          cmd, id, id);
  ty__cli_graph_close(g);
  return TY_CLI_EXIT_USAGE;
}

/* GetJob once; `again` (a watch's later polls) reconnects to a restarted
 * controller for as long as it takes, or --timeout when given. */
static int fetch(ty__ctl *c, uint64_t id, bool again, ty__cli_graph *g) {
  uint32_t window_ms = c->g.timeout_given ? c->g.timeout_ms : 0;
  ty_buf req;
  ty_buf_init(&req);
  ty_rpc_result res = {0};
  int code = ty_cli_encode_job_id(id, &req) == 0 ? 0 : TY_CLI_EXIT_ERROR;
  if (code == 0)
    code = again ? ty__ctl_call_reconnecting(c, TY_CLI_OP_JOB, TY_M_GET_JOB, &req, window_ms, &res)
                 : ty__ctl_call(c, TY_CLI_OP_JOB, TY_M_GET_JOB, &req, &res);
  if (code == 0) {
    if (ty__cli_decode_graph(res.payload, res.payload_len, g) != 0)
      code = ty__ctl_bad_answer(TY_M_GET_JOB);
    ty_rpc_result_close(&res);
  }
  ty_buf_close(&req);
  return code;
}

typedef struct id_arg {
  const char *cmd;
  uint64_t *id;
  bool help, have_id;
} id_arg;

static int on_id_arg(ty_opts *it, int opt, const char *v, void *ud, char *err, size_t err_len) {
  id_arg *a = ud;
  (void)it;
  if (opt == 'h')
    a->help = true;
  else if (a->have_id)
    return ty_errf(err, err_len, TY_EINVAL, "%s: expected one job id", a->cmd);
  else
    a->have_id = true;
  return opt == 'h' ? 0 : ty_cli_parse_job_id(v, a->id, err, err_len);
}

/* CMD ID [--help]: 0 with *id set, -1 after printing the usage for --help,
 * or the usage error's exit code. */
static int parse_id_arg(const char *cmd, int argc, char **argv, uint64_t *id, const char *usage) {
  char err[TY_ERR_LEN] = "";
  id_arg a = {.cmd = cmd, .id = id};
  int rc = ty__cli_parse(argc, argv, "h", ty__cli_help_only, on_id_arg, &a, err, sizeof err);
  if (rc == 0 && !a.have_id && !a.help)
    rc = ty_errf(err, sizeof err, TY_EINVAL, "%s: expected one job id", cmd);
  if (rc != 0) return ty__ctl_usage(cmd, err);
  if (a.help) fputs(usage, stdout);
  return a.help ? -1 : 0;
}

const char ty__usage_watch[] =
    "Usage: trainctl watch ID\n"
    "  Follows a graph job's training: a progress bar (step of total, loss,\n"
    "  samples/s, ETA, test accuracy) on a terminal, one line per change\n"
    "  otherwise. Ends with the job: exit 0 if it COMPLETED, 1 if not;\n"
    "  2 for a command job (it reports no training steps). A controller\n"
    "  restart is waited out (up to --timeout when given) and watching goes on.\n";

static void show_line(const ty__cli_graph *g, bool tty, ty_buf *last) {
  ty_buf line;
  ty_buf_init(&line);
  /* The width is read on every redraw, so a resized terminal is followed. */
  int cols = 80;
  struct winsize ws;
  if (tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) cols = ws.ws_col;
  ty__cli_render_progress(g, tty ? cols : 0, &line);
  bool same =
      last->len == line.len && (line.len == 0 || memcmp(last->data, line.data, line.len) == 0);
  if (tty)
    printf("\r\033[K%.*s", (int)line.len, line.data);
  else if (!same)
    printf("%.*s\n", (int)line.len, line.data);
  fflush(stdout);
  last->len = 0;
  ty_buf_append(last, line.data, line.len);
  ty_buf_close(&line);
}

int ty__cmd_watch(ty__ctl *c, int argc, char **argv) {
  uint64_t id = 0;
  int code = parse_id_arg("watch", argc, argv, &id, ty__usage_watch);
  if (code != 0) return code < 0 ? 0 : code;
  bool tty = isatty(STDOUT_FILENO);
  ty_buf last;
  ty_buf_init(&last);
  for (bool again = false;; again = true) {
    ty__cli_graph g;
    if ((code = fetch(c, id, again, &g)) != 0) break;
    if (!g.graph) {
      code = not_graph(id, "watch", &g);
      break;
    }
    if (g.state == TY_JOB_PENDING && !g.has_progress) {
      if (!tty && last.len == 0) printf("job %" PRIu64 " is PENDING: %s\n", id, g.reason);
      fflush(stdout); /* as show_line: a pipe's reader sees it now */
      ty_buf_append(&last, "p", last.len ? 0 : 1);
    } else {
      show_line(&g, tty, &last);
    }
    if (ty_job_state_terminal(g.state)) {
      printf("%sjob %" PRIu64 " %s%s%s\n", tty ? "\n" : "", id, ty_job_state_name(g.state),
             g.reason[0] ? ": " : "", g.reason);
      code = g.state == TY_JOB_COMPLETED ? 0 : TY_CLI_EXIT_ERROR;
      ty__cli_graph_close(&g);
      break;
    }
    ty__cli_graph_close(&g);
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
  }
  ty_buf_close(&last);
  return code;
}

const char ty__usage_checkpoint[] =
    "Usage: trainctl checkpoint ls ID [--json]\n"
    "  The checkpoints a graph job's rank 0 reported writing (step, time, path),\n"
    "  oldest first; \"no checkpoint yet\" when there is none (exit 0). One removed\n"
    "  since (keep_checkpoints, or a later run with the same checkpoint_path pruned\n"
    "  it) is marked \"(removed)\" when its folder is visible here and the file is\n"
    "  not (--json: \"exists\" true, false, or null when this host cannot tell).\n"
    "  Exit 2 for a command job. Another user's paths are withheld: \"(withheld)\",\n"
    "  and \"\" with --json.\n";

typedef enum { CKPT_UNKNOWN, CKPT_THERE, CKPT_REMOVED } ckpt_seen;

/* Whether path is there as this host sees it: removed only when its
 * folder is visible and the file is not (a node-local or unmounted path
 * tells nothing). */
static ckpt_seen ckpt_exists(const char *path) {
  struct stat st;
  if (!path || !path[0]) return CKPT_UNKNOWN;
  if (stat(path, &st) == 0) return CKPT_THERE;
  if (errno != ENOENT) return CKPT_UNKNOWN;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash) return CKPT_UNKNOWN;
  *(slash == dir ? slash + 1 : slash) = '\0';
  return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? CKPT_REMOVED : CKPT_UNKNOWN;
}

static void render_checkpoints(const ty__cli_graph *g, uint64_t id, bool json, ty_buf *out) {
  if (json) {
    ty_json w;
    ty_json_init(&w, out);
    w.lines = true;
    ty_json_begin_array(&w);
    for (size_t i = 0; i < g->n_ckpts; i++) {
      ty_json_begin_object(&w);
      ty_json_key(&w, "step"), ty_json_uint(&w, g->ckpts[i].step);
      ty_json_key(&w, "time_ms"), ty_json_int(&w, g->ckpts[i].time_ms);
      ty_json_key(&w, "path"), ty_json_string(&w, g->ckpts[i].path);
      ckpt_seen seen = g->redacted ? CKPT_UNKNOWN : ckpt_exists(g->ckpts[i].path);
      ty_json_key(&w, "exists");
      if (seen == CKPT_UNKNOWN)
        ty_json_null(&w);
      else
        ty_json_bool(&w, seen == CKPT_THERE);
      ty_json_end_object(&w);
    }
    ty_json_end_array(&w);
    ty_json_finish(&w);
    return;
  }
  if (g->n_ckpts == 0) {
    ty_buf_printf(out, "Job %" PRIu64 " has no checkpoint yet.\n", id);
    return;
  }
  ty_buf_printf(out, "%-10s %-20s %s\n", "STEP", "TIME", "PATH");
  for (size_t i = 0; i < g->n_ckpts; i++) {
    time_t t = (time_t)(g->ckpts[i].time_ms / 1000);
    struct tm tm;
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    bool removed = !g->redacted && ckpt_exists(g->ckpts[i].path) == CKPT_REMOVED;
    ty_buf_printf(out, "%-10" PRIu64 " %-20s %s%s\n", g->ckpts[i].step, when,
                  ckpt_path(g, &g->ckpts[i]), removed ? " (removed)" : "");
  }
}

int ty__cmd_checkpoint(ty__ctl *c, int argc, char **argv) {
  const char *sub = NULL;
  char err[TY_ERR_LEN] = "";
  int group = ty__ctl_group("checkpoint", ty__usage_checkpoint, argc, argv, &sub);
  if (group >= 0) return group;
  if (strcmp(sub, "ls") != 0) {
    ty_errf(err, sizeof err, TY_EINVAL, "checkpoint: expected \"ls ID\"");
    return ty__ctl_usage("checkpoint", err);
  }
  ty_cli_show_args a; /* the same shape: ID [--json] */
  if (ty_cli_parse_one_job("checkpoint ls", argc - 1, argv + 1, &a, err, sizeof err) != 0)
    return ty__ctl_usage("checkpoint", err);
  if (a.help) return fputs(ty__usage_checkpoint, stdout), 0;
  ty__cli_graph g;
  uint64_t id;
  int code = ty__ctl_job_id(c, &(ty_job_ref){a.id, a.has_task, a.task}, &id);
  if (code == 0) code = fetch(c, id, false, &g);
  if (code != 0) return code;
  if (!g.graph) return not_graph(id, "checkpoint ls", &g);
  ty_buf out;
  ty_buf_init(&out);
  render_checkpoints(&g, id, a.json || c->g.json, &out);
  code = ty__ctl_write(&out);
  ty_buf_close(&out);
  ty__cli_graph_close(&g);
  return code;
}

void ty__cmd_show_graph(const uint8_t *payload, size_t len) {
  ty__cli_graph g;
  if (ty__cli_decode_graph(payload, len, &g) != 0) return;
  ty_buf out;
  ty_buf_init(&out);
  ty__cli_render_show(&g, &out);
  if (out.len) fwrite(out.data, 1, out.len, stdout);
  fflush(stdout);
  ty_buf_close(&out);
  ty__cli_graph_close(&g);
}
