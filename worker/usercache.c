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
#include <sys/stat.h>

#include "worker/usercache.h"

#include "lib/base/base.h"

#define ENTRIES 32
#define MAX_FILES 4

typedef struct stamp {
  bool exists;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
} stamp;

typedef struct entry {
  bool used;
  int64_t read_ms;
  ty__runas who; /* groups owned */
} entry;

struct ty__usercache {
  char *files[MAX_FILES];
  size_t n_files;
  int64_t ttl_ms;
  stamp stamps[MAX_FILES]; /* of the files when the entries were read */
  entry e[ENTRIES];
};

static stamp stamp_of(const char *path) {
  struct stat st;
  stamp s = {0};
  if (stat(path, &st) != 0) return s;
  s.exists = true;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime = st.st_mtim;
  s.ctime = st.st_ctim;
  return s;
}

static bool same_stamp(const stamp *a, const stamp *b) {
  return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
         a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void drop(entry *e) {
  ty__runas_close(&e->who);
  memset(e, 0, sizeof *e);
}

static void drop_all(ty__usercache *c) {
  for (size_t i = 0; i < ENTRIES; i++)
    if (c->e[i].used) drop(&c->e[i]);
}

static void check_files(ty__usercache *c);

ty__usercache *ty__usercache_create(const char *const *files, size_t n_files, int64_t ttl_ms) {
  ty__usercache *c = ty_xcalloc(1, sizeof *c);
  c->n_files = n_files < MAX_FILES ? n_files : MAX_FILES;
  for (size_t i = 0; i < c->n_files; i++)
    c->files[i] = ty_strdup(files[i]);
  c->ttl_ms = ttl_ms;
  check_files(c); /* the files as entries put from now on were read */
  return c;
}

void ty__usercache_destroy(ty__usercache *c) {
  if (!c) return;
  drop_all(c);
  for (size_t i = 0; i < c->n_files; i++)
    free(c->files[i]);
  free(c);
}

/* Empties the cache when a watched file changed since its entries were
 * read, and starts again from the files as they are now. */
static void check_files(ty__usercache *c) {
  bool changed = false;
  for (size_t i = 0; i < c->n_files; i++) {
    stamp now = stamp_of(c->files[i]);
    if (!same_stamp(&now, &c->stamps[i])) changed = true;
    c->stamps[i] = now;
  }
  if (changed) drop_all(c);
}

static void copy_runas(ty__runas *to, const ty__runas *from) {
  *to = *from;
  to->groups = ty_xcalloc(from->n_groups ? from->n_groups : 1, sizeof *to->groups);
  if (from->n_groups) memcpy(to->groups, from->groups, from->n_groups * sizeof *to->groups);
}

bool ty__usercache_get(ty__usercache *c, uint32_t uid, uint32_t gid, int64_t now_ms,
                       ty__runas *out) {
  if (!c) return false;
  check_files(c);
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
