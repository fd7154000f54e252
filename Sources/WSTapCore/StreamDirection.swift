/// Which way bytes flow on a connection.
public enum StreamDirection: Int, Hashable, Sendable, CaseIterable {
    case clientToServer = 0
    case serverToClient = 1

    /// The short label used in every output: `c2s` or `s2c`.
    public var label: String { self == .clientToServer ? "c2s" : "s2c" }

    public var reversed: StreamDirection { self == .clientToServer ? .serverToClient : .clientToServer }
}

/// One value per direction, indexed by `StreamDirection.rawValue` (0: client to server).
///
/// Two stored fields rather than an array of two: counters updated on every frame then need no
/// uniqueness check or reference counting.
public struct DirectionPair<Value: Sendable & Equatable>: Sendable, Equatable {
    public var clientToServer: Value
    public var serverToClient: Value

    public init(_ both: Value) {
        clientToServer = both
        serverToClient = both
    }

    public subscript(index: Int) -> Value {
        get { index == 0 ? clientToServer : serverToClient }
        set {
            if index == 0 { clientToServer = newValue } else { serverToClient = newValue }
        }
    }

    public subscript(direction: StreamDirection) -> Value {
        get { self[direction.rawValue] }
        set { self[direction.rawValue] = newValue }
    }
}
