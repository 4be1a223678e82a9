/*
 * dataset.c - the in-memory dataset object shared by every loader:
 * allocation, statistics, truncation, and aim_data_open(), which recognises
 * what a path holds and hands it to the right loader.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/data.h"

/* the dataset's header, without its images and labels */
static aim_dataset *dataset_shell(const char *kind, int64_t n, int c, int h, int w)
{
    aim_dataset *ds = aim_xcalloc(1, sizeof *ds);
    snprintf(ds->kind, sizeof ds->kind, "%s", kind);
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    for (int k = 0; k < AIM_MAX_CHANNELS; k++) {
        ds->mean[k] = 0.5f;
        ds->std[k] = 0.25f;
    }
    return ds;
}

aim_dataset *aim_dataset_alloc(const char *kind, int64_t n, int c, int h, int w)
{
    aim_dataset *ds = dataset_shell(kind, n, c, h, w);
    ds->images = aim_xmalloc((size_t)n * (size_t)c * (size_t)h * (size_t)w);
    ds->labels = aim_xcalloc((size_t)(n ? n : 1), sizeof(int32_t));
    return ds;
}

aim_dataset *aim_dataset_try_alloc(const char *kind, int64_t n, int c, int h, int w,
                                   aim_err *e)
{
    int64_t shape[4] = {n, c, h, w};
    uint64_t px = 0, lim = aim_mem_limit();
    char need[32], have[32];
    aim_fmt_bytes(have, sizeof have, lim);
    if (n < 0 || c < 1 || h < 1 || w < 1 || aim_shape_numel(shape, 4, lim, &px) != 0 ||
        px + 4 * (uint64_t)n > lim) {
        /* in doubles: the product may not fit 64 bits */
        double bytes = (double)n * c * h * w + 4.0 * n;
        aim_fmt_bytes(need, sizeof need, bytes < 1.8e19 ? (uint64_t)bytes : UINT64_MAX);
        aim_errf(e, "%lld images of %dx%dx%d need %s, more than the %s allowed", (long long)n,
                 c, h, w, need, have);
        return NULL;
    }
    aim_dataset *ds = dataset_shell(kind, n, c, h, w);
    ds->images = aim_try_malloc((size_t)px);
    ds->labels = calloc((size_t)(n ? n : 1), sizeof(int32_t));
    if (!ds->images || !ds->labels) {
        aim_dataset_free(ds);
        aim_fmt_bytes(need, sizeof need, px + 4 * (uint64_t)n);
        aim_errf(e, "out of memory: %lld images of %dx%dx%d need %s", (long long)n, c, h, w,
                 need);
        return NULL;
    }
    return ds;
}

void aim_dataset_free(aim_dataset *ds)
{
    if (!ds)
        return;
    free(ds->path);
    free(ds->split);
    free(ds->images);
    free(ds->labels);
    if (ds->class_names) {
        for (int i = 0; i < ds->nclasses; i++)
            free(ds->class_names[i]);
        free(ds->class_names);
    }
    free(ds);
}

void aim_dataset_compute_stats(aim_dataset *ds)
{
    size_t plane = (size_t)ds->h * (size_t)ds->w;
    for (int k = 0; k < ds->c && k < AIM_MAX_CHANNELS; k++) {
        /* integer histogram: exact and independent of the summation order */
        uint64_t hist[256] = {0};
        for (int64_t i = 0; i < ds->n; i++) {
            const uint8_t *p = ds->images + ((size_t)i * ds->c + k) * plane;
            for (size_t j = 0; j < plane; j++)
                hist[p[j]]++;
        }
        double cnt = 0, sum = 0, sum2 = 0;
        for (int v = 0; v < 256; v++) {
            double x = v / 255.0;
            cnt += hist[v];
            sum += hist[v] * x;
            sum2 += hist[v] * x * x;
        }
        double mean = cnt ? sum / cnt : 0.5;
        double var = cnt ? sum2 / cnt - mean * mean : 0.0625;
        double sd = sqrt(var > 0 ? var : 0);
        ds->mean[k] = (float)mean;
        ds->std[k] = (float)(sd > 1e-3 ? sd : 1.0);
    }
}

void aim_dataset_truncate(aim_dataset *ds, int64_t n)
{
    if (n >= 0 && n < ds->n)
        ds->n = n;
}

/* ------------------------------------------------------------ conversion */

/* luminance of an 8-bit RGB triple, as the PNG loader computes it */
static uint8_t luma(int r, int g, int b)
{
    return (uint8_t)((299 * r + 587 * g + 114 * b + 500) / 1000);
}

int aim_dataset_convert(aim_dataset *ds, int c, int h, int w, aim_resize_method method,
                        aim_err *e)
{
    if (c <= 0)
        c = ds->c;
    if (h <= 0)
        h = ds->h;
    if (w <= 0)
        w = ds->w;
    if (c == ds->c && h == ds->h && w == ds->w)
        return 0;
    if (c != 1 && c != 3 && c != 4)
        return aim_errf(e, "channels must be 1, 3 or 4 (got %d)", c);
    if (h > 4096 || w > 4096)
        return aim_errf(e, "image size %dx%d is larger than 4096x4096", h, w);
    uint64_t bytes = (uint64_t)ds->n * c * h * w;
    if (bytes > AIM_MAX_ALLOC)
        return aim_errf(e, "converting %lld images to %dx%dx%d needs %llu bytes",
                        (long long)ds->n, c, h, w, (unsigned long long)bytes);
    uint8_t *out = aim_try_malloc((size_t)bytes);
    if (!out)
        return aim_errf(e, "out of memory converting the dataset (%llu bytes)",
                        (unsigned long long)bytes);
    size_t sp = (size_t)ds->h * ds->w, dp = (size_t)h * w;
    int sc = ds->c;
#pragma omp parallel
    {
        uint8_t *mid = aim_xmalloc(sp * (size_t)c);
        uint8_t *dst = aim_xmalloc(dp * (size_t)c);
#pragma omp for schedule(static)
        for (int64_t i = 0; i < ds->n; i++) {
            const uint8_t *img = ds->images + (size_t)i * sc * sp;
            /* planar -> interleaved with the channel change */
            for (size_t j = 0; j < sp; j++) {
                uint8_t px[4];
                for (int k = 0; k < sc; k++)
                    px[k] = img[(size_t)k * sp + j];
                if (c == 1)
                    mid[j] = sc >= 3 ? luma(px[0], px[1], px[2]) : px[0];
                else
                    for (int k = 0; k < c; k++)
                        mid[j * c + k] = sc >= 3 ? (k < 3 ? px[k] : (sc == 4 ? px[3] : 255))
                                                 : (k < 3 ? px[0] : (sc == 2 ? px[1] : 255));
            }
            const uint8_t *res = mid;
            if (h != ds->h || w != ds->w) {
                aim_resize(mid, ds->h, ds->w, c, dst, h, w, method);
                res = dst;
            }
            uint8_t *o = out + (size_t)i * c * dp;
            for (size_t j = 0; j < dp; j++)
                for (int k = 0; k < c; k++)
                    o[(size_t)k * dp + j] = res[j * c + k];
        }
        free(mid);
        free(dst);
    }
    free(ds->images);
    ds->images = out;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    aim_dataset_compute_stats(ds);
    return 0;
}

/* ------------------------------------------------------------ detection */

static int has_file(const char *dir, const char *name)
{
    char *p = aim_xasprintf("%s/%s", dir, name);
    int64_t s = aim_file_size(p, NULL);
    free(p);
    return s >= 0;
}

/* "train-images-idx3-ubyte[.gz]" style files in a folder, for a split */
static char *idx_in_dir(const char *dir, const char *split)
{
    const char *pre = (!split || !strcmp(split, "train")) ? "train" : "t10k";
    const char *suf[] = {".gz", ""};
    for (int i = 0; i < 2; i++) {
        char *name = aim_xasprintf("%s-images-idx3-ubyte%s", pre, suf[i]);
        int ok = has_file(dir, name);
        if (ok) {
            char *p = aim_xasprintf("%s/%s", dir, name);
            free(name);
            return p;
        }
        free(name);
        /* some mirrors use dots: train-images.idx3-ubyte */
        name = aim_xasprintf("%s-images.idx3-ubyte%s", pre, suf[i]);
        ok = has_file(dir, name);
        if (ok) {
            char *p = aim_xasprintf("%s/%s", dir, name);
            free(name);
            return p;
        }
        free(name);
    }
    return NULL;
}

int aim_data_sniff(const char *path, aim_err *e)
{
    if (aim_is_dir(path)) {
        char *a = idx_in_dir(path, "train"), *b = idx_in_dir(path, "test");
        int found = a || b;
        free(a);
        free(b);
        if (found)
            return AIM_SNIFF_IDX_DIR;
        if (has_file(path, "data_batch_1.bin") || has_file(path, "test_batch.bin"))
            return AIM_SNIFF_CIFAR_DIR;
        return AIM_SNIFF_PNG_DIR;
    }
    int64_t size = aim_file_size(path, e);
    if (size < 0)
        return -1;
    uint8_t m[16] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return aim_errf(e, "%s: cannot open", path);
    size_t got = fread(m, 1, sizeof m, f);
    fclose(f);
    if (got >= 6 && !memcmp(m, "\x93NUMPY", 6))
        return AIM_SNIFF_NPY;
    if (got >= 8 && !memcmp(m, "\x89PNG\r\n\x1a\n", 8))
        return AIM_SNIFF_PNG;
    if (got >= 2 && m[0] == 0x1f && m[1] == 0x8b)
        return AIM_SNIFF_IDX; /* gzip: the only gzipped format we read is IDX */
    if (got >= 4 && m[0] == 0 && m[1] == 0 && m[2] >= 0x08 && m[2] <= 0x0e && m[3] >= 1 &&
        m[3] <= 8)
        return AIM_SNIFF_IDX;
    if (got >= 9) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = (n << 8) | m[i];
        if (n >= 2 && n <= (uint64_t)size - 8 && m[8] == '{')
            return AIM_SNIFF_SAFETENSORS;
    }
    size_t len = strlen(path);
    if (len > 4 && !strcmp(path + len - 4, ".bin"))
        return AIM_SNIFF_CIFAR;
    if (len > 12 && !strcmp(path + len - 12, ".safetensors"))
        return AIM_SNIFF_SAFETENSORS;
    if (len > 4 && !strcmp(path + len - 4, ".npy"))
        return AIM_SNIFF_NPY;
    return aim_errf(e, "%s: unrecognised file format (not IDX, CIFAR-10 .bin, PNG, .npy or "
                       "safetensors)", path);
}

aim_dataset *aim_data_open(const char *path, const aim_open_opts *opts, aim_err *e)
{
    aim_open_opts o = {0};
    if (opts)
        o = *opts;
    if (o.split && strcmp(o.split, "train") && strcmp(o.split, "test")) {
        aim_errf(e, "split must be \"train\" or \"test\" (got \"%s\")", o.split);
        return NULL;
    }
    aim_dataset *ds = NULL;
    int kind = aim_data_sniff(path, e);
    switch (kind) {
    case AIM_SNIFF_IDX_DIR: {
        char *img = idx_in_dir(path, o.split);
        if (!img) {
            aim_errf(e, "%s: no %s images (e.g. %s-images-idx3-ubyte.gz) in this folder", path,
                     o.split ? o.split : "train",
                     (!o.split || !strcmp(o.split, "train")) ? "train" : "t10k");
            return NULL;
        }
        ds = aim_data_open_idx(img, NULL, e);
        free(img);
        break;
    }
    case AIM_SNIFF_IDX:
        ds = aim_data_open_idx(path, NULL, e);
        break;
    case AIM_SNIFF_CIFAR:
    case AIM_SNIFF_CIFAR_DIR:
        ds = aim_data_open_cifar(path, o.split, e);
        break;
    case AIM_SNIFF_PNG_DIR:
        return aim_data_open_pngdir(path, &o, e); /* handles size/channels/limit */
    case AIM_SNIFF_PNG:
        aim_errf(e, "%s: a single PNG is not a dataset (give the folder holding one "
                    "sub-folder per class)", path);
        return NULL;
    case AIM_SNIFF_NPY:
    case AIM_SNIFF_SAFETENSORS:
        aim_errf(e, "%s: is a %s file, not a dataset", path,
                 kind == AIM_SNIFF_NPY ? ".npy" : "safetensors");
        return NULL;
    default:
        return NULL;
    }
    if (!ds)
        return NULL;
    if (o.limit > 0)
        aim_dataset_truncate(ds, o.limit);
    if (aim_dataset_convert(ds, o.channels, o.height, o.width, o.resize, e) != 0) {
        aim_err_prefix(e, "%s", path);
        aim_dataset_free(ds);
        return NULL;
    }
    return ds;
}
