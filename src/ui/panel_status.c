/*
 * panel_status.c - the status line at the top (the state badge, then the
 * fields ui_status_fields picks: job, step/total, epoch, loss, lr, img/s,
 * % of the sgemm peak, ETA, threads, run folder) and the message line
 * above the console (the newest event: job started, checkpoint saved,
 * probe finished, errors; it fades to dim after a while).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "ui/screen.h"
#include "ui/ui.h"

static void status_draw(const ui_view *v, ui_rect r)
{
    const aim_snapshot *s = &v->snap;
    const aim_board *b = v->board;
    screen_fill(r, UI_STATUS);
    int uni = screen_unicode(), narrow = r.w < 100;
    const char *badge;
    ui_style bst;
    if (s->state == AIM_JOB_RUNNING && s->follow == AIM_FOLLOW_LIVE) {
        badge = uni ? " \u25c9 following " : " (o) following ";
        bst = UI_RUNNING;
    } else if (s->state == AIM_JOB_RUNNING && s->follow == AIM_FOLLOW_STOPPED) {
        badge = uni ? " \u25a0 stopped " : " [] stopped ";
        bst = UI_PAUSED;
    } else if (s->state == AIM_JOB_RUNNING && s->follow == AIM_FOLLOW_FINISHED) {
        badge = " finished ";
        bst = UI_IDLE;
    } else if (s->state == AIM_JOB_RUNNING && s->follow == AIM_FOLLOW_WAITING) {
        badge = " waiting ";
        bst = UI_IDLE;
    } else if (s->state == AIM_JOB_RUNNING) {
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
    if (!s->job[0]) {
        screen_put(r.y, x + 2, w - 2, UI_STATUS, v->script_name);
        return;
    }
    char line[1024];
    ui_status_fields(s, b, w, uni, line, sizeof line);
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
