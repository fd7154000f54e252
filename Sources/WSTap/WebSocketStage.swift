import WSTapCore
import WSTapTCP
import WSTapWebSocket

/// WebSocket frames and messages on a connection (RFC 6455), after a 101 or recognised without
/// a handshake. Decoding is `WebSocketConnectionDecoder`'s; this stage counts, reports and puts
/// frames and messages on the timeline.
final class WebSocketStage: ConnectionStage {
    private let context: ConnectionContext
    /// Held by hand: it is called for every packet (docs/performance.md).
    private let decoder: ManuallyRetained<WebSocketConnectionDecoder>
    /// The 101 failed the handshake: frames are decoded, and their presence is reported once per direction.
    private let handshakeFailed: Bool
    private var reportedFramesAfterFailure = DirectionPair(false)
    /// A fragmented text message is open.
    private var textMessageOpen = DirectionPair(false)
    /// Frames were found at least once (the first find is no resynchronisation).
    private var synchronizedOnce = DirectionPair(false)

    init(context: ConnectionContext, decoder: WebSocketConnectionDecoder, handshakeFailed: Bool = false) {
        self.context = context
        self.decoder = ManuallyRetained(retaining: decoder)
        self.handshakeFailed = handshakeFailed
    }

    deinit { decoder.release() }

    override func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp)
        -> ConnectionStage?
    {
        context.totals.payloadBytes[direction] &+= UInt64(bytes.count)
        let stage = Unretained(self)
        decoder.with { $0.receive(bytes, direction: direction, at: time) { event in stage.with { $0.handle(event) } } }
        context.releaseHeldEvents()
        guard case .searchingForWebSocket(_, let afterSwitch) = context.phase, decoder.with(\.gaveUpSearching) else { return nil }
        return ConnectionChain.afterFailedSearch(context, afterSwitch: afterSwitch)
    }

    override func missing(byteCount: UInt64, cause: MissingCause, direction: StreamDirection, at time: CaptureTimestamp)
        -> ConnectionStage?
    {
        decoder.with {
            $0.missing(byteCount: byteCount, direction: direction, at: time, reportsPartialFrames: cause == .notCaptured) {
                handle($0)
            }
        }
        context.releaseHeldEvents()
        return nil
    }

    override var holdsBytesForEarlierEvents: Bool { decoder.with(\.holdsSearchBytes) }

    override func boundaryUnknown(direction: StreamDirection) {
        decoder.with { $0.boundaryUnknown(direction: direction) }
    }

    override func finish(at time: CaptureTimestamp) {
        // In the TCP layer's order of directions, as they were numbered before any role swap.
        for direction in StreamDirection.allCases.map(context.direction) {
            decoder.with { $0.finish(direction: direction, at: time) { handle($0) } }
        }
        context.releaseHeldEvents()
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
                context.report(.framesAfterFailedHandshake(time: time, direction: direction))
            }
            let header = frame.header
            let opcode = header.opcode
            let carriesText = opcode == .text || (opcode == .continuation && textMessageOpen[direction])
            if !opcode.isControl, !opcode.isReserved {
                // Continuations of a compressed text message carry compressed bytes, not text.
                if opcode != .continuation { textMessageOpen[direction] = opcode == .text && !header.rsv1 }
                if header.fin { textMessageOpen[direction] = false }
            }
            context.totals.frames[direction] &+= 1
            context.countFrame(opcode, payloadLength: header.payloadLength)
            guard context.emitsFramesAndMessages else { return }
            context.emitFrameOrMessage(.frame(context.record, FrameRecord(
                time: time, direction: direction, header: header, payload: frame.payload,
                bytesNotKept: frame.bytesNotKept, bytesMissing: frame.bytesMissing, gaps: frame.gaps, close: close,
                carriesText: carriesText)))
        case .message(let message):
            context.totals.messages[direction] &+= 1
            context.countMessage(message.opcode, payloadLength: message.payload.count)
            guard context.emitsFramesAndMessages else { return }
            context.emitFrameOrMessage(.message(context.record, MessageRecord(time: time, direction: direction, message: message)))
        case .violation(let violation):
            context.report(Issue(violation, time: time, direction: direction))
        }
    }

    /// Frames were found; without a handshake, the first ones also say who the client is.
    private func resynchronized(skipped: UInt64, role: WebSocketRole, direction: StreamDirection, at time: CaptureTimestamp) {
        var direction = direction
        let firstInDirection = !synchronizedOnce[direction]
        var searchedFromStart = firstInDirection && context.phase.websocketDetection != .handshake
        if case .searchingForWebSocket(let how, let afterSwitch) = context.phase {
            searchedFromStart = true
            context.phase = .websocket(how)
            if !afterSwitch {
                let sentByClient = role == .client
                if !context.opened, (direction == .clientToServer) != sentByClient {
                    context.swapRoles()
                    decoder.with { $0.swapDirections() }
                    direction = direction.reversed
                }
                decoder.with { $0.roleFound(role, direction: direction) }
                // The other direction decides now too, and both are written in time order.
                context.holdEvents()
                context.report(.handshakeNotCaptured(detection: how, time: time))
                let other = direction.reversed
                decoder.with { $0.confirmWebSocket(direction: other, at: time) { event in handle(event) } }
            }
        }
        synchronizedOnce[direction] = true
        guard searchedFromStart else {
            context.report(.resynchronized(skippedBytes: skipped, afterLoss: true, time: time, direction: direction))
            return
        }
        if skipped > 0 {
            context.report(.resynchronized(skippedBytes: skipped, afterLoss: false, time: time, direction: direction))
        }
    }
}
