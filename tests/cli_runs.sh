#!/bin/sh
# cli_runs.sh - run folders elsewhere: a TensorBoard event file beside the
# metrics, `aim export-csv` and the `aim runs` table.
. "${top_srcdir:-.}/tests/cli_lib.sh"

mkdir -p "$T/runs"
run_aim train --data synthetic --limit 400 --preset micro --steps 20 --batch 16 --out "$T/runs/a" \
    --threads 1 --val-every 10 --val-images 32 --probe-every 10 --probe-images 100
ok $(test $rc -eq 0 && test -s "$T/runs/a/events.out.tfevents.aim"; echo $?) "training writes a TensorBoard event file"
run_aim train --data synthetic --limit 400 --preset micro --steps 10 --batch 16 --out "$T/runs/b" --threads 1 --width 24 --heads 3
ok $(test $rc -eq 0; echo $?) "a second run"
run_aim export-csv "$T/runs/a"
ok $(test $rc -eq 0 && head -n 1 "$T/runs/a/metrics.csv" | grep -q '^step,loss,lr,grad_norm,img_per_s,epoch,time,.*val_loss.*probe_top1_block1,probe_top1_block2' && test "$(wc -l <"$T/runs/a/metrics.csv")" -eq 21; echo $?) "export-csv: header with every metric, one row per step"
run_aim export-csv "$T/runs/a" "$T/out.csv"
ok $(test $rc -eq 0 && cmp -s "$T/out.csv" "$T/runs/a/metrics.csv"; echo $?) "export-csv to a chosen file"
run_aim runs "$T/runs"
ok $(test $rc -eq 0 && grep -q '^a  *D16 L2' "$T/out" && grep -q '^b  *D24 L2' "$T/out" && awk '$1 == "a" { exit !($5 == 20) }' "$T/out"; echo $?) "aim runs lists both runs with model and steps"
expect_error "no such folder" "aim runs on a missing folder" runs "$T/nothing"
printf '{"run":"x","step":1,"kind":"train","loss":1}\n{broken\n' >"$T/bad.jsonl"
expect_error "line 2" "a malformed metrics log is named" export-csv "$T/bad.jsonl"
finish
