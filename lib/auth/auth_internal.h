/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by lib/auth's files: the request digest (auth.c) and the
 * MUNGE scheme (munge.c), which auth.c dispatches to. Not for use outside
 * lib/auth.
 */
#ifndef TY_LIB_AUTH_AUTH_INTERNAL_H
#define TY_LIB_AUTH_AUTH_INTERNAL_H

#include "lib/auth/auth.h"

/* libmunge's default socket, named in messages when none was configured. */
#define TY__MUNGE_DEFAULT_SOCKET "/run/munge/munge.socket.2"

/* SHA-256("TYA1" || method || 0 || payload). 0 or TY_ENOMEM. */
int ty__auth_digest(const char *method, const void *payload, size_t len, uint8_t out[32]);

/* munge_encode of the digest through `socket` (blocking): the credential
 * string (without its NUL) in *out, malloc'ed. */
int ty__munge_sign(const char *socket, const uint8_t digest[32], uint8_t **out, size_t *out_len,
                   char *err, size_t err_len);
/* munge_decode, then the payload compared with the digest; fills *out
 * (NSS lookups). Refusals as ty_auth_verify. */
int ty__munge_verify(const char *socket, const uint8_t digest[32], const uint8_t *cred,
                     size_t cred_len, ty_auth_id *out, const char **out_label, char *err,
                     size_t err_len);

#endif
