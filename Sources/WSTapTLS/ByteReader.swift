/// Reads big-endian fields and length-prefixed vectors off the front of bytes, never past them.
struct ByteReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        offset += 1
        return bytes[offset - 1]
    }

    mutating func uint16() -> UInt16? {
        guard let high = byte(), let low = byte() else { return nil }
        return UInt16(high) << 8 | UInt16(low)
    }

    mutating func skip(_ count: Int) -> Bool {
        guard bytes.count - offset >= count else { return false }
        offset += count
        return true
    }

    mutating func bytes(_ count: Int) -> [UInt8]? {
        guard bytes.count - offset >= count else { return nil }
        offset += count
        return Array(bytes[(offset - count)..<offset])
    }

    /// A vector whose length comes first in `lengthBytes` bytes.
    mutating func vector(lengthBytes: Int) -> [UInt8]? {
        var length = 0
        for _ in 0..<lengthBytes {
            guard let next = byte() else { return nil }
            length = length << 8 | Int(next)
        }
        return bytes(length)
    }
}
