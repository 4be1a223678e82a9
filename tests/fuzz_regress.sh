#!/bin/sh
# fuzz_regress.sh - replay every saved fuzz crash input (tests/fuzz/regress/)
# through `aim info`: status 0 or 1, never a signal or a sanitizer abort.
. "${top_srcdir:-.}/tests/cli_lib.sh"
found=0
for f in "${top_srcdir:-.}"/tests/fuzz/regress/*/*; do
    test -f "$f" || continue
    found=1
    run_aim info "$f"
    ok $(test $rc -le 1 && ! grep -q 'Sanitizer' "$T/err"; echo $?) "replay $(basename "$(dirname "$f")")/$(basename "$f") (status $rc)"
done
if [ $found -eq 0 ]; then
    n=$((n + 1)); echo "ok $n # SKIP no saved crash inputs yet"
fi
finish
