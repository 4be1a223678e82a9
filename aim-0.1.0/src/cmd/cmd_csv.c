/*
 * cmd_csv.c - `aim export-csv RUN [OUT.csv]`: the run's metrics log as a
 * wide CSV (step, then one column per metric), for pandas and spreadsheets.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "aim/metrics.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/opts.h"

static int csv_exec(int argc, char **argv);

const struct aim_cmd cmd_csv_entry = {
    .name = "export-csv",
    .usage = "RUN [OUT.csv]",
    .summary = "a run's metrics as a wide CSV (default RUN/metrics.csv)",
    .help = "RUN is a run folder (or its metrics.jsonl). Columns: step, then every metric in\n"
            "order of first appearance (loss, lr, grad_norm, img_per_s, epoch, time, val_loss,\n"
            "probe_top1_block1, ...); one row per step, empty where a metric was not logged.\n"
            "In pandas: pd.read_csv(\"runs/x/metrics.csv\", index_col=\"step\").",
    .exec = csv_exec,
};

static int csv_exec(int argc, char **argv)
{
    cmd_opt opts[] = {{0}};
    if (cmd_help(&cmd_csv_entry, argc, argv, opts))
        return 0;
    char *pos[2];
    int npos;
    if (cmd_parse("export-csv", argc, argv, opts, pos, &npos, 2))
        return 1;
    if (npos < 1)
        return cmd_fail("export-csv: give a RUN folder (try `aim export-csv --help`)");
    char *in = aim_is_dir(pos[0]) ? aim_xasprintf("%s/metrics.jsonl", pos[0]) : aim_xstrdup(pos[0]);
    char *out = npos > 1 ? aim_xstrdup(pos[1])
                         : (aim_is_dir(pos[0]) ? aim_xasprintf("%s/metrics.csv", pos[0])
                                               : aim_xasprintf("%s.csv", pos[0]));
    aim_err e = {{0}};
    aim_metrics m;
    int rc = 0;
    cmd_remove_temps_on_signal(); /* an interrupted export leaves no *.csv.tmp.* */
    if (aim_metrics_read(in, &m, &e) != 0) {
        rc = cmd_fail("%s", e.msg);
    } else {
        if (aim_metrics_write_csv(&m, out, &e) != 0)
            rc = cmd_fail("%s", e.msg);
        else
            printf("%s: %d events -> %s\n", in, m.n, out);
        aim_metrics_free(&m);
    }
    free(in);
    free(out);
    return rc;
}
