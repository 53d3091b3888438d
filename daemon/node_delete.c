/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainctl node delete NAME: UpdateNode's "delete", Slurm's `scontrol
 * delete nodename`. An operator removes a decommissioned node; it is
 * refused while the node has running tasks (its worker's count, or a live
 * job's rank placed there) or is neither DOWN nor DRAINED, naming which.
 * Else the node leaves memory at once (`nodes` no longer lists it, the
 * scheduler no longer counts it, its name is free) and its row leaves the
 * store, with a "delete" event naming the operator in its node history, in
 * one transaction; one that is not stored is undone. A worker of that name
 * that registers later -- still running, or started again -- is a new
 * node: its worker's connection is closed, so its next contact is a
 * RegisterNode.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

/* Live jobs holding a slot on n: how many, the first one's id in *first. */
static uint32_t jobs_on(const ty_controller *ctl, const ty_cluster_node *n, uint64_t *first) {
  uint32_t k = 0;
  for (size_t i = 0; i < ctl->n_jobs; i++) {
    const ty_job *j = ctl->jobs[i];
    for (uint32_t s = 0; s < j->n_slots; s++)
      if (j->slots[s].node == n && (j->slots[s].live || j->slots[s].held)) {
        if (!k++) *first = j->id;
        break;
      }
  }
  return k;
}

/* Why n cannot be deleted now, into err; 0 when it can. */
static int refuse(const ty_controller *ctl, const ty_cluster_node *n, char *err, size_t len) {
  uint64_t first = 0;
  uint32_t jobs = jobs_on(ctl, n, &first);
  if (jobs)
    return ty_errf(err, len, TY_ESTATE,
                   "node %.64s has running tasks (%s %llu%s): drain it (trainctl node drain "
                   "%.64s) and delete it once they ended",
                   n->name, jobs == 1 ? "job" : "jobs", (unsigned long long)first,
                   jobs > 1 ? " and more" : "", n->name);
  if (n->running_tasks)
    return ty_errf(err, len, TY_ESTATE,
                   "node %.64s has running tasks (%u, by its worker's count): drain it "
                   "(trainctl node drain %.64s) and delete it once they ended",
                   n->name, n->running_tasks, n->name);
  if (n->state != TY_NODE_DOWN && n->state != TY_NODE_DRAINED)
    return ty_errf(err, len, TY_ESTATE,
                   "node %.64s is %s: only a DOWN or DRAINED node can be deleted (drain it "
                   "first: trainctl node drain %.64s)",
                   n->name, ty_node_state_name(n->state), n->name);
  return 0;
}

typedef struct del_ctx {
  ty_reply *r;
  ty_cluster_node *node; /* in ctl->deleted_nodes until the controller stops */
} del_ctx;

/* Not stored: the node is back, unless a node of its name registered in
 * the meantime (that one stays; the old one's row is still the store's
 * until the new one's registration overwrote it). */
static void deleted(int status, void *ud) {
  del_ctx *d = ud;
  ty_controller *ctl = d->r->ctl;
  if (status != 0 && !ty__node_find(ctl, d->node->name)) {
    ty_warn("node %s: the deletion was not stored; the node is back", d->node->name);
    ty__node_unremove(ctl, d->node);
  }
  ty__admin_committed(status, d->r);
  free(d);
}

void ty__node_delete(ty_controller *ctl, ty_reply *r, ty_cluster_node *n, const char *reason) {
  char err[TY_ERR_LEN];
  int rc = refuse(ctl, n, err, sizeof err);
  if (rc != 0) {
    ty__reply_finish(r, rc, err);
    return;
  }
  ty_txn *t = ty_txn_create();
  char actor[96];
  ty__actor_of(r->who.user, actor, sizeof(actor));
  ty_txn_delete_node(t, n->name);
  ty__node_event(n, n->state, n->state, "delete", reason, actor, t);
  ty_info("node %s: deleted by %s%s%s", n->name, actor, reason[0] ? ": " : "", reason);
  ty__conv_update_node_resp(n, &r->out);
  ty_rpc_conn *conn = n->conn;
  n->conn = NULL;
  n->conn_gen++;
  ty__node_remove(ctl, n);
  if (conn) ty_rpc_close(conn); /* its worker registers again: a new node */
  del_ctx *d = ty_xcalloc(1, sizeof(*d));
  *d = (del_ctx){r, n};
  ty__commit(ctl, t, deleted, d);
}
