/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for ops/plan's device rates: the GPU table, the cost model's
 * options as trainrun, trainctl plan and traind take them (each refusal
 * naming the option), and the CPU rate measured once and cached.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/plan/plan.h"

Test(plan_device, gpu_table) {
  double f;
  uint64_t m;
  cr_assert_eq(ty_plan_gpu_lookup("NVIDIA H100 80GB HBM3", &f, &m), 0);
  cr_assert(f == 67e12 && m == 80ull << 30);
  cr_assert_eq(ty_plan_gpu_lookup("NVIDIA A100-SXM4-40GB", &f, &m), 0);
  cr_assert(f == 19.5e12 && m == 40ull << 30);
  cr_assert_eq(ty_plan_gpu_lookup("NVIDIA A100-SXM4-80GB", &f, &m), 0);
  cr_assert_eq(m, 80ull << 30);
  cr_assert_eq(ty_plan_gpu_lookup("NVIDIA GH200 480GB", &f, &m), 0);
  cr_assert_eq(m, 96ull << 30, "the GH200's GPU memory, not the superchip's");
  cr_assert_eq(ty_plan_gpu_lookup("NVIDIA H200", &f, &m), 0);
  cr_assert_eq(ty_plan_gpu_lookup("Tesla T4", &f, NULL), 0);
  cr_assert_eq(f, 8.1e12);
  cr_assert_eq(ty_plan_gpu_lookup("NVIDIA A10", &f, NULL), 0);
  cr_assert_eq(f, 31.2e12);
  cr_assert_eq(ty_plan_gpu_lookup("Imaginary GPU 9000", &f, &m), TY_ENOTFOUND);
  cr_assert_eq(ty_plan_gpu_lookup(NULL, &f, &m), TY_ENOTFOUND);
}

/* The cost model's options, as trainrun, trainctl plan and traind take them. */
Test(plan_device, options_parse_and_name_the_bad_one) {
  ty_plan_request req;
  ty_plan_request_init(&req);
  ty_plan_cluster *c = &req.cluster;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_plan_cluster_set(c, "device-flops", "--device-flops", "2.5e12", err, sizeof err),
               0);
  cr_assert_float_eq(c->device_flops, 2.5e12, 1);
  cr_assert_eq(ty_plan_cluster_set(c, "device-flops", "--device-flops", "cpu", err, sizeof err), 0);
  cr_assert_eq(c->device_flops, 0.0);
  cr_assert_eq(ty_plan_cluster_set(c, "device-mem", "--device-mem", "2G", err, sizeof err), 0);
  cr_assert_eq(c->device_mem_bytes, 2ull << 30);
  cr_assert_eq(ty_plan_cluster_set(c, "inter-gbps", "--inter-gbps", "25", err, sizeof err), 0);
  cr_assert_float_eq(c->inter_bw, 25e9, 1);
  cr_assert_eq(ty_plan_cluster_set(c, "latency-us", "--latency-us", "3", err, sizeof err), 0);
  cr_assert_float_eq(c->intra_latency_s, 3e-6, 1e-12);
  cr_assert_eq(ty_plan_cluster_set(c, "device-flops", "--plan-device-flops", "0", err, sizeof err),
               TY_EINVAL);
  cr_assert_str_eq(err, "--plan-device-flops: expected a positive rate or \"cpu\", got \"0\"");
  cr_assert_eq(ty_plan_cluster_set(c, "device-mem", "--device-mem", "8X", err, sizeof err),
               TY_EINVAL);
  cr_assert_str_eq(err, "--device-mem: expected a positive byte count, e.g. 8G, got \"8X\"");
  cr_assert_eq(ty_plan_cluster_set(c, "launch-us", "--launch-us", "-1", err, sizeof err),
               TY_EINVAL);
  cr_assert_str_eq(err, "--launch-us: expected a non-negative number, got \"-1\"");
  /* a bandwidth of 0 is no link: refused naming the flag, not later by
   * the cost model naming its field (cluster.intra_bw) */
  cr_assert_eq(ty_plan_cluster_set(c, "intra-gbps", "--plan-intra-gbps", "0", err, sizeof err),
               TY_EINVAL);
  cr_assert_str_eq(err, "--plan-intra-gbps: expected a positive rate in GB/s, got \"0\"");
  cr_assert_eq(ty_plan_cluster_set(c, "inter-gbps", "--inter-gbps", "0.0", err, sizeof err),
               TY_EINVAL);
  cr_assert_str_eq(err, "--inter-gbps: expected a positive rate in GB/s, got \"0.0\"");
  cr_assert_float_eq(c->inter_bw, 25e9, 1, "a refused value changes nothing");
  cr_assert_eq(ty_plan_cluster_set(c, "latency-us", "--latency-us", "0", err, sizeof err), 0,
               "no latency is a model");
  cr_assert_eq(ty_plan_cluster_set(c, "speed", "--speed", "1", err, sizeof err), TY_EINVAL);
  int n = 0, d = 0;
  cr_assert_eq(ty_plan_parse_mesh("--mesh", "2x4", &n, &d, err, sizeof err), 0);
  cr_assert(n == 2 && d == 4);
  cr_assert_eq(ty_plan_parse_mesh("--mesh", "0x4", &n, &d, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err,
                   "--mesh: 0x4 is a mesh of 0 devices; NODES and DEVICES must both be at least 1");
  const char *bad[] = {"4", "x4", "2x", "2x-1", "-2x2", "2x4x1", "", "2y4"};
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    cr_assert_eq(ty_plan_parse_mesh("--mesh", bad[i], &n, &d, err, sizeof err), TY_EINVAL, "%s",
                 bad[i]);
    cr_assert(strstr(err, "expected NODESxDEVICES, e.g. 2x4"), "%s: %s", bad[i], err);
  }
  cr_assert_eq(ty_plan_parse_mesh("--mesh", "2048x1024", &n, &d, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "more than 1048576 devices"), "%s", err);
}

Test(plan_device, cpu_rate_is_measured_once_and_cached) {
  char path[] = "/tmp/ty_plan_cpu_XXXXXX", err[TY_ERR_LEN];
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  double a, b;
  cr_assert_eq(ty_plan_cpu_flops(path, 1, err, sizeof err, &a), 0, "%s", err);
  cr_assert_gt(a, 1e6);
  FILE *f = fopen(path, "r");
  char line[512] = "";
  cr_assert(f && fgets(line, sizeof line, f));
  fclose(f);
  cr_assert(strncmp(line, "trainyard-cpu-flops 1 threads=1 flops=", 38) == 0, "%s", line);
  cr_assert_eq(ty_plan_cpu_flops(path, 1, err, sizeof err, &b), 0);
  cr_assert_eq(a, b, "the second call reads the cache");
  f = fopen(path, "w");
  fputs("trainyard-cpu-flops 1 threads=1 flops=1e99999 cpu=x\n", f);
  fclose(f);
  cr_assert_eq(ty_plan_cpu_flops(path, 1, err, sizeof err, &b), 0);
  cr_assert(b > 1e6 && isfinite(b), "a broken cache is measured again");
  cr_assert_eq(ty_plan_cpu_flops(NULL, -1, err, sizeof err, &b), TY_EINVAL);
  unlink(path);
}

/* The controller's side: it keeps the rate a check measured and reads it
 * back after a restart; another thread count, a missing or a foreign file
 * is not a rate. */
Test(plan_device, a_stored_rate_loads_for_its_thread_count_only) {
  char path[] = "/tmp/ty_plan_cpu_XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  double r = 0;
  cr_assert_eq(ty_plan_cpu_flops_load(path, 2, &r), TY_EINVAL, "an empty file is no rate");
  ty_plan_cpu_flops_store(path, 2, 3.25e10);
  cr_assert_eq(ty_plan_cpu_flops_load(path, 2, &r), 0);
  cr_assert_eq(r, 3.25e10);
  cr_assert_eq(ty_plan_cpu_flops_load(path, 4, &r), TY_EINVAL);
  FILE *f = fopen(path, "w");
  fputs("trainyard-cpu-flops 1 threads=2 flops=3e10 cpu=Another CPU\n", f);
  fclose(f);
  cr_assert_eq(ty_plan_cpu_flops_load(path, 2, &r), TY_EINVAL, "another CPU's rate");
  unlink(path);
  cr_assert_eq(ty_plan_cpu_flops_load(path, 2, &r), TY_ENOTFOUND);
}
