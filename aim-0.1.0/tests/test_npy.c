/* test_npy.c - .npy round trips, numpy's exact header bytes, versions 2.0 and
 * 3.0, and hostile files that must fail with a message naming the file. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aim/core.h"
#include "aim/io.h"
#include "tap.h"

/* A .npy image: preamble for `major`, the dict text as given (no padding
 * added unless pad), then len bytes of data. */
static uint8_t *mk_npy(int major, const char *dict, int pad, const void *data, size_t dlen,
                       size_t *out_len)
{
    size_t pre = major == 1 ? 10 : 12;
    size_t hlen = strlen(dict);
    if (pad)
        hlen += 1 + (64 - (pre + hlen + 1) % 64) % 64;
    uint8_t *b = calloc(1, pre + hlen + dlen + 1);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    b[8] = hlen & 0xff;
    b[9] = (hlen >> 8) & 0xff;
    if (pre == 12) {
        b[10] = (hlen >> 16) & 0xff;
        b[11] = (hlen >> 24) & 0xff;
    }
    memcpy(b + pre, dict, strlen(dict));
    if (pad) {
        memset(b + pre + strlen(dict), ' ', hlen - strlen(dict));
        b[pre + hlen - 1] = '\n';
    }
    if (dlen)
        memcpy(b + pre + hlen, data, dlen);
    *out_len = pre + hlen + dlen;
    return b;
}

/* the file (and the same bytes from memory) must fail naming it and saying `phrase` */
static void expect_fail(const char *fname, const uint8_t *bytes, size_t len,
                        const char *phrase, const char *what)
{
    const char *path = tap_path(fname);
    tap_write(path, bytes, len);
    aim_err e = {{0}};
    aim_array a;
    int rc = aim_npy_read(path, &a, &e);
    tap_ok(rc == -1 && a.data == NULL && tap_contains(e.msg, path) &&
               tap_contains(e.msg, phrase),
           "hostile: %s -> %s", what, e.msg);
    aim_err e2 = {{0}};
    rc = aim_npy_parse(bytes, len, fname, &a, &e2);
    tap_ok(rc == -1 && a.data == NULL && tap_contains(e2.msg, fname) &&
               tap_contains(e2.msg, phrase),
           "hostile in memory: %s -> %s", what, e2.msg);
}

static void expect_dict_fail(const char *fname, const char *dict, size_t dlen,
                             const char *phrase, const char *what)
{
    static const uint8_t zeros[64];
    size_t len;
    uint8_t *b = mk_npy(1, dict, 1, zeros, dlen, &len);
    expect_fail(fname, b, len, phrase, what);
    free(b);
}

static int same_array(const aim_array *a, const aim_array *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    size_t n = (size_t)aim_array_numel(a) * aim_dtype_size(a->dtype);
    return n == 0 || !memcmp(a->data, b->data, n);
}

static void round_trip(const char *fname, aim_dtype t, int ndim, const int64_t *shape)
{
    aim_array a;
    memset(&a, 0, sizeof a);
    a.dtype = t;
    a.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        a.shape[i] = shape[i];
    size_t nbytes = (size_t)aim_array_numel(&a) * aim_dtype_size(t);
    a.data = malloc(nbytes ? nbytes : 1);
    uint8_t *p = a.data;
    for (size_t i = 0; i < nbytes; i++)
        p[i] = (uint8_t)(i * 37 + 11);
    if (t == AIM_F32) {
        float *f = a.data;
        for (size_t i = 0; i < nbytes / 4; i++)
            f[i] = (float)i * 0.5f - 3.25f;
    }
    const char *path = tap_path(fname);
    aim_err e = {{0}};
    int rc = aim_npy_write(path, &a, &e);
    tap_ok(rc == 0, "write %s (%s, %d-d): %s", fname, aim_dtype_name(t), ndim,
           rc ? e.msg : "ok");
    aim_array b;
    rc = aim_npy_read(path, &b, &e);
    tap_ok(rc == 0 && same_array(&a, &b), "read %s back identical%s%s", fname,
           rc ? ": " : "", rc ? e.msg : "");
    aim_array_free(&b);
    aim_array c;
    rc = aim_npy_peek(path, &c, &e);
    tap_ok(rc == 0 && c.data == NULL && c.dtype == t && c.ndim == ndim &&
               (ndim == 0 || !memcmp(c.shape, a.shape, sizeof(int64_t) * ndim)),
           "peek %s gives dtype and shape%s%s", fname, rc ? ": " : "", rc ? e.msg : "");
    uint8_t *raw;
    size_t len;
    aim_read_file(path, 1 << 20, &raw, &len, &e);
    size_t hlen = raw[8] | raw[9] << 8;
    tap_ok(raw[6] == 1 && (10 + hlen) % 64 == 0 && raw[10 + hlen - 1] == '\n' &&
               len == 10 + hlen + nbytes,
           "%s: version 1.0, data starts at %zu (a multiple of 64)", fname, 10 + hlen);
    free(raw);
    aim_array_free(&a);
}

int main(void)
{
    aim_err e = {{0}};

    /* ---- round trips */
    int64_t s1[1] = {7};
    round_trip("f32_1d.npy", AIM_F32, 1, s1);
    round_trip("u8_0d.npy", AIM_U8, 0, NULL);
    int64_t s4[4] = {2, 3, 1, 4};
    round_trip("i64_4d.npy", AIM_I64, 4, s4);
    int64_t s2[2] = {3, 5};
    round_trip("f64_2d.npy", AIM_F64, 2, s2);
    round_trip("i32_2d.npy", AIM_I32, 2, s2);
    int64_t s0[2] = {0, 3};
    round_trip("f32_empty.npy", AIM_F32, 2, s0);
    int64_t s8[8] = {1, 2, 1, 2, 1, 2, 1, 2};
    round_trip("u8_8d.npy", AIM_U8, 8, s8);

    /* ---- byte-exact header: numpy.save('z.npy', np.zeros((2, 3), '<f4')) */
    {
        float z[6] = {0};
        aim_array a = {AIM_F32, 2, {2, 3}, z};
        const char *path = tap_path("zeros.npy");
        tap_ok(aim_npy_write(path, &a, &e) == 0, "write zeros((2,3), '<f4')");
        char want[128];
        const char *d = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        memcpy(want, "\x93NUMPY\x01\x00v\x00", 10);
        memset(want + 10, ' ', 117);
        memcpy(want + 10, d, strlen(d));
        want[127] = '\n';
        uint8_t *raw;
        size_t len;
        aim_read_file(path, 1 << 20, &raw, &len, &e);
        tap_ok(len == 128 + 24 && !memcmp(raw, want, 128),
               "header bytes are exactly numpy's (%zu bytes)", len);
        free(raw);
        a.dtype = AIM_U8;
        uint8_t u[6] = {0};
        a.data = u;
        aim_npy_write(path, &a, &e);
        aim_read_file(path, 1 << 20, &raw, &len, &e);
        tap_ok(len > 30 && !memcmp(raw + 10, "{'descr': '|u1',", 16), "uint8 is written as '|u1'");
        free(raw);
        int64_t one[1] = {3};
        aim_array b = {AIM_F32, 1, {0}, z};
        b.shape[0] = one[0];
        aim_npy_write(path, &b, &e);
        aim_read_file(path, 1 << 20, &raw, &len, &e);
        tap_ok(len > 60 && tap_contains((char *)raw + 10, "'shape': (3,), }"),
               "1-d shape is written (3,)");
        free(raw);
        b.ndim = 0;
        aim_npy_write(path, &b, &e);
        aim_read_file(path, 1 << 20, &raw, &len, &e);
        tap_ok(len % 64 == 4 && tap_contains((char *)raw + 10, "'shape': (), }"),
               "0-d shape is written ()");
        free(raw);
        aim_array bad = {AIM_BF16, 1, {3}, z};
        tap_ok(aim_npy_write(path, &bad, &e) == -1 && tap_contains(e.msg, "BF16"),
               "writing an unsupported dtype fails: %s", e.msg);
        aim_array nodata = {AIM_F32, 1, {3}, NULL};
        tap_ok(aim_npy_write(path, &nodata, &e) == -1 && tap_contains(e.msg, "no data"),
               "writing an array without data fails: %s", e.msg);
    }

    /* ---- other versions and header spellings */
    {
        float v[6] = {1, 2, 3, 4, 5, 6};
        size_t len;
        aim_array a;
        uint8_t *b = mk_npy(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                            1, v, sizeof v, &len);
        const char *path = tap_path("v2.npy");
        tap_write(path, b, len);
        int rc = aim_npy_read(path, &a, &e);
        tap_ok(rc == 0 && a.dtype == AIM_F32 && a.ndim == 2 && a.shape[0] == 2 &&
                   a.shape[1] == 3 && !memcmp(a.data, v, sizeof v),
               "version 2.0 file is read%s%s", rc ? ": " : "", rc ? e.msg : "");
        aim_array_free(&a);
        rc = aim_npy_peek(path, &a, &e);
        tap_ok(rc == 0 && a.ndim == 2 && a.shape[1] == 3, "version 2.0 header is peeked");
        free(b);
        b = mk_npy(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", 1, v,
                   sizeof v, &len);
        rc = aim_npy_parse(b, len, "v3.npy", &a, &e);
        tap_ok(rc == 0 && a.ndim == 1 && a.shape[0] == 6 && !memcmp(a.data, v, sizeof v),
               "version 3.0 is read");
        aim_array_free(&a);
        free(b);
        /* keys in another order, double quotes, no trailing comma, no padding */
        b = mk_npy(1, "{ \"shape\" : ( 2 , 3 , ) ,'fortran_order':False,'descr':'<i4'}", 0, v,
                   sizeof v, &len);
        rc = aim_npy_parse(b, len, "odd.npy", &a, &e);
        tap_ok(rc == 0 && a.dtype == AIM_I32 && a.ndim == 2 && a.shape[0] == 2 &&
                   a.shape[1] == 3,
               "keys in any order, spaces, double quotes, no padding%s%s", rc ? ": " : "",
               rc ? e.msg : "");
        aim_array_free(&a);
        free(b);
        b = mk_npy(1, "{'descr': '<u1', 'fortran_order': False, 'shape': (6,)}\n", 0, v, 6,
                   &len);
        rc = aim_npy_parse(b, len, "u1.npy", &a, &e);
        tap_ok(rc == 0 && a.dtype == AIM_U8 && a.shape[0] == 6, "'<u1' is uint8 too");
        aim_array_free(&a);
        free(b);
    }

    /* ---- hostile files */
    {
        static const uint8_t zeros[4096];
        size_t len;
        uint8_t *b;
        const char *ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";

        b = mk_npy(1, ok, 1, zeros, 24, &len);
        b[5] = 'X';
        expect_fail("magic.npy", b, len, "bad magic", "bad magic");
        expect_fail("empty.npy", b, 0, "bad magic", "empty file");
        b[5] = 'Y';
        expect_fail("short.npy", b, 8, "truncated header", "truncated header");
        b[8] = 0xf4;
        b[9] = 0x01;
        expect_fail("hlen.npy", b, 100, "beyond the end", "header length beyond the file");
        b[8] = 118;
        b[9] = 0;
        b[6] = 4;
        expect_fail("version.npy", b, len, "unsupported .npy version 4.0", "unsupported version");
        b[6] = 1;
        b[7] = 1;
        expect_fail("minor.npy", b, len, "unsupported .npy version 1.1", "unsupported minor version");
        b[7] = 0;
        b[20] = 0xe9;
        expect_fail("latin1.npy", b, len, "not printable ASCII", "non-ASCII byte in the header");
        free(b);
        b = mk_npy(2, ok, 1, zeros, 24, &len);
        b[10] = 0;
        b[11] = 0x20; /* 2 MiB */
        expect_fail("bighdr.npy", b, len, "too large", "header length over the 1 MiB cap");
        free(b);

        expect_dict_fail("nokey.npy", "{'descr': '<f4', 'fortran_order': False, }", 24,
                         "missing key 'shape'", "missing key");
        expect_dict_fail("dupkey.npy",
                         "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                         "'shape': (2, 3), }", 24, "duplicate key 'descr'", "duplicate key");
        expect_dict_fail("unknown.npy",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
                         "'x': 1}", 24, "unknown key 'x'", "unknown key");
        expect_dict_fail("bigend.npy",
                         "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24,
                         "big-endian", "big-endian dtype");
        expect_dict_fail("fortran.npy",
                         "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24,
                         "Fortran order", "Fortran order");
        expect_dict_fail("object.npy",
                         "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", 24,
                         "object arrays", "object dtype");
        expect_dict_fail("struct.npy",
                         "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, "
                         "'shape': (3,), }", 24, "structured", "structured dtype");
        expect_dict_fail("complex.npy",
                         "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", 24,
                         "unsupported dtype '<c8'", "complex dtype");
        expect_dict_fail("negdim.npy",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", 24,
                         "negative dimension -2", "negative dimension");
        expect_dict_fail("overflow.npy",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': "
                         "(4294967296, 4294967296, 4294967296), }", 24, "overflow",
                         "dims overflow");
        expect_dict_fail("hugedim.npy",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': "
                         "(99999999999999999999999,), }", 24, "too large",
                         "a dimension beyond int64");
        b = mk_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }",
                   0, zeros, 19, &len);
        tap_ok(len == 100, "a 100-byte file claiming 10^12 elements");
        expect_fail("tera.npy", b, len,
                    "claims shape (1000000, 1000000) = 4000000000000 bytes", "shape of 10^12 "
                    "elements in a 100-byte file");
        free(b);
        expect_dict_fail("trunc.npy",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20,
                         "truncated", "truncated data");
        expect_dict_fail("trail.npy",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28,
                         "4 trailing bytes", "trailing data");
        expect_dict_fail("garbage.npy",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), xyz}", 24,
                         "bad header dict", "garbage in the dict");
        expect_dict_fail("after.npy",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} junk", 24,
                         "garbage after", "garbage after the dict");
        expect_dict_fail("nobrace.npy",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", 24,
                         "bad header dict", "dict not closed");
        b = mk_npy(1, "{'descr': '<f4", 0, zeros, 0, &len);
        expect_fail("unterm.npy", b, len, "unterminated string", "unterminated string");
        free(b);
        expect_dict_fail("newline.npy", "{'descr': '<f4\n', 'fortran_order': False}", 24,
                         "unsupported character", "a newline inside a string");
        expect_dict_fail("notuple.npy",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", 24,
                         "not a tuple", "shape (6) is not a tuple");
        expect_dict_fail("boolword.npy",
                         "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (6,), }", 24,
                         "True or False", "fortran_order not a bool");
        expect_dict_fail("ninedims.npy",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': "
                         "(1, 1, 1, 1, 1, 1, 1, 1, 1), }", 4, "more than 8 dimensions",
                         "more than 8 dimensions");
        expect_dict_fail("floatdim.npy",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (2.5,), }", 24,
                         "bad header dict", "a float dimension");

        /* peek checks the data size against the file too */
        b = mk_npy(1, ok, 1, zeros, 20, &len);
        const char *path = tap_path("peektrunc.npy");
        tap_write(path, b, len);
        aim_array a;
        tap_ok(aim_npy_peek(path, &a, &e) == -1 && tap_contains(e.msg, "truncated") &&
                   tap_contains(e.msg, "peektrunc.npy"),
               "peek reports truncated data: %s", e.msg);
        tap_write(path, b, 40);
        tap_ok(aim_npy_peek(path, &a, &e) == -1 && tap_contains(e.msg, "beyond the end"),
               "peek reports a header cut short: %s", e.msg);
        free(b);
        tap_ok(aim_npy_read(tap_path("missing.npy"), &a, &e) == -1 &&
                   tap_contains(e.msg, "missing.npy"),
               "a missing file is named: %s", e.msg);
    }
    return tap_done();
}
