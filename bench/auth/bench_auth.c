/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cost of one credential (issue 12): ty_auth_sign plus ty_auth_verify
 * for a 1 KiB request, with MUNGE (munged at $TRAINYARD_MUNGE_SOCKET, or
 * its default socket) and with a cluster key, one after another on one
 * thread: the latency a request pays. Then the same verifies through a
 * ty_auth_queue on libuv's thread pool: the throughput a daemon's loop
 * sees. Prints a markdown table.
 *
 *   bench_auth [N]     (bench/auth/auth_latency.sh runs it against its munged)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/auth/auth.h"

static double now_s(void) {
  return (double)uv_hrtime() / 1e9;
}

typedef struct cred {
  uint8_t *c;
  size_t n;
} cred;

static void on_done(const ty_auth_done *d, void *ud) {
  int *left = ud;
  if (d->status != 0) fprintf(stderr, "bench_auth: %s\n", d->err);
  (*left)--;
}

/* Verifies n credentials through the queue; returns verifies per second. */
static double queued(ty_auth *a, const cred *cs, int n, const uint8_t *payload) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ty_auth_queue *q = NULL;
  ty_auth_queue_create(&loop, &q);
  int left = n;
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    ty_auth_op op = {.kind = TY_AUTH_OP_VERIFY,
                     .auth = a,
                     .method = "Bench",
                     .payload = payload,
                     .len = 1024,
                     .cred = cs[i].c,
                     .cred_len = cs[i].n};
    ty_auth_queue_submit(q, &op, on_done, &left);
  }
  while (left > 0)
    uv_run(&loop, UV_RUN_ONCE);
  double t = now_s() - t0;
  ty_auth_queue_destroy(q);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return n / t;
}

static int run(const char *label, ty_auth *a, int n) {
  uint8_t payload[1024];
  memset(payload, 'x', sizeof payload);
  cred *cs = calloc((size_t)n, sizeof *cs);
  char err[TY_ERR_LEN];
  ty_auth_id id;
  const char *lbl;
  double sign = 0, verify = 0;
  for (int i = 0; i < n; i++) {
    double t0 = now_s();
    if (ty_auth_sign(a, "Bench", payload, sizeof payload, &cs[i].c, &cs[i].n, err, sizeof err)) {
      fprintf(stderr, "bench_auth: %s: %s\n", label, err);
      return 1;
    }
    double t1 = now_s();
    uint8_t *once = NULL;
    size_t once_n = 0;
    ty_auth_sign(a, "Bench", payload, sizeof payload, &once, &once_n, err, sizeof err);
    double t2 = now_s();
    if (ty_auth_verify(a, "Bench", payload, sizeof payload, once, once_n, &id, &lbl, err,
                       sizeof err)) {
      fprintf(stderr, "bench_auth: %s: %s\n", label, err);
      return 1;
    }
    verify += now_s() - t2;
    sign += t1 - t0;
    free(once);
  }
  double rate = queued(a, cs, n, payload);
  printf("| %s | %.1f | %.1f | %.0f |\n", label, sign / n * 1e6, verify / n * 1e6, rate);
  for (int i = 0; i < n; i++)
    free(cs[i].c);
  free(cs);
  return 0;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  char err[TY_ERR_LEN], keyfile[] = "/tmp/ty-bench-key-XXXXXX";
  int fd = mkstemp(keyfile);
  uint8_t key[64];
  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t)(i * 31 + 7);
  if (fd < 0 || write(fd, key, sizeof key) != (ssize_t)sizeof key) return 1;
  close(fd);
  ty_auth *m = NULL, *k = NULL;
  ty_auth_config mc = {.mode = TY_AUTH_MUNGE, .munge_socket = getenv("TRAINYARD_MUNGE_SOCKET")};
  ty_auth_config kc = {.mode = TY_AUTH_KEY, .key_file = keyfile};
  if (ty_auth_create(&mc, &m, err, sizeof err) || ty_auth_create(&kc, &k, err, sizeof err)) {
    fprintf(stderr, "bench_auth: %s\n", err);
    return 1;
  }
  unlink(keyfile);
  printf("| credential, %d requests of 1 KiB | sign (us) | verify (us) | queued verifies/s |\n", n);
  printf("| --- | --- | --- | --- |\n");
  int rc = run("MUNGE (munged round trips)", m, n) || run("cluster key (HMAC-SHA256)", k, n);
  ty_auth_destroy(m);
  ty_auth_destroy(k);
  return rc;
}
