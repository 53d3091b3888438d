/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scheduler integration tests (the binary of test_scheduler.c): reloading
 * the config through a real traind, by SIGHUP and by `trainctl
 * reconfigure`: a good file applied (the weights change `why`'s numbers), a
 * bad one refused with the running settings kept, who reloaded recorded,
 * unknown operators refused and unknown switch members warned of, and the
 * admin events (`trainctl events`) listing queue changes and reloads for
 * operators. States, files and exit codes, never wall-clock time.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "lib/wire/wire.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"
#include "tests/integration/sched_helpers.h"

/* ---- reloading the config ------------------------------------------------------------ */

/* Rewrites the cluster's --config with its start's lines and `more`. */
static void rewrite_config(const it_cluster *c, const char *more) {
  FILE *f = fopen(c->config, "w");
  cr_assert(f, "%s: %s", c->config, strerror(errno));
  fprintf(f, "auth.nodes = w[1-%d]\npreempt.min_run = 0\npreempt.grace = 5\n%s\n", IT_MAX_WORKERS,
          more);
  fclose(f);
}

/* Sends traind SIGHUP and waits until its log has said `text` n times. */
static void reload(const it_cluster *c, const char *text, int n) {
  char path[300];
  snprintf(path, sizeof path, "%s/traind.stderr", c->dir);
  cr_assert_eq(kill(c->traind, SIGHUP), 0);
  for (int i = 0; i < 500; i++) {
    char *log = it_read_text(path);
    int seen = 0;
    for (const char *p = log; p && (p = strstr(p, text)); p++)
      seen++;
    free(log);
    if (seen >= n) return;
    it_sleep_ms(20);
  }
  cr_assert_fail("traind never logged \"%s\" %d times after SIGHUP (%s)", text, n, path);
}

static void expect_why(const it_cluster *c, const char *id, const char *text) {
  char *out = NULL;
  cr_assert_eq(it_trainctl(c, &out, (const char *const[]){"why", id, NULL}), 0);
  cr_assert(strstr(out, text), "want \"%s\" in:\n%s", text, out);
  free(out);
}

/* SIGHUP (systemctl reload) reads --config again, as slurmctld's
 * reconfigure: a good file applies at once (the job priority weight shows
 * in why); a file that does not parse, or that changes how workers
 * authenticate, is refused with the reason in the log, and the controller
 * keeps running with the settings it had. */
Test(scheduler, sighup_reloads_the_config_and_keeps_it_when_the_new_one_is_bad, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  job_opts o = {.cpus = 1};
  uint64_t run = submit(cl, "sleep 60", &o), wait = submit(cl, "sleep 60", &o);
  cr_assert_eq(it_wait_state(cl, run, ST(RUNNING), 30000), ST(RUNNING));
  char id[32];
  snprintf(id, sizeof id, "%llu", (unsigned long long)wait);
  expect_why(&c, id, "job priority 5000"); /* the default weight, 10000, of 0.5 */
  rewrite_config(&c, "weight.priority = 2000");
  reload(&c, "read again and applied", 1);
  expect_why(&c, id, "job priority 1000");
  rewrite_config(&c, "weight.priority = 2000\nweight.bogus = 1");
  reload(&c, "refused, the running settings stay: line 5: unknown key \"weight.bogus\"", 1);
  rewrite_config(&c, "auth.service_user = nobody");
  reload(&c, "refused, the running settings stay: auth.service_user differs", 1);
  cr_assert_eq(kill(c.traind, 0), 0, "traind died on SIGHUP");
  expect_why(&c, id, "job priority 1000");
  /* Each reload, applied or refused, is an admin event by the signal. */
  char path[300];
  snprintf(path, sizeof path, "%s/traind.stderr", c.dir);
  it_wait_log(path, ": reconfigure by signal:SIGHUP: weight.priority: 10000 -> 2000");
  it_wait_log(path, ": refused by signal:SIGHUP: --config ");
  /* The controller still schedules: the waiting job starts when the first ends. */
  char rid[32];
  snprintf(rid, sizeof rid, "%llu", (unsigned long long)run);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *const[]){"cancel", rid, NULL}), 0);
  cr_assert_eq(it_wait_state(cl, wait, ST(RUNNING), 30000), ST(RUNNING));
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* `trainctl reconfigure` (the Reconfigure RPC, as `scontrol reconfigure`)
 * does what SIGHUP does from any host: a good file applies at once and the
 * answer says what changed; a bad file is refused naming the line and key
 * (and a key the workers' credentials depend on is refused), the running
 * settings stay; a user who is not an operator is refused. Each applied or
 * refused reconfigure is an admin event naming who asked (traind's log
 * line of the event). */
Test(scheduler, trainctl_reconfigure_applies_refuses_and_records_who, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  job_opts o = {.cpus = 1};
  uint64_t run = submit(cl, "sleep 60", &o), wait = submit(cl, "sleep 60", &o);
  cr_assert_eq(it_wait_state(cl, run, ST(RUNNING), 30000), ST(RUNNING));
  char id[32];
  snprintf(id, sizeof id, "%llu", (unsigned long long)wait);
  expect_why(&c, id, "job priority 5000");
  rewrite_config(&c, "weight.priority = 2000");
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_trainctl(&c, &out, (const char *const[]){"reconfigure", NULL}), 0);
  cr_assert(strstr(out, "applied it:\n  weight.priority") &&
                strstr(out, "weight.priority: 10000 -> 2000"),
            "%s", out);
  free(out);
  expect_why(&c, id, "job priority 1000");
  /* The same file again: nothing changed. */
  cr_assert_eq(it_trainctl(&c, &out, (const char *const[]){"reconfigure", "--json", NULL}), 0);
  cr_assert(strstr(out, "\"changed\":[]"), "%s", out);
  free(out);
  rewrite_config(&c, "weight.priority = 3000\nweight.bogus = 1");
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *const[]){"reconfigure", NULL}), 0);
  cr_assert(strstr(err, "refused, the running settings stay: line 5: unknown key \"weight.bogus\""),
            "%s", err);
  free(out), free(err);
  rewrite_config(&c, "weight.priority = 3000\nauth.service_user = nobody");
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *const[]){"reconfigure", NULL}), 0);
  cr_assert(strstr(err, "auth.service_user differs"), "%s", err);
  free(out), free(err);
  expect_why(&c, id, "job priority 1000"); /* neither refused file changed anything */
  /* A user who is not an operator is refused, and nothing changes. */
  rewrite_config(&c, "weight.priority = 3000");
  char name[32];
  uid_t uid;
  gid_t gid;
  it_user_add(name, sizeof name, &uid, &gid);
  const char *argv[] = {it_bin("TY_TRAINCTL"), "reconfigure", NULL};
  cr_assert_neq(it_run_as(&c, uid, gid, "/tmp", &out, &err, argv), 0);
  cr_assert(err && strstr(err, "only operators"), "%s", err ? err : "");
  free(out), free(err);
  expect_why(&c, id, "job priority 1000");
  /* Who asked is recorded with each applied and refused reconfigure. */
  char path[300];
  snprintf(path, sizeof path, "%s/traind.stderr", c.dir);
  char *log = it_read_text(path);
  cr_assert(log && strstr(log, "reconfigure by user:") &&
                strstr(log, "weight.priority: 10000 -> 2000"),
            "no admin event of the reconfigure in %s", path);
  cr_assert(strstr(log, "refused by user:"), "no admin event of the refusal in %s", path);
  free(log);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A typo in a reload: an auth.operators name that is no user on the host is
 * refused naming it, as an unknown auth.operator_group is, with nothing
 * changed; switch group members that are no known node and that no worker
 * may register as (auth.nodes) are warned of in the answer and the log,
 * and the reload applies. `node show` and `nodes --json` show each node's
 * switch group. */
Test(scheduler, reconfigure_refuses_unknown_operators_and_warns_of_unknown_switch_members,
     .timeout = 120) {
  it_cluster c;
  start(&c, 1, 1);
  char *out = NULL, *err = NULL;
  rewrite_config(&c, "switch.r1 = w1\nauth.operators = tyitnosuchuser");
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *const[]){"reconfigure", NULL}), 0);
  cr_assert(strstr(err, "auth.operators: no user \"tyitnosuchuser\" on this host"), "%s", err);
  free(out), free(err);
  cr_assert_eq(it_trainctl(&c, &out, (const char *const[]){"node", "show", "w1", NULL}), 0);
  cr_assert(strstr(out, "\n  Switch=(none)\n"), "the refused reload applied: %s", out);
  free(out);
  rewrite_config(&c, "switch.r1 = w1, wrk1\nswitch.r2 = nosuch[1-2]\nswitch.r3 = w2");
  cr_assert_eq(it_trainctl(&c, &out, (const char *const[]){"reconfigure", NULL}), 0);
  cr_assert(strstr(out, "warning: switch.r1: wrk1 is no known node and matches no auth.nodes"),
            "%s", out);
  cr_assert(strstr(out, "warning: switch.r2: nosuch1, nosuch2 are no known node and match no "
                        "auth.nodes entry"),
            "%s", out);
  cr_assert_null(strstr(out, "switch.r3"), "w2 may register (auth.nodes = w[1-4]): %s", out);
  cr_assert(strstr(out, "switch groups: 0 -> 3 switches"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *const[]){"node", "show", "w1", NULL}), 0);
  cr_assert(strstr(out, "\n  Switch=r1\n"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *const[]){"nodes", "--json", NULL}), 0);
  cr_assert(strstr(out, "\"switch\":\"r1\""), "%s", out);
  free(out);
  char path[300];
  snprintf(path, sizeof path, "%s/traind.stderr", c.dir);
  it_wait_log(path, "reconfigure: switch.r1: wrk1 is no known node");
  it_cluster_stop(&c);
}

/* One ListAdminEvents call with kind and limit: its status, message in msg. */
static int admin_events_call(ty_rpc_client *cl, const char *kind, uint32_t limit, char *msg,
                             size_t len) {
  Trainyard__ListAdminEventsRequest req = TRAINYARD__LIST_ADMIN_EVENTS_REQUEST__INIT;
  req.kind = (char *)kind, req.limit = limit;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_wire_pack(&req.base, &b), 0);
  ty_rpc_result res;
  cr_assert_eq(ty_rpc_client_call(cl, TY_M_LIST_ADMIN_EVENTS, b.data, b.len, 10000, &res), 0);
  int st = res.status;
  snprintf(msg, len, "%s", res.message);
  ty_rpc_result_close(&res);
  ty_buf_close(&b);
  return st;
}

/* `trainctl events` reads the admin events back for operators: a queue's
 * creation and reconfigures by trainctl and by SIGHUP, with who; --kind,
 * --since and --json narrow and shape them; bad options and bad request
 * fields are refused naming them; a user who is not an operator is refused. */
Test(scheduler, events_lists_queue_changes_and_reloads_for_operators, .timeout = 120) {
  it_cluster c;
  start(&c, 1, 1);
  char *out = NULL, *err = NULL;
  cr_assert_eq(it_trainctl(&c, NULL, (const char *const[]){"queue", "create", "evq", NULL}), 0);
  rewrite_config(&c, "weight.priority = 2000");
  cr_assert_eq(it_trainctl(&c, NULL, (const char *const[]){"reconfigure", NULL}), 0);
  rewrite_config(&c, "weight.priority = 3000");
  reload(&c, "reconfigure by signal:SIGHUP", 1);
  for (int i = 0; i < 100; i++) { /* logged first, its event stored just after */
    free(out), out = NULL;
    cr_assert_eq(it_trainctl(&c, &out, (const char *const[]){"events", NULL}), 0);
    if (strstr(out, "signal:SIGHUP")) break;
    it_sleep_ms(100);
  }
  const char *want[] = {"evq", "weight.priority: 10000 -> 2000", "signal:SIGHUP", NULL};
  it_expect_in_order(out, want, "trainctl events");
  cr_assert(strstr(out, "user:") && strstr(out, "create") && strstr(out, "reconfigure"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *const[]){"events", "--kind", "queue", NULL}), 0);
  cr_assert(strstr(out, "evq") && !strstr(out, "signal:SIGHUP"), "%s", out);
  free(out);
  cr_assert_eq(it_trainctl(&c, &out, (const char *const[]){"events", "--json", NULL}), 0);
  cr_assert(strstr(out, "\"actor\":\"signal:SIGHUP\",\"kind\":\"config\""), "%s", out);
  free(out);
  char later[32];
  snprintf(later, sizeof later, "@%lld", (long long)(ty_now_ms() / 1000 + 3600));
  cr_assert_eq(it_trainctl(&c, &out, (const char *const[]){"events", "--since", later, NULL}), 0);
  cr_assert(strstr(out, "No admin events match."), "%s", out);
  free(out);
  /* Bad options, refused by trainctl naming them. */
  cr_assert_neq(
      it_trainctl_err(&c, &out, &err, (const char *const[]){"events", "--kind", "nodes", NULL}), 0);
  cr_assert(strstr(err, "--kind: \"nodes\" is not queue or config"), "%s", err);
  free(out), free(err);
  cr_assert_neq(
      it_trainctl_err(&c, &out, &err, (const char *const[]){"events", "--limit", "0", NULL}), 0);
  cr_assert(strstr(err, "--limit: \"0\" is not a number from 1 to 100000"), "%s", err);
  free(out), free(err);
  cr_assert_neq(
      it_trainctl_err(&c, &out, &err, (const char *const[]){"events", "--since", "soon", NULL}), 0);
  cr_assert(strstr(err, "--since"), "%s", err);
  free(out), free(err);
  /* Bad fields, refused by traind naming them. */
  ty_rpc_client *cl = it_client(&c);
  char msg[TY_ERR_LEN];
  cr_assert_eq(admin_events_call(cl, "nodes", 0, msg, sizeof msg), TY_EINVAL, "%s", msg);
  cr_assert(strstr(msg, "kind: \"nodes\" is not an admin event kind (queue, config)"), "%s", msg);
  cr_assert_eq(admin_events_call(cl, "", 200000, msg, sizeof msg), TY_EINVAL, "%s", msg);
  cr_assert(strstr(msg, "limit: 200000 is above 100000"), "%s", msg);
  ty_rpc_client_close(cl);
  /* Operators only. */
  char name[32];
  uid_t uid;
  gid_t gid;
  it_user_add(name, sizeof name, &uid, &gid);
  const char *argv[] = {it_bin("TY_TRAINCTL"), "events", NULL};
  cr_assert_neq(it_run_as(&c, uid, gid, "/tmp", &out, &err, argv), 0);
  cr_assert(err && strstr(err, "only operators"), "%s", err ? err : "");
  free(out), free(err);
  it_cluster_stop(&c);
}
