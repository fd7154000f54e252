/// The readable timeline: one line per event, then the summary.
public final class TextExporter: TimelineSink {
    private let output: OutputChannel
    private let showSummary: Bool
    private var start: CaptureTimestamp?

    public init(output: OutputChannel, showSummary: Bool = true) {
        self.output = output
        self.showSummary = showSummary
    }

    public func receive(_ event: TimelineEvent) {
        switch event {
        case .captureStarted(let time):
            start = time
            return
        case .connectionOpened(let record):
            line(record.startTime, record, "TCP \(record.client) → \(record.server)"
                + (record.tcpHandshakeSeen ? "" : "  (handshake not captured)"))
        case .httpRequest(let record, let time, let head):
            let offer = head.headers.combinedValue("Upgrade").map { "  Upgrade: \(safe($0))" } ?? ""
            line(time, record, "→ \(safe(head.method)) \(safe(head.target)) \(safe(head.version))\(offer)")
        case .httpResponse(let record, let time, let head):
            line(time, record, "← \(head.status) \(safe(head.reason))")
        case .upgrade(let record, let exchange):
            line(exchange.responseTime ?? exchange.requestTime, record, upgradeText(exchange))
        case .frame(let record, let frame):
            line(frame.time, record, frameText(frame))
        case .message(let record, let message):
            // Single uncompressed frames already show their content; messages add what frames cannot.
            guard message.message.frameCount > 1 || message.message.compressed else { return }
            line(message.time, record, messageText(message))
        case .issue(let record, let issue):
            let arrow = issue.direction.map { $0 == .clientToServer ? "→ " : "← " } ?? ""
            if let record {
                line(issue.time, record, "\(arrow)!! \(issue.severity.rawValue) \(issue.code): \(safe(issue.detail))")
            } else {
                output.write("!! \(issue.severity.rawValue) \(issue.code): \(safe(issue.detail))\n")
            }
        case .connectionClosed(let record, let end):
            let totals = end.totals
            let frames = totals.frames[0] + totals.frames[1]
            let how = end.websocketDetection.map { $0 == .handshake ? "" : " (\($0.rawValue), handshake not captured)" } ?? ""
            line(end.time, record, "closed (\(end.reason.rawValue)), \(end.protocolKind.rawValue)\(how), "
                + "\(frames) frames, \(TextPreview.byteCount(totals.payloadBytes[0] + totals.payloadBytes[1] + totals.upgradedBytes[0] + totals.upgradedBytes[1])) after upgrade")
        }
        output.endEvent()
    }

    public func finish(_ summary: CaptureSummary) {
        if showSummary { output.write(SummaryText.render(summary)) }
        output.flush()
    }

    private func line(_ time: CaptureTimestamp?, _ record: ConnectionRecord, _ text: String) {
        output.write("\(TextPreview.relativeTime(time, since: start))  #\(record.id)  \(text)\n")
    }

    private func safe(_ text: String) -> String {
        String(text.unicodeScalars.map(TextPreview.escaped).joined())
    }

    private func upgradeText(_ exchange: UpgradeExchange) -> String {
        var parts = ["upgrade \(exchange.outcome.rawValue)"]
        if let selected = exchange.selectedProtocol {
            parts.append("to \(safe(selected))")
        } else if exchange.offeredProtocols.isEmpty {
            parts.append("offer not captured")
        } else {
            parts.append("offered \(safe(exchange.offeredProtocols.joined(separator: ", ")))")
        }
        if let websocket = exchange.websocket {
            switch websocket.acceptValid {
            case true?: parts.append("accept ok")
            case false?: parts.append("accept WRONG")
            case nil: break
            }
            if let subprotocol = websocket.subprotocol { parts.append("subprotocol \(safe(subprotocol))") }
            if let extensions = websocket.extensions { parts.append("extensions \(safe(extensions.joined(separator: ", ")))") }
        }
        return parts.joined(separator: ", ")
    }

    private func frameText(_ frame: FrameRecord) -> String {
        let header = frame.header
        let arrow = frame.direction == .clientToServer ? "→" : "←"
        var flags: [String] = []
        if !header.fin { flags.append("more") }
        if header.rsv != 0 { flags.append("rsv=\(header.rsv)") }
        if header.masked { flags.append("masked") }
        let name = header.opcode.description
        let type = name + String(repeating: " ", count: max(0, 12 - name.count))
        var text = "\(arrow) \(type) \(TextPreview.byteCount(header.payloadLength))"
        if !flags.isEmpty { text += " [\(flags.joined(separator: " "))]" }
        if let close = frame.close {
            text += "  code \(close.code?.description ?? "none")"
            if !close.reason.isEmpty { text += " " + quote(close.reason) }
        } else if !frame.payload.isEmpty {
            let isPingOrPong = header.opcode == .ping || header.opcode == .pong
            let asText = (frame.carriesText && !header.rsv1) || (isPingOrPong && UTF8Validation.isValid(frame.payload))
            text += "  " + TextPreview.quoted(frame.payload, asText: asText)
        }
        return text
    }

    private func quote(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { TextPreview.quoted($0, asText: true) }
    }

    private func messageText(_ record: MessageRecord) -> String {
        let message = record.message
        let arrow = record.direction == .clientToServer ? "→" : "←"
        var text = "\(arrow) message \(message.opcode) \(TextPreview.byteCount(message.payload.count)) in \(message.frameCount) frame(s)"
        if message.compressed { text += ", compressed" }
        if !message.isComplete { text += ", INCOMPLETE" }
        guard message.isDecoded else { return text + ", NOT DECODED" }
        let asText = message.opcode == .text && message.isValidUTF8 == true
        return text + "  " + TextPreview.quoted(message.payload, asText: asText)
    }
}

/// The summary block shared by the text timeline and `--format summary`.
public enum SummaryText {
    public static func render(_ summary: CaptureSummary) -> String {
        var lines = ["", "── summary ──"]
        var packetLine = "packets \(summary.packets) (\(TextPreview.byteCount(summary.capturedBytes)))"
        if let first = summary.firstPacketTime, let last = summary.lastPacketTime {
            packetLine += " over \(TextPreview.relativeTime(last, since: first).trimmingOptionalWhitespace()) s"
        }
        packetLine += ", TCP segments \(summary.tcp.segments)"
        lines.append(packetLine)
        if !summary.skippedPackets.isEmpty { lines.append("not analysed: " + counts(summary.skippedPackets)) }
        if summary.ipFragments > 0 {
            lines.append("IP fragments \(summary.ipFragments): \(summary.ipDatagramsReassembled) datagrams reassembled, \(summary.ipDatagramsIncomplete) incomplete")
        }
        if summary.snaplenTruncatedPackets > 0 {
            lines.append("packets cut by snaplen: \(summary.snaplenTruncatedPackets)")
        }
        let tcp = summary.tcp
        if tcp.missingBytes > 0 || tcp.outOfOrderSegments > 0 || tcp.retransmittedBytes > 0 {
            lines.append("TCP: \(tcp.outOfOrderSegments) out-of-order segments, \(TextPreview.byteCount(tcp.retransmittedBytes)) retransmitted, \(TextPreview.byteCount(tcp.missingBytes)) missing")
        }
        lines.append("connections \(summary.connections)" + (summary.connections > 0 ? ": " + counts(summary.connectionsByProtocol) : ""))
        lines.append("upgrades: " + (summary.upgradesByOutcome.isEmpty ? "none" : counts(summary.upgradesByOutcome)))
        lines.append("frames \(summary.frames)" + (summary.frames > 0 ? ": " + counts(summary.framesByType) : "")
            + ", \(TextPreview.byteCount(summary.framePayloadBytes)) payload")
        lines.append("messages \(summary.messages)" + (summary.messages > 0 ? ": " + counts(summary.messagesByType) : "")
            + ", \(TextPreview.byteCount(summary.messagePayloadBytes))")
        lines.append("issues \(summary.issues)" + (summary.issues > 0 ? ": " + counts(summary.issuesByCode) : ""))
        if let damage = summary.captureDamage { lines.append("capture damaged: \(damage)") }
        if let live = summary.live {
            lines.append("packets received \(live.received), dropped by kernel \(live.droppedByKernel), "
                + "dropped by interface \(live.droppedByInterface), dropped by wstap \(live.droppedByWstap)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func counts(_ values: [String: UInt64]) -> String {
        values.keys.sorted().map { "\($0) \(values[$0] ?? 0)" }.joined(separator: ", ")
    }
}

/// Writes only the summary (`--format summary`): the fastest way through a capture.
public final class SummaryExporter: TimelineSink {
    private let output: OutputChannel

    public init(output: OutputChannel) { self.output = output }

    public var receivesFramesAndMessages: Bool { false }

    public func receive(_ event: TimelineEvent) {}

    public func finish(_ summary: CaptureSummary) {
        output.write(SummaryText.render(summary).dropFirst().description)
        output.flush()
    }
}
