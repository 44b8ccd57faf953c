#!/usr/bin/env bash
#
# Builds the libFuzzer targets of tools/fuzz/ and runs them.
#
#   tools/fuzz/run.sh [options] [SECONDS]
#
#   SECONDS            how long each target fuzzes (default 60)
#   --install          apt-get install clang and libclang-rt-14-dev when
#                      missing (nothing is ever installed without it)
#   --build-only       build the targets and their corpora, do not fuzz
#   --regress          run each target once over its seeds and the saved
#                      crash inputs (tools/fuzz/crashes/<target>-*): a quick
#                      check for CI, no fuzzing
#   --coverage         no fuzzing: line coverage of the module's files by
#                      the corpora as they are (llvm-cov report)
#   -j, --parallel N   targets fuzzing at the same time (default 1)
#   -t, --target NAME  only this target (repeatable): fuzz_sse_decode,
#                      fuzz_json, fuzz_request_roundtrip, fuzz_scan,
#                      fuzz_relabel
#   -o, --out DIR      where binaries, corpora, logs and artifacts go
#                      (default build/fuzz of the repository, git-ignored)
#
# Environment: NGX_BUILD (nginx build dir with objs/ngx_auto_config.h,
# default build/nginx of the repository, made by "make build"), FUZZ_CC
# (default clang), FUZZ_FLAGS (more libFuzzer flags), FUZZ_SBUF_NO_SANITIZE
# (sanitizer checks to leave out of the file with the buffer helpers, e.g.
# "pointer-overflow,nonnull-attribute" to fuzz past a known finding there
# until it is fixed; see README.md), FUZZ_SCAN_NO_SANITIZE (the same for
# the JSON scanner's file, e.g. "shift-base").
#
# Exit status: 0 when no target crashed, 1 when one did, 2 on a usage or
# build problem.  Crash inputs are also copied to tools/fuzz/crashes/.

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
MODULE=$TOP/ngx_llm_router_module

OUT=$TOP/build/fuzz
NGX_BUILD=${NGX_BUILD:-$TOP/build/nginx}
CC=${FUZZ_CC:-clang}
FUZZ_SECONDS=60
PARALLEL=1
INSTALL=0
BUILD_ONLY=0
REGRESS=0
COVERAGE=0
ALL_TARGETS="fuzz_sse_decode fuzz_json fuzz_request_roundtrip fuzz_scan"
ALL_TARGETS="$ALL_TARGETS fuzz_relabel"
TARGETS=""

usage() {
    sed -n '3,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --install)      INSTALL=1 ;;
    --build-only)   BUILD_ONLY=1 ;;
    --regress)      REGRESS=1 ;;
    --coverage)     COVERAGE=1 ;;
    -j|--parallel)  PARALLEL=${2:?}; shift ;;
    -t|--target)    TARGETS="$TARGETS ${2:?}"; shift ;;
    -o|--out)       OUT=${2:?}; shift ;;
    -h|--help)      usage ;;
    [0-9]*)         FUZZ_SECONDS=$1 ;;
    *)              echo "run.sh: unknown argument \"$1\"" >&2; usage ;;
    esac
    shift
done

TARGETS=${TARGETS:-$ALL_TARGETS}
TARGETS=$(echo $TARGETS)

for t in $TARGETS; do
    case " $ALL_TARGETS " in
    *" $t "*) ;;
    *) echo "run.sh: no target \"$t\" (targets: $ALL_TARGETS)" >&2; exit 2 ;;
    esac
done

die() {
    echo "run.sh: $*" >&2
    exit 2
}


# --- tools ---------------------------------------------------------------

if [ "$INSTALL" = 1 ]; then
    missing=""
    for p in clang libclang-rt-14-dev; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
            || missing="$missing $p"
    done

    if [ -n "$missing" ]; then
        SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
        echo "installing:$missing"
        $SUDO apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
                   --no-install-recommends $missing >/dev/null \
            || die "apt-get install$missing failed"
    fi
fi

mkdir -p "$OUT/obj" "$OUT/logs" "$OUT/crashes" || die "cannot create $OUT"

command -v "$CC" >/dev/null \
    || die "$CC is missing: run tools/fuzz/run.sh --install"

SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"

printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)'\
'{ return 0; }\n' > "$OUT/obj/probe.c"

"$CC" $SAN "$OUT/obj/probe.c" -o "$OUT/obj/probe" 2>"$OUT/obj/probe.log" \
    || die "$CC cannot build libFuzzer targets (see $OUT/obj/probe.log):" \
           "run tools/fuzz/run.sh --install (clang, libclang-rt-14-dev)"

echo '#include <jansson.h>' | "$CC" -E -x c - >/dev/null 2>&1 \
    || die "jansson.h is missing: run make deps (libjansson-dev)"

[ -f "$NGX_BUILD/objs/ngx_auto_config.h" ] \
    || die "no nginx build in $NGX_BUILD: run make build, or set NGX_BUILD"


# --- build ---------------------------------------------------------------

CFLAGS="-g -O1 -fno-omit-frame-pointer $SAN"
INCS="-I$NGX_BUILD/src/core -I$NGX_BUILD/src/event
      -I$NGX_BUILD/src/event/modules -I$NGX_BUILD/src/os/unix
      -I$NGX_BUILD/objs -I$NGX_BUILD/src/http -I$NGX_BUILD/src/http/modules
      -I$NGX_BUILD/src/http/v2 -I$MODULE -I$HERE"

SOURCES="ngx_http_llm_sse ngx_http_llm_anthropic ngx_http_llm_gemini
         ngx_http_llm_messages ngx_http_llm_dialect ngx_http_llm_sbuf
         ngx_http_llm_scan ngx_http_llm_relabel ngx_http_llm_usage"

build() {
    local objs="" s t extra

    rm -f "$OUT"/obj/*.o

    for s in $SOURCES; do
        extra=""

        case "$s" in
        ngx_http_llm_sbuf)
            [ -n "${FUZZ_SBUF_NO_SANITIZE:-}" ] \
                && extra="-fno-sanitize=$FUZZ_SBUF_NO_SANITIZE" ;;
        ngx_http_llm_scan)
            [ -n "${FUZZ_SCAN_NO_SANITIZE:-}" ] \
                && extra="-fno-sanitize=$FUZZ_SCAN_NO_SANITIZE" ;;
        esac

        "$CC" -c $CFLAGS $extra -Wall -Wextra -Wno-unused-parameter $INCS \
            "$MODULE/$s.c" -o "$OUT/obj/$s.o" || return 1
        objs="$objs $OUT/obj/$s.o"
    done

    for s in ngx_fuzz_shim fuzz_common; do
        "$CC" -c $CFLAGS -Wall -Wextra -Wno-unused-parameter -Werror \
            $INCS "$HERE/$s.c" -o "$OUT/obj/$s.o" || return 1
        objs="$objs $OUT/obj/$s.o"
    done

    for t in $TARGETS; do
        "$CC" -c $CFLAGS -Wall -Wextra -Wno-unused-parameter -Werror $INCS \
            "$HERE/$t.c" -o "$OUT/obj/$t.o" || return 1
        "$CC" $CFLAGS "$OUT/obj/$t.o" $objs -ljansson -o "$OUT/$t" \
            || return 1
    done
}

if [ "$COVERAGE" = 0 ]; then
    echo "building $TARGETS into $OUT"
    build || die "the build failed"
fi


# --- dictionary and seed corpora -----------------------------------------

# the names and values the translators look for, as JSON strings, and the
# pieces of an event stream

{
    cat "$MODULE"/ngx_http_llm_{anthropic,gemini,messages,relabel}.c \
        | grep -o '"[A-Za-z_$][A-Za-z0-9_:/.$-]*"' | sort -u \
        | grep -v '\.h"$' | sed 's/^"\(.*\)"$/"\\"\1\\""/'
    printf '%s\n' '"data: "' '"event: "' '"id: "' '"retry: "' '": "' \
        '"\x0a\x0a"' '"\x0d\x0a"' '"\x0d"' '"[DONE]"' '"data: [DONE]"' \
        '"{\""' '"\":\""' '"\":{"' '"\":["' '"\\u0000"' '"\\ud83d\\ude00"' \
        '"true"' '"false"' '"null"' '"-1"' '"1e308"' \
        '"9223372036854775807"' '"data:image/png;base64,"' '";base64,"' \
        '"2025-07-25T16:00:02.123456789Z"' '"9999-12-31T23:59:60+23:59"' \
        '"1970-01-01t00:00:00-00:30"'
} > "$OUT/llm.dict"

# fuzz_sse_decode: byte 0 = dialect (0 openai, 1 anthropic, 2 gemini) +
# 3 * way of cutting (0..5) [+ 54: a small event limit], byte 1 = parameter

sse_seed() {    # file dialect name
    local f=$1 d=$2 name=$3 p b

    for p in 0 1 2 3 4 5; do
        b=$((d + 3 * p))
        { printf "\\x$(printf %02x $b)\\x$(printf %02x $((p * 40 + 7)))"
          cat "$f"; } > "$OUT/seeds/fuzz_sse_decode/$name-p$p"
    done

    b=$((d + 3 * 3 + 54))
    { printf "\\x$(printf %02x $b)\\x08"; cat "$f"; } \
        > "$OUT/seeds/fuzz_sse_decode/$name-limit"
}

rm -rf "$OUT/seeds"
mkdir -p "$OUT/seeds/fuzz_sse_decode" "$OUT/seeds/fuzz_json" \
         "$OUT/seeds/fuzz_request_roundtrip" "$OUT/seeds/fuzz_scan" \
         "$OUT/seeds/fuzz_relabel"

dialect_index() {
    case "$1" in openai*) echo 0 ;; anthropic*) echo 1 ;; gemini*) echo 2 ;;
    *) echo "" ;; esac
}

for f in "$TOP"/t/fixtures/*/*.sse "$HERE"/corpus/sse/*.sse; do
    [ -f "$f" ] || continue

    case "$f" in
    "$TOP"/t/fixtures/*) dir=$(basename "$(dirname "$f")")
                         name=$dir-$(basename "$f" .sse) ;;
    *)                   dir=$(basename "$f"); name=$(basename "$f" .sse) ;;
    esac

    d=$(dialect_index "$dir")
    [ -n "$d" ] && sse_seed "$f" "$d" "$name"
done

for f in "$TOP"/t/fixtures/*/*.json "$HERE"/corpus/json/*.json; do
    [ -f "$f" ] || continue

    case "$f" in
    "$TOP"/t/fixtures/*) name=$(basename "$(dirname "$f")")-$(basename "$f") ;;
    *)                   name=$(basename "$f") ;;
    esac

    cp "$f" "$OUT/seeds/fuzz_json/$name"
    cp "$f" "$OUT/seeds/fuzz_request_roundtrip/$name"
    cp "$f" "$OUT/seeds/fuzz_scan/$name"
done

# fuzz_relabel: byte 0 = flags (fuzz_relabel.c: 1 the client asked for
# usage, 0x1e the ctx has an id, tokens, output and text already, 0x20
# legacy completions, 0x80 embeddings), then one event's data, which is
# also tried as a whole answer: tools/fuzz/corpus/relabel/*.json, the data
# lines of the OpenAI streams, the OpenAI answers

relabel_seed() {    # name file
    local flags

    for flags in 00 01 3f 9e; do
        { printf "\\x$flags"; cat "$2"; } \
            > "$OUT/seeds/fuzz_relabel/$1-$flags"
    done
}

for f in "$HERE"/corpus/relabel/*.json "$TOP"/t/fixtures/openai/*.json; do
    [ -f "$f" ] || continue
    relabel_seed "$(basename "$(dirname "$f")")-$(basename "$f" .json)" "$f"
done

for f in "$TOP"/t/fixtures/openai/*.sse "$HERE"/corpus/sse/openai-*.sse; do
    [ -f "$f" ] || continue

    case "$f" in
    "$TOP"/t/fixtures/*) name=openai-$(basename "$f" .sse) ;;
    *)                   name=$(basename "$f" .sse) ;;
    esac

    n=0

    while IFS= read -r line; do
        line=${line%$'\r'}

        case "$line" in
        "data: {"*)
            n=$((n + 1))
            printf '%s' "${line#data: }" > "$OUT/obj/relabel.data"
            relabel_seed "$name-$n" "$OUT/obj/relabel.data" ;;
        esac
    done < "$f"
done

# into the corpus under the name of their content (libFuzzer's naming), so
# that a seed that changed goes in again

for t in $TARGETS; do
    mkdir -p "$OUT/corpus/$t"

    for f in "$OUT/seeds/$t"/*; do
        [ -f "$f" ] || continue
        h=$(sha1sum "$f" | cut -d' ' -f1)
        [ -e "$OUT/corpus/$t/$h" ] || cp "$f" "$OUT/corpus/$t/$h"
    done
done

ASAN_DEFAULT=detect_leaks=1:detect_stack_use_after_return=1
ASAN_DEFAULT=$ASAN_DEFAULT:strict_string_checks=1:check_initialization_order=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-$ASAN_DEFAULT}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if [ "$BUILD_ONLY" = 1 ]; then
    echo "built: $(for t in $TARGETS; do printf '%s ' "$OUT/$t"; done)"
    echo "corpora: $OUT/corpus/<target>, dictionary: $OUT/llm.dict"
    exit 0
fi


# --- coverage of the corpora, without sanitizers -------------------------

if [ "$COVERAGE" = 1 ]; then
    CFLAGS="-g -O1 -fsanitize=fuzzer -fprofile-instr-generate"
    CFLAGS="$CFLAGS -fcoverage-mapping"
    SAN=""
    OUT_MAIN=$OUT
    OUT=$OUT_MAIN/coverage
    mkdir -p "$OUT/obj" "$OUT/logs" || die "cannot create $OUT"

    build || die "the coverage build failed"

    profiles=""
    files=""

    for t in $TARGETS; do
        rm -f "$OUT/$t".*.profraw
        LLVM_PROFILE_FILE="$OUT/$t.%p.profraw" \
            "$OUT/$t" -runs=0 "$OUT_MAIN/corpus/$t" > "$OUT/logs/$t.log" 2>&1
        llvm-profdata merge -sparse "$OUT/$t".*.profraw -o "$OUT/$t.profdata" \
            || die "llvm-profdata failed for $t"
        profiles="$profiles $OUT/$t.profdata"
    done

    llvm-profdata merge -sparse $profiles -o "$OUT/all.profdata"

    for s in $SOURCES; do
        files="$files $MODULE/$s.c"
    done

    for t in $TARGETS; do
        echo "== $t (corpus $OUT_MAIN/corpus/$t)"
        # shellcheck disable=SC2086
        llvm-cov report "$OUT/$t" -instr-profile="$OUT/$t.profdata" $files \
            | sed "s|$MODULE/||"
    done

    echo "line by line: llvm-cov show $OUT/<target>" \
         "-instr-profile=$OUT/<target>.profdata FILE.c"
    exit 0
fi


# --- regression: seeds and saved crashes, once each ------------------------

if [ "$REGRESS" = 1 ]; then
    passed=0
    failed=0

    for t in $TARGETS; do
        for f in "$OUT/seeds/$t"/* "$HERE/crashes/$t"-*; do
            [ -f "$f" ] || continue

            if "$OUT/$t" "$f" >"$OUT/logs/$t.regress.log" 2>&1; then
                passed=$((passed + 1))
            else
                failed=$((failed + 1))
                echo "FAILED: $t $f (log: $OUT/logs/$t.regress.log)"
                tail -30 "$OUT/logs/$t.regress.log"
            fi
        done
    done

    echo "fuzz: $passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit $?
fi


# --- fuzzing ---------------------------------------------------------------

fuzz_one() {    # target
    local t=$1 start end rc

    start=$(date +%s)

    # shellcheck disable=SC2086
    "$OUT/$t" -max_len=65536 -max_total_time="$FUZZ_SECONDS" \
        -print_final_stats=1 -timeout=30 -rss_limit_mb=2048 \
        -dict="$OUT/llm.dict" -artifact_prefix="$OUT/crashes/$t-" \
        ${FUZZ_FLAGS:-} "$OUT/corpus/$t" > "$OUT/logs/$t.log" 2>&1
    rc=$?

    end=$(date +%s)
    echo "$rc $((end - start))" > "$OUT/logs/$t.result"
}

echo "fuzzing $TARGETS for ${FUZZ_SECONDS}s each, $PARALLEL at a time;" \
     "logs in $OUT/logs"

running=0

for t in $TARGETS; do
    rm -f "$OUT/logs/$t.result"
    fuzz_one "$t" &
    running=$((running + 1))

    if [ "$running" -ge "$PARALLEL" ]; then
        wait -n
        running=$((running - 1))
    fi
done

wait

crashed=0

printf '\n%-24s %8s %12s %8s %8s %8s %8s  %s\n' target seconds execs \
       exec/s cov ft corpus result

for t in $TARGETS; do
    log=$OUT/logs/$t.log
    read -r rc secs < "$OUT/logs/$t.result"

    lstat() { grep "^stat::$1:" "$log" | tail -1 | awk '{print $2}'; }

    execs=$(lstat number_of_executed_units)
    eps=$(lstat average_exec_per_sec)
    last=$(grep -E '^#[0-9]+' "$log" | grep -E ' cov: ' | tail -1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p')
    files=$(find "$OUT/corpus/$t" -type f | wc -l)

    bad='^==[0-9]+==ERROR|deadly signal|FUZZ CHECK FAILED|^SUMMARY: '
    bad="$bad|Test unit written to"

    if [ "$rc" != 0 ] || grep -q -E "$bad" "$log"
    then
        result="CRASHED (rc $rc)"
        crashed=1
    else
        result=ok
    fi

    printf '%-24s %8s %12s %8s %8s %8s %8s  %s\n' "$t" "$secs" \
           "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" \
           "${corp:-?}" "$result"
    echo "    corpus: $files files in $OUT/corpus/$t; log: $log"

    # keep the inputs that crashed, for regression tests

    for a in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"); do
        [ -f "$a" ] || continue
        n=1
        while [ -e "$HERE/crashes/$t-$n" ]; do n=$((n + 1)); done
        mkdir -p "$HERE/crashes"
        cp "$a" "$HERE/crashes/$t-$n"
        echo "    input kept as tools/fuzz/crashes/$t-$n (from $a)"
        echo "    reproduce: $OUT/$t $HERE/crashes/$t-$n"
    done
done

exit $crashed
