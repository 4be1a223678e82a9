/* test_synthetic.c - the procedural data set: defaults, determinism, image i
 * independent of n, labels, sizes, value range, option errors, and that the
 * classes are learnable by a nearest-class-mean classifier. */
#include "config.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aim/data.h"
#include "tap.h"

#define S 28
#define NPIX (S * S)

static size_t image_bytes(const aim_dataset *ds)
{
    return (size_t)ds->c * ds->h * ds->w;
}

/* A translation-invariant view of a 28x28 image: the magnitude of the 2-D
 * DFT of the image standardised to zero mean and unit variance. Textures
 * drawn at a random phase all average to flat grey in pixel space, so a
 * class mean of raw pixels cannot tell stripes from checkers; their spectra
 * differ clearly. */
static void spectrum(const uint8_t *im, double *out)
{
    static double cs[S], sn[S];
    if (cs[1] == 0)
        for (int k = 0; k < S; k++) {
            cs[k] = cos(2 * M_PI * k / S);
            sn[k] = -sin(2 * M_PI * k / S);
        }
    double z[NPIX], re[NPIX], imv[NPIX], mu = 0, sd = 0;
    for (int j = 0; j < NPIX; j++)
        mu += im[j];
    mu /= NPIX;
    for (int j = 0; j < NPIX; j++)
        sd += (im[j] - mu) * (im[j] - mu);
    sd = sqrt(sd / NPIX) + 1e-3;
    for (int j = 0; j < NPIX; j++)
        z[j] = (im[j] - mu) / sd;
    for (int y = 0; y < S; y++)
        for (int k = 0; k < S; k++) {
            double a = 0, b = 0;
            for (int x = 0; x < S; x++) {
                a += z[y * S + x] * cs[(k * x) % S];
                b += z[y * S + x] * sn[(k * x) % S];
            }
            re[y * S + k] = a;
            imv[y * S + k] = b;
        }
    for (int k = 0; k < S; k++)
        for (int l = 0; l < S; l++) {
            double a = 0, b = 0;
            for (int y = 0; y < S; y++) {
                double c = cs[(l * y) % S], s = sn[(l * y) % S];
                a += re[y * S + k] * c - imv[y * S + k] * s;
                b += re[y * S + k] * s + imv[y * S + k] * c;
            }
            out[l * S + k] = sqrt(a * a + b * b) / S;
        }
}

static void raw(const uint8_t *im, double *out)
{
    for (int j = 0; j < NPIX; j++)
        out[j] = im[j] / 255.0;
}

/* Fit class means on images [0, ntrain), test on [ntrain, n): accuracy. */
static double nearest_mean(const aim_dataset *ds, int64_t ntrain,
                           void (*feat)(const uint8_t *, double *))
{
    int k = ds->nclasses;
    double *mean = calloc((size_t)k * NPIX, sizeof(double));
    double f[NPIX];
    int64_t cnt[10] = {0};
    for (int64_t i = 0; i < ntrain; i++) {
        int l = ds->labels[i];
        feat(ds->images + i * NPIX, f);
        cnt[l]++;
        for (int j = 0; j < NPIX; j++)
            mean[l * NPIX + j] += f[j];
    }
    for (int l = 0; l < k; l++)
        for (int j = 0; j < NPIX; j++)
            mean[l * NPIX + j] /= cnt[l] ? cnt[l] : 1;
    int64_t ok = 0;
    for (int64_t i = ntrain; i < ds->n; i++) {
        feat(ds->images + i * NPIX, f);
        int best = 0;
        double bd = INFINITY;
        for (int l = 0; l < k; l++) {
            double s = 0;
            for (int j = 0; j < NPIX; j++) {
                double t = f[j] - mean[l * NPIX + j];
                s += t * t;
            }
            if (s < bd) {
                bd = s;
                best = l;
            }
        }
        ok += best == ds->labels[i];
    }
    free(mean);
    return (double)ok / (double)(ds->n - ntrain);
}

static void check_invalid(aim_synth_opts o, const char *needle, const char *what)
{
    aim_err e = {{0}};
    aim_dataset *ds = aim_data_synthetic(&o, &e);
    tap_ok(!ds && tap_contains(e.msg, needle), "%s is refused: %s", what, e.msg);
    aim_dataset_free(ds);
}

int main(void)
{
    aim_err e = {{0}};

    /* defaults */
    aim_dataset *d0 = aim_data_synthetic(NULL, &e);
    tap_ok(d0 && d0->n == 1000 && d0->c == 1 && d0->h == 28 && d0->w == 28 &&
               d0->nclasses == 10,
           "NULL options give 1000 images of 1x28x28, 10 classes");
    tap_ok(d0 && !strcmp(d0->kind, "synthetic") && d0->path == NULL && d0->split == NULL,
           "kind is synthetic, no path");
    int names_ok = d0 && d0->class_names;
    for (int k = 0; names_ok && k < 10; k++)
        names_ok = d0->class_names[k] && !strcmp(d0->class_names[k], aim_synthetic_classes[k]) &&
                   d0->class_names[k] != aim_synthetic_classes[k];
    tap_ok(names_ok, "class names are copies of aim_synthetic_classes");
    int distinct = 1;
    for (int a = 0; a < 10; a++)
        for (int b = a + 1; b < 10; b++)
            distinct &= strcmp(aim_synthetic_classes[a], aim_synthetic_classes[b]) != 0;
    tap_ok(distinct, "the ten family names are distinct");
    if (d0) {
        aim_dataset copy = *d0;
        aim_dataset_compute_stats(&copy);
        tap_ok(copy.mean[0] == d0->mean[0] && copy.std[0] == d0->std[0] &&
                   d0->mean[0] > 0.1 && d0->mean[0] < 0.7 && d0->std[0] > 0.1,
               "statistics are computed (mean %.3f std %.3f)", d0->mean[0], d0->std[0]);
    } else {
        tap_ok(0, "statistics are computed");
    }

    /* determinism */
    aim_synth_opts o = {.n = 50, .seed = 42};
    aim_dataset *a = aim_data_synthetic(&o, &e);
    aim_dataset *b = aim_data_synthetic(&o, &e);
    o.seed = 43;
    aim_dataset *c = aim_data_synthetic(&o, &e);
    size_t bytes = 50 * image_bytes(a);
    tap_ok(!memcmp(a->images, b->images, bytes) && !memcmp(a->labels, b->labels, 50 * 4),
           "same seed gives the same bytes");
    tap_ok(memcmp(a->images, c->images, bytes) != 0, "a different seed gives different images");
    int same_imgs = 0;
    for (int i = 0; i < 50; i++)
        same_imgs += !memcmp(a->images + i * NPIX, c->images + i * NPIX, NPIX);
    tap_ok(same_imgs == 0, "no image is shared between the two seeds");
    int dup = 0;
    for (int i = 0; i < 50; i++)
        for (int j = i + 1; j < 50; j++)
            dup += !memcmp(a->images + i * NPIX, a->images + j * NPIX, NPIX);
    tap_ok(dup == 0, "the 50 images of one set are all different");

    /* image i independent of n */
    o.seed = 42;
    o.n = 10;
    aim_dataset *a10 = aim_data_synthetic(&o, &e);
    tap_ok(a10 && !memcmp(a10->images, a->images, 10 * NPIX) &&
               !memcmp(a10->labels, a->labels, 10 * 4),
           "the first 10 images of n=10 and n=50 are equal");
    aim_dataset_free(a10);

    /* independent of the thread count */
    omp_set_num_threads(1);
    o.n = 50;
    aim_dataset *t1 = aim_data_synthetic(&o, &e);
    omp_set_num_threads(3);
    aim_dataset *t3 = aim_data_synthetic(&o, &e);
    tap_ok(!memcmp(t1->images, a->images, bytes) && !memcmp(t3->images, a->images, bytes),
           "images do not depend on the thread count (1, 3, default)");
    aim_dataset_free(t1);
    aim_dataset_free(t3);

    /* labels */
    int lab_ok = 1;
    for (int i = 0; i < 50; i++)
        lab_ok &= a->labels[i] == i % 10;
    tap_ok(lab_ok, "label of image i is i %% 10");
    aim_synth_opts o7 = {.n = 30, .nclasses = 7, .seed = 1};
    aim_dataset *d7 = aim_data_synthetic(&o7, &e);
    lab_ok = d7 && d7->nclasses == 7;
    for (int i = 0; lab_ok && i < 30; i++)
        lab_ok &= d7->labels[i] == i % 7;
    tap_ok(lab_ok, "with 7 classes the label of image i is i %% 7");
    tap_ok(d7 && !strcmp(d7->class_names[6], aim_synthetic_classes[6]),
           "7 classes use the first 7 families");
    aim_dataset_free(d7);

    /* value range */
    int hist[256] = {0};
    for (size_t j = 0; j < bytes; j++)
        hist[a->images[j]]++;
    int lo = 0, hi = 255, used = 0;
    while (!hist[lo])
        lo++;
    while (!hist[hi])
        hi--;
    for (int v = 0; v < 256; v++)
        used += hist[v] > 0;
    tap_ok(lo <= 20 && hi >= 235 && used >= 200,
           "pixel values cover a wide range (%d..%d, %d distinct values)", lo, hi, used);
    int flat = 0;
    for (int i = 0; i < 50; i++) {
        int mn = 255, mx = 0;
        for (int j = 0; j < NPIX; j++) {
            int v = a->images[i * NPIX + j];
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
        flat += mx - mn < 60;
    }
    tap_ok(flat == 0, "every image has a visible contrast");

    /* colour and odd sizes */
    aim_synth_opts oc = {.n = 20, .c = 3, .h = 16, .w = 24, .seed = 5};
    aim_dataset *dc = aim_data_synthetic(&oc, &e);
    tap_ok(dc && dc->n == 20 && dc->c == 3 && dc->h == 16 && dc->w == 24,
           "c=3, 16x24 gives the requested sizes");
    if (dc) {
        int coloured = 0;
        size_t plane = 16 * 24;
        for (int i = 0; i < 20; i++) {
            const uint8_t *p = dc->images + i * 3 * plane;
            coloured += memcmp(p, p + plane, plane) != 0 && memcmp(p, p + 2 * plane, plane) != 0;
        }
        tap_ok(coloured == 20, "colour images have distinct channels");
        tap_ok(dc->std[0] > 0.05 && dc->std[1] > 0.05 && dc->std[2] > 0.05,
               "statistics for every channel");
    } else {
        tap_ok(0, "colour images have distinct channels");
        tap_ok(0, "statistics for every channel");
    }
    aim_dataset_free(dc);
    aim_synth_opts oe = {.n = 10, .c = 4, .h = 4, .w = 4};
    aim_dataset *de = aim_data_synthetic(&oe, &e);
    tap_ok(de && de->c == 4 && de->h == 4, "the smallest images (4 channels, 4x4) work");
    aim_dataset_free(de);
    aim_synth_opts ow = {.n = 2, .h = 4, .w = 1024};
    aim_dataset *dw = aim_data_synthetic(&ow, &e);
    tap_ok(dw && dw->w == 1024, "a 4x1024 strip works");
    aim_dataset_free(dw);

    /* invalid options name the option */
    check_invalid((aim_synth_opts){.n = -1}, "n = -1", "n = -1");
    check_invalid((aim_synth_opts){.n = 10000001}, "n = 10000001", "n above 10^7");
    check_invalid((aim_synth_opts){.c = 5}, "c = 5", "5 channels");
    check_invalid((aim_synth_opts){.c = -1}, "c = -1", "negative channels");
    check_invalid((aim_synth_opts){.h = 3}, "h = 3", "height 3");
    check_invalid((aim_synth_opts){.w = 1025}, "w = 1025", "width 1025");
    check_invalid((aim_synth_opts){.nclasses = 1}, "nclasses = 1", "1 class");
    check_invalid((aim_synth_opts){.nclasses = 11}, "nclasses = 11", "11 classes");
    check_invalid((aim_synth_opts){.n = 10000000, .c = 4, .h = 1024, .w = 1024}, "GiB",
                  "a set too large to hold");
    tap_ok(aim_data_synthetic(&(aim_synth_opts){.nclasses = 1}, NULL) == NULL,
           "a NULL error is accepted");

    /* learnability: nearest class mean, 2000 to fit, 1000 to test */
    aim_synth_opts ol = {.n = 3000, .seed = 2024};
    aim_dataset *dl = aim_data_synthetic(&ol, &e);
    double acc_raw = nearest_mean(dl, 2000, raw);
    double acc_spec = nearest_mean(dl, 2000, spectrum);
    tap_diag("nearest class mean accuracy (10 classes, chance 10%%): raw pixels %.1f%%, "
             "|DFT| of standardised images %.1f%%",
             100 * acc_raw, 100 * acc_spec);
    tap_ok(acc_raw > 0.2, "raw-pixel nearest class mean beats twice chance (%.1f%%)",
           100 * acc_raw);
    tap_ok(acc_spec > 0.5, "nearest class mean on spectra beats 50%% (%.1f%%)", 100 * acc_spec);
    aim_dataset_free(dl);

    aim_dataset_free(a);
    aim_dataset_free(b);
    aim_dataset_free(c);
    aim_dataset_free(d0);
    return tap_done();
}
