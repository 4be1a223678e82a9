/* fuzz_npy.c - the .npy parser, from memory and through the file reader. */
#include "config.h"

#include "aim/io.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aim_err e;
    aim_array a = {0};
    if (aim_npy_parse(data, size, "fuzz.npy", &a, &e) == 0)
        aim_array_free(&a);
    const char *p = fuzz_file(data, size, "x.npy");
    if (aim_npy_peek(p, &a, &e) == 0)
        aim_array_free(&a);
    return 0;
}
