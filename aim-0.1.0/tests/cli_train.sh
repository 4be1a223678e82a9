#!/bin/sh
# cli_train.sh - `aim train`, `aim loss` and `aim bench` end to end on tiny
# sizes: a run folder with metrics and weights, the loss contract, errors.
. "${top_srcdir:-.}/tests/cli_lib.sh"

run_aim train --data synthetic --limit 256 --preset micro --steps 30 --batch 8 --lr 3e-3 \
    --out "$T/run" --threads 1
ok $(test $rc -eq 0; echo $?) "aim train on synthetic data exits 0"
ok $(test -f "$T/run/model.safetensors" && test -f "$T/run/run.json"; echo $?) "the run folder holds run.json and model.safetensors"
lines=$(grep -c '"kind":"train"' "$T/run/metrics.jsonl" 2>/dev/null || echo 0)
ok $(test "$lines" -eq 30; echo $?) "metrics.jsonl has one train line per step ($lines)"
ok $(grep -q 'step 30/30' "$T/err"; echo $?) "the progress line reaches step 30/30"
first=$(head -n 1 "$T/run/metrics.jsonl" | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
last=$(grep '"kind":"train"' "$T/run/metrics.jsonl" | tail -n 1 | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
ok $(awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }'; echo $?) "the loss fell from $first to $last"
run_aim info "$T/run/model.safetensors"
ok $(test $rc -eq 0 && grep -q 'AIM weights' "$T/out" && grep -q 'trunk.blocks.1.mlp.fc2.weight' "$T/out"; echo $?) "aim info recognises the weights"

# the same seed gives the same run
run_aim train --data synthetic --limit 256 --preset micro --steps 30 --batch 8 --lr 3e-3 \
    --out "$T/run2" --threads 1
ok $(cmp -s "$T/run/model.safetensors" "$T/run2/model.safetensors"; echo $?) "a second run with the same seed gives identical weights"

# aim loss: images float32 [2,3,8,8] cycling through a few values
npy_header '<f4' '(2, 3, 8, 8)' >"$T/x.npy"
i=0
while [ $i -lt 96 ]; do
    printf '\000\000\200\077\000\000\200\277\000\000\000\077\315\314\114\300' >>"$T/x.npy"
    i=$((i + 1))
done
run_aim loss "$T/run/model.safetensors" --images "$T/x.npy" --prefix 5 --predictions "$T/p.npy"
loss=$(tail -n 1 "$T/out")
ok $(test $rc -eq 0 && echo "$loss" | grep -Eq '^[0-9]+\.[0-9]+(e[-+][0-9]+)?$'; echo $?) "aim loss prints the loss: $loss"
run_aim loss "$T/run/model.safetensors" --images "$T/x.npy" --prefix 5
ok $(test "$(tail -n 1 "$T/out")" = "$loss"; echo $?) "the loss is deterministic"
run_aim info "$T/p.npy"
ok $(test $rc -eq 0 && grep -q '\[2, 16, 12\]' "$T/out"; echo $?) "predictions are [B, N, P] = [2, 16, 12]"
run_aim loss "$T/run/model.safetensors" --images "$T/x.npy" --prefix 15
ok $(test $rc -eq 0; echo $?) "prefix N-1 is allowed"
expect_error "1..15" "prefix 0 is refused" loss "$T/run/model.safetensors" --images "$T/x.npy" --prefix 0
expect_error "1..15" "prefix N is refused" loss "$T/run/model.safetensors" --images "$T/x.npy" --prefix 16
npy_header '<f4' '(2, 1, 8, 8)' >"$T/y.npy"
head -c 512 /dev/zero >>"$T/y.npy"
expect_error "[B,3,8,8]" "images of the wrong shape are refused" loss "$T/run/model.safetensors" --images "$T/y.npy" --prefix 3
expect_error "required" "--images is required" loss "$T/run/model.safetensors" --prefix 3
expect_error "nothing.safetensors" "missing weights" loss "$T/nothing.safetensors" --images "$T/x.npy" --prefix 3
expect_error "x.npy" "a .npy given as weights" loss "$T/x.npy" --images "$T/x.npy" --prefix 3
h='{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
len=$(printf '%s' "$h" | wc -c)
printf "\\$(printf '%03o' "$len")\\000\\000\\000\\000\\000\\000\\000%s12345678" "$h" >"$T/other.safetensors"
expect_error "no \"image\"" "a safetensors file without AIM metadata" loss "$T/other.safetensors" --images "$T/x.npy" --prefix 3

# TensorBoard images: with validation, the reconstructions of 4 validation
# images at each validation point (--recon-images, 0 = none); the PNGs
# themselves are decoded and checked in tests/test_train.c
run_aim train --data synthetic --limit 256 --preset micro --steps 20 --batch 8 --val-every 10 \
    --val-images 32 --out "$T/rv" --threads 1
nimg=$(grep -a -o 'recon/val' "$T/rv/events.out.tfevents.aim" 2>/dev/null | wc -l)
ok $(test $rc -eq 0 && test "$nimg" -eq 2; echo $?) "with --val-every 10 of 20 steps the event file holds 2 recon/val images ($nimg)"
run_aim train --data synthetic --limit 256 --preset micro --steps 20 --batch 8 --val-every 10 \
    --val-images 32 --recon-images 0 --out "$T/rv0" --threads 1
nimg=$(grep -a -o 'recon/val' "$T/rv0/events.out.tfevents.aim" 2>/dev/null | wc -l)
ok $(test $rc -eq 0 && test "$nimg" -eq 0 && grep -a -q 'val/val_loss' "$T/rv0/events.out.tfevents.aim"; echo $?) "--recon-images 0: no images, the validation scalars are there"
ok $(cmp -s "$T/rv/model.safetensors" "$T/rv0/model.safetensors"; echo $?) "the images change nothing in the training: identical weights with and without"
expect_error "0..8" "--recon-images above 8 is refused" train --data synthetic --recon-images 9
run_aim train --help
ok $(test $rc -eq 0 && grep -q -- '--recon-images' "$T/out"; echo $?) "aim train --help lists --recon-images"

# bench runs and reports MFU
run_aim bench --preset micro --batch 4 --steps 2 --gemm-seconds 0.1
ok $(test $rc -eq 0 && grep -q 'MFU' "$T/out" && grep -q '^training' "$T/out"; echo $?) "aim bench reports training and forward MFU"
expect_error "batch" "bench with a bad batch" bench --batch 0
expect_error "--preset must be one of micro|tiny|small (got \"giant\")" "an unknown preset" train --preset giant --data synthetic
# a data path with a quote and a backslash: run.json stays JSON (escaped), aim runs reads it
Q="$T/we\"ird\\x"
mkdir -p "$Q"
{ printf '\000\000\010\003\000\000\000\100\000\000\000\010\000\000\000\010'; head -c 4096 /dev/zero; } >"$Q/train-images-idx3-ubyte"
{ printf '\000\000\010\001\000\000\000\100'; head -c 64 /dev/zero; } >"$Q/train-labels-idx1-ubyte"
run_aim train --data "$Q/train-images-idx3-ubyte" --preset micro --steps 2 --batch 8 --out "$T/qruns/q" --threads 1
ok $(test $rc -eq 0 && grep -qF '"data":"'"$T"'/we\"ird\\x/train-images-idx3-ubyte","images":64' "$T/qruns/q/run.json"; echo $?) "a data path with \" and \\ is escaped in run.json"
run_aim runs "$T/qruns"
ok $(test $rc -eq 0 && grep -q '^q .*D16 L2' "$T/out"; echo $?) "... and aim runs reads that run.json"
finish
