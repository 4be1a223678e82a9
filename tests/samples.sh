#!/bin/sh
# samples.sh - every sample runs at a tiny size in seconds (synthetic data:
# AIM_FASHION_MNIST points nowhere, which also checks the fallback notice).
. "${top_srcdir:-.}/tests/cli_lib.sh"
S="${top_srcdir:-.}/samples"
AIM_FASHION_MNIST="$T/no-fashion-mnist"
export AIM_FASHION_MNIST

run_aim run --threads 1 "$S/pretrain.lua" steps=3 batch=8 image=8 width=24 depth=1 limit=64 test_limit=16 out="$T/pre"
ok $(test $rc -eq 0 && grep -q 'test loss (after)' "$T/out" && test -f "$T/pre/model.safetensors"; echo $?) "pretrain.lua runs: $(grep 'test loss (after)' "$T/out")"
ok $(grep -q 'using the synthetic dataset instead' "$T/err"; echo $?) "pretrain.lua falls back to synthetic data with a notice"
ok $(grep -q '"crop":0,"flip":1' "$T/pre/run.json"; echo $?) "pretrain.lua: flips, no crops by default (run.json)"
run_aim run --threads 1 "$S/pretrain.lua" steps=1 batch=8 limit=64 test_limit=16 val_every=0 probe_every=0 recon_every=0 out="$T/pre-default"
ok $(test $rc -eq 0 && grep -q '"image":30,"channels":1,"patch":6,"width":192,"depth":6,"heads":3' "$T/pre-default/run.json"; echo $?) "pretrain.lua's default shape: tiny on 30x30 with patch 6 (25 tokens)"
run_aim run --threads 1 "$S/pretrain.lua" steps=1 batch=8 limit=64 test_limit=16 patch=7 val_every=0 probe_every=0 recon_every=0 out="$T/pre-p7"
ok $(test $rc -eq 0 && grep -q '"image":28,"channels":1,"patch":7,' "$T/pre-p7/run.json"; echo $?) "pretrain.lua patch=7: the preset's 28x28"
run_aim run --threads 1 "$S/pretrain.lua" steps=2 batch=8 image=8 width=24 depth=1 limit=64 test_limit=16 crop=1 out="$T/pre-crop"
ok $(test $rc -eq 0 && grep -q '"crop":1,"flip":1,"scale_min":0.4' "$T/pre-crop/run.json"; echo $?) "pretrain.lua crop=1: AIM's random resized crops"
run_aim run --threads 1 "$S/pretrain.lua" stepz=3
ok $(test $rc -eq 1 && grep -q "unknown argument 'stepz'" "$T/err"; echo $?) "pretrain.lua refuses an unknown argument"

run_aim run --threads 1 "$S/reconstruct.lua" steps=2 batch=8 n=3 size=8 width=24 depth=1 png="$T/r.png"
ok $(test $rc -eq 0 && test -f "$T/r.png" && grep -q 'rows: input | prediction | target' "$T/out"; echo $?) "reconstruct.lua writes the PNG grid"
run_aim run --threads 1 "$S/reconstruct.lua" weights="$T/pre/model.safetensors" n=2 png="$T/r2.png"
ok $(test $rc -eq 0 && test -f "$T/r2.png"; echo $?) "reconstruct.lua with weights from pretrain.lua"
run_aim run --threads 1 "$S/reconstruct.lua" weights="$T/none.safetensors"
ok $(test $rc -eq 1 && grep -q 'none.safetensors' "$T/err"; echo $?) "reconstruct.lua reports missing weights"

run_aim run --threads 1 "$S/scaling.lua" widths=8,16 images=32 batch=8 depth=1 size=8 test=8
ok $(test $rc -eq 0 && grep -q 'trunk params' "$T/out" && test "$(grep -cE '^ +(8|16) ' "$T/out")" -eq 2; echo $?) "scaling.lua prints a table with one row per width"
run_aim run --threads 1 "$S/probe_layers.lua" weights="$T/pre/model.safetensors" epochs=1 batch=16 train=64 test=32
ok $(test $rc -eq 0 && grep -q '^blocks 1 ' "$T/out" && grep -q 'random-init trunk' "$T/out" && grep -q 'raw pixels, linear' "$T/out" && grep -q '<- best' "$T/out"; echo $?) "probe_layers.lua: every block, both baselines, the best marked"

# lora.lua on the weights pretrain.lua left (depth 1: the probe block is 1)
L="probe_blocks=1 rank=2 epochs=2 batch=8 probe_epochs=1 train_limit=64 test_limit=32"
run_aim run --threads 1 "$S/lora.lua" weights="$T/pre/model.safetensors" $L save="$T/lora.safetensors"
ok $(test $rc -eq 0 && grep -q '^frozen attentive probe, blocks 1 ' "$T/out" && grep -q '^LoRA r=2 on blocks 1, head on 1 ' "$T/out" && grep -q '^gain of LoRA over the frozen probe: [+-][0-9.]* points' "$T/out"; echo $?) "lora.lua compares the frozen probe with LoRA: $(grep '^gain' "$T/out")"
ok $(test "$(grep -cE '^ +[12] +[0-9.]+ +[0-9.]+ +[0-9.]+$' "$T/out")" -eq 2; echo $?) "lora.lua prints one row per epoch"
ok $(grep -q '^aim lora: new LoRA adapters, rank 2 alpha 2 on block(s) 1: 288 adapter values = [0-9.]*% of the trunk' "$T/err"; echo $?) "the job's start line gives the adapter count and share: $(grep -o '288 adapter values = [0-9.]*%' "$T/err" | head -n 1)"
run_aim info "$T/lora.safetensors"
ok $(test $rc -eq 0 && grep -q 'trunk.blocks.0.attn.qkv.lora_A' "$T/out" && grep -q 'head.linear.weight' "$T/out"; echo $?) "lora.lua save= writes trunk + adapters + head"
# without weights=: the newest run folder under runs/, or a clear error
case $AIM in /*) ;; *) AIM="$PWD/$AIM" ;; esac
SA=$(cd "$S" && pwd)
mkdir -p "$T/w/runs/20240101-000000-old" "$T/w/runs/20240202-000000-new" "$T/empty"
cp "$T/pre/model.safetensors" "$T/w/runs/20240202-000000-new/model.safetensors"
printf 'not weights' >"$T/w/runs/20240101-000000-old/model.safetensors"
(cd "$T/w" && "$AIM" run --threads 1 "$SA/lora.lua" $L compare=false >"$T/out" 2>"$T/err"; echo $? >"$T/rc")
rc=$(cat "$T/rc")
ok $(test "$rc" -eq 0 && grep -q '^weights: runs/20240202-000000-new/model.safetensors' "$T/out" && ! grep -q '^gain' "$T/out"; echo $?) "lora.lua finds the newest run folder's weights; compare=false skips the probe"
(cd "$T/empty" && "$AIM" run --threads 1 "$SA/lora.lua" >"$T/out" 2>"$T/err"; echo $? >"$T/rc")
rc=$(cat "$T/rc")
ok $(test "$rc" -eq 1 && grep -q 'run samples/pretrain.lua first' "$T/err"; echo $?) "lora.lua without any weights says to run pretrain.lua first"
run_aim run --threads 1 "$S/lora.lua" weights="$T/pre/model.safetensors" probe_blocks=2
ok $(test $rc -eq 1 && grep -q 'probe_blocks=2: block 2 is not in 1..1' "$T/err"; echo $?) "lora.lua checks the blocks against the trunk's depth"
run_aim run --threads 1 "$S/inspect.lua" weights="$T/pre/model.safetensors" n=3 error=true png="$T/i.png"
ok $(test $rc -eq 0 && test -f "$T/i.png" && grep -q '^    1 ' "$T/out" && grep -q 'input | block 1 | error (S=1)' "$T/out"; echo $?) "inspect.lua: per-block statistics and the PNG of PCA maps"
run_aim run --threads 1 "$S/inspect.lua" steps=2 batch=8 n=2 size=8 width=24 depth=2 png="$T/i2.png"
ok $(test $rc -eq 0 && test -f "$T/i2.png" && grep -q 'input | block 1 | block 2)' "$T/out"; echo $?) "inspect.lua trains a model when given no weights"
# loss_vs_probe.lua on a tiny run that kept a checkpoint after each of 6 steps
run_aim train --threads 1 --steps 6 --batch 8 --image 8 --patch 4 --width 24 --depth 2 --heads 2 --head-width 24 --head-depth 1 --limit 64 --test-limit 16 --val-every 0 --probe-every 0 --recon-images 0 --ckpt-every 1 --keep 0 --out "$T/lp"
ok $(test $rc -eq 0 && test -f "$T/lp/ckpt-1.safetensors" && test -f "$T/lp/ckpt-6.safetensors"; echo $?) "aim train --ckpt-every 1 --keep 0 keeps a checkpoint per step"
run_aim run --threads 1 "$S/loss_vs_probe.lua" run="$T/lp" limit=64 test_limit=16 val_limit=16 val_images=16 probe_epochs=1 batch=16 out="$T/lp.png"
ok $(test $rc -eq 0 && test "$(grep -cE '^ +[1-6] +[0-9.]+ +[0-9.]+ +1 +[0-9]+$' "$T/out")" -eq 6 && grep -q '^Pearson correlation (val loss, probe top-1): ' "$T/out"; echo $?) "loss_vs_probe.lua: a row per checkpoint and the correlation: $(grep '^Pearson' "$T/out")"
ok $(test "$(od -An -tx1 -j16 -N8 "$T/lp.png" 2>/dev/null | tr -d ' \n')" = 00000280000001e0; echo $?) "loss_vs_probe.lua writes a 640x480 PNG"
mkdir -p "$T/lp-none"
run_aim run --threads 1 "$S/loss_vs_probe.lua" run="$T/lp-none"
ok $(test $rc -eq 1 && grep -q 'lp-none: 0 checkpoint(s)' "$T/err" && grep -q -- '--keep 0' "$T/err"; echo $?) "loss_vs_probe.lua without checkpoints says how to keep them"
run_aim run --threads 1 "$S/loss_vs_probe.lua"
ok $(test $rc -eq 1 && grep -q 'give run=DIR' "$T/err"; echo $?) "loss_vs_probe.lua asks for run=DIR"
# the widths of scaling.lua as run folders, then the loss-vs-probe plot over them
run_aim run --threads 1 "$S/scaling.lua" widths=8,16 images=48 batch=8 depth=1 size=8 test=8 out="$T/sc"
n8=$(ls "$T/sc/w8" 2>/dev/null | grep -c '^ckpt-[0-9]*\.safetensors$')
ok $(test $rc -eq 0 && test "$n8" -eq 6 && test -f "$T/sc/w16/run.json" && grep -q '"kind":"val"' "$T/sc/w16/metrics.jsonl"; echo $?) \
    "scaling.lua out=DIR: a run folder per width with a checkpoint every steps/8 ($n8 for 6 steps) and validation"
run_aim run --threads 1 "$S/loss_vs_probe.lua" run="$T/sc/w8,$T/sc/w16" limit=32 test_limit=8 val_limit=8 val_images=8 probe_epochs=1 batch=8 out="$T/sc.png"
st=$(test $rc -eq 0 && test "$(grep -cE '^w(8|16) +[1-6] ' "$T/out")" -eq 12 && grep -q '^Pearson correlation (val loss, probe top-1) of w8: ' "$T/out" &&
    grep -q '^Pearson correlation (val loss, probe top-1) over all 12 points: ' "$T/out" && test -f "$T/sc.png"; echo $?)
ok $st "loss_vs_probe.lua over two widths: 12 rows, a correlation per run and over all points, the PNG"
[ "$st" -eq 0 ] || { echo "# status $rc"; sed 's/^/# /' "$T/out" "$T/err"; }
finish
