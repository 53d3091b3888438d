/* SPDX-License-Identifier: Apache-2.0 */
/* Task environment building (worker/env.c): order, overrides, the
 * torchrun-style variables, and rejection of malformed CommandSpec.env. */
#include <criterion/criterion.h>
#include <string.h>

#include "worker/worker.h"

static const char *get(char **env, const char *name) {
  const char *found = NULL;
  size_t len = strlen(name);
  for (size_t i = 0; env[i]; i++) {
    if (strncmp(env[i], name, len) == 0 && env[i][len] == '=') {
      cr_assert_null(found, "%s appears twice", name);
      found = env[i] + len + 1;
    }
  }
  return found;
}

static ty_task_spec base_spec(void) {
  static const char *const argv[] = {"true"};
  ty_task_spec s = {.job_id = 42, .rank = 3, .local_rank = 1, .world_size = 8,
                    .local_world_size = 2, .master_addr = "10.0.0.1", .master_port = 29542,
                    .argv = argv, .argc = 1};
  return s;
}

Test(env, sets_rank_variables_and_keeps_base) {
  char *base[] = {"PATH=/usr/bin:/bin", "HOME=/home/u", NULL};
  static const uint32_t gpus[] = {0, 2};
  ty_task_spec s = base_spec();
  s.gpu_indices = gpus;
  s.n_gpus = 2;
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", base, NULL, err, sizeof err, &env), 0);
  cr_expect_str_eq(get(env, "PATH"), "/usr/bin:/bin");
  cr_expect_str_eq(get(env, "HOME"), "/home/u");
  cr_expect_str_eq(get(env, "RANK"), "3");
  cr_expect_str_eq(get(env, "LOCAL_RANK"), "1");
  cr_expect_str_eq(get(env, "WORLD_SIZE"), "8");
  cr_expect_str_eq(get(env, "LOCAL_WORLD_SIZE"), "2");
  cr_expect_str_eq(get(env, "MASTER_ADDR"), "10.0.0.1");
  cr_expect_str_eq(get(env, "MASTER_PORT"), "29542");
  cr_expect_str_eq(get(env, "TRAINYARD_JOB_ID"), "42");
  cr_expect_str_eq(get(env, "TRAINYARD_NODE"), "w1");
  cr_expect_str_eq(get(env, "CUDA_VISIBLE_DEVICES"), "0,2");
  ty_task_env_free(env);
}

Test(env, job_env_overrides_base_and_rank_overrides_job) {
  char *base[] = {"FOO=base", "RANK=99", "CUDA_VISIBLE_DEVICES=0,1,2,3", NULL};
  static const char *const job_env[] = {"FOO=job", "RANK=7", "BAR=a=b"};
  ty_task_spec s = base_spec();
  s.env = job_env;
  s.n_env = 3;
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", base, NULL, err, sizeof err, &env), 0);
  cr_expect_str_eq(get(env, "FOO"), "job");
  cr_expect_str_eq(get(env, "BAR"), "a=b");
  cr_expect_str_eq(get(env, "RANK"), "3");
  /* No GPUs allocated: the variable is set and empty, hiding the node's GPUs. */
  cr_expect_str_eq(get(env, "CUDA_VISIBLE_DEVICES"), "");
  ty_task_env_free(env);
}

Test(env, rejects_entry_without_equals) {
  static const char *const job_env[] = {"GOOD=1", "NOEQUALS"};
  ty_task_spec s = base_spec();
  s.env = job_env;
  s.n_env = 2;
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), TY_EINVAL);
  cr_expect(strstr(err, "command.env[1]") != NULL, "message: %s", err);
  cr_expect_null(env);
}

Test(env, rejects_entry_with_empty_name) {
  static const char *const job_env[] = {"=value"};
  ty_task_spec s = base_spec();
  s.env = job_env;
  s.n_env = 1;
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), TY_EINVAL);
  cr_expect(strstr(err, "command.env[0]") != NULL, "message: %s", err);
}

Test(env, free_accepts_null) { ty_task_env_free(NULL); }
