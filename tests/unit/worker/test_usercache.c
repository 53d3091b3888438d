/* SPDX-License-Identifier: Apache-2.0 */
/* The worker's cache of resolved submitters (worker/usercache.c): an entry
 * is a copy, keyed by uid and gid, dropped when a watched file changes
 * (rewritten, replaced, created, removed) or when it is older than the
 * lifetime; the oldest entry makes room. Real files in a temporary
 * directory stand for /etc/passwd and /etc/group. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/usercache.h"

typedef struct files {
  char dir[64], passwd[96], group[96];
} files;

static void write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  cr_assert_not_null(fp, "%s", path);
  fputs(text, fp);
  fclose(fp);
}

static ty__usercache *make(files *f, int64_t ttl_ms) {
  snprintf(f->dir, sizeof f->dir, "/tmp/ty-usercache-XXXXXX");
  cr_assert_not_null(mkdtemp(f->dir));
  snprintf(f->passwd, sizeof f->passwd, "%s/passwd", f->dir);
  snprintf(f->group, sizeof f->group, "%s/group", f->dir);
  write_file(f->passwd, "alice:x:1000:1000::/home/alice:/bin/bash\n");
  write_file(f->group, "alice:x:1000:\n");
  const char *watched[] = {f->passwd, f->group};
  return ty__usercache_create(watched, 2, ttl_ms);
}

static void done(files *f, ty__usercache *c) {
  ty__usercache_destroy(c);
  unlink(f->passwd);
  unlink(f->group);
  rmdir(f->dir);
}

static ty__runas who(uint32_t uid, uint32_t gid, const char *name, size_t n_groups) {
  ty__runas r = {.switch_user = true, .uid = uid, .gid = gid, .n_groups = n_groups};
  snprintf(r.user, sizeof r.user, "%s", name);
  snprintf(r.home, sizeof r.home, "/home/%s", name);
  snprintf(r.shell, sizeof r.shell, "/bin/bash");
  r.groups = calloc(n_groups ? n_groups : 1, sizeof *r.groups);
  for (size_t i = 0; i < n_groups; i++)
    r.groups[i] = gid + (uint32_t)i;
  return r;
}

static bool has(ty__usercache *c, uint32_t uid, uint32_t gid, int64_t now) {
  ty__runas out;
  memset(&out, 0, sizeof out);
  bool hit = ty__usercache_get(c, uid, gid, now, &out);
  ty__runas_close(&out);
  return hit;
}

Test(usercache, a_hit_is_a_copy_of_what_was_put) {
  files f;
  ty__usercache *c = make(&f, 30000);
  ty__runas in = who(1000, 1000, "alice", 3);
  cr_assert_not(has(c, 1000, 1000, 0), "an empty cache answered");
  ty__usercache_put(c, &in, 0);
  in.groups[0] = 7; /* the cache keeps its own copy */
  ty__runas out;
  cr_assert(ty__usercache_get(c, 1000, 1000, 10, &out));
  cr_assert(out.switch_user);
  cr_assert_str_eq(out.user, "alice");
  cr_assert_str_eq(out.home, "/home/alice");
  cr_assert_eq(out.n_groups, 3);
  cr_assert_eq(out.groups[0], 1000);
  cr_assert_eq(out.groups[2], 1002);
  cr_assert_neq(out.groups, in.groups);
  ty__runas_close(&out);
  ty__runas_close(&in);
  done(&f, c);
}

Test(usercache, the_key_is_uid_and_gid) {
  files f;
  ty__usercache *c = make(&f, 30000);
  ty__runas in = who(1000, 1000, "alice", 1);
  ty__usercache_put(c, &in, 0);
  cr_assert_not(has(c, 1000, 1001, 1), "another gid has other groups");
  cr_assert_not(has(c, 1001, 1000, 1), "another uid is another user");
  cr_assert(has(c, 1000, 1000, 1));
  ty__runas_close(&in);
  done(&f, c);
}

Test(usercache, an_entry_expires_after_the_lifetime) {
  files f;
  ty__usercache *c = make(&f, 30000);
  ty__runas in = who(1000, 1000, "alice", 1);
  ty__usercache_put(c, &in, 1000);
  cr_assert(has(c, 1000, 1000, 30999));
  cr_assert_not(has(c, 1000, 1000, 31000), "an entry outlived its lifetime");
  cr_assert_not(has(c, 1000, 1000, 1001), "an expired entry was not dropped");
  ty__runas_close(&in);
  done(&f, c);
}

Test(usercache, a_change_to_a_watched_file_empties_it) {
  files f;
  ty__usercache *c = make(&f, 30000);
  ty__runas in = who(1000, 1000, "alice", 1);
  cr_assert_not(has(c, 1000, 1000, 0)); /* the files as they are now */
  ty__usercache_put(c, &in, 0);
  cr_assert(has(c, 1000, 1000, 1));
  /* usermod -aG: the group file gains a member (same inode, new size). */
  FILE *fp = fopen(f.group, "a");
  fputs("video:x:44:alice\n", fp);
  fclose(fp);
  cr_assert_not(has(c, 1000, 1000, 2), "an edit of the group file was not seen");
  ty__usercache_put(c, &in, 2);
  cr_assert(has(c, 1000, 1000, 3));
  /* vipw or useradd: a new file renamed over the old one. */
  char tmp[128];
  snprintf(tmp, sizeof tmp, "%s/passwd.new", f.dir);
  write_file(tmp, "alice:x:1000:1000::/home/alice:/bin/bash\n");
  cr_assert_eq(rename(tmp, f.passwd), 0);
  cr_assert_not(has(c, 1000, 1000, 4), "a replaced passwd file was not seen");
  ty__usercache_put(c, &in, 4);
  /* A watched file that goes away (or appears) is a change too. */
  unlink(f.group);
  cr_assert_not(has(c, 1000, 1000, 5), "a removed group file was not seen");
  ty__runas_close(&in);
  done(&f, c);
}

Test(usercache, the_oldest_entry_makes_room) {
  files f;
  ty__usercache *c = make(&f, 1000000);
  for (uint32_t i = 0; i < 200; i++) {
    ty__runas in = who(2000 + i, 2000 + i, "user", 1);
    ty__usercache_put(c, &in, (int64_t)i);
    ty__runas_close(&in);
  }
  cr_assert(has(c, 2199, 2199, 300), "the newest entry was not kept");
  cr_assert_not(has(c, 2000, 2000, 300), "the oldest of 200 is still there");
  /* Putting the same user again replaces its entry, not another one. */
  ty__runas again = who(2199, 2199, "renamed", 1);
  ty__usercache_put(c, &again, 301);
  ty__runas out;
  cr_assert(ty__usercache_get(c, 2199, 2199, 302, &out));
  cr_assert_str_eq(out.user, "renamed");
  ty__runas_close(&out);
  ty__runas_close(&again);
  cr_assert(has(c, 2198, 2198, 302), "a put of a known user dropped another");
  done(&f, c);
}
