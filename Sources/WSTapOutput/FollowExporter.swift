import WSTap
import WSTapCore

/// Which conversation `wstap follow` shows.
public enum ConversationSelector: Sendable, Equatable {
    /// The connection with this id (as every output numbers them).
    case connection(UInt64)
    /// Connections from this client: an address and port (`1.2.3.4:5000`, `[::1]:5000`), or an
    /// address alone (every connection from it).
    case client(String)

    func matches(_ record: ConnectionRecord) -> Bool {
        switch self {
        case .connection(let id): record.id == id
        case .client(let endpoint): DisplayFilter.matches(endpoint, record.client)
        }
    }
}

/// One conversation's messages in order, whole, like Wireshark's "Follow WebSocket Stream":
/// the handshake, then each message's text (re-indented when it is JSON and `pretty` is set) or
/// a hex and ASCII dump, control frames and issues on one line each. With a message directory,
/// each data message's payload is also saved to a numbered file (`000001-c2s.txt`, `.bin`):
/// names are never taken from the capture.
public final class FollowExporter: TimelineSink {
    private let output: OutputChannel
    private let line: OutputBuffer
    private let selector: ConversationSelector
    private let pretty: Bool
    private let messageDirectory: String?
    /// Only this HTTP/2 stream of the followed connections (`--stream`).
    private let stream: UInt32?
    /// Whether an event of that stream was seen.
    public private(set) var streamSeen = false
    private var start: CaptureTimestamp?
    /// Ids of the connections followed.
    private var followed: Set<UInt64> = []
    private var messagesSaved = 0
    /// `index.tsv` in `messageDirectory`: a line per saved payload (its file, packet, time,
    /// direction, type and size), opened with the first.
    private var index: Int32?
    private let indexLine = OutputBuffer()
    /// Connections in the capture, to say what there was when none matched.
    public private(set) var connectionsSeen: UInt64 = 0
    public var matchedAny: Bool { !followed.isEmpty }

    public init(
        output: OutputChannel, selector: ConversationSelector, stream: UInt32? = nil, pretty: Bool = false,
        messageDirectory: String? = nil
    ) {
        self.output = output
        self.selector = selector
        self.stream = stream
        self.pretty = pretty
        self.messageDirectory = messageDirectory
        line = output.pending
    }

    public func receive(_ event: TimelineEvent) {
        if case .captureStarted = event.kind { start = event.time }
        guard let record = event.connection else { return }
        if case .connectionOpened = event.kind {
            connectionsSeen += 1
            guard selector.matches(record) else { return }
            followed.insert(record.id)
            if followed.count > 1 { line.raw("\n") }
            line.raw("═══ follow #"); line.number(record.id); line.raw("  "); line.text(record.client.description)
            line.raw(" → "); line.text(record.server.description); line.raw(" ═══\n")
            return output.endEvent(at: event.time)
        }
        guard followed.contains(record.id) else { return }
        if let stream {
            // One HTTP/2 stream: its events, and the connection's end.
            if case .connectionClosed = event.kind {} else {
                guard event.stream?.rawValue == stream else { return }
                streamSeen = true
            }
        }
        let time = event.time ?? .zero
        switch event.kind {
        case .httpRequest(let head):
            stamp(time); line.raw("→ "); text(head.method); line.raw(" "); text(head.target); line.raw(" "); text(head.version)
            line.raw("\n")
        case .httpResponse(let head):
            stamp(time); line.raw("← "); line.number(head.status)
            if !head.reason.isEmpty { line.raw(" "); text(head.reason) }
            line.raw("\n")
        case .upgrade(let exchange):
            stamp(exchange.time)
            line.raw("upgrade "); text(exchange.selectedProtocol ?? exchange.offeredProtocols.joined(separator: ", "))
            line.raw(": "); line.text(exchange.outcome.rawValue)
            if let subprotocol = exchange.websocket?.subprotocol { line.raw(", subprotocol "); text(subprotocol) }
            if let extensions = exchange.websocket?.extensions, !extensions.isEmpty {
                line.raw(", extensions "); text(extensions.joined(separator: ", "))
            }
            line.raw("\n")
        case .frame(let frame) where frame.header.opcode.rawValue >= 8:
            stamp(time); arrow(frame.direction); line.raw(" "); line.opcodeName(frame.header.opcode)
            line.raw(" "); line.byteCount(frame.header.payloadLength)
            if let close = frame.close {
                line.raw("  code "); line.text(close.code.map { String($0.rawValue) } ?? "none")
                if !close.reason.isEmpty { line.raw(" "); close.reason.withUnsafeBytes { line.quotedPreview($0, limit: 512, asText: true) } }
            } else if !frame.payload.isEmpty {
                line.raw("  "); line.quotedPreview(frame.payload, limit: 512, asText: PayloadText.isText(frame))
            }
            line.raw("\n")
        case .message(let message):
            messageBlock(message, at: time)
        case .application(let message):
            // Under the WebSocket message(s) it came from: the protocol's own words.
            line.raw("    = "); text(message.protocolName); line.raw(" "); text(message.type)
            for field in message.fields {
                line.raw("  "); text(field.name); line.raw("=")
                let rendered = OutputBuffer()
                rendered.applicationValue(field.value)
                rendered.withBytes { _ = line.terminalText($0, limit: 512, quoted: false) }
            }
            line.raw("\n")
        case .issue(let issue):
            stamp(issue.time); line.raw("!! "); line.text(issue.severity.rawValue); line.raw(" "); line.text(issue.code)
            line.raw(": "); text(issue.detail); line.raw("\n")
        case .tls(let session):
            stamp(time)
            line.text([session.version ?? "TLS", session.cipherSuite ?? ""].joined(separator: " "))
            line.raw(session.decrypted ? ": decrypted with the key log\n" : ": NOT decrypted\n")
        case .streamClosed(let end):
            stamp(end.time); line.raw("stream "); line.number(UInt64(event.stream?.rawValue ?? 0)); line.raw(" closed (")
            line.text(end.reason); line.raw("): "); line.text(end.ending.outcome.rawValue); line.raw("\n")
        case .connectionClosed(let end):
            stamp(end.time); line.raw("closed ("); line.text(end.reason.rawValue); line.raw("): "); line.text(end.ending.outcome.rawValue)
            if let closing = end.ending.websocket {
                line.raw(" (close "); line.number(UInt64(closing.effectiveCode))
                if closing.closedFirst != .none { line.raw(" by the "); line.text(closing.closedFirst.rawValue) }
                line.raw(")")
            }
            line.raw("\n")
        default:
            return
        }
        output.endEvent(at: event.time)
    }

    public func finish(_ summary: CaptureSummary) {
        if let late = output.timeOrderIssue {
            line.raw("!! "); line.text(late.severity.rawValue); line.raw(" "); line.text(late.code); line.raw(": "); text(late.detail)
            line.raw("\n")
        }
        if messageDirectory != nil {
            line.raw("\n"); line.number(messagesSaved); line.raw(" message payloads saved")
            if messagesSaved > 0 { line.raw(", listed in index.tsv") }
            line.raw("\n")
        }
        if let index { SystemCalls.close(index) }
        index = nil
        output.flush()
    }

    private func messageBlock(_ record: MessageRecord, at time: CaptureTimestamp) {
        let message = record.message
        stamp(time); arrow(record.direction); line.raw(" "); line.opcodeName(message.opcode)
        line.raw(" "); line.byteCount(message.payload.count)
        if message.frameCount > 1 { line.raw(" in "); line.number(message.frameCount); line.raw(" frames") }
        if message.compressed { line.raw(", compressed") }
        if !message.isComplete { line.raw(", INCOMPLETE") }
        if !message.gaps.isEmpty { line.raw(", bytes missing") }
        guard message.isDecoded else { return line.raw(", NOT DECODED\n") }
        if let saved = save(record, at: time) { line.raw("  ["); line.text(saved); line.raw("]") }
        line.raw("\n")
        if PayloadText.isText(record) {
            let lines = (pretty ? JSONPretty.lines(message.payload) : nil)
            if let lines {
                for text in lines { line.raw("    "); self.text(text, limit: .max); line.raw("\n") }
            } else {
                // The text's own lines, each escaped for the terminal.
                var lineStart = 0
                for index in 0...message.payload.count where index == message.payload.count || message.payload[index] == 0x0A {
                    line.raw("    ")
                    line.terminalText(UnsafeRawBufferPointer(rebasing: message.payload[lineStart..<index]), quoted: false)
                    line.raw("\n")
                    lineStart = index + 1
                }
            }
        } else {
            line.hexDumpLines(message.payload, indent: "    ", offsetBytes: 4, escapesHTML: false)
        }
    }

    /// Saves a data message's payload as `NNNNNN-c2s.txt` (text) or `.bin`; returns the file's
    /// name, or nil without a directory. A file that cannot be written fails the output.
    private func save(_ record: MessageRecord, at time: CaptureTimestamp) -> String? {
        guard let messageDirectory, !output.failed else { return nil }
        messagesSaved += 1
        func padded(_ value: UInt64) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
        }
        // The message's sequence number, then the number of the packet that completed it.
        let name = padded(UInt64(messagesSaved)) + "-" + padded(time.packet) + "-" + record.direction.label
            + (record.message.opcode == .text ? ".txt" : ".bin")
        let path = messageDirectory + "/" + name
        addToIndex(name, record, at: time, in: messageDirectory)
        switch SystemCalls.createFile(path, exclusive: true) {
        case .success(let descriptor):
            let error = SystemCalls.writeAll(descriptor, record.message.payload)
            SystemCalls.close(descriptor)
            if let error { output.markFailed("\(path): \(error.reason)") }
        case .failure(let error):
            output.markFailed("\(path): \(error.reason)")
        }
        return name
    }

    /// A line of `index.tsv` (written with its header by the first saved payload).
    private func addToIndex(_ name: String, _ record: MessageRecord, at time: CaptureTimestamp, in directory: String) {
        indexLine.removeAll()
        if index == nil {
            let path = directory + "/index.tsv"
            switch SystemCalls.createFile(path, exclusive: true) {
            case .success(let descriptor): index = descriptor
            case .failure(let error): return output.markFailed("\(path): \(error.reason)")
            }
            indexLine.raw("file\tpacket\ttime\trelative\tdir\ttype\tbytes\n")
        }
        guard let index else { return }
        indexLine.text(name); indexLine.raw("\t"); indexLine.number(time.packet); indexLine.raw("\t")
        indexLine.epochSeconds(time); indexLine.raw("\t"); indexLine.relativeTime(time, since: start, aligned: false)
        indexLine.raw("\t"); indexLine.text(record.direction.label); indexLine.raw("\t"); indexLine.opcodeName(record.message.opcode)
        indexLine.raw("\t"); indexLine.number(UInt64(record.message.payload.count)); indexLine.raw("\n")
        if let error = indexLine.withBytes({ SystemCalls.writeAll(index, $0) }) {
            output.markFailed("\(directory)/index.tsv: \(error.reason)")
        }
    }

    private func stamp(_ time: CaptureTimestamp?) {
        line.relativeTime(time, since: start)
        line.raw("  ")
    }

    private func arrow(_ direction: StreamDirection) {
        line.raw(direction == .clientToServer ? "→" : "←")
    }

    /// A field from the capture, escaped for the terminal, at most `limit` characters.
    private func text(_ value: String, limit: Int = 512) {
        var value = value
        value.withUTF8 { _ = line.terminalText(UnsafeRawBufferPointer($0), limit: limit, quoted: false) }
    }
}

extension OutputBuffer {
    /// 16 bytes a line after `indent`: the offset (`offsetBytes` bytes in hex), the bytes in hex,
    /// then as ASCII (`.` for the rest; `< > &` as entities when `escapesHTML`), each line ended
    /// (or, with `newlineFirst`, begun: for a dump under a line that is still open). The one hex
    /// style of every output (`follow`, `-x`, the HTML report).
    func hexDumpLines(
        _ bytes: UnsafeRawBufferPointer, indent: StaticString, offsetBytes: Int, escapesHTML: Bool, newlineFirst: Bool = false
    ) {
        var offset = 0
        while offset < bytes.count {
            let row = UnsafeRawBufferPointer(rebasing: bytes[offset..<min(bytes.count, offset + 16)])
            if newlineFirst { raw("\n") }
            raw(indent)
            for shift in stride(from: 8 * (offsetBytes - 1), through: 0, by: -8) { hexByte(UInt8(truncatingIfNeeded: offset >> shift)) }
            raw("  ")
            for index in 0..<16 {
                if index < row.count { hexByte(row[index]); raw(" ") } else { raw("   ") }
            }
            raw(" ")
            for byte in row {
                switch byte {
                case UInt8(ascii: "<") where escapesHTML: raw("&lt;")
                case UInt8(ascii: ">") where escapesHTML: raw("&gt;")
                case UInt8(ascii: "&") where escapesHTML: raw("&amp;")
                case 0x20..<0x7F: append(byte)
                default: append(UInt8(ascii: "."))
                }
            }
            if !newlineFirst { raw("\n") }
            offset += 16
        }
    }
}
