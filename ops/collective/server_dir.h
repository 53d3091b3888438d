/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where rank 0 puts ompi-server's directory (ops/collective/collective.c).
 * Included by coll_internal.h; tests/unit/ops/collective includes it
 * directly.
 */
#ifndef TY_OPS_COLLECTIVE_SERVER_DIR_H
#define TY_OPS_COLLECTIVE_SERVER_DIR_H

#define TY__COLL_DIR_MAX 1024
/* Makes ompi-server's directory, $TMPDIR/trainyard-mpi-XXXXXX (/tmp when
 * TMPDIR is unset, relative or too long), into dir (TY__COLL_DIR_MAX):
 * under a task's private TMPDIR, it goes with the task however the task
 * ends. 0, or TY_EIO with errno set. */
int ty__coll_server_mkdtemp(char *dir);

#endif
