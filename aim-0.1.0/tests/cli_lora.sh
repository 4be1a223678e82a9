#!/bin/sh
# cli_lora.sh - `aim lora`: LoRA fine-tuning of a freshly pretrained trunk
# on synthetic data: the result line (test top-1, adapter values, their
# share of the trunk), --compare's gain line, --save (trunk + adapters +
# head) and --save-adapters (the adapters alone), continuing saved adapters,
# run folders (--out), and argument and file errors.
. "${top_srcdir:-.}/tests/cli_lib.sh"

# a micro trunk made wider (D=64) so that rank-2 adapters on one block are
# under 1% of it, as they are for the real presets
run_aim train --data synthetic --limit 400 --preset micro --width 64 --heads 2 --steps 20 --batch 16 --out "$T/run" --threads 1
ok $(test $rc -eq 0; echo $?) "a small model to fine-tune"
W="$T/run/model.safetensors"
P="--data synthetic --train-limit 300 --test-limit 200 --epochs 2 --batch 32 --rank 2 --threads 1"

run_aim lora "$W" $P --save "$T/lora.safetensors" --save-adapters "$T/adapters.safetensors"
line=$(grep '^lora r=2' "$T/out")
ok $(test $rc -eq 0 && echo "$line" | grep -q 'test top-1' && echo "$line" | grep -q 'adapter values'; echo $?) "aim lora prints the result: $line"
top=$(echo "$line" | sed -n 's/.*: \([0-9.]*\)% test top-1.*/\1/p')
ok $(awk -v t="$top" 'BEGIN { exit !(t != "" && t > 10.0 && t <= 100) }'; echo $?) "test top-1 beats chance on 10 classes ($top%)"
values=$(echo "$line" | sed -n 's/.*trained \([0-9]*\) adapter values.*/\1/p')
share=$(echo "$line" | sed -n 's/.*adapter values (\([0-9.]*\)% of the trunk).*/\1/p')
ok $(test "$values" = 768 && awk -v s="$share" 'BEGIN { exit !(s != "" && s > 0 && s < 1) }'; echo $?) "768 = 6 r D adapter values on one block, $share% of the trunk (< 1%)"
ok $(test "$(grep -c '^epoch  [12]: loss [0-9.]*  train [0-9.]*%  test [0-9.]*%$' "$T/out")" -eq 2; echo $?) "one line per epoch"
ok $(grep -q "^aim lora: new LoRA adapters, rank 2 alpha 2 on block(s) 1: 768 adapter values = $share% of the trunk" "$T/err"; echo $?) "the start line gives the same count and share"
run_aim info "$T/lora.safetensors"
ok $(test $rc -eq 0 && grep -q 'trunk.blocks.0.attn.qkv.lora_A  *F32  \[4, 64\]' "$T/out" && grep -q 'trunk.blocks.0.attn.proj.lora_A  *F32  \[2, 64\]' "$T/out" && grep -q 'trunk.blocks.1.attn.qkv.weight' "$T/out" && grep -q 'head.linear.weight' "$T/out" && grep -q 'lora_rank  *2' "$T/out"; echo $?) "--save: trunk + lora_A/lora_B + head, lora_rank in the metadata"
run_aim info "$T/adapters.safetensors"
tensors=$(grep -cE '^    [A-Za-z_.0-9]+ +[FI][0-9]+ +\[' "$T/out")
adapters=$(grep -cE '^    trunk\.blocks\.0\.attn\.(qkv|proj)\.lora_[AB] ' "$T/out")
ok $(test $rc -eq 0 && test "$tensors" -eq 4 && test "$adapters" -eq 4 && grep -q 'tensors *4, 768 values' "$T/out"; echo $?) "--save-adapters: exactly the 4 adapters ($tensors tensors, $adapters adapters)"

run_aim lora "$T/lora.safetensors" $P --epochs 1
ok $(test $rc -eq 0 && grep -q 'continuing its LoRA adapters, rank 2' "$T/err" && grep -q '^lora r=2' "$T/out"; echo $?) "a --save output continues training its adapters"

run_aim lora "$W" $P --epochs 1 --compare --probe-epochs 2 --quiet
frozen=$(grep '^frozen attentive probe, blocks 1:' "$T/out")
gain=$(grep '^gain over the frozen attentive probe: [+-][0-9.]* points ([0-9.]*% -> [0-9.]*%)$' "$T/out")
ok $(test $rc -eq 0 && test -n "$frozen" && test -n "$gain" && test ! -s "$T/err"; echo $?) "--compare: $frozen | $gain"

# --out: a run folder with run.json, lora_step / lora lines, the event file
run_aim lora "$W" $P --out "$T/runs/l" --log-every 3 --flip
top=$(sed -n 's/^lora r=2.*: \([0-9.]*\)% test top-1.*/\1/p' "$T/out")
last=$(sed -n 's/.*"kind":"lora",.*"test_top1":\([0-9.]*\).*/\1/p' "$T/runs/l/metrics.jsonl" | tail -n 1)
ok $(test $rc -eq 0 && grep -q '"kind":"lora"' "$T/runs/l/run.json" && grep -q '"rank":2,' "$T/runs/l/run.json" && grep -q '"adapters":768,' "$T/runs/l/run.json" && grep -q "\"weights\":\"$W\"" "$T/runs/l/run.json" && grep -q '"probe_blocks":\[1\]' "$T/runs/l/run.json" && grep -q '"augment":0,"flip":1,' "$T/runs/l/run.json" && test -s "$T/runs/l/events.out.tfevents.aim"; echo $?) "--out: run.json (kind, weights, rank, adapters, probe blocks, --flip) and an event file"
ok $(test "$(grep -c '"kind":"lora",' "$T/runs/l/metrics.jsonl")" -eq 2 && test "$(grep -c '"kind":"lora_step",.*"grad_norm":[0-9.e-]*,"img_per_s"' "$T/runs/l/metrics.jsonl")" -eq 6; echo $?) "a lora line per epoch, a lora_step line every 3 of 18 steps"
ok $(awk -v a="$top" -v b="$last" 'BEGIN { exit !(a != "" && b != "" && a - b < 0.01 && b - a < 0.01) }'; echo $?) "the last lora line's test_top1 is the printed one ($last, printed $top)"
run_aim export-csv "$T/runs/l"
ok $(test $rc -eq 0 && head -n 1 "$T/runs/l/metrics.csv" | grep -q 'lora_step_loss,.*lora_step_grad_norm,.*lora_test_top1'; echo $?) "export-csv of a LoRA run folder"
run_aim runs "$T/runs"
ok $(test $rc -eq 0 && awk -v t="$top" '$1 == "l" { found = ($5 == 18 && $9 == t) } END { exit !found }' "$T/out"; echo $?) "aim runs lists it: 18 steps, lora% $top"
run_aim lora "$W" $P --epochs 1 --compare --probe-epochs 2 --quiet --out "$T/runs/c"
frozen=$(sed -n 's/^frozen attentive probe, blocks 1: \([0-9.]*\)%.*/\1/p' "$T/out")
logged=$(sed -n 's/.*"kind":"probe_result".*"top1":\[\([0-9.]*\)\].*/\1/p' "$T/runs/c/metrics.jsonl")
ok $(test $rc -eq 0 && grep -q '"kind":"lora"' "$T/runs/c/run.json" && test "$(grep -c '"kind":"probe_epoch"' "$T/runs/c/metrics.jsonl")" -eq 2 && awk -v a="$frozen" -v b="$logged" 'BEGIN { exit !(a != "" && b != "" && a - b < 0.01 && b - a < 0.01) }'; echo $?) "--compare --out: the frozen probe's probe_result ($logged, printed $frozen), run.json of the LoRA job"
run_aim runs "$T/runs"
ok $(awk -v f="$frozen" '$1 == "c" { found = ($8 == f && $9 != "-") } END { exit !found }' "$T/out"; echo $?) "aim runs shows both: probe% $frozen and the LoRA top-1"
printf 'x' >"$T/plain"
expect_error "plain/sub: cannot create" "--out under a regular file" lora "$W" $P --out "$T/plain/sub"
ok $(test ! -s "$T/out"; echo $?) "... refused before any work (nothing printed)"
expect_error "pretraining run" "--out into a pretraining run's folder" lora "$W" $P --out "$T/run"
expect_error "--log-every must be in 1..1073741824 (got 0)" "--log-every 0" lora "$W" $P --log-every 0

# starting from a saved frozen probe (LP-FT), and heads that do not fit
run_aim probe "$W" --data synthetic --train-limit 300 --test-limit 200 --blocks 1 --epochs 2 --batch 32 --threads 1 --quiet --save "$T/probed.safetensors"
ok $(test $rc -eq 0; echo $?) "a saved attentive probe"
run_aim lora "$W" $P --epochs 1 --head "$T/probed.safetensors"
ok $(test $rc -eq 0 && grep -q '| the saved attentive head on blocks 1 |' "$T/err" && grep -q '^lora r=2, probe blocks 1:' "$T/out"; echo $?) "--head FILE: LoRA starts from a saved probe, on its blocks"
run_aim probe "$W" --data synthetic --train-limit 300 --test-limit 200 --blocks 1 --epochs 1 --batch 32 --threads 1 --quiet --kind linear --save "$T/linear.safetensors"
expect_error "does not fit" "--head with a linear probe" lora "$W" $P --head "$T/linear.safetensors"
expect_error "--head and --compare exclude each other" "--head with --compare" lora "$W" $P --head "$T/probed.safetensors" --compare
expect_error "WEIGHTS" "lora without weights" lora $P
expect_error "--rank must be in 1..65536 (got 0)" "--rank 0" lora "$W" $P --rank 0
expect_error "rank 65 exceeds the trunk width 64" "a rank above the width" lora "$W" $P --rank 65
expect_error "blocks: block 99 is not in 1..2" "--blocks 99" lora "$W" $P --blocks 99
expect_error "--probe-blocks expects a list of block numbers like 3,4 (got \"x\")" "--probe-blocks x" lora "$W" $P --probe-blocks x
expect_error "missing.safetensors" "missing weights" lora "$T/missing.safetensors" $P
printf 'garbage, not safetensors' >"$T/corrupt.safetensors"
expect_error "corrupt.safetensors" "a corrupt weights file" lora "$T/corrupt.safetensors" $P
head -c 1000 "$W" >"$T/truncated.safetensors"
expect_error "truncated.safetensors" "a truncated weights file" lora "$T/truncated.safetensors" $P
finish
