/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for cli/opts_slurm.c through `trainctl submit` and rlaunch
 * parsing: Slurm's options either do what sbatch's and srun's do (in
 * Trainyard's per-node terms), are ignored with a warning that says why
 * the job is still right, or are refused naming why; on the command line
 * as in #SBATCH lines. What the batch runner does with a job's script is
 * test_batch_runner.c's.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/rlaunch.h"
#include "cli/script.h"
#include "tests/unit/cli/script_fixture.h"

TestSuite(sbatch, .init = ty_script_setup, .fini = ty_script_teardown);

Test(sbatch, options_that_change_nothing_are_ignored_with_a_warning) {
  char *p = ty_script_write("ok.sh", "#!/bin/sh\n"
                                     "#SBATCH --account=proj -A other --qos=normal\n"
                                     "#SBATCH --mail-type=END,FAIL --mail-user=a@example.org\n"
                                     "#SBATCH --exclusive --hint=nomultithread --requeue -O\n"
                                     "true\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--comment", "x", p), 0, "%s", err);
  cr_assert_eq(a.slurm.n_warnings, 8u);
  cr_assert(ty_script_warned(&a.slurm, "--account=proj ignored: Trainyard has no accounts"));
  cr_assert(ty_script_warned(&a.slurm, "--account=other ignored"), "-A is --account");
  cr_assert(ty_script_warned(&a.slurm, "--mail-type=END,FAIL ignored: Trainyard sends no mail"));
  cr_assert(!ty_script_warned(&a.slurm, "--exclusive"), "--exclusive is honoured, not ignored");
  cr_assert(a.job.exclusive);
  cr_assert(!ty_script_warned(&a.slurm, "--requeue"),
            "--requeue sets the requeue policy, it is not ignored");
  cr_assert(!a.job.no_requeue);
  cr_assert(ty_script_warned(&a.slurm, "--overcommit ignored: a placement hint"));
  cr_assert(ty_script_warned(&a.slurm, "--comment=x ignored"));
  ty_cli_submit_args_close(&a);
}

/* sbatch's -q is --qos: in a script it is ignored as --qos is (trainctl's
 * own -q, --quiet, is about the command line, not the job). */
Test(sbatch, a_directive_q_is_sbatchs_qos) {
  char *p = ty_script_write("q.sh", "#!/bin/sh\n"
                                    "#SBATCH -q normal\n"
                                    "#SBATCH -qhigh -J q\n"
                                    "true\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert(ty_script_warned(&a.slurm, "--qos=normal ignored"));
  cr_assert(ty_script_warned(&a.slurm, "--qos=high ignored"));
  cr_assert(!a.quiet, "-q in a script is not --quiet");
  cr_assert_str_eq(a.job.name, "q");
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
  char *p = ty_script_write("bad.sh", "#!/bin/sh\n#SBATCH --constraint=a100\ntrue\n");
  REFUSED("bad.sh:2: #SBATCH --constraint=a100: --constraint=a100 is not supported: nodes have no "
          "features",
          p);
  REFUSED("--deadline=now+1hour is not supported: no deadlines", "--deadline=now+1hour",
          "--command", "true");
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
  cr_assert(ty_script_warned(&a.slurm, "the GPU type is ignored"));
  cr_assert_eq(a.job.nodes, 2u);
  cr_assert(ty_script_warned(&a.slurm, "--nodes 2-4: the job gets exactly 2 nodes"));
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
  cr_assert_eq(a.job.mem_per_node, TY_MEM_ALL, "--mem=0: all of the node's memory");
  cr_assert_eq(a.job.warn_signal, (uint32_t)SIGUSR2);
  cr_assert_eq(a.job.warn_before_s, 60u);
  cr_assert(a.quiet, "--parsable prints only the id");
  ty_cli_submit_args_close(&a);

  cr_assert_eq(SUBMIT("-H", "-W", "--command", "x"), 0, "%s", err);
  cr_assert(a.job.hold && a.wait);
  ty_cli_submit_args_close(&a);
}

/* sbatch's usual header: --ntasks N with --ntasks-per-node Q and no
 * --nodes is N/Q nodes, as Slurm derives them; a -N that disagrees is
 * still refused, and so is an N that would leave a node short. */
Test(sbatch, ntasks_per_node_without_nodes_gives_the_node_count) {
  char *p = ty_script_write("n.sh", "#!/bin/sh\n#SBATCH --ntasks=4\n#SBATCH --ntasks-per-node=2\n"
                                    "true\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_eq(a.job.nodes, 2u);
  cr_assert_eq(a.job.tasks_per_node, 2u);
  ty_cli_submit_args_close(&a);
  cr_assert_neq(SUBMIT("-n", "3", "--ntasks-per-node", "2", "--command", "x"), 0);
  cr_assert(strstr(err, "--ntasks 3 is not a multiple of --ntasks-per-node 2"), "%s", err);
  cr_assert_neq(SUBMIT("-N", "1", "-n", "4", "--ntasks-per-node", "2", "--command", "x"), 0);
  cr_assert(strstr(err, "--ntasks 4 disagrees with --nodes 1 x --ntasks-per-node 2"), "%s", err);
}

/* sbatch's --mincpus N asks that each node have N CPUs allocated: here
 * the CPUs per task that make N, said in a warning; a layout that has
 * them is left alone. It was once ignored as a placement hint, starting
 * the job with fewer CPUs than asked for. */
Test(sbatch, mincpus_gives_each_node_that_many_cpus) {
  char *p = ty_script_write("m.sh", "#!/bin/sh\n#SBATCH --mincpus=4\ntrue\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_eq(a.job.cpus_per_task, 4u);
  cr_assert(ty_script_warned(&a.slurm, "--mincpus 4: 4 CPUs per task"));
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--ntasks-per-node", "2", "--mincpus", "3", "--command", "x"), 0, "%s", err);
  cr_assert_eq(a.job.cpus_per_task, 2u, "2 tasks of 2 CPUs: at least 3");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("-c", "4", "--mincpus", "2", "--mem-per-cpu", "100", "--command", "x"), 0,
               "%s", err);
  cr_assert_eq(a.job.cpus_per_task, 4u, "already has them");
  cr_assert_eq(a.slurm.n_warnings, 0u);
  cr_assert_eq(a.job.mem_per_node, 400ull << 20);
  ty_cli_submit_args_close(&a);
  cr_assert_neq(SUBMIT("--mincpus", "0", "--command", "x"), 0);
  cr_assert(strstr(err, "--mincpus: 0 is not allowed"), "%s", err);
}

/* --begin: sbatch's forms, relative to now, in local time, or named. */
/* sbatch --test-only asks for an estimate (cmd_submit.c), in a script too;
 * rlaunch runs its job, so srun's is refused naming the way to get one. */
Test(sbatch, test_only_asks_for_an_estimate) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--test-only", "--wrap", "true"), 0, "%s", err);
  cr_assert(a.slurm.test_only);
  cr_assert_eq(a.slurm.n_warnings, 0u);
  ty_cli_submit_args_close(&a);
  char *p = ty_script_write("t.sh", "#!/bin/sh\n#SBATCH --test-only\ntrue\n");
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert(a.slurm.test_only, "a script's #SBATCH --test-only");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--wrap", "true"), 0, "%s", err);
  cr_assert(!a.slurm.test_only);
  ty_cli_submit_args_close(&a);
}

Test(sbatch, begin_takes_sbatchs_times) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  int64_t before = (int64_t)time(NULL) * 1000;
  cr_assert_eq(SUBMIT("--begin=now+90", "--command", "x"), 0, "%s", err);
  int64_t after = (int64_t)time(NULL) * 1000;
  cr_assert(a.job.begin_ms >= before + 90000 && a.job.begin_ms <= after + 90000);
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("-b", "now+2hours", "--command", "x"), 0, "%s", err);
  cr_assert(a.job.begin_ms >= before + 7200000 && a.job.begin_ms <= after + 7200000 + 1000);
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--begin=now", "--command", "x"), 0, "%s", err);
  cr_assert_eq(a.job.begin_ms, 0);
  ty_cli_submit_args_close(&a);
  struct tm tm = {.tm_year = 130,
                  .tm_mon = 0,
                  .tm_mday = 2,
                  .tm_hour = 3,
                  .tm_min = 4,
                  .tm_sec = 5,
                  .tm_isdst = -1};
  int64_t want = (int64_t)mktime(&tm) * 1000;
  cr_assert_eq(SUBMIT("--begin=2030-01-02T03:04:05", "--command", "x"), 0, "%s", err);
  cr_assert_eq(a.job.begin_ms, want);
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--begin=23:59", "--command", "x"), 0, "%s", err);
  cr_assert(a.job.begin_ms > before && a.job.begin_ms <= after + 86400000, "the next 23:59");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--begin=teatime", "--command", "x"), 0, "%s", err);
  cr_assert(a.job.begin_ms > before && a.job.begin_ms <= after + 86400000, "the next 16:00");
  time_t t = (time_t)(a.job.begin_ms / 1000);
  localtime_r(&t, &tm);
  cr_expect(tm.tm_hour == 16 && tm.tm_min == 0 && tm.tm_sec == 0, "teatime is 16:00");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--begin=tomorrow", "--command", "x"), 0, "%s", err);
  t = (time_t)(a.job.begin_ms / 1000);
  localtime_r(&t, &tm);
  cr_expect(tm.tm_hour == 0 && tm.tm_min == 0 && a.job.begin_ms > before, "the next midnight");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--begin=today", "--command", "x"), 0, "%s", err);
  cr_assert_eq(a.job.begin_ms, 0, "the start of today: eligible at once");
  ty_cli_submit_args_close(&a);
}

/* --begin names a day and time that exist: 31 February is refused, not
 * rolled over into March, and so is 25:00. */
Test(sbatch, begin_refuses_days_and_times_that_do_not_exist) {
  REFUSED("--begin: \"2027-02-31T00:00\" is not a time: February 2027 has 28 days", "-H",
          "--begin=2027-02-31T00:00", "--command", "x");
  REFUSED("February 2028 has 29 days", "--begin=2028-02-30", "--command", "x");
  REFUSED("April 2030 has 30 days", "--begin=2030-04-31", "--command", "x");
  REFUSED("there is no month 13", "--begin=2030-13-01", "--command", "x");
  REFUSED("hour 25 is not 0-23", "--begin=25:00", "--command", "x");
  REFUSED("minute 99 is not 0-59", "--begin=2030-01-02T05:99", "--command", "x");
  REFUSED("minute 60 is not 0-59", "--begin=12:60", "--command", "x");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--begin=2028-02-29", "--command", "x"), 0, "a leap day: %s", err);
  ty_cli_submit_args_close(&a);
}

/* A script's -G/--gpus counts the job's GPUs, as sbatch's; trainctl's own
 * --gpus (the command line) and --gpus-per-node count a node's. */
Test(sbatch, a_scripts_gpus_are_the_whole_jobs) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  char *p = ty_script_write("g.sh", "#!/bin/sh\n#SBATCH -N 2 --gpus=8\ntrue\n");
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_eq(a.job.gpus_per_node, 4u);
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--gpus", "3", p), 0, "%s", err);
  cr_assert_eq(a.job.gpus_per_node, 3u, "the command line's, per node");
  ty_cli_submit_args_close(&a);
  p = ty_script_write("n.sh", "#!/bin/sh\n#SBATCH -N 2 --gpus-per-node=8\ntrue\n");
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_eq(a.job.gpus_per_node, 8u);
  ty_cli_submit_args_close(&a);
  p = ty_script_write("odd.sh", "#!/bin/sh\n#SBATCH -N 3 -G 8\ntrue\n");
  cr_assert_neq(SUBMIT(p), 0);
  cr_assert(strstr(err, "--gpus: 8 GPUs in all (a script's --gpus counts the job's, as sbatch's) "
                        "do not divide over 3 nodes"),
            "%s", err);
}

/* sbatch's input variables: over a script's directives, under the command
 * line; --wrap reads them too; a bad one is named. */
Test(sbatch, sbatch_variables_sit_between_directives_and_the_command_line) {
  setenv("SBATCH_PARTITION", "gpu", 1), setenv("SBATCH_TIMELIMIT", "10", 1);
  setenv("SBATCH_ACCOUNT", "proj", 1), setenv("SBATCH_REQUEUE", "1", 1);
  char *p = ty_script_write("e.sh", "#!/bin/sh\n#SBATCH -p cpu -t 5 -J mine\ntrue\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("-t", "20", p), 0, "%s", err);
  cr_assert_str_eq(a.job.queue, "gpu");
  cr_assert_eq(a.job.time_limit_s, 1200u, "the command line's");
  cr_assert_str_eq(a.job.name, "mine");
  cr_assert(ty_script_warned(&a.slurm, "--account=proj ignored"));
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--wrap", "true"), 0, "%s", err);
  cr_assert_str_eq(a.job.queue, "gpu");
  cr_assert_eq(a.job.time_limit_s, 600u);
  ty_cli_submit_args_close(&a);
  setenv("SBATCH_TIMELIMIT", "soon", 1);
  cr_assert_neq(SUBMIT(p), 0);
  cr_assert(strstr(err, "SBATCH_TIMELIMIT=soon (your environment): --time:"), "%s", err);
}

/* Every sbatch input variable that has an option here is read as that
 * option: SBATCH_OUTPUT and SBATCH_ERROR place the output, one for an
 * option ignored is warned about, and one for an option refused refuses
 * the job naming the variable (SBATCH_CONSTRAINT was once dropped
 * without a word, running the job on any node). */
Test(sbatch, sbatch_variables_of_ignored_or_refused_options_are_not_dropped) {
  setenv("SBATCH_OUTPUT", "o-%j.txt", 1), setenv("SBATCH_ERROR", "e-%j.txt", 1);
  setenv("SBATCH_HINT", "nomultithread", 1), setenv("SBATCH_NO_KILL", "1", 1);
  char *p = ty_script_write("o.sh", "#!/bin/sh\n#SBATCH -o mine.txt\ntrue\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_str_eq(a.output, "o-%j.txt", "the variable over the directive, as sbatch's");
  cr_assert_str_eq(a.error, "e-%j.txt");
  cr_assert(ty_script_warned(&a.slurm, "--hint=nomultithread ignored"));
  cr_assert(ty_script_warned(&a.slurm, "--no-kill ignored"));
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("-o", "cli.txt", p), 0, "%s", err);
  cr_assert_str_eq(a.output, "cli.txt", "the command line's");
  ty_cli_submit_args_close(&a);
  setenv("SBATCH_CONSTRAINT", "a100", 1);
  cr_assert_neq(SUBMIT(p), 0);
  cr_assert(strstr(err, "SBATCH_CONSTRAINT=a100 (your environment): --constraint"), "%s", err);
  unsetenv("SBATCH_CONSTRAINT"), setenv("SBATCH_RESERVATION", "maint", 1);
  cr_assert_neq(SUBMIT(p), 0);
  cr_assert(strstr(err, "SBATCH_RESERVATION=maint (your environment)"), "%s", err);
}

Test(sbatch, the_command_line_wins_over_a_scripts_per_cpu_amounts) {
  char *p = ty_script_write("mem.sh",
                            "#!/bin/sh\n#SBATCH --mem-per-cpu=1G -c 4 --gpus-per-task=2\ntrue\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--mem", "3G", "--gres=gpu:1", p), 0, "%s", err);
  cr_assert_eq(a.job.mem_per_node, 3ull << 30);
  cr_assert_eq(a.job.gpus_per_node, 1u);
  ty_cli_submit_args_close(&a);
}

/* Slurm's default memory unit is the megabyte: #SBATCH --mem=4000 is
 * 4000M, never 4000 bytes; on the command line, in directives, in
 * SBATCH_MEM_PER_NODE and in the per-CPU and per-GPU amounts alike. */
Test(sbatch, a_bare_memory_amount_is_megabytes) {
  char *p = ty_script_write("mb.sh", "#!/bin/sh\n#SBATCH --mem=2048\ntrue\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_eq(a.job.mem_per_node, 2048ull << 20, "#SBATCH --mem=2048 is 2048M");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--mem", "4000", "--command", "x"), 0, "%s", err);
  cr_assert_eq(a.job.mem_per_node, 4000ull << 20);
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--mem-per-cpu=100", "-c", "2", "--command", "x"), 0, "%s", err);
  cr_assert_eq(a.job.mem_per_node, 200ull << 20);
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--mem", "512K", "--command", "x"), 0, "%s", err);
  cr_assert_eq(a.job.mem_per_node, 1ull << 20,
               "a unit is still taken; whole megabytes, as Slurm's");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--mem", "1537K", "--command", "x"), 0, "%s", err);
  cr_assert_eq(a.job.mem_per_node, 2ull << 20);
  ty_cli_submit_args_close(&a);
  /* --mem, --mem-per-cpu and --mem-per-gpu exclude each other on one
   * command line, as sbatch's (the script's and the command line's are
   * two sources: the command line's wins, the_command_line_wins_...). */
  REFUSED("--mem and --mem-per-cpu exclude each other, as sbatch's and srun's", "--mem", "1G",
          "--mem-per-cpu", "100", "--command", "x");
  REFUSED("--mem-per-gpu and --mem exclude each other", "--mem-per-gpu=1G", "--mem", "1G",
          "--command", "x");
  setenv("SBATCH_MEM_PER_NODE", "300", 1);
  cr_assert_eq(SUBMIT("--wrap", "true"), 0, "%s", err);
  cr_assert_eq(a.job.mem_per_node, 300ull << 20);
  ty_cli_submit_args_close(&a);
  REFUSED("--mem-per-cpu: must be above 0", "--mem-per-cpu=0", "--command", "x");
  REFUSED("--mem: \"4000MQ\" is not a size (a bare number is megabytes", "--mem", "4000MQ",
          "--command", "x");
  REFUSED("--mem: \"99999999999999999\" is not a size", "--mem", "99999999999999999", "--command",
          "x");
}

/* Slurm's no time limit: UNLIMITED, INFINITE (any case) or 0 ask traind
 * for none (the queue's max_time where it has one). */
Test(sbatch, time_unlimited_asks_for_no_limit) {
  char *forms[] = {"UNLIMITED", "unlimited", "INFINITE", "Infinite", "0"};
  for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
    ty_cli_submit_args a;
    char err[TY_ERR_LEN] = "";
    cr_assert_eq(SUBMIT("--time", forms[i], "--command", "x"), 0, "%s: %s", forms[i], err);
    cr_assert_eq(a.job.time_limit_s, TY_TIME_LIMIT_UNLIMITED, "%s", forms[i]);
    ty_cli_submit_args_close(&a);
  }
  char *p = ty_script_write("t.sh", "#!/bin/sh\n#SBATCH --time=UNLIMITED --signal=USR1@60\ntrue\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_eq(a.job.time_limit_s, TY_TIME_LIMIT_UNLIMITED);
  ty_cli_submit_args_close(&a);
  REFUSED("--time: \"0-0\" is not a time limit above 0", "--time", "0-0", "--command", "x");
  REFUSED("--time: \"UNLIMITED5\" is not a time limit", "--time", "UNLIMITED5", "--command", "x");
}

/* sbatch does not look; a job whose -o/-e directory is missing fails at
 * its start, its output lost: a warning naming the directory (relative:
 * the job's working directory's), none when it exists or is a pattern. */
Test(sbatch, a_missing_output_directory_is_warned_about) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("-o", "/nonexistent-ty/out-%j.txt", "-e", "logs/e.txt", "--wrap", "true"), 0,
               "%s", err);
  cr_assert(ty_script_warned(&a.slurm,
                             "--output /nonexistent-ty/out-%j.txt: the directory /nonexistent-ty "
                             "does not exist here"));
  cr_assert(
      ty_script_warned(&a.slurm, "--error logs/e.txt: the directory /home/a/logs does not exist"),
      "relative to the job's working directory");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("-o", "/tmp/out-%j.txt", "-e", "logs-%j/e.txt", "--wrap", "true"), 0, "%s",
               err);
  cr_assert_eq(a.slurm.n_warnings, 0u, "it exists, or the node makes the name");
  ty_cli_submit_args_close(&a);
}

/* sbatch <<EOF: with no SCRIPT, --wrap or --command, trainctl submit reads
 * the script from its standard input (a pipe or a file), named "sbatch";
 * only once the command allowed it, so a parse never waits on stdin. */
static void stdin_from(const char *name, const char *text) {
  int fd = open(ty_script_write(name, text), O_RDONLY);
  cr_assert(fd >= 0 && dup2(fd, STDIN_FILENO) == STDIN_FILENO);
  close(fd);
}

Test(sbatch, a_script_on_standard_input) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  stdin_from("in.sh", "#!/bin/sh\n#SBATCH -t 5 -o in-%j.out\necho hi\n");
  cr_assert_neq(SUBMIT("-q"), 0, "read stdin without being allowed to");
  cr_assert(strstr(err, "submit: missing SCRIPT, FILE"), "%s", err);
  ty_cli_submit_stdin_script(true);
  cr_assert_eq(SUBMIT("-q", "-J", "mine"), 0, "%s", err);
  cr_assert_eq(a.job.time_limit_s, 300u, "its #SBATCH lines apply");
  cr_assert_str_eq(a.job.name, "mine");
  const char *text, *out, *e;
  char *const *args;
  size_t nargs;
  cr_assert(ty_cli_script_view(&a.job, &text, &out, &e, &args, &nargs));
  cr_assert_str_eq(text, "#!/bin/sh\n#SBATCH -t 5 -o in-%j.out\necho hi\n");
  cr_assert_str_eq(out, "in-%j.out");
  ty_cli_submit_args_close(&a);
  stdin_from("in2.sh", "#!/bin/sh\ntrue\n");
  cr_assert_eq(SUBMIT("-q"), 0, "%s", err);
  cr_assert_str_eq(a.job.name, "sbatch", "sbatch's name for a script from stdin");
  ty_cli_submit_args_close(&a);
  stdin_from("in3.sh", "echo no interpreter\n");
  cr_assert_neq(SUBMIT("-q"), 0);
  cr_assert(strstr(err, "the script on standard input does not start with #!"), "%s", err);
  stdin_from("in4.sh", "\n \n");
  cr_assert_neq(SUBMIT("-t", "5"), 0);
  cr_assert(strstr(err, "the script on standard input is empty"), "%s", err);
  ty_cli_submit_stdin_script(false);
  /* Nothing to run at all: that is said first, not that -t needs a script. */
  cr_assert_neq(SUBMIT("-t", "5"), 0);
  cr_assert(strstr(err, "submit: missing SCRIPT, FILE"), "%s", err);
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
  /* sbatch's partition list: refused naming it, once "unknown queue \"gpu,cpu\"" */
  REFUSED("-p/--partition: \"gpu,cpu\" is a list of queues", "-p", "gpu,cpu", "--command", "x");
  const char *bad_begins[] = {"--begin=yesterday",    "--begin=now+5years", "--begin=now+-5",
                              "--begin=2030-01-02T3", "--begin=12:00:00x",  "--begin="};
  for (size_t i = 0; i < sizeof bad_begins / sizeof *bad_begins; i++)
    REFUSED("is not now, now+N[s|m|h|d|w], HH:MM[:SS]", bad_begins[i], "--command", "x");
}

/* --exclusive: whole nodes, from the command line, a directive or
 * SBATCH_EXCLUSIVE; =user and =mcs mean the same here (stricter) with no
 * warning; any other value is refused naming it. */
Test(sbatch, exclusive_asks_for_whole_nodes) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--command", "x"), 0, "%s", err);
  cr_assert(!a.job.exclusive, "not exclusive unless asked");
  ty_cli_submit_args_close(&a);
  const char *forms[] = {"--exclusive", "--exclusive=user", "--exclusive=mcs"};
  for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
    cr_assert_eq(SUBMIT((char *)forms[i], "--command", "x"), 0, "%s: %s", forms[i], err);
    cr_assert(a.job.exclusive, "%s", forms[i]);
    cr_assert_eq(a.slurm.n_warnings, 0u, "%s warned", forms[i]);
    ty_cli_submit_args_close(&a);
  }
  char *p = ty_script_write("x.sh", "#!/bin/sh\n#SBATCH --exclusive=user -N 2\ntrue\n");
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert(a.job.exclusive);
  cr_assert_eq(a.job.nodes, 2u);
  ty_cli_submit_args_close(&a);
  setenv("SBATCH_EXCLUSIVE", "1", 1);
  char *q = ty_script_write("y.sh", "#!/bin/sh\ntrue\n");
  cr_assert_eq(SUBMIT(q), 0, "%s", err);
  cr_assert(a.job.exclusive, "SBATCH_EXCLUSIVE");
  ty_cli_submit_args_close(&a);
  unsetenv("SBATCH_EXCLUSIVE");
  REFUSED("--exclusive: \"topo\" is not user or mcs", "--exclusive=topo", "--command", "x");
  REFUSED("--exclusive: \"\" is not user or mcs", "--exclusive=", "--command", "x");
  char *bad = ty_script_write("bad.sh", "#!/bin/sh\n#SBATCH --exclusive=yes\ntrue\n");
  cr_assert_neq(SUBMIT(bad), 0);
  cr_assert(strstr(err, "--exclusive: \"yes\" is not user or mcs"), "%s", err);
}

/* -w/--nodelist, --nodefile and -x/--exclude: hostlists expanded into
 * names (a -w value with a '/' is a file of them), from the command line
 * or a directive, the command line's list replacing the directive's; bad
 * syntax refused naming the option and the text. */
Test(sbatch, nodelist_and_exclude_name_nodes) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("-w", "n[1-2],gpu07", "-x", "r[1-2]n[01-02]", "--command", "x"), 0, "%s",
               err);
  cr_assert_eq(a.job.n_req_nodes, 3u);
  cr_expect_str_eq(a.job.req_nodes[0], "n1");
  cr_expect_str_eq(a.job.req_nodes[2], "gpu07");
  cr_assert_eq(a.job.n_exc_nodes, 4u);
  cr_expect_str_eq(a.job.exc_nodes[0], "r1n01");
  cr_expect_str_eq(a.job.exc_nodes[3], "r2n02");
  cr_expect_eq(a.slurm.n_warnings, 0u);
  ty_cli_submit_args_close(&a);
  char *p = ty_script_write("w.sh", "#!/bin/sh\n#SBATCH -w w[1-3] --exclude=w9\ntrue\n");
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_eq(a.job.n_req_nodes, 3u);
  cr_assert_eq(a.job.n_exc_nodes, 1u);
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--nodelist=w5", p), 0, "%s", err);
  cr_assert_eq(a.job.n_req_nodes, 1u, "the command line's -w replaces the directive's");
  cr_expect_str_eq(a.job.req_nodes[0], "w5");
  ty_cli_submit_args_close(&a);
  char *file = ty_script_write("hosts", "w1\nw[2-3]\n");
  cr_assert_eq(SUBMIT("-w", file, "--command", "x"), 0, "%s", err);
  cr_assert_eq(a.job.n_req_nodes, 3u, "a -w value with a '/' is a file");
  cr_expect_str_eq(a.job.req_nodes[2], "w3");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--nodefile", file, "--command", "x"), 0, "%s", err);
  cr_assert_eq(a.job.n_req_nodes, 3u);
  ty_cli_submit_args_close(&a);
  REFUSED("--nodelist: hostlist \"w[1-\": unbalanced brackets", "-w", "w[1-", "--command", "x");
  REFUSED("--exclude: hostlist \"w[3-1]\": the range \"3-1\" is reversed", "-x", "w[3-1]",
          "--command", "x");
  REFUSED("--exclude: hostlist \"a,,b\": an empty node name", "-x", "a,,b", "--command", "x");
  REFUSED("names more than the 4096 nodes allowed", "-w", "n[1-100000]", "--command", "x");
  REFUSED("--nodefile: /nonexistent/hosts: No such file", "--nodefile", "/nonexistent/hosts",
          "--command", "x");
  char *bad = ty_script_write("badw.sh", "#!/bin/sh\n#SBATCH -w n[]\ntrue\n");
  cr_assert_neq(SUBMIT(bad), 0);
  cr_assert(strstr(err, "badw.sh:2: #SBATCH -w n[]: --nodelist: hostlist \"n[]\": an empty "
                        "bracket"),
            "%s", err);
}

/* ---- rlaunch: srun's options ---------------------------------------------------------------- */

static int rl(ty_rl_opts *o, char *err, char **argv, char *const *env) {
  int argc = 0;
  while (argv[argc])
    argc++;
  return ty_rl_parse(argc, argv, "/home/a", "alice", env, o, err, TY_ERR_LEN);
}

/* Whether j's environment holds the entry `want` ("NAME=VALUE"), or with
 * prefix set any entry starting so. */
static bool job_env(const ty_job_spec *j, const char *want, bool prefix) {
  for (size_t i = 0; i < j->envc; i++)
    if (prefix ? !strncmp(j->env[i], want, strlen(want)) : !strcmp(j->env[i], want)) return true;
  return false;
}

/* A job sent from inside a batch script with an --export that names PATH
 * but not ALL carries the script's TRAINYARD_SCRIPT_DIR too, so that the
 * worker drops that directory (gone with the outer task) from its PATH,
 * as it does under ALL; the inner job's PATH kept it. Without a PATH
 * nothing is added. */
Test(srun, a_path_sent_from_a_batch_script_names_its_script_dir) {
  ty_rl_opts o;
  char err[TY_ERR_LEN] = "";
  char *env[] = {"PATH=/t/trainyard-script.Q:/bin", "TRAINYARD_SCRIPT_DIR=/t/trainyard-script.Q",
                 "FOO=1", NULL};
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "--export=PATH", "true"), env), 0, "%s", err);
  cr_assert(job_env(&o.job, "TRAINYARD_SCRIPT_DIR=/t/trainyard-script.Q", false));
  ty_rl_opts_close(&o);
  cr_assert_eq(
      rl(&o, err, ARGS("rlaunch", "--export=NONE,PATH=/x:/t/trainyard-script.Q", "true"), env), 0,
      "%s", err);
  cr_assert(job_env(&o.job, "TRAINYARD_SCRIPT_DIR=/t/trainyard-script.Q", false));
  ty_rl_opts_close(&o);
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "--export=FOO", "true"), env), 0, "%s", err);
  cr_assert(!job_env(&o.job, "TRAINYARD_SCRIPT_DIR=", true), "no PATH: nothing to clean");
  ty_rl_opts_close(&o);
  setenv("TRAINYARD_SCRIPT_DIR", "/t/trainyard-script.R", 1);
  ty_cli_submit_args a;
  cr_assert_eq(SUBMIT("--export=PATH", "--wrap", "true"), 0, "%s", err);
  cr_assert(job_env(&a.job, "TRAINYARD_SCRIPT_DIR=/t/trainyard-script.R", false));
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--export=NONE", "--wrap", "true"), 0, "%s", err);
  cr_assert(!job_env(&a.job, "TRAINYARD_SCRIPT_DIR=", true), "no PATH: nothing to clean");
  ty_cli_submit_args_close(&a);
  unsetenv("TRAINYARD_SCRIPT_DIR");
}

Test(srun, options_work_are_ignored_or_are_refused_as_for_sbatch) {
  ty_rl_opts o;
  char err[TY_ERR_LEN] = "";
  char *env[] = {"HOME=/home/a", "FOO=mine", "BAR=b", NULL};
  cr_assert_eq(
      rl(&o, err,
         ARGS("rlaunch", "-u", "--mpi=pmix", "-A", "proj", "--gres=gpu:2", "-D", "run",
              "--mem-per-cpu=1G", "-c", "2", "-N", "1-3", "--export=ALL,FOO=1", "--", "hostname"),
         env),
      0, "%s", err);
  cr_assert(ty_script_warned(&o.slurm, "--unbuffered ignored"));
  cr_assert(ty_script_warned(&o.slurm, "--mpi=pmix ignored"));
  cr_assert(ty_script_warned(&o.slurm, "--account=proj ignored"));
  cr_assert(ty_script_warned(&o.slurm, "--nodes 1-3: the job gets exactly 1 node (the minimum)"));
  cr_assert_eq(o.job.gpus_per_node, 2u);
  cr_assert_eq(o.job.mem_per_node, 2ull << 30);
  cr_assert_str_eq(o.job.cwd, "/home/a/run");
  bool foo = false, bar = false;
  for (size_t i = 0; i < o.job.envc; i++) {
    cr_assert_str_neq(o.job.env[i], "FOO=mine", "--export FOO=1 wins over yours");
    foo |= !strcmp(o.job.env[i], "FOO=1"), bar |= !strcmp(o.job.env[i], "BAR=b");
  }
  cr_assert(foo && bar);
  cr_assert_str_eq(o.job.argv[0], "hostname");
  ty_rl_opts_close(&o);

  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "-N", "2", "--gpus=4", "true"), env), 0, "%s", err);
  cr_assert_eq(o.job.gpus_per_node, 2u, "srun's --gpus: the job's");
  ty_rl_opts_close(&o);
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "-N", "2", "-G", "2", "true"), env), 0, "%s", err);
  cr_assert_eq(o.job.gpus_per_node, 2u, "rlaunch's -G: per node");
  cr_assert(
      ty_script_warned(&o.slurm, "-G 2 is rlaunch's --gpu, GPUs per node: 2 on each of 2 nodes"));
  ty_rl_opts_close(&o);
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "--export=NONE,BAR", "true"), env), 0, "%s", err);
  cr_assert_eq(o.job.envc, 1u);
  cr_assert_str_eq(o.job.env[0], "BAR=b");
  ty_rl_opts_close(&o);
  /* A list without ALL passes only what it names, as srun's. */
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "--export=BAR,BAZ=1", "true"), env), 0, "%s", err);
  cr_assert_eq(o.job.envc, 2u, "FOO leaked: %zu variables", o.job.envc);
  cr_assert_str_eq(o.job.env[0], "BAR=b");
  cr_assert_str_eq(o.job.env[1], "BAZ=1");
  ty_rl_opts_close(&o);
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "--export=BAZ=1", "--export=ALL", "true"), env), 0, "%s",
               err);
  cr_assert_eq(o.job.envc, 4u, "ALL given: yours too");
  ty_rl_opts_close(&o);

  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "-w", "n[1-2]", "-x", "n3", "true"), env), 0, "%s", err);
  cr_assert_eq(o.job.n_req_nodes, 2u, "srun's -w");
  cr_assert_eq(o.job.n_exc_nodes, 1u, "srun's -x");
  ty_rl_opts_close(&o);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "-w", "n[2-1]", "true"), env), 0);
  cr_assert(strstr(err, "--nodelist: hostlist \"n[2-1]\": the range \"2-1\" is reversed"), "%s",
            err);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "--begin=now+5", "true"), env), 0);
  cr_assert(strstr(err, "--begin=now+5 is not supported: an interactive job starts when it can"),
            "%s", err);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "-H", "true"), env), 0);
  cr_assert(strstr(err, "--hold is not supported: an interactive job is not held"), "%s", err);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "--test-only", "true"), env), 0);
  cr_assert(strstr(err, "--test-only is not supported: rlaunch runs the job: give trainctl submit "
                        "--test-only"),
            "%s", err);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "-o", "out.txt", "true"), env), 0);
  cr_assert(strstr(err, "--output=out.txt is not supported: redirect rlaunch's"), "%s", err);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "--open-mode=append", "true"), env), 0,
                "sbatch's only");
  cr_assert(strstr(err, "unknown option --open-mode"), "%s", err);
  /* srun's -i 0 / -i all / -i none are --stdin's; -d waits as sbatch's; -v and
   * --quit-on-interrupt change nothing here; -I cannot be honoured. */
  cr_assert_eq(
      rl(&o, err,
         ARGS("rlaunch", "-i", "all", "-d", "afterok:5", "-v", "--quit-on-interrupt", "cat"), env),
      0, "%s", err);
  cr_assert_eq(o.stdin_mode, TY_RL_STDIN_ALL);
  cr_assert_eq(o.job.n_deps, 1u);
  cr_assert(ty_script_warned(&o.slurm, "--verbose ignored"));
  cr_assert(ty_script_warned(&o.slurm, "--quit-on-interrupt ignored"));
  ty_rl_opts_close(&o);
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "--input=0", "cat"), env), 0, "%s", err);
  cr_assert_eq(o.stdin_mode, TY_RL_STDIN_RANK0);
  ty_rl_opts_close(&o);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "-i", "in.txt", "cat"), env), 0);
  cr_assert(strstr(err, "--input: \"in.txt\" is not 0 (rank 0), all (every rank) or none"), "%s",
            err);
  /* srun's -i none: no rank gets rlaunch's input (rank 0 sees EOF); -q is
   * srun's --qos (as Slurm's), which takes a value and changes nothing here;
   * --quit-on-interrupt has no short form. */
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "--input=none", "-q", "normal", "cat"), env), 0, "%s",
               err);
  cr_assert_eq(o.stdin_mode, TY_RL_STDIN_NONE);
  cr_assert(ty_script_warned(&o.slurm, "--qos=normal ignored"));
  cr_assert_str_eq(o.job.argv[0], "cat", "-q takes a value");
  ty_rl_opts_close(&o);
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "-qnormal", "cat"), env), 0, "%s", err);
  cr_assert(ty_script_warned(&o.slurm, "--qos=normal ignored"));
  cr_assert_str_eq(o.job.argv[0], "cat");
  ty_rl_opts_close(&o);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "--mem-per-cpu=1G", "--mem", "2G", "true"), env), 0);
  cr_assert(strstr(err, "--mem-per-cpu and --mem exclude each other"), "%s", err);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "-I5", "true"), env), 0);
  cr_assert(strstr(err, "--immediate=5 is not supported: an interactive job waits"), "%s", err);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "--export=NOPE_NOT_SET", "true"), env), 0);
  cr_assert(strstr(err, "--export: NOPE_NOT_SET is not set in your environment"), "%s", err);
}

Test(srun, exclusive_asks_for_whole_nodes_as_for_sbatch) {
  ty_rl_opts o;
  char err[TY_ERR_LEN] = "";
  char *env[] = {"HOME=/home/a", NULL};
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "--exclusive", "true"), env), 0, "%s", err);
  cr_assert(o.job.exclusive);
  cr_assert_eq(o.slurm.n_warnings, 0u);
  ty_rl_opts_close(&o);
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "--exclusive=mcs", "true"), env), 0, "%s", err);
  cr_assert(o.job.exclusive);
  ty_rl_opts_close(&o);
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "true"), env), 0, "%s", err);
  cr_assert(!o.job.exclusive);
  ty_rl_opts_close(&o);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "--exclusive=whole", "true"), env), 0);
  cr_assert(strstr(err, "--exclusive: \"whole\" is not user or mcs"), "%s", err);
}

/* --propagate: which of your soft limits the tasks get, as Slurm's (ALL
 * without a value, the default too); NONE: the worker's; MEMLOCK, NPROC
 * and RSS are never sent, said so; ALL or NONE in a list, an empty value
 * and anything else are refused. */
Test(srun, propagate_chooses_the_limits_the_job_carries) {
  ty_rl_opts o;
  char err[TY_ERR_LEN] = "";
  char *env[] = {"HOME=/home/a", NULL};
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "--propagate=NONE", "true"), env), 0, "%s", err);
  cr_assert_eq(o.slurm.n_warnings, 0u, "honoured: no warning");
  ty_rl_submit_process(&o.job, o.slurm.no_propagate);
  for (int l = 0; l < TY_LIMIT_COUNT; l++)
    cr_expect(!o.job.process.has_soft[l], "limit %d sent under --propagate=NONE", l);
  cr_expect(o.job.process.has_umask, "the umask goes all the same");
  ty_rl_opts_close(&o);
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "--propagate=NOFILE,CORE,NPROC", "true"), env), 0, "%s",
               err);
  cr_assert(ty_script_warned(&o.slurm,
                             "--propagate=NPROC ignored: the tasks get the worker's NPROC limit"));
  ty_rl_submit_process(&o.job, o.slurm.no_propagate);
  cr_expect(o.job.process.has_soft[TY_LIMIT_NOFILE] && o.job.process.has_soft[TY_LIMIT_CORE]);
  cr_expect(!o.job.process.has_soft[TY_LIMIT_AS] && !o.job.process.has_soft[TY_LIMIT_CPU]);
  ty_rl_opts_close(&o);
  cr_assert_eq(rl(&o, err, ARGS("rlaunch", "--propagate=NONE", "--propagate", "true"), env), 0,
               "%s", err);
  ty_rl_submit_process(&o.job, o.slurm.no_propagate);
  for (int l = 0; l < TY_LIMIT_COUNT; l++)
    cr_expect(o.job.process.has_soft[l], "limit %d not sent: a bare --propagate is ALL", l);
  ty_rl_opts_close(&o);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "--propagate=FILES", "true"), env), 0);
  cr_assert(strstr(err, "--propagate: \"FILES\" is not ALL, NONE or a limit (AS, CORE"), "%s", err);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "--propagate=ALL,NONE", "true"), env), 0);
  cr_assert(strstr(err, "--propagate=ALL,NONE: ALL stands alone, not in a list of limits"), "%s",
            err);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "--propagate=CORE,NONE", "true"), env), 0);
  cr_assert(strstr(err, "--propagate=CORE,NONE: NONE stands alone"), "%s", err);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "--propagate=", "true"), env), 0, "empty is not NONE");
  cr_assert(strstr(err, "--propagate: the value is empty: give ALL, NONE or a list"), "%s", err);
  cr_assert_neq(rl(&o, err, ARGS("rlaunch", "--propagate=AS,", "true"), env), 0, "AS, taken");
  cr_assert(strstr(err, "--propagate: \"\" is not ALL, NONE or a limit"), "%s", err);
  ty_cli_submit_args a;
  char *p = ty_script_write("prop.sh", "#!/bin/sh\n#SBATCH --propagate=STACK\ntrue\n");
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_eq(a.slurm.no_propagate, ((1u << TY_LIMIT_COUNT) - 1) & ~(1u << TY_LIMIT_STACK),
               "sbatch's too");
  ty_cli_submit_args_close(&a);
}

/* --no-requeue and --requeue: the job's requeue policy, as sbatch's, from
 * the command line, a directive, SBATCH_NO_REQUEUE / SBATCH_REQUEUE (over
 * the directives, under the command line); the later of the two wins. */
Test(sbatch, no_requeue_and_requeue_set_the_requeue_policy) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--command", "x"), 0, "%s", err);
  cr_assert(!a.job.no_requeue, "requeued unless asked otherwise (the cluster's default)");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--no-requeue", "--command", "x"), 0, "%s", err);
  cr_assert(a.job.no_requeue);
  cr_assert_eq(a.slurm.n_warnings, 0u, "--no-requeue is honoured: no warning");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--no-requeue", "--requeue", "--command", "x"), 0, "%s", err);
  cr_assert(!a.job.no_requeue, "the later option wins");
  cr_assert_eq(a.slurm.n_warnings, 0u, "--requeue is honoured: no warning");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--requeue", "--no-requeue", "--array=1-3", "--wrap", "true"), 0, "%s", err);
  cr_assert(a.job.no_requeue, "an array's spec, every element's, carries it");
  ty_cli_submit_args_close(&a);

  char *p = ty_script_write("nr.sh", "#!/bin/sh\n#SBATCH --no-requeue\ntrue\n");
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert(a.job.no_requeue, "#SBATCH --no-requeue");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--requeue", p), 0, "%s", err);
  cr_assert(!a.job.no_requeue, "the command line's --requeue wins over the directive");
  ty_cli_submit_args_close(&a);

  char *q = ty_script_write("rq.sh", "#!/bin/sh\n#SBATCH --requeue\ntrue\n");
  setenv("SBATCH_NO_REQUEUE", "1", 1);
  cr_assert_eq(SUBMIT(q), 0, "%s", err);
  cr_assert(a.job.no_requeue, "SBATCH_NO_REQUEUE wins over the directive");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--requeue", q), 0, "%s", err);
  cr_assert(!a.job.no_requeue, "the command line wins over SBATCH_NO_REQUEUE");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--wrap", "true"), 0, "%s", err);
  cr_assert(a.job.no_requeue, "--wrap reads SBATCH_NO_REQUEUE too");
  ty_cli_submit_args_close(&a);
  unsetenv("SBATCH_NO_REQUEUE");
  setenv("SBATCH_REQUEUE", "1", 1);
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert(!a.job.no_requeue, "SBATCH_REQUEUE wins over #SBATCH --no-requeue");
  ty_cli_submit_args_close(&a);
  unsetenv("SBATCH_REQUEUE");
}

Test(sbatch, no_requeue_refuses_what_contradicts_it) {
  REFUSED("--no-requeue: the job is never requeued, so it cannot be with --requeue-on-failure 2",
          "--no-requeue", "--requeue-on-failure", "2", "--command", "x");
  char *p = ty_script_write("both.sh", "#!/bin/sh\n#SBATCH --no-requeue\ntrue\n");
  REFUSED("--no-requeue: the job is never requeued, so it cannot be with --requeue-on-failure 1",
          "--requeue-on-failure", "1", p);
  REFUSED("--no-requeue", "--no-requeue=yes", "--command", "x");
  REFUSED("--no-requeue only applies with --command or a batch script", "--no-requeue", "job.pb");
  setenv("SBATCH_REQUEUE", "1", 1), setenv("SBATCH_NO_REQUEUE", "1", 1);
  char *q = ty_script_write("env.sh", "#!/bin/sh\ntrue\n");
  REFUSED("SBATCH_REQUEUE and SBATCH_NO_REQUEUE are both set (your environment)", q);
  unsetenv("SBATCH_REQUEUE"), unsetenv("SBATCH_NO_REQUEUE");
  /* With a policy that allows no rank-failure requeue, the two agree. */
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--no-requeue", "--requeue-on-failure", "0", "--command", "x"), 0, "%s", err);
  cr_assert(a.job.no_requeue);
  ty_cli_submit_args_close(&a);
}
