/* fuzz_checkpoint.c - checkpoint loading (CRCs, metadata, state). */
#include "config.h"

#include "aim/io.h"
#include "aim/train.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aim_err e;
    const char *p = fuzz_file(data, size, "ckpt.safetensors");
    aim_train_state s;
    aim_pretrain_opts o;
    aim_st_file *meta = NULL;
    aim_model *m = aim_checkpoint_load(p, &s, &o, &meta, &e);
    aim_model_free(m);
    aim_st_close(meta);
    return 0;
}
