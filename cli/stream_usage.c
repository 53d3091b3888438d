/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The usage texts of `trainctl logs` and `trainctl attach`: trainctl prints
 * them for `trainctl help logs`, trainyard-stream (stream_main.c), which
 * runs the commands, for `trainctl logs --help`. Their own file, so that
 * trainctl has them without the commands' code and its libuv.
 */
#include "cli/cli_internal.h"

const char ty__usage_logs[] =
    "Usage: trainctl logs ID [-f] [--rank R]\n"
    "\n"
    "Prints job ID's output (stdout and stderr of every rank), read from the\n"
    "workers that ran it. With several ranks each line starts with \"R: \".\n"
    "A requeued job (preempted, its node lost, `job requeue`) has run more than\n"
    "once: each run is printed in order, read from the nodes that ran it, under a\n"
    "line \"==> run N (node X, started T) <==\". A rank that ran on one node again\n"
    "has one log there, in which the worker began each later run with its own\n"
    "\"==> run N (node X, started T) <==\" line (in UTC): a run is its part of it.\n"
    "ID is a job id or an array element (42_7).\n"
    "  -f, --follow    keep streaming until the job ends (waits while it is pending;\n"
    "                  a requeued job's earlier runs are printed first, then its\n"
    "                  current run is followed)\n"
    "  -r, --rank R    only rank R, without prefixes\n";

const char ty__usage_attach[] =
    "Usage: trainctl attach ID [--rank R]\n"
    "\n"
    "Shows a running interactive job's output (rlaunch): first its recent output,\n"
    "kept by each worker (the last MiB per rank), then what follows until the job\n"
    "ends. With several ranks each line starts with \"R: \". Older output: trainctl logs.\n"
    "A batch job's or a --command job's output goes to its log instead: attach\n"
    "says so and exits 1; trainctl logs -f ID follows it.\n"
    "ID is a job id or an array element (42_7).\n"
    "  -r, --rank R    only rank R, without prefixes\n";
