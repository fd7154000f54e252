import WSTapPackets

/// A TCP 4-tuple that is the same for both directions.
struct ConnectionKey: Hashable {
    var lower: Endpoint
    var upper: Endpoint

    /// Two words per endpoint at most: hashing is on the path of every packet.
    func hash(into hasher: inout Hasher) {
        Self.combine(lower, into: &hasher)
        Self.combine(upper, into: &hasher)
    }

    private static func combine(_ endpoint: Endpoint, into hasher: inout Hasher) {
        switch endpoint.address {
        case .v4(let address):
            hasher.combine(UInt64(address) << 16 | UInt64(endpoint.port))
        case .v6(let high, let low):
            hasher.combine(high)
            hasher.combine(low ^ UInt64(endpoint.port))
        }
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
