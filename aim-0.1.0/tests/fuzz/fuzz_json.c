/* fuzz_json.c - the JSON reader (aim/json.h): check, then walk every value
 * with the cursor (strings decoded, numbers read), strict and raw_bytes. */
#include "config.h"

#include <stdlib.h>

#include "aim/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the value at the cursor, all of it: 0, 1 (stopped at a \u0000, which
 * decoding refuses) or -1 (the cursor failed on checked text) */
static int walk(aim_jr *r, aim_sbuf *s, int depth)
{
    int ch = aim_jr_peek(r), more, kind;
    int64_t v;
    double d;
    if (depth > AIM_JSON_MAX_DEPTH)
        abort(); /* aim_jr_check let something deeper through */
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        more = aim_jr_open(r, (char)ch) == 0;
        while (more) {
            if (ch == '{' && aim_jr_string(r, s))
                return 1; /* a key with \u0000 */
            if (ch == '{' && aim_jr_expect(r, ':'))
                return -1;
            int w = walk(r, s, depth + 1);
            if (w)
                return w;
            if ((more = aim_jr_next(r, close)) < 0)
                return -1;
        }
        return 0;
    }
    if (ch == '"')
        return aim_jr_string(r, s) == 0 ? 0 : 1;
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        size_t at = r->i;
        if (aim_jr_number(r, &kind, &v))
            return -1;
        r->i = at;
        aim_jr_double(r, &d); /* long numbers are refused */
        r->i = at;
        return aim_jr_number(r, &kind, &v);
    }
    return aim_jr_skip(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aim_err e;
    aim_sbuf s = {0};
    int64_t v;
    for (int raw = 0; raw < 2; raw++) {
        aim_jr r;
        aim_jr_init(&r, data, size, "fuzz.json", NULL, &e);
        r.raw_bytes = raw;
        if (aim_jr_check(&r, NULL) == 0 && walk(&r, &s, 0) < 0)
            abort(); /* a checked text that its own cursor cannot walk */
    }
    aim_json_get_int(data, size, "step", &v);
    aim_json_has(data, size, "kind");
    aim_sb_free(&s);
    return 0;
}
