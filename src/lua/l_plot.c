/*
 * l_plot.c - aim.plot{...}: a line / scatter plot as a PNG (aim/plot.h).
 *
 *   aim.plot{path = "out.png", width = 640, height = 480, title = "...",
 *            xlabel = "...", ylabel = "...",
 *            series = {{x = {...}, y = {...}, label = "run", points = true,
 *                       line = true, color = "#1f77b4"}, ...}}
 *
 * x and y: tables of numbers or 1-d tensors of the same length, all finite.
 * label: the legend's text (none: the series stays out of the legend).
 * color: "#rrggbb" or 0xRRGGBB (default: the palette, in series order).
 * show = true puts the plot on the workbench too (the figure view in the
 * loss plot's place, f switches; each call replaces the figure shown, so a
 * script can redraw it as points come in); without a workbench it is
 * kept for none. path may then be left out.
 * Returns the frame {left, top, right, bottom, xmin, xmax, ymin, ymax}: the
 * plot area's pixels (0-based, inclusive) and the data range it spans (with
 * show alone: true). Bad options raise; a file that cannot be written
 * returns nil, message.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aim/plot.h"
#include "lua/l_aim.h"

static const char *const plot_options[] = {"path", "width", "height", "title", "xlabel",
                                           "ylabel", "series", "show", NULL};
static const char *const series_options[] = {"x", "y", "label", "points", "line", "color",
                                             NULL};

/* The values of series[s].key (a table of numbers or a 1-d tensor) as a new
 * userdata of doubles on the stack; their count in *n. */
static const double *read_values(lua_State *L, int tab, int s, const char *key, int *n)
{
    int t = lua_getfield(L, tab, key); /* ... v */
    l_tensor *ten = t == LUA_TUSERDATA ? l_tensor_test(L, -1) : NULL;
    if (t != LUA_TTABLE && !ten)
        luaL_argerror(L, 1, lua_pushfstring(L, "series[%d].%s must be a table of numbers or a "
                                               "1-d tensor", s, key));
    size_t len = ten ? l_tensor_numel(ten) : lua_rawlen(L, -1);
    if (ten && ten->ndim != 1)
        luaL_argerror(L, 1, lua_pushfstring(L, "series[%d].%s: the tensor is not 1-d", s, key));
    if (len < 1 || len > AIM_PLOT_MAX_POINTS)
        luaL_argerror(L, 1, lua_pushfstring(L, "series[%d].%s has %I values (1..%d)", s, key,
                                            (lua_Integer)len, AIM_PLOT_MAX_POINTS));
    double *v = lua_newuserdatauv(L, len * sizeof(double), 0); /* ... v buf */
    for (size_t i = 0; i < len; i++) {
        if (ten) {
            v[i] = ten->data[i];
        } else {
            if (lua_rawgeti(L, -2, (lua_Integer)i + 1) != LUA_TNUMBER)
                luaL_argerror(L, 1, lua_pushfstring(L, "series[%d].%s[%I] is not a number", s,
                                                    key, (lua_Integer)i + 1));
            v[i] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        if (!isfinite(v[i]))
            luaL_argerror(L, 1, lua_pushfstring(L, "series[%d].%s[%I] is not finite (%f)", s,
                                                key, (lua_Integer)i + 1, v[i]));
    }
    lua_remove(L, -2); /* ... buf (kept on the stack until the call ends) */
    *n = (int)len;
    return v;
}

/* raise on a key of series[s] that is not one of series_options */
static void check_series_keys(lua_State *L, int tab, int s)
{
    lua_pushnil(L);
    while (lua_next(L, tab) != 0) { /* ... key value */
        lua_pop(L, 1);
        int known = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; series_options[i]; i++)
                known |= !strcmp(series_options[i], lua_tostring(L, -1));
        if (!known)
            luaL_argerror(L, 1, lua_pushfstring(L, "series[%d]: unknown key '%s' (x, y, label, "
                                                   "points, line, color)", s,
                                                luaL_tolstring(L, -1, NULL)));
    }
}

/* series[s].key: true or false, default true */
static int read_bool(lua_State *L, int tab, int s, const char *key)
{
    int t = lua_getfield(L, tab, key);
    int v = t == LUA_TNIL ? 1 : lua_toboolean(L, -1);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
        luaL_argerror(L, 1, lua_pushfstring(L, "series[%d].%s must be true or false", s, key));
    lua_pop(L, 1);
    return v;
}

static int32_t read_color(lua_State *L, int tab, int s)
{
    int t = lua_getfield(L, tab, "color");
    int32_t c = AIM_PLOT_AUTO_COLOR;
    if (t == LUA_TSTRING) {
        const char *str = lua_tostring(L, -1);
        char *end;
        long v = str[0] == '#' && strlen(str) == 7 ? strtol(str + 1, &end, 16) : -1;
        if (v < 0 || *end)
            luaL_argerror(L, 1, lua_pushfstring(L, "series[%d].color '%s' is not \"#rrggbb\"", s,
                                                str));
        c = (int32_t)v;
    } else if (t == LUA_TNUMBER) {
        lua_Integer v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
        if (v < 0 || v > 0xFFFFFF)
            luaL_argerror(L, 1, lua_pushfstring(L, "series[%d].color must be 0..0xFFFFFF", s));
        c = (int32_t)v;
    } else if (t != LUA_TNIL) {
        luaL_argerror(L, 1, lua_pushfstring(L, "series[%d].color must be \"#rrggbb\" or a number",
                                            s));
    }
    lua_pop(L, 1);
    return c;
}

static int l_plot(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    l_check_options(L, 1, plot_options);
    const char *path = l_opt_str(L, 1, "path", NULL);
    int show = l_opt_bool(L, 1, "show", 0);
    if ((!path || !*path) && !show)
        luaL_argerror(L, 1, "give option 'path' (the PNG to write), 'show = true' (the "
                            "workbench's figure view) or both");
    aim_plot_spec p = {0};
    p.width = (int)l_opt_int(L, 1, "width", 640, AIM_PLOT_MIN_SIDE, AIM_PLOT_MAX_SIDE);
    p.height = (int)l_opt_int(L, 1, "height", 480, AIM_PLOT_MIN_SIDE, AIM_PLOT_MAX_SIDE);
    p.title = l_opt_str(L, 1, "title", NULL);
    p.xlabel = l_opt_str(L, 1, "xlabel", NULL);
    p.ylabel = l_opt_str(L, 1, "ylabel", NULL);
    if (lua_getfield(L, 1, "series") != LUA_TTABLE) /* opts series */
        luaL_argerror(L, 1, "option 'series' must be a table of series {x =, y =, ...}");
    int series = lua_gettop(L);
    int ns = (int)lua_rawlen(L, series);
    if (ns < 1 || ns > AIM_PLOT_MAX_SERIES)
        luaL_argerror(L, 1, lua_pushfstring(L, "option 'series' has %d series (1..%d)", ns,
                                            AIM_PLOT_MAX_SERIES));
    /* each series keeps its table and two value buffers on the stack */
    luaL_checkstack(L, 3 * ns + 8, "too many series");
    aim_plot_series *sv = lua_newuserdatauv(L, ns * sizeof *sv, 0); /* opts series sv */
    for (int s = 1; s <= ns; s++) {
        aim_plot_series *r = &sv[s - 1];
        if (lua_rawgeti(L, series, s) != LUA_TTABLE) /* ... tab */
            luaL_argerror(L, 1, lua_pushfstring(L, "series[%d] must be a table {x =, y =, ...}",
                                                s));
        int tab = lua_gettop(L);
        check_series_keys(L, tab, s);
        int nx, ny;
        r->x = read_values(L, tab, s, "x", &nx); /* ... tab xbuf */
        r->y = read_values(L, tab, s, "y", &ny); /* ... tab xbuf ybuf */
        if (nx != ny)
            luaL_argerror(L, 1, lua_pushfstring(L, "series[%d]: x has %d values but y has %d", s,
                                                nx, ny));
        r->n = nx;
        int t = lua_getfield(L, tab, "label");
        if (t != LUA_TNIL && t != LUA_TSTRING)
            luaL_argerror(L, 1, lua_pushfstring(L, "series[%d].label must be a string", s));
        r->label = lua_tostring(L, -1); /* NULL for nil; the table keeps the string alive */
        lua_pop(L, 1);
        r->points = read_bool(L, tab, s, "points");
        r->line = read_bool(L, tab, s, "line");
        r->color = read_color(L, tab, s);
        /* the table stays on the stack under its buffers: it keeps label alive */
    }
    p.series = sv;
    p.nseries = ns;
    aim_err e;
    if (aim_plot_check(&p, &e) != 0)
        return luaL_argerror(L, 1, e.msg);
    if (show) {
        aim_figure fig = {.spec = p};
        aim_engine_figure_set(l_engine(L), &fig);
        if (!path || !*path) {
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    aim_plot_frame f;
    if (aim_plot_write(path, &p, &f, &e) != 0)
        return l_fail(L, e.msg);
    lua_createtable(L, 0, 8);
    l_set_int(L, "left", f.left);
    l_set_int(L, "top", f.top);
    l_set_int(L, "right", f.right);
    l_set_int(L, "bottom", f.bottom);
    l_set_num(L, "xmin", f.xmin);
    l_set_num(L, "xmax", f.xmax);
    l_set_num(L, "ymin", f.ymin);
    l_set_num(L, "ymax", f.ymax);
    return 1;
}

void l_open_plot(lua_State *L)
{
    lua_pushcfunction(L, l_plot); /* aim plot */
    lua_setfield(L, -2, "plot");
}
