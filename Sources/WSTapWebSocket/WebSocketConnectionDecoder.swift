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
public final class WebSocketConnectionDecoder: StreamStage {
    /// Decodes the bytes the client sends.
    private var clientSide: WebSocketStreamDecoder
    /// Decodes the bytes the server sends.
    private var serverSide: WebSocketStreamDecoder

    /// Decoders for both directions. With `rolesKnown: false` (a connection whose start was not
    /// captured) neither knows its sender's role until frames show it. Searching decoders
    /// (`synchronized: false`) first look for frame boundaries.
    public init(
        rolesKnown: Bool, allowedReservedBits: UInt8, compression: MessageCompression, maxPayloadBytes: Int,
        synchronized: Bool
    ) {
        func decoder(_ role: WebSocketRole) -> WebSocketStreamDecoder {
            WebSocketStreamDecoder(
                role: rolesKnown ? role : nil, allowedReservedBits: allowedReservedBits, compression: compression,
                maxPayloadBytes: maxPayloadBytes, synchronized: synchronized)
        }
        clientSide = decoder(.client)
        serverSide = decoder(.server)
    }

    /// True once both directions searched long enough without finding frames: it is not WebSocket.
    public var gaveUpSearching: Bool { clientSide.gaveUpSearching && serverSide.gaveUpSearching }

    public func receive(
        _ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp,
        emit: (WebSocketStreamEvent) -> Void
    ) {
        let decoder = self.decoder(direction)
        decoder.receive(bytes, at: time) { emit(event($0, from: decoder)) }
    }

    public func missing(
        byteCount: UInt64, direction: StreamDirection, at time: CaptureTimestamp, emit: (WebSocketStreamEvent) -> Void
    ) {
        missing(byteCount: byteCount, direction: direction, at: time, reportsPartialFrames: true, emit: emit)
    }

    /// Missing bytes; `reportsPartialFrames: false` keeps frames cut by a snapshot length from
    /// being reported one by one (the cut is reported once for the connection).
    public func missing(
        byteCount: UInt64, direction: StreamDirection, at time: CaptureTimestamp, reportsPartialFrames: Bool,
        emit: (WebSocketStreamEvent) -> Void
    ) {
        let decoder = self.decoder(direction)
        decoder.missing(byteCount: byteCount, at: time, reportsPartialFrames: reportsPartialFrames) {
            emit(event($0, from: decoder))
        }
    }

    public func finish(direction: StreamDirection, at time: CaptureTimestamp, emit: (WebSocketStreamEvent) -> Void) {
        let decoder = self.decoder(direction)
        decoder.finish(at: time) { emit(event($0, from: decoder)) }
    }

    /// The next bytes of `direction` may not start at a frame boundary (the head before them was cut).
    public func boundaryUnknown(direction: StreamDirection) {
        decoder(direction).boundaryUnknown()
    }

    /// The frames of `direction` showed its sender's role: the other direction's sender has the other one.
    public func roleFound(_ role: WebSocketRole, direction: StreamDirection) {
        decoder(direction.reversed).assumeRole(role == .client ? .server : .client)
    }

    /// Client and server were guessed the wrong way round: each decoder now serves the other direction.
    public func swapDirections() {
        swap(&clientSide, &serverSide)
    }

    private func decoder(_ direction: StreamDirection) -> WebSocketStreamDecoder {
        direction == .clientToServer ? clientSide : serverSide
    }

    /// The direction is asked at each event: a swap during a call applies to the events after it.
    private func event(_ event: WebSocketEvent, from decoder: WebSocketStreamDecoder) -> WebSocketStreamEvent {
        WebSocketStreamEvent(
            event: event, direction: decoder === clientSide ? .clientToServer : .serverToClient,
            time: decoder.currentTime)
    }
}
