/// One protocol decoder in a connection's chain (TCP stream → [TLS] → HTTP/1.1 → WebSocket → …).
///
/// A stage takes each direction's bytes in stream order and reports what it understood as events,
/// during the call; it never prints, reads files or keeps the bytes it is lent. The same three calls
/// serve every stage, as Zeek's analyzers take `DeliverStream`, `Undelivered` and `EndOfData`, so
/// that the connection can chain stages without knowing what each one decodes.
public protocol StreamStage {
    associatedtype Event

    /// In-order bytes of `direction`, captured at `time`. The bytes are valid only during the call.
    mutating func receive(
        _ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp,
        emit: (Event) -> Void)

    /// `byteCount` bytes of `direction` were not captured; the stream goes on after them.
    mutating func missing(
        byteCount: UInt64, direction: StreamDirection, at time: CaptureTimestamp, emit: (Event) -> Void)

    /// No more bytes will come in `direction`: report what is still held or unfinished.
    mutating func finish(direction: StreamDirection, at time: CaptureTimestamp, emit: (Event) -> Void)
}
