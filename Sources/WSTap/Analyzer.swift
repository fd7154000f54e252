import WSTapCore
import WSTapCapture
import WSTapPackets
import WSTapTCP
import WSTapHTTP
import WSTapWebSocket
import WSTapApplication

/// Settings of the analysis that do not depend on the packet source.
public struct AnalyzerOptions: Sendable {
    public var reassembly = ReassemblyLimits()
    /// Payload bytes kept per frame and per message; longer ones are reported and truncated.
    public var maxPayloadBytes: Int = .mebibytes(64)
    /// Connections to or from these ports are decoded as WebSocket even without a captured handshake
    /// (the port table of `stages`).
    public var websocketPorts: Set<UInt16> = [] {
        didSet {
            for port in oldValue { stages.ports[port] = nil }
            for port in websocketPorts { stages.ports[port] = ConnectionChain.websocketByPort }
        }
    }
    /// The NSS key log TLS connections are decrypted with; nil leaves them encrypted (each is
    /// still shown, with why it is not decrypted).
    public var keyLog: KeyLog?
    /// Live capture: a TLS connection whose secrets are not in the key log yet waits for them
    /// (its records held, bounded) while the key log is re-read.
    public var waitsForTLSKeys = false
    /// Keep count of connections holding bytes that may still become events with earlier times
    /// (live: a streaming output writes at once while none does; `Analyzer.holdsBytesForEarlierEvents`).
    public var tracksHeldBytes = false
    /// permessage-deflate contexts (up to about 55 KB each with their window and output buffer)
    /// kept at once per analyzer; past it the least recently used connection's is given back
    /// (`InflaterBudget`, docs/limits.md).
    public var maxCompressionContexts = 4096
    /// The tables that choose each connection's stages (`ConnectionChain.standard`).
    var stages = ConnectionChain.standard
    /// Connections are numbered in the order their first events are written (1, 2, 3… with no
    /// hole for an attempt that carried nothing, such as a SYN answered by a reset); false keeps
    /// the connection table's order of opening, for a parallel analysis that numbers them as it
    /// merges (WSTapParallel).
    package var numbersConnectionsAsShown = true
    /// Whether the analyzer says which key log decrypts TLS (and which of its lines it could not
    /// use): of several analyzers of one capture (`--jobs`), only one does.
    package var announcesKeyLog = true

    public init() {}

    /// Decodes the messages of WebSocket streams that negotiated `subprotocol`
    /// (`Sec-WebSocket-Protocol`, compared without case) with a new decoder from `makeDecoder`
    /// per stream; its messages are named `protocolName`.
    public mutating func registerMessageDecoder(
        subprotocol: String, protocolName: String, _ makeDecoder: @escaping @Sendable () -> any MessageDecoder
    ) {
        stages.register(subprotocol: subprotocol, MessageStageEntry(protocolName: protocolName, make: makeDecoder))
    }

    /// The application protocols `forceApplication` knows, by name, sorted.
    public var applicationProtocolNames: [String] { stages.applications.keys.sorted() }

    /// Decodes the messages of the WebSocket streams to `port`, or whose request path starts
    /// with `pathPrefix`, or of every stream when neither is given, as `protocolName`
    /// (`--app`): before the negotiated subprotocol, the URL and sniffing. False when no such
    /// protocol is registered.
    @discardableResult
    public mutating func forceApplication(_ protocolName: String, port: UInt16? = nil, pathPrefix: String? = nil) -> Bool {
        guard let entry = stages.applications[protocolName.lowercased()] else { return false }
        stages.forced.append(ForcedApplication(entry: entry, port: port, pathPrefix: pathPrefix))
        return true
    }

    /// Decodes the messages of WebSocket streams whose request target starts with `pathPrefix`
    /// (protocols without a token, such as Socket.IO's `/socket.io/`).
    public mutating func registerMessageDecoder(
        pathPrefix: String, protocolName: String, _ makeDecoder: @escaping @Sendable () -> any MessageDecoder
    ) {
        stages.paths.append((pathPrefix, MessageStageEntry(protocolName: protocolName, make: makeDecoder)))
    }
}

/// Runs packets through every stage (packets → TCP → a chain of stages per connection) and
/// reports a timeline.
///
/// The same analyzer serves capture files and live interfaces; only the packet source differs.
public final class Analyzer: TCPConnectionObserver {
    let options: AnalyzerOptions
    /// The capture-level counters (packets, fragments, TCP); the connections' share is folded
    /// from their events by `timeline`, and the two are merged when the analysis finishes.
    public private(set) var summary = CaptureSummary()
    private let timeline: TimelineFold
    /// Called for every packet: held by hand, so the call costs no reference counting.
    private let connections: ManuallyRetained<ConnectionTable>
    private let fragments = IPFragmentReassembler()
    private let heldBytes: HeldBytesTally?
    /// The zlib contexts of this analyzer's connections (`AnalyzerOptions.maxCompressionContexts`).
    private let inflaters: InflaterBudget

    public init(options: AnalyzerOptions = AnalyzerOptions(), sink: any TimelineSink) {
        self.options = options
        timeline = TimelineFold(sink: sink)
        heldBytes = options.tracksHeldBytes ? HeldBytesTally() : nil
        inflaters = InflaterBudget(maxContexts: options.maxCompressionContexts)
        let table = ConnectionTable(limits: options.reassembly)
        connections = ManuallyRetained(retaining: table)
        table.observer = self
        if options.announcesKeyLog, let keyLog = options.keyLog { announce(keyLog) }
    }

    /// Makes this analyzer one of several that share a capture's connections (WSTapParallel):
    /// idle connections are swept only through `sweepConnections`, where one analyzer of the
    /// whole capture would sweep, connections are evicted through `evictConnections` (as a census
    /// of the whole capture decides) and on its own only past `ownEvictionLimit`, and each
    /// connection numbered and removed is reported by id.
    package func shareConnections(
        ownEvictionLimit: Int, numbered: @escaping (UInt64) -> Void, removed: @escaping (UInt64) -> Void
    ) {
        connections.with { table in
            table.sweepsOnItsOwn = false
            table.ownEvictionLimit = ownEvictionLimit
            table.connectionNumbered = { id, _ in numbered(id) }
            table.connectionRemoved = removed
        }
    }

    /// Says which key log decrypts TLS, and which of its lines could not be used.
    private func announce(_ keyLog: KeyLog) {
        summary.keyLog = KeyLogUse(path: keyLog.path, source: keyLog.source, connections: keyLog.count)
        for line in keyLog.malformedLines {
            timeline.receive(.issue(nil, .keyLogLineMalformed(line, path: keyLog.path)))
        }
        if keyLog.malformedLineCount > keyLog.malformedLines.count {
            timeline.receive(.issue(nil, .keyLogLinesMalformed(keyLog.malformedLineCount - keyLog.malformedLines.count, path: keyLog.path)))
        }
        if keyLog.linesPastLimit > 0 {
            timeline.receive(.issue(nil, .keyLogTooLarge(keyLog.linesPastLimit, path: keyLog.path)))
        }
    }

    deinit { connections.release() }

    /// WebSocket frames and data messages decoded so far (for `sniff -c`).
    public var frameCount: UInt64 { timeline.framesDecoded }
    public var messageCount: UInt64 { timeline.messagesDecoded }

    /// Some bytes are held that may still be decoded into events earlier than events already
    /// produced: segments behind a TCP hole, or bytes a frame search holds. While none are, every
    /// event produced so far can be written (nothing earlier can follow). Needs `tracksHeldBytes`;
    /// without it, always true.
    public var holdsBytesForEarlierEvents: Bool {
        guard let heldBytes else { return true }
        return !heldBytes.holders.isEmpty || connections.with(\.holdsOutOfOrderSegments)
    }

    /// Live capture, nothing has come for a while: frame searches decide on the bytes they hold (a
    /// connection caught mid-way shows its first frame without waiting for the next). Returns the
    /// connections that were searching for frames and decided. Needs `tracksHeldBytes`.
    public func settleFrameSearches(at time: CaptureTimestamp) -> [ConnectionRecord] {
        guard let heldBytes else { return [] }
        var settled: [ConnectionRecord] = []
        for (_, connection) in heldBytes.holders.sorted(by: { $0.value.record.id < $1.value.record.id }) {
            if connection.settle(at: time) { settled.append(connection.record) }
        }
        return settled
    }

    /// Decodes one captured packet; its bytes need to stay valid only for this call.
    public func process(_ packet: CapturedPacket) {
        count(packet)
        route(PacketDecoder.decode(packet), at: packet.timestamp)
    }

    /// Counts a packet in the summary (the first one also starts the timeline) without
    /// decoding it: `route` decodes what it carried.
    package func count(_ packet: CapturedPacket) {
        summary.packets &+= 1
        summary.capturedBytes &+= UInt64(packet.bytes.count)
        if summary.firstPacketTime == nil {
            summary.firstPacketTime = packet.timestamp
            timeline.sink.receive(.captureStarted(packet.timestamp))
        }
        summary.lastPacketTime = packet.timestamp
        if packet.missingLength > 0 { summary.snaplenTruncatedPackets &+= 1 }
    }

    /// Decodes what a packet (or a reassembled IP datagram) carried, captured at `time`.
    package func route(_ result: PacketDecodeResult, at time: CaptureTimestamp) {
        switch result {
        case .tcp(let segment):
            connections.with { $0.process(segment, at: time) }
        case .fragment(let fragment):
            summary.ipFragments &+= 1
            reassemble(fragment, at: time)
        case .skipped(let reason):
            summary.skippedPackets[reason.rawValue, default: 0] &+= 1
        }
    }

    /// Adds an IP fragment; the datagram it completes is decoded.
    private func reassemble(_ fragment: IPFragment, at time: CaptureTimestamp) {
        fragments.add(fragment, at: time) { datagram in
            route(PacketDecoder.decodeReassembled(
                protocolNumber: fragment.protocolNumber, payload: datagram,
                source: fragment.source, destination: fragment.destination), at: time)
        }
    }

    /// Reports a capture-level problem, such as a file cut off mid-record.
    public func reportCaptureDamage(_ message: String) {
        summary.captureDamage = message
        timeline.receive(.issue(nil, .truncatedCapture(message)))
    }

    /// An idle sweep of an analyzer that shares a capture's connections (`shareConnections`), at
    /// a point of the whole capture where one analyzer would sweep.
    package func sweepConnections(at time: CaptureTimestamp) {
        connections.with { $0.sweep(at: time) }
    }

    /// Closes those of `keys` that are this analyzer's connections (`shareConnections`): the ones
    /// one analyzer of the whole capture would evict at this point.
    package func evictConnections(_ keys: [ConnectionKey], at time: CaptureTimestamp) {
        connections.with { $0.evict(keys, at: time) }
    }

    /// Closes every open connection and delivers the summary; call once, after the last packet.
    /// `endingAt`: when the capture ended, for an analyzer that did not see its last packet.
    @discardableResult
    public func finish(liveStatistics: LiveStatistics? = nil, endingAt: CaptureTimestamp? = nil) -> CaptureSummary {
        summary.live = liveStatistics
        let end = endingAt ?? summary.lastPacketTime ?? .zero
        connections.with { $0.finish(at: end) }
        summary.tcp = connections.with(\.statistics)
        summary.countDatagrams(of: fragments)
        summary.merge(timeline.summary)
        timeline.sink.finish(summary)
        return summary
    }

    public func connectionOpened(_ connection: TCPConnectionInfo, at time: CaptureTimestamp) -> any TCPStreamHandler {
        let record = ConnectionRecord(
            id: connection.id, client: connection.client, server: connection.server,
            tcpHandshakeSeen: connection.handshakeSeen, startTime: time)
        return Connection(context: ConnectionContext(
            record: record, options: options, timeline: timeline, heldBytes: heldBytes, inflaters: inflaters))
    }
}

/// Reads every packet of `source` into `analyzer`, then finishes it.
///
/// A capture that ends in a damaged record is decoded up to the damage, which is reported as a
/// `truncated-capture` issue and returned (of a set of files, each damaged file is reported and
/// the first damage returned). `shouldStop` is asked between packets.
public func analyze(
    _ source: any PacketSource, with analyzer: Analyzer, shouldStop: () -> Bool = { false }
) -> (summary: CaptureSummary, damage: CaptureError?) {
    var damage: CaptureError?
    reading: while !shouldStop() {
        do {
            switch try source.nextPacket() {
            case .packet(let packet): analyzer.process(packet)
            case .noPacketYet: continue
            case .endOfCapture: break reading
            case .partDamaged(let error):
                if damage == nil { damage = error }
                analyzer.reportCaptureDamage(error.message)
            }
        } catch {
            damage = error
            analyzer.reportCaptureDamage(error.message)
            break
        }
    }
    return (analyzer.finish(), damage)
}
