/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a model-check child (trainyard-graphcheck, check.c) gets from
 * traind besides its request, and what traind takes from its stderr. The
 * child runs as the submitting user, who may ptrace it, so it gets nothing
 * of traind's that the user may not see or touch:
 *
 *   - its environment is a fixed one: PATH, LC_ALL=C, one OpenBLAS thread
 *     (a check multiplies a few small matrices at most; idle BLAS threads
 *     would only take address space from its limit) and the sanitizers'
 *     *SAN_OPTIONS of a test build, never traind's other variables (a
 *     secret a unit passes to traind is not the user's to read);
 *   - its stderr is a pipe that traind reads: each line goes to traind's
 *     log as a warning prefixed "model check for USER (uid U): ", control
 *     bytes shown as '?', so the user cannot write lines of their own into
 *     root's log; at most MAX_LINES lines of MAX_LINE bytes per check are
 *     logged, the rest only counted in one last line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon_internal.h"

#define MAX_LINE TY__CHECK_STDERR_LINE
#define MAX_LINES 32

extern char **environ;

static const char *const fixed_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
    "OPENBLAS_NUM_THREADS=1"};

static const char *const sanitizer_env[] = {
    "ASAN_OPTIONS=", "LSAN_OPTIONS=", "UBSAN_OPTIONS=", "TSAN_OPTIONS="};

static bool is_sanitizer_option(const char *kv) {
  for (size_t i = 0; i < TY_ARRAY_LEN(sanitizer_env); i++)
    if (strncmp(kv, sanitizer_env[i], strlen(sanitizer_env[i])) == 0) return true;
  return false;
}

char **ty__check_child_env(void) {
  size_t n = TY_ARRAY_LEN(fixed_env) + TY_ARRAY_LEN(sanitizer_env) + 1, k = 0;
  char **env = ty_xcalloc(n, sizeof *env);
  for (size_t i = 0; i < TY_ARRAY_LEN(fixed_env); i++)
    env[k++] = (char *)fixed_env[i];
  for (size_t i = 0; environ[i] && k < n - 1; i++)
    if (is_sanitizer_option(environ[i])) env[k++] = environ[i];
  return env;
}

/* ---- stderr ------------------------------------------------------------------------------ */

void ty__check_stderr_init(ty__check_stderr *e, const char *user, uint32_t uid) {
  memset(e, 0, sizeof *e);
  snprintf(e->who, sizeof e->who, "%s (uid %u)", user && user[0] ? user : "?", uid);
}

static void log_line(ty__check_stderr *e) {
  if (e->lines < MAX_LINES) {
    e->line[e->len] = 0;
    ty_warn("model check for %s: %s", e->who, e->line);
    e->lines++;
  } else {
    e->dropped += e->len;
  }
  e->len = 0;
}

void ty__check_stderr_feed(ty__check_stderr *e, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '\n') {
      log_line(e);
      continue;
    }
    e->line[e->len++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    if (e->len == MAX_LINE) log_line(e);
  }
}

void ty__check_stderr_end(ty__check_stderr *e) {
  if (e->len) log_line(e);
  if (e->dropped)
    ty_warn("model check for %s: %llu more bytes of its stderr not logged (%d lines at most)",
            e->who, (unsigned long long)e->dropped, MAX_LINES);
  e->dropped = 0;
}
