#!/bin/sh
# scaling.sh - aim's throughput and memory against batch, width, depth,
# tokens and threads, as markdown table rows (the scaling table in docs/performance.md).
# Each row is one `aim bench` run (sgemm peak, training, forward, peak RSS),
# so every MFU is relative to the peak measured in the same process.
# Not part of make check. Usage: bench/scaling.sh [AIM] [STEPS]
AIM=${1:-./aim}
STEPS=${2:-4}
row() {
    # $1 = label, rest = aim bench arguments
    label=$1
    shift
    out=$("$AIM" bench --steps "$STEPS" --gemm-seconds 0.3 "$@") || exit 1
    echo "$out" | awk -v label="$label" '
        /^params:/ { act = $(NF-1) }
        /^FLOPs per image/ { fl = $5 }
        /sgemm peak/ { for (i = 1; i <= NF; i++) if ($i ~ /^GFLOP\/s/) { peak = $(i-1); break } }
        $1 == "training" { tr = $2; trm = $4 }
        $1 == "forward" { fw = $2; fwm = $4 }
        /^peak RSS/ { rss = $3 }
        END { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label, fl, peak, tr, trm, fw, fwm, act, rss }'
}
echo "| configuration | fwd MFLOP/img | sgemm peak GFLOP/s | train img/s | train MFU | fwd img/s | fwd MFU | activations MB | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|"
for b in 16 32 64 128; do row "tiny, batch $b" --preset tiny --batch "$b"; done
for t in 1 2; do row "tiny, $t thread(s)" --preset tiny --threads "$t"; done
for d in 128 192 256 384; do
    row "tiny, width $d ($((d / 64)) heads)" --preset tiny --width "$d" --heads $((d / 64)) --head-width "$d"
done
for l in 3 6 12; do row "tiny, depth $l" --preset tiny --depth "$l"; done
row "tiny, 16 tokens (patch 7)" --preset tiny --patch 7
row "tiny, 196 tokens (patch 2)" --preset tiny --patch 2 --batch 16
row "small, batch 64" --preset small
row "small, 1 thread" --preset small --threads 1
