/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for cli/history.c under sacct's field names: what sacct
 * prints for CPUTime (the allocation), TotalCPU (the use), CPUTimeRAW,
 * NNodes, NCPUS beside AllocCPUS, as a script that reads sacct's reads
 * them. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_history.h"

static char *take(ty_buf *b) {
  ty_buf_append(b, "", 1);
  return (char *)b->data;
}

static int parse(const char *const *args, ty_cli_history_args *a, char *err) {
  int argc = 0;
  while (args[argc])
    argc++;
  return ty_cli_parse_history(argc, (char **)args, 1800000000000, a, err, TY_ERR_LEN);
}

/* A job that ran 60 s on 2 CPUs of n1 and n2 and used 0.25 s of CPU. */
static ty_cli_record idle_job(uint64_t id) {
  ty_cli_record r = {.id = id,
                     .state = TY_JOB_COMPLETED,
                     .start_ms = 1000,
                     .end_ms = 61000,
                     .cpus = 2,
                     .cpu_s = 0.25,
                     .measured = true};
  r.name = strdup("idle"), r.user = strdup("alice"), r.queue = strdup(""), r.reason = strdup("");
  r.nodes = strdup("n1,n2,n1");
  return r;
}

/* Renders rs under -P and the format; the caller frees the text. */
static char *render(ty_cli_record *rs, size_t n, const char *format) {
  ty_cli_history_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse((const char *[]){"-P", "-o", format, NULL}, &a, err), 0, "%s: %s", format,
               err);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_history(rs, n, &a, 0, 0, &b), 0);
  ty_cli_history_args_close(&a);
  return take(&b);
}

/* sacct's CPUTime is Elapsed x AllocCPUS (CPUTimeRAW its seconds), its
 * TotalCPU the CPU time used, to the millisecond; NCPUS and AllocCPUS
 * both name the CPUs; NNodes counts the nodes. history's own cputime
 * stays the use. Once CPUTime printed the use (00:00:00 for a job that
 * slept on 2 CPUs for a minute) and the other names were refused. */
Test(history_sacct, cputime_is_the_allocation_totalcpu_the_use) {
  ty_cli_record *rs = calloc(1, sizeof *rs);
  rs[0] = idle_job(7);
  rs[0].ranks = calloc(1, sizeof *rs[0].ranks);
  rs[0].ranks[0] = (ty_cli_rank_record){.run = 1,
                                        .node = strdup("n1"),
                                        .state = 3,
                                        .start_ms = 1000,
                                        .end_ms = 31000,
                                        .cpus = 1,
                                        .cpu_s = 0.125,
                                        .measured = true};
  rs[0].nranks = 1;
  char *t = render(rs, 1, "JobID,Elapsed,AllocCPUS,NCPUS,CPUTime,CPUTimeRAW,TotalCPU,NNodes");
  cr_assert_str_eq(t, "JobID|Elapsed|AllocCPUS|NCPUS|CPUTime|CPUTimeRAW|TotalCPU|NNodes\n"
                      "7|00:01:00|2|2|00:02:00|120|00:00.250|2\n"
                      "7.0|00:00:30|1|1|00:00:30|30|00:00.125|1\n");
  free(t);
  t = render(rs, 1, "id,cputime");
  cr_assert_str_eq(t, "ID|CPUTIME\n7|0:00\n7.0|0:00\n", "history's own cputime is the use");
  free(t);
  rs[0].cpu_s = 3725.5; /* an hour on: sacct's [D-]HH:MM:SS */
  t = render(rs, 1, "JobID,TotalCPU");
  cr_assert_str_eq(t, "JobID|TotalCPU\n7|01:02:05\n7.0|00:00.125\n");
  free(t);
  ty_cli_records_free(rs, 1);
}

/* Where sacct prints a word, a script that reads sacct's finds it: Reason
 * "None" for a job with none, Start and End "Unknown" before they are;
 * history's own names keep "" and "-". Once they were "" and "-" in both. */
Test(history_sacct, unknown_times_and_no_reason_as_saccts) {
  ty_cli_record *rs = calloc(2, sizeof *rs);
  rs[0] = idle_job(7), rs[1] = idle_job(8);
  rs[1].state = TY_JOB_PENDING, rs[1].start_ms = rs[1].end_ms = 0;
  free(rs[1].reason), rs[1].reason = strdup("Priority");
  char *t = render(rs, 2, "JobID,Reason,Start,End");
  cr_assert(strstr(t, "\n7|None|") && !strstr(t, "7|None|Unknown"), "%s", t);
  cr_assert(strstr(t, "\n8|Priority|Unknown|Unknown\n"), "%s", t);
  free(t);
  t = render(rs, 2, "id,reason,start,end");
  cr_assert(strstr(t, "\n7||") && strstr(t, "\n8|Priority|-|-\n"), "%s", t);
  free(t);
  ty_cli_records_free(rs, 2);
}

/* squeue's %Q is a whole number (8965); %p and ls's priority keep the
 * fraction. Once %Q printed 8965.3607. */
Test(history_sacct, squeue_priority_is_whole) {
  ty_cli_ls_args a;
  char err[TY_ERR_LEN] = "";
  char *args[] = {"-o", "%i %Q", NULL};
  cr_assert_eq(ty_cli_parse_ls(2, args, &a, err, sizeof err), 0, "%s", err);
  ty_cli_jobinfo j = {.id = 3, .state = TY_JOB_PENDING, .reason = "", .priority = 8965.3607};
  j.spec.name = "t", j.spec.user = "alice", j.spec.queue = "";
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_cli_render_jobs_squeue(&j, 1, 0, false, a.squeue_format, true, &b), 0);
  cr_assert_str_eq(take(&b), "3 8965\n");
  ty_buf_close(&b);
  ty_cli_ls_args_close(&a);
}

/* sacct -u and squeue -u take lists and uids, and sacct refuses a user it
 * does not know. Once -u root,nobody and -u 0 matched nothing (one user
 * of that name, none named "0"), and a mistyped name listed nothing with
 * exit 0. root (uid 0) and nobody are on every host. */
Test(history_sacct, user_lists_and_uids) {
  ty_cli_history_args a;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(parse((const char *[]){"-u", "root,0", NULL}, &a, err), 0, "%s", err);
  cr_assert_eq(a.nusers, 2u);
  cr_assert_eq(ty_cli_resolve_users("--user", a.users, &a.nusers, &a.user, err, sizeof err), 0,
               "%s", err);
  cr_assert_eq(a.nusers, 1u, "uid 0 is root, named once");
  cr_assert_str_eq(a.user, "root");
  ty_cli_history_args_close(&a);
  cr_assert_eq(parse((const char *[]){"-u", "root,nobody", NULL}, &a, err), 0, "%s", err);
  cr_assert_eq(ty_cli_resolve_users("--user", a.users, &a.nusers, &a.user, err, sizeof err), 0);
  cr_assert_null(a.user, "several users: no one user for the controller");
  ty_cli_history_args_close(&a);
  cr_assert_eq(parse((const char *[]){"-u", "0", NULL}, &a, err), 0, "%s", err);
  cr_assert_eq(ty_cli_resolve_users("--user", a.users, &a.nusers, &a.user, err, sizeof err), 0);
  cr_assert_str_eq(a.user, "root");
  ty_cli_history_args_close(&a);
  cr_assert_eq(parse((const char *[]){"-u", "root,nosuchuser-ty", NULL}, &a, err), 0, "%s", err);
  cr_assert_eq(ty_cli_resolve_users("--user", a.users, &a.nusers, &a.user, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "--user: \"nosuchuser-ty\" is not a user here"), "%s", err);
  ty_cli_history_args_close(&a);
  cr_assert_eq(parse((const char *[]){"-u", "root", "-a", NULL}, &a, err), TY_EINVAL);
  cr_assert(strstr(err, "--user and --all-users exclude each other"), "%s", err);
  /* ls -u picks the users' jobs from the answer; cancel -u refuses alike */
  ty_cli_ls_args l;
  char *args[] = {"-u", "root,nobody", NULL};
  cr_assert_eq(ty_cli_parse_ls(2, args, &l, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_cli_resolve_users("--user", l.users, &l.nusers, &l.user, err, sizeof err), 0);
  ty_cli_jobinfo *js = calloc(3, sizeof *js);
  const char *owners[] = {"root", "alice", "nobody"};
  for (size_t i = 0; i < 3; i++) {
    js[i].id = i + 1;
    js[i].spec.user = strdup(owners[i]);
  }
  size_t n = 3;
  ty_cli_ls_select(js, &n, &l);
  cr_assert(n == 2 && js[0].id == 1 && js[1].id == 3, "%zu", n);
  ty_cli_jobinfos_free(js, n);
  ty_cli_ls_args_close(&l);
  ty_cli_cancel_args c;
  char *cargs[] = {"-u", "99999999", NULL};
  cr_assert_eq(ty_cli_parse_cancel(2, cargs, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_cli_resolve_users("--user", c.users, &c.nusers, &c.user, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "--user: no user has uid 99999999 here"), "%s", err);
  ty_cli_cancel_args_close(&c);
}
