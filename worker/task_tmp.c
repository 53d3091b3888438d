/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A task's private TMPDIR, BASE/trainyard-job-JOB.RANK (BASE: trainworkerd
 * --tmp-base, default /tmp), as Grid Engine, PBS and LSF give each job: made
 * before the task starts, mode 0700, owned by the user the task runs as
 * (the worker's own user when it does not run as root), and removed once
 * the task ended, however it ended -- a SIGKILLed task's trap never runs,
 * so nothing it made under $TMPDIR would go otherwise. The removal runs on
 * libuv's thread pool (a task can leave a large tree) and goes through
 * lib/base/rmtree.c, which is safe against the links the task's user may plant. It
 * removes the very directory made here (its st_dev and st_ino): one made
 * anew for the same job and rank in between is left to its own task.
 *
 * Each directory has a record in the worker's own state directory,
 * STATE/tmpdirs/NAME@DEV.INO holding BASE, until its removal is done: a
 * worker that was killed (its tasks were killed with it, by the fence or
 * at its restart) removes at its start what its records name, and nothing
 * else -- never another worker's, on a host that runs several, nor
 * anything a user named like one. Every removal first moves the directory,
 * on the loop thread and only if the name is still its DEV.INO, to a name
 * of its own, NAME.gone-TIME, and removes that in the background: the
 * thread pool never goes by a name a requeued rank's new TMPDIR can take.
 * A directory already moved aside when the worker died is found by the
 * record's DEV.INO among BASE's NAME.gone-DIGITS entries (not following
 * links) and removed the same way. Whatever had a new TMPDIR's name goes
 * aside to NAME.old-TIME, recorded as NAME.old-TIME@DEV.INO before the
 * rename, and is removed the same way.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "worker/worker_internal.h"

int ty_task_tmp_base_check(const char *dir, char *err, size_t err_len) {
  struct stat st;
  if (!dir || dir[0] != '/') return ty_errf(err, err_len, TY_EINVAL, "is not an absolute path");
  if (strlen(dir) > TY__TASK_TMP_BASE_MAX)
    return ty_errf(err, err_len, TY_EINVAL, "is longer than %d characters", TY__TASK_TMP_BASE_MAX);
  if (stat(dir, &st) != 0)
    return ty_errf(err, err_len, TY_EINVAL, "cannot be used: %s", strerror(errno));
  if (!S_ISDIR(st.st_mode)) return ty_errf(err, err_len, TY_EINVAL, "is not a directory");
  if (!(st.st_mode & S_ISVTX) && st.st_uid != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "is neither sticky (chmod +t, as /tmp) nor root's: another user could "
                   "move the tasks' directories");
  return 0;
}

/* ---- removal ------------------------------------------------------------------ */

typedef struct rm_req {
  uv_work_t req;
  char *base;
  char *record; /* STATE/tmpdirs/NAME@DEV.INO, gone with the directory; NULL: none */
  ty__task_tmp tmp;
  bool exact;     /* only the directory tmp.dev/tmp.ino */
  bool find_gone; /* a record's, not at its name: look for NAME.gone-TIME */
  uint64_t job_id;
  uint32_t rank;
  int rc;
  char err[256];
} rm_req;

/* A task's private TMPDIR is TMP_PREFIX JOB.RANK. */
#define TMP_PREFIX "trainyard-job-"
/* The name a directory being removed is moved to first: NAME.gone-TIME. */
#define GONE_PREFIX "%.60s.gone-"

/* Whether entry `name` of base is tmp's directory (not followed if a link). */
static bool is_dir_of(int base, const char *name, const ty__task_tmp *tmp) {
  struct stat st;
  return fstatat(base, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
         st.st_dev == tmp->dev && st.st_ino == tmp->ino;
}

/* Whether `name` is NAME.gone-DIGITS for prefix "NAME.gone-". */
static bool gone_name(const char *name, const char *prefix) {
  size_t n = strlen(prefix);
  if (strncmp(name, prefix, n) != 0 || !name[n]) return false;
  return strspn(name + n, "0123456789") == strlen(name + n);
}

/* A record's directory the worker had moved to NAME.gone-TIME before it
 * died, before its removal was done: that entry of base (the very
 * directory, by DEV.INO) becomes tmp's name; false when there is none. */
static bool find_gone(int base, ty__task_tmp *tmp) {
  char prefix[sizeof tmp->name];
  snprintf(prefix, sizeof prefix, GONE_PREFIX, tmp->name);
  int own = fcntl(base, F_DUPFD_CLOEXEC, 0);
  DIR *d = own >= 0 ? fdopendir(own) : NULL;
  if (!d) {
    if (own >= 0) close(own);
    return false;
  }
  bool found = false;
  for (struct dirent *e; !found && (e = readdir(d));)
    if (gone_name(e->d_name, prefix) && strlen(e->d_name) < sizeof tmp->name &&
        is_dir_of(base, e->d_name, tmp)) {
      snprintf(tmp->name, sizeof tmp->name, "%s", e->d_name);
      found = true;
    }
  closedir(d);
  return found;
}

static void rm_work(uv_work_t *req) {
  rm_req *r = req->data;
  int base = open(r->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (base < 0) {
    r->rc = ty_errf(r->err, sizeof r->err, TY_EIO, "cannot open %s: %s", r->base, strerror(errno));
    return;
  }
  struct stat want = {.st_dev = r->tmp.dev, .st_ino = r->tmp.ino};
  if (r->find_gone && !find_gone(base, &r->tmp))
    r->tmp.name[0] = 0, r->rc = 0; /* gone already: nothing of it left */
  else
    r->rc = ty_rmtree_at(base, r->tmp.name, r->exact ? &want : NULL, r->err, sizeof r->err);
  close(base);
  if (r->record && (r->rc == 0 || r->rc == TY_EEXIST)) unlink(r->record);
}

static void rm_done(uv_work_t *req, int status) {
  rm_req *r = req->data;
  if (status == 0 && r->rc != 0 && r->rc != TY_EEXIST)
    ty_warn("%s TMPDIR in %s was not all removed: %s", r->job_id ? "a task's" : "a previous run's",
            r->base, r->err);
  else if (status == 0 && r->rc == 0 && !r->job_id && r->record && r->tmp.name[0])
    ty_info("removed %s/%s, a previous run's task's TMPDIR", r->base, r->tmp.name);
  free(r->base);
  free(r->record);
  free(r);
}

/* STATE/tmpdirs, or the record of tmp in it; NULL when out of memory. */
static char *record_path(const char *state_dir, const ty__task_tmp *tmp) {
  char *p = NULL;
  int n = tmp ? asprintf(&p, "%s/tmpdirs/%s@%ju.%ju", state_dir, tmp->name, (uintmax_t)tmp->dev,
                         (uintmax_t)tmp->ino)
              : asprintf(&p, "%s/tmpdirs", state_dir);
  return n < 0 ? NULL : p;
}

/* A removal of base/tmp->name (only that very directory when exact),
 * for queue(); record, when given, is owned and unlinked once it is gone. */
static rm_req *removal(const char *base, const ty__task_tmp *tmp, bool exact, char *record,
                       uint64_t job_id, uint32_t rank) {
  rm_req *r = ty_xcalloc(1, sizeof *r);
  r->req.data = r;
  r->base = ty_strdup(base);
  r->record = record;
  r->tmp = *tmp;
  r->exact = exact;
  r->job_id = job_id;
  r->rank = rank;
  return r;
}

static void queue(uv_loop_t *loop, rm_req *r) {
  if (uv_queue_work(loop, &r->req, rm_work, rm_done) != 0) {
    rm_work(&r->req); /* no thread pool: here, then */
    rm_done(&r->req, 0);
  }
}

static void queue_removal(uv_loop_t *loop, const char *base, const ty__task_tmp *tmp, bool exact,
                          char *record, uint64_t job_id, uint32_t rank) {
  queue(loop, removal(base, tmp, exact, record, job_id, rank));
}

/* Moves tmp (in base), if the name is still its directory's, to a name of
 * its own (*gone); false when it is not there. Runs on the loop thread,
 * where the next task's directory of the same name is made: a removal on
 * the thread pool that went by the shared name once removed a requeued
 * rank's new, empty directory, made between its check and its unlinkat. */
static bool move_out_of_the_way(const char *base_dir, const ty__task_tmp *tmp, ty__task_tmp *gone) {
  *gone = *tmp;
  snprintf(gone->name, sizeof gone->name, GONE_PREFIX "%" PRIu64, tmp->name, uv_hrtime());
  int base = open(base_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  bool moved = base >= 0 && is_dir_of(base, tmp->name, tmp) &&
               renameat(base, tmp->name, base, gone->name) == 0;
  if (base >= 0) close(base);
  return moved;
}

void ty__task_tmp_remove(ty_tasks *t, ty__task_tmp *tmp, uint64_t job_id, uint32_t rank) {
  if (!tmp->name[0]) return;
  ty__task_tmp gone;
  char *record = record_path(t->state_dir, tmp);
  if (move_out_of_the_way(t->tmp_base, tmp, &gone)) {
    queue_removal(t->loop, t->tmp_base, &gone, true, record, job_id, rank); /* owns record */
  } else {
    if (record) unlink(record); /* gone already, or replaced: nothing of this task's there */
    free(record);
  }
  tmp->name[0] = 0;
}

/* ---- records ------------------------------------------------------------------- */

/* Writes tmp's record (0600; a warning when it cannot be: the directory
 * still goes at the task's end, only not after a crash). */
static void note(ty_tasks *t, const ty__task_tmp *tmp) {
  char *dir = record_path(t->state_dir, NULL), *path = record_path(t->state_dir, tmp);
  if (dir) (void)mkdir(dir, 0700);
  int fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600) : -1;
  size_t n = strlen(t->tmp_base);
  if (fd < 0 || write(fd, t->tmp_base, n) != (ssize_t)n)
    ty_warn("cannot record %s/%s in %s/tmpdirs (%s): a crash of this worker would leave it",
            t->tmp_base, tmp->name, t->state_dir, strerror(errno));
  if (fd >= 0) close(fd);
  free(dir);
  free(path);
}

/* One record, NAME@DEV.INO holding BASE: its directory moved to a name of
 * its own (here, on the loop thread) and its removal queued. */
static bool sweep_one(ty_tasks *t, int dir_fd, const char *dir, const char *rec) {
  ty__task_tmp tmp = {.name = ""};
  uintmax_t dev = 0, ino = 0;
  const char *at = strrchr(rec, '@');
  char base[TY__TASK_TMP_BASE_MAX + 2] = "";
  int fd = openat(dir_fd, rec, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, base, sizeof base - 1) : -1;
  if (fd >= 0) close(fd);
  if (!at || (size_t)(at - rec) >= sizeof tmp.name || sscanf(at, "@%ju.%ju", &dev, &ino) != 2 ||
      n <= 0 || base[0] != '/') {
    ty_warn("%s/%s is no record of a task's TMPDIR: removed", dir, rec);
    unlinkat(dir_fd, rec, 0);
    return false;
  }
  base[n] = 0;
  memcpy(tmp.name, rec, (size_t)(at - rec));
  tmp.dev = (dev_t)dev, tmp.ino = (ino_t)ino;
  char *path = NULL;
  if (asprintf(&path, "%s/%s", dir, rec) < 0) path = NULL; /* then removed again next start */
  ty__task_tmp gone;
  bool moved = move_out_of_the_way(base, &tmp, &gone); /* before a new task can take NAME */
  rm_req *r = removal(base, moved ? &gone : &tmp, true, path, 0, 0);
  r->find_gone = !moved; /* the worker may have died with it moved aside */
  queue(t->loop, r);
  return true;
}

size_t ty_tasks_sweep_tmp(ty_tasks *t) {
  char *dir = record_path(t->state_dir, NULL);
  DIR *d = dir ? opendir(dir) : NULL;
  size_t swept = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    if (e->d_name[0] != '.') swept += sweep_one(t, dirfd(d), dir, e->d_name);
  if (d) closedir(d);
  free(dir);
  return swept;
}

/* ---- making it ------------------------------------------------------------------ */

/* Whatever has the name already (a previous run's, left by a worker that
 * was killed, or planted) goes aside under a name of its own, NAME.old-TIME,
 * and away. Its record is written before the rename, as a TMPDIR's is
 * before its task runs: a worker that dies before the removal is done
 * removes it at its next start (that very entry, by DEV.INO). */
static int set_aside(ty_tasks *t, int base_fd, const ty__task_tmp *tmp, uint64_t job_id,
                     uint32_t rank, char *err, size_t err_len) {
  struct stat st;
  if (fstatat(base_fd, tmp->name, &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;
  ty__task_tmp old = {.dev = st.st_dev, .ino = st.st_ino};
  snprintf(old.name, sizeof old.name, "%.60s.old-%" PRIu64, tmp->name, uv_hrtime());
  note(t, &old);
  char *record = record_path(t->state_dir, &old);
  if (renameat(base_fd, tmp->name, base_fd, old.name) != 0) {
    int e = errno;
    if (record) unlink(record);
    free(record);
    return ty_errf(err, err_len, TY_EIO, "TMPDIR %s/%s: cannot move aside what is there: %s",
                   t->tmp_base, tmp->name, strerror(e));
  }
  queue_removal(t->loop, t->tmp_base, &old, false, record, job_id, rank); /* owns record */
  return 0;
}

/* Gives the directory just made (name in base_fd) to uid:gid, mode 0700. */
static int give(int base_fd, const char *base, ty__task_tmp *tmp, uint32_t uid, uint32_t gid,
                char *err, size_t err_len) {
  int fd = openat(base_fd, tmp->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st = {0};
  int rc = 0;
  if (fd < 0 || fstat(fd, &st) != 0)
    rc = ty_errf(err, err_len, TY_EIO, "TMPDIR %s/%s: cannot open it: %s", base, tmp->name,
                 strerror(errno));
  else if (st.st_uid != geteuid())
    rc = ty_errf(err, err_len, TY_EPERM, "TMPDIR %s/%s: replaced by uid %u while it was made", base,
                 tmp->name, (unsigned)st.st_uid);
  else if ((geteuid() == 0 && fchown(fd, uid, gid) != 0) || fchmod(fd, 0700) != 0)
    rc = ty_errf(err, err_len, TY_EIO, "TMPDIR %s/%s: cannot give it to uid %u: %s", base,
                 tmp->name, (unsigned)uid, strerror(errno));
  tmp->dev = st.st_dev, tmp->ino = st.st_ino;
  if (fd >= 0) close(fd);
  return rc;
}

bool ty__task_tmp_named(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  static const char prefix[] = TMP_PREFIX;
  if (strncmp(base, prefix, sizeof prefix - 1) != 0) return false;
  const char *p = base + sizeof prefix - 1;
  size_t job = strspn(p, "0123456789");
  if (job == 0 || p[job] != '.') return false;
  p += job + 1;
  size_t rank = strspn(p, "0123456789");
  return rank > 0 && p[rank] == 0;
}

int ty__task_tmp_make(ty_tasks *t, const ty_task_spec *spec, const ty__runas *who,
                      ty__task_tmp *out, char *err, size_t err_len) {
  uv_loop_t *loop = t->loop;
  const char *base = t->tmp_base;
  memset(out, 0, sizeof *out);
  ty__task_tmp tmp = {.name = ""};
  snprintf(tmp.name, sizeof tmp.name, TMP_PREFIX "%" PRIu64 ".%" PRIu32, spec->job_id, spec->rank);
  int base_fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (base_fd < 0)
    return ty_errf(err, err_len, TY_EIO, "TMPDIR: cannot open --tmp-base %s: %s", base,
                   strerror(errno));
  int rc = set_aside(t, base_fd, &tmp, spec->job_id, spec->rank, err, err_len);
  if (rc == 0 && mkdirat(base_fd, tmp.name, 0700) != 0)
    rc = ty_errf(err, err_len, TY_EIO, "TMPDIR %s/%s: cannot create it: %s", base, tmp.name,
                 strerror(errno));
  uint32_t uid = who->switch_user ? who->uid : (uint32_t)geteuid();
  uint32_t gid = who->switch_user ? who->gid : (uint32_t)getegid();
  if (rc == 0) rc = give(base_fd, base, &tmp, uid, gid, err, err_len);
  if (rc == 0) {
    note(t, &tmp);
    *out = tmp;
  } else if (tmp.ino) {
    queue_removal(loop, base, &tmp, true, NULL, spec->job_id, spec->rank);
  }
  close(base_fd);
  return rc;
}
