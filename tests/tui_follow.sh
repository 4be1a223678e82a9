#!/bin/sh
# tui_follow.sh - watching a run another process writes (`aim tui RUN`,
# aim.follow): a headless `aim train` started in the background shows up
# live in the workbench, as tests/tui.sh runs it (a private tmux server):
#   1. the badge says "following", the status line the writer's step, and
#      the curve, validation points, live probe bars and reconstructions
#      (recon.npy beside its "recon" line) come as the writer logs them;
#      a second writer for the same folder is refused (the writer's lock);
#   2. the writer killed (SIGKILL): the badge says "stopped" and a message
#      says it stopped without finishing;
#   3. `aim train --resume` cuts the log back to its checkpoint and goes on:
#      the log is read again, a writer is back, and at the last step the
#      badge says "finished";
#   4. `--follow` of a folder that does not exist yet waits for it; two
#      folders are followed as a comparison.
# Synchronised on what the log and the screen show, never on sleeps.
# Without tmux the checks are reported as SKIP.
. "${top_srcdir:-.}/tests/cli_lib.sh"

NTMUX=19
. "${top_srcdir:-.}/tests/tui_lib.sh"
tui_setup follow "$NTMUX"

R="$T/run"
# a writer that runs far longer than the test watches it: it is killed
TRAIN="--data synthetic --limit 512 --test-limit 128 --preset tiny --width 32 --depth 2
    --heads 2 --head-width 32 --head-depth 1 --batch 16 --threads 1 --val-every 20
    --probe-every 40 --probe-images 128 --ckpt-every 20 --sys-every 0.5"
# the last step a run's log holds
logged() { sed -n 's/.*"step":\([0-9]*\),"kind":"train".*/\1/p' "$1/metrics.jsonl" 2>/dev/null | tail -n 1; }
"$AIM" train $TRAIN --steps 100000 --out "$R" >"$T/w1.out" 2>&1 &
writer=$!
wait_until 'test "$(logged "$R")" -ge 1' 60

# ---- 1. live
tui_start 160 36 "tui --threads 1 '$R'"
wait_for "following" 30 && wait_for "step " 30
check $? "aim tui RUN: the badge says following, the status line the writer's step"
a=$(step_now)
wait_steps_past "$a" 60
check $? "the step counter follows the writer ($a -> $(step_now))"
wait_for "live linear @" 120
check $? "the live probe bars come as the writer logs them"
check $(screen | grep -qE '• val [0-9.]+' && screen | grep -qE '^reconstruction @[0-9]+ +input'; echo $?) \
    "validation points and the reconstructions (recon.npy)"
wait_for "load " 30
check $(screen | head -n 1 | grep -qE 'cpu [0-9.]+  [0-9]+M  load [0-9.]+'; echo $?) \
    "the writer's CPU use, memory and load (its sys lines) in the status line"
"$AIM" train $TRAIN --steps 100000 --out "$R" >"$T/w2.out" 2>&1
check $(test $? -ne 0 && grep -q "another process is writing this run" "$T/w2.out"; echo $?) \
    "a second writer for the same folder is refused: $(grep 'aim:' "$T/w2.out" | head -n 1)"

# ---- 2. the writer killed
kill -9 "$writer"
wait "$writer" 2>/dev/null
at=$(logged "$R")
wait_for "stopped" 30 && wait_for "without finishing" 10
check $? "killed at step $at: the badge says stopped, the message why"

# ---- 3. resumed: the log is cut back to the newest checkpoint
"$AIM" train --resume "$R" --threads 1 >"$T/w3.out" 2>&1 &
writer=$!
wait_for "read again from its start" 60
check $? "the resume cut the log back: it is read again"
wait_for "a writer is back" 30 && wait_for "following" 10
check $? "... a writer is back, the badge says following"
wait_steps_past "$at" 120
check $? "the resumed run goes on past the kill ($at -> $(step_now))"
kill -9 "$writer"
wait "$writer" 2>/dev/null
keys q
wait_exit
check $(grep -q 'exit=0' "$T/status"; echo $?) "q stops following and quits at once (exit 0)"

# ---- 4. a folder that is not there yet, written to its end; two runs
tui_start 120 36 "tui --threads 1 --follow '$T/later'"
wait_for "waiting" 30
check $? "--follow of a folder that does not exist yet waits for it"
"$AIM" train $TRAIN --steps 60 --out "$T/later" >"$T/w4.out" 2>&1
check $? "a short run writes it to its end"
wait_for "finished" 30 && wait_for "step 60/60" 10
check $? "... followed to its end: the badge says finished"
keys q
wait_exit
tui_start 120 36 "tui --threads 1 --follow '$R' '$T/later'"
wait_for "the runs are compared, read again" 30
check $? "--follow RUN RUN: both followed as a comparison"
check $(screen | grep -q 'run' && screen | grep -q 'later'; echo $?) "... the legend names both"
keys q
wait_exit
check $(grep -q 'exit=0' "$T/status"; echo $?) "q quits (exit 0)"

# ---- 5. the precision a run was written in: the finished run again, its run.json saying bf16
mkdir -p "$T/b16"
cp "$T/later/metrics.jsonl" "$T/b16/"
sed 's/"precision":"fp32"/"precision":"bf16"/' "$T/later/run.json" >"$T/b16/run.json"
tui_start 120 36 "tui --threads 1 '$T/later'"
wait_for "step 60/60" 30
check $(screen | head -n 1 | grep -q 'follow  step' && ! screen | head -n 1 | grep -q bf16; echo $?) \
    "an fp32 run's status line names no precision"
keys q
wait_exit
tui_start 120 36 "tui --threads 1 '$T/b16'"
wait_for "step 60/60" 30
check $(screen | head -n 1 | grep -q 'follow bf16  step'; echo $?) \
    "a run whose run.json says bf16: the status line says so"
keys q
wait_exit
finish
