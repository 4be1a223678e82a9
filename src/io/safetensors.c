/*
 * safetensors.c - reader and writer for the safetensors format: a u64
 * little-endian header length N, N bytes of JSON, then the data section.
 *
 * The JSON header is read by a small, strict parser of our own in two passes:
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

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c stores tensor data as it lies in memory: little-endian hosts only"
#endif

#define ST_MAX_HEADER 100000000ULL /* 100 MB, as in the official library */
#define ST_MAX_DEPTH 16            /* JSON nesting levels */
#define ST_SHOW 72                 /* buffer for a name shown in a message */
#define ST_NUM_SHOW 32             /* characters of a number shown in a message */

/* ------------------------------------------------------- growable string */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_grow(sbuf *b, size_t extra)
{
    if (b->p && b->n + extra < b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap <= b->n + extra)
        cap *= 2;
    b->p = aim_xrealloc(b->p, cap);
    b->cap = cap;
}

static void sb_put(sbuf *b, const void *s, size_t n)
{
    sb_grow(b, n);
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_putc(sbuf *b, char c)
{
    sb_put(b, &c, 1);
}

static void sb_reset(sbuf *b)
{
    b->n = 0;
    sb_grow(b, 0);
    b->p[0] = 0;
}

__attribute__((format(printf, 2, 3)))
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static char *sb_strdup(const sbuf *b)
{
    char *s = aim_xmalloc(b->n + 1);
    if (b->n)
        memcpy(s, b->p, b->n);
    s[b->n] = 0;
    return s;
}

/* -------------------------------------------------------------- UTF-8 */

/* Length of the valid UTF-8 sequence at p (at most avail bytes), or 0 if it is
 * invalid: overlong forms, surrogates and code points above U+10FFFF are
 * refused. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned c = p[0];
    unsigned lo = 0x80, hi = 0xBF;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (avail < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if ((p[k] & 0xC0) != 0x80)
            return 0;
    return len;
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        size_t k = utf8_seq(p, n);
        if (!k)
            return 0;
        p += k;
        n -= k;
    }
    return 1;
}

static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ------------------------------------------------------------- messages */

/* A name made safe for a one-line message: control characters and invalid
 * UTF-8 become '?', long names are cut at a character boundary and end in
 * "...". cap >= 8. */
static const char *show(char *buf, size_t cap, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t lim = cap - 4, n = 0, left = strlen(s);
    while (left) {
        size_t k = utf8_seq(p, left), step = k ? k : 1;
        if (n + step > lim)
            break;
        if (!k || p[0] < 0x20 || p[0] == 0x7f)
            buf[n++] = '?';
        else {
            memcpy(buf + n, p, k);
            n += k;
        }
        p += step;
        left -= step;
    }
    if (left) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
    return buf;
}

/* One byte for a message: 'x' for printable ASCII, else "byte 0xNN". */
static const char *chdesc(char buf[16], unsigned ch)
{
    if (ch >= 0x21 && ch < 0x7f)
        snprintf(buf, 16, "'%c'", (char)ch);
    else
        snprintf(buf, 16, "byte 0x%02x", ch & 0xffu);
    return buf;
}

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

/* ---------------------------------------------------------- JSON cursor */

typedef struct jcur {
    const unsigned char *p; /* the JSON header */
    size_t n, i;            /* its length, the read position */
    const char *name;       /* file name for messages */
    aim_err *e;
} jcur;

enum { NUM_INT, NUM_FRAC, NUM_RANGE }; /* what j_number found */

/* A syntax error at header byte `at`. */
__attribute__((format(printf, 3, 4)))
static int jerr(jcur *c, size_t at, const char *fmt, ...)
{
    char msg[AIM_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return aim_errf(c->e, "%s: invalid JSON header at byte %zu: %s", c->name, at, msg);
}

/* A schema error (valid JSON, wrong content). */
__attribute__((format(printf, 2, 3)))
static int serr(jcur *c, const char *fmt, ...)
{
    char msg[AIM_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return aim_errf(c->e, "%s: %s", c->name, msg);
}

static void j_ws(jcur *c)
{
    while (c->i < c->n) {
        unsigned char ch = c->p[c->i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
            break;
        c->i++;
    }
}

/* The next significant byte (after whitespace), or -1 at the end. */
static int j_peek(jcur *c)
{
    j_ws(c);
    return c->i < c->n ? c->p[c->i] : -1;
}

/* What kind of value starts at the cursor, for messages. */
static const char *j_kind(jcur *c)
{
    switch (j_peek(c)) {
    case '{': return "an object";
    case '[': return "an array";
    case '"': return "a string";
    case 't': return "true";
    case 'f': return "false";
    case 'n': return "null";
    case -1: return "nothing";
    default: return "a number";
    }
}

static int hex4(jcur *c, size_t at, uint32_t *out)
{
    uint32_t v = 0;
    if (c->n - at < 4)
        return jerr(c, at, "unterminated string (truncated \\u escape)");
    for (int k = 0; k < 4; k++) {
        unsigned h = c->p[at + (size_t)k];
        if (h >= '0' && h <= '9')
            h -= '0';
        else if (h >= 'a' && h <= 'f')
            h -= 'a' - 10;
        else if (h >= 'A' && h <= 'F')
            h -= 'A' - 10;
        else
            return jerr(c, at - 2, "invalid \\u escape (expected 4 hex digits)");
        v = v << 4 | h;
    }
    *out = v;
    return 0;
}

/* A string at the cursor (which is on the opening quote). With out, the
 * decoded UTF-8 goes there (NUL characters are refused: names and metadata
 * are C strings); without, it is only checked. */
static int j_string(jcur *c, sbuf *out)
{
    size_t start = c->i;
    char u8[4];
    if (out)
        sb_reset(out);
    c->i++;
    for (;;) {
        /* a run of plain characters, copied in one go */
        size_t run = c->i;
        while (c->i < c->n) {
            unsigned char b = c->p[c->i];
            if (b < 0x80) {
                if (b < 0x20 || b == '"' || b == '\\')
                    break;
                c->i++;
            } else {
                size_t k = utf8_seq(c->p + c->i, c->n - c->i);
                if (!k)
                    return jerr(c, c->i, "invalid UTF-8 byte 0x%02x in a string", b);
                c->i += k;
            }
        }
        if (out && c->i > run)
            sb_put(out, c->p + run, c->i - run);
        if (c->i >= c->n)
            return jerr(c, start, "unterminated string");
        unsigned char ch = c->p[c->i];
        if (ch == '"') {
            c->i++;
            return 0;
        }
        if (ch < 0x20)
            return jerr(c, c->i, "control character 0x%02x in a string (it must be escaped)",
                        ch);
        if (c->i + 1 >= c->n)
            return jerr(c, start, "unterminated string");
        unsigned char x = c->p[c->i + 1];
        char simple = 0;
        switch (x) {
        case '"': simple = '"'; break;
        case '\\': simple = '\\'; break;
        case '/': simple = '/'; break;
        case 'b': simple = '\b'; break;
        case 'f': simple = '\f'; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'u': break;
        default: {
            char cb[16];
            return jerr(c, c->i, "invalid escape '\\' followed by %s", chdesc(cb, x));
        }
        }
        if (simple) {
            if (out)
                sb_putc(out, simple);
            c->i += 2;
            continue;
        }
        size_t at = c->i;
        uint32_t cp, lo;
        if (hex4(c, at + 2, &cp))
            return -1;
        c->i += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return jerr(c, at, "lone low surrogate \\u%04X", (unsigned)cp);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (c->n - c->i < 6 || c->p[c->i] != '\\' || c->p[c->i + 1] != 'u')
                return jerr(c, at, "lone high surrogate \\u%04X", (unsigned)cp);
            if (hex4(c, c->i + 2, &lo))
                return -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return jerr(c, at, "lone high surrogate \\u%04X (followed by \\u%04X)",
                            (unsigned)cp, (unsigned)lo);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            c->i += 6;
        }
        if (out) {
            if (cp == 0)
                return jerr(c, at, "strings containing \\u0000 are not supported");
            sb_put(out, u8, utf8_put(u8, cp));
        }
    }
}

/* A number at the cursor: JSON grammar, leading zeros refused. *kind says
 * whether it is an integer that fits in int64 (then *val holds it). */
static int j_number(jcur *c, int *kind, int64_t *val)
{
    size_t s = c->i;
    int neg = 0, frac = 0;
    if (c->p[c->i] == '-') {
        neg = 1;
        c->i++;
    }
    if (c->i >= c->n || c->p[c->i] < '0' || c->p[c->i] > '9')
        return jerr(c, s, "invalid number (expected a digit)");
    size_t d0 = c->i;
    if (c->p[c->i] == '0') {
        c->i++;
        if (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9')
            return jerr(c, s, "numbers may not have leading zeros");
    } else {
        while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9')
            c->i++;
    }
    size_t d1 = c->i;
    if (c->i < c->n && c->p[c->i] == '.') {
        c->i++;
        if (c->i >= c->n || c->p[c->i] < '0' || c->p[c->i] > '9')
            return jerr(c, c->i, "invalid number (expected a digit after '.')");
        while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9')
            c->i++;
        frac = 1;
    }
    if (c->i < c->n && (c->p[c->i] == 'e' || c->p[c->i] == 'E')) {
        c->i++;
        if (c->i < c->n && (c->p[c->i] == '+' || c->p[c->i] == '-'))
            c->i++;
        if (c->i >= c->n || c->p[c->i] < '0' || c->p[c->i] > '9')
            return jerr(c, c->i, "invalid number (expected a digit in the exponent)");
        while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9')
            c->i++;
        frac = 1;
    }
    *val = 0;
    if (frac) {
        *kind = NUM_FRAC;
        return 0;
    }
    /* magnitude up to 2^63 - 1 (2^63 when negative) */
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (size_t k = d0; k < d1; k++) {
        unsigned dg = c->p[k] - '0';
        if (v > (lim - dg) / 10) {
            *kind = NUM_RANGE;
            return 0;
        }
        v = v * 10 + dg;
    }
    *kind = NUM_INT;
    *val = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

static int j_lit(jcur *c, const char *lit)
{
    size_t k = strlen(lit);
    if (c->n - c->i < k || memcmp(c->p + c->i, lit, k) != 0)
        return jerr(c, c->i, "invalid literal (expected %s)", lit);
    c->i += k;
    return 0;
}

static int j_value(jcur *c, int depth);

/* An object or array at the cursor (syntax pass). */
static int j_container(jcur *c, int depth)
{
    unsigned char open = c->p[c->i], close = open == '{' ? '}' : ']';
    const char *what = open == '{' ? "object" : "array";
    char cb[16];
    if (depth >= ST_MAX_DEPTH)
        return jerr(c, c->i, "nesting deeper than %d levels", ST_MAX_DEPTH);
    c->i++;
    if (j_peek(c) == close) {
        c->i++;
        return 0;
    }
    for (;;) {
        if (open == '{') {
            int ch = j_peek(c);
            if (ch < 0)
                return jerr(c, c->i, "unexpected end of the header inside an object");
            if (ch == '\'')
                return jerr(c, c->i, "single-quoted strings are not JSON");
            if (ch != '"')
                return jerr(c, c->i, "expected a string key, found %s", chdesc(cb, (unsigned)ch));
            if (j_string(c, NULL))
                return -1;
            ch = j_peek(c);
            if (ch != ':')
                return ch < 0 ? jerr(c, c->i, "unexpected end of the header inside an object")
                              : jerr(c, c->i, "expected ':' after an object key, found %s",
                                     chdesc(cb, (unsigned)ch));
            c->i++;
        }
        if (j_value(c, depth + 1))
            return -1;
        int ch = j_peek(c);
        if (ch < 0)
            return jerr(c, c->i, "unexpected end of the header inside an %s", what);
        if (ch == close) {
            c->i++;
            return 0;
        }
        if (ch != ',')
            return jerr(c, c->i, "expected ',' or '%c' in an %s, found %s", close, what,
                        chdesc(cb, (unsigned)ch));
        c->i++;
        if (j_peek(c) == close)
            return jerr(c, c->i, "trailing comma before '%c'", close);
    }
}

/* Any JSON value at the cursor (syntax pass; nothing is kept). */
static int j_value(jcur *c, int depth)
{
    int ch = j_peek(c);
    int kind = 0;
    int64_t v = 0;
    char cb[16];
    switch (ch) {
    case -1: return jerr(c, c->i, "unexpected end of the header");
    case '{': case '[': return j_container(c, depth);
    case '"': return j_string(c, NULL);
    case 't': return j_lit(c, "true");
    case 'f': return j_lit(c, "false");
    case 'n': return j_lit(c, "null");
    case '\'': return jerr(c, c->i, "single-quoted strings are not JSON");
    default:
        if (ch == '-' || (ch >= '0' && ch <= '9'))
            return j_number(c, &kind, &v);
        return jerr(c, c->i, "unexpected %s", chdesc(cb, (unsigned)ch));
    }
}

/* Syntax pass over the whole header: one value, then only spaces (0x20). */
static int j_check(jcur *c)
{
    char cb[16];
    c->i = 0;
    if (j_value(c, 0))
        return -1;
    while (c->i < c->n && c->p[c->i] == ' ')
        c->i++;
    if (c->i < c->n)
        return jerr(c, c->i, "unexpected %s after the top-level value (only spaces may follow)",
                    chdesc(cb, c->p[c->i]));
    return 0;
}

/* ---------------------------------------------------------- schema pass */

/* Consume the expected byte (after whitespace). */
static int s_expect(jcur *c, char ch)
{
    if (j_peek(c) != (unsigned char)ch)
        return jerr(c, c->i, "expected '%c'", ch);
    c->i++;
    return 0;
}

/* After an element: 1 if another follows (the ',' is consumed), 0 at the
 * closing bracket (consumed), -1 on error. */
static int s_next(jcur *c, char close)
{
    int ch = j_peek(c);
    if (ch == ',') {
        c->i++;
        return 1;
    }
    if (ch == (unsigned char)close) {
        c->i++;
        return 0;
    }
    return jerr(c, c->i, "expected ',' or '%c'", close);
}

/* A string value at the cursor, decoded into b. */
static int s_string(jcur *c, sbuf *b)
{
    if (j_peek(c) != '"')
        return jerr(c, c->i, "expected a string");
    return j_string(c, b);
}

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
static int s_uint(jcur *c, const char *tn, const char *what, int64_t *out)
{
    int ch = j_peek(c), kind = 0;
    int64_t v = 0;
    if (ch != '-' && !(ch >= '0' && ch <= '9'))
        return serr(c, "tensor '%s': %s must hold integers, found %s", tn, what, j_kind(c));
    size_t at = c->i;
    if (j_number(c, &kind, &v))
        return -1;
    size_t len = c->i - at;
    int show_len = len > ST_NUM_SHOW ? ST_NUM_SHOW : (int)len;
    const char *txt = (const char *)c->p + at, *more = len > ST_NUM_SHOW ? "..." : "";
    if (kind == NUM_FRAC)
        return serr(c, "tensor '%s': %s holds %.*s%s, which is not an integer", tn, what,
                    show_len, txt, more);
    if (kind == NUM_RANGE)
        return serr(c, "tensor '%s': %s holds %.*s%s, which is out of range (more than 2^63-1)",
                    tn, what, show_len, txt, more);
    if (v < 0)
        return serr(c, "tensor '%s': %s holds a negative integer (%lld)", tn, what, (long long)v);
    *out = v;
    return 0;
}

/* An array of non-negative integers; the first `max` land in vals, *count
 * says how many there were. */
static int s_uint_array(jcur *c, const char *tn, const char *what, int64_t *vals, int max,
                        int *count)
{
    int n = 0;
    if (j_peek(c) != '[')
        return serr(c, "tensor '%s': %s must be an array of integers, found %s", tn, what,
                    j_kind(c));
    c->i++;
    if (j_peek(c) == ']') {
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
        int r = s_next(c, ']');
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
static int s_entry(jcur *c, aim_st_tensor *t, uint64_t data_len, sbuf *tmp)
{
    char tn[ST_SHOW], fb[ST_SHOW], sb[200];
    int have_dtype = 0, have_shape = 0, have_off = 0, cnt = 0;
    int64_t off[2] = {0, 0};
    show(tn, sizeof tn, t->name);
    if (j_peek(c) != '{')
        return serr(c, "tensor '%s': entry must be an object, found %s", tn, j_kind(c));
    c->i++;
    if (j_peek(c) == '}')
        c->i++;
    else {
        for (;;) {
            if (s_string(c, tmp) || s_expect(c, ':'))
                return -1;
            if (!strcmp(tmp->p, "dtype")) {
                if (have_dtype++)
                    return serr(c, "tensor '%s': duplicate field 'dtype'", tn);
                if (j_peek(c) != '"')
                    return serr(c, "tensor '%s': dtype must be a string, found %s", tn,
                                j_kind(c));
                if (s_string(c, tmp))
                    return -1;
                t->dtype = dtype_from_name(tmp->p);
                if (t->dtype == AIM_DTYPE_NONE)
                    return serr(c, "tensor '%s': unsupported dtype '%s'", tn,
                                show(fb, sizeof fb, tmp->p));
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
                return serr(c, "tensor '%s': unknown field '%s'", tn, show(fb, sizeof fb, tmp->p));
            }
            int r = s_next(c, '}');
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
static int s_meta(jcur *c, aim_st_file *f, sbuf *key, sbuf *val)
{
    char kb[ST_SHOW];
    int cap = 0;
    if (j_peek(c) != '{')
        return serr(c, "__metadata__ must be an object of strings, found %s", j_kind(c));
    c->i++;
    if (j_peek(c) == '}') {
        c->i++;
        return 0;
    }
    for (;;) {
        if (s_string(c, key) || s_expect(c, ':'))
            return -1;
        if (j_peek(c) != '"')
            return serr(c, "__metadata__ value for key '%s' is not a string (found %s)",
                        show(kb, sizeof kb, key->p), j_kind(c));
        if (s_string(c, val))
            return -1;
        if (f->nmeta == cap) {
            if (cap >= INT_MAX / 2)
                return serr(c, "__metadata__ has too many keys");
            cap = cap ? 2 * cap : 8;
            f->meta_keys = aim_xrealloc(f->meta_keys, (size_t)cap * sizeof *f->meta_keys);
            f->meta_vals = aim_xrealloc(f->meta_vals, (size_t)cap * sizeof *f->meta_vals);
        }
        f->meta_keys[f->nmeta] = sb_strdup(key);
        f->meta_vals[f->nmeta] = sb_strdup(val);
        f->nmeta++;
        int r = s_next(c, '}');
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
    }
}

/* The top-level object: tensors and __metadata__, in header order. */
static int s_top(jcur *c, aim_st_file *f)
{
    sbuf key = {0}, val = {0};
    int rc = -1, cap = 0, seen_meta = 0;
    c->i = 0;
    if (j_peek(c) != '{') {
        serr(c, "header is not a JSON object (found %s)", j_kind(c));
        goto out;
    }
    c->i++;
    if (j_peek(c) == '}') {
        rc = 0;
        goto out;
    }
    for (;;) {
        if (s_string(c, &key) || s_expect(c, ':'))
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
            t->name = sb_strdup(&key);
            if (s_entry(c, t, f->data_len, &val))
                goto out;
        }
        int r = s_next(c, '}');
        if (r < 0)
            goto out;
        if (r == 0)
            break;
    }
    rc = 0;
out:
    free(key.p);
    free(val.p);
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
static int check_layout(jcur *c, aim_st_file *f)
{
    char na[ST_SHOW], nb[ST_SHOW];
    size_t nt = (size_t)f->ntensors, nm = (size_t)f->nmeta;
    const char **names = aim_xmalloc((nt > nm ? nt : nm) * sizeof *names + 1);
    for (size_t i = 0; i < nt; i++)
        names[i] = f->tensors[i].name;
    const char *dup = find_dup(names, nt);
    if (dup)
        serr(c, "duplicate tensor name '%s'", show(na, sizeof na, dup));
    if (!dup && nm) {
        memcpy(names, f->meta_keys, nm * sizeof *names);
        dup = find_dup(names, nm);
        if (dup)
            serr(c, "duplicate __metadata__ key '%s'", show(na, sizeof na, dup));
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
                        show(na, sizeof na, t->name), (unsigned long long)t->begin,
                        (unsigned long long)t->end, show(nb, sizeof nb, p->name),
                        (unsigned long long)p->begin, (unsigned long long)p->end);
        }
        if (t->begin > pos)
            return serr(c, "bytes [%llu, %llu) of the data section belong to no tensor (a hole before tensor '%s')",
                        (unsigned long long)pos, (unsigned long long)t->begin,
                        show(na, sizeof na, t->name));
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
    jcur c = {hdr, n, 0, name, e};
    if (n == 0) {
        aim_errf(e, "%s: the JSON header is empty (header length 0)", name);
        return NULL;
    }
    if (j_check(&c))
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

/* A JSON string with quotes, backslashes and control characters escaped. */
static void sb_json_str(sbuf *b, const char *s)
{
    sb_putc(b, '"');
    for (;;) {
        size_t k = strcspn(s, "\"\\\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d"
                              "\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a"
                              "\x1b\x1c\x1d\x1e\x1f");
        sb_put(b, s, k);
        s += k;
        if (!*s)
            break;
        if (*s == '"' || *s == '\\') {
            sb_putc(b, '\\');
            sb_putc(b, *s);
        } else {
            sb_printf(b, "\\u%04x", (unsigned)(unsigned char)*s);
        }
        s++;
    }
    sb_putc(b, '"');
}

typedef struct st_wctx {
    const char *path;
    const sbuf *hdr;
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
        show(tn, sizeof tn, x->name);
        if (!strcmp(x->name, "__metadata__"))
            return aim_errf(e, "%s: '__metadata__' is reserved and cannot name a tensor", path);
        if (!utf8_valid(x->name))
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
        if (!utf8_valid(meta[i]))
            return aim_errf(e, "%s: metadata %s '%s' is not valid UTF-8", path,
                            i % 2 ? "value" : "key", show(tn, sizeof tn, meta[i]));
    }
    size_t most = (size_t)(n > nmeta ? n : nmeta);
    const char **names = aim_xmalloc(most * sizeof *names + 1);
    for (int i = 0; i < n; i++)
        names[i] = t[i].name;
    const char *dup = find_dup(names, (size_t)n);
    int rc = 0;
    if (dup)
        rc = aim_errf(e, "%s: duplicate tensor name '%s'", path, show(tn, sizeof tn, dup));
    if (!rc) {
        for (int i = 0; i < nmeta; i++)
            names[i] = meta[2 * i];
        dup = find_dup(names, (size_t)nmeta);
        if (dup)
            rc = aim_errf(e, "%s: duplicate metadata key '%s'", path, show(tn, sizeof tn, dup));
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
    sbuf h = {0};
    int rc = -1;
    if (st_check_entries(path, t, n, meta, nmeta, nbytes, e))
        goto out;

    sb_putc(&h, '{');
    if (nmeta) {
        sb_put(&h, "\"__metadata__\":{", 16);
        for (int i = 0; i < nmeta; i++) {
            if (i)
                sb_putc(&h, ',');
            sb_json_str(&h, meta[2 * i]);
            sb_putc(&h, ':');
            sb_json_str(&h, meta[2 * i + 1]);
        }
        sb_putc(&h, '}');
    }
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        if (pos > UINT64_MAX - nbytes[i]) {
            aim_errf(e, "%s: tensors are too large in total", path);
            goto out;
        }
        if (i || nmeta)
            sb_putc(&h, ',');
        sb_json_str(&h, t[i].name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", aim_dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++)
            sb_printf(&h, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%llu,", (unsigned long long)pos);
        pos += nbytes[i];
        sb_printf(&h, "%llu]}", (unsigned long long)pos);
    }
    sb_putc(&h, '}');
    while (h.n % 8)
        sb_putc(&h, ' ');
    if (h.n > ST_MAX_HEADER) {
        aim_errf(e, "%s: header would be %zu bytes, above the 100 MB limit", path, h.n);
        goto out;
    }
    st_wctx w = {path, &h, t, nbytes, n};
    rc = aim_write_atomic(path, st_emit, &w, e);
out:
    free(h.p);
    free(nbytes);
    return rc;
}
