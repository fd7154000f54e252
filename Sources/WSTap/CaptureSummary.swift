import WSTapCore
import WSTapCapture
import WSTapPackets
import WSTapTCP
import WSTapHTTP
import WSTapWebSocket

/// Totals over a whole capture, shared by every output format.
public struct CaptureSummary: Sendable, Equatable {
    public var packets: UInt64 = 0
    public var capturedBytes: UInt64 = 0
    public var firstPacketTime: CaptureTimestamp?
    public var lastPacketTime: CaptureTimestamp?
    /// Packets that did not yield a TCP segment, by reason.
    public var skippedPackets: [String: UInt64] = [:]
    /// IP fragments seen, datagrams rebuilt from them, and datagrams never completed.
    public var ipFragments: UInt64 = 0
    public var ipDatagramsReassembled: UInt64 = 0
    public var ipDatagramsIncomplete: UInt64 = 0
    /// Packets cut by the snapshot length.
    public var snaplenTruncatedPackets: UInt64 = 0
    public var tcp = TCPStatistics()
    public var connectionsByProtocol: [String: UInt64] = [:]
    /// Connections by how they ended (`ConnectionOutcome`).
    public var connectionsByOutcome: [String: UInt64] = [:]
    public var upgradesByOutcome: [String: UInt64] = [:]
    /// Upgrades by the protocol the 101 selected.
    public var upgradesByProtocol: [String: UInt64] = [:]
    public var framesByType: [String: UInt64] = [:]
    public var messagesByType: [String: UInt64] = [:]
    public var framePayloadBytes: UInt64 = 0
    public var messagePayloadBytes: UInt64 = 0
    public var issuesByCode: [String: UInt64] = [:]
    /// TLS connections by whether they were decrypted (`decrypted`, `not-decrypted`), and their
    /// record bytes in both directions.
    public var tlsConnections: [String: UInt64] = [:]
    public var tlsRecordBytes: UInt64 = 0
    /// Counters of a live capture (`wstap sniff`).
    public var live: LiveStatistics?
    /// The key log TLS was decrypted with: its path, how it was chosen, and how many
    /// connections it has secrets for (not an issue: it is what the user asked for).
    public var keyLog: KeyLogUse?
    /// Set when the capture file ended in a damaged or incomplete record.
    public var captureDamage: String?

    public init() {}

    /// Adds connections' frame and message counters, by opcode name.
    public mutating func add(_ counters: ConnectionCounters) {
        for opcode in 0..<16 {
            let name = WebSocketOpcode(rawValue: UInt8(opcode)).description
            if counters.framesByOpcode[opcode] > 0 { framesByType[name, default: 0] &+= counters.framesByOpcode[opcode] }
            if counters.messagesByOpcode[opcode] > 0 { messagesByType[name, default: 0] &+= counters.messagesByOpcode[opcode] }
        }
        framePayloadBytes.addSaturating(counters.framePayloadBytes)
        messagePayloadBytes.addSaturating(counters.messagePayloadBytes)
    }

    /// Combines the summaries of two analyses of disjoint parts of a capture (flow shards, or the
    /// capture-level and connection-level parts of one analysis): counts add up, times widen.
    public mutating func merge(_ other: CaptureSummary) {
        packets &+= other.packets
        capturedBytes &+= other.capturedBytes
        firstPacketTime = [firstPacketTime, other.firstPacketTime].compactMap { $0 }.min()
        lastPacketTime = [lastPacketTime, other.lastPacketTime].compactMap { $0 }.max()
        skippedPackets.merge(other.skippedPackets, uniquingKeysWith: &+)
        ipFragments &+= other.ipFragments
        ipDatagramsReassembled &+= other.ipDatagramsReassembled
        ipDatagramsIncomplete &+= other.ipDatagramsIncomplete
        snaplenTruncatedPackets &+= other.snaplenTruncatedPackets
        tcp.merge(other.tcp)
        connectionsByProtocol.merge(other.connectionsByProtocol, uniquingKeysWith: &+)
        connectionsByOutcome.merge(other.connectionsByOutcome, uniquingKeysWith: &+)
        upgradesByOutcome.merge(other.upgradesByOutcome, uniquingKeysWith: &+)
        upgradesByProtocol.merge(other.upgradesByProtocol, uniquingKeysWith: &+)
        framesByType.merge(other.framesByType, uniquingKeysWith: &+)
        messagesByType.merge(other.messagesByType, uniquingKeysWith: &+)
        framePayloadBytes.addSaturating(other.framePayloadBytes)
        messagePayloadBytes.addSaturating(other.messagePayloadBytes)
        issuesByCode.merge(other.issuesByCode, uniquingKeysWith: &+)
        tlsConnections.merge(other.tlsConnections, uniquingKeysWith: &+)
        tlsRecordBytes.addSaturating(other.tlsRecordBytes)
        live = live ?? other.live
        keyLog = keyLog ?? other.keyLog
        captureDamage = captureDamage ?? other.captureDamage
    }

    public var frames: UInt64 { framesByType.values.reduce(0, +) }
    public var messages: UInt64 { messagesByType.values.reduce(0, +) }
    public var connections: UInt64 { connectionsByProtocol.values.reduce(0, +) }
    public var issues: UInt64 { issuesByCode.values.reduce(0, +) }
}

/// The key log an analysis decrypted TLS with.
public struct KeyLogUse: Sendable, Equatable {
    public var path: String
    /// `--keylog` or `SSLKEYLOGFILE`.
    public var source: String
    /// Connections (client randoms) it has secrets for.
    public var connections: Int
}

/// Kernel, interface and wstap's own packet counters of a live capture.
public struct LiveStatistics: Sendable, Equatable {
    public var received: UInt64
    public var droppedByKernel: UInt64
    public var droppedByInterface: UInt64
    /// Packets the decoder could not keep up with, dropped from wstap's queue.
    public var droppedByWstap: UInt64

    public init(received: UInt64, droppedByKernel: UInt64, droppedByInterface: UInt64, droppedByWstap: UInt64) {
        self.received = received
        self.droppedByKernel = droppedByKernel
        self.droppedByInterface = droppedByInterface
        self.droppedByWstap = droppedByWstap
    }
}

extension CaptureSummary {
    /// What a reassembler made of the IP fragments it was given: datagrams completed, and those
    /// given up or still incomplete.
    package mutating func countDatagrams(of fragments: IPFragmentReassembler) {
        ipDatagramsReassembled = fragments.reassembled
        ipDatagramsIncomplete = fragments.abandoned &+ UInt64(fragments.pending)
    }
}
