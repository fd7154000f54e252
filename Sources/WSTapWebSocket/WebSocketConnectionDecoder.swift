import WSTapCore

/// What the connection-level decoder reports: an event of one direction's decoder, the direction
/// it belongs to, and the capture time of the bytes that produced it.
public struct WebSocketStreamEvent {
    public var event: WebSocketEvent
    public var direction: StreamDirection
    public var time: CaptureTimestamp
}

/// Both directions of a WebSocket connection as one stage: a `WebSocketStreamDecoder` per direction,
/// and what the frames of one direction reveal about the other (who the client is, by masking).
public final class WebSocketConnectionDecoder: StreamParser {
    /// The decoders made for the client's and the server's bytes, held by hand: one is called
    /// for every packet (docs/performance.md).
    private let first: ManuallyRetained<WebSocketStreamDecoder>
    private let second: ManuallyRetained<WebSocketStreamDecoder>
    /// Client and server turned out to be the other way round: `second` decodes the client's bytes.
    private var swapped = false

    /// Decoders for both directions. With `rolesKnown: false` (a connection whose start was not
    /// captured) neither knows its sender's role until frames show it. Searching decoders
    /// (`synchronized: false`) first look for frame boundaries; `confirmed` ones know the
    /// connection carries WebSocket (`--websocket-port`) and believe shorter chains.
    public init(
        rolesKnown: Bool, allowedReservedBits: UInt8, compression: MessageCompression, maxPayloadBytes: Int,
        synchronized: Bool, confirmed: Bool = false, inflaters: InflaterBudget = InflaterBudget()
    ) {
        func decoder(_ direction: StreamDirection, _ role: WebSocketRole) -> WebSocketStreamDecoder {
            WebSocketStreamDecoder(
                direction: direction, role: rolesKnown ? role : nil, allowedReservedBits: allowedReservedBits,
                compression: compression, maxPayloadBytes: maxPayloadBytes, synchronized: synchronized,
                confirmed: confirmed, inflaters: inflaters)
        }
        first = ManuallyRetained(retaining: decoder(.clientToServer, .client))
        second = ManuallyRetained(retaining: decoder(.serverToClient, .server))
    }

    deinit {
        first.release()
        second.release()
    }

    /// True once both directions searched long enough without finding frames: it is not WebSocket.
    public var gaveUpSearching: Bool { first.with(\.gaveUpSearching) && second.with(\.gaveUpSearching) }
    /// Either direction holds bytes for a search: frames found in them later will carry earlier
    /// times (the stage says so to the connection: `Stage.holdsBytesForEarlierEvents`).
    public var holdsSearchBytes: Bool { first.with(\.holdsSearchBytes) || second.with(\.holdsSearchBytes) }

    public func receive(
        _ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp,
        emit: (WebSocketStreamEvent) -> Void
    ) {
        let stream = decoder(direction)
        stream.with { $0.receive(bytes, at: time, emit: emit) }
        if let chain = stream.with(\.tentativeChain) { decideTogether(direction, chain: chain, at: time, emit: emit) }
    }

    /// Both directions are searching and each holds complete frames that end where its bytes end,
    /// too few to decide alone: with opposite masking (one sender a client, the other a server)
    /// and as many frames together as one direction needs alone, they decide together, so a
    /// quiet conversation is recognised on its first exchanges. `direction`'s frames are taken;
    /// the stage then confirms the other direction, whose search believes its chain at once.
    private func decideTogether(
        _ direction: StreamDirection, chain: FrameSearch.TentativeChain, at time: CaptureTimestamp,
        emit: (WebSocketStreamEvent) -> Void
    ) {
        guard let other = decoder(direction.reversed).with(\.tentativeChain), other.masked != chain.masked,
              chain.frames + other.frames >= FrameSearch.Requirement.normal.endingAtEnd
        else { return }
        decoder(direction).with { $0.acceptTentativeChain(at: time, emit: emit) }
    }

    /// Missing bytes. Frames cut by a snapshot length are not reported one by one (the cut is
    /// reported once for the connection); frames cut by bytes not captured are.
    public func missing(
        _ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp, emit: (WebSocketStreamEvent) -> Void
    ) {
        decoder(direction).with {
            $0.missing(
                byteCount: gap.count, at: time, reportsPartialFrames: gap.cause == .notCaptured, boundaryLost: gap.boundaryLost,
                emit: emit)
        }
    }

    public func finish(direction: StreamDirection, at time: CaptureTimestamp, emit: (WebSocketStreamEvent) -> Void) {
        decoder(direction).with { $0.finish(at: time, emit: emit) }
    }

    /// The connection is known to carry WebSocket: `direction`'s search believes shorter chains
    /// and searches what it holds at once.
    public func confirmWebSocket(direction: StreamDirection, at time: CaptureTimestamp, emit: (WebSocketStreamEvent) -> Void) {
        decoder(direction).with { $0.confirmWebSocket(at: time, emit: emit) }
    }

    /// The next bytes of `direction` may not start at a frame boundary (the head before them was cut).
    public func boundaryUnknown(direction: StreamDirection) {
        decoder(direction).with { $0.boundaryUnknown() }
    }

    /// Live capture, nothing more has come for a while: both directions' frame searches decide on what they hold.
    public func settle(at time: CaptureTimestamp, emit: (WebSocketStreamEvent) -> Void) {
        for direction in StreamDirection.allCases { decoder(direction).with { $0.settle(at: time, emit: emit) } }
    }

    /// The frames of `direction` showed its sender's role: the other direction's sender has the other one.
    public func roleFound(_ role: WebSocketRole, direction: StreamDirection) {
        decoder(direction.reversed).with { $0.assumeRole(role == .client ? .server : .client) }
    }

    /// Client and server were guessed the wrong way round: each decoder now serves the other
    /// direction (events a decoder emits after this, even during the current call, say so).
    public func swapDirections() {
        swapped.toggle()
        first.with { $0.direction = $0.direction.reversed }
        second.with { $0.direction = $0.direction.reversed }
    }

    @inline(__always)
    private func decoder(_ direction: StreamDirection) -> ManuallyRetained<WebSocketStreamDecoder> {
        (direction == .clientToServer) != swapped ? first : second
    }
}
