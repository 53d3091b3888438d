/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers the scheduler integration tests share (sched_helpers.h):
 * test_scheduler.c (preemption, drain, hold, time limits, queues, why,
 * config reload) and test_sched_placement.c (exclusive nodes, -w/-x).
 */
#include "tests/integration/sched_helpers.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

void start(it_cluster *c, size_t workers, int cpus) {
  it_options o = {.config_extra = "# integration tests: preempt at once, short grace\n"
                                  "preempt.min_run = 0\npreempt.grace = 5\n"};
  it_cluster_start_with(c, workers, cpus, &o);
}

uint64_t submit(ty_rpc_client *cl, const char *script, const job_opts *o) {
  Trainyard__CommandSpec cmd = TRAINYARD__COMMAND_SPEC__INIT;
  char *argv[] = {"/bin/sh", "-c", (char *)script};
  cmd.n_argv = 3, cmd.argv = argv, cmd.cwd = "/tmp";
  Trainyard__Resources res = TRAINYARD__RESOURCES__INIT;
  res.cpus_per_task = o->cpus;
  Trainyard__Job job = TRAINYARD__JOB__INIT;
  job.name = "sched-it", job.user = "tester";
  job.queue = (char *)(o->queue ? o->queue : "");
  job.resources = &res;
  job.time_limit_s = o->time_limit_s;
  job.warn_signal = o->warn_signal, job.warn_before_s = o->warn_before_s;
  job.no_requeue = o->no_requeue;
  job.priority = o->priority;
  job.kind_case = TRAINYARD__JOB__KIND_COMMAND;
  job.command = &cmd;
  uint64_t id = 0;
  char err[256] = "";
  cr_assert_eq(it_submit_job(cl, &job, &id, err, sizeof err), 0, "submit: %s", err);
  return id;
}

bool file_has(const char *path, const char *text) {
  FILE *f = fopen(path, "r");
  if (!f) return false;
  char buf[256] = "";
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return strstr(buf, text) != NULL;
}

char *id_str(uint64_t id, char *buf) {
  snprintf(buf, 24, "%llu", (unsigned long long)id);
  return buf;
}
