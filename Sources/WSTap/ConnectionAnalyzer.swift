/// Follows one TCP connection through the HTTP and WebSocket stages.
final class ConnectionAnalyzer: TCPStreamHandler {
    private enum Mode {
        /// HTTP/1.x until an upgrade switches; then `websocket` decoders or opaque bytes.
        case http
        /// The handshake was not captured: frames are searched for in both directions.
        case websocketWithoutHandshake(WebSocketDetection)
        /// Neither HTTP nor recognised WebSocket: bytes are counted only.
        case opaque
    }

    private var record: ConnectionRecord
    /// The analyzer owns the connection table that owns this object, so it always outlives it.
    private unowned(unsafe) let analyzer: Analyzer
    /// The analyzer's sink. Held strongly: a constant of this object is used without
    /// reference counting, an `unowned(unsafe)` one is retained around every call.
    private let sink: any TimelineSink
    private let emitsFramesAndMessages: Bool
    private var opened = false
    private var sawData = false
    private var mode = Mode.http
    /// The TCP layer guessed client and server the wrong way round; flip its directions.
    private var rolesSwapped = false
    private var http = HTTPConversation()
    /// A 101 switched the connection (kept here: asking `http` would copy it on every packet).
    private var switched = false
    /// The Upgrade offer waiting for its answer (out of line, like the next: few connections set
    /// them, and inline they were more than half of every connection's memory).
    @OutOfLine private var pendingUpgrade: UpgradeExchange?
    /// The handshake of the 101 that is about to switch the connection.
    @OutOfLine private var pendingWebSocketHandshake: WebSocketHandshake?
    /// One decoder per TCP direction (index `StreamDirection.rawValue` as the TCP layer sees it).
    private var websocket: [WebSocketStreamDecoder]?
    private var detection: WebSocketDetection?
    /// Decoders are searching for frames; once found, the connection is WebSocket by this means.
    private var pendingDetection: WebSocketDetection?
    /// The heads of the exchange that switched were cut: the selected protocol may be unknown.
    private var switchHeadsCut = false
    /// Per TCP direction: frames were found at least once (the first find is no resynchronisation).
    private var synchronizedOnce = DirectionPair(false)
    private var handshakeFailed = false
    private var reportedFramesAfterFailure = DirectionPair(false)
    /// A fragmented text message is open, per analyzer direction.
    private var textMessageOpen = DirectionPair(false)
    private var protocolKind = ConnectionProtocol.unknown
    private var totals = ConnectionTotals()
    private var reportedSnaplenCut = false
    /// A head of the current exchange was cut by missing bytes: its handshake cannot be judged.
    private var headCut = false
    private var eventTime = CaptureTimestamp.zero

    init(record: ConnectionRecord, analyzer: Analyzer) {
        self.record = record
        self.analyzer = analyzer
        sink = analyzer.sink
        emitsFramesAndMessages = analyzer.emitsFramesAndMessages
    }

    /// Maps a TCP-layer direction to the analyzer's, and back: the mapping is its own inverse.
    private func direction(_ other: StreamDirection) -> StreamDirection {
        rolesSwapped ? other.reversed : other
    }

    private func emit(_ event: TimelineEvent) {
        openIfNeeded()
        sink.receive(event)
    }

    private func report(_ issue: Issue) {
        openIfNeeded()
        analyzer.record(issue, connection: record)
    }

    private func openIfNeeded() {
        guard !opened else { return }
        opened = true
        sink.receive(.connectionOpened(record))
    }

    // MARK: TCP stream

    func receive(_ bytes: UnsafeRawBufferPointer, direction tcpDirection: StreamDirection, at time: CaptureTimestamp) {
        eventTime = time
        if !sawData {
            sawData = true
            chooseMode(firstBytes: bytes, direction: tcpDirection)
        }
        if switched || isWithoutHandshake, websocket != nil {
            totals.payloadBytes[direction(tcpDirection).rawValue] &+= UInt64(bytes.count)
            decode(bytes, tcpDirection: tcpDirection, at: time)
            if pendingDetection != nil, websocket?.allSatisfy(\.gaveUpSearching) ?? false { giveUpOnWebSocket() }
            return
        }
        switch mode {
        case .http: http.receive(bytes, direction: direction(tcpDirection)) { handle($0) }
        case .opaque, .websocketWithoutHandshake: break
        }
    }

    func missing(_ range: MissingRange, direction tcpDirection: StreamDirection, at time: CaptureTimestamp) {
        let direction = direction(tcpDirection)
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
        if let websocket, switched || isWithoutHandshake {
            let decoder = websocket[tcpDirection.rawValue]
            decoder.missing(
                byteCount: range.byteCount, at: time, reportsPartialFrames: range.cause == .notCaptured
            ) { handle($0, from: decoder, tcpDirection: tcpDirection) }
        } else if case .http = mode {
            http.missing(byteCount: range.byteCount, direction: direction) { handle($0) }
        }
    }

    func conflictingRetransmission(startSequence: UInt32, byteCount: Int, direction tcpDirection: StreamDirection, at time: CaptureTimestamp) {
        report(.retransmissionConflict(sequence: startSequence, bytes: byteCount, time: time, direction: direction(tcpDirection)))
    }

    func finished(direction: StreamDirection, at time: CaptureTimestamp) {}

    func closed(reason: ConnectionEndReason, at time: CaptureTimestamp) {
        eventTime = time
        if let websocket {
            for tcpDirection in StreamDirection.allCases {
                let decoder = websocket[tcpDirection.rawValue]
                decoder.finish(at: time) { handle($0, from: decoder, tcpDirection: tcpDirection) }
            }
        }
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
        emit(.connectionClosed(record, ConnectionEnd(
            time: time, reason: reason, protocolKind: protocolKind, websocketDetection: detection, totals: totals)))
    }

    private var isWithoutHandshake: Bool {
        if case .websocketWithoutHandshake = mode { return true }
        return false
    }

    // MARK: Choosing how to decode

    /// HTTP when the first bytes look like HTTP; otherwise, without a captured TCP handshake (or on
    /// a `--websocket-port`), WebSocket frames are searched for.
    private func chooseMode(firstBytes bytes: UnsafeRawBufferPointer, direction tcpDirection: StreamDirection) {
        let prefix = Array(bytes.prefix(8))
        let looksLikeResponse = prefix.starts(with: Array("HTTP/1.".utf8))
        let looksLikeRequest = prefix.count >= 4 && !looksLikeResponse
            && HTTPConversation.startsLikeHTTP(prefix, direction: .clientToServer)
        let ports = analyzer.options.websocketPorts
        let forcedServer: Endpoint? = ports.contains(record.server.port) ? record.server
            : ports.contains(record.client.port) ? record.client : nil
        if let forcedServer, !looksLikeRequest, !looksLikeResponse {
            if forcedServer != record.server { swapRoles() }
            startWithoutHandshake(.port)
            return
        }
        if record.tcpHandshakeSeen { return }
        if (tcpDirection == .serverToClient && looksLikeRequest) || (tcpDirection == .clientToServer && looksLikeResponse) {
            swapRoles()
        } else if !looksLikeRequest, !looksLikeResponse {
            startWithoutHandshake(.heuristic)
        }
    }

    private func swapRoles() {
        rolesSwapped.toggle()
        // One assignment: swap(&record.client, &record.server) would access `record` twice at once.
        (record.client, record.server) = (record.server, record.client)
    }

    private func startWithoutHandshake(_ how: WebSocketDetection) {
        mode = .websocketWithoutHandshake(how)
        pendingDetection = how
        // Roles are known by port; by heuristic the frames' masking will tell.
        startDecoders(searching: true, rolesKnown: how == .port)
    }

    /// One decoder per TCP direction. Searching decoders do not know the handshake: RSV1 may mean
    /// permessage-deflate, with parameters and window unknown.
    private func startDecoders(
        searching: Bool, rolesKnown: Bool = true, allowedReservedBits: UInt8 = 0b100,
        compression: MessageCompression = .perMessageDeflate(PerMessageDeflateParameters())
    ) {
        let limit = analyzer.options.maxPayloadBytes
        websocket = StreamDirection.allCases.map { tcpDirection in
            let role: WebSocketRole? = rolesKnown ? (direction(tcpDirection) == .clientToServer ? .client : .server) : nil
            return WebSocketStreamDecoder(
                role: role, allowedReservedBits: allowedReservedBits, compression: compression,
                maxPayloadBytes: limit, synchronized: !searching)
        }
    }

    private func giveUpOnWebSocket() {
        mode = .opaque
        websocket = nil
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
            switched = true
            startUpgradedProtocol(selected)
        case .upgradedBytes(let bytes, let direction):
            if websocket != nil {
                totals.payloadBytes[direction.rawValue] &+= UInt64(bytes.count)
                decode(bytes, tcpDirection: self.direction(direction), at: eventTime)
            } else {
                totals.upgradedBytes[direction.rawValue] &+= UInt64(bytes.count)
            }
        case .upgradedBoundaryUnknown(let direction):
            websocket?[self.direction(direction).rawValue].boundaryUnknown()
        case .upgradedGap(let count, let direction):
            let tcpDirection = self.direction(direction)
            if let decoder = websocket?[tcpDirection.rawValue] {
                decoder.missing(byteCount: count, at: eventTime) { handle($0, from: decoder, tcpDirection: tcpDirection) }
            }
        case .violation(let violation, let direction):
            if case .headCut = violation { headCut = true }
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
        let selectsWebSocket = selected.map { $0.caseInsensitiveEquals("websocket") } ?? false
        let offersWebSocket = exchange.offeredProtocols.contains { $0.caseInsensitiveEquals("websocket") }
            || (exchange.offeredProtocols.isEmpty && headCut && selectsWebSocket)
        let selectsOther = selected != nil && !selectsWebSocket
        if offersWebSocket, !selectsOther {
            let (handshake, violations) = HandshakeValidator.validate(request: exchange.request, response: response)
            exchange.websocket = handshake
            // Headers lost to a cut are not the peers' mistakes: judge only complete heads.
            if !headCut {
                if response.status == 101, violations.contains(where: \.failsConnection) {
                    exchange.outcome = .failed
                    handshakeFailed = true
                }
                violations.forEach { report(Issue($0, time: eventTime)) }
            }
        }
        switchHeadsCut = headCut
        headCut = false
        countUpgrade(exchange)
        emit(.upgrade(record, exchange))
        if response.status == 101 { pendingWebSocketHandshake = exchange.websocket }
    }

    private func countUpgrade(_ exchange: UpgradeExchange) {
        analyzer.summary.upgradesByOutcome[exchange.outcome.rawValue, default: 0] &+= 1
        if let selected = exchange.selectedProtocol {
            analyzer.summary.upgradesByProtocol[selected.lowercased(), default: 0] &+= 1
        }
    }

    private func startUpgradedProtocol(_ selected: String?) {
        let isWebSocket = selected.map { $0.caseInsensitiveEquals("websocket") } ?? false
        if selected == nil, switchHeadsCut {
            // Cut heads hide what was selected: look for WebSocket frames in what follows.
            protocolKind = .otherUpgrade
            pendingDetection = .heuristic
            startDecoders(searching: true)
            return
        }
        guard isWebSocket, let handshake = pendingWebSocketHandshake else {
            protocolKind = .otherUpgrade
            return
        }
        protocolKind = .websocket
        detection = .handshake
        let (compression, violations) = MessageCompression.from(handshake)
        violations.forEach { report(Issue($0, time: eventTime)) }
        if case .unsupported(let name) = compression { report(.unsupportedExtension(name, time: eventTime)) }
        startDecoders(searching: false, allowedReservedBits: handshake.allowedReservedBits, compression: compression)
    }

    // MARK: WebSocket events

    /// Hands upgraded bytes to the direction's decoder (call only while decoders exist).
    private func decode(_ bytes: UnsafeRawBufferPointer, tcpDirection: StreamDirection, at time: CaptureTimestamp) {
        // Called without reference counting: this object owns the decoders for the whole call.
        Unmanaged.passUnretained(websocket.unsafelyUnwrapped[tcpDirection.rawValue])._withUnsafeGuaranteedRef { decoder in
            decoder.receive(bytes, at: time) { handle($0, from: decoder, tcpDirection: tcpDirection) }
        }
    }

    private func handle(_ event: WebSocketEvent, from decoder: WebSocketStreamDecoder, tcpDirection: StreamDirection) {
        // Frames found by a search come from bytes held since earlier packets: use their own time.
        eventTime = decoder.currentTime
        switch event {
        case .resynchronized(let skipped, let role):
            resynchronized(skipped: skipped, role: role, tcpDirection: tcpDirection)
        case .frame(let frame, let close):
            let direction = direction(tcpDirection)
            if handshakeFailed, !reportedFramesAfterFailure[direction.rawValue] {
                reportedFramesAfterFailure[direction.rawValue] = true
                report(.framesAfterFailedHandshake(time: eventTime, direction: direction))
            }
            let opcode = frame.header.opcode
            let carriesText = opcode == .text || (opcode == .continuation && textMessageOpen[direction.rawValue])
            if !opcode.isControl, !opcode.isReserved {
                // Continuations of a compressed text message carry compressed bytes, not text.
                if opcode != .continuation { textMessageOpen[direction.rawValue] = opcode == .text && !frame.header.rsv1 }
                if frame.header.fin { textMessageOpen[direction.rawValue] = false }
            }
            totals.frames[direction.rawValue] &+= 1
            analyzer.frameCount &+= 1
            analyzer.frameCountsByOpcode[Int(opcode.rawValue & 0x0F)] &+= 1
            analyzer.summary.framePayloadBytes &+= frame.header.payloadLength
            guard emitsFramesAndMessages else { return }
            emit(.frame(record, FrameRecord(
                time: eventTime, direction: direction, header: frame.header, payload: frame.payload,
                bytesNotKept: frame.bytesNotKept, bytesMissing: frame.bytesMissing, close: close,
                carriesText: carriesText)))
        case .message(let message):
            let direction = direction(tcpDirection)
            totals.messages[direction.rawValue] &+= 1
            analyzer.messageCount &+= 1
            analyzer.messageCountsByOpcode[Int(message.opcode.rawValue & 0x0F)] &+= 1
            analyzer.summary.messagePayloadBytes &+= UInt64(message.payload.count)
            guard emitsFramesAndMessages else { return }
            emit(.message(record, MessageRecord(time: eventTime, direction: direction, message: message)))
        case .violation(let violation):
            report(Issue(violation, time: eventTime, direction: direction(tcpDirection)))
        }
    }

    /// Frames were found; without a handshake, the first ones also say who the client is.
    private func resynchronized(skipped: UInt64, role: WebSocketRole, tcpDirection: StreamDirection) {
        let firstInDirection = !synchronizedOnce[tcpDirection.rawValue]
        synchronizedOnce[tcpDirection.rawValue] = true
        let searchedFromStart = pendingDetection != nil || (firstInDirection && detection != .handshake)
        if let how = pendingDetection {
            pendingDetection = nil
            detection = how
            protocolKind = .websocket
            if isWithoutHandshake {
                let sentByClient = role == .client
                if !opened, (direction(tcpDirection) == .clientToServer) != sentByClient { swapRoles() }
                websocket?[tcpDirection.reversed.rawValue].assumeRole(sentByClient ? .server : .client)
                report(.handshakeNotCaptured(detection: how, time: eventTime))
            }
        }
        guard searchedFromStart else {
            report(.resynchronized(skippedBytes: skipped, afterLoss: true, time: eventTime, direction: direction(tcpDirection)))
            return
        }
        if skipped > 0 {
            report(.resynchronized(skippedBytes: skipped, afterLoss: false, time: eventTime, direction: direction(tcpDirection)))
        }
    }
}

/// A large, rarely set optional kept behind a reference: unset, it costs one word.
@propertyWrapper
struct OutOfLine<Value> {
    private final class Box {
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    private var box: Box?

    init(wrappedValue: Value?) { box = wrappedValue.map(Box.init) }

    var wrappedValue: Value? {
        get { box?.value }
        set { box = newValue.map(Box.init) }
    }
}
