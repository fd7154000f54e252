/// A frame opcode (RFC 6455 §5.2), open so reserved values can still be carried and reported.
public struct WebSocketOpcode: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0F }

    public static let continuation = WebSocketOpcode(rawValue: 0x0)
    public static let text = WebSocketOpcode(rawValue: 0x1)
    public static let binary = WebSocketOpcode(rawValue: 0x2)
    public static let close = WebSocketOpcode(rawValue: 0x8)
    public static let ping = WebSocketOpcode(rawValue: 0x9)
    public static let pong = WebSocketOpcode(rawValue: 0xA)

    /// Close, ping, pong and the reserved 0xB-0xF (RFC 6455 §5.5).
    public var isControl: Bool { rawValue & 0x08 != 0 }

    /// 0x3-0x7 and 0xB-0xF have no meaning defined.
    public var isReserved: Bool { !(rawValue <= 0x2 || (rawValue >= 0x8 && rawValue <= 0xA)) }

    /// `continuation`, `text`, `binary`, `close`, `ping`, `pong` or `reserved-N`.
    public var description: String {
        switch self {
        case .continuation: "continuation"
        case .text: "text"
        case .binary: "binary"
        case .close: "close"
        case .ping: "ping"
        case .pong: "pong"
        default: "reserved-\(rawValue)"
        }
    }
}

/// A close status code (RFC 6455 §7.4), kept open for codes the RFC does not name.
public struct CloseCode: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16

    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let normalClosure = CloseCode(rawValue: 1000)
    public static let goingAway = CloseCode(rawValue: 1001)
    public static let protocolError = CloseCode(rawValue: 1002)
    public static let unsupportedData = CloseCode(rawValue: 1003)
    public static let noStatusReceived = CloseCode(rawValue: 1005)
    public static let abnormalClosure = CloseCode(rawValue: 1006)
    public static let invalidPayloadData = CloseCode(rawValue: 1007)
    public static let policyViolation = CloseCode(rawValue: 1008)
    public static let messageTooBig = CloseCode(rawValue: 1009)
    public static let mandatoryExtension = CloseCode(rawValue: 1010)
    public static let internalError = CloseCode(rawValue: 1011)
    public static let serviceRestart = CloseCode(rawValue: 1012)
    public static let tryAgainLater = CloseCode(rawValue: 1013)
    public static let badGateway = CloseCode(rawValue: 1014)
    public static let tlsHandshake = CloseCode(rawValue: 1015)

    /// Whether an endpoint may send this code in a close frame (RFC 6455 §7.4.1-2, IANA registry).
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014: true
        case 3000...4999: true
        default: false
        }
    }

    /// Codes by which an endpoint reports a failure (RFC 6455 §7.4.1, IANA registry): protocol
    /// error, unsupported or invalid data, policy, size, a missing extension, an internal error,
    /// a bad gateway. Normal closure, going away, restarts and application codes (3000-4999) are not.
    public var reportsError: Bool {
        switch rawValue {
        case 1002, 1003, 1007...1011, 1014: true
        default: false
        }
    }

    public var name: String? {
        switch self {
        case .normalClosure: "normal closure"
        case .goingAway: "going away"
        case .protocolError: "protocol error"
        case .unsupportedData: "unsupported data"
        case .noStatusReceived: "no status received"
        case .abnormalClosure: "abnormal closure"
        case .invalidPayloadData: "invalid payload data"
        case .policyViolation: "policy violation"
        case .messageTooBig: "message too big"
        case .mandatoryExtension: "mandatory extension"
        case .internalError: "internal error"
        case .serviceRestart: "service restart"
        case .tryAgainLater: "try again later"
        case .badGateway: "bad gateway"
        case .tlsHandshake: "TLS handshake"
        default: nil
        }
    }

    public var description: String {
        name.map { "\(rawValue) (\($0))" } ?? "\(rawValue)"
    }
}
