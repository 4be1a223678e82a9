/*
 * json.c - the one JSON reader (aim/json.h): a syntax pass that validates a
 * whole document without allocating, then cursor steps that decode only what
 * the caller asks for. Shared by the safetensors header, the metrics log and
 * run folders; and the one writer: JSON strings and a streaming document
 * writer (aim_jw) for the commands' --json.
 */
#include "config.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aim/json.h"

#define JR_NUM_MAX 64 /* characters of a number aim_jr_double converts */

/* One byte for a message: 'x' for printable ASCII, else "byte 0xNN". */
static const char *chdesc(char buf[16], unsigned ch)
{
    if (ch >= 0x21 && ch < 0x7f)
        snprintf(buf, 16, "'%c'", (char)ch);
    else
        snprintf(buf, 16, "byte 0x%02x", ch & 0xffu);
    return buf;
}

void aim_jr_init(aim_jr *r, const void *buf, size_t n, const char *name, const char *what,
                 aim_err *e)
{
    r->p = buf;
    r->n = buf ? n : 0;
    r->i = 0;
    r->name = name ? name : "<memory>";
    r->what = what ? what : "text";
    r->e = e;
    r->raw_bytes = 0;
}

/* ---------------------------------------------------------- syntax pass */

int aim_jr_err(aim_jr *c, size_t at, const char *fmt, ...)
{
    char msg[AIM_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return aim_errf(c->e, "%s: invalid JSON %s at byte %zu: %s", c->name, c->what, at,
                    msg);
}

static void j_ws(aim_jr *c)
{
    while (c->i < c->n) {
        unsigned char ch = c->p[c->i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
            break;
        c->i++;
    }
}

/* The next significant byte (after whitespace), or -1 at the end. */
int aim_jr_peek(aim_jr *c)
{
    j_ws(c);
    return c->i < c->n ? c->p[c->i] : -1;
}

/* What kind of value starts at the cursor, for messages. */
const char *aim_jr_kind(aim_jr *c)
{
    switch (aim_jr_peek(c)) {
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

static int hex4(aim_jr *c, size_t at, uint32_t *out)
{
    uint32_t v = 0;
    if (c->n - at < 4)
        return aim_jr_err(c, at, "unterminated string (truncated \\u escape)");
    for (int k = 0; k < 4; k++) {
        unsigned h = c->p[at + (size_t)k];
        if (h >= '0' && h <= '9')
            h -= '0';
        else if (h >= 'a' && h <= 'f')
            h -= 'a' - 10;
        else if (h >= 'A' && h <= 'F')
            h -= 'A' - 10;
        else
            return aim_jr_err(c, at - 2, "invalid \\u escape (expected 4 hex digits)");
        v = v << 4 | h;
    }
    *out = v;
    return 0;
}

/* A string at the cursor (which is on the opening quote). With out, the
 * decoded UTF-8 goes there (NUL characters are refused: names and metadata
 * are C strings); without, it is only checked. */
static int j_string(aim_jr *c, aim_sbuf *out)
{
    size_t start = c->i;
    char u8[4];
    if (out)
        aim_sb_reset(out);
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
                size_t k = aim_utf8_seq(c->p + c->i, c->n - c->i);
                if (!k && !c->raw_bytes)
                    return aim_jr_err(c, c->i, "invalid UTF-8 byte 0x%02x in a string", b);
                if (!k)
                    k = 1; /* kept as it is */
                c->i += k;
            }
        }
        if (out && c->i > run)
            aim_sb_put(out, c->p + run, c->i - run);
        if (c->i >= c->n)
            return aim_jr_err(c, start, "unterminated string");
        unsigned char ch = c->p[c->i];
        if (ch == '"') {
            c->i++;
            return 0;
        }
        if (ch < 0x20)
            return aim_jr_err(c, c->i, "control character 0x%02x in a string (it must be escaped)",
                              ch);
        if (c->i + 1 >= c->n)
            return aim_jr_err(c, start, "unterminated string");
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
            return aim_jr_err(c, c->i, "invalid escape '\\' followed by %s", chdesc(cb, x));
        }
        }
        if (simple) {
            if (out)
                aim_sb_putc(out, simple);
            c->i += 2;
            continue;
        }
        size_t at = c->i;
        uint32_t cp, lo;
        if (hex4(c, at + 2, &cp))
            return -1;
        c->i += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return aim_jr_err(c, at, "lone low surrogate \\u%04X", (unsigned)cp);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (c->n - c->i < 6 || c->p[c->i] != '\\' || c->p[c->i + 1] != 'u')
                return aim_jr_err(c, at, "lone high surrogate \\u%04X", (unsigned)cp);
            if (hex4(c, c->i + 2, &lo))
                return -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return aim_jr_err(c, at, "lone high surrogate \\u%04X (followed by \\u%04X)",
                                  (unsigned)cp, (unsigned)lo);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            c->i += 6;
        }
        if (out) {
            if (cp == 0)
                return aim_jr_err(c, at, "strings containing \\u0000 are not supported");
            aim_sb_put(out, u8, aim_utf8_put(u8, cp));
        }
    }
}

/* A number at the cursor: JSON grammar, leading zeros refused. *kind says
 * whether it is an integer that fits in int64 (then *val holds it). */
int aim_jr_number(aim_jr *c, int *kind, int64_t *val)
{
    size_t s = c->i;
    int neg = 0, frac = 0;
    if (c->p[c->i] == '-') {
        neg = 1;
        c->i++;
    }
    if (c->i >= c->n || c->p[c->i] < '0' || c->p[c->i] > '9')
        return aim_jr_err(c, s, "invalid number (expected a digit)");
    size_t d0 = c->i;
    if (c->p[c->i] == '0') {
        c->i++;
        if (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9')
            return aim_jr_err(c, s, "numbers may not have leading zeros");
    } else {
        while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9')
            c->i++;
    }
    size_t d1 = c->i;
    if (c->i < c->n && c->p[c->i] == '.') {
        c->i++;
        if (c->i >= c->n || c->p[c->i] < '0' || c->p[c->i] > '9')
            return aim_jr_err(c, c->i, "invalid number (expected a digit after '.')");
        while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9')
            c->i++;
        frac = 1;
    }
    if (c->i < c->n && (c->p[c->i] == 'e' || c->p[c->i] == 'E')) {
        c->i++;
        if (c->i < c->n && (c->p[c->i] == '+' || c->p[c->i] == '-'))
            c->i++;
        if (c->i >= c->n || c->p[c->i] < '0' || c->p[c->i] > '9')
            return aim_jr_err(c, c->i, "invalid number (expected a digit in the exponent)");
        while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9')
            c->i++;
        frac = 1;
    }
    *val = 0;
    if (frac) {
        *kind = AIM_JR_FRAC;
        return 0;
    }
    /* magnitude up to 2^63 - 1 (2^63 when negative) */
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (size_t k = d0; k < d1; k++) {
        unsigned dg = c->p[k] - '0';
        if (v > (lim - dg) / 10) {
            *kind = AIM_JR_RANGE;
            return 0;
        }
        v = v * 10 + dg;
    }
    *kind = AIM_JR_INT;
    *val = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

static int j_lit(aim_jr *c, const char *lit)
{
    size_t k = strlen(lit);
    if (c->n - c->i < k || memcmp(c->p + c->i, lit, k) != 0)
        return aim_jr_err(c, c->i, "invalid literal (expected %s)", lit);
    c->i += k;
    return 0;
}

static int j_value(aim_jr *c, int depth);

/* An object or array at the cursor (syntax pass). */
static int j_container(aim_jr *c, int depth)
{
    unsigned char open = c->p[c->i], close = open == '{' ? '}' : ']';
    const char *what = open == '{' ? "object" : "array";
    char cb[16];
    if (depth >= AIM_JSON_MAX_DEPTH)
        return aim_jr_err(c, c->i, "nesting deeper than %d levels", AIM_JSON_MAX_DEPTH);
    c->i++;
    if (aim_jr_peek(c) == close) {
        c->i++;
        return 0;
    }
    for (;;) {
        if (open == '{') {
            int ch = aim_jr_peek(c);
            if (ch < 0)
                return aim_jr_err(c, c->i, "unexpected end of the %s inside an object",
                                  c->what);
            if (ch == '\'')
                return aim_jr_err(c, c->i, "single-quoted strings are not JSON");
            if (ch != '"')
                return aim_jr_err(c, c->i, "expected a string key, found %s",
                                  chdesc(cb, (unsigned)ch));
            if (j_string(c, NULL))
                return -1;
            ch = aim_jr_peek(c);
            if (ch != ':')
                return ch < 0 ? aim_jr_err(c, c->i, "unexpected end of the %s inside an object",
                                           c->what)
                              : aim_jr_err(c, c->i, "expected ':' after an object key, found %s",
                                           chdesc(cb, (unsigned)ch));
            c->i++;
        }
        if (j_value(c, depth + 1))
            return -1;
        int ch = aim_jr_peek(c);
        if (ch < 0)
            return aim_jr_err(c, c->i, "unexpected end of the %s inside an %s",
                              c->what, what);
        if (ch == close) {
            c->i++;
            return 0;
        }
        if (ch != ',')
            return aim_jr_err(c, c->i, "expected ',' or '%c' in an %s, found %s", close, what,
                              chdesc(cb, (unsigned)ch));
        c->i++;
        if (aim_jr_peek(c) == close)
            return aim_jr_err(c, c->i, "trailing comma before '%c'", close);
    }
}

/* Any JSON value at the cursor (syntax pass; nothing is kept). */
static int j_value(aim_jr *c, int depth)
{
    int ch = aim_jr_peek(c);
    int kind = 0;
    int64_t v = 0;
    char cb[16];
    switch (ch) {
    case -1: return aim_jr_err(c, c->i, "unexpected end of the %s", c->what);
    case '{': case '[': return j_container(c, depth);
    case '"': return j_string(c, NULL);
    case 't': return j_lit(c, "true");
    case 'f': return j_lit(c, "false");
    case 'n': return j_lit(c, "null");
    case '\'': return aim_jr_err(c, c->i, "single-quoted strings are not JSON");
    default:
        if (ch == '-' || (ch >= '0' && ch <= '9'))
            return aim_jr_number(c, &kind, &v);
        return aim_jr_err(c, c->i, "unexpected %s", chdesc(cb, (unsigned)ch));
    }
}

int aim_jr_check(aim_jr *c, const char *trail)
{
    char cb[16];
    const char *ok = trail ? trail : " \t\n\r";
    size_t nok = strlen(ok);
    c->i = 0;
    if (j_value(c, 0))
        return -1;
    while (c->i < c->n && memchr(ok, c->p[c->i], nok))
        c->i++;
    if (c->i < c->n)
        return aim_jr_err(c, c->i, "unexpected %s after the top-level value (only %s may follow)",
                          chdesc(cb, c->p[c->i]),
                          trail && !strcmp(trail, " ") ? "spaces" : "whitespace");
    c->i = 0;
    return 0;
}

/* ---------------------------------------------------------- cursor steps */

int aim_jr_expect(aim_jr *c, char ch)
{
    if (aim_jr_peek(c) != (unsigned char)ch)
        return aim_jr_err(c, c->i, "expected '%c'", ch);
    c->i++;
    return 0;
}

int aim_jr_open(aim_jr *c, char open)
{
    if (aim_jr_peek(c) != (unsigned char)open)
        return -1;
    c->i++;
    if (aim_jr_peek(c) == (open == '{' ? '}' : ']')) {
        c->i++;
        return 1;
    }
    return 0;
}

int aim_jr_next(aim_jr *c, char close)
{
    int ch = aim_jr_peek(c);
    if (ch == ',') {
        c->i++;
        return 1;
    }
    if (ch == (unsigned char)close) {
        c->i++;
        return 0;
    }
    return aim_jr_err(c, c->i, "expected ',' or '%c'", close);
}

int aim_jr_string(aim_jr *c, aim_sbuf *out)
{
    if (aim_jr_peek(c) != '"')
        return aim_jr_err(c, c->i, "expected a string");
    return j_string(c, out);
}

int aim_jr_double(aim_jr *c, double *v)
{
    int ch = aim_jr_peek(c), kind = 0;
    int64_t iv = 0;
    char buf[JR_NUM_MAX];
    if (ch == 'n') {
        *v = NAN;
        return j_lit(c, "null");
    }
    if (ch != '-' && !(ch >= '0' && ch <= '9'))
        return aim_jr_err(c, c->i, "expected a number, found %s", aim_jr_kind(c));
    size_t at = c->i;
    if (aim_jr_number(c, &kind, &iv))
        return -1;
    size_t len = c->i - at;
    if (len >= sizeof buf)
        return aim_jr_err(c, at, "number of %zu characters (at most %d are read)", len,
                          JR_NUM_MAX - 1);
    memcpy(buf, c->p + at, len);
    buf[len] = 0;
    *v = strtod(buf, NULL);
    return 0;
}

int aim_jr_skip(aim_jr *c)
{
    return j_value(c, 0);
}

int aim_jr_member(aim_jr *c, const char *key, aim_sbuf *tmp)
{
    int r = aim_jr_open(c, '{');
    if (r < 0)
        return aim_jr_err(c, c->i, "expected an object, found %s", aim_jr_kind(c));
    if (r == 1)
        return 0;
    for (;;) {
        if (aim_jr_string(c, tmp) || aim_jr_expect(c, ':'))
            return -1;
        if (!strcmp(tmp->p, key))
            return 1;
        if (aim_jr_skip(c))
            return -1;
        r = aim_jr_next(c, '}');
        if (r <= 0)
            return r;
    }
}

/* Validate buf (raw_bytes) and move r to its top-level member key: 1 there,
 * 0 absent, -1 invalid. */
static int find_top(aim_jr *r, const void *buf, size_t n, const char *key)
{
    aim_sbuf tmp = {0};
    aim_jr_init(r, buf, n, NULL, NULL, NULL);
    r->raw_bytes = 1;
    int rc = aim_jr_check(r, NULL) == 0 ? aim_jr_member(r, key, &tmp) : -1;
    aim_sb_free(&tmp);
    return rc;
}

int aim_json_has(const void *buf, size_t n, const char *key)
{
    aim_jr r;
    return find_top(&r, buf, n, key) == 1;
}

int aim_json_get_int(const void *buf, size_t n, const char *key, int64_t *out)
{
    aim_jr r;
    int kind = 0;
    int64_t v = 0;
    if (find_top(&r, buf, n, key) != 1)
        return -1;
    int ch = aim_jr_peek(&r);
    if (ch != '-' && !(ch >= '0' && ch <= '9'))
        return -1;
    if (aim_jr_number(&r, &kind, &v) != 0 || kind != AIM_JR_INT)
        return -1;
    *out = v;
    return 0;
}

int aim_json_get_ints(const void *buf, size_t n, const char *key, int *out, int cap)
{
    aim_jr r;
    if (find_top(&r, buf, n, key) != 1 || aim_jr_peek(&r) != '[')
        return -1;
    int k = 0, more = aim_jr_open(&r, '[') == 0;
    while (more) {
        int kind = 0;
        int64_t v = 0;
        if (aim_jr_number(&r, &kind, &v) != 0 || kind != AIM_JR_INT || v < INT_MIN ||
            v > INT_MAX)
            return -1;
        if (k < cap)
            out[k++] = (int)v;
        if ((more = aim_jr_next(&r, ']')) < 0)
            return -1;
    }
    return k;
}

int aim_json_get_string(const void *buf, size_t n, const char *key, char *out, size_t cap)
{
    aim_jr r;
    aim_sbuf sv = {0};
    if (cap == 0 || find_top(&r, buf, n, key) != 1 || aim_jr_peek(&r) != '"' ||
        aim_jr_string(&r, &sv) != 0) {
        aim_sb_free(&sv);
        return -1;
    }
    snprintf(out, cap, "%s", sv.p ? sv.p : "");
    aim_sb_free(&sv);
    return 0;
}

/* -------------------------------------------------------------- writing */

void aim_json_put_string(aim_sbuf *b, const char *s)
{
    aim_sb_putc(b, '"');
    for (;;) {
        size_t k = strcspn(s, "\"\\\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d"
                              "\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a"
                              "\x1b\x1c\x1d\x1e\x1f");
        aim_sb_put(b, s, k);
        s += k;
        if (!*s)
            break;
        if (*s == '"' || *s == '\\') {
            aim_sb_putc(b, '\\');
            aim_sb_putc(b, *s);
        } else {
            aim_sb_printf(b, "\\u%04x", (unsigned)(unsigned char)*s);
        }
        s++;
    }
    aim_sb_putc(b, '"');
}

void aim_json_string(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    aim_sbuf b = {0};
    aim_json_put_string(&b, s);
    fwrite(b.p, 1, b.n, f);
    aim_sb_free(&b);
}

/* ------------------------------------------------------------ the writer */

void aim_jw_init(aim_jw *w, FILE *f)
{
    memset(w, 0, sizeof *w);
    w->f = f;
}

/* before a value or a key: the comma when the level has an element */
static void jw_sep(aim_jw *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->more[w->depth])
        fputc(',', w->f);
    w->more[w->depth] = 1;
}

void aim_jw_open(aim_jw *w, char open)
{
    assert(open == '{' || open == '[');
    assert(w->depth < AIM_JSON_MAX_DEPTH);
    jw_sep(w);
    fputc(open, w->f);
    w->more[++w->depth] = 0;
}

void aim_jw_close(aim_jw *w, char close)
{
    assert((close == '}' || close == ']') && w->depth > 0 && !w->after_key);
    w->depth--;
    fputc(close, w->f);
}

void aim_jw_key(aim_jw *w, const char *key)
{
    jw_sep(w);
    aim_json_string(w->f, key);
    fputc(':', w->f);
    w->after_key = 1;
}

void aim_jw_str(aim_jw *w, const char *s)
{
    jw_sep(w);
    aim_json_string(w->f, s);
}

void aim_jw_num(aim_jw *w, double v)
{
    jw_sep(w);
    if (isfinite(v))
        fprintf(w->f, "%.9g", v);
    else
        fputs("null", w->f);
}

void aim_jw_int(aim_jw *w, int64_t v)
{
    jw_sep(w);
    fprintf(w->f, "%lld", (long long)v);
}

void aim_jw_bool(aim_jw *w, int v)
{
    jw_sep(w);
    fputs(v ? "true" : "false", w->f);
}

void aim_jw_null(aim_jw *w)
{
    jw_sep(w);
    fputs("null", w->f);
}

void aim_jw_raw(aim_jw *w, const void *text, size_t n)
{
    jw_sep(w);
    fwrite(text, 1, n, w->f);
}

void aim_jw_kstr(aim_jw *w, const char *key, const char *s)
{
    aim_jw_key(w, key);
    aim_jw_str(w, s);
}

void aim_jw_knum(aim_jw *w, const char *key, double v)
{
    aim_jw_key(w, key);
    aim_jw_num(w, v);
}

void aim_jw_kint(aim_jw *w, const char *key, int64_t v)
{
    aim_jw_key(w, key);
    aim_jw_int(w, v);
}

int aim_jw_finish(aim_jw *w)
{
    assert(w->depth == 0);
    fputc('\n', w->f);
    return fflush(w->f) != 0 || ferror(w->f) ? -1 : 0;
}
