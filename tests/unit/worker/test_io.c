/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The task I/O server (worker/io.c) over real loopback TCP: the server's loop
 * runs on a thread of its own while the test reads with lib/rpc's blocking
 * client, as trainctl does, or drives the client's loop itself, as rlaunch
 * does, to hold an attach open while the task is launched.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/rpc/rpc.h"
#include "lib/token/token.h"
#include "proto/methods.h"
#include "proto/trainyard.pb-c.h"
#include "lib/token/token.h"
#include "worker/worker.h"

typedef struct server {
  uv_loop_t loop;
  uv_async_t stop;
  uv_async_t launch; /* launches `spec` on the loop's thread */
  const ty_task_spec *spec;
  ty_tasks *tasks;
  ty_worker_io *io;
  pthread_t thread;
  char dir[64];
  int port;
} server;

static void on_stop(uv_async_t *h) {
  server *s = h->data;
  ty_worker_io_destroy(s->io);
  ty_tasks_kill_all_now(s->tasks);
  ty_tasks_destroy(s->tasks);
  uv_close((uv_handle_t *)&s->stop, NULL);
  uv_close((uv_handle_t *)&s->launch, NULL);
}

static void on_launch(uv_async_t *h) {
  server *s = h->data;
  char err[256];
  (void)ty_tasks_launch(s->tasks, s->spec, err, sizeof err); /* a failure is the test's point */
}

static void *loop_thread(void *arg) {
  server *s = arg;
  uv_run(&s->loop, UV_RUN_DEFAULT);
  return NULL;
}

static void server_init(server *s) {
  memset(s, 0, sizeof *s);
  snprintf(s->dir, sizeof s->dir, "/tmp/ty-worker-io-XXXXXX");
  cr_assert_not_null(mkdtemp(s->dir));
  cr_assert_eq(uv_loop_init(&s->loop), 0);
  cr_assert_eq(ty_tasks_create(&s->loop, s->dir, "w1", NULL, NULL, &s->tasks), 0);
  ty_tasks_set_isolation(s->tasks, getenv("TY_EXEC_HELPER"), NULL);
  ty_tasks_set_tmp_base(s->tasks, s->dir); /* its tasks' TMPDIRs go with it */
  cr_assert_eq(ty_worker_io_create(&s->loop, "127.0.0.1", 0, s->tasks, NULL, &s->io), 0);
  s->port = ty_worker_io_port(s->io);
  cr_assert_gt(s->port, 0);
  uv_async_init(&s->loop, &s->stop, on_stop);
  s->stop.data = s;
  uv_async_init(&s->loop, &s->launch, on_launch);
  s->launch.data = s;
}

static void server_start(server *s) {
  pthread_create(&s->thread, NULL, loop_thread, s);
}

static void server_fini(server *s) {
  uv_async_send(&s->stop);
  pthread_join(s->thread, NULL);
  cr_expect_eq(uv_loop_close(&s->loop), 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
  cr_expect_eq(system(cmd), 0);
}

/* Every job's task-token key in these tests. */
static const uint8_t job_key[TY_TOKEN_KEY_LEN] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                                  7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};

/* A spec for `sh -c script` as job `job`, with the job's key. */
static ty_task_spec shell_job(uint64_t job, const char *const *argv) {
  return (ty_task_spec){.job_id = job,
                        .argv = argv,
                        .argc = 3,
                        .has_uid = true,
                        .uid = getuid(),
                        .gid = getgid(),
                        .attach_key = job_key,
                        .attach_key_len = sizeof job_key};
}

static void write_log(server *s, uint64_t job, uint32_t rank, const char *data, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/jobs/%lu", s->dir, (unsigned long)job);
  cr_assert_eq(ty_mkdir_p(path), 0);
  snprintf(path + strlen(path), sizeof path - strlen(path), "/token.key");
  FILE *kf = fopen(path, "w");
  cr_assert_not_null(kf);
  cr_assert_eq(fwrite(job_key, 1, sizeof job_key, kf), sizeof job_key);
  fclose(kf);
  cr_assert_eq(ty_tasks_log_path(s->tasks, job, rank, path, sizeof path), 0);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

typedef struct sink {
  ty_buf data;
  uint64_t next_offset;
  int chunks;
  int stop_after; /* cancel after this many chunks; 0 = never */
} sink;

static int on_chunk(const uint8_t *p, size_t n, void *ud) {
  sink *k = ud;
  Trainyard__LogChunk *c = trainyard__log_chunk__unpack(NULL, n, p);
  cr_assert_not_null(c);
  cr_expect_eq(c->offset, k->next_offset, "chunks arrive in order without gaps");
  cr_expect_leq(c->data.len, 64u * 1024u);
  ty_buf_append(&k->data, c->data.data, c->data.len);
  k->next_offset += c->data.len;
  trainyard__log_chunk__free_unpacked(c, NULL);
  k->chunks++;
  return k->stop_after && k->chunks >= k->stop_after;
}

/* ReadLog with a token for (token_job, rank), or none when token_job is 0. */
static int read_log_as(int port, uint64_t token_job, uint64_t job, uint32_t rank, uint64_t offset,
                       bool follow, sink *k, ty_rpc_result *out) {
  ty_rpc_client *c = NULL;
  cr_assert_eq(ty_rpc_client_open("127.0.0.1", port, 5000, &c), 0);
  uint8_t tok[TY_TOKEN_LEN];
  ty_token_sign(job_key, token_job, rank, ty_now_ms() + 60000, tok);
  if (token_job) ty_rpc_client_set_credential(c, tok, sizeof tok);
  Trainyard__ReadLogRequest req = TRAINYARD__READ_LOG_REQUEST__INIT;
  req.job_id = job;
  req.rank = rank;
  req.offset = offset;
  req.follow = follow;
  uint8_t buf[64];
  size_t len = trainyard__read_log_request__pack(&req, buf);
  k->next_offset = offset;
  int rc = ty_rpc_client_stream(c, TY_M_READ_LOG, buf, len, 20000, on_chunk, k, out);
  ty_rpc_client_close(c);
  return rc;
}

static int read_log(int port, uint64_t job, uint32_t rank, uint64_t offset, bool follow, sink *k,
                    ty_rpc_result *out) {
  return read_log_as(port, job, job, rank, offset, follow, k, out);
}

Test(io, reads_a_whole_log_in_bounded_chunks) {
  server s;
  server_init(&s);
  size_t n = 200 * 1024 + 17;
  char *data = malloc(n);
  for (size_t i = 0; i < n; i++)
    data[i] = (char)('a' + i % 26);
  write_log(&s, 5, 1, data, n);
  server_start(&s);
  sink k = {0};
  ty_rpc_result r = {0};
  cr_assert_eq(read_log(s.port, 5, 1, 0, false, &k, &r), 0);
  cr_expect_eq(r.status, 0, "%s", r.message);
  cr_assert_eq(k.data.len, n);
  cr_expect_eq(memcmp(k.data.data, data, n), 0);
  cr_expect_geq(k.chunks, 4);
  ty_rpc_result_close(&r);
  ty_buf_close(&k.data);
  free(data);
  server_fini(&s);
}

Test(io, starts_at_the_offset) {
  server s;
  server_init(&s);
  write_log(&s, 6, 0, "hello world\n", 12);
  server_start(&s);
  sink k = {0};
  ty_rpc_result r = {0};
  cr_assert_eq(read_log(s.port, 6, 0, 6, false, &k, &r), 0);
  cr_expect_eq(r.status, 0);
  cr_assert_eq(k.data.len, 6);
  cr_expect_eq(memcmp(k.data.data, "world\n", 6), 0);
  ty_rpc_result_close(&r);
  ty_buf_close(&k.data);
  server_fini(&s);
}

/* A file offset is an off_t: 2^63 and above once read the log from its
 * start, with chunk offsets that wrapped. Up to 2^62 is past any log's end. */
Test(io, an_offset_beyond_any_log_is_refused) {
  server s;
  server_init(&s);
  write_log(&s, 6, 0, "hello world\n", 12);
  server_start(&s);
  sink k = {0};
  ty_rpc_result r = {0};
  cr_assert_eq(read_log(s.port, 6, 0, (uint64_t)INT64_MAX + 1, false, &k, &r), 0);
  cr_expect_eq(r.status, TY_EINVAL);
  cr_expect_str_eq(r.message, "offset: 9223372036854775808 is beyond any log");
  cr_expect_eq(k.chunks, 0);
  ty_rpc_result_close(&r);
  cr_assert_eq(read_log(s.port, 6, 0, UINT64_C(1) << 62, false, &k, &r), 0);
  cr_expect_eq(r.status, 0, "the largest offset is past the end: nothing, no error: %d %s",
               r.status, r.message);
  cr_expect_eq(k.chunks, 0);
  ty_rpc_result_close(&r);
  server_fini(&s);
}

Test(io, unknown_job_is_not_found) {
  server s;
  server_init(&s);
  server_start(&s);
  sink k = {0};
  ty_rpc_result r = {0};
  cr_assert_eq(read_log(s.port, 77, 3, 0, true, &k, &r), 0);
  cr_expect_eq(r.status, TY_ENOTFOUND);
  cr_expect_str_eq(r.message, "no log for job 77 rank 3 on node w1");
  cr_expect_eq(k.chunks, 0);
  ty_rpc_result_close(&r);
  server_fini(&s);
}

Test(io, a_log_needs_its_ranks_token) {
  server s;
  server_init(&s);
  write_log(&s, 6, 0, "secret\n", 7);
  server_start(&s);
  sink k = {0};
  ty_rpc_result r = {0};
  cr_assert_eq(read_log_as(s.port, 0, 6, 0, 0, false, &k, &r), 0);
  cr_expect_eq(r.status, TY_EPERM);
  cr_expect(strstr(r.message, "ReadLog of job 6 rank 0 on node w1: permission denied: no task "
                              "token"),
            "%s", r.message);
  ty_rpc_result_close(&r);
  cr_assert_eq(read_log_as(s.port, 5, 6, 0, 0, false, &k, &r), 0); /* another job's token */
  cr_expect_eq(r.status, TY_EPERM);
  cr_expect_eq(k.chunks, 0);
  ty_rpc_result_close(&r);
  server_fini(&s);
}

Test(io, follow_streams_until_the_task_ends) {
  server s;
  server_init(&s);
  static const char *const argv[] = {"sh", "-c", "echo first; sleep 1; echo second"};
  ty_task_spec spec = shell_job(8, argv);
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(s.tasks, &spec, err, sizeof err), 0, "%s", err);
  server_start(&s);
  sink k = {0};
  ty_rpc_result r = {0};
  cr_assert_eq(read_log(s.port, 8, 0, 0, true, &k, &r), 0);
  cr_expect_eq(r.status, 0, "%s", r.message);
  ty_buf_append(&k.data, "", 1);
  cr_expect_str_eq((const char *)k.data.data, "first\nsecond\n");
  ty_rpc_result_close(&r);
  ty_buf_close(&k.data);
  server_fini(&s);
}

Test(io, cancel_stops_a_follow_and_the_server_keeps_serving) {
  server s;
  server_init(&s);
  static const char *const argv[] = {"sh", "-c", "echo tick; sleep 60"};
  ty_task_spec spec = shell_job(9, argv);
  char err[256] = "";
  cr_assert_eq(ty_tasks_launch(s.tasks, &spec, err, sizeof err), 0, "%s", err);
  server_start(&s);
  sink k = {.stop_after = 1};
  ty_rpc_result r = {0};
  cr_expect_eq(read_log(s.port, 9, 0, 0, true, &k, &r), 1);
  ty_rpc_result_close(&r);
  ty_buf_close(&k.data);
  sink k2 = {0};
  cr_assert_eq(read_log(s.port, 99, 0, 0, false, &k2, &r), 0);
  cr_expect_eq(r.status, TY_ENOTFOUND);
  ty_rpc_result_close(&r);
  server_fini(&s);
}

Test(io, malformed_request_and_unknown_method_are_refused) {
  server s;
  server_init(&s);
  server_start(&s);
  ty_rpc_client *c = NULL;
  cr_assert_eq(ty_rpc_client_open("127.0.0.1", s.port, 5000, &c), 0);
  ty_rpc_result r = {0};
  static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff};
  cr_assert_eq(ty_rpc_client_call(c, TY_M_READ_LOG, garbage, sizeof garbage, 5000, &r), 0);
  cr_expect_eq(r.status, TY_EPROTO);
  ty_rpc_result_close(&r);
  cr_assert_eq(ty_rpc_client_call(c, TY_M_SUBMIT_JOB, NULL, 0, 5000, &r), 0);
  cr_expect_eq(r.status, TY_ENOTFOUND);
  cr_expect(strstr(r.message, TY_M_SUBMIT_JOB) != NULL, "%s", r.message);
  ty_rpc_result_close(&r);
  /* What the client sent is quoted escaped: one line of valid UTF-8. */
  cr_assert_eq(ty_rpc_client_call(c, "Zz\xff\xfe\nforged", NULL, 0, 5000, &r), 0);
  cr_expect_eq(r.status, TY_ENOTFOUND);
  cr_expect(strstr(r.message, "unknown method \"Zz\\xff\\xfe\\nforged\""), "%s", r.message);
  cr_expect(ty_utf8_valid(r.message, NULL));
  ty_rpc_result_close(&r);
  ty_rpc_client_close(c);
  server_fini(&s);
}

/* ---- attaches that come before their task (worker/attach_wait.c) ---------------------- */

typedef struct attach_watch {
  bool held, done, hello, exited;
  int status, exit_code;
  int64_t attach_us;
  char msg[TY_ERR_LEN];
  ty_buf out;
} attach_watch;

static void on_attach_item(attach_watch *w, const ty_rpc_msg *m) {
  Trainyard__AttachOutput *o = trainyard__attach_output__unpack(NULL, m->payload_len, m->payload);
  cr_assert_not_null(o);
  if (o->exited) {
    w->exited = true;
    w->exit_code = o->exit_code;
    cr_assert_not_null(o->timing, "the exit carries the worker's timing");
    w->attach_us = o->timing->attach_us;
  } else if (o->stream == 0) {
    w->hello = true;
  } else {
    ty_buf_append(&w->out, o->data.data, o->data.len);
  }
  trainyard__attach_output__free_unpacked(o, NULL);
}

static void on_attach(ty_rpc_conn *c, int status, const ty_rpc_msg *m, bool final, void *ud) {
  (void)c;
  attach_watch *w = ud;
  if (!final) {
    on_attach_item(w, m);
    return;
  }
  w->done = true;
  w->status = m ? m->status : status;
  snprintf(w->msg, sizeof w->msg, "%s", m ? m->message : "");
}

/* The probe's answer: the server handles a connection's requests in order,
 * so once it answers, the attach sent before it has been held or refused. */
static void on_probe(ty_rpc_conn *c, int status, const ty_rpc_msg *m, bool final, void *ud) {
  (void)c, (void)status, (void)m;
  if (final) ((attach_watch *)ud)->held = true;
}

static ty_rpc_client *attach_client(int port, uint64_t job) {
  ty_rpc_client *c = NULL;
  cr_assert_eq(ty_rpc_client_open("127.0.0.1", port, 5000, &c), 0);
  uint8_t token[TY_TOKEN_LEN];
  ty_token_sign(job_key, job, 0, ty_now_ms() + 600000, token);
  ty_rpc_client_set_credential(c, token, sizeof token);
  return c;
}

/* Starts an Attach for rank 0 of job with wait_ms, then waits until the
 * server has taken it (held, or answered). */
static void start_attach(ty_rpc_client *c, uint64_t job, uint32_t wait_ms, attach_watch *w) {
  Trainyard__AttachRequest req = TRAINYARD__ATTACH_REQUEST__INIT;
  req.job_id = job, req.owner = true, req.wait_ms = wait_ms;
  uint8_t buf[64];
  size_t n = trainyard__attach_request__pack(&req, buf);
  ty_buf_init(&w->out);
  cr_assert_eq(ty_rpc_client_start(c, TY_M_ATTACH, buf, n, 0, on_attach, w, NULL), 0);
  Trainyard__AttachInputRequest in = TRAINYARD__ATTACH_INPUT_REQUEST__INIT;
  in.job_id = job;
  n = trainyard__attach_input_request__pack(&in, buf);
  cr_assert_eq(ty_rpc_client_start(c, TY_M_ATTACH_INPUT, buf, n, 0, on_probe, w, NULL), 0);
  while (!w->held)
    uv_run(ty_rpc_client_loop(c), UV_RUN_ONCE);
}

static void run_until_done(ty_rpc_client *c, attach_watch *w) {
  while (!w->done)
    uv_run(ty_rpc_client_loop(c), UV_RUN_ONCE);
}

static ty_task_spec interactive(uint64_t job, const char *const *argv, int argc) {
  ty_task_spec spec = {.job_id = job,
                       .argv = argv,
                       .argc = argc,
                       .world_size = 1,
                       .local_world_size = 1,
                       .master_addr = "127.0.0.1",
                       .master_port = 29501,
                       .has_uid = true,
                       .uid = getuid(),
                       .gid = getgid(),
                       .attach_key = job_key,
                       .attach_key_len = TY_TOKEN_KEY_LEN};
  spec.interactive.on = true;
  return spec;
}

Test(io, an_attach_before_its_task_waits_for_it_and_streams_it) {
  server s;
  server_init(&s);
  server_start(&s);
  ty_rpc_client *c = attach_client(s.port, 21);
  attach_watch w = {0};
  start_attach(c, 21, 30000, &w);
  cr_assert(!w.done, "the attach was answered before its task existed: %d %s", w.status, w.msg);
  static const char *const argv[] = {"sh", "-c", "echo hello"};
  ty_task_spec spec = interactive(21, argv, 3);
  s.spec = &spec;
  uv_async_send(&s.launch);
  run_until_done(c, &w);
  cr_expect_eq(w.status, 0, "%s", w.msg);
  cr_expect(w.hello);
  ty_buf_append(&w.out, "", 1);
  cr_expect_str_eq((const char *)w.out.data, "hello\n");
  cr_expect(w.exited);
  cr_expect_eq(w.exit_code, 0);
  cr_expect_lt(w.attach_us, 0, "the worker says the attach waited for the task");
  ty_buf_close(&w.out);
  ty_rpc_client_close(c);
  server_fini(&s);
}

Test(io, an_attach_for_a_task_that_never_comes_ends_at_its_deadline) {
  server s;
  server_init(&s);
  server_start(&s);
  ty_rpc_client *c = attach_client(s.port, 22);
  attach_watch w = {0};
  start_attach(c, 22, 1, &w);
  run_until_done(c, &w);
  cr_expect_eq(w.status, TY_ENOTFOUND);
  cr_expect_str_eq(w.msg, "job 22 rank 0 has no interactive task on node w1: none was launched "
                          "within the 1 ms the attach waited");
  ty_buf_close(&w.out);
  ty_rpc_client_close(c);
  server_fini(&s);
}

Test(io, a_failed_launch_ends_the_waiting_attach_and_answers_later_ones_at_once) {
  server s;
  server_init(&s);
  server_start(&s);
  ty_rpc_client *c = attach_client(s.port, 23);
  attach_watch w = {0};
  start_attach(c, 23, 30000, &w);
  cr_assert(!w.done);
  static const char *const argv[] = {"/nonexistent/ty-no-such-command"};
  ty_task_spec spec = interactive(23, argv, 1);
  s.spec = &spec;
  uv_async_send(&s.launch);
  run_until_done(c, &w);
  cr_expect_neq(w.status, 0);
  cr_expect(strstr(w.msg, "launch failed on w1: ") == w.msg, "%s", w.msg);
  cr_expect(strstr(w.msg, "not found on node w1"), "%s", w.msg);
  /* A second attach, even one willing to wait, learns it at once. */
  attach_watch w2 = {0};
  start_attach(c, 23, 30000, &w2);
  cr_expect(w2.done, "an attach after the failed launch was held");
  cr_expect_str_eq(w2.msg, w.msg);
  ty_buf_close(&w.out);
  ty_buf_close(&w2.out);
  ty_rpc_client_close(c);
  server_fini(&s);
}

/* The token comes first: without a good one a client learns nothing of
 * which jobs have tasks here (it once read "has no interactive task"). */
Test(io, an_attach_checks_its_token_before_the_task) {
  server s;
  server_init(&s);
  write_log(&s, 25, 0, "x\n", 2); /* job 25 ran here: its key is kept */
  server_start(&s);
  ty_rpc_client *c = NULL;
  cr_assert_eq(ty_rpc_client_open("127.0.0.1", s.port, 5000, &c), 0);
  static const uint8_t garbage[TY_TOKEN_LEN] = {1, 2, 3};
  ty_rpc_client_set_credential(c, garbage, sizeof garbage);
  attach_watch w = {0};
  start_attach(c, 25, 0, &w);
  run_until_done(c, &w);
  cr_expect_eq(w.status, TY_EPERM, "%s", w.msg);
  cr_expect(strstr(w.msg, "attach to job 25 rank 0 refused: "), "%s", w.msg);
  ty_buf_close(&w.out);
  ty_rpc_client_close(c);
  c = attach_client(s.port, 25); /* its own token: told there is no task */
  w = (attach_watch){0};
  start_attach(c, 25, 0, &w);
  run_until_done(c, &w);
  cr_expect_eq(w.status, TY_ENOTFOUND, "%s", w.msg);
  cr_expect_str_eq(w.msg, "job 25 rank 0 has no interactive task on node w1");
  ty_buf_close(&w.out);
  ty_rpc_client_close(c);
  server_fini(&s);
}

Test(io, an_attach_asking_to_wait_too_long_is_refused) {
  server s;
  server_init(&s);
  server_start(&s);
  ty_rpc_client *c = attach_client(s.port, 24);
  attach_watch w = {0};
  start_attach(c, 24, 60001, &w);
  cr_expect(w.done);
  cr_expect_eq(w.status, TY_EINVAL);
  cr_expect_str_eq(w.msg, "AttachRequest.wait_ms: 60001 is more than the 60000 allowed");
  ty_buf_close(&w.out);
  ty_rpc_client_close(c);
  server_fini(&s);
}
