/* SPDX-License-Identifier: Apache-2.0 */
/* .npy files written by the tests (ops/data and ops/train), byte by byte as
 * numpy.save lays them out. */
#ifndef TY_TESTS_OPS_DATA_NPY_FILE_H
#define TY_TESTS_OPS_DATA_NPY_FILE_H

#include <stddef.h>
#include <stdint.h>

/* A .npy image into out: magic, version major.0, the header length, the
 * header text as given (padded with spaces to a multiple of 64 bytes and
 * ended by '\n'), then nbytes of data. out needs 128 + strlen(header) +
 * nbytes bytes. Returns the image's length. */
size_t npy_image(uint8_t *out, int major, const char *header, const void *data, size_t nbytes);
/* Writes a format 1.0 .npy of descr ("<f4") and shape ("(4, 3)") to path. */
void npy_write(const char *path, const char *descr, const char *shape, const void *data,
               size_t nbytes);

#endif
