/*
 * test_nn.c - the numeric kernels of include/aim/nn.h except attention:
 * forward values against double-precision references written here,
 * fast vs naive linear, finite-difference checks of every backward,
 * accumulation (+=) and NULL-gradient semantics, the sin-cos layout, the
 * two patch orders and the loss on a hand-computed case.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aim/core.h"
#include "aim/nn.h"
#include "tap.h"

/* ------------------------------------------------------------- helpers */

static float *fbuf(size_t n)
{
    return aim_xcalloc(n ? n : 1, sizeof(float));
}

static void fill_normal(aim_rng *r, float *x, size_t n, double mean, double sd)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(mean + sd * aim_rng_normal(r));
}

static float *fdup(const float *x, size_t n)
{
    float *y = fbuf(n);
    memcpy(y, x, n * sizeof(float));
    return y;
}

/* max |a - b| / max(1, max |b|): one relative error for a whole buffer */
static double rel_err(const float *a, const float *b, size_t n)
{
    double d = 0, s = 1;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        d = e > d || isnan(e) ? e : d;
        s = fabs(b[i]) > s ? fabs(b[i]) : s;
    }
    return d / s;
}

static double rel_err_d(const float *a, const double *b, size_t n)
{
    double d = 0, s = 1;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        d = e > d || isnan(e) ? e : d;
        s = fabs(b[i]) > s ? fabs(b[i]) : s;
    }
    return d / s;
}

/* b == 2 * a element by element, exactly */
static int exactly_twice(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != 2.0f * a[i])
            return 0;
    return 1;
}

static int all_equal(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static double dot_d(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Finite-difference check of an analytic gradient of a scalar objective.
 * Every element of param is moved by +-h (central differences); the
 * objective is recomputed through the float kernels. Returns the worst
 * |analytic - numeric| / max(min(1, gmax), |numeric|), gmax the largest
 * |numeric| in this buffer (so a buffer of small gradients, like the
 * loss's, is still held to a relative standard). */
typedef double (*objective_fn)(void *ctx);

static double gradcheck(objective_fn f, void *ctx, float *param, size_t n,
                        const float *analytic, double h)
{
    double *num = aim_xcalloc(n, sizeof(double));
    double gmax = 0;
    for (size_t i = 0; i < n; i++) {
        float save = param[i];
        float xp = (float)(save + h), xm = (float)(save - h);
        param[i] = xp;
        double fp = f(ctx);
        param[i] = xm;
        double fm = f(ctx);
        param[i] = save;
        num[i] = (fp - fm) / ((double)xp - (double)xm);
        gmax = fabs(num[i]) > gmax ? fabs(num[i]) : gmax;
    }
    double floor = gmax < 1 ? gmax : 1;
    if (floor == 0)
        floor = 1e-30;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double scale = fabs(num[i]) > floor ? fabs(num[i]) : floor;
        double e = fabs(analytic[i] - num[i]) / scale;
        worst = e > worst || isnan(e) ? e : worst;
    }
    free(num);
    return worst;
}

#define GC_TOL 1e-2
static double gc_worst; /* worst gradient-check error over the whole test */

static void gc_report(const char *what, double err)
{
    tap_ok(err <= GC_TOL, "gradcheck %s: worst error %.2e", what, err);
    gc_worst = err > gc_worst ? err : gc_worst;
}

/* ---------------------------------------------------------- layernorm */

typedef struct {
    float *out, *mean, *rstd, *inp, *w, *b, *G;
    int R, C;
} ln_ctx;

static double ln_objective(void *p)
{
    ln_ctx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->R, c->C, 1e-6f);
    return dot_d(c->out, c->G, (size_t)c->R * c->C);
}

static void ln_reference(double *out, double *mean, double *rstd, const float *inp,
                         const float *w, const float *b, int R, int C, double eps)
{
    for (int r = 0; r < R; r++) {
        const float *x = inp + (size_t)r * C;
        double m = 0, v = 0;
        for (int i = 0; i < C; i++)
            m += x[i];
        m /= C;
        for (int i = 0; i < C; i++)
            v += (x[i] - m) * (x[i] - m);
        v /= C;
        double s = 1 / sqrt(v + eps);
        for (int i = 0; i < C; i++)
            out[(size_t)r * C + i] = (x[i] - m) * s * w[i] + b[i];
        mean[r] = m;
        rstd[r] = s;
    }
}

static void test_layernorm(aim_rng *rng)
{
    /* forward vs double, a small and a threaded size */
    int shapes[][2] = {{5, 7}, {1, 3}, {300, 130}};
    for (int s = 0; s < 3; s++) {
        int R = shapes[s][0], C = shapes[s][1];
        size_t n = (size_t)R * C;
        float *inp = fbuf(n), *w = fbuf(C), *b = fbuf(C), *out = fbuf(n);
        float *mean = fbuf(R), *rstd = fbuf(R);
        double *rout = aim_xcalloc(n, sizeof(double));
        double *rmean = aim_xcalloc(R, sizeof(double)), *rrstd = aim_xcalloc(R, sizeof(double));
        fill_normal(rng, inp, n, 2.0, 1.5);
        fill_normal(rng, w, C, 1.0, 0.5);
        fill_normal(rng, b, C, 0.0, 0.5);
        layernorm_forward(out, mean, rstd, inp, w, b, R, C, 1e-6f);
        ln_reference(rout, rmean, rrstd, inp, w, b, R, C, 1e-6);
        double eo = rel_err_d(out, rout, n), em = rel_err_d(mean, rmean, R);
        double er = rel_err_d(rstd, rrstd, R);
        tap_ok(eo < 1e-5 && em < 1e-6 && er < 1e-5,
               "layernorm forward %dx%d vs double (out %.1e, mean %.1e, rstd %.1e)", R, C,
               eo, em, er);
        free(inp), free(w), free(b), free(out), free(mean), free(rstd);
        free(rout), free(rmean), free(rrstd);
    }

    /* eps is used: a constant row gives bias exactly, rstd = 1/sqrt(eps) */
    {
        float x[4] = {3, 3, 3, 3}, w[4] = {1, 2, 3, 4}, b[4] = {.5f, -1, 0, 2}, o[4], m, rs;
        layernorm_forward(o, &m, &rs, x, w, b, 1, 4, 1e-6f);
        tap_ok(o[0] == .5f && o[1] == -1 && o[2] == 0 && o[3] == 2 && m == 3 &&
                   fabs(rs - 1000.0) < 1e-2,
               "layernorm of a constant row is the bias (rstd %.3f)", rs);
    }

    /* gradient check on every element */
    int R = 4, C = 6;
    size_t n = (size_t)R * C;
    ln_ctx c = {fbuf(n), fbuf(R), fbuf(R), fbuf(n), fbuf(C), fbuf(C), fbuf(n), R, C};
    fill_normal(rng, c.inp, n, 0.5, 1.0);
    fill_normal(rng, c.w, C, 1.0, 0.5);
    fill_normal(rng, c.b, C, 0.0, 0.5);
    fill_normal(rng, c.G, n, 0.0, 1.0);
    float *dinp = fbuf(n), *dw = fbuf(C), *db = fbuf(C);
    ln_objective(&c);
    layernorm_backward(dinp, dw, db, c.G, c.inp, c.w, c.mean, c.rstd, R, C);
    gc_report("layernorm dinp", gradcheck(ln_objective, &c, c.inp, n, dinp, 1e-3));
    gc_report("layernorm dweight", gradcheck(ln_objective, &c, c.w, C, dw, 1e-3));
    gc_report("layernorm dbias", gradcheck(ln_objective, &c, c.b, C, db, 1e-3));

    /* accumulation: twice = exactly twice; NULL pointers are skipped */
    ln_objective(&c);
    float *dinp2 = fdup(dinp, n), *dw2 = fdup(dw, C), *db2 = fdup(db, C);
    layernorm_backward(dinp2, dw2, db2, c.G, c.inp, c.w, c.mean, c.rstd, R, C);
    tap_ok(exactly_twice(dinp, dinp2, n) && exactly_twice(dw, dw2, C) &&
               exactly_twice(db, db2, C),
           "layernorm backward accumulates (second call doubles exactly)");
    float *a = fbuf(n), *bw = fbuf(C), *bb = fbuf(C);
    layernorm_backward(a, NULL, NULL, c.G, c.inp, c.w, c.mean, c.rstd, R, C);
    layernorm_backward(NULL, bw, NULL, c.G, c.inp, c.w, c.mean, c.rstd, R, C);
    layernorm_backward(NULL, NULL, bb, c.G, c.inp, c.w, c.mean, c.rstd, R, C);
    layernorm_backward(NULL, NULL, NULL, c.G, c.inp, c.w, c.mean, c.rstd, R, C);
    tap_ok(all_equal(a, dinp, n) && all_equal(bw, dw, C) && all_equal(bb, db, C),
           "layernorm backward with NULL gradients computes the others unchanged");
    free(a), free(bw), free(bb), free(dinp2), free(dw2), free(db2);
    free(dinp), free(dw), free(db);
    free(c.out), free(c.mean), free(c.rstd), free(c.inp), free(c.w), free(c.b), free(c.G);

    /* the threaded path (many rows, several column blocks) agrees with
     * running the same rows a few at a time (below the threading threshold) */
    {
        int RR = 256, CC = 200;
        size_t nn = (size_t)RR * CC;
        float *x = fbuf(nn), *w = fbuf(CC), *b = fbuf(CC), *o = fbuf(nn), *G = fbuf(nn);
        float *m = fbuf(RR), *rs = fbuf(RR);
        fill_normal(rng, x, nn, 0, 1);
        fill_normal(rng, w, CC, 1, .3);
        fill_normal(rng, b, CC, 0, .3);
        fill_normal(rng, G, nn, 0, 1);
        layernorm_forward(o, m, rs, x, w, b, RR, CC, 1e-6f);
        float *dx1 = fbuf(nn), *dw1 = fbuf(CC), *db1 = fbuf(CC);
        float *dx2 = fbuf(nn), *dwa = fbuf(CC), *dba = fbuf(CC);
        layernorm_backward(dx1, dw1, db1, G, x, w, m, rs, RR, CC);
        for (int r = 0; r < RR; r += 4)
            layernorm_backward(dx2 + (size_t)r * CC, dwa, dba, G + (size_t)r * CC,
                               x + (size_t)r * CC, w, m + r, rs + r, 4, CC);
        double e1 = rel_err(dx1, dx2, nn), e2 = rel_err(dw1, dwa, CC);
        double e3 = rel_err(db1, dba, CC);
        tap_ok(all_equal(dx1, dx2, nn) && e2 < 1e-5 && e3 < 1e-5,
               "layernorm backward %dx%d threaded = row-chunked (dw %.1e, db %.1e, dx %.1e)",
               RR, CC, e2, e3, e1);
        free(x), free(w), free(b), free(o), free(G), free(m), free(rs);
        free(dx1), free(dw1), free(db1), free(dx2), free(dwa), free(dba);
    }
}

/* the fused forms against the naive kernels composed by hand */
static void test_layernorm_fused(aim_rng *rng)
{
    int R = 37, C = 70, N = 5;
    size_t n = (size_t)R * C;
    float *a = fbuf(n), *b = fbuf(n), *bias = fbuf(C), *pos = fbuf((size_t)N * C);
    float *post = fbuf((size_t)N * C), *w = fbuf(C), *lb = fbuf(C);
    fill_normal(rng, a, n, 0.3, 1);
    fill_normal(rng, b, n, -0.2, 1);
    fill_normal(rng, bias, C, 0, 0.5);
    fill_normal(rng, pos, (size_t)N * C, 0, 0.5);
    fill_normal(rng, post, (size_t)N * C, 0, 0.5);
    fill_normal(rng, w, C, 1, 0.3);
    fill_normal(rng, lb, C, 0, 0.3);
    for (int mode = 0; mode < 5; mode++) {
        /* 0: a + b, 1: + bias + pos + post, 2: res aliases a, 3: only a (no res),
         * 4: a + b + bias + pos and no norm (ln NULL) */
        const float *bb = mode == 3 ? NULL : b;
        const float *bi = mode == 1 || mode == 2 || mode == 4 ? bias : NULL;
        const float *po = mode == 1 || mode == 2 || mode == 4 ? pos : NULL;
        const float *pp = mode == 1 || mode == 2 ? post : NULL;
        float *ref_res = fbuf(n), *ref_out = fbuf(n), *rm = fbuf(R), *rr = fbuf(R);
        for (int r = 0; r < R; r++)
            for (int i = 0; i < C; i++) {
                size_t k = (size_t)r * C + i;
                float v = a[k];
                if (bb)
                    v += bb[k];
                if (bi)
                    v += bi[i];
                if (po)
                    v += po[(size_t)(r % N) * C + i];
                ref_res[k] = v;
            }
        layernorm_forward_naive(ref_out, rm, rr, ref_res, w, lb, R, C, 1e-6f);
        if (pp)
            for (int r = 0; r < R; r++)
                for (int i = 0; i < C; i++)
                    ref_out[(size_t)r * C + i] += pp[(size_t)(r % N) * C + i];
        float *res = mode == 2 ? fdup(a, n) : fbuf(n), *out = fbuf(n), *m = fbuf(R),
              *rs = fbuf(R);
        for (size_t k = 0; k < n; k++)
            out[k] = NAN;
        if (mode == 4) {
            for (int r = 0; r < R; r++)
                m[r] = rs[r] = NAN;
            add_layernorm_forward(res, NULL, a, bb, bi, po, R, C, N);
            int untouched = 1;
            for (size_t k = 0; k < n; k++)
                untouched &= isnan(out[k]);
            for (int r = 0; r < R; r++)
                untouched &= isnan(m[r]) && isnan(rs[r]);
            double e1 = rel_err(res, ref_res, n);
            tap_ok(e1 == 0 && untouched,
                   "add_layernorm_forward without a norm writes the sum alone (res %.1e)", e1);
            free(ref_res), free(ref_out), free(rm), free(rr), free(res), free(out), free(m),
                free(rs);
            continue;
        }
        const layernorm_args ln = {out, m, rs, w, lb, pp, NULL, 1e-6f};
        add_layernorm_forward(mode == 3 ? NULL : res, &ln, mode == 2 ? res : a, bb, bi, po, R, C,
                              N);
        double e1 = mode == 3 ? 0 : rel_err(res, ref_res, n), e2 = rel_err(out, ref_out, n);
        double e3 = rel_err(m, rm, R), e4 = rel_err(rs, rr, R);
        tap_ok(e1 == 0 && e2 < 1e-5 && e3 < 1e-6 && e4 < 1e-5,
               "add_layernorm_forward mode %d = naive composition (res %.1e, out %.1e, "
               "mean %.1e, rstd %.1e)",
               mode, e1, e2, e3, e4);
        free(ref_res), free(ref_out), free(rm), free(rr), free(res), free(out), free(m),
            free(rs);
    }

    /* the one-sweep backward, overwrite and accumulate, vs the naive one */
    float *out = fbuf(n), *m = fbuf(R), *rs = fbuf(R), *G = fbuf(n);
    fill_normal(rng, G, n, 0, 1);
    layernorm_forward(out, m, rs, a, w, lb, R, C, 1e-6f);
    float *dx0 = fbuf(n), *dw0 = fbuf(C), *db0 = fbuf(C);
    layernorm_backward_naive(dx0, dw0, db0, G, a, w, m, rs, R, C);
    float *dx = fbuf(n), *dw = fbuf(C), *db = fbuf(C);
    for (size_t k = 0; k < n; k++)
        dx[k] = NAN;
    for (int i = 0; i < C; i++)
        dw[i] = db[i] = NAN;
    layernorm_backward_rows(dx, 0.0f, dw, db, 0.0f, G, a, w, m, rs, R, C);
    double e1 = rel_err(dx, dx0, n), e2 = rel_err(dw, dw0, C), e3 = rel_err(db, db0, C);
    layernorm_backward_rows(dx, 1.0f, dw, db, 1.0f, G, a, w, m, rs, R, C);
    for (size_t k = 0; k < n; k++)
        dx0[k] *= 2;
    for (int i = 0; i < C; i++)
        dw0[i] *= 2, db0[i] *= 2;
    double e4 = rel_err(dx, dx0, n), e5 = rel_err(dw, dw0, C), e6 = rel_err(db, db0, C);
    tap_ok(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5 && e4 < 1e-5 && e5 < 1e-5 && e6 < 1e-5,
           "layernorm_backward_rows overwrite (%.1e %.1e %.1e) and accumulate (%.1e %.1e "
           "%.1e) = naive",
           e1, e2, e3, e4, e5, e6);
    free(a), free(b), free(bias), free(pos), free(post), free(w), free(lb);
    free(out), free(m), free(rs), free(G), free(dx0), free(dw0), free(db0), free(dx), free(dw),
        free(db);
}

/* -------------------------------------------------------------- linear */

typedef struct {
    float *out, *inp, *w, *b, *G;
    int R, IC, OC, naive;
} lin_ctx;

static double lin_objective(void *p)
{
    lin_ctx *c = p;
    if (c->naive)
        linear_forward_naive(c->out, c->inp, c->w, c->b, c->R, c->IC, c->OC);
    else
        linear_forward(c->out, c->inp, c->w, c->b, c->R, c->IC, c->OC);
    return dot_d(c->out, c->G, (size_t)c->R * c->OC);
}

static void test_linear(aim_rng *rng)
{
    /* fast vs naive vs a double reference, forward and backward */
    int shapes[][3] = {{1, 1, 1},  {1, 7, 1},   {5, 3, 1},    {13, 17, 9},
                       {1, 33, 20}, {37, 64, 48}, {64, 130, 70}, {100, 9, 300}};
    int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int s = 0; s < nshapes; s++) {
        for (int withbias = 0; withbias < 2; withbias++) {
            int R = shapes[s][0], IC = shapes[s][1], OC = shapes[s][2];
            size_t ni = (size_t)R * IC, no = (size_t)R * OC, nw = (size_t)OC * IC;
            float *x = fbuf(ni), *w = fbuf(nw), *b = withbias ? fbuf(OC) : NULL;
            float *o1 = fbuf(no), *o2 = fbuf(no), *G = fbuf(no);
            double *ref = aim_xcalloc(no, sizeof(double));
            fill_normal(rng, x, ni, 0, 1);
            fill_normal(rng, w, nw, 0, 1);
            if (b)
                fill_normal(rng, b, OC, 0, 1);
            fill_normal(rng, G, no, 0, 1);
            for (size_t i = 0; i < no; i++)
                o1[i] = o2[i] = NAN; /* the output must be written, not read */
            linear_forward(o1, x, w, b, R, IC, OC);
            linear_forward_naive(o2, x, w, b, R, IC, OC);
            for (int r = 0; r < R; r++)
                for (int oc = 0; oc < OC; oc++) {
                    double acc = b ? b[oc] : 0;
                    for (int i = 0; i < IC; i++)
                        acc += (double)x[(size_t)r * IC + i] * w[(size_t)oc * IC + i];
                    ref[(size_t)r * OC + oc] = acc;
                }
            double ef = rel_err_d(o1, ref, no), en = rel_err_d(o2, ref, no);
            tap_ok(ef < 1e-5 && en < 1e-6,
                   "linear forward R=%d IC=%d OC=%d bias=%s: fast %.1e, naive %.1e vs double",
                   R, IC, OC, b ? "yes" : "NULL", ef, en);

            /* backward into non-zero buffers (it adds) */
            float *dx1 = fbuf(ni), *dw1 = fbuf(nw), *db1 = fbuf(OC);
            fill_normal(rng, dx1, ni, 0, 1);
            fill_normal(rng, dw1, nw, 0, 1);
            fill_normal(rng, db1, OC, 0, 1);
            float *dx2 = fdup(dx1, ni), *dw2 = fdup(dw1, nw), *db2 = fdup(db1, OC);
            linear_backward(dx1, dw1, b ? db1 : NULL, G, x, w, R, IC, OC);
            linear_backward_naive(dx2, dw2, b ? db2 : NULL, G, x, w, R, IC, OC);
            double e1 = rel_err(dx1, dx2, ni), e2 = rel_err(dw1, dw2, nw);
            double e3 = rel_err(db1, db2, OC);
            tap_ok(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5,
                   "linear backward R=%d IC=%d OC=%d bias=%s: fast vs naive dinp %.1e "
                   "dweight %.1e dbias %.1e",
                   R, IC, OC, b ? "yes" : "NULL", e1, e2, e3);
            free(x), free(w), free(b), free(o1), free(o2), free(G), free(ref);
            free(dx1), free(dw1), free(db1), free(dx2), free(dw2), free(db2);
        }
    }

    /* gradient checks, fast and naive */
    for (int naive = 0; naive < 2; naive++) {
        int R = 3, IC = 5, OC = 4;
        size_t ni = (size_t)R * IC, no = (size_t)R * OC, nw = (size_t)OC * IC;
        lin_ctx c = {fbuf(no), fbuf(ni), fbuf(nw), fbuf(OC), fbuf(no), R, IC, OC, naive};
        fill_normal(rng, c.inp, ni, 0, 1);
        fill_normal(rng, c.w, nw, 0, 1);
        fill_normal(rng, c.b, OC, 0, 1);
        fill_normal(rng, c.G, no, 0, 1);
        float *dx = fbuf(ni), *dw = fbuf(nw), *db = fbuf(OC);
        if (naive)
            linear_backward_naive(dx, dw, db, c.G, c.inp, c.w, R, IC, OC);
        else
            linear_backward(dx, dw, db, c.G, c.inp, c.w, R, IC, OC);
        char what[64];
        snprintf(what, sizeof what, "linear%s dinp", naive ? "_naive" : "");
        gc_report(what, gradcheck(lin_objective, &c, c.inp, ni, dx, 1e-3));
        snprintf(what, sizeof what, "linear%s dweight", naive ? "_naive" : "");
        gc_report(what, gradcheck(lin_objective, &c, c.w, nw, dw, 1e-3));
        snprintf(what, sizeof what, "linear%s dbias", naive ? "_naive" : "");
        gc_report(what, gradcheck(lin_objective, &c, c.b, OC, db, 1e-3));

        /* twice = exactly twice, NULL pointers skipped */
        float *dx2 = fdup(dx, ni), *dw2 = fdup(dw, nw), *db2 = fdup(db, OC);
        if (naive)
            linear_backward_naive(dx2, dw2, db2, c.G, c.inp, c.w, R, IC, OC);
        else
            linear_backward(dx2, dw2, db2, c.G, c.inp, c.w, R, IC, OC);
        tap_ok(exactly_twice(dx, dx2, ni) && exactly_twice(dw, dw2, nw) &&
                   exactly_twice(db, db2, OC),
               "linear%s backward accumulates (second call doubles exactly)",
               naive ? "_naive" : "");
        float *a = fbuf(ni), *bw = fbuf(nw), *bb = fbuf(OC);
        void (*bwd)(float *, float *, float *, const float *, const float *, const float *,
                    int, int, int) = naive ? linear_backward_naive : linear_backward;
        bwd(a, NULL, NULL, c.G, c.inp, c.w, R, IC, OC);
        bwd(NULL, bw, NULL, c.G, c.inp, c.w, R, IC, OC);
        bwd(NULL, NULL, bb, c.G, c.inp, c.w, R, IC, OC);
        bwd(NULL, NULL, NULL, c.G, c.inp, c.w, R, IC, OC);
        tap_ok(all_equal(a, dx, ni) && all_equal(bw, dw, nw) && all_equal(bb, db, OC),
               "linear%s backward with NULL gradients computes the others unchanged",
               naive ? "_naive" : "");
        free(a), free(bw), free(bb), free(dx2), free(dw2), free(db2);
        free(dx), free(dw), free(db);
        free(c.out), free(c.inp), free(c.w), free(c.b), free(c.G);
    }
}

/* ---------------------------------------------------------------- gelu */

typedef struct {
    float *out, *inp, *G;
    size_t n;
} gelu_ctx;

static double gelu_objective(void *p)
{
    gelu_ctx *c = p;
    gelu_forward(c->out, c->inp, c->n);
    return dot_d(c->out, c->G, c->n);
}

static void test_gelu(aim_rng *rng)
{
    /* forward vs double erf, including a large (threaded) buffer */
    size_t n = 100003;
    float *x = fbuf(n), *o = fbuf(n);
    double *ref = aim_xcalloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(-8 + 16 * aim_rng_uniform(rng));
    x[0] = 0, x[1] = 1, x[2] = -1, x[3] = 30, x[4] = -30;
    gelu_forward(o, x, n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        ref[i] = 0.5 * x[i] * erfc(-x[i] / sqrt(2.0)); /* = 1 + erf, no cancellation */
        /* relative, down to where float underflows (gelu(-30) is ~1e-196) */
        double e = fabs(o[i] - ref[i]) / (fabs(ref[i]) > 1e-30 ? fabs(ref[i]) : 1e-30);
        worst = e > worst || isnan(e) ? e : worst;
    }
    tap_ok(worst < 1e-5, "gelu forward vs double erf on %zu values (worst rel %.1e)", n, worst);
    tap_ok(o[0] == 0 && fabs(o[1] - 0.8413447460685429) < 1e-6 &&
               fabs(o[2] + 0.15865525393145707) < 1e-6 && o[3] == 30 && o[4] == 0,
           "gelu(0, 1, -1, 30, -30) = 0, 0.841345, -0.158655, 30, 0");

    /* derivative formula vs double on the big buffer */
    float *dx = fbuf(n), *ones = fbuf(n);
    for (size_t i = 0; i < n; i++)
        ones[i] = 1;
    gelu_backward(dx, x, ones, n);
    worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = 0.5 * (1 + erf(x[i] / sqrt(2.0))) +
                   x[i] * exp(-0.5 * (double)x[i] * x[i]) / sqrt(2 * M_PI);
        double e = fabs(dx[i] - d);
        worst = e > worst || isnan(e) ? e : worst;
    }
    tap_ok(worst < 1e-5, "gelu derivative vs double on %zu values (worst abs %.1e)", n, worst);

    /* fast vs the naive libm kernels; the in-place backward overwrites */
    float *on = fbuf(n), *dn = fbuf(n), *di = fbuf(n), *gr = fbuf(n);
    fill_normal(rng, gr, n, 0, 1);
    gelu_forward_naive(on, x, n);
    double ef = rel_err(o, on, n);
    memset(dx, 0, n * sizeof(float));
    gelu_backward(dx, x, gr, n);
    gelu_backward_naive(dn, x, gr, n);
    double eb = rel_err(dx, dn, n);
    memcpy(di, gr, n * sizeof(float));
    gelu_backward_inplace(di, x, n);
    double ei = rel_err(di, dx, n);
    tap_ok(ef < 1e-6 && eb < 1e-6 && ei < 1e-6,
           "gelu fast vs naive: forward %.1e, backward %.1e; in-place vs accumulate %.1e", ef,
           eb, ei);

    /* the training pair: gelu_forward_deriv = gelu_forward and leaves gelu'(x)
     * in place of x; gelu_backward_deriv multiplies by it */
    {
        float *od = fbuf(n), *xd = fdup(x, n), *dd = fdup(gr, n);
        gelu_forward_deriv(od, xd, n);
        gelu_backward_deriv(dd, xd, n);
        double e1 = rel_err(od, o, n), e2 = rel_err(dd, dx, n);
        tap_ok(e1 == 0 && e2 < 1e-6,
               "gelu_forward_deriv = gelu_forward (%.1e); its derivative times dout = backward "
               "(%.1e)",
               e1, e2);
        free(od), free(xd), free(dd);
    }

    /* both vector widths, each on its own: 8 (AVX2 / baseline, what a CPU
     * without AVX-512 runs) and 16 (AVX-512) give the same bits, forward,
     * derivative and backward, tails included (n is not a multiple of 16) */
    {
        size_t nw = 1013;
        float *f8 = fbuf(nw), *a8 = fbuf(nw), *b8 = fbuf(nw), *f16 = fbuf(nw),
              *a16 = fbuf(nw), *b16 = fbuf(nw), *ref8 = fbuf(nw);
        int ok8 = gelu_span_width(8, 1, f8, a8, x, gr, nw) == 0 &&
                  gelu_span_width(8, 2, b8, NULL, x, gr, nw) == 0;
        gelu_forward_naive(ref8, x, nw);
        double e8 = rel_err(f8, ref8, nw);
        tap_ok(ok8 && e8 < 1e-5 && gelu_span_width(4, 0, f8, NULL, x, NULL, nw) != 0,
               "gelu's 8-wide kernel on its own: vs naive %.1e (another width is refused)", e8);
        if (gelu_span_width(16, 1, f16, a16, x, gr, nw) != 0) {
            tap_skip("no 16-wide GELU here (not built, or no AVX-512 on this CPU)");
        } else {
            gelu_span_width(16, 2, b16, NULL, x, gr, nw);
            tap_ok(!memcmp(f8, f16, nw * sizeof *f8) && !memcmp(a8, a16, nw * sizeof *a8) &&
                       !memcmp(b8, b16, nw * sizeof *b8),
                   "gelu's 8- and 16-wide kernels: the same bits on %zu values (forward, "
                   "derivative, backward)",
                   nw);
        }
        free(f8), free(a8), free(b8), free(f16), free(a16), free(b16), free(ref8);
    }

    /* a dense sweep: relative error of gelu and of Phi, every |x| <= 14 */
    size_t ns = 2800001;
    float *xs = fbuf(ns), *os = fbuf(ns);
    for (size_t i = 0; i < ns; i++)
        xs[i] = (float)(-14.0 + 28.0 * (double)i / (double)(ns - 1));
    gelu_forward(os, xs, ns);
    worst = 0;
    for (size_t i = 0; i < ns; i++) {
        double r = 0.5 * xs[i] * erfc(-xs[i] / sqrt(2.0));
        if (fabs(r) < 1e-37) /* float's normal range */
            continue;
        double e = fabs(os[i] - r) / fabs(r);
        worst = e > worst || isnan(e) ? e : worst;
    }
    tap_ok(worst < 2e-6, "gelu on a dense grid of [-14, 14]: worst relative error %.1e", worst);
    free(xs), free(os), free(on), free(dn), free(di), free(gr);
    free(x), free(o), free(ref), free(dx), free(ones);

    /* gradient check */
    size_t m = 64;
    gelu_ctx c = {fbuf(m), fbuf(m), fbuf(m), m};
    for (size_t i = 0; i < m; i++)
        c.inp[i] = (float)(-4 + 8 * aim_rng_uniform(rng));
    fill_normal(rng, c.G, m, 0, 1);
    float *g = fbuf(m);
    gelu_backward(g, c.inp, c.G, m);
    gc_report("gelu dinp", gradcheck(gelu_objective, &c, c.inp, m, g, 1e-3));
    float *g2 = fdup(g, m);
    gelu_backward(g2, c.inp, c.G, m);
    tap_ok(exactly_twice(g, g2, m), "gelu backward accumulates (second call doubles exactly)");
    free(g), free(g2), free(c.out), free(c.inp), free(c.G);
}

/* --------------------------------------------------------------- patch */

static void test_sincos(void)
{
    int gh = 2, gw = 3, E = 8, Q = E / 4;
    float out[2 * 3 * 8];
    sincos2d(out, gh, gw, E);
    double worst = 0;
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++)
            for (int k = 0; k < Q; k++) {
                double w = pow(10000.0, -(double)k / Q);
                const float *o = out + (i * gw + j) * E;
                double want[4] = {sin(j * w), cos(j * w), sin(i * w), cos(i * w)};
                for (int q = 0; q < 4; q++) {
                    double e = fabs(o[q * Q + k] - want[q]);
                    worst = tap_worse(worst, e);
                }
            }
    tap_ok(worst < 1e-7, "sincos2d 2x3 E=8 matches the formula elementwise (worst %.1e)", worst);
    const float t0[8] = {0, 0, 1, 1, 0, 0, 1, 1};
    /* token (row 1, col 2): w = {1, 0.01} */
    const float t5[8] = {(float)sin(2.0), (float)sin(0.02), (float)cos(2.0), (float)cos(0.02),
                         (float)sin(1.0), (float)sin(0.01), (float)cos(1.0), (float)cos(0.01)};
    tap_ok(!memcmp(out, t0, sizeof t0) && !memcmp(out + 5 * E, t5, sizeof t5),
           "sincos2d tokens (0,0) and (1,2) written out by hand");
    /* the column only moves the first half, the row only the second */
    int ok = 1;
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++) {
            const float *o = out + (i * gw + j) * E;
            ok &= !memcmp(o, out + j * E, E / 2 * sizeof(float));           /* = row 0, col j */
            ok &= !memcmp(o + E / 2, out + i * gw * E + E / 2, E / 2 * sizeof(float)); /* col 0 */
        }
    int moves = memcmp(out, out + 1 * E, E / 2 * sizeof(float)) != 0 &&
                memcmp(out + E / 2, out + gw * E + E / 2, E / 2 * sizeof(float)) != 0;
    tap_ok(ok && moves, "sincos2d: column j only affects the first half, row i the second");
}

static void test_patches(void)
{
    /* C=3, H=4, W=6, p=2: grid 2x3, N=6, P=12; every pixel distinct */
    int B = 2, C = 3, H = 4, W = 6, p = 2, gw = W / p, N = (H / p) * gw, P = C * p * p;
    size_t nimg = (size_t)B * C * H * W, nt = (size_t)B * N * P;
    float *img = fbuf(nimg), *ext = fbuf(nt), *tgt = fbuf(nt);
    for (size_t i = 0; i < nimg; i++)
        img[i] = (float)(i * i % 101) * 0.25f - 7.0f + (float)i * 1e-3f;
    patch_extract(ext, img, B, C, H, W, p);
    patch_targets(tgt, img, B, C, H, W, p);
#define IMG(b, c, y, x) img[(((size_t)(b) * C + (c)) * H + (y)) * W + (x)]
    int ok_ext = 1, ok_tgt = 1, ok_stats = 1;
    double worst_t = 0, worst_var = 0;
    for (int b = 0; b < B; b++)
        for (int n = 0; n < N; n++) {
            int row = n / gw, col = n % gw;
            const float *e = ext + ((size_t)b * N + n) * P;
            const float *t = tgt + ((size_t)b * N + n) * P;
            double m = 0, v = 0;
            for (int c = 0; c < C; c++)
                for (int py = 0; py < p; py++)
                    for (int px = 0; px < p; px++) {
                        float val = IMG(b, c, row * p + py, col * p + px);
                        ok_ext &= e[(c * p + py) * p + px] == val;
                        m += val;
                    }
            m /= P;
            for (int k = 0; k < P; k++)
                v += (e[k] - m) * (e[k] - m);
            v /= P - 1;
            double sd = sqrt(v + 1e-6);
            /* invert the normalisation and find the pixel at (py, px, c) */
            for (int c = 0; c < C; c++)
                for (int py = 0; py < p; py++)
                    for (int px = 0; px < p; px++) {
                        double back = t[(py * p + px) * C + c] * sd + m;
                        double d = fabs(back - IMG(b, c, row * p + py, col * p + px));
                        worst_t = tap_worse(worst_t, d);
                    }
            double tm = 0, tv = 0;
            for (int k = 0; k < P; k++)
                tm += t[k];
            tm /= P;
            for (int k = 0; k < P; k++)
                tv += (t[k] - tm) * (t[k] - tm);
            tv /= P - 1;
            double want = v / (v + 1e-6);
            ok_stats &= fabs(tm) < 1e-6;
            worst_var = tap_worse(worst_var, fabs(tv - want));
        }
    ok_tgt = worst_t < 1e-4;
    tap_ok(ok_ext, "patch_extract: element by element in (c, py, px) order, raster tokens");
    /* the first N-1 tokens only, packed per image (the loss-only pass) */
    float *first = fbuf((size_t)B * (N - 1) * P);
    patch_extract_first(first, img, B, C, H, W, p, N - 1);
    int ok_first = 1;
    for (int b = 0; b < B; b++)
        ok_first &= !memcmp(first + (size_t)b * (N - 1) * P, ext + (size_t)b * N * P,
                            (size_t)(N - 1) * P * sizeof(float));
    tap_ok(ok_first, "patch_extract_first: each image's first N-1 tokens, N-1 rows per image");
    free(first);
    tap_ok(ok_tgt, "patch_targets: element by element in (py, px, c) order (worst %.1e)", worst_t);
    tap_ok(ok_stats && worst_var < 1e-5,
           "patch_targets: mean 0, unbiased variance var/(var+1e-6) per patch (%.1e)", worst_var);
    /* the two orders really differ for C > 1: the second value of patch 0 */
    tap_ok(ext[1] == IMG(0, 0, 0, 1) && ext[4] == IMG(0, 1, 0, 0), "extract order spot check");

    /* a constant patch gives zeros, not NaN */
    for (int c = 0; c < C; c++)
        for (int y = 0; y < p; y++)
            for (int x = 0; x < p; x++)
                IMG(1, c, 2 + y, 4 + x) = 3.7f; /* b=1, token n = 1*3+2 = 5 */
    patch_targets(tgt, img, B, C, H, W, p);
    int zeros = 1;
    for (int k = 0; k < P; k++)
        zeros &= tgt[((size_t)1 * N + 5) * P + k] == 0.0f;
    tap_ok(zeros, "patch_targets: a constant patch gives exact zeros");
#undef IMG
    free(img), free(ext), free(tgt);
}

/* ---------------------------------------------------------------- loss */

typedef struct {
    float *pred, *tgt;
    int32_t *prefix;
    int B, N, P;
} loss_ctx;

static double loss_objective(void *p)
{
    loss_ctx *c = p;
    return loss_forward(c->pred, c->tgt, c->prefix, c->B, c->N, c->P);
}

static void test_loss(aim_rng *rng)
{
    /* hand computed: B=2, N=3, P=2, prefix {1, 2}. Valid targets: (0,1),
     * (0,2), (1,2) predicted by rows (0,0), (0,1), (1,1); count 3.
     * Row errors: (1,2)-(0,0) -> 2.5; (0,1)-(1,1) -> 0.5; (3,0)-(0,0) -> 4.5;
     * loss = 7.5/3 = 2.5. Cells that must not count hold 100. */
    float pred[2 * 3 * 2] = {1, 2, 0, 1, 100, 100, /* b=0 rows 0..2 */
                             100, 100, 3, 0, 100, 100};
    float tgt[2 * 3 * 2] = {100, 100, 0, 0, 1, 1, /* b=0 targets 0..2 */
                            100, 100, 100, 100, 0, 0};
    int32_t prefix[2] = {1, 2};
    tap_ok(loss_count(prefix, 2, 3) == 3, "loss_count of prefix {1,2}, N=3 is 3");
    float L = loss_forward(pred, tgt, prefix, 2, 3, 2);
    tap_ok(L == 2.5f, "loss on the hand-computed case is 2.5 (got %.9g)", L);
    float d[12] = {0};
    loss_backward(d, pred, tgt, prefix, 2, 3, 2, 1.0f);
    /* d = 2 (y - t) / (P count) = (y - t) / 3 on the valid rows, 0 elsewhere */
    const double want[12] = {1. / 3, 2. / 3, -1. / 3, 0, 0, 0, 0, 0, 1, 0, 0, 0};
    int ok = 1;
    for (int i = 0; i < 12; i++)
        ok &= want[i] == 0 ? d[i] == 0 : fabs(d[i] - want[i]) < 1e-7;
    tap_ok(ok, "loss gradient on the hand-computed case (rows predicting nothing get 0)");
    float d2[12] = {0};
    loss_backward(d2, pred, tgt, prefix, 2, 3, 2, 0.5f);
    ok = 1;
    for (int i = 0; i < 12; i++)
        ok &= fabsf(d2[i] - 0.5f * d[i]) < 1e-7f;
    tap_ok(ok, "loss gradient scales with dloss");
    int32_t pre2[4] = {1, 4, 2, 3};
    tap_ok(loss_count(pre2, 4, 5) == 4 + 1 + 3 + 2, "loss_count of prefix {1,4,2,3}, N=5 is 10");

    /* random case vs double, and a gradient check of every element */
    int B = 3, N = 5, P = 3;
    size_t n = (size_t)B * N * P;
    loss_ctx c = {fbuf(n), fbuf(n), aim_xcalloc(B, sizeof(int32_t)), B, N, P};
    fill_normal(rng, c.pred, n, 0, 1);
    fill_normal(rng, c.tgt, n, 0, 1);
    for (int b = 0; b < B; b++)
        c.prefix[b] = 1 + (int32_t)aim_rng_below(rng, (uint32_t)(N - 1));
    c.prefix[0] = 1;
    c.prefix[1] = N - 1;
    double ref = 0;
    int64_t cnt = 0;
    for (int b = 0; b < B; b++)
        for (int j = c.prefix[b]; j < N; j++, cnt++)
            for (int k = 0; k < P; k++) {
                double e = (double)c.pred[((size_t)b * N + j - 1) * P + k] -
                           c.tgt[((size_t)b * N + j) * P + k];
                ref += e * e / P;
            }
    ref /= (double)cnt;
    L = loss_forward(c.pred, c.tgt, c.prefix, B, N, P);
    tap_ok(cnt == loss_count(c.prefix, B, N) && fabs(L - ref) < 1e-6 * ref,
           "loss forward vs double on a random case (%.7g vs %.7g)", L, ref);
    float *g = fbuf(n);
    loss_backward(g, c.pred, c.tgt, c.prefix, B, N, P, 1.0f);
    gc_report("loss dpred", gradcheck(loss_objective, &c, c.pred, n, g, 1e-3));
    ok = 1;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++)
            if (i < c.prefix[b] - 1 || i == N - 1)
                for (int k = 0; k < P; k++)
                    ok &= g[((size_t)b * N + i) * P + k] == 0;
    tap_ok(ok, "loss gradient is exactly 0 on rows before S-1 and on row N-1");
    float *g2 = fdup(g, n);
    loss_backward(g2, c.pred, c.tgt, c.prefix, B, N, P, 1.0f);
    tap_ok(exactly_twice(g, g2, n), "loss backward accumulates (second call doubles exactly)");
    free(g), free(g2), free(c.pred), free(c.tgt), free(c.prefix);
}

int main(void)
{
    aim_rng rng;
    aim_rng_seed(&rng, 20240117);
    test_layernorm(&rng);
    test_layernorm_fused(&rng);
    test_linear(&rng);
    test_gelu(&rng);
    test_sincos();
    test_patches();
    test_loss(&rng);
    tap_diag("worst gradient-check error over all kernels: %.2e (tolerance %.0e)", gc_worst,
             GC_TOL);
    return tap_done();
}
