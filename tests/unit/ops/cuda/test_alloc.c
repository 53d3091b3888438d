/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/cuda's caching allocator on the host heap (its backend is swapped
 * for malloc, so no GPU is needed): size classes, reuse per stream only,
 * best fit within a quarter, errors for foreign and double frees, the
 * cache released when the backend runs out, peak and fragmentation, and
 * every block returned at destroy.
 */
#include "lib/base/base.h"
#include "ops/cuda/cuda.h"

#include <criterion/criterion.h>
#include <stdlib.h>

/* malloc with a byte budget and a count of live blocks. */
typedef struct heap {
  size_t budget, used;
  int live;
} heap;

static size_t *header(void *p) {
  return (size_t *)p - 2;
}

static int heap_alloc(size_t bytes, void **out_ptr, void *user) {
  heap *h = user;
  if (h->used + bytes > h->budget) return TY_ENOMEM;
  size_t *p = malloc(bytes + 2 * sizeof(size_t));
  if (!p) return TY_ENOMEM;
  p[0] = bytes;
  h->used += bytes;
  h->live++;
  *out_ptr = p + 2;
  return 0;
}

static void heap_free(void *ptr, void *user) {
  heap *h = user;
  h->used -= header(ptr)[0];
  h->live--;
  free(header(ptr));
}

static ty_cuda_alloc *make(heap *h, size_t budget) {
  *h = (heap){.budget = budget};
  ty_cuda_alloc_backend be = {heap_alloc, heap_free, h};
  ty_cuda_alloc *a = NULL;
  cr_assert_eq(ty_cuda_alloc_create(&be, &a), 0);
  return a;
}

Test(cuda_alloc, size_classes) {
  cr_assert_eq(ty_cuda_alloc_round(0), 512);
  cr_assert_eq(ty_cuda_alloc_round(1), 512);
  cr_assert_eq(ty_cuda_alloc_round(513), 1024);
  cr_assert_eq(ty_cuda_alloc_round(1 << 20), 1 << 20);
  /* Above 1 MiB: sixteenths of the next power of two (3 MiB -> 4 MiB / 16). */
  cr_assert_eq(ty_cuda_alloc_round((3u << 20) + 1), (3u << 20) + (256u << 10));
  cr_assert_eq(ty_cuda_alloc_round((size_t)1000 << 20), (size_t)1024 << 20);
  for (size_t b = 1; b < ((size_t)64 << 20); b = b * 3 + 7) {
    size_t r = ty_cuda_alloc_round(b);
    cr_assert(r >= b && (b <= 512 || r - b <= b / 8 + 511), "%zu -> %zu wastes too much", b, r);
  }
}

Test(cuda_alloc, reuses_per_stream_only) {
  heap h;
  ty_cuda_alloc *a = make(&h, SIZE_MAX);
  void *s1 = (void *)0x1, *s2 = (void *)0x2, *p, *q;
  cr_assert_eq(ty_cuda_alloc_get(a, 1000, s1, &p), 0);
  cr_assert_eq(ty_cuda_alloc_put(a, p), 0);
  cr_assert_eq(ty_cuda_alloc_get(a, 900, s1, &q), 0);
  cr_assert_eq(q, p, "same class, same stream: the cached block");
  cr_assert_eq(ty_cuda_alloc_put(a, q), 0);
  cr_assert_eq(ty_cuda_alloc_get(a, 1000, s2, &q), 0);
  cr_assert_neq(q, p, "another stream never gets a block still ordered on s1");
  ty_cuda_alloc_stats st;
  ty_cuda_alloc_get_stats(a, &st);
  cr_assert_eq(st.allocs, 3);
  cr_assert_eq(st.cache_hits, 1);
  cr_assert_eq(st.raw_allocs, 2);
  ty_cuda_alloc_destroy(a);
  cr_assert_eq(h.live, 0, "destroy returns every block");
}

Test(cuda_alloc, best_fit_within_a_quarter) {
  heap h;
  ty_cuda_alloc *a = make(&h, SIZE_MAX);
  void *big, *mid, *p;
  cr_assert_eq(ty_cuda_alloc_get(a, 8192, NULL, &big), 0);
  cr_assert_eq(ty_cuda_alloc_get(a, 4608, NULL, &mid), 0);
  cr_assert_eq(ty_cuda_alloc_put(a, big), 0);
  cr_assert_eq(ty_cuda_alloc_put(a, mid), 0);
  cr_assert_eq(ty_cuda_alloc_get(a, 4096, NULL, &p), 0);
  cr_assert_eq(p, mid, "4608 is within a quarter of 4096; 8192 is not");
  cr_assert_eq(ty_cuda_alloc_get(a, 2048, NULL, &p), 0);
  cr_assert_neq(p, big, "a block 4x the request stays cached");
  ty_cuda_alloc_destroy(a);
  cr_assert_eq(h.live, 0);
}

Test(cuda_alloc, rejects_foreign_and_double_frees) {
  heap h;
  ty_cuda_alloc *a = make(&h, SIZE_MAX);
  void *p;
  int x;
  cr_assert_eq(ty_cuda_alloc_put(a, &x), TY_EINVAL);
  cr_assert_eq(ty_cuda_alloc_put(a, NULL), 0);
  cr_assert_eq(ty_cuda_alloc_get(a, 10, NULL, &p), 0);
  cr_assert_eq(ty_cuda_alloc_put(a, p), 0);
  cr_assert_eq(ty_cuda_alloc_put(a, p), TY_ESTATE);
  ty_cuda_alloc_destroy(a);
}

Test(cuda_alloc, out_of_memory_releases_the_cache_once) {
  heap h;
  ty_cuda_alloc *a = make(&h, 3 * 4096);
  void *p[3], *q;
  for (int i = 0; i < 3; i++)
    cr_assert_eq(ty_cuda_alloc_get(a, 4096, (void *)(uintptr_t)(i + 1), &p[i]), 0);
  cr_assert_eq(ty_cuda_alloc_put(a, p[0]), 0);
  cr_assert_eq(ty_cuda_alloc_put(a, p[1]), 0);
  /* Stream 9 cannot reuse them; the budget is spent: trim, then retry. */
  cr_assert_eq(ty_cuda_alloc_get(a, 8192, (void *)9, &q), 0);
  ty_cuda_alloc_stats st;
  ty_cuda_alloc_get_stats(a, &st);
  cr_assert_eq(st.oom_flushes, 1);
  cr_assert_eq(st.raw_frees, 2);
  cr_assert_eq(st.reserved, 4096 + 8192);
  cr_assert_eq(ty_cuda_alloc_put(a, p[2]), 0, "blocks survive the compaction");
  cr_assert_eq(ty_cuda_alloc_put(a, q), 0);
  cr_assert_eq(ty_cuda_alloc_get(a, 1 << 20, NULL, &q), TY_ENOMEM);
  ty_cuda_alloc_destroy(a);
  cr_assert_eq(h.live, 0);
}

Test(cuda_alloc, peak_and_fragmentation) {
  heap h;
  ty_cuda_alloc *a = make(&h, SIZE_MAX);
  void *p[200];
  for (int i = 0; i < 200; i++) /* enough blocks to grow the hash twice */
    cr_assert_eq(ty_cuda_alloc_get(a, 1000 + (size_t)i, NULL, &p[i]), 0);
  ty_cuda_alloc_stats st;
  ty_cuda_alloc_get_stats(a, &st);
  cr_assert_eq(st.peak_in_use, st.in_use);
  cr_assert(st.fragmentation > 0.0 && st.fragmentation < 0.5, "%f", st.fragmentation);
  for (int i = 0; i < 200; i++)
    cr_assert_eq(ty_cuda_alloc_put(a, p[i]), 0, "block %d", i);
  ty_cuda_alloc_get_stats(a, &st);
  cr_assert_eq(st.in_use, 0);
  cr_assert_eq(st.requested, 0);
  cr_assert_eq(st.fragmentation, 1.0, "all reserved, nothing requested");
  cr_assert_eq(st.peak_in_use, 25 * 1024 + 175 * 1536, "1000..1024 -> 1024, 1025..1199 -> 1536");
  ty_cuda_alloc_trim(a);
  ty_cuda_alloc_get_stats(a, &st);
  cr_assert_eq(st.reserved, 0);
  cr_assert_eq(h.live, 0);
  ty_cuda_alloc_destroy(a);
}
