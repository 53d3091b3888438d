/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/auth: who sent a request. Every client RPC to traind and every call
 * between traind and its workers carries a credential in the envelope's
 * `auth` field (lib/rpc/envelope.proto); the receiver checks it and takes
 * the caller's uid and gid from it, never from a field the sender fills.
 *
 * Schemes (ty_auth_mode):
 *   - MUNGE (as Slurm): the credential is a munge_encode() string whose
 *     payload is the request's digest (below). munged vouches for the uid
 *     and gid of the process that asked for it, refuses a credential decoded
 *     twice (its replay cache: we rely on it rather than keep our own) and
 *     one older than its TTL (300 s by default).
 *   - KEY: a cluster key file readable only by its owner (root for
 *     workers), for sites that run the workers' side without munged:
 *
 *       +--------+-------+-------+-----------+----------+---------------------+
 *       | "TYK1" | uid 4 | gid 4 | time_ms 8 | nonce 16 | HMAC-SHA256(key,    |
 *       |   4    |  BE   |  BE   | Unix, BE  | random   |  bytes 0..35 ||     |
 *       |        |       |       |           |          |  digest) 32         |
 *       +--------+-------+-------+-----------+----------+---------------------+
 *
 *     It is valid for TY_AUTH_KEY_TTL_S around the verifier's clock; a
 *     verifier remembers every nonce it accepted for that long and refuses
 *     it a second time (replay). Holding the key is what it proves: the
 *     identity is "the cluster's service", whatever uid it names.
 *   - NONE: no credential at all (`traind --auth none`, a single-user
 *     development cluster).
 *
 * Digest: SHA-256("TYA1" || method || 0x00 || payload). Binding the
 * credential to the request means a credential seen on the wire cannot be
 * attached to another request, besides munged refusing its reuse.
 *
 * Threads: ty_auth_sign and ty_auth_verify block (a round trip to munged,
 * NSS lookups) and may run on any thread at once; daemons call them through
 * a ty_auth_queue, which runs them on libuv's thread pool and hands the
 * results back on the loop in submission order. Allocation follows lib/'s
 * policy: TY_ENOMEM, never an abort.
 */
#ifndef TY_LIB_AUTH_AUTH_H
#define TY_LIB_AUTH_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/base/base.h"
#include "lib/rpc/rpc.h"

typedef enum { TY_AUTH_NONE = 0, TY_AUTH_MUNGE = 1, TY_AUTH_KEY = 2 } ty_auth_mode;

#define TY_AUTH_KEY_TTL_S 60u /* validity of a KEY credential, either way of now */
#define TY_AUTH_KEY_MIN 32u   /* bytes of a cluster key file */
#define TY_AUTH_KEY_MAX 4096u
#define TY_AUTH_KEY_CRED_LEN 68u
#define TY_AUTH_MAX_GROUPS 64u
#define TY_AUTH_MAX_CRED 1024u /* longer credentials are refused unread */

/* "none", "munge", "key". */
const char *ty_auth_mode_name(ty_auth_mode m);
/* TY_EINVAL for anything else. */
int ty_auth_mode_parse(const char *s, ty_auth_mode *out);

typedef struct ty_auth_config {
  ty_auth_mode mode;
  const char *munge_socket; /* NULL = libmunge's default (/run/munge/munge.socket.2) */
  const char *key_file;     /* KEY: read at create */
} ty_auth_config;

/* Who sent a request, as the receiver resolved it (NSS on its host). */
typedef struct ty_auth_id {
  bool authenticated; /* false for NONE (the receiver decides who that is) */
  bool via_key;       /* proven by the cluster key: the cluster's service */
  uint32_t uid, gid;
  bool known;      /* the uid has a passwd entry on this host */
  char user[64];   /* its name, or "uid N" */
  size_t n_groups; /* supplementary groups (getgrouplist), capped */
  uint32_t groups[TY_AUTH_MAX_GROUPS];
} ty_auth_id;

typedef struct ty_auth ty_auth;

/* A scheme. KEY reads and checks the key file now: a regular file (not a
 * link) owned by this process's user or root, with no group or other
 * permission bits, of TY_AUTH_KEY_MIN..TY_AUTH_KEY_MAX bytes. Errors name
 * the file: TY_EPERM (mode, owner), TY_EIO, TY_EINVAL (size). Does not
 * contact munged (see ty_auth_probe). */
int ty_auth_create(const ty_auth_config *cfg, ty_auth **out, char *err, size_t err_len);
void ty_auth_destroy(ty_auth *a); /* accepts NULL */
ty_auth_mode ty_auth_get_mode(const ty_auth *a);
/* Where munged is asked (for messages): the socket path or the default. */
const char *ty_auth_socket(const ty_auth *a);

/* Encodes and decodes one credential through munged (blocking): 0 when
 * munged answers and agrees, else TY_EPERM with "munged at PATH: ...".
 * 0 at once for NONE and KEY. */
int ty_auth_probe(ty_auth *a, char *err, size_t err_len);

/* A credential for (method, payload) in *out (malloc'ed, caller frees) and
 * *out_len; NULL/0 for NONE. Blocking. TY_EPERM when munged refuses or
 * cannot be reached, with its words in err; TY_ENOMEM. */
int ty_auth_sign(ty_auth *a, const char *method, const void *payload, size_t len, uint8_t **out,
                 size_t *out_len, char *err, size_t err_len);

/* Checks cred for (method, payload) and fills *out (user name and groups
 * looked up with NSS: blocking). NONE accepts anything (out->authenticated
 * false). Refusals are TY_EPERM with a sentence in err and a short metric
 * label in *out_label: "no_credential", "malformed", "bad_credential"
 * (signature or munged's own refusal), "wrong_request" (the digest is not
 * this request's), "replayed", "expired" (also credentials from the
 * future), "munge_unavailable". */
int ty_auth_verify(ty_auth *a, const char *method, const void *payload, size_t len,
                   const uint8_t *cred, size_t cred_len, ty_auth_id *out, const char **out_label,
                   char *err, size_t err_len);

/* Fills *out for a local uid/gid (NSS: blocking): the identity of a daemon
 * itself, e.g. traind's own user under --auth none. */
void ty_auth_id_local(uint32_t uid, uint32_t gid, ty_auth_id *out);
/* Whether id is in group gid (primary or supplementary). */
bool ty_auth_id_in_group(const ty_auth_id *id, uint32_t gid);
/* Whether id is the cluster's service: a cluster-key credential, root, or
 * service_uid (the user traind runs as). */
bool ty_auth_id_is_service(const ty_auth_id *id, uint32_t service_uid);

/* ---- off the loop, in order ------------------------------------------------------------------
 * A ty_auth_queue runs signs and verifies on libuv's thread pool
 * (uv_queue_work) and calls their callbacks on the loop thread in the order
 * they were submitted, so a connection's requests are still handled in the
 * order they arrived (RegisterNode before the Heartbeat behind it; a
 * LaunchTask before the KillTask behind it). An operation whose scheme is
 * NONE (or NULL) completes inside the submit call when nothing is queued
 * before it, and waits its turn otherwise. */

typedef enum { TY_AUTH_OP_SIGN = 1, TY_AUTH_OP_VERIFY = 2 } ty_auth_op_kind;

/* An operation to submit. Every pointer is borrowed for the duration of the
 * submit call only: the queue copies what a deferred operation needs. */
typedef struct ty_auth_op {
  ty_auth_op_kind kind;
  ty_auth *auth; /* NULL = NONE */
  const char *method;
  const void *payload;
  size_t len;
  const uint8_t *cred; /* VERIFY: the credential presented */
  size_t cred_len;
  /* VERIFY of a local caller (a Unix socket's peer): the kernel already
   * proved uid/gid (SO_PEERCRED), so `auth` and `cred` are not read; the
   * work is the NSS lookup of its name and groups (ty_auth_id_local), off
   * the loop like a credential's, or the queue's cache of them when fresh
   * (completing inside the submit call when nothing is queued before it),
   * and the identity is authenticated. */
  bool peer;
  uint32_t peer_uid, peer_gid;
  /* VERIFY: NULL, or a flag the submitter sets (from the loop thread) when
   * nobody waits for the answer any more (the request's connection
   * closed). A deferred check that finds it set when its turn comes is not
   * made (no munged round trip, no lookup): it is called back, in its
   * order as any other, with TY_ECLOSED. The flag must live until the
   * callback. */
  const atomic_bool *cancel;
} ty_auth_op;

/* The result, valid only during the callback. For SIGN, cred/cred_len is
 * the new credential; for VERIFY the one presented and `id` the sender.
 * method and payload are the operation's (copies when it was deferred). */
typedef struct ty_auth_done {
  int status;        /* 0, TY_EPERM (refused), TY_ENOMEM, TY_ECLOSED (cancelled) */
  const char *label; /* a refusal's metric label, "" otherwise */
  const char *err;   /* a refusal's sentence, "" otherwise */
  ty_auth_id id;
  const char *method;
  const uint8_t *payload;
  size_t len;
  const uint8_t *cred;
  size_t cred_len;
} ty_auth_done;

typedef void (*ty_auth_done_cb)(const ty_auth_done *d, void *ud);
typedef struct ty_auth_queue ty_auth_queue;

int ty_auth_queue_create(uv_loop_t *loop, ty_auth_queue **out);
/* The same, but its operations run on a thread of its own instead of
 * libuv's pool, so they never wait behind the pool's other work (traind's
 * store reads, other callers' checks): traind's queue for workers. */
int ty_auth_queue_create_own(uv_loop_t *loop, ty_auth_queue **out);
/* Calls cb exactly once, from the loop thread (possibly before returning). */
void ty_auth_queue_submit(ty_auth_queue *q, const ty_auth_op *op, ty_auth_done_cb cb, void *ud);
/* Operations submitted and not yet called back. */
size_t ty_auth_queue_pending(const ty_auth_queue *q);
/* Frees the queue once every pending operation has been called back (they
 * complete normally; the owner must stay alive for them). Accepts NULL. */
void ty_auth_queue_destroy(ty_auth_queue *q);

/* From a SIGN's callback: sends the signed call d on c with its credential
 * in the envelope's `auth` (ty_rpc_call_ex). cb gets the answer, or at once:
 * TY_ECLOSED with a NULL conn when c is NULL (the connection the call was
 * meant for is gone), d's refusal with its sentence as the message (a
 * credential that could not be made, logged with `who`), or the send's
 * error. */
void ty_auth_send(ty_rpc_conn *c, const ty_auth_done *d, uint32_t timeout_ms, ty_rpc_answer_cb cb,
                  void *ud, const char *who);

#endif
