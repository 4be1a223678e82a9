/*
 * checkpoint.c - training checkpoints: the safetensors container with every
 * parameter (AIM.md names), the AdamW moments, the run's state and recipe in
 * the metadata and a CRC32 of the data section. Saving is atomic; loading
 * checks everything and says precisely what is wrong.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "aim/io.h"
#include "aim/train.h"

#define M_PREFIX "optimizer.exp_avg."
#define V_PREFIX "optimizer.exp_avg_sq."

/* ------------------------------------------------------------ metadata */

typedef struct meta {
    int n, cap;
    const char **kv; /* pairs */
    char **owned;    /* strings to free */
    int nowned;
} meta;

static void meta_put(meta *m, const char *k, char *v_owned)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->kv = aim_xrealloc(m->kv, (size_t)m->cap * 2 * sizeof *m->kv);
        m->owned = aim_xrealloc(m->owned, (size_t)m->cap * 2 * sizeof *m->owned);
    }
    m->kv[2 * m->n] = k;
    m->kv[2 * m->n + 1] = v_owned;
    m->owned[m->nowned++] = v_owned;
    m->n++;
}

static void meta_free(meta *m)
{
    for (int i = 0; i < m->nowned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->kv);
}

/* ------------------------------------------------------------ header CRC */
/* The data CRC cannot see the header; this second CRC covers the tensor
 * table (name, dtype, shape, offsets) and every metadata pair except itself,
 * so a flipped byte anywhere in the file is detected. */
static uLong crc_str(uLong crc, const char *s)
{
    return crc32(crc, (const Bytef *)s, (uInt)strlen(s) + 1);
}

static uLong crc_tensor(uLong crc, const char *name, aim_dtype dt, int ndim,
                        const int64_t *shape, uint64_t begin, uint64_t end)
{
    char buf[256];
    crc = crc_str(crc, name);
    int n = snprintf(buf, sizeof buf, "%s/%d", aim_dtype_name(dt), ndim);
    for (int d = 0; d < ndim && n < 200; d++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "/%lld", (long long)shape[d]);
    snprintf(buf + n, sizeof buf - (size_t)n, "@%llu-%llu", (unsigned long long)begin,
             (unsigned long long)end);
    return crc_str(crc, buf);
}

static uLong crc_meta(uLong crc, const char *k, const char *v)
{
    if (!strcmp(k, "header_crc32"))
        return crc;
    return crc_str(crc_str(crc, k), v);
}

static uLong file_header_crc(const aim_st_file *f)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < f->ntensors; i++) {
        const aim_st_tensor *t = &f->tensors[i];
        crc = crc_tensor(crc, t->name, t->dtype, t->ndim, t->shape, t->begin, t->end);
    }
    for (int i = 0; i < f->nmeta; i++)
        crc = crc_meta(crc, f->meta_keys[i], f->meta_vals[i]);
    return crc;
}

#define PUT(key, fmt, val) meta_put(&md, key, aim_xasprintf(fmt, val))

int aim_checkpoint_save(const char *path, const aim_model *m, const aim_pretrain_opts *o,
                        const aim_train_state *s, aim_err *e)
{
    aim_params *p = aim_model_params((aim_model *)m);
    if (!p->m || !p->v)
        return aim_errf(e, "%s: the model has no optimizer state to checkpoint", path);
    const char *bad = aim_params_nonfinite(p);
    if (bad)
        return aim_errf(e, "%s: not written: tensor \"%s\" holds a NaN or infinite value",
                        path, bad);
    int n = p->n;
    aim_st_entry *ent = aim_xcalloc((size_t)(3 * n), sizeof *ent);
    char **names = aim_xcalloc((size_t)(2 * n), sizeof *names);
    const float *slabs[3] = {p->data, p->m, p->v};
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < n; i++) {
            aim_st_entry *t = &ent[r * n + i];
            const aim_param *pt = &p->t[i];
            if (r == 0) {
                t->name = pt->name;
            } else {
                names[(r - 1) * n + i] =
                    aim_xasprintf("%s%s", r == 1 ? M_PREFIX : V_PREFIX, pt->name);
                t->name = names[(r - 1) * n + i];
            }
            t->dtype = AIM_F32;
            t->ndim = pt->ndim;
            for (int d = 0; d < pt->ndim; d++)
                t->shape[d] = pt->shape[d];
            t->data = slabs[r] + pt->offset;
        }
    }
    /* CRC32 of the data section: the writer stores the entries in this order
     * with no gaps, so it is the CRC of their bytes one after the other */
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < 3 * n; i++) {
        const aim_param *pt = &p->t[i % n];
        size_t bytes = pt->numel * sizeof(float);
        const Bytef *d = ent[i].data;
        while (bytes) {
            uInt chunk = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
            crc = crc32(crc, d, chunk);
            d += chunk;
            bytes -= chunk;
        }
    }
    meta md = {0};
    char vals[AIM_CONFIG_META_MAX][160];
    const char *ckv[2 * AIM_CONFIG_META_MAX];
    int nc = aim_config_to_meta(aim_model_config(m), vals, ckv);
    for (int i = 0; i < nc; i++)
        meta_put(&md, ckv[2 * i], aim_xstrdup(ckv[2 * i + 1]));
    PUT("aim_checkpoint", "%d", 1);
    PUT("step", "%" PRId64, s->step);
    PUT("total_steps", "%" PRId64, o->steps);
    PUT("data_position", "%" PRIu64, s->data_position);
    PUT("last_loss", "%.9g", s->last_loss);
    PUT("best_val_loss", "%.9g", s->best_val);
    PUT("seed", "%" PRIu64, o->data.seed);
    PUT("batch", "%d", o->batch);
    PUT("lr", "%.9g", o->lr);
    PUT("warmup", "%" PRId64, o->warmup);
    PUT("clip", "%.9g", o->clip);
    PUT("beta1", "%.9g", o->adamw.beta1);
    PUT("beta2", "%.9g", o->adamw.beta2);
    PUT("eps", "%.9g", o->adamw.eps);
    PUT("weight_decay", "%.9g", o->adamw.weight_decay);
    PUT("shuffle", "%d", o->data.shuffle);
    PUT("crop", "%d", o->data.crop);
    PUT("flip", "%d", o->data.flip);
    PUT("shift", "%d", o->data.shift);
    PUT("normalize", "%d", o->data.normalize);
    PUT("scale_min", "%.9g", o->data.scale_min);
    PUT("scale_max", "%.9g", o->data.scale_max);
    PUT("ratio_min", "%.9g", o->data.ratio_min);
    PUT("ratio_max", "%.9g", o->data.ratio_max);
    PUT("log_every", "%d", o->log_every);
    PUT("ckpt_every", "%" PRId64, o->ckpt_every);
    PUT("ckpt_minutes", "%.9g", o->ckpt_minutes);
    PUT("keep_last", "%d", o->keep_last);
    PUT("val_every", "%" PRId64, o->val_every);
    PUT("val_images", "%d", o->val_images);
    PUT("probe_every", "%" PRId64, o->probe_every);
    PUT("probe_images", "%d", o->probe_images);
    /* information: the weights are fp32 whatever the run's precision */
    PUT("precision", "%s", aim_precision_name(aim_model_precision(m)));
    PUT("gemm", "%s", aim_model_gemm(m));
    char **rkeys = aim_xcalloc((size_t)(o->nrecipe + 1), sizeof *rkeys);
    for (int i = 0; i < o->nrecipe; i++) {
        rkeys[i] = aim_xasprintf("recipe.%s", o->recipe[2 * i]);
        meta_put(&md, rkeys[i], aim_xstrdup(o->recipe[2 * i + 1]));
    }
    PUT("crc32", "%08lx", (unsigned long)crc);
    uLong hcrc = crc32(0L, Z_NULL, 0);
    uint64_t off = 0;
    for (int i = 0; i < 3 * n; i++) {
        uint64_t bytes = p->t[i % n].numel * sizeof(float);
        hcrc = crc_tensor(hcrc, ent[i].name, ent[i].dtype, ent[i].ndim, ent[i].shape, off,
                          off + bytes);
        off += bytes;
    }
    for (int i = 0; i < md.n; i++)
        hcrc = crc_meta(hcrc, md.kv[2 * i], md.kv[2 * i + 1]);
    PUT("header_crc32", "%08lx", (unsigned long)hcrc);
    int rc = aim_st_write(path, ent, 3 * n, md.kv, md.n, e);
    meta_free(&md);
    for (int i = 0; i < o->nrecipe; i++)
        free(rkeys[i]);
    free(rkeys);
    for (int i = 0; i < 2 * n; i++)
        free(names[i]);
    free(names);
    free(ent);
    return rc;
}

/* ------------------------------------------------------------ loading */

int aim_checkpoint_is(const aim_st_file *f)
{
    const char *v = aim_st_meta(f, "aim_checkpoint");
    return v && !strcmp(v, "1");
}

static int get_i64(const aim_st_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   aim_err *e)
{
    const char *s = aim_st_meta(f, key);
    if (!s)
        return aim_errf(e, "%s: checkpoint metadata has no \"%s\"", f->path, key);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return aim_errf(e, "%s: checkpoint metadata \"%s\" = \"%s\" is not an integer in %lld..%lld",
                        f->path, key, s, (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

static int get_f(const aim_st_file *f, const char *key, double lo, double hi, float *out,
                 aim_err *e)
{
    const char *s = aim_st_meta(f, key);
    if (!s)
        return aim_errf(e, "%s: checkpoint metadata has no \"%s\"", f->path, key);
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v) || v < lo || v > hi)
        return aim_errf(e, "%s: checkpoint metadata \"%s\" = \"%s\" is not a number in %g..%g",
                        f->path, key, s, lo, hi);
    *out = (float)v;
    return 0;
}

static int read_state(const aim_st_file *f, aim_train_state *s, aim_pretrain_opts *o,
                      aim_err *e)
{
    int64_t v;
    aim_pretrain_opts_default(o);
#define I64(key, lo, hi, dst)                                                              \
    do {                                                                                   \
        if (get_i64(f, key, lo, hi, &v, e))                                                \
            return -1;                                                                     \
        dst = v;                                                                           \
    } while (0)
#define FLT(key, lo, hi, dst)                                                              \
    do {                                                                                   \
        if (get_f(f, key, lo, hi, &dst, e))                                                \
            return -1;                                                                     \
    } while (0)
    I64("total_steps", 1, INT64_MAX / 2, o->steps);
    I64("step", 0, o->steps, s->step);
    I64("data_position", 0, INT64_MAX, s->data_position);
    FLT("last_loss", -1e30, 1e30, s->last_loss);
    FLT("best_val_loss", 0, 1e30, s->best_val);
    const char *seed = aim_st_meta(f, "seed");
    char *end;
    if (!seed || (o->data.seed = strtoull(seed, &end, 10), end == seed || *end))
        return aim_errf(e, "%s: checkpoint metadata \"seed\" is missing or not an integer",
                        f->path);
    I64("batch", 1, 65536, o->batch);
    FLT("lr", 0, 1e3, o->lr);
    I64("warmup", 0, INT64_MAX / 2, o->warmup);
    FLT("clip", 0, 1e30, o->clip);
    FLT("beta1", 0, 1, o->adamw.beta1);
    FLT("beta2", 0, 1, o->adamw.beta2);
    FLT("eps", 0, 1, o->adamw.eps);
    FLT("weight_decay", 0, 1e3, o->adamw.weight_decay);
    I64("shuffle", 0, 1, o->data.shuffle);
    I64("crop", 0, 1, o->data.crop);
    I64("flip", 0, 1, o->data.flip);
    I64("normalize", 0, 1, o->data.normalize);
    FLT("scale_min", 0, 1, o->data.scale_min);
    FLT("scale_max", 0, 1, o->data.scale_max);
    FLT("ratio_min", 0, 1e3, o->data.ratio_min);
    FLT("ratio_max", 0, 1e3, o->data.ratio_max);
    I64("log_every", 0, INT32_MAX, o->log_every);
    I64("ckpt_every", 0, INT64_MAX / 2, o->ckpt_every);
    float mins;
    FLT("ckpt_minutes", 0, 1e9, mins);
    o->ckpt_minutes = mins;
    I64("keep_last", 0, 1000000, o->keep_last);
    I64("val_every", 0, INT64_MAX / 2, o->val_every);
    I64("val_images", 0, INT32_MAX, o->val_images);
    if (aim_st_meta(f, "shift")) /* checkpoints before 2026-11-29 have none: 0 */
        I64("shift", 0, 4096, o->data.shift);
    if (aim_st_meta(f, "probe_every")) {
        I64("probe_every", 0, INT64_MAX / 2, o->probe_every);
        I64("probe_images", 0, INT32_MAX, o->probe_images);
    }
#undef I64
#undef FLT
    if (aim_adamw_opts_check(&o->adamw, e) != 0)
        return aim_err_prefix(e, "%s: checkpoint recipe", f->path);
    return 0;
}

aim_model *aim_checkpoint_load(const char *path, aim_train_state *s, aim_pretrain_opts *o,
                               aim_st_file **meta_out, aim_err *e)
{
    *meta_out = NULL;
    aim_st_file *f = aim_st_open(path, e);
    if (!f)
        return NULL;
    if (!aim_checkpoint_is(f)) {
        aim_errf(e, "%s: not an aim checkpoint (plain weights? train from them with --init)",
                 path);
        goto fail_file;
    }
    const char *crc_s = aim_st_meta(f, "crc32");
    if (!crc_s) {
        aim_errf(e, "%s: checkpoint metadata has no \"crc32\"", path);
        goto fail_file;
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t off = 0; off < f->data_len;) {
        uInt chunk = f->data_len - off > (1u << 30) ? (1u << 30) : (uInt)(f->data_len - off);
        crc = crc32(crc, f->data + off, chunk);
        off += chunk;
    }
    char want[16];
    snprintf(want, sizeof want, "%08lx", (unsigned long)crc);
    if (strcmp(want, crc_s)) {
        aim_errf(e, "%s: checksum mismatch (data CRC32 %s, metadata says %s): the file is corrupt",
                 path, want, crc_s);
        goto fail_file;
    }
    const char *hcrc_s = aim_st_meta(f, "header_crc32");
    snprintf(want, sizeof want, "%08lx", (unsigned long)file_header_crc(f));
    if (!hcrc_s || strcmp(want, hcrc_s)) {
        aim_errf(e, "%s: header checksum mismatch (header CRC32 %s, metadata says %s): the "
                    "file is corrupt", path, want, hcrc_s ? hcrc_s : "nothing");
        goto fail_file;
    }
    if (read_state(f, s, o, e) != 0)
        goto fail_file;
    aim_model *m = aim_model_from_st(f, e);
    if (!m)
        goto fail_file;
    aim_params *p = aim_model_params(m);
    /* the moments are checked before their slabs are allocated */
    if (aim_st_check_params(f, p, M_PREFIX, e) != 0 ||
        aim_st_check_params(f, p, V_PREFIX, e) != 0)
        goto fail_model;
    if (aim_params_try_alloc_moments(p, e) != 0) {
        aim_err_prefix(e, "%s", path);
        goto fail_model;
    }
    for (int i = 0; i < p->n; i++) {
        char name[AIM_PARAM_NAME_MAX + 32];
        snprintf(name, sizeof name, M_PREFIX "%s", p->t[i].name);
        if (aim_st_copy_param(f, &p->t[i], name, p->m + p->t[i].offset, e) != 0)
            goto fail_model;
        snprintf(name, sizeof name, V_PREFIX "%s", p->t[i].name);
        if (aim_st_copy_param(f, &p->t[i], name, p->v + p->t[i].offset, e) != 0)
            goto fail_model;
    }
    for (int i = 0; i < f->ntensors; i++) {
        const char *name = f->tensors[i].name;
        const char *base = !strncmp(name, V_PREFIX, strlen(V_PREFIX)) ? name + strlen(V_PREFIX)
                           : !strncmp(name, M_PREFIX, strlen(M_PREFIX)) ? name + strlen(M_PREFIX)
                                                                        : NULL;
        if (base && aim_params_find(p, base) < 0) {
            aim_errf(e, "%s: optimizer state \"%s\" belongs to no parameter", path, name);
            goto fail_model;
        }
    }
    *meta_out = f;
    return m;
fail_model:
    aim_model_free(m);
fail_file:
    aim_st_close(f);
    return NULL;
}

/* ------------------------------------------------------------ run folders */

/* "ckpt-<step>.safetensors" naming a regular file in dir */
static int ckpt_step(const char *dir, const char *name, int64_t *step)
{
    long long v;
    int len = 0;
    if (sscanf(name, "ckpt-%lld.safetensors%n", &v, &len) != 1 || name[len] || v < 0)
        return 0;
    char *p = aim_xasprintf("%s/%s", dir, name);
    int64_t size = aim_file_size(p, NULL);
    free(p);
    if (size < 0)
        return 0;
    *step = v;
    return 1;
}

char *aim_checkpoint_latest(const char *dir, aim_err *e)
{
    DIR *d = opendir(dir);
    if (!d) {
        aim_errf(e, "%s: %s", dir, strerror(errno));
        return NULL;
    }
    int64_t best = -1, st;
    char bestname[300] = "";
    struct dirent *de;
    while ((de = readdir(d))) {
        if (ckpt_step(dir, de->d_name, &st) && st > best && strlen(de->d_name) < sizeof bestname) {
            best = st;
            snprintf(bestname, sizeof bestname, "%s", de->d_name);
        }
    }
    closedir(d);
    if (best < 0) {
        aim_errf(e, "%s: no checkpoint (ckpt-STEP.safetensors) in this folder", dir);
        return NULL;
    }
    return aim_xasprintf("%s/%s", dir, bestname);
}

void aim_checkpoint_prune(const char *dir, int keep)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    int64_t *steps = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t st;
        if (ckpt_step(dir, de->d_name, &st)) {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                steps = aim_xrealloc(steps, (size_t)cap * sizeof *steps);
            }
            steps[n++] = st;
        }
    }
    closedir(d);
    aim_remove_dead_temps(dir);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++)
            newer += steps[j] > steps[i];
        if (keep > 0 && newer >= keep) {
            char *p = aim_xasprintf("%s/ckpt-%lld.safetensors", dir, (long long)steps[i]);
            remove(p);
            free(p);
        }
    }
    free(steps);
}
