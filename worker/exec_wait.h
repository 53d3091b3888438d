/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainyard-exec --wait-status (worker/exec_wait.c): how a batch script's
 * runner learns the script's real wait status. Only trainyard-exec's
 * main (worker/exec.c) calls it.
 */
#ifndef TY_WORKER_EXEC_WAIT_H
#define TY_WORKER_EXEC_WAIT_H

/* `trainyard-exec --wait-status FILE -- CMD [ARGS...]`: the whole program
 * in that mode; returns its exit status. */
int ty_exec_wait_main(int argc, char **argv);

#endif
