/*
 * npy.c - NumPy .npy files (format versions 1.0, 2.0 and 3.0).
 *
 * Layout: "\x93NUMPY", major, minor, header length (u16 LE for 1.0, u32 LE
 * for 2.0/3.0), a Python dict literal
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and a final '\n', then the raw C-order data.
 *
 * The reader parses the dict with a small strict parser (no eval), accepts a
 * handful of little-endian dtypes and C order only, and checks that the data
 * section holds exactly numel * itemsize bytes before allocating anything.
 * The writer produces the same bytes numpy.save does.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "aim/io.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

#define NPY_MAX_HEADER ((uint32_t)1 << 20) /* 1 MiB: real headers are ~100 bytes */
#define NPY_ALIGN 64
#define NPY_GROWTH_DIGITS 21 /* numpy leaves room to grow the first axis in place */

/* ---------------------------------------------------------------- dtypes */

static const struct {
    const char *descr;
    aim_dtype dtype;
} npy_types[] = {
    {"<f4", AIM_F32}, {"<f8", AIM_F64}, {"|u1", AIM_U8}, {"<u1", AIM_U8},
    {"<i4", AIM_I32}, {"<i8", AIM_I64},
};

static const char *npy_descr_of(aim_dtype t)
{
    switch (t) {
    case AIM_F32: return "<f4";
    case AIM_F64: return "<f8";
    case AIM_U8: return "|u1";
    case AIM_I32: return "<i4";
    case AIM_I64: return "<i8";
    default: return NULL;
    }
}

static int npy_dtype_from_descr(const char *d, const char *name, aim_dtype *out,
                                aim_err *e)
{
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++) {
        if (!strcmp(d, npy_types[i].descr)) {
            *out = npy_types[i].dtype;
            return 0;
        }
    }
    if (strchr(d, 'O'))
        return aim_errf(e, "%s: object arrays (dtype '%s') are unsupported", name, d);
    if (d[0] == '>')
        return aim_errf(e, "%s: big-endian dtype '%s' is unsupported (save it as '<%s')",
                        name, d, d + 1);
    return aim_errf(e, "%s: unsupported dtype '%s' (supported: <f4 <f8 <i4 <i8 |u1)",
                    name, d);
}

/* "(2, 3)", "(3,)", "()" - the way Python prints a tuple */
static void npy_shape_str(char *buf, size_t size, const int64_t *shape, int ndim)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, size - k, "(");
    for (int i = 0; i < ndim && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < size)
        snprintf(buf + k, size - k, "%s)", ndim == 1 ? "," : "");
}

/* ---------------------------------------------------------- dict parser */

typedef struct npy_parser {
    const char *s;
    size_t n, i;
    const char *name;
    aim_err *e;
} npy_parser;

static void np_skip_ws(npy_parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

static int np_peek(const npy_parser *p)
{
    return p->i < p->n ? (unsigned char)p->s[p->i] : -1;
}

static int np_bad(npy_parser *p, const char *what)
{
    if (p->i >= p->n)
        return aim_errf(p->e, "%s: bad header dict: %s, found the end of the header",
                        p->name, what);
    char c = p->s[p->i];
    if (c >= 0x20 && c < 0x7f)
        return aim_errf(p->e, "%s: bad header dict: %s, found '%c' at offset %zu", p->name,
                        what, c, p->i);
    return aim_errf(p->e, "%s: bad header dict: %s, found byte 0x%02x at offset %zu",
                    p->name, what, (unsigned char)c, p->i);
}

static int np_expect(npy_parser *p, char c, const char *what)
{
    np_skip_ws(p);
    if (np_peek(p) != c)
        return np_bad(p, what);
    p->i++;
    return 0;
}

/* a quoted string without escapes, at most size-1 characters */
static int np_string(npy_parser *p, char *out, size_t size, const char *what)
{
    np_skip_ws(p);
    int q = np_peek(p);
    if (q != '\'' && q != '"')
        return np_bad(p, what);
    size_t start = ++p->i;
    while (p->i < p->n && p->s[p->i] != q) {
        char c = p->s[p->i];
        if (c == '\\' || c == '\n' || c < 0x20 || c >= 0x7f)
            return np_bad(p, "unsupported character in a string");
        p->i++;
    }
    if (p->i >= p->n)
        return np_bad(p, "unterminated string");
    size_t len = p->i - start;
    if (len >= size)
        return aim_errf(p->e, "%s: bad header dict: string at offset %zu is too long",
                        p->name, start - 1);
    memcpy(out, p->s + start, len);
    out[len] = 0;
    p->i++;
    return 0;
}

static int np_is_ident(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

static int np_bool(npy_parser *p, int *out)
{
    np_skip_ws(p);
    static const char *const words[2] = {"False", "True"};
    for (int v = 0; v < 2; v++) {
        size_t len = strlen(words[v]);
        if (p->n - p->i >= len && !memcmp(p->s + p->i, words[v], len) &&
            (p->i + len == p->n || !np_is_ident((unsigned char)p->s[p->i + len]))) {
            p->i += len;
            *out = v;
            return 0;
        }
    }
    return np_bad(p, "fortran_order must be True or False");
}

static int np_dim(npy_parser *p, int64_t *out)
{
    np_skip_ws(p);
    int neg = 0;
    if (np_peek(p) == '-') {
        neg = 1;
        p->i++;
    }
    int c = np_peek(p);
    if (c < '0' || c > '9')
        return np_bad(p, "expected an integer in the shape");
    size_t start = p->i;
    uint64_t v = 0;
    int overflow = 0;
    while ((c = np_peek(p)) >= '0' && c <= '9') {
        if (v > ((uint64_t)INT64_MAX - (uint64_t)(c - '0')) / 10)
            overflow = 1;
        else
            v = v * 10 + (uint64_t)(c - '0');
        p->i++;
    }
    if (np_is_ident(np_peek(p)))
        return np_bad(p, "expected an integer in the shape");
    int len = (int)(p->i - start);
    if (neg)
        return aim_errf(p->e, "%s: negative dimension -%.*s in shape", p->name, len,
                        p->s + start);
    if (overflow)
        return aim_errf(p->e, "%s: dimension %.*s in shape is too large (dims overflow)",
                        p->name, len > 40 ? 40 : len, p->s + start);
    *out = (int64_t)v;
    return 0;
}

static int np_shape(npy_parser *p, int64_t *shape, int *ndim)
{
    if (np_expect(p, '(', "shape must be a tuple such as (2, 3)"))
        return -1;
    int n = 0;
    np_skip_ws(p);
    if (np_peek(p) == ')') {
        p->i++;
        *ndim = 0;
        return 0;
    }
    for (;;) {
        int64_t d = 0;
        if (n >= AIM_MAX_DIMS)
            return aim_errf(p->e, "%s: shape has more than %d dimensions", p->name,
                            AIM_MAX_DIMS);
        if (np_dim(p, &d))
            return -1;
        shape[n++] = d;
        np_skip_ws(p);
        int c = np_peek(p);
        if (c == ')') {
            if (n == 1)
                return aim_errf(p->e, "%s: bad header dict: shape (%" PRId64 ") is not a "
                                "tuple (a 1-d shape is written (%" PRId64 ",))",
                                p->name, shape[0], shape[0]);
            p->i++;
            break;
        }
        if (c != ',')
            return np_bad(p, "expected ',' or ')' in the shape");
        p->i++;
        np_skip_ws(p);
        if (np_peek(p) == ')') {
            p->i++;
            break;
        }
    }
    *ndim = n;
    return 0;
}

/* Parse the dict into dtype, fortran flag and shape. */
static int np_dict(npy_parser *p, aim_array *out)
{
    char descr[64] = "";
    int fortran = 0;
    int seen[3] = {0, 0, 0}; /* descr, fortran_order, shape */
    static const char *const keys[3] = {"descr", "fortran_order", "shape"};

    if (np_expect(p, '{', "expected '{' at the start"))
        return -1;
    for (;;) {
        np_skip_ws(p);
        if (np_peek(p) == '}') {
            p->i++;
            break;
        }
        char key[64];
        if (np_string(p, key, sizeof key, "expected a quoted key or '}'"))
            return -1;
        int k = -1;
        for (int j = 0; j < 3; j++)
            if (!strcmp(key, keys[j]))
                k = j;
        if (k < 0)
            return aim_errf(p->e, "%s: bad header dict: unknown key '%s'", p->name, key);
        if (seen[k])
            return aim_errf(p->e, "%s: bad header dict: duplicate key '%s'", p->name, key);
        seen[k] = 1;
        if (np_expect(p, ':', "expected ':' after a key"))
            return -1;
        np_skip_ws(p);
        if (k == 0) {
            int c = np_peek(p);
            if (c == '[' || c == '{')
                return aim_errf(p->e, "%s: structured dtypes (descr %s) are unsupported",
                                p->name, c == '[' ? "[...]" : "{...}");
            if (np_string(p, descr, sizeof descr, "descr must be a quoted string"))
                return -1;
        } else if (k == 1) {
            if (np_bool(p, &fortran))
                return -1;
        } else {
            if (np_shape(p, out->shape, &out->ndim))
                return -1;
        }
        np_skip_ws(p);
        int c = np_peek(p);
        if (c == ',') {
            p->i++;
            continue;
        }
        if (c == '}') {
            p->i++;
            break;
        }
        return np_bad(p, "expected ',' or '}' after a value");
    }
    np_skip_ws(p);
    if (p->i != p->n)
        return np_bad(p, "garbage after the closing '}'");
    for (int j = 0; j < 3; j++)
        if (!seen[j])
            return aim_errf(p->e, "%s: bad header dict: missing key '%s'", p->name, keys[j]);
    if (npy_dtype_from_descr(descr, p->name, &out->dtype, p->e))
        return -1;
    if (fortran)
        return aim_errf(p->e, "%s: Fortran order (fortran_order: True) is unsupported; "
                        "save a C-order array", p->name);
    return 0;
}

/* ------------------------------------------------------------ the header */

/* The fixed part: magic, version, header length. *pre = its size (10 or 12). */
static int npy_preamble(const uint8_t *buf, size_t len, const char *name, size_t *pre,
                        uint32_t *hlen, aim_err *e)
{
    size_t m = len < sizeof npy_magic ? len : sizeof npy_magic;
    if (memcmp(buf, npy_magic, m) != 0 || len == 0)
        return aim_errf(e, "%s: not a .npy file (bad magic)", name);
    if (len < 8)
        return aim_errf(e, "%s: truncated header (the file is %zu bytes)", name, len);
    int major = buf[6], minor = buf[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return aim_errf(e, "%s: unsupported .npy version %d.%d (1.0, 2.0 and 3.0 are read)",
                        name, major, minor);
    *pre = major == 1 ? 10 : 12;
    if (len < *pre)
        return aim_errf(e, "%s: truncated header (the file is %zu bytes)", name, len);
    if (major == 1)
        *hlen = (uint32_t)buf[8] | (uint32_t)buf[9] << 8;
    else
        *hlen = (uint32_t)buf[8] | (uint32_t)buf[9] << 8 | (uint32_t)buf[10] << 16 |
                (uint32_t)buf[11] << 24;
    if (*hlen > NPY_MAX_HEADER)
        return aim_errf(e, "%s: header length %" PRIu32 " is too large (limit %" PRIu32 ")",
                        name, *hlen, NPY_MAX_HEADER);
    return 0;
}

/* Parse the whole header. buf holds at least the first `avail` bytes of a
 * file of `total` bytes; on success *data_off is where the data starts and
 * out has dtype and shape (data NULL). */
static int npy_header(const uint8_t *buf, size_t avail, uint64_t total, const char *name,
                      aim_array *out, size_t *data_off, aim_err *e)
{
    memset(out, 0, sizeof *out);
    size_t pre;
    uint32_t hlen;
    if (npy_preamble(buf, avail, name, &pre, &hlen, e))
        return -1;
    if ((uint64_t)pre + hlen > total)
        return aim_errf(e, "%s: header length %" PRIu32 " goes beyond the end of the file "
                        "(%" PRIu64 " bytes)", name, hlen, total);
    if (pre + hlen > avail)
        return aim_errf(e, "%s: truncated header", name);
    const char *h = (const char *)buf + pre;
    for (uint32_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c >= 0x7f || (c < 0x20 && c != '\n' && c != '\t' && c != '\r'))
            return aim_errf(e, "%s: bad header dict: byte 0x%02x at offset %" PRIu32
                            " is not printable ASCII", name, c, i);
    }
    npy_parser p = {h, hlen, 0, name, e};
    aim_array a;
    memset(&a, 0, sizeof a);
    if (np_dict(&p, &a))
        return -1;

    char sh[256];
    npy_shape_str(sh, sizeof sh, a.shape, a.ndim);
    size_t item = aim_dtype_size(a.dtype);
    uint64_t numel;
    if (aim_shape_numel(a.shape, a.ndim, UINT64_MAX / item, &numel))
        return aim_errf(e, "%s: shape %s overflows (dims overflow)", name, sh);
    uint64_t nbytes = numel * item;
    uint64_t have = total - pre - hlen;
    if (nbytes > have) {
        char approx[32] = "";
        if (nbytes >= 1000000)
            snprintf(approx, sizeof approx, " (%.3g)", (double)nbytes);
        return aim_errf(e, "%s: truncated: header claims shape %s = %" PRIu64 " bytes%s "
                        "of %s but the file holds only %" PRIu64 " bytes of data",
                        name, sh, nbytes, approx, npy_descr_of(a.dtype), have);
    }
    if (nbytes < have)
        return aim_errf(e, "%s: %" PRIu64 " trailing bytes after the data (shape %s of %s "
                        "needs %" PRIu64 " bytes)", name, have - nbytes, sh,
                        npy_descr_of(a.dtype), nbytes);
    if (aim_shape_numel(a.shape, a.ndim, AIM_MAX_ALLOC / item, &numel))
        return aim_errf(e, "%s: shape %s is too large (%" PRIu64 " bytes, limit %" PRIu64 ")",
                        name, sh, nbytes, (uint64_t)AIM_MAX_ALLOC);
    *out = a;
    *data_off = pre + hlen;
    return 0;
}

/* ---------------------------------------------------------------- reading */

int aim_npy_parse(const uint8_t *buf, size_t len, const char *name, aim_array *out,
                  aim_err *e)
{
    size_t off;
    if (!name)
        name = "<memory>";
    if (npy_header(buf, len, len, name, out, &off, e))
        return -1;
    size_t nbytes = len - off;
    out->data = aim_try_malloc(nbytes);
    if (!out->data) {
        memset(out, 0, sizeof *out);
        return aim_errf(e, "%s: out of memory for %zu bytes of data", name, nbytes);
    }
    if (nbytes)
        memcpy(out->data, buf + off, nbytes);
    return 0;
}

/* The header of a file, checked against the file's size; *off = where the
 * data starts, *size = the file's size. Nothing is read past the header. */
static int npy_peek_at(const char *path, aim_array *out, size_t *off, int64_t *size,
                      aim_err *e)
{
    memset(out, 0, sizeof *out);
    *size = aim_file_size(path, e);
    if (*size < 0)
        return -1;
    FILE *f = fopen(path, "rb");
    if (!f)
        return aim_errf(e, "%s: %s", path, strerror(errno));
    uint8_t first[12];
    size_t got = fread(first, 1, sizeof first, f);
    size_t pre;
    uint32_t hlen;
    if (npy_preamble(first, got, path, &pre, &hlen, e)) {
        fclose(f);
        return -1;
    }
    if ((uint64_t)pre + hlen > (uint64_t)*size) {
        fclose(f);
        return aim_errf(e, "%s: header length %" PRIu32 " goes beyond the end of the file "
                        "(%" PRId64 " bytes)", path, hlen, *size);
    }
    size_t want = pre + hlen;
    uint8_t *hdr = aim_xmalloc(want); /* at most NPY_MAX_HEADER + 12 */
    size_t have = got < want ? got : want;
    memcpy(hdr, first, have);
    if (have < want)
        have += fread(hdr + have, 1, want - have, f);
    fclose(f);
    int rc = npy_header(hdr, have, (uint64_t)*size, path, out, off, e);
    free(hdr);
    return rc;
}

int aim_npy_read(const char *path, aim_array *out, aim_err *e)
{
    /* the header first: the data is allocated and read only once its shape
     * and dtype account for every byte of the file */
    size_t off;
    int64_t size;
    if (npy_peek_at(path, out, &off, &size, e))
        return -1;
    uint64_t nbytes = (uint64_t)size - off;
    if (nbytes > aim_mem_limit()) {
        memset(out, 0, sizeof *out);
        return aim_errf(e, "%s: %" PRIu64 " bytes of data are more than the %" PRIu64
                        " allowed", path, nbytes, aim_mem_limit());
    }
    FILE *f = fopen(path, "rb");
    uint8_t *data = f ? aim_try_malloc((size_t)nbytes) : NULL;
    size_t got = 0;
    if (data && fseek(f, (long)off, SEEK_SET) == 0)
        got = fread(data, 1, (size_t)nbytes, f);
    if (f)
        fclose(f);
    if (!data || got != nbytes) {
        free(data);
        memset(out, 0, sizeof *out);
        if (!f)
            return aim_errf(e, "%s: %s", path, strerror(errno));
        if (!data)
            return aim_errf(e, "%s: out of memory for %" PRIu64 " bytes of data", path,
                            nbytes);
        return aim_errf(e, "%s: read error (got %zu of %" PRIu64 " bytes of data)", path, got,
                        nbytes);
    }
    out->data = data;
    return 0;
}

int aim_npy_peek(const char *path, aim_array *out, aim_err *e)
{
    size_t off;
    int64_t size;
    return npy_peek_at(path, out, &off, &size, e);
}

/* ---------------------------------------------------------------- writing */

typedef struct npy_writer {
    const char *header;
    size_t header_len;
    const void *data;
    size_t nbytes;
    const char *path;
} npy_writer;

static int npy_write_cb(FILE *f, void *ctx, aim_err *e)
{
    const npy_writer *w = ctx;
    if (fwrite(w->header, 1, w->header_len, f) != w->header_len ||
        (w->nbytes && fwrite(w->data, 1, w->nbytes, f) != w->nbytes))
        return aim_errf(e, "%s: write failed: %s", w->path, strerror(errno));
    return 0;
}

/* The full header (magic to '\n'), exactly as numpy.save writes it. */
static char *npy_make_header(const char *descr, const int64_t *shape, int ndim,
                             size_t *len)
{
    char sh[256];
    npy_shape_str(sh, sizeof sh, shape, ndim);
    char *dict = aim_xasprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                               descr, sh);
    size_t dlen = strlen(dict);
    size_t grow = 0;
    if (ndim > 0) {
        char first[32];
        size_t flen = (size_t)snprintf(first, sizeof first, "%" PRId64, shape[0]);
        grow = flen < NPY_GROWTH_DIGITS ? NPY_GROWTH_DIGITS - flen : 0;
    }
    size_t body = dlen + grow + 1; /* + the final '\n' */
    size_t pre = 10;
    size_t pad = NPY_ALIGN - (pre + body) % NPY_ALIGN;
    if (body + pad > 0xffff) {
        pre = 12;
        pad = NPY_ALIGN - (pre + body) % NPY_ALIGN;
    }
    size_t hlen = body + pad;
    size_t total = pre + hlen;
    char *h = aim_xmalloc(total);
    memcpy(h, npy_magic, 6);
    h[6] = pre == 10 ? 1 : 2;
    h[7] = 0;
    h[8] = (char)(hlen & 0xff);
    h[9] = (char)((hlen >> 8) & 0xff);
    if (pre == 12) {
        h[10] = (char)((hlen >> 16) & 0xff);
        h[11] = (char)((hlen >> 24) & 0xff);
    }
    memcpy(h + pre, dict, dlen);
    memset(h + pre + dlen, ' ', grow + pad);
    h[total - 1] = '\n';
    free(dict);
    *len = total;
    return h;
}

int aim_npy_write(const char *path, const aim_array *a, aim_err *e)
{
    const char *descr = npy_descr_of(a->dtype);
    if (!descr)
        return aim_errf(e, "%s: cannot write dtype %s to .npy (supported: F32 F64 I32 I64 U8)",
                        path, aim_dtype_name(a->dtype));
    if (a->ndim < 0 || a->ndim > AIM_MAX_DIMS)
        return aim_errf(e, "%s: cannot write an array with %d dimensions", path, a->ndim);
    size_t item = aim_dtype_size(a->dtype);
    uint64_t numel;
    if (aim_shape_numel(a->shape, a->ndim, AIM_MAX_ALLOC / item, &numel))
        return aim_errf(e, "%s: cannot write: bad or too large shape", path);
    if (numel && !a->data)
        return aim_errf(e, "%s: cannot write: the array has no data", path);
    npy_writer w;
    w.header = npy_make_header(descr, a->shape, a->ndim, &w.header_len);
    w.data = a->data;
    w.nbytes = (size_t)(numel * item);
    w.path = path;
    int rc = aim_write_atomic(path, npy_write_cb, &w, e);
    free((void *)w.header);
    return rc;
}
