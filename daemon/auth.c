/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Authentication and authorisation on the controller (docs/security.md).
 *
 * Every request is admitted here before its handler runs: its envelope's
 * `auth` credential is verified off the loop (a ty_auth_queue: munged round
 * trips and NSS lookups never block the loop) and the handler runs, in
 * arrival order, with the caller's identity in ty_reply.who. There are two
 * queues: clients' and tokens' requests on libuv's thread pool (authq),
 * workers' requests and traind's signed calls to workers on a thread of
 * their own (worker_authq), so a heartbeat never waits behind client work
 * (credential checks, store reads) queued on the pool. Arrival order holds
 * within each queue: per connection, since a connection's requests are of
 * one class (a worker's session, or a client's). The scheme depends on the
 * method's class:
 *
 *   CLIENT  MUNGE of the calling user (--auth munge), or nothing (--auth
 *           none: the caller is taken to be traind's own user).
 *   WORKER  the cluster's service (auth.workers: MUNGE of root or
 *           auth.service_user, or the cluster key), or nothing.
 *   TOKEN   no identity: the method checks its job-scoped token itself
 *           (rendezvous), but still waits its turn in the queue.
 *
 * On the local Unix socket (local.c) only CLIENT methods are served, and
 * the caller is the peer's uid and gid as the kernel saw them at connect
 * (SO_PEERCRED); its names are looked up on the queue's threads like a
 * credential's, and the envelope's `auth` is not read.
 *
 * A request whose connection closes while its check waits in a queue is
 * withdrawn (ty__auth_withdraw, from rpc.c's close): its check is skipped
 * when its turn comes, on either queue, so the checks of a flood's closed
 * connections cost no munged round trips.
 *
 * Calls traind makes to workers (LaunchTask, KillTask) are signed the same
 * way, on the workers' queue, also off the loop and in order, then sent on the node's connection
 * if it is still the one they were meant for.
 *
 * Refusals answer TY_EPERM with a sentence naming the operation, the job or
 * object and the caller, are logged by reply.c and counted in
 * trainyard_rpc_refusals_total{method,reason}.
 */
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon_internal.h"

/* ---- start-up --------------------------------------------------------------------------- */

static int make_auth(ty_controller *ctl, ty_auth_mode mode, const char *key, ty_auth **out,
                     char *err, size_t len) {
  ty_auth_config c = {.mode = mode, .munge_socket = ctl->cfg.munge_socket, .key_file = key};
  int rc = ty_auth_create(&c, out, err, len);
  if (rc != 0 || mode != TY_AUTH_MUNGE) return rc;
  char why[TY_ERR_LEN];
  if (ty_auth_probe(*out, why, sizeof why) == 0) return 0;
  return ty_errf(err, len, TY_EPERM,
                 "%s; start munged (systemctl start munge), point "
                 "--munge-socket at it, or run traind --auth none for a single-user development "
                 "cluster",
                 why);
}

int ty__auth_check_operators(const ty_auth_policy *p, char *err, size_t len) {
  for (size_t i = 0; i < p->n_operators; i++)
    if (!getpwnam(p->operators[i]))
      return ty_errf(err, len, TY_EINVAL, "auth.operators: no user \"%s\" on this host",
                     p->operators[i]);
  return 0;
}

/* The service user's uid and the operator group's gid, looked up once;
 * the operators' names checked. */
static int resolve_names(ty_controller *ctl, char *err, size_t len) {
  ty_auth_policy *p = &ctl->policy;
  ctl->service_uid = ctl->self.uid;
  if (p->service_user) {
    struct passwd *pw = getpwnam(p->service_user);
    if (!pw)
      return ty_errf(err, len, TY_EINVAL, "auth.service_user: no user \"%s\" on this host",
                     p->service_user);
    ctl->service_uid = (uint32_t)pw->pw_uid;
  }
  if (p->operator_group) {
    struct group *g = getgrnam(p->operator_group);
    if (!g)
      return ty_errf(err, len, TY_EINVAL, "auth.operator_group: no group \"%s\" on this host",
                     p->operator_group);
    p->has_operator_gid = true;
    p->operator_gid = (uint32_t)g->gr_gid;
  }
  return ty__auth_check_operators(p, err, len);
}

int ty__auth_init(ty_controller *ctl, char *err, size_t len) {
  ty_auth_id_local((uint32_t)geteuid(), (uint32_t)getegid(), &ctl->self);
  ty_auth_policy *p = &ctl->policy;
  if (!p->workers_set) p->workers = ctl->cfg.client_auth; /* munge, or none with --auth none */
  if (p->workers == TY_AUTH_KEY && !p->cluster_key)
    return ty_errf(err, len, TY_EINVAL, "auth.workers = key needs auth.cluster_key = FILE");
  int rc = resolve_names(ctl, err, len);
  if (rc == 0) rc = make_auth(ctl, ctl->cfg.client_auth, NULL, &ctl->client_auth, err, len);
  if (rc == 0) rc = make_auth(ctl, p->workers, p->cluster_key, &ctl->worker_auth, err, len);
  if (rc == 0) rc = ty_auth_queue_create(ctl->loop, &ctl->authq);
  if (rc == 0 && (rc = ty_auth_queue_create_own(ctl->loop, &ctl->worker_authq)) != 0)
    return ty_errf(err, len, rc, "cannot start the workers' credential thread: %s",
                   ty_strerror(rc));
  if (rc != 0) return rc;
  if (ctl->cfg.client_auth == TY_AUTH_NONE)
    ty_warn("--auth none: requests are not authenticated; every client acts as %s (uid %u). "
            "Use this only on a single-user development cluster",
            ctl->self.user, ctl->self.uid);
  else
    ty_info("clients authenticate with MUNGE (munged at %s); workers with %s",
            ty_auth_socket(ctl->client_auth), ty_auth_mode_name(p->workers));
  if (!p->nodes_listed && p->workers != TY_AUTH_NONE)
    ty_warn("auth.nodes is not set: no worker may register (list the nodes in --config)");
  return 0;
}

void ty__auth_close(ty_controller *ctl) {
  ty_auth_queue_destroy(ctl->authq); /* frees itself once its callbacks ran */
  ctl->authq = NULL;
  ty_auth_queue_destroy(ctl->worker_authq);
  ctl->worker_authq = NULL;
}

void ty__auth_free(ty_controller *ctl) {
  ty_auth_destroy(ctl->client_auth);
  ty_auth_destroy(ctl->worker_auth);
  ty_policy_close(&ctl->policy);
}

/* ---- refusals ------------------------------------------------------------------------------ */

void ty__auth_count(ty_controller *ctl, const char *method, const char *reason) {
  const char *labels[] = {method, reason};
  ty_metric_inc(ctl->m.refusals, labels, 1);
}

void ty__auth_refuse(ty_reply *r, const char *reason, const char *fmt, ...) {
  char msg[TY_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  r->refusal = reason;
  ty__reply_finish(r, TY_EPERM, msg);
}

/* "job 7 belongs to alice, and bob is not an operator". */
int ty__auth_job(const ty_reply *r, const ty_job *j, const char *op, char *err, size_t len) {
  if (r->operator||(j->spec.has_uid && j->spec.uid == r->who.uid)) return 0;
  return ty_errf(err, len, TY_EPERM,
                 "%s job %llu: permission denied: it belongs to %s, and %s "
                 "is not an operator",
                 op, (unsigned long long)j->id, j->spec.user ? j->spec.user : "another user",
                 r->who.user);
}

int ty__auth_operator(const ty_reply *r, const char *op, char *err, size_t len) {
  if (r->operator) return 0;
  return ty_errf(err, len, TY_EPERM,
                 "%s: permission denied: only operators may (%s is not one; "
                 "see auth.operators in traind's configuration)",
                 op, r->who.user);
}

bool ty__auth_sees_job(const ty_reply *r, const ty_job *j) {
  return r->operator||(j->spec.has_uid && j->spec.uid == r->who.uid);
}

/* ---- admitting requests ---------------------------------------------------------------------- */

struct ty__admit {
  ty_reply *r;
  ty_auth_class klass;
  ty__admit_fn then;
  atomic_bool withdrawn; /* the check's cancel flag: its connection closed */
};
typedef struct ty__admit admit;

void ty__auth_withdraw(ty_reply *r) {
  if (r->admit) atomic_store(&r->admit->withdrawn, true);
}

/* The identity check after a credential verified (or none was needed). */
static bool identify(ty_reply *r, ty_auth_class klass, const ty_auth_done *d) {
  ty_controller *ctl = r->ctl;
  r->who = d->id.authenticated ? d->id : ctl->self;
  r->operator= ty_policy_is_operator(&ctl->policy, &r->who, ctl->self.uid);
  if (klass != TY_AUTH_CLASS_WORKER || !d->id.authenticated ||
      ty_auth_id_is_service(&d->id, ctl->service_uid))
    return true;
  ty__auth_refuse(r, "not_service",
                  "%s: permission denied: needs the cluster's service "
                  "credential, and %s (uid %u) is neither root nor the service user %s",
                  r->method, r->who.user, r->who.uid,
                  ctl->policy.service_user ? ctl->policy.service_user : ctl->self.user);
  return false;
}

static void on_verified(const ty_auth_done *d, void *ud) {
  admit *a = ud;
  ty_reply *r = a->r;
  ty_controller *ctl = r->ctl;
  r->admit = NULL;
  if (!r->conn || ctl->stopping) {
    ty__reply_finish(r, TY_ECLOSED,
                     ctl->stopping ? "the controller is shutting down" : "connection closed");
  } else if (d->status == TY_EPERM) {
    ty__auth_refuse(r, d->label, "%s: %s", r->method, d->err);
  } else if (d->status != 0) {
    ty__reply_finish(r, d->status, d->err);
  } else if (identify(r, a->klass, d)) {
    /* An admitted request (a verified credential, or one --auth none
     * needs none for): the connection is no longer among the first evicted
     * at --max-conns or --max-conns-per-addr (lib/rpc). A TOKEN method
     * checks its token later: admitted here, it proves nothing yet. */
    if (d->id.authenticated || a->klass != TY_AUTH_CLASS_TOKEN) ty_rpc_conn_proven(r->conn);
    a->then(ctl, r, d->payload, d->len, a->klass == TY_AUTH_CLASS_TOKEN ? d->cred : NULL,
            a->klass == TY_AUTH_CLASS_TOKEN ? d->cred_len : 0);
  }
  free(a);
}

void ty__auth_admit(ty_controller *ctl, ty_reply *r, ty_auth_class klass, const ty_rpc_msg *req,
                    ty__admit_fn then) {
  admit *a = ty_xcalloc(1, sizeof *a);
  a->r = r, a->klass = klass, a->then = then;
  atomic_init(&a->withdrawn, false);
  r->admit = a; /* before the submit, which may call back (and free r) inside */
  ty_auth_op op = {.kind = TY_AUTH_OP_VERIFY,
                   .method = req->method,
                   .payload = req->payload,
                   .len = req->payload_len,
                   .cancel = &a->withdrawn};
  uint32_t uid, gid;
  if (ty_rpc_peer_cred(r->conn, &uid, &gid, NULL) == 0) {
    /* The local socket (local.c): the kernel's uid, not a credential; an
     * `auth` the client sent anyway is not read. */
    op.peer = true, op.peer_uid = uid, op.peer_gid = gid;
  } else if (klass == TY_AUTH_CLASS_TOKEN) {
    op.cred = req->credential, op.cred_len = req->credential_len; /* carried, not checked */
  } else {
    op.auth = klass == TY_AUTH_CLASS_CLIENT ? ctl->client_auth : ctl->worker_auth;
    op.cred = req->auth, op.cred_len = req->auth_len;
  }
  ty_auth_queue_submit(klass == TY_AUTH_CLASS_WORKER ? ctl->worker_authq : ctl->authq, &op,
                       on_verified, a);
}

/* ---- calls to workers ------------------------------------------------------------------------ */

typedef struct node_call {
  ty_controller *ctl;
  char *node;
  uint64_t gen;
  uint32_t timeout_ms;
  ty_rpc_answer_cb cb;
  void *ud;
} node_call;

static void on_signed(const ty_auth_done *d, void *ud) {
  node_call *k = ud;
  ty_cluster_node *n = ty__node_find(k->ctl, k->node);
  char who[300];
  snprintf(who, sizeof who, "node %s", k->node);
  ty_auth_send(n && n->conn_gen == k->gen ? n->conn : NULL, d, k->timeout_ms, k->cb, k->ud, who);
  free(k->node);
  free(k);
}

void ty__node_call(ty_controller *ctl, ty_cluster_node *n, const char *method, const ty_buf *b,
                   uint32_t timeout_ms, ty_rpc_answer_cb cb, void *ud) {
  node_call *k = ty_xcalloc(1, sizeof *k);
  *k = (node_call){ctl, ty_strdup(n->name), n->conn_gen, timeout_ms, cb, ud};
  ty_auth_op op = {.kind = TY_AUTH_OP_SIGN,
                   .auth = ctl->worker_auth,
                   .method = method,
                   .payload = b->data,
                   .len = b->len};
  ty_auth_queue_submit(ctl->worker_authq, &op, on_signed, k);
}
