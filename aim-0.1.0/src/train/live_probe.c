/*
 * live_probe.c - the linear probe run every N steps during pretraining, so
 * the loss curve has a downstream number next to it: token-mean features of
 * every block from one trunk pass over a fixed subset, a BatchNorm + linear
 * probe per block, top-1 on a fixed test subset.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "aim/probe.h"

/* token means of every block for n images: out[l] is an [n, 1, D] cache */
static int pooled_features(aim_model *m, const aim_dataset *ds, int64_t n, aim_feats **out,
                           aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    int L = c->depth, N = aim_config_tokens(c), D = c->width, batch = 64;
    if (n > ds->n)
        n = ds->n;
    for (int l = 0; l < L; l++) {
        out[l] = aim_xcalloc(1, sizeof *out[l]);
        out[l]->n = n;
        out[l]->N = 1;
        out[l]->D = D;
        out[l]->data = aim_xmalloc((size_t)(n ? n : 1) * D * sizeof(uint16_t));
        out[l]->labels = aim_xmalloc((size_t)(n ? n : 1) * sizeof(int32_t));
    }
    if (aim_model_reserve(m, batch, e) != 0)
        return -1;
    size_t img = (size_t)c->channels * c->image * c->image;
    float *x = aim_xaligned((size_t)batch * img * sizeof(float));
    int32_t *lab = aim_xmalloc((size_t)batch * sizeof *lab);
    for (int64_t i0 = 0; i0 < n; i0 += batch) {
        int nb = (int)(n - i0 < batch ? n - i0 : batch);
        aim_dataset_get_batch(ds, i0, nb, 1, x, lab);
        aim_model_trunk(m, x, NULL, nb, L);
        for (int l = 0; l < L; l++) {
            const float *o = aim_model_block_output(m, l + 1);
            memcpy(out[l]->labels + i0, lab, (size_t)nb * sizeof *lab);
            for (int b = 0; b < nb; b++)
                for (int d = 0; d < D; d++) {
                    float s = 0;
                    for (int t = 0; t < N; t++)
                        s += o[((size_t)b * N + t) * D + d];
                    out[l]->data[(size_t)(i0 + b) * D + d] = aim_half_from_float(s / N);
                }
        }
    }
    free(x);
    free(lab);
    return 0;
}

int aim_live_probe(aim_model *m, const aim_dataset *train, int64_t ntrain,
                   const aim_dataset *test, int64_t ntest, uint64_t seed, float *top1,
                   aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    int L = c->depth;
    int K = train->nclasses > test->nclasses ? train->nclasses : test->nclasses;
    if (K < 2)
        return aim_errf(e, "live probe: the data has %d class(es)", K);
    aim_feats **ftr = aim_xcalloc((size_t)L, sizeof *ftr), **fte = aim_xcalloc((size_t)L, sizeof *fte);
    int rc = pooled_features(m, train, ntrain, ftr, e);
    if (rc == 0)
        rc = pooled_features(m, test, ntest, fte, e);
    for (int l = 0; rc == 0 && l < L; l++) {
        aim_probe *p = aim_probe_new(AIM_PROBE_LINEAR, 1, c->width, 1, K, seed + (uint64_t)l, e);
        aim_probe_opts o;
        aim_probe_opts_default(&o);
        o.epochs = 10;
        o.batch = 128;
        o.lr = 1e-2f;
        o.seed = seed;
        o.eval_every_epoch = 0;
        aim_probe_result r;
        rc = aim_probe_train(p, ftr[l], fte[l], &o, &r, e);
        top1[l] = r.test_top1;
        aim_probe_free(p);
    }
    for (int l = 0; l < L; l++) {
        aim_feats_free(ftr[l]);
        aim_feats_free(fte[l]);
    }
    free(ftr);
    free(fte);
    return rc;
}

int aim_live_probe_raw(const aim_dataset *train, int64_t ntrain, const aim_dataset *test,
                       int64_t ntest, uint64_t seed, float *top1, aim_err *e)
{
    int K = train->nclasses > test->nclasses ? train->nclasses : test->nclasses;
    if (K < 2)
        return aim_errf(e, "live probe: the data has %d class(es)", K);
    if (ntrain <= 0 || ntest <= 0)
        return aim_errf(e, "live probe: no images to probe");
    aim_feats *ftr = aim_features_raw(train, ntrain, e);
    aim_feats *fte = ftr ? aim_features_raw(test, ntest, e) : NULL;
    int rc = -1;
    if (ftr && fte) {
        aim_probe *p = aim_probe_new(AIM_PROBE_LINEAR, 1, ftr->D, 1, K, seed, e);
        if (p) {
            aim_probe_opts o;
            aim_probe_opts_default(&o);
            o.epochs = 10; /* the settings of aim_live_probe */
            o.batch = 128;
            o.lr = 1e-2f;
            o.seed = seed;
            o.eval_every_epoch = 0;
            aim_probe_result r;
            rc = aim_probe_train(p, ftr, fte, &o, &r, e);
            *top1 = r.test_top1;
            aim_probe_free(p);
        }
    }
    aim_feats_free(ftr);
    aim_feats_free(fte);
    return rc;
}
