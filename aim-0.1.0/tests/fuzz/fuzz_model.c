/* fuzz_model.c - the model, probe and LoRA loaders on files: every tensor
 * is checked before a slab is allocated, under a loader allocation limit
 * (aim_set_mem_limit) of 256 MiB, so no input may abort, leak or reach
 * libFuzzer's RSS limit. */
#include "config.h"

#include "aim/io.h"
#include "aim/model.h"
#include "aim/probe.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aim_set_mem_limit((uint64_t)256 << 20);
    aim_err e;
    const char *p = fuzz_file(data, size, "model.safetensors");
    /* the header-only check aim.load runs before charging the model */
    aim_st_file *f = aim_st_peek(p, &e);
    if (f) {
        aim_config c;
        aim_model_check_st(f, &c, &e);
        aim_st_close(f);
    }
    aim_model *m = aim_model_load(p, &e);
    if (m) {
        /* adapters from the same file onto a model without them */
        aim_config c = *aim_model_config(m);
        aim_model *bare = aim_model_new(&c, 0, &e);
        if (bare)
            aim_model_load_lora(bare, p, &e);
        aim_model_free(bare);
    }
    aim_model_free(m);
    int blocks[AIM_PROBE_MAX_BLOCKS], nb = 0;
    aim_probe *pr = aim_probe_load(p, blocks, &nb, &e);
    aim_probe_free(pr);
    return 0;
}
