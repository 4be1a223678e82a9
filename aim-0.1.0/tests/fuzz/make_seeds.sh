#!/bin/sh
# make_seeds.sh AIM OUTDIR - small valid (and a few invalid) seed inputs for
# every fuzz target, made with the aim binary itself: nothing binary lives in
# git. OUTDIR/<target>/ gets the files.
set -eu
AIM=$1
OUT=$2
T=$OUT/.work
rm -rf "$OUT"
mkdir -p "$T" "$OUT/npy" "$OUT/safetensors" "$OUT/checkpoint" "$OUT/idx" "$OUT/cifar" \
    "$OUT/png" "$OUT/metrics" "$OUT/resume" "$OUT/lua" "$OUT/json" "$OUT/model"

# a tiny run: weights, a checkpoint, metrics
"$AIM" train --data synthetic --limit 64 --preset micro --steps 3 --batch 8 --threads 1 \
    --ckpt-every 3 --image 4 --patch 2 --width 8 --heads 2 --head-width 8 --out "$T/run" >/dev/null 2>&1
cp "$T/run/model.safetensors" "$OUT/safetensors/model.safetensors"
cp "$T/run/ckpt-3.safetensors" "$OUT/checkpoint/ckpt.safetensors"
head -n 3 "$T/run/metrics.jsonl" >"$OUT/metrics/metrics.jsonl"
head -n 1 "$T/run/metrics.jsonl" >"$OUT/json/line.json"
cp "$T/run/run.json" "$OUT/json/run.json"
printf '{"a":[1,-2.5e3,null,true,false,"\\u00e9\\ud83d\\ude00"],"b":{"c":[[{}]]}}' >"$OUT/json/mix.json"
# resume: the first byte is the step resumed from
{ printf '\002'; cat "$OUT/metrics/metrics.jsonl"; printf 'garbage\n{"step":'; } \
    >"$OUT/resume/step2.jsonl"
printf '{"__metadata__":{"a":"b"},"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' >"$T/h"
len=$(wc -c <"$T/h")
{ printf "\\$(printf '%03o' "$len")\\000\\000\\000\\000\\000\\000\\000"; cat "$T/h"; printf 'abcd'; } \
    >"$OUT/safetensors/small.safetensors"

# model: plain weights, weights with LoRA adapters, the adapters alone
cp "$T/run/model.safetensors" "$OUT/model/model.safetensors"
cat >"$T/lora.lua" <<LUA
local aim = require "aim"
local m = assert(aim.load("$T/run/model.safetensors"))
m:add_lora{rank = 2}
assert(m:save("$OUT/model/with_lora.safetensors"))
assert(m:save_lora("$OUT/model/lora.safetensors"))
LUA
"$AIM" run "$T/lora.lua" >/dev/null 2>&1 || true

# .npy: predictions of the tiny model, and a uint8 array
d="{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 4, 4), }"
{ printf '\223NUMPY\001\000v\000%s' "$d"; printf '%*s\n' $((117 - ${#d})) ''; head -c 192 /dev/zero; } >"$T/x.npy"
"$AIM" loss "$T/run/model.safetensors" --images "$T/x.npy" --prefix 2 --predictions "$OUT/npy/pred.npy" >/dev/null
d="{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }"
{ printf '\223NUMPY\001\000v\000%s' "$d"; printf '%*s\n' $((117 - ${#d})) ''; printf 'abc'; } >"$OUT/npy/u8.npy"

# IDX: 2 images of 2x2, plain and gzipped; labels
printf '\000\000\010\003\000\000\000\002\000\000\000\002\000\000\000\002abcdefgh' >"$OUT/idx/images"
gzip -c "$OUT/idx/images" >"$OUT/idx/images.gz"
printf '\000\000\010\001\000\000\000\002\001\002' >"$OUT/idx/labels"

# CIFAR: two records
{ printf '\001'; head -c 3072 /dev/zero; printf '\011'; head -c 3072 /dev/zero | tr '\000' '\177'; } \
    >"$OUT/cifar/batch.bin"

# PNG: gray and RGB written through the Lua API
cat >"$T/png.lua" <<LUA
local aim = require "aim"
local t = aim.tensor.zeros and aim.tensor.zeros({1, 4, 4}) or aim.data.synthetic{n = 1, size = 4}:batch(1, 1)[1]
aim.png.write("$OUT/png/gray.png", t)
local c = aim.data.synthetic{n = 1, channels = 3, size = 4}:batch(1, 1)[1]
aim.png.write("$OUT/png/rgb.png", c)
LUA
"$AIM" run "$T/png.lua" >/dev/null 2>&1 || printf '\211PNG\r\n\032\n' >"$OUT/png/sig.png"

# the Lua entry points see all of the above
cp "$OUT/safetensors/model.safetensors" "$OUT/npy/pred.npy" "$OUT/idx/images.gz" "$OUT/lua/"
rm -rf "$T"
