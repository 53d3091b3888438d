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

void ty_log(ty_log_level level, const char *fmt, ...) {
  static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  if (level < log_cfg.min) return;
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000, log_cfg.name, tags[level]);
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
