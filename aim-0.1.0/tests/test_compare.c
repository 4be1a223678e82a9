/*
 * test_compare.c - runs compared side by side (aim/engine.h "comparison"):
 * a metrics log reduced to its curve (bucket means, min, max, the last step
 * of each bucket; every finite step in exactly one bucket), validation
 * points thinned with the first and last kept, the last probe per block,
 * non-finite losses left out and counted, a log without training steps
 * refused; then through the engine: aim.compare publishes what
 * aim_engine_compare copies out, a failing call publishes nothing, and
 * aim.compare{} clears the set.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aim/engine.h"
#include "aim/metrics.h"
#include "tap.h"

/* a run folder `name` holding a metrics.jsonl of `steps` training steps
 * (loss = step, or NaN every nan_every-th step), a validation line every
 * val_every steps (val_loss = 1000 / step) and a probe every 100 steps
 * (top1 = {10 + step/100, 20 + step/100, 15}) */
static const char *make_run(const char *name, int steps, int nan_every, int val_every)
{
    const char *dir = tap_path(name);
    mkdir(dir, 0777);
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "w");
    for (int s = 1; s <= steps; s++) {
        if (nan_every && s % nan_every == 0)
            fprintf(f, "{\"run\":\"%s\",\"step\":%d,\"kind\":\"train\",\"loss\":null,\"lr\":0.001}\n",
                    name, s);
        else
            fprintf(f, "{\"run\":\"%s\",\"step\":%d,\"kind\":\"train\",\"wall\":1.5,\"loss\":%d,"
                       "\"lr\":%g}\n", name, s, s, 1e-3 * s);
        if (val_every && s % val_every == 0)
            fprintf(f, "{\"run\":\"%s\",\"step\":%d,\"kind\":\"val\",\"val_loss\":%.9g,"
                       "\"best_val_loss\":0}\n", name, s, 1000.0 / s);
        if (s % 100 == 0)
            fprintf(f, "{\"run\":\"%s\",\"step\":%d,\"kind\":\"probe\",\"images\":64,"
                       "\"top1\":[%d,%d,15],\"best_block\":2}\n", name, s, 10 + s / 100,
                    20 + s / 100);
    }
    fclose(f);
    return dir;
}

static int read_run(const char *dir, aim_compare_run *r, aim_err *e)
{
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    aim_metrics m;
    if (aim_metrics_read(path, &m, e) != 0)
        return -1;
    int rc = aim_compare_run_from_metrics(&m, path, "label", r, e);
    aim_metrics_free(&m);
    return rc;
}

/* every bucket: contiguous steps from prev_end + 1 to its step, mean of
 * loss = step over them, lo = first, hi = last; 1 if all hold */
static int buckets_exact(const aim_compare_run *r, int64_t last)
{
    int64_t prev = 0;
    for (int b = 0; b < r->ncurve; b++) {
        const aim_curve_point *p = &r->curve[b];
        double first = (double)prev + 1, end = (double)p->step;
        if (p->step <= prev || fabs(p->loss - (first + end) / 2) > 1e-3 ||
            p->lo != (float)first || p->hi != (float)end || fabs(p->lr - 1e-3 * end) > 1e-6)
            return tap_diag("bucket %d: step %lld loss %g lo %g hi %g (from %g)", b,
                            (long long)p->step, p->loss, p->lo, p->hi, first), 0;
        prev = p->step;
    }
    return prev == last;
}

static aim_reply ask(aim_engine *eng, const char *code)
{
    char *text = NULL;
    aim_eval_status st = aim_engine_eval(eng, code, "=test", 0, &text);
    aim_reply r = {.status = st, .text = text};
    return r;
}

int main(void)
{
    aim_err e = {{0}};
    aim_compare_run *r = calloc(1, sizeof *r);

    /* ---- a long run: 1200 steps into 512 buckets */
    const char *a = make_run("alpha", 1200, 0, 5);
    int rc = read_run(a, r, &e);
    tap_ok(rc == 0, "a run of 1200 steps is read%s%s", rc ? ": " : "", rc ? e.msg : "");
    tap_ok(r->ncurve == AIM_COMPARE_POINTS && r->steps == 1200 && r->train_lines == 1200,
           "... into %d points (want %d), steps %lld, lines %lld", r->ncurve, AIM_COMPARE_POINTS,
           (long long)r->steps, (long long)r->train_lines);
    tap_ok(buckets_exact(r, 1200), "each point is the mean, min and max of its own steps, "
                                   "every step in one point, the lr at its last step");
    tap_ok(r->final_loss == 1200 && r->nonfinite == 0 && !strcmp(r->label, "label"),
           "final loss %g, no non-finite loss, the label kept", r->final_loss);
    tap_ok(r->nval == AIM_COMPARE_VAL && r->val[0].step == 5 && r->val[r->nval - 1].step == 1200,
           "240 validation points thinned to %d, first (step %lld) and last (%lld) kept", r->nval,
           (long long)r->val[0].step, (long long)r->val[r->nval - 1].step);
    int rising = 1;
    for (int i = 1; i < r->nval; i++)
        rising &= r->val[i].step > r->val[i - 1].step &&
                  fabsf(r->val[i].loss - 1000.0f / (float)r->val[i].step) < 1e-4f;
    tap_ok(rising, "... in step order, each with its own loss");
    tap_ok(fabsf(r->best_val - 1000.0f / 1200) < 1e-6f && r->best_val_step == 1200,
           "the best validation loss %g at step %lld", r->best_val, (long long)r->best_val_step);
    tap_ok(r->nprobe == 3 && r->probe_step == 1200 && r->top1[0] == 22 && r->top1[1] == 32 &&
               r->top1[2] == 15 && isnan(r->top1[3]),
           "the last probe per block: %d blocks at step %lld: %g %g %g", r->nprobe,
           (long long)r->probe_step, r->top1[0], r->top1[1], r->top1[2]);

    /* ---- a short run with NaN losses and no validation */
    const char *b = make_run("beta", 90, 10, 0);
    rc = read_run(b, r, &e);
    tap_ok(rc == 0 && r->ncurve == 81 && r->nonfinite == 9 && r->steps == 90 &&
               r->train_lines == 90,
           "90 steps, 9 of them NaN: %d points, %d non-finite, steps %lld", r->ncurve,
           r->nonfinite, (long long)r->steps);
    tap_ok(r->final_loss == 89 && isnan(r->best_val) && r->nval == 0 && r->nprobe == 0,
           "the last finite loss (%g); no validation, no probe", r->final_loss);
    int one_each = 1, k = 0;
    for (int s = 1; s <= 90; s++)
        if (s % 10) {
            one_each &= r->curve[k].step == s && r->curve[k].loss == (float)s;
            k++;
        }
    tap_ok(one_each, "fewer steps than points: one point per finite step");

    /* ---- a log without training steps */
    const char *c = tap_path("gamma");
    mkdir(c, 0777);
    char cpath[600];
    snprintf(cpath, sizeof cpath, "%s/metrics.jsonl", c);
    const char *only_val = "{\"run\":\"g\",\"step\":5,\"kind\":\"val\",\"val_loss\":1.5}\n";
    tap_write(cpath, only_val, strlen(only_val));
    rc = read_run(c, r, &e);
    tap_ok(rc != 0 && tap_contains(e.msg, "gamma/metrics.jsonl: no training steps"),
           "a log without training steps is refused: %s", e.msg);

    /* ---- a LoRA run folder (aim lora --out): its lora_step losses are the
     * curve, its probe job's per-set top-1 (probe_result) the bars */
    const char *d = tap_path("delta");
    mkdir(d, 0777);
    char dpath[600];
    snprintf(dpath, sizeof dpath, "%s/metrics.jsonl", d);
    const char *lora_log =
        "{\"run\":\"d\",\"step\":15,\"kind\":\"probe_result\",\"top1\":[81.5,82.25]}\n"
        "{\"run\":\"d\",\"step\":10,\"kind\":\"lora_step\",\"loss\":0.5,\"lr\":0.001}\n"
        "{\"run\":\"d\",\"step\":20,\"kind\":\"lora_step\",\"loss\":0.25,\"lr\":0.0005}\n"
        "{\"run\":\"d\",\"step\":20,\"kind\":\"lora\",\"test_top1\":84}\n";
    tap_write(dpath, lora_log, strlen(lora_log));
    rc = read_run(d, r, &e);
    tap_ok(rc == 0 && r->ncurve == 2 && r->curve[0].step == 10 && r->curve[0].loss == 0.5f &&
               r->curve[1].step == 20 && r->curve[1].loss == 0.25f && r->curve[1].lr == 0.0005f &&
               r->steps == 20 && r->final_loss == 0.25f,
           "a LoRA run: the curve from its lora_step lines (%d points, final %g)", r->ncurve,
           rc == 0 ? r->final_loss : -1.0);
    tap_ok(rc == 0 && r->nprobe == 2 && r->top1[0] == 81.5f && r->top1[1] == 82.25f &&
               r->probe_step == 15,
           "... and the bars from its probe_result line (%d)", r->nprobe);

    /* ---- through the engine */
    aim_engine *eng = aim_engine_new(NULL, &e);
    if (!tap_ok(eng != NULL, "an engine: %s", eng ? "made" : e.msg)) {
        free(r);
        return tap_done();
    }
    aim_compare_view *v = calloc(1, sizeof *v);
    tap_ok(aim_engine_compare(eng, v) == 0, "nothing to copy before aim.compare");
    char code[2048];
    snprintf(code, sizeof code,
             "local r = aim.compare{'%s', '%s/'}\n"
             "return #r, r[1].label, r[2].label, r[1].points, r[2].nonfinite", a, b);
    aim_reply rep = ask(eng, code);
    tap_ok(rep.status == AIM_EVAL_OK && !strcmp(rep.text, "2\talpha\tbeta\t512\t9"),
           "aim.compare reads two run folders: %s", rep.text);
    aim_reply_free(&rep);
    int copied = aim_engine_compare(eng, v), unchanged;
    tap_ok(copied && v->n == 2 && !strcmp(v->run[0].label, "alpha") &&
               !strcmp(v->run[1].label, "beta") && v->run[0].ncurve == 512 &&
               v->run[1].ncurve == 81 && buckets_exact(&v->run[0], 1200),
           "... and publishes them: %d runs, %s (%d points), %s (%d points)", v->n,
           v->run[0].label, v->run[0].ncurve, v->run[1].label, v->run[1].ncurve);
    unchanged = aim_engine_compare(eng, v) == 0;
    tap_ok(unchanged, "an unchanged comparison is not copied again");
    uint64_t seq = v->seq;
    snprintf(code, sizeof code, "return aim.compare('%s', '%s')", a, c);
    rep = ask(eng, code);
    tap_ok(rep.status == AIM_EVAL_OK && !strncmp(rep.text, "nil\t", 4) &&
               tap_contains(rep.text, "gamma/metrics.jsonl: no training steps"),
           "a run without training steps: nil and a message naming it: %.80s", rep.text);
    aim_reply_free(&rep);
    unchanged = aim_engine_compare(eng, v) == 0;
    tap_ok(unchanged && v->seq == seq && v->n == 2, "... and nothing is published");
    rep = ask(eng, "return #aim.compare{}");
    copied = aim_engine_compare(eng, v);
    tap_ok(rep.status == AIM_EVAL_OK && !strcmp(rep.text, "0") && copied && v->n == 0 &&
               v->seq > seq,
           "aim.compare{} clears the comparison (%d runs)", v->n);
    aim_reply_free(&rep);
    aim_engine_free(eng);
    free(v);
    free(r);
    return tap_done();
}
