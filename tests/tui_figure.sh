#!/bin/sh
# tui_figure.sh - the figure view: a script's aim.plot{show = true} on the
# workbench, end to end in a private tmux server (as tests/tui.sh):
#   1. a script shows a figure: it comes up by itself in the loss plot's
#      place with its title, axis labels, legend, tick labels, braille lines
#      and point markers in the series' colours;
#   2. f switches to the loss curve (which says "f: figure") and back;
#   3. a second aim.plot{show = true} from the console replaces the figure
#      (a script redrawing as points come in);
#   4. f without any figure says how to make one; ? lists the key.
# Without tmux the terminal tests are reported as SKIP.
. "${top_srcdir:-.}/tests/cli_lib.sh"

NTMUX=10
. "${top_srcdir:-.}/tests/tui_lib.sh"
tui_setup fig "$NTMUX"
BR=$(printf '\342[\240-\243]')
cgrep() { LC_ALL=C grep "$@"; }

cat >"$T/fig.lua" <<'EOF2'
local aim = require "aim"
local xs, ys = {}, {}
for i = 1, 8 do xs[i] = 0.9 - i * 0.05; ys[i] = 60 + i * 3 end
assert(aim.plot{show = true, title = "loss-vs-top1", xlabel = "val-loss-axis",
                ylabel = "top1-axis", series = {{x = xs, y = ys, label = "runA"},
                {x = {0.45, 0.55}, y = {90, 61}, label = "runB", line = false}}} == true)
EOF2

# ---- 1. the figure comes up by itself
tui_start 100 32 "tui --threads 1 '$T/fig.lua'"
wait_for "loss-vs-top1" 30
check $? "a script's aim.plot{show = true} comes up in the loss plot's place"
check $(screen | grep -q 'top1-axis' && screen | grep -q 'val-loss-axis' &&
    screen | grep -q '● runA   ● runB' && screen | grep -q 'f: loss curve'; echo $?) \
    "... with its axis labels, its legend and the key back to the loss curve"
check $(screen | grep -qE '^ +90┤' && screen | grep -qE ' 0\.5 +0\.6 +0\.7 +0\.8'; echo $?) \
    "... tick labels on both axes (y up to 90, x from 0.5 to 0.8)"
c=$(colours)
check $(echo "$c" | cgrep -q "38;5;39m$BR" && echo "$c" | cgrep -q '38;5;39m●' &&
    echo "$c" | cgrep -q '38;5;203m●' && ! echo "$c" | cgrep -q "38;5;203m$BR"; echo $?) \
    "... runA's line in braille and its points in its colour, runB's points alone in another"

# ---- 2. f: the loss curve, and back
keys f
# until the whole frame is the new one (a capture may catch a redraw half done)
wait_until "screen | grep -q 'f: figure' && ! screen | grep -q 'loss-vs-top1'" 10
check $? "f shows the loss curve, which says f brings the figure back"
keys f
wait_for "loss-vs-top1" 10
check $? "f again: the figure"

# ---- 3. a new figure replaces it
keys ':'
type_line 'aim.plot{show = true, title = "second-figure", series = {{x = {1, 2, 3}, y = {3, 1, 2}}}}'
wait_until "screen | grep -q second-figure && ! screen | grep -q 'loss-vs-top1' && ! screen | grep -q runA" 10
check $? "aim.plot{show = true} from the console replaces the figure"
type_line 'aim.plot{show = true, series = {{x = {1}, y = {0/0}}}}'
wait_for "not finite" 10
check $(test $? -eq 0 && screen | grep -q 'second-figure'; echo $?) \
    "a bad figure is refused with its reason and the shown one stays"
keys Escape
keys q
wait_exit

# ---- 4. no figure yet
printf 'print("no figure here")\n' >"$T/plain.lua"
tui_start 100 32 "tui --threads 1 '$T/plain.lua'"
wait_for "no figure here" 30
keys f
wait_for "no figure yet: a script shows one with aim.plot" 10
check $? "f without a figure says how to show one"
keys '?'
wait_for "the script's figure" 10
check $? "? lists the key"
keys Escape
keys q
wait_exit
finish
