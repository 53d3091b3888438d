/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for lib/rpc's frame reader. Byte 0 picks the maximum
 * frame size (16 bytes to 16 KiB, so oversize headers are reached), byte 1
 * the chunk size the rest arrives in; chunks go alternately through
 * feed() and the zero-copy space()/commit() pair, with next() draining
 * frames and trim() after every third chunk, as lib/rpc/conn.c does.
 * Invariants checked: a frame never exceeds the maximum, errors stick,
 * and the buffer follows the bytes received, never a header's claim.
 */
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "frame reader invariant broken: %s\n", what);
    abort();
  }
}

/* Drains whole frames; returns the sticky error or 0. */
static int drain(ty_frame_reader *r, size_t max) {
  const uint8_t *body;
  size_t len;
  int rc;
  while ((rc = ty_frame_reader_next(r, &body, &len)) == 1) {
    check(len > 0 && len <= max, "frame length out of range");
    volatile uint8_t sink = body[0] ^ body[len - 1]; /* the body is readable */
    (void)sink;
  }
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t max = 16u << (data[0] % 11), chunk = (size_t)data[1] + 1;
  const uint8_t *p = data + 2;
  size_t n = size - 2, fed = 0;
  ty_frame_reader r;
  ty_frame_reader_init(&r, max);
  int err = 0;
  for (size_t i = 0; fed < n && err == 0; i++) {
    size_t k = n - fed < chunk ? n - fed : chunk;
    if (i % 2 == 0) {
      err = ty_frame_reader_feed(&r, p + fed, k);
    } else {
      uint8_t *space;
      size_t room;
      err = ty_frame_reader_space(&r, k, &space, &room);
      if (err == 0) {
        check(room >= k, "space() offered less than asked");
        memcpy(space, p + fed, k);
        ty_frame_reader_commit(&r, k);
      }
    }
    fed += k;
    if (err == 0) err = drain(&r, max);
    if (err == 0 && i % 3 == 2) ty_frame_reader_trim(&r);
    check(r.cap <= 4 * fed + 2 * chunk + 16384, "the buffer outgrew the bytes received");
  }
  if (err != 0) check(ty_frame_reader_feed(&r, p, 1) == err, "an error did not stick");
  ty_frame_reader_close(&r);
  return 0;
}
