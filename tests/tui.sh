#!/bin/sh
# tui.sh - the TUI end to end: the real binary in a private tmux server
# (its own socket, no config file, 80x24, TERM=tmux-256color, LANG=C.UTF-8,
# private XDG folders). A tiny synthetic experiment (samples/pretrain.lua,
# micro preset) runs while the test waits for the panels, types Lua in the
# console and reads its value, raises an error and reads the traceback,
# pauses and resumes (the step counter stops, then moves), resizes to 150
# columns (the status line shows % of the sgemm peak), to 120x40 and back,
# opens the help (with a key bound in init.lua), presses that key, and
# quits with a checkpoint (exit status 0, terminal modes as before,
# alternate screen left). Then: SIGTERM while training, SIGSEGV (the
# handler restores the terminal), a script that fails, and `aim` alone on
# a terminal, and a resize whose SIGWINCH never arrives (the TUI asks the
# terminal's size itself). Without tmux the terminal tests
# are reported as SKIP.
. "${top_srcdir:-.}/tests/cli_lib.sh"
S="${top_srcdir:-.}/samples"

# without a terminal nothing waits for a screen
"$AIM" </dev/null >"$T/out" 2>"$T/err"
rc=$?
ok $(test $rc -eq 2 && grep -q 'usage: aim COMMAND' "$T/err" && grep -q 'tui' "$T/err"; echo $?) \
    "aim alone without a terminal prints the usage (status $rc)"
expect_error "must be a terminal" "aim tui without a terminal" tui "$S/pretrain.lua"
expect_error "--colors expects" "aim tui --colors checks its value" tui --colors=many "$S/pretrain.lua"
expect_error "nosuch.lua: cannot read" "aim tui with a missing script" tui "$T/nosuch.lua"
run_aim tui --help
ok $(test $rc -eq 0 && grep -q 'usage: aim tui' "$T/out" && grep -q 'init.lua' "$T/out"; echo $?) "aim tui --help"

NTMUX=35
. "${top_srcdir:-.}/tests/tui_lib.sh"
tui_setup tui "$NTMUX"

mkdir -p "$T/state" "$T/config/aim" "$T/work"
cat >"$T/config/aim/init.lua" <<'EOF'
aim.ui.bind("z", function() return "zz-" .. 6 * 7 end, "a key from init.lua")
EOF
# start SESSION-COMMAND: run it in a fresh 80x24 session through a wrapper
# that records the terminal modes before and after, and the exit status
start() {
    rm -f "$T/status" "$T/stty.before" "$T/stty.after" "$T/pid"
    # cmd.sh becomes aim (exec), so its pid is aim's
    printf 'echo $$ >"%s/pid"\nexec %s\n' "$T" "$1" >"$T/cmd.sh"
    cat >"$T/run.sh" <<EOF
cd "$T/work"
ulimit -c 0
stty -g >"$T/stty.before"
env XDG_STATE_HOME="$T/state" XDG_CONFIG_HOME="$T/config" AIM_FASHION_MNIST="$T/none" \
    LANG=C.UTF-8 LC_ALL= TERM=tmux-256color sh "$T/cmd.sh"
echo "exit=\$?" >"$T/status"
stty -g >"$T/stty.after"
echo TUI-EXITED
sleep 600
EOF
    old=$sess
    sess="tui$(( ${sess#tui} + 1 ))"
    tm new-session -d -s "$sess" -x 80 -y 24 "sh '$T/run.sh'"
    tm kill-session -t "$old" 2>/dev/null
}
# wait until the wrapper has seen aim exit (30 s)
wait_exit() {
    i=0
    while [ ! -f "$T/stty.after" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    test -f "$T/stty.after"
}

EXP="\"$S/pretrain.lua\" -- preset=micro batch=8 limit=64 test_limit=32 steps=1000000 val_every=50 \
probe_every=0 recon_every=25 ckpt_minutes=0 out=\"$T/work/run1\""

# ---- 1. the whole tour
start "\"$AIM\" tui --threads 1 $EXP"
wait_for "step " 60 && wait_for "loss" && wait_for "probe top-1" && wait_for "reconstruction"
check $? "the status line, the loss, probe and reconstruction panels appear"
wait_for "input | prediction | target"
check $? "reconstructions are drawn"
check $(screen | LC_ALL=C grep -q "$(printf '\342[\240-\243]')"; echo $?) "the loss curve is drawn in braille"
tm capture-pane -p -t "$sess" >"$T/screen-80x24.txt"

type_text ':'
type_line '"v" .. 6 * 7'
wait_for "v42"
check $? "a Lua expression typed in the console shows its value"
type_line 'error("boom-" .. 1)'
wait_for "boom-1" && wait_for "stack traceback"
check $? "an error shows its traceback in the console"
check_steps moving 1 "... and training goes on"
type_text 'aim.data.fash'
keys Tab
wait_for "aim.data.fashion_mnist"
check $? "Tab completes in the console (answered by the engine)"
keys C-u
type_line 'for i = 1, 2 do'
wait_for ">>"
type_line 'x_sum = (x_sum or 0) + i end'
type_line '"sum=" .. x_sum'
wait_for "sum=3"
check $? "a multi-line statement continues with >> and runs"
type_line 'print(("y"):rep(48000) .. "z")'
wait_for "46001 bytes"
check $? "a huge print keeps its start and says how much it lost"
# the line says when it has begun and when it has spun a second of its own
# CPU time, then runs away; the step on the screen at both marks must agree
# (the job waits between two steps while a console line runs)
type_line 'print("spin" .. "-begun") local t0 = os.clock() while os.clock() - t0 < 1 do end print("spin" .. "-later") while true do end'
wait_for "spin-begun"
r1=$?
a=$(step_now)
wait_for "spin-later"
r2=$?
b=$(step_now)
check $(test $r1 -eq 0 && test $r2 -eq 0 && test -n "$a" && test "$a" = "$b"; echo $?) \
    "a runaway console line holds the job (step $a when it began, $b a CPU second later)"
keys C-c
wait_for "interrupted!"
check $? "Ctrl-C interrupts the runaway line"
check_steps moving 1.5 "... and the job goes on"
type_line 'aim.memory_limit(96 * 2^20) local t = {} for i = 1, 1e9 do t[i] = ("x"):rep(100) .. i end'
wait_for "not enough memory (Lua values"
check $? "a console line that eats memory stops at the limit with an error"
check_steps moving 1.5 "... and the job goes on"
type_line 'aim.memory_limit(0)'
type_line 'print("in=" .. tostring(io.read()))'
wait_for "in=nil"
check $? "io.read() in the console reads nothing at once (the terminal is the screen's)"
check_steps moving 1 "... and the job goes on"
# Ctrl-C once the command runs (it says so), not before the line begins
type_line 'os.execute("echo exec-" .. "begun; exec sleep 30")'
wait_for "exec-begun"
keys C-c
wait_for "interrupted!"
check $? "Ctrl-C kills a console line's os.execute"
check_steps moving 1.5 "... and the job goes on"
type_line 'os.exit(3)'
wait_for "quit?"
check $? "os.exit in the console asks first while a job runs"
keys Escape
wait_gone "quit?"
check_steps moving 1.5 "Esc: no quitting, training goes on"
keys Escape

keys Space
wait_for "paused"
check $? "Space pauses the job"
# read the counter twice around a console line, which the paused job runs
a=$(step_now)
type_text ':'
type_line 'print("while-" .. "paused")'
wait_for "while-paused"
r1=$?
b=$(step_now)
check $(test $r1 -eq 0 && test -n "$a" && test "$a" = "$b" && screen | grep -q paused; echo $?) \
    "the step counter stops while paused ($a, then $b after a console line ran)"
keys Escape
keys Space
wait_gone "paused"
check_steps moving 1.5 "Space resumes: the counter moves again"

# 150 columns: room for every field (this run's step and epoch are long)
tm resize-window -t "$sess" -x 150 -y 40
wait_until "screen | head -1 | grep -q 'img/s  [0-9][0-9]*% peak'"
check $? \
    "a wide status line shows img/s and % of the sgemm peak"
tm resize-window -t "$sess" -x 120 -y 40
wait_until 'test "$(screen | wc -l)" -eq 40 && screen | head -1 | grep -q "step " && screen | grep -q reconstruction'
wait_for "probe top-1"
check $(test "$(screen | wc -l)" -eq 40 && screen | head -1 | grep -q 'step ' &&
    screen | grep -q 'reconstruction'; echo $?) "after a resize to 120x40 the panels are laid out again"
tm capture-pane -p -t "$sess" >"$T/screen-120x40.txt"
tm capture-pane -p -e -t "$sess" >"$T/screen-120x40-colours.txt"
check $(grep -q '38;5;' "$T/screen-120x40-colours.txt" && grep -q '▀' "$T/screen-120x40.txt"; echo $?) \
    "images are half blocks in 256 colours"
tm resize-window -t "$sess" -x 80 -y 24
wait_until 'test "$(screen | wc -l)" -eq 24 && screen | head -1 | grep -q "step "'
check $(test "$(screen | wc -l)" -eq 24 && screen | head -1 | grep -q 'step '; echo $?) "and back to 80x24"

keys '?'
wait_for "pause or resume the running job"
r=$?
# at 80x24 the list runs past the box: PgDn scrolls it to the end (init.lua's key)
keys PgDn
wait_for "a key from init.lua"
r2=$?
check $(test $r -eq 0 && test $r2 -eq 0; echo $?) \
    "? opens the help, generated from the key table (PgDn: init.lua's key at its end)"
keys Escape
wait_gone "a key from init.lua"
check $? "Esc closes the help"
keys z
wait_for "zz-42"
check $? "a key bound in init.lua runs its Lua function"
keys l
wait_for "  log"
check $? "l switches the loss plot to a log axis"

keys q
wait_for "save a checkpoint, then quit"
check $? "q while training asks first and offers to save"
keys y
wait_exit
check $(grep -q 'exit=0' "$T/status"; echo $?) "y quits with status 0 ($(cat "$T/status" 2>/dev/null))"
check $(cmp -s "$T/stty.before" "$T/stty.after"; echo $?) "the terminal modes are restored"
wait_for "TUI-EXITED" 5
check $(! screen | grep -q 'probe top-1'; echo $?) "the screen is given back (alternate screen left)"
check $(ls "$T/work/run1" | grep -q '^ckpt-'; echo $?) "a checkpoint was saved on the way out"
check $(grep -q '"v" .. 6 \* 7' "$T/state/aim/history"; echo $?) "console lines are in the history shared with aim repl"

# ---- 2. SIGTERM while training
start "\"$AIM\" tui --threads 1 $EXP"
wait_for "step " 60
kill -TERM "$(cat "$T/pid")" 2>/dev/null
wait_exit
check $(grep -q 'exit=0' "$T/status" && cmp -s "$T/stty.before" "$T/stty.after"; echo $?) \
    "SIGTERM: the job stops, status 0, terminal restored"

# ---- 2b. a fatal signal: the handler gives the terminal back first
start "\"$AIM\" tui --threads 1 $EXP"
wait_for "step " 60
kill -SEGV "$(cat "$T/pid")" 2>/dev/null
wait_exit
check $(grep -q 'exit=139' "$T/status" && cmp -s "$T/stty.before" "$T/stty.after"; echo $?) \
    "a fatal signal (SIGSEGV): terminal restored before the default action ($(cat "$T/status" 2>/dev/null))"
wait_for "TUI-EXITED" 5
check $(! screen | grep -q 'probe top-1'; echo $?) "... and the screen given back"

# ---- 2c. a resize whose signal is lost: SIGWINCH blocked from the start
# (a blocked mask survives exec, so curses never hears of a resize), the
# TUI still lays out for the new size: it asks the terminal's size on
# every wake-up. perl (perl-base, on every Debian) blocks it.
cat >"$T/nowinch.pl" <<'EOF'
use POSIX;
use Config;
my %num;
@num{split ' ', $Config{sig_name}} = split ' ', $Config{sig_num};
sigprocmask(SIG_BLOCK, POSIX::SigSet->new($num{WINCH})) or die "sigprocmask: $!";
exec @ARGV or die "exec: $!";
EOF
start "perl \"$T/nowinch.pl\" \"$AIM\" tui --threads 1 $EXP"
wait_for "step " 60
tm resize-window -t "$sess" -x 120 -y 40
# (the key hints are the last line: at 80x24 they stay on line 24)
wait_until 'screen | head -1 | grep -q "step " && screen | sed -n 40p | grep -q "? help"'
check $? "without SIGWINCH a resize to 120x40 is still laid out (key hints on line 40)"
tm resize-window -t "$sess" -x 80 -y 24
wait_until 'screen | head -1 | grep -q "step " && screen | sed -n 24p | grep -q "? help"'
check $? "... and back to 80x24"
kill -TERM "$(cat "$T/pid")" 2>/dev/null
wait_exit

# ---- 3. a script that fails: the traceback shows, the screen stays
cat >"$T/bad.lua" <<'EOF'
local function inner() error("script-broke") end
inner()
EOF
start "\"$AIM\" tui \"$T/bad.lua\""
wait_for "script-broke" 30 && wait_for "in local 'inner'"
check $? "a failing script shows its traceback in the console"
type_text ':'
type_line '1 + 1'
wait_for "2"
keys Escape
keys q
wait_exit
check $(grep -q 'exit=1' "$T/status" && cmp -s "$T/stty.before" "$T/stty.after"; echo $?) \
    "... the console still works; q quits with status 1, terminal restored"

# ---- 4. aim alone on a terminal: the default experiment
start "\"$AIM\""
wait_for "pretrain.lua" 30
check $? "aim alone on a terminal opens the TUI on samples/pretrain.lua"
wait_for "using the synthetic dataset instead" 30
check $? "... with the synthetic-data notice when Fashion-MNIST is missing"
keys q
wait_for "A job is running"
keys n
wait_exit
check $(grep -q 'exit=0' "$T/status"; echo $?) "... and quits"
tm kill-server 2>/dev/null
finish
