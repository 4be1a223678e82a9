#!/bin/sh
# cli_man.sh - the manual page names every command of `aim --help` and
# renders without a warning; the bash completion completes commands, options
# and their values from the binary; --version says which aim this is.
. "${top_srcdir:-.}/tests/cli_lib.sh"
man1="${top_srcdir:-.}/man/aim.1"
comp="${top_srcdir:-.}/completion/aim.bash"

cmds=$("$AIM" --help | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')
ok $(test "$(echo "$cmds" | wc -l)" -ge 10; echo $?) "aim --help lists the commands ($(echo $cmds))"
missing=
for c in $cmds; do
    grep -q "^\.BR* $(echo "$c" | sed 's/-/\\\\-/g')\( \|$\)" "$man1" || missing="$missing $c"
done
ok $(test -z "$missing"; echo $?) "aim.1 describes every command${missing:+ (missing:$missing)}"

if command -v groff >/dev/null 2>&1; then
    LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$man1" >"$T/groff" 2>&1
    ok $(test $? -eq 0 && ! test -s "$T/groff"; echo $?) "groff -man -ww renders aim.1 without a warning: $(head -c 200 "$T/groff")"
else
    n=$((n + 1)); echo "ok $n # SKIP groff is not installed"
fi

run_aim --version
ok $(test $rc -eq 0 && head -n 1 "$T/out" | grep -q '^aim [0-9].*autoregressive image models.*not AimStack'; echo $?) \
    "aim --version: unmistakably this aim, not AimStack's"

if command -v bash >/dev/null 2>&1; then
    # complete WORDS...: COMPREPLY for the last word, space-separated
    cat >"$T/comp.sh" <<EOS
. "$comp"
c() { COMP_WORDS=("\$@"); COMP_CWORD=\$((\$# - 1)); COMPREPLY=(); _aim_complete; echo "\${COMPREPLY[*]}"; }
cd "$T"
: >model.safetensors
c "$AIM" tr
c "$AIM" train --l
c "$AIM" probe --kind ""
c "$AIM" train --preset t
c "$AIM" info mod
c "$AIM" runs --w
complete -p aim
EOS
    bash "$T/comp.sh" >"$T/comp" 2>&1
    line() { sed -n "${1}p" "$T/comp"; }
    ok $(test "$(line 1)" = "train"; echo $?) "completion: aim tr -> train ($(line 1))"
    ok $(echo " $(line 2) " | grep -q ' --lr ' && echo " $(line 2) " | grep -q ' --limit ' &&
         ! echo "$(line 2)" | grep -q -- '--data'; echo $?) "completion: aim train --l -> --lr, --limit, ... ($(line 2))"
    ok $(test "$(line 3)" = "attentive linear"; echo $?) "completion: probe --kind -> its choices ($(line 3))"
    ok $(test "$(line 4)" = "tiny"; echo $?) "completion: --preset t -> tiny ($(line 4))"
    ok $(test "$(line 5)" = "model.safetensors"; echo $?) "completion: a file argument ($(line 5))"
    ok $(test "$(line 6)" = "--where"; echo $?) "completion: runs --w -> --where ($(line 6))"
    ok $(line 7 | grep -q 'complete -F _aim_complete aim$'; echo $?) "completion: registered for aim"
else
    n=$((n + 1)); echo "ok $n # SKIP bash is not installed"
fi
finish
