/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for cli/convert.c: requests built from plain structs decode as
 * the right messages; job files are validated; answers decode into plain
 * structs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "proto/train_config.pb-c.h"
#include "proto/trainyard.pb-c.h"

static char *write_tmp(const void *data, size_t n) {
  static char path[64];
  strcpy(path, "/tmp/ty-cli-test-XXXXXX");
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, data, n), (ssize_t)n);
  close(fd);
  return path;
}

Test(convert, command_job_encodes_a_submit_request) {
  char *argv[] = {"python", "train.py"}, *env[] = {"A=1"};
  ty_job_spec j = {.name = "n",
                   .queue = "gpu",
                   .user = "alice",
                   .cwd = "/w",
                   .priority = -2,
                   .time_limit_s = 60,
                   .nodes = 2,
                   .tasks_per_node = 4,
                   .gpus_per_node = 1,
                   .cpus_per_task = 3,
                   .mem_per_node = 1024,
                   .argv = argv,
                   .argc = 2,
                   .env = env,
                   .envc = 1};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_encode_submit(&j, NULL, &b), 0);
  Trainyard__SubmitJobRequest *r = trainyard__submit_job_request__unpack(NULL, b.len, b.data);
  cr_assert(r && r->job);
  cr_assert_str_eq(r->job->name, "n");
  cr_assert_str_eq(r->job->queue, "gpu");
  cr_assert_str_eq(r->job->user, "alice");
  cr_assert_eq(r->job->priority, -2);
  cr_assert_eq(r->job->time_limit_s, 60u);
  cr_assert_eq(r->job->resources->nodes, 2u);
  cr_assert_eq(r->job->resources->tasks_per_node, 4u);
  cr_assert_eq(r->job->resources->gpus_per_node, 1u);
  cr_assert_eq(r->job->resources->cpus_per_task, 3u);
  cr_assert_eq(r->job->resources->mem_per_node, 1024u);
  cr_assert_eq(r->job->kind_case, TRAINYARD__JOB__KIND_COMMAND);
  cr_assert_eq(r->job->command->n_argv, 2u);
  cr_assert_str_eq(r->job->command->argv[1], "train.py");
  cr_assert_str_eq(r->job->command->env[0], "A=1");
  cr_assert_str_eq(r->job->command->cwd, "/w");
  trainyard__submit_job_request__free_unpacked(r, NULL);
  ty_buf_close(&b);

  ty_job_spec empty = {0}; /* unset strings encode as "" */
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_encode_submit(&empty, NULL, &b), 0);
  ty_buf_close(&b);
}

static ty_buf encoded_job(const char *user) {
  char *argv[] = {"true"};
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.n_argv = 1, cmd.argv = argv;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND, job.command = &cmd;
  job.name = "from-file";
  if (user) job.user = (char *)user;
  ty_buf b;
  ty_buf_init(&b);
  ty_buf_reserve(&b, trainyard__job__get_packed_size(&job));
  b.len = trainyard__job__pack(&job, b.data);
  return b;
}

static Trainyard__SubmitJobRequest *load(const char *path, const char *user, char *err,
                                         size_t err_len, int *rc) {
  ty_buf out;
  ty_buf_init(&out);
  *rc = ty_cli_load_job_file(path, user, NULL, &out, err, err_len);
  Trainyard__SubmitJobRequest *r =
      *rc ? NULL : trainyard__submit_job_request__unpack(NULL, out.len, out.data);
  ty_buf_close(&out);
  return r;
}

Test(convert, a_submit_is_a_graph_job_when_it_names_a_model) {
  char *argv[] = {"true"};
  ty_job_spec cmd = {.name = "c", .argv = argv, .argc = 1, .nodes = 1, .tasks_per_node = 1},
              graph = {.name = "g",
                       .kind = TY_JOB_KIND_GRAPH,
                       .model_path = "/m.onnx",
                       .nodes = 1,
                       .tasks_per_node = 1};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_encode_submit(&cmd, "r1", &b), 0);
  cr_expect(!ty_cli_submit_is_graph(b.data, b.len));
  b.len = 0;
  cr_assert_eq(ty_cli_encode_submit(&graph, "r2", &b), 0);
  cr_expect(ty_cli_submit_is_graph(b.data, b.len));
  cr_expect(!ty_cli_submit_is_graph((const uint8_t *)"\xff\xff", 2), "garbage is no graph job");
  ty_buf_close(&b);
}

Test(job_file, fills_user_only_when_empty) {
  ty_buf raw = encoded_job(NULL);
  char *path = write_tmp(raw.data, raw.len);
  char err[TY_ERR_LEN] = "";
  int rc;
  Trainyard__SubmitJobRequest *r = load(path, "alice", err, sizeof err, &rc);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_str_eq(r->job->user, "alice");
  cr_assert_str_eq(r->job->name, "from-file");
  cr_assert_str_eq(r->job->command->argv[0], "true");
  trainyard__submit_job_request__free_unpacked(r, NULL);
  unlink(path);
  ty_buf_close(&raw);

  raw = encoded_job("bob");
  path = write_tmp(raw.data, raw.len);
  r = load(path, "alice", err, sizeof err, &rc);
  cr_assert_eq(rc, 0);
  cr_assert_str_eq(r->job->user, "bob");
  trainyard__submit_job_request__free_unpacked(r, NULL);
  unlink(path);
  ty_buf_close(&raw);
}

/* A graph job file (deploy/graph-job.sh's) naming model and a config
 * whose data directory is dir ("" for none): of an array x.npy, or with
 * named (Fashion-MNIST: no files listed). */
static ty_buf graph_job(const char *model, const char *dir, bool named) {
  Trainyard__DataArray x = TRAINYARD__DATA_ARRAY__INIT;
  x.path = "x.npy", x.input = "x";
  Trainyard__DataArray *train[] = {&x};
  Trainyard__Dataset ds = TRAINYARD__DATASET__INIT;
  ds.dir = (char *)dir, ds.n_train = named ? 0 : 1, ds.train = train;
  if (named) ds.name = "fashion-mnist";
  Trainyard__TrainConfig cfg = TRAINYARD__TRAIN_CONFIG__INIT;
  cfg.loss_case = TRAINYARD__TRAIN_CONFIG__LOSS_LOSS_OUTPUT, cfg.loss_output = "loss";
  cfg.dataset = &ds;
  uint8_t cbytes[512];
  size_t clen = trainyard__train_config__pack(&cfg, cbytes);
  Trainyard__GraphSpec g = TRAINYARD__GRAPH_SPEC__INIT;
  g.model_path = (char *)model, g.train_config = (ProtobufCBinaryData){clen, cbytes};
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.kind_case = TRAINYARD__JOB__KIND_GRAPH, job.graph = &g;
  ty_buf b;
  ty_buf_init(&b);
  ty_buf_reserve(&b, trainyard__job__get_packed_size(&job));
  b.len = trainyard__job__pack(&job, b.data);
  return b;
}

/* The loaded file's model path and config dataset.dir (malloc'd). */
static void graph_paths(const char *model, const char *dir, bool named, char **out_model,
                        char **out_dir) {
  ty_buf raw = graph_job(model, dir, named);
  char *path = write_tmp(raw.data, raw.len);
  char err[TY_ERR_LEN] = "";
  int rc;
  Trainyard__SubmitJobRequest *r = load(path, "alice", err, sizeof err, &rc);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(r->job->kind_case, TRAINYARD__JOB__KIND_GRAPH);
  const ProtobufCBinaryData *c = &r->job->graph->train_config;
  Trainyard__TrainConfig *cfg = trainyard__train_config__unpack(NULL, c->len, c->data);
  cr_assert_not_null(cfg, "the config no longer decodes");
  cr_assert_str_eq(cfg->loss_output, "loss", "the rest of the config is kept");
  *out_model = strdup(r->job->graph->model_path);
  *out_dir = strdup(cfg->dataset->dir);
  trainyard__train_config__free_unpacked(cfg, NULL);
  trainyard__submit_job_request__free_unpacked(r, NULL);
  unlink(path);
  ty_buf_close(&raw);
}

/* Relative paths in a graph job file are the submitter's, as for submit
 * --model --config: from trainctl's working directory (the ranks run in
 * their worker's job directory); absolute ones stay. */
Test(job_file, graph_job_relative_paths_are_the_submitters) {
  char here[4096], want[4200];
  cr_assert_not_null(getcwd(here, sizeof here));
  char *model, *dir;
  graph_paths("m.onnx", "", false, &model, &dir);
  snprintf(want, sizeof want, "%s/m.onnx", here);
  cr_assert_str_eq(model, want);
  cr_assert_str_eq(dir, here, "an unset dataset.dir becomes the submit directory");
  free(model), free(dir);
  graph_paths("models/m.onnx", "data", false, &model, &dir);
  snprintf(want, sizeof want, "%s/models/m.onnx", here);
  cr_assert_str_eq(model, want);
  snprintf(want, sizeof want, "%s/data", here);
  cr_assert_str_eq(dir, want);
  free(model), free(dir);
  graph_paths("/abs/m.onnx", "/abs/data", false, &model, &dir);
  cr_assert_str_eq(model, "/abs/m.onnx");
  cr_assert_str_eq(dir, "/abs/data");
  free(model), free(dir);
  /* A named dataset's relative dir too; its default ("") stays. */
  graph_paths("m.onnx", "fmnist", true, &model, &dir);
  snprintf(want, sizeof want, "%s/fmnist", here);
  cr_assert_str_eq(dir, want);
  free(model), free(dir);
  graph_paths("m.onnx", "", true, &model, &dir);
  cr_assert_str_eq(dir, "");
  free(model), free(dir);
}

Test(job_file, garbage_is_rejected_naming_the_file) {
  static const unsigned char garbage[] = {0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
  char *path = write_tmp(garbage, sizeof garbage);
  char err[TY_ERR_LEN] = "";
  int rc;
  cr_assert_null(load(path, "u", err, sizeof err, &rc));
  cr_assert_eq(rc, TY_EPROTO);
  char want[128];
  snprintf(want, sizeof want, "%s: not a valid trainyard.Job message (protobuf decode failed)",
           path);
  cr_assert_str_eq(err, want);
  unlink(path);
}

Test(job_file, text_format_gets_a_hint) {
  static const char text[] = "name: \"x\"\ncommand { argv: \"true\" }\n";
  char *path = write_tmp(text, sizeof text - 1);
  char err[TY_ERR_LEN] = "";
  int rc;
  cr_assert_null(load(path, "u", err, sizeof err, &rc));
  cr_assert_eq(rc, TY_EPROTO);
  cr_assert(strstr(err, "not a valid trainyard.Job message (protobuf decode failed)"), "%s", err);
  cr_assert(strstr(err, "protoc --encode=trainyard.Job"), "%s", err);
  unlink(path);
}

Test(job_file, empty_and_missing_files) {
  char *path = write_tmp("", 0);
  char err[TY_ERR_LEN] = "";
  int rc;
  cr_assert_null(load(path, "u", err, sizeof err, &rc));
  cr_assert_eq(rc, TY_EPROTO);
  cr_assert(strstr(err, "empty file"), "%s", err);
  unlink(path);
  cr_assert_null(load("/nonexistent/job.pb", "u", err, sizeof err, &rc));
  cr_assert_eq(rc, TY_EIO);
  cr_assert_str_eq(err, "/nonexistent/job.pb: No such file or directory");
  cr_assert_null(load("/tmp", "u", err, sizeof err, &rc)); /* a directory */
  cr_assert_neq(rc, 0);
  cr_assert(strstr(err, "/tmp: "), "%s", err);
}

Test(convert, requests_decode_as_their_messages) {
  ty_buf b;
  ty_buf_init(&b);
  ty_cli_ls_args ls = {.states = {TY_JOB_RUNNING}, .nstates = 1, .user = "bob"};
  cr_assert_eq(ty_cli_encode_list_jobs(&ls, &b), 0);
  Trainyard__ListJobsRequest *l = trainyard__list_jobs_request__unpack(NULL, b.len, b.data);
  cr_assert(l);
  cr_assert_eq(l->n_states, 1u);
  cr_assert_eq(l->states[0], TRAINYARD__JOB_STATE__JOB_RUNNING);
  cr_assert_str_eq(l->user, "bob");
  cr_assert_str_eq(l->queue, "");
  trainyard__list_jobs_request__free_unpacked(l, NULL);
  ty_buf_close(&b);

  /* ls --all bounds the ended jobs; --limit N is the newest N of all. */
  const char *argv_all[] = {"--all", NULL}, *argv_lim[] = {"--all", "--limit", "7", NULL};
  const char *const *cases[] = {argv_all, argv_lim};
  for (size_t i = 0; i < 2; i++) {
    ty_cli_ls_args a;
    char err[TY_ERR_LEN];
    cr_assert_eq(ty_cli_parse_ls(i ? 3 : 1, (char **)cases[i], &a, err, sizeof err), 0, "%s", err);
    ty_buf_init(&b);
    cr_assert_eq(ty_cli_encode_list_jobs(&a, &b), 0);
    l = trainyard__list_jobs_request__unpack(NULL, b.len, b.data);
    cr_assert(l);
    cr_expect_eq(l->limit, i ? 7u : 0u);
    cr_expect_eq(l->ended_limit, i ? 0u : TY_CLI_LS_ENDED_DEFAULT);
    trainyard__list_jobs_request__free_unpacked(l, NULL);
    ty_buf_close(&b);
    ty_cli_ls_args_close(&a);
  }
  ty_cli_ls_args bad;
  char err[TY_ERR_LEN];
  cr_assert_neq(ty_cli_parse_ls(2, (char *[]){"--limit", "0", NULL}, &bad, err, sizeof err), 0);
  cr_expect(strstr(err, "--limit"), "%s", err);

  ty_buf_init(&b);
  cr_assert_eq(ty_cli_encode_cancel(
                   (ty_job_ref[]){{.id = 3}, {.id = 4, .has_task = true, .task = 7}}, 2, &b),
               0);
  Trainyard__CancelJobRequest *c = trainyard__cancel_job_request__unpack(NULL, b.len, b.data);
  cr_assert(c && c->n_refs == 2 && c->refs[0]->job_id == 3 && !c->refs[0]->has_task);
  cr_assert(c->refs[1]->job_id == 4 && c->refs[1]->has_task && c->refs[1]->task == 7);
  trainyard__cancel_job_request__free_unpacked(c, NULL);
  ty_buf_close(&b);

  ty_buf_init(&b);
  cr_assert_eq(ty_cli_encode_job_id(77, &b), 0);
  Trainyard__GetTaskLocationsRequest *t =
      trainyard__get_task_locations_request__unpack(NULL, b.len, b.data);
  cr_assert(t && t->job_id == 77);
  trainyard__get_task_locations_request__free_unpacked(t, NULL);
  ty_buf_close(&b);

  ty_buf_init(&b);
  cr_assert_eq(ty_cli_encode_job_ref(&(ty_job_ref){.id = 50, .has_task = true, .task = 9}, &b), 0);
  Trainyard__GetJobRequest *g = trainyard__get_job_request__unpack(NULL, b.len, b.data);
  cr_assert(g && g->job_id == 50 && g->has_task && g->task == 9);
  trainyard__get_job_request__free_unpacked(g, NULL);
  ty_buf_close(&b);

  ty_buf_init(&b);
  cr_assert_eq(ty_cli_encode_read_log(5, 2, 100, true, &b), 0);
  Trainyard__ReadLogRequest *rl = trainyard__read_log_request__unpack(NULL, b.len, b.data);
  cr_assert(rl && rl->job_id == 5 && rl->rank == 2 && rl->offset == 100 && rl->follow);
  trainyard__read_log_request__free_unpacked(rl, NULL);
  ty_buf_close(&b);
}

static ty_buf pack_msg(const ProtobufCMessage *m) {
  ty_buf b;
  ty_buf_init(&b);
  ty_buf_reserve(&b, protobuf_c_message_get_packed_size(m) + 1);
  b.len = protobuf_c_message_pack(m, b.data);
  return b;
}

Test(convert, answers_decode_into_plain_structs) {
  char *argv[] = {"sleep", "9"}, *nodes[] = {"n1"};
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.n_argv = 2, cmd.argv = argv;
  Trainyard__Job spec = TRAINYARD__JOB__INIT;
  spec.name = "s", spec.kind_case = TRAINYARD__JOB__KIND_COMMAND, spec.command = &cmd;
  Trainyard__JobInfo info = TRAINYARD__JOB_INFO__INIT, *infos[] = {&info};
  info.id = 9, info.spec = &spec, info.state = TRAINYARD__JOB_STATE__JOB_RUNNING;
  info.n_nodes = 1, info.nodes = nodes, info.start_time_ms = 5;
  Trainyard__ListJobsResponse lr = TRAINYARD__LIST_JOBS_RESPONSE__INIT;
  lr.n_jobs = 1, lr.jobs = infos;
  ty_buf b = pack_msg(&lr.base);
  ty_cli_jobinfo *js = NULL;
  size_t n = 0;
  cr_assert_eq(ty_cli_decode_list_jobs(b.data, b.len, &js, &n, NULL), 0);
  cr_assert_eq(n, 1u);
  cr_assert_eq(js[0].id, 9u);
  cr_assert_eq(js[0].state, TY_JOB_RUNNING);
  cr_assert_str_eq(js[0].spec.argv[1], "9");
  cr_assert_str_eq(js[0].nodes[0], "n1");
  cr_assert_str_eq(js[0].reason, "");
  ty_cli_jobinfos_free(js, n);
  ty_buf_close(&b);

  Trainyard__TaskLocation loc = TRAINYARD__TASK_LOCATION__INIT, *locs[] = {&loc};
  loc.rank = 1, loc.node = "n1", loc.io_addr = "127.0.0.1:7820";
  Trainyard__GetTaskLocationsResponse tr = TRAINYARD__GET_TASK_LOCATIONS_RESPONSE__INIT;
  tr.n_tasks = 1, tr.tasks = locs, tr.state = TRAINYARD__JOB_STATE__JOB_COMPLETED;
  b = pack_msg(&tr.base);
  ty_task_locations locs_out;
  cr_assert_eq(ty_cli_decode_locations(b.data, b.len, &locs_out), 0);
  cr_assert_eq(locs_out.n, 1u);
  cr_assert_eq(locs_out.state, TY_JOB_COMPLETED);
  cr_assert_str_eq(locs_out.tasks[0].io_addr, "127.0.0.1:7820");
  ty_task_locations_close(&locs_out);
  ty_buf_close(&b);

  Trainyard__LogChunk ch = TRAINYARD__LOG_CHUNK__INIT;
  ch.rank = 3, ch.offset = 10, ch.data.data = (uint8_t *)"hello\n", ch.data.len = 6;
  b = pack_msg(&ch.base);
  ty_buf data;
  ty_buf_init(&data);
  uint32_t rank;
  uint64_t off;
  cr_assert_eq(ty_cli_decode_log_chunk(b.data, b.len, &rank, &off, &data), 0);
  cr_assert(rank == 3 && off == 10 && data.len == 6 && memcmp(data.data, "hello\n", 6) == 0);
  ty_buf_close(&data);
  ty_buf_close(&b);
}

Test(convert, garbage_answers_are_eproto) {
  static const uint8_t junk[] = {0xff, 0xff, 0xff};
  ty_cli_jobinfo *js;
  ty_cli_jobinfo j;
  ty_cli_event *ev;
  ty_cli_node *ns;
  ty_cancel_result *cr;
  size_t n;
  uint64_t id;
  cr_assert_eq(ty_cli_decode_submit(junk, 3, &id, NULL), TY_EPROTO);
  cr_assert_eq(ty_cli_decode_list_jobs(junk, 3, &js, &n, NULL), TY_EPROTO);
  cr_assert_eq(ty_cli_decode_get_job(junk, 3, &j, &ev, &n), TY_EPROTO);
  cr_assert_eq(ty_cli_decode_get_job(NULL, 0, &j, &ev, &n), TY_EPROTO); /* no job in it */
  cr_assert_eq(ty_cli_decode_nodes(junk, 3, &ns, &n), TY_EPROTO);
  cr_assert_eq(ty_cli_decode_cancel(junk, 3, &cr, &n), TY_EPROTO);
}

/* examples/command-job/README.md's command, run for real. */
Test(job_file, example_encodes_with_protoc_and_loads) {
  const char *protoc = getenv("TY_PROTOC"), *root = getenv("TY_SOURCE_ROOT");
  if (!protoc || !*protoc || !root) cr_skip_test("protoc not found");
  char out[] = "/tmp/ty-cli-example-XXXXXX", cmd[2048];
  int fd = mkstemp(out);
  cr_assert_geq(fd, 0);
  close(fd);
  snprintf(cmd, sizeof cmd,
           "cd '%s' && '%s' --encode=trainyard.Job --proto_path=proto proto/trainyard.proto "
           "< examples/command-job/job.txtpb > '%s'",
           root, protoc, out);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  char err[TY_ERR_LEN] = "";
  int rc;
  Trainyard__SubmitJobRequest *r = load(out, "carol", err, sizeof err, &rc);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_str_eq(r->job->name, "hello-ranks");
  cr_assert_str_eq(r->job->user, "carol");
  cr_assert_eq(r->job->resources->nodes, 2u);
  cr_assert_eq(r->job->kind_case, TRAINYARD__JOB__KIND_COMMAND);
  cr_assert_str_eq(r->job->command->argv[0], "sh");
  trainyard__submit_job_request__free_unpacked(r, NULL);
  unlink(out);
}
