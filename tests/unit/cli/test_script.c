/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for cli/script.c through `trainctl submit SCRIPT` parsing: a
 * batch script's #SBATCH / #TRAINYARD header becomes options (the command
 * line's win), the job runs the script's text with its arguments, and every
 * bad script or directive is refused naming the file, the line and why. The
 * runner itself runs here too, under /bin/sh, as a worker would start it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "cli/script.h"
#include "tests/unit/cli/script_fixture.h"

TestSuite(script, .init = ty_script_setup, .fini = ty_script_teardown);

static const char header[] = "#!/bin/bash\n"
                             "# a comment, then a blank line\n"
                             "\n"
                             "#SBATCH -J train -c 4   # four CPUs\n"
                             "#SBATCH --time=1:00:00 --output=log-%x-%j.txt\n"
                             "#TRAINYARD --export 'A=two words' \"--export=B=say \\\"hi\\\"\"\n"
                             "#SBATCH -p gpu\n"
                             "echo \"$@\"\n"
                             "#SBATCH -c 99\n"; /* after the first command: not a directive */

Test(script, directives_then_the_command_line_which_wins) {
  char *p = ty_script_write("job.sh", header);
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  int rc = SUBMIT("-p", "cpu", p, "--lr", "3");
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_str_eq(a.job.name, "train");
  cr_assert_eq(a.job.cpus_per_task, 4u, "the directive after the first command was read");
  cr_assert_eq(a.job.time_limit_s, 3600u);
  cr_assert_str_eq(a.job.queue, "cpu", "the command line wins");
  cr_assert_eq(a.job.envc, 2u);
  cr_assert_str_eq(a.job.env[0], "A=two words");
  cr_assert_str_eq(a.job.env[1], "B=say \"hi\"");
  cr_assert_str_eq(a.job.cwd, "/home/a");
  const char *text, *out, *errp;
  char *const *args;
  size_t nargs;
  cr_assert(ty_cli_script_view(&a.job, &text, &out, &errp, &args, &nargs));
  cr_assert_str_eq(text, header, "the whole script travels");
  cr_assert_str_eq(out, "log-%x-%j.txt");
  cr_assert_str_eq(errp, "");
  cr_assert_eq(nargs, 2u, "the options after the script are its own");
  cr_assert_str_eq(args[0], "--lr");
  cr_assert_str_eq(args[1], "3");
  ty_cli_submit_args_close(&a);
}

Test(script, a_script_is_named_after_its_file) {
  char *p = ty_script_write("prep.py", "#!/usr/bin/env python3\nprint(1)\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_str_eq(a.job.name, "prep.py");
  cr_assert_eq(a.job.cpus_per_task, 0u, "the controller's default");
  ty_cli_submit_args_close(&a);
}

/* Runs the job as rank 1 would. */
static int run_job(const ty_job_spec *j) {
  return ty_script_run(j, (const char *const[]){"RANK=1", NULL});
}

Test(script, the_runner_runs_it_with_its_arguments_and_output_files) {
  char *p = ty_script_write("run.sh", "#!/bin/sh\n"
                                      "#SBATCH -J r -o out-%x-%j-%t-%%.txt -e err-%j.txt\n"
                                      "echo \"$# [$1] [$2]\"; echo oops >&2; exit 7\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p, "a 1", "b"), 0, "%s", err);
  cr_assert_eq(run_job(&a.job), 7, "the script's exit status");
  cr_assert_str_eq(ty_script_read("out-r-42-1-%.txt"), "2 [a 1] [b]\n");
  cr_assert_str_eq(ty_script_read("err-42.txt"), "oops\n");
  ty_cli_submit_args_close(&a);
  /* sbatch's zero-padding: %4j is 0042, %3a of no array 4294967294; %5x
   * (not a number) is the name */
  cr_assert_eq(SUBMIT("-o", "pad-%4j-%3t-%3a-%5x.txt", p), 0, "%s", err);
  cr_assert_eq(run_job(&a.job), 7);
  cr_assert_str_eq(ty_script_read("pad-0042-001-4294967294-r.txt"), "0 [] []\n");
  char cmd[160];
  snprintf(cmd, sizeof cmd, "ls %s | grep -q trainyard-script", ty_script_dir);
  cr_assert_neq(system(cmd), 0, "the copy of the script was left behind");
  ty_cli_submit_args_close(&a);
}

/* A script's end, run (as rank 1) with the worker's TRAINYARD_EXEC or
 * without it (helper NULL: an older worker): its raw wait status. */
static int end_of(const char *text, const char *helper) {
  char *p = ty_script_write("end.sh", text);
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "", var[1100];
  cr_assert_eq(ty_cli_parse_submit(1, (char *[]){p, NULL}, "/home/a", "alice", &a, err, sizeof err),
               0, "%s", err);
  snprintf(var, sizeof var, "TRAINYARD_EXEC=%s", helper ? helper : "");
  int st = ty_script_run_status(&a.job, (const char *const[]){"RANK=1", var, NULL});
  ty_cli_submit_args_close(&a);
  return st;
}

#define EXITED(st, n) (WIFEXITED(st) && WEXITSTATUS(st) == (n))
#define KILLED(st, n) (WIFSIGNALED(st) && WTERMSIG(st) == (n))

/* Through trainyard-exec --wait-status the runner knows the script's real
 * end: `exit 137` (and 130, 143) is an exit, not a signal, as Slurm's
 * 137:0; a script killed by a signal still ends its task killed by it
 * (0:15, 0:9), after the runner cleaned up; TRAINYARD_EXEC is not the
 * script's to see. */
Test(script, the_runner_passes_on_the_scripts_exact_end) {
  const char *h = getenv("TY_EXEC_HELPER");
  cr_assert(h && h[0], "TY_EXEC_HELPER is not set (tests/unit/cli/meson.build)");
  int st = end_of("#!/bin/sh\nexit 137\n", h);
  cr_assert(EXITED(st, 137), "exit 137 ended %#x", st);
  cr_assert(EXITED(end_of("#!/bin/sh\nexit 130\n", h), 130));
  cr_assert(EXITED(end_of("#!/bin/sh\nexit 143\n", h), 143));
  cr_assert(EXITED(end_of("#!/bin/sh\nexit 0\n", h), 0));
  st = end_of("#!/bin/sh\nkill -TERM $$\n", h);
  cr_assert(KILLED(st, SIGTERM), "SIGTERM ended %#x", st);
  st = end_of("#!/bin/sh\nkill -KILL $$\n", h);
  cr_assert(KILLED(st, SIGKILL), "SIGKILL ended %#x", st);
  st = end_of("#!/bin/sh\nkill -SEGV $$\n", h);
  cr_assert(KILLED(st, SIGSEGV), "SIGSEGV ended %#x", st);
  st = end_of("#!/bin/sh\n[ -z \"$TRAINYARD_EXEC\" ] || exit 5\n", h);
  cr_assert(EXITED(st, 0), "the script saw TRAINYARD_EXEC: %#x", st);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "ls -a %s | grep -q trainyard-script", ty_script_dir);
  cr_assert_neq(system(cmd), 0, "the runner's directory was left behind");
}

/* Without the helper (a job run by an older worker) only $? is known:
 * 129 to 143 read as signals, as before; other codes pass on. */
Test(script, without_the_helper_the_runner_reads_its_status) {
  int st = end_of("#!/bin/sh\nexit 137\n", NULL);
  cr_assert(KILLED(st, SIGKILL), "exit 137 without the helper ended %#x", st);
  cr_assert(KILLED(end_of("#!/bin/sh\nkill -TERM $$\n", NULL), SIGTERM));
  cr_assert(EXITED(end_of("#!/bin/sh\nexit 7\n", NULL), 7));
}

/* trainyard-exec --wait-status refuses any other form, naming it. */
Test(script, the_wait_helper_refuses_bad_usage) {
  const char *h = getenv("TY_EXEC_HELPER");
  cr_assert(h && h[0]);
  char cmd[1400];
  snprintf(cmd, sizeof cmd, "%s --wait-status %s/st true 2>%s/usage.txt", h, ty_script_dir,
           ty_script_dir);
  int st = system(cmd);
  cr_assert(EXITED(st, 127), "%#x", st);
  cr_assert(strstr(ty_script_read("usage.txt"), "trainyard-exec --wait-status FILE -- CMD"), "%s",
            ty_script_read("usage.txt"));
  snprintf(cmd, sizeof cmd, "%s --wait-status %s/st -- sh -c 'exit 9'", h, ty_script_dir);
  cr_assert(EXITED(system(cmd), 9));
  cr_assert_str_eq(ty_script_read("st"), "exited 9\n");
}

/* ---- refusals ------------------------------------------------------------------------------ */

static void refused(const char *text, const char *const *extra, const char *want) {
  char *p = ty_script_write("bad.sh", text);
  char *argv[8];
  int n = 0;
  for (; extra && extra[n]; n++)
    argv[n] = (char *)extra[n];
  argv[n++] = (char *)p;
  argv[n] = NULL;
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_neq(ty_cli_parse_submit(n, argv, "/home/a", "alice", &a, err, sizeof err), 0,
                "accepted: %s", text);
  cr_assert(strstr(err, want), "[%s] lacks [%s]", err, want);
}

Test(script, bad_directives_name_the_file_line_and_why) {
  refused("#!/bin/sh\n\n#SBATCH --mail-typo=END\n", NULL,
          "bad.sh:3: #SBATCH --mail-typo=END: unknown option --mail-typo");
  refused("#!/bin/sh\n#SBATCH -J \"open\n", NULL, "bad.sh:2: #SBATCH -J \"open: unterminated \"");
  refused("#!/bin/sh\n#SBATCH --command\n", NULL, "--command is not a job option a script can set");
  refused("#!/bin/sh\n#SBATCH --help\n", NULL, "--help is not a job option a script can set");
  refused("#!/bin/sh\n#TRAINYARD -c 1 extra\n", NULL, "unexpected word \"extra\"");
  refused("#!/bin/sh\n#SBATCH --cpus 0\n", NULL, "bad.sh:2: #SBATCH --cpus 0: -c/--cpus:");
  refused("#!/bin/sh\n#SBATCH -c 2\n", (const char *[]){"-c", "0", NULL}, "--cpus:");
}

Test(script, bad_scripts_are_refused) {
  char *big = malloc(TY_CLI_SCRIPT_MAX + 16);
  memset(big, 'x', TY_CLI_SCRIPT_MAX + 15);
  memcpy(big, "#!/bin/sh\n", 10);
  big[TY_CLI_SCRIPT_MAX + 15] = '\0';
  refused(big, NULL, "a batch script may be at most 65000 bytes");
  free(big);
  refused("#!/bin/sh\r\necho hi\r\n", NULL, "bad.sh: the script has DOS line breaks");
  char *p = ty_script_write("nul.sh", "#!/bin/sh\n");
  FILE *f = fopen(p, "a");
  fputc('\0', f);
  fclose(f);
  char *text = NULL, err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_script_read(p, &text, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "must be text"), "%s", err);
  cr_assert_null(text);
}

Test(script, output_options_are_for_scripts_only) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_neq(SUBMIT("--command", "-o", "x.txt", "--", "true"), 0);
  cr_assert(strstr(err, "--output applies to batch scripts"), "%s", err);
  cr_assert_neq(SUBMIT("-e", "x.txt", "job.pb"), 0);
  cr_assert(strstr(err, "--error applies to batch scripts"), "%s", err);
}

/* ---- --export, as sbatch takes it --------------------------------------------------------- */

static const char *env_of(const ty_job_spec *j, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < j->envc; i++)
    if (!strncmp(j->env[i], name, n) && j->env[i][n] == '=') return j->env[i] + n + 1;
  return NULL;
}

Test(script, a_script_takes_the_environment_unless_export_says_otherwise) {
  setenv("TY_T_MINE", "1", 1), setenv("TY_T_OTHER", "2", 1), setenv("DISPLAY", ":0", 1);
  char *p = ty_script_write("env.sh", "#!/bin/sh\nenv\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_str_eq(env_of(&a.job, "TY_T_MINE"), "1", "sbatch's default is ALL");
  cr_assert_null(env_of(&a.job, "DISPLAY"), "what rlaunch leaves out stays out");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--export=NONE", p), 0, "%s", err);
  cr_assert_eq(a.job.envc, 0u);
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--export=TY_T_MINE,TY_T_OTHER", p), 0, "%s", err);
  cr_assert_eq(a.job.envc, 2u, "only the names given");
  cr_assert_str_eq(env_of(&a.job, "TY_T_OTHER"), "2");
  ty_cli_submit_args_close(&a);
  /* SLURM_SUBMIT_DIR is where sbatch ran, not -D's directory nor one a
   * submit from inside a job inherited; without -D the worker sets it. */
  setenv("SLURM_SUBMIT_DIR", "/stale", 1);
  cr_assert_eq(SUBMIT("-D", "sub", p), 0, "%s", err);
  cr_assert_str_eq(a.job.cwd, "/home/a/sub");
  cr_assert_str_eq(env_of(&a.job, "SLURM_SUBMIT_DIR"), "/home/a");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_null(env_of(&a.job, "SLURM_SUBMIT_DIR"), "the worker's: the job's directory");
  ty_cli_submit_args_close(&a);
  unsetenv("SLURM_SUBMIT_DIR");
}

Test(script, export_all_with_values_for_a_command) {
  setenv("TY_T_MINE", "1", 1);
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--command", "--export", "ALL,TY_T_MINE=9", "--", "true"), 0, "%s", err);
  cr_assert_str_eq(env_of(&a.job, "TY_T_MINE"), "9", "the value given wins");
  size_t n = 0;
  for (size_t i = 0; i < a.job.envc; i++)
    n += !strncmp(a.job.env[i], "TY_T_MINE=", 10);
  cr_assert_eq(n, 1u, "set twice");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--command", "--export", "A=x,y", "--", "true"), 0, "%s", err);
  cr_assert_str_eq(env_of(&a.job, "A"), "x,y", "a value may hold commas");
  ty_cli_submit_args_close(&a);
  /* sbatch's NAME,NAME=VALUE list: a name first is a list, not a NAME=VALUE. */
  cr_assert_eq(SUBMIT("--command", "--export", "TY_T_MINE,B=1", "--", "true"), 0, "%s", err);
  cr_assert_eq(a.job.envc, 2u, "only the names given");
  cr_assert_str_eq(env_of(&a.job, "TY_T_MINE"), "1");
  cr_assert_str_eq(env_of(&a.job, "B"), "1");
  ty_cli_submit_args_close(&a);
  cr_assert_neq(SUBMIT("--command", "--export", "ALL,1BAD", "--", "true"), 0);
  cr_assert(strstr(err, "\"1BAD\" is not NAME=VALUE"), "%s", err);
  cr_assert_neq(SUBMIT("--export", "ALL", "job.pb"), 0);
  cr_assert(strstr(err, "--export only applies with --command or a batch script"), "%s", err);
}

/* sbatch --wrap: the string becomes a /bin/sh script named "wrap". */
Test(script, wrap_runs_the_string_as_a_shell_script) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--wrap", "echo \"job $TRAINYARD_JOB_ID\" | tr a-z A-Z; exit 3", "-o",
                      "w-%j.out", "-c", "2"),
               0, "%s", err);
  cr_assert_str_eq(a.job.name, "wrap");
  cr_assert_eq(a.job.cpus_per_task, 2u);
  cr_assert(a.job.envc > 0, "a wrapped command takes your environment, as a script does");
  cr_assert_eq(run_job(&a.job), 3, "the string's exit status");
  cr_assert_str_eq(ty_script_read("w-42.out"), "JOB 42\n");
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("--wrap", "true", "-J", "mine"), 0, "%s", err);
  cr_assert_str_eq(a.job.name, "mine");
  ty_cli_submit_args_close(&a);
}

Test(script, wrap_refuses_anything_else_to_run) {
  char *p = ty_script_write("x.sh", "#!/bin/sh\ntrue\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--wrap", "true", p), TY_EINVAL);
  cr_assert(strstr(err, "--wrap: the string is the job's command; give no SCRIPT"), "%s", err);
  cr_assert_eq(SUBMIT("--wrap", "true", "--command", "--", "true"), TY_EINVAL);
  cr_assert(strstr(err, "give no --command"), "%s", err);
  cr_assert_eq(SUBMIT("--wrap", "true", "job.pb"), TY_EINVAL);
  cr_assert(strstr(err, "give no FILE"), "%s", err);
  cr_assert_eq(SUBMIT("--wrap", " \n"), TY_EINVAL);
  cr_assert(strstr(err, "--wrap: the command string is empty"), "%s", err);
  cr_assert_eq(SUBMIT("--wrap", ""), TY_EINVAL);
  cr_assert(strstr(err, "--wrap: must not be empty"), "%s", err);
  char *d = ty_script_write("d.sh", "#!/bin/sh\n#SBATCH --wrap true\ntrue\n");
  cr_assert_eq(SUBMIT(d), TY_EINVAL);
  cr_assert(strstr(err, "--wrap is not a job option a script can set"), "%s", err);
}
