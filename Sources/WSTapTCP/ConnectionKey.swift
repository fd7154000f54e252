import WSTapPackets

/// A TCP 4-tuple that is the same for both directions.
struct ConnectionKey: Hashable {
    var lower: Endpoint
    var upper: Endpoint

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
