/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who a local caller is, remembered between its requests: the name and
 * supplementary groups of a (uid, gid) as ty_auth_id_local's NSS lookups
 * (getpwuid_r, getgrouplist) found them. Every request on a daemon's Unix
 * socket needs them; with NSS "files" a lookup opens and reads /etc/passwd
 * and /etc/group, so it runs on libuv's thread pool, and the hop there and
 * back was a tenth of an rlaunch's controller time (issue 20). An answer
 * from here is given on the loop at once (queue.c).
 *
 * An entry is used only while fresh, as the worker's cache of submitters
 * (worker/usercache.c): the watched files (/etc/passwd, /etc/group and
 * /etc/nsswitch.conf for the queue) are unchanged since it was read
 * (ty_filewatch: one stat each per use, so useradd or usermod is seen by
 * the next request), and it is younger than the cache's lifetime
 * (TY__IDCACHE_TTL_MS for the queue), which bounds how long a change in a directory
 * service (sssd, LDAP) goes unseen. Unknown uids are not kept. A fixed
 * number of entries, the oldest replaced. Thread-safe (one mutex): the
 * work threads fill it, the loop thread reads it.
 */
#include "lib/auth/idcache.h"

#include <pthread.h>
#include <stdlib.h>

#define ENTRIES 32

typedef struct entry {
  bool used;
  int64_t read_ms;
  ty_auth_id id;
} entry;

struct ty__idcache {
  pthread_mutex_t mu;
  ty_filewatch *files; /* as they were when the entries were read */
  int64_t ttl_ms;
  entry e[ENTRIES];
};

ty__idcache *ty__idcache_create(const char *const *files, size_t n_files, int64_t ttl_ms) {
  ty__idcache *c = ty_xcalloc(1, sizeof *c);
  pthread_mutex_init(&c->mu, NULL);
  c->files = ty_filewatch_create(files, n_files);
  c->ttl_ms = ttl_ms;
  return c;
}

void ty__idcache_destroy(ty__idcache *c) {
  if (!c) return;
  ty_filewatch_destroy(c->files);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* The entry of (uid, gid) if fresh, dropping a stale one; under mu. */
static entry *fresh(ty__idcache *c, uint32_t uid, uint32_t gid, int64_t now_ms) {
  if (ty_filewatch_changed(c->files))
    for (size_t i = 0; i < ENTRIES; i++)
      c->e[i].used = false;
  for (size_t i = 0; i < ENTRIES; i++) {
    entry *e = &c->e[i];
    if (!e->used || e->id.uid != uid || e->id.gid != gid) continue;
    if (now_ms - e->read_ms < c->ttl_ms && now_ms >= e->read_ms) return e;
    e->used = false;
  }
  return NULL;
}

bool ty__idcache_get(ty__idcache *c, uint32_t uid, uint32_t gid, int64_t now_ms, ty_auth_id *out) {
  pthread_mutex_lock(&c->mu);
  entry *e = fresh(c, uid, gid, now_ms);
  if (e) *out = e->id;
  pthread_mutex_unlock(&c->mu);
  return e != NULL;
}

/* A free entry, or the oldest; under mu. */
static entry *victim(ty__idcache *c) {
  entry *oldest = &c->e[0];
  for (size_t i = 0; i < ENTRIES; i++) {
    if (!c->e[i].used) return &c->e[i];
    if (c->e[i].read_ms < oldest->read_ms) oldest = &c->e[i];
  }
  return oldest;
}

void ty__idcache_put(ty__idcache *c, const ty_auth_id *id, int64_t now_ms) {
  if (!id->known) return;
  pthread_mutex_lock(&c->mu);
  entry *slot = fresh(c, id->uid, id->gid, now_ms);
  if (!slot) slot = victim(c);
  *slot = (entry){.used = true, .read_ms = now_ms, .id = *id};
  pthread_mutex_unlock(&c->mu);
}
