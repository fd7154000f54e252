/// The parser a stage owns: one protocol's bytes in, per direction and in stream order, and what
/// it understood out as that protocol's own events, during the call (HTTP/1.1's
/// `HTTPConversation`, WebSocket's `WebSocketConnectionDecoder`, TLS's `TLSConnectionDecoder`).
///
/// A parser never prints, reads files or keeps the bytes it is lent, and knows nothing of the
/// timeline or of the stage after it: the stage that owns it (`Stage`, in `WSTap`) turns its
/// events into timeline events and chooses the next stage from the tables. The same calls serve
/// every parser, as Zeek's analyzers take `DeliverStream`, `Undelivered` and `EndOfData`, so that
/// one split feeder (Tests/TestSupport) checks them all: the same events whatever the cuts.
public protocol StreamParser {
    associatedtype Event

    /// In-order bytes of `direction`, captured at `time`. The bytes are valid only during the call.
    mutating func receive(
        _ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp,
        emit: (Event) -> Void)

    /// Bytes of `direction` the capture lacks, and why; the stream goes on after them.
    mutating func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp, emit: (Event) -> Void)

    /// The next bytes of `direction` may not start where a unit starts (bytes were lost where
    /// their length could not be known): a parser that can search for the next unit does.
    mutating func boundaryUnknown(direction: StreamDirection)

    /// No more bytes will come in `direction`: report what is still held or unfinished.
    mutating func finish(direction: StreamDirection, at time: CaptureTimestamp, emit: (Event) -> Void)
}

extension StreamParser {
    public mutating func boundaryUnknown(direction: StreamDirection) {}
}
