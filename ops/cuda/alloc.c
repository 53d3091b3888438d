/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The caching device allocator. cudaMalloc and cudaFree synchronise the
 * device and cost tens of microseconds; a training step allocates and
 * frees the same few hundred sizes every step, so freed blocks are kept
 * and handed out again.
 *
 * Rules (the invariants tests check):
 *  - Sizes are rounded (ty_cuda_alloc_round): up to 1 MiB to 512 bytes,
 *    above to a sixteenth of the next power of two, so the waste of a large
 *    block is at most 12.5% and a step's sizes fall into few classes.
 *  - A freed block is reused only for the stream it was allocated on: the
 *    kernels of that stream that used it are ordered before the next user,
 *    so no event is needed. Another stream gets a fresh block.
 *  - Reuse is best fit among that stream's free blocks no more than a
 *    quarter larger than the rounded request (blocks are never split).
 *  - When the backend is out of memory every cached free block is
 *    released (cudaFree waits for the device, so nothing is in flight on
 *    them) and the allocation is tried once more.
 *  - Peak bytes in use, bytes reserved from the device, and the
 *    fragmentation (reserved bytes not holding requested data: rounding
 *    and cached free blocks) are what `trainrun --report` prints.
 *
 * The device calls are behind a backend (cudaMalloc/cudaFree by default),
 * so the bookkeeping is pure and its unit tests run on hosts without a GPU
 * with malloc as the backend. Tuned for hundreds of live blocks: pointers
 * are found by an open-addressing hash, free blocks by a linear scan of
 * the free list. Not thread-safe: one per rank's executor thread.
 */
#include "ops/cuda/cuda.h"

#include "lib/base/base.h"

#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
  void *ptr;
  size_t size, requested;
  void *stream;
  bool free;
} block;

struct ty_cuda_alloc {
  ty_cuda_alloc_backend be;
  block *blocks; /* slot array; ptr NULL = unused slot */
  size_t n_blocks, cap_blocks;
  size_t *free_list; /* indices of free blocks */
  size_t n_free;
  size_t *map; /* hash of ptr -> block index + 1; 0 empty; SIZE_MAX deleted */
  size_t cap_map;
  ty_cuda_alloc_stats st;
};

static int cuda_raw_alloc(size_t bytes, void **out_ptr, void *user) {
  (void)user;
  if (cudaMalloc(out_ptr, bytes) == cudaSuccess) return 0;
  (void)cudaGetLastError();
  return TY_ENOMEM;
}

static void cuda_raw_free(void *ptr, void *user) {
  (void)user;
  cudaFree(ptr);
}

size_t ty_cuda_alloc_round(size_t bytes) {
  if (bytes <= 512) return 512;
  if (bytes <= ((size_t)1 << 20)) return (bytes + 511) & ~(size_t)511;
  size_t p = (size_t)1 << 20;
  while (p < bytes && p <= SIZE_MAX / 2)
    p <<= 1;
  size_t step = p / 16; /* bytes is in (p/2, p]: sixteenths of p waste at most bytes/8 */
  return bytes > SIZE_MAX - step ? bytes : (bytes + step - 1) / step * step;
}

int ty_cuda_alloc_create(const ty_cuda_alloc_backend *be, ty_cuda_alloc **out_alloc) {
  ty_cuda_alloc *a = calloc(1, sizeof *a);
  if (!a) return TY_ENOMEM;
  a->be = be ? *be : (ty_cuda_alloc_backend){cuda_raw_alloc, cuda_raw_free, NULL};
  *out_alloc = a;
  return 0;
}

static size_t hash_ptr(const void *p, size_t cap) {
  return (size_t)ty_mix64((uint64_t)(uintptr_t)p) & (cap - 1);
}

/* The map slot holding ptr, or SIZE_MAX. */
static size_t map_find(const ty_cuda_alloc *a, const void *ptr) {
  for (size_t i = 0, h = a->cap_map ? hash_ptr(ptr, a->cap_map) : 0; i < a->cap_map; i++) {
    size_t s = (h + i) & (a->cap_map - 1), v = a->map[s];
    if (v == 0) return SIZE_MAX;
    if (v != SIZE_MAX && a->blocks[v - 1].ptr == ptr) return s;
  }
  return SIZE_MAX;
}

static void map_put(ty_cuda_alloc *a, size_t idx) {
  size_t h = hash_ptr(a->blocks[idx].ptr, a->cap_map);
  for (size_t i = 0;; i++) {
    size_t s = (h + i) & (a->cap_map - 1);
    if (a->map[s] == 0 || a->map[s] == SIZE_MAX) {
      a->map[s] = idx + 1;
      return;
    }
  }
}

/* Room for one more block: the slot array, the free list and a map kept
 * at most half full (rebuilt when it grows, which drops deleted marks). */
static int reserve_slot(ty_cuda_alloc *a) {
  if (a->n_blocks == a->cap_blocks) {
    size_t cap = a->cap_blocks ? a->cap_blocks * 2 : 64;
    block *b = realloc(a->blocks, cap * sizeof *b);
    if (!b) return TY_ENOMEM;
    a->blocks = b;
    size_t *f = realloc(a->free_list, cap * sizeof *f);
    if (!f) return TY_ENOMEM;
    a->free_list = f;
    a->cap_blocks = cap;
  }
  if ((a->n_blocks + 1) * 2 <= a->cap_map) return 0;
  size_t cap = a->cap_map ? a->cap_map * 2 : 128;
  size_t *m = calloc(cap, sizeof *m);
  if (!m) return TY_ENOMEM;
  free(a->map);
  a->map = m;
  a->cap_map = cap;
  for (size_t i = 0; i < a->n_blocks; i++)
    if (a->blocks[i].ptr) map_put(a, i);
  return 0;
}

/* Best fit on the stream within a quarter above size; SIZE_MAX if none. */
static size_t find_free(const ty_cuda_alloc *a, size_t size, const void *stream) {
  size_t best = SIZE_MAX, limit = size + size / 4;
  for (size_t f = 0; f < a->n_free; f++) {
    const block *b = &a->blocks[a->free_list[f]];
    if (b->stream == stream && b->size >= size && b->size <= limit &&
        (best == SIZE_MAX || b->size < a->blocks[a->free_list[best]].size))
      best = f;
  }
  return best;
}

static void track_peaks(ty_cuda_alloc *a) {
  if (a->st.in_use > a->st.peak_in_use) a->st.peak_in_use = a->st.in_use;
  if (a->st.reserved > a->st.peak_reserved) a->st.peak_reserved = a->st.reserved;
}

/* A new block from the backend, trimming the cache once when it is out of
 * memory. */
static int fresh_block(ty_cuda_alloc *a, size_t size, void *stream, size_t *out_idx) {
  int rc = reserve_slot(a);
  void *ptr = NULL;
  if (rc == 0 && (rc = a->be.raw_alloc(size, &ptr, a->be.user)) != 0 && a->n_free > 0) {
    a->st.oom_flushes++;
    ty_cuda_alloc_trim(a);
    rc = a->be.raw_alloc(size, &ptr, a->be.user);
  }
  if (rc != 0) return TY_ENOMEM;
  a->st.raw_allocs++;
  a->st.reserved += size;
  a->blocks[a->n_blocks] = (block){.ptr = ptr, .size = size, .stream = stream};
  map_put(a, a->n_blocks);
  *out_idx = a->n_blocks++;
  return 0;
}

int ty_cuda_alloc_get(ty_cuda_alloc *a, size_t bytes, void *stream, void **out_ptr) {
  size_t size = ty_cuda_alloc_round(bytes ? bytes : 1), idx;
  size_t f = find_free(a, size, stream);
  if (f != SIZE_MAX) {
    idx = a->free_list[f];
    a->free_list[f] = a->free_list[--a->n_free];
    a->st.cache_hits++;
  } else {
    int rc = fresh_block(a, size, stream, &idx);
    if (rc != 0) return rc;
  }
  block *b = &a->blocks[idx];
  b->free = false;
  b->requested = bytes;
  a->st.allocs++;
  a->st.in_use += b->size;
  a->st.requested += bytes;
  track_peaks(a);
  *out_ptr = b->ptr;
  return 0;
}

int ty_cuda_alloc_put(ty_cuda_alloc *a, void *ptr) {
  if (!ptr) return 0;
  size_t s = map_find(a, ptr);
  if (s == SIZE_MAX) return TY_EINVAL; /* not from this allocator */
  size_t idx = a->map[s] - 1;
  block *b = &a->blocks[idx];
  if (b->free) return TY_ESTATE; /* freed twice */
  b->free = true;
  a->free_list[a->n_free++] = idx;
  a->st.in_use -= b->size;
  a->st.requested -= b->requested;
  return 0;
}

void ty_cuda_alloc_trim(ty_cuda_alloc *a) {
  for (size_t f = 0; f < a->n_free; f++) {
    block *b = &a->blocks[a->free_list[f]];
    a->map[map_find(a, b->ptr)] = SIZE_MAX;
    a->be.raw_free(b->ptr, a->be.user);
    a->st.raw_frees++;
    a->st.reserved -= b->size;
    b->ptr = NULL;
  }
  a->n_free = 0;
  /* Compact the slot array (indices change: rebuild the map). */
  size_t n = 0;
  for (size_t i = 0; i < a->n_blocks; i++)
    if (a->blocks[i].ptr) a->blocks[n++] = a->blocks[i];
  a->n_blocks = n;
  if (a->map) memset(a->map, 0, a->cap_map * sizeof *a->map);
  for (size_t i = 0; i < n; i++)
    map_put(a, i);
}

void ty_cuda_alloc_get_stats(const ty_cuda_alloc *a, ty_cuda_alloc_stats *out_stats) {
  *out_stats = a->st;
  out_stats->fragmentation =
      a->st.reserved ? 1.0 - (double)a->st.requested / (double)a->st.reserved : 0.0;
}

void ty_cuda_alloc_destroy(ty_cuda_alloc *a) {
  if (!a) return;
  for (size_t i = 0; i < a->n_blocks; i++)
    if (a->blocks[i].ptr) a->be.raw_free(a->blocks[i].ptr, a->be.user);
  free(a->blocks);
  free(a->free_list);
  free(a->map);
  free(a);
}
