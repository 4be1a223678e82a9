/*
 * progress.c - see progress.h.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cmd/common.h"
#include "cmd/progress.h"

static void close_line(cmd_progress *p)
{
    if (p->open_line) {
        fputs("\r\033[K", stderr);
        p->open_line = 0;
    }
}

void cmd_progress_output(void *ctx, const char *text, size_t len)
{
    cmd_progress *p = ctx;
    close_line(p); /* the progress line comes back at the next step */
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

/* a line for this step? On a terminal every one (it redraws in place);
 * elsewhere the first, the last and every twentieth of the run */
static int line_due(const aim_step_info *s, int tty)
{
    int64_t every = s->total / 20 > 0 ? s->total / 20 : 1;
    return tty || s->step == s->total || s->step % every == 0 || s->step == 1;
}

int cmd_step_line(const aim_step_info *s, int tty)
{
    int last = s->step == s->total;
    if (!line_due(s, tty))
        return 0;
    char eta[32], el[32];
    cmd_duration(s->eta_s, eta, sizeof eta);
    cmd_duration(s->elapsed_s, el, sizeof el);
    fprintf(stderr,
            "%sstep %lld/%lld  epoch %.2f  loss %.4f  lr %.2e  |g| %.3f  %.0f img/s  %s %s%s",
            tty ? "\r\033[K" : "", (long long)s->step, (long long)s->total, s->epoch, s->loss,
            s->lr, s->grad_norm, s->img_per_s, last ? "took" : "ETA", last ? el : eta,
            tty ? "" : "\n");
    fflush(stderr);
    return 1;
}

int cmd_tune_step(void *ctx, const aim_step_info *s)
{
    const cmd_tune *c = ctx;
    if (!c->quiet)
        cmd_step_line(s, c->tty);
    return 0;
}

int cmd_tune_epoch(void *ctx, const aim_lora_epoch *ep)
{
    const cmd_tune *c = ctx;
    if (c->tty && !c->quiet)
        fputs("\r\033[K", stderr);
    char np[48] = "";
    if (isfinite(ep->val_loss))
        snprintf(np, sizeof np, "  next-patch %.4f", ep->val_loss);
    if (ep->epoch == 0) {
        if (np[0])
            printf("before %s:%s\n", c->what, np);
    } else {
        printf("epoch %2d: loss %.4f  train %.2f%%  test %.2f%%%s\n", ep->epoch, ep->train_loss,
               ep->train_top1, ep->test_top1, np);
    }
    fflush(stdout);
    return 0;
}

void cmd_tune_next_patch(int images, float before, float after)
{
    if (isfinite(before) && isfinite(after))
        printf("next-patch loss on %d test images: %.4f -> %.4f (%+.1f%%)\n", images, before,
               after, 100.0 * (after - before) / before);
}

static void step_line(cmd_progress *p, const aim_step_info *s)
{
    if (cmd_step_line(s, p->tty))
        p->open_line = p->tty;
}

/* a probe publishes a step per epoch with its training loss only (no lr,
 * gradient norm or throughput): its own line, not a training step's */
static void probe_epoch_line(cmd_progress *p, const aim_step_info *s)
{
    if (!line_due(s, p->tty))
        return;
    fprintf(stderr, "%sprobe epoch %lld/%lld  loss %.4f%s", p->tty ? "\r\033[K" : "",
            (long long)s->step, (long long)s->total, s->loss, p->tty ? "" : "\n");
    p->open_line = p->tty;
}

void cmd_progress_event(void *ctx, const aim_event *ev)
{
    cmd_progress *p = ctx;
    if (p->quiet)
        return;
    switch (ev->kind) {
    case AIM_EV_JOB_START:
        close_line(p);
        fprintf(stderr, "aim %s: %s\n", ev->job, ev->text ? ev->text : "");
        break;
    case AIM_EV_STEP:
        if (ev->job && !strcmp(ev->job, "probe"))
            probe_epoch_line(p, ev->step);
        else
            step_line(p, ev->step);
        break;
    case AIM_EV_PAUSE:
    case AIM_EV_RESUME:
        if (p->open_line)
            fputc('\n', stderr);
        p->open_line = 0;
        fprintf(stderr, "aim %s: %s\n", ev->job, ev->kind == AIM_EV_PAUSE ? "paused" : "resumed");
        break;
    case AIM_EV_MESSAGE:
        close_line(p);
        fprintf(stderr, "aim %s: %s\n", ev->job, ev->text ? ev->text : "");
        break;
    case AIM_EV_JOB_END:
        if (p->open_line)
            fputc('\n', stderr);
        p->open_line = 0;
        fprintf(stderr, "aim %s: %s\n", ev->job, ev->text ? ev->text : "done");
        break;
    }
    fflush(stderr);
}
