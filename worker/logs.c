/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task logs on the node's disk: a cap on each log's size and a retention
 * time after the job ended (trainworkerd --log-max-size, --log-retention;
 * docs/cluster-protocol.md, "Logs").
 *
 * Cap. A log that grew past max_bytes is cut in place to its head (the
 * first max/2 bytes, ending at a line end when one is near), one marker
 * line, and its tail (the latest max/4 bytes, starting at a line start):
 *
 *   \n[trainworkerd: N bytes of output cut here; this log keeps its first
 *   H bytes and its latest output (--log-max-size M)]\n
 *
 * with M in bytes
 *
 * (one line; N counts every byte removed so far, so a later cut replaces
 * the marker with a larger N). The log then has room for max/4 bytes more
 * before the next cut, so each cut copies as many bytes as were written
 * since the last one. A batch task appends to its log itself (O_APPEND; the
 * worker never copies its output), so the cut is logrotate's copytruncate:
 * the tail is copied down, bytes appended meanwhile are copied after it,
 * and the file is truncated behind them. A write landing between the last
 * look at the size and the truncation is lost, as with copytruncate; the
 * window is a few system calls, once per max/4 bytes of output.
 * Interactive tasks' logs are written by the worker on this same thread,
 * so for them nothing can land in between.
 *
 * Readers follow cuts: each cut bumps the log's generation and records
 * where its tail moved, and ReadLog streams translate their offset (io.c).
 *
 * Retention. A job directory (DIR/jobs/JOB) with no task of the job left
 * here is removed once its newest file (or the directory itself, touched
 * when a task ends) is older than retention_s; so is an earlier job's
 * directory moved aside for a new job of the same id (JOB.replaced-TIME,
 * job_dir.c).
 *
 * The cap is looked at once a second, so a log may pass it by up to about
 * a second of its task's output first. A task that ends non-zero with its
 * log's filesystem full has that said in its end reason
 * (ty_log_fs_full_reason): its own error lines may be what was lost.
 *
 * Runs on the loop thread: a cut copies max/4 bytes (16 MiB by default,
 * milliseconds from the page cache); the sweep reads one directory level.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "worker/worker_internal.h"

#define COPY_CHUNK (1u << 20)
#define ALIGN_SCAN 4096u /* how far to look for a line end at a cut's edges */
#define APPEND_ROUNDS 16 /* rounds of copying bytes appended during a cut */

struct ty__logs {
  char *jobs_dir;       /* STATE_DIR/jobs */
  uint64_t max_bytes;   /* 0 = no cap */
  uint32_t retention_s; /* 0 = keep */
  ty__logcut *cuts;     /* logs cut at least once, until their job's directory goes */
  size_t n_cuts;
  uint64_t bytes_cut, dirs_removed;
};

ty__logs *ty__logs_create(const char *state_dir) {
  ty__logs *lg = ty_xcalloc(1, sizeof *lg);
  size_t n = strlen(state_dir) + 6;
  lg->jobs_dir = ty_xmalloc(n);
  snprintf(lg->jobs_dir, n, "%s/jobs", state_dir);
  lg->max_bytes = TY_LOG_MAX_DEFAULT;
  lg->retention_s = TY_LOG_RETENTION_DEFAULT;
  return lg;
}

void ty__logs_destroy(ty__logs *lg) {
  if (!lg) return;
  free(lg->jobs_dir);
  free(lg->cuts);
  free(lg);
}

void ty__logs_set_limits(ty__logs *lg, uint64_t max_bytes, uint32_t retention_s) {
  lg->max_bytes = max_bytes;
  lg->retention_s = retention_s;
}

uint32_t ty__logs_retention(const ty__logs *lg) {
  return lg->retention_s;
}

static ty__logcut *cut_of(const ty__logs *lg, uint64_t job, uint32_t rank) {
  for (size_t i = 0; i < lg->n_cuts; i++)
    if (lg->cuts[i].job_id == job && lg->cuts[i].rank == rank) return &lg->cuts[i];
  return NULL;
}

/* ---- cutting ----------------------------------------------------------------------- */

/* Copies [src, end) of fd down to dst (dst < src, so front to back is
 * safe); 0 or -errno. */
static int copy_down(int fd, uint64_t src, uint64_t end, uint64_t dst, uint8_t *buf) {
  while (src < end) {
    size_t want = end - src < COPY_CHUNK ? (size_t)(end - src) : COPY_CHUNK;
    ssize_t r = pread(fd, buf, want, (off_t)src);
    if (r <= 0) return r < 0 ? -errno : -EIO;
    for (ssize_t off = 0; off < r;) {
      ssize_t w = pwrite(fd, buf + off, (size_t)(r - off), (off_t)(dst + (uint64_t)off));
      if (w <= 0) return w < 0 ? -errno : -EIO;
      off += w;
    }
    src += (uint64_t)r, dst += (uint64_t)r;
  }
  return 0;
}

/* `at` moved to just after a line end found within ALIGN_SCAN bytes
 * forward (fwd) or backward, else left where it is. */
static uint64_t line_edge(int fd, uint64_t at, bool fwd, uint8_t *buf) {
  uint64_t from = fwd ? at : (at > ALIGN_SCAN ? at - ALIGN_SCAN : 0);
  ssize_t r = pread(fd, buf, fwd ? ALIGN_SCAN : (size_t)(at - from), (off_t)from);
  for (ssize_t i = 0; fwd && i < r; i++)
    if (buf[i] == '\n') return from + (uint64_t)i + 1;
  for (ssize_t i = r - 1; !fwd && i >= 0; i--)
    if (buf[i] == '\n') return from + (uint64_t)i + 1;
  return at;
}

static int marker(const ty__logs *lg, uint64_t cut_total, uint64_t head, char *out, size_t n) {
  return snprintf(out, n,
                  "\n[trainworkerd: %" PRIu64
                  " bytes of output cut here; this log keeps its first %" PRIu64
                  " bytes and its latest output (--log-max-size %" PRIu64 ")]\n",
                  cut_total, head, lg->max_bytes);
}

/* Cuts one log of size `size` > max (see the file comment); c holds its
 * state. 0 or -errno. */
static int cut(ty__logs *lg, ty__logcut *c, int fd, uint64_t size, uint8_t *buf) {
  uint64_t max = lg->max_bytes;
  if (c->gen == 0) c->head = line_edge(fd, max / 2, false, buf);
  uint64_t tail = line_edge(fd, size - max / 4, true, buf);
  uint64_t removed = tail - c->head - c->marker_len; /* output bytes; the old marker aside */
  char m[400];
  int mlen = marker(lg, c->cut_total + removed, c->head, m, sizeof m);
  if (mlen <= 0 || (size_t)mlen >= sizeof m) return -EINVAL;
  if (pwrite(fd, m, (size_t)mlen, (off_t)c->head) != mlen) return -EIO;
  uint64_t dst = c->head + (uint64_t)mlen, end = size;
  int rc = copy_down(fd, tail, end, dst, buf);
  for (int round = 0; rc == 0 && round < APPEND_ROUNDS; round++) {
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size <= end) break;
    rc = copy_down(fd, end, (uint64_t)st.st_size, dst + (end - tail), buf);
    end = (uint64_t)st.st_size;
  }
  if (rc == 0 && ftruncate(fd, (off_t)(dst + (end - tail))) != 0) rc = -errno;
  if (rc != 0) return rc;
  lg->bytes_cut += removed;
  c->cut_total += removed;
  c->marker_len = (uint64_t)mlen;
  c->old_tail = tail;
  c->new_tail = dst;
  c->gen++;
  return 0;
}

void ty__logs_check(ty__logs *lg, uint64_t job, uint32_t rank, const char *path) {
  struct stat st;
  if (lg->max_bytes == 0 || stat(path, &st) != 0 || (uint64_t)st.st_size <= lg->max_bytes) return;
  /* Not O_APPEND: the cut writes below the end. */
  int fd = open(path, O_RDWR | O_CLOEXEC);
  uint8_t *buf = fd >= 0 ? malloc(COPY_CHUNK) : NULL;
  ty__logcut *c = buf ? cut_of(lg, job, rank) : NULL;
  if (buf && !c) {
    ty__logcut *grown = realloc(lg->cuts, (lg->n_cuts + 1) * sizeof *lg->cuts);
    if (grown) {
      lg->cuts = grown;
      c = &lg->cuts[lg->n_cuts++];
      *c = (ty__logcut){.job_id = job, .rank = rank};
    }
  }
  int rc = c ? cut(lg, c, fd, (uint64_t)st.st_size, buf) : -ENOMEM;
  if (rc != 0)
    ty_warn("job %" PRIu64 " rank %" PRIu32 ": cannot cut the log %s: %s", job, rank, path,
            fd < 0 ? strerror(errno) : ty_strerror(rc));
  free(buf);
  if (fd >= 0) close(fd);
}

void ty__logs_follow(const ty__logs *lg, uint64_t job, uint32_t rank, uint32_t *gen,
                     uint64_t *offset) {
  const ty__logcut *c = cut_of(lg, job, rank);
  if (!c || c->gen == *gen) return;
  uint64_t x = *offset;
  if (c->gen != *gen + 1 || (x > c->head && x < c->old_tail))
    x = c->head; /* from the marker on */
  else if (x >= c->old_tail)
    x = x - c->old_tail + c->new_tail;
  *offset = x;
  *gen = c->gen;
}

uint32_t ty__logs_gen(const ty__logs *lg, uint64_t job, uint32_t rank) {
  const ty__logcut *c = cut_of(lg, job, rank);
  return c ? c->gen : 0;
}

/* ---- retention and disk use ------------------------------------------------------------ */

/* Newest mtime (s) of dir and its files, and their disk use (bytes). */
static void dir_stats(const char *dir, int64_t *newest, uint64_t *bytes) {
  struct stat st;
  *newest = stat(dir, &st) == 0 ? (int64_t)st.st_mtime : 0;
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
      continue;
    if ((int64_t)st.st_mtime > *newest) *newest = (int64_t)st.st_mtime;
    *bytes += (uint64_t)st.st_blocks * 512u;
  }
  closedir(d);
}

/* Removes a job directory and the files in it (one level: logs, a graph
 * rank's model and config); 0 or -errno. */
static int remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -errno;
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      (void)unlinkat(dirfd(d), e->d_name, 0);
  closedir(d);
  return rmdir(dir) == 0 ? 0 : -errno;
}

void ty__logs_forget(ty__logs *lg, uint64_t job) {
  for (size_t i = 0; i < lg->n_cuts;)
    if (lg->cuts[i].job_id == job)
      lg->cuts[i] = lg->cuts[--lg->n_cuts];
    else
      i++;
}

/* The job of a job directory's name: JOB, or (*aside) an earlier job's
 * directory moved aside, JOB.replaced-TIME (job_dir.c); false for others. */
static bool job_of(const char *name, unsigned long long *job, bool *aside) {
  char *end;
  *job = strtoull(name, &end, 10);
  if (end == name) return false;
  *aside = strncmp(end, TY__JOB_DIR_REPLACED, strlen(TY__JOB_DIR_REPLACED)) == 0;
  return *end == 0 || *aside;
}

uint64_t ty__logs_sweep(ty__logs *lg, int64_t now_s, bool (*busy)(uint64_t job, void *ud), void *ud,
                        bool remove) {
  DIR *d = opendir(lg->jobs_dir);
  if (!d) return 0;
  uint64_t total = 0;
  char path[4096 + 264];
  for (struct dirent *e; (e = readdir(d));) {
    unsigned long long job;
    bool aside;
    if (!job_of(e->d_name, &job, &aside)) continue;
    snprintf(path, sizeof path, "%s/%s", lg->jobs_dir, e->d_name);
    int64_t newest = 0;
    uint64_t bytes = 0;
    dir_stats(path, &newest, &bytes);
    bool old = lg->retention_s && now_s - newest > (int64_t)lg->retention_s;
    if (remove && old && (aside || !busy(job, ud)) && remove_dir(path) == 0) {
      ty_info("job %llu: removed its logs and files in %s (%u s after it ended)", job, path,
              lg->retention_s);
      lg->dirs_removed++;
      if (!aside) ty__logs_forget(lg, job);
      continue;
    }
    total += bytes;
  }
  closedir(d);
  return total;
}

void ty__logs_counts(const ty__logs *lg, uint64_t *out_bytes_cut, uint64_t *out_dirs_removed) {
  *out_bytes_cut = lg->bytes_cut;
  *out_dirs_removed = lg->dirs_removed;
}

/* ---- a full log filesystem ------------------------------------------------------------ */

#define FULL_FREE_MAX ((uint64_t)1 << 20) /* free bytes under which it is full */

bool ty_log_fs_full_reason(const struct statvfs *st, const char *dir, const char *reason, char *out,
                           size_t len) {
  uint64_t unit = st->f_frsize ? st->f_frsize : st->f_bsize;
  uint64_t size = (uint64_t)st->f_blocks * unit, avail = (uint64_t)st->f_bavail * unit;
  uint64_t need = size / 100 < FULL_FREE_MAX ? size / 100 : FULL_FREE_MAX;
  bool no_inode = st->f_files > 0 && st->f_favail == 0;
  if (avail >= need && avail > 0 && !no_inode) return false;
  bool had = reason && reason[0];
  snprintf(out, len, "%s%sits log's filesystem (%s) is full", had ? reason : "", had ? "; " : "",
           dir);
  return true;
}
