/*
 * cmd_train.c - `aim train`: headless AIM pretraining from the command line.
 * Opens the data, builds (or loads) the model, trains with the AIM.md recipe,
 * shows a progress line on stderr, logs metrics as JSON Lines in the run
 * folder and saves the weights there at the end. Under mpirun every rank
 * runs this; they train data-parallel on shares of each --batch
 * (aim/dist.h) and rank 0 alone writes the run folder.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aim/dist.h"
#include "aim/io.h"
#include "aim/job.h"
#include "aim/train.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"
#include "cmd/progress.h"

typedef struct progress {
    int tty;
} progress;

static int on_step(void *ctx, const aim_step_info *s)
{
    progress *p = ctx;
    if (cmd_step_line(s, p->tty) && p->tty && s->step == s->total)
        fputc('\n', stderr);
    return 0;
}

static int train_exec(int argc, char **argv);

const struct aim_cmd cmd_train_entry = {
    .name = "train",
    .usage = "[--data SPEC] [--preset NAME] [--steps N | --epochs E | --budget IMAGES] [options]",
    .summary = "pretrain an AIM model headless (progress on stderr)",
    .help = "With no options, the default experiment: `tiny` on Fashion-MNIST resized to\n"
            "30x30 with patch 6, a budget of 900 000 images (15 epochs) in bf16 where the\n"
            "CPU has AVX512_BF16 (about 17.5 min on 2 cores; fp32 elsewhere), flips without\n"
            "crops, validation, a live probe and checkpoints: the same run as\n"
            "`aim run samples/pretrain.lua` and `aim`. Other models default to 5 epochs in fp32.\n"
            "AIM's recipe: AdamW (0.9, 0.95), weight decay on matrices, linear warmup then\n"
            "cosine to zero, gradient clipping, a random prefix per image. Writes run.json,\n"
            "metrics.jsonl, checkpoints and model.safetensors into the run folder (--out).\n"
            "SPEC: fashion-mnist (default; synthetic if not installed), synthetic, or a PATH\n"
            "(IDX file or folder, CIFAR-10 .bin or folder, PNG class folder).",
    .exec = train_exec,
};

/* Ctrl-C / SIGTERM: finish the step, save a checkpoint, exit 0. A second
 * signal gets the default action (the front end's only global). */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    stop_requested = 1;
    signal(sig, SIG_DFL);
}

static void on_message(void *ctx, const char *msg)
{
    progress *p = ctx;
    fprintf(stderr, "%s%s\n", p->tty ? "\r\033[K" : "", msg);
}

static int train_exec(int argc, char **argv)
{
    aim_pretrain_spec s;
    aim_pretrain_spec_default(&s);
    if (cmd_help_job(&cmd_train_entry, argc, argv, aim_pretrain_options))
        return 0;
    char *pos[1];
    int npos;
    if (cmd_parse_job("train", argc, argv, aim_pretrain_options, &s, pos, &npos, 0))
        return 1;
    cmd_set_threads((int)s.threads);
    aim_err e = {{0}};
    aim_experiment x;
    char notice[700];
    if (aim_experiment_open(&s, &x, notice, sizeof notice, &e) != 0)
        return cmd_fail("train: %s", e.msg);
    if (notice[0])
        fprintf(stderr, "aim: note: %s\n", notice);
    const aim_dist *world = aim_dist_world();
    const int lead = aim_dist_rank(world) == 0;
    aim_pretrain_job j;
    if (aim_pretrain_job_init(&j, &s, x.model, x.train, x.test, x.test, s.data, world, &e) != 0) {
        aim_experiment_close(&x);
        return cmd_fail("train: %s", e.msg);
    }
    int rc = 1;
    if (j.resumed)
        fprintf(stderr, "aim train: resuming %s at step %lld of %lld\n", j.resumed_from,
                (long long)j.state.step, (long long)j.po.steps);
    progress pr = {.tty = isatty(2)};
    j.po.on_step = on_step;
    j.po.on_message = on_message;
    j.po.ctx = &pr;
    j.po.stop_flag = &stop_requested;
    const int todo = j.state.step < j.po.steps;
    if (todo)
        fprintf(stderr, "aim train: %s\n", j.desc);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    aim_pretrain_result res = {0};
    if (todo && aim_pretrain(x.model, x.train, &j.po, &res, &e) != 0) {
        cmd_fail("%s", e.msg);
        goto done;
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (res.stopped) {
        printf("stopped at step %lld of %lld; checkpoint: %s\n"
               "resume with: aim train --resume %s\n",
               (long long)res.steps_done, (long long)j.po.steps,
               res.last_checkpoint[0] ? res.last_checkpoint : "(none written)", j.out);
        rc = res.last_checkpoint[0] || !lead ? 0 : 1; /* rank 0 writes the checkpoints */
        goto done;
    }
    if (aim_pretrain_job_save(&j, x.model, &e) != 0) {
        cmd_fail("%s", e.msg);
        goto done;
    }
    if (!todo)
        printf("the run was already complete at step %lld\nweights: %s\n",
               (long long)j.state.step, j.weights);
    else
        printf("trained %lld steps in %.1f s: final loss %.6f (mean of last %d: %.6f)\n"
               "weights: %s\n",
               (long long)(res.steps_done - j.state.step), res.seconds, res.final_loss,
               (int)(res.steps_done - j.state.step < 100 ? res.steps_done - j.state.step : 100),
               res.mean_loss_last, j.weights);
    rc = res.checkpoint_failures ? 1 : 0;
    if (res.checkpoint_failures)
        cmd_fail("train: %d checkpoint(s) could not be written (see above)",
                 res.checkpoint_failures);
done:
    aim_pretrain_job_free(&j);
    aim_experiment_close(&x);
    return rc;
}
