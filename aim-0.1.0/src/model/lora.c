/*
 * lora.c - LoRA adapters on the trunk's attention (shared/AIM.md, loralib
 * conventions): q and v of qkv (lora_A [2r,D], lora_B [2D,r]) and proj
 * (lora_A [r,D], lora_B [D,r]), output += (alpha/r) B (A x). The adapters
 * are rows of the model's parameter table (flag AIM_P_LORA), so the
 * optimizer, gradients, freezing, saving and the Lua layer need nothing
 * special; vit.c adds their terms in the forward and backward passes.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "aim/io.h"
#include "model/model_internal.h"

static int add4(aim_params *p, int l, const char *what, int64_t d0, int64_t d1)
{
    char name[AIM_PARAM_NAME_MAX];
    snprintf(name, sizeof name, "trunk.blocks.%d.attn.%s", l, what);
    int64_t shape[2] = {d0, d1};
    return aim_params_add(p, name, 2, shape, AIM_P_LORA);
}

int aim_model_lora_add(aim_model *m, int rank, float alpha, const int *blocks, int nblocks,
                       uint64_t seed, aim_err *e)
{
    if (m->lora_rank)
        return aim_errf(e, "lora: the model already has adapters (rank %d)", m->lora_rank);
    if (rank < 1 || rank > m->D)
        return aim_errf(e, "lora: rank %d is not in 1..%d (the width)", rank, m->D);
    if (!(alpha > 0) || !isfinite(alpha))
        return aim_errf(e, "lora: alpha must be a positive number");
    if (nblocks < 0 || nblocks > m->L)
        return aim_errf(e, "lora: %d blocks listed, the trunk has %d", nblocks, m->L);
    unsigned char *on = aim_xcalloc((size_t)m->L, 1);
    for (int i = 0; i < nblocks; i++) {
        if (blocks[i] < 1 || blocks[i] > m->L) {
            free(on);
            return aim_errf(e, "lora: block %d is not in 1..%d", blocks[i], m->L);
        }
        on[blocks[i] - 1] = 1;
    }
    if (nblocks == 0)
        memset(on, 1, (size_t)m->L);
    aim_params *p = &m->p;
    size_t old_total = p->total;
    int old_n = p->n;
    const int D = m->D, r = rank;
    for (int l = 0; l < m->L; l++) {
        if (!on[l])
            continue;
        block_idx *b = &m->blk[l];
        b->qa = add4(p, l, "qkv.lora_A", 2 * r, D);
        b->qb = add4(p, l, "qkv.lora_B", 2 * D, r);
        b->pa = add4(p, l, "proj.lora_A", r, D);
        b->pb = add4(p, l, "proj.lora_B", D, r);
    }
    free(on);
    if (aim_params_try_grow(p, old_total, e) != 0) {
        /* the table as it was: no adapter rows */
        p->n = old_n;
        p->total = old_total;
        for (int l = 0; l < m->L; l++)
            m->blk[l].qa = m->blk[l].qb = m->blk[l].pa = m->blk[l].pb = -1;
        return aim_err_prefix(e, "lora");
    }
    /* loralib: A kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), B = 0 */
    const double bound = 1.0 / sqrt((double)D);
    for (int l = 0; l < m->L; l++) {
        const block_idx *b = &m->blk[l];
        if (b->qa < 0)
            continue;
        const int idx[2] = {b->qa, b->pa};
        for (int k = 0; k < 2; k++) {
            const aim_param *t = &p->t[idx[k]];
            aim_rng rng;
            aim_rng_seed(&rng, aim_hash64(seed ^ aim_hash64(0x10a0u + (uint64_t)idx[k])));
            float *w = p->data + t->offset;
            for (size_t j = 0; j < t->numel; j++)
                w[j] = (float)((2 * aim_rng_uniform(&rng) - 1) * bound);
        }
    }
    m->lora_rank = r;
    m->lora_alpha = alpha;
    m->lora_scale = alpha / (float)r;
    m->lora_merged = 0;
    /* the activation layout and the private gradient slabs change size */
    free(m->act_slab);
    m->act_slab = NULL;
    m->cap_B = 0;
    for (int i = 0; i < m->nslot; i++)
        free(m->gslot[i]);
    free(m->gslot);
    m->gslot = NULL;
    m->nslot = 0;
    m->have_forward = 0;
    return 0;
}

void aim_model_lora_freeze_trunk(aim_model *m)
{
    aim_params *p = &m->p;
    for (int i = 0; i < p->n; i++) {
        if (p->t[i].flags & AIM_P_LORA)
            p->t[i].flags &= ~(unsigned)AIM_P_FROZEN;
        else
            p->t[i].flags |= AIM_P_FROZEN;
    }
    m->have_forward = 0;
}

/* W_qkv[q] += sign s Bq Aq, W_qkv[v] += sign s Bv Av, W_proj += sign s Bp Ap
 * for one block, into the weights wqkv / wproj (the model's or a copy) */
static void fold(const aim_model *m, const block_idx *b, float sign, float *wqkv, float *wproj)
{
    const int D = m->D, r = m->lora_rank;
    const float s = sign * m->lora_scale;
    const float *A = W(m, b->qa), *B = W(m, b->qb);
    for (int h = 0; h < 2; h++) /* q rows 0..D-1, v rows 2D..3D-1 */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, r, s, B + (size_t)h * D * r,
                    r, A + (size_t)h * r * D, D, 1.0f, wqkv + (size_t)2 * h * D * D, D);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, r, s, W(m, b->pb), r,
                W(m, b->pa), D, 1.0f, wproj, D);
}

static int merge(aim_model *m, int into, aim_err *e)
{
    if (!m->lora_rank)
        return aim_errf(e, "lora: the model has no adapters");
    if (m->lora_merged == into)
        return aim_errf(e, "lora: the adapters are %s merged", into ? "already" : "not");
    for (int l = 0; l < m->L; l++) {
        const block_idx *b = &m->blk[l];
        if (b->qa >= 0)
            fold(m, b, into ? 1.0f : -1.0f, W(m, b->qkv), W(m, b->proj));
    }
    m->lora_merged = into;
    m->have_forward = 0;
    return 0;
}

int aim_model_lora_merge(aim_model *m, aim_err *e)
{
    return merge(m, 1, e);
}

int aim_model_lora_unmerge(aim_model *m, aim_err *e)
{
    return merge(m, 0, e);
}

void aim_model_lora_info(const aim_model *m, aim_lora_info *li)
{
    memset(li, 0, sizeof *li);
    li->rank = m->lora_rank;
    li->alpha = m->lora_alpha;
    li->merged = m->lora_merged;
    for (int l = 0; l < m->L; l++) {
        const block_idx *b = &m->blk[l];
        if (b->qa < 0)
            continue;
        if (li->nblocks < 64)
            li->blocks[li->nblocks] = l + 1;
        li->nblocks++;
        li->params += m->p.t[b->qa].numel + m->p.t[b->qb].numel + m->p.t[b->pa].numel +
                      m->p.t[b->pb].numel;
    }
}

/* ------------------------------------------------------------ files */

int lora_meta(const aim_model *m, char vals[2][32], const char **kv)
{
    if (!m->lora_rank)
        return 0;
    snprintf(vals[0], sizeof vals[0], "%d", m->lora_rank);
    snprintf(vals[1], sizeof vals[1], "%.9g", m->lora_alpha);
    kv[0] = "lora_rank";
    kv[1] = vals[0];
    kv[2] = "lora_alpha";
    kv[3] = vals[1];
    return 2;
}

float *lora_unmerged_copy(const aim_model *m, int idx)
{
    if (!m->lora_merged)
        return NULL;
    for (int l = 0; l < m->L; l++) {
        const block_idx *b = &m->blk[l];
        if (b->qa < 0 || (idx != b->qkv && idx != b->proj))
            continue;
        const aim_param *t = &m->p.t[idx];
        float *c = aim_xmalloc(t->numel * sizeof(float));
        memcpy(c, m->p.data + t->offset, t->numel * sizeof(float));
        if (idx == b->qkv) {
            float *scratch = aim_xmalloc((size_t)m->D * m->D * sizeof(float));
            fold(m, b, -1.0f, c, scratch); /* proj's part lands in scratch */
            free(scratch);
        } else {
            float *scratch = aim_xmalloc((size_t)3 * m->D * m->D * sizeof(float));
            fold(m, b, -1.0f, scratch, c);
            free(scratch);
        }
        return c;
    }
    return NULL;
}

int aim_model_save_lora(const aim_model *m, const char *path, aim_err *e)
{
    if (!m->lora_rank)
        return aim_errf(e, "lora: the model has no adapters to save");
    const char *bad = aim_params_nonfinite(&m->p);
    if (bad)
        return aim_errf(e, "%s: not written: tensor \"%s\" holds a NaN or infinite value",
                        path, bad);
    const aim_params *p = &m->p;
    aim_st_entry *ent = aim_xcalloc((size_t)p->n, sizeof *ent);
    int n = 0;
    for (int i = 0; i < p->n; i++) {
        if (!(p->t[i].flags & AIM_P_LORA))
            continue;
        ent[n].name = p->t[i].name;
        ent[n].dtype = AIM_F32;
        ent[n].ndim = p->t[i].ndim;
        for (int d = 0; d < p->t[i].ndim; d++)
            ent[n].shape[d] = p->t[i].shape[d];
        ent[n].data = p->data + p->t[i].offset;
        n++;
    }
    char vals[AIM_CONFIG_META_MAX][160], lv[2][32];
    const char *kv[2 * AIM_CONFIG_META_MAX + 4];
    int nm = aim_config_to_meta(&m->cfg, vals, kv);
    nm += lora_meta(m, lv, kv + 2 * nm);
    int rc = aim_st_write(path, ent, n, kv, nm, e);
    free(ent);
    return rc;
}

/* The adapted blocks and the rank of file f: every block with a
 * trunk.blocks.{i}.attn.qkv.lora_A. Returns the number of blocks (0: none),
 * -1 on an inconsistent file. */
static int file_lora(const aim_st_file *f, int L, int *blocks, int *rank, aim_err *e)
{
    int n = 0;
    *rank = 0;
    for (int i = 0; i < f->ntensors; i++) {
        const char *name = f->tensors[i].name;
        int l, len = 0;
        if (sscanf(name, "trunk.blocks.%d.attn.qkv.lora_A%n", &l, &len) != 1 || name[len])
            continue;
        const aim_st_tensor *t = &f->tensors[i];
        if (l < 0 || l >= L)
            return aim_errf(e, "%s: tensor \"%s\" is for a block the trunk (depth %d) lacks",
                            f->path, name, L);
        if (t->ndim != 2 || t->shape[0] < 2 || t->shape[0] % 2 || t->shape[0] > INT32_MAX)
            return aim_errf(e, "%s: tensor \"%s\" is not a [2r, D] LoRA matrix", f->path, name);
        int r = (int)(t->shape[0] / 2);
        if (*rank && r != *rank)
            return aim_errf(e, "%s: LoRA ranks differ between blocks (%d and %d)", f->path,
                            *rank, r);
        *rank = r;
        blocks[n++] = l + 1;
    }
    const char *mr = aim_st_meta(f, "lora_rank");
    if (n && mr && atoi(mr) != *rank)
        return aim_errf(e, "%s: metadata lora_rank = %s but the adapters have rank %d", f->path,
                        mr, *rank);
    return n;
}

static int file_alpha(const aim_st_file *f, int rank, float *alpha, aim_err *e)
{
    const char *s = aim_st_meta(f, "lora_alpha");
    if (!s) {
        *alpha = (float)rank; /* scale 1 */
        return 0;
    }
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0) || !isfinite(v))
        return aim_errf(e, "%s: metadata \"lora_alpha\" = \"%s\" is not a positive number",
                        f->path, s);
    *alpha = (float)v;
    return 0;
}

/* Every *.lora_* tensor of f must be one of the four of an adapted block,
 * F32 with the shape rank r gives: checked before the model changes. */
static int check_lora_tensors(const aim_st_file *f, const aim_model *m, const int *blocks,
                              int n, int r, aim_err *e)
{
    const int64_t D = m->D;
    for (int i = 0; i < f->ntensors; i++) {
        const aim_st_tensor *t = &f->tensors[i];
        if (!strstr(t->name, ".lora_"))
            continue;
        int l = -1, len = 0;
        char what[32] = "";
        if (sscanf(t->name, "trunk.blocks.%d.attn.%31[a-z_.AB]%n", &l, what, &len) != 2 ||
            t->name[len])
            return aim_errf(e, "%s: unexpected tensor \"%s\" (not an AIM.md LoRA name)",
                            f->path, t->name);
        int in = 0;
        for (int k = 0; k < n; k++)
            in |= blocks[k] == l + 1;
        int64_t d0, d1;
        if (!strcmp(what, "qkv.lora_A"))
            d0 = 2 * r, d1 = D;
        else if (!strcmp(what, "qkv.lora_B"))
            d0 = 2 * D, d1 = r;
        else if (!strcmp(what, "proj.lora_A"))
            d0 = r, d1 = D;
        else if (!strcmp(what, "proj.lora_B"))
            d0 = D, d1 = r;
        else
            return aim_errf(e, "%s: unexpected tensor \"%s\" (not an AIM.md LoRA name)",
                            f->path, t->name);
        if (!in)
            return aim_errf(e, "%s: tensor \"%s\" has no qkv.lora_A beside it", f->path,
                            t->name);
        if (t->dtype != AIM_F32 || t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
            return aim_errf(e, "%s: tensor \"%s\" must be F32 [%lld, %lld]", f->path, t->name,
                            (long long)d0, (long long)d1);
    }
    static const char *const four[4] = {"qkv.lora_A", "qkv.lora_B", "proj.lora_A",
                                        "proj.lora_B"};
    for (int k = 0; k < n; k++)
        for (int j = 0; j < 4; j++) {
            char name[AIM_PARAM_NAME_MAX];
            snprintf(name, sizeof name, "trunk.blocks.%d.attn.%s", blocks[k] - 1, four[j]);
            if (!aim_st_find(f, name))
                return aim_errf(e, "%s: tensor \"%s\" is missing", f->path, name);
        }
    return 0;
}

/* The adapters of f checked against m (names, shapes, rank, alpha), nothing
 * changed: the blocks (n returned, 0 = none, -1 on error), rank and alpha */
static int lora_check(const aim_model *m, const aim_st_file *f, int *blocks, int *rank,
                      float *alpha, aim_err *e)
{
    if (m->L > 1024)
        return aim_errf(e, "%s: too many blocks", f->path);
    int n = file_lora(f, m->L, blocks, rank, e);
    if (n <= 0) {
        if (n == 0 && check_lora_tensors(f, m, blocks, 0, 0, e) != 0)
            return -1;
        return n;
    }
    *alpha = 1.0f;
    if (file_alpha(f, *rank, alpha, e) != 0 || check_lora_tensors(f, m, blocks, n, *rank, e))
        return -1;
    if (*rank > m->D)
        return aim_errf(e, "%s: LoRA rank %d exceeds the width %d", f->path, *rank, m->D);
    return n;
}

int lora_check_st(const aim_model *m, const aim_st_file *f, aim_err *e)
{
    int blocks[1024], rank;
    float alpha;
    return lora_check(m, f, blocks, &rank, &alpha, e) < 0 ? -1 : 0;
}

int lora_from_st(aim_model *m, const aim_st_file *f, aim_err *e)
{
    int blocks[1024], rank;
    float alpha = 1.0f;
    int n = lora_check(m, f, blocks, &rank, &alpha, e);
    if (n <= 0)
        return n;
    if (aim_model_lora_add(m, rank, alpha, blocks, n, 0, e) != 0)
        return aim_err_prefix(e, "%s", f->path);
    const aim_params *p = &m->p;
    for (int i = 0; i < p->n; i++)
        if ((p->t[i].flags & AIM_P_LORA) &&
            aim_st_copy_param(f, &p->t[i], p->t[i].name, p->data + p->t[i].offset, e) != 0)
            return -1;
    return n;
}

int aim_model_load_lora(aim_model *m, const char *path, aim_err *e)
{
    aim_st_file *f = aim_st_open(path, e);
    if (!f)
        return -1;
    int rc = -1;
    aim_config c;
    if (aim_config_from_meta(f, &c, e) != 0)
        goto done;
    const aim_config *mc = &m->cfg;
    if (c.image != mc->image || c.channels != mc->channels || c.patch != mc->patch ||
        c.width != mc->width || c.depth != mc->depth || c.heads != mc->heads) {
        aim_errf(e, "%s: the adapters are for a %dx%dx%d patch %d D=%d L=%d heads=%d trunk, "
                    "not this one (%dx%dx%d patch %d D=%d L=%d heads=%d)",
                 path, c.channels, c.image, c.image, c.patch, c.width, c.depth, c.heads,
                 mc->channels, mc->image, mc->image, mc->patch, mc->width, mc->depth,
                 mc->heads);
        goto done;
    }
    int n = lora_from_st(m, f, e);
    if (n == 0)
        aim_errf(e, "%s: no LoRA adapters (trunk.blocks.*.attn.qkv.lora_A) in the file", path);
    rc = n > 0 ? 0 : -1;
done:
    aim_st_close(f);
    return rc;
}
