# cli_lib.sh - TAP helpers for the shell tests that drive the `aim` binary.
# Sourced by tests/cli_*.sh; $AIM is the binary (set by `make check`).
: "${AIM:=./aim}"
n=0
failed=0
T=$(mktemp -d "${TMPDIR:-/tmp}/aimcli.XXXXXX")
trap 'rm -rf "$T"' EXIT

ok() { # ok COND-STATUS DESCRIPTION
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}

# run_aim ARGS...: runs aim, keeps stdout in $T/out, stderr in $T/err, status in $rc
run_aim() {
    "$AIM" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}

# expect_error NEEDLE DESCRIPTION ARGS...: aim must fail cleanly: exit status 1
# (not a signal), exactly one stderr line "aim: ..." containing NEEDLE.
expect_error() {
    needle=$1; desc=$2; shift 2
    run_aim "$@"
    lines=$(wc -l <"$T/err")
    if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && head -c 5 "$T/err" | grep -q '^aim: ' &&
        grep -qF -- "$needle" "$T/err"; then
        ok 0 "$desc: $(cat "$T/err")"
    else
        ok 1 "$desc (status $rc, $lines stderr lines): $(head -c 300 "$T/err")"
    fi
}

# npy_header DESCR SHAPE > FILE: a version 1.0 .npy header (128 bytes)
npy_header() {
    d="{'descr': '$1', 'fortran_order': False, 'shape': $2, }"
    printf '\223NUMPY\001\000v\000%s' "$d"
    printf '%*s\n' $((117 - ${#d})) ''
}

finish() {
    echo "1..$n"
    [ "$failed" -eq 0 ]
}
