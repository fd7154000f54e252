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
    /// How many bytes, or at most how many when `boundaryLost`.
    public var count: UInt64
    public var cause: MissingCause
    /// The bytes after the gap may not continue the stream where `count` says (the carrier lost
    /// its own framing: an HTTP/2 gap that ran past the stream's DATA frame): a unit in progress
    /// ends at the gap, and the next one is searched for.
    public var boundaryLost: Bool

    public init(_ count: UInt64, cause: MissingCause, boundaryLost: Bool = false) {
        self.count = count
        self.cause = cause
        self.boundaryLost = boundaryLost
    }
}
