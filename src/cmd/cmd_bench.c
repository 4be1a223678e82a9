/*
 * cmd_bench.c - `aim bench`: how fast is aim on this machine, and how close
 * to the machine's limit? Measures, in one process: the sgemm rate on the
 * model's own GEMM shapes (the practical peak: aim_gemm_peak in aim/prof.h,
 * which the TUI's "% peak" uses too), training and forward-only
 * img/s, the model's FLOPs per image, and MFU = achieved FLOP/s / that peak.
 *
 * FLOPs per image (2 per multiply-add; see aim_config_flops_forward):
 *   forward = 2NPD + L (24 N D^2 + 4 N^2 D) + 2 N D Dh + Lh 16 N Dh^2 + 2 N Dh P
 *   training = 3 x forward (backward needs two GEMMs per forward GEMM).
 * The passes run loss-only, as pretraining does (AIM_FWD_LOSS_ONLY): the
 * last block's 18 N D^2 of projection and MLP and the head's terms count
 * at the loss rows (aim_config_flops_loss), N/2 of N on average.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "aim/json.h"
#include "aim/model.h"
#include "aim/prof.h"
#include "aim/train.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"

/* One training step, each optimiser phase charged to its profile entry. */
static void train_step(aim_model *m, aim_params *p, const aim_adamw_opts *ao, const float *x,
                       const int32_t *prefix, int batch, int64_t t, aim_prof *pr)
{
    double t0 = pr ? aim_prof_now() : 0;
    aim_params_zero_grad(p);
    if (pr)
        pr->th[0].sec[AIM_K_O_ZERO] += aim_prof_now() - t0;
    aim_model_forward_ex(m, x, prefix, batch, AIM_FWD_LOSS_ONLY);
    aim_model_backward(m);
    if (pr)
        t0 = aim_prof_now();
    aim_clip_adamw_step(p, ao, 1e-4f, t, 1.0f);
    if (pr)
        pr->th[0].sec[AIM_K_O_STEP] += aim_prof_now() - t0;
}

/* The per-kernel table of `aim bench --profile`: ms per step (mean over the
 * threads that ran the kernel), share of the measured step, GFLOP/s of the
 * kernel (all threads' FLOPs over that time), GFLOP/s per CPU second of one
 * thread (immune to other processes taking the cores), the CPU share the
 * threads got, and per-thread ms. */
static void print_profile(const aim_prof *pr, int steps, double step_s, const char *what)
{
    int nt = pr->nthreads > 0 ? pr->nthreads : 1;
    if (nt > 8)
        nt = 8;
    printf("\nprofile: %s, %d steps, %.1f ms per step (wall)\n", what, steps, 1e3 * step_s);
    printf("%-4s %-28s %8s %6s %7s %8s %5s", "pass", "kernel", "ms/step", "share", "GFLOP/s",
           "GF/s/cpu", "cpu%");
    for (int t = 0; t < nt; t++)
        printf("  thr%-2d", t);
    printf("\n");
    double busy[AIM_PROF_MAX_THREADS] = {0}, cpu[AIM_PROF_MAX_THREADS] = {0}, total = 0;
    double gemm = 0, gemm_fl = 0;
    for (int k = 0; k < AIM_K_COUNT; k++) {
        double sum = 0, csum = 0, fl = 0;
        int used = 0;
        for (int t = 0; t < pr->nthreads; t++) {
            sum += pr->th[t].sec[k];
            csum += pr->th[t].cpu[k];
            fl += pr->th[t].flops[k];
            busy[t] += pr->th[t].sec[k];
            cpu[t] += pr->th[t].cpu[k];
            used += pr->th[t].sec[k] > 0;
        }
        if (!used)
            continue;
        double ms = 1e3 * sum / used / steps;
        total += ms;
        if (aim_prof_is_gemm(k)) {
            gemm += ms;
            gemm_fl += fl;
        }
        printf("%-4s %-28s %8.2f %5.1f%%", aim_prof_pass(k), aim_prof_name(k), ms,
               100 * ms / (1e3 * step_s));
        if (aim_prof_is_gemm(k) && fl > 0 && ms > 0 && csum > 0)
            printf(" %7.1f %8.1f", fl / steps / (ms * 1e-3) / 1e9, fl / csum / 1e9);
        else
            printf(" %7s %8s", "", "");
        printf(" %4.0f%%", sum > 0 && csum > 0 ? 100 * csum / sum : 100.0);
        for (int t = 0; t < nt; t++)
            printf(" %6.2f", 1e3 * pr->th[t].sec[k] / steps);
        printf("\n");
    }
    printf("%-4s %-28s %8.2f %5.1f%% %7.1f\n", "", "GEMMs + attention core", gemm,
           100 * gemm / (1e3 * step_s), gemm > 0 ? gemm_fl / steps / (gemm * 1e-3) / 1e9 : 0.0);
    printf("%-4s %-28s %8.2f %5.1f%%\n", "", "everything else", total - gemm,
           100 * (total - gemm) / (1e3 * step_s));
    printf("%-4s %-28s %8.2f %5.1f%%\n", "", "sum of kernels", total,
           100 * total / (1e3 * step_s));
    printf("%-4s %-28s %8.2f %5.1f%%\n", "", "untimed (step - sum)", 1e3 * step_s - total,
           100 * (1e3 * step_s - total) / (1e3 * step_s));
    printf("per thread, ms per step: busy");
    for (int t = 0; t < pr->nthreads && t < 8; t++)
        printf(" %8.2f", 1e3 * busy[t] / steps);
    printf("\n                          idle");
    for (int t = 0; t < pr->nthreads && t < 8; t++)
        printf(" %8.2f", 1e3 * step_s - 1e3 * busy[t] / steps);
    printf("   (step wall - busy: waiting, imbalance, untimed work)\n");
    printf("                   lost to others");
    for (int t = 0; t < pr->nthreads && t < 8; t++)
        printf(" %8.2f", 1e3 * (busy[t] - cpu[t]) / steps);
    printf("   (busy - CPU time: the core was running another process)\n");
}

static int bench_exec(int argc, char **argv);

const struct aim_cmd cmd_bench_entry = {
    .name = "bench",
    .usage = "[--preset NAME] [--batch B] [--threads T] [--steps N] [--precision P] "
             "[--profile | --json]",
    .summary = "measure throughput and the fraction of the machine's sgemm peak (MFU)",
    .help = "Runs in one process: (1) sgemm on the model's own GEMM shapes, the practical\n"
            "peak; (2) training steps (forward + backward + AdamW) and (3) forward-only\n"
            "passes on random data. Prints img/s, GFLOP/s and MFU = achieved / peak.\n"
            "--profile adds a per-kernel table: ms per step, share of the step,\n"
            "GFLOP/s of every GEMM, and busy / idle time per thread.\n"
            "Machines are noisy: compare ratios within one run. img/cpu-s (images per\n"
            "CPU-second, all threads) and cores (CPU time / wall time) show how much\n"
            "of the machine the process got when others share it; MFU/cpu compares\n"
            "FLOP per CPU-second with the sgemm's, which that does not move.\n"
            "--json prints the same numbers as one JSON object (docs/json.md).\n"
            "Where bf16 runs (oneDNN, AVX512_BF16) both precisions are measured, bf16\n"
            "against its own GEMM peak on the same shapes; --precision picks one.\n"
            "Where oneDNN is built in, its fp32 matmul is timed beside sgemm on the same\n"
            "shapes. The model's fp32 GEMMs run on oneDNN where OpenBLAS is held to AVX2\n"
            "kernels on an AVX-512 CPU (an OPENBLAS_CORETYPE such as Haswell) and on\n"
            "OpenBLAS elsewhere; AIM_GEMM=openblas|onednn picks one. fp32's MFU is\n"
            "against the peak of the library it runs on.",
    .exec = bench_exec,
};

/* --json: the numbers of the text output, by name (docs/json.md); pass[0]
 * training, pass[1] forward: img/s, FLOP/s, MFU, s/step, img/cpu-s, cores,
 * MFU/cpu */
static void json_passes(aim_jw *w, const double pass[2][7])
{
    static const char *const names[2] = {"training", "forward"};
    for (int p = 0; p < 2; p++) {
        aim_jw_key(w, names[p]);
        aim_jw_open(w, '{');
        aim_jw_knum(w, "img_per_s", pass[p][0]);
        aim_jw_knum(w, "flops_per_s", pass[p][1]);
        aim_jw_knum(w, "mfu", pass[p][2]);
        aim_jw_knum(w, "seconds_per_step", pass[p][3]);
        aim_jw_knum(w, "img_per_cpu_s", pass[p][4]);
        aim_jw_knum(w, "cores", pass[p][5]);
        aim_jw_knum(w, "mfu_cpu", pass[p][6]);
        aim_jw_close(w, '}');
    }
}

static void json_gemms(aim_jw *w, const aim_peak *pk)
{
    aim_jw_key(w, "gemm");
    aim_jw_open(w, '[');
    for (int i = 0; i < pk->nrows; i++) {
        const aim_gemm_row *g = &pk->row[i];
        aim_jw_open(w, '{');
        aim_jw_kstr(w, "name", g->name);
        aim_jw_kint(w, "M", g->M);
        aim_jw_kint(w, "K", g->K);
        aim_jw_kint(w, "N", g->N);
        aim_jw_kint(w, "count", g->count);
        aim_jw_knum(w, "flops_per_s", g->flops_per_s);
        aim_jw_close(w, '}');
    }
    aim_jw_close(w, ']');
}

/* the top level is the first precision measured (fp32 unless only bf16 was
 * asked for; "precision" names it); with both, "bf16" holds bf16's gemm
 * rows, peak and passes; "dnnl_f32" oneDNN's fp32 matmul on the shapes of
 * the sgemm rows (fp32 measured and oneDNN built in) */
static int bench_json(const aim_config *c, const char *preset, int batch, int steps,
                      double loss_rows, double fwd_flops, const int want[2], const aim_peak *pks,
                      const double peaks[2], const aim_peak *dn, aim_gemm fg,
                      const double passes[2][2][7], double rss_bytes)
{
    const int q = want[0] ? 0 : 1;
    const aim_peak *pk = &pks[q];
    const double peak = peaks[q];
    aim_jw w;
    aim_jw_init(&w, stdout);
    aim_jw_open(&w, '{');
    aim_jw_key(&w, "config");
    aim_jw_open(&w, '{');
    aim_jw_kstr(&w, "preset", preset);
    aim_jw_kint(&w, "image", c->image);
    aim_jw_kint(&w, "channels", c->channels);
    aim_jw_kint(&w, "patch", c->patch);
    aim_jw_kint(&w, "width", c->width);
    aim_jw_kint(&w, "depth", c->depth);
    aim_jw_kint(&w, "heads", c->heads);
    aim_jw_kint(&w, "head_width", c->head_width);
    aim_jw_kint(&w, "head_depth", c->head_depth);
    aim_jw_kint(&w, "tokens", aim_config_tokens(c));
    aim_jw_close(&w, '}');
    aim_jw_kint(&w, "batch", batch);
    aim_jw_kint(&w, "steps", steps);
    aim_jw_kint(&w, "threads", cmd_threads());
    aim_jw_kstr(&w, "openblas_threads", AIM_OPENBLAS_THREADS);
    aim_jw_kstr(&w, "openblas_core", aim_blas_core());
    aim_jw_kstr(&w, "fp32_gemm", aim_gemm_name(fg));
    aim_jw_knum(&w, "trunk_params", (double)aim_config_trunk_params(c));
    aim_jw_knum(&w, "head_params", (double)aim_config_head_params(c));
    aim_jw_knum(&w, "activation_bytes", (double)aim_model_activation_bytes(c, batch));
    aim_jw_knum(&w, "loss_rows_per_image", loss_rows);
    aim_jw_knum(&w, "flops_forward", fwd_flops);
    aim_jw_knum(&w, "flops_forward_all_rows", aim_config_flops_forward(c));
    aim_jw_knum(&w, "flops_training", 3 * fwd_flops);
    aim_jw_kstr(&w, "precision", q ? "bf16" : "fp32");
    json_gemms(&w, pk);
    aim_jw_knum(&w, "peak_flops_per_s", peak);
    aim_jw_knum(&w, "peak_flops_per_cpu_s", pk->flops_per_cpu_s);
    aim_jw_knum(&w, "peak_cores", pk->cores);
    json_passes(&w, passes[q]);
    if (dn) {
        aim_jw_key(&w, "dnnl_f32");
        aim_jw_open(&w, '{');
        json_gemms(&w, dn);
        aim_jw_knum(&w, "peak_flops_per_s", dn->flops_per_s);
        aim_jw_knum(&w, "peak_flops_per_cpu_s", dn->flops_per_cpu_s);
        aim_jw_knum(&w, "peak_cores", dn->cores);
        aim_jw_close(&w, '}');
    }
    if (want[0] && want[1]) {
        aim_jw_key(&w, "bf16");
        aim_jw_open(&w, '{');
        json_gemms(&w, &pks[1]);
        aim_jw_knum(&w, "peak_flops_per_s", peaks[1]);
        aim_jw_knum(&w, "peak_flops_per_cpu_s", pks[1].flops_per_cpu_s);
        aim_jw_knum(&w, "peak_cores", pks[1].cores);
        json_passes(&w, passes[1]);
        aim_jw_close(&w, '}');
    }
    aim_jw_knum(&w, "peak_rss_bytes", rss_bytes);
    aim_jw_close(&w, '}');
    return aim_jw_finish(&w) != 0 ? cmd_fail("bench: cannot write the JSON to stdout") : 0;
}

/* --precision: want[0] fp32, want[1] bf16 (default: both where bf16 runs);
 * 1 after saying what is wrong */
static int want_precisions(const char *precision, int want[2])
{
    aim_err e = {{0}};
    want[0] = 1;
    want[1] = aim_bf16_check("--precision", NULL) == 0;
    if (precision && !strcmp(precision, "both")) {
        if (aim_bf16_check("--precision", &e) != 0)
            return cmd_fail("bench: %s", e.msg);
        want[1] = 1;
    } else if (precision) {
        aim_precision pq;
        if (aim_precision_parse(precision, &pq, &e) != 0)
            return cmd_fail("bench: --%s (or both)", e.msg);
        if (pq == AIM_PREC_BF16 && aim_bf16_check("--precision", &e) != 0)
            return cmd_fail("bench: %s", e.msg);
        want[0] = pq == AIM_PREC_FP32;
        want[1] = pq == AIM_PREC_BF16;
    }
    return 0;
}

/* random images and prefixes drawn as pretraining draws them; returns the
 * loss rows of the batch */
static double bench_inputs(const aim_config *c, int batch, float **xo, int32_t **po)
{
    int N = aim_config_tokens(c);
    size_t img = (size_t)c->channels * c->image * c->image;
    aim_rng r;
    aim_rng_seed(&r, 7);
    float *x = aim_xaligned((size_t)batch * img * 4);
    int32_t *prefix = aim_xmalloc((size_t)batch * 4);
    for (size_t i = 0; i < (size_t)batch * img; i++)
        x[i] = (float)aim_rng_normal(&r);
    double rows = 0;
    for (int b = 0; b < batch; b++) {
        prefix[b] = 1 + (int32_t)aim_rng_below(&r, (uint32_t)(N - 1));
        rows += N - prefix[b];
    }
    *xo = x;
    *po = prefix;
    return rows;
}

/* precision q's GEMM peak, shape by shape; with dn (fp32, oneDNN there),
 * oneDNN's fp32 matmul on the same shapes beside OpenBLAS's sgemm */
static void print_peak(int q, const aim_peak *pk, double peak, const aim_peak *dn)
{
    printf("%-12s %8s %6s %6s %5s %9s%s\n", q ? "bf16 gemm" : "gemm", "M", "K", "N", "x",
           "GFLOP/s", dn ? "    oneDNN  oneDNN/sgemm" : "");
    for (int i = 0; i < pk->nrows; i++) {
        const aim_gemm_row *g = &pk->row[i];
        printf("%-12s %8d %6d %6d %5d %9.1f", g->name, g->M, g->K, g->N, g->count,
               g->flops_per_s / 1e9);
        if (dn)
            printf(" %9.1f %12.2fx", dn->row[i].flops_per_s / 1e9,
                   g->flops_per_s > 0 ? dn->row[i].flops_per_s / g->flops_per_s : 0.0);
        printf("\n");
    }
    printf("%s peak on the model's shapes (FLOP-weighted): %.1f GFLOP/s, %.1f GFLOP per "
           "CPU-second (%.2f cores)\n",
           q ? "bf16 GEMM (oneDNN)" : "sgemm", peak / 1e9, pk->flops_per_cpu_s / 1e9, pk->cores);
    if (dn)
        printf("oneDNN fp32 matmul, same shapes: %.1f GFLOP/s, %.1f GFLOP per CPU-second "
               "(%.2fx sgemm's)\n",
               dn->flops_per_s / 1e9, dn->flops_per_cpu_s / 1e9,
               pk->flops_per_cpu_s > 0 ? dn->flops_per_cpu_s / pk->flops_per_cpu_s : 0.0);
    printf("\n");
}

/* what the timed passes run on */
typedef struct bench_run {
    aim_model *m;
    aim_params *p;
    const aim_adamw_opts *ao;
    const float *x;
    const int32_t *prefix;
    int batch, steps;
} bench_run;

/* steps training steps then steps forward passes (after 2 untimed each),
 * in the model's precision: row[training, forward] = img/s, FLOP/s, MFU,
 * s/step, img per CPU-second, cores, MFU per CPU-second (as bench_json).
 * The per-CPU-second numbers are what other load on a shared machine moves
 * least: FLOP per CPU-second against the peak's */
static void time_passes(const bench_run *b, double fwd_flops, double pk_s, double pk_c,
                        double row[2][7])
{
    const int batch = b->batch, steps = b->steps;
    double t[2] = {0, 0}, cpu[2] = {0, 0};
    for (int k = 0; k < 2; k++)
        for (int s = -2; s < steps; s++) {
            double t0 = aim_prof_now(), c0 = aim_prof_process_cpu();
            if (k == 0)
                train_step(b->m, b->p, b->ao, b->x, b->prefix, batch, s + 3,
                           NULL);
            else
                aim_model_forward_ex(b->m, b->x, b->prefix, batch,
                                     AIM_FWD_EVAL | AIM_FWD_LOSS_ONLY);
            if (s >= 0) {
                t[k] += aim_prof_now() - t0;
                cpu[k] += aim_prof_process_cpu() - c0;
            }
        }
    for (int k = 0; k < 2; k++) {
        double flops = (k == 0 ? 3 : 1) * fwd_flops; /* a training step: 3x forward */
        double ips = batch * steps / t[k], fs = ips * flops;
        double fc = batch * steps * flops / cpu[k];
        const double r[7] = {ips, fs, fs / pk_s, t[k] / steps, batch * steps / cpu[k],
                             cpu[k] / t[k], fc / pk_c};
        memcpy(row[k], r, sizeof r);
    }
}

/* --profile: the time per kernel and thread of a training step and of a
 * forward pass in precision q */
static void profile_passes(const bench_run *b, int q)
{
    aim_prof *pr = aim_xcalloc(1, sizeof *pr);
    aim_model_set_profile(b->m, pr);
    double tp = 0;
    for (int s = 0; s < b->steps; s++) {
        double t0 = aim_prof_now();
        train_step(b->m, b->p, b->ao, b->x, b->prefix, b->batch,
                   b->steps + 3 + s, pr);
        tp += aim_prof_now() - t0;
    }
    print_profile(pr, b->steps, tp / b->steps,
                  q ? "bf16 training step (forward + backward + optimiser)"
                    : "training step (forward + backward + optimiser)");
    aim_prof_reset(pr);
    tp = 0;
    for (int s = 0; s < b->steps; s++) {
        double t0 = aim_prof_now();
        aim_model_forward_ex(b->m, b->x, b->prefix, b->batch, AIM_FWD_EVAL | AIM_FWD_LOSS_ONLY);
        tp += aim_prof_now() - t0;
    }
    print_profile(pr, b->steps, tp / b->steps,
                  q ? "bf16 forward pass with loss (evaluation)"
                    : "forward pass with loss (evaluation)");
    aim_model_set_profile(b->m, NULL);
    free(pr);
    printf("\n");
}

/* what is measured: the model, the batch and the FLOPs per image */
static void print_header(const aim_config *c, const char *preset, int batch,
                         double rows_per_image, double fwd_flops, aim_gemm fg, const char *why)
{
    int N = aim_config_tokens(c);
    printf("aim bench: preset %s  D=%d L=%d heads=%d  %dx%dx%d patch %d (N=%d)  batch %d  "
           "threads %d (OpenBLAS %s, core %s)\n",
           preset, c->width, c->depth, c->heads, c->channels, c->image,
           c->image, c->patch, N, batch, cmd_threads(), AIM_OPENBLAS_THREADS, aim_blas_core());
    printf("params: trunk %.3fM  pixel head %.3fM  | activations %.1f MB\n",
           aim_config_trunk_params(c) / 1e6, aim_config_head_params(c) / 1e6,
           aim_model_activation_bytes(c, batch) / 1e6);
    printf("fp32 GEMMs: %s (%s; AIM_GEMM=openblas|onednn picks one)\n",
           fg == AIM_GEMM_ONEDNN ? "oneDNN's fp32 matmul" : "OpenBLAS's sgemm", why);
    printf("FLOPs per image: forward %.1f MFLOP (loss rows only, %.1f of %d per image; all "
           "rows %.1f), training step %.1f MFLOP (3x forward)\n\n",
           fwd_flops / 1e6, rows_per_image, N, aim_config_flops_forward(c) / 1e6,
           3 * fwd_flops / 1e6);
}

static int bench_exec(int argc, char **argv)
{
    cmd_model_opts mo = {0};
    int batch = 64, threads = 0, steps = 10, profile = 0, json = 0;
    float seconds = 1.0f;
    const char *precision = NULL;
    cmd_opt opts[] = {
        CMD_MODEL_OPTS(mo),
        {"batch", OPT_INT, &batch, "B", "images per step (default 64)"},
        {"threads", OPT_INT, &threads, "T", "threads for OpenMP and OpenBLAS"},
        {"steps", OPT_INT, &steps, "N", "timed training steps (default 10)"},
        {"gemm-seconds", OPT_FLOAT, &seconds, "S", "time spent measuring sgemm (default 1)"},
        {"profile", OPT_FLAG, &profile, NULL,
         "then time every kernel (forward, backward, optimiser) and each thread"},
        {"json", OPT_FLAG, &json, NULL, "one JSON object on stdout (docs/json.md)"},
        {"precision", OPT_STR, &precision, "fp32|bf16|both",
         "measure fp32, bf16 (" AIM_PRECISION_HELP ") or both (default: both where bf16 runs)"},
        {0},
    };
    if (cmd_help(&cmd_bench_entry, argc, argv, opts))
        return 0;
    char *pos[1];
    int npos;
    if (cmd_parse("bench", argc, argv, opts, pos, &npos, 0))
        return 1;
    if (batch < 1 || batch > 4096)
        return cmd_fail("bench: --batch must be in 1..4096 (got %d)", batch);
    if (steps < 1)
        return cmd_fail("bench: --steps must be positive (got %d)", steps);
    if (json && profile)
        return cmd_fail("bench: --profile prints a table; it does not go with --json");
    aim_config c;
    if (cmd_model_config(&mo, &c))
        return 1;
    cmd_set_threads(threads);
    aim_err e = {{0}};
    int want[2];
    if (want_precisions(precision, want) != 0)
        return 1;
    aim_model *m = aim_model_new(&c, 1, &e);
    if (!m)
        return cmd_fail("%s", e.msg);
    if (aim_model_reserve(m, batch, &e) != 0) {
        aim_model_free(m);
        return cmd_fail("%s", e.msg);
    }
    float *x;
    int32_t *prefix;
    double rows = bench_inputs(&c, batch, &x, &prefix);
    /* the passes run loss-only (as pretraining and validation do): the
     * FLOPs they need, the last block's tail and the head on the loss rows */
    double fwd_flops = aim_config_flops_loss(&c, rows / batch);
    aim_gemm fg;
    const char *why = "";
    aim_gemm_resolve(AIM_GEMM_AUTO, &fg, &why, NULL); /* aim_model_new took it */
    if (!json)
        print_header(&c, mo.preset ? mo.preset : "tiny", batch, rows / batch, fwd_flops, fg,
                     why);

    /* (1) the GEMM peaks on the model's shapes: sgemm (and oneDNN's fp32
     * matmul beside it, where oneDNN is built in), and bf16 (oneDNN) */
    aim_peak pk[2], dn;
    double peak[2] = {0, 0};
    int have_dn = 0;
    for (int q = 0; q < 2; q++) {
        if (!want[q])
            continue;
        peak[q] = q ? aim_gemm_peak_bf16(&c, batch, seconds, &pk[q])
                    : aim_gemm_peak(&c, batch, seconds, &pk[q]);
        if (q == 0)
            have_dn = aim_gemm_peak_dnnl_f32(&c, batch, seconds, &dn) > 0;
        if (!json)
            print_peak(q, &pk[q], peak[q], q == 0 && have_dn ? &dn : NULL);
    }

    /* (2) training steps and (3) forward passes on the random data above,
     * in each precision asked for, on the same weights */
    aim_params *p = aim_model_params(m);
    aim_adamw_opts ao;
    aim_adamw_opts_default(&ao);
    double pass[2][2][7] = {{{0}}}; /* [precision][training, forward][as bench_json] */
    struct rusage ru;
    if (!json)
        printf("%-10s %-5s %10s %10s %8s %10s %10s %6s %8s\n", "pass", "prec", "img/s",
               "GFLOP/s", "MFU", "ms/step", "img/cpu-s", "cores", "MFU/cpu");
    for (int q = 0; q < 2; q++) {
        if (!want[q])
            continue;
        if (aim_model_set_precision(m, q ? AIM_PREC_BF16 : AIM_PREC_FP32, &e) != 0) {
            free(x);
            free(prefix);
            aim_model_free(m);
            return cmd_fail("bench: %s", e.msg);
        }
        bench_run br = {m, p, &ao, x, prefix, batch, steps};
        /* MFU against the peak of the GEMM library the passes run on */
        const int on_dn = q == 0 && fg == AIM_GEMM_ONEDNN && have_dn;
        time_passes(&br, fwd_flops, on_dn ? dn.flops_per_s : peak[q],
                    on_dn ? dn.flops_per_cpu_s : pk[q].flops_per_cpu_s, pass[q]);
        const double(*row)[7] = pass[q];
        for (int k = 0; k < 2 && !json; k++)
            printf("%-10s %-5s %10.1f %10.1f %7.1f%% %10.1f %10.1f %6.2f %7.1f%%\n",
                   k ? "forward" : "training", q ? "bf16" : "fp32", row[k][0], row[k][1] / 1e9,
                   100 * row[k][2], 1e3 * row[k][3], row[k][4], row[k][5], 100 * row[k][6]);
        if (profile)
            profile_passes(&br, q);
    }
    getrusage(RUSAGE_SELF, &ru);
    if (json) {
        int rc = bench_json(&c, mo.preset ? mo.preset : "tiny", batch, steps, rows / batch,
                            fwd_flops, want, pk, peak, have_dn ? &dn : NULL, fg, pass,
                            ru.ru_maxrss * 1024.0);
        free(x);
        free(prefix);
        aim_model_free(m);
        return rc;
    }
    if (want[0] && want[1])
        printf("bf16 / fp32: training %.2fx, forward %.2fx (img/s); bf16 GEMMs: %s\n",
               pass[1][0][0] / pass[0][0][0], pass[1][1][0] / pass[0][1][0],
               aim_model_bf16_impl(m) ? aim_model_bf16_impl(m) : "?");
    printf("peak RSS %.1f MB\n", ru.ru_maxrss / 1024.0);
    free(x);
    free(prefix);
    aim_model_free(m);
    return 0;
}
