import WSTapPackets

/// A TCP 4-tuple that is the same for both directions.
struct ConnectionKey: Hashable {
    var lower: Endpoint
    var upper: Endpoint

    func hash(into hasher: inout Hasher) {
        hasher.combine(mixedWords(seed: 0))
    }

    /// The table's hash, on the path of every packet: SipHash through `Hasher` cost more than the
    /// rest of the lookup, so the words are mixed with multiply-xorshift rounds and the table's
    /// per-process seed instead.
    func _rawHashValue(seed: Int) -> Int {
        Int(truncatingIfNeeded: mixedWords(seed: UInt64(UInt(bitPattern: seed))))
    }

    private func mixedWords(seed: UInt64) -> UInt64 {
        var state = seed ^ 0x9E37_79B9_7F4A_7C15
        Self.mix(lower, into: &state)
        Self.mix(upper, into: &state)
        state ^= state >> 32
        return state
    }

    @inline(__always)
    private static func mix(_ endpoint: Endpoint, into state: inout UInt64) {
        switch endpoint.address {
        case .v4(let address):
            round(UInt64(address) << 16 | UInt64(endpoint.port), into: &state)
        case .v6(let high, let low):
            round(high, into: &state)
            round(low ^ UInt64(endpoint.port), into: &state)
        }
    }

    @inline(__always)
    private static func round(_ word: UInt64, into state: inout UInt64) {
        state = (state ^ word) &* 0xBF58_476D_1CE4_E5B9
        state ^= state >> 31
        state = state &* 0x94D0_49BB_1331_11EB
        state ^= state >> 29
    }

    init(_ a: Endpoint, _ b: Endpoint) {
        if a < b {
            lower = a
            upper = b
        } else {
            lower = b
            upper = a
        }
    }
}
