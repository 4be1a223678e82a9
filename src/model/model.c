/*
 * model.c - AIM model configuration, presets, parameter table, init
 * (shared/AIM.md "Pretraining recipe": xavier-uniform linears, LayerNorm
 * 1/0, zero biases) and safetensors save/load with the AIM.md names.
 * The forward and backward passes live in vit.c.
 */
#include "config.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "aim/io.h"
#include "aim/nn.h"
#include "model/model_internal.h"

/* ------------------------------------------------------------ config */

int aim_config_preset(const char *name, aim_config *c, aim_err *e)
{
    /* c is only written on success */
    if (!strcmp(name, "micro")) {
        /* for tests: C = 3 exercises the patch value orders */
        *c = (aim_config){.image = 8, .channels = 3, .patch = 2, .width = 16, .depth = 2,
                          .heads = 2, .head_width = 8, .head_depth = 1, .norm_eps = 1e-6f};
    } else if (!strcmp(name, "tiny")) {
        *c = (aim_config){.image = 28, .channels = 1, .patch = 4, .width = 192, .depth = 6,
                          .heads = 3, .head_width = 192, .head_depth = 2, .norm_eps = 1e-6f};
    } else if (!strcmp(name, "small")) {
        *c = (aim_config){.image = 32, .channels = 3, .patch = 4, .width = 384, .depth = 8,
                          .heads = 6, .head_width = 384, .head_depth = 4, .norm_eps = 1e-6f};
    } else {
        return aim_errf(e, "unknown preset \"%s\" (known: micro, tiny, small)", name);
    }
    return 0;
}

#define FIELD_(f, lo, hi) {#f, offsetof(aim_config, f), lo, hi}
const aim_config_field aim_config_fields[] = {
    FIELD_(image, 2, 4096),      FIELD_(channels, 1, 4),      FIELD_(patch, 1, 512),
    FIELD_(width, 4, 16384),     FIELD_(depth, 1, 512),       FIELD_(heads, 1, 1024),
    FIELD_(head_width, 4, 16384), FIELD_(head_depth, 0, 512), {NULL, 0, 0, 0},
};
#undef FIELD_

int aim_config_validate(const aim_config *c, aim_err *e)
{
    for (const aim_config_field *f = aim_config_fields; f->name; f++) {
        int v = *(const int *)((const char *)c + f->offset);
        if (v < f->lo || v > f->hi)
            return aim_errf(e, "config: %s = %d is outside %d..%d", f->name, v, f->lo, f->hi);
    }
    if (c->image % c->patch)
        return aim_errf(e, "config: patch %d does not divide image %d", c->patch, c->image);
    if (aim_config_tokens(c) < 2)
        return aim_errf(e, "config: image %d / patch %d gives %d token(s); AIM needs at least 2",
                        c->image, c->patch, aim_config_tokens(c));
    if (aim_config_tokens(c) > 65536)
        return aim_errf(e, "config: %d tokens is more than 65536", aim_config_tokens(c));
    if (aim_config_patch_dim(c) < 2)
        return aim_errf(e, "config: a patch holds %d value(s); the loss needs at least 2",
                        aim_config_patch_dim(c));
    if (c->width % c->heads)
        return aim_errf(e, "config: heads %d does not divide width %d", c->heads, c->width);
    if (c->width % 4)
        return aim_errf(e, "config: width %d is not a multiple of 4 (2-D sin-cos)", c->width);
    if (c->head_width % 4)
        return aim_errf(e, "config: head_width %d is not a multiple of 4 (2-D sin-cos)",
                        c->head_width);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return aim_errf(e, "config: norm_eps %g is not in (0, 1)", c->norm_eps);
    if (c->nmean < 0 || c->nmean > 4 || (c->nmean && c->nmean != c->channels))
        return aim_errf(e, "config: %d mean/std values for %d channel(s)", c->nmean, c->channels);
    for (int i = 0; i < c->nmean; i++)
        if (!(c->std[i] > 0) || !isfinite(c->mean[i]))
            return aim_errf(e, "config: std[%d] = %g must be positive", i, c->std[i]);
    return 0;
}

uint64_t aim_config_trunk_params(const aim_config *c)
{
    uint64_t D = c->width, P = (uint64_t)c->channels * c->patch * c->patch;
    return P * D + D + 2 * D + c->depth * (12 * D * D + 4 * D) + 2 * D;
}

uint64_t aim_config_head_params(const aim_config *c)
{
    uint64_t D = c->width, Dh = c->head_width, P = aim_config_patch_dim(c);
    return D * Dh + Dh + c->head_depth * (8 * Dh * Dh + 2 * Dh) + 2 * Dh + Dh * P + P;
}

double aim_config_flops_forward(const aim_config *c)
{
    /* 2 FLOPs per multiply-add; element-wise work is not counted */
    double N = aim_config_tokens(c), D = c->width, Dh = c->head_width,
           P = aim_config_patch_dim(c);
    double embed = 2 * N * P * D;
    double block = 2 * N * 12 * D * D + 4 * N * N * D; /* qkv, proj, mlp; QK^T and PV */
    double head = 2 * N * D * Dh + c->head_depth * 2 * N * 8 * Dh * Dh + 2 * N * Dh * P;
    return embed + c->depth * block + head;
}

double aim_config_flops_loss(const aim_config *c, double rows)
{
    if (c->depth < 1) /* no trunk block: the full pass runs */
        return aim_config_flops_forward(c);
    /* the trunk on tokens 0..N-2, the last block's projection and MLP and
     * the head on the loss rows */
    double Nt = aim_config_tokens(c) - 1, D = c->width, Dh = c->head_width,
           P = aim_config_patch_dim(c);
    double embed = 2 * Nt * P * D;
    double block = 2 * Nt * 12 * D * D + 4 * Nt * Nt * D;
    double tail = 2 * (Nt - rows) * 9 * D * D; /* not computed */
    double head = rows * (2 * D * Dh + c->head_depth * 16 * Dh * Dh + 2 * Dh * P);
    return embed + c->depth * block - tail + head;
}

/* ------------------------------------------------------------ parameters */

static int add(aim_params *p, unsigned flags, int ndim, int64_t d0, int64_t d1, int64_t d2,
               int64_t d3, const char *fmt, int i)
{
    char name[AIM_PARAM_NAME_MAX];
    snprintf(name, sizeof name, fmt, i);
    int64_t shape[4] = {d0, d1, d2, d3};
    return aim_params_add(p, name, ndim, shape, flags);
}

static void build_table(aim_model *m)
{
    aim_params *p = &m->p;
    const aim_config *c = &m->cfg;
    int D = m->D, Dh = m->Dh, P = m->P;
    m->patch_w = add(p, AIM_P_DECAY, 4, D, c->channels, c->patch, c->patch,
                     "preprocessor.patchifier.proj.weight", 0);
    m->patch_b = add(p, 0, 1, D, 0, 0, 0, "preprocessor.patchifier.proj.bias", 0);
    m->pn_w = add(p, 0, 1, D, 0, 0, 0, "preprocessor.patchifier.norm.weight", 0);
    m->pn_b = add(p, 0, 1, D, 0, 0, 0, "preprocessor.patchifier.norm.bias", 0);
    m->blk = aim_xcalloc((size_t)m->L, sizeof *m->blk);
    for (int l = 0; l < m->L; l++) {
        block_idx *b = &m->blk[l];
        b->ln1w = add(p, 0, 1, D, 0, 0, 0, "trunk.blocks.%d.norm_1.weight", l);
        b->ln1b = add(p, 0, 1, D, 0, 0, 0, "trunk.blocks.%d.norm_1.bias", l);
        b->qkv = add(p, AIM_P_DECAY, 2, 3 * D, D, 0, 0, "trunk.blocks.%d.attn.qkv.weight", l);
        b->proj = add(p, AIM_P_DECAY, 2, D, D, 0, 0, "trunk.blocks.%d.attn.proj.weight", l);
        b->ln2w = add(p, 0, 1, D, 0, 0, 0, "trunk.blocks.%d.norm_2.weight", l);
        b->ln2b = add(p, 0, 1, D, 0, 0, 0, "trunk.blocks.%d.norm_2.bias", l);
        b->fc1 = add(p, AIM_P_DECAY, 2, 4 * D, D, 0, 0, "trunk.blocks.%d.mlp.fc1.weight", l);
        b->fc2 = add(p, AIM_P_DECAY, 2, D, 4 * D, 0, 0, "trunk.blocks.%d.mlp.fc2.weight", l);
        b->qa = b->qb = b->pa = b->pb = -1;
    }
    m->post_w = add(p, 0, 1, D, 0, 0, 0, "trunk.post_trunk_norm.weight", 0);
    m->post_b = add(p, 0, 1, D, 0, 0, 0, "trunk.post_trunk_norm.bias", 0);
    m->hproj_w = add(p, AIM_P_DECAY, 2, Dh, D, 0, 0, "pixel_head.decoder_projection.weight", 0);
    m->hproj_b = add(p, 0, 1, Dh, 0, 0, 0, "pixel_head.decoder_projection.bias", 0);
    m->hblk = aim_xcalloc((size_t)(m->Lh ? m->Lh : 1), sizeof *m->hblk);
    for (int j = 0; j < m->Lh; j++) {
        hblock_idx *h = &m->hblk[j];
        h->lnw = add(p, 0, 1, Dh, 0, 0, 0, "pixel_head.decoder_blocks.%d.norm.weight", j);
        h->lnb = add(p, 0, 1, Dh, 0, 0, 0, "pixel_head.decoder_blocks.%d.norm.bias", j);
        h->fc1 = add(p, AIM_P_DECAY, 2, 4 * Dh, Dh, 0, 0,
                     "pixel_head.decoder_blocks.%d.mlp.fc1.weight", j);
        h->fc2 = add(p, AIM_P_DECAY, 2, Dh, 4 * Dh, 0, 0,
                     "pixel_head.decoder_blocks.%d.mlp.fc2.weight", j);
    }
    m->hn_w = add(p, 0, 1, Dh, 0, 0, 0, "pixel_head.decoder_norm.weight", 0);
    m->hn_b = add(p, 0, 1, Dh, 0, 0, 0, "pixel_head.decoder_norm.bias", 0);
    m->pred_w = add(p, AIM_P_DECAY, 2, P, Dh, 0, 0, "pixel_head.decoder_pred.weight", 0);
    m->pred_b = add(p, 0, 1, P, 0, 0, 0, "pixel_head.decoder_pred.bias", 0);
}

/* xavier-uniform on [fan_out, fan_in] (conv weights viewed as [D, C*p*p]),
 * LayerNorm weights 1, everything else (biases) 0 */
static void init_params(aim_model *m, uint64_t seed)
{
    aim_params *p = &m->p;
    for (int i = 0; i < p->n; i++) {
        aim_param *t = &p->t[i];
        float *w = p->data + t->offset;
        size_t len = strlen(t->name);
        if (t->flags & AIM_P_DECAY) {
            double fan_out = (double)t->shape[0];
            double fan_in = (double)(t->numel / (size_t)t->shape[0]);
            double a = sqrt(6.0 / (fan_in + fan_out));
            /* one stream per tensor: adding a tensor never shifts the others */
            aim_rng r;
            aim_rng_seed(&r, aim_hash64(seed ^ aim_hash64((uint64_t)i + 1)));
            for (size_t k = 0; k < t->numel; k++)
                w[k] = (float)((2 * aim_rng_uniform(&r) - 1) * a);
        } else if (len > 7 && !strcmp(t->name + len - 7, ".weight")) {
            for (size_t k = 0; k < t->numel; k++)
                w[k] = 1.0f; /* LayerNorm scale */
        } else {
            memset(w, 0, t->numel * sizeof(float));
        }
    }
}

aim_model *model_shell(const aim_config *c, aim_err *e)
{
    if (aim_config_validate(c, e) != 0)
        return NULL;
    aim_gemm g;
    if (aim_gemm_resolve(AIM_GEMM_AUTO, &g, NULL, e) != 0)
        return NULL;
    aim_model *m = aim_xcalloc(1, sizeof *m);
    m->gemm = g;
    m->cfg = *c;
    m->N = aim_config_tokens(c);
    m->P = aim_config_patch_dim(c);
    m->CPP = m->P;
    m->D = c->width;
    m->L = c->depth;
    m->NH = c->heads;
    m->Dh = c->head_width;
    m->Lh = c->head_depth;
    build_table(m); /* O(depth) rows, whatever the width */
    return m;
}

/* The slabs and tables of a shell, after checking that they and the
 * activations of one image fit in aim_mem_limit(): -1 with the sizes. */
static int model_alloc(aim_model *m, aim_err *e)
{
    uint64_t par = 2 * (uint64_t)m->p.total * sizeof(float);
    uint64_t pos = (uint64_t)m->N * (uint64_t)(m->D + m->Dh) * sizeof(float);
    uint64_t act = (uint64_t)model_activation_floats(m, 1) * sizeof(float);
    uint64_t lim = aim_mem_limit();
    if (par + pos + act > lim) {
        char a[32], b[32], c[32], d[32];
        aim_fmt_bytes(a, sizeof a, par + pos + act);
        aim_fmt_bytes(b, sizeof b, par);
        aim_fmt_bytes(c, sizeof c, act);
        aim_fmt_bytes(d, sizeof d, lim);
        return aim_errf(e, "config: the model needs %s (%llu parameters: %s with their "
                           "gradients; %s of activations for one image), more than the %s "
                           "allowed", a, (unsigned long long)aim_params_count(&m->p, 0), b, c,
                        d);
    }
    if (aim_params_try_alloc(&m->p, e) != 0)
        return aim_err_prefix(e, "config");
    int g = m->cfg.image / m->cfg.patch;
    m->pos = aim_try_aligned_zero((size_t)m->N * m->D * sizeof(float));
    m->pos_h = aim_try_aligned_zero((size_t)m->N * m->Dh * sizeof(float));
    if (!m->pos || !m->pos_h)
        return aim_errf(e, "config: out of memory for the position tables");
    sincos2d(m->pos, g, g, m->D);
    sincos2d(m->pos_h, g, g, m->Dh);
    return 0;
}

static aim_model *model_create(const aim_config *c, aim_err *e)
{
    aim_model *m = model_shell(c, e);
    if (m && model_alloc(m, e) != 0) {
        aim_model_free(m);
        return NULL;
    }
    return m;
}

aim_model *aim_model_new(const aim_config *c, uint64_t seed, aim_err *e)
{
    aim_model *m = model_create(c, e);
    if (m)
        init_params(m, seed);
    return m;
}

void aim_model_free(aim_model *m)
{
    if (!m)
        return;
    aim_params_free(&m->p);
    free(m->blk);
    free(m->hblk);
    free(m->pos);
    free(m->pos_h);
    free(m->act_slab);
    for (int i = 0; i < m->nslot; i++)
        free(m->gslot[i]);
    free(m->gslot);
    model_bf16_free(m); /* before a.blk: it clears the bf16 copies' pointers there */
    aim_bf16_ctx_free(m->dnf);
    free(m->a.blk);
    free(m->a.hblk);
    free(m->fb_in);
    free(m->bw_written);
    free(m);
}

const aim_config *aim_model_config(const aim_model *m)
{
    return &m->cfg;
}

aim_params *aim_model_params(aim_model *m)
{
    return &m->p;
}

int aim_model_set_norm(aim_model *m, int n, const float *mean, const float *std, aim_err *e)
{
    aim_config c = m->cfg;
    c.nmean = n;
    for (int i = 0; i < n && i < 4; i++) {
        c.mean[i] = mean[i];
        c.std[i] = std[i];
    }
    if (aim_config_validate(&c, e) != 0)
        return -1;
    m->cfg = c;
    return 0;
}

/* ------------------------------------------------------------ files */

/* Config as decimal strings (%.9g), as AIM.md asks. */
int aim_config_to_meta(const aim_config *c, char vals[AIM_CONFIG_META_MAX][160],
                       const char **kv)
{
    int n = 0;
#define PUT_INT(k, v)                                                                      \
    do {                                                                                   \
        snprintf(vals[n], sizeof vals[n], "%d", (v));                                      \
        kv[2 * n] = k;                                                                     \
        kv[2 * n + 1] = vals[n];                                                           \
        n++;                                                                               \
    } while (0)
    PUT_INT("image", c->image);
    PUT_INT("channels", c->channels);
    PUT_INT("patch", c->patch);
    PUT_INT("width", c->width);
    PUT_INT("depth", c->depth);
    PUT_INT("heads", c->heads);
    PUT_INT("head_width", c->head_width);
    PUT_INT("head_depth", c->head_depth);
#undef PUT_INT
    snprintf(vals[n], sizeof vals[n], "%.9g", c->norm_eps);
    kv[2 * n] = "norm_eps";
    kv[2 * n + 1] = vals[n];
    n++;
    if (c->nmean) {
        const float *arr[2] = {c->mean, c->std};
        const char *names[2] = {"mean", "std"};
        for (int a = 0; a < 2; a++) {
            char *s = vals[n];
            s[0] = 0;
            for (int i = 0; i < c->nmean; i++)
                snprintf(s + strlen(s), 160 - strlen(s), "%s%.9g", i ? "," : "", arr[a][i]);
            kv[2 * n] = names[a];
            kv[2 * n + 1] = s;
            n++;
        }
    }
    return n;
}

int aim_model_save_with(const aim_model *m, const char *path, const aim_params *extra,
                        const char *const *extra_kv, int nextra, aim_err *e)
{
    const aim_params *p = &m->p;
    const char *bad = aim_params_nonfinite(p);
    if (!bad && extra)
        bad = aim_params_nonfinite(extra);
    if (bad)
        return aim_errf(e, "%s: not written: tensor \"%s\" holds a NaN or infinite value",
                        path, bad);
    int n = p->n + (extra ? extra->n : 0);
    aim_st_entry *ent = aim_xcalloc((size_t)n, sizeof *ent);
    float **copies = aim_xcalloc((size_t)p->n, sizeof *copies);
    for (int i = 0; i < n; i++) {
        const aim_params *src = i < p->n ? p : extra;
        const aim_param *t = &src->t[i < p->n ? i : i - p->n];
        ent[i].name = t->name;
        ent[i].dtype = AIM_F32;
        ent[i].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++)
            ent[i].shape[d] = t->shape[d];
        ent[i].data = src->data + t->offset;
        /* merged adapters are saved as adapters: the base weight without them */
        if (i < p->n && (copies[i] = lora_unmerged_copy(m, i)))
            ent[i].data = copies[i];
    }
    if (nextra > 16)
        nextra = 16;
    char vals[AIM_CONFIG_META_MAX][160], lv[2][32];
    const char *kv[2 * AIM_CONFIG_META_MAX + 4 + 32];
    int nmeta = aim_config_to_meta(&m->cfg, vals, kv);
    nmeta += lora_meta(m, lv, kv + 2 * nmeta);
    for (int i = 0; i < 2 * nextra; i++)
        kv[2 * nmeta + i] = extra_kv[i];
    nmeta += nextra;
    int rc = aim_st_write(path, ent, n, kv, nmeta, e);
    for (int i = 0; i < p->n; i++)
        free(copies[i]);
    free(copies);
    free(ent);
    return rc;
}

int aim_model_save(const aim_model *m, const char *path, aim_err *e)
{
    return aim_model_save_with(m, path, NULL, NULL, 0, e);
}

static int meta_int(const aim_st_file *f, const char *key, int *out, int required, aim_err *e)
{
    const char *s = aim_st_meta(f, key);
    if (!s) {
        if (required)
            return aim_errf(e, "%s: metadata has no \"%s\" (not an AIM weights file?)",
                            f->path, key);
        return 0;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 0 || v > 1000000)
        return aim_errf(e, "%s: metadata \"%s\" = \"%s\" is not a valid integer", f->path, key,
                        s);
    *out = (int)v;
    return 0;
}

static int meta_floats(const aim_st_file *f, const char *key, float *out, int max, int *n,
                       aim_err *e)
{
    const char *s = aim_st_meta(f, key);
    *n = 0;
    if (!s)
        return 0;
    while (*s) {
        if (*n == max)
            return aim_errf(e, "%s: metadata \"%s\" has more than %d values", f->path, key, max);
        char *end;
        double v = strtod(s, &end);
        if (end == s || !isfinite(v))
            return aim_errf(e, "%s: metadata \"%s\" is not a comma-separated list of numbers",
                            f->path, key);
        out[(*n)++] = (float)v;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return aim_errf(e, "%s: metadata \"%s\" is not a comma-separated list of numbers",
                            f->path, key);
    }
    return 0;
}

int aim_config_from_meta(const aim_st_file *f, aim_config *c, aim_err *e)
{
    memset(c, 0, sizeof *c);
    c->norm_eps = 1e-6f;
    if (meta_int(f, "image", &c->image, 1, e) || meta_int(f, "channels", &c->channels, 1, e) ||
        meta_int(f, "patch", &c->patch, 1, e) || meta_int(f, "width", &c->width, 1, e) ||
        meta_int(f, "depth", &c->depth, 1, e) || meta_int(f, "heads", &c->heads, 1, e) ||
        meta_int(f, "head_width", &c->head_width, 1, e) ||
        meta_int(f, "head_depth", &c->head_depth, 1, e))
        return -1;
    const char *eps = aim_st_meta(f, "norm_eps");
    if (eps) {
        char *end;
        double v = strtod(eps, &end);
        if (end == eps || *end || !(v > 0 && v < 1))
            return aim_errf(e, "%s: metadata \"norm_eps\" = \"%s\" is not a number in (0, 1)",
                            f->path, eps);
        c->norm_eps = (float)v;
    }
    int nm, ns;
    if (meta_floats(f, "mean", c->mean, 4, &nm, e) || meta_floats(f, "std", c->std, 4, &ns, e))
        return -1;
    if (nm != ns)
        return aim_errf(e, "%s: metadata has %d mean but %d std values", f->path, nm, ns);
    c->nmean = nm;
    if (aim_config_validate(c, e) != 0)
        return aim_err_prefix(e, "%s", f->path);
    return 0;
}

/* Tensor `name` of f if it is F32 with the shape of table entry t. */
static const aim_st_tensor *check_param(const aim_st_file *f, const aim_param *t,
                                        const char *name, aim_err *e)
{
    const aim_st_tensor *s = aim_st_find(f, name);
    if (!s) {
        aim_errf(e, "%s: tensor \"%s\" is missing", f->path, name);
        return NULL;
    }
    if (s->dtype != AIM_F32) {
        aim_errf(e, "%s: tensor \"%s\" is %s, expected F32", f->path, name,
                 aim_dtype_name(s->dtype));
        return NULL;
    }
    int same = s->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++)
        same = s->shape[d] == t->shape[d];
    if (!same) {
        char want[96] = "", got[96] = "";
        for (int d = 0; d < t->ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "",
                     (long long)t->shape[d]);
        for (int d = 0; d < s->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "",
                     (long long)s->shape[d]);
        aim_errf(e, "%s: tensor \"%s\" has shape [%s], the config needs [%s]", f->path, name,
                 got, want);
        return NULL;
    }
    return s;
}

int aim_st_check_params(const aim_st_file *f, const aim_params *p, const char *prefix,
                        aim_err *e)
{
    for (int i = 0; i < p->n; i++) {
        char name[AIM_PARAM_NAME_MAX + 32];
        snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", p->t[i].name);
        if (!check_param(f, &p->t[i], name, e))
            return -1;
    }
    return 0;
}

/* Copy tensor `name` of the table into dst after checking dtype and shape. */
int aim_st_copy_param(const aim_st_file *f, const aim_param *t, const char *name, float *dst,
                      aim_err *e)
{
    const aim_st_tensor *s = check_param(f, t, name, e);
    if (!s)
        return -1;
    memcpy(dst, aim_st_data(f, s), t->numel * sizeof(float));
    return 0;
}

int aim_st_copy_params(const aim_st_file *f, aim_params *p, aim_err *e)
{
    for (int i = 0; i < p->n; i++)
        if (aim_st_copy_param(f, &p->t[i], p->t[i].name, p->data + p->t[i].offset, e) != 0)
            return -1;
    return 0;
}

aim_model *aim_model_from_st(const aim_st_file *f, aim_err *e)
{
    aim_config c;
    if (aim_config_from_meta(f, &c, e) != 0)
        return NULL;
    /* every tensor is checked against the config before any slab is
     * allocated: metadata alone (a few bytes) cannot size an allocation */
    aim_model *m = model_shell(&c, e);
    if (!m) {
        aim_err_prefix(e, "%s", f->path);
        return NULL;
    }
    aim_params *p = &m->p;
    for (int i = 0; i < f->ntensors; i++) {
        const char *name = f->tensors[i].name;
        /* a probe head saved with the trunk is not part of the model,
         * checkpoints carry optimizer state and LoRA adapters are checked by
         * lora_check_st; anything else is a mistake worth reporting */
        if (!strncmp(name, "head.", 5) || !strncmp(name, "optimizer.", 10) ||
            strstr(name, ".lora_") || aim_params_find(p, name) >= 0)
            continue;
        aim_errf(e, "%s: unexpected tensor \"%s\" (not an AIM.md weight name)", f->path, name);
        goto fail;
    }
    if (lora_check_st(m, f, e) != 0 || aim_st_check_params(f, p, NULL, e) != 0)
        goto fail;
    if (model_alloc(m, e) != 0) {
        aim_err_prefix(e, "%s", f->path);
        goto fail;
    }
    if (aim_st_copy_params(f, p, e) != 0)
        goto fail;
    if (lora_from_st(m, f, e) < 0)
        goto fail;
    return m;
fail:
    aim_model_free(m);
    return NULL;
}

int aim_model_check_st(const aim_st_file *f, aim_config *c, aim_err *e)
{
    if (aim_config_from_meta(f, c, e) != 0)
        return -1;
    aim_model *m = model_shell(c, e);
    if (!m)
        return aim_err_prefix(e, "%s", f->path);
    int rc = aim_st_check_params(f, &m->p, NULL, e);
    aim_model_free(m);
    return rc;
}

aim_model *aim_model_load(const char *path, aim_err *e)
{
    aim_st_file *f = aim_st_open(path, e);
    if (!f)
        return NULL;
    aim_model *m = aim_model_from_st(f, e);
    aim_st_close(f);
    return m;
}
