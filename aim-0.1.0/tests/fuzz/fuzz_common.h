/*
 * fuzz_common.h - shared bits of the libFuzzer harnesses (tests/fuzz/):
 * writing an input to a private temporary file, for the loaders that take
 * paths. Built only by `make fuzz` (clang -fsanitize=fuzzer).
 */
#ifndef AIM_FUZZ_COMMON_H
#define AIM_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* a file named `name` in a per-process folder under $TMPDIR (default /tmp;
 * a tmpfs such as /dev/shm makes the harnesses that fsync much faster),
 * holding the input */
static const char *fuzz_file(const uint8_t *data, size_t size, const char *name)
{
    static char dir[128], path[200];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/aimfuzz.%ld", t && *t && strlen(t) < 80 ? t : "/tmp",
                 (long)getpid());
        mkdir(dir, 0700);
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    return path;
}

#endif
