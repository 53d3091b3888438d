/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Removing what tests leave in the temporary directory: a whole tree,
 * children first, never following a link out of it.
 */
#ifndef TY_TESTS_SUPPORT_TREE_H
#define TY_TESTS_SUPPORT_TREE_H

/* Removes path and everything below it; what another remover took first,
 * or what cannot be removed, is passed over (best effort, no error). */
void ty_test_remove_tree(const char *path);

#endif
