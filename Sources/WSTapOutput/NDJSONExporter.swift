import WSTap
import WSTapParallel
import WSTapCore
/// Writes one JSON object per timeline event as it happens (docs/json-format.md, NDJSON).
///
/// Holds nothing between events, so it streams in constant memory for `read` and `sniff`.
public final class NDJSONExporter: TimelineSink {
    let output: OutputChannel
    let maxPayload: Int?
    /// The output's own buffer: each line is rendered where it will be written from.
    private let line: OutputBuffer
    private let textCache = FrameTextCache()
    /// Bounds decompressed payloads shown when `maxPayload` is nil.
    var inflatedBudget = InflatedPayloadBudget()
    /// Each open connection's `"host"` and `"target"` fields, rendered once from its last request
    /// (the Upgrade request on a WebSocket connection) and added to its message events, so that
    /// "the messages of /chat" is a filter on one line (`jq 'select(.target == "/chat")'`).
    private var requestContext: [UInt64: [UInt8]] = [:]

    public convenience init(output: OutputChannel, maxPayload: Int? = nil) {
        self.init(output: output, maxPayload: maxPayload, inflatedBudget: InflatedPayloadBudget())
    }

    init(output: OutputChannel, maxPayload: Int?, inflatedBudget: InflatedPayloadBudget) {
        self.output = output
        self.maxPayload = maxPayload
        self.inflatedBudget = inflatedBudget
        line = output.pending
    }

    public var writesContextLines: Bool { true }

    /// A filtered-out request still names the host and target of the messages that are shown.
    public func observe(_ event: TimelineEvent) {
        guard case .httpRequest(let head) = event.kind, let id = event.connection?.id else { return }
        requestContext[id] = Self.requestContext(head)
    }

    private static func requestContext(_ head: HTTPRequestHead) -> [UInt8] {
        let context = OutputBuffer(capacity: 128)
        context.raw(",\"host\":"); context.string(head.headers.combinedValue("Host"))
        context.raw(",\"target\":"); context.string(head.target)
        return context.withBytes { Array($0) }
    }

    public func receive(_ event: TimelineEvent) {
        let time = event.time
        let id = event.connection?.id ?? 0
        switch event.kind {
        case .captureStarted:
            line.raw("{\"event\":\"capture_start\",\"time\":"); line.time(time)
        case .connectionOpened:
            begin("connection_open", id)
            line.comma(); line.timeAndPacket(time)
            if let record = event.connection {
                line.raw(",\"start_time\":"); line.time(record.startTime)
                line.raw(",\"client\":"); line.endpoint(record.client)
                line.raw(",\"server\":"); line.endpoint(record.server)
                line.raw(",\"tcp_handshake_seen\":"); line.bool(record.tcpHandshakeSeen)
            }
        case .httpRequest(let head):
            begin("http_request", id, stream: event.stream); line.comma()
            line.requestFields(head, time: time)
            requestContext[id] = Self.requestContext(head)
        case .httpResponse(let head):
            begin("http_response", id, stream: event.stream); line.comma()
            line.responseFields(head, time: time)
        case .httpExchange:
            return  // The pairing is for whole-capture formats: its request and response were written as they came.
        case .upgrade(let exchange):
            begin("upgrade", id, stream: event.stream); line.comma()
            line.upgradeFields(exchange)
        case .upgradeAnswerBody(let body):
            begin("upgrade_answer_body", id, stream: event.stream); line.comma()
            line.answerBodyFields(body, time: time)
        case .tls(let session):
            begin("tls", id)
            line.comma(); line.timeAndPacket(time)
            line.raw(",\"tls\":"); line.tlsFields(session)
        case .frame(let frame):
            begin("frame", id, stream: event.stream); line.comma()
            inflatedBudget.frameSeen(frame)
            line.frameFields(frame, at: time, maxPayload: maxPayload, textCache: textCache)
        case .message(let message):
            begin("message", id, stream: event.stream); line.comma()
            line.messageFields(message, at: time, maxPayload: maxPayload ?? inflatedBudget.maxPayload(for: message), textCache: textCache)
            requestFields(of: id)
        case .application(let message):
            begin("app", id, stream: event.stream); line.comma()
            line.applicationFields(message, at: time)
            requestFields(of: id)
        case .issue(let issue):
            line.raw("{\"event\":\"issue\",\"connection\":"); output.connectionID(event.connection?.id)
            line.streamField(event.stream); line.comma()
            line.issueFields(issue)
        case .streamClosed(let end):
            begin("stream_close", id); line.comma(); line.timeAndPacket(time)
            line.comma(); line.streamEndFields(end, stream: event.stream)
        case .connectionClosed(let end):
            begin("connection_close", id)
            requestContext[id] = nil
            line.comma(); line.timeAndPacket(time)
            line.raw(",\"reason\":"); line.string(end.reason.rawValue)
            line.comma(); line.endingFields(end.ending, start: event.connection?.startTime ?? end.time, end: end.time)
            line.raw(",\"protocol\":"); line.string(end.protocolKind.rawValue)
            line.raw(",\"websocket_detection\":"); line.string(end.websocketDetection?.rawValue)
            line.raw(",\"tls\":")
            if let tls = end.tls { line.tlsFields(tls) } else { line.raw("null") }
            line.raw(",\"totals\":{"); line.totalsFields(end.totals); line.raw("}")
        }
        line.raw("}\n")
        output.endEvent(at: time)
    }

    /// `"host"` and `"target"` of the connection's last request, on its message events.
    private func requestFields(of id: UInt64) {
        if let context = requestContext[id] {
            context.withUnsafeBytes { line.append($0) }
        } else {
            line.raw(",\"host\":null,\"target\":null")
        }
    }

    public func finish(_ summary: CaptureSummary) {
        if let late = output.timeOrderIssue { receive(.issue(nil, late)) }
        if let cut = inflatedBudget.issue { receive(.issue(nil, cut)) }
        line.raw("{\"event\":\"summary\",")
        line.summaryFields(summary)
        line.raw("}\n")
        output.flush()
    }

    private func begin(_ name: StaticString, _ connection: UInt64, stream: StreamID? = nil) {
        line.raw("{\"event\":\"")
        line.raw(name)
        line.raw("\",\"connection\":")
        output.connectionID(connection)
        line.streamField(stream)
    }
}

