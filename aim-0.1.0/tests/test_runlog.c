/*
 * test_runlog.c - run folders (aim/runlog.h): events written to the JSON
 * Lines log and the TensorBoard event file, read back independently (the
 * log with aim_metrics_read, the event file with tests/tfread.h); resuming
 * truncates (wherever "step" sits in a line; garbage lines dropped with a
 * warning) and rebuilds; folders that cannot be made or belong to a
 * pretraining run are refused; and the probe and LoRA jobs' run folders:
 * run.json, their lines, tags and numbers equal to the jobs' results.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/metrics.h"
#include "aim/probe.h"
#include "aim/runlog.h"
#include "tap.h"
#include "tfread.h"

#define MAX_SCALARS 4096

typedef struct events {
    int n, crc_ok;
    tf_scalar s[MAX_SCALARS];
} events;

/* the scalars of dir's event file (n = -1 when it cannot be read) */
static void read_events(const char *dir, events *ev)
{
    char path[600];
    snprintf(path, sizeof path, "%s/events.out.tfevents.aim", dir);
    uint8_t *buf;
    size_t len;
    ev->n = -1;
    if (aim_read_file(path, 1 << 26, &buf, &len, NULL) != 0)
        return;
    ev->n = tf_scalars(buf, len, ev->s, MAX_SCALARS, &ev->crc_ok);
    free(buf);
}

/* how many scalars carry tag; *last = the value of the last one */
static int tag_count(const events *ev, const char *tag, float *last)
{
    int k = 0;
    for (int i = 0; i < ev->n && i < MAX_SCALARS; i++)
        if (!strcmp(ev->s[i].tag, tag)) {
            k++;
            if (last)
                *last = ev->s[i].value;
        }
    return k;
}

/* the value of key in a row (NaN when it has none) */
static double row_value(const aim_metric *r, const char *key)
{
    for (int c = 0; c < r->n; c++)
        if (!strcmp(r->keys[c], key))
            return r->vals[c];
    return NAN;
}

/* rows of a kind, and the value of column key in the last of them */
static int rows_of(const aim_metrics *m, const char *kind, const char *key, double *last)
{
    int k = 0;
    for (int r = 0; r < m->n; r++) {
        if (strcmp(m->rows[r].kind, kind))
            continue;
        k++;
        if (last)
            *last = row_value(&m->rows[r], key);
    }
    return k;
}

static char *read_text(const char *path)
{
    uint8_t *buf;
    size_t len;
    if (aim_read_file(path, 1 << 20, &buf, &len, NULL) != 0)
        return aim_xstrdup("");
    char *t = aim_xmalloc(len + 1);
    memcpy(t, buf, len);
    t[len] = 0;
    free(buf);
    return t;
}

static void test_module(void)
{
    int ok;
    aim_err e = {{0}};
    char dir[600];
    snprintf(dir, sizeof dir, "%s/runs/a/", tap_tmpdir()); /* parents made, trailing slash */
    aim_runlog *l = aim_runlog_open_dir(dir, &e);
    tap_ok(l != NULL, "a run folder and its parents are made: %s", l ? "ok" : e.msg);
    if (!l)
        return;
    int bad = 0;
    for (int s = 1; s <= 4; s++) {
        aim_runlog_begin(l, s, "train");
        aim_runlog_num(l, "loss", 1.0 / s);
        aim_runlog_num(l, "grad_norm", s == 2 ? NAN : 0.5);
        bad |= aim_runlog_end(l) != 0;
    }
    tap_ok(!bad, "four events end cleanly");
    float top1[3] = {10, 42.5f, 30};
    aim_runlog_begin(l, 4, "probe_result");
    aim_runlog_array(l, "top1", top1, 3);
    aim_runlog_end(l);
    tap_ok(aim_runlog_events(l) != NULL && aim_runlog_close(l, &e) == 0, "closes cleanly");
    tap_ok(aim_runlog_close(NULL, &e) == 0 && aim_runlog_events(NULL) == NULL,
           "a NULL log is no log: every call does nothing");

    char mpath[700];
    snprintf(mpath, sizeof mpath, "%smetrics.jsonl", dir);
    aim_metrics m;
    int rd = aim_metrics_read(mpath, &m, &e);
    double loss = 0, gn = 0, b2 = 0;
    ok = rd == 0 && rows_of(&m, "train", "loss", &loss) == 4 && loss == 0.25 &&
               rows_of(&m, "probe_result", "probe_result_top1_block2", &b2) == 1 && b2 == 42.5 &&
               !strcmp(m.run, "a");
    tap_ok(ok,
           "metrics.jsonl: 4 train lines (last loss %g), the array as top1_block<i> (%g), run "
           "= the folder's name (\"%s\")", loss, b2, rd == 0 ? m.run : e.msg);
    if (rd == 0) {
        for (int r = 0; r < m.n; r++)
            if (m.rows[r].step == 2 && !strcmp(m.rows[r].kind, "train"))
                gn = row_value(&m.rows[r], "grad_norm");
        tap_ok(isnan(gn), "a NaN is written as null (read back as NaN)");
        aim_metrics_free(&m);
    }
    events *ev = malloc(sizeof *ev);
    read_events(dir, ev);
    float v = 0, t2 = 0;
    ok = ev->n == 4 * 2 - 1 + 3 && ev->crc_ok;
    tap_ok(ok, "the event file: one scalar per finite value (%d)",
           ev->n);
    ok = tag_count(ev, "train/loss", &v) == 4 && v == 0.25f && tag_count(ev, "train/grad_norm", NULL) == 3 &&
               tag_count(ev, "probe_result/top1_block2", &t2) == 1 && t2 == 42.5f &&
               tag_count(ev, "probe_result/top1_block3", NULL) == 1;
    tap_ok(ok,
           "tags <kind>/<key> and <kind>/<key>_block<i> with their values");

    /* appending, then resuming at step 2 */
    l = aim_runlog_open_dir(dir, &e);
    aim_runlog_begin(l, 5, "train");
    aim_runlog_num(l, "loss", 0.2);
    aim_runlog_end(l);
    aim_runlog_close(l, &e);
    read_events(dir, ev);
    tap_ok(tag_count(ev, "train/loss", NULL) == 5, "a job's folder is appended to");
    l = aim_runlog_open(mpath, "a", 2, &e);
    aim_runlog_close(l, &e);
    read_events(dir, ev);
    rd = aim_metrics_read(mpath, &m, &e);
    tap_ok(l && rd == 0 && m.n == 2 && tag_count(ev, "train/loss", &v) == 2 && v == 0.5f &&
               tag_count(ev, "probe_result/top1_block1", NULL) == 0,
           "resuming at step 2 keeps its lines and rebuilds the event file from them");
    if (rd == 0)
        aim_metrics_free(&m);

    /* resuming past a long run name: "step" sits beyond the first 255 bytes
     * of the line, and the line after the resume step still goes */
    {
        char rdir[600], rpath[700], name[401];
        snprintf(rdir, sizeof rdir, "%s/longname", tap_tmpdir());
        aim_mkdir_p(rdir, NULL);
        snprintf(rpath, sizeof rpath, "%s/metrics.jsonl", rdir);
        memset(name, 'n', 400);
        name[400] = 0;
        l = aim_runlog_open(rpath, name, -1, &e);
        for (int st = 1; st <= 4; st++) {
            aim_runlog_begin(l, st, "train");
            aim_runlog_num(l, "loss", st);
            aim_runlog_end(l);
        }
        aim_runlog_close(l, &e);
        l = aim_runlog_open(rpath, name, 2, &e);
        aim_runlog_close(l, &e);
        rd = aim_metrics_read(rpath, &m, &e);
        tap_ok(l && rd == 0 && m.n == 2 && m.rows[1].step == 2,
               "resuming at 2 with a 400-byte run name drops steps 3 and 4 (%d lines kept)",
               rd == 0 ? m.n : -1);
        if (rd == 0)
            aim_metrics_free(&m);

        /* a garbage line (a torn write, a stray edit) is dropped with a
         * warning naming the file and line, rather than failing every
         * later resume */
        const char *mixed = "{\"run\":\"g\",\"step\":1,\"kind\":\"train\",\"loss\":1}\n"
                            "garbage\x1b]0;title\x07\n"
                            "{\"run\":\"g\",\"step\":2,\"kind\":\"train\",\"loss\":2}\n"
                            "{\"step\":oops}\n";
        tap_write(rpath, mixed, strlen(mixed));
        l = aim_runlog_open(rpath, "g", 5, &e);
        const char *w = aim_runlog_warning(l);
        tap_ok(l && tap_contains(w, rpath) && tap_contains(w, "2 lines") &&
                   tap_contains(w, "line 2"),
               "a resume over garbage lines succeeds and says so: %s", l ? w : e.msg);
        aim_runlog_close(l, &e);
        rd = aim_metrics_read(rpath, &m, &e);
        tap_ok(rd == 0 && m.n == 2 && m.rows[1].step == 2,
               "... the log reads back with its two good lines");
        if (rd == 0)
            aim_metrics_free(&m);
        l = aim_runlog_open(rpath, "g", 5, &e);
        tap_ok(l && !aim_runlog_warning(l)[0], "... and the next resume has nothing to drop");
        aim_runlog_close(l, &e);

        /* the event file is rebuilt through aim_write_atomic: a file at the
         * old fixed temporary name is not touched */
        char planted[800];
        snprintf(planted, sizeof planted, "%s/events.out.tfevents.aim.tmp", rdir);
        tap_write(planted, "other", 5);
        l = aim_runlog_open(rpath, "g", 5, &e);
        aim_runlog_close(l, &e);
        char *kept = read_text(planted);
        tap_ok(l && kept && !strcmp(kept, "other"),
               "resuming leaves another writer's events.out.tfevents.aim.tmp alone");
        free(kept);
    }
    free(ev);

    /* folders that cannot be run folders */
    char file[600], under[700];
    snprintf(file, sizeof file, "%s/plain", tap_tmpdir());
    tap_write(file, "x", 1);
    snprintf(under, sizeof under, "%s/run", file);
    tap_ok(!aim_runlog_open_dir(under, &e) && tap_contains(e.msg, file) &&
               tap_contains(e.msg, "cannot create"),
           "a folder under a regular file: %s", e.msg);
    tap_ok(!aim_runlog_open_dir(file, &e) && tap_contains(e.msg, "not a folder"),
           "a regular file: %s", e.msg);
    char pre[600], rj[700];
    snprintf(pre, sizeof pre, "%s/pretrained", tap_tmpdir());
    aim_mkdir_p(pre, NULL);
    snprintf(rj, sizeof rj, "%s/run.json", pre);
    tap_write(rj, "{\"image\":8,\"depth\":2}\n", 23);
    tap_ok(!aim_runlog_open_dir(pre, &e) && tap_contains(e.msg, "pretraining run"),
           "a pretraining run's folder is refused: %s", e.msg);
    char *after = read_text(rj);
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", pre);
    tap_ok(!strcmp(after, "{\"image\":8,\"depth\":2}\n") && aim_file_size(mpath, NULL) < 0,
           "... and left as it was");
    free(after);
}

static void test_jobs(void)
{
    int ok;
    aim_err e = {{0}};
    aim_config mc;
    aim_config_preset("micro", &mc, &e);
    aim_model *m = aim_model_new(&mc, 1, &e);
    aim_synth_opts so = {.n = 120, .c = 3, .h = 8, .w = 8, .seed = 2};
    aim_dataset *tr = aim_data_synthetic(&so, &e);
    so.n = 60;
    so.seed = 3;
    aim_dataset *te = aim_data_synthetic(&so, &e);

    /* a probe sweep */
    char pdir[600];
    snprintf(pdir, sizeof pdir, "%s/probe", tap_tmpdir());
    aim_probe_job pj = {.kind = AIM_PROBE_ATTENTIVE, .weights = "w.safetensors"};
    aim_probe_opts_default(&pj.train);
    pj.train.epochs = 2;
    pj.train.batch = 40;
    aim_probe_job_sweep(&pj, mc.depth, 1);
    pj.log = aim_runlog_open_dir(pdir, &e);
    aim_probe_job_result pr;
    int rc = aim_probe_job_run(m, tr, te, &pj, &pr, &e);
    tap_ok(rc == 0 && aim_runlog_close(pj.log, &e) == 0 && pr.nsets == mc.depth,
           "a probe sweep with a run folder: %s", rc == 0 ? "ok" : e.msg);
    aim_probe_free(pr.best_probe);
    char path[700];
    snprintf(path, sizeof path, "%s/run.json", pdir);
    char *rj = read_text(path);
    tap_ok(tap_contains(rj, "\"kind\":\"probe\"") && tap_contains(rj, "\"weights\":\"w.safetensors\"") &&
               tap_contains(rj, "\"probe_kind\":\"attentive\"") && tap_contains(rj, "\"sets\":[[1],[2]]") &&
               tap_contains(rj, "\"epochs\":2") && tap_contains(rj, "\"lr\":") &&
               tap_contains(rj, "\"depth\":2"),
           "run.json: kind, weights, probe kind, sets, epochs, lr, the model");
    free(rj);
    snprintf(path, sizeof path, "%s/metrics.jsonl", pdir);
    aim_metrics mm;
    int rd = aim_metrics_read(path, &mm, &e);
    double set = 0, lr = 0, b2 = 0;
    ok = rd == 0 && rows_of(&mm, "probe_epoch", "probe_epoch_set", &set) == 2 * mc.depth &&
               set == mc.depth && rows_of(&mm, "probe_epoch", "probe_epoch_lr", &lr) > 0 && lr > 0 &&
               lr < pj.train.lr;
    tap_ok(ok,
           "a probe_epoch line per epoch of each set, with its set and lr (%g)", lr);
    ok = rd == 0 && rows_of(&mm, "probe_result", "probe_result_top1_block2", &b2) == 1 &&
               fabs(b2 - pr.sets[1].test_top1) < 0.01;
    tap_ok(ok,
           "probe_result: top1 per set, as the job reported it (block 2: %g vs %g)", b2,
           pr.sets[1].test_top1);
    if (rd == 0)
        aim_metrics_free(&mm);
    events *ev = malloc(sizeof *ev);
    read_events(pdir, ev);
    float t1 = 0;
    ok = ev->crc_ok && tag_count(ev, "probe_epoch/test_top1", NULL) == 2 * mc.depth &&
               tag_count(ev, "probe_result/top1_block1", &t1) == 1 &&
               fabsf(t1 - pr.sets[0].test_top1) < 1e-3f &&
               tag_count(ev, "probe_result/top1_block2", NULL) == 1;
    tap_ok(ok,
           "TensorBoard: probe_epoch/test_top1, probe_result/top1_block<i> (%g)", t1);

    /* a LoRA job */
    char ldir[600];
    snprintf(ldir, sizeof ldir, "%s/lora", tap_tmpdir());
    aim_lora_job lj;
    aim_lora_job_default(&lj);
    lj.rank = 2;
    lj.epochs = 2;
    lj.batch = 20;
    lj.log_every = 4;
    lj.weights = "w.safetensors";
    lj.log = aim_runlog_open_dir(ldir, &e);
    aim_lora_result lr_;
    rc = aim_lora_run(m, tr, te, &lj, &lr_, &e);
    tap_ok(rc == 0 && aim_runlog_close(lj.log, &e) == 0 && lr_.steps == 12,
           "a LoRA job with a run folder: %s", rc == 0 ? "ok" : e.msg);
    aim_probe_free(lr_.probe);
    snprintf(path, sizeof path, "%s/run.json", ldir);
    rj = read_text(path);
    char want[64];
    snprintf(want, sizeof want, "\"adapters\":%llu", (unsigned long long)lr_.adapters);
    tap_ok(tap_contains(rj, "\"kind\":\"lora\"") && tap_contains(rj, "\"rank\":2") &&
               tap_contains(rj, "\"probe_blocks\":[1]") && tap_contains(rj, "\"blocks\":[1]") &&
               tap_contains(rj, want) && tap_contains(rj, "\"share\":") &&
               tap_contains(rj, "\"head_lr\":"),
           "run.json: kind, rank, blocks, probe blocks, lrs, %s and the share", want);
    free(rj);
    snprintf(path, sizeof path, "%s/metrics.jsonl", ldir);
    rd = aim_metrics_read(path, &mm, &e);
    double top = 0, steps = 0;
    ok = rd == 0 && rows_of(&mm, "lora_step", "lora_step_lr", NULL) == 3 &&
               rows_of(&mm, "lora", "lora_test_top1", &top) == 2 &&
               fabs(top - lr_.test_top1) < 1e-4;
    tap_ok(ok,
           "lora_step every 4 of 12 steps, a lora line per epoch; the last test_top1 is the "
           "job's (%g vs %g)", top, lr_.test_top1);
    for (int r = 0; rd == 0 && r < mm.n; r++)
        if (!strcmp(mm.rows[r].kind, "lora"))
            steps = (double)mm.rows[r].step;
    tap_ok(steps == 12, "the lora line's step is the steps done (%g)", steps);
    if (rd == 0)
        aim_metrics_free(&mm);
    read_events(ldir, ev);
    float tt = 0;
    ok = ev->crc_ok && tag_count(ev, "lora/test_top1", &tt) == 2 && fabsf(tt - lr_.test_top1) < 1e-4f &&
               tag_count(ev, "lora_step/loss", NULL) == 3 && tag_count(ev, "lora_step/grad_norm", NULL) == 3 &&
               tag_count(ev, "lora_step/img_per_s", NULL) == 3;
    tap_ok(ok,
           "TensorBoard: lora/test_top1 (%g) and lora_step/loss, grad_norm, img_per_s", tt);
    free(ev);
    aim_dataset_free(tr);
    aim_dataset_free(te);
    aim_model_free(m);
}

int main(void)
{
    test_module();
    test_jobs();
    return tap_done();
}
