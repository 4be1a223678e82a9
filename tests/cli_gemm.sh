#!/bin/sh
# cli_gemm.sh - which library runs the fp32 GEMMs: AIM_GEMM (auto, openblas,
# onednn) and the auto rule as `aim --version` reports them, a bad value
# refused in one line naming the variable, run.json, checkpoints and
# `aim bench --json` saying what ran, and the same short training run on
# both libraries ending at nearly the same loss (the same products summed in
# another order). Without oneDNN the oneDNN half is a SKIP with its reason.
. "${top_srcdir:-.}/tests/cli_lib.sh"
A="--data synthetic --limit 64 --test-limit 16 --preset micro --steps 20 --batch 8 --lr 3e-3 --threads 2 --val-every 0 --probe-every 0"
unset AIM_GEMM

run_aim --version
ok $(test $rc -eq 0 && grep -q '^fp32 GEMMs: \(openblas\|onednn\) (auto: ' "$T/out"; echo $?) \
    "aim --version says which library runs the fp32 GEMMs and why: $(grep 'fp32 GEMMs' "$T/out")"
AIM_GEMM=blas; export AIM_GEMM
expect_error "AIM_GEMM must be auto, openblas or onednn (got 'blas')" "a bad AIM_GEMM" train $A --out "$T/bad"
ok $(test ! -e "$T/bad/run.json"; echo $?) "... and nothing was written"
AIM_GEMM=openblas
run_aim train $A --out "$T/ob"
ok $(test $rc -eq 0 && grep -q '"precision":"fp32","gemm":"openblas"' "$T/ob/run.json"; echo $?) \
    "AIM_GEMM=openblas: run.json says so"
AIM_GEMM=onednn
run_aim --version
if ! grep -q '^fp32 GEMMs: onednn (AIM_GEMM)' "$T/out"; then
    ok $(grep -q '^fp32 GEMMs: .*AIM_GEMM=onednn: this aim was built without oneDNN' "$T/out"; echo $?) \
        "AIM_GEMM=onednn without oneDNN: aim --version says why"
    echo "ok $((n + 1)) # SKIP oneDNN's fp32 GEMMs: $(grep 'fp32 GEMMs' "$T/out")"
    n=$((n + 1))
    finish
    exit $?
fi
run_aim train $A --out "$T/od" --ckpt-every 20
ok $(test $rc -eq 0 && grep -q '"precision":"fp32","gemm":"onednn"' "$T/od/run.json"; echo $?) \
    "AIM_GEMM=onednn: run.json says so"
ok $(grep -a -q '"precision":"fp32","gemm":"onednn"' "$T/od/ckpt-20.safetensors"; echo $?) "... and so does the checkpoint's metadata"
a=$(grep '"kind":"train"' "$T/ob/metrics.jsonl" | tail -n 1 | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
b=$(grep '"kind":"train"' "$T/od/metrics.jsonl" | tail -n 1 | sed 's/.*"loss":\([0-9.e+-]*\).*/\1/')
ok $(awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-3 * a) }'; echo $?) \
    "20 fp32 steps: the last loss on oneDNN $b within 0.1% of OpenBLAS's $a"
run_aim bench --preset micro --batch 4 --steps 2 --gemm-seconds 0.05 --threads 2 --precision fp32 --json
ok $(test $rc -eq 0 && grep -q '"fp32_gemm":"onednn"' "$T/out"; echo $?) "aim bench --json: fp32_gemm onednn"
run_aim bench --preset micro --batch 4 --steps 2 --gemm-seconds 0.05 --threads 2 --precision fp32
ok $(test $rc -eq 0 && grep -q "^fp32 GEMMs: oneDNN's fp32 matmul (AIM_GEMM;" "$T/out"; echo $?) \
    "aim bench names the fp32 GEMM library in its header"
# the rule: where oneDNN has no AVX-512 kernels, OpenBLAS
unset AIM_GEMM
DNNL_MAX_CPU_ISA=AVX2; export DNNL_MAX_CPU_ISA
run_aim --version
unset DNNL_MAX_CPU_ISA
ok $(grep -q '^fp32 GEMMs: openblas (auto: oneDNN has no AVX-512 kernels here)' "$T/out"; echo $?) \
    "auto: oneDNN held to AVX2 leaves the fp32 GEMMs on OpenBLAS"
finish
