/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What one trainctl process costs the cluster and itself (issue 20 item 3,
 * the submit loop of issue 15): every command sends exactly one request to
 * the controller (counted by the controller's own
 * trainyard_rpc_requests_total), and trainctl loads only the libraries it
 * needs (the dynamic loader's own report, LD_DEBUG=libs): no libcrypto
 * (lib/auth hashes with Nettle's SHA-256), no OpenBLAS or GLPK run path
 * to search, and no libuv (one request goes through lib/rpc's blocking
 * ty_rpc_sync; logs and attach, which stream, run in trainyard-stream). The cluster authenticates
 * with MUNGE, so every request is signed as in production.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/methods.h"
#include "tests/integration/harness.h"

/* The sum of trainyard_rpc_requests_total over every status of `method`,
 * or over every method when method is NULL. */
static long requests(const it_cluster *c, const char *method) {
  char prefix[128] = "trainyard_rpc_requests_total{method=\"";
  if (method)
    snprintf(prefix, sizeof prefix, "trainyard_rpc_requests_total{method=\"%s\",", method);
  double v = it_metric(c->metrics_port, prefix);
  return isnan(v) ? 0 : (long)v;
}

/* Runs trainctl ARGS and checks it sent one request, of `method`. */
static void one_request(const it_cluster *c, const char *method, const char *const *args) {
  long all = requests(c, NULL), mine = requests(c, method);
  char *out = NULL, *err = NULL;
  int rc = it_trainctl_err(c, &out, &err, args);
  cr_assert_eq(rc, 0, "trainctl %s: exit %d: %s", args[0], rc, err);
  cr_assert_eq(requests(c, NULL) - all, 1, "trainctl %s %s: %ld requests, not one", args[0],
               args[1] ? args[1] : "", requests(c, NULL) - all);
  cr_assert_eq(requests(c, method) - mine, 1, "trainctl %s: the request was not %s", args[0],
               method);
  free(out);
  free(err);
}

Test(ctl, every_command_sends_one_request, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 0, 1); /* no workers: only trainctl talks to traind */
  one_request(&c, TY_M_SUBMIT_JOB,
              (const char *const[]){"submit", "--quiet", "--command", "--", "true", NULL});
  one_request(&c, TY_M_SUBMIT_JOB,
              (const char *const[]){"submit", "--quiet", "--array", "0-99", "--command", "--",
                                    "true", NULL});
  one_request(&c, TY_M_LIST_JOBS, (const char *const[]){"ls", NULL});
  one_request(&c, TY_M_LIST_JOBS, (const char *const[]){"ls", "--array", NULL});
  one_request(&c, TY_M_LIST_JOBS, (const char *const[]){"ls", "--all", "--json", NULL});
  one_request(&c, TY_M_GET_JOB, (const char *const[]){"show", "1", NULL});
  one_request(&c, TY_M_LIST_NODES, (const char *const[]){"nodes", NULL});
  one_request(&c, TY_M_GET_HISTORY, (const char *const[]){"history", "--limit", "5", NULL});
  one_request(&c, TY_M_EXPLAIN_JOB, (const char *const[]){"why", "2", NULL});
  one_request(&c, TY_M_CANCEL_JOB, (const char *const[]){"cancel", "1", NULL});
  it_cluster_stop(&c);
}

/* Whether the ELF program at path names a program interpreter (PT_INTERP):
 * a dynamically linked program, which the dynamic loader starts. */
static bool has_interpreter(const char *path) {
  FILE *f = fopen(path, "rb");
  cr_assert(f, "%s: %s", path, strerror(errno));
  Elf64_Ehdr eh;
  cr_assert_eq(fread(&eh, sizeof eh, 1, f), 1, "%s: no ELF header", path);
  cr_assert(memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64,
            "%s: not a 64-bit ELF file", path);
  bool interp = false;
  for (unsigned i = 0; i < eh.e_phnum && !interp; i++) {
    Elf64_Phdr ph;
    cr_assert_eq(fseek(f, (long)(eh.e_phoff + (uint64_t)i * eh.e_phentsize), SEEK_SET), 0);
    cr_assert_eq(fread(&ph, sizeof ph, 1, f), 1, "%s: program header %u", path, i);
    interp = ph.p_type == PT_INTERP;
  }
  fclose(f);
  return interp;
}

/* The libraries the dynamic loader loads for trainctl ARGS (its
 * LD_DEBUG=libs report, on stderr). */
static char *loaded(const it_cluster *c, const char *const *args) {
  char *out = NULL, *err = NULL;
  cr_assert_eq(setenv("LD_DEBUG", "libs", 1), 0);
  int rc = it_trainctl_err(c, &out, &err, args);
  unsetenv("LD_DEBUG");
  cr_assert_eq(rc, 0, "trainctl %s: exit %d: %s", args[0], rc, err);
  free(out);
  cr_assert(strstr(err, "libc.so"), "LD_DEBUG=libs said nothing of libc: %s", err);
  return err;
}

static void lean(const it_cluster *c, const char *const *args) {
  char *libs = loaded(c, args);
  static const char *const never[] = {"libcrypto", "openblas", "libglpk", "libuv"};
  for (size_t i = 0; i < TY_ARRAY_LEN(never); i++)
    cr_assert(!strstr(libs, never[i]), "trainctl %s loads or searches %s:\n%s", args[0], never[i],
              libs);
  free(libs); /* libmunge: linked from its archive (-Dcli_static_libs) or loaded */
}

/* Built with -Dcli_static (TY_CLI_STATIC, the default outside sanitizer
 * builds) trainctl has no dynamic loader to start and loads nothing;
 * otherwise the loader's report names only what it needs. */
Test(ctl, ls_and_submit_load_no_libcrypto_openblas_or_libuv, .timeout = 60) {
  const char *trainctl = getenv("TY_TRAINCTL");
  cr_assert(trainctl && *trainctl, "TY_TRAINCTL is not set");
  if (TY_CLI_STATIC) {
    cr_assert(!has_interpreter(trainctl), "%s: built with -Dcli_static, yet dynamically linked",
              trainctl);
    return;
  }
  cr_assert(has_interpreter(trainctl), "%s: built without -Dcli_static, yet static", trainctl);
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  lean(&c, (const char *const[]){"submit", "--quiet", "--command", "--", "true", NULL});
  lean(&c, (const char *const[]){"ls", NULL});
  lean(&c, (const char *const[]){"show", "1", NULL});
  lean(&c, (const char *const[]){"cancel", "1", NULL});
  it_cluster_stop(&c);
}

/* A static trainctl still asks glibc's NSS: the controller by host name
 * (getaddrinfo, /etc/hosts) and the caller's own name (getpwuid: history's
 * default is the caller's jobs) as a test user, not only root. */
Test(ctl, names_resolve_through_nss, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  char user[64], addr[64], *out = NULL, *err = NULL;
  uid_t uid;
  gid_t gid;
  it_user_add(user, sizeof user, &uid, &gid);
  snprintf(addr, sizeof addr, "localhost:%d", c.rpc_port);
  int rc = it_run_as(&c, uid, gid, "/", &out, &err,
                     (const char *const[]){getenv("TY_TRAINCTL"), "--controller", addr, "submit",
                                           "--quiet", "--hold", "--command", "--", "true", NULL});
  cr_assert_eq(rc, 0, "trainctl --controller %s submit: exit %d: %s", addr, rc, err);
  free(out), free(err);
  rc = it_run_as(&c, uid, gid, "/", &out, &err,
                 (const char *const[]){getenv("TY_TRAINCTL"), "--controller", addr, "ls",
                                       "--noheader", "--format", "user", NULL});
  cr_assert_eq(rc, 0, "trainctl ls: exit %d: %s", rc, err);
  cr_assert(strstr(out, user), "the job is not listed as %s's: %s", user, out);
  free(out), free(err);
  it_cluster_stop(&c);
}

/* logs and attach run in trainyard-stream with trainctl's command line:
 * its global options (the harness's --controller) reach the controller,
 * the exit codes are trainctl's, and their usage is trainctl's. */
Test(ctl, logs_and_attach_run_in_the_stream_helper, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  static const char *const cmds[] = {"logs", "attach"};
  for (size_t i = 0; i < TY_ARRAY_LEN(cmds); i++) {
    char *out = NULL, *err = NULL;
    long before = requests(&c, TY_M_GET_TASK_LOCATIONS);
    int rc = it_trainctl_err(&c, &out, &err, (const char *const[]){cmds[i], "999", NULL});
    cr_assert_eq(rc, 4, "trainctl %s 999: exit %d, not 4 (unknown job): %s", cmds[i], rc, err);
    cr_assert(strstr(err, "999"), "trainctl %s 999: %s", cmds[i], err);
    cr_assert_eq(requests(&c, TY_M_GET_TASK_LOCATIONS) - before, 1, "trainctl %s", cmds[i]);
    free(out), free(err);
    rc = it_trainctl_err(&c, &out, &err, (const char *const[]){cmds[i], "--help", NULL});
    cr_assert_eq(rc, 0, "trainctl %s --help: exit %d: %s", cmds[i], rc, err);
    cr_assert(strstr(out, "Usage: trainctl"), "trainctl %s --help: %s", cmds[i], out);
    free(out), free(err);
    rc = it_trainctl_err(&c, &out, &err, (const char *const[]){"help", cmds[i], NULL});
    cr_assert_eq(rc, 0, "trainctl help %s: exit %d: %s", cmds[i], rc, err);
    cr_assert(strstr(out, "Usage: trainctl"), "trainctl help %s: %s", cmds[i], out);
    free(out), free(err);
  }
  it_cluster_stop(&c);
}

/* attach to a job that has ended says so at once and points at logs,
 * instead of each worker waiting for a task that never comes. */
Test(ctl, attach_to_an_ended_job_names_its_state_and_logs, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id;
  char msg[256] = "";
  cr_assert_eq(it_submit_sh(cl, "true", "done", &id, msg, sizeof msg), 0, "%s", msg);
  cr_assert_eq(it_wait_state(cl, id, TRAINYARD__JOB_STATE__JOB_COMPLETED, 30000),
               TRAINYARD__JOB_STATE__JOB_COMPLETED);
  char ids[24], logs[48];
  snprintf(ids, sizeof ids, "%" PRIu64, id);
  snprintf(logs, sizeof logs, "trainctl logs %" PRIu64, id);
  char *out = NULL, *err = NULL;
  int rc = it_trainctl_err(&c, &out, &err, (const char *const[]){"attach", ids, NULL});
  cr_assert_eq(rc, 1, "trainctl attach %s: exit %d: %s", ids, rc, err);
  cr_assert(strstr(err, "COMPLETED") && strstr(err, logs), "trainctl attach %s: %s", ids, err);
  free(out), free(err);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* attach to a running batch job (or a --command job), whose output goes to
 * its log, not to a worker's buffer for attach, says so at once and points
 * at trainctl logs -f, instead of every worker refusing "no interactive
 * task" rank by rank. */
static void attach_points_at_logs(const it_cluster *c, ty_rpc_client *cl, uint64_t id,
                                  const char *kind) {
  cr_assert_eq(it_wait_state(cl, id, TRAINYARD__JOB_STATE__JOB_RUNNING, 30000),
               TRAINYARD__JOB_STATE__JOB_RUNNING);
  char ids[24], want[160];
  snprintf(ids, sizeof ids, "%" PRIu64, id);
  snprintf(want, sizeof want, "job %" PRIu64 " is %s: follow its output with trainctl logs -f %s",
           id, kind, ids);
  char *out = NULL, *err = NULL;
  int rc = it_trainctl_err(c, &out, &err, (const char *const[]){"attach", ids, NULL});
  cr_assert_eq(rc, 1, "trainctl attach %s: exit %d: %s", ids, rc, err);
  cr_assert(strstr(err, want), "trainctl attach %s: %s", ids, err);
  free(out), free(err);
  cr_assert_eq(it_trainctl(c, NULL, (const char *const[]){"cancel", ids, NULL}), 0);
}

Test(ctl, attach_to_a_batch_job_points_at_logs, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  ty_rpc_client *cl = it_client(&c);
  uint64_t batch = it_submit_quiet(&c, (const char *const[]){"--wrap", "sleep 60", NULL});
  attach_points_at_logs(&c, cl, batch, "a batch job");
  uint64_t cmd = it_submit_cli(&c, (const char *const[]){"sleep", "60", NULL});
  attach_points_at_logs(&c, cl, cmd, "not an interactive job (rlaunch's)");
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* A job the controller reads back from its store (here: after a restart,
 * which loads only live jobs) still says where its ranks ran, so its logs
 * stay readable on the workers: not "it never ran". */
Test(ctl, logs_of_a_job_read_back_from_the_store, .timeout = 90) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id;
  char msg[256] = "";
  cr_assert_eq(it_submit_sh(cl, "echo hello-from-the-store", "old", &id, msg, sizeof msg), 0, "%s",
               msg);
  cr_assert_eq(it_wait_state(cl, id, TRAINYARD__JOB_STATE__JOB_COMPLETED, 30000),
               TRAINYARD__JOB_STATE__JOB_COMPLETED);
  ty_rpc_client_close(cl);
  it_kill9(&c.traind);
  it_controller_start(&c);
  cl = it_client(&c);
  cr_assert(it_wait_nodes(cl, 1, TRAINYARD__NODE_STATE__NODE_UP, 20000),
            "the worker did not return");
  char ids[24];
  snprintf(ids, sizeof ids, "%" PRIu64, id);
  char *out = NULL, *err = NULL;
  int rc = it_trainctl_err(&c, &out, &err, (const char *const[]){"logs", ids, NULL});
  cr_assert_eq(rc, 0, "trainctl logs %s: exit %d: %s", ids, rc, err);
  cr_assert(strstr(out, "hello-from-the-store"), "trainctl logs %s: [%s] [%s]", ids, out, err);
  free(out), free(err);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* Every program answers --version, as trainctl does (man pages and
 * packaging ask it; a user checks which build runs). */
Test(ctl, the_daemons_answer_version) {
  static const char *const vars[][2] = {{"TY_TRAIND", "traind "},
                                        {"TY_TRAINWORKERD", "trainworkerd "}};
  for (size_t i = 0; i < TY_ARRAY_LEN(vars); i++) {
    char cmd[1200], out[256] = "";
    snprintf(cmd, sizeof cmd, "'%s' --version 2>&1", it_bin(vars[i][0]));
    FILE *p = popen(cmd, "r");
    cr_assert(p, "%s", cmd);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %d: %s", cmd, st, out);
    cr_assert(strncmp(out, vars[i][1], strlen(vars[i][1])) == 0, "%s: %s", cmd, out);
  }
}

/* ---- what trainctl says when the controller is not one ----------------------------- */

/* A listening socket on 127.0.0.1 (nothing accepts on it unless asked). */
static int listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(fd, 8), 0);
  socklen_t alen = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &alen);
  *port = ntohs(a.sin_port);
  return fd;
}

/* Answers the first connection as a web server would: not a frame. */
static void *answer_http(void *arg) {
  int fd = accept(*(int *)arg, NULL, NULL);
  if (fd < 0) return NULL;
  char buf[256];
  (void)!read(fd, buf, sizeof buf);
  static const char reply[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  (void)!write(fd, reply, sizeof reply - 1);
  (void)!read(fd, buf, sizeof buf); /* until trainctl closes */
  close(fd);
  return NULL;
}

/* trainctl ls against ADDR (the later --controller wins): exit code and
 * stderr (heap). */
static int ls_at(const it_cluster *c, const char *addr, char **err) {
  char *out = NULL;
  int rc = it_trainctl_err(
      c, &out, err, (const char *const[]){"--controller", addr, "--timeout", "1", "ls", NULL});
  free(out);
  return rc;
}

Test(ctl, transport_errors_are_named, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  int port;
  char addr[64], want[160], *err = NULL;
  close(listener(&port)); /* nobody listens there now */
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  cr_assert_eq(ls_at(&c, addr, &err), 3, "%s", err);
  snprintf(want, sizeof want, "cannot reach the controller at %s: connection refused", addr);
  cr_assert(strstr(err, want), "expected \"%s\" in: %s", want, err);
  free(err);
  /* A submit retries until --timeout: one line when it starts, one with the
   * count at the end, not one per attempt. */
  char *out = NULL;
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *const[]){"--controller", addr, "--timeout", "4",
                                                     "submit", "--command", "true", NULL}),
               3, "%s", err);
  free(out);
  snprintf(want, sizeof want, "no answer from the controller at %s to SubmitJob", addr);
  int lines = 0;
  for (const char *p = err; (p = strstr(p, want)) != NULL; p++)
    lines++;
  cr_assert_eq(lines, 2, "want the first retry and the final count only: %s", err);
  cr_assert(strstr(err, "within 4 s (") && strstr(err, " attempts): connection refused"), "%s",
            err);
  free(err);

  int lfd = listener(&port); /* accepted by the kernel, never answered */
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  cr_assert_eq(ls_at(&c, addr, &err), 3, "%s", err);
  snprintf(want, sizeof want, "the controller at %s did not answer ListJobs within 1 s", addr);
  cr_assert(strstr(err, want), "expected \"%s\" in: %s", want, err);
  free(err);
  close(lfd);

  lfd = listener(&port);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, answer_http, &lfd), 0);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  int rc = ls_at(&c, addr, &err);
  pthread_join(th, NULL);
  close(lfd);
  cr_assert_eq(rc, 3, "%s", err);
  snprintf(want, sizeof want, "the answer from %s to ListJobs is not a Trainyard frame", addr);
  cr_assert(strstr(err, want), "expected \"%s\" in: %s", want, err);
  free(err);
  it_cluster_stop(&c);
}

/* ---- a Slurm user's habits (issue 15) ------------------------------------------------ */

/* ls -j ID --noheader -o "%l": the job's time limit as squeue prints it. */
static void expect_limit(const it_cluster *c, uint64_t id, const char *want) {
  char ids[32], *out = NULL;
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  it_trainctl_ok(c, &out, (const char *const[]){"ls", "-j", ids, "--noheader", "-o", "%l", NULL});
  cr_assert(strstr(out, want) && !strchr(strchr(out, '\n') + 1, '\n'),
            "job %s's limit: want one line with %s, got: %s", ids, want, out);
  free(out);
}

/* A new queue's name starts with a letter, a digit or '_': "-x" would
 * read as an option (`queue delete -x`), "." and ".." as paths. The
 * controller refuses them at create, naming the name; none is made. */
Test(ctl, queue_create_refuses_names_starting_with_a_dash_or_dot, .timeout = 60) {
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  static const char *const bad[] = {".", "..", "-x", ".hidden"};
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    char *out = NULL, *err = NULL, want[64];
    cr_assert_neq(it_trainctl_err(&c, &out, &err,
                                  (const char *const[]){"queue", "create", "--", bad[i], NULL}),
                  0, "created %s", bad[i]);
    snprintf(want, sizeof want, "name: \"%s\" may not start with '%c'", bad[i], bad[i][0]);
    cr_assert(strstr(err, want), "[%s] lacks [%s]", err, want);
    free(out), free(err);
  }
  char *out = NULL;
  it_trainctl_ok(&c, &out, (const char *const[]){"queue", "ls", "-h", NULL});
  cr_assert(!strstr(out, "\n.") && !strstr(out, "\n-") && out[0] != '.', "%s", out);
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"queue", "create", "_scratch", NULL});
  free(out);
  it_cluster_stop(&c);
}

/* --time UNLIMITED (or INFINITE, or 0) is no limit, or the queue's
 * max_time, as is no --time in a queue without a default_time and a job
 * moved there without a limit; a bare --mem is megabytes; squeue's -j and --name select
 * jobs; only an operator lifts a job's limit with job update. */
Test(ctl, slurm_time_unlimited_mem_megabytes_and_ls_jobs, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 0, 1);
  char *out = NULL, *err = NULL;
  it_trainctl_ok(&c, &out,
                 (const char *const[]){"queue", "create", "short", "--max-time", "2h", NULL});
  free(out);
  uint64_t free_run = it_submit_cli(
      &c, (const char *const[]){"-H", "-t", "UNLIMITED", "--mem", "4000", "--", "true", NULL});
  uint64_t capped = it_submit_cli(
      &c, (const char *const[]){"-H", "-p", "short", "-t", "infinite", "--", "true", NULL});
  uint64_t other =
      it_submit_cli(&c, (const char *const[]){"-H", "-J", "other", "-t", "0", "--", "true", NULL});
  expect_limit(&c, free_run, "UNLIMITED");
  expect_limit(&c, capped, "2:00:00");
  expect_limit(&c, other, "UNLIMITED");
  /* No -t in a queue with a max_time and no default_time: the max_time (as
   * Slurm's MaxTime where DefaultTime is unset); moved into it without a
   * limit, the same. */
  uint64_t asked_none =
      it_submit_cli(&c, (const char *const[]){"-H", "-p", "short", "--", "true", NULL});
  expect_limit(&c, asked_none, "2:00:00");
  uint64_t moved = it_submit_cli(&c, (const char *const[]){"-H", "-t", "0", "--", "true", NULL});
  char ids[64];
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)moved);
  it_trainctl_ok(&c, &out, (const char *const[]){"job", "move", ids, "short", NULL});
  free(out);
  expect_limit(&c, moved, "2:00:00");
  /* Submits refused for their dependency use up no job id. */
  for (int i = 0; i < 2; i++) {
    char *dep_err = NULL;
    cr_assert_neq(it_trainctl_err(&c, &out, &dep_err,
                                  (const char *const[]){"submit", "-H", "-d", "afterok:999999",
                                                        "--command", "--", "true", NULL}),
                  0);
    cr_assert(strstr(dep_err, "999999"), "%s", dep_err);
    free(out), free(dep_err);
  }
  uint64_t next = it_submit_cli(&c, (const char *const[]){"-H", "--", "true", NULL});
  cr_assert_eq(next, moved + 1, "refused submits used up ids: job %llu after %llu",
               (unsigned long long)next, (unsigned long long)moved);
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)free_run);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, "--json", NULL});
  cr_assert(strstr(out, "\"mem_per_node\":4194304000"), "--mem 4000 is 4000M: %s", out);
  free(out);
  it_trainctl_ok(&c, &out,
                 (const char *const[]){"ls", "--name", "other", "--noheader", "-o", "%i", NULL});
  cr_assert_eq(strtoull(out, NULL, 10), other, "ls --name other: %s", out);
  free(out);
  /* squeue -o's text between codes is kept and %r is the reason's name:
   * scripts split on '|' and compare it. */
  it_trainctl_ok(&c, &out,
                 (const char *const[]){"ls", "--name", "other", "-h", "-o", "%i|%t|%.5j|%r", NULL});
  char want[96];
  snprintf(want, sizeof want, "%llu|PD|other|JobHeldUser\n", (unsigned long long)other);
  cr_assert_str_eq(out, want);
  free(out);
  /* squeue -j of a job it does not hold fails (scripts wait on that); a
   * --state of the user's is a filter, which may leave nothing */
  snprintf(want, sizeof want, "%llu", (unsigned long long)other + 100);
  cr_assert_eq(it_trainctl_err(&c, &out, &err, (const char *[]){"ls", "-j", want, NULL}), 4);
  cr_assert(!out[0] && strstr(err, "ls -j: none of these jobs is pending or running"), "%s", err);
  free(out), free(err);
  snprintf(want, sizeof want, "%llu", (unsigned long long)other);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"ls", "-j", want, "-t", "R", NULL}), 0);
  snprintf(want, sizeof want, "%llu", (unsigned long long)other + 100);
  cr_assert_eq(it_trainctl(&c, NULL, (const char *[]){"ls", "-j", want, "-t", "PD,R", NULL}), 0,
               "-t PD,R given is a filter too, though it names the default states");

  char user[64];
  uid_t uid;
  gid_t gid;
  it_user_add(user, sizeof user, &uid, &gid);
  int rc = it_run_as(&c, uid, gid, "/", &out, &err,
                     (const char *const[]){getenv("TY_TRAINCTL"), "submit", "--parsable", "-H",
                                           "-t", "10", "--command", "--", "true", NULL});
  cr_assert_eq(rc, 0, "submit as %s: %s", user, err);
  uint64_t mine = strtoull(out, NULL, 10);
  free(out), free(err);
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)mine);
  rc = it_run_as(&c, uid, gid, "/", &out, &err,
                 (const char *const[]){getenv("TY_TRAINCTL"), "job", "update", ids, "--time",
                                       "UNLIMITED", NULL});
  cr_assert_neq(rc, 0, "a user lifted their job's time limit: %s", out);
  cr_assert(strstr(err, "only operators raise a time limit (600 s -> UNLIMITED)"), "%s", err);
  free(out), free(err);
  expect_limit(&c, mine, "10:00");
  /* The limit it already has: accepted, and no event says 600 s -> 600 s. */
  it_trainctl_ok(&c, &out, (const char *const[]){"job", "update", ids, "--time", "10", NULL});
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, NULL});
  cr_assert_null(strstr(out, "600 s -> 600 s"), "%s", out);
  free(out);
  /* Taking more than the limit has is refused in words. */
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *[]){"job", "update", ids, "--time", "-20", NULL}),
               1);
  cr_assert(strstr(err, "taking 1200 s from job"), "%s", err);
  cr_assert(strstr(err, "--time -1200 s: ") &&
                strstr(err, "'s time limit of 600 s would leave -600 s, and a time limit is at "
                            "least 1 s"),
            "%s", err);
  free(out), free(err);
  it_trainctl_ok(&c, &out,
                 (const char *const[]){"job", "update", ids, "--time", "UNLIMITED", NULL});
  free(out);
  expect_limit(&c, mine, "UNLIMITED");
  it_cluster_stop(&c);
}

/* Job id's "STATE|EXIT|reason" line of history -j ID -P. */
static void history_line(const it_cluster *c, uint64_t id, const char *const *extra, char **out) {
  char ids[32];
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  const char *argv[16] = {"history", "-j", ids, "-n", "-P", "-o", "State,ExitCode,Reason"};
  size_t n = 7;
  for (size_t i = 0; extra && extra[i] && n < 15; i++)
    argv[n++] = extra[i];
  argv[n] = NULL;
  it_trainctl_ok(c, out, argv);
}

/* A job the kernel killed at its memory limit ends OUT_OF_MEMORY, as
 * Slurm's (squeue's OOM, sacct's 0:125): ls, show and history say so, and
 * `history --state OOM` finds it; submit --wait exits 1 (sbatch --wait's
 * for an end that is no exit); afternotok fires on it, afterok never does
 * (the reason says why); `job requeue` runs it again as a FAILED job's,
 * while --requeue-on-failure does not (it would be killed again).
 * The script keeps 100 MB of /dev/zero in a shell variable under --mem
 * 20M. */
Test(ctl, a_job_over_its_memory_limit_ends_out_of_memory, .timeout = 180) {
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  if (!it_worker_has_cgroups(&c)) cr_skip_test("the worker found no usable cgroup hierarchy");
  const char *hog = "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}";
  char *out = NULL, *err = NULL;
  int rc = it_trainctl_err(&c, &out, &err,
                           (const char *[]){"submit", "-W", "--mem", "20M", "--requeue-on-failure",
                                            "2", "--wrap", hog, NULL});
  cr_assert_eq(rc, 1, "submit --wait of an OUT_OF_MEMORY job exited %d: %s", rc, err);
  unsigned long long id = 0;
  cr_assert(sscanf(out, "Submitted batch job %llu", &id) == 1, "%s", out);
  free(out), free(err);
  char ids[32];
  snprintf(ids, sizeof ids, "%llu", id);
  it_trainctl_ok(
      &c, &out,
      (const char *const[]){"ls", "-j", ids, "--all", "--noheader", "-o", "%t %T %r", NULL});
  cr_assert_str_eq(out, "OOM OUT_OF_MEMORY None\n"); /* squeue's: an ended job's %r */
  free(out);
  it_trainctl_ok(
      &c, &out,
      (const char *const[]){"ls", "-j", ids, "--all", "--noheader", "-o", "reason", NULL});
  cr_assert(strstr(out, "out of memory: "), "%s", out);
  free(out);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, NULL});
  cr_assert(strstr(out, "OUT_OF_MEMORY"), "%s", out);
  free(out);
  history_line(&c, id, (const char *const[]){"--state", "OOM", NULL}, &out);
  cr_assert(!strncmp(out, "OUT_OF_MEMORY|0:125|rank 0 ", 27), "%s", out);
  cr_assert(strstr(out, "out of memory: ") && strstr(out, "killed at the job's memory limit"), "%s",
            out);
  cr_assert(strstr(out, "not requeued (--requeue-on-failure)"), "%s", out);
  free(out);
  history_line(&c, id, (const char *const[]){"--state", "FAILED", NULL}, &out);
  cr_assert_str_eq(out, "", "an OUT_OF_MEMORY job is not FAILED");
  free(out);
  /* Dependencies: afternotok runs, afterok is never satisfied. */
  char notok[48], ok[48];
  snprintf(notok, sizeof notok, "afternotok:%llu", id);
  snprintf(ok, sizeof ok, "afterok:%llu", id);
  uint64_t after_notok = it_submit_cli(&c, (const char *const[]){"-d", notok, "--", "true", NULL});
  uint64_t after_ok = it_submit_cli(
      &c, (const char *const[]){"-d", ok, "--kill-on-invalid-dep", "yes", "--", "true", NULL});
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, after_notok, 0, 60000), TRAINYARD__JOB_STATE__JOB_COMPLETED);
  Trainyard__GetJobResponse *r = it_wait_job(cl, after_ok, 0, 60000);
  cr_assert(r && r->job->state == TRAINYARD__JOB_STATE__JOB_CANCELLED, "afterok ran");
  cr_assert(strstr(r->job->reason, "DependencyNeverSatisfied") &&
                strstr(r->job->reason, "OUT_OF_MEMORY"),
            "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  /* job requeue: it runs again, and is killed at its limit again. */
  it_trainctl_ok(&c, &out, (const char *const[]){"job", "requeue", ids, NULL});
  free(out);
  r = it_wait_job(cl, id, TRAINYARD__JOB_STATE__JOB_RUNNING, 60000);
  cr_assert(r, "the requeued job never ran again");
  trainyard__get_job_response__free_unpacked(r, NULL);
  cr_assert_eq(it_wait_state(cl, id, 0, 60000), TRAINYARD__JOB_STATE__JOB_OUT_OF_MEMORY);
  ty_rpc_client_close(cl);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, NULL}); /* with its events */
  cr_assert(strstr(out, "requeued after OUT_OF_MEMORY"), "%s", out);
  free(out);
  double ends = it_metric(c.metrics_port,
                          "trainyard_job_ends_total{queue=\"default\",state=\"OUT_OF_MEMORY\"}");
  cr_assert(ends >= 2, "trainyard_job_ends_total of OUT_OF_MEMORY: %g", ends);
  /* A child killed at the limit, the script going on to exit 0: COMPLETED,
   * and its reason says what happened (it once said nothing). */
  char survivor[200];
  snprintf(survivor, sizeof survivor, "(%s) || echo killed=$?; exit 0", hog);
  cr_assert_eq(
      it_trainctl_err(&c, &out, &err,
                      (const char *[]){"submit", "-W", "--mem", "20M", "--wrap", survivor, NULL}),
      0, "%s", err);
  cr_assert(sscanf(out, "Submitted batch job %llu", &id) == 1, "%s", out);
  free(out), free(err);
  snprintf(ids, sizeof ids, "%llu", id);
  it_trainctl_ok(&c, &out, (const char *const[]){"show", ids, NULL});
  cr_assert(strstr(out, "COMPLETED") && strstr(out, "rank 0 exited 0 after out of memory: "), "%s",
            out);
  free(out);
  it_cluster_stop(&c);
}

/* A requeued job's script sees SLURM_RESTART_COUNT (unset on its first
 * run, as Slurm's) and resumes on it; TMPDIR is the task's private
 * directory, made anew for the second run, when the job has none. The first run waits to be
 * requeued; the second ends at once. */
Test(ctl, a_requeued_job_sees_slurm_restart_count, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  char path[400], script[600], ids[32], *out = NULL;
  snprintf(path, sizeof path, "%s/runs.txt", c.dir);
  snprintf(script, sizeof script,
           "echo \"${SLURM_RESTART_COUNT:-unset} $TMPDIR\" >> %s; "
           "[ -n \"$SLURM_RESTART_COUNT\" ] || sleep 60",
           path);
  uint64_t id = it_submit_cli(&c, (const char *const[]){"--", "sh", "-c", script, NULL});
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, id, TRAINYARD__JOB_STATE__JOB_RUNNING, 30000),
               TRAINYARD__JOB_STATE__JOB_RUNNING);
  char *runs = NULL;
  for (int i = 0; i < 300 && (!(runs = it_read_text(path)) || !strchr(runs, '\n')); i++) {
    free(runs), runs = NULL;
    it_sleep_ms(50); /* until the first run has written its line */
  }
  cr_assert(runs, "the first run wrote nothing to %s", path);
  free(runs);
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
  it_trainctl_ok(&c, &out, (const char *const[]){"job", "requeue", ids, NULL});
  free(out);
  cr_assert_eq(it_wait_state(cl, id, TRAINYARD__JOB_STATE__JOB_COMPLETED, 60000),
               TRAINYARD__JOB_STATE__JOB_COMPLETED);
  ty_rpc_client_close(cl);
  runs = it_read_text(path);
  char want[1100];
  snprintf(want, sizeof want, "unset %s/tmp/trainyard-job-%s.0\n1 %s/tmp/trainyard-job-%s.0\n",
           c.dir, ids, c.dir, ids);
  cr_assert(runs && !strcmp(runs, want), "the runs said: %s, want %s", runs, want);
  free(runs);
  it_cluster_stop(&c);
}

/* `ls -a -j ID` of an ended job older than the --limit newest ended ones:
 * the store is asked for that job, not for the newest ones to filter
 * (it was missing, and the answer said more jobs matched). */
Test(ctl, ls_all_of_an_older_ended_job_finds_it, .timeout = 90) {
  it_cluster c;
  it_cluster_start(&c, 1, 1);
  ty_rpc_client *cl = it_client(&c);
  uint64_t id[3];
  for (int i = 0; i < 3; i++) {
    id[i] = it_submit_cli(&c, (const char *const[]){"--", "true", NULL});
    cr_assert_eq(it_wait_state(cl, id[i], 0, 60000), TRAINYARD__JOB_STATE__JOB_COMPLETED);
  }
  char ids[24], *out = NULL, *err = NULL;
  snprintf(ids, sizeof ids, "%llu", (unsigned long long)id[0]);
  cr_assert_eq(it_trainctl_err(&c, &out, &err,
                               (const char *const[]){"ls", "-a", "--limit", "1", "-j", ids,
                                                     "--noheader", "-o", "%i", NULL}),
               0, "%s", err);
  cr_assert(strstr(out, ids), "job %s not listed: [%s]", ids, out);
  cr_assert(!strstr(err, "more jobs matched"), "%s", err);
  free(out), free(err);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}
