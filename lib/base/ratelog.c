/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_ratelog: log lines limited per key (a peer's address), so a peer that
 * floods refused requests cannot fill the disk with one line each: at most
 * TY_RATELOG_BURST lines per key per TY_RATELOG_WINDOW_MS; the lines left
 * out are counted, and the next line admitted for that key says how many.
 * A fixed table of keys (the one seen least recently is forgotten), so
 * floods from many addresses cost no memory.
 */
#include "lib/base/base.h"

#include <stdio.h>
#include <string.h>

static ty_ratelog_slot *slot_of(ty_ratelog *l, const char *key) {
  ty_ratelog_slot *oldest = &l->slots[0];
  for (size_t i = 0; i < TY_RATELOG_KEYS; i++) {
    ty_ratelog_slot *s = &l->slots[i];
    if (s->key[0] && !strncmp(s->key, key, sizeof s->key - 1)) return s;
    if (!s->key[0] || s->seen_ms < oldest->seen_ms) oldest = s;
  }
  memset(oldest, 0, sizeof *oldest);
  snprintf(oldest->key, sizeof oldest->key, "%s", key);
  return oldest;
}

bool ty_ratelog_admit(ty_ratelog *l, const char *key, int64_t now_ms, uint32_t *dropped) {
  ty_ratelog_slot *s = slot_of(l, key);
  s->seen_ms = now_ms;
  if (now_ms - s->window_ms >= TY_RATELOG_WINDOW_MS) s->window_ms = now_ms, s->logged = 0;
  *dropped = 0;
  if (s->logged >= TY_RATELOG_BURST) {
    s->dropped++;
    return false;
  }
  s->logged++;
  *dropped = s->dropped;
  s->dropped = 0;
  return true;
}
