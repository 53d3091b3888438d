/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test's own folder in the temporary directory: making a fresh one for a
 * test (a suite's .init), and removing it, or whatever else tests leave
 * there, as a whole tree, children first, never following a link out of it;
 * and reading a file the test made back whole.
 * Plain C with no test framework, so the fixtures of unit and integration
 * tests and the helpers in tests/support share it.
 */
#ifndef TY_TESTS_SUPPORT_TREE_H
#define TY_TESTS_SUPPORT_TREE_H

#include <stddef.h>

/* Room for a folder ty_test_make_dir makes: "/tmp/ty-TAG-XXXXXX". */
#define TY_TEST_DIR_LEN 64

/* Makes a fresh, private folder /tmp/ty-TAG-XXXXXX (mkdtemp) and writes
 * its path to dir. 0, -ENAMETOOLONG when the tag does not fit, or mkdtemp's
 * -errno. */
int ty_test_make_dir(char dir[TY_TEST_DIR_LEN], const char *tag);

/* Removes path and everything below it; what another remover took first,
 * or what cannot be removed, is passed over. 0 when nothing is left at
 * path, -1 when something stayed (a teardown can assert that). */
int ty_test_remove_tree(const char *path);

/* The whole file at path, malloc'd with a NUL after its *out_len bytes
 * (the caller frees it); NULL when it cannot be opened or read. */
unsigned char *ty_test_read_file(const char *path, size_t *out_len);

#endif
