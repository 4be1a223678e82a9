# tui_lib.sh - the tmux harness the terminal tests share (tests/tui.sh,
# tui_inspect.sh, tui_compare.sh), sourced after cli_lib.sh:
#   tui_setup PREFIX NTMUX   a private tmux server (its own socket, no config
#                            file); without tmux, NTMUX checks are reported
#                            as SKIP and the script ends here
#   tm ARGS                  tmux on that server; sessions are PREFIX0, 1, ...
#   check STATUS TEXT        ok, and on failure the screen as TAP comments
#   screen / colours         the screen's text (with -e: its colour escapes)
#   wait_for TEXT [SECONDS]  until TEXT is on the screen (default 30 s)
#   wait_gone TEXT           until it has left (10 s)
#   keys K... / type_text S / type_line S   keys; literal text (+ Enter)
#   step_now                 the status line's step counter
#   check_steps moving SECONDS LABEL  the counter moves (waited for, 60 s)
#   wait_steps_past A [SECS] until the step counter is past A (60 s)
#   wait_until 'COND' [SECS] until the shell condition holds (30 s)
#   wait_exit                until the wrapper wrote $T/status (30 s)
#   tui_start W H ARGS       "$AIM" ARGS in a fresh W x H session (private XDG
#                            folders under $T, no Fashion-MNIST, LANG=C.UTF-8,
#                            TERM=tmux-256color); its exit status goes to
#                            $T/status

tui_setup() {
    if ! command -v tmux >/dev/null 2>&1; then
        i=0
        while [ $i -lt "$2" ]; do
            n=$((n + 1)); i=$((i + 1))
            echo "ok $n # SKIP tmux is not installed"
        done
        finish
        exit $?
    fi
    prefix=$1
    sock="aim$1$$"
    sess="${1}0"
    trap 'tm kill-server 2>/dev/null; rm -rf "$T"' EXIT
}
tm() { tmux -L "$sock" -f /dev/null "$@"; }
check() {
    ok "$1" "$2"
    [ "$1" -eq 0 ] || screen 2>/dev/null | sed 's/^/# /'
}
screen() { tm capture-pane -p -t "$sess"; }
colours() { tm capture-pane -p -e -t "$sess"; }
wait_for() {
    i=0
    lim=$(( ${2:-30} * 10 ))
    while [ $i -lt $lim ]; do
        screen 2>/dev/null | grep -qF -- "$1" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
wait_gone() {
    i=0
    while [ $i -lt 100 ]; do
        screen 2>/dev/null | grep -qF -- "$1" || return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
keys() { tm send-keys -t "$sess" "$@"; sleep 0.3; }
type_text() { tm send-keys -t "$sess" -l "$1"; }
type_line() { type_text "$1"; tm send-keys -t "$sess" Enter; }
step_now() { screen | sed -n '1s/.*step \([0-9][0-9]*\)\/.*/\1/p'; }
# wait_steps_past A [SECS]: until the status line's step is past A (60 s)
wait_steps_past() {
    i=0
    lim=$(( ${2:-60} * 10 ))
    while [ $i -lt $lim ]; do
        s=$(step_now)
        [ -n "$s" ] && [ -n "$1" ] && [ "$s" -gt "$1" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
# wait_until 'SHELL CONDITION' [SECS]: poll it (30 s)
wait_until() {
    i=0
    lim=$(( ${2:-30} * 10 ))
    while [ $i -lt $lim ]; do
        eval "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
# check_steps moving SECONDS LABEL: the counter moves, waited for (60 s; the
# old SECONDS argument is kept for the callers and not used). A counter that
# stays is checked by the callers against an event (see tui.sh), never by
# waiting a while.
check_steps() {
    a=$(step_now)
    wait_steps_past "$a"
    b=$(step_now)
    check $(test -n "$a" && test -n "$b" && test "$b" -gt "$a"; echo $?) "$3 ($a -> $b)"
}
wait_exit() {
    i=0
    while [ ! -f "$T/status" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    test -f "$T/status"
}
tui_start() {
    rm -f "$T/status"
    mkdir -p "$T/state" "$T/config" "$T/work"
    cat >"$T/run.sh" <<EOF
cd "$T/work"
ulimit -c 0
env XDG_STATE_HOME="$T/state" XDG_CONFIG_HOME="$T/config" AIM_FASHION_MNIST="$T/none" \
    LANG=C.UTF-8 LC_ALL= TERM=tmux-256color "$AIM" $3
echo "exit=\$?" >"$T/status"
echo TUI-EXITED
sleep 600
EOF
    old=$sess
    sess="$prefix$(( ${sess#$prefix} + 1 ))"
    tm new-session -d -s "$sess" -x "$1" -y "$2" "sh '$T/run.sh'"
    tm kill-session -t "$old" 2>/dev/null
}
