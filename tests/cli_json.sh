#!/bin/sh
# cli_json.sh - --json of aim info, runs, bench and probe: stdout is one JSON
# document (parsed with jq), with the keys docs/json.md promises; aim runs
# --where / --sort select and order runs, and a bad filter is an error.
. "${top_srcdir:-.}/tests/cli_lib.sh"

if ! command -v jq >/dev/null 2>&1; then
    echo "1..0 # SKIP jq is not installed (./bootstrap installs it)"
    exit 0
fi
# jq_ok FILTER DESCRIPTION: the last output parses and FILTER is true
jq_ok() {
    ok $(test "$rc" -eq 0 && jq -e "$1" "$T/out" >/dev/null 2>&1; echo $?) "$2"
}

mkdir -p "$T/runs"
for r in "a 1e-3 16" "b 2e-3 16" "c 5e-4 8"; do
    set -- $r
    "$AIM" train --data synthetic --limit 200 --preset micro --steps 4 --threads 1 \
        --lr "$2" --batch "$3" --out "$T/runs/$1" >/dev/null 2>&1 || echo "# train $1 failed"
done

# aim info --json: the config the file holds
run_aim info --json "$T/runs/a/model.safetensors"
jq_ok 'length == 1 and .[0].kind == "safetensors" and .[0].content == "weights" and
       .[0].config == {"image":8,"channels":3,"patch":2,"width":16,"depth":2,"heads":2,
                       "head_width":8,"head_depth":1} and (.[0].tensors | length) > 0' \
    "info --json: the weights' config and tensors"
run_aim info --json "$T/runs/a/ckpt-4.safetensors"
jq_ok '.[0].content == "checkpoint" and .[0].checkpoint.step == 4 and
       .[0].checkpoint.batch == 16 and .[0].checkpoint.verified == true' \
    "info --json: a checkpoint's step, batch, verified"
run_aim info --json "$T/nothing" "$T/runs/a/model.safetensors"
ok $(test "$rc" -eq 1 && jq -e 'length == 2 and (.[0].error | test("nothing")) and
     .[1].kind == "safetensors"' "$T/out" >/dev/null && grep -q '^aim: ' "$T/err"; echo $?) \
    "info --json: a missing PATH is an object with its error, the others follow, status 1"

# aim runs --json: the runs with their hyperparameters and results
run_aim runs --json "$T/runs"
jq_ok '[.runs[].run] == ["a","b","c"] and .runs[0].config.lr > 0.00099 and
       .runs[0].config.lr < 0.00101 and .runs[2].config.batch == 8 and
       .runs[1].results.steps == 4 and (.runs[1].results.loss | type) == "number" and
       (.differing | index("lr")) != null and (.differing | index("batch")) != null and
       (.differing | index("width")) == null' \
    "runs --json: every run's config and results; lr and batch differ, width does not"
run_aim runs --json --where 'lr>=1e-3' --sort -lr "$T/runs"
jq_ok '[.runs[].run] == ["b","a"]' "runs --where 'lr>=1e-3' --sort -lr: b then a"
run_aim runs --json --where 'lr=1e-3' "$T/runs"
jq_ok '[.runs[].run] == ["a"]' "runs --where 'lr=1e-3': equal to float precision"
run_aim runs --json --where 'batch=16' --where 'run!=a' "$T/runs"
jq_ok '[.runs[].run] == ["b"]' "two --where must both hold"
run_aim runs --json --sort loss "$T/runs"
jq_ok '[.runs[].results.loss] | . == sort' "runs --sort loss: ascending losses"
run_aim runs --where 'lr>=1e-3' "$T/runs"
ok $(test $rc -eq 0 && head -n 1 "$T/out" | grep -q ' time  *lr$' &&
     awk 'NR > 1 { print $1 }' "$T/out" | tr '\n' ' ' | grep -qx 'a b '; echo $?) \
    "runs table: lr differs between the listed runs, batch (16 for both) is not shown"
run_aim runs "$T/runs"
ok $(test $rc -eq 0 && head -n 1 "$T/out" | grep -q ' time  *lr  *batch$' &&
     awk '$1 == "c" { exit !($(NF - 1) == "0.0005" && $NF == 8) }' "$T/out"; echo $?) \
    "runs table: all three runs: lr and batch beside the results"
expect_error "lr>>1" "a bad operator names the filter" runs --where 'lr>>1' "$T/runs"
expect_error "no run has a key \"bogus\"" "an unknown key names it" runs --where 'bogus=1' "$T/runs"
expect_error "expected KEY OP VALUE" "a filter without an operator" runs --where 'lr' "$T/runs"

# aim bench --json
run_aim bench --json --preset micro --steps 2 --batch 8 --gemm-seconds 0.05 --threads 1
jq_ok '.config.width == 16 and .batch == 8 and .steps == 2 and .training.img_per_s > 0 and
       .forward.img_per_s > 0 and .peak_flops_per_s > 0 and (.gemm | length) > 0 and
       (.openblas_core | length) > 0' \
    "bench --json: config, passes, peak, OpenBLAS's kernels"
expect_error "--json" "bench --profile --json is refused" bench --json --profile --preset micro

# aim probe --json: the results only on stdout
run_aim probe --json "$T/runs/a/model.safetensors" --data synthetic --train-limit 100 \
    --test-limit 50 --epochs 1 --blocks 1 --threads 1
jq_ok '.weights | endswith("model.safetensors")' "probe --json: the weights"
jq_ok '(.sets | length) == 1 and .sets[0].blocks == [1] and .sets[0].test_top1 >= 0 and
       .best == 0 and .probe == "attentive"' "probe --json: one set with its top-1"
ok $(grep -q 'epoch' "$T/err"; echo $?) "probe --json: progress stays on stderr"
finish
