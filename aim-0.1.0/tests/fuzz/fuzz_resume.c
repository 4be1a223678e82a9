/* fuzz_resume.c - resuming a run on a metrics log: the truncation that keeps
 * the lines up to the resume step (and drops garbage), the event file rebuilt
 * from it, and the property that the log is readable afterwards. The first
 * input byte is the resume step. */
#include "config.h"

#include "aim/metrics.h"
#include "aim/runlog.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    aim_err e;
    const char *p = fuzz_file(data + 1, size - 1, "metrics.jsonl");
    char ev[260];
    snprintf(ev, sizeof ev, "%s", p);
    snprintf(strrchr(ev, '/'), sizeof ev - (size_t)(strrchr(ev, '/') - ev),
             "/events.out.tfevents.aim");
    remove(ev);
    aim_runlog *l = aim_runlog_open(p, "fuzz", data[0], &e);
    if (!l)
        abort(); /* a resume never fails on what the log holds */
    aim_runlog_begin(l, data[0] + 1, "train");
    aim_runlog_num(l, "loss", 1.5);
    aim_runlog_end(l);
    if (aim_runlog_close(l, &e) != 0)
        abort();
    aim_metrics m;
    if (aim_metrics_read(p, &m, &e) != 0)
        abort(); /* and leaves a log that reads back */
    for (int i = 0; i + 1 < m.n; i++)
        if (m.rows[i].step > data[0])
            abort(); /* nothing past the resume step survives */
    aim_metrics_free(&m);
    return 0;
}
