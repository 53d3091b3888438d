/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sanitizer pass's subset of the sweeps (deploy/test.sh sets
 * TY_TEST_SUBSET=1 in its ASan+UBSan pass): a test that repeats the same
 * code paths over many cases (seeds, models, steps) runs a representative
 * part of them there, with every assertion kept. Unset, or "0", every test
 * runs in full, as in deploy/test.sh's first pass. Header only, so unit
 * tests need no library for it.
 */
#ifndef TY_TESTS_SUPPORT_SUBSET_H
#define TY_TESTS_SUPPORT_SUBSET_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Whether this run asks for the subset. */
static inline bool ty_test_subset(void) {
  const char *v = getenv("TY_TEST_SUBSET");
  return v && v[0] && strcmp(v, "0") != 0;
}

/* `full` cases, or `subset` of them when the run asks for the subset. */
static inline int ty_test_cases(int full, int subset) {
  return ty_test_subset() ? subset : full;
}

#endif
