#!/usr/bin/env python3
"""Writes a synthetic but protocol-exact WebSocket capture (pcap, Ethernet) to a file or stdout.

usage: generate.py KIND SIZE_MB [--out FILE] [--seed N] [--segment BYTES]

KIND:
  chat       many connections of small text messages (20-200 bytes), half of them with
             permessage-deflate (context takeover, real zlib), client frames masked
  bulk       binary messages of 64 KiB - 1 MiB split into --segment byte TCP segments (1448: 1500 MTU)
  mixed      both, interleaved over many connections
  endless    one connection streaming binary frames, one frame per --segment segment (memory tests)
  bomb       one permessage-deflate message of a few MB that inflates to SIZE_MB (a decompression bomb)
  synflood   unanswered SYNs from ever new clients, 100,000 a second (connection-table tests)

Except in synflood, every connection has a TCP handshake, an HTTP/1.1 Upgrade with a correct Sec-WebSocket-Accept, and
ends with close frames and FINs, so `wstap read` and tshark decode it alike. The output is
deterministic for a given seed. SIZE_MB is the approximate capture size.
"""
import argparse, base64, hashlib, random, struct, sys, zlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAC = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"


class Writer:
    def __init__(self, out):
        self.out = out
        self.bytes = 0
        self.time_us = 1_700_000_000 * 1_000_000
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))

    def packet(self, src, dst, sport, dport, seq, ack, flags, payload=b""):
        self.time_us += 7
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0)
        frame = MAC + ip + tcp + payload
        self.out.write(struct.pack("<IIII", self.time_us // 1_000_000, self.time_us % 1_000_000, len(frame), len(frame)))
        self.out.write(frame)
        self.bytes += 16 + len(frame)


def ws_frame(opcode, payload, mask_key=None, rsv1=False):
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if mask_key else 0
    if n < 126:
        head = bytes([first, mask_bit | n])
    elif n < 65536:
        head = bytes([first, mask_bit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack("!Q", n)
    if not mask_key:
        return head + payload
    key = mask_key * (n // 4 + 1)
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key[:n], "big")).to_bytes(n, "big") if n else b""
    return head + mask_key + masked


class Connection:
    def __init__(self, writer, index, rng, compressed):
        self.w, self.rng, self.compressed = writer, rng, compressed
        self.client = bytes([10, 1, (index >> 8) & 0xFF, index & 0xFF])
        self.server = bytes([10, 2, 0, 1])
        self.cport, self.sport = 20000 + index % 40000, 8080
        self.cseq, self.sseq = rng.getrandbits(32), rng.getrandbits(32)
        self.deflaters = [zlib.compressobj(6, zlib.DEFLATED, -15), zlib.compressobj(6, zlib.DEFLATED, -15)]

    def send(self, from_client, data, segment=None):
        segment = segment or len(data) or 1
        for start in range(0, len(data), segment):
            piece = data[start:start + segment]
            if from_client:
                self.w.packet(self.client, self.server, self.cport, self.sport, self.cseq, self.sseq, 0x18, piece)
                self.cseq += len(piece)
            else:
                self.w.packet(self.server, self.client, self.sport, self.cport, self.sseq, self.cseq, 0x18, piece)
                self.sseq += len(piece)

    def open(self):
        w = self.w
        w.packet(self.client, self.server, self.cport, self.sport, self.cseq, 0, 0x02)
        self.cseq += 1
        w.packet(self.server, self.client, self.sport, self.cport, self.sseq, self.cseq, 0x12)
        self.sseq += 1
        w.packet(self.client, self.server, self.cport, self.sport, self.cseq, self.sseq, 0x10)
        key = base64.b64encode(self.rng.getrandbits(128).to_bytes(16, "big"))
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        extension = b"Sec-WebSocket-Extensions: permessage-deflate\r\n" if self.compressed else b""
        self.send(True, b"GET /stream HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" + extension + b"\r\n")
        self.send(False, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n" + extension + b"\r\n")

    def message(self, from_client, opcode, payload, segment=None):
        rsv1 = False
        if self.compressed:
            d = self.deflaters[0 if from_client else 1]
            payload = d.compress(payload) + d.flush(zlib.Z_SYNC_FLUSH)
            payload, rsv1 = payload[:-4], True
        key = self.rng.getrandbits(32).to_bytes(4, "big") if from_client else None
        self.send(from_client, ws_frame(opcode, payload, key, rsv1), segment)

    def close(self):
        self.send(True, ws_frame(8, b"\x03\xe8bye", b"\x11\x22\x33\x44"))
        self.send(False, ws_frame(8, b"\x03\xe8bye"))
        w = self.w
        w.packet(self.client, self.server, self.cport, self.sport, self.cseq, self.sseq, 0x11)
        self.cseq += 1
        w.packet(self.server, self.client, self.sport, self.cport, self.sseq, self.cseq, 0x11)
        self.sseq += 1
        w.packet(self.client, self.server, self.cport, self.sport, self.cseq, self.sseq, 0x10)


WORDS = b"alpha beta gamma delta price quote order fill cancel bid ask symbol ACME volume".split()


def chat_text(rng):
    n = rng.randint(20, 200)
    text = b" ".join(rng.choice(WORDS) for _ in range(n // 4 + 1))
    return b'{"t":' + str(rng.randint(0, 10**6)).encode() + b',"m":"' + text[:max(1, n - 20)] + b'"}'


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["chat", "bulk", "mixed", "endless", "bomb", "synflood"])
    parser.add_argument("size_mb", type=float)
    parser.add_argument("--out")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--segment", type=int, default=1448)
    args = parser.parse_args()
    out = open(args.out, "wb") if args.out else sys.stdout.buffer
    rng = random.Random(args.seed)
    w = Writer(out)
    target = int(args.size_mb * 1_000_000)
    if args.kind == "bomb":
        c = Connection(w, 1, rng, True)
        c.open()
        deflater, zeros, compressed = zlib.compressobj(9, zlib.DEFLATED, -15), bytes(1 << 20), []
        for _ in range(target >> 20):
            compressed.append(deflater.compress(zeros))
        body = b"".join(compressed) + deflater.flush(zlib.Z_SYNC_FLUSH)
        c.send(False, ws_frame(2, body[:-4], rsv1=True), segment=65000)
        c.close()
        out.flush()
        return
    if args.kind == "synflood":
        server, index = bytes([10, 2, 0, 1]), 0
        while w.bytes < target:
            index += 1
            source = bytes([10, 64 | (index >> 16) & 0x3F, (index >> 8) & 0xFF, index & 0xFF])
            w.time_us += 3  # with the writer's 7: 10 µs apart
            w.packet(source, server, 1024 + index % 60000, 8080, rng.getrandbits(32), 0, 0x02)
        out.flush()
        return
    if args.kind == "endless":
        c = Connection(w, 1, rng, False)
        c.open()
        body = bytes(rng.getrandbits(8) for _ in range(args.segment))
        header_room = 10 if args.segment - 10 >= 65536 else 4
        frame = ws_frame(2, body[:args.segment - header_room])
        while w.bytes < target:
            c.send(False, frame)
        c.close()
        out.flush()
        return
    active, index = [], 0
    bulk_blob = bytes(rng.getrandbits(8) for _ in range(1 << 20))
    while w.bytes < target:
        while len(active) < (1 if args.kind == "bulk" else 40):
            index += 1
            kind = "bulk" if args.kind == "bulk" or (args.kind == "mixed" and index % 5 == 0) else "chat"
            c = Connection(w, index, rng, kind == "chat" and index % 2 == 0)
            c.open()
            active.append((c, kind, rng.randint(20, 200) if kind == "chat" else rng.randint(2, 6)))
        slot = rng.randrange(len(active))
        c, kind, left = active[slot]
        if kind == "chat":
            text = chat_text(rng)
            c.message(True, 1, text)
            c.message(False, 1, text)
        else:
            size = rng.randint(64 << 10, 1 << 20)
            c.message(rng.random() < 0.5, 2, bulk_blob[:size], segment=args.segment)
        left -= 1
        if left == 0:
            c.close()
            active.pop(slot)
        else:
            active[slot] = (c, kind, left)
    for c, _, _ in active:
        c.close()
    out.flush()


if __name__ == "__main__":
    main()
