# bash completion for aim(1): commands, their options, option values and
# file arguments. The commands and options are asked of the binary itself
# (`aim --help`, `aim CMD --help`) when completing, so this file never
# drifts from the program. Needs only bash (not the bash-completion package).
# Installed under the program's name (--program-prefix and friends included);
# it completes the command it is installed for.

# the options of `aim CMD` (its --help lines "  --name ..."); with "value":
# those that take a value, as "--name ARG"
_aim_options()
{
    "$1" "$2" --help 2>/dev/null |
        sed -n 's/^  \(--[a-z0-9][a-z0-9-]*\)\( [^ ][^ ]*\)\{0,1\} .*/\1\2/p'
}

_aim_complete()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local aim=${COMP_WORDS[0]} cmd words line i
    COMPREPLY=()
    # the binary being completed: as typed (~ expanded), else by PATH
    aim=${aim/#\~/$HOME}
    if [ "$COMP_CWORD" -eq 1 ]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W '--help --version' -- "$cur"))
        else
            words=$("$aim" --help 2>/dev/null |
                sed -n '/^commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p')
            COMPREPLY=($(compgen -W "$words" -- "$cur"))
        fi
        return 0
    fi
    cmd=${COMP_WORDS[1]}
    # after "--" (a script's arguments): files
    for ((i = 2; i < COMP_CWORD; i++)); do
        if [ "${COMP_WORDS[i]}" = "--" ]; then
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0
        fi
    done
    # the value of an option that takes one: its choices (A|B|C), nothing
    # for a number, files for the rest (paths, data, folders)
    if [[ $prev == --* ]]; then
        line=$(_aim_options "$aim" "$cmd" | while read -r o a; do
            [ "$o" = "$prev" ] && [ -n "$a" ] && echo "$a"
        done)
        case $line in
        "") ;;
        *'|'*)
            COMPREPLY=($(compgen -W "${line//|/ }" -- "$cur"))
            return 0 ;;
        NAME)
            [ "$prev" = --preset ] && COMPREPLY=($(compgen -W 'micro tiny small' -- "$cur"))
            return 0 ;;
        MODE)
            [ "$prev" = --colors ] && COMPREPLY=($(compgen -W 'auto direct 256 16 mono' -- "$cur"))
            return 0 ;;
        N|T|E|B|K|S|H|C|P|D|L|NH|DH|LH|LR|WD|R|A|LIST|*KEY*|*[0-9]*)
            return 0 ;;
        *)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0 ;;
        esac
    fi
    if [[ $cur == -* ]]; then
        words=$(_aim_options "$aim" "$cmd" | while read -r o a; do echo "$o"; done)
        COMPREPLY=($(compgen -W "$words --help" -- "$cur"))
        return 0
    fi
    case $cmd in
    options)
        COMPREPLY=($(compgen -W 'pretrain probe lora finetune' -- "$cur")) ;;
    repl|bench) ;;
    *)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
    return 0
}

# the name this file is installed under is the command it completes
# (aim, or the name --program-prefix gave it); sourced as aim.bash: aim
_aim_name=${BASH_SOURCE[0]##*/}
_aim_name=${_aim_name%.bash}
complete -F _aim_complete "${_aim_name:-aim}"
unset _aim_name
