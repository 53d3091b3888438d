/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Graph-job helpers shared by the integration tests that start trainrun
 * ranks (test_graph.c through the workers, test_plan.c by hand): configs,
 * rank processes with their rendezvous tokens, and weight comparisons.
 * Paths come from meson: TY_TRAINRUN, TY_MLP_ONNX, TY_MLP_CONFIG, ...
 */
#ifndef TY_TESTS_INTEGRATION_RANKS_H
#define TY_TESTS_INTEGRATION_RANKS_H

#include "tests/integration/harness.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The environment variable name, which must be set (meson sets them). */
const char *rk_env(const char *name);
/* A whole file, NUL-terminated (malloc'd). */
uint8_t *rk_read_all(const char *path, size_t *out_len);
void rk_write_file(const char *path, const uint8_t *b, size_t n);
/* The example MLP config, shortened: `steps` steps without warm-up, no
 * per-epoch eval, a log line every 5 steps, checkpoints every ckpt_every steps to ckpt (NULL:
 * the controller's). */
uint8_t *rk_make_config(uint64_t steps, uint64_t ckpt_every, const char *ckpt, size_t *out_len);
/* rk_make_config's (checkpointing to ckpt at the end when not NULL),
 * asking the planner for pipeline stages: the config's pipeline_stages and
 * micro_batches strings. */
uint8_t *rk_make_pipeline_config(uint64_t steps, const char *stages, const char *micro,
                                 const char *ckpt, size_t *out_len);
/* The config written to path. */
void rk_write_config(const char *path, uint64_t steps, uint64_t ckpt_every, const char *ckpt);
/* Ranks started by hand need what a worker gives them: a rendezvous token
 * for the job, signed with its key from the controller's secret (set in
 * this process's environment, inherited by the next rank started). */
void rk_set_token(const it_cluster *c, uint64_t job, uint32_t rank);
/* Starts trainrun as rank `rank` of `world` (its output in log) with
 * --model, --config, --threads 1 and the NULL-terminated extra args. */
pid_t rk_start(const char *model, const char *cfg, uint32_t rank, uint32_t world, uint64_t job,
               int ctl_port, const char *log, const char *const *extra);
int rk_wait_exit(pid_t pid);
/* A trainrun process whose command line names dir and holds in_cmdline,
 * and whose environment holds in_environ (NULL: either not looked at; the
 * environment's entries separated by '\n'), or 0. */
pid_t rk_find_trainrun(const char *dir, const char *in_cmdline, const char *in_environ);
/* The MLP trained `steps` steps by one process, no plan: its path in
 * out_path (dir/ref-STEPS.onnx). */
void rk_reference(const char *dir, uint64_t steps, char *out_path, size_t n);
/* A graph Job: the MLP by path, the encoded config (borrowed), nodes x
 * tpn ranks, a trainyard.Parallelism; the messages point into *j. */
typedef struct rk_job {
  Trainyard__Job job;
  Trainyard__Resources res;
  Trainyard__GraphSpec graph;
} rk_job;
void rk_graph_job(rk_job *j, uint32_t nodes, uint32_t tpn, const uint8_t *cfg, size_t cfg_len,
                  int parallelism);
/* The same job, named, as a binary trainyard.Job file for `trainctl submit`;
 * and any such job j as one. */
void rk_write_job(const char *path, const char *name, uint32_t nodes, uint32_t tpn,
                  const uint8_t *cfg, size_t cfg_len, int parallelism);
void rk_write_job_file(const char *path, const rk_job *j);
/* Largest absolute difference between the float initializers of two models. */
double rk_weight_diff(const char *a, const char *b);

/* Graph jobs through trainctl: traind's fixed planner rates (so plans do
 * not depend on this machine's speed), `trainctl submit FILE` (its job
 * id), waiting for job id to complete (asserting it did), and `trainctl
 * show ID` (its output, malloc'd). */
extern const char *const rk_plan_rates[];
/* Skips the calling test in the sanitizer pass's subset (TY_TEST_SUBSET,
 * tests/support/subset.h): a graph job whose trainer and daemon paths the
 * suite's other jobs and the in-process rank tests (ops_train_*) run under
 * the sanitizers too; the first pass runs it. */
void rk_full_pass_only(void);
uint64_t rk_submit_file(const it_cluster *c, const char *file);
void rk_expect_completed(const it_cluster *c, uint64_t id);
char *rk_show(const it_cluster *c, uint64_t id);

#endif
