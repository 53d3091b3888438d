/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gpu suite's one assertion: these tests are plain programs (exit 77
 * skips them where no GPU exists, which Criterion's runner cannot say), so
 * a failed check prints "FAIL: ..." and exits 1.
 */
#ifndef TY_TESTS_GPU_CHECK_H
#define TY_TESTS_GPU_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "FAIL: " __VA_ARGS__);                                                       \
      fputc('\n', stderr);                                                                         \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

#endif
