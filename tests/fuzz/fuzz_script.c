/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for batch scripts (cli/script.c): the bytes as a
 * script's text, its #SBATCH / #TRAINYARD header split into words (every
 * word handed on must be a string), then the command that runs it and the
 * view `trainctl show` takes of that command, which must give the text
 * back. A refused header must say why.
 */
#include "cli/cli.h"
#include "cli/script.h"
#include "lib/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_words(char **words, int n, void *ud, char *err, size_t err_len) {
  (void)err, (void)err_len;
  for (int i = 0; i < n; i++)
    *(size_t *)ud += strlen(words[i]) + 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0'; /* ty_cli_script_read ends the file the same way */
  size_t total = 0;
  char err[TY_ERR_LEN] = "";
  if (ty_cli_script_directives("fuzz.sh", text, count_words, &total, err, sizeof err) != 0 &&
      !err[0]) {
    fprintf(stderr, "a refused script without a reason\n");
    abort();
  }
  ty_job_spec j = {0};
  j.name = ty_strdup("fuzz");
  ty_cli_script_command(&j, text, "out-%j", NULL);
  const char *t, *o, *e;
  char *const *args;
  size_t nargs;
  if (!ty_cli_script_view(&j, &t, &o, &e, &args, &nargs) || strcmp(t, text) != 0 || nargs != 0)
    abort();
  for (size_t i = 0; i < j.argc; i++)
    free(j.argv[i]);
  free(j.argv);
  free(j.name);
  free(text);
  return 0;
}
