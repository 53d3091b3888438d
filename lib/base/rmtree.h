/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Removing a tree its user controls without being led elsewhere
 * (lib/base/rmtree.c).
 */
#ifndef TY_LIB_BASE_RMTREE_H
#define TY_LIB_BASE_RMTREE_H

#include <stddef.h>

struct stat;

/* Removes parent_fd's entry `name` and, when it is a directory, all below
 * it, never following a link nor leaving its filesystem, to
 * TY_RMTREE_MAX_DEPTH levels. With `expect`, only the entry of that
 * st_dev and st_ino, a directory or not (a link is removed, never followed;
 * TY_EEXIST when it was replaced). 0 when it is gone (or
 * was never there), else an error naming what was left. */
#define TY_RMTREE_MAX_DEPTH 128
int ty_rmtree_at(int parent_fd, const char *name, const struct stat *expect, char *err,
                 size_t err_len);

#endif
