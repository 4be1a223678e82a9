/*
 * safetensors.c - reader and writer for the safetensors format: a u64
 * little-endian header length N, N bytes of JSON, then the data section.
 *
 * The JSON header is read by the strict reader of aim/json.h in two passes:
 * the first checks the syntax of the whole header (strings, escapes, UTF-8,
 * numbers, nesting depth) without allocating; the second walks the schema
 * (tensor entries and __metadata__) and builds the tensor table. Every offset
 * is then checked against the real size of the data section before any data
 * is allocated or read. Tensor data is read and written as it lies in
 * memory, so this file only builds on little-endian hosts.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "aim/core.h"
#include "aim/io.h"
#include "aim/json.h"
#include "aim/text.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c stores tensor data as it lies in memory: little-endian hosts only"
#endif

#define ST_MAX_HEADER 100000000ULL /* 100 MB, as in the official library */
#define ST_SHOW 72                 /* buffer for a name shown in a message */
#define ST_NUM_SHOW 32             /* characters of a number shown in a message */

/* ------------------------------------------------------------- messages */

/* "[2, 3]" */
static const char *fmt_shape(char *buf, size_t cap, const int64_t *shape, int ndim)
{
    size_t n = 0;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return buf;
}

/* A schema error (valid JSON, wrong content). */
__attribute__((format(printf, 2, 3)))
static int serr(aim_jr *c, const char *fmt, ...)
{
    char msg[AIM_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return aim_errf(c->e, "%s: %s", c->name, msg);
}

/* ---------------------------------------------------------- schema pass */


static aim_dtype dtype_from_name(const char *s)
{
    static const aim_dtype all[] = {AIM_F64, AIM_F32, AIM_F16, AIM_BF16, AIM_I64,
                                    AIM_I32, AIM_I16, AIM_I8,  AIM_U8,   AIM_U16,
                                    AIM_U32, AIM_U64, AIM_BOOL};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        if (!strcmp(aim_dtype_name(all[k]), s))
            return all[k];
    return AIM_DTYPE_NONE;
}

/* One non-negative integer inside tensor tn's field `what`. */
static int s_uint(aim_jr *c, const char *tn, const char *what, int64_t *out)
{
    int ch = aim_jr_peek(c), kind = 0;
    int64_t v = 0;
    if (ch != '-' && !(ch >= '0' && ch <= '9'))
        return serr(c, "tensor '%s': %s must hold integers, found %s", tn, what, aim_jr_kind(c));
    size_t at = c->i;
    if (aim_jr_number(c, &kind, &v))
        return -1;
    size_t len = c->i - at;
    int show_len = len > ST_NUM_SHOW ? ST_NUM_SHOW : (int)len;
    const char *txt = (const char *)c->p + at, *more = len > ST_NUM_SHOW ? "..." : "";
    if (kind == AIM_JR_FRAC)
        return serr(c, "tensor '%s': %s holds %.*s%s, which is not an integer", tn, what,
                    show_len, txt, more);
    if (kind == AIM_JR_RANGE)
        return serr(c, "tensor '%s': %s holds %.*s%s, which is out of range (more than 2^63-1)",
                    tn, what, show_len, txt, more);
    if (v < 0)
        return serr(c, "tensor '%s': %s holds a negative integer (%lld)", tn, what, (long long)v);
    *out = v;
    return 0;
}

/* An array of non-negative integers; the first `max` land in vals, *count
 * says how many there were. */
static int s_uint_array(aim_jr *c, const char *tn, const char *what, int64_t *vals, int max,
                        int *count)
{
    int n = 0;
    if (aim_jr_peek(c) != '[')
        return serr(c, "tensor '%s': %s must be an array of integers, found %s", tn, what,
                    aim_jr_kind(c));
    c->i++;
    if (aim_jr_peek(c) == ']') {
        c->i++;
        *count = 0;
        return 0;
    }
    for (;;) {
        int64_t v = 0;
        if (s_uint(c, tn, what, &v))
            return -1;
        if (n < max)
            vals[n] = v;
        if (n < INT_MAX)
            n++;
        int r = aim_jr_next(c, ']');
        if (r < 0)
            return -1;
        if (r == 0)
            break;
    }
    *count = n;
    return 0;
}

/* One tensor entry {"dtype", "shape", "data_offsets"} into t (whose name is
 * set), checked against the data section's length. */
static int s_entry(aim_jr *c, aim_st_tensor *t, uint64_t data_len, aim_sbuf *tmp)
{
    char tn[ST_SHOW], fb[ST_SHOW], sb[200];
    int have_dtype = 0, have_shape = 0, have_off = 0, cnt = 0;
    int64_t off[2] = {0, 0};
    aim_text_show(tn, sizeof tn, t->name);
    if (aim_jr_peek(c) != '{')
        return serr(c, "tensor '%s': entry must be an object, found %s", tn, aim_jr_kind(c));
    c->i++;
    if (aim_jr_peek(c) == '}')
        c->i++;
    else {
        for (;;) {
            if (aim_jr_string(c, tmp) || aim_jr_expect(c, ':'))
                return -1;
            if (!strcmp(tmp->p, "dtype")) {
                if (have_dtype++)
                    return serr(c, "tensor '%s': duplicate field 'dtype'", tn);
                if (aim_jr_peek(c) != '"')
                    return serr(c, "tensor '%s': dtype must be a string, found %s", tn,
                                aim_jr_kind(c));
                if (aim_jr_string(c, tmp))
                    return -1;
                t->dtype = dtype_from_name(tmp->p);
                if (t->dtype == AIM_DTYPE_NONE)
                    return serr(c, "tensor '%s': unsupported dtype '%s'", tn,
                                aim_text_show(fb, sizeof fb, tmp->p));
            } else if (!strcmp(tmp->p, "shape")) {
                if (have_shape++)
                    return serr(c, "tensor '%s': duplicate field 'shape'", tn);
                if (s_uint_array(c, tn, "shape", t->shape, AIM_MAX_DIMS, &cnt))
                    return -1;
                if (cnt > AIM_MAX_DIMS)
                    return serr(c, "tensor '%s': shape has %d dimensions (at most %d are supported)",
                                tn, cnt, AIM_MAX_DIMS);
                t->ndim = cnt;
            } else if (!strcmp(tmp->p, "data_offsets")) {
                if (have_off++)
                    return serr(c, "tensor '%s': duplicate field 'data_offsets'", tn);
                if (s_uint_array(c, tn, "data_offsets", off, 2, &cnt))
                    return -1;
                if (cnt != 2)
                    return serr(c, "tensor '%s': data_offsets must hold exactly two integers, found %d",
                                tn, cnt);
            } else {
                return serr(c, "tensor '%s': unknown field '%s'", tn,
                            aim_text_show(fb, sizeof fb, tmp->p));
            }
            int r = aim_jr_next(c, '}');
            if (r < 0)
                return -1;
            if (r == 0)
                break;
        }
    }
    if (!have_dtype)
        return serr(c, "tensor '%s': missing field 'dtype'", tn);
    if (!have_shape)
        return serr(c, "tensor '%s': missing field 'shape'", tn);
    if (!have_off)
        return serr(c, "tensor '%s': missing field 'data_offsets'", tn);

    uint64_t numel, b = (uint64_t)off[0], e = (uint64_t)off[1];
    fmt_shape(sb, sizeof sb, t->shape, t->ndim);
    if (aim_shape_numel(t->shape, t->ndim, AIM_MAX_ALLOC, &numel))
        return serr(c, "tensor '%s': shape %s is too large (more than %llu elements)", tn, sb,
                    (unsigned long long)AIM_MAX_ALLOC);
    uint64_t nbytes = numel * aim_dtype_size(t->dtype);
    if (b > e)
        return serr(c, "tensor '%s': data_offsets [%llu, %llu] have begin after end", tn,
                    (unsigned long long)b, (unsigned long long)e);
    if (e > data_len)
        return serr(c, "tensor '%s': data_offsets [%llu, %llu] extend beyond the data section (%llu bytes)",
                    tn, (unsigned long long)b, (unsigned long long)e,
                    (unsigned long long)data_len);
    if (e - b != nbytes)
        return serr(c, "tensor '%s' data_offsets [%llu, %llu] do not match %s %s (%llu bytes)", tn,
                    (unsigned long long)b, (unsigned long long)e, aim_dtype_name(t->dtype), sb,
                    (unsigned long long)nbytes);
    t->begin = b;
    t->end = e;
    return 0;
}

/* The __metadata__ object: string keys to string values. */
static int s_meta(aim_jr *c, aim_st_file *f, aim_sbuf *key, aim_sbuf *val)
{
    char kb[ST_SHOW];
    int cap = 0;
    if (aim_jr_peek(c) != '{')
        return serr(c, "__metadata__ must be an object of strings, found %s", aim_jr_kind(c));
    c->i++;
    if (aim_jr_peek(c) == '}') {
        c->i++;
        return 0;
    }
    for (;;) {
        if (aim_jr_string(c, key) || aim_jr_expect(c, ':'))
            return -1;
        if (aim_jr_peek(c) != '"')
            return serr(c, "__metadata__ value for key '%s' is not a string (found %s)",
                        aim_text_show(kb, sizeof kb, key->p), aim_jr_kind(c));
        if (aim_jr_string(c, val))
            return -1;
        if (f->nmeta == cap) {
            if (cap >= INT_MAX / 2)
                return serr(c, "__metadata__ has too many keys");
            cap = cap ? 2 * cap : 8;
            f->meta_keys = aim_xrealloc(f->meta_keys, (size_t)cap * sizeof *f->meta_keys);
            f->meta_vals = aim_xrealloc(f->meta_vals, (size_t)cap * sizeof *f->meta_vals);
        }
        f->meta_keys[f->nmeta] = aim_sb_strdup(key);
        f->meta_vals[f->nmeta] = aim_sb_strdup(val);
        f->nmeta++;
        int r = aim_jr_next(c, '}');
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
    }
}

/* The top-level object: tensors and __metadata__, in header order. */
static int s_top(aim_jr *c, aim_st_file *f)
{
    aim_sbuf key = {0}, val = {0};
    int rc = -1, cap = 0, seen_meta = 0;
    c->i = 0;
    if (aim_jr_peek(c) != '{') {
        serr(c, "header is not a JSON object (found %s)", aim_jr_kind(c));
        goto out;
    }
    c->i++;
    if (aim_jr_peek(c) == '}') {
        rc = 0;
        goto out;
    }
    for (;;) {
        if (aim_jr_string(c, &key) || aim_jr_expect(c, ':'))
            goto out;
        if (!strcmp(key.p, "__metadata__")) {
            if (seen_meta++) {
                serr(c, "duplicate key '__metadata__'");
                goto out;
            }
            if (s_meta(c, f, &key, &val))
                goto out;
        } else {
            if (key.n == 0) {
                serr(c, "empty tensor name");
                goto out;
            }
            if (f->ntensors == cap) {
                if (cap >= INT_MAX / 2) {
                    serr(c, "too many tensors");
                    goto out;
                }
                cap = cap ? 2 * cap : 16;
                f->tensors = aim_xrealloc(f->tensors, (size_t)cap * sizeof *f->tensors);
            }
            aim_st_tensor *t = &f->tensors[f->ntensors++];
            memset(t, 0, sizeof *t);
            t->name = aim_sb_strdup(&key);
            if (s_entry(c, t, f->data_len, &val))
                goto out;
        }
        int r = aim_jr_next(c, '}');
        if (r < 0)
            goto out;
        if (r == 0)
            break;
    }
    rc = 0;
out:
    aim_sb_free(&key);
    aim_sb_free(&val);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A name that occurs twice among names[0..n) (which get sorted), or NULL. */
static const char *find_dup(const char **names, size_t n)
{
    if (n < 2)
        return NULL;
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i]))
            return names[i];
    return NULL;
}

static int cmp_offset(const void *a, const void *b)
{
    const aim_st_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Unique names and keys; tensors sorted by offset must tile the data section
 * exactly: no overlap, no hole, nothing after the last one. */
static int check_layout(aim_jr *c, aim_st_file *f)
{
    char na[ST_SHOW], nb[ST_SHOW];
    size_t nt = (size_t)f->ntensors, nm = (size_t)f->nmeta;
    const char **names = aim_xmalloc((nt > nm ? nt : nm) * sizeof *names + 1);
    for (size_t i = 0; i < nt; i++)
        names[i] = f->tensors[i].name;
    const char *dup = find_dup(names, nt);
    if (dup)
        serr(c, "duplicate tensor name '%s'", aim_text_show(na, sizeof na, dup));
    if (!dup && nm) {
        memcpy(names, f->meta_keys, nm * sizeof *names);
        dup = find_dup(names, nm);
        if (dup)
            serr(c, "duplicate __metadata__ key '%s'", aim_text_show(na, sizeof na, dup));
    }
    free(names);
    if (dup)
        return -1;

    if (nt > 1)
        qsort(f->tensors, nt, sizeof *f->tensors, cmp_offset);
    uint64_t pos = 0;
    for (size_t i = 0; i < nt; i++) {
        const aim_st_tensor *t = &f->tensors[i];
        if (t->begin < pos) {
            const aim_st_tensor *p = &f->tensors[i - 1];
            return serr(c, "tensor '%s' data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]",
                        aim_text_show(na, sizeof na, t->name), (unsigned long long)t->begin,
                        (unsigned long long)t->end, aim_text_show(nb, sizeof nb, p->name),
                        (unsigned long long)p->begin, (unsigned long long)p->end);
        }
        if (t->begin > pos)
            return serr(c, "bytes [%llu, %llu) of the data section belong to no tensor (a hole before tensor '%s')",
                        (unsigned long long)pos, (unsigned long long)t->begin,
                        aim_text_show(na, sizeof na, t->name));
        pos = t->end;
    }
    if (pos != f->data_len)
        return serr(c, "%llu trailing bytes after the last tensor (tensors cover %llu of %llu data bytes)",
                    (unsigned long long)(f->data_len - pos), (unsigned long long)pos,
                    (unsigned long long)f->data_len);
    return 0;
}

/* Parse and validate a JSON header of n bytes for a data section of data_len
 * bytes. The result has no data yet. */
static aim_st_file *parse_header(const uint8_t *hdr, size_t n, uint64_t data_len,
                                 const char *name, aim_err *e)
{
    aim_jr c;
    aim_jr_init(&c, hdr, n, name, "header", e);
    if (n == 0) {
        aim_errf(e, "%s: the JSON header is empty (header length 0)", name);
        return NULL;
    }
    if (aim_jr_check(&c, " "))
        return NULL;
    aim_st_file *f = aim_xcalloc(1, sizeof *f);
    f->path = aim_xstrdup(name);
    f->header_len = n;
    f->data_len = data_len;
    if (s_top(&c, f) || check_layout(&c, f)) {
        aim_st_close(f);
        return NULL;
    }
    return f;
}

/* The 8-byte prefix of a file of file_size bytes: the header length must fit
 * the limit and the file. b is only read when file_size >= 8. */
static int check_prefix(const uint8_t *b, uint64_t file_size, const char *name,
                        uint64_t *hlen, aim_err *e)
{
    if (file_size < 8)
        return aim_errf(e, "%s: file is too short for safetensors (%llu bytes; the header length alone takes 8)",
                        name, (unsigned long long)file_size);
    uint64_t n = 0;
    for (int k = 7; k >= 0; k--)
        n = n << 8 | b[k];
    if (n > ST_MAX_HEADER)
        return aim_errf(e, "%s: header length %llu exceeds the 100 MB limit", name,
                        (unsigned long long)n);
    if (n > file_size - 8)
        return aim_errf(e, "%s: header length %llu runs past the end of the file (%llu bytes)",
                        name, (unsigned long long)n, (unsigned long long)file_size);
    *hlen = n;
    return 0;
}

/* -------------------------------------------------------------- reading */

aim_st_file *aim_st_parse(const uint8_t *buf, size_t len, const char *name, aim_err *e)
{
    uint64_t hlen = 0;
    if (!name)
        name = "<memory>";
    if (!buf && len) {
        aim_errf(e, "%s: no buffer", name);
        return NULL;
    }
    if (check_prefix(buf, len, name, &hlen, e))
        return NULL;
    aim_st_file *f = parse_header(buf + 8, (size_t)hlen, len - 8 - hlen, name, e);
    if (!f)
        return NULL;
    f->data = aim_try_malloc((size_t)f->data_len);
    if (!f->data) {
        aim_errf(e, "%s: cannot allocate %llu bytes for the data section", name,
                 (unsigned long long)f->data_len);
        aim_st_close(f);
        return NULL;
    }
    if (f->data_len)
        memcpy(f->data, buf + 8 + hlen, (size_t)f->data_len);
    return f;
}

/* Read the prefix and the header, validate them against the file's size, and
 * with_data, read the data section into its own buffer. */
static aim_st_file *st_load(const char *path, int with_data, aim_err *e)
{
    uint8_t b8[8], *hdr = NULL;
    uint64_t hlen = 0;
    aim_st_file *f = NULL;
    int64_t size = aim_file_size(path, e);
    if (size < 0)
        return NULL;
    if (size < 8) {
        check_prefix(NULL, (uint64_t)size, path, &hlen, e);
        return NULL;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        aim_errf(e, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fread(b8, 1, 8, fp) != 8) {
        aim_errf(e, "%s: read error in the header length", path);
        goto out;
    }
    if (check_prefix(b8, (uint64_t)size, path, &hlen, e))
        goto out;
    hdr = aim_try_malloc((size_t)hlen);
    if (!hdr) {
        aim_errf(e, "%s: cannot allocate %llu bytes for the header", path,
                 (unsigned long long)hlen);
        goto out;
    }
    if (hlen && fread(hdr, 1, (size_t)hlen, fp) != hlen) {
        aim_errf(e, "%s: read error in the header (the file shrank?)", path);
        goto out;
    }
    f = parse_header(hdr, (size_t)hlen, (uint64_t)size - 8 - hlen, path, e);
    if (!f || !with_data)
        goto out;
    if (f->data_len > AIM_MAX_ALLOC) {
        aim_errf(e, "%s: data section is too large to load (%llu bytes, limit %llu)", path,
                 (unsigned long long)f->data_len, (unsigned long long)AIM_MAX_ALLOC);
        goto fail;
    }
    f->data = aim_try_malloc((size_t)f->data_len);
    if (!f->data) {
        aim_errf(e, "%s: out of memory reading %llu bytes of tensor data", path,
                 (unsigned long long)f->data_len);
        goto fail;
    }
    if (f->data_len && fread(f->data, 1, (size_t)f->data_len, fp) != f->data_len) {
        aim_errf(e, "%s: read error in the data section (the file shrank?)", path);
        goto fail;
    }
    goto out;
fail:
    aim_st_close(f);
    f = NULL;
out:
    fclose(fp);
    free(hdr);
    return f;
}

aim_st_file *aim_st_open(const char *path, aim_err *e)
{
    return st_load(path, 1, e);
}

aim_st_file *aim_st_peek(const char *path, aim_err *e)
{
    return st_load(path, 0, e);
}

void aim_st_close(aim_st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->ntensors; i++)
        free(f->tensors[i].name);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->data);
    free(f->path);
    free(f);
}

const aim_st_tensor *aim_st_find(const aim_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    for (int i = 0; i < f->ntensors; i++)
        if (!strcmp(f->tensors[i].name, name))
            return &f->tensors[i];
    return NULL;
}

const char *aim_st_meta(const aim_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta_keys[i], key))
            return f->meta_vals[i];
    return NULL;
}

const void *aim_st_data(const aim_st_file *f, const aim_st_tensor *t)
{
    if (!f || !t || !f->data)
        return NULL;
    return f->data + t->begin;
}

/* -------------------------------------------------------------- writing */

typedef struct st_wctx {
    const char *path;
    const aim_sbuf *hdr;
    const aim_st_entry *t;
    const uint64_t *nbytes;
    int n;
} st_wctx;

static int st_emit(FILE *fp, void *ctx, aim_err *e)
{
    const st_wctx *w = ctx;
    uint8_t b8[8];
    for (int k = 0; k < 8; k++)
        b8[k] = (uint8_t)((uint64_t)w->hdr->n >> (8 * k));
    if (fwrite(b8, 1, 8, fp) != 8 || fwrite(w->hdr->p, 1, w->hdr->n, fp) != w->hdr->n)
        return aim_errf(e, "%s: write failed: %s", w->path, strerror(errno));
    for (int i = 0; i < w->n; i++)
        if (w->nbytes[i] && fwrite(w->t[i].data, 1, (size_t)w->nbytes[i], fp) != w->nbytes[i])
            return aim_errf(e, "%s: write failed: %s", w->path, strerror(errno));
    return 0;
}

/* Check the tensors and metadata given to aim_st_write; nbytes[i] gets each
 * tensor's size. */
static int st_check_entries(const char *path, const aim_st_entry *t, int n,
                            const char *const *meta, int nmeta, uint64_t *nbytes, aim_err *e)
{
    char tn[ST_SHOW];
    for (int i = 0; i < n; i++) {
        const aim_st_entry *x = &t[i];
        if (!x->name || !x->name[0])
            return aim_errf(e, "%s: tensor %d has an empty name", path, i);
        aim_text_show(tn, sizeof tn, x->name);
        if (!strcmp(x->name, "__metadata__"))
            return aim_errf(e, "%s: '__metadata__' is reserved and cannot name a tensor", path);
        if (!aim_utf8_valid(x->name))
            return aim_errf(e, "%s: tensor name '%s' is not valid UTF-8", path, tn);
        size_t es = aim_dtype_size(x->dtype);
        if (!es)
            return aim_errf(e, "%s: tensor '%s' has an unsupported dtype (%d)", path, tn,
                            (int)x->dtype);
        if (x->ndim < 0 || x->ndim > AIM_MAX_DIMS)
            return aim_errf(e, "%s: tensor '%s' has %d dimensions (0..%d are supported)", path,
                            tn, x->ndim, AIM_MAX_DIMS);
        for (int d = 0; d < x->ndim; d++)
            if (x->shape[d] < 0)
                return aim_errf(e, "%s: tensor '%s' has a negative dimension (%lld)", path, tn,
                                (long long)x->shape[d]);
        uint64_t numel;
        if (aim_shape_numel(x->shape, x->ndim, AIM_MAX_ALLOC, &numel))
            return aim_errf(e, "%s: tensor '%s' is too large (more than %llu elements)", path,
                            tn, (unsigned long long)AIM_MAX_ALLOC);
        nbytes[i] = numel * es;
        if (nbytes[i] && !x->data)
            return aim_errf(e, "%s: tensor '%s' has no data", path, tn);
    }
    for (int i = 0; i < 2 * nmeta; i++) {
        if (!meta[i])
            return aim_errf(e, "%s: metadata %s %d is NULL", path, i % 2 ? "value" : "key",
                            i / 2);
        if (!aim_utf8_valid(meta[i]))
            return aim_errf(e, "%s: metadata %s '%s' is not valid UTF-8", path,
                            i % 2 ? "value" : "key", aim_text_show(tn, sizeof tn, meta[i]));
    }
    size_t most = (size_t)(n > nmeta ? n : nmeta);
    const char **names = aim_xmalloc(most * sizeof *names + 1);
    for (int i = 0; i < n; i++)
        names[i] = t[i].name;
    const char *dup = find_dup(names, (size_t)n);
    int rc = 0;
    if (dup)
        rc = aim_errf(e, "%s: duplicate tensor name '%s'", path,
                      aim_text_show(tn, sizeof tn, dup));
    if (!rc) {
        for (int i = 0; i < nmeta; i++)
            names[i] = meta[2 * i];
        dup = find_dup(names, (size_t)nmeta);
        if (dup)
            rc = aim_errf(e, "%s: duplicate metadata key '%s'", path, aim_text_show(tn, sizeof tn, dup));
    }
    free(names);
    return rc;
}

int aim_st_write(const char *path, const aim_st_entry *t, int n, const char *const *meta,
                 int nmeta, aim_err *e)
{
    if (!path)
        return aim_errf(e, "aim_st_write: no path given");
    if (n < 0 || (n > 0 && !t))
        return aim_errf(e, "%s: invalid tensor list (n = %d)", path, n);
    if (nmeta < 0 || nmeta > INT_MAX / 2 || (nmeta > 0 && !meta))
        return aim_errf(e, "%s: invalid metadata list (nmeta = %d)", path, nmeta);
    uint64_t *nbytes = aim_xcalloc(n ? (size_t)n : 1, sizeof *nbytes);
    aim_sbuf h = {0};
    int rc = -1;
    if (st_check_entries(path, t, n, meta, nmeta, nbytes, e))
        goto out;

    aim_sb_putc(&h, '{');
    if (nmeta) {
        aim_sb_put(&h, "\"__metadata__\":{", 16);
        for (int i = 0; i < nmeta; i++) {
            if (i)
                aim_sb_putc(&h, ',');
            aim_json_put_string(&h, meta[2 * i]);
            aim_sb_putc(&h, ':');
            aim_json_put_string(&h, meta[2 * i + 1]);
        }
        aim_sb_putc(&h, '}');
    }
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        if (pos > UINT64_MAX - nbytes[i]) {
            aim_errf(e, "%s: tensors are too large in total", path);
            goto out;
        }
        if (i || nmeta)
            aim_sb_putc(&h, ',');
        aim_json_put_string(&h, t[i].name);
        aim_sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", aim_dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++)
            aim_sb_printf(&h, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        aim_sb_printf(&h, "],\"data_offsets\":[%llu,", (unsigned long long)pos);
        pos += nbytes[i];
        aim_sb_printf(&h, "%llu]}", (unsigned long long)pos);
    }
    aim_sb_putc(&h, '}');
    while (h.n % 8)
        aim_sb_putc(&h, ' ');
    if (h.n > ST_MAX_HEADER) {
        aim_errf(e, "%s: header would be %zu bytes, above the 100 MB limit", path, h.n);
        goto out;
    }
    st_wctx w = {path, &h, t, nbytes, n};
    rc = aim_write_atomic(path, st_emit, &w, e);
out:
    aim_sb_free(&h);
    free(nbytes);
    return rc;
}
