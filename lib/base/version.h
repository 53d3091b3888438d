/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The build's version, the one string every program prints on --version,
 * the worker reports at registration and /metrics exports
 * (trainyard_build_info): `git describe --always --dirty` of the checkout
 * it was built from, or the project version outside a git checkout. And
 * the optional features built in ("cuda mpi onednn systemd", some or none).
 * Defined in the generated version.c (lib/base/version.c.in).
 */
#ifndef TY_BASE_VERSION_H
#define TY_BASE_VERSION_H

#include <stdio.h>

extern const char ty_version[];
extern const char ty_build_features[];

/* --version's text: "PROGRAM VERSION" and a line of the features. */
static inline void ty_version_print(FILE *f, const char *program) {
  fprintf(f, "%s %s\nfeatures: %s\n", program, ty_version,
          ty_build_features[0] ? ty_build_features : "none");
}

#endif
