/*
 * cmd_lora.c - `aim lora`: fine-tune a pretrained trunk with LoRA adapters
 * (rank r on q, v and proj of the chosen blocks) trained jointly with an
 * attentive probe head; the trunk itself stays frozen. Progress per step,
 * train / test top-1 per epoch; optionally the frozen attentive probe of the
 * same blocks first (--compare), so the gain is measured by one command.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aim/dist.h"
#include "aim/probe.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"
#include "cmd/progress.h"

static int lora_exec(int argc, char **argv);

const struct aim_cmd cmd_lora_entry = {
    .name = "lora",
    .usage = "WEIGHTS [--data SPEC] [--rank 8] [--alpha A] [--blocks LIST] [--probe-blocks LIST]",
    .summary = "LoRA fine-tuning: adapters on a frozen trunk + an attentive head, test top-1",
    .help = "Adapters as shared/AIM.md (loralib): qkv.lora_A [2r,D] / lora_B [2D,r] on q and\n"
            "v, proj.lora_A [r,D] / lora_B [D,r], output += (alpha/r) B A x, B starting at\n"
            "zero, on the probe blocks or --blocks (adapters above the deepest probe block\n"
            "would learn nothing). Everything else is frozen; the adapters and a new\n"
            "attentive probe head on the features of --probe-blocks (default: the\n"
            "middle blocks) train jointly: AdamW, warmup + cosine, the adapters at --lr and\n"
            "the head at --head-lr (--augment: random flips and mild crops; --flip: flips alone). Every step runs the trunk\n"
            "forward and backward (down to the lowest adapted block), so an epoch costs\n"
            "about two thirds of a pretraining epoch. WEIGHTS with adapters already\n"
            "(a --save of an earlier run) continue training them.\n"
            "--compare first trains the frozen attentive probe on the same blocks with the\n"
            "same images (aim probe's protocol), then LoRA starts from that head (linear\n"
            "probing then fine-tuning, LP-FT; --fresh-head starts from a new one), and\n"
            "prints the difference at the end. --head FILE starts from a probe saved by\n"
            "aim probe --save (its blocks become the probe blocks).\n"
            "--out DIR makes DIR a run folder (created if needed): run.json, and in\n"
            "metrics.jsonl and a TensorBoard event file a \"lora_step\" line every\n"
            "--log-every steps and a \"lora\" line per epoch (test_top1: aim runs' LoRA\n"
            "column); with --compare also the frozen probe's \"probe_epoch\" and\n"
            "\"probe_result\" lines.",
    .exec = lora_exec,
};

typedef struct lctx {
    int tty, quiet;
} lctx;

static int on_step(void *ctx, const aim_step_info *s)
{
    lctx *c = ctx;
    if (!c->quiet)
        cmd_step_line(s, c->tty);
    return 0;
}

static int on_epoch(void *ctx, int epoch, float loss, float train_top1, float test_top1)
{
    lctx *c = ctx;
    if (c->tty && !c->quiet)
        fputs("\r\033[K", stderr);
    printf("epoch %2d: loss %.4f  train %.2f%%  test %.2f%%\n", epoch, loss, train_top1,
           test_top1);
    fflush(stdout);
    return 0;
}

static int probe_epoch(void *ctx, int epoch, float loss, float train_top1, float test_top1)
{
    lctx *c = ctx;
    if (!c->quiet)
        fprintf(stderr, "  frozen probe epoch %2d: loss %.4f  train %.2f%%  test %.2f%%\n",
                epoch, loss, train_top1, test_top1);
    return 0;
}

static int parse_blocks(const char *what, const char *s, int *out, int L)
{
    int n = cmd_parse_int_list(s, out, AIM_PROBE_MAX_BLOCKS);
    if (n < 1)
        return cmd_fail("lora: %s expects a list like 3,4 (got \"%s\")", what, s), -1;
    for (int k = 0; k < n; k++)
        if (out[k] < 1 || out[k] > L)
            return cmd_fail("lora: %s: block %d is not in 1..%d", what, out[k], L), -1;
    return n;
}

static int lora_exec(int argc, char **argv)
{
    const char *data = "fashion-mnist", *blocks_s = NULL, *probe_s = NULL, *save = NULL;
    const char *save_adapters = NULL, *head_file = NULL, *out = NULL;
    int threads = 0, quiet = 0, augment = 0, flip = 0, compare = 0, fresh_head = 0;
    int64_t train_limit = 0, test_limit = 0, seed = 0;
    float probe_lr = 1e-2f;
    int probe_epochs = 15;
    aim_lora_job job;
    aim_lora_job_default(&job);
    cmd_opt opts[] = {
        {"data", OPT_STR, &data, "SPEC", "dataset with train/test splits (default fashion-mnist)"},
        {"rank", OPT_INT, &job.rank, "R", "adapter rank (default 8)"},
        {"alpha", OPT_FLOAT, &job.alpha, "A", "scale alpha/r (default alpha = rank)"},
        {"blocks", OPT_STR, &blocks_s, "LIST", "adapt these blocks (1-based; default the probe blocks)"},
        {"probe-blocks", OPT_STR, &probe_s, "LIST", "the head reads the average of these blocks"},
        {"epochs", OPT_INT, &job.epochs, "E", "epochs (default 4)"},
        {"batch", OPT_INT, &job.batch, "B", "batch (default 64)"},
        {"lr", OPT_FLOAT, &job.lr, "LR", "adapters' peak learning rate (default 1e-3)"},
        {"head-lr", OPT_FLOAT, &job.head_lr, "LR", "head's peak learning rate (default 3e-3)"},
        {"wd", OPT_FLOAT, &job.weight_decay, "WD", "head weight decay (default 0.05)"},
        {"augment", OPT_FLAG, &augment, NULL, "random flips and mild crops (off: they cost points here)"},
        {"flip", OPT_FLAG, &flip, NULL, "random horizontal flips only (pretraining's, without crops)"},
        {"train-limit", OPT_I64, &train_limit, "N", "use the first N training images"},
        {"test-limit", OPT_I64, &test_limit, "N", "use the first N test images"},
        {"compare", OPT_FLAG, &compare, NULL, "first the frozen attentive probe, same blocks"},
        {"fresh-head", OPT_FLAG, &fresh_head, NULL, "with --compare: LoRA's head starts anew"},
        {"head", OPT_STR, &head_file, "FILE", "start the head from a probe saved by aim probe --save"},
        {"probe-epochs", OPT_INT, &probe_epochs, "E", "with --compare: its epochs (default 15)"},
        {"probe-lr", OPT_FLOAT, &probe_lr, "LR", "with --compare: its lr (default 1e-2)"},
        {"seed", OPT_I64, &seed, "S", "seed (default 0)"},
        {"threads", OPT_INT, &threads, "T", "threads for OpenMP and OpenBLAS"},
        {"save", OPT_STR, &save, "OUT", "save trunk + adapters + head as safetensors"},
        {"save-adapters", OPT_STR, &save_adapters, "OUT", "save the adapters alone"},
        {"quiet", OPT_FLAG, &quiet, NULL, "no progress on stderr"},
        {"out", OPT_STR, &out, "DIR", "run folder: run.json, metrics.jsonl, TensorBoard events"},
        {"log-every", OPT_INT, &job.log_every, "N", "with --out: a lora_step line every N steps (10)"},
        {0},
    };
    if (cmd_help(&cmd_lora_entry, argc, argv, opts))
        return 0;
    char *pos[1];
    int npos;
    if (cmd_parse("lora", argc, argv, opts, pos, &npos, 1))
        return 1;
    if (npos == 0)
        return cmd_fail("lora: give the pretrained WEIGHTS to fine-tune");
    if (job.rank < 1 || job.epochs < 1 || job.batch < 2 || !(job.lr > 0) || !(job.head_lr > 0) ||
        job.alpha < 0 || job.weight_decay < 0 || job.log_every < 1)
        return cmd_fail("lora: --rank >= 1, --epochs >= 1, --batch >= 2, --lr and --head-lr > 0, "
                        "--alpha and --wd >= 0, --log-every >= 1 are needed");
    if (compare && (probe_epochs < 1 || !(probe_lr > 0)))
        return cmd_fail("lora: --probe-epochs >= 1 and --probe-lr > 0 are needed");
    job.augment = augment;
    job.flip = flip;
    job.seed = (uint64_t)seed;
    cmd_set_threads(threads);
    aim_err e = {{0}};
    aim_model *m = aim_model_load(pos[0], &e);
    if (!m)
        return cmd_fail("%s", e.msg);
    const aim_config c = *aim_model_config(m);
    int rc = 1;
    aim_dataset *tr = NULL, *te = NULL;
    aim_probe *start_head = NULL; /* the head LoRA starts from (NULL: a new one) */
    if (blocks_s && (job.nblocks = parse_blocks("--blocks", blocks_s, job.blocks, c.depth)) < 0)
        goto done;
    if (probe_s && (job.nprobe = parse_blocks("--probe-blocks", probe_s, job.probe_blocks,
                                              c.depth)) < 0)
        goto done;
    if (head_file) {
        if (compare) {
            cmd_fail("lora: --head and --compare exclude each other");
            goto done;
        }
        int hb[64], hn = 0;
        start_head = aim_probe_load(head_file, hb, &hn, &e);
        if (!start_head) {
            cmd_fail("%s", e.msg);
            goto done;
        }
        int hN, hD, hH;
        aim_probe_shape(start_head, &hN, &hD, &hH);
        if (aim_probe_get_kind(start_head) != AIM_PROBE_ATTENTIVE || hN != aim_config_tokens(&c) ||
            hD != c.width || hH != c.heads) {
            cmd_fail("lora: %s: the head does not fit: LoRA trains an attentive head on %d "
                     "tokens x %d with %d heads, this is a%s probe on %d x %d",
                     head_file, aim_config_tokens(&c), c.width, c.heads,
                     aim_probe_get_kind(start_head) == AIM_PROBE_ATTENTIVE ? "n attentive"
                                                                           : " linear",
                     hN, hD);
            goto done;
        }
        if (!probe_s && hn > 0) { /* the head reads the blocks it was trained on */
            job.nprobe = hn;
            memcpy(job.probe_blocks, hb, (size_t)hn * sizeof *hb);
        }
    }
    if (aim_lora_job_resolve(&job, c.depth, &e) != 0) {
        cmd_fail("%s", e.msg);
        goto done;
    }
    if (job.rank > c.width) {
        cmd_fail("lora: --rank %d exceeds the trunk width %d", job.rank, c.width);
        goto done;
    }
    tr = cmd_open_data(data, "train", c.channels, c.image, train_limit, (uint64_t)seed);
    te = tr ? cmd_open_data(data, "test", c.channels, c.image, test_limit, (uint64_t)seed) : NULL;
    if (!tr || !te)
        goto done;
    if (c.nmean == c.channels) /* normalise as in pretraining */
        for (int k = 0; k < c.channels; k++) {
            tr->mean[k] = te->mean[k] = c.mean[k];
            tr->std[k] = te->std[k] = c.std[k];
        }
    /* the run folder, before any work (not data-parallel yet: rank 0 writes it) */
    job.weights = pos[0];
    if (out && cmd_open_runlog(out, aim_dist_world(), &job.log) != 0)
        goto done;
    lctx lc = {.tty = isatty(2), .quiet = quiet};

    float frozen = -1;
    char label[128] = "";
    if (compare) {
        aim_probe_job pj = {.kind = AIM_PROBE_ATTENTIVE, .feature_batch = 64,
                            .dist = aim_dist_world()};
        aim_probe_opts_default(&pj.train);
        pj.train.epochs = probe_epochs;
        pj.train.lr = probe_lr;
        pj.train.seed = (uint64_t)seed;
        pj.train.on_epoch = probe_epoch;
        pj.train.ctx = &lc;
        pj.log = job.log; /* its probe_epoch and probe_result lines; LoRA's run.json follows */
        pj.weights = pos[0];
        pj.nsets = 1;
        pj.nblocks[0] = job.nprobe;
        memcpy(pj.blocks[0], job.probe_blocks, sizeof job.probe_blocks);
        if (!quiet)
            fprintf(stderr, "aim lora: frozen attentive probe first (--compare)\n");
        aim_probe_job_result pr;
        if (aim_probe_job_run(m, tr, te, &pj, &pr, &e) != 0) {
            cmd_fail("%s", e.msg);
            goto done;
        }
        if (fresh_head)
            aim_probe_free(pr.best_probe);
        else
            start_head = pr.best_probe; /* LP-FT: LoRA starts from this head */
        frozen = pr.sets[0].test_top1;
        snprintf(label, sizeof label, "%s", pr.sets[0].label);
        printf("frozen attentive probe, blocks %s: %.2f%% test top-1 (%.0f s)\n", label, frozen,
               pr.sets[0].seconds);
        fflush(stdout);
    }

    aim_lora_info li;
    aim_model_lora_info(m, &li);
    int rank = li.rank ? li.rank : job.rank;
    float alpha = li.rank ? li.alpha : (job.alpha > 0 ? job.alpha : (float)job.rank);
    job.on_step = on_step;
    job.on_epoch = on_epoch;
    job.ctx = &lc;
    job.init_head = start_head;
    uint64_t trunk = aim_config_trunk_params(&c);
    /* the same numbers the job reports, known before it starts */
    uint64_t per_block = 6ull * (uint64_t)rank * (uint64_t)c.width;
    int nad = li.rank ? li.nblocks : job.nblocks;
    if (!quiet)
        fprintf(stderr,
                "aim lora: %s | rank %d alpha %g on %d block(s): %llu adapter values = %.3f%% "
                "of the trunk's %.2fM | %s head | %lld + %lld images | %d epochs x %lld steps "
                "of %d | %d threads\n",
                li.rank ? "continuing its adapters" : "new adapters", rank, alpha, nad,
                (unsigned long long)(per_block * nad), 100.0 * per_block * nad / trunk,
                trunk / 1e6, start_head ? (head_file ? "the saved" : "the frozen probe's") : "a new",
                (long long)tr->n, (long long)te->n, job.epochs,
                (long long)(tr->n / job.batch), job.batch, cmd_threads());
    aim_lora_result res;
    if (aim_lora_run(m, tr, te, &job, &res, &e) != 0) {
        cmd_fail("%s", e.msg);
        goto done;
    }
    aim_runlog *rl = job.log;
    job.log = NULL; /* closed here, whatever follows */
    if (cmd_close_runlog(rl) != 0) {
        aim_probe_free(res.probe);
        goto done;
    }
    char took[32];
    cmd_duration(res.seconds, took, sizeof took);
    printf("lora r=%d, probe blocks %s: %.2f%% test top-1 (train %.2f%%) after %d epoch(s), %s;"
           " trained %llu adapter values (%.3f%% of the trunk) + %llu head values\n",
           rank, res.probe_label, res.test_top1, res.train_top1, res.epochs_done, took,
           (unsigned long long)res.adapters, 100.0 * res.adapters / res.trunk,
           (unsigned long long)(res.trainable - res.adapters));
    if (frozen >= 0)
        printf("gain over the frozen attentive probe: %+.2f points (%.2f%% -> %.2f%%)\n",
               res.test_top1 - frozen, frozen, res.test_top1);
    rc = 0;
    /* not data-parallel yet: under mpirun every rank trains alike, rank 0 saves */
    if (aim_dist_rank(aim_dist_world()) > 0)
        save = save_adapters = NULL;
    if (save) {
        if (aim_probe_save_with_model(save, m, res.probe, res.probe_label, &e) != 0)
            rc = cmd_fail("%s", e.msg);
        else
            printf("saved trunk + adapters + head: %s\n", save);
    }
    if (save_adapters) {
        if (aim_model_save_lora(m, save_adapters, &e) != 0)
            rc = cmd_fail("%s", e.msg);
        else
            printf("saved adapters: %s\n", save_adapters);
    }
    aim_probe_free(res.probe);
done:
    cmd_close_runlog(job.log);
    aim_probe_free(start_head);
    aim_dataset_free(tr);
    aim_dataset_free(te);
    aim_model_free(m);
    return rc;
}
