/* SPDX-License-Identifier: Apache-2.0 */
/* Task environment building (worker/env.c): exactly the job's variables,
 * the worker's documented additions and the torchrun-style variables;
 * order, overrides, and rejection of malformed CommandSpec.env. */
#include <criterion/criterion.h>
#include <pwd.h>
#include <stdlib.h>
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
  ty_task_spec s = {.job_id = 42,
                    .rank = 3,
                    .local_rank = 1,
                    .world_size = 8,
                    .local_world_size = 2,
                    .master_addr = "10.0.0.1",
                    .master_port = 29542,
                    .argv = argv,
                    .argc = 1};
  return s;
}

Test(env, sets_rank_variables_and_a_default_path) {
  static const uint32_t gpus[] = {0, 2};
  ty_task_spec s = base_spec();
  s.gpu_indices = gpus;
  s.n_gpus = 2;
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0);
  cr_expect_str_eq(get(env, "PATH"), TY_TASK_DEFAULT_PATH);
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

/* Issue 14: exactly the documented variables, whatever the worker's own
 * environment holds. */
Test(env, nothing_of_the_workers_environment) {
  setenv("TY_WORKER_ONLY", "leak", 1);
  setenv("TERM", "xterm", 1);
  static const char *const job_env[] = {"TERM=vt220", "PATH=/opt/bin", "FOO=1"};
  ty_task_spec s = base_spec();
  s.env = job_env;
  s.n_env = 3;
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0);
  cr_expect_null(get(env, "TY_WORKER_ONLY"));
  cr_expect_null(get(env, "HOME"), "no HOME unless the job or the task's user gives one");
  cr_expect_str_eq(get(env, "TERM"), "vt220");
  cr_expect_str_eq(get(env, "PATH"), "/opt/bin", "the job's PATH stands");
  size_t n = 0;
  while (env[n])
    n++;
  cr_expect_str_eq(get(env, "TMPDIR"), "/tmp", "Slurm's default, when the job has none");
  cr_expect_eq(n, 3 + 10 + 13,
               "the job's 3, the 9 per-rank variables and TMPDIR, and the 13 job names");
  ty_task_env_free(env);
}

/* Scripts written for sbatch read Slurm's names: job id, rank, node list. */
Test(env, slurm_names_describe_the_job) {
  static const char *const job_env[] = {"SLURM_JOB_ID=999", "SLURM_PROCID=7"};
  ty_task_spec s = base_spec();
  s.env = job_env, s.n_env = 2;
  s.job_name = "train", s.queue = "gpu", s.user = "alice";
  s.has_uid = true, s.uid = 1001, s.gid = 1002;
  s.nodelist = "w[1-4]", s.num_nodes = 4, s.node_index = 1;
  s.cpus = 3, s.mem_per_node = UINT64_C(2) << 30, s.cwd = "/home/alice/run";
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w2", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  cr_expect_str_eq(get(env, "SLURM_JOB_ID"), "42", "the job's own id, not one it carried");
  cr_expect_str_eq(get(env, "SLURM_JOBID"), "42");
  cr_expect_str_eq(get(env, "SLURM_PROCID"), "3");
  cr_expect_str_eq(get(env, "SLURM_LOCALID"), "1");
  cr_expect_str_eq(get(env, "SLURM_NODEID"), "1");
  cr_expect_str_eq(get(env, "SLURM_GTIDS"), "2,3", "the ranks on this node");
  cr_expect_str_eq(get(env, "SLURM_NTASKS"), "8");
  cr_expect_str_eq(get(env, "SLURM_NPROCS"), "8");
  cr_expect_str_eq(get(env, "SLURM_NTASKS_PER_NODE"), "2");
  cr_expect_str_eq(get(env, "SLURM_TASKS_PER_NODE"), "2(x4)");
  cr_expect_str_eq(get(env, "SLURM_JOB_NODELIST"), "w[1-4]");
  cr_expect_str_eq(get(env, "SLURM_NODELIST"), "w[1-4]");
  cr_expect_str_eq(get(env, "SLURM_JOB_NUM_NODES"), "4");
  cr_expect_str_eq(get(env, "SLURM_NNODES"), "4");
  cr_expect_str_eq(get(env, "SLURMD_NODENAME"), "w2");
  cr_expect_str_eq(get(env, "SLURM_JOB_NAME"), "train");
  cr_expect_str_eq(get(env, "SLURM_JOB_PARTITION"), "gpu");
  cr_expect_str_eq(get(env, "SLURM_JOB_USER"), "alice");
  cr_expect_str_eq(get(env, "SLURM_JOB_UID"), "1001");
  cr_expect_str_eq(get(env, "SLURM_JOB_GID"), "1002");
  cr_expect_str_eq(get(env, "SLURM_CPUS_PER_TASK"), "3");
  cr_expect_str_eq(get(env, "SLURM_CPUS_ON_NODE"), "6");
  cr_expect_str_eq(get(env, "TRAINYARD_CPUS_ON_NODE"), "6");
  cr_expect_str_eq(get(env, "SLURM_JOB_CPUS_PER_NODE"), "6(x4)", "sbatch's form, 4 nodes");
  cr_expect_str_eq(get(env, "SLURM_MEM_PER_NODE"), "2048");
  cr_expect_str_eq(get(env, "SLURM_MEM_PER_CPU"), "341", "2048M over 6 CPUs, rounded down");
  /* Open MPI would take the task for a launch by srun and refuse MPI_Init */
  cr_expect_null(get(env, "SLURM_STEP_ID"));
  cr_expect_null(get(env, "SLURM_STEPID"));
  cr_expect_str_eq(get(env, "SLURM_SUBMIT_DIR"), "/home/alice/run");
  cr_expect_str_eq(get(env, "TRAINYARD_JOB_NAME"), "train");
  cr_expect_str_eq(get(env, "TRAINYARD_QUEUE"), "gpu");
  cr_expect_str_eq(get(env, "TRAINYARD_NODELIST"), "w[1-4]");
  cr_expect_str_eq(get(env, "TRAINYARD_NUM_NODES"), "4");
  cr_expect_str_eq(get(env, "TRAINYARD_NODE_INDEX"), "1");
  cr_expect_str_eq(get(env, "TRAINYARD_NODENAMES"), "w1 w2 w3 w4");
  ty_task_env_free(env);
  /* sbatch -D run: the client sends where sbatch ran, which stands. */
  static const char *const chdir_env[] = {"SLURM_SUBMIT_DIR=/home/alice"};
  s.env = chdir_env, s.n_env = 1;
  cr_assert_eq(ty_task_build_env(&s, "w2", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  cr_expect_str_eq(get(env, "SLURM_SUBMIT_DIR"), "/home/alice", "-D moved the submit dir");
  ty_task_env_free(env);
  /* 7 ranks, 4 a node: the second node holds 4, 5 and 6 */
  s.rank = 6, s.local_rank = 2, s.world_size = 7, s.local_world_size = 4;
  cr_assert_eq(ty_task_build_env(&s, "w2", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  cr_expect_str_eq(get(env, "SLURM_GTIDS"), "4,5,6");
  ty_task_env_free(env);
}

/* A requeued job's tasks see how often (SLURM_RESTART_COUNT), as under
 * Slurm: a script resumes from its checkpoint; the first run has none. A
 * job's own TMPDIR stands over the /tmp default. */
Test(env, restart_count_once_requeued_and_the_jobs_tmpdir) {
  static const char *const job_env[] = {"TMPDIR=/scratch/alice"};
  ty_task_spec s = base_spec();
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  cr_expect_null(get(env, "SLURM_RESTART_COUNT"), "not requeued: unset, as Slurm's");
  ty_task_env_free(env);
  s.restart_count = 2, s.env = job_env, s.n_env = 1;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  cr_expect_str_eq(get(env, "SLURM_RESTART_COUNT"), "2");
  cr_expect_str_eq(get(env, "TMPDIR"), "/scratch/alice");
  ty_task_env_free(env);
}

/* A job submitted from inside another carries that job's variables and its
 * private TMPDIR: they are dropped, the job's own set (none where it has
 * no such setting); its other variables, SLURM_SUBMIT_DIR and a TMPDIR of
 * the user's own stay. */
Test(env, an_outer_jobs_variables_and_tmpdir_are_dropped) {
  static const char *const job_env[] = {
      "SLURM_MEM_PER_NODE=300",  "SLURM_MEM_PER_CPU=300",       "SLURM_GPUS_ON_NODE=2",
      "SLURM_RESTART_COUNT=4",   "TRAINYARD_NODELIST=w9",       "SLURM_ARRAY_TASK_ID=3",
      "SLURM_JOB_ID=7",          "TMPDIR=/t/trainyard-job-7.0", "FOO=1",
      "SLURM_SUBMIT_DIR=/home/a"};
  ty_task_spec s = base_spec();
  s.env = job_env, s.n_env = TY_ARRAY_LEN(job_env);
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  static const char *const gone[] = {"SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU",
                                     "SLURM_GPUS_ON_NODE", "SLURM_RESTART_COUNT",
                                     "TRAINYARD_NODELIST", "SLURM_ARRAY_TASK_ID"};
  for (size_t i = 0; i < TY_ARRAY_LEN(gone); i++)
    cr_expect_null(get(env, gone[i]), "%s was inherited", gone[i]);
  cr_expect_str_eq(get(env, "SLURM_JOB_ID"), "42");
  cr_expect_str_eq(get(env, "TMPDIR"), "/tmp", "the worker's, then the task's private one");
  cr_expect_str_eq(get(env, "FOO"), "1");
  cr_expect_str_eq(get(env, "SLURM_SUBMIT_DIR"), "/home/a");
  ty_task_env_free(env);
  cr_expect_not(ty_task_env_given(&s, NULL, "TMPDIR"), "another task's TMPDIR counts as given");
  static const char *const own[] = {"TMPDIR=/scratch/trainyard-job-x"};
  s.env = own, s.n_env = 1;
  cr_expect(ty_task_env_given(&s, NULL, "TMPDIR"), "the user's own TMPDIR is not kept");
}

/* A job submitted from a batch script's srun step carries the step's
 * variables and, in PATH, the outer task's script directory (removed when
 * that task ends; one more per generation of a self-resubmitting script):
 * both are dropped, the user's own directories stay in their order. */
Test(env, an_outer_steps_variables_and_script_dirs_are_dropped) {
  static const char *const job_env[] = {
      "SLURM_STEP_NUM_TASKS=2",
      "SLURM_STEP_NUM_NODES=2",
      "SLURM_STEP_TASKS_PER_NODE=1(x2)",
      "SLURM_STEP_ID=3",
      "SLURM_STEPID=3",
      "SLURM_STEP_NODELIST=w1,w2",
      "TRAINYARD_SCRIPT_DIR=/scratch/u/trainyard-script.fHesJh",
      "PATH=/scratch/u/trainyard-script.fHesJh:/usr/bin::/home/u/trainyard-job-1.0/"
      "trainyard-script.keep:/t/trainyard-job-129.1/trainyard-script.a1"};
  ty_task_spec s = base_spec();
  s.env = job_env, s.n_env = TY_ARRAY_LEN(job_env);
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  cr_expect_null(get(env, "SLURM_STEP_NUM_TASKS"));
  cr_expect_null(get(env, "SLURM_STEP_NUM_NODES"));
  cr_expect_null(get(env, "SLURM_STEP_TASKS_PER_NODE"));
  cr_expect_null(get(env, "SLURM_STEP_ID"), "Open MPI would take the task for an srun's");
  cr_expect_null(get(env, "SLURM_STEPID"));
  cr_expect_null(get(env, "SLURM_STEP_NODELIST"));
  cr_expect_null(get(env, "TRAINYARD_SCRIPT_DIR"));
  /* Exactly the outer script's directory goes (under any TMPDIR); entries
   * the user put on PATH stay, whatever their names. */
  cr_expect_str_eq(get(env, "PATH"), "/usr/bin::/home/u/trainyard-job-1.0/trainyard-script.keep:"
                                     "/t/trainyard-job-129.1/trainyard-script.a1");
  ty_task_env_free(env);
  static const char *const only[] = {"TRAINYARD_SCRIPT_DIR=/t/trainyard-script.Q",
                                     "PATH=/t/trainyard-script.Q"};
  s.env = only, s.n_env = 2;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  cr_expect_str_eq(get(env, "PATH"), TY_TASK_DEFAULT_PATH, "nothing left: the default");
  ty_task_env_free(env);
}

/* The submitter's umask as sbatch's SLURM_UMASK (four octal digits); a job
 * from an older client, without one, has none. */
Test(env, slurm_umask_is_the_submitters_in_octal) {
  ty_task_spec s = base_spec();
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  cr_expect_null(get(env, "SLURM_UMASK"));
  ty_task_env_free(env);
  s.process = (ty_proc_settings){.has_umask = true, .umask = 077};
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  cr_expect_str_eq(get(env, "SLURM_UMASK"), "0077");
  ty_task_env_free(env);
}

/* An exclusive job holds the whole node: its CPUs on the node are the
 * node's (cpus_on_node), not its ranks' CPUs added up. */
Test(env, an_exclusive_jobs_cpus_on_node_are_the_nodes) {
  ty_task_spec s = base_spec();
  s.cpus = 3, s.cpus_on_node = 7;
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  cr_expect_str_eq(get(env, "SLURM_CPUS_PER_TASK"), "3");
  cr_expect_str_eq(get(env, "SLURM_CPUS_ON_NODE"), "7");
  cr_expect_str_eq(get(env, "TRAINYARD_CPUS_ON_NODE"), "7");
  ty_task_env_free(env);
  /* --mem-per-cpu=1000 became 7000M on the node: the request comes back */
  s.mem_per_node = UINT64_C(7000) << 20;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  cr_expect_str_eq(get(env, "SLURM_MEM_PER_CPU"), "1000");
  ty_task_env_free(env);
}

/* A controller from before the node list sends none: no name is set wrong. */
Test(env, no_node_names_without_a_node_list) {
  ty_task_spec s = base_spec();
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0);
  cr_expect_null(get(env, "SLURM_JOB_NODELIST"));
  cr_expect_null(get(env, "SLURM_NODEID"));
  cr_expect_null(get(env, "TRAINYARD_NUM_NODES"));
  cr_expect_null(get(env, "TRAINYARD_NODENAMES"));
  cr_expect_str_eq(get(env, "SLURM_JOB_PARTITION"), "default");
  cr_expect_str_eq(get(env, "SLURM_JOB_NAME"), "");
  cr_expect_null(get(env, "SLURM_CPUS_PER_TASK"), "no CPUs given, none claimed");
  cr_expect_null(get(env, "SLURM_MEM_PER_CPU"), "no memory limit, no share of one");
  ty_task_env_free(env);
}

Test(env, operator_variables_come_first_and_the_job_overrides_them) {
  char *site[] = {"PATH=/site/bin", "OMP_NUM_THREADS=4", "TRAINYARD_KERNEL_CACHE=/k", NULL};
  static const char *const job_env[] = {"OMP_NUM_THREADS=8"};
  ty_task_spec s = base_spec();
  s.env = job_env;
  s.n_env = 1;
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", site, NULL, err, sizeof err, &env), 0);
  cr_expect_str_eq(get(env, "PATH"), "/site/bin", "the operator's PATH, not the default");
  cr_expect_str_eq(get(env, "OMP_NUM_THREADS"), "8");
  cr_expect_str_eq(get(env, "TRAINYARD_KERNEL_CACHE"), "/k");
  ty_task_env_free(env);
}

Test(env, login_variables_of_the_tasks_user) {
  struct passwd pw = {.pw_name = "alice", .pw_dir = "/home/alice", .pw_shell = "/bin/zsh"};
  static const char *const job_env[] = {"HOME=/home/mallory", "USER=mallory", "X=1"};
  ty_task_spec s = base_spec();
  s.env = job_env;
  s.n_env = 3;
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, &pw, err, sizeof err, &env), 0);
  cr_expect_str_eq(get(env, "HOME"), "/home/alice");
  cr_expect_str_eq(get(env, "USER"), "alice");
  cr_expect_str_eq(get(env, "LOGNAME"), "alice");
  cr_expect_str_eq(get(env, "SHELL"), "/bin/zsh");
  cr_expect_str_eq(get(env, "X"), "1");
  ty_task_env_free(env);
}

Test(env, rank_variables_override_the_job) {
  static const char *const job_env[] = {"FOO=job", "RANK=7", "BAR=a=b", "FOO=again"};
  ty_task_spec s = base_spec();
  s.env = job_env;
  s.n_env = 4;
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0);
  cr_expect_str_eq(get(env, "FOO"), "again");
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

Test(env, free_accepts_null) {
  ty_task_env_free(NULL);
}

/* ty_task_env_set: a new name is appended, a present one replaced, so
 * every name still appears once. */
Test(env, set_appends_or_replaces_one_entry) {
  ty_task_spec s = base_spec();
  char err[256] = "";
  char **env = NULL;
  cr_assert_eq(ty_task_build_env(&s, "w1", NULL, NULL, err, sizeof err, &env), 0, "%s", err);
  cr_assert_null(get(env, "TRAINYARD_EXEC"));
  cr_assert_eq(ty_task_env_set(&env, "TRAINYARD_EXEC", "/x/trainyard-exec"), 0);
  cr_expect_str_eq(get(env, "TRAINYARD_EXEC"), "/x/trainyard-exec");
  cr_assert_eq(ty_task_env_set(&env, "RANK", "7"), 0);
  cr_expect_str_eq(get(env, "RANK"), "7");
  cr_expect_str_eq(get(env, "TRAINYARD_EXEC"), "/x/trainyard-exec");
  ty_task_env_free(env);
}
