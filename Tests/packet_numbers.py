#!/usr/bin/env python3
"""Packet numbers are Wireshark's frame numbers (issue 16, item 2).

usage: packet_numbers.py WSTAP [CAPTURES_DIR]

For every capture in captures/ that tshark decodes as WebSocket (the server port given to it as
HTTP, the key log for wss://), the (frame number, opcode) of every WebSocket frame tshark shows
must equal the ("packet", opcode) of every frame event wstap writes, in order; and with a BPF
filter that drops packets, the numbers must not change (they count the packets left out).
Needs tshark (make bench installs it); skipped with a message when it is missing.
"""
import json, os, re, shutil, subprocess, sys

WSTAP = sys.argv[1]
CAPTURES = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "captures")


def wstap_frames(capture, keys, *extra):
    """(packet, opcode) of every frame, the server ports, each frame's client port, and whether a
    CONNECT opened a tunnel (the proxy's port then speaks HTTP to tshark)."""
    args = [WSTAP, "read", capture, "--format", "ndjson", *extra] + (["--keylog", keys] if keys else [])
    events = [json.loads(line) for line in subprocess.run(args, capture_output=True, text=True).stdout.splitlines()]
    opened = {e["connection"]: e for e in events if e.get("event") == "connection_open"}
    ports = {e["server"]["port"] for e in opened.values()}
    frames = [e for e in events if e.get("event") == "frame"]
    tunnels = any(e.get("event") == "http_request" and e.get("method") == "CONNECT" for e in events)
    return [(e["packet"], e["opcode"]) for e in frames], ports, [opened[e["connection"]]["client"]["port"] for e in frames], tunnels


def tshark_frames(capture, keys, ports, tunnels=False):
    """(frame, opcode) of every WebSocket frame tshark shows, and the client ports it shows them on."""
    args = ["tshark", "-r", capture, "-Y", "websocket", "-T", "fields", "-e", "frame.number", "-e", "websocket.opcode",
            "-e", "tcp.srcport", "-e", "tcp.dstport"]
    for port in sorted(ports):
        args += ["-d", f"tcp.port=={port},{'tls' if keys and not tunnels else 'http'}"]
    if keys:
        args += ["-o", f"tls.keylog_file:{keys}"]
    frames, clients = [], set()
    for line in subprocess.run(args, capture_output=True, text=True).stdout.splitlines():
        number, opcodes, source, destination = line.split("\t")
        frames += [(int(number), int(opcode)) for opcode in opcodes.split(",") if opcode]
        clients.add(int(destination) if int(source) in ports else int(source))
    return frames, clients


def main():
    if not shutil.which("tshark"):
        print("tshark not installed: packet numbers not compared (apt-get install tshark)")
        return 0
    failures = compared = filtered_compared = 0
    for name in sorted(n for n in os.listdir(CAPTURES) if n.endswith((".pcap", ".pcapng"))):
        capture = os.path.join(CAPTURES, name)
        keys = re.sub(r"\.pcap(ng)?$", ".keys", capture)
        keys = keys if os.path.exists(keys) else None
        ours, ports, clients, tunnels = wstap_frames(capture, keys)
        if not ours:
            continue
        theirs, their_clients = tshark_frames(capture, keys, ports, tunnels)
        if not theirs:
            print(f"skip {name}: tshark decodes no WebSocket frame here")
            continue
        if tunnels:
            # tshark follows a CONNECT tunnel into TLS only: frames of connections it shows none of are left out.
            kept = [frame for frame, client in zip(ours, clients) if client in their_clients]
            print(f"{name}: {len(ours) - len(kept)} frames on tunnels tshark does not follow (a plain WebSocket inside CONNECT) not compared")
            ours = kept
        compared += 1
        if ours != theirs:
            failures += 1
            first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            print(f"FAIL {name}: frame {first}: wstap {ours[first:first + 3]} tshark {theirs[first:first + 3]} "
                  f"({len(ours)} vs {len(theirs)} frames)")
        # Dropping the segments without payload (pure ACKs) by BPF leaves every frame, at its number.
        filtered = wstap_frames(capture, keys, "tcp and ((ip[2:2] - ((ip[0]&0xf)<<2) - ((tcp[12]&0xf0)>>2)) != 0 "
                                                  "or tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0)")[0]
        if tunnels:
            filtered = [frame for frame in filtered if frame in ours]
        if filtered:
            filtered_compared += 1
            if filtered != ours:
                failures += 1
                print(f"FAIL {name}: with a BPF filter the numbers change: {filtered[:3]} vs {ours[:3]}")
    print(f"{compared} captures compared with tshark ({filtered_compared} also through a BPF filter), {failures} failed")
    return 1 if failures or compared == 0 or filtered_compared == 0 else 0


sys.exit(main())
