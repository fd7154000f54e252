import WSTapCore
import WSTapTCP
import WSTapWebSocket

/// WebSocket frames and messages on a connection (RFC 6455), after a 101 or recognised without
/// a handshake. Decoding is `WebSocketConnectionDecoder`'s; this stage counts, reports and puts
/// frames and messages on the timeline.
final class WebSocketStage: ConnectionStage {
    private let context: ConnectionContext
    private let decoder: WebSocketConnectionDecoder
    /// The 101 failed the handshake: frames are decoded, and their presence is reported once per direction.
    private let handshakeFailed: Bool
    private var reportedFramesAfterFailure = DirectionPair(false)
    /// A fragmented text message is open.
    private var textMessageOpen = DirectionPair(false)
    /// Frames were found at least once (the first find is no resynchronisation).
    private var synchronizedOnce = DirectionPair(false)

    init(context: ConnectionContext, decoder: WebSocketConnectionDecoder, handshakeFailed: Bool = false) {
        self.context = context
        self.decoder = decoder
        self.handshakeFailed = handshakeFailed
    }

    func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp)
        -> (any ConnectionStage)?
    {
        context.totals.payloadBytes[direction] &+= UInt64(bytes.count)
        decoder.receive(bytes, direction: direction, at: time) { handle($0) }
        guard case .searchingForWebSocket(_, let afterSwitch) = context.phase, decoder.gaveUpSearching else { return nil }
        return ConnectionChain.afterFailedSearch(context, afterSwitch: afterSwitch)
    }

    func missing(byteCount: UInt64, cause: MissingCause, direction: StreamDirection, at time: CaptureTimestamp)
        -> (any ConnectionStage)?
    {
        decoder.missing(
            byteCount: byteCount, direction: direction, at: time, reportsPartialFrames: cause == .notCaptured
        ) { handle($0) }
        return nil
    }

    func boundaryUnknown(direction: StreamDirection) {
        decoder.boundaryUnknown(direction: direction)
    }

    func finish(at time: CaptureTimestamp) {
        // In the TCP layer's order of directions, as they were numbered before any role swap.
        for direction in StreamDirection.allCases.map(context.direction) {
            decoder.finish(direction: direction, at: time) { handle($0) }
        }
    }

    private func handle(_ event: WebSocketStreamEvent) {
        let direction = event.direction
        let time = event.time
        switch event.event {
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
            context.emit(.frame(context.record, FrameRecord(
                time: time, direction: direction, header: header, payload: frame.payload,
                bytesNotKept: frame.bytesNotKept, bytesMissing: frame.bytesMissing, close: close,
                carriesText: carriesText)))
        case .message(let message):
            context.totals.messages[direction] &+= 1
            context.countMessage(message.opcode, payloadLength: message.payload.count)
            guard context.emitsFramesAndMessages else { return }
            context.emit(.message(context.record, MessageRecord(time: time, direction: direction, message: message)))
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
                    decoder.swapDirections()
                    direction = direction.reversed
                }
                decoder.roleFound(role, direction: direction)
                context.report(.handshakeNotCaptured(detection: how, time: time))
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
