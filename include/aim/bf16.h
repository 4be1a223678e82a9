/*
 * aim/bf16.h - mixed precision: bfloat16 values and the bf16 GEMMs of a
 * linear layer (through oneDNN's matmul: bf16 inputs, fp32 accumulation and
 * output). Used by the model when its precision is AIM_PREC_BF16; the same
 * GEMMs on fp32 operands (aim_dnnl_f32_*) run its fp32 GEMMs where oneDNN
 * is chosen for them (aim_model_set_gemm).
 *
 * A context holds every oneDNN object a step needs, made before the step
 * (aim_bf16_prepare, at aim_model_reserve): one engine, one stream per
 * thread, for each layer shape three primitives (forward, dX, dW) on tiles
 * of AIM_BF16_TILE rows with user-managed scratchpads, their memory objects
 * per thread, and per-thread tiles for the last partial tile of rows (the
 * operands', padded with zero rows, and the fp32 result's). Executing
 * allocates no buffer (oneDNN 2.6 still builds a small std::unordered_map
 * of the arguments in every dnnl_primitive_execute: six allocations of 32
 * to 104 bytes; see tests/test_noalloc.c).
 *
 * Built without oneDNN (configure --without-dnnl), aim_bf16_check says so
 * and every other call refuses; the conversions are plain C and always
 * there.
 */
#ifndef AIM_BF16_H
#define AIM_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "aim/core.h"

/* the model's arithmetic: every GEMM in fp32, or the linear layers' GEMMs
 * in bf16 (master weights, gradients, AdamW and every other op in fp32) */
typedef enum { AIM_PREC_FP32 = 0, AIM_PREC_BF16 = 1 } aim_precision;
/* the option's help line, wherever it is offered (the job tables, aim loss,
 * aim bench) */
#define AIM_PRECISION_HELP \
    "linear layers' GEMMs in fp32, or bf16 inputs with fp32 sums (oneDNN, AVX512_BF16)"
/* "fp32" / "bf16" */
const char *aim_precision_name(aim_precision p);
/* "fp32" / "bf16" to p; -1 with a message otherwise */
int aim_precision_parse(const char *s, aim_precision *p, aim_err *e);

/* Rows per GEMM tile: a layer's rows go through the primitives in tiles of
 * this many (then smaller ones, the last one padded: bf16.c). */
#define AIM_BF16_TILE 256

/* round to nearest even (NaN stays NaN) */
static inline uint16_t aim_bf16_from(float f)
{
    union {
        float f;
        uint32_t u;
    } v = {.f = f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((v.u >> 16) | 0x40u); /* quiet NaN */
    v.u += 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)(v.u >> 16);
}
static inline float aim_bf16_to(uint16_t h)
{
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)h << 16};
    return v.f;
}
/* dst[i] = bf16(src[i]), i < n */
void aim_bf16_convert(uint16_t *dst, const float *src, size_t n);

/* 0 when bf16 GEMMs can run here; -1 with the reason (built without
 * oneDNN; the CPU lacks AVX512_BF16) naming `what` (the option) */
int aim_bf16_check(const char *what, aim_err *e);
/* the CPU ISA oneDNN dispatches to, for messages ("avx512_core_bf16") */
const char *aim_bf16_isa(void);

typedef struct aim_bf16_ctx aim_bf16_ctx;
/* A context for up to nthreads concurrent threads (thread ids 0..n-1).
 * NULL with a message when bf16 is unavailable (as aim_bf16_check). */
aim_bf16_ctx *aim_bf16_ctx_new(int nthreads, aim_err *e);
void aim_bf16_ctx_free(aim_bf16_ctx *c);
int aim_bf16_ctx_threads(const aim_bf16_ctx *c);
/* Make the three GEMMs of a linear layer IC -> OC (once per shape; later
 * calls find them). -1 with a message when oneDNN refuses. */
int aim_bf16_prepare(aim_bf16_ctx *c, int IC, int OC, aim_err *e);
/* the oneDNN implementation of the forward GEMM of a prepared shape, e.g.
 * "brg:avx512_core_bf16" (NULL if not prepared) */
const char *aim_bf16_impl(const aim_bf16_ctx *c, int IC, int OC);

/* The GEMMs of a prepared layer, run by thread tid (its own stream, memory
 * objects and scratch). Operands and results have R rows (any R >= 0): whole
 * tiles are read in place, the last partial tile is copied into the
 * thread's operand tile with zero pad rows, so nothing past row R is read.
 *   forward: out[R,OC] = inp[R,IC] @ w[OC,IC]^T           (overwrites)
 *   dinp:    dinp[R,IC] = dout[R,OC] @ w[OC,IC]           (overwrites)
 *   dweight: dw[OC,IC] = beta dw + dout[R,OC]^T @ inp[R,IC]  (beta 0 or 1) */
void aim_bf16_forward(aim_bf16_ctx *c, int tid, float *out, const uint16_t *inp,
                      const uint16_t *w, int R, int IC, int OC);
void aim_bf16_dinp(aim_bf16_ctx *c, int tid, float *dinp, const uint16_t *dout,
                   const uint16_t *w, int R, int IC, int OC);
void aim_bf16_dweight(aim_bf16_ctx *c, int tid, float *dw, float beta, const uint16_t *dout,
                      const uint16_t *inp, int R, int IC, int OC);


/* The same GEMMs on fp32 operands through oneDNN's fp32 matmul: the
 * model's fp32 GEMMs where oneDNN beats OpenBLAS's sgemm (aim_model's
 * fp32 GEMM choice), and aim bench's "oneDNN fp32" peak. A context from
 * aim_dnnl_f32_ctx_new (no AVX512_BF16 needed) takes aim_bf16_prepare and
 * aim_bf16_impl as a bf16 one does. NULL with a message when built without
 * oneDNN. */
aim_bf16_ctx *aim_dnnl_f32_ctx_new(int nthreads, aim_err *e);
void aim_dnnl_f32_forward(aim_bf16_ctx *c, int tid, float *out, const float *inp,
                          const float *w, int R, int IC, int OC);
void aim_dnnl_f32_dinp(aim_bf16_ctx *c, int tid, float *dinp, const float *dout,
                       const float *w, int R, int IC, int OC);
void aim_dnnl_f32_dweight(aim_bf16_ctx *c, int tid, float *dw, float beta, const float *dout,
                          const float *inp, int R, int IC, int OC);
/* 1 when oneDNN runs its AVX-512 kernels here (fp32: avx512_core or
 * above; DNNL_MAX_CPU_ISA can lower it); 0 otherwise or without oneDNN */
int aim_dnnl_avx512(void);

#endif
