/*
 * panel_status.c - the status line at the top (state, job, step/total,
 * epoch, loss, lr, img/s, ETA, threads, run folder; fields drop from the
 * right when the terminal is narrow, the run folder is shortened from the
 * left) and the message line above the console (the newest event: job
 * started, checkpoint saved, probe finished, errors; it fades to dim after
 * a while).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "ui/screen.h"
#include "ui/ui.h"

enum { F_JOB, F_STEP, F_EPOCH, F_LOSS, F_LR, F_IPS, F_ETA, F_THREADS, F_RUN, NF };

/* which fields are shown when not all fit: the most useful first */
static const int priority[NF] = {F_STEP, F_LOSS, F_ETA, F_LR, F_IPS, F_EPOCH, F_JOB, F_THREADS,
                                 F_RUN};

static void status_draw(const ui_view *v, ui_rect r)
{
    const aim_snapshot *s = &v->snap;
    const aim_board *b = v->board;
    screen_fill(r, UI_STATUS);
    int uni = screen_unicode(), narrow = r.w < 100;
    const char *badge;
    ui_style bst;
    if (s->state == AIM_JOB_RUNNING) {
        badge = narrow ? (uni ? " \u25b6 " : " > ") : (uni ? " \u25b6 running " : " > running ");
        bst = UI_RUNNING;
    } else if (s->state == AIM_JOB_PAUSED) {
        badge = uni ? " \u2016 paused " : " || paused ";
        bst = UI_PAUSED;
    } else if (v->script == UI_SCRIPT_RUNNING) {
        badge = " script ";
        bst = UI_IDLE;
    } else if (v->script == UI_SCRIPT_FAILED) {
        badge = " failed ";
        bst = UI_ERROR;
    } else {
        badge = s->jobs_done ? " done " : " idle ";
        bst = UI_IDLE;
    }
    int x = r.x;
    x += screen_put(r.y, x, r.w, UI_STATUS, " aim ");
    x += screen_put(r.y, x, r.w - (x - r.x), bst, badge);
    int w = r.w - (x - r.x);
    char f[NF][300];
    memset(f, 0, sizeof f);
    const aim_step_info *st = &s->step;
    if (!s->job[0]) {
        screen_put(r.y, x + 2, w - 2, UI_STATUS, v->script_name);
        return;
    }
    snprintf(f[F_JOB], sizeof f[0], "%s", s->job);
    if (st->step > 0) {
        snprintf(f[F_STEP], sizeof f[0], "step %lld/%lld", (long long)st->step,
                 (long long)st->total);
        snprintf(f[F_EPOCH], sizeof f[0], "ep %.2f", st->epoch);
        snprintf(f[F_LOSS], sizeof f[0], "loss %.4f", st->loss);
        snprintf(f[F_LR], sizeof f[0], "lr %.2e", st->lr);
        snprintf(f[F_IPS], sizeof f[0], "%.0f img/s", st->img_per_s);
        char d[32];
        ui_fmt_duration(s->state == AIM_JOB_IDLE ? st->elapsed_s : st->eta_s, d, sizeof d);
        snprintf(f[F_ETA], sizeof f[0], "%s %s", s->state == AIM_JOB_IDLE ? "took" : "ETA", d);
    }
    if (b->threads > 0)
        snprintf(f[F_THREADS], sizeof f[0], "%d thr", b->threads);
    /* pick fields by priority, the run folder gets what is left */
    int on[NF] = {0}, used = 0;
    for (int i = 0; i < NF; i++) {
        int k = priority[i];
        if (k == F_RUN || !f[k][0])
            continue;
        int fw = ui_text_width(f[k]) + 2;
        if (used + fw <= w) {
            on[k] = 1;
            used += fw;
        }
    }
    if (b->run_dir[0] && w - used > 14) {
        int room = w - used - 3;
        const char *d = b->run_dir, *base = strrchr(d, '/');
        if (ui_text_width(d) > room && base && base[1] && ui_text_width(base + 1) <= room)
            d = base + 1; /* the folder's own name */
        if (ui_text_width(d) > room) { /* keep its end */
            while (*d && ui_text_width(d) > room - 1)
                d++;
            snprintf(f[F_RUN], sizeof f[0], "%s%s", uni ? "\u2026" : "~", d);
        } else {
            snprintf(f[F_RUN], sizeof f[0], "%s", d);
        }
        on[F_RUN] = 1;
    }
    char line[1024] = "";
    size_t at = 0;
    for (int k = 0; k < NF; k++)
        if (on[k])
            at += (size_t)snprintf(line + at, sizeof line - at, "  %s", f[k]);
    screen_put(r.y, x, w, UI_STATUS, line);
}

const ui_panel panel_status = {
    .name = "status",
    .draw = status_draw,
};

static void message_draw(const ui_view *v, ui_rect r)
{
    if (!v->message[0])
        return;
    double age = v->now - v->message_time;
    ui_style st = v->message_error ? UI_ERROR : age < 20 ? UI_MSG : UI_DIM;
    char buf[AIM_MSG_LEN + 64];
    snprintf(buf, sizeof buf, "%s %s", screen_unicode() ? "\u00bb" : ">", v->message);
    screen_put(r.y, r.x, r.w, st, buf);
}

const ui_panel panel_message = {
    .name = "message",
    .draw = message_draw,
};
