#!/bin/sh
# cli_info.sh - `aim` command-line basics and `aim info` on good and hostile
# files: every bad file is a one-line "aim: ..." error naming it, exit 1.
. "${top_srcdir:-.}/tests/cli_lib.sh"

run_aim --help
ok $(test $rc -eq 0 && grep -q 'info' "$T/out"; echo $?) "aim --help lists the commands"
run_aim --version
ok $(test $rc -eq 0 && grep -q '^aim ' "$T/out" && grep -q '^OpenBLAS: .*, core [A-Za-z0-9]' "$T/out"; echo $?) \
    "aim --version (with the kernels OpenBLAS runs)"
run_aim info --help
ok $(test $rc -eq 0 && grep -q 'usage: aim info' "$T/out"; echo $?) "aim info --help"
expect_error "frobnicate" "unknown command" frobnicate
expect_error "give a PATH" "info without a path" info
expect_error "--bogus" "unknown option" train --bogus
expect_error "expects an integer" "a malformed number" train --steps 12x

# ---------------------------------------------------------------- hostile files
: >"$T/empty.npy"
expect_error "empty.npy" "empty .npy" info "$T/empty.npy"
printf 'hello world, not a dataset\n' >"$T/notes.txt"
expect_error "notes.txt" "a text file" info "$T/notes.txt"
expect_error "missing.bin" "a missing file" info "$T/missing.bin"
printf '\223NUMPY\001\000\020\000{"descr": \n' >"$T/trunc.npy"
expect_error "trunc.npy" "truncated .npy header" info "$T/trunc.npy"
npy_header '<f4' '(1000000, 1000000)' >"$T/huge.npy"
printf 'abcd' >>"$T/huge.npy"
expect_error "huge.npy" ".npy claiming 10^12 elements" info "$T/huge.npy"
# IDX header claiming 10^12 bytes in a tiny file
printf '\000\000\010\003\000\017\102\100\000\017\102\100\000\000\000\034xyz' >"$T/big-images-idx3-ubyte"
expect_error "big-images-idx3-ubyte" "IDX claiming 10^12 bytes" info "$T/big-images-idx3-ubyte"
printf '\037\213\010\000garbage-not-deflate' >"$T/bad-images-idx3-ubyte.gz"
expect_error "bad-images-idx3-ubyte.gz" "corrupt gzip" info "$T/bad-images-idx3-ubyte.gz"
# safetensors: header length beyond the file, invalid JSON, overlapping tensors
printf '\377\377\377\377\377\377\377\177{}' >"$T/len.safetensors"
expect_error "len.safetensors" "safetensors header length 2^63" info "$T/len.safetensors"
printf '\007\000\000\000\000\000\000\000{"a":1,' >"$T/json.safetensors"
expect_error "json.safetensors" "safetensors with invalid JSON" info "$T/json.safetensors"
h='{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}'
len=$(printf '%s' "$h" | wc -c)
printf "\\$(printf '%03o' "$len")\\000\\000\\000\\000\\000\\000\\000%s123456789012" "$h" >"$T/overlap.safetensors"
expect_error "overlap.safetensors" "overlapping safetensors offsets" info "$T/overlap.safetensors"
printf '\211PNG\r\n\032\n\000\000\000\015IHDRgarbage' >"$T/bad.png"
expect_error "bad.png" "a corrupt PNG" info "$T/bad.png"
printf 'xx' >"$T/short.bin"
expect_error "short.bin" "CIFAR batch of the wrong size" info "$T/short.bin"
mkdir -p "$T/nodata"
expect_error "nodata" "a folder without classes" info "$T/nodata"
mkdir -p "$T/pngs/cat" && printf 'not a png' >"$T/pngs/cat/a.png"
expect_error "a.png" "a PNG folder with a corrupt image names the image" info "$T/pngs"

# ---------------------------------------------------------------- good files
npy_header '<f4' '(2,)' >"$T/ok.npy"
printf '\000\000\200\077\000\000\000\100' >>"$T/ok.npy"
run_aim info "$T/ok.npy"
ok $(test $rc -eq 0 && grep -q 'F32' "$T/out" && grep -q 'max 2' "$T/out"; echo $?) "a valid .npy: dtype, shape, range"
h='{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
len=$(printf '%s' "$h" | wc -c)
printf "\\$(printf '%03o' "$len")\\000\\000\\000\\000\\000\\000\\000%s12345678" "$h" >"$T/ok.safetensors"
run_aim info "$T/ok.safetensors"
ok $(test $rc -eq 0 && grep -q 'format' "$T/out" && grep -q '\[2\]' "$T/out"; echo $?) "a valid .safetensors: tensors and metadata"

# terminal escapes in a file's text (metadata, tensor names) are shown
# escaped, in the listing and in error messages; a checkpoint without its
# config keys shows "?" (it passed NULL to printf)
st_file() { # st_file HEADER-JSON > FILE: a safetensors file with 8 bytes of data
    len=$(printf '%s' "$1" | wc -c)
    printf "\\$(printf '%03o' "$len")\\000\\000\\000\\000\\000\\000\\000%s12345678" "$1"
}
esc=$(printf '\033')
w='"dtype":"F32","shape":[2],"data_offsets":[0,8]'
st_file '{"__metadata__":{"note":"\u001b[2J\u001b]0;pwned\u0007"},"w\u001b[31m":{'"$w"'}}' \
    >"$T/esc.safetensors"
run_aim info "$T/esc.safetensors"
ok $(test $rc -eq 0 && ! grep -q "$esc" "$T/out" && grep -qF 'w\x1b[31m' "$T/out" &&
     grep -qF 'note           \x1b[2J\x1b]0;pwned\x07' "$T/out"; echo $?) \
    "metadata values and tensor names with control characters are shown escaped"
st_file '{"__metadata__":{"aim_checkpoint":"1","crc32":"\u001b]0;pwned\u0007"},"w":{'"$w"'}}' \
    >"$T/esc-ckpt.safetensors"
expect_error 'metadata says \x1b]0;pwned\x07' "an error message quoting metadata escapes it" \
    info "$T/esc-ckpt.safetensors"
ok $(! grep -q "$esc" "$T/err" && ! grep -q '(null)' "$T/out" &&
     grep -qF 'model      image ?, channels ?, patch ?' "$T/out"; echo $?) \
    "a checkpoint without config keys shows ? (not (null))"

FM=${AIM_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if [ -f "$FM/train-images-idx3-ubyte.gz" ]; then
    run_aim info "$FM/train-images-idx3-ubyte.gz"
    ok $(test $rc -eq 0 && grep -q '60000 x 1 x 28 x 28' "$T/out" && grep -q 'Ankle boot' "$T/out"; echo $?) "Fashion-MNIST train: 60000 images, class names"
    run_aim info "$FM"
    ok $(test $rc -eq 0 && grep -q 'test split' "$T/out" && grep -q '10000 x 1' "$T/out"; echo $?) "the Fashion-MNIST folder shows both splits"
else
    n=$((n + 1)); echo "ok $n # SKIP Fashion-MNIST not installed"
fi
# ------------------------------------- hostile sizes (issue 24, items 1 and 6)
# a few hundred bytes of metadata must not size an allocation: status 1, the
# file named, and far under 300 MB of RSS (when /usr/bin/time can tell)
st_meta() { # st_meta FILE METADATA-PAIRS: a safetensors file with no tensor
    h="{\"__metadata__\":{$2}}"
    len=$(printf '%s' "$h" | wc -c)
    printf "\\$(printf '%03o' "$len")\\000\\000\\000\\000\\000\\000\\000%s" "$h" >"$1"
}
cfg='"image":"32","channels":"3","patch":"4","heads":"8","head_width":"64","head_depth":"1"'
st_meta "$T/huge.safetensors" "$cfg,\"width\":\"16384\",\"depth\":\"512\""
st_meta "$T/mid.safetensors" "$cfg,\"width\":\"1024\",\"depth\":\"8\""
npy_header '<f4' '(1, 3, 32, 32)' >"$T/x.npy"
head -c 12288 /dev/zero >>"$T/x.npy"
for f in huge mid; do
    expect_error "$f.safetensors: tensor \"preprocessor.patchifier.proj.weight\" is missing" \
        "aim loss on metadata-only weights ($f)" \
        loss "$T/$f.safetensors" --images "$T/x.npy" --prefix 1
    if [ -x /usr/bin/time ] && /usr/bin/time -f %M true >/dev/null 2>&1; then
        /usr/bin/time -f %M -o "$T/rss" "$AIM" loss "$T/$f.safetensors" --images "$T/x.npy" \
            --prefix 1 >/dev/null 2>&1
        kb=$(tail -n 1 "$T/rss")
        ok $(test "$kb" -lt 300000; echo $?) "... within $kb KB of RSS"
    else
        n=$((n + 1)); echo "ok $n # SKIP no /usr/bin/time"
    fi
done
# a 1 GiB sparse .npy whose header does not account for its size: refused
# before its data is read
npy_header '<f4' '(3,)' >"$T/sparse.npy"
if truncate -s 1G "$T/sparse.npy" 2>/dev/null && [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M -o "$T/rss" "$AIM" info "$T/sparse.npy" >/dev/null 2>"$T/err"
    kb=$(tail -n 1 "$T/rss")
    ok $(grep -q 'sparse.npy: .* trailing bytes' "$T/err" && test "$kb" -lt 300000; echo $?) \
        "a sparse 1 GiB .npy with a 3-value header: $kb KB of RSS"
    rm -f "$T/sparse.npy"
else
    n=$((n + 1)); echo "ok $n # SKIP no sparse files or /usr/bin/time"
fi
finish
