/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whether a date or a time of day the command line names exists, for
 * every parser of one (--since, --until, --begin): 31 February or 25:00
 * is refused naming what is wrong, before mktime would roll it over.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const char *const month_names[] = {"January",   "February", "March",    "April",
                                          "May",       "June",     "July",     "August",
                                          "September", "October",  "November", "December"};

static int days_in_month(int year, int mon) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return mon == 2 && leap ? 29 : days[mon - 1];
}

bool ty_cli_date_exists(int year, int mon, int day, char *why, size_t why_len) {
  if (mon < 1 || mon > 12) {
    snprintf(why, why_len, "there is no month %d (1-12)", mon);
    return false;
  }
  int last = days_in_month(year, mon);
  if (day < 1 || day > last) {
    snprintf(why, why_len, "%s %d has %d days", month_names[mon - 1], year, last);
    return false;
  }
  return true;
}

bool ty_cli_clock_exists(int h, int mi, int sec, char *why, size_t why_len) {
  if (h < 0 || h > 23)
    snprintf(why, why_len, "hour %d is not 0-23", h);
  else if (mi < 0 || mi > 59)
    snprintf(why, why_len, "minute %d is not 0-59", mi);
  else if (sec < 0 || sec > 59)
    snprintf(why, why_len, "second %d is not 0-59", sec);
  else
    return true;
  return false;
}

bool ty_cli_clock_shaped(const char *s) {
  for (int part = 0; part < 3; part++) {
    size_t n = strspn(s, "0123456789");
    if (n == 0) return false;
    s += n;
    if (*s == '\0') return part > 0;
    if (*s++ != ':') return false;
  }
  return false;
}
