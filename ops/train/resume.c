/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Resuming from a checkpoint without importing it. A sharded rank (a
 * tensor-parallel plan's, a pipeline stage's: train_internal.h,
 * ty__train_sharded) resumes within the memory of its shards, and a rank
 * holding the weights whole copies each tensor the same way, without an
 * imported copy of the model beside its own. Both files of a checkpoint
 * are mapped read-only, never read into the heap: mapped file pages are
 * page cache, which the kernel (and a memory cgroup under --mem) reclaims,
 * not anonymous memory. The ONNX model is not imported either, since
 * protobuf-c would copy every initializer: its wire format is walked here
 * (ModelProto field 7, the graph; its field 5, the initializers; each
 * TensorProto's name 8, dims 1, data_type 2 and raw_data 9 or packed
 * float_data 4), and each trained tensor's slice is copied straight out of
 * the mapping into the rank's parameter. The optimizer state is sliced per
 * parameter the same way (ty_optim_state_load_sliced; a whole rank's with
 * ty_optim_state_load, which copies out of the mapping too). So nothing
 * whole is allocated on a sharded rank: ty_train_resume_full_bytes says
 * so, and the tests hold it to 0.
 *
 * The model's bytes were checked against the CRC the state file keeps
 * before they are walked, so a malformed encoding here is one the writer
 * made; it is still refused, never read past. Checkpoint files are written
 * under a temporary name and renamed, so a mapped file is never truncated
 * under the reader.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"
#include "ops/shard/shard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The code of an open() or mmap() failure: the file missing, or a
 * passing reason (permission, memory, descriptors: the file may be
 * whole), or TY_EIO. None of them says the file is damaged. */
static int map_code(int e) {
  if (e == ENOENT) return TY_ENOTFOUND;
  if (e == EACCES || e == EPERM) return TY_EPERM;
  if (e == ENOMEM || e == EMFILE || e == ENFILE || e == EAGAIN) return TY_ENOMEM;
  return TY_EIO;
}

int ty__train_map(const char *path, ty__mapped *out, char *err, size_t err_len) {
  *out = (ty__mapped){NULL, 0};
  struct stat st;
  const char *why;
  int fd = ty_open_regular(path, &st, &why), rc = 0; /* a FIFO refused, not waited on */
  if (fd < 0 && why)
    rc = ty_errf(err, err_len, TY_EINVAL, "%s: %s", path, why);
  else if (fd < 0)
    rc = ty_errf(err, err_len, map_code(errno), "%s: cannot be opened: %s", path, strerror(errno));
  else if (st.st_size > 0) {
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
      rc =
          ty_errf(err, err_len, map_code(errno), "%s: cannot be mapped: %s", path, strerror(errno));
    else
      *out = (ty__mapped){p, (size_t)st.st_size};
  }
  if (fd >= 0) close(fd);
  return rc;
}

void ty__train_unmap(ty__mapped *m) {
  if (m->data) munmap((void *)m->data, m->len);
  *m = (ty__mapped){NULL, 0};
}

/* ---- the protobuf wire format, as far as the initializers ------------------ */
typedef struct wire {
  const uint8_t *p, *end;
} wire;

static bool varint(wire *w, uint64_t *out) {
  uint64_t v = 0;
  for (int s = 0; s < 64 && w->p < w->end; s += 7) {
    uint8_t b = *w->p++;
    v |= (uint64_t)(b & 0x7f) << s;
    if (!(b & 0x80)) return *out = v, true;
  }
  return false;
}

/* The next field of w: its number and wire type, and for a length-
 * delimited one its bytes in out_sub (a varint's value in out_v). Other
 * wire types are skipped. false when w is malformed. */
static bool next_field(wire *w, uint32_t *out_field, uint32_t *out_type, wire *out_sub,
                       uint64_t *out_v) {
  uint64_t key;
  if (!varint(w, &key)) return false;
  *out_field = (uint32_t)(key >> 3);
  *out_type = (uint32_t)(key & 7);
  uint64_t n = 0;
  switch (*out_type) {
  case 0:
    return varint(w, out_v);
  case 1:
  case 5:
    n = *out_type == 1 ? 8 : 4;
    break;
  case 2:
    if (!varint(w, &n)) return false;
    break;
  default: /* groups: no ONNX field is one */
    return false;
  }
  if (n > (uint64_t)(w->end - w->p)) return false;
  *out_sub = (wire){w->p, w->p + n};
  w->p += n;
  return true;
}

/* One TensorProto's fields this reader needs; data NULL when it has
 * neither raw_data nor packed float_data. */
typedef struct tensor_ref {
  wire name;
  int64_t dims[TY_MAX_RANK];
  int rank;
  uint64_t dtype;
  wire data;
} tensor_ref;

static bool parse_tensor(wire w, tensor_ref *t) {
  *t = (tensor_ref){0};
  uint32_t f, type;
  wire sub;
  uint64_t v;
  while (w.p < w.end) {
    if (!next_field(&w, &f, &type, &sub, &v)) return false;
    if (f == 1 && type == 0) { /* a dim, unpacked */
      if (t->rank == TY_MAX_RANK) return false;
      t->dims[t->rank++] = (int64_t)v;
    }
    while (f == 1 && type == 2 && sub.p < sub.end) { /* dims, packed */
      if (t->rank == TY_MAX_RANK || !varint(&sub, &v)) return false;
      t->dims[t->rank++] = (int64_t)v;
    }
    if (f == 2 && type == 0) t->dtype = v;
    if (f == 8 && type == 2) t->name = sub;
    if ((f == 9 || f == 4) && type == 2) t->data = sub;
  }
  return true;
}

/* ---- slicing --------------------------------------------------------------- */

/* Initializer r of the checkpoint, if the rank trains it: its slice into
 * the rank's tensor, seen[k] set. */
static int take(ty_train *t, const tensor_ref *r, bool *seen, const char *path, char *err,
                size_t err_len) {
  size_t nitems = t->np + 2 * t->n_bn;
  for (size_t k = 0; k < nitems; k++) {
    ty_tensor *local;
    int v = ty__train_save_item(t, k, &local);
    const char *name = ty_graph_value_at(t->g, v)->name;
    size_t nl = strlen(name);
    if (nl != (size_t)(r->name.end - r->name.p) || (nl && memcmp(name, r->name.p, nl) != 0))
      continue;
    ty_shape fs;
    int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
    bool held;
    int rc = ty__train_plan_block(t, v, local, &fs, start, len, &held);
    bool fits = rc == 0 && r->dtype == 1 /* FLOAT */ && r->rank == fs.rank && r->data.p &&
                (uint64_t)(r->data.end - r->data.p) == (uint64_t)ty_shape_numel(&fs) * 4;
    for (int d = 0; fits && d < fs.rank; d++)
      fits = r->dims[d] == fs.dims[d];
    if (!fits)
      return ty_errf(err, err_len, TY_EINVAL,
                     "%s: initializer \"%s\" is missing or has another shape", path, name);
    if (held)
      ty_shard_copy_block((void *)r->data.p, &fs, local->data, start, len, sizeof(float), true);
    seen[k] = true;
  }
  return 0;
}

/* Every initializer in graph g that the rank trains; *bad set when g is
 * malformed. */
static int walk_graph(ty_train *t, wire g, bool *seen, bool *bad, const char *path, char *err,
                      size_t err_len) {
  uint32_t f, type;
  wire init;
  uint64_t v;
  tensor_ref r;
  int rc = 0;
  while (rc == 0 && !*bad && g.p < g.end) {
    *bad =
        !next_field(&g, &f, &type, &init, &v) || (f == 5 && type == 2 && !parse_tensor(init, &r));
    if (!*bad && f == 5 && type == 2) rc = take(t, &r, seen, path, err, err_len);
  }
  return rc;
}

/* Every initializer of the graph fields of model m that the rank trains. */
static int walk_model(ty_train *t, wire m, bool *seen, const char *path, char *err,
                      size_t err_len) {
  uint32_t f, type;
  wire graph;
  uint64_t v;
  bool bad = false;
  int rc = 0;
  while (rc == 0 && !bad && m.p < m.end) {
    bad = !next_field(&m, &f, &type, &graph, &v);
    if (!bad && f == 7 && type == 2) rc = walk_graph(t, graph, seen, &bad, path, err, err_len);
  }
  if (rc == 0 && bad)
    rc =
        ty_errf(err, err_len, TY_EPROTO, "%s: not an ONNX model (its encoding is malformed)", path);
  return rc;
}

int ty__train_resume_weights(ty_train *t, const ty__mapped *onnx, const char *path, char *err,
                             size_t err_len) {
  size_t nitems = t->np + 2 * t->n_bn;
  bool *seen = calloc(nitems + 1, sizeof *seen);
  if (!seen) return TY_ENOMEM;
  int rc = walk_model(t, (wire){onnx->data, onnx->data + onnx->len}, seen, path, err, err_len);
  for (size_t k = 0; rc == 0 && k < nitems; k++)
    if (!seen[k])
      rc =
          ty_errf(err, err_len, TY_EINVAL, "%s: initializer \"%s\" is missing or has another shape",
                  path, ty_graph_value_at(t->g, ty__train_save_item(t, k, NULL))->name);
  free(seen);
  return rc;
}

/* ty_optim_slice for the rank's parameter i. */
static int slice_buf(size_t i, const void *full, float *local, void *user) {
  const ty_train *t = user;
  ty_shape fs;
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  bool held;
  int rc = ty__train_plan_block(t, t->param_ids[i], t->params[i], &fs, start, len, &held);
  if (rc == 0 && held)
    ty_shard_copy_block((void *)full, &fs, local, start, len, sizeof(float), true);
  return rc;
}

int ty__train_resume_optim(ty_train *t, const uint8_t *data, size_t len, char *err,
                           size_t err_len) {
  uint64_t *full = calloc(t->np + 1, sizeof *full);
  if (!full) return TY_ENOMEM;
  for (size_t i = 0; i < t->np; i++)
    full[i] = ty__train_plan_full_numel(t, t->param_ids[i]);
  int rc = ty_optim_state_load_sliced(t->optim, data, len, full, slice_buf, t, err, err_len);
  free(full);
  return rc;
}
