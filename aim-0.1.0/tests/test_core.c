/* test_core.c - errors, checked sizes, files, atomic writes, the RNG. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aim/core.h"
#include "tap.h"

static int write_hello(FILE *f, void *ctx, aim_err *e)
{
    fputs((const char *)ctx, f);
    return 0;
}

static int write_fail(FILE *f, void *ctx, aim_err *e)
{
    fputs("partial", f);
    return aim_errf(e, "injected failure");
}

/* temporaries (*.tmp.*) in the test folder */
static int count_temps(void)
{
    DIR *d = opendir(tap_tmpdir());
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        n += strstr(de->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

/* what a signal handler does mid-write: the temporary goes at once */
static int write_then_abort(FILE *f, void *ctx, aim_err *e)
{
    fputs("half", f);
    fflush(f);
    int *before_after = ctx;
    before_after[0] = count_temps();
    aim_write_atomic_abort();
    before_after[1] = count_temps();
    return aim_errf(e, "interrupted");
}

int main(void)
{
    aim_err e = {{0}};

    /* messages */
    tap_ok(aim_errf(&e, "%s: bad %d", "x.npy", 3) == -1 && !strcmp(e.msg, "x.npy: bad 3"),
           "aim_errf formats and returns -1");
    aim_err_prefix(&e, "loading");
    tap_ok(!strcmp(e.msg, "loading: x.npy: bad 3"), "aim_err_prefix prepends context");
    tap_ok(aim_errf(NULL, "ignored") == -1, "aim_errf accepts a NULL error");

    /* sizes */
    size_t s;
    tap_ok(aim_size_mul(SIZE_MAX / 2, 3, &s) == -1, "size_mul detects overflow");
    tap_ok(aim_size_mul(1000, 1000, &s) == 0 && s == 1000000, "size_mul multiplies");
    tap_ok(aim_size_add(SIZE_MAX, 1, &s) == -1, "size_add detects overflow");
    int64_t big[3] = {1000000, 1000000, 1000000};
    uint64_t numel;
    tap_ok(aim_shape_numel(big, 3, AIM_MAX_ALLOC, &numel) == -1, "numel above the limit is refused");
    int64_t neg[2] = {3, -1};
    tap_ok(aim_shape_numel(neg, 2, AIM_MAX_ALLOC, &numel) == -1, "negative dimension is refused");
    int64_t ok3[3] = {2, 3, 4};
    tap_ok(aim_shape_numel(ok3, 3, AIM_MAX_ALLOC, &numel) == 0 && numel == 24, "numel of 2x3x4");
    int64_t huge[4] = {INT64_MAX, INT64_MAX, 2, 2};
    tap_ok(aim_shape_numel(huge, 4, UINT64_MAX, &numel) == -1, "numel overflow of uint64 is refused");
    tap_ok(aim_try_malloc((size_t)AIM_MAX_ALLOC + 1) == NULL, "try_malloc refuses more than the cap");

    /* files */
    tap_ok(aim_file_size(tap_path("missing"), &e) == -1 && tap_contains(e.msg, "missing"),
           "file_size of a missing file names it: %s", e.msg);
    tap_ok(aim_file_size(tap_tmpdir(), &e) == -1 && tap_contains(e.msg, "folder"),
           "file_size of a folder says so: %s", e.msg);
    const char *p = tap_path("hello.txt");
    tap_ok(aim_write_atomic(p, write_hello, "hello", &e) == 0, "atomic write succeeds");
    uint8_t *buf;
    size_t len;
    tap_ok(aim_read_file(p, 100, &buf, &len, &e) == 0 && len == 5 && !memcmp(buf, "hello", 5),
           "read_file reads it back");
    free(buf);
    tap_ok(aim_read_file(p, 4, &buf, &len, &e) == -1 && tap_contains(e.msg, "too large"),
           "read_file enforces its limit: %s", e.msg);
    tap_ok(aim_write_atomic(p, write_fail, NULL, &e) == -1 && tap_contains(e.msg, "injected"),
           "a failing writer is reported");
    tap_ok(aim_read_file(p, 100, &buf, &len, &e) == 0 && len == 5 && !memcmp(buf, "hello", 5),
           "a failed atomic write leaves the old file intact");
    free(buf);
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", p, (long)getpid());
    struct stat st;
    tap_ok(stat(tmpname, &st) != 0, "no temporary file is left behind");
    tap_ok(count_temps() == 0, "no *.tmp.* of any name is left either");

    /* a symlink planted at the temporary name of old (PATH.tmp.PID) is not
     * followed, and the file it points to is not truncated */
    const char *victim = tap_path("victim");
    tap_write(victim, "precious", 8);
    char planted[600];
    snprintf(planted, sizeof planted, "%s.tmp.%ld", tap_path("sym.txt"), (long)getpid());
    tap_ok(symlink(victim, planted) == 0 &&
               aim_write_atomic(tap_path("sym.txt"), write_hello, "new", &e) == 0,
           "atomic write beside a planted symlink succeeds");
    tap_ok(aim_read_file(victim, 100, &buf, &len, &e) == 0 && len == 8 &&
               !memcmp(buf, "precious", 8),
           "... and the symlink's target is untouched");
    free(buf);
    tap_ok(aim_read_file(tap_path("sym.txt"), 100, &buf, &len, &e) == 0 && len == 3 &&
               !memcmp(buf, "new", 3),
           "... and the file holds what was written");
    free(buf);
    unlink(planted);
    /* replacing a file keeps its permission bits */
    chmod(p, 0600);
    int rc = aim_write_atomic(p, write_hello, "again", &e);
    unsigned mode = stat(p, &st) == 0 ? (unsigned)(st.st_mode & 0777) : 0;
    tap_ok(rc == 0 && mode == 0600, "a 0600 file stays 0600 when replaced (mode %o)", mode);
    /* aim_write_atomic_abort (for signal handlers) removes the temporary */
    int seen[2] = {-1, -1};
    rc = aim_write_atomic(tap_path("abort.txt"), write_then_abort, seen, &e);
    tap_ok(rc == -1 && seen[0] == 1 && seen[1] == 0 && count_temps() == 0,
           "write_atomic_abort removes the temporary in flight (%d before, %d after)", seen[0],
           seen[1]);
    tap_ok(aim_write_atomic(tap_path("no/such/dir/f"), write_hello, "x", &e) == -1 &&
               tap_contains(e.msg, "no/such/dir"),
           "atomic write into a missing folder fails with its name: %s", e.msg);
    tap_ok(!strcmp(aim_basename("a/b/c.png"), "c.png") && !strcmp(aim_basename("c"), "c"),
           "basename");
    {
        const char *in[] = {"a/b/c.png", "c", "/c", "./c", "a//b", "a/"};
        const char *want[] = {"a/b", ".", "/", ".", "a/", "a"};
        int ok = 1;
        for (int i = 0; i < 6; i++) {
            char *d = aim_dirname(in[i]);
            ok &= !strcmp(d, want[i]);
            free(d);
        }
        tap_ok(ok, "dirname: a/b/c.png -> a/b, c -> ., /c -> /");
    }

    /* rng */
    aim_rng a, b;
    aim_rng_seed(&a, 42);
    aim_rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 1000; i++)
        same &= aim_rng_u64(&a) == aim_rng_u64(&b);
    tap_ok(same, "same seed gives the same stream");
    aim_rng_seed(&b, 43);
    tap_ok(aim_rng_u64(&a) != aim_rng_u64(&b), "different seeds differ");
    int counts[7] = {0};
    int inrange = 1;
    for (int i = 0; i < 70000; i++) {
        uint32_t v = aim_rng_below(&a, 7);
        inrange &= v < 7;
        if (v < 7)
            counts[v]++;
    }
    int balanced = 1;
    for (int i = 0; i < 7; i++)
        balanced &= counts[i] > 9400 && counts[i] < 10600;
    tap_ok(inrange && balanced, "rng_below(7) is uniform");
    double sum = 0, sum2 = 0, umin = 1, umax = 0;
    for (int i = 0; i < 100000; i++) {
        double u = aim_rng_uniform(&a);
        umin = u < umin ? u : umin;
        umax = u > umax ? u : umax;
        double z = aim_rng_normal(&a);
        sum += z;
        sum2 += z * z;
    }
    tap_ok(umin >= 0 && umax < 1, "uniform in [0,1)");
    tap_ok(fabs(sum / 100000) < 0.02 && fabs(sum2 / 100000 - 1) < 0.03,
           "normal has mean 0 and variance 1 (%.4f, %.4f)", sum / 100000, sum2 / 100000);
    tap_ok(aim_hash64(1) != aim_hash64(2) && aim_hash64(7) == aim_hash64(7), "hash64 is a function");

    tap_ok(aim_dtype_size(AIM_F32) == 4 && aim_dtype_size(AIM_I64) == 8 && aim_dtype_size(AIM_U8) == 1,
           "dtype sizes");
    tap_ok(!strcmp(aim_dtype_name(AIM_BF16), "BF16"), "dtype names");
    return tap_done();
}
