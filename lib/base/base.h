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
#include <stddef.h>
#include <stdint.h>

enum {
  TY_OK = 0,
  TY_EINVAL = -10001,     /* invalid argument or spec field */
  TY_ENOMEM = -10002,     /* allocation failed */
  TY_EPROTO = -10003,     /* malformed frame or message */
  TY_ETOOBIG = -10004,    /* frame larger than the configured maximum */
  TY_EVERSION = -10005,   /* peer speaks another protocol version */
  TY_ENOTFOUND = -10006,  /* unknown job, node, queue or method */
  TY_ETIMEDOUT = -10007,  /* request timed out */
  TY_ECLOSED = -10008,    /* connection closed before the answer came */
  TY_ESTATE = -10009,     /* operation not valid in the object's state */
  TY_ESTORE = -10010,     /* the state database failed */
  TY_EEXIST = -10011,     /* already exists */
  TY_EUNSUPPORTED = -10012, /* op, attribute or dtype not supported */
  TY_EIO = -10013,        /* file or device I/O failed */
  TY_EPERM = -10014,      /* not permitted (credentials, token) */
  TY_EINTERNAL = -10015,  /* a bug: an invariant did not hold */
};

/* Names a negative TY_E* or UV_E* code. Never returns NULL. */
const char *ty_strerror(int code);

/* ---- logging ------------------------------------------------------------
 * One line per call on stderr: "2026-11-23T12:00:00.123Z traind INFO msg".
 * The process name is set once at start-up; the level filters lines below it.
 */
typedef enum { TY_LOG_DEBUG = 0, TY_LOG_INFO, TY_LOG_WARN, TY_LOG_ERROR } ty_log_level;

void ty_log_init(const char *process_name, ty_log_level min_level);
/* Parses "debug", "info", "warn", "error"; returns TY_EINVAL otherwise. */
int ty_log_parse_level(const char *s, ty_log_level *out_level);
void ty_log(ty_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define ty_debug(...) ty_log(TY_LOG_DEBUG, __VA_ARGS__)
#define ty_info(...) ty_log(TY_LOG_INFO, __VA_ARGS__)
#define ty_warn(...) ty_log(TY_LOG_WARN, __VA_ARGS__)
#define ty_error(...) ty_log(TY_LOG_ERROR, __VA_ARGS__)

/* ---- time ---------------------------------------------------------------- */
/* Wall-clock milliseconds since the Unix epoch (for records and events). */
int64_t ty_now_ms(void);
/* Monotonic milliseconds (for timeouts and durations). */
int64_t ty_mono_ms(void);
/* Parses a duration: "90" (seconds), "90s", "15m", "2h", "1d", "1:30:00"
 * (h:m:s) or "30:00" (m:s). Returns TY_EINVAL naming nothing; callers add the
 * field name to their message. */
int ty_parse_duration(const char *s, uint32_t *out_seconds);
/* Parses a size: "512", "64K", "16M", "2G", "1T" (powers of 1024). */
int ty_parse_size(const char *s, uint64_t *out_bytes);

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

/* ---- small helpers ------------------------------------------------------- */
/* strdup that returns NULL only for a NULL argument; aborts on OOM because
 * daemons cannot do anything useful without a few bytes of heap. */
char *ty_strdup(const char *s);
void *ty_xmalloc(size_t n);
void *ty_xcalloc(size_t count, size_t n);
void *ty_xrealloc(void *p, size_t n);
/* Creates a directory and its parents (mode 0755). Existing is fine. */
int ty_mkdir_p(const char *path);

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#endif
#define TY_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
