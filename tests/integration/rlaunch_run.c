/* SPDX-License-Identifier: Apache-2.0 */
/* Running rlaunch from the integration tests, and reading what it wrote (see rlaunch_run.h). */
#include "tests/integration/rlaunch_run.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/base.h"

const char *rl_bin(void) {
  const char *p = getenv("TY_RLAUNCH");
  cr_assert(p && *p, "TY_RLAUNCH is not set (run through meson test)");
  return p;
}

pid_t rl_start(const it_cluster *c, const char *name, const char *in_path, const char *const *args,
               const char *const *env) {
  char out[400], err[400], addr[64];
  snprintf(out, sizeof out, "%s/%s.out", c->dir, name);
  snprintf(err, sizeof err, "%s/%s.err", c->dir, name);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", c->rpc_port);
  const char *argv[40] = {rl_bin()};
  size_t n = 1;
  for (size_t i = 0; args[i] && n < 39; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    if (env && env[0] && strcmp(env[0], "-i") == 0) clearenv(), env++;
    setenv("TRAINYARD_CONTROLLER", addr, 1);
    if (!c->opts.auth_none) setenv("TRAINYARD_MUNGE_SOCKET", c->munged.socket, 1);
    for (size_t i = 0; env && env[i]; i++)
      putenv((char *)env[i]);
    int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, 0), dup2(o, 1), dup2(e, 2);
    close(in), close(o), close(e);
    if (chdir(c->dir) != 0) _exit(99);
    execv(argv[0], (char *const *)argv);
    _exit(98);
  }
  return pid;
}

int rl_wait(pid_t pid) {
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int rl_run(const it_cluster *c, const char *name, const char *in_path, const char *const *args) {
  return rl_wait(rl_start(c, name, in_path, args, NULL));
}

int rl_run_sh(const it_cluster *c, const char *name, const char *script) {
  return rl_run(c, name, NULL, (const char *[]){"--", "sh", "-c", script, NULL});
}

pid_t rl_start_sh(const it_cluster *c, const char *name, const char *script, const char *ready) {
  pid_t pid = rl_start(c, name, NULL, (const char *[]){"--", "sh", "-c", script, NULL}, NULL);
  cr_assert(rl_wait_text(c, name, ready), "%s never printed \"%s\"", name, ready);
  return pid;
}

char *rl_slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return strdup("");
  ty_buf b;
  ty_buf_init(&b);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    ty_buf_append(&b, chunk, n);
  fclose(f);
  ty_buf_append(&b, "", 1);
  return (char *)b.data;
}

char *rl_output(const it_cluster *c, const char *name, const char *ext) {
  char path[400];
  snprintf(path, sizeof path, "%s/%s.%s", c->dir, name, ext);
  return rl_slurp(path);
}

bool rl_wait_in(const it_cluster *c, const char *name, const char *ext, const char *text) {
  for (int i = 0; i < 3000; i++) {
    char *s = rl_output(c, name, ext);
    bool found = strstr(s, text) != NULL;
    free(s);
    if (found) return true;
    it_sleep_ms(10);
  }
  return false;
}

void rl_expect_in(const it_cluster *c, const char *name, const char *ext, const char *text) {
  char *s = rl_output(c, name, ext);
  cr_assert(strstr(s, text), "%s.%s does not say \"%s\": [%s]", name, ext, text, s);
  free(s);
}

bool rl_wait_text(const it_cluster *c, const char *name, const char *text) {
  return rl_wait_in(c, name, "out", text);
}

void rl_random_file(const char *path, size_t bytes) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "head -c %zu /dev/urandom > '%s'", bytes, path);
  cr_assert_eq(system(cmd), 0);
}

bool rl_same_file(const char *a, const char *b) {
  char cmd[900];
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
  return system(cmd) == 0;
}
