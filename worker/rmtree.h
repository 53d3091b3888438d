/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Removing a tree its user controls without being led elsewhere
 * (worker/rmtree.c). Included by worker_internal.h; tests/unit/worker
 * includes it directly.
 */
#ifndef TY_WORKER_RMTREE_H
#define TY_WORKER_RMTREE_H

#include <stddef.h>

struct stat;

/* Removes parent_fd's entry `name` and, when it is a directory, all below
 * it, never following a link nor leaving its filesystem, to
 * TY__RMTREE_MAX_DEPTH levels. With `expect`, only the entry of that
 * st_dev and st_ino, a directory or not (a link is removed, never followed;
 * TY_EEXIST when it was replaced). 0 when it is gone (or
 * was never there), else an error naming what was left. */
#define TY__RMTREE_MAX_DEPTH 128
int ty__rmtree_at(int parent_fd, const char *name, const struct stat *expect, char *err,
                  size_t err_len);

#endif
