#!/usr/bin/env python3
"""Live capture tests with real peers on loopback (needs root for capturing on lo).

usage: Tests/live.py [WSTAP]
Prints one line per check and "N passed, N failed"; exit 1 on any failure.
"""
import asyncio, base64, hashlib, json, os, pwd, signal, socket, subprocess, sys, threading, time

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

HERE = os.path.dirname(os.path.abspath(__file__))
WSTAP = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", ".build", "release", "wstap")
WORK = f"/tmp/wstap-live-{os.getpid()}"
os.makedirs(WORK, exist_ok=True)
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sniffer:
    """wstap sniff in the background; stdout lines are kept with the time they arrived."""
    def __init__(self, *args):
        self.proc = subprocess.Popen([WSTAP, "sniff", "-i", "lo"] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = []
        ready = self.proc.stderr.readline().decode()
        assert "listening on lo" in ready, ready
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.decode()))

    def stop(self, sig=signal.SIGINT, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        time.sleep(0.1)
        return code

    def events(self):
        return [(t, json.loads(l)) for t, l in self.lines if l.startswith("{")]


def digest(payload):
    data = base64.b64decode(payload["base64"]) if "base64" in payload else payload["text"].encode()
    return hashlib.sha256(data).hexdigest()


async def conversation(port, sent):
    """Text, binary, fragmented and compressed messages, a ping, a close; logs send times."""
    async def echo(ws):
        async for message in ws:
            sent.append(("s2c", 1 if isinstance(message, str) else 2, message, time.monotonic()))
            await ws.send(message)
    async with serve(echo, "127.0.0.1", port):
        async with connect(f"ws://127.0.0.1:{port}/live") as ws:  # permessage-deflate by default
            for message in ["hello live", b"\x00\x01binary\xff", "x" * 5000]:
                sent.append(("c2s", 1 if isinstance(message, str) else 2, message, time.monotonic()))
                await ws.send(message)
                await ws.recv()
            fragments = ["frag-1 ", "frag-2 ", "frag-3"]
            sent.append(("c2s", 1, "".join(fragments), time.monotonic()))
            await ws.send(fragments)
            await ws.recv()
            await (await ws.ping(b"live ping"))
            await ws.close(1000, "live done")


def messages_and_order():
    port = free_port()
    pcap = os.path.join(WORK, "live.pcap")
    sniffer = Sniffer("-f", f"tcp port {port}", "--format", "ndjson", "-w", pcap)
    sent = []
    asyncio.run(conversation(port, sent))
    time.sleep(0.3)
    code = sniffer.stop()
    check("sniff exits 0 on SIGINT", code == 0, f"exit {code}")
    events = sniffer.events()
    got = [(e["dir"], e["opcode"], digest(e["payload"])) for _, e in events if e["event"] == "message"]
    want = [(d, o, hashlib.sha256(m.encode() if isinstance(m, str) else m).hexdigest()) for d, o, m, _ in sent]
    for direction in ("c2s", "s2c"):
        check(f"every {direction} message in order with the right content",
              [g for g in got if g[0] == direction] == [w for w in want if w[0] == direction],
              f"got {len([g for g in got if g[0] == direction])} want {len([w for w in want if w[0] == direction])}")
    frames = [e for _, e in events if e["event"] == "frame"]
    check("compressed frames were decompressed", any(f["rsv"] == 4 for f in frames))
    check("fragmented message reassembled", any(e["event"] == "message" and e["frames"] >= 3 for _, e in events))
    check("ping and pong seen", {"ping", "pong"} <= {f["type"] for f in frames})
    # Latency: each message is printed within 100 ms of being sent.
    arrivals = [(t, (e["dir"], e["opcode"], digest(e["payload"]))) for t, e in events if e["event"] == "message"]
    delays = []
    for d, o, m, sent_at in sent:
        key = (d, o, hashlib.sha256(m.encode() if isinstance(m, str) else m).hexdigest())
        match = next((t for t, k in arrivals if k == key), None)
        delays.append(None if match is None else match - sent_at)
    worst = max((x for x in delays if x is not None), default=None)
    check("every message printed within 100 ms", None not in delays and worst < 0.1, f"delays {delays}")
    summary = events[-1][1] if events else {}
    check("summary carries the capture counters",
          summary.get("event") == "summary" and {"received", "dropped_by_kernel", "dropped_by_interface",
                                                  "dropped_by_wstap"} <= set(summary.get("live", {})))
    # -w: the saved file decodes to the same events.
    offline = subprocess.run([WSTAP, "read", pcap, "--format", "ndjson"], capture_output=True).stdout.decode().splitlines()
    live = [line.rstrip("\n") for _, line in sniffer.lines]
    same = [l for l in offline if '"event":"summary"' not in l] == [l for l in live if '"event":"summary"' not in l]
    check("-w file read back gives the same events as live", same and len(offline) > 10)


def count_and_duration():
    port = free_port()
    sniffer = Sniffer("-f", f"tcp port {port}", "--format", "ndjson", "-c", "3")
    asyncio.run(conversation(port, []))
    code = sniffer.proc.wait(10)
    messages = [e for _, e in sniffer.events() if e["event"] == "message"]
    check("-c 3 stops by itself after 3 messages", code == 0 and len(messages) == 3, f"exit {code}, {len(messages)} messages")
    start = time.monotonic()
    sniffer = Sniffer("-f", "tcp port 1", "--duration", "1", "--format", "summary")
    code = sniffer.proc.wait(10)
    elapsed = time.monotonic() - start
    check("--duration 1 stops after about a second", code == 0 and 0.9 < elapsed < 3, f"{elapsed:.2f} s")


def attach_to_open_connection():
    """Sniffing starts while a connection is already open (its handshake is not captured): with
    --websocket-port, a conversation of one message every 0.5 s shows each message within 1 s;
    without it, one message every 2 s (the next frame cannot confirm the search in time) still
    shows each within 1 s, as the search decides after half a second of quiet, and wstap says once
    how --websocket-port avoids the wait."""
    for label, extra, spacing, count in (("--websocket-port", True, 0.5, 6), ("no port given", False, 2.0, 3)):
        port = free_port()
        sent, sniffers = [], []

        async def run():
            async def echo(ws):
                async for message in ws:
                    await ws.send(message)
            async with serve(echo, "127.0.0.1", port, compression=None):
                async with connect(f"ws://127.0.0.1:{port}/attach", compression=None) as ws:
                    await ws.send("before the capture")
                    await ws.recv()
                    args = ["-f", f"tcp port {port}", "--format", "ndjson"] + (["--websocket-port", str(port)] if extra else [])
                    sniffers.append(Sniffer(*args))
                    for index in range(count):
                        await asyncio.sleep(spacing)
                        text = f"while captured {index}"
                        sent.append((text, time.monotonic()))
                        await ws.send(text)
                        await ws.recv()
                    await asyncio.sleep(0.3)
        asyncio.run(run())
        sniffer = sniffers[0]
        sniffer.stop()
        notes = sniffer.proc.stderr.read().decode()
        events = sniffer.events()
        arrivals = {}
        for t, e in events:
            if e["event"] == "message" and e["dir"] == "c2s" and "text" in (e.get("payload") or {}):
                arrivals.setdefault(e["payload"]["text"], t)
        delays = [None if text not in arrivals else round(arrivals[text] - at, 3) for text, at in sent]
        check(f"attached to an open connection ({label}): every message within 1 s",
              None not in delays and max(delays) < 1.0, f"delays {delays}")
        times = [e["time"] for _, e in events if e["event"] != "summary"]
        check(f"attached to an open connection ({label}): never back in time", times == sorted(times))
        if not extra:
            check("attached without --websocket-port: wstap says once how to avoid the wait",
                  notes.count(f"--websocket-port {port} shows") == 1, notes)


def full_disk():
    """-w on a full device: wstap says so, stops by itself, and exits 4 (tcpdump fails too)."""
    port = free_port()
    sniffer = Sniffer("-f", f"tcp port {port}", "--format", "ndjson", "-w", "/dev/full")
    asyncio.run(conversation(port, []))
    try:
        code = sniffer.proc.wait(10)
    except subprocess.TimeoutExpired:
        code = sniffer.stop()
    errors = sniffer.proc.stderr.read().decode()
    check("-w on a full device stops with exit 4 and says why",
          code == 4 and "cannot write /dev/full: No space left on device" in errors, f"exit {code}: {errors[-300:]}")


def kernel_drops():
    port = free_port()
    sniffer = Sniffer("-f", f"tcp port {port}", "--format", "summary", "-B", "65536")
    server = socket.create_server(("127.0.0.1", port))
    def sink():
        conn, _ = server.accept()
        while conn.recv(1 << 20):
            pass
    threading.Thread(target=sink, daemon=True).start()
    os.kill(sniffer.proc.pid, signal.SIGSTOP)  # the capture thread stops reading: the kernel buffer overflows
    with socket.create_connection(("127.0.0.1", port)) as client:
        for _ in range(2000):
            client.sendall(b"y" * 1400)
    time.sleep(0.2)
    os.kill(sniffer.proc.pid, signal.SIGCONT)
    time.sleep(0.5)
    sniffer.stop()
    text = "".join(line for _, line in sniffer.lines)
    dropped = [line for line in text.splitlines() if line.startswith("packets received by filter")]
    count = int(dropped[0].split("dropped by kernel ")[1].split(",")[0]) if dropped else 0
    check("kernel drops are counted in the summary", count > 0, text[-300:])
    server.close()


def privilege_drop():
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        check("--user drops root (no user 'nobody' here)", False)
        return
    sniffer = Sniffer("-f", "tcp port 1", "--format", "summary", "--user", "nobody")
    time.sleep(0.3)
    status = open(f"/proc/{sniffer.proc.pid}/status").read()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    sniffer.stop()
    check("--user nobody drops root after opening the device", all(u == str(pwd.getpwnam("nobody").pw_uid) for u in uids), str(uids))


def write_file_safely():
    """-w with -Z: the file is opened as the dropped user, and a symbolic link at its path is
    never followed (one planted by that user must not make root overwrite its target)."""
    import tempfile
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o777)
        target = os.path.join(directory, "root-only")
        with open(target, "w") as file:
            file.write("keep")
        os.chmod(target, 0o600)
        planted = os.path.join(directory, "out.pcap")
        os.symlink(target, planted)
        proc = subprocess.run([WSTAP, "sniff", "-i", "lo", "-f", "tcp port 1", "--duration", "1", "-w", planted],
                              capture_output=True, timeout=20)
        check("-w does not follow a symbolic link", proc.returncode == 2 and open(target).read() == "keep",
              f"exit {proc.returncode}: {proc.stderr.decode().strip()[:200]}")
        own = os.path.join(directory, "own.pcap")
        proc = subprocess.run([WSTAP, "sniff", "-i", "lo", "-f", "tcp port 1", "--duration", "1", "-Z", "nobody", "-w", own],
                              capture_output=True, timeout=20)
        owner = os.stat(own).st_uid if os.path.exists(own) else None
        check("-w after -Z is created by the dropped user", proc.returncode == 0 and owner == pwd.getpwnam("nobody").pw_uid,
              f"exit {proc.returncode}, owner {owner}: {proc.stderr.decode().strip()[:200]}")


def live_wss():
    """wss:// sniffed with --keylog while the client is still writing the key log (TLS 1.3, then
    TLS 1.2): every message decrypted, both ways, with the right content."""
    import ssl
    cert, key = os.path.join(WORK, "cert.pem"), os.path.join(WORK, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=wstap.test"], check=True, capture_output=True)
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        name = "TLS 1.3" if version == ssl.TLSVersion.TLSv1_3 else "TLS 1.2"
        keys = os.path.join(WORK, f"keys-{version.name}.log")
        open(keys, "w").close()  # empty: the client writes its secrets while wstap runs
        port = free_port()
        sniffer = Sniffer("-f", f"tcp port {port}", "--format", "ndjson", "--keylog", keys)
        sent = []

        async def run():
            server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server.load_cert_chain(cert, key)
            client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
            for context in (server, client):
                context.minimum_version = context.maximum_version = version
            client.keylog_filename = keys

            async def echo(ws):
                async for message in ws:
                    sent.append(("s2c", message))
                    await ws.send(message)
            async with serve(echo, "127.0.0.1", port, ssl=server):
                async with connect(f"wss://127.0.0.1:{port}/live", ssl=client, server_hostname="wstap.test") as ws:
                    for message in ["secret one", b"\x00secret binary\xff" * 50, "secret " * 1000]:
                        sent.append(("c2s", message))
                        await ws.send(message)
                        await ws.recv()
        asyncio.run(run())
        time.sleep(0.3)
        sniffer.stop()
        events = [e for _, e in sniffer.events()]
        got = [(e["dir"], digest(e["payload"])) for e in events if e["event"] == "message"]
        want = [(d, hashlib.sha256(m.encode() if isinstance(m, str) else m).hexdigest()) for d, m in sent]
        session = next((e["tls"] for e in events if e["event"] == "tls"), {})
        check(f"live wss {name}: decrypted while the key log was written, every message both ways",
              got == want and session.get("decrypted") and session.get("version") == name,
              f"session {session}, {len(got)} of {len(want)} messages")


for test in (messages_and_order, live_wss, attach_to_open_connection, count_and_duration, full_disk, kernel_drops, privilege_drop,
             write_file_safely):
    try:
        test()
    except Exception as error:  # a crash of one check is a failure, not the end of the run
        check(test.__name__, False, f"{type(error).__name__}: {error}")
passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed")
sys.exit(0 if all(results) else 1)
