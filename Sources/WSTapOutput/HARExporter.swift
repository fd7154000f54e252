import WSTap
import WSTapCore

/// Writes HAR 1.2 (`--format har`, docs/har.md): one entry per HTTP exchange, WebSocket upgrades
/// as Chrome DevTools writes them (`_resourceType: "websocket"`, `_webSocketMessages` with the
/// data messages, reassembled and decompressed), so the file opens in DevTools and HAR viewers.
///
/// Like a browser's HAR export, the document is built in memory: each connection's entries are
/// rendered when it ends, and all are written at the end in order of their start.
public final class HARExporter: TimelineSink {
    /// One request on a connection, with what answered it.
    private struct Entry {
        var exchange: HTTPExchange
        /// The HTTP/2 stream it was on; nil on HTTP/1.x.
        var stream: StreamID?
        /// The body of the answer when it refused an upgrade (what the server said).
        var answerBody: HTTPBodyPreview?
        /// It went inside decrypted TLS (the connection's, or a tunnel's on its stream).
        var secure: Bool
    }

    /// The WebSocket messages of one byte stream (the connection, or one HTTP/2 stream), rendered.
    private final class MessageItems {
        /// `_webSocketMessages` items, and how many.
        let messages = OutputBuffer()
        var messageCount = 0
        /// `_wstap_app` items (application messages, as in JSON), and how many.
        let applicationMessages = OutputBuffer()
        var applicationCount = 0
    }

    private final class OpenConnection {
        let record: ConnectionRecord
        var entries: [Entry] = []
        /// The connection is TLS the key log decrypted: `wss://` and `https://`.
        var secure = false
        /// Streams whose tunnel carried TLS that was decrypted.
        var secureStreams: Set<StreamID> = []
        /// How it ended, once it did.
        var end: ConnectionEnd?
        /// Rendered messages by the stream they were on (nil: the connection itself).
        var items: [StreamID?: MessageItems] = [:]

        func items(of stream: StreamID?) -> MessageItems {
            if let known = items[stream] { return known }
            let made = MessageItems()
            items[stream] = made
            return made
        }

        init(record: ConnectionRecord) { self.record = record }
    }

    private let output: OutputChannel
    private var open: [UInt64: OpenConnection] = [:]
    /// Rendered entries and their start times (sorted at the end).
    private var rendered: [(time: CaptureTimestamp, connection: UInt64, entry: OutputBuffer)] = []
    /// What a HAR cannot hold, said in the log's comment: messages of connections whose
    /// handshake was not captured, and messages that could not be decoded.
    private var messagesWithoutHandshake: UInt64 = 0
    private var connectionsWithoutHandshake: UInt64 = 0
    private var messagesNotDecoded: UInt64 = 0

    public init(output: OutputChannel) { self.output = output }

    /// A filter keeps the entries of the connections it matched, with only the matching messages:
    /// everything but messages is taken.
    public func observe(_ event: TimelineEvent) {
        switch event.kind {
        case .message, .application: break
        default: receive(event)
        }
    }

    public func receive(_ event: TimelineEvent) {
        guard let record = event.connection else { return }
        switch event.kind {
        case .connectionOpened:
            open[record.id] = OpenConnection(record: record)
        case .tls(let session):
            guard let connection = open[record.id] else { return }
            if let stream = event.stream {
                if session.decrypted { connection.secureStreams.insert(stream) }
            } else {
                connection.secure = session.decrypted
            }
        case .httpExchange(let exchange):
            guard let connection = open[record.id] else { return }
            let secure = connection.secure || event.stream.map { connection.secureStreams.contains($0) } ?? false
            connection.entries.append(Entry(exchange: exchange, stream: event.stream, secure: secure))
        case .upgradeAnswerBody(let body):
            guard let connection = open[record.id], !connection.entries.isEmpty else { return }
            connection.entries[connection.entries.count - 1].answerBody = body
        case .message(let message):
            guard let connection = open[record.id] else { return }
            guard message.message.isDecoded else {
                messagesNotDecoded &+= 1
                return
            }
            addMessage(message, at: event.time ?? .zero, to: connection.items(of: event.stream))
        case .application(let message):
            guard let items = open[record.id]?.items(of: event.stream) else { return }
            items.applicationMessages.raw(items.applicationCount == 0 ? "{" : ",{")
            items.applicationCount += 1
            items.applicationMessages.applicationFields(message, at: event.time)
            items.applicationMessages.raw("}")
        case .connectionClosed(let end):
            guard let connection = open.removeValue(forKey: record.id) else { return }
            connection.end = end
            render(connection)
        default:
            break
        }
    }

    public func finish(_ summary: CaptureSummary) {
        for (_, connection) in open.sorted(by: { $0.key < $1.key }) { render(connection) }
        open.removeAll()
        rendered.sort { ($0.time, $0.connection) < ($1.time, $1.connection) }
        output.write("{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"wstap\",\"version\":")
        let head = OutputBuffer()
        head.string(WSTapVersion.current)
        head.raw("},\"pages\":[],\"entries\":[")
        output.write(head)
        for (index, entry) in rendered.enumerated() {
            output.write(index == 0 ? "\n" : ",\n")
            output.write(entry.entry)
        }
        let tail = OutputBuffer()
        tail.raw(rendered.isEmpty ? "]" : "\n]")
        var notes: [String] = []
        if messagesWithoutHandshake > 0 {
            let connections = connectionsWithoutHandshake == 1 ? "1 connection" : "\(connectionsWithoutHandshake) connections"
            notes.append("\(messagesWithoutHandshake) WebSocket messages on \(connections) whose "
                + "opening handshake was not captured are not in this HAR (wstap read --format json has them)")
        }
        if messagesNotDecoded > 0 {
            notes.append("\(messagesNotDecoded) WebSocket messages could not be decoded (see wstap read) and are not listed")
        }
        if !notes.isEmpty { tail.raw(",\"comment\":"); tail.string(notes.joined(separator: "; ")) }
        tail.raw("}}\n")
        output.write(tail)
        output.flush()
    }

    private func addMessage(_ record: MessageRecord, at time: CaptureTimestamp, to list: MessageItems) {
        let message = record.message
        guard message.opcode == .text || message.opcode == .binary else { return }
        let items = list.messages
        items.raw(list.messageCount == 0 ? "{" : ",{")
        list.messageCount += 1
        items.key("type"); items.raw(record.direction == .clientToServer ? "\"send\"" : "\"receive\"")
        items.comma(); items.key("time"); items.epochSeconds(time)
        items.comma(); items.key("opcode"); items.number(message.opcode.rawValue)
        items.comma(); items.key("data")
        if !PayloadText.isText(record) {
            items.base64String(message.payload)
        } else if message.isValidUTF8 == true {
            items.string(utf8: message.payload)
        } else {
            // Not UTF-8 (or with missing bytes): what a browser would show, U+FFFD for what is not.
            items.string(String(decoding: message.payload, as: UTF8.self))
        }
        if !message.isComplete || !message.gaps.isEmpty { items.raw(",\"_incomplete\":true") }
        items.append(UInt8(ascii: "}"))
    }

    /// Renders each of a connection's exchanges as an entry; WebSocket messages go with the 101
    /// that switched to them, or with their HTTP/2 stream's accepted extended CONNECT.
    private func render(_ connection: OpenConnection) {
        // Each byte stream's last 101 (the connection's, or one inside an HTTP/2 stream's tunnel).
        var switched: [StreamID?: Int] = [:]
        for (index, entry) in connection.entries.enumerated() where entry.exchange.response?.status == 101 { switched[entry.stream] = index }
        let opening = Set(connection.entries.indices.filter {
            Self.opensWebSocket(connection.entries[$0], index: $0, switched: switched[connection.entries[$0].stream])
        })
        let handshakes = Set(opening.map { connection.entries[$0].stream })
        for (stream, items) in connection.items where !handshakes.contains(stream) && items.messageCount > 0 {
            messagesWithoutHandshake &+= UInt64(items.messageCount)
            connectionsWithoutHandshake &+= 1
        }
        for (index, entry) in connection.entries.enumerated() {
            let out = OutputBuffer()
            let exchange = entry.exchange
            let isWebSocket = opening.contains(index)
            out.raw("{")
            out.key("startedDateTime"); out.isoTime(exchange.requestTime)
            let waited = exchange.responseTime.map { max(0, $0.nanoseconds(since: exchange.requestTime)) } ?? 0
            out.comma(); out.key("time"); out.milliseconds(waited)
            out.comma(); out.key("request"); request(entry, connection: connection, isWebSocket: isWebSocket, into: out)
            out.comma(); out.key("response"); response(entry, into: out)
            out.raw(",\"cache\":{},\"timings\":{\"blocked\":-1,\"dns\":-1,\"connect\":-1,\"ssl\":-1,\"send\":0,\"wait\":")
            out.milliseconds(waited)
            out.raw(",\"receive\":0}")
            out.comma(); out.key("serverIPAddress"); out.string(connection.record.server.address.description)
            out.comma(); out.key("connection"); out.string(String(connection.record.id))
            if let end = connection.end {
                // How the connection ended (docs/har.md): wstap's own field, which HAR viewers ignore.
                out.raw(",\"_wstap\":{")
                out.endingFields(end.ending, start: connection.record.startTime, end: end.time)
                out.raw("}")
            }
            if let stream = entry.stream { out.raw(",\"_stream\":"); out.number(UInt64(stream.rawValue)) }
            if isWebSocket {
                let items = connection.items[entry.stream] ?? MessageItems()
                out.raw(",\"_resourceType\":\"websocket\",\"_webSocketMessages\":[")
                out.append(items.messages)
                out.raw("]")
                if items.applicationCount > 0 {
                    // What the application said inside the messages (docs/har.md): wstap's own field.
                    out.raw(",\"_wstap_app\":[")
                    out.append(items.applicationMessages)
                    out.raw("]")
                }
            }
            out.raw("}")
            rendered.append((exchange.requestTime, connection.record.id, out))
        }
    }

    /// A byte stream's last 101 to `websocket` (an HTTP/1.1 connection's, or one inside an HTTP/2
    /// stream's tunnel), or an HTTP/2 stream's extended CONNECT (`:protocol websocket`) that a 2xx accepted.
    private static func opensWebSocket(_ entry: Entry, index: Int, switched: Int?) -> Bool {
        let request = entry.exchange.request
        if index == switched, request.headers.hasToken("websocket", in: "Upgrade") { return true }
        guard entry.stream != nil else { return false }
        let status = entry.exchange.response?.status ?? 0
        return request.method == "CONNECT" && (request.headers.combinedValue(":protocol")?.caseInsensitiveEquals("websocket") ?? false)
            && (200..<300).contains(status)
    }

    private func request(_ entry: Entry, connection: OpenConnection, isWebSocket: Bool, into out: OutputBuffer) {
        let exchange = entry.exchange
        let head = exchange.request
        out.raw("{"); out.key("method"); out.string(head.method)
        out.comma(); out.key("url"); out.string(Self.url(head, server: connection.record.server, secure: entry.secure, webSocket: isWebSocket))
        out.comma(); out.key("httpVersion"); out.string(head.version)
        out.comma(); out.key("cookies"); cookies(head.headers.values("Cookie").flatMap { $0.split(separator: ";") }, into: out)
        out.comma(); out.key("headers"); harHeaders(head.headers, into: out)
        out.comma(); out.key("queryString"); queryString(head.target, into: out)
        out.comma(); out.key("headersSize"); out.raw("-1")
        out.comma(); out.key("bodySize")
        if head.headers.hasToken("chunked", in: "Transfer-Encoding") {
            out.raw("-1")
        } else {
            out.number(head.headers.combinedValue("Content-Length").flatMap { UInt64($0) } ?? 0)
        }
        if let body = exchange.requestBody { postData(body, mimeType: head.headers.combinedValue("Content-Type") ?? "", into: out) }
        out.raw("}")
    }

    /// A request's body: its text (base64 with `_encoding` when it is not UTF-8) and, for a
    /// form, its parameters.
    private func postData(_ body: HTTPBodyPreview, mimeType: String, into out: OutputBuffer) {
        out.raw(",\"postData\":{"); out.key("mimeType"); out.string(mimeType)
        body.bytes.withUnsafeBytes { bytes in
            let isText = PayloadText.isText(bytes)
            out.comma(); out.key("params")
            if isText, mimeType.lowercased().hasPrefix("application/x-www-form-urlencoded") {
                pairs(String(decoding: bytes, as: UTF8.self).split(separator: "&"), into: out)
            } else {
                out.raw("[]")
            }
            out.comma(); out.key("text")
            if isText { out.string(utf8: bytes) } else { out.base64String(bytes); out.raw(",\"_encoding\":\"base64\"") }
        }
        if body.bytes.count < body.length || !body.isComplete {
            out.comma(); out.key("comment")
            out.string("the first \(body.bytes.count) of \(body.length) bytes" + (body.missingBytes > 0 ? ", \(body.missingBytes) not captured" : ""))
        }
        out.raw("}")
    }

    private func response(_ entry: Entry, into out: OutputBuffer) {
        out.raw("{")
        guard let head = entry.exchange.response else {
            // No answer captured: as a browser records a request that failed.
            out.raw("\"status\":0,\"statusText\":\"\",\"httpVersion\":\"\",\"cookies\":[],\"headers\":[],")
            out.raw("\"content\":{\"size\":0,\"mimeType\":\"x-unknown\"},\"redirectURL\":\"\",\"headersSize\":-1,\"bodySize\":-1,")
            out.raw("\"_error\":\"no response captured\"}")
            return
        }
        out.key("status"); out.number(head.status)
        out.comma(); out.key("statusText"); out.string(head.reason)
        out.comma(); out.key("httpVersion"); out.string(head.version)
        out.comma(); out.key("cookies"); cookies(head.headers.values("Set-Cookie").compactMap { $0.split(separator: ";").first }, into: out)
        out.comma(); out.key("headers"); harHeaders(head.headers, into: out)
        let mimeType = head.headers.combinedValue("Content-Type") ?? "x-unknown"
        let declaredLength = head.headers.combinedValue("Content-Length").flatMap { UInt64($0) }
        out.comma(); out.key("content"); out.raw("{")
        out.key("size"); out.number(entry.answerBody?.length ?? declaredLength ?? 0)
        out.comma(); out.key("mimeType"); out.string(mimeType)
        if let body = entry.answerBody, !body.bytes.isEmpty {
            body.bytes.withUnsafeBytes { bytes in
                if PayloadText.isText(bytes) {
                    out.comma(); out.key("text"); out.string(utf8: bytes)
                } else {
                    out.comma(); out.key("text"); out.base64String(bytes)
                    out.raw(",\"encoding\":\"base64\"")
                }
            }
            if body.bytes.count < body.length {
                out.comma(); out.key("comment"); out.string("the first \(body.bytes.count) of \(body.length) bytes")
            }
        }
        out.raw("}")
        out.comma(); out.key("redirectURL"); out.string(head.headers.combinedValue("Location") ?? "")
        out.comma(); out.key("headersSize"); out.raw("-1")
        out.comma(); out.key("bodySize")
        if let length = entry.answerBody?.length ?? declaredLength { out.number(length) } else { out.raw("-1") }
        out.raw("}")
    }

    /// The URL as the browser writes it: scheme, the Host header (else the server's address),
    /// then the target; an absolute-form target is taken as it is.
    static func url(_ head: HTTPRequestHead, server: Endpoint, secure: Bool, webSocket: Bool) -> String {
        if head.target.contains("://") { return head.target }
        // A tunnel's CONNECT names its target in authority form (RFC 9110 §9.3.6).
        if head.isClassicConnect { return (secure ? "https://" : "http://") + head.target }
        let scheme = webSocket ? (secure ? "wss" : "ws") : (secure ? "https" : "http")
        let host = head.headers.combinedValue("Host") ?? head.headers.combinedValue(":authority") ?? {
            let defaultPort: UInt16 = secure ? 443 : 80
            return server.port == defaultPort ? String(server.description.dropLast(":\(server.port)".count)) : server.description
        }()
        return scheme + "://" + host + (head.target.hasPrefix("/") ? head.target : "/" + head.target)
    }

    private func harHeaders(_ headers: HTTPHeaders, into out: OutputBuffer) {
        out.raw("[")
        for (index, header) in headers.lines.enumerated() {
            if index > 0 { out.comma() }
            out.raw("{"); out.key("name"); out.string(header.name)
            out.comma(); out.key("value"); out.string(header.value); out.raw("}")
        }
        out.raw("]")
    }

    /// `name=value` pairs (a Cookie header's, or each Set-Cookie's first one).
    private func cookies(_ pairs: [Substring], into out: OutputBuffer) {
        out.raw("[")
        var first = true
        for pair in pairs {
            let trimmed = pair.trimmingCharacters(in: " \t")
            guard !trimmed.isEmpty else { continue }
            let parts = trimmed.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if !first { out.comma() }
            first = false
            out.raw("{"); out.key("name"); out.string(String(parts[0]))
            out.comma(); out.key("value"); out.string(parts.count > 1 ? String(parts[1]) : ""); out.raw("}")
        }
        out.raw("]")
    }

    private func queryString(_ target: String, into out: OutputBuffer) {
        guard let mark = target.firstIndex(of: "?") else { return out.raw("[]") }
        let query = target[target.index(after: mark)...].split(separator: "#", maxSplits: 1).first ?? ""
        pairs(query.split(separator: "&"), into: out)
    }

    /// `name=value` pairs as HAR's `{name, value}` objects, as sent (not percent-decoded).
    private func pairs(_ pairs: [Substring], into out: OutputBuffer) {
        out.raw("[")
        for (index, pair) in pairs.enumerated() {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if index > 0 { out.comma() }
            out.raw("{"); out.key("name"); out.string(String(parts[0]))
            out.comma(); out.key("value"); out.string(parts.count > 1 ? String(parts[1]) : ""); out.raw("}")
        }
        out.raw("]")
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var text = self
        while let first = text.first, set.contains(first) { text.removeFirst() }
        while let last = text.last, set.contains(last) { text.removeLast() }
        return text
    }
}

extension OutputBuffer {
    /// `"2026-12-01T18:26:05.989370Z"` (ISO 8601, UTC).
    func isoTime(_ time: CaptureTimestamp) {
        append(UInt8(ascii: "\""))
        utcTime(time, withDate: true, dateSeparator: "T")
        raw("Z\"")
    }

    /// Seconds since 1970 with six decimals, as a JSON number (how DevTools writes message times).
    func epochSeconds(_ time: CaptureTimestamp) {
        number(time.seconds)
        append(UInt8(ascii: "."))
        number(UInt64(time.nanoseconds / 1000), width: 6)
    }

    /// Milliseconds with three decimals, as a JSON number.
    func milliseconds(_ nanoseconds: Int64) {
        number(nanoseconds / 1_000_000)
        append(UInt8(ascii: "."))
        number(UInt64(nanoseconds % 1_000_000 / 1000), width: 3)
    }
}
