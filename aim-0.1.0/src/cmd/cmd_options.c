/*
 * cmd_options.c - `aim options [JOB] [--markdown]`: every option of the long
 * jobs (pretrain, probe, lora) from the job layer's tables (aim/job.h): its
 * command-line flag, its Lua key, type, default and help. The README's
 * option lists are this command's --markdown output (tests/docs.sh checks
 * that they agree).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "aim/job.h"
#include "cmd/cmd.h"
#include "cmd/opts.h"

static int options_exec(int argc, char **argv);

const struct aim_cmd cmd_options_entry = {
    .name = "options",
    .usage = "[pretrain|probe|lora] [--markdown]",
    .summary = "list the jobs' options: flags, Lua keys, defaults",
    .help = "Every option of a long job, as `aim train|probe|lora` take it on the command line\n"
            "and aim.pretrain / aim.probe / aim.lora take it in their option table, with its\n"
            "default. Both come from one table, so they always agree. --markdown prints\n"
            "the tables the README shows.",
    .exec = options_exec,
};

static const char *type_name(aim_opt_type t)
{
    switch (t) {
    case AIM_OPT_INT: return "integer";
    case AIM_OPT_NUM: return "number";
    case AIM_OPT_BOOL: return "boolean";
    case AIM_OPT_STR: return "string";
    case AIM_OPT_CHOICE: return "string";
    case AIM_OPT_BLOCKS: return "blocks";
    case AIM_OPT_DATA: return "dataset";
    case AIM_OPT_FUNC: return "function";
    case AIM_OPT_PROBE: return "probe";
    }
    return "?";
}

/* text for a Markdown table cell: `|` escaped */
static void cell(const char *s, char *buf, size_t len)
{
    size_t k = 0;
    for (; *s && k + 2 < len; s++) {
        if (*s == '|')
            buf[k++] = '\\';
        buf[k++] = *s;
    }
    buf[k] = 0;
}

static void print_job(const char *job, int markdown)
{
    const aim_opt *t = aim_job_options(job);
    const char *cmd = !strcmp(job, "pretrain") ? "train" : job;
    if (markdown)
        printf("## %s: `aim %s`, `aim.%s`\n\n"
               "| command line | Lua | type | default | what |\n|---|---|---|---|---|\n",
               job, cmd, job);
    else
        printf("%s (aim %s, aim.%s):\n", job, cmd, job);
    for (; t->name; t++) {
        char flag[64] = "", def[64], help[256];
        if (t->where & AIM_OPT_CLI)
            aim_opt_flag(t, flag, sizeof flag);
        aim_opt_default_text(t, def, sizeof def);
        aim_opt_describe(t, help, sizeof help);
        const char *lua = t->where & AIM_OPT_LUA ? t->name : "";
        const char *type = t->type == AIM_OPT_CHOICE ? t->arg : type_name(t->type);
        if (markdown) {
            char f[128], ty[128], h[512];
            cell(flag, f, sizeof f);
            cell(type, ty, sizeof ty);
            cell(t->help, h, sizeof h);
            printf("| %s%s%s | %s%s%s | %s | %s | %s |\n", f[0] ? "`" : "", f, f[0] ? "`" : "",
                   lua[0] ? "`" : "", lua, lua[0] ? "`" : "", ty, def[0] ? def : "-", h);
        } else {
            printf("  %-22s %-14s %-9s %s\n", flag[0] ? flag : "-", lua[0] ? lua : "-", type,
                   help);
        }
    }
}

static int options_exec(int argc, char **argv)
{
    int markdown = 0;
    cmd_opt opts[] = {
        {"markdown", OPT_FLAG, &markdown, NULL, "Markdown tables (the README's)"},
        {0},
    };
    if (cmd_help(&cmd_options_entry, argc, argv, opts))
        return 0;
    char *pos[1];
    int npos;
    if (cmd_parse("options", argc, argv, opts, pos, &npos, 1))
        return 1;
    if (npos && !aim_job_options(pos[0]))
        return cmd_fail("options: no job \"%s\" (pretrain, probe or lora)", pos[0]);
    int first = 1;
    for (int i = 0; aim_job_names[i]; i++) {
        if (npos && strcmp(aim_job_names[i], pos[0]) &&
            !(strcmp(pos[0], "train") == 0 && i == 0))
            continue;
        if (!first)
            printf("\n");
        first = 0;
        print_job(aim_job_names[i], markdown);
    }
    return 0;
}
