/*
 * cmd_info.c - `aim info PATH...`: say what a file or folder is (dataset,
 * .npy array, safetensors weights, PNG) with its shapes, counts and
 * statistics. A corrupt or unsupported file is an error naming it.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aim/data.h"
#include "aim/io.h"
#include "aim/train.h"
#include "cmd/cmd.h"

static void print_shape(const int64_t *shape, int ndim)
{
    printf("[");
    for (int i = 0; i < ndim; i++)
        printf("%s%lld", i ? ", " : "", (long long)shape[i]);
    printf("]");
}

static void print_dataset(const aim_dataset *ds)
{
    printf("  kind       %s dataset\n", ds->kind);
    if (ds->split)
        printf("  split      %s\n", ds->split);
    printf("  images     %lld x %d x %d x %d (N x C x H x W, 8-bit)\n", (long long)ds->n, ds->c,
           ds->h, ds->w);
    int64_t *count = calloc((size_t)(ds->nclasses > 0 ? ds->nclasses : 1), sizeof *count);
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->labels[i] >= 0 && ds->labels[i] < ds->nclasses)
            count[ds->labels[i]]++;
    printf("  classes    %d\n", ds->nclasses);
    for (int k = 0; k < ds->nclasses; k++)
        printf("    %-3d %-14s %lld\n", k, ds->class_names ? cmd_esc(ds->class_names[k]) : "",
               (long long)count[k]);
    free(count);
    printf("  mean       ");
    for (int k = 0; k < ds->c && k < AIM_MAX_CHANNELS; k++)
        printf("%s%.4f", k ? ", " : "", ds->mean[k]);
    printf("\n  std        ");
    for (int k = 0; k < ds->c && k < AIM_MAX_CHANNELS; k++)
        printf("%s%.4f", k ? ", " : "", ds->std[k]);
    printf("\n");
}

static int info_idx(const char *path)
{
    aim_err e = {{0}};
    aim_idx x = {0};
    if (aim_idx_read(path, &x, &e) != 0)
        return cmd_fail("%s", e.msg);
    int ndim = x.ndim;
    int64_t n = x.dims[0];
    if (ndim == 3) {
        aim_idx_free(&x);
        aim_dataset *ds = aim_data_open_idx(path, NULL, &e);
        if (!ds)
            return cmd_fail("%s", e.msg);
        print_dataset(ds);
        aim_dataset_free(ds);
        return 0;
    }
    printf("  kind       IDX array, unsigned bytes\n  shape      ");
    print_shape(x.dims, x.ndim);
    printf("\n");
    if (ndim == 1) {
        int64_t hist[256] = {0};
        int maxv = -1;
        for (int64_t i = 0; i < n; i++) {
            hist[x.data[i]]++;
            if (x.data[i] > maxv)
                maxv = x.data[i];
        }
        printf("  values     0..%d (labels?)\n", maxv);
        for (int v = 0; v <= maxv && v < 64; v++)
            printf("    %-3d %lld\n", v, (long long)hist[v]);
    }
    aim_idx_free(&x);
    return 0;
}

static int info_npy(const char *path)
{
    aim_err e = {{0}};
    aim_array a = {0};
    if (aim_npy_read(path, &a, &e) != 0)
        return cmd_fail("%s", e.msg);
    uint64_t n = aim_array_numel(&a);
    printf("  kind       NumPy array\n  dtype      %s\n  shape      ", aim_dtype_name(a.dtype));
    print_shape(a.shape, a.ndim);
    printf("\n  elements   %llu\n", (unsigned long long)n);
    if (n && (a.dtype == AIM_F32 || a.dtype == AIM_U8)) {
        double mn = INFINITY, mx = -INFINITY, sum = 0;
        uint64_t bad = 0;
        for (uint64_t i = 0; i < n; i++) {
            double v = a.dtype == AIM_F32 ? ((float *)a.data)[i] : ((uint8_t *)a.data)[i];
            if (!isfinite(v)) {
                bad++;
                continue;
            }
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
            sum += v;
        }
        if (n > bad)
            printf("  values     min %.6g  max %.6g  mean %.6g\n", mn, mx, sum / (double)(n - bad));
        if (bad)
            printf("  non-finite %llu\n", (unsigned long long)bad);
    }
    aim_array_free(&a);
    return 0;
}

static int info_safetensors(const char *path)
{
    aim_err e = {{0}};
    aim_st_file *f = aim_st_peek(path, &e);
    if (!f)
        return cmd_fail("%s", e.msg);
    uint64_t params = 0;
    for (int i = 0; i < f->ntensors; i++) {
        uint64_t n = 1;
        for (int d = 0; d < f->tensors[i].ndim; d++)
            n *= (uint64_t)f->tensors[i].shape[d];
        params += n;
    }
    int ckpt = aim_checkpoint_is(f);
    printf("  kind       safetensors%s\n",
           ckpt ? " (aim training checkpoint)" : aim_st_meta(f, "width") ? " (AIM weights)" : "");
    if (ckpt) {
        const char *step = aim_st_meta(f, "step"), *total = aim_st_meta(f, "total_steps");
        const char *loss = aim_st_meta(f, "last_loss"), *pos = aim_st_meta(f, "data_position");
        const char *data = aim_st_meta(f, "recipe.data"), *batch = aim_st_meta(f, "batch");
        const char *lr = aim_st_meta(f, "lr");
        /* cmd_esc: control characters escaped, a missing key "?" */
        printf("  run        step %s of %s, loss %s, %s images seen (batch %s, peak lr %s)\n",
               cmd_esc(step), cmd_esc(total), cmd_esc(loss), cmd_esc(pos), cmd_esc(batch),
               cmd_esc(lr));
        printf("  data       %s\n", cmd_esc(data));
        printf("  model      image %s, channels %s, patch %s, width %s, depth %s, heads %s, "
               "head %sx%s\n",
               cmd_esc(aim_st_meta(f, "image")), cmd_esc(aim_st_meta(f, "channels")),
               cmd_esc(aim_st_meta(f, "patch")), cmd_esc(aim_st_meta(f, "width")),
               cmd_esc(aim_st_meta(f, "depth")), cmd_esc(aim_st_meta(f, "heads")),
               cmd_esc(aim_st_meta(f, "head_width")), cmd_esc(aim_st_meta(f, "head_depth")));
        /* a checkpoint is verified in full: CRC32, names, shapes, state */
        aim_train_state st;
        aim_pretrain_opts po;
        aim_st_file *mf = NULL;
        aim_model *m = aim_checkpoint_load(path, &st, &po, &mf, &e);
        if (!m) {
            aim_st_close(f);
            return cmd_fail("%s", e.msg);
        }
        printf("  verified   CRC32 %s, every tensor and the optimizer state\n",
               cmd_esc(aim_st_meta(mf, "crc32")));
        aim_model_free(m);
        aim_st_close(mf);
    }
    printf("  tensors    %d, %llu values, %.1f MB of data\n", f->ntensors,
           (unsigned long long)params, f->data_len / 1e6);
    if (f->nmeta) {
        printf("  metadata\n");
        for (int i = 0; i < f->nmeta; i++)
            printf("    %-14s %s\n", cmd_esc(f->meta_keys[i]), cmd_esc(f->meta_vals[i]));
    }
    printf("  tensors\n");
    for (int i = 0; i < f->ntensors; i++) {
        printf("    %-48s %-4s ", cmd_esc(f->tensors[i].name),
               aim_dtype_name(f->tensors[i].dtype));
        print_shape(f->tensors[i].shape, f->tensors[i].ndim);
        printf("\n");
    }
    aim_st_close(f);
    return 0;
}

static int info_png(const char *path)
{
    aim_err e = {{0}};
    aim_image im = {0};
    if (aim_png_read(path, 0, &im, &e) != 0)
        return cmd_fail("%s", e.msg);
    static const char *names[] = {"", "gray", "gray+alpha", "RGB", "RGBA"};
    printf("  kind       PNG image\n  size       %d x %d (W x H)\n  channels   %d (%s)\n", im.w,
           im.h, im.c, names[im.c]);
    aim_image_free(&im);
    return 0;
}

static int info_one(const char *path)
{
    aim_err e = {{0}};
    int kind = aim_data_sniff(path, &e);
    if (kind < 0)
        return cmd_fail("%s", e.msg);
    if (kind != AIM_SNIFF_IDX_DIR)
        printf("%s\n", cmd_esc(path));
    switch (kind) {
    case AIM_SNIFF_IDX:
        return info_idx(path);
    case AIM_SNIFF_IDX_DIR: {
        int rc = 0, any = 0;
        const char *splits[] = {"train", "test"};
        for (int i = 0; i < 2; i++) {
            aim_open_opts o = {.split = splits[i]};
            aim_err e2 = {{0}};
            /* list the splits that exist; a broken one is an error */
            aim_dataset *ds = aim_data_open(path, &o, &e2);
            if (!ds) {
                if (strstr(e2.msg, "no ") && strstr(e2.msg, "images (e.g."))
                    continue;
                return cmd_fail("%s", e2.msg);
            }
            printf("%s (%s split)\n", cmd_esc(path), splits[i]);
            print_dataset(ds);
            aim_dataset_free(ds);
            any = 1;
        }
        return any ? rc : cmd_fail("%s: no IDX images found", path);
    }
    case AIM_SNIFF_CIFAR:
    case AIM_SNIFF_CIFAR_DIR:
    case AIM_SNIFF_PNG_DIR: {
        aim_dataset *ds = aim_data_open(path, NULL, &e);
        if (!ds)
            return cmd_fail("%s", e.msg);
        print_dataset(ds);
        aim_dataset_free(ds);
        return 0;
    }
    case AIM_SNIFF_NPY:
        return info_npy(path);
    case AIM_SNIFF_SAFETENSORS:
        return info_safetensors(path);
    case AIM_SNIFF_PNG:
        return info_png(path);
    }
    return cmd_fail("%s: unrecognised file", path);
}

static int info_exec(int argc, char **argv)
{
    if (cmd_help(&cmd_info_entry, argc, argv, NULL))
        return 0;
    if (argc < 2)
        return cmd_fail("info: give a PATH (try `aim info --help`)");
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (i > 1)
            printf("\n");
        if (info_one(argv[i]) != 0)
            rc = 1;
    }
    return rc;
}

const struct aim_cmd cmd_info_entry = {
    .name = "info",
    .usage = "PATH...",
    .summary = "describe a dataset, .npy, .safetensors or PNG file",
    .help = "Prints what each PATH is and what it holds:\n"
            "  IDX images file (paired with its labels file by the standard name) or a folder\n"
            "    of them (both splits), CIFAR-10 .bin batch or folder, PNG class folder:\n"
            "    image count, size, channels, classes with counts, per-channel mean/std;\n"
            "  .npy: dtype, shape, value range;  .safetensors: tensors, shapes, metadata;\n"
            "  .png: size and channels.\n"
            "A corrupt or unsupported file is an error (exit status 1) naming the file.",
    .exec = info_exec,
};
