/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for lib/base: duration and size parsing, the byte buffer, the
 * error table and formatter, the RNG and overflow checks. */
#include <criterion/criterion.h>
#include <getopt.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "lib/base/base.h"

Test(duration, accepts_units_and_clock_forms) {
  uint32_t s = 0;
  cr_assert_eq(ty_parse_duration("90", &s), 0);
  cr_assert_eq(s, 90u);
  cr_assert_eq(ty_parse_duration("15m", &s), 0);
  cr_assert_eq(s, 900u);
  cr_assert_eq(ty_parse_duration("2h", &s), 0);
  cr_assert_eq(s, 7200u);
  cr_assert_eq(ty_parse_duration("1d", &s), 0);
  cr_assert_eq(s, 86400u);
  cr_assert_eq(ty_parse_duration("1:30:00", &s), 0);
  cr_assert_eq(s, 5400u);
  cr_assert_eq(ty_parse_duration("30:05", &s), 0);
  cr_assert_eq(s, 1805u);
}

Test(duration, rejects_garbage) {
  uint32_t s = 0;
  const char *bad[] = {"", "x", "5x", "5mm", "-3", "1:2:3:4", "::", "99999999999"};
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++)
    cr_assert_eq(ty_parse_duration(bad[i], &s), TY_EINVAL, "accepted %s", bad[i]);
}

Test(size, parses_suffixes) {
  uint64_t b = 0;
  cr_assert_eq(ty_parse_size("512", &b), 0);
  cr_assert_eq(b, 512u);
  cr_assert_eq(ty_parse_size("16M", &b), 0);
  cr_assert_eq(b, 16u << 20);
  cr_assert_eq(ty_parse_size("2GiB", &b), 0);
  cr_assert_eq(b, 2ull << 30);
  cr_assert_eq(ty_parse_size("2Q", &b), TY_EINVAL);
  cr_assert_eq(ty_parse_size("G", &b), TY_EINVAL);
}

Test(buf, appends_printf_and_consumes) {
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_buf_printf(&b, "%s-%d", "job", 42), 0);
  cr_assert_eq(b.len, 6u);
  cr_assert_eq(memcmp(b.data, "job-42", 6), 0);
  ty_buf_consume(&b, 4);
  cr_assert_eq(b.len, 2u);
  cr_assert_eq(memcmp(b.data, "42", 2), 0);
  ty_buf_close(&b);
}

/* Texts shorter and longer than the spare room, so both of ty_buf_vprintf's
 * paths (formatted once, formatted again after growing) are taken. */
Test(buf, printf_longer_than_the_spare_room) {
  ty_buf b;
  ty_buf_init(&b);
  char want[2000] = "";
  for (int i = 0; i < 40; i++) {
    char piece[64];
    int n = snprintf(piece, sizeof piece, "%0*d|", i * 3 % 61 + 1, i);
    cr_assert_eq(ty_buf_printf(&b, "%s", piece), 0);
    cr_assert_lt(strlen(want) + (size_t)n, sizeof want);
    strcat(want, piece);
    cr_assert_eq(b.len, strlen(want));
  }
  cr_assert_eq(ty_buf_printf(&b, "%300s", "x"), 0);
  cr_assert_eq(b.len, strlen(want) + 300);
  cr_assert_eq(memcmp(b.data, want, strlen(want)), 0);
  cr_assert_eq(b.data[b.len - 1], 'x');
  ty_buf_close(&b);
}

Test(strerror, names_own_and_libuv_codes) {
  cr_assert_str_eq(ty_strerror(TY_ETOOBIG), "frame exceeds the maximum frame size");
  cr_assert_str_eq(ty_strerror(UV_ECONNREFUSED), "connection refused");
}

Test(errors, words_and_labels_come_from_one_table) {
  cr_assert_str_eq(ty_strerror(TY_EPERM), "permission denied");
  cr_assert_str_eq(ty_error_label(TY_EPERM), "EPERM");
  cr_assert_str_eq(ty_error_label(0), "OK");
  cr_assert_str_eq(ty_error_label(UV_ECONNREFUSED), "ECONNREFUSED");
  cr_assert_str_eq(ty_error_label(-99999), "ERROR");
}

Test(errors, errf_formats_and_returns_the_code) {
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_errf(err, sizeof err, TY_EINVAL, "%s: must be > %d", "batch_size", 0), TY_EINVAL);
  cr_assert_str_eq(err, "batch_size: must be > 0");
  cr_assert_eq(ty_errf(NULL, 0, TY_EIO, "ignored"), TY_EIO);
  char tiny[4];
  ty_errf(tiny, sizeof tiny, TY_EINVAL, "truncated");
  cr_assert_str_eq(tiny, "tru");
}

Test(rng, splitmix_is_counter_based_and_deterministic) {
  ty_rng a = ty_rng_make(42), b = ty_rng_make(42);
  uint64_t first = ty_rng_next(&a);
  cr_assert_eq(first, ty_rng_next(&b));
  cr_assert_eq(first, ty_mix64(42 + TY_GOLDEN_GAMMA));
  cr_assert_neq(ty_mix2(1, 2), ty_mix2(1, 3));
  for (int i = 0; i < 1000; i++) {
    float u = ty_rng_uniform(&a);
    cr_assert(u >= 0.0f && u < 1.0f);
  }
}

Test(alloc, mul_overflow_is_detected) {
  size_t out = 0;
  cr_assert(!ty_mul_overflow(1000, 1000, &out));
  cr_assert_eq(out, 1000000u);
  cr_assert(ty_mul_overflow(SIZE_MAX / 2, 3, &out));
}

Test(parse, hostport) {
  char host[16];
  int port = 0;
  cr_assert_eq(ty_parse_hostport("127.0.0.1:7810", host, sizeof host, &port), 0);
  cr_assert_str_eq(host, "127.0.0.1");
  cr_assert_eq(port, 7810);
  cr_assert_eq(ty_parse_hostport("h:0", host, sizeof host, &port), 0);
  cr_assert_eq(ty_parse_hostport("localhost", host, sizeof host, &port), TY_EINVAL);
  cr_assert_eq(ty_parse_hostport(":1", host, sizeof host, &port), TY_EINVAL);
  cr_assert_eq(ty_parse_hostport("h:70000", host, sizeof host, &port), TY_EINVAL);
  cr_assert_eq(ty_parse_hostport("h:x", host, sizeof host, &port), TY_EINVAL);
  cr_assert_eq(ty_parse_hostport("h:", host, sizeof host, &port), TY_EINVAL);
  cr_assert_eq(ty_parse_hostport("a-very-long-host-name:1", host, sizeof host, &port), TY_EINVAL);
}

/* ---- ty_opts: the one option style ---------------------------------------- */

static const struct option test_opts[] = {{"gpus", required_argument, NULL, 256},
                                          {"json", no_argument, NULL, 257},
                                          {"rank", required_argument, NULL, 'r'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};

/* Parses args; writes "id[=value]" or "@positional" per item into out,
 * space-separated; returns the last result (0 at the end, or TY_EINVAL). */
static int run_opts(const char *const *args, bool stop_at_first, char *out, size_t cap, char *err,
                    size_t err_len) {
  int argc = 0;
  while (args[argc])
    argc++;
  ty_opts o;
  cr_assert_eq(ty_opts_init(&o, argc, (char *const *)args, "r:h", test_opts), 0);
  out[0] = '\0';
  int id;
  const char *v;
  while ((id = ty_opts_next(&o, &v, err, err_len)) != TY_OPT_END && id != TY_EINVAL) {
    size_t n = strlen(out);
    if (id == TY_OPT_POSITIONAL)
      snprintf(out + n, cap - n, "@%s ", v);
    else
      snprintf(out + n, cap - n, "%d%s%s ", id, v ? "=" : "", v ? v : "");
    if (id == TY_OPT_POSITIONAL && stop_at_first) ty_opts_stop(&o);
  }
  ty_opts_close(&o);
  return id == TY_EINVAL ? id : 0;
}

Test(opts, long_short_values_and_positionals) {
  char out[256], err[TY_ERR_LEN] = "";
  cr_assert_eq(run_opts((const char *[]){"a", "--gpus", "2", "--gpus=3", "-r", "1", "-r2", "b",
                                         "--json", "-h", "--", "--json", "-5", NULL},
                        false, out, sizeof out, err, sizeof err),
               0, "%s", err);
  cr_assert_str_eq(out, "@a 256=2 256=3 114=1 114=2 @b 257 104 @--json @-5 ");
  /* A negative number is an argument, also before "--". */
  cr_assert_eq(
      run_opts((const char *[]){"-5", "--json", NULL}, false, out, sizeof out, err, sizeof err), 0);
  cr_assert_str_eq(out, "@-5 257 ");
  /* A command to run: its own options stay its own. */
  cr_assert_eq(run_opts((const char *[]){"--json", "python", "--gpus", "-h", NULL}, true, out,
                        sizeof out, err, sizeof err),
               0);
  cr_assert_str_eq(out, "257 @python @--gpus @-h ");
}

static void opts_reject(const char *const *args, const char *want) {
  char out[256], err[TY_ERR_LEN] = "";
  cr_assert_eq(run_opts(args, false, out, sizeof out, err, sizeof err), TY_EINVAL, "[%s] accepted",
               want);
  cr_assert_str_eq(err, want);
}

Test(opts, rejections_name_the_option) {
  opts_reject((const char *[]){"--gpu", "2", NULL}, "unknown option --gpu"); /* no abbreviations */
  opts_reject((const char *[]){"--bogus=1", NULL}, "unknown option --bogus");
  opts_reject((const char *[]){"--gpus", NULL}, "--gpus needs a value");
  opts_reject((const char *[]){"--json=yes", NULL}, "--json does not take a value");
  opts_reject((const char *[]){"-r", NULL}, "-r needs a value");
  opts_reject((const char *[]){"-x", NULL}, "unknown option -x");
  opts_reject((const char *[]){"-hx", NULL}, "unknown option -x");
  /* a forgotten value: the next option is not taken as it */
  opts_reject((const char *[]){"-r", "--json", NULL},
              "-r needs a value (the next argument, --json, is an option)");
  opts_reject((const char *[]){"--gpus", "--rank=2", NULL},
              "--gpus needs a value (the next argument, --rank=2, is an option)");
  char out[256], err[TY_ERR_LEN] = "";
  cr_assert_eq(run_opts((const char *[]){"-r", "--x", "--gpus", "-h", "--gpus=--json", NULL}, false,
                        out, sizeof out, err, sizeof err),
               0, "%s", err);
  cr_assert_str_eq(out, "114=--x 256=-h 256=--json ", "values that are no option of ours stay");
}

Test(opts, every_parse_starts_over) {
  char out[256], err[TY_ERR_LEN] = "";
  /* A first parse that stops inside "-hx" must not leak into the next. */
  opts_reject((const char *[]){"-hx", NULL}, "unknown option -x");
  cr_assert_eq(run_opts((const char *[]){"-h", NULL}, false, out, sizeof out, err, sizeof err), 0);
  cr_assert_str_eq(out, "104 ");
}

Test(utf8, decode_and_validate) {
  uint32_t cp = 0;
  cr_assert_eq(ty_utf8_decode((const unsigned char *)"\xc3\xa9", 2, &cp), 2u);
  cr_assert_eq(cp, 0xE9u);
  cr_assert_eq(ty_utf8_decode((const unsigned char *)"\xc2\x9b", 2, &cp), 2u);
  cr_assert_eq(cp, 0x9Bu, "C1 controls decode; callers decide what to show");
  cr_assert_eq(ty_utf8_decode((const unsigned char *)"\xc0\xaf", 2, NULL), 0u, "overlong");
  cr_assert_eq(ty_utf8_decode((const unsigned char *)"\xed\xa0\x80", 3, NULL), 0u, "surrogate");
  cr_assert_eq(ty_utf8_decode((const unsigned char *)"\xe2\x9c", 2, NULL), 0u, "truncated");
  size_t bad = 99;
  cr_assert(ty_utf8_valid("caf\xc3\xa9 \xe2\x9c\x93", &bad));
  cr_assert_not(ty_utf8_valid("ab\x80", &bad));
  cr_assert_eq(bad, 2u);
  cr_assert(ty_utf8_valid("", NULL));
}

/* Control bytes and bytes that are not UTF-8 become escapes; valid text,
 * backslashes included, passes as is (escaping twice changes nothing). */
Test(utf8, escape_text_for_logs_and_answers) {
  char out[128];
  const char forged[] = "Zz\n2026-12-07T19:12:00.000Z traind INFO forged\r\t\x01\x7f";
  ty_escape_text(forged, strlen(forged), out, sizeof out);
  cr_assert_str_eq(out, "Zz\\n2026-12-07T19:12:00.000Z traind INFO forged\\r\\t\\x01\\x7f");
  cr_assert_eq(ty_escape_text("\xff\xfe", 2, out, sizeof out), 8u);
  cr_assert_str_eq(out, "\\xff\\xfe");
  cr_assert(ty_utf8_valid(out, NULL));
  ty_escape_text("a\0b", 3, out, sizeof out);
  cr_assert_str_eq(out, "a\\x00b", "a NUL within n is shown, not a cut");
  ty_escape_text("\xc2\x9b[2J", 5, out, sizeof out);
  cr_assert_str_eq(out, "\\xc2\\x9b[2J", "a C1 control is escaped too");
  ty_escape_text("caf\xc3\xa9 C:\\x", 10, out, sizeof out);
  cr_assert_str_eq(out, "caf\xc3\xa9 C:\\x");
  cr_assert_not(ty_text_needs_escape("caf\xc3\xa9 C:\\x", 10));
  cr_assert(ty_text_needs_escape("a\nb", 3));
  cr_assert(ty_text_needs_escape("ab\x80", 3));
  /* Cut before an escape that does not fit, never inside one. */
  cr_assert_eq(ty_escape_text("ab\n", 3, out, 4), 2u);
  cr_assert_str_eq(out, "ab");
  cr_assert_eq(ty_escape_text("\xe2\x9c\x93", 3, out, 3), 0u);
  cr_assert_str_eq(out, "");
}

/* A message quoting what a peer sent is one line, however it is made. */
Test(log, forged_line_stays_in_its_own_line) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  int saved = dup(STDERR_FILENO);
  cr_assert_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
  ty_log_init("tylogtest", TY_LOG_INFO);
  ty_warn("refused %s: unknown method \"%s\"", "x",
          "Zz\n2026-12-07T19:12:00.000Z traind INFO forged-1\xff");
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(p[1]);
  char line[512] = {0};
  ssize_t n = read(p[0], line, sizeof line - 1);
  close(p[0]);
  cr_assert_gt(n, 0);
  cr_assert_eq(strchr(line, '\n'), line + n - 1, "one line: \"%s\"", line);
  cr_assert_not_null(strstr(line, "unknown method \"Zz\\n2026-12-07T19:12:00.000Z traind INFO "
                                  "forged-1\\xff\"\n"),
                     "%s", line);
}

/* The line's prefix (written by hand, not by snprintf): the UTC time to the
 * millisecond, the process name and the level, then the message. */
Test(log, one_line_with_time_name_and_level) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  int saved = dup(STDERR_FILENO);
  cr_assert_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
  ty_log_init("tylogtest", TY_LOG_INFO);
  ty_warn("job %d: %s", 42, "hello");
  ty_debug("not shown");
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(p[1]);
  char line[256] = {0};
  ssize_t n = read(p[0], line, sizeof line - 1);
  close(p[0]);
  cr_assert_gt(n, 0);
  regex_t re;
  cr_assert_eq(regcomp(&re,
                       "^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\."
                       "[0-9]{3}Z tylogtest WARN job 42: hello\n$",
                       REG_EXTENDED),
               0);
  cr_assert_eq(regexec(&re, line, 0, NULL, 0), 0, "\"%s\"", line);
  regfree(&re);
}

/* Logs one warning and one error with stderr a pipe, JOURNAL_STREAM set to
 * the pipe's own "dev:ino" (match) or to another one's, and returns what the
 * pipe got. */
static void log_through_pipe(bool journal_matches, char *out, size_t out_len) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  struct stat st;
  cr_assert_eq(fstat(p[1], &st), 0);
  char env[64];
  snprintf(env, sizeof env, "%llu:%llu", (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino + (journal_matches ? 0 : 1));
  cr_assert_eq(setenv("JOURNAL_STREAM", env, 1), 0);
  int saved = dup(STDERR_FILENO);
  cr_assert_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
  ty_log_init("tylogtest", TY_LOG_DEBUG);
  ty_warn("disk %d%% full", 91);
  ty_error("lost %s", "node3");
  ty_debug("detail");
  ty_info("fine");
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(p[1]);
  unsetenv("JOURNAL_STREAM");
  ty_log_init("tylogtest", TY_LOG_INFO);
  memset(out, 0, out_len);
  size_t got = 0;
  ssize_t n;
  while (got < out_len - 1 && (n = read(p[0], out + got, out_len - 1 - got)) > 0)
    got += (size_t)n;
  close(p[0]);
}

/* On the journal's stream: the syslog priority journald parses, no stamp. */
Test(log, journal_stream_gets_priority_prefix_and_no_time) {
  char got[512];
  log_through_pipe(true, got, sizeof got);
  cr_assert_str_eq(got, "<4>tylogtest WARN disk 91% full\n"
                        "<3>tylogtest ERROR lost node3\n"
                        "<7>tylogtest DEBUG detail\n"
                        "<6>tylogtest INFO fine\n");
}

/* JOURNAL_STREAM inherited from a parent whose journal this stderr is not
 * (a task's log file): the plain line with its time stamp. */
Test(log, other_stream_keeps_the_plain_line) {
  char got[512];
  log_through_pipe(false, got, sizeof got);
  cr_assert_eq(strchr(got, '<'), NULL, "\"%s\"", got);
  regex_t re;
  cr_assert_eq(regcomp(&re, "^20[0-9]{2}-[^ ]+Z tylogtest WARN disk 91% full\n", REG_EXTENDED), 0);
  cr_assert_eq(regexec(&re, got, 0, NULL, 0), 0, "\"%s\"", got);
  regfree(&re);
}

/* ---- hostlists (hostlist.c) ---- */

static void expect_hostlist(const char *const *names, size_t n, const char *want) {
  ty_buf b;
  ty_buf_init(&b);
  ty_hostlist_write(names, n, &b);
  cr_expect_str_eq((const char *)b.data, want);
  ty_buf_close(&b);
}

Test(hostlist, merges_neighbours_that_differ_in_a_trailing_number) {
  static const char *const a[] = {"worker1", "worker2", "worker3", "worker7", "login1"};
  expect_hostlist(a, 5, "worker[1-3,7],login1");
  static const char *const one[] = {"worker1"};
  expect_hostlist(one, 1, "worker1");
  static const char *const plain[] = {"head", "tail"};
  expect_hostlist(plain, 2, "head,tail");
  expect_hostlist(NULL, 0, "");
}

/* Written then read back (hostnames.c) gives the names, in their order. */
Test(hostlist, reads_back_into_the_names) {
  static const char *const names[] = {"gpu07", "gpu08", "login", "gpu10", "x9", "x10", "n3", "n1"};
  size_t count = sizeof names / sizeof *names;
  ty_buf w;
  ty_buf_init(&w);
  ty_hostlist_write(names, count, &w);
  char **back = NULL, err[256];
  size_t n = 0;
  cr_assert_eq(ty_hostnames_parse((const char *)w.data, 1000, &back, &n, err, sizeof err), 0,
               "%s: %s", (const char *)w.data, err);
  cr_assert_eq(n, count, "%s", (const char *)w.data);
  for (size_t i = 0; i < n; i++)
    cr_expect_str_eq(back[i], names[i], "%s", (const char *)w.data);
  ty_hostnames_free(back, n);
  ty_buf_close(&w);
}

Test(hostlist, keeps_the_order_of_the_names) {
  static const char *const a[] = {"n3", "n1", "n2", "m1", "n4"};
  expect_hostlist(a, 5, "n[3,1-2],m1,n4");
}

Test(hostlist, zero_padded_numbers_join_only_their_width) {
  static const char *const a[] = {"gpu08", "gpu09", "gpu10", "gpu100", "gpu9"};
  expect_hostlist(a, 5, "gpu[08-10],gpu[100,9]");
}

Test(hostlist, names_with_brackets_or_commas_stand_alone) {
  static const char *const a[] = {"a1", "b[1]2", "a2", "a3"};
  expect_hostlist(a, 4, "a1,b[1]2,a[2-3]");
}

/* ---- ty_ratelog ------------------------------------------------------------ */

/* A key gets TY_RATELOG_BURST lines per window; the rest are counted and
 * the next line admitted says how many; other keys are not held back, and
 * a flood of new keys forgets the least recently seen, nothing grows. */
Test(ratelog, bursts_per_key_then_counts) {
  static ty_ratelog l;
  uint32_t dropped = 99;
  for (int i = 0; i < TY_RATELOG_BURST; i++) {
    cr_assert(ty_ratelog_admit(&l, "10.0.0.1", 1000, &dropped), "line %d", i);
    cr_assert_eq(dropped, 0u);
  }
  for (int i = 0; i < 5; i++)
    cr_assert_not(ty_ratelog_admit(&l, "10.0.0.1", 1000 + i, &dropped));
  cr_assert(ty_ratelog_admit(&l, "10.0.0.2", 1005, &dropped), "another peer is held back");
  cr_assert(ty_ratelog_admit(&l, "10.0.0.1", 1000 + TY_RATELOG_WINDOW_MS, &dropped));
  cr_assert_eq(dropped, 5u, "the next line says how many were left out");
  char key[32];
  for (int i = 0; i < 3 * TY_RATELOG_KEYS; i++) {
    snprintf(key, sizeof key, "flood-%d", i);
    cr_assert(ty_ratelog_admit(&l, key, 20000 + i, &dropped));
  }
}
