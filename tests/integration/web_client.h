/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers of the web console's integration tests (test_web.c: the pages
 * and their JSON; test_web_tokens.c: who may look and act). Each fails the
 * test (a Criterion assertion) when the console does not answer as
 * expected. Strings returned are heap strings the caller frees.
 */
#ifndef TY_TESTS_INTEGRATION_WEB_CLIENT_H
#define TY_TESTS_INTEGRATION_WEB_CLIENT_H

#include "tests/integration/harness.h"

#include <stdbool.h>
#include <sys/types.h>

/* The console's port, from the controller's port file (web=PORT). */
int web_port(const it_cluster *c);
/* One worker with 2 CPUs and the console under --auth none (loopback is
 * the operator, as for trainctl); the console's port. */
int web_start_local(it_cluster *c);
/* METHOD path with extra header lines (each ending in CRLF; may be NULL;
 * "Host: 127.0.0.1" unless they start with a Host of their own): the whole
 * answer, head and body. */
char *web_http(int port, const char *method, const char *path, const char *headers);
/* The status code of a whole answer from web_http. */
int web_status(const char *resp);
/* The body of a 200 answer to GET path. */
char *web_get_ok(int port, const char *path);
/* GET path answers `want` and its error says `says`. */
void web_expect_error(int port, const char *path, int want, const char *says);
/* GET path with one header line (or none, NULL) answers `status`: the
 * whole answer, for more checks. */
char *web_expect_raw(int port, const char *path, const char *header, int status);
/* The same, dropping the answer. */
void web_expect_only(int port, const char *path, const char *header, int status);
/* The shared token traind wrote (web.token, readable by its owner only). */
void web_read_token(const it_cluster *c, char *token, size_t cap);

/* Whether TY_CHROMIUM names a browser (the browser checks skip if not). */
bool web_have_chromium(void);
/* Runs headless Chromium on url (tests/integration/browser.py, in real
 * time over the DevTools protocol) with its profile in `profile` until the
 * JavaScript expression `wait` holds; a screenshot goes to
 * TY_ARTIFACTS/web-SHOT.png (shot NULL: none). With `ready` (a file), the
 * browser creates it once `ready_when` holds, so the test can act on a
 * live page. Returns the browser's pid for web_browser_finish. */
pid_t web_browser_start(const char *url, const char *profile, const char *shot, const char *wait,
                        const char *ready, const char *ready_when);
/* Waits for the browser: the DOM once `wait` held (the test fails if it
 * never did, or if the page did anything its Content-Security-Policy
 * refused). */
char *web_browser_finish(pid_t pid, const char *profile, const char *wait);
/* Both: the DOM of url once `wait` holds. */
char *web_chromium(const char *url, const char *profile, const char *shot, const char *wait);
/* The number in attribute `attr="N"` of the element with id `id`, or -1. */
long web_dom_attr(const char *dom, const char *id, const char *attr);

#endif
