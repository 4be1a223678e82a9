#!/bin/sh
# cli_install.sh - `make install DESTDIR=... prefix=/usr` from the build tree:
# the installed aim runs a short experiment, says its version, finds its
# samples where they were installed; the man page and the bash completion
# landed; the binary carries no path of the build or source tree (debug
# information aside: it is checked with the debug sections stripped).
. "${top_srcdir:-.}/tests/cli_lib.sh"
: "${top_builddir:=.}"
if [ ! -f "$top_builddir/Makefile" ]; then
    echo "1..0 # SKIP no Makefile in $top_builddir"
    exit 0
fi
D="$T/dest"
# a make of its own: not the jobserver or the variables of the make check
# that runs this test
(unset MAKEFLAGS MFLAGS MAKELEVEL; cd "$top_builddir" && ${MAKE:-make} install DESTDIR="$D" prefix=/usr) \
    >"$T/install.log" 2>&1
ok $? "make install DESTDIR=... prefix=/usr: $(tail -n 3 "$T/install.log" | tr '\n' ' ' | head -c 300)"
bin="$D/usr/bin/aim"
ok $(test -x "$bin"; echo $?) "the binary is installed in bin/"
ok $(test -s "$D/usr/share/man/man1/aim.1"; echo $?) "the man page is installed in share/man/man1/"
compdir=$(sed -n 's/^bashcompletiondir = //p' "$top_builddir/Makefile")
case $compdir in
'${datadir}'*) compfile="$D/usr/share${compdir#\$\{datadir\}}/aim" ;;
/*) compfile="$D$compdir/aim" ;;
*) compfile= ;;
esac
ok $(test -n "$compfile" && test -s "$compfile"; echo $?) "the bash completion is installed ($compfile)"
ok $(test -s "$D/usr/share/aim/pretrain.lua"; echo $?) "the samples are installed in share/aim/"

# the installed binary, away from the build tree and its variables
unset AIM_DATADIR
"$bin" --version >"$T/out" 2>"$T/err"
ok $(test $? -eq 0 && head -n 1 "$T/out" | grep -q '^aim .*not AimStack' &&
     grep -q "^samples: $D/usr/bin/../share/aim/pretrain.lua\$" "$T/out"; echo $?) \
    "installed aim --version, samples found where installed: $(tr '\n' ' ' <"$T/out")"
(cd "$T" && "$bin" train --data synthetic --limit 64 --preset micro --steps 3 --batch 8 \
    --threads 1 --out "$T/run") >"$T/out" 2>"$T/err"
ok $(test $? -eq 0 && test -s "$T/run/metrics.jsonl" &&
     test "$(grep -c '"kind":"train"' "$T/run/metrics.jsonl")" -eq 3; echo $?) \
    "the installed aim trains 3 steps: $(tail -n 1 "$T/err" | head -c 200)"

src=$(cd "${top_srcdir:-.}" && pwd)
bld=$(cd "$top_builddir" && pwd)
if command -v strip >/dev/null 2>&1 && command -v strings >/dev/null 2>&1; then
    strip -g -o "$T/aim.nodebug" "$bin"
    # the configured prefix is compiled in (pkgdatadir) and may lie inside
    # the tree (distcheck's _inst): that one is not a build-tree path
    cprefix=$(sed -n 's/^prefix = //p' "$top_builddir/Makefile")
    hits=$(strings "$T/aim.nodebug" | grep -F -e "$src" -e "$bld" | grep -vF "$cprefix/" | head -n 3)
    ok $(test -z "$hits"; echo $?) "no build-tree path in the installed binary${hits:+: $hits}"
else
    n=$((n + 1)); echo "ok $n # SKIP strip/strings (binutils) not installed"
fi
finish
