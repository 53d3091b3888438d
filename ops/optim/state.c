/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The optimizer-state codec (format in optim.h). Pure bytes in, state out:
 * loading parses everything into fresh buffers first and swaps them in only
 * when the whole blob — CRC included — checked out, so a corrupt checkpoint
 * never leaves a half-restored optimizer behind.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ops/optim/optim.h"
#include "ops/optim/optim_internal.h"

#define STATE_MAGIC "TYOS"
#define STATE_VERSION 1u

static bool little_endian(void) {
  const uint16_t probe = 1;
  return *(const uint8_t *)&probe == 1;
}

/* The writer: every byte goes to emit and into the running CRC. */
typedef ty_optim_writer writer;

static int out_bytes(writer *w, const void *data, size_t n) {
  w->crc = crc32_z(w->crc, data, n);
  return n ? w->emit(data, n, w->user) : 0;
}

static int out_u32(writer *w, uint32_t v) {
  uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  return out_bytes(w, le, 4);
}

static int out_u64(writer *w, uint64_t v) {
  int rc = out_u32(w, (uint32_t)v);
  return rc ? rc : out_u32(w, (uint32_t)(v >> 32));
}

int ty_optim_write_floats(writer *w, const float *f, size_t n) {
  if (little_endian()) return out_bytes(w, f, n * 4); /* the bit patterns, already LE */
  uint8_t chunk[4096];
  int rc = 0;
  for (size_t k = 0; rc == 0 && k < n;) {
    size_t m = 0;
    for (; k < n && m < sizeof chunk; k++, m += 4) {
      uint32_t bits;
      memcpy(&bits, &f[k], 4);
      for (int b = 0; b < 4; b++)
        chunk[m + (size_t)b] = (uint8_t)(bits >> (8 * b));
    }
    rc = out_bytes(w, chunk, m);
  }
  return rc;
}

size_t ty_optim_state_param_size(uint64_t numel, uint32_t nbuf) {
  return 20 + (size_t)nbuf * 4 * (size_t)numel;
}

size_t ty_optim_state_size(const ty_optim *o) {
  size_t n = TY_OPTIM_STATE_FIXED; /* magic, version, kind, n_params; the trailing CRC */
  for (size_t i = 0; o && i < o->n; i++)
    n += ty_optim_state_param_size(o->params[i].numel, o->params[i].nbuf);
  return n;
}

int ty_optim_write_begin(writer *w, ty_optim_kind kind, uint32_t n_params, ty_optim_emit emit,
                         void *user) {
  if (emit == NULL) return TY_EINVAL;
  *w = (writer){emit, user, crc32(0L, Z_NULL, 0)};
  int rc = out_bytes(w, STATE_MAGIC, 4);
  rc = rc ? rc : out_u32(w, STATE_VERSION);
  rc = rc ? rc : out_u32(w, (uint32_t)kind);
  return rc ? rc : out_u32(w, n_params);
}

int ty_optim_write_param(writer *w, uint64_t numel, uint64_t steps, uint32_t nbuf) {
  int rc = out_u64(w, numel);
  rc = rc ? rc : out_u64(w, steps);
  return rc ? rc : out_u32(w, nbuf);
}

int ty_optim_write_end(writer *w) {
  return out_u32(w, (uint32_t)w->crc);
}

int ty_optim_state_write(const ty_optim *o, ty_optim_emit emit, void *user) {
  if (o == NULL || emit == NULL) return TY_EINVAL;
  writer w;
  int rc = ty_optim_write_begin(&w, o->opts.kind, (uint32_t)o->n, emit, user);
  for (size_t i = 0; rc == 0 && i < o->n; i++) {
    const ty__optim_param *p = &o->params[i];
    rc = ty_optim_write_param(&w, p->numel, p->steps, p->nbuf);
    for (uint32_t b = 0; rc == 0 && b < p->nbuf; b++)
      rc = ty_optim_write_floats(&w, p->buf[b], p->numel);
  }
  return rc ? rc : ty_optim_write_end(&w);
}

static int to_buf(const void *data, size_t n, void *user) {
  return ty_buf_append(user, data, n);
}

int ty_optim_state_save(const ty_optim *o, ty_buf *out) {
  if (o == NULL || out == NULL) return TY_EINVAL;
  size_t start = out->len;
  int rc = ty_buf_reserve(out, ty_optim_state_size(o));
  if (rc == 0) rc = ty_optim_state_write(o, to_buf, out);
  if (rc != 0) out->len = start;
  return rc;
}

/* ---- load ------------------------------------------------------------------ */
typedef struct reader {
  const uint8_t *p;
  size_t left;
} reader;

static bool get_u32(reader *r, uint32_t *v) {
  if (r->left < 4) return false;
  *v = (uint32_t)r->p[0] | ((uint32_t)r->p[1] << 8) | ((uint32_t)r->p[2] << 16) |
       ((uint32_t)r->p[3] << 24);
  r->p += 4;
  r->left -= 4;
  return true;
}

static bool get_u64(reader *r, uint64_t *v) {
  uint32_t lo, hi;
  if (!get_u32(r, &lo) || !get_u32(r, &hi)) return false;
  *v = (uint64_t)lo | ((uint64_t)hi << 32);
  return true;
}

static const char *kind_name(uint32_t kind) {
  switch (kind) {
  case TY_OPTIM_SGD:
    return "SGD";
  case TY_OPTIM_ADAM:
    return "Adam";
  case TY_OPTIM_ADAMW:
    return "AdamW";
  default:
    return "an unknown optimizer";
  }
}

static int check_header(const ty_optim *o, reader *r, char *err, size_t err_len) {
  uint32_t version, kind, n;
  if (r->left < 4 || memcmp(r->p, STATE_MAGIC, 4) != 0)
    return ty_errf(err, err_len, TY_EPROTO,
                   "optimizer state: bad magic (not a Trainyard optimizer state)");
  r->p += 4;
  r->left -= 4;
  if (!get_u32(r, &version) || !get_u32(r, &kind) || !get_u32(r, &n))
    return ty_errf(err, err_len, TY_EPROTO, "optimizer state: truncated header");
  if (version != STATE_VERSION)
    return ty_errf(err, err_len, TY_EVERSION, "optimizer state: version %u, this build reads %u",
                   version, STATE_VERSION);
  if (kind != (uint32_t)o->opts.kind)
    return ty_errf(err, err_len, TY_EINVAL, "optimizer state: of %s, the optimizer is %s",
                   kind_name(kind), kind_name((uint32_t)o->opts.kind));
  if (n != o->n)
    return ty_errf(err, err_len, TY_EINVAL,
                   "optimizer state: the checkpoint trained %u parameters, this run trains %zu "
                   "(config.frozen / config.trainable)",
                   n, o->n);
  return 0;
}

/* Parameter i's p->nbuf buffers in the file are not what this optimizer
 * keeps: a state of the same kind that passed its CRC, so its run had
 * another config (SGD with momentum, this run's without). TY_EINVAL, as
 * another kind or parameter count: nothing is damaged. */
static int other_buffers(const ty_optim *o, size_t i, ty__optim_param *p, char *err,
                         size_t err_len) {
  uint32_t got = p->nbuf, want = ty__optim_nbuf(&o->opts);
  p->nbuf = 0;
  if (o->opts.kind == TY_OPTIM_SGD && want == 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "optimizer state: the checkpoint's SGD kept a momentum buffer, this run's "
                   "has no momentum (config.sgd.momentum 0): set the checkpoint's momentum");
  return ty_errf(err, err_len, TY_EINVAL,
                 "optimizer state: parameter %zu has %u buffers, this run's %s keeps %u", i, got,
                 kind_name((uint32_t)o->opts.kind), want);
}

/* How a parameter's buffers are read: whole (slice NULL), or each as
 * slice cuts it from the file's full[i] floats (a plan's rank). */
typedef struct cutter {
  const uint64_t *full;
  ty_optim_slice slice;
  void *user;
} cutter;

static int read_param(const ty_optim *o, size_t i, reader *r, const cutter *c, ty__optim_param *p,
                      char *err, size_t err_len) {
  uint64_t numel;
  if (!get_u64(r, &numel) || !get_u64(r, &p->steps) || !get_u32(r, &p->nbuf))
    return ty_errf(err, err_len, TY_EPROTO, "optimizer state: truncated at parameter %zu", i);
  p->numel = o->params[i].numel;
  uint64_t in_file = c->slice ? c->full[i] : p->numel;
  if (numel != in_file)
    return ty_errf(err, err_len, TY_EINVAL,
                   "optimizer state: parameter %zu has %llu elements, the model %llu", i,
                   (unsigned long long)numel, (unsigned long long)in_file);
  uint32_t want = ty__optim_nbuf(&o->opts);
  if (p->nbuf != 0 && p->nbuf != want) /* the CRC held: another config, not damage */
    return other_buffers(o, i, p, err, err_len);
  for (uint32_t b = 0; b < p->nbuf; b++) {
    if (r->left / 4 < in_file) {
      p->nbuf = b;
      return ty_errf(err, err_len, TY_EPROTO, "optimizer state: truncated in parameter %zu", i);
    }
    p->buf[b] = malloc(p->numel ? p->numel * 4 : 1);
    if (p->buf[b] == NULL) {
      p->nbuf = b;
      return TY_ENOMEM;
    }
    int rc = 0;
    if (c->slice)
      rc = c->slice(i, r->p, p->buf[b], c->user);
    else
      memcpy(p->buf[b], r->p, p->numel * 4); /* little-endian hosts only, checked below */
    if (rc != 0) {
      p->nbuf = b + 1;
      return ty_errf(err, err_len, rc, "optimizer state: parameter %zu does not slice", i);
    }
    r->p += in_file * 4;
    r->left -= in_file * 4;
  }
  return 0;
}

static int check_crc(const uint8_t *data, size_t len, char *err, size_t err_len) {
  if (len < 4)
    return ty_errf(err, err_len, TY_EPROTO, "optimizer state: truncated (%zu bytes)", len);
  reader r = {data + len - 4, 4};
  uint32_t want;
  get_u32(&r, &want);
  if ((uint32_t)crc32_z(0L, data, len - 4) != want)
    return ty_errf(err, err_len, TY_EPROTO, "optimizer state: CRC mismatch (corrupt checkpoint)");
  return 0;
}

static int load(ty_optim *o, const uint8_t *data, size_t len, const cutter *c, char *err,
                size_t err_len) {
  _Static_assert(sizeof(float) == 4, "float32");
  if (o == NULL || (data == NULL && len > 0)) return TY_EINVAL;
  if (!little_endian()) return TY_EUNSUPPORTED; /* the buffer memcpy above assumes little-endian */
  int rc = check_crc(data, len, err, err_len);
  reader r = {data, len - (rc == 0 ? 4 : 0)};
  rc = rc ? rc : check_header(o, &r, err, err_len);
  if (rc != 0) return rc;
  ty__optim_param *fresh = calloc(o->n ? o->n : 1, sizeof *fresh);
  if (fresh == NULL) return TY_ENOMEM;
  size_t done = 0;
  for (; rc == 0 && done < o->n; done++)
    rc = read_param(o, done, &r, c, &fresh[done], err, err_len);
  if (rc == 0 && r.left != 0) {
    rc = ty_errf(err, err_len, TY_EPROTO, "optimizer state: %zu trailing bytes", r.left);
  }
  ty__optim_param *drop = rc == 0 ? o->params : fresh;
  if (rc == 0) o->params = fresh;
  for (size_t i = 0; i < o->n; i++)
    ty__optim_param_clear(&drop[i]);
  free(drop);
  return rc;
}

int ty_optim_state_load(ty_optim *o, const uint8_t *data, size_t len, char *err, size_t err_len) {
  return load(o, data, len, &(cutter){NULL, NULL, NULL}, err, err_len);
}

int ty_optim_state_load_sliced(ty_optim *o, const uint8_t *data, size_t len,
                               const uint64_t *full_numel, ty_optim_slice slice, void *user,
                               char *err, size_t err_len) {
  if (!full_numel || !slice) return TY_EINVAL;
  return load(o, data, len, &(cutter){full_numel, slice, user}, err, err_len);
}
