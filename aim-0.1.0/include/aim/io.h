/*
 * aim/io.h - file formats: NumPy .npy, safetensors, PNG.
 *
 * Every reader validates each header field and size against the real file
 * size before allocating or reading, and reports a hostile or truncated file
 * as an error naming the file and the problem. Each format also has an
 * in-memory entry point (`*_parse` / `*_decode`) used by the file readers, by
 * tests and by fuzz harnesses.
 */
#ifndef AIM_IO_H
#define AIM_IO_H

#include <stdint.h>
#include <stddef.h>

#include "aim/core.h"

/* ------------------------------------------------------------------ npy */
/* Reads float32 ('<f4'), uint8 ('|u1'), also int64 ('<i8'), int32 ('<i4')
 * and float64 ('<f8'), C order only, format versions 1.0, 2.0 and 3.0.
 * Anything else (big-endian, Fortran order, object arrays, ...) is an error. */
int aim_npy_read(const char *path, aim_array *out, aim_err *e);
/* name is used in messages only */
int aim_npy_parse(const uint8_t *buf, size_t len, const char *name, aim_array *out,
                  aim_err *e);
/* Header only: dtype and shape, data left NULL. */
int aim_npy_peek(const char *path, aim_array *out, aim_err *e);
/* Writes version 1.0 (2.0 if the header needs it), atomically. */
int aim_npy_write(const char *path, const aim_array *a, aim_err *e);

/* ---------------------------------------------------------- safetensors */
/* https://github.com/huggingface/safetensors format: u64 LE header length,
 * JSON header {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
 * "__metadata__": {"k": "v"}}, then the data section. Offsets are relative to
 * the data section, must lie inside it, match dtype x shape, must not overlap
 * and must cover the data section without holes. */
typedef struct aim_st_tensor {
    char *name;
    aim_dtype dtype;
    int ndim;
    int64_t shape[AIM_MAX_DIMS];
    uint64_t begin, end; /* byte offsets inside the data section */
} aim_st_tensor;

typedef struct aim_st_file {
    char *path;
    int ntensors;
    aim_st_tensor *tensors; /* in file (data offset) order */
    int nmeta;
    char **meta_keys;       /* __metadata__, in header order */
    char **meta_vals;
    uint64_t header_len;    /* the JSON header's length in bytes */
    uint64_t data_len;      /* bytes in the data section */
    uint8_t *data;          /* the data section (owned), NULL for aim_st_peek */
} aim_st_file;

/* Open and fully load (header + data) a safetensors file. */
aim_st_file *aim_st_open(const char *path, aim_err *e);
/* Header only (tensor table and metadata), data not read. */
aim_st_file *aim_st_peek(const char *path, aim_err *e);
/* Parse a whole file image from memory (copies what it keeps). */
aim_st_file *aim_st_parse(const uint8_t *buf, size_t len, const char *name, aim_err *e);
void aim_st_close(aim_st_file *f);
const aim_st_tensor *aim_st_find(const aim_st_file *f, const char *name);
const char *aim_st_meta(const aim_st_file *f, const char *key); /* NULL if absent */
const void *aim_st_data(const aim_st_file *f, const aim_st_tensor *t);

typedef struct aim_st_entry {
    const char *name;
    aim_dtype dtype;
    int ndim;
    int64_t shape[AIM_MAX_DIMS];
    const void *data; /* numel * dtype size bytes, little endian */
} aim_st_entry;

/* Write atomically (temporary + fsync + rename). meta: nmeta key/value pairs
 * as meta[2*i], meta[2*i+1]. Names must be unique and non-empty. Tensors are
 * stored in the given order; the header is padded with spaces to 8 bytes. */
int aim_st_write(const char *path, const aim_st_entry *t, int n,
                 const char *const *meta, int nmeta, aim_err *e);

/* ------------------------------------------------------------------ PNG */
/* Interleaved 8-bit image: data[(y * w + x) * c + k]. */
typedef struct aim_image {
    int w, h, c;
    uint8_t *data;
} aim_image;

#define AIM_PNG_MAX_SIDE 16384
#define AIM_PNG_MAX_PIXELS ((uint64_t)1 << 26) /* 64 Mpixel */

/* Decode any PNG (palette, gray, gray+alpha, RGB, RGBA; 1..16 bit; interlaced)
 * into 8 bits per channel. want_c = 1 (gray, luminance), 3 (RGB) or 4 (RGBA);
 * 0 keeps the file's own channels (1, 2, 3 or 4). Alpha is composited over
 * black when dropped. Images larger than the limits above are refused before
 * any pixel memory is allocated. */
int aim_png_read(const char *path, int want_c, aim_image *out, aim_err *e);
int aim_png_decode(const uint8_t *buf, size_t len, const char *name, int want_c,
                   aim_image *out, aim_err *e);
/* Header only: w, h and the file's channel count. */
int aim_png_peek(const char *path, aim_image *out, aim_err *e);
/* c = 1 (gray), 3 (RGB) or 4 (RGBA); atomic write. */
int aim_png_write(const char *path, const uint8_t *pix, int w, int h, int c,
                  aim_err *e);
void aim_image_free(aim_image *im);

/* A grid of n planar images [n, c, h, w] (c = 1 or 3) as one PNG: `cols`
 * images per row, `border` pixels of `border_value` between and around them,
 * each image scaled up by the integer `scale` (nearest neighbour). */
int aim_png_write_grid(const char *path, const uint8_t *imgs, int n, int c, int h,
                       int w, int cols, int border, int scale, uint8_t border_value,
                       aim_err *e);

/* The same two encoders into memory: *out (malloc'd, *len bytes; the caller
 * frees it) holds the PNG file; errors name "<memory>". The grid's size in
 * pixels goes to *width and *height (either may be NULL). */
int aim_png_encode(const uint8_t *pix, int w, int h, int c, uint8_t **out, size_t *len,
                   aim_err *e);
int aim_png_encode_grid(const uint8_t *imgs, int n, int c, int h, int w, int cols, int border,
                        int scale, uint8_t border_value, uint8_t **out, size_t *len,
                        int *width, int *height, aim_err *e);

#endif
