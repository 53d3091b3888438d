/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/data: training data for trainrun — IDX files (the MNIST format, gzip'ed
 * or plain), the Fashion-MNIST dataset as Debian's dataset-fashion-mnist
 * installs it, a deterministic per-epoch shuffle, data-parallel sharding and a
 * batch loader with an optional prefetch thread.
 *
 * Determinism: the order of epoch e is a function of (seed, e) only. It is
 * drawn with a counter-based generator (splitmix64 over a per-epoch key), so
 * a run resumed from a checkpoint at (epoch, batch) sees exactly the batches
 * an uninterrupted run would have seen, on any machine.
 *
 * Sharding for data parallelism: with world size n, rank r takes positions
 * r, r + n, r + 2n, ... of the epoch's shuffled order. Every rank uses the
 * same (seed, epoch), so the shards are disjoint and together cover every
 * sample exactly once; shard sizes differ by at most one. Batches are cut from
 * the rank's shard in order. With drop_last, every rank runs
 * floor(N / n) / batch full batches (equal step counts, the remainder of the
 * epoch is skipped — a different remainder each epoch); without it each rank
 * also runs a final partial batch, and ranks may then differ by one batch.
 *
 * Workload: 60,000 28x28 images; pixels stay uint8 in memory (47 MB) and are
 * normalised to float32 while a batch is assembled, through a 256-entry table.
 *
 * Errors: functions return 0 or a negative TY_E* code, and where an err
 * buffer is passed they also write one line naming the file and the problem,
 * e.g. "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz: missing
 * (install dataset-fashion-mnist)".
 */
#ifndef TY_OPS_DATA_DATA_H
#define TY_OPS_DATA_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TY_DATA_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define TY_DATA_FASHION_MNIST_MEAN 0.2860f
#define TY_DATA_FASHION_MNIST_STD 0.3530f
/* The largest IDX payload we accept (bytes); guards against absurd headers. */
#define TY_DATA_IDX_MAX_BYTES ((uint64_t)1 << 32)

/* ---- IDX files ------------------------------------------------------------
 * Format (big-endian): 0x00 0x00 <type> <ndims>, then ndims uint32 sizes,
 * then prod(sizes) elements. Only type 0x08 (unsigned byte) is supported,
 * which is what MNIST-style image and label files use. Gzip'ed files are
 * recognised by content (zlib's gzread), not by name, and decompressed; plain
 * files are read as they are. A cut gzip stream reads as a truncated file.
 */
#define TY_DATA_IDX_MAX_DIMS 4

typedef struct ty_idx {
  uint32_t ndims;
  uint32_t dims[TY_DATA_IDX_MAX_DIMS];
  uint8_t *data; /* owned; prod(dims) bytes, row-major */
  size_t size;   /* bytes in data */
} ty_idx;

/* Reads a whole IDX file. On success *out_idx owns its data; release it with
 * ty_data_idx_close(). Errors: TY_ENOTFOUND (no such file), TY_EIO (read
 * failed, or gzip stream corrupt), TY_EPROTO (bad magic, zero or too many
 * dims, truncated, trailing bytes), TY_EUNSUPPORTED (element type other than
 * ubyte), TY_ETOOBIG (payload over TY_DATA_IDX_MAX_BYTES). err may be NULL. */
int ty_data_idx_read(const char *path, ty_idx *out_idx, char *err, size_t err_len);
/* Frees the data; accepts a zeroed or already closed idx. */
void ty_data_idx_close(ty_idx *idx);

/* ---- datasets ------------------------------------------------------------ */
typedef enum { TY_DATA_TRAIN = 0, TY_DATA_TEST = 1 } ty_data_split;

typedef struct ty_data_opts {
  const char *dir; /* NULL or "": TY_DATA_FASHION_MNIST_DIR; borrowed */
  float mean;      /* x = (pixel / 255 - mean) / std */
  float std;       /* 0 is read as 1 */
} ty_data_opts;

/* An immutable set of labelled images; shareable between threads. */
typedef struct ty_dataset ty_dataset;

/* Loads one split of Fashion-MNIST from opts->dir (train-*.gz or t10k-*.gz).
 * Checks that images are [N, rows, cols], labels are [N], the counts agree
 * and every label is below 10. opts may be NULL (defaults, no normalisation
 * beyond /255). */
int ty_data_load_fashion_mnist(const ty_data_opts *opts, ty_data_split split,
                               ty_dataset **out_ds, char *err, size_t err_len);
/* The same from two explicit IDX paths; num_classes is max(label) + 1. */
int ty_data_load_idx(const char *images_path, const char *labels_path,
                     const ty_data_opts *opts, ty_dataset **out_ds, char *err,
                     size_t err_len);
void ty_dataset_destroy(ty_dataset *ds);

size_t ty_dataset_count(const ty_dataset *ds);
/* Floats per sample (rows * cols). */
size_t ty_dataset_sample_size(const ty_dataset *ds);
void ty_dataset_shape(const ty_dataset *ds, uint32_t *out_rows, uint32_t *out_cols);
uint32_t ty_dataset_num_classes(const ty_dataset *ds);
/* Raw pixels of sample i (rows * cols bytes, borrowed) and its label. */
const uint8_t *ty_dataset_pixels(const ty_dataset *ds, size_t i);
uint8_t ty_dataset_label(const ty_dataset *ds, size_t i);
/* Writes the normalised sample i into out (sample_size floats). */
void ty_dataset_sample(const ty_dataset *ds, size_t i, float *out);

/* ---- order and sharding ---------------------------------------------------
 * The shuffled order of epoch e: a Fisher-Yates permutation of 0..n-1 whose
 * j-th swap index is drawn from splitmix64(key(seed, e) + (j+1) * gamma).
 * The modulo reduction has a bias below n / 2^64, i.e. none that matters.
 */
void ty_data_shuffle(uint64_t seed, uint64_t epoch, uint32_t n, uint32_t *out_order);
/* Samples rank r of world_size gets from n (ceil for the first n % world
 * ranks, floor for the rest). */
uint32_t ty_data_shard_len(uint32_t n, uint32_t rank, uint32_t world_size);

/* ---- batches -------------------------------------------------------------- */
typedef struct ty_loader_opts {
  uint32_t batch_size; /* per rank, > 0 */
  uint64_t seed;
  bool shuffle;        /* false: identity order every epoch */
  uint32_t rank;       /* 0 <= rank < world_size */
  uint32_t world_size; /* 0 is read as 1 */
  bool drop_last;      /* see the sharding note above */
  bool prefetch;       /* assemble the next batches on a background thread */
} ty_loader_opts;

/* One batch. x and y belong to the loader and stay valid until the next
 * ty_loader_next(), ty_loader_start_epoch() or ty_loader_destroy(). */
typedef struct ty_batch {
  const float *x;   /* [n, sample_size], normalised */
  const int64_t *y; /* [n] labels (int64, as ONNX label inputs want) */
  uint32_t n;       /* samples, 1..batch_size */
  uint64_t epoch;
  uint64_t index;   /* batch number within the epoch, from 0 */
} ty_batch;

/* Iterates one rank's batches. Not thread-safe: one consumer thread. The
 * dataset is borrowed and must outlive the loader. With prefetch, a producer
 * thread keeps up to two batches ready (a bounded queue of 2). */
typedef struct ty_loader ty_loader;

int ty_loader_create(const ty_dataset *ds, const ty_loader_opts *opts,
                     ty_loader **out_loader, char *err, size_t err_len);
/* Stops any prefetching and frees everything; accepts NULL. */
void ty_loader_destroy(ty_loader *l);
/* Batches each epoch yields for this rank. */
uint64_t ty_loader_batches_per_epoch(const ty_loader *l);
/* Positions the loader at batch first_batch of epoch (0 for a fresh epoch;
 * the saved position to resume a checkpoint). TY_EINVAL if first_batch is
 * past the end of the epoch. Must be called before the first next(). */
int ty_loader_start_epoch(ty_loader *l, uint64_t epoch, uint64_t first_batch);
/* Returns 1 and fills *out_batch, 0 at the end of the epoch, or a negative
 * code (TY_ESTATE before any start_epoch, TY_ENOMEM). */
int ty_loader_next(ty_loader *l, ty_batch *out_batch);

#endif
