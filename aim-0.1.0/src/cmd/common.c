/*
 * common.c - see common.h.
 */
#include "config.h"

#include <cblas.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <limits.h>
#include <unistd.h>

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

char *cmd_sample_path(const char *name, char *tried, size_t len)
{
    char *cands[4] = {0};
    int nc = 0;
    const char *env = getenv("AIM_DATADIR");
    if (env && *env)
        cands[nc++] = aim_xasprintf("%s/%s", env, name);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = 0;
        cands[nc++] = aim_xasprintf("%s/samples/%s", exe, name);
        cands[nc++] = aim_xasprintf("%s/../share/aim/%s", exe, name);
    }
#ifdef AIM_PKGDATADIR
    cands[nc++] = aim_xasprintf("%s/%s", AIM_PKGDATADIR, name);
#endif
    char *found = NULL;
    size_t at = 0;
    if (len)
        tried[0] = 0;
    for (int i = 0; i < nc; i++) {
        if (!found && access(cands[i], R_OK) == 0)
            found = aim_xstrdup(cands[i]);
        at += (size_t)snprintf(tried + at, at < len ? len - at : 0, "%s%s", i ? ", " : "",
                               cands[i]);
        free(cands[i]);
    }
    return found;
}

int cmd_take_flag(int *argc, char **argv, const char *name)
{
    int found = 0, k = 1;
    for (int i = 1; i < *argc; i++) {
        if (!strcmp(argv[i], "--")) {
            while (i < *argc)
                argv[k++] = argv[i++];
            break;
        }
        if (!strncmp(argv[i], "--", 2) && !strcmp(argv[i] + 2, name))
            found = 1;
        else
            argv[k++] = argv[i];
    }
    *argc = k;
    argv[k] = NULL;
    return found;
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

/* ------------------------------------------------------------ escaping */

/* the bytes of the control character at p, 0 if none: 1 for C0 and DEL, 2
 * for a C1 control in UTF-8 (0xc2 0x80..0x9f) */
static int control_at(const unsigned char *p, int keep_nl)
{
    if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
        return 2;
    return (*p < 0x20 && !(keep_nl && (*p == '\n' || *p == '\t'))) || *p == 0x7f;
}

char *cmd_escape(char *out, size_t cap, const char *s, int keep_nl)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    if (!cap)
        return out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int k = control_at(p, keep_nl);
        if (!k) {
            if (n + 1 >= cap)
                break;
            out[n++] = (char)*p;
            continue;
        }
        if (n + 4 * (size_t)k >= cap)
            break;
        for (int i = 0; i < k; i++) {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[p[i] >> 4];
            out[n++] = hex[p[i] & 15];
        }
        p += k - 1;
    }
    out[n] = 0;
    return out;
}

const char *cmd_esc(const char *s)
{
    static char *ring[16];
    static int next;
    if (!s)
        return "?";
    size_t n = 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int k = control_at(p, 0);
        n += k ? 4 * (size_t)k : 1;
        p += k ? k - 1 : 0;
    }
    char *buf = ring[next] = aim_xrealloc(ring[next], n);
    next = (next + 1) % 16;
    return cmd_escape(buf, n, s, 0);
}

/* ------------------------------------------------------------ signals */

static void on_end_signal(int sig)
{
    aim_write_atomic_abort();
    signal(sig, SIG_DFL);
    raise(sig);
}

void cmd_remove_temps_on_signal(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_end_signal;
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
    for (int i = 0; i < 4; i++) {
        struct sigaction old;
        /* one the shell ignores for us (SIGINT of a background job) stays
         * ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(sigs[i], &sa, NULL);
    }
}
