/*
 * test_attention.c - the attention core with AIM's prefix-causal mask:
 * fast (OpenMP + sgemm) against naive loops, mask properties, finite
 * differences of both backward passes, accumulation, thread-count
 * independence, and a double-precision reference written here.
 */
#include "config.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aim/core.h"
#include "aim/nn.h"
#include "tap.h"

typedef void (*fwd_fn)(float *out, float *att, const float *qkv, const int32_t *prefix,
                       int B, int N, int D, int NH);
typedef void (*bwd_fn)(float *dqkv, float *datt, const float *dout, const float *qkv,
                       const float *att, const int32_t *prefix, int B, int N, int D, int NH);

typedef struct cfg {
    int B, N, D, NH;
    int32_t mixed[4]; /* a batch with a different prefix per image */
} cfg;

/* prefix cases: NULL, all 1, all N/2, all N-1, all N, mixed */
enum { P_NULL, P_ONE, P_HALF, P_NM1, P_N, P_MIXED, P_COUNT };

/* Fill buf for case k and return the prefix pointer (NULL for P_NULL) and
 * its name. */
static const int32_t *make_prefix(int k, const cfg *c, int32_t *buf, const char **name)
{
    static const char *names[P_COUNT] = {"NULL", "S=1", "S=N/2", "S=N-1", "S=N", "mixed S"};
    *name = names[k];
    for (int b = 0; b < c->B; b++) {
        switch (k) {
        case P_ONE: buf[b] = 1; break;
        case P_HALF: buf[b] = c->N / 2; break;
        case P_NM1: buf[b] = c->N - 1; break;
        case P_N: buf[b] = c->N; break;
        default: buf[b] = c->mixed[b]; break;
        }
    }
    return k == P_NULL ? NULL : buf;
}

static void fill_normal(aim_rng *r, float *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * aim_rng_normal(r));
}

static void fill_nan(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
}

/* max |a-b| over max |b| (the error relative to the array's scale);
 * infinity if a holds a non-finite value */
static double max_rel(const float *a, const float *b, size_t n)
{
    double m = 0.0, d = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return INFINITY;
        double e = fabs((double)a[i] - (double)b[i]);
        if (e > d)
            d = e;
        if (fabs((double)b[i]) > m)
            m = fabs((double)b[i]);
    }
    return d / (m > 0.0 ? m : 1.0);
}

static double max_rel_d(const float *a, const double *b, size_t n)
{
    double m = 0.0, d = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        double e = fabs((double)a[i] - b[i]);
        if (e > d)
            d = e;
        if (fabs(b[i]) > m)
            m = fabs(b[i]);
    }
    return d / (m > 0.0 ? m : 1.0);
}

static int allowed(int q, int k, int S)
{
    return k < S || k <= q;
}

/* prefix length of image b as the kernels read it */
static int prefix_of(const int32_t *prefix, int b, int N)
{
    return prefix ? prefix[b] : N;
}

/* ------------------------------------------------ double-precision reference */

/* Forward and backward in double, straight from the definition: out, att,
 * and dqkv = d(sum out * dout)/dqkv (overwritten). drop_rowsum leaves out
 * the softmax's rowsum term (a deliberately wrong gradient, used to show that
 * the finite-difference check catches a missing term). */
static void ref_attention(double *out, double *att, double *dqkv, const float *qkv,
                          const float *dout, const int32_t *prefix, int B, int N, int D,
                          int NH, int drop_rowsum)
{
    const int C3 = 3 * D, hd = D / NH;
    const double scale = 1.0 / sqrt((double)hd);
    double *dp = aim_xmalloc((size_t)N * sizeof *dp);
    memset(dqkv, 0, (size_t)B * N * C3 * sizeof *dqkv);
    for (int b = 0; b < B; b++) {
        const int S = prefix_of(prefix, b, N);
        for (int h = 0; h < NH; h++) {
            for (int q = 0; q < N; q++) {
                const float *qv = qkv + ((size_t)b * N + q) * C3 + h * hd;
                double *a = att + (((size_t)b * NH + h) * N + q) * N;
                double mx = -INFINITY, sum = 0.0;
                for (int k = 0; k < N; k++) {
                    if (!allowed(q, k, S))
                        continue;
                    const float *kv = qkv + ((size_t)b * N + k) * C3 + D + h * hd;
                    double s = 0.0;
                    for (int i = 0; i < hd; i++)
                        s += (double)qv[i] * kv[i];
                    a[k] = s * scale;
                    if (a[k] > mx)
                        mx = a[k];
                }
                for (int k = 0; k < N; k++) {
                    if (!allowed(q, k, S)) {
                        a[k] = 0.0;
                        continue;
                    }
                    a[k] = exp(a[k] - mx);
                    sum += a[k];
                }
                for (int k = 0; k < N; k++)
                    a[k] /= sum;
                double *o = out + ((size_t)b * N + q) * D + h * hd;
                const float *go = dout + ((size_t)b * N + q) * D + h * hd;
                for (int i = 0; i < hd; i++) {
                    double acc = 0.0;
                    for (int k = 0; k < N; k++)
                        acc += a[k] * qkv[((size_t)b * N + k) * C3 + 2 * D + h * hd + i];
                    o[i] = acc;
                }
                // backward of this row
                double dot = 0.0;
                for (int k = 0; k < N; k++) {
                    const float *vv = qkv + ((size_t)b * N + k) * C3 + 2 * D + h * hd;
                    double *dv = dqkv + ((size_t)b * N + k) * C3 + 2 * D + h * hd;
                    dp[k] = 0.0;
                    for (int i = 0; i < hd; i++) {
                        dp[k] += (double)go[i] * vv[i];
                        dv[i] += a[k] * go[i];
                    }
                    dot += dp[k] * a[k];
                }
                if (drop_rowsum)
                    dot = 0.0;
                double *dq = dqkv + ((size_t)b * N + q) * C3 + h * hd;
                for (int k = 0; k < N; k++) {
                    const double ds = a[k] * (dp[k] - dot) * scale;
                    const float *kv = qkv + ((size_t)b * N + k) * C3 + D + h * hd;
                    double *dk = dqkv + ((size_t)b * N + k) * C3 + D + h * hd;
                    for (int i = 0; i < hd; i++) {
                        dq[i] += ds * kv[i];
                        dk[i] += ds * qv[i];
                    }
                }
            }
        }
    }
    free(dp);
}

/* ------------------------------------------------------- finite differences */

static double objective(const float *out, const float *G, size_t n)
{
    double L = 0.0;
    for (size_t i = 0; i < n; i++)
        L += (double)out[i] * G[i];
    return L;
}

/* num[i] = d(sum out * G)/d qkv[i] by central differences of the forward f.
 * Images are independent, so a change in image b is measured by running the
 * forward on image b alone (B = 1), which keeps the test fast. */
static void fd_numeric(double *num, fwd_fn f, const cfg *c, const int32_t *prefix,
                       const float *qkv0, const float *G)
{
    const size_t nq1 = (size_t)c->N * 3 * c->D, no1 = (size_t)c->N * c->D;
    const size_t na1 = (size_t)c->NH * c->N * c->N;
    float *qkv = aim_xmalloc(nq1 * sizeof *qkv);
    float *out = aim_xmalloc(no1 * sizeof *out);
    float *att = aim_xmalloc(na1 * sizeof *att);
    const float h = 1e-3f;
    for (int b = 0; b < c->B; b++) {
        const int32_t *pb = prefix ? prefix + b : NULL;
        const float *Gb = G + (size_t)b * no1;
        memcpy(qkv, qkv0 + (size_t)b * nq1, nq1 * sizeof *qkv);
        for (size_t i = 0; i < nq1; i++) {
            const float x = qkv[i], xp = x + h, xm = x - h;
            qkv[i] = xp;
            f(out, att, qkv, pb, 1, c->N, c->D, c->NH);
            const double Lp = objective(out, Gb, no1);
            qkv[i] = xm;
            f(out, att, qkv, pb, 1, c->N, c->D, c->NH);
            const double Lm = objective(out, Gb, no1);
            qkv[i] = x;
            num[(size_t)b * nq1 + i] = (Lp - Lm) / ((double)xp - (double)xm);
        }
    }
    free(qkv);
    free(out);
    free(att);
}

/* worst |num - ana| / max(1, |num|) */
static double fd_error(const double *num, const float *ana, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(num[i] - (double)ana[i]) / fmax(1.0, fabs(num[i]));
        if (!(e <= worst))
            worst = e; /* NaN sticks as a failure */
    }
    return worst;
}

static double fd_error_d(const double *num, const double *ana, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(num[i] - ana[i]) / fmax(1.0, fabs(num[i]));
        if (!(e <= worst))
            worst = e;
    }
    return worst;
}

/* ------------------------------------------------------------------ tests */

typedef struct bufs {
    size_t nqkv, nout, natt;
    float *qkv, *G;
    float *out, *att, *datt, *dqkv;   /* fast */
    float *out2, *att2, *datt2, *dqkv2; /* naive or a second run */
} bufs;

static void bufs_init(bufs *m, const cfg *c, uint64_t seed)
{
    m->nqkv = (size_t)c->B * c->N * 3 * c->D;
    m->nout = (size_t)c->B * c->N * c->D;
    m->natt = (size_t)c->B * c->NH * c->N * c->N;
    m->qkv = aim_xmalloc(m->nqkv * sizeof(float));
    m->G = aim_xmalloc(m->nout * sizeof(float));
    m->out = aim_xmalloc(m->nout * sizeof(float));
    m->out2 = aim_xmalloc(m->nout * sizeof(float));
    m->att = aim_xmalloc(m->natt * sizeof(float));
    m->att2 = aim_xmalloc(m->natt * sizeof(float));
    m->datt = aim_xmalloc(m->natt * sizeof(float));
    m->datt2 = aim_xmalloc(m->natt * sizeof(float));
    m->dqkv = aim_xmalloc(m->nqkv * sizeof(float));
    m->dqkv2 = aim_xmalloc(m->nqkv * sizeof(float));
    aim_rng r;
    aim_rng_seed(&r, seed);
    fill_normal(&r, m->qkv, m->nqkv, 1.0);
    fill_normal(&r, m->G, m->nout, 1.0);
}

static void bufs_free(bufs *m)
{
    free(m->qkv);
    free(m->G);
    free(m->out);
    free(m->out2);
    free(m->att);
    free(m->att2);
    free(m->datt);
    free(m->datt2);
    free(m->dqkv);
    free(m->dqkv2);
}

/* forward + backward into (out, att, datt, dqkv) with every output
 * pre-filled with NaN (so anything left unwritten shows) and dqkv zeroed */
static void run_pair(fwd_fn f, bwd_fn bw, const cfg *c, const int32_t *prefix,
                     const float *qkv, const float *G, float *out, float *att, float *datt,
                     float *dqkv, size_t nout, size_t natt, size_t nqkv)
{
    fill_nan(out, nout);
    fill_nan(att, natt);
    fill_nan(datt, natt);
    memset(dqkv, 0, nqkv * sizeof *dqkv);
    f(out, att, qkv, prefix, c->B, c->N, c->D, c->NH);
    bw(dqkv, datt, G, qkv, att, prefix, c->B, c->N, c->D, c->NH);
}

/* every att row sums to 1 and every masked entry is exactly 0 */
static void check_mask(const float *att, const cfg *c, const int32_t *prefix, double *worst_sum,
                       int *bad_zero, int *bad_pos)
{
    for (int b = 0; b < c->B; b++) {
        const int S = prefix_of(prefix, b, c->N);
        for (int h = 0; h < c->NH; h++) {
            for (int q = 0; q < c->N; q++) {
                const float *row = att + (((size_t)b * c->NH + h) * c->N + q) * c->N;
                double sum = 0.0;
                for (int k = 0; k < c->N; k++) {
                    sum += row[k];
                    if (!allowed(q, k, S) && row[k] != 0.0f)
                        (*bad_zero)++;
                    if (allowed(q, k, S) && !(row[k] > 0.0f))
                        (*bad_pos)++;
                }
                if (!(fabs(sum - 1.0) <= *worst_sum))
                    *worst_sum = fabs(sum - 1.0);
            }
        }
    }
}

static void test_config(const cfg *c, uint64_t seed, double *fd_worst_fast,
                        double *fd_worst_naive)
{
    bufs m;
    bufs_init(&m, c, seed);
    int32_t pbuf[4];
    double *num = aim_xmalloc(m.nqkv * sizeof *num);
    tap_diag("config B=%d N=%d D=%d NH=%d", c->B, c->N, c->D, c->NH);

    for (int k = 0; k < P_COUNT; k++) {
        const char *pname;
        const int32_t *prefix = make_prefix(k, c, pbuf, &pname);
        run_pair(attention_forward, attention_backward, c, prefix, m.qkv, m.G, m.out, m.att,
                 m.datt, m.dqkv, m.nout, m.natt, m.nqkv);
        run_pair(attention_forward_naive, attention_backward_naive, c, prefix, m.qkv, m.G,
                 m.out2, m.att2, m.datt2, m.dqkv2, m.nout, m.natt, m.nqkv);
        double eo = max_rel(m.out, m.out2, m.nout), ea = max_rel(m.att, m.att2, m.natt);
        double eg = max_rel(m.dqkv, m.dqkv2, m.nqkv);
        tap_ok(eo <= 1e-5 && ea <= 1e-5, "N=%d %s: fast forward = naive (out %.2g, att %.2g)",
               c->N, pname, eo, ea);
        tap_ok(eg <= 1e-5, "N=%d %s: fast backward = naive (dqkv %.2g)", c->N, pname, eg);

        double ws = 0.0;
        int bz = 0, bp = 0;
        check_mask(m.att, c, prefix, &ws, &bz, &bp);
        check_mask(m.att2, c, prefix, &ws, &bz, &bp);
        tap_ok(ws <= 1e-5 && bz == 0 && bp == 0,
               "N=%d %s: att rows sum to 1 (worst %.2g), masked entries exactly 0 (%d bad), "
               "visible ones positive (%d bad), fast and naive",
               c->N, pname, ws, bz, bp);

        if (k == P_NULL)
            continue;
        /* finite differences of each backward against its own forward */
        fd_numeric(num, attention_forward, c, prefix, m.qkv, m.G);
        double ef = fd_error(num, m.dqkv, m.nqkv);
        fd_numeric(num, attention_forward_naive, c, prefix, m.qkv, m.G);
        double en = fd_error(num, m.dqkv2, m.nqkv);
        tap_ok(ef <= 1e-2, "N=%d %s: fast backward matches finite differences (worst %.2g)",
               c->N, pname, ef);
        tap_ok(en <= 1e-2, "N=%d %s: naive backward matches finite differences (worst %.2g)",
               c->N, pname, en);
        if (ef > *fd_worst_fast)
            *fd_worst_fast = ef;
        if (en > *fd_worst_naive)
            *fd_worst_naive = en;
    }

    /* S = N is the same computation as prefix NULL, bit for bit */
    const char *pname;
    const int32_t *pN = make_prefix(P_N, c, pbuf, &pname);
    run_pair(attention_forward, attention_backward, c, pN, m.qkv, m.G, m.out, m.att, m.datt,
             m.dqkv, m.nout, m.natt, m.nqkv);
    run_pair(attention_forward, attention_backward, c, NULL, m.qkv, m.G, m.out2, m.att2,
             m.datt2, m.dqkv2, m.nout, m.natt, m.nqkv);
    tap_ok(!memcmp(m.out, m.out2, m.nout * sizeof(float)) &&
               !memcmp(m.att, m.att2, m.natt * sizeof(float)) &&
               !memcmp(m.dqkv, m.dqkv2, m.nqkv * sizeof(float)),
           "N=%d: S=N gives exactly the result of prefix NULL", c->N);

    free(num);
    bufs_free(&m);
}

/* Change token t (its q, k and v) of every image; report whether output
 * rows [0, t) stayed bit-identical, whether row `probe` changed. */
static void perturb_token(fwd_fn f, const cfg *c, const int32_t *prefix, const float *qkv0,
                          int t, int probe, int *same_before, int *probe_changed)
{
    const size_t nqkv = (size_t)c->B * c->N * 3 * c->D, nout = (size_t)c->B * c->N * c->D;
    const size_t natt = (size_t)c->B * c->NH * c->N * c->N;
    float *qkv = aim_xmalloc(nqkv * sizeof *qkv);
    float *o1 = aim_xmalloc(nout * sizeof *o1), *o2 = aim_xmalloc(nout * sizeof *o2);
    float *att = aim_xmalloc(natt * sizeof *att);
    memcpy(qkv, qkv0, nqkv * sizeof *qkv);
    f(o1, att, qkv, prefix, c->B, c->N, c->D, c->NH);
    for (int b = 0; b < c->B; b++)
        for (int i = 0; i < 3 * c->D; i++)
            qkv[((size_t)b * c->N + t) * 3 * c->D + i] += 0.5f + 0.25f * (float)(i % 3);
    f(o2, att, qkv, prefix, c->B, c->N, c->D, c->NH);
    *same_before = 1;
    *probe_changed = 1;
    for (int b = 0; b < c->B; b++) {
        const size_t row = (size_t)b * c->N * c->D;
        if (memcmp(o1 + row, o2 + row, (size_t)t * c->D * sizeof(float)))
            *same_before = 0;
        if (!memcmp(o1 + row + (size_t)probe * c->D, o2 + row + (size_t)probe * c->D,
                    c->D * sizeof(float)))
            *probe_changed = 0;
    }
    free(qkv);
    free(o1);
    free(o2);
    free(att);
}

static void test_mask_dependencies(const cfg *c, uint64_t seed)
{
    bufs m;
    bufs_init(&m, c, seed);
    int32_t pbuf[4];
    const int N = c->N;
    static const struct {
        fwd_fn f;
        const char *name;
    } fs[2] = {{attention_forward, "fast"}, {attention_forward_naive, "naive"}};
    for (int i = 0; i < 2; i++) {
        const char *pname;
        int same, changed;
        /* causal: token t does not reach tokens < t, does reach itself */
        const int32_t *p1 = make_prefix(P_ONE, c, pbuf, &pname);
        perturb_token(fs[i].f, c, p1, m.qkv, N / 2, N / 2, &same, &changed);
        tap_ok(same && changed,
               "%s, S=1: changing token %d leaves tokens < %d untouched and changes token %d",
               fs[i].name, N / 2, N / 2, N / 2);
        perturb_token(fs[i].f, c, p1, m.qkv, 1, 0, &same, &changed);
        tap_ok(!changed, "%s, S=1: token 0 does not see token 1", fs[i].name);

        /* prefix S: the prefix is bidirectional, the rest causal */
        const int S = N / 2;
        const int32_t *ph = make_prefix(P_HALF, c, pbuf, &pname);
        perturb_token(fs[i].f, c, ph, m.qkv, S - 1, 0, &same, &changed);
        tap_ok(changed, "%s, S=%d: changing token S-1 changes the output at token 0",
               fs[i].name, S);
        perturb_token(fs[i].f, c, ph, m.qkv, S, S, &same, &changed);
        tap_ok(same && changed,
               "%s, S=%d: changing token S leaves tokens < S untouched and changes token S",
               fs[i].name, S);
        perturb_token(fs[i].f, c, ph, m.qkv, N - 2, N - 2, &same, &changed);
        tap_ok(same && changed, "%s, S=%d: changing token N-2 leaves tokens < N-2 untouched",
               fs[i].name, S);
    }
    bufs_free(&m);
}

static void test_accumulate_and_threads(const cfg *c, uint64_t seed)
{
    bufs m;
    bufs_init(&m, c, seed);
    int32_t pbuf[4];
    const char *pname;
    const int32_t *prefix = make_prefix(P_MIXED, c, pbuf, &pname);
    static const struct {
        fwd_fn f;
        bwd_fn bw;
        const char *name;
    } ks[2] = {{attention_forward, attention_backward, "fast"},
               {attention_forward_naive, attention_backward_naive, "naive"}};

    for (int i = 0; i < 2; i++) {
        run_pair(ks[i].f, ks[i].bw, c, prefix, m.qkv, m.G, m.out, m.att, m.datt, m.dqkv,
                 m.nout, m.natt, m.nqkv);
        /* backward adds: two calls into a zeroed gradient give 2x one call */
        for (size_t j = 0; j < m.nqkv; j++)
            m.dqkv2[j] = 0.0f;
        ks[i].bw(m.dqkv2, m.datt2, m.G, m.qkv, m.att, prefix, c->B, c->N, c->D, c->NH);
        fill_nan(m.datt2, m.natt);
        ks[i].bw(m.dqkv2, m.datt2, m.G, m.qkv, m.att, prefix, c->B, c->N, c->D, c->NH);
        for (size_t j = 0; j < m.nqkv; j++)
            m.dqkv[j] *= 2.0f;
        double e = max_rel(m.dqkv2, m.dqkv, m.nqkv);
        tap_ok(e <= 1e-6, "%s backward accumulates: two calls give 2x (%.2g)", ks[i].name, e);
    }

    /* the fast pair gives bit-identical results for 1, 2 and 3 threads */
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    run_pair(attention_forward, attention_backward, c, prefix, m.qkv, m.G, m.out, m.att,
             m.datt, m.dqkv, m.nout, m.natt, m.nqkv);
    for (int nt = 2; nt <= 3; nt++) {
        omp_set_num_threads(nt);
        run_pair(attention_forward, attention_backward, c, prefix, m.qkv, m.G, m.out2,
                 m.att2, m.datt2, m.dqkv2, m.nout, m.natt, m.nqkv);
        tap_ok(!memcmp(m.out, m.out2, m.nout * sizeof(float)) &&
                   !memcmp(m.att, m.att2, m.natt * sizeof(float)) &&
                   !memcmp(m.datt, m.datt2, m.natt * sizeof(float)) &&
                   !memcmp(m.dqkv, m.dqkv2, m.nqkv * sizeof(float)),
               "fast pair: %d threads give exactly the result of 1 thread", nt);
    }
    omp_set_num_threads(saved);

    /* a NULL gradient means "not needed": nothing is computed, not even
     * into the datt scratch, and the inputs are left as they were */
    float *datt0 = aim_xmalloc(m.natt * sizeof(float));
    float *att0 = aim_xmalloc(m.natt * sizeof(float));
    float *qkv0 = aim_xmalloc(m.nqkv * sizeof(float));
    float *G0 = aim_xmalloc(m.nout * sizeof(float));
    for (size_t j = 0; j < m.natt; j++)
        m.datt[j] = 12345.0f + (float)(j % 7); /* a pattern any write would break */
    memcpy(datt0, m.datt, m.natt * sizeof(float));
    memcpy(att0, m.att, m.natt * sizeof(float));
    memcpy(qkv0, m.qkv, m.nqkv * sizeof(float));
    memcpy(G0, m.G, m.nout * sizeof(float));
    attention_backward(NULL, m.datt, m.G, m.qkv, m.att, prefix, c->B, c->N, c->D, c->NH);
    attention_backward_write(NULL, m.datt, m.G, m.qkv, m.att, prefix, c->B, c->N, c->D, c->NH);
    attention_backward_naive(NULL, m.datt, m.G, m.qkv, m.att, prefix, c->B, c->N, c->D, c->NH);
    tap_ok(!memcmp(m.datt, datt0, m.natt * sizeof(float)) &&
               !memcmp(m.att, att0, m.natt * sizeof(float)) &&
               !memcmp(m.qkv, qkv0, m.nqkv * sizeof(float)) &&
               !memcmp(m.G, G0, m.nout * sizeof(float)),
           "backward (fast, write, naive) with dqkv NULL touches neither the scratch nor the "
           "inputs");
    free(datt0);
    free(att0);
    free(qkv0);
    free(G0);
    bufs_free(&m);
}

/* the model's sizes (hd 64, N 49 and 64): fast = naive for every prefix
 * case, and the overwriting backward = the adding one into zeros */
static void test_model_sizes(const cfg *c, uint64_t seed)
{
    bufs m;
    bufs_init(&m, c, seed);
    int32_t pbuf[4];
    for (int k = 0; k < P_COUNT; k++) {
        const char *pname;
        const int32_t *prefix = make_prefix(k, c, pbuf, &pname);
        run_pair(attention_forward, attention_backward, c, prefix, m.qkv, m.G, m.out, m.att,
                 m.datt, m.dqkv, m.nout, m.natt, m.nqkv);
        run_pair(attention_forward_naive, attention_backward_naive, c, prefix, m.qkv, m.G,
                 m.out2, m.att2, m.datt2, m.dqkv2, m.nout, m.natt, m.nqkv);
        double eo = max_rel(m.out, m.out2, m.nout), ea = max_rel(m.att, m.att2, m.natt);
        double eg = max_rel(m.dqkv, m.dqkv2, m.nqkv);
        fill_nan(m.dqkv2, m.nqkv);
        attention_backward_write(m.dqkv2, m.datt2, m.G, m.qkv, m.att, prefix, c->B, c->N, c->D,
                                 c->NH);
        int same = !memcmp(m.dqkv, m.dqkv2, m.nqkv * sizeof(float));
        tap_ok(eo <= 1e-5 && ea <= 1e-5 && eg <= 1e-5 && same,
               "B=%d N=%d D=%d NH=%d %s: fast = naive (out %.2g, att %.2g, dqkv %.2g); "
               "overwriting backward = adding into zeros",
               c->B, c->N, c->D, c->NH, pname, eo, ea, eg);
    }
    bufs_free(&m);
}

static void test_reference(const cfg *c, uint64_t seed)
{
    bufs m;
    bufs_init(&m, c, seed);
    int32_t pbuf[4];
    const char *pname;
    const int32_t *prefix = make_prefix(P_MIXED, c, pbuf, &pname);
    double *out = aim_xmalloc(m.nout * sizeof *out);
    double *att = aim_xmalloc(m.natt * sizeof *att);
    double *dqkv = aim_xmalloc(m.nqkv * sizeof *dqkv);
    double *num = aim_xmalloc(m.nqkv * sizeof *num);

    ref_attention(out, att, dqkv, m.qkv, m.G, prefix, c->B, c->N, c->D, c->NH, 0);
    run_pair(attention_forward, attention_backward, c, prefix, m.qkv, m.G, m.out, m.att,
             m.datt, m.dqkv, m.nout, m.natt, m.nqkv);
    double eo = max_rel_d(m.out, out, m.nout), ea = max_rel_d(m.att, att, m.natt);
    double eg = max_rel_d(m.dqkv, dqkv, m.nqkv);
    tap_ok(eo <= 1e-5 && ea <= 1e-5 && eg <= 1e-5,
           "N=%d mixed S {%d,%d,...}: fast pair = double reference (out %.2g, att %.2g, "
           "dqkv %.2g)",
           c->N, (int)prefix[0], (int)prefix[1], eo, ea, eg);

    /* the finite-difference check is tight enough to catch a missing term */
    fd_numeric(num, attention_forward, c, prefix, m.qkv, m.G);
    double good = fd_error_d(num, dqkv, m.nqkv);
    ref_attention(out, att, dqkv, m.qkv, m.G, prefix, c->B, c->N, c->D, c->NH, 1);
    double bad = fd_error_d(num, dqkv, m.nqkv);
    tap_ok(good <= 1e-2 && bad > 1e-2,
           "finite differences accept the reference gradient (%.2g) and reject one without "
           "the softmax rowsum term (%.2g)",
           good, bad);

    free(out);
    free(att);
    free(dqkv);
    free(num);
    bufs_free(&m);
}

int main(void)
{
    /* hd = 4, 8, 4; N = 36 runs several causal row blocks of the fast kernel */
    static const cfg cfgs[] = {
        {3, 7, 12, 3, {2, 7, 5, 0}},
        {2, 16, 16, 2, {1, 11, 0, 0}},
        {2, 36, 8, 2, {3, 20, 0, 0}},
        {2, 13, 40, 2, {3, 12, 0, 0}}, /* hd 20: two full vectors and a partial one */
    };
    const int ncfg = (int)(sizeof cfgs / sizeof cfgs[0]);
    double fdf = 0.0, fdn = 0.0;
    for (int i = 0; i < ncfg; i++)
        test_config(&cfgs[i], 1000 + i, &fdf, &fdn);
    tap_diag("worst finite-difference error: fast %.3g, naive %.3g", fdf, fdn);

    test_mask_dependencies(&cfgs[0], 77);
    test_mask_dependencies(&cfgs[2], 78);
    test_accumulate_and_threads(&cfgs[2], 79);
    static const cfg big[] = {{2, 49, 192, 3, {1, 30, 0, 0}}, {3, 64, 384, 6, {63, 1, 17, 0}}};
    test_model_sizes(&big[0], 82);
    test_model_sizes(&big[1], 83);
    test_reference(&cfgs[0], 80);
    test_reference(&cfgs[2], 81);
    return tap_done();
}
