/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JIT: generated C source -> shared object -> function pointer.
 *
 * Lookup order: this jit's in-memory table (hash of the source), then the
 * disk cache (<dir>/ty_<hash>.so, dlopen), then the compiler. The compiler
 * runs with posix_spawnp (no shell, so no quoting problems with paths) and
 * writes to a file name unique to this process and call; the result is
 * renamed over the final name, which is atomic, so processes sharing a
 * cache either see a complete kernel or none. The hash covers the source
 * and the compiler command, so a different $CC never reuses a kernel.
 *
 * After the first compiler failure (not installed, broken) the jit stops
 * trying and every region is interpreted: one failed spawn per process,
 * not one per region.
 */
#include "ops/fusion/fusion_internal.h"

#include "lib/base/base.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define CC_MAX_ARGS 8

typedef struct jit_entry {
  uint64_t hash;
  void *fn;
} jit_entry;

struct ty_jit {
  char *dir;
  bool off;     /* interpret only */
  bool broken;  /* the compiler failed once */
  char *cc;     /* $CC or "cc", split in place into cc_argv */
  char *cc_argv[CC_MAX_ARGS + 1];
  int cc_argc;
  uint64_t seq; /* temp-file sequence */
  ty_jit_stats st;
  jit_entry *map;
  size_t n_map, cap_map;
  void **handles;
  size_t n_handles, cap_handles;
};

static const char *const cc_flags[] = {"-O3", "-march=native", "-fPIC", "-shared", "-std=c11",
                                       "-ffp-contract=off", "-w"};

static uint64_t fnv1a(uint64_t h, const char *s) {
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return h;
}

/* $TRAINYARD_KERNEL_CACHE, $XDG_CACHE_HOME/trainyard/kernels or
 * ~/.cache/trainyard/kernels. Without HOME (a worker gives its tasks no
 * environment of its own) the home directory comes from the passwd entry:
 * a cache of code to load must not default to a directory other users can
 * write to. */
static char *default_dir(void) {
  const char *env = getenv("TRAINYARD_KERNEL_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  struct passwd *pw = home && *home ? NULL : getpwuid(getuid());
  if (pw && pw->pw_dir && *pw->pw_dir) home = pw->pw_dir;
  char buf[4096];
  if (env && *env) return strdup(env);
  if (xdg && *xdg) snprintf(buf, sizeof buf, "%s/trainyard/kernels", xdg);
  else snprintf(buf, sizeof buf, "%s/.cache/trainyard/kernels", home && *home ? home : "/tmp");
  return strdup(buf);
}

static void split_cc(ty_jit *j) {
  char *save = NULL;
  for (char *t = strtok_r(j->cc, " \t", &save); t && j->cc_argc < CC_MAX_ARGS; t = strtok_r(NULL, " \t", &save))
    j->cc_argv[j->cc_argc++] = t;
  if (j->cc_argc == 0) j->broken = true;
}

int ty_jit_create(const ty_jit_opts *opts, ty_jit **out_jit) {
  ty_jit *j = calloc(1, sizeof *j);
  if (!j) return TY_ENOMEM;
  const char *cc = getenv("CC"), *nojit = getenv("TRAINYARD_NO_JIT");
  j->dir = opts && opts->cache_dir ? strdup(opts->cache_dir) : default_dir();
  j->cc = strdup(cc && *cc ? cc : "cc");
  if (!j->dir || !j->cc) {
    ty_jit_destroy(j);
    return TY_ENOMEM;
  }
  j->off = (opts && opts->no_jit) || (nojit && *nojit && strcmp(nojit, "0") != 0);
  split_cc(j);
  *out_jit = j;
  return 0;
}

void ty_jit_destroy(ty_jit *j) {
  if (!j) return;
  for (size_t i = 0; i < j->n_handles; i++) dlclose(j->handles[i]);
  free(j->handles);
  free(j->map);
  free(j->dir);
  free(j->cc);
  free(j);
}

void ty_jit_get_stats(const ty_jit *j, ty_jit_stats *out_stats) { *out_stats = j->st; }
const char *ty_jit_cache_dir(const ty_jit *j) { return j->dir; }
void ty__jit_count_interp(ty_jit *j) {
  if (j) j->st.interp_runs++;
}

/* mkdir -p. */
static int make_dirs(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return TY_EINVAL;
  for (char *p = buf + 1;; p++) {
    bool end = *p == '\0';
    if (*p != '/' && !end) continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return TY_EIO;
    if (end) return 0;
    *p = '/';
  }
}

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return TY_EIO;
  size_t len = strlen(text);
  bool ok = fwrite(text, 1, len, f) == len;
  ok = fclose(f) == 0 && ok;
  return ok ? 0 : TY_EIO;
}

/* Runs the compiler on src_path, writing so_path; stderr to log_path. */
static int run_compiler(ty_jit *j, const char *src_path, const char *so_path, const char *log_path) {
  char *argv[CC_MAX_ARGS + 16];
  int argc = 0;
  for (int i = 0; i < j->cc_argc; i++) argv[argc++] = j->cc_argv[i];
  for (size_t i = 0; i < sizeof cc_flags / sizeof *cc_flags; i++) argv[argc++] = (char *)cc_flags[i];
  argv[argc++] = "-o";
  argv[argc++] = (char *)so_path;
  argv[argc++] = (char *)src_path;
  argv[argc++] = "-lm";
  argv[argc] = NULL;
  posix_spawn_file_actions_t fa;
  if (posix_spawn_file_actions_init(&fa) != 0) return TY_ENOMEM;
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return TY_EUNSUPPORTED;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return TY_EIO;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : TY_EUNSUPPORTED;
}

/* Compiles src into final_path through a private temporary name. */
static int compile_to(ty_jit *j, const char *src, const char *base, const char *final_path) {
  char src_path[4200], tmp_path[4200], log_path[4200];
  unsigned long long seq = (unsigned long long)j->seq++;
  snprintf(src_path, sizeof src_path, "%s.%ld.%llu.c", base, (long)getpid(), seq);
  snprintf(tmp_path, sizeof tmp_path, "%s.%ld.%llu.so.tmp", base, (long)getpid(), seq);
  snprintf(log_path, sizeof log_path, "%s.%ld.%llu.log", base, (long)getpid(), seq);
  int rc = make_dirs(j->dir);
  if (rc == 0) rc = write_file(src_path, src);
  if (rc == 0) rc = run_compiler(j, src_path, tmp_path, log_path);
  if (rc == 0 && rename(tmp_path, final_path) != 0) rc = TY_EIO;
  unlink(src_path);
  unlink(tmp_path);
  if (rc == 0) unlink(log_path); /* a failure keeps the compiler's messages */
  return rc;
}

static int remember(ty_jit *j, uint64_t hash, void *fn, void *handle) {
  if (j->n_map == j->cap_map) {
    size_t cap = j->cap_map ? j->cap_map * 2 : 16;
    jit_entry *m = realloc(j->map, cap * sizeof *m);
    void **h = realloc(j->handles, cap * sizeof *h);
    if (m) j->map = m;
    if (h) j->handles = h;
    if (!m || !h) return TY_ENOMEM;
    j->cap_map = j->cap_handles = cap;
  }
  j->map[j->n_map++] = (jit_entry){hash, fn};
  j->handles[j->n_handles++] = handle;
  return 0;
}

static void *load(const char *path, const char *sym, void **out_handle) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) return NULL;
  void *fn = dlsym(h, sym);
  if (!fn) {
    dlclose(h);
    return NULL;
  }
  *out_handle = h;
  return fn;
}

void *ty__jit_lookup(ty_jit *j, const char *src, const char *sym) {
  if (!j || j->off || j->broken) return NULL;
  uint64_t h = fnv1a(0xcbf29ce484222325ull, src);
  for (int i = 0; i < j->cc_argc; i++) h = fnv1a(h, j->cc_argv[i]);
  for (size_t i = 0; i < sizeof cc_flags / sizeof *cc_flags; i++) h = fnv1a(h, cc_flags[i]);
  for (size_t i = 0; i < j->n_map; i++)
    if (j->map[i].hash == h) return j->map[i].fn;
  char base[4150], path[4200];
  snprintf(base, sizeof base, "%s/ty_%016llx", j->dir, (unsigned long long)h);
  snprintf(path, sizeof path, "%s.so", base);
  void *handle = NULL, *fn = load(path, sym, &handle);
  if (fn) {
    j->st.disk_loads++;
  } else {
    if (compile_to(j, src, base, path) != 0 || !(fn = load(path, sym, &handle))) {
      j->st.compile_failures++;
      j->broken = true;
      return NULL;
    }
    j->st.compiles++;
  }
  if (remember(j, h, fn, handle) != 0) {
    dlclose(handle);
    return NULL;
  }
  return fn;
}
