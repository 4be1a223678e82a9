/*
 * aim/core.h - errors, allocation, files and random numbers shared by every
 * part of libaim.
 *
 * Error convention (the library never prints and never exits):
 *   - a fallible function returns 0 on success and -1 on failure (or a
 *     pointer / NULL) and writes a one-line, human readable message into the
 *     caller's aim_err, e.g. "data/x.npy: header claims 10^12 elements but
 *     the file holds 100 bytes". The message names the file or argument.
 *   - aim_err pointers may be NULL when the caller does not want the text.
 *   - out of memory for an internal, bounded allocation aborts (aim_xmalloc);
 *     sizes that come from a file go through aim_try_malloc and become errors.
 */
#ifndef AIM_CORE_H
#define AIM_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define AIM_ERR_MAX 512

typedef struct aim_err {
    char msg[AIM_ERR_MAX];
} aim_err;

/* Set the message (printf style) and return -1, so callers can write
 * `return aim_errf(e, "%s: bad magic", path);`. e may be NULL. */
int aim_errf(aim_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefix an existing message: "ctx: old message". Returns -1. */
int aim_err_prefix(aim_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------ allocation */
/* Abort with a message on failure: for sizes the program controls. */
void *aim_xmalloc(size_t n);
void *aim_xcalloc(size_t n, size_t size);
void *aim_xrealloc(void *p, size_t n);
char *aim_xstrdup(const char *s);
char *aim_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 64-byte aligned block (free with free()), aborts on failure. */
void *aim_xaligned(size_t n);
/* Return NULL on failure (or n == 0 gives a valid 1-byte block): for sizes
 * that come from files. */
void *aim_try_malloc(size_t n);
/* 64-byte aligned and zeroed, or NULL when the memory cannot be had or n is
 * over aim_mem_limit(): for model, probe and dataset slabs whose size comes
 * from a file's metadata or a user's config. Free with free(). */
void *aim_try_aligned_zero(size_t n);

/* The most bytes one model (parameters and gradients, or their AdamW
 * moments), probe or dataset may take: the machine's physical memory (or
 * its cgroup's limit when lower) unless set (0 restores the default). Sizes
 * over it are refused with a message giving both, before anything is
 * allocated. Process-wide: set it once, before any thread loads. */
uint64_t aim_mem_limit(void);
void aim_set_mem_limit(uint64_t bytes);
/* "1.5 GiB", "12.0 MiB", "512 bytes" for messages. */
void aim_fmt_bytes(char *buf, size_t len, uint64_t n);

/* Overflow-checked size arithmetic: return 0 and set *out, or -1 on overflow. */
int aim_size_mul(size_t a, size_t b, size_t *out);
int aim_size_add(size_t a, size_t b, size_t *out);
/* Product of a shape with overflow check; -1 if it overflows or exceeds `limit`. */
int aim_shape_numel(const int64_t *shape, int ndim, uint64_t limit, uint64_t *out);

/* Largest single buffer a loader will allocate from a file's claims (8 GiB). */
#define AIM_MAX_ALLOC ((uint64_t)8 << 30)

/* ------------------------------------------------------------------ files */
/* Size of a regular file, or -1 with a message (missing, a folder, ...). */
int64_t aim_file_size(const char *path, aim_err *e);
/* Read a whole regular file (at most max_bytes) into a fresh buffer. */
int aim_read_file(const char *path, uint64_t max_bytes, uint8_t **data,
                  size_t *len, aim_err *e);
/* Write a file atomically: a new `path.tmp.<pid>.<random>` in the same folder
 * (O_EXCL | O_NOFOLLOW: never a file or symlink that is already there), fsync,
 * rename over path, fsync the folder. A file that is replaced keeps its
 * permission bits; a new one gets 0666 less the umask. On any failure the old
 * file is untouched and the temporary is removed. The writer callback
 * streams the content. */
typedef int (*aim_write_fn)(FILE *f, void *ctx, aim_err *e);
int aim_write_atomic(const char *path, aim_write_fn fn, void *ctx, aim_err *e);
/* Remove the temporaries of every aim_write_atomic in progress. Async-signal-
 * safe: for a front end's SIGINT / SIGTERM handler, before it ends the
 * process (the writes in progress then fail, if they continue at all). */
void aim_write_atomic_abort(void);
/* Remove, in folder dir, the temporaries aim_write_atomic left behind in a
 * process that was killed while writing (NAME.tmp.PID.RANDOM whose PID names
 * no live process; this process's own and a live one's are kept). Returns
 * how many were removed; a folder that cannot be read removes none. */
int aim_remove_dead_temps(const char *dir);
/* 1 if path is a directory, 0 if not (or missing). */
int aim_is_dir(const char *path);
/* Create a folder and its parents (mkdir -p); -1 with a message naming the
 * part that could not be made or that exists and is not a folder. */
int aim_mkdir_p(const char *path, aim_err *e);
/* Base name (pointer into path) */
const char *aim_basename(const char *path);
/* The folder part of path, malloc'd: "a/b/c" -> "a/b", "c" -> ".", "/c" -> "/". */
char *aim_dirname(const char *path);

/* ---------------------------------------------------------------- random */
/* xoshiro256** seeded through splitmix64. Deterministic on every platform. */
typedef struct aim_rng {
    uint64_t s[4];
} aim_rng;

void aim_rng_seed(aim_rng *r, uint64_t seed);
uint64_t aim_rng_u64(aim_rng *r);
uint32_t aim_rng_below(aim_rng *r, uint32_t n); /* uniform in [0, n), n > 0 */
double aim_rng_uniform(aim_rng *r);             /* uniform in [0, 1) */
double aim_rng_normal(aim_rng *r);              /* standard normal */
/* A good 64-bit mix (splitmix64 finaliser) to derive independent streams:
 * aim_rng_seed(&r, aim_hash64(seed ^ aim_hash64(index))). */
uint64_t aim_hash64(uint64_t x);

/* ------------------------------------------------------------- dtypes */
typedef enum aim_dtype {
    AIM_DTYPE_NONE = 0,
    AIM_F32,
    AIM_F64,
    AIM_U8,
    AIM_I8,
    AIM_I32,
    AIM_I64,
    AIM_F16,
    AIM_BF16,
    AIM_BOOL,
    AIM_I16,
    AIM_U16,
    AIM_U32,
    AIM_U64,
} aim_dtype;

size_t aim_dtype_size(aim_dtype t);
const char *aim_dtype_name(aim_dtype t); /* "F32", "U8", ... (safetensors spelling) */

#define AIM_MAX_DIMS 8

/* A plain n-d array: what .npy files hold and what tensors are made of. */
typedef struct aim_array {
    aim_dtype dtype;
    int ndim;
    int64_t shape[AIM_MAX_DIMS];
    void *data; /* owned, row-major (C order) */
} aim_array;

uint64_t aim_array_numel(const aim_array *a);
void aim_array_free(aim_array *a); /* frees data, leaves a zeroed struct */

/* ------------------------------------------------------------ the system */
/* Seconds on the monotonic clock (for durations, rates and ETAs). */
double aim_now(void);
/* The process's CPU use (cores busy on average since the meter's last
 * sample), its resident memory, the machine's one-minute load; NaN where
 * unknown. aim_sys_sample returns -1 when the CPU use is unknown. */
typedef struct aim_sys {
    float cores, rss_mb, load1;
} aim_sys;
typedef struct aim_sys_meter {
    double cpu, wall;
} aim_sys_meter;
void aim_sys_start(aim_sys_meter *m);
int aim_sys_sample(aim_sys_meter *m, aim_sys *out);

#endif
