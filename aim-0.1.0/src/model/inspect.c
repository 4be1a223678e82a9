/*
 * inspect.c - looking inside a trunk (aim/inspect.h): a symmetric
 * eigensolver, PCA of block features, token statistics per block (norm,
 * cosine similarity, effective rank), the per-patch error map, the
 * attentive probe's attention maps, and the colour maps that turn them into
 * pixels. Numbers only: drawing is the TUI's (src/ui/panel_inspect.c) and
 * the PNG writer's business, publishing the Lua layer's (l_inspect.c).
 */
#include "config.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "aim/inspect.h"
#include "aim/nn.h"

#define CHUNK 64 /* images per trunk pass */

/* ------------------------------------------------------------ eigensolver */

/* The BLAS and LAPACK calls here work on small matrices: LAPACK's
 * reductions are long sequences of small BLAS calls, and with more than one
 * BLAS thread each of them waits at a barrier (on a loaded machine a PCA
 * then took seconds instead of milliseconds). OpenBLAS's OpenMP build uses
 * as many threads as the calling thread's OpenMP setting, so these calls run
 * with it set to 1, for this thread only, and put back after. */
static int serial_begin(void)
{
    int n = omp_get_max_threads();
    omp_set_num_threads(1);
    return n;
}

static void serial_end(int n)
{
    omp_set_num_threads(n);
}

#ifdef HAVE_SSYEVR
/* LAPACK (Fortran calling convention, hidden string lengths last) */
extern void ssyevr_(const char *jobz, const char *range, const char *uplo, const int *n,
                    float *a, const int *lda, const float *vl, const float *vu, const int *il,
                    const int *iu, const float *abstol, int *m, float *w, float *z,
                    const int *ldz, int *isuppz, float *work, const int *lwork, int *iwork,
                    const int *liwork, int *info, size_t, size_t, size_t);
#endif

/* flip v [n] so that its entry of largest magnitude (the first of equals) is positive */
static void fix_sign_f(float *v, int n)
{
    int at = 0;
    for (int i = 1; i < n; i++)
        if (fabsf(v[i]) > fabsf(v[at]))
            at = i;
    if (v[at] < 0)
        for (int i = 0; i < n; i++)
            v[i] = -v[i];
}

static void fix_sign_d(double *v, int n)
{
    int at = 0;
    for (int i = 1; i < n; i++)
        if (fabs(v[i]) > fabs(v[at]))
            at = i;
    if (v[at] < 0)
        for (int i = 0; i < n; i++)
            v[i] = -v[i];
}

void aim_eigh_jacobi(const double *A, int n, double *w, double *V)
{
    // A [n,n] symmetric, w [n] descending, V [n,n] rows = eigenvectors
    double *a = aim_xmalloc((size_t)n * n * sizeof *a);
    double *v = aim_xmalloc((size_t)n * n * sizeof *v); /* columns = eigenvectors */
    memcpy(a, A, (size_t)n * n * sizeof *a);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            v[(size_t)i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (int p = 0; p < n; p++) {
            diag += a[(size_t)p * n + p] * a[(size_t)p * n + p];
            for (int q = p + 1; q < n; q++)
                off += a[(size_t)p * n + q] * a[(size_t)p * n + q];
        }
        if (off <= 1e-30 * diag || off == 0)
            break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[(size_t)p * n + q];
                if (apq == 0)
                    continue;
                /* the rotation J (c, s) in the (p, q) plane that zeroes a_pq:
                 * A <- J^T A J, V <- V J */
                double theta = (a[(size_t)q * n + q] - a[(size_t)p * n + p]) / (2 * apq);
                double t = fabs(theta) > 1e150
                               ? 1 / (2 * theta)
                               : (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) { /* columns p, q */
                    double akp = a[(size_t)k * n + p], akq = a[(size_t)k * n + q];
                    a[(size_t)k * n + p] = c * akp - s * akq;
                    a[(size_t)k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q */
                    double apk = a[(size_t)p * n + k], aqk = a[(size_t)q * n + k];
                    a[(size_t)p * n + k] = c * apk - s * aqk;
                    a[(size_t)q * n + k] = s * apk + c * aqk;
                }
                a[(size_t)p * n + q] = a[(size_t)q * n + p] = 0;
                for (int k = 0; k < n; k++) {
                    double vkp = v[(size_t)k * n + p], vkq = v[(size_t)k * n + q];
                    v[(size_t)k * n + p] = c * vkp - s * vkq;
                    v[(size_t)k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    /* eigenvalues descending (selection sort: n is small), vectors as rows */
    int *idx = aim_xmalloc((size_t)n * sizeof *idx);
    for (int i = 0; i < n; i++)
        idx[i] = i;
    for (int i = 0; i < n; i++) {
        int best = i;
        for (int j = i + 1; j < n; j++)
            if (a[(size_t)idx[j] * n + idx[j]] > a[(size_t)idx[best] * n + idx[best]])
                best = j;
        int tmp = idx[i];
        idx[i] = idx[best];
        idx[best] = tmp;
    }
    for (int i = 0; i < n; i++) {
        w[i] = a[(size_t)idx[i] * n + idx[i]];
        for (int k = 0; k < n; k++)
            V[(size_t)i * n + k] = v[(size_t)k * n + idx[i]];
        fix_sign_d(V + (size_t)i * n, n);
    }
    free(idx);
    free(v);
    free(a);
}

int aim_eigh_top(const float *A, int n, int k, float *w, float *V, aim_err *e)
{
    if (n < 1 || k < 1 || k > n)
        return aim_errf(e, "eigh: %d eigenpairs of a %dx%d matrix", k, n, n);
#ifdef HAVE_SSYEVR
    /* A is symmetric, so its row-major layout is also the column-major one */
    float *a = aim_xmalloc((size_t)n * n * sizeof *a);
    memcpy(a, A, (size_t)n * n * sizeof *a);
    float *wa = aim_xmalloc((size_t)n * sizeof *wa);
    float *z = aim_xmalloc((size_t)n * (V ? k : 1) * sizeof *z); /* column j = vector j */
    const char *jobz = V ? "V" : "N";
    int *isuppz = aim_xmalloc(2 * (size_t)k * sizeof *isuppz);
    int il = n - k + 1, iu = n, m = 0, info = 0, lwork = -1, liwork = -1, iwq = 0;
    float vl = 0, vu = 0, abstol = 0, wq = 0;
    int nt = serial_begin();
    ssyevr_(jobz, "I", "L", &n, a, &n, &vl, &vu, &il, &iu, &abstol, &m, wa, z, &n, isuppz, &wq,
            &lwork, &iwq, &liwork, &info, 1, 1, 1);
    if (info == 0) {
        lwork = (int)wq + 1;
        liwork = iwq;
        float *work = aim_xmalloc((size_t)lwork * sizeof *work);
        int *iwork = aim_xmalloc((size_t)liwork * sizeof *iwork);
        ssyevr_(jobz, "I", "L", &n, a, &n, &vl, &vu, &il, &iu, &abstol, &m, wa, z, &n, isuppz,
                work, &lwork, iwork, &liwork, &info, 1, 1, 1);
        free(work);
        free(iwork);
    }
    serial_end(nt);
    int ok = info == 0 && m == k;
    if (ok)
        for (int i = 0; i < k; i++) { /* LAPACK gives them ascending */
            w[i] = wa[k - 1 - i];
            if (!V)
                continue;
            memcpy(V + (size_t)i * n, z + (size_t)(k - 1 - i) * n, (size_t)n * sizeof *V);
            fix_sign_f(V + (size_t)i * n, n);
        }
    free(a);
    free(wa);
    free(z);
    free(isuppz);
    if (!ok)
        return aim_errf(e, "eigh: LAPACK ssyevr failed on a %dx%d matrix (info %d, %d of %d "
                           "eigenvalues)", n, n, info, m, k);
    return 0;
#else
    double *a = aim_xmalloc((size_t)n * n * sizeof *a);
    double *wd = aim_xmalloc((size_t)n * sizeof *wd);
    double *vd = aim_xmalloc((size_t)n * n * sizeof *vd);
    for (size_t i = 0; i < (size_t)n * n; i++)
        a[i] = A[i];
    aim_eigh_jacobi(a, n, wd, vd);
    for (int i = 0; i < k; i++) {
        w[i] = (float)wd[i];
        for (int j = 0; V && j < n; j++)
            V[(size_t)i * n + j] = (float)vd[(size_t)i * n + j];
    }
    free(a);
    free(wd);
    free(vd);
    return 0;
#endif
}

/* ------------------------------------------------------------ PCA */

int aim_pca_fit(const float *X, int64_t n, int D, int k, float *mean, float *comps, float *var,
                double *total, aim_err *e)
{
    // X [n,D], mean [D], comps [k,D], var [k]
    if (n < 2)
        return aim_errf(e, "pca: %lld row(s); at least 2 are needed", (long long)n);
    if (n > INT_MAX) /* cblas takes an int */
        return aim_errf(e, "pca: %lld rows; at most %d", (long long)n, INT_MAX);
    if (k < 1 || k > D)
        return aim_errf(e, "pca: %d components of %d-dimensional rows (1..%d)", k, D, D);
    double *mu = aim_xcalloc((size_t)D, sizeof *mu);
    for (int64_t i = 0; i < n; i++)
        for (int d = 0; d < D; d++)
            mu[d] += X[(size_t)i * D + d];
    for (int d = 0; d < D; d++) {
        mu[d] /= (double)n;
        mean[d] = (float)mu[d];
    }
    float *xc = aim_xmalloc((size_t)n * D * sizeof *xc); /* [n, D] centred */
    for (int64_t i = 0; i < n; i++)
        for (int d = 0; d < D; d++)
            xc[(size_t)i * D + d] = (float)(X[(size_t)i * D + d] - mu[d]);
    float *cov = aim_xmalloc((size_t)D * D * sizeof *cov); /* [D, D] */
    int nt = serial_begin();
    cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, D, (int)n, 1.0f / (float)(n - 1), xc, D,
                0.0f, cov, D);
    serial_end(nt);
    double tr = 0;
    for (int i = 0; i < D; i++) {
        tr += cov[(size_t)i * D + i];
        for (int j = i + 1; j < D; j++)
            cov[(size_t)i * D + j] = cov[(size_t)j * D + i];
    }
    int rc = aim_eigh_top(cov, D, k, var, comps, e);
    for (int i = 0; rc == 0 && i < k; i++)
        var[i] = var[i] > 0 ? var[i] : 0; /* rounding below a zero eigenvalue */
    if (total)
        *total = tr;
    free(cov);
    free(xc);
    free(mu);
    return rc;
}

void aim_pca_project(const float *X, int64_t n, int D, int k, const float *mean,
                     const float *comps, float *out)
{
    // X [n,D], mean [D], comps [k,D], out [n,k]
    for (int64_t i = 0; i < n; i++) {
        const float *x = X + (size_t)i * D;
        for (int j = 0; j < k; j++) {
            const float *c = comps + (size_t)j * D;
            double s = 0;
            for (int d = 0; d < D; d++)
                s += ((double)x[d] - mean[d]) * c[d];
            out[(size_t)i * k + j] = (float)s;
        }
    }
}

/* ------------------------------------------------------------ statistics */

/* effective rank of one token matrix x [N, D] (see inspect.h) */
static int erank_one(const float *x, int N, int D, float *gram, float *w, double *out, aim_err *e)
{
    // gram [r, r] with r = min(N, D): X X^T or X^T X (same non-zero spectrum)
    int r = N <= D ? N : D;
    int nt = serial_begin();
    if (N <= D)
        cblas_ssyrk(CblasRowMajor, CblasLower, CblasNoTrans, N, D, 1.0f, x, D, 0.0f, gram, N);
    else
        cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, D, N, 1.0f, x, D, 0.0f, gram, D);
    serial_end(nt);
    for (int i = 0; i < r; i++)
        for (int j = i + 1; j < r; j++)
            gram[(size_t)i * r + j] = gram[(size_t)j * r + i];
    if (aim_eigh_top(gram, r, r, w, NULL, e) != 0) /* the singular values: no vectors */
        return -1;
    double ssum = 0;
    for (int i = 0; i < r; i++)
        ssum += w[i] > 0 ? sqrt((double)w[i]) : 0;
    if (ssum <= 0) {
        *out = 0;
        return 0;
    }
    double h = 0;
    for (int i = 0; i < r; i++) {
        double p = w[i] > 0 ? sqrt((double)w[i]) / ssum : 0;
        if (p > 0)
            h -= p * log(p);
    }
    *out = exp(h);
    return 0;
}

int aim_token_stats_compute(const float *X, int B, int N, int D, aim_token_stats *s, aim_err *e)
{
    // X [B,N,D]
    memset(s, 0, sizeof *s);
    if (B < 1 || N < 2 || D < 1)
        return aim_errf(e, "stats: %d image(s) of %d token(s) of width %d (at least 1, 2, 1)", B,
                        N, D);
    int r = N <= D ? N : D;
    float *gram = aim_xmalloc((size_t)r * r * sizeof *gram);
    float *w = aim_xmalloc((size_t)r * sizeof *w);
    double *u = aim_xmalloc((size_t)D * sizeof *u);
    double norm = 0, cosine = 0, erank = 0;
    int rc = 0;
    for (int b = 0; b < B && rc == 0; b++) {
        const float *xb = X + (size_t)b * N * D;
        /* sum_{i != j} cos(x_i, x_j) = |sum_i x_i/|x_i||^2 - (non-zero tokens) */
        memset(u, 0, (size_t)D * sizeof *u);
        int nonzero = 0;
        for (int i = 0; i < N; i++) {
            const float *t = xb + (size_t)i * D;
            double q = 0;
            for (int d = 0; d < D; d++)
                q += (double)t[d] * t[d];
            double len = sqrt(q);
            norm += len;
            if (len > 0) {
                nonzero++;
                for (int d = 0; d < D; d++)
                    u[d] += t[d] / len;
            }
        }
        double uu = 0;
        for (int d = 0; d < D; d++)
            uu += u[d] * u[d];
        cosine += (uu - nonzero) / ((double)N * (N - 1));
        double er;
        rc = erank_one(xb, N, D, gram, w, &er, e);
        erank += er;
    }
    if (rc == 0) {
        s->norm = norm / ((double)B * N);
        s->cosine = cosine / B;
        s->erank = erank / B;
    }
    free(gram);
    free(w);
    free(u);
    return rc;
}

/* ------------------------------------------------------------ on a model */

static int no_acts(aim_err *e, int B)
{
    return aim_errf(e, "inspect: cannot allocate the activations for %d images", B);
}

int aim_inspect_trunk(aim_model *m, const float *x, int B, float *feats, aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    int L = c->depth, N = aim_config_tokens(c), D = c->width;
    size_t img = (size_t)c->channels * c->image * c->image, tok = (size_t)N * D;
    for (int b0 = 0; b0 < B; b0 += CHUNK) {
        int nb = B - b0 < CHUNK ? B - b0 : CHUNK;
        if (!aim_model_trunk(m, x + (size_t)b0 * img, NULL, nb, L))
            return no_acts(e, nb);
        for (int l = 1; l <= L; l++)
            memcpy(feats + ((size_t)(l - 1) * B + b0) * tok, aim_model_block_output(m, l),
                   (size_t)nb * tok * sizeof *feats);
    }
    return 0;
}

int aim_inspect_stats(aim_model *m, const float *x, int B, aim_token_stats *stats, aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    int L = c->depth, N = aim_config_tokens(c), D = c->width;
    size_t img = (size_t)c->channels * c->image * c->image;
    double *acc = aim_xcalloc(3 * (size_t)L, sizeof *acc);
    int rc = 0;
    for (int b0 = 0; b0 < B && rc == 0; b0 += CHUNK) {
        int nb = B - b0 < CHUNK ? B - b0 : CHUNK;
        if (!aim_model_trunk(m, x + (size_t)b0 * img, NULL, nb, L)) {
            rc = no_acts(e, nb);
            break;
        }
        for (int l = 1; l <= L && rc == 0; l++) {
            aim_token_stats s = {0, 0, 0};
            rc = aim_token_stats_compute(aim_model_block_output(m, l), nb, N, D, &s, e);
            acc[3 * (l - 1)] += s.norm * nb;
            acc[3 * (l - 1) + 1] += s.cosine * nb;
            acc[3 * (l - 1) + 2] += s.erank * nb;
        }
    }
    for (int l = 0; rc == 0 && l < L; l++)
        stats[l] = (aim_token_stats){acc[3 * l] / B, acc[3 * l + 1] / B, acc[3 * l + 2] / B};
    free(acc);
    return rc;
}

int aim_inspect_pca(aim_model *m, const float *x, int B, int block, int k, float *proj,
                    float *mean, float *comps, float *var, double *total, aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    int N = aim_config_tokens(c), D = c->width;
    if (block < 1 || block > c->depth)
        return aim_errf(e, "pca: block %d is outside 1..%d", block, c->depth);
    if (k < 1 || k > D)
        return aim_errf(e, "pca: %d components of %d-wide features (1..%d)", k, D, D);
    size_t img = (size_t)c->channels * c->image * c->image;
    float *feats = aim_xmalloc((size_t)B * N * D * sizeof *feats); /* [B, N, D] */
    float *mu = mean ? mean : aim_xmalloc((size_t)D * sizeof *mu);
    float *cp = comps ? comps : aim_xmalloc((size_t)k * D * sizeof *cp);
    int rc = 0;
    for (int b0 = 0; b0 < B && rc == 0; b0 += CHUNK) {
        int nb = B - b0 < CHUNK ? B - b0 : CHUNK;
        rc = aim_model_features(m, x + (size_t)b0 * img, nb, &block, 1,
                                feats + (size_t)b0 * N * D, e);
    }
    if (rc == 0)
        rc = aim_pca_fit(feats, (int64_t)B * N, D, k, mu, cp, var, total, e);
    if (rc == 0)
        aim_pca_project(feats, (int64_t)B * N, D, k, mu, cp, proj);
    if (!mean)
        free(mu);
    if (!comps)
        free(cp);
    free(feats);
    return rc;
}

int aim_inspect_patch_loss(aim_model *m, const float *x, int B, const int32_t *prefix,
                           float *err, aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    int N = aim_config_tokens(c), P = aim_config_patch_dim(c);
    for (int b = 0; b < B; b++)
        if (prefix[b] < 1 || prefix[b] > N - 1)
            return aim_errf(e, "patch loss: prefix %d of image %d is outside 1..%d", prefix[b],
                            b + 1, N - 1);
    size_t img = (size_t)c->channels * c->image * c->image;
    for (int b0 = 0; b0 < B; b0 += CHUNK) {
        int nb = B - b0 < CHUNK ? B - b0 : CHUNK;
        if (aim_model_reserve(m, nb, e) != 0)
            return -1;
        aim_model_loss(m, x + (size_t)b0 * img, prefix + b0, nb);
        loss_per_patch(err + (size_t)b0 * N, aim_model_predictions(m), aim_model_targets(m),
                       prefix + b0, nb, N, P);
    }
    return 0;
}

int aim_inspect_attention(aim_model *m, aim_probe *p, const int *blocks, int nblocks,
                          const float *x, int B, float *att, aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    int N = aim_config_tokens(c), D = c->width, pN, pD, NH;
    aim_probe_shape(p, &pN, &pD, &NH);
    if (aim_probe_get_kind(p) != AIM_PROBE_ATTENTIVE)
        return aim_errf(e, "attention: a linear probe has no attention (an attentive one has)");
    if (pN != N || pD != D)
        return aim_errf(e, "attention: the probe takes %d tokens of width %d, the model gives "
                           "%d of width %d", pN, pD, N, D);
    size_t img = (size_t)c->channels * c->image * c->image;
    int cap = B < CHUNK ? B : CHUNK;
    float *feats = aim_xmalloc((size_t)cap * N * D * sizeof *feats); /* [cap, N, D] */
    int rc = 0;
    for (int b0 = 0; b0 < B && rc == 0; b0 += CHUNK) {
        int nb = B - b0 < CHUNK ? B - b0 : CHUNK;
        rc = aim_model_features(m, x + (size_t)b0 * img, nb, blocks, nblocks, feats, e);
        if (rc == 0) {
            aim_probe_forward(p, feats, NULL, nb, 0, NULL);
            memcpy(att + (size_t)b0 * NH * N, aim_probe_attention(p),
                   (size_t)nb * NH * N * sizeof *att);
        }
    }
    free(feats);
    return rc;
}

/* ------------------------------------------------------------ every block */

int aim_inspect_blocks(aim_model *m, const float *x, int B, int k, size_t max_bytes,
                       float *pca, float *expl, aim_token_stats *stats, aim_err *e)
{
    const aim_config *c = aim_model_config(m);
    int N = aim_config_tokens(c), Ld = c->depth, D = c->width;
    size_t tok = (size_t)B * N * D;
    if (k < 1 || k > D)
        return aim_errf(e, "inspect: %d principal components of %d-wide tokens", k, D);
    if ((int64_t)B * N < 2)
        return aim_errf(e, "inspect: PCA needs at least 2 tokens");
    float *var = aim_xmalloc((size_t)k * sizeof *var);
    int rc = 0;
    if ((double)Ld * tok * sizeof(float) > (double)max_bytes) {
        /* block by block: one trunk pass each, memory bounded by one block */
        for (int l = 1; l <= Ld && rc == 0; l++) {
            double total = 0;
            rc = aim_inspect_pca(m, x, B, l, k, pca + (size_t)(l - 1) * B * N * k, NULL, NULL,
                                 var, &total, e);
            for (int j = 0; j < k && rc == 0; j++)
                expl[(size_t)(l - 1) * k + j] = total > 0 ? (float)(var[j] / total) : 0;
        }
        if (rc == 0)
            rc = aim_inspect_stats(m, x, B, stats, e);
        free(var);
        return rc;
    }
    float *feats = aim_xmalloc((size_t)Ld * tok * sizeof *feats); /* [L, B, N, D] */
    float *mean = aim_xmalloc((size_t)D * sizeof *mean);
    float *comps = aim_xmalloc((size_t)k * D * sizeof *comps);
    rc = aim_inspect_trunk(m, x, B, feats, e);
    for (int l = 0; l < Ld && rc == 0; l++) {
        const float *f = feats + (size_t)l * tok;
        double total = 0;
        rc = aim_pca_fit(f, (int64_t)B * N, D, k, mean, comps, var, &total, e);
        if (rc == 0) {
            aim_pca_project(f, (int64_t)B * N, D, k, mean, comps, pca + (size_t)l * B * N * k);
            for (int j = 0; j < k; j++)
                expl[(size_t)l * k + j] = total > 0 ? (float)(var[j] / total) : 0;
            rc = aim_token_stats_compute(f, B, N, D, &stats[l], e);
        }
    }
    free(feats);
    free(mean);
    free(comps);
    free(var);
    return rc;
}

int aim_inspect_maps(aim_model *m, const float *x, int B, int k, int S, aim_probe *p,
                     const int *blocks, int nblocks, float *pca, float *expl,
                     aim_token_stats *stats, float *err, float *att, aim_err *e)
{
    if (aim_inspect_blocks(m, x, B, k, AIM_INSPECT_ONE_PASS_BYTES, pca, expl, stats, e) != 0)
        return -1;
    int32_t *pre = aim_xmalloc((size_t)B * sizeof *pre);
    for (int b = 0; b < B; b++)
        pre[b] = S;
    int rc = aim_inspect_patch_loss(m, x, B, pre, err, e);
    free(pre);
    if (rc == 0 && att)
        rc = aim_inspect_attention(m, p, blocks, nblocks, x, B, att, e);
    return rc;
}

double aim_nanmean(const float *v, size_t n)
{
    double s = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i])) {
            s += v[i];
            k++;
        }
    return k ? s / k : NAN;
}

/* ------------------------------------------------------------ pixels */

float aim_pixel_unnorm(const aim_config *c, float v, int ch)
{
    float mu = ch < c->nmean ? c->mean[ch] : 0, sd = ch < c->nmean ? c->std[ch] : 1;
    v = v * sd + mu;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

int aim_shrink_factor(int H, int side_max)
{
    return (H + side_max - 1) / side_max;
}

void aim_image_shrink_u8(const aim_config *c, const float *x, int n, int C, int H, int f,
                         uint8_t *out, size_t stride)
{
    int side = H / f;
    size_t img = (size_t)C * H * H;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < side; y++)
                for (int xx = 0; xx < side; xx++) {
                    float s = 0;
                    for (int dy = 0; dy < f; dy++)
                        for (int dx = 0; dx < f; dx++) {
                            float v = x[i * img + (size_t)ch * H * H +
                                        (size_t)(y * f + dy) * H + xx * f + dx];
                            s += c ? aim_pixel_unnorm(c, v, ch) : v;
                        }
                    out[i * stride + ((size_t)ch * side + y) * side + xx] =
                        (uint8_t)lrintf(s / (f * f) * 255.0f);
                }
}

/* ------------------------------------------------------------ colours */

void aim_pca_rgb(const float *proj, int64_t n, int k, uint8_t *rgb)
{
    // proj [n,k], rgb [n,3]
    int kc = k < 3 ? k : 3;
    for (int ch = 0; ch < 3; ch++) {
        if (ch >= kc) {
            for (int64_t i = 0; i < n; i++)
                rgb[(size_t)i * 3 + ch] = kc == 1 ? rgb[(size_t)i * 3] : 0;
            continue;
        }
        float lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            float v = proj[(size_t)i * k + ch];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        float span = hi - lo;
        for (int64_t i = 0; i < n; i++) {
            float v = span > 0 ? (proj[(size_t)i * k + ch] - lo) / span : 0.5f;
            rgb[(size_t)i * 3 + ch] = (uint8_t)lrintf(v * 255.0f);
        }
    }
}

uint32_t aim_heat_rgb(float t)
{
    /* five stops of matplotlib's "inferno" */
    static const uint8_t stop[5][3] = {
        {0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164},
    };
    if (isnan(t))
        return 0x808080u;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    float f = t * 4;
    int i = f >= 4 ? 3 : (int)f;
    float u = f - i;
    uint32_t out = 0;
    for (int ch = 0; ch < 3; ch++) {
        float v = stop[i][ch] + u * (stop[i + 1][ch] - stop[i][ch]);
        out = out << 8 | (uint32_t)lrintf(v);
    }
    return out;
}
