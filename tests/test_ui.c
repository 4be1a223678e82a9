/*
 * test_ui.c - the TUI's arithmetic without a terminal (src/ui/plot.c,
 * src/ui/ui_text.c): braille dot bits, lines that stay connected, the
 * series priority of a cell, TensorBoard's de-biased EMA against values
 * worked out by hand, quantiles, tick values (linear and log), labels,
 * image resampling, key names, counts, durations and display widths; the
 * status line's fields: "% peak" from img/s, FLOPs per image and the sgemm
 * peak, absent when either is unknown, dropped first when the line is narrow.
 */
#include "config.h"

#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "ui/plot.h"
#include "ui/ui.h"

static int near(double a, double b, double tol)
{
    return fabs(a - b) <= tol;
}

int main(void)
{
    setlocale(LC_CTYPE, "C.UTF-8");

    /* ---- braille canvas */
    plot_canvas c;
    plot_canvas_init(&c, 3, 2); /* 6 x 8 dots */
    plot_dot(&c, 0, 0, 1);
    plot_dot(&c, 1, 3, 1);
    tap_ok(plot_glyph(&c, 0, 0) == 0x2801 + 0x80, "dots (0,0) and (1,3) are bits 0x01 and 0x80 "
           "(U+%04X)", plot_glyph(&c, 0, 0));
    plot_dot(&c, -1, 0, 1);
    plot_dot(&c, 6, 0, 1);
    plot_dot(&c, 0, 8, 1);
    tap_ok(plot_glyph(&c, 2, 1) == 0x2800 && plot_glyph(&c, 0, 1) == 0x2800,
           "dots outside the canvas are clipped");
    plot_vspan(&c, 2, 7, 4, 2);
    tap_ok(plot_glyph(&c, 1, 1) == 0x2800 + 0x01 + 0x02 + 0x04 + 0x40,
           "a vertical span fills a cell's left column (U+%04X)", plot_glyph(&c, 1, 1));
    tap_ok(plot_series(&c, 1, 1) == 2 && plot_series(&c, 0, 0) == 1 && plot_series(&c, 2, 0) == 0,
           "each cell keeps the highest series drawn in it");
    plot_dot(&c, 2, 4, 1);
    tap_ok(plot_series(&c, 1, 1) == 2, "a lower series does not take a cell's colour");
    plot_canvas_free(&c);

    plot_canvas_init(&c, 10, 4); /* 20 x 16 dots */
    plot_line(&c, 0, 15, 3, 0, 1);
    int connected = 1;
    for (int x = 0; x <= 3; x++) {
        int any = 0;
        for (int y = 0; y < 16; y++) {
            uint8_t bit = (uint8_t)(plot_glyph(&c, x / 2, y / 4) - 0x2800);
            static const uint8_t b[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};
            any += (bit & b[y % 4][x % 2]) != 0;
        }
        connected &= any >= 3; /* a steep line fills its columns */
    }
    tap_ok(connected, "a steep line leaves no gaps between its columns");
    plot_canvas_free(&c);

    /* ---- EMA: TensorBoard's formula */
    float x[4] = {1, 2, 3, NAN}, e[4];
    plot_ema(x, 4, 0.5f, e);
    /* last: 0.5, 1.25, 2.125; debias 1-0.5^n: 0.5, 0.75, 0.875 */
    tap_ok(near(e[0], 1.0, 1e-6) && near(e[1], 1.25 / 0.75, 1e-6) && near(e[2], 2.125 / 0.875, 1e-6),
           "de-biased EMA: %g %g %g", e[0], e[1], e[2]);
    tap_ok(e[3] == e[2], "a NaN is skipped (the EMA holds)");
    plot_ema(x, 3, 0.0f, e);
    tap_ok(e[0] == 1 && e[1] == 2 && e[2] == 3, "smoothing 0 is the raw series");

    /* ---- quantiles */
    float q[6] = {5, 1, NAN, 3, 2, 4}, tmp[6];
    tap_ok(plot_quantile(q, 6, 0, tmp) == 1 && plot_quantile(q, 6, 1, tmp) == 5 &&
               plot_quantile(q, 6, 0.5f, tmp) == 3 && near(plot_quantile(q, 6, 0.25f, tmp), 2, 1e-6),
           "quantiles skip NaN and interpolate");

    /* ---- ticks */
    double t[16];
    int n = plot_ticks(0.13, 0.98, 5, 0, t);
    tap_ok(n == 4 && near(t[0], 0.2, 1e-9) && near(t[3], 0.8, 1e-9),
           "linear ticks are round numbers: %d from %g to %g", n, t[0], n ? t[n - 1] : 0);
    n = plot_ticks(-3.2, 0.5, 8, 1, t);
    tap_ok(n == 4 && t[0] == -3 && t[3] == 0, "log ticks on decades: %d (%g..%g)", n, t[0],
           n ? t[n - 1] : 0);
    n = plot_ticks(log10(0.15), log10(0.9), 6, 1, t);
    tap_ok(n == 2 && near(t[0], log10(0.2), 1e-6) && near(t[1], log10(0.5), 1e-6),
           "within a decade: 1-2-5 steps (%d)", n);
    n = plot_ticks(log10(0.3), log10(0.9), 6, 1, t);
    tap_ok(n == 3 && near(t[0], log10(0.4), 1e-6), "a narrow log range: round values (%d)", n);
    tap_ok(plot_ticks(1, 1, 5, 0, t) == 0, "no ticks for an empty range");

    char lab[16];
    plot_label(0.41234, lab, sizeof lab);
    tap_ok(!strcmp(lab, "0.412"), "label 0.412: %s", lab);
    plot_label(3e-4, lab, sizeof lab);
    tap_ok(!strcmp(lab, "3.0e-04"), "label 3.0e-04: %s", lab);
    plot_label(0, lab, sizeof lab);
    tap_ok(!strcmp(lab, "0"), "label 0: %s", lab);

    /* ---- resampling */
    uint8_t img[16] = {0, 0, 100, 100, 0, 0, 100, 100, 200, 200, 50, 50, 200, 200, 50, 50}, out[16];
    plot_resample(img, 4, 4, out, 2, 2);
    tap_ok(out[0] == 0 && out[1] == 100 && out[2] == 200 && out[3] == 50,
           "2x box shrinking averages blocks (%d %d %d %d)", out[0], out[1], out[2], out[3]);
    uint8_t two[4] = {10, 20, 30, 40}, big[16];
    plot_resample(two, 2, 2, big, 4, 4);
    tap_ok(big[0] == 10 && big[1] == 10 && big[3] == 20 && big[15] == 40,
           "growing repeats pixels (nearest)");
    uint8_t odd[9] = {0, 90, 180, 0, 90, 180, 0, 90, 180}, o2[4];
    plot_resample(odd, 3, 3, o2, 2, 2);
    tap_ok(o2[0] == 0 && o2[1] == 135, "3 -> 2 covers every source pixel (%d %d)", o2[0], o2[1]);

    /* ---- text */
    char buf[64];
    ui_key k = {.kind = UI_KEY_CHAR, .ch = ' '};
    ui_key_name(&k, buf, sizeof buf);
    tap_ok(!strcmp(buf, "space"), "key name: space");
    k.ch = 12;
    ui_key_name(&k, buf, sizeof buf);
    tap_ok(!strcmp(buf, "C-l"), "key name: C-l");
    k.ch = '?';
    ui_key_name(&k, buf, sizeof buf);
    tap_ok(!strcmp(buf, "?"), "key name: ?");
    k = (ui_key){.kind = UI_KEY_FN, .fn = UI_K_F0 + 1};
    ui_key_name(&k, buf, sizeof buf);
    tap_ok(!strcmp(buf, "f1"), "key name: f1");
    k.fn = UI_K_PGDN;
    ui_key_name(&k, buf, sizeof buf);
    tap_ok(!strcmp(buf, "pgdn"), "key name: pgdn");
    ui_fmt_count(1234, buf, sizeof buf);
    tap_ok(!strcmp(buf, "1.23k"), "count 1.23k: %s", buf);
    ui_fmt_count(25000, buf, sizeof buf);
    tap_ok(!strcmp(buf, "25k"), "count 25k: %s", buf);
    ui_fmt_duration(725, buf, sizeof buf);
    tap_ok(!strcmp(buf, "12m05s"), "duration 12m05s: %s", buf);
    ui_fmt_duration(NAN, buf, sizeof buf);
    tap_ok(!strcmp(buf, "--"), "duration unknown: %s", buf);
    tap_ok(ui_text_width("a\u2588\u2800b") == 4, "display width counts characters, not bytes");
    ui_text_clip("\u2588\u2588\u2588\u2588", 2, buf, sizeof buf);
    tap_ok(!strcmp(buf, "\u2588\u2588"), "clipping keeps whole characters");

    /* ---- the status line: % of the sgemm peak */
    aim_board *bd = calloc(1, sizeof *bd);
    bd->threads = 4;
    aim_snapshot sn;
    memset(&sn, 0, sizeof sn);
    sn.state = AIM_JOB_RUNNING;
    snprintf(sn.job, sizeof sn.job, "pretrain");
    sn.step = (aim_step_info){.step = 10, .total = 100, .epoch = 0.5, .loss = 0.25f, .lr = 1e-3f,
                              .img_per_s = 100, .eta_s = 90};
    double F = 2e6;                 /* forward FLOPs per image */
    sn.train_flops = 3 * F;         /* a training step: 3x forward */
    sn.peak_flops = 1.5e9;          /* 100 img/s x 6 MFLOP = 0.6 GFLOP/s of 1.5: 40% */
    double want = 100.0 * 100 * 3 * F / sn.peak_flops;
    tap_ok(near(ui_peak_percent(&sn), want, 1e-9), "%% of peak = 100 * img/s * FLOPs / peak: %g",
           ui_peak_percent(&sn));
    char line[1024];
    ui_status_fields(&sn, bd, 120, 0, line, sizeof line);
    tap_ok(tap_contains(line, "100 img/s") && tap_contains(line, "  40% peak"),
           "120 columns: img/s and %% of peak (\"%s\")", line);
    /* as wide as the other fields need: the peak is the one left out */
    sn.peak_flops = 0;
    ui_status_fields(&sn, bd, 120, 0, line, sizeof line);
    int others = ui_text_width(line);
    tap_ok(!tap_contains(line, "peak") && tap_contains(line, "img/s") &&
               isnan(ui_peak_percent(&sn)),
           "no peak measured: no %% (\"%s\")", line);
    sn.peak_flops = 1.5e9;
    ui_status_fields(&sn, bd, others, 0, line, sizeof line);
    tap_ok(!tap_contains(line, "peak") && tap_contains(line, "100 img/s") &&
               tap_contains(line, "4 thr") && tap_contains(line, "step 10/100"),
           "%d columns: %% of peak is dropped first (\"%s\")", others, line);
    ui_status_fields(&sn, bd, others + 11, 0, line, sizeof line);
    tap_ok(tap_contains(line, "40% peak"), "%d columns: it fits again", others + 11);
    int was = sn.bf16;
    tap_ok(!tap_contains(line, "bf16"), "an fp32 job does not say its precision");
    sn.bf16 = 1;
    ui_status_fields(&sn, bd, 200, 0, line, sizeof line);
    tap_ok(tap_contains(line, " bf16  "), "a bf16 job says so beside its name (\"%s\")", line);
    sn.bf16 = was;
    sn.train_flops = 0; /* a LoRA or probe job: FLOPs not counted */
    ui_status_fields(&sn, bd, 200, 0, line, sizeof line);
    tap_ok(!tap_contains(line, "peak") && isnan(ui_peak_percent(&sn)),
           "a job whose FLOPs are not counted shows no %%");
    sn.train_flops = 3 * F;
    sn.step.img_per_s = 400;
    tap_ok(near(ui_peak_percent(&sn), 4 * want, 1e-9), "the %% follows img/s (%g)",
           ui_peak_percent(&sn));
    free(bd);

    /* NO_COLOR (no-color.org): set and not empty turns colour off */
    tap_ok(!ui_no_color(NULL), "NO_COLOR unset: colours");
    tap_ok(!ui_no_color(""), "NO_COLOR set but empty: colours");
    tap_ok(ui_no_color("1") && ui_no_color("0") && ui_no_color("yes"),
           "NO_COLOR=1, =0 or any other non-empty value: no colours");
    return tap_done();
}
