import WSTapCore
import WSTapHTTP
import WSTapWebSocket

/// Where each connection's chain of stages is built: the one place a new stage is added.
///
/// TCP stream → protocol detection → [TLS → protocol detection →] HTTP/1.1 → (after a 101)
/// WebSocket, or opaque bytes. A decoder of a WebSocket subprotocol
/// would be chosen in `afterSwitch` from the handshake's `Sec-WebSocket-Protocol`.
enum ConnectionChain {
    /// The first stage of a new connection.
    static func start(_ context: ConnectionContext) -> ConnectionStage {
        ProtocolDetectionStage(context: context, http: HTTPStage(context: context))
    }

    /// TLS: its records are decrypted with the key log, and the plaintext goes through a chain
    /// that starts like a new connection's.
    static func tls(_ context: ConnectionContext) -> ConnectionStage {
        TLSStage(context: context)
    }

    /// The first stage of the plaintext inside TLS.
    static func afterTLS(_ context: ConnectionContext) -> ConnectionStage {
        ProtocolDetectionStage(context: context, http: HTTPStage(context: context), insideTLS: true)
    }

    /// WebSocket frames searched for from the first byte: the handshake was not captured.
    static func websocketWithoutHandshake(
        _ context: ConnectionContext, detection: WebSocketDetection
    ) -> WebSocketStage {
        context.phase = .searchingForWebSocket(detection, afterSwitch: false)
        // By port, the roles are known and the connection is WebSocket by the user's word: the
        // first frames decide. By heuristic the frames' masking will tell.
        return WebSocketStage(
            context: context, decoder: searchingDecoder(context, rolesKnown: detection == .port, confirmed: detection == .port))
    }

    /// What follows a 101: WebSocket when the handshake selected it, a search for frames when the
    /// heads were cut and the selection is unknown, otherwise the bytes of another protocol.
    static func afterSwitch(
        _ context: ConnectionContext, selected: String?, headsCut: Bool,
        handshake: WebSocketHandshake?, handshakeFailed: Bool, at time: CaptureTimestamp
    ) -> ConnectionStage {
        if selected == nil, headsCut {
            context.phase = .searchingForWebSocket(.heuristic, afterSwitch: true)
            return WebSocketStage(context: context, decoder: searchingDecoder(context, rolesKnown: true))
        }
        guard selected?.caseInsensitiveEquals("websocket") ?? false, let handshake else {
            context.phase = .otherUpgrade
            return OpaqueStage(context: context, countsUpgradedBytes: true)
        }
        context.phase = .websocket(.handshake)
        let (compression, violations) = MessageCompression.from(handshake)
        violations.forEach { context.report(Issue($0, time: time)) }
        if case .unsupported(let name) = compression { context.report(.unsupportedExtension(name, time: time)) }
        let decoder = WebSocketConnectionDecoder(
            rolesKnown: true, allowedReservedBits: handshake.allowedReservedBits, compression: compression,
            maxPayloadBytes: context.options.maxPayloadBytes, synchronized: true)
        return WebSocketStage(context: context, decoder: decoder, handshakeFailed: handshakeFailed)
    }

    /// A search gave up: the bytes are not WebSocket.
    static func afterFailedSearch(_ context: ConnectionContext, afterSwitch: Bool) -> ConnectionStage {
        context.phase = afterSwitch ? .otherUpgrade : .opaque
        return OpaqueStage(context: context, countsUpgradedBytes: afterSwitch)
    }

    /// Decoders that do not know the handshake: RSV1 may mean permessage-deflate, with parameters
    /// and window unknown.
    private static func searchingDecoder(
        _ context: ConnectionContext, rolesKnown: Bool, confirmed: Bool = false
    ) -> WebSocketConnectionDecoder {
        WebSocketConnectionDecoder(
            rolesKnown: rolesKnown, allowedReservedBits: 0b100,
            compression: .perMessageDeflate(PerMessageDeflateParameters()),
            maxPayloadBytes: context.options.maxPayloadBytes, synchronized: false, confirmed: confirmed)
    }
}
