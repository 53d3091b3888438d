/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What listings share on the command line: named output fields
 * (`--format id,name,state`, like squeue -O and sacct -o, whose names are
 * taken too: `--format JobID,JobName%20,State,ExitCode`) and points in
 * time (`--since 2h`, `--since 2026-12-01T08:00`, like sacct -S). Pure:
 * the clock comes in as now_ms.
 */
#include "cli/cli.h"
#include "cli/cli_history.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Slurm's names for the same fields (sacct -o, squeue -O), any case, for
 * the listings that have the field. */
static const struct {
  const char *slurm, *name;
} aliases[] = {{"jobid", "id"},          {"jobidraw", "rawid"},  {"jobidraw", "id"},
               {"jobarrayid", "id"},     {"jobname", "name"},    {"username", "user"},
               {"partition", "queue"},   {"nodelist", "nodes"},  {"alloccpus", "cpus"},
               {"ncpus", "cpus"},        {"numcpus", "cpus"},    {"nnodes", "numnodes"},
               {"maxrss", "maxmem"},     {"exitcode", "exit"},   {"submittime", "submit"},
               {"starttime", "start"},   {"endtime", "end"},     {"timeused", "elapsed"},
               {"reasonlist", "reason"}, {"statecompact", "st"}, {"minmemory", "mem"}};

static int field_index(const ty_cli_field *fields, size_t nfields, const char *name, size_t n) {
  for (size_t i = 0; i < nfields; i++)
    if (strlen(fields[i].name) == n && strncasecmp(fields[i].name, name, n) == 0) return (int)i;
  return -1;
}

/* name's field, or a Slurm name's; sacct's width suffix ("JobName%20")
 * and squeue -O's ("JobID:12") dropped. -1 when there is none. */
static int field_find(const ty_cli_field *fields, size_t nfields, const char *name) {
  size_t n = strcspn(name, "%:");
  int i = field_index(fields, nfields, name, n);
  for (size_t k = 0; i < 0 && k < sizeof aliases / sizeof *aliases; k++)
    if (strlen(aliases[k].slurm) == n && strncasecmp(aliases[k].slurm, name, n) == 0)
      i = field_index(fields, nfields, aliases[k].name, strlen(aliases[k].name));
  return i;
}

static int unknown_field(const char *what, const char *tok, const ty_cli_field *fields,
                         size_t nfields, char *err, size_t err_len) {
  ty_buf known;
  ty_buf_init(&known);
  for (size_t i = 0; i < nfields; i++)
    ty_buf_printf(&known, "%s%s", i ? ", " : "", fields[i].name);
  ty_buf_append(&known, "", 1);
  int rc = ty_errf(err, err_len, TY_EINVAL, "%s: unknown field \"%.32s\" (one of: %s)", what, tok,
                   known.data ? (const char *)known.data : "");
  ty_buf_close(&known);
  return rc;
}

int ty_cli_parse_format(const char *what, const char *list, const ty_cli_field *fields,
                        size_t nfields, ty_cli_format *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  if (!list || !*list) return ty_errf(err, err_len, TY_EINVAL, "%s: must name a field", what);
  char *copy = ty_strdup(list), *save = NULL;
  int rc = 0;
  for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
    int i = field_find(fields, nfields, tok);
    if (i < 0) {
      rc = unknown_field(what, tok, fields, nfields, err, err_len);
    } else if (out->n == TY_CLI_MAX_FIELDS) {
      rc = ty_errf(err, err_len, TY_EINVAL, "%s: more than %d fields", what, TY_CLI_MAX_FIELDS);
    } else {
      for (size_t k = 0; k < out->n && rc == 0; k++)
        if (out->idx[k] == i)
          rc = ty_errf(err, err_len, TY_EINVAL, "%s: field \"%s\" is named twice", what, tok);
      out->idx[out->n++] = (uint8_t)i;
    }
  }
  if (rc == 0 && out->n == 0) rc = ty_errf(err, err_len, TY_EINVAL, "%s: must name a field", what);
  free(copy);
  return rc;
}

/* sacct's spelling of its field names, as its header prints them. */
static const char *const sacct_names[] = {
    "JobID",     "JobIDRaw", "JobName", "User",       "Partition", "State",    "ExitCode", "Reason",
    "Submit",    "Start",    "End",     "Elapsed",    "Timelimit", "NodeList", "NNodes",   "NCPUS",
    "AllocCPUS", "ReqMem",   "CPUTime", "CPUTimeRAW", "TotalCPU",  "MaxRSS"};

void ty_cli_slurm_headers(const char *list, const ty_cli_field *fields, size_t nfields,
                          const char **out) {
  memset(out, 0, TY_CLI_MAX_FIELDS * sizeof *out);
  char *copy = ty_strdup(list ? list : ""), *save = NULL;
  size_t k = 0;
  bool sacct = false; /* a name only sacct spells so: the list is sacct's */
  for (char *tok = strtok_r(copy, ",", &save); tok && k < TY_CLI_MAX_FIELDS;
       tok = strtok_r(NULL, ",", &save), k++) {
    size_t n = strcspn(tok, "%:");
    bool native = false;
    for (size_t i = 0; i < nfields && !native; i++)
      native = strlen(fields[i].name) == n && !strncmp(fields[i].name, tok, n);
    for (size_t i = 0; i < TY_ARRAY_LEN(sacct_names) && !out[k]; i++)
      if (strlen(sacct_names[i]) == n && !strncasecmp(sacct_names[i], tok, n))
        out[k] = sacct_names[i];
    sacct = sacct || (out[k] && !native);
  }
  /* "id,state" as Trainyard spells them keeps ID and STATE */
  if (!sacct) memset(out, 0, TY_CLI_MAX_FIELDS * sizeof *out);
  free(copy);
}

void ty_cli_describe_fields(const ty_cli_field *fields, size_t nfields, ty_buf *out) {
  for (size_t i = 0; i < nfields; i++)
    ty_buf_printf(out, "  %-10s %s\n", fields[i].name, fields[i].help);
}

/* ---- points in time ---------------------------------------------------------------------- */

/* What a parser below returns when s is not in its form, for the next to
 * try; 0 is s read, TY_EINVAL s in its form but naming no such time. */
enum { NOT_THIS_FORM = 1 };

/* "HH:MM[:SS]" at the start of s, two digits each: the characters read,
 * or -1 when s does not start so. */
static int read_clock(const char *s, int *h, int *mi, int *sec) {
  int n = 0, m = 0;
  if (sscanf(s, "%2d:%2d%n", h, mi, &n) != 2 || n != 5) return -1;
  if (s[n] != ':') return n;
  if (sscanf(s + n + 1, "%2d%n", sec, &m) != 1 || m != 2) return -1;
  return n + 3;
}

/* y-mo-d h:mi:sec in local time, when that day and time exist (why says
 * what is wrong when not: mktime would roll 31 February to March). */
static int local_ms(int y, int mo, int d, int h, int mi, int sec, int64_t *out_ms, char *why,
                    size_t why_len) {
  if (!ty_cli_date_exists(y, mo, d, why, why_len) || !ty_cli_clock_exists(h, mi, sec, why, why_len))
    return TY_EINVAL;
  struct tm tm = {.tm_year = y - 1900,
                  .tm_mon = mo - 1,
                  .tm_mday = d,
                  .tm_hour = h,
                  .tm_min = mi,
                  .tm_sec = sec,
                  .tm_isdst = -1};
  tm.tm_wday = -1; /* mktime sets it when it succeeds: (time_t)-1 is also a time,
                      1969-12-31 23:59:59 UTC */
  time_t t = mktime(&tm);
  if ((t == (time_t)-1 && tm.tm_wday < 0) || tm.tm_mday != d || tm.tm_mon != mo - 1) {
    snprintf(why, why_len, "no such local time");
    return TY_EINVAL;
  }
  *out_ms = (int64_t)t * 1000;
  return 0;
}

/* "YYYY-MM-DD[(T| )HH:MM[:SS]]" in local time. */
static int parse_date(const char *s, int64_t *out_ms, char *why, size_t why_len) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, n = 0;
  if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return NOT_THIS_FORM;
  const char *rest = s + n;
  if (*rest == 'T' || *rest == ' ') {
    int m = read_clock(rest + 1, &h, &mi, &sec);
    if (m < 0) return NOT_THIS_FORM;
    rest += 1 + m;
  }
  if (*rest) return NOT_THIS_FORM;
  return local_ms(y, mo, d, h, mi, sec, out_ms, why, why_len);
}

/* sacct's MM/DD[/YY], MM.DD[.YY] and MMDD[YY], each with an optional
 * -HH:MM[:SS], in local time. A date without its year is the latest past
 * one, this year's or last year's, as HH:MM reads below. Exactly four or
 * six digits are read as sacct reads them, before the bare seconds a
 * duration would be: a ported "-S 120626" means December 6th. YY is 20YY,
 * as sacct's parse_time reads it (12/31/69 is 2069, not POSIX %y's 1969). */
static int parse_sacct_date(const char *s, int64_t now_ms, int64_t *out_ms, char *why,
                            size_t why_len) {
  int mon = 0, day = 0, yy = -1, n = 0, k = 0, h = 0, mi = 0, sec = 0;
  char sep = 0;
  if (sscanf(s, "%2d%c%2d%n", &mon, &sep, &day, &n) == 3 && (sep == '/' || sep == '.') && n == 5) {
    if (s[n] == sep && (sscanf(s + n + 1, "%2d%n", &yy, &k) != 1 || k != 2)) return NOT_THIS_FORM;
    if (s[n] == sep) n += 3;
  } else {
    while (isdigit((unsigned char)s[n]))
      n++;
    if ((n != 4 && n != 6) || sscanf(s, "%2d%2d", &mon, &day) != 2) return NOT_THIS_FORM;
    if (mon < 1 || mon > 12) return NOT_THIS_FORM; /* "3600": seconds ago */
    if (n == 6) yy = (s[4] - '0') * 10 + (s[5] - '0');
  }
  if (s[n] == '-') {
    int m = read_clock(s + n + 1, &h, &mi, &sec);
    if (m < 0) return NOT_THIS_FORM;
    n += 1 + m;
  }
  if (s[n]) return NOT_THIS_FORM;
  if (yy >= 0) return local_ms(2000 + yy, mon, day, h, mi, sec, out_ms, why, why_len);
  time_t now = (time_t)(now_ms / 1000);
  struct tm today;
  localtime_r(&now, &today);
  /* this year's, or last year's when this year's is to come or is none */
  int rc = local_ms(today.tm_year + 1900, mon, day, h, mi, sec, out_ms, why, why_len);
  if (rc == 0 && *out_ms <= now_ms) return 0;
  char this_year[TY_ERR_LEN];
  snprintf(this_year, sizeof this_year, "%s", rc != 0 ? why : "");
  int last = local_ms(today.tm_year + 1899, mon, day, h, mi, sec, out_ms, why, why_len);
  if (last != 0 && this_year[0]) snprintf(why, why_len, "%s", this_year); /* name this year */
  return last;
}

/* The number at the start of *s, at most 9999, and *s past it. */
static int clock_part(const char **s) {
  int v = 0;
  for (; isdigit((unsigned char)**s); (*s)++)
    v = v > 9999 ? v : v * 10 + (**s - '0');
  if (**s == ':') (*s)++;
  return v;
}

/* sacct's HH:MM[:SS] and its named times (midnight, noon, teatime...):
 * that time of day at its latest past occurrence, today's or yesterday's,
 * as sacct -S reads a time it takes to be in the past. Anything shaped
 * H:MM[:SS] is a time of day, never minutes and seconds ago: "5:99" and
 * "25:00" are refused. */
static int parse_clock_past(const char *s, int64_t now_ms, int64_t *out_ms, char *why,
                            size_t why_len) {
  static const struct {
    const char *word, *clock;
  } words[] = {{"today", "00:00"},     {"midnight", "00:00"}, {"noon", "12:00"},
               {"elevenses", "11:00"}, {"fika", "15:00"},     {"teatime", "16:00"}};
  for (size_t i = 0; i < TY_ARRAY_LEN(words); i++)
    if (!strcasecmp(s, words[i].word)) s = words[i].clock;
  if (!ty_cli_clock_shaped(s)) return NOT_THIS_FORM;
  int h = clock_part(&s), mi = clock_part(&s), sec = clock_part(&s);
  time_t now = (time_t)(now_ms / 1000);
  struct tm tm;
  localtime_r(&now, &tm);
  int rc = local_ms(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, h, mi, sec, out_ms, why, why_len);
  if (rc == 0 && *out_ms > now_ms) *out_ms -= 86400 * 1000LL;
  return rc;
}

/* sacct's now-N[unit]: seconds by default, or its unit words (hours,
 * minutes, days, weeks, as 1hour or 30minutes). */
static bool parse_now_minus(const char *s, int64_t now_ms, int64_t *out_ms) {
  static const struct {
    const char *unit;
    int64_t secs;
  } units[] = {{"", 1},         {"sec", 1},       {"secs", 1},      {"second", 1},
               {"seconds", 1},  {"min", 60},      {"mins", 60},     {"minute", 60},
               {"minutes", 60}, {"hour", 3600},   {"hours", 3600},  {"day", 86400},
               {"days", 86400}, {"week", 604800}, {"weeks", 604800}};
  char *end = NULL;
  if (!isdigit((unsigned char)*s)) return false;
  long long n = strtoll(s, &end, 10);
  for (size_t i = 0; n >= 0 && n < 100LL * 366 * 86400 && i < TY_ARRAY_LEN(units); i++)
    if (!strcasecmp(end, units[i].unit) && n * units[i].secs * 1000 <= now_ms) {
      *out_ms = now_ms - n * units[i].secs * 1000;
      return true;
    }
  return false;
}

/* The forms above that a string names by its shape: 0 read, TY_EINVAL
 * (why says what is wrong) or NOT_THIS_FORM. */
static int parse_shaped(const char *s, int64_t now_ms, int64_t *out_ms, char *why, size_t why_len) {
  int rc = parse_date(s, out_ms, why, why_len);
  if (rc == NOT_THIS_FORM) rc = parse_sacct_date(s, now_ms, out_ms, why, why_len);
  if (rc == NOT_THIS_FORM) rc = parse_clock_past(s, now_ms, out_ms, why, why_len);
  return rc;
}

int ty_cli_parse_time(const char *what, const char *s, int64_t now_ms, int64_t *out_ms, char *err,
                      size_t err_len) {
  uint32_t secs = 0;
  char why[TY_ERR_LEN] = "";
  int rc = s ? parse_shaped(s, now_ms, out_ms, why, sizeof why) : NOT_THIS_FORM;
  if (rc == 0) return 0;
  if (rc != NOT_THIS_FORM)
    return ty_errf(err, err_len, TY_EINVAL, "%s: \"%.64s\" is not a time: %s", what, s, why);
  if (s && s[0] == '@' && isdigit((unsigned char)s[1])) {
    char *end = NULL;
    unsigned long long v = strtoull(s + 1, &end, 10);
    if (*end == '\0' && v < 1ull << 40) {
      *out_ms = (int64_t)v * 1000;
      return 0;
    }
  } else if (s && strcmp(s, "now") == 0) {
    *out_ms = now_ms;
    return 0;
  } else if (s && !strncmp(s, "now-", 4) && parse_now_minus(s + 4, now_ms, out_ms)) {
    return 0;
  } else if (s && *s) {
    const char *dur = strncmp(s, "now-", 4) == 0 ? s + 4 : s;
    if (ty_parse_duration(dur, &secs) == 0 && (int64_t)secs * 1000 <= now_ms) {
      *out_ms = now_ms - (int64_t)secs * 1000;
      return 0;
    }
  }
  return ty_errf(err, err_len, TY_EINVAL,
                 "%s: \"%.64s\" is not a time (now, now-2h, now-2hours, 2h = two hours ago, "
                 "@EPOCH, YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS], MM/DD[/YY], MMDD[YY], "
                 "HH:MM[:SS] = its last past "
                 "occurrence, midnight, noon, teatime)",
                 what, s ? s : "");
}
