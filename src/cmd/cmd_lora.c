/*
 * cmd_lora.c - `aim lora`: fine-tune a pretrained trunk with LoRA adapters
 * (rank r on q, v and proj of the chosen blocks) trained jointly with an
 * attentive probe head; the trunk itself stays frozen. Progress per step,
 * train / test top-1 per epoch; optionally the frozen attentive probe of the
 * same blocks first (--compare), so the gain is measured by one command.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aim/dist.h"
#include "aim/job.h"
#include "aim/probe.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"
#include "cmd/progress.h"

/* what LoRA reached (and the gain over the frozen probe when --compare ran
 * it first), then the files asked for; 1 when a save failed */
static int report_and_save(aim_model *m, const aim_lora_result *res, int rank, float frozen,
                           const aim_lora_job *job, int64_t ntest, const char *save,
                           const char *save_adapters)
{
    aim_err e = {{0}};
    char took[32];
    cmd_duration(res->seconds, took, sizeof took);
    printf("lora r=%d, probe blocks %s: %.2f%% test top-1 (train %.2f%%) after %d epoch(s), %s;"
           " trained %llu adapter values (%.3f%% of the trunk) + %llu head values\n",
           rank, res->probe_label, res->test_top1, res->train_top1, res->epochs_done, took,
           (unsigned long long)res->adapters, 100.0 * res->adapters / res->trunk,
           (unsigned long long)(res->trainable - res->adapters));
    if (frozen >= 0)
        printf("gain over the frozen attentive probe: %+.2f points (%.2f%% -> %.2f%%)\n",
               res->test_top1 - frozen, frozen, res->test_top1);
    cmd_tune_next_patch(job->val_images < ntest ? job->val_images : (int)ntest,
                        res->val_loss_start, res->val_loss);
    int rc = 0;
    /* not data-parallel yet: under mpirun every rank trains alike, rank 0 saves */
    if (aim_dist_rank(aim_dist_world()) > 0)
        save = save_adapters = NULL;
    if (save) {
        if (aim_probe_save_with_model(save, m, res->probe, res->probe_label, &e) != 0)
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
    return rc;
}

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

static int probe_epoch(void *ctx, int epoch, float loss, float train_top1, float test_top1)
{
    const cmd_tune *c = ctx;
    if (!c->quiet)
        fprintf(stderr, "  frozen probe epoch %2d: loss %.4f  train %.2f%%  test %.2f%%\n",
                epoch, loss, train_top1, test_top1);
    return 0;
}

/* --compare: the frozen attentive probe on LoRA's probe blocks with the
 * same images (aim probe's protocol), its lines in the run's log; its head
 * into *head when LoRA starts from it (LP-FT; head NULL: --fresh-head), its
 * test top-1 into *top1. 1 after saying what failed. */
static int frozen_probe_first(aim_model *m, const aim_dataset *tr, const aim_dataset *te,
                              const aim_lora_spec *s, const char *weights, const aim_lora_job *job,
                              cmd_tune *lc, aim_probe **head, float *top1)
{
    aim_probe_job pj = {.kind = AIM_PROBE_ATTENTIVE, .feature_batch = 64,
                        .dist = aim_dist_world()};
    aim_probe_opts_default(&pj.train);
    pj.train.epochs = (int)s->probe_epochs;
    pj.train.lr = (float)s->probe_lr;
    pj.train.seed = (uint64_t)s->seed;
    pj.train.on_epoch = probe_epoch;
    pj.train.ctx = lc;
    pj.log = job->log; /* its probe_epoch and probe_result lines; LoRA's run.json follows */
    pj.weights = weights;
    pj.nsets = 1;
    pj.nblocks[0] = job->nprobe;
    memcpy(pj.blocks[0], job->probe_blocks, sizeof job->probe_blocks);
    if (!s->quiet)
        fprintf(stderr, "aim lora: frozen attentive probe first (--compare)\n");
    aim_probe_job_result pr;
    aim_err e = {{0}};
    if (aim_probe_job_run(m, tr, te, &pj, &pr, &e) != 0)
        return cmd_fail("%s", e.msg);
    if (head)
        *head = pr.best_probe;
    else
        aim_probe_free(pr.best_probe);
    *top1 = pr.sets[0].test_top1;
    printf("frozen attentive probe, blocks %s: %.2f%% test top-1 (%.0f s)\n", pr.sets[0].label,
           *top1, pr.sets[0].seconds);
    fflush(stdout);
    return 0;
}

static int lora_exec(int argc, char **argv)
{
    aim_lora_spec s;
    aim_lora_spec_default(&s);
    if (cmd_help_job(&cmd_lora_entry, argc, argv, aim_lora_options))
        return 0;
    char *pos[1];
    int npos;
    if (cmd_parse_job("lora", argc, argv, aim_lora_options, &s, pos, &npos, 1))
        return 1;
    if (npos == 0)
        return cmd_fail("lora: give the pretrained WEIGHTS to fine-tune");
    const char *head_file = s.head_file, *save = s.save, *save_adapters = s.save_adapters;
    const char *out = s.out;
    const int compare = s.compare, fresh_head = s.fresh_head, quiet = s.quiet;
    const int64_t seed = s.seed;
    cmd_set_threads((int)s.threads);
    aim_err e = {{0}};
    aim_model *m = aim_model_load(pos[0], &e);
    if (!m)
        return cmd_fail("%s", e.msg);
    const aim_config c = *aim_model_config(m);
    int rc = 1;
    aim_dataset *tr = NULL, *te = NULL;
    aim_probe *start_head = NULL; /* the head LoRA starts from (NULL: a new one) */
    aim_lora_job job;
    if (aim_lora_spec_job(&s, &c, &job, &e) != 0) {
        cmd_fail("lora: %s", e.msg);
        goto done;
    }
    if (head_file) {
        if (compare) {
            cmd_fail("lora: --head and --compare exclude each other");
            goto done;
        }
        start_head = aim_lora_load_head(head_file, &c, &job, &e);
        if (!start_head) {
            cmd_fail("lora: %s", e.msg);
            goto done;
        }
    }
    if (aim_lora_job_resolve(&job, c.depth, &e) != 0) {
        cmd_fail("%s", e.msg);
        goto done;
    }
    char note[400];
    int bad = aim_job_open_splits(s.data, &c, m, s.train_limit, s.test_limit, (uint64_t)seed,
                                  &tr, &te, note, sizeof note, &e);
    if (note[0])
        fprintf(stderr, "aim: note: %s\n", note);
    if (bad) {
        cmd_fail("%s", e.msg);
        goto done;
    }
    /* the run folder, before any work (not data-parallel yet: rank 0 writes it) */
    job.weights = pos[0];
    if (out && cmd_open_runlog(out, aim_dist_world(), &job.log) != 0)
        goto done;
    cmd_tune lc = {.tty = isatty(2), .quiet = quiet, .what = "LoRA"};

    float frozen = -1; /* --compare: the frozen probe's test top-1 first */
    if (compare && frozen_probe_first(m, tr, te, &s, pos[0], &job, &lc,
                                      fresh_head ? NULL : &start_head, &frozen) != 0)
        goto done;

    job.on_step = cmd_tune_step;
    job.on_epoch = cmd_tune_epoch;
    job.ctx = &lc;
    job.init_head = start_head;
    aim_lora_plan plan; /* the same numbers the job reports, known before it starts */
    if (aim_lora_plan_make(m, &job, start_head ? (head_file ? "the saved" : "the frozen probe's")
                                               : "a new",
                           tr->n, te->n, &plan, &e) != 0) {
        cmd_fail("lora: %s", e.msg);
        goto done;
    }
    const int rank = plan.rank;
    if (!quiet)
        fprintf(stderr, "aim lora: %s | %d threads\n", plan.desc, cmd_threads());
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
    rc = report_and_save(m, &res, rank, frozen, &job, te->n, save, save_adapters);
    aim_probe_free(res.probe);
done:
    cmd_close_runlog(job.log);
    aim_probe_free(start_head);
    aim_dataset_free(tr);
    aim_dataset_free(te);
    aim_model_free(m);
    return rc;
}
