/*
 * cmd_export.c - `aim export CHECKPOINT OUT.safetensors`: the weights of a
 * checkpoint (or any AIM weights file) without optimizer state, under the
 * AIM.md names, loadable with PyTorch's safetensors.
 */
#include "config.h"

#include <stdio.h>

#include <stdlib.h>

#include "aim/model.h"
#include "aim/train.h"
#include "cmd/cmd.h"
#include "cmd/opts.h"

static int export_exec(int argc, char **argv);

const struct aim_cmd cmd_export_entry = {
    .name = "export",
    .usage = "CHECKPOINT OUT.safetensors",
    .summary = "write the weights of a checkpoint as a plain .safetensors file",
    .help = "Writes every trunk and pixel-head tensor under the AIM.md names (Apple ml-aim\n"
            "trunk names) with the config in the metadata; no optimizer state. The input\n"
            "may be a checkpoint (ckpt-STEP.safetensors), a run folder (its newest\n"
            "checkpoint) or a weights file.",
    .exec = export_exec,
};



static int export_exec(int argc, char **argv)
{
    cmd_opt opts[] = {{0}};
    if (cmd_help(&cmd_export_entry, argc, argv, opts))
        return 0;
    char *pos[2];
    int npos;
    if (cmd_parse("export", argc, argv, opts, pos, &npos, 2))
        return 1;
    if (npos != 2)
        return cmd_fail("export: give CHECKPOINT and OUT.safetensors (try `aim export --help`)");
    aim_err e = {{0}};
    char *in = aim_is_dir(pos[0]) ? aim_checkpoint_latest(pos[0], &e) : aim_xstrdup(pos[0]);
    if (!in)
        return cmd_fail("%s", e.msg);
    aim_model *m = aim_model_load(in, &e);
    if (!m) {
        free(in);
        return cmd_fail("%s", e.msg);
    }
    int rc = 0;
    if (aim_model_save(m, pos[1], &e) != 0)
        rc = cmd_fail("%s", e.msg);
    else
        printf("exported %s -> %s (%llu values)\n", in, pos[1],
               (unsigned long long)aim_params_count(aim_model_params(m), 0));
    free(in);
    aim_model_free(m);
    return rc;
}
