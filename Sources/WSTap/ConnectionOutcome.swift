import WSTapCore
import WSTapTCP
import WSTapWebSocket

/// How a connection (or a WebSocket stream) ended, decided from what the capture shows: the first
/// question of anyone looking at a broken WebSocket app. RFC 6455 §7.1.5 names the commonest
/// failure: a connection closed without a Close frame has close code 1006, abnormal closure.
public enum ConnectionOutcome: String, Sendable, CaseIterable {
    /// Both sides sent Close (the close handshake completed).
    case closedCleanly = "closed-cleanly"
    /// One side sent Close and got no answer before TCP ended.
    case closeUnanswered = "close-unanswered"
    /// TCP ended with FIN and no Close frame: effective close code 1006.
    case abnormalClosure = "abnormal-closure"
    /// TCP was reset before the close handshake completed.
    case reset
    /// Still open when the capture ended.
    case openAtEnd = "open-at-end"
    /// Given up by wstap's limits (idle timeout, connection limit).
    case idleEvicted = "idle-evicted"
    /// The upgrade was answered with a final status other than 101.
    case refused
    /// A 101 the client must fail (wrong accept, an extension or subprotocol not offered…).
    case handshakeFailed = "handshake-failed"
    /// The upgrade offer was never answered.
    case noResponse = "no-response"
    /// HTTP/1.x without an upgrade.
    case http
    /// Switched to a protocol other than WebSocket.
    case otherUpgrade = "other-upgrade"
    /// TLS that was not decrypted.
    case tlsNotDecrypted = "tls-not-decrypted"
    /// Nothing recognisable.
    case opaque

    /// Whether the outcome is a failure (shown in red, never green).
    public var isFailure: Bool {
        switch self {
        case .closeUnanswered, .abnormalClosure, .reset, .refused, .handshakeFailed, .noResponse: true
        default: false
        }
    }
}

/// Who sent the first Close frame.
public enum Closer: String, Sendable {
    case client, server, none
}

/// How TCP ended.
public enum TCPEnd: String, Sendable {
    case fin, rst, none

    init(_ reason: ConnectionEndReason) {
        switch reason {
        case .finished: self = .fin
        case .reset: self = .rst
        case .idleTimeout, .reused, .evicted, .endOfCapture: self = .none
        }
    }
}

/// The closing of a WebSocket (RFC 6455 §5.5.1, §7): the first Close each side sent, who sent
/// one first, and pings that got no pong.
public struct WebSocketClosing: Sendable, Equatable {
    /// The first Close frame each side sent (nil: none).
    public var closes = DirectionPair<CloseFrameBody?>(nil)
    /// When each side sent it.
    public var closeTimes = DirectionPair<CaptureTimestamp?>(nil)
    /// Pings each side sent that no pong from the other side answered.
    public var unansweredPings = DirectionPair<UInt64>(0)

    public init() {}

    /// Who sent Close first.
    public var closedFirst: Closer {
        switch (closeTimes.clientToServer, closeTimes.serverToClient) {
        case (nil, nil): .none
        case (.some, nil): .client
        case (nil, .some): .server
        case (.some(let client), .some(let server)): server < client ? .server : .client
        }
    }

    /// Both sides sent Close.
    public var handshakeCompleted: Bool { closes.clientToServer != nil && closes.serverToClient != nil }

    /// The connection's close code as RFC 6455 §7.1.5 defines it, for the first Close sent: its
    /// status code, 1005 when it had none, 1006 when no Close was sent at all.
    public var effectiveCode: UInt16 {
        let first: CloseFrameBody?? = switch closedFirst {
        case .client: closes.clientToServer
        case .server: closes.serverToClient
        case .none: nil
        }
        guard let body = first ?? nil else { return CloseCode.abnormalClosure.rawValue }
        return body.code?.rawValue ?? CloseCode.noStatusReceived.rawValue
    }
}

/// How a connection ended: its outcome, how TCP ended, and for WebSocket the closing.
public struct ConnectionEnding: Sendable {
    public var outcome: ConnectionOutcome
    public var tcpEnd: TCPEnd
    /// For WebSocket connections and streams.
    public var websocket: WebSocketClosing?

    public init(outcome: ConnectionOutcome, tcpEnd: TCPEnd, websocket: WebSocketClosing?) {
        self.outcome = outcome
        self.tcpEnd = tcpEnd
        self.websocket = websocket
    }

    /// Decides the outcome from the stage that decodes the stream at its end (`closing` when it
    /// is WebSocket), how the upgrade went, and how TCP ended.
    static func decide(
        phase: ConnectionPhase, upgrade: UpgradeOutcome?, handshakeFailed: Bool, closing: WebSocketClosing?,
        reason: ConnectionEndReason
    ) -> ConnectionEnding {
        let tcpEnd = TCPEnd(reason)
        let outcome: ConnectionOutcome
        if let closing {
            outcome = handshakeFailed ? .handshakeFailed : Self.websocketOutcome(closing, reason: reason)
        } else {
            switch phase {
            case .http2:
                outcome = .http
            case .http, .undecided:
                outcome = switch upgrade {
                case .rejected?: .refused
                case .incomplete?: .noResponse
                case .failed?: .handshakeFailed
                default: phase == .http ? .http : .opaque
                }
            case .otherUpgrade, .searchingForWebSocket(_, afterSwitch: true): outcome = .otherUpgrade
            case .tls: outcome = .tlsNotDecrypted
            case .opaque, .websocket, .searchingForWebSocket: outcome = .opaque
            }
        }
        return ConnectionEnding(outcome: outcome, tcpEnd: tcpEnd, websocket: closing)
    }

    private static func websocketOutcome(_ closing: WebSocketClosing, reason: ConnectionEndReason) -> ConnectionOutcome {
        if closing.handshakeCompleted { return .closedCleanly }
        let oneClose = closing.closedFirst != .none
        switch reason {
        case .reset: return .reset
        case .finished, .reused: return oneClose ? .closeUnanswered : .abnormalClosure
        case .endOfCapture: return .openAtEnd
        case .idleTimeout, .evicted: return .idleEvicted
        }
    }
}
