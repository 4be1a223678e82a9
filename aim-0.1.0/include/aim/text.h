/*
 * aim/text.h - small text helpers the readers and writers share: a growable
 * string buffer, UTF-8 checks and encoding, and names made safe to show in a
 * one-line message.
 */
#ifndef AIM_TEXT_H
#define AIM_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* A growable, always NUL-terminated string (once anything was put in it).
 * {0} is an empty buffer; aim_sb_free releases it. Out of memory aborts
 * (aim_xrealloc): callers bound what they put in. */
typedef struct aim_sbuf {
    char *p;
    size_t n, cap;
} aim_sbuf;

void aim_sb_put(aim_sbuf *b, const void *s, size_t n);
void aim_sb_putc(aim_sbuf *b, char c);
void aim_sb_reset(aim_sbuf *b); /* empty, with p a valid "" */
/* formatted text of at most 63 bytes (numbers, short fields) */
void aim_sb_printf(aim_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *aim_sb_strdup(const aim_sbuf *b);
void aim_sb_free(aim_sbuf *b);

/* Length of the valid UTF-8 sequence at p (at most avail >= 1 bytes), or 0
 * when it is invalid: overlong forms, surrogates and code points above
 * U+10FFFF are refused. */
size_t aim_utf8_seq(const unsigned char *p, size_t avail);
int aim_utf8_valid(const char *s);           /* 1 when all of s is valid UTF-8 */
size_t aim_utf8_put(char out[4], uint32_t cp); /* encode cp <= 0x10FFFF; bytes written */

/* s made safe for a one-line message in buf (cap >= 8): control characters
 * and invalid UTF-8 become '?', a long name is cut at a character boundary
 * and ends in "...". Returns buf. */
const char *aim_text_show(char *buf, size_t cap, const char *s);

#endif
