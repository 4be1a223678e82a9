/*
 * aim/metrics.h - the run's metrics log (JSON Lines, one flat object per
 * event: "run", "step", "kind" and numeric values or arrays of numbers),
 * read back for CSV export, run tables and TensorBoard event files.
 */
#ifndef AIM_METRICS_H
#define AIM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "aim/core.h"

#define AIM_METRIC_KEY_MAX 48

typedef struct aim_metric {
    int64_t step;
    char kind[16];
    int n;                               /* values; arrays are flattened */
    char (*keys)[AIM_METRIC_KEY_MAX];    /* column names (see below) */
    double *vals;                        /* NaN for JSON null */
} aim_metric;

typedef struct aim_metrics {
    int n, cap;
    aim_metric *rows;
    char run[128];                       /* "run" of the first line */
} aim_metrics;

/* Read a metrics.jsonl. Column names: the key for kinds "train" and "val"
 * (loss, lr, val_loss, ...), "<kind>_<key>" for the others; an array key k
 * becomes k_block1, k_block2, ... (probe top-1 per block). A malformed line
 * is an error naming the file and line; a partial last line (a run killed
 * while writing) is skipped. */
int aim_metrics_read(const char *path, aim_metrics *out, aim_err *e);
void aim_metrics_free(aim_metrics *m);
/* The "step" of one log line (len bytes, no newline) parsed as
 * aim_metrics_read parses it, wherever the key sits in the line: 0, or -1
 * when the line is not a metrics object. */
int aim_metrics_line_step(const char *line, size_t len, int64_t *step);

/* Wide CSV: "step", then one column per metric name in order of first
 * appearance; one row per step; empty cells where a metric was not logged.
 * A name with a comma, quote or line break is quoted (RFC 4180); one that a
 * spreadsheet would take for a formula (= + - @ first) gets a ' in front.
 * Linear in the size of the log. */
int aim_metrics_write_csv(const aim_metrics *m, const char *path, aim_err *e);

/* A TensorBoard event file with a scalar per value: tag "<kind>/<key>"
 * (train/loss, val/val_loss, probe/top1_block3, ...); wall time from the
 * "wall" field when present. Written atomically. */
int aim_metrics_write_tfevents(const aim_metrics *m, const char *path, aim_err *e);

#endif
