/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A --config read again while traind runs (SIGHUP, `systemctl reload
 * traind`, as slurmctld's `scontrol reconfigure`): this file owns applying
 * it to a running controller. main.c reads and parses the file; a file
 * that does not parse never reaches here, so the running settings stay.
 *
 * Applied at once: the scheduler's weights and switches (priority, age,
 * fair share, preemption, backfill, the switch groups) and the auth. lists
 * (auth.operators, auth.operator_group, auth.nodes; a node no longer listed
 * keeps its connection and is refused when it registers again). Refused,
 * naming the key, with nothing changed: a change of auth.workers,
 * auth.cluster_key or auth.service_user, which the workers' credentials
 * were checked against at start (restart traind for those), and an
 * auth.operator_group that names no group on this host.
 */
#include "daemon/daemon_internal.h"

#include <grp.h>
#include <string.h>

#include "scheduler/scheduler.h"

static bool same_str(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* The keys a running controller keeps as they were at its start. */
static int check_fixed(const ty_controller *ctl, ty_auth_policy *p, char *err, size_t len) {
  const ty_auth_policy *now = &ctl->policy;
  if (!p->workers_set) p->workers = ctl->cfg.client_auth; /* as ty__auth_init */
  const char *key = p->workers != now->workers                      ? "auth.workers"
                    : !same_str(p->cluster_key, now->cluster_key)   ? "auth.cluster_key"
                    : !same_str(p->service_user, now->service_user) ? "auth.service_user"
                                                                    : NULL;
  if (!key) return 0;
  return ty_errf(err, len, TY_EINVAL,
                 "%s differs from the running controller's, which checks the workers' "
                 "credentials with it: restart traind to change it",
                 key);
}

static int resolve_group(ty_auth_policy *p, char *err, size_t len) {
  p->has_operator_gid = false;
  if (!p->operator_group) return 0;
  struct group *g = getgrnam(p->operator_group);
  if (!g)
    return ty_errf(err, len, TY_EINVAL, "auth.operator_group: no group \"%s\" on this host",
                   p->operator_group);
  p->has_operator_gid = true;
  p->operator_gid = (uint32_t)g->gr_gid;
  return 0;
}

int ty_controller_reconfigure(ty_controller *ctl, const ty_sched_config *sched,
                              const ty_sched_topology *topo, const ty_auth_policy *policy,
                              char *err, size_t len) {
  ty_auth_policy p;
  ty_policy_copy(policy, &p);
  int rc = check_fixed(ctl, &p, err, len);
  if (rc == 0) rc = resolve_group(&p, err, len);
  if (rc != 0) {
    ty_policy_close(&p);
    return rc;
  }
  ty_policy_close(&ctl->policy);
  ctl->policy = p; /* moved */
  ctl->sched = *sched;
  ty_sched_topology_close(&ctl->topo);
  ty__topology_copy(topo, &ctl->topo);
  for (size_t i = 0; i < ctl->n_nodes; i++)
    ty__node_topology(ctl, ctl->nodes[i]);
  ctl->ls_gen++;          /* listings' priorities and operators' views change */
  ty__sched_request(ctl); /* a pass under the new weights and rules */
  return 0;
}
