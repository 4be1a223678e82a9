/*
 * test_metrics.c - the metrics log read back: flattening, nulls, arrays, a
 * partial last line, malformed lines; the wide CSV exactly (quoted header
 * cells, thousands of columns); the TensorBoard file derived from it; and a
 * stopped + resumed run whose event file holds every step exactly once.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aim/io.h"
#include "aim/metrics.h"
#include "aim/runlog.h"
#include "aim/train.h"
#include "tap.h"

/* count records and (step, tag) pairs with a given tag in an event file */
static int count_records(const char *path, const char *tag, int64_t *steps, int max)
{
    uint8_t *buf;
    size_t n;
    aim_err e;
    if (aim_read_file(path, 1 << 26, &buf, &n, &e) != 0)
        return -1;
    int found = 0;
    size_t tl = strlen(tag);
    for (size_t i = 0; i + 16 <= n;) {
        uint64_t len;
        memcpy(&len, buf + i, 8);
        const uint8_t *rec = buf + i + 12;
        /* the tag appears verbatim in the record; the step is field 2 */
        for (size_t k = 0; k + tl < len; k++)
            if (!memcmp(rec + k, tag, tl) && rec[k - 1] == tl) {
                int64_t step = 0;
                if (rec[9] == 0x10) { /* after the 9-byte wall_time field */
                    const uint8_t *p = rec + 10;
                    int sh = 0;
                    while (*p & 0x80) {
                        step |= (int64_t)(*p & 0x7f) << sh;
                        sh += 7;
                        p++;
                    }
                    step |= (int64_t)*p << sh;
                }
                if (found < max)
                    steps[found] = step;
                found++;
                break;
            }
        i += 16 + len;
    }
    free(buf);
    return found;
}

static void append(const char *path, const char *mode, const char *text)
{
    FILE *f = fopen(path, mode);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Following a log as another process writes it (aim_metrics_tail): lines
 * come once each as they are completed, a line being written waits, a log
 * cut shorter or replaced is read again from the start, a missing one is
 * no error, a garbage line is counted and skipped; and the writer's lock
 * (aim_runlog_writer_active) is held exactly while a run log is open. */
static void case_tail(void)
{
    const char *p = tap_path("tail.jsonl");
    remove(p);
    aim_metrics_tail t;
    aim_metrics_tail_init(&t, p);
    aim_metrics got;
    aim_err e = {{0}};
    int rew = 0;
    int rc = aim_metrics_tail_poll(&t, &got, &rew, &e);
    tap_ok(rc == 0 && got.n == 0 && t.missing && !rew, "no log yet: nothing, no error");
    aim_metrics_free(&got);
    append(p, "w", "{\"step\":1,\"kind\":\"train\",\"loss\":2.5}\n{\"step\":2,\"kind\":\"tr");
    rc = aim_metrics_tail_poll(&t, &got, &rew, &e);
    tap_ok(rc == 0 && got.n == 1 && got.rows[0].step == 1 &&
               aim_metric_get(&got.rows[0], "loss") == 2.5 && !t.missing,
           "the complete line comes; the one being written waits (%d rows)", got.n);
    aim_metrics_free(&got);
    append(p, "a", "ain\",\"loss\":2}\nnot json\n{\"step\":3,\"kind\":\"val\",\"val_loss\":1.5}\n");
    rc = aim_metrics_tail_poll(&t, &got, &rew, &e);
    tap_ok(rc == 0 && got.n == 2 && got.rows[0].step == 2 && got.rows[1].step == 3 &&
               aim_metric_get(&got.rows[1], "val_loss") == 1.5 && t.bad == 1 && !rew,
           "the rest of it and the next ones; the garbage line is counted (bad %lld)",
           (long long)t.bad);
    aim_metrics_free(&got);
    rc = aim_metrics_tail_poll(&t, &got, &rew, &e);
    tap_ok(rc == 0 && got.n == 0 && !rew, "nothing new: nothing");
    aim_metrics_free(&got);
    append(p, "w", "{\"step\":1,\"kind\":\"train\",\"loss\":9}\n"); /* cut back (a resume) */
    rc = aim_metrics_tail_poll(&t, &got, &rew, &e);
    tap_ok(rc == 0 && rew && got.n == 1 && aim_metric_get(&got.rows[0], "loss") == 9,
           "a log cut shorter is read again from its start");
    aim_metrics_free(&got);
    char *q = aim_xasprintf("%s.new", p);
    append(q, "w", "{\"step\":1,\"kind\":\"train\",\"loss\":7}\n"
                   "{\"step\":2,\"kind\":\"train\",\"loss\":6}\n");
    rename(q, p); /* replaced atomically, as aim_write_atomic does */
    rc = aim_metrics_tail_poll(&t, &got, &rew, &e);
    tap_ok(rc == 0 && rew && got.n == 2 && aim_metric_get(&got.rows[1], "loss") == 6,
           "a log replaced is read again from its start");
    aim_metrics_free(&got);
    remove(p);
    rc = aim_metrics_tail_poll(&t, &got, &rew, &e);
    tap_ok(rc == 0 && got.n == 0 && t.missing, "a log deleted: waited for, no error");
    aim_metrics_free(&got);
    aim_metrics_tail_free(&t);
    free(q);

    const char *lp = tap_path("locked.jsonl");
    tap_ok(aim_runlog_writer_active(lp) == 0, "no log: no writer");
    aim_runlog *l = aim_runlog_open(lp, "r", -1, &e);
    tap_ok(l && aim_runlog_writer_active(lp) == 1, "a log open for writing: its writer is active");
    aim_runlog *l2 = aim_runlog_open(lp, "r", -1, &e);
    tap_ok(!l2 && tap_contains(e.msg, "another process is writing this run"),
           "a second writer is refused: %s", e.msg);
    aim_runlog_close(l, NULL);
    tap_ok(aim_runlog_writer_active(lp) == 0, "closed: no writer");
}

static int stop_at(void *ctx, const aim_step_info *s)
{
    return s->step == *(int *)ctx;
}

int main(void)
{
    aim_err e = {{0}};
    const char *log = "{\"run\":\"r\",\"step\":1,\"kind\":\"train\",\"wall\":10.5,\"loss\":2.5,\"lr\":0.001}\n"
                      "{\"run\":\"r\",\"step\":2,\"kind\":\"train\",\"loss\":null,\"lr\":0.002}\n"
                      "{\"run\":\"r\",\"step\":2,\"kind\":\"probe\",\"top1\":[50,75.5],\"best_block\":2}\n"
                      "{\"run\":\"r\",\"step\":2,\"kind\":\"val\",\"val_loss\":1.25}\n"
                      "{\"run\":\"r\",\"step\":3,\"kind\":\"tra";
    const char *p = tap_path("m.jsonl");
    tap_write(p, log, strlen(log));
    aim_metrics m;
    tap_ok(aim_metrics_read(p, &m, &e) == 0 && m.n == 4 && !strcmp(m.run, "r"),
           "4 events read, the partial last line skipped");
    tap_ok(m.rows[0].step == 1 && !strcmp(m.rows[0].kind, "train") && m.rows[0].n == 3 &&
               !strcmp(m.rows[0].keys[1], "loss") && m.rows[0].vals[1] == 2.5,
           "a train line: step, kind, values");
    tap_ok(isnan(m.rows[1].vals[0]), "null becomes NaN");
    tap_ok(m.rows[2].n == 3 && !strcmp(m.rows[2].keys[0], "probe_top1_block1") &&
               !strcmp(m.rows[2].keys[1], "probe_top1_block2") && m.rows[2].vals[1] == 75.5 &&
               !strcmp(m.rows[2].keys[2], "probe_best_block"),
           "arrays flatten to <kind>_<key>_block<i>");
    const char *csv = tap_path("m.csv");
    tap_ok(aim_metrics_write_csv(&m, csv, &e) == 0, "CSV written");
    uint8_t *buf;
    size_t n;
    aim_read_file(csv, 1 << 20, &buf, &n, &e);
    const char *want = "step,loss,lr,probe_top1_block1,probe_top1_block2,probe_best_block,val_loss\n"
                       "1,2.5,0.001,,,,\n"
                       "2,,0.002,50,75.5,2,1.25\n";
    tap_ok(n == strlen(want) && !memcmp(buf, want, n), "the wide CSV is exactly as expected");
    if (!(n == strlen(want) && !memcmp(buf, want, n)))
        tap_diag("%.*s", (int)n, buf);
    free(buf);
    const char *tb = tap_path("events.out.tfevents.test");
    tap_ok(aim_metrics_write_tfevents(&m, tb, &e) == 0, "event file written from the log");
    int64_t st[8];
    tap_ok(count_records(tb, "train/loss", st, 8) == 1 && st[0] == 1 &&
               count_records(tb, "probe/top1_block2", st, 8) == 1 && st[0] == 2 &&
               count_records(tb, "val/val_loss", st, 8) == 1,
           "tags train/loss, probe/top1_block2, val/val_loss with their steps (NaN skipped)");
    aim_metrics_free(&m);
    const char *bad = "{\"run\":\"r\",\"step\":1,\"kind\":\"train\",\"loss\":1}\n{\"step\":oops}\n";
    tap_write(p, bad, strlen(bad));
    tap_ok(aim_metrics_read(p, &m, &e) == -1 && tap_contains(e.msg, "line 2"),
           "a malformed line is named: %s", e.msg);

    /* CSV header cells: RFC 4180 quoting and no formulas for spreadsheets */
    const char *keys = "{\"run\":\"r\",\"step\":1,\"kind\":\"train\",\"a,b\":1,"
                       "\"q\\\"x\":2,\"=cmd|' /C calc'!A0\":3,\"+x\":4,\"-x\":5,"
                       "\"@x\":6,\"ok\":7}\n";
    tap_write(p, keys, strlen(keys));
    tap_ok(aim_metrics_read(p, &m, &e) == 0 && aim_metrics_write_csv(&m, csv, &e) == 0,
           "a log with odd keys: CSV written");
    aim_metrics_free(&m);
    aim_read_file(csv, 1 << 20, &buf, &n, &e);
    want = "step,\"a,b\",\"q\"\"x\",\"'=cmd|' /C calc'!A0\",\"'+x\",\"'-x\",\"'@x\",ok\n"
           "1,1,2,3,4,5,6,7\n";
    tap_ok(n == strlen(want) && !memcmp(buf, want, n),
           "a comma or quote in a key is quoted, = + - @ first made text with a '");
    if (!(n == strlen(want) && !memcmp(buf, want, n)))
        tap_diag("%.*s", (int)n, buf);
    free(buf);

    /* many columns (the column lookup is a hash table, not a scan): line i
     * holds keys k<i>, k<i+1>, k<i+2>; every value lands in its column */
    {
        enum { LINES = 3000, COLS = LINES + 2 };
        FILE *f = fopen(p, "wb");
        for (int i = 0; i < LINES; i++)
            fprintf(f, "{\"run\":\"r\",\"step\":%d,\"kind\":\"train\",\"k%d\":%d,"
                       "\"k%d\":%d,\"k%d\":%d}\n", i, i, i, i + 1, -(i + 1), i + 2, i + 2);
        fclose(f);
        int good = aim_metrics_read(p, &m, &e) == 0 && aim_metrics_write_csv(&m, csv, &e) == 0;
        aim_metrics_free(&m);
        good = good && aim_read_file(csv, 1 << 26, &buf, &n, &e) == 0;
        /* header: step,k0,k1,...; row i: i, then values in columns i, i+1, i+2 */
        const char *q = good ? (const char *)buf : "";
        int cols = 0, rows = 0, cells_ok = 1;
        for (const char *h = q; *h && *h != '\n'; h++)
            cols += *h == ',';
        q = strchr(q, '\n');
        for (int i = 0; q && i < LINES; i++, rows++) {
            q++;
            long long st = strtoll(q, (char **)&q, 10);
            cells_ok &= st == i;
            for (int c = 0; c < COLS; c++) {
                cells_ok &= *q == ',';
                q++;
                if (c == i || c == i + 1 || c == i + 2) {
                    long v = strtol(q, (char **)&q, 10);
                    cells_ok &= v == (c == i + 1 ? -(c) : c);
                }
            }
            cells_ok &= *q == '\n';
            if (!cells_ok)
                break;
        }
        tap_ok(good && cols == COLS && rows == LINES && cells_ok,
               "%d distinct keys: %d columns, every value in its column (%d rows checked)",
               COLS, cols, rows);
        if (good)
            free(buf);
    }

    /* the step of a line wherever it sits (resume reads it so) */
    {
        char line[1200];
        char name[1001];
        memset(name, 'x', 1000);
        name[1000] = 0;
        int len = snprintf(line, sizeof line, "{\"run\":\"%s\",\"step\":42,\"kind\":\"train\"}",
                           name);
        int64_t step = -1;
        tap_ok(aim_metrics_line_step(line, (size_t)len, &step) == 0 && step == 42,
               "line_step finds \"step\" after a 1000-byte run name");
        tap_ok(aim_metrics_line_step("{\"step\":oops}", 14, &step) == -1,
               "line_step rejects a line that is not a metrics object");
    }

    /* the event file goes through aim_write_atomic: another process's
     * fixed-name temporary (PATH.tmp) is neither used nor removed */
    {
        const char *planted = tap_path("events.out.tfevents.test.tmp");
        tap_write(planted, "other", 5);
        tap_write(p, log, strlen(log));
        aim_metrics_read(p, &m, &e);
        tap_ok(aim_metrics_write_tfevents(&m, tb, &e) == 0 &&
                   count_records(tb, "train/loss", st, 8) == 1,
               "event file rewritten");
        aim_metrics_free(&m);
        uint8_t *pb;
        size_t pn;
        tap_ok(aim_read_file(planted, 100, &pb, &pn, &e) == 0 && pn == 5 &&
                   !memcmp(pb, "other", 5),
               "a file at the old fixed temporary name (PATH.tmp) is left alone");
        if (pn)
            free(pb);
    }

    /* a run stopped at step 7 and resumed from its checkpoint at 5: the
     * event file must hold steps 1..12 once each */
    aim_config c;
    aim_config_preset("micro", &c, &e);
    aim_synth_opts so = {.n = 100, .c = 3, .h = 8, .w = 8, .seed = 1};
    aim_dataset *ds = aim_data_synthetic(&so, &e);
    char *dir = aim_xasprintf("%s/run", tap_tmpdir());
    char *metrics = aim_xasprintf("%s/metrics.jsonl", dir);
    mkdir(dir, 0755);
    aim_pretrain_opts po;
    aim_pretrain_opts_default(&po);
    po.steps = 12;
    po.batch = 8;
    po.metrics_path = metrics;
    po.ckpt_dir = dir;
    po.ckpt_every = 5;
    int stop = 7;
    po.on_step = stop_at;
    po.ctx = &stop;
    aim_model *m1 = aim_model_new(&c, 1, &e);
    aim_pretrain_result res;
    aim_pretrain(m1, ds, &po, &res, &e);
    char *ck5 = aim_xasprintf("%s/ckpt-5.safetensors", dir), *ck7 = aim_xasprintf("%s/ckpt-7.safetensors", dir);
    remove(ck7); /* as if killed after step 7 with the last checkpoint at 5 */
    aim_train_state s;
    aim_pretrain_opts lo;
    aim_st_file *meta;
    aim_model *m2 = aim_checkpoint_load(ck5, &s, &lo, &meta, &e);
    lo.metrics_path = metrics;
    lo.ckpt_dir = dir;
    lo.resume = &s;
    tap_ok(m2 && aim_pretrain(m2, ds, &lo, &res, &e) == 0 && res.steps_done == 12,
           "stopped at 7, resumed from 5 to 12");
    char *ev = aim_xasprintf("%s/events.out.tfevents.aim", dir);
    int64_t steps[32];
    int k = count_records(ev, "train/loss", steps, 32);
    int ordered = k == 12;
    for (int i = 0; ordered && i < 12; i++)
        ordered = steps[i] == i + 1;
    tap_ok(ordered, "the event file holds train/loss for steps 1..12 exactly once (%d records)", k);
    aim_metrics_read(metrics, &m, &e);
    tap_ok(m.n == 12 && m.rows[11].step == 12, "the metrics log too");
    aim_metrics_free(&m);
    aim_st_close(meta);
    aim_model_free(m1);
    aim_model_free(m2);
    aim_dataset_free(ds);
    free(dir), free(metrics), free(ck5), free(ck7), free(ev);
    case_tail();
    return tap_done();
}
