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
///
/// The one shape of per-direction state: a value changed through a subscript is changed in
/// place (`_modify`), so a pair of arrays or buffers is not copied when one of them grows.
public struct DirectionPair<Value> {
    public var clientToServer: Value
    public var serverToClient: Value

    public init(_ both: Value) {
        clientToServer = both
        serverToClient = both
    }

    public subscript(index: Int) -> Value {
        get { index == 0 ? clientToServer : serverToClient }
        _modify {
            if index == 0 { yield &clientToServer } else { yield &serverToClient }
        }
    }

    public subscript(direction: StreamDirection) -> Value {
        get { self[direction.rawValue] }
        _modify { yield &self[direction.rawValue] }
    }
}

extension DirectionPair: Sendable where Value: Sendable {}
extension DirectionPair: Equatable where Value: Equatable {}
