/* fuzz_idx.c - IDX files, plain from memory and gzipped/plain from a file. */
#include "config.h"

#include "aim/data.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aim_err e;
    aim_idx x = {0};
    if (aim_idx_parse(data, size, "fuzz-images-idx3-ubyte", &x, &e) == 0)
        aim_idx_free(&x);
    const char *p = fuzz_file(data, size, "f-images-idx3-ubyte.gz");
    if (aim_idx_read(p, &x, &e) == 0)
        aim_idx_free(&x);
    return 0;
}
