/*
 * tap.h - a tiny TAP producer for the C tests (automake's tap-driver reads
 * it). Every check prints "ok N - ..." or "not ok N - ..."; tap_done()
 * prints the plan and returns the exit status (non-zero if anything failed).
 * Header-only on purpose: each test is one program, everything is static.
 */
#ifndef AIM_TAP_H
#define AIM_TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3)))
static int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond)
        tap_failed++;
    fflush(stdout);
    return cond;
}

/* the larger of a running worst w and x, a NaN being the worst of all:
 * fmax drops a NaN, so a NaN error would pass every bound that is
 * accumulated with it */
__attribute__((unused))
static double tap_worse(double w, double x)
{
    if (isnan(w))
        return w;
    return x <= w ? w : x;
}

/* diagnostics, shown by the driver in the log */
__attribute__((format(printf, 1, 2), unused))
static void tap_diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

__attribute__((unused))
static int tap_skip(const char *why)
{
    tap_n++;
    printf("ok %d # SKIP %s\n", tap_n, why);
    return 1;
}

/* a string contains a substring (messages are checked this way) */
__attribute__((unused))
static int tap_contains(const char *hay, const char *needle)
{
    return hay && needle && strstr(hay, needle) != NULL;
}

/* |a-b| <= atol + rtol*|b| */
__attribute__((unused))
static int tap_close(double a, double b, double rtol, double atol)
{
    return fabs(a - b) <= atol + rtol * fabs(b);
}

/* A private temporary folder for the test's files, removed by tap_done(). */
static char tap_dir_buf[256];

__attribute__((unused))
static const char *tap_tmpdir(void)
{
    if (!tap_dir_buf[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tap_dir_buf, sizeof tap_dir_buf, "%s/aimtest.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tap_dir_buf)) {
            printf("Bail out! cannot create a temporary folder\n");
            exit(1);
        }
    }
    return tap_dir_buf;
}

/* Path of a file inside the temporary folder (static buffer ring). */
__attribute__((unused))
static const char *tap_path(const char *name)
{
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ & 7];
    snprintf(b, 512, "%s/%s", tap_tmpdir(), name);
    return b;
}

__attribute__((unused))
static void tap_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len)) {
        printf("Bail out! cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

static int tap_done(void)
{
    printf("1..%d\n", tap_n);
    if (tap_dir_buf[0]) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tap_dir_buf);
        if (system(cmd) != 0)
            fprintf(stderr, "warning: could not remove %s\n", tap_dir_buf);
    }
    return tap_failed ? 1 : 0;
}

#endif
