/*
 * cmd_probe.c - `aim probe`: how good are a frozen trunk's features? Trains
 * an attentive (or linear) probe on the features of a block set, or sweeps
 * every block (or window of blocks) from one trunk pass, and reports top-1 on
 * the test split. Baselines: --random-init (same config, untrained trunk) and
 * --raw (logistic regression on the pixels).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aim/dist.h"
#include "aim/io.h"
#include "aim/probe.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"

static int probe_exec(int argc, char **argv);

const struct aim_cmd cmd_probe_entry = {
    .name = "probe",
    .usage = "[WEIGHTS] [--data SPEC] [--blocks 3,4 | --sweep [--window K]] [--kind attentive|linear]",
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
            "each set and a \"probe_result\" line with top-1 per set (aim runs lists it).",
    .exec = probe_exec,
};

typedef struct pctx {
    int tty, verbose;
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
    printf("%-12s %-9s %8.2f%% %8.2f%% %8.1f\n", r->label, c->kind, r->test_top1, r->train_top1,
           r->seconds);
    fflush(stdout);
    return 0;
}

static int probe_exec(int argc, char **argv)
{
    const char *data = "fashion-mnist", *blocks_s = NULL, *kind_s = "attentive", *save = NULL;
    const char *preset = NULL, *out = NULL;
    int sweep = 0, window = 1, random_init = 0, raw = 0, threads = 0, quiet = 0, fbatch = 64;
    int mirror = 0, epochs = -1;
    int64_t train_limit = 0, test_limit = 0, seed = 0;
    aim_probe_opts po;
    aim_probe_opts_default(&po);
    cmd_opt opts[] = {
        {"data", OPT_STR, &data, "SPEC", "dataset with train/test splits (default fashion-mnist)"},
        {"blocks", OPT_STR, &blocks_s, "LIST", "average of these blocks (1-based), e.g. 3,4"},
        {"sweep", OPT_FLAG, &sweep, NULL, "probe every block (or window) separately"},
        {"window", OPT_INT, &window, "K", "with --sweep: windows of K consecutive blocks"},
        {"kind", OPT_STR, &kind_s, "KIND", "attentive (default) or linear"},
        {"epochs", OPT_INT, &epochs, "E",
         "probe training epochs (default 30; 15 per block with --sweep)"},
        {"batch", OPT_INT, &po.batch, "B", "probe batch (default 256)"},
        {"lr", OPT_FLOAT, &po.lr, "LR", "peak learning rate (default 1e-2)"},
        {"wd", OPT_FLOAT, &po.weight_decay, "WD", "weight decay (default 0.05)"},
        {"mirror", OPT_FLAG, &mirror, NULL,
         "train on the training images and their mirror images (2x features and epoch)"},
        {"train-limit", OPT_I64, &train_limit, "N", "use the first N training images"},
        {"test-limit", OPT_I64, &test_limit, "N", "use the first N test images"},
        {"random-init", OPT_FLAG, &random_init, NULL, "baseline: an untrained trunk, same config"},
        {"preset", OPT_STR, &preset, "NAME", "with --random-init and no WEIGHTS: the config"},
        {"raw", OPT_FLAG, &raw, NULL, "baseline: linear probe on raw pixels"},
        {"seed", OPT_I64, &seed, "S", "seed (default 0)"},
        {"threads", OPT_INT, &threads, "T", "threads for OpenMP and OpenBLAS"},
        {"save", OPT_STR, &save, "OUT", "save trunk + probe head (head.*) as safetensors"},
        {"quiet", OPT_FLAG, &quiet, NULL, "no per-epoch lines on stderr"},
        {"out", OPT_STR, &out, "DIR", "run folder: run.json, metrics.jsonl, TensorBoard events"},
        {0},
    };
    if (cmd_help(&cmd_probe_entry, argc, argv, opts))
        return 0;
    char *pos[1];
    int npos;
    if (cmd_parse("probe", argc, argv, opts, pos, &npos, 1))
        return 1;
    aim_probe_kind kind;
    if (!strcmp(kind_s, "attentive"))
        kind = AIM_PROBE_ATTENTIVE;
    else if (!strcmp(kind_s, "linear"))
        kind = AIM_PROBE_LINEAR;
    else
        return cmd_fail("probe: --kind must be attentive or linear (got \"%s\")", kind_s);
    if (raw)
        kind = AIM_PROBE_LINEAR;
    if (raw && mirror)
        return cmd_fail("probe: --mirror needs a trunk's features (not --raw)");
    po.epochs = epochs >= 0 ? epochs : sweep ? AIM_PROBE_SWEEP_EPOCHS : AIM_PROBE_EPOCHS;
    if (po.epochs < 1 || po.batch < 2 || !(po.lr > 0))
        return cmd_fail("probe: --epochs >= 1, --batch >= 2 and --lr > 0 are needed");
    if (blocks_s && sweep)
        return cmd_fail("probe: --blocks and --sweep exclude each other");
    if (!raw && npos == 0 && !(random_init && preset))
        return cmd_fail("probe: give the WEIGHTS to probe (or --raw, or --random-init --preset P)");
    po.seed = (uint64_t)seed;
    cmd_set_threads(threads);
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
        m = aim_model_new(&rc_, (uint64_t)seed + 1, &e);
    }
    aim_dataset *tr = cmd_open_data(data, "train", c.channels, c.image, train_limit, (uint64_t)seed);
    aim_dataset *te = tr ? cmd_open_data(data, "test", c.channels, c.image, test_limit, (uint64_t)seed) : NULL;
    if (!tr || !te)
        goto done_data;
    /* normalise the data the way the model saw it in pretraining */
    if (m && c.nmean == c.channels) {
        for (int k = 0; k < c.channels; k++) {
            tr->mean[k] = te->mean[k] = c.mean[k];
            tr->std[k] = te->std[k] = c.std[k];
        }
    }

    aim_probe_job job = {.kind = kind, .raw = raw, .train = po, .feature_batch = fbatch,
                         .mirror = mirror, .dist = aim_dist_world()};
    int L = c.depth;
    if (!raw && sweep) {
        if (window < 1 || window > L) {
            cmd_fail("probe: --window must be in 1..%d", L);
            goto done_data;
        }
        aim_probe_job_sweep(&job, L, window);
    } else if (!raw && blocks_s) {
        int nb = cmd_parse_int_list(blocks_s, job.blocks[0], AIM_PROBE_MAX_BLOCKS);
        if (nb < 1) {
            cmd_fail("probe: --blocks expects a list like 3,4 (got \"%s\")", blocks_s);
            goto done_data;
        }
        for (int k = 0; k < nb; k++)
            if (job.blocks[0][k] < 1 || job.blocks[0][k] > L) {
                cmd_fail("probe: block %d is not in 1..%d", job.blocks[0][k], L);
                goto done_data;
            }
        job.nblocks[0] = nb;
        job.nsets = 1;
    }
    /* the run folder (rank 0 writes it), before any work */
    char source[1024];
    if (random_init)
        snprintf(source, sizeof source, "random-init:%s", npos ? pos[0] : preset ? preset : "tiny");
    job.weights = raw ? NULL : random_init ? source : pos[0];
    if (out && cmd_open_runlog(out, job.dist, &job.log) != 0)
        goto done_data;
    pctx pc = {.tty = isatty(2), .verbose = !quiet, .kind = raw ? "raw-lin" : kind_s};
    job.train.on_epoch = on_epoch;
    job.train.ctx = &pc;
    job.on_features = on_extract;
    job.on_set = on_set;
    job.ctx = &pc;
    if (!raw)
        fprintf(stderr, "aim probe: %s features of %d block set(s) for %lld + %lld images\n",
                random_init ? "random-init trunk" : "trunk", job.nsets ? job.nsets : 1,
                (long long)tr->n, (long long)te->n);
    printf("%-12s %-9s %9s %9s %8s\n", "blocks", "probe", "test top1", "train", "seconds");
    fflush(stdout);
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
    if (res.nsets > 1)
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
        printf("saved trunk + probe head: %s\n", save);
    }
    aim_probe_free(res.best_probe);
    rc = 0;
done_data:
    aim_dataset_free(tr);
    aim_dataset_free(te);
    aim_model_free(m);
    return rc;
}
