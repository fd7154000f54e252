/// Follows one TCP connection through the HTTP and WebSocket stages.
final class ConnectionAnalyzer: TCPStreamHandler {
    private var record: ConnectionRecord
    private unowned let analyzer: Analyzer
    private var opened = false
    private var sawData = false
    /// The TCP layer guessed client and server the wrong way round; flip its directions.
    private var rolesSwapped = false
    private var http = HTTPConversation()
    private var pendingUpgrade: UpgradeExchange?
    private var websocket: [WebSocketStreamDecoder]?
    /// The handshake of the 101 that is about to switch the connection.
    private var pendingWebSocketHandshake: WebSocketHandshake?
    private var handshakeFailed = false
    private var reportedFramesAfterFailure = [false, false]
    /// The direction carries text: a fragmented text message is open.
    private var textMessageOpen = [false, false]
    private var protocolKind = ConnectionProtocol.unknown
    private var totals = ConnectionTotals()
    private var reportedSnaplenCut = false
    private var eventTime = CaptureTimestamp.zero

    init(record: ConnectionRecord, analyzer: Analyzer) {
        self.record = record
        self.analyzer = analyzer
    }

    private func emit(_ event: TimelineEvent) {
        if !opened {
            opened = true
            analyzer.sink.receive(.connectionOpened(record))
        }
        analyzer.sink.receive(event)
    }

    private func report(_ issue: Issue) {
        if !opened {
            opened = true
            analyzer.sink.receive(.connectionOpened(record))
        }
        analyzer.record(issue, connection: record)
    }

    // MARK: TCP stream

    func receive(_ bytes: UnsafeRawBufferPointer, direction tcpDirection: StreamDirection, at time: CaptureTimestamp) {
        if !sawData {
            sawData = true
            orientFromFirstBytes(bytes, direction: tcpDirection)
        }
        let direction = rolesSwapped ? tcpDirection.reversed : tcpDirection
        eventTime = time
        if let websocket, http.hasSwitched {
            totals.payloadBytes[direction.rawValue] &+= UInt64(bytes.count)
            websocket[direction.rawValue].receive(bytes) { handle($0, direction: direction) }
            return
        }
        http.receive(bytes, direction: direction) { handle($0) }
    }

    func missing(_ range: MissingRange, direction tcpDirection: StreamDirection, at time: CaptureTimestamp) {
        let direction = rolesSwapped ? tcpDirection.reversed : tcpDirection
        eventTime = time
        totals.missingBytes[direction.rawValue] &+= range.byteCount
        switch range.cause {
        case .notCaptured:
            report(.tcpGap(range, time: time, direction: direction))
        case .cutBySnaplen:
            if !reportedSnaplenCut {
                reportedSnaplenCut = true
                report(.snaplenTruncated(bytes: range.byteCount, time: time, direction: direction))
            }
        }
        let byteCount = range.byteCount
        if let websocket, http.hasSwitched {
            websocket[direction.rawValue].missing(byteCount: byteCount) { handle($0, direction: direction) }
            return
        }
        http.missing(byteCount: byteCount, direction: direction) { handle($0) }
    }

    func conflictingRetransmission(startSequence: UInt32, byteCount: Int, direction tcpDirection: StreamDirection, at time: CaptureTimestamp) {
        let direction = rolesSwapped ? tcpDirection.reversed : tcpDirection
        report(.retransmissionConflict(sequence: startSequence, bytes: byteCount, time: time, direction: direction))
    }

    func finished(direction: StreamDirection, at time: CaptureTimestamp) {}

    func closed(reason: ConnectionEndReason, at time: CaptureTimestamp) {
        if var exchange = pendingUpgrade {
            pendingUpgrade = nil
            exchange.outcome = .incomplete
            if exchange.websocket != nil {
                exchange.websocket = HandshakeValidator.validate(request: exchange.request, response: nil).0
            }
            countUpgrade(exchange)
            emit(.upgrade(record, exchange))
        }
        guard opened || sawData else { return }
        analyzer.summary.connectionsByProtocol[protocolKind.rawValue, default: 0] &+= 1
        emit(.connectionClosed(record, ConnectionEnd(time: time, reason: reason, protocolKind: protocolKind, totals: totals)))
    }

    /// Without a captured SYN the TCP layer guesses roles by port; the first HTTP bytes settle it.
    private func orientFromFirstBytes(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection) {
        guard !record.tcpHandshakeSeen else { return }
        let prefix = Array(bytes.prefix(8))
        let looksLikeRequest = prefix.count >= 4 && HTTPConversation.startsLikeHTTP(prefix, direction: .clientToServer)
            && !prefix.starts(with: Array("HTTP/".utf8))
        let looksLikeResponse = prefix.starts(with: Array("HTTP/1.".utf8))
        if (direction == .serverToClient && looksLikeRequest) || (direction == .clientToServer && looksLikeResponse) {
            rolesSwapped = true
            swap(&record.client, &record.server)
        }
    }

    // MARK: HTTP events

    private func handle(_ event: HTTPEvent) {
        switch event {
        case .request(let head, let offered):
            if protocolKind == .unknown { protocolKind = .http }
            emit(.httpRequest(record, eventTime, head))
            if let offered {
                pendingUpgrade = UpgradeExchange(
                    request: head, requestTime: eventTime, response: nil, responseTime: nil,
                    offeredProtocols: offered, selectedProtocol: nil, websocket: nil, outcome: .incomplete)
            }
        case .response(let head, _, let offered):
            if protocolKind == .unknown { protocolKind = .http }
            emit(.httpResponse(record, eventTime, head))
            if offered != nil, head.status == 101 || head.status >= 200 { answerUpgrade(head) }
        case .switched(let selected):
            startUpgradedProtocol(selected)
        case .upgradedBytes(let bytes, let direction):
            if let websocket {
                totals.payloadBytes[direction.rawValue] &+= UInt64(bytes.count)
                websocket[direction.rawValue].receive(bytes) { handle($0, direction: direction) }
            } else {
                totals.upgradedBytes[direction.rawValue] &+= UInt64(bytes.count)
            }
        case .upgradedGap(let count, let direction):
            websocket?[direction.rawValue].missing(byteCount: count) { handle($0, direction: direction) }
        case .violation(let violation, let direction):
            report(Issue(violation, time: eventTime, direction: direction))
        case .notHTTP:
            break
        }
    }

    private func answerUpgrade(_ response: HTTPResponseHead) {
        guard var exchange = pendingUpgrade else { return }
        pendingUpgrade = nil
        exchange.response = response
        exchange.responseTime = eventTime
        let selected = response.status == 101 ? response.headers.tokens("Upgrade").last : nil
        exchange.selectedProtocol = selected
        exchange.outcome = response.status == 101 ? .upgraded : .rejected
        let offersWebSocket = exchange.offeredProtocols.contains { $0.caseInsensitiveEquals("websocket") }
        let selectsOther = selected.map { !$0.caseInsensitiveEquals("websocket") } ?? false
        if offersWebSocket, !selectsOther {
            let (handshake, violations) = HandshakeValidator.validate(request: exchange.request, response: response)
            exchange.websocket = handshake
            if response.status == 101, violations.contains(where: \.failsConnection) {
                exchange.outcome = .failed
                handshakeFailed = true
            }
            violations.forEach { report(Issue($0, time: eventTime)) }
        }
        countUpgrade(exchange)
        emit(.upgrade(record, exchange))
        if response.status == 101 {
            pendingWebSocketHandshake = exchange.websocket
        }
    }

    private func countUpgrade(_ exchange: UpgradeExchange) {
        analyzer.summary.upgradesByOutcome[exchange.outcome.rawValue, default: 0] &+= 1
        if let selected = exchange.selectedProtocol {
            analyzer.summary.upgradesByProtocol[selected.lowercased(), default: 0] &+= 1
        }
    }

    private func startUpgradedProtocol(_ selected: String?) {
        let isWebSocket = selected.map { $0.caseInsensitiveEquals("websocket") } ?? false
        guard isWebSocket, let handshake = pendingWebSocketHandshake else {
            protocolKind = .otherUpgrade
            return
        }
        protocolKind = .websocket
        let limit = analyzer.options.maxPayloadBytes
        let bits = handshake.allowedReservedBits
        let (compression, violations) = MessageCompression.from(handshake)
        violations.forEach { report(Issue($0, time: eventTime)) }
        if case .unsupported(let name) = compression { report(.unsupportedExtension(name, time: eventTime)) }
        websocket = [
            WebSocketStreamDecoder(role: .client, allowedReservedBits: bits, compression: compression, maxPayloadBytes: limit),
            WebSocketStreamDecoder(role: .server, allowedReservedBits: bits, compression: compression, maxPayloadBytes: limit),
        ]
    }

    // MARK: WebSocket events

    private func handle(_ event: WebSocketEvent, direction: StreamDirection) {
        switch event {
        case .frame(let frame, let close):
            if handshakeFailed, !reportedFramesAfterFailure[direction.rawValue] {
                reportedFramesAfterFailure[direction.rawValue] = true
                report(.framesAfterFailedHandshake(time: eventTime, direction: direction))
            }
            let opcode = frame.header.opcode
            let carriesText = opcode == .text || (opcode == .continuation && textMessageOpen[direction.rawValue])
            if !opcode.isControl, !opcode.isReserved {
                if opcode != .continuation { textMessageOpen[direction.rawValue] = opcode == .text }
                if frame.header.fin { textMessageOpen[direction.rawValue] = false }
            }
            totals.frames[direction.rawValue] &+= 1
            analyzer.summary.framesByType[opcode.description, default: 0] &+= 1
            analyzer.summary.framePayloadBytes &+= frame.header.payloadLength
            emit(.frame(record, FrameRecord(
                time: eventTime, direction: direction, header: frame.header, payload: frame.payload,
                bytesNotKept: frame.bytesNotKept, bytesMissing: frame.bytesMissing, close: close,
                carriesText: carriesText)))
        case .message(let message):
            totals.messages[direction.rawValue] &+= 1
            analyzer.summary.messagesByType[message.opcode.description, default: 0] &+= 1
            analyzer.summary.messagePayloadBytes &+= UInt64(message.payload.count)
            emit(.message(record, MessageRecord(time: eventTime, direction: direction, message: message)))
        case .violation(let violation):
            report(Issue(violation, time: eventTime, direction: direction))
        }
    }
}
