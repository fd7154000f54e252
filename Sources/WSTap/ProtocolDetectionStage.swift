import WSTapCore
import WSTapHTTP
import WSTapPackets
import WSTapTCP
import WSTapTLS

/// The first stage of every connection: its first bytes choose what decodes it.
///
/// HTTP when they look like HTTP. Otherwise, when the TCP handshake was not captured (or the
/// connection is on a `--websocket-port`), the connection was caught mid-way: WebSocket frames
/// are searched for. The first bytes can also show that the TCP layer's guess of client and
/// server was wrong (a response from the "client").
final class ProtocolDetectionStage: ConnectionStage {
    private let context: ConnectionContext
    /// HTTP, the default: it also takes gaps that come before the first byte.
    private let http: HTTPStage
    /// The plaintext of a TLS connection: TLS is not looked for again.
    private let insideTLS: Bool

    init(context: ConnectionContext, http: HTTPStage, insideTLS: Bool = false) {
        self.context = context
        self.http = http
        self.insideTLS = insideTLS
    }

    /// First bytes too few to tell TLS from the rest (a record header is 5 bytes, its first
    /// handshake byte the sixth), held until more come; at most 5 bytes.
    private var heldFirstBytes: [UInt8] = []
    private var heldDirection = StreamDirection.clientToServer

    override func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp)
        -> ConnectionStage?
    {
        if !heldFirstBytes.isEmpty {
            if direction == heldDirection {
                heldFirstBytes += bytes
                return heldFirstBytes.count >= 6 ? decideHeld(at: time) : nil
            }
            // The other side spoke first: the held bytes are decided on as they are.
            let swapped = context.rolesSwapped
            let chosen = decideHeld(at: time)
            let next = chosen.receive(bytes, direction: swapped == context.rolesSwapped ? direction : direction.reversed, at: time)
            return next ?? chosen
        }
        if !insideTLS, bytes.count < 6, let first = bytes.first, (20...23).contains(first) {
            heldFirstBytes = Array(bytes)
            heldDirection = direction
            return nil
        }
        return decide(bytes, direction: direction, at: time)
    }

    private func decideHeld(at time: CaptureTimestamp) -> ConnectionStage {
        let held = heldFirstBytes
        heldFirstBytes = []
        return held.withUnsafeBytes { decide($0, direction: heldDirection, at: time) }
    }

    private func decide(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) -> ConnectionStage {
        var direction = direction
        let chosen = choose(firstBytes: bytes, direction: &direction)
        return chosen.receive(bytes, direction: direction, at: time) ?? chosen
    }

    override func missing(byteCount: UInt64, cause: MissingCause, direction: StreamDirection, at time: CaptureTimestamp)
        -> ConnectionStage?
    {
        if !heldFirstBytes.isEmpty {
            // The held bytes cannot be completed: decided on what there is, then the gap.
            let swapped = context.rolesSwapped
            let chosen = decideHeld(at: time)
            let direction = swapped == context.rolesSwapped ? direction : direction.reversed
            return chosen.missing(byteCount: byteCount, cause: cause, direction: direction, at: time) ?? chosen
        }
        // The protocol is still unknown: until a byte shows it, HTTP reports the gap.
        _ = http.missing(byteCount: byteCount, cause: cause, direction: direction, at: time)
        return nil
    }

    override func finish(at time: CaptureTimestamp) {
        guard !heldFirstBytes.isEmpty else { return http.finish(at: time) }
        // The connection ended inside its first bytes: they go where they point, and end there.
        decideHeld(at: time).finish(at: time)
    }

    /// The stage for this connection; `direction` is turned round when client and server are.
    private func choose(firstBytes bytes: UnsafeRawBufferPointer, direction: inout StreamDirection) -> ConnectionStage {
        let prefix = Array(bytes.prefix(8))
        let looksLikeResponse = prefix.starts(with: Array("HTTP/1.".utf8))
        let looksLikeRequest = prefix.count >= 4 && !looksLikeResponse
            && HTTPConversation.startsLikeHTTP(prefix, direction: .clientToServer)
        if !insideTLS, TLSConnectionDecoder.startsLikeTLS(bytes) || TLSConnectionDecoder.startsLikeTLSRecord(bytes) {
            // A ServerHello first: the TCP layer has client and server the wrong way round.
            if TLSConnectionDecoder.startsLikeTLS(bytes), bytes[5] == 2, direction == .clientToServer { swapRoles(&direction) }
            return ConnectionChain.tls(context)
        }
        let record = context.record
        let ports = context.options.websocketPorts
        let forcedServer: Endpoint? = ports.contains(record.server.port) ? record.server
            : ports.contains(record.client.port) ? record.client : nil
        if let forcedServer, !looksLikeRequest, !looksLikeResponse {
            if forcedServer != record.server { swapRoles(&direction) }
            return ConnectionChain.websocketWithoutHandshake(context, detection: .port)
        }
        if record.tcpHandshakeSeen { return http }
        if (direction == .serverToClient && looksLikeRequest) || (direction == .clientToServer && looksLikeResponse) {
            swapRoles(&direction)
        } else if !looksLikeRequest, !looksLikeResponse {
            return ConnectionChain.websocketWithoutHandshake(context, detection: .heuristic)
        }
        return http
    }

    private func swapRoles(_ direction: inout StreamDirection) {
        context.swapRoles()
        direction = direction.reversed
    }
}
