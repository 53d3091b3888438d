/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/data: training data for trainrun. Readers for NumPy .npy arrays, IDX
 * files (the MNIST format, gzip'ed or plain), CSV files (tabular data,
 * parsed into memory), image folders (PNG and JPEG files in class
 * sub-folders, decoded into memory) and token streams (raw .bin of token ids); datasets of named
 * columns built from them (Fashion-MNIST as Debian's dataset-fashion-mnist installs it is one such
 * dataset); a deterministic per-epoch shuffle, data-parallel sharding, augmentation of training
 * images (random crop and flip) and a batch loader with an optional prefetch thread.
 *
 * Files are untrusted input: every size in a header is checked for overflow
 * and against the bytes the file holds before anything is read through it,
 * and every rejection names the file and what is wrong, e.g.
 *   x.npy: truncated: shape (100, 784) of float32 needs 313600 data bytes, the file holds 1200
 * Plain files (.npy, plain IDX, token streams) are memory-mapped, so a
 * dataset larger than memory trains at the speed of the page cache; gzip'ed
 * IDX files are decompressed into memory, the buffer growing with the bytes
 * actually decompressed, not with what the header announces.
 *
 * Determinism: the order of epoch e is a function of (seed, e) only. It is
 * drawn with lib/base's counter-based SplitMix64 over the key
 * ty_mix2(seed, e), so a run resumed from a checkpoint at (epoch, batch)
 * sees exactly the batches an uninterrupted run would have seen, on any
 * machine.
 *
 * Sharding for data parallelism: with world size n, rank r takes positions
 * r, r + n, r + 2n, ... of the epoch's shuffled order. Every rank uses the
 * same (seed, epoch), so the shards are disjoint and together cover every
 * sample exactly once; shard sizes differ by at most one. Batches are cut from
 * the rank's shard in order. With drop_last, every rank runs
 * floor(N / n) / batch full batches (equal step counts, the remainder of the
 * epoch is skipped — a different remainder each epoch); with pad_last every
 * rank runs ceil(N / (n * batch)) full batches: the epoch's order is
 * extended by its own start to that many global batches (PyTorch's
 * DistributedSampler pads the same way), so every sample is trained and a
 * few twice; with neither, each rank also runs a final partial batch, and
 * ranks may then differ by one batch.
 *
 * Workload: Fashion-MNIST (60,000 28x28 uint8 images, 47 MB) up to token
 * streams of a few GB. Samples stay in their file's type and are converted
 * to the model's input type while a batch is assembled (uint8 through a
 * 256-entry table).
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
/* Dims of an array (numpy allows 32; no dataset needs more than 8). */
#define TY_DATA_MAX_DIMS 8
/* Columns of a dataset (model inputs fed plus labels). */
#define TY_DATA_MAX_COLUMNS 8
/* The longest .npy header accepted (numpy itself stops at 10,000 bytes). */
#define TY_DATA_NPY_MAX_HEADER 65536u

/* ---- element types ------------------------------------------------------- */
typedef enum ty_data_type {
  TY_DATA_INVALID = 0,
  TY_DATA_BOOL,
  TY_DATA_U8,
  TY_DATA_I8,
  TY_DATA_U16,
  TY_DATA_I16,
  TY_DATA_U32,
  TY_DATA_I32,
  TY_DATA_U64,
  TY_DATA_I64,
  TY_DATA_F16,
  TY_DATA_F32,
  TY_DATA_F64,
} ty_data_type;

/* numpy's name ("uint8", "float32"); "invalid" otherwise. */
const char *ty_data_type_name(ty_data_type t);
/* Bytes per element; 0 for TY_DATA_INVALID. */
size_t ty_data_type_size(ty_data_type t);
/* The type of an ONNX TensorProto.DataType number (ops/tensor's ty_dtype
 * values), or TY_DATA_INVALID for one data cannot feed. */
ty_data_type ty_data_type_from_onnx(int onnx_dtype);
/* Whether values of type from can feed an input of type to: any type to
 * itself; any number to float32 (float64 and int64 rounded to the nearest
 * float32); integers and bools to int64; nothing float to an integer. */
bool ty_data_convertible(ty_data_type from, ty_data_type to);

/* ---- arrays ----------------------------------------------------------------
 * An N-d array read from a file: C order, little-endian elements, possibly
 * unaligned (readers copy elements out with memcpy). Immutable; any number
 * of threads may read it. */
typedef struct ty_data_storage { /* where the bytes live; private to ops/data */
  void *map;
  size_t map_len;
  void *heap;
} ty_data_storage;

typedef struct ty_data_array {
  char *path; /* owned copy, for messages */
  ty_data_type type;
  uint32_t ndims;
  uint64_t dims[TY_DATA_MAX_DIMS];
  const uint8_t *data; /* nbytes bytes */
  size_t nbytes;
  ty_data_storage storage;
  uint32_t *lines;   /* a CSV file's: the line of each sample (dims[0]); else NULL */
  char **categories; /* csv.categories: id i is categories[i] (sorted); else NULL */
  size_t n_categories;
} ty_data_array;

/* Opens a .npy or an IDX file (told apart by content: the NPY magic
 * "\x93NUMPY", else IDX, gzip'ed or not); an .npz archive is refused
 * listing its arrays (open one with ty_data_npz_open). Errors: TY_ENOTFOUND (no such
 * file), TY_EIO, TY_EPROTO (malformed), TY_EUNSUPPORTED (a valid file this
 * reader does not take: big-endian, Fortran order, object or structured
 * dtype, an IDX type other than ubyte), TY_ETOOBIG (sizes that overflow or
 * exceed the limits). *out_array is zeroed first; close it in every case. */
int ty_data_array_open(const char *path, ty_data_array *out_array, char *err, size_t err_len);
/* The largest .npz member accepted (bytes, decompressed into memory). */
#define TY_DATA_NPZ_MAX_BYTES ((uint64_t)1 << 36)
/* Array `key` of an .npz archive (numpy.savez or savez_compressed: the
 * member KEY.npy, read with libzip and parsed as a .npy file; its path in
 * messages is "PATH:KEY"). TY_ENOTFOUND for a missing file or key (the
 * message lists the archive's arrays), TY_EPROTO for a damaged archive or
 * member, else as ty_data_array_open. *out_array is zeroed first; close it
 * in every case. */
int ty_data_npz_open(const char *path, const char *key, ty_data_array *out_array, char *err,
                     size_t err_len);
/* A token stream: a raw file of little-endian ids of type (TY_DATA_U16 or
 * TY_DATA_I32), or a 1-D .npy of uint16, int32, uint32 or int64 (its own
 * type wins; type may then be TY_DATA_INVALID). The result is 1-D. */
int ty_data_tokens_open(const char *path, ty_data_type type, ty_data_array *out_array, char *err,
                        size_t err_len);
/* ---- CSV ------------------------------------------------------------------
 * Columns of a CSV file (RFC 4180 quoting, read with libcsv) parsed at open
 * into a heap array of type `to` (float32, float64 or int64): one selected
 * column gives [N], several give [N, F] in the order listed. Every
 * rejection names the file, the line and the column (csv.c). */
typedef struct ty_data_csv_opts {
  bool header;                /* the first row names the columns */
  char delimiter;             /* 0: ',' */
  const char *const *columns; /* header names, 0-based indices "3", ranges "2..9" or "2.."
                                 (inclusive); none: every column */
  size_t n_columns;
  ty_data_type to;
  bool categories;          /* one column of strings -> int64 ids of the sorted unique strings */
  const char *const *known; /* categories: take the ids of this sorted list instead (a test
                               file: its training file's); a string not in it is refused */
  size_t n_known;
} ty_data_csv_opts;

/* Maps path and parses it with ty_data_csv_parse. TY_ENOTFOUND for a
 * missing file; *out_array is zeroed first; close it in every case. */
int ty_data_csv_open(const char *path, const ty_data_csv_opts *o, ty_data_array *out_array,
                     char *err, size_t err_len);
/* Several arrays of one file in one pass: out_arrays[j] is what
 * ty_data_csv_open(path, &opts[j], ...) gives, for n (1 to
 * TY_DATA_MAX_COLUMNS) option sets that share header and delimiter (their
 * columns, to, categories and known are each their own); the file is
 * mapped and tokenized once. On a refusal the code and message are those
 * of the first array (in order) that its own open would refuse, and
 * *out_failed (may be NULL) is its index; the arrays before it are whole.
 * out_arrays[0..n) are zeroed first; close them all in every case. */
int ty_data_csv_open_many(const char *path, const ty_data_csv_opts *opts, size_t n,
                          ty_data_array *out_arrays, size_t *out_failed, char *err, size_t err_len);
/* Parses a whole CSV file held in buf[0..len) into *out_array (which
 * should be zeroed; its path is left alone). name prefixes every message.
 * No I/O, for the libFuzzer target. TY_EPROTO for a malformed file (bad
 * quoting, a ragged row, a cell that is no number, an empty cell, no data
 * rows), TY_EINVAL for a selection the file does not have, TY_ETOOBIG past
 * UINT32_MAX rows. */
int ty_data_csv_parse(const uint8_t *buf, size_t len, const char *name, const ty_data_csv_opts *o,
                      ty_data_array *out_array, char *err, size_t err_len);
/* ty_data_csv_open_many's pass over buf[0..len) (out_arrays should be
 * zeroed; their paths are left alone). No I/O, for the libFuzzer target. */
int ty_data_csv_parse_many(const uint8_t *buf, size_t len, const char *name,
                           const ty_data_csv_opts *opts, size_t n, ty_data_array *out_arrays,
                           size_t *out_failed, char *err, size_t err_len);

/* ---- image folders ---------------------------------------------------------
 * torchvision's ImageFolder layout: ROOT/CLASS_NAME/FILE.png|.jpg|.jpeg.
 * Classes are the sorted (byte order) names of ROOT's sub-folders, class id
 * i the i-th; samples are the classes' files in class order, each class's
 * files sorted by name, as ImageFolder lists them. Files of other names are
 * skipped as ImageFolder skips them, except those of the image formats it
 * would read and this reader does not (.bmp, .gif, .ppm, .pgm, .tif, .tiff,
 * .webp), which are refused rather than silently lost; a folder inside a
 * class folder is refused too (ImageFolder would walk into it).
 * Images are decoded by content (image.c) and, unless resize or
 * center_crop asks for torchvision's Resize(S) / CenterCrop((H, W))
 * (resize.c), must be height x width. The pixels are held decoded in memory as uint8
 * [N, C, H, W] (N*C*H*W bytes), so that the existing uint8 normalisation
 * (divisor 0: /255, then mean and std) is torchvision's ToTensor and
 * Normalize. */
#define TY_DATA_IMAGE_MAX_PIXELS ((uint64_t)1 << 26)
#define TY_DATA_IMAGES_MAX_BYTES ((uint64_t)1 << 36)
#define TY_DATA_IMAGE_MAX_SIDE 16384u /* the largest resize */

typedef struct ty_data_image_want {
  uint32_t channels;      /* 1 (convert("L")) or 3 (convert("RGB")) */
  uint32_t height, width; /* 0: the first image's */
  uint32_t resize;        /* 0: none; else the shorter side to this (Resize(S)) */
  bool center_crop;       /* crop to height x width (both set) after any resize */
} ty_data_image_want;

/* Decodes a PNG or JPEG held in buf[0..len) into *out_pixels (malloc'ed,
 * the caller frees it; [channels, h, w] uint8). name prefixes every
 * message. TY_EPROTO: not a PNG or JPEG, damaged or truncated;
 * TY_EUNSUPPORTED: a 16-bit PNG, a CMYK JPEG; TY_EINVAL: another size than
 * want's (after the resize and crop asked for), a crop larger than the
 * resized image, resize over TY_DATA_IMAGE_MAX_SIDE; TY_ETOOBIG: over TY_DATA_IMAGE_MAX_PIXELS.
 * Pure, for the fuzzer. */
int ty_data_image_decode(const uint8_t *buf, size_t len, const char *name,
                         const ty_data_image_want *want, uint8_t **out_pixels, uint32_t *out_h,
                         uint32_t *out_w, char *err, size_t err_len);

typedef struct ty_data_imgdir_opts {
  bool labels;              /* the class ids (int64 [N]) instead of the images */
  ty_data_image_want want;  /* the images: channels and size */
  const char *const *known; /* labels of a test folder: its training folder's classes
                               (sorted); a class not among them is refused */
  size_t n_known;
} ty_data_imgdir_opts;

/* The images (uint8 [N, C, H, W]) or the class ids (int64 [N]) of the
 * image folder dir; either array keeps the class names as its categories
 * (the known list's when given). Every rejection names the folder or
 * file: no class folders, an empty class, a nested folder, an unsupported
 * image format, the decoder's refusals. *out_array is zeroed first; close
 * it in every case. */
int ty_data_imgdir_open(const char *dir, const ty_data_imgdir_opts *o, ty_data_array *out_array,
                        char *err, size_t err_len);

/* Unmaps or frees; accepts a zeroed or already closed array. */
void ty_data_array_close(ty_data_array *a);

/* ---- NPY -------------------------------------------------------------------
 * Format (numpy.lib.format): "\x93NUMPY", major and minor version bytes
 * (1.0, 2.0 or 3.0), the header length (uint16 LE for 1.x, uint32 LE for
 * 2.x and 3.x), then the header: a Python dict literal with exactly the keys
 * 'descr' (a dtype string such as '<f4' or '|u1'), 'fortran_order'
 * (True/False) and 'shape' (a tuple of ints), padded with spaces and ended
 * by '\n'; the data follows and must fill the rest of the file exactly. */
typedef struct ty_npy_info {
  ty_data_type type;
  bool fortran_order;
  uint32_t ndims;
  uint64_t dims[TY_DATA_MAX_DIMS];
  size_t data_offset; /* bytes before the data */
  size_t data_bytes;  /* prod(dims) * element size */
} ty_npy_info;

/* Parses and checks a whole .npy file held in buf[0..len). name prefixes
 * every message. Pure: no I/O, no allocation (the libFuzzer target calls
 * it with arbitrary bytes). Errors as ty_data_array_open. */
int ty_data_npy_parse(const uint8_t *buf, size_t len, const char *name, ty_npy_info *out_info,
                      char *err, size_t err_len);

/* ---- IDX files ------------------------------------------------------------
 * Format (big-endian): 0x00 0x00 <type> <ndims>, then ndims uint32 sizes,
 * then prod(sizes) elements. Only type 0x08 (unsigned byte) is supported,
 * which is what MNIST-style image and label files use. Gzip'ed files are
 * recognised by content (their 0x1f 0x8b magic), not by name, and
 * decompressed; plain files are memory-mapped. A cut gzip stream reads as a
 * truncated file.
 */
#define TY_DATA_IDX_MAX_DIMS 4

typedef struct ty_idx {
  uint32_t ndims;
  uint32_t dims[TY_DATA_IDX_MAX_DIMS];
  const uint8_t *data; /* prod(dims) bytes, row-major; owned through storage */
  size_t size;         /* bytes in data */
  ty_data_storage storage;
} ty_idx;

/* Reads a whole IDX file. On success *out_idx owns its data; release it with
 * ty_data_idx_close(). Errors: TY_ENOTFOUND (no such file), TY_EIO (read
 * failed, or gzip stream corrupt), TY_EPROTO (bad magic, zero or too many
 * dims, truncated, trailing bytes), TY_EUNSUPPORTED (element type other than
 * ubyte), TY_ETOOBIG (payload over TY_DATA_IDX_MAX_BYTES). err may be NULL. */
int ty_data_idx_read(const char *path, ty_idx *out_idx, char *err, size_t err_len);
/* Parses a whole plain (not gzip'ed) IDX file held in buf[0..len); on
 * success out_idx->data points into buf and its storage is empty. Pure, for
 * the libFuzzer target. name prefixes every message. */
int ty_data_idx_parse(const uint8_t *buf, size_t len, const char *name, ty_idx *out_idx, char *err,
                      size_t err_len);
/* Frees the data; accepts a zeroed or already closed idx. */
void ty_data_idx_close(ty_idx *idx);

/* ---- datasets ---------------------------------------------------------------
 * A dataset is N samples of up to TY_DATA_MAX_COLUMNS columns; column k
 * feeds one model input (or the labels). Sample i of a column is its
 * array's i-th slice along dim 0, or for a token stream the window of
 * `context` ids starting at i * stride (inputs) or one later (labels).
 */
typedef enum { TY_DATA_TRAIN = 0, TY_DATA_TEST = 1 } ty_data_split;

/* How a column becomes model input. For a float32 target:
 *   x = (v / divisor - mean) / std
 * in float32 (torchvision's ToTensor + Normalize for uint8 images), where
 * divisor 0 means 255 for uint8 arrays and 1 otherwise, and std 0 means 1.
 * With per-channel statistics (n_channels > 0) channel c of a sample, the
 * array's dim 1 (C of NCHW), takes
 *   x[n, c, ...] = (v / divisor - channel_mean[c]) / channel_std[c]
 * instead (torchvision's Normalize(mean=[...], std=[...]), which subtracts
 * then divides in float32): n_channels must be the array's dim 1 (an array
 * of one dim has no channel), every channel_std finite and > 0, every
 * channel_mean finite, and mean and std zero. Other targets take the
 * values unchanged, and need divisor, mean, std and n_channels zero. */
/* Image augmentation of a training column (augment.c): float32 samples of
 * two dims or more, [..., H, W]. Each sample is padded on every side of H
 * and W by crop_padding values of the normalised 0 and cropped back to
 * H x W at a random offset (torchvision's RandomCrop(size, padding) before
 * ToTensor and Normalize), then mirrored along W with probability 1/2 when
 * hflip is set (RandomHorizontalFlip). The draws of sample i in epoch e
 * are a function of (seed, e, i) only, so every rank, plan and resumed run
 * sees the same augmented sample. */
typedef struct ty_data_augment {
  uint32_t crop_padding; /* 0: no crop; at most H and W */
  bool hflip;
} ty_data_augment;

typedef struct ty_data_feed {
  const char *name;  /* the model input (or the labels) it feeds; copied */
  const char *where; /* its config entry ("config.dataset.train[1]"), put before a refusal of
                        its array; NULL: the path alone names it; borrowed */
  ty_data_type to;   /* TY_DATA_INVALID: the array's own type */
  float divisor, mean, std;
  const float *channel_mean; /* n_channels values each, or NULL; borrowed, copied */
  const float *channel_std;
  size_t n_channels;       /* 0: mean and std for every channel */
  ty_data_augment augment; /* all zero: none */
} ty_data_feed;

/* One column as the dataset holds it (borrowed from the dataset). */
typedef struct ty_data_column {
  const char *name;  /* the feed's name */
  const char *path;  /* the file it comes from */
  ty_data_type from; /* the file's element type */
  ty_data_type to;   /* what ty_dataset_gather writes */
  uint32_t ndims;    /* one sample's shape */
  uint64_t dims[TY_DATA_MAX_DIMS];
  size_t elems;                  /* values per sample: prod(dims) */
  ty_data_augment augment;       /* the feed's, checked against the shape */
  const char *const *categories; /* its array's (csv.categories), or NULL */
  size_t n_categories;
} ty_data_column;

typedef struct ty_data_opts {
  const char *dir; /* NULL or "": TY_DATA_FASHION_MNIST_DIR; borrowed */
  float mean;      /* x = (pixel / 255 - mean) / std */
  float std;       /* 0 is read as 1 */
} ty_data_opts;

/* An immutable dataset; shareable between threads. */
typedef struct ty_dataset ty_dataset;

/* Moves arrays[0..n) (1 <= n <= TY_DATA_MAX_COLUMNS) into a new dataset
 * whose column k feeds feeds[k]: every array needs at least one dim and the
 * same dims[0] (the sample count, at most UINT32_MAX). Ownership of the
 * arrays always passes (the caller's structs are zeroed, also on failure).
 * TY_EINVAL names the array (its feed's where, then its path) and the feed
 * when a type cannot feed it (ty_data_convertible) or the normalisation
 * does not apply. */
int ty_dataset_from_arrays(ty_data_array *arrays, const ty_data_feed *feeds, size_t n,
                           ty_dataset **out_ds, char *err, size_t err_len);
/* A language-model dataset over a 1-D token array (moved in, as above):
 * sample i is the window tokens[i*stride .. i*stride + context] (context + 1
 * ids); column 0 (inputs) holds its first context ids, column 1 (labels) its
 * last context ids. stride 0 means context; the count is
 * (len - context - 1) / stride + 1, and the stream must hold context + 1
 * tokens at least. */
int ty_dataset_from_tokens(ty_data_array *tokens, uint32_t context, uint32_t stride,
                           const ty_data_feed *inputs, const ty_data_feed *labels,
                           ty_dataset **out_ds, char *err, size_t err_len);
/* How a token stream is cut into samples: windows of context + shift ids
 * starting every stride (0: context) ids. shift true (a model taking the
 * next tokens): the inputs are a window's first context ids, the labels
 * its last context ids. shift false (a model shifting them itself): the
 * window is context ids, and the labels, if any, are the inputs. */
typedef struct ty_data_windows {
  uint32_t context, stride;
  bool shift;
} ty_data_windows;
/* ty_dataset_from_tokens for any ty_data_windows; labels may be NULL (one
 * column: the inputs alone). */
int ty_dataset_from_windows(ty_data_array *tokens, const ty_data_windows *w,
                            const ty_data_feed *inputs, const ty_data_feed *labels,
                            ty_dataset **out_ds, char *err, size_t err_len);
/* Loads one split of Fashion-MNIST from opts->dir (train-*.gz or t10k-*.gz):
 * column 0 "images" (float32 [rows, cols], normalised), column 1 "labels"
 * (int64). Checks that images are [N, rows, cols], labels are [N], the
 * counts agree and every label is below 10. opts may be NULL (defaults, no
 * normalisation beyond /255). */
int ty_data_load_fashion_mnist(const ty_data_opts *opts, ty_data_split split, ty_dataset **out_ds,
                               char *err, size_t err_len);
/* The same from two explicit IDX paths; num_classes is max(label) + 1. */
int ty_data_load_idx(const char *images_path, const char *labels_path, const ty_data_opts *opts,
                     ty_dataset **out_ds, char *err, size_t err_len);
void ty_dataset_destroy(ty_dataset *ds);

size_t ty_dataset_count(const ty_dataset *ds);
size_t ty_dataset_n_columns(const ty_dataset *ds);
/* Column k < ty_dataset_n_columns(ds); borrowed. */
const ty_data_column *ty_dataset_column(const ty_dataset *ds, size_t k);
/* Writes sample i of column k, converted, into out (elems values of the
 * column's target type). */
void ty_dataset_gather(const ty_dataset *ds, size_t k, size_t i, void *out);
/* Whether column k is augmented (its feed asked for it). */
bool ty_dataset_augments(const ty_dataset *ds, size_t k);
/* Augments sample (column k's values, as ty_dataset_gather wrote them) in
 * place with the draws of key, which the loader derives from (seed, epoch,
 * sample index). */
void ty_dataset_augment(const ty_dataset *ds, size_t k, uint64_t key, float *sample);
/* Checks that every value of integer column k lies in [lo, hi); a token
 * column checks its whole stream. TY_EINVAL names the file, the sample and
 * the value; TY_EINVAL also for a float column. */
int ty_dataset_check_range(const ty_dataset *ds, size_t k, int64_t lo, int64_t hi, char *err,
                           size_t err_len);
/* The same with the value *also allowed too (a loss's ignore_index; NULL:
 * none). */
int ty_dataset_check_range_or(const ty_dataset *ds, size_t k, int64_t lo, int64_t hi,
                              const int64_t *also, char *err, size_t err_len);
/* Whether integer column k holds the value v anywhere (false for a
 * column of floats or bools). */
bool ty_dataset_holds(const ty_dataset *ds, size_t k, int64_t v);

/* The image-classification view of column 0 (images) and column 1
 * (labels), as the IDX pair loaders above build it: */
/* Values per sample of column 0. */
size_t ty_dataset_sample_size(const ty_dataset *ds);
/* Column 0's sample shape when it is 2-D (else rows = 1, cols = elems). */
void ty_dataset_shape(const ty_dataset *ds, uint32_t *out_rows, uint32_t *out_cols);
/* max(label) + 1 of an IDX pair (10 for Fashion-MNIST); 0 for others. */
uint32_t ty_dataset_num_classes(const ty_dataset *ds);
/* Raw bytes of sample i of column 0 (borrowed) and column 1's value. */
const uint8_t *ty_dataset_pixels(const ty_dataset *ds, size_t i);
uint8_t ty_dataset_label(const ty_dataset *ds, size_t i);
/* Writes the normalised sample i of a float32 column 0 into out. */
void ty_dataset_sample(const ty_dataset *ds, size_t i, float *out);

/* ---- order and sharding ---------------------------------------------------
 * The shuffled order of epoch e: a Fisher-Yates permutation of 0..n-1 whose
 * j-th swap index is drawn from ty_mix64(ty_mix2(seed, e) + (j+1) * gamma).
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
  bool pad_last;       /* see the sharding note above; not with drop_last */
  bool prefetch;       /* assemble the next batches on a background thread */
} ty_loader_opts;

/* One batch. Its buffers belong to the loader and stay valid until the next
 * ty_loader_next(), ty_loader_start_epoch() or ty_loader_destroy(). */
typedef struct ty_batch {
  const float *x;   /* column 0 when it is float32 (the images), else NULL */
  const int64_t *y; /* column 1 when it is int64 (the labels), else NULL */
  uint32_t n;       /* samples, 1..batch_size */
  uint64_t epoch;
  uint64_t index;                        /* batch number within the epoch, from 0 */
  const void *cols[TY_DATA_MAX_COLUMNS]; /* column k: [n, elems] of its target type */
} ty_batch;

/* Iterates one rank's batches. Not thread-safe: one consumer thread. The
 * dataset is borrowed and must outlive the loader. With prefetch, a producer
 * thread keeps up to two batches ready (a bounded queue of 2) and sleeps on
 * a condition variable while the queue is full. */
typedef struct ty_loader ty_loader;

int ty_loader_create(const ty_dataset *ds, const ty_loader_opts *opts, ty_loader **out_loader,
                     char *err, size_t err_len);
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
