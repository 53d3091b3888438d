/* SPDX-License-Identifier: Apache-2.0 */
/* The batch-script tests' shared fixture: see script_fixture.h. */
#include "tests/unit/cli/script_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char ty_script_dir[TY_TEST_DIR_LEN];

void ty_script_setup(void) {
  cr_assert_eq(ty_test_make_dir(ty_script_dir, "script"), 0);
}

void ty_script_teardown(void) {
  cr_assert_eq(ty_test_remove_tree(ty_script_dir), 0, "%s stayed", ty_script_dir);
}

char *ty_script_write(const char *name, const char *text) {
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", ty_script_dir, name);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(text, f);
  fclose(f);
  return path;
}

char *ty_script_read(const char *name) {
  char path[160];
  snprintf(path, sizeof path, "%s/%s", ty_script_dir, name);
  FILE *f = fopen(path, "r");
  cr_assert(f, "no %s", path);
  static char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

int ty_script_run(const ty_job_spec *j, const char *const *env) {
  int st = ty_script_run_status(j, env);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int ty_script_run_status(const ty_job_spec *j, const char *const *env) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    if (chdir(ty_script_dir) != 0) _exit(99);
    setenv("TRAINYARD_JOB_ID", "42", 1), setenv("TMPDIR", ty_script_dir, 1);
    for (size_t i = 0; env && env[i]; i++)
      putenv((char *)env[i]);
    for (size_t i = 0; i < j->envc; i++)
      putenv(j->env[i]);
    char **argv = calloc(j->argc + 1, sizeof *argv); /* a spec's argv is counted, not ended */
    memcpy(argv, j->argv, j->argc * sizeof *argv);
    execv(argv[0], argv);
    _exit(98);
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return st;
}

bool ty_script_warned(const ty_cli_slurm *s, const char *want) {
  for (size_t i = 0; i < s->n_warnings; i++)
    if (strstr(s->warnings[i], want)) return true;
  return false;
}
