/*
 * console.h - the TUI's Lua console: a line editor (GNU readline through
 * its callback interface, fed key by key from screen_read, with readline's
 * own terminal and signal handling off), multi-line input (an unfinished
 * statement continues with ">>"), history shared with `aim repl`, Tab
 * completion answered asynchronously by the engine, and a scrollback of
 * everything shown (results, print() output, errors with tracebacks,
 * events). It never runs Lua itself: finished chunks go to the engine
 * through the submit callback.
 */
#ifndef AIM_UI_CONSOLE_H
#define AIM_UI_CONSOLE_H

#include "ui/ui.h"

typedef struct console_opts {
    const char *history_path;                       /* NULL: no history file */
    void (*submit)(void *ctx, const char *code);    /* run a complete chunk */
    void (*complete)(void *ctx, const char *word);  /* find completions of word */
    void (*interrupt)(void *ctx);                   /* Ctrl-C while a chunk runs */
    void *ctx;
} console_opts;

/* One console per process (readline is global state). */
console *console_new(const console_opts *o);
void console_free(console *c); /* writes the history */

/* Append text (several lines allowed) to the scrollback. */
void console_print(console *c, ui_style st, const char *text);
/* A key while the console has focus: UI_* bits; UI_LEAVE means "give the
 * focus back" (Esc, Ctrl-D on an empty line). */
int console_key(console *c, const ui_key *k);
/* The engine's answer to complete(word): candidates separated by '\n'. */
void console_completions(console *c, const char *word, const char *cands);
/* A submitted chunk is running (1) or has answered (0). */
void console_set_busy(console *c, int busy);
int console_busy(const console *c);
/* Scroll the output by `lines` (positive: back in time). */
void console_scroll(console *c, int lines);

enum { UI_LEAVE = 16 };

#endif
