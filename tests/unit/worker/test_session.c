/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller session (worker/session.c) against a scripted controller: a
 * real lib/rpc server on the same loop that plays the controller's part of
 * docs/cluster-protocol.md. It checks registration, heartbeats, LaunchTask
 * answers (including a bad cwd, and a stopping worker's refusal marked
 * worker_stopping), KillTask for an unknown job, and that a task
 * report survives a controller that drops the connection: it must come back
 * in the next RegisterNode; and that the sweep resending refused reports
 * leaves out one whose answer is still awaited.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/rpc/rpc.h"
#include "proto/methods.h"
#include "proto/trainyard.pb-c.h"
#include "worker/worker.h"

typedef struct ctl {
  uv_loop_t loop;
  ty_rpc_server *server;
  ty_tasks *tasks;
  ty_worker_session *session;
  ty_worker_inventory inv;
  char dir[64];
  int registrations;
  int heartbeats;
  int updates;
  int launch_ok, launch_bad_cwd, kill_ok;
  char bad_cwd_message[256];
  bool second_register_carried_exit;
  bool stop_first;      /* the worker stops (SIGTERM) before the launch */
  int refused_stopping; /* TY_ESTATE answers marked worker_stopping */
  char refused_message[256];
  /* resend_check: job 2's end is held unanswered, job 3's first refused. */
  bool resend_check;
  int job2_updates, job3_updates;
  uint64_t held_request;
  bool done;
} ctl;

static void on_task_end(ty_tasks *t, const ty_task_report *r, void *ud) {
  (void)t;
  ctl *x = ud;
  ty_worker_session_task_ended(x->session, r);
}

static void on_launch_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *m, bool final,
                             void *ud) {
  (void)c;
  (void) final;
  ctl *x = ud;
  if (status == 0) {
    x->launch_ok++;
  } else if (status == TY_ENOTFOUND && m) {
    x->launch_bad_cwd++;
    snprintf(x->bad_cwd_message, sizeof x->bad_cwd_message, "%s", m->message);
  } else if (status == TY_ESTATE && m) {
    Trainyard__LaunchTaskResponse *r =
        trainyard__launch_task_response__unpack(NULL, m->payload_len, m->payload);
    x->refused_stopping += r && r->worker_stopping;
    snprintf(x->refused_message, sizeof x->refused_message, "%s", m->message);
    trainyard__launch_task_response__free_unpacked(r, NULL);
  }
  if (x->stop_first) x->done = true;
}

static void on_kill_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *m, bool final, void *ud) {
  (void)c;
  (void)m;
  (void) final;
  ctl *x = ud;
  if (status == 0) x->kill_ok++;
  x->done = true;
}

static void send_launch(ctl *x, ty_rpc_conn *c, uint64_t job, const char *cwd) {
  char *argv[] = {"sh", "-c", "exit 4"};
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  cmd.n_argv = 3;
  cmd.argv = argv;
  cmd.cwd = (char *)cwd;
  Trainyard__LaunchTaskRequest req = TRAINYARD__LAUNCH_TASK_REQUEST__INIT;
  req.job_id = job;
  req.world_size = 1;
  req.local_world_size = 1;
  req.master_addr = "127.0.0.1";
  req.master_port = 29501;
  req.command = &cmd;
  req.kill_grace_s = 1;
  Trainyard__UnixUser me = TRAINYARD__UNIX_USER__INIT;
  me.uid = getuid(), me.gid = getgid();
  req.run_as = &me;
  uint8_t buf[512];
  size_t len = trainyard__launch_task_request__pack(&req, buf);
  cr_assert_eq(ty_rpc_call(c, TY_M_LAUNCH_TASK, buf, len, NULL, 0, 5000, on_launch_answer, x, NULL),
               0);
}

static void send_kill(ctl *x, ty_rpc_conn *c) {
  Trainyard__KillTaskRequest req = TRAINYARD__KILL_TASK_REQUEST__INIT;
  req.job_id = 12345;
  uint8_t buf[64];
  size_t len = trainyard__kill_task_request__pack(&req, buf);
  cr_assert_eq(ty_rpc_call(c, TY_M_KILL_TASK, buf, len, NULL, 0, 5000, on_kill_answer, x, NULL), 0);
}

static void handle_register(ctl *x, ty_rpc_conn *c, const ty_rpc_msg *m) {
  Trainyard__RegisterNodeRequest *req =
      trainyard__register_node_request__unpack(NULL, m->payload_len, m->payload);
  cr_assert_not_null(req);
  cr_assert_not_null(req->node);
  cr_expect_str_eq(req->node->name, "w1");
  cr_expect_str_eq(req->node->io_addr, "127.0.0.1:7820");
  cr_expect_eq(req->node->cpus, 4);
  x->registrations++;
  if (x->registrations == 2) {
    for (size_t i = 0; i < req->n_tasks; i++) {
      const Trainyard__RunningTask *t = req->tasks[i];
      if (t->job_id == 1 && t->state == TRAINYARD__TASK_STATE__TASK_EXITED && t->exit_code == 4)
        x->second_register_carried_exit = true;
    }
  }
  trainyard__register_node_request__free_unpacked(req, NULL);
  Trainyard__RegisterNodeResponse resp = TRAINYARD__REGISTER_NODE_RESPONSE__INIT;
  resp.heartbeat_interval_ms = 50;
  uint8_t buf[16];
  size_t len = trainyard__register_node_response__pack(&resp, buf);
  ty_rpc_reply(c, m->request_id, 0, NULL, buf, len);
  if (x->stop_first) {
    /* As worker/main.c's SIGTERM handler does it. */
    ty_worker_session_leaving(x->session);
    ty_tasks_kill_all(x->tasks);
    send_launch(x, c, 1, "");
  } else if (x->resend_check) {
    send_launch(x, c, 2, "");
    send_launch(x, c, 3, "");
  } else if (x->registrations == 1) {
    send_launch(x, c, 1, "/no/such/dir");
    send_launch(x, c, 1, "");
  } else {
    send_kill(x, c);
  }
}

/* resend_check's TaskUpdates: job 3's first end is refused (TY_ESTORE, as
 * a controller whose store failed answers), which starts the worker's
 * retry sweep a second later; job 2's end stays unanswered until job 3's
 * second copy comes, so the sweep must not send it again. */
static void handle_resend_check(ctl *x, ty_rpc_conn *c, const ty_rpc_msg *m) {
  Trainyard__TaskUpdateRequest *u =
      trainyard__task_update_request__unpack(NULL, m->payload_len, m->payload);
  cr_assert_not_null(u);
  uint64_t job = u->job_id;
  trainyard__task_update_request__free_unpacked(u, NULL);
  if (job == 2) {
    x->job2_updates++;
    x->held_request = m->request_id;
  } else if (job == 3 && x->job3_updates++ == 0) {
    ty_rpc_reply(c, m->request_id, TY_ESTORE, "the task result was not stored; resend it", NULL, 0);
  } else {
    ty_rpc_reply(c, m->request_id, 0, NULL, NULL, 0);
    cr_assert(x->held_request, "job 3's end was resent before job 2's was sent");
    ty_rpc_reply(c, x->held_request, 0, NULL, NULL, 0);
    x->done = true;
  }
}

static void on_request(ty_rpc_conn *c, const ty_rpc_msg *m, void *ud) {
  ctl *x = ud;
  if (strcmp(m->method, TY_M_TASK_UPDATE) == 0 && x->resend_check) {
    handle_resend_check(x, c, m);
  } else if (strcmp(m->method, TY_M_REGISTER_NODE) == 0) {
    handle_register(x, c, m);
  } else if (strcmp(m->method, TY_M_HEARTBEAT) == 0) {
    x->heartbeats++;
    ty_rpc_reply(c, m->request_id, 0, NULL, NULL, 0);
  } else if (strcmp(m->method, TY_M_TASK_UPDATE) == 0) {
    /* The first report is lost with the connection, as when the controller
     * crashes; the worker must resend it. */
    x->updates++;
    ty_rpc_close(c);
  } else {
    ty_rpc_reply(c, m->request_id, TY_ENOTFOUND, "unexpected", NULL, 0);
  }
}

static void on_close(ty_rpc_conn *c, int reason, void *ud) {
  (void)c;
  (void)reason;
  (void)ud;
}

/* A scripted controller and a worker session w1 (4 CPUs) connected to it. */
static void open_session(ctl *x) {
  snprintf(x->dir, sizeof x->dir, "/tmp/ty-worker-session-XXXXXX");
  cr_assert_not_null(mkdtemp(x->dir));
  cr_assert_eq(uv_loop_init(&x->loop), 0);
  ty_rpc_conn_opts opts = {.on_request = on_request, .on_close = on_close, .ud = x};
  cr_assert_eq(ty_rpc_server_create(&x->loop, "127.0.0.1", 0, &opts, NULL, x, &x->server), 0);
  cr_assert_eq(ty_tasks_create(&x->loop, x->dir, "w1", on_task_end, x, &x->tasks), 0);
  ty_tasks_set_isolation(x->tasks, getenv("TY_EXEC_HELPER"), NULL);
  ty_tasks_set_tmp_base(x->tasks, x->dir); /* its tasks' TMPDIRs go with it */
  cr_assert_eq(ty_worker_inventory_detect(&x->inv), 0);
  x->inv.cpus = 4;
  ty_worker_session_opts so = {.host = "127.0.0.1",
                               .port = ty_rpc_server_port(x->server),
                               .name = "w1",
                               .io_addr = "127.0.0.1:7820",
                               .inv = &x->inv,
                               .tasks = x->tasks};
  cr_assert_eq(ty_worker_session_create(&x->loop, &so, &x->session), 0);
}

static void close_session(ctl *x) {
  ty_worker_session_destroy(x->session);
  ty_tasks_destroy(x->tasks);
  ty_rpc_server_destroy(x->server);
  uv_run(&x->loop, UV_RUN_DEFAULT);
  cr_expect_eq(uv_loop_close(&x->loop), 0);
  ty_worker_inventory_close(&x->inv);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", x->dir);
  cr_expect_eq(system(cmd), 0);
}

Test(session, registers_launches_and_resends_reports_after_a_reconnect, .timeout = 60) {
  ctl x;
  memset(&x, 0, sizeof x);
  open_session(&x);
  while (!x.done)
    uv_run(&x.loop, UV_RUN_ONCE);

  cr_expect_eq(x.launch_bad_cwd, 1);
  cr_expect_str_eq(x.bad_cwd_message, "cwd /no/such/dir does not exist on node w1");
  cr_expect_eq(x.launch_ok, 1);
  cr_expect_eq(x.updates, 1);
  cr_expect_eq(x.registrations, 2);
  cr_expect(x.second_register_carried_exit, "RegisterNode after the reconnect carries the exit");
  cr_expect_eq(x.kill_ok, 1, "KillTask for an unknown job answers 0");
  cr_expect_eq(ty_worker_session_unacked(x.session), 0, "the registration acknowledged it");
  cr_expect(ty_worker_session_registered(x.session));
  close_session(&x);
}

/* A stopping worker refuses a launch with TY_ESTATE and says why in
 * LaunchTaskResponse.worker_stopping, which the controller reads (it
 * requeues the job and drains the node); the message stays for people and
 * for controllers older than the field. */
Test(session, a_stopping_worker_marks_its_launch_refusal, .timeout = 60) {
  ctl x;
  memset(&x, 0, sizeof x);
  x.stop_first = true;
  open_session(&x);
  while (!x.done)
    uv_run(&x.loop, UV_RUN_ONCE);
  cr_expect_eq(x.launch_ok, 0);
  cr_expect_eq(x.refused_stopping, 1, "the refusal is not marked worker_stopping");
  cr_expect_str_eq(x.refused_message, "node w1 is shutting down");
  close_session(&x);
}

/* Either answer to an end makes the worker forget the task, so a copy sent
 * while the first is unanswered only adds work; and a controller that
 * answered the copy before storing the first (fixed there too) would let a
 * crash lose the end. */
Test(session, resends_a_refused_end_but_not_one_still_awaiting_its_answer, .timeout = 60) {
  ctl x;
  memset(&x, 0, sizeof x);
  x.resend_check = true;
  open_session(&x);
  while (!x.done || ty_worker_session_unacked(x.session) > 0)
    uv_run(&x.loop, UV_RUN_ONCE);
  cr_expect_eq(x.launch_ok, 2);
  cr_expect_eq(x.job3_updates, 2, "the refused end was not sent again");
  cr_expect_eq(x.job2_updates, 1, "the end awaiting its answer was sent again");
  close_session(&x);
}

Test(session, rejects_bad_options) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ty_worker_session *s = NULL;
  ty_worker_session_opts so = {.host = "127.0.0.1", .port = 0, .name = "w1"};
  cr_expect_eq(ty_worker_session_create(&loop, &so, &s), TY_EINVAL);
  ty_worker_session_destroy(NULL);
  uv_loop_close(&loop);
}
