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
            "--raw fits the linear probe on raw pixels (no WEIGHTS needed).",
    .exec = probe_exec,
};

typedef struct pctx {
    int tty, verbose;
    const char *label;
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
        fprintf(stderr, "  %s epoch %2d: loss %.4f  train %.2f%%  test %.2f%%\n", c->label, epoch,
                loss, train_top1, test_top1);
    return 0;
}

/* trunk + pixel head + probe head in one safetensors file */
static int save_with_head(const char *path, aim_model *m, aim_probe *p, const char *layers,
                          aim_err *e)
{
    aim_params *tp = aim_model_params(m), *hp = aim_probe_params(p);
    int n = tp->n + hp->n;
    aim_st_entry *ent = aim_xcalloc((size_t)n, sizeof *ent);
    for (int i = 0; i < n; i++) {
        aim_params *src = i < tp->n ? tp : hp;
        const aim_param *t = &src->t[i < tp->n ? i : i - tp->n];
        ent[i].name = t->name;
        ent[i].dtype = AIM_F32;
        ent[i].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++)
            ent[i].shape[d] = t->shape[d];
        ent[i].data = src->data + t->offset;
    }
    char vals[AIM_CONFIG_META_MAX][160];
    const char *kv[2 * AIM_CONFIG_META_MAX + 6];
    int nm = aim_config_to_meta(aim_model_config(m), vals, kv);
    char classes[16];
    snprintf(classes, sizeof classes, "%d", aim_probe_classes(p));
    kv[2 * nm] = "classes";
    kv[2 * nm + 1] = classes;
    kv[2 * nm + 2] = "probe_layers";
    kv[2 * nm + 3] = layers;
    kv[2 * nm + 4] = "probe_kind";
    kv[2 * nm + 5] = aim_probe_get_kind(p) == AIM_PROBE_ATTENTIVE ? "attentive" : "linear";
    int rc = aim_st_write(path, ent, n, kv, nm + 3, e);
    free(ent);
    return rc;
}

static int probe_exec(int argc, char **argv)
{
    const char *data = "fashion-mnist", *blocks_s = NULL, *kind_s = "attentive", *save = NULL;
    const char *preset = NULL;
    int sweep = 0, window = 1, random_init = 0, raw = 0, threads = 0, quiet = 0, fbatch = 64;
    int64_t train_limit = 0, test_limit = 0, seed = 0;
    aim_probe_opts po;
    aim_probe_opts_default(&po);
    cmd_opt opts[] = {
        {"data", OPT_STR, &data, "SPEC", "dataset with train/test splits (default fashion-mnist)"},
        {"blocks", OPT_STR, &blocks_s, "LIST", "average of these blocks (1-based), e.g. 3,4"},
        {"sweep", OPT_FLAG, &sweep, NULL, "probe every block (or window) separately"},
        {"window", OPT_INT, &window, "K", "with --sweep: windows of K consecutive blocks"},
        {"kind", OPT_STR, &kind_s, "KIND", "attentive (default) or linear"},
        {"epochs", OPT_INT, &po.epochs, "E", "probe training epochs (default 15)"},
        {"batch", OPT_INT, &po.batch, "B", "probe batch (default 256)"},
        {"lr", OPT_FLOAT, &po.lr, "LR", "peak learning rate (default 1e-2)"},
        {"wd", OPT_FLOAT, &po.weight_decay, "WD", "weight decay (default 0.05)"},
        {"train-limit", OPT_I64, &train_limit, "N", "use the first N training images"},
        {"test-limit", OPT_I64, &test_limit, "N", "use the first N test images"},
        {"random-init", OPT_FLAG, &random_init, NULL, "baseline: an untrained trunk, same config"},
        {"preset", OPT_STR, &preset, "NAME", "with --random-init and no WEIGHTS: the config"},
        {"raw", OPT_FLAG, &raw, NULL, "baseline: linear probe on raw pixels"},
        {"seed", OPT_I64, &seed, "S", "seed (default 0)"},
        {"threads", OPT_INT, &threads, "T", "threads for OpenMP and OpenBLAS"},
        {"save", OPT_STR, &save, "OUT", "save trunk + probe head (head.*) as safetensors"},
        {"quiet", OPT_FLAG, &quiet, NULL, "no per-epoch lines on stderr"},
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
    int K = tr->nclasses > te->nclasses ? tr->nclasses : te->nclasses;
    if (K < 2) {
        cmd_fail("probe: the data has %d class(es)", K);
        goto done_data;
    }

    /* the block sets */
    int L = c.depth, nsets = 0;
    int sets_buf[64][64], sizes[64];
    if (!raw) {
        if (sweep) {
            if (window < 1 || window > L) {
                cmd_fail("probe: --window must be in 1..%d", L);
                goto done_data;
            }
            for (int i = 1; i + window - 1 <= L && nsets < 64; i++, nsets++) {
                sizes[nsets] = window;
                for (int j = 0; j < window; j++)
                    sets_buf[nsets][j] = i + j;
            }
        } else if (blocks_s) {
            int nb = cmd_parse_int_list(blocks_s, sets_buf[0], 64);
            if (nb < 1) {
                cmd_fail("probe: --blocks expects a list like 3,4 (got \"%s\")", blocks_s);
                goto done_data;
            }
            for (int j = 0; j < nb; j++)
                if (sets_buf[0][j] < 1 || sets_buf[0][j] > L) {
                    cmd_fail("probe: block %d is not in 1..%d", sets_buf[0][j], L);
                    goto done_data;
                }
            sizes[0] = nb;
            nsets = 1;
        } else {
            /* the middle blocks: L/2 and L/2 + 1 (one block when L < 3) */
            sizes[0] = L >= 3 ? 2 : 1;
            sets_buf[0][0] = L >= 3 ? L / 2 : (L + 1) / 2;
            sets_buf[0][1] = L / 2 + 1;
            nsets = 1;
        }
    } else {
        nsets = 1;
    }
    const int *setp[64];
    for (int s = 0; s < nsets; s++)
        setp[s] = sets_buf[s];

    pctx pc = {.tty = isatty(2), .verbose = !quiet};
    aim_feats *ftr[64] = {0}, *fte[64] = {0};
    if (raw) {
        ftr[0] = aim_features_raw(tr, 0, &e);
        fte[0] = ftr[0] ? aim_features_raw(te, 0, &e) : NULL;
        if (!ftr[0] || !fte[0]) {
            cmd_fail("%s", e.msg);
            goto done_feats;
        }
    } else {
        fprintf(stderr, "aim probe: %s features of %d block set(s) for %lld + %lld images\n",
                random_init ? "random-init trunk" : "trunk", nsets, (long long)tr->n,
                (long long)te->n);
        if (aim_features_extract(m, tr, 0, fbatch, nsets, setp, sizes, ftr, on_extract, &pc, &e) ||
            aim_features_extract(m, te, 0, fbatch, nsets, setp, sizes, fte, on_extract, &pc, &e)) {
            cmd_fail("%s", e.msg);
            goto done_feats;
        }
    }
    printf("%-12s %-9s %9s %9s %8s\n", "blocks", "probe", "test top1", "train", "seconds");
    fflush(stdout);
    int best = -1;
    float best_top1 = -1;
    aim_probe *best_probe = NULL;
    char best_layers[256] = "";
    for (int s = 0; s < nsets; s++) {
        char layers[256] = "";
        if (raw)
            snprintf(layers, sizeof layers, "pixels");
        for (int j = 0; !raw && j < sizes[s]; j++)
            snprintf(layers + strlen(layers), sizeof layers - strlen(layers), "%s%d", j ? "," : "",
                     sets_buf[s][j]);
        pc.label = layers;
        aim_probe *p = aim_probe_new(kind, ftr[s]->N, ftr[s]->D, c.heads, K, (uint64_t)seed, &e);
        if (!p) {
            cmd_fail("%s", e.msg);
            goto done_feats;
        }
        po.on_epoch = on_epoch;
        po.ctx = &pc;
        aim_probe_result res;
        if (aim_probe_train(p, ftr[s], fte[s], &po, &res, &e) != 0) {
            aim_probe_free(p);
            cmd_fail("%s", e.msg);
            goto done_feats;
        }
        printf("%-12s %-9s %8.2f%% %8.2f%% %8.1f\n", layers, raw ? "raw-lin" : kind_s,
               res.test_top1, res.train_top1, res.seconds);
        fflush(stdout);
        if (res.test_top1 > best_top1) {
            best_top1 = res.test_top1;
            best = s;
            aim_probe_free(best_probe);
            best_probe = p;
            snprintf(best_layers, sizeof best_layers, "%s", layers);
        } else {
            aim_probe_free(p);
        }
        /* free this set's features early: a sweep holds them all otherwise */
        aim_feats_free(ftr[s]);
        aim_feats_free(fte[s]);
        ftr[s] = fte[s] = NULL;
    }
    if (nsets > 1)
        printf("best: blocks %s, %.2f%% top-1\n", best_layers, best_top1);
    (void)best;
    if (save && best_probe) {
        if (!m) {
            cmd_fail("probe: --save needs a trunk (not --raw)");
            aim_probe_free(best_probe);
            goto done_feats;
        }
        if (save_with_head(save, m, best_probe, best_layers, &e) != 0) {
            cmd_fail("%s", e.msg);
            aim_probe_free(best_probe);
            goto done_feats;
        }
        printf("saved trunk + probe head: %s\n", save);
    }
    aim_probe_free(best_probe);
    rc = 0;
done_feats:
    for (int s = 0; s < nsets; s++) {
        aim_feats_free(ftr[s]);
        aim_feats_free(fte[s]);
    }
done_data:
    aim_dataset_free(tr);
    aim_dataset_free(te);
    aim_model_free(m);
    return rc;
}
