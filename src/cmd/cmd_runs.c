/*
 * cmd_runs.c - `aim runs [FOLDER]`: a table of the run folders under FOLDER
 * (default runs/): model, steps, final loss, best validation loss, best live
 * probe (or probe job) top-1, LoRA top-1 and wall time, so runs - pretraining,
 * probe and LoRA jobs - can be compared at a glance.
 */
#include "config.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aim/json.h"
#include "aim/metrics.h"
#include "cmd/cmd.h"
#include "cmd/opts.h"

static int runs_exec(int argc, char **argv);

const struct aim_cmd cmd_runs_entry = {
    .name = "runs",
    .usage = "[FOLDER]",
    .summary = "a table of run folders: steps, losses, probe and LoRA top-1, time",
    .help = "Lists every sub-folder of FOLDER (default runs) holding a metrics.jsonl: runs of\n"
            "aim train, and of aim probe and aim lora with --out (steps and loss are LoRA's,\n"
            "probe% the best top-1 of the live probe or of a probe job's sets, lora% the\n"
            "last LoRA epoch's test top-1, time the jobs' seconds together).",
    .exec = runs_exec,
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* run.json's top-level integer `key` (0 when absent or not an int) */
static int json_int(const uint8_t *text, size_t len, const char *key)
{
    int64_t v = 0;
    if (aim_json_get_int(text, len, key, &v) != 0 || v < INT_MIN || v > INT_MAX)
        return 0;
    return (int)v;
}

static void one_run(const char *dir, const char *name)
{
    char *mpath = aim_xasprintf("%s/%s/metrics.jsonl", dir, name);
    char *rpath = aim_xasprintf("%s/%s/run.json", dir, name);
    aim_err e;
    aim_metrics m;
    if (aim_metrics_read(mpath, &m, &e) != 0) {
        printf("%-28s (%s)\n", cmd_esc(name), cmd_esc(e.msg));
        free(mpath);
        free(rpath);
        return;
    }
    uint8_t *rj = NULL;
    size_t rl = 0;
    char model[40] = "?";
    if (aim_read_file(rpath, 1 << 16, &rj, &rl, NULL) == 0) {
        snprintf(model, sizeof model, "D%d L%d %dpx/p%d", json_int(rj, rl, "width"),
                 json_int(rj, rl, "depth"), json_int(rj, rl, "image"), json_int(rj, rl, "patch"));
        free(rj);
    }
    /* pretraining ("train" lines) gives steps, loss and time; a LoRA job
     * ("lora" lines) its steps, last loss, test top-1 and time; a probe job
     * ("probe_result") its top-1 per set and time; the live probe ("probe")
     * top-1 per block */
    int64_t steps = -1;
    double loss = NAN, best_val = NAN, best_probe = NAN, lora = NAN;
    double train_s = NAN, lora_s = NAN, probe_s = 0;
    for (int r = 0; r < m.n; r++) {
        const aim_metric *row = &m.rows[r];
        const char *kind = row->kind;
        int train = !strcmp(kind, "train"), lo = !strcmp(kind, "lora");
        for (int k = 0; k < row->n; k++) {
            const char *key = row->keys[k];
            double v = row->vals[k];
            if (isnan(v))
                continue;
            if (train || lo) {
                steps = row->step > steps ? row->step : steps;
                if (!strcmp(key, train ? "loss" : "lora_loss"))
                    loss = v;
                if (!strcmp(key, train ? "time" : "lora_time")) {
                    if (train)
                        train_s = v;
                    else
                        lora_s = v;
                }
                if (lo && !strcmp(key, "lora_test_top1"))
                    lora = v;
            } else if (!strcmp(key, "val_loss") && !(v >= best_val)) {
                best_val = v;
            } else if ((!strcmp(kind, "probe") || !strcmp(kind, "probe_result")) &&
                       strstr(key, "top1") && !(v <= best_probe)) {
                best_probe = v;
            } else if (!strcmp(key, "probe_result_time")) {
                probe_s += v;
            }
        }
    }
    double secs = (isnan(train_s) ? 0 : train_s) + (isnan(lora_s) ? 0 : lora_s) + probe_s;
    if (isnan(train_s) && isnan(lora_s) && probe_s == 0)
        secs = NAN;
    char t[32] = "-", l[32] = "-", bv[32] = "-", bp[32] = "-", lo[32] = "-", st[32] = "-";
    if (steps >= 0)
        snprintf(st, sizeof st, "%lld", (long long)steps);
    if (!isnan(secs))
        snprintf(t, sizeof t, "%.0fm%02.0fs", floor(secs / 60), fmod(secs, 60));
    if (!isnan(loss))
        snprintf(l, sizeof l, "%.4f", loss);
    if (!isnan(best_val))
        snprintf(bv, sizeof bv, "%.4f", best_val);
    if (!isnan(best_probe))
        snprintf(bp, sizeof bp, "%.2f", best_probe);
    if (!isnan(lora))
        snprintf(lo, sizeof lo, "%.2f", lora);
    printf("%-28s %-22s %7s %9s %9s %7s %7s %9s\n", cmd_esc(name), model, st, l, bv, bp, lo, t);
    aim_metrics_free(&m);
    free(mpath);
    free(rpath);
}

static int runs_exec(int argc, char **argv)
{
    cmd_opt opts[] = {{0}};
    if (cmd_help(&cmd_runs_entry, argc, argv, opts))
        return 0;
    char *pos[1];
    int npos;
    if (cmd_parse("runs", argc, argv, opts, pos, &npos, 1))
        return 1;
    const char *dir = npos ? pos[0] : "runs";
    DIR *d = opendir(dir);
    if (!d)
        return cmd_fail("%s: cannot list: no such folder (runs are made by `aim train --out`, or aim probe / aim lora --out)", dir);
    char **names = NULL;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *mp = aim_xasprintf("%s/%s/metrics.jsonl", dir, de->d_name);
        int has = aim_file_size(mp, NULL) >= 0;
        free(mp);
        if (has) {
            names = aim_xrealloc(names, (size_t)(n + 1) * sizeof *names);
            names[n++] = aim_xstrdup(de->d_name);
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    printf("%-28s %-22s %7s %9s %9s %7s %7s %9s\n", "run", "model", "steps", "loss", "best val",
           "probe%", "lora%", "time");
    for (int i = 0; i < n; i++) {
        one_run(dir, names[i]);
        free(names[i]);
    }
    free(names);
    if (!n)
        printf("(no runs in %s)\n", dir);
    return 0;
}
