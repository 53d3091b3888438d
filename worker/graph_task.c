/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Graph ranks on the worker: LaunchTask with a graph becomes a trainrun
 * command (see worker_internal.h). The model, the config and the job's
 * plan (trainrun --plan; none for a data-parallel job) are written per
 * rank with a temporary name and renamed, so a rank relaunched after a
 * requeue never reads half a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "lib/token/token.h"
#include "worker/worker_internal.h"

ty__graph_worker *ty__graph_worker_create(ty_tasks *tasks, const char *trainrun,
                                          const char *controller) {
  ty__graph_worker *gw = ty_xcalloc(1, sizeof *gw);
  gw->tasks = tasks;
  gw->trainrun = ty_strdup(trainrun && trainrun[0] ? trainrun : "trainrun");
  gw->controller = ty_strdup(controller);
  return gw;
}

void ty__graph_worker_destroy(ty__graph_worker *gw) {
  if (!gw) return;
  for (size_t i = 0; i < gw->n; i++)
    ty__watch_close(&gw->watches[i]);
  free(gw->watches);
  free(gw->trainrun);
  free(gw->controller);
  free(gw);
}

/* Writes a rank's model or config into the worker's job directory, 0600
 * and owned by the task's user when the worker runs tasks as their users. */
static int write_file(const ty_task_spec *spec, const char *path, const uint8_t *data, size_t len,
                      char *err, size_t err_len) {
  char tmp[PATH_MAX + 16];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0 && geteuid() == 0 && spec->has_uid && fchown(fd, spec->uid, spec->gid) != 0) {
    close(fd);
    fd = -1;
  }
  size_t off = 0;
  while (fd >= 0 && off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w <= 0) break;
    off += (size_t)w;
  }
  int rc = fd >= 0 && off == len ? 0 : TY_EIO;
  if (fd >= 0 && close(fd) != 0) rc = TY_EIO;
  if (rc == 0 && rename(tmp, path) != 0) rc = TY_EIO;
  if (rc != 0) {
    ty_errf(err, err_len, rc, "cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
  }
  return rc;
}

static char *dupf(const char *fmt, const char *a, const char *b) {
  size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
  char *s = ty_xmalloc(n);
  snprintf(s, n, fmt, a, b);
  return s;
}

static void add_arg(ty__graph_cmd *cmd, const char *a) {
  if (cmd->argc < TY_ARRAY_LEN(cmd->argv) - 1) cmd->argv[cmd->argc++] = ty_strdup(a);
}

/* Rendezvous tokens outlive any start-up: ranks rendezvous once per launch. */
#define RDV_TOKEN_TTL_MS (30LL * 24 * 3600 * 1000)

/* TRAINYARD_RENDEZVOUS_TOKEN=<hex of the rank's token>, signed with the job's
 * key from LaunchTask; NULL when the controller sent none. */
static char *rdv_token_env(const ty_task_spec *spec) {
  if (!spec->attach_key || spec->attach_key_len != TY_TOKEN_KEY_LEN) return NULL;
  uint8_t tok[TY_TOKEN_LEN];
  ty_token_sign(spec->attach_key, spec->job_id, spec->rank, ty_now_ms() + RDV_TOKEN_TTL_MS, tok);
  static const char prefix[] = "TRAINYARD_RENDEZVOUS_TOKEN=";
  char *s = ty_xmalloc(sizeof prefix + 2 * TY_TOKEN_LEN);
  memcpy(s, prefix, sizeof prefix - 1);
  for (size_t i = 0; i < TY_TOKEN_LEN; i++)
    snprintf(s + sizeof prefix - 1 + 2 * i, 3, "%02x", tok[i]);
  return s;
}

static int build(ty__graph_worker *gw, const ty_task_spec *spec, ty__graph_cmd *cmd, char *err,
                 size_t err_len) {
  char dir[PATH_MAX], rank[16], num[32];
  /* DIR/jobs/JOB, this job's (job_dir.c), before its files go in. */
  int rc = ty__job_dir_claim(gw->tasks, spec, dir, sizeof dir, err, err_len);
  if (rc != 0) return rc;
  snprintf(rank, sizeof rank, "%" PRIu32, spec->rank);
  char *model =
      spec->model_path[0] ? ty_strdup(spec->model_path) : dupf("%s/model.rank%s.onnx", dir, rank);
  char *config = dupf("%s/config.rank%s.pb", dir, rank);
  char *plan = spec->plan_len ? dupf("%s/plan.rank%s.typl", dir, rank) : NULL;
  /* The checkpoint's directory is made by trainrun, as the job's user
   * (ops/train/ckpt_dir.c): made here, as root, a path the user names
   * would be a directory created and given to them anywhere. Only the
   * default one in traind's CHECKPOINT_DIR, which users cannot write, is
   * made here (graph_ckpt_dir.c). */
  rc = ty__graph_ckpt_dir(spec, err, err_len);
  if (rc == 0 && !spec->model_path[0])
    rc = write_file(spec, model, spec->model_bytes, spec->model_len, err, err_len);
  if (rc == 0)
    rc = write_file(spec, config, spec->train_config, spec->train_config_len, err, err_len);
  if (rc == 0 && plan) rc = write_file(spec, plan, spec->plan, spec->plan_len, err, err_len);
  if (rc == 0) {
    add_arg(cmd, gw->trainrun);
    add_arg(cmd, "--model"), add_arg(cmd, model);
    add_arg(cmd, "--config"), add_arg(cmd, config);
    if (plan) add_arg(cmd, "--plan"), add_arg(cmd, plan);
    if (spec->checkpoint_path[0]) add_arg(cmd, "--checkpoint"), add_arg(cmd, spec->checkpoint_path);
    snprintf(num, sizeof num, "%" PRIu32, spec->cpus ? spec->cpus : 1);
    add_arg(cmd, "--threads"), add_arg(cmd, num);
    if (spec->bucket_mb) {
      snprintf(num, sizeof num, "%" PRIu32, spec->bucket_mb);
      add_arg(cmd, "--bucket-mb"), add_arg(cmd, num);
    }
    /* The job's env (--export) first, as a command's: ours after it wins. */
    cmd->env = ty_xcalloc(spec->n_env + 2, sizeof *cmd->env);
    for (size_t i = 0; i < spec->n_env; i++)
      cmd->env[cmd->n_env++] = ty_strdup(spec->env[i]);
    cmd->env[cmd->n_env++] = dupf("TRAINYARD_CONTROLLER=%s%s", gw->controller, "");
    char *tok = rdv_token_env(spec);
    if (tok) cmd->env[cmd->n_env++] = tok;
    cmd->cwd = ty_strdup(dir);
  }
  free(model);
  free(config);
  free(plan);
  return rc;
}

int ty__graph_prepare(ty__graph_worker *gw, ty_task_spec *spec, ty__graph_cmd *cmd, char *err,
                      size_t err_len) {
  memset(cmd, 0, sizeof *cmd);
  if (!spec->graph) return 0;
  int rc = 0;
  if (!spec->model_path[0] && spec->model_len == 0)
    rc = ty_errf(err, err_len, TY_EINVAL, "graph launch of job %" PRIu64 " carries no model",
                 spec->job_id);
  if (rc == 0) rc = build(gw, spec, cmd, err, err_len);
  if (rc != 0) {
    ty__graph_cmd_close(cmd);
    return rc;
  }
  spec->argv = (const char *const *)cmd->argv;
  spec->argc = cmd->argc;
  spec->env = (const char *const *)cmd->env;
  spec->n_env = cmd->n_env;
  spec->cwd = cmd->cwd;
  if (spec->rank == 0) ty__graph_watch(gw, spec, spec->checkpoint_path);
  return 1;
}

void ty__graph_cmd_close(ty__graph_cmd *cmd) {
  for (size_t i = 0; i < cmd->argc; i++)
    free(cmd->argv[i]);
  for (size_t i = 0; i < cmd->n_env; i++)
    free(cmd->env[i]);
  free(cmd->env);
  free(cmd->cwd);
  memset(cmd, 0, sizeof *cmd);
}
