/* test_safetensors.c - safetensors: write/read round trips, peek, a file as
 * Python's safetensors writes it, hostile files that must be refused with a
 * precise message, and random corruptions that must never crash. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aim/core.h"
#include "aim/io.h"
#include "tap.h"

/* A file image: u64 LE header length, the header, dlen bytes of data (zeros
 * when data is NULL). */
static uint8_t *image(const char *hdr, size_t hlen, const void *data, size_t dlen,
                      size_t *len)
{
    uint8_t *b = calloc(1, 8 + hlen + dlen + 1);
    for (int k = 0; k < 8; k++)
        b[k] = (uint8_t)((uint64_t)hlen >> (8 * k));
    memcpy(b + 8, hdr, hlen);
    if (data && dlen)
        memcpy(b + 8 + hlen, data, dlen);
    *len = 8 + hlen + dlen;
    return b;
}

/* open, peek and parse must all refuse the image, naming the file and saying
 * `phrase`. */
static void refuse_raw(const char *fname, const uint8_t *img, size_t len, const char *phrase)
{
    const char *p = tap_path(fname);
    aim_err e1 = {{0}}, e2 = {{0}}, e3 = {{0}};
    tap_write(p, img, len);
    aim_st_file *a = aim_st_open(p, &e1);
    aim_st_file *b = aim_st_peek(p, &e2);
    aim_st_file *c = aim_st_parse(img, len, fname, &e3);
    int ok = !a && !b && !c;
    ok = ok && tap_contains(e1.msg, fname) && tap_contains(e1.msg, phrase);
    ok = ok && tap_contains(e2.msg, fname) && tap_contains(e2.msg, phrase);
    ok = ok && tap_contains(e3.msg, fname) && tap_contains(e3.msg, phrase);
    tap_ok(ok, "%s is refused: %s", fname, e1.msg);
    if (!ok)
        tap_diag("want '%s'; peek: %s; parse: %s", phrase, e2.msg, e3.msg);
    aim_st_close(a);
    aim_st_close(b);
    aim_st_close(c);
}

static void refuse(const char *fname, const char *hdr, size_t dlen, const char *phrase)
{
    size_t len;
    uint8_t *img = image(hdr, strlen(hdr), NULL, dlen, &len);
    refuse_raw(fname, img, len, phrase);
    free(img);
}

/* a header length prefix with nothing (or little) behind it */
static void refuse_hlen(const char *fname, uint64_t hlen, size_t extra, const char *phrase)
{
    uint8_t b[64] = {0};
    for (int k = 0; k < 8; k++)
        b[k] = (uint8_t)(hlen >> (8 * k));
    memset(b + 8, ' ', extra);
    b[8] = '{';
    refuse_raw(fname, b, 8 + extra, phrase);
}

static int same_table(const aim_st_file *a, const aim_st_file *b)
{
    if (a->ntensors != b->ntensors || a->nmeta != b->nmeta || a->header_len != b->header_len ||
        a->data_len != b->data_len)
        return 0;
    for (int i = 0; i < a->ntensors; i++) {
        const aim_st_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        if (strcmp(x->name, y->name) || x->dtype != y->dtype || x->ndim != y->ndim ||
            x->begin != y->begin || x->end != y->end ||
            memcmp(x->shape, y->shape, sizeof x->shape))
            return 0;
    }
    for (int i = 0; i < a->nmeta; i++)
        if (strcmp(a->meta_keys[i], b->meta_keys[i]) || strcmp(a->meta_vals[i], b->meta_vals[i]))
            return 0;
    return 1;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *buf = NULL;
    aim_err e;
    if (aim_read_file(path, 1 << 24, &buf, len, &e) != 0)
        return NULL;
    return buf;
}

static void test_round_trip(void)
{
    aim_err e = {{0}};
    const char *p = tap_path("rt.safetensors");
    float w[6] = {1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -1e7f};
    int64_t ids[4] = {0, -1, INT64_MAX, INT64_MIN};
    uint8_t pix[12] = {0, 1, 2, 3, 127, 128, 200, 250, 251, 252, 254, 255};
    double scalar = 3.14159;
    aim_st_entry t[5] = {
        {.name = "weight", .dtype = AIM_F32, .ndim = 2, .shape = {2, 3}, .data = w},
        {.name = "ids", .dtype = AIM_I64, .ndim = 1, .shape = {4}, .data = ids},
        {.name = "empty", .dtype = AIM_F32, .ndim = 2, .shape = {0, 5}, .data = NULL},
        {.name = "pix/\"q\"\\é", .dtype = AIM_U8, .ndim = 3, .shape = {3, 2, 2}, .data = pix},
        {.name = "scalar", .dtype = AIM_F64, .ndim = 0, .data = &scalar},
    };
    const char *meta[] = {
        "format", "pt",
        "quote", "say \"hi\" \\ back/slash",
        "ctrl", "a\001b\tc\nd",
        "utf8", "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac",
        "", "empty key",
    };
    int rc = aim_st_write(p, t, 5, meta, 5, &e);
    tap_ok(rc == 0, "write 5 tensors (F32, I64, zero-size, U8, 0-d F64) and metadata %s", e.msg);

    size_t len = 0;
    uint8_t *raw = slurp(p, &len);
    uint64_t hlen = 0;
    for (int k = 7; raw && k >= 0; k--)
        hlen = hlen << 8 | raw[k];
    size_t want_data = 24 + 32 + 0 + 12 + 8;
    tap_ok(raw && (8 + hlen) % 8 == 0 && len == 8 + hlen + want_data,
           "header padded to 8 bytes, data packed (%zu bytes, header %llu)", len,
           (unsigned long long)hlen);
    char *hdr = raw ? calloc(1, hlen + 1) : NULL;
    if (hdr)
        memcpy(hdr, raw + 8, hlen);
    tap_ok(hdr && !strncmp(hdr, "{\"__metadata__\":{\"format\":\"pt\"", 30) &&
               strstr(hdr, "\"a\\u0001b\\u0009c\\u000ad\"") &&
               strstr(hdr, "\"say \\\"hi\\\" \\\\ back/slash\"") &&
               strstr(hdr, "\"scalar\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[68,76]}") &&
               strstr(hdr, "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[56,56]}"),
           "header text is escaped JSON in the given order");
    tap_ok(hdr && (hdr[hlen - 1] == ' ' || hdr[hlen - 1] == '}'),
           "header ends in '}' or padding spaces");
    free(hdr);

    aim_st_file *f = aim_st_open(p, &e);
    tap_ok(f != NULL, "open the written file %s", f ? "" : e.msg);
    if (!f) {
        free(raw);
        return;
    }
    int order = f->ntensors == 5;
    for (int i = 0; order && i < 5; i++)
        order = !strcmp(f->tensors[i].name, t[i].name);
    tap_ok(order, "tensors come back in data order");
    int shapes = 1;
    for (int i = 0; i < 5; i++) {
        const aim_st_tensor *x = aim_st_find(f, t[i].name);
        shapes &= x && x->dtype == t[i].dtype && x->ndim == t[i].ndim &&
                  !memcmp(x->shape, t[i].shape, sizeof(int64_t) * (size_t)t[i].ndim);
    }
    tap_ok(shapes, "dtypes and shapes match");
    const aim_st_tensor *x;
    x = aim_st_find(f, "weight");
    tap_ok(x && x->begin == 0 && x->end == 24 && !memcmp(aim_st_data(f, x), w, sizeof w),
           "F32 [2, 3] data");
    x = aim_st_find(f, "ids");
    tap_ok(x && x->end - x->begin == 32 && !memcmp(aim_st_data(f, x), ids, sizeof ids),
           "I64 data with INT64_MIN/MAX");
    x = aim_st_find(f, "pix/\"q\"\\é");
    tap_ok(x && x->end - x->begin == 12 && !memcmp(aim_st_data(f, x), pix, sizeof pix),
           "U8 [3, 2, 2] data under an escaped name");
    x = aim_st_find(f, "scalar");
    double got = 0;
    if (x)
        memcpy(&got, aim_st_data(f, x), 8);
    tap_ok(x && x->ndim == 0 && x->end - x->begin == 8 && got == scalar, "0-d F64 scalar");
    x = aim_st_find(f, "empty");
    tap_ok(x && x->begin == x->end && aim_st_data(f, x) != NULL, "zero-size tensor");
    tap_ok(aim_st_find(f, "nope") == NULL && aim_st_find(f, "") == NULL,
           "find of a missing name gives NULL");
    int metas = f->nmeta == 5;
    for (int i = 0; metas && i < 5; i++)
        metas = !strcmp(f->meta_keys[i], meta[2 * i]) && aim_st_meta(f, meta[2 * i]) &&
                !strcmp(aim_st_meta(f, meta[2 * i]), meta[2 * i + 1]);
    tap_ok(metas, "metadata with escapes, control characters, UTF-8 and an empty key");
    tap_ok(aim_st_meta(f, "missing") == NULL, "missing metadata key gives NULL");
    tap_ok(!strcmp(f->path, p) && f->data_len == want_data && f->header_len == hlen,
           "path, header and data lengths");

    aim_st_file *pk = aim_st_peek(p, &e);
    tap_ok(pk && same_table(f, pk) && pk->data == NULL && aim_st_data(pk, pk->tensors) == NULL,
           "peek agrees with open and reads no data");
    aim_st_close(pk);

    aim_st_file *mem = raw ? aim_st_parse(raw, len, "mem", &e) : NULL;
    tap_ok(mem && same_table(f, mem) && !memcmp(mem->data, f->data, want_data) &&
               !strcmp(mem->path, "mem"),
           "parse of the memory image agrees with open");
    aim_st_close(mem);

    /* random corruption must never crash; what is accepted is consistent */
    aim_rng r;
    aim_rng_seed(&r, 7);
    int accepted = 0, consistent = 1;
    uint8_t *m = malloc(len);
    for (int it = 0; raw && it < 4000; it++) {
        memcpy(m, raw, len);
        int flips = 1 + (int)aim_rng_below(&r, 4);
        for (int k = 0; k < flips; k++) {
            size_t at = aim_rng_below(&r, (uint32_t)(it % 2 ? len : 8 + hlen));
            m[at] = (uint8_t)aim_rng_u64(&r);
        }
        size_t cut = it % 5 == 0 ? aim_rng_below(&r, (uint32_t)len + 1) : len;
        aim_st_file *g = aim_st_parse(m, cut, "fuzz", NULL);
        if (g) {
            accepted++;
            uint64_t pos = 0;
            for (int i = 0; i < g->ntensors; i++) {
                consistent &= g->tensors[i].begin == pos && g->tensors[i].end <= g->data_len;
                pos = g->tensors[i].end;
            }
            consistent &= pos == g->data_len && 8 + g->header_len + g->data_len == cut;
        }
        aim_st_close(g);
    }
    free(m);
    tap_ok(raw && consistent, "4000 corrupted images: no crash, %d accepted, all consistent", accepted);
    int prefixes = 1;
    for (size_t k = 0; raw && k < len; k++) {
        aim_st_file *g = aim_st_parse(raw, k, "cut", &e);
        prefixes &= g == NULL && tap_contains(e.msg, "cut");
        aim_st_close(g);
    }
    tap_ok(raw && prefixes, "every truncation of the file is refused");
    free(raw);
    aim_st_close(f);
}

static void test_python_file(void)
{
    aim_err e = {{0}};
    /* safetensors.torch.save_file({"a": torch.tensor([[1., 2.], [3., 4.]])},
     * "py.safetensors", metadata={"format": "pt"}) */
    static const uint8_t py[] = {
        88, 0, 0, 0, 0, 0, 0, 0,
        '{', '"', '_', '_', 'm', 'e', 't', 'a', 'd', 'a', 't', 'a', '_', '_', '"', ':',
        '{', '"', 'f', 'o', 'r', 'm', 'a', 't', '"', ':', '"', 'p', 't', '"', '}', ',',
        '"', 'a', '"', ':', '{', '"', 'd', 't', 'y', 'p', 'e', '"', ':', '"', 'F', '3',
        '2', '"', ',', '"', 's', 'h', 'a', 'p', 'e', '"', ':', '[', '2', ',', '2', ']',
        ',', '"', 'd', 'a', 't', 'a', '_', 'o', 'f', 'f', 's', 'e', 't', 's', '"', ':',
        '[', '0', ',', '1', '6', ']', '}', '}',
        0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40,
        0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40,
    };
    const char *p = tap_path("py.safetensors");
    tap_write(p, py, sizeof py);
    aim_st_file *f = aim_st_open(p, &e);
    const aim_st_tensor *a = f ? aim_st_find(f, "a") : NULL;
    const float *v = a ? aim_st_data(f, a) : NULL;
    tap_ok(f && f->ntensors == 1 && a && a->dtype == AIM_F32 && a->ndim == 2 &&
               a->shape[0] == 2 && a->shape[1] == 2 && v && v[0] == 1 && v[1] == 2 &&
               v[2] == 3 && v[3] == 4,
           "a file as Python writes it: a = [[1, 2], [3, 4]] %s", f ? "" : e.msg);
    tap_ok(f && f->nmeta == 1 && aim_st_meta(f, "format") && !strcmp(aim_st_meta(f, "format"), "pt"),
           "its metadata format = pt");
    aim_st_close(f);

    /* our writer produces the same bytes */
    float vals[4] = {1, 2, 3, 4};
    aim_st_entry t = {.name = "a", .dtype = AIM_F32, .ndim = 2, .shape = {2, 2}, .data = vals};
    const char *meta[] = {"format", "pt"};
    const char *q = tap_path("ours.safetensors");
    size_t len = 0;
    uint8_t *ours = NULL;
    if (aim_st_write(q, &t, 1, meta, 1, &e) == 0)
        ours = slurp(q, &len);
    tap_ok(ours && len == sizeof py && !memcmp(ours, py, len),
           "aim_st_write writes the same bytes as Python");
    free(ours);

    /* a hand-written header: whitespace, key order, every escape */
    const char *hdr =
        "\t{ \"b\" : { \"data_offsets\" : [ 0 , 2 ] ,\n \"shape\" : [ 2 ] , \"dtype\" : \"U8\" } ,\r\n"
        " \"__metadata__\" : { \"e\\u00e9\" : \"\\ud83d\\ude00 \\/\\b\\f\\n\\r\\t\\\"\\\\\\u00E9\" },"
        " \"z\": {\"dtype\": \"BOOL\", \"shape\": [0], \"data_offsets\": [2, 2]},"
        " \"y\": {\"dtype\": \"I16\", \"shape\": [], \"data_offsets\": [2, 4]}}    ";
    uint8_t data[4] = {7, 9, 0x34, 0x12};
    uint8_t *img = image(hdr, strlen(hdr), data, 4, &len);
    f = aim_st_parse(img, len, "hand", &e);
    const char *mv = f ? aim_st_meta(f, "e\xc3\xa9") : NULL;
    tap_ok(mv && !strcmp(mv, "\xf0\x9f\x98\x80 /\b\f\n\r\t\"\\\xc3\xa9"),
           "escapes, surrogate pairs and \\u00XX decode to UTF-8 %s", f ? "" : e.msg);
    const aim_st_tensor *b = f ? aim_st_find(f, "b") : NULL;
    const aim_st_tensor *y = f ? aim_st_find(f, "y") : NULL;
    int16_t yv = 0;
    if (y)
        memcpy(&yv, aim_st_data(f, y), 2);
    tap_ok(f && f->ntensors == 3 && b && b->dtype == AIM_U8 &&
               ((const uint8_t *)aim_st_data(f, b))[1] == 9 && y && y->dtype == AIM_I16 &&
               yv == 0x1234 && !strcmp(f->tensors[1].name, "z") && !strcmp(f->tensors[2].name, "y"),
           "any key order and whitespace; tensors sorted by offset");
    aim_st_close(f);
    free(img);

    /* the empty file: {} and no data */
    const char *ep = tap_path("empty.safetensors");
    f = NULL;
    if (aim_st_write(ep, NULL, 0, NULL, 0, &e) == 0)
        f = aim_st_open(ep, &e);
    tap_ok(f && f->ntensors == 0 && f->nmeta == 0 && f->data_len == 0 && f->header_len == 8,
           "an empty file (no tensors, no metadata) round-trips %s", f ? "" : e.msg);
    aim_st_close(f);
    aim_st_close(NULL);
}

static void test_hostile(void)
{
    const char *T = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";
    char buf[4096];

    /* the length prefix */
    uint8_t five[5] = {1, 0, 0, 0, 0};
    refuse_raw("zero.st", five, 0, "too short");
    refuse_raw("five.st", five, 5, "too short");
    refuse_hlen("hlen_past.st", 100, 20, "runs past the end");
    refuse_hlen("hlen_2_63.st", (uint64_t)1 << 63, 20, "exceeds the 100 MB limit");
    refuse_hlen("hlen_max.st", UINT64_MAX, 20, "exceeds the 100 MB limit");
    refuse_hlen("hlen_100mb.st", 100000001, 20, "exceeds the 100 MB limit");
    refuse_hlen("hlen_zero.st", 0, 0, "empty");

    /* JSON syntax */
    refuse("trunc.st", T, 4, "unexpected end of the header inside an object");
    snprintf(buf, sizeof buf, "%s,}", T);
    refuse("comma.st", buf, 4, "trailing comma before '}'");
    refuse("comma_arr.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}", 4,
           "trailing comma before ']'");
    refuse("squote.st", "{'a':{}}", 0, "single-quoted");
    refuse("unterm.st", "{\"a", 0, "unterminated string");
    refuse("escape.st", "{\"__metadata__\":{\"k\":\"\\q\"}}", 0, "invalid escape");
    refuse("hex.st", "{\"__metadata__\":{\"k\":\"\\u12G4\"}}", 0, "4 hex digits");
    refuse("surr_hi.st", "{\"__metadata__\":{\"k\":\"\\ud800\"}}", 0, "lone high surrogate");
    refuse("surr_hi2.st", "{\"__metadata__\":{\"k\":\"\\ud800\\u0041\"}}", 0, "lone high surrogate");
    refuse("surr_lo.st", "{\"__metadata__\":{\"k\":\"\\udc00x\"}}", 0, "lone low surrogate");
    refuse("utf8_ff.st", "{\"__metadata__\":{\"k\":\"\xff\"}}", 0, "invalid UTF-8 byte 0xff");
    refuse("utf8_overlong.st", "{\"__metadata__\":{\"\xc0\xaf\":\"v\"}}", 0, "invalid UTF-8");
    refuse("utf8_surr.st", "{\"__metadata__\":{\"k\":\"\xed\xa0\x80\"}}", 0, "invalid UTF-8");
    refuse("utf8_cut.st", "{\"__metadata__\":{\"k\":\"\xe2\x82\"}}", 0, "invalid UTF-8");
    refuse("ctrl.st", "{\"__metadata__\":{\"k\":\"a\nb\"}}", 0, "control character 0x0a");
    refuse("nul.st", "{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", 0, "\\u0000");
    size_t k = 0;
    k += (size_t)snprintf(buf, sizeof buf, "{\"a\":");
    for (int i = 0; i < 1000; i++)
        buf[k++] = '[';
    buf[k] = 0;
    refuse("deep.st", buf, 0, "nesting deeper than 16");
    snprintf(buf, sizeof buf, "%s} x", T);
    refuse("garbage.st", buf, 4, "only spaces may follow");
    snprintf(buf, sizeof buf, "%s}\n", T);
    refuse("newline.st", buf, 4, "only spaces may follow");
    snprintf(buf, sizeof buf, "%s}{}", T);
    refuse("two.st", buf, 4, "only spaces may follow");
    refuse("lead0.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4,
           "leading zeros");
    refuse("literal.st", "{\"a\":tru}", 0, "invalid literal");
    refuse("colon.st", "{\"a\" {}}", 0, "expected ':'");

    /* schema */
    refuse("array.st", "[1, 2]", 0, "not a JSON object (found an array)");
    refuse("string.st", "\"x\"", 0, "not a JSON object (found a string)");
    refuse("entry_arr.st", "{\"a\":[1]}", 0, "tensor 'a': entry must be an object, found an array");
    refuse("entry_true.st", "{\"a\":true}", 0, "entry must be an object, found true");
    refuse("no_dtype.st", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing field 'dtype'");
    refuse("no_shape.st", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing field 'shape'");
    refuse("no_offsets.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing field 'data_offsets'");
    refuse("unknown_field.st",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"foo\":1}}", 4,
           "unknown field 'foo'");
    refuse("dup_field.st",
           "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
           "duplicate field 'dtype'");
    refuse("f8.st", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
           "unsupported dtype 'F8_E4M3'");
    refuse("dtype_num.st", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
           "dtype must be a string");
    refuse("neg_dim.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
           "shape holds a negative integer (-1)");
    refuse("float_dim.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
           "shape holds 1.0, which is not an integer");
    refuse("exp_dim.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4,
           "not an integer");
    refuse("null_dim.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]}}", 4,
           "shape must hold integers, found null");
    refuse("shape_str.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4,
           "shape must be an array");
    refuse("big_dim.st",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,4]}}", 4,
           "out of range");
    refuse("overflow.st",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
           "\"data_offsets\":[0,4]}}", 4, "is too large");
    refuse("ndim9.st",
           "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
           "shape has 9 dimensions");
    refuse("off_range.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}", 4,
           "extend beyond the data section (4 bytes)");
    refuse("off_rev.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
           "begin after end");
    refuse("off_three.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", 4,
           "exactly two integers, found 3");
    refuse("off_neg.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
           "negative");
    refuse("mismatch.st", "{\"x\":{\"dtype\":\"F32\",\"shape\":[5,5],\"data_offsets\":[0,96]}}", 96,
           "tensor 'x' data_offsets [0, 96] do not match F32 [5, 5] (100 bytes)");
    refuse("overlap.st",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
           "tensor 'b' data_offsets [4, 12] overlap tensor 'a' [0, 8]");
    refuse("same.st",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "overlap");
    refuse("hole.st",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12,
           "bytes [4, 8) of the data section belong to no tensor");
    refuse("lead_hole.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
           "bytes [0, 4)");
    snprintf(buf, sizeof buf, "%s}", T);
    refuse("trailing.st", buf, 8, "4 trailing bytes after the last tensor");
    refuse("no_tensors.st", "{}", 3, "3 trailing bytes");
    refuse("dup_name.st",
           "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
           "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2,
           "duplicate tensor name 'a'");
    refuse("empty_name.st", "{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
           "empty tensor name");
    refuse("dup_meta.st", "{\"__metadata__\":{\"k\":\"1\",\"j\":\"2\",\"k\":\"3\"}}", 0,
           "duplicate __metadata__ key 'k'");
    refuse("dup_meta_block.st", "{\"__metadata__\":{},\"__metadata__\":{}}", 0,
           "duplicate key '__metadata__'");
    refuse("meta_num.st", "{\"__metadata__\":{\"k\":1}}", 0,
           "__metadata__ value for key 'k' is not a string (found a number)");
    refuse("meta_arr.st", "{\"__metadata__\":[]}", 0, "__metadata__ must be an object");
    /* a long, control-laden name is cut and kept on one line */
    k = (size_t)snprintf(buf, sizeof buf, "{\"\\t");
    for (int i = 0; i < 300; i++)
        buf[k++] = 'n';
    snprintf(buf + k, sizeof buf - k, "\\n\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,2]}}");
    refuse("long_name.st", buf, 2, "tensor '?nnnnnnnnnn");

    /* a data section too large to load: peek reads the table, open refuses
     * before allocating (a sparse file, so nothing is written to disk) */
    const char *big_hdr =
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[4831838208],\"data_offsets\":[0,4831838208]},"
        "\"b\":{\"dtype\":\"U8\",\"shape\":[4831838208],\"data_offsets\":[4831838208,9663676416]}}";
    size_t blen;
    uint8_t *bimg = image(big_hdr, strlen(big_hdr), NULL, 0, &blen);
    const char *bp = tap_path("big.st");
    tap_write(bp, bimg, blen);
    free(bimg);
    if (truncate(bp, (off_t)(blen + 9663676416ULL)) != 0) {
        tap_skip("no sparse files here");
        tap_skip("no sparse files here");
    } else {
        aim_err be = {{0}};
        aim_st_file *bf = aim_st_peek(bp, &be);
        tap_ok(bf && bf->ntensors == 2 && bf->data_len == 9663676416ULL,
               "peek of a 9 GiB file reads its table %s", bf ? "" : be.msg);
        aim_st_close(bf);
        bf = aim_st_open(bp, &be);
        tap_ok(!bf && tap_contains(be.msg, "big.st") && tap_contains(be.msg, "too large to load"),
               "open refuses to load it: %s", be.msg);
        aim_st_close(bf);
    }
    unlink(bp);

    /* not a file */
    aim_err e = {{0}};
    aim_st_file *f = aim_st_open(tap_tmpdir(), &e);
    tap_ok(!f && tap_contains(e.msg, "folder"), "a folder is refused: %s", e.msg);
    f = aim_st_peek(tap_path("missing.st"), &e);
    tap_ok(!f && tap_contains(e.msg, "missing.st"), "a missing file is refused: %s", e.msg);
    tap_ok(aim_st_parse(NULL, 0, NULL, &e) == NULL && tap_contains(e.msg, "<memory>"),
           "parse of nothing is refused: %s", e.msg);
}

static void test_writer_errors(void)
{
    aim_err e = {{0}};
    const char *p = tap_path("keep.safetensors");
    uint8_t u[4] = {1, 2, 3, 4};
    aim_st_entry good = {.name = "u", .dtype = AIM_U8, .ndim = 1, .shape = {4}, .data = u};
    tap_ok(aim_st_write(p, &good, 1, NULL, 0, &e) == 0, "write a file to keep");
    size_t len0 = 0, len1 = 0;
    uint8_t *before = slurp(p, &len0);

    aim_st_entry dup[2] = {good, good};
    tap_ok(aim_st_write(p, dup, 2, NULL, 0, &e) == -1 && tap_contains(e.msg, "keep.safetensors") &&
               tap_contains(e.msg, "duplicate tensor name 'u'"),
           "duplicate names are refused: %s", e.msg);
    uint8_t *after = slurp(p, &len1);
    tap_ok(before && after && len0 == len1 && !memcmp(before, after, len0),
           "the existing file is left intact");
    free(after);

    aim_st_entry bad = good;
    bad.name = "";
    tap_ok(aim_st_write(p, &bad, 1, NULL, 0, &e) == -1 && tap_contains(e.msg, "empty name"),
           "an empty name is refused: %s", e.msg);
    bad = good;
    bad.name = "__metadata__";
    tap_ok(aim_st_write(p, &bad, 1, NULL, 0, &e) == -1 && tap_contains(e.msg, "reserved"),
           "'__metadata__' as a tensor name is refused: %s", e.msg);
    bad = good;
    bad.name = "bad\xff";
    tap_ok(aim_st_write(p, &bad, 1, NULL, 0, &e) == -1 && tap_contains(e.msg, "UTF-8"),
           "a name that is not UTF-8 is refused: %s", e.msg);
    tap_ok(tap_contains(e.msg, "'bad?'"), "and the message stays valid UTF-8");
    bad = good;
    bad.dtype = AIM_DTYPE_NONE;
    tap_ok(aim_st_write(p, &bad, 1, NULL, 0, &e) == -1 && tap_contains(e.msg, "unsupported dtype"),
           "an unknown dtype is refused: %s", e.msg);
    bad = good;
    bad.ndim = 9;
    tap_ok(aim_st_write(p, &bad, 1, NULL, 0, &e) == -1 && tap_contains(e.msg, "9 dimensions"),
           "ndim 9 is refused: %s", e.msg);
    bad = good;
    bad.shape[0] = -4;
    tap_ok(aim_st_write(p, &bad, 1, NULL, 0, &e) == -1 && tap_contains(e.msg, "negative"),
           "a negative dimension is refused: %s", e.msg);
    bad = good;
    bad.data = NULL;
    tap_ok(aim_st_write(p, &bad, 1, NULL, 0, &e) == -1 && tap_contains(e.msg, "no data"),
           "missing data is refused: %s", e.msg);
    const char *meta[] = {"k", "1", "k", "2"};
    tap_ok(aim_st_write(p, &good, 1, meta, 2, &e) == -1 &&
               tap_contains(e.msg, "duplicate metadata key 'k'"),
           "duplicate metadata keys are refused: %s", e.msg);
    const char *meta_null[] = {"k", NULL};
    tap_ok(aim_st_write(p, &good, 1, meta_null, 1, &e) == -1 && tap_contains(e.msg, "NULL"),
           "a NULL metadata value is refused: %s", e.msg);
    tap_ok(aim_st_write(tap_path("no/such/dir/x.st"), &good, 1, NULL, 0, &e) == -1 &&
               tap_contains(e.msg, "no/such/dir"),
           "a write into a missing folder fails: %s", e.msg);
    after = slurp(p, &len1);
    tap_ok(before && after && len0 == len1 && !memcmp(before, after, len0),
           "after all refused writes the file is still intact");
    free(after);
    free(before);
}

int main(void)
{
    test_round_trip();
    test_python_file();
    test_hostile();
    test_writer_errors();
    return tap_done();
}
