/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pass's scratch arena: the per-pass arrays (the node index, the
 * reservation's timeline, per-job orders and factors) are carved from one
 * block whose pages stay mapped from one pass to the next.
 *
 * Why: a pass on 10,000 nodes allocated and freed about 1 MB of arrays;
 * glibc gave the freed top of its heap back to the system after each pass
 * and the next pass faulted every page in again (page faults were a sixth
 * of a multifactor pass in the trace simulator).
 *
 * Ownership: a pass owns its arena from ty__arena_open to ty__arena_close.
 * Between passes one block is parked in `parked` (owned by this file, taken
 * and put back with an atomic exchange, so concurrent passes never share
 * one: the second allocates its own). What does not fit the block is
 * malloc'ed on its own (a spill, freed at close), and the block parked at
 * close is sized for everything the pass asked for, so the next pass of the
 * same size fits. At most one block stays parked: memory the size of the
 * largest pass's scratch, held until the process exits.
 *
 * Under AddressSanitizer the block is poisoned except for what is handed
 * out, and every allocation is followed by a poisoned cache line, so an
 * overrun of an arena array is reported as it would be for a malloc'ed one.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sched_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define TY_ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TY_ARENA_ASAN 1
#endif
#endif
#ifdef TY_ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define REDZONE 64
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define REDZONE 0
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ALIGN 64 /* a cache line: blocks start on one, arrays never share one */

struct ty__block {
  size_t cap; /* bytes of data */
  _Alignas(ALIGN) unsigned char data[];
};

struct ty__spill {
  struct ty__spill *next;
  max_align_t data[];
};

static _Atomic(struct ty__block *) parked;

static size_t round_up(size_t n) {
  return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

void ty__arena_open(ty__arena *a) {
  memset(a, 0, sizeof(*a));
  a->block = atomic_exchange(&parked, NULL);
  if (a->block) POISON(a->block->data, a->block->cap);
}

void *ty__arena_alloc(ty__arena *a, size_t asked) {
  size_t n = round_up(asked ? asked : 1) + REDZONE;
  size_t cap = a->block ? a->block->cap : 0;
  void *p;
  if (n <= cap - a->used) { /* used <= cap always */
    p = a->block->data + a->used;
    a->used += n;
    UNPOISON(p, asked);
  } else {
    struct ty__spill *s = malloc(sizeof(*s) + n);
    if (!s) return NULL;
    s->next = a->spills;
    a->spills = s;
    a->spilled += n;
    p = s->data;
  }
  if (a->used + a->spilled > a->need) a->need = a->used + a->spilled;
  return p;
}

void *ty__arena_zalloc(ty__arena *a, size_t n) {
  void *p = ty__arena_alloc(a, n);
  if (p) memset(p, 0, n);
  return p;
}

size_t ty__arena_mark(const ty__arena *a) {
  return a->used;
}

void ty__arena_release(ty__arena *a, size_t mark) {
  if (mark > a->used) return;
  POISON(a->block ? a->block->data + mark : NULL, a->used - mark);
  a->used = mark;
}

/* A block for `need` bytes plus a quarter, to park: the next pass of about
 * this size then fits. NULL when malloc fails (nothing is parked). */
static struct ty__block *block_for(size_t need) {
  size_t cap = round_up(need + need / 4);
  struct ty__block *b = aligned_alloc(ALIGN, sizeof(*b) + cap);
  if (b) b->cap = cap;
  return b;
}

static void block_free(struct ty__block *b) {
  if (b) UNPOISON(b->data, b->cap);
  free(b);
}

void ty__arena_close(ty__arena *a) {
  while (a->spills) {
    struct ty__spill *s = a->spills;
    a->spills = s->next;
    free(s);
  }
  struct ty__block *b = a->block;
  if (!b || b->cap < a->need) {
    block_free(b);
    b = a->need ? block_for(a->need) : NULL;
  }
  if (b) {
    /* Keep the larger of this block and one parked meanwhile. */
    struct ty__block *other = atomic_exchange(&parked, b);
    if (other && other->cap > b->cap) other = atomic_exchange(&parked, other);
    block_free(other);
  }
  memset(a, 0, sizeof(*a));
}
