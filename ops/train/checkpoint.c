/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checkpoints: the ONNX model with trained initializers plus the sidecar
 * state file whose format train.h documents, one pair per step under the
 * names of lib/wire (ty_ckpt_step_path: "mlp.step-000120.onnx" and
 * ".onnx.state"). Each file is written to a temporary name, fsync'ed and
 * renamed, so a name holds a complete file or none; the CRC of the model
 * stored in the state pairs the two. The configured path and its .state
 * are then hard links to the newest pair (the trained model is always
 * there), and all but the newest keep_checkpoints pairs are removed.
 * Resuming takes the newest pair that is complete and intact, skipping one
 * a crash left half-written. The directory itself is ckpt_dir.c's.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"
#include "lib/wire/wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define STATE_MAGIC "TYTS"
#define STATE_VERSION 3u
#define STATE_HEADER 76    /* version 3's, and what a save writes */
#define STATE_HEADER_V2 68 /* version 2 had no model fingerprint nor shuffle */
#define STATE_HEADER_V1 60 /* version 1 had no sample count either */

/* Writes n bytes to fd: 0, or -errno. */
static int write_fd(int fd, const void *data, size_t n) {
  for (size_t off = 0; off < n;) {
    ssize_t w = write(fd, (const char *)data + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? -errno : -EIO;
    off += (size_t)w;
  }
  return 0;
}

/* What a file's bytes come from: fill writes them to fd (0, or -errno). */
typedef struct filler {
  int (*fill)(int fd, const void *user);
  const void *user;
} filler;

static int write_atomic_with(const char *path, filler f, char *err, size_t err_len) {
  size_t pl = strlen(path) + 32;
  char *tmp = malloc(pl), *dcopy = strdup(path);
  if (!tmp || !dcopy) {
    free(tmp);
    free(dcopy);
    return TY_ENOMEM;
  }
  snprintf(tmp, pl, "%s.tmp.%ld", path, (long)getpid());
  int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), wrc;
  if (fd < 0) rc = ty_errf(err, err_len, TY_EIO, "%s: cannot create (%s)", tmp, strerror(errno));
  if (rc == 0 && (wrc = f.fill(fd, f.user)) != 0)
    rc = ty_errf(err, err_len, TY_EIO, "%s: write failed (%s)", tmp, strerror(-wrc));
  if (rc == 0 && fsync(fd) != 0)
    rc = ty_errf(err, err_len, TY_EIO, "%s: fsync failed (%s)", tmp, strerror(errno));
  if (fd >= 0) close(fd);
  if (rc == 0 && rename(tmp, path) != 0)
    rc = ty_errf(err, err_len, TY_EIO, "%s: rename failed (%s)", path, strerror(errno));
  if (rc != 0) unlink(tmp);
  if (rc == 0) { /* make the rename itself durable */
    int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)fsync(dfd);
      close(dfd);
    }
  }
  free(tmp);
  free(dcopy);
  return rc;
}

static void put32(ty_buf *b, uint32_t v) {
  uint8_t p[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  ty_buf_append(b, p, 4);
}
static void put64(ty_buf *b, uint64_t v) {
  put32(b, (uint32_t)v);
  put32(b, (uint32_t)(v >> 32));
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) {
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* path + suffix, malloc'd; NULL when out of memory. */
static char *with_suffix(const char *path, const char *suffix) {
  size_t n = strlen(path) + strlen(suffix) + 1;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s%s", path, suffix);
  return s;
}

/* Copies the file at path user (a checkpoint just written) to fd: a
 * streamed save cannot make its bytes twice. */
static int fill_copy(int fd, const void *user) {
  int in = open(user, O_RDONLY | O_CLOEXEC), rc = in < 0 ? -errno : 0;
  char chunk[65536];
  for (ssize_t n; rc == 0 && (n = read(in, chunk, sizeof chunk)) != 0;)
    rc = n < 0 ? (errno == EINTR ? 0 : -errno) : write_fd(fd, chunk, (size_t)n);
  if (in >= 0) close(in);
  return rc;
}

/* Points `name` at target's file: a new hard link renamed over it, so
 * readers see the old or the new file, never none. Where the filesystem
 * has no hard links, `name` gets its own copy of the bytes instead. */
static int link_newest(const char *target, const char *name, char *err, size_t err_len) {
  char *tmp = with_suffix(name, ".link");
  if (!tmp) return TY_ENOMEM;
  unlink(tmp);
  int rc = link(target, tmp) == 0 && rename(tmp, name) == 0 ? 0 : -1;
  if (rc != 0) {
    unlink(tmp);
    rc = write_atomic_with(name, (filler){fill_copy, target}, err, err_len);
  }
  free(tmp);
  return rc;
}

static int desc(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* The steps of path's step checkpoints (their model files) in its
 * directory, newest first; *out is malloc'd (NULL when there are none). */
static int list_steps(const char *path, uint64_t **out, size_t *out_n) {
  *out = NULL, *out_n = 0;
  char *dcopy = strdup(path);
  if (!dcopy) return TY_ENOMEM;
  DIR *d = opendir(dirname(dcopy));
  free(dcopy);
  if (!d) return 0; /* nothing there yet */
  size_t cap = 0;
  int rc = 0;
  for (struct dirent *e; rc == 0 && (e = readdir(d));) {
    uint64_t step;
    if (!ty_ckpt_step_of(path, e->d_name, &step)) continue;
    if (*out_n == cap) {
      cap = cap ? cap * 2 : 16;
      uint64_t *grown = realloc(*out, cap * sizeof **out);
      if (!grown)
        rc = TY_ENOMEM;
      else
        *out = grown;
    }
    if (rc == 0) (*out)[(*out_n)++] = step;
  }
  closedir(d);
  if (rc == 0 && *out_n) qsort(*out, *out_n, sizeof **out, desc);
  if (rc != 0) free(*out), *out = NULL, *out_n = 0;
  return rc;
}

/* Removes all but the newest `keep` step checkpoints of path: the state
 * first, so a model without its state (incomplete) is what a crash here
 * can leave, never the other way round. */
static void prune(const char *path, uint32_t keep) {
  uint64_t *steps;
  size_t n;
  if (list_steps(path, &steps, &n) != 0) return;
  char model[4096], state[4200];
  for (size_t i = keep; i < n; i++) {
    if (ty_ckpt_step_path(path, steps[i], model, sizeof model) != 0) continue;
    snprintf(state, sizeof state, "%s.state", model);
    unlink(state);
    unlink(model);
  }
  free(steps);
}

/* The state file of a model whose bytes' CRC is onnx_crc: the header,
 * the optimizer's state and the CRC of both, written as they are made.
 * The optimizer's state (2x the parameters for Adam) goes from its
 * buffers to the file: rank 0 of a plan holds it once, beside the
 * gathered parameters. */
typedef struct state_out {
  const ty_train *t;
  uint32_t onnx_crc;
  int fd, rc; /* the file; the first write error (-errno) */
  uLong crc;  /* of every byte written so far */
} state_out;

static int state_emit(const void *data, size_t n, void *user) {
  state_out *s = user;
  s->crc = crc32_z(s->crc, data, n);
  return s->rc = write_fd(s->fd, data, n);
}

/* The state file's header, its optimizer state olen bytes long. */
static int state_header(state_out *s, uint64_t olen) {
  const ty_train *t = s->t;
  s->crc = crc32(0L, Z_NULL, 0);
  ty_buf h;
  ty_buf_init(&h);
  if (ty_buf_reserve(&h, STATE_HEADER) != 0) return -ENOMEM; /* the puts cannot fail now */
  ty_buf_append(&h, STATE_MAGIC, 4);
  put32(&h, STATE_VERSION);
  put64(&h, t->step);
  put64(&h, t->epoch);
  put64(&h, t->batch);
  put64(&h, t->cfg->seed);
  put32(&h, ty__train_data_world(t));
  put32(&h, t->cfg->batch_size);
  put32(&h, s->onnx_crc);
  put64(&h, olen);
  put64(&h, ty_dataset_count(t->train_ds));
  put32(&h, t->model_fp);
  put32(&h, t->cfg->shuffle ? 1u : 0u);
  int rc = state_emit(h.data, h.len, s);
  ty_buf_close(&h);
  return rc;
}

/* The CRC of every byte before it ends the state file. */
static int state_crc(const state_out *s) {
  uint8_t crc[4] = {(uint8_t)s->crc, (uint8_t)(s->crc >> 8), (uint8_t)(s->crc >> 16),
                    (uint8_t)(s->crc >> 24)};
  return write_fd(s->fd, crc, 4);
}

static int fill_state(int fd, const void *user) {
  state_out s = *(const state_out *)user;
  const ty_train *t = s.t;
  const ty_optim *o = t->optim;
  s.fd = fd;
  int rc = state_header(&s, ty_optim_state_size(o));
  if (rc == 0 && ty_optim_state_write(o, state_emit, &s) != 0) rc = s.rc ? s.rc : -ENOMEM;
  return rc ? rc : state_crc(&s);
}

/* Writes step's pair through mf (the model) and sf (its state), links
 * the configured path to it and prunes old pairs. A state that cannot be
 * written (a full disk) takes its model with it, and any state an earlier
 * save of this step left (the model it belonged to was just replaced):
 * no half pair stays to be listed as a step or to fill the disk. */
static int write_pair_with(ty_train *t, filler mf, filler sf, char *err, size_t err_len) {
  const char *path = t->cfg->checkpoint_path;
  char model[4096];
  if (ty_ckpt_step_path(path, t->step, model, sizeof model) != 0)
    return ty_errf(err, err_len, TY_EINVAL, "checkpoint_path: %s: too long", path);
  char *mstate = with_suffix(model, ".state"), *pstate = with_suffix(path, ".state");
  int rc = mstate && pstate ? 0 : TY_ENOMEM;
  if (rc == 0) rc = write_atomic_with(model, mf, err, err_len);
  if (rc == 0 && (rc = write_atomic_with(mstate, sf, err, err_len)) != 0) {
    unlink(mstate);
    unlink(model);
  }
  /* The state's link first: a path with no PATH.state beside it is no
   * checkpoint of this trainer's, and a run refuses to replace it
   * (ckpt_dir.c), so a crash between the links must not leave one. */
  if (rc == 0) rc = link_newest(mstate, pstate, err, err_len);
  if (rc == 0) rc = link_newest(model, path, err, err_len);
  if (rc == 0)
    prune(path, t->cfg->keep_checkpoints ? t->cfg->keep_checkpoints : TY_CKPT_KEEP_DEFAULT);
  free(mstate);
  free(pstate);
  return rc;
}

/* The ONNX file of a save as ty_graph_write_onnx emits it: its bytes
 * go to fd, their CRC (which the state file keeps) summed on the way. */
typedef struct onnx_sink {
  int fd;
  uLong crc;
  int write_rc;         /* the first write error (-errno) */
  char why[TY_ERR_LEN]; /* the export's own error (a fill's size, memory) */
} onnx_sink;

static int onnx_emit(const void *data, size_t n, void *user) {
  onnx_sink *o = user;
  o->crc = crc32_z(o->crc, data, n);
  return o->write_rc = write_fd(o->fd, data, n);
}

/* Writes t's model with overrides ov through o (fd set); fill supplies
 * those whose tensor is NULL. 0, or -errno (the words in o->why or the
 * fill's). */
static int write_onnx(const ty_train *t, const ty_init_override *ov, size_t nov, ty_onnx_fill fill,
                      void *fill_user, onnx_sink *o) {
  o->crc = crc32(0L, Z_NULL, 0);
  int rc =
      ty_graph_write_onnx(t->model, ov, nov, fill, fill_user, onnx_emit, o, o->why, sizeof o->why);
  return rc == 0 ? 0 : o->write_rc ? o->write_rc : -EIO;
}

/* ---- a whole save, streamed -------------------------------------------------------
 * Rank 0 of a run that holds the weights whole writes them from its own
 * tensors as the export reaches them: no encoding of the model is held. */
typedef struct whole {
  const ty_train *t;
  ty_init_override *ov; /* every save item with its tensor */
  size_t nov;
  onnx_sink out;
} whole;

static int fill_onnx_whole(int fd, const void *user) {
  whole *w = (whole *)user;
  w->out.fd = fd;
  return write_onnx(w->t, w->ov, w->nov, NULL, NULL, &w->out);
}

static int fill_state_whole(int fd, const void *user) {
  const whole *w = user;
  state_out so = {.t = w->t, .onnx_crc = (uint32_t)w->out.crc};
  return fill_state(fd, &so);
}

/* Rank 0: the checkpoint of the weights it holds whole. */
static int write_checkpoint(ty_train *t, char *err, size_t err_len) {
  whole w = {.t = t, .nov = t->np + 2 * t->n_bn};
  if (!(w.ov = calloc(w.nov + 1, sizeof *w.ov))) return TY_ENOMEM;
  for (size_t k = 0; k < w.nov; k++) {
    ty_tensor *x;
    w.ov[k] = (ty_init_override){ty_graph_value_at(t->g, ty__train_save_item(t, k, &x))->name, x};
  }
  int rc = write_pair_with(t, (filler){fill_onnx_whole, &w}, (filler){fill_state_whole, &w}, err,
                           err_len);
  if (rc != 0 && w.out.why[0]) ty_errf(err, err_len, rc, "checkpoint: %s", w.out.why);
  free(w.ov);
  return rc;
}

/* ---- a sharded save, streamed -----------------------------------------------------
 * The ranks of a plan or a pipeline (ty__train_sharded) first gather the
 * optimizer's heads (each parameter's steps and buffer count: rank 0 may
 * not train a pipeline stage's parameter), then one tensor at a time, and
 * rank 0 writes each as it arrives: the ONNX file in the model's
 * initializer order (ty_graph_write_onnx asks for each trained weight and
 * running statistic when it reaches it), then the state file a
 * parameter's buffer at a time. Rank 0 so holds one full tensor beyond its
 * shards (and, for a tensor not split by rows alone, the gather's scratch
 * of world x its slice). The gathers are collective: every rank makes
 * them all in the same order, rank 0 too when a file cannot be written
 * (it then writes nothing more and fails the save). The bytes are those
 * of the whole encoding (ty_graph_to_onnx, ty_optim_state_write). */
typedef struct stream {
  ty_train *t;
  ty_init_override *ov; /* item k's name; NULL tensors: filled */
  size_t nov;
  size_t *order; /* the items in the model's initializer order */
  size_t n_order, next;
  uint64_t *steps;   /* per parameter: its optimizer's steps (rank 0's: the file's) */
  uint32_t *nbuf;    /* ... the buffers the file keeps of it (rank 0's) */
  uint32_t *ngather; /* ... the buffers every rank gathers */
  int gather_rc;     /* a gather that failed: the collective is broken, stop */
  bool state_done;   /* every optimizer buffer was gathered */
  onnx_sink out;     /* the ONNX file (rank 0) */
} stream;

/* The next item, gathered; on rank 0 emitted and freed. */
static int gather_next(stream *s, ty_onnx_emit emit, void *emit_user) {
  float *full = NULL;
  int rc = ty__train_plan_gather_item(s->t, s->order[s->next++], &full);
  if (rc != 0) s->gather_rc = rc;
  if (rc == 0 && emit) {
    int v = ty__train_save_item(s->t, s->order[s->next - 1], NULL);
    rc = emit(full, ty__train_plan_full_numel(s->t, v) * sizeof *full, emit_user);
  }
  free(full);
  return rc;
}

static int fill_item(size_t k, ty_onnx_emit emit, void *emit_user, void *user) {
  stream *s = user;
  if (s->next >= s->n_order || s->order[s->next] != k) return TY_EINTERNAL;
  return gather_next(s, emit, emit_user);
}

static int fill_onnx_stream(int fd, const void *user) {
  stream *s = (stream *)user;
  s->out.fd = fd;
  return write_onnx(s->t, s->ov, s->nov, fill_item, s, &s->out);
}

/* Every parameter's optimizer buffers gathered in turn (every rank); with
 * w (rank 0 writing the state) each written as it arrives. */
static int state_items(stream *s, ty_optim_writer *w) {
  ty_train *t = s->t;
  int wrc = 0;
  for (size_t p = 0; s->gather_rc == 0 && p < t->np; p++) {
    size_t n = ty__train_plan_full_numel(t, t->param_ids[p]);
    uint32_t nbuf = s->nbuf[p], ng = s->ngather[p];
    if (w && wrc == 0) wrc = ty_optim_write_param(w, n, s->steps[p], nbuf);
    float *full = t->opts.rank == 0 && ng ? malloc(n * sizeof *full + 1) : NULL;
    if (t->opts.rank == 0 && ng && !full) s->gather_rc = TY_ENOMEM;
    for (uint32_t b = 0; s->gather_rc == 0 && b < ng; b++) {
      s->gather_rc = ty__train_plan_gather_buf(t, p, (int)b, full);
      if (s->gather_rc == 0 && w && wrc == 0 && b < nbuf) wrc = ty_optim_write_floats(w, full, n);
    }
    free(full);
  }
  if (w && wrc == 0 && s->gather_rc == 0) wrc = ty_optim_write_end(w);
  s->state_done = true;
  return s->gather_rc ? s->gather_rc : wrc;
}

static int fill_state_stream(int fd, const void *user) {
  stream *s = (stream *)user;
  ty_train *t = s->t;
  state_out so = {.t = t, .onnx_crc = (uint32_t)s->out.crc, .fd = fd};
  size_t olen = TY_OPTIM_STATE_FIXED;
  for (size_t p = 0; p < t->np; p++)
    olen += ty_optim_state_param_size(ty__train_plan_full_numel(t, t->param_ids[p]), s->nbuf[p]);
  ty_optim_writer w;
  int rc = state_header(&so, olen);
  if (rc == 0)
    rc = ty_optim_write_begin(&w, ty_optim_get_opts(t->optim)->kind, (uint32_t)t->np, state_emit,
                              &so);
  rc = state_items(s, rc == 0 ? &w : NULL) ? (so.rc ? so.rc : -EIO) : rc;
  return rc ? rc : state_crc(&so);
}

/* The save items named (NULL tensors) and their order in the model. */
static int stream_open(ty_train *t, stream *s) {
  const ty_graph *m = t->model;
  size_t ni = ty_graph_n_initializers(m);
  s->t = t;
  s->nov = t->np + 2 * t->n_bn;
  s->ov = calloc(s->nov + 1, sizeof *s->ov);
  s->order = calloc(ni + 1, sizeof *s->order);
  s->steps = calloc(t->np + 1, sizeof *s->steps);
  s->nbuf = calloc(t->np + 1, sizeof *s->nbuf);
  s->ngather = calloc(t->np + 1, sizeof *s->ngather);
  if (!s->ov || !s->order || !s->steps || !s->nbuf || !s->ngather) return TY_ENOMEM;
  for (size_t k = 0; k < s->nov; k++)
    s->ov[k].name = ty_graph_value_at(t->g, ty__train_save_item(t, k, NULL))->name;
  for (size_t i = 0; i < ni; i++) {
    const char *name = ty_graph_value_at(m, ty_graph_initializer(m, i))->name;
    for (size_t k = 0; k < s->nov; k++)
      if (strcmp(s->ov[k].name, name) == 0) {
        s->order[s->n_order++] = k;
        break;
      }
  }
  return s->n_order == s->nov ? 0 : TY_EINTERNAL;
}

static void stream_close(stream *s) {
  free(s->ov);
  free(s->order);
  free(s->steps);
  free(s->nbuf);
  free(s->ngather);
}

int ty__train_save_streamed(ty_train *t, char *err, size_t err_len) {
  stream s = {0};
  int rc = stream_open(t, &s);
  if (rc != 0) { /* the model's names are the same on every rank: none gathers */
    rc = rc == TY_ENOMEM
             ? ty_errf(err, err_len, rc, "checkpoint: out of memory")
             : ty_errf(err, err_len, rc,
                       "checkpoint: %zu of the %zu trained tensors are not initializers of the "
                       "model",
                       s.nov - s.n_order, s.nov);
    stream_close(&s);
    return rc;
  }
  s.gather_rc = ty__train_plan_save_heads(t, s.steps, s.nbuf, s.ngather);
  if (s.gather_rc == 0 && t->opts.rank == 0)
    rc = write_pair_with(t, (filler){fill_onnx_stream, &s}, (filler){fill_state_stream, &s}, err,
                         err_len);
  if (rc != 0 && s.out.why[0]) ty_errf(err, err_len, rc, "checkpoint: %s", s.out.why);
  /* What a failed write left (or, on the other ranks, all of it). */
  while (s.gather_rc == 0 && s.next < s.n_order)
    gather_next(&s, NULL, NULL);
  if (s.gather_rc == 0 && !s.state_done) state_items(&s, NULL);
  if (s.gather_rc != 0)
    rc = ty_errf(err, err_len, s.gather_rc,
                 "checkpoint: gathering the full tensors on rank 0 failed: %s",
                 ty_strerror(s.gather_rc));
  stream_close(&s);
  return rc;
}

int ty__train_save(ty_train *t, char *err, size_t err_len) {
  const char *path = t->cfg->checkpoint_path;
  if (!path) return ty_errf(err, err_len, TY_ESTATE, "checkpoint: no checkpoint path configured");
  int sync_rc = ty__train_gpu_sync(t, err, err_len); /* weights on the device come home first */
  if (sync_rc != 0) return sync_rc;
  /* Data-parallel ranks hold identical weights: rank 0 alone writes the
   * shared checkpoint (every rank still reads it on resume). The ranks of
   * a plan or a pipeline gather each full tensor on rank 0, which writes
   * and frees it: a rank holds its shard and one full tensor at most, the
   * memory its plan was made for (docs/planner.md). */
  if (ty__train_sharded(t)) return ty__train_save_streamed(t, err, err_len);
  return t->opts.rank == 0 ? write_checkpoint(t, err, err_len) : 0;
}

/* A field the resumed run must share with the checkpoint's (`name`, the
 * config field that sets it): the refusal says how to resume, or how to
 * start afresh instead. */
static int check_field(uint64_t got, uint64_t want, const char *spath, const char *field,
                       const char *name, char *err, size_t err_len) {
  if (got == want) return 0;
  return ty_errf(err, err_len, TY_EINVAL,
                 "%s: checkpoint has %s %llu, this run %llu (the data order would differ): to "
                 "resume, set config.%s back to %llu; to train afresh, choose another "
                 "checkpoint_path",
                 spath, field, (unsigned long long)got, (unsigned long long)want, name,
                 (unsigned long long)got);
}

/* The training set's sample count against a version 2 state's: another
 * count means another epoch order and length, so the position saved would
 * point into data the run never trained on. */
static int check_samples(uint64_t got, uint64_t want, const char *spath, char *err,
                         size_t err_len) {
  if (got == want) return 0;
  return ty_errf(err, err_len, TY_EINVAL,
                 "%s: checkpoint was trained on %llu training samples, this run's data holds "
                 "%llu (the data order would differ): to resume, give it the data it trained "
                 "on; to train afresh on this data, choose another checkpoint_path",
                 spath, (unsigned long long)got, (unsigned long long)want);
}

/* config.dataset.shuffle against a version 3 state's: the other setting
 * is another data order from the saved position on. */
static int check_shuffle(uint32_t got, bool want, const char *spath, char *err, size_t err_len) {
  if ((got != 0) == want) return 0;
  const char *was = got ? "TOGGLE_ON" : "TOGGLE_OFF";
  return ty_errf(err, err_len, TY_EINVAL,
                 "%s: checkpoint has shuffle %s, this run %s (the data order would differ): to "
                 "resume, set config.dataset.shuffle back to %s; to train afresh, choose another "
                 "checkpoint_path",
                 spath, got ? "ON" : "OFF", want ? "ON" : "OFF", was);
}

/* The fingerprint of the model a version 3 state's run started from
 * (fingerprint.c) against this run's: the graph and the initializers a
 * checkpoint does not hold come from this run's model, so another one
 * would be mixed with the checkpoint's weights. */
static int check_model(uint32_t got, uint32_t want, const char *spath, char *err, size_t err_len) {
  if (got == want) return 0;
  return ty_errf(err, err_len, TY_EINVAL,
                 "%s: checkpoint was trained from another model (graph, frozen initializers, "
                 "or config.frozen / trainable differ): resume with the model and config it was "
                 "trained from, or choose another checkpoint_path",
                 spath);
}

/* A state of version 1 or 2 kept neither the model's fingerprint nor
 * config.dataset.shuffle: it resumes unchecked, and rank 0 says so. */
static void say_unchecked(const ty_train *t, uint32_t version, const char *spath) {
  if (t->opts.rank != 0) return;
  fprintf(ty__train_log(t),
          "%s: written by an older trainrun (state version %u), which kept neither the model's "
          "fingerprint nor config.dataset.shuffle: resuming without checking that this run's "
          "model and shuffle are the checkpoint's\n",
          spath, version);
}

static int parse_state(ty_train *t, const ty__mapped *st, const ty__mapped *onnx, const char *model,
                       const char *spath, char *err, size_t err_len) {
  const uint8_t *p = st->data;
  if (st->len < STATE_HEADER_V1 + 4 || memcmp(p, STATE_MAGIC, 4) != 0)
    return ty_errf(err, err_len, TY_EPROTO, "%s: not a trainyard state file", spath);
  if (get32(p + st->len - 4) != (uint32_t)crc32_z(0L, p, st->len - 4))
    return ty_errf(err, err_len, TY_EPROTO, "%s: CRC mismatch (corrupt)", spath);
  uint32_t version = get32(p + 4);
  if (version < 1 || version > STATE_VERSION)
    return ty_errf(err, err_len, TY_EVERSION, "%s: unknown version %u", spath, version);
  size_t head = version == 1 ? STATE_HEADER_V1 : version == 2 ? STATE_HEADER_V2 : STATE_HEADER;
  uint64_t olen = get64(p + 52);
  if (st->len < head + 4 || olen != st->len - head - 4)
    return ty_errf(err, err_len, TY_EPROTO, "%s: truncated", spath);
  if (get32(p + 48) != (uint32_t)crc32_z(0L, onnx->data, onnx->len))
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: the model file differs from the one its state recorded (changed or "
                   "damaged after the save)",
                   model);
  /* The data-parallel world size is not checked: rank r of R reads
   * positions r, r + R, ... of the epoch's order in batches of B / R, so
   * global batch b is positions [b B, (b + 1) B) of that order for every R
   * (and for a plan's ranks, which read it whole), and an epoch has
   * ceil(n / B) of them (floor with config.drop_last ON; the order wraps
   * to its start past n): the same steps on any rank count. */
  int rc = check_field(get64(p + 32), t->cfg->seed, spath, "seed", "seed", err, err_len);
  t->resumed_world = get32(p + 40);
  if (rc == 0)
    rc = check_field(get32(p + 44), t->cfg->batch_size, spath, "batch size", "batch_size", err,
                     err_len);
  if (rc == 0 && version >= 2)
    rc = check_samples(get64(p + 60), ty_dataset_count(t->train_ds), spath, err, err_len);
  if (rc == 0 && version >= 3)
    rc = check_shuffle(get32(p + 72), t->cfg->shuffle, spath, err, err_len);
  /* A sharded rank slices each buffer out of the mapped file. */
  if (rc == 0 && (rc = ty__train_sharded(t)
                           ? ty__train_resume_optim(t, p + head, olen, err, err_len)
                           : ty_optim_state_load(t->optim, p + head, olen, err, err_len)) != 0) {
    char why[256];
    snprintf(why, sizeof why, "%s", err);
    ty_errf(err, err_len, rc,
            "%s: %s; this run cannot resume from it (a new checkpoint_path starts afresh)", spath,
            why);
  }
  /* After the optimizer's state, whose refusal of another parameter set
   * is the more precise. */
  if (rc == 0 && version >= 3) rc = check_model(get32(p + 68), t->model_fp, spath, err, err_len);
  if (rc != 0) return rc;
  if (version < 3) say_unchecked(t, version, spath);
  t->step = get64(p + 8);
  t->epoch = get64(p + 16);
  t->batch = get64(p + 24);
  /* A checkpoint of a run that padded its epochs (config.drop_last OFF)
   * may be at that run's padded last batch, which a run with drop_last ON
   * does not have: for this run that epoch is over. */
  if (t->batch >= t->bpe) t->epoch++, t->batch = 0;
  return 0;
}

/* ty__train_map for one file of a pair. A file that cannot be opened or
 * mapped for a reason that passes (permission, memory, descriptors, an
 * I/O error) is not damaged: the run fails with it, the pair left in
 * place. */
static int map_file(const char *path, ty__mapped *m, char *err, size_t err_len) {
  int rc = ty__train_map(path, m, err, err_len);
  if (rc == TY_EPERM || rc == TY_ENOMEM || rc == TY_EIO) {
    char why[TY_ERR_LEN];
    snprintf(why, sizeof why, "%s", err);
    ty_errf(err, err_len, rc, "%s (the checkpoint is left where it is: resume once it can be read)",
            why);
  }
  return rc;
}

/* Resumes from the pair at model (and model.state): 0, TY_ENOTFOUND when
 * the state is missing, or why it cannot. */
static int load_pair(ty_train *t, const char *model, char *err, size_t err_len) {
  char *spath = with_suffix(model, ".state");
  if (!spath) return TY_ENOMEM;
  /* Mapped, not read, and the model not imported: each tensor (a plan's
   * rank: its slice) is copied out of the page cache (resume.c). */
  ty__mapped st = {NULL, 0}, onnx = {NULL, 0};
  int rc = 0;
  if (access(spath, F_OK) != 0)
    rc = ty_errf(err, err_len, TY_ENOTFOUND, "%s: missing (nothing to resume)", spath);
  if (rc == 0 && (rc = map_file(spath, &st, err, err_len)) == 0 &&
      (rc = map_file(model, &onnx, err, err_len)) == 0 &&
      (rc = parse_state(t, &st, &onnx, model, spath, err, err_len)) == 0)
    rc = ty__train_resume_weights(t, &onnx, model, err, err_len);
  ty__train_unmap(&st);
  ty__train_unmap(&onnx);
  free(spath);
  return rc;
}

/* A pair a crash left half-written or damaged (a file missing, truncated,
 * failing its CRC or differing from what its state recorded): the next
 * older one serves. A file that cannot be opened or mapped (map_file) is
 * not damaged, nor is a pair another config refuses. */
static bool incomplete(int rc) {
  return rc == TY_ENOTFOUND || rc == TY_EPROTO;
}

/* Renames `from` to `from` + suffix when it exists: 0, or errno. */
static int rename_aside(const char *from, const char *suffix) {
  char *to = with_suffix(from, suffix);
  int rc = !to ? ENOMEM : rename(from, to) == 0 || errno == ENOENT ? 0 : errno;
  free(to);
  return rc;
}

/* Logs why the pair at model was skipped and (rank 0, which holds the
 * checkpoint's lock) moves it aside, model and state each renamed to
 * NAME.corrupt-TIME: no step name any more (ty_ckpt_step_of), so no run
 * resumes it and keep_checkpoints does not count it (prune would keep it
 * and remove a good older pair instead). Kept for a look; never removed. */
static bool skip_pair(ty_train *t, const char *model, const char *why) {
  FILE *log = ty__train_log(t);
  fprintf(log, "checkpoint %s skipped: %s", model, why);
  char suffix[48], *state = with_suffix(model, ".state");
  snprintf(suffix, sizeof suffix, ".corrupt-%lld", (long long)time(NULL));
  int rc = t->opts.rank != 0 ? 0 : !state ? ENOMEM : rename_aside(state, suffix);
  if (t->opts.rank == 0 && rc == 0) rc = rename_aside(model, suffix);
  if (t->opts.rank != 0)
    fprintf(log, "\n");
  else if (rc == 0)
    fprintf(log, "; moved aside as %s%s (and its .state), which no run resumes or counts\n", model,
            suffix);
  else
    fprintf(log, "; cannot move it aside (%s): it still counts toward keep_checkpoints\n",
            strerror(rc));
  free(state);
  return t->opts.rank == 0 && rc == 0;
}

/* Rank 0, once pairs newer than model were moved aside: path and
 * path.state, which linked the newest of them, link model's pair (the
 * newest that loads), as a save would have left them; a run that trains
 * nothing saves nothing, so they would go on naming the damaged pair.
 * A failure is logged: the resume goes on. */
static void relink_newest(ty_train *t, const char *path, const char *model) {
  char err[TY_ERR_LEN] = "";
  char *mstate = with_suffix(model, ".state"), *pstate = with_suffix(path, ".state");
  int rc = !mstate || !pstate ? TY_ENOMEM : link_newest(mstate, pstate, err, sizeof err);
  if (rc == 0) rc = link_newest(model, path, err, sizeof err);
  if (rc != 0)
    fprintf(ty__train_log(t), "checkpoint: %s still links the pair moved aside: %s\n", path,
            err[0] ? err : ty_strerror(rc));
  free(mstate);
  free(pstate);
}

/* The newest step checkpoint that loads (incomplete ones skipped and
 * moved aside, with a line on the log, counted in t->ckpt_skipped): 0
 * with t->resumed_from set, TY_ENOTFOUND when none does, or the error of
 * one that cannot serve. */
static int load_newest_step(ty_train *t, const char *path, char *err, size_t err_len) {
  uint64_t *steps;
  size_t n;
  int rc = list_steps(path, &steps, &n);
  char model[4096];
  bool moved = false;
  for (size_t i = 0; rc == 0 && i < n && !t->resumed_from[0]; i++) {
    if (ty_ckpt_step_path(path, steps[i], model, sizeof model) != 0) continue;
    rc = load_pair(t, model, err, err_len);
    if (rc == 0)
      snprintf(t->resumed_from, sizeof t->resumed_from, "%s", model);
    else if (incomplete(rc)) /* the next older serves; one that cannot serve says why */
      moved = skip_pair(t, model, err) || moved, t->ckpt_skipped++, rc = 0;
  }
  if (rc == 0 && moved && t->resumed_from[0]) relink_newest(t, path, t->resumed_from);
  free(steps);
  return rc == 0 && !t->resumed_from[0] ? TY_ENOTFOUND : rc;
}

/* Removes path and path.state where each is a hard link (more than one
 * name: the newest step pair's, moved aside as damaged); a lone file, an
 * old-layout checkpoint, stays. */
static void unlink_damaged_links(const char *path) {
  char *state = with_suffix(path, ".state");
  const char *names[] = {path, state};
  for (size_t i = 0; i < 2 && names[i]; i++) {
    struct stat st;
    if (lstat(names[i], &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink > 1) (void)unlink(names[i]);
  }
  free(state);
}

int ty__train_load(ty_train *t, char *err, size_t err_len) {
  const char *path = t->cfg->checkpoint_path;
  if (!path) {
    if (t->opts.resume)
      return ty_errf(err, err_len, TY_EINVAL, "--resume: no checkpoint path configured");
    return 0;
  }
  int rc = load_newest_step(t, path, err, err_len);
  /* From before checkpoints were named by step. When step pairs were
   * there and every one was skipped, path is a link to the newest of
   * them, as damaged: none is left to resume, and rank 0 removes the
   * links (the pair's data stays in its .corrupt files), so that a later
   * run does not take them for an old-layout checkpoint. */
  if (rc == TY_ENOTFOUND && t->ckpt_skipped > 0) {
    if (t->opts.rank == 0) unlink_damaged_links(path);
    if (t->opts.resume)
      return ty_errf(err, err_len, TY_ENOTFOUND,
                     "--resume: no usable checkpoint at %s: all %zu were damaged (moved aside)",
                     path, t->ckpt_skipped);
    return 0;
  }
  if (rc == TY_ENOTFOUND) {
    rc = load_pair(t, path, err, err_len);
    if (rc == 0) snprintf(t->resumed_from, sizeof t->resumed_from, "%s", path);
  }
  t->resume_full_bytes = ty_train_full_bytes(t); /* 0: sharded ranks slice the mapped files */
  if (rc == TY_ENOTFOUND && !t->opts.resume) return 0;
  return rc == 0 ? 1 : rc;
}
