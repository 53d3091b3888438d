/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/auth: both schemes against every refusal (with a private munged for
 * MUNGE), the key file's checks, the documented wire format of the key
 * credential, identities, and the queue's ordering, copies and withdrawn checks.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <grp.h>
#include <munge.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/auth/auth.h"
#include "tests/support/munged.h"
#include "tests/support/tree.h"

static char dir[TY_TEST_DIR_LEN];

static void make_dir(void) {
  cr_assert_eq(ty_test_make_dir(dir, "auth-test"), 0);
}

static void remove_dir(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

/* n bytes of a pattern that differs per `seed`. */
static void write_seeded(const char *path, size_t n, mode_t mode, unsigned seed) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  cr_assert(fd >= 0);
  uint8_t b[4096];
  for (size_t i = 0; i < sizeof b; i++)
    b[i] = (uint8_t)(i * 7 + 1 + seed);
  cr_assert_eq(write(fd, b, n), (ssize_t)n);
  close(fd);
  chmod(path, mode);
}

static void write_file(const char *path, size_t n, mode_t mode) {
  write_seeded(path, n, mode, 0);
}

static ty_auth *key_auth(const char *name) {
  char path[300], err[TY_ERR_LEN] = "";
  snprintf(path, sizeof path, "%s/%s", dir, name);
  ty_auth *a = NULL;
  ty_auth_config cfg = {.mode = TY_AUTH_KEY, .key_file = path};
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), 0, "%s", err);
  return a;
}

/* A fresh 64-byte key file `name` in dir and its scheme. */
static ty_auth *new_key(const char *name) {
  char path[300];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  write_seeded(path, 64, 0600, (unsigned)name[0]);
  return key_auth(name);
}

/* A credential as a sender would build it from the documented format. */
static void forge(const char *keyname, uint32_t uid, int64_t time_ms, const char *method,
                  const char *payload, uint8_t out[TY_AUTH_KEY_CRED_LEN]) {
  char path[300];
  snprintf(path, sizeof path, "%s/%s", dir, keyname);
  uint8_t key[4096];
  int fd = open(path, O_RDONLY);
  ssize_t kn = read(fd, key, sizeof key);
  close(fd);
  memcpy(out, "TYK1", 4);
  for (int i = 0; i < 4; i++)
    out[4 + i] = (uint8_t)(uid >> (24 - 8 * i));
  memset(out + 8, 0, 4);
  for (int i = 0; i < 8; i++)
    out[12 + i] = (uint8_t)((uint64_t)time_ms >> (56 - 8 * i));
  for (int i = 0; i < 16; i++)
    out[20 + i] = (uint8_t)rand();
  uint8_t digest[32], msg[68];
  unsigned n;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
  EVP_DigestUpdate(ctx, "TYA1", 4);
  EVP_DigestUpdate(ctx, method, strlen(method) + 1);
  EVP_DigestUpdate(ctx, payload, strlen(payload));
  EVP_DigestFinal_ex(ctx, digest, &n);
  EVP_MD_CTX_free(ctx);
  memcpy(msg, out, 36);
  memcpy(msg + 36, digest, 32);
  HMAC(EVP_sha256(), key, (int)kn, msg, sizeof msg, out + 36, &n);
}

Test(auth, mode_names) {
  ty_auth_mode m;
  cr_assert_eq(ty_auth_mode_parse("munge", &m), 0);
  cr_assert_eq(m, TY_AUTH_MUNGE);
  cr_assert_eq(ty_auth_mode_parse("key", &m), 0);
  cr_assert_eq(ty_auth_mode_parse("none", &m), 0);
  cr_assert_eq(m, TY_AUTH_NONE);
  cr_assert_eq(ty_auth_mode_parse("Munge", &m), TY_EINVAL);
  cr_assert_str_eq(ty_auth_mode_name(TY_AUTH_KEY), "key");
}

Test(auth, key_file_must_be_private, .init = make_dir, .fini = remove_dir, .timeout = 10) {
  char path[300], link[300], err[TY_ERR_LEN];
  ty_auth *a = NULL;
  ty_auth_config cfg = {.mode = TY_AUTH_KEY, .key_file = path};
  snprintf(path, sizeof path, "%s/open.key", dir);
  write_file(path, 64, 0644);
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), TY_EPERM);
  cr_assert(strstr(err, "open.key") && strstr(err, "chmod 0600"), "%s", err);
  snprintf(path, sizeof path, "%s/short.key", dir);
  write_file(path, 16, 0600);
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "16 bytes"), "%s", err);
  snprintf(path, sizeof path, "%s/absent.key", dir);
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), TY_EIO);
  cr_assert(strstr(err, "absent.key"), "%s", err);
  snprintf(path, sizeof path, "%s/good.key", dir);
  write_file(path, 64, 0600);
  snprintf(link, sizeof link, "%s/link.key", dir);
  cr_assert_eq(symlink(path, link), 0);
  cfg.key_file = link;
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), TY_EPERM);
  cr_assert(strstr(err, "symbolic link"), "%s", err);
  snprintf(path, sizeof path, "%s/fifo.key", dir); /* refused, not waited on */
  cr_assert_eq(mkfifo(path, 0600), 0);
  cfg.key_file = path;
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), TY_EPERM);
  cr_assert(strstr(err, "fifo.key: not a regular file"), "%s", err);
  cfg.key_file = NULL;
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), TY_EINVAL);
}

/* ty_auth_create on the key file at path as uid/gid with `group` as its
 * one supplementary group, in a child: 0 when it accepts the key, 1 when
 * it refuses it with `want` in the message, 2 otherwise (it says why). */
static int create_as(uid_t uid, gid_t gid, gid_t group, const char *path, const char *want) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    if (setgroups(1, &group) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(3);
    char err[TY_ERR_LEN] = "";
    ty_auth *a = NULL;
    ty_auth_config cfg = {.mode = TY_AUTH_KEY, .key_file = path};
    if (ty_auth_create(&cfg, &a, err, sizeof err) == 0) _exit(0);
    fprintf(stderr, "uid %u: %s\n", (unsigned)uid, err);
    _exit(want && strstr(err, want) ? 1 : 2);
  }
  int st = 0;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A 64-byte key file `name` in dir with this owner, group and mode. */
static void key_file(char *path, size_t n, const char *name, uid_t uid, gid_t gid, mode_t mode) {
  snprintf(path, n, "%s/%s", dir, name);
  write_file(path, 64, 0600);
  cr_assert_eq(chown(path, uid, gid), 0);
  cr_assert_eq(chmod(path, mode), 0);
}

/* One key file for traind running as the service user and trainworkerd
 * running as root on one host: owner root, mode 0640, the service user's
 * group (docs/deploy.md). Group-writable or world-readable keys, and
 * group-readable ones of any other owner, stay refused, the message naming
 * owner, group and mode. */
Test(auth, key_file_shared_by_root_with_a_group, .init = make_dir, .fini = remove_dir,
     .timeout = 10) {
  if (geteuid() != 0) cr_skip_test("needs root (chown, setuid)");
  const uid_t svc = 65534;
  const gid_t grp = 65533, other = 65532;
  cr_assert_eq(chmod(dir, 0711), 0);
  char path[300], err[TY_ERR_LEN] = "";
  ty_auth *a = NULL;
  ty_auth_config cfg = {.mode = TY_AUTH_KEY, .key_file = path};
  key_file(path, sizeof path, "shared.key", 0, grp, 0640);
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), 0, "root: %s", err);
  ty_auth_destroy(a);
  cr_assert_eq(create_as(svc, other, grp, path, NULL), 0, "a member of the key's group");
  cr_assert_eq(create_as(svc, other, other, path,
                         "shared.key: Permission denied (owner 0, group 65533, mode 0640; this "
                         "process is uid 65534)"),
               1, "not a member");
  /* Group-writable; world-readable. */
  key_file(path, sizeof path, "gw.key", 0, grp, 0660);
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), TY_EPERM);
  cr_assert(strstr(err, "gw.key: mode 0660 lets group 65533 write or run it (owner 0)"), "%s", err);
  cr_assert_eq(create_as(svc, other, grp, path, "mode 0660"), 1);
  key_file(path, sizeof path, "wr.key", 0, grp, 0644);
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), TY_EPERM);
  cr_assert(strstr(err, "wr.key: mode 0644 lets other users at it (owner 0, group 65533)"), "%s",
            err);
  /* Group-readable, owned by another user: refused by root and by that user. */
  key_file(path, sizeof path, "svc.key", svc, grp, 0640);
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), TY_EPERM);
  cr_assert(strstr(err, "svc.key: owned by uid 65534, not by this user (0) or root "
                        "(group 65533, mode 0640)"),
            "%s", err);
  cr_assert_eq(create_as(svc, other, grp, path, "its owner is uid 65534, not root"), 1);
  /* Its own key, private: accepted as before. */
  key_file(path, sizeof path, "own.key", svc, other, 0600);
  cr_assert_eq(create_as(svc, other, grp, path, NULL), 0, "its own 0600 key");
}

Test(auth, key_scheme_round_trip, .init = make_dir, .fini = remove_dir) {
  char err[TY_ERR_LEN];
  ty_auth *a = new_key("k");
  uint8_t *c = NULL;
  size_t n = 0;
  cr_assert_eq(ty_auth_sign(a, "Ping", "abc", 3, &c, &n, err, sizeof err), 0);
  cr_assert_eq(n, TY_AUTH_KEY_CRED_LEN);
  cr_assert_eq(memcmp(c, "TYK1", 4), 0);
  ty_auth_id id;
  const char *label;
  cr_assert_eq(ty_auth_verify(a, "Ping", "abc", 3, c, n, &id, &label, err, sizeof err), 0, "%s",
               err);
  cr_assert(id.authenticated && id.via_key);
  cr_assert_eq(id.uid, geteuid());
  /* The second use of the same credential is a replay. */
  cr_assert_eq(ty_auth_verify(a, "Ping", "abc", 3, c, n, &id, &label, err, sizeof err), TY_EPERM);
  cr_assert_str_eq(label, "replayed");
  free(c);
  ty_auth_destroy(a);
}

Test(auth, key_scheme_refusals, .init = make_dir, .fini = remove_dir) {
  char err[TY_ERR_LEN];
  ty_auth *a = new_key("k"), *other = new_key("other");
  ty_auth_id id;
  const char *label;
  uint8_t c[TY_AUTH_KEY_CRED_LEN];
  cr_assert_eq(ty_auth_verify(a, "M", "p", 1, NULL, 0, &id, &label, err, sizeof err), TY_EPERM);
  cr_assert_str_eq(label, "no_credential");
  cr_assert_eq(
      ty_auth_verify(a, "M", "p", 1, (const uint8_t *)"xyz", 3, &id, &label, err, sizeof err),
      TY_EPERM);
  cr_assert_str_eq(label, "malformed");
  /* The documented format verifies; the same bytes for another request,
   * under another key, altered, too old or from the future do not. */
  forge("k", 0, ty_now_ms(), "M", "p", c);
  cr_assert_eq(ty_auth_verify(a, "M", "p", 1, c, sizeof c, &id, &label, err, sizeof err), 0, "%s",
               err);
  forge("k", 0, ty_now_ms(), "M", "p", c);
  cr_assert_eq(ty_auth_verify(a, "M", "q", 1, c, sizeof c, &id, &label, err, sizeof err), TY_EPERM);
  cr_assert_str_eq(label, "bad_credential");
  cr_assert_eq(ty_auth_verify(other, "M", "p", 1, c, sizeof c, &id, &label, err, sizeof err),
               TY_EPERM);
  cr_assert_str_eq(label, "bad_credential");
  c[5] ^= 1; /* claims another uid */
  cr_assert_eq(ty_auth_verify(a, "M", "p", 1, c, sizeof c, &id, &label, err, sizeof err), TY_EPERM);
  cr_assert_str_eq(label, "bad_credential");
  forge("k", 0, ty_now_ms() - (TY_AUTH_KEY_TTL_S + 5) * 1000, "M", "p", c);
  cr_assert_eq(ty_auth_verify(a, "M", "p", 1, c, sizeof c, &id, &label, err, sizeof err), TY_EPERM);
  cr_assert_str_eq(label, "expired");
  forge("k", 0, ty_now_ms() + (TY_AUTH_KEY_TTL_S + 5) * 1000, "M", "p", c);
  cr_assert_eq(ty_auth_verify(a, "M", "p", 1, c, sizeof c, &id, &label, err, sizeof err), TY_EPERM);
  cr_assert(strstr(err, "future"), "%s", err);
  ty_auth_destroy(a);
  ty_auth_destroy(other);
}

Test(auth, replay_cache_survives_growth, .init = make_dir, .fini = remove_dir) {
  char err[TY_ERR_LEN];
  ty_auth *a = new_key("k");
  uint8_t *first = NULL, *c = NULL;
  size_t n;
  ty_auth_id id;
  const char *label;
  cr_assert_eq(ty_auth_sign(a, "M", "", 0, &first, &n, err, sizeof err), 0);
  cr_assert_eq(ty_auth_verify(a, "M", "", 0, first, n, &id, &label, err, sizeof err), 0);
  for (int i = 0; i < 2000; i++) { /* the table grows several times */
    cr_assert_eq(ty_auth_sign(a, "M", "", 0, &c, &n, err, sizeof err), 0);
    cr_assert_eq(ty_auth_verify(a, "M", "", 0, c, n, &id, &label, err, sizeof err), 0);
    free(c);
  }
  cr_assert_eq(ty_auth_verify(a, "M", "", 0, first, n, &id, &label, err, sizeof err), TY_EPERM);
  cr_assert_str_eq(label, "replayed");
  free(first);
  ty_auth_destroy(a);
}

Test(auth, none_accepts_anything) {
  ty_auth_config cfg = {.mode = TY_AUTH_NONE};
  ty_auth *a = NULL;
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), 0);
  uint8_t *c = (uint8_t *)1;
  size_t n = 1;
  cr_assert_eq(ty_auth_sign(a, "M", "", 0, &c, &n, err, sizeof err), 0);
  cr_assert_null(c);
  ty_auth_id id;
  const char *label;
  cr_assert_eq(ty_auth_verify(a, "M", "", 0, NULL, 0, &id, &label, err, sizeof err), 0);
  cr_assert_not(id.authenticated);
  cr_assert_eq(ty_auth_probe(a, err, sizeof err), 0);
  ty_auth_destroy(a);
}

Test(auth, local_identity) {
  ty_auth_id id;
  ty_auth_id_local(0, 0, &id);
  cr_assert(id.known);
  cr_assert_str_eq(id.user, "root");
  cr_assert(ty_auth_id_in_group(&id, 0));
  ty_auth_id_local(4000000000u, 5, &id);
  cr_assert_not(id.known);
  cr_assert_str_eq(id.user, "uid 4000000000");
  cr_assert(ty_auth_id_in_group(&id, 5));
  cr_assert_not(ty_auth_id_in_group(&id, 6));
  /* The cluster's service: root, the service uid, or the cluster key. */
  ty_auth_id root = {.uid = 0}, svc = {.uid = 998}, user = {.uid = 1001};
  ty_auth_id keyed = {.uid = 1001, .via_key = true};
  cr_assert(ty_auth_id_is_service(&root, 998) && ty_auth_id_is_service(&svc, 998));
  cr_assert(ty_auth_id_is_service(&keyed, 998));
  cr_assert_not(ty_auth_id_is_service(&user, 998));
}

/* ---- MUNGE, with a private munged ------------------------------------------------------- */

static ty_test_munged md;

static void start_munged(void) {
  if (!ty_test_munged_start(&md)) cr_skip_test("munged is not available");
}
static void stop_munged(void) {
  ty_test_munged_stop(&md);
}

static ty_auth *munge_auth(const char *socket) {
  ty_auth_config cfg = {.mode = TY_AUTH_MUNGE, .munge_socket = socket};
  ty_auth *a = NULL;
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_auth_create(&cfg, &a, err, sizeof err), 0);
  return a;
}

Test(munge, round_trip_and_refusals, .init = start_munged, .fini = stop_munged) {
  ty_auth *a = munge_auth(md.socket);
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_auth_probe(a, err, sizeof err), 0, "%s", err);
  uint8_t *c = NULL;
  size_t n = 0;
  cr_assert_eq(ty_auth_sign(a, "Make", "job", 3, &c, &n, err, sizeof err), 0, "%s", err);
  ty_auth_id id;
  const char *label;
  cr_assert_eq(ty_auth_verify(a, "Make", "job", 3, c, n, &id, &label, err, sizeof err), 0, "%s",
               err);
  cr_assert(id.authenticated && !id.via_key);
  cr_assert_eq(id.uid, geteuid());
  cr_assert_eq(ty_auth_verify(a, "Make", "job", 3, c, n, &id, &label, err, sizeof err), TY_EPERM);
  cr_assert_str_eq(label, "replayed");
  free(c);
  cr_assert_eq(ty_auth_sign(a, "Make", "job", 3, &c, &n, err, sizeof err), 0);
  cr_assert_eq(ty_auth_verify(a, "Drop", "job", 3, c, n, &id, &label, err, sizeof err), TY_EPERM);
  cr_assert_str_eq(label, "wrong_request");
  free(c);
  cr_assert_eq(ty_auth_verify(a, "M", "", 0, (const uint8_t *)"MUNGE:garbage:", 14, &id, &label,
                              err, sizeof err),
               TY_EPERM);
  cr_assert(!strcmp(label, "malformed") || !strcmp(label, "bad_credential"), "%s", label);
  cr_assert_eq(ty_auth_verify(a, "M", "", 0, NULL, 0, &id, &label, err, sizeof err), TY_EPERM);
  cr_assert_str_eq(label, "no_credential");
  ty_auth_destroy(a);
}

Test(munge, expired_credential, .init = start_munged, .fini = stop_munged) {
  /* A credential with a 1 s TTL, made with libmunge directly. */
  uint8_t digest[32];
  unsigned dn;
  EVP_MD_CTX *d = EVP_MD_CTX_new();
  EVP_DigestInit_ex(d, EVP_sha256(), NULL);
  EVP_DigestUpdate(d, "TYA1", 4);
  EVP_DigestUpdate(d, "M", 2);
  EVP_DigestFinal_ex(d, digest, &dn);
  EVP_MD_CTX_free(d);
  munge_ctx_t ctx = munge_ctx_create();
  munge_ctx_set(ctx, MUNGE_OPT_SOCKET, md.socket);
  munge_ctx_set(ctx, MUNGE_OPT_TTL, 1);
  char *cred = NULL;
  cr_assert_eq(munge_encode(&cred, ctx, digest, 32), EMUNGE_SUCCESS);
  munge_ctx_destroy(ctx);
  sleep(3);
  ty_auth *a = munge_auth(md.socket);
  ty_auth_id id;
  const char *label;
  char err[TY_ERR_LEN];
  cr_assert_eq(
      ty_auth_verify(a, "M", "", 0, (uint8_t *)cred, strlen(cred), &id, &label, err, sizeof err),
      TY_EPERM);
  cr_assert_str_eq(label, "expired", "%s", err);
  free(cred);
  ty_auth_destroy(a);
}

Test(munge, uid_comes_from_the_credential, .init = start_munged, .fini = stop_munged) {
  if (geteuid() != 0) cr_skip_test("needs root to sign as another user");
  struct passwd *pw = getpwnam("nobody");
  cr_assert(pw);
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t child = fork();
  if (child == 0) {
    if (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) _exit(1);
    ty_auth *a = munge_auth(md.socket);
    uint8_t *c = NULL;
    size_t n = 0;
    char err[TY_ERR_LEN];
    if (ty_auth_sign(a, "Look", "x", 1, &c, &n, err, sizeof err) != 0) _exit(2);
    _exit(write(fds[1], c, n) == (ssize_t)n ? 0 : 3);
  }
  close(fds[1]);
  uint8_t c[1024];
  ssize_t n = read(fds[0], c, sizeof c);
  int st;
  waitpid(child, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0 && n > 0);
  ty_auth *a = munge_auth(md.socket);
  ty_auth_id id;
  const char *label;
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_auth_verify(a, "Look", "x", 1, c, (size_t)n, &id, &label, err, sizeof err), 0,
               "%s", err);
  cr_assert_eq(id.uid, pw->pw_uid);
  cr_assert_str_eq(id.user, "nobody");
  ty_auth_destroy(a);
}

Test(munge, unreachable_munged_is_named) {
  ty_auth *a = munge_auth("/nonexistent/munge.socket");
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_auth_probe(a, err, sizeof err), TY_EPERM);
  cr_assert(strstr(err, "/nonexistent/munge.socket"), "%s", err);
  ty_auth_id id;
  const char *label;
  cr_assert_eq(
      ty_auth_verify(a, "M", "", 0, (const uint8_t *)"MUNGE:x:", 8, &id, &label, err, sizeof err),
      TY_EPERM);
  cr_assert_str_eq(label, "munge_unavailable", "%s", err);
  ty_auth_destroy(a);
}

/* ---- the queue ------------------------------------------------------------------------------- */

typedef struct order {
  int seen[16];
  int n;
  char payload[16][8];
  int status[16];
} order;

typedef struct tag {
  order *o;
  int i;
} tag;

static void record(const ty_auth_done *d, void *ud) {
  tag *t = ud;
  t->o->seen[t->o->n] = t->i;
  t->o->status[t->o->n] = d->status;
  snprintf(t->o->payload[t->o->n], 8, "%.*s", (int)d->len, (const char *)d->payload);
  t->o->n++;
}

/* A key scheme and a queue on a fresh loop. */
static uv_loop_t loop;
static ty_auth *a;
static ty_auth_queue *q;

static void queue_init(void) {
  make_dir();
  a = new_key("k");
  uv_loop_init(&loop);
  cr_assert_eq(ty_auth_queue_create(&loop, &q), 0);
}

/* Destroying the queue frees it once its last callback ran. */
static void queue_fini(void) {
  ty_auth_queue_destroy(q);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  ty_auth_destroy(a);
  remove_dir();
}

Test(queue, keeps_submission_order_and_copies, .init = queue_init, .fini = queue_fini) {
  order o = {0};
  tag tags[8];
  char buf[8];
  /* Signs (on the pool) and pass-throughs (NONE) interleaved: callbacks
   * come in submission order, with the payload as it was at submit. */
  for (int i = 0; i < 8; i++) {
    tags[i] = (tag){&o, i};
    snprintf(buf, sizeof buf, "p%d", i);
    ty_auth_op op = {.kind = TY_AUTH_OP_SIGN,
                     .auth = i % 3 == 1 ? NULL : a,
                     .method = "M",
                     .payload = buf,
                     .len = strlen(buf)};
    ty_auth_queue_submit(q, &op, record, &tags[i]);
    memset(buf, 'X', sizeof buf); /* the queue must have copied it */
  }
  cr_assert_eq(o.n, 0, "items behind a pending one wait their turn");
  while (o.n < 8)
    uv_run(&loop, UV_RUN_ONCE);
  for (int i = 0; i < 8; i++) {
    char want[8];
    snprintf(want, sizeof want, "p%d", i);
    cr_assert_eq(o.seen[i], i);
    cr_assert_str_eq(o.payload[i], want);
    cr_assert_eq(o.status[i], 0);
  }
  /* An empty queue completes a NONE operation inside the submit. */
  tag t = {&o, 99};
  ty_auth_op none = {.kind = TY_AUTH_OP_VERIFY, .method = "M", .payload = "z", .len = 1};
  ty_auth_queue_submit(q, &none, record, &t);
  cr_assert_eq(o.n, 9);
  cr_assert_eq(ty_auth_queue_pending(q), 0);
}

Test(queue, verify_refusal_reaches_the_callback, .init = queue_init, .fini = queue_fini) {
  order o = {0};
  tag t = {&o, 0};
  ty_auth_op op = {.kind = TY_AUTH_OP_VERIFY, .auth = a, .method = "M", .payload = "p", .len = 1};
  ty_auth_queue_submit(q, &op, record, &t);
  while (o.n < 1)
    uv_run(&loop, UV_RUN_ONCE);
  cr_assert_eq(o.status[0], TY_EPERM);
}

/* A check whose submitter withdrew it (its connection closed) before its
 * turn is not made: called back in order, TY_ECLOSED, on the pool and on a
 * queue's own thread alike; the one beside it is checked as before. */
static void expect_withdrawn_skipped(ty_auth_queue *queue) {
  order o = {0};
  tag t[3] = {{&o, 0}, {&o, 1}, {&o, 2}};
  atomic_bool gone, kept;
  atomic_init(&gone, true);
  atomic_init(&kept, false);
  ty_auth_op op = {.kind = TY_AUTH_OP_VERIFY, .auth = a, .method = "M", .payload = "p", .len = 1};
  op.cancel = &kept;
  ty_auth_queue_submit(queue, &op, record, &t[0]);
  op.cancel = &gone;
  ty_auth_queue_submit(queue, &op, record, &t[1]);
  op.cancel = NULL;
  ty_auth_queue_submit(queue, &op, record, &t[2]);
  while (o.n < 3)
    uv_run(&loop, UV_RUN_ONCE);
  cr_assert_eq(o.seen[0], 0);
  cr_assert_eq(o.seen[1], 1);
  cr_assert_eq(o.seen[2], 2);
  cr_assert_eq(o.status[0], TY_EPERM, "a check still waited for is made");
  cr_assert_eq(o.status[1], TY_ECLOSED, "a withdrawn check was made: %d", o.status[1]);
  cr_assert_eq(o.status[2], TY_EPERM);
}

Test(queue, a_withdrawn_check_is_skipped_on_the_pool, .init = queue_init, .fini = queue_fini) {
  expect_withdrawn_skipped(q);
}

Test(queue, a_withdrawn_check_is_skipped_on_its_own_thread, .init = queue_init,
     .fini = queue_fini) {
  ty_auth_queue *own = NULL;
  cr_assert_eq(ty_auth_queue_create_own(&loop, &own), 0);
  expect_withdrawn_skipped(own);
  ty_auth_queue_destroy(own);
}
