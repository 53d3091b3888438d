/* SPDX-License-Identifier: Apache-2.0 */
/* Graph-job helpers of the integration tests (see ranks.h). */
#include "tests/integration/ranks.h"

#include "lib/token/token.h"
#include "ops/graph.h"
#include "proto/train_config.pb-c.h"
#include "tests/support/subset.h"
#include "tests/support/tree.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *rk_env(const char *name) {
  const char *v = getenv(name);
  cr_assert(v && *v, "%s is not set (run through meson test)", name);
  return v;
}

uint8_t *rk_read_all(const char *path, size_t *out_len) {
  uint8_t *b = ty_test_read_file(path, out_len);
  cr_assert(b, "cannot read %s", path);
  return b;
}

void rk_write_file(const char *path, const uint8_t *b, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert(f, "cannot create %s", path);
  cr_assert_eq(fwrite(b, 1, n, f), n);
  fclose(f);
}

uint8_t *rk_make_config(uint64_t steps, uint64_t ckpt_every, const char *ckpt, size_t *out_len) {
  size_t n;
  uint8_t *raw = rk_read_all(rk_env("TY_MLP_CONFIG"), &n);
  Trainyard__TrainConfig *c = trainyard__train_config__unpack(NULL, n, raw);
  cr_assert(c);
  c->max_steps = steps;
  if (c->lr_schedule)
    c->lr_schedule->warmup_steps = 0; /* full-size steps: weights move from the first one */
  c->epochs = 1;
  c->eval_each_epoch = TRAINYARD__TOGGLE__TOGGLE_OFF;
  c->log_interval = 5;
  c->checkpoint_interval = ckpt_every;
  char *old = c->checkpoint_path;
  c->checkpoint_path = (char *)(ckpt ? ckpt : "");
  *out_len = trainyard__train_config__get_packed_size(c);
  uint8_t *out = malloc(*out_len + 1);
  trainyard__train_config__pack(c, out);
  c->checkpoint_path = old;
  trainyard__train_config__free_unpacked(c, NULL);
  free(raw);
  return out;
}

uint8_t *rk_make_pipeline_config(uint64_t steps, const char *stages, const char *micro,
                                 const char *ckpt, size_t *out_len) {
  size_t n;
  uint8_t *raw = rk_make_config(steps, 0, ckpt, &n);
  Trainyard__TrainConfig *m = trainyard__train_config__unpack(NULL, n, raw);
  cr_assert(m);
  char *old_stages = m->pipeline_stages, *old_micro = m->micro_batches;
  m->pipeline_stages = (char *)stages;
  m->micro_batches = (char *)micro;
  *out_len = trainyard__train_config__get_packed_size(m);
  uint8_t *out = malloc(*out_len + 1);
  trainyard__train_config__pack(m, out);
  m->pipeline_stages = old_stages, m->micro_batches = old_micro;
  trainyard__train_config__free_unpacked(m, NULL);
  free(raw);
  return out;
}

void rk_write_config(const char *path, uint64_t steps, uint64_t ckpt_every, const char *ckpt) {
  size_t len;
  uint8_t *c = rk_make_config(steps, ckpt_every, ckpt, &len);
  rk_write_file(path, c, len);
  free(c);
}

void rk_set_token(const it_cluster *c, uint64_t job, uint32_t rank) {
  char path[400], err[256] = "", hex[2 * TY_TOKEN_LEN + 1];
  snprintf(path, sizeof path, "%s/traind/attach.key", c->dir);
  uint8_t secret[TY_TOKEN_SECRET_LEN], key[TY_TOKEN_KEY_LEN], tok[TY_TOKEN_LEN];
  cr_assert_eq(ty_token_secret_load(path, secret, err, sizeof err), 0, "%s", err);
  ty_token_job_key(secret, job, key);
  ty_token_sign(key, job, rank, ty_now_ms() + 600000, tok);
  for (size_t i = 0; i < TY_TOKEN_LEN; i++)
    snprintf(hex + 2 * i, 3, "%02x", tok[i]);
  setenv("TRAINYARD_RENDEZVOUS_TOKEN", hex, 1);
}

pid_t rk_start(const char *model, const char *cfg, uint32_t rank, uint32_t world, uint64_t job,
               int ctl_port, const char *log, const char *const *extra) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    char r[16], w[16], j[32], ctl[64];
    snprintf(r, sizeof r, "%u", rank);
    snprintf(w, sizeof w, "%u", world);
    snprintf(j, sizeof j, "%llu", (unsigned long long)job);
    snprintf(ctl, sizeof ctl, "127.0.0.1:%d", ctl_port);
    setenv("RANK", r, 1), setenv("WORLD_SIZE", w, 1), setenv("TRAINYARD_JOB_ID", j, 1);
    setenv("TRAINYARD_CONTROLLER", ctl, 1);
    /* Ranks started here are local: their Open MPI stays on the loopback,
     * as workers' --mpi-if-include lo keeps the harness's, away from the
     * bridge of a multihost test running beside (a bind on it failed). */
    setenv("OMPI_MCA_btl_tcp_if_include", "lo", 0), setenv("OMPI_MCA_oob_tcp_if_include", "lo", 0);
    if (!freopen(log, "w", stdout) || dup2(STDOUT_FILENO, STDERR_FILENO) < 0) _exit(126);
    const char *bin = getenv("TY_TRAINRUN"),
               *argv[40] = {bin, "--model", model, "--config", cfg, "--threads", "1"};
    int n = 7;
    for (int i = 0; extra && extra[i] && n < 39; i++)
      argv[n++] = extra[i];
    argv[n] = NULL;
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  return pid;
}

int rk_wait_exit(pid_t pid) {
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

double rk_weight_diff(const char *a, const char *b) {
  char err[512];
  ty_graph *ga = NULL, *gb = NULL;
  cr_assert_eq(ty_graph_load_file(a, err, sizeof err, &ga), 0, "%s: %s", a, err);
  cr_assert_eq(ty_graph_load_file(b, err, sizeof err, &gb), 0, "%s: %s", b, err);
  cr_assert_eq(ty_graph_n_initializers(ga), ty_graph_n_initializers(gb));
  double worst = 0;
  for (size_t i = 0; i < ty_graph_n_initializers(ga); i++) {
    const ty_graph_value *va = ty_graph_value_at(ga, ty_graph_initializer(ga, i));
    int idb = ty_graph_find_value(gb, va->name);
    cr_assert(idb != TY_NO_VALUE, "%s has no %s", b, va->name);
    const ty_tensor *ta = va->init, *tb = ty_graph_value_at(gb, idb)->init;
    if (!ta || !tb || ta->dtype != TY_DTYPE_F32) continue;
    cr_assert_eq(ta->nbytes, tb->nbytes);
    const float *fa = ta->data, *fb = tb->data;
    for (size_t k = 0; k < ta->nbytes / sizeof(float); k++)
      worst = fmax(worst, fabs((double)fa[k] - fb[k]));
  }
  ty_graph_destroy(ga);
  ty_graph_destroy(gb);
  return worst;
}

void rk_reference(const char *dir, uint64_t steps, char *out_path, size_t n) {
  char cfg[300], log[300];
  snprintf(out_path, n, "%s/ref-%llu.onnx", dir, (unsigned long long)steps);
  snprintf(cfg, sizeof cfg, "%s/ref-%llu.pb", dir, (unsigned long long)steps);
  snprintf(log, sizeof log, "%s/ref-%llu.log", dir, (unsigned long long)steps);
  rk_write_config(cfg, steps, 0, out_path);
  cr_assert_eq(rk_wait_exit(rk_start(rk_env("TY_MLP_ONNX"), cfg, 0, 1, 0, 1, log, NULL)), 0,
               "reference run failed: %s", log);
}

void rk_graph_job(rk_job *j, uint32_t nodes, uint32_t tpn, const uint8_t *cfg, size_t cfg_len,
                  int parallelism) {
  *j = (rk_job){.job = TRAINYARD__JOB__INIT,
                .res = TRAINYARD__RESOURCES__INIT,
                .graph = TRAINYARD__GRAPH_SPEC__INIT};
  j->res.nodes = nodes;
  j->res.tasks_per_node = tpn;
  j->graph.model_path = (char *)rk_env("TY_MLP_ONNX");
  j->graph.train_config = (ProtobufCBinaryData){cfg_len, (uint8_t *)cfg};
  j->graph.parallelism = (Trainyard__Parallelism)parallelism;
  j->job.resources = &j->res;
  j->job.kind_case = TRAINYARD__JOB__KIND_GRAPH;
  j->job.graph = &j->graph;
}

void rk_write_job(const char *path, const char *name, uint32_t nodes, uint32_t tpn,
                  const uint8_t *cfg, size_t cfg_len, int parallelism) {
  rk_job j;
  rk_graph_job(&j, nodes, tpn, cfg, cfg_len, parallelism);
  j.job.name = (char *)name;
  rk_write_job_file(path, &j);
}

void rk_write_job_file(const char *path, const rk_job *j) {
  size_t n = trainyard__job__get_packed_size(&j->job);
  uint8_t *b = malloc(n + 1);
  trainyard__job__pack(&j->job, b);
  rk_write_file(path, b, n);
  free(b);
}

/* ---- graph jobs through trainctl ----------------------------------------------------- */

const char *const rk_plan_rates[] = {
    "--plan-device-flops", "1e11", "--plan-intra-gbps", "10", "--plan-inter-gbps", "1.25", NULL};

void rk_full_pass_only(void) {
  if (ty_test_subset())
    cr_skip_test(
        "the sanitizer pass's subset: the other jobs run these paths under the sanitizers");
}

uint64_t rk_submit_file(const it_cluster *c, const char *file) {
  char *out = NULL;
  int code = it_trainctl(c, &out, (const char *const[]){"submit", "--quiet", file, NULL});
  cr_assert_eq(code, 0, "trainctl submit %s exited %d (logs in %s)", file, code, c->dir);
  uint64_t id = strtoull(out, NULL, 10);
  free(out);
  cr_assert_gt(id, 0u);
  return id;
}

void rk_expect_completed(const it_cluster *c, uint64_t id) {
  ty_rpc_client *cl = it_client(c);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 180000);
  cr_assert(r, "job %llu did not end (logs in %s)", (unsigned long long)id, c->dir);
  cr_assert_eq(r->job->state, TRAINYARD__JOB_STATE__JOB_COMPLETED, "job ended %d: %s (logs in %s)",
               r->job->state, r->job->reason, c->dir);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
}

char *rk_show(const it_cluster *c, uint64_t id) {
  char num[32], *out = NULL;
  snprintf(num, sizeof num, "%llu", (unsigned long long)id);
  cr_assert_eq(it_trainctl(c, &out, (const char *const[]){"show", num, NULL}), 0);
  return out;
}

/* /proc/PID/NAME into buf (NUL bytes as '\n'); its length, 0 if unreadable. */
static size_t proc_text(int pid, const char *name, char *buf, size_t len) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", pid, name);
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(buf, 1, len - 1, f) : 0;
  if (f) fclose(f);
  for (size_t i = 0; i < n; i++)
    if (!buf[i]) buf[i] = '\n';
  buf[n] = 0;
  return n;
}

pid_t rk_find_trainrun(const char *dir, const char *in_cmdline, const char *in_environ) {
  DIR *d = opendir("/proc");
  pid_t found = 0;
  char buf[16384];
  for (struct dirent *e; d && (e = readdir(d)) && !found;) {
    int pid = atoi(e->d_name);
    if (pid <= 0 || !proc_text(pid, "cmdline", buf, sizeof buf)) continue;
    if (!strstr(buf, "trainrun") || !strstr(buf, dir) || (in_cmdline && !strstr(buf, in_cmdline)))
      continue;
    if (!in_environ || (proc_text(pid, "environ", buf, sizeof buf) && strstr(buf, in_environ)))
      found = pid;
  }
  if (d) closedir(d);
  return found;
}
