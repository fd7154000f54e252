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
    case skipped(SkippedPacketReason)
}

/// Decodes link layer, IPv4/IPv6 and TCP headers without copying the packet.
public enum PacketDecoder {
    /// Decodes `packet` down to its TCP segment, never trusting a length field.
    public static func decode(_ packet: CapturedPacket) -> PacketDecodeResult {
        let bytes = packet.bytes
        let missingTail = packet.missingLength
        switch packet.linkType {
        case .ethernet:
            return decodeEthernet(bytes, missingTail: missingTail)
        case .linuxSLL:
            guard bytes.count >= 16 else { return .skipped(.malformed) }
            return decodeEtherType(bytes.uint16BigEndian(at: 14), bytes.slice(16, bytes.count), missingTail)
        case .linuxSLL2:
            guard bytes.count >= 20 else { return .skipped(.malformed) }
            return decodeEtherType(bytes.uint16BigEndian(at: 0), bytes.slice(20, bytes.count), missingTail)
        case .null, .loop:
            guard bytes.count >= 4 else { return .skipped(.malformed) }
            return decodeIPByVersion(bytes.slice(4, bytes.count), missingTail)
        case .raw, .rawOpenBSD, .linkTypeRaw, .ipv4, .ipv6:
            return decodeIPByVersion(bytes, missingTail)
        default:
            return .skipped(.unsupportedLinkType)
        }
    }

    private static func decodeEthernet(_ bytes: UnsafeRawBufferPointer, missingTail: Int) -> PacketDecodeResult {
        var offset = 12
        // 802.1Q, 802.1ad (QinQ) and the older 0x9100 tag: each adds four bytes before the type.
        while true {
            guard offset + 2 <= bytes.count else { return .skipped(.malformed) }
            let etherType = bytes.uint16BigEndian(at: offset)
            if etherType == 0x8100 || etherType == 0x88A8 || etherType == 0x9100 {
                offset += 4
                continue
            }
            return decodeEtherType(etherType, bytes.slice(offset + 2, bytes.count), missingTail)
        }
    }

    private static func decodeEtherType(
        _ etherType: UInt16, _ bytes: UnsafeRawBufferPointer, _ missingTail: Int
    ) -> PacketDecodeResult {
        switch etherType {
        case 0x0800: decodeIPv4(bytes, missingTail)
        case 0x86DD: decodeIPv6(bytes, missingTail)
        default: .skipped(.notIP)
        }
    }

    private static func decodeIPByVersion(_ bytes: UnsafeRawBufferPointer, _ missingTail: Int) -> PacketDecodeResult {
        guard let first = bytes.first else { return .skipped(.malformed) }
        switch first >> 4 {
        case 4: return decodeIPv4(bytes, missingTail)
        case 6: return decodeIPv6(bytes, missingTail)
        default: return .skipped(.notIP)
        }
    }

    private static func decodeIPv4(_ bytes: UnsafeRawBufferPointer, _ missingTail: Int) -> PacketDecodeResult {
        guard bytes.count >= 20, bytes[0] >> 4 == 4 else { return .skipped(.malformed) }
        let headerLength = Int(bytes[0] & 0x0F) * 4
        guard headerLength >= 20, headerLength <= bytes.count else { return .skipped(.malformed) }
        let flagsAndOffset = bytes.uint16BigEndian(at: 6)
        if flagsAndOffset & 0x3FFF != 0 { return .skipped(.ipFragment) }
        guard bytes[9] == 6 else { return .skipped(.notTCP) }
        let totalLength = Int(bytes.uint16BigEndian(at: 2))
        // A zero total length comes from segmentation offload on the capturing host: use what is there.
        let declaredEnd = totalLength == 0 ? bytes.count + missingTail : totalLength
        guard declaredEnd >= headerLength else { return .skipped(.malformed) }
        let source = IPAddress.v4(bytes.uint32BigEndian(at: 12))
        let destination = IPAddress.v4(bytes.uint32BigEndian(at: 16))
        return decodeTCP(bytes, from: headerLength, declaredEnd: declaredEnd, source: source, destination: destination)
    }

    private static func decodeIPv6(_ bytes: UnsafeRawBufferPointer, _ missingTail: Int) -> PacketDecodeResult {
        guard bytes.count >= 40, bytes[0] >> 4 == 6 else { return .skipped(.malformed) }
        let payloadLength = Int(bytes.uint16BigEndian(at: 4))
        let declaredEnd = payloadLength == 0 ? bytes.count + missingTail : 40 + payloadLength
        var nextHeader = bytes[6]
        var offset = 40
        // Walk the extension header chain (RFC 8200 §4) up to the upper-layer header.
        while true {
            switch nextHeader {
            case 6:
                let source = IPAddress.v6(high: bytes.uint64BigEndian(at: 8), low: bytes.uint64BigEndian(at: 16))
                let destination = IPAddress.v6(
                    high: bytes.uint64BigEndian(at: 24), low: bytes.uint64BigEndian(at: 32))
                return decodeTCP(bytes, from: offset, declaredEnd: declaredEnd, source: source, destination: destination)
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
                if offsetAndFlags & 0xFFF9 != 0 { return .skipped(.ipFragment) }
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
