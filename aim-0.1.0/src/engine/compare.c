/*
 * compare.c - one run of a comparison (aim/engine.h "comparison") from its
 * metrics log: the training curve reduced to at most AIM_COMPARE_POINTS
 * buckets of consecutive logged steps, the validation points (thinned
 * evenly to AIM_COMPARE_VAL, the first and the last kept) and the last
 * probe's top-1 per block. Reading the file and publishing are the
 * caller's (src/lua/l_compare.c); this is arithmetic on aim_metrics.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/engine.h"
#include "aim/metrics.h"

/* the value of key in row r, or NaN when the row does not hold it */
static double value_of(const aim_metric *r, const char *key)
{
    for (int k = 0; k < r->n; k++)
        if (!strcmp(r->keys[k], key))
            return r->vals[k];
    return NAN;
}

/* copy at most cap-1 bytes of a UTF-8 string, never half a character */
static void copy_label(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* "<kind>_top1_block<b>" -> b in 1..AIM_PROBE_BLOCKS, else 0 */
static long probe_block(const char *kind, const char *key)
{
    size_t n = strlen(kind);
    if (strncmp(key, kind, n) || strncmp(key + n, "_top1_block", 11))
        return 0;
    char *end;
    long b = strtol(key + n + 11, &end, 10);
    return *end || b < 1 || b > AIM_PROBE_BLOCKS ? 0 : b;
}

/* Reduce nf finite training points (step, loss, lr) to out->curve. */
static void reduce_curve(const int64_t *step, const float *loss, const float *lr, int64_t nf,
                         aim_compare_run *out)
{
    int64_t nb = nf < AIM_COMPARE_POINTS ? nf : AIM_COMPARE_POINTS;
    for (int64_t b = 0; b < nb; b++) {
        int64_t i0 = b * nf / nb, i1 = (b + 1) * nf / nb; /* [i0, i1), never empty */
        double sum = 0;
        float lo = loss[i0], hi = loss[i0];
        for (int64_t i = i0; i < i1; i++) {
            sum += loss[i];
            lo = loss[i] < lo ? loss[i] : lo;
            hi = loss[i] > hi ? loss[i] : hi;
        }
        out->curve[b] = (aim_curve_point){step[i1 - 1], (float)(sum / (double)(i1 - i0)), lo, hi,
                                          lr[i1 - 1]};
    }
    out->ncurve = (int)nb;
}

int aim_compare_run_from_metrics(const aim_metrics *m, const char *path, const char *label,
                                 aim_compare_run *out, aim_err *e)
{
    memset(out, 0, sizeof *out);
    copy_label(out->label, sizeof out->label, label);
    out->final_loss = NAN;
    out->best_val = NAN;
    /* the curve: pretraining's "train" lines, or for a LoRA run folder
     * (aim lora --out) its "lora_step" lines */
    int64_t ntrain = 0, nlora = 0, nval = 0;
    for (int r = 0; r < m->n; r++) {
        ntrain += !strcmp(m->rows[r].kind, "train");
        nlora += !strcmp(m->rows[r].kind, "lora_step");
        nval += !strcmp(m->rows[r].kind, "val") && isfinite(value_of(&m->rows[r], "val_loss"));
    }
    const char *ck = ntrain ? "train" : "lora_step";
    const char *lk = ntrain ? "loss" : "lora_step_loss", *rk = ntrain ? "lr" : "lora_step_lr";
    ntrain = ntrain ? ntrain : nlora;
    if (ntrain == 0)
        return aim_errf(e, "%s: no training steps (a run's metrics.jsonl has a \"train\" or "
                           "\"lora_step\" line per step)", path);
    int64_t *step = aim_xmalloc((size_t)ntrain * sizeof *step);
    float *loss = aim_xmalloc((size_t)ntrain * sizeof *loss);
    float *lr = aim_xmalloc((size_t)ntrain * sizeof *lr);
    int64_t *vstep = aim_xmalloc((size_t)(nval ? nval : 1) * sizeof *vstep);
    float *vloss = aim_xmalloc((size_t)(nval ? nval : 1) * sizeof *vloss);
    int64_t nf = 0, nv = 0;
    const aim_metric *probe = NULL;
    for (int r = 0; r < m->n; r++) {
        const aim_metric *row = &m->rows[r];
        if (!strcmp(row->kind, ck)) {
            out->train_lines++;
            out->steps = row->step > out->steps ? row->step : out->steps;
            double l = value_of(row, lk);
            if (!isfinite(l) || !isfinite((float)l)) {
                out->nonfinite++;
                continue;
            }
            step[nf] = row->step;
            loss[nf] = (float)l;
            lr[nf] = (float)value_of(row, rk);
            out->final_loss = loss[nf];
            nf++;
        } else if (!strcmp(row->kind, "val")) {
            double v = value_of(row, "val_loss");
            if (!isfinite(v))
                continue;
            vstep[nv] = row->step;
            vloss[nv] = (float)v;
            if (!(v >= out->best_val)) {
                out->best_val = (float)v;
                out->best_val_step = row->step;
            }
            nv++;
        } else if (!strcmp(row->kind, "probe") || !strcmp(row->kind, "probe_result")) {
            /* the live probe's top-1 per block, or a probe job's per set */
            for (int k = 0; k < row->n; k++)
                if (probe_block(row->kind, row->keys[k]) > 0) {
                    probe = row;
                    break;
                }
        }
    }
    reduce_curve(step, loss, lr, nf, out);
    int keep = nv < AIM_COMPARE_VAL ? (int)nv : AIM_COMPARE_VAL;
    for (int k = 0; k < keep; k++) {
        int64_t i = keep > 1 ? (int64_t)llround((double)k * (double)(nv - 1) / (keep - 1)) : nv - 1;
        out->val[k] = (aim_val_point){vstep[i], vloss[i]};
    }
    out->nval = keep;
    if (probe) {
        for (int b = 0; b < AIM_PROBE_BLOCKS; b++)
            out->top1[b] = NAN;
        out->probe_step = probe->step;
        for (int k = 0; k < probe->n; k++) {
            long b = probe_block(probe->kind, probe->keys[k]);
            if (b < 1)
                continue;
            out->top1[b - 1] = (float)probe->vals[k];
            out->nprobe = (int)b > out->nprobe ? (int)b : out->nprobe;
        }
    }
    free(step);
    free(loss);
    free(lr);
    free(vstep);
    free(vloss);
    return 0;
}
