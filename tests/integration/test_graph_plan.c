/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Planned graph jobs through the controller (issues 10 and 13): a real
 * traind checks and plans each graph job in its child process, real
 * workers write the plan into the job's directory and start trainrun
 * --plan (`trainctl plan` and a pipelined job: test_graph_plan_cli.c).
 *
 *   - tensor parallel on 2 ranks (1 worker x 2 slots) and data x tensor on
 *     4 (2 workers x 2 slots), submitted with `trainctl submit`, end with
 *     the weights of a single-process run (float tolerance); the plan the
 *     controller made without the data is the one trainrun --write-plan
 *     makes with it; `trainctl show` prints it, also after a restart;
 *   - the default parallelism (auto) plans the job too;
 *   - a model with a short raw_data initializer, a check that crashes, one
 *     that hangs and one that runs out of its memory are each a clear
 *     refusal of that submit, and traind keeps serving;
 *   - a model_path is read with the submitter's rights (MUNGE's uid);
 *   - the check gets none of traind's environment, and its stderr reaches
 *     traind's log only line by line under a prefix naming the asker;
 *   - clipping with a plan that splits weights runs.
 *
 * The cost model's rates are fixed on traind's command line
 * (rk_plan_rates) and in trainrun's, so plans do not depend on this
 * machine's speed.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops/graph.h"
#include "ops/plan/plan.h"
#include "proto/methods.h"
#include "proto/onnx.pb-c.h"
#include "proto/train_config.pb-c.h"
#include "tests/integration/ranks.h"

#define STEPS 24

static ty_plan *load_plan(const char *path) {
  size_t n;
  uint8_t *b = rk_read_all(path, &n);
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_plan_decode(b, n, &p, err, sizeof err), 0, "%s: %s", path, err);
  free(b);
  return p;
}

/* The plan trainrun makes with the data present, for the same rates. */
static ty_plan *trainrun_plan(const it_cluster *c, const char *cfg, const char *mode,
                              const char *mesh) {
  char path[400], log[400];
  snprintf(path, sizeof path, "%s/trainrun-%s.plan", c->dir, mode);
  snprintf(log, sizeof log, "%s/trainrun-%s.log", c->dir, mode);
  const char *const args[] = {
      "--write-plan", path, "--parallelism", mode,   "--mesh", mesh, "--device-flops", "1e11",
      "--intra-gbps", "10", "--inter-gbps",  "1.25", NULL};
  cr_assert_eq(rk_wait_exit(rk_start(rk_env("TY_MLP_ONNX"), cfg, 0, 1, 0, 1, log, args)), 0,
               "trainrun --write-plan failed: %s", log);
  return load_plan(path);
}

/* Submits the MLP as `mode` on nodes x tpn ranks through trainctl, checks
 * the weights against one process and the plan against trainrun's. */
static uint64_t expect_planned(const it_cluster *c, uint32_t nodes, uint32_t tpn, int mode,
                               const char *tag) {
  char ref[400], out[400], job[400], cfgp[400], plan[500], mesh[16];
  rk_reference(c->dir, STEPS, ref, sizeof ref);
  snprintf(out, sizeof out, "%s/%s.onnx", c->dir, tag);
  snprintf(job, sizeof job, "%s/%s.job.pb", c->dir, tag);
  snprintf(cfgp, sizeof cfgp, "%s/%s.config.pb", c->dir, tag);
  size_t len;
  uint8_t *cfg = rk_make_config(STEPS, 0, out, &len);
  rk_write_file(cfgp, cfg, len);
  rk_write_job(job, tag, nodes, tpn, cfg, len, mode);
  free(cfg);
  uint64_t id = rk_submit_file(c, job);
  rk_expect_completed(c, id);
  double d = rk_weight_diff(ref, out);
  cr_assert(d < 1e-4, "%s: weights differ from a single process by %g (logs in %s)", tag, d,
            c->dir);
  /* The controller planned without the data; trainrun plans with it. */
  snprintf(plan, sizeof plan, "%s/%s/jobs/%llu/plan.rank0.typl", c->dir, c->name[0],
           (unsigned long long)id);
  ty_plan *sent = load_plan(plan);
  snprintf(mesh, sizeof mesh, "%ux%u", nodes, tpn);
  const char *words[] = {"auto", "data", "tensor", "grid"};
  ty_plan *local = trainrun_plan(c, cfgp, words[mode], mesh);
  cr_assert_eq(ty_plan_hash(sent), ty_plan_hash(local),
               "%s: the controller's plan is not the one trainrun makes with the data", tag);
  ty_plan_destroy(sent);
  ty_plan_destroy(local);
  return id;
}

Test(graph_plan, tensor_parallel_on_two_ranks_through_submit, .timeout = 300) {
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.traind_args = rk_plan_rates});
  uint64_t id = expect_planned(&c, 1, 2, TRAINYARD__PARALLELISM__PARALLELISM_TENSOR, "tp");
  char *text = rk_show(&c, id);
  cr_assert(strstr(text, "Plan: the tensor parallel plan, mesh 1x2 on 1 x 2 devices"), "%s", text);
  cr_assert(strstr(text, "predicted step ") && strstr(text, " per device of 16.0 GiB"), "%s", text);
  free(text);
  /* The plan is stored with the job. */
  kill(c.traind, SIGTERM);
  cr_assert_eq(rk_wait_exit(c.traind), 0);
  it_controller_start(&c);
  text = rk_show(&c, id);
  cr_assert(strstr(text, "Plan: the tensor parallel plan"), "after a restart:\n%s", text);
  free(text);
  it_cluster_stop(&c);
}

Test(graph_plan, data_x_tensor_on_four_ranks_through_submit, .timeout = 300) {
  rk_full_pass_only();
  it_cluster c;
  it_cluster_start_with(&c, 2, 2, &(it_options){.traind_args = rk_plan_rates});
  expect_planned(&c, 2, 2, TRAINYARD__PARALLELISM__PARALLELISM_GRID, "grid");
  it_cluster_stop(&c);
}

/* Under ASan, tensor_parallel_on_two_ranks_through_submit runs the
 * daemons' side (the check's plan, stored, sent with LaunchTask) and
 * a_model_no_flat_plan_fits_is_pipelined_and_trains_as_one_process the
 * controller's auto planning. */
Test(graph_plan, default_parallelism_is_planned, .timeout = 300) {
  it_full_pass_only("tensor_parallel_on_two_ranks_through_submit and "
                    "a_model_no_flat_plan_fits_is_pipelined_and_trains_as_one_process");
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.traind_args = rk_plan_rates});
  uint64_t id = expect_planned(&c, 1, 2, TRAINYARD__PARALLELISM__PARALLELISM_AUTO, "auto");
  char *text = rk_show(&c, id);
  cr_assert(strstr(text, "Plan: the "), "%s", text);
  free(text);
  it_cluster_stop(&c);
}

/* ---- refusals ------------------------------------------------------------------------ */

/* A graph job of model bytes, submitted over RPC: the status and message. */
static int submit_bytes(const it_cluster *c, const uint8_t *model, size_t n, const char *path,
                        char *err, size_t err_len) {
  size_t len;
  uint8_t *cfg = rk_make_config(10, 0, NULL, &len);
  rk_job j;
  rk_graph_job(&j, 1, 1, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_AUTO);
  j.graph.model_bytes = (ProtobufCBinaryData){n, (uint8_t *)model};
  j.graph.model_path = (char *)(path ? path : "");
  ty_rpc_client *cl = it_client(c);
  uint64_t id = 0;
  int rc = it_submit_job(cl, &j.job, &id, err, err_len);
  ty_rpc_client_close(cl);
  free(cfg);
  return rc;
}

/* x [N, 784] MatMul W [784, rows / 784 ...]: W's raw_data holds raw_len bytes. */
static uint8_t *matmul_model(int64_t out_dim, size_t raw_len, size_t *out_len) {
  Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
  Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
  Onnx__NodeProto node = ONNX__NODE_PROTO__INIT;
  Onnx__TensorProto w = ONNX__TENSOR_PROTO__INIT;
  Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
  Onnx__ValueInfoProto x = ONNX__VALUE_INFO_PROTO__INIT, y = ONNX__VALUE_INFO_PROTO__INIT;
  Onnx__TypeProto tx = ONNX__TYPE_PROTO__INIT, ty = ONNX__TYPE_PROTO__INIT;
  Onnx__TypeProto__Tensor ttx = ONNX__TYPE_PROTO__TENSOR__INIT,
                          tty = ONNX__TYPE_PROTO__TENSOR__INIT;
  Onnx__TensorShapeProto sx = ONNX__TENSOR_SHAPE_PROTO__INIT, sy = ONNX__TENSOR_SHAPE_PROTO__INIT;
  Onnx__TensorShapeProto__Dimension n = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT,
                                    d784 = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT,
                                    dout = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
  n.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM, n.dim_param = "N";
  d784.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE, d784.dim_value = 784;
  dout.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE, dout.dim_value = out_dim;
  Onnx__TensorShapeProto__Dimension *dx[] = {&n, &d784}, *dy[] = {&n, &dout};
  sx.n_dim = sy.n_dim = 2, sx.dim = dx, sy.dim = dy;
  ttx.has_elem_type = tty.has_elem_type = 1;
  ttx.elem_type = tty.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  ttx.shape = &sx, tty.shape = &sy;
  tx.value_case = ty.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tx.tensor_type = &ttx, ty.tensor_type = &tty;
  x.name = "x", x.type = &tx;
  y.name = "y", y.type = &ty;
  int64_t dims[] = {784, out_dim};
  w.name = "W", w.has_data_type = 1, w.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  w.n_dims = 2, w.dims = dims;
  w.has_raw_data = 1;
  w.raw_data = (ProtobufCBinaryData){raw_len, calloc(1, raw_len ? raw_len : 1)};
  char *ins[] = {"x", "W"}, *outs[] = {"y"};
  node.op_type = "MatMul", node.n_input = 2, node.input = ins, node.n_output = 1,
  node.output = outs;
  Onnx__NodeProto *nodes[] = {&node};
  Onnx__TensorProto *inits[] = {&w};
  Onnx__ValueInfoProto *gin[] = {&x}, *gout[] = {&y};
  g.name = "matmul", g.n_node = 1, g.node = nodes, g.n_initializer = 1, g.initializer = inits;
  g.n_input = 1, g.input = gin, g.n_output = 1, g.output = gout;
  opset.domain = "", opset.has_version = 1, opset.version = 17;
  Onnx__OperatorSetIdProto *opsets[] = {&opset};
  m.has_ir_version = 1, m.ir_version = 8, m.graph = &g, m.n_opset_import = 1,
  m.opset_import = opsets;
  *out_len = onnx__model_proto__get_packed_size(&m);
  uint8_t *b = malloc(*out_len);
  onnx__model_proto__pack(&m, b);
  free(w.raw_data.data);
  return b;
}

static void write_script(const char *path, const char *body) {
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fprintf(f, "#!/bin/sh\n%s\n", body);
  fclose(f);
  cr_assert_eq(chmod(path, 0755), 0);
}

/* The controller still answers: a command job is accepted. */
static void expect_serving(const it_cluster *c) {
  ty_rpc_client *cl = it_client(c);
  uint64_t id = 0;
  char err[512] = "";
  cr_assert_eq(it_submit_sh(cl, "true", "alive", &id, err, sizeof err), 0, "%s", err);
  ty_rpc_client_close(cl);
}

static void restart_with(it_cluster *c, const char *const *args) {
  kill(c->traind, SIGTERM);
  rk_wait_exit(c->traind);
  c->traind_args = args;
  it_controller_start(c);
}

Test(graph_plan, broken_models_and_checks_are_refused_and_traind_keeps_serving, .timeout = 300) {
  it_cluster c;
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = rk_plan_rates});
  char err[512] = "", crash[400], hang[400];
  /* A short raw_data initializer (it once crashed traind from its loop). */
  size_t n;
  uint8_t *model = matmul_model(10, 16, &n);
  cr_assert_eq(submit_bytes(&c, model, n, NULL, err, sizeof err), TY_EINVAL);
  free(model);
  cr_assert(strstr(err, "job.graph.model_bytes: ") && strstr(err, "raw_data has 16 bytes"), "%s",
            err);
  expect_serving(&c);
  /* A check that crashes, one that hangs. */
  snprintf(crash, sizeof crash, "%s/crash.sh", c.dir);
  snprintf(hang, sizeof hang, "%s/hang.sh", c.dir);
  write_script(crash, "kill -SEGV $$");
  write_script(hang, "exec sleep 600");
  const char *const crashing[] = {"--graphcheck", crash, NULL};
  restart_with(&c, crashing);
  model = matmul_model(10, 784 * 10 * 4, &n);
  cr_assert_eq(submit_bytes(&c, model, n, NULL, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "job.graph: model check crashed (signal 11, SIGSEGV)");
  expect_serving(&c);
  const char *const hanging[] = {"--graphcheck", hang, "--check-timeout-s", "1", NULL};
  restart_with(&c, hanging);
  cr_assert_eq(submit_bytes(&c, model, n, NULL, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "job.graph: model check timed out after 1 s (traind --check-timeout-s)");
  expect_serving(&c);
  /* One that answers garbage, one that answers nothing. */
  write_script(crash, "printf '\\000\\000\\000\\003abc'");
  restart_with(&c, crashing);
  cr_assert_eq(submit_bytes(&c, model, n, NULL, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "job.graph: the model check answered something that is not its answer");
  write_script(crash, "exit 3");
  cr_assert_eq(submit_bytes(&c, model, n, NULL, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "job.graph: model check ended (exit code 3) without an answer");
  expect_serving(&c);
  free(model);
  it_cluster_stop(&c);
}

/* traind copied alone into a directory of its own, as an install whose
 * trainyard-graphcheck is missing (none next to it, in a build tree or in
 * LIBEXECDIR): it warns at start, naming where it looked and --graphcheck,
 * and a graph submit's refusal names the path it tried to start (it once
 * started silently and the submit named only "trainyard-graphcheck"). */
Test(graph_plan, a_traind_without_its_graphcheck_says_so_at_start_and_submit, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = rk_plan_rates});
  char sbin[300], exe[340], cmd[1024], log[300], err[512] = "";
  snprintf(sbin, sizeof sbin, "%s/sbin", c.dir);
  snprintf(exe, sizeof exe, "%s/traind", sbin);
  snprintf(cmd, sizeof cmd, "mkdir %s && cp %s %s", sbin, rk_env("TY_TRAIND"), exe);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  char *saved = ty_strdup(rk_env("TY_TRAIND"));
  setenv("TY_TRAIND", exe, 1);
  restart_with(&c, rk_plan_rates);
  setenv("TY_TRAIND", saved, 1);
  free(saved);
  snprintf(log, sizeof log, "%s/traind.stderr", c.dir);
  char want[700];
  snprintf(want, sizeof want,
           "no trainyard-graphcheck next to traind (%s), in a build tree (%s/graphcheck) or in /",
           sbin, sbin);
  it_wait_log(log, want);
  it_wait_log(log, "every graph job will be refused until one is there; give --graphcheck PATH");
  size_t n;
  uint8_t *model = matmul_model(10, 784 * 10 * 4, &n);
  cr_assert_eq(submit_bytes(&c, model, n, NULL, err, sizeof err), TY_EINTERNAL, "%s", err);
  cr_assert(strstr(err, "job.graph: the controller cannot start its model check (/") &&
                strstr(err, "/trainyard/trainyard-graphcheck): no such file or directory"),
            "%s", err);
  free(model);
  it_cluster_stop(&c);
}

/* ---- a retried submit while its model is being checked -------------------------------- */

typedef struct retry_arg {
  const it_cluster *c;
  const char *rid;
  int rc;
  uint64_t id;
  char err[512];
} retry_arg;

/* Submits the MLP as a data-parallel graph job with request id a->rid. */
static void *submit_rid(void *ud) {
  retry_arg *a = ud;
  size_t len;
  uint8_t *cfg = rk_make_config(10, 0, NULL, &len);
  rk_job j;
  rk_graph_job(&j, 1, 1, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  ty_rpc_client *cl = it_client(a->c);
  a->rc = it_submit_job_id(cl, &j.job, a->rid, &a->id, a->err, sizeof a->err);
  ty_rpc_client_close(cl);
  free(cfg);
  return NULL;
}

/* The check runs as the submitter, who may ptrace it: it gets none of
 * traind's environment (a secret the unit passes traind), and what it
 * writes on stderr reaches traind's log (root's) only under a prefix
 * naming the asker, control bytes as '?', never as lines of its own, and
 * 32 lines at most. */
Test(graph_plan, the_check_gets_no_traind_env_and_its_stderr_is_prefixed, .timeout = 120) {
  setenv("TY_TRAIND_SECRET_FOR_CHECK", "s3cr3t-of-traind", 1);
  it_cluster c;
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = rk_plan_rates});
  char fake[400], env_out[400], body[1200], log[400], err[512] = "";
  snprintf(fake, sizeof fake, "%s/forge.sh", c.dir);
  snprintf(env_out, sizeof env_out, "%s/check.env", c.dir);
  snprintf(log, sizeof log, "%s/traind.stderr", c.dir);
  snprintf(body, sizeof body,
           "env > %s\nprintf 'FORGED traind: admin granted\\n' >&2\n"
           "printf 'esc\\033[2J\\rFORGED2\\n' >&2\n"
           "i=0; while [ $i -lt 40 ]; do echo flood$i >&2; i=$((i+1)); done\nexit 3",
           env_out);
  write_script(fake, body);
  const char *const forging[] = {"--graphcheck", fake, NULL};
  restart_with(&c, forging);
  size_t n;
  uint8_t *model = matmul_model(10, 784 * 10 * 4, &n);
  cr_assert_eq(submit_bytes(&c, model, n, NULL, err, sizeof err), TY_EINVAL);
  free(model);
  cr_assert_str_eq(err, "job.graph: model check ended (exit code 3) without an answer");
  it_wait_log(log, ": FORGED traind: admin granted");
  it_wait_log(log, ": esc?[2J?FORGED2");
  it_wait_log(log, "more bytes of its stderr not logged (32 lines at most)");
  size_t len;
  char *env = (char *)rk_read_all(env_out, &len), *text = (char *)rk_read_all(log, &len);
  cr_expect(strstr(env, "PATH=") && strstr(env, "OPENBLAS_NUM_THREADS=1"), "%s", env);
  cr_expect_null(strstr(env, "TY_TRAIND_SECRET_FOR_CHECK"), "the check saw traind's env: %s", env);
  for (char *line = text; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
    cr_expect(strncmp(line, "FORGED", 6) != 0, "a line of the check's own in traind's log: %.80s",
              line);
  cr_expect_null(strchr(text, '\033'), "the check's escape reached traind's log");
  cr_expect(strstr(text, "model check for "), "no prefixed line in: %s", text);
  cr_expect(strstr(text, ": flood29\n") && !strstr(text, "flood30"),
            "not 32 lines of the check's stderr: %s", text);
  free(env);
  free(text);
  it_cluster_stop(&c);
}

/* Two submits of one request id, the second sent while the first's check
 * runs (the check sleeps first): both answered as the first. */
static void submit_twice_during_check(const it_cluster *c, const char *rid, retry_arg out[2]) {
  pthread_t t[2];
  for (int i = 0; i < 2; i++) {
    out[i] = (retry_arg){.c = c, .rid = rid};
    cr_assert_eq(pthread_create(&t[i], NULL, submit_rid, &out[i]), 0);
    if (i == 0) usleep(300 * 1000);
  }
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
}

Test(graph_plan, a_retry_during_the_model_check_gets_the_first_answer, .timeout = 300) {
  it_cluster c;
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = rk_plan_rates});
  char slow[400], traind_dir[400];
  snprintf(slow, sizeof slow, "%s/slow.sh", c.dir);
  snprintf(traind_dir, sizeof traind_dir, "%s", rk_env("TY_TRAIND"));
  *strrchr(traind_dir, '/') = 0;
  char body[1024];
  snprintf(body, sizeof body, "sleep 2; exec %s/graphcheck/trainyard-graphcheck \"$@\"",
           traind_dir);
  write_script(slow, body);
  const char *const slow_args[] = {"--graphcheck", slow, NULL};
  restart_with(&c, slow_args);
  retry_arg r[2];
  submit_twice_during_check(&c, "r-1", r);
  cr_assert_eq(r[0].rc, 0, "%s", r[0].err);
  cr_assert_eq(r[1].rc, 0, "%s", r[1].err);
  cr_expect_eq(r[1].id, r[0].id, "the retry made job %llu beside %llu", (unsigned long long)r[1].id,
               (unsigned long long)r[0].id);
  char *scrape = it_http_get_metrics(c.metrics_port);
  cr_expect(strstr(scrape, "trainyard_model_checks_total{result=\"ok\"} 1\n"), "%s", scrape);
  free(scrape);
  /* A refused first submit: the retry gets the same refusal. */
  const char *const hanging[] = {"--graphcheck", slow, "--check-timeout-s", "1", NULL};
  restart_with(&c, hanging);
  submit_twice_during_check(&c, "r-2", r);
  for (int i = 0; i < 2; i++) {
    cr_expect_eq(r[i].rc, TY_EINVAL);
    cr_expect_str_eq(r[i].err,
                     "job.graph: model check timed out after 1 s (traind --check-timeout-s)");
  }
  it_cluster_stop(&c);
}

Test(graph_plan, a_model_above_the_memory_limit_is_refused, .timeout = 300) {
#if defined(__SANITIZE_ADDRESS__)
  cr_skip_test("AddressSanitizer needs more address space than the check's limit allows");
#endif
  it_cluster c;
  const char *const limited[] = {"--check-mem", "128M", NULL};
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = limited});
  char path[400], err[512] = "";
  snprintf(path, sizeof path, "%s/big.onnx", c.dir);
  size_t n;
  uint8_t *model = matmul_model(65536, (size_t)784 * 65536 * 4, &n); /* 196 MiB of weights */
  rk_write_file(path, model, n);
  free(model);
  cr_assert_eq(submit_bytes(&c, NULL, 0, path, err, sizeof err), TY_EINVAL);
  cr_assert(
      strstr(err, "job.graph: model check ran out of memory (limit 128 MiB, traind --check-mem): "),
      "%s", err);
  expect_serving(&c);
  unlink(path);
  it_cluster_stop(&c);
}

/* A model_path is read with its submitter's rights (daemon/check.c,
 * run_as): traind runs as root here, and the check's child takes the uid
 * and gid of the request's MUNGE credential, so another user's private
 * model is refused while its owner's submit is accepted. A uid this host
 * has no passwd entry for (a login node's user the controller does not
 * list) once had its check run as traind, root, which read the model. A
 * FIFO is no model. */
Test(graph_plan, a_model_path_is_read_with_its_submitters_rights, .timeout = 300) {
  it_cluster c;
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = rk_plan_rates});
  uid_t alice, bob;
  gid_t alice_g, bob_g;
  char name[32], dir[] = "/tmp/tyit-model-XXXXXX", path[64];
  it_user_add(name, sizeof name, &alice, &alice_g);
  it_user_add(name, sizeof name, &bob, &bob_g);
  cr_assert(mkdtemp(dir));
  cr_assert_eq(chmod(dir, 0755), 0);
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  size_t n, len;
  uint8_t *model = rk_read_all(rk_env("TY_MLP_ONNX"), &n);
  rk_write_file(path, model, n);
  free(model);
  cr_assert_eq(chown(path, alice, alice_g), 0);
  cr_assert_eq(chmod(path, 0600), 0);
  uint8_t *cfg = rk_make_config(STEPS, 0, NULL, &len);
  rk_job j;
  rk_graph_job(&j, 1, 1, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  j.graph.model_path = path;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &j.job;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_buf_reserve(&b, trainyard__submit_job_request__get_packed_size(&req)), 0);
  b.len = trainyard__submit_job_request__pack(&req, b.data);
  char msg[TY_ERR_LEN] = "";
  int rc = it_call_as(&c, bob, bob_g, TY_M_SUBMIT_JOB, &b, msg, sizeof msg);
  cr_expect_eq(rc, TY_EINVAL, "bob's submit of alice's private model: %d %s", rc, msg);
  cr_expect(strstr(msg, "job.graph") && strstr(msg, "ermission denied"), "%s", msg);
  uid_t stranger = 3900000 + (uid_t)(getpid() % 50000);
  while (getpwuid(stranger))
    stranger++;
  rc = it_call_as(&c, stranger, (gid_t)stranger, TY_M_SUBMIT_JOB, &b, msg, sizeof msg);
  cr_expect_eq(rc, TY_EINVAL, "uid %u (no passwd entry) submits alice's private model: %d %s",
               (unsigned)stranger, rc, msg);
  cr_expect(strstr(msg, "job.graph") && strstr(msg, "ermission denied"), "%s", msg);
  rc = it_call_as(&c, alice, alice_g, TY_M_SUBMIT_JOB, &b, msg, sizeof msg);
  cr_expect_eq(rc, 0, "alice's submit of her own model: %d %s", rc, msg);
  ty_buf_close(&b);
  /* A FIFO for a model once held a check, one of the few every user's
   * submits share, until its timeout (120 s): refused at once now. */
  char fifo[80];
  snprintf(fifo, sizeof fifo, "%s/pipe.onnx", dir);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  cr_assert_eq(chown(fifo, alice, alice_g), 0);
  j.graph.model_path = fifo;
  ty_buf_init(&b);
  cr_assert_eq(ty_buf_reserve(&b, trainyard__submit_job_request__get_packed_size(&req)), 0);
  b.len = trainyard__submit_job_request__pack(&req, b.data);
  rc = it_call_as(&c, alice, alice_g, TY_M_SUBMIT_JOB, &b, msg, sizeof msg);
  cr_expect_eq(rc, TY_EINVAL, "a FIFO as the model: %d %s", rc, msg);
  cr_expect(strstr(msg, "job.graph.model_path: ") && strstr(msg, "pipe.onnx: not a regular file"),
            "%s", msg);
  ty_buf_close(&b);
  unlink(fifo);
  free(cfg);
  unlink(path);
  rmdir(dir);
  it_cluster_stop(&c);
}

typedef struct check_tally {
  int answered, status;
  char why[TY_ERR_LEN];
} check_tally;

static void on_submit_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *msg, bool final,
                             void *ud) {
  (void)c;
  check_tally *t = ud;
  if (!final) return;
  t->answered++;
  t->status = status;
  snprintf(t->why, sizeof t->why, "%s", msg && msg->message ? msg->message : "");
}

/* One user has at most 8 models checked (queued or running) at once: one
 * user's slow checks once filled the queue that every user's graph
 * submits share. Nine submits on one connection are handled in order
 * while the checks hang: the ninth is refused naming the user. */
Test(graph_plan, one_user_cannot_fill_the_model_checks, .timeout = 120) {
  it_cluster c;
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = rk_plan_rates});
  char slow[400];
  snprintf(slow, sizeof slow, "%s/hang.sh", c.dir);
  write_script(slow, "exec sleep 60"); /* killed with its check at the stop */
  const char *const hang[] = {"--graphcheck", slow, NULL};
  restart_with(&c, hang);
  size_t len;
  uint8_t *cfg = rk_make_config(10, 0, NULL, &len);
  rk_job j;
  rk_graph_job(&j, 1, 1, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &j.job;
  size_t n = trainyard__submit_job_request__get_packed_size(&req);
  uint8_t *buf = malloc(n);
  trainyard__submit_job_request__pack(&req, buf);
  ty_rpc_client *cl = it_client(&c);
  check_tally t = {0};
  for (int i = 0; i < 9; i++)
    cr_assert_eq(
        ty_rpc_client_start(cl, TY_M_SUBMIT_JOB, buf, n, 60000, on_submit_answer, &t, NULL), 0);
  while (!t.answered)
    cr_assert_neq(uv_run(ty_rpc_client_loop(cl), UV_RUN_ONCE), 0);
  cr_expect_eq(t.answered, 1, "only the ninth is answered while the checks hang");
  cr_expect_eq(t.status, TY_ESTATE, "%s", t.why);
  cr_expect(strstr(t.why, "has 8 models being checked already, as many as one user may"), "%s",
            t.why);
  ty_rpc_client_close(cl);
  free(buf);
  free(cfg);
  it_cluster_stop(&c);
}

/* ---- gradient clipping and plans ------------------------------------------------------ */
/* The MLP's config with max_grad_norm set (malloc'd bytes). */
static uint8_t *clip_config(size_t *out_len) {
  size_t n;
  uint8_t *raw = rk_make_config(STEPS, 0, NULL, &n);
  Trainyard__TrainConfig *m = trainyard__train_config__unpack(NULL, n, raw);
  cr_assert(m);
  m->max_grad_norm = 1.0f;
  *out_len = trainyard__train_config__get_packed_size(m);
  uint8_t *out = malloc(*out_len + 1);
  trainyard__train_config__pack(m, out);
  trainyard__train_config__free_unpacked(m, NULL);
  free(raw);
  return out;
}

/* Clipping runs on every CPU plan: a clipping job whose tensor-parallel
 * plan splits the weights is accepted at submit, also when the plan comes
 * from the controller's cache (its key does not know the clipping), and
 * its ranks train it to the end. */
Test(graph_plan, clipping_with_a_plan_that_splits_weights_runs, .timeout = 300) {
  rk_full_pass_only();
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.traind_args = rk_plan_rates});
  size_t len;
  uint8_t *cfg = clip_config(&len);
  ty_rpc_client *cl = it_client(&c);
  for (int k = 0; k < 2; k++) {
    rk_job j;
    rk_graph_job(&j, 1, 2, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_TENSOR);
    j.job.name = "clip-tp";
    uint64_t id = 0;
    char err[512] = "";
    cr_assert_eq(it_submit_job(cl, &j.job, &id, err, sizeof err), 0, "submit %d: %s", k, err);
    rk_expect_completed(&c, id);
  }
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
