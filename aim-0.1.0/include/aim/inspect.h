/*
 * aim/inspect.h - looking inside a trunk: what block l computed for a batch
 * of images. The numerical part of the workbench's Inspect view and of the
 * Lua methods m:pca, m:stats, m:patch_loss (not the drawing):
 *
 *   - a symmetric eigensolver (LAPACK's ssyevr from OpenBLAS when configure
 *     found it, else cyclic Jacobi) and PCA of a set of rows;
 *   - per-block statistics of the token matrix: mean token norm, mean cosine
 *     similarity between tokens (over-smoothing), effective rank;
 *   - the next-patch error map: the pixel head's loss per patch;
 *   - the attentive probe's attention over the patches of an image;
 *   - colour maps that turn these into RGB (PCA as RGB, heat maps).
 *
 * Dimension letters as in aim/model.h: B images, N tokens, D width, L depth.
 * Block features are the raw block outputs (before post_trunk_norm) with no
 * mask, as for probing (shared/AIM.md "Downstream").
 */
#ifndef AIM_INSPECT_H
#define AIM_INSPECT_H

#include <stdint.h>

#include "aim/core.h"
#include "aim/model.h"
#include "aim/probe.h"

/* ------------------------------------------------------------ eigensolver */
/* The k largest eigenvalues of the symmetric n x n matrix A (row-major; only
 * read), descending, into w[k], and their unit eigenvectors as the rows of
 * V [k, n] (V NULL: the values only). Each vector's sign is fixed so that
 * its entry of largest magnitude is positive (deterministic output).
 * 1 <= k <= n. Uses LAPACK's
 * ssyevr when available (HAVE_SSYEVR), else aim_eigh_jacobi. Returns -1
 * with a message if the solver fails. */
int aim_eigh_top(const float *A, int n, int k, float *w, float *V, aim_err *e);
/* The naive reference: cyclic Jacobi rotations in double precision on a copy
 * of A [n, n]; all n eigenpairs, eigenvalues descending in w[n], vectors as
 * the rows of V [n, n], signs as above. */
void aim_eigh_jacobi(const double *A, int n, double *w, double *V);

/* ------------------------------------------------------------ PCA */
/* PCA of the n rows of X [n, D] (n >= 2, 1 <= k <= D): the mean [D], the k
 * leading principal directions comps [k, D] (unit rows, signs as
 * aim_eigh_top), the variance along each var[k] (the covariance's
 * eigenvalues, divisor n - 1, descending) and, if total is not NULL, the
 * total variance (the covariance's trace). */
int aim_pca_fit(const float *X, int64_t n, int D, int k, float *mean, float *comps, float *var,
                double *total, aim_err *e);
/* out [n, k] = (X - mean) comps^T */
void aim_pca_project(const float *X, int64_t n, int D, int k, const float *mean,
                     const float *comps, float *out);

/* ------------------------------------------------------------ statistics */
/* Statistics of B token matrices X_b [N, D] (X is [B, N, D]), each a mean
 * over the images:
 *   norm    the mean Euclidean norm of a token, (1/BN) sum_{b,i} |x_bi|;
 *   cosine  the mean cosine similarity of two different tokens of the same
 *           image: (1/B) sum_b 1/(N(N-1)) sum_{i != j} cos(x_bi, x_bj)
 *           (a zero token counts as cosine 0 with every other); 1 when all
 *           tokens point the same way (over-smoothing), about 0 for
 *           unrelated ones;
 *   erank   the effective rank (Roy & Vetterli, 2007) of X_b, not centred:
 *           with its singular values s_1..s_r (r = min(N, D)) and
 *           p_i = s_i / sum_j s_j, erank = exp(-sum_i p_i ln p_i) (0 ln 0 =
 *           0), between 1 (rank one) and r (all singular values equal);
 *           0 for an all-zero matrix.
 * N >= 2. Returns -1 with a message if an eigensolve fails. */
typedef struct aim_token_stats {
    double norm;
    double cosine;
    double erank;
} aim_token_stats;

int aim_token_stats_compute(const float *X, int B, int N, int D, aim_token_stats *s,
                            aim_err *e);

/* ------------------------------------------------------------ on a model */
/* Every block's raw output for images x [B,C,H,W] (normalised as the model
 * sees them), no mask: feats [L, B, N, D], block l at feats + (l-1) B N D.
 * One trunk pass per 64 images. */
int aim_inspect_trunk(aim_model *m, const float *x, int B, float *feats, aim_err *e);
/* The statistics of every block's output for images x [B,C,H,W] (normalised
 * as the model sees them), no mask: stats[L], block l in stats[l - 1]. One
 * trunk pass per 64 images; every statistic is a mean over images, so the
 * chunks combine exactly. */
int aim_inspect_stats(aim_model *m, const float *x, int B, aim_token_stats *stats, aim_err *e);
/* PCA of block l's (1-based) output tokens over all B*N tokens of x, and
 * those tokens projected: proj [B, N, k]; mean [D], comps [k, D], var [k]
 * and total as aim_pca_fit (mean, comps and total may be NULL). */
int aim_inspect_pca(aim_model *m, const float *x, int B, int block, int k, float *proj,
                    float *mean, float *comps, float *var, double *total, aim_err *e);
/* The next-patch error map: err [B, N], err[b, j] = the pixel head's loss
 * on patch j (mean over its P values of (prediction - target)^2, as in
 * loss_forward), predicted from patches 0..j-1 with prefix S_b (prefix[b]
 * in 1..N-1) for j >= S_b, NaN for j < S_b (no prediction). The mean of the
 * non-NaN entries is the AIM loss. */
int aim_inspect_patch_loss(aim_model *m, const float *x, int B, const int32_t *prefix,
                           float *err, aim_err *e);
/* The attentive probe's attention for images x: the features of the
 * probe's blocks (1-based, averaged), the probe in evaluation mode (running
 * BatchNorm statistics); att [B, NH, N], each row sums to 1. The probe must
 * be attentive and match the model's N and D. */
int aim_inspect_attention(aim_model *m, aim_probe *p, const int *blocks, int nblocks,
                          const float *x, int B, float *att, aim_err *e);

/* ------------------------------------------------------------ every block */
/* What the Inspect view needs of every block, for images x [B,C,H,W]
 * (B*N >= 2, 1 <= k <= D): pca [L, B, N, k] (block l's tokens projected on
 * their own first k principal components, block l at pca + (l-1) B N k),
 * expl [L, k] (each component's share of the block's total variance) and
 * stats [L]. One trunk pass keeping every block's output when that takes at
 * most max_bytes, else one pass per block (memory for one block only); the
 * numbers are the same either way. */
#define AIM_INSPECT_ONE_PASS_BYTES ((size_t)256 << 20)
int aim_inspect_blocks(aim_model *m, const float *x, int B, int k, size_t max_bytes,
                       float *pca, float *expl, aim_token_stats *stats, aim_err *e);
/* aim_inspect_blocks (with AIM_INSPECT_ONE_PASS_BYTES), the error map err
 * [B, N] from prefix S for every image, and with att (not NULL) the
 * attentive probe p's attention att [B, NH, N] (aim_inspect_attention). */
int aim_inspect_maps(aim_model *m, const float *x, int B, int k, int S, aim_probe *p,
                     const int *blocks, int nblocks, float *pca, float *expl,
                     aim_token_stats *stats, float *err, float *att, aim_err *e);
/* The mean of the non-NaN entries of v[n] (NaN when there are none): the
 * AIM loss of an error map. */
double aim_nanmean(const float *v, size_t n);

/* ------------------------------------------------------------ pixels */
/* A value of channel ch normalised with c's statistics, as the eye sees it:
 * the normalisation undone, clamped to [0, 1]. */
float aim_pixel_unnorm(const aim_config *c, float v, int ch);
/* The box-filter factor that brings a side of H pixels to at most side_max:
 * ceil(H / side_max). */
int aim_shrink_factor(int H, int side_max);
/* n images x [n, C, H, H] reduced by f x f box filters to bytes: image i at
 * out + i * stride, [C, H/f, H/f], round(mean * 255). With c, x is
 * normalised with c's statistics (each pixel aim_pixel_unnorm'd before the
 * filter); without, x is in [0, 1] already. */
void aim_image_shrink_u8(const aim_config *c, const float *x, int n, int C, int H, int f,
                         uint8_t *out, size_t stride);

/* ------------------------------------------------------------ colours */
/* RGB bytes for n rows of k projections proj [n, k]: components 1..3 (fewer
 * when k < 3: k = 1 is grey, k = 2 leaves blue at 0) each min-max scaled
 * over the n rows to 0..255; rgb [n, 3]. */
void aim_pca_rgb(const float *proj, int64_t n, int k, uint8_t *rgb);
/* A heat-map colour for t in [0, 1] (black - purple - red - orange - pale
 * yellow, like matplotlib's "inferno"); t outside is clamped, NaN gives mid
 * grey. 0xRRGGBB. */
uint32_t aim_heat_rgb(float t);

#endif
