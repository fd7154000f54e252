import WSTapCore

/// A whole WebSocket message, as a message stage sees it: its unit is the message, not bytes.
/// `payload` is borrowed: valid only during the call.
public struct ApplicationInput {
    public var direction: StreamDirection
    /// The message's index in its direction of the stream, from 0.
    public var index: UInt64
    public var isText: Bool
    public var payload: UnsafeRawBufferPointer
    /// False when bytes of the message are missing or were not kept.
    public var isComplete: Bool
    public var time: CaptureTimestamp

    /// This message alone, as an application message's `messages`.
    public var only: Range<UInt64> { index..<index + 1 }

    public init(
        direction: StreamDirection, index: UInt64, isText: Bool, payload: UnsafeRawBufferPointer, isComplete: Bool,
        time: CaptureTimestamp
    ) {
        self.direction = direction
        self.index = index
        self.isText = isText
        self.payload = payload
        self.isComplete = isComplete
        self.time = time
    }
}

/// What a message stage reports.
public enum ApplicationOutput {
    case message(ApplicationMessage)
    case finding(ApplicationFinding, direction: StreamDirection)
}

/// The message-level stage: decodes an application protocol from the whole WebSocket messages of
/// one stream (both directions), as Wireshark's `ws.protocol` dissectors and Zeek's child
/// analyzers do. Registered by `Sec-WebSocket-Protocol`, URL or port (`StageRegistry`); it never
/// prints, and malformed input is a finding, never a crash.
public protocol MessageDecoder: AnyObject {
    /// A data message of the stream; what it completes is emitted during the call.
    func receive(_ input: ApplicationInput, emit: (ApplicationOutput) -> Void)
    /// Bytes of `direction` were lost: a unit in progress there cannot complete.
    func missing(direction: StreamDirection, emit: (ApplicationOutput) -> Void)
    /// The stream ended: report what is still unfinished.
    func finish(at time: CaptureTimestamp, emit: (ApplicationOutput) -> Void)
}

extension MessageDecoder {
    public func missing(direction: StreamDirection, emit: (ApplicationOutput) -> Void) {}
    public func finish(at time: CaptureTimestamp, emit: (ApplicationOutput) -> Void) {}
}
