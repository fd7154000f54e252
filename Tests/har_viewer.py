#!/usr/bin/env python3
"""The HAR export opens in a third-party HAR reader (issue 16, item 6).

usage: har_viewer.py WSTAP [CAPTURES_DIR]

Every capture in captures/ (with its key log) exported with `--format har` is read by haralyzer
(PyPI, the HAR parser behind several HAR viewers): the log parses as HAR 1.2, every entry's
start time, URL, status, timings and headers read back, and the WebSocket entries keep their
messages.
"""
import json, os, re, subprocess, sys

from haralyzer import HarEntry, HarParser

WSTAP = sys.argv[1]
CAPTURES = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "captures")
failures = entries = messages = 0
for name in sorted(n for n in os.listdir(CAPTURES) if n.endswith((".pcap", ".pcapng"))):
    capture = os.path.join(CAPTURES, name)
    keys = re.sub(r"\.pcap(ng)?$", ".keys", capture)
    args = [WSTAP, "read", capture, "--format", "har"] + (["--keylog", keys] if os.path.exists(keys) else [])
    try:
        parser = HarParser(json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout))
        assert parser.version == "1.2" and parser.creator["name"] == "wstap"
        for raw in parser.har_data["entries"]:
            entry = HarEntry(raw)
            assert entry.startTime is not None and entry.request.url and entry.request.method
            assert isinstance(entry.response.status, int) and entry.time >= 0
            assert all("name" in h and "value" in h for h in entry.request.headers + entry.response.headers)
            entries += 1
            if raw.get("_resourceType") == "websocket":
                # A 101 on HTTP/1.1 (also inside an HTTP/2 stream's CONNECT tunnel); a 2xx answering
                # an extended CONNECT on an HTTP/2 stream.
                switched = entry.response.status == 101 if "_stream" not in raw or raw["request"]["httpVersion"] == "HTTP/1.1" else \
                    200 <= entry.response.status < 300 and entry.request.method == "CONNECT"
                assert entry.request.url.startswith(("ws://", "wss://")) and switched
                messages += len(raw["_webSocketMessages"])
    except Exception as error:  # a HAR a viewer cannot read
        failures += 1
        print(f"FAIL {name}: {type(error).__name__}: {error}")
print(f"{entries} HAR entries read back by haralyzer ({messages} WebSocket messages), {failures} failed")
sys.exit(1 if failures or entries == 0 else 0)
