/// Why bytes of a stream are missing.
public enum MissingCause: String, Sendable {
    /// Segments were never captured (a hole in the sequence space).
    case notCaptured = "not-captured"
    /// The capture's snapshot length cut the packets.
    case cutBySnaplen = "snaplen"
}

/// Bytes of a stream that the capture lacks, and why: what every stage is told where a stream
/// has a hole.
public struct MissingBytes: Sendable, Equatable {
    public var count: UInt64
    public var cause: MissingCause

    public init(_ count: UInt64, cause: MissingCause) {
        self.count = count
        self.cause = cause
    }
}
