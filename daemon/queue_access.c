/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who may put jobs in which queue: a queue's allow_groups and allow_users
 * (Slurm's AllowGroups, and AllowAccounts of users; docs/security.md).
 *
 * Checked wherever a job enters a queue: SubmitJob (every kind of job,
 * arrays, rlaunch's watched submits and test-only submits), PlanJob and
 * UpdateJob's move. A job already in a queue keeps it through requeues and
 * restarts without a second check, as in Slurm. A caller is allowed when
 * the queue has no lists, the caller is an operator, the caller's name is
 * in allow_users, or one of its groups (primary or supplementary, as
 * getgrouplist found them off the loop when its request was admitted:
 * auth.c) is in allow_groups.
 *
 * The group names are resolved to gids on this host when an operator sets
 * them (every name must then exist: getpwnam_r, getgrnam_r) and when traind
 * starts, so a check is a comparison of numbers and never an NSS call on
 * the loop. A group that is gone at a start matches no one (with a
 * warning) until the queue is updated.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon_internal.h"

/* 0 with the gid of group `name`, TY_ENOTFOUND when there is none. */
static int group_gid(const char *name, uint32_t *out) {
  char buf[16384];
  struct group g, *res = NULL;
  if (getgrnam_r(name, &g, buf, sizeof buf, &res) != 0 || !res) return TY_ENOTFOUND;
  *out = (uint32_t)res->gr_gid;
  return 0;
}

static bool user_exists(const char *name) {
  char buf[16384];
  struct passwd pw, *res = NULL;
  return getpwnam_r(name, &pw, buf, sizeof buf, &res) == 0 && res;
}

int ty_queue_access_resolve(ty_queue_info *q, char *err, size_t len) {
  char name[TY_QUEUE_ALLOW_NAME_LEN + 1];
  int rc = 0;
  q->n_allow_gids = 0;
  for (size_t i = 0; ty_queue_allow_name(q->allow_groups, i, name, sizeof name); i++) {
    if (group_gid(name, &q->allow_gids[q->n_allow_gids]) == 0)
      q->n_allow_gids++;
    else if (rc == 0)
      rc = ty_errf(err, len, TY_EINVAL,
                   "allow_groups: no group \"%s\" on the controller's host (names must exist "
                   "where traind runs)",
                   name);
  }
  for (size_t i = 0; rc == 0 && ty_queue_allow_name(q->allow_users, i, name, sizeof name); i++)
    if (!user_exists(name))
      rc = ty_errf(err, len, TY_EINVAL,
                   "allow_users: no user \"%s\" on the controller's host (names must exist "
                   "where traind runs)",
                   name);
  return rc;
}

bool ty_queue_access_allows(const ty_queue_info *q, const ty_auth_id *who) {
  if (!q->allow_groups[0] && !q->allow_users[0]) return true;
  if (ty_queue_allow_has(q->allow_users, who->user)) return true;
  for (uint32_t i = 0; i < q->n_allow_gids; i++)
    if (ty_auth_id_in_group(who, q->allow_gids[i])) return true;
  return false;
}

int ty__queue_admit(ty_controller *ctl, ty_reply *r, const char *queue, const char *what, char *err,
                    size_t len) {
  const ty_queue_info *q = ty__queue_find(ctl, queue);
  if (!q || q->state == TY_QUEUE_DELETED || r->operator|| ty_queue_access_allows(q, &r->who))
    return 0;
  r->refusal = "queue_access";
  char allowed[2 * TY_QUEUE_ALLOW_LEN + 32];
  snprintf(allowed, sizeof allowed, "%s%s%s%s%s", q->allow_groups[0] ? "groups " : "",
           q->allow_groups, q->allow_groups[0] && q->allow_users[0] ? "; " : "",
           q->allow_users[0] ? "users " : "", q->allow_users);
  return ty_errf(err, len, TY_EPERM, "queue %.64s: user %.64s may not %s here (allowed: %.600s)",
                 q->name, r->who.user, what, allowed);
}
