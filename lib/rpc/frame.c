/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The frame codec: a 4-byte big-endian length, then that many envelope bytes.
 * Pure (no I/O), so it can be unit-tested and fuzzed byte by byte.
 *
 * Tuned for a connection that receives many small frames per read (heartbeats,
 * status calls) and now and then one large one (a model plan, a checkpoint
 * chunk). Returning a frame only advances `off`; the unconsumed tail is moved
 * to the front when more room is needed, at most once per read, so a read
 * holding k frames costs O(bytes), not O(k * bytes).
 *
 * Memory follows the bytes received, never the length a header announces:
 * a peer that announces 60 MiB and sends 10 bytes costs a few KiB. The
 * buffer grows by at most half of what it holds per request for room, so a
 * large frame that does arrive still costs O(log n) reallocations; ty_frame_reader_trim() gives
 * back what an emptied or mostly consumed buffer no longer needs, so an
 * idle connection (or a slow one in the middle of a header) pins at most
 * MIN_CAP bytes.
 *
 * Invariants: off <= len <= cap; cap <= 4 * max(pending, MIN_CAP) + the
 * last request for room after a trim; once err is set every call returns it.
 */
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"

#include <stdlib.h>
#include <string.h>

enum { MIN_CAP = 4096 };

void ty_frame_reader_init(ty_frame_reader *r, size_t max_frame) {
  memset(r, 0, sizeof *r);
  r->max_frame = max_frame ? max_frame : TY_RPC_MAX_FRAME_DEFAULT;
}

void ty_frame_reader_close(ty_frame_reader *r) {
  if (!r) return;
  free(r->buf);
  r->buf = NULL;
  r->len = r->cap = r->off = 0;
}

static uint32_t get_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void ty_frame_put_header(uint8_t out_header[4], uint32_t len) {
  out_header[0] = (uint8_t)(len >> 24);
  out_header[1] = (uint8_t)(len >> 16);
  out_header[2] = (uint8_t)(len >> 8);
  out_header[3] = (uint8_t)len;
}

/* Bytes the frame now at `off` still needs beyond what is buffered; 0 when its
 * header is incomplete or announces a length we will reject anyway. */
static size_t missing_for_current(const ty_frame_reader *r) {
  size_t avail = r->len - r->off;
  if (avail < TY_RPC_FRAME_HEADER) return 0;
  uint32_t body = get_be32(r->buf + r->off);
  if (body == 0 || body > r->max_frame) return 0;
  size_t total = TY_RPC_FRAME_HEADER + (size_t)body;
  return total > avail ? total - avail : 0;
}

int ty_frame_reader_space(ty_frame_reader *r, size_t want, uint8_t **out_space, size_t *out_n) {
  if (r->err) return r->err;
  /* Room for the rest of a frame being received, but never more than the
   * bytes already buffered: what a header announces costs nothing until
   * the peer sends it. */
  size_t pending = r->len - r->off, missing = missing_for_current(r);
  if (missing > want) {
    size_t grow = pending / 2 > want ? pending / 2 : want;
    want = missing < grow ? missing : grow;
  }
  if (r->off == r->len) {
    r->off = r->len = 0;
  } else if (r->off > 0 && (r->cap - r->len < want || r->off >= r->cap / 2)) {
    memmove(r->buf, r->buf + r->off, r->len - r->off);
    r->len -= r->off;
    r->off = 0;
  }
  if (r->cap - r->len < want) {
    size_t need = r->len + want;
    size_t cap = r->cap > MIN_CAP ? r->cap : MIN_CAP;
    while (cap < need)
      cap *= 2;
    uint8_t *nb = realloc(r->buf, cap);
    if (!nb) return TY_ENOMEM;
    r->buf = nb;
    r->cap = cap;
  }
  *out_space = r->buf + r->len;
  *out_n = r->cap - r->len;
  return 0;
}

void ty_frame_reader_commit(ty_frame_reader *r, size_t n) {
  if (r->err) return;
  r->len += n <= r->cap - r->len ? n : r->cap - r->len;
}

int ty_frame_reader_feed(ty_frame_reader *r, const void *data, size_t n) {
  if (r->err) return r->err;
  if (n == 0) return 0;
  uint8_t *space;
  size_t room;
  int rc = ty_frame_reader_space(r, n, &space, &room);
  if (rc < 0) return rc;
  memcpy(space, data, n);
  ty_frame_reader_commit(r, n);
  return 0;
}

int ty_frame_reader_next(ty_frame_reader *r, const uint8_t **out_body, size_t *out_len) {
  if (r->err) return r->err;
  size_t avail = r->len - r->off;
  if (avail < TY_RPC_FRAME_HEADER) return 0;
  uint32_t body = get_be32(r->buf + r->off);
  if (body == 0) return r->err = TY_EPROTO;
  if (body > r->max_frame) return r->err = TY_ETOOBIG;
  if (avail - TY_RPC_FRAME_HEADER < body) return 0;
  *out_body = r->buf + r->off + TY_RPC_FRAME_HEADER;
  *out_len = body;
  r->off += TY_RPC_FRAME_HEADER + (size_t)body;
  return 1;
}

size_t ty_frame_reader_pending(const ty_frame_reader *r) {
  return r->len - r->off;
}

bool ty_frame_reader_has_frame(const ty_frame_reader *r) {
  if (r->err) return false;
  size_t avail = r->len - r->off;
  if (avail < TY_RPC_FRAME_HEADER) return false;
  uint32_t body = get_be32(r->buf + r->off);
  return body == 0 || body > r->max_frame || avail - TY_RPC_FRAME_HEADER >= body;
}

/* The smallest power-of-two capacity >= MIN_CAP holding n bytes twice. */
static size_t fitted_cap(size_t n) {
  size_t cap = MIN_CAP;
  while (cap < 2 * n)
    cap *= 2;
  return cap;
}

void ty_frame_reader_trim(ty_frame_reader *r) {
  size_t pending = r->len - r->off;
  if (pending == 0) {
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = r->off = 0;
    return;
  }
  if (r->cap <= MIN_CAP || pending > r->cap / 4) return;
  memmove(r->buf, r->buf + r->off, pending);
  r->len = pending;
  r->off = 0;
  size_t cap = fitted_cap(pending);
  uint8_t *nb = realloc(r->buf, cap);
  if (!nb) return; /* keeping the larger block is harmless */
  r->buf = nb;
  r->cap = cap;
}
