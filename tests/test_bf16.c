/*
 * test_bf16.c - mixed precision (aim/bf16.h, aim_model_set_precision):
 * the bf16 conversion; the three bf16 GEMMs of a linear layer, and the same
 * three on fp32 operands through oneDNN's fp32 matmul, against a naive
 * double-precision reference within a bound derived from the rounding; the micro model's loss, predictions and gradients in bf16
 * against fp32 on the same weights; a short training run in both
 * precisions; a checkpoint written in one precision resumed in the other;
 * fp32 left bit for bit as it was after a round trip through bf16; LoRA's
 * training through the features in bf16 against fp32.
 * Everything but the conversions is skipped, with the reason, when aim was
 * built without oneDNN or the CPU has no AVX512_BF16.
 *
 * The bound. bf16 keeps 8 significant bits: rounding to nearest has unit
 * roundoff u = 2^-8, so each operand a becomes a(1 + d), |d| <= u, and a
 * product of two rounded operands is off by at most (2u + u^2)|a b|. The
 * sum of K such products is accumulated in fp32 (unit roundoff 2^-24, at
 * most K roundings on a term). So every element of a bf16 GEMM satisfies
 *   |C_bf16 - C_exact| <= (2u + u^2 + K 2^-24) sum_k |a_k b_k|.
 */
#include "config.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aim/bf16.h"
#include "aim/io.h"
#include "aim/model.h"
#include "aim/train.h"
#include "tap.h"

static double gemm_bound(int K)
{
    const double u = 1.0 / 256.0;
    return 2 * u + u * u + K * ldexp(1.0, -24);
}

static void fill(float *x, size_t n, aim_rng *r, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (float)aim_rng_normal(r);
}

static void conversions(void)
{
    tap_ok(aim_bf16_from(1.0f) == 0x3f80 && aim_bf16_to(0x3f80) == 1.0f, "bf16(1) = 0x3f80");
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1) */
    tap_ok(aim_bf16_from(1.0f + 0x1p-8f) == 0x3f80, "a tie rounds to even (down)");
    tap_ok(aim_bf16_from(1.0f + 0x1p-7f + 0x1p-8f) == 0x3f82, "a tie rounds to even (up)");
    tap_ok(aim_bf16_from(1.0f + 0x1p-8f + 0x1p-12f) == 0x3f81, "above a tie rounds up");
    tap_ok(isnan(aim_bf16_to(aim_bf16_from(NAN))), "NaN stays NaN");
    tap_ok(isinf(aim_bf16_to(aim_bf16_from(INFINITY))), "infinity stays infinity");
    float worst = 0;
    aim_rng r;
    aim_rng_seed(&r, 5);
    for (int i = 0; i < 10000; i++) {
        float x = (float)aim_rng_normal(&r) * 100.0f;
        float d = fabsf(aim_bf16_to(aim_bf16_from(x)) - x) / fabsf(x);
        if (d > worst)
            worst = d;
    }
    tap_ok(worst <= 1.0f / 256.0f, "relative rounding error <= 2^-8 (worst %.3g)", worst);
    uint16_t buf[16];
    float src[15];
    for (int i = 0; i < 15; i++)
        src[i] = (float)i;
    memset(buf, 0xff, sizeof buf);
    aim_bf16_convert(buf, src, 15);
    int ok = 1;
    for (int i = 0; i < 15; i++)
        ok &= aim_bf16_to(buf[i]) == (float)i;
    tap_ok(ok && buf[15] == 0xffff, "convert: n values, nothing after them written");
}

/* the worst |C - ref| / (bound sum |a b|) of one GEMM result, NaN worst */
static double ratio(double w, double err, double mag, int K)
{
    double x = err / (gemm_bound(K) * mag + 1e-30);
    return isnan(x) || x > w ? x : w;
}

/* the bound of an fp32 GEMM through oneDNN: K roundings at most on a term */
static double f32_bound(int K)
{
    return (K + 2) * ldexp(1.0, -24);
}

/* the three GEMMs of one layer shape, R rows (R > a tile and not a whole
 * number of tiles: the tail path), by thread 0 of a one-thread context: bf16
 * operands (f32 == 0), or fp32 ones through oneDNN's fp32 matmul (f32 ==
 * 1, a context from aim_dnnl_f32_ctx_new). The operands have exactly R
 * rows (malloc'd to size: AddressSanitizer sees a read past them), and a
 * second dW reads operands followed by NaN rows, which must not reach it. */
static void gemms(aim_bf16_ctx *c, int R, int IC, int OC, int f32)
{
    aim_err e = {{0}};
    const char *pr = f32 ? "fp32 oneDNN" : "bf16";
    if (!tap_ok(aim_bf16_prepare(c, IC, OC, &e) == 0, "%s: prepare %d -> %d: %s", pr, IC, OC,
                e.msg))
        return;
    tap_diag("%s: oneDNN implementation for %d -> %d: %s", pr, IC, OC, aim_bf16_impl(c, IC, OC));
    aim_rng r;
    aim_rng_seed(&r, (uint64_t)(R + IC + OC));
    const size_t T = AIM_BF16_TILE, es = f32 ? sizeof(float) : sizeof(uint16_t);
    float *x = malloc(sizeof(float) * R * IC), *w = malloc(sizeof(float) * OC * IC);
    float *g = malloc(sizeof(float) * R * OC), *out = malloc(sizeof(float) * (R + 1) * OC);
    float *dx = malloc(sizeof(float) * (R + 1) * IC), *dw = malloc(sizeof(float) * OC * IC);
    /* the operands as the GEMMs take them: exactly R rows; and R + T rows, NaN after R */
    void *xo = malloc(es * R * IC), *wo = malloc(es * OC * IC), *go = malloc(es * R * OC);
    void *xn = malloc(es * (R + T) * IC), *gn = malloc(es * (R + T) * OC);
    fill(x, (size_t)R * IC, &r, 1.0f);
    fill(w, (size_t)OC * IC, &r, 0.1f);
    fill(g, (size_t)R * OC, &r, 0.01f);
    if (f32) {
        memcpy(xo, x, sizeof(float) * R * IC);
        memcpy(wo, w, sizeof(float) * OC * IC);
        memcpy(go, g, sizeof(float) * R * OC);
        for (size_t i = 0; i < (R + T) * IC; i++)
            ((float *)xn)[i] = i < (size_t)R * IC ? x[i] : NAN;
        for (size_t i = 0; i < (R + T) * OC; i++)
            ((float *)gn)[i] = i < (size_t)R * OC ? g[i] : NAN;
    } else {
        aim_bf16_convert(xo, x, (size_t)R * IC);
        aim_bf16_convert(wo, w, (size_t)OC * IC);
        aim_bf16_convert(go, g, (size_t)R * OC);
        for (size_t i = 0; i < (R + T) * IC; i++)
            ((uint16_t *)xn)[i] = i < (size_t)R * IC ? ((uint16_t *)xo)[i] : 0x7fc0;
        for (size_t i = 0; i < (R + T) * OC; i++)
            ((uint16_t *)gn)[i] = i < (size_t)R * OC ? ((uint16_t *)go)[i] : 0x7fc0;
    }
    /* the row after the last must stay as it was: the tail goes through a scratch tile */
    out[(size_t)R * OC] = 7.0f;
    dx[(size_t)R * IC] = 7.0f;
    for (size_t i = 0; i < (size_t)OC * IC; i++)
        dw[i] = 1.0f;
    if (f32) {
        aim_dnnl_f32_forward(c, 0, out, xo, wo, R, IC, OC);
        aim_dnnl_f32_dinp(c, 0, dx, go, wo, R, IC, OC);
        aim_dnnl_f32_dweight(c, 0, dw, 1.0f, go, xo, R, IC, OC);
    } else {
        aim_bf16_forward(c, 0, out, xo, wo, R, IC, OC);
        aim_bf16_dinp(c, 0, dx, go, wo, R, IC, OC);
        aim_bf16_dweight(c, 0, dw, 1.0f, go, xo, R, IC, OC);
    }
    double (*bound)(int) = f32 ? f32_bound : gemm_bound;
    double wf = 0, wx = 0, ww = 0;
    for (int i = 0; i < R; i++)
        for (int o = 0; o < OC; o++) {
            double s = 0, mag = 0;
            for (int k = 0; k < IC; k++) {
                s += (double)x[(size_t)i * IC + k] * w[(size_t)o * IC + k];
                mag += fabs((double)x[(size_t)i * IC + k] * w[(size_t)o * IC + k]);
            }
            wf = ratio(wf, fabs(out[(size_t)i * OC + o] - s), mag * bound(IC) / gemm_bound(IC),
                       IC);
        }
    for (int i = 0; i < R; i++)
        for (int k = 0; k < IC; k++) {
            double s = 0, mag = 0;
            for (int o = 0; o < OC; o++) {
                s += (double)g[(size_t)i * OC + o] * w[(size_t)o * IC + k];
                mag += fabs((double)g[(size_t)i * OC + o] * w[(size_t)o * IC + k]);
            }
            wx = ratio(wx, fabs(dx[(size_t)i * IC + k] - s), mag * bound(OC) / gemm_bound(OC),
                       OC);
        }
    for (int o = 0; o < OC; o++)
        for (int k = 0; k < IC; k++) {
            double s = 1.0, mag = 1.0; /* beta 1 onto 1.0 */
            for (int i = 0; i < R; i++) {
                s += (double)g[(size_t)i * OC + o] * x[(size_t)i * IC + k];
                mag += fabs((double)g[(size_t)i * OC + o] * x[(size_t)i * IC + k]);
            }
            ww = ratio(ww, fabs(dw[(size_t)o * IC + k] - s),
                       mag * bound(R + 1) / gemm_bound(R + 1), R + 1);
        }
    tap_ok(wf <= 1.0, "%s forward %dx%d->%d within its bound (worst %.3g of it)", pr, R, IC, OC,
           wf);
    tap_ok(wx <= 1.0, "%s dX %dx%d->%d within its bound (worst %.3g of it)", pr, R, IC, OC, wx);
    tap_ok(ww <= 1.0, "%s dW (beta 1) %dx%d->%d within its bound (worst %.3g of it)", pr, R, IC,
           OC, ww);
    tap_ok(out[(size_t)R * OC] == 7.0f && dx[(size_t)R * IC] == 7.0f,
           "%s: nothing written past row R", pr);
    /* beta 0 overwrites; rows past R (NaN) are not read */
    for (size_t i = 0; i < (size_t)OC * IC; i++)
        dw[i] = NAN;
    if (f32)
        aim_dnnl_f32_dweight(c, 0, dw, 0.0f, gn, xn, R, IC, OC);
    else
        aim_bf16_dweight(c, 0, dw, 0.0f, gn, xn, R, IC, OC);
    int fin = 1;
    for (size_t i = 0; i < (size_t)OC * IC; i++)
        fin &= isfinite(dw[i]);
    tap_ok(fin, "%s: dW with beta 0 overwrites, and reads no row past R (no NaN)", pr);
    free(x), free(w), free(g), free(out), free(dx), free(dw);
    free(xo), free(wo), free(go), free(xn), free(gn);
}

/* a micro model with a batch and prefixes */
typedef struct fixture {
    aim_config c;
    int B, N;
    float *x;
    int32_t prefix[16];
} fixture;

static void fixture_init(fixture *f, int B)
{
    aim_err e = {{0}};
    aim_config_preset("micro", &f->c, &e);
    f->B = B;
    f->N = aim_config_tokens(&f->c);
    size_t img = (size_t)f->c.channels * f->c.image * f->c.image;
    f->x = aim_xaligned((size_t)B * img * sizeof(float));
    aim_rng r;
    aim_rng_seed(&r, 21);
    fill(f->x, (size_t)B * img, &r, 1.0f);
    for (int b = 0; b < B; b++)
        f->prefix[b] = 1 + (int32_t)aim_rng_below(&r, (uint32_t)(f->N - 1));
}

static double cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa == 0 && bb == 0 ? 1.0 : ab / sqrt(aa * bb + 1e-300);
}

/* loss, predictions and every gradient of one forward/backward in both
 * precisions on the same weights */
static void model_parity(void)
{
    aim_err e = {{0}};
    fixture f;
    fixture_init(&f, 6);
    aim_model *m = aim_model_new(&f.c, 7, &e);
    aim_params *p = aim_model_params(m);
    const size_t np = (size_t)f.B * f.N * aim_config_patch_dim(&f.c);
    float *pred32 = malloc(np * sizeof(float)), *g32 = malloc(p->total * sizeof(float));
    aim_params_zero_grad(p);
    float l32 = aim_model_forward(m, f.x, f.prefix, f.B);
    memcpy(pred32, aim_model_predictions(m), np * sizeof(float));
    aim_model_backward(m);
    memcpy(g32, p->grad, p->total * sizeof(float));
    if (!tap_ok(aim_model_set_precision(m, AIM_PREC_BF16, &e) == 0, "bf16 on: %s", e.msg))
        goto out;
    tap_ok(aim_model_precision(m) == AIM_PREC_BF16, "the model says bf16");
    aim_params_zero_grad(p);
    float l16 = aim_model_forward(m, f.x, f.prefix, f.B);
    const float *pred16 = aim_model_predictions(m);
    /* Predictions: each GEMM on the path adds a relative error of up to
     * 2u + K 2^-24 of its sum |a b| (the header); rounding errors of
     * independent terms mostly cancel, so we ask the RMS error of the
     * output to stay below that bound times the GEMMs on the path (patch
     * embedding, 4 per block, head projection, 2 per head block, output). */
    const int path = 1 + 4 * f.c.depth + 1 + 2 * f.c.head_depth + 1;
    double se = 0, ss = 0;
    for (size_t i = 0; i < np; i++) {
        se += (pred16[i] - pred32[i]) * (double)(pred16[i] - pred32[i]);
        ss += (double)pred32[i] * pred32[i];
    }
    double rel = sqrt(se / ss), bound = path * gemm_bound(4 * f.c.width);
    tap_ok(rel <= bound, "bf16 predictions: relative RMS error %.3g <= %d GEMMs x %.3g = %.3g", rel,
           path, gemm_bound(4 * f.c.width), bound);
    tap_ok(fabsf(l16 - l32) <= bound * l32, "bf16 loss %.6f vs fp32 %.6f (bound %.3g relative)",
           l16, l32, bound);
    aim_model_backward(m);
    double worst = 2;
    const char *wname = "";
    for (int i = 0; i < p->n; i++) {
        const aim_param *t = &p->t[i];
        double cs = cosine(p->grad + t->offset, g32 + t->offset, t->numel);
        if (cs < worst || isnan(cs)) {
            worst = cs;
            wname = t->name;
        }
    }
    tap_ok(worst >= 0.99,
           "bf16 gradients: cosine to fp32 >= 0.99 for every tensor (worst %.5f, %s)",
           worst, wname);
    /* the loss-only forward (pretraining's) in bf16 gives the same loss */
    float llo = aim_model_forward_ex(m, f.x, f.prefix, f.B, AIM_FWD_LOSS_ONLY);
    tap_ok(fabsf(llo - l16) <= 1e-3f * l16, "bf16 loss-only forward %.6f = full %.6f", llo, l16);
    /* back to fp32: bit for bit what it was */
    tap_ok(aim_model_set_precision(m, AIM_PREC_FP32, &e) == 0, "fp32 again");
    aim_params_zero_grad(p);
    float again = aim_model_forward(m, f.x, f.prefix, f.B);
    aim_model_backward(m);
    tap_ok(again == l32 && !memcmp(p->grad, g32, p->total * sizeof(float)) &&
               !memcmp(aim_model_predictions(m), pred32, np * sizeof(float)),
           "fp32 after bf16: loss, predictions and gradients bit-identical");
out:
    free(pred32);
    free(g32);
    free(f.x);
    aim_model_free(m);
}

/* `steps` AdamW steps on one batch, returning the mean loss of the last 5 */
static float train(aim_model *m, const fixture *f, int steps, int64_t t0)
{
    aim_params *p = aim_model_params(m);
    aim_params_alloc_moments(p);
    aim_adamw_opts o;
    aim_adamw_opts_default(&o);
    double last = 0;
    for (int s = 0; s < steps; s++) {
        aim_params_zero_grad(p);
        float l = aim_model_forward_ex(m, f->x, f->prefix, f->B, AIM_FWD_LOSS_ONLY);
        aim_model_backward(m);
        aim_clip_adamw_step(p, &o, 3e-3f, t0 + s + 1, 1.0f);
        if (s >= steps - 5)
            last += l / 5.0;
    }
    return (float)last;
}

static void training(void)
{
    aim_err e = {{0}};
    fixture f;
    fixture_init(&f, 8);
    aim_model *a = aim_model_new(&f.c, 9, &e), *b = aim_model_new(&f.c, 9, &e);
    float first = aim_model_loss(a, f.x, f.prefix, f.B);
    if (!tap_ok(aim_model_set_precision(b, AIM_PREC_BF16, &e) == 0, "bf16 on: %s", e.msg))
        goto out;
    float l32 = train(a, &f, 40, 0), l16 = train(b, &f, 40, 0);
    tap_ok(l32 < 0.8f * first, "fp32 training learns (%.4f -> %.4f)", first, l32);
    tap_ok(fabsf(l16 - l32) <= 0.05f * l32,
           "40 steps: bf16's loss %.4f within 5%% of fp32's %.4f", l16, l32);
out:
    free(f.x);
    aim_model_free(a);
    aim_model_free(b);
}

/* a checkpoint written in one precision and resumed in the other continues
 * as the same run does in that precision */
static void resume(const char *dir)
{
    aim_err e = {{0}};
    fixture f;
    fixture_init(&f, 8);
    char path[600];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    for (int from = 0; from < 2; from++) {
        aim_precision pf = from ? AIM_PREC_BF16 : AIM_PREC_FP32;
        aim_precision pt = from ? AIM_PREC_FP32 : AIM_PREC_BF16;
        aim_model *m = aim_model_new(&f.c, 4, &e);
        aim_model_set_precision(m, pf, &e);
        train(m, &f, 10, 0);
        aim_pretrain_opts o;
        aim_pretrain_opts_default(&o);
        o.steps = 15;
        o.batch = f.B;
        o.warmup = 0;
        aim_train_state st = {0};
        st.step = 10;
        int saved = aim_checkpoint_save(path, m, &o, &st, &e);
        tap_ok(saved == 0, "checkpoint written in %s: %s", aim_precision_name(pf), e.msg);
        aim_train_state st2 = {0};
        aim_pretrain_opts o2;
        struct aim_st_file *meta = NULL;
        aim_model *r = aim_checkpoint_load(path, &st2, &o2, &meta, &e);
        if (!tap_ok(r != NULL, "checkpoint loads: %s", e.msg)) {
            aim_model_free(m);
            continue;
        }
        tap_ok(aim_model_precision(r) == AIM_PREC_FP32, "a loaded model starts in fp32");
        tap_ok(aim_model_set_precision(r, pt, &e) == 0 && aim_model_set_precision(m, pt, &e) == 0,
               "resumed in %s", aim_precision_name(pt));
        float lr = train(r, &f, 5, st2.step), lm = train(m, &f, 5, 10);
        tap_ok(lr == lm, "%s checkpoint resumed in %s: loss %.6f = the unbroken run's %.6f",
               aim_precision_name(pf), aim_precision_name(pt), lr, lm);
        aim_st_close(meta);
        aim_model_free(r);
        aim_model_free(m);
    }
    free(f.x);
}

/* LoRA through the features (aim_model_features_train / _backward, as
 * aim lora trains): the frozen trunk's GEMMs in bf16, the adapters' in fp32;
 * the features and the adapters' gradients against fp32 */
static void lora_features(void)
{
    aim_err e = {{0}};
    fixture f;
    fixture_init(&f, 4);
    aim_model *m = aim_model_new(&f.c, 5, &e);
    const int blocks[1] = {2};
    if (!tap_ok(aim_model_lora_add(m, 2, 4.0f, NULL, 0, 3, &e) == 0, "LoRA adapters: %s", e.msg))
        goto out;
    aim_model_lora_freeze_trunk(m);
    aim_params *p = aim_model_params(m);
    /* B starts at zero: give it values, so that A's gradient is not zero */
    aim_rng r;
    aim_rng_seed(&r, 8);
    for (int i = 0; i < p->n; i++)
        if (p->t[i].flags & AIM_P_LORA)
            fill(p->data + p->t[i].offset, p->t[i].numel, &r, 0.1f);
    const size_t nf = (size_t)f.B * f.N * f.c.width;
    float *f32 = malloc(nf * sizeof(float)), *f16 = malloc(nf * sizeof(float));
    float *df = malloc(nf * sizeof(float)), *g32 = malloc(p->total * sizeof(float));
    fill(df, nf, &r, 1.0f);
    aim_params_zero_grad(p);
    aim_model_features_train(m, f.x, f.B, blocks, 1, f32, &e);
    aim_model_features_backward(m, df);
    memcpy(g32, p->grad, p->total * sizeof(float));
    if (!tap_ok(aim_model_set_precision(m, AIM_PREC_BF16, &e) == 0, "bf16 on: %s", e.msg))
        goto done;
    aim_params_zero_grad(p);
    aim_model_features_train(m, f.x, f.B, blocks, 1, f16, &e);
    aim_model_features_backward(m, df);
    double se = 0, ss = 0;
    for (size_t i = 0; i < nf; i++) {
        se += (f16[i] - f32[i]) * (double)(f16[i] - f32[i]);
        ss += (double)f32[i] * f32[i];
    }
    const double bound = 9 * gemm_bound(4 * f.c.width); /* 4 GEMMs per block, 2 blocks, embed */
    tap_ok(sqrt(se / ss) <= bound, "bf16 features with LoRA: relative RMS error %.3g <= %.3g",
           sqrt(se / ss), bound);
    double worst = 2;
    int nl = 0;
    for (int i = 0; i < p->n; i++) {
        const aim_param *t = &p->t[i];
        if (!(t->flags & AIM_P_LORA))
            continue;
        double cs = cosine(p->grad + t->offset, g32 + t->offset, t->numel);
        worst = isnan(cs) || cs < worst ? cs : worst;
        nl++;
    }
    tap_ok(nl > 0 && worst >= 0.99,
           "bf16 LoRA gradients: cosine to fp32 >= 0.99 (%d tensors, worst %.5f)",
           nl, worst);
done:
    free(f32), free(f16), free(df), free(g32);
out:
    free(f.x);
    aim_model_free(m);
}

int main(void)
{
    conversions();
    aim_err e = {{0}};
    omp_set_num_threads(1);
    aim_bf16_ctx *f = aim_dnnl_f32_ctx_new(1, &e);
    if (!f) {
        tap_skip(e.msg); /* built without oneDNN: fp32 runs on OpenBLAS only */
    } else {
        gemms(f, 300, 48, 80, 1);
        gemms(f, 2 * AIM_BF16_TILE + 7, 128, 32, 1);
        gemms(f, 5, 16, 12, 1);
        gemms(f, AIM_BF16_TILE, 24, 40, 1);
        gemms(f, AIM_BF16_TILE + 64, 20, 36, 1); /* whole small tiles, no partial one */
        gemms(f, 200, 20, 36, 1);                /* a padded big tile */
        aim_bf16_ctx_free(f);
    }
    if (aim_bf16_check("--precision", &e) != 0) {
        tap_ok(tap_contains(e.msg, "--precision bf16"), "the refusal names the option: %s", e.msg);
        tap_skip(e.msg);
        return tap_done();
    }
    omp_set_num_threads(1);
    aim_bf16_ctx *c = aim_bf16_ctx_new(1, &e);
    if (tap_ok(c != NULL, "a bf16 context: %s", e.msg)) {
        gemms(c, 300, 48, 80, 0);
        gemms(c, 2 * AIM_BF16_TILE + 7, 128, 32, 0);
        gemms(c, 5, 16, 12, 0);
        gemms(c, AIM_BF16_TILE, 24, 40, 0);
        gemms(c, AIM_BF16_TILE + 64, 20, 36, 0);
        gemms(c, 200, 20, 36, 0);
        aim_bf16_ctx_free(c);
    }
    omp_set_num_threads(2);
    model_parity();
    lora_features();
    training();
    char dir[] = "/tmp/aim_bf16_XXXXXX";
    if (tap_ok(mkdtemp(dir) != NULL, "a temporary folder")) {
        resume(dir);
        char path[600];
        snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
        unlink(path);
        rmdir(dir);
    }
    return tap_done();
}
