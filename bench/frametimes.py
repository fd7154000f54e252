#!/usr/bin/env python3
"""frametimes.py WSTAP CAPTURE...: each WebSocket frame's time from wstap (NDJSON) against
tshark's (the packet it shows the frame in), per connection and direction, in order.

tshark reassembles out-of-order segments here, as wstap does. "OK" when both show the same
frames at the same times; otherwise the counts say which decoded more and how many of tshark's
frames have wstap's time (wstap also decodes mid-stream connections and frames beside a gap,
which tshark does not show). Needs tshark; not part of `make test`."""
import collections, json, subprocess, sys

wstap, captures = sys.argv[1], sys.argv[2:]
bad = 0
for capture in captures:
    shark = collections.defaultdict(list)
    out = subprocess.run(["tshark", "-r", capture, "-Y", "websocket", "-o", "tcp.analyze_sequence_numbers:TRUE", "-o", "tcp.reassemble_out_of_order:TRUE",
                          "-T", "fields", "-E", "separator=|", "-e", "frame.time_epoch", "-e", "tcp.srcport",
                          "-e", "tcp.dstport", "-e", "websocket.opcode"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        epoch, sport, dport, opcodes = line.split("|")
        for _ in opcodes.split(","):
            shark[(sport, dport)].append(round(float(epoch), 6))
    ours = collections.defaultdict(list)
    ports = {}
    for line in subprocess.run([wstap, "read", capture, "--format", "ndjson"], capture_output=True, text=True).stdout.splitlines():
        event = json.loads(line)
        if event["event"] == "connection_open":
            ports[event["connection"]] = (str(event["client"]["port"]), str(event["server"]["port"]))
        if event["event"] == "frame":
            client, server = ports[event["connection"]]
            key = (client, server) if event["dir"] == "c2s" else (server, client)
            ours[key].append(round(float(event["time"]), 6))
    same = sum(a == b for key in shark for a, b in zip(shark[key], ours.get(key, [])))
    total = sum(len(v) for v in shark.values())
    mine = sum(len(v) for v in ours.values())
    status = "OK " if same == total == mine else "DIFF"
    bad += status != "OK "
    print(f"{status} {capture.split('/')[-1]}: tshark {total} frames, wstap {mine}, same time {same}")
sys.exit(1 if bad else 0)
