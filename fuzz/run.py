#!/usr/bin/env python3
"""Builds the libFuzzer targets (fuzz/Targets, `-sanitize=fuzzer,address`) and runs each one,
then prints executions, coverage and findings per target.

usage: fuzz/run.py [--seconds N] [--runs N] [--targets a,b] [--no-build] [--jobs N] [--debug]

  --seconds N   stop each target after N seconds (default 10; `make test` runs 5)
  --runs N      stop each target after N executions, whichever comes first (default: no limit)
  --targets     a comma-separated subset of the targets
  --jobs N      targets run side by side (default 1)
  --debug       a debug build (-Onone, exclusivity checked): half the build time of the release
                build and fewer executions per second; `make test` smoke-runs it, long runs use
                the release build

The corpus of each target lives in .build-fuzz/corpus/TARGET (kept between runs), seeded from
the bundled captures. A crash, an input over 10 s or memory past 2 GB stops that target: the
input is kept as .build-fuzz/findings/TARGET-* and the script ends with status 1. Replay one with
  WSTAP_FUZZ_TARGET=TARGET .build-fuzz/release/wstap-fuzz FILE   (debug/ after --debug)
"""
import argparse, glob, os, re, struct, subprocess, sys, time, zlib
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from generate import ws_frame  # noqa: E402

SCRATCH = os.path.join(ROOT, ".build-fuzz")
TARGETS = ["capture-reader", "packet-decoder", "tcp-reassembly", "http-head", "frame-decoder", "inflate", "pipeline", "tls",
           "app-json", "app-brokers", "http2", "grep-pattern", "key-log"]
# The link types the packet-decoder target chooses by its first byte, in its order.
LINK_TYPES = [1, 0, 12, 108, 113, 276, 228, 229, 101, 14]
BUILD = ["swift", "build", "--scratch-path", SCRATCH, "--product", "wstap-fuzz",
         "-Xswiftc", "-sanitize=fuzzer,address", "-Xswiftc", "-parse-as-library", "-Xswiftc", "-enable-testing",
         # gold stops with an internal error on this link; lld links it.
         "-Xswiftc", "-Xclang-linker", "-Xswiftc", "-fuse-ld=lld"]


def capture_files(limit=64 * 1024):
    files = sorted(glob.glob(os.path.join(ROOT, "captures", "*.pcap*"))
                   + glob.glob(os.path.join(ROOT, "captures", "damaged", "*.pcap*")))
    return [f for f in files if os.path.getsize(f) <= limit]


def pcap_records(path):
    """(link type, record bytes) of a classic little-endian pcap file; none for other formats."""
    data = open(path, "rb").read()
    if len(data) < 24 or data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return []
    link = struct.unpack_from("<I", data, 20)[0] & 0xFFFF
    records, offset = [], 24
    while offset + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, offset + 8)[0]
        records.append((link, data[offset + 16:offset + 16 + caplen]))
        offset += 16 + caplen
    return records


def tcp_payloads(path):
    """Payloads of the TCP segments of an Ethernet or loopback pcap, in file order."""
    payloads = []
    for link, record in pcap_records(path):
        start = {1: 14, 0: 4, 108: 4, 113: 16}.get(link)
        if start is None or len(record) < start + 20 or record[start] >> 4 != 4:
            continue
        ip_header = (record[start] & 0x0F) * 4
        tcp = start + ip_header
        if len(record) < tcp + 20 or record[start + 9] != 6:
            continue
        payload = record[tcp + (record[tcp + 12] >> 4) * 4:]
        if payload:
            payloads.append(payload)
    return payloads


def deflate(message):
    compressor = zlib.compressobj(wbits=-15)
    data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4] if data.endswith(b"\x00\x00\xff\xff") else data


def seeds(target):
    """Starting inputs for one target, each in the layout that target reads."""
    captures = capture_files()
    if target in ("capture-reader", "pipeline"):
        return [open(f, "rb").read() for f in captures]
    if target == "packet-decoder":
        out = []
        for f in captures:
            records = pcap_records(f)[:12]
            if records and records[0][0] in LINK_TYPES:
                blob = bytes([LINK_TYPES.index(records[0][0])])
                for _, record in records:
                    blob += struct.pack("!H", len(record)) + record + b"\x00"
                out.append(blob)
        return out
    if target == "tcp-reassembly":
        request = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        def segment(flags, from_client, offset, payload, step=1):
            return bytes([flags, 0 if from_client else 1]) + struct.pack("!H", offset) + bytes([step << 4, len(payload)]) + payload
        handshake = segment(0x02, True, 0, b"") + segment(0x12, False, 0, b"")
        return [handshake + segment(0x18, True, 1, request) + segment(0x18, False, 1, b"HTTP/1.1 101 OK\r\n\r\n")
                + segment(0x11, True, 1 + len(request), b"") + segment(0x11, False, 20, b""),
                handshake + segment(0x18, True, 40, request[40:]) + segment(0x18, True, 1, request[:40])
                + segment(0x04, False, 1, b"")]
    if target == "http-head":
        out = []
        for f in captures:
            data = open(f, "rb").read()
            start = data.find(b"GET ")
            answer = data.find(b"HTTP/1.1 ", start)
            if start < 0 or answer < 0:
                continue
            request = data[start:data.find(b"\r\n\r\n", start) + 4]
            response = data[answer:data.find(b"\r\n\r\n", answer) + 4]
            out.append(request + b"\x00" + response)
        return out[:20]
    if target == "frame-decoder":
        key = b"\x01\x02\x03\x04"
        cuts = bytes([0, 3, 1, 200, 7, 0, 60, 2])
        texts = [ws_frame(1, b"hello"), ws_frame(2, bytes(range(200))), ws_frame(9, b"ping"),
                 ws_frame(8, b"\x03\xe8bye")]
        masked = [ws_frame(1, b"hello", key), ws_frame(2, bytes(300), key), ws_frame(8, b"\x03\xe8", key)]
        fragmented = bytes([0x01, 0x02]) + b"he" + bytes([0x89, 0x00]) + bytes([0x80, 0x03]) + b"llo"
        compressed = ws_frame(1, deflate(b"hello hello hello"), rsv1=True) + ws_frame(1, deflate(b"again"), rsv1=True)
        return [bytes([2]) + cuts + b"".join(texts), bytes([1]) + cuts + b"".join(masked),
                bytes([2]) + cuts + fragmented, bytes([6]) + cuts + compressed, bytes([22]) + cuts + compressed,
                bytes([8]) + cuts + b"junk" + b"".join(masked), bytes([34]) + cuts + ws_frame(2, bytes(400))]
    if target == "tls":
        # The TCP payloads of the recorded wss:// captures, each piece tagged with its direction.
        out = []
        for f in sorted(glob.glob(os.path.join(ROOT, "captures", "wss-*.pcap"))):
            blob = b"\x00"
            for link, record in pcap_records(f):
                if link != 1 or len(record) < 54:
                    continue
                tcp = 14 + (record[14] & 0x0F) * 4
                payload = record[tcp + (record[tcp + 12] >> 4) * 4:]
                if payload:
                    from_client = struct.unpack_from("!H", record, tcp + 2)[0] < 30000
                    blob += bytes([0 if from_client else 1]) + struct.pack("!H", len(payload)) + payload
            out.append(blob)
        return out
    if target == "inflate":
        messages = [deflate(b"hello " * 50), deflate(bytes(range(256)) * 4), deflate(b"")]
        return [b"".join(bytes([0x05]) + struct.pack("!H", len(m)) + m for m in messages),
                bytes([0xC1]) + struct.pack("!H", len(messages[0])) + messages[0]]
    if target == "app-json":
        messages = [b'{"type":"subscribe","id":"1","payload":{"query":"query Q { a }"}}', b'{"type":"next","id":"1","payload":{"errors":[{"message":"x"}]}}',
                    b'[{"jsonrpc":"2.0","method":"m","id":1},{"jsonrpc":"2.0","method":"n"}]', b'{"jsonrpc":"2.0","error":{"code":-1,"message":"no"},"id":1}',
                    b'{"a":[1,2.5e3,true,null,"\\u00e9"]}', b'[[[[[[[[[[]]]]]]]]]]', b'42/chat,7["m",{"a":1}]', b'451-["up",{"_placeholder":true,"num":0}]']
        return [b"".join(bytes([i % 2]) + struct.pack("!H", len(m)) + m for i, m in enumerate(messages))]
    if target == "grep-pattern":
        patterns = [b"error.*timeout", b"^(a+)+$", b"(?i)[a-f0-9]{8}\\b", b"\\d{3}-\\d{4}|\\w+@\\w+\\.com", b"[^\"]+\"(x|y)?z{2,5}"]
        text = b'{"type":"error","detail":"read timeout after 30s","id":"deadbeef"} call 555-1234 aaaa'
        return [bytes([len(p)]) + p + text for p in patterns]
    if target == "key-log":
        keys = [f for f in glob.glob(os.path.join(ROOT, "captures", "*.keys"))]
        return [open(f, "rb").read() for f in sorted(keys)] + [b"# comment\nCLIENT_RANDOM zz 00\nx\n\nCLIENT_HANDSHAKE_TRAFFIC_SECRET " + b"00" * 32 + b" " + b"11" * 48 + b"\n"]
    if target == "app-brokers":
        connect = b"\x10\x14\x00\x04MQTT\x04\xc2\x00\x3c\x00\x02id\x00\x01u\x00\x01p"
        publish = b"\x33\x09\x00\x03a/b\x00\x07hi"
        pieces = [(0, connect), (1, b"\x20\x02\x00\x00"), (0, publish[:4]), (0, publish[4:] + b"\xc0\x00"),
                  (2, b"CONNECT\naccept-version:1.2\n\n\x00"), (3, b"CONNECTED\nversion:1.2\n\n\x00\n"),
                  (2, b"SEND\ndestination:/q\\c\ncontent-length:2\n\nhi\x00SEND\ndestination:/q\n\n"), (2, b"x\x00"), (3, b"\n")]
        return [b"".join(bytes([control]) + struct.pack("!H", len(m)) + m for control, m in pieces)]
    if target == "http2":
        def frame(kind, flags, stream, payload):
            return struct.pack("!I", len(payload))[1:] + bytes([kind, flags]) + struct.pack("!I", stream) + payload
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        # HPACK: indexed :method GET (0x82), :scheme http (0x86), :path / (0x84), a literal :authority.
        headers = b"\x82\x86\x84\x41\x0bexample.com"
        client = preface + frame(4, 0, 0, b"") + frame(1, 0x4, 1, headers[:5]) + frame(9, 0x4, 1, b"") + frame(0, 0x9, 1, b"\x02hi\x00\x00")
        server = frame(4, 0, 0, b"\x00\x08\x00\x00\x00\x01") + frame(1, 0x5, 1, b"\x88") + frame(3, 0, 1, b"\x00\x00\x00\x08")
        return [b"\x01" + b"\x00" + struct.pack("!H", len(client)) + client + b"\x01" + struct.pack("!H", len(server)) + server]
    raise ValueError(target)


def run(target, seconds, runs, binary):
    corpus = os.path.join(SCRATCH, "corpus", target)
    findings = os.path.join(SCRATCH, "findings")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(findings, exist_ok=True)
    for index, seed in enumerate(seeds(target)):
        path = os.path.join(corpus, f"seed-{index}")
        if not os.path.exists(path):
            open(path, "wb").write(seed)
    environment = dict(os.environ, WSTAP_FUZZ_TARGET=target, SWIFT_BACKTRACE="enable=no",
                       ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0")
    command = [binary, corpus, f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
               "-max_len=65536", f"-artifact_prefix={findings}/{target}-", "-print_final_stats=1"]
    if runs:
        command.append(f"-runs={runs}")
    started = time.time()
    result = subprocess.run(command, env=environment, capture_output=True, text=True, errors="replace")
    elapsed = time.time() - started
    log = result.stderr
    open(os.path.join(SCRATCH, f"{target}.log"), "w").write(log)
    executions = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    coverage = re.findall(r"\bcov: (\d+) ft: (\d+) corp: (\d+)", log)
    crashed = result.returncode != 0
    finding = re.findall(r"Test unit written to (\S+)", log)
    return {
        "target": target, "executions": int(executions[-1]) if executions else 0, "seconds": elapsed,
        "coverage": coverage[-1] if coverage else ("?", "?", "?"), "ok": not crashed,
        "finding": finding[-1] if finding else None,
        "reason": next((line for line in log.splitlines() if "ERROR:" in line or "Fatal error" in line), ""),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=0)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--debug", action="store_true")
    options = parser.parse_args()
    targets = [t for t in options.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        sys.exit(f"unknown targets: {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    configuration = "debug" if options.debug else "release"
    binary = os.path.join(SCRATCH, configuration, "wstap-fuzz")
    if not options.no_build:
        build = subprocess.run(BUILD + ["-c", configuration], cwd=ROOT, env=dict(os.environ, WSTAP_FUZZ="1"), capture_output=True, text=True)
        if build.returncode != 0:
            sys.exit("fuzz build failed:\n" + (build.stdout + build.stderr)[-3000:])
    with ThreadPoolExecutor(options.jobs) as pool:
        results = list(pool.map(lambda t: run(t, options.seconds, options.runs, binary), targets))
    print(f"{'target':<16} {'executions':>12} {'seconds':>8} {'exec/s':>8} {'cov':>6} {'features':>9} {'corpus':>7}  result")
    for r in results:
        cov, features, corpus = r["coverage"]
        rate = r["executions"] / r["seconds"] if r["seconds"] else 0
        verdict = "clean" if r["ok"] else f"FOUND {r['finding'] or ''} {r['reason'].strip()}"
        print(f"{r['target']:<16} {r['executions']:>12,} {r['seconds']:>8.0f} {rate:>8,.0f} {cov:>6} {features:>9} {corpus:>7}  {verdict}")
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
