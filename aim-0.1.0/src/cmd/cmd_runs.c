/*
 * cmd_runs.c - `aim runs [FOLDER]`: a table of the run folders under FOLDER
 * (default runs/): model, steps, final loss, best validation loss, best live
 * probe (or probe job) top-1, LoRA top-1 and wall time, then the
 * hyperparameters (run.json) that differ between the listed runs, so runs -
 * pretraining, probe and LoRA jobs - can be compared at a glance.
 * --where KEY OP VALUE selects runs, --sort [-]KEY orders them, --json prints
 * the same as one JSON document (docs/json.md).
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
    .usage = "[FOLDER] [--where 'KEY OP VALUE']... [--sort [-]KEY] [--json]",
    .summary = "a table of run folders: results and the hyperparameters that differ",
    .help = "Lists every sub-folder of FOLDER (default runs) holding a metrics.jsonl: runs of\n"
            "aim train, and of aim probe and aim lora with --out (steps and loss are LoRA's,\n"
            "probe% the best top-1 of the live probe or of a probe job's sets, lora% the\n"
            "last LoRA epoch's test top-1, time the jobs' seconds together), then the\n"
            "hyperparameters of run.json whose values differ between the listed runs.\n"
            "KEY is run (the folder's name), a result (steps, loss, best_val_loss,\n"
            "probe_top1, lora_top1, seconds) or a key of run.json (lr, batch, epochs, seed,\n"
            "image, patch, kind, ...; config.KEY when a result has the same name).\n"
            "--where 'lr>=1e-3' keeps the runs where it holds (OP: = != < <= > >=; numbers\n"
            "compare as numbers, to float precision, other values as text; a run without\n"
            "the key never matches); several --where must all hold. --sort KEY orders by\n"
            "KEY, --sort -KEY the other way round (runs without it last).",
    .exec = runs_exec,
};

/* ------------------------------------------------------------ one run */

/* a top-level member of run.json: its text (a string decoded, anything else
 * as written) and, for a number, its value */
typedef struct kv {
    char *key, *text;
    double num;
    int is_num, is_scalar;
} kv;

enum { R_STEPS, R_LOSS, R_BEST_VAL, R_PROBE, R_LORA, R_SECONDS, R_COUNT };
static const char *const result_keys[R_COUNT] = {"steps",      "loss",      "best_val_loss",
                                                 "probe_top1", "lora_top1", "seconds"};

typedef struct run_row {
    char *name;
    char *error;       /* the metrics log could not be read (NULL: fine) */
    uint8_t *json;     /* run.json when it is valid JSON (NULL otherwise) */
    size_t json_len;
    kv *cfg;
    int ncfg;
    double res[R_COUNT]; /* NaN when the run has none */
    char model[40];
} run_row;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const kv *cfg_find(const run_row *r, const char *key)
{
    for (int i = 0; i < r->ncfg; i++)
        if (!strcmp(r->cfg[i].key, key))
            return &r->cfg[i];
    return NULL;
}

/* run.json's top-level members into r->cfg; the text kept in r->json when
 * it is strict JSON (it is then copied into --json's output as it is) */
static void read_config(run_row *r, const char *path)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (aim_read_file(path, 1 << 16, &buf, &len, NULL) != 0)
        return;
    aim_err e;
    aim_jr jr;
    aim_jr_init(&jr, buf, len, path, "JSON", &e);
    if (aim_jr_check(&jr, NULL) != 0 || aim_jr_open(&jr, '{') != 0) {
        free(buf);
        return;
    }
    aim_sbuf key = {0}, val = {0};
    do {
        if (aim_jr_string(&jr, &key) != 0 || aim_jr_expect(&jr, ':') != 0)
            break;
        kv v = {.num = NAN};
        int ch = aim_jr_peek(&jr);
        size_t at = jr.i;
        if (ch == '"') {
            if (aim_jr_string(&jr, &val) != 0)
                break;
            v.text = aim_sb_strdup(&val);
            v.is_scalar = 1;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            if (aim_jr_double(&jr, &v.num) != 0)
                break;
            v.text = aim_xasprintf("%.6g", v.num);
            v.is_num = v.is_scalar = 1;
        } else {
            if (aim_jr_skip(&jr) != 0)
                break;
            v.text = aim_xasprintf("%.*s", (int)(jr.i - at), (const char *)buf + at);
            v.is_scalar = ch == 't' || ch == 'f' || ch == 'n';
        }
        v.key = aim_sb_strdup(&key);
        r->cfg = aim_xrealloc(r->cfg, (size_t)(r->ncfg + 1) * sizeof *r->cfg);
        r->cfg[r->ncfg++] = v;
    } while (aim_jr_next(&jr, '}') == 1);
    aim_sb_free(&key);
    aim_sb_free(&val);
    r->json = buf;
    r->json_len = len;
}

static void read_run(const char *dir, const char *name, run_row *r)
{
    memset(r, 0, sizeof *r);
    r->name = aim_xstrdup(name);
    for (int k = 0; k < R_COUNT; k++)
        r->res[k] = NAN;
    snprintf(r->model, sizeof r->model, "?");
    char *rpath = aim_xasprintf("%s/%s/run.json", dir, name);
    read_config(r, rpath);
    free(rpath);
    const kv *w = cfg_find(r, "width"), *d = cfg_find(r, "depth"), *im = cfg_find(r, "image"),
             *p = cfg_find(r, "patch");
    if (w && d && im && p)
        snprintf(r->model, sizeof r->model, "D%.0f L%.0f %.0fpx/p%.0f", w->num, d->num, im->num,
                 p->num);

    char *mpath = aim_xasprintf("%s/%s/metrics.jsonl", dir, name);
    aim_err e;
    aim_metrics m;
    int bad = aim_metrics_read(mpath, &m, &e);
    free(mpath);
    if (bad) {
        r->error = aim_xstrdup(e.msg);
        return;
    }
    /* pretraining ("train" lines) gives steps, loss and time; a LoRA job
     * ("lora" lines) its steps, last loss, test top-1 and time; a probe job
     * ("probe_result") its top-1 per set and time; the live probe ("probe")
     * top-1 per block */
    int64_t steps = -1;
    double loss = NAN, best_val = NAN, best_probe = NAN, lora = NAN;
    double train_s = NAN, lora_s = NAN, probe_s = 0;
    for (int i = 0; i < m.n; i++) {
        const aim_metric *row = &m.rows[i];
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
    aim_metrics_free(&m);
    double secs = (isnan(train_s) ? 0 : train_s) + (isnan(lora_s) ? 0 : lora_s) + probe_s;
    if (isnan(train_s) && isnan(lora_s) && probe_s == 0)
        secs = NAN;
    r->res[R_STEPS] = steps >= 0 ? (double)steps : NAN;
    r->res[R_LOSS] = loss;
    r->res[R_BEST_VAL] = best_val;
    r->res[R_PROBE] = best_probe;
    r->res[R_LORA] = lora;
    r->res[R_SECONDS] = secs;
}

static void free_run(run_row *r)
{
    for (int i = 0; i < r->ncfg; i++) {
        free(r->cfg[i].key);
        free(r->cfg[i].text);
    }
    free(r->cfg);
    free(r->json);
    free(r->error);
    free(r->name);
}

/* ------------------------------------------------------------ keys */

/* KEY's value in run r: *num (NaN when not a number) and *text; 0 when the
 * run has no such key. "run", a result, a run.json key; "config.KEY" and
 * "result.KEY" say which. */
static int run_value(const run_row *r, const char *key, double *num, const char **text)
{
    *num = NAN;
    *text = NULL;
    int only_cfg = !strncmp(key, "config.", 7), only_res = !strncmp(key, "result.", 7);
    if (only_cfg || only_res)
        key += 7;
    if (!only_cfg && !only_res && !strcmp(key, "run")) {
        *text = r->name;
        return 1;
    }
    if (!only_cfg)
        for (int k = 0; k < R_COUNT; k++)
            if (!strcmp(key, result_keys[k])) {
                *num = r->res[k];
                return !isnan(*num);
            }
    if (only_res)
        return 0;
    const kv *v = cfg_find(r, key);
    if (!v)
        return 0;
    *num = v->num;
    *text = v->text;
    return 1;
}

/* 1 when some run (or the results' names) knows KEY */
static int key_known(const run_row *rows, int n, const char *key)
{
    const char *k = !strncmp(key, "config.", 7) || !strncmp(key, "result.", 7) ? key + 7 : key;
    if (!strcmp(key, "run"))
        return 1;
    if (strncmp(key, "config.", 7))
        for (int i = 0; i < R_COUNT; i++)
            if (!strcmp(k, result_keys[i]))
                return 1;
    if (!strncmp(key, "result.", 7))
        return 0;
    for (int i = 0; i < n; i++)
        if (cfg_find(&rows[i], k))
            return 1;
    return 0;
}

/* -1, 0, 1: numbers as numbers (equal within float precision: run.json
 * holds floats as %.9g), otherwise as text */
static int compare_values(double an, const char *at, double bn, const char *bt)
{
    if (!isnan(an) && !isnan(bn)) {
        double tol = 1e-6 * fmax(fabs(an), fabs(bn));
        return fabs(an - bn) <= tol ? 0 : an < bn ? -1 : 1;
    }
    int c = strcmp(at ? at : "", bt ? bt : "");
    return c < 0 ? -1 : c > 0;
}

/* ------------------------------------------------------------ --where */

typedef struct filter {
    char key[64];
    int op; /* F_EQ ... */
    const char *value;
    double num;
} filter;

enum { F_EQ, F_NE, F_LT, F_LE, F_GT, F_GE };

static int parse_filter(const char *s, filter *f)
{
    static const char *const ops[] = {"!=", "<=", ">=", "=", "<", ">"};
    static const int codes[] = {F_NE, F_LE, F_GE, F_EQ, F_LT, F_GT};
    size_t k = strcspn(s, "=!<>");
    size_t a = k, b = k;
    while (a > 0 && s[a - 1] == ' ')
        a--;
    size_t start = strspn(s, " ");
    if (!s[k] || a <= start || a - start >= sizeof f->key)
        return cmd_fail("runs: --where '%s': expected KEY OP VALUE, OP one of = != < <= > >= "
                        "(e.g. --where 'lr>=1e-3')", s);
    memcpy(f->key, s + start, a - start);
    f->key[a - start] = 0;
    int found = -1;
    for (int i = 0; i < 6 && found < 0; i++)
        if (!strncmp(s + k, ops[i], strlen(ops[i]))) {
            found = i;
            b = k + strlen(ops[i]);
        }
    if (found < 0 || strchr("=!<>", s[b]))
        return cmd_fail("runs: --where '%s': unknown operator (use = != < <= > >=)", s);
    f->op = codes[found];
    while (s[b] == ' ')
        b++;
    if (!s[b])
        return cmd_fail("runs: --where '%s': no value after the operator", s);
    f->value = s + b;
    char *end;
    f->num = strtod(f->value, &end);
    if (end == f->value || *end || !isfinite(f->num))
        f->num = NAN;
    return 0;
}

static int filter_holds(const filter *f, const run_row *r)
{
    double num;
    const char *text;
    if (!run_value(r, f->key, &num, &text))
        return 0;
    if (isnan(f->num))
        num = NAN; /* a text value compares as text */
    else if (isnan(num))
        return 0; /* a number asked for, the run's value is not one */
    int c = compare_values(num, text, f->num, f->value);
    switch (f->op) {
    case F_EQ: return c == 0;
    case F_NE: return c != 0;
    case F_LT: return c < 0;
    case F_LE: return c <= 0;
    case F_GT: return c > 0;
    default: return c >= 0;
    }
}

/* ------------------------------------------------------------ --sort */

typedef struct sort_ctx {
    const run_row *rows;
    const char *key;
    int desc;
} sort_ctx;

static int cmp_runs(const void *pa, const void *pb, void *arg)
{
    const sort_ctx *s = arg;
    const run_row *a = &s->rows[*(const int *)pa], *b = &s->rows[*(const int *)pb];
    if (s->key) {
        double an, bn;
        const char *at, *bt;
        int ha = run_value(a, s->key, &an, &at), hb = run_value(b, s->key, &bn, &bt);
        if (ha != hb)
            return ha ? -1 : 1; /* without the key: last, either way */
        if (ha) {
            int c = compare_values(an, at, bn, bt);
            if (c)
                return s->desc ? -c : c;
        }
    }
    return strcmp(a->name, b->name);
}

/* ------------------------------------------------------------ output */

/* keys of run.json shown first when they differ; the rest follow as met */
static const char *const preferred[] = {"kind", "lr", "batch", "epochs", "image", "patch",
                                        "width", "depth", "heads", "seed", "precision",
                                        "weight_decay", "warmup", "data", NULL};

/* the run.json keys (scalars) whose values differ between the listed runs;
 * "steps" is the result's column already */
static int differing_keys(const run_row *rows, const int *sel, int n, const char **out, int cap)
{
    const char *cand[256];
    int nc = 0;
    for (int p = 0; preferred[p]; p++)
        cand[nc++] = preferred[p];
    for (int i = 0; i < n; i++)
        for (int k = 0; k < rows[sel[i]].ncfg && nc < 256; k++) {
            const char *key = rows[sel[i]].cfg[k].key;
            int seen = 0;
            for (int c = 0; c < nc && !seen; c++)
                seen = !strcmp(cand[c], key);
            if (!seen)
                cand[nc++] = key;
        }
    int nout = 0;
    for (int c = 0; c < nc && nout < cap; c++) {
        if (!strcmp(cand[c], "steps"))
            continue;
        const kv *first = NULL;
        int differ = 0, any = 0, scalar = 1;
        for (int i = 0; i < n && !differ; i++) {
            const kv *v = cfg_find(&rows[sel[i]], cand[c]);
            if (v) {
                scalar &= v->is_scalar;
                if (any && first && compare_values(first->num, first->text, v->num, v->text))
                    differ = 1;
                if (any && !first)
                    differ = 1;
                first = first ? first : v;
            } else if (any && first) {
                differ = 1;
            }
            any = 1;
        }
        if (differ && scalar)
            out[nout++] = cand[c];
    }
    return nout;
}

static void print_table(const run_row *rows, const int *sel, int n, const char *dir)
{
    const char *diff[32];
    int nd = differing_keys(rows, sel, n, diff, 32);
    printf("%-28s %-22s %7s %9s %9s %7s %7s %9s", "run", "model", "steps", "loss", "best val",
           "probe%", "lora%", "time");
    for (int k = 0; k < nd; k++)
        printf(" %10s", diff[k]);
    printf("\n");
    for (int i = 0; i < n; i++) {
        const run_row *r = &rows[sel[i]];
        if (r->error) {
            printf("%-28s (%s)\n", cmd_esc(r->name), cmd_esc(r->error));
            continue;
        }
        const double *v = r->res;
        char t[32] = "-", l[32] = "-", bv[32] = "-", bp[32] = "-", lo[32] = "-", st[32] = "-";
        if (!isnan(v[R_STEPS]))
            snprintf(st, sizeof st, "%.0f", v[R_STEPS]);
        if (!isnan(v[R_SECONDS]))
            snprintf(t, sizeof t, "%.0fm%02.0fs", floor(v[R_SECONDS] / 60),
                     fmod(v[R_SECONDS], 60));
        if (!isnan(v[R_LOSS]))
            snprintf(l, sizeof l, "%.4f", v[R_LOSS]);
        if (!isnan(v[R_BEST_VAL]))
            snprintf(bv, sizeof bv, "%.4f", v[R_BEST_VAL]);
        if (!isnan(v[R_PROBE]))
            snprintf(bp, sizeof bp, "%.2f", v[R_PROBE]);
        if (!isnan(v[R_LORA]))
            snprintf(lo, sizeof lo, "%.2f", v[R_LORA]);
        printf("%-28s %-22s %7s %9s %9s %7s %7s %9s", cmd_esc(r->name), r->model, st, l, bv, bp,
               lo, t);
        for (int k = 0; k < nd; k++) {
            const kv *c = cfg_find(r, diff[k]);
            const char *s = c ? cmd_esc(c->text) : "-";
            /* a long value (a path) shows its end, which tells runs apart;
             * --json has it whole */
            size_t len = strlen(s);
            printf(" %10s", len > 24 ? s + len - 24 : s);
        }
        printf("\n");
    }
    if (!n)
        printf("(no runs in %s)\n", cmd_esc(dir));
}

static int print_json(const run_row *rows, const int *sel, int n, const char *dir)
{
    const char *diff[32];
    int nd = differing_keys(rows, sel, n, diff, 32);
    aim_jw w;
    aim_jw_init(&w, stdout);
    aim_jw_open(&w, '{');
    aim_jw_kstr(&w, "folder", dir);
    aim_jw_key(&w, "differing");
    aim_jw_open(&w, '[');
    for (int k = 0; k < nd; k++)
        aim_jw_str(&w, diff[k]);
    aim_jw_close(&w, ']');
    aim_jw_key(&w, "runs");
    aim_jw_open(&w, '[');
    for (int i = 0; i < n; i++) {
        const run_row *r = &rows[sel[i]];
        aim_jw_open(&w, '{');
        aim_jw_kstr(&w, "run", r->name);
        char *path = aim_xasprintf("%s/%s", dir, r->name);
        aim_jw_kstr(&w, "path", path);
        free(path);
        aim_jw_key(&w, "config");
        aim_jr jr;
        aim_err e;
        if (r->json)
            aim_jr_init(&jr, r->json, r->json_len, "run.json", "JSON", &e);
        /* strict: text that is not UTF-8 would make the document invalid */
        if (r->json && aim_jr_check(&jr, NULL) == 0) {
            size_t len = r->json_len;
            while (len && strchr(" \t\r\n", r->json[len - 1]))
                len--;
            aim_jw_raw(&w, r->json, len);
        } else {
            aim_jw_null(&w);
        }
        aim_jw_key(&w, "results");
        aim_jw_open(&w, '{');
        for (int k = 0; k < R_COUNT; k++) {
            aim_jw_key(&w, result_keys[k]);
            if (k == R_STEPS && !isnan(r->res[k]))
                aim_jw_int(&w, (int64_t)r->res[k]);
            else
                aim_jw_num(&w, r->res[k]);
        }
        aim_jw_close(&w, '}');
        aim_jw_kstr(&w, "error", r->error);
        aim_jw_close(&w, '}');
    }
    aim_jw_close(&w, ']');
    aim_jw_close(&w, '}');
    return aim_jw_finish(&w) != 0 ? cmd_fail("runs: cannot write the JSON to stdout") : 0;
}

/* ------------------------------------------------------------ the command */

static int runs_exec(int argc, char **argv)
{
    cmd_list where = {.n = 0};
    const char *sort = NULL;
    int json = 0;
    cmd_opt opts[] = {
        {"where", OPT_LIST, &where, "'KEY OP VALUE'",
         "keep runs where it holds (OP: = != < <= > >=); repeat: all must hold"},
        {"sort", OPT_STR, &sort, "[-]KEY", "order by KEY (-KEY: descending); default: run"},
        {"json", OPT_FLAG, &json, NULL, "one JSON document on stdout (docs/json.md)"},
        {0},
    };
    if (cmd_help(&cmd_runs_entry, argc, argv, opts))
        return 0;
    char *pos[1];
    int npos;
    if (cmd_parse("runs", argc, argv, opts, pos, &npos, 1))
        return 1;
    filter fl[CMD_LIST_MAX];
    for (int i = 0; i < where.n; i++)
        if (parse_filter(where.v[i], &fl[i]))
            return 1;
    sort_ctx sc = {NULL, NULL, 0};
    if (sort) {
        sc.desc = sort[0] == '-';
        sc.key = sort + sc.desc;
        if (!*sc.key)
            return cmd_fail("runs: --sort needs a KEY (e.g. --sort -probe_top1)");
    }
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
    run_row *rows = aim_xcalloc((size_t)(n ? n : 1), sizeof *rows);
    for (int i = 0; i < n; i++) {
        read_run(dir, names[i], &rows[i]);
        free(names[i]);
    }
    free(names);
    int rc = 0;
    /* a key no run knows is a typo: say so rather than list nothing */
    for (int i = 0; i < where.n && !rc; i++)
        if (n && !key_known(rows, n, fl[i].key))
            rc = cmd_fail("runs: --where '%s': no run has a key \"%s\" (results: run, steps, "
                          "loss, best_val_loss, probe_top1, lora_top1, seconds; or a key of "
                          "run.json)", where.v[i], fl[i].key);
    if (!rc && sc.key && n && !key_known(rows, n, sc.key))
        rc = cmd_fail("runs: --sort %s: no run has a key \"%s\"", sort, sc.key);
    if (!rc) {
        int *sel = aim_xmalloc((size_t)(n ? n : 1) * sizeof *sel);
        int ns = 0;
        for (int i = 0; i < n; i++) {
            int keep = 1;
            for (int f = 0; f < where.n && keep; f++)
                keep = filter_holds(&fl[f], &rows[i]);
            if (keep)
                sel[ns++] = i;
        }
        sc.rows = rows;
        qsort_r(sel, (size_t)ns, sizeof *sel, cmp_runs, &sc);
        if (json)
            rc = print_json(rows, sel, ns, dir);
        else
            print_table(rows, sel, ns, dir);
        free(sel);
    }
    for (int i = 0; i < n; i++)
        free_run(&rows[i]);
    free(rows);
    return rc;
}
