/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cache of local callers' identities (idcache.c) that ty_auth_queue
 * answers them from. Used by queue.c; tests/unit/lib/auth includes it
 * directly.
 */
#ifndef TY_LIB_AUTH_IDCACHE_H
#define TY_LIB_AUTH_IDCACHE_H

#include "lib/auth/auth.h"

/* idcache.c: local callers' identities (ty_auth_id_local's answers) by
 * (uid, gid), each used while the watched files (at most 4: the queue's are
 * /etc/passwd, /etc/group, /etc/nsswitch.conf) are unchanged and for less
 * than ttl_ms (the queue's: TY__IDCACHE_TTL_MS). Thread-safe. get fills
 * *out from a fresh entry; put keeps a known one (id->known). */
#define TY__IDCACHE_TTL_MS 30000
typedef struct ty__idcache ty__idcache;
ty__idcache *ty__idcache_create(const char *const *files, size_t n_files, int64_t ttl_ms);
void ty__idcache_destroy(ty__idcache *c); /* accepts NULL */
bool ty__idcache_get(ty__idcache *c, uint32_t uid, uint32_t gid, int64_t now_ms, ty_auth_id *out);
void ty__idcache_put(ty__idcache *c, const ty_auth_id *id, int64_t now_ms);

#endif
