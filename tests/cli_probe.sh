#!/bin/sh
# cli_probe.sh - `aim probe`: a sweep prints one line per block as it
# finishes, block lists, the linear probe, baselines (--random-init, --raw),
# saving the probe head with the trunk, run folders (--out), and argument
# errors.
. "${top_srcdir:-.}/tests/cli_lib.sh"

run_aim train --data synthetic --limit 400 --preset micro --steps 40 --batch 16 --out "$T/run" --threads 1
ok $(test $rc -eq 0; echo $?) "a micro model to probe"
W="$T/run/model.safetensors"
P="--data synthetic --train-limit 300 --test-limit 200 --epochs 3 --batch 50 --quiet"

run_aim probe "$W" $P --sweep
ok $(test $rc -eq 0 && grep -q '^1 ' "$T/out" && grep -q '^2 ' "$T/out" && grep -q '^best: blocks' "$T/out"; echo $?) "--sweep reports every block and the best"
top=$(awk '$1 == "1" { sub("%", "", $3); print $3 }' "$T/out")
ok $(awk -v t="$top" 'BEGIN { exit !(t > 10.0) }'; echo $?) "block 1 beats chance on 10 classes ($top%)"
run_aim probe "$W" $P --blocks 1,2 --kind linear --save "$T/probed.safetensors"
ok $(test $rc -eq 0 && grep -q '^1,2 .*linear' "$T/out"; echo $?) "--blocks 1,2 --kind linear"
run_aim info "$T/probed.safetensors"
ok $(test $rc -eq 0 && grep -q 'head.linear.weight' "$T/out" && grep -q 'probe_layers *1,2' "$T/out" && grep -q 'trunk.blocks.0.attn.qkv.weight' "$T/out"; echo $?) "--save writes trunk and head.* with probe metadata"
npy_header '<f4' '(1, 3, 8, 8)' >"$T/x.npy"
head -c 768 /dev/zero >>"$T/x.npy"
run_aim loss "$T/probed.safetensors" --images "$T/x.npy" --prefix 3
ok $(test $rc -eq 0; echo $?) "a trunk saved with its probe still loads as a model"
run_aim probe "$W" $P --sweep --window 2
ok $(test $rc -eq 0 && grep -q '^1,2 ' "$T/out" && ! grep -q '^2,3' "$T/out"; echo $?) "--sweep --window 2 on a 2-block trunk"
run_aim probe $P --random-init --preset micro
ok $(test $rc -eq 0 && grep -q 'attentive' "$T/out"; echo $?) "baseline: a random-init trunk"
run_aim probe $P --raw
ok $(test $rc -eq 0 && grep -q '^pixels .*raw-lin' "$T/out"; echo $?) "baseline: raw-pixel linear probe"
run_aim train --data synthetic --limit 400 --preset micro --steps 20 --batch 16 --out "$T/live" --threads 1 --probe-every 10 --probe-images 200
nprobe=$(grep -c '"kind":"probe"' "$T/live/metrics.jsonl")
ok $(test $rc -eq 0 && test "$nprobe" -eq 2 && grep -q '"top1":\[[0-9.]*,[0-9.]*\],"best_block":[12]' "$T/live/metrics.jsonl" && grep -q 'live linear probe' "$T/err"; echo $?) "--probe-every logs a live linear probe per block ($nprobe events)"
# without --epochs: 30 for one block set, 15 per set in a sweep (run.json says)
D="--data synthetic --train-limit 60 --test-limit 20 --batch 30 --quiet"
run_aim probe "$W" $D --blocks 1 --out "$T/runs/d1"
ok $(test $rc -eq 0 && grep -q '"epochs":30,' "$T/runs/d1/run.json" && test "$(grep -c '"kind":"probe_epoch"' "$T/runs/d1/metrics.jsonl")" -eq 30; echo $?) "--blocks without --epochs trains 30 epochs"
run_aim probe "$W" $D --sweep --out "$T/runs/d2"
ok $(test $rc -eq 0 && grep -q '"epochs":15,' "$T/runs/d2/run.json" && test "$(grep -c '"kind":"probe_epoch"' "$T/runs/d2/metrics.jsonl")" -eq 30; echo $?) "--sweep without --epochs trains 15 per block (2 blocks: 30 epoch lines)"
# --out: a run folder with run.json, probe_epoch / probe_result lines, the event file
run_aim probe "$W" $P --sweep --out "$T/runs/p"
t1=$(awk '$1 == "1" { sub("%", "", $3); print $3 }' "$T/out")
t2=$(awk '$1 == "2" { sub("%", "", $3); print $3 }' "$T/out")
ok $(test $rc -eq 0 && grep -q '"kind":"probe"' "$T/runs/p/run.json" && grep -q '"sets":\[\[1\],\[2\]\]' "$T/runs/p/run.json" && grep -q "\"weights\":\"$W\"" "$T/runs/p/run.json" && grep -q '"epochs":3' "$T/runs/p/run.json" && test -s "$T/runs/p/events.out.tfevents.aim"; echo $?) "--out: run.json (kind, sets, weights, epochs) and an event file"
ok $(test "$(grep -c '"kind":"probe_epoch"' "$T/runs/p/metrics.jsonl")" -eq 6 && test "$(grep -c '"kind":"probe_epoch".*"set":2,' "$T/runs/p/metrics.jsonl")" -eq 3; echo $?) "a probe_epoch line per epoch of each of the 2 sets"
arr=$(sed -n 's/.*"kind":"probe_result".*"top1":\[\([^]]*\)\].*/\1/p' "$T/runs/p/metrics.jsonl")
ok $(echo "$arr" | awk -F, -v a="$t1" -v b="$t2" '{ exit !(NF == 2 && $1 - a < 0.01 && a - $1 < 0.01 && $2 - b < 0.01 && b - $2 < 0.01) }'; echo $?) "probe_result: top1 per block = the printed $t1, $t2 ($arr)"
run_aim export-csv "$T/runs/p"
ok $(test $rc -eq 0 && head -n 1 "$T/runs/p/metrics.csv" | grep -q 'probe_epoch_test_top1.*probe_result_top1_block1,probe_result_top1_block2'; echo $?) "export-csv of a probe run folder"
best=$(printf '%s\n%s\n' "$t1" "$t2" | sort -g | tail -n 1)
run_aim runs "$T/runs"
ok $(test $rc -eq 0 && awk -v b="$best" '$1 == "p" { found = ($5 == "-" && $8 == b) } END { exit !found }' "$T/out"; echo $?) "aim runs lists it: no steps, probe% $best"
run_aim probe $P --raw --out "$T/runs/raw"
raw=$(awk '$1 == "pixels" { sub("%", "", $3); print $3 }' "$T/out")
base=$(sed -n 's/.*"kind":"probe_result".*"baseline":\([0-9.]*\).*/\1/p' "$T/runs/raw/metrics.jsonl")
ok $(test $rc -eq 0 && grep -q '"raw":1' "$T/runs/raw/run.json" && awk -v a="$raw" -v b="$base" 'BEGIN { exit !(b != "" && a - b < 0.01 && b - a < 0.01) }'; echo $?) "--raw --out: probe_result holds the baseline's top-1 ($base, printed $raw)"
printf 'x' >"$T/plain"
expect_error "plain/sub: cannot create" "--out under a regular file" probe "$W" $P --out "$T/plain/sub"
ok $(test ! -s "$T/out"; echo $?) "... refused before any work (nothing printed)"
expect_error "pretraining run" "--out into a pretraining run's folder" probe "$W" $P --out "$T/run"
ok $(grep -q '"steps":40' "$T/run/run.json" && ! grep -q probe "$T/run/metrics.jsonl"; echo $?) "... which is left as it was"
expect_error "not in 1..2" "a block beyond the depth" probe "$W" $P --blocks 3
expect_error "expects a list" "a block past INT_MAX is not cut to block 3" \
    probe "$W" $P --blocks 4294967299
expect_error "--kind" "an unknown probe kind" probe "$W" $P --kind mlp
expect_error "WEIGHTS" "probe without weights" probe $P
expect_error "exclude" "--blocks with --sweep" probe "$W" $P --blocks 1 --sweep
# --mirror: the training images and their mirror images (twice the features)
run_aim probe "$W" $P --blocks 1 --mirror --out "$T/runs/mirror"
ok $(test $rc -eq 0 && grep -q '"mirror":1' "$T/runs/mirror/run.json" && grep -q '^1 .*attentive' "$T/out"; echo $?) "--mirror probes, run.json records it"
expect_error "mirror needs a trunk" "--mirror with --raw" probe $P --raw --mirror
# aim.probe in a script: `aim run` shows its epochs as a probe's, not as
# training steps (no lr, gradient norm or img/s)
cat >"$T/p.lua" <<EOF
local aim = require "aim"
local m = aim.load("$W")
local c = m:config()
local tr = aim.data.synthetic{n = 300, channels = c.channels, size = c.image}
local te = aim.data.synthetic{n = 200, channels = c.channels, size = c.image, seed = 1}
aim.probe(m, tr, te, {blocks = {1}, epochs = 3, batch = 50})
EOF
run_aim run "$T/p.lua"
ok $(test $rc -eq 0 && grep -q '^probe epoch 1/3  loss [0-9]' "$T/err" && grep -q '^probe epoch 3/3 ' "$T/err" &&
    ! grep -q 'img/s' "$T/err"; echo $?) "aim run: a probe's progress is its epochs ($(grep -c '^probe epoch' "$T/err") lines)"
finish
