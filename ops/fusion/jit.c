/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JIT: generated C source -> shared object -> function pointer.
 *
 * Lookup order: this jit's in-memory table (the key), then the disk cache
 * (<dir>/ty_<key>.so, dlopen), then the compiler. The key (jit_cache.c)
 * hashes the source with the compiler's command, flags and binary and the
 * CPU, in 128 bits. The compiler runs with posix_spawnp (no shell, so no
 * quoting problems with paths) inside the verified cache directory and
 * writes to a file name unique to this process and call; the result is
 * renamed over the final name, which is atomic, so processes sharing a
 * cache either see a complete kernel or none. Every object defines
 * `ty_kernel_key`, its key, which must match after dlopen before any code
 * of it is called: a file that is not what its name says (truncated,
 * renamed, colliding) is unloaded, removed and compiled again.
 *
 * After the first compiler failure (not installed, broken) the jit stops
 * trying and every region is interpreted: one failed spawn per process,
 * not one per region. Without a usable cache directory it never starts.
 */
#include "ops/fusion/fusion_internal.h"

#include "lib/base/base.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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
  ty_kernel_key key;
  void *fn;
} jit_entry;

struct ty_jit {
  char *dir;            /* NULL without a usable cache directory */
  int dirfd;            /* the verified directory, open for the jit's life; -1 = none */
  char why[256];        /* why compiled kernels are off; "" while on */
  ty_kernel_key target; /* the key's part that is not the source */
  bool off;             /* interpret only */
  bool broken;          /* the compiler failed once */
  char *cc;             /* $CC or "cc", split in place into cc_argv */
  char *cc_argv[CC_MAX_ARGS + 1];
  int cc_argc;
  uint64_t seq; /* temp-file sequence */
  ty_jit_stats st;
  jit_entry *map;
  size_t n_map, cap_map;
  void **handles;
  size_t n_handles, cap_handles;
};

/* -fno-trapping-math: without AVX-512's masked operations gcc will not
 * if-convert a loop whose float operations sit under a condition (ty_verff's
 * and ty_vexpf's selects) unless told that they do not trap, and leaves it
 * scalar: the GPT's GELU regions ran 8 times slower on an AVX2-only CPU.
 * It changes no result (traps are never enabled here; ISO C contraction
 * stays off). -fno-math-errno: sqrtf may set errno, so gcc guards each
 * call with a branch to libm, and the Adam update's loop stayed scalar
 * (1.5% of the GPT's step); sqrtf's result is the same either way and no
 * kernel reads errno. */
static const char *const cc_flags[] = {"-O3",
                                       "-march=native",
                                       "-fPIC",
                                       "-shared",
                                       "-std=c11",
                                       "-ffp-contract=off",
                                       "-fno-trapping-math",
                                       "-fno-math-errno",
                                       "-w"};

static void split_cc(ty_jit *j) {
  char *save = NULL;
  for (char *t = strtok_r(j->cc, " \t", &save); t && j->cc_argc < CC_MAX_ARGS;
       t = strtok_r(NULL, " \t", &save))
    j->cc_argv[j->cc_argc++] = t;
  if (j->cc_argc == 0) j->broken = true;
}

/* Opens the cache directory; without one the jit interprets, saying why. */
static void open_cache(ty_jit *j, const char *given) {
  char path[4096];
  int rc = given ? (snprintf(path, sizeof path, "%s", given) < (int)sizeof path ? 0 : TY_EINVAL)
                 : ty_kernel_cache_default_dir(path, sizeof path);
  if (rc == TY_ENOTFOUND)
    snprintf(j->why, sizeof j->why,
             "no kernel cache: no home directory (set TRAINYARD_KERNEL_CACHE)");
  else if (rc == 0)
    rc = ty_kernel_cache_open(path, &j->dirfd, j->why, sizeof j->why);
  if (rc == 0 && !(j->dir = strdup(path))) rc = TY_ENOMEM;
  if (rc != 0) {
    if (!j->why[0])
      snprintf(j->why, sizeof j->why, "kernel cache %.200s: %s", path, ty_strerror(rc));
    j->broken = true;
  }
}

int ty_jit_create(const ty_jit_opts *opts, ty_jit **out_jit) {
  ty_jit *j = calloc(1, sizeof *j);
  if (!j) return TY_ENOMEM;
  j->dirfd = -1;
  const char *cc = getenv("CC"), *nojit = getenv("TRAINYARD_NO_JIT");
  j->cc = strdup(cc && *cc ? cc : "cc");
  if (!j->cc) {
    ty_jit_destroy(j);
    return TY_ENOMEM;
  }
  j->off = (opts && opts->no_jit) || (nojit && *nojit && strcmp(nojit, "0") != 0);
  split_cc(j);
  if (!j->off && !j->broken) {
    open_cache(j, opts ? opts->cache_dir : NULL);
    ty_kernel_key_init(&j->target);
    ty__jit_key_target(&j->target, j->cc_argv, j->cc_argc, cc_flags, TY_ARRAY_LEN(cc_flags));
  }
  *out_jit = j;
  return 0;
}

void ty_jit_destroy(ty_jit *j) {
  if (!j) return;
  for (size_t i = 0; i < j->n_handles; i++)
    dlclose(j->handles[i]);
  free(j->handles);
  free(j->map);
  if (j->dirfd >= 0) close(j->dirfd);
  free(j->dir);
  free(j->cc);
  free(j);
}

void ty_jit_get_stats(const ty_jit *j, ty_jit_stats *out_stats) {
  *out_stats = j->st;
}
const char *ty_jit_cache_dir(const ty_jit *j) {
  return j->dir;
}
const char *ty_jit_status(const ty_jit *j) {
  if (j->off) return "compiled kernels are off (no_jit or TRAINYARD_NO_JIT)";
  if (j->why[0]) return j->why;
  return j->broken ? "the compiler failed; kernels are interpreted" : "";
}
void ty__jit_count_interp(ty_jit *j) {
  if (j) j->st.interp_runs++;
}

/* Writes the source and its key symbol to dirfd/name, a new private file. */
static int write_source(int dirfd, const char *name, const char *src, const ty_kernel_key *k) {
  int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return TY_EIO;
  FILE *f = fdopen(fd, "w");
  if (!f) {
    close(fd);
    return TY_EIO;
  }
  bool ok =
      fputs(src, f) >= 0 &&
      fprintf(f, "\nconst unsigned long long ty_kernel_key[2] = {0x%016llxull, 0x%016llxull};\n",
              (unsigned long long)k->h[0], (unsigned long long)k->h[1]) > 0;
  ok = fclose(f) == 0 && ok;
  return ok ? 0 : TY_EIO;
}

/* Runs the compiler inside the cache directory on the names given (all
 * relative to it): src_name -> so_name, stderr to log_name. */
static int run_compiler(ty_jit *j, const char *src_path, const char *so_path,
                        const char *log_path) {
  char *argv[CC_MAX_ARGS + 16];
  int argc = 0;
  for (int i = 0; i < j->cc_argc; i++)
    argv[argc++] = j->cc_argv[i];
  for (size_t i = 0; i < sizeof cc_flags / sizeof *cc_flags; i++)
    argv[argc++] = (char *)cc_flags[i];
  argv[argc++] = "-o";
  argv[argc++] = (char *)so_path;
  argv[argc++] = (char *)src_path;
  argv[argc++] = "-lm";
  argv[argc] = NULL;
  posix_spawn_file_actions_t fa;
  if (posix_spawn_file_actions_init(&fa) != 0) return TY_ENOMEM;
  posix_spawn_file_actions_addfchdir_np(&fa, j->dirfd);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  /* The compiler starts with no signal blocked, whatever this thread's
   * mask (trainrun blocks its stop signals in every thread but one). */
  posix_spawnattr_t at;
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_init(&at);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return TY_EUNSUPPORTED;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return TY_EIO;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : TY_EUNSUPPORTED;
}

/* Compiles src into dirfd/final through a private temporary name. */
static int compile_to(ty_jit *j, const char *src, const ty_kernel_key *k, const char *base,
                      const char *final) {
  char src_name[200], tmp_name[200], log_name[200];
  unsigned long long seq = (unsigned long long)j->seq++;
  snprintf(src_name, sizeof src_name, "%s.%ld.%llu.c", base, (long)getpid(), seq);
  snprintf(tmp_name, sizeof tmp_name, "%s.%ld.%llu.so.tmp", base, (long)getpid(), seq);
  snprintf(log_name, sizeof log_name, "%s.%ld.%llu.log", base, (long)getpid(), seq);
  int rc = write_source(j->dirfd, src_name, src, k);
  if (rc == 0) rc = run_compiler(j, src_name, tmp_name, log_name);
  /* Private whatever the umask: load() trusts no object others may write. */
  if (rc == 0 && fchmodat(j->dirfd, tmp_name, 0700, 0) != 0) rc = TY_EIO;
  if (rc == 0 && renameat(j->dirfd, tmp_name, j->dirfd, final) != 0) rc = TY_EIO;
  unlinkat(j->dirfd, src_name, 0);
  unlinkat(j->dirfd, tmp_name, 0);
  if (rc == 0) unlinkat(j->dirfd, log_name, 0); /* a failure keeps the compiler's messages */
  return rc;
}

static int remember(ty_jit *j, const ty_kernel_key *key, void *fn, void *handle) {
  if (j->n_map == j->cap_map) {
    size_t cap = j->cap_map ? j->cap_map * 2 : 16;
    jit_entry *m = realloc(j->map, cap * sizeof *m);
    void **h = realloc(j->handles, cap * sizeof *h);
    if (m) j->map = m;
    if (h) j->handles = h;
    if (!m || !h) return TY_ENOMEM;
    j->cap_map = j->cap_handles = cap;
  }
  j->map[j->n_map++] = (jit_entry){*key, fn};
  j->handles[j->n_handles++] = handle;
  return 0;
}

/* Loads dirfd/name and returns sym, but only from a file of ours whose
 * ty_kernel_key is `key`; a mismatch is counted, unloaded and removed. */
static void *load(ty_jit *j, const char *name, const ty_kernel_key *key, const char *sym,
                  void **out_handle) {
  if (!ty_kernel_cache_trusts(j->dirfd, name)) return NULL;
  char path[300];
  snprintf(path, sizeof path, "/proc/self/fd/%d/%s", j->dirfd, name);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) return NULL;
  const unsigned long long *have = dlsym(h, "ty_kernel_key");
  void *fn = dlsym(h, sym);
  if (!have || have[0] != key->h[0] || have[1] != key->h[1] || !fn) {
    dlclose(h);
    j->st.rejected++;
    unlinkat(j->dirfd, name, 0);
    return NULL;
  }
  *out_handle = h;
  return fn;
}

void *ty__jit_lookup(ty_jit *j, const char *src, const char *sym) {
  if (!j || j->off || j->broken) return NULL;
  ty_kernel_key key = j->target;
  ty_kernel_key_str(&key, src);
  for (size_t i = 0; i < j->n_map; i++)
    if (j->map[i].key.h[0] == key.h[0] && j->map[i].key.h[1] == key.h[1]) return j->map[i].fn;
  char base[64], name[80];
  snprintf(base, sizeof base, "ty_%016llx%016llx", (unsigned long long)key.h[0],
           (unsigned long long)key.h[1]);
  snprintf(name, sizeof name, "%s.so", base);
  void *handle = NULL, *fn = load(j, name, &key, sym, &handle);
  if (fn) {
    j->st.disk_loads++;
  } else {
    if (compile_to(j, src, &key, base, name) != 0 || !(fn = load(j, name, &key, sym, &handle))) {
      j->st.compile_failures++;
      j->broken = true;
      return NULL;
    }
    j->st.compiles++;
  }
  if (remember(j, &key, fn, handle) != 0) {
    dlclose(handle);
    return NULL;
  }
  return fn;
}
