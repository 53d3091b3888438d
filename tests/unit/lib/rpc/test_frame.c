/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the frame codec (lib/rpc/frame.c): whole and split frames,
 * batches, and every rejection (zero length, oversize), which must stick. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "lib/rpc/rpc.h"

/* Builds header + body where body[i] = seed + i. */
static size_t make_frame(uint8_t *out, uint32_t body_len, uint8_t seed) {
  ty_frame_put_header(out, body_len);
  for (uint32_t i = 0; i < body_len; i++)
    out[4 + i] = (uint8_t)(seed + i);
  return 4 + (size_t)body_len;
}

static void expect_frame(ty_frame_reader *r, uint32_t body_len, uint8_t seed) {
  const uint8_t *body = NULL;
  size_t n = 0;
  cr_assert_eq(ty_frame_reader_next(r, &body, &n), 1);
  cr_assert_eq(n, body_len);
  for (uint32_t i = 0; i < body_len; i++)
    cr_assert_eq(body[i], (uint8_t)(seed + i));
}

static void expect_need_more(ty_frame_reader *r) {
  const uint8_t *body;
  size_t n;
  cr_assert_eq(ty_frame_reader_next(r, &body, &n), 0);
}

Test(frame, header_is_big_endian) {
  uint8_t h[4];
  ty_frame_put_header(h, 0x01020304u);
  cr_assert_eq(h[0], 1);
  cr_assert_eq(h[1], 2);
  cr_assert_eq(h[2], 3);
  cr_assert_eq(h[3], 4);
}

Test(frame, whole_frame) {
  uint8_t buf[64];
  size_t n = make_frame(buf, 10, 7);
  ty_frame_reader r;
  ty_frame_reader_init(&r, 0);
  cr_assert_eq(r.max_frame, TY_RPC_MAX_FRAME_DEFAULT);
  expect_need_more(&r);
  cr_assert_eq(ty_frame_reader_feed(&r, buf, n), 0);
  expect_frame(&r, 10, 7);
  expect_need_more(&r);
  cr_assert_eq(ty_frame_reader_pending(&r), 0);
  ty_frame_reader_close(&r);
}

Test(frame, split_at_every_byte_boundary) {
  uint8_t buf[64];
  size_t n = make_frame(buf, 20, 3);
  for (size_t cut = 0; cut <= n; cut++) {
    ty_frame_reader r;
    ty_frame_reader_init(&r, 100);
    cr_assert_eq(ty_frame_reader_feed(&r, buf, cut), 0);
    if (cut < n) expect_need_more(&r);
    cr_assert_eq(ty_frame_reader_feed(&r, buf + cut, n - cut), 0);
    expect_frame(&r, 20, 3);
    expect_need_more(&r);
    ty_frame_reader_close(&r);
  }
}

Test(frame, byte_by_byte) {
  uint8_t buf[64];
  size_t n = make_frame(buf, 33, 1);
  ty_frame_reader r;
  ty_frame_reader_init(&r, 100);
  for (size_t i = 0; i < n; i++) {
    if (i > 0) expect_need_more(&r);
    cr_assert_eq(ty_frame_reader_feed(&r, buf + i, 1), 0);
  }
  expect_frame(&r, 33, 1);
  ty_frame_reader_close(&r);
}

Test(frame, many_frames_in_one_feed) {
  enum { COUNT = 5000 };
  size_t cap = COUNT * (4 + 16);
  uint8_t *buf = malloc(cap);
  size_t n = 0;
  for (int i = 0; i < COUNT; i++)
    n += make_frame(buf + n, (uint32_t)(1 + i % 16), (uint8_t)i);
  ty_frame_reader r;
  ty_frame_reader_init(&r, 1024);
  /* Feed in uneven chunks so frames straddle feeds, as reads do. */
  size_t fed = 0, chunk = 1;
  int got = 0;
  while (fed < n) {
    size_t k = chunk < n - fed ? chunk : n - fed;
    cr_assert_eq(ty_frame_reader_feed(&r, buf + fed, k), 0);
    fed += k;
    chunk = chunk * 3 % 997 + 1;
    const uint8_t *body;
    size_t len;
    int rc;
    while ((rc = ty_frame_reader_next(&r, &body, &len)) == 1) {
      cr_assert_eq(len, (size_t)(1 + got % 16));
      cr_assert_eq(body[0], (uint8_t)got);
      got++;
    }
    cr_assert_eq(rc, 0);
  }
  cr_assert_eq(got, COUNT);
  cr_assert_eq(ty_frame_reader_pending(&r), 0);
  ty_frame_reader_close(&r);
  free(buf);
}

Test(frame, zero_length_is_a_protocol_error) {
  uint8_t zero[4] = {0, 0, 0, 0};
  ty_frame_reader r;
  ty_frame_reader_init(&r, 100);
  cr_assert_eq(ty_frame_reader_feed(&r, zero, 4), 0);
  const uint8_t *body;
  size_t n;
  cr_assert_eq(ty_frame_reader_next(&r, &body, &n), TY_EPROTO);
  ty_frame_reader_close(&r);
}

Test(frame, oversize_header_is_rejected_before_the_body) {
  uint8_t h[4];
  ty_frame_put_header(h, 101);
  ty_frame_reader r;
  ty_frame_reader_init(&r, 100);
  cr_assert_eq(ty_frame_reader_feed(&r, h, 4), 0);
  const uint8_t *body;
  size_t n;
  cr_assert_eq(ty_frame_reader_next(&r, &body, &n), TY_ETOOBIG);
  ty_frame_reader_close(&r);
}

Test(frame, huge_header_is_rejected) {
  uint8_t h[4] = {0xff, 0xff, 0xff, 0xff};
  ty_frame_reader r;
  ty_frame_reader_init(&r, 0);
  cr_assert_eq(ty_frame_reader_feed(&r, h, 4), 0);
  const uint8_t *body;
  size_t n;
  cr_assert_eq(ty_frame_reader_next(&r, &body, &n), TY_ETOOBIG);
  ty_frame_reader_close(&r);
}

Test(frame, exactly_max_is_accepted) {
  uint8_t buf[4 + 100];
  size_t n = make_frame(buf, 100, 9);
  ty_frame_reader r;
  ty_frame_reader_init(&r, 100);
  cr_assert_eq(ty_frame_reader_feed(&r, buf, n), 0);
  expect_frame(&r, 100, 9);
  ty_frame_reader_close(&r);
}

Test(frame, truncated_body_needs_more) {
  uint8_t buf[4 + 50];
  size_t n = make_frame(buf, 50, 0);
  ty_frame_reader r;
  ty_frame_reader_init(&r, 100);
  cr_assert_eq(ty_frame_reader_feed(&r, buf, n - 1), 0);
  expect_need_more(&r);
  cr_assert_eq(ty_frame_reader_pending(&r), n - 1);
  ty_frame_reader_close(&r);
}

Test(frame, errors_are_sticky) {
  uint8_t bad[4] = {0, 0, 0, 0};
  uint8_t good[16];
  size_t n = make_frame(good, 8, 0);
  ty_frame_reader r;
  ty_frame_reader_init(&r, 100);
  cr_assert_eq(ty_frame_reader_feed(&r, bad, 4), 0);
  cr_assert_eq(ty_frame_reader_feed(&r, good, n), 0);
  const uint8_t *body;
  size_t len;
  cr_assert_eq(ty_frame_reader_next(&r, &body, &len), TY_EPROTO);
  cr_assert_eq(ty_frame_reader_next(&r, &body, &len), TY_EPROTO);
  cr_assert_eq(ty_frame_reader_feed(&r, good, n), TY_EPROTO);
  uint8_t *space;
  size_t room;
  cr_assert_eq(ty_frame_reader_space(&r, 16, &space, &room), TY_EPROTO);
  ty_frame_reader_close(&r);
}

Test(frame, zero_copy_space_grows_with_bytes_received) {
  enum { BODY = 300000 };
  uint8_t *buf = malloc(4 + BODY);
  size_t n = make_frame(buf, BODY, 5);
  ty_frame_reader r;
  ty_frame_reader_init(&r, BODY);
  /* Hand over the header and a little body: the room offered follows what
   * arrived (at most doubling), not the 300000 bytes the header announces,
   * and the whole frame still arrives in a few reads. */
  cr_assert_eq(ty_frame_reader_feed(&r, buf, 10), 0);
  size_t done = 10;
  int reads = 0;
  while (done < n) {
    uint8_t *space;
    size_t room;
    cr_assert_eq(ty_frame_reader_space(&r, 64, &space, &room), 0);
    cr_assert_geq(room, 64);
    cr_assert_leq(r.cap, 4 * done + 8192, "cap %zu after %zu bytes", r.cap, done);
    size_t take = n - done < room ? n - done : room;
    memcpy(space, buf + done, take);
    ty_frame_reader_commit(&r, take);
    done += take;
    reads++;
  }
  cr_assert_leq(reads, 20, "%d reads: growth must be geometric", reads);
  expect_frame(&r, BODY, 5);
  ty_frame_reader_close(&r);
  free(buf);
}

Test(frame, announced_length_costs_nothing_until_sent) {
  ty_frame_reader r;
  ty_frame_reader_init(&r, 64u << 20);
  uint8_t head[14] = {0};
  ty_frame_put_header(head, 60u << 20);
  cr_assert_eq(ty_frame_reader_feed(&r, head, sizeof head), 0);
  uint8_t *space;
  size_t room;
  cr_assert_eq(ty_frame_reader_space(&r, 4096, &space, &room), 0);
  cr_assert_leq(r.cap, 16384, "a 60 MiB announcement pinned %zu bytes", r.cap);
  expect_need_more(&r);
  ty_frame_reader_close(&r);
}

Test(frame, trim_gives_back_what_is_not_needed) {
  enum { BODY = 200000 };
  uint8_t *buf = malloc(4 + BODY + 4);
  size_t n = make_frame(buf, BODY, 1);
  ty_frame_put_header(buf + n, 70000); /* the next frame's header, partly */
  ty_frame_reader r;
  ty_frame_reader_init(&r, 1u << 20);
  cr_assert_eq(ty_frame_reader_feed(&r, buf, n + 3), 0);
  size_t big = r.cap;
  cr_assert_geq(big, n);
  expect_frame(&r, BODY, 1);
  ty_frame_reader_trim(&r); /* 3 bytes of a header left: the block shrinks */
  cr_assert_leq(r.cap, 8192);
  cr_assert_eq(ty_frame_reader_pending(&r), 3);
  cr_assert_eq(ty_frame_reader_feed(&r, buf + n + 3, 1), 0);
  expect_need_more(&r);
  cr_assert_eq(ty_frame_reader_pending(&r), 4);
  ty_frame_reader_trim(&r);
  ty_frame_reader_close(&r);
  ty_frame_reader_init(&r, 1024);
  uint8_t small[12];
  size_t m = make_frame(small, 8, 2);
  cr_assert_eq(ty_frame_reader_feed(&r, small, m), 0);
  expect_frame(&r, 8, 2);
  ty_frame_reader_trim(&r); /* empty: nothing is kept */
  cr_assert_null(r.buf);
  cr_assert_eq(r.cap, 0);
  cr_assert_eq(ty_frame_reader_feed(&r, small, m), 0);
  expect_frame(&r, 8, 2);
  ty_frame_reader_close(&r);
  free(buf);
}
