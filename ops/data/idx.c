/* SPDX-License-Identifier: Apache-2.0 */
/*
 * IDX reader. Plain files are memory-mapped and parsed in place; gzip'ed
 * ones (recognised by their magic, not their name) are decompressed with
 * zlib's gzread into a buffer that grows with the bytes that actually
 * arrive, never with what the header announces, so a 16-byte file claiming
 * 4 GB costs 16 bytes.
 *
 * One header parser serves both paths. The payload size is checked against
 * what the file actually holds, so a truncated download produces a message
 * with both numbers instead of a short read discovered later as garbage
 * pixels.
 */
#include "ops/data/data_internal.h"

#include "lib/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
#define READ_CHUNK (1u << 20)
#define HEADER_MAX (4 + 4 * TY_DATA_IDX_MAX_DIMS)

static uint32_t be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static const char *kind_name(uint32_t ndims) {
  return ndims == 1 ? "labels" : ndims == 3 ? "images" : "items";
}

/* "60000 images of 28x28" / "60000 labels" / "5 items of 2x3x4". */
static void describe(const ty_idx *h, char *buf, size_t len) {
  int n = snprintf(buf, len, "%u %s", h->dims[0], kind_name(h->ndims));
  for (uint32_t i = 1; i < h->ndims && n > 0 && (size_t)n < len; i++)
    n += snprintf(buf + n, len - (size_t)n, "%s%u", i == 1 ? " of " : "x", h->dims[i]);
}

/* Parses magic and dims from the first len bytes; fills ndims, dims and
 * size. *out_hlen is the header's length. */
static int parse_header(const uint8_t *b, size_t len, const char *path, ty_idx *h, size_t *out_hlen,
                        char *err, size_t err_len) {
  if (len < 4)
    return ty_errf(err, err_len, TY_EPROTO, "%s: not an IDX file (shorter than the 4-byte magic)",
                   path);
  if (b[0] != 0 || b[1] != 0 || b[3] == 0 || b[3] > TY_DATA_IDX_MAX_DIMS)
    return ty_errf(err, err_len, TY_EPROTO, "%s: not an IDX file (magic 0x%08x)", path, be32(b));
  if (b[2] != IDX_TYPE_UBYTE)
    return ty_errf(err, err_len, TY_EUNSUPPORTED,
                   "%s: IDX element type 0x%02x not supported (only 0x08, unsigned byte)", path,
                   b[2]);
  h->ndims = b[3];
  size_t hlen = 4 + 4 * (size_t)h->ndims;
  if (len < hlen)
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: truncated: header has %u dims but the file ends inside it", path, h->ndims);
  uint64_t total = 1;
  for (uint32_t i = 0; i < h->ndims; i++) {
    h->dims[i] = be32(b + 4 + 4 * i);
    total *= h->dims[i]; /* <= 2^32 * 2^32 here: cannot wrap */
    if (total > TY_DATA_IDX_MAX_BYTES)
      return ty_errf(err, err_len, TY_ETOOBIG, "%s: header asks for more than %llu bytes of data",
                     path, (unsigned long long)TY_DATA_IDX_MAX_BYTES);
  }
  h->size = (size_t)total;
  *out_hlen = hlen;
  return 0;
}

/* Compares the payload bytes present (got, plus whether more follow) with
 * the header's size. */
static int check_payload(const ty_idx *h, size_t got, bool more, const char *path, char *err,
                         size_t err_len) {
  if (got < h->size) {
    char what[96];
    describe(h, what, sizeof what);
    size_t item = h->dims[0] ? h->size / h->dims[0] : 1;
    return ty_errf(
        err, err_len, TY_EPROTO,
        "%s: truncated: header says %s, file holds %zu complete %s (%zu of %zu data bytes)", path,
        what, item ? got / item : 0, kind_name(h->ndims), got, h->size);
  }
  if (more)
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: trailing data after the %zu data bytes the header announces", path,
                   h->size);
  return 0;
}

int ty_data_idx_parse(const uint8_t *buf, size_t len, const char *name, ty_idx *out_idx, char *err,
                      size_t err_len) {
  if (buf == NULL || out_idx == NULL) return TY_EINVAL;
  memset(out_idx, 0, sizeof *out_idx);
  name = name ? name : "IDX";
  size_t hlen;
  int rc = parse_header(buf, len, name, out_idx, &hlen, err, err_len);
  if (rc == 0)
    rc = check_payload(out_idx, len - hlen, len - hlen > out_idx->size, name, err, err_len);
  if (rc != 0) {
    memset(out_idx, 0, sizeof *out_idx);
    return rc;
  }
  out_idx->data = buf + hlen;
  return 0;
}

/* Reads up to n bytes; returns the count read (short only at EOF) or -1. */
static int64_t read_full(gzFile f, uint8_t *dst, size_t n) {
  size_t got = 0;
  while (got < n) {
    size_t want = n - got < READ_CHUNK ? n - got : READ_CHUNK;
    int r = gzread(f, dst + got, (unsigned)want);
    if (r < 0) return -1;
    if (r == 0) break;
    got += (size_t)r;
  }
  return (int64_t)got;
}

static int read_error(gzFile f, const char *path, char *err, size_t err_len) {
  int zerr = 0;
  const char *msg = gzerror(f, &zerr);
  return ty_errf(err, err_len, TY_EIO, "%s: read failed: %s", path, msg ? msg : "unknown error");
}

/* Reads the payload in chunks, growing the buffer as bytes arrive. */
static int gz_payload(gzFile f, const char *path, ty_idx *h, char *err, size_t err_len) {
  size_t got = 0, cap = 0;
  uint8_t *buf = NULL;
  for (;;) {
    size_t want = h->size - got < READ_CHUNK ? h->size - got : READ_CHUNK;
    if (want == 0) break;
    if (got + want > cap) {
      size_t ncap = cap ? cap * 2 : READ_CHUNK;
      ncap = ncap < h->size ? ncap : h->size;
      uint8_t *nb = realloc(buf, ncap);
      if (nb == NULL) {
        free(buf);
        return TY_ENOMEM;
      }
      buf = nb;
      cap = ncap;
    }
    int64_t r = read_full(f, buf + got, want);
    if (r < 0) {
      free(buf);
      return read_error(f, path, err, err_len);
    }
    got += (size_t)r;
    if ((size_t)r < want) break;
  }
  h->storage.heap = buf;
  h->data = buf ? buf : (const uint8_t *)"";
  uint8_t extra;
  int more = got == h->size ? gzread(f, &extra, 1) : 0;
  if (more < 0)
    return ty_errf(err, err_len, TY_EIO,
                   "%s: read failed after the %zu data bytes the header announces", path, h->size);
  return check_payload(h, got, more > 0, path, err, err_len);
}

static int read_gzip(const char *path, ty_idx *h, char *err, size_t err_len) {
  gzFile f = gzopen(path, "rb");
  if (f == NULL) return ty_errf(err, err_len, TY_EIO, "%s: cannot open for decompression", path);
  gzbuffer(f, 256u * 1024u);
  uint8_t head[HEADER_MAX];
  int64_t got = read_full(f, head, 4);
  int rc = 0;
  size_t hlen = 0;
  if (got < 0)
    rc = read_error(f, path, err, err_len);
  else if (got == 4 && head[3] >= 1 && head[3] <= TY_DATA_IDX_MAX_DIMS) {
    int64_t more = read_full(f, head + 4, 4u * head[3]);
    got = more < 0 ? -1 : got + more;
    if (got < 0) rc = read_error(f, path, err, err_len);
  }
  if (rc == 0) rc = parse_header(head, (size_t)got, path, h, &hlen, err, err_len);
  if (rc == 0) rc = gz_payload(f, path, h, err, err_len);
  gzclose(f);
  return rc;
}

int ty_data_idx_read(const char *path, ty_idx *out_idx, char *err, size_t err_len) {
  if (path == NULL || out_idx == NULL) return TY_EINVAL;
  memset(out_idx, 0, sizeof *out_idx);
  const uint8_t *b;
  size_t len;
  ty_data_storage st;
  int rc = ty__data_map(path, "an IDX file", &b, &len, &st, err, err_len);
  if (rc == 0 && ty__data_is_gzip(b, len)) {
    ty__data_storage_free(&st);
    rc = read_gzip(path, out_idx, err, err_len);
  } else if (rc == 0) {
    rc = ty_data_idx_parse(b, len, path, out_idx, err, err_len);
    out_idx->storage = st;
  }
  if (rc != 0) ty_data_idx_close(out_idx);
  return rc;
}

void ty_data_idx_close(ty_idx *idx) {
  if (idx == NULL) return;
  ty__data_storage_free(&idx->storage);
  memset(idx, 0, sizeof *idx);
}
