import WSTapCore
import WSTapHTTP
import WSTapTCP
import WSTapWebSocket

/// HTTP/1.1 on a connection: requests, responses and their pairing, and the Upgrade offer and its
/// answer (RFC 9110 §7.8). After a 101 it hands the stream to the stage the answer selected.
final class HTTPStage: Stage {
    private let stream: StreamContext
    private var conversation = HTTPConversation()
    /// Where the connection's Upgrade stands: one value, its cases carrying their data (boxed:
    /// few connections upgrade, and inline the exchange was more than half of every connection's memory).
    private var upgrade = UpgradeState.idle
    /// A head of the current exchange was cut by missing bytes: its handshake cannot be judged.
    private var headCut = false
    /// The last answer was judged as a WebSocket handshake, whose findings include a missing
    /// `Upgrade` header: the HTTP layer's report of the same defect is not repeated.
    private var answerJudgedAsWebSocket = false
    /// A request or response was seen: the connection is HTTP.
    private var sawHead = false
    /// How the last Upgrade offer ended, once it did.
    private var lastUpgradeOutcome: UpgradeOutcome?
    /// The stage after a 101, set during the call that switches.
    private var successor: Stage?

    /// An Upgrade offer waiting for its answer, or the answer that is about to switch.
    private indirect enum UpgradeState {
        case idle
        case offered(UpgradeExchange)
        /// An answer to an offer; when it is a 101, the `switched` event that follows uses it.
        case answered(SwitchingAnswer)
    }

    /// What the switch after an answered offer needs.
    private struct SwitchingAnswer {
        /// The WebSocket handshake of a 101 (nil for a refusal, or an offer of another protocol).
        var handshake: WebSocketHandshake?
        /// The 101 fails the WebSocket handshake (its frames are still decoded).
        var handshakeFailed: Bool
        /// The heads of the exchange were cut: the selected protocol may be unknown.
        var headsCut: Bool
        /// What a 101 that names no protocol switches to: the only one offered.
        var impliedSelection: String?
        var request: HTTPRequestHead
    }

    init(stream: StreamContext) {
        self.stream = stream
    }

    override var phase: ConnectionPhase { sawHead ? .http : .undecided }

    override func ending(reason: ConnectionEndReason) -> ConnectionEnding {
        ConnectionEnding.decide(phase: phase, upgrade: lastUpgradeOutcome, handshakeFailed: false, closing: nil, reason: reason)
    }

    override func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        conversation.receive(bytes, direction: direction, at: time) { handle($0, at: time) }
        return successor
    }

    override func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        conversation.missing(gap, direction: direction, at: time) { handle($0, at: time) }
        return successor
    }

    override func finish(at time: CaptureTimestamp) {
        for direction in [StreamDirection.clientToServer, .serverToClient] {
            conversation.finish(direction: direction, at: time) { handle($0, at: time) }
        }
        guard case .offered(var exchange) = upgrade else { return }
        upgrade = .idle
        exchange.outcome = .incomplete
        exchange.time = time
        if exchange.websocket != nil {
            exchange.websocket = HandshakeValidator.validate(request: exchange.request, response: nil).0
        }
        lastUpgradeOutcome = exchange.outcome
        stream.emit(.upgrade(exchange), at: exchange.time)
    }

    private func handle(_ event: HTTPEvent, at time: CaptureTimestamp) {
        switch event {
        case .request(let head, let offered):
            sawHead = true
            stream.emit(.httpRequest(head), at: time)
            if let offered {
                upgrade = .offered(UpgradeExchange(
                    request: head, requestTime: time, response: nil, responseTime: nil,
                    offeredProtocols: offered, selectedProtocol: nil, websocket: nil, outcome: .incomplete, time: time))
            }
        case .response(let head, _, let offered):
            sawHead = true
            stream.emit(.httpResponse(head), at: time)
            answerJudgedAsWebSocket = false
            if offered != nil, head.status == 101 || head.status >= 200 { answerUpgrade(head, at: time) }
        case .answerBody(let body):
            stream.emit(.upgradeAnswerBody(body), at: time)
        case .exchange(let exchange):
            stream.emit(.httpExchange(exchange), at: exchange.responseTime ?? exchange.requestTime)
        case .switched(let selected):
            let answer: SwitchingAnswer? = if case .answered(let answer) = upgrade { answer } else { nil }
            successor = ConnectionChain.afterSwitch(
                UpgradeSwitch(
                    stream: stream, handshake: answer?.handshake, handshakeFailed: answer?.handshakeFailed ?? false,
                    request: answer?.request, time: time),
                selected: selected ?? answer?.impliedSelection, headsCut: answer?.headsCut ?? false)
        case .tunnelOpened(let target):
            // The tunnel's bytes are a new stream: the tunnel table chooses (by default its first bytes).
            successor = stream.connection.stages.tunnel(stream, target, time)
        case .upgradedBytes(let bytes, let direction):
            if let next = successor?.receive(bytes, direction: direction, at: time) { successor = next }
        case .upgradedBoundaryUnknown(let direction):
            successor?.boundaryUnknown(direction: direction)
        case .upgradedGap(let count, let direction):
            if let next = successor?.missing(MissingBytes(count, cause: .notCaptured), direction: direction, at: time) {
                successor = next
            }
        case .violation(.switchWithoutUpgradeHeader, _) where answerJudgedAsWebSocket:
            break  // One defect, one report: the handshake's findings name it.
        case .violation(let violation, let direction):
            if case .headCut = violation { headCut = true }
            stream.report(Issue(violation, time: time, direction: direction))
        case .notHTTP:
            break
        }
    }

    /// A final answer (or 101) to the pending Upgrade offer; for WebSocket, the handshake is judged.
    private func answerUpgrade(_ response: HTTPResponseHead, at time: CaptureTimestamp) {
        guard case .offered(var exchange) = upgrade else { return }
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
        var answer = SwitchingAnswer(
            handshake: nil, handshakeFailed: false, headsCut: headCut,
            // A 101 without an Upgrade header still switches, to the one protocol offered (RFC
            // 9110 §15.2.2 requires the header; its absence fails a WebSocket handshake, not the switch).
            impliedSelection: response.status == 101 && selected == nil && exchange.offeredProtocols.count == 1
                ? exchange.offeredProtocols[0] : nil,
            request: exchange.request)
        if offersWebSocket, !selectsOther {
            let (handshake, violations) = HandshakeValidator.validate(request: exchange.request, response: response)
            exchange.websocket = handshake
            // Headers lost to a cut are not the peers' mistakes: judge only complete heads.
            if !headCut {
                if response.status == 101, violations.contains(where: \.failsConnection) {
                    exchange.outcome = .failed
                    answer.handshakeFailed = true
                }
                violations.forEach { stream.report(Issue($0, time: time)) }
            }
        }
        headCut = false
        lastUpgradeOutcome = exchange.outcome
        stream.emit(.upgrade(exchange), at: exchange.time)
        if response.status == 101 { answer.handshake = exchange.websocket }
        upgrade = .answered(answer)
    }
}

