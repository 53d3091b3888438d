/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the /metrics server's request parser
 * (lib/http/parse.c), consuming the input the way server.c does:
 * parse, drop what was used, again, until it needs more bytes or refuses.
 * Invariants: `used` never exceeds the input, a head is at least 4 bytes
 * and its method is one of the four the server knows.
 */
#include "lib/http/http.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "http parser invariant broken: %s\n", what);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data;
  size_t n = size < TY_HTTP_HEAD_MAX ? size : TY_HTTP_HEAD_MAX; /* the server's buffer */
  for (;;) {
    ty_http_request r;
    size_t used = 0;
    int rc = ty_http_parse(p, n, &r, &used);
    check(used <= n, "used more than the input");
    if (rc == 1) {
      check(used >= 4, "a head shorter than its blank line");
      check(r.method == TY_HTTP_GET || r.method == TY_HTTP_HEAD || r.method == TY_HTTP_POST ||
                r.method == TY_HTTP_OTHER,
            "unknown method value");
      check(r.content_length >= -1, "negative Content-Length");
    }
    if (rc != 1 || used == 0) return 0;
    p += used;
    n -= used;
  }
}
