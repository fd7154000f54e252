import WSTapPackets

/// A TCP 4-tuple that is the same for both directions.
///
/// Stored as plain words, the lower endpoint first, so that hashing and comparing on every
/// packet are a few integer operations (an enum per address needed a switch per comparison).
package struct ConnectionKey: Hashable {
    private var lowerHigh: UInt64
    private var lowerLow: UInt64
    private var upperHigh: UInt64
    private var upperLow: UInt64
    /// Both ports, and whether each address is IPv6 (an IPv4 address is stored as `0, address`).
    private var portsAndFamilies: UInt64

    init(_ a: Endpoint, _ b: Endpoint) {
        let first = Self.words(a), second = Self.words(b)
        let (lower, upper) = (first.high, first.low, first.tail) < (second.high, second.low, second.tail)
            ? (first, second) : (second, first)
        lowerHigh = lower.high
        lowerLow = lower.low
        upperHigh = upper.high
        upperLow = upper.low
        portsAndFamilies = lower.tail << 32 | upper.tail
    }

    /// An endpoint's address halves, and its port with a family bit above it.
    private static func words(_ endpoint: Endpoint) -> (high: UInt64, low: UInt64, tail: UInt64) {
        switch endpoint.address {
        case .v4(let address): (0, UInt64(address), UInt64(endpoint.port))
        case .v6(let high, let low): (high, low, 1 << 16 | UInt64(endpoint.port))
        }
    }

    /// For `Dictionary` (the table of recently closed 4-tuples): one word, mixed beforehand.
    package func hash(into hasher: inout Hasher) {
        hasher.combine(mixed(seed: 0))
    }

    /// The words mixed with multiply-xorshift rounds from `seed` (`ConnectionIndex`'s hash).
    @inline(__always)
    func mixed(seed: UInt64) -> UInt64 {
        var state = seed ^ 0x9E37_79B9_7F4A_7C15
        Self.round(lowerLow, into: &state)
        Self.round(upperLow, into: &state)
        Self.round(portsAndFamilies, into: &state)
        if lowerHigh | upperHigh != 0 {
            Self.round(lowerHigh, into: &state)
            Self.round(upperHigh, into: &state)
        }
        return state ^ state >> 32
    }

    @inline(__always)
    private static func round(_ word: UInt64, into state: inout UInt64) {
        state = (state ^ word) &* 0xBF58_476D_1CE4_E5B9
        state ^= state >> 31
        state = state &* 0x94D0_49BB_1331_11EB
        state ^= state >> 29
    }
}
