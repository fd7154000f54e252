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
    public var upgradesByOutcome: [String: UInt64] = [:]
    /// Upgrades by the protocol the 101 selected.
    public var upgradesByProtocol: [String: UInt64] = [:]
    public var framesByType: [String: UInt64] = [:]
    public var messagesByType: [String: UInt64] = [:]
    public var framePayloadBytes: UInt64 = 0
    public var messagePayloadBytes: UInt64 = 0
    public var issuesByCode: [String: UInt64] = [:]
    /// Counters of a live capture (`wstap sniff`).
    public var live: LiveStatistics?
    /// Set when the capture file ended in a damaged or incomplete record.
    public var captureDamage: String?

    public init() {}

    public var frames: UInt64 { framesByType.values.reduce(0, +) }
    public var messages: UInt64 { messagesByType.values.reduce(0, +) }
    public var connections: UInt64 { connectionsByProtocol.values.reduce(0, +) }
    public var issues: UInt64 { issuesByCode.values.reduce(0, +) }
}
