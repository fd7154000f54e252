extension Array where Element == UInt8 {
    /// Appends raw bytes with one `memcpy`: Array copies a typed buffer in one go but walks a
    /// raw one byte by byte, which showed up as the top cost of decoding small messages.
    @inline(__always)
    public mutating func appendBytes(_ raw: UnsafeRawBufferPointer) {
        guard let base = raw.baseAddress, !raw.isEmpty else { return }
        append(contentsOf: UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: raw.count))
    }

    /// A copy of raw bytes, made with one `memcpy`.
    @inline(__always)
    public init(copying raw: UnsafeRawBufferPointer) {
        self.init()
        appendBytes(raw)
    }
}

extension UInt64 {
    /// Adds, stopping at `UInt64.max`: byte totals summed from length fields a capture claims
    /// (a frame header may claim 2^63 bytes) must not wrap round to small numbers.
    @inlinable @inline(__always)
    public mutating func addSaturating(_ other: UInt64) {
        let (sum, overflow) = addingReportingOverflow(other)
        self = overflow ? .max : sum
    }
}

/// Hexadecimal digits.
public enum HexDigit {
    /// The value of one hex digit (`0-9`, `A-F`, `a-f`), or nil.
    @inlinable
    public static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case 0x30...0x39: digit - 0x30
        case 0x41...0x46: digit - 0x41 + 10
        case 0x61...0x66: digit - 0x61 + 10
        default: nil
        }
    }
}
