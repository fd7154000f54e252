/// An IPv4 or IPv6 address as carried in a packet header.
public enum IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    case v4(UInt32)
    case v6(high: UInt64, low: UInt64)

    /// The dotted-quad or RFC 5952 text form (`127.0.0.1`, `::1`).
    public var description: String {
        switch self {
        case .v4(let value):
            return "\(value >> 24).\((value >> 16) & 0xFF).\((value >> 8) & 0xFF).\(value & 0xFF)"
        case .v6(let high, let low):
            return Self.formatIPv6(high: high, low: low)
        }
    }

    private static func formatIPv6(high: UInt64, low: UInt64) -> String {
        var groups = [UInt16](repeating: 0, count: 8)
        for index in 0..<4 {
            groups[index] = UInt16(truncatingIfNeeded: high >> UInt64(48 - 16 * index))
            groups[index + 4] = UInt16(truncatingIfNeeded: low >> UInt64(48 - 16 * index))
        }
        if high == 0, low >> 32 == 0xFFFF {
            return "::ffff:" + IPAddress.v4(UInt32(truncatingIfNeeded: low)).description
        }
        // RFC 5952: compress the longest run (of two or more) of zero groups, the first if tied.
        var bestStart = -1, bestLength = 0, runStart = -1
        for index in 0...8 {
            if index < 8, groups[index] == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                let length = index - runStart
                if length > bestLength, length >= 2 { bestStart = runStart; bestLength = length }
                runStart = -1
            }
        }
        func hex(_ range: Range<Int>) -> String {
            groups[range].map { String($0, radix: 16) }.joined(separator: ":")
        }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        switch (lhs, rhs) {
        case let (.v4(a), .v4(b)): a < b
        case let (.v6(ah, al), .v6(bh, bl)): (ah, al) < (bh, bl)
        case (.v4, .v6): true
        case (.v6, .v4): false
        }
    }
}

/// An IP address and TCP port.
public struct Endpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// `1.2.3.4:80`, or `[::1]:80` for IPv6.
    public var description: String {
        switch address {
        case .v4: "\(address):\(port)"
        case .v6: "[\(address)]:\(port)"
        }
    }

    public static func < (lhs: Endpoint, rhs: Endpoint) -> Bool {
        (lhs.address, lhs.port) < (rhs.address, rhs.port)
    }
}
