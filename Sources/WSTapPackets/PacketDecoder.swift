import WSTapCore
import WSTapCapture

/// Why a packet did not yield a TCP segment; each is counted in the capture summary.
public enum SkippedPacketReason: String, Hashable, Sendable, CaseIterable {
    case unsupportedLinkType = "unsupported-link-type"
    case notIP = "not-ip"
    case notTCP = "not-tcp"
    case ipFragment = "ip-fragment"
    case malformed = "malformed"
}

/// The result of decoding one captured packet down to TCP.
public enum PacketDecodeResult {
    case tcp(TCPSegment)
    /// A piece of a fragmented IP datagram: reassemble with `IPFragmentReassembler`.
    case fragment(IPFragment)
    case skipped(SkippedPacketReason)
}

/// One fragment of an IPv4 or IPv6 datagram; `payload` is borrowed from the packet.
public struct IPFragment {
    public var source: IPAddress
    public var destination: IPAddress
    public var identification: UInt32
    /// The upper-layer protocol (6 for TCP).
    public var protocolNumber: UInt8
    /// Byte offset of this fragment's payload in the datagram.
    public var offset: Int
    public var moreFragments: Bool
    public var payload: UnsafeRawBufferPointer
}

/// Decodes link layer, IPv4/IPv6 and TCP headers without copying the packet.
///
/// Tunnels are opened on the way: GRE, IP in IP, VXLAN (UDP 4789), MPLS and Ethernet bridged in
/// GRE, up to four deep. Decoders call each other only through a tunnel, and every tunnel adds
/// one to `depth`: the recursion is at most `maxEncapsulationDepth` levels, whatever the packet.
public enum PacketDecoder {
    private static let maxEncapsulationDepth = 4

    /// Decodes `packet` down to its TCP segment, never trusting a length field.
    public static func decode(_ packet: CapturedPacket) -> PacketDecodeResult {
        let bytes = packet.bytes
        let missingTail = packet.missingLength
        switch packet.linkType {
        case .ethernet:
            return decodeEthernet(bytes, missingTail: missingTail, depth: 0)
        case .linuxSLL:
            guard bytes.count >= 16 else { return .skipped(.malformed) }
            return decodeEtherType(bytes.uint16BigEndian(at: 14), bytes.slice(16, bytes.count), missingTail, depth: 0)
        case .linuxSLL2:
            guard bytes.count >= 20 else { return .skipped(.malformed) }
            return decodeEtherType(bytes.uint16BigEndian(at: 0), bytes.slice(20, bytes.count), missingTail, depth: 0)
        case .null, .loop:
            guard bytes.count >= 4 else { return .skipped(.malformed) }
            return decodeIPByVersion(bytes.slice(4, bytes.count), missingTail, depth: 0)
        case .raw, .rawOpenBSD, .linkTypeRaw, .ipv4, .ipv6:
            return decodeIPByVersion(bytes, missingTail, depth: 0)
        default:
            return .skipped(.unsupportedLinkType)
        }
    }

    private static func decodeEthernet(_ bytes: UnsafeRawBufferPointer, missingTail: Int, depth: Int) -> PacketDecodeResult {
        var offset = 12
        // 802.1Q, 802.1ad (QinQ) and the older 0x9100 tag: each adds four bytes before the type.
        while true {
            guard offset + 2 <= bytes.count else { return .skipped(.malformed) }
            let etherType = bytes.uint16BigEndian(at: offset)
            if etherType == 0x8100 || etherType == 0x88A8 || etherType == 0x9100 {
                offset += 4
                continue
            }
            return decodeEtherType(etherType, bytes.slice(offset + 2, bytes.count), missingTail, depth: depth)
        }
    }

    private static func decodeEtherType(
        _ etherType: UInt16, _ bytes: UnsafeRawBufferPointer, _ missingTail: Int, depth: Int
    ) -> PacketDecodeResult {
        switch etherType {
        case 0x0800: return decodeIPv4(bytes, missingTail, depth: depth)
        case 0x86DD: return decodeIPv6(bytes, missingTail, depth: depth)
        case 0x8847, 0x8848: return decodeMPLS(bytes, missingTail, depth: depth + 1)
        // Transparent Ethernet bridging (inside GRE): one more level, so a chain of them ends.
        case 0x6558 where depth > 0:
            guard depth < maxEncapsulationDepth else { return .skipped(.notTCP) }
            return decodeEthernet(bytes, missingTail: missingTail, depth: depth + 1)
        default: return .skipped(.notIP)
        }
    }

    private static func decodeIPByVersion(_ bytes: UnsafeRawBufferPointer, _ missingTail: Int, depth: Int) -> PacketDecodeResult {
        guard let first = bytes.first else { return .skipped(.malformed) }
        switch first >> 4 {
        case 4: return decodeIPv4(bytes, missingTail, depth: depth)
        case 6: return decodeIPv6(bytes, missingTail, depth: depth)
        default: return .skipped(.notIP)
        }
    }

    private static func decodeIPv4(_ bytes: UnsafeRawBufferPointer, _ missingTail: Int, depth: Int) -> PacketDecodeResult {
        guard bytes.count >= 20, bytes[0] >> 4 == 4 else { return .skipped(.malformed) }
        let headerLength = Int(bytes[0] & 0x0F) * 4
        guard headerLength >= 20, headerLength <= bytes.count else { return .skipped(.malformed) }
        let totalLength = Int(bytes.uint16BigEndian(at: 2))
        // A zero total length comes from segmentation offload on the capturing host: use what is there.
        let declaredEnd = totalLength == 0 ? bytes.count + missingTail : totalLength
        guard declaredEnd >= headerLength else { return .skipped(.malformed) }
        let source = IPAddress.v4(bytes.uint32BigEndian(at: 12))
        let destination = IPAddress.v4(bytes.uint32BigEndian(at: 16))
        let flagsAndOffset = bytes.uint16BigEndian(at: 6)
        if flagsAndOffset & 0x3FFF != 0 {
            guard missingTail == 0, declaredEnd <= bytes.count else { return .skipped(.ipFragment) }
            return .fragment(IPFragment(
                source: source, destination: destination, identification: UInt32(bytes.uint16BigEndian(at: 4)),
                protocolNumber: bytes[9], offset: Int(flagsAndOffset & 0x1FFF) * 8,
                moreFragments: flagsAndOffset & 0x2000 != 0, payload: bytes.slice(headerLength, declaredEnd)))
        }
        return decodeTransport(bytes[9], bytes, from: headerLength, declaredEnd: declaredEnd,
                               source: source, destination: destination, missingTail: missingTail, depth: depth)
    }

    /// The upper layer of an IP packet: TCP, or a tunnel to open.
    private static func decodeTransport(
        _ protocolNumber: UInt8, _ bytes: UnsafeRawBufferPointer, from start: Int, declaredEnd: Int,
        source: IPAddress, destination: IPAddress, missingTail: Int, depth: Int
    ) -> PacketDecodeResult {
        // IPv6 extension headers may end past the length the IP header declares.
        guard start <= declaredEnd else { return .skipped(.malformed) }
        if protocolNumber == 6 {
            return decodeTCP(bytes, from: start, declaredEnd: declaredEnd, source: source, destination: destination)
        }
        guard depth < maxEncapsulationDepth else { return .skipped(.notTCP) }
        let inner = bytes.slice(start, min(declaredEnd, bytes.count))
        let innerMissing = max(0, declaredEnd - bytes.count)
        switch protocolNumber {
        case 4: return decodeIPv4(inner, innerMissing, depth: depth + 1)
        case 41: return decodeIPv6(inner, innerMissing, depth: depth + 1)
        case 47: return decodeGRE(inner, innerMissing, depth: depth + 1)
        case 17: return decodeVXLAN(inner, innerMissing, depth: depth + 1)
        default: return .skipped(.notTCP)
        }
    }

    /// Reassembles nothing itself: decodes a datagram that `IPFragmentReassembler` put back together.
    public static func decodeReassembled(
        protocolNumber: UInt8, payload: UnsafeRawBufferPointer, source: IPAddress, destination: IPAddress
    ) -> PacketDecodeResult {
        decodeTransport(protocolNumber, payload, from: 0, declaredEnd: payload.count,
                        source: source, destination: destination, missingTail: 0, depth: 1)
    }

    /// GRE (RFC 2784/2890) version 0: optional checksum, key and sequence words, then an EtherType.
    private static func decodeGRE(_ bytes: UnsafeRawBufferPointer, _ missingTail: Int, depth: Int) -> PacketDecodeResult {
        guard bytes.count >= 4 else { return .skipped(.malformed) }
        let flags = bytes.uint16BigEndian(at: 0)
        guard flags & 0x0007 == 0 else { return .skipped(.notTCP) }  // version 1 (PPTP) carries PPP
        var offset = 4
        if flags & 0x8000 != 0 { offset += 4 }
        if flags & 0x2000 != 0 { offset += 4 }
        if flags & 0x1000 != 0 { offset += 4 }
        guard offset <= bytes.count else { return .skipped(.malformed) }
        return decodeEtherType(bytes.uint16BigEndian(at: 2), bytes.slice(offset, bytes.count), missingTail, depth: depth)
    }

    /// VXLAN (RFC 7348) on its UDP port 4789: an Ethernet frame after 16 bytes of UDP and VXLAN header.
    private static func decodeVXLAN(_ bytes: UnsafeRawBufferPointer, _ missingTail: Int, depth: Int) -> PacketDecodeResult {
        guard bytes.count >= 16, bytes.uint16BigEndian(at: 2) == 4789, bytes[8] & 0x08 != 0 else {
            return .skipped(.notTCP)
        }
        return decodeEthernet(bytes.slice(16, bytes.count), missingTail: missingTail, depth: depth)
    }

    /// MPLS label stack (RFC 3032), then IP recognised by its version nibble.
    private static func decodeMPLS(_ bytes: UnsafeRawBufferPointer, _ missingTail: Int, depth: Int) -> PacketDecodeResult {
        var offset = 0
        while true {
            guard offset + 4 <= bytes.count else { return .skipped(.malformed) }
            let bottomOfStack = bytes[offset + 2] & 0x01 != 0
            offset += 4
            if bottomOfStack { break }
        }
        return decodeIPByVersion(bytes.slice(offset, bytes.count), missingTail, depth: depth)
    }

    private static func decodeIPv6(_ bytes: UnsafeRawBufferPointer, _ missingTail: Int, depth: Int) -> PacketDecodeResult {
        guard bytes.count >= 40, bytes[0] >> 4 == 6 else { return .skipped(.malformed) }
        let payloadLength = Int(bytes.uint16BigEndian(at: 4))
        let declaredEnd = payloadLength == 0 ? bytes.count + missingTail : 40 + payloadLength
        var nextHeader = bytes[6]
        var offset = 40
        let source = IPAddress.v6(high: bytes.uint64BigEndian(at: 8), low: bytes.uint64BigEndian(at: 16))
        let destination = IPAddress.v6(high: bytes.uint64BigEndian(at: 24), low: bytes.uint64BigEndian(at: 32))
        // Walk the extension header chain (RFC 8200 §4) up to the upper-layer header.
        while true {
            switch nextHeader {
            case 6, 4, 41, 47, 17:
                return decodeTransport(nextHeader, bytes, from: offset, declaredEnd: declaredEnd,
                                       source: source, destination: destination, missingTail: missingTail, depth: depth)
            case 0, 43, 60, 135, 139, 140:
                guard offset + 2 <= bytes.count else { return .skipped(.malformed) }
                nextHeader = bytes[offset]
                offset += (Int(bytes[offset + 1]) + 1) * 8
            case 51:
                guard offset + 2 <= bytes.count else { return .skipped(.malformed) }
                nextHeader = bytes[offset]
                offset += (Int(bytes[offset + 1]) + 2) * 4
            case 44:
                guard offset + 8 <= bytes.count else { return .skipped(.malformed) }
                let offsetAndFlags = bytes.uint16BigEndian(at: offset + 2)
                if offsetAndFlags & 0xFFF9 != 0 {
                    guard missingTail == 0, declaredEnd <= bytes.count, offset + 8 <= declaredEnd else {
                        return .skipped(.ipFragment)
                    }
                    return .fragment(IPFragment(
                        source: source, destination: destination,
                        identification: bytes.uint32BigEndian(at: offset + 4), protocolNumber: bytes[offset],
                        offset: Int(offsetAndFlags & 0xFFF8), moreFragments: offsetAndFlags & 0x0001 != 0,
                        payload: bytes.slice(offset + 8, declaredEnd)))
                }
                nextHeader = bytes[offset]
                offset += 8
            default:
                return .skipped(.notTCP)
            }
            guard offset <= bytes.count else { return .skipped(.malformed) }
        }
    }

    private static func decodeTCP(
        _ bytes: UnsafeRawBufferPointer, from start: Int, declaredEnd: Int,
        source: IPAddress, destination: IPAddress
    ) -> PacketDecodeResult {
        guard start + 20 <= bytes.count else { return .skipped(.malformed) }
        let dataOffset = Int(bytes[start + 12] >> 4) * 4
        guard dataOffset >= 20, start + dataOffset <= bytes.count, start + dataOffset <= declaredEnd else {
            return .skipped(.malformed)
        }
        let payloadStart = start + dataOffset
        // Ethernet pads short frames: the IP length, not the frame, says where the payload ends.
        let payloadEnd = min(declaredEnd, bytes.count)
        let segment = TCPSegment(
            source: Endpoint(address: source, port: bytes.uint16BigEndian(at: start)),
            destination: Endpoint(address: destination, port: bytes.uint16BigEndian(at: start + 2)),
            sequenceNumber: bytes.uint32BigEndian(at: start + 4),
            acknowledgmentNumber: bytes.uint32BigEndian(at: start + 8),
            flags: TCPFlags(rawValue: bytes[start + 13] & 0x3F),
            window: bytes.uint16BigEndian(at: start + 14),
            payload: bytes.slice(payloadStart, payloadEnd),
            missingPayloadLength: max(0, declaredEnd - payloadEnd))
        return .tcp(segment)
    }
}
