import WSTapCore
import WSTapPackets
import WSTapTCP
import WSTapHTTP
import WSTapWebSocket
import WSTapTLS

/// A TCP connection as the timeline names it.
public struct ConnectionRecord: Sendable {
    /// Sequential in order of first packet, starting at 1.
    public var id: UInt64
    public var client: Endpoint
    public var server: Endpoint
    /// The TCP handshake was captured, so client and server are known rather than guessed.
    public var tcpHandshakeSeen: Bool
    public var startTime: CaptureTimestamp
}

/// How bad a finding is.
public enum Severity: String, Sendable, Comparable {
    case info
    case warning
    case error

    private var rank: Int { self == .info ? 0 : self == .warning ? 1 : 2 }
    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
}

/// A problem found in the traffic or the capture, with a stable code (docs/issue-codes.md).
public struct Issue: Sendable, Equatable {
    public var time: CaptureTimestamp?
    public var direction: StreamDirection?
    public var severity: Severity
    public var code: String
    public var detail: String
}

/// How an Upgrade offer ended (the `outcome` field of the JSON format).
public enum UpgradeOutcome: String, Sendable {
    /// 101 and, for WebSocket, a valid handshake.
    case upgraded
    /// A final status other than 101: the connection stays HTTP.
    case rejected
    /// 101, but the WebSocket handshake is invalid, so a client must fail the connection.
    case failed
    /// No answer was captured.
    case incomplete
}

/// One HTTP/1.1 Upgrade offer and its answer.
public struct UpgradeExchange: Sendable {
    public var request: HTTPRequestHead
    public var requestTime: CaptureTimestamp
    public var response: HTTPResponseHead?
    public var responseTime: CaptureTimestamp?
    /// The `Upgrade` list of the request, in preference order.
    public var offeredProtocols: [String]
    /// The protocol the 101 named.
    public var selectedProtocol: String?
    /// Present when the request offered `websocket`.
    public var websocket: WebSocketHandshake?
    public var outcome: UpgradeOutcome
    /// When the outcome was known: the answer's time, or the end of the connection when no
    /// answer was captured.
    public var time: CaptureTimestamp
}

/// A frame on the timeline. `payload` is borrowed: valid only while the event is delivered.
public struct FrameRecord {
    public var time: CaptureTimestamp
    public var direction: StreamDirection
    public var header: FrameHeader
    public var payload: UnsafeRawBufferPointer
    public var bytesNotKept: UInt64
    public var bytesMissing: UInt64
    /// Where those bytes were in the payload as sent (empty when none are missing); borrowed
    /// like `payload`.
    public var gaps: UnsafeBufferPointer<PayloadGap>
    public var close: CloseFrameBody?
    /// The frame carries text: a text frame, or a continuation of a text message.
    public var carriesText: Bool

    /// The payload is text as sent: a frame that carries text, not compressed (the one rule every
    /// output uses; a JSON string also needs it to be valid UTF-8).
    public var payloadIsText: Bool { carriesText && !header.rsv1 }
}

/// A data message on the timeline. `payload` is borrowed: valid only while the event is delivered.
public struct MessageRecord {
    public var time: CaptureTimestamp
    public var direction: StreamDirection
    public var message: WebSocketMessage

    /// The payload is text to show: a text message, valid UTF-8 (the rule every output uses),
    /// or, with bytes missing, one none of whose captured parts is invalid.
    public var payloadIsText: Bool {
        message.opcode == .text && (message.isValidUTF8 == true || (message.isValidUTF8 == nil && !message.gaps.isEmpty))
    }
}

/// Bytes and frames a connection carried, reported when it ends.
public struct ConnectionTotals: Sendable, Equatable {
    public var payloadBytes = DirectionPair<UInt64>(0)
    public var frames = DirectionPair<UInt64>(0)
    public var messages = DirectionPair<UInt64>(0)
    /// Bytes after a 101 that were not decoded as WebSocket (another protocol).
    public var upgradedBytes = DirectionPair<UInt64>(0)
    public var missingBytes = DirectionPair<UInt64>(0)
}

/// What a connection turned out to carry.
public enum ConnectionProtocol: String, Sendable {
    case websocket
    /// HTTP/1.x without a switch.
    case http
    /// Switched with 101 to a protocol other than WebSocket.
    case otherUpgrade = "other-upgrade"
    /// TLS that was not decrypted.
    case tls
    case unknown
}

/// How wstap knew a connection carries WebSocket.
public enum WebSocketDetection: String, Sendable {
    /// From the opening handshake (a 101 selecting `websocket`).
    case handshake
    /// The handshake was not captured; frames were recognised by their structure.
    case heuristic
    /// The handshake was not captured; `--websocket-port` said so.
    case port
}

/// The end of a connection on the timeline.
public struct ConnectionEnd: Sendable {
    public var time: CaptureTimestamp
    public var reason: ConnectionEndReason
    public var protocolKind: ConnectionProtocol
    /// Set for WebSocket connections.
    public var websocketDetection: WebSocketDetection?
    /// For a TLS connection, its session at the end (with its record byte counts).
    public var tls: TLSSession?
    public var totals: ConnectionTotals
    /// Frames and messages by opcode: the connection's share of the capture summary.
    public var counters: ConnectionCounters
}

/// What a connection decoded, by opcode; summed over connections, these are the summary's
/// frame and message counts (`CaptureSummary.add`).
public struct ConnectionCounters: Sendable {
    /// Indexed by opcode (0-15).
    public var framesByOpcode = InlineArray<16, UInt64>(repeating: 0)
    public var messagesByOpcode = InlineArray<16, UInt64>(repeating: 0)
    public var framePayloadBytes: UInt64 = 0
    public var messagePayloadBytes: UInt64 = 0

    public init() {}

    mutating func countFrame(_ opcode: WebSocketOpcode, payloadLength: UInt64) {
        framesByOpcode[Int(opcode.rawValue & 0x0F)] &+= 1
        framePayloadBytes.addSaturating(payloadLength)
    }

    mutating func countMessage(_ opcode: WebSocketOpcode, payloadLength: Int) {
        messagesByOpcode[Int(opcode.rawValue & 0x0F)] &+= 1
        messagePayloadBytes.addSaturating(UInt64(payloadLength))
    }

    /// Adds another connection's (or shard's) counters.
    public mutating func add(_ other: ConnectionCounters) {
        for opcode in 0..<16 {
            framesByOpcode[opcode] &+= other.framesByOpcode[opcode]
            messagesByOpcode[opcode] &+= other.messagesByOpcode[opcode]
        }
        framePayloadBytes.addSaturating(other.framePayloadBytes)
        messagePayloadBytes.addSaturating(other.messagePayloadBytes)
    }
}

/// Everything the analyzer reports, in capture order.
public enum TimelineEvent {
    case captureStarted(CaptureTimestamp)
    /// The connection's first event follows, at `time`: the time of the packet that showed it
    /// (its first bytes, a gap or its end). `ConnectionRecord.startTime` is its first packet's.
    case connectionOpened(ConnectionRecord, CaptureTimestamp)
    case httpRequest(ConnectionRecord, CaptureTimestamp, HTTPRequestHead)
    case httpResponse(ConnectionRecord, CaptureTimestamp, HTTPResponseHead)
    /// A request paired with its final response, or with none (never answered, or forgotten past
    /// the limit of waiting requests). Every request is paired once, in order.
    case httpExchange(ConnectionRecord, HTTPExchange)
    /// An Upgrade offer was answered, or the connection ended without an answer. (Boxed: the
    /// exchange is by far the largest payload, and every event, frames included, would be copied
    /// at its size.)
    indirect case upgrade(ConnectionRecord, UpgradeExchange)
    /// The body of the answer to an Upgrade offer that did not switch (what a refusal says),
    /// when it ended: its first `HTTPConversation.maxBodyPreview` bytes.
    indirect case upgradeAnswerBody(ConnectionRecord, CaptureTimestamp, HTTPBodyPreview)
    /// The connection is TLS: its session as the handshake and the key log show it (once per
    /// connection, when its hellos were seen or were found missing).
    indirect case tls(ConnectionRecord, CaptureTimestamp, TLSSession)
    case frame(ConnectionRecord, FrameRecord)
    case message(ConnectionRecord, MessageRecord)
    /// A finding; the connection is nil for capture-level issues.
    case issue(ConnectionRecord?, Issue)
    /// The connection ended (boxed, like `upgrade`: its counters would make every event larger).
    indirect case connectionClosed(ConnectionRecord, ConnectionEnd)
}

extension TimelineEvent {
    /// When the event happened: the time of the packet that produced it (nil for the capture's
    /// own issues, which no packet produced).
    public var time: CaptureTimestamp? {
        switch self {
        case .captureStarted(let time): time
        case .connectionOpened(_, let time): time
        case .httpRequest(_, let time, _), .httpResponse(_, let time, _): time
        case .httpExchange(_, let exchange): exchange.responseTime ?? exchange.requestTime
        case .upgrade(_, let exchange): exchange.time
        case .upgradeAnswerBody(_, let time, _): time
        case .tls(_, let time, _): time
        case .frame(_, let frame): frame.time
        case .message(_, let message): message.time
        case .issue(_, let issue): issue.time
        case .connectionClosed(_, let end): end.time
        }
    }

    /// The connection the event belongs to; nil for the capture's own events.
    public var connection: ConnectionRecord? {
        switch self {
        case .captureStarted: nil
        case .connectionOpened(let record, _), .httpRequest(let record, _, _), .httpResponse(let record, _, _),
             .httpExchange(let record, _), .upgrade(let record, _), .upgradeAnswerBody(let record, _, _),
             .tls(let record, _, _), .frame(let record, _), .message(let record, _), .connectionClosed(let record, _):
            record
        case .issue(let record, _): record
        }
    }
}

/// Where timeline events go: every exporter is one.
public protocol TimelineSink: AnyObject {
    func receive(_ event: TimelineEvent)
    /// Called once after the last event.
    func finish(_ summary: CaptureSummary)
    /// False for sinks that only need the summary: frame and message events are then not built.
    var receivesFramesAndMessages: Bool { get }
}

extension TimelineSink {
    public var receivesFramesAndMessages: Bool { true }
}
