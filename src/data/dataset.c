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

aim_dataset *aim_dataset_alloc(const char *kind, int64_t n, int c, int h, int w)
{
    aim_dataset *ds = aim_xcalloc(1, sizeof *ds);
    snprintf(ds->kind, sizeof ds->kind, "%s", kind);
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->images = aim_xmalloc((size_t)n * (size_t)c * (size_t)h * (size_t)w);
    ds->labels = aim_xcalloc((size_t)(n ? n : 1), sizeof(int32_t));
    for (int k = 0; k < AIM_MAX_CHANNELS; k++) {
        ds->mean[k] = 0.5f;
        ds->std[k] = 0.25f;
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
