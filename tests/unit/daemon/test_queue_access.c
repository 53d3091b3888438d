/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/queue_access.c: a queue's access lists resolved on this host
 * (unknown names refused naming them) and who they let in: a named user,
 * a member of a named group by primary or supplementary gid, no one else;
 * no lists let everyone in.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon.h"

static ty_queue_info queue(const char *groups, const char *users) {
  ty_queue_info q = {.name = "high", .state = TY_QUEUE_OPEN, .share = 1};
  snprintf(q.allow_groups, sizeof q.allow_groups, "%s", groups);
  snprintf(q.allow_users, sizeof q.allow_users, "%s", users);
  return q;
}

static ty_auth_id someone(const char *user, uint32_t gid, uint32_t supplementary) {
  ty_auth_id id = {.known = true, .uid = 5000, .gid = gid};
  snprintf(id.user, sizeof id.user, "%s", user);
  if (supplementary) id.groups[0] = supplementary, id.n_groups = 1;
  return id;
}

Test(queue_access, names_resolve_on_this_host_and_unknown_ones_are_named) {
  ty_queue_info q = queue("root", "root");
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_queue_access_resolve(&q, err, sizeof err), 0, "%s", err);
  cr_assert_eq(q.n_allow_gids, 1u);
  cr_assert_eq(q.allow_gids[0], 0u, "group root is gid 0");
  q = queue("root,tyq-no-such-group", "");
  cr_assert_eq(ty_queue_access_resolve(&q, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "allow_groups: no group \"tyq-no-such-group\" on the controller's host"),
            "%s", err);
  cr_assert_eq(q.n_allow_gids, 1u, "the groups that exist are still resolved");
  q = queue("root", "tyq-no-such-user");
  cr_assert_eq(ty_queue_access_resolve(&q, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "allow_users: no user \"tyq-no-such-user\" on the controller's host"), "%s",
            err);
  cr_assert_eq(q.n_allow_gids, 1u, "an unknown user leaves the groups resolved");
}

Test(queue_access, the_lists_let_in_named_users_and_group_members_only) {
  ty_queue_info open = queue("", "");
  ty_auth_id alice = someone("alice", 100, 0);
  cr_assert(ty_queue_access_allows(&open, &alice), "no lists: everyone");
  ty_queue_info q = queue("hpc", "bob");
  q.allow_gids[0] = 700, q.n_allow_gids = 1;
  cr_assert_not(ty_queue_access_allows(&q, &alice));
  ty_auth_id bob = someone("bob", 100, 0);
  cr_assert(ty_queue_access_allows(&q, &bob), "a named user");
  ty_auth_id bobby = someone("bobby", 100, 0);
  cr_assert_not(ty_queue_access_allows(&q, &bobby), "a name is matched whole");
  ty_auth_id primary = someone("carol", 700, 0);
  cr_assert(ty_queue_access_allows(&q, &primary), "a member by primary group");
  ty_auth_id supplementary = someone("dave", 100, 700);
  cr_assert(ty_queue_access_allows(&q, &supplementary), "a member by supplementary group");
  ty_queue_info users_only = queue("", "bob");
  cr_assert_not(ty_queue_access_allows(&users_only, &primary), "no group listed: members of none");
}
