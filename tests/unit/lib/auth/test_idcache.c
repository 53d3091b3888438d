/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/auth/idcache.c: local callers' identities kept while the watched
 * files are unchanged and younger than the lifetime; unknown uids never
 * kept; the oldest replaced when full. And the queue answering a known
 * local caller inside the submit call, an unknown one off the loop.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/auth/auth.h"
#include "lib/auth/idcache.h"
#include "tests/support/tree.h"

static char dir[TY_TEST_DIR_LEN];
static char watched[TY_TEST_DIR_LEN + 16];

static void write_file(const char *text) {
  FILE *f = fopen(watched, "w");
  cr_assert(f);
  fputs(text, f);
  fclose(f);
}

static void setup(void) {
  cr_assert_eq(ty_test_make_dir(dir, "idcache-test"), 0);
  snprintf(watched, sizeof watched, "%s/passwd", dir);
  write_file("alice:x:1000:1000::/home/alice:/bin/sh\n");
}

static void teardown(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

static ty_auth_id known(uint32_t uid, const char *name) {
  ty_auth_id id = {.uid = uid, .gid = uid, .known = true, .n_groups = 1, .groups = {7}};
  snprintf(id.user, sizeof id.user, "%s", name);
  return id;
}

static ty__idcache *new_cache(void) {
  const char *files[] = {watched};
  return ty__idcache_create(files, 1, 1000);
}

Test(idcache, fresh_entry_is_given_back, .init = setup, .fini = teardown) {
  ty__idcache *c = new_cache();
  ty_auth_id out;
  cr_expect_not(ty__idcache_get(c, 1000, 1000, 10, &out), "empty at first");
  ty_auth_id alice = known(1000, "alice");
  ty__idcache_put(c, &alice, 10);
  cr_assert(ty__idcache_get(c, 1000, 1000, 500, &out));
  cr_expect_str_eq(out.user, "alice");
  cr_expect_eq(out.n_groups, 1);
  cr_expect_eq(out.groups[0], 7);
  cr_expect_not(ty__idcache_get(c, 1000, 1001, 500, &out), "another gid is another entry");
  ty__idcache_destroy(c);
}

Test(idcache, lifetime_bounds_an_entry, .init = setup, .fini = teardown) {
  ty__idcache *c = new_cache();
  ty_auth_id alice = known(1000, "alice"), out;
  ty__idcache_put(c, &alice, 10);
  cr_expect_not(ty__idcache_get(c, 1000, 1000, 1010, &out), "1000 ms old: stale");
  cr_expect_not(ty__idcache_get(c, 1000, 1000, 20, &out), "dropped, not revived");
  ty__idcache_put(c, &alice, 2000);
  cr_expect_not(ty__idcache_get(c, 1000, 1000, 1999, &out), "a clock that went back");
  ty__idcache_destroy(c);
}

Test(idcache, an_edited_file_empties_the_cache, .init = setup, .fini = teardown) {
  ty__idcache *c = new_cache();
  ty_auth_id alice = known(1000, "alice"), out;
  ty__idcache_put(c, &alice, 10);
  write_file("alice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n");
  cr_expect_not(ty__idcache_get(c, 1000, 1000, 20, &out), "useradd seen by the next lookup");
  ty__idcache_put(c, &alice, 30);
  cr_expect(ty__idcache_get(c, 1000, 1000, 40, &out), "kept again after the change");
  unlink(watched);
  cr_expect_not(ty__idcache_get(c, 1000, 1000, 50, &out), "a removed file is a change");
  ty__idcache_destroy(c);
}

Test(idcache, unknown_uids_are_not_kept_and_the_oldest_goes, .init = setup, .fini = teardown) {
  ty__idcache *c = new_cache();
  ty_auth_id nobody = {.uid = 4242, .gid = 4242}, out;
  snprintf(nobody.user, sizeof nobody.user, "uid 4242");
  ty__idcache_put(c, &nobody, 10);
  cr_expect_not(ty__idcache_get(c, 4242, 4242, 20, &out), "looked up every time");
  for (uint32_t uid = 1; uid <= 33; uid++) { /* one more than the cache holds */
    ty_auth_id id = known(uid, "u");
    ty__idcache_put(c, &id, (int64_t)uid);
  }
  cr_expect_not(ty__idcache_get(c, 1, 1, 40, &out), "the oldest was replaced");
  for (uint32_t uid = 2; uid <= 33; uid++)
    cr_expect(ty__idcache_get(c, uid, uid, 40, &out), "uid %u kept", uid);
  ty__idcache_destroy(c);
}

/* ---- the queue's local callers ---------------------------------------------------------- */

typedef struct seen {
  int calls;
  ty_auth_id id;
} seen;

static void on_done(const ty_auth_done *d, void *ud) {
  seen *s = ud;
  cr_expect_eq(d->status, 0);
  s->calls++;
  s->id = d->id;
}

Test(idcache, queue_answers_a_known_local_caller_inside_the_submit) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ty_auth_queue *q;
  cr_assert_eq(ty_auth_queue_create(&loop, &q), 0);
  ty_auth_op op = {.kind = TY_AUTH_OP_VERIFY,
                   .method = "Ping",
                   .peer = true,
                   .peer_uid = (uint32_t)getuid(),
                   .peer_gid = (uint32_t)getgid()};
  seen first = {0}, second = {0};
  ty_auth_queue_submit(q, &op, on_done, &first);
  cr_expect_eq(first.calls, 0, "the first lookup runs off the loop");
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(first.calls, 1);
  cr_expect(first.id.authenticated && first.id.known);
  ty_auth_queue_submit(q, &op, on_done, &second);
  cr_expect_eq(second.calls, 1, "the second one is answered from the cache at once");
  cr_expect_str_eq(second.id.user, first.id.user);
  cr_expect(second.id.authenticated);
  cr_expect_eq(ty_auth_queue_pending(q), 0);
  seen unknown = {0};
  op.peer_uid = op.peer_gid = 3999999; /* no passwd entry */
  ty_auth_queue_submit(q, &op, on_done, &unknown);
  cr_expect_eq(unknown.calls, 0, "an unknown uid is looked up off the loop, every time");
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(unknown.calls, 1);
  cr_expect_not(unknown.id.known);
  ty_auth_queue_destroy(q);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}
