/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl queue ls|show|create|update|delete|pause|resume and trainctl share:
 * queue administration and fair-share standing. Each is one request to the
 * controller; values are checked there, and its message names the bad one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/cli_admin.h"
#include "proto/methods.h"

const char ty__usage_queue[] =
    "Usage: trainctl queue ls [--json]\n"
    "       trainctl queue show NAME [--json]\n"
    "       trainctl queue create NAME [OPTIONS]\n"
    "       trainctl queue update NAME OPTIONS\n"
    "       trainctl queue delete NAME\n"
    "       trainctl queue pause NAME     (accepts jobs, starts none)\n"
    "       trainctl queue resume NAME    (back to open)\n"
    "\n"
    "Options:\n"
    "  --tier N                 higher tiers start first and may preempt lower ones\n"
    "  --share W                fair-share weight (default 1)\n"
    "  --max-running N          running jobs at most (0 = no limit)\n"
    "  --max-gpus N             GPUs of its running jobs at most\n"
    "  --max-gpus-per-user N    GPUs per user at most\n"
    "  --preemptible, --no-preemptible\n"
    "                           whether higher tiers may preempt its jobs\n"
    "  --default-time T         time limit of jobs asking none (else --max-time)\n"
    "  --max-time T             largest time limit a job may ask (UNLIMITED or 0:\n"
    "                           none); T as submit's --time and Slurm's DefaultTime\n"
    "                           and MaxTime: 120 (minutes), 30:00, 1:30:00, 2-12\n"
    "                           (days-hours), 1-00:30:00, or 90s, 15m, 2h, 1d\n"
    "  --default-mem SIZE       memory per node of jobs asking none (4000 = MB, 512M, 16G)\n"
    "  --max-mem SIZE           largest memory per node a job may ask (0 = no limit)\n"
    "  --state open|closed|paused  closed refuses new jobs; paused starts none\n"
    "  --allow-groups LIST      only members of these groups (primary or\n"
    "                           supplementary, on traind's host) may submit to or\n"
    "                           move jobs into the queue, as Slurm's AllowGroups\n"
    "  --allow-users LIST       only these users may (besides --allow-groups');\n"
    "                           LIST: comma-separated names that exist on traind's\n"
    "                           host, at most 32; ALL (or \"\") = everyone, the\n"
    "                           default. Operators may always submit anywhere\n"
    "Columns of ls: NAME STATE TIER SHARE PREEMPT PENDING RUNNING GPUS (in use)\n"
    "MAX_RUN MAX_GPUS MAX_GPUS/USER DEF_TIME MAX_TIME DEF_MEM MAX_MEM (- = no limit)\n"
    "ALLOW (ALL, or groups=LIST users=LIST). show prints one queue's ls row.\n";

const char ty__usage_share[] =
    "Usage: trainctl share [--json]\n"
    "\n"
    "Fair share: each queue's share (its weight over all weights) and each user's\n"
    "(the queue's share split among its users), their decayed usage (GPU-seconds\n"
    "plus weighted CPU-seconds), usage as a part of all usage, and the fair-share\n"
    "factor 2^(-usage/share) the scheduler uses: 1 unused, 0.5 at the fair share.\n";

/* Keeps only the queue named `name` in qs; false when there is none. */
static bool keep_one(ty_queue_info *qs, size_t *n, const char *name) {
  for (size_t i = 0; i < *n; i++) {
    if (strcmp(qs[i].name, name) != 0) continue;
    ty_queue_info one = qs[i];
    qs[i] = qs[0], qs[0] = one;
    for (size_t k = 1; k < *n; k++)
      ty_queue_info_close(&qs[k]);
    *n = 1;
    return true;
  }
  return false;
}

/* ls, or show with `name`. */
static int queue_ls(ty__ctl *c, bool json, const char *name) {
  ty_buf req, out;
  ty_buf_init(&req), ty_buf_init(&out);
  ty_rpc_result res = {0};
  ty_queue_info *qs = NULL;
  size_t n = 0;
  int code = ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_LIST_QUEUES, &req, &res);
  if (code == 0 && ty_cli_decode_queues(res.payload, res.payload_len, &qs, &n) != 0)
    code = ty__ctl_bad_answer(TY_M_LIST_QUEUES);
  if (code == 0 && name && !keep_one(qs, &n, name)) {
    ty__ctl_err("queue %s not found", name);
    code = TY_CLI_EXIT_ERROR;
  }
  if (code == 0 && ty_cli_render_queues(qs, n, json || c->g.json, &out) == 0)
    code = ty__ctl_write(&out);
  ty_cli_queues_free(qs, n);
  ty_rpc_result_close(&res);
  ty_buf_close(&out), ty_buf_close(&req);
  return code;
}

static int queue_change(ty__ctl *c, const char *action, const char *verb,
                        const ty_cli_queue_args *a) {
  ty_buf req, out;
  ty_buf_init(&req), ty_buf_init(&out);
  ty_rpc_result res = {0};
  ty_queue_info q = {0};
  int code = ty_cli_encode_update_queue(a->name, action, a->settings, a->n_settings, &req) == 0
                 ? 0
                 : TY_CLI_EXIT_ERROR;
  if (code == 0) code = ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_UPDATE_QUEUE, &req, &res);
  if (code == 0 && ty_cli_decode_update_queue(res.payload, res.payload_len, &q) != 0)
    code = ty__ctl_bad_answer(TY_M_UPDATE_QUEUE);
  if (code == 0 && (a->json || c->g.json)) {
    if (ty_cli_render_queues(&q, 1, true, &out) == 0) code = ty__ctl_write(&out);
  } else if (code == 0) {
    printf("%s queue %s (%s)\n", verb, q.name, ty_queue_state_name(q.state));
  }
  ty_queue_info_close(&q);
  ty_rpc_result_close(&res);
  ty_buf_close(&out), ty_buf_close(&req);
  return code;
}

typedef struct queue_sub {
  const char *sub, *action, *verb, *setting;
  bool options;
} queue_sub;

static const queue_sub queue_subs[] = {
    {"ls", NULL, NULL, NULL, false},
    {"show", NULL, NULL, NULL, false},
    {"create", "create", "Created", NULL, true},
    {"update", "update", "Updated", NULL, true},
    {"delete", "delete", "Deleted", NULL, false},
    {"pause", "update", "Paused", "state=paused", false},
    {"resume", "update", "Resumed", "state=open", false},
};

/* What trainctl can tell wrong without asking the controller is a usage
 * error (exit 2): options a subcommand does not take, an update that changes
 * nothing, settings that contradict each other. */
static int check_settings(const queue_sub *s, const ty_cli_queue_args *a, char *err, size_t len) {
  if (!s->options && a->n_settings)
    return ty_errf(err, len, TY_EINVAL, "queue %s takes no options", s->sub);
  if (!strcmp(s->sub, "update") && a->n_settings == 0)
    return ty_errf(err, len, TY_EINVAL,
                   "queue update %s: nothing to change (give at least one "
                   "option, e.g. --tier N)",
                   a->name);
  ty_queue_info scratch = {0};
  return ty_queue_apply(&scratch, a->settings, a->n_settings, err, len);
}

int ty__cmd_queue(ty__ctl *c, int argc, char **argv) {
  char err[TY_ERR_LEN] = "";
  const char *sub = NULL;
  int group = ty__ctl_group("queue", ty__usage_queue, argc, argv, &sub);
  if (group >= 0) return group;
  const queue_sub *s = NULL;
  for (size_t i = 0; i < TY_ARRAY_LEN(queue_subs) && !s; i++)
    if (!strcmp(sub, queue_subs[i].sub)) s = &queue_subs[i];
  if (!s) {
    ty_errf(err, sizeof err, TY_EINVAL, "queue: unknown subcommand \"%s\"", sub);
    return ty__ctl_usage("queue", err);
  }
  bool ls = !s->action;
  ty_cli_queue_args a;
  bool show = !strcmp(s->sub, "show");
  if (ty_cli_parse_queue_args(argc - 1, argv + 1, !ls || show, &a, err, sizeof err) != 0)
    return ty__ctl_usage("queue", err);
  int code;
  if (a.help) {
    fputs(ty__usage_queue, stdout), code = 0;
  } else if (check_settings(s, &a, err, sizeof err) != 0) {
    code = ty__ctl_usage("queue", err);
  } else if (ls) {
    code = queue_ls(c, a.json, show ? a.name : NULL);
  } else if (s->setting) {
    char *set = (char *)s->setting;
    ty_cli_queue_args one = {.name = a.name, .settings = &set, .n_settings = 1, .json = a.json};
    code = queue_change(c, s->action, s->verb, &one);
  } else {
    code = queue_change(c, s->action, s->verb, &a);
  }
  ty_cli_queue_args_close(&a);
  return code;
}

int ty__cmd_share(ty__ctl *c, int argc, char **argv) {
  ty_cli_nodes_args a; /* the same flags: --json, --help */
  char err[TY_ERR_LEN] = "";
  if (ty_cli_parse_json_only("share", argc, argv, &a, err, sizeof err) != 0)
    return ty__ctl_usage("share", err);
  if (a.help) {
    fputs(ty__usage_share, stdout);
    return 0;
  }
  ty_buf req, out;
  ty_buf_init(&req), ty_buf_init(&out);
  ty_rpc_result res = {0};
  ty_cli_share *s = NULL;
  size_t n = 0;
  double halflife = 0;
  int code = ty__ctl_call(c, TY_CLI_OP_OTHER, TY_M_GET_SHARES, &req, &res);
  if (code == 0 && ty_cli_decode_shares(res.payload, res.payload_len, &s, &n, &halflife) != 0)
    code = ty__ctl_bad_answer(TY_M_GET_SHARES);
  if (code == 0 && ty_cli_render_shares(s, n, halflife, a.json || c->g.json, &out) == 0)
    code = ty__ctl_write(&out);
  ty_cli_shares_free(s, n);
  ty_rpc_result_close(&res);
  ty_buf_close(&out), ty_buf_close(&req);
  return code;
}
