/*
 * attnpool.c - attention pooling with one learned query (the AIM attentive
 * probe, shared/AIM.md "Downstream"): per image and head, softmax over the
 * N tokens of q . k / sqrt(hd), then the weighted sum of v. No masking.
 * attnpool_forward/backward take k and v already projected; the
 * attnpool_proj_* pairs include the k and v projections and evaluate them
 * in the cheap order (no token is projected; see the banner below), with
 * the per-token order kept as *_naive.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "aim/nn.h"
#include "nn/vec.h"

/* q [D], k/v [B,N,D] -> out [B,D], att [B,NH,N] */
void attnpool_forward(float *out, float *att, const float *q, const float *k, const float *v,
                      int B, int N, int D, int NH)
{
    int hd = D / NH;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(static) if ((long)B * N * D > 65536)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *qh = q + h * hd;
            float *a = att + ((size_t)b * NH + h) * N;
            float mx = -INFINITY;
            for (int n = 0; n < N; n++) {
                const float *kn = k + ((size_t)b * N + n) * D + h * hd;
                float s = 0;
                for (int i = 0; i < hd; i++)
                    s += qh[i] * kn[i];
                a[n] = s * scale;
                mx = a[n] > mx ? a[n] : mx;
            }
            float sum = 0;
            for (int n = 0; n < N; n++) {
                a[n] = expf(a[n] - mx);
                sum += a[n];
            }
            float inv = 1.0f / sum;
            float *o = out + (size_t)b * D + h * hd;
            for (int i = 0; i < hd; i++)
                o[i] = 0;
            for (int n = 0; n < N; n++) {
                a[n] *= inv;
                const float *vn = v + ((size_t)b * N + n) * D + h * hd;
                for (int i = 0; i < hd; i++)
                    o[i] += a[n] * vn[i];
            }
        }
    }
}

void attnpool_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                       const float *k, const float *v, const float *att, int B, int N, int D,
                       int NH)
{
    int hd = D / NH;
    float scale = 1.0f / sqrtf((float)hd);
    /* dq is shared by all images: each head's slice is reduced by the one
     * thread that owns that head, in a fixed order (deterministic) */
#pragma omp parallel for schedule(static) if ((long)B * N * D > 65536)
    for (int h = 0; h < NH; h++) {
        const float *qh = q + h * hd;
        for (int b = 0; b < B; b++) {
            const float *a = att + ((size_t)b * NH + h) * N;
            const float *go = dout + (size_t)b * D + h * hd;
            /* da_n = go . v_n;  ds_n = a_n (da_n - sum_m a_m da_m) */
            double dot = 0;
            for (int n = 0; n < N; n++) {
                const float *vn = v + ((size_t)b * N + n) * D + h * hd;
                float da = 0;
                for (int i = 0; i < hd; i++)
                    da += go[i] * vn[i];
                dot += (double)a[n] * da;
            }
            for (int n = 0; n < N; n++) {
                const float *vn = v + ((size_t)b * N + n) * D + h * hd;
                const float *kn = k + ((size_t)b * N + n) * D + h * hd;
                float da = 0;
                for (int i = 0; i < hd; i++)
                    da += go[i] * vn[i];
                float ds = a[n] * (da - (float)dot) * scale;
                if (dv) {
                    float *dvn = dv + ((size_t)b * N + n) * D + h * hd;
                    for (int i = 0; i < hd; i++)
                        dvn[i] += a[n] * go[i];
                }
                if (dk) {
                    float *dkn = dk + ((size_t)b * N + n) * D + h * hd;
                    for (int i = 0; i < hd; i++)
                        dkn[i] += ds * qh[i];
                }
                if (dq)
                    for (int i = 0; i < hd; i++)
                        dq[h * hd + i] += ds * kn[i];
            }
        }
    }
}

/* ================================================================ with projections
 * The attentive probe's whole attention block from its input x [B,N,D] (the
 * BatchNorm output): k = x Wk^T, v = x Wv^T (Wk, Wv [D,D], no bias), then the
 * pooling above. Two orders of evaluation of the same function:
 *
 * naive (the probe's order until issue 25): project every token, then pool;
 *   6 products of B*N*D*D multiply-adds per training step.
 * fast: nothing is projected per token. With Wk_h, Wv_h the rows
 *   h*hd..(h+1)*hd of Wk, Wv and s = 1/sqrt(hd):
 *     kq_h   = s Wk_h^T q_h                 [D]   (q_h . (Wk x)_h s = kq_h . x)
 *     l_bhn  = kq_h . x_bn,  a_bh = softmax_n(l_bh)
 *     z_bh   = sum_n a_bhn x_bn             [D]
 *     out_bh = Wv_h z_bh                    [hd]  (= sum_n a_bhn (Wv x_bn)_h: Wv is linear)
 *   backward, g = dout:
 *     dWv_h += g_h^T z_h (over b),  dz_bh = Wv_h^T g_bh
 *     da_bhn = dz_bh . x_bn,  dl_bhn = a_bhn (da_bhn - sum_m a_bhm da_bhm)
 *     dkq_h  = sum_bn dl_bhn x_bn
 *     dx_bn += sum_h (a_bhn dz_bh + dl_bhn kq_h)
 *     dq_h  += s Wk_h dkq_h,  dWk_h += s q_h dkq_h^T
 *   B*N*D*NH multiply-adds per product instead of B*N*D*D.
 * (A key bias would add s q_h . bk_h to every logit of head h, the same for
 * every n: it cancels in the softmax, and its gradient s q_h sum_n dl_bhn is
 * exactly 0 since sum_n dl_bhn = 0. AIM.md's probe has no k or v bias.) */

AIM_INLINE float dot8(const float *a, const float *b, int n)
{
    v8f acc = V8(0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        acc += v8_load(a + i) * v8_load(b + i);
    if (i < n)
        acc += v8_load_part(a + i, n - i) * v8_load_part(b + i, n - i);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* y[n] += alpha * x[n] */
AIM_INLINE void axpy8(float *y, float alpha, const float *x, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        v8_store(y + i, v8_load(y + i) + V8(alpha) * v8_load(x + i));
    for (; i < n; i++)
        y[i] += alpha * x[i];
}

/* one image: logits, softmax and z. z [NH,D], a [NH,N], x [N,D], kq [NH,D] */
AIM_VEC static void fwd_image(float *z, float *a, const float *x, const float *kq, int N, int D,
                              int NH)
{
    for (int n = 0; n < N; n++)
        for (int h = 0; h < NH; h++)
            a[h * N + n] = dot8(x + (size_t)n * D, kq + (size_t)h * D, D);
    for (int h = 0; h < NH; h++) {
        float *ah = a + (size_t)h * N;
        float mx = -INFINITY;
        for (int n = 0; n < N; n++)
            mx = ah[n] > mx ? ah[n] : mx;
        float sum = 0;
        for (int n = 0; n < N; n++) {
            ah[n] = expf(ah[n] - mx);
            sum += ah[n];
        }
        float inv = 1.0f / sum;
        for (int n = 0; n < N; n++)
            ah[n] *= inv;
        float *zh = z + (size_t)h * D;
        memset(zh, 0, (size_t)D * sizeof *zh);
        for (int n = 0; n < N; n++)
            axpy8(zh, ah[n], x + (size_t)n * D, D);
    }
}

/* one image: dl [NH, ldl] (this image's N columns), dkq [NH,D] = this image's
 * share of dkq (overwritten), dx [N,D] (may be NULL) += a^T dz + dl^T kq */
AIM_VEC static void bwd_image(float *dx, float *dl, size_t ldl, float *dkq, const float *dz,
                              const float *x, const float *a, const float *kq, int N, int D,
                              int NH)
{
    memset(dkq, 0, (size_t)NH * D * sizeof *dkq);
    for (int h = 0; h < NH; h++) {
        const float *ah = a + (size_t)h * N, *dzh = dz + (size_t)h * D;
        float *dlh = dl + (size_t)h * ldl, *dkqh = dkq + (size_t)h * D;
        double abar = 0;
        for (int n = 0; n < N; n++) {
            dlh[n] = dot8(dzh, x + (size_t)n * D, D);
            abar += (double)ah[n] * dlh[n];
        }
        for (int n = 0; n < N; n++) {
            dlh[n] = ah[n] * (dlh[n] - (float)abar);
            axpy8(dkqh, dlh[n], x + (size_t)n * D, D);
        }
    }
    if (dx)
        for (int n = 0; n < N; n++)
            for (int h = 0; h < NH; h++) {
                float *dxn = dx + (size_t)n * D;
                axpy8(dxn, a[(size_t)h * N + n], dz + (size_t)h * D, D);
                axpy8(dxn, dl[(size_t)h * ldl + n], kq + (size_t)h * D, D);
            }
}

AIM_VEC static void kq_forward(float *kq, const float *q, const float *wk, int D, int NH)
{
    int hd = D / NH;
    float scale = 1.0f / sqrtf((float)hd);
    memset(kq, 0, (size_t)NH * D * sizeof *kq);
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < hd; i++)
            axpy8(kq + (size_t)h * D, scale * q[h * hd + i], wk + (size_t)(h * hd + i) * D, D);
}

AIM_VEC static void kq_backward(float *dq, float *dwk, const float *dkq, const float *q,
                                const float *wk, int D, int NH)
{
    int hd = D / NH;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < hd; i++) {
            int o = h * hd + i;
            if (dq)
                dq[o] += scale * dot8(wk + (size_t)o * D, dkq + (size_t)h * D, D);
            if (dwk)
                axpy8(dwk + (size_t)o * D, scale * q[o], dkq + (size_t)h * D, D);
        }
}

/* Threads: the kernels split the images (and the rows of dWv) among the
 * threads themselves and call sgemm on each share from inside the region,
 * where OpenBLAS runs on the calling thread; small products threaded by
 * OpenBLAS itself were 10-50x slower on a busy 2-core machine. Every
 * value is computed by one thread in a fixed order. */
#define PROJ_CHUNK 16 /* images per task */

void attnpool_proj_forward(float *out, float *att, float *kq, float *z, const float *x,
                           const float *q, const float *wk, const float *wv, int B, int N,
                           int D, int NH)
{
    // out [B,D], att [B,NH,N], kq [NH,D], z [B,NH,D], x [B,N,D], q [D], wk, wv [D,D]
    int hd = D / NH, nchunk = (B + PROJ_CHUNK - 1) / PROJ_CHUNK;
    kq_forward(kq, q, wk, D, NH);
    int par = AIM_PAR((long)B * N * D > 65536);
#pragma omp parallel for schedule(static) if (par)
    for (int c = 0; c < nchunk; c++) {
        int b0 = c * PROJ_CHUNK, nb = B - b0 < PROJ_CHUNK ? B - b0 : PROJ_CHUNK;
        for (int b = b0; b < b0 + nb; b++)
            fwd_image(z + (size_t)b * NH * D, att + (size_t)b * NH * N, x + (size_t)b * N * D,
                      kq, N, D, NH);
        // out_h [nb,hd] = z_h [nb,D] (ld NH*D) @ Wv_h [hd,D]^T
        for (int h = 0; h < NH; h++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, hd, D, 1.0f,
                        z + ((size_t)b0 * NH + h) * D, NH * D, wv + (size_t)h * hd * D, D, 0.0f,
                        out + (size_t)b0 * D + h * hd, D);
    }
}

void attnpool_proj_backward(float *dx, float *dq, float *dwk, float *dwv, float *dz, float *dl,
                            float *dkq, const float *dout, const float *x, const float *q,
                            const float *wk, const float *wv, const float *att,
                            const float *kq, const float *z, int B, int N, int D, int NH)
{
    // dx [B,N,D], dq [D], dwk, dwv [D,D] (+=, each may be NULL); scratch dz [B,NH,D],
    // dl [NH,B*N], dkq [B,NH,D] (every image's share, then their sum in dkq [NH,D]);
    // dout [B,D]; saved att [B,NH,N], kq [NH,D], z [B,NH,D]
    int hd = D / NH, nchunk = (B + PROJ_CHUNK - 1) / PROJ_CHUNK;
    size_t R = (size_t)B * N;
    int need_k = dx || dq || dwk;
    int par = AIM_PAR((long)B * N * D > 65536);
#pragma omp parallel if (par)
    {
        if (dwv) {
            // dWv_h [hd,D] += g_h^T [hd,B] @ z_h [B,D]: this thread's rows of dWv
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            int o0 = (int)((long)D * t / nt), o1 = (int)((long)D * (t + 1) / nt);
            for (int o = o0; o < o1;) {
                int h = o / hd, oe = (h + 1) * hd < o1 ? (h + 1) * hd : o1;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, oe - o, D, B, 1.0f,
                            dout + o, D, z + (size_t)h * D, NH * D, 1.0f, dwv + (size_t)o * D,
                            D);
                o = oe;
            }
        }
        if (need_k) {
#pragma omp for schedule(static)
            for (int c = 0; c < nchunk; c++) {
                int b0 = c * PROJ_CHUNK, nb = B - b0 < PROJ_CHUNK ? B - b0 : PROJ_CHUNK;
                // dz_h [nb,D] = g_h [nb,hd] @ Wv_h [hd,D]
                for (int h = 0; h < NH; h++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, D, hd, 1.0f,
                                dout + (size_t)b0 * D + h * hd, D, wv + (size_t)h * hd * D, D,
                                0.0f, dz + ((size_t)b0 * NH + h) * D, NH * D);
                for (int b = b0; b < b0 + nb; b++)
                    bwd_image(dx ? dx + (size_t)b * N * D : NULL, dl + (size_t)b * N, R,
                              dkq + (size_t)b * NH * D, dz + (size_t)b * NH * D,
                              x + (size_t)b * N * D, att + (size_t)b * NH * N, kq, N, D, NH);
            }
            // dkq [NH,D] = the images' shares summed in image order
#pragma omp for schedule(static)
            for (int j = 0; j < NH * D; j++) {
                float s = 0;
                for (int b = 0; b < B; b++)
                    s += dkq[(size_t)b * NH * D + j];
                dkq[j] = s; /* image 0's entry is read before it is replaced */
            }
        }
    }
    if (dq || dwk)
        kq_backward(dq, dwk, dkq, q, wk, D, NH);
}

/* ------------------------------------------------------------------ naive */

void attnpool_proj_forward_naive(float *out, float *att, float *k, float *v, const float *x,
                                 const float *q, const float *wk, const float *wv, int B, int N,
                                 int D, int NH)
{
    int R = B * N;
    linear_forward(k, x, wk, NULL, R, D, D);
    linear_forward(v, x, wv, NULL, R, D, D);
    attnpool_forward(out, att, q, k, v, B, N, D, NH);
}

void attnpool_proj_backward_naive(float *dx, float *dq, float *dwk, float *dwv, float *dk,
                                  float *dv, const float *dout, const float *x, const float *q,
                                  const float *wk, const float *wv, const float *att,
                                  const float *k, const float *v, int B, int N, int D, int NH)
{
    int R = B * N;
    memset(dk, 0, (size_t)R * D * sizeof *dk);
    memset(dv, 0, (size_t)R * D * sizeof *dv);
    attnpool_backward(dq, dk, dv, dout, q, k, v, att, B, N, D, NH);
    linear_backward(dx, dwk, NULL, dk, x, wk, R, D, D);
    linear_backward(dx, dwv, NULL, dv, x, wv, R, D, D);
}
