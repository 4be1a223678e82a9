/*
 * test_json.c - the one JSON reader (aim/json.h) and the text helpers
 * (aim/text.h): good documents walked with the cursor, and hostile ones
 * (bad UTF-8, lone surrogates, deep nesting, truncation, leading zeros,
 * trailing bytes, huge numbers) refused with a message naming the byte.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/core.h"
#include "aim/json.h"
#include "aim/text.h"
#include "tap.h"

/* Check s (n bytes; -1: strlen) with trail; 0 valid, -1 invalid (msg in e). */
static int check(const char *s, long n, const char *trail, aim_err *e)
{
    aim_jr r;
    aim_jr_init(&r, s, n < 0 ? strlen(s) : (size_t)n, "t.json", NULL, e);
    return aim_jr_check(&r, trail);
}

static void refuse(const char *s, long n, const char *want)
{
    aim_err e = {{0}};
    int rc = check(s, n, NULL, &e);
    tap_ok(rc == -1 && tap_contains(e.msg, want), "refused (%s): %s", want, e.msg);
}

static void test_valid(void)
{
    const char *good[] = {
        "{}", "[]", "0", "-0", "1.5e-3", "\"\"", "true", "false", "null",
        " {\"a\" : [1, 2.0, -3]} \n", "\"\\u00e9\\ud83d\\ude00 \xc3\xa9\"",
        "{\"a\":{\"b\":{\"c\":[[[]]]}}}", "-9223372036854775808",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        aim_err e = {{0}};
        tap_ok(check(good[i], -1, NULL, &e) == 0, "valid: %s %s", good[i], e.msg);
    }
}

static void test_hostile(void)
{
    refuse("", 0, "unexpected end of the text");
    refuse("{", -1, "unexpected end of the text inside an object");
    refuse("[1,]", -1, "trailing comma");
    refuse("{\"a\" 1}", -1, "expected ':'");
    refuse("{'a':1}", -1, "single-quoted");
    refuse("01", -1, "leading zeros");
    refuse("1.", -1, "after '.'");
    refuse("1e", -1, "exponent");
    refuse("+1", -1, "unexpected '+'");
    refuse("tru", -1, "expected true");
    refuse("\"abc", -1, "unterminated string");
    refuse("\"a\tb\"", -1, "control character 0x09");
    refuse("\"\\x\"", -1, "invalid escape");
    refuse("\"\\u12\"", -1, "\\u escape");
    refuse("\"\\udc00\"", -1, "lone low surrogate");
    refuse("\"\\ud800\"", -1, "lone high surrogate");
    refuse("\"\\ud800\\u0041\"", -1, "lone high surrogate");
    refuse("\"\xc0\xaf\"", -1, "invalid UTF-8 byte 0xc0");     /* overlong '/' */
    refuse("\"\xed\xa0\x80\"", -1, "invalid UTF-8 byte 0xed");  /* surrogate */
    refuse("\"\xf4\x90\x80\x80\"", -1, "invalid UTF-8");        /* above U+10FFFF */
    refuse("\"\xe2\x82\"", -1, "invalid UTF-8");                /* truncated sequence */
    refuse("{} x", -1, "after the top-level value (only whitespace may follow)");
    refuse("1 2", -1, "after the top-level value");
    refuse("\"a\0b\"", 5, "control character 0x00");
    refuse("{\"a\":1}\0", 8, "byte 0x00");

    /* the depth limit: 16 levels pass, 17 do not */
    char deep[64];
    memset(deep, '[', AIM_JSON_MAX_DEPTH);
    memset(deep + AIM_JSON_MAX_DEPTH, ']', AIM_JSON_MAX_DEPTH);
    aim_err e = {{0}};
    tap_ok(check(deep, 2 * AIM_JSON_MAX_DEPTH, NULL, &e) == 0, "%d levels of nesting pass",
           AIM_JSON_MAX_DEPTH);
    memset(deep, '[', AIM_JSON_MAX_DEPTH + 1);
    memset(deep + AIM_JSON_MAX_DEPTH + 1, ']', AIM_JSON_MAX_DEPTH + 1);
    refuse(deep, 2 * AIM_JSON_MAX_DEPTH + 2, "nesting deeper than 16 levels");

    /* a million '[': refused at the limit, without recursing further */
    size_t big = 1000000;
    char *b = malloc(big);
    memset(b, '[', big);
    refuse(b, (long)big, "nesting deeper");
    free(b);

    /* the message names the file and the byte; trailing bytes of one's own */
    tap_ok(check("{}\t", -1, " ", &e) == -1 && tap_contains(e.msg, "only spaces may follow") &&
               tap_contains(e.msg, "t.json: invalid JSON text at byte 2"),
           "trail \" \": a tab is refused: %s", e.msg);
    aim_jr r;
    aim_jr_init(&r, NULL, 5, NULL, "line", &e);
    tap_ok(aim_jr_check(&r, NULL) == -1 && tap_contains(e.msg, "<memory>: invalid JSON line"),
           "no buffer is an empty text: %s", e.msg);
}

static void test_cursor(void)
{
    const char *doc = "{\"name\":\"caf\\u00e9\\n\",\"n\":[1,-2,3.5,null,123456789012345678901],"
                      "\"skip\":{\"x\":[{},[]]},\"i\":-42}";
    aim_err e = {{0}};
    aim_jr r;
    aim_sbuf k = {0}, v = {0};
    aim_jr_init(&r, doc, strlen(doc), "doc", NULL, &e);
    tap_ok(aim_jr_check(&r, NULL) == 0, "cursor doc is valid %s", e.msg);
    tap_ok(aim_jr_open(&r, '{') == 0, "open object");
    int ok = aim_jr_string(&r, &k) == 0 && !strcmp(k.p, "name") && aim_jr_expect(&r, ':') == 0 &&
             aim_jr_string(&r, &v) == 0 && !strcmp(v.p, "caf\xc3\xa9\n");
    tap_ok(ok, "string decoded: '%s'", v.p ? v.p : "");
    tap_ok(aim_jr_next(&r, '}') == 1 && aim_jr_string(&r, &k) == 0 &&
               aim_jr_expect(&r, ':') == 0,
           "second key");
    tap_ok(aim_jr_open(&r, '[') == 0, "open array");
    int kind[5];
    int64_t iv[5];
    double dv = 0;
    ok = aim_jr_number(&r, &kind[0], &iv[0]) == 0 && aim_jr_next(&r, ']') == 1 &&
         aim_jr_number(&r, &kind[1], &iv[1]) == 0 && aim_jr_next(&r, ']') == 1 &&
         aim_jr_double(&r, &dv) == 0 && aim_jr_next(&r, ']') == 1;
    tap_ok(ok && kind[0] == AIM_JR_INT && iv[0] == 1 && iv[1] == -2 && dv == 3.5,
           "numbers: 1, -2, 3.5");
    ok = aim_jr_double(&r, &dv) == 0 && isnan(dv) && aim_jr_next(&r, ']') == 1;
    tap_ok(ok, "null reads as NaN");
    ok = aim_jr_number(&r, &kind[2], &iv[2]) == 0 && kind[2] == AIM_JR_RANGE &&
         aim_jr_next(&r, ']') == 0;
    tap_ok(ok, "an integer beyond int64 is out of range");
    tap_ok(aim_jr_next(&r, '}') == 1 && aim_jr_string(&r, &k) == 0 &&
               aim_jr_expect(&r, ':') == 0 && aim_jr_skip(&r) == 0 && aim_jr_next(&r, '}') == 1,
           "skip a nested value");
    tap_ok(aim_jr_string(&r, &k) == 0 && !strcmp(k.p, "i"), "last key");

    /* members and the convenience lookup */
    aim_jr_init(&r, doc, strlen(doc), "doc", NULL, &e);
    tap_ok(aim_jr_member(&r, "skip", &k) == 1 && aim_jr_peek(&r) == '{', "member finds 'skip'");
    aim_jr_init(&r, doc, strlen(doc), "doc", NULL, &e);
    tap_ok(aim_jr_member(&r, "x", &k) == 0, "nested keys are not members");
    int64_t got = 0;
    tap_ok(aim_json_get_int(doc, strlen(doc), "i", &got) == 0 && got == -42, "get_int i = -42");
    tap_ok(aim_json_get_int(doc, strlen(doc), "n", &got) == -1, "get_int of an array fails");
    tap_ok(aim_json_get_int("{\"i\":1", 6, "i", &got) == -1, "get_int of invalid JSON fails");
    tap_ok(aim_json_get_int("{\"i\":1.5}", 9, "i", &got) == -1, "get_int of 1.5 fails");

    /* a long number is refused by aim_jr_double, not truncated */
    char num[200];
    memset(num, '1', sizeof num - 1);
    num[sizeof num - 1] = 0;
    aim_jr_init(&r, num, strlen(num), "num", NULL, &e);
    tap_ok(aim_jr_double(&r, &dv) == -1 && tap_contains(e.msg, "characters"),
           "a 199-digit number is refused: %s", e.msg);
    /* \u0000 is valid JSON but cannot be decoded into a C string */
    aim_jr_init(&r, "\"a\\u0000\"", 9, "nul", NULL, &e);
    tap_ok(aim_jr_check(&r, NULL) == 0 && aim_jr_string(&r, &v) == -1 &&
               tap_contains(e.msg, "\\u0000"),
           "\\u0000 is refused when decoded: %s", e.msg);
    /* raw_bytes: a Latin-1 folder name in aim's own logs is kept, not refused */
    const char *lat = "{\"run\":\"caf\xe9\",\"step\":7}";
    aim_jr_init(&r, lat, strlen(lat), "lat", NULL, &e);
    tap_ok(aim_jr_check(&r, NULL) == -1, "strict: a Latin-1 byte is refused");
    r.raw_bytes = 1;
    tap_ok(aim_jr_check(&r, NULL) == 0 && aim_jr_member(&r, "run", &k) == 1 &&
               aim_jr_string(&r, &v) == 0 && !strcmp(v.p, "caf\xe9"),
           "raw_bytes: kept as it is");
    tap_ok(aim_json_get_int(lat, strlen(lat), "step", &got) == 0 && got == 7 &&
               aim_json_has(lat, strlen(lat), "run") && !aim_json_has(lat, strlen(lat), "kind"),
           "get_int and has read aim's own logs");
    aim_sb_free(&k);
    aim_sb_free(&v);
}

static void test_text(void)
{
    aim_sbuf b = {0};
    aim_json_put_string(&b, "a\"b\\c\n\x01\xc3\xa9");
    tap_ok(!strcmp(b.p, "\"a\\\"b\\\\c\\u000a\\u0001\xc3\xa9\""), "put_string escapes: %s", b.p);
    aim_err e = {{0}};
    aim_jr r;
    aim_jr_init(&r, b.p, b.n, "w", NULL, &e);
    aim_sbuf back = {0};
    tap_ok(aim_jr_check(&r, NULL) == 0 && aim_jr_string(&r, &back) == 0 &&
               !strcmp(back.p, "a\"b\\c\n\x01\xc3\xa9"),
           "what is written reads back");
    aim_sb_free(&back);
    aim_sb_free(&b);
    tap_ok(b.p == NULL && b.n == 0, "sb_free empties");
    for (int i = 0; i < 1000; i++)
        aim_sb_printf(&b, "%d,", i);
    tap_ok(b.n == strlen(b.p) && !strncmp(b.p, "0,1,2,", 6), "buffer grows (%zu bytes)", b.n);
    aim_sb_free(&b);

    tap_ok(aim_utf8_valid("caf\xc3\xa9") && !aim_utf8_valid("\xff") &&
               !aim_utf8_valid("\xe0\x80\xaf"),
           "utf8_valid");
    char u[4];
    tap_ok(aim_utf8_put(u, 0x1F600) == 4 && aim_utf8_seq((unsigned char *)u, 4) == 4,
           "utf8_put / utf8_seq agree");
    char show[16];
    aim_text_show(show, sizeof show, "a\tb\xff" "cdefghijklmnopqrstuvwxyz");
    tap_ok(!strncmp(show, "a?b?", 4) && strlen(show) < sizeof show &&
               !strcmp(show + strlen(show) - 3, "..."),
           "text_show: '%s'", show);
}

int main(void)
{
    test_valid();
    test_hostile();
    test_cursor();
    test_text();
    return tap_done();
}
