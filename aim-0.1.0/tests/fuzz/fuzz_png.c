/* fuzz_png.c - PNG decoding with every channel conversion, and a PNG class
 * folder holding the input. */
#include "config.h"

#include "aim/data.h"
#include "aim/io.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aim_err e;
    static const int want[4] = {0, 1, 3, 4};
    aim_image im = {0};
    int c = size ? want[data[size - 1] & 3] : 0;
    if (aim_png_decode(data, size, "fuzz.png", c, &im, &e) == 0)
        aim_image_free(&im);
    /* the folder loader: class "a" with this one image, resized to 8x8 */
    static char dir[220];
    if (!dir[0]) {
        const char *marker = fuzz_file((const uint8_t *)"", 0, "marker");
        snprintf(dir, sizeof dir, "%.*s/pngs", (int)(strrchr(marker, '/') - marker), marker);
        mkdir(dir, 0700);
        char cls[240];
        snprintf(cls, sizeof cls, "%s/a", dir);
        mkdir(cls, 0700);
    }
    char path[240];
    snprintf(path, sizeof path, "%s/a/x.png", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        if (size)
            fwrite(data, 1, size, f);
        fclose(f);
    }
    aim_open_opts o = {.channels = 3, .height = 8, .width = 8};
    aim_dataset *ds = aim_data_open_pngdir(dir, &o, &e);
    aim_dataset_free(ds);
    return 0;
}
