/*
 * screen.h - the terminal, owned by screen.c, the only file that calls
 * ncurses: opening it on the controlling terminal, colours and styles,
 * drawing text, braille / block glyphs and half-block pixels, the cursor,
 * reading keys, resizing, suspending, and restoring the terminal on every
 * way out (including from a fatal signal).
 */
#ifndef AIM_UI_SCREEN_H
#define AIM_UI_SCREEN_H

#include <stdint.h>

#include "aim/core.h"
#include "ui/ui.h"

typedef enum screen_colors {
    SCREEN_MONO = 0, /* no colours: bold / dim / reverse only */
    SCREEN_16,       /* 8 or 16 colours: images as shaded blocks */
    SCREEN_256,      /* the xterm 256-colour palette */
    SCREEN_DIRECT,   /* 24-bit colour */
} screen_colors;

typedef struct screen_opts {
    const char *colors; /* "auto" (NULL), "direct", "256", "16", "mono" */
    int ascii;          /* no Unicode glyphs even in a UTF-8 locale */
    int tty_fd;         /* where to draw (a dup of the terminal) */
} screen_opts;

/* Take over the terminal. -1 with a message (not a terminal, no terminfo). */
int screen_open(const screen_opts *o, aim_err *e);
/* Give it back (idempotent; also registered with atexit). */
void screen_close(void);
/* Restore the terminal from a signal handler (async-signal-safe). */
void screen_emergency_restore(void);
int screen_is_open(void);

void screen_size(int *rows, int *cols);
/* the kernel's size differs from curses': resize (KEY_RESIZE follows); 1 if so */
int screen_check_size(void);
int screen_unicode(void);
screen_colors screen_color_mode(void);
const char *screen_describe(void); /* "256 colours, UTF-8" */

/* ---------------------------------------------------------- drawing */
void screen_erase(void);
/* Text clipped to w columns; returns the columns used. */
int screen_put(int y, int x, int w, ui_style st, const char *utf8);
int screen_putf(int y, int x, int w, ui_style st, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void screen_fill(ui_rect r, ui_style st);
/* One cell: a character (a glyph is dropped to '?' when the locale cannot
 * show it). */
void screen_glyph(int y, int x, uint32_t wc, ui_style st);
/* One cell of two pixels (0xRRGGBB top and bottom): a half block in 256 or
 * direct colour, a shaded block or an ASCII shade otherwise. */
void screen_pixels(int y, int x, uint32_t top, uint32_t bottom);
/* The hardware cursor at (y, x); y < 0 hides it. */
void screen_cursor(int y, int x);
/* Push the frame to the terminal. */
void screen_flush(void);
/* Repaint everything at the next flush (Ctrl-L). */
void screen_invalidate(void);
/* The plots' axis ticks: on row y, a y tick's label right-aligned in the
 * labw columns from x0 and the tick mark on the axis at axis_x; an x tick's
 * label centred on column col, kept within [*free_from, end) (skipped when
 * it does not fit), after which *free_from moves past it with a gap. */
void screen_ytick(int y, int x0, int labw, int axis_x, const char *lab);
void screen_xtick(int y, int col, int end, int *free_from, const char *lab);

/* ---------------------------------------------------------- input */
/* The next key without waiting: 1 and *k, or 0 when none is ready. */
int screen_read(ui_key *k);
/* Ctrl-Z: give the terminal back, stop, take it again. */
void screen_suspend(void);

#endif
