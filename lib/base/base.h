/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/base: the ground every module stands on — error codes, logging, time,
 * and a growable byte buffer. Nothing here allocates behind the caller's back
 * except ty_buf, whose owner frees it with ty_buf_close().
 *
 * Errors: functions return 0 on success or a negative code. libuv's negative
 * errno values (UV_E*) pass through unchanged; Trainyard's own codes live in a
 * range below -10000 so the two never collide. ty_strerror() names both.
 */
#ifndef TY_LIB_BASE_BASE_H
#define TY_LIB_BASE_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X(name, code, words, label): the one table of Trainyard's error codes.
 * The enum, ty_strerror()'s words and ty_error_label()'s metric labels are
 * all generated from it, so they cannot drift apart. Append only: codes
 * travel in RPC replies and are compared by clients. */
#define TY_ERROR_MAP(X)                                                                            \
  X(EINVAL, -10001, "invalid argument") /* or spec field */                                        \
  X(ENOMEM, -10002, "out of memory")                                                               \
  X(EPROTO, -10003, "malformed message") /* frame or message */                                    \
  X(ETOOBIG, -10004, "frame exceeds the maximum frame size")                                       \
  X(EVERSION, -10005, "protocol version mismatch")                                                 \
  X(ENOTFOUND, -10006, "not found") /* job, node, queue... */                                      \
  X(ETIMEDOUT, -10007, "request timed out")                                                        \
  X(ECLOSED, -10008, "connection closed") /* before the answer */                                  \
  X(ESTATE, -10009, "not valid in the current state")                                              \
  X(ESTORE, -10010, "state database error")                                                        \
  X(EEXIST, -10011, "already exists")                                                              \
  X(EUNSUPPORTED, -10012, "unsupported") /* op, attribute, dtype */                                \
  X(EIO, -10013, "I/O error")            /* file or device */                                      \
  X(EPERM, -10014, "permission denied")  /* credentials, token */                                  \
  X(EINTERNAL, -10015, "internal error") /* an invariant failed */

enum {
  TY_OK = 0,
#define TY_ERROR_ENUM_(name, code, words) TY_##name = code,
  TY_ERROR_MAP(TY_ERROR_ENUM_)
#undef TY_ERROR_ENUM_
};

/* Names a negative TY_E* or UV_E* code. Never returns NULL. */
const char *ty_strerror(int code);
/* A short stable label for metrics and logs: "OK" for 0, "EINVAL" for
 * TY_EINVAL, libuv's name ("ECONNREFUSED") for its codes, "ERROR" for
 * anything else. Never NULL. */
const char *ty_error_label(int code);

/* ---- error messages for callers ------------------------------------------
 * Functions that can fail for a reason a user must read take a caller buffer
 * `char *err, size_t err_len` and write one line naming what is wrong (the
 * field, node, file or peer). TY_ERR_LEN is the size every caller uses, so a
 * message is never cut differently on different paths. err may be NULL
 * (the caller wants only the code). */
#define TY_ERR_LEN 512
/* Formats the message into err (when err and err_len are nonzero) and
 * returns code, so a failure path is one line: return ty_errf(err, len,
 * TY_EINVAL, "batch_size: must be > 0"). */
int ty_errf(char *err, size_t err_len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int ty_verrf(char *err, size_t err_len, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* ---- logging ------------------------------------------------------------
 * One line per call on stderr: "2026-11-23T12:00:00.123Z traind INFO msg".
 * The process name is set once at start-up; the level filters lines below it.
 * When ty_log_init finds stderr is the systemd journal (JOURNAL_STREAM matches
 * fd 2) the time stamp gives way to the syslog priority: "<6>traind INFO msg".
 */
typedef enum { TY_LOG_DEBUG = 0, TY_LOG_INFO, TY_LOG_WARN, TY_LOG_ERROR } ty_log_level;

void ty_log_init(const char *process_name, ty_log_level min_level);
/* Parses "debug", "info", "warn", "error"; returns TY_EINVAL otherwise. */
int ty_log_parse_level(const char *s, ty_log_level *out_level);
void ty_log(ty_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ty_debug(...) ty_log(TY_LOG_DEBUG, __VA_ARGS__)
#define ty_info(...) ty_log(TY_LOG_INFO, __VA_ARGS__)
#define ty_warn(...) ty_log(TY_LOG_WARN, __VA_ARGS__)
#define ty_error(...) ty_log(TY_LOG_ERROR, __VA_ARGS__)

/* ---- log lines limited per key (ratelog.c) --------------------------------
 * For lines a peer can cause at will (its refused requests): at most
 * TY_RATELOG_BURST per key per TY_RATELOG_WINDOW_MS. ty_ratelog_admit says
 * whether a line for key may be logged now, and *dropped how many were
 * left out for it since the last one admitted (for that line to say). A
 * zeroed ty_ratelog is ready; one loop thread uses it. */
enum { TY_RATELOG_KEYS = 64, TY_RATELOG_BURST = 10, TY_RATELOG_WINDOW_MS = 10000 };
typedef struct ty_ratelog_slot {
  char key[64];
  int64_t window_ms, seen_ms;
  uint32_t logged, dropped;
} ty_ratelog_slot;
typedef struct ty_ratelog {
  ty_ratelog_slot slots[TY_RATELOG_KEYS];
} ty_ratelog;
bool ty_ratelog_admit(ty_ratelog *l, const char *key, int64_t now_ms, uint32_t *dropped);

/* ---- time ---------------------------------------------------------------- */
/* Wall-clock milliseconds since the Unix epoch (for records and events). */
int64_t ty_now_ms(void);
/* Monotonic milliseconds (for timeouts and durations). */
int64_t ty_mono_ms(void);
/* Monotonic seconds to the nanosecond (rates over intervals under a ms). */
double ty_mono_s(void);
/* Parses a duration: "90" (seconds), "90s", "15m", "2h", "1d", "1:30:00"
 * (h:m:s) or "30:00" (m:s). Returns TY_EINVAL naming nothing; callers add the
 * field name to their message. */
int ty_parse_duration(const char *s, uint32_t *out_seconds);
/* Parses a size: "512", "64K", "16M", "2G", "1T" (powers of 1024). */
int ty_parse_size(const char *s, uint64_t *out_bytes);
/* A memory size as Slurm writes one (--mem, DefMemPerNode): a bare number
 * is megabytes ("4000"), else as ty_parse_size ("512K", "16G"). */
int ty_parse_mem_mb(const char *s, uint64_t *out_bytes);
/* Parses "HOST:PORT" (port 0-65535; the last ':' splits, host not empty)
 * into host (host_len bytes) and *port. TY_EINVAL otherwise. */
int ty_parse_hostport(const char *s, char *host, size_t host_len, int *port);

/* ---- command lines ---------------------------------------------------------
 * One option style for every binary (traind, trainworkerd, trainctl and its
 * subcommands, rlaunch): getopt_long with long options ("--gpus 2" or
 * "--gpus=2") and the short aliases a binary chose, long names matched
 * exactly (an abbreviation is an unknown option, so adding an option never
 * changes what an existing command line means), "--" ending the options,
 * negative numbers taken as arguments ("job priority 7 -5"), and messages
 * that name the option: "unknown option --x", "--gpus needs a value",
 * "--json does not take a value". Positional arguments may come anywhere;
 * a parser that runs a command calls ty_opts_stop at the command's first
 * word so the command's own options stay its own. getopt keeps its state in
 * globals: parse one command line at a time, on one thread. */
struct option;
typedef struct ty_opts {
  int argc;
  char **argv;                   /* owned copy, a placeholder at [0] */
  char shortopts[128];           /* "+:" and the caller's */
  const struct option *longopts; /* borrowed; every val >= 0 */
  int next;                      /* the next argv index */
  bool only_positional;
} ty_opts;
enum { TY_OPT_END = -1, TY_OPT_POSITIONAL = -2 };
/* args are the arguments only (no program name). shortopts as getopt's
 * ("hr:"), or "" for none. TY_ENOMEM or TY_EINVAL (shortopts too long). */
int ty_opts_init(ty_opts *o, int argc, char *const *args, const char *shortopts,
                 const struct option *longopts);
/* The next option's val (*out_arg its value, or NULL), TY_OPT_POSITIONAL
 * (*out_arg the argument), TY_OPT_END, or TY_EINVAL with err naming the
 * option. */
int ty_opts_next(ty_opts *o, const char **out_arg, char *err, size_t err_len);
/* Everything left is positional (the first word of a command to run). */
void ty_opts_stop(ty_opts *o);
void ty_opts_close(ty_opts *o); /* accepts a zeroed struct */

/* ---- growable byte buffer ------------------------------------------------ */
typedef struct ty_buf {
  uint8_t *data; /* owned; NULL until the first append */
  size_t len;
  size_t cap;
} ty_buf;

void ty_buf_init(ty_buf *b);
void ty_buf_close(ty_buf *b);
int ty_buf_reserve(ty_buf *b, size_t extra);
int ty_buf_append(ty_buf *b, const void *data, size_t n);
int ty_buf_printf(ty_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ty_buf_vprintf(ty_buf *b, const char *fmt, va_list ap);
/* Drops the first n bytes, moving the rest to the front. */
void ty_buf_consume(ty_buf *b, size_t n);

/* ---- id maps --------------------------------------------------------------
 * A chained hash map from 64-bit ids to nodes embedded in the caller's
 * structs (container_of gets the struct back). Ids are mostly sequential,
 * so a multiplicative hash spreads them; the table doubles when it holds
 * more nodes than buckets. A zeroed ty_idmap is an empty map. */
typedef struct ty_id_node {
  struct ty_id_node *next;
  uint64_t id;
} ty_id_node;

typedef struct ty_idmap {
  ty_id_node **buckets;
  size_t nbuckets; /* 0 or a power of two */
  size_t count;
  size_t pop_from; /* buckets below this were empty at the last pop */
} ty_idmap;

void ty_idmap_close(ty_idmap *m);             /* frees the buckets, not the nodes */
int ty_idmap_put(ty_idmap *m, ty_id_node *n); /* TY_EEXIST, TY_ENOMEM */
ty_id_node *ty_idmap_get(const ty_idmap *m, uint64_t id);
ty_id_node *ty_idmap_del(ty_idmap *m, uint64_t id); /* NULL when absent */
ty_id_node *ty_idmap_pop(ty_idmap *m);              /* removes any node; NULL when empty */

/* ---- allocation policy ---------------------------------------------------
 * One rule for the whole tree:
 *   - A size that comes from outside the process (a frame, a repeated field
 *     of a request, a model, a tensor, a file) is allocated with malloc and
 *     checked: failure returns TY_ENOMEM to the caller and, through it, a
 *     clear error to the peer. A hostile size must never abort a daemon.
 *   - lib/, scheduler/ and ops/ never abort on allocation failure: every
 *     allocation is checked and reported as TY_ENOMEM, so a library caller
 *     decides what a failure means.
 *   - daemon/, worker/ and cli/ may use the ty_x* helpers below for small
 *     bookkeeping whose size the process itself chose (a connection record,
 *     a job struct, a copied name): without a few hundred bytes of heap a
 *     daemon can do nothing useful, and aborting is clearer than limping.
 * Sizes computed from input are checked for overflow before allocating
 * (ty_mul_overflow). */
/* a * b into *out; true when it overflows size_t. */
static inline bool ty_mul_overflow(size_t a, size_t b, size_t *out) {
  return __builtin_mul_overflow(a, b, out);
}
/* Big-endian integers of n bytes (1..8), for wire formats built by hand
 * (task tokens, cluster-key credentials). */
static inline void ty_put_be(uint8_t *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}
static inline uint64_t ty_get_be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}
/* strdup that returns NULL only for a NULL argument; aborts on OOM (daemon,
 * worker and cli bookkeeping only, see the allocation policy above). */
char *ty_strdup(const char *s);
void *ty_xmalloc(size_t n);
void *ty_xcalloc(size_t count, size_t n);
void *ty_xrealloc(void *p, size_t n);
/* "0.485, 0.456, 0.406" into buf (always terminated when len > 0): at
 * most the first 8 of v[0..n) as %g, then ", ... (N values)"; for messages
 * that quote a list of values from a config. */
void ty_format_floats(const float *v, size_t n, char *buf, size_t len);
/* Creates a directory and its parents (mode 0755). Existing is fine. */
int ty_mkdir_p(const char *path);
/* Opens path for reading without waiting in open() (a FIFO would block
 * until a writer came, and a signal restarts the call), and only if it is
 * a regular file: the fd (O_CLOEXEC; O_NONBLOCK, which does not change
 * reads of a regular file), *st filled. Else -1 and *why: NULL when open
 * or fstat failed (errno says why), else "is a directory" or "not a
 * regular file" for the caller's message. */
struct stat;
int ty_open_regular(const char *path, struct stat *st, const char **why);
/* Reads the regular file at path whole, appended to out, opened with
 * ty_open_regular (a FIFO refused, not waited on): 0; TY_EINVAL with *why
 * "is a directory" or "not a regular file"; TY_ENOTFOUND (no such file)
 * or TY_EIO with errno saying why (*why NULL); TY_ENOMEM. */
int ty_read_regular(const char *path, ty_buf *out, const char **why);
/* Appends names[0..n) to out as one Slurm hostlist expression, order kept
 * ("gpu[01-03],login1"), NUL-terminated (hostlist.c). */
void ty_hostlist_write(const char *const *names, size_t n, ty_buf *out);
/* The names of a Slurm hostlist expression as -w/--nodelist and
 * -x/--exclude take it ("w1,w2", "w[1-4,7]", "n[01-10]", "r[1-2]n[1-3]"),
 * appended to *names (*n of them, the array grown with ty_xrealloc), at
 * most max in all (hostnames.c). TY_EINVAL, with err naming the text, for
 * unbalanced brackets, a reversed range, an empty name, a character other
 * than [A-Za-z0-9._-] or more than max names; nothing is appended then. */
int ty_hostnames_parse(const char *expr, size_t max, char ***names, size_t *n, char *err,
                       size_t err_len);
/* The same for a file of such expressions separated by white space
 * (--nodefile, a -w value with a '/'); a file naming none is refused. */
int ty_hostnames_read_file(const char *path, size_t max, char ***names, size_t *n, char *err,
                           size_t err_len);
/* Frees names[0..n) and the array (accepts NULL). */
void ty_hostnames_free(char **names, size_t n);
/* A node's name as hostlists write it and -w/-x address it:
 * [A-Za-z0-9._-], 1 to 255 bytes (trainworkerd --name, traind's
 * RegisterNode and job specs alike; hostnames.c). */
#define TY_NODE_NAME_RULE "[A-Za-z0-9._-], 1 to 255 bytes"
bool ty_node_name_ok(const char *name);
/* A host others reach this one at: a DNS name ([A-Za-z0-9._-], labels not
 * empty, at most 253 bytes) or an IPv4 or IPv6 address (hostnames.c). */
bool ty_host_ok(const char *host);

/* ---- watched files (filewatch.c) ------------------------------------------
 * Whether any of up to 4 files changed since the last look (one stat each:
 * device, inode, size, mtime, ctime): the freshness test of caches of what
 * the files say. Owner-serialised. */
typedef struct ty_filewatch ty_filewatch;
/* Looks at the files once (a missing file counts as a state). */
ty_filewatch *ty_filewatch_create(const char *const *files, size_t n_files);
void ty_filewatch_destroy(ty_filewatch *w); /* accepts NULL */
/* Looks again: true when any file differs from the previous look. */
bool ty_filewatch_changed(ty_filewatch *w);

/* ---- connection accounting ------------------------------------------------
 * Counters of one listener (an RPC server, the /metrics HTTP server), owned
 * by the daemon and updated by the server on the loop thread; lib/metrics
 * exports them (ty_metrics_add_conn_stats). */
typedef struct ty_conn_stats {
  uint64_t open;             /* connections open now */
  uint64_t accepted;         /* admitted since start */
  uint64_t refused_per_addr; /* over the cap of one peer address */
  uint64_t refused_total;    /* over the cap of the listener */
  uint64_t refused_error;    /* accept failed (EMFILE: out of descriptors) */
  uint64_t closed_handshake; /* nothing whole arrived within the handshake deadline */
  uint64_t closed_idle;      /* idle past the idle timeout */
  uint64_t closed_stalled;   /* the peer stopped reading its answers */
  uint64_t closed_protocol;  /* malformed, oversized or truncated input */
  uint64_t closed_unproven;  /* no credential shown, evicted by a newer one at a cap */
  uint64_t unauthorized;     /* HTTP requests answered 401 (lib/http) */
  bool http;                 /* an HTTP listener: unauthorized is exported, from 0 */
} ty_conn_stats;

/* Raises the soft limit on open descriptors to the hard limit (a daemon
 * serving thousands of connections needs more than the usual 1024) and
 * returns the soft limit now in force. */
uint64_t ty_raise_fd_limit(void);
/* ---- UTF-8 ---------------------------------------------------------------- */
/* Length (1..4) of the well-formed UTF-8 sequence at s, with n bytes left,
 * and its code point in *out_cp (may be NULL); 0 when the bytes there are
 * not one (a stray continuation byte, an overlong form, a surrogate,
 * truncation). */
size_t ty_utf8_decode(const unsigned char *s, size_t n, uint32_t *out_cp);
/* Whether s is well-formed UTF-8; when not, *out_bad (may be NULL) is the
 * offset of the first bad byte. */
bool ty_utf8_valid(const char *s, size_t *out_bad);
/* Whether s[0..n) needs ty_escape_text: a control byte (C0, DEL, C1) or a
 * byte that is not well-formed UTF-8 in it. */
bool ty_text_needs_escape(const char *s, size_t n);
/* s[0..n) as one line of valid UTF-8 for a log line or an answer's message
 * (text a peer chose must not start a forged log line, nor make an
 * Envelope that strict protobuf decoders reject): \n \r \t as such, any
 * other control byte and every byte that is not UTF-8 as \xNN; the rest,
 * backslashes included, as is, so escaping escaped text changes nothing.
 * Written to out (out_len > 0, always terminated), cut before an escape or
 * character that does not fit (4 * n + 1 bytes always fit); its length. */
size_t ty_escape_text(const char *s, size_t n, char *out, size_t out_len);

/* ---- random numbers -------------------------------------------------------
 * The project's one generator: SplitMix64 (Steele, Lea and Flood, 2014), a
 * Weyl counter (state += TY_GOLDEN_GAMMA) passed through a 64-bit finaliser.
 * It is counter based: draw j of the stream keyed by k is
 * ty_mix64(k + (j + 1) * TY_GOLDEN_GAMMA), so a shuffle can compute any draw
 * without the ones before it, and two keys give unrelated streams. Not for
 * secrets (use the OS for those: lib/token). */
#define TY_GOLDEN_GAMMA 0x9E3779B97F4A7C15ull
/* SplitMix64's finaliser: a bijective mix of all 64 bits. */
static inline uint64_t ty_mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
/* A key for stream b of seed a (e.g. seed and epoch): unrelated for each
 * (a, b) pair. */
static inline uint64_t ty_mix2(uint64_t a, uint64_t b) {
  return ty_mix64(a ^ ty_mix64(b + TY_GOLDEN_GAMMA));
}
typedef struct ty_rng {
  uint64_t state;
} ty_rng;
static inline ty_rng ty_rng_make(uint64_t seed) {
  return (ty_rng){.state = seed};
}
static inline uint64_t ty_rng_next(ty_rng *r) {
  return ty_mix64(r->state += TY_GOLDEN_GAMMA);
}
/* Uniform in [0, 1) with 24 random bits (float32's mantissa). */
static inline float ty_rng_uniform(ty_rng *r) {
  return (float)(ty_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif
#define TY_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
