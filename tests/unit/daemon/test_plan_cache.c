/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for daemon/plan_cache.c: copies in and out, least recently
 * used first out, the byte bound, replacing a key, hit and miss counts. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"

static void put(ty_plan_cache *c, uint64_t key, size_t len) {
  uint8_t *b = malloc(len);
  memset(b, (int)key, len);
  ty_plan_cache_put(c, key, b, len);
  free(b); /* the cache keeps its own copy */
}

static bool has(ty_plan_cache *c, uint64_t key, size_t len) {
  uint8_t *b = NULL;
  size_t n = 0;
  int rc = ty_plan_cache_get(c, key, &b, &n);
  bool ok = rc == 0 && n == len && b[0] == (uint8_t)key && b[n - 1] == (uint8_t)key;
  free(b);
  cr_assert(rc == 0 || rc == TY_ENOTFOUND);
  return ok;
}

Test(plan_cache, least_recently_used_goes_first) {
  ty_plan_cache *c = ty_plan_cache_create(3, 1 << 20);
  cr_assert_not_null(c);
  put(c, 1, 10), put(c, 2, 10), put(c, 3, 10);
  cr_assert(has(c, 1, 10)); /* 1 is now the most recent: 2 goes next */
  put(c, 4, 10);
  cr_assert(!has(c, 2, 10));
  cr_assert(has(c, 1, 10) && has(c, 3, 10) && has(c, 4, 10));
  size_t n, bytes;
  uint64_t hits, misses;
  ty_plan_cache_stats(c, &n, &bytes, &hits, &misses);
  cr_assert(n == 3 && bytes == 30 && hits == 4 && misses == 1);
  ty_plan_cache_destroy(c);
  ty_plan_cache_destroy(NULL);
}

Test(plan_cache, bytes_bound_and_replacement) {
  ty_plan_cache *c = ty_plan_cache_create(8, 100);
  put(c, 1, 40), put(c, 2, 40);
  put(c, 3, 40); /* 120 > 100: 1 goes */
  cr_assert(!has(c, 1, 40) && has(c, 2, 40) && has(c, 3, 40));
  put(c, 9, 101); /* larger than the whole cache: not kept, nothing dropped */
  cr_assert(!has(c, 9, 101) && has(c, 2, 40));
  put(c, 2, 70); /* replaces 2's old copy, and 3 must go to make room */
  cr_assert(has(c, 2, 70) && !has(c, 3, 40));
  size_t n, bytes;
  uint64_t hits, misses;
  ty_plan_cache_stats(c, &n, &bytes, &hits, &misses);
  cr_assert(n == 1 && bytes == 70, "%zu entries, %zu bytes", n, bytes);
  ty_plan_cache_destroy(c);
}
