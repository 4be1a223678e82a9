#!/bin/sh
# doors.sh - one job, every door: the default experiment trained by
# `aim train`, by `aim run samples/pretrain.lua` and by the workbench
# (`aim tui samples/pretrain.lua`, which is what `aim` alone runs) gives the
# same weights bit for bit, at the same seed and thread count; `aim probe`
# and aim.probe, `aim lora` and aim.lora, `aim finetune` and aim.finetune give
# the same results for the same
# options (their defaults come from one table, include/aim/job.h). A short
# version of each (a few steps on a slice of the data; the synthetic set,
# since AIM_FASHION_MNIST points nowhere, through the same fallback).
. "${top_srcdir:-.}/tests/cli_lib.sh"
. "${top_srcdir:-.}/tests/tui_lib.sh"
S=$(cd "${top_srcdir:-.}/samples" && pwd)
AIM_FASHION_MNIST="$T/none"
export AIM_FASHION_MNIST
case $AIM in /*) ;; *) AIM="$PWD/$AIM" ;; esac

# ---- pretraining: the command line and the sample
run_aim train --threads 2 --limit 256 --test-limit 64 --steps 4 --out "$T/cli"
ok $(test $rc -eq 0 && test -f "$T/cli/model.safetensors" &&
     grep -q '"image":30,"channels":1,"patch":6,"width":192' "$T/cli/run.json" &&
     grep -q '"crop":0,"flip":1' "$T/cli/run.json"; echo $?) \
    "aim train with no model or recipe options trains the default experiment (tiny, 30x30, patch 6, no crops)"
run_aim run --threads 2 "$S/pretrain.lua" limit=256 test_limit=64 steps=4 out="$T/lua"
ok $(test $rc -eq 0 && cmp -s "$T/cli/model.safetensors" "$T/lua/model.safetensors"; echo $?) \
    "aim run samples/pretrain.lua: the same weights as aim train, bit for bit"
train_lines() { grep -v '"kind":"probe"\|"kind":"sys"' "$1" | sed 's/"run":"[^"]*",//; s/"wall":[^,]*,//; s/,"img_per_s".*//'; }
train_lines "$T/cli/metrics.jsonl" >"$T/a.txt"
train_lines "$T/lua/metrics.jsonl" >"$T/b.txt"
ok $(grep -q '"kind":"val"' "$T/a.txt" && cmp -s "$T/a.txt" "$T/b.txt"; echo $?) \
    "... the same loss, lr and grad-norm lines, and the same validations"
# the comparison can fail: one option apart, the weights differ
run_aim run --threads 2 "$S/pretrain.lua" limit=256 test_limit=64 steps=4 lr=2e-3 out="$T/lua-lr"
ok $(test $rc -eq 0 && ! cmp -s "$T/cli/model.safetensors" "$T/lua-lr/model.safetensors"; echo $?) \
    "... and another lr gives other weights"

# ---- probing and LoRA: the command line and Lua, same options
W="$T/cli/model.safetensors"
cat >"$T/jobs.lua" <<'LUA'
local aim = require "aim"
local m = assert(aim.load(arg[1]))
local c = m:config()
local tr = aim.data.default("train", {channels = c.channels, size = c.image, limit = 256})
local te = aim.data.default("test", {channels = c.channels, size = c.image, limit = 64})
local p = aim.probe(m, tr, te, {blocks = {3, 4}, epochs = 2, save = arg[2]})
print(string.format("probe %.4f", p.best.test_top1))
local l = aim.lora(m, tr, te, {epochs = 1, save_adapters = arg[3]})
print(string.format("lora %.4f", l.test_top1))
local f = aim.finetune(assert(aim.load(arg[1])), tr, te, {epochs = 1, save = arg[4]})
print(string.format("finetune %.4f", f.test_top1))
LUA
run_aim run --threads 2 "$T/jobs.lua" "$W" "$T/probe-lua.safetensors" "$T/lora-lua.safetensors" "$T/finetune-lua.safetensors"
lua_rc=$rc
run_aim probe "$W" --threads 2 --blocks 3,4 --epochs 2 --train-limit 256 --test-limit 64 \
    --save "$T/probe-cli.safetensors" --quiet
ok $(test $lua_rc -eq 0 && test $rc -eq 0 &&
     cmp -s "$T/probe-cli.safetensors" "$T/probe-lua.safetensors"; echo $?) \
    "aim probe and aim.probe: the same probe head, bit for bit"
run_aim lora "$W" --threads 2 --epochs 1 --train-limit 256 --test-limit 64 \
    --save-adapters "$T/lora-cli.safetensors" --quiet
ok $(test $rc -eq 0 && cmp -s "$T/lora-cli.safetensors" "$T/lora-lua.safetensors"; echo $?) \
    "aim lora and aim.lora: the same adapters, bit for bit"
run_aim finetune "$W" --threads 2 --epochs 1 --train-limit 256 --test-limit 64 \
    --save "$T/finetune-cli.safetensors" --quiet
ok $(test $rc -eq 0 && cmp -s "$T/finetune-cli.safetensors" "$T/finetune-lua.safetensors"; echo $?) \
    "aim finetune and aim.finetune: the same trunk and head, bit for bit"

# ---- the workbench: aim tui samples/pretrain.lua (what `aim` runs)
tui_setup doors 1
tui_start 120 40 "tui --threads 2 $S/pretrain.lua -- limit=256 test_limit=64 steps=4 out=$T/tui"
i=0
while [ ! -f "$T/tui/model.safetensors" ] && [ $i -lt 1800 ]; do sleep 0.1; i=$((i + 1)); done
wait_for "4 steps in" 60
keys q
wait_exit
check $(cmp -s "$T/cli/model.safetensors" "$T/tui/model.safetensors"; echo $?) \
    "the workbench running samples/pretrain.lua: the same weights as aim train, bit for bit"
finish
