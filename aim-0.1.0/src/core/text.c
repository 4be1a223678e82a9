/*
 * text.c - the shared text helpers of aim/text.h: growable strings, UTF-8,
 * names made safe for messages.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aim/core.h"
#include "aim/text.h"

/* ------------------------------------------------------- growable string */

static void sb_grow(aim_sbuf *b, size_t extra)
{
    if (b->p && b->n + extra < b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap <= b->n + extra)
        cap *= 2;
    b->p = aim_xrealloc(b->p, cap);
    b->cap = cap;
}

void aim_sb_put(aim_sbuf *b, const void *s, size_t n)
{
    sb_grow(b, n);
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void aim_sb_putc(aim_sbuf *b, char c)
{
    aim_sb_put(b, &c, 1);
}

void aim_sb_reset(aim_sbuf *b)
{
    b->n = 0;
    sb_grow(b, 0);
    b->p[0] = 0;
}

void aim_sb_printf(aim_sbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        aim_sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

char *aim_sb_strdup(const aim_sbuf *b)
{
    char *s = aim_xmalloc(b->n + 1);
    if (b->n)
        memcpy(s, b->p, b->n);
    s[b->n] = 0;
    return s;
}

void aim_sb_free(aim_sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* -------------------------------------------------------------- UTF-8 */

size_t aim_utf8_seq(const unsigned char *p, size_t avail)
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

int aim_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        size_t k = aim_utf8_seq(p, n);
        if (!k)
            return 0;
        p += k;
        n -= k;
    }
    return 1;
}

size_t aim_utf8_put(char out[4], uint32_t cp)
{
    char *o = out;
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

const char *aim_text_show(char *buf, size_t cap, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t lim = cap - 4, n = 0, left = strlen(s);
    while (left) {
        size_t k = aim_utf8_seq(p, left), step = k ? k : 1;
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
