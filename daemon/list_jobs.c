/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ListJobs (trainctl ls, like squeue).
 *
 * Live jobs -- squeue's default, and trainctl ls's -- are served from
 * memory: each job's JobInfo is encoded once per change (ty__job_info) and
 * the answer is their concatenation; the whole answer to the last such
 * request is kept and sent again while no live job changed, so a client
 * polling `ls` costs a memcpy, not an encoding of every job. With
 * fold_arrays (trainctl ls without --array), the pending elements of an
 * array that follow each other in the answer are one JobInfo, the first
 * element's with the folded task list appended (array_tasks_folded), so a
 * pending array of 1,000 elements is one entry to send and to decode.
 *
 * A listing's JobInfos are abridged (no argv, env or graph payload: a batch
 * script is in argv, and `show` reads those through GetJob), and its answer
 * is bounded: `limit` (the newest of all), `ended_limit` (the newest ended
 * ones: trainctl ls --all's default) and the largest frame. Whatever is cut,
 * the newest jobs are kept and the answer says it was cut (truncated), so
 * that a long history never makes a listing fail. Ended states are read
 * from the store on libuv's thread pool, as history.c reads them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"

/* One JobInfo of an answer being put together. */
typedef struct item {
  uint64_t id;
  uint8_t *bytes; /* owned */
  size_t len;
  uint64_t array_id; /* set for a PENDING array element only: what folds */
  uint32_t task;
} item;

typedef struct list_work {
  uv_work_t req;
  ty_controller *ctl;
  ty_store *store;
  ty_reply *r;
  ty_list_filter f;
  int ended[7];
  size_t n_ended;
  uint32_t limit;   /* the store's ended jobs at most: limit, ended_limit, the cap */
  size_t max_bytes; /* the answer's at most: the largest frame, less room for its envelope */
  item *items;      /* the live jobs, then what the store adds */
  size_t n, cap;
  size_t n_rows;      /* the rows the store gave */
  bool truncated;     /* a bound cut the answer */
  uint64_t *live_ids; /* sorted: the store's rows for these are older news */
  size_t n_live;
  bool operator; /* the caller: sees every job in full, or only uid's */
  uint32_t uid;
  int rc;
} list_work;

static int add_item(list_work *w, uint64_t id, const uint8_t *p, size_t n, uint64_t fold_id,
                    uint32_t task) {
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 64;
    item *v = realloc(w->items, cap * sizeof(*v));
    if (!v) return TY_ENOMEM;
    w->items = v, w->cap = cap;
  }
  uint8_t *copy = NULL;
  if (ty_wire_bytes(p, n, &copy) != 0) return TY_ENOMEM;
  w->items[w->n++] = (item){id, copy, n, fold_id, task};
  return 0;
}

static bool is_live(const list_work *w, uint64_t id) {
  size_t lo = 0, hi = w->n_live;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (w->live_ids[mid] == id) return true;
    if (w->live_ids[mid] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return false;
}

static int store_item(const ty_job_row *row, void *ud) {
  list_work *w = ud;
  w->n_rows++;
  if (is_live(w, row->id) ||
      !ty__job_picked(&w->f, row->id, (uint64_t)row->array_id, row->array_task, row->name))
    return 0;
  ty__job_view v;
  ty__job_view_row(row, &v);
  v.redact = !w->operator&& !(row->uid >= 0 && (uint32_t)row->uid == w->uid);
  v.abridge = true;
  ty_buf b;
  ty_buf_init(&b);
  int rc = ty__conv_job_info(&v, &b);
  if (rc == 0) rc = add_item(w, row->id, b.data, b.len, 0, 0);
  ty_buf_close(&b);
  return rc;
}

static int by_id_desc(const void *a, const void *b) {
  uint64_t x = ((const item *)a)->id, y = ((const item *)b)->id;
  return x > y ? -1 : x < y;
}

/* The newest w->limit of the store's jobs (items from `from` on); the
 * answer is cut when there were more, or the store stopped at its limit. */
static void keep_newest_ended(list_work *w, size_t from) {
  size_t n = w->n - from;
  if (n > 1) qsort(w->items + from, n, sizeof(*w->items), by_id_desc);
  while (w->n - from > w->limit)
    free(w->items[--w->n].bytes);
  w->truncated |= n > w->limit || w->n_rows > w->limit;
}

/* Thread pool: the ended jobs from the store. */
static void list_run(uv_work_t *req) {
  list_work *w = container_of(req, list_work, req);
  ty_store_reader *rd = NULL;
  /* The ids and names go to the store too, so that its limit counts only
   * jobs that can match: an element's ref asks for its array (store_item
   * keeps the element alone). */
  uint64_t *ids = w->f.n_jobs ? malloc(w->f.n_jobs * sizeof(*ids)) : NULL;
  for (size_t i = 0; ids && i < w->f.n_jobs; i++)
    ids[i] = w->f.jobs[i].id;
  ty_job_query q = {.states = w->ended,
                    .n_states = w->n_ended,
                    .finished_only = true,
                    .user = w->f.user,
                    .queue = w->f.queue,
                    .ended_since_ms = w->f.since_ms,
                    .limit = w->limit + 1, /* one more: whether there are more */
                    .ids = ids,
                    .n_ids = ids ? w->f.n_jobs : 0,
                    .names = (const char *const *)w->f.names,
                    .n_names = w->f.n_names,
                    .by_id = true};
  size_t n_live = w->n;
  w->rc = ty_store_reader_open(w->store, &rd);
  if (w->rc == 0) w->rc = ty_store_query_jobs(rd, &q, store_item, w);
  ty_store_reader_close(rd);
  free(ids);
  if (w->rc == 0) keep_newest_ended(w, n_live);
}

/* items[i] (the array's first pending element of a run, in answer order:
 * ids descending from i) and the `run` pending elements of its array that
 * follow it, as one JobInfo: the first's with its folded task list. */
static int put_folded(const item *items, size_t i, size_t run, ty_buf *out) {
  uint32_t *tasks = ty_wire_calloc(run, sizeof(*tasks));
  if (!tasks) return TY_ENOMEM;
  for (size_t k = 0; k < run; k++)
    tasks[k] = items[i - k].task;
  ty_buf text, info;
  ty_buf_init(&text), ty_buf_init(&info);
  int rc = ty_array_fold(tasks, run, &text);
  free(tasks);
  if (rc == 0) rc = ty_buf_append(&info, items[i].bytes, items[i].len);
  if (rc == 0) rc = ty__conv_field(53, text.data, text.len, &info); /* array_tasks_folded */
  if (rc == 0) rc = ty__conv_field(1, info.data, info.len, out);
  ty_buf_close(&text), ty_buf_close(&info);
  return rc;
}

/* How many items from i down (answer order) are pending elements of
 * items[i]'s array: 1 when it does not fold. */
static size_t fold_run(const item *items, size_t i) {
  size_t run = 1;
  while (items[i].array_id && run <= i && items[i - run].array_id == items[i].array_id)
    run++;
  return run;
}

/* How many of the newest items (by id, descending) fit in max_bytes: each
 * counted whole with its field's tag and length (a folded run is less: its
 * task list is shorter than the JobInfos it stands for). */
static size_t fitting(const item *items, size_t n, size_t max_bytes) {
  size_t used = 0, k = 0;
  while (k < n && used + items[k].len + 16 <= max_bytes)
    used += items[k++].len + 16;
  return k;
}

/* The newest items that `limit` (all when 0) and max_bytes leave, in id
 * order, as a ListJobsResponse, truncated when they cut it; with fold,
 * runs of pending elements of one array as one JobInfo each. */
static int list_answer(list_work *w, ty_buf *out) {
  item *items = w->items;
  size_t n = w->n;
  if (n > 1) qsort(items, n, sizeof(*items), by_id_desc); /* items is NULL when n is 0 */
  size_t keep = w->f.limit && w->f.limit < n ? w->f.limit : n;
  keep = fitting(items, keep, w->max_bytes);
  bool fold = w->f.fold_arrays;
  int rc = 0;
  for (size_t i = keep; rc == 0 && i-- > 0;) {
    size_t run = fold ? fold_run(items, i) : 1;
    if (run == 1) {
      rc = ty__conv_field(1, items[i].bytes, items[i].len, out);
      continue;
    }
    rc = put_folded(items, i, run, out);
    i -= run - 1;
  }
  static const uint8_t truncated[] = {2 << 3, 1}; /* ListJobsResponse.truncated = true */
  if (rc == 0 && (w->truncated || keep < n)) rc = ty_buf_append(out, truncated, sizeof(truncated));
  return rc;
}

static void list_work_free(list_work *w) {
  for (size_t i = 0; i < w->n; i++)
    free(w->items[i].bytes);
  free(w->items);
  free(w->live_ids);
  ty__list_filter_close(&w->f);
  free(w);
}

static void list_done(uv_work_t *req, int status) {
  list_work *w = container_of(req, list_work, req);
  int rc = status != 0 ? TY_ECLOSED : w->rc;
  if (rc == 0) rc = list_answer(w, &w->r->out);
  if (rc == TY_ESTORE)
    ty__reply_finish(w->r, rc, "cannot read finished jobs from the store");
  else
    ty__reply_finish(w->r, rc, rc ? ty_strerror(rc) : NULL);
  list_work_free(w);
}

/* The live jobs matching w->f, into w (their JobInfos as of now). */
static int list_live(ty_controller *ctl, list_work *w) {
  ctl->stats.list_jobs += ctl->n_jobs;
  w->live_ids = ty_wire_calloc(ctl->n_jobs, sizeof(*w->live_ids));
  if (!w->live_ids) return TY_ENOMEM;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < ctl->n_jobs; i++) {
    ty_job *j = ctl->jobs[i];
    w->live_ids[w->n_live++] = j->id;
    if (!ty__job_matches(j, &w->f)) continue;
    const ty_buf *info =
        ty__job_info(ctl, j, ty__auth_sees_job(w->r, j) ? TY__INFO_LISTED : TY__INFO_REDACTED);
    bool folds = j->array_id && j->state == TY_JOB_PENDING;
    rc = info ? add_item(w, j->id, info->data, info->len, folds ? j->array_id : 0, j->array_task)
              : TY_ENOMEM;
  }
  return rc;
}

/* The answer to the last live-only request, if nothing changed since and
 * this request is the same bytes. */
static bool answer_cached(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  if (!ctl->ls_cached || ctl->ls_cached_gen != ctl->ls_gen || ctl->ls_req.len != n ||
      (n && memcmp(ctl->ls_req.data, p, n) != 0))
    return false;
  if (ctl->ls_operator ? !r->operator : r->operator || ctl->ls_uid != r->who.uid) return false;
  if (ty_buf_append(&r->out, ctl->ls_reply.data, ctl->ls_reply.len) != 0) return false;
  ctl->stats.list_cached++;
  ty__reply_finish(r, 0, NULL);
  return true;
}

static void remember(ty_controller *ctl, const ty_reply *r, const uint8_t *p, size_t n,
                     const ty_buf *reply) {
  ctl->ls_req.len = ctl->ls_reply.len = 0;
  ctl->ls_operator = r->operator, ctl->ls_uid = r->who.uid;
  ctl->ls_cached = ty_buf_append(&ctl->ls_req, p, n) == 0 &&
                   ty_buf_append(&ctl->ls_reply, reply->data, reply->len) == 0;
  ctl->ls_cached_gen = ctl->ls_gen;
}

/* An answer's room in a frame of max_frame bytes (0: the default), less
 * what the reply's envelope around it may take. */
static size_t answer_room(size_t max_frame) {
  size_t frame = max_frame ? max_frame : TY_RPC_MAX_FRAME_DEFAULT;
  return frame > (64u << 10) ? frame - (16u << 10) : frame / 2;
}

void ty__h_list_jobs(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  if (answer_cached(ctl, r, p, n)) return;
  list_work *w = ty_xcalloc(1, sizeof(*w));
  char err[TY_ERR_LEN];
  int rc = ty__conv_list_jobs_req(p, n, &w->f);
  if (rc != 0) {
    free(w);
    ty__reply_bad_payload(r, rc, "a ListJobsRequest");
    return;
  }
  w->ctl = ctl, w->store = ctl->store, w->r = r;
  w->operator= r->operator, w->uid = r->who.uid;
  rc = ty__check_states(w->f.states, w->f.n_states, err, sizeof(err));
  if (rc == 0) rc = list_live(ctl, w);
  w->n_ended = ty__ended_states(w->f.states, w->f.n_states, w->ended);
  w->limit = ctl->cfg.history_cap;
  if (w->f.limit && w->f.limit < w->limit) w->limit = w->f.limit;
  if (w->f.ended_limit && w->f.ended_limit < w->limit) w->limit = w->f.ended_limit;
  w->max_bytes = answer_room(ctl->cfg.max_frame);
  if (rc == 0 && w->n_ended) {
    rc = uv_queue_work(ctl->loop, &w->req, list_run, list_done);
    if (rc == 0) return;
  } else if (rc == 0) {
    rc = list_answer(w, &r->out);
    if (rc == 0) remember(ctl, r, p, n, &r->out);
  }
  if (rc == TY_EINVAL)
    ty__reply_finish(r, rc, err);
  else
    ty__reply_finish(r, rc, rc ? ty_strerror(rc) : NULL);
  list_work_free(w);
}
