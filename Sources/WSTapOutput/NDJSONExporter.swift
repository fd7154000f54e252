import WSTap
import WSTapCore
/// Writes one JSON object per timeline event as it happens (docs/json-format.md, NDJSON).
///
/// Holds nothing between events, so it streams in constant memory for `read` and `sniff`.
public final class NDJSONExporter: TimelineSink {
    private let output: OutputChannel
    private let maxPayload: Int?
    /// The output's own buffer: each line is rendered where it will be written from.
    private let line: OutputBuffer
    private let textCache = FrameTextCache()

    public init(output: OutputChannel, maxPayload: Int? = nil) {
        self.output = output
        self.maxPayload = maxPayload
        line = output.pending
    }

    public func receive(_ event: TimelineEvent) {
        switch event {
        case .captureStarted(let time):
            line.raw("{\"event\":\"capture_start\",\"time\":"); line.time(time)
        case .connectionOpened(let record, let time):
            begin("connection_open", record.id)
            line.raw(",\"time\":"); line.time(time)
            line.raw(",\"start_time\":"); line.time(record.startTime)
            line.raw(",\"client\":"); line.endpoint(record.client)
            line.raw(",\"server\":"); line.endpoint(record.server)
            line.raw(",\"tcp_handshake_seen\":"); line.bool(record.tcpHandshakeSeen)
        case .httpRequest(let record, let time, let head):
            begin("http_request", record.id); line.comma()
            line.requestFields(head, time: time)
        case .httpResponse(let record, let time, let head):
            begin("http_response", record.id); line.comma()
            line.responseFields(head, time: time)
        case .httpExchange:
            return  // The pairing is for whole-capture formats: its request and response were written as they came.
        case .upgrade(let record, let exchange):
            begin("upgrade", record.id); line.comma()
            line.upgradeFields(exchange)
        case .upgradeAnswerBody(let record, let time, let body):
            begin("upgrade_answer_body", record.id); line.comma()
            line.answerBodyFields(body, time: time)
        case .frame(let record, let frame):
            begin("frame", record.id); line.comma()
            line.frameFields(frame, maxPayload: maxPayload, textCache: textCache)
        case .message(let record, let message):
            begin("message", record.id); line.comma()
            line.messageFields(message, maxPayload: maxPayload, textCache: textCache)
        case .issue(let record, let issue):
            line.raw("{\"event\":\"issue\",\"connection\":"); line.number(record?.id); line.comma()
            line.issueFields(issue)
        case .connectionClosed(let record, let end):
            begin("connection_close", record.id)
            line.raw(",\"time\":"); line.time(end.time)
            line.raw(",\"reason\":"); line.string(end.reason.rawValue)
            line.raw(",\"protocol\":"); line.string(end.protocolKind.rawValue)
            line.raw(",\"websocket_detection\":"); line.string(end.websocketDetection?.rawValue)
            line.raw(",\"totals\":{"); line.totalsFields(end.totals); line.raw("}")
        }
        line.raw("}\n")
        output.endEvent()
    }

    public func finish(_ summary: CaptureSummary) {
        line.raw("{\"event\":\"summary\",")
        line.summaryFields(summary)
        line.raw("}\n")
        output.flush()
    }

    private func begin(_ name: StaticString, _ connection: UInt64) {
        line.raw("{\"event\":\"")
        line.raw(name)
        line.raw("\",\"connection\":")
        line.number(connection)
    }
}
