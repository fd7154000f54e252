#!/usr/bin/env bash
# Records every test capture with real peers on loopback (tcpdump + python websockets).
# usage: captures/record.sh [SCENARIO...]   (needs root, tcpdump, editcap, python3 -m pip install websockets)
# Each NAME.pcap gets NAME.peers.json (what the peers sent). Then regenerate the expected outputs:
#   RECORD_SNAPSHOTS=1 swift test --filter GoldenTests
set -euo pipefail
cd "$(dirname "$0")"
record() {  # name scenario port host interface
    local name=$1 scenario=$2 port=$3 host=$4 iface=$5
    local filter="tcp portrange $port-$((port + 1))"
    local extra=()
    [ "$iface" = any ] && extra=(-y LINUX_SLL2)
    tcpdump -i "$iface" "${extra[@]}" --immediate-mode -s 0 -U -w "$name.tmp.pcap" "$filter" 2>/dev/null &
    local dump=$!
    sleep 1
    local status=0
    if [[ $scenario == app-* ]]; then python3 app_peers.py "$scenario" "$port" "$name.peers.json" || status=$?
    else python3 peers.py "$scenario" "$port" "$name.peers.json" "$host" || status=$?; fi
    sleep 0.5
    kill -INT "$dump"; wait "$dump" || true
    if [ "$status" -ne 0 ]; then rm -f "$name.tmp.pcap"; echo "$name: the peers failed (exit $status)"; return "$status"; fi
    if [ "$iface" = any ]; then
        editcap -F pcapng "$name.tmp.pcap" "$name.pcapng" && rm "$name.tmp.pcap"
    else
        mv "$name.tmp.pcap" "$name.pcap"
    fi
    echo "recorded $name"
}
all=(text-echo binary-sizes ping-close-codes subprotocol deflate rejected bad-accept keepalive fragmented h2c
     deflate-no-context-client deflate-no-context-server deflate-window-bits deflate-fragmented unknown-extension chat-stream
     html-markup app-mqtt app-stomp app-socketio app-jsonrpc app-graphql)
port=18100
for scenario in "${all[@]}"; do
    if [ $# -eq 0 ] || [[ " $* " == *" $scenario "* ]]; then record "$scenario" "$scenario" "$port" 127.0.0.1 lo; fi
    port=$((port + 10))
done
# wss:// (issue 15): the client writes NAME.keys. TLS 1.3 suites are chosen by OpenSSL's
# configuration; TLS 1.2 suites by the peers.
tls13_suite() {  # name port suite
    local conf; conf=$(mktemp)
    printf 'openssl_conf = conf\n[conf]\nssl_conf = ssl\n[ssl]\nsystem_default = tls\n[tls]\nCiphersuites = %s\n' "$3" > "$conf"
    if [ -z "$ARGS" ] || [[ " $ARGS " == *" $1 "* ]]; then OPENSSL_CONF=$conf record "$1" wss-tls13 "$2" 127.0.0.1 lo; fi
    rm -f "$conf"
}
ARGS="$*"
tls13_suite wss-tls13-aes256 18400 TLS_AES_256_GCM_SHA384
tls13_suite wss-tls13-aes128 18410 TLS_AES_128_GCM_SHA256
tls13_suite wss-tls13-chacha 18420 TLS_CHACHA20_POLY1305_SHA256
tls_port=18430
for scenario in wss-tls12-aes128 wss-tls12-aes256 wss-tls12-chacha wss-missing-key wss-tls12-cbc-sha wss-tls12-cbc-sha384 tls-h2; do
    if [ $# -eq 0 ] || [[ " $* " == *" $scenario "* ]]; then record "$scenario" "$scenario" "$tls_port" 127.0.0.1 lo; fi
    tls_port=$((tls_port + 10))
done
# TLS 1.3 with openssl s_client and s_server, for what python's ssl cannot do: a KeyUpdate between
# two requests ("K" on s_client's input), and a HelloRetryRequest (the server accepts only a group
# the client sent no key share for). Plain HTTP requests inside; every one must decrypt.
record_openssl() {  # name port server-options client-options request...
    local name=$1 port=$2 server_options=$3 client_options=$4
    shift 4
    local work; work=$(mktemp -d)
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 -subj /CN=wstap.test 2>/dev/null
    rm -f "$name.keys"
    tcpdump -i lo --immediate-mode -s 0 -U -w "$name.pcap" "tcp port $port" 2>/dev/null &
    local dump=$!
    sleep 1
    # shellcheck disable=SC2086
    (sleep 3 | openssl s_server -accept "$port" -cert "$work/cert.pem" -key "$work/key.pem" -quiet -naccept 1 $server_options >/dev/null 2>&1) &
    sleep 0.5
    # shellcheck disable=SC2086
    (for line in "$@"; do printf '%b' "$line"; sleep 0.3; done; sleep 0.3) |
        openssl s_client -connect "127.0.0.1:$port" -keylogfile "$name.keys" -servername wstap.test $client_options >/dev/null 2>&1 || true  # a refused handshake fails here
    sleep 1
    pkill -f "s_server -accept $port" || true  # after a failed handshake it would wait for another
    kill -INT "$dump"; wait "$dump" || true
    printf '{\n "messages": [],\n "note": "HTTP requests only, sent by openssl s_client"\n}\n' > "$name.peers.json"
    rm -rf "$work"
    echo "recorded $name"
}
if [ $# -eq 0 ] || [[ " $* " == *" tls13-key-update "* ]]; then
    record_openssl tls13-key-update 18560 -tls1_3 -tls1_3 'GET /before-key-update HTTP/1.1\r\nHost: x\r\n\r\n' 'K\n' \
        'GET /after-key-update HTTP/1.1\r\nHost: x\r\n\r\n'
fi
if [ $# -eq 0 ] || [[ " $* " == *" tls-alert "* ]]; then
    # A TLS 1.2-only client against a TLS 1.3-only server: a fatal protocol_version alert.
    record_openssl tls-alert 18580 -tls1_3 -tls1_2 'GET / HTTP/1.1\r\n\r\n'
fi
if [ $# -eq 0 ] || [[ " $* " == *" tls13-early-data "* ]]; then
    # 0-RTT: a first connection saves its session, the second resumes it with early data (a
    # request) and sends another request after the handshake.
    work=$(mktemp -d)
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 -subj /CN=wstap.test 2>/dev/null
    printf 'GET /early-data HTTP/1.1\r\nHost: x\r\n\r\n' > "$work/early.txt"
    rm -f tls13-early-data.keys
    tcpdump -i lo --immediate-mode -s 0 -U -w tls13-early-data.pcap "tcp port 18590" 2>/dev/null &
    dump=$!
    sleep 1
    (sleep 6 | openssl s_server -accept 18590 -cert "$work/cert.pem" -key "$work/key.pem" -tls1_3 -quiet -naccept 2 -early_data >/dev/null 2>&1) &
    sleep 0.5
    for request in first after-early-data; do
        session=(-sess_out "$work/session.pem")
        [ "$request" = first ] || session=(-sess_in "$work/session.pem" -early_data "$work/early.txt")
        (printf 'GET /%s HTTP/1.1\r\nHost: x\r\n\r\n' "$request"; sleep 1) |
            openssl s_client -connect 127.0.0.1:18590 -tls1_3 "${session[@]}" -keylogfile tls13-early-data.keys \
                -servername wstap.test >/dev/null 2>&1 || true
    done
    sleep 1
    pkill -f "s_server -accept 18590" || true
    kill -INT "$dump"; wait "$dump" || true
    printf '{\n "messages": [],\n "note": "HTTP requests only, sent by openssl s_client; the second connection sends 0-RTT data"\n}\n' > tls13-early-data.peers.json
    rm -rf "$work"
    echo "recorded tls13-early-data"
fi
if [ $# -eq 0 ] || [[ " $* " == *" tls13-hello-retry "* ]]; then
    record_openssl tls13-hello-retry 18570 "-tls1_3 -groups P-256" "-tls1_3 -groups X25519:P-256" \
        'GET /after-hello-retry HTTP/1.1\r\nHost: x\r\n\r\n'
fi
# A browser's wss:// (needs Debian's chromium).
if [ $# -eq 0 ] || [[ " $* " == *" wss-chromium "* ]]; then
    if command -v chromium >/dev/null; then record wss-chromium wss-chromium 18500 127.0.0.1 lo
    else echo "chromium not installed: wss-chromium not recorded"; fi
fi
# WebSocket over HTTP/2 in TLS between real peers (hypercorn; an h2 + wsproto client writes the key log).
if [ $# -eq 0 ] || [[ " $* " == *" h2-tls-rfc8441 "* ]]; then
    tcpdump -i lo --immediate-mode -s 0 -U -w h2-tls-rfc8441.pcap "tcp port 18600" 2>/dev/null &
    dump=$!
    sleep 1
    status=0
    python3 h2_peers.py h2-tls-rfc8441 18600 h2-tls-rfc8441.peers.json h2-tls-rfc8441.keys || status=$?
    sleep 0.5
    kill -INT "$dump"; wait "$dump" || true
    if [ "$status" -ne 0 ]; then echo "h2-tls-rfc8441: the peers failed (exit $status)"; exit "$status"; fi
    echo "recorded h2-tls-rfc8441"
fi
# WebSockets through forward proxies (CONNECT tunnels): tinyproxy (HTTP/1.1) and nghttpx -s in
# front of it (HTTP/2 classic CONNECT); only the client's leg to the first proxy is captured.
# Needs Debian's tinyproxy and nghttp2-proxy.
for scenario in tunnel-http1:18700 h2-proxy:18710; do
    name=${scenario%%:*}; port=${scenario##*:}
    if [ $# -ne 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
    if ! command -v tinyproxy >/dev/null || ! command -v nghttpx >/dev/null; then
        echo "tinyproxy or nghttpx not installed: $name not recorded"; continue
    fi
    tcpdump -i lo --immediate-mode -s 0 -U -w "$name.pcap" "tcp port $port" 2>/dev/null &
    dump=$!
    sleep 1
    status=0
    python3 proxy_peers.py "$name" "$port" "$name.peers.json" "$name.keys" || status=$?
    sleep 0.5
    kill -INT "$dump"; wait "$dump" || true
    if [ "$status" -ne 0 ]; then echo "$name: the peers failed (exit $status)"; exit "$status"; fi
    echo "recorded $name"
done
# HTTP/2 after an HTTP/1.1 Upgrade: h2c between real peers (hypercorn), GOAWAY mid-message.
if [ $# -eq 0 ] || [[ " $* " == *" h2c-upgrade "* ]]; then
    tcpdump -i lo --immediate-mode -s 0 -U -w h2c-upgrade.pcap "tcp port 18620" 2>/dev/null &
    dump=$!
    sleep 1
    status=0
    python3 h2_peers.py h2c-upgrade 18620 h2c-upgrade.peers.json || status=$?
    sleep 0.5
    kill -INT "$dump"; wait "$dump" || true
    if [ "$status" -ne 0 ]; then echo "h2c-upgrade: the peers failed (exit $status)"; exit "$status"; fi
    echo "recorded h2c-upgrade"
fi
if [ $# -eq 0 ] || [[ " $* " == *" ipv6-echo "* ]]; then record ipv6-echo text-echo 18300 ::1 lo; fi
if [ $# -eq 0 ] || [[ " $* " == *" any-sll2 "* ]]; then record any-sll2 text-echo 18310 127.0.0.1 any; fi
