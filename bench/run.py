#!/usr/bin/env python3
"""wstap's benchmark: wstap side by side with tshark and the tcpdump copy floor.

usage: bench/run.py [--runs N] [--tshark-runs N] [--work DIR] [--chat-mb 200] [--bulk-mb 200]
                    [--mixed-mb 150] [--live-seconds 5] [--live-rate 100000] [--skip-live] [--skip-memory]
                    [--ring-part-mb 20] [--multi-file-only] [--jobs-only]

1. Generates the captures with bench/generate.py (deterministic, cached in --work, never committed).
2. Times, on each capture: wstap --jobs 1 --format summary / json / ndjson / text and JSON with the
   default jobs (one per processor) (output to /dev/null), tshark
   decoding WebSocket (-d tcp.port==8080,http, websocket fields) and tcpdump -r F -w /dev/null
   (the floor). Medians of several runs; peak RSS of each process from wait4.
3. Checks that wstap's frame and message counts equal tshark's on every capture.
4. Live: wstap sniff -i lo --format ndjson while a sender pushes small messages at --live-rate
   per second; reports the kernel drop count and the messages decoded.
5. Memory: Tests/memory.py (a 4 GB capture streamed through wstap read -).
7. --jobs: the scaling table (1, 2 and, where there are the cores, 4 and 8 jobs) in every format,
   each output compared byte for byte with --jobs 1's (--jobs-only runs just this).
6. Many files: the chat capture cut into a ring-buffer set (files of --ring-part-mb, as tcpdump -C
   would) read as a directory: its NDJSON must be byte-identical to the whole file's, and both
   are timed (--multi-file-only runs just this).
"""
import argparse, os, re, shlex, signal, socket, statistics, struct, subprocess, sys, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WSTAP = os.path.join(ROOT, ".build", "release", "wstap")
WORK = "/tmp/wstap-bench"
# wstap's default --jobs: one per processor, at most 8.
DEFAULT_JOBS = min(8, os.cpu_count() or 1)


def timed(command, stdout_path=os.devnull):
    """Runs a command; returns (wall seconds, peak RSS MiB, exit status). Peak RSS comes from
    /usr/bin/time: a child's own ru_maxrss would include the memory of this Python process."""
    report = os.path.join(WORK, "time.txt")
    with open(stdout_path, "wb") as out:
        start = time.monotonic()
        code = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report] + command, stdout=out,
                              stderr=subprocess.DEVNULL).returncode
        wall = time.monotonic() - start
    peak_kb = int(open(report).read().strip().splitlines()[-1])
    return wall, peak_kb / 1024, code


def median_run(command, runs, stdout_path=os.devnull):
    results = [timed(command, stdout_path) for _ in range(runs)]
    if any(code != 0 for _, _, code in results):
        raise SystemExit(f"failed: {' '.join(command)} (exit {[c for _, _, c in results]})")
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def wstap_counts(path):
    """Packets, frames and data messages from wstap's summary (the last NDJSON line, streamed)."""
    import json
    process = subprocess.Popen([WSTAP, "read", path, "--format", "ndjson", "--max-payload", "0"], stdout=subprocess.PIPE)
    last = b""
    for line in process.stdout:
        last = line
    process.wait()
    summary = json.loads(last)
    frames = sum(summary["frames"].values())
    messages = sum(summary["messages"].values())
    return summary["packets"], frames, messages


def tshark_counts(fields_file):
    """Frames (every opcode) and data messages (final text/binary/continuation frames)."""
    frames = messages = 0
    with open(fields_file) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or not parts[0]:
                continue
            opcodes, fins = parts[0].split(","), parts[1].split(",")
            for opcode, fin in zip(opcodes, fins):
                frames += 1
                if int(opcode, 0) in (0, 1, 2) and fin in ("1", "True", "true"):
                    messages += 1
    return frames, messages


def generate(kind, size_mb, work):
    path = os.path.join(work, f"{kind}-{size_mb}mb.pcap")
    if not os.path.exists(path):
        print(f"generating {path} ...", flush=True)
        subprocess.run([sys.executable, os.path.join(HERE, "generate.py"), kind, str(size_mb), "--out", path + ".tmp"], check=True)
        os.rename(path + ".tmp", path)
    return path


def fmt(value, unit=""):
    if value >= 1e6:
        return f"{value / 1e6:.2f}M{unit}"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k{unit}"
    return f"{value:.1f}{unit}"


def bench_capture(kind, path, args):
    size_mb = os.path.getsize(path) / 1e6
    packets, frames, messages = wstap_counts(path)
    fields = path + ".tshark.txt"
    rows = []
    commands = [
        ("wstap summary", [WSTAP, "read", path, "--jobs", "1", "--format", "summary"], args.runs, os.devnull),
        ("wstap json", [WSTAP, "read", path, "--jobs", "1", "--format", "json"], args.runs, os.devnull),
        ("wstap ndjson", [WSTAP, "read", path, "--jobs", "1", "--format", "ndjson"], args.runs, os.devnull),
        ("wstap text", [WSTAP, "read", path, "--jobs", "1"], args.runs, os.devnull),
    ] + ([
        (f"wstap json -j{DEFAULT_JOBS}", [WSTAP, "read", path, "--jobs", str(DEFAULT_JOBS), "--format", "json"], args.runs, os.devnull)
    ] if DEFAULT_JOBS > 1 else []) + [
        ("tshark", ["tshark", "-r", path, "-d", "tcp.port==8080,http", "-T", "fields", "-e", "websocket.opcode",
                    "-e", "websocket.fin", "-e", "websocket.payload_length", "-e", "websocket.mask"], args.tshark_runs, fields),
        ("tcpdump floor", ["tcpdump", "-r", path, "-w", "/dev/null"], args.runs, os.devnull),
    ]
    for name, command, runs, out in commands:
        wall, rss = median_run(command, runs, out)
        rows.append((name, wall, rss))
    tshark_frames, tshark_messages = tshark_counts(fields)
    os.remove(fields)
    counts_ok = (frames, messages) == (tshark_frames, tshark_messages)
    by_name = {name: wall for name, wall, _ in rows}
    print(f"\n{kind}: {size_mb:.0f} MB, {packets} packets, {frames} frames, {messages} messages")
    print(f"  counts: wstap frames {frames} messages {messages} | tshark frames {tshark_frames} messages {tshark_messages} -> "
          + ("equal" if counts_ok else "MISMATCH"))
    print(f"  {'tool':<15} {'wall s':>8} {'packets/s':>10} {'MB/s':>9} {'frames/s':>10} {'peak MB':>8} {'x tshark':>9} {'/ floor':>8}")
    for name, wall, rss in rows:
        vs_tshark = by_name["tshark"] / wall
        vs_floor = wall / by_name["tcpdump floor"]
        print(f"  {name:<15} {wall:>8.3f} {fmt(packets / wall):>10} {size_mb / wall:>9.1f} {fmt(frames / wall):>10} "
              f"{rss:>8.1f} {vs_tshark:>8.1f}x {vs_floor:>7.2f}x")
    return counts_ok, {name: (wall, rss) for name, wall, rss in rows}


def split_into_ring(path, directory, part_mb):
    """Cuts a classic pcap into files of about `part_mb` MB, as tcpdump -C would (names in time order)."""
    os.makedirs(directory, exist_ok=True)
    for old in os.listdir(directory):
        os.remove(os.path.join(directory, old))
    with open(path, "rb") as capture:
        header = capture.read(24)
        part, out, written = 0, None, 0
        while record := capture.read(16):
            length = struct.unpack("<I", record[8:12])[0]
            if out is None or written >= part_mb * 1_000_000:
                if out:
                    out.close()
                out = open(os.path.join(directory, f"ring.pcap{part}"), "wb")
                out.write(header)
                part, written = part + 1, 24
            out.write(record + capture.read(length))
            written += 16 + length
        out.close()
    return part


def bench_multi_file(kind, path, args):
    """The same capture as one file and as a ring-buffer directory: the outputs must be equal
    (connections continue across files), and the time is what reading the set costs."""
    ring = os.path.join(args.work, f"{kind}-ring")
    parts = split_into_ring(path, ring, args.ring_part_mb)
    whole_out, ring_out = os.path.join(args.work, "whole.ndjson"), os.path.join(args.work, "ring.ndjson")
    rows = []
    for name, source in (("one file", path), (f"{parts} files", ring)):
        for fmt_name in ("summary", "ndjson"):
            wall, rss = median_run([WSTAP, "read", source, "--format", fmt_name], args.runs)
            rows.append((f"{name} {fmt_name}", wall, rss))
    subprocess.run([WSTAP, "read", path, "--format", "ndjson"], stdout=open(whole_out, "wb"), check=True)
    subprocess.run([WSTAP, "read", ring, "--format", "ndjson"], stdout=open(ring_out, "wb"), check=True)
    equal = subprocess.run(["cmp", "-s", whole_out, ring_out]).returncode == 0
    os.remove(whole_out)
    os.remove(ring_out)
    print(f"\n{kind} as a ring-buffer set ({parts} files of about {args.ring_part_mb} MB in {ring}):")
    print(f"  NDJSON of the set vs the whole file: " + ("byte-identical" if equal else "DIFFERENT"))
    for name, wall, rss in rows:
        print(f"  {name:<20} {wall:>8.3f} s {rss:>8.1f} MB")
    return equal


def bench_jobs(kind, path, args):
    """The scaling table: each format with 1, 2 (and, where the machine has them, 4 and 8) jobs,
    and every --jobs output compared byte for byte with --jobs 1's."""
    counts = [1, 2] + [n for n in (4, 8) if n <= (os.cpu_count() or 1)]
    formats = ("summary", "json", "ndjson", "text", "ndjson|")
    print(f"\n{kind}: --jobs scaling (wall s, median of {args.runs}; speedup over --jobs 1; "
          "ndjson| is NDJSON read through a pipe by cat, the others are written to /dev/null)")
    print(f"  {'format':<8} " + " ".join(f"{'jobs ' + str(n):>16}" for n in counts) + "  output")
    equal_all, speedups = True, {}
    for fmt_name in formats:
        walls, equal = [], True
        reference = os.path.join(args.work, "jobs1.out")
        for jobs in counts:
            command = [WSTAP, "read", path, "--jobs", str(jobs)] + ([] if fmt_name == "text" else ["--format", fmt_name.rstrip("|")])
            if fmt_name.endswith("|"):
                wall, _ = median_run(["sh", "-c", shlex.join(command) + " | cat > /dev/null"], args.runs)
            else:
                wall, _ = median_run(command, args.runs)
            walls.append(wall)
            out = os.path.join(args.work, f"jobs{jobs}.out")
            with open(out, "wb") as handle:
                subprocess.run(command, stdout=handle, check=True)
            if jobs > 1:
                equal = equal and subprocess.run(["cmp", "-s", reference, out]).returncode == 0
                os.remove(out)
        os.remove(reference)
        equal_all = equal_all and equal
        cells = " ".join(f"{wall:>8.3f} {walls[0] / wall:>6.2f}x" for wall in walls)
        print(f"  {fmt_name:<8} {cells}  {'identical' if equal else 'DIFFERENT'}")
        speedups[fmt_name] = walls[0] / walls[1]
    return equal_all, speedups


def live_benchmark(seconds, rate):
    """Small messages over loopback at `rate` per second (bench/loadgen.c, one frame per send)
    while wstap sniff decodes them with NDJSON output to /dev/null."""
    loadgen = os.path.join(WORK, "loadgen")
    subprocess.run(["cc", "-O2", "-o", loadgen, os.path.join(HERE, "loadgen.c")], check=True)
    port = 18999
    sniffer = subprocess.Popen([WSTAP, "sniff", "-i", "lo", "-f", f"tcp port {port}", "--format", "ndjson"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sniffer.stderr.readline()
    sent, elapsed = subprocess.run([loadgen, str(port), str(rate), str(seconds)], capture_output=True,
                                   text=True, check=True).stdout.split()
    time.sleep(0.5)
    sniffer.send_signal(signal.SIGINT)
    counters = sniffer.stderr.read().decode().strip()
    sniffer.wait(30)
    sent = int(sent)
    numbers = dict((name, int(value)) for value, name in re.findall(r"(\d+) (dropped by kernel|messages decoded)", counters))
    print(f"\nlive: {sent} messages in {float(elapsed):.1f} s ({sent / float(elapsed):,.0f}/s) over loopback, one frame per send")
    print(f"  wstap sniff -i lo --format ndjson > /dev/null: {counters.replace('wstap: ', '')}")
    return numbers.get("dropped by kernel") == 0 and numbers.get("messages decoded") == sent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tshark-runs", type=int, default=3)
    parser.add_argument("--work", default="/tmp/wstap-bench")
    parser.add_argument("--chat-mb", type=int, default=200)
    parser.add_argument("--bulk-mb", type=int, default=200)
    parser.add_argument("--mixed-mb", type=int, default=150)
    parser.add_argument("--live-seconds", type=float, default=5)
    parser.add_argument("--live-rate", type=int, default=100_000)
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--ring-part-mb", type=int, default=20)
    parser.add_argument("--multi-file-only", action="store_true", help="only the ring-buffer case, on the chat capture")
    parser.add_argument("--jobs-only", action="store_true", help="only the --jobs scaling table, on every capture")
    args = parser.parse_args()
    global WORK
    WORK = args.work
    os.makedirs(args.work, exist_ok=True)
    version = subprocess.run(["tshark", "--version"], capture_output=True).stdout.decode().splitlines()[0]
    print(f"wstap benchmark: {os.cpu_count()} cores; {version}; medians of {args.runs} runs ({args.tshark_runs} for tshark)")
    if args.multi_file_only:
        sys.exit(0 if bench_multi_file("chat", generate("chat", args.chat_mb, args.work), args) else 1)
    captures = [("chat", generate("chat", args.chat_mb, args.work)), ("bulk", generate("bulk", args.bulk_mb, args.work)),
                ("mixed", generate("mixed", args.mixed_mb, args.work))]
    if args.jobs_only:
        sys.exit(0 if all([bench_jobs(kind, path, args)[0] for kind, path in captures]) else 1)
    results = {kind: bench_capture(kind, path, args) for kind, path in captures}
    ok = all(counts_ok for counts_ok, _ in results.values())
    ok = bench_multi_file("chat", captures[0][1], args) and ok
    speedups = {}
    for kind, path in captures:
        equal, speedups[kind] = bench_jobs(kind, path, args)
        ok = equal and ok
    live_ok = None
    if not args.skip_live:
        live_ok = live_benchmark(args.live_seconds, args.live_rate)
        ok = live_ok and ok
    if not args.skip_memory:
        print("\nmemory:")
        memory = subprocess.run([sys.executable, os.path.join(ROOT, "Tests", "memory.py"), WSTAP], capture_output=True, text=True)
        print("  " + memory.stdout.strip().replace("\n", "\n  "))
        ok = ok and memory.returncode == 0
    print_targets({kind: rows for kind, (_, rows) in results.items()}, speedups, live_ok)
    print("\nall counts equal and checks passed" if ok else "\nSOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


def print_targets(rows, speedups, live_ok):
    """The targets of issue 17 against this run (they do not decide the exit status: counts and
    byte-identical --jobs outputs do)."""
    def ratio(kind, tool):
        return rows[kind]["tshark"][0] / rows[kind][tool][0]

    def floor(kind, tool):
        return rows[kind][tool][0] / rows[kind]["tcpdump floor"][0]
    checks = [(f"summary on {kind} within 1.5x of the copy floor", floor(kind, "wstap summary") <= 1.5,
               f"{floor(kind, 'wstap summary'):.2f}x") for kind in ("bulk", "mixed")]
    checks.append(("summary on chat >= 50x tshark", ratio("chat", "wstap summary") >= 50, f"{ratio('chat', 'wstap summary'):.1f}x"))
    checks.append(("JSON on chat >= 25x tshark", ratio("chat", "wstap json") >= 25, f"{ratio('chat', 'wstap json'):.1f}x"))
    checks.append(("JSON on bulk within 4x of the copy floor", floor("bulk", "wstap json") <= 4, f"{floor('bulk', 'wstap json'):.2f}x"))
    if DEFAULT_JOBS > 1:
        jobs_json = f"wstap json -j{DEFAULT_JOBS}"
        checks.append((f"JSON on chat with {DEFAULT_JOBS} jobs >= 35x tshark", ratio("chat", jobs_json) >= 35, f"{ratio('chat', jobs_json):.1f}x"))
        for kind, by_format in speedups.items():
            worst = min(by_format, key=by_format.get)
            checks.append((f"--jobs 2 >= 1.7x --jobs 1 in every format on {kind}", by_format[worst] >= 1.7,
                           ", ".join(f"{name} {value:.2f}x" for name, value in by_format.items())))
    peak = max(rows[kind][tool][1] for kind in rows for tool in ("wstap summary", "wstap ndjson"))
    checks.append(("peak RSS <= 100 MB per job in summary and NDJSON (these captures)", peak <= 100, f"{peak:.1f} MB"))
    if live_ok is not None:
        checks.append(("0 kernel drops at the live rate, every message decoded", live_ok, "yes" if live_ok else "no"))
    print("\ntargets (issue 17):")
    for name, met, value in checks:
        print(f"  {'met    ' if met else 'NOT met'}  {name}: {value}")


if __name__ == "__main__":
    main()
