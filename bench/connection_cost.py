#!/usr/bin/env python3
"""What one open connection costs wstap in memory, per connection kind and output format
(issue 30, item 3): the peak RSS of `wstap read` over N and 2N connections left open, the
difference divided by N.

Each kind is a recording from captures/ (real peers) replayed N times with other client ports
and addresses, cut before its first FIN or RST so that every copy is still open at the end:
WebSocket (text-echo), permessage-deflate (deflate), TLS with its key log (wss-tls13-aes128),
HTTP/2 in cleartext (h2c) and HTTP/2 over TLS with WebSocket streams (h2-tls-rfc8441, key log);
TCP only and HTTP/1.1 are built here (a handshake and a few bytes; a keep-alive exchange).

usage: bench/connection_cost.py [WSTAP] [--connections N] [--jobs N] [--formats a,b]
"""
import argparse, os, struct, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
parser = argparse.ArgumentParser()
parser.add_argument("wstap", nargs="?", default=os.path.join(ROOT, ".build", "release", "wstap"))
parser.add_argument("--connections", type=int, default=5000)
parser.add_argument("--jobs")
parser.add_argument("--formats", default="summary,ndjson,json")
options = parser.parse_args()
WSTAP, CONNECTIONS, JOBS, FORMATS = options.wstap, options.connections, options.jobs, options.formats.split(",")


def records(path):
    """(header, [(timestamp bytes, frame)]) of a little-endian Ethernet pcap."""
    data = open(path, "rb").read()
    out, offset = [], 24
    while offset + 16 <= len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        out.append((data[offset:offset + 8], data[offset + 16:offset + 16 + length]))
        offset += 16 + length
    return data[:24], out


def tcp_fields(frame):
    """(IP header offset, TCP header offset, source port, destination port, flags) of an
    Ethernet IPv4 TCP frame, or None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ip = 14
    tcp = ip + (frame[ip] & 0x0F) * 4
    source, destination = struct.unpack_from("!HH", frame, tcp)
    return ip, tcp, source, destination, frame[tcp + 13]


def open_part(path):
    """The packets of the recording's first connection before its first FIN or RST, and its
    client port."""
    _, packets = records(path)
    client, kept = None, []
    for _, frame in packets:
        fields = tcp_fields(frame)
        if not fields:
            continue
        _, _, source, destination, flags = fields
        if client is None:
            client = source if flags & 0x12 == 0x02 else destination
        if client not in (source, destination):
            continue
        if flags & 0x05:
            break
        kept.append(frame)
    return kept, client


def replay(path, out, count):
    """Writes `count` copies of the recording's open part, each from another client address
    and port, one after the other."""
    header, _ = records(path)
    frames, client = open_part(path)
    with open(out, "wb") as file:
        file.write(header)
        time_us = 1_700_000_000 * 1_000_000
        for copy in range(count):
            port, host = 1024 + copy % 60000, copy // 60000
            for frame in frames:
                ip, tcp, source, destination, _ = tcp_fields(frame)
                packet = bytearray(frame)
                side = 12 if source == client else 16
                packet[ip + side + 2] = 200 + host  # 127.0.0.1 -> 127.0.200+host.1
                struct.pack_into("!H", packet, tcp + (0 if source == client else 2), port)
                time_us += 5
                file.write(struct.pack("<IIII", time_us // 1_000_000, time_us % 1_000_000, len(packet), len(packet)))
                file.write(packet)


def synthetic(out, count, payloads):
    """`count` connections: a handshake, then `payloads` ((from client, bytes), ...), left open."""
    sys.path.insert(0, os.path.join(ROOT, "Tests"))
    sys.argv = sys.argv[:1]
    from hostile import Pcap  # noqa: E402  (its pcap writer)
    pcap = Pcap(out)
    for copy in range(count):
        port, server_port = 1024 + copy % 60000, 8000 + copy // 60000
        pcap.seq = {True: 1000, False: 5000}
        pcap.segment(True, flags=0x02, port=port, server_port=server_port)
        pcap.segment(False, flags=0x12, port=port, server_port=server_port)
        pcap.segment(True, flags=0x10, port=port, server_port=server_port)
        for from_client, payload in payloads:
            pcap.segment(from_client, payload, port=port, server_port=server_port)
    pcap.file.close()


KINDS = [
    ("TCP only (unknown protocol)", lambda out, n: synthetic(out, n, [(True, b"hello, any server\n"), (False, b"hello back\n")]), None),
    ("HTTP/1.1 keep-alive, one exchange", lambda out, n: synthetic(out, n, [
        (True, b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n"),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")]), None),
    ("WebSocket (text-echo)", lambda out, n: replay(os.path.join(ROOT, "captures", "text-echo.pcap"), out, n), None),
    ("permessage-deflate (deflate)", lambda out, n: replay(os.path.join(ROOT, "captures", "deflate.pcap"), out, n), None),
    ("TLS 1.3 with keys (wss-tls13-aes128)", lambda out, n: replay(os.path.join(ROOT, "captures", "wss-tls13-aes128.pcap"), out, n),
     "wss-tls13-aes128.keys"),
    ("HTTP/2 cleartext (h2c)", lambda out, n: replay(os.path.join(ROOT, "captures", "h2c.pcap"), out, n), None),
    ("HTTP/2 over TLS, WebSocket streams (h2-tls-rfc8441)",
     lambda out, n: replay(os.path.join(ROOT, "captures", "h2-tls-rfc8441.pcap"), out, n), "h2-tls-rfc8441.keys"),
]


def peak_rss_mb(capture, form, keys):
    command = [WSTAP, "read", capture, "--format", form, "-o", "/dev/null"]
    if keys:
        command += ["--keylog", os.path.join(ROOT, "captures", keys)]
    if JOBS:
        command += ["--jobs", JOBS]
    tool = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(tool.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 5):
        sys.exit(f"{' '.join(command)}: exit {os.waitstatus_to_exitcode(status)}: {tool.stderr.read().decode()[:300]}")
    return usage.ru_maxrss / 1024


def main():
    print(f"open connections {CONNECTIONS} and {2 * CONNECTIONS}; jobs {JOBS or 'default'}; KB per open connection "
          f"((RSS at 2N - RSS at N) / N)")
    print(f"{'kind':<52}" + "".join(f"{form:>10}" for form in FORMATS) + "   peak MB at 2N")
    with tempfile.TemporaryDirectory() as directory:
        for name, build, keys in KINDS:
            small, large = os.path.join(directory, "n.pcap"), os.path.join(directory, "2n.pcap")
            build(small, CONNECTIONS)
            build(large, 2 * CONNECTIONS)
            costs, peaks = [], []
            for form in FORMATS:
                low, high = peak_rss_mb(small, form, keys), peak_rss_mb(large, form, keys)
                costs.append((high - low) * 1024 / CONNECTIONS)
                peaks.append(high)
            print(f"{name:<52}" + "".join(f"{cost:>10.1f}" for cost in costs) + "   " + " ".join(f"{p:.0f}" for p in peaks))


if __name__ == "__main__":
    main()
