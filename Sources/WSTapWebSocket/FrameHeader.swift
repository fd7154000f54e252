/// A parsed frame header (RFC 6455 §5.2). Flags are computed from the raw first byte.
public struct FrameHeader: Hashable, Sendable {
    /// FIN, RSV1-3 and the opcode, as on the wire.
    public var firstByte: UInt8
    public var masked: Bool
    /// The payload length as the length field states it.
    public var payloadLength: UInt64
    public var maskingKey: UInt32?
    /// Bytes of the header: 2 to 14.
    public var headerLength: Int
    /// The length used the 16- or 64-bit form for a value a shorter form could hold.
    public var nonMinimalLength: Bool
    /// The 64-bit length had its most significant bit set (RFC 6455 §5.2 forbids it).
    public var lengthTopBitSet: Bool

    public var fin: Bool { firstByte & 0x80 != 0 }
    /// RSV1-3 as a 3-bit value, RSV1 = 4.
    public var rsv: UInt8 { (firstByte >> 4) & 0x07 }
    public var rsv1: Bool { firstByte & 0x40 != 0 }

    /// RSV1 as the `rsv` field and the negotiated reserved bits count it (RSV1 = 4): the bit
    /// permessage-deflate defines (RFC 7692 §6).
    public static let rsv1Bit: UInt8 = 0b100
    public var opcode: WebSocketOpcode { WebSocketOpcode(rawValue: firstByte & 0x0F) }

    public enum ParseResult: Equatable {
        case needMoreData
        case header(FrameHeader)
    }

    /// Parses a header from the start of `bytes`, or says more bytes are needed.
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> ParseResult {
        guard bytes.count >= 2 else { return .needMoreData }
        let first = bytes[0], second = bytes[1]
        let masked = second & 0x80 != 0
        let shortLength = second & 0x7F
        var offset = 2
        var length = UInt64(shortLength)
        var nonMinimal = false
        var topBit = false
        if shortLength == 126 {
            guard bytes.count >= 4 else { return .needMoreData }
            length = UInt64(bytes[2]) << 8 | UInt64(bytes[3])
            nonMinimal = length < 126
            offset = 4
        } else if shortLength == 127 {
            guard bytes.count >= 10 else { return .needMoreData }
            length = 0
            for index in 2..<10 { length = length << 8 | UInt64(bytes[index]) }
            topBit = length >> 63 != 0
            nonMinimal = length <= 0xFFFF
            offset = 10
        }
        var key: UInt32?
        if masked {
            guard bytes.count >= offset + 4 else { return .needMoreData }
            key = UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
                | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
            offset += 4
        }
        return .header(FrameHeader(
            firstByte: first, masked: masked, payloadLength: length, maskingKey: key,
            headerLength: offset, nonMinimalLength: nonMinimal, lengthTopBitSet: topBit))
    }
}

/// XORs `bytes` with a masking key (RFC 6455 §5.3), starting `offset` bytes into the payload.
@inline(__always)
func unmask(_ bytes: UnsafeMutableRawBufferPointer, key: UInt32, offset: Int) {
    unmask(UnsafeRawBufferPointer(bytes), into: bytes, key: key, offset: offset)
}

/// Writes `source` XORed with a masking key into `destination` (of the same size, or `source` itself).
@inline(__always)
func unmask(_ source: UnsafeRawBufferPointer, into bytes: UnsafeMutableRawBufferPointer, key: UInt32, offset: Int) {
    guard !bytes.isEmpty else { return }
    // The key with its first byte lowest (the order of a little-endian load), turned to start at `offset`.
    let inOrder = key.byteSwapped
    let shift = UInt32(offset & 3) * 8
    let rotated = shift == 0 ? inOrder : inOrder >> shift | inOrder << (32 - shift)
    let wide = UInt64(rotated) | UInt64(rotated) << 32
    var index = 0
    let count = bytes.count
    while index + 8 <= count {
        let word = source.loadUnaligned(fromByteOffset: index, as: UInt64.self)
        bytes.storeBytes(of: word ^ wide, toByteOffset: index, as: UInt64.self)
        index += 8
    }
    while index < count {
        bytes[index] = source[index] ^ UInt8(truncatingIfNeeded: rotated >> (8 * UInt32(index & 3)))
        index += 1
    }
}
