/*
 * aim/data.h - datasets held in memory as 8-bit planar images, and the
 * batcher that turns them into normalised float batches for the model.
 *
 * Datasets: IDX (MNIST / Fashion-MNIST, gzipped or plain), CIFAR-10 binary
 * batches, PNG folders (one subfolder per class) and a procedural synthetic
 * set. All loaders validate sizes before allocating; errors name the file.
 */
#ifndef AIM_DATA_H
#define AIM_DATA_H

#include <stdint.h>

#include "aim/core.h"

#define AIM_MAX_CHANNELS 4

typedef struct aim_dataset {
    char kind[16];          /* "idx", "cifar10", "pngdir", "synthetic" */
    char *path;             /* what it was opened from (NULL for synthetic) */
    char *split;            /* "train", "test", or NULL */
    int64_t n;              /* number of images */
    int c, h, w;            /* channels, height, width */
    uint8_t *images;        /* [n, c, h, w] */
    int32_t *labels;        /* [n], in 0..nclasses-1 */
    int nclasses;
    char **class_names;     /* [nclasses] or NULL */
    float mean[AIM_MAX_CHANNELS]; /* per channel statistics of x/255 */
    float std[AIM_MAX_CHANNELS];
} aim_dataset;

/* Allocate an empty dataset with images/labels buffers for n images (aborts
 * on OOM: callers check n against the file first). */
aim_dataset *aim_dataset_alloc(const char *kind, int64_t n, int c, int h, int w);
/* The same for sizes that come from files or users: NULL with a message
 * giving the size when it is over aim_mem_limit() or cannot be had. */
aim_dataset *aim_dataset_try_alloc(const char *kind, int64_t n, int c, int h, int w,
                                   aim_err *e);
void aim_dataset_free(aim_dataset *ds);
/* Compute mean/std per channel over all images (x/255, population std). */
void aim_dataset_compute_stats(aim_dataset *ds);
/* Keep images [start, start+n) only (n clipped), e.g. for quick experiments. */
void aim_dataset_truncate(aim_dataset *ds, int64_t n);

typedef enum { AIM_RESIZE_AREA = 0, AIM_RESIZE_BILINEAR = 1 } aim_resize_method;

typedef struct aim_open_opts {
    int channels;           /* 0 = the data's own (PNG: 1 if all gray, else 3) */
    int height, width;      /* 0 = the data's own (PNG: size of the first image) */
    aim_resize_method resize;
    const char *split;      /* for folders holding several splits: "train"/"test" */
    int64_t limit;          /* 0 = all images, else at most this many */
    uint64_t max_bytes;     /* PNG folders: the most bytes the images may take
                               (0 = aim_mem_limit()), checked before any is
                               decoded; the Lua console passes what is left of
                               aim.memory_limit */
} aim_open_opts;

/* Convert in place to c channels (1, 3 or 4; gray <-> RGB by luminance /
 * replication) and h x w (aim_resize); 0 keeps the current value. Stats are
 * recomputed. */
int aim_dataset_convert(aim_dataset *ds, int c, int h, int w, aim_resize_method method,
                        aim_err *e);

/* What a path holds, judged from its magic bytes and name (folders by the
 * files they contain). Returns one of AIM_SNIFF_* or -1 with a message. */
enum {
    AIM_SNIFF_IDX = 1,      /* IDX file, gzipped or plain */
    AIM_SNIFF_IDX_DIR,      /* folder with *-images-idx3-ubyte[.gz] */
    AIM_SNIFF_CIFAR,        /* CIFAR-10 .bin batch */
    AIM_SNIFF_CIFAR_DIR,    /* folder with data_batch_N.bin / test_batch.bin */
    AIM_SNIFF_PNG_DIR,      /* any other folder: PNG class folders */
    AIM_SNIFF_PNG,
    AIM_SNIFF_NPY,
    AIM_SNIFF_SAFETENSORS,
};
int aim_data_sniff(const char *path, aim_err *e);

/* Open whatever `path` is: an IDX images file (labels paired by the standard
 * name, e.g. train-images-idx3-ubyte.gz <-> train-labels-idx1-ubyte.gz), a
 * folder of IDX files (split picks train/t10k), a CIFAR-10 .bin batch or a
 * folder of them, or a PNG class folder. opts may be NULL. */
aim_dataset *aim_data_open(const char *path, const aim_open_opts *opts, aim_err *e);

/* ------------------------------------------------------------------ IDX */
/* Raw IDX file: magic 0 0 type ndim, big-endian u32 dims, data. Only the
 * unsigned byte type (0x08) is accepted for datasets. */
typedef struct aim_idx {
    int ndim;
    int64_t dims[AIM_MAX_DIMS];
    uint8_t type;           /* 0x08 ubyte */
    uint8_t *data;          /* prod(dims) bytes */
} aim_idx;

int aim_idx_read(const char *path, aim_idx *out, aim_err *e); /* .gz or plain */
int aim_idx_parse(const uint8_t *buf, size_t len, const char *name, aim_idx *out,
                  aim_err *e);
void aim_idx_free(aim_idx *x);
/* images: [n, rows, cols] IDX; labels: [n] IDX or NULL to find the sibling. */
aim_dataset *aim_data_open_idx(const char *images_path, const char *labels_path,
                               aim_err *e);
/* The folder Debian's dataset-fashion-mnist installs, or $AIM_FASHION_MNIST
 * when set. */
const char *aim_fashion_mnist_dir(void);
/* split: "train" or "test". dir NULL = aim_fashion_mnist_dir(). */
aim_dataset *aim_data_fashion_mnist(const char *split, const char *dir, aim_err *e);
/* Fashion-MNIST class names in label order. */
extern const char *const aim_fashion_mnist_classes[10];

/* ------------------------------------------------------------ CIFAR-10 */
/* A .bin batch (records of 1 label byte + 3072 bytes, 3x32x32 planar) or a
 * folder holding data_batch_{1..5}.bin and test_batch.bin (split picks which;
 * batches.meta.txt supplies class names when present). */
aim_dataset *aim_data_open_cifar(const char *path, const char *split, aim_err *e);
int aim_cifar_parse(const uint8_t *buf, size_t len, const char *name, aim_dataset *into,
                    int64_t at, aim_err *e); /* fill records at index `at` */

/* ------------------------------------------------------------ PNG folder */
/* path/<class>/<image>.png, class names sorted (strcmp), images sorted within
 * each class. Every PNG is converted to opts->channels and resized to
 * opts->height x opts->width. A file that is not a readable PNG is an error
 * naming it. Limits: 1000 classes, 10 million files. */
aim_dataset *aim_data_open_pngdir(const char *path, const aim_open_opts *opts,
                                  aim_err *e);

/* Resize one interleaved 8-bit image [sh, sw, c] to [dh, dw, c]. AREA
 * averages the source pixels each destination pixel covers (best for
 * shrinking); BILINEAR samples at pixel centres (align_corners = false). */
void aim_resize(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw,
                aim_resize_method method);

/* ------------------------------------------------------------ synthetic */
typedef struct aim_synth_opts {
    int64_t n;              /* images (default 1000 when 0) */
    int c, h, w;            /* default 1 x 28 x 28 */
    int nclasses;           /* 2..10, default 10 */
    uint64_t seed;
} aim_synth_opts;

/* Procedural labelled images: each class is a distinct family (filled disc,
 * ring, square outline, cross, horizontal stripes, vertical stripes, diagonal
 * stripes, gradient, checkerboard, triangle), drawn at a random position,
 * scale, intensity and colour with noise. Image i depends only on (seed, i). */
aim_dataset *aim_data_synthetic(const aim_synth_opts *o, aim_err *e);
extern const char *const aim_synthetic_classes[10];

/* ---------------------------------------------------------------- batcher */
typedef struct aim_batcher_opts {
    int batch;              /* images per batch (> 0) */
    uint64_t seed;
    int shuffle;            /* 1: new permutation every epoch; 0: file order */
    int crop;               /* random resized crop */
    float scale_min, scale_max;   /* default 0.4, 1.0 (area fraction) */
    float ratio_min, ratio_max;   /* default 3/4, 4/3 (aspect w/h) */
    int flip;               /* random horizontal flip, p = 0.5 */
    int shift;              /* > 0: move each image by dx, dy uniform in [-shift, shift]
                             * pixels after crop and flip, black coming in (0 = off) */
    int patch;              /* > 0: draw a prefix S in 1..N-1 per image, N = (h/p)(w/p) */
    int normalize;          /* 1: (x/255 - mean_c) / std_c with the dataset's stats */
} aim_batcher_opts;

/* Defaults: crop and flip on, scale [0.4,1], ratio [3/4,4/3], shuffle on,
 * normalise on, patch 0. */
void aim_batcher_opts_default(aim_batcher_opts *o);

typedef struct aim_batcher aim_batcher;

/* The dataset must outlive the batcher. */
aim_batcher *aim_batcher_new(const aim_dataset *ds, const aim_batcher_opts *o,
                             aim_err *e);
void aim_batcher_free(aim_batcher *b);

/* Next batch of the endless stream (epochs follow each other; a batch may
 * straddle two epochs). x: [batch, c, h, w] floats; labels: [batch] (may be
 * NULL); prefix: [batch] (may be NULL; filled only when patch > 0). Work is
 * parallel over images but the result does not depend on the thread count:
 * every random draw for image k of the stream comes from its own stream
 * seeded by (seed, k). */
void aim_batcher_next(aim_batcher *b, float *x, int32_t *labels, int32_t *prefix);
/* The same batch, but only its rows [r0, r1) are made, into x[0..r1-r0)
 * (and labels, prefix): the share of one rank of a data-parallel run. The
 * stream still advances by the whole batch, so the ranks together see
 * exactly the batches of one process. */
void aim_batcher_next_rows(aim_batcher *b, int r0, int r1, float *x, int32_t *labels,
                           int32_t *prefix);

/* The position in the data stream: images consumed since the start. Saving
 * it and restoring it into a batcher with the same dataset and options gives
 * exactly the same following batches. */
uint64_t aim_batcher_position(const aim_batcher *b);
void aim_batcher_seek(aim_batcher *b, uint64_t position);
/* Current epoch (position / n) */
uint64_t aim_batcher_epoch(const aim_batcher *b);

/* Deterministic evaluation batch: images [start, start+n) in dataset order,
 * normalised (when normalize) and without augmentation. Rows outside
 * [0, ds->n) come back as zeros with label -1. */
void aim_dataset_get_batch(const aim_dataset *ds, int64_t start, int n, int normalize,
                           float *x, int32_t *labels);

#endif
