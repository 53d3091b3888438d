/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for cli/opts_sbatch.c through `trainctl submit` parsing: a
 * Slurm batch script's sbatch options either do what sbatch's do (in
 * Trainyard's per-node terms), are ignored with a warning that says why
 * the job is still right, or are refused naming why; on the command line
 * as in #SBATCH lines. And the runner appends when several tasks share an
 * output file, so that none overwrites another's lines.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "tests/support/tree.h"

static char dir[TY_TEST_DIR_LEN];

static void setup(void) {
  cr_assert_eq(ty_test_make_dir(dir, "sbatch"), 0);
}

static void teardown(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

TestSuite(sbatch, .init = setup, .fini = teardown);

/* Writes text to DIR/name; its path (static buffer). */
static char *script(const char *name, const char *text) {
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(text, f);
  fclose(f);
  return path;
}

#define ARGS(...) ((char *[]){__VA_ARGS__, NULL})
#define NARGS(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
#define SUBMIT(...)                                                                                \
  ty_cli_parse_submit(NARGS(__VA_ARGS__), ARGS(__VA_ARGS__), "/home/a", "alice", &a, err,          \
                      sizeof err)

static bool warned(const ty_cli_submit_args *a, const char *want) {
  for (size_t i = 0; i < a->n_warnings; i++)
    if (strstr(a->warnings[i], want)) return true;
  return false;
}

Test(sbatch, options_that_change_nothing_are_ignored_with_a_warning) {
  char *p = script("ok.sh", "#!/bin/sh\n"
                            "#SBATCH --account=proj -A other --qos=normal\n"
                            "#SBATCH --mail-type=END,FAIL --mail-user=a@example.org\n"
                            "#SBATCH --exclusive --hint=nomultithread --requeue -O\n"
                            "true\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--comment", "x", p), 0, "%s", err);
  cr_assert_eq(a.n_warnings, 10u);
  cr_assert(warned(&a, "--account=proj ignored: Trainyard has no accounts"));
  cr_assert(warned(&a, "--account=other ignored"), "-A is --account");
  cr_assert(warned(&a, "--mail-type=END,FAIL ignored: Trainyard sends no mail"));
  cr_assert(warned(&a, "--exclusive ignored: the job shares its nodes"));
  cr_assert(warned(&a, "--requeue ignored: a job whose node is lost is always requeued"));
  cr_assert(warned(&a, "--overcommit ignored: a placement hint"));
  cr_assert(warned(&a, "--comment=x ignored"));
  ty_cli_submit_args_close(&a);
}

static void refused(const char *const *args, const char *want) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  int n = 0;
  while (args[n])
    n++;
  cr_assert_neq(ty_cli_parse_submit(n, (char **)args, "/home/a", "alice", &a, err, sizeof err), 0,
                "accepted: %s", args[0]);
  cr_assert(strstr(err, want), "[%s] lacks [%s]", err, want);
}

#define REFUSED(want, ...) refused((const char *const[]){__VA_ARGS__, NULL}, want)

Test(sbatch, options_that_cannot_be_honoured_are_refused_naming_why) {
  char *p = script("bad.sh", "#!/bin/sh\n#SBATCH --nodelist=n[1-4]\ntrue\n");
  REFUSED("bad.sh:2: #SBATCH --nodelist=n[1-4]: --nodelist=n[1-4] is not supported: the "
          "scheduler chooses the nodes",
          p);
  REFUSED("--nodelist=n1 is not supported", "-w", "n1", "--command", "true");
  REFUSED("--exclude=n2 is not supported", "-x", "n2", "--command", "true");
  REFUSED("--begin=now+1hour is not supported: no deferred start", "--begin=now+1hour", "--command",
          "true");
  REFUSED("--hold is not supported", "-H", "--command", "true");
  REFUSED("--no-requeue is not supported: a job whose node is lost is always requeued",
          "--no-requeue", "--command", "true");
  REFUSED("--constraint=a100 is not supported", "-C", "a100", "--command", "true");
  REFUSED("unknown option --frobnicate", "--frobnicate", "--command", "true");
}

Test(sbatch, values_are_translated_into_per_node_terms) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("-D", "work", "--nice=10", "--gres=gpu:2", "--command", "true"), 0, "%s",
               err);
  cr_assert_str_eq(a.job.cwd, "/home/a/work");
  cr_assert_eq(a.job.priority, -10);
  cr_assert_eq(a.job.gpus_per_node, 2u);
  ty_cli_submit_args_close(&a);

  cr_assert_eq(SUBMIT("--nice", "--gres=gpu:a100:1", "-N", "2-4", "--command", "true"), 0, "%s",
               err);
  cr_assert_eq(a.job.priority, -100, "sbatch's default adjustment");
  cr_assert_eq(a.job.gpus_per_node, 1u);
  cr_assert(warned(&a, "the GPU type is ignored"));
  cr_assert_eq(a.job.nodes, 2u);
  cr_assert(warned(&a, "--nodes 2-4: the job gets exactly 2 nodes"));
  ty_cli_submit_args_close(&a);

  cr_assert_eq(SUBMIT("--mem-per-cpu=1G", "-c", "2", "--ntasks-per-node", "3", "--command", "x"), 0,
               "%s", err);
  cr_assert_eq(a.job.mem_per_node, 6ull << 30);
  ty_cli_submit_args_close(&a);

  cr_assert_eq(
      SUBMIT("--gpus-per-task=1", "-N", "2", "-n", "4", "--mem-per-gpu=2G", "--command", "x"), 0,
      "%s", err);
  cr_assert_eq(a.job.gpus_per_node, 2u);
  cr_assert_eq(a.job.mem_per_node, 4ull << 30);
  ty_cli_submit_args_close(&a);

  cr_assert_eq(SUBMIT("--mem=0", "--signal=B:USR2@60", "--parsable", "--command", "x"), 0, "%s",
               err);
  cr_assert_eq(a.job.mem_per_node, 0u, "--mem=0: all of the node's memory, no limit");
  cr_assert_eq(a.job.warn_signal, (uint32_t)SIGUSR2);
  cr_assert_eq(a.job.warn_before_s, 60u);
  cr_assert(a.quiet, "--parsable prints only the id");
  ty_cli_submit_args_close(&a);
}

Test(sbatch, the_command_line_wins_over_a_scripts_per_cpu_amounts) {
  char *p = script("mem.sh", "#!/bin/sh\n#SBATCH --mem-per-cpu=1G -c 4 --gpus-per-task=2\ntrue\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--mem", "3G", "--gres=gpu:1", p), 0, "%s", err);
  cr_assert_eq(a.job.mem_per_node, 3ull << 30);
  cr_assert_eq(a.job.gpus_per_node, 1u);
  ty_cli_submit_args_close(&a);
}

Test(sbatch, bad_values_name_the_option) {
  REFUSED("--nice: 5000 is outside -1000..1000", "--nice=5000", "--command", "x");
  REFUSED("--gres: \"nvme:1\" is not gpu[:TYPE]:N", "--gres=nvme:1", "--command", "x");
  REFUSED("--nodes: 4-2 has its maximum below its minimum", "-N", "4-2", "--command", "x");
  REFUSED("--nodes: \"-2\" is not N or MIN-MAX", "--nodes=-2", "--command", "x");
  REFUSED("--mem-per-gpu: the job asks for no GPUs", "--mem-per-gpu=1G", "--command", "x");
  REFUSED("--mem-per-cpu: \"lots\" is not a size", "--mem-per-cpu=lots", "--command", "x");
  REFUSED("--open-mode: \"sometimes\" is not append or truncate", "--open-mode=sometimes", "--wrap",
          "true");
  REFUSED("--open-mode applies to batch scripts", "--open-mode=append", "--command", "x");
  REFUSED("--signal: \"X:USR1\" is not a signal name", "--signal=X:USR1@60", "--command", "x");
}

/* ---- the runner's open mode --------------------------------------------------------------- */

/* Runs the job's argv under /bin/sh in DIR as rank `rank` of `ntasks`, as
 * a worker would; its exit status. */
static int run_rank(const ty_job_spec *j, const char *rank, const char *ntasks) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    if (chdir(dir) != 0) _exit(99);
    setenv("TRAINYARD_JOB_ID", "42", 1), setenv("TMPDIR", dir, 1);
    setenv("RANK", rank, 1), setenv("SLURM_NTASKS", ntasks, 1);
    for (size_t i = 0; i < j->envc; i++)
      putenv(j->env[i]);
    char **argv = calloc(j->argc + 1, sizeof *argv); /* a spec's argv is counted, not ended */
    memcpy(argv, j->argv, j->argc * sizeof *argv);
    execv(argv[0], argv);
    _exit(98);
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void expect_file(const char *name, const char *want) {
  char path[160], buf[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "r");
  cr_assert(f, "no %s", path);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  cr_assert_str_eq(buf, want, "%s", name);
}

static void run_ranks(const char *open_mode, const char *ntasks, int ranks) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  const char *mode = open_mode ? open_mode : "--export=NONE";
  cr_assert_eq(SUBMIT((char *)mode, "-o", "out-%j.txt", "-e", "err-%t.txt", "--wrap",
                      "echo rank $RANK; echo e$RANK >&2"),
               0, "%s", err);
  for (int r = 0; r < ranks; r++) {
    char rank[8];
    snprintf(rank, sizeof rank, "%d", r);
    cr_assert_eq(run_rank(&a.job, rank, ntasks), 0);
  }
  ty_cli_submit_args_close(&a);
}

Test(sbatch, tasks_sharing_an_output_file_append_to_it) {
  script("out-42.txt", "from an earlier job\n");
  run_ranks(NULL, "1", 1);
  expect_file("out-42.txt", "rank 0\n"); /* one task: truncated, as sbatch's */
  run_ranks(NULL, "2", 2);
  expect_file("out-42.txt", "rank 0\nrank 0\nrank 1\n"); /* two: every task appends */
  expect_file("err-1.txt", "e1\n");                      /* %t: a file per task, truncated */
  run_ranks(NULL, "2", 2);
  expect_file("err-1.txt", "e1\n");
  run_ranks("--open-mode=truncate", "1", 1);
  expect_file("out-42.txt", "rank 0\n");
  run_ranks("--open-mode=append", "1", 1);
  expect_file("out-42.txt", "rank 0\nrank 0\n");
  expect_file("err-0.txt", "e0\ne0\n");
}
