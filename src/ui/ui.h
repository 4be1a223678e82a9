/*
 * ui.h - the TUI's shared vocabulary (no curses here): rectangles, the
 * semantic styles screen.c maps to colours, key events, the bit set key
 * handlers return, the view every panel draws from, and the panel vtable
 * (htop style: one const struct per panel, each in its own file).
 *
 * Threads: everything in src/ui runs on the main thread. Panels read only
 * the view: copies of the engine's snapshot and board (aim/engine.h),
 * never a model, never Lua.
 */
#ifndef AIM_UI_H
#define AIM_UI_H

#include <stddef.h>
#include <stdint.h>

#include "aim/engine.h"

typedef struct ui_rect {
    int y, x, h, w;
} ui_rect;

/* What a piece of text is; screen.c decides how that looks on this
 * terminal (colours, bold, dim; plain text on a monochrome one). */
typedef enum ui_style {
    UI_NORMAL = 0,
    UI_DIM,
    UI_BOLD,
    UI_TITLE,     /* panel headers */
    UI_STATUS,    /* the status line */
    UI_RUNNING,   /* the state badge while a job runs */
    UI_PAUSED,
    UI_IDLE,
    UI_RAW,       /* loss curve: the raw series (faint) */
    UI_EMA,       /* loss curve: the smoothed series (bright) */
    UI_VAL,       /* validation points */
    UI_LR,        /* the learning-rate strip */
    UI_AXIS,      /* axes and tick labels */
    UI_BAR,       /* probe bars */
    UI_BEST,      /* the best block */
    UI_BASE,      /* the raw-pixel baseline mark */
    UI_REF,       /* the frozen probe's mark (LoRA's starting point) */
    UI_ERROR,
    UI_MSG,       /* the message line */
    UI_PROMPT,
    UI_KEY,       /* key names in the help */
    UI_OVERLAY,   /* help / question boxes */
    UI_RUN0,      /* compared runs (aim.compare): one colour each, UI_RUN0 + k */
    UI_RUN7 = UI_RUN0 + 7,
    UI_NSTYLES
} ui_style;

/* ------------------------------------------------------------ keys */
typedef enum ui_key_kind {
    UI_KEY_NONE = 0,
    UI_KEY_CHAR,   /* ch: a character (control characters included: 1..31, 127) */
    UI_KEY_FN,     /* fn: a UI_K_* code */
    UI_KEY_META,   /* ch: Alt + a character */
    UI_KEY_RESIZE,
} ui_key_kind;

enum {
    UI_K_UP = 1, UI_K_DOWN, UI_K_LEFT, UI_K_RIGHT, UI_K_HOME, UI_K_END, UI_K_PGUP, UI_K_PGDN,
    UI_K_DELETE, UI_K_BACKSPACE, UI_K_ENTER, UI_K_ESC, UI_K_BTAB, UI_K_INSERT,
    UI_K_F0 = 100, /* F1..F12 = UI_K_F0 + 1 .. + 12 */
};

typedef struct ui_key {
    ui_key_kind kind;
    uint32_t ch;
    int fn;
} ui_key;

/* The name bindings use (lua/aim/keys.lua): "s", "space", "tab", "esc",
 * "f1", "pgup", "C-l", ...; "" for keys without one. */
void ui_key_name(const ui_key *k, char *buf, size_t len);

/* ------------------------------------------------------------ handlers */
/* What a key or action handler did (a bit set; the main loop decides). */
enum {
    UI_HANDLED = 1,   /* consumed */
    UI_REDRAW = 2,    /* draw again */
    UI_RELAYOUT = 4,  /* sizes changed */
    UI_QUIT = 8,
};

/* ------------------------------------------------------------ the view */
typedef struct console console;

typedef enum ui_script_state {
    UI_SCRIPT_NONE = 0,
    UI_SCRIPT_RUNNING,
    UI_SCRIPT_DONE,
    UI_SCRIPT_FAILED,
} ui_script_state;

typedef struct ui_view {
    aim_snapshot snap;         /* copied from the engine */
    aim_board *board;          /* copied from the engine (large: heap) */
    /* loss panel */
    float smoothing;           /* EMA weight in [0, 0.99] */
    int log_y;
    /* the script the TUI runs */
    ui_script_state script;
    char script_name[128];
    /* the message line: the newest message and when it came (monotonic s) */
    char message[AIM_MSG_LEN + 32];
    int message_error;
    double message_time;
    int focus_console;
    console *con;
    /* the Inspect view (panel_inspect.c): on or off, and what it shows */
    aim_inspect_view *insp;    /* copied from the engine (large: heap) */
    aim_compare_view *cmp;     /* runs compared (aim.compare), copied from the engine
                                  (heap); cmp->n = 0: none */
    int inspect;
    int insp_image;            /* 0-based */
    int insp_block;            /* 0-based; -1: not chosen yet (the middle block) */
    int insp_map;              /* PCA, attention, error */
    int insp_head;             /* attention: 0 = the mean of the heads, else head h */
    double now;                /* monotonic seconds at this frame */
    /* the figure view (panel_figure.c): a script's aim.plot{show = true} */
    struct aim_figure *fig;    /* copied from the engine; NULL: none yet */
    uint64_t fig_seq;
    int show_fig;              /* shown in the loss plot's place (key f) */
} ui_view;

/* ------------------------------------------------------------ panels */
typedef struct ui_panel {
    const char *name;
    void (*draw)(const ui_view *v, ui_rect r);
    /* a screen action ("log_scale", ...) the panel knows; returns UI_* bits,
     * 0 when it does not handle it; may be NULL */
    int (*action)(ui_view *v, const char *action);
} ui_panel;

extern const ui_panel panel_status;
extern const ui_panel panel_message;
extern const ui_panel panel_loss;
extern const ui_panel panel_probe;
extern const ui_panel panel_recon;
extern const ui_panel panel_console;
extern const ui_panel panel_inspect;
extern const ui_panel panel_figure;

/* Small text helpers for panels (ui_text.c). */
/* "1.2k", "35", "2.1M" */
void ui_fmt_count(double v, char *buf, size_t len);
/* "12m03s", "1h05m", "--" */
void ui_fmt_duration(double s, char *buf, size_t len);
/* display columns of a UTF-8 string */
int ui_text_width(const char *s);
/* copy at most `cols` display columns of s into buf (whole characters) */
void ui_text_clip(const char *s, int cols, char *buf, size_t len);
/* 1 when the value of $NO_COLOR asks for no colour: set and not empty
 * (no-color.org); pass getenv("NO_COLOR") */
int ui_no_color(const char *value);
/* The status line after its state badge (panel_status.c), for a snapshot
 * with a job: "  field" for each of job, step/total, epoch, loss, lr,
 * img/s, "% peak", ETA (or "took" once idle), threads and the run folder
 * that fit in w display columns. Fields are kept by priority (step, loss,
 * ETA, lr, img/s, epoch, job, threads, % peak: the last dropped first), the
 * run folder gets what is left, shortened from the left ("\u2026" when uni,
 * else "~"). */
void ui_status_fields(const aim_snapshot *s, const aim_board *b, int w, int uni, char *line,
                      size_t len);
/* The live MFU: the job's achieved training FLOP/s (img/s x FLOPs per
 * image) as a percentage of the measured sgemm peak; NaN when either is
 * not known (not measured, a job whose FLOPs are not counted, no step yet). */
double ui_peak_percent(const aim_snapshot *s);
/* Compared run k (0..AIM_COMPARE_RUNS-1): its style (colour) and its mark,
 * an ASCII character that tells the runs apart where colours or braille
 * cannot (--colors mono, --ascii): 'o' 'x' '+' '#' '%' '@' '&' '='. */
ui_style ui_run_style(int k);
char ui_run_mark(int k);

#endif
