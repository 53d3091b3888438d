/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Group commit: one writer thread, one queue in, one queue out.
 *
 * Loop thread                         writer thread
 *   submit(txn) --lock, append,-->      wait for work
 *               signal                  take ALL queued txns
 *                                       BEGIN; per txn: SAVEPOINT..RELEASE
 *                                       COMMIT (one fsync)
 *   async_cb  <--uv_async_send------    move the batch to `done`
 *   call every callback of the batch
 *
 * Only uv_async_send and the mutex-protected queues cross threads. The txns
 * are deep copies, so the loop may keep changing its in-memory jobs while the
 * writer works. Workload: bursts of submits (hundreds per second from
 * parallel clients) and a trickle of state changes; batching makes the fsync
 * rate independent of the request rate.
 */
#include "daemon/daemon.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "lib/wire/wire.h"

typedef enum {
  OP_INSERT_JOB,
  OP_UPDATE_JOB,
  OP_INSERT_ARRAY, /* u.job: the first element's row; `elements` */
  OP_ARRAY_DONE,   /* u.job.id: the array's id */
  OP_EVENT,
  OP_NODE,
  OP_NODE_DELETE, /* u.node.name */
  OP_QUEUE,
  OP_USAGE,
  OP_ADMIN,
  OP_RANK,
  OP_RUN_STATE, /* u.rank: job_id, run and run_state */
  OP_NODE_EVENT,
  OP_PRUNE,
  OP_WEB_TOKEN,
  OP_WEB_REVOKE
} op_kind;

typedef struct prune_op {
  int64_t before_ms;
  uint32_t max_jobs;
  uint32_t *out_jobs; /* the caller's, written once committed */
  uint32_t jobs;
  char **unlink; /* model files to remove once committed */
  size_t n_unlink;
  char *ckpt_root;       /* CHECKPOINT_DIR, NULL = none */
  ty_pruned_job *pruned; /* the jobs deleted: their checkpoint directories go */
  size_t n_pruned;
} prune_op;

typedef struct op {
  op_kind kind;
  ty_job_cols cols;  /* OP_UPDATE_JOB: the columns written */
  uint32_t elements; /* OP_INSERT_ARRAY: the array's element count */
  union {
    ty_job_row job;
    ty_event_row ev;
    ty_node_row node;
    ty_queue_row queue;
    ty_usage_row usage;
    ty_admin_event_row admin;
    ty_rank_row rank;
    ty_node_event_row nev;
    prune_op prune;
    ty_web_token_row web; /* OP_WEB_REVOKE: uid and revoked_ms */
  } u;
} op;

struct ty_txn {
  op *ops;
  size_t n, cap;
  /* Set by the committer. */
  ty_commit_cb cb;
  void *ud;
  int status;
  size_t failed; /* the op that failed, when status is not 0 */
  struct ty_txn *next;
};

struct ty_committer {
  uv_async_t async; /* wakes the loop when a batch is done */
  uv_loop_t *loop;
  ty_store *store;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  ty_txn *todo_head, *todo_tail; /* guarded by mu */
  ty_txn *done_head, *done_tail; /* guarded by mu */
  size_t done_batches_pending;   /* batch sizes not yet reported; guarded by mu */
  bool stopping;                 /* guarded by mu */
  char last_err[256];            /* the latest failed batch's error; guarded by mu */
  uint64_t failures;             /* batches not stored; guarded by mu */
  size_t inflight;               /* loop thread only */
  void (*on_batch)(size_t commits, size_t txns, void *ud);
  void *on_batch_ud;
};

/* ---- txn ------------------------------------------------------------------- */

ty_txn *ty_txn_create(void) {
  return ty_xcalloc(1, sizeof(ty_txn));
}

/* A job row's strings and blob, by column kind (TY_JOB_COLUMNS). */
#define FREE_TEXT(r, col) free((char *)(r)->col);
#define FREE_BLOB(r, col) free((void *)(r)->col);
#define FREE_ID(r, col)
#define FREE_INT(r, col)
#define FREE_I64(r, col)
#define FREE_U32(r, col)
#define FREE_BOOL(r, col)

static void job_row_free(ty_job_row *r) {
#define FREE_(version, col, kind, sql) FREE_##kind(r, col)
  TY_JOB_COLUMNS(FREE_)
#undef FREE_
}

static void op_free(op *o) {
  switch (o->kind) {
  case OP_INSERT_JOB:
  case OP_UPDATE_JOB:
  case OP_INSERT_ARRAY:
    job_row_free(&o->u.job);
    break;
  case OP_ARRAY_DONE:
    break; /* no pointers */
  case OP_EVENT:
    free((char *)o->u.ev.reason);
    free((char *)o->u.ev.actor);
    break;
  case OP_NODE_DELETE:
  case OP_NODE:
    free((char *)o->u.node.name);
    free((void *)o->u.node.gpus);
    free((char *)o->u.node.io_addr);
    free((char *)o->u.node.reason);
    break;
  case OP_QUEUE:
    free((char *)o->u.queue.name);
    free((char *)o->u.queue.state);
    free((char *)o->u.queue.allow_groups);
    free((char *)o->u.queue.allow_users);
    break;
  case OP_USAGE:
    free((char *)o->u.usage.user);
    free((char *)o->u.usage.queue);
    break;
  case OP_ADMIN:
    free((char *)o->u.admin.actor);
    free((char *)o->u.admin.kind);
    free((char *)o->u.admin.object);
    free((char *)o->u.admin.action);
    free((char *)o->u.admin.detail);
    break;
  case OP_RANK:
  case OP_RUN_STATE:
    free((char *)o->u.rank.node);
    break;
  case OP_NODE_EVENT:
    free((char *)o->u.nev.node);
    free((char *)o->u.nev.action);
    free((char *)o->u.nev.reason);
    free((char *)o->u.nev.actor);
    break;
  case OP_PRUNE:
    for (size_t i = 0; i < o->u.prune.n_unlink; i++)
      free(o->u.prune.unlink[i]);
    free(o->u.prune.unlink);
    free(o->u.prune.ckpt_root);
    free(o->u.prune.pruned);
    break;
  case OP_WEB_TOKEN:
  case OP_WEB_REVOKE:
    break; /* no pointers */
  }
}

void ty_txn_destroy(ty_txn *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++)
    op_free(&t->ops[i]);
  free(t->ops);
  free(t);
}

static op *push(ty_txn *t, op_kind k) {
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 4;
    t->ops = ty_xrealloc(t->ops, t->cap * sizeof(*t->ops));
  }
  op *o = &t->ops[t->n++];
  memset(o, 0, sizeof(*o));
  o->kind = k;
  return o;
}

/* A copy of s, or of dflt when s is NULL: rows reach the writer thread with
 * optional strings, and the SQL binds want every column non-NULL. */
static char *dup_or(const char *s, const char *dflt) {
  return ty_strdup(s ? s : dflt);
}

static void *dup_bytes(const void *p, size_t n) {
  if (!p) return NULL;
  void *d = ty_xmalloc(n ? n : 1);
  memcpy(d, p, n);
  return d;
}

/* Copies of the job row's strings and blob that will be written (`cols`):
 * NULL strings become "", the blob (a submitted job, its size the client's)
 * is malloc'd and checked; columns not written are not copied. */
#define COPY_TEXT(to, r, col) (to)->col = cols & TY_JOB_BIT(col) ? dup_or((r)->col, "") : NULL;
#define COPY_BLOB(to, r, col)                                                                      \
  (to)->col = NULL; /* not the caller's, should the copy fail */                                   \
  if ((cols & TY_JOB_BIT(col)) && (r)->col &&                                                      \
      ty_wire_bytes((r)->col, (r)->col##_len, (uint8_t **)&(to)->col) != 0)                        \
    rc = TY_ENOMEM;
#define COPY_ID(to, r, col)
#define COPY_INT(to, r, col)
#define COPY_I64(to, r, col)
#define COPY_U32(to, r, col)
#define COPY_BOOL(to, r, col)

static int add_job(ty_txn *t, op_kind k, const ty_job_row *r, ty_job_cols cols) {
  ty_job_row copy = *r;
  int rc = 0;
#define COPY_(version, col, kind, sql) COPY_##kind(&copy, r, col)
  TY_JOB_COLUMNS(COPY_)
#undef COPY_
  if (rc != 0) {
    job_row_free(&copy);
    return rc;
  }
  op *o = push(t, k);
  o->u.job = copy;
  o->cols = cols;
  return 0;
}

int ty_txn_insert_job(ty_txn *t, const ty_job_row *r) {
  return add_job(t, OP_INSERT_JOB, r, TY_JOB_ALL_COLS);
}

int ty_txn_update_job(ty_txn *t, const ty_job_row *r, ty_job_cols cols) {
  return add_job(t, OP_UPDATE_JOB, r, cols);
}

uint64_t *ty_txn_inserted_elements(const ty_txn *t, size_t *n) {
  uint64_t *ids = NULL;
  *n = 0;
  for (size_t i = 0; i < t->n; i++) {
    const op *o = &t->ops[i];
    if (o->kind != OP_INSERT_JOB || !o->u.job.array_id) continue;
    ids = ty_xrealloc(ids, (*n + 1) * sizeof(*ids));
    ids[(*n)++] = o->u.job.id;
  }
  return ids;
}

int ty_txn_insert_array(ty_txn *t, const ty_job_row *first, uint32_t elements) {
  int rc = add_job(t, OP_INSERT_ARRAY, first, TY_JOB_ALL_COLS);
  if (rc == 0) t->ops[t->n - 1].elements = elements;
  return rc;
}

void ty_txn_array_done(ty_txn *t, uint64_t array_id) {
  push(t, OP_ARRAY_DONE)->u.job.id = array_id;
}

void ty_txn_add_rank(ty_txn *t, const ty_rank_row *r) {
  op *o = push(t, OP_RANK);
  o->u.rank = *r;
  o->u.rank.node = dup_or(r->node, "");
}

void ty_txn_set_run_state(ty_txn *t, uint64_t job_id, uint32_t run, int run_state) {
  op *o = push(t, OP_RUN_STATE);
  o->u.rank = (ty_rank_row){.job_id = job_id, .run = run, .run_state = run_state};
}

void ty_txn_add_node_event(ty_txn *t, const ty_node_event_row *r) {
  op *o = push(t, OP_NODE_EVENT);
  o->u.nev = *r;
  o->u.nev.node = dup_or(r->node, "");
  o->u.nev.action = dup_or(r->action, "");
  o->u.nev.reason = dup_or(r->reason, "");
  o->u.nev.actor = dup_or(r->actor, "");
}

void ty_txn_prune(ty_txn *t, int64_t before_ms, uint32_t max_jobs, uint32_t *out_jobs,
                  const char *checkpoint_dir) {
  op *o = push(t, OP_PRUNE);
  o->u.prune = (prune_op){
      .before_ms = before_ms,
      .max_jobs = max_jobs,
      .out_jobs = out_jobs,
      .ckpt_root = checkpoint_dir && checkpoint_dir[0] ? ty_strdup(checkpoint_dir) : NULL};
}

void ty_txn_add_event(ty_txn *t, const ty_event_row *r) {
  op *o = push(t, OP_EVENT);
  o->u.ev = *r;
  o->u.ev.reason = dup_or(r->reason, "");
  o->u.ev.actor = dup_or(r->actor, "");
}

void ty_txn_upsert_node(ty_txn *t, const ty_node_row *r) {
  op *o = push(t, OP_NODE);
  o->u.node = *r;
  o->u.node.name = dup_or(r->name, "");
  o->u.node.gpus = dup_bytes(r->gpus, r->gpus_len);
  o->u.node.io_addr = dup_or(r->io_addr, "");
  o->u.node.reason = dup_or(r->reason, "");
}

void ty_txn_delete_node(ty_txn *t, const char *name) {
  push(t, OP_NODE_DELETE)->u.node = (ty_node_row){.name = dup_or(name, "")};
}

void ty_txn_upsert_queue(ty_txn *t, const ty_queue_row *r) {
  op *o = push(t, OP_QUEUE);
  o->u.queue = *r;
  o->u.queue.name = dup_or(r->name, "");
  o->u.queue.state = dup_or(r->state, "UP");
  o->u.queue.allow_groups = dup_or(r->allow_groups, "");
  o->u.queue.allow_users = dup_or(r->allow_users, "");
}

void ty_txn_upsert_usage(ty_txn *t, const ty_usage_row *r) {
  op *o = push(t, OP_USAGE);
  o->u.usage = *r;
  o->u.usage.user = dup_or(r->user, "");
  o->u.usage.queue = dup_or(r->queue, "");
}

void ty_txn_add_admin_event(ty_txn *t, const ty_admin_event_row *r) {
  op *o = push(t, OP_ADMIN);
  o->u.admin = *r;
  o->u.admin.actor = dup_or(r->actor, "");
  o->u.admin.kind = dup_or(r->kind, "");
  o->u.admin.object = dup_or(r->object, "");
  o->u.admin.action = dup_or(r->action, "");
  o->u.admin.detail = dup_or(r->detail, "");
}

void ty_txn_put_web_token(ty_txn *t, const ty_web_token_row *r) {
  push(t, OP_WEB_TOKEN)->u.web = *r; /* no pointers: a plain copy */
}

void ty_txn_revoke_web_tokens(ty_txn *t, uint32_t uid, int64_t now_ms) {
  op *o = push(t, OP_WEB_REVOKE);
  o->u.web.uid = uid;
  o->u.web.revoked_ms = now_ms;
}

size_t ty_txn_len(const ty_txn *t) {
  return t->n;
}

/* Once the txn is durable: remove the model files a prune freed and the
 * deleted jobs' checkpoint directories, and say how many jobs it deleted. */
static void after_commit(ty_txn *t) {
  for (size_t i = 0; i < t->n; i++) {
    prune_op *p = t->ops[i].kind == OP_PRUNE ? &t->ops[i].u.prune : NULL;
    if (!p) continue;
    if (p->out_jobs) *p->out_jobs = t->status == 0 ? p->jobs : 0;
    for (size_t k = 0; t->status == 0 && k < p->n_unlink; k++)
      if (unlink(p->unlink[k]) != 0 && errno != ENOENT)
        ty_warn("store: cannot remove the pruned model %s: %s", p->unlink[k], strerror(errno));
    for (size_t k = 0; t->status == 0 && p->ckpt_root && k < p->n_pruned; k++)
      ty_ckpt_dir_prune(p->ckpt_root, p->pruned[k].id, p->pruned[k].submit_ms);
  }
}

int ty_txn_apply(ty_txn *t, ty_store *s) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < t->n; i++) {
    op *o = &t->ops[i];
    switch (o->kind) {
    case OP_INSERT_JOB:
      rc = ty_store_insert_job(s, &o->u.job);
      break;
    case OP_UPDATE_JOB:
      rc = ty_store_update_job(s, &o->u.job, o->cols);
      break;
    case OP_INSERT_ARRAY:
      rc = ty_store_insert_array(s, &o->u.job, o->elements);
      break;
    case OP_ARRAY_DONE:
      rc = ty_store_array_done(s, o->u.job.id);
      break;
    case OP_RANK:
      rc = ty_store_add_rank(s, &o->u.rank);
      break;
    case OP_RUN_STATE:
      rc = ty_store_set_run_state(s, o->u.rank.job_id, o->u.rank.run, o->u.rank.run_state);
      break;
    case OP_NODE_EVENT:
      rc = ty_store_add_node_event(s, &o->u.nev);
      break;
    case OP_PRUNE:
      rc = ty_store_prune_jobs(s, o->u.prune.before_ms, o->u.prune.max_jobs, &o->u.prune.jobs,
                               &o->u.prune.unlink, &o->u.prune.n_unlink,
                               o->u.prune.ckpt_root ? &o->u.prune.pruned : NULL,
                               &o->u.prune.n_pruned);
      break;
    case OP_EVENT:
      rc = ty_store_add_event(s, &o->u.ev);
      break;
    case OP_NODE:
      rc = ty_store_upsert_node(s, &o->u.node);
      break;
    case OP_NODE_DELETE:
      rc = ty_store_delete_node(s, o->u.node.name);
      break;
    case OP_QUEUE:
      rc = ty_store_upsert_queue(s, &o->u.queue);
      break;
    case OP_USAGE:
      rc = ty_store_upsert_usage(s, &o->u.usage);
      break;
    case OP_ADMIN:
      rc = ty_store_add_admin_event(s, &o->u.admin);
      break;
    case OP_WEB_TOKEN:
      rc = ty_store_put_web_token(s, &o->u.web);
      break;
    case OP_WEB_REVOKE:
      rc = ty_store_revoke_web_tokens(s, o->u.web.uid, o->u.web.revoked_ms);
      break;
    }
    if (rc != 0) t->failed = i;
  }
  return rc;
}

/* ---- writer thread ------------------------------------------------------------ */

/* Logs a store failure (what failed and why: SQLite's words unless
 * `why` says it) and keeps the words for the answers
 * (ty_committer_last_error). */
static void note_failure(ty_committer *c, const char *what, const char *why) {
  const char *msg = why ? why : ty_store_errmsg(c->store);
  ty_error("store: %s: %s", what, msg);
  pthread_mutex_lock(&c->mu);
  snprintf(c->last_err, sizeof c->last_err, "%s", msg);
  c->failures++;
  pthread_mutex_unlock(&c->mu);
}

uint64_t ty_committer_failures(ty_committer *c) {
  pthread_mutex_lock(&c->mu);
  uint64_t n = c->failures;
  pthread_mutex_unlock(&c->mu);
  return n;
}

void ty_committer_last_error(ty_committer *c, char *out, size_t len) {
  pthread_mutex_lock(&c->mu);
  snprintf(out, len, "%s", c->last_err);
  pthread_mutex_unlock(&c->mu);
}

/* Why t failed when SQLite has no words for it (an update that found no
 * row, which SQLite reports as "not an error"), into buf; else NULL. */
static const char *failure_words(const ty_txn *t, char *buf, size_t len) {
  if (t->status != TY_ENOTFOUND || t->failed >= t->n) return NULL;
  const op *o = &t->ops[t->failed];
  if (o->kind != OP_UPDATE_JOB) return NULL;
  snprintf(buf, len, "job %llu has no row", (unsigned long long)o->u.job.id);
  return buf;
}

/* Runs one batch as one transaction; sets each txn's status. */
static void run_batch(ty_committer *c, ty_txn *batch) {
  if (ty_store_begin(c->store) != 0) {
    note_failure(c, "BEGIN failed", NULL);
    for (ty_txn *t = batch; t; t = t->next)
      t->status = TY_ESTORE;
    return;
  }
  for (ty_txn *t = batch; t; t = t->next) {
    t->status = ty_store_savepoint(c->store);
    if (t->status == 0) t->status = ty_txn_apply(t, c->store);
    if (t->status == 0) {
      t->status = ty_store_release(c->store);
    } else {
      char why[64];
      note_failure(c, "a write failed and was rolled back", failure_words(t, why, sizeof why));
      ty_store_rollback_to(c->store);
      t->status = TY_ESTORE;
    }
  }
  if (ty_store_commit(c->store) != 0) {
    note_failure(c, "COMMIT failed", NULL);
    ty_store_rollback(c->store);
    for (ty_txn *t = batch; t; t = t->next)
      t->status = TY_ESTORE;
  }
  for (ty_txn *t = batch; t; t = t->next)
    after_commit(t);
}

static void *writer_main(void *arg) {
  ty_committer *c = arg;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (!c->todo_head && !c->stopping)
      pthread_cond_wait(&c->cv, &c->mu);
    if (!c->todo_head) break; /* stopping and drained */
    ty_txn *batch = c->todo_head, *tail = c->todo_tail;
    c->todo_head = c->todo_tail = NULL;
    pthread_mutex_unlock(&c->mu);

    run_batch(c, batch);

    pthread_mutex_lock(&c->mu);
    if (c->done_tail)
      c->done_tail->next = batch;
    else
      c->done_head = batch;
    c->done_tail = tail;
    c->done_batches_pending++;
    uv_async_send(&c->async);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* ---- loop side ------------------------------------------------------------------ */

static void deliver(ty_committer *c) {
  pthread_mutex_lock(&c->mu);
  ty_txn *t = c->done_head;
  size_t batches = c->done_batches_pending;
  c->done_head = c->done_tail = NULL;
  c->done_batches_pending = 0;
  pthread_mutex_unlock(&c->mu);
  size_t n = 0;
  while (t) {
    ty_txn *next = t->next;
    c->inflight--;
    n++;
    if (t->cb) t->cb(t->status, t->ud);
    ty_txn_destroy(t);
    t = next;
  }
  if (c->on_batch && batches) c->on_batch(batches, n, c->on_batch_ud);
}

static void free_committer(uv_handle_t *h) {
  free(container_of((uv_async_t *)h, ty_committer, async));
}

static void on_async(uv_async_t *a) {
  deliver(container_of(a, ty_committer, async));
}

int ty_committer_create(uv_loop_t *loop, ty_store *store, ty_committer **out) {
  ty_committer *c = ty_xcalloc(1, sizeof(*c));
  c->loop = loop;
  c->store = store;
  int rc = uv_async_init(loop, &c->async, on_async);
  if (rc != 0) {
    free(c);
    return rc;
  }
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  if (pthread_create(&c->thread, NULL, writer_main, c) != 0) {
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    uv_close((uv_handle_t *)&c->async, free_committer);
    return TY_EINTERNAL;
  }
  *out = c;
  return 0;
}

void ty_committer_submit(ty_committer *c, ty_txn *txn, ty_commit_cb cb, void *ud) {
  txn->cb = cb;
  txn->ud = ud;
  txn->next = NULL;
  c->inflight++;
  pthread_mutex_lock(&c->mu);
  if (c->todo_tail)
    c->todo_tail->next = txn;
  else
    c->todo_head = txn;
  c->todo_tail = txn;
  pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

void ty_committer_on_batch(ty_committer *c, void (*cb)(size_t commits, size_t txns, void *ud),
                           void *ud) {
  c->on_batch = cb;
  c->on_batch_ud = ud;
}

size_t ty_committer_inflight(const ty_committer *c) {
  return c->inflight;
}

void ty_committer_destroy(ty_committer *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->stopping = true;
  pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->thread, NULL);
  deliver(c);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  uv_close((uv_handle_t *)&c->async, free_committer);
}
