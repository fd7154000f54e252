import Testing
import Synchronization
import WSTapCore
import WSTapCapture
@testable import WSTapPackets

func tcpHeader(sourcePort: UInt16 = 40000, destinationPort: UInt16 = 8080, seq: UInt32 = 1000, flags: UInt8 = 0x18) -> [UInt8] {
    var header = [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF)]
    header += [UInt8(seq >> 24), UInt8((seq >> 16) & 0xFF), UInt8((seq >> 8) & 0xFF), UInt8(seq & 0xFF)]
    header += [0, 0, 0, 0, 0x60, flags, 0xFF, 0xFF, 0, 0, 0, 0]  // data offset 6: one 4-byte option
    return header + [0x02, 0x04, 0x05, 0xB4]
}

func ipv4(_ payload: [UInt8], protocolNumber: UInt8 = 6, flagsAndOffset: UInt16 = 0x4000, totalLength: Int? = nil) -> [UInt8] {
    let length = totalLength ?? 20 + payload.count
    return [0x45, 0, UInt8(length >> 8), UInt8(length & 0xFF), 0, 1, UInt8(flagsAndOffset >> 8), UInt8(flagsAndOffset & 0xFF),
            64, protocolNumber, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2] + payload
}

func ipv6(_ payload: [UInt8], nextHeader: UInt8 = 6) -> [UInt8] {
    [0x60, 0, 0, 0, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF), nextHeader, 64]
        + [UInt8](repeating: 0, count: 15) + [1] + [UInt8](repeating: 0, count: 15) + [2] + payload
}

/// Every packet the helpers decoded: a result borrows its packet's bytes, so the packets live as
/// long as the tests do (AddressSanitizer caught results outliving a temporary array).
let decodedPackets = Mutex<[[UInt8]]>([])

func decode(_ bytes: [UInt8], _ linkType: LinkType, originalLength: Int? = nil) -> PacketDecodeResult {
    decodedPackets.withLock { $0.append(bytes) }
    return bytes.withUnsafeBytes { raw in
        PacketDecoder.decode(CapturedPacket(timestamp: .zero, linkType: linkType, bytes: raw,
                                            originalLength: originalLength ?? bytes.count))
    }
}

func segment(_ result: PacketDecodeResult) -> (source: String, destination: String, payload: [UInt8], missing: Int)? {
    guard case .tcp(let segment) = result else { return nil }
    return (segment.source.description, segment.destination.description, Array(segment.payload), segment.missingPayloadLength)
}

struct PacketDecoderTests {
    let ethernetHeader: [UInt8] = [UInt8](repeating: 0xAA, count: 12)

    @Test func ethernetWithQinQTagsAndPadding() {
        let ip = ipv4(tcpHeader() + Array("GET".utf8))
        let frame = ethernetHeader + [0x88, 0xA8, 0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00] + ip + [0, 0, 0]  // padded
        let decoded = segment(decode(frame, .ethernet))
        #expect(decoded?.source == "10.0.0.1:40000" && decoded?.destination == "10.0.0.2:8080")
        #expect(decoded?.payload == Array("GET".utf8))
    }

    @Test func ipv6WithExtensionHeadersOverSLL2() {
        let hopByHop: [UInt8] = [6, 0, 0, 0, 0, 0, 0, 0]
        let packet = [0x86, 0xDD, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6] + [UInt8](repeating: 0, count: 8)
            + ipv6(hopByHop + tcpHeader() + [1, 2], nextHeader: 0)
        let decoded = segment(decode(packet, .linuxSLL2))
        #expect(decoded?.source == "[::1]:40000" && decoded?.destination == "[::2]:8080")
        #expect(decoded?.payload == [1, 2])
    }

    @Test func linuxCookedNullAndRaw() {
        let ip = ipv4(tcpHeader() + [9])
        let sll = [0, 0, 0, 1, 0, 6] + [UInt8](repeating: 0, count: 8) + [0x08, 0x00] + ip
        #expect(segment(decode(sll, .linuxSLL))?.payload == [9])
        #expect(segment(decode([2, 0, 0, 0] + ip, .null))?.payload == [9])
        #expect(segment(decode(ip, .raw))?.payload == [9])
    }

    @Test func snaplenCutIsCountedAsMissing() {
        let ip = ipv4(tcpHeader() + [UInt8](repeating: 7, count: 100))
        let cut = Array(ip.prefix(ip.count - 60))
        let decoded = segment(decode(cut, .raw, originalLength: ip.count))
        #expect(decoded?.payload.count == 40 && decoded?.missing == 60)
    }

    @Test func otherTrafficIsSkippedWithAReason() {
        func reason(_ result: PacketDecodeResult) -> SkippedPacketReason? {
            if case .skipped(let reason) = result { return reason }
            return nil
        }
        #expect(reason(decode(ethernetHeader + [0x08, 0x06] + [UInt8](repeating: 0, count: 28), .ethernet)) == .notIP)
        #expect(reason(decode(ipv4([0, 0, 0, 0, 0, 8, 0, 0], protocolNumber: 17), .raw)) == .notTCP)
        #expect(reason(decode(ipv4(Array(tcpHeader().prefix(10))), .raw)) == .malformed)
        #expect(reason(decode([0x45, 0, 0], .raw)) == .malformed)
        #expect(reason(decode(ipv4(tcpHeader()), LinkType(rawValue: 147))) == .unsupportedLinkType)
        let badOffset = ipv4(Array(tcpHeader().prefix(12)) + [0x10] + Array(tcpHeader().dropFirst(13)))
        #expect(reason(decode(badOffset, .raw)) == .malformed)
    }

    @Test func fragmentsAreReassembledFirstCopyWins() {
        let body = tcpHeader() + Array("fragmented payload!".utf8)   // 24 + 19 bytes
        let pieces = [(0, Array(body[0..<16]), true), (16, Array(body[16..<32]), true), (32, Array(body[32...]), false)]
        let reassembler = IPFragmentReassembler()
        var payloads: [[UInt8]] = []
        // Out of order, with a duplicate of the middle piece carrying other bytes.
        for (offset, bytes, more) in [pieces[2], pieces[1], (16, [UInt8](repeating: 0xEE, count: 16), true), pieces[0]] {
            let packet = ipv4(bytes, flagsAndOffset: (more ? 0x2000 : 0) | UInt16(offset / 8))
            // The fragment's payload is borrowed from the packet: it must outlive the call.
            withExtendedLifetime(packet) {
                guard case .fragment(let fragment) = decode(packet, .raw) else { Issue.record("not a fragment"); return }
                reassembler.add(fragment, at: .zero) { datagram in
                    guard case .tcp(let segment) = PacketDecoder.decodeReassembled(
                        protocolNumber: fragment.protocolNumber, payload: datagram,
                        source: fragment.source, destination: fragment.destination)
                    else { return }
                    payloads.append(Array(segment.payload))
                }
            }
        }
        #expect(payloads == [Array("fragmented payload!".utf8)])
        #expect(reassembler.reassembled == 1 && reassembler.pending == 0)

        // A piece ending inside a unit before the last fragment says where the datagram ends (id
        // 9); a second "last" fragment with another end, which is not believed (id 10).
        let other = IPFragmentReassembler()
        var lengths: [Int] = []
        let plans: [(UInt8, [(Int, Int, Bool)])] = [
            (9, [(0, 16, true), (16, 21, true), (32, 11, false)]),
            (10, [(32, 11, false), (8, 40, false), (0, 8, true)]),
        ]
        for (id, plan) in plans {
            for (offset, count, more) in plan {
                var packet = ipv4([UInt8](repeating: 7, count: count), flagsAndOffset: (more ? 0x2000 : 0) | UInt16(offset / 8))
                packet[5] = id
                withExtendedLifetime(packet) {
                    guard case .fragment(let fragment) = decode(packet, .raw) else { Issue.record("not a fragment"); return }
                    other.add(fragment, at: .zero) { lengths.append($0.count) }
                }
            }
        }
        #expect(lengths == [43, 43] && other.pending == 0)
    }

    @Test func fragmentFloodsAreGivenUpWithinBounds() {
        /// Adds one fragment to `reassembler` (its payload is borrowed from the packet, so it is
        /// added while the packet exists).
        func add(
            to reassembler: IPFragmentReassembler, id: UInt16, offset: Int, _ bytes: [UInt8], more: Bool = true,
            at time: CaptureTimestamp = .zero, complete: (UnsafeRawBufferPointer) -> Void = { _ in }
        ) {
            var packet = ipv4(bytes, flagsAndOffset: (more ? 0x2000 : 0) | UInt16(offset / 8))
            packet[4] = UInt8(id >> 8)
            packet[5] = UInt8(id & 0xFF)
            packet.withUnsafeBytes { raw in
                let captured = CapturedPacket(timestamp: .zero, linkType: .raw, bytes: raw, originalLength: raw.count)
                guard case .fragment(let fragment) = PacketDecoder.decode(captured) else { Issue.record("not a fragment"); return }
                reassembler.add(fragment, at: time, complete: complete)
            }
        }
        // The same 1,480 bytes over and over: given up once it holds twice a datagram's maximum.
        let duplicates = IPFragmentReassembler()
        let piece = [UInt8](repeating: 1, count: 1480)
        for _ in 0..<1000 { add(to: duplicates, id: 1, offset: 0, piece) { _ in Issue.record("nothing to complete") } }
        #expect(duplicates.abandoned == 11 && duplicates.pending == 1)
        // Many incomplete datagrams: the oldest are given up to stay under the byte limit.
        let many = IPFragmentReassembler(maxHeldBytes: 100_000)
        for id in 0..<200 {
            let time = CaptureTimestamp(seconds: 0, nanoseconds: UInt32(id))
            add(to: many, id: UInt16(id), offset: 0, [UInt8](repeating: 2, count: 1000), at: time)
        }
        #expect(many.pending == 100 && many.abandoned == 100)
        // The newest is still whole once its last piece comes (room is made by giving up the oldest).
        var completed = 0
        let last = CaptureTimestamp(seconds: 0, nanoseconds: 200)
        add(to: many, id: 199, offset: 1000, [UInt8](repeating: 3, count: 8), more: false, at: last) { completed = $0.count }
        #expect(completed == 1008 && many.reassembled == 1)
    }

    @Test func tunnelsAreOpened() {
        let inner = ipv4(tcpHeader() + [7, 7])
        func outerIPv4(_ protocolNumber: UInt8, _ payload: [UInt8]) -> [UInt8] { ipv4(payload, protocolNumber: protocolNumber) }
        let gre = outerIPv4(47, [0x20, 0x00, 0x08, 0x00, 0, 0, 0, 42] + inner)            // with a key
        let ipInIP = outerIPv4(4, inner)
        let vxlan = outerIPv4(17, [0x12, 0x34, 0x12, 0xB5, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 1, 0]
            + ethernetHeader + [0x08, 0x00] + inner)
        let mpls = ethernetHeader + [0x88, 0x47, 0, 0, 0x10, 0x40, 0, 0, 0x21, 0x40] + inner
        #expect(segment(decode(gre, .raw))?.payload == [7, 7])
        #expect(segment(decode(ipInIP, .raw))?.payload == [7, 7])
        #expect(segment(decode(vxlan, .raw))?.payload == [7, 7])
        #expect(segment(decode(mpls, .ethernet))?.payload == [7, 7])
        // Nesting deeper than four tunnels is not followed.
        var nested = inner
        for _ in 0..<6 { nested = outerIPv4(4, nested) }
        if case .tcp = decode(nested, .raw) { Issue.record("followed too many tunnels") }
    }

    /// Ethernet bridged in GRE (EtherType 0x6558) opens one level per header: a packet that is a
    /// chain of them (2 MB, 150,000 headers) ends at the depth limit instead of overflowing the
    /// stack, and one bridged frame is still decoded.
    @Test func bridgedEthernetChainsEndAtTheDepthLimit() {
        let bridge = ethernetHeader + [0x65, 0x58]
        let inner = ipv4(tcpHeader() + [7, 7])
        let oneBridge = ipv4([0x00, 0x00, 0x65, 0x58] + ethernetHeader + [0x08, 0x00] + inner, protocolNumber: 47)
        #expect(segment(decode(oneBridge, .raw))?.payload == [7, 7])
        var chain = [0x00, 0x00, 0x65, 0x58] as [UInt8]
        chain.reserveCapacity(2 << 20)
        while chain.count < 2 << 20 { chain += bridge }
        let result = decode(ethernetHeader + [0x08, 0x00] + ipv4(chain + inner, protocolNumber: 47, totalLength: 0), .ethernet)
        if case .tcp = result { Issue.record("decoded TCP beyond the depth limit") }
    }

    /// Found by the packet-decoder fuzz target: extension headers that end past the declared
    /// payload length, followed by a tunnel, once trapped on a reversed range.
    @Test func extensionHeadersPastTheDeclaredLengthAreMalformed() {
        let hopByHop: [UInt8] = [47, 0, 0, 0, 0, 0, 0, 0]  // next: GRE
        var packet = ipv6(hopByHop + [0, 0, 0x08, 0x00] + ipv4(tcpHeader()), nextHeader: 0)
        packet[5] = 4  // payload length 4: ends inside the hop-by-hop header
        guard case .skipped(.malformed) = decode(packet, .raw) else {
            Issue.record("not reported as malformed")
            return
        }
    }

    @Test func addressesPrintInTheirUsualForms() {
        #expect(IPAddress.v6(high: 0x2001_0db8_0000_0000, low: 0x0000_0000_0000_0001).description == "2001:db8::1")
        #expect(IPAddress.v6(high: 0, low: 0xFFFF_7F00_0001).description == "::ffff:127.0.0.1")
        #expect(IPAddress.v6(high: 0x2001_0db8_0001_0001, low: 0x0001_0001_0001_0001).description == "2001:db8:1:1:1:1:1:1")
        #expect(Endpoint(address: .v6(high: 0, low: 1), port: 80).description == "[::1]:80")
    }
}
