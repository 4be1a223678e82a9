/*
 * cmd_probe.c - `aim probe`: how good are a frozen trunk's features? Trains
 * an attentive (or linear) probe on the features of a block set, or sweeps
 * every block (or window of blocks) from one trunk pass, and reports top-1 on
 * the test split. Baselines: --random-init (same config, untrained trunk) and
 * --raw (logistic regression on the pixels). --json: the results as one JSON
 * object on stdout, progress on stderr as always.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aim/dist.h"
#include "aim/io.h"
#include "aim/job.h"
#include "aim/json.h"
#include "aim/probe.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"

static int probe_exec(int argc, char **argv);

const struct aim_cmd cmd_probe_entry = {
    .name = "probe",
    .usage = "[WEIGHTS] [--data SPEC] [--blocks 3,4 | --sweep [--window K]] [--kind attentive|linear] [--json]",
    .summary = "probe a frozen trunk: top-1 per block (or block set) on the test split",
    .help = "Features are the average of the raw outputs of the chosen blocks (1-based), with\n"
            "no mask, computed once for all probed sets and kept as half floats. The\n"
            "attentive probe is AIM's (BatchNorm without affine, one learned query, k/v\n"
            "projections, heads of the trunk, bias-free classifier); the linear probe is\n"
            "token mean, BatchNorm, linear. AdamW, warmup + cosine, cross-entropy.\n"
            "Without --blocks or --sweep the middle blocks are probed. Baselines:\n"
            "--random-init probes a freshly initialised trunk of the same config;\n"
            "--raw fits the linear probe on raw pixels (no WEIGHTS needed).\n"
            "--out DIR makes DIR a run folder (created if needed): run.json, and in\n"
            "metrics.jsonl and a TensorBoard event file a \"probe_epoch\" line per epoch of\n"
            "each set and a \"probe_result\" line with top-1 per set (aim runs lists it).\n"
            "--json prints the results as one JSON object on stdout (docs/json.md).",
    .exec = probe_exec,
};

typedef struct pctx {
    int tty, verbose, json;
    const char *kind;
} pctx;

static void on_extract(void *ctx, int64_t done, int64_t total)
{
    pctx *c = ctx;
    if (c->tty)
        fprintf(stderr, "\r\033[Kfeatures: %lld/%lld images", (long long)done, (long long)total);
    if (done == total && c->tty)
        fprintf(stderr, "\n");
}

static int on_epoch(void *ctx, int epoch, float loss, float train_top1, float test_top1)
{
    pctx *c = ctx;
    if (c->verbose)
        fprintf(stderr, "  epoch %2d: loss %.4f  train %.2f%%  test %.2f%%\n", epoch, loss,
                train_top1, test_top1);
    return 0;
}

static int on_set(void *ctx, int index, const aim_probe_set_result *r)
{
    pctx *c = ctx;
    if (c->json)
        return 0;
    printf("%-12s %-9s %8.2f%% %8.2f%% %8.1f\n", r->label, c->kind, r->test_top1, r->train_top1,
           r->seconds);
    fflush(stdout);
    return 0;
}

/* --json: the job's results by name (docs/json.md) */
static int probe_json(const aim_probe_job_result *r, const char *weights, const char *kind,
                      int64_t ntrain, int64_t ntest, const char *saved, const char *out)
{
    aim_jw w;
    aim_jw_init(&w, stdout);
    aim_jw_open(&w, '{');
    aim_jw_kstr(&w, "weights", weights);
    aim_jw_kstr(&w, "probe", kind);
    aim_jw_kint(&w, "train_images", ntrain);
    aim_jw_kint(&w, "test_images", ntest);
    aim_jw_key(&w, "sets");
    aim_jw_open(&w, '[');
    for (int i = 0; i < r->nsets; i++) {
        const aim_probe_set_result *s = &r->sets[i];
        aim_jw_open(&w, '{');
        aim_jw_kstr(&w, "label", s->label);
        aim_jw_key(&w, "blocks");
        aim_jw_open(&w, '[');
        for (int b = 0; b < s->nblocks; b++)
            aim_jw_int(&w, s->blocks[b]);
        aim_jw_close(&w, ']');
        aim_jw_knum(&w, "test_top1", s->test_top1);
        aim_jw_knum(&w, "train_top1", s->train_top1);
        aim_jw_knum(&w, "train_loss", s->train_loss);
        aim_jw_knum(&w, "seconds", s->seconds);
        aim_jw_close(&w, '}');
    }
    aim_jw_close(&w, ']');
    aim_jw_key(&w, "best");
    if (r->best >= 0 && r->best < r->nsets)
        aim_jw_int(&w, r->best);
    else
        aim_jw_null(&w);
    aim_jw_key(&w, "stopped");
    aim_jw_bool(&w, r->stopped);
    aim_jw_kstr(&w, "saved", saved);
    aim_jw_kstr(&w, "out", out);
    aim_jw_close(&w, '}');
    return aim_jw_finish(&w) != 0 ? cmd_fail("probe: cannot write the JSON to stdout") : 0;
}

static int probe_exec(int argc, char **argv)
{
    aim_probe_spec s;
    aim_probe_spec_default(&s);
    if (cmd_help_job(&cmd_probe_entry, argc, argv, aim_probe_options)) {
        printf("  %-22s %s\n", "--json", "the results as one JSON object on stdout (docs/json.md)");
        return 0;
    }
    const int json = cmd_take_flag(&argc, argv, "json");
    char *pos[1];
    int npos;
    if (cmd_parse_job("probe", argc, argv, aim_probe_options, &s, pos, &npos, 1))
        return 1;
    const int raw = s.raw, random_init = s.random_init;
    const char *preset = s.preset, *save = s.save, *out = s.out;
    if (!raw && npos == 0 && !(random_init && preset))
        return cmd_fail("probe: give the WEIGHTS to probe (or --raw, or --random-init --preset P)");
    cmd_set_threads((int)s.threads);
    aim_err e = {{0}};
    aim_model *m = NULL;
    aim_config c;
    int rc = 1;
    if (npos) {
        m = aim_model_load(pos[0], &e);
        if (!m)
            return cmd_fail("%s", e.msg);
        c = *aim_model_config(m);
    } else if (preset) {
        if (aim_config_preset(preset, &c, &e) != 0)
            return cmd_fail("%s", e.msg);
    } else {
        aim_config_preset("tiny", &c, &e);
    }
    if (random_init && (m || preset)) {
        aim_config rc_ = c;
        aim_model_free(m);
        m = aim_model_new(&rc_, (uint64_t)s.seed + 1, &e);
    }
    aim_probe_job job;
    aim_dataset *tr = NULL, *te = NULL;
    if (aim_probe_spec_job(&s, raw ? 0 : c.depth, &job, &e) != 0) {
        cmd_fail("probe: %s", e.msg);
        goto done_data;
    }
    job.dist = aim_dist_world();
    char note[400];
    int bad = aim_job_open_splits(s.data, &c, m, s.train_limit, s.test_limit, (uint64_t)s.seed,
                                  &tr, &te, note, sizeof note, &e);
    if (note[0])
        fprintf(stderr, "aim: note: %s\n", note);
    if (bad) {
        cmd_fail("%s", e.msg);
        goto done_data;
    }
    const char *kind_s = s.kind;
    /* the run folder (rank 0 writes it), before any work */
    char source[1024];
    if (random_init)
        snprintf(source, sizeof source, "random-init:%s", npos ? pos[0] : preset ? preset : "tiny");
    job.weights = raw ? NULL : random_init ? source : pos[0];
    if (out && cmd_open_runlog(out, job.dist, &job.log) != 0)
        goto done_data;
    pctx pc = {.tty = isatty(2), .verbose = !s.quiet, .json = json,
               .kind = raw ? "raw-lin" : kind_s};
    job.train.on_epoch = on_epoch;
    job.train.ctx = &pc;
    job.on_features = on_extract;
    job.on_set = on_set;
    job.ctx = &pc;
    if (!raw)
        fprintf(stderr, "aim probe: %s features of %d block set(s) for %lld + %lld images\n",
                random_init ? "random-init trunk" : "trunk", job.nsets ? job.nsets : 1,
                (long long)tr->n, (long long)te->n);
    if (!json) {
        printf("%-12s %-9s %9s %9s %8s\n", "blocks", "probe", "test top1", "train", "seconds");
        fflush(stdout);
    }
    aim_probe_job_result res;
    if (aim_probe_job_run(m, tr, te, &job, &res, &e) != 0) {
        cmd_fail("%s", e.msg);
        cmd_close_runlog(job.log);
        goto done_data;
    }
    if (cmd_close_runlog(job.log) != 0) {
        aim_probe_free(res.best_probe);
        goto done_data;
    }
    if (res.nsets > 1 && !json)
        printf("best: blocks %s, %.2f%% top-1\n", res.sets[res.best].label,
               res.sets[res.best].test_top1);
    if (save && res.best_probe && aim_dist_rank(job.dist) == 0) {
        if (!m) {
            cmd_fail("probe: --save needs a trunk (not --raw)");
            aim_probe_free(res.best_probe);
            goto done_data;
        }
        if (aim_probe_save_with_model(save, m, res.best_probe, res.sets[res.best].label, &e)) {
            cmd_fail("%s", e.msg);
            aim_probe_free(res.best_probe);
            goto done_data;
        }
        if (!json)
            printf("saved trunk + probe head: %s\n", save);
    }
    const char *saved = save && res.best_probe ? save : NULL;
    aim_probe_free(res.best_probe);
    res.best_probe = NULL;
    rc = json && aim_dist_rank(job.dist) == 0
             ? probe_json(&res, job.weights, pc.kind, tr->n, te->n, saved, out)
             : 0;
done_data:
    aim_dataset_free(tr);
    aim_dataset_free(te);
    aim_model_free(m);
    return rc;
}
