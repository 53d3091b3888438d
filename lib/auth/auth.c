/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The credential schemes of lib/auth (see auth.h for the formats): the
 * request digest, the cluster-key scheme with its replay cache, identities
 * resolved through NSS, and the dispatch to munge.c. Everything here may run
 * on several threads at once; the only shared mutable state is the replay
 * cache, behind a mutex.
 *
 * The replay cache holds the nonces accepted in the last 2 x
 * TY_AUTH_KEY_TTL_S: a credential older than that is refused as expired
 * before the cache is consulted, so forgetting older nonces is safe. It is
 * an open-addressed table that is rebuilt without the stale entries when it
 * fills up; its size follows the verified request rate (a worker fleet's
 * heartbeats), never what an unauthenticated sender does.
 */
#include "lib/auth/auth.h"
#include "lib/auth/auth_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAGIC "TYK1"
#define KEY_SIGNED_LEN 36u /* magic, uid, gid, time, nonce */

typedef struct nonce_slot {
  uint8_t nonce[16];
  int64_t seen_ms; /* 0 = empty */
} nonce_slot;

struct ty_auth {
  ty_auth_mode mode;
  char *socket;
  uint8_t *key;
  size_t key_len;
  pthread_mutex_t lock; /* the replay cache */
  nonce_slot *slots;
  size_t cap, used;
};

const char *ty_auth_mode_name(ty_auth_mode m) {
  switch (m) {
  case TY_AUTH_MUNGE:
    return "munge";
  case TY_AUTH_KEY:
    return "key";
  default:
    return "none";
  }
}

int ty_auth_mode_parse(const char *s, ty_auth_mode *out) {
  static const ty_auth_mode all[] = {TY_AUTH_NONE, TY_AUTH_MUNGE, TY_AUTH_KEY};
  for (size_t i = 0; s && i < TY_ARRAY_LEN(all); i++)
    if (!strcmp(s, ty_auth_mode_name(all[i]))) return *out = all[i], 0;
  return TY_EINVAL;
}

/* ---- the cluster key file ---------------------------------------------------------- */

/* Whether gid is this process's effective or one of its supplementary groups. */
static bool in_own_groups(gid_t gid) {
  if (gid == getegid()) return true;
  int n = getgroups(0, NULL);
  gid_t *groups = n > 0 ? calloc((size_t)n, sizeof *groups) : NULL;
  bool found = false;
  if (groups) n = getgroups(n, groups);
  for (int i = 0; groups && i < n && !found; i++)
    found = groups[i] == gid;
  free(groups);
  return found;
}

/* Who may hold the key: its owner, this user or root, and no one else;
 * except that a root-owned key may be readable (only) by its group when
 * this process is root or in that group: 0640 root:trainyard serves traind
 * running as the service user and trainworkerd running as root on one host
 * (docs/deploy.md), as the metrics token does. */
static int check_key_access(const char *path, const struct stat *st, char *err, size_t len) {
  unsigned owner = (unsigned)st->st_uid, group = (unsigned)st->st_gid;
  unsigned mode = (unsigned)(st->st_mode & 07777), me = (unsigned)geteuid();
  if (st->st_uid != geteuid() && st->st_uid != 0)
    return ty_errf(err, len, TY_EPERM,
                   "cluster key %s: owned by uid %u, not by this user (%u) or root "
                   "(group %u, mode %04o)",
                   path, owner, me, group, mode);
  if (mode & 07)
    return ty_errf(err, len, TY_EPERM,
                   "cluster key %s: mode %04o lets other users at it (owner %u, group %u); "
                   "chmod 0600 it, or 0640 with owner root and the daemons' group",
                   path, mode, owner, group);
  if ((mode & 070) == 0) return 0;
  if (mode & 030)
    return ty_errf(err, len, TY_EPERM,
                   "cluster key %s: mode %04o lets group %u write or run it (owner %u); "
                   "chmod 0640 it",
                   path, mode, group, owner);
  if (owner != 0)
    return ty_errf(err, len, TY_EPERM,
                   "cluster key %s: mode %04o lets group %u read it but its owner is uid %u, "
                   "not root; chmod 0600 it, or chown root it",
                   path, mode, group, owner);
  if (me != 0 && !in_own_groups(st->st_gid))
    return ty_errf(err, len, TY_EPERM,
                   "cluster key %s: readable by group %u (owner root, mode %04o), which this "
                   "process (uid %u) is not in",
                   path, group, mode, me);
  return 0;
}

static int check_key_file(const char *path, int fd, char *err, size_t len) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return ty_errf(err, len, TY_EIO, "cluster key %s: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode))
    return ty_errf(err, len, TY_EPERM, "cluster key %s: not a regular file", path);
  int rc = check_key_access(path, &st, err, len);
  if (rc != 0) return rc;
  if (st.st_size < TY_AUTH_KEY_MIN || st.st_size > TY_AUTH_KEY_MAX)
    return ty_errf(err, len, TY_EINVAL,
                   "cluster key %s: %lld bytes; it needs %u to %u (e.g. "
                   "dd if=/dev/urandom bs=64 count=1)",
                   path, (long long)st.st_size, TY_AUTH_KEY_MIN, TY_AUTH_KEY_MAX);
  return 0;
}

/* A key this process may not open: whose it is, and the mode that serves
 * root and the service user both. */
static int unreadable_key(const char *path, char *err, size_t len) {
  struct stat st;
  if (stat(path, &st) != 0)
    return ty_errf(err, len, TY_EPERM, "cluster key %s: %s", path, strerror(EACCES));
  return ty_errf(err, len, TY_EPERM,
                 "cluster key %s: %s (owner %u, group %u, mode %04o; this process is uid %u); "
                 "a key for a service user and root: owner root, its group, mode 0640",
                 path, strerror(EACCES), (unsigned)st.st_uid, (unsigned)st.st_gid,
                 (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
}

static int load_key(ty_auth *a, const char *path, char *err, size_t len) {
  if (!path || !path[0])
    return ty_errf(err, len, TY_EINVAL, "the key scheme needs a cluster key file");
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
                          O_NONBLOCK); /* a FIFO: refused, not waited on */
  if (fd < 0 && errno == EACCES) return unreadable_key(path, err, len);
  if (fd < 0)
    return ty_errf(err, len, errno == ELOOP ? TY_EPERM : TY_EIO, "cluster key %s: %s", path,
                   errno == ELOOP ? "a symbolic link (name the file itself)" : strerror(errno));
  int rc = check_key_file(path, fd, err, len);
  uint8_t buf[TY_AUTH_KEY_MAX];
  ssize_t n = rc == 0 ? read(fd, buf, sizeof buf) : 0;
  close(fd);
  if (rc != 0) return rc;
  if (n < (ssize_t)TY_AUTH_KEY_MIN)
    return ty_errf(err, len, TY_EIO, "cluster key %s: short read", path);
  a->key = malloc((size_t)n);
  if (!a->key) return TY_ENOMEM;
  memcpy(a->key, buf, (size_t)n);
  a->key_len = (size_t)n;
  explicit_bzero(buf, sizeof buf);
  return 0;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

int ty_auth_create(const ty_auth_config *cfg, ty_auth **out, char *err, size_t len) {
  ty_auth *a = calloc(1, sizeof *a);
  if (!a) return TY_ENOMEM;
  a->mode = cfg->mode;
  pthread_mutex_init(&a->lock, NULL);
  int rc = 0;
  if (cfg->munge_socket && cfg->munge_socket[0] && !(a->socket = strdup(cfg->munge_socket)))
    rc = TY_ENOMEM;
  if (rc == 0 && a->mode == TY_AUTH_KEY) rc = load_key(a, cfg->key_file, err, len);
  if (rc != 0) {
    ty_auth_destroy(a);
    return rc;
  }
  *out = a;
  return 0;
}

void ty_auth_destroy(ty_auth *a) {
  if (!a) return;
  if (a->key) explicit_bzero(a->key, a->key_len);
  free(a->key);
  free(a->socket);
  free(a->slots);
  pthread_mutex_destroy(&a->lock);
  free(a);
}

ty_auth_mode ty_auth_get_mode(const ty_auth *a) {
  return a ? a->mode : TY_AUTH_NONE;
}

const char *ty_auth_socket(const ty_auth *a) {
  return a && a->socket ? a->socket : TY__MUNGE_DEFAULT_SOCKET;
}

/* ---- digest and identities ------------------------------------------------------------- */

int ty__auth_digest(const char *method, const void *payload, size_t len, uint8_t out[32]) {
  struct sha256_ctx c;
  sha256_init(&c);
  sha256_update(&c, 4, (const uint8_t *)"TYA1");
  sha256_update(&c, strlen(method ? method : "") + 1, (const uint8_t *)(method ? method : ""));
  if (len) sha256_update(&c, len, payload);
  sha256_digest(&c, SHA256_DIGEST_SIZE, out);
  return 0;
}

void ty_auth_id_local(uint32_t uid, uint32_t gid, ty_auth_id *out) {
  *out = (ty_auth_id){.uid = uid, .gid = gid};
  snprintf(out->user, sizeof out->user, "uid %u", (unsigned)uid);
  char buf[16384];
  struct passwd pw, *res = NULL;
  if (getpwuid_r((uid_t)uid, &pw, buf, sizeof buf, &res) != 0 || !res) return;
  out->known = true;
  snprintf(out->user, sizeof out->user, "%s", pw.pw_name);
  gid_t groups[TY_AUTH_MAX_GROUPS];
  int n = (int)TY_AUTH_MAX_GROUPS;
  if (getgrouplist(pw.pw_name, (gid_t)gid, groups, &n) < 0) n = (int)TY_AUTH_MAX_GROUPS;
  for (int i = 0; i < n && i < (int)TY_AUTH_MAX_GROUPS; i++)
    out->groups[i] = (uint32_t)groups[i];
  out->n_groups = (size_t)(n < 0 ? 0 : n > (int)TY_AUTH_MAX_GROUPS ? (int)TY_AUTH_MAX_GROUPS : n);
}

bool ty_auth_id_is_service(const ty_auth_id *id, uint32_t service_uid) {
  return id->via_key || id->uid == 0 || id->uid == service_uid;
}

bool ty_auth_id_in_group(const ty_auth_id *id, uint32_t gid) {
  if (id->gid == gid) return true;
  for (size_t i = 0; i < id->n_groups; i++)
    if (id->groups[i] == gid) return true;
  return false;
}

/* ---- the key scheme ----------------------------------------------------------------------- */

static void key_mac(const ty_auth *a, const uint8_t *signed_part, const uint8_t digest[32],
                    uint8_t out[32]) {
  uint8_t msg[KEY_SIGNED_LEN + 32];
  memcpy(msg, signed_part, KEY_SIGNED_LEN);
  memcpy(msg + KEY_SIGNED_LEN, digest, 32);
  struct hmac_sha256_ctx h;
  hmac_sha256_set_key(&h, a->key_len, a->key);
  hmac_sha256_update(&h, sizeof msg, msg);
  hmac_sha256_digest(&h, SHA256_DIGEST_SIZE, out);
  explicit_bzero(&h, sizeof h); /* it holds the key's pads */
}

/* Fills p with n bytes from the kernel's generator; false when it fails. */
static bool random_bytes(uint8_t *p, size_t n) {
  while (n) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got, n -= (size_t)got;
  }
  return true;
}

static int key_sign(ty_auth *a, const uint8_t digest[32], uint8_t **out, size_t *out_len) {
  uint8_t *c = malloc(TY_AUTH_KEY_CRED_LEN);
  if (!c) return TY_ENOMEM;
  memcpy(c, KEY_MAGIC, 4);
  ty_put_be(c + 4, geteuid(), 4);
  ty_put_be(c + 8, getegid(), 4);
  ty_put_be(c + 12, (uint64_t)ty_now_ms(), 8);
  if (!random_bytes(c + 20, 16)) {
    free(c);
    return TY_EIO;
  }
  key_mac(a, c, digest, c + KEY_SIGNED_LEN);
  *out = c;
  *out_len = TY_AUTH_KEY_CRED_LEN;
  return 0;
}

/* Grows or rebuilds the table so it has room for one more; false when out
 * of memory. Called with the lock held. */
static bool nonce_room(ty_auth *a, int64_t now) {
  if (a->cap && (a->used + 1) * 2 <= a->cap) return true;
  size_t live = 0;
  int64_t horizon = now - 2 * (int64_t)TY_AUTH_KEY_TTL_S * 1000;
  for (size_t i = 0; i < a->cap; i++)
    live += a->slots[i].seen_ms >= horizon;
  size_t cap = a->cap ? a->cap : 256;
  while ((live + 1) * 2 > cap)
    cap *= 2;
  nonce_slot *fresh = calloc(cap, sizeof *fresh);
  if (!fresh) return false;
  for (size_t i = 0; i < a->cap; i++) {
    if (a->slots[i].seen_ms < horizon || !a->slots[i].seen_ms) continue;
    size_t h = (size_t)ty_get_be(a->slots[i].nonce, 8) & (cap - 1);
    while (fresh[h].seen_ms)
      h = (h + 1) & (cap - 1);
    fresh[h] = a->slots[i];
  }
  free(a->slots);
  a->slots = fresh;
  a->cap = cap;
  a->used = live;
  return true;
}

/* Records a nonce: 0, TY_EEXIST when it was seen before, TY_ENOMEM. */
static int nonce_record(ty_auth *a, const uint8_t *nonce, int64_t now) {
  pthread_mutex_lock(&a->lock);
  int rc = nonce_room(a, now) ? 0 : TY_ENOMEM;
  size_t h = rc == 0 ? (size_t)ty_get_be(nonce, 8) & (a->cap - 1) : 0;
  for (; rc == 0 && a->slots[h].seen_ms; h = (h + 1) & (a->cap - 1))
    if (!memcmp(a->slots[h].nonce, nonce, 16)) rc = TY_EEXIST;
  if (rc == 0) {
    memcpy(a->slots[h].nonce, nonce, 16);
    a->slots[h].seen_ms = now;
    a->used++;
  }
  pthread_mutex_unlock(&a->lock);
  return rc;
}

static int refuse(const char **label, const char *what, char *err, size_t len, const char *fmt,
                  const char *detail) {
  *label = what;
  return ty_errf(err, len, TY_EPERM, fmt, detail);
}

static int key_verify(ty_auth *a, const uint8_t digest[32], const uint8_t *c, size_t n,
                      ty_auth_id *out, const char **label, char *err, size_t len) {
  if (n != TY_AUTH_KEY_CRED_LEN || memcmp(c, KEY_MAGIC, 4) != 0)
    return refuse(label, "malformed", err, len, "%s",
                  "credential: not a cluster-key credential "
                  "(does the sender use another scheme?)");
  uint8_t mac[32];
  key_mac(a, c, digest, mac);
  if (!memeql_sec(mac, c + KEY_SIGNED_LEN, 32))
    return refuse(label, "bad_credential", err, len, "%s",
                  "credential: signature does not "
                  "verify under the cluster key (another key, or a forged or altered request)");
  int64_t at = (int64_t)ty_get_be(c + 12, 8), now = ty_now_ms();
  int64_t skew = at > now ? at - now : now - at;
  if (skew > (int64_t)TY_AUTH_KEY_TTL_S * 1000)
    return refuse(label, "expired", err, len, "credential: %s",
                  at > now ? "dated in the future (check the clocks)" : "expired");
  int rc = nonce_record(a, c + 20, now);
  if (rc == TY_EEXIST)
    return refuse(label, "replayed", err, len, "%s", "credential: replayed (already used once)");
  if (rc != 0) return rc;
  ty_auth_id_local((uint32_t)ty_get_be(c + 4, 4), (uint32_t)ty_get_be(c + 8, 4), out);
  out->authenticated = true;
  out->via_key = true;
  return 0;
}

/* ---- dispatch -------------------------------------------------------------------------------- */

int ty_auth_sign(ty_auth *a, const char *method, const void *payload, size_t len, uint8_t **out,
                 size_t *out_len, char *err, size_t err_len) {
  *out = NULL;
  *out_len = 0;
  if (!a || a->mode == TY_AUTH_NONE) return 0;
  uint8_t digest[32];
  if (ty__auth_digest(method, payload, len, digest) != 0) return TY_ENOMEM;
  if (a->mode == TY_AUTH_KEY) return key_sign(a, digest, out, out_len);
  return ty__munge_sign(ty_auth_socket(a), digest, out, out_len, err, err_len);
}

int ty_auth_verify(ty_auth *a, const char *method, const void *payload, size_t len,
                   const uint8_t *cred, size_t cred_len, ty_auth_id *out, const char **out_label,
                   char *err, size_t err_len) {
  *out = (ty_auth_id){0};
  *out_label = "";
  if (!a || a->mode == TY_AUTH_NONE) return 0;
  if (!cred || cred_len == 0)
    return refuse(out_label, "no_credential", err, err_len, "%s",
                  a->mode == TY_AUTH_MUNGE
                      ? "no credential: the request carries no MUNGE credential (is munged running "
                        "where it was sent from?)"
                      : "no credential: the request carries no cluster-key credential");
  if (cred_len > TY_AUTH_MAX_CRED)
    return refuse(out_label, "malformed", err, err_len, "%s",
                  "credential: longer than any "
                  "valid one");
  uint8_t digest[32];
  if (ty__auth_digest(method, payload, len, digest) != 0) return TY_ENOMEM;
  if (a->mode == TY_AUTH_KEY)
    return key_verify(a, digest, cred, cred_len, out, out_label, err, err_len);
  return ty__munge_verify(ty_auth_socket(a), digest, cred, cred_len, out, out_label, err, err_len);
}

int ty_auth_probe(ty_auth *a, char *err, size_t err_len) {
  if (!a || a->mode != TY_AUTH_MUNGE) return 0;
  uint8_t *c = NULL;
  size_t n = 0;
  int rc = ty_auth_sign(a, "probe", "", 0, &c, &n, err, err_len);
  ty_auth_id id;
  const char *label;
  if (rc == 0) rc = ty_auth_verify(a, "probe", "", 0, c, n, &id, &label, err, err_len);
  free(c);
  return rc;
}
