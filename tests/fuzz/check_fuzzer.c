/* SPDX-License-Identifier: Apache-2.0 */
/* Compiled at configure time to see whether clang's libFuzzer runtime
 * (Debian's libclang-rt-14-dev) is installed. */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return (int)(size && data[0] == 0);
}
