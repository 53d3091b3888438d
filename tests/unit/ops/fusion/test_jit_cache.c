/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/fusion's kernel cache is code this process runs, so it is trusted
 * only when private: a new cache is created 0700; one open to others is
 * made private; a symbolic link, or a directory of another user, is
 * refused (kernels are then interpreted, with the reason in
 * ty_jit_status); an object whose embedded key does not match its name is
 * unloaded before use, removed and compiled again; and one other users may
 * write is not loaded. The fused SGD step is the kernel compiled here.
 */
#include "ops/fusion/fusion.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static void make_root(void) {
  snprintf(root, sizeof root, "/tmp/ty_jit_cache_test.XXXXXX");
  cr_assert_not_null(mkdtemp(root));
}

/* One fused SGD step through j; returns the jit's stats after it. */
static ty_jit_stats step(ty_jit *j) {
  float p[33], g[33];
  for (int i = 0; i < 33; i++)
    p[i] = 1.0f, g[i] = 0.5f;
  ty_fused_sgd h = {.lr = 0.1f};
  cr_assert_eq(ty_jit_sgd_step(j, &h, 33, p, g, NULL), 0);
  cr_assert_float_eq(p[0], 0.95f, 1e-6f);
  ty_jit_stats st;
  ty_jit_get_stats(j, &st);
  return st;
}

static ty_jit *jit_in(const char *dir) {
  ty_jit *j;
  ty_jit_opts o = {.cache_dir = dir};
  cr_assert_eq(ty_jit_create(&o, &j), 0);
  return j;
}

/* The path of the one compiled object in dir (ty_*.so). */
static void object_in(const char *dir, char *out, size_t len) {
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  out[0] = '\0';
  for (struct dirent *e; (e = readdir(d));)
    if (!strncmp(e->d_name, "ty_", 3) && strstr(e->d_name, ".so") && !strstr(e->d_name, ".tmp"))
      snprintf(out, len, "%s/%s", dir, e->d_name);
  closedir(d);
  cr_assert(out[0], "no object in %s", dir);
}

Test(jit_cache, a_new_cache_is_private_and_reused) {
  make_root();
  char dir[300];
  snprintf(dir, sizeof dir, "%s/a/b/kernels", root);
  ty_jit *j = jit_in(dir);
  cr_assert_str_eq(ty_jit_status(j), "");
  ty_jit_stats st = step(j);
  cr_assert_eq(st.compiles, 1);
  ty_jit_destroy(j);
  struct stat s;
  cr_assert_eq(stat(dir, &s), 0);
  cr_assert_eq(s.st_mode & 0777, 0700);
  snprintf(dir, sizeof dir, "%s/a", root);
  cr_assert_eq(stat(dir, &s), 0);
  cr_assert_eq(s.st_mode & 0777, 0700, "created parents are private too");
  snprintf(dir, sizeof dir, "%s/a/b/kernels", root);
  j = jit_in(dir);
  st = step(j);
  cr_assert_eq(st.compiles, 0);
  cr_assert_eq(st.disk_loads, 1);
  ty_jit_destroy(j);
}

Test(jit_cache, a_cache_open_to_others_is_made_private) {
  make_root();
  cr_assert_eq(chmod(root, 0777), 0);
  ty_jit *j = jit_in(root);
  struct stat s;
  cr_assert_eq(stat(root, &s), 0);
  cr_assert_eq(s.st_mode & 0777, 0700);
  cr_assert_eq(step(j).compiles, 1);
  ty_jit_destroy(j);
}

Test(jit_cache, a_symbolic_link_is_refused) {
  make_root();
  char link[300];
  snprintf(link, sizeof link, "%s/link", root);
  cr_assert_eq(symlink(root, link), 0);
  ty_jit *j = jit_in(link);
  cr_assert_null(ty_jit_cache_dir(j));
  cr_assert(strstr(ty_jit_status(j), "not a directory"), "%s", ty_jit_status(j));
  ty_jit_stats st = step(j); /* interpreted, same result */
  cr_assert_eq(st.compiles + st.disk_loads, 0);
  cr_assert_eq(st.interp_runs, 1);
  ty_jit_destroy(j);
}

Test(jit_cache, another_users_cache_is_refused) {
  if (geteuid() != 0) cr_skip_test("needs root to give a directory away");
  make_root();
  cr_assert_eq(chown(root, 65534, 65534), 0);
  ty_jit *j = jit_in(root);
  cr_assert_null(ty_jit_cache_dir(j));
  cr_assert(strstr(ty_jit_status(j), "owned by uid 65534"), "%s", ty_jit_status(j));
  cr_assert_eq(step(j).interp_runs, 1);
  ty_jit_destroy(j);
}

Test(jit_cache, an_object_that_is_not_what_its_name_says_is_recompiled) {
  make_root();
  ty_jit *j = jit_in(root);
  step(j);
  ty_jit_destroy(j);
  char obj[600];
  object_in(root, obj, sizeof obj);
  /* Another kernel (the Adam step) under the SGD kernel's name. */
  char other[300];
  snprintf(other, sizeof other, "%s/other", root);
  cr_assert_eq(mkdir(other, 0700), 0);
  j = jit_in(other);
  float p[4] = {1}, g[4] = {1}, m[4] = {0}, v[4] = {0};
  ty_fused_adam h = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 1};
  cr_assert_eq(ty_jit_adam_step(j, &h, 4, p, g, m, v), 0);
  ty_jit_destroy(j);
  char adam[600];
  object_in(other, adam, sizeof adam);
  cr_assert_eq(rename(adam, obj), 0);
  j = jit_in(root);
  ty_jit_stats st = step(j);
  cr_assert_eq(st.rejected, 1, "the foreign object was not rejected");
  cr_assert_eq(st.compiles, 1);
  ty_jit_destroy(j);
}

Test(jit_cache, an_object_others_may_write_is_not_loaded) {
  make_root();
  ty_jit *j = jit_in(root);
  step(j);
  ty_jit_destroy(j);
  char obj[600];
  object_in(root, obj, sizeof obj);
  cr_assert_eq(chmod(obj, 0666), 0);
  j = jit_in(root);
  ty_jit_stats st = step(j);
  cr_assert_eq(st.disk_loads, 0);
  cr_assert_eq(st.compiles, 1, "a writable object must be replaced, not run");
  ty_jit_destroy(j);
  struct stat s;
  cr_assert_eq(stat(obj, &s), 0);
  cr_assert_eq(s.st_mode & 022, 0);
}

Test(jit_cache, the_default_cache_lives_under_home_never_tmp) {
  make_root();
  unsetenv("TRAINYARD_KERNEL_CACHE");
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", root, 1);
  ty_jit *j;
  cr_assert_eq(ty_jit_create(NULL, &j), 0);
  char want[300];
  snprintf(want, sizeof want, "%s/.cache/trainyard/kernels", root);
  cr_assert_str_eq(ty_jit_cache_dir(j), want);
  ty_jit_destroy(j);
}
