/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for cli/table.c and cli/format.c: exact table text, JSON
 * listings, durations and sizes. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_history.h"

static char *take(ty_buf *b) {
  ty_buf_append(b, "", 1);
  return (char *)b->data;
}

Test(table, aligns_columns_and_sanitises_cells) {
  const char *hdr[] = {"ID", "NAME", "REASON"};
  const bool right[] = {true, false, false};
  ty_cli_table *t = ty_cli_table_create(hdr, right, 3);
  cr_assert_eq(ty_cli_table_add(t, (const char *[]){"7", "train", "Resources"}), 0);
  cr_assert_eq(ty_cli_table_add(t, (const char *[]){"12345", "b\xc3\xa9ta", ""}), 0);
  cr_assert_eq(ty_cli_table_add(t, (const char *[]){"8", "evil\nname\x1b[31m", NULL}), 0);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_table_render(t, &b), 0);
  cr_assert_str_eq(take(&b), "   ID  NAME            REASON\n"
                             "    7  train           Resources\n"
                             "12345  b\xc3\xa9ta\n"
                             "    8  evil?name?[31m\n");
  ty_buf_close(&b);
  ty_cli_table_destroy(t);
}

Test(format, elapsed_and_sizes) {
  char s[32];
  ty_cli_format_elapsed(0, s, sizeof s);
  cr_assert_str_eq(s, "0:00");
  ty_cli_format_elapsed(-5, s, sizeof s);
  cr_assert_str_eq(s, "0:00");
  ty_cli_format_elapsed(65999, s, sizeof s);
  cr_assert_str_eq(s, "1:05");
  ty_cli_format_elapsed(3723000, s, sizeof s);
  cr_assert_str_eq(s, "1:02:03");
  ty_cli_format_elapsed((3 * 86400 + 4 * 3600 + 5 * 60 + 6) * 1000ll, s, sizeof s);
  cr_assert_str_eq(s, "3-04:05:06");
  ty_cli_format_size(512, s, sizeof s);
  cr_assert_str_eq(s, "512");
  ty_cli_format_size(64 << 10, s, sizeof s);
  cr_assert_str_eq(s, "64K");
  ty_cli_format_size(3ull << 29, s, sizeof s);
  cr_assert_str_eq(s, "1.5G");
  ty_cli_format_size(16ull << 30, s, sizeof s);
  cr_assert_str_eq(s, "16G");
}

static ty_cli_jobinfo sample_job(void) {
  static char *argv[] = {"sh", "-c", "echo \"hi\"; exit 3"};
  static char *nodes[] = {"n1", "n2"};
  ty_cli_jobinfo j = {0};
  j.id = 42;
  j.spec.name = "tr\"ain";
  j.spec.user = "alice";
  j.spec.queue = "";
  j.spec.priority = 10;
  j.spec.nodes = 2;
  j.spec.argv = argv, j.spec.argc = 3;
  j.spec.cwd = "/w";
  j.state = TY_JOB_RUNNING;
  j.reason = "";
  j.submit_ms = 1000, j.start_ms = 2000;
  j.nodes = nodes, j.nnodes = 2;
  return j;
}

Test(format, jobs_table) {
  ty_cli_jobinfo js[2] = {sample_job(), sample_job()};
  js[1].id = 43, js[1].state = TY_JOB_PENDING, js[1].start_ms = 0, js[1].nnodes = 0;
  js[1].spec.queue = "gpu", js[1].reason = "Resources: needs 2 nodes with 4 free GPUs";
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs(js, 2, 2000 + 65000, false, true, &b), 0);
  cr_assert_str_eq(take(&b),
                   "ID  NAME    USER   QUEUE    PRI  STATE    TIME  NODES  REASON\n"
                   "42  tr\"ain  alice  default   10  RUNNING  1:05  n1,n2\n"
                   "43  tr\"ain  alice  gpu       10  PENDING  0:00  2      Resources: needs 2 "
                   "nodes with 4 free GPUs\n");
  ty_buf_close(&b);
}

/* A job requeued and pending again keeps its last run's start, but its
 * TIME is 0:00 (squeue's) until it runs again, not the time since then. */
Test(format, a_requeued_pending_job_has_no_run_time) {
  ty_cli_jobinfo j = sample_job();
  cr_assert_eq(ty_cli_job_elapsed(&j, 2000 + 65000), 65000);
  j.state = TY_JOB_PENDING;
  cr_assert_eq(ty_cli_job_elapsed(&j, 2000 + 65000), 0);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs(&j, 1, 2000 + 65000, false, true, &b), 0);
  char *s = take(&b);
  cr_assert(strstr(s, "PENDING  0:00"), "%s", s);
  ty_buf_close(&b);
}

/* An ended job whose ranks still end (a task that outlives its SIGTERM
 * until the kill grace ends) is squeue's CG: COMPLETING in ls and
 * scontrol's line, CG in %t, its final state with the count in show and
 * in the JSON. */
Test(format, an_ended_job_whose_ranks_still_end_is_completing) {
  ty_cli_jobinfo j = sample_job();
  j.state = TY_JOB_CANCELLED, j.end_ms = 9000, j.ranks_ending = 2;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs(&j, 1, 10000, false, true, &b), 0);
  char *s = take(&b);
  cr_assert(strstr(s, " COMPLETING "), "%s", s);
  ty_buf_close(&b);
  char *fmt = NULL, err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_ls_squeue_format("%i %t %T", &fmt, err, sizeof err), 0, "%s", err);
  free(fmt);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_squeue(&j, 1, 10000, false, "%i %t %T", true, &b), 0);
  cr_assert_str_eq(take(&b), "42 CG COMPLETING\n");
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 10000, false, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "  state:       CANCELLED (completing: 2 ranks still ending, holding their "
                      "resources)\n"),
            "%s", s);
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 10000, true, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\"state\":\"CANCELLED\"") && strstr(s, "\"ranks_ending\":2"), "%s", s);
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job_slurm(&j, 10000, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, " JobState=COMPLETING "), "%s", s);
  ty_buf_close(&b);
  j.ranks_ending = 0;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_squeue(&j, 1, 10000, false, "%t", true, &b), 0);
  cr_assert_str_eq(take(&b), "CA\n");
  ty_buf_close(&b);
}

Test(format, jobs_json_one_record_per_line) {
  ty_cli_jobinfo js[2] = {sample_job(), sample_job()};
  js[1].id = 43;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs(js, 2, 0, true, true, &b), 0);
  char *s = take(&b);
  static const char head[] = "[\n{\"id\":42,\"name\":\"tr\\\"ain\",\"user\":\"alice\","
                             "\"queue\":\"default\",\"priority\":10,\"state\":\"RUNNING\"";
  cr_assert(strncmp(s, head, sizeof head - 1) == 0, "%s", s);
  cr_assert(strstr(s, "\"nodes\":[\"n1\",\"n2\"]"), "%s", s);
  cr_assert(strstr(s, "\"argv\":[\"sh\",\"-c\",\"echo \\\"hi\\\"; exit 3\"]"), "%s", s);
  cr_assert(strstr(s, "},\n{\"id\":43,"), "%s", s);
  cr_assert(strstr(s, "}\n]\n"), "%s", s);
  ty_buf_close(&b);

  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs(NULL, 0, 0, true, true, &b), 0);
  cr_assert_str_eq(take(&b), "[]\n");
  ty_buf_close(&b);
}

Test(format, show_text_and_json) {
  setenv("TZ", "UTC", 1);
  ty_cli_jobinfo j = sample_job();
  j.state = TY_JOB_FAILED, j.exit_code = 3, j.end_ms = 9000;
  j.reason = "rank 1 exited with code 3";
  ty_cli_event ev[] = {{1000, 0, TY_JOB_PENDING, "submitted"},
                       {2000, TY_JOB_PENDING, TY_JOB_RUNNING, "placed on n1,n2"},
                       {9000, TY_JOB_RUNNING, TY_JOB_FAILED, "rank 1 exited with code 3"}};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, ev, 3, 0, false, &b), 0);
  char *s = take(&b);
  cr_assert(strstr(s, "Job 42 (tr\"ain)\n"), "%s", s);
  cr_assert(strstr(s, "  state:       FAILED\n"), "%s", s);
  cr_assert(strstr(s, "  command:     sh -c 'echo \"hi\"; exit 3'\n"), "%s", s);
  cr_assert(strstr(s, "  elapsed:     0:07\n"), "%s", s);
  cr_assert(strstr(s, "Events:\nTIME                 FROM     TO       REASON\n"
                      "1970-01-01 00:00:01  -        PENDING  submitted\n"),
            "%s", s);
  ty_buf_close(&b);

  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, ev, 3, 0, true, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\"state\":\"FAILED\""), "%s", s);
  cr_assert(strstr(s, "\"events\":[{\"time_ms\":1000,\"from_state\":\"\",\"to_state\":\"PENDING\""),
            "%s", s);
  cr_assert(strstr(s, "\"exit_code\":3"), "%s", s);
  ty_buf_close(&b);
}

/* A job pending again after a requeue shows its start as the last run's,
 * not as if it had started. */
Test(format, show_of_a_requeued_pending_job_names_the_last_runs_start) {
  setenv("TZ", "UTC", 1);
  ty_cli_jobinfo j = sample_job();
  j.state = TY_JOB_PENDING, j.reason = "requeued as asked (trainctl job requeue)";
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, false, &b), 0);
  char *s = take(&b);
  cr_assert(strstr(s, "  started:     - (pending again; its last run started 1970-01-01 "
                      "00:00:02)\n"),
            "%s", s);
  ty_buf_close(&b);
}

/* show -o: scontrol show job -o's line, Slurm's names, for scripts that
 * grep JobState= or NodeList=. */
Test(format, show_oneliner_as_scontrols) {
  setenv("TZ", "UTC", 1);
  ty_cli_jobinfo j = sample_job();
  j.state = TY_JOB_FAILED, j.exit_code = 3, j.end_ms = 9000, j.reason = "rank 1 exited";
  j.spec.has_uid = true, j.spec.uid = 1000, j.spec.gid = 0, j.spec.time_limit_s = 90061;
  j.spec.tasks_per_node = 2, j.spec.cpus_per_task = 3;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job_slurm(&j, 0, &b), 0);
  cr_assert_str_eq(take(&b),
                   "JobId=42 JobName=tr\"ain UserId=alice(1000) GroupId=root(0) Priority=10 "
                   "JobState=FAILED Reason=None Dependency=(null) Requeue=1 Restarts=0 "
                   "ExitCode=3:0 RunTime=00:00:07 TimeLimit=1-01:01:01 "
                   "SubmitTime=1970-01-01T00:00:01 StartTime=1970-01-01T00:00:02 "
                   "EndTime=1970-01-01T00:00:09 Partition=default NodeList=n[1-2] NumNodes=2 "
                   "NumCPUs=12 NumTasks=4 CPUs/Task=3 WorkDir=/w\n");
  ty_buf_close(&b);
  j.state = TY_JOB_PENDING, j.end_ms = j.start_ms = 0, j.nnodes = 0, j.reason = "";
  j.array_job_id = 40, j.array_task_id = 2, j.spec.time_limit_s = 0;
  j.spec.gid = 4242424; /* in no /etc/group: the number alone, as scontrol prints it */
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job_slurm(&j, 0, &b), 0);
  char *s = take(&b);
  cr_assert(strstr(s, "JobId=42 ArrayJobId=40 ArrayTaskId=2 JobName="), "%s", s);
  cr_assert(strstr(s, " GroupId=(4242424) "), "%s", s);
  cr_assert(strstr(s, " JobState=PENDING Reason=None ") && strstr(s, " ExitCode=0:0 "), "%s", s);
  ty_buf_close(&b);
  /* Each value one word, as scontrol's: the reason's name, the
   * dependency's spaces as '_'. */
  j.reason = "Dependency: waits for job 5 (afterok)", j.dependency = "afterok:5(3 of 3 ended)";
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job_slurm(&j, 0, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, " Reason=Dependency Dependency=afterok:5(3_of_3_ended) "), "%s", s);
  cr_assert(strstr(s, " TimeLimit=UNLIMITED ") && strstr(s, " StartTime=Unknown "), "%s", s);
  cr_assert(strstr(s, " NodeList=(null) "), "%s", s);
  ty_buf_close(&b);
}

/* show says when a job holds whole nodes (--exclusive), in text and JSON;
 * ls has a field for it. */
Test(format, show_and_ls_say_exclusive) {
  ty_cli_jobinfo j = sample_job();
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, false, &b), 0);
  char *s = take(&b);
  cr_assert(!strstr(s, "exclusive:"), "%s", s);
  ty_buf_close(&b);
  j.spec.exclusive = true;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, false, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "  exclusive:   yes: whole nodes, with all their CPUs, GPUs and memory\n"),
            "%s", s);
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, true, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\"exclusive\":true"), "%s", s);
  ty_buf_close(&b);
  ty_cli_format f;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_parse_format("--format", "id,exclusive", ty_cli_ls_fields, ty_cli_n_ls_fields,
                                   &f, err, sizeof err),
               0, "%s", err);
  cr_assert_str_eq(ty_cli_ls_fields[f.idx[1]].name, "exclusive");
}

/* show's requeue policy says no-requeue for a job submitted with
 * --no-requeue (JSON: no_requeue), and a final NODE_FAIL has an exit code. */
Test(format, show_says_no_requeue) {
  ty_cli_jobinfo j = sample_job();
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, false, &b), 0);
  char *s = take(&b);
  cr_assert(strstr(s, "requeue policy: on preemption or node loss only\n"), "%s", s);
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, true, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\"no_requeue\":false"), "%s", s);
  ty_buf_close(&b);
  j.spec.no_requeue = true;
  j.state = TY_JOB_NODE_FAIL, j.reason = "node w1 DOWN: lost; not requeued (--no-requeue)";
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, false, &b), 0);
  s = take(&b);
  cr_assert(strstr(s,
                   "requeue policy: no-requeue (--no-requeue): never requeued; node loss ends it "
                   "NODE_FAIL, preemption PREEMPTED\n"),
            "%s", s);
  cr_assert(strstr(s, "exit code:   0\n"), "a final NODE_FAIL is an end: %s", s);
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, true, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\"no_requeue\":true"), "%s", s);
  cr_assert(strstr(s, "\"state\":\"NODE_FAIL\""), "%s", s);
  ty_buf_close(&b);
}

/* A held job that ended keeps its hold for a requeue: show does not say
 * that a release lets it start (it cannot: it ended). */
Test(format, show_of_an_ended_held_job_says_the_hold_waits_for_a_requeue) {
  ty_cli_jobinfo j = sample_job();
  j.held = true;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, false, &b), 0);
  char *s = take(&b);
  cr_assert(strstr(s, "held:        yes (trainctl job release ID lets it start)\n"), "%s", s);
  ty_buf_close(&b);
  j.state = TY_JOB_CANCELLED, j.reason = "cancelled by root";
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, false, &b), 0);
  s = take(&b);
  cr_assert(!strstr(s, "lets it start"), "%s", s);
  cr_assert(
      strstr(s,
             "held:        yes (kept for a requeue, which waits until trainctl job release ID)\n"),
      "%s", s);
  ty_buf_close(&b);
}

/* show prints -w and -x as hostlists (JSON: the names); ls has reqnodes
 * and excnodes (squeue's %n and %x). */
Test(format, show_and_ls_print_the_node_lists) {
  ty_cli_jobinfo j = sample_job();
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, false, &b), 0);
  char *s = take(&b);
  cr_assert(!strstr(s, "nodelist:") && !strstr(s, "exclude:"), "%s", s);
  ty_buf_close(&b);
  static char *req[] = {"w1", "w2", "w3"}, *exc[] = {"gpu07"};
  j.spec.req_nodes = req, j.spec.n_req_nodes = 3;
  j.spec.exc_nodes = exc, j.spec.n_exc_nodes = 1;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, false, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "  nodelist:    w[1-3] (required, -w)\n"), "%s", s);
  cr_assert(strstr(s, "  exclude:     gpu07 (never used, -x)\n"), "%s", s);
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, true, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\"required_nodes\":[\"w1\",\"w2\",\"w3\"],\"excluded_nodes\":[\"gpu07\"]"),
            "%s", s);
  ty_buf_close(&b);
  ty_cli_format f;
  char err[TY_ERR_LEN] = "", *fmt = NULL;
  cr_assert_eq(ty_cli_ls_squeue_format("%i %n %x", &fmt, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(fmt, "id,reqnodes,excnodes");
  free(fmt);
  cr_assert_eq(ty_cli_parse_format("--format", "id,ReqNodes,ExcNodes", ty_cli_ls_fields,
                                   ty_cli_n_ls_fields, &f, err, sizeof err),
               0, "%s", err);
  ty_cli_table_opts o = {.noheader = false};
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_table(&j, 1, 0, false, &f, &o, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "REQ_NODES") && strstr(s, "EXC_NODES") && strstr(s, "w[1-3]") &&
                strstr(s, "gpu07"),
            "%s", s);
  ty_buf_close(&b);
}

/* Issue 14: user-chosen text never reaches the terminal as control bytes
 * (shown $'...'-quoted, as ls does), a running job has no exit code yet,
 * and the --signal setting is shown. */
Test(format, show_escapes_controls_and_omits_a_running_exit_code) {
  static char *env[] = {"A=\x1b[31mred", "B=plain"};
  static char *argv[] = {"echo", "\x1b]0;title\x07", "it's"};
  ty_cli_jobinfo j = sample_job();
  j.spec.name = "n\x1b[2Jame";
  j.spec.env = env, j.spec.envc = 2;
  j.spec.argv = argv, j.spec.argc = 3;
  j.reason = "bad \xc2\x9b byte \xff";
  j.spec.warn_signal = 10, j.spec.warn_before_s = 120, j.spec.time_limit_s = 600;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, false, &b), 0);
  char *s = take(&b);
  cr_assert_null(strchr(s, 0x1b), "%s", s);
  cr_assert(strstr(s, "Job 42 ($'n\\033[2Jame')\n"), "%s", s);
  cr_assert(strstr(s, "  env:         $'A=\\033[31mred'\n               B=plain\n"), "%s", s);
  cr_assert(strstr(s, "  command:     echo $'\\033]0;title\\a' 'it'\\''s'\n"), "%s", s);
  cr_assert(strstr(s, "  reason:      $'bad \\302\\233 byte \\377'\n"), "%s", s);
  cr_assert(strstr(s, "  signal:      SIGUSR1 120 s before the time limit (--signal)\n"), "%s", s);
  cr_assert_null(strstr(s, "exit code:"), "a running job has no exit code: %s", s);
  ty_buf_close(&b);
  j.state = TY_JOB_CANCELLED, j.term_signal = 15;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_job(&j, NULL, 0, 0, false, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "  exit code:   0 (signal 15)\n"), "%s", s);
  ty_buf_close(&b);
}

Test(format, nodes_table_and_json) {
  ty_cli_node ns[2] = {{.name = "n1",
                        .io_addr = "127.0.0.1:7820",
                        .reason = "",
                        .topology = "",
                        .state = 1,
                        .cpus = 4,
                        .cpus_used = 2,
                        .gpus = 8,
                        .gpus_used = 0,
                        .running_tasks = 2,
                        .memory = 16ull << 30,
                        .last_heartbeat_ms = 10000},
                       {.name = "n2",
                        .io_addr = "",
                        .reason = "missed heartbeats",
                        .topology = "",
                        .state = 2,
                        .cpus = 64,
                        .memory = 512ull << 30}};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_nodes(ns, 2, 13500, false, &b), 0);
  cr_assert_str_eq(take(&b),
                   "NAME  STATE  CPUS  GPUS   MEM  TASKS  HEARTBEAT  REASON\n"
                   "n1    UP      2/4   0/8   16G      2     3s ago\n"
                   "n2    DOWN   0/64   0/0  512G      0          -  missed heartbeats\n");
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_nodes(ns, 2, 0, true, &b), 0);
  char *s = take(&b);
  cr_assert(strstr(s, "[\n{\"name\":\"n1\",\"state\":\"UP\",\"cpus\":4,\"cpus_used\":2"), "%s", s);
  cr_assert(strstr(s, "},\n{\"name\":\"n2\",\"state\":\"DOWN\""), "%s", s);
  ty_buf_close(&b);
}

/* sinfo -o's lines, as scripts read them: idle nodes share a line with
 * their names folded (-N: one each) and their CPUs summed, states as sinfo
 * names them, -t keeps only those in its states. */
Test(format, nodes_as_sinfo_prints_them) {
  ty_cli_node ns[4] = {
      {.name = "n1", .reason = "", .state = TY_NODE_UP, .cpus = 4, .memory = 8ull << 30},
      {.name = "n2", .reason = "", .state = TY_NODE_UP, .cpus = 4, .memory = 8ull << 30},
      {.name = "n3", .reason = "", .state = TY_NODE_UP, .cpus = 4, .cpus_used = 1, .gpus = 2},
      {.name = "n4", .reason = "maint", .state = TY_NODE_DRAINED, .cpus = 4}};
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_nodes_sinfo(ns, 4, "%N|%.4t|%c|%C|%m|%G|%E|%D", false, false, &b), 0);
  cr_assert_str_eq(take(&b), "NODELIST|STAT|CPUS|CPUS(A/I/O/T)|MEMORY|GRES|REASON|NODES\n"
                             "n[1-2]|idle|4|0/8/0/8|8192|(null)|none|2\n"
                             "n3| mix|4|1/3/0/4|0|gpu:2|none|1\n"
                             "n4|drai|4|0/0/4/4|0|(null)|maint|1\n");
  ty_buf_close(&b);
  /* %C adds up the line's nodes, as sinfo's: `sinfo -h -o %C` is the
   * cluster's allocated/idle/other/total on one line, whatever each node
   * holds; -N gives each node's. */
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_nodes_sinfo(ns, 4, "%C", false, true, &b), 0);
  cr_assert_str_eq(take(&b), "1/11/4/16\n");
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_nodes_sinfo(ns, 4, "%D %T %C", false, true, &b), 0);
  cr_assert_str_eq(take(&b), "2 idle 0/8/0/8\n1 mixed 1/3/0/4\n1 drained 0/0/4/4\n");
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_nodes_sinfo(ns, 2, "%n %C", true, true, &b), 0);
  cr_assert_str_eq(take(&b), "n1 0/4/0/4\nn2 0/4/0/4\n");
  ty_buf_close(&b);
  unsigned idle = 0;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_cli_sinfo_states("IDLE,drain", &idle, err, sizeof err), 0, "%s", err);
  ty_buf_init(&b);
  ty_cli_node mixed = ns[2];
  cr_assert_eq(ty_cli_nodes_in_states(ns, 4, idle), 3u);
  cr_assert_str_eq(ns[3].name, mixed.name, "the node -t leaves out goes after the others");
  cr_assert_eq(ty_cli_render_nodes_sinfo(ns, 3, "%n %T", true, true, &b), 0);
  cr_assert_str_eq(take(&b), "n1 idle\nn2 idle\nn4 drained\n");
  ty_buf_close(&b);
  cr_assert_eq(ty_cli_sinfo_states("idle,busy", &idle, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "unknown node state \"busy\""), "%s", err);
  ty_buf_init(&b); /* a width beyond reason is capped, not allocated */
  cr_assert_eq(ty_cli_render_nodes_sinfo(ns, 1, "%99999999999999999999N|", true, true, &b), 0);
  cr_assert_eq(b.len, TY_CLI_CELL_MAX_WIDTH + 2);
  ty_buf_close(&b);
  cr_assert_eq(ty_cli_sinfo_check("%N %P", err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "sinfo's %P has no counterpart"), "%s", err);
}

/* sinfo -R: nodes out of service only, an operator's drain as its words
 * and its user, a loss with the actor of the event into DOWN. */
Test(format, node_reasons_as_sinfo_R_prints_them) {
  ty_cli_node ns[3] = {
      {.name = "n1", .reason = "drained by alice: bad disk", .state = TY_NODE_DRAINED},
      {.name = "n2", .reason = "no heartbeat for 30 s", .state = TY_NODE_DOWN},
      {.name = "n3", .reason = "", .state = TY_NODE_UP}};
  ty_cli_node_event e1[] = {
      {.time_ms = 1000, .to = TY_NODE_UP, .action = "register", .actor = "node:n1"},
      {.time_ms = 2000, .to = TY_NODE_DRAINING, .action = "drain", .actor = "user:alice"},
      {.time_ms = 3000, .to = TY_NODE_DRAINED, .action = "drained", .actor = "controller"}};
  ty_cli_node_event e2[] = {
      {.time_ms = 4000, .to = TY_NODE_DOWN, .action = "down", .actor = "controller"}};
  cr_assert(ty_cli_node_out_of_service(&ns[0]) && ty_cli_node_out_of_service(&ns[1]));
  cr_assert(!ty_cli_node_out_of_service(&ns[2]));
  ty_cli_node_reason rs[] = {{&ns[0], e1, 3}, {&ns[1], e2, 1}, {&ns[1], NULL, 0}};
  char t2[32], t4[32];
  ty_cli_format_time(2000, 'T', t2, sizeof t2);
  ty_cli_format_time(4000, 'T', t4, sizeof t4);
  char want[512];
  snprintf(want, sizeof want,
           "REASON               USER      TIMESTAMP           NODELIST\n"
           "bad disk             alice     %-19s n1\n"
           "no heartbeat for 30 s controller %-19s n2\n"
           "no heartbeat for 30 s Unknown   Unknown             n2\n",
           t2, t4);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_node_reasons(rs, 3, false, &b), 0);
  cr_assert_str_eq(take(&b), want);
  ty_buf_close(&b);
}

Test(format, cancel_results_and_submitted) {
  ty_cancel_result rs[] = {
      {.job_id = 5, .status = 0, .message = ""},
      {.job_id = 7, .status = TY_ESTATE, .message = "job 7 is already COMPLETED"},
      {.job_id = 9, .status = TY_ENOTFOUND, .message = ""}};
  ty_buf out, errs;
  ty_buf_init(&out), ty_buf_init(&errs);
  cr_assert_eq(ty_cli_render_cancel(rs, 3, false, &out, &errs), 0);
  cr_assert_str_eq(take(&out), "Cancelled job 5\n");
  cr_assert_str_eq(take(&errs),
                   "trainctl: job 7 is already COMPLETED\ntrainctl: job 9: not found\n");
  ty_buf_close(&out), ty_buf_close(&errs);
  ty_buf_init(&out), ty_buf_init(&errs);
  cr_assert_eq(ty_cli_render_cancel(rs, 1, true, &out, &errs), 0);
  cr_assert_str_eq(
      take(&out), "[\n{\"id\":5,\"cancelled\":true,\"status\":0,\"message\":\"\",\"jobs\":0}\n]\n");
  ty_buf_close(&out), ty_buf_close(&errs);

  ty_buf_init(&out);
  ty_cli_render_submitted(42, 0, false, false, &out),
      ty_cli_render_submitted(42, 0, true, false, &out);
  ty_cli_render_submitted(42, 0, true, true, &out);
  ty_cli_render_submitted(50, 1000, false, false, &out);
  ty_cli_render_submitted(50, 1000, false, true, &out);
  cr_assert_str_eq(take(&out), "Submitted batch job 42\n42\n{\"id\":42}\n"
                               "Submitted batch job 50\n"
                               "{\"id\":50,\"array_tasks\":1000}\n");
  ty_buf_close(&out);
}

Test(format, cancel_of_arrays_and_elements) {
  ty_cancel_result rs[] = {{.job_id = 50, .cancelled = 998},
                           {.job_id = 50, .has_task = true, .task = 7, .cancelled = 1},
                           {.job_id = 60, .has_task = true, .task = 3, .status = TY_ENOTFOUND}};
  ty_buf out, errs;
  ty_buf_init(&out), ty_buf_init(&errs);
  cr_assert_eq(ty_cli_render_cancel(rs, 3, false, &out, &errs), 0);
  cr_assert_str_eq(take(&out), "Cancelled array 50 (998 jobs)\nCancelled job 50_7\n");
  cr_assert_str_eq(take(&errs), "trainctl: job 60_3: not found\n");
  ty_buf_close(&out), ty_buf_close(&errs);
  ty_buf_init(&out), ty_buf_init(&errs);
  cr_assert_eq(ty_cli_render_cancel(rs + 1, 1, true, &out, &errs), 0);
  cr_assert(strstr(take(&out), "{\"id\":50,\"task\":7,\"cancelled\":true,\"status\":0,"
                               "\"message\":\"\",\"jobs\":1}"));
  ty_buf_close(&out), ty_buf_close(&errs);
}

/* Pending elements of one array share a line unless --array; running
 * ones and other jobs keep theirs. */
Test(format, ls_folds_pending_array_elements) {
  ty_cli_jobinfo js[6];
  for (int i = 0; i < 6; i++) {
    js[i] = sample_job();
    js[i].id = 50 + (uint64_t)i, js[i].array_job_id = 50, js[i].array_task_id = (uint32_t)i * 2;
    js[i].state = TY_JOB_PENDING, js[i].start_ms = 0, js[i].nnodes = 0;
  }
  js[0].state = TY_JOB_RUNNING, js[0].start_ms = 2000, js[0].nnodes = 2;
  js[4].array_task_id = 9;
  js[5].array_job_id = 0; /* a plain job after the array */
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs(js, 6, 2000, false, true, &b), 0);
  char *s = take(&b);
  cr_assert(strstr(s, "  50_0  tr"), "%s", s);
  cr_assert(strstr(s, "\n50_[2,4,6,9]  tr"), "%s", s);
  cr_assert(strstr(s, "  55  tr"), "%s", s);
  cr_assert_eq(strstr(s, "50_2 "), NULL, "%s", s);
  ty_buf_close(&b);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs(js, 6, 2000, false, false, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\n50_4  ") && strstr(s, "\n50_9  "), "%s", s);
  cr_assert_eq(strstr(s, "["), NULL, "%s", s);
  ty_buf_close(&b);
  /* Listed descending (--sort -id), they fold to the same line. */
  ty_cli_jobinfo down[4] = {js[4], js[3], js[2], js[1]};
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs(down, 4, 2000, false, true, &b), 0);
  s = take(&b);
  cr_assert(strstr(s, "\n50_[2,4,6,9]  tr"), "%s", s);
  ty_buf_close(&b);
}

/* squeue's %m (memory per node), %c (CPUs per node), %Z (working
 * directory), %U (uid) and, with no counterpart, %a and %q as squeue
 * prints them unset; %o (not in a listing) is refused naming show. */
Test(format, squeue_resource_and_owner_codes) {
  ty_cli_jobinfo j = sample_job();
  j.spec.mem_per_node = 4ull << 30, j.spec.tasks_per_node = 2, j.spec.cpus_per_task = 3;
  j.spec.has_uid = true, j.spec.uid = 1001;
  char err[TY_ERR_LEN] = "", *fmt = NULL;
  const char *tmpl = "%i|%m|%c|%Z|%U|%a|%q";
  cr_assert_eq(ty_cli_ls_squeue_format(tmpl, &fmt, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(fmt, "id,mem,mincpus,workdir,uid");
  free(fmt);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_squeue(&j, 1, 10000, false, tmpl, false, &b), 0);
  cr_assert_str_eq(take(&b), "JOBID|MIN_MEMORY|MIN_CPUS|WORK_DIR|UID|ACCOUNT|QOS\n"
                             "42|4G|6|/w|1001|(null)|(null)\n");
  ty_buf_close(&b);
  /* Unset: no memory limit, no cwd (or another user's), no recorded uid. */
  j.spec.mem_per_node = 0, j.spec.cwd = NULL, j.spec.has_uid = false;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_squeue(&j, 1, 10000, false, "%m %Z %U", true, &b), 0);
  cr_assert_str_eq(take(&b), "0 - -\n");
  ty_buf_close(&b);
  cr_assert_eq(ty_cli_ls_squeue_format("%a %q", &fmt, err, sizeof err), 0, "%s", err);
  free(fmt);
  cr_assert_eq(ty_cli_ls_squeue_format("%i %.20o", &fmt, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "squeue's %o (the command) is not in a listing here: trainctl show ID"),
            "%s", err);
}

/* squeue's %e (the end field): a running job's expected end, its start
 * plus its time limit, Unknown without one; an ended job's end. */
Test(format, end_of_a_running_job_is_its_expected_end) {
  ty_cli_jobinfo j = sample_job(); /* running since 2000 ms */
  j.spec.time_limit_s = 600;
  char want[64], line[96];
  ty_cli_format_time(2000 + 600 * 1000, 'T', want, sizeof want);
  snprintf(line, sizeof line, "42 %s\n", want);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_squeue(&j, 1, 10000, false, "%i %e", true, &b), 0);
  cr_assert_str_eq(take(&b), line);
  ty_buf_close(&b);
  j.spec.time_limit_s = 0;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_squeue(&j, 1, 10000, false, "%i %e", true, &b), 0);
  cr_assert_str_eq(take(&b), "42 Unknown\n");
  ty_buf_close(&b);
  j.state = TY_JOB_COMPLETED, j.end_ms = 9000, j.spec.time_limit_s = 600;
  ty_cli_format_time(9000, 'T', want, sizeof want);
  snprintf(line, sizeof line, "42 %s\n", want);
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_squeue(&j, 1, 10000, false, "%i %e", true, &b), 0);
  cr_assert_str_eq(take(&b), line);
  ty_buf_close(&b);
}
