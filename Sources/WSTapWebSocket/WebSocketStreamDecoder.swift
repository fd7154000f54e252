import WSTapCore

/// Decodes one direction of a WebSocket connection by putting its parts together: the
/// `FrameSynchronizer` finds frames (searching where boundaries are unknown), `FrameRules`
/// checks each header, the `MessageAssembler` joins fragments, and the `MessageTransform` undoes
/// permessage-deflate. Messages are built in one place, `deliver`.
public final class WebSocketStreamDecoder {
    public typealias Emit = (WebSocketStreamEvent) -> Void
    /// The direction of the bytes this decoder decodes, as the connection names it (it changes
    /// when client and server turn out to be the other way round).
    public internal(set) var direction: StreamDirection
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
        direction: StreamDirection, role: WebSocketRole?, allowedReservedBits: UInt8,
        compression: MessageCompression = .none, maxPayloadBytes: Int = .mebibytes(64), synchronized: Bool = true,
        confirmed: Bool = false, inflaters: InflaterBudget = InflaterBudget()
    ) {
        self.direction = direction
        self.role = role
        self.allowedReservedBits = allowedReservedBits
        synchronizer = FrameSynchronizer(
            allowedReservedBits: allowedReservedBits, maxPayloadBytes: maxPayloadBytes, synchronized: synchronized)
        synchronizer.confirmed = confirmed
        assembler = MessageAssembler(maxMessageBytes: maxPayloadBytes, continuationsMayBeOrphaned: !synchronized)
        transform = MessageTransform(
            compression: compression, maxMessageBytes: maxPayloadBytes, windowKnown: synchronized, inflaters: inflaters)
    }

    /// True once this direction searched long enough without finding frames: it is not WebSocket.
    public var gaveUpSearching: Bool { synchronizer.gaveUpSearching }
    /// Bytes are held for a search: frames found in them later will carry earlier times.
    public var holdsSearchBytes: Bool { synchronizer.holdsSearchBytes }

    /// After the last search: complete frames ending where the held bytes end, too few to decide alone.
    public var tentativeChain: FrameSearch.TentativeChain? { synchronizer.tentativeChain }

    /// Takes the tentative chain as the frames (the other direction's frames make up for its shortness).
    public func acceptTentativeChain(at time: CaptureTimestamp, emit: Emit) {
        begin(at: time)
        let decoder = Unretained(self)
        synchronizer.acceptTentativeChain(at: time) { output in decoder.with { $0.handle(output, emit: emit) } }
    }

    /// Sets the sender's role when the other direction revealed it.
    public func assumeRole(_ role: WebSocketRole) {
        if self.role == nil { self.role = role }
    }

    /// Decodes bytes captured at `time`; events are emitted during the call.
    public func receive(_ bytes: UnsafeRawBufferPointer, at time: CaptureTimestamp = .zero, emit: Emit) {
        begin(at: time)
        // Closures capture `self` unretained: a captured reference is retained around every call.
        let decoder = Unretained(self)
        guard synchronizer.isInStep else {
            synchronizer.receive(bytes, at: time, role: role) { output in decoder.with { $0.handle(output, emit: emit) } }
            return
        }
        synchronizer.decodeInStep(bytes) { frame in decoder.with { $0.handle(frame, emit: emit) } }
    }

    /// The stream ended: decode what a search still holds, report a frame cut off at the end,
    /// and hand on a fragmented message that can no longer complete.
    public func finish(at time: CaptureTimestamp = .zero, emit: Emit) {
        begin(at: time)
        let decoder = Unretained(self)
        synchronizer.finish(at: time, role: role) { output in decoder.with { $0.handle(output, emit: emit) } }
        currentTime = callTime
        assembler.flushIncomplete { transformAndDeliver($0, emit: emit) }
    }

    /// Live capture, nothing more has come for a while: what a frame search holds is decided on
    /// as at the end (`FrameSynchronizer.settle`), so that a connection caught mid-way shows its
    /// frames without waiting for the next one.
    public func settle(at time: CaptureTimestamp, emit: Emit) {
        guard synchronizer.holdsSearchBytes else { return }
        begin(at: time)
        let decoder = Unretained(self)
        synchronizer.settle(at: time, role: role) { output in decoder.with { $0.handle(output, emit: emit) } }
    }

    /// The connection is known to carry WebSocket (the other direction's frames, or the user's
    /// word): a search believes shorter chains, and what it holds is searched again at once.
    public func confirmWebSocket(at time: CaptureTimestamp, emit: Emit) {
        synchronizer.confirmed = true
        begin(at: time)
        let decoder = Unretained(self)
        synchronizer.searchHeldBytes(at: time, role: role) { output in decoder.with { $0.handle(output, emit: emit) } }
    }

    /// The next bytes may not start at a frame boundary (the head before them was cut): search.
    public func boundaryUnknown() {
        if synchronizer.boundaryUnknown() { assembler.continuationsMayBeOrphaned = true }
    }

    /// Bytes the capture lacks. `reportsPartialFrames: false` keeps frames cut this way from
    /// being reported one by one (a snapshot length cuts every packet; it is reported once).
    public func missing(
        byteCount: UInt64, at time: CaptureTimestamp = .zero, reportsPartialFrames: Bool = true, boundaryLost: Bool = false,
        emit: Emit
    ) {
        begin(at: time)
        transform.streamLostBytes(role: role)
        let decoder = Unretained(self)
        synchronizer.missing(
            byteCount: byteCount, at: time, role: role, reportsPartialFrames: reportsPartialFrames, boundaryLost: boundaryLost
        ) { output in
            decoder.with { $0.handle(output, emit: emit) }
        }
        if boundaryLost { assembler.continuationsMayBeOrphaned = true }
    }

    /// Emits `event` with this decoder's direction and the capture time of the bytes behind it.
    @inline(__always)
    private func send(_ event: consuming WebSocketEvent, _ emit: Emit) {
        emit(WebSocketStreamEvent(event: event, direction: direction, time: currentTime))
    }

    private func begin(at time: CaptureTimestamp) {
        callTime = time
        currentTime = time
    }

    private func handle(_ output: FrameSynchronizer.Output, emit: Emit) {
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
            send(.resynchronized(skippedBytes: skipped, role: found), emit)
        case .lostSynchronization(let bytes):
            currentTime = callTime
            send(.violation(.lostSynchronization(bytes: bytes)), emit)
            assembler.flushIncomplete { transformAndDeliver($0, emit: emit) }
        case .violation(let violation):
            currentTime = callTime
            send(.violation(violation), emit)
        }
    }

    private func handle(_ frame: DecodedFrame, emit: Emit) {
        let header = frame.header
        let opcode = header.opcode
        let decoder = Unretained(self)
        FrameRules.check(header, role: role, allowedReservedBits: allowedReservedBits) { violation in
            decoder.with { $0.send(.violation(violation), emit) }
        }
        if !frame.isComplete, frame.bytesNotKept > 0 {
            send(.violation(.payloadNotKept(length: header.payloadLength, kept: frame.payload.count)), emit)
        }
        if closeSeen { send(.violation(.dataAfterClose(opcode)), emit) }
        var closeBody: CloseFrameBody?
        if opcode == .close {
            let (body, violations) = CloseFrameBody.parse(frame.payload)
            closeBody = body
            violations.forEach { send(.violation($0), emit) }
            closeSeen = true
        }
        send(.frame(frame, close: closeBody), emit)
        guard !opcode.isControl, !opcode.isReserved else { return }
        assembler.add(frame, violation: { violation in decoder.with { $0.send(.violation(violation), emit) } }) { message in
            decoder.with { $0.transformAndDeliver(message, emit: emit) }
        }
    }

    private func transformAndDeliver(_ message: AssembledMessage, emit: Emit) {
        let decoder = Unretained(self)
        transform.apply(to: message, role: role, violation: { violation in decoder.with { $0.send(.violation(violation), emit) } }) {
            result in decoder.with { $0.deliver(message, result: result, emit: emit) }
        }
    }

    /// Whether each captured part of a text message with gaps can be UTF-8: a character may be
    /// cut at either side of a gap, so up to three continuation bytes after one and a cut
    /// character before one are allowed (the bytes that would decide are not in the capture).
    static func capturedPartsMayBeUTF8(_ payload: UnsafeRawBufferPointer, gaps: UnsafeBufferPointer<PayloadGap>) -> Bool {
        var start = 0
        var missingBefore: UInt64 = 0
        for index in 0...gaps.count {
            var end = payload.count
            if index < gaps.count {
                let at = gaps[index].offset &- missingBefore
                end = at < UInt64(payload.count) ? Int(at) : payload.count
            }
            var partStart = start
            if index > 0 {
                var skipped = 0
                while partStart < end, skipped < 3, payload[partStart] & 0xC0 == 0x80 { partStart += 1; skipped += 1 }
            }
            let part = UnsafeRawBufferPointer(rebasing: payload[partStart..<max(partStart, end)])
            if !UTF8Validation.isValid(part, allowingCutEnd: index < gaps.count) { return false }
            if index < gaps.count { missingBefore &+= gaps[index].length }
            start = max(start, end)
        }
        return true
    }

    /// The one place a message is built; text is checked for UTF-8 over the whole message
    /// (RFC 6455 §8.1) when its bytes are decoded and complete.
    private func deliver(_ message: AssembledMessage, result: MessageTransform.Result, emit: Emit) {
        switch result {
        case .decoded(let payload, let isComplete):
            var validUTF8: Bool?
            if message.opcode == .text {
                if message.gaps.isEmpty {
                    let valid = UTF8Validation.isValid(payload)
                    validUTF8 = valid
                    if !valid, isComplete { send(.violation(.invalidUTF8Text), emit) }
                } else if !Self.capturedPartsMayBeUTF8(payload, gaps: message.gaps) {
                    validUTF8 = false
                }
            }
            send(.message(WebSocketMessage(
                opcode: message.opcode, payload: payload, frameCount: message.frameCount,
                compressed: message.compressed, isComplete: isComplete, isValidUTF8: validUTF8, isDecoded: true,
                isFramePayload: message.isFramePayload && !message.compressed, gaps: message.gaps,
                wireLength: message.payload.count)), emit)
        case .undecoded:
            send(.message(WebSocketMessage(
                opcode: message.opcode, payload: message.payload, frameCount: message.frameCount,
                compressed: message.compressed, isComplete: message.isComplete, isValidUTF8: nil, isDecoded: false,
                wireLength: message.payload.count)), emit)
        }
    }
}
