/*
 * aim/json.h - the one JSON reader: the safetensors header, the metrics log
 * and run folders' run.json go through it. A strict RFC 8259 reader that
 * works on a buffer in place, in two steps:
 *
 *   aim_jr_check  validates the whole document (strings, escapes, UTF-8,
 *                 numbers, nesting depth) without allocating anything;
 *   aim_jr_*      then walk the validated text with a cursor, decoding only
 *                 the strings and numbers the caller asks for.
 *
 * Nothing is allocated in proportion to the input before it is validated;
 * strings are decoded into the caller's aim_sbuf. Errors go to the reader's
 * aim_err as "NAME: invalid WHAT at byte N: reason".
 */
#ifndef AIM_JSON_H
#define AIM_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "aim/core.h"
#include "aim/text.h"

#define AIM_JSON_MAX_DEPTH 16 /* nesting levels aim_jr_check accepts */

typedef struct aim_jr {
    const unsigned char *p; /* the text (not NUL-terminated) */
    size_t n, i;            /* its length, the cursor */
    const char *name;       /* file name for messages */
    const char *what;       /* "JSON header", "JSON", ... for messages */
    aim_err *e;
    /* 1: bytes >= 0x80 that are not valid UTF-8 are accepted inside strings
     * and kept as they are. For aim's own logs, which carry folder and file
     * names as the file system spells them; 0 (strict) after aim_jr_init. */
    int raw_bytes;
} aim_jr;

enum { AIM_JR_INT, AIM_JR_FRAC, AIM_JR_RANGE }; /* what aim_jr_number found */

/* A reader over buf[0..n); name and what may be NULL ("<memory>", "JSON"). */
void aim_jr_init(aim_jr *r, const void *buf, size_t n, const char *name, const char *what,
                 aim_err *e);

/* Validate the whole text: one value, then only bytes from `trail` (NULL:
 * JSON whitespace). Leaves the cursor at 0. */
int aim_jr_check(aim_jr *r, const char *trail);

/* Cursor steps; they assume a checked text but never read out of bounds. */
int aim_jr_peek(aim_jr *r);             /* next byte after whitespace, -1 at the end */
const char *aim_jr_kind(aim_jr *r);     /* "an object", "a string", ... for messages */
int aim_jr_expect(aim_jr *r, char ch);  /* consume ch (after whitespace) or fail */
/* At '{' or '[': consume it; 1 when the container is empty (its close is
 * consumed too), 0 when elements follow, -1 when the cursor is elsewhere. */
int aim_jr_open(aim_jr *r, char open);
/* After an element: 1 when another follows (',' consumed), 0 at the close
 * (consumed), -1 on error. */
int aim_jr_next(aim_jr *r, char close);
/* A string at the cursor, decoded into out (\u0000 is refused: C strings);
 * with out NULL it is only checked. */
int aim_jr_string(aim_jr *r, aim_sbuf *out);
/* A number at the cursor; *kind says whether it is an integer that fits in
 * int64 (then *val holds it). */
int aim_jr_number(aim_jr *r, int *kind, int64_t *val);
/* A number or null (NaN) at the cursor as a double. */
int aim_jr_double(aim_jr *r, double *v);
int aim_jr_skip(aim_jr *r);             /* any value */
/* In the object at the cursor, move to the value of `key` (the first one):
 * 1 found, 0 absent (cursor after the object), -1 on error. */
int aim_jr_member(aim_jr *r, const char *key, aim_sbuf *tmp);

/* A syntax error at byte `at`: "NAME: invalid WHAT at byte AT: ..."; -1. */
int aim_jr_err(aim_jr *r, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Convenience for small documents (run.json): validate buf (raw_bytes),
 * then the top-level integer member `key`; 0 found, -1 when invalid or
 * absent. */
int aim_json_get_int(const void *buf, size_t n, const char *key, int64_t *out);
/* 1 when buf is valid JSON (raw_bytes) with a top-level member `key`. */
int aim_json_has(const void *buf, size_t n, const char *key);

/* ------------------------------------------------------------ writing */

/* s as a JSON string (quotes, backslashes, control characters escaped)
 * appended to b; the same written to f (NULL is null). The one escaping. */
void aim_json_put_string(aim_sbuf *b, const char *s);
void aim_json_string(FILE *f, const char *s);

/* A small streaming writer for whole documents (the commands' --json): it
 * places the commas and the ':' so callers only say what comes next.
 *
 *   aim_jw w; aim_jw_init(&w, stdout);
 *   aim_jw_open(&w, '{'); aim_jw_key(&w, "steps"); aim_jw_int(&w, 20);
 *   aim_jw_close(&w, '}'); aim_jw_finish(&w);     -> {"steps":20}\n
 *
 * Numbers are %.9g (enough for a float, as the metrics log); NaN and
 * infinities, which JSON lacks, are null. Nesting deeper than
 * AIM_JSON_MAX_DEPTH is a programmer error (assert). */
typedef struct aim_jw {
    FILE *f;
    int depth;
    int after_key;                           /* a key was written, its value is next */
    unsigned char more[AIM_JSON_MAX_DEPTH + 1]; /* the level has an element already */
} aim_jw;

void aim_jw_init(aim_jw *w, FILE *f);
void aim_jw_open(aim_jw *w, char open);   /* '{' or '[' */
void aim_jw_close(aim_jw *w, char close); /* '}' or ']' */
void aim_jw_key(aim_jw *w, const char *key);
void aim_jw_str(aim_jw *w, const char *s); /* NULL is null */
void aim_jw_num(aim_jw *w, double v);
void aim_jw_int(aim_jw *w, int64_t v);
void aim_jw_bool(aim_jw *w, int v);
void aim_jw_null(aim_jw *w);
/* n bytes that are already one valid JSON value (checked by aim_jr_check) */
void aim_jw_raw(aim_jw *w, const void *text, size_t n);
/* key and value in one call, for the common case inside an object */
void aim_jw_kstr(aim_jw *w, const char *key, const char *s);
void aim_jw_knum(aim_jw *w, const char *key, double v);
void aim_jw_kint(aim_jw *w, const char *key, int64_t v);
/* End the document with a newline and flush: 0, or -1 when the stream had
 * a write error (stdout closed, disk full). */
int aim_jw_finish(aim_jw *w);

#endif
