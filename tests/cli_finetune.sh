#!/bin/sh
# cli_finetune.sh - `aim finetune`: full fine-tuning of a freshly pretrained
# trunk on synthetic data: the result line (the last epoch's test top-1,
# trunk and head values), the per-epoch lines with the next-patch loss,
# --save (trunk + head), run folders (--out: run.json kind "finetune",
# finetune_step / finetune / val lines), and errors naming the argument.
. "${top_srcdir:-.}/tests/cli_lib.sh"

run_aim train --data synthetic --limit 400 --preset micro --width 64 --heads 2 --steps 20 --batch 16 --out "$T/run" --threads 1
ok $(test $rc -eq 0; echo $?) "a small model to fine-tune"
W="$T/run/model.safetensors"
P="--data synthetic --train-limit 300 --test-limit 200 --epochs 2 --batch 32 --threads 1 --lr 3e-3 --head-lr 1e-2"

run_aim finetune "$W" $P --save "$T/ft.safetensors"
line=$(grep '^finetune, probe blocks 1: ' "$T/out")
ok $(test $rc -eq 0 && echo "$line" | grep -q 'test top-1 (train [0-9.]*%) after 2 epoch(s)' && echo "$line" | grep -q 'trained [0-9]* trunk values (blocks 1-1 + patch embedding) + [0-9]* head values'; echo $?) "aim finetune prints the result: $line"
top=$(echo "$line" | sed -n 's/.*: \([0-9.]*\)% test top-1.*/\1/p')
ok $(awk -v t="$top" 'BEGIN { exit !(t != "" && t > 10.0 && t <= 100) }'; echo $?) "test top-1 beats chance on 10 classes ($top%)"
ep2=$(sed -n 's/^epoch  2: .*  test \([0-9.]*\)%  next-patch [0-9.]*$/\1/p' "$T/out")
ok $(test "$(grep -c '^epoch  [12]: loss [0-9.]*  train [0-9.]*%  test [0-9.]*%  next-patch [0-9.]*$' "$T/out")" -eq 2 && test "$ep2" = "$top"; echo $?) "one line per epoch with the next-patch loss; the result is the last epoch's ($ep2)"
np0=$(sed -n 's/^before fine-tuning:  next-patch \([0-9.]*\)$/\1/p' "$T/out")
np2=$(sed -n 's/^epoch  2: .*next-patch \([0-9.]*\)$/\1/p' "$T/out")
ok $(test -n "$np0" && grep -q "^next-patch loss on 200 test images: $np0 -> $np2 (" "$T/out"; echo $?) "the next-patch loss before ($np0) and after ($np2)"
ok $(grep -q '^aim finetune: the whole trunk (patch embedding + blocks 1-1 of 2) at lr 0.003 x 0.75^(2-i) for block i, a new attentive head on blocks 1 at 0.01 | 300 + 200 images | 2 epochs x 9 steps of 32' "$T/err"; echo $?) "the start line names the trained blocks, the lrs and the images"
run_aim info "$T/ft.safetensors"
ok $(test $rc -eq 0 && grep -q 'head.linear.weight' "$T/out" && grep -q 'trunk.blocks.0.attn.qkv.weight' "$T/out" && grep -q 'probe_layers  *1' "$T/out" && ! grep -q 'lora_A' "$T/out"; echo $?) "--save: trunk + head, probe_layers in the metadata, no adapters"
run_aim probe "$T/ft.safetensors" --data synthetic --train-limit 300 --test-limit 200 --blocks 1 --epochs 1 --batch 32 --threads 1 --quiet
ok $(test $rc -eq 0; echo $?) "the saved model loads as a trunk for aim probe"

# --out: a run folder
run_aim finetune "$W" $P --out "$T/runs/f" --log-every 3 --layer-decay 0.5 --label-smoothing 0.1
top=$(sed -n 's/^finetune, probe blocks 1: \([0-9.]*\)% test top-1.*/\1/p' "$T/out")
last=$(sed -n 's/.*"kind":"finetune",.*"test_top1":\([0-9.]*\).*/\1/p' "$T/runs/f/metrics.jsonl" | tail -n 1)
ok $(test $rc -eq 0 && grep -q '"kind":"finetune"' "$T/runs/f/run.json" && grep -q "\"weights\":\"$W\"" "$T/runs/f/run.json" && grep -q '"probe_blocks":\[1\],"top_block":1,' "$T/runs/f/run.json" && grep -q '"layer_decay":0.5,' "$T/runs/f/run.json" && grep -q '"label_smoothing":0.100000001,' "$T/runs/f/run.json" && test -s "$T/runs/f/events.out.tfevents.aim"; echo $?) "--out: run.json (kind, weights, probe and top block, layer decay, label smoothing) and an event file"
ok $(test "$(grep -c '"kind":"finetune",' "$T/runs/f/metrics.jsonl")" -eq 2 && test "$(grep -c '"kind":"finetune_step",.*"head_lr":[0-9.e-]*,"grad_norm":[0-9.e-]*,"img_per_s"' "$T/runs/f/metrics.jsonl")" -eq 6; echo $?) "a finetune line per epoch, a finetune_step line every 3 of 18 steps"
vsteps=$(grep '"kind":"val",' "$T/runs/f/metrics.jsonl" | sed -n 's/.*"step":\([0-9]*\),.*"val_loss":[0-9.e-]*.*/\1/p' | tr '\n' ' ')
ok $(test "$vsteps" = "0 9 18 "; echo $?) "the next-patch loss as a val line before the first step and after each epoch (steps: $vsteps)"
ok $(awk -v a="$top" -v b="$last" 'BEGIN { exit !(a != "" && b != "" && a - b < 0.01 && b - a < 0.01) }'; echo $?) "the last finetune line's test_top1 is the printed one ($last, printed $top)"
run_aim finetune "$W" $P --epochs 1 --val-images 0 --quiet
ok $(test $rc -eq 0 && ! grep -q 'next-patch' "$T/out" && test ! -s "$T/err"; echo $?) "--val-images 0: no next-patch loss; --quiet: nothing on stderr"

# errors, each naming its argument
printf 'x' >"$T/plain"
expect_error "plain/sub: cannot create" "--out under a regular file" finetune "$W" $P --out "$T/plain/sub"
expect_error "WEIGHTS" "finetune without weights" finetune $P
expect_error "--layer-decay must be in [0.01, 1] (got 0)" "--layer-decay 0" finetune "$W" $P --layer-decay 0
expect_error "--label-smoothing must be in [0, 0.99] (got 1)" "--label-smoothing 1" finetune "$W" $P --label-smoothing 1
expect_error "--warmup must be in -1.." "--warmup -2" finetune "$W" $P --warmup -2
expect_error "probe_blocks: block 99 is not in 1..2" "--probe-blocks 99" finetune "$W" $P --probe-blocks 99
expect_error "--probe-blocks expects a list of block numbers like 3,4 (got \"x\")" "--probe-blocks x" finetune "$W" $P --probe-blocks x
expect_error "--rank" "a LoRA option" finetune "$W" $P --rank 2
expect_error "missing.safetensors" "missing weights" finetune "$T/missing.safetensors" $P
head -c 1000 "$W" >"$T/truncated.safetensors"
expect_error "truncated.safetensors" "a truncated weights file" finetune "$T/truncated.safetensors" $P
run_aim lora "$W" --data synthetic --train-limit 300 --test-limit 200 --epochs 1 --batch 32 --threads 1 --rank 2 --quiet --save "$T/lora.safetensors"
expect_error "the model has LoRA adapters" "a model with LoRA adapters" finetune "$T/lora.safetensors" $P --quiet
finish
