/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Line-oriented logging to stderr. The process name and level are set once at
 * start-up, before any thread exists, and only read afterwards; one write(2)
 * per line keeps lines whole when several threads log, and the text is
 * escaped (ty_escape_text) so one call is always one line. When stderr is the
 * systemd journal (JOURNAL_STREAM names the device and inode of fd 2) each
 * line starts with its syslog priority ("<3>" error ... "<7>" debug), which
 * journald parses, and carries no time stamp of ours: the journal keeps one.
 */
#include "lib/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct {
  char name[32];
  ty_log_level min;
  bool journal; /* stderr is the journal: priority prefix, no time stamp */
} log_cfg = {"trainyard", TY_LOG_INFO, false};

/* Whether fd 2 is the journal stream systemd connected it to: JOURNAL_STREAM
 * is "DEV:INODE" of that stream, and a child whose stderr was redirected
 * elsewhere inherits the variable but not the match (sd_journal_stream_fd). */
static bool stderr_is_journal(void) {
  const char *env = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  char end;
  if (!env || sscanf(env, "%llu:%llu%c", &dev, &ino, &end) != 2) return false;
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void ty_log_init(const char *process_name, ty_log_level min_level) {
  snprintf(log_cfg.name, sizeof log_cfg.name, "%s", process_name ? process_name : "trainyard");
  log_cfg.min = min_level;
  log_cfg.journal = stderr_is_journal();
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

/* The journal's priority ("<3>") or our UTC time stamp, whichever leads. */
static int lead(char *out, ty_log_level level) {
  static const char *priorities[] = {"<7>", "<6>", "<4>", "<3>"};
  if (log_cfg.journal) return put(out, priorities[level]);
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  return stamp(out, &tm, ts.tv_nsec / 1000000);
}

void ty_log(ty_log_level level, const char *fmt, ...) {
  static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  if (level < log_cfg.min) return;
  char line[2048];
  int n = lead(line, level);
  n += put(line + n, log_cfg.name);
  line[n++] = ' ';
  n += put(line + n, tags[level]);
  line[n++] = ' ';
  char text[sizeof line];
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  size_t tlen = m < 0 ? 0 : (size_t)m < sizeof text ? (size_t)m : sizeof text - 1;
  /* One call, one line: what a peer chose (a method, a path) is escaped,
   * never a line of its own. */
  size_t len = (size_t)n + ty_escape_text(text, tlen, line + n, sizeof line - (size_t)n - 1);
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
