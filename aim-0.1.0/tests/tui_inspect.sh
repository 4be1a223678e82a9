#!/bin/sh
# tui_inspect.sh - the Inspect view end to end: the real binary in a private
# tmux server (its own socket, no config file, 80x24, TERM=tmux-256color,
# LANG=C.UTF-8, private XDG folders), as tests/tui.sh does.
#   1. `aim tui --inspect WEIGHTS` on a micro model saved with an attentive
#      probe: the view opens on its maps; > < change the block, ] [ the
#      image, m the map (PCA, attention, error), h the head, and each
#      changes the pixels drawn; Esc and i leave and come back; the help
#      lists the keys; aim.inspect() in the console publishes a new view.
#   2. while a pretraining job runs: i shows the maps the job publishes
#      with its reconstructions, training goes on, Esc goes back.
#   3. a file that is not weights: the error shows, the view says so.
# Without tmux the terminal tests are reported as SKIP.
. "${top_srcdir:-.}/tests/cli_lib.sh"
S="${top_srcdir:-.}/samples"

cat >"$T/mk.lua" <<'EOF'
local aim = require "aim"
local m = aim.model{preset = "micro", seed = 1}
local ds = aim.data.synthetic{n = 64, channels = 3, size = 8, classes = 4}
assert(aim.probe(m, ds, ds, {blocks = {1, 2}, epochs = 1, save = arg[1]}))
EOF
"$AIM" run --threads 1 "$T/mk.lua" "$T/probed.safetensors" >"$T/out" 2>"$T/err"
ok $(test -f "$T/probed.safetensors"; echo $?) "a micro model with an attentive probe, saved"
echo "not weights" >"$T/bad.safetensors"

expect_error "--inspect expects a weights file" "aim tui --inspect without a file" tui --inspect
expect_error "cannot read the weights" "aim tui --inspect with a missing file" \
    tui --inspect "$T/nosuch.safetensors"
expect_error "runs no script" "aim tui --inspect with a script too" \
    tui --inspect "$T/probed.safetensors" "$S/pretrain.lua"
expect_error "must be a terminal" "aim tui --inspect without a terminal" \
    tui --inspect "$T/probed.safetensors"

NTMUX=30
. "${top_srcdir:-.}/tests/tui_lib.sh"
tui_setup insp "$NTMUX"
# the pixel colours of the two images (rows 3..14: half blocks, whose
# background is the lower pixel), one per line, as tmux reports them
pixels() { tm capture-pane -p -e -t "$sess" -S 2 -E 13 | grep -o '48;5;[0-9]*'; }


# ---- 1. a saved model with a probe
tui_start 80 24 "tui --threads 1 --inspect '$T/probed.safetensors'"
wait_for "inspect  image 1/8  block 1/2  map PCA" 30 && wait_for "probed.safetensors"
check $? "--inspect opens the Inspect view on the model's maps (8 test images, block 1 of 2, PCA)"
wait_for "the maps are ready"
check $? "... and says the maps are ready"
check $(screen | grep -q 'block  norm   cos  erank' && screen | grep -q '▶ 1 ' &&
    screen | grep -qE '   2 +[0-9.]+ +-?[0-9.]+ +[0-9.]+ *$'; echo $?) \
    "the per-block statistics are listed, the shown block marked"
check $(screen | grep -q 'PC1-3 [0-9]* [0-9]* [0-9]*%'; echo $?) "the PCA map's caption gives the explained variance"
check $(screen | grep -q 'attentive probe on' && screen | grep -q '2 head(s)'; echo $?) \
    "the console names the probe found in the file"
p0=$(pixels)
check $(test "$(echo "$p0" | sort -u | wc -l)" -ge 4; echo $?) "the input and the map are drawn as coloured pixels"

keys '>'
wait_for "block 2/2"
p1=$(pixels)
check $(test "$p1" != "$p0" && screen | grep -q '▶ 2 '; echo $?) "> shows the next block: other colours, block 2 marked"
keys '<'
wait_for "block 1/2"
check $(test "$(pixels)" = "$p0"; echo $?) "< goes back: the same picture as before"
keys '.'
wait_for "block 2/2"
check $? ". is > too"
keys ']'
wait_for "image 2/8"
p2=$(pixels)
check $(test "$p2" != "$p1" && screen | grep -q 'input 2'; echo $?) "] shows the next image"
keys '['
keys '['
wait_for "image 8/8"
check $? "[ goes back, and wraps around to the last image"
keys ']'
wait_for "image 1/8"

keys m
wait_for "map attention" && wait_for "mean of 2 heads"
pa=$(pixels)
check $(test "$pa" != "$p1"; echo $?) "m switches to the probe's attention (mean of its 2 heads), drawn over the image"
keys h
wait_for "head 1 of 2"
ph=$(pixels)
keys h
wait_for "head 2 of 2"
check $(test "$ph" != "$pa" && test "$(pixels)" != "$ph"; echo $?) "h steps through the heads, each drawn differently"
keys m
wait_for "map error" && wait_for "S=1 loss"
check $(test "$(pixels)" != "$pa"; echo $?) "m again: the next-patch error map with its loss"
keys m
wait_for "map PCA"
check $? "and m once more comes back to PCA"

keys Escape
wait_for "probe top-1" && wait_gone "inspect  image"
check $? "Esc leaves the Inspect view (the usual panels are back)"
keys i
wait_for "inspect  image 1/8  block 2/2"
check $? "i opens it again, on the same image and block"
keys i
wait_gone "inspect  image"
check $? "and i closes it"
keys ']'
wait_for "works in the Inspect view"
check $? "] outside the view says where it works"

keys '?'
wait_for "the Inspect view (maps" && wait_for "Inspect view: the next block"
check $(screen | grep -q '< ,'; echo $?) "the help lists the Inspect keys (< and , on one row)"
keys Escape

type_text ':'
type_line 'aim.inspect(m, x, {source = "from-console", prefix = 5}).published'
wait_for "true"
keys Escape
keys i
wait_for "from-console"
check $? "aim.inspect(m, x) in the console publishes a new view"
keys m
wait_for "no attentive probe"
check $? "... without a probe the attention map says how to get one"
keys m
wait_for "S=5 loss"
check $? "... and the error map is at the prefix it was given"
keys q
wait_exit
check $(grep -q 'exit=0' "$T/status"; echo $?) "q quits ($(cat "$T/status" 2>/dev/null))"

# ---- 2. while a job runs
EXP="\"$S/pretrain.lua\" -- preset=micro batch=8 limit=64 test_limit=32 steps=1000000 val_every=0 \
probe_every=0 recon_every=10 ckpt_minutes=0 out=\"$T/work/run1\""
tui_start 80 24 "tui --threads 1 $EXP"
wait_for "step " 60 && wait_for "reconstruction"
keys i
wait_for "pretrain step" 30 && wait_for "map PCA"
check $? "i while pretraining shows the maps the job publishes with its reconstructions"
check_steps moving 1 "... and training goes on"
keys Escape
wait_for "reconstruction"
check $? "Esc goes back to the training panels"
keys q
wait_for "A job is running"
keys n
wait_exit
check $(grep -q 'exit=0' "$T/status"; echo $?) "q, n quits"

# ---- 3. not weights
tui_start 80 24 "tui --threads 1 --inspect '$T/bad.safetensors'"
wait_for "the script failed" 30
check $? "a file that is not weights: the error shows"
check $(screen | grep -q 'nothing to inspect yet'; echo $?) "... and the view says there is nothing to inspect"
keys q
wait_exit
tm kill-server 2>/dev/null
finish
