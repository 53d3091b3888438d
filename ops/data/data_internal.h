/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/data internals shared between idx.c, dataset.c and loader.c.
 */
#ifndef TY_OPS_DATA_DATA_INTERNAL_H
#define TY_OPS_DATA_DATA_INTERNAL_H

#include <stddef.h>

/* snprintf into an optional error buffer (err may be NULL). */
void ty__data_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
