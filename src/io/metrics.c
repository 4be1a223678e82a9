/*
 * metrics.c - reading the JSON Lines metrics log back (a small parser for
 * the flat objects aim writes) and turning it into a wide CSV or a
 * TensorBoard event file.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct lex {
    const char *p, *end;
} lex;

static void ws(lex *l)
{
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\r'))
        l->p++;
}

static int expect(lex *l, char c)
{
    ws(l);
    if (l->p < l->end && *l->p == c) {
        l->p++;
        return 1;
    }
    return 0;
}

/* a JSON string without escapes beyond \" and \\ (aim writes none others);
 * other escapes are kept verbatim */
static int string(lex *l, char *out, size_t cap)
{
    ws(l);
    if (l->p >= l->end || *l->p != '"')
        return 0;
    l->p++;
    size_t n = 0;
    while (l->p < l->end && *l->p != '"') {
        char c = *l->p++;
        if (c == '\\' && l->p < l->end)
            c = *l->p++;
        if (n + 1 < cap)
            out[n++] = c;
    }
    if (l->p >= l->end)
        return 0;
    l->p++;
    out[n] = 0;
    return 1;
}

static int number(lex *l, double *v)
{
    ws(l);
    if (l->end - l->p >= 4 && !strncmp(l->p, "null", 4)) {
        l->p += 4;
        *v = NAN;
        return 1;
    }
    char buf[64];
    size_t n = 0;
    while (l->p < l->end && n < sizeof buf - 1 && strchr("+-0123456789.eE", *l->p))
        buf[n++] = *l->p++;
    buf[n] = 0;
    if (!n)
        return 0;
    char *end;
    *v = strtod(buf, &end);
    return *end == 0;
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

static int parse_line(const char *s, size_t len, aim_metric *r, char *run, size_t runcap)
{
    lex l = {s, s + len};
    memset(r, 0, sizeof *r);
    int cap = 0, have_step = 0, have_kind = 0;
    if (!expect(&l, '{'))
        return -1;
    /* kind may come after values: collect raw pairs first */
    char keys[64][AIM_METRIC_KEY_MAX];
    double vals[64][32];
    int nvals[64], nk = 0;
    if (expect(&l, '}'))
        return -1;
    do {
        char key[AIM_METRIC_KEY_MAX];
        if (!string(&l, key, sizeof key) || !expect(&l, ':'))
            return -1;
        ws(&l);
        if (l.p < l.end && *l.p == '"') {
            char sv[128];
            if (!string(&l, sv, sizeof sv))
                return -1;
            if (!strcmp(key, "kind")) {
                copy_trunc(r->kind, sizeof r->kind, sv);
                have_kind = 1;
            } else if (!strcmp(key, "run") && run && !run[0]) {
                copy_trunc(run, runcap, sv);
            }
        } else if (l.p < l.end && *l.p == '[') {
            l.p++;
            int k = 0;
            if (!expect(&l, ']')) {
                do {
                    double v;
                    if (!number(&l, &v))
                        return -1;
                    if (k < 32 && nk < 64)
                        vals[nk][k++] = v;
                } while (expect(&l, ','));
                if (!expect(&l, ']'))
                    return -1;
            }
            if (nk < 64) {
                snprintf(keys[nk], sizeof keys[nk], "%s", key);
                nvals[nk++] = k;
            }
        } else {
            double v;
            if (!number(&l, &v))
                return -1;
            if (!strcmp(key, "step")) {
                if (!(v >= 0 && v < 9.0e18)) /* null (NaN), negative or huge: not a step */
                    return -1;
                r->step = (int64_t)v;
                have_step = 1;
            } else if (nk < 64) {
                snprintf(keys[nk], sizeof keys[nk], "%s", key);
                vals[nk][0] = v;
                nvals[nk++] = -1; /* scalar */
            }
        }
    } while (expect(&l, ','));
    if (!expect(&l, '}'))
        return -1;
    ws(&l);
    if (l.p != l.end || !have_step || !have_kind)
        return -1;
    for (int i = 0; i < nk; i++) {
        if (nvals[i] < 0)
            add_value(r, &cap, r->kind, keys[i], 0, vals[i][0]);
        else
            for (int k = 0; k < nvals[i]; k++)
                add_value(r, &cap, r->kind, keys[i], k + 1, vals[i][k]);
    }
    return 0;
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
