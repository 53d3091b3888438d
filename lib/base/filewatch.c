/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_filewatch: whether any of a few files changed since it last looked,
 * by one stat each (device, inode, size, modification and change time), so
 * an edit in place or a rename over the file (useradd, usermod, vipw) is
 * seen. The freshness test of caches of what such files say: the worker's
 * resolved submitters (worker/usercache.c) and lib/auth's identities, both
 * answers of NSS from /etc/passwd, /etc/group and /etc/nsswitch.conf.
 * Not thread-safe: its owner serialises the calls.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/base/base.h"

#define MAX_FILES 4

typedef struct stamp {
  bool exists;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
} stamp;

struct ty_filewatch {
  char *files[MAX_FILES];
  size_t n_files;
  stamp stamps[MAX_FILES]; /* as the last look found them */
};

static stamp stamp_of(const char *path) {
  struct stat st;
  stamp s = {0};
  if (stat(path, &st) != 0) return s;
  s = (stamp){.exists = true,
              .dev = st.st_dev,
              .ino = st.st_ino,
              .size = st.st_size,
              .mtime = st.st_mtim,
              .ctime = st.st_ctim};
  return s;
}

static bool same_stamp(const stamp *a, const stamp *b) {
  return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
         a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

ty_filewatch *ty_filewatch_create(const char *const *files, size_t n_files) {
  ty_filewatch *w = ty_xcalloc(1, sizeof *w);
  w->n_files = n_files < MAX_FILES ? n_files : MAX_FILES;
  for (size_t i = 0; i < w->n_files; i++)
    w->files[i] = ty_strdup(files[i]);
  ty_filewatch_changed(w); /* the first look */
  return w;
}

void ty_filewatch_destroy(ty_filewatch *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n_files; i++)
    free(w->files[i]);
  free(w);
}

bool ty_filewatch_changed(ty_filewatch *w) {
  bool changed = false;
  for (size_t i = 0; i < w->n_files; i++) {
    stamp now = stamp_of(w->files[i]);
    if (!same_stamp(&now, &w->stamps[i])) changed = true;
    w->stamps[i] = now;
  }
  return changed;
}
