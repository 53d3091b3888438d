/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The batch runner as a worker runs a script's job (cli/script.c): tasks
 * sharing an output file append to it (the open mode), and the `srun` and
 * `scontrol show hostnames` it gives the script: a step's own tasks, ranks
 * and nodes spread over the allocation as Slurm's, its step id and
 * SLURM_STEP_* variables, its lines labelled under -l, srun's options used,
 * skipped with their values (said on stderr) or refused by name.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/script.h"
#include "tests/unit/cli/script_fixture.h"

TestSuite(batch_runner, .init = ty_script_setup, .fini = ty_script_teardown);

/* ---- the runner's open mode --------------------------------------------------------------- */

static void expect_file(const char *name, const char *want) {
  const char *got = ty_script_read(name);
  cr_assert_str_eq(got, want, "%s:\n%s", name, got);
}

static void run_ranks(const char *open_mode, const char *ntasks, int ranks) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  const char *mode = open_mode ? open_mode : "--export=NONE";
  cr_assert_eq(SUBMIT((char *)mode, "-o", "out-%j.txt", "-e", "err-%t.txt", "--wrap",
                      "echo rank $RANK; echo e$RANK >&2"),
               0, "%s", err);
  for (int r = 0; r < ranks; r++) {
    char rank[16], size[24];
    snprintf(rank, sizeof rank, "RANK=%d", r),
        snprintf(size, sizeof size, "SLURM_NTASKS=%s", ntasks);
    cr_assert_eq(ty_script_run(&a.job, (const char *const[]){rank, size, NULL}), 0);
  }
  ty_cli_submit_args_close(&a);
}

Test(batch_runner, tasks_sharing_an_output_file_append_to_it) {
  ty_script_write("out-42.txt", "from an earlier job\n");
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

/* The job's PATH is the user's, as sbatch hands it over: one without the
 * system's directories (--export=NONE,PATH=/nonexistent) still runs the
 * script and its steps, the runner's own mktemp, chmod and rm running
 * from the default PATH (they failed with "mktemp: not found"). */
Test(batch_runner, a_path_without_the_system_dirs_still_runs_the_script) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("--export=NONE,PATH=/nonexistent", "-o", "path.out", "--wrap",
                      "case $PATH in */trainyard-script.*:/nonexistent) echo path ok;;"
                      " *) echo \"path $PATH\";; esac; srun -n1 /bin/echo step"),
               0, "%s", err);
  cr_assert_eq(ty_script_run(&a.job, (const char *const[]){"RANK=0", NULL}), 0);
  expect_file("path.out", "path ok\nstep\n");
  ty_cli_submit_args_close(&a);
}

/* sbatch's -o and -e naming one file (once expanded): both streams land
 * in it, in the order written, as slurmstepd's shared descriptor keeps
 * them; opened twice, stderr's writes overwrote stdout's. */
Test(batch_runner, output_and_error_naming_one_file_keep_both_streams) {
  ty_script_write("log-42.txt", "from an earlier job\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("-o", "log-%j.txt", "-e", "log-42.txt", "--wrap",
                      "for i in 1 2; do echo out $i; echo err $i >&2; done"),
               0, "%s", err);
  cr_assert_eq(ty_script_run(&a.job, (const char *const[]){"RANK=0", NULL}), 0);
  expect_file("log-42.txt", "out 1\nerr 1\nout 2\nerr 2\n");
  ty_cli_submit_args_close(&a);
}

/* %x is the name the job starts with, as SLURM_JOB_NAME says: a pending
 * job renamed (job update -J, scontrol's JobName=) once still wrote to a
 * file named after its submitted name. */
Test(batch_runner, percent_x_is_the_name_the_job_starts_with) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT("-J", "old", "-o", "%x-%j.txt", "--wrap", "echo x"), 0, "%s", err);
  cr_assert_eq(ty_script_run(&a.job, (const char *const[]){"RANK=0", "TRAINYARD_JOB_NAME=new",
                                                           "SLURM_JOB_NAME=new", NULL}),
               0);
  expect_file("new-42.txt", "x\n");
  cr_assert_eq(ty_script_run(&a.job, (const char *const[]){"RANK=0", NULL}), 0);
  expect_file("old-42.txt", "x\n"); /* no name from the worker: the submitted one */
  ty_cli_submit_args_close(&a);
}

/* ---- srun inside a batch script ---------------------------------------------------------- */

Test(batch_runner, srun_and_scontrol_hostnames_in_a_script) {
  char *p = ty_script_write("steps.sh", "#!/bin/bash\n"
                                        "#SBATCH -o steps.out\n"
                                        "srun -N 2 --ntasks=4 -l --mpi=pmix --cpu-bind cores "
                                        "echo step \"$1\"\n"
                                        "srun -n4 -- sh -c 'echo two; exit 3' || echo rc=$?\n"
                                        "srun --label || echo empty=$?\n"
                                        "scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1\n"
                                        "scontrol show hostnames\n"
                                        "scontrol show job 5 || echo no=$?\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p, "a b"), 0, "%s", err);
  cr_assert_eq(
      ty_script_run(&a.job, (const char *const[]){"RANK=0", "SLURM_JOB_NODELIST=w[1-2]",
                                                  "TRAINYARD_NODENAMES=w1 w2", "SLURM_NTASKS=4",
                                                  "SLURM_JOB_NUM_NODES=2",
                                                  "SLURM_NTASKS_PER_NODE=2", NULL}),
      0);
  cr_assert_str_eq(ty_script_read("steps.out"),
                   "srun: option --mpi=pmix ignored\n"
                   "srun: option --cpu-bind cores ignored\n"
                   "0: step a b\ntwo\nrc=3\n"
                   "srun: no command given\nempty=2\n"
                   "w1\nw1\nw2\n"
                   "scontrol show job 5: in a Trainyard job only scontrol show hostnames of the "
                   "job nodes works; use trainctl (show ID, job hold|release|requeue|update ID)\n"
                   "no=1\n");
  ty_cli_submit_args_close(&a);
}

/* A step of fewer tasks sees the step, as srun's: its task count, and
 * under --ntasks-per-node ranks numbered node by node (a torchrun
 * --node_rank=$SLURM_PROCID once got 2 of 2 nodes). srun options this
 * shim does not use are skipped with their values (saying so on stderr); sbatch's %J %s %n %b
 * patterns are filled. Four tasks, two per node. */
Test(batch_runner, a_step_sees_its_own_tasks_and_ranks) {
  char *p = ty_script_write(
      "step.sh",
      "#!/bin/sh\n"
      "#SBATCH -o step-%J-%s-%n-%b.out\n"
      "srun --ntasks-per-node=1 sh -c 'echo pn $SLURM_PROCID $RANK $SLURM_NTASKS $WORLD_SIZE'\n"
      "srun -n 1 sh -c 'echo n1 $SLURM_PROCID $SLURM_NTASKS $WORLD_SIZE'\n"
      "srun --ntasks-per-socket 1 --cpu-freq high echo opts $SLURM_PROCID 2>/dev/null\n"
      "srun -N2 -n2 sh -c 'echo Nn $SLURM_PROCID $SLURM_NODEID $SLURM_NTASKS $SLURM_NNODES'\n"
      "srun -n2 sh -c 'echo n2 $SLURM_PROCID $SLURM_NODEID $SLURM_GTIDS'\n"
      "srun -n3 sh -c 'echo n3 $SLURM_PROCID $LOCAL_WORLD_SIZE $SLURM_TASKS_PER_NODE'\n"
      "srun -N1 sh -c 'echo N1 $SLURM_PROCID $SLURM_NTASKS $SLURM_NNODES "
      "$SLURM_STEP_NUM_TASKS'\n"
      "srun -N2 -n1 sh -c 'echo N2n1 $SLURM_PROCID $SLURM_NNODES'\n"
      "srun -n2 --ntasks-per-node=2 sh -c 'echo n2p2 $SLURM_PROCID $SLURM_NNODES'\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  for (int r = 0; r < 4; r++) {
    char rank[16], procid[24], local[24], node[24];
    snprintf(rank, sizeof rank, "RANK=%d", r);
    snprintf(procid, sizeof procid, "SLURM_PROCID=%d", r);
    snprintf(local, sizeof local, "SLURM_LOCALID=%d", r % 2);
    snprintf(node, sizeof node, "SLURM_NODEID=%d", r / 2);
    cr_assert_eq(
        ty_script_run(&a.job, (const char *const[]){rank, procid, local, node, "SLURM_NTASKS=4",
                                                    "WORLD_SIZE=4", "SLURM_JOB_NUM_NODES=2",
                                                    "TRAINYARD_JOB_ID=42", NULL}),
        0);
  }
  /* One file per node (%n), each task appending; %J and %s as sbatch's. */
  /* -N2 -n2 and -n2 alone: one task on each node, as Slurm's block
   * distribution; -n3: two on the first node, one on the second; -N2 -n1:
   * one node, as srun's warning says; -n2 at 2 per node: one node full.
   * Each file holds its node's first task's lines, then its second's. */
#define WARN "srun: warning: can't run 1 processes on 2 nodes, setting nnodes to 1\n"
  expect_file("step-42.batch-batch-0-0.out",
              "pn 0 0 2 2\nn1 0 1 1\nopts 0\nNn 0 0 2 2\nn2 0 0 0\nn3 0 2 2,1\n"
              "N1 0 2 1 2\n" WARN "N2n1 0 1\nn2p2 0 1\n"
              "opts 1\nn3 1 2 2,1\nN1 1 2 1 2\n" WARN "n2p2 1 1\n");
  expect_file("step-42.batch-batch-1-0.out",
              "pn 1 1 2 2\nopts 2\nNn 1 1 2 2\nn2 1 1 1\nn3 2 1 2,1\n" WARN "opts 3\n" WARN);
#undef WARN
  ty_cli_submit_args_close(&a);
}

/* Each srun of a script is a step numbered as Slurm numbers a job's steps:
 * SLURM_STEP_ID and SLURM_STEPID 0, 1, 2, ... in the order the script runs
 * them, the same in every task (a task outside the step counts it too; one
 * refused as larger than the job is no step), two run at once get one each;
 * SLURM_STEP_NUM_TASKS, SLURM_STEP_NUM_NODES, SLURM_STEP_NODELIST (its
 * first nodes) and SLURM_STEP_TASKS_PER_NODE are its -n/-N step's, the
 * job's without them (none was set there, nor any step id). The script
 * itself has none. Four tasks, two a node on w1 and w2. */
Test(batch_runner, a_step_has_its_id_and_node_list) {
  char *p = ty_script_write(
      "ids.sh", "#!/bin/sh\n"
                "#SBATCH -o ids-%t.out\n"
                "v='$SLURM_STEP_ID $SLURM_STEPID $SLURM_STEP_NUM_TASKS $SLURM_STEP_NUM_NODES"
                " $SLURM_STEP_NODELIST $SLURM_STEP_TASKS_PER_NODE'\n"
                "srun sh -c \"echo all $v\"\n"
                "srun -N1 sh -c \"echo N1 $v\"\n"
                "srun -n 5 true || echo refused=$?\n"
                "srun -n1 sh -c \"echo n1 $v\"\n"
                "srun -n3 sh -c \"echo n3 $v\"\n"
                "{ srun -n1 sh -c 'echo c$SLURM_STEP_ID' & srun -n1 sh -c 'echo c$SLURM_STEP_ID' &"
                " wait; } | sort\n"
                "echo script ${SLURM_STEP_ID-none} ${SLURM_STEPID-none}\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  for (int r = 0; r < 4; r++) {
    char rank[16], procid[24], local[24], node[24];
    snprintf(rank, sizeof rank, "RANK=%d", r);
    snprintf(procid, sizeof procid, "SLURM_PROCID=%d", r);
    snprintf(local, sizeof local, "SLURM_LOCALID=%d", r % 2);
    snprintf(node, sizeof node, "SLURM_NODEID=%d", r / 2);
    cr_assert_eq(
        ty_script_run(
            &a.job, (const char *const[]){rank, procid, local, node, "SLURM_NTASKS=4",
                                          "SLURM_JOB_NUM_NODES=2", "SLURM_NTASKS_PER_NODE=2",
                                          "SLURM_JOB_NODELIST=w[1-2]", "TRAINYARD_NODENAMES=w1 w2",
                                          "SLURM_TASKS_PER_NODE=2(x2)", NULL}),
        0);
  }
#define ALL "all 0 0 4 2 w[1-2] 2(x2)\n"
#define REFUSED "srun: step of 5 tasks exceeds the job's 4\nrefused=1\n"
#define N3 "n3 3 3 3 2 w[1-2] 2,1\n"
  expect_file("ids-0.out",
              ALL "N1 1 1 2 1 w1 2\n" REFUSED "n1 2 2 1 1 w1 1\n" N3 "c4\nc5\nscript none none\n");
  expect_file("ids-1.out", ALL "N1 1 1 2 1 w1 2\n" REFUSED N3 "script none none\n");
  expect_file("ids-2.out", ALL REFUSED N3 "script none none\n");
  expect_file("ids-3.out", ALL REFUSED "script none none\n");
#undef ALL
#undef REFUSED
#undef N3
  ty_cli_submit_args_close(&a);
}

/* The srun of a batch script: options without a value (--kill-on-bad-exit,
 * --bcast) do not take the command's first word, every one of srun's that
 * takes a value (--time-min, -F, ...) takes the next word, one srun does not
 * have is refused by name (its value never run as the command); a step larger than the
 * job is refused; -N M runs on the nodes below M; -D/--chdir enters its
 * directory (exit 1 if it cannot); --export's NAME=VALUE items are set;
 * every option skipped says so. Two tasks, one on each of two nodes. */
Test(batch_runner, srun_options_are_used_refused_or_said_to_be_ignored) {
  char *p = ty_script_write("opts.sh",
                            "#!/bin/sh\n"
                            "#SBATCH -o opts-%t.out\n"
                            "srun --kill-on-bad-exit sh -c 'echo k'\n"
                            "srun --bcast sh -c 'echo b'\n"
                            "srun -n 4 echo four || echo n4=$?\n"
                            "srun -N1 sh -c 'echo N1 $SLURM_PROCID $SLURM_NTASKS $SLURM_NNODES'\n"
                            "srun -N 3 true || echo N3=$?\n"
                            "srun -D / pwd\n"
                            "srun --chdir=/nonexistent pwd || echo D=$?\n"
                            "srun --export=ALL,FOO=1 sh -c 'echo FOO=$FOO'\n"
                            "srun -t 0:02 true\n"
                            "srun --time-min 10 --gpus-per-socket 1 -B 2:1 --gres-flags "
                            "enforce-binding --tres-per-task=gres:gpu:1 -lu -K1 echo valued\n"
                            "srun --frobnicate 1 echo x || echo unknown=$?\n"
                            "srun --frobnicate=1 echo x || echo unknown=$?\n"
                            "srun -lz echo x || echo unknown=$?\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  for (int r = 0; r < 2; r++) {
    char rank[16], procid[24], node[24];
    snprintf(rank, sizeof rank, "RANK=%d", r);
    snprintf(procid, sizeof procid, "SLURM_PROCID=%d", r);
    snprintf(node, sizeof node, "SLURM_NODEID=%d", r);
    cr_assert_eq(
        ty_script_run(&a.job, (const char *const[]){rank, procid, node, "SLURM_LOCALID=0",
                                                    "SLURM_NTASKS=2", "SLURM_NTASKS_PER_NODE=1",
                                                    "SLURM_JOB_NUM_NODES=2", NULL}),
        0);
  }
  static const char common[] = "srun: option --kill-on-bad-exit ignored\nk\n"
                               "srun: option --bcast ignored\nb\n"
                               "srun: step of 4 tasks exceeds the job's 2\nn4=1\n";
  static const char rest[] = "srun: step of 3 nodes exceeds the job's 2\nN3=1\n"
                             "/\n"
                             "srun: --chdir /nonexistent: cannot enter that directory\nD=1\n"
                             "FOO=1\n"
                             "srun: option -t 0:02 ignored\n"
                             "srun: option --time-min 10 ignored\n"
                             "srun: option --gpus-per-socket 1 ignored\n"
                             "srun: option -B 2:1 ignored\n"
                             "srun: option --gres-flags enforce-binding ignored\n"
                             "srun: option --tres-per-task=gres:gpu:1 ignored\n"
                             "srun: option -u ignored\nsrun: option -K1 ignored\n";
  static const char unknown[] = "srun: unknown option --frobnicate\nunknown=2\n"
                                "srun: unknown option --frobnicate\nunknown=2\n"
                                "srun: unknown option -lz\nunknown=2\n";
  char want[2048]; /* -lu: "valued" labelled with the task's rank, -u ignored */
  snprintf(want, sizeof want, "%sN1 0 1 1\n%s0: valued\n%s", common, rest, unknown);
  expect_file("opts-0.out", want);
  snprintf(want, sizeof want, "%s%s1: valued\n%s", common, rest, unknown);
  expect_file("opts-1.out", want);
  ty_cli_submit_args_close(&a);
}

/* srun -l/--label starts every line of the step's output and error with
 * its step rank and ": ", padded to the width of the step's highest rank
 * (srun -l's " 3: " in a step of 12 tasks), a last line without a newline
 * included, and the srun exits with the command's status (the option was
 * skipped as ignored, the lines left bare). Twelve tasks on one node; the
 * runs of ranks 3 and 11. */
Test(batch_runner, srun_label_starts_each_line_with_the_step_rank) {
  char *p =
      ty_script_write("label.sh", "#!/bin/sh\n"
                                  "#SBATCH -o label-%t.out -e label-%t.err\n"
                                  "srun -l sh -c 'echo a; echo b >&2; echo c; printf d; exit 3'"
                                  " || echo rc=$?\n"
                                  "srun --label -n 4 sh -c 'echo four; echo e4 >&2'\n"
                                  "srun -ul -N 1 -n 12 echo \"x  y\" '\\t'\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  for (int r = 3; r < 12; r += 8) {
    char rank[16], procid[24], local[24];
    snprintf(rank, sizeof rank, "RANK=%d", r);
    snprintf(procid, sizeof procid, "SLURM_PROCID=%d", r);
    snprintf(local, sizeof local, "SLURM_LOCALID=%d", r);
    cr_assert_eq(ty_script_run(&a.job, (const char *const[]){rank, procid, local, "SLURM_NODEID=0",
                                                             "SLURM_NTASKS=12",
                                                             "SLURM_JOB_NUM_NODES=1", NULL}),
                 0);
  }
  expect_file("label-3.out", " 3: a\n 3: c\n 3: d\nrc=3\n3: four\n 3: x  y \\t\n");
  expect_file("label-3.err", " 3: b\n3: e4\nsrun: option -u ignored\n");
  expect_file("label-11.out", "11: a\n11: c\n11: d\nrc=3\n11: x  y \\t\n");
  expect_file("label-11.err", "11: b\nsrun: option -u ignored\n");
  ty_cli_submit_args_close(&a);
}

/* The srun of a batch script refuses, exit 2 and naming the option, one
 * whose value is missing (not the shell's "shift: can't shift that
 * many"), and the placement options -w/--nodelist, -x/--exclude,
 * -r/--relative and -F/--nodefile: ignored, the step would run on the node
 * they exclude; -C/--constraint, --jobid and --het-group too, each with
 * its reason; an empty --propagate= as rlaunch refuses it (it was
 * ignored; a bare --propagate still is). */
Test(batch_runner, srun_refuses_a_missing_value_and_placement_options) {
  char *p = ty_script_write("place.sh", "#!/bin/sh\n"
                                        "#SBATCH -o place.out\n"
                                        "srun -n || echo n=$?\n"
                                        "srun -N1 --export || echo e=$?\n"
                                        "srun -t || echo t=$?\n"
                                        "srun --time-min || echo tm=$?\n"
                                        "srun --ntasks= echo x || echo ne=$?\n"
                                        "srun --chdir= echo x || echo de=$?\n"
                                        "srun -x worker1 -n1 echo x1 || echo x=$?\n"
                                        "srun --exclude=worker1 echo x1 || echo x=$?\n"
                                        "srun -wworker2 echo w || echo w=$?\n"
                                        "srun --nodelist worker2 echo w || echo w=$?\n"
                                        "srun -r 1 echo r || echo r=$?\n"
                                        "srun -F nodes echo f || echo f=$?\n"
                                        "srun --nodefile=nodes echo f || echo f=$?\n"
                                        "srun -C gpu echo c || echo c=$?\n"
                                        "srun --constraint=gpu echo c || echo c=$?\n"
                                        "srun --jobid=5 echo j || echo j=$?\n"
                                        "srun --het-group 1 echo h || echo h=$?\n"
                                        "srun --propagate= echo p || echo p=$?\n"
                                        "srun --propagate echo p\n"
                                        "srun -n1 echo ok\n");
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(SUBMIT(p), 0, "%s", err);
  cr_assert_eq(
      ty_script_run(&a.job, (const char *const[]){"RANK=0", "SLURM_PROCID=0", "SLURM_NODEID=0",
                                                  "SLURM_LOCALID=0", "SLURM_NTASKS=1", NULL}),
      0);
#define PLACE ": a step runs on the job's first nodes (-N chooses how many)\n"
  expect_file("place.out", "srun: option -n requires a value\nn=2\n"
                           "srun: option --export requires a value\ne=2\n"
                           "srun: option -t requires a value\nt=2\n"
                           "srun: option --time-min requires a value\ntm=2\n"
                           "srun: option --ntasks requires a value\nne=2\n"
                           "srun: option --chdir requires a value\nde=2\n"
                           "srun: option -x is not supported" PLACE "x=2\n"
                           "srun: option --exclude is not supported" PLACE "x=2\n"
                           "srun: option -wworker2 is not supported" PLACE "w=2\n"
                           "srun: option --nodelist is not supported" PLACE "w=2\n"
                           "srun: option -r is not supported" PLACE "r=2\n"
                           "srun: option -F is not supported" PLACE "f=2\n"
                           "srun: option --nodefile is not supported" PLACE "f=2\n"
                           "srun: option -C is not supported: a step runs on the job's nodes,"
                           " whatever their features\nc=2\n"
                           "srun: option --constraint is not supported: a step runs on the job's"
                           " nodes, whatever their features\nc=2\n"
                           "srun: option --jobid is not supported: a step runs in the job of its"
                           " batch script\nj=2\n"
                           "srun: option --het-group is not supported: a job has no"
                           " heterogeneous components\nh=2\n"
                           "srun: --propagate: the value is empty: give ALL, NONE or a list of"
                           " limits, or --propagate alone for ALL\np=2\n"
                           "srun: option --propagate ignored\np\n"
                           "ok\n");
#undef PLACE
  ty_cli_submit_args_close(&a);
}

/* ---- an output file that cannot be opened ------------------------------------------------- */

/* The runner's stderr (the rank's log, where the worker reads it) while
 * the job's argv runs; its exit status into *rc. */
static const char *run_stderr(const ty_job_spec *j, int *rc) {
  char *path = ty_script_write("runner.stderr", "");
  int saved = dup(2), fd = open(path, O_WRONLY | O_TRUNC);
  cr_assert(saved >= 0 && fd >= 0);
  cr_assert_eq(dup2(fd, 2), 2);
  *rc = ty_script_run(j, (const char *const[]){"RANK=0", NULL});
  dup2(saved, 2), close(saved), close(fd);
  return ty_script_read("runner.stderr");
}

/* A --output or --error in a missing directory ends the task 1 with the
 * line the worker makes its reason (TY_BATCH_ERROR), naming the file and
 * the shell's why; the shell's own refusal exited 2 before anything said
 * which file, and the job's reason was "exited with code 2". */
Test(batch_runner, an_output_file_that_cannot_be_opened_is_named) {
  ty_cli_submit_args a;
  char err[TY_ERR_LEN] = "";
  int rc = 0;
  cr_assert_eq(SUBMIT("-o", "nodir/x-%j.out", "--wrap", "echo ran"), 0, "%s", err);
  const char *got = run_stderr(&a.job, &rc);
  cr_assert_eq(rc, 1, "%s", got);
  cr_assert(strstr(got, TY_BATCH_ERROR "cannot open output file nodir/x-42.out: "
                                       "Directory nonexistent\n"),
            "%s", got);
  ty_cli_submit_args_close(&a);
  cr_assert_eq(SUBMIT("-o", "ok.out", "-e", "nodir/e-%j.err", "--wrap", "echo ran"), 0, "%s", err);
  got = run_stderr(&a.job, &rc);
  cr_assert_eq(rc, 1, "%s", got);
  cr_assert(strstr(got, TY_BATCH_ERROR "cannot open error file nodir/e-42.err: "), "%s", got);
  ty_cli_submit_args_close(&a);
}
