/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Time limits as Slurm writes them (ty_parse_time_limit, wire.h): the one
 * parser behind sbatch-style --time (trainctl submit, rlaunch, job update)
 * and a queue's default_time and max_time (trainctl queue, traind), so a
 * bare number means minutes everywhere.
 */
#include "lib/wire/wire.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* "H", "H:M" or "H:M:S" after a Slurm time's "DAYS-": seconds. */
static int day_clock(const char *s, uint64_t *out) {
  char buf[32];
  size_t colons = 0;
  for (const char *p = s; *p; p++)
    colons += *p == ':';
  if (strlen(s) + 6 >= sizeof buf || colons > 2) return TY_EINVAL;
  /* ty_parse_duration reads "A:B" as minutes:seconds: complete H and H:M. */
  snprintf(buf, sizeof buf, "%s%s", s, colons == 0 ? ":00:00" : colons == 1 ? ":00" : "");
  uint32_t secs;
  if (ty_parse_duration(buf, &secs) != 0) return TY_EINVAL;
  *out = secs;
  return 0;
}

static bool all_digits(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i])) return false;
  return true;
}

/* The leading digits of s times unit, or UINT64_MAX past UINT32_MAX
 * (the caller refuses it): 0000000090 is 90, not a number too long. */
static uint64_t clamped_number(const char *s, uint32_t unit) {
  errno = 0;
  unsigned long long n = strtoull(s, NULL, 10);
  return errno == ERANGE || n > UINT32_MAX ? UINT64_MAX : (uint64_t)n * unit;
}

int ty_parse_time_limit(const char *what, const char *s, uint32_t *out, char *err, size_t err_len) {
  const char *dash = strchr(s, '-');
  uint64_t v = 0;
  uint32_t secs = 0;
  int rc = 0;
  /* Slurm's no limit: UNLIMITED, INFINITE or 0 (the queue's max_time, if any). */
  if (!strcasecmp(s, "UNLIMITED") || !strcasecmp(s, "INFINITE") || !strcmp(s, "0")) {
    *out = TY_TIME_LIMIT_UNLIMITED;
    return 0;
  }
  if (dash) {
    uint64_t clock = 0;
    rc = all_digits(s, (size_t)(dash - s)) && day_clock(dash + 1, &clock) == 0 ? 0 : TY_EINVAL;
    v = clamped_number(s, 86400u);
    v = v == UINT64_MAX ? v : v + clock;
  } else if (all_digits(s, strlen(s))) {
    v = clamped_number(s, 60u); /* Slurm: a bare number is minutes, however written */
  } else {
    rc = ty_parse_duration(s, &secs);
    v = secs;
  }
  if (rc != 0 || v > UINT32_MAX)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: \"%s\" is not a time limit (as Slurm's: 60 = 60 minutes, 30:00, "
                   "1:30:00, 2-12 = 2 days 12 hours, 1-00:30:00, UNLIMITED; or 90s, 15m, 2h, "
                   "1d)",
                   what, s);
  if (v == 0 || v >= TY_TIME_LIMIT_UNLIMITED)
    return ty_errf(err, err_len, TY_EINVAL,
                   "%s: \"%s\" is not a time limit above 0 (UNLIMITED or 0 for none)", what, s);
  *out = (uint32_t)v;
  return 0;
}
