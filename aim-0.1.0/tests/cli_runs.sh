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

# header cells: a key with a comma is quoted, a formula becomes text
printf '{"run":"r","step":1,"kind":"train","a,b":1,"=cmd|%s /C calc%s!A0":2,"ok":3}\n' "'" "'" \
    >"$T/keys.jsonl"
run_aim export-csv "$T/keys.jsonl" "$T/keys.csv"
want="step,\"a,b\",\"'=cmd|' /C calc'!A0\",ok"
ok $(test $rc -eq 0 && test "$(head -n 1 "$T/keys.csv")" = "$want" &&
     test "$(sed -n 2p "$T/keys.csv")" = "1,1,2,3"; echo $?) \
    "export-csv quotes a key with a comma and defuses a formula"

# SIGTERM (or Ctrl-C; a background job ignores SIGINT) while the CSV is
# being written: no *.csv.tmp.* is left. A log of
# 20000 lines with 10 new keys each (200000 columns, 10 rows) takes a
# while to write; the signal goes when the temporary appears.
awk 'BEGIN { for (i = 0; i < 20000; i++) {
         printf "{\"run\":\"r\",\"step\":%d,\"kind\":\"train\"", int(i / 2000);
         for (j = 0; j < 10; j++) printf ",\"k%d_%d\":1.5", i, j;
         printf "}\n" } }' >"$T/wide.jsonl"
mkdir -p "$T/wide"
"$AIM" export-csv "$T/wide.jsonl" "$T/wide/w.csv" >/dev/null 2>&1 &
pid=$!
seen=0
while kill -0 $pid 2>/dev/null; do
    if ls "$T/wide" | grep -q '\.tmp\.'; then seen=1; kill -TERM $pid; break; fi
done
wait $pid
st=$?
if [ $seen -eq 1 ]; then
    ok $(test $st -gt 128 && test -z "$(ls "$T/wide" | grep '\.tmp\.')"; echo $?) \
        "export-csv interrupted mid-write leaves no temporary (status $st)"
else
    n=$((n + 1)); echo "ok $n # SKIP the export finished before it could be interrupted"
fi
finish
