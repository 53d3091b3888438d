/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NVRTC with an on-disk cache: CUDA C -> PTX or cubin.
 *
 * Lookup: the cache file <dir>/ty_<key>.ptx|.cubin, else NVRTC. A cache
 * file is a 32-byte header (magic "TYCUDA1\0", the 16-byte key, the image
 * length as 8 little-endian bytes) and the image; it is used only when it
 * is a regular file of ours that nobody else can write (ops/fusion's
 * ty_kernel_cache_trusts) and its header repeats the key and the length, so
 * a truncated, renamed or foreign file is compiled again and replaced.
 * New files are written under a name unique to this process and call and
 * renamed over the final one, so concurrent ranks sharing a cache see a
 * whole image or none. The workload: one compile per region structure per
 * architecture, ever; every later process reads a few KiB per kernel.
 */
#include "ops/cuda/cuda.h"

#include "lib/base/base.h"
#include "ops/fusion/fusion.h"

#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <nvrtc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HDR_LEN 32
#define MAX_IMAGE ((size_t)64 << 20)

struct ty_cuda_rtc {
  ty_cuda_rtc_opts o;
  char *dir; /* NULL: uncached */
  int dirfd;
  char arch_opt[32];
  ty_kernel_key target; /* what the image depends on besides the source */
  uint64_t seq;
  ty_cuda_rtc_stats st;
};

static const char *const nvrtc_flags[] = {"--std=c++17", "--fmad=false", "-default-device"};

static void open_cache(ty_cuda_rtc *r, const char *given) {
  char path[4096], why[TY_ERR_LEN];
  size_t n = 0;
  if (given) {
    n = (size_t)snprintf(path, sizeof path, "%s", given);
  } else if (ty_kernel_cache_default_dir(path, sizeof path) == 0) {
    n = strlen(path);
    n += (size_t)snprintf(path + n, sizeof path - n, "/cuda");
  } else {
    return;
  }
  if (n >= sizeof path || ty_kernel_cache_open(path, &r->dirfd, why, sizeof why) != 0) return;
  r->dir = strdup(path);
  if (!r->dir) {
    close(r->dirfd);
    r->dirfd = -1;
  }
}

int ty_cuda_rtc_create(const ty_cuda_rtc_opts *opts, ty_cuda_rtc **out_rtc, char *err,
                       size_t err_len) {
  ty_cuda_rtc_opts o = opts ? *opts : (ty_cuda_rtc_opts){0};
  if (o.arch == 0) o.arch = 90;
  if (o.arch < 50 || o.arch >= 200)
    return ty_errf(err, err_len, TY_EINVAL, "cuda arch: %d is not an SM version (e.g. 90)", o.arch);
  ty_cuda_rtc *r = calloc(1, sizeof *r);
  if (!r) return TY_ENOMEM;
  r->o = o;
  r->o.cache_dir = NULL;
  r->dirfd = -1;
  snprintf(r->arch_opt, sizeof r->arch_opt, "--gpu-architecture=%s_%d", o.ptx ? "compute" : "sm",
           o.arch);
  int major = 0, minor = 0;
  nvrtcVersion(&major, &minor);
  ty_kernel_key_init(&r->target);
  ty_kernel_key_str(&r->target, r->arch_opt);
  ty_kernel_key_add(&r->target, &major, sizeof major);
  ty_kernel_key_add(&r->target, &minor, sizeof minor);
  for (size_t i = 0; i < sizeof nvrtc_flags / sizeof *nvrtc_flags; i++)
    ty_kernel_key_str(&r->target, nvrtc_flags[i]);
  if (!o.no_cache) open_cache(r, opts ? opts->cache_dir : NULL);
  *out_rtc = r;
  return 0;
}

void ty_cuda_rtc_destroy(ty_cuda_rtc *r) {
  if (!r) return;
  if (r->dirfd >= 0) close(r->dirfd);
  free(r->dir);
  free(r);
}

const char *ty_cuda_rtc_cache_dir(const ty_cuda_rtc *r) {
  return r->dir;
}

void ty_cuda_rtc_get_stats(const ty_cuda_rtc *r, ty_cuda_rtc_stats *out_stats) {
  *out_stats = r->st;
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void make_header(uint8_t *h, const ty_kernel_key *k, size_t len) {
  memcpy(h, "TYCUDA1", 8);
  put_u64(h + 8, k->h[0]);
  put_u64(h + 16, k->h[1]);
  put_u64(h + 24, len);
}

/* The cached image of key k, or TY_ENOTFOUND (missing or not trusted; a
 * file with the wrong header counts as rejected). */
static int cache_read(ty_cuda_rtc *r, const char *name, const ty_kernel_key *k, void **out_image,
                      size_t *out_len) {
  if (!ty_kernel_cache_trusts(r->dirfd, name)) return TY_ENOTFOUND;
  int fd = openat(r->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return TY_ENOTFOUND;
  uint8_t h[HDR_LEN], want[HDR_LEN];
  uint8_t *img = NULL;
  bool ok = read(fd, h, HDR_LEN) == HDR_LEN;
  size_t len = ok ? (size_t)get_u64(h + 24) : 0;
  make_header(want, k, len);
  ok = ok && len > 0 && len <= MAX_IMAGE && memcmp(h, want, HDR_LEN) == 0;
  if (ok && (img = malloc(len + 1)) != NULL) {
    ok = read(fd, img, len) == (ssize_t)len;
    char extra;
    ok = ok && read(fd, &extra, 1) == 0;
  }
  close(fd);
  if (!ok || !img) {
    free(img);
    if (!ok) r->st.rejected++;
    return ok ? TY_ENOMEM : TY_ENOTFOUND;
  }
  img[len] = 0;
  *out_image = img;
  *out_len = len;
  r->st.disk_hits++;
  return 0;
}

/* Best effort: a failed write only costs a compile next time. */
static void cache_write(ty_cuda_rtc *r, const char *name, const ty_kernel_key *k, const void *img,
                        size_t len) {
  char tmp[128];
  snprintf(tmp, sizeof tmp, "%s.%ld.%llu.tmp", name, (long)getpid(), (unsigned long long)r->seq++);
  int fd = openat(r->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return;
  uint8_t h[HDR_LEN];
  make_header(h, k, len);
  bool ok = write(fd, h, HDR_LEN) == HDR_LEN && write(fd, img, len) == (ssize_t)len;
  ok = close(fd) == 0 && ok;
  if (!ok || renameat(r->dirfd, tmp, r->dirfd, name) != 0) unlinkat(r->dirfd, tmp, 0);
}

/* NVRTC's log, first lines, into err. */
static int compile_error(nvrtcProgram prog, nvrtcResult res, const char *what, char *err,
                         size_t err_len) {
  size_t n = 0;
  char log[TY_ERR_LEN] = "";
  if (nvrtcGetProgramLogSize(prog, &n) == NVRTC_SUCCESS && n > 1) {
    char *full = malloc(n);
    if (full && nvrtcGetProgramLog(prog, full) == NVRTC_SUCCESS)
      snprintf(log, sizeof log, "%s", full);
    free(full);
  }
  return ty_errf(err, err_len, TY_EINVAL, "NVRTC: %s: %s: %s", what, nvrtcGetErrorString(res), log);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_nvrtc(ty_cuda_rtc *r, const char *src, const char *what, void **out_image,
                     size_t *out_len, char *err, size_t err_len) {
  nvrtcProgram prog;
  nvrtcResult res = nvrtcCreateProgram(&prog, src, what, 0, NULL, NULL);
  if (res != NVRTC_SUCCESS)
    return ty_errf(err, err_len, TY_ENOMEM, "NVRTC: %s: %s", what, nvrtcGetErrorString(res));
  const char *opts[4] = {r->arch_opt, nvrtc_flags[0], nvrtc_flags[1], nvrtc_flags[2]};
  double t0 = now_s();
  res = nvrtcCompileProgram(prog, 4, opts);
  r->st.compile_s += now_s() - t0;
  int rc = 0;
  size_t len = 0;
  if (res != NVRTC_SUCCESS) {
    r->st.failures++;
    rc = compile_error(prog, res, what, err, err_len);
  } else {
    res = r->o.ptx ? nvrtcGetPTXSize(prog, &len) : nvrtcGetCUBINSize(prog, &len);
    char *img = res == NVRTC_SUCCESS && len > 0 ? malloc(len + 1) : NULL;
    if (!img) {
      rc = TY_ENOMEM;
    } else if ((r->o.ptx ? nvrtcGetPTX(prog, img) : nvrtcGetCUBIN(prog, img)) != NVRTC_SUCCESS) {
      free(img);
      rc = ty_errf(err, err_len, TY_EIO, "NVRTC: %s: cannot read the image", what);
    } else {
      img[len] = 0;
      *out_image = img;
      *out_len = len;
      r->st.compiles++;
    }
  }
  nvrtcDestroyProgram(&prog);
  return rc;
}

int ty_cuda_rtc_compile(ty_cuda_rtc *r, const char *src, const char *what, void **out_image,
                        size_t *out_len, char *err, size_t err_len) {
  ty_kernel_key k = r->target;
  ty_kernel_key_str(&k, src);
  char name[64];
  snprintf(name, sizeof name, "ty_%016llx%016llx.%s", (unsigned long long)k.h[0],
           (unsigned long long)k.h[1], r->o.ptx ? "ptx" : "cubin");
  if (r->dir && cache_read(r, name, &k, out_image, out_len) == 0) return 0;
  int rc = run_nvrtc(r, src, what, out_image, out_len, err, err_len);
  if (rc == 0 && r->dir) cache_write(r, name, &k, *out_image, *out_len);
  return rc;
}

/* ---- the device ---------------------------------------------------------- */

int ty_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

int ty_cuda_device_arch(int dev, int *out_arch) {
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return TY_ENOTFOUND;
  }
  *out_arch = major * 10 + minor;
  return 0;
}
