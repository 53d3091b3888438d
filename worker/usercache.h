/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who a task runs as on this node (ty__runas, filled by spawn.c) and the
 * worker's cache of resolved submitters (usercache.c). Included by
 * worker_internal.h; tests/unit/worker includes it directly.
 */
#ifndef TY_WORKER_USERCACHE_H
#define TY_WORKER_USERCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ty__runas {
  bool switch_user; /* a root worker runs the task as uid/gid/groups */
  uint32_t uid, gid;
  uint32_t *groups; /* supplementary groups (getgrouplist), owned */
  size_t n_groups;
  char user[64], home[1024], shell[256]; /* for HOME, USER, LOGNAME, SHELL */
} ty__runas;
void ty__runas_close(ty__runas *r);

typedef struct ty__usercache ty__usercache;
/* usercache.c: resolved submitters by (uid, gid), each used while the
 * watched files (`files`, at most 4) are unchanged since it was read and
 * it is younger than ttl_ms. get fills `out` (its groups owned by `out`)
 * and says whether it found a fresh entry; put keeps a copy of `who`. */
#define TY__USERCACHE_TTL_MS 30000
ty__usercache *ty__usercache_create(const char *const *files, size_t n_files, int64_t ttl_ms);
void ty__usercache_destroy(ty__usercache *c);
bool ty__usercache_get(ty__usercache *c, uint32_t uid, uint32_t gid, int64_t now_ms,
                       ty__runas *out);
void ty__usercache_put(ty__usercache *c, const ty__runas *who, int64_t now_ms);

#endif
