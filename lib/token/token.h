/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/token: task tokens, the credential that lets a client attach to an
 * interactive task's I/O on a worker (Slurm's step credential is the model).
 *
 * Keys:
 *   - The controller's secret: 32 random bytes created on first start in its
 *     state directory (mode 0600) and never sent anywhere.
 *   - A job's attach key: HMAC-SHA256(secret, "trainyard attach key v1" ||
 *     job_id), sent to the workers that run the job inside LaunchTask. A
 *     worker therefore learns keys only for jobs it runs, and cannot mint
 *     tokens for anyone else's.
 *
 * Token wire format (TY_TOKEN_LEN = 56 bytes, big-endian integers):
 *
 *   +--------+----------+--------+-------------+-------------------------+
 *   | "TYT1" | job_id 8 | rank 4 | expires_ms 8 | HMAC-SHA256(key, bytes  |
 *   |   4    |          |        | (Unix ms)    | 0..23) 32               |
 *   +--------+----------+--------+-------------+-------------------------+
 *
 * The codec is pure (bytes in, verdict out) and compares MACs in constant
 * time. HMAC comes from OpenSSL's libcrypto.
 */
#ifndef TY_LIB_TOKEN_TOKEN_H
#define TY_LIB_TOKEN_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TY_TOKEN_SECRET_LEN 32u
#define TY_TOKEN_KEY_LEN 32u
#define TY_TOKEN_LEN 56u

/* Reads the secret from `path`, creating it (random, mode 0600, written to
 * PATH.tmp then renamed) when it does not exist. TY_EIO with a message naming
 * the file in `err` when it cannot be read or created, or has the wrong size. */
int ty_token_secret_load(const char *path, uint8_t out_secret[TY_TOKEN_SECRET_LEN], char *err,
                         size_t err_len);
/* Derives job_id's attach key from the controller's secret. */
void ty_token_job_key(const uint8_t secret[TY_TOKEN_SECRET_LEN], uint64_t job_id,
                      uint8_t out_key[TY_TOKEN_KEY_LEN]);
/* Writes a token for (job_id, rank) valid until expires_ms (Unix ms). */
void ty_token_sign(const uint8_t key[TY_TOKEN_KEY_LEN], uint64_t job_id, uint32_t rank,
                   int64_t expires_ms, uint8_t out_token[TY_TOKEN_LEN]);
/* Checks a token presented for (job_id, rank) at now_ms. Returns 0, or
 * TY_EPERM with the reason in `why` (may be NULL): missing, malformed, for
 * another job or rank, expired, or a bad signature. */
int ty_token_verify(const uint8_t key[TY_TOKEN_KEY_LEN], const uint8_t *token, size_t len,
                    uint64_t job_id, uint32_t rank, int64_t now_ms, char *why, size_t why_len);

/* ---- web console tokens ----------------------------------------------------
 * A bearer token for one user of the web console: "tyw1." and 32 hex digits
 * (128 random bits). The controller keeps only its SHA-256 (hex) with the
 * uid it acts for, so a copy of the database admits nobody. */
#define TY_TOKEN_WEB_PREFIX "tyw1."
#define TY_TOKEN_WEB_LEN 37u /* prefix + 32 hex digits */
#define TY_TOKEN_WEB_HASH_LEN 64u

/* A fresh token (NUL-terminated); TY_EIO when the kernel gives no randomness. */
int ty_token_web_new(char out[TY_TOKEN_WEB_LEN + 1]);
/* Whether s has the token's shape (prefix, then lowercase hex digits). */
int ty_token_web_check(const char *s);
/* SHA-256 of the token as 64 lowercase hex digits (NUL-terminated). */
void ty_token_web_hash(const char *token, char out[TY_TOKEN_WEB_HASH_LEN + 1]);

#endif
