/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The batch loader: cuts one rank's shard of the epoch order into batches
 * and, with prefetch, assembles them (every column, converted to its model
 * input type and augmented where its feed says) on a producer thread.
 *
 * Prefetch protocol: three slots used round-robin, batch b in slot b % 3.
 * Each slot is FREE (the producer may fill it), READY (filled, waiting) or
 * HELD (handed to the consumer, valid until its next call). The consumer holds
 * at most one slot, so at most two are READY: the bounded queue of 2. The
 * producer fills a slot outside the lock — nobody else touches a FREE slot —
 * and the mutex/condvar pair only guards the state words. The epoch order is
 * written only while no producer runs (after join), so it needs no lock.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "ops/data/data_internal.h"

#define SLOTS 3
#define AUGMENT_STREAM 0x6175676d656e74ull /* "augment" */

enum { SLOT_FREE = 0, SLOT_READY, SLOT_HELD };

typedef struct slot {
  void *cols[TY_DATA_MAX_COLUMNS]; /* [batch_size, elems] of each column's target type */
  uint32_t n;
  uint64_t index;
  int state;
} slot;

struct ty_loader {
  const ty_dataset *ds; /* borrowed */
  ty_loader_opts o;
  size_t n_cols;
  size_t col_bytes[TY_DATA_MAX_COLUMNS]; /* one sample of each column, converted */
  uint32_t n;                            /* samples in the epoch's order */
  uint64_t shard_len;                    /* positions this rank reads, padding included */
  uint64_t batches;
  uint32_t *order; /* the epoch's full order, all ranks */
  slot slots[SLOTS];
  uint64_t epoch;
  uint64_t next_batch;   /* consumer side, under mu when prefetching */
  uint64_t produce_from; /* producer's first batch; fixed while it runs */
  bool started;
  int held; /* slot index the consumer holds, or -1 */
  /* prefetch */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  bool running;
  bool stop;
};

/* The augmentation key of sample idx this epoch: a stream apart from the
 * shuffle's (which keys by ty_mix2(seed, epoch) alone). */
static uint64_t augment_key(const ty_loader *l, uint32_t idx) {
  return ty_mix2(ty_mix2(l->o.seed, l->epoch) ^ AUGMENT_STREAM, idx);
}

static void fill(ty_loader *l, slot *s, uint64_t b) {
  uint64_t first = b * l->o.batch_size;
  uint64_t last = first + l->o.batch_size;
  if (last > l->shard_len) last = l->shard_len;
  s->n = (uint32_t)(last - first);
  s->index = b;
  for (uint64_t p = first; p < last; p++) {
    /* Only pad_last reads past the order's end: it wraps to its start. */
    uint32_t idx = l->order[(l->o.rank + p * l->o.world_size) % l->n];
    size_t at = (size_t)(p - first);
    for (size_t k = 0; k < l->n_cols; k++) {
      void *dst = (uint8_t *)s->cols[k] + at * l->col_bytes[k];
      ty_dataset_gather(l->ds, k, idx, dst);
      if (ty_dataset_augments(l->ds, k)) ty_dataset_augment(l->ds, k, augment_key(l, idx), dst);
    }
  }
}

static void *producer(void *arg) {
  ty_loader *l = arg;
  for (uint64_t b = l->produce_from; b < l->batches; b++) {
    slot *s = &l->slots[b % SLOTS];
    pthread_mutex_lock(&l->mu);
    while (s->state != SLOT_FREE && !l->stop)
      pthread_cond_wait(&l->cv, &l->mu);
    bool stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    if (stop) break;
    fill(l, s, b);
    pthread_mutex_lock(&l->mu);
    s->state = SLOT_READY;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
  }
  return NULL;
}

static void stop_producer(ty_loader *l) {
  if (!l->running) return;
  pthread_mutex_lock(&l->mu);
  l->stop = true;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->thread, NULL);
  l->running = false;
  l->stop = false;
}

static int check_opts(const ty_dataset *ds, const ty_loader_opts *o, char *err, size_t err_len) {
  if (o->batch_size == 0) return ty_errf(err, err_len, TY_EINVAL, "batch_size: must be > 0");
  uint32_t world = o->world_size ? o->world_size : 1;
  if (o->drop_last && o->pad_last)
    return ty_errf(err, err_len, TY_EINVAL, "drop_last and pad_last: set at most one");
  if (o->rank >= world)
    return ty_errf(err, err_len, TY_EINVAL, "rank: %u is not below world_size %u", o->rank, world);
  if (ty_dataset_count(ds) < world)
    return ty_errf(err, err_len, TY_EINVAL, "world_size: %u ranks for %zu samples", world,
                   ty_dataset_count(ds));
  return 0;
}

/* Batches per epoch of a rank whose shard holds shard_len of n samples. */
static uint64_t count_batches(const ty_loader_opts *o, uint32_t n, uint32_t shard_len) {
  uint64_t per = o->batch_size, global = per * o->world_size;
  if (o->drop_last) return (n / o->world_size) / per;
  if (o->pad_last) return (n + global - 1) / global;
  return (shard_len + per - 1) / per;
}

/* Batch buffers of every column, sizes checked for overflow. */
static int alloc_slots(ty_loader *l, char *err, size_t err_len) {
  for (size_t k = 0; k < l->n_cols; k++) {
    const ty_data_column *c = ty_dataset_column(l->ds, k);
    size_t bytes;
    if (ty_mul_overflow(c->elems, ty_data_type_size(c->to), &l->col_bytes[k]) ||
        ty_mul_overflow(l->col_bytes[k], l->o.batch_size, &bytes))
      return ty_errf(err, err_len, TY_ETOOBIG,
                     "batch_size: %u samples of \"%s\" overflow the address space", l->o.batch_size,
                     c->name);
    for (int i = 0; i < SLOTS; i++)
      if ((l->slots[i].cols[k] = malloc(bytes ? bytes : 1)) == NULL) return TY_ENOMEM;
  }
  return 0;
}

int ty_loader_create(const ty_dataset *ds, const ty_loader_opts *opts, ty_loader **out_loader,
                     char *err, size_t err_len) {
  if (ds == NULL || opts == NULL || out_loader == NULL) return TY_EINVAL;
  *out_loader = NULL;
  int rc = check_opts(ds, opts, err, err_len);
  if (rc != 0) return rc;
  ty_loader *l = calloc(1, sizeof *l);
  if (l == NULL) return TY_ENOMEM;
  l->ds = ds;
  l->o = *opts;
  l->o.world_size = opts->world_size ? opts->world_size : 1;
  l->n_cols = ty_dataset_n_columns(ds);
  l->held = -1;
  uint32_t n = (uint32_t)ty_dataset_count(ds);
  l->n = n;
  l->shard_len = ty_data_shard_len(n, l->o.rank, l->o.world_size);
  l->batches = count_batches(&l->o, n, l->shard_len);
  if (l->o.pad_last) l->shard_len = l->batches * l->o.batch_size;
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  rc = TY_ENOMEM;
  l->order = malloc((size_t)n * sizeof *l->order);
  if (l->order == NULL) goto fail;
  if ((rc = alloc_slots(l, err, err_len)) != 0) goto fail;
  *out_loader = l;
  return 0;
fail:
  ty_loader_destroy(l);
  return rc;
}

void ty_loader_destroy(ty_loader *l) {
  if (l == NULL) return;
  stop_producer(l);
  for (int i = 0; i < SLOTS; i++)
    for (size_t k = 0; k < TY_DATA_MAX_COLUMNS; k++)
      free(l->slots[i].cols[k]);
  free(l->order);
  pthread_cond_destroy(&l->cv);
  pthread_mutex_destroy(&l->mu);
  free(l);
}

uint64_t ty_loader_batches_per_epoch(const ty_loader *l) {
  return l->batches;
}

int ty_loader_start_epoch(ty_loader *l, uint64_t epoch, uint64_t first_batch) {
  if (l == NULL || first_batch > l->batches) return TY_EINVAL;
  stop_producer(l);
  uint32_t n = (uint32_t)ty_dataset_count(l->ds);
  if (l->o.shuffle) {
    ty_data_shuffle(l->o.seed, epoch, n, l->order);
  } else {
    for (uint32_t i = 0; i < n; i++)
      l->order[i] = i;
  }
  for (int i = 0; i < SLOTS; i++)
    l->slots[i].state = SLOT_FREE;
  l->held = -1;
  l->epoch = epoch;
  l->next_batch = first_batch;
  l->produce_from = first_batch;
  l->started = true;
  /* Without a thread (disabled, or pthread_create failed) next() fills
   * batches itself: slower, never wrong. */
  if (l->o.prefetch && first_batch < l->batches)
    l->running = pthread_create(&l->thread, NULL, producer, l) == 0;
  return 0;
}

static void hand_out(ty_loader *l, const slot *s, ty_batch *out) {
  memset(out, 0, sizeof *out);
  for (size_t k = 0; k < l->n_cols; k++)
    out->cols[k] = s->cols[k];
  if (ty_dataset_column(l->ds, 0)->to == TY_DATA_F32) out->x = s->cols[0];
  if (l->n_cols > 1 && ty_dataset_column(l->ds, 1)->to == TY_DATA_I64) out->y = s->cols[1];
  out->n = s->n;
  out->epoch = l->epoch;
  out->index = s->index;
}

int ty_loader_next(ty_loader *l, ty_batch *out_batch) {
  if (l == NULL || out_batch == NULL) return TY_EINVAL;
  if (!l->started) return TY_ESTATE;
  if (!l->running) {
    if (l->next_batch >= l->batches) return 0;
    fill(l, &l->slots[0], l->next_batch++);
    hand_out(l, &l->slots[0], out_batch);
    return 1;
  }
  pthread_mutex_lock(&l->mu);
  if (l->held >= 0) {
    l->slots[l->held].state = SLOT_FREE;
    l->held = -1;
    pthread_cond_broadcast(&l->cv);
  }
  if (l->next_batch >= l->batches) {
    pthread_mutex_unlock(&l->mu);
    return 0;
  }
  int si = (int)(l->next_batch % SLOTS);
  while (l->slots[si].state != SLOT_READY)
    pthread_cond_wait(&l->cv, &l->mu);
  l->slots[si].state = SLOT_HELD;
  l->held = si;
  l->next_batch++;
  pthread_mutex_unlock(&l->mu);
  hand_out(l, &l->slots[si], out_batch);
  return 1;
}
