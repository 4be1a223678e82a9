#!/bin/sh
# cli_resume.sh - runs that survive: `aim train` killed with SIGKILL at
# random moments and resumed (several times) ends with exactly the weights
# and loss sequence of an uninterrupted run; Ctrl-C (SIGINT) saves and exits
# 0; a fresh run starts its log anew; a corrupt checkpoint is refused;
# `aim export` and `aim info`.
. "${top_srcdir:-.}/tests/cli_lib.sh"

# --shift 1: a resumed run must restore the shift too, or it draws other images
ARGS="--data synthetic --limit 300 --preset micro --steps 1200 --batch 8 --lr 3e-3 --threads 2 --ckpt-every 9 --keep 2 --val-every 100 --val-images 32 --shift 1"
# every line but the sys/* ones (CPU use, memory, load: measurements of the moment, like wall)
losses() { grep -v '"kind":"sys"' "$1" | sed 's/"run":"[^"]*",//; s/"wall":[^,]*,//; s/.*"step":\([0-9]*\).*"loss":\([^,]*\),"lr":\([^,]*\),"grad_norm":\([^,]*\).*/\1 \2 \3 \4/'; }

run_aim train $ARGS --out "$T/straight"
ok $(test $rc -eq 0 && grep -q '"shift":1}' "$T/straight/run.json"; echo $?) "the uninterrupted run completes (shift 1 in run.json)"

# kill -9 at three random moments, resuming in between
seed=$(( $(date +%s) % 997 ))
mkdir -p "$T/killed"
"$AIM" train $ARGS --out "$T/killed" >/dev/null 2>&1 &
kills=0
for round in 1 2 3; do
    pid=$!
    # 0.2 .. 1.0 s, varied from run to run (the seed is printed on failure)
    delay=$(awk -v s="$seed" -v r="$round" 'BEGIN { srand(s * 10 + r); printf "%.2f", 0.2 + 0.8 * rand() }')
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null
    if ls "$T/killed"/ckpt-*.safetensors >/dev/null 2>&1; then
        "$AIM" train --resume "$T/killed" --threads 2 >/dev/null 2>&1 &
    else
        "$AIM" train $ARGS --out "$T/killed" >/dev/null 2>&1 &
    fi
done
wait $!
run_aim train --resume "$T/killed" --threads 2
ok $(test $rc -eq 0; echo $?) "after $kills kill -9 (seed $seed) the run resumes to the end"
ok $(cmp -s "$T/straight/model.safetensors" "$T/killed/model.safetensors"; echo $?) "final weights are bit-identical to the uninterrupted run"
losses "$T/straight/metrics.jsonl" >"$T/a.txt"
losses "$T/killed/metrics.jsonl" >"$T/b.txt"
ok $(cmp -s "$T/a.txt" "$T/b.txt" && test "$(grep -c train "$T/straight/metrics.jsonl")" -eq 1200 && test "$(grep -c "\"kind\":\"val\"" "$T/killed/metrics.jsonl")" -eq 12; echo $?) "the logged loss, lr and grad-norm sequence is identical (1200 steps, no duplicates)"
left=$(ls "$T/killed" | grep '\.tmp\.' | tr '\n' ' ')
ok $(test -z "$left"; echo $?) "no temporary files are left behind${left:+: $left}"
ok $(cmp -s "$T/straight/best.safetensors" "$T/killed/best.safetensors"; echo $?) "the best-validation checkpoint is identical too"
ok $(test "$(ls "$T/killed" | grep -c '^ckpt-')" -le 2; echo $?) "at most --keep 2 checkpoints are kept"

# Ctrl-C: finish the step, save, exit 0 with a message
"$AIM" train $ARGS --out "$T/int" >"$T/int.out" 2>"$T/int.err" &
pid=$!
# once training runs (its first checkpoint is written, so the handler is in)
i=0
while ! ls "$T/int"/ckpt-*.safetensors >/dev/null 2>&1 && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
kill -INT $pid
wait $pid
st=$?
ok $(test $st -eq 0 && grep -q 'resume with: aim train --resume' "$T/int.out"; echo $?) "SIGINT saves a checkpoint and exits 0 (status $st)"
run_aim train --resume "$T/int" --threads 2
ok $(test $rc -eq 0 && cmp -s "$T/straight/model.safetensors" "$T/int/model.safetensors"; echo $?) "... and the resumed run ends identical too"
run_aim train --resume "$T/int"
ok $(test $rc -eq 0 && grep -q 'already complete' "$T/out"; echo $?) "resuming a finished run says so"

# a fresh run (no --resume) into a folder an earlier run logged to, killed
# before its first checkpoint, starts the log and the event file anew
FRESH="--data synthetic --limit 64 --preset micro --steps 20 --batch 8 --threads 2 --val-every 10 --val-images 16 --probe-every 0"
run_aim train $FRESH --no-checkpoints --out "$T/again"
run_aim train $FRESH --out "$T/again"
rc_again=$rc
nval=$(grep -a -o 'val/val_loss' "$T/again/events.out.tfevents.aim" 2>/dev/null | wc -l)
run_aim train $FRESH --out "$T/once"
losses "$T/again/metrics.jsonl" >"$T/a.txt"
losses "$T/once/metrics.jsonl" >"$T/b.txt"
ok $(test $rc_again -eq 0 && test $rc -eq 0 && test "$(grep -c '"kind":"train"' "$T/again/metrics.jsonl")" -eq 20 && cmp -s "$T/a.txt" "$T/b.txt" && test "$nval" -eq 2; echo $?) "a fresh run starts its metrics log anew (20 train lines, not 40; $nval val scalars in the event file)"

# corrupt checkpoint, export, info
ck=$(ls "$T/straight"/ckpt-*.safetensors | head -n 1)
cp "$ck" "$T/bad.safetensors"
size=$(wc -c <"$T/bad.safetensors")
printf 'X' | dd of="$T/bad.safetensors" bs=1 seek=$((size - 50)) conv=notrunc 2>/dev/null
expect_error "checksum" "a corrupt checkpoint is refused by --resume" train --resume "$T/bad.safetensors"
expect_error "checksum" "... and by aim info" info "$T/bad.safetensors"
expect_error "no checkpoint" "resuming a folder without checkpoints" train --resume "$T"
run_aim info "$ck"
ok $(test $rc -eq 0 && grep -q 'training checkpoint' "$T/out" && grep -q 'verified' "$T/out"; echo $?) "aim info summarises a checkpoint"
run_aim export "$T/straight" "$T/w.safetensors"
ok $(test $rc -eq 0; echo $?) "aim export of a run folder"
run_aim info "$T/w.safetensors"
ok $(test $rc -eq 0 && grep -q 'AIM weights' "$T/out" && ! grep -q optimizer "$T/out"; echo $?) "the export holds weights only"
npy_header '<f4' '(1, 3, 8, 8)' >"$T/x.npy"
i=0
while [ $i -lt 48 ]; do
    printf '\000\000\200\077\000\000\200\277\000\000\000\077\315\314\114\300' >>"$T/x.npy"
    i=$((i + 1))
done
run_aim loss "$T/w.safetensors" --images "$T/x.npy" --prefix 3
l1=$(tail -n 1 "$T/out")
run_aim loss "$T/straight/model.safetensors" --images "$T/x.npy" --prefix 3
ok $(test -n "$l1" && test "$l1" = "$(tail -n 1 "$T/out")"; echo $?) "the export computes the same loss as the run's weights ($l1)"
finish
