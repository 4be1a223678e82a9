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

int cmd_parse(const char *cmd, int argc, char **argv, const cmd_opt *opts, char **pos,
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
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cmd_opt *o = NULL;
        for (int k = 0; opts[k].name; k++)
            if (strlen(opts[k].name) == len && !strncmp(opts[k].name, name, len))
                o = &opts[k];
        if (!o)
            return cmd_fail("%s: unknown option \"--%.*s\" (try `aim %s --help`)", cmd, (int)len,
                            name, cmd);
        if (o->kind == OPT_FLAG || o->kind == OPT_NOFLAG) {
            if (eq)
                return cmd_fail("%s: --%s takes no value", cmd, o->name);
            *(int *)o->dst = o->kind == OPT_FLAG;
            continue;
        }
        const char *v;
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else
            return cmd_fail("%s: --%s needs a value (%s)", cmd, o->name, o->arg ? o->arg : "");
        if (set_value(cmd, o, v) != 0)
            return 1;
    }
    return 0;
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

int cmd_parse_int_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || n == max || errno || v < INT_MIN || v > INT_MAX)
            return -1; /* 4294967299 is not block 3 */
        out[n++] = (int)v;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return n;
}
