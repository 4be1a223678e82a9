/*
 * tui.h - the full-screen front end: `aim` and `aim tui SCRIPT.lua`. The
 * main thread owns the terminal (screen.c) and the console; an engine
 * thread runs the script and its jobs. See tui.c.
 */
#ifndef AIM_UI_TUI_H
#define AIM_UI_TUI_H

typedef struct tui_opts {
    const char *script;   /* the Lua script to run */
    int argc;             /* its arguments (arg[1..argc]) */
    char **argv;
    int threads;          /* 0: the default */
    const char *colors;   /* screen_opts.colors */
    int ascii;
    const char *history;  /* the console's history file (shared with `aim repl`), or NULL */
    const char *init;     /* the user's init.lua (key bindings), run if it exists, or NULL */
    const char *inspect;  /* weights to inspect (`aim tui --inspect`): no script; the
                             Inspect view opens on their maps */
    int ncompare;         /* run folders to compare (`aim tui --compare`): no script; */
    const char *const *compare; /* aim.compare publishes them (lua/aim/compare.lua) */
    int follow;           /* the runs are followed as other processes write them
                             (aim.follow), not compared */
} tui_opts;

/* Run the TUI until the user quits; returns the exit status (0, or 1 when
 * the terminal cannot be used or the script failed). */
int tui_run(const tui_opts *o);

#endif
