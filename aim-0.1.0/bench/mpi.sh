#!/bin/sh
# mpi.sh - threads against ranks: `aim train` as 1 process x 1 thread,
# 1 process x 2 threads and `mpirun -np 2` x 1 thread, on the same data,
# model, global batch and steps, in alternating rounds (the order rotated
# every round) so the other load of a shared machine hits each configuration
# alike. Prints a line per run and a markdown table of medians: training
# img/s (global batch x steps / training seconds), the CPU cores the whole
# process tree got (CPU time / wall time, startup included), images per
# CPU-second (what a loaded machine does not move) and the final loss.
# Needs an aim built with --with-mpi. Not part of make check.
# Usage: bench/mpi.sh [AIM] [STEPS] [ROUNDS] [PRESET] [DATA]
# ($MPIRUN is the launcher, $MPIFLAGS more mpirun options, e.g.
# "--mca mpi_yield_when_idle 1")
AIM=${1:-./aim}
STEPS=${2:-30}
ROUNDS=${3:-3}
PRESET=${4:-tiny}
DATA=${5:-fashion-mnist}
MPIRUN=${MPIRUN:-mpirun}
FLAGS=${MPIFLAGS:-}
[ "$(id -u)" -eq 0 ] && FLAGS="$FLAGS --allow-run-as-root"
T=$(mktemp -d "${TMPDIR:-/tmp}/aimmpi.XXXXXX")
trap 'rm -rf "$T"' EXIT
"$AIM" --version | grep -q 'MPI: no' && { echo "mpi.sh: $AIM was built without MPI" >&2; exit 1; }

# run NAME THREADS [LAUNCHER...]: one training run, appended to $T/NAME as
# "img/s cores loss"
run() {
    name=$1
    threads=$2
    shift 2
    rm -rf "$T/run"
    /usr/bin/time -f '%e %U %S' -o "$T/time" "$@" "$AIM" train --threads "$threads" \
        --data "$DATA" --preset "$PRESET" --steps "$STEPS" --batch 64 --ckpt-minutes 0 \
        --out "$T/run" >"$T/out" 2>"$T/err" ||
        { cat "$T/err" >&2; exit 1; }
    # the last metrics line: seconds since the first step began, loss
    last=$(grep '"kind":"train"' "$T/run/metrics.jsonl" | tail -n 1 |
        sed 's/.*"loss":\([^,]*\),.*"time":\([^,}]*\).*/\2 \1/')
    line=$(echo "$last" | awk -v steps="$STEPS" -v t="$(cat "$T/time")" '
        { split(t, a, " "); printf "%.1f %.2f %.6g", steps * 64 / $1, (a[2] + a[3]) / a[1], $2 }')
    echo "$line" >>"$T/$name"
    echo "round $r: $name: $line (img/s, cores, final loss)"
}
for r in $(seq 1 "$ROUNDS"); do
    for k in 0 1 2; do
        case $(( (k + r) % 3 )) in
        0) run "1 rank x 1 thread" 1 ;;
        1) run "1 rank x 2 threads" 2 ;;
        2) run "2 ranks x 1 thread" 1 "$MPIRUN" $FLAGS -np 2 ;;
        esac
    done
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "| configuration | img/s | cores used | img per CPU-second | final loss |"
echo "|---|---|---|---|---|"
for name in "1 rank x 1 thread" "1 rank x 2 threads" "2 ranks x 1 thread"; do
    ips=$(cut -d' ' -f1 "$T/$name" | median)
    cores=$(cut -d' ' -f2 "$T/$name" | median)
    per=$(awk '{ printf "%.1f\n", $1 / $2 }' "$T/$name" | median)
    loss=$(cut -d' ' -f3 "$T/$name" | head -n 1)
    echo "| $name | $ips | $cores | $per | $loss |"
done
