/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Line-oriented logging to stderr. The process name and level are set once at
 * start-up, before any thread exists, and only read afterwards; one write(2)
 * per line keeps lines whole when several threads log.
 */
#include "lib/base/base.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static struct {
  char name[32];
  ty_log_level min;
} log_cfg = {"trainyard", TY_LOG_INFO};

void ty_log_init(const char *process_name, ty_log_level min_level) {
  snprintf(log_cfg.name, sizeof log_cfg.name, "%s", process_name ? process_name : "trainyard");
  log_cfg.min = min_level;
}

int ty_log_parse_level(const char *s, ty_log_level *out_level) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  for (size_t i = 0; i < TY_ARRAY_LEN(names); i++) {
    if (s && strcasecmp(s, names[i]) == 0) {
      *out_level = (ty_log_level)i;
      return 0;
    }
  }
  return TY_EINVAL;
}

/* The line's prefix is written by hand: snprintf's format parsing of it
 * cost as much as the message (the controller logs twice per short job). */
static int digits(char *out, long v, int width) {
  for (int i = width - 1; i >= 0; i--, v /= 10)
    out[i] = (char)('0' + v % 10);
  return width;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ " (a year past 9999 keeps its last 4 digits) */
static int stamp(char *out, const struct tm *tm, long ms) {
  int n = digits(out, tm->tm_year + 1900L, 4);
  out[n++] = '-';
  n += digits(out + n, tm->tm_mon + 1, 2);
  out[n++] = '-';
  n += digits(out + n, tm->tm_mday, 2);
  out[n++] = 'T';
  n += digits(out + n, tm->tm_hour, 2);
  out[n++] = ':';
  n += digits(out + n, tm->tm_min, 2);
  out[n++] = ':';
  n += digits(out + n, tm->tm_sec, 2);
  out[n++] = '.';
  n += digits(out + n, ms, 3);
  out[n++] = 'Z';
  out[n++] = ' ';
  return n;
}

static int put(char *out, const char *s) { /* s: at most 31 bytes */
  size_t n = strlen(s);
  memcpy(out, s, n);
  return (int)n;
}

void ty_log(ty_log_level level, const char *fmt, ...) {
  static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  if (level < log_cfg.min) return;
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = stamp(line, &tm, ts.tv_nsec / 1000000);
  n += put(line + n, log_cfg.name);
  line[n++] = ' ';
  n += put(line + n, tags[level]);
  line[n++] = ' ';
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2) len = sizeof line - 2;
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
