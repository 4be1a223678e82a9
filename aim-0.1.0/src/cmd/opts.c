/*
 * opts.c - the option parser shared by all commands (see opts.h).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/opts.h"

static int set_value(const char *cmd, const cmd_opt *o, const char *v)
{
    char *end;
    errno = 0;
    switch (o->kind) {
    case OPT_STR:
        *(const char **)o->dst = v;
        return 0;
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < -2147483647L || x > 2147483647L)
            return cmd_fail("%s: --%s expects an integer, got \"%s\"", cmd, o->name, v);
        *(int *)o->dst = (int)x;
        return 0;
    }
    case OPT_I64: {
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno)
            return cmd_fail("%s: --%s expects an integer, got \"%s\"", cmd, o->name, v);
        *(int64_t *)o->dst = x;
        return 0;
    }
    case OPT_FLOAT: {
        double x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x))
            return cmd_fail("%s: --%s expects a number, got \"%s\"", cmd, o->name, v);
        *(float *)o->dst = (float)x;
        return 0;
    }
    }
    return 1;
}

/* The walk every command's arguments take: "--" ends the options, other
 * words are positional (at most maxpos), each "--name[=value]" goes to
 * `option` with the name (without "--"), the value after '=' (or NULL) and
 * the position, which it advances past a value it takes. */
typedef int (*option_fn)(const char *cmd, void *ctx, const char *name, const char *eq, int argc,
                         char **argv, int *i);

static int walk(const char *cmd, int argc, char **argv, option_fn option, void *ctx, char **pos,
                int *npos, int maxpos)
{
    *npos = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (only_pos || strncmp(a, "--", 2) != 0 || !a[2]) {
            if (a[0] == '-' && a[1] && !only_pos && !(a[1] >= '0' && a[1] <= '9'))
                return cmd_fail("%s: unknown option \"%s\" (try `aim %s --help`)", cmd, a, cmd);
            if (*npos >= maxpos)
                return cmd_fail("%s: unexpected argument \"%s\"", cmd, a);
            pos[(*npos)++] = argv[i];
            continue;
        }
        char name[64];
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (len >= sizeof name)
            return cmd_fail("%s: unknown option \"%.60s\" (try `aim %s --help`)", cmd, a, cmd);
        memcpy(name, a + 2, len);
        name[len] = 0;
        if (option(cmd, ctx, name, eq ? eq + 1 : NULL, argc, argv, &i))
            return 1;
    }
    return 0;
}

/* the value of --flag: after '=', or the next word */
static const char *take_value(const char *cmd, const char *flag, const char *eq, const char *arg,
                              int argc, char **argv, int *i)
{
    if (eq)
        return eq;
    if (*i + 1 < argc)
        return argv[++*i];
    cmd_fail("%s: --%s needs a value (%s)", cmd, flag, arg ? arg : "");
    return NULL;
}

static int small_option(const char *cmd, void *ctx, const char *name, const char *eq, int argc,
                        char **argv, int *i)
{
    const cmd_opt *opts = ctx, *o = NULL;
    for (int k = 0; opts[k].name; k++)
        if (!strcmp(opts[k].name, name))
            o = &opts[k];
    if (!o)
        return cmd_fail("%s: unknown option \"--%s\" (try `aim %s --help`)", cmd, name, cmd);
    if (o->kind == OPT_FLAG || o->kind == OPT_NOFLAG) {
        if (eq)
            return cmd_fail("%s: --%s takes no value", cmd, o->name);
        *(int *)o->dst = o->kind == OPT_FLAG;
        return 0;
    }
    const char *v = take_value(cmd, o->name, eq, o->arg, argc, argv, i);
    if (v && o->kind == OPT_LIST) {
        cmd_list *l = o->dst;
        if (l->n >= CMD_LIST_MAX)
            return cmd_fail("%s: --%s given more than %d times", cmd, o->name, CMD_LIST_MAX);
        l->v[l->n++] = v;
        return 0;
    }
    return v ? set_value(cmd, o, v) : 1;
}

int cmd_parse(const char *cmd, int argc, char **argv, const cmd_opt *opts, char **pos,
              int *npos, int maxpos)
{
    return walk(cmd, argc, argv, small_option, (void *)opts, pos, npos, maxpos);
}

void cmd_print_opts(const cmd_opt *opts)
{
    for (int k = 0; opts[k].name; k++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", opts[k].name, opts[k].arg ? " " : "",
                 opts[k].arg ? opts[k].arg : "");
        printf("  %-22s %s\n", left, opts[k].help);
    }
}


/* ------------------------------------------------------------ job tables */

static void flag_name(const aim_opt *o, char *buf, size_t len)
{
    size_t i = 0;
    for (; o->name[i] && i + 1 < len; i++)
        buf[i] = o->name[i] == '_' ? '-' : o->name[i];
    buf[i] = 0;
}

typedef struct job_ctx {
    const aim_opt *t;
    void *spec;
} job_ctx;

static int job_option(const char *cmd, void *ctx, const char *name, const char *eq, int argc,
                      char **argv, int *i)
{
    const job_ctx *j = ctx;
    const aim_opt *o = aim_opts_find(j->t, name, AIM_OPT_CLI);
    int negated = 0;
    if (!o && !strncmp(name, "no-", 3)) {
        o = aim_opts_find(j->t, name + 3, AIM_OPT_CLI);
        negated = o && o->type == AIM_OPT_BOOL;
        if (!negated)
            o = NULL;
    }
    if (!o) {
        const char *near = aim_opts_suggest(j->t, name, AIM_OPT_CLI);
        char hint[96] = "";
        if (near) {
            char f[64];
            flag_name(&(aim_opt){.name = near}, f, sizeof f);
            snprintf(hint, sizeof hint, " (did you mean --%s?)", f);
        }
        return cmd_fail("%s: unknown option \"--%s\"%s (try `aim %s --help`)", cmd, name, hint,
                        cmd);
    }
    char flag[64];
    flag_name(o, flag, sizeof flag);
    aim_err e;
    int rc;
    if (o->type == AIM_OPT_BOOL) {
        if (negated && eq)
            return cmd_fail("%s: --no-%s takes no value", cmd, flag);
        rc = eq ? aim_opt_set_text(o, j->spec, eq, &e) : aim_opt_set_bool(o, j->spec, !negated, &e);
    } else {
        const char *v = take_value(cmd, flag, eq, o->arg, argc, argv, i);
        if (!v)
            return 1;
        rc = aim_opt_set_text(o, j->spec, v, &e);
    }
    return rc != 0 ? cmd_fail("%s: --%s %s", cmd, flag, e.msg) : 0;
}

int cmd_parse_job(const char *cmd, int argc, char **argv, const aim_opt *t, void *spec,
                  char **pos, int *npos, int maxpos)
{
    job_ctx j = {t, spec};
    return walk(cmd, argc, argv, job_option, &j, pos, npos, maxpos);
}

void cmd_print_job_opts(const aim_opt *t)
{
    for (; t->name; t++) {
        if (!(t->where & AIM_OPT_CLI))
            continue;
        char left[64], help[256];
        aim_opt_flag(t, left, sizeof left);
        aim_opt_describe(t, help, sizeof help);
        /* within 100 columns: the help wraps under itself */
        const char *h = help;
        int col = 25, first = 1;
        while (*h) {
            size_t n = strlen(h);
            if (n > (size_t)(99 - col)) {
                n = (size_t)(99 - col);
                while (n > 0 && h[n] != ' ')
                    n--;
                if (n == 0)
                    n = (size_t)(99 - col);
            }
            if (first)
                printf("  %-22s %.*s\n", left, (int)n, h);
            else
                printf("%*s%.*s\n", col, "", (int)n, h);
            first = 0;
            h += n;
            while (*h == ' ')
                h++;
        }
    }
}
