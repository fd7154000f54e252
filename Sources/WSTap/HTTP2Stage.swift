import WSTapCore
import WSTapHTTP
import WSTapHTTP2
import WSTapTCP
import WSTapWebSocket

/// HTTP/2 on a connection (RFC 9113): its frames (`HTTP2FrameLayer`, HPACK by swift-nio-http2),
/// and each stream as a stream of the connection (`StreamContext` with its id). An extended
/// CONNECT with `:protocol websocket` (RFC 8441) is a WebSocket handshake: its answer is judged
/// (`HandshakeValidator.validateExtendedConnect`), and after a 2xx the stream's DATA bytes go to a
/// WebSocket stage of their own, as an HTTP/1.1 upgrade's bytes do. A classic CONNECT (RFC 9113
/// §8.5) answered 2xx is a tunnel: its DATA bytes go to the tunnel table's stage (TLS, HTTP/1.1,
/// HTTP/2…, chosen by their first bytes). Other streams are HTTP exchanges. Registered by the client preface (prior knowledge), by ALPN `h2`, and by the
/// upgrade token `h2c` (the request that carried the upgrade is stream 1, RFC 9113 §3.2).
final class HTTP2Stage: Stage {
    private final class HTTP2Stream {
        let context: StreamContext
        var request: HTTPRequestHead?
        var requestTime: CaptureTimestamp?
        var isWebSocket = false
        /// The stage of a WebSocket stream once its CONNECT was accepted.
        var stage: Stage?
        /// How a WebSocket CONNECT was answered when it was not accepted (a refusal).
        var refusal: UpgradeOutcome?
        var ended = DirectionPair(false)

        init(context: StreamContext) { self.context = context }
    }

    private let stream: StreamContext
    private var frames: HTTP2FrameLayer
    private var streams: [UInt32: HTTP2Stream] = [:]
    /// Whether the server's SETTINGS enabled extended CONNECT (nil until its SETTINGS are seen).
    private var connectProtocolEnabled: Bool?
    /// The highest stream whose HEADERS were seen: DATA above it lost its HEADERS to a gap.
    private var highestOpened: UInt32 = 0
    /// Streams whose DATA came without their HEADERS, reported once each (at most `maxOpenStreams`).
    private var headlessStreams: Set<UInt32> = []
    /// Streams a connection keeps open at once (HTTP/2's own default limit is 100): past it the
    /// oldest is closed.
    static let maxOpenStreams = 1000

    /// `upgradedRequest`: after a 101 to h2c, the HTTP/1.1 request that is stream 1.
    init(stream: StreamContext, upgradedRequest: (HTTPRequestHead, CaptureTimestamp)? = nil) {
        self.stream = stream
        frames = HTTP2FrameLayer(expectsPreface: true, openedStreams: upgradedRequest == nil ? 0 : 1)
        super.init()
        if let (request, time) = upgradedRequest {
            highestOpened = 1
            let first = open(1, at: time)
            first.request = request
            first.requestTime = time
            // The request was sent whole before the switch: stream 1 is half-closed by the client (RFC 7540 §3.2).
            first.ended.clientToServer = true
            if let settings = HTTP2UpgradeSettings.of(request.headers) {
                frames.clientSettings(settings)
            } else {
                stream.report(Issue(
                    time: time, direction: .clientToServer, severity: .warning, code: "h2c-settings-invalid",
                    detail: !request.headers.contains("HTTP2-Settings")
                        ? "the Upgrade: h2c request has no HTTP2-Settings header (RFC 7540 §3.2.1 requires exactly one)"
                        : "the Upgrade: h2c request's HTTP2-Settings is not one base64url SETTINGS payload (RFC 7540 §3.2.1)"))
            }
        }
    }

    override var phase: ConnectionPhase { .http2 }

    override func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        frames.receive(bytes, direction: direction, at: time) { handle($0.0, direction: $0.1, at: time) }
        return nil
    }

    override func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        frames.missing(gap, direction: direction, at: time) { handle($0.0, direction: $0.1, at: time) }
        return nil
    }

    override func finish(at time: CaptureTimestamp) {
        for id in streams.keys.sorted() { close(id, reason: "connection-closed", end: .finished, at: time) }
    }

    private func open(_ id: UInt32, at time: CaptureTimestamp) -> HTTP2Stream {
        if let known = streams[id] { return known }
        if streams.count >= Self.maxOpenStreams, let oldest = streams.keys.min() {
            close(oldest, reason: "evicted", end: .evicted, at: time)
        }
        let opened = HTTP2Stream(context: StreamContext(connection: stream.connection, id: StreamID(id), openedAt: time))
        streams[id] = opened
        return opened
    }

    private func handle(_ event: HTTP2Event, direction: StreamDirection, at time: CaptureTimestamp) {
        switch event {
        case .preface:
            break
        case .settings(let settings):
            guard direction == .serverToClient else { return }
            for parameter in settings.parameters where parameter.identifier == HTTP2Setting.enableConnectProtocol {
                connectProtocolEnabled = parameter.value == 1
            }
            if connectProtocolEnabled == nil { connectProtocolEnabled = false }
        case .headers(let id, let headers, let endStream):
            highestOpened = max(highestOpened, id)
            let current = open(id, at: time)
            if direction == .clientToServer { request(headers, on: current, at: time) } else { response(headers, on: current, at: time) }
            if endStream { streamEnded(id, direction: direction, at: time) }
        case .data(let id, let bytes, let endStream):
            guard let current = streams[id] else { return headless(id, direction: direction, at: time) }
            if let stage = current.stage, let next = stage.receive(bytes, direction: direction, at: time) { current.stage = next }
            if endStream { streamEnded(id, direction: direction, at: time) }
        case .dataMissing(let id, let count, let boundaryLost):
            guard let current = streams[id], let stage = current.stage, count > 0 else { return }
            let gap = MissingBytes(count, cause: .notCaptured, boundaryLost: boundaryLost)
            if let next = stage.missing(gap, direction: direction, at: time) { current.stage = next }
        case .boundariesLost:
            // Any open stream of the direction may have lost bytes: each checks that its next
            // bytes begin a unit (a WebSocket frame) before trusting them.
            for id in streams.keys.sorted() { streams[id]?.stage?.boundaryUnknown(direction: direction) }
        case .resetStream(let id, let code):
            close(id, reason: "rst-stream \(HTTP2ErrorCode.name(code))", end: .reset, at: time)
        case .goAway(let lastStream, let code, let debug):
            goAway(lastStream: lastStream, code: code, debug: debug, direction: direction, at: time)
        case .violation(let violation):
            stream.report(.http2(violation, time: time, direction: direction))
        }
    }

    private func request(_ headers: HTTPHeaders, on current: HTTP2Stream, at time: CaptureTimestamp) {
        let method = headers.combinedValue(":method") ?? "?"
        let head = HTTPRequestHead(
            method: method, target: headers.combinedValue(":path") ?? headers.combinedValue(":authority") ?? "", version: "HTTP/2",
            headers: headers)
        current.request = head
        current.requestTime = time
        current.isWebSocket = method == "CONNECT" && (headers.combinedValue(":protocol")?.caseInsensitiveEquals("websocket") ?? false)
        current.context.emit(.httpRequest(head), at: time)
    }

    private func response(_ headers: HTTPHeaders, on current: HTTP2Stream, at time: CaptureTimestamp) {
        let status = headers.combinedValue(":status").flatMap { Int($0) } ?? 0
        // Interim responses (1xx) do not answer the request.
        guard !(100..<200).contains(status) else { return }
        let head = HTTPResponseHead(version: "HTTP/2", status: status, reason: "", headers: headers)
        current.context.emit(.httpResponse(head), at: time)
        guard let request = current.request, let requestTime = current.requestTime else { return }
        current.context.emit(
            .httpExchange(HTTPExchange(request: request, requestTime: requestTime, response: head, responseTime: time)), at: time)
        guard current.isWebSocket else {
            // A classic CONNECT answered 2xx: the stream is a tunnel to its :authority.
            if request.isClassicConnect, (200..<300).contains(status) {
                current.stage = stream.connection.stages.tunnel(current.context, request.target, time)
            }
            return
        }
        let (handshake, violations) = HandshakeValidator.validateExtendedConnect(
            request: request.headers, response: (status, headers), connectProtocolEnabled: connectProtocolEnabled)
        violations.forEach { current.context.report(Issue($0, time: time)) }
        let accepted = (200..<300).contains(status)
        let failed = accepted && violations.contains(where: \.failsConnection)
        current.context.emit(.upgrade(UpgradeExchange(
            request: request, requestTime: requestTime, response: head, responseTime: time, offeredProtocols: ["websocket"],
            selectedProtocol: accepted ? "websocket" : nil, websocket: handshake,
            outcome: accepted ? (failed ? .failed : .upgraded) : .rejected, time: time)), at: time)
        guard accepted else { return current.refusal = .rejected }
        current.stage = ConnectionChain.websocketAfterSwitch(UpgradeSwitch(
            stream: current.context, handshake: handshake, handshakeFailed: failed, request: request, time: time))
    }

    /// GOAWAY (RFC 9113 §6.8): reported; the streams its receiver opened above the last stream
    /// its sender processed were not processed, and end here.
    private func goAway(lastStream: UInt32, code: UInt32, debug: String, direction: StreamDirection, at time: CaptureTimestamp) {
        let sender = direction == .clientToServer ? "client" : "server"
        var detail = "the \(sender) sent GOAWAY (\(HTTP2ErrorCode.name(code)), last stream \(lastStream)): no new streams on this connection"
        if !debug.isEmpty { detail += "; debug data \"\(debug)\"" }
        stream.report(Issue(time: time, direction: direction, severity: code == 0 ? .info : .warning, code: "http2-goaway", detail: detail))
        // Client streams are odd, server (pushed) streams even: the receiver's above lastStream were not processed.
        let receiverParity: UInt32 = direction == .serverToClient ? 1 : 0
        for id in streams.keys.sorted() where id > lastStream && id % 2 == receiverParity {
            close(id, reason: "goaway", end: .reset, at: time)
        }
    }

    /// DATA on a stream whose HEADERS were not seen (lost to a gap): reported once per stream.
    private func headless(_ id: UInt32, direction: StreamDirection, at time: CaptureTimestamp) {
        guard id > highestOpened, headlessStreams.count < Self.maxOpenStreams, headlessStreams.insert(id).inserted else { return }
        stream.report(Issue(time: time, direction: direction, severity: .warning, code: "http2-stream-unknown",
                            detail: "DATA on stream \(id), whose HEADERS are not in the capture: its bytes are not decoded"))
    }

    /// END_STREAM: when both directions have ended, the stream has.
    private func streamEnded(_ id: UInt32, direction: StreamDirection, at time: CaptureTimestamp) {
        guard let current = streams[id] else { return }
        current.ended[direction] = true
        if current.ended.clientToServer, current.ended.serverToClient { close(id, reason: "end-stream", end: .finished, at: time) }
    }

    private func close(_ id: UInt32, reason: String, end: ConnectionEndReason, at time: CaptureTimestamp) {
        guard let current = streams.removeValue(forKey: id) else { return }
        // A WebSocket CONNECT refused, or never answered, ends as the HTTP/1.1 offer would.
        let upgrade = current.refusal ?? (current.isWebSocket && current.stage == nil ? .incomplete : nil)
        let last = current.stage ?? HTTP2ExchangeStage(upgrade: upgrade)
        last.finish(at: time)
        current.context.close(stage: last, reason: reason, end: end, at: time)
    }
}

/// What an HTTP/2 stream that carried no WebSocket was, as its end reports it: an HTTP exchange.
private final class HTTP2ExchangeStage: Stage {
    /// How a WebSocket offer on the stream went, when it was one and was not accepted.
    private let upgrade: UpgradeOutcome?

    init(upgrade: UpgradeOutcome?) {
        self.upgrade = upgrade
    }

    override var phase: ConnectionPhase { .http }

    override func ending(reason: ConnectionEndReason) -> ConnectionEnding {
        ConnectionEnding.decide(phase: phase, upgrade: upgrade, handshakeFailed: false, closing: nil, reason: reason)
    }
}
