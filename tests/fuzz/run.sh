#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs a fuzz target built by a custom target (meson's test() takes only
# executables it compiled itself): run.sh TARGET ARGS...
exec "$@"
