/* fuzz_safetensors.c - the safetensors parser and the AIM weights loader. */
#include "config.h"

#include "aim/io.h"
#include "aim/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aim_err e;
    aim_st_file *f = aim_st_parse(data, size, "fuzz.safetensors", &e);
    if (f) {
        /* a well-formed container: does the model loader cope with it? */
        aim_model *m = aim_model_from_st(f, &e);
        aim_model_free(m);
        aim_st_close(f);
    }
    return 0;
}
