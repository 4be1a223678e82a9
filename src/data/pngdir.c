/*
 * pngdir.c - a dataset from a folder of PNG images, one sub-folder per class:
 * path/<class>/<image>.png.
 *
 * Classes are the sub-folders whose names do not start with '.', sorted with
 * strcmp; the label is the class index. Images are the regular files ending
 * in ".png" (any case, hidden files skipped) inside each class folder,
 * sorted with strcmp. Sub-folders of a class folder are ignored.
 *
 * The target size and channel count come from the options or, when those are
 * 0, from the headers: the first image's size, and 1 channel when every
 * image is gray (with or without alpha), else 3. Headers are peeked first,
 * which is cheap; then every image is decoded, converted to the channels,
 * resized when its size differs and stored planar [c, h, w]. Decoding runs
 * in parallel; the first failing file in dataset order is the one reported,
 * whatever the thread count.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "aim/data.h"
#include "aim/io.h"

#define PNGDIR_MAX_CLASSES 1000
#define PNGDIR_MAX_FILES ((int64_t)10000000)

/* A growable list of strings. */
typedef struct str_list {
    char **v;
    int64_t n, cap;
} str_list;

static void list_push(str_list *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = aim_xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    l->v[l->n++] = s;
}

static void list_free(str_list *l)
{
    for (int64_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_png_name(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

/* Names in `dir` (hidden ones skipped) that are folders (want_dir) or regular
 * PNG files, sorted. At most `max` entries; more is an error. */
static int list_dir(const char *dir, int want_dir, int64_t max, const char *what,
                    str_list *out, aim_err *e)
{
    DIR *d = opendir(dir);
    if (!d)
        return aim_errf(e, "%s: cannot open folder: %s", dir, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.')
            continue;
        if (!want_dir && !is_png_name(name))
            continue;
        char *full = aim_xasprintf("%s/%s", dir, name);
        struct stat st;
        int ok = stat(full, &st) == 0 && (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
        free(full);
        if (!ok)
            continue;
        if (out->n >= max) {
            rc = aim_errf(e, "%s: more than %lld %s", dir, (long long)max, what);
            break;
        }
        list_push(out, aim_xstrdup(name));
    }
    closedir(d);
    if (rc == 0 && out->n > 1)
        qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return rc;
}

/* Decode file i into its slot: convert, resize, make planar. */
static int load_one(const char *file, uint8_t *slot, int c, int h, int w,
                    aim_resize_method method, uint64_t max_bytes, aim_err *e)
{
    aim_image im;
    if (max_bytes) { /* the decoded image, before it is resized */
        if (aim_png_peek(file, &im, e) < 0)
            return -1;
        uint64_t bytes = (uint64_t)im.w * (uint64_t)im.h * (uint64_t)c;
        if (bytes > max_bytes) {
            char a[32], b[32];
            aim_fmt_bytes(a, sizeof a, bytes);
            aim_fmt_bytes(b, sizeof b, max_bytes);
            return aim_errf(e, "%s: a %dx%d image takes %s to decode, more than the %s allowed",
                            file, im.w, im.h, a, b);
        }
    }
    if (aim_png_read(file, c, &im, e) < 0)
        return -1;
    const uint8_t *src = im.data;
    uint8_t *tmp = NULL;
    if (im.h != h || im.w != w) {
        tmp = aim_xmalloc((size_t)h * w * c);
        aim_resize(im.data, im.h, im.w, c, tmp, h, w, method);
        src = tmp;
    }
    size_t plane = (size_t)h * w;
    for (int k = 0; k < c; k++)
        for (size_t p = 0; p < plane; p++)
            slot[k * plane + p] = src[p * c + k];
    free(tmp);
    aim_image_free(&im);
    return 0;
}

/* the options a folder of PNGs can be opened with, and the folder */
static int check_open(const char *path, const aim_open_opts *opts, aim_err *e)
{
    if (opts->channels != 0 && opts->channels != 1 && opts->channels != 3 &&
        opts->channels != 4)
        return aim_errf(e, "%s: cannot load PNG images as %d channels (use 1, 3 or 4)", path,
                        opts->channels);
    if (opts->height < 0 || opts->width < 0 || opts->height > AIM_PNG_MAX_SIDE ||
        opts->width > AIM_PNG_MAX_SIDE)
        return aim_errf(e, "%s: image size %d x %d is out of range (at most %d per side)", path,
                        opts->height, opts->width, AIM_PNG_MAX_SIDE);
    if (!aim_is_dir(path)) {
        struct stat st;
        if (stat(path, &st) != 0)
            return aim_errf(e, "%s: %s", path, strerror(errno));
        return aim_errf(e, "%s: not a folder", path);
    }
    return 0;
}

/* the class folders (sorted) and every PNG in them, with its class in
 * *labels (malloc'd); -1 with a message (none, too many, unreadable) */
static int list_images(const char *path, str_list *classes, str_list *files, int32_t **labels,
                       aim_err *e)
{
    if (list_dir(path, 1, PNGDIR_MAX_CLASSES, "class folders", classes, e) < 0)
        return -1;
    if (classes->n == 0)
        return aim_errf(e, "%s: no class folders (expected %s/<class>/<image>.png)", path, path);
    int64_t cap = 0;
    for (int64_t k = 0; k < classes->n; k++) {
        char *cdir = aim_xasprintf("%s/%s", path, classes->v[k]);
        str_list names = {0};
        int rc = list_dir(cdir, 0, PNGDIR_MAX_FILES - files->n, "PNG files", &names, e);
        if (rc < 0) {
            if (files->n + names.n >= PNGDIR_MAX_FILES)
                aim_errf(e, "%s: more than %lld PNG files", path, (long long)PNGDIR_MAX_FILES);
            list_free(&names);
            free(cdir);
            return -1;
        }
        if (files->n + names.n > cap) {
            cap = files->n + names.n;
            *labels = aim_xrealloc(*labels, (size_t)cap * sizeof **labels);
        }
        for (int64_t j = 0; j < names.n; j++) {
            (*labels)[files->n] = (int32_t)k;
            list_push(files, aim_xasprintf("%s/%s", cdir, names.v[j]));
        }
        list_free(&names);
        free(cdir);
    }
    if (files->n == 0)
        return aim_errf(e, "%s: no .png files in its %lld class folder%s", path,
                        (long long)classes->n, classes->n == 1 ? "" : "s");
    return 0;
}

/* channels and size from the headers where the options leave them 0: the
 * first image's size; one channel if every image read is grey */
static int header_shape(const str_list *files, int64_t n, int *c, int *h, int *w, aim_err *e)
{
    if (*c != 0 && *h != 0 && *w != 0)
        return 0;
    int all_gray = 1;
    for (int64_t i = 0; i < n; i++) {
        aim_image hd;
        if (aim_png_peek(files->v[i], &hd, e) < 0)
            return -1;
        if (i == 0) {
            *h = *h ? *h : hd.h;
            *w = *w ? *w : hd.w;
        }
        all_gray &= hd.c <= 2;
        if (*c != 0 || !all_gray)
            break; /* nothing more to learn */
    }
    if (*c == 0)
        *c = all_gray ? 1 : 3;
    return 0;
}

/* decode the first ds->n files into ds, in parallel; the error is the
 * lowest failing file's, as a serial loop would report */
static int load_all(const str_list *files, aim_dataset *ds, const aim_open_opts *opts,
                    aim_err *e)
{
    const int64_t n = ds->n;
    const int c = ds->c, h = ds->h, w = ds->w;
    size_t per = (size_t)c * h * w;
    int64_t bad = n; /* lowest failing index */
    aim_err bad_err = {{0}};
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t i = 0; i < n; i++) {
        int64_t first;
#pragma omp atomic read
        first = bad;
        if (i > first)
            continue; /* an earlier file already failed */
        aim_err err;
        if (load_one(files->v[i], ds->images + (size_t)i * per, c, h, w, opts->resize,
                     opts->max_bytes, &err) < 0) {
#pragma omp critical(aim_pngdir_err)
            {
                if (i < bad) {
                    bad_err = err;
#pragma omp atomic write
                    bad = i;
                }
            }
        }
    }
    if (bad < n) {
        if (e)
            *e = bad_err;
        return -1;
    }
    return 0;
}

aim_dataset *aim_data_open_pngdir(const char *path, const aim_open_opts *opts, aim_err *e)
{
    aim_open_opts def = {0};
    if (!opts)
        opts = &def;
    if (check_open(path, opts, e) != 0)
        return NULL;
    str_list classes = {0}, files = {0};
    int32_t *labels = NULL;
    aim_dataset *ds = NULL;
    if (list_images(path, &classes, &files, &labels, e) != 0)
        goto fail;
    int64_t n = files.n;
    if (opts->limit > 0 && opts->limit < n)
        n = opts->limit;
    int c = opts->channels, h = opts->height, w = opts->width;
    if (header_shape(&files, n, &c, &h, &w, e) != 0)
        goto fail;
    int64_t shape[4] = {n, c, h, w};
    uint64_t total;
    if (aim_shape_numel(shape, 4, AIM_MAX_ALLOC, &total) < 0) {
        aim_errf(e, "%s: %lld images of %d x %d x %d bytes are more than the %llu byte limit",
                 path, (long long)n, c, h, w, (unsigned long long)AIM_MAX_ALLOC);
        goto fail;
    }
    uint64_t need = total + 4 * (uint64_t)n;
    if (opts->max_bytes && need > opts->max_bytes) {
        char a[32], b[32];
        aim_fmt_bytes(a, sizeof a, need);
        aim_fmt_bytes(b, sizeof b, opts->max_bytes);
        aim_errf(e, "%s: %lld images of %dx%dx%d need %s, more than the %s allowed", path,
                 (long long)n, c, h, w, a, b);
        goto fail;
    }
    ds = aim_dataset_try_alloc("pngdir", n, c, h, w, e);
    if (!ds) {
        aim_err_prefix(e, "%s", path);
        goto fail;
    }
    if (load_all(&files, ds, opts, e) != 0)
        goto fail;
    memcpy(ds->labels, labels, (size_t)n * sizeof *labels);
    ds->nclasses = (int)classes.n;
    ds->class_names = aim_xcalloc((size_t)classes.n, sizeof *ds->class_names);
    for (int64_t k = 0; k < classes.n; k++)
        ds->class_names[k] = aim_xstrdup(classes.v[k]);
    ds->path = aim_xstrdup(path);
    aim_dataset_compute_stats(ds);
    list_free(&classes);
    list_free(&files);
    free(labels);
    return ds;

fail:
    aim_dataset_free(ds);
    list_free(&classes);
    list_free(&files);
    free(labels);
    return NULL;
}
