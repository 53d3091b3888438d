/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_workers: the threads kernels split their loops over. One caller (the
 * executor's thread) publishes a job (a function over the items [0, n)),
 * takes chunks itself and leaves as soon as every chunk is done; the other
 * threads sleep on a condition variable between jobs and join a job only
 * while it is open, so a thread the kernel scheduler has not woken yet
 * never delays the caller, and an idle pool costs no CPU. (OpenBLAS' own
 * threads spin in sched_yield between calls, which on a machine with as
 * many runnable threads as cores takes the cores the next kernel needs;
 * that is why a pool turns OpenBLAS' threading off, see ty_workers_create.)
 *
 * Chunks are handed out by an atomic counter, so a core lost to another
 * process slows the job down by its share, not to the slowest thread's
 * pace. Kernels keep results independent of who ran which chunk: each chunk
 * writes its own outputs, and a reduction splits its items into blocks
 * fixed by the data, never by the thread count.
 *
 * Tuned for jobs of tens of microseconds to tens of milliseconds (the
 * kernels of one training step); smaller loops pass a grain that keeps
 * them on the caller.
 */
#include "ops/exec.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

void openblas_set_num_threads(int num_threads); /* OpenBLAS; cblas.h would pull in all of BLAS */

struct ty_workers {
  int n; /* threads including the caller */
  pthread_t *threads;
  int n_started;
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  /* The job, written under mu before it opens. */
  ty__par_fn fn;
  void *arg;
  int64_t n_items, chunk, n_chunks;
  atomic_llong next; /* the next chunk to hand out */
  uint64_t gen;      /* job number, to tell a new job from the last */
  bool open;         /* threads may still join the job */
  bool busy;         /* a job runs: a nested or concurrent call runs inline */
  int active;        /* threads inside the job besides the caller */
  int next_slot;     /* slot of the next joining thread (the caller is 0) */
  bool quit;
};

/* Takes chunks until none is left. */
static void drain(ty_workers *w, ty__par_fn fn, void *arg, int slot) {
  for (;;) {
    long long c = atomic_fetch_add(&w->next, 1);
    if (c >= w->n_chunks) return;
    int64_t begin = c * w->chunk, end = begin + w->chunk;
    fn(arg, begin, end < w->n_items ? end : w->n_items, slot);
  }
}

static void *worker(void *p) {
  ty_workers *w = p;
  uint64_t seen = 0;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->quit && !(w->open && w->gen != seen))
      pthread_cond_wait(&w->go, &w->mu);
    if (w->quit) break;
    seen = w->gen;
    int slot = ++w->next_slot;
    w->active++;
    ty__par_fn fn = w->fn;
    void *arg = w->arg;
    pthread_mutex_unlock(&w->mu);
    drain(w, fn, arg, slot);
    pthread_mutex_lock(&w->mu);
    if (--w->active == 0) pthread_cond_signal(&w->done);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

int ty_workers_create(int n_threads, ty_workers **out) {
  if (n_threads < 1 || n_threads > 1024) return TY_EINVAL;
  ty_workers *w = calloc(1, sizeof *w);
  if (!w) return TY_ENOMEM;
  w->n = n_threads;
  atomic_init(&w->next, 0);
  if (pthread_mutex_init(&w->mu, NULL) != 0) {
    free(w);
    return TY_ENOMEM;
  }
  pthread_cond_init(&w->go, NULL);
  pthread_cond_init(&w->done, NULL);
  if (n_threads > 1 && !(w->threads = calloc((size_t)n_threads - 1, sizeof *w->threads))) {
    ty_workers_destroy(w);
    return TY_ENOMEM;
  }
  for (int i = 0; i + 1 < n_threads; i++) {
    if (pthread_create(&w->threads[i], NULL, worker, w) != 0) {
      ty_workers_destroy(w);
      return TY_ENOMEM;
    }
    w->n_started++;
  }
  ty__blas_on_caller();
  *out = w;
  return 0;
}

void ty__blas_on_caller(void) {
  openblas_set_num_threads(1);
}

void ty_workers_destroy(ty_workers *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->quit = true;
  pthread_cond_broadcast(&w->go);
  pthread_mutex_unlock(&w->mu);
  for (int i = 0; i < w->n_started; i++)
    pthread_join(w->threads[i], NULL);
  pthread_cond_destroy(&w->go);
  pthread_cond_destroy(&w->done);
  pthread_mutex_destroy(&w->mu);
  free(w->threads);
  free(w);
}

int ty_workers_count(const ty_workers *w) {
  return w ? w->n : 1;
}

int64_t ty_workers_jobs(ty_workers *w) {
  if (!w) return 0;
  pthread_mutex_lock(&w->mu);
  int64_t n = (int64_t)w->gen;
  pthread_mutex_unlock(&w->mu);
  return n;
}

void ty__parallel_for(ty_workers *w, int64_t n, int64_t grain, ty__par_fn fn, void *arg) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  bool inline_run = !w || w->n == 1 || n <= grain;
  if (!inline_run) {
    pthread_mutex_lock(&w->mu);
    inline_run = w->busy;
    w->busy = true;
    pthread_mutex_unlock(&w->mu);
  }
  if (inline_run) {
    fn(arg, 0, n, 0);
    return;
  }
  /* About four chunks per thread: enough to rebalance when a core is lost. */
  int64_t chunk = (n + 4 * (int64_t)w->n - 1) / (4 * (int64_t)w->n);
  if (chunk < grain) chunk = grain;
  pthread_mutex_lock(&w->mu);
  w->fn = fn;
  w->arg = arg;
  w->n_items = n;
  w->chunk = chunk;
  w->n_chunks = (n + chunk - 1) / chunk;
  atomic_store(&w->next, 0);
  w->next_slot = 0;
  w->gen++;
  w->open = true;
  pthread_cond_broadcast(&w->go);
  pthread_mutex_unlock(&w->mu);
  drain(w, fn, arg, 0);
  pthread_mutex_lock(&w->mu);
  w->open = false; /* a thread not yet awake sits this job out */
  while (w->active > 0)
    pthread_cond_wait(&w->done, &w->mu);
  w->busy = false;
  pthread_mutex_unlock(&w->mu);
}
