/* SPDX-License-Identifier: Apache-2.0 */
/*
 * World formation through the controller and the checked, bucketed
 * all-reduce over Open MPI (see collective.h for the protocol). Tuned for a
 * handful of ranks exchanging a few MiB per step: the per-bucket check is
 * one 32-byte allgather, and waits poll MPI_Test (spinning briefly, then
 * sleeping 50 us) so a deadline can end them.
 */

#include "ops/collective/coll_internal.h"

#include "lib/base/base.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Open MPI keeps allocations from MPI_Init, its dynamic-process calls and
 * its plugins (some unloaded before LeakSanitizer reports, so shown as
 * "<unknown module>") until exit; every such stack passes through libmpi,
 * libopen-rte, libopen-pal or (its progress thread) libevent. A rank's environment is the job's, so
 * deploy/lsan.supp cannot reach it: sanitizer builds of every program that
 * forms a world carry these suppressions themselves. */
#if defined(__SANITIZE_ADDRESS__)
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
  return "leak:libmpi.so\nleak:libopen-rte.so\nleak:libopen-pal.so\nleak:libevent\n";
}
/* The suppressions match a library anywhere in the allocation's stack, but
 * the fast unwinder stops at the first frame of a plugin built without frame
 * pointers; the slow one reaches libmpi. ASAN_OPTIONS still overrides it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "fast_unwind_on_malloc=0";
}
#endif

int ty__coll_set_err(ty_coll *c, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ty_verrf(c->err, sizeof c->err, rc, fmt, ap);
  va_end(ap);
  return rc;
}

int ty__coll_mpi_err(ty_coll *c, int code, const char *what) {
  char s[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(code, s, &len);
  c->failed = true;
  return ty__coll_set_err(c, TY_EIO, "%s failed: %s", what, s);
}

/* ---- watchdog: formation must finish before the deadline ------------------- */
typedef struct watchdog {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  uint32_t timeout_ms;
  uint32_t rank;
} watchdog;

static void *watch(void *arg) {
  watchdog *w = arg;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += w->timeout_ms / 1000;
  until.tv_nsec += (long)(w->timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&w->mu);
  int rc = 0;
  while (!w->done && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
  bool done = w->done;
  pthread_mutex_unlock(&w->mu);
  if (!done) {
    fprintf(stderr,
            "collective: rank %u: the MPI world did not form within %u ms (a peer rank did not "
            "start or "
            "died); giving up\n",
            w->rank, w->timeout_ms);
    fflush(stderr);
    _exit(1);
  }
  return NULL;
}

static void watchdog_stop(watchdog *w) {
  pthread_mutex_lock(&w->mu);
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->th, NULL);
}

/* ---- ompi-server (rank 0) ------------------------------------------------------ */
static int read_uri(const char *path, char *out, size_t n) {
  FILE *f = fopen(path, "r");
  if (!f) return TY_ENOTFOUND;
  size_t got = fread(out, 1, n - 1, f);
  fclose(f);
  out[got] = 0;
  while (got && (out[got - 1] == '\n' || out[got - 1] == ' '))
    out[--got] = 0;
  return got && strchr(out, ';') ? 0 : TY_ENOTFOUND;
}

int ty__coll_server_mkdtemp(char *dir) {
  const char *tmp = getenv("TMPDIR");
  static const char name[] = "/trainyard-mpi-XXXXXX";
  if (!tmp || tmp[0] != '/' || strlen(tmp) + sizeof name > TY__COLL_DIR_MAX) tmp = "/tmp";
  snprintf(dir, TY__COLL_DIR_MAX, "%s%s", tmp, name);
  return mkdtemp(dir) ? 0 : TY_EIO;
}

static int start_server(ty_coll *c, char *uri, size_t uri_len) {
  if (ty__coll_server_mkdtemp(c->server_dir) != 0) {
    int rc = ty__coll_set_err(c, TY_EIO, "mkdtemp %s: %s", c->server_dir, strerror(errno));
    c->server_dir[0] = 0;
    return rc;
  }
  char path[TY__COLL_DIR_MAX + 8];
  snprintf(path, sizeof path, "%s/uri", c->server_dir);
  const char *bin = c->o.ompi_server ? c->o.ompi_server : "ompi-server";
  pid_t pid = fork();
  if (pid < 0) return ty__coll_set_err(c, TY_EIO, "fork: %s", strerror(errno));
  if (pid == 0) {
    sigset_t none; /* trainrun blocks its stop signals: the server must not */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* gone with rank 0 */
    execlp(bin, bin, "--no-daemonize", "--report-uri", path, (char *)NULL);
    fprintf(stderr, "collective: cannot run %s: %s\n", bin, strerror(errno));
    _exit(127);
  }
  c->server_pid = pid;
  int64_t deadline = ty_mono_ms() + c->o.timeout_ms;
  while (read_uri(path, uri, uri_len) != 0) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      c->server_pid = 0;
      return ty__coll_set_err(c, TY_EIO, "%s exited before reporting its URI (status %d)", bin, st);
    }
    if (ty_mono_ms() > deadline)
      return ty__coll_set_err(c, TY_ETIMEDOUT, "%s did not report its URI in time", bin);
    usleep(20000);
  }
  return 0;
}

static void stop_server(ty_coll *c) {
  if (c->server_pid > 0) {
    kill(c->server_pid, SIGTERM);
    waitpid(c->server_pid, NULL, 0);
    c->server_pid = 0;
  }
  if (c->server_dir[0]) {
    char path[TY__COLL_DIR_MAX + 8];
    snprintf(path, sizeof path, "%s/uri", c->server_dir);
    unlink(path);
    rmdir(c->server_dir);
    c->server_dir[0] = 0;
  }
}

/* ---- formation ------------------------------------------------------------------- */
static int rdv_get_str(ty_coll *c, const char *key, char *out, size_t n) {
  uint8_t *v = NULL;
  size_t len = 0;
  int rc = ty_rdv_get(c->rdv, key, c->o.timeout_ms, &v, &len, c->err, sizeof c->err);
  if (rc != 0) return rc;
  snprintf(out, n, "%s", (const char *)v);
  free(v);
  return 0;
}

/* Rank 0 starts ompi-server; every rank points Open MPI at it and inits. */
static int init_mpi(ty_coll *c) {
  char uri[1024] = "";
  int rc = 0;
  if (c->o.rank == 0) {
    if ((rc = start_server(c, uri, sizeof uri)) == 0)
      rc = ty_rdv_put(c->rdv, "mpi.server", uri, strlen(uri), c->err, sizeof c->err);
  } else {
    rc = rdv_get_str(c, "mpi.server", uri, sizeof uri);
  }
  if (rc != 0) return rc;
  setenv("OMPI_MCA_pmix_server_uri", uri, 1);
  int provided = 0;
  if ((rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS)
    return ty__coll_mpi_err(c, rc, "MPI_Init_thread");
  c->mpi_inited = true;
  MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return 0;
}

/* Merges rank k into `world` (members accept, k connects). */
static int grow(ty_coll *c, MPI_Comm *world, uint32_t k) {
  MPI_Comm inter, merged;
  char key[64];
  snprintf(key, sizeof key, "mpi.turn.%u", k);
  int rc;
  bool joining = c->o.rank == k;
  if (joining) {
    char turn[16];
    if ((rc = rdv_get_str(c, key, turn, sizeof turn)) != 0 ||
        (rc = rdv_get_str(c, "mpi.port", c->port, sizeof c->port)) != 0)
      return rc;
    if ((rc = MPI_Comm_connect(c->port, MPI_INFO_NULL, 0, MPI_COMM_SELF, &inter)) != MPI_SUCCESS)
      return ty__coll_mpi_err(c, rc, "MPI_Comm_connect");
  } else {
    if (c->o.rank == 0 && (rc = ty_rdv_put(c->rdv, key, "1", 1, c->err, sizeof c->err)) != 0)
      return rc;
    if ((rc = MPI_Comm_accept(c->port, MPI_INFO_NULL, 0, *world, &inter)) != MPI_SUCCESS)
      return ty__coll_mpi_err(c, rc, "MPI_Comm_accept");
  }
  rc = MPI_Intercomm_merge(inter, joining ? 1 : 0, &merged);
  MPI_Comm_free(&inter);
  if (rc != MPI_SUCCESS) return ty__coll_mpi_err(c, rc, "MPI_Intercomm_merge");
  if (*world != MPI_COMM_SELF) MPI_Comm_free(world);
  *world = merged;
  return 0;
}

static int form_world(ty_coll *c) {
  int rc = init_mpi(c);
  if (rc != 0) return rc;
  if (c->o.rank == 0) {
    if ((rc = MPI_Open_port(MPI_INFO_NULL, c->port)) != MPI_SUCCESS)
      return ty__coll_mpi_err(c, rc, "MPI_Open_port");
    if ((rc = ty_rdv_put(c->rdv, "mpi.port", c->port, strlen(c->port), c->err, sizeof c->err)) != 0)
      return rc;
  }
  MPI_Comm world = MPI_COMM_SELF;
  for (uint32_t k = 1; k < c->o.world_size; k++) {
    if (c->o.rank <= k && (rc = grow(c, &world, k)) != 0) return rc;
  }
  if ((rc = MPI_Comm_split(world, 0, (int)c->o.rank, &c->world.comm)) != MPI_SUCCESS)
    return ty__coll_mpi_err(c, rc, "MPI_Comm_split");
  if (world != MPI_COMM_SELF) MPI_Comm_free(&world);
  MPI_Comm_set_errhandler(c->world.comm, MPI_ERRORS_RETURN);
  int size = 0, me = -1;
  MPI_Comm_size(c->world.comm, &size);
  MPI_Comm_rank(c->world.comm, &me);
  c->world.size = size;
  c->world.me = me;
  if (!(c->world.world_rank = calloc((size_t)size + 1, sizeof *c->world.world_rank)))
    return TY_ENOMEM;
  for (int r = 0; r < size; r++)
    c->world.world_rank[r] = (uint32_t)r;
  if ((uint32_t)size != c->o.world_size || (uint32_t)me != c->o.rank)
    return ty__coll_set_err(c, TY_EINTERNAL,
                            "formed a world of %d with this rank at %d, expected %u and %u", size,
                            me, c->o.world_size, c->o.rank);
  return 0;
}

int ty_coll_create(const ty_coll_opts *opts, ty_coll **out_coll, char *err, size_t err_len) {
  ty_coll *c = calloc(1, sizeof *c);
  if (!c) return TY_ENOMEM;
  c->o = *opts;
  c->o.rendezvous = NULL;
  if (!c->o.timeout_ms) c->o.timeout_ms = 60000;
  if (c->o.world_size == 0) c->o.world_size = 1;
  c->world.comm = MPI_COMM_NULL;
  c->world.noun = "gradient bucket";
  for (int m = 0; m < 3; m++)
    c->mesh[m].comm = MPI_COMM_NULL;
  for (int a = 0; a < 2; a++)
    c->inner[a].comm = MPI_COMM_NULL;
  int rc = 0;
  if (c->o.rank >= c->o.world_size)
    rc = ty__coll_set_err(c, TY_EINVAL, "rank %u is not below the world size %u", c->o.rank,
                          c->o.world_size);
  else if (c->o.world_size > 1 && c->o.backend == TY_COLL_NCCL) {
#ifdef TY_HAVE_NCCL
    if ((rc = ty_rdv_create(opts->rendezvous, c->o.job_id, c->o.timeout_ms, &c->rdv, c->err,
                            sizeof c->err)) == 0)
      rc = ty__nccl_create(c);
#else
    rc = ty__coll_set_err(c, TY_EUNSUPPORTED,
                          "NCCL: this build has no NCCL (compiled without TY_HAVE_NCCL)");
#endif
  } else if (c->o.world_size > 1) {
    rc = ty_rdv_create(opts->rendezvous, c->o.job_id, c->o.timeout_ms, &c->rdv, c->err,
                       sizeof c->err);
    if (rc == 0) {
      watchdog w = {.mu = PTHREAD_MUTEX_INITIALIZER,
                    .cv = PTHREAD_COND_INITIALIZER,
                    .timeout_ms = c->o.timeout_ms,
                    .rank = c->o.rank};
      bool watching = pthread_create(&w.th, NULL, watch, &w) == 0;
      rc = form_world(c);
      if (watching) watchdog_stop(&w);
    }
  }
  if (rc != 0) {
    ty_errf(err, err_len, rc, "collective: rank %u of %u: %s", c->o.rank, c->o.world_size, c->err);
    c->failed = true;
    ty_coll_destroy(c);
    return rc;
  }
  *out_coll = c;
  return 0;
}

void ty_coll_destroy(ty_coll *c) {
  if (!c) return;
#ifdef TY_HAVE_NCCL
  if (c->nccl) {
    ty__coll_p2p_close(c); /* the device copies of queued messages, while CUDA is up */
    ty__nccl_destroy(c);
  }
#endif
  for (int m = 0; m < 3; m++)
    ty__coll_group_close(&c->mesh[m]);
  for (int a = 0; a < 2; a++)
    ty__coll_group_close(&c->inner[a]);
  if (c->mpi_inited && !c->failed) ty_coll_flush(c);
  ty__coll_p2p_close(c);
  if (c->mpi_inited && !c->failed) {
    if (c->world.comm != MPI_COMM_NULL) MPI_Comm_free(&c->world.comm);
    if (c->o.rank == 0 && c->port[0]) MPI_Close_port(c->port);
    MPI_Finalize();
  }
  stop_server(c);
  ty_rdv_destroy(c->rdv);
  for (size_t i = 0; i < c->n_tensors; i++)
    free(c->tensors[i].name);
  free(c->tensors);
  free(c->buckets);
  free(c->world.world_rank);
  free(c);
}

void ty__coll_group_close(ty__group *g) {
  free(g->world_rank);
  g->world_rank = NULL;
  if (g->comm != MPI_COMM_NULL) MPI_Comm_free(&g->comm);
  g->comm = MPI_COMM_NULL;
}

/* ---- operations ------------------------------------------------------------------ */
int ty__coll_wait_req(ty_coll *c, MPI_Request *rq, const char *what, uint64_t seq) {
  int64_t deadline = ty_mono_ms() + c->o.timeout_ms;
  unsigned spins = 0;
  for (;;) {
    int done = 0, rc = MPI_Test(rq, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return ty__coll_mpi_err(c, rc, what);
    if (done) return 0;
    if (++spins > 200) {
      struct timespec ts = {0, 50000};
      nanosleep(&ts, NULL);
      if (ty_mono_ms() > deadline) {
        c->failed = true;
        return ty__coll_set_err(
            c, TY_ETIMEDOUT,
            "%s of collective seq %llu: no answer from the other ranks within %u ms "
            "(a rank died or hangs)",
            what, (unsigned long long)seq, c->o.timeout_ms);
      }
    }
  }
}

/* On a mismatch: every member learns every member's description; names the
 * first (by world rank) that differs from the group's first member. */
static int report_mismatch(ty_coll *c, const ty__group *g, const uint64_t *all, const char *mine) {
  int bad = 0;
  for (int r = 1; r < g->size && !bad; r++)
    if (memcmp(&all[4 * r], &all[0], 3 * sizeof *all) != 0) bad = r;
  char *descs = calloc((size_t)g->size, TY__COLL_DESC);
  MPI_Request rq;
  int rc = descs ? MPI_Iallgather(mine, TY__COLL_DESC, MPI_CHAR, descs, TY__COLL_DESC, MPI_CHAR,
                                  g->comm, &rq)
                 : -1;
  unsigned wbad = g->world_rank[bad], w0 = g->world_rank[0];
  if (rc == MPI_SUCCESS && ty__coll_wait_req(c, &rq, "collective mismatch report", all[0]) == 0) {
    descs[(size_t)bad * TY__COLL_DESC + TY__COLL_DESC - 1] = 0;
    descs[TY__COLL_DESC - 1] = 0;
    ty__coll_set_err(
        c, TY_EINVAL,
        "collective mismatch: rank %u reduces %s seq %llu holding %s, but rank %u reduces seq %llu "
        "holding %s; the ranks do not train the same model (or bucket size, or plan)",
        wbad, g->noun, (unsigned long long)all[4 * bad], descs + (size_t)bad * TY__COLL_DESC, w0,
        (unsigned long long)all[0], descs);
  } else {
    ty__coll_set_err(
        c, TY_EINVAL,
        "collective mismatch: rank %u disagrees with rank %u on %s seq %llu (%llu vs %llu floats)",
        wbad, w0, g->noun, (unsigned long long)all[4 * bad], (unsigned long long)all[4 * bad + 2],
        (unsigned long long)all[2]);
  }
  free(descs);
  c->failed = true; /* peers may now diverge: do not finalize */
  return TY_EINVAL;
}

int ty__coll_stop_mine(const ty_coll *c) {
  return (c->o.stop && __atomic_load_n(c->o.stop, __ATOMIC_RELAXED)) ||
                 (c->o.stop_agreed && *c->o.stop_agreed)
             ? 1
             : 0;
}

void ty__coll_stop_seen(ty_coll *c) {
  if (c->o.stop_agreed)
    *c->o.stop_agreed = 1;
  else if (c->o.stop)
    *c->o.stop = 1;
}

void ty__coll_check_start(ty_coll *c, const ty__group *g, uint64_t seq, uint64_t hash, size_t n,
                          const char *desc, ty__check *k) {
  *k = (ty__check){.g = g, .desc = desc, .t0 = ty__coll_now_us(), .rq = MPI_REQUEST_NULL};
  k->all = calloc((size_t)g->size, sizeof k->hdr);
  if (!k->all) {
    k->rc = TY_ENOMEM;
    return;
  }
  k->hdr[0] = seq;
  k->hdr[1] = hash;
  k->hdr[2] = n;
  k->hdr[3] = (uint64_t)ty__coll_stop_mine(c);
  int rc = MPI_Iallgather(k->hdr, 4, MPI_UINT64_T, k->all, 4, MPI_UINT64_T, g->comm, &k->rq);
  if (rc != MPI_SUCCESS) k->rc = ty__coll_mpi_err(c, rc, "MPI_Iallgather");
}

int ty__coll_check_finish(ty_coll *c, ty__check *k) {
  int rc = k->rc ? k->rc : ty__coll_wait_req(c, &k->rq, "shape check", k->hdr[0]);
  const uint64_t *all = k->all;
  for (int r = 0; rc == 0 && r < k->g->size; r++) {
    if (all[4 * r + 3]) ty__coll_stop_seen(c);
    if (memcmp(&all[4 * r], &all[0], 3 * sizeof *all) != 0)
      rc = report_mismatch(c, k->g, all, k->desc);
  }
  free(k->all);
  k->all = NULL;
  c->stats.check_s += (double)(ty__coll_now_us() - k->t0) / 1e6;
  return rc;
}

int ty__coll_check(ty_coll *c, const ty__group *g, uint64_t seq, uint64_t hash, size_t n,
                   const char *desc) {
  ty__check k;
  ty__coll_check_start(c, g, seq, hash, n, desc, &k);
  return ty__coll_check_finish(c, &k);
}

int ty__coll_failed_before(ty_coll *c) {
  char cause[TY_ERR_LEN]; /* the cause stays in c->err; it must not be formatted into itself */
  snprintf(cause, sizeof cause, "%s", c->err);
  return ty__coll_set_err(c, TY_ESTATE, "an earlier collective failed: %s", cause);
}

/* Exchanges (seq, shape hash, length, stop) of a gradient bucket. */
static int check(ty_coll *c, uint64_t seq, size_t n) {
  char desc[TY__COLL_DESC];
  uint64_t hash;
  ty__coll_bucket_for(c, seq, n, &hash, desc);
  return ty__coll_check(c, &c->world, seq, hash, n, desc);
}

int ty_coll_start_device(ty_coll *c, float *buf, size_t n, uint64_t seq, void *ready) {
  if (c->failed) return ty__coll_failed_before(c);
  if (n > (size_t)INT32_MAX)
    return ty__coll_set_err(c, TY_EINVAL, "bucket of %zu floats is too large", n);
#ifdef TY_HAVE_NCCL
  if (c->nccl) {
    char desc[TY__COLL_DESC];
    uint64_t hash;
    ty__coll_bucket_for(c, seq, n, &hash, desc);
    c->stats.ops++;
    c->stats.bytes += n * sizeof(float);
    return ty__nccl_start_device(c, buf, n, seq, hash, desc, ready);
  }
#endif
  (void)buf;
  (void)seq;
  (void)ready;
  return ty__coll_set_err(c, TY_EUNSUPPORTED, "device buckets need the NCCL backend");
}

int ty_coll_wait_device(ty_coll *c) {
  if (c->failed) return ty__coll_failed_before(c);
#ifdef TY_HAVE_NCCL
  if (c->nccl) return ty__nccl_wait_device(c);
#endif
  return ty__coll_set_err(c, TY_EUNSUPPORTED, "device buckets need the NCCL backend");
}

int ty_coll_start(ty_coll *c, float *buf, size_t n, uint64_t seq) {
  if (c->failed) return ty__coll_failed_before(c);
  if (c->o.world_size <= 1) return 0;
  if (c->count == TY__COLL_MAX_INFLIGHT)
    return ty__coll_set_err(c, TY_ESTATE, "more than %d all-reduces in flight",
                            TY__COLL_MAX_INFLIGHT);
  if (n > (size_t)INT32_MAX)
    return ty__coll_set_err(c, TY_EINVAL, "bucket of %zu floats is too large", n);
#ifdef TY_HAVE_NCCL
  /* NCCL ranks have no MPI world: the check runs on the communicator too. */
  if (c->nccl) {
    char desc[TY__COLL_DESC];
    uint64_t hash;
    ty__coll_bucket_for(c, seq, n, &hash, desc);
    c->stats.ops++;
    c->stats.bytes += n * sizeof(float);
    return ty__nccl_allreduce(c, buf, n, seq, hash, desc);
  }
#endif
  int rc = check(c, seq, n);
  if (rc != 0) return rc;
  c->stats.ops++;
  c->stats.bytes += n * sizeof(float);
  ty__inflight *f = &c->inflight[(c->head + c->count) % TY__COLL_MAX_INFLIGHT];
  f->seq = seq;
  f->n = n;
  f->t0_us = ty__coll_now_us();
  f->t1_us = 0;
  rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, c->world.comm, &f->req);
  if (rc != MPI_SUCCESS) return ty__coll_mpi_err(c, rc, "MPI_Iallreduce");
  c->count++;
  return 0;
}

int ty_coll_wait(ty_coll *c) {
  if (c->count == 0) return 0;
  ty__inflight *f = &c->inflight[c->head];
  int64_t t0 = ty__coll_now_us();
  int rc = ty__coll_wait_req(c, &f->req, "MPI_Iallreduce", f->seq);
  int64_t t1 = ty__coll_now_us();
  c->stats.wait_s += (double)(t1 - t0) / 1e6;
  c->stats.reduce_s += (double)((f->t1_us ? f->t1_us : t1) - f->t0_us) / 1e6;
  c->head = (c->head + 1) % TY__COLL_MAX_INFLIGHT;
  c->count--;
  return rc;
}

int ty_coll_progress(ty_coll *c) {
  for (size_t i = 0; i < c->count; i++) {
    ty__inflight *f = &c->inflight[(c->head + i) % TY__COLL_MAX_INFLIGHT];
    if (f->t1_us) continue;
    int done = 0, rc = MPI_Test(&f->req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return ty__coll_mpi_err(c, rc, "MPI_Test");
    if (done) f->t1_us = ty__coll_now_us();
  }
  return 0;
}

static int hook_result(ty_coll *c, int rc) {
  if (rc != 0) {
    fprintf(stderr, "collective: rank %u: %s\n", c->o.rank, c->err);
    fflush(stderr);
  }
  return rc;
}

int ty_coll_start_hook(float *buf, size_t n, uint64_t seq, void *user) {
  return hook_result(user, ty_coll_start(user, buf, n, seq));
}
int ty_coll_wait_hook(void *user) {
  return hook_result(user, ty_coll_wait(user));
}
int ty_coll_progress_hook(void *user) {
  return hook_result(user, ty_coll_progress(user));
}
int ty_coll_start_device_hook(float *buf, size_t n, uint64_t seq, void *ready, void *user) {
  return hook_result(user, ty_coll_start_device(user, buf, n, seq, ready));
}
int ty_coll_wait_device_hook(void *user) {
  return hook_result(user, ty_coll_wait_device(user));
}

int ty_coll_allreduce(float *buf, size_t n, uint64_t seq, void *user) {
  ty_coll *c = user;
  int rc = ty_coll_start(c, buf, n, seq);
  while (rc == 0 && c->count)
    rc = ty_coll_wait(c);
  if (rc != 0) {
    fprintf(stderr, "collective: rank %u: %s\n", c->o.rank, c->err);
    fflush(stderr);
  }
  return rc;
}

int ty_coll_raw_allreduce(ty_coll *c, float *buf, size_t n) {
  if (c->o.world_size <= 1) return 0;
  int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, c->world.comm);
  return rc == MPI_SUCCESS ? 0 : ty__coll_mpi_err(c, rc, "MPI_Allreduce");
}

const char *ty_coll_error(const ty_coll *c) {
  return c->err;
}
void ty_coll_get_stats(const ty_coll *c, ty_coll_stats *out) {
  *out = c->stats;
}
uint32_t ty_coll_world_size(const ty_coll *c) {
  return c->o.world_size;
}
