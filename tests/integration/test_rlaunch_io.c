/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rlaunch integration tests, the task's I/O: output and input byte-exact,
 * all output before the exit status, signals, the pty, and attaching
 * (test_rlaunch.c has launching). A real traind, real trainworkerd
 * processes and the real rlaunch and trainctl binaries on loopback. They
 * check behaviour, never wall-clock time; the polling bounds only turn a
 * hang into a failure.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "proto/methods.h"
#include "tests/integration/harness.h"
#include "tests/integration/rlaunch_run.h"

/* ---- bytes ------------------------------------------------------------------ */

Test(rlaunch, hundred_megabytes_arrive_byte_exact, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  char big[400], out[400];
  snprintf(big, sizeof big, "%s/big.bin", c.dir);
  snprintf(out, sizeof out, "%s/big.out", c.dir);
  rl_random_file(big, 100000000);
  cr_assert_eq(rl_run(&c, "big", NULL, (const char *[]){"--", "cat", big, NULL}), 0);
  cr_assert(rl_same_file(big, out), "100 MB output differs from %s", big);
  unlink(big), unlink(out);
  it_cluster_stop(&c);
}

Test(rlaunch, stdin_is_forwarded_byte_exact_with_eof, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  char in[400], out[400];
  snprintf(in, sizeof in, "%s/in.bin", c.dir);
  snprintf(out, sizeof out, "%s/cat.out", c.dir);
  rl_random_file(in, 20000000);
  cr_assert_eq(rl_run(&c, "cat", in, (const char *[]){"--", "cat", NULL}), 0);
  cr_assert(rl_same_file(in, out), "cat's output differs from its input");
  it_cluster_stop(&c);
}

/* srun's --input=none: rlaunch reads none of its stdin, and rank 0 sees
 * EOF at once (cat ends with nothing to print). */
Test(rlaunch, input_none_gives_no_rank_any_input, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  char in[400];
  snprintf(in, sizeof in, "%s/in.txt", c.dir);
  FILE *f = fopen(in, "w");
  cr_assert(f);
  fputs("not for the job\n", f);
  fclose(f);
  cr_assert_eq(rl_run(&c, "none", in, (const char *[]){"--input=none", "--", "cat", NULL}), 0);
  char *out = rl_output(&c, "none", "out");
  cr_expect_str_eq(out, "", "rank 0 read rlaunch's input");
  free(out);
  it_cluster_stop(&c);
}

/* How many lines of out, from the first, are "1", "2", ... each ending in eol. */
static int seq_lines(const char *out, const char *eol) {
  int n = 0;
  size_t k = strlen(eol);
  for (const char *p = out; *p; n++) {
    char want[24];
    int len = snprintf(want, sizeof want, "%d", n + 1);
    if (strncmp(p, want, (size_t)len) != 0 || strncmp(p + len, eol, k) != 0) break;
    p += (size_t)len + k;
  }
  return n;
}

/* A task that prints many lines and exits at once: every line reaches the
 * client before its exit status, through pipes and on a pty. On a pty the
 * worker once took the terminal's hang-up for the end of the output (libuv
 * calls a short read with POLLHUP EOF, but the terminal still held what the
 * task wrote last), so the output lost its tail, down to its first line.
 * Repeated: how much was still unread at the exit depended on timing. */
Test(rlaunch, all_output_arrives_before_the_exit_status, .timeout = 300) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  enum { LINES = 20000, ROUNDS = 8 };
  for (int round = 0; round < ROUNDS; round++) {
    bool pty = round % 2 == 1;
    char name[32];
    snprintf(name, sizeof name, "seq%d", round);
    const char *pipes[] = {"--", "seq", "1", "20000", NULL};
    const char *on_pty[] = {"--pty", "--", "seq", "1", "20000", NULL};
    cr_assert_eq(rl_run(&c, name, NULL, pty ? on_pty : pipes), 0, "round %d", round);
    char *out = rl_output(&c, name, "out");
    size_t len = strlen(out);
    cr_assert_eq(seq_lines(out, pty ? "\r\n" : "\n"), LINES,
                 "round %d (%s): %zu bytes, ending [%s]", round, pty ? "pty" : "pipes", len,
                 out + (len > 40 ? len - 40 : 0));
    free(out);
  }
  it_cluster_stop(&c);
}

/* ---- signals ------------------------------------------------------------------ */

Test(rlaunch, ctrl_c_reaches_a_remote_trap, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  const char *script = "trap 'echo got-INT; exit 7' INT; echo ready; while :; do sleep 0.1; done";
  pid_t pid = rl_start_sh(&c, "int", script, "ready");
  kill(pid, SIGINT);
  cr_assert_eq(rl_wait(pid), 7);
  rl_expect_in(&c, "int", "out", "got-INT");
  it_cluster_stop(&c);
}

static bool alive(pid_t pid) {
  return kill(pid, 0) == 0;
}

Test(rlaunch, killing_the_client_kills_the_remote, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  char script[600], pidfile[400];
  snprintf(pidfile, sizeof pidfile, "%s/remote.pid", c.dir);
  snprintf(script, sizeof script, "echo $$ > %s; echo ready; exec sleep 300", pidfile);
  pid_t pid = rl_start_sh(&c, "victim", script, "ready");
  char *s = rl_slurp(pidfile);
  pid_t remote = (pid_t)atoi(s);
  free(s);
  cr_assert(remote > 0 && alive(remote));
  kill(pid, SIGKILL);
  rl_wait(pid);
  bool gone = false;
  for (int i = 0; i < 3000 && !gone; i++) {
    gone = !alive(remote);
    if (!gone) it_sleep_ms(10);
  }
  cr_assert(gone, "remote pid %d survived its client", (int)remote);
  /* The job's reason says why its rank was killed, not only the signal. */
  ty_rpc_client *cl = it_client(&c);
  cr_assert_eq(it_wait_state(cl, 1, 0, 30000), TRAINYARD__JOB_STATE__JOB_FAILED);
  ty_rpc_client_close(cl);
  char *out = NULL;
  it_trainctl_ok(&c, &out, (const char *const[]){"show", "1", NULL});
  cr_assert(strstr(out, "rank 0 killed by signal 15 (SIGTERM): its rlaunch went away"), "%s", out);
  free(out);
  it_cluster_stop(&c);
}

Test(rlaunch, pty_gives_the_remote_a_terminal, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  cr_assert_eq(rl_run(&c, "pty", NULL, (const char *[]){"--pty", "--", "tty", NULL}), 0);
  rl_expect_in(&c, "pty", "out", "/dev/pts/");
  /* The terminal is the task's user's, group tty, 0620, as login makes it:
   * a program can reopen it by name. (The tests run as root, the task too.) */
  cr_assert_eq(rl_run(&c, "ttymode", NULL,
                      (const char *[]){"--pty", "--", "sh", "-c",
                                       "stat -c '%U:%G %a' $(tty); echo x > $(tty)", NULL}),
               0);
  rl_expect_in(&c, "ttymode", "out", "root:tty 620");
  /* Without --pty the remote has none. */
  rl_run(&c, "nopty", NULL, (const char *[]){"--", "tty", NULL});
  rl_expect_in(&c, "nopty", "out", "not a tty");
  it_cluster_stop(&c);
}

/* ---- attach ------------------------------------------------------------------------ */

/* Runs `trainctl attach ID`, reading its stdout through a pipe. */
static pid_t trainctl_attach(const it_cluster *c, const char *id, int *out_fd) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", c->rpc_port);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]), close(p[1]);
    execl(getenv("TY_TRAINCTL"), "trainctl", "--controller", addr, "attach", id, (char *)NULL);
    _exit(98);
  }
  close(p[1]);
  *out_fd = p[0];
  return pid;
}

/* Reads fd into b until it contains text (or EOF). */
static bool read_until(int fd, ty_buf *b, const char *text) {
  char chunk[4096];
  for (;;) {
    ty_buf_append(b, "", 1);
    b->len--;
    if (strstr((char *)b->data, text)) return true;
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) return false;
    ty_buf_append(b, chunk, (size_t)n);
  }
}

Test(rlaunch, attach_replays_history_then_follows, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  char script[700];
  snprintf(script, sizeof script,
           "echo job=$TRAINYARD_JOB_ID; echo history-line; echo ready;"
           " while [ ! -e %s/go ]; do sleep 0.05; done; echo after-attach",
           c.dir);
  pid_t pid = rl_start_sh(&c, "hist", script, "ready");
  char *s = rl_output(&c, "hist", "out");
  char id[32];
  cr_assert_eq(sscanf(s, "job=%31s", id), 1, "[%s]", s);
  free(s);
  int fd;
  pid_t tc = trainctl_attach(&c, id, &fd);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert(read_until(fd, &b, "ready\n"), "no replay: [%.*s]", (int)b.len, (char *)b.data);
  cr_assert(strstr((char *)b.data, "history-line\n"));
  char go[400];
  snprintf(go, sizeof go, "%s/go", c.dir);
  close(open(go, O_WRONLY | O_CREAT, 0644));
  cr_assert(read_until(fd, &b, "after-attach\n"), "not followed: [%.*s]", (int)b.len,
            (char *)b.data);
  close(fd);
  cr_assert_eq(rl_wait(tc), 0);
  cr_assert_eq(rl_wait(pid), 0);
  ty_buf_close(&b);
  it_cluster_stop(&c);
}

/* Attach with the given credential; returns the END status. */
static int raw_attach(int io_port, uint64_t job, const void *cred, size_t cred_len, char *msg,
                      size_t msg_len) {
  Trainyard__AttachRequest req = TRAINYARD__ATTACH_REQUEST__INIT;
  req.job_id = job;
  req.rank = 0;
  req.owner = true;
  uint8_t buf[64];
  size_t n = trainyard__attach_request__pack(&req, buf);
  ty_rpc_client *cl = NULL;
  cr_assert_eq(ty_rpc_client_open("127.0.0.1", io_port, 5000, &cl), 0);
  ty_rpc_client_set_credential(cl, cred, cred_len);
  ty_rpc_result res;
  int rc = ty_rpc_client_stream(cl, TY_M_ATTACH, buf, n, 5000, NULL, NULL, &res);
  cr_assert_eq(rc, 0, "transport: %s", ty_strerror(rc));
  snprintf(msg, msg_len, "%s", res.message);
  int status = res.status;
  ty_rpc_result_close(&res);
  ty_rpc_client_close(cl);
  return status;
}

Test(rlaunch, attach_without_a_valid_token_is_refused, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  pid_t pid = rl_start_sh(&c, "guarded", "echo job=$TRAINYARD_JOB_ID; exec sleep 300", "job=");
  char *s = rl_output(&c, "guarded", "out");
  unsigned long job = strtoul(s + 4, NULL, 10);
  free(s);
  char msg[256];
  cr_assert_eq(raw_attach(c.io_port[0], job, NULL, 0, msg, sizeof msg), TY_EPERM);
  cr_assert(strstr(msg, "no task token"), "[%s]", msg);
  uint8_t forged[56];
  memset(forged, 0x41, sizeof forged);
  memcpy(forged, "TYT1", 4);
  cr_assert_eq(raw_attach(c.io_port[0], job, forged, sizeof forged, msg, sizeof msg), TY_EPERM);
  cr_assert(strstr(msg, "signature"), "[%s]", msg);
  kill(pid, SIGINT);
  kill(pid, SIGINT); /* the second within a second kills the job */
  rl_wait(pid);
  it_cluster_stop(&c);
}

Test(rlaunch, second_ctrl_c_within_a_second_kills_the_job, .timeout = 120) {
  it_cluster c;
  it_cluster_start(&c, 1, 4);
  const char *script = "trap 'echo first-INT' INT; echo ready; while :; do sleep 0.1; done";
  pid_t pid = rl_start_sh(&c, "kill2", script, "ready");
  kill(pid, SIGINT);
  cr_assert(rl_wait_text(&c, "kill2", "first-INT"), "the first Ctrl-C was not forwarded");
  kill(pid, SIGINT);
  cr_assert_eq(rl_wait(pid), 128 + SIGTERM);
  rl_expect_in(&c, "kill2", "err", "killing job");
  /* The user cancelled it: CANCELLED in its history, not FAILED. */
  ty_rpc_client *cl = it_client(&c);
  Trainyard__GetJobResponse *r = it_wait_job(cl, 1, 0, 10000);
  cr_assert(r);
  cr_assert_eq((int)r->job->state, TRAINYARD__JOB_STATE__JOB_CANCELLED, "%s", r->job->reason);
  cr_assert(strstr(r->job->reason, "cancelled by"), "%s", r->job->reason);
  trainyard__get_job_response__free_unpacked(r, NULL);
  ty_rpc_client_close(cl);
  it_cluster_stop(&c);
}

/* An rlaunch holding both CPUs of a 2-CPU cluster until DIR/go exists (its
 * path in go); returns once it runs. */
