import WSTapCore
import WSTapPackets

/// Tracks every TCP connection in a capture and feeds each one's reassembled streams to a handler.
public final class ConnectionTable {
    private final class TrackedConnection {
        let info: TCPConnectionInfo
        let key: ConnectionKey
        let openTime: CaptureTimestamp
        /// Created with the connection's first bytes or FIN: a SYN flood or a port scan leaves
        /// many connections that never have any, and they then cost no handler. Retained once,
        /// by hand (`ManuallyRetained`), so a segment's lookup costs no reference counting.
        var handler: ManuallyRetained<HandlerReference>?
        var clientInitialSequence: UInt32?
        var lastActivity: CaptureTimestamp
        /// One reassembler per direction, as stored properties: an array of two was checked for
        /// uniqueness on every segment, and a subscript's accessors allocated a frame per call.
        var clientStream = DirectionReassembler()
        var serverStream = DirectionReassembler()
        /// Neighbours in the table's list by last activity (not retained: the table owns both).
        var lessRecent: Unretained<TrackedConnection>?
        var moreRecent: Unretained<TrackedConnection>?

        init(info: TCPConnectionInfo, key: ConnectionKey, time: CaptureTimestamp) {
            self.info = info
            self.key = key
            openTime = time
            lastActivity = time
        }

        deinit { handler?.release() }

        var id: UInt64 { info.id }
        var client: Endpoint { info.client }

        var pendingBytes: Int { clientStream.pendingBytes + serverStream.pendingBytes }
    }

    private let limits: ReassemblyLimits
    /// The analyzer that owns this table; it outlives it.
    /// Asked for a handler when a connection's first bytes arrive (the analyzer, which owns the table).
    public weak var observer: (any TCPConnectionObserver)?
    /// The open connections, each retained once by the table (by hand: a lookup on every
    /// packet then costs no reference counting). Closing hands the reference to `justClosed`.
    private var connections = ConnectionIndex<ConnectionKey, ManuallyRetained<TrackedConnection>>()
    /// Connections closed during the current call, kept alive until it returns.
    private var justClosed: [TrackedConnection] = []
    /// The open connections from least to most recently active, linked through the connections:
    /// idle timeouts and eviction take from the front without scanning the table.
    private var leastRecent: Unretained<TrackedConnection>?
    private var mostRecent: Unretained<TrackedConnection>?
    /// 4-tuples that ended with FIN or RST, at most `limits.maxConnections` of them.
    private var closedRecently: RecentlyClosed<ConnectionKey>
    private var nextID: UInt64 = 1
    /// False when the idle sweep is driven from outside (`sweep(at:)`): a flow shard sees only
    /// its own segments, so the sweep points of the whole capture are given to it.
    public var sweepsOnItsOwn = true
    /// Told of every connection numbered (its id and the time of the packet that opened it) and
    /// of every connection removed from the table, shown or not: a flow shard's ids are mapped to
    /// the whole capture's from these.
    public var connectionNumbered: ((UInt64, CaptureTimestamp) -> Void)?
    public var connectionRemoved: ((UInt64) -> Void)?
    private var pendingBytesTotal = 0
    /// The open connections at which the table evicts on its own: `limits.maxConnections`; in a
    /// parallel analysis, where a `ConnectionCensus` of the whole capture decides evictions
    /// (`evict`), a bound on the job's own table.
    package var ownEvictionLimit: Int
    private var lastSweep: CaptureTimestamp?
    public private(set) var statistics = TCPStatistics()

    /// How long a closed 4-tuple is remembered (capture seconds).
    static let closedMemorySeconds: Int64 = 120
    private static let sweepIntervalSeconds: Int64 = 10

    /// A table; its connections' bytes go to handlers `observer` makes (it is held weakly: its
    /// owner sets it, often after making the table).
    public init(limits: ReassemblyLimits = ReassemblyLimits(), observer: (any TCPConnectionObserver)? = nil) {
        self.limits = limits
        self.observer = observer
        ownEvictionLimit = limits.maxConnections
        closedRecently = RecentlyClosed(capacity: limits.maxConnections)
    }

    deinit {
        for connection in connections.values { connection.release() }
    }

    public var openConnectionCount: Int { connections.count }

    /// Some connection holds segments behind a hole (they keep their own, earlier times).
    public var holdsOutOfOrderSegments: Bool { pendingBytesTotal > 0 }

    /// Routes one segment to its connection, opening, reordering and closing as the flags say.
    public func process(_ segment: TCPSegment, at time: CaptureTimestamp) {
        statistics.segments &+= 1
        if sweepsOnItsOwn { sweepIfDue(at: time) }
        let key = ConnectionKey(segment.source, segment.destination)
        let isSyn = segment.flags.contains(.syn)
        let isSynAck = isSyn && segment.flags.contains(.ack)
        defer { if !justClosed.isEmpty { justClosed.removeAll(keepingCapacity: true) } }
        var found = connections[key]?.unretained
        if let existing = found, isSyn, !isSynAck, existing.with({ existing in
            segment.source == existing.client
                && existing.clientInitialSequence.map { $0 != segment.sequenceNumber } ?? false
        }) {
            close(existing.object, reason: .reused, at: time)
            found = nil
        }
        if found == nil {
            found = open(key: key, segment: segment, isSyn: isSyn, isSynAck: isSynAck, at: time)
        }
        found?.with { connection in
            process(segment, isSyn: isSyn, isSynAck: isSynAck, in: connection, at: time)
        }
    }

    /// The rest of `process` once the segment's connection is known.
    private func process(
        _ segment: TCPSegment, isSyn: Bool, isSynAck: Bool, in connection: TrackedConnection,
        at time: CaptureTimestamp
    ) {
        connection.lastActivity = time
        let tracked = Unretained(connection)
        if !(mostRecent?.isSame(as: tracked) ?? false) {
            unlink(tracked)
            link(tracked)
        }
        let direction: StreamDirection = segment.source == connection.client ? .clientToServer : .serverToClient
        if segment.flags.contains(.rst) {
            close(connection, reason: .reset, at: time)
            return
        }
        if direction == .clientToServer {
            if isSyn, !isSynAck, connection.clientInitialSequence == nil {
                connection.clientInitialSequence = segment.sequenceNumber
            }
            accept(segment, isSyn: isSyn, into: &connection.clientStream, direction: direction, of: connection, at: time)
            if segment.flags.contains(.ack), connection.serverStream.heldSegments > 0 {
                acknowledge(segment.acknowledgmentNumber, in: &connection.serverStream, direction: .serverToClient, of: connection, at: time)
            }
        } else {
            accept(segment, isSyn: isSyn, into: &connection.serverStream, direction: direction, of: connection, at: time)
            if segment.flags.contains(.ack), connection.clientStream.heldSegments > 0 {
                acknowledge(segment.acknowledgmentNumber, in: &connection.clientStream, direction: .clientToServer, of: connection, at: time)
            }
        }
        if connection.clientStream.finDelivered, connection.serverStream.finDelivered {
            close(connection, reason: .finished, at: time)
        }
    }

    /// Reassembles one segment in its direction's stream, and enforces the buffering limits.
    private func accept(
        _ segment: TCPSegment, isSyn: Bool, into stream: inout DirectionReassembler, direction: StreamDirection,
        of connection: TrackedConnection, at time: CaptureTimestamp
    ) {
        if isSyn { stream.start(at: segment.sequenceNumber &+ 1) }
        let sequence = isSyn ? segment.sequenceNumber &+ 1 : segment.sequenceNumber
        let pendingBefore = stream.pendingBytes
        let (table, tracked) = (Unretained(self), Unretained(connection))
        let heldOutOfOrder = stream.accept(
            sequence: sequence, payload: segment.payload, missingLength: segment.missingPayloadLength,
            fin: segment.flags.contains(.fin), at: time
        ) { output in
            table.with { $0.forward(output, direction: direction, of: tracked, at: time) }
        }
        if heldOutOfOrder { statistics.outOfOrderSegments &+= 1 }
        pendingBytesTotal += stream.pendingBytes - pendingBefore
        while stream.pendingBytes > limits.maxPendingBytesPerDirection
            || stream.heldSegments > DirectionReassembler.maxHeldSegments
            || (pendingBytesTotal > limits.maxPendingBytesTotal && stream.pendingBytes > 0)
        {
            let before = stream.pendingBytes
            stream.skipFirstHole(at: time) { output in
                table.with { $0.forward(output, direction: direction, of: tracked, at: time) }
            }
            pendingBytesTotal += stream.pendingBytes - before
        }
    }

    /// The peer's acknowledgment: holes it covers in `stream` are declared lost now.
    private func acknowledge(
        _ acknowledgment: UInt32, in stream: inout DirectionReassembler, direction: StreamDirection,
        of connection: TrackedConnection, at time: CaptureTimestamp
    ) {
        let before = stream.pendingBytes
        let (table, tracked) = (Unretained(self), Unretained(connection))
        stream.acknowledged(acknowledgment, at: time) { output in
            table.with { $0.forward(output, direction: direction, of: tracked, at: time) }
        }
        pendingBytesTotal += stream.pendingBytes - before
    }

    /// Closes every open connection at the end of the capture, in order of first appearance.
    public func finish(at time: CaptureTimestamp) {
        close(leastRecentlyActive(upTo: .max, while: { _ in true }), reason: .endOfCapture, at: time)
        closedRecently.removeAll()
        justClosed.removeAll()
    }

    private func open(
        key: ConnectionKey, segment: TCPSegment, isSyn: Bool, isSynAck: Bool, at time: CaptureTimestamp
    ) -> Unretained<TrackedConnection>? {
        let client: Endpoint
        let handshakeSeen: Bool
        if isSynAck {
            client = segment.destination
            handshakeSeen = true
        } else if isSyn {
            client = segment.source
            handshakeSeen = true
        } else {
            if closedRecently.contains(key) {
                statistics.segmentsAfterClose &+= 1
                return nil
            }
            guard segment.payload.count + segment.missingPayloadLength > 0 else {
                statistics.segmentsWithoutConnection &+= 1
                return nil
            }
            // No handshake seen: the side with the lower port is most likely the server.
            client = segment.source.port > segment.destination.port ? segment.source
                : segment.source.port < segment.destination.port ? segment.destination : segment.source
            handshakeSeen = false
        }
        closedRecently.reopened(key)
        if connections.count >= ownEvictionLimit { evictLeastRecentlyActive(at: time) }
        let server = client == segment.source ? segment.destination : segment.source
        let info = TCPConnectionInfo(id: nextID, client: client, server: server, handshakeSeen: handshakeSeen)
        connectionNumbered?(nextID, time)
        nextID += 1
        statistics.connections &+= 1
        let connection = TrackedConnection(info: info, key: key, time: time)
        connections.updateValue(ManuallyRetained(retaining: connection), forKey: key)
        link(Unretained(connection))
        return Unretained(connection)
    }

    /// The connection's handler, asked of the observer when the first output needs it.
    /// `connection` is borrowed by every caller and owns its handler: neither needs reference
    /// counting (a release after the handler's work waits for all its stores).
    @inline(__always)
    private func handler(of connection: TrackedConnection) -> ManuallyRetained<HandlerReference> {
        connection.handler ?? startHandler(of: connection)
    }

    @inline(never)
    private func startHandler(of connection: TrackedConnection) -> ManuallyRetained<HandlerReference> {
        let opened: any TCPStreamHandler = observer?.connectionOpened(connection.info, at: connection.openTime) ?? DiscardingHandler()
        let handler = ManuallyRetained(retaining: HandlerReference.make(opened))
        connection.handler = handler
        return handler
    }

    /// Hands reassembly output to the connection's handler. Closures capture the table and the
    /// connection unretained: captured references are retained and released around every segment.
    @inline(__always)
    private func forward(
        _ output: DirectionReassembler.Output, direction: StreamDirection, of connection: Unretained<TrackedConnection>,
        at time: CaptureTimestamp
    ) {
        connection.with { handler(of: $0) }.with {
            $0.forward(output, direction: direction, at: time)
        }
    }

    private func close(_ connection: TrackedConnection, reason: ConnectionEndReason, at time: CaptureTimestamp) {
        let key = connection.key
        flush(&connection.clientStream, direction: .clientToServer, of: connection, at: time)
        flush(&connection.serverStream, direction: .serverToClient, of: connection, at: time)
        pendingBytesTotal -= connection.pendingBytes
        if let owned = connections.removeValue(forKey: key) {
            unlink(owned.unretained)
            justClosed.append(owned.takeOwnership())
        }
        connectionRemoved?(connection.id)
        // A connection that went idle or was evicted may still be alive: if it sends data again,
        // it comes back as a connection seen mid-stream rather than losing the bytes.
        if reason == .finished || reason == .reset { closedRecently.remember(key, at: time) }
        connection.handler?.with { $0.closed(reason: reason, at: time) }
    }

    /// Appends `connection` as the most recently active.
    private func link(_ connection: Unretained<TrackedConnection>) {
        connection.with {
            $0.lessRecent = mostRecent
            $0.moreRecent = nil
        }
        if let last = mostRecent { last.with { $0.moreRecent = connection } } else { leastRecent = connection }
        mostRecent = connection
    }

    private func unlink(_ connection: Unretained<TrackedConnection>) {
        let (previous, next) = connection.with { ($0.lessRecent, $0.moreRecent) }
        if let previous { previous.with { $0.moreRecent = next } } else { leastRecent = next }
        if let next { next.with { $0.lessRecent = previous } } else { mostRecent = previous }
        connection.with {
            $0.lessRecent = nil
            $0.moreRecent = nil
        }
    }

    /// The `count` least recently active connections, oldest first, while `include` holds.
    private func leastRecentlyActive(upTo count: Int, while include: (TrackedConnection) -> Bool) -> [TrackedConnection] {
        var found: [TrackedConnection] = []
        var candidate = leastRecent
        while let connection = candidate?.object, found.count < count, include(connection) {
            found.append(connection)
            candidate = connection.moreRecent
        }
        return found
    }

    private func flush(
        _ stream: inout DirectionReassembler, direction: StreamDirection, of connection: TrackedConnection,
        at time: CaptureTimestamp
    ) {
        let (table, tracked) = (Unretained(self), Unretained(connection))
        stream.flush(at: time) { output in
            table.with { $0.forward(output, direction: direction, of: tracked, at: time) }
        }
        statistics.retransmittedBytes &+= stream.retransmittedBytes
        statistics.missingBytes &+= stream.missingBytes
        statistics.conflictingRetransmissions &+= stream.conflicts
    }

    /// Whether a segment at `time` starts an idle sweep, and the time that decides the next one:
    /// the rule a table applies to its own segments, for a reader that drives several tables.
    public static func sweepIsDue(at time: CaptureTimestamp, lastSweep: inout CaptureTimestamp?) -> Bool {
        guard let last = lastSweep else {
            lastSweep = time
            return false
        }
        guard time.seconds >= last.seconds &+ sweepIntervalSeconds else { return false }
        lastSweep = time
        return true
    }

    private func sweepIfDue(at time: CaptureTimestamp) {
        if Self.sweepIsDue(at: time, lastSweep: &lastSweep) { sweep(at: time) }
    }

    /// Closes the connections idle longer than the timeout and forgets old closed 4-tuples.
    public func sweep(at time: CaptureTimestamp) {
        close(leastRecentlyActive(upTo: .max) { $0.lastActivity.adding(seconds: limits.idleTimeoutSeconds) < time },
              reason: .idleTimeout, at: time)
        closedRecently.forget(before: time)
    }

    /// Closes those of the connections `keys` that are in this table (the ones a census of the
    /// whole capture evicted), in order of first appearance.
    package func evict(_ keys: [ConnectionKey], at time: CaptureTimestamp) {
        close(keys.compactMap { connections[$0]?.unretained.object }, reason: .evicted, at: time)
    }

    /// Closes the least recently active hundredth of the table (at least one connection), in
    /// order of first appearance.
    private func evictLeastRecentlyActive(at time: CaptureTimestamp) {
        close(leastRecentlyActive(upTo: max(1, connections.count / 100), while: { _ in true }), reason: .evicted, at: time)
    }

    /// Closes `several` in order of first appearance, as every close of more than one goes.
    private func close(_ several: [TrackedConnection], reason: ConnectionEndReason, at time: CaptureTimestamp) {
        for connection in several.sorted(by: { $0.id < $1.id }) {
            close(connection, reason: reason, at: time)
        }
    }
}

/// A connection's handler behind a class of the table's own: the existential is opened once,
/// when the handler is made, so each segment's call needs no reference counting (a borrowed
/// existential is retained around every call).
class HandlerReference {
    static func make(_ handler: some TCPStreamHandler) -> HandlerReference {
        TypedHandlerReference(handler)
    }

    /// Hands one piece of reassembly output to the handler.
    func forward(_ output: DirectionReassembler.Output, direction: StreamDirection, at time: CaptureTimestamp) {
        preconditionFailure("HandlerReference is abstract")
    }

    func closed(reason: ConnectionEndReason, at time: CaptureTimestamp) {
        preconditionFailure("HandlerReference is abstract")
    }
}

private final class TypedHandlerReference<Handler: TCPStreamHandler>: HandlerReference {
    private let handler: Handler

    init(_ handler: Handler) { self.handler = handler }

    override func forward(_ output: DirectionReassembler.Output, direction: StreamDirection, at time: CaptureTimestamp) {
        Unretained(handler).with { handler in
            switch output {
            case .bytes(let bytes, let capturedAt): handler.receive(bytes, direction: direction, at: capturedAt)
            case .gap(let range, let declaredAt): handler.missing(range, direction: direction, at: declaredAt)
            case .conflict(let sequence, let count):
                handler.conflictingRetransmission(startSequence: sequence, byteCount: count, direction: direction, at: time)
            case .fin: handler.finished(direction: direction, at: time)
            }
        }
    }

    override func closed(reason: ConnectionEndReason, at time: CaptureTimestamp) {
        handler.closed(reason: reason, at: time)
    }
}

/// Takes a connection's bytes when no observer is left to make a handler for it.
private final class DiscardingHandler: TCPStreamHandler {
    func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) {}
    func missing(_ range: MissingRange, direction: StreamDirection, at time: CaptureTimestamp) {}
    func conflictingRetransmission(startSequence: UInt32, byteCount: Int, direction: StreamDirection, at time: CaptureTimestamp) {}
    func finished(direction: StreamDirection, at time: CaptureTimestamp) {}
    func closed(reason: ConnectionEndReason, at time: CaptureTimestamp) {}
}
