/*
 * cifar.c - CIFAR-10 binary batches.
 *
 * A batch file is a sequence of 3073-byte records: one label byte (0..9)
 * then a 3x32x32 image stored planar (1024 red, 1024 green, 1024 blue bytes,
 * each plane row-major) - exactly the dataset's [c, h, w] layout. A folder
 * holds data_batch_1.bin .. data_batch_5.bin (train), test_batch.bin (test)
 * and batches.meta.txt with one class name per line.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "aim/data.h"

#define CIFAR_PIXELS 3072
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_MAX_FILES 5
#define CIFAR_META_MAX ((uint64_t)1 << 16)

static const char *const cifar_classes[10] = {
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
};

int aim_cifar_parse(const uint8_t *buf, size_t len, const char *name, aim_dataset *into,
                    int64_t at, aim_err *e)
{
    if (!name)
        name = "<memory>";
    if (len == 0 || len % CIFAR_RECORD)
        return aim_errf(e, "%s: size %zu is not a positive multiple of the %d-byte CIFAR-10 "
                        "record", name, len, CIFAR_RECORD);
    if (into->c != 3 || into->h != 32 || into->w != 32)
        return aim_errf(e, "%s: the dataset is %dx%dx%d, CIFAR-10 records are 3x32x32",
                        name, into->c, into->h, into->w);
    int64_t nrec = (int64_t)(len / CIFAR_RECORD);
    if (at < 0 || at > into->n || nrec > into->n - at)
        return aim_errf(e, "%s: %" PRId64 " records do not fit at index %" PRId64
                        " of a dataset of %" PRId64, name, nrec, at, into->n);
    for (int64_t i = 0; i < nrec; i++) {
        const uint8_t *r = buf + (size_t)i * CIFAR_RECORD;
        if (r[0] > 9)
            return aim_errf(e, "%s: record %" PRId64 ": label %d is not in 0..9", name, i,
                            r[0]);
        into->labels[at + i] = r[0];
        memcpy(into->images + (size_t)(at + i) * CIFAR_PIXELS, r + 1, CIFAR_PIXELS);
    }
    return 0;
}

/* class names from dir/batches.meta.txt (non-empty lines, at most 10); the
 * standard names fill whatever the file does not give */
static void cifar_class_names(aim_dataset *ds, const char *dir)
{
    ds->nclasses = 10;
    ds->class_names = aim_xcalloc(10, sizeof(char *));
    char *meta = aim_xasprintf("%s/batches.meta.txt", dir);
    uint8_t *buf = NULL;
    size_t len = 0;
    int k = 0;
    if (aim_read_file(meta, CIFAR_META_MAX, &buf, &len, NULL) == 0) {
        size_t i = 0;
        while (i < len && k < 10) {
            size_t j = i;
            while (j < len && buf[j] != '\n')
                j++;
            size_t a = i, b = j;
            while (a < b && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r'))
                a++;
            while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\r'))
                b--;
            if (b > a)
                ds->class_names[k++] = aim_xasprintf("%.*s", (int)(b - a), buf + a);
            i = j + 1;
        }
        free(buf);
    }
    for (; k < 10; k++)
        ds->class_names[k] = aim_xstrdup(cifar_classes[k]);
    free(meta);
}

aim_dataset *aim_data_open_cifar(const char *path, const char *split, aim_err *e)
{
    char *files[CIFAR_MAX_FILES];
    int64_t sizes[CIFAR_MAX_FILES];
    int nfiles = 0;
    char *dir = NULL;
    const char *ds_split = NULL;
    aim_dataset *ds = NULL;

    if (aim_is_dir(path)) {
        dir = aim_xstrdup(path);
        if (!split || !strcmp(split, "train")) {
            ds_split = "train";
            for (int i = 1; i <= CIFAR_MAX_FILES; i++) {
                char *f = aim_xasprintf("%s/data_batch_%d.bin", path, i);
                int64_t s = aim_file_size(f, NULL);
                if (s >= 0) {
                    sizes[nfiles] = s;
                    files[nfiles++] = f;
                } else {
                    free(f);
                }
            }
            if (!nfiles) {
                aim_errf(e, "%s: no CIFAR-10 training batches (data_batch_1.bin .. "
                         "data_batch_5.bin) in this folder", path);
                goto done;
            }
        } else if (!strcmp(split, "test")) {
            ds_split = "test";
            char *f = aim_xasprintf("%s/test_batch.bin", path);
            int64_t s = aim_file_size(f, NULL);
            if (s < 0) {
                aim_errf(e, "%s: no CIFAR-10 test batch (test_batch.bin) in this folder", path);
                free(f);
                goto done;
            }
            sizes[nfiles] = s;
            files[nfiles++] = f;
        } else {
            aim_errf(e, "%s: CIFAR-10 split '%s' is not \"train\" or \"test\"", path, split);
            goto done;
        }
    } else {
        int64_t s = aim_file_size(path, e);
        if (s < 0)
            goto done;
        dir = aim_dirname(path);
        const char *base = aim_basename(path);
        if (!strncmp(base, "data_batch", 10))
            ds_split = "train";
        else if (!strncmp(base, "test_batch", 10))
            ds_split = "test";
        else
            ds_split = split;
        sizes[nfiles] = s;
        files[nfiles++] = aim_xstrdup(path);
    }

    /* every size is checked before anything is allocated */
    int64_t n = 0;
    for (int i = 0; i < nfiles; i++) {
        if (sizes[i] <= 0 || sizes[i] % CIFAR_RECORD) {
            aim_errf(e, "%s: size %" PRId64 " is not a positive multiple of the %d-byte "
                     "CIFAR-10 record", files[i], sizes[i], CIFAR_RECORD);
            goto done;
        }
        n += sizes[i] / CIFAR_RECORD;
    }
    if ((uint64_t)n * CIFAR_PIXELS > AIM_MAX_ALLOC) {
        aim_errf(e, "%s: %" PRId64 " CIFAR-10 images are too many", path, n);
        goto done;
    }
    ds = aim_dataset_try_alloc("cifar10", n, 3, 32, 32, e);
    if (!ds) {
        aim_err_prefix(e, "%s", path);
        goto done;
    }
    int64_t at = 0;
    for (int i = 0; i < nfiles; i++) {
        uint8_t *buf;
        size_t len;
        if (aim_read_file(files[i], (uint64_t)sizes[i], &buf, &len, e)) {
            aim_dataset_free(ds);
            ds = NULL;
            goto done;
        }
        int rc = len == (size_t)sizes[i] ? 0
                 : aim_errf(e, "%s: the file changed while being read", files[i]);
        if (!rc)
            rc = aim_cifar_parse(buf, len, files[i], ds, at, e);
        free(buf);
        if (rc) {
            aim_dataset_free(ds);
            ds = NULL;
            goto done;
        }
        at += (int64_t)(len / CIFAR_RECORD);
    }
    cifar_class_names(ds, dir);
    ds->path = aim_xstrdup(path);
    ds->split = ds_split ? aim_xstrdup(ds_split) : NULL;
    aim_dataset_compute_stats(ds);
done:
    for (int i = 0; i < nfiles; i++)
        free(files[i]);
    free(dir);
    return ds;
}
