import WSTapCore
import WSTapTCP
import WSTapWebSocket
import WSTapTLS

/// A link of a connection's chain as the connection drives it: it takes the bytes of one
/// direction (client and server as the analyzer knows them), turns them into timeline events
/// through its `ConnectionContext`, and hands what is not its own to the stage after it.
///
/// A stage that finds the stream is something else hands over: `receive` and `missing` return the
/// stage that decodes the stream from then on (HTTP returns WebSocket after a 101, as Zeek replaces
/// its HTTP analyzer on upgrade), having already passed it the rest of the bytes it was given.
///
/// A class rather than a protocol so that the connection can call its current stage without
/// reference counting (`ManuallyRetained`, measured in docs/performance.md). This base class takes
/// bytes and ignores them; each stage overrides what it decodes.
class ConnectionStage {
    /// In-order bytes of `direction`, borrowed for the call. Returns a successor, if any.
    func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) -> ConnectionStage? {
        nil
    }

    /// Bytes the capture lacks; the stream goes on after them. Returns a successor, if any.
    func missing(byteCount: UInt64, cause: MissingCause, direction: StreamDirection, at time: CaptureTimestamp)
        -> ConnectionStage?
    {
        nil
    }

    /// The next bytes of `direction` may not start where a unit (head, frame) starts.
    func boundaryUnknown(direction: StreamDirection) {}

    /// The connection ended: report what is still held or unfinished.
    func finish(at time: CaptureTimestamp) {}

    /// Bytes are held that may later be decoded into events with earlier times (a frame search).
    var holdsBytesForEarlierEvents: Bool { false }
}

/// What a connection is decoded as now: one value instead of a set of flags.
enum ConnectionPhase: Equatable {
    /// No bytes yet, or only bytes that did not yet show a protocol (an HTTP head in progress).
    case undecided
    /// HTTP/1.1 requests and responses.
    case http
    /// WebSocket frames are decoded; `detection` says how the connection is known to be WebSocket.
    case websocket(WebSocketDetection)
    /// The handshake was not captured, or the heads of the 101 were cut (`afterSwitch`): frames
    /// are being searched for.
    case searchingForWebSocket(WebSocketDetection, afterSwitch: Bool)
    /// A 101 switched to a protocol wstap does not decode: its bytes are counted.
    case otherUpgrade
    /// Nothing recognisable: the bytes are not decoded.
    case opaque
    /// TLS that is not (or not yet) decrypted.
    case tls

    /// What the connection turned out to carry, as the timeline names it.
    var protocolKind: ConnectionProtocol {
        switch self {
        case .undecided, .opaque: .unknown
        case .http: .http
        case .websocket: .websocket
        case .searchingForWebSocket(_, let afterSwitch): afterSwitch ? .otherUpgrade : .unknown
        case .otherUpgrade: .otherUpgrade
        case .tls: .tls
        }
    }

    var websocketDetection: WebSocketDetection? {
        if case .websocket(let detection) = self { return detection }
        return nil
    }
}

/// What every stage of one connection shares: its record, phase, totals and counters, and its way
/// to the timeline. The connection owns its counters; the analyzer only sees them in its events.
final class ConnectionContext {
    private(set) var record: ConnectionRecord
    var phase = ConnectionPhase.undecided
    var totals = ConnectionTotals()
    var counters = ConnectionCounters()
    /// The TLS session, for a connection that is TLS.
    var tls: TLSSession?
    let options: AnalyzerOptions
    /// Whether the sink takes frame and message events (a summary does not).
    let emitsFramesAndMessages: Bool
    /// The connection's first event (its `connectionOpened`) was written.
    private(set) var opened = false
    /// The TCP layer guessed client and server the wrong way round: its directions are flipped.
    private(set) var rolesSwapped = false
    private let timeline: TimelineFold
    /// Where connections holding bytes for earlier events are counted; nil when nobody asks.
    let heldBytes: HeldBytesTally?
    /// Events held while both directions of a connection caught mid-way are decided, then
    /// written in time order (so frames are never regrouped by direction), with the payloads
    /// they borrow copied. Nil when nothing is held.
    private var held: [(event: TimelineEvent, payload: [UInt8], gaps: [PayloadGap])]?

    init(record: ConnectionRecord, options: AnalyzerOptions, timeline: TimelineFold, heldBytes: HeldBytesTally? = nil) {
        self.record = record
        self.options = options
        self.timeline = timeline
        self.heldBytes = heldBytes
        emitsFramesAndMessages = timeline.emitsFramesAndMessages
    }

    /// The analyzer's direction for a direction of the TCP layer, and back (the mapping is its own inverse).
    func direction(_ other: StreamDirection) -> StreamDirection {
        rolesSwapped ? other.reversed : other
    }

    /// Client and server exchange places, in the record and for every later byte.
    func swapRoles() {
        rolesSwapped.toggle()
        // One assignment: swap(&record.client, &record.server) would access `record` twice at once.
        (record.client, record.server) = (record.server, record.client)
    }

    func emit(_ event: TimelineEvent) {
        deliver(event, folded: true)
    }

    /// A frame or a message: as `emit`, but straight past the fold, which has nothing to count in
    /// them (a connection's counters come with its end). Asking an event which case it is copies
    /// all of it (about 300 bytes), and these are nearly every event.
    func emitFrameOrMessage(_ event: TimelineEvent) {
        deliver(event, folded: false)
    }

    @inline(__always)
    private func deliver(_ event: TimelineEvent, folded: Bool) {
        if held != nil { return hold(event) }
        if !opened { open(at: event.time ?? record.startTime) }
        if folded { timeline.receive(event) } else { timeline.pass(event) }
    }

    /// From now until `releaseHeldEvents`, events are held to be written in time order.
    func holdEvents() {
        if held == nil { held = [] }
    }

    private func hold(_ event: TimelineEvent) {
        switch event {
        case .frame(_, let frame): held?.append((event, Array(frame.payload), Array(frame.gaps)))
        case .message(_, let message): held?.append((event, Array(message.message.payload), Array(message.message.gaps)))
        default: held?.append((event, [], []))
        }
    }

    /// Writes the held events, oldest first (in the order they came when their times are equal),
    /// each borrowing its copied payload.
    func releaseHeldEvents() {
        guard let events = held else { return }
        held = nil
        let order = events.indices.sorted {
            let (left, right) = (events[$0].event.time ?? .zero, events[$1].event.time ?? .zero)
            return left < right || (left == right && $0 < $1)
        }
        for index in order {
            let (event, payload, gaps) = events[index]
            if !opened { open(at: event.time ?? record.startTime) }
            payload.withUnsafeBytes { bytes in
                gaps.withUnsafeBufferPointer { gaps in
                    switch event {
                    case .frame(let record, var frame):
                        frame.payload = bytes
                        frame.gaps = gaps
                        timeline.receive(.frame(record, frame))
                    case .message(let record, var message):
                        message.message.payload = bytes
                        message.message.gaps = gaps
                        timeline.receive(.message(record, message))
                    default:
                        timeline.receive(event)
                    }
                }
            }
        }
    }

    /// A frame or data message was decoded (whether or not the sink takes it).
    func countFrame(_ opcode: WebSocketOpcode, payloadLength: UInt64) {
        counters.countFrame(opcode, payloadLength: payloadLength)
        timeline.frameDecoded()
    }

    func countMessage(_ opcode: WebSocketOpcode, payloadLength: Int) {
        counters.countMessage(opcode, payloadLength: payloadLength)
        timeline.messageDecoded()
    }

    func report(_ issue: Issue) {
        emit(.issue(record, issue))
    }

    /// Writes the connection's `connectionOpened`, at the time of its first event.
    private func open(at time: CaptureTimestamp) {
        opened = true
        timeline.receive(.connectionOpened(record, time))
    }
}

/// How many connections hold bytes that may still become events earlier than ones already
/// produced (`ConnectionStage.holdsBytesForEarlierEvents`), kept up to date by each connection.
final class HeldBytesTally {
    var connections = 0
}
