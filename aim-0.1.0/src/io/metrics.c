/*
 * metrics.c - reading the JSON Lines metrics log back (each line checked and
 * walked with the JSON reader of aim/json.h) and turning it into a wide CSV
 * or a TensorBoard event file.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/json.h"
#include "aim/metrics.h"
#include "aim/tfevents.h"

/* copy at most cap-1 bytes and terminate */
static void copy_trunc(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void add_value(aim_metric *r, int *cap, const char *kind, const char *key, int index,
                      double v)
{
    if (r->n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        r->keys = aim_xrealloc(r->keys, (size_t)*cap * sizeof *r->keys);
        r->vals = aim_xrealloc(r->vals, (size_t)*cap * sizeof *r->vals);
    }
    char name[AIM_METRIC_KEY_MAX * 2];
    int plain = !strcmp(kind, "train") || !strcmp(kind, "val") || !strcmp(key, "wall");
    if (index > 0)
        snprintf(name, sizeof name, "%s%s%s_block%d", plain ? "" : kind, plain ? "" : "_", key,
                 index);
    else
        snprintf(name, sizeof name, "%s%s%s", plain ? "" : kind, plain ? "" : "_", key);
    copy_trunc(r->keys[r->n], AIM_METRIC_KEY_MAX, name);
    r->vals[r->n++] = v;
}

#define LINE_KEYS 64   /* values kept per line */
#define LINE_ARRAY 32  /* numbers kept per array */

/* the line's values, in order, before they are named by kind */
typedef struct raw_line {
    char keys[LINE_KEYS][AIM_METRIC_KEY_MAX];
    double vals[LINE_KEYS][LINE_ARRAY];
    int nvals[LINE_KEYS], nk; /* -1: a scalar */
} raw_line;

/* One value of a line (the cursor is on it): a string (kind, run), an array
 * of numbers or a number; null is NaN. */
static int parse_value(aim_jr *l, const char *key, raw_line *w, aim_metric *r, int *have_step,
                       int *have_kind, aim_sbuf *sv, char *run, size_t runcap)
{
    int ch = aim_jr_peek(l);
    if (ch == '"') {
        if (aim_jr_string(l, sv))
            return -1;
        if (!strcmp(key, "kind")) {
            copy_trunc(r->kind, sizeof r->kind, sv->p);
            *have_kind = 1;
        } else if (!strcmp(key, "run") && run && !run[0]) {
            copy_trunc(run, runcap, sv->p);
        }
        return 0;
    }
    if (ch == '[') {
        int k = 0, more = aim_jr_open(l, '[') == 0;
        while (more) {
            double v;
            if (aim_jr_double(l, &v))
                return -1;
            if (k < LINE_ARRAY && w->nk < LINE_KEYS)
                w->vals[w->nk][k++] = v;
            if ((more = aim_jr_next(l, ']')) < 0)
                return -1;
        }
        if (w->nk < LINE_KEYS) {
            copy_trunc(w->keys[w->nk], AIM_METRIC_KEY_MAX, key);
            w->nvals[w->nk++] = k;
        }
        return 0;
    }
    double v;
    if (aim_jr_double(l, &v))
        return -1;
    if (!strcmp(key, "step")) {
        if (!(v >= 0 && v < 9.0e18)) /* null (NaN), negative or huge: not a step */
            return -1;
        r->step = (int64_t)v;
        *have_step = 1;
    } else if (w->nk < LINE_KEYS) {
        copy_trunc(w->keys[w->nk], AIM_METRIC_KEY_MAX, key);
        w->vals[w->nk][0] = v;
        w->nvals[w->nk++] = -1;
    }
    return 0;
}

/* One line: a JSON object (aim/json.h checks it) with "step", "kind" and
 * values; kind may come after the values, so they are collected first. */
static int parse_line(const char *s, size_t len, aim_metric *r, char *run, size_t runcap)
{
    aim_jr l;
    aim_sbuf key = {0}, sv = {0};
    raw_line raw, *w = &raw;
    int cap = 0, have_step = 0, have_kind = 0, rc = -1, more;
    memset(r, 0, sizeof *r);
    w->nk = 0;
    aim_jr_init(&l, s, len, NULL, "line", NULL);
    l.raw_bytes = 1; /* "run" is a folder's name, written byte for byte */
    if (aim_jr_check(&l, " \t\r") || aim_jr_open(&l, '{') != 0)
        goto out;
    do {
        if (aim_jr_string(&l, &key) || aim_jr_expect(&l, ':') ||
            parse_value(&l, key.p, w, r, &have_step, &have_kind, &sv, run, runcap))
            goto out;
        if ((more = aim_jr_next(&l, '}')) < 0)
            goto out;
    } while (more);
    if (!have_step || !have_kind)
        goto out;
    for (int i = 0; i < w->nk; i++) {
        if (w->nvals[i] < 0)
            add_value(r, &cap, r->kind, w->keys[i], 0, w->vals[i][0]);
        else
            for (int k = 0; k < w->nvals[i]; k++)
                add_value(r, &cap, r->kind, w->keys[i], k + 1, w->vals[i][k]);
    }
    rc = 0;
out:
    aim_sb_free(&key);
    aim_sb_free(&sv);
    return rc;
}

int aim_metrics_line_step(const char *line, size_t len, int64_t *step)
{
    aim_metric r;
    int rc = parse_line(line, len, &r, NULL, 0);
    if (rc == 0)
        *step = r.step;
    free(r.keys);
    free(r.vals);
    return rc;
}

int aim_metrics_read(const char *path, aim_metrics *out, aim_err *e)
{
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    if (aim_read_file(path, (uint64_t)1 << 32, &buf, &len, e) != 0)
        return -1;
    size_t i = 0;
    int line = 0;
    while (i < len) {
        line++;
        const uint8_t *nl = memchr(buf + i, '\n', len - i);
        if (!nl)
            break; /* a partial last line: the writer was killed */
        size_t end = (size_t)(nl - buf);
        if (end > i) {
            aim_metric r;
            if (parse_line((const char *)buf + i, end - i, &r, out->run, sizeof out->run) != 0) {
                free(r.keys);
                free(r.vals);
                free(buf);
                aim_metrics_free(out);
                return aim_errf(e, "%s: line %d is not a metrics object", path, line);
            }
            if (out->n == out->cap) {
                out->cap = out->cap ? 2 * out->cap : 256;
                out->rows = aim_xrealloc(out->rows, (size_t)out->cap * sizeof *out->rows);
            }
            out->rows[out->n++] = r;
        }
        i = end + 1;
    }
    free(buf);
    return 0;
}

void aim_metrics_free(aim_metrics *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->rows[i].keys);
        free(m->rows[i].vals);
    }
    free(m->rows);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------ CSV */

/* The columns: names in order of first appearance, and an open-addressing
 * hash table (FNV-1a, linear probing, at most half full) of their indices,
 * so a log with many distinct keys is read in linear time. */
typedef struct columns {
    int n, cap;                      /* names */
    char (*names)[AIM_METRIC_KEY_MAX];
    int *slot;                       /* [nslot]: column index, or -1 */
    size_t nslot;                    /* a power of two */
} columns;

static uint64_t name_hash(const char *k)
{
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return h;
}

/* the slot holding k, or the empty slot where it would go */
static size_t col_slot(const columns *c, const char *k)
{
    size_t i = (size_t)name_hash(k) & (c->nslot - 1);
    while (c->slot[i] >= 0 && strcmp(c->names[c->slot[i]], k))
        i = (i + 1) & (c->nslot - 1);
    return i;
}

static int col_find(const columns *c, const char *k)
{
    return c->slot[col_slot(c, k)];
}

static void col_rehash(columns *c, size_t nslot)
{
    free(c->slot);
    c->nslot = nslot;
    c->slot = aim_xmalloc(nslot * sizeof *c->slot);
    for (size_t i = 0; i < nslot; i++)
        c->slot[i] = -1;
    for (int j = 0; j < c->n; j++)
        c->slot[col_slot(c, c->names[j])] = j;
}

static void col_add(columns *c, const char *k)
{
    if (col_find(c, k) >= 0)
        return;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->names = aim_xrealloc(c->names, (size_t)c->cap * sizeof *c->names);
    }
    snprintf(c->names[c->n], AIM_METRIC_KEY_MAX, "%s", k);
    c->n++;
    if ((size_t)c->n * 2 > c->nslot)
        col_rehash(c, c->nslot * 2);
    else
        c->slot[col_slot(c, k)] = c->n - 1;
}

/* A header cell: quoted when it holds a comma, quote or line break (RFC
 * 4180), and a leading = + - @ tab or CR (a formula to a spreadsheet) made
 * text with a ' in front. */
static void csv_cell(FILE *f, const char *s)
{
    int formula = strchr("=+-@\t\r", s[0]) && s[0];
    if (!formula && !strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    if (formula)
        fputc('\'', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

typedef struct csv_ctx {
    const aim_metrics *m;
} csv_ctx;

static int write_csv(FILE *f, void *ctx, aim_err *e)
{
    const aim_metrics *m = ((csv_ctx *)ctx)->m;
    columns cols = {0};
    col_rehash(&cols, 64);
    for (int r = 0; r < m->n; r++)
        for (int k = 0; k < m->rows[r].n; k++)
            if (strcmp(m->rows[r].keys[k], "wall"))
                col_add(&cols, m->rows[r].keys[k]);
    int ncol = cols.n;
    fprintf(f, "step");
    for (int c = 0; c < ncol; c++) {
        fputc(',', f);
        csv_cell(f, cols.names[c]);
    }
    fprintf(f, "\n");
    double *row = aim_xmalloc((size_t)(ncol ? ncol : 1) * sizeof *row);
    int r = 0;
    while (r < m->n) {
        int64_t step = m->rows[r].step;
        for (int c = 0; c < ncol; c++)
            row[c] = NAN;
        /* every line with this step (train, val, probe ...) fills one row;
         * lines are in step order except after a resume, where the log was
         * truncated first, so consecutive grouping is enough */
        while (r < m->n && m->rows[r].step == step) {
            for (int k = 0; k < m->rows[r].n; k++) {
                int c = col_find(&cols, m->rows[r].keys[k]);
                if (c >= 0)
                    row[c] = m->rows[r].vals[k];
            }
            r++;
        }
        fprintf(f, "%lld", (long long)step);
        for (int c = 0; c < ncol; c++) {
            if (isnan(row[c]))
                fprintf(f, ",");
            else
                fprintf(f, ",%.9g", row[c]);
        }
        fprintf(f, "\n");
        if (ferror(f))
            break; /* disk full: stop early, aim_write_atomic reports it */
    }
    free(row);
    free(cols.names);
    free(cols.slot);
    return ferror(f) ? aim_errf(e, "write failed") : 0;
}

int aim_metrics_write_csv(const aim_metrics *m, const char *path, aim_err *e)
{
    csv_ctx c = {m};
    return aim_write_atomic(path, write_csv, &c, e);
}

/* ------------------------------------------------------------ TensorBoard */

static int write_events(FILE *f, void *ctx, aim_err *e)
{
    const aim_metrics *m = ctx;
    aim_tfevents *w = aim_tfevents_open_stream(f, "events");
    for (int r = 0; r < m->n; r++) {
        const aim_metric *row = &m->rows[r];
        double wall = 0;
        for (int k = 0; k < row->n; k++)
            if (!strcmp(row->keys[k], "wall"))
                wall = row->vals[k];
        for (int k = 0; k < row->n; k++) {
            if (!strcmp(row->keys[k], "wall") || isnan(row->vals[k]))
                continue;
            char tag[AIM_METRIC_KEY_MAX + 20];
            const char *key = row->keys[k];
            size_t kl = strlen(row->kind);
            int plain = !strcmp(row->kind, "train") || !strcmp(row->kind, "val");
            if (!plain && !strncmp(key, row->kind, kl) && key[kl] == '_')
                key += kl + 1; /* probe_top1_block3 -> probe/top1_block3 */
            snprintf(tag, sizeof tag, "%s/%s", row->kind, key);
            aim_tfevents_scalar(w, tag, row->step, wall, (float)row->vals[k]);
        }
    }
    return aim_tfevents_close(w) != 0 ? aim_errf(e, "write failed") : 0;
}

/* through aim_write_atomic: a private temporary, fsync, rename */
int aim_metrics_write_tfevents(const aim_metrics *m, const char *path, aim_err *e)
{
    return aim_write_atomic(path, write_events, (void *)m, e);
}
