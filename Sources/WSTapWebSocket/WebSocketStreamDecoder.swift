import WSTapCore

/// Decodes one direction of a WebSocket connection by putting its parts together: the
/// `FrameSynchronizer` finds frames (searching where boundaries are unknown), `FrameRules`
/// checks each header, the `MessageAssembler` joins fragments, and the `MessageTransform` undoes
/// permessage-deflate. Messages are built in one place, `deliver`.
public final class WebSocketStreamDecoder {
    /// The sender's role; nil until frames show it (masked frames come from clients).
    public private(set) var role: WebSocketRole?
    /// RSV bits the negotiated extensions define (RSV1 = 4).
    private let allowedReservedBits: UInt8
    private var synchronizer: FrameSynchronizer
    private var assembler: MessageAssembler
    private var transform: MessageTransform
    private var closeSeen = false
    /// Capture time of the bytes being decoded now: the time of each event this decoder emits.
    public private(set) var currentTime = CaptureTimestamp.zero
    /// The time of the current call; a frame found in bytes held since earlier has its own.
    private var callTime = CaptureTimestamp.zero

    /// A decoder for one direction. With `synchronized: false` it first searches for frame
    /// boundaries (a connection whose start was not captured); `role` may then be nil.
    public init(
        role: WebSocketRole?, allowedReservedBits: UInt8, compression: MessageCompression = .none,
        maxPayloadBytes: Int = 64 << 20, synchronized: Bool = true
    ) {
        self.role = role
        self.allowedReservedBits = allowedReservedBits
        synchronizer = FrameSynchronizer(
            allowedReservedBits: allowedReservedBits, maxPayloadBytes: maxPayloadBytes, synchronized: synchronized)
        assembler = MessageAssembler(maxMessageBytes: maxPayloadBytes, continuationsMayBeOrphaned: !synchronized)
        transform = MessageTransform(compression: compression, maxMessageBytes: maxPayloadBytes, windowKnown: synchronized)
    }

    /// True once this direction searched long enough without finding frames: it is not WebSocket.
    public var gaveUpSearching: Bool { synchronizer.gaveUpSearching }

    /// Sets the sender's role when the other direction revealed it.
    public func assumeRole(_ role: WebSocketRole) {
        if self.role == nil { self.role = role }
    }

    /// Decodes bytes captured at `time`; events are emitted during the call.
    public func receive(_ bytes: UnsafeRawBufferPointer, at time: CaptureTimestamp = .zero, emit: (WebSocketEvent) -> Void) {
        begin(at: time)
        synchronizer.receive(bytes, at: time, role: role) { handle($0, emit: emit) }
    }

    /// The stream ended: decode what a search still holds, report a frame cut off at the end,
    /// and hand on a fragmented message that can no longer complete.
    public func finish(at time: CaptureTimestamp = .zero, emit: (WebSocketEvent) -> Void) {
        begin(at: time)
        synchronizer.finish(at: time, role: role) { handle($0, emit: emit) }
        currentTime = callTime
        assembler.flushIncomplete { transformAndDeliver($0, emit: emit) }
    }

    /// The next bytes may not start at a frame boundary (the head before them was cut): search.
    public func boundaryUnknown() {
        if synchronizer.boundaryUnknown() { assembler.continuationsMayBeOrphaned = true }
    }

    /// Bytes the capture lacks. `reportsPartialFrames: false` keeps frames cut this way from
    /// being reported one by one (a snapshot length cuts every packet; it is reported once).
    public func missing(
        byteCount: UInt64, at time: CaptureTimestamp = .zero, reportsPartialFrames: Bool = true,
        emit: (WebSocketEvent) -> Void
    ) {
        begin(at: time)
        transform.streamLostBytes(role: role)
        synchronizer.missing(byteCount: byteCount, at: time, role: role, reportsPartialFrames: reportsPartialFrames) {
            handle($0, emit: emit)
        }
    }

    private func begin(at time: CaptureTimestamp) {
        callTime = time
        currentTime = time
    }

    private func handle(_ output: FrameSynchronizer.Output, emit: (WebSocketEvent) -> Void) {
        switch output {
        case .frame(let frame, let time):
            currentTime = time
            handle(frame, emit: emit)
            return
        case .resynchronized(let skipped, let masked):
            currentTime = callTime
            let found: WebSocketRole = masked ? .client : .server
            if role == nil { role = found }
            assembler.continuationsMayBeOrphaned = true
            emit(.resynchronized(skippedBytes: skipped, role: found))
        case .lostSynchronization(let bytes):
            currentTime = callTime
            emit(.violation(.lostSynchronization(bytes: bytes)))
            assembler.flushIncomplete { transformAndDeliver($0, emit: emit) }
        case .violation(let violation):
            currentTime = callTime
            emit(.violation(violation))
        }
    }

    private func handle(_ frame: DecodedFrame, emit: (WebSocketEvent) -> Void) {
        let header = frame.header
        let opcode = header.opcode
        FrameRules.check(header, role: role, allowedReservedBits: allowedReservedBits) { emit(.violation($0)) }
        if !frame.isComplete, frame.bytesNotKept > 0 {
            emit(.violation(.payloadNotKept(length: header.payloadLength, kept: frame.payload.count)))
        }
        if closeSeen { emit(.violation(.dataAfterClose(opcode))) }
        var closeBody: CloseFrameBody?
        if opcode == .close {
            let (body, violations) = CloseFrameBody.parse(frame.payload)
            closeBody = body
            violations.forEach { emit(.violation($0)) }
            closeSeen = true
        }
        emit(.frame(frame, close: closeBody))
        guard !opcode.isControl, !opcode.isReserved else { return }
        assembler.add(frame, violation: { emit(.violation($0)) }) { transformAndDeliver($0, emit: emit) }
    }

    private func transformAndDeliver(_ message: AssembledMessage, emit: (WebSocketEvent) -> Void) {
        transform.apply(to: message, role: role, violation: { emit(.violation($0)) }) { result in
            deliver(message, result: result, emit: emit)
        }
    }

    /// The one place a message is built; text is checked for UTF-8 over the whole message
    /// (RFC 6455 §8.1) when its bytes are decoded and complete.
    private func deliver(_ message: AssembledMessage, result: MessageTransform.Result, emit: (WebSocketEvent) -> Void) {
        switch result {
        case .decoded(let payload, let isComplete):
            var validUTF8: Bool?
            if message.opcode == .text {
                let valid = UTF8Validation.isValid(payload)
                validUTF8 = valid
                if !valid, isComplete { emit(.violation(.invalidUTF8Text)) }
            }
            emit(.message(WebSocketMessage(
                opcode: message.opcode, payload: payload, frameCount: message.frameCount,
                compressed: message.compressed, isComplete: isComplete, isValidUTF8: validUTF8, isDecoded: true)))
        case .undecoded:
            emit(.message(WebSocketMessage(
                opcode: message.opcode, payload: message.payload, frameCount: message.frameCount,
                compressed: message.compressed, isComplete: message.isComplete, isValidUTF8: nil, isDecoded: false)))
        }
    }
}
