/*
 * cmd_info.c - `aim info PATH...`: say what a file or folder is (dataset,
 * .npy array, safetensors weights, PNG) with its shapes, counts and
 * statistics. A corrupt or unsupported file is an error naming it. With
 * --json: one JSON array, an object per PATH (docs/json.md).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aim/data.h"
#include "aim/io.h"
#include "aim/json.h"
#include "aim/train.h"
#include "cmd/cmd.h"
#include "cmd/opts.h"

static void print_shape(const int64_t *shape, int ndim)
{
    printf("[");
    for (int i = 0; i < ndim; i++)
        printf("%s%lld", i ? ", " : "", (long long)shape[i]);
    printf("]");
}

static void json_shape(aim_jw *w, const char *key, const int64_t *shape, int ndim)
{
    aim_jw_key(w, key);
    aim_jw_open(w, '[');
    for (int i = 0; i < ndim; i++)
        aim_jw_int(w, shape[i]);
    aim_jw_close(w, ']');
}

/* the members of a dataset's object (w) or its lines */
static void print_dataset(const aim_dataset *ds, aim_jw *w)
{
    int64_t *count = calloc((size_t)(ds->nclasses > 0 ? ds->nclasses : 1), sizeof *count);
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->labels[i] >= 0 && ds->labels[i] < ds->nclasses)
            count[ds->labels[i]]++;
    int nc = ds->c < AIM_MAX_CHANNELS ? ds->c : AIM_MAX_CHANNELS;
    if (w) {
        aim_jw_kstr(w, "kind", "dataset");
        aim_jw_kstr(w, "format", ds->kind);
        aim_jw_kstr(w, "split", ds->split);
        aim_jw_kint(w, "images", ds->n);
        aim_jw_kint(w, "channels", ds->c);
        aim_jw_kint(w, "height", ds->h);
        aim_jw_kint(w, "width", ds->w);
        aim_jw_key(w, "classes");
        aim_jw_open(w, '[');
        for (int k = 0; k < ds->nclasses; k++) {
            aim_jw_open(w, '{');
            aim_jw_kint(w, "label", k);
            aim_jw_kstr(w, "name", ds->class_names ? ds->class_names[k] : NULL);
            aim_jw_kint(w, "count", count[k]);
            aim_jw_close(w, '}');
        }
        aim_jw_close(w, ']');
        aim_jw_key(w, "mean");
        aim_jw_open(w, '[');
        for (int k = 0; k < nc; k++)
            aim_jw_num(w, ds->mean[k]);
        aim_jw_close(w, ']');
        aim_jw_key(w, "std");
        aim_jw_open(w, '[');
        for (int k = 0; k < nc; k++)
            aim_jw_num(w, ds->std[k]);
        aim_jw_close(w, ']');
        free(count);
        return;
    }
    printf("  kind       %s dataset\n", ds->kind);
    if (ds->split)
        printf("  split      %s\n", ds->split);
    printf("  images     %lld x %d x %d x %d (N x C x H x W, 8-bit)\n", (long long)ds->n, ds->c,
           ds->h, ds->w);
    printf("  classes    %d\n", ds->nclasses);
    for (int k = 0; k < ds->nclasses; k++)
        printf("    %-3d %-14s %lld\n", k, ds->class_names ? cmd_esc(ds->class_names[k]) : "",
               (long long)count[k]);
    free(count);
    printf("  mean       ");
    for (int k = 0; k < nc; k++)
        printf("%s%.4f", k ? ", " : "", ds->mean[k]);
    printf("\n  std        ");
    for (int k = 0; k < nc; k++)
        printf("%s%.4f", k ? ", " : "", ds->std[k]);
    printf("\n");
}

/* Each info_* describes one file: its lines, or (w) the members of its JSON
 * object. 0, or -1 with the reason in *e. */
static int info_idx(const char *path, aim_jw *w, aim_err *e)
{
    aim_idx x = {0};
    if (aim_idx_read(path, &x, e) != 0)
        return -1;
    int ndim = x.ndim;
    int64_t n = x.dims[0];
    if (ndim == 3) {
        aim_idx_free(&x);
        aim_dataset *ds = aim_data_open_idx(path, NULL, e);
        if (!ds)
            return -1;
        print_dataset(ds, w);
        aim_dataset_free(ds);
        return 0;
    }
    if (w) {
        aim_jw_kstr(w, "kind", "idx");
        aim_jw_kstr(w, "dtype", "u8");
        json_shape(w, "shape", x.dims, x.ndim);
    } else {
        printf("  kind       IDX array, unsigned bytes\n  shape      ");
        print_shape(x.dims, x.ndim);
        printf("\n");
    }
    if (ndim == 1) {
        int64_t hist[256] = {0};
        int maxv = -1;
        for (int64_t i = 0; i < n; i++) {
            hist[x.data[i]]++;
            if (x.data[i] > maxv)
                maxv = x.data[i];
        }
        if (w) {
            aim_jw_kint(w, "max", maxv);
            aim_jw_key(w, "counts");
            aim_jw_open(w, '[');
            for (int v = 0; v <= maxv; v++)
                aim_jw_int(w, hist[v]);
            aim_jw_close(w, ']');
        } else {
            printf("  values     0..%d (labels?)\n", maxv);
            for (int v = 0; v <= maxv && v < 64; v++)
                printf("    %-3d %lld\n", v, (long long)hist[v]);
        }
    }
    aim_idx_free(&x);
    return 0;
}

static int info_npy(const char *path, aim_jw *w, aim_err *e)
{
    aim_array a = {0};
    if (aim_npy_read(path, &a, e) != 0)
        return -1;
    uint64_t n = aim_array_numel(&a);
    double mn = NAN, mx = NAN, mean = NAN;
    uint64_t bad = 0;
    int stats = n && (a.dtype == AIM_F32 || a.dtype == AIM_U8);
    if (stats) {
        double sum = 0;
        mn = INFINITY;
        mx = -INFINITY;
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
            mean = sum / (double)(n - bad);
        else
            mn = mx = NAN;
    }
    if (w) {
        aim_jw_kstr(w, "kind", "npy");
        aim_jw_kstr(w, "dtype", aim_dtype_name(a.dtype));
        json_shape(w, "shape", a.shape, a.ndim);
        aim_jw_kint(w, "elements", (int64_t)n);
        aim_jw_knum(w, "min", mn);
        aim_jw_knum(w, "max", mx);
        aim_jw_knum(w, "mean", mean);
        aim_jw_kint(w, "nonfinite", (int64_t)bad);
        aim_array_free(&a);
        return 0;
    }
    printf("  kind       NumPy array\n  dtype      %s\n  shape      ", aim_dtype_name(a.dtype));
    print_shape(a.shape, a.ndim);
    printf("\n  elements   %llu\n", (unsigned long long)n);
    if (stats && n > bad)
        printf("  values     min %.6g  max %.6g  mean %.6g\n", mn, mx, mean);
    if (bad)
        printf("  non-finite %llu\n", (unsigned long long)bad);
    aim_array_free(&a);
    return 0;
}

/* a metadata value as a JSON number when it is one (the config's integers,
 * a checkpoint's step and loss), else as the string it is */
static void json_meta(aim_jw *w, const char *key, const char *v)
{
    aim_jw_key(w, key);
    char *end;
    double d = v ? strtod(v, &end) : NAN;
    if (v && end != v && !*end && isfinite(d))
        aim_jw_num(w, d);
    else
        aim_jw_str(w, v);
}

static const char *const config_keys[] = {"image", "channels", "patch", "width", "depth",
                                          "heads", "head_width", "head_depth", NULL};

/* a checkpoint is verified in full: CRC32, names, shapes, state; its CRC
 * into crc */
static int verify_checkpoint(const char *path, char *crc, size_t len, aim_err *e)
{
    aim_train_state st;
    aim_pretrain_opts po;
    aim_st_file *mf = NULL;
    aim_model *m = aim_checkpoint_load(path, &st, &po, &mf, e);
    if (!m)
        return -1;
    const char *c = aim_st_meta(mf, "crc32");
    snprintf(crc, len, "%s", c ? c : "?");
    aim_model_free(m);
    aim_st_close(mf);
    return 0;
}

static int info_safetensors(const char *path, aim_jw *w, aim_err *e)
{
    aim_st_file *f = aim_st_peek(path, e);
    if (!f)
        return -1;
    uint64_t params = 0;
    for (int i = 0; i < f->ntensors; i++) {
        uint64_t n = 1;
        for (int d = 0; d < f->tensors[i].ndim; d++)
            n *= (uint64_t)f->tensors[i].shape[d];
        params += n;
    }
    int ckpt = aim_checkpoint_is(f), weights = aim_st_meta(f, "width") != NULL;
    char crc[64] = "";
    if (w && ckpt && verify_checkpoint(path, crc, sizeof crc, e) != 0) {
        aim_st_close(f);
        return -1;
    }
    if (w) {
        aim_jw_kstr(w, "kind", "safetensors");
        aim_jw_kstr(w, "content", ckpt ? "checkpoint" : weights ? "weights" : "tensors");
        if (weights) {
            aim_jw_key(w, "config");
            aim_jw_open(w, '{');
            for (int k = 0; config_keys[k]; k++)
                json_meta(w, config_keys[k], aim_st_meta(f, config_keys[k]));
            aim_jw_close(w, '}');
        }
        if (ckpt) {
            aim_jw_key(w, "checkpoint");
            aim_jw_open(w, '{');
            json_meta(w, "step", aim_st_meta(f, "step"));
            json_meta(w, "total_steps", aim_st_meta(f, "total_steps"));
            json_meta(w, "loss", aim_st_meta(f, "last_loss"));
            json_meta(w, "data_position", aim_st_meta(f, "data_position"));
            json_meta(w, "batch", aim_st_meta(f, "batch"));
            json_meta(w, "lr", aim_st_meta(f, "lr"));
            aim_jw_kstr(w, "data", aim_st_meta(f, "recipe.data"));
            aim_jw_kstr(w, "crc32", crc);
            aim_jw_key(w, "verified");
            aim_jw_bool(w, 1);
            aim_jw_close(w, '}');
        }
        aim_jw_kint(w, "values", (int64_t)params);
        aim_jw_kint(w, "data_bytes", (int64_t)f->data_len);
        aim_jw_key(w, "metadata");
        aim_jw_open(w, '{');
        for (int i = 0; i < f->nmeta; i++)
            aim_jw_kstr(w, f->meta_keys[i], f->meta_vals[i]);
        aim_jw_close(w, '}');
        aim_jw_key(w, "tensors");
        aim_jw_open(w, '[');
        for (int i = 0; i < f->ntensors; i++) {
            aim_jw_open(w, '{');
            aim_jw_kstr(w, "name", f->tensors[i].name);
            aim_jw_kstr(w, "dtype", aim_dtype_name(f->tensors[i].dtype));
            json_shape(w, "shape", f->tensors[i].shape, f->tensors[i].ndim);
            aim_jw_close(w, '}');
        }
        aim_jw_close(w, ']');
        aim_st_close(f);
        return 0;
    }
    printf("  kind       safetensors%s\n",
           ckpt ? " (aim training checkpoint)" : weights ? " (AIM weights)" : "");
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
        /* what the metadata says is shown before the verification */
        if (verify_checkpoint(path, crc, sizeof crc, e) != 0) {
            aim_st_close(f);
            return -1;
        }
        printf("  verified   CRC32 %s, every tensor and the optimizer state\n", cmd_esc(crc));
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

static int info_png(const char *path, aim_jw *w, aim_err *e)
{
    aim_image im = {0};
    if (aim_png_read(path, 0, &im, e) != 0)
        return -1;
    static const char *names[] = {"", "gray", "gray+alpha", "RGB", "RGBA"};
    if (w) {
        aim_jw_kstr(w, "kind", "png");
        aim_jw_kint(w, "width", im.w);
        aim_jw_kint(w, "height", im.h);
        aim_jw_kint(w, "channels", im.c);
    } else {
        printf("  kind       PNG image\n  size       %d x %d (W x H)\n  channels   %d (%s)\n",
               im.w, im.h, im.c, names[im.c]);
    }
    aim_image_free(&im);
    return 0;
}

/* one dataset that aim_data_open reads (split: NULL or "train"/"test") */
static int info_dataset(const char *path, const char *split, aim_jw *w, aim_err *e)
{
    aim_open_opts o = {.split = split};
    aim_dataset *ds = aim_data_open(path, split ? &o : NULL, e);
    if (!ds)
        return -1;
    if (w) {
        aim_jw_open(w, '{');
        aim_jw_kstr(w, "path", path);
    } else if (split) {
        printf("%s (%s split)\n", cmd_esc(path), split);
    }
    print_dataset(ds, w);
    if (w)
        aim_jw_close(w, '}');
    aim_dataset_free(ds);
    return 0;
}

/* One PATH: its lines, or (w) its object(s) in the array; 0, or 1 after
 * the message (and, in JSON, an object with "error"). */
static int info_one(const char *path, aim_jw *w)
{
    aim_err e = {{0}};
    int rc = -1, kind = aim_data_sniff(path, &e);
    if (kind == AIM_SNIFF_IDX_DIR) {
        /* one entry per split that exists; a broken one is an error */
        int any = 0;
        const char *splits[] = {"train", "test"};
        rc = 0;
        for (int i = 0; i < 2 && rc == 0; i++) {
            aim_err e2 = {{0}};
            if (info_dataset(path, splits[i], w, &e2) == 0) {
                any = 1;
            } else if (!(strstr(e2.msg, "no ") && strstr(e2.msg, "images (e.g."))) {
                e = e2;
                rc = -1;
            }
        }
        if (rc == 0 && !any)
            rc = aim_errf(&e, "%s: no IDX images found", path);
    } else if (kind >= 0) {
        if (w) {
            aim_jw_open(w, '{');
            aim_jw_kstr(w, "path", path);
        } else {
            printf("%s\n", cmd_esc(path));
        }
        switch (kind) {
        case AIM_SNIFF_IDX: rc = info_idx(path, w, &e); break;
        case AIM_SNIFF_CIFAR:
        case AIM_SNIFF_CIFAR_DIR:
        case AIM_SNIFF_PNG_DIR: {
            aim_dataset *ds = aim_data_open(path, NULL, &e);
            if (ds) {
                print_dataset(ds, w);
                aim_dataset_free(ds);
                rc = 0;
            }
            break;
        }
        case AIM_SNIFF_NPY: rc = info_npy(path, w, &e); break;
        case AIM_SNIFF_SAFETENSORS: rc = info_safetensors(path, w, &e); break;
        case AIM_SNIFF_PNG: rc = info_png(path, w, &e); break;
        default: rc = aim_errf(&e, "%s: unrecognised file", path);
        }
        if (w && rc != 0)
            aim_jw_kstr(w, "error", e.msg);
        if (w)
            aim_jw_close(w, '}');
        return rc ? cmd_fail("%s", e.msg) : 0;
    }
    if (rc != 0 && w) {
        aim_jw_open(w, '{');
        aim_jw_kstr(w, "path", path);
        aim_jw_kstr(w, "error", e.msg);
        aim_jw_close(w, '}');
    }
    return rc ? cmd_fail("%s", e.msg) : 0;
}

static int info_exec(int argc, char **argv)
{
    int json = 0;
    cmd_opt opts[] = {
        {"json", OPT_FLAG, &json, NULL,
         "one JSON array on stdout, an object per PATH (docs/json.md)"},
        {0},
    };
    if (cmd_help(&cmd_info_entry, argc, argv, opts))
        return 0;
    char **pos = aim_xmalloc((size_t)argc * sizeof *pos);
    int npos;
    if (cmd_parse("info", argc, argv, opts, pos, &npos, argc)) {
        free(pos);
        return 1;
    }
    if (npos < 1) {
        free(pos);
        return cmd_fail("info: give a PATH (try `aim info --help`)");
    }
    aim_jw w;
    aim_jw_init(&w, stdout);
    if (json)
        aim_jw_open(&w, '[');
    int rc = 0;
    for (int i = 0; i < npos; i++) {
        if (i > 0 && !json)
            printf("\n");
        if (info_one(pos[i], json ? &w : NULL) != 0)
            rc = 1;
    }
    free(pos);
    if (json) {
        aim_jw_close(&w, ']');
        if (aim_jw_finish(&w) != 0)
            rc = cmd_fail("info: cannot write the JSON to stdout");
    }
    return rc;
}

const struct aim_cmd cmd_info_entry = {
    .name = "info",
    .usage = "[--json] PATH...",
    .summary = "describe a dataset, .npy, .safetensors or PNG file",
    .help = "Prints what each PATH is and what it holds:\n"
            "  IDX images file (paired with its labels file by the standard name) or a folder\n"
            "    of them (both splits), CIFAR-10 .bin batch or folder, PNG class folder:\n"
            "    image count, size, channels, classes with counts, per-channel mean/std;\n"
            "  .npy: dtype, shape, value range;  .safetensors: tensors, shapes, metadata;\n"
            "  .png: size and channels.\n"
            "A corrupt or unsupported file is an error (exit status 1) naming the file.\n"
            "--json prints one JSON array with an object per PATH (an IDX folder: one per\n"
            "split) instead; a PATH that fails has an \"error\" member there.",
    .exec = info_exec,
};
