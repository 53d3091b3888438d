/* SPDX-License-Identifier: Apache-2.0 */
/*
 * IDX reader. zlib's gzread decompresses gzip streams and passes any other
 * file through unchanged, so one code path reads both .gz and plain files.
 *
 * The header is validated before the payload is allocated, and the payload
 * size is checked against what the file actually holds, so a truncated
 * download produces a message with both numbers instead of a short read
 * discovered later as garbage pixels.
 */
#include "ops/data/data.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "lib/base/base.h"

#define IDX_TYPE_UBYTE 0x08
#define READ_CHUNK (1u << 20)

/* Reads up to n bytes; returns the count read (short only at EOF) or -1. */
static int64_t read_full(gzFile f, uint8_t *dst, size_t n)
{
  size_t got = 0;
  while (got < n) {
    size_t want = n - got < READ_CHUNK ? n - got : READ_CHUNK;
    int r = gzread(f, dst + got, (unsigned)want);
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    got += (size_t)r;
  }
  return (int64_t)got;
}

static uint32_t be32(const uint8_t *p)
{
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static const char *kind_name(uint32_t ndims)
{
  return ndims == 1 ? "labels" : ndims == 3 ? "images" : "items";
}

/* "60000 images of 28x28" / "60000 labels" / "5 items of 2x3x4". */
static void describe(const ty_idx *h, char *buf, size_t len)
{
  int n = snprintf(buf, len, "%u %s", h->dims[0], kind_name(h->ndims));
  for (uint32_t i = 1; i < h->ndims && n > 0 && (size_t)n < len; i++)
    n += snprintf(buf + n, len - (size_t)n, "%s%u", i == 1 ? " of " : "x", h->dims[i]);
}

/* Parses magic and dims; fills ndims, dims and size. */
static int read_header(gzFile f, const char *path, ty_idx *h, char *err, size_t err_len)
{
  uint8_t magic[4];
  if (read_full(f, magic, 4) != 4)
    return ty_errf(err, err_len, TY_EPROTO, "%s: not an IDX file (shorter than the 4-byte magic)",
                   path);
  uint32_t m = be32(magic);
  if (magic[0] != 0 || magic[1] != 0 || magic[3] == 0 || magic[3] > TY_DATA_IDX_MAX_DIMS)
    return ty_errf(err, err_len, TY_EPROTO, "%s: not an IDX file (magic 0x%08x)", path, m);
  if (magic[2] != IDX_TYPE_UBYTE)
    return ty_errf(err, err_len, TY_EUNSUPPORTED,
                   "%s: IDX element type 0x%02x not supported (only 0x08, unsigned byte)", path,
                   magic[2]);
  h->ndims = magic[3];
  uint8_t dims[4 * TY_DATA_IDX_MAX_DIMS];
  if (read_full(f, dims, 4u * h->ndims) != (int64_t)(4u * h->ndims))
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: truncated: header has %u dims but the file ends inside it", path, h->ndims);
  uint64_t total = 1;
  for (uint32_t i = 0; i < h->ndims; i++) {
    h->dims[i] = be32(dims + 4 * i);
    total *= h->dims[i];
    if (total > TY_DATA_IDX_MAX_BYTES)
      return ty_errf(err, err_len, TY_ETOOBIG, "%s: header asks for more than %llu bytes of data",
                     path, (unsigned long long)TY_DATA_IDX_MAX_BYTES);
  }
  h->size = (size_t)total;
  return 0;
}

/* Reads the payload and checks that nothing is missing or left over. */
static int read_payload(gzFile f, const char *path, ty_idx *h, char *err, size_t err_len)
{
  h->data = malloc(h->size ? h->size : 1);
  if (h->data == NULL)
    return TY_ENOMEM;
  int64_t got = read_full(f, h->data, h->size);
  if (got < 0) {
    int zerr = 0;
    const char *msg = gzerror(f, &zerr);
    return ty_errf(err, err_len, TY_EIO, "%s: read failed: %s", path, msg ? msg : "unknown error");
  }
  if ((size_t)got < h->size) {
    char what[96];
    describe(h, what, sizeof what);
    size_t item = h->dims[0] ? h->size / h->dims[0] : 1;
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: truncated: header says %s, file holds %zu complete %s "
                   "(%lld of %zu data bytes)",
                   path, what, item ? (size_t)got / item : 0, kind_name(h->ndims), (long long)got,
                   h->size);
  }
  uint8_t extra;
  int r = gzread(f, &extra, 1);
  if (r != 0)
    return ty_errf(err, err_len, r > 0 ? TY_EPROTO : TY_EIO,
                   "%s: %s after the %zu data bytes the header announces", path,
                   r > 0 ? "trailing data" : "read failed", h->size);
  return 0;
}

static int open_idx(const char *path, gzFile *out, char *err, size_t err_len)
{
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return ty_errf(err, err_len, TY_ENOTFOUND, "%s: missing", path);
    return ty_errf(err, err_len, TY_EIO, "%s: %s", path, strerror(errno));
  }
  if (S_ISDIR(st.st_mode))
    return ty_errf(err, err_len, TY_EINVAL, "%s: is a directory, not an IDX file", path);
  *out = gzopen(path, "rb");
  if (*out == NULL)
    return ty_errf(err, err_len, TY_EIO, "%s: %s", path, errno ? strerror(errno) : "cannot open");
  gzbuffer(*out, 256u * 1024u);
  return 0;
}

int ty_data_idx_read(const char *path, ty_idx *out_idx, char *err, size_t err_len)
{
  if (path == NULL || out_idx == NULL)
    return TY_EINVAL;
  memset(out_idx, 0, sizeof *out_idx);
  gzFile f = NULL;
  int rc = open_idx(path, &f, err, err_len);
  if (rc == 0)
    rc = read_header(f, path, out_idx, err, err_len);
  if (rc == 0)
    rc = read_payload(f, path, out_idx, err, err_len);
  if (f != NULL)
    gzclose(f);
  if (rc != 0)
    ty_data_idx_close(out_idx);
  return rc;
}

void ty_data_idx_close(ty_idx *idx)
{
  if (idx == NULL)
    return;
  free(idx->data);
  memset(idx, 0, sizeof *idx);
}
