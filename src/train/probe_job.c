/*
 * probe_job.c - a probing job as `aim probe` and aim.probe run it: choose
 * the block sets (given, a sweep, windows, or the middle blocks), compute all
 * their features in one trunk pass (or take raw pixels), train one probe per
 * set, report each set as soon as it is done, keep the best probe.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/io.h"
#include "aim/probe.h"
#include "aim/prof.h"
#include "aim/runlog.h"

int aim_probe_job_sweep(aim_probe_job *j, int L, int window)
{
    if (window < 1)
        window = 1;
    j->nsets = 0;
    for (int i = 1; i + window - 1 <= L && j->nsets < AIM_PROBE_MAX_SETS; i++) {
        j->nblocks[j->nsets] = window;
        for (int k = 0; k < window; k++)
            j->blocks[j->nsets][k] = i + k;
        j->nsets++;
    }
    return j->nsets;
}

/* run.json of a probing job */
typedef struct job_info {
    const aim_probe_job *j;
    const aim_config *c; /* NULL for raw pixels */
    aim_probe_kind kind;
    int nsets;
    const int *nb;
    const int (*bl)[AIM_PROBE_MAX_BLOCKS];
    int64_t ntrain, ntest;
} job_info;

static int write_info(FILE *f, void *ctx, aim_err *e)
{
    (void)e;
    const job_info *in = ctx;
    const aim_probe_job *j = in->j;
    aim_json_job(f, "probe", j->weights);
    aim_json_precision(f, j->precision);
    fprintf(f, ",\"probe_kind\":\"%s\",\"raw\":%d,\"mirror\":%d,\"sets\":[",
            in->kind == AIM_PROBE_ATTENTIVE ? "attentive" : "linear", j->raw, j->mirror);
    for (int s = 0; s < in->nsets; s++) {
        fprintf(f, "%s[", s ? "," : "");
        for (int k = 0; k < in->nb[s]; k++)
            fprintf(f, "%s%d", k ? "," : "", in->bl[s][k]);
        fprintf(f, "]");
    }
    fprintf(f, "],\n \"epochs\":%d,\"batch\":%d,\"lr\":%.9g,\"weight_decay\":%.9g,"
               "\"seed\":%llu,\"train_images\":%lld,\"test_images\":%lld",
            j->train.epochs, j->train.batch, j->train.lr, j->train.weight_decay,
            (unsigned long long)j->train.seed, (long long)in->ntrain, (long long)in->ntest);
    if (in->c) {
        fprintf(f, ",\n ");
        aim_json_config(f, in->c);
    }
    fprintf(f, "}\n");
    return 0; /* aim_write_atomic checks the stream */
}

/* the job's last line: top-1 per set (or the raw-pixel baseline) */
static void log_result(const aim_probe_job *j, const aim_probe_job_result *r, double seconds)
{
    float top1[AIM_PROBE_MAX_SETS];
    for (int s = 0; s < r->nsets; s++)
        top1[s] = r->sets[s].test_top1;
    aim_runlog_begin(j->log, j->train.epochs, "probe_result");
    if (j->raw) {
        aim_runlog_num(j->log, "baseline", r->nsets ? top1[0] : NAN);
    } else {
        aim_runlog_array(j->log, "top1", top1, r->nsets);
        aim_runlog_num(j->log, "best_set", r->best + 1);
    }
    aim_runlog_num(j->log, "time", seconds);
    aim_runlog_end(j->log);
    aim_runlog_flush(j->log);
}

static int probe_job_run(aim_model *m, const aim_dataset *train, const aim_dataset *test,
                         const aim_probe_job *j, aim_probe_job_result *r, aim_err *e)
{
    memset(r, 0, sizeof *r);
    r->best = -1;
    if (!j->raw && !m)
        return aim_errf(e, "probe: no model to probe");
    if (j->raw && j->mirror)
        return aim_errf(e, "probe: mirror needs a trunk's features (not raw pixels)");
    int K = train->nclasses > test->nclasses ? train->nclasses : test->nclasses;
    if (K < 2)
        return aim_errf(e, "probe: the data has %d class(es)", K);
    aim_probe_kind kind = j->raw ? AIM_PROBE_LINEAR : j->kind;
    /* the sets: given, or the middle blocks */
    int nsets = j->raw ? 1 : j->nsets;
    int nb[AIM_PROBE_MAX_SETS];
    int bl[AIM_PROBE_MAX_SETS][AIM_PROBE_MAX_BLOCKS];
    int L = m ? aim_model_config(m)->depth : 0;
    if (!j->raw && nsets == 0) {
        nsets = 1;
        nb[0] = L >= 3 ? 2 : 1;
        bl[0][0] = L >= 3 ? L / 2 : (L + 1) / 2;
        bl[0][1] = L / 2 + 1;
    } else if (!j->raw) {
        if (nsets > AIM_PROBE_MAX_SETS)
            return aim_errf(e, "probe: at most %d block sets", AIM_PROBE_MAX_SETS);
        for (int s = 0; s < nsets; s++) {
            if (j->nblocks[s] < 1 || j->nblocks[s] > AIM_PROBE_MAX_BLOCKS)
                return aim_errf(e, "probe: block set %d is empty or too long", s + 1);
            nb[s] = j->nblocks[s];
            for (int k = 0; k < nb[s]; k++) {
                if (j->blocks[s][k] < 1 || j->blocks[s][k] > L)
                    return aim_errf(e, "probe: block %d is not in 1..%d", j->blocks[s][k], L);
                bl[s][k] = j->blocks[s][k];
            }
        }
    }
    double t0 = aim_prof_now();
    if (j->raw) { /* one set: the pixels */
        nsets = 1;
        nb[0] = 0;
    }
    job_info info = {j, m ? aim_model_config(m) : NULL, kind, nsets, nb,
                     (const int (*)[AIM_PROBE_MAX_BLOCKS])bl, train->n, test->n};
    if (aim_runlog_write_info(j->log, write_info, &info, e) != 0)
        return -1;
    aim_feats *ftr[AIM_PROBE_MAX_SETS] = {0}, *fte[AIM_PROBE_MAX_SETS] = {0};
    int rc = -1;
    if (j->raw) {
        ftr[0] = aim_features_raw(train, 0, e);
        fte[0] = ftr[0] ? aim_features_raw(test, 0, e) : NULL;
        if (!fte[0])
            goto done;
    } else {
        const int *setp[AIM_PROBE_MAX_SETS];
        for (int s = 0; s < nsets; s++)
            setp[s] = bl[s];
        int fb = j->feature_batch > 0 ? j->feature_batch : 64;
        if (aim_features_extract(m, train, 0, fb, j->mirror ? AIM_FEATS_MIRROR : 0, nsets, setp,
                                 nb, ftr, j->on_features, j->ctx, j->dist, e) ||
            aim_features_extract(m, test, 0, fb, 0, nsets, setp, nb, fte, j->on_features, j->ctx,
                                 j->dist, e))
            goto done;
    }
    float best_top1 = -1;
    int heads = m ? aim_model_config(m)->heads : 1;
    for (int s = 0; s < nsets; s++) {
        aim_probe_set_result *sr = &r->sets[s];
        memset(sr, 0, sizeof *sr);
        if (j->raw) {
            snprintf(sr->label, sizeof sr->label, "pixels");
        } else {
            sr->nblocks = nb[s];
            for (int k = 0; k < nb[s]; k++) {
                sr->blocks[k] = bl[s][k];
                size_t len = strlen(sr->label);
                snprintf(sr->label + len, sizeof sr->label - len, "%s%d", k ? "," : "", bl[s][k]);
            }
        }
        aim_probe *p = aim_probe_new(kind, ftr[s]->N, ftr[s]->D, heads, K, j->train.seed, e);
        if (!p)
            goto done;
        aim_probe_opts to = j->train;
        to.log = j->log;
        to.log_set = s + 1;
        aim_probe_result pr;
        if (aim_probe_train(p, ftr[s], fte[s], &to, &pr, e) != 0) {
            aim_probe_free(p);
            goto done;
        }
        sr->test_top1 = pr.test_top1;
        sr->train_top1 = pr.train_top1;
        sr->train_loss = pr.train_loss;
        sr->seconds = pr.seconds;
        r->nsets = s + 1;
        if (pr.test_top1 > best_top1) {
            best_top1 = pr.test_top1;
            r->best = s;
            aim_probe_free(r->best_probe);
            r->best_probe = p;
        } else {
            aim_probe_free(p);
        }
        /* a sweep would otherwise hold every set's features to the end */
        aim_feats_free(ftr[s]);
        aim_feats_free(fte[s]);
        ftr[s] = fte[s] = NULL;
        if (j->on_set && j->on_set(j->ctx, s, sr)) {
            r->stopped = 1;
            break;
        }
    }
    log_result(j, r, aim_prof_now() - t0);
    rc = 0;
done:
    for (int s = 0; s < nsets; s++) {
        aim_feats_free(ftr[s]);
        aim_feats_free(fte[s]);
    }
    return rc;
}

int aim_probe_save_with_model(const char *path, aim_model *m, aim_probe *p,
                              const char *layers, aim_err *e)
{
    char classes[16];
    snprintf(classes, sizeof classes, "%d", aim_probe_classes(p));
    const char *kv[6] = {"classes", classes, "probe_layers", layers, "probe_kind",
                         aim_probe_get_kind(p) == AIM_PROBE_ATTENTIVE ? "attentive" : "linear"};
    return aim_model_save_with(m, path, aim_probe_params(p), kv, 3, e);
}

/* "3,4" -> blocks; -1 on anything else */
static int parse_layers(const char *s, int L, int *blocks, int *nblocks)
{
    int n = 0;
    while (*s) {
        char *end;
        long b = strtol(s, &end, 10);
        if (end == s || b < 1 || b > L || n == AIM_PROBE_MAX_BLOCKS)
            return -1;
        blocks[n++] = (int)b;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    *nblocks = n;
    return n > 0 ? 0 : -1;
}

aim_probe *aim_probe_load(const char *path, int *blocks, int *nblocks, aim_err *e)
{
    aim_st_file *f = aim_st_open(path, e);
    if (!f)
        return NULL;
    aim_probe *p = NULL;
    aim_config c;
    if (aim_config_from_meta(f, &c, e) != 0)
        goto done;
    const char *kind = aim_st_meta(f, "probe_kind"), *layers = aim_st_meta(f, "probe_layers");
    const char *classes = aim_st_meta(f, "classes");
    if (!aim_st_find(f, "head.linear.weight") || !layers || !classes) {
        aim_errf(e, "%s: no probe in this file (no head.* tensors with probe_layers and "
                    "classes; `aim probe --save` writes one)", path);
        goto done;
    }
    aim_probe_kind k = kind && !strcmp(kind, "linear") ? AIM_PROBE_LINEAR : AIM_PROBE_ATTENTIVE;
    if (kind && strcmp(kind, "linear") && strcmp(kind, "attentive")) {
        aim_errf(e, "%s: unknown probe_kind \"%s\"", path, kind);
        goto done;
    }
    char *end;
    long K = strtol(classes, &end, 10);
    if (*end || K < 2 || K > 100000) {
        aim_errf(e, "%s: bad classes \"%s\" in the metadata", path, classes);
        goto done;
    }
    if (parse_layers(layers, c.depth, blocks, nblocks) != 0) {
        aim_errf(e, "%s: bad probe_layers \"%s\" (block numbers in 1..%d)", path, layers,
                 c.depth);
        goto done;
    }
    p = aim_probe_from_st(f, k, aim_config_tokens(&c), c.width, c.heads, (int)K, e);
done:
    aim_st_close(f);
    return p;
}

/* the job in its precision: set on the model for the job, then back */
int aim_probe_job_run(aim_model *m, const aim_dataset *train, const aim_dataset *test,
                      const aim_probe_job *j, aim_probe_job_result *r, aim_err *e)
{
    aim_precision was = m && !j->raw ? aim_model_precision(m) : AIM_PREC_FP32;
    if (m && !j->raw && aim_model_set_precision(m, j->precision, e) != 0)
        return -1;
    int rc = probe_job_run(m, train, test, j, r, e);
    if (m && !j->raw)
        aim_model_set_precision(m, was, NULL);
    return rc;
}
