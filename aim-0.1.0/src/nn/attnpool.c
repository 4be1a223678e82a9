/*
 * attnpool.c - attention pooling with one learned query (the AIM attentive
 * probe, shared/AIM.md "Downstream"): per image and head, softmax over the
 * N tokens of q . k / sqrt(hd), then the weighted sum of v. No masking.
 */
#include "config.h"

#include <math.h>

#include "aim/nn.h"

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
