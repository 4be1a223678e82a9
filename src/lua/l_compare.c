/*
 * l_compare.c - aim.compare: finished runs side by side in the workbench.
 *
 *   aim.compare{"runs/a", "runs/b", ...}   or   aim.compare("runs/a", "runs/b")
 *
 * Each entry is a run folder (its metrics.jsonl is read) or a metrics.jsonl
 * path; at most AIM_COMPARE_RUNS. Every run is read first; if one cannot be
 * (no such path, no metrics.jsonl, a malformed log, no training steps) the
 * call raises an error naming the path and publishes nothing. Otherwise the
 * set replaces the comparison the TUI draws (aim/engine.h "comparison":
 * the loss panel overlays the curves, the probe panel groups the bars) and
 * a list of per-run summaries comes back:
 *   {label =, metrics =, steps =, lines =, points =, final_loss =,
 *    best_val =, best_val_step =, probe = {top-1 per block}, probe_step =,
 *    best_probe =, best_probe_block =, nonfinite =}
 * (best_* absent when the run logged no validation / no probe; the probe
 * fields describe the run's last probe). aim.compare{} clears it.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/metrics.h"
#include "lua/l_aim.h"

/* the label of a run (malloc'd): its folder's name ("runs/a/" -> "a"; a
 * metrics file "runs/a/metrics.jsonl" -> "a"); "." and ".." are resolved */
static char *run_label(const char *path, int is_dir)
{
    char *p = aim_xstrdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = 0;
    if (!is_dir) { /* the folder holding the file */
        char *slash = strrchr(p, '/');
        if (slash && slash > p)
            *slash = 0;
        else if (!slash)
            snprintf(p, n + 1, ".");
    }
    char *base = strrchr(p, '/');
    base = base && base[1] ? base + 1 : p;
    char real[PATH_MAX];
    char *label;
    if ((!strcmp(base, ".") || !strcmp(base, "..")) && realpath(p, real)) {
        char *b2 = strrchr(real, '/');
        label = aim_xstrdup(b2 && b2[1] ? b2 + 1 : real);
    } else {
        label = aim_xstrdup(base);
    }
    free(p);
    return label;
}

/* Read one run into *out; -1 with a message naming the path. */
static int read_run(const char *path, aim_compare_run *out, aim_err *e)
{
    int is_dir = aim_is_dir(path);
    if (!is_dir && aim_file_size(path, NULL) < 0)
        return aim_errf(e, "%s: no such run folder or metrics file", path);
    char *mp = is_dir ? aim_xasprintf("%s/metrics.jsonl", path) : aim_xstrdup(path);
    if (is_dir && aim_file_size(mp, NULL) < 0) {
        free(mp);
        return aim_errf(e, "%s: not a run folder (no metrics.jsonl)", path);
    }
    char *label = run_label(path, is_dir);
    aim_metrics m;
    int rc = aim_metrics_read(mp, &m, e);
    if (rc == 0) {
        rc = aim_compare_run_from_metrics(&m, mp, label, out, e);
        aim_metrics_free(&m);
    }
    free(label);
    free(mp);
    return rc;
}

/* labels must tell the runs apart in the legend: repeats get "#2", "#3" */
static void unique_labels(aim_compare_view *v)
{
    for (int i = 1; i < v->n; i++) {
        int same = 1;
        for (int j = 0; j < i; j++)
            same += !strncmp(v->run[j].label, v->run[i].label, AIM_COMPARE_LABEL - 4);
        if (same > 1) {
            char *l = v->run[i].label;
            size_t n = strlen(l);
            if (n > AIM_COMPARE_LABEL - 4)
                n = AIM_COMPARE_LABEL - 4;
            snprintf(l + n, AIM_COMPARE_LABEL - n, "#%d", same > 9 ? 9 : same);
        }
    }
}

static void push_summary(lua_State *L, const aim_compare_run *r, const char *path)
{
    lua_createtable(L, 0, 14); /* summary */
    l_set_str(L, "label", r->label);
    l_set_str(L, "path", path);
    l_set_int(L, "steps", r->steps);
    l_set_int(L, "lines", r->train_lines);
    l_set_int(L, "points", r->ncurve);
    l_set_int(L, "nonfinite", r->nonfinite);
    if (isfinite(r->final_loss))
        l_set_num(L, "final_loss", r->final_loss);
    if (isfinite(r->best_val)) {
        l_set_num(L, "best_val", r->best_val);
        l_set_int(L, "best_val_step", r->best_val_step);
    }
    if (r->nprobe > 0) {
        int best = -1;
        lua_createtable(L, r->nprobe, 0); /* summary probe */
        for (int b = 0; b < r->nprobe; b++) {
            lua_pushnumber(L, r->top1[b]);
            lua_rawseti(L, -2, b + 1);
            if (isfinite(r->top1[b]) && (best < 0 || r->top1[b] > r->top1[best]))
                best = b;
        }
        lua_setfield(L, -2, "probe"); /* summary */
        l_set_int(L, "probe_step", r->probe_step);
        if (best >= 0) {
            l_set_num(L, "best_probe", r->top1[best]);
            l_set_int(L, "best_probe_block", best + 1);
        }
    }
}

static int l_compare(lua_State *L)
{
    int top = lua_gettop(L), n = 0;
    const char *paths[AIM_COMPARE_RUNS];
    int tbl = top >= 1 && lua_istable(L, 1);
    if (tbl && top > 1)
        return luaL_argerror(L, 2, "one table of runs or several paths, not both");
    lua_Integer count = tbl ? luaL_len(L, 1) : top; /* __len may say anything */
    if (count > AIM_COMPARE_RUNS)
        return luaL_argerror(L, tbl ? 1 : AIM_COMPARE_RUNS + 1,
                             lua_pushfstring(L, "at most %d runs, got %I", AIM_COMPARE_RUNS,
                                             count));
    for (int i = 1; i <= count; i++) {
        if (tbl)
            lua_rawgeti(L, 1, i); /* path */
        else
            lua_pushvalue(L, i); /* path */
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_argerror(L, tbl ? 1 : i,
                                 lua_pushfstring(L, "%s%d: a run folder expected, got %s",
                                                 tbl ? "run " : "path ", i, luaL_typename(L, -1)));
        paths[n++] = lua_tostring(L, -1); /* kept alive by the argument table/stack */
        lua_pop(L, 1);
    }
    /* the view in a userdata: an error below leaks nothing */
    aim_compare_view *v = lua_newuserdatauv(L, sizeof *v, 0); /* view */
    memset(v, 0, sizeof *v);
    for (int i = 0; i < n; i++) {
        aim_err e = {{0}};
        if (read_run(paths[i], &v->run[i], &e) != 0)
            return l_fail(L, e.msg); /* nil, message: as aim.load (DESIGN.md) */
    }
    v->n = n;
    unique_labels(v);
    aim_engine *eng = l_engine(L);
    if (eng)
        aim_engine_compare_set(eng, v);
    /* what is shown now, for aim.follow{...}: it reads its runs again only
     * while they are the ones shown (the argument table, or nil) */
    if (tbl)
        lua_pushvalue(L, 1);
    else
        lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, L_COMPARE_SHOWN);
    lua_createtable(L, n, 0); /* view list */
    for (int i = 0; i < n; i++) {
        push_summary(L, &v->run[i], paths[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

void l_open_compare(lua_State *L)
{
    lua_pushcfunction(L, l_compare);
    lua_setfield(L, -2, "compare");
}
