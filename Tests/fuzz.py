#!/usr/bin/env python3
"""Mutated captures never crash wstap: random bytes of the bundled captures are overwritten, some
files cut short, and the debug build (bounds and exclusivity checks on) reads each one. Every run
must end with exit status 0, 2 or 3 and, when not 0, a one-line error.

usage: Tests/fuzz.py [WSTAP_DEBUG_BINARY] [--cases N] [--seed N]
"""
import glob, os, random, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
wstap = args[0] if args else os.path.join(ROOT, ".build", "debug", "wstap")
cases = int(sys.argv[sys.argv.index("--cases") + 1]) if "--cases" in sys.argv else 200
seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 1
rng = random.Random(seed)
sources = [s for s in sorted(glob.glob(os.path.join(ROOT, "captures", "*.pcap*"))
                             + glob.glob(os.path.join(ROOT, "captures", "damaged", "*.pcap*")))
           if os.path.getsize(s) < 200_000]
passed = failed = 0
with tempfile.TemporaryDirectory() as work:
    for case in range(cases):
        source = rng.choice(sources)
        data = bytearray(open(source, "rb").read())
        for _ in range(rng.randint(1, 80)):
            data[rng.randrange(24, len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(1, len(data))]
        path = os.path.join(work, f"case{case}" + os.path.splitext(source)[1])
        open(path, "wb").write(data)
        command = [wstap, "read", path, "--format", rng.choice(["ndjson", "json", "text"])]
        if rng.random() < 0.2:
            command += ["--websocket-port", str(rng.choice([8080, 18100, 8001]))]
        result = subprocess.run(command, capture_output=True, timeout=120)
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        ok = result.returncode in (0, 2, 3) and (result.returncode == 0 or len(lines) == 1)
        if ok:
            passed += 1
        else:
            failed += 1
            kept = os.path.join(tempfile.gettempdir(), f"wstap-fuzz-{seed}-{case}" + os.path.splitext(source)[1])
            open(kept, "wb").write(data)
            print(f"FAIL case {case} from {os.path.basename(source)}: exit {result.returncode}, kept as {kept}: {lines[:3]}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
