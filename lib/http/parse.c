/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The request-head parser of lib/http's server (server.c): pure, bytes in,
 * a verdict out, so it is unit-tested and fuzzed on its own
 * (tests/fuzz/fuzz_http.c). It accepts only what a scraper sends: a request
 * line, header lines, the blank line; everything unusual (bare LF, obs-fold,
 * control bytes, a second Host, conflicting Content-Length, any
 * Transfer-Encoding) is malformed, since no request we serve has a body.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/http/http.h"

/* ---- request head parsing (pure) ---------------------------------------- */

static int is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* "GET /metrics HTTP/1.1" (no CRLF). */
static int parse_request_line(const char *p, size_t len, ty_http_request *r) {
  size_t i = 0;
  while (i < len && is_tchar((unsigned char)p[i]))
    i++;
  if (i == 0 || i > 16 || i >= len || p[i] != ' ') return -1;
  r->method = (i == 3 && memcmp(p, "GET", 3) == 0)    ? TY_HTTP_GET
              : (i == 4 && memcmp(p, "HEAD", 4) == 0) ? TY_HTTP_HEAD
              : (i == 4 && memcmp(p, "POST", 4) == 0) ? TY_HTTP_POST
                                                      : TY_HTTP_OTHER;
  memcpy(r->method_name, p, i);
  r->method_name[i] = '\0';
  size_t t0 = ++i;
  while (i < len && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7F)
    i++;
  size_t tlen = i - t0;
  if (tlen == 0 || i >= len || p[i] != ' ') return -1;
  const char *t = p + t0;
  if (tlen >= sizeof r->target) return -1;
  memcpy(r->target, t, tlen);
  r->target[tlen] = '\0';
  r->is_metrics = tlen >= 8 && memcmp(t, "/metrics", 8) == 0 && (tlen == 8 || t[8] == '?');
  i++;
  if (len - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0) return -1;
  if (p[i + 7] != '0' && p[i + 7] != '1') return -1;
  r->http10 = p[i + 7] == '0';
  return 0;
}

static int token_in_list(const char *v, size_t len, const char *tok) {
  size_t tl = strlen(tok), i = 0;
  while (i < len) {
    while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
      i++;
    size_t s = i;
    while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
      i++;
    if (i - s == tl && strncasecmp(v + s, tok, tl) == 0) return 1;
  }
  return 0;
}

static int parse_content_length(const char *v, size_t len, ty_http_request *r) {
  long long n = 0;
  if (len == 0 || len > 15) return -1;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    n = n * 10 + (v[i] - '0');
  }
  if (r->content_length >= 0 && r->content_length != n) return -1;
  r->content_length = n;
  return 0;
}

/* Copies a token of safe characters; a longer or odd one is left out
 * and token_bad says why, so that the handler refuses it by name rather
 * than serve the request as one that sent no token. */
static void take_token(const char *v, size_t len, ty_http_request *r) {
  if (len == 0) {
    r->token_bad = "empty";
    return;
  }
  if (len >= sizeof r->token) {
    r->token_bad = "longer than 127 bytes";
    return;
  }
  for (size_t i = 0; i < len; i++)
    if (!is_tchar((unsigned char)v[i]) && v[i] != '/' && v[i] != '=') {
      r->token_bad = "a character other than A-Z a-z 0-9 and !#$%&'*+-.^_`|~/=";
      return;
    }
  memcpy(r->token, v, len);
  r->token[len] = '\0';
}

/* A Host value "localhost", "127.a.b.c" or "[::1]", each with an optional
 * ":port". */
static bool host_is_loopback(const char *v, size_t n) {
  size_t h = n;
  if (n && v[0] == '[') {
    const char *close = memchr(v, ']', n);
    h = close ? (size_t)(close - v) + 1 : n;
  } else {
    const char *colon = memchr(v, ':', n);
    if (colon) h = (size_t)(colon - v);
  }
  if (h < n && (v[h] != ':' || h + 1 == n)) return false;
  for (size_t i = h + 1; i < n; i++)
    if (v[i] < '0' || v[i] > '9') return false;
  if (h == 9 && strncasecmp(v, "localhost", 9) == 0) return true;
  if (h == 5 && memcmp(v, "[::1]", 5) == 0) return true;
  if (h < 9 || h > 15 || memcmp(v, "127.", 4) != 0) return false;
  int dots = 0;
  for (size_t i = 4; i < h; i++) {
    if (v[i] == '.' && v[i - 1] != '.')
      dots++;
    else if (v[i] < '0' || v[i] > '9')
      return false;
  }
  return dots == 2 && v[h - 1] != '.';
}

/* "Name: value" (no CRLF). */
static int parse_header(const char *p, size_t len, ty_http_request *r) {
  size_t i = 0;
  while (i < len && is_tchar((unsigned char)p[i]))
    i++;
  if (i == 0 || i >= len || p[i] != ':') return -1; /* also rejects obs-fold */
  size_t nlen = i++;
  while (i < len && (p[i] == ' ' || p[i] == '\t'))
    i++;
  size_t end = len;
  while (end > i && (p[end - 1] == ' ' || p[end - 1] == '\t'))
    end--;
  for (size_t k = i; k < end; k++) {
    unsigned char c = (unsigned char)p[k];
    if ((c < 0x20 && c != '\t') || c == 0x7F) return -1;
  }
  const char *v = p + i;
  size_t vlen = end - i;
  if (nlen == 4 && strncasecmp(p, "host", 4) == 0) {
    if (r->has_host) return -1;
    r->has_host = 1;
    r->host_loopback = host_is_loopback(v, vlen);
  } else if (nlen == 10 && strncasecmp(p, "connection", 10) == 0) {
    r->conn_close |= token_in_list(v, vlen, "close");
    r->conn_keep_alive |= token_in_list(v, vlen, "keep-alive");
  } else if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
    return parse_content_length(v, vlen, r);
  } else if (nlen == 13 && strncasecmp(p, "authorization", 13) == 0) {
    if (vlen > 7 && strncasecmp(v, "Bearer ", 7) == 0)
      take_token(v + 7, vlen - 7, r);
    else
      r->token_bad = "Authorization is not \"Bearer TOKEN\"";
  } else if (nlen == 16 && strncasecmp(p, "x-requested-with", 16) == 0) {
    r->requested_with = vlen > 0;
  } else if (nlen == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
    return -1; /* a body we would have to decode; no request here has one */
  }
  return 0;
}

/* Parses head[0..len), which ends with the blank line's CRLF CRLF. */
static int parse_head(const char *head, size_t len, ty_http_request *r) {
  memset(r, 0, sizeof *r);
  r->content_length = -1;
  size_t pos = 0;
  for (int first = 1;; first = 0) {
    const char *eol = memchr(head + pos, '\r', len - pos);
    if (!eol || (size_t)(eol - head) + 1 >= len || eol[1] != '\n') return -1;
    size_t llen = (size_t)(eol - (head + pos));
    if (memchr(head + pos, '\n', llen) || memchr(head + pos, '\0', llen)) return -1;
    if (llen == 0) break; /* the blank line */
    int rc = first ? parse_request_line(head + pos, llen, r) : parse_header(head + pos, llen, r);
    if (rc != 0) return -1;
    pos += llen + 2;
  }
  if (!r->http10 && !r->has_host) return -1;
  return 0;
}

int ty_http_parse(const char *buf, size_t len, ty_http_request *out, size_t *out_used) {
  size_t skip = 0; /* RFC 9112 2.2: ignore empty lines before a request */
  while (len - skip >= 2 && buf[skip] == '\r' && buf[skip + 1] == '\n')
    skip += 2;
  *out_used = skip;
  const char *head = buf + skip;
  size_t avail = len - skip;
  /* A head ends at CRLF CRLF; a bare LF LF ends it too, so that parse_head
   * can reject the bare LFs at once rather than wait for the size limit. */
  const char *end = memmem(head, avail, "\r\n\r\n", 4);
  const char *lf = memmem(head, avail, "\n\n", 2);
  size_t term = 4;
  if (lf && (!end || lf < end)) end = lf, term = 2;
  if (!end) return len >= TY_HTTP_HEAD_MAX ? TY_ETOOBIG : 0;
  size_t head_len = (size_t)(end - head) + term;
  *out_used = skip + head_len;
  if (head_len > TY_HTTP_HEAD_MAX) return TY_ETOOBIG;
  return parse_head(head, head_len, out) == 0 ? 1 : TY_EPROTO;
}
