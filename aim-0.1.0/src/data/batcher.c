/*
 * batcher.c - turn an in-memory 8-bit dataset into an endless stream of
 * float batches: per-epoch shuffling, random resized crop (torchvision
 * RandomResizedCrop semantics), horizontal flip, normalisation, and the
 * random prefix length S that AIM's prefix-causal attention needs.
 *
 * Determinism: the stream is indexed by k, the number of images consumed.
 * Position k is image perm_e[k % n] with e = k / n, where perm_e is a
 * Fisher-Yates permutation drawn from a generator seeded by (seed, e); every
 * augmentation draw of position k comes from a generator seeded by
 * (seed, k), in the fixed order crop, flip, prefix, shift. So a batch does not
 * depend on the thread count, and seeking to a saved position reproduces
 * the following batches exactly.
 */
#include "config.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "aim/data.h"

/* domain separators for the two kinds of streams */
#define STREAM_PERM 0x5045524d5045524dULL /* "PERMPERM" */
#define STREAM_AUG 0x4155474d4155474dULL  /* "AUGMAUGM" */

/* Scratch of one thread: the bilinear tables of the current image. */
typedef struct thread_scratch {
    int *x0, *x1;       /* [w] source columns (absolute) */
    float *fx;          /* [w] weight of x1 */
    int *y0, *y1;       /* [h] source rows (absolute) */
    float *fy;          /* [h] weight of y1 */
} thread_scratch;

struct aim_batcher {
    const aim_dataset *ds;
    aim_batcher_opts o;
    int64_t n;
    int npatches;           /* N = (h/p)(w/p), 0 when patch == 0 */
    uint64_t pos;           /* images consumed */
    int64_t *perm;          /* [n] permutation of the cached epoch */
    uint64_t perm_epoch;
    int perm_valid;
    int64_t *idx;           /* [batch] dataset index of each row of a batch */
    uint64_t *stream;       /* [batch] stream position of each row */
    int nthreads;
    thread_scratch *scratch; /* [nthreads] */
};

void aim_batcher_opts_default(aim_batcher_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 64;
    o->seed = 0;
    o->shuffle = 1;
    o->crop = 1;
    o->scale_min = 0.4f;
    o->scale_max = 1.0f;
    o->ratio_min = 3.0f / 4.0f;
    o->ratio_max = 4.0f / 3.0f;
    o->flip = 1;
    o->patch = 0;
    o->normalize = 1;
}

static uint64_t stream_seed(uint64_t seed, uint64_t domain, uint64_t k)
{
    return aim_hash64(aim_hash64(seed ^ domain) ^ aim_hash64(k));
}

/* uniform in [0, n), n >= 1, also for n beyond 32 bits */
static uint64_t below64(aim_rng *r, uint64_t n)
{
    if (n <= UINT32_MAX)
        return aim_rng_below(r, (uint32_t)n);
    return aim_rng_u64(r) % n; /* bias below 2^-31 for any real dataset */
}

/* Make perm the permutation of epoch e (identity without shuffle). */
static void load_epoch(aim_batcher *b, uint64_t e)
{
    if (b->perm_valid && b->perm_epoch == e)
        return;
    for (int64_t i = 0; i < b->n; i++)
        b->perm[i] = i;
    if (b->o.shuffle) {
        aim_rng r;
        aim_rng_seed(&r, stream_seed(b->o.seed, STREAM_PERM, e));
        for (int64_t i = b->n - 1; i > 0; i--) {
            int64_t j = (int64_t)below64(&r, (uint64_t)i + 1);
            int64_t t = b->perm[i];
            b->perm[i] = b->perm[j];
            b->perm[j] = t;
        }
    }
    b->perm_epoch = e;
    b->perm_valid = 1;
}

aim_batcher *aim_batcher_new(const aim_dataset *ds, const aim_batcher_opts *o, aim_err *e)
{
    if (!ds) {
        aim_errf(e, "batcher: no dataset");
        return NULL;
    }
    if (!o) {
        aim_errf(e, "batcher: no options");
        return NULL;
    }
    if (o->batch < 1) {
        aim_errf(e, "batcher: batch %d must be at least 1", o->batch);
        return NULL;
    }
    if (ds->n < 1) {
        aim_errf(e, "batcher: the dataset holds %lld images, need at least 1",
                 (long long)ds->n);
        return NULL;
    }
    if (ds->c < 1 || ds->c > AIM_MAX_CHANNELS || ds->h < 1 || ds->w < 1 || !ds->images ||
        !ds->labels) {
        aim_errf(e, "batcher: the dataset's images (%dx%dx%d) are not usable", ds->c, ds->h,
                 ds->w);
        return NULL;
    }
    /* written so that NaN fails every test */
    if (!(o->scale_min > 0 && o->scale_min <= o->scale_max && o->scale_max <= 1)) {
        aim_errf(e, "batcher: scale range [%g, %g] must satisfy 0 < min <= max <= 1",
                 (double)o->scale_min, (double)o->scale_max);
        return NULL;
    }
    if (!(o->ratio_min > 0 && o->ratio_min <= o->ratio_max && isfinite(o->ratio_max))) {
        aim_errf(e, "batcher: ratio range [%g, %g] must satisfy 0 < min <= max",
                 (double)o->ratio_min, (double)o->ratio_max);
        return NULL;
    }
    if (o->shift < 0 || o->shift >= ds->h || o->shift >= ds->w) {
        aim_errf(e, "batcher: shift %d must be in [0, %d) for the %dx%d images", o->shift,
                 ds->h < ds->w ? ds->h : ds->w, ds->h, ds->w);
        return NULL;
    }
    if (o->patch < 0) {
        aim_errf(e, "batcher: patch %d must not be negative", o->patch);
        return NULL;
    }
    int npatches = 0;
    if (o->patch > 0) {
        if (ds->h % o->patch || ds->w % o->patch) {
            aim_errf(e, "batcher: patch %d does not divide the %dx%d image", o->patch, ds->h,
                     ds->w);
            return NULL;
        }
        int64_t np = (int64_t)(ds->h / o->patch) * (ds->w / o->patch);
        if (np < 2) {
            aim_errf(e, "batcher: patch %d leaves %lld patch of the %dx%d image, need at "
                        "least 2 for a prefix",
                     o->patch, (long long)np, ds->h, ds->w);
            return NULL;
        }
        if (np > INT32_MAX) {
            aim_errf(e, "batcher: patch %d gives too many patches", o->patch);
            return NULL;
        }
        npatches = (int)np;
    }

    aim_batcher *b = aim_xcalloc(1, sizeof *b);
    b->ds = ds;
    b->o = *o;
    b->n = ds->n;
    b->npatches = npatches;
    b->perm = aim_xmalloc((size_t)ds->n * sizeof *b->perm);
    b->idx = aim_xmalloc((size_t)o->batch * sizeof *b->idx);
    b->stream = aim_xmalloc((size_t)o->batch * sizeof *b->stream);
    b->nthreads = omp_get_max_threads();
    if (b->nthreads < 1)
        b->nthreads = 1;
    b->scratch = aim_xcalloc((size_t)b->nthreads, sizeof *b->scratch);
    for (int t = 0; t < b->nthreads; t++) {
        thread_scratch *s = &b->scratch[t];
        s->x0 = aim_xmalloc((size_t)ds->w * sizeof *s->x0);
        s->x1 = aim_xmalloc((size_t)ds->w * sizeof *s->x1);
        s->fx = aim_xmalloc((size_t)ds->w * sizeof *s->fx);
        s->y0 = aim_xmalloc((size_t)ds->h * sizeof *s->y0);
        s->y1 = aim_xmalloc((size_t)ds->h * sizeof *s->y1);
        s->fy = aim_xmalloc((size_t)ds->h * sizeof *s->fy);
    }
    return b;
}

void aim_batcher_free(aim_batcher *b)
{
    if (!b)
        return;
    for (int t = 0; t < b->nthreads; t++) {
        thread_scratch *s = &b->scratch[t];
        free(s->x0);
        free(s->x1);
        free(s->fx);
        free(s->y0);
        free(s->y1);
        free(s->fy);
    }
    free(b->scratch);
    free(b->perm);
    free(b->idx);
    free(b->stream);
    free(b);
}

uint64_t aim_batcher_position(const aim_batcher *b)
{
    return b->pos;
}

void aim_batcher_seek(aim_batcher *b, uint64_t position)
{
    b->pos = position;
    load_epoch(b, position / (uint64_t)b->n);
}

uint64_t aim_batcher_epoch(const aim_batcher *b)
{
    return b->pos / (uint64_t)b->n;
}

/* torchvision RandomResizedCrop.get_params: the crop (top, left, ch, cw). */
static void crop_params(const aim_batcher_opts *o, int H, int W, aim_rng *r, int *top,
                        int *left, int *ch, int *cw)
{
    double area = (double)H * W;
    double lr0 = log(o->ratio_min), lr1 = log(o->ratio_max);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (o->scale_min + (o->scale_max - o->scale_min) * aim_rng_uniform(r));
        double ratio = exp(lr0 + (lr1 - lr0) * aim_rng_uniform(r));
        long w = lround(sqrt(target * ratio));
        long h = lround(sqrt(target / ratio));
        if (w >= 1 && w <= W && h >= 1 && h <= H) {
            *top = (int)aim_rng_below(r, (uint32_t)(H - h + 1));
            *left = (int)aim_rng_below(r, (uint32_t)(W - w + 1));
            *ch = (int)h;
            *cw = (int)w;
            return;
        }
    }
    /* fallback: a centre crop with the ratio clamped into the range */
    double in_ratio = (double)W / H;
    long w = W, h = H;
    if (in_ratio < o->ratio_min)
        h = lround(W / (double)o->ratio_min);
    else if (in_ratio > o->ratio_max)
        w = lround(H * (double)o->ratio_max);
    h = h < 1 ? 1 : h > H ? H : h;
    w = w < 1 ? 1 : w > W ? W : w;
    *top = (int)((H - h) / 2);
    *left = (int)((W - w) / 2);
    *ch = (int)h;
    *cw = (int)w;
}

/* Bilinear tables mapping n output samples onto a source span [off, off+len)
 * with half-pixel centres, clamped to the span; reversed when flip. */
static void axis_table(int n, int off, int len, int flip, int *i0, int *i1, float *f)
{
    double scale = (double)len / n;
    for (int j = 0; j < n; j++) {
        double s = (j + 0.5) * scale - 0.5;
        if (s < 0)
            s = 0;
        if (s > len - 1)
            s = len - 1;
        int a = (int)s;
        int bb = a + 1 < len ? a + 1 : a;
        int k = flip ? n - 1 - j : j;
        i0[k] = off + a;
        i1[k] = off + bb;
        f[k] = (float)(s - a);
    }
}

/* Write one image: resample the crop (tables in s) of src [c, H, W] into
 * dst [c, H, W], scale to [0, 1] and normalise. The result is moved by
 * (dx, dy) pixels (right, down); what comes in at the edges is black, raw 0
 * (pad-and-crop translation). */
static void render(const aim_dataset *ds, const uint8_t *src, const thread_scratch *s,
                   int normalize, int dx, int dy, float *dst)
{
    int H = ds->h, W = ds->w;
    size_t plane = (size_t)H * W;
    for (int k = 0; k < ds->c; k++) {
        const uint8_t *p = src + k * plane;
        float *q = dst + k * plane;
        float mean = ds->mean[k], sd = ds->std[k];
        float pad = normalize ? (0.0f - mean) / sd : 0.0f;
        for (int y = 0; y < H; y++) {
            float *qy = q + (size_t)y * W;
            int ys = y - dy;
            if (ys < 0 || ys >= H) {
                for (int x = 0; x < W; x++)
                    qy[x] = pad;
                continue;
            }
            const uint8_t *r0 = p + (size_t)s->y0[ys] * W;
            const uint8_t *r1 = p + (size_t)s->y1[ys] * W;
            float fy = s->fy[ys];
            for (int x = 0; x < W; x++) {
                int xs = x - dx;
                if (xs < 0 || xs >= W) {
                    qy[x] = pad;
                    continue;
                }
                int a = s->x0[xs], bb = s->x1[xs];
                float fx = s->fx[xs];
                float top = r0[a] + fx * (float)(r0[bb] - r0[a]);
                float bot = r1[a] + fx * (float)(r1[bb] - r1[a]);
                float v = top + fy * (bot - top);
                v = v / 255.0f;
                qy[x] = normalize ? (v - mean) / sd : v;
            }
        }
    }
}

void aim_batcher_next(aim_batcher *b, float *x, int32_t *labels, int32_t *prefix)
{
    aim_batcher_next_rows(b, 0, b->o.batch, x, labels, prefix);
}

void aim_batcher_next_rows(aim_batcher *b, int r0, int r1, float *x, int32_t *labels,
                           int32_t *prefix)
{
    const aim_dataset *ds = b->ds;
    int B = b->o.batch;
    assert(0 <= r0 && r0 <= r1 && r1 <= B);
    /* the images of the batch, crossing epochs as needed (serial: it may
     * redraw the cached permutation) */
    for (int j = 0; j < B; j++) {
        uint64_t k = b->pos + (uint64_t)j;
        load_epoch(b, k / (uint64_t)b->n);
        b->idx[j] = b->perm[k % (uint64_t)b->n];
        b->stream[j] = k;
    }
    b->pos += (uint64_t)B;

    size_t img = (size_t)ds->c * ds->h * ds->w;
    /* never more threads than there is scratch for */
    int nt = omp_get_max_threads();
    if (nt > b->nthreads)
        nt = b->nthreads;
    if (nt < 1)
        nt = 1;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int j = r0; j < r1; j++) {
        int t = omp_get_thread_num();
        thread_scratch *s = &b->scratch[t < b->nthreads ? t : 0];
        aim_rng r;
        aim_rng_seed(&r, stream_seed(b->o.seed, STREAM_AUG, b->stream[j]));
        int top = 0, left = 0, ch = ds->h, cw = ds->w, flip = 0;
        if (b->o.crop)
            crop_params(&b->o, ds->h, ds->w, &r, &top, &left, &ch, &cw);
        if (b->o.flip)
            flip = (int)aim_rng_below(&r, 2);
        int32_t pre = 0;
        if (b->npatches > 0)
            pre = 1 + (int32_t)aim_rng_below(&r, (uint32_t)(b->npatches - 1));
        /* drawn last, so that shift 0 leaves every earlier stream as it was */
        int dx = 0, dy = 0;
        if (b->o.shift > 0) {
            uint32_t span = 2 * (uint32_t)b->o.shift + 1;
            dx = (int)aim_rng_below(&r, span) - b->o.shift;
            dy = (int)aim_rng_below(&r, span) - b->o.shift;
        }
        axis_table(ds->w, left, cw, flip, s->x0, s->x1, s->fx);
        axis_table(ds->h, top, ch, 0, s->y0, s->y1, s->fy);
        int64_t i = b->idx[j];
        render(ds, ds->images + (size_t)i * img, s, b->o.normalize, dx, dy,
               x + (size_t)(j - r0) * img);
        if (labels)
            labels[j - r0] = ds->labels[i];
        if (prefix && b->npatches > 0)
            prefix[j - r0] = pre;
    }
}

/* Rows whose index falls outside [0, ds->n) are clamped rather than read
 * out of bounds: they are filled with zeros and get label -1, so a caller
 * that asks past the end sees it at once. */
void aim_dataset_get_batch(const aim_dataset *ds, int64_t start, int n, int normalize,
                           float *x, int32_t *labels)
{
    if (n <= 0)
        return;
    size_t plane = (size_t)ds->h * ds->w;
    size_t img = (size_t)ds->c * plane;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < n; j++) {
        int64_t i = start + j;
        float *q = x + (size_t)j * img;
        if (i < 0 || i >= ds->n) {
            memset(q, 0, img * sizeof *q);
            if (labels)
                labels[j] = -1;
            continue;
        }
        const uint8_t *p = ds->images + (size_t)i * img;
        for (int k = 0; k < ds->c; k++) {
            float mean = k < AIM_MAX_CHANNELS ? ds->mean[k] : 0.0f;
            float sd = k < AIM_MAX_CHANNELS ? ds->std[k] : 1.0f;
            for (size_t t = 0; t < plane; t++) {
                float v = p[k * plane + t] / 255.0f;
                q[k * plane + t] = normalize ? (v - mean) / sd : v;
            }
        }
        if (labels)
            labels[j] = ds->labels[i];
    }
}
