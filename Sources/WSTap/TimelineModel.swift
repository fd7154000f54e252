import WSTapCore
import WSTapPackets
import WSTapTCP
import WSTapHTTP
import WSTapWebSocket
import WSTapTLS
import WSTapApplication

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

/// A frame on the timeline (its time is its event's). `payload` is borrowed: valid only while the
/// event is delivered.
public struct FrameRecord {
    public var direction: StreamDirection
    public var header: FrameHeader
    public var payload: UnsafeRawBufferPointer
    public var bytesNotKept: UInt64
    public var bytesMissing: UInt64
    /// Where those bytes were in the payload as sent (empty when none are missing); borrowed
    /// like `payload`.
    public var gaps: UnsafeBufferPointer<PayloadGap>
    /// The frame carries text: a text frame, or a continuation of a text message.
    public var carriesText: Bool

    public init(
        direction: StreamDirection, header: FrameHeader, payload: UnsafeRawBufferPointer, bytesNotKept: UInt64,
        bytesMissing: UInt64, gaps: UnsafeBufferPointer<PayloadGap>, carriesText: Bool
    ) {
        self.direction = direction
        self.header = header
        self.payload = payload
        self.bytesNotKept = bytesNotKept
        self.bytesMissing = bytesMissing
        self.gaps = gaps
        self.carriesText = carriesText
    }

    /// For a close frame, its body (RFC 6455 §5.5.1), read from the payload. (Read, not kept: a
    /// record holding the body's array could not be copied and dropped without reference
    /// counting, on every frame.)
    public var close: CloseFrameBody? {
        header.opcode == .close ? CloseFrameBody.parse(payload).0 : nil
    }

    /// The payload is text as sent: a frame that carries text, not compressed (the one rule every
    /// output uses; a JSON string also needs it to be valid UTF-8).
    public var payloadIsText: Bool { carriesText && !header.rsv1 }
}

/// A data message on the timeline (its time is its event's). `payload` is borrowed: valid only
/// while the event is delivered.
public struct MessageRecord {
    public var direction: StreamDirection
    public var message: WebSocketMessage

    public init(direction: StreamDirection, message: WebSocketMessage) {
        self.direction = direction
        self.message = message
    }

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
    /// HTTP/2 (its WebSocket streams are listed under it).
    case http2
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
    /// Its outcome, how TCP ended, and for WebSocket its closing.
    public var ending: ConnectionEnding
}

/// The end of one stream of a connection that carries several (an HTTP/2 stream): what it
/// carried, in the shape of a connection's end.
public struct StreamEnd: Sendable {
    /// When the stream was opened, and when it ended.
    public var start: CaptureTimestamp
    public var time: CaptureTimestamp
    /// How the stream ended, in its protocol's words (`end-stream`, `rst-stream`, `connection-closed`).
    public var reason: String
    public var protocolKind: ConnectionProtocol
    public var websocketDetection: WebSocketDetection?
    public var totals: ConnectionTotals
    /// The stream's share of the capture summary, as a connection's.
    public var counters: ConnectionCounters
    /// Its outcome and, for a WebSocket stream, its closing.
    public var ending: ConnectionEnding
    /// The TLS session inside the stream (a CONNECT tunnel's), when it carried one.
    public var tls: TLSSession?

    public init(
        start: CaptureTimestamp, time: CaptureTimestamp, reason: String, protocolKind: ConnectionProtocol,
        websocketDetection: WebSocketDetection?, totals: ConnectionTotals, counters: ConnectionCounters, ending: ConnectionEnding,
        tls: TLSSession? = nil
    ) {
        self.tls = tls
        self.start = start
        self.time = time
        self.reason = reason
        self.protocolKind = protocolKind
        self.websocketDetection = websocketDetection
        self.totals = totals
        self.counters = counters
        self.ending = ending
    }
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

/// Which stream of a connection an event belongs to, when the connection carries several: an
/// HTTP/2 stream (RFC 9113 §5.1.1). Events of the connection itself (its TCP life, TLS, HTTP/1.1
/// and a WebSocket that took the whole connection) have none.
public struct StreamID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32

    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    public static func < (lhs: StreamID, rhs: StreamID) -> Bool { lhs.rawValue < rhs.rawValue }

    /// `s5`, as the text timeline writes it after the connection (`#3/s5`).
    public var description: String { "s\(rawValue)" }
}

/// Everything the analyzer reports, in capture order: one shape for every event, saying which
/// connection (and stream) it belongs to, when it happened, and what it is.
public struct TimelineEvent {
    /// Nil for the capture's own events (its start, capture-level issues).
    public var connection: ConnectionRecord?
    /// The stream of a connection that carries several; nil for the connection itself.
    public var stream: StreamID?
    /// The time of the packet that produced the event (nil for the capture's own issues, which no
    /// packet produced).
    public var time: CaptureTimestamp?
    public var kind: Kind

    @inlinable
    public init(connection: ConnectionRecord?, stream: StreamID? = nil, time: CaptureTimestamp?, kind: Kind) {
        self.connection = connection
        self.stream = stream
        self.time = time
        self.kind = kind
    }

    /// What happened. Exporters that do not know a kind's meaning can still show an application
    /// message (`application`): its fields are generic values.
    public enum Kind {
        case captureStarted
        /// The connection's first event follows, at the event's time: the time of the packet that
        /// showed it (its first bytes, a gap or its end). `ConnectionRecord.startTime` is its
        /// first packet's.
        case connectionOpened
        case httpRequest(HTTPRequestHead)
        case httpResponse(HTTPResponseHead)
        /// A request paired with its final response, or with none (never answered, or forgotten
        /// past the limit of waiting requests). Every request is paired once, in order.
        case httpExchange(HTTPExchange)
        /// An Upgrade offer was answered, or the connection ended without an answer. (Boxed: the
        /// exchange is by far the largest payload, and every event, frames included, would be
        /// copied at its size.)
        indirect case upgrade(UpgradeExchange)
        /// The body of the answer to an Upgrade offer that did not switch (what a refusal says),
        /// when it ended: its first `HTTPConversation.maxBodyPreview` bytes.
        indirect case upgradeAnswerBody(HTTPBodyPreview)
        /// The connection is TLS: its session as the handshake and the key log show it (once per
        /// connection, when its hellos were seen or were found missing).
        indirect case tls(TLSSession)
        case frame(FrameRecord)
        case message(MessageRecord)
        /// What an application protocol said inside WebSocket messages (a message stage's unit).
        indirect case application(ApplicationMessage)
        /// A finding; `connection` is nil for capture-level issues.
        case issue(Issue)
        /// One stream of the connection ended (its events carried its `stream`).
        indirect case streamClosed(StreamEnd)
        /// The connection ended (boxed, like `upgrade`: its counters would make every event larger).
        indirect case connectionClosed(ConnectionEnd)
    }
}

extension TimelineEvent {
    /// The capture's first packet was read.
    public static func captureStarted(_ time: CaptureTimestamp) -> TimelineEvent {
        TimelineEvent(connection: nil, time: time, kind: .captureStarted)
    }

    /// A finding of the capture's (`record` nil) or of a connection's.
    public static func issue(_ record: ConnectionRecord?, _ issue: Issue, stream: StreamID? = nil) -> TimelineEvent {
        TimelineEvent(connection: record, stream: stream, time: issue.time, kind: .issue(issue))
    }
}

/// Where timeline events go: every exporter is one.
public protocol TimelineSink: AnyObject {
    func receive(_ event: TimelineEvent)
    /// Called once after the last event.
    func finish(_ summary: CaptureSummary)
    /// False for sinks that only need the summary: frame and message events are then not built.
    var receivesFramesAndMessages: Bool { get }
    /// An event a display filter did not keep, of a connection it kept: the sink may note what
    /// identifies the connection (its request's host and target, its handshake), never show it.
    func observe(_ event: TimelineEvent)
    /// True for sinks that write a line per event (the text timeline, NDJSON): under a filter
    /// on events, a connection's context lines (open, close, issues) are shown only with its
    /// first matching event. Sinks that build per-connection records take every connection.
    var writesContextLines: Bool { get }
}

extension TimelineSink {
    public var receivesFramesAndMessages: Bool { true }
    public func observe(_ event: TimelineEvent) {}
    public var writesContextLines: Bool { false }
}
