/*
 * aim/prof.h - per-kernel timers for the model's forward and backward
 * passes (`aim bench --profile`). A model has no profile by default
 * (aim_model_set_profile(m, NULL)); the passes then read no clock at all.
 * With a profile attached every thread that works on a step records, for
 * each kernel, the seconds it spent and the FLOPs it did, in its own row
 * and the CPU time it got (no sharing between threads), so the table shows
 * time per kernel, its share of the step, GFLOP/s per GEMM (per wall second
 * and per CPU second: the second does not move when other processes take
 * the cores) and how busy each thread was.
 *
 * Also the machine's practical GEMM peak for a model (aim_gemm_peak, in
 * src/model/peak.c): what MFU is measured against.
 */
#ifndef AIM_PROF_H
#define AIM_PROF_H

#include <time.h>

/* kernels: id, pass ("fwd"/"bwd"/"opt"), name, is a GEMM */
#define AIM_PROF_KERNELS(X)                                       \
    X(F_PATCH, "fwd", "patch extract", 0)                         \
    X(F_EMBED, "fwd", "patch embed gemm", 1)                      \
    X(F_LN, "fwd", "layernorm (+pos)", 0)                         \
    X(F_QKV, "fwd", "attn.qkv gemm", 1)                           \
    X(F_ATTN, "fwd", "attention core", 1)                         \
    X(F_PROJ, "fwd", "attn.proj gemm", 1)                         \
    X(F_LORA, "fwd", "lora gemms", 1)                             \
    X(F_RES, "fwd", "residual / bias", 0)                         \
    X(F_FC1, "fwd", "mlp.fc1 gemm", 1)                            \
    X(F_GELU, "fwd", "gelu", 0)                                   \
    X(F_FC2, "fwd", "mlp.fc2 gemm", 1)                            \
    X(F_HPROJ, "fwd", "head.proj gemm", 1)                        \
    X(F_HFC1, "fwd", "head.fc1 gemm", 1)                          \
    X(F_HFC2, "fwd", "head.fc2 gemm", 1)                          \
    X(F_PRED, "fwd", "head.pred gemm", 1)                         \
    X(F_LOSS, "fwd", "targets + loss", 0)                         \
    X(F_BF16, "fwd", "to bf16 (weights, activations)", 0)         \
    X(B_LOSS, "bwd", "loss", 0)                                   \
    X(B_ZERO, "bwd", "zero scratch", 0)                           \
    X(B_PRED_DX, "bwd", "head.pred dX gemm", 1)                   \
    X(B_PRED_DW, "bwd", "head.pred dW gemm (+db)", 1)             \
    X(B_LN, "bwd", "layernorm", 0)                                \
    X(B_HFC2_DX, "bwd", "head.fc2 dX gemm", 1)                    \
    X(B_HFC2_DW, "bwd", "head.fc2 dW gemm", 1)                    \
    X(B_HFC1_DX, "bwd", "head.fc1 dX gemm", 1)                    \
    X(B_HFC1_DW, "bwd", "head.fc1 dW gemm", 1)                    \
    X(B_GELU, "bwd", "gelu", 0)                                   \
    X(B_HPROJ_DX, "bwd", "head.proj dX gemm", 1)                  \
    X(B_HPROJ_DW, "bwd", "head.proj dW gemm (+db)", 1)            \
    X(B_FC2_DX, "bwd", "mlp.fc2 dX gemm", 1)                      \
    X(B_FC2_DW, "bwd", "mlp.fc2 dW gemm", 1)                      \
    X(B_FC1_DX, "bwd", "mlp.fc1 dX gemm", 1)                      \
    X(B_FC1_DW, "bwd", "mlp.fc1 dW gemm", 1)                      \
    X(B_PROJ_DX, "bwd", "attn.proj dX gemm", 1)                   \
    X(B_PROJ_DW, "bwd", "attn.proj dW gemm", 1)                   \
    X(B_ATTN, "bwd", "attention core", 1)                         \
    X(B_QKV_DX, "bwd", "attn.qkv dX gemm", 1)                     \
    X(B_QKV_DW, "bwd", "attn.qkv dW gemm", 1)                     \
    X(B_LORA, "bwd", "lora gemms", 1)                             \
    X(B_EMBED_DW, "bwd", "patch embed dW gemm (+db)", 1)          \
    X(B_BF16, "bwd", "to bf16 (gradients, activations)", 0)       \
    X(B_WAIT, "bwd", "wait for the other threads", 0)             \
    X(B_REDUCE, "bwd", "gradient reduce", 0)                      \
    X(O_ZERO, "opt", "zero grad", 0)                              \
    X(O_STEP, "opt", "grad norm + clip + adamw", 0)

enum {
#define AIM_PROF_ENUM(id, pass, name, gemm) AIM_K_##id,
    AIM_PROF_KERNELS(AIM_PROF_ENUM)
#undef AIM_PROF_ENUM
    AIM_K_COUNT
};

#define AIM_PROF_MAX_THREADS 64

typedef struct aim_prof_thread {
    double sec[AIM_K_COUNT];   /* wall seconds */
    double cpu[AIM_K_COUNT];   /* this thread's CPU seconds (less than sec when
                                  other processes took the core) */
    double flops[AIM_K_COUNT];
    long calls[AIM_K_COUNT];
    char pad[64];
} aim_prof_thread;

typedef struct aim_prof {
    int nthreads;            /* highest thread index that recorded + 1 */
    long steps;              /* forward passes recorded */
    double wall_fwd, wall_bwd; /* seconds, whole passes */
    aim_prof_thread th[AIM_PROF_MAX_THREADS];
} aim_prof;

const char *aim_prof_name(int k);
const char *aim_prof_pass(int k);
int aim_prof_is_gemm(int k);
void aim_prof_reset(aim_prof *p);

static inline double aim_prof_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline double aim_prof_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process (all threads) */
static inline double aim_prof_process_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A lap timer for one thread: aim_lap_start, then aim_lap after each kernel
 * charges the time since the previous lap to kernel k. No clock is read when
 * the profile is NULL. */
typedef struct aim_lap_t {
    aim_prof_thread *t;
    double t0, c0;
} aim_laptimer;

static inline void aim_lap_start(aim_laptimer *l, aim_prof *p, int tid)
{
    l->t = NULL;
    l->t0 = l->c0 = 0;
    if (p && tid >= 0 && tid < AIM_PROF_MAX_THREADS) {
        l->t = &p->th[tid];
        if (tid >= p->nthreads) {
#pragma omp critical(aim_prof)
            if (tid >= p->nthreads)
                p->nthreads = tid + 1;
        }
        l->c0 = aim_prof_cpu();
        l->t0 = aim_prof_now();
    }
}

static inline void aim_lap(aim_laptimer *l, int k, double flops)
{
    if (l->t) {
        /* the CPU clock is a system call, a point where the scheduler may
         * switch: read it first so a switch there is charged to the kernel
         * that just ran (as wall time it did not get), not the next one */
        double c = aim_prof_cpu(), t = aim_prof_now();
        l->t->sec[k] += t - l->t0;
        l->t->cpu[k] += c - l->c0;
        l->t->flops[k] += flops;
        l->t->calls[k]++;
        l->t0 = t;
        l->c0 = c;
    }
}

/* ------------------------------------------------ the machine's GEMM peak */
/* The sgemm rate on a model's own forward GEMM shapes (R = batch * tokens
 * rows) with the threads in effect: `aim bench`'s "(1) sgemm peak" and the
 * TUI's "% peak". The peak is FLOP-weighted: the FLOPs of one forward pass's
 * GEMMs over the time they take at the measured rates, i.e. the rows'
 * FLOP-weighted harmonic mean. A measurement, so noisy on a shared machine. */
struct aim_config;

#define AIM_GEMM_SHAPES_MAX 16

typedef struct aim_gemm_row {
    const char *name;   /* "attn.qkv", ... (static) */
    int M, K, N;        /* out[M,N] = in[M,K] @ W[N,K]^T */
    int count;          /* times per forward pass */
    double flops_per_s; /* measured rate (0 from aim_gemm_shapes) */
} aim_gemm_row;

typedef struct aim_peak {
    double flops_per_s;     /* the peak: pass FLOPs / pass time */
    double flops_per_cpu_s; /* the same per CPU second of the process */
    double cores;           /* CPU time / wall time while measuring */
    int nrows;
    aim_gemm_row row[AIM_GEMM_SHAPES_MAX];
} aim_peak;

/* the kernel family the linked OpenBLAS runs on this CPU
 * (openblas_get_corename(): "Haswell", "Cooperlake", ...; OPENBLAS_CORETYPE
 * can set it): say it with every sgemm rate */
const char *aim_blas_core(void);

/* The forward GEMMs of one pass of model c on `batch` images into g (room
 * for AIM_GEMM_SHAPES_MAX); returns how many. */
int aim_gemm_shapes(const struct aim_config *c, int batch, aim_gemm_row *g);
/* Time sgemm on each shape for about seconds / shapes (one warm-up call,
 * then repeats until that much time passed, at most 10000) and return the
 * peak in FLOP/s; out (may be NULL) gets it with the rows. 0 (and a zeroed
 * *out) when batch < 1 or seconds <= 0. */
double aim_gemm_peak(const struct aim_config *c, int batch, double seconds, aim_peak *out);
/* The same for the bf16 GEMMs of --precision bf16 (aim/bf16.h: bf16
 * inputs, fp32 sums and output, through oneDNN) on the same shapes, made
 * the same way: the rate bf16 MFU is measured against. The operands are
 * bf16 already (the model's conversion passes are not in it). 0 (and a
 * zeroed *out) also when bf16 cannot run here. */
double aim_gemm_peak_bf16(const struct aim_config *c, int batch, double seconds, aim_peak *out);
/* The same for oneDNN's fp32 matmul on the same shapes (the weights in
 * the layout sgemm gets them), to weigh it against OpenBLAS; 0 when built
 * without oneDNN. */
double aim_gemm_peak_dnnl_f32(const struct aim_config *c, int batch, double seconds,
                              aim_peak *out);

#endif
