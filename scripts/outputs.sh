#!/usr/bin/env bash
# Writes every output of one wstap binary over every bundled, damaged and conformance capture, in
# every format, with 1 and 2 jobs, into a directory: run it for two builds and `diff -r` the two
# directories to show that a change left the outputs as they were (or which ones it changed).
#   scripts/outputs.sh BINARY OUTDIR [CAPTURE...]
set -uo pipefail
binary=$(realpath "$1"); mkdir -p "$2"; out=$(realpath "$2"); shift 2
# Paths relative to the repository, so that messages naming files read the same in any clone.
cd "$(dirname "$0")/.."
conformance=${CONFORMANCE:-../shared/conformance}
captures=("$@")
if [ ${#captures[@]} -eq 0 ]; then
    captures=(captures/*.pcap* captures/damaged/*.pcap* "$conformance"/captures/*.pcap* "$conformance"/tls/*.pcap* "$conformance"/round3/*.pcap*)
fi
for capture in "${captures[@]}"; do
    [ -f "$capture" ] || continue
    case $capture in
        captures/damaged/*) name=damaged-$(basename "$capture") ;;
        captures/*) name=bundled-$(basename "$capture") ;;
        *) name=conformance-$(basename "$(dirname "$capture")")-$(basename "$capture") ;;
    esac
    keys=("${capture%.*}.keys"); extra=()
    [ -f "${keys[0]}" ] && extra=(--keylog "${keys[0]}")
    for jobs in 1 2; do
        for format in json ndjson text summary; do
            "$binary" read "$capture" --format "$format" --jobs $jobs "${extra[@]}" >"$out/$name.$jobs.$format" 2>&1; echo "exit $?" >>"$out/$name.$jobs.$format"
        done
        "$binary" read "$capture" --jobs $jobs -v -x -n --pretty --max-payload 40 "${extra[@]}" >"$out/$name.$jobs.text-vx" 2>&1; echo "exit $?" >>"$out/$name.$jobs.text-vx"
        "$binary" read "$capture" --jobs $jobs --messages --format ndjson "${extra[@]}" >"$out/$name.$jobs.messages" 2>&1; echo "exit $?" >>"$out/$name.$jobs.messages"
    done
    for format in har html; do
        "$binary" read "$capture" --format $format "${extra[@]}" >"$out/$name.$format" 2>&1; echo "exit $?" >>"$out/$name.$format"
    done
    "$binary" stats "$capture" "${extra[@]}" >"$out/$name.stats" 2>&1; echo "exit $?" >>"$out/$name.stats"
    "$binary" stats "$capture" --format json "${extra[@]}" >"$out/$name.stats-json" 2>&1; echo "exit $?" >>"$out/$name.stats-json"
    "$binary" follow "$capture" --conn 1 "${extra[@]}" >"$out/$name.follow" 2>&1; echo "exit $?" >>"$out/$name.follow"
    "$binary" read "$capture" --type handshake,issues --dir s2c "${extra[@]}" >"$out/$name.filtered" 2>&1; echo "exit $?" >>"$out/$name.filtered"
done
