import WSTapCore
import WSTapHTTP
import WSTapWebSocket
import WSTapTLS
import WSTapApplication
import WSTapHTTP2

/// The standard tables (`StageRegistry`): the one place where the stages wstap knows are
/// registered, and the helpers that build the WebSocket stage in its three ways (after a 101,
/// without a handshake, and the search that gave up).
///
/// TCP stream → first bytes: [TLS → ALPN or first bytes →] HTTP/1.1 → upgrade token: WebSocket
/// (→ its message stage, by `Sec-WebSocket-Protocol` or URL), or opaque bytes.
enum ConnectionChain {
    /// The stages wstap decodes, registered in their tables.
    static let standard: StageRegistry = {
        var registry = StageRegistry()
        registry.defaultStage = { HTTPStage(stream: $0) }
        registry.firstBytes = [tls, port, http2Preface, http, websocketFrames]
        registry.alpn["h2"] = { stream, _ in HTTP2Stage(stream: stream) }
        registry.upgradeTokens["websocket"] = websocketAfterSwitch
        registry.upgradeTokens["h2c"] = { upgrade in
            HTTP2Stage(stream: upgrade.stream, upgradedRequest: upgrade.request.map { ($0, upgrade.time) })
        }
        let graphQL = MessageStageEntry(protocolName: "graphql-transport-ws") { GraphQLDecoder(.transportWS) }
        let subscriptions = MessageStageEntry(protocolName: "graphql-ws") { GraphQLDecoder(.subscriptionsTransportWS) }
        let jsonRPC = MessageStageEntry(protocolName: "jsonrpc") { JSONRPCDecoder() }
        let mqtt = MessageStageEntry(protocolName: "mqtt") { MQTTDecoder() }
        let stomp = MessageStageEntry(protocolName: "stomp") { STOMPDecoder(version: .v1_2) }
        let socketIO = MessageStageEntry(protocolName: "socket.io") { SocketIODecoder() }
        registry.register(application: graphQL, subprotocols: ["graphql-transport-ws"])
        registry.register(application: subscriptions, subprotocols: ["graphql-ws"])
        registry.register(application: jsonRPC, subprotocols: ["jsonrpc", "json-rpc", "jsonrpc2.0", "jsonrpc-2.0"])
        registry.register(application: MessageStageEntry(protocolName: "json") { PlainJSONDecoder() }, subprotocols: ["json"])
        registry.register(application: mqtt, subprotocols: ["mqtt", "mqttv3.1"])
        // STOMP's token names its version: what header escaping means.
        registry.register(application: stomp, subprotocols: ["stomp", "v12.stomp"])
        registry.register(subprotocol: "v11.stomp", MessageStageEntry(protocolName: "stomp") { STOMPDecoder(version: .v1_1) })
        registry.register(subprotocol: "v10.stomp", MessageStageEntry(protocolName: "stomp") { STOMPDecoder(version: .v1_0) })
        // Socket.IO has no subprotocol token: its URL says it.
        registry.register(application: socketIO)
        registry.paths.append(("/socket.io/", socketIO))
        // The last resort, on a stream's first data message: signatures no ordinary text has.
        registry.sniffers = [
            ApplicationSniffer(entry: mqtt, recognises: ApplicationSignatures.mqttConnect),
            ApplicationSniffer(entry: stomp, recognises: ApplicationSignatures.stompConnect),
            ApplicationSniffer(entry: socketIO, recognises: ApplicationSignatures.engineIOOpen),
            ApplicationSniffer(entry: graphQL, recognises: ApplicationSignatures.graphQLTransportInit),
            ApplicationSniffer(entry: jsonRPC, recognises: ApplicationSignatures.jsonRPC),
        ]
        return registry
    }()

    /// The first stage of a new connection.
    static func start(_ stream: StreamContext) -> Stage {
        ProtocolDetectionStage(stream: stream, insideTLS: false)
    }

    /// The first stage of the plaintext inside TLS, until the session says more: its first bytes decide.
    static func afterTLS(_ stream: StreamContext) -> Stage {
        ProtocolDetectionStage(stream: stream, insideTLS: true)
    }

    /// The stage the ALPN table names for the plaintext of a session that selected `alpn`; nil
    /// when the table has none (the first bytes decide).
    static func plaintextStage(_ stream: StreamContext, alpn: String?, at time: CaptureTimestamp) -> Stage? {
        guard let alpn, let make = stream.connection.stages.alpn[alpn] else { return nil }
        return make(stream, time)
    }

    /// What follows a 101: the stage the selected protocol's token names, a search for frames when
    /// the heads were cut and the selection is unknown, otherwise the bytes of another protocol.
    static func afterSwitch(_ upgrade: UpgradeSwitch, selected: String?, headsCut: Bool) -> Stage {
        if selected == nil, headsCut {
            return WebSocketStage(
                stream: upgrade.stream, decoder: searchingDecoder(upgrade.stream, rolesKnown: true),
                mode: .searching(.heuristic, afterSwitch: true))
        }
        if let selected, let make = upgrade.stream.connection.stages.upgradeTokens[selected.lowercased()] {
            return make(upgrade)
        }
        return OpaqueStage(stream: upgrade.stream, afterSwitch: true)
    }

    // MARK: - First bytes

    /// A TLS record (a ClientHello or ServerHello, or records caught mid-connection).
    static let tls = FirstBytesProbe(name: "tls", appliesInsideTLS: false) { first in
        let bytes = first.bytes
        if !first.final, bytes.count < 6, let byte = bytes.first, TLSContentType.known.contains(byte) { return .needMoreBytes }
        guard TLSConnectionDecoder.startsLikeTLS(bytes) || TLSConnectionDecoder.startsLikeTLSRecord(bytes) else {
            return .notMine
        }
        // A ServerHello first: the TCP layer has client and server the wrong way round.
        let serverHelloFromClient = TLSConnectionDecoder.startsLikeTLS(bytes)
            && bytes[bytes.startIndex + 5] == TLSHandshakeType.serverHello.rawValue && first.direction == .clientToServer
        return .decodes(swapRoles: serverHelloFromClient) { TLSStage(stream: $0) }
    }

    /// A connection to or from a port in the port table that does not start with an HTTP head:
    /// the table's stage, by the user's word (the server is the endpoint with that port).
    static let port = FirstBytesProbe(name: "port", appliesInsideTLS: true) { first in
        let record = first.record
        let ports = first.stream.connection.stages.ports
        guard !ports.isEmpty else { return .notMine }
        let (server, make) = ports[record.server.port].map { (record.server, $0) }
            ?? ports[record.client.port].map { (record.client, $0) } ?? (record.server, nil)
        guard let make, !HTTPFirstBytes(first.bytes).looksLikeHTTP else { return .notMine }
        return .decodes(swapRoles: server != record.server, stage: make)
    }

    /// `--websocket-port`: WebSocket frames from the first byte, roles by the port.
    static func websocketByPort(_ stream: StreamContext) -> Stage {
        websocketWithoutHandshake(stream, detection: .port)
    }

    /// HTTP/2 with prior knowledge: the client's connection preface (RFC 9113 §3.4), whole.
    static let http2Preface = FirstBytesProbe(name: "http2-preface", appliesInsideTLS: true) { first in
        guard HTTP2FrameLayer.startsWithPreface(first.bytes) else { return .notMine }
        if first.bytes.count < 24 { return first.final ? .notMine : .needMoreBytes }
        return .decodes(swapRoles: first.direction == .serverToClient) { HTTP2Stage(stream: $0) }
    }

    /// HTTP/1.x: every connection whose TCP handshake was seen, and the heads of others (which
    /// also show who the client is).
    static let http = FirstBytesProbe(name: "http", appliesInsideTLS: true) { first in
        if first.record.tcpHandshakeSeen { return .decodes(swapRoles: false, stage: nil) }
        let looks = HTTPFirstBytes(first.bytes)
        guard looks.looksLikeHTTP else { return .notMine }
        let backwards = (first.direction == .serverToClient && looks.request) || (first.direction == .clientToServer && looks.response)
        return .decodes(swapRoles: backwards, stage: nil)
    }

    /// Anything else on a connection whose start was not captured: WebSocket frames are searched for.
    static let websocketFrames = FirstBytesProbe(name: "websocket-frames", appliesInsideTLS: true) { _ in
        .decodes(swapRoles: false) { websocketWithoutHandshake($0, detection: .heuristic) }
    }

    // MARK: - WebSocket

    /// WebSocket after a 101 that selected it: the handshake's extensions decide the decoder, its
    /// subprotocol (or URL) the message stage.
    static func websocketAfterSwitch(_ upgrade: UpgradeSwitch) -> Stage {
        let stream = upgrade.stream
        guard let handshake = upgrade.handshake else { return OpaqueStage(stream: stream, afterSwitch: true) }
        let (compression, violations) = MessageCompression.from(handshake)
        violations.forEach { stream.report(Issue($0, time: upgrade.time)) }
        if case .unsupported(let name) = compression { stream.report(.unsupportedExtension(name, time: upgrade.time)) }
        let decoder = WebSocketConnectionDecoder(
            rolesKnown: true, allowedReservedBits: handshake.allowedReservedBits, compression: compression,
            maxPayloadBytes: stream.options.maxPayloadBytes, synchronized: true, inflaters: stream.connection.inflaters)
        let messages = stream.connection.stages.messageStage(
            subprotocol: handshake.subprotocol, requestTarget: upgrade.requestTarget,
            serverPort: stream.connection.record.server.port)
        return WebSocketStage(
            stream: stream, decoder: decoder, mode: .decoding(.handshake), handshakeFailed: upgrade.handshakeFailed,
            messages: messages)
    }

    /// WebSocket frames searched for from the first byte: the handshake was not captured.
    static func websocketWithoutHandshake(_ stream: StreamContext, detection: WebSocketDetection) -> Stage {
        // By port, the roles are known and the connection is WebSocket by the user's word: the
        // first frames decide. By heuristic the frames' masking will tell.
        WebSocketStage(
            stream: stream,
            decoder: searchingDecoder(stream, rolesKnown: detection == .port, confirmed: detection == .port),
            mode: .searching(detection, afterSwitch: false),
            messages: stream.connection.stages.messageStage(
                subprotocol: nil, requestTarget: nil, serverPort: stream.connection.record.server.port))
    }

    /// Decoders that do not know the handshake: RSV1 may mean permessage-deflate, with parameters
    /// and window unknown.
    private static func searchingDecoder(
        _ stream: StreamContext, rolesKnown: Bool, confirmed: Bool = false
    ) -> WebSocketConnectionDecoder {
        WebSocketConnectionDecoder(
            rolesKnown: rolesKnown, allowedReservedBits: FrameHeader.rsv1Bit,
            compression: .perMessageDeflate(PerMessageDeflateParameters()),
            maxPayloadBytes: stream.options.maxPayloadBytes, synchronized: false, confirmed: confirmed,
            inflaters: stream.connection.inflaters)
    }
}

/// What a connection's first bytes say of HTTP/1.x: a request line or a status line.
struct HTTPFirstBytes {
    var request: Bool
    var response: Bool

    init(_ bytes: UnsafeRawBufferPointer) {
        let prefix = Array(bytes.prefix(8))
        response = prefix.starts(with: Array("HTTP/1.".utf8))
        request = prefix.count >= 4 && !response && HTTPConversation.startsLikeHTTP(prefix, direction: .clientToServer)
    }

    var looksLikeHTTP: Bool { request || response }
}
