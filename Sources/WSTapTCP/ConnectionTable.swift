import WSTapCapture
import WSTapPackets

/// Tracks every TCP connection in a capture and feeds each one's reassembled streams to a handler.
public final class ConnectionTable {
    private final class TrackedConnection {
        let id: UInt64
        let client: Endpoint
        let handler: HandlerReference
        var clientInitialSequence: UInt32?
        var lastActivity: CaptureTimestamp
        /// One reassembler per direction, as stored properties: an array of two was checked for
        /// uniqueness on every segment, and a subscript's accessors allocated a frame per call.
        var clientStream = DirectionReassembler()
        var serverStream = DirectionReassembler()

        init(id: UInt64, client: Endpoint, handler: any TCPStreamHandler, time: CaptureTimestamp) {
            self.id = id
            self.client = client
            self.handler = HandlerReference.make(handler)
            lastActivity = time
        }

        var pendingBytes: Int { clientStream.pendingBytes + serverStream.pendingBytes }
    }

    private let limits: ReassemblyLimits
    /// The analyzer that owns this table; it outlives it.
    private unowned(unsafe) let observer: any TCPConnectionObserver
    /// The open connections, each retained once by the table (`Unmanaged`: a lookup on every
    /// packet then costs no reference counting). Closing hands the reference to `justClosed`.
    private var connections: [ConnectionKey: Unmanaged<TrackedConnection>] = [:]
    /// Connections closed during the current call, kept alive until it returns.
    private var justClosed: [TrackedConnection] = []
    /// Recently closed 4-tuples and when they closed, so late segments do not open ghosts.
    private var closedRecently: [ConnectionKey: CaptureTimestamp] = [:]
    private var nextID: UInt64 = 1
    private var pendingBytesTotal = 0
    private var lastSweep: CaptureTimestamp?
    public private(set) var statistics = TCPStatistics()

    /// How long a closed 4-tuple is remembered (capture seconds).
    private static let closedMemorySeconds: Int64 = 120
    private static let sweepIntervalSeconds: Int64 = 10

    public init(limits: ReassemblyLimits = ReassemblyLimits(), observer: any TCPConnectionObserver) {
        self.limits = limits
        self.observer = observer
    }

    deinit {
        for connection in connections.values { connection.release() }
    }

    /// The open connections with their keys, in order of first appearance.
    private var openConnections: [(key: ConnectionKey, connection: TrackedConnection)] {
        connections.map { ($0.key, $0.value.takeUnretainedValue()) }.sorted { $0.connection.id < $1.connection.id }
    }

    public var openConnectionCount: Int { connections.count }

    /// Routes one segment to its connection, opening, reordering and closing as the flags say.
    public func process(_ segment: TCPSegment, at time: CaptureTimestamp) {
        statistics.segments &+= 1
        sweepIfDue(at: time)
        let key = ConnectionKey(segment.source, segment.destination)
        let isSyn = segment.flags.contains(.syn)
        let isSynAck = isSyn && segment.flags.contains(.ack)
        defer { if !justClosed.isEmpty { justClosed.removeAll(keepingCapacity: true) } }
        var found = connections[key]
        if let existing = found, isSyn, !isSynAck, existing._withUnsafeGuaranteedRef({ existing in
            segment.source == existing.client
                && existing.clientInitialSequence.map { $0 != segment.sequenceNumber } ?? false
        }) {
            close(existing.takeUnretainedValue(), key: key, reason: .reused, at: time)
            found = nil
        }
        if found == nil {
            found = open(key: key, segment: segment, isSyn: isSyn, isSynAck: isSynAck, at: time)
        }
        found?._withUnsafeGuaranteedRef { connection in
            process(segment, key: key, isSyn: isSyn, isSynAck: isSynAck, in: connection, at: time)
        }
    }

    /// The rest of `process` once the segment's connection is known.
    private func process(
        _ segment: TCPSegment, key: ConnectionKey, isSyn: Bool, isSynAck: Bool, in connection: TrackedConnection,
        at time: CaptureTimestamp
    ) {
        connection.lastActivity = time
        let direction: StreamDirection = segment.source == connection.client ? .clientToServer : .serverToClient
        if segment.flags.contains(.rst) {
            close(connection, key: key, reason: .reset, at: time)
            return
        }
        if direction == .clientToServer {
            if isSyn, !isSynAck, connection.clientInitialSequence == nil {
                connection.clientInitialSequence = segment.sequenceNumber
            }
            accept(segment, isSyn: isSyn, into: &connection.clientStream, direction: direction, of: connection, at: time)
        } else {
            accept(segment, isSyn: isSyn, into: &connection.serverStream, direction: direction, of: connection, at: time)
        }
        if connection.clientStream.finDelivered, connection.serverStream.finDelivered {
            close(connection, key: key, reason: .finished, at: time)
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
        // `connection` is borrowed for the whole call and owns its handler: neither needs
        // reference counting (a release after the handler's work waits for all its stores).
        let handler = Unmanaged.passUnretained(connection.handler)
        let heldOutOfOrder = stream.accept(
            sequence: sequence, payload: segment.payload, missingLength: segment.missingPayloadLength,
            fin: segment.flags.contains(.fin)
        ) { output in
            handler._withUnsafeGuaranteedRef { $0.forward(output, direction: direction, at: time) }
        }
        if heldOutOfOrder { statistics.outOfOrderSegments &+= 1 }
        pendingBytesTotal += stream.pendingBytes - pendingBefore
        while stream.pendingBytes > limits.maxPendingBytesPerDirection
            || (pendingBytesTotal > limits.maxPendingBytesTotal && stream.pendingBytes > 0)
        {
            let before = stream.pendingBytes
            stream.skipFirstHole { output in
                handler._withUnsafeGuaranteedRef { $0.forward(output, direction: direction, at: time) }
            }
            pendingBytesTotal += stream.pendingBytes - before
        }
    }

    /// Closes every open connection at the end of the capture, in order of first appearance.
    public func finish(at time: CaptureTimestamp) {
        for (key, connection) in openConnections {
            close(connection, key: key, reason: .endOfCapture, at: time)
        }
        closedRecently.removeAll()
        justClosed.removeAll()
    }

    private func open(
        key: ConnectionKey, segment: TCPSegment, isSyn: Bool, isSynAck: Bool, at time: CaptureTimestamp
    ) -> Unmanaged<TrackedConnection>? {
        let client: Endpoint
        let handshakeSeen: Bool
        if isSynAck {
            client = segment.destination
            handshakeSeen = true
        } else if isSyn {
            client = segment.source
            handshakeSeen = true
        } else {
            if closedRecently[key] != nil {
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
        closedRecently[key] = nil
        if connections.count >= limits.maxConnections { evictLeastRecentlyActive(at: time) }
        let server = client == segment.source ? segment.destination : segment.source
        let info = TCPConnectionInfo(id: nextID, client: client, server: server, handshakeSeen: handshakeSeen)
        nextID += 1
        statistics.connections &+= 1
        let connection = TrackedConnection(
            id: info.id, client: client, handler: observer.connectionOpened(info, at: time), time: time)
        let retained = Unmanaged.passRetained(connection)
        connections[key] = retained
        return retained
    }

    private func close(_ connection: TrackedConnection, key: ConnectionKey, reason: ConnectionEndReason, at time: CaptureTimestamp) {
        let handler = connection.handler
        flush(&connection.clientStream, direction: .clientToServer, to: handler, at: time)
        flush(&connection.serverStream, direction: .serverToClient, to: handler, at: time)
        pendingBytesTotal -= connection.pendingBytes
        if let owned = connections.removeValue(forKey: key) { justClosed.append(owned.takeRetainedValue()) }
        closedRecently[key] = time
        handler.closed(reason: reason, at: time)
    }

    private func flush(
        _ stream: inout DirectionReassembler, direction: StreamDirection, to handler: HandlerReference,
        at time: CaptureTimestamp
    ) {
        stream.flush { output in
            handler.forward(output, direction: direction, at: time)
        }
        statistics.retransmittedBytes &+= stream.retransmittedBytes
        statistics.missingBytes &+= stream.missingBytes
        statistics.conflictingRetransmissions &+= stream.conflicts
    }

    private func sweepIfDue(at time: CaptureTimestamp) {
        guard let last = lastSweep else {
            lastSweep = time
            return
        }
        guard time.seconds >= last.seconds &+ Self.sweepIntervalSeconds else { return }
        lastSweep = time
        let idle = openConnections.filter { $0.connection.lastActivity.adding(seconds: limits.idleTimeoutSeconds) < time }
        for (key, connection) in idle {
            close(connection, key: key, reason: .idleTimeout, at: time)
        }
        closedRecently = closedRecently.filter { $0.value.adding(seconds: Self.closedMemorySeconds) >= time }
    }

    /// Closes the least recently active hundredth of the table (at least one connection).
    private func evictLeastRecentlyActive(at time: CaptureTimestamp) {
        let count = max(1, connections.count / 100)
        let oldest = openConnections.sorted {
            ($0.connection.lastActivity, $0.connection.id) < ($1.connection.lastActivity, $1.connection.id)
        }.prefix(count)
        for (key, connection) in oldest.sorted(by: { $0.connection.id < $1.connection.id }) {
            close(connection, key: key, reason: .evicted, at: time)
        }
    }
}

/// A connection's handler behind a class of the table's own: the existential is opened once,
/// when the connection opens, so each segment's call needs no reference counting (a borrowed
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
        Unmanaged.passUnretained(handler)._withUnsafeGuaranteedRef { handler in
            switch output {
            case .bytes(let bytes): handler.receive(bytes, direction: direction, at: time)
            case .gap(let range): handler.missing(range, direction: direction, at: time)
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
