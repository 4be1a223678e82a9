/*
 * idx.c - IDX files (MNIST, Fashion-MNIST), gzipped or plain, and the
 * dataset built from an images file plus its labels file.
 *
 * Format: magic bytes 0, 0, type, ndim; ndim big-endian u32 dimensions; then
 * prod(dims) elements. Only the unsigned byte type (0x08) is read. Plain
 * files must be exactly as long as the header says; for gzipped files the
 * claim is first bounded by what the compressed size can possibly expand to,
 * then the data is read in growing chunks so that a lying header costs no
 * more memory than the data actually present.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "aim/data.h"

/* deflate expands at most ~1032:1; anything beyond this ratio is a lie */
#define IDX_GZ_MAX_RATIO 1100
#define IDX_CHUNK ((size_t)1 << 24)

const char *const aim_fashion_mnist_classes[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

static const char *idx_type_name(int t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return NULL;
    }
}

/* the 4 magic bytes: returns ndim or -1 */
static int idx_magic(const uint8_t m[4], const char *name, aim_err *e)
{
    if (m[0] != 0 || m[1] != 0 || !idx_type_name(m[2]))
        return aim_errf(e, "%s: not an IDX file (bad magic %02x %02x %02x %02x)", name,
                        m[0], m[1], m[2], m[3]);
    if (m[2] != 0x08)
        return aim_errf(e, "%s: unsupported IDX type 0x%02x (%s); only unsigned bytes "
                        "(0x08) are read", name, m[2], idx_type_name(m[2]));
    if (m[3] < 1 || m[3] > 4)
        return aim_errf(e, "%s: IDX ndim %d is not in 1..4", name, m[3]);
    return m[3];
}

/* "60000 x 28 x 28" */
static void idx_dims_str(char *buf, size_t size, const int64_t *dims, int ndim)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < ndim && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%" PRId64, i ? " x " : "", dims[i]);
}

/* big-endian dims after the magic; fills out->ndim/dims and the byte count */
static int idx_dims(const uint8_t *p, int ndim, const char *name, aim_idx *out,
                    uint64_t *numel, aim_err *e)
{
    out->ndim = ndim;
    out->type = 0x08;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *q = p + 4 * i;
        out->dims[i] = (int64_t)((uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 |
                                 (uint32_t)q[2] << 8 | (uint32_t)q[3]);
    }
    if (aim_shape_numel(out->dims, ndim, UINT64_MAX, numel)) {
        char d[128];
        idx_dims_str(d, sizeof d, out->dims, ndim);
        return aim_errf(e, "%s: IDX dims %s overflow", name, d);
    }
    return 0;
}

/* the exact-size check for a plain file or buffer of `have` data bytes */
static int idx_check_size(const aim_idx *x, uint64_t numel, uint64_t have,
                          const char *name, aim_err *e)
{
    char d[128];
    idx_dims_str(d, sizeof d, x->dims, x->ndim);
    if (numel > have)
        return aim_errf(e, "%s: truncated: dims %s need %" PRIu64 " bytes of data but the "
                        "file holds %" PRIu64, name, d, numel, have);
    if (numel < have)
        return aim_errf(e, "%s: %" PRIu64 " trailing bytes after the data (dims %s need %"
                        PRIu64 " bytes)", name, have - numel, d, numel);
    if (numel > AIM_MAX_ALLOC)
        return aim_errf(e, "%s: IDX dims %s are too large (%" PRIu64 " bytes)", name, d,
                        numel);
    return 0;
}

int aim_idx_parse(const uint8_t *buf, size_t len, const char *name, aim_idx *out,
                  aim_err *e)
{
    memset(out, 0, sizeof *out);
    if (!name)
        name = "<memory>";
    if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b)
        return aim_errf(e, "%s: gzip-compressed data (aim_idx_parse reads plain IDX; use "
                        "aim_idx_read)", name);
    if (len < 4)
        return aim_errf(e, "%s: truncated header (%zu bytes)", name, len);
    int ndim = idx_magic(buf, name, e);
    if (ndim < 0)
        return -1;
    size_t hdr = 4 + 4 * (size_t)ndim;
    if (len < hdr)
        return aim_errf(e, "%s: truncated header (%zu bytes, the %d dims need %zu)", name,
                        len, ndim, hdr);
    aim_idx x;
    memset(&x, 0, sizeof x);
    uint64_t numel;
    if (idx_dims(buf + 4, ndim, name, &x, &numel, e) ||
        idx_check_size(&x, numel, len - hdr, name, e))
        return -1;
    x.data = aim_try_malloc((size_t)numel);
    if (!x.data)
        return aim_errf(e, "%s: out of memory for %" PRIu64 " bytes", name, numel);
    if (numel)
        memcpy(x.data, buf + hdr, (size_t)numel);
    *out = x;
    return 0;
}

/* zlib's message without the "path: " it puts in front */
static const char *idx_zmsg(const char *msg, const char *path)
{
    size_t n = strlen(path);
    if (msg && !strncmp(msg, path, n) && msg[n] == ':' && msg[n + 1] == ' ')
        return msg + n + 2;
    return msg ? msg : "unknown error";
}

/* a zlib error after a short or failed read */
static int idx_gz_error(gzFile gz, const char *name, uint64_t want, uint64_t got,
                        aim_err *e)
{
    int errnum = Z_OK;
    const char *msg = idx_zmsg(gzerror(gz, &errnum), name);
    if (errnum == Z_ERRNO)
        return aim_errf(e, "%s: read error: %s", name, strerror(errno));
    if (errnum == Z_BUF_ERROR)
        return aim_errf(e, "%s: truncated gzip stream: expected %" PRIu64 " bytes of data, "
                        "got %" PRIu64 " (zlib: %s)", name, want, got, msg);
    if (errnum != Z_OK)
        return aim_errf(e, "%s: gzip stream is corrupt (zlib: %s)", name, msg);
    return aim_errf(e, "%s: truncated: expected %" PRIu64 " bytes of data, got %" PRIu64,
                    name, want, got);
}

/* read up to n bytes; returns bytes read or -1 on a zlib error */
static int64_t idx_gz_read(gzFile gz, uint8_t *dst, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t step = n - done < IDX_CHUNK ? n - done : IDX_CHUNK;
        int r = gzread(gz, dst + done, (unsigned)step);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        done += (size_t)r;
        if ((size_t)r < step) {
            int errnum = Z_OK;
            gzerror(gz, &errnum);
            if (errnum != Z_OK)
                break;
        }
    }
    return (int64_t)done;
}

int aim_idx_read(const char *path, aim_idx *out, aim_err *e)
{
    memset(out, 0, sizeof *out);
    int64_t fsize = aim_file_size(path, e);
    if (fsize < 0)
        return -1;
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return aim_errf(e, "%s: cannot open: %s", path, errno ? strerror(errno) : "zlib");
    gzbuffer(gz, 1 << 17);
    aim_idx x;
    memset(&x, 0, sizeof x);
    uint8_t hdr[4 + 4 * 4];
    uint64_t numel = 0, got = 0;
    int64_t r = idx_gz_read(gz, hdr, 4);
    if (r < 4) {
        int errnum = Z_OK;
        const char *msg = idx_zmsg(gzerror(gz, &errnum), path);
        if (errnum == Z_BUF_ERROR)
            aim_errf(e, "%s: truncated gzip stream in the header (zlib: %s)", path, msg);
        else if (errnum != Z_OK)
            aim_errf(e, "%s: gzip stream is corrupt (zlib: %s)", path, msg);
        else
            aim_errf(e, "%s: truncated header (%" PRId64 " bytes)", path, r);
        goto fail;
    }
    int plain = gzdirect(gz);
    int ndim = idx_magic(hdr, path, e);
    if (ndim < 0)
        goto fail;
    r = idx_gz_read(gz, hdr + 4, 4 * (size_t)ndim);
    if (r < 4 * ndim) {
        int errnum = Z_OK;
        const char *msg = idx_zmsg(gzerror(gz, &errnum), path);
        if (errnum != Z_OK && errnum != Z_BUF_ERROR)
            aim_errf(e, "%s: gzip stream is corrupt (zlib: %s)", path, msg);
        else
            aim_errf(e, "%s: truncated header (the %d dims need %d bytes, got %" PRId64 ")",
                     path, ndim, 4 * ndim, r < 0 ? 0 : r);
        goto fail;
    }
    if (idx_dims(hdr + 4, ndim, path, &x, &numel, e))
        goto fail;
    char d[128];
    idx_dims_str(d, sizeof d, x.dims, ndim);
    size_t cap;
    if (plain) {
        uint64_t hdr_len = 4 + 4 * (uint64_t)ndim;
        if (idx_check_size(&x, numel, (uint64_t)fsize > hdr_len ? (uint64_t)fsize - hdr_len : 0,
                           path, e))
            goto fail;
        cap = (size_t)numel;
    } else {
        if (numel > (uint64_t)fsize * IDX_GZ_MAX_RATIO) {
            aim_errf(e, "%s: IDX dims %s claim %" PRIu64 " bytes, more than a %" PRId64
                     "-byte gzip file can hold", path, d, numel, fsize);
            goto fail;
        }
        if (numel > AIM_MAX_ALLOC) {
            aim_errf(e, "%s: IDX dims %s are too large (%" PRIu64 " bytes)", path, d, numel);
            goto fail;
        }
        cap = numel < IDX_CHUNK ? (size_t)numel : IDX_CHUNK;
    }
    x.data = aim_try_malloc(cap);
    if (!x.data) {
        aim_errf(e, "%s: out of memory for %zu bytes", path, cap);
        goto fail;
    }
    while (got < numel) {
        if (got == cap) {
            size_t ncap = cap * 2 < numel ? cap * 2 : (size_t)numel;
            uint8_t *p = realloc(x.data, ncap);
            if (!p) {
                aim_errf(e, "%s: out of memory for %zu bytes", path, ncap);
                goto fail;
            }
            x.data = p;
            cap = ncap;
        }
        r = idx_gz_read(gz, x.data + got, cap - (size_t)got);
        if (r > 0)
            got += (uint64_t)r;
        if (r <= 0 || got < cap) {
            idx_gz_error(gz, path, numel, got, e);
            goto fail;
        }
    }
    /* nothing may follow the data, and the gzip trailer must check out */
    uint8_t extra;
    r = idx_gz_read(gz, &extra, 1);
    if (r != 0) {
        if (r > 0)
            aim_errf(e, "%s: trailing data after the %" PRIu64 " bytes the header claims "
                     "(dims %s)", path, numel, d);
        else
            idx_gz_error(gz, path, numel, got, e);
        goto fail;
    }
    int errnum = Z_OK;
    const char *msg = idx_zmsg(gzerror(gz, &errnum), path);
    if (errnum != Z_OK) {
        if (errnum == Z_BUF_ERROR)
            aim_errf(e, "%s: truncated gzip stream (zlib: %s)", path, msg);
        else
            aim_errf(e, "%s: gzip stream is corrupt (zlib: %s)", path, msg);
        goto fail;
    }
    gzclose(gz);
    *out = x;
    return 0;
fail:
    gzclose(gz);
    free(x.data);
    return -1;
}

void aim_idx_free(aim_idx *x)
{
    if (!x)
        return;
    free(x->data);
    memset(x, 0, sizeof *x);
}

/* --------------------------------------------------------------- datasets */

static int file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fclose(f);
    return !aim_is_dir(path);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* The labels file next to an images file: "-images-idx3-" becomes
 * "-labels-idx1-", with the same suffix first, then with/without ".gz".
 * Returns a fresh string or NULL with a message. */
static char *idx_find_labels(const char *images, aim_err *e)
{
    static const char *const from[2] = {"-images-idx3-", "-images.idx3-"};
    static const char *const to[2] = {"-labels-idx1-", "-labels.idx1-"};
    const char *base = aim_basename(images);
    for (int k = 0; k < 2; k++) {
        const char *hit = strstr(base, from[k]);
        if (!hit)
            continue;
        size_t pos = (size_t)(hit - images);
        size_t flen = strlen(from[k]);
        char *same = aim_xasprintf("%.*s%s%s", (int)pos, images, to[k], images + pos + flen);
        if (file_exists(same))
            return same;
        char *other;
        if (ends_with(same, ".gz"))
            other = aim_xasprintf("%.*s", (int)(strlen(same) - 3), same);
        else
            other = aim_xasprintf("%s.gz", same);
        if (file_exists(other)) {
            free(same);
            return other;
        }
        aim_errf(e, "%s: labels file not found (looked for %s and %s)", images, same, other);
        free(same);
        free(other);
        return NULL;
    }
    aim_errf(e, "%s: cannot tell where the labels are (the name has no \"-images-idx3-\" "
             "to turn into \"-labels-idx1-\"); give the labels file", images);
    return NULL;
}

/* the images live in the Fashion-MNIST folder (or one named like it) */
static int idx_is_fashion(const char *images)
{
    char *dir = aim_dirname(images);
    int yes = 0;
    char *a = realpath(dir, NULL);
    char *b = realpath(aim_fashion_mnist_dir(), NULL);
    if (a && b && !strcmp(a, b))
        yes = 1;
    const char *name = aim_basename(a ? a : dir);
    for (const char *p = name; *p && !yes; p++)
        if (!strncasecmp(p, "fashion", 7))
            yes = 1;
    free(a);
    free(b);
    free(dir);
    return yes;
}

static void idx_set_fashion_names(aim_dataset *ds)
{
    if (ds->class_names || ds->nclasses > 10)
        return;
    ds->nclasses = 10;
    ds->class_names = aim_xcalloc(10, sizeof(char *));
    for (int i = 0; i < 10; i++)
        ds->class_names[i] = aim_xstrdup(aim_fashion_mnist_classes[i]);
}

aim_dataset *aim_data_open_idx(const char *images_path, const char *labels_path,
                               aim_err *e)
{
    aim_idx img, lab;
    memset(&lab, 0, sizeof lab);
    char *found = NULL;
    aim_dataset *ds = NULL;
    if (aim_idx_read(images_path, &img, e))
        return NULL;
    if (img.ndim != 3) {
        aim_errf(e, "%s: an images file must be 3-d [n, rows, cols], this one has %d "
                 "dimension%s", images_path, img.ndim, img.ndim == 1 ? "" : "s");
        goto done;
    }
    if (img.dims[0] < 1 || img.dims[1] < 1 || img.dims[2] < 1 || img.dims[1] > INT_MAX ||
        img.dims[2] > INT_MAX) {
        aim_errf(e, "%s: bad image dims %" PRId64 " x %" PRId64 " x %" PRId64, images_path,
                 img.dims[0], img.dims[1], img.dims[2]);
        goto done;
    }
    if (!labels_path) {
        found = idx_find_labels(images_path, e);
        if (!found)
            goto done;
        labels_path = found;
    }
    if (aim_idx_read(labels_path, &lab, e))
        goto done;
    if (lab.ndim != 1) {
        aim_errf(e, "%s: a labels file must be 1-d [n], this one has %d dimensions",
                 labels_path, lab.ndim);
        goto done;
    }
    if (lab.dims[0] != img.dims[0]) {
        aim_errf(e, "%s has %" PRId64 " images but %s has %" PRId64 " labels", images_path,
                 img.dims[0], labels_path, lab.dims[0]);
        goto done;
    }
    int64_t n = img.dims[0];
    /* allocate a dataset with no image buffer, then hand it the IDX data */
    ds = aim_dataset_alloc("idx", 0, 1, (int)img.dims[1], (int)img.dims[2]);
    free(ds->images);
    free(ds->labels);
    ds->n = n;
    ds->images = img.data;
    img.data = NULL;
    ds->labels = aim_try_malloc((size_t)n * sizeof(int32_t));
    if (!ds->labels) {
        aim_errf(e, "%s: out of memory for %" PRId64 " labels", labels_path, n);
        aim_dataset_free(ds);
        ds = NULL;
        goto done;
    }
    int maxl = 0;
    for (int64_t i = 0; i < n; i++) {
        ds->labels[i] = lab.data[i];
        if (lab.data[i] > maxl)
            maxl = lab.data[i];
    }
    ds->nclasses = maxl + 1;
    ds->path = aim_xstrdup(images_path);
    const char *base = aim_basename(images_path);
    if (!strncmp(base, "train", 5))
        ds->split = aim_xstrdup("train");
    else if (!strncmp(base, "t10k", 4) || !strncmp(base, "test", 4))
        ds->split = aim_xstrdup("test");
    if (idx_is_fashion(images_path))
        idx_set_fashion_names(ds);
    aim_dataset_compute_stats(ds);
done:
    aim_idx_free(&img);
    aim_idx_free(&lab);
    free(found);
    return ds;
}

const char *aim_fashion_mnist_dir(void)
{
    const char *d = getenv("AIM_FASHION_MNIST");
    return d && *d ? d : "/usr/share/datasets/fashion-mnist";
}

/* dir/name.gz or dir/name, whichever exists (fresh string), else NULL */
static char *idx_pick(const char *dir, const char *name)
{
    char *p = aim_xasprintf("%s/%s.gz", dir, name);
    if (file_exists(p))
        return p;
    free(p);
    p = aim_xasprintf("%s/%s", dir, name);
    if (file_exists(p))
        return p;
    free(p);
    return NULL;
}

aim_dataset *aim_data_fashion_mnist(const char *split, const char *dir, aim_err *e)
{
    if (!dir)
        dir = aim_fashion_mnist_dir();
    if (!split)
        split = "train";
    const char *prefix;
    if (!strcmp(split, "train"))
        prefix = "train";
    else if (!strcmp(split, "test"))
        prefix = "t10k";
    else {
        aim_errf(e, "Fashion-MNIST split '%s' is not \"train\" or \"test\"", split);
        return NULL;
    }
    char names[2][64];
    snprintf(names[0], sizeof names[0], "%s-images-idx3-ubyte", prefix);
    snprintf(names[1], sizeof names[1], "%s-labels-idx1-ubyte", prefix);
    char *images = aim_is_dir(dir) ? idx_pick(dir, names[0]) : NULL;
    char *labels = images ? idx_pick(dir, names[1]) : NULL;
    aim_dataset *ds = NULL;
    if (!images || !labels)
        aim_errf(e, "Fashion-MNIST not found in %s (install the Debian package "
                 "dataset-fashion-mnist or set AIM_FASHION_MNIST)", dir);
    else
        ds = aim_data_open_idx(images, labels, e);
    if (ds)
        idx_set_fashion_names(ds);
    free(images);
    free(labels);
    return ds;
}
