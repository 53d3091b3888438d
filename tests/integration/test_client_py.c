/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A client that is not ours speaks the documented protocol: the Python
 * client in examples/clients (its own framing, its own MUNGE credential
 * through the `munge` command, protoc's Python classes from the checkout's
 * .proto files) submits, follows a job through WatchJob's stream, lists,
 * and gets the controller's refusals with their messages, over TCP and over
 * traind's Unix socket. The cluster authenticates with MUNGE, as in
 * production. Then a careless client (client_careless.py) sends what buggy
 * clients send and gets the documented answers, disturbing no one.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/integration/harness.h"

/* Runs the script $VAR with ARGS (shell words) against c; its exit status,
 * and its stdout and stderr together in *out (owned). */
static int run_script(const it_cluster *c, const char *var, char **out, const char *args) {
  const char *script = getenv(var);
  cr_assert(script && *script, "%s is not set", var);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "TMPDIR='%s' TRAINYARD_MUNGE_SOCKET='%s' /usr/bin/python3 '%s' --controller "
           "127.0.0.1:%d %s 2>&1",
           c->dir, c->munged.socket, script, c->rpc_port, args);
  FILE *p = popen(cmd, "r");
  cr_assert(p, "popen %s", cmd);
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  cr_assert(buf);
  for (size_t n; (n = fread(buf + len, 1, cap - len - 1, p)) > 0;) {
    len += n;
    if (cap - len < 2) cr_assert((buf = realloc(buf, cap *= 2)));
  }
  buf[len] = '\0';
  int st = pclose(p);
  *out = buf;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void expect(const it_cluster *c, const char *args, int want_rc, const char *want_out) {
  char *out = NULL;
  int rc = run_script(c, "TY_PY_CLIENT", &out, args);
  cr_assert_eq(rc, want_rc, "client %s: exit %d, not %d:\n%s", args, rc, want_rc, out);
  cr_assert(strstr(out, want_out), "client %s: no \"%s\" in:\n%s", args, want_out, out);
  free(out);
}

Test(client_py, a_python_client_speaks_the_wire_protocol, .timeout = 120) {
  if (system("/usr/bin/python3 -c 'import google.protobuf' 2>/dev/null") != 0 ||
      system("command -v protoc >/dev/null") != 0)
    cr_skip_test("needs python3-protobuf and protoc (deploy/install-deps.sh installs both)");
  it_cluster c;
  it_cluster_start(&c, 1, 2);
  /* --wait reads WatchJob to its END, then GetJob on the same connection. */
  expect(&c, "submit --wait -- sh -c 'echo hi; exit 3'", 3,
         "job 1 FAILED exit 3 signal 0 (rank 0 exited with code 3)");
  expect(&c, "submit --wait --name ok -- true", 0, "job 2 COMPLETED exit 0");
  expect(&c, "ls", 0, "1\tFAILED\tsh\trank 0 exited with code 3");
  /* Refusals come back as the controller's own messages. */
  expect(&c, "submit --nodes 5 -- true", 1, "SubmitJob: job.resources.nodes is 5");
  expect(&c, "wait 99", 1, "WatchJob: job_id: job 99 not found");
  expect(&c, "--auth none ls", 1, "ListJobs: no credential");
  /* No munged to make a credential: one line, exit 1, no traceback. */
  expect(&c, "--munge-socket /nonexistent/munge.socket.2 ls", 1, "trainyard_client: munge: ");
  char *out = NULL;
  cr_assert_eq(run_script(&c, "TY_PY_CLIENT", &out, "--munge-socket /nonexistent/m.sock ls"), 1);
  cr_assert(strstr(out, "--auth none") && strstr(out, "--socket PATH"), "%s", out);
  cr_assert_null(strstr(out, "Traceback"), "%s", out);
  free(out);
  /* The Unix socket: the same frames, no credential. */
  char args[700];
  snprintf(args, sizeof args, "--socket '%s/traind/traind.sock' nodes", c.dir);
  expect(&c, args, 0, "\tUP\t");
  snprintf(args, sizeof args, "--socket '%s/traind/traind.sock' submit --wait -- true", c.dir);
  expect(&c, args, 0, "job 3 COMPLETED exit 0");
  /* Job 4 ends after job 5: ListJobs' limit keeps the newest ids, not the
   * latest ends (the store once answered by end time). */
  expect(&c, "submit --name late -- sleep 1", 0, "job 4");
  expect(&c, "submit --wait --name early -- true", 0, "job 5 COMPLETED");
  expect(&c, "wait 4", 0, "job 4 COMPLETED");
  expect(&c, "ls --limit 1", 0, "5\tCOMPLETED\tearly");
  /* GetHistory's cursor: five ended jobs, two a page. */
  expect(&c, "history --page 2", 0, "\n3 pages");
  expect(&c, "history --before 0:5", 1, "GetHistory: before_id: 5 without before_end_ms");
  expect(&c, "history --before=-5:1", 1, "GetHistory: before_end_ms: -5 is negative");
  /* A careless client's frames. */
  int rc = run_script(&c, "TY_PY_CARELESS", &out, "");
  cr_assert_eq(rc, 0, "client_careless.py: exit %d:\n%s", rc, out);
  free(out);
  /* The generated modules' directory goes once they are imported. */
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "ls -d '%s'/trainyard-pb-* >/dev/null 2>&1", c.dir);
  cr_assert_neq(system(cmd), 0, "the client left a trainyard-pb-* directory in %s", c.dir);
  it_cluster_stop(&c);
}
