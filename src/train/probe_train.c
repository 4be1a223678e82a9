/*
 * probe_train.c - feature caches (one trunk pass for many block sets, stored
 * as half floats) and the probe trainer: AdamW with warmup + cosine,
 * cross-entropy, shuffling per epoch, top-1 on a test set.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aim/dist.h"
#include "aim/probe.h"
#include "aim/runlog.h"
#include "aim/train.h"

/* ------------------------------------------------------------ half floats */

uint16_t aim_half_from_float(float x)
{
    uint32_t f;
    memcpy(&f, &x, 4);
    uint32_t sign = (f >> 16) & 0x8000u;
    uint32_t exp = (f >> 23) & 0xffu;
    uint32_t man = f & 0x7fffffu;
    if (exp == 0xff) /* inf / nan */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f) /* overflow -> inf */
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal or zero */
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++; /* may carry into the exponent: still correct (up to inf) */
    return (uint16_t)(sign | h);
}

float aim_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t f;
    if (exp == 0) {
        if (!man) {
            f = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400u));
            f = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 0x1f) {
        f = sign | 0x7f800000u | (man << 13);
    } else {
        f = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float x;
    memcpy(&x, &f, 4);
    return x;
}

/* ------------------------------------------------------------ caches */

static aim_feats *feats_alloc(int64_t n, int N, int D, aim_err *e)
{
    uint64_t bytes = (uint64_t)n * N * D * 2;
    uint16_t *d = aim_try_malloc((size_t)bytes);
    if (!d) {
        aim_errf(e, "out of memory: a feature cache of %lld x %d x %d needs %.1f GB",
                 (long long)n, N, D, bytes / 1e9);
        return NULL;
    }
    aim_feats *f = aim_xcalloc(1, sizeof *f);
    f->n = n;
    f->N = N;
    f->D = D;
    f->data = d;
    f->labels = aim_xcalloc((size_t)(n ? n : 1), sizeof *f->labels);
    return f;
}

void aim_feats_free(aim_feats *f)
{
    if (!f)
        return;
    free(f->data);
    free(f->labels);
    free(f);
}

/* aim_half_to_float without branches, so that a loop of it vectorises: the
 * exponent and mantissa shifted into a float's place read as a float 2^-112
 * times the half's value, normal or subnormal, and the product is exact;
 * infinities and NaNs (exponent 31) keep their mantissa bits */
static inline float half_to_float_flat(uint32_t h)
{
    uint32_t em = h & 0x7fffu;
    union {
        uint32_t u;
        float f;
    } v = {.u = em << 13}, r;
    v.f *= 0x1p112f;
    uint32_t special = 0x7f800000u | (em & 0x3ffu) << 13;
    r.u = (h & 0x8000u) << 16 | (em >= 0x7c00u ? special : v.u);
    return r.f;
}

void aim_feats_get(const aim_feats *f, const int64_t *idx, int64_t i0, int nb, float *out)
{
    size_t row = (size_t)f->N * f->D;
#pragma omp parallel for schedule(static) if ((size_t)nb * row > 65536)
    for (int b = 0; b < nb; b++) {
        int64_t i = idx ? idx[b] : i0 + b;
        const uint16_t *src = f->data + (size_t)i * row;
        float *dst = out + (size_t)b * row;
#pragma omp simd
        for (size_t k = 0; k < row; k++)
            dst[k] = half_to_float_flat(src[k]);
    }
}

/* x [nb, C, H, W] mirrored left to right, in place */
static void mirror_images(float *x, int nb, int C, int H, int W)
{
    for (size_t r = 0; r < (size_t)nb * C * H; r++) {
        float *row = x + r * W;
        for (int i = 0, j = W - 1; i < j; i++, j--) {
            float t = row[i];
            row[i] = row[j];
            row[j] = t;
        }
    }
}

int aim_features_extract(aim_model *m, const aim_dataset *ds, int64_t n, int batch,
                         unsigned flags, int nsets, const int *const *sets, const int *set_sizes,
                         aim_feats **out, void (*progress)(void *ctx, int64_t done,
                                                           int64_t total),
                         void *ctx, const aim_dist *dist, aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    if (ds->c != c->channels || ds->h != c->image || ds->w != c->image)
        return aim_errf(e, "features: the data is %dx%dx%d but the model takes %dx%dx%d", ds->c,
                        ds->h, ds->w, c->channels, c->image, c->image);
    int deepest = 0;
    for (int s = 0; s < nsets; s++) {
        if (set_sizes[s] < 1)
            return aim_errf(e, "features: block set %d is empty", s + 1);
        for (int j = 0; j < set_sizes[s]; j++) {
            int l = sets[s][j];
            if (l < 1 || l > c->depth)
                return aim_errf(e, "features: block %d is not in 1..%d", l, c->depth);
            deepest = l > deepest ? l : deepest;
        }
    }
    if (n <= 0 || n > ds->n)
        n = ds->n;
    if (batch < 1)
        batch = 64;
    if (aim_model_reserve(m, batch, e) != 0)
        return -1;
    int N = aim_config_tokens(c), D = c->width;
    const int views = flags & AIM_FEATS_MIRROR ? 2 : 1;
    for (int s = 0; s < nsets; s++)
        out[s] = NULL;
    for (int s = 0; s < nsets; s++) {
        out[s] = feats_alloc(views * n, N, D, e);
        if (!out[s]) {
            for (int t = 0; t < s; t++) {
                aim_feats_free(out[t]);
                out[t] = NULL;
            }
            return -1;
        }
    }
    size_t img = (size_t)c->channels * c->image * c->image, row = (size_t)N * D;
    float *x = aim_xaligned((size_t)batch * img * sizeof(float));
    int32_t *lab = aim_xmalloc((size_t)batch * sizeof *lab);
    int64_t s0, s1; /* this rank's images */
    aim_dist_share(dist, n, &s0, &s1);
    for (int v = 0; v < views; v++) {
        for (int64_t i0 = s0; i0 < s1; i0 += batch) {
            int nb = (int)(s1 - i0 < batch ? s1 - i0 : batch);
            aim_dataset_get_batch(ds, i0, nb, 1, x, lab);
            if (v == 1)
                mirror_images(x, nb, c->channels, c->image, c->image);
            aim_model_trunk(m, x, NULL, nb, deepest);
            int64_t at = v * n + i0; /* the cache entry of image i0 */
            for (int s = 0; s < nsets; s++) {
                aim_feats *f = out[s];
                float inv = 1.0f / (float)set_sizes[s];
                memcpy(f->labels + at, lab, (size_t)nb * sizeof *lab);
#pragma omp parallel for schedule(static)
                for (int b = 0; b < nb; b++) {
                    uint16_t *dst = f->data + (size_t)(at + b) * row;
                    for (size_t k = 0; k < row; k++) {
                        float acc = 0;
                        for (int j = 0; j < set_sizes[s]; j++)
                            acc += aim_model_block_output(m, sets[s][j])[(size_t)b * row + k];
                        dst[k] = aim_half_from_float(acc * inv);
                    }
                }
            }
            if (progress) { /* this rank's progress, as a share of the whole */
                int64_t done = s1 - s0 == n ? i0 + nb : n * (i0 + nb - s0) / (s1 - s0);
                progress(ctx, v * n + done, views * n);
            }
        }
    }
    for (int s = 0; s < nsets; s++) {
        for (int v = 0; v < views; v++) {
            aim_dist_allgather(dist, out[s]->data + (size_t)v * n * row,
                               row * sizeof *out[s]->data, n);
            aim_dist_allgather(dist, out[s]->labels + v * n, sizeof *out[s]->labels, n);
        }
    }
    free(x);
    free(lab);
    return 0;
}

aim_feats *aim_features_raw(const aim_dataset *ds, int64_t n, aim_err *e)
{
    if (n <= 0 || n > ds->n)
        n = ds->n;
    int D = ds->c * ds->h * ds->w;
    aim_feats *f = feats_alloc(n, 1, D, e);
    if (!f)
        return NULL;
    float *x = aim_xmalloc((size_t)D * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        aim_dataset_get_batch(ds, i, 1, 1, x, f->labels + i);
        for (int k = 0; k < D; k++)
            f->data[(size_t)i * D + k] = aim_half_from_float(x[k]);
    }
    free(x);
    return f;
}

/* ------------------------------------------------------------ training */

void aim_probe_opts_default(aim_probe_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 15;
    o->batch = 256;
    o->lr = 1e-2f;
    o->weight_decay = 0.05f;
    o->eval_every_epoch = 1;
}

float aim_probe_evaluate(aim_probe *p, const aim_feats *f, int batch)
{
    if (!f || f->n == 0)
        return 0;
    float *x = aim_xaligned((size_t)batch * f->N * f->D * sizeof(float));
    int64_t hits = 0;
    for (int64_t i0 = 0; i0 < f->n; i0 += batch) {
        int nb = (int)(f->n - i0 < batch ? f->n - i0 : batch);
        aim_feats_get(f, NULL, i0, nb, x);
        int correct = 0;
        aim_probe_forward(p, x, f->labels + i0, nb, 0, &correct);
        hits += correct;
    }
    free(x);
    return (float)(100.0 * hits / f->n);
}

int aim_probe_train(aim_probe *p, const aim_feats *train, const aim_feats *test,
                    const aim_probe_opts *o, aim_probe_result *r, aim_err *e)
{
    memset(r, 0, sizeof *r);
    if (o->epochs < 1 || o->batch < 2 || !(o->lr > 0))
        return aim_errf(e, "probe: epochs >= 1, batch >= 2 and lr > 0 are needed");
    if (train->n < 2)
        return aim_errf(e, "probe: need at least 2 training images (got %lld)",
                        (long long)train->n);
    for (int64_t i = 0; i < train->n; i++)
        if (train->labels[i] < 0 || train->labels[i] >= aim_probe_classes(p))
            return aim_errf(e, "probe: label %d of image %lld is not in 0..%d",
                            train->labels[i], (long long)i + 1, aim_probe_classes(p) - 1);
    int batch = o->batch < train->n ? o->batch : (int)train->n;
    int64_t per_epoch = train->n / batch; /* drop the last partial batch (BatchNorm) */
    int64_t total = per_epoch * o->epochs;
    int64_t warmup = total / 10 > 0 ? total / 10 : 1;
    aim_params *pp = aim_probe_params(p);
    if (aim_params_try_alloc_moments(pp, e) != 0)
        return aim_err_prefix(e, "probe");
    aim_adamw_opts ao;
    aim_adamw_opts_default(&ao);
    ao.weight_decay = o->weight_decay;
    size_t row = (size_t)train->N * train->D;
    float *x = aim_xaligned((size_t)batch * row * sizeof(float));
    int64_t *idx = aim_xmalloc((size_t)train->n * sizeof *idx);
    int32_t *lab = aim_xmalloc((size_t)batch * sizeof *lab);
    double t0 = aim_now();
    int64_t step = 0;
    for (int ep = 0; ep < o->epochs; ep++) {
        aim_rng rng;
        aim_rng_seed(&rng, aim_hash64(o->seed ^ aim_hash64((uint64_t)ep + 77)));
        for (int64_t i = 0; i < train->n; i++)
            idx[i] = i;
        for (int64_t i = train->n - 1; i > 0; i--) {
            int64_t j = aim_rng_below(&rng, (uint32_t)(i + 1));
            int64_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        double loss_sum = 0;
        int64_t hits = 0, seen = 0;
        for (int64_t bi = 0; bi < per_epoch; bi++, step++) {
            const int64_t *ib = idx + bi * batch;
            aim_feats_get(train, ib, 0, batch, x);
            for (int b = 0; b < batch; b++)
                lab[b] = train->labels[ib[b]];
            aim_params_zero_grad(pp);
            int correct = 0;
            float loss = aim_probe_forward(p, x, lab, batch, 1, &correct);
            aim_probe_backward(p, NULL);
            aim_adamw_step(pp, &ao, aim_lr_at(step, total, warmup, o->lr), step + 1);
            loss_sum += loss * batch;
            hits += correct;
            seen += batch;
        }
        r->train_loss = (float)(loss_sum / seen);
        r->train_top1 = (float)(100.0 * hits / seen);
        r->epochs_done = ep + 1;
        int last = ep + 1 == o->epochs;
        int tested = test && (o->eval_every_epoch || last);
        if (tested)
            r->test_top1 = aim_probe_evaluate(p, test, batch);
        aim_runlog_begin(o->log, ep + 1, "probe_epoch");
        aim_runlog_num(o->log, "set", o->log_set);
        aim_runlog_num(o->log, "loss", r->train_loss);
        aim_runlog_num(o->log, "train_top1", r->train_top1);
        aim_runlog_num(o->log, "test_top1", tested ? r->test_top1 : NAN);
        aim_runlog_num(o->log, "lr", aim_lr_at(step - 1, total, warmup, o->lr));
        aim_runlog_end(o->log);
        if (o->on_epoch && o->on_epoch(o->ctx, ep + 1, r->train_loss, r->train_top1,
                                       test ? r->test_top1 : -1))
            break;
    }
    r->seconds = aim_now() - t0;
    free(x);
    free(idx);
    free(lab);
    return 0;
}
