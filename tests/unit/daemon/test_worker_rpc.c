/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's side of the worker protocol, against a test that plays
 * the worker.
 *
 * A LaunchTask refused with TY_ESTATE (daemon/launch.c): the rank lost its
 * node, so the job is requeued, never failed. A refusal because the worker
 * stops (LaunchTaskResponse.worker_stopping, or, from a worker older than
 * that field, "shutting down" in its message) also drains the node
 * ("worker shutting down"), so the job waits for another node; any other
 * TY_ESTATE refusal (a worker that has not had its registration's answer
 * yet) leaves the node UP and the job is launched there again. A failure
 * the worker marks as its node's (LaunchTaskResponse.node_fault) drains
 * the node ("drained by controller: launch failed: ...") and requeues the
 * job.
 *
 * A task's end reported twice is answered the second time only once the
 * first is stored: the worker forgets the task on either answer.
 *
 * A node's TASKS (ListNodes' running_tasks) follow the launches its worker
 * accepted and the ends it reported between heartbeats, and are none once
 * a stopping worker exited.
 *
 * The worker is this test's own connection, on a loop of its own, against
 * a real controller (controller_fixture.c): it registers one node and
 * answers each LaunchTask as the test says.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller_fixture.h"
#include "proto/methods.h"
#include "proto/trainyard.pb-c.h"
#include "tests/support/tree.h"

static char dir[TY_TEST_DIR_LEN];

static void setup(void) {
  cr_assert_eq(ty_test_make_dir(dir, "launch"), 0);
}

static void teardown(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

TestSuite(launch_refused, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(node_tasks, .init = setup, .fini = teardown, .timeout = 60);

/* The test's worker: how it answers the first LaunchTask (later ones: 0). */
typedef struct fake_worker {
  uv_loop_t loop;
  ty_rpc_conn *conn;
  int status;
  const char *message;
  bool marker;     /* LaunchTaskResponse.worker_stopping in the refusal */
  bool node_fault; /* LaunchTaskResponse.node_fault in the refusal */
  int launches;
  bool registered, closed;
  const char *name;    /* the name it registers under; NULL: w1 */
  int reg_status;      /* RegisterNode's answer */
  char reg_error[256]; /* and its message */
} fake_worker;

static void on_request(ty_rpc_conn *c, const ty_rpc_msg *m, void *ud) {
  fake_worker *w = ud;
  if (strcmp(m->method, TY_M_LAUNCH_TASK) != 0) {
    ty_rpc_reply(c, m->request_id, TY_ENOTFOUND, "not a worker's method", NULL, 0);
    return;
  }
  if (w->launches++ > 0) {
    ty_rpc_reply(c, m->request_id, 0, NULL, NULL, 0);
    return;
  }
  Trainyard__LaunchTaskResponse r = TRAINYARD__LAUNCH_TASK_RESPONSE__INIT;
  r.worker_stopping = w->marker;
  r.node_fault = w->node_fault;
  uint8_t buf[16];
  size_t len = trainyard__launch_task_response__pack(&r, buf);
  ty_rpc_reply(c, m->request_id, w->status, w->message, buf, len);
}

static void on_close(ty_rpc_conn *c, int reason, void *ud) {
  (void)c, (void)reason;
  ((fake_worker *)ud)->closed = true;
}

static void on_registered(ty_rpc_conn *c, int status, const ty_rpc_msg *m, bool final, void *ud) {
  (void)c, (void) final;
  fake_worker *w = ud;
  w->reg_status = status;
  snprintf(w->reg_error, sizeof w->reg_error, "%s", m && m->message ? m->message : "");
  w->registered = true;
}

static void on_connect(ty_rpc_conn *c, int status, void *ud) {
  fake_worker *w = ud;
  cr_assert_eq(status, 0, "cannot connect to the controller");
  w->conn = c;
  Trainyard__NodeInfo ni = TRAINYARD__NODE_INFO__INIT;
  ni.name = (char *)(w->name ? w->name : "w1"), ni.io_addr = "127.0.0.1:9", ni.cpus = 4;
  Trainyard__RegisterNodeRequest req = TRAINYARD__REGISTER_NODE_REQUEST__INIT;
  req.node = &ni;
  uint8_t buf[128];
  size_t len = trainyard__register_node_request__pack(&req, buf);
  cr_assert_eq(ty_rpc_call(c, TY_M_REGISTER_NODE, buf, len, NULL, 0, 10000, on_registered, w, NULL),
               0);
}

/* Runs the worker's loop until *flag or its connection closes. */
static void run_until(fake_worker *w, const bool *flag) {
  while (!*flag && !w->closed)
    uv_run(&w->loop, UV_RUN_ONCE);
  cr_assert(*flag, "the controller closed the worker's connection");
}

static uint64_t submit_true(ty_rpc_client *cl) {
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  char *argv[] = {"true"};
  cmd.n_argv = 1, cmd.argv = argv, cmd.cwd = "/tmp";
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = "t", job.user = "alice";
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND, job.command = &cmd;
  Trainyard__SubmitJobRequest req = TRAINYARD__SUBMIT_JOB_REQUEST__INIT;
  req.job = &job;
  uint8_t buf[256];
  ty_buf out;
  size_t len = trainyard__submit_job_request__pack(&req, buf);
  cr_assert_eq(ctl_call(cl, TY_M_SUBMIT_JOB, buf, len, &out), 0);
  Trainyard__SubmitJobResponse *sr =
      trainyard__submit_job_response__unpack(NULL, out.len, out.data);
  cr_assert(sr);
  uint64_t id = sr->job_id;
  trainyard__submit_job_response__free_unpacked(sr, NULL);
  ty_buf_close(&out);
  return id;
}

/* The reasons of the job's events, one a line, as the last get_job saw
 * them: a requeue's reason stays there once the next scheduling pass has
 * given the pending job its own. */
static char job_events[2048];

static Trainyard__JobInfo *get_job(ty_rpc_client *cl, uint64_t id) {
  Trainyard__GetJobRequest req = TRAINYARD__GET_JOB_REQUEST__INIT;
  req.job_id = id;
  uint8_t buf[32];
  ty_buf out;
  cr_assert_eq(ctl_call(cl, TY_M_GET_JOB, buf, trainyard__get_job_request__pack(&req, buf), &out),
               0);
  Trainyard__GetJobResponse *r = trainyard__get_job_response__unpack(NULL, out.len, out.data);
  ty_buf_close(&out);
  cr_assert(r && r->job);
  job_events[0] = 0;
  for (size_t i = 0; i < r->n_events; i++) {
    size_t at = strlen(job_events);
    snprintf(job_events + at, sizeof job_events - at, "%s\n", r->events[i]->reason);
  }
  Trainyard__JobInfo *j = r->job;
  r->job = NULL;
  trainyard__get_job_response__free_unpacked(r, NULL);
  return j;
}

static Trainyard__NodeInfo *get_w1(ty_rpc_client *cl) {
  ty_buf out;
  cr_assert_eq(ctl_call(cl, TY_M_LIST_NODES, NULL, 0, &out), 0);
  Trainyard__ListNodesResponse *r = trainyard__list_nodes_response__unpack(NULL, out.len, out.data);
  ty_buf_close(&out);
  cr_assert(r && r->n_nodes == 1);
  Trainyard__NodeInfo *n = r->nodes[0];
  r->n_nodes = 0;
  trainyard__list_nodes_response__free_unpacked(r, NULL);
  return n;
}

/* Whether the job shows the answer to its launch number `launches`: the
 * first one leaves RUNNING (requeued or failed), a second one is the
 * requeued job running again. */
static bool settled(const Trainyard__JobInfo *j, int launches) {
  return launches > 1 ? j->requeue_count > 0 && j->state == TRAINYARD__JOB_STATE__JOB_RUNNING
                      : j->state != TRAINYARD__JOB_STATE__JOB_RUNNING;
}

/* A controller and a worker that asked to register with it as w->name,
 * answering the first LaunchTask with w->status, w->message and w->marker. */
static void open_asking(running *r, fake_worker *w) {
  ctl_start(r, dir, 60000);
  cr_assert_eq(uv_loop_init(&w->loop), 0);
  ty_rpc_conn_opts opts = {.on_request = on_request, .on_close = on_close, .ud = w};
  cr_assert_eq(ty_rpc_connect(&w->loop, "127.0.0.1", ty_controller_rpc_port(r->ctl), &opts, 10000,
                              on_connect, w),
               0);
  run_until(w, &w->registered);
}

/* The same, w1 registered. */
static void open_both(running *r, fake_worker *w) {
  open_asking(r, w);
  cr_assert_eq(w->reg_status, 0, "RegisterNode refused: %s", w->reg_error);
}

static void close_both(running *r, fake_worker *w) {
  if (!w->closed) ty_rpc_close(w->conn);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&w->loop), 0);
  ctl_stop(r);
  ty_controller_destroy(r->ctl);
  uv_loop_close(&r->loop);
}

/* Runs the worker's loop until it has had `launches` LaunchTasks. */
static void run_launches(fake_worker *w, int launches) {
  while (w->launches < launches && !w->closed)
    uv_run(&w->loop, UV_RUN_ONCE);
  cr_assert_eq(w->launches, launches, "LaunchTask sent %d times", w->launches);
}

/* A controller and a worker w1 answering the job's first LaunchTask with
 * status, message and marker (and later ones with 0): the job once the
 * answer to its launch number `launches` is handled, and w1 as ListNodes
 * shows it then, in *out_node. */
static Trainyard__JobInfo *refuse_with(fake_worker w, int launches,
                                       Trainyard__NodeInfo **out_node) {
  running r;
  open_both(&r, &w);
  ty_rpc_client *cl = ctl_client(&r);
  uint64_t id = submit_true(cl);
  run_launches(&w, launches);
  /* The last answer reaches the controller on another connection than the
   * test's calls: wait until the job left the launch it answered and its
   * events (committed after the transition) name the refusal. */
  Trainyard__JobInfo *j = get_job(cl, id);
  for (int64_t end = ty_mono_ms() + 30000;
       ty_mono_ms() < end && !(settled(j, launches) && strstr(job_events, " on w1: "));) {
    trainyard__job_info__free_unpacked(j, NULL);
    uv_run(&w.loop, UV_RUN_NOWAIT);
    usleep(5000);
    j = get_job(cl, id);
  }
  *out_node = get_w1(cl);
  ty_rpc_client_close(cl);
  close_both(&r, &w);
  return j;
}

static Trainyard__JobInfo *refuse_once(int status, const char *message, bool marker, int launches,
                                       Trainyard__NodeInfo **out_node) {
  return refuse_with((fake_worker){.status = status, .message = message, .marker = marker},
                     launches, out_node);
}

/* A stopping worker's node places nothing more: DRAINING, and DRAINED as
 * soon as the controller sees nothing left running there (the requeued
 * job is not), which may come before the test reads it. */
static void expect_drained(const Trainyard__NodeInfo *n) {
  cr_assert(n->state == TRAINYARD__NODE_STATE__NODE_DRAINING ||
                n->state == TRAINYARD__NODE_STATE__NODE_DRAINED,
            "node state %d, not DRAINING or DRAINED", n->state);
  cr_assert_str_eq(n->reason, "worker shutting down");
}

static void free_both(Trainyard__JobInfo *j, Trainyard__NodeInfo *n) {
  trainyard__job_info__free_unpacked(j, NULL);
  trainyard__node_info__free_unpacked(n, NULL);
}

Test(launch_refused, by_a_stopping_worker_requeues_the_job_and_drains_the_node) {
  Trainyard__NodeInfo *n = NULL;
  /* The message says nothing of a stop: the field alone decides. */
  Trainyard__JobInfo *j = refuse_once(TY_ESTATE, "refused", true, 1, &n);
  cr_assert_eq(j->state, TRAINYARD__JOB_STATE__JOB_PENDING, "the job is not requeued: %s",
               j->reason);
  cr_assert_eq(j->requeue_count, 1u);
  cr_assert(strstr(job_events, "launch refused on w1: refused"), "%s", job_events);
  expect_drained(n);
  free_both(j, n);
}

Test(launch_refused, by_an_older_stopping_worker_is_read_from_its_message) {
  Trainyard__NodeInfo *n = NULL;
  Trainyard__JobInfo *j = refuse_once(TY_ESTATE, "node w1 is shutting down", false, 1, &n);
  cr_assert_eq(j->state, TRAINYARD__JOB_STATE__JOB_PENDING, "%s", j->reason);
  cr_assert_eq(j->requeue_count, 1u);
  expect_drained(n);
  free_both(j, n);
}

/* Not stopping: the node stays UP and the requeued job is launched there
 * again (the second LaunchTask succeeds). */
Test(launch_refused, by_an_unregistered_worker_leaves_the_node_up) {
  Trainyard__NodeInfo *n = NULL;
  Trainyard__JobInfo *j = refuse_once(TY_ESTATE, "worker is not registered yet", false, 2, &n);
  cr_assert_eq(j->state, TRAINYARD__JOB_STATE__JOB_RUNNING, "%s", j->reason);
  cr_assert_eq(j->requeue_count, 1u);
  cr_assert_eq(n->state, TRAINYARD__NODE_STATE__NODE_UP, "%s", n->reason);
  free_both(j, n);
}

/* Any other refusal is the job's: it fails, and the node stays UP. */
Test(launch_refused, for_another_reason_fails_the_job) {
  Trainyard__NodeInfo *n = NULL;
  Trainyard__JobInfo *j =
      refuse_once(TY_ENOTFOUND, "cwd /tmp does not exist on node w1", false, 1, &n);
  cr_assert_eq(j->state, TRAINYARD__JOB_STATE__JOB_FAILED, "%s", j->reason);
  cr_assert_eq(j->requeue_count, 0u);
  cr_assert_eq(n->state, TRAINYARD__NODE_STATE__NODE_UP, "%s", n->reason);
  free_both(j, n);
}

/* A failure the worker marks as its node's (node_fault: a job directory
 * it cannot make, a full disk) drains the node and requeues the job,
 * which then waits for another node; the requeue is not a rank failure's. */
Test(launch_refused, for_the_nodes_reason_drains_the_node_and_requeues_the_job) {
  Trainyard__NodeInfo *n = NULL;
  const char *why = "job directory /s/jobs/1 on node w1: cannot write its .trainyard-job: No "
                    "space left on device";
  Trainyard__JobInfo *j =
      refuse_with((fake_worker){.status = TY_EIO, .message = why, .node_fault = true}, 1, &n);
  cr_assert_eq(j->state, TRAINYARD__JOB_STATE__JOB_PENDING, "the job is not requeued: %s",
               j->reason);
  cr_assert_eq(j->requeue_count, 1u);
  cr_assert(strstr(job_events, "launch failed on w1: job directory"), "%s", job_events);
  cr_assert(n->state == TRAINYARD__NODE_STATE__NODE_DRAINING ||
                n->state == TRAINYARD__NODE_STATE__NODE_DRAINED,
            "node state %d, not DRAINING or DRAINED", n->state);
  cr_assert(strstr(n->reason, "drained by controller: launch failed: job directory"), "%s",
            n->reason);
  free_both(j, n);
}

/* ---- the TASKS count of `node ls` ---------------------------------------------------------- */

static void on_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *m, bool final, void *ud) {
  (void)c, (void)m, (void) final;
  *(int *)ud = status;
}

/* One call from the worker: its answer's status. */
static int worker_call(fake_worker *w, const char *method, const uint8_t *p, size_t n) {
  int status = 1;
  cr_assert_eq(ty_rpc_call(w->conn, method, p, n, NULL, 0, 10000, on_answer, &status, NULL), 0);
  while (status == 1)
    uv_run(&w->loop, UV_RUN_ONCE);
  return status;
}

/* w1's TASKS once it is `want` (polled: the launch's answer and the close
 * reach the controller on the worker's connection, not the test's). */
static uint32_t w1_tasks(running *r, fake_worker *w, uint32_t want) {
  ty_rpc_client *cl = ctl_client(r);
  Trainyard__NodeInfo *n = get_w1(cl);
  for (int64_t end = ty_mono_ms() + 30000; ty_mono_ms() < end && n->running_tasks != want;) {
    trainyard__node_info__free_unpacked(n, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    usleep(5000);
    n = get_w1(cl);
  }
  uint32_t tasks = n->running_tasks;
  trainyard__node_info__free_unpacked(n, NULL);
  ty_rpc_client_close(cl);
  return tasks;
}

/* A controller, w1 and a job launched there: its id; *out_cl a client of
 * the controller (the caller closes it). */
static uint64_t launched_job(running *r, fake_worker *w, ty_rpc_client **out_cl) {
  open_both(r, w);
  *out_cl = ctl_client(r);
  uint64_t id = submit_true(*out_cl);
  run_launches(w, 1);
  return id;
}

/* The TaskUpdate of job id's rank 0 exiting 0, in buf (64 bytes): its length. */
static size_t exited(uint64_t id, uint8_t *buf) {
  Trainyard__TaskUpdateRequest tu = TRAINYARD__TASK_UPDATE_REQUEST__INIT;
  tu.job_id = id, tu.state = TRAINYARD__TASK_STATE__TASK_EXITED;
  return trainyard__task_update_request__pack(&tu, buf);
}

/* A launch the worker accepted counts at once, and an end it reports
 * uncounts it, without waiting for its next heartbeat (this worker sends
 * none). */
Test(node_tasks, follow_launches_and_ends_between_heartbeats) {
  running r;
  fake_worker w = {0};
  ty_rpc_client *cl;
  uint64_t id = launched_job(&r, &w, &cl);
  cr_assert_eq(w1_tasks(&r, &w, 1), 1u, "the accepted launch is not counted");
  uint8_t buf[64];
  cr_assert_eq(worker_call(&w, TY_M_TASK_UPDATE, buf, exited(id, buf)), 0);
  cr_assert_eq(w1_tasks(&r, &w, 0), 0u, "the reported end is still counted");
  Trainyard__JobInfo *j = get_job(cl, id);
  cr_assert_eq(j->state, TRAINYARD__JOB_STATE__JOB_COMPLETED, "%s", j->reason);
  trainyard__job_info__free_unpacked(j, NULL);
  ty_rpc_client_close(cl);
  close_both(&r, &w);
}

/* A stopping worker's last heartbeat counted its tasks before it killed
 * them; once it exits (its connection closes) its node shows none, while
 * it stays DRAINING ("worker shutting down") until the node timeout. */
Test(node_tasks, are_none_once_a_stopping_worker_exits) {
  running r;
  fake_worker w = {0};
  open_both(&r, &w);
  ty_rpc_client *cl = ctl_client(&r);
  (void)submit_true(cl);
  ty_rpc_client_close(cl);
  run_launches(&w, 1);
  Trainyard__HeartbeatRequest hb = TRAINYARD__HEARTBEAT_REQUEST__INIT;
  hb.node = "w1", hb.running_tasks = 1, hb.stopping = true;
  uint8_t buf[64];
  cr_assert_eq(worker_call(&w, TY_M_HEARTBEAT, buf, trainyard__heartbeat_request__pack(&hb, buf)),
               0);
  cr_assert_eq(w1_tasks(&r, &w, 1), 1u);
  ty_rpc_close(w.conn);
  while (!w.closed)
    uv_run(&w.loop, UV_RUN_ONCE);
  cr_assert_eq(w1_tasks(&r, &w, 0), 0u, "the exited worker's node still counts its tasks");
  cl = ctl_client(&r);
  Trainyard__NodeInfo *n = get_w1(cl);
  cr_assert_eq(n->state, TRAINYARD__NODE_STATE__NODE_DRAINING);
  cr_assert_str_eq(n->reason, "worker shutting down");
  trainyard__node_info__free_unpacked(n, NULL);
  ty_rpc_client_close(cl);
  close_both(&r, &w);
}

/* ---- a task's end reported twice ------------------------------------------------------------- */

/* The answers to a worker's calls, in the order they arrived. */
typedef struct answers {
  int order[2], status[2];
  int n;
} answers;

typedef struct answer_slot {
  answers *a;
  int which;
} answer_slot;

static void on_ordered_answer(ty_rpc_conn *c, int status, const ty_rpc_msg *m, bool final,
                              void *ud) {
  (void)c, (void)m, (void) final;
  answer_slot *s = ud;
  s->a->status[s->which] = status;
  s->a->order[s->a->n++] = s->which;
}

/* A worker that sends an end again before its first report was answered
 * (its retry timer resends every unacknowledged end) forgets the task on
 * the first answer it gets. The copy finds the rank already ended in
 * memory, its commit maybe still in flight: answering the copy at once
 * would let a controller killed before that commit lose the end, and run
 * the job again. The copy's answer comes after the first one's, which is
 * sent once the end is stored. */
Test(node_tasks, a_repeated_end_is_answered_after_the_first_is_stored) {
  running r;
  fake_worker w = {0};
  ty_rpc_client *cl;
  uint64_t id = launched_job(&r, &w, &cl);
  uint8_t buf[64];
  size_t len = exited(id, buf);
  answers a = {0};
  answer_slot slots[2] = {{&a, 0}, {&a, 1}};
  for (int i = 0; i < 2; i++)
    cr_assert_eq(ty_rpc_call(w.conn, TY_M_TASK_UPDATE, buf, len, NULL, 0, 10000, on_ordered_answer,
                             &slots[i], NULL),
                 0);
  while (a.n < 2 && !w.closed)
    uv_run(&w.loop, UV_RUN_ONCE);
  cr_assert_eq(a.n, 2, "the controller closed the worker's connection");
  cr_expect_eq(a.status[0], 0);
  cr_expect_eq(a.status[1], 0);
  cr_expect_eq(a.order[0], 0, "the repeated end was answered before the first one was stored");
  Trainyard__JobInfo *j = get_job(cl, id);
  cr_expect_eq(j->state, TRAINYARD__JOB_STATE__JOB_COMPLETED, "%s", j->reason);
  trainyard__job_info__free_unpacked(j, NULL);
  ty_rpc_client_close(cl);
  close_both(&r, &w);
}

TestSuite(register_name, .init = setup, .fini = teardown, .timeout = 60);

/* A name hostlists cannot write (-w could not address it, `nodes -o %N`
 * would print it as two) is refused, named, and no node is added. */
static void refused_name(const char *name, const char *shown) {
  running r;
  fake_worker w = {.name = name};
  open_asking(&r, &w);
  cr_expect_eq(w.reg_status, TY_EINVAL, "%s: %s", name, w.reg_error);
  char want[128];
  snprintf(want, sizeof want, "node.name: \"%s\" is not a node name", shown);
  cr_expect(strstr(w.reg_error, want), "want \"%s\" in \"%s\"", want, w.reg_error);
  ty_rpc_client *cl = ctl_client(&r);
  ty_buf out;
  cr_assert_eq(ctl_call(cl, TY_M_LIST_NODES, NULL, 0, &out), 0);
  Trainyard__ListNodesResponse *l = trainyard__list_nodes_response__unpack(NULL, out.len, out.data);
  ty_buf_close(&out);
  cr_assert(l);
  cr_expect_eq(l->n_nodes, 0u, "%s was registered", name);
  trainyard__list_nodes_response__free_unpacked(l, NULL);
  ty_rpc_client_close(cl);
  close_both(&r, &w);
}

Test(register_name, with_a_comma_or_bracket_is_refused) {
  refused_name("w,x[1]", "w,x[1]");
}

Test(register_name, with_a_control_byte_is_refused) {
  refused_name("w\x01x", "w?x");
}
