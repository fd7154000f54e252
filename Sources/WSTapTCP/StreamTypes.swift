import WSTapCore
import WSTapPackets

/// Why the TCP layer stopped tracking a connection.
public enum ConnectionEndReason: String, Sendable {
    /// Both sides sent FIN and every byte before it was delivered.
    case finished = "fin"
    case reset = "rst"
    /// No packet for longer than the idle timeout.
    case idleTimeout = "idle-timeout"
    /// A new SYN reused the 4-tuple with a different initial sequence number.
    case reused = "reused"
    /// Evicted to stay under the connection limit.
    case evicted = "evicted"
    /// Still open when the capture ended.
    case endOfCapture = "end-of-capture"
}

/// A stretch of a stream that the capture does not hold.
public struct MissingRange: Sendable, Equatable {
    /// Sequence number of the first missing byte.
    public var startSequence: UInt32
    public var byteCount: UInt64
    public var cause: MissingCause

    public init(startSequence: UInt32, byteCount: UInt64, cause: MissingCause) {
        self.startSequence = startSequence
        self.byteCount = byteCount
        self.cause = cause
    }
}

/// What the TCP layer knows of a new connection.
public struct TCPConnectionInfo: Sendable {
    /// Sequential number in order of first packet, starting at 1.
    public var id: UInt64
    public var client: Endpoint
    public var server: Endpoint
    /// True when the SYN or SYN-ACK was captured, so client and server are known, not guessed.
    public var handshakeSeen: Bool
}

/// Receives one connection's reassembled byte streams, in order, from the TCP layer.
///
/// Bytes passed to `receive` are borrowed and valid only during the call.
public protocol TCPStreamHandler: AnyObject {
    /// In-order bytes of one direction.
    func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp)
    /// Bytes that were never captured: the stream continues `range.byteCount` bytes later.
    func missing(_ range: MissingRange, direction: StreamDirection, at time: CaptureTimestamp)
    /// A retransmission carried different bytes than the first transmission, which was kept.
    func conflictingRetransmission(startSequence: UInt32, byteCount: Int, direction: StreamDirection, at time: CaptureTimestamp)
    /// The direction's FIN arrived and everything before it was delivered.
    func finished(direction: StreamDirection, at time: CaptureTimestamp)
    /// The connection is over; no more calls follow.
    func closed(reason: ConnectionEndReason, at time: CaptureTimestamp)
}

/// Creates a handler for each connection the TCP layer discovers, when its first bytes, gap or FIN
/// come out of reassembly (`time` is when the connection was first seen). Connections that never
/// carry any (a SYN without answer, a port scan) get no handler; the statistics still count them.
public protocol TCPConnectionObserver: AnyObject {
    func connectionOpened(_ connection: TCPConnectionInfo, at time: CaptureTimestamp) -> any TCPStreamHandler
}

/// Bounds on what reassembly may hold, so memory never grows with capture size.
public struct ReassemblyLimits: Sendable {
    /// Out-of-order bytes held per direction before the hole is declared lost (each held segment
    /// counts 64 bytes more, for its bookkeeping; at most 4,096 segments are held per direction).
    public var maxPendingBytesPerDirection: Int = .mebibytes(4)
    /// Out-of-order bytes held over all connections, counted the same way.
    public var maxPendingBytesTotal: Int = .mebibytes(64)
    /// Open connections tracked at once; the longest idle is evicted past this.
    public var maxConnections: Int = 100_000
    /// Seconds of capture time without a packet before a connection is closed.
    public var idleTimeoutSeconds: Int64 = 3600

    public init() {}
}

/// Counters of the TCP layer, for the summary.
public struct TCPStatistics: Sendable, Equatable {
    public var segments: UInt64 = 0
    public var connections: UInt64 = 0
    /// Segments of connections that were already closed (late ACKs, retransmissions).
    public var segmentsAfterClose: UInt64 = 0
    /// Segments without payload for connections never seen open (a capture that starts late).
    public var segmentsWithoutConnection: UInt64 = 0
    public var retransmittedBytes: UInt64 = 0
    /// Retransmissions whose bytes differ from the first transmission.
    public var conflictingRetransmissions: UInt64 = 0
    public var outOfOrderSegments: UInt64 = 0
    public var missingBytes: UInt64 = 0

    public init() {}

    /// Adds the counters of another connection table (another flow shard).
    public mutating func merge(_ other: TCPStatistics) {
        segments &+= other.segments
        connections &+= other.connections
        segmentsAfterClose &+= other.segmentsAfterClose
        segmentsWithoutConnection &+= other.segmentsWithoutConnection
        retransmittedBytes &+= other.retransmittedBytes
        conflictingRetransmissions &+= other.conflictingRetransmissions
        outOfOrderSegments &+= other.outOfOrderSegments
        missingBytes &+= other.missingBytes
    }
}
