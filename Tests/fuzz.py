#!/usr/bin/env python3
"""Mutated captures never crash wstap, never hang, and stay within memory: the bundled captures
are corrupted in several ways and the debug build (bounds and exclusivity checks on) reads each.

Corruptions: bit flips, overwritten bytes, truncation, lying record and block lengths, swapped
link types, duplicated records or blocks, reordered records or blocks, and mixes of these.
Every run must end with exit status 0, 2 or 3 and, when not 0, a one-line error; within 10 s
(else it counts as a hang); and with peak RSS under 256 MB (the captures are under 200 KB).

usage: Tests/fuzz.py [WSTAP_DEBUG_BINARY] [--cases N] [--seed N] [--jobs N]
  make test runs 200 cases; the nightly run is --cases 10000 --jobs 2 (docs/fuzzing.md).
"""
import collections, glob, os, random, resource, struct, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
option = lambda name, default: int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default
wstap = args[0] if args and not args[0].isdigit() else os.path.join(ROOT, ".build", "debug", "wstap")
cases, seed, jobs = option("--cases", 200), option("--seed", 1), option("--jobs", 1)
HANG_SECONDS = 10
RSS_LIMIT_MB = 256
LINK_TYPES = [0, 1, 12, 101, 108, 113, 228, 229, 276, 147, 0xFFFF]

sources = [s for s in sorted(glob.glob(os.path.join(ROOT, "captures", "*.pcap*"))
                             + glob.glob(os.path.join(ROOT, "captures", "damaged", "*.pcap*")))
           if os.path.getsize(s) < 200_000]


def units(data):
    """(header length, [(start, end)] of records or blocks) of a pcap or pcapng file, or None."""
    if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        spans, offset = [], 24
        while offset + 16 <= len(data):
            length = struct.unpack_from(order + "I", data, offset + 8)[0]
            if offset + 16 + length > len(data):
                break
            spans.append((offset, offset + 16 + length))
            offset += 16 + length
        return 24, spans, order, "pcap"
    if data[:4] == b"\x0a\x0d\x0d\x0a" and len(data) >= 12:
        order = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        spans, offset = [], 0
        while offset + 12 <= len(data):
            length = struct.unpack_from(order + "I", data, offset + 4)[0]
            if length < 12 or offset + length > len(data):
                break
            spans.append((offset, offset + length))
            offset += length
        return 0, spans, order, "pcapng"
    return None


def flip_bits(data, rng):
    for _ in range(rng.randint(1, 40)):
        index = rng.randrange(len(data))
        data[index] ^= 1 << rng.randrange(8)
    return data


def overwrite_bytes(data, rng):
    for _ in range(rng.randint(1, 80)):
        data[rng.randrange(min(24, len(data) - 1), len(data))] = rng.randrange(256)
    return data


def truncate(data, rng):
    return data[:rng.randrange(1, len(data))]


def lie_about_lengths(data, rng):
    found = units(data)
    if not found or not found[1]:
        return overwrite_bytes(data, rng)
    _, spans, order, kind = found
    lie = rng.choice([0, 1, 11, 0xFFFF, 0x40000, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)])
    for _ in range(rng.randint(1, 3)):
        start, end = rng.choice(spans)
        if kind == "pcap":
            field = start + rng.choice([8, 12])  # caplen or original length
        else:
            field = rng.choice([start + 4, end - 4] + ([start + 20, start + 24] if end - start > 28 else []))
        struct.pack_into(order + "I", data, field, lie)
    return data


def swap_link_type(data, rng):
    found = units(data)
    if not found:
        return overwrite_bytes(data, rng)
    _, spans, order, kind = found
    if kind == "pcap":
        struct.pack_into(order + "I", data, 20, rng.choice(LINK_TYPES))
    else:
        interfaces = [s for s in spans if struct.unpack_from(order + "I", data, s[0])[0] == 1]
        for start, _ in interfaces[:rng.randint(1, 2)]:
            struct.pack_into(order + "H", data, start + 8, rng.choice(LINK_TYPES))
    return data


def duplicate_units(data, rng):
    found = units(data)
    if not found or not found[1]:
        return truncate(data, rng)
    _, spans, _, _ = found
    for _ in range(rng.randint(1, 5)):
        start, end = rng.choice(spans)
        at = rng.choice(spans)[1]
        data = data[:at] + data[start:end] + data[at:]
        found = units(data)
        spans = found[1] if found else spans
    return data


def reorder_units(data, rng):
    found = units(data)
    if not found or len(found[1]) < 2:
        return flip_bits(data, rng)
    header, spans, _, _ = found
    pieces = [bytes(data[s:e]) for s, e in spans]
    if rng.random() < 0.5:
        rng.shuffle(pieces)
    else:
        for _ in range(rng.randint(1, 4)):
            i, j = rng.randrange(len(pieces)), rng.randrange(len(pieces))
            pieces[i], pieces[j] = pieces[j], pieces[i]
    return bytearray(data[:header]) + b"".join(pieces) + data[spans[-1][1]:]


KINDS = {"bit flips": flip_bits, "overwritten bytes": overwrite_bytes, "truncation": truncate,
         "lying lengths": lie_about_lengths, "swapped link types": swap_link_type,
         "duplicated records": duplicate_units, "reordered records": reorder_units}


def mutate(data, rng):
    names = list(KINDS)
    chosen = [rng.choice(names)] if rng.random() < 0.7 else rng.sample(names, rng.randint(2, 3))
    for name in chosen:
        data = bytearray(KINDS[name](data, rng))
        if not data:
            data = bytearray(b"\0")
    return "+".join(chosen), data


def limit_memory():
    # A runaway allocation fails here instead of taking the machine.
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


def run_case(case, work):
    rng = random.Random(seed * 1_000_003 + case)
    source = rng.choice(sources)
    kind, data = mutate(bytearray(open(source, "rb").read()), rng)
    path = os.path.join(work, f"case{case}" + os.path.splitext(source)[1])
    open(path, "wb").write(data)
    command = [wstap, "read", path, "--format", rng.choice(["ndjson", "json", "text", "summary"])]
    if rng.random() < 0.2:
        command += ["--websocket-port", str(rng.choice([8080, 18100, 8001]))]
    started = time.time()
    with tempfile.TemporaryFile() as errors:
        tool = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, preexec_fn=limit_memory)
        deadline = started + HANG_SECONDS
        hung = False
        while True:
            pid, status, usage = os.wait4(tool.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                hung = True
                tool.kill()
                _, status, usage = os.wait4(tool.pid, 0)
                break
            time.sleep(0.005)
        errors.seek(0)
        lines = errors.read().decode(errors="replace").strip().splitlines()
    seconds = time.time() - started
    code = os.waitstatus_to_exitcode(status)
    rss_mb = usage.ru_maxrss / 1024
    problem = None
    if hung:
        problem = f"hang (over {HANG_SECONDS} s)"
    elif code not in (0, 2, 3):
        problem = f"exit {code}"
    elif code != 0 and len(lines) != 1:
        problem = f"{len(lines)} error lines"
    elif rss_mb > RSS_LIMIT_MB:
        problem = f"peak RSS {rss_mb:.0f} MB"
    if problem:
        kept = os.path.join(tempfile.gettempdir(), f"wstap-fuzz-{seed}-{case}" + os.path.splitext(source)[1])
        open(kept, "wb").write(data)
        problem = f"case {case} ({kind}) from {os.path.basename(source)}: {problem}, kept as {kept}: {lines[:3]}"
    return kind, code, seconds, rss_mb, problem


def main():
    with tempfile.TemporaryDirectory() as work, ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda case: run_case(case, work), range(cases)))
    by_kind = collections.Counter(name for kind, *_ in results for name in kind.split("+"))
    mixed = sum(1 for kind, *_ in results if "+" in kind)
    statuses = collections.Counter(code for _, code, *_ in results)
    failures = [problem for *_, problem in results if problem]
    for problem in failures:
        print("FAIL", problem)
    print(f"{cases} mutated captures: exits {dict(sorted(statuses.items()))}, slowest {max(r[2] for r in results):.2f} s, "
          f"peak RSS {max(r[3] for r in results):.0f} MB")
    print("by corruption (a case may mix several): " + ", ".join(f"{name} {count}" for name, count in sorted(by_kind.items()))
          + f"; mixed {mixed}")
    print(f"{cases - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
