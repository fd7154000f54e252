#!/usr/bin/env python3
"""Derives damaged and unusual captures from the real recordings in captures/.

usage: captures/damage.py            (writes captures/damaged/NAME.pcap[ng] + NAME.damage.json)

Each output states in NAME.damage.json what a correct analyzer recovers and reports:
  "from":     the recordings it was made from (their NAME.peers.json say what the peers sent)
  "messages": "same"   - every message of the recordings, in order, nothing else
              "subset" - only messages the peers sent, in order; what is lost may be missing
  "issues":   issue codes that must be reported
  "exit":     "ok" or "damaged" (the file itself is cut: decode up to the damage, exit 3)
Only python3's standard library is used.
"""
import json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "damaged")


# ---------- pcap files ----------

def read_pcap(name):
    data = open(os.path.join(HERE, name), "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nanos = struct.unpack(endian + "I", data[:4])[0] == 0xA1B23C4D
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    packets, offset = [], 24
    while offset + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(endian + "IIII", data[offset:offset + 16])
        packets.append([sec * 10**9 + (frac if nanos else frac * 1000), data[offset + 16:offset + 16 + incl], orig])
        offset += 16 + incl
    return linktype, packets


def write_pcap(name, linktype, packets, snaplen=262144):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, snaplen, linktype))
        for ts, data, orig in packets:
            f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(data), orig) + data)


def write_pcapng(name, interfaces, packets):
    """interfaces: [(linktype, snaplen)]; packets: [(ts_ns, interface, data, orig)]; ns resolution."""
    def block(kind, body):
        body += b"\0" * (-len(body) % 4)
        length = 12 + len(body)
        return struct.pack("<II", kind, length) + body + struct.pack("<I", length)
    def option(code, value):
        return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + option(1, b"made by captures/damage.py") + b"\0\0\0\0")
    for linktype, snaplen in interfaces:
        out += block(1, struct.pack("<HHI", linktype, 0, snaplen) + option(9, b"\x09") + b"\0\0\0\0")
    for ts, interface, data, orig in packets:
        out += block(6, struct.pack("<IIIII", interface, ts >> 32, ts & 0xFFFFFFFF, len(data), orig) + data)
    open(os.path.join(OUT, name), "wb").write(out)


def describe(name, sources, messages, issues, exit="ok", note=""):
    with open(os.path.join(OUT, os.path.splitext(name)[0] + ".damage.json"), "w") as f:
        json.dump({"from": sources, "messages": messages, "issues": issues, "exit": exit, "note": note},
                  f, indent=1, sort_keys=True)
        f.write("\n")


# ---------- Ethernet / IPv4 / TCP ----------

class Segment:
    """An Ethernet + IPv4 + TCP packet, taken apart so it can be changed and rebuilt."""
    def __init__(self, data):
        self.eth = data[:14]
        ihl = (data[14] & 0x0F) * 4
        self.ip = bytearray(data[14:14 + ihl])
        total = struct.unpack("!H", data[16:18])[0]
        offset = (data[14 + ihl + 12] >> 4) * 4
        self.tcp = bytearray(data[14 + ihl:14 + ihl + offset])
        self.payload = data[14 + ihl + offset:14 + total]

    seq = property(lambda s: struct.unpack("!I", s.tcp[4:8])[0],
                   lambda s, v: s.tcp.__setitem__(slice(4, 8), struct.pack("!I", v & 0xFFFFFFFF)))
    ack = property(lambda s: struct.unpack("!I", s.tcp[8:12])[0],
                   lambda s, v: s.tcp.__setitem__(slice(8, 12), struct.pack("!I", v & 0xFFFFFFFF)))
    flags = property(lambda s: s.tcp[13], lambda s, v: s.tcp.__setitem__(13, v))
    sport = property(lambda s: struct.unpack("!H", s.tcp[0:2])[0])

    def ip_packet(self):
        ip = bytearray(self.ip)
        ip[2:4] = struct.pack("!H", len(ip) + len(self.tcp) + len(self.payload))
        return bytes(ip) + bytes(self.tcp) + self.payload

    def build(self):
        return self.eth + self.ip_packet()


def tcp_packets(packets):
    return [(p, Segment(p[1])) for p in packets]


def with_payload(segment, payload, seq=None):
    copy = Segment(segment.build())
    copy.payload = payload
    if seq is not None:
        copy.seq = seq
    return copy


def data_indexes(packets, port_side=None):
    """Indexes of packets that carry TCP payload (after the HTTP handshake when skip_handshake)."""
    return [i for i, (_, s) in enumerate(tcp_packets(packets)) if s.payload and (port_side is None or s.sport == port_side)]


# ---------- the cases ----------

def gap_at_frame_boundaries():
    linktype, packets = read_pcap("chat-stream.pcap")
    segments = tcp_packets(packets)
    data = [i for i, (_, s) in enumerate(segments) if s.payload]
    # Drop one mid-conversation segment in each direction (whole frames: a frame-boundary gap).
    client_port = segments[0][1].sport
    c2s = [i for i in data if segments[i][1].sport == client_port][20]
    s2c = [i for i in data if segments[i][1].sport != client_port][30]
    kept = [p for i, p in enumerate(packets) if i not in (c2s, s2c)]
    write_pcap("gap-frame-boundary.pcap", linktype, kept)
    describe("gap-frame-boundary.pcap", ["chat-stream.pcap"], "subset", ["tcp-gap", "websocket-desync", "websocket-resync"],
             note="one data segment dropped in each direction; decoding resumes at the next frames")


def gap_inside_payload():
    linktype, packets = read_pcap("binary-sizes.pcap")
    segments = tcp_packets(packets)
    client_port = segments[0][1].sport
    big = [i for i, (_, s) in enumerate(segments) if s.sport == client_port and len(s.payload) > 30000]
    drop = big[len(big) // 2]
    write_pcap("gap-inside-payload.pcap", linktype, [p for i, p in enumerate(packets) if i != drop])
    describe("gap-inside-payload.pcap", ["binary-sizes.pcap"], "subset", ["tcp-gap", "payload-missing"],
             note="a segment inside the 1 MiB message is dropped: that frame is partial, every other message decodes")


def h2_gaps():
    """Bytes lost inside the 20 KB binary of h2-proxy.pcap (HTTP/2 with prior knowledge, the
    message inside a CONNECT tunnel's DATA frames): once inside one DATA frame (framing stays in
    step: the WebSocket frame is partial, the stream goes on), once across two DATA frames' boundary
    (frames are searched for again, HPACK starts afresh)."""
    linktype, packets = read_pcap("h2-proxy.pcap")
    segments = tcp_packets(packets)
    client_port = segments[0][1].sport
    big = max((i for i, (_, s) in enumerate(segments) if s.sport == client_port), key=lambda i: len(segments[i][1].payload))
    segment = segments[big][1]
    payload = segment.payload
    # Where the DATA frames in this segment begin: walk the frame headers.
    offset, frames = 0, []
    while offset + 9 <= len(payload):
        length = int.from_bytes(payload[offset:offset + 3], "big")
        frames.append((offset, length, payload[offset + 3]))
        offset += 9 + length
    data_frames = [f for f in frames if f[2] == 0 and f[1] > 4000]
    assert len(data_frames) >= 2, frames
    first = data_frames[0]
    for name, start, end, issues, note in [
        ("h2-gap-inside-frame.pcap", first[0] + 9 + 2000, first[0] + 9 + 3000, ["tcp-gap", "payload-missing"],
         "1,000 bytes lost inside a DATA frame of an HTTP/2 stream's tunnel: the WebSocket frame is partial, framing stays in step"),
        ("h2-gap-across-frames.pcap", first[0] + 9 + first[1] - 500, first[0] + 9 + first[1] + 600,
         ["tcp-gap", "http2-gap", "http2-frames-found"],
         "1,100 bytes lost across two DATA frames: HTTP/2 frames are searched for again, the stream's WebSocket frames too"),
    ]:
        head = with_payload(segment, payload[:start])
        tail = with_payload(segment, payload[end:], seq=segment.seq + end)
        kept = packets[:big] + [[packets[big][0], head.build(), len(head.build())],
                                [packets[big][0], tail.build(), len(tail.build())]] + packets[big + 1:]
        write_pcap(name, linktype, kept)
        describe(name, ["h2-proxy.pcap"], "subset", issues, note=note)


def reordered():
    linktype, packets = read_pcap("text-echo.pcap")
    data = data_indexes(packets)
    packets = list(packets)
    for a in (data[3], data[6]):
        packets[a], packets[a + 1] = packets[a + 1], packets[a]
    write_pcap("reordered.pcap", linktype, packets)
    describe("reordered.pcap", ["text-echo.pcap"], "same", [], note="adjacent data segments swapped")


def tiny_segments():
    linktype, packets = read_pcap("fragmented.pcap")
    out = []
    for ts, data, orig in packets:
        s = Segment(data)
        if not s.payload:
            out.append([ts, data, orig])
            continue
        offset, size = 0, 1
        while offset < len(s.payload):
            piece = with_payload(s, s.payload[offset:offset + size], s.seq + offset)
            built = piece.build()
            out.append([ts, built, len(built)])
            offset += size
            size = size % 7 + 1
    write_pcap("tiny-segments.pcap", linktype, out)
    describe("tiny-segments.pcap", ["fragmented.pcap"], "same", [], note="every data segment cut into 1-7 byte segments")


def retransmissions():
    linktype, packets = read_pcap("chat-stream.pcap")
    data = data_indexes(packets)
    out = []
    for i, (ts, raw, orig) in enumerate(packets):
        out.append([ts, raw, orig])
        if i == data[10]:
            out.append([ts + 1000, raw, orig])                        # a faithful retransmission
        if i == data[12]:
            s = Segment(raw)
            forged = with_payload(s, bytes(b ^ 0x20 for b in s.payload)).build()
            out.append([ts + 1000, forged, len(forged)])              # same range, other bytes
    write_pcap("retransmissions.pcap", linktype, out)
    describe("retransmissions.pcap", ["chat-stream.pcap"], "same", ["retransmission-conflict"],
             note="one segment retransmitted unchanged, one with different bytes; the first transmission wins")


def truncated_file():
    data = open(os.path.join(HERE, "chat-stream.pcap"), "rb").read()
    open(os.path.join(OUT, "truncated-file.pcap"), "wb").write(data[:len(data) * 2 // 3])
    describe("truncated-file.pcap", ["chat-stream.pcap"], "subset", ["truncated-capture"], exit="damaged",
             note="the file is cut in the middle of a record")


def snaplen():
    linktype, packets = read_pcap("chat-stream.pcap")
    cut = [[ts, data[:120], orig] for ts, data, orig in packets]
    write_pcap("snaplen.pcap", linktype, cut, snaplen=120)
    describe("snaplen.pcap", ["chat-stream.pcap"], "subset", ["snaplen-truncated"],
             note="every packet cut to 120 bytes (tcpdump -s 120)")


def mid_stream(source, name, issues, note):
    linktype, packets = read_pcap(source)
    data = data_indexes(packets)
    start = data[5]
    write_pcap(name, linktype, packets[start:])
    describe(name, [source], "subset", issues, note=note)


def vlan_qinq():
    linktype, packets = read_pcap("text-echo.pcap")
    out = []
    for ts, data, orig in packets:
        tagged = data[:12] + b"\x88\xa8\x00\x64" + b"\x81\x00\x00\x0a" + data[12:]
        out.append([ts, tagged, orig + 8])
    write_pcap("vlan-qinq.pcap", linktype, out)
    describe("vlan-qinq.pcap", ["text-echo.pcap"], "same", [], note="802.1ad + 802.1Q tags on every frame")


def ip_fragments():
    linktype, packets = read_pcap("chat-stream.pcap")
    out = []
    for ts, data, orig in packets:
        s = Segment(data)
        body = bytes(s.tcp) + s.payload
        if len(s.payload) < 100:
            out.append([ts, data, orig])
            continue
        # Three fragments of 8-byte multiples, sent last first.
        size = (len(body) // 3 + 7) // 8 * 8
        pieces = [body[i:i + size] for i in range(0, len(body), size)]
        frames = []
        for n, piece in enumerate(pieces):
            ip = bytearray(s.ip)
            more = 0x2000 if n < len(pieces) - 1 else 0
            ip[6:8] = struct.pack("!H", more | (n * size // 8))
            ip[2:4] = struct.pack("!H", len(ip) + len(piece))
            frame = s.eth + bytes(ip) + piece
            frames.append([ts, frame, len(frame)])
        out.extend(reversed(frames))
    write_pcap("ip-fragments.pcap", linktype, out)
    describe("ip-fragments.pcap", ["chat-stream.pcap"], "same", [], note="IPv4 packets with payload split into 3 fragments, out of order")


def gre():
    linktype, packets = read_pcap("text-echo.pcap")
    out = []
    for ts, data, orig in packets:
        inner = data[14:]
        outer = bytearray(b"\x45\x00\x00\x00\x00\x01\x40\x00\x40\x2f\x00\x00\x0a\x00\x00\x01\x0a\x00\x00\x02")
        outer[2:4] = struct.pack("!H", 20 + 4 + len(inner))
        frame = data[:14] + bytes(outer) + b"\x00\x00\x08\x00" + inner
        out.append([ts, frame, len(frame)])
    write_pcap("gre.pcap", linktype, out)
    describe("gre.pcap", ["text-echo.pcap"], "same", [], note="every packet wrapped in IPv4 + GRE")


def sequence_wrap():
    linktype, packets = read_pcap("chat-stream.pcap")
    segments = tcp_packets(packets)
    client_port = segments[0][1].sport
    first = {True: None, False: None}
    for _, s in segments:
        side = s.sport == client_port
        if first[side] is None:
            first[side] = s.seq
    # Shift both directions so the sequence numbers pass 2^32 half-way through the conversation.
    shift = {side: (2**32 - 4000 - first[side]) % 2**32 for side in first}
    out = []
    for (ts, data, orig), (_, s) in zip(packets, segments):
        side = s.sport == client_port
        s.seq = s.seq + shift[side]
        if s.flags & 0x10:
            s.ack = s.ack + shift[not side]
        out.append([ts, s.build(), orig])
    write_pcap("sequence-wrap.pcap", linktype, out)
    describe("sequence-wrap.pcap", ["chat-stream.pcap"], "same", [], note="sequence numbers wrap around 2^32 mid-stream")


def rst_mid_message():
    linktype, packets = read_pcap("binary-sizes.pcap")
    segments = tcp_packets(packets)
    client_port = segments[0][1].sport
    big = [i for i, (_, s) in enumerate(segments) if s.sport == client_port and len(s.payload) > 30000]
    cut = big[len(big) // 2]
    s = segments[cut][1]
    rst = Segment(s.build())
    rst.payload = b""
    rst.seq = s.seq + len(s.payload)
    rst.flags = 0x14
    ts = packets[cut][0]
    out = packets[:cut + 1] + [[ts + 1, rst.build(), len(rst.build())]]
    write_pcap("rst-mid-message.pcap", linktype, out)
    describe("rst-mid-message.pcap", ["binary-sizes.pcap"], "subset", ["payload-missing"],
             note="the client resets the connection in the middle of the 1 MiB message")


def multi_interface():
    lt_a, a = read_pcap("text-echo.pcap")
    ng = open(os.path.join(HERE, "any-sll2.pcapng"), "rb").read()
    # any-sll2.pcapng as written by editcap: read its enhanced packet blocks (one interface, µs).
    b, offset = [], 0
    while offset + 12 <= len(ng):
        kind, length = struct.unpack("<II", ng[offset:offset + 8])
        if kind == 6:
            _, high, low, incl, orig = struct.unpack("<IIIII", ng[offset + 8:offset + 28])
            b.append([((high << 32) | low) * 1000, ng[offset + 28:offset + 28 + incl], orig])
        offset += length
    packets = sorted([(ts, 0, d, o) for ts, d, o in a] + [(ts, 1, d, o) for ts, d, o in b])
    write_pcapng("multi-interface.pcapng", [(lt_a, 262144), (276, 262144)], packets)
    describe("multi-interface.pcapng", ["text-echo.pcap", "any-sll2.pcapng"], "same", [],
             note="two interfaces of different link types (Ethernet and Linux SLL2) in one pcapng section")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    gap_at_frame_boundaries()
    gap_inside_payload()
    h2_gaps()
    reordered()
    tiny_segments()
    retransmissions()
    truncated_file()
    snaplen()
    mid_stream("chat-stream.pcap", "mid-stream.pcap", ["handshake-not-captured"],
               "the first packets (SYN, HTTP handshake, first messages) are not in the capture")
    mid_stream("deflate.pcap", "mid-stream-deflate.pcap", ["handshake-not-captured", "deflate-context-lost"],
               "permessage-deflate with context takeover, captured from the middle: the window is unknown")
    vlan_qinq()
    ip_fragments()
    gre()
    sequence_wrap()
    rst_mid_message()
    multi_interface()
    print("\n".join(sorted(os.listdir(OUT))))
