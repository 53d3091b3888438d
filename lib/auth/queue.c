/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_auth_queue: signs and verifies credentials on libuv's thread pool and
 * hands the results back on the loop thread in submission order.
 *
 * Every operation becomes an item in one FIFO. Items with a scheme run
 * ty_auth_sign / ty_auth_verify in uv_queue_work; an item without one (NONE)
 * is done at once. When an item finishes, the loop calls back every finished
 * item at the head of the FIFO, so a slow munged round trip holds back the
 * items behind it but never reorders them. A NONE item submitted while
 * nothing is queued is called back inside the submit call, with the
 * caller's own pointers: `--auth none` costs no copy and no thread hop. A
 * local caller's item (op.peer) needs no credential but its names: from
 * the queue's cache of identities (idcache.c) inside the submit call when
 * nothing is queued before it, else looked up in the work function like a
 * verified credential's (and kept for the next request).
 *
 * A deferred item copies the method, payload and credential into its own
 * allocation (one malloc, sized from the request: checked, never an abort).
 * A VERIFY whose submitter set its cancel flag before its turn came (its
 * connection closed) is not checked: a flood's checks stop costing munged
 * round trips once its clients are gone.
 *
 * A queue made with ty_auth_queue_create_own runs its items on a thread of
 * its own (a FIFO under a mutex; results come back through a uv_async), not
 * on libuv's shared pool: traind's workers' heartbeats never wait behind
 * client work queued there. The async handle is referenced only while
 * items are pending, as the pool's requests would keep the loop alive.
 *
 * ty_auth_send puts a signed call on its connection: the last step of every
 * signed call of traind and trainworkerd.
 */
#include "lib/auth/auth.h"
#include "lib/auth/idcache.h"

#include <stdlib.h>
#include <string.h>

typedef struct item {
  uv_work_t work;
  struct item *next;
  struct ty_auth_queue *q;
  ty_auth_op op; /* its pointers point into `bytes` */
  ty_auth_done_cb cb;
  void *ud;
  bool done;
  int status;
  const char *label;
  char err[TY_ERR_LEN];
  ty_auth_id id;
  uint8_t *signed_cred; /* SIGN's result, malloc'ed by ty_auth_sign */
  size_t signed_len;
  struct item *tnext; /* in the own thread's todo or finished list */
  uint8_t bytes[];    /* method NUL, payload, credential */
} item;

struct ty_auth_queue {
  uv_loop_t *loop;
  ty__idcache *ids; /* local callers' names and groups */
  item *head, *tail;
  size_t pending;
  bool destroying;
  /* Own thread (ty_auth_queue_create_own); all under mu but `async`. */
  bool own;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  uv_async_t async;
  item *todo, *todo_tail, *finished;
  bool stop;
};

int ty_auth_queue_create(uv_loop_t *loop, ty_auth_queue **out) {
  ty_auth_queue *q = calloc(1, sizeof *q);
  if (!q) return TY_ENOMEM;
  q->loop = loop;
  static const char *const nss_files[] = {"/etc/passwd", "/etc/group", "/etc/nsswitch.conf"};
  q->ids = ty__idcache_create(nss_files, TY_ARRAY_LEN(nss_files), TY__IDCACHE_TTL_MS);
  *out = q;
  return 0;
}

static void release(ty_auth_queue *q) {
  ty__idcache_destroy(q->ids);
  free(q);
}

static void on_async_closed(uv_handle_t *h) {
  release(h->data);
}

static void free_queue(ty_auth_queue *q) {
  if (!q->own) {
    release(q);
    return;
  }
  uv_mutex_lock(&q->mu);
  q->stop = true;
  uv_cond_signal(&q->cv);
  uv_mutex_unlock(&q->mu);
  uv_thread_join(&q->thread); /* idle: nothing is pending */
  uv_mutex_destroy(&q->mu);
  uv_cond_destroy(&q->cv);
  q->async.data = q;
  uv_close((uv_handle_t *)&q->async, on_async_closed);
}

size_t ty_auth_queue_pending(const ty_auth_queue *q) {
  return q ? q->pending : 0;
}

void ty_auth_queue_destroy(ty_auth_queue *q) {
  if (!q) return;
  q->destroying = true;
  if (q->pending == 0) free_queue(q);
}

static void call_back(const item *it) {
  ty_auth_done d = {.status = it->status,
                    .label = it->label ? it->label : "",
                    .err = it->status ? it->err : "",
                    .id = it->id,
                    .method = it->op.method,
                    .payload = it->op.payload,
                    .len = it->op.len};
  if (it->op.kind == TY_AUTH_OP_SIGN) {
    d.cred = it->signed_cred;
    d.cred_len = it->signed_len;
  } else {
    d.cred = it->op.cred;
    d.cred_len = it->op.cred_len;
  }
  it->cb(&d, it->ud);
}

/* Calls back the finished items at the head, in order. */
static void drain(ty_auth_queue *q) {
  while (q->head && q->head->done) {
    item *it = q->head;
    q->head = it->next;
    if (!q->head) q->tail = NULL;
    call_back(it);
    free(it->signed_cred);
    free(it);
    if (--q->pending == 0 && q->own) uv_unref((uv_handle_t *)&q->async);
  }
  if (q->destroying && q->pending == 0) free_queue(q);
}

static void work(uv_work_t *w) {
  item *it = container_of(w, item, work);
  const ty_auth_op *op = &it->op;
  if (op->kind == TY_AUTH_OP_VERIFY && op->cancel && atomic_load(op->cancel)) {
    it->status = ty_errf(it->err, sizeof it->err, TY_ECLOSED,
                         "credential not checked: nobody waits for the answer (the request's "
                         "connection closed)");
  } else if (op->kind == TY_AUTH_OP_VERIFY && op->peer) {
    ty_auth_queue *q = it->q;
    if (!ty__idcache_get(q->ids, op->peer_uid, op->peer_gid, ty_mono_ms(), &it->id)) {
      ty_auth_id_local(op->peer_uid, op->peer_gid, &it->id);
      ty__idcache_put(q->ids, &it->id, ty_mono_ms());
    }
    it->id.authenticated = true;
    it->status = 0;
  } else if (op->kind == TY_AUTH_OP_SIGN)
    it->status = ty_auth_sign(op->auth, op->method, op->payload, op->len, &it->signed_cred,
                              &it->signed_len, it->err, sizeof it->err);
  else
    it->status = ty_auth_verify(op->auth, op->method, op->payload, op->len, op->cred, op->cred_len,
                                &it->id, &it->label, it->err, sizeof it->err);
  if (it->status == TY_ENOMEM && !it->err[0])
    ty_errf(it->err, sizeof it->err, TY_ENOMEM, "out of memory checking a credential");
}

static void after_work(uv_work_t *w, int status) {
  item *it = container_of(w, item, work);
  if (status != 0) /* cancelled: never happens, nobody calls uv_cancel */
    it->status = ty_errf(it->err, sizeof it->err, TY_EINTERNAL, "credential work cancelled");
  it->done = true;
  drain(it->q);
}

/* The own thread: runs the todo list's items in order. */
static void own_thread(void *arg) {
  ty_auth_queue *q = arg;
  uv_mutex_lock(&q->mu);
  for (;;) {
    while (!q->todo && !q->stop)
      uv_cond_wait(&q->cv, &q->mu);
    if (!q->todo) break;
    item *it = q->todo;
    q->todo = it->tnext;
    if (!q->todo) q->todo_tail = NULL;
    uv_mutex_unlock(&q->mu);
    work(&it->work);
    uv_mutex_lock(&q->mu);
    it->tnext = q->finished;
    q->finished = it;
    uv_async_send(&q->async);
  }
  uv_mutex_unlock(&q->mu);
}

/* The own thread's finished items, back on the loop. */
static void on_finished(uv_async_t *a) {
  ty_auth_queue *q = container_of(a, ty_auth_queue, async);
  uv_mutex_lock(&q->mu);
  item *it = q->finished;
  q->finished = NULL;
  uv_mutex_unlock(&q->mu);
  for (; it; it = it->tnext)
    it->done = true;
  drain(q);
}

static int run_item(ty_auth_queue *q, item *it) {
  if (!q->own) return uv_queue_work(q->loop, &it->work, work, after_work);
  uv_ref((uv_handle_t *)&q->async);
  uv_mutex_lock(&q->mu);
  if (q->todo_tail)
    q->todo_tail->tnext = it;
  else
    q->todo = it;
  q->todo_tail = it;
  uv_cond_signal(&q->cv);
  uv_mutex_unlock(&q->mu);
  return 0;
}

/* A deferred copy of op: the item and its bytes in one allocation. */
static item *item_new(ty_auth_queue *q, const ty_auth_op *op, ty_auth_done_cb cb, void *ud) {
  const char *method = op->method ? op->method : "";
  size_t mlen = strlen(method) + 1, cred_len = op->cred ? op->cred_len : 0;
  size_t size = sizeof(item);
  if (__builtin_add_overflow(size, mlen, &size) || __builtin_add_overflow(size, op->len, &size) ||
      __builtin_add_overflow(size, cred_len, &size))
    return NULL;
  item *it = calloc(1, size);
  if (!it) return NULL;
  *it = (item){.q = q, .op = *op, .cb = cb, .ud = ud};
  uint8_t *p = it->bytes;
  memcpy(p, method, mlen);
  it->op.method = (const char *)p;
  p += mlen;
  if (op->len) memcpy(p, op->payload, op->len);
  it->op.payload = p;
  p += op->len;
  if (cred_len) memcpy(p, op->cred, cred_len);
  it->op.cred = cred_len ? p : NULL;
  it->op.cred_len = cred_len;
  return it;
}

static bool scheme_none(const ty_auth_op *op) {
  return !op->peer && ty_auth_get_mode(op->auth) == TY_AUTH_NONE;
}

/* Whether op completes inside the submit call: nothing is queued before
 * it, and its scheme is NONE or it is a local caller the cache knows (*id
 * filled). */
static bool at_once(ty_auth_queue *q, const ty_auth_op *op, ty_auth_id *id) {
  if (q->head) return false;
  if (scheme_none(op)) return true;
  if (!op->peer || op->kind != TY_AUTH_OP_VERIFY ||
      !ty__idcache_get(q->ids, op->peer_uid, op->peer_gid, ty_mono_ms(), id))
    return false;
  id->authenticated = true;
  return true;
}

int ty_auth_queue_create_own(uv_loop_t *loop, ty_auth_queue **out) {
  ty_auth_queue *q;
  int rc = ty_auth_queue_create(loop, &q);
  if (rc != 0) return rc;
  q->own = true;
  rc = uv_mutex_init(&q->mu);
  if (rc == 0 && (rc = uv_cond_init(&q->cv)) != 0) uv_mutex_destroy(&q->mu);
  if (rc == 0 && (rc = uv_async_init(loop, &q->async, on_finished)) != 0) {
    uv_cond_destroy(&q->cv);
    uv_mutex_destroy(&q->mu);
  }
  if (rc != 0) {
    release(q);
    return rc;
  }
  uv_unref((uv_handle_t *)&q->async);
  rc = uv_thread_create(&q->thread, own_thread, q);
  if (rc != 0) {
    uv_cond_destroy(&q->cv);
    uv_mutex_destroy(&q->mu);
    q->async.data = q;
    uv_close((uv_handle_t *)&q->async, on_async_closed);
    return rc;
  }
  *out = q;
  return 0;
}

void ty_auth_queue_submit(ty_auth_queue *q, const ty_auth_op *op, ty_auth_done_cb cb, void *ud) {
  ty_auth_done d = {
      .label = "", .err = "", .method = op->method, .payload = op->payload, .len = op->len};
  if (op->kind == TY_AUTH_OP_VERIFY) d.cred = op->cred, d.cred_len = op->cred_len;
  if (at_once(q, op, &d.id)) {
    cb(&d, ud);
    return;
  }
  item *it = item_new(q, op, cb, ud);
  if (!it) {
    d.status = TY_ENOMEM;
    d.err = "out of memory queueing a credential check";
    cb(&d, ud);
    return;
  }
  if (q->tail)
    q->tail->next = it;
  else
    q->head = it;
  q->tail = it;
  q->pending++;
  if (scheme_none(op)) {
    it->done = true; /* waits only for the items ahead of it */
    return;
  }
  int rc = run_item(q, it);
  if (rc != 0) {
    it->status = ty_errf(it->err, sizeof it->err, TY_EINTERNAL,
                         "cannot queue a credential "
                         "check: %s",
                         ty_strerror(rc));
    it->done = true;
    drain(q);
  }
}

void ty_auth_send(ty_rpc_conn *c, const ty_auth_done *d, uint32_t timeout_ms, ty_rpc_answer_cb cb,
                  void *ud, const char *who) {
  if (!c) {
    cb(NULL, TY_ECLOSED, NULL, true, ud);
  } else if (d->status != 0) {
    ty_error("%s: cannot sign %s: %s", who, d->method, d->err);
    ty_rpc_msg m = {.kind = TY_RPC_RESPONSE, .status = d->status, .message = d->err};
    cb(c, d->status, &m, true, ud);
  } else {
    ty_rpc_creds creds = {.auth = d->cred, .auth_len = d->cred_len};
    int rc = ty_rpc_call_ex(c, d->method, d->payload, d->len, &creds, timeout_ms, cb, ud, NULL);
    if (rc != 0) cb(c, rc, NULL, true, ud);
  }
}
