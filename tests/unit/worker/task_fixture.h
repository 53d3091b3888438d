/* SPDX-License-Identifier: Apache-2.0 */
/* A task registry on a real loop in a fresh directory, shared by the tests
 * of worker/task.c and worker/logs.c; real processes, no mocks. */
#ifndef TY_TESTS_UNIT_WORKER_TASK_FIXTURE_H
#define TY_TESTS_UNIT_WORKER_TASK_FIXTURE_H

#include <stdint.h>

#include "worker/worker.h"

typedef struct fixture {
  uv_loop_t loop;
  ty_tasks *tasks;
  char dir[64];
  int ended, warned;   /* tasks ended; the last --signal warning reported */
  ty_task_report last; /* the last end (its reason is not kept) */
} fixture;

void fx_setup(fixture *f);
/* Kills what still runs, frees the registry and removes the directory. */
void fx_teardown(fixture *f);
void run_until_ended(fixture *f, int n);
/* ty_tasks_launch, asserting success (the worker's error in the failure). */
void fx_launch(fixture *f, const ty_task_spec *s);
/* `sh -c script` as rank 0 of job (argv is static: one spec at a time). */
ty_task_spec shell(uint64_t job, const char *script);
/* The first 64 KiB of a log (malloc'd, NUL-terminated). */
char *read_log(fixture *f, uint64_t job, uint32_t rank);
/* Waits (without a deadline: Criterion's timeout bounds it) until the task
 * printed `word`, i.e. reached the point of its script the test cares about. */
void wait_for_output(fixture *f, uint64_t job, const char *word);

#endif
