/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for daemon/plan_cache.c: copies in and out, least recently
 * used first out, the byte bound, replacing a key, hit and miss counts,
 * and entries served only to the uid that put them. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"

static void put(ty_plan_cache *c, uint64_t key, size_t len) {
  uint8_t *b = malloc(len);
  memset(b, (int)key, len);
  ty_plan_cache_put(c, 1000, key, b, len);
  free(b); /* the cache keeps its own copy */
}

static bool has(ty_plan_cache *c, uint64_t key, size_t len) {
  uint8_t *b = NULL;
  size_t n = 0;
  int rc = ty_plan_cache_get(c, 1000, key, &b, &n);
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

/* A key comes from a model check its user can tamper with: a plan one uid
 * put is never served to another under the same key, and another uid's
 * put does not replace it. */
Test(plan_cache, a_plan_is_served_only_to_the_uid_that_put_it) {
  ty_plan_cache *c = ty_plan_cache_create(8, 1 << 20);
  const uint8_t forged[] = {0xee, 0xee}, real[] = {0xaa, 0xaa, 0xaa};
  ty_plan_cache_put(c, 1002, 77, forged, sizeof forged); /* eve plants under alice's key */
  uint8_t *b = NULL;
  size_t n = 0;
  cr_assert_eq(ty_plan_cache_get(c, 1001, 77, &b, &n), TY_ENOTFOUND, "alice got eve's plan");
  ty_plan_cache_put(c, 1001, 77, real, sizeof real);
  cr_assert_eq(ty_plan_cache_get(c, 1001, 77, &b, &n), 0);
  cr_expect(n == sizeof real && memcmp(b, real, n) == 0);
  free(b);
  cr_assert_eq(ty_plan_cache_get(c, 1002, 77, &b, &n), 0);
  cr_expect(n == sizeof forged && memcmp(b, forged, n) == 0, "eve's own entry was replaced");
  free(b);
  ty_plan_cache_destroy(c);
}
