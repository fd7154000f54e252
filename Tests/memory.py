#!/usr/bin/env python3
"""Peak memory stays bounded however large the capture: generated captures are streamed through
`wstap read -` (never stored) and the child's peak RSS is read from getrusage. `--jobs` reads
files (every job reads the capture itself): its cases store the capture in a temporary file.

usage: Tests/memory.py [WSTAP] [--gigabytes N]
Prints one line per case and "N passed, N failed"; exit 1 on any failure.
"""
import os, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
wstap = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else os.path.join(HERE, "..", ".build", "release", "wstap")
gigabytes = float(sys.argv[sys.argv.index("--gigabytes") + 1]) if "--gigabytes" in sys.argv else 4
generator = os.path.join(HERE, "..", "bench", "generate.py")


def run(name, kind, size_mb, segment, args, limit_mb, expect=None, stored=False):
    start = time.time()
    if stored:
        capture = tempfile.NamedTemporaryFile(suffix=".pcap")
        subprocess.run([sys.executable, generator, kind, str(size_mb), "--segment", str(segment)], stdout=capture, check=True)
        gen = subprocess.Popen(["true"], stdout=subprocess.PIPE)
        tool = subprocess.Popen([wstap, "read", capture.name] + args, stdout=subprocess.PIPE if expect else subprocess.DEVNULL)
    else:
        gen = subprocess.Popen([sys.executable, generator, kind, str(size_mb), "--segment", str(segment)], stdout=subprocess.PIPE)
        tool = subprocess.Popen([wstap, "read", "-"] + args, stdin=gen.stdout,
                                stdout=subprocess.PIPE if expect else subprocess.DEVNULL)
    gen.stdout.close()
    output = tool.stdout.read() if expect else b""
    # wait4 gives wstap's own peak RSS (kilobytes on Linux), not the generator's.
    _, status, usage = os.wait4(tool.pid, 0)
    tool.returncode = os.waitstatus_to_exitcode(status)
    gen.wait()
    peak_mb = usage.ru_maxrss / 1024
    ok = tool.returncode == 0 and gen.returncode == 0 and peak_mb < limit_mb and (expect is None or expect in output)
    print(f"{'PASS' if ok else 'FAIL'} {name}: {size_mb / 1000:.1f} GB in {time.time() - start:.1f} s, "
          f"peak RSS {peak_mb:.1f} MB (limit {limit_mb} MB), exit {tool.returncode}")
    return ok


results = [
    run("one 4 GB connection, summary", "endless", gigabytes * 1000, 65000, ["--format", "summary"], 100),
    run("mixed connections, ndjson", "mixed", gigabytes * 250, 1448, ["--format", "ndjson", "--max-payload", "32"], 100),
    run("decompression bomb of 2 GB, 16 MiB limit", "bomb", 2000, 65000,
        ["--format", "summary", "--payload-limit", str(16 << 20)], 100, expect=b"decompressed-too-large 1"),
    # JSON holds a connection until it ends: past 32 MiB its lists go to a temporary file.
    run("one 300 MB connection, json", "endless", 300, 65000, ["--format", "json"], 100),
    # 2.5M connections opened, never answered: the table holds at most --max-connections (100,000).
    run("SYN flood, 2.5M connections, ndjson", "synflood", 135, 1448, ["--format", "ndjson"], 100),
    # Two jobs, each within the 100 MB of one: whole payloads shown, every format's work done twice over.
    run("mixed connections from a file, ndjson, --jobs 2", "mixed", gigabytes * 125, 1448,
        ["--format", "ndjson", "--jobs", "2"], 200, stored=True),
    run("SYN flood from a file, ndjson, --jobs 2", "synflood", 135, 1448, ["--format", "ndjson", "--jobs", "2"], 200, stored=True),
]
passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed")
sys.exit(0 if all(results) else 1)
