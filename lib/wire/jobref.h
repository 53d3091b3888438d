/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/wire/jobref.h: job arrays, dependencies and references to jobs, in
 * the syntax Slurm users already type: "--array 0-999:2%10",
 * "--dependency afterok:12:13,singleton", "123_7". The parts of a job spec
 * (wire.h, which includes this) that trainctl parses to refuse a bad value
 * before sending it and traind checks in their structured form
 * (ty_array_check) and formats back for `show`. Ownership and allocation
 * as wire.h says: decoders' strings and arrays are owned by their struct,
 * every function returns TY_ENOMEM rather than abort.
 */
#ifndef TY_LIB_WIRE_JOBREF_H
#define TY_LIB_WIRE_JOBREF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/base.h"

/* A job array (like sbatch --array) is one submission of many elements, each
 * a job of its own with its own id, numbered in task order from the array's
 * id: the element of the k-th task index gets id ARRAY + k. "123" names the
 * array (or a plain job), "123_7" its element of task index 7. */
#define TY_ARRAY_MAX_TASKS 100000  /* elements of one array */
#define TY_ARRAY_MAX_INDEX 9999999 /* largest task index */
#define TY_ARRAY_MAX_RANGES 1000   /* comma-separated parts of one spec */

typedef struct ty_array_range {
  uint32_t first, last, step; /* first <= last, step >= 1 */
} ty_array_range;

/* Job.array: the task indices as ranges, and the cap on elements running at
 * once (0 = none). Absent (n == 0) means the job is not an array. */
typedef struct ty_array_spec {
  ty_array_range *ranges;
  size_t n;
  uint32_t max_running;
  bool given; /* decoded from a Job that carried an ArraySpec, even an empty one */
} ty_array_spec;
void ty_array_spec_close(ty_array_spec *a); /* accepts a zeroed struct */
/* "0-999", "1,3,5-9:2", "0-15%4" (Slurm's --array): TY_EINVAL with err
 * starting with `what` ("--array: \"x\" is not ..."), TY_ENOMEM. */
int ty_array_parse(const char *what, const char *s, ty_array_spec *out, char *err, size_t err_len);
/* Checks ranges (first <= last <= TY_ARRAY_MAX_INDEX, step >= 1, at most
 * TY_ARRAY_MAX_RANGES, at most TY_ARRAY_MAX_TASKS distinct indices); the
 * count of distinct task indices in *out_count. */
int ty_array_check(const char *what, const ty_array_spec *a, uint32_t *out_count, char *err,
                   size_t err_len);
/* The distinct task indices, ascending (malloc'd, *out_n entries). A spec
 * that passed ty_array_check; TY_ENOMEM. */
int ty_array_tasks(const ty_array_spec *a, uint32_t **out, size_t *out_n);
/* "0-999:2%10": the spec in the syntax ty_array_parse reads. */
int ty_array_format(const ty_array_spec *a, ty_buf *out);
/* Sorted task indices folded into "5-7,9,11-999" (squeue's [..] content). */
int ty_array_fold(const uint32_t *tasks, size_t n, ty_buf *out);

/* A job, an array, or one element of an array. */
typedef struct ty_job_ref {
  uint64_t id;
  bool has_task;
  uint32_t task;
} ty_job_ref;
#define TY_JOB_REF_MAX_EXPAND 100000 /* refs one "123_[..]" may name */
/* "123" or "123_7" into *out; "123_[1-5,9]" (task ranges, as --array takes
 * them without %N) into several refs appended to *refs (realloc'd, *n
 * entries). TY_EINVAL with err starting with `what`. */
int ty_job_refs_parse(const char *what, const char *s, ty_job_ref **refs, size_t *n, char *err,
                      size_t err_len);
/* A comma-separated list of such references ("12,13_2,14_[1-3,5]": a
 * comma inside brackets belongs to the elements), appended to *refs; an
 * empty item is refused. With `steps`, sacct's step suffixes (".batch",
 * ".extern", ".N") name their job. */
int ty_job_ref_list_parse(const char *what, const char *s, bool steps, ty_job_ref **refs, size_t *n,
                          char *err, size_t len);
/* "123" or "123_7" (cap >= 32 fits any). */
void ty_job_ref_format(const ty_job_ref *r, char *out, size_t cap);

/* Dependencies (like sbatch --dependency). X(NAME, number, word). */
#define TY_DEP_KIND_MAP(X)                                                                         \
  X(AFTER, 1, "after")           /* once it started (or ended without starting) */                 \
  X(AFTERANY, 2, "afterany")     /* once it ended, however */                                      \
  X(AFTEROK, 3, "afterok")       /* once it COMPLETED; never if it ended otherwise */              \
  X(AFTERNOTOK, 4, "afternotok") /* once it ended other than COMPLETED */                          \
  X(SINGLETON, 5, "singleton")   /* once no earlier job of this user and name is left */

typedef enum ty_dep_kind {
#define TY_DEP_KIND_ENUM_(name, num, word) TY_DEP_##name = num,
  TY_DEP_KIND_MAP(TY_DEP_KIND_ENUM_)
#undef TY_DEP_KIND_ENUM_
} ty_dep_kind;
#define TY_DEP_KIND_MAX 5
const char *ty_dep_kind_name(int kind); /* "afterok"; "?" out of range */

/* One condition: a kind and the job (or array, or element) it waits for
 * (none for singleton). */
typedef struct ty_dep {
  ty_dep_kind kind;
  ty_job_ref job;
} ty_dep;
#define TY_DEP_MAX 256 /* conditions of one job */

/* What becomes of a job whose dependency can never be met. */
typedef enum ty_dep_invalid {
  TY_DEP_INVALID_DEFAULT = 0, /* the controller's --kill-on-invalid-dep */
  TY_DEP_INVALID_KILL = 1,    /* cancel it */
  TY_DEP_INVALID_KEEP = 2,    /* leave it pending with the reason */
} ty_dep_invalid;

/* "afterok:12:13,afterany:7_3,singleton" (all must hold) or
 * "afterok:12?afternotok:13" (any one): conditions appended to *deps
 * (realloc'd), *out_any set for '?'. TY_EINVAL with err starting with
 * `what`; mixing ',' and '?' is refused, as Slurm does. */
int ty_dep_parse(const char *what, const char *s, ty_dep **deps, size_t *n, bool *out_any,
                 char *err, size_t err_len);
/* The syntax ty_dep_parse reads, conditions of one kind joined
 * ("afterok:12:13,singleton"). */
int ty_dep_format(const ty_dep *d, size_t n, bool any, ty_buf *out);

#endif /* TY_LIB_WIRE_JOBREF_H */
