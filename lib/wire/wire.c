/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The wire model's names, rules and helpers (see wire.h). The name tables
 * are generated from the X-macro maps, so a state added to a map has its
 * name, its short form and its parser at once.
 */
#include "lib/wire/wire.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

/* ---- states ----------------------------------------------------------------- */

static const char *const job_states[TY_JOB_STATE_MAX + 1] = {
#define NAME_(name, num, abbrev) [num] = #name,
    TY_JOB_STATE_MAP(NAME_)
#undef NAME_
};
static const char *const job_short[TY_JOB_STATE_MAX + 1] = {
#define SHORT_(name, num, abbrev) [num] = abbrev,
    TY_JOB_STATE_MAP(SHORT_)
#undef SHORT_
};

int ty_limit_rlimit(ty_limit l) {
  static const int res[TY_LIMIT_COUNT] = {
      [TY_LIMIT_CORE] = RLIMIT_CORE, [TY_LIMIT_NOFILE] = RLIMIT_NOFILE,
      [TY_LIMIT_AS] = RLIMIT_AS,     [TY_LIMIT_STACK] = RLIMIT_STACK,
      [TY_LIMIT_DATA] = RLIMIT_DATA, [TY_LIMIT_FSIZE] = RLIMIT_FSIZE,
      [TY_LIMIT_CPU] = RLIMIT_CPU};
  return res[l];
}

const char *ty_job_state_name(int state) {
  if (state < 1 || state > TY_JOB_STATE_MAX) return "UNKNOWN";
  return job_states[state];
}

const char *ty_run_state_name(int state) {
  if (state == TY_RUN_REQUEUED) return "REQUEUED";
  return state >= TY_JOB_COMPLETED && state <= TY_JOB_STATE_MAX ? job_states[state] : "";
}

int ty_job_state_parse(const char *s, int *out_state) {
  char norm[32];
  size_t n = strlen(s);
  if (n == 0 || n >= sizeof norm) return TY_EINVAL;
  for (size_t i = 0; i <= n; i++)
    norm[i] = s[i] == '-' ? '_' : (char)toupper((unsigned char)s[i]);
  for (int st = 1; st <= TY_JOB_STATE_MAX; st++) {
    if (strcmp(norm, job_states[st]) == 0 || strcmp(norm, job_short[st]) == 0) {
      *out_state = st;
      return 0;
    }
  }
  /* The British and American spellings both appear in other schedulers. */
  if (strcmp(norm, "CANCELED") != 0) return TY_EINVAL;
  *out_state = TY_JOB_CANCELLED;
  return 0;
}

bool ty_job_state_terminal(int state) {
  return state == TY_JOB_COMPLETED || state == TY_JOB_FAILED || state == TY_JOB_CANCELLED ||
         state == TY_JOB_TIMEOUT || state == TY_JOB_PREEMPTED || state == TY_JOB_NODE_FAIL ||
         state == TY_JOB_OUT_OF_MEMORY;
}

static const char *const node_states[TY_NODE_STATE_MAX + 1] = {
#define NAME_(name, num) [num] = #name,
    TY_NODE_STATE_MAP(NAME_)
#undef NAME_
};

const char *ty_node_state_name(int state) {
  if (state < 1 || state > TY_NODE_STATE_MAX) return "UNKNOWN";
  return node_states[state];
}

bool ty_task_state_ended(int state) {
  return state == TY_TASK_EXITED || state == TY_TASK_SIGNALED || state == TY_TASK_FAILED_START;
}

/* ---- owned structs ------------------------------------------------------------ */

void ty_wire_strv_free(char **v, size_t n) {
  for (size_t i = 0; v && i < n; i++)
    free(v[i]);
  free(v);
}

void ty_job_spec_close(ty_job_spec *s) {
  if (!s) return;
  free(s->name);
  free(s->queue);
  free(s->user);
  ty_wire_strv_free(s->argv, s->argc);
  ty_wire_strv_free(s->env, s->envc);
  ty_wire_strv_free(s->req_nodes, s->n_req_nodes);
  ty_wire_strv_free(s->exc_nodes, s->n_exc_nodes);
  free(s->cwd);
  free(s->model_path);
  free(s->model_bytes);
  free(s->train_config);
  ty_array_spec_close(&s->array);
  free(s->deps);
  memset(s, 0, sizeof(*s));
}

void ty_task_usage_add(ty_task_usage *a, const ty_task_usage *b) {
  a->cpu_usec += b->cpu_usec;
  a->io_read_bytes += b->io_read_bytes;
  a->io_write_bytes += b->io_write_bytes;
  if (b->mem_peak_bytes > a->mem_peak_bytes) a->mem_peak_bytes = b->mem_peak_bytes;
}

static void free_locations(ty_task_location *ts, size_t n) {
  for (size_t i = 0; ts && i < n; i++) {
    free(ts[i].node);
    free(ts[i].io_addr);
    free(ts[i].token);
  }
  free(ts);
}

void ty_task_locations_close(ty_task_locations *l) {
  if (!l) return;
  free_locations(l->tasks, l->n);
  free_locations(l->earlier, l->n_earlier);
  free(l->reason);
  memset(l, 0, sizeof(*l));
}

void ty_job_watch_event_close(ty_job_watch_event *e) {
  if (!e) return;
  ty_task_locations_close(&e->job);
  memset(e, 0, sizeof(*e));
}

/* ---- graph jobs -------------------------------------------------------------------- */

static const char *const parallelisms[] = {
#define WORD_(name, num, word) [num] = word,
    TY_PARALLELISM_MAP(WORD_)
#undef WORD_
};

const char *ty_parallelism_name(int p) {
  return p >= 0 && p < (int)TY_ARRAY_LEN(parallelisms) ? parallelisms[p] : NULL;
}

int ty_parallelism_parse(const char *s, int *out) {
  for (int p = 0; s && p < (int)TY_ARRAY_LEN(parallelisms); p++)
    if (strcasecmp(s, parallelisms[p]) == 0) {
      *out = p;
      return 0;
    }
  return TY_EINVAL;
}

void ty_graph_check_close(ty_graph_check *c) {
  if (!c) return;
  ty_job_spec_close(&c->job);
  memset(c, 0, sizeof *c);
}

void ty_graph_check_answer_close(ty_graph_check_answer *a) {
  if (!a) return;
  free(a->message);
  free(a->plan);
  memset(a, 0, sizeof *a);
}

/* ---- queues ----------------------------------------------------------------------- */

static const char *const queue_states[] = {
#define NAME_(name, num) [num] = #name,
    TY_QUEUE_STATE_MAP(NAME_)
#undef NAME_
};

const char *ty_queue_state_name(int state) {
  if (state < 1 || state >= (int)TY_ARRAY_LEN(queue_states)) return "UNKNOWN";
  return queue_states[state];
}

int ty_queue_state_parse(const char *s) {
  if (!s) return 0;
  if (strcasecmp(s, "UP") == 0) return TY_QUEUE_OPEN; /* schema 1's only state */
  for (int st = 1; st < (int)TY_ARRAY_LEN(queue_states); st++)
    if (strcasecmp(s, queue_states[st]) == 0) return st;
  return 0;
}

const char *ty_mem_source_name(int source) {
  switch (source) {
  case TY_MEM_QUEUE_DEFAULT:
    return "queue default";
  case TY_MEM_CLUSTER_DEFAULT:
    return "cluster default";
  case TY_MEM_ALL_OF_NODE:
    return "all of the node";
  default:
    return "";
  }
}

void ty_queue_info_close(ty_queue_info *q) {
  if (!q) return;
  free(q->name);
  memset(q, 0, sizeof(*q));
}

static int bad(char *err, size_t len, const char *key, const char *v, const char *want) {
  return ty_errf(err, len, TY_EINVAL, "%.32s: \"%.64s\" is not %s", key, v, want);
}

static int parse_u32(const char *v, uint32_t *out) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno || end == v || *end || v[0] == '-' || n > UINT32_MAX) return TY_EINVAL;
  *out = (uint32_t)n;
  return 0;
}

static int parse_bool(const char *v, bool *out) {
  if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1"))
    *out = true;
  else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0"))
    *out = false;
  else
    return TY_EINVAL;
  return 0;
}

static int set_number(ty_queue_info *q, const char *k, const char *v, const char *what, char *err,
                      size_t len) {
  if (!strcmp(k, "tier")) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < -1000000 || n > 1000000)
      return bad(err, len, what, v, "a whole number between -1000000 and 1000000");
    q->tier = (int32_t)n;
    return 0;
  }
  if (!strcmp(k, "share")) {
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !isfinite(d) || d <= 0) return bad(err, len, what, v, "a number > 0");
    q->share = d;
    return 0;
  }
  uint32_t *field = !strcmp(k, "max_running") ? &q->max_running
                    : !strcmp(k, "max_gpus")  ? &q->max_gpus
                                              : &q->max_gpus_per_user;
  if (parse_u32(v, field)) return bad(err, len, what, v, "a count (0 = no limit)");
  return 0;
}

/* A user or group name as useradd and groupadd take one. */
static bool allow_name_ok(const char *n, size_t len) {
  if (len == 0 || n[0] == '-') return false;
  for (size_t i = 0; i < len; i++)
    if (!isalnum((unsigned char)n[i]) && !strchr("._-", n[i]) && !(n[i] == '$' && i == len - 1))
      return false;
  return true;
}

bool ty_queue_allow_name(const char *list, size_t n, char *buf, size_t buf_len) {
  const char *p = list;
  for (size_t i = 0; i < n && p; i++)
    p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL;
  if (!p || !*p) return false;
  size_t l = strcspn(p, ",");
  snprintf(buf, buf_len, "%.*s", (int)l, p);
  return true;
}

bool ty_queue_allow_has(const char *list, const char *name) {
  char buf[TY_QUEUE_ALLOW_NAME_LEN + 1];
  for (size_t i = 0; ty_queue_allow_name(list, i, buf, sizeof buf); i++)
    if (!strcmp(buf, name)) return true;
  return false;
}

/* allow_groups or allow_users: v checked into out ("" for ALL). */
static int set_allow(char *out, const char *v, const char *what, char *err, size_t len) {
  if (!strcasecmp(v, "ALL") || !v[0]) {
    out[0] = '\0';
    return 0;
  }
  char list[TY_QUEUE_ALLOW_LEN] = "";
  size_t n = 0, w = 0;
  for (const char *p = v;; p += strcspn(p, ",") + 1) {
    size_t l = strcspn(p, ",");
    if (!strncasecmp(p, "ALL", l) && l == 3)
      return ty_errf(err, len, TY_EINVAL,
                     "%.32s: ALL means everyone and cannot be listed with names", what);
    if (l > TY_QUEUE_ALLOW_NAME_LEN || !allow_name_ok(p, l))
      return ty_errf(err, len, TY_EINVAL,
                     "%.32s: \"%.*s\" is not a user or group name (1-%d letters, digits, '.', '_' "
                     "or '-', not starting with '-')",
                     what, (int)(l > 64 ? 64 : l), p, TY_QUEUE_ALLOW_NAME_LEN);
    if (++n > TY_QUEUE_ALLOW_NAMES)
      return ty_errf(err, len, TY_EINVAL, "%.32s: more than %d names", what, TY_QUEUE_ALLOW_NAMES);
    char name[TY_QUEUE_ALLOW_NAME_LEN + 1];
    snprintf(name, sizeof name, "%.*s", (int)l, p);
    if (ty_queue_allow_has(list, name))
      return ty_errf(err, len, TY_EINVAL, "%.32s: \"%s\" is named twice", what, name);
    w += (size_t)snprintf(list + w, sizeof list - w, "%s%s", w ? "," : "", name);
    if (!p[l]) break;
  }
  memcpy(out, list, sizeof list);
  return 0;
}

int ty_queue_set(ty_queue_info *q, const char *k, const char *v, const char *what, char *err,
                 size_t len) {
  if (!what) what = k;
  if (!strcmp(k, "tier") || !strcmp(k, "share") || !strcmp(k, "max_running") ||
      !strcmp(k, "max_gpus") || !strcmp(k, "max_gpus_per_user"))
    return set_number(q, k, v, what, err, len);
  if (!strcmp(k, "preemptible"))
    return parse_bool(v, &q->preemptible) ? bad(err, len, what, v, "true or false") : 0;
  if (!strcmp(k, "state")) {
    int st = ty_queue_state_parse(v);
    if (st == 0 || st == TY_QUEUE_DELETED || !strcasecmp(v, "UP"))
      return bad(err, len, what, v, "open, closed or paused");
    q->state = st;
    return 0;
  }
  if (!strcmp(k, "default_time") || !strcmp(k, "max_time")) {
    /* As Slurm's DefaultTime and MaxTime, and a job's --time: 120 is minutes. */
    uint32_t s;
    int rc = ty_parse_time_limit(what, v, &s, err, len);
    if (rc != 0) return rc;
    *(!strcmp(k, "default_time") ? &q->default_time_s : &q->max_time_s) =
        s == TY_TIME_LIMIT_UNLIMITED ? 0 : s; /* 0: no limit */
    return 0;
  }
  if (!strcmp(k, "default_mem") || !strcmp(k, "max_mem")) {
    uint64_t b;
    if (ty_parse_mem_mb(v, &b))
      return bad(err, len, what, v,
                 "a size (a bare number is megabytes: 4000; or 512M, 16G; 0 = none)");
    *(!strcmp(k, "default_mem") ? &q->default_mem : &q->max_mem) = b;
    return 0;
  }
  if (!strcmp(k, "allow_groups") || !strcmp(k, "allow_users"))
    return set_allow(!strcmp(k, "allow_groups") ? q->allow_groups : q->allow_users, v, what, err,
                     len);
  return ty_errf(err, len, TY_EINVAL,
                 "%.32s: unknown setting (tier, share, max_running, max_gpus, "
                 "max_gpus_per_user, preemptible, state, default_time, max_time, default_mem, "
                 "max_mem, allow_groups, allow_users)",
                 what);
}

int ty_queue_apply(ty_queue_info *q, char *const *settings, size_t n, char *err, size_t len) {
  for (size_t i = 0; i < n; i++) {
    const char *eq = strchr(settings[i], '=');
    char key[64];
    if (!eq || (size_t)(eq - settings[i]) >= sizeof key)
      return ty_errf(err, len, TY_EINVAL, "settings: \"%.64s\" is not key=value", settings[i]);
    memcpy(key, settings[i], (size_t)(eq - settings[i]));
    key[eq - settings[i]] = '\0';
    int rc = ty_queue_set(q, key, eq + 1, NULL, err, len);
    if (rc != 0) return rc;
  }
  if (q->max_time_s && q->default_time_s > q->max_time_s)
    return ty_errf(err, len, TY_EINVAL, "default_time: %u s exceeds max_time %u s",
                   q->default_time_s, q->max_time_s);
  if (q->max_mem && q->default_mem > q->max_mem)
    return ty_errf(err, len, TY_EINVAL, "default_mem: %llu bytes exceeds max_mem %llu bytes",
                   (unsigned long long)q->default_mem, (unsigned long long)q->max_mem);
  return 0;
}

int ty_queue_check_name(const char *name, char *err, size_t len) {
  size_t n = strlen(name);
  if (n == 0) return ty_errf(err, len, TY_EINVAL, "name: a queue name is required");
  if (n > TY_QUEUE_MAX_NAME)
    return ty_errf(err, len, TY_EINVAL, "name: longer than %d bytes", TY_QUEUE_MAX_NAME);
  for (const char *c = name; *c; c++)
    if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.')
      return ty_errf(err, len, TY_EINVAL,
                     "name: \"%.64s\" may hold only letters, digits, '-', '_' and '.'", name);
  return 0;
}

int ty_queue_check_new_name(const char *name, char *err, size_t len) {
  int rc = ty_queue_check_name(name, err, len);
  if (rc == 0 && (name[0] == '-' || name[0] == '.'))
    rc = ty_errf(err, len, TY_EINVAL,
                 "name: \"%.64s\" may not start with '%c' (a queue name starts with a letter, "
                 "a digit or '_': one starting with '-' reads as an option, \".\" and \"..\" "
                 "as paths)",
                 name, name[0]);
  return rc;
}

/* ---- packing and copying ------------------------------------------------------------ */

int ty_wire_pack(const ProtobufCMessage *m, ty_buf *out) {
  size_t n = protobuf_c_message_get_packed_size(m);
  int rc = ty_buf_reserve(out, n ? n : 1);
  if (rc != 0) return rc;
  out->len += protobuf_c_message_pack(m, out->data + out->len);
  return 0;
}

void *ty_wire_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n) {
  return protobuf_c_message_unpack(d, NULL, n, p);
}

void ty_wire_free(void *m) {
  if (m) protobuf_c_message_free_unpacked(m, NULL);
}

struct ty_wire_block {
  struct ty_wire_block *next;
  size_t used, cap;
  max_align_t data[]; /* cap bytes */
};

enum { ARENA_FIRST = 64 * 1024, ARENA_MAX_STEP = 4 * 1024 * 1024 };

static void *arena_alloc(void *ud, size_t size) {
  ty_wire_arena *a = ud;
  size_t align = _Alignof(max_align_t), need = (size + align - 1) / align * align;
  if (need < size) return NULL;
  struct ty_wire_block *b = a->blocks;
  if (!b || b->cap - b->used < need) {
    size_t cap = b ? (b->cap < ARENA_MAX_STEP ? b->cap * 2 : b->cap) : ARENA_FIRST;
    if (cap < need) cap = need;
    if (cap > SIZE_MAX - sizeof *b) return NULL;
    struct ty_wire_block *nb = malloc(sizeof *nb + cap);
    if (!nb) return NULL;
    *nb = (struct ty_wire_block){b, 0, cap};
    a->blocks = b = nb;
  }
  void *p = (unsigned char *)b->data + b->used;
  b->used += need;
  return p;
}

static void arena_free(void *ud, void *p) {
  (void)ud, (void)p; /* freed with the arena */
}

void *ty_wire_unpack_in(ty_wire_arena *a, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                        size_t n) {
  ProtobufCAllocator al = {arena_alloc, arena_free, a};
  return protobuf_c_message_unpack(d, &al, n, p);
}

void ty_wire_arena_close(ty_wire_arena *a) {
  while (a && a->blocks) {
    struct ty_wire_block *b = a->blocks;
    a->blocks = b->next;
    free(b);
  }
}

char *ty_wire_strdup(const char *s) {
  if (!s) s = "";
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

int ty_wire_strv(char *const *v, size_t n, char ***out) {
  char **d = ty_wire_calloc(n, sizeof(*d));
  if (!d) return TY_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    d[i] = ty_wire_strdup(v[i]);
    if (!d[i]) {
      ty_wire_strv_free(d, i);
      return TY_ENOMEM;
    }
  }
  *out = d;
  return 0;
}

int ty_wire_bytes(const void *p, size_t n, uint8_t **out) {
  uint8_t *d = malloc(n ? n : 1);
  if (!d) return TY_ENOMEM;
  if (n) memcpy(d, p, n);
  *out = d;
  return 0;
}

void *ty_wire_calloc(size_t count, size_t size) {
  size_t total;
  if (ty_mul_overflow(count ? count : 1, size, &total)) return NULL;
  return calloc(count ? count : 1, size);
}

/* ---- checkpoint files ------------------------------------------------------ */

/* P's file name less a final ".onnx" (its directory is everything before
 * *out_stem). */
static const char *ckpt_stem(const char *path, size_t *out_len) {
  const char *slash = strrchr(path, '/');
  const char *stem = slash ? slash + 1 : path;
  size_t len = strlen(stem);
  if (len > 5 && strcmp(stem + len - 5, ".onnx") == 0) len -= 5;
  *out_len = len;
  return stem;
}

int ty_ckpt_step_path(const char *path, uint64_t step, char *out, size_t n) {
  size_t len;
  const char *stem = ckpt_stem(path, &len);
  int w = snprintf(out, n, "%.*s.step-%06llu.onnx", (int)(stem - path) + (int)len, path,
                   (unsigned long long)step);
  return w < 0 || (size_t)w >= n ? TY_EINVAL : 0;
}

int ty_ckpt_lock_path(const char *path, char *out, size_t n) {
  size_t len;
  const char *stem = ckpt_stem(path, &len);
  int w = snprintf(out, n, "%.*s.lock", (int)(stem - path) + (int)len, path);
  return w < 0 || (size_t)w >= n ? TY_EINVAL : 0;
}

bool ty_ckpt_step_of(const char *path, const char *name, uint64_t *out_step) {
  size_t len;
  const char *stem = ckpt_stem(path, &len);
  if (strncmp(name, stem, len) != 0 || strncmp(name + len, ".step-", 6) != 0) return false;
  const char *d = name + len + 6, *e = d;
  uint64_t step = 0;
  for (; *e >= '0' && *e <= '9' && e - d < 19; e++)
    step = step * 10 + (uint64_t)(*e - '0');
  if (e - d < 6 || strcmp(e, ".onnx") != 0) return false;
  *out_step = step;
  return true;
}

void ty_checkpoint_list_close(ty_checkpoint_list *l) {
  for (size_t i = 0; l->v && i < l->n; i++)
    free(l->v[i].path);
  free(l->v);
  memset(l, 0, sizeof *l);
}
