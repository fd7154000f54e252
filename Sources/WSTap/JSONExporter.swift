/// Writes the whole capture as one JSON document (docs/json-format.md, `format_version` 1).
///
/// Each connection is held only until it ends, then written out, so memory follows the open
/// connections, not the capture. Connections appear in the order they ended.
public final class JSONExporter: TimelineSink {
    /// The objects of one JSON array, rendered as they come, one per line.
    private final class ObjectList {
        let items: OutputBuffer
        private(set) var count = 0

        init(items: OutputBuffer = OutputBuffer()) { self.items = items }

        /// Starts the next object; its fields go into `items`, then a closing brace.
        ///
        /// Frames and messages are written through `items` borrowed without reference counting:
        /// releasing a reference after a burst of writes is a locked instruction that waits for
        /// every pending store, which cost a tenth of the JSON run.
        func beginObject() {
            items.raw(count == 0 ? "\n{" : ",\n{")
            count += 1
        }

        func write(to output: OutputChannel) {
            output.write("[")
            output.write(items)
            output.write(count == 0 ? "]" : "\n]")
        }
    }

    private final class OpenConnection {
        let record: ConnectionRecord
        /// Each request's JSON, and its response's once answered (HTTP/1.1 answers in order).
        var http: [(request: OutputBuffer, response: OutputBuffer?)] = []
        var upgrade: OutputBuffer?
        let frames: ObjectList
        let messages: ObjectList
        let issues = ObjectList()

        init(record: ConnectionRecord, frameBuffer: OutputBuffer, messageBuffer: OutputBuffer) {
            self.record = record
            frames = ObjectList(items: frameBuffer)
            messages = ObjectList(items: messageBuffer)
        }

        func addFrame(_ frame: FrameRecord, maxPayload: Int?, textCache: FrameTextCache) {
            frames.beginObject()
            Unmanaged.passUnretained(frames.items)._withUnsafeGuaranteedRef {
                $0.frameFields(frame, maxPayload: maxPayload, textCache: textCache)
                $0.raw("}")
            }
        }

        func addMessage(_ message: MessageRecord, maxPayload: Int?, textCache: FrameTextCache) {
            messages.beginObject()
            Unmanaged.passUnretained(messages.items)._withUnsafeGuaranteedRef {
                $0.messageFields(message, maxPayload: maxPayload, textCache: textCache)
                $0.raw("}")
            }
        }
    }

    private let output: OutputChannel
    private let maxPayload: Int?
    /// Connections not yet written, each retained once by this table (`Unmanaged`: the lookup
    /// for every frame and message then costs no reference counting).
    private var open: [UInt64: Unmanaged<OpenConnection>] = [:]
    /// Consecutive events mostly concern one connection: the last one looked up, by id.
    private var lastID: UInt64 = 0
    private var lastConnection: Unmanaged<OpenConnection>?
    private var written = 0
    private let captureIssues = ObjectList()
    private let scratch = OutputBuffer()
    private let textCache = FrameTextCache()
    /// Frame and message buffers of connections already written, kept for the next ones:
    /// growing a fresh buffer for every connection copied each list several times over.
    private var spareBuffers: [OutputBuffer] = []
    private var spareBytes = 0
    /// What the spare buffers may hold in all: a bulk transfer's huge lists are not kept.
    private static let maxSpareBytes = 8 << 20
    private static let maxSpareCapacity = 256 << 10

    /// `maxPayload` cuts every payload shown to that many bytes (`--max-payload`).
    public init(output: OutputChannel, maxPayload: Int? = nil) {
        self.output = output
        self.maxPayload = maxPayload
        output.write("{\"format_version\":1,\"connections\":[")
    }

    deinit {
        for connection in open.values { connection.release() }
    }

    public func receive(_ event: TimelineEvent) {
        switch event {
        case .captureStarted:
            break
        case .connectionOpened(let record):
            let connection = OpenConnection(record: record, frameBuffer: spareBuffer(), messageBuffer: spareBuffer())
            open.updateValue(.passRetained(connection), forKey: record.id)?.release()
            if lastID == record.id { lastConnection = nil }
        case .httpRequest(let record, let time, let head):
            withConnection(record.id) { connection in
                let request = OutputBuffer()
                request.raw("{")
                request.requestFields(head, time: time)
                request.raw("}")
                connection.http.append((request, nil))
            }
        case .httpResponse(let record, let time, let head):
            withConnection(record.id) { fillResponse(of: $0, with: head, time: time) }
        case .upgrade(let record, let exchange):
            withConnection(record.id) { connection in
                let buffer = OutputBuffer()
                buffer.raw("{")
                buffer.upgradeFields(exchange)
                buffer.raw("}")
                connection.upgrade = buffer
            }
        case .frame(let record, let frame):
            withConnection(record.id) { $0.addFrame(frame, maxPayload: maxPayload, textCache: textCache) }
        case .message(let record, let message):
            withConnection(record.id) { $0.addMessage(message, maxPayload: maxPayload, textCache: textCache) }
        case .issue(let record, let issue):
            guard let record else { return Self.add(issue, to: captureIssues) }
            withConnection(record.id) { Self.add(issue, to: $0.issues) }
        case .connectionClosed(let record, let end):
            guard let owned = open.removeValue(forKey: record.id) else { return }
            if lastID == record.id { lastConnection = nil }
            write(owned.takeRetainedValue(), end: end)
        }
    }

    private static func add(_ issue: Issue, to list: ObjectList) {
        list.beginObject()
        list.items.issueFields(issue)
        list.items.raw("}")
    }

    /// Runs `body` with the open connection `id`, borrowed (events for unknown ids are dropped).
    @inline(__always)
    private func withConnection(_ id: UInt64, _ body: (OpenConnection) -> Void) {
        if id != lastID || lastConnection == nil {
            lastID = id
            lastConnection = open[id]
        }
        lastConnection?._withUnsafeGuaranteedRef(body)
    }

    private func spareBuffer() -> OutputBuffer {
        guard let buffer = spareBuffers.popLast() else { return OutputBuffer(capacity: 4096) }
        spareBytes -= buffer.capacity
        return buffer
    }

    private func recycle(_ buffer: OutputBuffer) {
        guard buffer.capacity <= Self.maxSpareCapacity, spareBytes + buffer.capacity <= Self.maxSpareBytes else { return }
        buffer.removeAll()
        spareBuffers.append(buffer)
        spareBytes += buffer.capacity
    }


    public func finish(_ summary: CaptureSummary) {
        output.write(written == 0 ? "]" : "\n]")
        output.write(",\n\"issues\":")
        captureIssues.write(to: output)
        scratch.removeAll()
        scratch.raw(",\n\"summary\":{")
        scratch.summaryFields(summary)
        scratch.raw("}}\n")
        output.write(scratch)
        output.flush()
    }

    /// The response goes to the first request still without one (HTTP/1.1 answers in order).
    private func fillResponse(of connection: OpenConnection, with head: HTTPResponseHead, time: CaptureTimestamp) {
        guard head.status >= 200 || head.status == 101,
              let index = connection.http.firstIndex(where: { $0.response == nil })
        else { return }
        let response = OutputBuffer()
        response.raw("{")
        response.responseFields(head, time: time)
        response.raw("}")
        connection.http[index].response = response
    }

    private func write(_ connection: OpenConnection, end: ConnectionEnd) {
        let record = connection.record
        scratch.removeAll()
        scratch.raw(written == 0 ? "\n{" : ",\n{")
        written += 1
        scratch.key("id"); scratch.number(record.id)
        scratch.raw(",\"client\":"); scratch.endpoint(record.client)
        scratch.raw(",\"server\":"); scratch.endpoint(record.server)
        scratch.raw(",\"start_time\":"); scratch.time(record.startTime)
        scratch.raw(",\"end_time\":"); scratch.time(end.time)
        scratch.raw(",\"end_reason\":"); scratch.string(end.reason.rawValue)
        scratch.raw(",\"tcp_handshake_seen\":"); scratch.bool(record.tcpHandshakeSeen)
        scratch.raw(",\"protocol\":"); scratch.string(end.protocolKind.rawValue)
        scratch.raw(",\"websocket_detection\":"); scratch.string(end.websocketDetection?.rawValue)
        scratch.raw(",\"totals\":{"); scratch.totalsFields(end.totals); scratch.raw("}")
        scratch.raw(",\n\"http\":[")
        for (index, exchange) in connection.http.enumerated() {
            scratch.raw(index == 0 ? "\n{\"request\":" : ",\n{\"request\":")
            scratch.append(exchange.request)
            scratch.raw(",\"response\":")
            if let response = exchange.response { scratch.append(response) } else { scratch.raw("null") }
            scratch.raw("}")
        }
        scratch.raw(connection.http.isEmpty ? "]" : "\n]")
        scratch.raw(",\n\"upgrade\":")
        if let upgrade = connection.upgrade { scratch.append(upgrade) } else { scratch.raw("null") }
        scratch.raw(",\n\"frames\":")
        output.write(scratch)
        connection.frames.write(to: output)
        output.write(",\n\"messages\":")
        connection.messages.write(to: output)
        output.write(",\n\"issues\":")
        connection.issues.write(to: output)
        output.write("}")
        output.endEvent()
        recycle(connection.frames.items)
        recycle(connection.messages.items)
    }
}
