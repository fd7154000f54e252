import WSTapCore
import WSTapApplication
import WSTapWebSocket

/// The tables that choose a connection's next stage, as Wireshark's `http.upgrade`, `ws.protocol`
/// and `ws.port` tables and Zeek's `HTTP::upgrade_analyzers` do: what the first bytes look like,
/// the ALPN value TLS selected, the token a 101 selected, the `Sec-WebSocket-Protocol` (or the
/// URL) of a WebSocket. Stages look the next one up here instead of testing with `if`s; adding a
/// protocol is a new file and one registration (`ConnectionChain.swift` registers the standard
/// ones).
struct StageRegistry: Sendable {
    /// Looked at in order on a connection's first bytes (and on the plaintext of TLS); the first
    /// that takes them decides. When none does, the default stage (HTTP/1.1) decodes the stream.
    var firstBytes: [FirstBytesProbe] = []
    /// The stage every connection starts with behind its first-bytes detection: it also takes the
    /// gaps that come before the first byte.
    var defaultStage: @Sendable (StreamContext) -> Stage = { _ in Stage() }
    /// What decodes the plaintext of TLS, by the ALPN protocol the server selected; a value not
    /// here, or none, goes through the first-bytes table.
    var alpn: [String: @Sendable (StreamContext, CaptureTimestamp) -> Stage] = [:]
    /// What carries the bytes of a tunnel a CONNECT opened (RFC 9110 §9.3.6), given its target:
    /// by default the first-bytes table, as a new connection's (TLS to the origin, HTTP/1.1…).
    var tunnel: @Sendable (StreamContext, String, CaptureTimestamp) -> Stage = { stream, _, _ in ConnectionChain.start(stream) }
    /// What follows a 101, by the protocol the answer selected (lower-case); a protocol not here
    /// is another upgrade, whose bytes are counted.
    var upgradeTokens: [String: @Sendable (UpgradeSwitch) -> Stage] = [:]
    /// What decodes a connection found without a handshake, by the server's port (`--websocket-port`
    /// fills it with WebSocket), when its first bytes are not an HTTP head.
    var ports: [UInt16: @Sendable (StreamContext) -> Stage] = [:]
    /// Message stages of a WebSocket, by the `Sec-WebSocket-Protocol` the server selected (lower-case).
    var subprotocols: [String: MessageStageEntry] = [:]
    /// Message stages of a WebSocket whose protocol has no token, by the request path, in order.
    var paths: [(prefix: String, entry: MessageStageEntry)] = []
    /// Message stages by their protocol's name, for `--app` (`ForcedApplication`).
    var applications: [String: MessageStageEntry] = [:]
    /// The user's choices (`--app PROTOCOL[:PORT|:PATH]`), before any other rule, in order.
    var forced: [ForcedApplication] = []
    /// The last resort: looked at in order on a stream's first data message; the first whose
    /// probe says yes decodes the stream (marked `sniffed`).
    var sniffers: [ApplicationSniffer] = []

    /// The message stage for a WebSocket: what the user forced for its port or path, else its
    /// negotiated subprotocol, else its request path, else a stage that sniffs its first message.
    func messageStage(subprotocol: String?, requestTarget: String?, serverPort: UInt16) -> MessageStage? {
        let path = requestTarget.map { String($0.prefix { $0 != "?" }) }
        if let choice = forced.first(where: { $0.applies(serverPort: serverPort, path: path) }) {
            return MessageStage(entry: choice.entry, detection: .forced)
        }
        if let subprotocol, let entry = subprotocols[subprotocol.lowercased()] {
            return MessageStage(entry: entry, detection: .negotiated)
        }
        if let requestTarget, let found = paths.first(where: { requestTarget.hasPrefix($0.prefix) }) {
            return MessageStage(entry: found.entry, detection: .url)
        }
        return sniffers.isEmpty ? nil : MessageStage(sniffing: sniffers)
    }

    /// Registers a message stage under its protocol's name (for `--app`) and `Sec-WebSocket-Protocol` tokens.
    mutating func register(application entry: MessageStageEntry, subprotocols tokens: [String] = []) {
        applications[entry.protocolName] = entry
        for token in tokens { register(subprotocol: token, entry) }
    }

    /// Registers a message stage under a `Sec-WebSocket-Protocol` token.
    mutating func register(subprotocol: String, _ entry: MessageStageEntry) {
        subprotocols[subprotocol.lowercased()] = entry
    }
}

/// A message stage as the registry keeps it: the protocol's name and how to make a decoder for one stream.
struct MessageStageEntry: Sendable {
    var protocolName: String
    var make: @Sendable () -> any MessageDecoder
}

/// A protocol the user named for the WebSocket streams of a server port, of a path, or of all.
struct ForcedApplication: Sendable {
    var entry: MessageStageEntry
    var port: UInt16?
    var pathPrefix: String?

    func applies(serverPort: UInt16, path: String?) -> Bool {
        if let port { return port == serverPort }
        if let pathPrefix { return path?.hasPrefix(pathPrefix) ?? false }
        return true
    }
}

/// One row of the sniffing table: a protocol recognised from a stream's first data message.
struct ApplicationSniffer: Sendable {
    var entry: MessageStageEntry
    var recognises: @Sendable (ApplicationInput) -> Bool
}

/// What an upgrade-token entry is given to build the stage after a 101.
struct UpgradeSwitch {
    var stream: StreamContext
    /// The WebSocket handshake of the exchange, when the request offered WebSocket.
    var handshake: WebSocketHandshake?
    /// The 101 fails the WebSocket handshake (a client must fail the connection).
    var handshakeFailed: Bool
    /// The request that carried the offer (its target chooses a message stage by URL).
    var requestTarget: String? { request?.target }
    var request: HTTPRequestHead?
    var time: CaptureTimestamp
}

/// One row of the first-bytes table.
struct FirstBytesProbe: Sendable {
    /// For documentation and tests: what the probe recognises.
    var name: String
    /// Whether the probe also looks at the plaintext inside TLS.
    var appliesInsideTLS: Bool
    var decide: @Sendable (FirstBytes) -> ProbeAnswer
}

/// What a first-bytes probe is shown: a connection's first bytes in one direction.
struct FirstBytes {
    var bytes: UnsafeRawBufferPointer
    var direction: StreamDirection
    var stream: StreamContext
    /// No more bytes will come before a decision is needed: `needMoreBytes` is not an answer.
    var final: Bool

    var record: ConnectionRecord { stream.record }
}

/// A first-bytes probe's answer.
enum ProbeAnswer {
    /// Not this protocol: ask the next probe.
    case notMine
    /// Too few bytes to tell: hold them (at most `FirstBytesProbe.maxHeldBytes`) until more come.
    case needMoreBytes
    /// This protocol: `stage` decodes the stream (nil: the default stage); `swapRoles` when the
    /// bytes show that the TCP layer has client and server the wrong way round.
    case decodes(swapRoles: Bool, stage: ((StreamContext) -> Stage)?)
}

extension FirstBytesProbe {
    /// First bytes held while a probe needs more to tell.
    /// 24: the longest first bytes a probe needs to tell are HTTP/2's connection preface.
    static let maxHeldBytes = 24
}
