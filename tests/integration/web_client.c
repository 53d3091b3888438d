/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the web console's integration tests share (see web_client.h): the
 * console's port, raw HTTP requests with the answers' status checked, the
 * shared token, and headless Chromium driven by browser.py.
 */
#include "tests/integration/web_client.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int web_port(const it_cluster *c) {
  char path[400], line[128];
  snprintf(path, sizeof(path), "%s/traind.ports", c->dir);
  FILE *f = fopen(path, "r");
  cr_assert(f, "no %s", path);
  int port = -1;
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, "web=", 4) == 0) port = atoi(line + 4);
  fclose(f);
  cr_assert_gt(port, 0, "traind wrote no web port");
  return port;
}

/* METHOD path with extra header lines; the whole response (head and body). */
char *web_http(int port, const char *method, const char *path, const char *headers) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "web port %d: %s", port,
            strerror(errno));
  char req[2048];
  /* A browser on this machine names it 127.0.0.1 (a test may name another). */
  bool own_host = headers && strncasecmp(headers, "Host:", 5) == 0;
  int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\n%s%sConnection: close\r\n\r\n", method,
                   path, own_host ? "" : "Host: 127.0.0.1\r\n", headers ? headers : "");
  cr_assert_eq(write(fd, req, (size_t)n), n);
  ty_buf b;
  ty_buf_init(&b);
  char chunk[65536];
  ssize_t got;
  while ((got = read(fd, chunk, sizeof(chunk))) > 0)
    ty_buf_append(&b, chunk, (size_t)got);
  close(fd);
  ty_buf_append(&b, "", 1);
  return (char *)b.data;
}

int web_status(const char *resp) {
  return atoi(resp + 9);
}

/* The body of a 200 answer to path (asserting the status). */
char *web_get_ok(int port, const char *path) {
  int status = 0;
  char *body = it_http_get(port, path, &status);
  cr_assert(body && status == 200, "GET %s: %d %s", path, status, body ? body : "");
  return body;
}

void web_expect_error(int port, const char *path, int want, const char *says) {
  int status = 0;
  char *body = it_http_get(port, path, &status);
  cr_assert(body, "GET %s: no answer", path);
  cr_assert_eq(status, want, "GET %s: %d, not %d: %s", path, status, want, body);
  cr_assert(strstr(body, says), "GET %s: the error should say \"%s\": %s", path, says, body);
  free(body);
}

/* GET path with one header line (or none, NULL) expecting `status`; the
 * whole answer, for more checks (the caller frees it). */
char *web_expect_raw(int port, const char *path, const char *header, int status) {
  char hdr[256] = "";
  if (header) snprintf(hdr, sizeof(hdr), "%s\r\n", header);
  char *r = web_http(port, "GET", path, hdr);
  cr_assert_eq(web_status(r), status, "GET %s with \"%s\": %s", path, hdr, r);
  return r;
}

void web_expect_only(int port, const char *path, const char *header, int status) {
  free(web_expect_raw(port, path, header, status));
}

void web_read_token(const it_cluster *c, char *token, size_t cap) {
  char path[400];
  snprintf(path, sizeof(path), "%s/traind/web.token", c->dir);
  FILE *f = fopen(path, "r");
  cr_assert(f, "no %s", path);
  cr_assert(fgets(token, (int)cap, f));
  fclose(f);
  token[strcspn(token, "\n")] = '\0';
  cr_assert_eq(strlen(token), 32, "token \"%s\"", token);
  struct stat st;
  cr_assert(stat(path, &st) == 0 && (st.st_mode & 077) == 0, "web.token is readable by others");
}

/* One worker with 2 CPUs and the console under --auth none: loopback is
 * the operator, as for trainctl. The console's port. */
int web_start_local(it_cluster *c) {
  it_options o = {.auth_none = true,
                  .traind_args = (const char *[]){"--web-listen", "127.0.0.1:0", NULL}};
  it_cluster_start_with(c, 1, 2, &o);
  return web_port(c);
}

/* ---- the browser --------------------------------------------------------------------------- */

bool web_have_chromium(void) {
  const char *bin = getenv("TY_CHROMIUM");
  return bin && *bin;
}

/* The whole file as a heap string. */
static char *read_text(const char *path) {
  FILE *f = fopen(path, "r");
  cr_assert(f, "%s: %s", path, strerror(errno));
  ty_buf b;
  ty_buf_init(&b);
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    ty_buf_append(&b, chunk, n);
  fclose(f);
  ty_buf_append(&b, "", 1);
  return (char *)b.data;
}

pid_t web_browser_start(const char *url, const char *profile, const char *shot, const char *wait,
                        const char *ready, const char *ready_when) {
  const char *art = getenv("TY_ARTIFACTS");
  char out[600], png[600] = "";
  snprintf(out, sizeof(out), "%s.dom", profile);
  unlink(out);
  if (shot && art && *art) snprintf(png, sizeof(png), "%s/web-%s.png", art, shot);
  const char *argv[20] = {"python3", getenv("TY_BROWSER"), url,     out,         "--wait",
                          wait,      "--profile",          profile, "--timeout", "60"};
  size_t n = 10;
  if (png[0]) argv[n++] = "--screenshot", argv[n++] = png;
  if (ready)
    argv[n++] = "--ready", argv[n++] = ready, argv[n++] = "--ready-when", argv[n++] = ready_when;
  argv[n] = NULL;
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    execvp("python3", (char *const *)argv);
    _exit(127);
  }
  return pid;
}

char *web_browser_finish(pid_t pid, const char *profile, const char *wait) {
  int st = 0;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  char out[600];
  snprintf(out, sizeof(out), "%s.dom", profile);
  char *dom = access(out, R_OK) == 0 ? read_text(out) : strdup("(no DOM)");
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the page never had %s (browser.py: %d):\n%s",
            wait, st, dom);
  const char *csp = strstr(dom, "data-csp-violations=");
  cr_assert(!csp, "the page broke its Content-Security-Policy: %.300s", csp);
  return dom;
}

char *web_chromium(const char *url, const char *profile, const char *shot, const char *wait) {
  return web_browser_finish(web_browser_start(url, profile, shot, wait, NULL, NULL), profile, wait);
}

/* The number in attribute `attr="N"` of the element with id `id`, or -1. */
long web_dom_attr(const char *dom, const char *id, const char *attr) {
  char key[64];
  snprintf(key, sizeof(key), "id=\"%s\"", id);
  const char *tag = strstr(dom, key);
  if (!tag) return -1;
  const char *end = strchr(tag, '>');
  snprintf(key, sizeof(key), "%s=\"", attr);
  const char *a = strstr(tag, key);
  return a && a < end ? strtol(a + strlen(key), NULL, 10) : -1;
}
