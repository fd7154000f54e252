import WSTap
import WSTapParallel
import WSTapCore
import WSTapHTTP2
/// The readable timeline: one line per event, then the summary. Lines are rendered straight into
/// the output's buffer.
public final class TextExporter: TimelineSink {
    let output: OutputChannel
    private let line: OutputBuffer
    let style: TextStyle
    var start: CaptureTimestamp?
    /// The previous line's time (`-t d`).
    private var previous: CaptureTimestamp?
    /// Characters of a payload's preview (`--max-payload`; bytes in hex: a third of it).
    private let previewLimit: Int
    /// JSON text (most apps send it) reads as itself: unquoted, so its quotes need no escape, and
    /// twice as long.
    private let jsonPreviewLimit: Int
    private let colors: TerminalColors

    public init(output: OutputChannel, style: TextStyle) {
        self.output = output
        self.style = style
        previewLimit = style.maxPayload ?? 60
        jsonPreviewLimit = style.maxPayload ?? 120
        colors = TerminalColors(enabled: style.colors)
        line = output.pending
    }

    public convenience init(
        output: OutputChannel, showSummary: Bool = true, verbose: Bool = false, showsEveryMessage: Bool = false,
        timeFormat: TimeFormat = .relative, maxPayload: Int? = nil, hexDump: Bool = false
    ) {
        var style = TextStyle()
        style.showSummary = showSummary
        style.verbose = verbose
        style.showsEveryMessage = showsEveryMessage
        style.timeFormat = timeFormat
        style.maxPayload = maxPayload
        style.hexDump = hexDump
        self.init(output: output, style: style)
    }

    public var writesContextLines: Bool { true }

    public func receive(_ event: TimelineEvent) {
        let time = event.time
        let record = event.connection
        switch event.kind {
        case .captureStarted:
            start = time
            // The one absolute time a relative timeline needs: when it starts.
            line.raw("capture starts "); if let time { line.utcTime(time, withDate: true) }; line.raw(" UTC")
        case .connectionOpened:
            begin(event)
            guard let record else { break }
            line.raw("TCP "); line.text(record.client.description)
            line.raw(" → "); line.text(record.server.description)
            if !record.tcpHandshakeSeen { line.raw("  (handshake not captured)") }
        case .httpRequest(let head):
            begin(event)
            line.raw("→ "); field(head.method)
            line.raw(" "); field(head.target, bytes: head.targetBytes)
            line.raw(" "); field(head.version, bytes: head.versionBytes)
            if let offer = head.headers.combinedValue("Upgrade") {
                line.raw("  Upgrade: "); field(offer)
            }
            if style.verbose { headerLines(head.headers) }
        case .httpResponse(let head):
            begin(event)
            line.raw("← "); line.number(head.status)
            if !head.reason.isEmpty || head.reasonBytes != nil { line.raw(" "); field(head.reason, bytes: head.reasonBytes) }
            if style.verbose { headerLines(head.headers) }
        case .upgradeAnswerBody(let body):
            begin(event)
            line.raw("← body "); line.byteCount(body.length)
            if !body.isComplete { line.raw(", INCOMPLETE") }
            if body.missingBytes > 0 { line.raw(", "); line.byteCount(body.missingBytes); line.raw(" not captured") }
            line.raw("  ")
            body.bytes.withUnsafeBytes { line.quotedPreview($0, limit: 160, asText: PayloadText.isText($0)) }
        case .httpExchange(let exchange):
            // Its request and response were shown as they came; a tunnel says what follows.
            guard exchange.opensTunnel else { return }
            begin(event)
            line.raw("tunnel to "); field(exchange.request.target); line.raw(" opened: what follows is decoded inside it")
        case .tls(let session):
            begin(event)
            tlsText(session)
        case .upgrade(let exchange):
            begin(event)
            upgradeText(exchange)
        case .frame(let frame):
            // A compressed message in one frame is shown once, by its message line (with its
            // text): the frame's compressed bytes say nothing to a reader. `-v` and `-x` show them.
            let header = frame.header
            if header.fin, header.rsv1, header.opcode == .text || header.opcode == .binary, !style.verbose, !style.hexDump {
                return
            }
            begin(event)
            frameText(frame)
        case .message(let message):
            // Single uncompressed frames already show their content; messages add what frames cannot
            // (and, with --pretty, a JSON message's lines).
            let prettyLines = style.prettyJSON && PayloadText.isJSONString(message)
                ? JSONPretty.lines(message.message.payload) : nil
            guard message.message.frameCount > 1 || message.message.compressed || style.showsEveryMessage || prettyLines != nil
            else { return }
            begin(event)
            messageText(message)
            for var text in prettyLines ?? [] {
                line.append(UInt8(ascii: "\n")); line.raw("        ")
                text.withUTF8 { _ = line.terminalText(UnsafeRawBufferPointer($0), quoted: false) }
            }
        case .application(let message):
            begin(event)
            applicationText(message)
        case .issue(let issue):
            if record != nil {
                begin(event)
                switch issue.direction {
                case .clientToServer: line.raw("→ ")
                case .serverToClient: line.raw("← ")
                case nil: break
                }
            }
            colors.start(issue.severity == .error ? .red : issue.severity == .warning ? .yellow : .dim, in: line)
            line.raw("!! "); line.text(issue.severity.rawValue)
            line.raw(" "); line.text(issue.code)
            colors.end(in: line)
            line.raw(": "); field(issue.detail)
        case .streamClosed(let end):
            begin(event)
            line.raw("stream closed ("); line.text(end.reason); line.raw("), "); line.text(end.protocolKind.rawValue)
            if end.protocolKind == .websocket {
                line.raw(", "); line.number(end.totals.frames[0] + end.totals.frames[1]); line.raw(" frames, ")
                line.byteCount(end.totals.payloadBytes[0] + end.totals.payloadBytes[1])
            }
            outcomeText(end.ending)
        case .connectionClosed(let end):
            begin(event)
            let totals = end.totals
            line.raw("closed ("); line.text(end.reason.rawValue)
            line.raw("), "); line.text(end.protocolKind.rawValue)
            if let detection = end.websocketDetection, detection != .handshake {
                line.raw(" ("); line.text(detection.rawValue); line.raw(", handshake not captured)")
            }
            // Frames and bytes after a switch, for connections that switched or carry WebSocket.
            if end.protocolKind == .websocket || end.protocolKind == .otherUpgrade {
                line.raw(", "); line.number(totals.frames[0] + totals.frames[1])
                line.raw(" frames, ")
                line.byteCount(totals.payloadBytes[0] + totals.payloadBytes[1] + totals.upgradedBytes[0] + totals.upgradedBytes[1])
                line.raw(end.websocketDetection == .handshake || end.protocolKind == .otherUpgrade ? " after upgrade" : "")
            }
            outcomeText(end.ending)
        }
        line.append(UInt8(ascii: "\n"))
        output.endEvent(at: time)
    }

    public func finish(_ summary: CaptureSummary) {
        if let late = output.timeOrderIssue { receive(.issue(nil, late)) }
        if style.showSummary {
            line.append(UInt8(ascii: "\n"))
            SummaryText.render(summary, into: line)
        }
        output.flush()
    }

    /// The time and connection (and stream) that start each line.
    private func begin(_ event: TimelineEvent) {
        let time = event.time
        if style.packetNumbers {
            // The packet's number as Wireshark shows it, right-aligned in seven columns.
            let number = time.map { $0.packet > 0 ? String($0.packet) : "-" } ?? "-"
            for _ in 0..<max(0, 7 - number.count) { line.append(UInt8(ascii: " ")) }
            line.text(number)
            line.raw("  ")
        }
        switch style.timeFormat {
        case .relative:
            line.relativeTime(time, since: start)
        case .delta:
            line.relativeTime(time, since: previous ?? start)
            if let time { previous = time }
        case .epoch:
            line.relativeTime(time, since: .zero, aligned: false)
        case .absolute, .absoluteWithDate:
            if let time { line.utcTime(time, withDate: style.timeFormat == .absoluteWithDate) } else { line.raw("-") }
        }
        line.raw("  #"); output.connectionID(event.connection?.id ?? 0)
        if let stream = event.stream { line.raw("/s"); line.number(UInt64(stream.rawValue)) }
        line.raw("  ")
    }

    /// Characters of one field from the capture shown on a line (a target, a header value, an
    /// offer list, an issue's detail); past it `…` (JSON has the whole field).
    static let maxFieldCharacters = 512

    /// Text from the capture on a line: escaped for the terminal, its own bytes when they are not
    /// UTF-8 (shown as `\xNN`), at most `maxFieldCharacters` characters.
    private func field(_ text: String, bytes: [UInt8]? = nil) {
        if let bytes { return bytes.withUnsafeBytes { _ = line.terminalText($0, limit: Self.maxFieldCharacters) } }
        var text = text
        text.withUTF8 { _ = line.terminalText(UnsafeRawBufferPointer($0), limit: Self.maxFieldCharacters) }
    }

    /// One line per header, indented under its head, as received (escaped for the terminal).
    private func headerLines(_ headers: HTTPHeaders) {
        for header in headers {
            line.append(UInt8(ascii: "\n"))
            line.raw("                    "); field(header.name)
            line.raw(": "); field(header.value, bytes: header.valueBytes)
        }
    }

    /// `TLS 1.3 TLS_AES_256_GCM_SHA384 sni example.com alpn http/1.1: decrypted (key log)`.
    private func tlsText(_ session: TLSSession) {
        if let version = session.version { line.text(version) } else { line.raw("TLS (version not captured)") }
        if let cipher = session.cipherSuite { line.raw(" "); line.text(cipher) }
        if let name = session.serverName { line.raw(" sni "); field(name) }
        if let alpn = session.alpn { line.raw(" alpn "); field(alpn) }
        if session.decrypted {
            colors.start(.green, in: line); line.raw(": decrypted with the key log"); colors.end(in: line)
        } else {
            colors.start(.yellow, in: line); line.raw(": NOT decrypted"); colors.end(in: line)
            if let reason = session.reason { line.raw(" ("); line.text(reason); line.raw(")") }
        }
    }

    private func upgradeText(_ exchange: UpgradeExchange) {
        if let selected = exchange.selectedProtocol {
            line.raw("upgrade to "); field(selected)
        } else if exchange.offeredProtocols.isEmpty {
            line.raw("upgrade (offer not captured)")
        } else {
            line.raw("upgrade offer "); field(exchange.offeredProtocols.joined(separator: ", "))
        }
        colors.start(exchange.outcome == .upgraded ? .green : exchange.outcome == .incomplete ? .yellow : .red, in: line)
        switch exchange.outcome {
        case .upgraded: line.raw(": switched")
        case .failed: line.raw(": switched, handshake FAILED")
        case .rejected: line.raw(": refused")
        case .incomplete: line.raw(": no answer captured")
        }
        colors.end(in: line)
        if exchange.offeredProtocols.count > 1 {
            line.raw(" (offered "); field(exchange.offeredProtocols.joined(separator: ", ")); line.raw(")")
        }
        if exchange.outcome == .upgraded, exchange.selectedProtocol?.caseInsensitiveEquals("h2c") ?? false {
            // What the client's SETTINGS said before HTTP/2 began; the request goes on as stream 1.
            if let settings = HTTP2UpgradeSettings.of(exchange.request.headers) {
                line.raw(", HTTP2-Settings "); field(settings.isEmpty ? "(none)" : HTTP2UpgradeSettings.describe(settings))
            }
            line.raw(", the request is stream 1")
        }
        guard let websocket = exchange.websocket else { return }
        switch websocket.acceptValid {
        case true?: line.raw(", accept ok")
        case false?: colors.start(.red, in: line); line.raw(", accept WRONG"); colors.end(in: line)
        case nil: break
        }
        if let subprotocol = websocket.subprotocol {
            line.raw(", subprotocol "); field(subprotocol)
        }
        if let extensions = websocket.extensions {
            line.raw(", extensions "); field(extensions.joined(separator: ", "))
        }
    }

    /// The direction's arrow, in the direction's colour when colours are on (the caller ends it).
    private func arrow(_ direction: StreamDirection) {
        colors.start(direction == .clientToServer ? .cyan : .magenta, in: line)
        if direction == .clientToServer { line.raw("→") } else { line.raw("←") }
    }

    private func frameText(_ frame: FrameRecord) {
        let header = frame.header
        arrow(frame.direction)
        line.append(UInt8(ascii: " "))
        let typeStart = line.count
        line.opcodeName(header.opcode)
        colors.end(in: line)
        // The type in a column of twelve, then a space.
        for _ in 0...max(0, 12 - (line.count - typeStart)) { line.append(UInt8(ascii: " ")) }
        line.byteCount(header.payloadLength)
        if !header.fin || header.rsv != 0 || header.masked {
            var separator: StaticString = " ["
            if !header.fin { line.raw(separator); line.raw("more"); separator = " " }
            if header.rsv != 0 { line.raw(separator); line.raw("rsv="); line.number(header.rsv); separator = " " }
            if header.masked { line.raw(separator); line.raw("masked") }
            line.append(UInt8(ascii: "]"))
        }
        if let close = frame.close {
            line.raw("  code ")
            if let code = close.code { line.text(code.description) } else { line.raw("none") }
            if !close.reason.isEmpty {
                line.append(UInt8(ascii: " "))
                close.reason.withUnsafeBytes { line.quotedPreview($0, asText: true) }
            }
        } else if !frame.payload.isEmpty {
            preview(frame.payload, gaps: frame.gaps, asText: PayloadText.isText(frame))
        }
        if style.hexDump { dump(frame.payload) }
    }

    /// A payload's preview after two spaces: text in quotes, JSON text as it is (both escaped for
    /// the terminal), other bytes in hex, except under `-x`, whose dump below shows them all.
    private func preview(_ payload: UnsafeRawBufferPointer, gaps: UnsafeBufferPointer<PayloadGap>, asText: Bool) {
        if payload.isEmpty || (style.hexDump && !asText && gaps.isEmpty) { return }
        line.raw("  ")
        if asText, gaps.isEmpty, JSONPretty.startsLikeJSON(payload) {
            line.terminalText(payload, limit: jsonPreviewLimit, quoted: false)
        } else {
            line.quotedPreview(payload, gaps: gaps, limit: previewLimit, asText: asText)
        }
    }

    /// `-x`: offset, 16 bytes in hex, the same as ASCII (`.` for the rest), as `follow` shows them.
    private func dump(_ payload: UnsafeRawBufferPointer) {
        let shown = UnsafeRawBufferPointer(rebasing: payload.prefix(style.maxPayload ?? payload.count))
        line.hexDumpLines(shown, indent: "        ", offsetBytes: 4, escapesHTML: false, newlineFirst: true)
        if shown.count < payload.count {
            line.append(UInt8(ascii: "\n")); line.raw("        … "); line.number(payload.count - shown.count); line.raw(" more bytes")
        }
    }

    /// `: abnormal-closure (close code 1006)`, in red when it is a failure.
    private func outcomeText(_ ending: ConnectionEnding) {
        line.raw(": ")
        colors.start(ending.outcome.isFailure ? .red : ending.outcome == .closedCleanly ? .green : .dim, in: line)
        line.text(ending.outcome.rawValue)
        colors.end(in: line)
        guard let closing = ending.websocket else { return }
        line.raw(" (close "); line.number(UInt64(closing.effectiveCode))
        switch closing.closedFirst {
        case .none: line.raw(", no Close frame")
        case .client, .server: line.raw(" by the "); line.text(closing.closedFirst.rawValue)
        }
        if !closing.handshakeCompleted, closing.closedFirst != .none { line.raw(", unanswered") }
        line.raw(")")
    }

    /// `→ app socket.io event  namespace="/" event="chat" …`: the protocol's own words, generically.
    private func applicationText(_ message: ApplicationMessage) {
        arrow(message.direction)
        line.raw(" app "); field(message.protocolName)
        colors.end(in: line)
        line.append(UInt8(ascii: " ")); field(message.type)
        for item in message.fields {
            line.raw("  "); field(item.name); line.append(UInt8(ascii: "="))
            let rendered = OutputBuffer()
            rendered.applicationValue(item.value)
            rendered.withBytes { _ = line.terminalText($0, limit: previewLimit, quoted: false) }
        }
    }

    private func messageText(_ record: MessageRecord) {
        let message = record.message
        arrow(record.direction)
        line.raw(" message "); line.opcodeName(message.opcode)
        colors.end(in: line)
        line.append(UInt8(ascii: " ")); line.byteCount(message.payload.count)
        line.raw(" in "); line.number(message.frameCount); line.raw(" frame(s)")
        if message.compressed {
            line.raw(", compressed")
            if message.isDecoded {
                line.append(UInt8(ascii: " ")); line.byteCount(message.wireLength); line.raw("→"); line.byteCount(message.payload.count)
            }
        }
        if !message.isComplete { line.raw(", INCOMPLETE") }
        guard message.isDecoded else {
            line.raw(", NOT DECODED")
            // What the capture has of it, as its frames carried it (never as if it were the text).
            guard message.compressed, !message.payload.isEmpty else { return }
            line.raw("  as sent: ")
            return line.quotedPreview(message.payload, gaps: message.gaps, limit: previewLimit, asText: false)
        }
        preview(message.payload, gaps: message.gaps, asText: PayloadText.isText(record))
        if style.hexDump { dump(message.payload) }
    }
}

/// How the text timeline is written.
public struct TextStyle: Sendable {
    /// The summary block after the timeline.
    public var showSummary = true
    /// `-v`: the header lines of requests and responses too.
    public var verbose = false
    /// Every message gets its line, single uncompressed frames too (`--messages`, `--grep`: frame
    /// lines are filtered out).
    public var showsEveryMessage = false
    public var timeFormat = TimeFormat.relative
    /// `--max-payload`: characters of each preview, bytes of each `-x` dump.
    public var maxPayload: Int?
    /// `-x`: every payload also as hex and ASCII, 16 bytes a line.
    public var hexDump = false
    /// `--pretty`: text messages that are JSON also re-indented on the lines below.
    public var prettyJSON = false
    /// ANSI colours: direction, issues by severity, handshake verdicts.
    public var colors = false
    /// `-n`: each line starts with the number of the packet it came from (Wireshark's frame number).
    public var packetNumbers = false

    public init() {}
}

/// ANSI SGR sequences, or nothing when colours are off.
struct TerminalColors {
    enum Color {
        case red, green, yellow, magenta, cyan, dim

        var sequence: StaticString {
            switch self {
            case .red: "\u{1B}[31m"
            case .green: "\u{1B}[32m"
            case .yellow: "\u{1B}[33m"
            case .magenta: "\u{1B}[35m"
            case .cyan: "\u{1B}[36m"
            case .dim: "\u{1B}[2m"
            }
        }
    }

    let enabled: Bool

    func start(_ color: Color, in line: OutputBuffer) {
        if enabled { line.raw(color.sequence) }
    }

    func end(in line: OutputBuffer) {
        if enabled { line.raw("\u{1B}[0m") }
    }
}

/// The summary block shared by the text timeline and `--format summary`.
public enum SummaryText {
    public static func render(_ summary: CaptureSummary) -> String {
        let text = OutputBuffer()
        render(summary, into: text)
        return text.withBytes { String(decoding: $0, as: UTF8.self) }
    }

    static func render(_ summary: CaptureSummary, into text: OutputBuffer) {
        text.raw("── summary ──\npackets "); text.number(summary.packets)
        text.raw(" ("); text.byteCount(summary.capturedBytes); text.raw(")")
        if let first = summary.firstPacketTime, let last = summary.lastPacketTime {
            text.raw(" over "); text.relativeTime(last, since: first, aligned: false); text.raw(" s")
        }
        text.raw(", TCP segments "); text.number(summary.tcp.segments)
        if !summary.skippedPackets.isEmpty {
            text.raw("\nnot analysed: "); counts(summary.skippedPackets, into: text)
        }
        if summary.ipFragments > 0 {
            text.raw("\nIP fragments "); text.number(summary.ipFragments)
            text.raw(": "); text.number(summary.ipDatagramsReassembled)
            text.raw(" datagrams reassembled, "); text.number(summary.ipDatagramsIncomplete); text.raw(" incomplete")
        }
        if summary.snaplenTruncatedPackets > 0 {
            text.raw("\npackets cut by snaplen: "); text.number(summary.snaplenTruncatedPackets)
        }
        let tcp = summary.tcp
        if tcp.missingBytes > 0 || tcp.outOfOrderSegments > 0 || tcp.retransmittedBytes > 0 {
            text.raw("\nTCP: "); text.number(tcp.outOfOrderSegments)
            text.raw(" out-of-order segments, "); text.byteCount(tcp.retransmittedBytes)
            text.raw(" retransmitted, "); text.byteCount(tcp.missingBytes); text.raw(" missing")
        }
        text.raw("\nconnections "); text.number(summary.connections)
        if summary.connections > 0 {
            text.raw(": "); counts(summary.connectionsByProtocol, into: text)
            text.raw("\noutcomes: "); counts(summary.connectionsByOutcome, into: text)
        }
        if let keyLog = summary.keyLog {
            text.raw("\nkey log "); text.terminalText(keyLog.path); text.raw(" (from "); text.text(keyLog.source)
            text.raw("): secrets for "); text.number(keyLog.connections); text.raw(" connections")
        }
        if !summary.tlsConnections.isEmpty {
            text.raw("\nTLS: "); counts(summary.tlsConnections, into: text)
            text.raw(", "); text.byteCount(summary.tlsRecordBytes); text.raw(" of records")
        }
        text.raw("\nupgrades: ")
        if summary.upgradesByOutcome.isEmpty { text.raw("none") } else { counts(summary.upgradesByOutcome, into: text) }
        text.raw("\nframes "); text.number(summary.frames)
        if summary.frames > 0 { text.raw(": "); counts(summary.framesByType, into: text) }
        text.raw(", "); text.byteCount(summary.framePayloadBytes); text.raw(" payload")
        text.raw("\nmessages "); text.number(summary.messages)
        if summary.messages > 0 { text.raw(": "); counts(summary.messagesByType, into: text) }
        text.raw(", "); text.byteCount(summary.messagePayloadBytes)
        text.raw("\nissues "); text.number(summary.issues)
        if summary.issues > 0 { text.raw(": "); counts(summary.issuesByCode, into: text) }
        if let damage = summary.captureDamage { text.raw("\ncapture damaged: "); text.terminalText(damage) }
        if let live = summary.live {
            // libpcap's counters (as tcpdump words them): what reached the filter, not what `packets` above counts.
            text.raw("\npackets received by filter "); text.number(live.received)
            text.raw(", dropped by kernel "); text.number(live.droppedByKernel)
            text.raw(", dropped by interface "); text.number(live.droppedByInterface)
            text.raw(", dropped by wstap "); text.number(live.droppedByWstap)
        }
        text.append(UInt8(ascii: "\n"))
    }

    /// `name count` pairs in the order of their names.
    private static func counts(_ values: [String: UInt64], into text: OutputBuffer) {
        for (index, key) in values.keys.sorted().enumerated() {
            if index > 0 { text.raw(", ") }
            text.text(key); text.append(UInt8(ascii: " ")); text.number(values[key] ?? 0)
        }
    }
}

/// Writes only the summary (`--format summary`): the fastest way through a capture.
public final class SummaryExporter: TimelineSink {
    private let output: OutputChannel

    public init(output: OutputChannel) { self.output = output }

    public var receivesFramesAndMessages: Bool { false }

    public func receive(_ event: TimelineEvent) {}

    public func finish(_ summary: CaptureSummary) {
        SummaryText.render(summary, into: output.pending)
        output.flush()
    }
}

