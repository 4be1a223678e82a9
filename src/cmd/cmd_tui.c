/*
 * cmd_tui.c - `aim tui [SCRIPT.lua] [-- ARGS...]` and plain `aim` on a
 * terminal: the full-screen workbench (src/ui/tui.c) running a script, by
 * default the sample experiment samples/pretrain.lua (Fashion-MNIST and
 * the tiny preset, or synthetic data with a notice when the dataset
 * package is missing). The sample is looked for beside the binary (the
 * build tree), in the source tree it was configured from, and where
 * `make install` puts it. `aim tui --inspect WEIGHTS` runs no script: the
 * Inspect view opens on a saved model (lua/aim/inspector.lua). Nor does
 * `aim tui --compare RUN...`: the runs' loss curves and probes are drawn
 * side by side (lua/aim/compare.lua, aim.compare); every run is read once
 * here first, so a bad one is refused before the screen opens.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aim/dist.h"
#include "aim/engine.h"
#include "aim/metrics.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "ui/tui.h"

static int tui_help(void)
{
    printf("usage: aim tui %s\n\n%s\n\noptions:\n"
           "  --threads T      threads for OpenMP and OpenBLAS\n"
           "  --colors MODE    auto (default), direct, 256, 16 or mono\n"
           "  --ascii          no Unicode glyphs (braille, blocks) even in a UTF-8 locale\n"
           "  --inspect WEIGHTS  open the Inspect view on a saved model (no script)\n"
           "  --compare RUN...   draw up to 8 runs' loss curves and probes together "
           "(no script)\n"
           "  --follow RUN...    watch runs other processes write, live (no script)\n",
           cmd_tui_entry.usage, cmd_tui_entry.help);
    return 0;
}

static int tui_exec(int argc, char **argv);

const struct aim_cmd cmd_tui_entry = {
    .name = "tui",
    .usage = "[--threads T] [--colors auto|direct|256|16|mono] [--ascii] [SCRIPT.lua] [--] "
             "[ARGS...] | RUN_FOLDER | --follow RUN... | --inspect WEIGHTS | --compare RUN...",
    .summary = "the full-screen workbench (also: `aim` alone on a terminal)",
    .help = "Runs SCRIPT.lua (default: samples/pretrain.lua, the tiny model on Fashion-MNIST)\n"
            "under a screen that shows the training loss with its EMA and the learning\n"
            "rate, validation points, a live linear probe per block, reconstructions of\n"
            "a few test images, the job's status and events, and a Lua console whose\n"
            "lines run between training steps (lr(3e-4), pause(), probe(), save(), ...).\n"
            "? lists the keys; they are defined in Lua (aim.ui.bind) and can be changed\n"
            "in $XDG_CONFIG_HOME/aim/init.lua (default ~/.config/aim/init.lua). The\n"
            "console's history is shared with `aim repl`. ARGS go to the script as arg[1..]\n"
            "(the sample takes key=value pairs: steps=200 preset=tiny ...).\n"
            "With --inspect WEIGHTS no script runs: the Inspect view (i) opens on the maps\n"
            "of a saved model for a few test images (one per class): PCA of every block's\n"
            "tokens, the next-patch error and, when the file holds a probe (`aim probe\n"
            "--save`), its attention; m, x and probe are left in the console.\n"
            "With --compare RUN... (up to 8 run folders, or their metrics.jsonl) no script\n"
            "runs: the loss panel overlays the runs' training curves (one colour each, a\n"
            "legend names them; a mark per run with --colors mono or --ascii) and the\n"
            "probe panel groups their last probe's top-1 per block; the console prints a\n"
            "table of them and keeps it as `runs`. aim.compare{...} there shows others;\n"
            "the runs are read again every 2 s while they grow.\n"
            "With a RUN_FOLDER (or --follow RUN_FOLDER) no script runs: the workbench\n"
            "follows a run another process writes (aim train, aim run, rank 0 of\n"
            "mpirun, a probe or LoRA --out folder): its curve, validation points,\n"
            "probes and reconstructions as they come, the status line from its log, and\n"
            "whether the writer is at work, finished or stopped (killed); it survives a\n"
            "resume and a folder that appears later. It cannot be steered from here.\n"
            "--follow RUN RUN... follows several as --compare shows them.",
    .exec = tui_exec,
};

/* a run --follow can watch: a folder (that may still be empty), or one
 * that does not exist yet; 0, or 1 after the message */
static int check_follow(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        cmd_fail("tui: --follow: %s is not a run folder", path);
        return 1;
    }
    return 0;
}

/* a run --compare can show: a folder with a metrics.jsonl (or the file)
 * holding training steps; 0, or 1 after the `aim: tui: ...` message */
static int check_run(const char *path)
{
    int dir = aim_is_dir(path);
    if (!dir && aim_file_size(path, NULL) < 0)
        return cmd_fail("tui: %s: no such run folder", path);
    char *mp = dir ? aim_xasprintf("%s/metrics.jsonl", path) : aim_xstrdup(path);
    if (dir && aim_file_size(mp, NULL) < 0) {
        free(mp);
        return cmd_fail("tui: %s: not a run folder (no metrics.jsonl)", path);
    }
    aim_err e = {{0}};
    aim_metrics m;
    int rc = aim_metrics_read(mp, &m, &e);
    if (rc == 0) {
        aim_compare_run *r = aim_xmalloc(sizeof *r);
        rc = aim_compare_run_from_metrics(&m, mp, "", r, &e);
        free(r);
        aim_metrics_free(&m);
    }
    free(mp);
    return rc == 0 ? 0 : cmd_fail("tui: %s", e.msg);
}

static int tui_exec(int argc, char **argv)
{
    tui_opts o = {0};
    const char *runs[AIM_COMPARE_RUNS + 1];
    int nruns = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return tui_help();
        } else if (!strcmp(a, "--ascii")) {
            o.ascii = 1;
        } else if (!strncmp(a, "--inspect", 9) && (a[9] == 0 || a[9] == '=')) {
            const char *v = a[9] == '=' ? a + 10 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v || !*v)
                return cmd_fail("tui: --inspect expects a weights file");
            if (access(v, R_OK) != 0)
                return cmd_fail("tui: %s: cannot read the weights", v);
            o.inspect = v;
        } else if ((!strncmp(a, "--compare", 9) && (a[9] == 0 || a[9] == '=')) ||
                   (!strncmp(a, "--follow", 8) && (a[8] == 0 || a[8] == '='))) {
            const char *flag = a[2] == 'c' ? "--compare" : "--follow";
            size_t k = strlen(flag);
            if (nruns && o.follow != (a[2] == 'f'))
                return cmd_fail("tui: --compare and --follow do not go together");
            o.follow = a[2] == 'f';
            if (a[k] == '=' && a[k + 1])
                runs[nruns++] = a + k + 1;
            while (i + 1 < argc && argv[i + 1][0] != '-' && nruns < AIM_COMPARE_RUNS + 1)
                runs[nruns++] = argv[++i];
            if (!nruns)
                return cmd_fail("tui: %s expects run folders (or metrics.jsonl files)", flag);
            if (nruns > AIM_COMPARE_RUNS)
                return cmd_fail("tui: %s takes at most %d runs", flag, AIM_COMPARE_RUNS);
        } else if (!strncmp(a, "--threads", 9) || !strncmp(a, "--colors", 8)) {
            int th = a[2] == 't';
            size_t k = th ? 9 : 8;
            const char *v = a[k] == '=' ? a + k + 1 : (a[k] == 0 && i + 1 < argc ? argv[++i] : NULL);
            if (th) {
                char *end;
                long t = v ? strtol(v, &end, 10) : 0;
                if (!v || *end || t < 1 || t > 4096)
                    return cmd_fail("tui: --threads expects a count in 1..4096");
                o.threads = (int)t;
            } else {
                if (!v || (strcmp(v, "auto") && strcmp(v, "direct") && strcmp(v, "256") &&
                           strcmp(v, "16") && strcmp(v, "mono")))
                    return cmd_fail("tui: --colors expects auto, direct, 256, 16 or mono");
                o.colors = v;
            }
        } else if (!strcmp(a, "--")) {
            break;
        } else {
            return cmd_fail("tui: unknown option \"%s\" (try `aim tui --help`)", a);
        }
    }
    char *sample = NULL;
    struct stat st;
    if (nruns == 0 && !o.inspect && i < argc && stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
        runs[nruns++] = argv[i++]; /* `aim tui RUN_FOLDER`: follow it */
        o.follow = 1;
    }
    if (nruns > 0) {
        const char *flag = o.follow ? "--follow" : "--compare";
        if (o.inspect)
            return cmd_fail("tui: %s and --inspect do not go together", flag);
        if (i < argc && strcmp(argv[i], "--") != 0)
            return cmd_fail("tui: %s runs no script (got \"%s\")", flag, argv[i]);
        if (i + 1 < argc)
            return cmd_fail("tui: %s runs no script (got \"%s\")", flag, argv[i + 1]);
        for (int k = 0; k < nruns; k++) /* a followed run may not have begun yet */
            if (o.follow ? check_follow(runs[k]) != 0 : check_run(runs[k]) != 0)
                return 1;
        o.compare = runs;
        o.ncompare = nruns;
        o.script = "compare";
    } else if (o.inspect) {
        if (i < argc)
            return cmd_fail("tui: --inspect runs no script (got \"%s\")", argv[i]);
        o.script = o.inspect;
    } else if (i < argc && strcmp(argv[i], "--") != 0) {
        o.script = argv[i++];
        if (access(o.script, R_OK) != 0)
            return cmd_fail("tui: %s: cannot read the script", o.script);
    } else {
        char tried[2048];
        sample = cmd_sample_path("pretrain.lua", tried, sizeof tried);
        if (!sample)
            return cmd_fail("tui: cannot find the default experiment pretrain.lua (looked at "
                            "%s); give a SCRIPT.lua or set AIM_DATADIR", tried);
        o.script = sample;
    }
    if (i < argc && !strcmp(argv[i], "--"))
        i++;
    o.argc = argc - i;
    o.argv = argv + i;
    if (aim_dist_world()) {
        free(sample);
        return cmd_fail("tui: the workbench runs in one process (mpirun gives its ranks no "
                        "terminal); under mpirun use `aim run SCRIPT.lua` or `aim train`");
    }
    if (!isatty(0) || !isatty(1)) {
        free(sample);
        return cmd_fail("tui: stdin and stdout must be a terminal (for scripts use `aim run`)");
    }
    cmd_set_threads(o.threads);
    char *hist = cmd_history_path(), *init = cmd_config_path("init.lua");
    o.history = hist;
    o.init = init;
    int rc = tui_run(&o);
    free(hist);
    free(init);
    free(sample);
    return rc;
}
