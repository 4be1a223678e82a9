/*
 * aim/nn.h - the model's numeric kernels, llm.c style: plain float buffers,
 * `*_forward` / `*_backward` pairs with the same argument order (outputs,
 * saved activations, inputs, weights, dimensions). Backward functions ADD
 * into their gradient buffers (zeroing is the caller's job); a NULL gradient
 * pointer means "not needed" (frozen weight, or input gradient unused). The
 * exceptions say so in their names or arguments: *_write / *_inplace /
 * *_deriv overwrite, *_beta and *_rows take an explicit beta (0 overwrites
 * without reading, 1 adds).
 * Each fast kernel keeps a naive reference beside it (`*_naive`) that the
 * tests compare against. No kernel allocates. Kernels called from inside an
 * OpenMP parallel region run serially on the calling thread (the model runs
 * one region per pass); called from outside, the larger ones use the threads.
 *
 * Dimension letters: B batch, N tokens, D width, NH heads, C image channels,
 * H W image side, p patch side, P = p*p*C values per patch, R rows (= B*N).
 */
#ifndef AIM_NN_H
#define AIM_NN_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ layernorm */
/* out[R,C] = (inp - mean) * rstd * weight + bias over the last dim (biased
 * variance, as torch.nn.LayerNorm). mean[R], rstd[R] are saved for backward. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int R, int C, float eps);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int R, int C);
void layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp,
                             const float *weight, const float *bias, int R, int C, float eps);
void layernorm_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const float *mean,
                              const float *rstd, int R, int C);
/* One LayerNorm of add_layernorm_forward: its output, saved statistics and
 * parameters: out[r] = LN(x[r]) * weight + bias + post[r % N]. */
typedef struct layernorm_args {
    float *out;                 /* [R, C] */
    float *mean, *rstd;         /* [R] */
    const float *weight, *bias; /* [C] */
    const float *post;          /* [N, C] added after the norm, or NULL */
    uint16_t *out16;            /* [R, C] out in bf16 too (the next GEMM's operand), or NULL */
    float eps;
} layernorm_args;
/* Residual add, bias, position embedding and LayerNorm in one sweep (serial:
 * the model runs it per thread on its own rows):
 *   res[r] = a[r] + b[r] + bias + pos[r % N]   (b, bias, pos may be NULL; res
 *            may alias a; res may be NULL only when nothing is added)
 *   then the norm ln of res[r] (ln NULL: only the sum is written). */
void add_layernorm_forward(float *res, const layernorm_args *ln, const float *a,
                           const float *b, const float *bias, const float *pos, int R, int C,
                           int N);
/* layernorm_backward over R rows in one sweep, serial, with explicit
 * accumulation: dinp = beta_inp * dinp + grad (beta 0: overwritten, never
 * read), dweight/dbias = beta_w * old + the sum over these rows. */
void layernorm_backward_rows(float *dinp, float beta_inp, float *dweight, float *dbias,
                             float beta_w, const float *dout, const float *inp,
                             const float *weight, const float *mean, const float *rstd, int R,
                             int C);

/* --------------------------------------------------------------- linear */
/* out[R,OC] = inp[R,IC] @ weight[OC,IC]^T + bias[OC] (bias may be NULL).
 * cblas_sgemm; the *_naive versions are plain loops. */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int R, int IC, int OC);
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int R, int IC, int OC);
/* linear_backward with explicit accumulation, for one thread's rows (dbias
 * serial; the sgemm calls thread as the caller's parallel region allows):
 * dinp = beta_inp * dinp + dout @ W, dweight = beta_w * dweight + dout^T inp,
 * dbias = beta_w * dbias + column sums of dout. Beta 0 overwrites (the old
 * contents are never used). */
void linear_backward_beta(float *dinp, float beta_inp, float *dweight, float *dbias,
                          float beta_w, const float *dout, const float *inp,
                          const float *weight, int R, int IC, int OC);
void linear_forward_naive(float *out, const float *inp, const float *weight,
                          const float *bias, int R, int IC, int OC);
void linear_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int R, int IC, int OC);

/* ----------------------------------------------------------------- gelu */
/* Exact GELU: x * 0.5 * (1 + erf(x / sqrt(2))). The fast kernels use a
 * vectorised erfc accurate to float precision (relative error < 5e-7, also
 * in the negative tail); the *_naive ones call libm's erfcf per value. */
void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
/* d = d * gelu'(inp): dout in, dinp out (overwrites, no accumulation). */
void gelu_backward_inplace(float *d, const float *inp, size_t n);
/* out = gelu(x), and x is overwritten with gelu'(x): for training, where x
 * (the pre-activation) is needed later only through gelu'(x). */
void gelu_forward_deriv(float *out, float *x, size_t n);
/* gelu_forward (deriv 0) or gelu_forward_deriv (deriv 1), also writing
 * out16 [n] = bf16(out) chunk by chunk while it is in cache: the input of a
 * bf16 GEMM, made without a second pass over out. */
void gelu_forward_bf16(float *out, uint16_t *out16, float *x, int deriv, size_t n);
/* d = d * deriv, deriv from gelu_forward_deriv (overwrites). */
void gelu_backward_deriv(float *d, const float *deriv, size_t n);
/* One vector width's span kernel on one thread, for the tests that compare
 * the widths (the passes above pick 16 where the CPU runs AVX-512, else 8):
 * kind 0 out = gelu(inp); 1 also aux = gelu'(inp); 2 out = g * gelu'(inp).
 * -1 when that width is not built or not runnable here. */
int gelu_span_width(int width, int kind, float *out, float *aux, const float *inp,
                    const float *g, size_t n);
void gelu_forward_naive(float *out, const float *inp, size_t n);
void gelu_backward_naive(float *dinp, const float *inp, const float *dout, size_t n);

/* ---------------------------------------------------------------- patch */
/* img [B,C,H,W] -> out [B,N,C*p*p], token n = row*(W/p)+col, values in conv
 * weight order (c, py, px): the patch embedding is then linear_forward with
 * the conv weight viewed as [D, C*p*p]. */
void patch_extract(float *out, const float *img, int B, int C, int H, int W, int p);
/* The first ntok patches of each image only: out [B, ntok, C*p*p]. */
void patch_extract_first(float *out, const float *img, int B, int C, int H, int W, int p,
                         int ntok);
/* Fixed 2-D sin-cos position embedding out[gh*gw, E] (E % 4 == 0), token
 * n = i*gw + j at row i, col j; Q = E/4, w_k = 10000^(-k/Q):
 * [sin(j w_0..), cos(j w_..), sin(i w_..), cos(i w_..)]. */
void sincos2d(float *out, int gh, int gw, int E);
/* Loss targets: tgt [B,N,P], patch values in (py, px, c) order, each patch
 * normalised: (v - mean) / sqrt(var_unbiased + 1e-6). */
void patch_targets(float *tgt, const float *img, int B, int C, int H, int W, int p);

/* ----------------------------------------------------------------- loss */
/* pred [B,N,P]: row i predicts target patch i+1. A target j counts iff
 * j >= prefix[b] (1 <= prefix[b] <= N-1). Returns
 * mean over valid (b, j) of mean over P of (pred[b,j-1] - tgt[b,j])^2. */
float loss_forward(const float *pred, const float *tgt, const int32_t *prefix,
                   int B, int N, int P);
/* The same loss per target patch: err [B,N], err[b,j] = mean over P of
 * (pred[b,j-1] - tgt[b,j])^2 for j >= prefix[b], NaN for j < prefix[b]
 * (patch 0 is never a target). The mean of the non-NaN entries is
 * loss_forward. */
void loss_per_patch(float *err, const float *pred, const float *tgt, const int32_t *prefix,
                    int B, int N, int P);
/* dpred += dloss * d(loss)/d(pred); rows that predict nothing get 0. */
void loss_backward(float *dpred, const float *pred, const float *tgt,
                   const int32_t *prefix, int B, int N, int P, float dloss);
/* loss_backward for B images that are part of a larger batch whose number
 * of valid targets is count (the mean is over the whole batch). */
void loss_backward_n(float *dpred, const float *pred, const float *tgt,
                     const int32_t *prefix, int B, int N, int P, float dloss, int64_t count);
/* Number of valid (b, j) targets. */
int64_t loss_count(const int32_t *prefix, int B, int N);
/* One target row: mean over P of (y - t)^2 (in double), and its backward
 * dy += scale (y - t), scale = 2 dloss / (P count) as loss_backward_n's. */
double loss_row(const float *y, const float *t, int P);
void loss_row_backward(float *dy, const float *y, const float *t, int P, float scale);

/* ------------------------------------------------------------ attention */
/* Multi-head attention core (no projections).
 * qkv [B,N,3D]: each row is [q | k | v], head h uses columns h*hd..(h+1)*hd
 * of each third, hd = D/NH, scale 1/sqrt(hd).
 * prefix [B] (NULL = every S_b = N, bidirectional): query q may attend key k
 * iff k < S_b || k <= q.
 * out [B,N,D]: heads concatenated. att [B,NH,N,N]: the softmax probabilities,
 * saved for backward (masked entries are exactly 0). */
void attention_forward(float *out, float *att, const float *qkv, const int32_t *prefix,
                       int B, int N, int D, int NH);
/* dqkv [B,N,3D] += gradient. datt [B,NH,N,N] is scratch (overwritten). */
void attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                        const float *att, const int32_t *prefix, int B, int N, int D,
                        int NH);
/* attention_backward that overwrites dqkv instead of adding to it. */
void attention_backward_write(float *dqkv, float *datt, const float *dout, const float *qkv,
                              const float *att, const int32_t *prefix, int B, int N, int D,
                              int NH);
void attention_forward_naive(float *out, float *att, const float *qkv,
                             const int32_t *prefix, int B, int N, int D, int NH);
void attention_backward_naive(float *dqkv, float *datt, const float *dout,
                              const float *qkv, const float *att, const int32_t *prefix,
                              int B, int N, int D, int NH);

/* ------------------------------------------------------------ batchnorm */
/* BatchNorm over channels C of R rows (torch.nn.BatchNorm1d, affine=False):
 * training: out = (inp - mean_c) * rstd_c with the batch's mean and biased
 * variance, rstd = 1/sqrt(var + eps); mean[C], rstd[C] saved for backward;
 * running_mean/var (may be NULL) updated with momentum m and the UNBIASED
 * variance, as PyTorch does. Evaluation (batchnorm_eval): the running stats. */
void batchnorm_forward(float *out, float *mean, float *rstd, const float *inp, int R, int C,
                       float eps, float *running_mean, float *running_var, float momentum);
void batchnorm_eval(float *out, const float *inp, int R, int C, float eps,
                    const float *running_mean, const float *running_var);
/* dinp += d(out)/d(inp) . dout for the training-mode forward. */
void batchnorm_backward(float *dinp, const float *dout, const float *out, const float *rstd,
                        int R, int C);

/* ------------------------------------------------------------ attention pooling */
/* One learned query q[D] attending over N tokens per image (AIM's attentive
 * probe), NH heads of width hd = D/NH, scale 1/sqrt(hd):
 * k, v [B,N,D] (already projected), out [B,D] heads concatenated,
 * att [B,NH,N] softmax weights (saved). */
void attnpool_forward(float *out, float *att, const float *q, const float *k, const float *v,
                      int B, int N, int D, int NH);
/* dq[D], dk, dv [B,N,D] += gradients (each may be NULL). */
void attnpool_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                       const float *k, const float *v, const float *att, int B, int N, int D,
                       int NH);
/* The same with the projections: k = x Wk^T, v = x Wv^T (Wk, Wv [D,D], no
 * bias) of x [B,N,D], then the pooling; out [B,D], att [B,NH,N] as above.
 * Evaluated without projecting any token: kq_h = Wk_h^T q_h / sqrt(hd)
 * (Wk_h the rows of head h) gives the logits kq_h . x_n, z_bh = sum_n a_bhn
 * x_bn the pooled input, out_bh = Wv_h z_bh. kq [NH,D] and z [B,NH,D] are
 * saved for backward. */
void attnpool_proj_forward(float *out, float *att, float *kq, float *z, const float *x,
                           const float *q, const float *wk, const float *wv, int B, int N,
                           int D, int NH);
/* dx [B,N,D], dq [D], dwk, dwv [D,D] += gradients (each may be NULL);
 * dz [B,NH,D], dl [NH,B*N], dkq [B,NH,D] are scratch (overwritten). */
void attnpool_proj_backward(float *dx, float *dq, float *dwk, float *dwv, float *dz, float *dl,
                            float *dkq, const float *dout, const float *x, const float *q,
                            const float *wk, const float *wv, const float *att,
                            const float *kq, const float *z, int B, int N, int D, int NH);
/* The per-token order (the probe's until issue 25, the tests' reference):
 * k, v [B,N,D] = every token projected (linear_forward), saved, then
 * attnpool_forward; backward: attnpool_backward into the scratch dk, dv
 * [B,N,D] (overwritten), then linear_backward. */
void attnpool_proj_forward_naive(float *out, float *att, float *k, float *v, const float *x,
                                 const float *q, const float *wk, const float *wv, int B, int N,
                                 int D, int NH);
void attnpool_proj_backward_naive(float *dx, float *dq, float *dwk, float *dwv, float *dk,
                                  float *dv, const float *dout, const float *x, const float *q,
                                  const float *wk, const float *wv, const float *att,
                                  const float *k, const float *v, int B, int N, int D, int NH);

/* ------------------------------------------------------------ cross-entropy */
/* Mean softmax cross-entropy of logits [B,K] against labels [B]; probs [B,K]
 * saved. Returns the loss; *correct (may be NULL) = number of argmax hits. */
float xent_forward(float *probs, const float *logits, const int32_t *labels, int B, int K,
                   int *correct);
/* dlogits += (probs - onehot) / B * dloss */
void xent_backward(float *dlogits, const float *probs, const int32_t *labels, int B, int K,
                   float dloss);
/* The same with label smoothing eps in [0, 1): the target of sample b is
 * q = (1 - eps) onehot(label) + eps / K, the loss the mean over b of
 * -sum_k q_k log p_k (eps = 0: xent_forward); dlogits += (probs - q) / B *
 * dloss. */
float xent_smooth_forward(float *probs, const float *logits, const int32_t *labels, int B,
                          int K, float eps, int *correct);
void xent_smooth_backward(float *dlogits, const float *probs, const int32_t *labels, int B,
                          int K, float eps, float dloss);

#endif
