/*
 * common.c - see common.h.
 */
#include "config.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cmd.h"
#include "cmd/common.h"

int cmd_model_config(const cmd_model_opts *o, aim_config *c)
{
    aim_err e;
    if (aim_config_preset(o->preset ? o->preset : "tiny", c, &e) != 0)
        return cmd_fail("%s", e.msg);
#define OVR(f)                                                                             \
    if (o->f)                                                                              \
        c->f = o->f;
    OVR(image) OVR(channels) OVR(patch) OVR(width) OVR(depth) OVR(heads) OVR(head_width)
    OVR(head_depth)
#undef OVR
    if (aim_config_validate(c, &e) != 0)
        return cmd_fail("%s", e.msg);
    return 0;
}

void cmd_set_threads(int threads)
{
    if (threads > 0) {
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }
}

int cmd_threads(void)
{
    return omp_get_max_threads();
}

void cmd_duration(double s, char *buf, int len)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, (size_t)len, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, (size_t)len, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, (size_t)len, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, (size_t)len, "%lds", t);
}

char *cmd_history_path(void)
{
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char *dir;
    if (state && *state == '/')
        dir = aim_xasprintf("%s/aim", state);
    else if (home && *home)
        dir = aim_xasprintf("%s/.local/state/aim", home);
    else
        return NULL;
    /* mkdir -p */
    for (char *s = dir + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            mkdir(dir, 0755);
            *s = '/';
        }
    }
    mkdir(dir, 0700);
    char *path = aim_xasprintf("%s/history", dir);
    free(dir);
    return path;
}

char *cmd_config_path(const char *name)
{
    const char *config = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (config && *config == '/')
        return aim_xasprintf("%s/aim/%s", config, name);
    if (home && *home)
        return aim_xasprintf("%s/.config/aim/%s", home, name);
    return NULL;
}

int cmd_open_runlog(const char *dir, const aim_dist *dist, aim_runlog **log)
{
    aim_err e;
    return aim_runlog_open_lead(dir, dist, log, &e) != 0 ? cmd_fail("--out: %s", e.msg) : 0;
}

int cmd_close_runlog(aim_runlog *log)
{
    aim_err e;
    return aim_runlog_close(log, &e) != 0 ? cmd_fail("%s", e.msg) : 0;
}
