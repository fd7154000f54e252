#!/usr/bin/env python3
"""Rewrites a capture (pcap, Ethernet, IPv4) with its TCP segments cut into IP fragments, to check
that `--jobs` reassembles datagrams exactly as one job does (Tests/cli.sh).

usage: Tests/ip_fragments.py IN OUT

Deterministic. Every TCP packet with more than 48 bytes of IP payload becomes fragments of at most
32 bytes of it (the last one shorter), each a packet of its own with the packet's time and a
datagram identification of its own (a sending stack's); of those
packets, every third has its fragments written last first, every fifth its first fragment written
twice, and every 50th loses its last fragment written (its datagram never completes: the connection
sees a gap). After every 100th packet comes a UDP datagram in two fragments (reassembled, then
passed over: not TCP). Prints how many packets were cut.
"""
import struct
import sys


def checksum(header):
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def ipv4(header, payload, offset, more, identification=None):
    """`header` (20+ bytes) carrying `payload` at fragment `offset` (bytes, a multiple of 8)."""
    header = bytearray(header)
    struct.pack_into("!H", header, 2, len(header) + len(payload))
    if identification is not None:
        struct.pack_into("!H", header, 4, identification)
    struct.pack_into("!H", header, 6, (0x2000 if more else 0) | (offset // 8))
    struct.pack_into("!H", header, 10, 0)
    struct.pack_into("!H", header, 10, checksum(bytes(header)))
    return bytes(header) + payload


def fragments(header, payload, identification, size=32):
    pieces = [(start, payload[start:start + size]) for start in range(0, len(payload), size)]
    return [ipv4(header, piece, start, start + len(piece) < len(payload), identification) for start, piece in pieces]


def main():
    source, target = sys.argv[1], sys.argv[2]
    data = open(source, "rb").read()
    magic, = struct.unpack_from("<I", data, 0)
    assert magic == 0xA1B2C3D4 and struct.unpack_from("<I", data, 20)[0] == 1, "a little-endian Ethernet pcap"
    out = bytearray(data[:24])
    offset, cut, seen = 24, 0, 0

    def record(seconds, fraction, frame):
        out.extend(struct.pack("<IIII", seconds, fraction, len(frame), len(frame)) + frame)

    while offset + 16 <= len(data):
        seconds, fraction, captured, _ = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        seen += 1
        ip = frame[14:]
        is_tcp = frame[12:14] == b"\x08\x00" and ip[9] == 6 and struct.unpack_from("!H", ip, 6)[0] & 0x3FFF == 0
        header_length = (ip[0] & 0x0F) * 4 if is_tcp else 0
        total = struct.unpack_from("!H", ip, 2)[0] if is_tcp else 0
        if not is_tcp or total - header_length <= 48 or total > len(ip):
            record(seconds, fraction, frame)
        else:
            cut += 1
            pieces = fragments(ip[:header_length], ip[header_length:total], identification=cut & 0xFFFF)
            if cut % 3 == 0:
                pieces.reverse()
            if cut % 5 == 0:
                pieces.insert(1, pieces[0])
            if cut % 50 == 0:
                pieces.pop()
            for piece in pieces:
                record(seconds, fraction, frame[:14] + piece)
        if seen % 100 == 0:
            udp = struct.pack("!HHHH", 5353, 5353, 8 + 40, 0) + bytes(range(40))
            header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, 17, 0, bytes([10, 9, 9, 1]), bytes([10, 9, 9, 2]))
            for start, more in ((0, True), (24, False)):
                piece = ipv4(header, udp[start:start + 24] if more else udp[start:], start, more, identification=seen & 0xFFFF)
                record(seconds, fraction, frame[:12] + b"\x08\x00" + piece)
    open(target, "wb").write(out)
    print(f"{cut} of {seen} packets cut into IP fragments")


if __name__ == "__main__":
    main()
