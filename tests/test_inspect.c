/*
 * test_inspect.c - the numbers behind the Inspect view (aim/inspect.h):
 * the eigensolvers against a matrix with known eigenpairs and against each
 * other, PCA of data built with known principal directions and variances,
 * the token statistics on hand-computed cases, the per-patch loss against
 * the loss, the probe's attention maps (rows sum to 1, equal to a naive
 * double-precision computation), chunked statistics equal to unchunked ones,
 * the colour maps and loading a probe saved with its model.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/inspect.h"
#include "aim/nn.h"
#include "aim/probe.h"
#include "aim/recon.h"
#include "tap.h"

static void randn(float *x, size_t n, aim_rng *r, float s)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(s * aim_rng_normal(r));
}

/* rows of an n x n orthogonal matrix: Gram-Schmidt on random vectors */
static void random_orthogonal(double *Q, int n, aim_rng *r)
{
    for (int i = 0; i < n; i++) {
        double *q = Q + (size_t)i * n;
        for (;;) {
            for (int k = 0; k < n; k++)
                q[k] = aim_rng_normal(r);
            for (int j = 0; j < i; j++) {
                const double *p = Q + (size_t)j * n;
                double d = 0;
                for (int k = 0; k < n; k++)
                    d += q[k] * p[k];
                for (int k = 0; k < n; k++)
                    q[k] -= d * p[k];
            }
            double len = 0;
            for (int k = 0; k < n; k++)
                len += q[k] * q[k];
            len = sqrt(len);
            if (len > 1e-3) {
                for (int k = 0; k < n; k++)
                    q[k] /= len;
                break;
            }
        }
    }
}

/* |dot(a, b)| for unit vectors: 1 when they span the same line */
static double abs_cos(const float *a, const double *b, int n)
{
    double d = 0, na = 0, nb = 0;
    for (int k = 0; k < n; k++) {
        d += a[k] * b[k];
        na += (double)a[k] * a[k];
        nb += b[k] * b[k];
    }
    return fabs(d) / sqrt(na * nb);
}

static int largest_positive(const float *v, int n)
{
    int at = 0;
    for (int i = 1; i < n; i++)
        if (fabsf(v[i]) > fabsf(v[at]))
            at = i;
    return v[at] > 0;
}

/* ------------------------------------------------------------ eigensolvers */
static void test_eigh(void)
{
    aim_rng r;
    aim_rng_seed(&r, 7);
    /* A = Q^T diag(lam) Q with known Q and lam */
    enum { n = 5 };
    double Q[n * n], A[n * n], lam[n] = {7, 3.5, 2, -0.5, -4};
    random_orthogonal(Q, n, &r);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++)
                s += Q[k * n + i] * lam[k] * Q[k * n + j];
            A[i * n + j] = s;
        }
    double w[n], V[n * n];
    aim_eigh_jacobi(A, n, w, V);
    double werr = 0, vcos = 1;
    int signs = 1;
    for (int i = 0; i < n; i++) {
        werr = tap_worse(werr, fabs(w[i] - lam[i]));
        float vf[n];
        for (int k = 0; k < n; k++)
            vf[k] = (float)V[i * n + k];
        vcos = fmin(vcos, abs_cos(vf, Q + i * n, n));
        signs &= largest_positive(vf, n);
    }
    tap_ok(werr < 1e-12, "Jacobi: the eigenvalues of Q^T diag(7, 3.5, 2, -0.5, -4) Q, descending "
                         "(worst error %.2g)", werr);
    tap_ok(vcos > 1 - 1e-12, "Jacobi: the eigenvectors are Q's rows (worst |cos| %.15f)", vcos);
    tap_ok(signs, "Jacobi: each vector's largest entry is positive");

    float Af[n * n], wf[3], Vf[3 * n];
    for (int i = 0; i < n * n; i++)
        Af[i] = (float)A[i];
    aim_err e;
    int rc = aim_eigh_top(Af, n, 3, wf, Vf, &e);
    werr = 0;
    vcos = 1;
    signs = 1;
    for (int i = 0; i < 3 && rc == 0; i++) {
        werr = tap_worse(werr, fabs(wf[i] - lam[i]));
        vcos = fmin(vcos, abs_cos(Vf + i * n, Q + i * n, n));
        signs &= largest_positive(Vf + i * n, n);
    }
#ifdef HAVE_SSYEVR
    tap_diag("aim_eigh_top uses LAPACK ssyevr");
#else
    tap_diag("aim_eigh_top uses the Jacobi solver (no LAPACK)");
#endif
    tap_ok(rc == 0 && werr < 1e-5 && vcos > 1 - 1e-6 && signs,
           "aim_eigh_top: the 3 largest eigenpairs of the known matrix (error %.2g, |cos| %.8f)",
           werr, vcos);

    /* a random symmetric 40 x 40: top 6 against Jacobi */
    enum { m = 40, k = 6 };
    static double Ad[m * m], wd[m], Vd[m * m];
    static float As[m * m], ws[k], Vs[k * m];
    for (int i = 0; i < m; i++)
        for (int j = 0; j <= i; j++) {
            double v = aim_rng_normal(&r);
            As[i * m + j] = As[j * m + i] = (float)v;
            Ad[i * m + j] = Ad[j * m + i] = (float)v;
        }
    aim_eigh_jacobi(Ad, m, wd, Vd);
    rc = aim_eigh_top(As, m, k, ws, Vs, &e);
    werr = 0;
    double verr = 0;
    for (int i = 0; i < k && rc == 0; i++) {
        werr = tap_worse(werr, fabs(ws[i] - wd[i]));
        for (int j = 0; j < m; j++)
            verr = tap_worse(verr, fabs(Vs[i * m + j] - Vd[i * m + j]));
    }
    tap_ok(rc == 0 && werr < 1e-4 && verr < 1e-4,
           "aim_eigh_top matches Jacobi on a random symmetric 40x40 (top 6: eigenvalues %.2g, "
           "vectors with signs %.2g)", werr, verr);
    double tr = 0, sw = 0;
    for (int i = 0; i < m; i++) {
        tr += Ad[i * m + i];
        sw += wd[i];
    }
    tap_ok(fabs(tr - sw) < 1e-9, "Jacobi: the eigenvalues sum to the trace");
    static float wv[m];
    rc = aim_eigh_top(As, m, m, wv, NULL, &e);
    werr = 0;
    for (int i = 0; i < m && rc == 0; i++)
        werr = tap_worse(werr, fabs(wv[i] - wd[i]));
    tap_ok(rc == 0 && werr < 1e-4, "aim_eigh_top without vectors: all 40 eigenvalues (%.2g)",
           werr);
    tap_ok(aim_eigh_top(As, m, 0, ws, Vs, &e) == -1 && tap_contains(e.msg, "eigenpairs"),
           "aim_eigh_top refuses k = 0: %s", e.msg);
}

/* ------------------------------------------------------------ PCA */
/* n rows with sample covariance exactly sum_j var[j] q_j q_j^T: the columns
 * of a Sylvester-Hadamard matrix (orthogonal, zero mean, entries +-1) as
 * coefficients */
static void known_pca(int n, int D, int nd, const double *var, const double *Q,
                      const double *mean, float *X, double *coef)
{
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++)
            X[(size_t)i * D + d] = (float)mean[d];
    for (int j = 0; j < nd; j++) {
        int col = j + 1; /* column 0 is all ones */
        for (int i = 0; i < n; i++) {
            double h = __builtin_popcount((unsigned)(i & col)) & 1 ? -1 : 1;
            double z = h * sqrt((double)(n - 1) / n) * sqrt(var[j]); /* sum z^2 = (n-1) var */
            coef[(size_t)i * nd + j] = z;
            for (int d = 0; d < D; d++)
                X[(size_t)i * D + d] += (float)(z * Q[(size_t)j * D + d]);
        }
    }
}

static void test_pca(void)
{
    aim_rng r;
    aim_rng_seed(&r, 11);
    enum { n = 16, D = 24, nd = 5, k = 3 };
    static double Q[D * D], mean[D], coef[n * nd];
    static float X[n * D], mu[D], comps[k * D], var[k], proj[n * k];
    double v[nd] = {9, 4, 1, 0.25, 0.01};
    random_orthogonal(Q, D, &r);
    for (int d = 0; d < D; d++)
        mean[d] = 3 + aim_rng_normal(&r);
    known_pca(n, D, nd, v, Q, mean, X, coef);
    aim_err e;
    double total = 0;
    int rc = aim_pca_fit(X, n, D, k, mu, comps, var, &total, &e);
    tap_ok(rc == 0, "pca of 16 rows with known directions and variances 9, 4, 1, 0.25, 0.01");
    double merr = 0, verr = 0, cmin = 1;
    for (int d = 0; d < D; d++)
        merr = tap_worse(merr, fabs(mu[d] - mean[d]));
    for (int j = 0; j < k; j++) {
        verr = tap_worse(verr, fabs(var[j] - v[j]) / v[j]);
        cmin = fmin(cmin, abs_cos(comps + j * D, Q + j * D, D));
    }
    tap_ok(merr < 1e-5, "pca: the mean (error %.2g)", merr);
    tap_ok(verr < 1e-4, "pca: the variances 9, 4, 1 along the first 3 components (relative "
                        "error %.2g)", verr);
    tap_ok(cmin > 1 - 1e-5, "pca: the components are the known directions (worst |cos| %.8f)",
           cmin);
    tap_ok(fabs(total - 14.26) < 1e-3, "pca: the total variance 14.26 (%.6f)", total);
    int signs = 1;
    for (int j = 0; j < k; j++)
        signs &= largest_positive(comps + j * D, D);
    tap_ok(signs, "pca: each component's largest entry is positive");
    aim_pca_project(X, n, D, k, mu, comps, proj);
    double perr = 0;
    for (int j = 0; j < k; j++) {
        /* the projection is the coefficient, up to the component's sign */
        double sgn = 0;
        for (int d = 0; d < D; d++)
            sgn += comps[j * D + d] * Q[j * D + d];
        sgn = sgn > 0 ? 1 : -1;
        for (int i = 0; i < n; i++)
            perr = tap_worse(perr, fabs(proj[i * k + j] - sgn * coef[i * nd + j]));
    }
    tap_ok(perr < 1e-4, "pca: the projections are the coefficients the data was built from "
                        "(error %.2g)", perr);
    double pm = 0;
    for (int i = 0; i < n; i++)
        pm += proj[i * k];
    tap_ok(fabs(pm) < 1e-4, "pca: the projections have mean 0 (%.2g)", pm / n);

    tap_ok(aim_pca_fit(X, 1, D, k, mu, comps, var, NULL, &e) == -1 &&
               tap_contains(e.msg, "at least 2"), "pca refuses one row: %s", e.msg);
    tap_ok(aim_pca_fit(X, n, D, D + 1, mu, comps, var, NULL, &e) == -1 &&
               tap_contains(e.msg, "components"), "pca refuses k > D: %s", e.msg);
}

/* ------------------------------------------------------------ statistics */
static int stats_of(const float *X, int B, int N, int D, aim_token_stats *s)
{
    aim_err e;
    return aim_token_stats_compute(X, B, N, D, s, &e);
}

static void test_stats(void)
{
    aim_token_stats s;
    const float x1[] = {3, 4, 0, 0, 0, 5}; /* two orthogonal tokens of norm 5 */
    int rc = stats_of(x1, 1, 2, 3, &s);
    tap_ok(rc == 0 && tap_close(s.norm, 5, 1e-9, 1e-9) && fabs(s.cosine) < 1e-12 &&
               tap_close(s.erank, 2, 1e-6, 1e-6),
           "stats of (3,4,0), (0,0,5): norm 5, cosine 0, effective rank 2 (%g %g %g)", s.norm,
           s.cosine, s.erank);
    const float x2[] = {1, 0, 2, 0}; /* parallel tokens: rank one */
    rc = stats_of(x2, 1, 2, 2, &s);
    tap_ok(rc == 0 && tap_close(s.norm, 1.5, 1e-9, 1e-9) && tap_close(s.cosine, 1, 1e-9, 1e-9) &&
               tap_close(s.erank, 1, 1e-6, 1e-6),
           "stats of (1,0), (2,0): norm 1.5, cosine 1, effective rank 1 (%g %g %g)", s.norm,
           s.cosine, s.erank);
    const float x3[] = {1, 0, 0, 2}; /* singular values 2 and 1 */
    double h = -(2.0 / 3 * log(2.0 / 3) + 1.0 / 3 * log(1.0 / 3));
    rc = stats_of(x3, 1, 2, 2, &s);
    tap_ok(rc == 0 && fabs(s.cosine) < 1e-12 && tap_close(s.erank, exp(h), 1e-6, 1e-6),
           "stats of (1,0), (0,2): cosine 0, effective rank exp(H(2/3, 1/3)) = %.6f (%.6f)",
           exp(h), s.erank);
    /* N > D: the rank comes from X^T X; cosines 0, -1, 0 over the pairs */
    const float x4[] = {1, 0, 0, 1, -1, 0};
    double p1 = sqrt(2.0) / (1 + sqrt(2.0)), p2 = 1 / (1 + sqrt(2.0));
    double er4 = exp(-(p1 * log(p1) + p2 * log(p2)));
    rc = stats_of(x4, 1, 3, 2, &s);
    tap_ok(rc == 0 && tap_close(s.norm, 1, 1e-9, 1e-9) &&
               tap_close(s.cosine, -1.0 / 3, 1e-9, 1e-9) && tap_close(s.erank, er4, 1e-6, 1e-6),
           "stats of (1,0), (0,1), (-1,0): norm 1, cosine -1/3, effective rank %.6f from "
           "singular values sqrt 2, 1 (%g %g %.6f)", er4, s.norm, s.cosine, s.erank);
    /* two images: every statistic is the mean over images */
    const float x12[] = {3, 4, 0, 0, 0, 5, 1, 0, 0, 2, 0, 0};
    rc = stats_of(x12, 2, 2, 3, &s);
    tap_ok(rc == 0 && tap_close(s.norm, 3.25, 1e-9, 1e-9) && tap_close(s.cosine, 0.5, 1e-9, 1e-9) &&
               tap_close(s.erank, 1.5, 1e-6, 1e-6),
           "stats of two images: means of theirs (norm 3.25, cosine 0.5, rank 1.5: %g %g %g)",
           s.norm, s.cosine, s.erank);
    const float x5[] = {0, 0, 1, 0, 1, 0}; /* a zero token counts as cosine 0 */
    rc = stats_of(x5, 1, 3, 2, &s);
    tap_ok(rc == 0 && tap_close(s.norm, 2.0 / 3, 1e-9, 1e-9) &&
               tap_close(s.cosine, 1.0 / 3, 1e-9, 1e-9) && tap_close(s.erank, 1, 1e-6, 1e-6),
           "stats with a zero token: norm 2/3, cosine 1/3, rank 1 (%g %g %g)", s.norm, s.cosine,
           s.erank);
    const float x6[] = {0, 0, 0, 0};
    rc = stats_of(x6, 1, 2, 2, &s);
    tap_ok(rc == 0 && s.norm == 0 && s.cosine == 0 && s.erank == 0,
           "stats of an all-zero matrix: 0, 0, effective rank 0");
    /* the effective rank of an orthonormal N x D set is N */
    enum { N = 6, D = 10 };
    double Q[D * D];
    float xo[N * D];
    aim_rng r;
    aim_rng_seed(&r, 5);
    random_orthogonal(Q, D, &r);
    for (int i = 0; i < N * D; i++)
        xo[i] = (float)(2.5 * Q[i]);
    rc = stats_of(xo, 1, N, D, &s);
    tap_ok(rc == 0 && tap_close(s.erank, N, 1e-5, 1e-5) && fabs(s.cosine) < 1e-6 &&
               tap_close(s.norm, 2.5, 1e-6, 1e-6),
           "stats of 6 orthogonal tokens of norm 2.5: rank 6, cosine 0 (%.6f %.2g)", s.erank,
           s.cosine);
    aim_err e;
    tap_ok(aim_token_stats_compute(x1, 1, 1, 6, &s, &e) == -1 && tap_contains(e.msg, "token"),
           "stats refuse a single token: %s", e.msg);
}

/* ------------------------------------------------------------ per-patch loss */
static void test_patch_loss(void)
{
    aim_rng r;
    aim_rng_seed(&r, 3);
    enum { B = 3, N = 9, P = 5 };
    float pred[B * N * P], tgt[B * N * P], err[B * N];
    randn(pred, B * N * P, &r, 1);
    randn(tgt, B * N * P, &r, 1);
    int32_t pre[B] = {1, 4, 8};
    loss_per_patch(err, pred, tgt, pre, B, N, P);
    double sum = 0;
    int cnt = 0, nan_ok = 1;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < N; j++) {
            float v = err[b * N + j];
            if (j < pre[b]) {
                nan_ok &= isnan(v);
            } else {
                sum += v;
                cnt++;
            }
        }
    float loss = loss_forward(pred, tgt, pre, B, N, P);
    tap_ok(nan_ok && cnt == (N - 1) + (N - 4) + (N - 8),
           "loss_per_patch: NaN before the prefix, a value from it on");
    tap_ok(tap_close(sum / cnt, loss, 1e-6, 0), "loss_per_patch: its mean is loss_forward "
                                                "(%.7f, %.7f)", sum / cnt, loss);
    double manual = 0;
    for (int k = 0; k < P; k++) {
        double d = pred[(1 * N + 5) * P + k] - tgt[(1 * N + 6) * P + k];
        manual += d * d / P;
    }
    tap_ok(tap_close(err[1 * N + 6], manual, 1e-6, 0),
           "loss_per_patch: patch 6 of image 2 is the error of row 5's prediction");
}

/* ------------------------------------------------------------ on a model */
static void test_model(void)
{
    aim_err e;
    aim_config c;
    aim_config_preset("micro", &c, &e);
    aim_model *m = aim_model_new(&c, 9, &e);
    int N = aim_config_tokens(&c), D = c.width, L = c.depth, NH = c.heads;
    size_t img = (size_t)c.channels * c.image * c.image;
    enum { B = 70 }; /* more than one chunk of 64 */
    float *x = malloc(B * img * sizeof *x);
    aim_rng r;
    aim_rng_seed(&r, 21);
    randn(x, B * img, &r, 1);

    /* statistics in chunks equal the statistics of all images at once */
    aim_token_stats st[8], whole;
    int rc = aim_inspect_stats(m, x, B, st, &e);
    float *feats = malloc((size_t)B * N * D * sizeof *feats);
    double worst = 0;
    for (int l = 1; l <= L && rc == 0; l++) {
        rc = aim_model_features(m, x, B, &l, 1, feats, &e);
        rc |= aim_token_stats_compute(feats, B, N, D, &whole, &e);
        worst = tap_worse(worst, fabs(st[l - 1].norm - whole.norm) / whole.norm);
        worst = tap_worse(worst, fabs(st[l - 1].cosine - whole.cosine));
        worst = tap_worse(worst, fabs(st[l - 1].erank - whole.erank) / whole.erank);
    }
    /* (a trunk pass over 64 images rounds a little differently from one over 70: the GEMMs
     * have other sizes) */
    tap_ok(rc == 0 && worst < 2e-5, "aim_inspect_stats over 70 images in chunks of 64 equals "
                                    "the statistics of all 70 (%.2g)", worst);
    tap_ok(st[0].erank >= 1 && st[0].erank <= N && st[0].cosine <= 1 && st[0].norm > 0,
           "block statistics are in range (norm %.3f, cosine %.3f, rank %.2f of %d)", st[0].norm,
           st[0].cosine, st[0].erank, N);

    /* every block at once: each block's features */
    float *all = malloc((size_t)L * B * N * D * sizeof *all);
    rc = aim_inspect_trunk(m, x, B, all, &e);
    double ferr = 0;
    for (int l = 1; l <= L && rc == 0; l++) {
        rc = aim_model_features(m, x, B, &l, 1, feats, &e);
        for (size_t i = 0; i < (size_t)B * N * D; i++)
            ferr = tap_worse(ferr, fabs(all[(size_t)(l - 1) * B * N * D + i] - feats[i]));
    }
    tap_ok(rc == 0 && ferr < 1e-4, "aim_inspect_trunk: every block's output, as "
                                   "aim_model_features gives it (%.2g)", ferr);
    free(all);

    /* PCA of a block: the features' PCA */
    int k = 3, blk = 2;
    float *proj = malloc((size_t)B * N * k * sizeof *proj), *proj2 = malloc((size_t)B * N * k * 4);
    float mean[64], comps[3 * 64], var[3], mean2[64], comps2[3 * 64], var2[3];
    rc = aim_inspect_pca(m, x, B, blk, k, proj, mean, comps, var, NULL, &e);
    rc |= aim_model_features(m, x, B, &blk, 1, feats, &e);
    rc |= aim_pca_fit(feats, (int64_t)B * N, D, k, mean2, comps2, var2, NULL, &e);
    aim_pca_project(feats, (int64_t)B * N, D, k, mean2, comps2, proj2);
    double perr = 0, pmax = 0, verr = 0;
    for (int i = 0; i < B * N * k; i++) {
        perr = tap_worse(perr, fabs(proj[i] - proj2[i]));
        pmax = tap_worse(pmax, fabs(proj2[i]));
    }
    for (int j = 0; j < k; j++)
        verr = tap_worse(verr, fabs(var[j] - var2[j]) / var2[j]);
    tap_ok(rc == 0 && perr < 1e-4 * pmax && verr < 1e-4,
           "aim_inspect_pca is the PCA of the block's features (projections %.2g of %.2g, "
           "variances %.2g)", perr, pmax, verr);
    tap_ok(aim_inspect_pca(m, x, B, 3, k, proj, NULL, NULL, var, NULL, &e) == -1 &&
               tap_contains(e.msg, "block 3"), "aim_inspect_pca refuses block 3 of 2: %s", e.msg);

    /* the error map: its mean is the model's loss */
    int32_t pre[B];
    for (int b = 0; b < B; b++)
        pre[b] = 1 + b % (N - 1);
    float *err = malloc((size_t)B * N * sizeof *err);
    rc = aim_inspect_patch_loss(m, x, B, pre, err, &e);
    double sum = 0, cnt = 0, lsum = 0, lcnt = 0;
    for (int i = 0; i < B * N; i++)
        if (!isnan(err[i])) {
            sum += err[i];
            cnt++;
        }
    for (int b0 = 0; b0 < B; b0 += 10) { /* the loss of all images, in pieces */
        int nb = B - b0 < 10 ? B - b0 : 10;
        aim_model_reserve(m, nb, &e);
        float l = aim_model_loss(m, x + b0 * img, pre + b0, nb);
        double t = 0;
        for (int b = b0; b < b0 + nb; b++)
            t += N - pre[b];
        lsum += l * t;
        lcnt += t;
    }
    tap_ok(rc == 0 && tap_close(sum / cnt, lsum / lcnt, 1e-5, 0),
           "aim_inspect_patch_loss: the mean of the map is the AIM loss (%.6f, %.6f)", sum / cnt,
           lsum / lcnt);
    pre[3] = N;
    tap_ok(aim_inspect_patch_loss(m, x, B, pre, err, &e) == -1 && tap_contains(e.msg, "prefix"),
           "aim_inspect_patch_loss refuses prefix N: %s", e.msg);

    /* attention of an attentive probe on blocks 1,2 */
    aim_probe *p = aim_probe_new(AIM_PROBE_ATTENTIVE, N, D, NH, 4, 2, &e);
    aim_params *pp = aim_probe_params(p);
    float *q = pp->data + pp->t[aim_params_find(pp, "head.cls_token")].offset;
    float *wk = pp->data + pp->t[aim_params_find(pp, "head.k.weight")].offset;
    float *rm = pp->data + pp->t[aim_params_find(pp, "head.bn.running_mean")].offset;
    float *rv = pp->data + pp->t[aim_params_find(pp, "head.bn.running_var")].offset;
    randn(q, D, &r, 1); /* larger than the init's 0.02: peaked attention */
    for (int d = 0; d < D; d++) {
        rm[d] = (float)(0.3 * aim_rng_normal(&r));
        rv[d] = (float)(0.5 + aim_rng_uniform(&r));
    }
    int blocks[2] = {1, 2};
    float *att = malloc((size_t)B * NH * N * sizeof *att);
    rc = aim_inspect_attention(m, p, blocks, 2, x, B, att, &e);
    double srow = 0, neg = 0;
    int finite = 1; /* fmin and fmax drop NaNs: a NaN weight would pass */
    for (int i = 0; i < B * NH; i++) {
        double s = 0;
        for (int n = 0; n < N; n++) {
            s += att[i * N + n];
            neg = fmin(neg, att[i * N + n]);
            finite &= isfinite(att[i * N + n]) != 0;
        }
        srow = tap_worse(srow, fabs(s - 1));
    }
    tap_ok(rc == 0 && finite && srow < 1e-5 && neg >= 0,
           "attention: every head's weights over the %d patches are >= 0 and sum to 1 (worst "
           "%.2g)", N, srow);
    /* naive: features, BatchNorm with running statistics, k, softmax of q.k/sqrt(hd) */
    rc = aim_model_features(m, x, B, blocks, 2, feats, &e);
    int hd = D / NH;
    double aerr = 0, amax = 0;
    double *kk = malloc((size_t)N * D * sizeof *kk), *sc = malloc((size_t)N * sizeof *sc);
    for (int b = 0; b < B; b++) {
        for (int n = 0; n < N; n++)
            for (int o = 0; o < D; o++) {
                double s = 0;
                for (int i = 0; i < D; i++) {
                    double xn = (feats[((size_t)b * N + n) * D + i] - rm[i]) / sqrt(rv[i] + 1e-6);
                    s += wk[o * D + i] * xn;
                }
                kk[n * D + o] = s;
            }
        for (int h = 0; h < NH; h++) {
            double mx = -INFINITY, z = 0;
            for (int n = 0; n < N; n++) {
                double s = 0;
                for (int i = 0; i < hd; i++)
                    s += q[h * hd + i] * kk[n * D + h * hd + i];
                sc[n] = s / sqrt((double)hd);
                mx = tap_worse(mx, sc[n]);
            }
            for (int n = 0; n < N; n++)
                z += exp(sc[n] - mx);
            for (int n = 0; n < N; n++) {
                double a = exp(sc[n] - mx) / z;
                aerr = tap_worse(aerr, fabs(att[((size_t)b * NH + h) * N + n] - a));
                amax = tap_worse(amax, a);
            }
        }
    }
    tap_ok(rc == 0 && aerr < 2e-6,
           "attention equals a naive double-precision computation (max error %.2g; largest "
           "weight %.3f)", aerr, amax);
    tap_ok(amax > 1.5 / N, "... and the test's attention is not uniform (largest weight %.3f > "
                           "1.5/N)", amax);

    /* probe files: saved with the model, loaded back */
    const char *path = tap_path("probed.safetensors");
    rc = aim_probe_save_with_model(path, m, p, "1,2", &e);
    int lb[AIM_PROBE_MAX_BLOCKS], nlb = 0;
    aim_probe *p2 = rc == 0 ? aim_probe_load(path, lb, &nlb, &e) : NULL;
    int eq = p2 && nlb == 2 && lb[0] == 1 && lb[1] == 2 &&
             aim_probe_get_kind(p2) == AIM_PROBE_ATTENTIVE && aim_probe_classes(p2) == 4 &&
             aim_probe_params(p2)->total == pp->total &&
             !memcmp(aim_probe_params(p2)->data, pp->data, pp->total * sizeof(float));
    tap_ok(eq, "aim_probe_load: the probe saved with the model, its blocks 1,2 and kind");
    float *att2 = malloc((size_t)B * NH * N * sizeof *att2);
    tap_ok(p2 && aim_inspect_attention(m, p2, lb, nlb, x, B, att2, &e) == 0 &&
               !memcmp(att, att2, (size_t)B * NH * N * sizeof *att),
           "... and gives the same attention maps");
    aim_probe_free(p2);
    const char *bare = tap_path("bare.safetensors");
    aim_model_save(m, bare, &e);
    tap_ok(aim_probe_load(bare, lb, &nlb, &e) == NULL && tap_contains(e.msg, "no probe") &&
               tap_contains(e.msg, "bare.safetensors"),
           "aim_probe_load of weights without a probe: %s", e.msg);
    tap_ok(aim_probe_load(tap_path("none.safetensors"), lb, &nlb, &e) == NULL &&
               tap_contains(e.msg, "none.safetensors"), "aim_probe_load of a missing file: %s",
           e.msg);

    aim_probe *lp = aim_probe_new(AIM_PROBE_LINEAR, N, D, 1, 4, 2, &e);
    tap_ok(aim_inspect_attention(m, lp, blocks, 2, x, B, att, &e) == -1 &&
               tap_contains(e.msg, "linear"), "attention of a linear probe: %s", e.msg);
    aim_probe *wp = aim_probe_new(AIM_PROBE_ATTENTIVE, N + 1, D, NH, 4, 2, &e);
    tap_ok(aim_inspect_attention(m, wp, blocks, 2, x, B, att, &e) == -1 &&
               tap_contains(e.msg, "tokens"), "attention of a probe for other sizes: %s", e.msg);
    aim_probe_free(lp);
    aim_probe_free(wp);
    aim_probe_free(p);
    free(kk);
    free(sc);
    free(att);
    free(att2);
    free(err);
    free(proj);
    free(proj2);
    free(feats);
    free(x);
    aim_model_free(m);
}

/* ------------------------------------------------------------ colours */
static void test_colours(void)
{
    const float proj[] = {0, 10, -1, 1, 20, -1, 2, 30, -1}; /* [3, 3]: last column constant */
    uint8_t rgb[9];
    aim_pca_rgb(proj, 3, 3, rgb);
    tap_ok(rgb[0] == 0 && rgb[3] == 128 && rgb[6] == 255 && rgb[1] == 0 && rgb[7] == 255 &&
               rgb[2] == 128 && rgb[5] == 128,
           "aim_pca_rgb: each component min-max scaled to 0..255, a constant one mid grey");
    const float one[] = {1, 3};
    aim_pca_rgb(one, 2, 1, rgb);
    tap_ok(rgb[0] == 0 && rgb[1] == 0 && rgb[2] == 0 && rgb[3] == 255 && rgb[4] == 255 &&
               rgb[5] == 255, "aim_pca_rgb with one component is grey");
    tap_ok(aim_heat_rgb(0) == 0x000004 && aim_heat_rgb(1) == 0xfcffa4 &&
               aim_heat_rgb(2) == 0xfcffa4 && aim_heat_rgb(-1) == 0x000004 &&
               aim_heat_rgb(NAN) == 0x808080,
           "aim_heat_rgb: inferno's ends, clamped, NaN grey");
    int mono = 1;
    double prev = -1;
    for (int i = 0; i <= 100; i++) {
        uint32_t c = aim_heat_rgb(i / 100.0f);
        double lum = 0.299 * (c >> 16) + 0.587 * (c >> 8 & 255) + 0.114 * (c & 255);
        mono &= lum >= prev;
        prev = lum;
    }
    tap_ok(mono, "aim_heat_rgb: brightness grows with the value");
}

/* aim_inspect_blocks: one trunk pass and block by block (the memory limit)
 * agree; aim_inspect_maps adds the error map */
static void test_blocks(void)
{
    aim_err e = {{0}};
    aim_config c;
    aim_config_preset("micro", &c, &e);
    aim_model *m = aim_model_new(&c, 5, &e);
    int N = aim_config_tokens(&c), L = c.depth, k = 3;
    size_t img = (size_t)c.channels * c.image * c.image;
    enum { B = 6 };
    float *x = malloc(B * img * sizeof *x);
    aim_rng r;
    aim_rng_seed(&r, 4);
    randn(x, B * img, &r, 1);
    size_t np = (size_t)L * B * N * k;
    float *p1 = malloc(np * sizeof *p1), *p2 = malloc(np * sizeof *p2);
    float e1[64], e2[64];
    aim_token_stats s1[8], s2[8];
    int rc = aim_inspect_blocks(m, x, B, k, AIM_INSPECT_ONE_PASS_BYTES, p1, e1, s1, &e);
    rc |= aim_inspect_blocks(m, x, B, k, 0, p2, e2, s2, &e);
    double worst = 0;
    for (size_t i = 0; i < np; i++)
        worst = tap_worse(worst, fabs(p1[i] - p2[i]));
    for (int i = 0; i < L * k; i++)
        worst = tap_worse(worst, fabs(e1[i] - e2[i]));
    for (int l = 0; l < L; l++)
        worst = tap_worse(worst, fabs(s1[l].erank - s2[l].erank) / s1[l].erank);
    tap_ok(rc == 0 && worst < 1e-4,
           "aim_inspect_blocks: one pass and block by block (max_bytes 0) agree (%.2g)", worst);
    tap_ok(aim_inspect_blocks(m, x, B, c.width + 1, 0, p2, e2, s2, &e) == -1 &&
               tap_contains(e.msg, "principal components"),
           "more components than the width is refused: %s", e.msg);
    tap_ok(aim_inspect_blocks(m, x, 0, k, 0, p2, e2, s2, &e) == -1 &&
               tap_contains(e.msg, "at least 2 tokens"),
           "no images is refused: %s", e.msg);
    float *err = malloc((size_t)B * N * sizeof *err);
    rc = aim_inspect_maps(m, x, B, k, 2, NULL, NULL, 0, p2, e2, s2, err, NULL, &e);
    int nan_ok = 1;
    for (int b = 0; b < B; b++)
        nan_ok &= isnan(err[b * N]) && isnan(err[b * N + 1]) && !isnan(err[b * N + 2]);
    tap_ok(rc == 0 && nan_ok && p2[0] == p1[0], "aim_inspect_maps: blocks and the error map "
                                                "from prefix 2 (NaN before it)");
    float v[4] = {1, NAN, 3, NAN}, none[2] = {NAN, NAN};
    tap_ok(aim_nanmean(v, 4) == 2 && isnan(aim_nanmean(none, 2)) && isnan(aim_nanmean(v, 0)),
           "aim_nanmean skips NaN");
    free(err);
    free(p1);
    free(p2);
    free(x);
    aim_model_free(m);
}

/* the pixels the views show: un-normalised, box-filtered bytes */
static void test_pixels(void)
{
    aim_config c = {0};
    c.channels = 1;
    c.nmean = 1;
    c.mean[0] = 0.5f;
    c.std[0] = 0.25f;
    tap_ok(aim_pixel_unnorm(&c, 0, 0) == 0.5f && aim_pixel_unnorm(&c, 4, 0) == 1 &&
               aim_pixel_unnorm(&c, -4, 0) == 0 && aim_pixel_unnorm(&c, 1, 1) == 1,
           "aim_pixel_unnorm undoes the statistics and clamps");
    tap_ok(aim_shrink_factor(28, 32) == 1 && aim_shrink_factor(32, 32) == 1 &&
               aim_shrink_factor(64, 32) == 2 && aim_shrink_factor(65, 32) == 3,
           "aim_shrink_factor: ceil(H / side)");
    /* a 4x4 image in [0,1] by 2x2 boxes */
    float x[2][16];
    for (int i = 0; i < 16; i++) {
        x[0][i] = (float)(i % 4 < 2 ? 0 : 1) * (i < 8 ? 1.0f : 0.5f);
        x[1][i] = 0.25f;
    }
    uint8_t out[2][8];
    memset(out, 7, sizeof out);
    aim_image_shrink_u8(NULL, x[0], 2, 1, 4, 2, out[0], 8);
    tap_ok(out[0][0] == 0 && out[0][1] == 255 && out[0][2] == 0 && out[0][3] == 128 &&
               out[0][4] == 7 && out[1][0] == 64 && out[1][3] == 64,
           "aim_image_shrink_u8: box means as bytes (%d %d %d %d), each image at its stride",
           out[0][0], out[0][1], out[0][2], out[0][3]);
    float z[16] = {0};
    aim_image_shrink_u8(&c, z, 1, 1, 4, 4, out[0], 0);
    tap_ok(out[0][0] == 128, "with a config the statistics are undone first (0 -> 0.5 -> %d)",
           out[0][0]);
}

/* aim_recon_pick: one image per class in class order, normalised */
static void test_recon_pick(void)
{
    aim_config c = {0};
    c.channels = 1;
    c.image = 2;
    c.nmean = 1;
    c.mean[0] = 0.5f;
    c.std[0] = 0.5f;
    aim_dataset *ds = aim_dataset_alloc("synthetic", 6, 1, 2, 2);
    int32_t lab[6] = {2, 2, 0, 1, 0, 2};
    for (int i = 0; i < 6; i++) {
        ds->labels[i] = lab[i];
        memset(ds->images + 4 * i, i * 50, 4);
    }
    ds->nclasses = 3;
    float *rx = NULL;
    int k = aim_recon_pick(ds, &c, 4, &rx);
    /* class 0: image 2, class 1: image 3, class 2: image 0, then image 1 */
    int ok = k == 4 && rx;
    int want[4] = {2, 3, 0, 1};
    for (int j = 0; ok && j < 4; j++)
        ok &= fabsf(rx[j * 4] - ((want[j] * 50) / 255.0f - 0.5f) / 0.5f) < 1e-6f;
    tap_ok(ok, "aim_recon_pick: images 2, 3, 0 (one per class), then 1; normalised");
    free(rx);
    c.image = 3;
    tap_ok(aim_recon_pick(ds, &c, 4, &rx) == 0 && rx == NULL,
           "aim_recon_pick: images of another size give none");
    aim_dataset_free(ds);
}

int main(void)
{
    test_eigh();
    test_pca();
    test_stats();
    test_patch_loss();
    test_model();
    test_colours();
    test_blocks();
    test_pixels();
    test_recon_pick();
    return tap_done();
}
