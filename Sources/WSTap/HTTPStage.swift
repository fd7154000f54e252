import WSTapCore
import WSTapHTTP
import WSTapTCP
import WSTapWebSocket

/// HTTP/1.1 on a connection: requests, responses and their pairing, and the Upgrade offer and its
/// answer (RFC 9110 §7.8). After a 101 it hands the stream to the stage the answer selected.
final class HTTPStage: ConnectionStage {
    private let context: ConnectionContext
    private var conversation = HTTPConversation()
    /// The Upgrade offer waiting for its answer (out of line, like the next: few connections set
    /// them, and inline they were more than half of every connection's memory).
    @OutOfLine private var pendingUpgrade: UpgradeExchange?
    /// The handshake of the 101 that is about to switch the connection.
    @OutOfLine private var switchingHandshake: WebSocketHandshake?
    /// The 101 about to switch fails the WebSocket handshake (its frames are still decoded).
    private var switchingHandshakeFailed = false
    /// A head of the current exchange was cut by missing bytes: its handshake cannot be judged.
    private var headCut = false
    /// The heads of the exchange that switched were cut: the selected protocol may be unknown.
    private var switchHeadsCut = false
    /// The last answer was judged as a WebSocket handshake, whose findings include a missing
    /// `Upgrade` header: the HTTP layer's report of the same defect is not repeated.
    private var answerJudgedAsWebSocket = false
    /// What a 101 that names no protocol switches to: the only one offered.
    private var impliedSelection: String?
    /// The stage after a 101, set during the call that switches.
    private var successor: ConnectionStage?

    init(context: ConnectionContext) {
        self.context = context
    }

    override func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp)
        -> ConnectionStage?
    {
        conversation.receive(bytes, direction: direction, at: time) { handle($0, at: time) }
        return successor
    }

    override func missing(byteCount: UInt64, cause: MissingCause, direction: StreamDirection, at time: CaptureTimestamp)
        -> ConnectionStage?
    {
        conversation.missing(byteCount: byteCount, direction: direction, at: time) { handle($0, at: time) }
        return successor
    }

    override func finish(at time: CaptureTimestamp) {
        for direction in [StreamDirection.clientToServer, .serverToClient] {
            conversation.finish(direction: direction, at: time) { handle($0, at: time) }
        }
        guard var exchange = pendingUpgrade else { return }
        pendingUpgrade = nil
        exchange.outcome = .incomplete
        exchange.time = time
        if exchange.websocket != nil {
            exchange.websocket = HandshakeValidator.validate(request: exchange.request, response: nil).0
        }
        context.emit(.upgrade(context.record, exchange))
    }

    private func handle(_ event: HTTPEvent, at time: CaptureTimestamp) {
        switch event {
        case .request(let head, let offered):
            if context.phase == .undecided { context.phase = .http }
            context.emit(.httpRequest(context.record, time, head))
            if let offered {
                pendingUpgrade = UpgradeExchange(
                    request: head, requestTime: time, response: nil, responseTime: nil,
                    offeredProtocols: offered, selectedProtocol: nil, websocket: nil, outcome: .incomplete, time: time)
            }
        case .response(let head, _, let offered):
            if context.phase == .undecided { context.phase = .http }
            context.emit(.httpResponse(context.record, time, head))
            answerJudgedAsWebSocket = false
            impliedSelection = nil
            if offered != nil, head.status == 101 || head.status >= 200 { answerUpgrade(head, at: time) }
        case .answerBody(let body):
            context.emit(.upgradeAnswerBody(context.record, time, body))
        case .exchange(let exchange):
            context.emit(.httpExchange(context.record, exchange))
        case .switched(let selected):
            successor = ConnectionChain.afterSwitch(
                context, selected: selected ?? impliedSelection, headsCut: switchHeadsCut, handshake: switchingHandshake,
                handshakeFailed: switchingHandshakeFailed, at: time)
        case .upgradedBytes(let bytes, let direction):
            if let next = successor?.receive(bytes, direction: direction, at: time) { successor = next }
        case .upgradedBoundaryUnknown(let direction):
            successor?.boundaryUnknown(direction: direction)
        case .upgradedGap(let count, let direction):
            if let next = successor?.missing(byteCount: count, cause: .notCaptured, direction: direction, at: time) {
                successor = next
            }
        case .violation(.switchWithoutUpgradeHeader, _) where answerJudgedAsWebSocket:
            break  // One defect, one report: the handshake's findings name it.
        case .violation(let violation, let direction):
            if case .headCut = violation { headCut = true }
            context.report(Issue(violation, time: time, direction: direction))
        case .notHTTP:
            break
        }
    }

    /// A final answer (or 101) to the pending Upgrade offer; for WebSocket, the handshake is judged.
    private func answerUpgrade(_ response: HTTPResponseHead, at time: CaptureTimestamp) {
        guard var exchange = pendingUpgrade else { return }
        pendingUpgrade = nil
        exchange.response = response
        exchange.responseTime = time
        exchange.time = time
        let selected = response.status == 101 ? response.headers.tokens("Upgrade").last : nil
        exchange.selectedProtocol = selected
        exchange.outcome = response.status == 101 ? .upgraded : .rejected
        let selectsWebSocket = selected.map { $0.caseInsensitiveEquals("websocket") } ?? false
        let offersWebSocket = exchange.offeredProtocols.contains { $0.caseInsensitiveEquals("websocket") }
            || (exchange.offeredProtocols.isEmpty && headCut && selectsWebSocket)
        let selectsOther = selected != nil && !selectsWebSocket
        answerJudgedAsWebSocket = offersWebSocket && !selectsOther
        // A 101 without an Upgrade header still switches, to the one protocol offered (RFC 9110
        // §15.2.2 requires the header; its absence fails a WebSocket handshake, not the switch).
        impliedSelection = response.status == 101 && selected == nil && exchange.offeredProtocols.count == 1
            ? exchange.offeredProtocols[0] : nil
        if offersWebSocket, !selectsOther {
            let (handshake, violations) = HandshakeValidator.validate(request: exchange.request, response: response)
            exchange.websocket = handshake
            // Headers lost to a cut are not the peers' mistakes: judge only complete heads.
            if !headCut {
                if response.status == 101, violations.contains(where: \.failsConnection) {
                    exchange.outcome = .failed
                    switchingHandshakeFailed = true
                }
                violations.forEach { context.report(Issue($0, time: time)) }
            }
        }
        switchHeadsCut = headCut
        headCut = false
        context.emit(.upgrade(context.record, exchange))
        if response.status == 101 { switchingHandshake = exchange.websocket }
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
