/* SPDX-License-Identifier: Apache-2.0 */
/* Time, parsing of durations and sizes, the byte buffer, lists of floats
 * for messages, heap helpers and the descriptor limit. */
#include "lib/base/base.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t ty_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double ty_mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t ty_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_u64(const char **p, uint64_t *out) {
  if (!isdigit((unsigned char)**p)) return TY_EINVAL;
  uint64_t v = 0;
  while (isdigit((unsigned char)**p)) {
    uint64_t d = (uint64_t)(**p - '0');
    if (v > (UINT64_MAX - d) / 10) return TY_EINVAL;
    v = v * 10 + d;
    (*p)++;
  }
  *out = v;
  return 0;
}

static int parse_clock(const char *s, uint64_t *out) {
  uint64_t parts[3];
  int n = 0;
  const char *p = s;
  for (;;) {
    if (n == 3 || parse_u64(&p, &parts[n]) != 0) return TY_EINVAL;
    n++;
    if (*p == '\0') break;
    if (*p++ != ':') return TY_EINVAL;
  }
  if (n == 2)
    *out = parts[0] * 60 + parts[1];
  else if (n == 3)
    *out = parts[0] * 3600 + parts[1] * 60 + parts[2];
  else
    return TY_EINVAL;
  return 0;
}

int ty_parse_duration(const char *s, uint32_t *out_seconds) {
  if (!s || !*s) return TY_EINVAL;
  uint64_t v = 0;
  if (strchr(s, ':')) {
    if (parse_clock(s, &v) != 0) return TY_EINVAL;
  } else {
    const char *p = s;
    if (parse_u64(&p, &v) != 0) return TY_EINVAL;
    uint64_t mul = 1;
    switch (*p) {
    case '\0':
    case 's':
      break;
    case 'm':
      mul = 60;
      break;
    case 'h':
      mul = 3600;
      break;
    case 'd':
      mul = 86400;
      break;
    default:
      return TY_EINVAL;
    }
    if (*p && p[1] != '\0') return TY_EINVAL;
    if (v > UINT32_MAX / mul) return TY_EINVAL;
    v *= mul;
  }
  if (v > UINT32_MAX) return TY_EINVAL;
  *out_seconds = (uint32_t)v;
  return 0;
}

int ty_parse_size(const char *s, uint64_t *out_bytes) {
  if (!s) return TY_EINVAL;
  const char *p = s;
  uint64_t v;
  if (parse_u64(&p, &v) != 0) return TY_EINVAL;
  unsigned shift = 0;
  switch (toupper((unsigned char)*p)) {
  case '\0':
    break;
  case 'K':
    shift = 10;
    break;
  case 'M':
    shift = 20;
    break;
  case 'G':
    shift = 30;
    break;
  case 'T':
    shift = 40;
    break;
  default:
    return TY_EINVAL;
  }
  if (*p) {
    p++;
    if (toupper((unsigned char)*p) == 'B' || toupper((unsigned char)*p) == 'I') p++;
    if (*p == 'B') p++;
    if (*p) return TY_EINVAL;
  }
  if (shift && v > (UINT64_MAX >> shift)) return TY_EINVAL;
  *out_bytes = v << shift;
  return 0;
}

int ty_parse_mem_mb(const char *s, uint64_t *out_bytes) {
  uint64_t v;
  int rc = ty_parse_size(s, &v);
  if (rc != 0) return rc;
  /* Slurm's default unit is the megabyte: 4000 is 4000M, never bytes. */
  if (s[strspn(s, "0123456789")] == '\0') {
    if (v > (UINT64_MAX >> 20)) return TY_EINVAL;
    v <<= 20;
  }
  *out_bytes = v;
  return 0;
}

int ty_parse_hostport(const char *s, char *host, size_t host_len, int *port) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || (size_t)(colon - s) >= host_len) return TY_EINVAL;
  char *end;
  errno = 0;
  long p = strtol(colon + 1, &end, 10);
  if (errno || *end || end == colon + 1 || p < 0 || p > 65535) return TY_EINVAL;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  *port = (int)p;
  return 0;
}

void ty_buf_init(ty_buf *b) {
  b->data = NULL, b->len = 0, b->cap = 0;
}

void ty_buf_close(ty_buf *b) {
  if (!b) return;
  free(b->data);
  ty_buf_init(b);
}

int ty_buf_reserve(ty_buf *b, size_t extra) {
  if (extra > SIZE_MAX - b->len) return TY_ENOMEM;
  size_t need = b->len + extra;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  uint8_t *d = realloc(b->data, cap);
  if (!d) return TY_ENOMEM;
  b->data = d;
  b->cap = cap;
  return 0;
}

int ty_buf_append(ty_buf *b, const void *data, size_t n) {
  if (n == 0) return 0;
  int rc = ty_buf_reserve(b, n);
  if (rc) return rc;
  memcpy(b->data + b->len, data, n);
  b->len += n;
  return 0;
}

/* Formats straight into the spare room (at least 64 bytes are made), and
 * only a text longer than that room is formatted a second time: most
 * appends are short, and a vsnprintf to measure first doubled their cost. */
int ty_buf_vprintf(ty_buf *b, const char *fmt, va_list ap) {
  int rc = ty_buf_reserve(b, 64);
  if (rc) return rc;
  size_t room = b->cap - b->len;
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf((char *)b->data + b->len, room, fmt, ap2);
  va_end(ap2);
  if (n < 0) return TY_EINVAL;
  if ((size_t)n >= room) {
    rc = ty_buf_reserve(b, (size_t)n + 1);
    if (rc) return rc;
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  }
  b->len += (size_t)n;
  return 0;
}

int ty_buf_printf(ty_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = ty_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

void ty_buf_consume(ty_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

static void oom(void) {
  static const char msg[] = "trainyard: out of memory\n";
  fwrite(msg, 1, sizeof msg - 1, stderr);
  abort();
}

void ty_format_floats(const float *v, size_t n, char *buf, size_t len) {
  size_t at = 0;
  if (len == 0) return;
  buf[0] = '\0';
  for (size_t i = 0; i < n && i < 8 && at < len; i++) {
    int w = snprintf(buf + at, len - at, "%s%g", i ? ", " : "", (double)v[i]);
    at += w > 0 ? (size_t)w : 0;
  }
  if (n > 8 && at < len) snprintf(buf + at, len - at, ", ... (%zu values)", n);
}

char *ty_strdup(const char *s) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) oom();
  return d;
}

void *ty_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom();
  return p;
}

void *ty_xcalloc(size_t count, size_t n) {
  void *p = calloc(count ? count : 1, n ? n : 1);
  if (!p) oom();
  return p;
}

void *ty_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom();
  return q;
}

int ty_open_regular(const char *path, struct stat *st, const char **why) {
  *why = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return -1;
  if (fstat(fd, st) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  if (S_ISREG(st->st_mode)) return fd;
  *why = S_ISDIR(st->st_mode) ? "is a directory" : "not a regular file";
  close(fd);
  return -1;
}

int ty_read_regular(const char *path, ty_buf *out, const char **why) {
  struct stat st;
  int fd = ty_open_regular(path, &st, why);
  if (fd < 0) return *why ? TY_EINVAL : errno == ENOENT ? TY_ENOTFOUND : TY_EIO;
  uint8_t chunk[65536];
  ssize_t n;
  int rc = 0;
  while (rc == 0 && (n = read(fd, chunk, sizeof chunk)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    rc = n < 0 ? TY_EIO : ty_buf_append(out, chunk, (size_t)n);
  }
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

/* On failure errno says why (ENAMETOOLONG for a path past 4095 bytes). */
int ty_mkdir_p(const char *path) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
    errno = ENAMETOOLONG;
    return TY_EINVAL;
  }
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -errno;
    *p = '/';
  }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -errno;
  return 0;
}

uint64_t ty_raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    struct rlimit want = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl.rlim_cur = rl.rlim_max;
  }
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
}

/* ---- UTF-8 ---------------------------------------------------------------- */

size_t ty_utf8_decode(const unsigned char *s, size_t n, uint32_t *out_cp) {
  unsigned c = s[0];
  size_t len;
  uint32_t cp, min;
  if (c < 0x80) {
    if (out_cp) *out_cp = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, cp = c & 0x1F, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, cp = c & 0x0F, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, cp = c & 0x07, min = 0x10000;
  else
    return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  if (out_cp) *out_cp = cp;
  return len;
}

bool ty_utf8_valid(const char *s, size_t *out_bad) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    size_t len = ty_utf8_decode(p + i, n - i, NULL);
    if (len == 0) {
      if (out_bad) *out_bad = i;
      return false;
    }
    i += len;
  }
  return true;
}

static bool is_control(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

bool ty_text_needs_escape(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    uint32_t cp = 0;
    size_t len = ty_utf8_decode(p + i, n - i, &cp);
    if (len == 0 || is_control(cp)) return true;
    i += len;
  }
  return false;
}

/* One escape for the byte c: "\n", "\r", "\t" or "\xNN". */
static size_t escape_byte(unsigned char c, char esc[5]) {
  if (c == '\n' || c == '\r' || c == '\t') {
    esc[0] = '\\';
    esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
    return 2;
  }
  static const char hex[] = "0123456789abcdef";
  esc[0] = '\\';
  esc[1] = 'x';
  esc[2] = hex[c >> 4];
  esc[3] = hex[c & 0xF];
  return 4;
}

size_t ty_escape_text(const char *s, size_t n, char *out, size_t out_len) {
  const unsigned char *p = (const unsigned char *)s;
  size_t w = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp = 0;
    size_t len = ty_utf8_decode(p + i, n - i, &cp);
    char esc[5];
    const char *piece = s + i;
    size_t plen = len;
    if (len == 0 || is_control(cp)) { /* a C1 control escapes byte by byte */
      len = 1;
      plen = escape_byte(p[i], esc);
      piece = esc;
    }
    if (w + plen >= out_len) break;
    memcpy(out + w, piece, plen);
    w += plen;
    i += len;
  }
  out[w] = '\0';
  return w;
}
