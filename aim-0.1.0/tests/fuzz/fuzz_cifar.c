/* fuzz_cifar.c - CIFAR-10 batches from a file. */
#include "config.h"

#include "aim/data.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aim_err e;
    const char *p = fuzz_file(data, size, "data_batch_1.bin");
    aim_dataset *ds = aim_data_open_cifar(p, NULL, &e);
    aim_dataset_free(ds);
    return 0;
}
