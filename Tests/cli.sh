#!/usr/bin/env bash
# Command-line behaviour: exit codes, one-line errors on bad input, streaming output.
# usage: Tests/cli.sh [WSTAP_BINARY]; ONLY=REGEX runs only the checks whose names match (and the
# commands they need), e.g. ONLY='gzip' bash Tests/cli.sh
set -uo pipefail
cd "$(dirname "$0")/.."
wstap=${1:-.build/release/wstap}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0

selected() { [ -z "${ONLY:-}" ] || [[ $1 =~ $ONLY ]]; }
check() {  # name expected-status command...
    local name=$1 want=$2; shift 2
    if ! selected "$name"; then "$@" >"$work/out" 2>"$work/err"; return 0; fi
    "$@" >"$work/out" 2>"$work/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then passed=$((passed + 1)); else
        failed=$((failed + 1)); echo "FAIL $name: exit $got, want $want; stderr: $(head -c 300 "$work/err")"; fi
}
expect() {  # name condition-command...
    selected "$1" || return 0
    if "${@:2}"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $1"; fi
}
one_line_error() { [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "^wstap: " "$work/err" && ! grep -qi "fatal\|backtrace" "$work/err"; }

head -c 4096 /dev/urandom >"$work/random.pcap"
printf 'hello, this is not a capture\n' >"$work/text.pcap"
: >"$work/empty.pcap"
head -c 1000 captures/text-echo.pcap >"$work/cut.pcap"

for input in random text empty; do
    check "$input file exits 2" 2 "$wstap" read "$work/$input.pcap"
    expect "$input file gives one line naming the file" one_line_error
    expect "$input file message names the file" grep -q "$input.pcap" "$work/err"
done
evil="$work/$(printf 'evil\033[31m\aname').pcap"
head -c 100 /dev/urandom >"$evil"
check "a file name with control characters exits 2" 2 "$wstap" read "$evil"
expect "the file name reaches the terminal escaped" sh -c "! grep -q \"\$(printf '\033')\" '$work/err' && grep -q 'evil\\\\x1b' '$work/err'"
gzip -c captures/text-echo.pcap >"$work/capture.pcap.gz"
check "a gzip-compressed capture is read directly" 0 "$wstap" read "$work/capture.pcap.gz" --format json
expect "...giving what the plain capture gives" sh -c "'$wstap' read captures/text-echo.pcap --format json | cmp -s - '$work/out'"
head -c 600 "$work/capture.pcap.gz" >"$work/cut.pcap.gz"
check "a gzip stream cut short is a damaged capture (exit 3)" 3 "$wstap" read "$work/cut.pcap.gz" --format summary
head -c $(( $(wc -c <"$work/capture.pcap.gz") - 4 )) "$work/capture.pcap.gz" >"$work/cut-trailer.pcap.gz"
check "a gzip stream cut inside its trailer is damaged too (exit 3)" 3 "$wstap" read "$work/cut-trailer.pcap.gz" --format summary
expect "...every packet before it decoded, the cut named" sh -c "grep -q 'messages 8' '$work/out' && grep -q 'gzip stream is cut short' '$work/err'"
python3 -c "import sys; d = bytearray(open(sys.argv[1], 'rb').read()); d[-6] ^= 0xFF; open(sys.argv[2], 'wb').write(d)" \
    "$work/capture.pcap.gz" "$work/bad-crc.pcap.gz"
check "a gzip stream whose check fails is damaged, not 'not a capture' (exit 3)" 3 "$wstap" read "$work/bad-crc.pcap.gz" --format summary
expect "...saying the check failed" grep -q "incorrect data check" "$work/err"
(head -c 1000 captures/text-echo.pcap | gzip -c; tail -c +1001 captures/text-echo.pcap | gzip -c) >"$work/members.pcap.gz"
check "a gzip file of several members reads as one capture" 0 "$wstap" read "$work/members.pcap.gz" --format json
expect "...the same as the plain capture" sh -c "'$wstap' read captures/text-echo.pcap --format json | cmp -s - '$work/out'"
gzip -c captures/damaged/multi-interface.pcapng >"$work/multi.pcapng.gz"
check "a gzip-compressed pcapng the native reader takes over" 0 "$wstap" read "$work/multi.pcapng.gz" --format summary
check "the decompressed stream reads" 0 sh -c "zcat '$work/capture.pcap.gz' | '$wstap' read - --format summary"
check "missing file exits 2" 2 "$wstap" read "$work/nope.pcap"
expect "missing file gives one line" one_line_error
mkdir "$work/no-captures" && printf 'notes\n' >"$work/no-captures/README"
check "a directory without a capture exits 2" 2 "$wstap" read "$work/no-captures"
expect "...saying so" grep -q "no capture file with a packet in it" "$work/err"
check "bad filter exits 2" 2 "$wstap" read captures/text-echo.pcap -f "tcp port"
expect "bad filter message quotes the expression" grep -q "tcp port" "$work/err"
check "unknown option exits 64" 64 "$wstap" read captures/text-echo.pcap --no-such-flag

check "truncated capture exits 3" 3 "$wstap" read "$work/cut.pcap" --format json
expect "truncated capture still prints JSON" python3 -c "import json,sys; d=json.load(open('$work/out')); sys.exit(0 if any(i['code']=='truncated-capture' for i in d['issues']) else 1)"
expect "truncated capture reports the offset" grep -q "offset" "$work/err"

check "json is valid" 0 "$wstap" read captures/fragmented.pcap --format json
expect "json parses" python3 -c "import json; json.load(open('$work/out'))"
check "ndjson is valid" 0 "$wstap" read captures/fragmented.pcap --format ndjson
expect "every ndjson line parses" python3 -c "
import json
lines = open('$work/out').read().splitlines()
events = [json.loads(l)['event'] for l in lines]
assert events[0] == 'capture_start' and events[-1] == 'summary' and 'frame' in events, events"
check "max-payload truncates" 0 "$wstap" read captures/binary-sizes.pcap --format json --max-payload 16
expect "max-payload marks truncated" grep -q '"truncated":true' "$work/out"
check "filter selects nothing" 0 "$wstap" read captures/text-echo.pcap -f "tcp port 1" --format summary
expect "filtered summary has no connections" grep -q "^connections 0" "$work/out"
check "stdin input" 0 sh -c "'$wstap' read - --format summary < captures/text-echo.pcap"
expect "stdin decodes frames" grep -q "^frames 10" "$work/out"
for format in text json ndjson summary; do
    check "$format into a full device exits 4" 4 sh -c "'$wstap' read captures/fragmented.pcap --format $format > /dev/full"
    expect "$format into a full device says so in one line" sh -c "[ \"\$(wc -l <'$work/err')\" -eq 1 ] && grep -q 'cannot write output: No space left on device' '$work/err'"
done
check "ndjson events never go back in time, on every bundled and damaged capture" 0 python3 -c "
import glob, json, subprocess
for path in sorted(glob.glob('captures/*.pcap*') + glob.glob('captures/damaged/*.pcap*')):
    out = subprocess.run(['$wstap', 'read', path, '--format', 'ndjson'], capture_output=True, text=True).stdout
    events = [json.loads(l) for l in out.splitlines()]
    untimed = [e for e in events if e.get('time') is None and e['event'] != 'summary' and not (e['event'] == 'issue' and e['connection'] is None)]
    assert not untimed, (path, 'event without a time', untimed[0])
    times = [e['time'] for e in events if e.get('time') is not None]
    assert times == sorted(times), (path, 'goes back in time')
    assert not any(e.get('code') == 'timeline-out-of-order' for e in events), (path, 'reorder window too short')
"
check "output into head ends cleanly" 0 bash -c "set -o pipefail; '$wstap' read captures/binary-sizes.pcap --format ndjson | head -c 100 >/dev/null"

# JSON past 32 MiB goes to a temporary file: with no usable $TMPDIR nor /tmp (a read-only /tmp in
# a mount namespace), it stays in memory and the document says so.
python3 bench/generate.py endless 60 --segment 65000 --out "$work/large.pcap"
# (The capture comes on standard input, opened before /tmp is covered.)
check "json without a usable temporary directory" 0 sh -c \
    "unshare -m sh -c 'mount -t tmpfs -o ro tmpfs /tmp && TMPDIR=/nonexistent \"\$0\" read - --format json' '$wstap' < '$work/large.pcap'"
expect "the document reports json-spool-unavailable" grep -q '"code":"json-spool-unavailable"' "$work/out"

check "interfaces lists lo" 0 "$wstap" interfaces
expect "interfaces names lo" grep -q "^[0-9]*\.lo " "$work/out"
check "sniff on a missing device exits 2" 2 "$wstap" sniff -i no-such-device0
expect "missing device says what to do" grep -q "wstap interfaces" "$work/err"
check "sniff with a bad filter exits 2" 2 "$wstap" sniff -i lo -f "tcp port"
check "sniff without an interface is a usage error" 64 "$wstap" sniff
check "-r names the file like tcpdump" 0 "$wstap" read -r captures/text-echo.pcap --format summary
check "a trailing BPF expression filters like -f" 0 "$wstap" read captures/text-echo.pcap tcp port 1 --format summary
expect "...and selects nothing here" grep -q "^connections 0" "$work/out"
check "-f and a trailing expression together are a usage error" 64 "$wstap" read captures/text-echo.pcap -f "tcp" tcp port 1
check "--dir takes c2s or s2c only" 64 "$wstap" read captures/text-echo.pcap --dir up
check "--type rejects an unknown kind" 64 "$wstap" read captures/text-echo.pcap --type text,pictures
check "--grep rejects a bad regular expression" 64 "$wstap" read captures/text-echo.pcap --grep "("
check "--grep refuses a backreference" 64 "$wstap" read captures/text-echo.pcap --grep '(a)\1'
expect "...saying it matches without backtracking" sh -c "grep -q 'backreferences are not supported (wstap matches in linear time' '$work/err'"
dirt="$work/dirt"; mkdir -p "$dirt/sub"; cp captures/text-echo.pcap "$dirt/"; mkfifo "$dirt/fifo"; ln -s loop1 "$dirt/loop2"; ln -s loop2 "$dirt/loop1"
check "a directory with a FIFO, a symlink loop and a sub-directory" 0 "$wstap" read "$dirt" --format summary
expect "...says what it skipped and why" sh -c "grep -q 'skipped .*fifo: not a regular file' '$work/err' && grep -q 'skipped .*loop1: Too many levels of symbolic links' '$work/err' && grep -q 'skipped .*sub: a directory' '$work/err' && grep -q '^messages 8' '$work/out'"
check "--grep-bytes finds bytes in binary messages" 0 "$wstap" read captures/binary-sizes.pcap --grep-bytes '7d 84 8b 92' --format ndjson
expect "...showing only binary messages that hold them" sh -c "grep -q '\"event\":\"message\"' '$work/out' && ! grep -q '\"event\":\"frame\"' '$work/out' && ! grep -q '\"length\":0,' '$work/out'"
check "--grep-bytes with bad hex after hex:" 64 "$wstap" read captures/binary-sizes.pcap --grep-bytes 'hex:7g'
check "--stream shows one HTTP/2 stream" 0 "$wstap" read captures/h2-tls-rfc8441.pcap --keylog captures/h2-tls-rfc8441.keys --stream 7
expect "...its events and the connection's own, no other stream's" sh -c "grep -q '#1/s7  → CONNECT /ws/reset' '$work/out' && grep -q 'http2-goaway' '$work/out' && ! grep -q '#1/s1' '$work/out' && ! grep -q '#1/s5' '$work/out'"
check "--stream that no stream has exits 5" 5 "$wstap" read captures/h2-tls-rfc8441.pcap --keylog captures/h2-tls-rfc8441.keys --stream 9
check "a classic CONNECT on an HTTP/2 stream is a tunnel" 0 "$wstap" read captures/h2-proxy.pcap --keylog captures/h2-proxy.keys
expect "...whose TLS is decrypted and whose WebSocket is decoded" sh -c "grep -q '#1/s5  tunnel to localhost:18711 opened' '$work/out' && grep -q '#1/s5  TLS 1.3' '$work/out' && grep -q 'wss inside an HTTP/2 CONNECT stream' '$work/out' && grep -q '^TLS: decrypted 1' '$work/out'"
check "--grep -C 1 shows a message on each side of a match" 0 "$wstap" read captures/chat-stream.pcap --grep '^message 20 ' -C 1 --format ndjson
expect "...the match, the message before and the one after, of the same connection" sh -c "[ \$(grep -c '\"event\":\"message\"' '$work/out') -eq 4 ] && grep -q 'message 19 ' '$work/out' && [ \$(grep -c 'message 20 ' '$work/out') -eq 2 ] && grep -q 'message 21 ' '$work/out' && ! grep -q 'message 18 ' '$work/out'"
check "--context keeps to the streams --stream chose" 5 "$wstap" read captures/h2-tls-rfc8441.pcap --keylog captures/h2-tls-rfc8441.keys --stream 7 --grep fragmented -C 2
expect "...no message of another stream shown as context" sh -c "! grep -q '#1/s1' '$work/out'"
check "--context without --grep is a usage error" 64 "$wstap" read captures/chat-stream.pcap --context 2
check "--messages --closes shows how the conversation ended" 0 "$wstap" read captures/text-echo.pcap --messages --closes
expect "...both Close frames with the messages" sh -c "[ \$(grep -c ' close  ' '$work/out') -eq 2 ] && grep -q 'message text' '$work/out'"
check "--url matches the query too" 0 "$wstap" read captures/app-socketio.pcap --url '*t=1796669493*' --format ndjson
expect "...keeping only the socket whose query matched" sh -c "grep -q '\"event\":\"connection_open\",\"connection\":2' '$work/out' && ! grep -q '\"event\":\"connection_open\",\"connection\":1' '$work/out'"
check "--from/--to keep the events of a time window" 0 "$wstap" read captures/text-echo.pcap --messages --from +0.0017 --to +0.00196
expect "...the two messages inside it, with their connection's context" sh -c "[ \$(grep -c 'message text' '$work/out') -eq 2 ] && grep -q 'Grüße' '$work/out' && grep -q 'closed (fin)' '$work/out' && ! grep -q '\"hello\"' '$work/out'"
check "--from inside a compressed conversation" 0 "$wstap" read captures/deflate.pcap --messages --from +0.0035 --format ndjson
expect "...decodes it as the whole capture does (no lost context, the window's text)" sh -c "grep -q 'seq..: 1' '$work/out' && ! grep -q 'seq..: 0' '$work/out' && ! grep -q 'deflate-context-lost' '$work/out'"
check "--from past the capture's end matches nothing" 5 "$wstap" read captures/text-echo.pcap --from +5
check "--from that is not a time" 64 "$wstap" read captures/text-echo.pcap --from +x
expect "...says which forms it takes" grep -q "not a time (+SECONDS" "$work/err"
check "--grep (?i) matches without case" 0 "$wstap" read captures/text-echo.pcap --grep '(?i)HELLO' --format ndjson
expect "...finding the echoed text" grep -q '"event":"message"' "$work/out"
check "--messages --dir c2s" 0 "$wstap" read captures/text-echo.pcap --messages --dir c2s --format ndjson
expect "...gives the client's messages and no frame" sh -c "[ \$(grep -c '\"event\":\"message\"' '$work/out') -eq 4 ] && ! grep -q '\"event\":\"frame\"' '$work/out' && ! grep -q '\"dir\":\"s2c\"' '$work/out'"
check "-x dumps payloads as hex and ASCII" 0 "$wstap" read captures/text-echo.pcap -x --max-payload 16
expect "...16 bytes a line, in follow's hex style" grep -q "^        00000000  68 65 6c 6c 6f  *hello$" "$work/out"
check "a key log that cannot be read exits 2" 2 "$wstap" read captures/wss-tls13-aes128.pcap --keylog "$work/no-such.keys"
expect "...with one line naming it" sh -c "grep -q 'no-such.keys' '$work/err' && [ \$(wc -l <'$work/err') -eq 1 ]"
check "SSLKEYLOGFILE decrypts when --keylog is not given" 0 env SSLKEYLOGFILE=captures/wss-tls13-aes128.keys "$wstap" read captures/wss-tls13-aes128.pcap --format ndjson
expect "...and the summary says so, not as an issue" sh -c "grep -q '\"key_log\":{\"path\":\"captures/wss-tls13-aes128.keys\",\"source\":\"SSLKEYLOGFILE\"' '$work/out' && ! grep -q '\"code\":\"tls-key-log\"' '$work/out' && grep -q '\"issues\":{}' '$work/out'"
expect "...and the messages are decrypted" grep -q '"event":"message"' "$work/out"
check "--keylog wins over SSLKEYLOGFILE" 0 env SSLKEYLOGFILE=/nonexistent "$wstap" read captures/wss-tls13-aes128.pcap --keylog captures/wss-tls13-aes128.keys --format summary

# Issue 16: stats, follow, HAR, HTML, -o, colours, --pretty.
check "stats prints a table" 0 "$wstap" stats captures/ping-close-codes.pcap
expect "...with a row per connection and the close codes" sh -c "grep -q '^#1 .*4001/4001 (client)' '$work/out' && grep -q '^#2 ' '$work/out' && grep -q '^close codes: 1001 ×2, 4001 ×2' '$work/out'"
check "stats --format json" 0 "$wstap" stats captures/ping-close-codes.pcap --format json
expect "...is JSON with ping round trips" python3 -c "import json,sys; d=json.load(open('$work/out')); assert d['connections'][0]['ping_rtt_ms']['count']==1 and d['overall']['messages']==2"
check "stats --conn counts one connection" 0 "$wstap" stats captures/ping-close-codes.pcap --conn 2 --format json
expect "...and only it" python3 -c "import json; d=json.load(open('$work/out')); assert [c['id'] for c in d['connections']]==[2]"
check "follow needs a conversation" 64 "$wstap" follow captures/text-echo.pcap
check "follow a connection that is not there exits 5" 5 "$wstap" follow captures/text-echo.pcap --conn 9
expect "...with one line saying how many there are" sh -c "one_line() { [ \$(wc -l <'$work/err') -eq 1 ]; }; one_line && grep -q 'it has 1 connections' '$work/err'"
client=$("$wstap" read captures/text-echo.pcap --format ndjson | python3 -c 'import json,sys
for line in sys.stdin:
    e = json.loads(line)
    if e.get("event") == "connection_open": print(e["client"]["ip"] + ":" + str(e["client"]["port"])); break')
check "follow --client IP:PORT --write-messages DIR" 0 "$wstap" follow captures/text-echo.pcap --client "$client" --write-messages "$work/msgs"
expect "...saves every data message to a file named by sequence and packet, with an index" sh -c "[ \$(ls '$work/msgs' | wc -l) -eq 9 ] && [ \"\$(cat '$work/msgs/000001-000008-c2s.txt')\" = hello ] && grep -q '^000001-000008-c2s.txt	8	1795813625.990842	0.001472	c2s	text	5$' '$work/msgs/index.tsv'"
check "follow --write-messages never overwrites a file" 4 "$wstap" follow captures/text-echo.pcap --conn 1 --write-messages "$work/msgs"
check "read --format har -o FILE" 0 "$wstap" read captures/keepalive.pcap --format har -o "$work/k.har"
expect "...writes the file, not standard output" sh -c "[ ! -s '$work/out' ] && python3 -c \"import json; d=json.load(open('$work/k.har')); assert d['log']['entries'][2]['_resourceType']=='websocket'\""
check "-o into a missing directory exits 2" 2 "$wstap" read captures/keepalive.pcap --format har -o "$work/no/such/dir/k.har"
expect "...with one line" one_line_error
check "read --format html" 0 "$wstap" read captures/html-markup.pcap --format html
expect "...is one page with no captured markup" sh -c "grep -q '^<!DOCTYPE html>' '$work/out' && ! grep -q '<img' '$work/out' && [ \$(grep -c '<script>' '$work/out') -eq 1 ]"
check "--color always colours the timeline" 0 "$wstap" read captures/rejected.pcap --color always
expect "...with ANSI sequences" grep -q "$(printf '\033')\[31m" "$work/out"
check "--color auto does not colour a pipe" 0 "$wstap" read captures/rejected.pcap
expect "...no ANSI sequence" sh -c "! grep -q \"\$(printf '\033')\" '$work/out'"
check "NO_COLOR and auto under a terminal" 0 env NO_COLOR=1 script -qec "'$wstap' read captures/rejected.pcap" /dev/null
expect "...no ANSI sequence" sh -c "! grep -q \"\$(printf '\033')\[3\" '$work/out'"
check "auto under a terminal colours" 0 env -u NO_COLOR script -qec "'$wstap' read captures/rejected.pcap" /dev/null
expect "...with ANSI sequences" grep -q "$(printf '\033')\[3" "$work/out"
check "--pretty re-indents JSON messages" 0 "$wstap" read captures/deflate.pcap --pretty
expect "...on the lines below the message" grep -q '^          "event": "tick",$' "$work/out"

# Several files as one capture (issue 16, item 8): a ring-buffer set, a directory, sides merged by time.
mkdir -p "$work/ring" "$work/sides"
python3 - captures/chat-stream.pcap "$work/ring" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
header, offset, records = data[:24], 24, []
while offset < len(data):
    length = struct.unpack("<I", data[offset + 8:offset + 12])[0]
    records.append(data[offset:offset + 16 + length]); offset += 16 + length
for part in range(0, len(records), 10):  # named so that name order is not time order
    open(f"{sys.argv[2]}/ring{len(records) - part:04d}.pcap", "wb").write(header + b"".join(records[part:part + 10]))
PY
"$wstap" read captures/chat-stream.pcap --format json >"$work/whole.json"
check "a directory of ring-buffer files reads as one capture" 0 "$wstap" read "$work/ring" --format json
expect "...byte for byte what the whole capture gives (ids, times, packet numbers)" cmp -s "$work/out" "$work/whole.json"
check "the files named one by one, in any order" 0 "$wstap" read $(ls "$work"/ring/*.pcap | sort -r) --format json
expect "...give the same" cmp -s "$work/out" "$work/whole.json"
printf 'notes\n' >"$work/ring/README"
check "a directory with a file that is not a capture" 0 "$wstap" read "$work/ring" --format summary
expect "...says it skipped it" grep -q "skipped .*README: not a capture file" "$work/err"
rm "$work/ring/README"
head -c 700 "$(ls "$work"/ring/*.pcap | sort -r | sed -n 3p)" >"$work/cut-member" && mv "$work/cut-member" "$(ls "$work"/ring/*.pcap | sort -r | sed -n 3p)"
check "a damaged file of a set exits 3" 3 "$wstap" read "$work/ring" --format json
expect "...naming the file, after reading the later files too" sh -c "grep -q 'ring0.*damaged' '$work/err' && python3 -c \"import json; d=json.load(open('$work/out')); assert d['summary']['messages']['text'] > 60, d['summary']['messages']\""
check "a missing file after the first is not taken for a filter" 2 "$wstap" read captures/text-echo.pcap "$work/none.pcap"
expect "...and is named" grep -q "cannot read .*none.pcap" "$work/err"
check "standard input is read alone" 64 "$wstap" read - captures/text-echo.pcap

# --jobs (issue 17): the same bytes as one job, in every format, on every capture.
check "--jobs 0 is a usage error" 64 "$wstap" read captures/text-echo.pcap --jobs 0
jobs_differ=""
for capture in captures/*.pcap* captures/damaged/*.pcap* ../shared/conformance/captures/*.pcap* ../shared/conformance/tls/*.pcap*; do
    [ -f "$capture" ] || continue
    keys="${capture%.pcap*}.keys"
    keylog=(); [ -f "$keys" ] && keylog=(--keylog "$keys")
    for format in json ndjson text; do
        "$wstap" read "$capture" "${keylog[@]}" --format "$format" --jobs 1 >"$work/one" 2>/dev/null
        "$wstap" read "$capture" "${keylog[@]}" --format "$format" --jobs 2 >"$work/two" 2>/dev/null
        cmp -s "$work/one" "$work/two" || jobs_differ="$jobs_differ $capture:$format"
    done
done
expect "--jobs 2 writes what --jobs 1 writes on every capture, as json, ndjson and text${jobs_differ:+ (differs:$jobs_differ)}" test -z "$jobs_differ"
python3 bench/generate.py chat 3 --seed 3 --out "$work/gen.pcap"
# IP fragments: every job reassembles every datagram and keeps its own connections' segments.
python3 Tests/ip_fragments.py "$work/gen.pcap" "$work/fragments.pcap" >/dev/null
"$wstap" read "$work/fragments.pcap" --format summary --jobs 1 >"$work/one"
expect "the fragmented capture has datagrams reassembled, incomplete and not TCP" sh -c "grep -q 'datagrams reassembled, [1-9][0-9]* incomplete' '$work/one' && grep -q 'not-tcp' '$work/one'"
for jobs in 2 3; do
    for format in json ndjson text summary; do
        "$wstap" read "$work/fragments.pcap" --format "$format" --jobs 1 >"$work/one"
        check "--jobs $jobs, $format, TCP segments in IP fragments" 0 "$wstap" read "$work/fragments.pcap" --format "$format" --jobs "$jobs"
        expect "...the same bytes as --jobs 1" cmp -s "$work/out" "$work/one"
    done
done
python3 - "$work/gen.pcap" "$work/half.pcap" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
offset, records = 24, []
while offset < len(data):
    length = struct.unpack("<I", data[offset + 8:offset + 12])[0]
    records.append(data[offset:offset + 16 + length]); offset += 16 + length
open(sys.argv[2], "wb").write(data[:24] + b"".join(records[:len(records) // 2]))
PY
# Half a capture of many connections, then one three years later: the idle sweep closes dozens
# of connections of every job at once, and they must come out in the order one job gives.
for jobs in 2 3; do
    for format in json ndjson text summary har html; do
        "$wstap" read "$work/half.pcap" captures/chat-stream.pcap --idle-timeout 60 --format "$format" --jobs 1 >"$work/one"
        check "--jobs $jobs, $format, connections closed together by an idle sweep" 0 "$wstap" read "$work/half.pcap" captures/chat-stream.pcap --idle-timeout 60 --format "$format" --jobs "$jobs"
        expect "...the same bytes as --jobs 1" cmp -s "$work/out" "$work/one"
    done
done
"$wstap" read "$work/half.pcap" captures/chat-stream.pcap --idle-timeout 60 >"$work/one"
expect "...(the sweep closed many connections)" sh -c "[ \$(grep -c 'closed (idle-timeout)' '$work/one') -ge 20 ]"
check "--jobs 2 stops quietly when the reader of its output goes away (| head)" 0 bash -c "set -o pipefail; '$wstap' read '$work/gen.pcap' --jobs 2 --format ndjson | head -1 >/dev/null"
check "--jobs 2 into a full disk exits 4" 4 sh -c "'$wstap' read '$work/gen.pcap' --jobs 2 --format ndjson >/dev/full"
expect "...with one line" one_line_error
check "stats --jobs 2" 0 "$wstap" stats "$work/gen.pcap" --format json --jobs 2
expect "...equals stats --jobs 1" sh -c "'$wstap' stats '$work/gen.pcap' --format json --jobs 1 | cmp -s - '$work/out'"
check "--jobs 2 on standard input (every job reads the file itself: one job here)" 0 sh -c "'$wstap' read - --jobs 2 --format ndjson <'$work/gen.pcap'"
expect "...says so on standard error" grep -q "standard input is decoded by one job" "$work/err"
expect "...and writes what one job writes" sh -c "'$wstap' read '$work/gen.pcap' --format ndjson --jobs 1 | cmp -s - '$work/out'"

# wstap lint: a verdict CI can gate on (issue 27).
check "lint passes a clean capture" 0 "$wstap" lint captures/text-echo.pcap
expect "...with its verdict" grep -q "captures/text-echo.pcap: 1 connection (closed-cleanly 1); 0 errors, 0 warnings, 0 info: pass" "$work/out"
check "lint fails a capture with a failed handshake" 1 "$wstap" lint captures/bad-accept.pcap captures/text-echo.pcap
expect "...one line per finding, naming the connection" grep -q "^captures/bad-accept.pcap #1 .* error bad-accept: " "$work/out"
expect "...and a verdict for all" grep -q "^2 captures, 1 failed (--fail-on error)" "$work/out"
check "lint --fail-on warning fails on warnings" 1 "$wstap" lint captures/damaged/snaplen.pcap --fail-on warning
check "lint --fail-on error passes the same" 0 "$wstap" lint captures/damaged/snaplen.pcap
check "lint --format junit" 1 "$wstap" lint captures/rejected.pcap captures/damaged/rst-mid-message.pcap --format junit
expect "...is XML with a testsuite per capture and a failure naming the reset" python3 -c "
import sys, xml.etree.ElementTree as ET
root = ET.parse('$work/out').getroot()
suites = root.findall('testsuite')
assert root.tag == 'testsuites' and [s.get('name') for s in suites] == ['captures/rejected.pcap', 'captures/damaged/rst-mid-message.pcap'], suites
failures = [f for s in suites for c in s.findall('testcase') for f in c.findall('failure')]
assert any(f.get('type') == 'connection-reset' for f in failures), [f.get('type') for f in failures]
assert int(root.get('failures')) >= 2
"
check "lint --format json" 1 "$wstap" lint captures/damaged/rst-mid-message.pcap --format json
expect "...says the outcome and the verdict" python3 -c "
import json; d = json.load(open('$work/out'))
assert d['verdict'] == 'fail' and d['captures'][0]['connections'][0]['outcome'] == 'reset', d
"
check "lint of a file that is not a capture exits 2" 2 "$wstap" lint "$work/text.pcap"
check "read keeps exit 0 for findings" 0 "$wstap" read captures/bad-accept.pcap --format summary
check "read --fail-on error exits 1 for them" 1 "$wstap" read captures/bad-accept.pcap --format summary --fail-on error
check "stats --fail-on error exits 1 for them" 1 "$wstap" stats captures/bad-accept.pcap --fail-on error
check "stats fits 100 columns" 0 "$wstap" stats captures/rejected.pcap
expect "...every line of it" sh -c "! awk 'length > 100' '$work/out' | grep -q ."
expect "...and names the outcome and the client" sh -c "grep -q 'outcome' '$work/out' && grep -q 'client' '$work/out' && grep -q 'refused' '$work/out'"
check "stats --wide has every column" 0 "$wstap" stats captures/rejected.pcap --wide
expect "...host and ping round trips included" sh -c "grep -q 'host / target' '$work/out' && grep -q 'ping rtt' '$work/out'"

check "stats --interval counts per interval" 0 "$wstap" stats captures/ping-close-codes.pcap --interval 1ms --format json
expect "...messages, bytes and connections each way" python3 -c "
import json; d = json.load(open('$work/out'))
assert d['interval_s'] == 0.001 and sum(i['messages']['c2s'] + i['messages']['s2c'] for i in d['intervals']) == 2, d['intervals']
assert sum(i['opened'] for i in d['intervals']) == 2 and sum(i['closed'] for i in d['intervals']) == 2
"
check "stats --interval takes only durations" 64 "$wstap" stats captures/ping-close-codes.pcap --interval soon

mkfifo "$work/keys.fifo"
check "a key log that is a FIFO is refused, not waited on" 2 timeout 10 "$wstap" read captures/text-echo.pcap --keylog "$work/keys.fifo"
expect "...with one line saying why" grep -q "not a regular file" "$work/err"

# Application protocols (issue 28): forced, filtered, counted.
check "--app forces a protocol on a port" 0 "$wstap" read captures/text-echo.pcap --app json:18100 --format ndjson
expect "...its messages are checked as JSON, marked forced" sh -c "grep -q '\"event\":\"app\"' '$work/out' || grep -q 'app-invalid-json' '$work/out'"
check "--app with an unknown protocol is a usage error" 64 "$wstap" read captures/app-mqtt.pcap --app nosuch
expect "...naming the known ones" sh -c "grep -q 'unknown application protocol' '$work/err' && grep -q 'mqtt' '$work/err'"
check "--app with neither a port nor a path after the colon is a usage error" 64 "$wstap" read captures/app-mqtt.pcap --app mqtt:chat
check "--app-type keeps only that type" 0 "$wstap" read captures/app-mqtt.pcap --app-type PUBACK --format ndjson
expect "...six PUBACKs and nothing else of the application" python3 -c "
import json; events = [json.loads(l) for l in open('$work/out')]
apps = [e for e in events if e['event'] == 'app']
assert len(apps) == 6 and all(e['type'] == 'PUBACK' for e in apps), apps
assert not any(e['event'] in ('frame', 'message') for e in events)
"
check "--event matches a topic glob" 0 "$wstap" read captures/app-mqtt.pcap --event 'wstap/+/*' --app-only
expect "...the SUBSCRIBE that names it" grep -q "SUBSCRIBE" "$work/out"
check "--event matches a STOMP destination" 0 "$wstap" read captures/app-stomp.pcap --event '/nosuch/*' --format ndjson
expect "...the one SEND to it" sh -c "[ \$(grep -c '\"event\":\"app\"' '$work/out') -eq 1 ]"
check "stats counts application round trips" 0 "$wstap" stats captures/app-mqtt.pcap --format json
expect "...PUBACK round trips and keep-alives not counted as data" python3 -c "
import json; d = json.load(open('$work/out'))
t = d['connections'][0]
assert t['app_rtt_ms']['mqtt PUBLISH→PUBACK']['count'] == 6, t['app_rtt_ms']
assert t['keep_alives'] == {'client': 3, 'server': 3}, t['keep_alives']
"

# Filters keep the conversation and say when nothing matched (issue 31).
check "a filter that matches no connection exits 5" 5 "$wstap" read captures/text-echo.pcap --conn 7
expect "...with one line saying what the capture has" sh -c "one_line() { [ \$(wc -l <'$work/err') -eq 1 ]; }; one_line && grep -q 'the capture has 1 connection' '$work/err'"
check "a --grep that matches no message exits 5" 5 "$wstap" read captures/chat-stream.pcap --grep 'no such words here'
check "stats with a filter that matches nothing exits 5" 5 "$wstap" stats captures/chat-stream.pcap --server 10.9.9.9
check "--client with an address keeps its connections" 0 "$wstap" read captures/ipv6-echo.pcap --client ::1 --format ndjson
expect "...every one of them" grep -q '"event":"connection_open"' "$work/out"
check "--grep keeps host and target on NDJSON messages" 0 "$wstap" read captures/chat-stream.pcap --grep 'message 0' --format ndjson
expect "...not null" sh -c "grep '\"event\":\"message\"' '$work/out' | grep -q '\"target\":\"/chat\"' && ! grep '\"event\":\"message\"' '$work/out' | grep -q '\"target\":null'"
check "a HAR of text messages keeps its entry" 0 "$wstap" read captures/chat-stream.pcap --type text --format har
expect "...with the messages" python3 -c "
import json; d = json.load(open('$work/out')); e = d['log']['entries']
assert len(e) == 1 and len(e[0]['_webSocketMessages']) == 80, [len(x.get('_webSocketMessages', [])) for x in e]
"
check "--grep shows only the connections it matched" 0 "$wstap" read captures/ping-close-codes.pcap --grep 'after p.ng'
expect "...no TCP or close line of the other" sh -c "[ \$(grep -c '  #2  ' '$work/out') -eq 0 ] && grep -q '  #1  TCP' '$work/out' && grep -q '  #1  closed' '$work/out'"
check "follow --stream shows one HTTP/2 stream" 0 "$wstap" follow captures/h2-tls-rfc8441.pcap --keylog captures/h2-tls-rfc8441.keys --conn 1 --stream 7
expect "...its CONNECT, messages and reset, no other stream's" sh -c "grep -q 'CONNECT /ws/reset' '$work/out' && grep -q 'stream 7 closed (rst-stream CANCEL): reset' '$work/out' && ! grep -q '/ws/echo' '$work/out'"
check "follow --stream with no such stream exits 5" 5 "$wstap" follow captures/h2-tls-rfc8441.pcap --keylog captures/h2-tls-rfc8441.keys --conn 1 --stream 9
check "follow --client takes an address alone" 0 "$wstap" follow captures/ping-close-codes.pcap --client 127.0.0.1
expect "...and follows every connection from it" sh -c "[ \$(grep -c '═══ follow' '$work/out') -eq 2 ]"
check "--messages with --type control shows close frames" 0 "$wstap" read captures/ping-close-codes.pcap --messages --type control
expect "...the closes" grep -q "close" "$work/out"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
