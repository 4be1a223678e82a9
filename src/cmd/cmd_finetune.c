/*
 * cmd_finetune.c - `aim finetune`: fine-tune the whole trunk of a pretrained
 * model (patch embedding and every block up to the deepest probe block)
 * jointly with a new attentive probe head, the ceiling LoRA is judged
 * against. Progress per step, train / test top-1 and the next-patch loss
 * per epoch, the last epoch's test top-1 as the result.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aim/dist.h"
#include "aim/finetune.h"
#include "aim/job.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"
#include "cmd/progress.h"

static int finetune_exec(int argc, char **argv);

const struct aim_cmd cmd_finetune_entry = {
    .name = "finetune",
    .usage = "WEIGHTS [--data SPEC] [--probe-blocks LIST] [--epochs 4] [--layer-decay 0.75]",
    .summary = "full fine-tuning: the whole trunk + an attentive head, test top-1 (LoRA's ceiling)",
    .help = "Trains every trunk value up to the deepest --probe-blocks block (default: the\n"
            "middle blocks), down to the patch embedding, jointly with a new attentive\n"
            "probe head on the average of the probe blocks: AdamW, warmup + cosine,\n"
            "layer-wise lr decay as in MAE / BEiT fine-tuning (block i of the Lt trained\n"
            "gets --lr x --layer-decay^(Lt+1-i), the patch embedding --lr x\n"
            "--layer-decay^(Lt+1), the head --head-lr undecayed), weight decay on the\n"
            "trunk's and head's weights, one gradient-norm clip over both, optional\n"
            "--label-smoothing. The pixel head, the post-trunk norm and the blocks above\n"
            "the deepest probe block stay as loaded. The result is the last epoch's\n"
            "test top-1 (never the best epoch's); compare it with `aim lora --compare` on\n"
            "the same images. --out DIR makes DIR a run folder: run.json (kind\n"
            "\"finetune\"), a \"finetune_step\" line every --log-every steps and a\n"
            "\"finetune\" line per epoch in metrics.jsonl and a TensorBoard event file.",
    .exec = finetune_exec,
};

static int finetune_exec(int argc, char **argv)
{
    aim_finetune_spec s;
    aim_finetune_spec_default(&s);
    if (cmd_help_job(&cmd_finetune_entry, argc, argv, aim_finetune_options))
        return 0;
    char *pos[1];
    int npos;
    if (cmd_parse_job("finetune", argc, argv, aim_finetune_options, &s, pos, &npos, 1))
        return 1;
    if (npos == 0)
        return cmd_fail("finetune: give the pretrained WEIGHTS to fine-tune");
    cmd_set_threads((int)s.threads);
    aim_err e = {{0}};
    aim_model *m = aim_model_load(pos[0], &e);
    if (!m)
        return cmd_fail("%s", e.msg);
    const aim_config c = *aim_model_config(m);
    int rc = 1;
    aim_dataset *tr = NULL, *te = NULL;
    aim_finetune_job job;
    job.log = NULL;
    if (aim_finetune_spec_job(&s, &c, &job, &e) != 0) {
        cmd_fail("finetune: %s", e.msg);
        goto done;
    }
    char note[400];
    int bad = aim_job_open_splits(s.data, &c, m, s.train_limit, s.test_limit, (uint64_t)s.seed,
                                  &tr, &te, note, sizeof note, &e);
    if (note[0])
        fprintf(stderr, "aim: note: %s\n", note);
    if (bad) {
        cmd_fail("%s", e.msg);
        goto done;
    }
    job.weights = pos[0];
    /* the run folder, before any work (not data-parallel: rank 0 writes it) */
    if (s.out && cmd_open_runlog(s.out, aim_dist_world(), &job.log) != 0)
        goto done;
    cmd_tune fc = {.tty = isatty(2), .quiet = s.quiet, .what = "fine-tuning"};
    job.on_step = cmd_tune_step;
    job.on_epoch = cmd_tune_epoch;
    job.ctx = &fc;
    if (!s.quiet) {
        char desc[512];
        aim_finetune_describe(m, &job, tr->n, te->n, desc, sizeof desc);
        fprintf(stderr, "aim finetune: %s | %d threads\n", desc, cmd_threads());
    }
    aim_finetune_result res;
    if (aim_finetune_run(m, tr, te, &job, &res, &e) != 0) {
        cmd_fail("%s", e.msg);
        goto done;
    }
    aim_runlog *rl = job.log;
    job.log = NULL;
    if (cmd_close_runlog(rl) != 0) {
        aim_probe_free(res.probe);
        goto done;
    }
    char took[32];
    cmd_duration(res.seconds, took, sizeof took);
    printf("finetune, probe blocks %s: %.2f%% test top-1 (train %.2f%%) after %d epoch(s), %s;"
           " trained %llu trunk values (blocks 1-%d + patch embedding) + %llu head values\n",
           res.probe_label, res.test_top1, res.train_top1, res.epochs_done, took,
           (unsigned long long)res.trained, res.top_block, (unsigned long long)res.head);
    cmd_tune_next_patch(job.val_images < te->n ? job.val_images : (int)te->n,
                        res.val_loss_start, res.val_loss);
    rc = 0;
    if (s.save && aim_dist_rank(aim_dist_world()) == 0) {
        if (aim_probe_save_with_model(s.save, m, res.probe, res.probe_label, &e) != 0)
            rc = cmd_fail("%s", e.msg);
        else
            printf("saved the fine-tuned trunk + head: %s\n", s.save);
    }
    aim_probe_free(res.probe);
done:
    cmd_close_runlog(job.log);
    aim_dataset_free(tr);
    aim_dataset_free(te);
    aim_model_free(m);
    return rc;
}
