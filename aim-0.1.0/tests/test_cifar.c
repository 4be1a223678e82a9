/* test_cifar.c - CIFAR-10 binary batches: records, planes, folders, splits,
 * class names and files that must be refused. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aim/core.h"
#include "aim/data.h"
#include "tap.h"

#define REC 3073

/* record r of a batch: label, then R, G, B planes with recognisable values:
 * R = (r + x) & 255, G = 100 + y, B = 200 + r */
static uint8_t *mk_batch(int n, int first_label, size_t *len)
{
    uint8_t *b = malloc((size_t)n * REC);
    for (int r = 0; r < n; r++) {
        uint8_t *p = b + (size_t)r * REC;
        p[0] = (uint8_t)((first_label + r) % 10);
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                p[1 + y * 32 + x] = (uint8_t)((r + x) & 255);
                p[1 + 1024 + y * 32 + x] = (uint8_t)(100 + y);
                p[1 + 2048 + y * 32 + x] = (uint8_t)(200 + r);
            }
    }
    *len = (size_t)n * REC;
    return b;
}

static void put_batch(const char *path, int n, int first_label)
{
    size_t len;
    uint8_t *b = mk_batch(n, first_label, &len);
    tap_write(path, b, len);
    free(b);
}

/* image i of the dataset is record r of a batch */
static int is_record(const aim_dataset *ds, int64_t i, int r)
{
    const uint8_t *img = ds->images + (size_t)i * 3072;
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
            if (img[y * 32 + x] != ((r + x) & 255) || img[1024 + y * 32 + x] != 100 + y ||
                img[2048 + y * 32 + x] != 200 + r)
                return 0;
    return 1;
}

static void expect_null(aim_dataset *ds, const aim_err *e, const char *phrase,
                        const char *what)
{
    tap_ok(!ds && tap_contains(e->msg, phrase), "%s -> %s", what, e->msg);
    aim_dataset_free(ds);
}

int main(void)
{
    aim_err e = {{0}};

    /* ---- one 3-record file */
    {
        const char *p = tap_path("three.bin");
        put_batch(p, 3, 4);
        aim_dataset *ds = aim_data_open_cifar(p, NULL, &e);
        tap_ok(ds != NULL, "open a 3-record file%s%s", ds ? "" : ": ", ds ? "" : e.msg);
        if (ds) {
            tap_ok(ds->n == 3 && ds->c == 3 && ds->h == 32 && ds->w == 32 &&
                       ds->nclasses == 10 && !strcmp(ds->kind, "cifar10"),
                   "3 images of 3x32x32, 10 classes, kind cifar10");
            tap_ok(ds->labels[0] == 4 && ds->labels[1] == 5 && ds->labels[2] == 6, "labels");
            tap_ok(is_record(ds, 0, 0) && is_record(ds, 1, 1) && is_record(ds, 2, 2),
                   "R, G and B planes land in channels 0, 1, 2");
            tap_ok(ds->class_names && !strcmp(ds->class_names[0], "airplane") &&
                       !strcmp(ds->class_names[9], "truck"),
                   "standard class names without batches.meta.txt");
            tap_ok(ds->path && !strcmp(ds->path, p) && ds->split == NULL,
                   "path set, no split for an arbitrary file name");
            /* channel statistics: G is 100 + y for every image */
            double g = 0;
            for (int y = 0; y < 32; y++)
                g += (100 + y) / 255.0;
            tap_ok(fabs(ds->mean[1] - g / 32) < 1e-5 && fabs(ds->mean[2] - 201 / 255.0) < 1e-5,
                   "per-channel means (%.4f %.4f %.4f)", ds->mean[0], ds->mean[1], ds->mean[2]);
        }
        aim_dataset_free(ds);

        /* aim_cifar_parse into a dataset at an offset */
        size_t len;
        uint8_t *b = mk_batch(2, 7, &len);
        aim_dataset *into = aim_dataset_alloc("cifar10", 5, 3, 32, 32);
        tap_ok(aim_cifar_parse(b, len, "mem.bin", into, 3, &e) == 0 && into->labels[3] == 7 &&
                   into->labels[4] == 8 && is_record(into, 3, 0) && is_record(into, 4, 1),
               "aim_cifar_parse fills records at an offset");
        tap_ok(aim_cifar_parse(b, len, "mem.bin", into, 4, &e) == -1 &&
                   tap_contains(e.msg, "do not fit"),
               "records past the end are refused: %s", e.msg);
        b[REC] = 12;
        tap_ok(aim_cifar_parse(b, len, "mem.bin", into, 0, &e) == -1 &&
                   tap_contains(e.msg, "mem.bin: record 1: label 12 is not in 0..9"),
               "a bad label in memory: %s", e.msg);
        tap_ok(aim_cifar_parse(b, len - 1, "mem.bin", into, 0, &e) == -1 &&
                   tap_contains(e.msg, "6145"),
               "a partial record in memory: %s", e.msg);
        aim_dataset_free(into);
        free(b);
    }

    /* ---- a folder with two training batches, a test batch and names */
    {
        char dir[512];
        snprintf(dir, sizeof dir, "%s", tap_path("cifar"));
        mkdir(dir, 0755);
        char f[600];
        snprintf(f, sizeof f, "%s/data_batch_1.bin", dir);
        put_batch(f, 4, 0);
        snprintf(f, sizeof f, "%s/data_batch_2.bin", dir);
        put_batch(f, 2, 5);
        snprintf(f, sizeof f, "%s/test_batch.bin", dir);
        put_batch(f, 3, 9);
        snprintf(f, sizeof f, "%s/batches.meta.txt", dir);
        const char *meta = "plane\ncar\r\n\n  bird  \ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n"
                           "extra\n\n";
        tap_write(f, meta, strlen(meta));

        aim_dataset *ds = aim_data_open_cifar(dir, NULL, &e);
        tap_ok(ds && ds->n == 6 && ds->split && !strcmp(ds->split, "train"),
               "a folder defaults to the train split (6 images)%s%s", ds ? "" : ": ",
               ds ? "" : e.msg);
        if (ds) {
            tap_ok(ds->labels[0] == 0 && ds->labels[3] == 3 && ds->labels[4] == 5 &&
                       ds->labels[5] == 6 && is_record(ds, 3, 3) && is_record(ds, 4, 0) &&
                       is_record(ds, 5, 1),
                   "batches in order: data_batch_1 then data_batch_2");
            tap_ok(!strcmp(ds->class_names[0], "plane") && !strcmp(ds->class_names[1], "car") &&
                       !strcmp(ds->class_names[2], "bird") &&
                       !strcmp(ds->class_names[9], "truck"),
                   "class names from batches.meta.txt (trimmed, blank lines skipped)");
            tap_ok(!strcmp(ds->path, dir), "path is the folder");
        }
        aim_dataset_free(ds);
        ds = aim_data_open_cifar(dir, "test", &e);
        tap_ok(ds && ds->n == 3 && ds->labels[0] == 9 && ds->labels[1] == 0 &&
                   !strcmp(ds->split, "test") && is_record(ds, 2, 2),
               "the test split is test_batch.bin%s%s", ds ? "" : ": ", ds ? "" : e.msg);
        aim_dataset_free(ds);
        snprintf(f, sizeof f, "%s/test_batch.bin", dir);
        ds = aim_data_open_cifar(f, NULL, &e);
        tap_ok(ds && ds->split && !strcmp(ds->split, "test") && ds->class_names &&
                   !strcmp(ds->class_names[0], "plane"),
               "a single test_batch.bin: split test, names from its folder");
        aim_dataset_free(ds);

        /* only 3 names in the meta file: the rest are the standard ones */
        snprintf(f, sizeof f, "%s/batches.meta.txt", dir);
        tap_write(f, "a\nb\nc\n", 6);
        ds = aim_data_open_cifar(dir, "train", &e);
        tap_ok(ds && !strcmp(ds->class_names[2], "c") && !strcmp(ds->class_names[3], "cat"),
               "a short meta file is completed with the standard names");
        aim_dataset_free(ds);

        expect_null(aim_data_open_cifar(dir, "val", &e), &e, "'val'", "an unknown split");
        char only[512];
        snprintf(only, sizeof only, "%s", tap_path("onlytest"));
        mkdir(only, 0755);
        snprintf(f, sizeof f, "%s/test_batch.bin", only);
        put_batch(f, 1, 0);
        expect_null(aim_data_open_cifar(only, "train", &e), &e, "data_batch_1.bin",
                    "a folder without training batches");
        char none[512];
        snprintf(none, sizeof none, "%s", tap_path("notest"));
        mkdir(none, 0755);
        expect_null(aim_data_open_cifar(none, "test", &e), &e, "test_batch.bin",
                    "a folder without test_batch.bin");
    }

    /* ---- files that must be refused */
    {
        const char *p = tap_path("odd.bin");
        size_t len;
        uint8_t *b = mk_batch(2, 0, &len);
        tap_write(p, b, len - 5);
        expect_null(aim_data_open_cifar(p, NULL, &e), &e, "size 6141 is not a positive multiple",
                    "size not a multiple of 3073");
        tap_ok(tap_contains(e.msg, "odd.bin"), "the message names the file");
        p = tap_path("empty.bin");
        tap_write(p, b, 0);
        expect_null(aim_data_open_cifar(p, NULL, &e), &e, "size 0", "an empty file");
        p = tap_path("label.bin");
        b[REC] = 12;
        tap_write(p, b, len);
        expect_null(aim_data_open_cifar(p, NULL, &e), &e, "record 1: label 12 is not in 0..9",
                    "a bad label");
        tap_ok(tap_contains(e.msg, "label.bin"), "the bad label message names the file");
        free(b);
        char dir[512];
        snprintf(dir, sizeof dir, "%s", tap_path("badfolder"));
        mkdir(dir, 0755);
        char f[600];
        snprintf(f, sizeof f, "%s/data_batch_1.bin", dir);
        put_batch(f, 1, 0);
        snprintf(f, sizeof f, "%s/data_batch_3.bin", dir);
        tap_write(f, "xyz", 3);
        expect_null(aim_data_open_cifar(dir, NULL, &e), &e, "data_batch_3.bin: size 3",
                    "one bad batch in a folder");
        expect_null(aim_data_open_cifar(tap_path("nothing.bin"), NULL, &e), &e, "nothing.bin",
                    "a missing file");
    }
    return tap_done();
}
