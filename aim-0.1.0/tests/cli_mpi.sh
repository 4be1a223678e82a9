#!/bin/sh
# cli_mpi.sh - data-parallel training under mpirun (./configure --with-mpi):
# 2 ranks x 32 images give the loss sequence of 1 process x 64 (20 steps,
# 1e-5 relative), for `aim train` and for aim.pretrain in `aim run`; only
# rank 0 writes the run folder and prints; checkpoints written by N ranks
# resume on M; `aim probe` computes its features data-parallel; a failure on
# one rank ends the job with its message instead of a hang. SKIPped when aim
# was built without MPI or mpirun is missing.
. "${top_srcdir:-.}/tests/cli_lib.sh"

if "$AIM" --version | grep -q 'MPI: no'; then
    echo "1..0 # SKIP aim was built without MPI (./configure --with-mpi)"
    exit 0
fi
: "${MPIRUN:=mpirun}"
if ! command -v "$MPIRUN" >/dev/null 2>&1; then
    echo "1..0 # SKIP mpirun not found (apt-get install openmpi-bin)"
    exit 0
fi
# CI runs as root, which Open MPI refuses unless told; ranks may outnumber cores
MPIFLAGS="--oversubscribe"
[ "$(id -u)" -eq 0 ] && MPIFLAGS="$MPIFLAGS --allow-run-as-root"
# mpirun NP ARGS...: aim on NP ranks, stdout in $T/out, stderr in $T/err,
# status in $rc; never waits more than 120 s (a hang is a failure)
mpi() {
    np=$1; shift
    timeout 120 "$MPIRUN" $MPIFLAGS -np "$np" "$AIM" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}
# the loss column of a run's train lines, one per line
losses() { grep '"kind":"train"' "$1/metrics.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/'; }
# same_losses A B: as many lines, each within 1e-5 relative; prints the largest
same_losses() {
    paste "$1" "$2" | awk '{ d = $1 - $2; if (d < 0) d = -d; a = $1 < 0 ? -$1 : $1;
        r = a > 0 ? d / a : d; if (r > m) m = r; if (r > 1e-5 || NF != 2) bad++ }
        END { printf "%.2g", m; exit (NR == 0 || bad > 0) }'
}

ARGS="--data synthetic --limit 300 --preset micro --steps 20 --batch 64 --lr 3e-3 --threads 1 --ckpt-minutes 0 --ckpt-every 10 --keep 0"

# ---- aim train: 1 process x 64 against 2 ranks x 32
run_aim train $ARGS --out "$T/one"
ok $rc "one process, batch 64, 20 steps"
mpi 2 train $ARGS --out "$T/two"
ok $rc "mpirun -np 2 aim train (status $rc): $(grep -v "^step" "$T/err" | head -n 1 | head -c 300)"
losses "$T/one" >"$T/one.txt"
losses "$T/two" >"$T/two.txt"
lines=$(wc -l <"$T/two.txt")
worst=$(same_losses "$T/one.txt" "$T/two.txt")
ok $? "2 ranks x 32 give the loss sequence of 1 x 64 ($lines steps, largest difference $worst relative)"
ok $(grep -q '2 ranks x 1 threads' "$T/err"; echo $?) "the header says 2 ranks x 1 threads"
ok $(test "$(grep -c '^trained 20 steps' "$T/out")" -eq 1 &&
    test "$(grep -c '^aim train:' "$T/err")" -eq 1; echo $?) "only rank 0 prints (one summary, one header)"
ok $(test "$(grep -c '"kind":"train"' "$T/two/metrics.jsonl")" -eq 20 &&
    test -f "$T/two/model.safetensors" && test -f "$T/two/ckpt-10.safetensors" &&
    test -z "$(ls "$T/two" | grep '\.tmp\.')"; echo $?) \
    "rank 0 alone writes the run folder: 20 metrics lines, checkpoints, weights"
ok $(! grep -q 'differ' "$T/err"; echo $?) "the ranks' weights stay bit-identical"

# ---- checkpoints are global: 2 ranks -> 2 ranks (exact), -> 1 process, 1 process -> 3 ranks
cp -r "$T/two" "$T/two_to_two"
rm -f "$T/two_to_two/ckpt-20.safetensors" "$T/two_to_two/model.safetensors"
mpi 2 train --resume "$T/two_to_two" --threads 1
ok $(test $rc -eq 0 && cmp -s "$T/two/model.safetensors" "$T/two_to_two/model.safetensors"; echo $?) \
    "a 2-rank run resumed on 2 ranks ends with bit-identical weights (status $rc)"
losses "$T/two_to_two" >"$T/a.txt"
ok $(cmp -s "$T/two.txt" "$T/a.txt"; echo $?) "... and the identical loss sequence"
cp -r "$T/two" "$T/two_to_one"
rm -f "$T/two_to_one/ckpt-20.safetensors" "$T/two_to_one/model.safetensors"
run_aim train --resume "$T/two_to_one/ckpt-10.safetensors" --threads 1
ok $rc "a 2-rank checkpoint resumes in one process (status $rc)"
losses "$T/two_to_one" >"$T/a.txt"
worst=$(same_losses "$T/one.txt" "$T/a.txt")
ok $? "... and continues the same loss sequence (largest difference $worst)"
cp -r "$T/one" "$T/one_to_three"
rm -f "$T/one_to_three/ckpt-20.safetensors" "$T/one_to_three/model.safetensors"
mpi 3 train --resume "$T/one_to_three" --threads 1
ok $(test $rc -eq 0 && grep -q 'resuming .*ckpt-10' "$T/err"; echo $?) \
    "a one-process checkpoint resumes on 3 ranks, batch 64 = 21 + 21 + 22 (status $rc)"
losses "$T/one_to_three" >"$T/b.txt"
worst=$(same_losses "$T/one.txt" "$T/b.txt")
ok $? "... with the same loss sequence (largest difference $worst)"

# ---- aim probe: features data-parallel, the same probes (their test top-1
# within one image of 101: the features of an image may round differently
# in another batch)
PROBE="$T/one/model.safetensors --data synthetic --train-limit 301 --test-limit 101 --sweep --epochs 3 --threads 1 --quiet"
run_aim probe $PROBE
grep attentive "$T/out" >"$T/p1.txt"
mpi 2 probe $PROBE --save "$T/probed.safetensors"
grep attentive "$T/out" >"$T/p2.txt"
ok $(test $rc -eq 0 && test "$(wc -l <"$T/p2.txt")" -eq 2 && test -f "$T/probed.safetensors" &&
    paste "$T/p1.txt" "$T/p2.txt" | tr -d % | awk '{ d = $3 - $8; if (d < 0) d = -d;
        if (d > 1 || $1 != $6) bad++ } END { exit NR != 2 || bad > 0 }'; echo $?) \
    "mpirun -np 2 aim probe --sweep: the same blocks and test top-1 as one process, one report, rank 0 saves"

# ---- aim.pretrain in a script: the same, and one rank prints
cat >"$T/job.lua" <<'EOF'
local aim = require "aim"
local out, fail = ...
local ds = aim.data.synthetic{n = 300, size = 8, channels = 3}
local m = aim.model "micro"
local r = aim.pretrain(m, ds, {steps = 20, batch = 64, lr = 3e-3, out = out})
print(string.format("rank %d of %d: %d steps, loss %.9g", aim.dist.rank, aim.dist.size, r.steps,
                    r.loss))
if fail == "fail" and aim.dist.rank == aim.dist.size - 1 then
    error("failing on purpose on the last rank")
end
EOF
run_aim run --threads 1 -q "$T/job.lua" "$T/lua1"
mpi 2 run --threads 1 -q "$T/job.lua" "$T/lua2"
losses "$T/lua1" >"$T/a.txt"
losses "$T/lua2" >"$T/b.txt"
worst=$(same_losses "$T/a.txt" "$T/b.txt")
ok $? "mpirun -np 2 aim run: aim.pretrain follows the one-process losses (largest difference $worst)"
ok $(test "$(cat "$T/out")" = "$(grep '^rank 0 of 2: 20 steps' "$T/out")" &&
    test "$(wc -l <"$T/out")" -eq 1; echo $?) "only rank 0's print reaches stdout: $(cat "$T/out")"

# ---- failures end every rank, with the message
mpi 2 run --threads 1 -q "$T/job.lua" "$T/lua3" fail
ok $(test $rc -ne 0 && test $rc -ne 124 &&
    grep -q 'aim: rank 1: .*failing on purpose on the last rank' "$T/err"; echo $?) \
    "an error on rank 1 only ends the job (status $rc, not a hang) with rank 1's message"
# a failure that the script catches: every rank leaves aim.pretrain with
# nil, message and they go on together
cat >"$T/catch.lua" <<'EOF'
local aim = require "aim"
local bad, good = ...
local ds = aim.data.synthetic{n = 100, size = 8, channels = 3}
local m = aim.model "micro"
local r, msg = aim.pretrain(m, ds, {steps = 5, batch = 16, out = bad})
print(string.format("rank %d: %s", aim.dist.rank, r and "trained" or msg))
r = aim.pretrain(m, ds, {steps = 5, batch = 16, out = good})
print(string.format("rank %d: then %d steps", aim.dist.rank, r.steps))
EOF
mkdir -p "$T/bad/metrics.jsonl"
timeout 120 "$MPIRUN" $MPIFLAGS -np 2 -x AIM_ALL_RANKS=1 "$AIM" run -q --threads 1 "$T/catch.lua" \
    "$T/bad" "$T/good" >"$T/out" 2>"$T/err"
rc=$?
ok $(test $rc -eq 0 && grep -q '^rank 0: .*metrics.jsonl: cannot open' "$T/out" &&
    grep -q '^rank 1: pretrain: another rank failed' "$T/out" &&
    test "$(grep -c 'then 5 steps' "$T/out")" -eq 2; echo $?) \
    "rank 0 cannot open its metrics log: every rank returns nil, message and the script goes on (status $rc)"
mkdir -p "$T/full"
ln -s /dev/full "$T/full/metrics.jsonl"
mpi 2 train $ARGS --steps 2000 --out "$T/full"
ok $(test $rc -ne 0 && test $rc -ne 124 && grep -q 'aim: rank 0: .*metrics.jsonl: write failed' "$T/err"; echo $?) \
    "a failed metrics write on rank 0 stops every rank (status $rc) with its message"
mpi 3 train $ARGS --batch 2 --out "$T/small"
ok $(test $rc -ne 0 && test $rc -ne 124 && grep -q 'a batch of 2 cannot be shared by 3 ranks' "$T/err"; echo $?) \
    "a batch smaller than the ranks is refused (status $rc)"
mpi 2 repl </dev/null
ok $(test $rc -ne 0 && test $rc -ne 124 && grep -q 'repl: the console runs in one process' "$T/err"; echo $?) \
    "aim repl under mpirun says why it cannot run (status $rc)"

finish
