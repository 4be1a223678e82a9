#!/bin/sh
# tui_jobs.sh - every job on screen (the probe and LoRA jobs on the
# workbench): the real binary in a private tmux server, as tests/tui.sh.
#   1. a probe sweep over a micro trunk's 3 blocks: the reconstructions of
#      the frozen trunk are there from the start; the bars fill block by block
#      (the script pauses the job after the first block: b1 has its value,
#      b2 and b3 not yet), the title names the block in training; resumed,
#      every block gets its bar.
#   2. LoRA on block 2 started from the frozen probe's head: the loss panel
#      names the cross-entropy curve and the next-patch loss points, the probe
#      panel marks the frozen probe on b2 and states the gain, the blocks the
#      job leaves alone say so, the reconstructions show the adapted trunk
#      at the last step, one next-patch loss per epoch in the console, and
#      the Inspect view works on the adapted trunk with the head's attention.
#   3. full fine-tuning (aim.finetune) on block 2 after a frozen probe: the
#      same panels live: the curve and the next-patch points, the frozen
#      probe's mark on b2, block 3 (above the probe block) left alone, the
#      reconstructions of the fine-tuned trunk at the last step, one
#      next-patch loss per epoch, the Inspect view of the fine-tuned trunk.
# Without tmux the checks are reported as SKIP.
. "${top_srcdir:-.}/tests/cli_lib.sh"

cat >"$T/common.lua" <<'EOF'
local aim = require "aim"
m = aim.model{preset = "micro", depth = 3, seed = 1}
tr = aim.data.synthetic{n = 256, channels = 3, size = 8, classes = 4}
te = aim.data.synthetic{n = 64, channels = 3, size = 8, classes = 4, seed = 9}
EOF
cat >"$T/sweep.lua" <<EOF
dofile("$T/common.lua")
local aim = require "aim"
aim.probe(m, tr, te, {sweep = true, epochs = 2, batch = 64,
    on_set = function(r) if r.label == "1" then print("first set done"); aim.pause() end end})
print("sweep done")
EOF
cat >"$T/lora.lua" <<EOF
dofile("$T/common.lua")
local aim = require "aim"
local p = aim.probe(m, tr, te, {blocks = {2}, epochs = 2, batch = 64})
local r = aim.lora(m, tr, te, {rank = 2, epochs = 3, batch = 32, probe_blocks = {2}, head = p,
                               val_images = 32})
print(string.format("lora done %.1f from %.1f: next-patch %.4f -> %.4f", r.test_top1,
                    p.best.test_top1, r.val_loss_start, r.val_loss))
EOF
cat >"$T/finetune.lua" <<EOF
dofile("$T/common.lua")
local aim = require "aim"
local p = aim.probe(m, tr, te, {blocks = {2}, epochs = 2, batch = 64})
local r = aim.finetune(m, tr, te, {epochs = 3, batch = 32, probe_blocks = {2}, val_images = 32})
print(string.format("finetune done %.1f from %.1f: next-patch %.4f -> %.4f", r.test_top1,
                    p.best.test_top1, r.val_loss_start, r.val_loss))
EOF

NTMUX=24
. "${top_srcdir:-.}/tests/tui_lib.sh"
tui_setup jobs "$NTMUX"
# the value at the end of a probe bar's row (b<i>), or "--"
bar_value() { screen | sed -n "s/.*│b$1 .* \([0-9][0-9.]*\|--\)\$/\1/p" | head -n 1; }

# ---- 1. a probe sweep
tui_start 120 36 "tui --threads 1 '$T/sweep.lua'"
wait_for "first set done" 60 && wait_for "paused"
check $? "the sweep pauses itself after its first block (on_set)"
b1=$(bar_value 1); b2=$(bar_value 2); b3=$(bar_value 3)
check $(echo "$b1" | grep -qE '^[0-9.]+$' && test "$b2" = "--" && test "$b3" = "--"; echo $?) \
    "the bars fill block by block: b1 $b1, b2 $b2, b3 $b3"
check $(screen | grep -qE '^reconstruction @[0-9]+ +input \| prediction \| target'; echo $?) \
    "the frozen trunk's reconstructions are shown during the probe"
check $(screen | grep -q 'none from this job yet'; test $? -ne 0; echo $?) "... not a placeholder"
keys Space
wait_for "sweep done" 60
check $? "resumed, the sweep ends"
b1=$(bar_value 1); b2=$(bar_value 2); b3=$(bar_value 3)
check $(for v in "$b1" "$b2" "$b3"; do echo "$v" | grep -qE '^[0-9.]+$' || exit 1; done; echo $?) \
    "every block has its bar: $b1 $b2 $b3"
check $(screen | grep -q 'probe top-1 attentive @'; echo $?) "the title says which probe it is"

# ---- 2. LoRA from the frozen probe's head
tui_start 120 36 "tui --threads 1 '$T/lora.lua'"
wait_for "lora done" 60
check $? "the LoRA job ends"
lora=$(screen | sed -n 's/^lora done \([0-9.]*\) from.*/\1/p')
frozen=$(screen | sed -n 's/^lora done [0-9.]* from \([0-9.]*\):.*/\1/p')
check $(screen | grep -q '^loss: cross-entropy ' && screen | grep -qE '• next-patch [0-9.]+'; echo $?) \
    "the loss panel names the curve (cross-entropy) and the next-patch loss points"
check $(screen | grep -qE '│b2 .*┃.* [0-9.]+$'; echo $?) "the frozen probe's mark on b2"
gain="$(screen | sed -n 's/.*┃ frozen attentive \([0-9.]*\).*/\1/p') $(screen | sed -n 's/.*│   gain \([-+][0-9.]*\) points.*/\1/p')"
check $(test -n "$frozen" && test -n "$lora" &&
    awk -v g="$gain" -v f="$frozen" -v l="$lora" 'BEGIN { split(g, a, " "); d = l - f;
        exit !(a[1] == f && a[2] - d < 0.051 && d - a[2] < 0.051) }'; echo $?) \
    "the panel states the gain over the frozen probe: '$gain' (frozen $frozen, LoRA $lora)"
check $(screen | grep -q '│b1  frozen, not probed' && screen | grep -q '│b3  frozen, not probed'; echo $?) \
    "the blocks LoRA leaves alone say so"
check $(screen | grep -qE '^reconstruction @24 +input'; echo $?) \
    "the reconstructions show the adapted trunk at the last step (24)"
check $(test "$(screen | grep -cE '^· epoch [123]/3: .* next-patch [0-9.]+$')" -eq 3; echo $?) \
    "one next-patch loss per epoch in the console"
keys i
wait_for "inspect  image 1/4  block 2/3  map PCA  · lora step 24" 10
check $? "i: the Inspect view of the adapted trunk (lora step 24)"
keys m
wait_for "map attention" 10 && wait_for "mean of 2 heads" 5
check $? "m: the LoRA head's attention on it"
keys Escape
keys q
wait_exit
check $(grep -q 'exit=0' "$T/status"; echo $?) "q quits (exit 0)"

# ---- 3. full fine-tuning after a frozen probe
tui_start 120 36 "tui --threads 1 '$T/finetune.lua'"
wait_for "finetune done" 60
check $? "the fine-tuning job ends"
check $(screen | grep -q '^loss: cross-entropy ' && screen | grep -qE '• next-patch [0-9.]+'; echo $?) \
    "fine-tuning: the loss panel names the curve (cross-entropy) and the next-patch loss points"
check $(screen | grep -qE '│b2 .*┃.* [0-9.]+$'; echo $?) "the frozen probe's mark on b2"
check $(screen | grep -q '│b3  frozen, not probed'; echo $?) "block 3, above the probe block, is left alone"
check $(screen | grep -qE '^reconstruction @24 +input'; echo $?) \
    "the reconstructions show the fine-tuned trunk at the last step (24)"
check $(test "$(screen | grep -cE '^· epoch [123]/3: .* next-patch [0-9.]+$')" -eq 3; echo $?) \
    "one next-patch loss per epoch in the console"
keys i
wait_for "inspect  image 1/4  block 2/3  map PCA  · finetune step 24" 10
check $? "i: the Inspect view of the fine-tuned trunk (finetune step 24)"
keys Escape
keys q
wait_exit
finish
