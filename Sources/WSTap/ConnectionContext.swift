import WSTapCore
import WSTapWebSocket
import WSTapTLS

/// What every stage of one connection shares: its record and roles, its way to the timeline, and
/// the events it holds back. What belongs to one stream of it (totals, counters, handshake) is in
/// a `StreamContext`, so that a connection can carry several.
final class ConnectionContext {
    private(set) var record: ConnectionRecord
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
    /// written in time order (so frames are never regrouped by direction), with the bytes they
    /// borrow kept. Nil when nothing is held.
    private var held: HeldEvents?

    /// The analyzer's zlib contexts, shared out between its connections.
    let inflaters: InflaterBudget

    init(
        record: ConnectionRecord, options: AnalyzerOptions, timeline: TimelineFold, heldBytes: HeldBytesTally? = nil,
        inflaters: InflaterBudget = InflaterBudget()
    ) {
        self.inflaters = inflaters
        self.record = record
        self.options = options
        self.timeline = timeline
        self.heldBytes = heldBytes
        emitsFramesAndMessages = timeline.emitsFramesAndMessages
    }

    /// The stage tables connections are built from.
    var stages: StageRegistry { options.stages }

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

    /// Puts an event of this connection on the timeline. (The kind is consumed, here and below:
    /// borrowed, it was copied into the event, an outlined copy of every case's payload that cost
    /// a tenth of chat JSON's instructions.)
    func emit(_ kind: consuming TimelineEvent.Kind, stream: StreamID? = nil, at time: CaptureTimestamp?) {
        deliver(TimelineEvent(connection: record, stream: stream, time: time, kind: kind), folded: true)
    }

    func report(_ issue: Issue, stream: StreamID? = nil) {
        emit(.issue(issue), stream: stream, at: issue.time)
    }

    /// A frame: as `emit`, but straight past the fold, which has nothing to count in it (a
    /// connection's counters come with its end), and built here, where its case is known, so
    /// that making and dropping it costs no outlined copy.
    @inline(__always)
    func emitFrame(_ frame: FrameRecord, stream: StreamID?, at time: CaptureTimestamp) {
        deliver(TimelineEvent(connection: record, stream: stream, time: time, kind: .frame(frame)), folded: false)
    }

    /// A message, as `emitFrame`.
    @inline(__always)
    func emitMessage(_ message: MessageRecord, stream: StreamID?, at time: CaptureTimestamp) {
        deliver(TimelineEvent(connection: record, stream: stream, time: time, kind: .message(message)), folded: false)
    }

    @inline(__always)
    private func deliver(_ event: TimelineEvent, folded: Bool) {
        if held != nil { return hold(event) }
        if !opened {
            open(at: event.time ?? record.startTime)
            // Opening numbered the connection: the event was made before.
            var numbered = event
            numbered.connection?.id = record.id
            return folded ? timeline.receive(numbered) : timeline.pass(numbered)
        }
        if folded { timeline.receive(event) } else { timeline.pass(event) }
    }

    /// From now until `releaseHeldEvents`, events are held to be written in time order.
    func holdEvents() {
        if held == nil { held = HeldEvents() }
    }

    private func hold(_ event: TimelineEvent) {
        held?.keep(event)
    }

    /// Writes the held events, oldest first (in the order they came when their times are equal),
    /// each borrowing its kept bytes.
    func releaseHeldEvents() {
        guard let (arena, events) = held.map({ ($0.arena, $0.events) }) else { return }
        held = nil
        let order = events.indices.sorted {
            let (left, right) = (events[$0].event.time ?? .zero, events[$1].event.time ?? .zero)
            return left < right || (left == right && $0 < $1)
        }
        for index in order {
            let kept = events[index]
            if !opened { open(at: kept.event.time ?? record.startTime) }
            arena.lend(kept) { event in
                var numbered = event
                numbered.connection?.id = record.id
                timeline.receive(numbered)
            }
        }
    }

    /// A frame or data message was decoded (whether or not the sink takes it).
    func frameDecoded() { timeline.frameDecoded() }
    func messageDecoded() { timeline.messageDecoded() }

    /// Writes the connection's `connectionOpened`, at the time of its first event (numbering it
    /// then, unless a parallel analysis numbers it as it merges).
    private func open(at time: CaptureTimestamp) {
        opened = true
        if options.numbersConnectionsAsShown { record.id = timeline.takeShownID() }
        timeline.receive(TimelineEvent(connection: record, time: time, kind: .connectionOpened))
    }
}

/// A connection's events held back, with their bytes.
private final class HeldEvents {
    var arena = EventArena()
    var events: [KeptEvent] = []

    func keep(_ event: TimelineEvent) { events.append(arena.keep(event)) }
}

/// One stream of a connection: the connection itself for HTTP/1.1 (no id), or one of the streams
/// a multiplexing stage opens. It owns the stream's totals and counters and says which stream its
/// events belong to.
final class StreamContext {
    let connection: ConnectionContext
    let id: StreamID?
    /// When the stream was opened (the connection's first packet for the connection itself).
    let startTime: CaptureTimestamp
    var totals = ConnectionTotals()
    var counters = ConnectionCounters()
    /// The TLS session decoded on this stream: for the connection itself its own
    /// (`ConnectionContext.tls`), for an HTTP/2 stream the one inside its tunnel.
    var tls: TLSSession? {
        get { id == nil ? connection.tls : tunnelTLS }
        set { if id == nil { connection.tls = newValue } else { tunnelTLS = newValue } }
    }
    private var tunnelTLS: TLSSession?

    init(connection: ConnectionContext, id: StreamID? = nil, openedAt time: CaptureTimestamp? = nil) {
        self.connection = connection
        self.id = id
        startTime = time ?? connection.record.startTime
    }

    var record: ConnectionRecord { connection.record }
    var options: AnalyzerOptions { connection.options }

    func emit(_ kind: consuming TimelineEvent.Kind, at time: CaptureTimestamp?) {
        connection.emit(kind, stream: id, at: time)
    }

    func report(_ issue: Issue) {
        connection.report(issue, stream: id)
    }

    @inline(__always)
    func emitFrame(_ frame: FrameRecord, at time: CaptureTimestamp) {
        connection.emitFrame(frame, stream: id, at: time)
    }

    @inline(__always)
    func emitMessage(_ message: MessageRecord, at time: CaptureTimestamp) {
        connection.emitMessage(message, stream: id, at: time)
    }

    /// The stream ended (a multiplexing stage says so, or the connection's end): what it carried
    /// and how it ended go on the timeline, its counters into the summary. `stage` is its last
    /// stage, already finished; `end` says how the stream's own end compares with TCP's (a
    /// stream ended in order is `.finished`, a reset one `.reset`, one open at the end of the
    /// capture `.endOfCapture`).
    func close(stage: Stage, reason: String, end: ConnectionEndReason, at time: CaptureTimestamp) {
        let (phase, ending) = judgeEnding(of: stage, end: end, at: time)
        emit(.streamClosed(StreamEnd(
            start: startTime, time: time, reason: reason, protocolKind: phase.protocolKind,
            websocketDetection: phase.websocketDetection, totals: totals, counters: counters, ending: ending, tls: tls)), at: time)
    }

    /// A frame or data message was decoded (whether or not the sink takes it).
    func countFrame(_ opcode: WebSocketOpcode, payloadLength: UInt64) {
        counters.countFrame(opcode, payloadLength: payloadLength)
        connection.frameDecoded()
    }

    func countMessage(_ opcode: WebSocketOpcode, payloadLength: Int) {
        counters.countMessage(opcode, payloadLength: payloadLength)
        connection.messageDecoded()
    }
}

extension StreamContext {
    /// What the stream carried and how it ended, read from its last stage (already finished), with
    /// the findings that ending raises reported once: a connection's end and a stream's alike.
    func judgeEnding(of stage: Stage, end: ConnectionEndReason, at time: CaptureTimestamp) -> (ConnectionPhase, ConnectionEnding) {
        let ending = stage.ending(reason: end)
        for issue in Issue.endingFindings(ending, time: time, carrier: id == nil ? "TCP" : "the HTTP/2 stream") {
            report(issue)
        }
        return (stage.phase, ending)
    }
}

/// How many connections hold bytes that may still become events earlier than ones already
/// produced (`Stage.holdsBytesForEarlierEvents`), kept up to date by each connection.
final class HeldBytesTally {
    /// The connections holding such bytes (live capture settles their searches).
    var holders: [ObjectIdentifier: Connection] = [:]
}
