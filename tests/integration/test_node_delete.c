/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl node delete (Slurm's scontrol delete nodename) through a real
 * traind, real workers and the trainctl binary: the refusals (an unknown
 * name, a node that is UP, one with running tasks, a caller who is not an
 * operator), each naming why and changing nothing; a deleted node gone
 * from `nodes`, also after a traind restart, its history keeping the
 * delete event with who; and a worker of that name that registers again
 * (started anew, or still running) is a new node.
 */
#include <criterion/criterion.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define ST(x) TRAINYARD__JOB_STATE__JOB_##x
#define NODE(x) TRAINYARD__NODE_STATE__NODE_##x

static const char *me(void) {
  struct passwd *pw = getpwuid(getuid());
  cr_assert(pw && pw->pw_name);
  return pw->pw_name;
}

/* `trainctl nodes` as "NAME STATE" lines, one per node (heap). */
static char *nodes(const it_cluster *c) {
  char *out = NULL;
  cr_assert_eq(it_trainctl(c, &out, (const char *[]){"nodes", "-N", "-h", "-o", "%n %T", NULL}), 0);
  return out;
}

/* trainctl node delete NAME is refused with `want` on stderr, and every
 * node is still listed as before. */
static void refused(const it_cluster *c, const char *name, const char *want) {
  char *before = nodes(c), *out = NULL, *err = NULL;
  cr_assert_neq(it_trainctl_err(c, &out, &err, (const char *[]){"node", "delete", name, NULL}), 0,
                "node delete %s was not refused", name);
  cr_assert(strstr(err, want), "[%s] lacks [%s]", err, want);
  free(out), free(err);
  char *after = nodes(c);
  cr_assert_str_eq(after, before, "a refused delete changed the nodes");
  free(before), free(after);
}

/* Waits up to 30 s for `nodes` to read `want` exactly; returns whether. */
static bool nodes_become(const it_cluster *c, const char *want) {
  for (int i = 0; i < 300; i++) {
    char *out = nodes(c);
    bool same = !strcmp(out, want);
    free(out);
    if (same) return true;
    it_sleep_ms(100);
  }
  return false;
}

Test(node_delete, refusals_name_why_and_change_nothing, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 2, 2);
  refused(&c, "nosuch", "node nosuch not found");
  refused(&c, "w2", "node w2 is UP: only a DOWN or DRAINED node can be deleted");
  /* A drained node whose job still runs: its tasks come first. */
  uint64_t id =
      it_submit_cli(&c, (const char *[]){"-w", "w1", "-c", "1", "--", "sleep", "300", NULL});
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, id, ST(RUNNING), 30000), ST(RUNNING));
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"node", "drain", "w1", NULL}), 0);
  char want[96];
  snprintf(want, sizeof want, "node w1 has running tasks (job %llu)", (unsigned long long)id);
  refused(&c, "w1", want);
  /* Only operators delete (here: a test user; root is one). */
  char name[32];
  uid_t uid;
  gid_t gid;
  it_user_add(name, sizeof name, &uid, &gid);
  char *err = NULL;
  cr_assert_neq(it_trainctl_as(&c, uid, gid, "/tmp", NULL, &err,
                               (const char *[]){"node", "delete", "w2", NULL}),
                0);
  cr_assert(strstr(err, "node delete w2: permission denied: only operators may"), "%s", err);
  free(err);
  char sid[24];
  snprintf(sid, sizeof sid, "%llu", (unsigned long long)id);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"cancel", sid, NULL}), 0);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

Test(node_delete, a_deleted_node_stays_gone_after_a_restart_and_comes_back_new, .timeout = 240) {
  it_cluster c;
  it_cluster_start(&c, 2, 2);
  ty_rpc_client *cl = it_client(&c);
  it_kill9(&c.worker[1]);
  cr_assert(it_wait_nodes(cl, 1, NODE(DOWN), 60000), "w2 never went DOWN");
  char *out = NULL;
  cr_assert_eq(
      it_trainctl(&c, &out,
                  (const char *[]){"node", "delete", "w2", "--reason", "decommissioned", NULL}),
      0);
  cr_assert_str_eq(out, "Node w2 deleted\n");
  free(out);
  out = nodes(&c);
  cr_assert_str_eq(out, "w1 idle\n");
  free(out);
  char *err = NULL;
  cr_assert_neq(it_trainctl_err(&c, &out, &err, (const char *[]){"node", "show", "w2", NULL}), 0);
  cr_assert(strstr(err, "node w2 not found"), "%s", err);
  free(out), free(err);
  /* Out of the store too: not back after a restart. */
  ty_rpc_client_close(cl);
  it_controller_restart(&c, false);
  cl = it_client(&c);
  cr_assert(nodes_become(&c, "w1 idle\n"), "after a restart, not only w1");
  /* Its worker started again: a new node, its history kept. */
  it_worker_start(&c, 1, 2);
  cr_assert(nodes_become(&c, "w1 idle\nw2 idle\n"), "w2 did not register again");
  cr_assert_eq(it_trainctl(&c, &out, (const char *[]){"node", "show", "w2", "--json", NULL}), 0);
  char actor[96];
  snprintf(actor, sizeof actor, "\"actor\":\"user:%s\"", me());
  const char *del = strstr(out, "\"action\":\"delete\",\"reason\":\"decommissioned\"");
  cr_assert(del && strstr(del, actor) && strstr(del, "\"action\":\"register\""), "%s", out);
  free(out);
  /* A DRAINED node whose worker still runs: deleted, it registers again
   * at once as a new node, UP, its drain forgotten. */
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"node", "drain", "w1", NULL}), 0);
  cr_assert(nodes_become(&c, "w1 drained\nw2 idle\n"), "w1 never DRAINED");
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"node", "delete", "w1", NULL}), 0);
  cr_assert(nodes_become(&c, "w2 idle\nw1 idle\n"), "w1 did not register again as new");
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
