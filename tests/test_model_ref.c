/* test_model_ref.c - an independent check of the AIM model against
 * shared/AIM.md: a plain double-precision reference of the forward pass and
 * the loss (no BLAS, no shared code with src/model or src/nn), fed with the
 * same safetensors file that aim_model_load reads. Also checks the loader's
 * errors and that save + load round-trips bit-exactly. */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aim/core.h"
#include "aim/io.h"
#include "aim/model.h"
#include "tap.h"
#include "gemm_libs.h"

/* ------------------------------------------------------------ config */
typedef struct rcfg {
    const char *tag;
    int C, img, p, D, L, NH, Dh, Lh;
    double eps;           /* norm_eps */
    const char *eps_str;  /* as written in the metadata; NULL = left out */
    const char *mean_str, *std_str; /* optional metadata */
} rcfg;

static int r_G(const rcfg *c) { return c->img / c->p; }
static int r_N(const rcfg *c) { return r_G(c) * r_G(c); }
static int r_P(const rcfg *c) { return c->p * c->p * c->C; }

/* ----------------------------------------------------------- weights */
typedef struct rtensor {
    char name[AIM_PARAM_NAME_MAX];
    int ndim;
    int64_t shape[4];
    size_t numel;
    float *data;
} rtensor;

typedef struct rweights {
    int n;
    rtensor t[160];
} rweights;

enum { K_LINEAR, K_GAIN, K_BIAS };

static void w_add(rweights *w, aim_rng *r, int kind, int ndim, const int64_t *shape,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void w_add(rweights *w, aim_rng *r, int kind, int ndim, const int64_t *shape,
                  const char *fmt, ...)
{
    rtensor *t = &w->t[w->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= (size_t)shape[i];
    }
    t->data = malloc(t->numel * sizeof(float));
    /* fan-in of a weight: all dims but the first */
    size_t fan_in = ndim > 1 ? t->numel / (size_t)shape[0] : 1;
    for (size_t i = 0; i < t->numel; i++) {
        double z = aim_rng_normal(r);
        switch (kind) {
        case K_LINEAR: t->data[i] = (float)(z / sqrt((double)fan_in)); break;
        case K_GAIN: t->data[i] = (float)(1.0 + 0.3 * z); break;
        default: t->data[i] = (float)(0.2 * z); break;
        }
    }
}

static const float *W(const rweights *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const float *W(const rweights *w, const char *fmt, ...)
{
    char name[AIM_PARAM_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return w->t[i].data;
    printf("Bail out! reference weight %s missing\n", name);
    exit(1);
}

/* AIM.md names and shapes, random values (LayerNorm weights around 1 and
 * biases around 0, but never exactly 1 / 0, so a mix-up shows). */
static void make_weights(const rcfg *c, uint64_t seed, rweights *w)
{
    aim_rng r;
    aim_rng_seed(&r, seed);
    w->n = 0;
    int64_t D = c->D, Dh = c->Dh, C = c->C, p = c->p, P = r_P(c);
    w_add(w, &r, K_LINEAR, 4, (int64_t[]){D, C, p, p}, "preprocessor.patchifier.proj.weight");
    w_add(w, &r, K_BIAS, 1, (int64_t[]){D}, "preprocessor.patchifier.proj.bias");
    w_add(w, &r, K_GAIN, 1, (int64_t[]){D}, "preprocessor.patchifier.norm.weight");
    w_add(w, &r, K_BIAS, 1, (int64_t[]){D}, "preprocessor.patchifier.norm.bias");
    for (int i = 0; i < c->L; i++) {
        w_add(w, &r, K_GAIN, 1, (int64_t[]){D}, "trunk.blocks.%d.norm_1.weight", i);
        w_add(w, &r, K_BIAS, 1, (int64_t[]){D}, "trunk.blocks.%d.norm_1.bias", i);
        w_add(w, &r, K_LINEAR, 2, (int64_t[]){3 * D, D}, "trunk.blocks.%d.attn.qkv.weight", i);
        w_add(w, &r, K_LINEAR, 2, (int64_t[]){D, D}, "trunk.blocks.%d.attn.proj.weight", i);
        w_add(w, &r, K_GAIN, 1, (int64_t[]){D}, "trunk.blocks.%d.norm_2.weight", i);
        w_add(w, &r, K_BIAS, 1, (int64_t[]){D}, "trunk.blocks.%d.norm_2.bias", i);
        w_add(w, &r, K_LINEAR, 2, (int64_t[]){4 * D, D}, "trunk.blocks.%d.mlp.fc1.weight", i);
        w_add(w, &r, K_LINEAR, 2, (int64_t[]){D, 4 * D}, "trunk.blocks.%d.mlp.fc2.weight", i);
    }
    w_add(w, &r, K_GAIN, 1, (int64_t[]){D}, "trunk.post_trunk_norm.weight");
    w_add(w, &r, K_BIAS, 1, (int64_t[]){D}, "trunk.post_trunk_norm.bias");
    w_add(w, &r, K_LINEAR, 2, (int64_t[]){Dh, D}, "pixel_head.decoder_projection.weight");
    w_add(w, &r, K_BIAS, 1, (int64_t[]){Dh}, "pixel_head.decoder_projection.bias");
    for (int j = 0; j < c->Lh; j++) {
        w_add(w, &r, K_GAIN, 1, (int64_t[]){Dh}, "pixel_head.decoder_blocks.%d.norm.weight", j);
        w_add(w, &r, K_BIAS, 1, (int64_t[]){Dh}, "pixel_head.decoder_blocks.%d.norm.bias", j);
        w_add(w, &r, K_LINEAR, 2, (int64_t[]){4 * Dh, Dh},
              "pixel_head.decoder_blocks.%d.mlp.fc1.weight", j);
        w_add(w, &r, K_LINEAR, 2, (int64_t[]){Dh, 4 * Dh},
              "pixel_head.decoder_blocks.%d.mlp.fc2.weight", j);
    }
    w_add(w, &r, K_GAIN, 1, (int64_t[]){Dh}, "pixel_head.decoder_norm.weight");
    w_add(w, &r, K_BIAS, 1, (int64_t[]){Dh}, "pixel_head.decoder_norm.bias");
    w_add(w, &r, K_LINEAR, 2, (int64_t[]){P, Dh}, "pixel_head.decoder_pred.weight");
    w_add(w, &r, K_BIAS, 1, (int64_t[]){P}, "pixel_head.decoder_pred.bias");
}

static void free_weights(rweights *w)
{
    for (int i = 0; i < w->n; i++)
        free(w->t[i].data);
    w->n = 0;
}

/* A way to spoil a weights file for the loader checks. */
typedef struct mutation {
    const char *drop;      /* tensor left out */
    const char *swap;      /* 2-D tensor written with its dims swapped */
    const char *unsqueeze; /* 1-D tensor [n] written as [1, n] */
    const char *f64;       /* tensor written as F64 */
    const char *extra;     /* an unknown tensor added */
    const char *drop_meta; /* metadata key left out */
} mutation;

static int write_weights(const char *path, const rcfg *c, const rweights *w,
                         const mutation *mu, aim_err *e)
{
    static const mutation none;
    if (!mu)
        mu = &none;
    aim_st_entry ent[170];
    double *f64 = NULL;
    float extra[4] = {1, 2, 3, 4};
    int n = 0;
    for (int i = 0; i < w->n; i++) {
        const rtensor *t = &w->t[i];
        if (mu->drop && !strcmp(mu->drop, t->name))
            continue;
        aim_st_entry *x = &ent[n++];
        memset(x, 0, sizeof *x);
        x->name = t->name;
        x->dtype = AIM_F32;
        x->ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++)
            x->shape[d] = t->shape[d];
        x->data = t->data;
        if (mu->swap && !strcmp(mu->swap, t->name) && t->ndim == 2) {
            x->shape[0] = t->shape[1];
            x->shape[1] = t->shape[0];
        }
        if (mu->unsqueeze && !strcmp(mu->unsqueeze, t->name) && t->ndim == 1) {
            x->ndim = 2;
            x->shape[0] = 1;
            x->shape[1] = t->shape[0];
        }
        if (mu->f64 && !strcmp(mu->f64, t->name)) {
            f64 = malloc(t->numel * sizeof(double));
            for (size_t k = 0; k < t->numel; k++)
                f64[k] = t->data[k];
            x->dtype = AIM_F64;
            x->data = f64;
        }
    }
    if (mu->extra) {
        aim_st_entry *x = &ent[n++];
        memset(x, 0, sizeof *x);
        x->name = mu->extra;
        x->dtype = AIM_F32;
        x->ndim = 1;
        x->shape[0] = 4;
        x->data = extra;
    }
    char v[9][32];
    snprintf(v[0], 32, "%d", c->img);
    snprintf(v[1], 32, "%d", c->C);
    snprintf(v[2], 32, "%d", c->p);
    snprintf(v[3], 32, "%d", c->D);
    snprintf(v[4], 32, "%d", c->L);
    snprintf(v[5], 32, "%d", c->NH);
    snprintf(v[6], 32, "%d", c->Dh);
    snprintf(v[7], 32, "%d", c->Lh);
    const char *keys[] = {"image", "channels", "patch", "width", "depth",
                          "heads", "head_width", "head_depth"};
    const char *meta[32];
    int nm = 0;
    for (int k = 0; k < 8; k++) {
        if (mu->drop_meta && !strcmp(mu->drop_meta, keys[k]))
            continue;
        meta[2 * nm] = keys[k];
        meta[2 * nm + 1] = v[k];
        nm++;
    }
    if (c->eps_str) {
        meta[2 * nm] = "norm_eps";
        meta[2 * nm + 1] = c->eps_str;
        nm++;
    }
    if (c->mean_str) {
        meta[2 * nm] = "mean";
        meta[2 * nm + 1] = c->mean_str;
        nm++;
        meta[2 * nm] = "std";
        meta[2 * nm + 1] = c->std_str;
        nm++;
    }
    int rc = aim_st_write(path, ent, n, meta, nm, e);
    free(f64);
    return rc;
}

/* --------------------------------------------------------- reference */
static void ref_ln(const double *x, double *y, int n, const float *g, const float *b, double eps)
{
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++)
        mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= n; /* LayerNorm: biased variance */
    double rs = 1.0 / sqrt(var + eps);
    for (int i = 0; i < n; i++)
        y[i] = (x[i] - mean) * rs * g[i] + b[i];
}

/* y[o] (+)= W[o,:] . x (+ b[o]) */
static void ref_linear(double *y, const double *x, const float *Wt, const float *b, int in,
                       int out, int accumulate)
{
    for (int o = 0; o < out; o++) {
        double s = b ? b[o] : 0;
        for (int i = 0; i < in; i++)
            s += (double)Wt[(size_t)o * in + i] * x[i];
        y[o] = accumulate ? y[o] + s : s;
    }
}

static double ref_gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

/* + 2-D sin-cos for the token at (row i, col j), width E */
static void ref_add_sincos(double *y, int E, int i, int j)
{
    int Q = E / 4;
    for (int k = 0; k < Q; k++) {
        double w = pow(10000.0, -(double)k / Q);
        y[k] += sin(j * w);
        y[Q + k] += cos(j * w);
        y[2 * Q + k] += sin(i * w);
        y[3 * Q + k] += cos(i * w);
    }
}

/* The trunk. prefix NULL = no mask. raw [L][B,N,D] (or NULL) gets each block's
 * raw output, out [B,N,D] the post_trunk_norm output. */
static void ref_trunk(const rcfg *c, const rweights *w, const float *x, int B,
                      const int32_t *prefix, double *raw, double *out)
{
    int G = r_G(c), N = r_N(c), D = c->D, C = c->C, p = c->p, H = c->img, NH = c->NH;
    int hd = D / NH;
    double *X = malloc(sizeof(double) * N * D);
    double *h = malloc(sizeof(double) * N * D);
    double *qkv = malloc(sizeof(double) * N * 3 * D);
    double *att = malloc(sizeof(double) * N * D);
    double *u = malloc(sizeof(double) * 4 * D);
    double *tmp = malloc(sizeof(double) * D);
    double *sc = malloc(sizeof(double) * N);
    const float *pw = W(w, "preprocessor.patchifier.proj.weight");
    const float *pb = W(w, "preprocessor.patchifier.proj.bias");
    for (int b = 0; b < B; b++) {
        int S = prefix ? prefix[b] : N;
        for (int n = 0; n < N; n++) {
            int row = n / G, col = n % G;
            for (int d = 0; d < D; d++) {
                double s = pb[d];
                for (int ch = 0; ch < C; ch++)
                    for (int py = 0; py < p; py++)
                        for (int px = 0; px < p; px++)
                            s += (double)pw[((size_t)(d * C + ch) * p + py) * p + px] *
                                 x[(((size_t)b * C + ch) * H + row * p + py) * H + col * p + px];
                tmp[d] = s;
            }
            ref_ln(tmp, X + (size_t)n * D, D, W(w, "preprocessor.patchifier.norm.weight"),
                   W(w, "preprocessor.patchifier.norm.bias"), c->eps);
            ref_add_sincos(X + (size_t)n * D, D, row, col);
        }
        for (int l = 0; l < c->L; l++) {
            for (int n = 0; n < N; n++) {
                ref_ln(X + (size_t)n * D, h + (size_t)n * D, D,
                       W(w, "trunk.blocks.%d.norm_1.weight", l),
                       W(w, "trunk.blocks.%d.norm_1.bias", l), c->eps);
                ref_linear(qkv + (size_t)n * 3 * D, h + (size_t)n * D,
                           W(w, "trunk.blocks.%d.attn.qkv.weight", l), NULL, D, 3 * D, 0);
            }
            for (int hh = 0; hh < NH; hh++)
                for (int q = 0; q < N; q++) {
                    const double *qv = qkv + (size_t)q * 3 * D + hh * hd;
                    double mx = -INFINITY;
                    for (int k = 0; k < N; k++) {
                        if (!(k < S || k <= q)) {
                            sc[k] = -INFINITY;
                            continue;
                        }
                        const double *kv = qkv + (size_t)k * 3 * D + D + hh * hd;
                        double s = 0;
                        for (int d = 0; d < hd; d++)
                            s += qv[d] * kv[d];
                        sc[k] = s / sqrt((double)hd);
                        if (sc[k] > mx)
                            mx = sc[k];
                    }
                    double z = 0;
                    for (int k = 0; k < N; k++) {
                        sc[k] = sc[k] == -INFINITY ? 0 : exp(sc[k] - mx);
                        z += sc[k];
                    }
                    double *o = att + (size_t)q * D + hh * hd;
                    for (int d = 0; d < hd; d++)
                        o[d] = 0;
                    for (int k = 0; k < N; k++) {
                        const double *vv = qkv + (size_t)k * 3 * D + 2 * D + hh * hd;
                        for (int d = 0; d < hd; d++)
                            o[d] += sc[k] / z * vv[d];
                    }
                }
            for (int n = 0; n < N; n++) {
                double *xn = X + (size_t)n * D;
                ref_linear(xn, att + (size_t)n * D, W(w, "trunk.blocks.%d.attn.proj.weight", l),
                           NULL, D, D, 1);
                ref_ln(xn, tmp, D, W(w, "trunk.blocks.%d.norm_2.weight", l),
                       W(w, "trunk.blocks.%d.norm_2.bias", l), c->eps);
                ref_linear(u, tmp, W(w, "trunk.blocks.%d.mlp.fc1.weight", l), NULL, D, 4 * D, 0);
                for (int k = 0; k < 4 * D; k++)
                    u[k] = ref_gelu(u[k]);
                ref_linear(xn, u, W(w, "trunk.blocks.%d.mlp.fc2.weight", l), NULL, 4 * D, D, 1);
            }
            if (raw)
                memcpy(raw + ((size_t)l * B + b) * N * D, X, sizeof(double) * N * D);
        }
        for (int n = 0; n < N; n++)
            ref_ln(X + (size_t)n * D, out + ((size_t)b * N + n) * D, D,
                   W(w, "trunk.post_trunk_norm.weight"), W(w, "trunk.post_trunk_norm.bias"),
                   c->eps);
    }
    free(X); free(h); free(qkv); free(att); free(u); free(tmp); free(sc);
}

/* The pixel head on the post-norm trunk output: pred [B,N,P]. */
static void ref_head(const rcfg *c, const rweights *w, const double *tr, int B, double *pred)
{
    int G = r_G(c), N = r_N(c), D = c->D, Dh = c->Dh, P = r_P(c);
    double *y = malloc(sizeof(double) * Dh), *z = malloc(sizeof(double) * Dh);
    double *u = malloc(sizeof(double) * 4 * Dh);
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) {
            ref_linear(y, tr + ((size_t)b * N + n) * D, W(w, "pixel_head.decoder_projection.weight"),
                       W(w, "pixel_head.decoder_projection.bias"), D, Dh, 0);
            ref_add_sincos(y, Dh, n / G, n % G);
            for (int j = 0; j < c->Lh; j++) {
                ref_ln(y, z, Dh, W(w, "pixel_head.decoder_blocks.%d.norm.weight", j),
                       W(w, "pixel_head.decoder_blocks.%d.norm.bias", j), c->eps);
                ref_linear(u, z, W(w, "pixel_head.decoder_blocks.%d.mlp.fc1.weight", j), NULL, Dh,
                           4 * Dh, 0);
                for (int k = 0; k < 4 * Dh; k++)
                    u[k] = ref_gelu(u[k]);
                ref_linear(y, u, W(w, "pixel_head.decoder_blocks.%d.mlp.fc2.weight", j), NULL,
                           4 * Dh, Dh, 1);
            }
            ref_ln(y, z, Dh, W(w, "pixel_head.decoder_norm.weight"),
                   W(w, "pixel_head.decoder_norm.bias"), c->eps);
            ref_linear(pred + ((size_t)b * N + n) * P, z, W(w, "pixel_head.decoder_pred.weight"),
                       W(w, "pixel_head.decoder_pred.bias"), Dh, P, 0);
        }
    free(y); free(z); free(u);
}

/* targ [B,N,P]: row j = patch j in (py, px, c) order, normalised with the
 * unbiased variance + 1e-6 (not norm_eps). */
static void ref_targets(const rcfg *c, const float *x, int B, double *targ)
{
    int G = r_G(c), N = r_N(c), C = c->C, p = c->p, H = c->img, P = r_P(c);
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) {
            double *t = targ + ((size_t)b * N + n) * P;
            int row = n / G, col = n % G;
            for (int py = 0; py < p; py++)
                for (int px = 0; px < p; px++)
                    for (int ch = 0; ch < C; ch++)
                        t[(py * p + px) * C + ch] =
                            x[(((size_t)b * C + ch) * H + row * p + py) * H + col * p + px];
            double mean = 0, var = 0;
            for (int k = 0; k < P; k++)
                mean += t[k];
            mean /= P;
            for (int k = 0; k < P; k++)
                var += (t[k] - mean) * (t[k] - mean);
            var /= (P - 1);
            double rs = 1.0 / sqrt(var + 1e-6);
            for (int k = 0; k < P; k++)
                t[k] = (t[k] - mean) * rs;
        }
}

static double ref_loss(const rcfg *c, const double *pred, const double *targ, const int32_t *prefix,
                       int B)
{
    int N = r_N(c), P = r_P(c);
    double sum = 0;
    long cnt = 0;
    for (int b = 0; b < B; b++)
        for (int j = prefix[b]; j < N; j++) {
            const double *pr = pred + ((size_t)b * N + j - 1) * P;
            const double *t = targ + ((size_t)b * N + j) * P;
            double s = 0;
            for (int k = 0; k < P; k++)
                s += (pr[k] - t[k]) * (pr[k] - t[k]);
            sum += s / P;
            cnt++;
        }
    return sum / cnt;
}

static double max_abs_diff(const float *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) /* NaN counts as infinite */
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static double max_abs(const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(b[i]) > m ? fabs(b[i]) : m;
    return m;
}

/* measured worst errors over all configs, printed at the end */
static double worst_loss_rel, worst_pred, worst_targ, worst_trunk;

static void random_images(aim_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.8 * aim_rng_normal(r) + 0.1);
}

/* One forward of aim against the reference. */
static void check_forward(const rcfg *c, const rweights *w, aim_model *m, const float *x, int B,
                          const int32_t *prefix, const char *what)
{
    int N = r_N(c), P = r_P(c);
    size_t np = (size_t)B * N * P;
    double *tr = malloc(sizeof(double) * B * N * c->D);
    double *pred = malloc(sizeof(double) * np), *targ = malloc(sizeof(double) * np);
    ref_trunk(c, w, x, B, prefix, NULL, tr);
    ref_head(c, w, tr, B, pred);
    ref_targets(c, x, B, targ);
    double want = ref_loss(c, pred, targ, prefix, B);

    float got = aim_model_forward(m, x, prefix, B);
    double rel = fabs((double)got - want) / fabs(want);
    if (!(rel <= worst_loss_rel))
        worst_loss_rel = isnan(rel) ? INFINITY : rel;
    tap_ok(rel <= 2e-5, "%s %s: loss %.9g vs reference %.9g (rel %.2e)", c->tag, what, got, want,
           rel);

    const float *ap = aim_model_predictions(m);
    double dp = ap ? max_abs_diff(ap, pred, np) : INFINITY;
    if (!(dp <= worst_pred))
        worst_pred = dp;
    tap_ok(dp <= 2e-4, "%s %s: predictions [B,N,P] within 2e-4 (max |diff| %.2e, max |pred| %.3g)",
           c->tag, what, dp, max_abs(pred, np));
    if (dp > 2e-4 && ap) {
        for (size_t i = 0; i < np; i++)
            if (fabs(ap[i] - pred[i]) > 2e-4) {
                tap_diag("first bad prediction b=%zu i=%zu k=%zu: got %.7g want %.7g",
                         i / ((size_t)N * P), i / P % N, i % P, ap[i], pred[i]);
                break;
            }
    }

    const float *at = aim_model_targets(m);
    double dt = at ? max_abs_diff(at, targ, np) : INFINITY;
    if (!(dt <= worst_targ))
        worst_targ = dt;
    tap_ok(dt <= 2e-4, "%s %s: targets [B,N,P] (row j = patch j) within 2e-4 (max |diff| %.2e)",
           c->tag, what, dt);
    if (dt > 2e-4 && at) {
        for (size_t i = 0; i < np; i++)
            if (fabs(at[i] - targ[i]) > 2e-4) {
                tap_diag("first bad target b=%zu j=%zu k=%zu: got %.7g want %.7g",
                         i / ((size_t)N * P), i / P % N, i % P, at[i], targ[i]);
                break;
            }
    }
    free(tr); free(pred); free(targ);
}

/* aim_model_trunk: raw block outputs and the post-norm output. */
static void check_trunk(const rcfg *c, const rweights *w, aim_model *m, const float *x, int B,
                        const int32_t *prefix, const char *what)
{
    int N = r_N(c), D = c->D;
    size_t nd = (size_t)B * N * D;
    double *raw = malloc(sizeof(double) * nd * c->L), *out = malloc(sizeof(double) * nd);
    ref_trunk(c, w, x, B, prefix, raw, out);
    double worst = 0;
    int all = 1;
    for (int up = 0; up <= c->L; up++) {
        const float *f = aim_model_trunk(m, x, prefix, B, up);
        const double *want = up ? raw + (size_t)(up - 1) * nd : out;
        double d = f ? max_abs_diff(f, want, nd) : INFINITY;
        /* raw block outputs grow with depth: allow 1e-5 relative to the largest */
        double tol = 2e-4 + 1e-5 * max_abs(want, nd);
        all &= d <= tol;
        if (!(d <= worst))
            worst = d;
        if (d > tol)
            tap_diag("%s %s: aim_model_trunk(upto=%d) max |diff| %.3g (tol %.3g)", c->tag, what,
                     up, d, tol);
    }
    if (!(worst <= worst_trunk))
        worst_trunk = worst;
    tap_ok(all, "%s %s: aim_model_trunk raw blocks 1..%d and post-norm match (max |diff| %.2e)",
           c->tag, what, c->L, worst);
    free(raw); free(out);
}

static void run_config(const rcfg *c, uint64_t seed)
{
    aim_err e = {{0}};
    int N = r_N(c);
    rweights *w = calloc(1, sizeof *w);
    make_weights(c, seed, w);
    char fname[64];
    snprintf(fname, sizeof fname, "%s.safetensors", c->tag);
    const char *path = tap_path(fname);
    if (!tap_ok(write_weights(path, c, w, NULL, &e) == 0, "%s: write weights: %s", c->tag,
                e.msg)) {
        free_weights(w);
        free(w);
        return;
    }
    aim_model *m = aim_model_load(path, &e);
    if (!tap_ok(m != NULL, "%s: aim_model_load: %s", c->tag, m ? "ok" : e.msg)) {
        free_weights(w);
        free(w);
        return;
    }
    const aim_config *mc = aim_model_config(m);
    tap_ok(mc->image == c->img && mc->channels == c->C && mc->patch == c->p &&
               mc->width == c->D && mc->depth == c->L && mc->heads == c->NH &&
               mc->head_width == c->Dh && mc->head_depth == c->Lh &&
               fabs(mc->norm_eps - c->eps) <= 1e-6 * c->eps,
           "%s: config from the metadata (norm_eps %g)", c->tag, mc->norm_eps);

    /* the loaded values are the file's, bit for bit */
    aim_params *ps = aim_model_params(m);
    int same = 1, found = 0;
    for (int i = 0; i < w->n; i++) {
        int k = aim_params_find(ps, w->t[i].name);
        if (k < 0 || ps->t[k].numel != w->t[i].numel) {
            same = 0;
            tap_diag("%s: parameter %s missing or sized wrongly after load", c->tag, w->t[i].name);
            continue;
        }
        found++;
        same &= !memcmp(ps->data + ps->t[k].offset, w->t[i].data, w->t[i].numel * sizeof(float));
    }
    tap_ok(same && found == w->n && ps->n == w->n,
           "%s: all %d tensors loaded bit-exactly (table has %d)", c->tag, w->n, ps->n);

    aim_rng r;
    aim_rng_seed(&r, seed ^ 0x5eed);
    int CHW = c->C * c->img * c->img;
    float *x = malloc(sizeof(float) * 4 * CHW);
    int Ss[4] = {1, 2, N / 2, N - 1};
    for (int s = 0; s < 4; s++) {
        random_images(&r, x, (size_t)2 * CHW);
        int32_t pre[2] = {Ss[s], Ss[s]};
        char what[32];
        snprintf(what, sizeof what, "B=2 S=%d", Ss[s]);
        check_forward(c, w, m, x, 2, pre, what);
    }
    random_images(&r, x, (size_t)4 * CHW);
    int32_t mixed[4] = {N - 1, 1, N / 2, 2};
    check_forward(c, w, m, x, 4, mixed, "B=4 mixed S");
    int32_t one[1] = {1};
    check_forward(c, w, m, x + CHW, 1, one, "B=1 S=1 after B=4");
    check_trunk(c, w, m, x, 4, NULL, "B=4 no mask");
    check_trunk(c, w, m, x, 4, mixed, "B=4 mixed S");

    /* save + load round-trips bit-exactly, forward included */
    float l1 = aim_model_forward(m, x, mixed, 4);
    size_t np = (size_t)4 * N * r_P(c);
    float *p1 = malloc(sizeof(float) * np);
    memcpy(p1, aim_model_predictions(m), sizeof(float) * np);
    snprintf(fname, sizeof fname, "%s.saved.safetensors", c->tag);
    const char *spath = tap_path(fname);
    tap_ok(aim_model_save(m, spath, &e) == 0, "%s: aim_model_save: %s", c->tag, e.msg);
    aim_model *m2 = aim_model_load(spath, &e);
    if (tap_ok(m2 != NULL, "%s: reload the saved file: %s", c->tag, m2 ? "ok" : e.msg)) {
        aim_params *p2 = aim_model_params(m2);
        int eq = p2->n == ps->n;
        for (int i = 0; i < ps->n && eq; i++) {
            int k = aim_params_find(p2, ps->t[i].name);
            eq = k >= 0 && p2->t[k].numel == ps->t[i].numel && p2->t[k].ndim == ps->t[i].ndim &&
                 !memcmp(p2->t[k].shape, ps->t[i].shape, sizeof(int64_t) * ps->t[i].ndim) &&
                 !memcmp(p2->data + p2->t[k].offset, ps->data + ps->t[i].offset,
                         ps->t[i].numel * sizeof(float));
        }
        tap_ok(eq, "%s: save + load: every tensor bit-exact", c->tag);
        const aim_config *c2 = aim_model_config(m2);
        tap_ok(!memcmp(c2, mc, sizeof *c2) || (c2->image == mc->image &&
               c2->channels == mc->channels && c2->patch == mc->patch && c2->width == mc->width &&
               c2->depth == mc->depth && c2->heads == mc->heads &&
               c2->head_width == mc->head_width && c2->head_depth == mc->head_depth &&
               c2->norm_eps == mc->norm_eps),
               "%s: save + load: same config", c->tag);
        float l2 = aim_model_forward(m2, x, mixed, 4);
        tap_ok(l1 == l2 && !memcmp(p1, aim_model_predictions(m2), sizeof(float) * np),
               "%s: save + load: same loss (%.9g vs %.9g) and predictions bit for bit", c->tag,
               l1, l2);
        aim_model_free(m2);
    }
    /* the saved file speaks AIM.md: names, shapes, metadata */
    aim_st_file *sf = aim_st_open(spath, &e);
    if (tap_ok(sf != NULL, "%s: open the saved file: %s", c->tag, sf ? "ok" : e.msg)) {
        int okn = sf->ntensors == w->n;
        for (int i = 0; i < w->n; i++) {
            const aim_st_tensor *t = aim_st_find(sf, w->t[i].name);
            int good = t && t->dtype == AIM_F32 && t->ndim == w->t[i].ndim &&
                       !memcmp(t->shape, w->t[i].shape, sizeof(int64_t) * t->ndim) &&
                       !memcmp(aim_st_data(sf, t), w->t[i].data, w->t[i].numel * 4);
            if (!good)
                tap_diag("%s: saved tensor %s missing or different", c->tag, w->t[i].name);
            okn &= good;
        }
        tap_ok(okn, "%s: saved file holds exactly the AIM.md tensors, F32, same shapes and bits",
               c->tag);
        char want[8][16];
        int iv[8] = {c->img, c->C, c->p, c->D, c->L, c->NH, c->Dh, c->Lh};
        const char *keys[] = {"image", "channels", "patch", "width", "depth",
                              "heads", "head_width", "head_depth"};
        int okm = 1;
        for (int k = 0; k < 8; k++) {
            snprintf(want[k], 16, "%d", iv[k]);
            const char *v = aim_st_meta(sf, keys[k]);
            if (!v || strcmp(v, want[k])) {
                okm = 0;
                tap_diag("%s: saved metadata %s = %s, want %s", c->tag, keys[k], v ? v : "(none)",
                         want[k]);
            }
        }
        const char *ve = aim_st_meta(sf, "norm_eps");
        if (ve && fabs(strtod(ve, NULL) - c->eps) > 1e-6 * c->eps) {
            okm = 0;
            tap_diag("%s: saved norm_eps = %s, want %g", c->tag, ve, c->eps);
        }
        tap_ok(okm, "%s: saved metadata carries the config as decimal strings (norm_eps %s)",
               c->tag, ve ? ve : "(absent)");
        aim_st_close(sf);
    }
    free(p1);
    free(x);
    aim_model_free(m);
    free_weights(w);
    free(w);
}

/* The loader's errors name what is wrong. */
static void check_load_errors(void)
{
    rcfg c = {"err", 1, 8, 2, 16, 2, 2, 8, 1, 1e-6, "1e-06", NULL, NULL};
    rweights *w = calloc(1, sizeof *w);
    make_weights(&c, 99, w);
    aim_err e;
    const char *path = tap_path("bad.safetensors");
    struct {
        mutation mu;
        const char *needle, *what;
    } cases[] = {
        {{.drop = "trunk.blocks.1.mlp.fc2.weight"}, "trunk.blocks.1.mlp.fc2.weight",
         "a missing trunk tensor"},
        {{.drop = "pixel_head.decoder_pred.bias"}, "pixel_head.decoder_pred.bias",
         "a missing head tensor"},
        {{.drop = "preprocessor.patchifier.norm.weight"}, "preprocessor.patchifier.norm.weight",
         "a missing patch-norm tensor"},
        {{.swap = "trunk.blocks.0.attn.qkv.weight"}, "trunk.blocks.0.attn.qkv.weight",
         "a transposed tensor (same size, wrong shape)"},
        {{.unsqueeze = "trunk.post_trunk_norm.bias"}, "trunk.post_trunk_norm.bias",
         "a [1,D] tensor where [D] is due"},
        {{.f64 = "trunk.blocks.0.norm_1.weight"}, "trunk.blocks.0.norm_1.weight",
         "an F64 tensor"},
        {{.extra = "trunk.blocks.0.attn.bogus"}, "trunk.blocks.0.attn.bogus",
         "an extra unknown tensor"},
        {{.extra = "trunk.blocks.2.norm_1.weight"}, "trunk.blocks.2.norm_1.weight",
         "a tensor of a block beyond depth"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&e, 0, sizeof e);
        if (write_weights(path, &c, w, &cases[i].mu, &e)) {
            tap_ok(0, "write a file with %s: %s", cases[i].what, e.msg);
            continue;
        }
        aim_model *m = aim_model_load(path, &e);
        tap_ok(m == NULL && tap_contains(e.msg, cases[i].needle), "load refuses %s: %s",
               cases[i].what, m ? "(loaded!)" : e.msg);
        aim_model_free(m);
    }
    const char *keys[] = {"image", "channels", "patch", "width", "depth",
                          "heads", "head_width", "head_depth"};
    for (int k = 0; k < 8; k++) {
        memset(&e, 0, sizeof e);
        mutation mu = {.drop_meta = keys[k]};
        if (write_weights(path, &c, w, &mu, &e)) {
            tap_ok(0, "write a file without %s: %s", keys[k], e.msg);
            continue;
        }
        aim_model *m = aim_model_load(path, &e);
        tap_ok(m == NULL && tap_contains(e.msg, keys[k]),
               "load refuses a file without metadata key '%s': %s", keys[k],
               m ? "(loaded!)" : e.msg);
        aim_model_free(m);
    }
    /* norm_eps is optional with default 1e-6 */
    c.eps_str = NULL;
    memset(&e, 0, sizeof e);
    write_weights(path, &c, w, NULL, &e);
    aim_model *m = aim_model_load(path, &e);
    tap_ok(m && fabs(aim_model_config(m)->norm_eps - 1e-6) < 1e-12,
           "norm_eps left out defaults to 1e-6 (%s)", m ? "loaded" : e.msg);
    aim_model_free(m);
    free_weights(w);
    free(w);
}

int main(void)
{
    /* (a) one channel, small everything */
    rcfg a = {"(a) C=1 8px p2 D16 L2 NH2 Dh8 Lh1", 1, 8, 2, 16, 2, 2, 8, 1, 1e-6, "1e-06",
              NULL, NULL};
    /* (b) three channels (pixel order (py,px,c) vs conv (c,py,px) matters), N = 9 */
    rcfg b = {"(b) C=3 12px p4 D24 L2 NH3 Dh12 Lh2", 3, 12, 4, 24, 2, 3, 12, 2, 1e-6, "1e-06",
              "0.5,0.4,0.3", "0.25,0.2,0.3"};
    /* (c) no head blocks, and a large norm_eps so that every LayerNorm shows
     * whether it uses norm_eps (and the targets whether they do not) */
    rcfg cc = {"(c) C=3 8px p2 D16 L1 NH4 Dh8 Lh0 eps0.25", 3, 8, 2, 16, 1, 4, 8, 0, 0.25, "0.25",
               NULL, NULL};
    /* with the fp32 GEMMs on each library (models resolve AIM_GEMM_AUTO from
     * AIM_GEMM) */
    for (int li = 0; li < GEMM_LIBS; li++) {
        if (gemm_library(li)) {
            run_config(&a, 1);
            run_config(&b, 2);
            run_config(&cc, 3);
        }
    }
    gemm_library_done();
    check_load_errors();
    tap_diag("worst: loss rel %.3e, predictions %.3e, targets %.3e, trunk %.3e", worst_loss_rel,
             worst_pred, worst_targ, worst_trunk);
    return tap_done();
}
