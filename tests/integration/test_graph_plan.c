/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Planned graph jobs through the controller (issues 10 and 13): a real
 * traind checks and plans each graph job in its child process, real
 * workers write the plan into the job's directory and start trainrun
 * --plan, and `trainctl plan` shows what a job would get.
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
 *   - `trainctl plan` with --mesh (no controller) and without (PlanJob):
 *     the text, the JSON document, the cache, and each bad input's message
 *     and exit code.
 *
 * The cost model's rates are fixed on traind's command line and in
 * trainrun's, so plans do not depend on this machine's speed.
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

static const char *const rates[] = {
    "--plan-device-flops", "1e11", "--plan-intra-gbps", "10", "--plan-inter-gbps", "1.25", NULL};

/* `trainctl submit FILE`: the job id. */
static uint64_t submit_file(const it_cluster *c, const char *file) {
  char *out = NULL;
  int code = it_trainctl(c, &out, (const char *const[]){"submit", "--quiet", file, NULL});
  cr_assert_eq(code, 0, "trainctl submit %s exited %d (logs in %s)", file, code, c->dir);
  uint64_t id = strtoull(out, NULL, 10);
  free(out);
  cr_assert_gt(id, 0u);
  return id;
}

static void expect_completed(const it_cluster *c, uint64_t id) {
  ty_rpc_client *cl = it_client(c);
  Trainyard__GetJobResponse *r = it_wait_job(cl, id, 0, 180000);
  cr_assert(r, "job %llu did not end (logs in %s)", (unsigned long long)id, c->dir);
  cr_assert_eq(r->job->state, TRAINYARD__JOB_STATE__JOB_COMPLETED, "job ended %d: %s (logs in %s)",
               r->job->state, r->job->reason, c->dir);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
}

static char *show(const it_cluster *c, uint64_t id) {
  char num[32], *out = NULL;
  snprintf(num, sizeof num, "%llu", (unsigned long long)id);
  cr_assert_eq(it_trainctl(c, &out, (const char *const[]){"show", num, NULL}), 0);
  return out;
}

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
  uint64_t id = submit_file(c, job);
  expect_completed(c, id);
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
  it_cluster_start_with(&c, 1, 2, &(it_options){.traind_args = rates});
  uint64_t id = expect_planned(&c, 1, 2, TRAINYARD__PARALLELISM__PARALLELISM_TENSOR, "tp");
  char *text = show(&c, id);
  cr_assert(strstr(text, "Plan: the tensor parallel plan, mesh 1x2 on 1 x 2 devices"), "%s", text);
  cr_assert(strstr(text, "predicted step ") && strstr(text, " per device of 16.0 GiB"), "%s", text);
  free(text);
  /* The plan is stored with the job. */
  kill(c.traind, SIGTERM);
  cr_assert_eq(rk_wait_exit(c.traind), 0);
  it_controller_start(&c);
  text = show(&c, id);
  cr_assert(strstr(text, "Plan: the tensor parallel plan"), "after a restart:\n%s", text);
  free(text);
  it_cluster_stop(&c);
}

Test(graph_plan, data_x_tensor_on_four_ranks_through_submit, .timeout = 300) {
  it_cluster c;
  it_cluster_start_with(&c, 2, 2, &(it_options){.traind_args = rates});
  expect_planned(&c, 2, 2, TRAINYARD__PARALLELISM__PARALLELISM_GRID, "grid");
  it_cluster_stop(&c);
}

Test(graph_plan, default_parallelism_is_planned, .timeout = 300) {
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.traind_args = rates});
  uint64_t id = expect_planned(&c, 1, 2, TRAINYARD__PARALLELISM__PARALLELISM_AUTO, "auto");
  char *text = show(&c, id);
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
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = rates});
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
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = rates});
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
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = rates});
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
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = rates});
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

/* ---- trainctl plan ------------------------------------------------------------------- */

static int plan_cmd(const it_cluster *c, char **out, char **err, const char *const *args) {
  const char *argv[24] = {"plan"};
  size_t k = 1;
  for (size_t i = 0; args[i] && k < 23; i++)
    argv[k++] = args[i];
  argv[k] = NULL;
  return it_trainctl_err(c, out, err, argv);
}

static void expect_plan_error(const it_cluster *c, int code, const char *want,
                              const char *const *args) {
  char *out = NULL, *err = NULL;
  int got = plan_cmd(c, &out, &err, args);
  cr_assert_eq(got, code, "trainctl plan %s ... exited %d, not %d: %s", args[0], got, code, err);
  cr_assert(strstr(err, want), "trainctl plan %s ...: \"%s\" not in: %s", args[0], want, err);
  free(out);
  free(err);
}

/* One PlanJob call with a raw payload: its status and message. */
static int plan_job_rpc(const it_cluster *c, const uint8_t *p, size_t n, char *msg, size_t len) {
  ty_rpc_client *cl = it_client(c);
  ty_rpc_result res;
  int rc = ty_rpc_client_call(cl, TY_M_PLAN_JOB, p, n, 10000, &res);
  if (rc == 0) rc = res.status;
  snprintf(msg, len, "%s", res.message ? res.message : "");
  ty_rpc_result_close(&res);
  ty_rpc_client_close(cl);
  return rc;
}

/* The MLP job on 1 x 2 devices with the config's pipeline knobs set. */
static void write_pipeline_job(const char *path, const char *stages, const char *micro) {
  size_t len;
  uint8_t *cfg = rk_make_pipeline_config(10, stages, micro, NULL, &len);
  rk_write_job(path, "mlp-pp", 1, 2, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_AUTO);
  free(cfg);
}

/* `trainctl plan` shows the stages a config asks for, here and from the
 * controller, and names bad pipeline knobs. */
static void expect_pipeline_plans(const it_cluster *c) {
  char job[400], *out = NULL, *err = NULL;
  snprintf(job, sizeof job, "%s/pp.job.pb", c->dir);
  write_pipeline_job(job, "2", "4");
  cr_assert_eq(plan_cmd(c, &out, &err, (const char *const[]){"--mesh", "1x2", job, NULL}), 0, "%s",
               err);
  cr_assert(
      strstr(out, "pipeline: 2 stages of mesh 1x1, 4 micro-batches of 16 (global batch 64)") &&
          strstr(out, "no pipeline") && strstr(out, "IN FLIGHT"),
      "%s", out);
  free(out), free(err);
  cr_assert_eq(plan_cmd(c, &out, &err, (const char *const[]){job, NULL}), 0, "%s", err);
  cr_assert(strstr(out, "planned by the controller") && strstr(out, "pipeline: 2 stages"), "%s",
            out);
  free(out), free(err);
  /* Issue 18: tensor mode with stages: each stage's own intra-operator
   * plan, its weights split over the stage's two devices. */
  cr_assert_eq(
      plan_cmd(c, &out, &err,
               (const char *const[]){"--mesh", "1x4", "--parallelism", "tensor", job, NULL}),
      0, "%s", err);
  cr_assert(strstr(out, "pipeline: 2 stages of mesh 1x2") && strstr(out, "column split") &&
                !strstr(out, "batch split"),
            "%s", out);
  free(out), free(err);
  write_pipeline_job(job, "40", "");
  expect_plan_error(c, 5, "pipeline_stages: 40 stages do not divide the 2 devices",
                    (const char *const[]){"--mesh", "1x2", job, NULL});
  expect_plan_error(c, 5, "pipeline_stages: 40 stages do not divide the 2 devices",
                    (const char *const[]){job, NULL});
  write_pipeline_job(job, "2", "3");
  expect_plan_error(c, 5, "config.micro_batches: 3 does not divide config.batch_size 64",
                    (const char *const[]){"--mesh", "1x2", job, NULL});
  write_pipeline_job(job, "some", "");
  expect_plan_error(c, 5, "config.pipeline_stages: expected \"auto\" or a count",
                    (const char *const[]){job, NULL});
}

/* A 4-stage pipeline (the wide model's four weight layers) on 2 workers
 * x 2 slots: the controller plans and dispatches it, every rank runs its
 * stage, the job completes. */
Test(graph_plan, four_pipeline_stages_on_two_workers_run_to_completion, .timeout = 300) {
  it_cluster c;
  it_cluster_start_with(&c, 2, 2, &(it_options){.traind_args = rates});
  char path[400];
  snprintf(path, sizeof path, "%s/pp4.job.pb", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_pipeline_config(6, "4", "4", NULL, &len);
  rk_job j;
  rk_graph_job(&j, 2, 2, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_AUTO);
  j.graph.model_path = (char *)rk_env("TY_WIDE_ONNX");
  j.job.name = "wide-pp4";
  size_t n = trainyard__job__get_packed_size(&j.job);
  uint8_t *b = malloc(n + 1);
  trainyard__job__pack(&j.job, b);
  rk_write_file(path, b, n);
  free(b);
  free(cfg);
  uint64_t id = submit_file(&c, path);
  expect_completed(&c, id);
  char *text = show(&c, id);
  cr_assert(strstr(text, "Plan: 4 pipeline stages of mesh 1x1, 4 micro-batches") &&
                strstr(text, "step 6/6"),
            "%s", text);
  free(text);
  it_cluster_stop(&c);
}

Test(graph_plan, trainctl_plan_with_and_without_the_controller, .timeout = 300) {
  it_cluster c;
  it_cluster_start_with(&c, 0, 1, &(it_options){.traind_args = rates});
  char job[400], cmdjob[400];
  snprintf(job, sizeof job, "%s/job.pb", c.dir);
  size_t len;
  uint8_t *cfg = rk_make_config(10, 0, NULL, &len);
  rk_write_job(job, "mlp", 1, 2, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_TENSOR);
  free(cfg);
  /* Here, for a mesh. */
  char *out = NULL, *err = NULL;
  cr_assert_eq(plan_cmd(&c, &out, &err, (const char *const[]){"--mesh", "1x2", job, NULL}), 0, "%s",
               err);
  cr_assert(strstr(out, "job mlp: parallelism tensor, 1 node x 2 devices, planned here"), "%s",
            out);
  cr_assert(strstr(out, "ALTERNATIVE") && strstr(out, "data parallel ") &&
                strstr(out, "chosen                     1x2"),
            "%s", out);
  cr_assert(strstr(out, "column split (axis 1)") && strstr(out, "row split (axis 1)"), "%s", out);
  cr_assert(!strstr(out, "a data job runs without a plan"), "%s", out);
  free(out), free(err);
  /* A data job's plan is the planner's view of it: it runs without one. */
  cr_assert_eq(plan_cmd(&c, &out, &err,
                        (const char *const[]){"--mesh", "1x2", "--parallelism", "data", job, NULL}),
               0, "%s", err);
  cr_assert(strstr(out, "parallelism data, 1 node x 2 devices, planned here\n(a data job runs "
                        "without a plan"),
            "%s", out);
  free(out), free(err);
  cr_assert_eq(plan_cmd(&c, &out, &err,
                        (const char *const[]){"--json", "--mesh", "2x2", "--parallelism", "grid",
                                              job, NULL}),
               0, "%s", err);
  const char *keys[] = {"{\"plan\":{",
                        "\"ops\":[",
                        "\"sharding\":",
                        "\"collectives\":[",
                        "\"kind\":\"all-reduce\"",
                        "\"mesh_axis\":",
                        "\"phase\":\"",
                        "\"predicted_step_s\":",
                        "\"memory_per_device_bytes\":",
                        "\"alternatives\":[",
                        "\"fits\":true",
                        "\"search_ms\":"};
  for (size_t i = 0; i < TY_ARRAY_LEN(keys); i++)
    cr_assert(strstr(out, keys[i]), "%s not in %s", keys[i], out);
  free(out), free(err);
  /* The controller, for the resources the job asks for; then from its cache. */
  cr_assert_eq(plan_cmd(&c, &out, &err, (const char *const[]){job, NULL}), 0, "%s", err);
  cr_assert(strstr(out, "1 node x 2 devices, planned by the controller\n"), "%s", out);
  free(out), free(err);
  cr_assert_eq(plan_cmd(&c, &out, &err, (const char *const[]){job, NULL}), 0, "%s", err);
  cr_assert(strstr(out, "planned by the controller (cached)"), "%s", out);
  free(out), free(err);
  /* Bad input, here and there. */
  expect_plan_error(&c, 2, "--mesh: 0x2 is a mesh of 0 devices",
                    (const char *const[]){"--mesh", "0x2", job, NULL});
  expect_plan_error(&c, 2, "--device-mem: only with --mesh",
                    (const char *const[]){"--device-mem", "1K", job, NULL});
  expect_plan_error(
      &c, 5,
      "job.graph: cannot plan it for 1 node x 2 devices: cluster.device_mem_bytes: the "
      "tensor parallel plan does not fit in 1.0 KiB per device",
      (const char *const[]){"--mesh", "1x2", "--device-mem", "1K", job, NULL});
  /* 3 devices split a batch of 64 unevenly under a plan; a data job, which
   * runs without one, needs equal shares. */
  cr_assert_eq(plan_cmd(&c, &out, &err, (const char *const[]){"--mesh", "1x3", job, NULL}), 0, "%s",
               err);
  cr_assert(strstr(out, "data parallel              1x3"), "%s", out);
  free(out), free(err);
  expect_plan_error(&c, 5,
                    "job.graph.train_config.batch_size: 64 is not divisible by the 3 ranks, as "
                    "data parallelism without a plan needs (each rank trains an equal share); a "
                    "plan (parallelism auto) splits it unevenly",
                    (const char *const[]){"--mesh", "1x3", "--parallelism", "data", job, NULL});
  /* --model with submit's --mem: the controller's device memory is the
   * job's memory per rank less what a trainrun rank takes for itself
   * (traind --plan-rank-reserve, 256M by default), as at submit; a job
   * that leaves nothing for the model is refused with the least to ask. */
  char cfgpath[400];
  snprintf(cfgpath, sizeof cfgpath, "%s/mlp.config.pb", c.dir);
  cfg = rk_make_config(10, 0, NULL, &len);
  rk_write_file(cfgpath, cfg, len);
  free(cfg);
  expect_plan_error(
      &c, 5,
      "job.graph: cannot plan it: job.resources.mem_per_node gives each rank 250.0 MiB (2 per "
      "node), and a trainrun rank uses about 256.0 MiB of that before its model (traind "
      "--plan-rank-reserve): ask for more than 256.0 MiB per rank (--mem)",
      (const char *const[]){"--model", rk_env("TY_MLP_ONNX"), "--config", cfgpath,
                            "--ntasks-per-node", "2", "--mem", "500M", NULL});
  expect_plan_error(&c, 5,
                    "no plan fits in 1.0 MiB per device (the job's --mem per rank less the 256.0 "
                    "MiB a trainrun rank uses before its model, traind --plan-rank-reserve); the "
                    "smallest plan needs ",
                    (const char *const[]){"--model", rk_env("TY_MLP_ONNX"), "--config", cfgpath,
                                          "--ntasks-per-node", "2", "--mem", "514M", NULL});
  cr_assert_eq(plan_cmd(&c, &out, &err,
                        (const char *const[]){"--model", rk_env("TY_MLP_ONNX"), "--config", cfgpath,
                                              "--ntasks-per-node", "2", "--mem", "600M", NULL}),
               0, "%s", err);
  cr_assert(strstr(out, "of 44.0 MiB"), "%s", out);
  free(out), free(err);
  /* Without --mem, the queue's --default-mem is the job's memory, which its
   * plan must fit (docs/security.md, "Limits for shared nodes"). */
  cr_assert_eq(
      it_trainctl(&c, NULL,
                  (const char *const[]){"queue", "create", "q500", "--default-mem", "500M", NULL}),
      0);
  const char *in_q500[] = {
      "--model", rk_env("TY_MLP_ONNX"), "--config", cfgpath, "--ntasks-per-node", "2", "-p", "q500",
      NULL};
  char *sub[12] = {"submit"};
  for (size_t i = 0; in_q500[i]; i++)
    sub[i + 1] = (char *)in_q500[i];
  cr_assert_eq(it_trainctl_err(&c, &out, &err, (const char *const *)sub), 5, "%s", err);
  cr_assert(strstr(err, "mem_per_node gives each rank 250.0 MiB (2 per node)"), "%s", err);
  free(out), free(err);
  /* trainctl plan -p: the queue's default as a submit gets it; a queue a
   * submit would be refused is refused too. */
  expect_plan_error(&c, 5, "mem_per_node gives each rank 250.0 MiB (2 per node)", in_q500);
  const char *in_none[] = {"--model", rk_env("TY_MLP_ONNX"), "--config", cfgpath, "-p", "nosuch",
                           NULL};
  expect_plan_error(&c, 5, "job.queue: unknown queue \"nosuch\"", in_none);
  cfg = rk_make_config(10, 0, NULL, &len);
  rk_write_job(job, "mlp3", 1, 3, cfg, len, TRAINYARD__PARALLELISM__PARALLELISM_DATA);
  free(cfg);
  expect_plan_error(&c, 5,
                    "job.graph.train_config.batch_size: 64 is not divisible by the 3 ranks, as "
                    "data parallelism without a plan needs",
                    (const char *const[]){job, NULL});
  snprintf(cmdjob, sizeof cmdjob, "%s/cmd.pb", c.dir);
  rk_write_file(cmdjob, (const uint8_t *)"\x32\x04\x0a\x02ls", 6); /* Job{command{argv:"ls"}} */
  expect_plan_error(&c, 5, "not a graph job", (const char *const[]){cmdjob, NULL});
  /* PlanJob itself refuses what trainctl would not send. */
  char msg[512];
  cr_assert_eq(plan_job_rpc(&c, (const uint8_t *)"\xff\xff", 2, msg, sizeof msg), TY_EPROTO);
  cr_assert_str_eq(msg, "payload is not a PlanJobRequest carrying a job");
  cr_assert_eq(plan_job_rpc(&c, (const uint8_t *)"\x0a\x06\x32\x04\x0a\x02ls", 8, msg, sizeof msg),
               TY_EINVAL);
  cr_assert_str_eq(msg, "job.graph: only graph jobs have plans; this one runs a command");
  expect_pipeline_plans(&c);
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
  it_cluster c;
  it_cluster_start_with(&c, 1, 2, &(it_options){.traind_args = rates});
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
    expect_completed(&c, id);
  }
  free(cfg);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
