/* fuzz_metrics.c - reading a metrics log back (aim runs, export-csv, the TUI),
 * and CSV/TensorBoard output; fuzz_resume.c covers resuming on one. */
#include "config.h"

#include "aim/metrics.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aim_err e;
    const char *p = fuzz_file(data, size, "metrics.jsonl");
    aim_metrics m;
    if (aim_metrics_read(p, &m, &e) == 0) {
        char out[260];
        snprintf(out, sizeof out, "%s.csv", p);
        aim_metrics_write_csv(&m, out, &e);
        snprintf(out, sizeof out, "%s.tfevents", p);
        aim_metrics_write_tfevents(&m, out, &e);
        aim_metrics_free(&m);
    }
    return 0;
}
