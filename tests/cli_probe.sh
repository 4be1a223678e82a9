#!/bin/sh
# cli_probe.sh - `aim probe`: a sweep prints one line per block as it
# finishes, block lists, the linear probe, baselines (--random-init, --raw),
# saving the probe head with the trunk, and argument errors.
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
expect_error "not in 1..2" "a block beyond the depth" probe "$W" $P --blocks 3
expect_error "--kind" "an unknown probe kind" probe "$W" $P --kind mlp
expect_error "WEIGHTS" "probe without weights" probe $P
expect_error "exclude" "--blocks with --sweep" probe "$W" $P --blocks 1 --sweep
finish
