import WSTapCore
import WSTapTCP
import WSTapWebSocket

/// WebSocket frames and messages on a stream (RFC 6455), after a 101 or recognised without a
/// handshake. Decoding is `WebSocketConnectionDecoder`'s; this stage counts, reports and puts
/// frames and messages on the timeline, and hands each data message to the stream's message
/// stage when one is registered for it.
final class WebSocketStage: Stage {
    /// How the stream is known to be WebSocket, and whether frames are still being searched for.
    enum Mode: Equatable {
        case decoding(WebSocketDetection)
        /// The handshake was not captured, or the heads of the 101 were cut (`afterSwitch`).
        case searching(WebSocketDetection, afterSwitch: Bool)
    }

    private let stream: StreamContext
    /// Held by hand: it is called for every packet (docs/performance.md).
    private let decoder: ManuallyRetained<WebSocketConnectionDecoder>
    private var mode: Mode
    /// The 101 failed the handshake: frames are decoded, and their presence is reported once per direction.
    private let handshakeFailed: Bool
    private var reportedFramesAfterFailure = DirectionPair(false)
    /// A fragmented text message is open.
    private var textMessageOpen = DirectionPair(false)
    /// Frames were found at least once (the first find is no resynchronisation).
    private var synchronizedOnce = DirectionPair(false)
    /// What runs inside the messages (an application protocol), when one is registered for the stream.
    private let messages: MessageStage?
    /// The Close frames each side sent, and their pings left unanswered.
    private var closing = WebSocketClosing()
    /// Pings each side sent that no pong has answered yet (payloads, oldest first, at most
    /// `maxOutstandingPings`; older ones are counted as unanswered when pushed out).
    private var outstandingPings = DirectionPair<[[UInt8]]>([])
    static let maxOutstandingPings = 64

    init(
        stream: StreamContext, decoder: WebSocketConnectionDecoder, mode: Mode, handshakeFailed: Bool = false,
        messages: MessageStage? = nil
    ) {
        self.stream = stream
        self.decoder = ManuallyRetained(retaining: decoder)
        self.mode = mode
        self.handshakeFailed = handshakeFailed
        self.messages = messages
    }

    deinit { decoder.release() }

    override var phase: ConnectionPhase {
        switch mode {
        case .decoding(let detection): .websocket(detection)
        case .searching(let detection, let afterSwitch): .searchingForWebSocket(detection, afterSwitch: afterSwitch)
        }
    }

    override func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        stream.totals.payloadBytes[direction] &+= UInt64(bytes.count)
        let stage = Unretained(self)
        decoder.with { $0.receive(bytes, direction: direction, at: time) { event in stage.with { $0.handle(event) } } }
        stream.connection.releaseHeldEvents()
        guard case .searching(_, let afterSwitch) = mode, decoder.with(\.gaveUpSearching) else { return nil }
        // The search gave up: the bytes are not WebSocket.
        return OpaqueStage(stream: stream, afterSwitch: afterSwitch)
    }

    override func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        decoder.with { $0.missing(gap, direction: direction, at: time) { handle($0) } }
        messages?.missing(direction: direction, stream: stream)
        stream.connection.releaseHeldEvents()
        return nil
    }

    override var holdsBytesForEarlierEvents: Bool { decoder.with(\.holdsSearchBytes) }

    override func settle(at time: CaptureTimestamp) {
        decoder.with { $0.settle(at: time) { handle($0) } }
        stream.connection.releaseHeldEvents()
    }

    override func boundaryUnknown(direction: StreamDirection) {
        decoder.with { $0.boundaryUnknown(direction: direction) }
    }

    override func finish(at time: CaptureTimestamp) {
        // In the TCP layer's order of directions, as they were numbered before any role swap.
        for direction in StreamDirection.allCases.map(stream.connection.direction) {
            decoder.with { $0.finish(direction: direction, at: time) { handle($0) } }
        }
        messages?.finish(at: time, stream: stream)
        stream.connection.releaseHeldEvents()
        for direction in StreamDirection.allCases {
            closing.unansweredPings[direction] &+= UInt64(outstandingPings[direction].count)
            outstandingPings[direction] = []
        }
    }

    override func ending(reason: ConnectionEndReason) -> ConnectionEnding {
        // A search that never found frames is not a WebSocket to judge.
        guard case .decoding = mode else { return super.ending(reason: reason) }
        return ConnectionEnding.decide(
            phase: phase, upgrade: nil, handshakeFailed: handshakeFailed, closing: closing, reason: reason)
    }

    /// Close frames, and pings matched with the pongs that answer them (the oldest ping from the
    /// other side with the same payload; an unsolicited pong answers none).
    private func noteControl(_ header: FrameHeader, close: CloseFrameBody?, payload: UnsafeRawBufferPointer,
                             direction: StreamDirection, at time: CaptureTimestamp) {
        switch header.opcode {
        case .close:
            guard closing.closes[direction] == nil else { return }
            closing.closes[direction] = close ?? CloseFrameBody(code: nil, reason: [], reasonIsValidUTF8: true)
            closing.closeTimes[direction] = time
        case .ping:
            if outstandingPings[direction].count == Self.maxOutstandingPings {
                outstandingPings[direction].removeFirst()
                closing.unansweredPings[direction] &+= 1
            }
            outstandingPings[direction].append(Array(payload))
        case .pong:
            // A pong may answer only the latest ping it processed (RFC 6455 §5.5.3): the pings
            // before the one it answers were processed too.
            let other = direction.reversed
            if let answered = outstandingPings[other].firstIndex(where: { $0.elementsEqual(payload) }) {
                outstandingPings[other].removeFirst(answered + 1)
            }
        default:
            break
        }
    }

    private func handle(_ streamEvent: WebSocketStreamEvent) {
        // The event is passed on borrowed, field by field: copying the whole value costs more
        // than the rest of the frame's handling.
        handle(streamEvent.event, direction: streamEvent.direction, at: streamEvent.time)
    }

    private func handle(_ event: WebSocketEvent, direction: StreamDirection, at time: CaptureTimestamp) {
        switch event {
        case .resynchronized(let skipped, let role):
            resynchronized(skipped: skipped, role: role, direction: direction, at: time)
        case .frame(let frame, let close):
            if handshakeFailed, !reportedFramesAfterFailure[direction] {
                reportedFramesAfterFailure[direction] = true
                stream.report(.framesAfterFailedHandshake(time: time, direction: direction))
            }
            let header = frame.header
            let opcode = header.opcode
            let carriesText = opcode == .text || (opcode == .continuation && textMessageOpen[direction])
            if !opcode.isControl, !opcode.isReserved {
                // Continuations of a compressed text message carry compressed bytes, not text.
                if opcode != .continuation { textMessageOpen[direction] = opcode == .text && !header.rsv1 }
                if header.fin { textMessageOpen[direction] = false }
            }
            stream.totals.frames[direction] &+= 1
            // The bytes the capture holds: a length field claims what it likes (a frame cut by the
            // capture's end claimed 2^62 bytes), its missing bytes are counted apart.
            stream.countFrame(opcode, payloadLength: header.payloadLength - min(frame.bytesMissing, header.payloadLength))
            if opcode.isControl { noteControl(header, close: close, payload: frame.payload, direction: direction, at: time) }
            guard stream.connection.emitsFramesAndMessages else { return }
            stream.emitFrame(FrameRecord(
                direction: direction, header: header, payload: frame.payload, bytesNotKept: frame.bytesNotKept,
                bytesMissing: frame.bytesMissing, gaps: frame.gaps, carriesText: carriesText), at: time)
        case .message(let message):
            let index = stream.totals.messages[direction]
            stream.totals.messages[direction] &+= 1
            stream.countMessage(message.opcode, payloadLength: message.payload.count)
            if stream.connection.emitsFramesAndMessages {
                stream.emitMessage(MessageRecord(direction: direction, message: message), at: time)
            }
            messages?.receive(message, index: index, direction: direction, at: time, stream: stream)
        case .violation(let violation):
            stream.report(Issue(violation, time: time, direction: direction))
        }
    }

    /// Frames were found; without a handshake, the first ones also say who the client is.
    private func resynchronized(skipped: UInt64, role: WebSocketRole, direction: StreamDirection, at time: CaptureTimestamp) {
        var direction = direction
        let firstInDirection = !synchronizedOnce[direction]
        var searchedFromStart = firstInDirection && phase.websocketDetection != .handshake
        if case .searching(let how, let afterSwitch) = mode {
            searchedFromStart = true
            mode = .decoding(how)
            if !afterSwitch {
                let connection = stream.connection
                let sentByClient = role == .client
                if !connection.opened, (direction == .clientToServer) != sentByClient {
                    connection.swapRoles()
                    decoder.with { $0.swapDirections() }
                    direction = direction.reversed
                }
                decoder.with { $0.roleFound(role, direction: direction) }
                // The other direction decides now too, and both are written in time order.
                connection.holdEvents()
                stream.report(.handshakeNotCaptured(detection: how, time: time))
                let other = direction.reversed
                decoder.with { $0.confirmWebSocket(direction: other, at: time) { event in handle(event) } }
            }
        }
        synchronizedOnce[direction] = true
        guard searchedFromStart else {
            stream.report(.resynchronized(skippedBytes: skipped, afterLoss: true, time: time, direction: direction))
            return
        }
        if skipped > 0 {
            stream.report(.resynchronized(skippedBytes: skipped, afterLoss: false, time: time, direction: direction))
        }
    }
}
