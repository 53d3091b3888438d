/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A cgroup per task, as Slurm's cgroup plugins do (docs/security.md).
 *
 * Layout, in every hierarchy the worker uses:
 *
 *   <mount>/<parent>/<name>/job<J>/rank<R>
 *
 * where <parent> is the worker's own cgroup in that hierarchy (or
 * --cgroup-root) and <name> is the worker's subtree (trainyard-<node> by
 * default), so two workers on one host never share one. The job level holds
 * the job's memory limit on this node (all its ranks here together); the
 * rank level holds the CPU quota, the device rules and the accounting, and
 * is what the task's processes join (the exec helper writes its own pid into
 * cgroup.procs, or "0" into v1's tasks, before it execs, so every
 * descendant is inside from birth: double-forking does not escape).
 *
 * cgroup v2 is used when the unified hierarchy carries the memory
 * controller: memory.max, cpu.max, pids, io accounting, cgroup.kill (device
 * rules would need an eBPF program and are not applied). Otherwise cgroup v1,
 * each controller in its own hierarchy or combined, only those a task
 * needs (v1_needed: every hierarchy costs two mkdir and two rmdir per
 * task): memory (memory.limit_in_bytes), cpu (cpu.cfs_quota_us), cpuacct,
 * blkio (I/O bytes), freezer (race-free kill), devices where the node has
 * GPU device files (the GPUs a task was not given are denied), pids where
 * there is no freezer or where the job level holds a process limit
 * (--max-pids-per-job: pids.max, so a fork bomb stops at it). A cpuset shared with one of these is
 * copied from its parent, as v1 requires.
 *
 * On v1 an ended rank 0's job level is kept as spare<N> in the hierarchies
 * without per-task state and renamed for the next job's rank 0 (the pool,
 * below): a rename costs a few microseconds, a mkdir and rmdir tens.
 *
 * Killing a task kills its cgroup: v2 writes cgroup.kill; v1 freezes the
 * cgroup, SIGKILLs every member and thaws it, so nothing forks in between.
 *
 * Everything here is synchronous file I/O on cgroupfs (kernel memory, no
 * disk): microseconds per call, done on the loop thread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "worker/cgroup_internal.h"
#include "worker/worker_internal.h"

/* ---- files ------------------------------------------------------------------------------- */

static int write_file(const char *dir, const char *file, const char *value) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) return TY_EINVAL;
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t n = write(fd, value, strlen(value));
  int rc = n == (ssize_t)strlen(value) ? 0 : -errno;
  close(fd);
  return rc;
}

/* Reads a small file into buf (NUL-terminated); 0 or a negative errno. */
int ty__cg_read_file(const char *dir, const char *file, char *buf, size_t cap) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) return TY_EINVAL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  size_t len = 0;
  ssize_t n;
  while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
    len += (size_t)n;
  close(fd);
  buf[len] = '\0';
  return 0;
}

uint64_t ty__cg_read_u64(const char *dir, const char *file) {
  char buf[64];
  return ty__cg_read_file(dir, file, buf, sizeof buf) == 0 ? strtoull(buf, NULL, 10) : 0;
}

/* Whether a comma- or space-separated list names the controller. */
static bool listed(const char *list, const char *controller) {
  size_t n = strlen(controller);
  for (const char *p = list; (p = strstr(p, controller)); p += n)
    if ((p == list || p[-1] == ',' || p[-1] == ' ') && (!p[n] || p[n] == ',' || p[n] == ' '))
      return true;
  return false;
}

static bool has(const hier *h, const char *controller) {
  return listed(h->controllers, controller);
}

const hier *ty__cg_find(const ty_cgroups *cg, const char *controller) {
  for (size_t i = 0; i < cg->n; i++)
    if (has(&cg->h[i], controller)) return &cg->h[i];
  return NULL;
}

/* base/job<J> (rank UINT32_MAX) or base/job<J>/rank<R>; "" when too long. */
void ty__cg_task_dir(const hier *h, uint64_t job, uint32_t rank, char *out, size_t cap) {
  int n = rank == UINT32_MAX
              ? snprintf(out, cap, "%s/job%" PRIu64, h->base, job)
              : snprintf(out, cap, "%s/job%" PRIu64 "/rank%" PRIu32, h->base, job, rank);
  if (n < 0 || (size_t)n >= cap) out[0] = '\0';
}

/* ---- discovery --------------------------------------------------------------------------- */

/* The worker's own cgroup path in the hierarchy with these controllers
 * ("0::" for v2), from /proc/self/cgroup. */
static bool own_path(const char *controllers, char *out, size_t cap) {
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (!f) return false;
  char line[PATH_MAX + 128];
  bool found = false;
  while (!found && fgets(line, sizeof line, f)) {
    char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
    if (!b) continue;
    *b = '\0';
    if (strcmp(a + 1, controllers) != 0) continue;
    b[1 + strcspn(b + 1, "\n")] = '\0';
    snprintf(out, cap, "%s", strcmp(b + 1, "/") ? b + 1 : "");
    found = true;
  }
  fclose(f);
  return found;
}

/* The controllers a v2 cgroup hands to its children: the subtree's and
 * each job's (never a rank's, which holds processes). */
#define V2_DELEGATE "+memory +cpu +pids +io"

/* Creates dir; a v2 parent level delegates its controllers to its children;
 * a v1 cpuset gets its parent's CPUs and memory nodes, which a new cpuset
 * starts without. */
static int make_dir(const hier *h, const char *dir, bool parent_level) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -errno;
  if (!h->v1 && parent_level && h->controllers[0])
    (void)write_file(dir, "cgroup.subtree_control", V2_DELEGATE);
  if (!h->v1 || !has(h, "cpuset")) return 0;
  char parent[PATH_MAX], v[4096];
  snprintf(parent, sizeof parent, "%s", dir);
  *strrchr(parent, '/') = '\0';
  static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
  for (size_t i = 0; i < 2; i++) {
    char cur[4096];
    if (ty__cg_read_file(dir, files[i], cur, sizeof cur) == 0 && cur[0] && cur[0] != '\n') continue;
    if (ty__cg_read_file(parent, files[i], v, sizeof v) == 0) (void)write_file(dir, files[i], v);
  }
  return 0;
}

/* The subtree's directories from the mount down (v1 parents exist already,
 * --cgroup-root's may not). */
static int make_base(const hier *h, size_t mount_len) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s", h->base);
  for (char *p = path + mount_len + 1; (p = strchr(p, '/')); p++) {
    *p = '\0';
    int rc = make_dir(h, path, false);
    *p = '/';
    if (rc != 0) return rc;
  }
  return make_dir(h, path, false);
}

static void add_hier(ty_cgroups *cg, const char *mount, const char *controllers, const char *parent,
                     const char *name, char *why, size_t len) {
  if (cg->n == MAX_HIER) return;
  hier *h = &cg->h[cg->n];
  h->v1 = cg->version == 1;
  snprintf(h->controllers, sizeof h->controllers, "%s", controllers);
  if (snprintf(h->base, sizeof h->base, "%s%s/%s", mount, parent, name) >= (int)sizeof h->base)
    return;
  h->mount_len = strlen(mount);
  int rc = make_base(h, h->mount_len);
  if (rc != 0) {
    ty_errf(why, len, rc, "cannot create %s: %s", h->base, strerror(-rc));
    return;
  }
  cg->n++;
}

/* The controllers a v1 cgroup mount carries of those the worker knows
 * ("memory", "cpu,cpuacct", ...; "" for named ones such as systemd's), and
 * its mount point; false for a line that is no v1 cgroup mount. */
static bool v1_mount(const char *line, char *mount, size_t mount_cap, char *ctl, size_t ctl_cap) {
  static const char *const known[] = {"memory",  "cpu",     "cpuacct", "cpuset",
                                      "devices", "freezer", "pids",    "blkio"};
  char m[PATH_MAX], fstype[32], opts[512];
  const char *dash = strstr(line, " - ");
  if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", m) != 1 ||
      sscanf(dash + 3, "%31s %*s %511s", fstype, opts) != 2 || strcmp(fstype, "cgroup") != 0)
    return false;
  snprintf(mount, mount_cap, "%s", m);
  ctl[0] = '\0';
  for (size_t i = 0; i < TY_ARRAY_LEN(known); i++)
    if (listed(opts, known[i]))
      snprintf(ctl + strlen(ctl), ctl_cap - strlen(ctl), "%s%s", ctl[0] ? "," : "", known[i]);
  return true;
}

/* Whether a task needs a cgroup in the v1 hierarchy carrying ctl. Each one
 * costs two directories made and removed per task, so only those that
 * limit, account or kill: memory, cpu, cpuacct, blkio (I/O bytes), freezer
 * (the race-free kill); devices only on a node with GPU device files (it
 * denies the GPUs a task was not given); pids without a freezer (it then
 * lists the members to kill) or with a process limit. cpuset alone is left
 * out: a task's cpuset would only copy its parent's CPUs and memory nodes. */
static bool v1_needed(const char *ctl, bool have_freezer, bool pids_max, uint64_t gpu_devs) {
  static const char *const always[] = {"memory", "cpu", "cpuacct", "blkio", "freezer"};
  for (size_t i = 0; i < TY_ARRAY_LEN(always); i++)
    if (listed(ctl, always[i])) return true;
  return (gpu_devs && listed(ctl, "devices")) ||
         ((!have_freezer || pids_max) && listed(ctl, "pids"));
}

/* The node's GPU device files, /dev/nvidia0 to /dev/nvidia63, as a mask. */
static uint64_t gpu_devices(void) {
  uint64_t mask = 0;
  for (uint32_t g = 0; g < 64; g++) {
    char dev[32];
    struct stat st;
    snprintf(dev, sizeof dev, "/dev/nvidia%u", g);
    if (stat(dev, &st) == 0 && S_ISCHR(st.st_mode)) mask |= UINT64_C(1) << g;
  }
  return mask;
}

/* v1: one hierarchy per mount of type cgroup that tasks need (v1_needed),
 * named ones (systemd) left out. */
static void open_v1(ty_cgroups *cg, const char *root, const char *name, char *why, size_t len) {
  FILE *f = fopen("/proc/self/mountinfo", "r");
  if (!f) return;
  char line[4096], mount[PATH_MAX], ctl[128];
  bool have_freezer = false;
  while (fgets(line, sizeof line, f))
    have_freezer |= v1_mount(line, mount, sizeof mount, ctl, sizeof ctl) && listed(ctl, "freezer");
  cg->gpu_devs = gpu_devices();
  rewind(f);
  while (fgets(line, sizeof line, f)) {
    if (!v1_mount(line, mount, sizeof mount, ctl, sizeof ctl) ||
        !v1_needed(ctl, have_freezer, cg->pids_max != 0, cg->gpu_devs))
      continue;
    char parent[PATH_MAX] = "";
    if (!root && !own_path(ctl, parent, sizeof parent)) continue;
    add_hier(cg, mount, ctl, root ? root : parent, name, why, len);
  }
  fclose(f);
}

/* A systemd service with Delegate=yes (trainworkerd.service) owns its unit's
 * cgroup, but the kernel lets a cgroup hand controllers to its children
 * only while it holds no process, and systemd starts the worker in it. So
 * a worker started by systemd (INVOCATION_ID set) and not told where to
 * put tasks (--cgroup-root) moves itself into a leaf, DIR/supervisor, as
 * systemd's own DelegateSubgroup= does in later versions; then DIR can
 * delegate memory and cpu to the tasks' subtree. True when it moved. */
static bool leave_delegated_root(const char *dir) {
  if (!getenv("INVOCATION_ID")) return false;
  char leaf[PATH_MAX], pid[32];
  if (snprintf(leaf, sizeof leaf, "%s/supervisor", dir) >= (int)sizeof leaf) return false;
  if (mkdir(leaf, 0755) != 0 && errno != EEXIST) return false;
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  int rc = write_file(leaf, "cgroup.procs", pid);
  if (rc != 0) {
    ty_warn("cgroup %s: cannot move the worker into it (%s): tasks get no limits", leaf,
            ty_strerror(rc));
    return false;
  }
  ty_info("moved into %s so that the unit's cgroup can delegate controllers to tasks", leaf);
  return true;
}

bool ty_cgroup2_mountinfo(const char *line, char *mount, size_t n, bool *favor_dynmods) {
  const char *dash = strstr(line, " - ");
  char m[PATH_MAX], fstype[32], opts[1024] = "";
  if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", m) != 1 ||
      sscanf(dash + 3, "%31s %*s %1023s", fstype, opts) < 1 || strcmp(fstype, "cgroup2") != 0)
    return false;
  snprintf(mount, n, "%s", m);
  *favor_dynmods = false;
  char *save = NULL;
  for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save))
    *favor_dynmods |= !strcmp(o, "favordynmods");
  return true;
}

/* Moving a process into a v2 cgroup (cgroup.procs) takes the kernel's
 * cgroup_threadgroup_rwsem for writing, which waits for an RCU grace
 * period whenever no migration happened just before: up to ~20 ms for an
 * occasional task start on a busy host (measured: median 0.15 ms, worst
 * 18 ms of 30; with favordynmods, worst 0.2 ms). Said once at start. */
static void hint_favor_dynmods(const char *mount, bool favor_dynmods) {
  if (!favor_dynmods)
    ty_warn("cgroup v2 at %s is mounted without favordynmods: a task's move into its cgroup may "
            "wait for an RCU grace period (up to ~20 ms per start); `mount -o "
            "remount,favordynmods %s` (Linux 6.0 or later) avoids it (docs/deploy.md)",
            mount, mount);
}

/* v2: the unified mount, used only when it carries the memory controller
 * (on hybrid machines it often carries none). Controllers are delegated to
 * the subtree when the parent allows it; without them tasks are still
 * tracked and killed by cgroup. */
static void open_v2(ty_cgroups *cg, const char *root, const char *name, char *why, size_t len) {
  FILE *f = fopen("/proc/self/mountinfo", "r");
  if (!f) return;
  char line[4096], mount[PATH_MAX] = "";
  bool favor_dynmods = false;
  while (!mount[0] && fgets(line, sizeof line, f))
    (void)ty_cgroup2_mountinfo(line, mount, sizeof mount, &favor_dynmods);
  fclose(f);
  char parent[PATH_MAX] = "", avail[256] = "", dir[PATH_MAX];
  if (!mount[0] || (!root && !own_path("", parent, sizeof parent))) return;
  if (root) snprintf(parent, sizeof parent, "%s", root);
  snprintf(dir, sizeof dir, "%s%s", mount, parent);
  if (ty__cg_read_file(dir, "cgroup.controllers", avail, sizeof avail) != 0 ||
      !strstr(avail, "memory"))
    return;
  /* Fails (EBUSY) while the parent holds processes, the worker itself
   * included: then tasks are tracked and killed by cgroup, without limits,
   * and the description says "no controllers" (run the worker in a
   * delegated cgroup of its own, or point --cgroup-root at one), unless
   * systemd delegated the cgroup and the worker can step out of it. */
  if (write_file(dir, "cgroup.subtree_control", V2_DELEGATE) == -EBUSY && !root &&
      leave_delegated_root(dir))
    (void)write_file(dir, "cgroup.subtree_control", V2_DELEGATE);
  cg->version = 2;
  add_hier(cg, mount, "", parent, name, why, len);
  if (cg->n == 0) return;
  hint_favor_dynmods(mount, favor_dynmods);
  hier *h = &cg->h[0];
  (void)write_file(h->base, "cgroup.subtree_control", V2_DELEGATE);
  if (ty__cg_read_file(h->base, "cgroup.subtree_control", h->controllers, sizeof h->controllers) ==
      0)
    h->controllers[strcspn(h->controllers, "\n")] = '\0';
}

/* ---- the pool of spare cgroups (v1) ------------------------------------------------------- */

/* Making and removing a cgroup costs tens of microseconds of kernel work
 * in each hierarchy (its control files, its per-CPU state); renaming one
 * costs a few. So an ended task's job<J> (with its only rank, rank0) in a
 * v1 hierarchy that holds no per-task state beyond counters the worker can
 * reset is renamed spare<N>, and the next job's rank 0 takes it back by
 * renaming. The memory hierarchy is never pooled: pages a task left in the
 * page cache stay charged to its memory cgroup, and the next task's peak
 * would count them; nor is devices (its rules), nor pids with a limit (its
 * pids.events count of refused forks cannot be reset). A spare missing in one
 * hierarchy (its rename failed) is made fresh there; spares are empty, and
 * are removed at close and at open (a previous run's). */

static bool pooled(const ty_cgroups *cg, const hier *h) {
  return cg->version == 1 && !has(h, "memory") && !has(h, "devices") &&
         !(cg->pids_max && has(h, "pids"));
}

static void spare_dir(const hier *h, uint32_t n, char *out, size_t cap) {
  if (snprintf(out, cap, "%s/spare%" PRIu32, h->base, n) >= (int)cap) out[0] = '\0';
}

/* Takes spare<n> as job<J> (its rank0 comes with it): 0, or -errno. */
static int take_spare(const hier *h, uint32_t n, const char *jdir) {
  char sdir[PATH_MAX];
  spare_dir(h, n, sdir, sizeof sdir);
  return rename(sdir, jdir) == 0 ? 0 : -errno;
}

/* Resets what the next task would otherwise inherit: its CPU time and I/O
 * counters (the quota is written at every start, a freezer is thawed
 * after a kill). */
static void reset_counters(const hier *h, const char *rdir) {
  if (has(h, "cpuacct")) (void)write_file(rdir, "cpuacct.usage", "0");
  if (has(h, "blkio")) (void)write_file(rdir, "blkio.reset_stats", "1");
}

/* Whether job<J> in h holds rank0 and nothing else (a kernfs directory's
 * link count is 2 plus its subdirectories). */
static bool only_rank0(const char *jdir, const char *rdir) {
  struct stat js, rs;
  return stat(jdir, &js) == 0 && js.st_nlink == 3 && stat(rdir, &rs) == 0 && rs.st_nlink == 2;
}

/* Gives an ended rank 0's job<J> back as spare<n>: 0, or -errno (then the
 * caller removes it). */
static int give_spare(const hier *h, uint32_t n, const char *jdir, const char *rdir) {
  if (!only_rank0(jdir, rdir)) return -ENOTEMPTY;
  char sdir[PATH_MAX];
  spare_dir(h, n, sdir, sizeof sdir);
  reset_counters(h, rdir);
  return rename(jdir, sdir) == 0 ? 0 : -errno;
}

/* Removes every spare<N> (with its rank0) under the subtree. */
static void drop_spares(ty_cgroups *cg) {
  for (size_t i = 0; i < cg->n; i++) {
    DIR *d = opendir(cg->h[i].base);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      uint32_t n;
      char tail, dir[PATH_MAX];
      if (sscanf(e->d_name, "spare%" SCNu32 "%c", &n, &tail) != 1) continue;
      spare_dir(&cg->h[i], n, dir, sizeof dir);
      size_t len = strlen(dir);
      snprintf(dir + len, sizeof dir - len, "/rank0");
      (void)rmdir(dir);
      dir[len] = '\0';
      (void)rmdir(dir);
    }
    if (d) closedir(d);
  }
  cg->spares = 0;
}

/* ---- opening ---------------------------------------------------------------------------- */

static void describe(ty_cgroups *cg) {
  size_t w = (size_t)snprintf(cg->describe, sizeof cg->describe, "cgroup v%d (", cg->version);
  for (size_t i = 0; i < cg->n && w < sizeof cg->describe; i++)
    w += (size_t)snprintf(cg->describe + w, sizeof cg->describe - w, "%s%s", i ? ", " : "",
                          cg->h[i].controllers[0] ? cg->h[i].controllers : "no controllers");
  if (w < sizeof cg->describe)
    snprintf(cg->describe + w, sizeof cg->describe - w, ") under %s", cg->h[cg->primary].base);
}

ty_cgroups *ty_cgroup_open(const char *root, const char *name, uint64_t pids_max, char *why,
                           size_t len) {
  ty_cgroups *cg = ty_xcalloc(1, sizeof *cg);
  cg->pids_max = pids_max;
  snprintf(why, len, "no cgroup hierarchy is mounted");
  open_v2(cg, root, name, why, len);
  if (cg->n == 0) {
    cg->version = 1;
    open_v1(cg, root, name, why, len);
  }
  if (cg->n == 0 && !strcmp(why, "no cgroup hierarchy is mounted") &&
      access("/sys/fs/cgroup", F_OK) == 0)
    snprintf(why, len, "no usable cgroup controller under /sys/fs/cgroup");
  if (cg->n == 0) {
    free(cg);
    return NULL;
  }
  /* Membership is read where killing is race-free: freezer, else pids. */
  const char *pref[] = {"freezer", "pids", "memory"};
  for (size_t i = 0; i < TY_ARRAY_LEN(pref) && cg->version == 1; i++) {
    const hier *h = ty__cg_find(cg, pref[i]);
    if (h) {
      cg->primary = (int)(h - cg->h);
      break;
    }
  }
  drop_spares(cg); /* a previous run's */
  describe(cg);
  return cg;
}

void ty_cgroup_close(ty_cgroups *cg) {
  if (!cg) return;
  drop_spares(cg);
  for (size_t i = 0; i < cg->n; i++)
    (void)rmdir(cg->h[i].base); /* only when empty */
  free(cg);
}

const char *ty_cgroup_describe(const ty_cgroups *cg) {
  return cg->describe;
}

/* ---- tasks ----------------------------------------------------------------------------------- */

/* v1 devices: deny the node's GPUs (the /dev/nvidiaN found at open) that
 * the task was not given. */
static void deny_gpus(const ty_cgroups *cg, const char *dir, const ty_cgroup_limits *lim) {
  for (uint32_t g = 0; g < lim->node_gpus && g < 64; g++) {
    bool mine = false;
    for (size_t i = 0; i < lim->n_gpus; i++)
      mine |= lim->gpus[i] == g;
    char dev[64], rule[64];
    struct stat st;
    snprintf(dev, sizeof dev, "/dev/nvidia%u", g);
    if (mine || !(cg->gpu_devs >> g & 1) || stat(dev, &st) != 0 || !S_ISCHR(st.st_mode)) continue;
    snprintf(rule, sizeof rule, "c %u:%u rwm", major(st.st_rdev), minor(st.st_rdev));
    if (write_file(dir, "devices.deny", rule) != 0) ty_warn("cgroup %s: cannot deny %s", dir, dev);
  }
}

/* The job level: its memory on this node and its process limit (threads
 * count), each where the hierarchy carries the controller. */
static int limit_job(const ty_cgroups *cg, const hier *h, const char *dir,
                     const ty_cgroup_limits *lim) {
  char v[32];
  int rc = 0;
  if (cg->pids_max && has(h, "pids")) {
    snprintf(v, sizeof v, "%" PRIu64, cg->pids_max);
    rc = write_file(dir, "pids.max", v);
  }
  if (rc != 0 || !lim->mem_bytes || !has(h, "memory")) return rc;
  snprintf(v, sizeof v, "%" PRIu64, lim->mem_bytes);
  return write_file(dir, cg->version == 2 ? "memory.max" : "memory.limit_in_bytes", v);
}

static int limit_rank(const ty_cgroups *cg, const hier *h, const char *dir,
                      const ty_cgroup_limits *lim) {
  uint64_t quota = (uint64_t)(lim->cpus ? lim->cpus : 1) * 100000u;
  char v[64];
  int rc = 0;
  if (cg->version == 2 && has(h, "cpu")) {
    snprintf(v, sizeof v, "%" PRIu64 " 100000", quota);
    rc = write_file(dir, "cpu.max", v);
  } else if (cg->version == 1 && has(h, "cpu")) {
    snprintf(v, sizeof v, "%" PRIu64, quota);
    rc = write_file(dir, "cpu.cfs_period_us", "100000");
    if (rc == 0) rc = write_file(dir, "cpu.cfs_quota_us", v);
  }
  if (cg->version == 1 && has(h, "devices")) deny_gpus(cg, dir, lim);
  return rc;
}

/* job<J> in h: a spare taken (rank 0 when the pool has one), else made. */
static int job_level(const ty_cgroups *cg, const hier *h, uint32_t rank, uint32_t spare,
                     const char *jdir, bool *took) {
  *took = rank == 0 && spare != UINT32_MAX && pooled(cg, h) && take_spare(h, spare, jdir) == 0;
  if (*took) return 0;
  int rc = make_dir(h, jdir, true);
  if (rc == -ENOENT && (rc = make_base(h, h->mount_len)) == 0) {
    ty_log(TY_LOG_WARN, "cgroup %s was removed under this worker; made it again", h->base);
    rc = make_dir(h, jdir, true);
  }
  return rc;
}

int ty_cgroup_task_create(ty_cgroups *cg, uint64_t job, uint32_t rank, const ty_cgroup_limits *lim,
                          char ***out_procs, char *err, size_t len) {
  char **procs = ty_xcalloc(cg->n + 1, sizeof *procs);
  uint32_t spare = rank == 0 && cg->spares ? cg->spares - 1 : UINT32_MAX;
  bool any_taken = false;
  int rc = 0;
  for (size_t i = 0; i < cg->n && rc == 0; i++) {
    const hier *h = &cg->h[i];
    char jdir[PATH_MAX], rdir[PATH_MAX];
    bool took = false;
    ty__cg_task_dir(h, job, UINT32_MAX, jdir, sizeof jdir);
    ty__cg_task_dir(h, job, rank, rdir, sizeof rdir);
    rc = job_level(cg, h, rank, spare, jdir, &took);
    any_taken |= took;
    if (rc == 0) rc = limit_job(cg, h, jdir, lim);
    if (rc == 0 && !took) rc = make_dir(h, rdir, false);
    if (rc == 0) rc = limit_rank(cg, h, rdir, lim);
    if (rc != 0) {
      rc = ty_errf(err, len, TY_EIO, "cgroup %s: %s", rdir, strerror(-rc));
      break;
    }
    /* v1: the tasks file, where writing "0" moves the writer's own thread
     * without the global lock that a cgroup.procs write takes (an RCU grace
     * period, ~10 ms, whenever no other migration happened just before);
     * the joining process is single-threaded, so its thread is all of it.
     * v2 has no such file: cgroup.procs and the pid. */
    const char *file = cg->version == 1 ? "tasks" : "cgroup.procs";
    size_t n = strlen(rdir) + strlen(file) + 2;
    procs[i] = ty_xmalloc(n);
    snprintf(procs[i], n, "%s/%s", rdir, file);
  }
  if (any_taken) cg->spares--;
  if (rc != 0) {
    ty_cgroup_procs_free(procs);
    (void)ty_cgroup_task_remove(cg, job, rank);
    return rc;
  }
  *out_procs = procs;
  return 0;
}

void ty_cgroup_procs_free(char **procs) {
  for (size_t i = 0; procs && procs[i]; i++)
    free(procs[i]);
  free(procs);
}

/* Calls fn for every pid in the task's cgroup; returns how many there were. */
static size_t each_pid(const ty_cgroups *cg, uint64_t job, uint32_t rank,
                       void (*fn)(pid_t pid, int sig), int sig) {
  char dir[PATH_MAX], buf[65536];
  ty__cg_task_dir(&cg->h[cg->primary], job, rank, dir, sizeof dir);
  if (ty__cg_read_file(dir, "cgroup.procs", buf, sizeof buf) != 0) return 0;
  size_t n = 0;
  for (char *p = buf, *end; *p; p = end) {
    long pid = strtol(p, &end, 10);
    if (end == p) break;
    if (pid > 0) {
      n++;
      if (fn) fn((pid_t)pid, sig);
    }
  }
  return n;
}

static void send_sig(pid_t pid, int sig) {
  (void)kill(pid, sig);
}

int ty_cgroup_task_signal(ty_cgroups *cg, uint64_t job, uint32_t rank, int sig) {
  return each_pid(cg, job, rank, send_sig, sig) ? 0 : TY_ENOTFOUND;
}

bool ty_cgroup_task_empty(ty_cgroups *cg, uint64_t job, uint32_t rank) {
  return each_pid(cg, job, rank, NULL, 0) == 0;
}

static void nap_ms(long ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* v1 freezer: FROZEN, every member SIGKILLed, THAWED (a frozen process
 * cannot fork, and the kill lands once it thaws). */
static void freeze_kill(const ty_cgroups *cg, const hier *fz, uint64_t job, uint32_t rank) {
  char dir[PATH_MAX], state[32] = "";
  ty__cg_task_dir(fz, job, rank, dir, sizeof dir);
  if (write_file(dir, "freezer.state", "FROZEN") == 0)
    for (int i = 0; i < 100 && ty__cg_read_file(dir, "freezer.state", state, sizeof state) == 0 &&
                    strncmp(state, "FROZEN", 6) != 0;
         i++)
      nap_ms(1);
  each_pid(cg, job, rank, send_sig, SIGKILL);
  (void)write_file(dir, "freezer.state", "THAWED");
}

int ty_cgroup_task_kill(ty_cgroups *cg, uint64_t job, uint32_t rank) {
  const hier *fz = cg->version == 1 ? ty__cg_find(cg, "freezer") : NULL;
  char dir[PATH_MAX];
  ty__cg_task_dir(&cg->h[cg->primary], job, rank, dir, sizeof dir);
  if (cg->version == 2 && write_file(dir, "cgroup.kill", "1") == 0) return 0;
  if (fz) {
    freeze_kill(cg, fz, job, rank);
    return 0;
  }
  /* No freezer: kill until nothing is left (a forking task may need rounds). */
  for (int round = 0; round < 50 && each_pid(cg, job, rank, send_sig, SIGKILL); round++)
    nap_ms(2);
  return 0;
}

int ty_cgroup_task_remove(ty_cgroups *cg, uint64_t job, uint32_t rank) {
  int rc = 0;
  /* A rank left with a process (stuck in the kernel after SIGKILL) is
   * never given to another job: its rmdir fails, as before the pool. */
  bool poolable = rank == 0 && cg->spares < MAX_SPARES && cg->version == 1 &&
                  ty_cgroup_task_empty(cg, job, rank);
  bool any_given = false;
  for (size_t i = 0; i < cg->n; i++) {
    const hier *h = &cg->h[i];
    char jdir[PATH_MAX], rdir[PATH_MAX];
    ty__cg_task_dir(h, job, rank, rdir, sizeof rdir);
    ty__cg_task_dir(h, job, UINT32_MAX, jdir, sizeof jdir);
    if (poolable && pooled(cg, h) && give_spare(h, cg->spares, jdir, rdir) == 0) {
      any_given = true;
      continue;
    }
    if (rmdir(rdir) != 0 && errno != ENOENT) rc = -errno;
    (void)rmdir(jdir); /* fails while other ranks of the job remain: fine */
  }
  if (any_given) cg->spares++;
  return rc;
}

int ty_cgroup_task_path(const ty_cgroups *cg, const char *controller, uint64_t job, uint32_t rank,
                        char *out, size_t len) {
  const hier *h = controller[0] ? ty__cg_find(cg, controller) : &cg->h[cg->primary];
  if (!h) return TY_ENOTFOUND;
  ty__cg_task_dir(h, job, rank, out, len);
  return 0;
}

void ty_cgroup_scan(ty_cgroups *cg, void (*cb)(uint64_t job, uint32_t rank, void *ud), void *ud) {
  DIR *jobs = opendir(cg->h[cg->primary].base);
  struct dirent *je;
  while (jobs && (je = readdir(jobs))) {
    uint64_t job;
    char tail;
    if (sscanf(je->d_name, "job%" SCNu64 "%c", &job, &tail) != 1) continue;
    char jdir[PATH_MAX];
    ty__cg_task_dir(&cg->h[cg->primary], job, UINT32_MAX, jdir, sizeof jdir);
    DIR *ranks = opendir(jdir);
    struct dirent *re;
    while (ranks && (re = readdir(ranks))) {
      uint32_t rank;
      if (sscanf(re->d_name, "rank%" SCNu32 "%c", &rank, &tail) == 1) cb(job, rank, ud);
    }
    if (ranks) closedir(ranks);
    for (size_t i = 0; i < cg->n; i++) { /* an empty job level left behind */
      ty__cg_task_dir(&cg->h[i], job, UINT32_MAX, jdir, sizeof jdir);
      (void)rmdir(jdir);
    }
  }
  if (jobs) closedir(jobs);
}
