#!/usr/bin/env python3
"""Interleaved ratios: issue 32's table, measured so that it holds on a shared machine.

usage: bench/interleaved.py [--quick] [--rounds N] [--chat-mb N] [--mixed-mb N] [--work DIR]
                            [--wstap PATH] [--baseline PATH]

Every round runs every command once, in an order rotated by one each round; each ratio is taken
between two commands of the same round, and the table shows each ratio's median over the rounds
with its spread (min-max). Rows timed minutes apart move 30-40% on this 2-core machine; ratios
within a round held within 10%.

Commands (wall time, output to /dev/null unless said):
  tshark      tshark decoding the chat capture's WebSockets (-d tcp.port==8080,http, WebSocket fields)
  summary     wstap read CHAT --jobs 1 --format summary
  json1/json2 wstap read CHAT --format json --jobs 1 / --jobs 2
  pipe1/pipe2 wstap read CHAT --format ndjson --jobs 1 / 2, through a pipe (| cat > /dev/null)
  floor       tcpdump -r MIXED -w /dev/null (the copy floor)
  msummary, mjson  wstap read MIXED --jobs 1 --format summary / json

--quick: 20 MB chat, 40 MB mixed, 5 rounds (under 3 minutes here): for A/B checks of a change.
--baseline PATH: also runs another wstap binary's json1 and pipe1 in the same rounds and prints
the ratio new/old (an interleaved A/B).
Every --jobs 2 output is compared byte for byte with --jobs 1's once before timing.
"""
import argparse, os, shlex, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Issue 32's targets: (row, how the ratio is made, target text, check).
TARGETS = [
    ("chat summary vs tshark's WebSocket decode", ("tshark", "summary"), "keep ≥ 60×", lambda r: r >= 60),
    ("chat JSON, 1 job, vs tshark", ("tshark", "json1"), "≥ 28×", lambda r: r >= 28),
    ("chat NDJSON through a pipe, 1 job, vs tshark", ("tshark", "pipe1"), "≥ 22×", lambda r: r >= 22),
    ("chat JSON, 2 jobs vs 1", ("json1", "json2"), "≥ 1.6×", lambda r: r >= 1.6),
    ("chat NDJSON through a pipe, 2 jobs vs 1", ("pipe1", "pipe2"), "≥ 1.8×", lambda r: r >= 1.8),
    ("mixed summary / tcpdump copy floor", ("msummary", "floor"), "keep ≤ 1.0×", lambda r: r <= 1.0),
    ("mixed JSON / floor", ("mjson", "floor"), "≤ 3×", lambda r: r <= 3),
]


def generate(kind, size_mb, work):
    path = os.path.join(work, f"{kind}-{size_mb}.pcap")
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(HERE, "generate.py"), kind, str(size_mb), "--out", path + ".tmp"], check=True)
        os.rename(path + ".tmp", path)
    return path


def commands(wstap, chat, mixed, baseline):
    def read(path, *extra):
        return [wstap, "read", path, *extra]
    pipe = lambda binary, jobs: ["sh", "-c", f"{shlex.quote(binary)} read {shlex.quote(chat)} --format ndjson --jobs {jobs} | cat > /dev/null"]
    table = {
        "tshark": ["tshark", "-r", chat, "-d", "tcp.port==8080,http", "-T", "fields", "-e", "websocket.opcode",
                   "-e", "websocket.fin", "-e", "websocket.payload_length", "-e", "websocket.mask"],
        "summary": read(chat, "--jobs", "1", "--format", "summary"),
        "json1": read(chat, "--jobs", "1", "--format", "json"),
        "json2": read(chat, "--jobs", "2", "--format", "json"),
        "pipe1": pipe(wstap, 1),
        "pipe2": pipe(wstap, 2),
        "floor": ["tcpdump", "-r", mixed, "-w", "/dev/null"],
        "msummary": read(mixed, "--jobs", "1", "--format", "summary"),
        "mjson": read(mixed, "--jobs", "1", "--format", "json"),
    }
    if baseline:
        table["old-json1"] = [baseline, "read", chat, "--jobs", "1", "--format", "json"]
        table["old-pipe1"] = pipe(baseline, 1)
    return table


def run(command):
    start = time.monotonic()
    code = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    if code != 0:
        raise SystemExit(f"failed (exit {code}): {' '.join(command)}")
    return time.monotonic() - start


def same_output(wstap, path, format):
    outputs = []
    for jobs in ("1", "2"):
        outputs.append(subprocess.run([wstap, "read", path, "--format", format, "--jobs", jobs], capture_output=True).stdout)
    return outputs[0] == outputs[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--chat-mb", type=int)
    parser.add_argument("--mixed-mb", type=int)
    parser.add_argument("--work", default="/tmp/wstap-bench")
    parser.add_argument("--wstap", default=os.path.join(ROOT, ".build", "release", "wstap"))
    parser.add_argument("--baseline")
    args = parser.parse_args()
    rounds = args.rounds or 5
    chat_mb = args.chat_mb or (20 if args.quick else 94)
    mixed_mb = args.mixed_mb or (40 if args.quick else 376)
    os.makedirs(args.work, exist_ok=True)
    for tool in ("tshark", "tcpdump"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            raise SystemExit(f"{tool} is needed (apt-get install {tool})")
    chat = generate("chat", chat_mb, args.work)
    mixed = generate("mixed", mixed_mb, args.work)
    table = commands(args.wstap, chat, mixed, args.baseline)
    for format in ("json", "ndjson"):
        if not same_output(args.wstap, chat, format):
            raise SystemExit(f"--jobs 2 {format} output differs from --jobs 1's on {chat}")
    print(f"chat {os.path.getsize(chat) / 1e6:.0f} MB, mixed {os.path.getsize(mixed) / 1e6:.0f} MB; "
          f"{rounds} rounds of {len(table)} commands, rotated; --jobs 2 outputs equal --jobs 1's")
    names = list(table)
    times = {name: [] for name in names}
    for round_index in range(rounds):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            times[name].append(run(table[name]))
        print(f"  round {round_index + 1}: " + ", ".join(f"{name} {times[name][-1]:.2f}s" for name in names), flush=True)

    def ratio(top, bottom):
        values = [a / b for a, b in zip(times[top], times[bottom])]
        return statistics.median(values), min(values), max(values)

    print()
    print(f"{'row':<48} {'median':>8} {'min-max':>15}  target       met")
    for row, (top, bottom), target, check in TARGETS:
        median, low, high = ratio(top, bottom)
        print(f"{row:<48} {median:>7.2f}× {low:>6.2f}-{high:<6.2f}×  {target:<12} {'yes' if check(median) else 'NO'}")
    if args.baseline:
        for name in ("json1", "pipe1"):
            median, low, high = ratio(name, "old-" + name)
            print(f"{'A/B ' + name + ': this wstap / baseline (lower is faster)':<48} {median:>7.3f}× {low:>6.3f}-{high:<6.3f}×")
    print(f"{'Spark recipe vs xargs -P2 raw NDJSON':<48} {'-':>8} {'':>15}  ≥ 40%        not measured here (scale/, needs pyspark)")
    print("\nmedian wall seconds: " + ", ".join(f"{name} {statistics.median(times[name]):.3f}" for name in names))


if __name__ == "__main__":
    main()
