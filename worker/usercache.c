/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who a submitter is on this node, remembered between launches: the
 * passwd entry (name, home, shell) and the supplementary groups of a
 * (uid, gid), as spawn.c's NSS lookups (getpwuid_r, getgrouplist) found
 * them. A root worker looks both up for every task; with NSS "files" that
 * is about 25 system calls (opening and reading /etc/passwd and
 * /etc/group) and a tenth of the worker's own instructions for a short
 * task, the same answer each time for the thousands of tasks of one user.
 *
 * An entry is used only while it is fresh:
 *   - every file the cache watches (/etc/passwd, /etc/group,
 *     /etc/nsswitch.conf on a worker) has the same device, inode, size,
 *     modification and change time as when the entry was read, checked
 *     with one stat each per use, so an edit in files (useradd, usermod,
 *     vipw: a rename or a write) is seen by the next launch;
 *   - it is younger than the cache's lifetime (30 s on a worker), which
 *     bounds how long a change in a directory service (sssd, LDAP, whose
 *     own caches keep answers for minutes) goes unseen.
 * Failed lookups are not kept: an unknown uid is looked up every time.
 * The cache holds a fixed number of entries and replaces the oldest.
 * Loop thread only; owned by its ty_tasks.
 */
#include <stdlib.h>
#include <string.h>

#include "worker/usercache.h"

#include "lib/base/base.h"

#define ENTRIES 32

typedef struct entry {
  bool used;
  int64_t read_ms;
  ty__runas who; /* groups owned */
} entry;

struct ty__usercache {
  ty_filewatch *files; /* as they were when the entries were read */
  int64_t ttl_ms;
  entry e[ENTRIES];
};

static void drop(entry *e) {
  ty__runas_close(&e->who);
  memset(e, 0, sizeof *e);
}

static void drop_all(ty__usercache *c) {
  for (size_t i = 0; i < ENTRIES; i++)
    if (c->e[i].used) drop(&c->e[i]);
}

ty__usercache *ty__usercache_create(const char *const *files, size_t n_files, int64_t ttl_ms) {
  ty__usercache *c = ty_xcalloc(1, sizeof *c);
  c->files = ty_filewatch_create(files, n_files);
  c->ttl_ms = ttl_ms;
  return c;
}

void ty__usercache_destroy(ty__usercache *c) {
  if (!c) return;
  drop_all(c);
  ty_filewatch_destroy(c->files);
  free(c);
}

static void copy_runas(ty__runas *to, const ty__runas *from) {
  *to = *from;
  to->groups = ty_xcalloc(from->n_groups ? from->n_groups : 1, sizeof *to->groups);
  if (from->n_groups) memcpy(to->groups, from->groups, from->n_groups * sizeof *to->groups);
}

bool ty__usercache_get(ty__usercache *c, uint32_t uid, uint32_t gid, int64_t now_ms,
                       ty__runas *out) {
  if (!c) return false;
  if (ty_filewatch_changed(c->files)) drop_all(c);
  for (size_t i = 0; i < ENTRIES; i++) {
    entry *e = &c->e[i];
    if (!e->used || e->who.uid != uid || e->who.gid != gid) continue;
    if (now_ms - e->read_ms >= c->ttl_ms || now_ms < e->read_ms) {
      drop(e);
      return false;
    }
    copy_runas(out, &e->who);
    return true;
  }
  return false;
}

void ty__usercache_put(ty__usercache *c, const ty__runas *who, int64_t now_ms) {
  if (!c) return;
  entry *slot = &c->e[0];
  for (size_t i = 0; i < ENTRIES; i++) {
    entry *e = &c->e[i];
    if (e->used && e->who.uid == who->uid && e->who.gid == who->gid) {
      slot = e;
      break;
    }
    if (!e->used || (slot->used && e->read_ms < slot->read_ms)) slot = e;
  }
  if (slot->used) drop(slot);
  slot->used = true;
  slot->read_ms = now_ms;
  copy_runas(&slot->who, who);
}
