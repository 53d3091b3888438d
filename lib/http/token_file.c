/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bearer token of a daemon's /metrics (--metrics-token-file): this file
 * owns reading it and refusing a file others could read or change, so a
 * token nobody else knows is the only way past server.c's 401.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/http/http.h"

static bool token_char(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr("!#$%&'*+-.^_`|~/=", c));
}

bool ty_http_token_valid(const char *token) {
  size_t n = token ? strlen(token) : 0;
  if (n == 0 || n >= TY_HTTP_TOKEN_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if (!token_char((unsigned char)token[i])) return false;
  return true;
}

/* Only root or this process's user may own it, and nobody else may read or
 * write it. */
static int check_mode(const char *path, const struct stat *st, char *err, size_t errlen) {
  if (!S_ISREG(st->st_mode))
    return ty_errf(err, errlen, TY_EINVAL, "metrics token file %s is not a regular file", path);
  if (st->st_mode & 007)
    return ty_errf(err, errlen, TY_EPERM,
                   "metrics token file %s is readable or writable by every user (mode %03o): "
                   "chmod 600 it (or 640 with the service's group)",
                   path, (unsigned)(st->st_mode & 0777));
  if (st->st_uid != 0 && st->st_uid != geteuid())
    return ty_errf(err, errlen, TY_EPERM,
                   "metrics token file %s is owned by uid %u, neither root nor this daemon's "
                   "user (uid %u)",
                   path, (unsigned)st->st_uid, (unsigned)geteuid());
  return 0;
}

/* The first line of buf without surrounding blanks, moved to its start. */
static size_t first_line(char *buf, size_t n) {
  buf[n] = '\0';
  char *nl = strpbrk(buf, "\r\n");
  if (nl) *nl = '\0';
  char *s = buf;
  while (*s == ' ' || *s == '\t')
    s++;
  size_t len = strlen(s);
  while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
    len--;
  memmove(buf, s, len);
  buf[len] = '\0';
  return len;
}

int ty_http_read_token_file(const char *path, char *out, size_t len, char *err, size_t errlen) {
  if (!path || !out || len < TY_HTTP_TOKEN_MAX)
    return ty_errf(err, errlen, TY_EINVAL, "metrics token file: no path or no room for it");
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
                          O_NONBLOCK); /* a FIFO: refused, not waited on */
  if (fd < 0)
    return ty_errf(err, errlen, TY_EIO, "metrics token file %s: cannot open it: %s", path,
                   strerror(errno));
  struct stat st;
  int rc = fstat(fd, &st) != 0
               ? ty_errf(err, errlen, TY_EIO, "metrics token file %s: %s", path, strerror(errno))
               : check_mode(path, &st, err, errlen);
  char buf[TY_HTTP_TOKEN_MAX * 2];
  ssize_t n = rc == 0 ? read(fd, buf, sizeof buf - 1) : 0;
  close(fd);
  if (rc != 0) return rc;
  if (n < 0)
    return ty_errf(err, errlen, TY_EIO, "metrics token file %s: cannot read it: %s", path,
                   strerror(errno));
  size_t tl = first_line(buf, (size_t)n);
  if (tl < TY_HTTP_TOKEN_MIN || tl >= TY_HTTP_TOKEN_MAX)
    return ty_errf(err, errlen, TY_EINVAL,
                   "metrics token file %s: the token is %zu characters; it must be %d to %d "
                   "(e.g. openssl rand -hex 32)",
                   path, tl, TY_HTTP_TOKEN_MIN, TY_HTTP_TOKEN_MAX - 1);
  if (!ty_http_token_valid(buf))
    return ty_errf(err, errlen, TY_EINVAL,
                   "metrics token file %s: the token has a character other than A-Z a-z 0-9 "
                   "and !#$%%&'*+-.^_`|~/=",
                   path);
  memcpy(out, buf, tl + 1);
  return 0;
}
