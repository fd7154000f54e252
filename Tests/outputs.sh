#!/usr/bin/env bash
# Every output of wstap (scripts/outputs.sh: json, ndjson, text, summary, -v -x -n --pretty,
# --messages, har, html, stats, follow and a filtered timeline, with 1 and 2 jobs) on every
# bundled, damaged and conformance capture, compared with the digests in Tests/output-digests.txt:
# a change that alters any output byte fails here, and says which outputs. A change meant to alter
# outputs records them again: RECORD=1 bash Tests/outputs.sh BINARY.
set -euo pipefail
binary=$1
here=$(cd "$(dirname "$0")/.." && pwd)
digests=$here/Tests/output-digests.txt
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
bash "$here/scripts/outputs.sh" "$binary" "$work" >/dev/null 2>&1
(cd "$work" && sha256sum * | sort -k2) >"$work.digests"
if [ "${RECORD:-}" = 1 ]; then
    cp "$work.digests" "$digests"; echo "outputs: $(wc -l <"$digests") digests recorded"; rm -f "$work.digests"; exit 0
fi
if [ ! -d "$here/../shared/conformance/captures" ]; then
    # Without the conformance captures, only the bundled ones are compared.
    grep -v ' conformance-' "$digests" >"$work.expected" || true
    grep -v ' conformance-' "$work.digests" >"$work.actual" || true
else
    cp "$digests" "$work.expected"; cp "$work.digests" "$work.actual"
fi
if diff -q "$work.expected" "$work.actual" >/dev/null; then
    echo "outputs: $(wc -l <"$work.actual") passed, 0 failed"
    rm -f "$work.digests" "$work.expected" "$work.actual"
else
    changed=$(diff "$work.expected" "$work.actual" | grep '^[<>]' | awk '{print $3}' | sort -u || true)
    echo "outputs that differ from Tests/output-digests.txt:"; echo "$changed" | head -20
    echo "outputs: $(( $(wc -l <"$work.actual") - $(echo "$changed" | wc -l) )) passed, $(echo "$changed" | wc -l) failed"
    rm -f "$work.digests" "$work.expected" "$work.actual"; exit 1
fi
