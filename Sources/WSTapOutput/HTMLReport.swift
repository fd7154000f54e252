import Crypto
import WSTap
import WSTapCore

/// Writes one self-contained HTML file (`--format html`, docs/html-report.md): the connections
/// with their handshake verdicts and issues, each connection's messages (a preview that expands to
/// the whole text, JSON re-indented), and a search box.
///
/// Every byte from the capture is written as escaped text (`HTMLText`): never markup, never in an
/// attribute, never inside the script. The one script is the report's own, allowed by its hash in
/// the page's Content-Security-Policy, which also forbids every other script and every network
/// access. Like a browser's HAR export the report is built in memory: a connection's section is
/// rendered when it ends.
public final class HTMLReportExporter: TimelineSink {
    /// Bytes of one message shown; the rest is counted (`wstap follow` writes whole payloads).
    public static let maxShownBytes = Int.mebibytes(1)
    /// Characters of a message's one-line preview.
    static let previewCharacters = 120
    /// Bytes of a binary payload shown as hex.
    static let maxHexBytes = 4096
    /// Rows (messages, control frames, issues) shown per connection, and issues listed per
    /// connection and for the capture: past them they are counted, so that a capture of a
    /// million tiny frames or a flood of alerts makes a report of bounded size.
    static let maxRowsPerConnection = 2000
    static let maxIssuesListed = 200
    /// Streams of one connection (HTTP/2) drawn as lanes of their own; later ones only on the connection's.
    static let maxStreamLanes = 20

    private final class OpenConnection {
        let record: ConnectionRecord
        var request: HTTPRequestHead?
        var response: HTTPResponseHead?
        var upgrade: UpgradeExchange?
        var tls: TLSSession?
        var end: ConnectionEnd?
        let rows = OutputBuffer()
        var rowCount = 0
        var messages = DirectionPair<UInt64>(0)
        var issues: [Issue] = []
        var issueCount = 0
        /// Rows past `maxRowsPerConnection`, counted.
        var rowsNotShown = 0
        var lane: TimelineLane
        /// Each HTTP/2 stream's own lane (at most `maxStreamLanes`), drawn under the connection's.
        var streamLanes: [StreamID: TimelineLane] = [:]

        /// The lanes an event of `stream` marks: the connection's, and the stream's own.
        func marking(_ stream: StreamID?, _ mark: (inout TimelineLane) -> Void) {
            mark(&lane)
            if let stream, streamLanes[stream] != nil { mark(&streamLanes[stream]!) }
        }

        init(record: ConnectionRecord) {
            self.record = record
            lane = TimelineLane(
                id: record.id, start: record.startTime, label: "#\(record.id) \(record.client) → \(record.server)",
                outcome: nil, outcomeWords: "open")
        }
    }

    private let output: OutputChannel
    private var start: CaptureTimestamp?
    private var open: [UInt64: OpenConnection] = [:]
    /// Each ended connection's overview row, section and timeline lane, by id.
    private var finished: [(id: UInt64, overview: OutputBuffer, section: OutputBuffer, lanes: [TimelineLane])] = []
    private var captureIssues: [Issue] = []
    private var captureIssuesNotListed = 0
    /// Messages each way over the capture, for the rate chart.
    private var rates = DirectionPair<TimeHistogram?>(nil)

    public init(output: OutputChannel) { self.output = output }

    /// What a filter left out still names the connection's request and handshake in its row.
    public func observe(_ event: TimelineEvent) {
        switch event.kind {
        case .httpRequest, .httpResponse, .upgrade, .tls: receive(event)
        default: break
        }
    }

    public func receive(_ event: TimelineEvent) {
        let id = event.connection?.id ?? 0
        let time = event.time ?? .zero
        switch event.kind {
        case .captureStarted:
            start = event.time
        case .connectionOpened:
            guard let record = event.connection else { return }
            open[record.id] = OpenConnection(record: record)
        case .httpRequest(let head):
            guard let connection = open[id] else { return }
            connection.request = head
            if let stream = event.stream, connection.streamLanes[stream] == nil, connection.streamLanes.count < Self.maxStreamLanes {
                connection.streamLanes[stream] = TimelineLane(
                    id: id, stream: stream.rawValue, start: time, label: "#\(id)/s\(stream.rawValue) \(head.method) \(head.target.prefix(120))",
                    outcome: nil, outcomeWords: "open")
            }
        case .httpResponse(let head):
            open[id]?.response = head
        case .upgrade(let exchange):
            guard let connection = open[id] else { return }
            connection.upgrade = exchange
            connection.request = exchange.request
            connection.response = exchange.response
        case .tls(let session):
            open[id]?.tls = session
        case .frame(let frame):
            guard frame.header.opcode.rawValue >= 8, let connection = open[id] else { return }
            if frame.header.opcode == .close { connection.marking(event.stream) { $0.closes.append((frame.direction, time)) } }
            controlRow(frame, at: time, stream: event.stream, in: connection)
        case .message(let message):
            guard let connection = open[id] else { return }
            connection.messages[message.direction] &+= 1
            connection.marking(event.stream) { $0.message(message.direction, at: time) }
            if rates[message.direction] == nil, let start { rates[message.direction] = TimeHistogram(origin: start) }
            rates[message.direction]?.add(time)
            messageRow(message, at: time, stream: event.stream, in: connection)
        case .issue(let issue):
            guard event.connection != nil, let connection = open[id] else {
                if captureIssues.count < Self.maxIssuesListed { captureIssues.append(issue) } else { captureIssuesNotListed += 1 }
                return
            }
            connection.issueCount += 1
            if connection.issues.count < Self.maxIssuesListed { connection.issues.append(issue) }
            connection.marking(event.stream) { $0.issue(at: issue.time) }
            issueRow(issue, stream: event.stream, in: connection)
        case .connectionClosed(let end):
            guard let connection = open.removeValue(forKey: id) else { return }
            connection.end = end
            render(connection)
        case .application(let message):
            guard let connection = open[id] else { return }
            applicationRow(message, at: time, stream: event.stream, in: connection)
        case .streamClosed(let end):
            guard let stream = event.stream, let connection = open[id], var lane = connection.streamLanes[stream] else { return }
            lane.end = end.time
            lane.outcome = end.ending.outcome
            lane.outcomeWords = "\(end.reason): \(end.ending.outcome.rawValue)"
            connection.streamLanes[stream] = lane
        case .httpExchange, .upgradeAnswerBody:
            break
        }
    }

    public func finish(_ summary: CaptureSummary) {
        for (_, connection) in open.sorted(by: { $0.key < $1.key }) { render(connection) }
        open.removeAll()
        finished.sort { $0.id < $1.id }
        let page = OutputBuffer()
        page.raw("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n")
        page.raw("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src '")
        page.text(Self.scriptHash)
        page.raw("'\">\n<meta name=\"viewport\" content=\"width=device-width\">\n<title>wstap report</title>\n<style>")
        page.raw(Self.styleSheet)
        page.raw("</style></head>\n<body>\n<h1>wstap report</h1>\n<p class=\"meta\">")
        var facts = "\(summary.packets) packets, \(summary.connections) connections, \(summary.messages) messages, \(summary.issues) issues"
        if let first = summary.firstPacketTime { facts += "; capture starts \(utcDateTime(first)) UTC" }
        facts += "; made by wstap \(WSTapVersion.current). Times are seconds since the first packet."
        HTMLText.write(facts, into: page)
        page.raw("</p>\n<p><input id=\"search\" type=\"search\" placeholder=\"Search messages, headers, issues\" autofocus> ")
        page.raw("<span id=\"count\"></span></p>\n<p class=\"filter\">Show: ")
        for (value, words) in [("all", "all"), ("sent", "sent →"), ("received", "received ←"), ("control", "control frames"), ("issues", "issues")] {
            page.raw("<label><input type=\"radio\" name=\"show\" value=\""); page.text(value); page.raw("\"")
            if value == "all" { page.raw(" checked") }
            page.raw("> "); page.text(words); page.raw("</label> ")
        }
        page.raw("</p>\n")
        if !captureIssues.isEmpty {
            page.raw("<h2>Capture issues</h2>\n<ul class=\"issues\">")
            for issue in captureIssues { issueItem(issue, into: page) }
            if captureIssuesNotListed > 0 { page.raw("<li>… "); page.number(captureIssuesNotListed); page.raw(" more (JSON and NDJSON list them all)</li>") }
            page.raw("</ul>\n")
        }
        HTMLTimeline.write(lanes: finished.flatMap(\.lanes), rates: rates, start: summary.firstPacketTime, end: summary.lastPacketTime, into: page)
        page.raw("<h2>Connections</h2>\n<table class=\"overview\"><thead><tr><th>#</th><th>client → server</th><th>request</th>")
        page.raw("<th>protocol</th><th>handshake</th><th>outcome</th><th>messages →/←</th><th>issues</th></tr></thead><tbody>\n")
        output.write(page)
        for entry in finished { output.write(entry.overview) }
        output.write("</tbody></table>\n")
        for entry in finished { output.write(entry.section) }
        let end = OutputBuffer()
        end.raw("<script>"); end.raw(Self.script); end.raw("</script>\n</body></html>\n")
        output.write(end)
        output.flush()
    }

    // MARK: rows

    /// The start of a row, or nil past `maxRowsPerConnection` (the row is counted instead).
    private func beginRow(
        _ connection: OpenConnection, kind: StaticString, direction: StreamDirection?, time: CaptureTimestamp?, stream: StreamID?
    ) -> OutputBuffer? {
        guard connection.rowCount < Self.maxRowsPerConnection else {
            connection.rowsNotShown += 1
            return nil
        }
        let rows = connection.rows
        connection.rowCount += 1
        rows.raw("<tr class=\"m "); rows.raw(kind)
        switch direction {
        case .clientToServer: rows.raw(" sent")
        case .serverToClient: rows.raw(" received")
        case nil: break
        }
        rows.raw("\"><td class=\"dir\">")
        switch direction {
        case .clientToServer: rows.raw("<span class=\"c2s\">→</span>")
        case .serverToClient: rows.raw("<span class=\"s2c\">←</span>")
        case nil: break
        }
        // The HTTP/2 stream the row belongs to.
        if let stream { rows.raw(" <small>s"); rows.number(UInt64(stream.rawValue)); rows.raw("</small>") }
        rows.raw("</td><td class=\"t\">")
        rows.relativeTime(time, since: start, aligned: false)
        rows.raw("</td>")
        return rows
    }

    private func messageRow(_ record: MessageRecord, at time: CaptureTimestamp, stream: StreamID?, in connection: OpenConnection) {
        let message = record.message
        guard let rows = beginRow(
            connection, kind: message.opcode == .text ? "text" : "binary", direction: record.direction, time: time, stream: stream)
        else { return }
        rows.raw("<td class=\"n\">"); rows.byteCount(message.payload.count); rows.raw("</td><td>")
        rows.opcodeName(message.opcode)
        if message.frameCount > 1 { rows.raw(", "); rows.number(message.frameCount); rows.raw(" frames") }
        if message.compressed { rows.raw(", compressed") }
        if !message.isComplete { rows.raw(", <b class=\"bad\">incomplete</b>") }
        rows.raw("</td><td class=\"p\">")
        if !message.isDecoded {
            rows.raw("<i>not decoded</i>")
        } else if PayloadText.isText(record) {
            textPayload(message.payload, isValidUTF8: message.isValidUTF8 == true, into: rows)
        } else {
            binaryPayload(message.payload, into: rows)
        }
        rows.raw("</td></tr>\n")
    }

    /// The decoded view of the message(s) above: the application protocol's words.
    private func applicationRow(_ message: ApplicationMessage, at time: CaptureTimestamp, stream: StreamID?, in connection: OpenConnection) {
        guard let rows = beginRow(connection, kind: "app", direction: message.direction, time: time, stream: stream) else { return }
        rows.raw("<td class=\"n\"></td><td>")
        HTMLText.write("\(message.protocolName) \(message.type)", into: rows)
        rows.raw("</td><td class=\"p\">")
        let fields = OutputBuffer()
        for (index, field) in message.fields.enumerated() {
            if index > 0 { fields.raw("  ") }
            fields.text(field.name); fields.raw("=")
            fields.applicationValue(field.value)
        }
        fields.withBytes { bytes in
            HTMLText.write(String(decoding: bytes.prefix(Self.maxApplicationText), as: UTF8.self), into: rows)
            if bytes.count > Self.maxApplicationText { rows.raw("…") }
        }
        rows.raw("</td></tr>\n")
    }

    /// An application message's fields are shown up to this many bytes.
    static let maxApplicationText = 2048

    private func controlRow(_ frame: FrameRecord, at time: CaptureTimestamp, stream: StreamID?, in connection: OpenConnection) {
        guard let rows = beginRow(connection, kind: "control", direction: frame.direction, time: time, stream: stream) else { return }
        rows.raw("<td class=\"n\">"); rows.byteCount(frame.header.payloadLength); rows.raw("</td><td>")
        rows.opcodeName(frame.header.opcode)
        rows.raw("</td><td class=\"p\">")
        if let close = frame.close {
            rows.raw("code ")
            rows.text(close.code.map { String($0.rawValue) } ?? "none")
            if !close.reason.isEmpty {
                rows.raw(" ")
                close.reason.withUnsafeBytes { HTMLText.write(String(decoding: $0, as: UTF8.self), into: rows) }
            }
        } else if !frame.payload.isEmpty {
            if PayloadText.isText(frame) {
                HTMLText.write(String(decoding: frame.payload, as: UTF8.self), into: rows)
            } else {
                binaryPayload(frame.payload, into: rows)
            }
        }
        rows.raw("</td></tr>\n")
    }

    private func issueRow(_ issue: Issue, stream: StreamID?, in connection: OpenConnection) {
        guard let rows = beginRow(connection, kind: "issue", direction: issue.direction, time: issue.time, stream: stream) else { return }
        rows.raw("<td></td><td class=\"")
        rows.text(issue.severity.rawValue)
        rows.raw("\">")
        rows.text(issue.severity.rawValue)
        rows.raw("</td><td class=\"p\"><code>")
        HTMLText.write(issue.code, into: rows)
        rows.raw("</code> ")
        HTMLText.write(issue.detail, into: rows)
        rows.raw("</td></tr>\n")
    }

    /// A text payload: short single lines as they are, longer ones as a preview that expands to
    /// the whole text (re-indented when it is JSON). Works on the bytes: one pass to measure, one
    /// to escape.
    private func textPayload(_ payload: UnsafeRawBufferPointer, isValidUTF8: Bool, into rows: OutputBuffer) {
        let cut = UnsafeRawBufferPointer(rebasing: payload.prefix(Self.maxShownBytes))
        // Bytes that are not UTF-8 (or a character split by the cut) become U+FFFD, once.
        let repaired: [UInt8]? = isValidUTF8 && cut.count == payload.count ? nil : Array(String(decoding: cut, as: UTF8.self).utf8)
        let opened = repaired.withUnsafeBytesOrNil(else: cut) { shown -> Bool in
            // Where the preview's last character ends, and whether there is more or a line break.
            var characters = 0
            var previewEnd = shown.count
            for (index, byte) in shown.enumerated() where byte & 0xC0 != 0x80 {
                if characters == Self.previewCharacters { previewEnd = index; break }
                characters += 1
            }
            let isShort = previewEnd == shown.count && !shown.contains(0x0A)
            if isShort {
                rows.raw("<span class=\"v\">"); HTMLText.write(utf8: shown, into: rows, singleLine: true, limit: .max); rows.raw("</span>")
                return false
            }
            rows.raw("<details><summary>")
            HTMLText.write(utf8: UnsafeRawBufferPointer(rebasing: shown[..<previewEnd]), into: rows, singleLine: true, limit: .max)
            if previewEnd < shown.count { rows.raw("…") }
            rows.raw("</summary><pre>")
            if let pretty = JSONPretty.lines(shown) {
                HTMLText.write(pretty.joined(separator: "\n"), into: rows, singleLine: false)
            } else {
                HTMLText.write(utf8: shown, into: rows, singleLine: false, limit: .max)
            }
            rows.raw("</pre>")
            return true
        }
        guard opened else { return }
        if cut.count < payload.count {
            rows.raw("<p class=\"cut\">… "); rows.number(payload.count - cut.count); rows.raw(" more bytes not shown (wstap follow writes them whole)</p>")
        }
        rows.raw("</details>")
    }

    /// A binary payload: the first bytes as hex in the preview, a hex and ASCII dump when opened.
    private func binaryPayload(_ payload: UnsafeRawBufferPointer, into rows: OutputBuffer) {
        rows.raw("<details><summary><code>")
        rows.hexPreview(payload, limit: 24)
        rows.raw("</code></summary><pre>")
        let shown = UnsafeRawBufferPointer(rebasing: payload.prefix(Self.maxHexBytes))
        rows.hexDumpLines(shown, indent: "", offsetBytes: 2, escapesHTML: true)
        rows.raw("</pre>")
        if shown.count < payload.count {
            rows.raw("<p class=\"cut\">… "); rows.number(payload.count - shown.count); rows.raw(" more bytes (wstap follow writes them whole)</p>")
        }
        rows.raw("</details>")
    }

    // MARK: sections

    private func issueItem(_ issue: Issue, into page: OutputBuffer) {
        page.raw("<li class=\""); page.text(issue.severity.rawValue); page.raw("\"><b>")
        page.text(issue.severity.rawValue)
        page.raw("</b> <code>"); HTMLText.write(issue.code, into: page); page.raw("</code> ")
        HTMLText.write(issue.detail, into: page)
        page.raw("</li>\n")
    }

    /// The verdict's words and its class (`ok`, `bad`, `warn`).
    private func verdict(_ connection: OpenConnection) -> (String, StaticString) {
        guard let upgrade = connection.upgrade else {
            if connection.end?.websocketDetection != nil { return ("WebSocket, handshake not captured", "warn") }
            return ("no upgrade", "none")
        }
        let to = upgrade.selectedProtocol ?? upgrade.offeredProtocols.joined(separator: ", ")
        switch upgrade.outcome {
        case .upgraded:
            var words = "switched to \(to)"
            if upgrade.websocket?.acceptValid == true { words += ", accept ok" }
            return (words, "ok")
        case .failed: return ("switched to \(to), handshake FAILED", "bad")
        case .rejected: return ("upgrade to \(to) refused (\(upgrade.response?.status ?? 0))", "bad")
        case .incomplete: return ("upgrade to \(to): no answer captured", "warn")
        }
    }

    /// The class an outcome is shown with, in the table, the section and the timeline: failures
    /// `bad` (red, never green), a clean close `ok`, open at the end or given up `warn`, the rest
    /// (and a connection still open) `none`.
    static func style(_ outcome: ConnectionOutcome?) -> StaticString {
        guard let outcome else { return "none" }
        return outcome.isFailure ? "bad" : outcome == .closedCleanly ? "ok"
            : outcome == .openAtEnd || outcome == .idleEvicted ? "warn" : "none"
    }

    /// How the connection ended, in words, and its class (`style`).
    private func outcome(_ connection: OpenConnection) -> (String, StaticString) {
        guard let ending = connection.end?.ending else { return ("open", Self.style(nil)) }
        var words = ending.outcome.rawValue
        if let closing = ending.websocket {
            let code = CloseCode(rawValue: closing.effectiveCode)
            words += " (close \(code.description)"
            if closing.closedFirst != .none { words += " by the \(closing.closedFirst.rawValue)" }
            words += ")"
        }
        return (words, Self.style(ending.outcome))
    }

    private func render(_ connection: OpenConnection) {
        let record = connection.record
        let (verdictText, verdictClass) = verdict(connection)
        let protocolName = connection.end?.protocolKind.rawValue ?? "open"
        let requestLine = connection.request.map { "\($0.method) \($0.target)" } ?? ""

        let overview = OutputBuffer()
        overview.raw("<tr><td><a href=\"#conn-"); overview.number(record.id); overview.raw("\">#"); overview.number(record.id)
        overview.raw("</a></td><td>"); HTMLText.write("\(record.client) → \(record.server)", into: overview)
        overview.raw("</td><td>"); HTMLText.write(requestLine, into: overview, limit: 200)
        overview.raw("</td><td>"); overview.text(protocolName)
        overview.raw("</td><td class=\""); overview.raw(verdictClass); overview.raw("\">"); HTMLText.write(verdictText, into: overview, limit: 200)
        let (outcomeText, outcomeClass) = outcome(connection)
        overview.raw("</td><td class=\"outcome "); overview.raw(outcomeClass); overview.raw("\">"); HTMLText.write(outcomeText, into: overview, limit: 200)
        overview.raw("</td><td class=\"n\">"); overview.number(connection.messages[0]); overview.raw(" / "); overview.number(connection.messages[1])
        overview.raw("</td><td class=\"n\">"); overview.number(connection.issueCount); overview.raw("</td></tr>\n")

        let section = OutputBuffer()
        section.raw("<section class=\"conn\" id=\"conn-"); section.number(record.id); section.raw("\"><header><h2>#")
        section.number(record.id); section.raw(" "); HTMLText.write("\(record.client) → \(record.server)", into: section)
        section.raw(" <small>"); section.text(protocolName); section.raw("</small></h2>\n<p class=\""); section.raw(verdictClass)
        section.raw("\">"); HTMLText.write(verdictText, into: section)
        if let websocket = connection.upgrade?.websocket {
            if let subprotocol = websocket.subprotocol { section.raw("; subprotocol "); HTMLText.write(subprotocol, into: section) }
            if let extensions = websocket.extensions, !extensions.isEmpty {
                section.raw("; extensions "); HTMLText.write(extensions.joined(separator: ", "), into: section)
            }
        }
        section.raw("</p>\n<p class=\"outcome "); section.raw(outcomeClass); section.raw("\">ended: ")
        HTMLText.write(outcomeText, into: section)
        if let end = connection.end {
            section.raw("; TCP "); section.text(end.ending.tcpEnd.rawValue); section.raw(", ")
            section.text(StatisticsReport.fixed(Double(max(0, end.time.nanoseconds(since: record.startTime))) / 1e9, decimals: 3))
            section.raw(" s")
        }
        section.raw("</p>\n")
        if let tls = connection.tls {
            section.raw("<p>")
            let words = [tls.version ?? "TLS", tls.cipherSuite ?? "", tls.serverName.map { "SNI \($0)" } ?? "",
                         tls.decrypted ? "decrypted with the key log" : "NOT decrypted" + (tls.reason.map { " (\($0))" } ?? "")]
            HTMLText.write(words.filter { !$0.isEmpty }.joined(separator: " "), into: section)
            section.raw("</p>\n")
        }
        if let request = connection.request {
            head("→ \(request.method) \(request.target) \(request.version)", request.headers, into: section)
        }
        if let response = connection.response {
            head("← \(response.version) \(response.status) \(response.reason)", response.headers, into: section)
        }
        if !connection.issues.isEmpty {
            section.raw("<ul class=\"issues\">")
            for issue in connection.issues { issueItem(issue, into: section) }
            if connection.issueCount > connection.issues.count {
                section.raw("<li>… "); section.number(connection.issueCount - connection.issues.count); section.raw(" more (JSON and NDJSON list them all)</li>")
            }
            section.raw("</ul>\n")
        }
        section.raw("</header>\n")
        if connection.rowCount > 0 {
            section.raw("<table class=\"messages\"><thead><tr><th></th><th>time s</th><th>size</th><th>type</th><th>payload</th></tr></thead><tbody>\n")
            section.append(connection.rows)
            section.raw("</tbody></table>\n")
        }
        if connection.rowsNotShown > 0 {
            section.raw("<p class=\"cut\">… "); section.number(connection.rowsNotShown)
            section.raw(" more rows not shown (wstap follow --conn "); section.number(record.id); section.raw(" shows them all)</p>\n")
        }
        section.raw("</section>\n")
        var lane = connection.lane
        lane.end = connection.end?.time
        lane.outcome = connection.end?.ending.outcome
        lane.outcomeWords = outcomeText
        if !requestLine.isEmpty { lane.label += " " + String(requestLine.prefix(120)) }
        let streamLanes = connection.streamLanes.sorted { $0.key.rawValue < $1.key.rawValue }.map(\.value)
        finished.append((record.id, overview, section, [lane] + streamLanes))
    }

    /// A message head: its first line, opening to its header lines.
    private func head(_ firstLine: String, _ headers: HTTPHeaders, into section: OutputBuffer) {
        section.raw("<details class=\"head\"><summary>")
        HTMLText.write(firstLine, into: section, singleLine: true)
        section.raw("</summary><pre>")
        HTMLText.write(headers.lines.map { "\($0.name): \($0.value)" }.joined(separator: "\n"), into: section, singleLine: false)
        section.raw("</pre></details>\n")
    }

    // MARK: page

    static let styleSheet: StaticString = """
        body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
        h1{font-size:1.4em}h2{font-size:1.15em;margin:1.2em 0 .3em}
        table{border-collapse:collapse;margin:.4em 0}td,th{padding:2px 8px;vertical-align:top;text-align:left}
        tbody tr:nth-child(odd){background:#f6f6f6}.n{text-align:right}.t{font-family:monospace;color:#666}
        .c2s{color:#0a6fb0;font-weight:bold}.s2c{color:#a0258c;font-weight:bold}
        .ok{color:#17702a}.bad,.error{color:#b00020}.warn,.warning{color:#9a6200}.info{color:#555}
        pre,code,.p{font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
        pre{margin:.3em 0;background:#fafafa;padding:.3em}summary{cursor:pointer}
        .ctl{color:#b00020;background:#fde}.meta{color:#555}#search{width:28em;padding:4px}
        section.conn{border-top:1px solid #ccc;margin-top:1.5em}tr.issue td{background:#fff4e5}
        svg{max-width:1200px;font:9px system-ui,sans-serif;display:block}svg text{fill:#555}
        .lane .life{fill:#ccc}.lane.ok .life{fill:#8fd19e}.lane.bad .life{fill:#f08c8c}.lane.warn .life{fill:#f5d27a}
        .lane:hover .life{stroke:#222;stroke-width:.6}rect.c2s{fill:#0a6fb0}rect.s2c{fill:#a0258c}rect.close{fill:#111}
        circle.issue{fill:#b00020;stroke:#fff;stroke-width:.5}line.tick{stroke:#e4e4e4}line.axis{stroke:#999}
        td.outcome.ok,p.outcome.ok{color:#17702a}td.outcome.bad,p.outcome.bad{color:#b00020;font-weight:bold}
        mark{background:#ffe066}.filter label{margin-right:.8em}
        body[data-show=sent] tr.m:not(.sent),body[data-show=received] tr.m:not(.received),
        body[data-show=control] tr.m:not(.control),body[data-show=issues] tr.m:not(.issue){display:none}
        """

    static let script: StaticString = """
        (function(){var box=document.getElementById('search'),count=document.getElementById('count');
        var rows=Array.prototype.slice.call(document.querySelectorAll('tr.m'));
        var sections=Array.prototype.slice.call(document.querySelectorAll('section.conn'));
        function unmark(){Array.prototype.slice.call(document.querySelectorAll('mark')).forEach(function(m){
        var p=m.parentNode;p.replaceChild(document.createTextNode(m.textContent),m);p.normalize();});}
        function mark(node,q){var walker=document.createTreeWalker(node,NodeFilter.SHOW_TEXT),texts=[],t;
        while((t=walker.nextNode()))texts.push(t);texts.forEach(function(t){var s=t.nodeValue,i=s.toLowerCase().indexOf(q);
        if(i<0)return;var f=document.createDocumentFragment(),at=0;while(i>=0){f.appendChild(document.createTextNode(s.slice(at,i)));
        var m=document.createElement('mark');m.textContent=s.slice(i,i+q.length);f.appendChild(m);at=i+q.length;
        i=s.toLowerCase().indexOf(q,at);}f.appendChild(document.createTextNode(s.slice(at)));t.parentNode.replaceChild(f,t);});}
        function apply(){var q=box.value.toLowerCase(),shown=0;unmark();
        rows.forEach(function(r){var hit=!q||r.textContent.toLowerCase().indexOf(q)>=0;r.hidden=!hit;if(hit)shown++;
        var d=r.querySelector('details');if(d&&q&&hit)d.open=true;if(q&&hit)mark(r,q);});
        sections.forEach(function(s){var any=s.querySelector('tr.m:not([hidden])')!==null;
        s.hidden=!!q&&!any&&s.querySelector('header').textContent.toLowerCase().indexOf(q)<0;});
        count.textContent=q?shown+' of '+rows.length+' rows match':rows.length+' rows';}
        box.addEventListener('input',apply);
        Array.prototype.slice.call(document.querySelectorAll('input[name=show]')).forEach(function(r){
        r.addEventListener('change',function(){document.body.setAttribute('data-show',r.value);});});
        var m=/[#&]search=([^&]*)/.exec(location.hash);if(m){box.value=decodeURIComponent(m[1]);}
        var v=/[#&]show=([a-z]+)/.exec(location.hash);if(v){document.body.setAttribute('data-show',v[1]);
        var r=document.querySelector('input[name=show][value='+v[1]+']');if(r)r.checked=true;}apply();})();
        """

    /// The CSP source that allows exactly `script`.
    static let scriptHash: String = {
        let digest = SHA256.hash(data: Array(script.description.utf8))
        return "sha256-" + Base64.encode(Array(digest))
    }()
}

extension Optional where Wrapped == [UInt8] {
    /// The array's bytes when there is one, else `fallback`.
    fileprivate func withUnsafeBytesOrNil<Result>(else fallback: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        guard let array = self else { return body(fallback) }
        return array.withUnsafeBytes(body)
    }
}

/// Text from the capture made inert in HTML: `& < > " '` escaped, and every control or
/// invisible formatting character (C0, DEL, C1, bidirectional overrides, zero-width) shown as a
/// visible mark, so what was sent is what is seen.
enum HTMLText {
    static func write(_ text: String, into out: OutputBuffer, singleLine: Bool = true, limit: Int = .max) {
        var text = text
        text.withUTF8 { write(utf8: UnsafeRawBufferPointer($0), into: out, singleLine: singleLine, limit: limit) }
    }

    /// One pass over valid UTF-8 (a `String`'s): runs of plain characters are copied as they are,
    /// the few that need it are replaced.
    static func write(utf8 bytes: UnsafeRawBufferPointer, into out: OutputBuffer, singleLine: Bool, limit: Int) {
        var index = 0
        var runStart = 0
        var characters = 0
        func flush(upTo end: Int) {
            if end > runStart { out.append(UnsafeRawBufferPointer(rebasing: bytes[runStart..<end])) }
        }
        while index < bytes.count {
            if characters == limit {
                flush(upTo: index)
                out.raw("…")
                return
            }
            let byte = bytes[index]
            // The length of this UTF-8 sequence, from its lead byte.
            let length = byte < 0x80 ? 1 : byte < 0xE0 ? 2 : byte < 0xF0 ? 3 : 4
            characters += 1
            var replacement: StaticString?
            var visible: UInt32?
            switch byte {
            case UInt8(ascii: "&"): replacement = "&amp;"
            case UInt8(ascii: "<"): replacement = "&lt;"
            case UInt8(ascii: ">"): replacement = "&gt;"
            case UInt8(ascii: "\""): replacement = "&quot;"
            case UInt8(ascii: "'"): replacement = "&#39;"
            case 0x0A where !singleLine, 0x09 where !singleLine: break
            case 0x00..<0x20, 0x7F: visible = UInt32(byte)
            case 0xC2 where index + 1 < bytes.count && (0x80...0x9F).contains(bytes[index + 1]):
                visible = UInt32(bytes[index + 1])  // C1 controls
            case 0xE2 where index + 2 < bytes.count:
                // U+200B-200F, U+202A-202E (E2 80 …), U+2060-2069 (E2 81 …): zero-width and bidirectional.
                let scalar = 0x2000 | UInt32(bytes[index + 1] & 0x3F) << 6 | UInt32(bytes[index + 2] & 0x3F)
                if (0x200B...0x200F).contains(scalar) || (0x202A...0x202E).contains(scalar) || (0x2060...0x2069).contains(scalar) {
                    visible = scalar
                }
            case 0xEF where index + 2 < bytes.count && bytes[index + 1] == 0xBB && bytes[index + 2] == 0xBF:
                visible = 0xFEFF
            default: break
            }
            if replacement != nil || visible != nil {
                flush(upTo: index)
                if let replacement {
                    out.raw(replacement)
                } else if let visible, visible < 0x20 || visible == 0x7F {
                    // The Control Pictures block: ␀ … ␟, ␡.
                    out.raw("<span class=\"ctl\">")
                    out.text(String(UnicodeScalar(visible == 0x7F ? 0x2421 : 0x2400 + visible)!))
                    out.raw("</span>")
                } else if let visible {
                    out.raw("<span class=\"ctl\">&lt;U+")
                    out.text(String(visible, radix: 16, uppercase: true))
                    out.raw("&gt;</span>")
                }
                index += length
                runStart = index
            } else {
                index += length
            }
        }
        flush(upTo: bytes.count)
    }
}
