/// Settings of the analysis that do not depend on the packet source.
public struct AnalyzerOptions: Sendable {
    public var reassembly = ReassemblyLimits()
    /// Payload bytes kept per frame and per message; longer ones are reported and truncated.
    public var maxPayloadBytes: Int = 64 << 20
    /// Connections to or from these ports are decoded as WebSocket even without a captured handshake.
    public var websocketPorts: Set<UInt16> = []

    public init() {}
}

/// Runs packets through every stage (packets → TCP → HTTP → WebSocket) and reports a timeline.
///
/// The same analyzer serves capture files and live interfaces; only the packet source differs.
public final class Analyzer: TCPConnectionObserver {
    let options: AnalyzerOptions
    let sink: any TimelineSink
    /// Asked once: whether frame and message events are worth building for the sink.
    let emitsFramesAndMessages: Bool
    /// Totals so far; complete once `finish` has run.
    public internal(set) var summary = CaptureSummary()
    /// WebSocket frames and data messages decoded so far (for `-c`).
    public internal(set) var frameCount: UInt64 = 0
    public internal(set) var messageCount: UInt64 = 0
    /// Per opcode, turned into the summary's by-type counts when the analysis finishes.
    /// (Fixed memory, not arrays: they are updated for every frame and message.)
    let frameCountsByOpcode = UnsafeMutablePointer<UInt64>.allocate(capacity: 16)
    let messageCountsByOpcode = UnsafeMutablePointer<UInt64>.allocate(capacity: 16)
    private var connections: ConnectionTable!
    private let fragments = IPFragmentReassembler()

    public init(options: AnalyzerOptions = AnalyzerOptions(), sink: any TimelineSink) {
        self.options = options
        self.sink = sink
        emitsFramesAndMessages = sink.receivesFramesAndMessages
        frameCountsByOpcode.initialize(repeating: 0, count: 16)
        messageCountsByOpcode.initialize(repeating: 0, count: 16)
        connections = ConnectionTable(limits: options.reassembly, observer: self)
    }

    deinit {
        frameCountsByOpcode.deallocate()
        messageCountsByOpcode.deallocate()
    }

    /// Decodes one captured packet; its bytes need to stay valid only for this call.
    public func process(_ packet: CapturedPacket) {
        summary.packets &+= 1
        summary.capturedBytes &+= UInt64(packet.bytes.count)
        if summary.firstPacketTime == nil {
            summary.firstPacketTime = packet.timestamp
            sink.receive(.captureStarted(packet.timestamp))
        }
        summary.lastPacketTime = packet.timestamp
        if packet.missingLength > 0 { summary.snaplenTruncatedPackets &+= 1 }
        route(PacketDecoder.decode(packet), at: packet.timestamp)
    }

    private func route(_ result: PacketDecodeResult, at time: CaptureTimestamp) {
        switch result {
        case .tcp(let segment):
            // The analyzer owns the table: called without reference counting on every packet.
            Unmanaged.passUnretained(connections.unsafelyUnwrapped)._withUnsafeGuaranteedRef {
                $0.process(segment, at: time)
            }
        case .fragment(let fragment):
            summary.ipFragments &+= 1
            fragments.add(fragment, at: time) { datagram in
                route(PacketDecoder.decodeReassembled(
                    protocolNumber: fragment.protocolNumber, payload: datagram,
                    source: fragment.source, destination: fragment.destination), at: time)
            }
        case .skipped(let reason):
            summary.skippedPackets[reason.rawValue, default: 0] &+= 1
        }
    }

    /// Reports a capture-level problem, such as a file cut off mid-record.
    public func reportCaptureDamage(_ message: String) {
        summary.captureDamage = message
        record(.truncatedCapture(message), connection: nil)
    }

    /// Closes every open connection and delivers the summary; call once, after the last packet.
    @discardableResult
    public func finish(liveStatistics: LiveStatistics? = nil) -> CaptureSummary {
        summary.live = liveStatistics
        connections.finish(at: summary.lastPacketTime ?? .zero)
        summary.tcp = connections.statistics
        for opcode in 0..<16 {
            let name = WebSocketOpcode(rawValue: UInt8(opcode)).description
            if frameCountsByOpcode[opcode] > 0 { summary.framesByType[name] = frameCountsByOpcode[opcode] }
            if messageCountsByOpcode[opcode] > 0 { summary.messagesByType[name] = messageCountsByOpcode[opcode] }
        }
        summary.ipDatagramsReassembled = fragments.reassembled
        summary.ipDatagramsIncomplete = fragments.abandoned &+ UInt64(fragments.pending)
        sink.finish(summary)
        return summary
    }

    public func connectionOpened(_ connection: TCPConnectionInfo, at time: CaptureTimestamp) -> any TCPStreamHandler {
        ConnectionAnalyzer(
            record: ConnectionRecord(
                id: connection.id, client: connection.client, server: connection.server,
                tcpHandshakeSeen: connection.handshakeSeen, startTime: time),
            analyzer: self)
    }

    func record(_ issue: Issue, connection: ConnectionRecord?) {
        summary.issuesByCode[issue.code, default: 0] &+= 1
        sink.receive(.issue(connection, issue))
    }
}

/// Reads every packet of `source` into `analyzer`, then finishes it.
///
/// A capture that ends in a damaged record is decoded up to the damage, which is reported as a
/// `truncated-capture` issue and returned. `shouldStop` is asked between packets.
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
            }
        } catch {
            damage = error
            analyzer.reportCaptureDamage(error.message)
            break
        }
    }
    return (analyzer.finish(), damage)
}
