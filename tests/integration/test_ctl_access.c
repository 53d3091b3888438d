/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-queue access lists (docs/security.md, "Who may submit where"): a
 * queue's allow_groups and allow_users decide who may submit to it or move
 * a job into it, as Slurm's AllowGroups; operators always may, and the
 * lists outlive a traind restart. Test users and a group are made with
 * useradd and groupadd (harness_auth.c) and removed at exit. Part of the
 * ctl program (test_ctl.c has the other trainctl commands).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/harness.h"

typedef struct someone {
  char name[64];
  uid_t uid;
  gid_t gid;
} someone;

/* trainctl ARGS as u (NULL: root, an operator) exits `code`, and its
 * stdout or stderr holds want (NULL: anything); stdout in *out (may be
 * NULL; the caller frees). */
static void as(const it_cluster *c, const someone *u, const char *const *args, int code,
               const char *want, char **out_kept) {
  char *out = NULL, *err = NULL;
  int rc = u ? it_trainctl_as(c, u->uid, u->gid, "/", &out, &err, args)
             : it_trainctl_err(c, &out, &err, args);
  cr_assert_eq(rc, code, "%s %s as %s: exit %d, want %d: %s%s", args[0], args[1],
               u ? u->name : "root", rc, code, out, err);
  if (want)
    cr_assert(strstr(out, want) || strstr(err, want), "%s %s as %s: want [%s] in:\n%s%s", args[0],
              args[1], u ? u->name : "root", want, out, err);
  if (out_kept)
    *out_kept = out;
  else
    free(out);
  free(err);
}

/* A held job of `queue` submitted as u (NULL: root): its id. */
static void submit_held(const it_cluster *c, const someone *u, const char *queue, char id[32]) {
  char *out = NULL;
  as(c, u,
     (const char *const[]){"submit", "--parsable", "-H", "-p", queue, "--command", "--", "true",
                           NULL},
     0, NULL, &out);
  snprintf(id, 32, "%llu", strtoull(out, NULL, 10));
  free(out);
}

Test(ctl_access, queue_access_lists_decide_who_may_submit_and_move, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  someone outsider, member, named;
  it_user_add(outsider.name, sizeof outsider.name, &outsider.uid, &outsider.gid);
  it_user_add(member.name, sizeof member.name, &member.uid, &member.gid);
  it_user_add(named.name, sizeof named.name, &named.uid, &named.gid);
  char group[64];
  it_group_add(group, sizeof group, member.name);

  /* Names must exist on traind's host; bad ones are named. */
  as(&c, NULL,
     (const char *const[]){"queue", "create", "high", "--allow-groups", "tyit-no-such-group", NULL},
     1, "allow_groups: no group \"tyit-no-such-group\" on the controller's host", NULL);
  as(&c, NULL,
     (const char *const[]){"queue", "create", "high", "--allow-users", "tyit-no-such-user", NULL},
     1, "allow_users: no user \"tyit-no-such-user\" on the controller's host", NULL);
  as(&c, NULL, (const char *const[]){"queue", "create", "high", "--allow-users", "a,,b", NULL}, 2,
     "--allow-users: \"\" is not a user or group name", NULL);
  as(&c, NULL,
     (const char *const[]){"queue", "create", "high", "--tier", "10", "--allow-groups", group,
                           "--allow-users", named.name, NULL},
     0, NULL, NULL);
  char allowed[256];
  snprintf(allowed, sizeof allowed, "(allowed: groups %s; users %s)", group, named.name);

  /* Outside the lists: refused at submit, --test-only and move, exit 1. */
  char want[512];
  snprintf(want, sizeof want, "queue high: user %s may not submit here %s", outsider.name, allowed);
  as(&c, &outsider, (const char *const[]){"submit", "-p", "high", "--command", "--", "true", NULL},
     1, want, NULL);
  as(&c, &outsider,
     (const char *const[]){"submit", "--test-only", "-p", "high", "--command", "--", "true", NULL},
     1, want, NULL);
  char mine[32];
  submit_held(&c, &outsider, "default", mine);
  snprintf(want, sizeof want, "queue high: user %s may not move jobs here %s", outsider.name,
           allowed);
  as(&c, &outsider, (const char *const[]){"job", "move", mine, "high", NULL}, 1, want, NULL);

  /* A member of the group (supplementary), a named user and root may. */
  char id[32];
  submit_held(&c, &member, "high", id);
  submit_held(&c, &named, "high", id);
  submit_held(&c, NULL, "high", id);
  /* An operator may move anyone's job in. */
  as(&c, NULL, (const char *const[]){"job", "move", mine, "high", NULL}, 0, NULL, NULL);
  char other[32];
  submit_held(&c, &member, "default", other);
  as(&c, &member, (const char *const[]){"job", "move", other, "high", NULL}, 0, NULL, NULL);

  /* The lists outlive a restart, and are enforced after it. */
  it_controller_restart(&c, false);
  snprintf(want, sizeof want, "\"allow_groups\":[\"%s\"],\"allow_users\":[\"%s\"]", group,
           named.name);
  as(&c, NULL, (const char *const[]){"queue", "show", "high", "--json", NULL}, 0, want, NULL);
  snprintf(want, sizeof want, "queue high: user %s may not submit here", outsider.name);
  as(&c, &outsider, (const char *const[]){"submit", "-p", "high", "--command", "--", "true", NULL},
     1, want, NULL);
  submit_held(&c, &member, "high", id);

  /* ALL opens it to everyone again. */
  as(&c, NULL,
     (const char *const[]){"queue", "update", "high", "--allow-groups", "ALL", "--allow-users",
                           "ALL", NULL},
     0, NULL, NULL);
  submit_held(&c, &outsider, "high", id);
  as(&c, NULL, (const char *const[]){"queue", "ls", NULL}, 0, "ALLOW", NULL);
  it_cluster_stop(&c);
}
