/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by worker/graph_task.c (launch) and worker/progress.c
 * (progress watching): the per-session graph state.
 */
#ifndef TY_WORKER_GRAPH_WORKER_H
#define TY_WORKER_GRAPH_WORKER_H

#include "worker/graph_task.h"

/* One rank 0 whose progress is forwarded. */
typedef struct ty__watch {
  uint64_t job_id;
  char *log_path, *ckpt_path;
  ty_train_progress last; /* as last sent; checkpoint_path not kept */
  bool sent, ended;
} ty__watch;
void ty__watch_close(ty__watch *w);

struct ty__graph_worker {
  ty_tasks *tasks;
  char *trainrun, *controller;
  ty__watch *watches;
  size_t n;
};

#endif
