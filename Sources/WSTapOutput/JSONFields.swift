import WSTap
import WSTapCore
/// The fields of each timeline record, shared by the JSON and NDJSON formats (docs/json-format.md).
extension OutputBuffer {
    /// `"time":…,"packet":N`: when, and the number of the packet it came from (Wireshark's frame
    /// number; null when no packet made it).
    @inline(__always)
    func timeAndPacket(_ timestamp: CaptureTimestamp?) {
        raw("\"time\":"); time(timestamp)
        withRoom(.literal(",\"packet\":") + .number) { room in
            room.raw(",\"packet\":")
            if let timestamp, timestamp.packet > 0 { room.number(timestamp.packet) } else { room.raw("null") }
        }
    }

    func endpoint(_ endpoint: Endpoint) {
        raw("{\"ip\":")
        string(endpoint.address.description)
        raw(",\"port\":")
        number(endpoint.port)
        raw("}")
    }

    @inline(__always)
    func direction(_ direction: StreamDirection?) {
        withRoom(.direction) { $0.direction(direction) }
    }

    func headers(_ headers: HTTPHeaders) {
        raw("[")
        for (index, header) in headers.lines.enumerated() {
            if index > 0 { comma() }
            raw("{\"name\":")
            string(header.name)
            raw(",\"value\":")
            string(header.value)
            bytesUnlessUTF8("value_base64", header.valueBytes)
            raw("}")
        }
        raw("]")
    }

    /// Payload, with `truncated` when `maxPayload` or the decoder's limit cut it. A frame's text
    /// is kept in `textCache` (or the cache cleared); a message that is that frame's payload
    /// (`reusesFrameText`) copies it instead of escaping it again.
    private func payloadFields(
        _ payload: UnsafeRawBufferPointer, asText: Bool, notKept: Bool, maxPayload: Int?,
        textCache: FrameTextCache?, isFrame: Bool, reusesFrameText: Bool = false
    ) {
        var shown = payload
        var truncated = notKept
        if let maxPayload, payload.count > maxPayload {
            shown = UnsafeRawBufferPointer(rebasing: payload[0..<maxPayload])
            truncated = true
        }
        // A cut can split a UTF-8 sequence: fall back to base64 rather than emit invalid text.
        let text = asText && (shown.count == payload.count || UTF8Validation.isValid(shown))
        key("payload")
        if text, let textCache {
            raw("{\"text\":")
            if reusesFrameText, textCache.holds(byteCount: shown.count) {
                append(textCache.escaped)
            } else {
                let start = count
                string(utf8: shown)
                if isFrame { textCache.keep(byteCount: shown.count, escaped: self, since: start) }
            }
            append(UInt8(ascii: "}"))
        } else {
            if isFrame { textCache?.clear() }
            self.payload(shown, asText: text)
        }
        if truncated {
            raw(",\"truncated\":true")
        }
    }

    func frameFields(_ frame: FrameRecord, at time: CaptureTimestamp?, maxPayload: Int?, textCache: FrameTextCache? = nil) {
        let header = frame.header
        timeAndPacket(time)
        withRoom(
            .literal(",\"dir\":") + .direction + .literal(",\"fin\":") + .bool + .literal(",\"rsv\":") + .smallNumber
                + .literal(",\"opcode\":") + .smallNumber + .literal(",\"type\":") + .opcodeType
                + .literal(",\"masked\":") + .bool + .literal(",\"mask\":") + .hex32 + .literal(",\"length\":") + .number
                + .byte
        ) { room in
            room.raw(",\"dir\":"); room.direction(frame.direction)
            room.raw(",\"fin\":"); room.bool(header.fin)
            room.raw(",\"rsv\":"); room.number(header.rsv)
            room.raw(",\"opcode\":"); room.number(header.opcode.rawValue)
            room.raw(",\"type\":"); room.opcodeType(header.opcode)
            room.raw(",\"masked\":"); room.bool(header.masked)
            room.raw(",\"mask\":")
            if let key = header.maskingKey { room.hex32(key) } else { room.raw("null") }
            room.raw(",\"length\":"); room.number(header.payloadLength)
            room.byte(UInt8(ascii: ","))
        }
        payloadFields(frame.payload, asText: PayloadText.isJSONString(frame), notKept: frame.bytesNotKept > 0, maxPayload: maxPayload,
                      textCache: textCache, isFrame: true)
        if frame.bytesMissing > 0 {
            raw(",\"missing_bytes\":"); number(frame.bytesMissing)
        }
        if !frame.gaps.isEmpty { raw(",\"missing\":"); gapList(frame.gaps) }
        raw(",\"close\":"); closeFields(frame.close)
    }

    func messageFields(_ record: MessageRecord, at time: CaptureTimestamp?, maxPayload: Int?, textCache: FrameTextCache? = nil) {
        let message = record.message
        timeAndPacket(time)
        withRoom(
            .literal(",\"dir\":") + .direction + .literal(",\"opcode\":") + .smallNumber + .literal(",\"type\":") + .opcodeType
                + .literal(",\"length\":") + .number + .literal(",\"frames\":") + .number + .literal(",\"compressed\":") + .bool
                + .literal(",\"complete\":") + .bool + .literal(",\"valid_utf8\":") + .bool + .literal(",\"decoded\":") + .bool
        ) { room in
            room.raw(",\"dir\":"); room.direction(record.direction)
            room.raw(",\"opcode\":"); room.number(message.opcode.rawValue)
            room.raw(",\"type\":"); room.opcodeType(message.opcode)
            room.raw(",\"length\":"); room.number(UInt64(message.payload.count))
            room.raw(",\"frames\":"); room.number(UInt64(message.frameCount))
            room.raw(",\"compressed\":"); room.bool(message.compressed)
            room.raw(",\"complete\":"); room.bool(message.isComplete)
            if let valid = message.isValidUTF8 {
                room.raw(",\"valid_utf8\":"); room.bool(valid)
            }
            room.raw(",\"decoded\":"); room.bool(message.isDecoded)
        }
        if !message.gaps.isEmpty { raw(",\"missing\":"); gapList(message.gaps) }
        guard message.isDecoded else {
            // Never show compressed bytes as if they were the message.
            raw(",\"payload\":null")
            return
        }
        comma()
        payloadFields(message.payload, asText: PayloadText.isJSONString(record), notKept: false, maxPayload: maxPayload,
                      textCache: textCache, isFrame: false, reusesFrameText: message.isFramePayload)
    }

    /// `,"stream":N` for an event of one stream of a connection that carries several; nothing
    /// for the connection's own events.
    @inline(__always)
    func streamField(_ stream: StreamID?) {
        guard let stream else { return }
        raw(",\"stream\":"); number(UInt64(stream.rawValue))
    }

    /// An application message's fields (docs/json-format.md, "Application messages"): its
    /// protocol, type and direction, the WebSocket messages it came from, then the protocol's own
    /// fields as they are.
    func applicationFields(_ message: ApplicationMessage, at time: CaptureTimestamp?) {
        timeAndPacket(time)
        raw(",\"dir\":"); direction(message.direction)
        raw(",\"protocol\":"); string(message.protocolName)
        raw(",\"type\":"); string(message.type)
        raw(",\"detection\":"); string(message.detection.rawValue)
        raw(",\"messages\":[")
        for number in message.messages {
            if number > message.messages.lowerBound { comma() }
            self.number(number)
        }
        raw("]")
        for field in message.fields {
            comma(); string(field.name); raw(":"); applicationValue(field.value)
        }
    }

    /// A generic value as JSON. Nesting is as deep as the decoder built it (decoders bound it).
    func applicationValue(_ value: ApplicationValue) {
        switch value {
        case .null: raw("null")
        case .bool(let flag): bool(flag)
        case .integer(let integer): number(integer)
        case .string(let text): string(text)
        case .bytes(let bytes): raw("{\"base64\":"); bytes.withUnsafeBytes { base64String($0) }; raw("}")
        case .json(let text): text.withUnsafeBytes { append($0) }
        case .list(let values):
            raw("[")
            for (index, element) in values.enumerated() {
                if index > 0 { comma() }
                applicationValue(element)
            }
            raw("]")
        case .object(let fields):
            raw("{")
            for (index, field) in fields.enumerated() {
                if index > 0 { comma() }
                string(field.name); raw(":"); applicationValue(field.value)
            }
            raw("}")
        }
    }

    /// A stream's end: `"stream":N,"end_time":…,"reason":…,"protocol":…,"websocket_detection":…,"totals":{…}`.
    func streamEndFields(_ end: StreamEnd, stream: StreamID?) {
        raw("\"stream\":"); number(UInt64(stream?.rawValue ?? 0))
        raw(",\"end_time\":"); time(end.time)
        raw(",\"reason\":"); string(end.reason)
        raw(",\"protocol\":"); string(end.protocolKind.rawValue)
        raw(",\"websocket_detection\":"); string(end.websocketDetection?.rawValue)
        comma(); endingFields(end.ending, start: end.start, end: end.time)
        raw(",\"tls\":")
        if let tls = end.tls { tlsFields(tls) } else { raw("null") }
        raw(",\"totals\":{"); totalsFields(end.totals); raw("}")
    }

    /// How a connection (or stream) ended (docs/json-format.md, "Outcomes"): `"outcome"`,
    /// `"tcp_end"`, `"duration"` and, for WebSocket, `"closed_by"`, `"close"` (each side's first
    /// Close), `"effective_close_code"`, `"close_handshake_completed"` and `"unanswered_pings"`.
    func endingFields(_ ending: ConnectionEnding, start: CaptureTimestamp, end: CaptureTimestamp) {
        raw("\"outcome\":"); string(ending.outcome.rawValue)
        raw(",\"tcp_end\":"); string(ending.tcpEnd.rawValue)
        raw(",\"duration\":"); seconds(end.nanoseconds(since: start))
        guard let closing = ending.websocket else {
            return raw(",\"closed_by\":null,\"close\":null,\"effective_close_code\":null,\"close_handshake_completed\":null,\"unanswered_pings\":null")
        }
        raw(",\"closed_by\":"); string(closing.closedFirst.rawValue)
        raw(",\"close\":{\"c2s\":"); closeFields(closing.closes.clientToServer)
        raw(",\"s2c\":"); closeFields(closing.closes.serverToClient)
        raw("},\"effective_close_code\":"); number(UInt64(closing.effectiveCode))
        raw(",\"close_handshake_completed\":"); bool(closing.handshakeCompleted)
        raw(",\"unanswered_pings\":{\"c2s\":"); number(closing.unansweredPings.clientToServer)
        raw(",\"s2c\":"); number(closing.unansweredPings.serverToClient); raw("}")
    }

    /// `{"code": N|null, "reason": "…"}` for a Close frame's body, or `null`.
    func closeFields(_ close: CloseFrameBody?) {
        guard let close else { return raw("null") }
        raw("{\"code\":"); number(close.code?.rawValue)
        raw(",\"reason\":")
        if close.reasonIsValidUTF8 {
            close.reason.withUnsafeBytes { string(utf8: $0) }
        } else {
            string(String(decoding: close.reason, as: UTF8.self))
            raw(",\"reason_valid_utf8\":false")
        }
        raw("}")
    }

    /// Seconds with nine decimals, from nanoseconds (negative ones, from clocks that went back, as 0).
    func seconds(_ nanoseconds: Int64) {
        let value = UInt64(max(0, nanoseconds))
        number(value / 1_000_000_000)
        withRoom(.byte + .nanosecondDigits) { room in
            room.byte(UInt8(ascii: "."))
            room.digits(value % 1_000_000_000, width: 9)
        }
    }

    func issueFields(_ issue: Issue) {
        timeAndPacket(issue.time)
        raw(",\"dir\":"); direction(issue.direction)
        raw(",\"severity\":"); string(issue.severity.rawValue)
        raw(",\"code\":"); string(issue.code)
        raw(",\"detail\":"); string(issue.detail)
    }

    func requestFields(_ head: HTTPRequestHead, time requestTime: CaptureTimestamp?) {
        timeAndPacket(requestTime)
        raw(",\"method\":"); string(head.method)
        raw(",\"target\":"); string(head.target)
        bytesUnlessUTF8("target_base64", head.targetBytes)
        raw(",\"version\":"); string(head.version)
        bytesUnlessUTF8("version_base64", head.versionBytes)
        raw(",\"headers\":"); headers(head.headers)
    }

    /// `,"NAME_base64":"…"` when a field's bytes are not UTF-8 (its string shows U+FFFD).
    private func bytesUnlessUTF8(_ name: StaticString, _ bytes: [UInt8]?) {
        guard let bytes else { return }
        raw(","); key(name)
        bytes.withUnsafeBytes { base64String($0) }
    }

    func responseFields(_ head: HTTPResponseHead, time responseTime: CaptureTimestamp?) {
        timeAndPacket(responseTime)
        raw(",\"status\":"); number(head.status)
        raw(",\"reason\":"); string(head.reason)
        bytesUnlessUTF8("reason_base64", head.reasonBytes)
        raw(",\"version\":"); string(head.version)
        bytesUnlessUTF8("version_base64", head.versionBytes)
        raw(",\"headers\":"); headers(head.headers)
    }

    /// `[{"offset": …, "length": …}, …]`: where bytes are missing, as offsets in the payload as sent.
    func gapList(_ gaps: UnsafeBufferPointer<PayloadGap>) {
        append(UInt8(ascii: "["))
        for (index, gap) in gaps.enumerated() {
            raw(index == 0 ? "{\"offset\":" : ",{\"offset\":"); number(gap.offset)
            raw(",\"length\":"); number(gap.length); raw("}")
        }
        append(UInt8(ascii: "]"))
    }

    /// The start of an answer's body: text when it is UTF-8, else base64; `truncated` when cut.
    func answerBodyFields(_ body: HTTPBodyPreview, time bodyTime: CaptureTimestamp?) {
        timeAndPacket(bodyTime)
        raw(",\"length\":"); number(body.length)
        raw(",\"complete\":"); bool(body.isComplete)
        if body.missingBytes > 0 { raw(",\"missing_bytes\":"); number(body.missingBytes) }
        raw(",\"body\":")
        body.bytes.withUnsafeBytes { payload($0, asText: PayloadText.isText($0)) }
        raw(",\"truncated\":"); bool(body.length > UInt64(body.bytes.count))
    }

    func upgradeFields(_ exchange: UpgradeExchange) {
        timeAndPacket(exchange.time)
        raw(",\"request\":{"); requestFields(exchange.request, time: exchange.requestTime); raw("}")
        raw(",\"response\":")
        if let response = exchange.response {
            raw("{"); responseFields(response, time: exchange.responseTime); raw("}")
        } else {
            raw("null")
        }
        raw(",\"protocols\":"); stringArray(exchange.offeredProtocols)
        raw(",\"selected\":"); string(exchange.selectedProtocol)
        raw(",\"websocket\":")
        if let websocket = exchange.websocket {
            raw("{\"key\":"); string(websocket.key)
            raw(",\"version\":"); string(websocket.version)
            raw(",\"accept\":"); string(websocket.accept)
            raw(",\"expected_accept\":"); string(websocket.expectedAccept)
            raw(",\"accept_valid\":"); bool(websocket.acceptValid)
            raw(",\"subprotocols_offered\":"); stringArray(websocket.subprotocolsOffered)
            raw(",\"subprotocol\":"); string(websocket.subprotocol)
            raw(",\"extensions_offered\":"); stringArray(websocket.extensionsOffered)
            raw(",\"extensions\":")
            if let accepted = websocket.extensions { string(accepted.joined(separator: ", ")) } else { raw("null") }
            raw(",\"server_versions\":"); stringArray(websocket.serverVersions)
            raw("}")
        } else {
            raw("null")
        }
        raw(",\"outcome\":"); string(exchange.outcome.rawValue)
    }

    /// `{"version", "cipher", "sni", "alpn", "alpn_offered", "decrypted", "reason", "record_bytes"}`.
    func tlsFields(_ session: TLSSession) {
        raw("{\"version\":"); string(session.version)
        raw(",\"cipher\":"); string(session.cipherSuite)
        raw(",\"sni\":"); string(session.serverName)
        raw(",\"alpn\":"); string(session.alpn)
        raw(",\"alpn_offered\":[")
        for (index, name) in session.alpnOffered.enumerated() {
            if index > 0 { comma() }
            string(name)
        }
        raw("],\"decrypted\":"); bool(session.decrypted)
        raw(",\"reason\":"); string(session.reason)
        raw(",\"record_bytes\":{\"c2s\":"); number(session.recordBytes.clientToServer)
        raw(",\"s2c\":"); number(session.recordBytes.serverToClient)
        raw("}}")
    }

    func totalsFields(_ totals: ConnectionTotals) {
        for (name, values) in [("payload_bytes", totals.payloadBytes), ("frames", totals.frames),
                               ("messages", totals.messages), ("upgraded_bytes", totals.upgradedBytes),
                               ("missing_bytes", totals.missingBytes)] {
            if name != "payload_bytes" { comma() }
            string(name)
            raw(":{\"c2s\":"); number(values[0])
            raw(",\"s2c\":"); number(values[1])
            raw("}")
        }
    }

    func summaryFields(_ summary: CaptureSummary) {
        key("packets"); number(summary.packets)
        raw(",\"captured_bytes\":"); number(summary.capturedBytes)
        raw(",\"first_time\":"); time(summary.firstPacketTime)
        raw(",\"last_time\":"); time(summary.lastPacketTime)
        raw(",\"skipped_packets\":"); counters(summary.skippedPackets)
        raw(",\"snaplen_truncated_packets\":"); number(summary.snaplenTruncatedPackets)
        raw(",\"ip_fragments\":{\"fragments\":"); number(summary.ipFragments)
        raw(",\"reassembled\":"); number(summary.ipDatagramsReassembled)
        raw(",\"incomplete\":"); number(summary.ipDatagramsIncomplete)
        raw("}")
        let tcp = summary.tcp
        raw(",\"tcp\":{\"segments\":"); number(tcp.segments)
        raw(",\"connections\":"); number(tcp.connections)
        raw(",\"out_of_order_segments\":"); number(tcp.outOfOrderSegments)
        raw(",\"retransmitted_bytes\":"); number(tcp.retransmittedBytes)
        raw(",\"conflicting_retransmissions\":"); number(tcp.conflictingRetransmissions)
        raw(",\"missing_bytes\":"); number(tcp.missingBytes)
        raw(",\"segments_after_close\":"); number(tcp.segmentsAfterClose)
        raw(",\"segments_without_connection\":"); number(tcp.segmentsWithoutConnection)
        raw("},\"connections\":"); counters(summary.connectionsByProtocol)
        raw(",\"outcomes\":"); counters(summary.connectionsByOutcome)
        raw(",\"upgrades\":"); counters(summary.upgradesByOutcome)
        raw(",\"upgrade_protocols\":"); counters(summary.upgradesByProtocol)
        raw(",\"frames\":"); counters(summary.framesByType)
        raw(",\"messages\":"); counters(summary.messagesByType)
        raw(",\"frame_payload_bytes\":"); number(summary.framePayloadBytes)
        raw(",\"message_payload_bytes\":"); number(summary.messagePayloadBytes)
        raw(",\"issues\":"); counters(summary.issuesByCode)
        raw(",\"tls\":{\"connections\":"); counters(summary.tlsConnections)
        raw(",\"record_bytes\":"); number(summary.tlsRecordBytes); raw("}")
        raw(",\"capture_damage\":"); string(summary.captureDamage)
        raw(",\"key_log\":")
        if let keyLog = summary.keyLog {
            raw("{\"path\":"); string(keyLog.path)
            raw(",\"source\":"); string(keyLog.source)
            raw(",\"connections\":"); number(keyLog.connections); raw("}")
        } else {
            raw("null")
        }
        if let live = summary.live {
            raw(",\"live\":{\"received\":"); number(live.received)
            raw(",\"dropped_by_kernel\":"); number(live.droppedByKernel)
            raw(",\"dropped_by_interface\":"); number(live.droppedByInterface)
            raw(",\"dropped_by_wstap\":"); number(live.droppedByWstap)
            raw("}")
        }
    }
}

/// The escaped text of the frame written last. A message of one uncompressed frame is emitted
/// right after its frame and says so (`WebSocketMessage.isFramePayload`), so its text is copied
/// from here rather than escaped twice. Every frame replaces or clears the entry: a message can
/// only match the frame written just before it.
final class FrameTextCache {
    /// Bytes of the frame whose text is kept; nil when the last frame kept none.
    private var byteCount: Int?
    let escaped = OutputBuffer()

    func holds(byteCount count: Int) -> Bool { byteCount == count }

    func keep(byteCount count: Int, escaped rendered: OutputBuffer, since start: Int) {
        byteCount = count
        escaped.removeAll()
        rendered.withBytes { escaped.append(UnsafeRawBufferPointer(rebasing: $0[start...])) }
    }

    func clear() { byteCount = nil }
}

extension ReservedRoom {
    /// `"c2s"`, `"s2c"` or `null` (at most 5 bytes).
    @inline(__always)
    mutating func direction(_ direction: StreamDirection?) {
        switch direction {
        case .clientToServer: raw("\"c2s\"")
        case .serverToClient: raw("\"s2c\"")
        case nil: raw("null")
        }
    }

    /// The opcode's name as a JSON string (`"text"`, `"reserved-3"`).
    @inline(__always)
    mutating func opcodeType(_ opcode: WebSocketOpcode) {
        byte(UInt8(ascii: "\""))
        opcodeName(opcode)
        byte(UInt8(ascii: "\""))
    }
}
