#!/bin/sh
# fuzz_regress.sh - replay every saved fuzz crash input (tests/fuzz/regress/)
# through `aim info` (metrics logs through `aim export-csv`): status 0 or 1,
# never a signal or a sanitizer abort.
. "${top_srcdir:-.}/tests/cli_lib.sh"
found=0
for f in "${top_srcdir:-.}"/tests/fuzz/regress/*/*; do
    test -f "$f" || continue
    found=1
    case "$f" in
    */metrics/*) # a metrics log: through the reader `aim export-csv` uses
        rm -rf "$T/run" && mkdir -p "$T/run" && cp "$f" "$T/run/metrics.jsonl"
        run_aim export-csv "$T/run" "$T/run.csv" ;;
    *) run_aim info "$f" ;;
    esac
    ok $(test $rc -le 1 && ! grep -q 'Sanitizer' "$T/err"; echo $?) "replay $(basename "$(dirname "$f")")/$(basename "$f") (status $rc)"
done
if [ $found -eq 0 ]; then
    n=$((n + 1)); echo "ok $n # SKIP no saved crash inputs yet"
fi
finish
