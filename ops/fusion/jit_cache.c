/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JIT's disk cache: where kernels may be loaded from, and what their
 * names must depend on.
 *
 * A kernel in the cache is code this process will run, so the directory
 * must be one only its user can write: it is opened with O_NOFOLLOW, must
 * be a directory owned by the effective uid (checked with lstat and again
 * with fstat on the descriptor, which must be the same inode), and loses
 * any group or other permission bits (fchmod 0700, safe as we own it). The
 * descriptor stays open: the compiler runs inside it (fchdir) and objects
 * are opened through /proc/self/fd/N, so a path swapped after the check
 * changes nothing. There is no fallback under /tmp: without a home the
 * cache is off and kernels are interpreted.
 *
 * The cache key: a kernel compiled with -march=native for one CPU may
 * crash on another sharing the cache (an NFS home), and a new compiler may
 * generate other code, so the key covers, besides the source: the
 * compiler's argv and flags, the compiler binary's identity (resolved
 * path, size, mtime), and the CPU (x86: vendor, family/model/stepping and
 * the feature words of CPUID leaves 1 and 7; elsewhere the kernel's
 * AT_HWCAP, AT_HWCAP2 and AT_PLATFORM).
 */
#include "ops/fusion/fusion_internal.h"

#include "lib/base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* ---- the key ------------------------------------------------------------- */

void ty_kernel_key_init(ty_kernel_key *k) {
  k->h[0] = 0xcbf29ce484222325ull; /* FNV-1a offset basis */
  k->h[1] = 0x84222325cbf29ce4ull; /* a second, independent lane */
}

void ty_kernel_key_add(ty_kernel_key *k, const void *data, size_t n) {
  const uint8_t *p = data;
  for (size_t i = 0; i < n; i++) {
    k->h[0] = (k->h[0] ^ p[i]) * 0x100000001b3ull;
    k->h[1] = ty_mix64(k->h[1] ^ ((uint64_t)p[i] << ((i & 7) * 8)) ^ (uint64_t)i);
  }
  /* A length marker, so ("ab","c") and ("a","bc") differ. */
  k->h[0] = (k->h[0] ^ (uint64_t)n) * 0x100000001b3ull;
  k->h[1] = ty_mix2(k->h[1], (uint64_t)n);
}

void ty_kernel_key_str(ty_kernel_key *k, const char *s) {
  ty_kernel_key_add(k, s, strlen(s));
}

static void add_cpu(ty_kernel_key *k) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned int r[4] = {0};
  unsigned int words[10] = {0};
  if (__get_cpuid(0, &r[0], &r[1], &r[2], &r[3])) {
    words[0] = r[1], words[1] = r[3], words[2] = r[2]; /* "GenuineIntel" */
    unsigned int max = r[0];
    if (__get_cpuid(1, &r[0], &r[1], &r[2], &r[3]))
      words[3] = r[0], words[4] = r[2], words[5] = r[3];
    if (max >= 7) {
      __cpuid_count(7, 0, r[0], r[1], r[2], r[3]);
      words[6] = r[1], words[7] = r[2], words[8] = r[3];
    }
  }
  ty_kernel_key_add(k, words, sizeof words);
#endif
  unsigned long caps[2] = {getauxval(AT_HWCAP), getauxval(AT_HWCAP2)};
  ty_kernel_key_add(k, caps, sizeof caps);
  const char *platform = (const char *)getauxval(AT_PLATFORM);
  ty_kernel_key_str(k, platform ? platform : "");
}

/* The compiler binary argv0 names, as PATH resolves it. */
static void add_compiler(ty_kernel_key *k, const char *argv0) {
  char found[PATH_MAX] = "", real[PATH_MAX];
  if (strchr(argv0, '/')) {
    snprintf(found, sizeof found, "%s", argv0);
  } else {
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p && !found[0];) {
      size_t len = strcspn(p, ":");
      char cand[PATH_MAX];
      snprintf(cand, sizeof cand, "%.*s/%s", (int)len, len ? p : ".", argv0);
      if (access(cand, X_OK) == 0) snprintf(found, sizeof found, "%s", cand);
      p += len + (p[len] == ':');
    }
  }
  struct stat st;
  if (found[0] && realpath(found, real) && stat(real, &st) == 0) {
    ty_kernel_key_str(k, real);
    int64_t id[3] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec};
    ty_kernel_key_add(k, id, sizeof id);
  }
}

void ty__jit_key_target(ty_kernel_key *k, char *const *cc_argv, int cc_argc,
                        const char *const *flags, size_t n_flags) {
  for (int i = 0; i < cc_argc; i++)
    ty_kernel_key_str(k, cc_argv[i]);
  for (size_t i = 0; i < n_flags; i++)
    ty_kernel_key_str(k, flags[i]);
  if (cc_argc > 0) add_compiler(k, cc_argv[0]);
  add_cpu(k);
}

/* ---- the directory --------------------------------------------------------- */

int ty_kernel_cache_default_dir(char *out, size_t len) {
  const char *env = getenv("TRAINYARD_KERNEL_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  if (!home || !home[0]) {
    struct passwd *pw = getpwuid(geteuid());
    home = pw && pw->pw_dir && pw->pw_dir[0] ? pw->pw_dir : NULL;
  }
  int n;
  if (env && env[0])
    n = snprintf(out, len, "%s", env);
  else if (xdg && xdg[0] == '/')
    n = snprintf(out, len, "%s/trainyard/kernels", xdg);
  else if (home)
    n = snprintf(out, len, "%s/.cache/trainyard/kernels", home);
  else
    return TY_ENOTFOUND;
  return n > 0 && (size_t)n < len ? 0 : TY_EINVAL;
}

/* mkdir -p, creating what is missing private to its user. */
static int make_dirs(const char *path) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return TY_EINVAL;
  for (char *p = buf + 1;; p++) {
    bool end = *p == '\0';
    if (*p != '/' && !end) continue;
    *p = '\0';
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -errno;
    if (end) return 0;
    *p = '/';
  }
}

int ty_kernel_cache_open(const char *path, int *out_fd, char *why, size_t why_len) {
  *out_fd = -1;
  int rc = make_dirs(path);
  if (rc != 0) return ty_errf(why, why_len, TY_EIO, "cannot create %s: %s", path, ty_strerror(rc));
  struct stat ls, fs;
  if (lstat(path, &ls) != 0) return ty_errf(why, why_len, TY_EIO, "%s: %s", path, strerror(errno));
  if (!S_ISDIR(ls.st_mode))
    return ty_errf(why, why_len, TY_EPERM, "%s is not a directory (a symbolic link?)", path);
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ty_errf(why, why_len, TY_EIO, "%s: %s", path, strerror(errno));
  uid_t me = geteuid();
  if (fstat(fd, &fs) != 0 || fs.st_dev != ls.st_dev || fs.st_ino != ls.st_ino)
    rc = ty_errf(why, why_len, TY_EPERM, "%s changed while it was checked", path);
  else if (fs.st_uid != me)
    rc = ty_errf(why, why_len, TY_EPERM,
                 "%s is owned by uid %u, not %u: refusing to load code from it", path,
                 (unsigned)fs.st_uid, (unsigned)me);
  else if ((fs.st_mode & 077) && fchmod(fd, 0700) != 0)
    rc = ty_errf(why, why_len, TY_EPERM, "%s is open to other users and cannot be made private: %s",
                 path, strerror(errno));
  if (rc != 0) {
    close(fd);
    return rc;
  }
  *out_fd = fd;
  return 0;
}

bool ty_kernel_cache_trusts(int dirfd, const char *name) {
  struct stat st;
  return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
         st.st_uid == geteuid() && !(st.st_mode & 022);
}
