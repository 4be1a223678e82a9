#!/bin/sh
# tui_compare.sh - `aim tui --compare RUN...` end to end: the real binary in
# a private tmux server (its own socket, no config file, TERM=tmux-256color,
# LANG=C.UTF-8, private XDG folders), as tests/tui.sh does.
#   1. bad runs are refused before the screen opens (no runs, a missing
#      folder, a folder without metrics.jsonl, a log without training
#      steps, a script as well, too many runs).
#   2. two runs (one made by `aim train`, one written here) at 80x24: the
#      legend names both in two colours, both curves are drawn, the probe
#      panel groups the bars with their values in the same colours, the
#      console prints the table; l switches to the log axis; 160x50; from
#      the console aim.compare{} clears and aim.compare{...} shows another
#      set; q quits with status 0.
#   3. --colors mono and --ascii: each run has its own mark in the legend,
#      on the curve and as its bars; --ascii draws no Unicode at all.
#   4. a compared set while a job trains: the live curve joins the legend
#   5. when that job is done, the legend calls its curve the last job's
#      and training goes on.
# Without tmux the terminal tests are reported as SKIP.
. "${top_srcdir:-.}/tests/cli_lib.sh"

# run 1: a short real training run with validation and live probes
"$AIM" train --data synthetic --limit 256 --preset micro --steps 60 --batch 8 --threads 1 \
    --out "$T/trained" --val-every 20 --probe-every 30 --probe-images 64 --val-images 32 \
    >"$T/out" 2>"$T/err"
ok $(test -f "$T/trained/metrics.jsonl" && grep -q '"kind":"probe"' "$T/trained/metrics.jsonl"; echo $?) \
    "a run made by aim train, with validation and probes"
# run 2: written here, with known probe values (61.5, 47.25)
mkdir -p "$T/written"
i=1
while [ $i -le 80 ]; do
    echo "{\"run\":\"written\",\"step\":$i,\"kind\":\"train\",\"loss\":$(( 2000 - i * 10 ))e-3,\"lr\":0.001}"
    i=$((i + 1))
done >"$T/written/metrics.jsonl"
echo '{"run":"written","step":80,"kind":"probe","images":64,"top1":[61.5,47.25],"best_block":1}' \
    >>"$T/written/metrics.jsonl"
mkdir -p "$T/empty" "$T/noloss"
echo '{"run":"x","step":3,"kind":"val","val_loss":1.5}' >"$T/noloss/metrics.jsonl"

# ---- 1. refused before the screen opens
expect_error "--compare expects run folders" "--compare without runs" tui --compare
expect_error "tui: $T/nosuch: no such run folder" "a missing run folder" tui --compare "$T/trained" "$T/nosuch"
expect_error "tui: $T/empty: not a run folder (no metrics.jsonl)" "a folder without metrics.jsonl" \
    tui --compare "$T/empty"
expect_error "noloss/metrics.jsonl: no training steps" "a log without training steps" \
    tui --compare "$T/noloss"
expect_error "--compare runs no script" "--compare with a script" \
    tui --compare "$T/trained" -- "$T/x.lua"
expect_error "at most 8 runs" "nine runs" tui --compare "$T/trained" "$T/trained" "$T/trained" \
    "$T/trained" "$T/trained" "$T/trained" "$T/trained" "$T/trained" "$T/trained"
expect_error "must be a terminal" "two good runs without a terminal" \
    tui --compare "$T/trained" "$T/written"
run_aim tui --help
ok $(test $rc -eq 0 && grep -q -- '--compare RUN' "$T/out"; echo $?) "tui --help describes --compare"

NTMUX=21
. "${top_srcdir:-.}/tests/tui_lib.sh"
tui_setup cmp "$NTMUX"

# the loss panel's plot rows (below the legend, left of the probe panel)
plot() { screen | sed -n '4,18p' | cut -c1-"$1"; }
# byte patterns (grep in the C locale): a braille cell; a full or partial bar cell
BR=$(printf '\342[\240-\243]')
BAR=$(printf '\342\226[\210-\217]')
cgrep() { LC_ALL=C grep "$@"; }

# ---- 2. two runs at 80x24
tui_start 80 24 "tui --threads 1 --compare '$T/trained' '$T/written'"
wait_for "the runs are compared" 30
check $? "--compare opens and says the runs are compared"
check $(screen | grep -q '■ trained  ■ written'; echo $?) "the legend names both runs"
legend=$(colours | sed -n 3p)
check $(echo "$legend" | grep -q '38;5;39m■' && echo "$legend" | grep -q '38;5;203m■'; echo $?) \
    "... each in its own colour"
plotc=$(colours | sed -n '4,18p')
check $(echo "$plotc" | cgrep -q "38;5;39m$BR" && echo "$plotc" | cgrep -q "38;5;203m$BR"; echo $?) \
    "both loss curves are drawn in braille, in the runs' colours"
check $(screen | grep -q 'probe top-1 2 runs' && screen | cgrep -qE "│b1 .* [0-9]+\.[0-9]\$" &&
    screen | cgrep -qE "│ +($BAR)+ +61\.5\$" && screen | cgrep -qE "│b2 .* [0-9]+\.[0-9]\$" &&
    screen | cgrep -qE "│ +($BAR)+ +47\.[23]\$"; echo $?) \
    "the probe panel groups the bars per block, each with its value"
check $(colours | cgrep -E '61\.5' | cgrep -q "38;5;203m$BAR"; echo $?) "... in the run's colour"
check $(screen | grep -qE '^trained +60 ' && screen | grep -qE '^written +80 +1\.2000 +- +61\.50 b1'; echo $?) \
    "the console prints a table of the runs"
keys l
check $(screen | sed -n 2p | grep -q ' log'; echo $?) "l: the log axis, with the runs still drawn"
keys l
tm resize-window -t "$sess" -x 160 -y 50 2>/dev/null || tm resize-pane -t "$sess" -x 160 -y 50
wait_until "screen | grep -q '■ trained  ■ written' && screen | cgrep -qE \"│ +(\$BAR)+ +47\\.[23]\\\$\""
check $? \
    "at 160x50: the legend and the grouped bars"
tm resize-window -t "$sess" -x 80 -y 24 2>/dev/null || tm resize-pane -t "$sess" -x 80 -y 24
wait_until 'test "$(screen | wc -l)" -eq 24'
keys ':'
type_line 'aim.compare{}'
wait_gone "■ trained"
r=$?
check $(test $r -eq 0 && ! screen | grep -q '■ written'; echo $?) "aim.compare{} in the console clears the comparison"
type_line "aim.compare('$T/written')"
wait_for "■ written" 10
r=$?
check $(test $r -eq 0 && ! screen | grep -q '■ trained' && screen | grep -q 'probe top-1 1 run @'; echo $?) \
    "aim.compare(path) shows another set"
type_line "aim.compare('$T/empty')"
wait_for "not a run folder" 10
r=$?
check $(test $r -eq 0 && screen | grep -q '■ written'; echo $?) \
    "a bad folder from the console: the error, and the shown set stays"
keys Escape
keys q
wait_exit
check $(grep -q 'exit=0' "$T/status"; echo $?) "q quits ($(cat "$T/status" 2>/dev/null))"

# ---- 3. mono and ASCII: a mark per run
tui_start 80 24 "tui --threads 1 --colors mono --compare '$T/trained' '$T/written'"
wait_for "the runs are compared" 30
check $(screen | grep -q ' o trained  x written'; echo $?) "--colors mono: the legend gives each run its mark"
p=$(plot 55)
check $(echo "$p" | grep -q 'o' && echo "$p" | grep -q 'x' && ! echo "$p" | cgrep -q "$BR"; echo $?) \
    "... the curves are drawn with the marks, not braille"
check $(screen | cgrep -qE '│ +x+ +61\.5$' && screen | cgrep -qE '│ +x+ +47\.[23]$'; echo $?) \
    "... and the bars too"
keys q
wait_exit
tui_start 80 24 "tui --threads 1 --ascii --compare '$T/trained' '$T/written'"
wait_for "the runs are compared" 30
check $(screen | grep -q ' o trained  x written' && screen | grep -qE '\| +x+ +61\.5$'; echo $?) \
    "--ascii: the same marks in the legend and the bars"
check $(screen | sed -n '1,18p' | LC_ALL=C grep -q '[^ -~]'; test $? -ne 0; echo $?) \
    "... and no character outside ASCII in the panels"
keys q
wait_exit

# ---- 4. a comparison while a job trains
# job_script FILE STEPS: compare the two runs, then pretrain for STEPS steps
job_script() {
    cat >"$1" <<EOF
local aim = require "aim"
aim.compare{"$T/trained", "$T/written"}
local m = aim.model{preset = "micro", seed = 1}
aim.pretrain(m, aim.data.synthetic{n = 256, channels = 3, size = 8}, {steps = $2, batch = 8})
EOF
}
job_script "$T/live.lua" 100000
tui_start 100 30 "tui --threads 1 '$T/live.lua'"
wait_for "■ live" 30
r=$?
check $(test $r -eq 0 && screen | grep -q '■ trained  ■ written  ■ live'; echo $?) \
    "while a job trains: the live curve joins the legend"
check_steps moving 1 "... and training goes on"
keys q
keys n
wait_exit
check $(grep -q 'exit=0' "$T/status"; echo $?) "q, n quits ($(cat "$T/status" 2>/dev/null))"

# ---- 5. after the job: its curve stays, as the last job's
job_script "$T/done.lua" 30
tui_start 100 30 "tui --threads 1 '$T/done.lua'"
wait_for "■ last job" 60
r=$?
check $(test $r -eq 0 && screen | grep -q '■ trained  ■ written  ■ last job' && ! screen | grep -q '■ live'; echo $?) \
    "when the job is done its curve is the last job's in the legend, not live"
keys q
wait_exit
finish
