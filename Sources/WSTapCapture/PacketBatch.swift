import WSTapCore

/// Packets copied out of their source's buffer, to be handed to another thread: the live
/// capture thread's batches, and each job's share of a capture read in parallel.
public struct PacketBatch: Sendable {
    private struct Record: Sendable {
        var timestamp: CaptureTimestamp
        var linkType: LinkType
        var start: Int
        var count: Int
        var originalLength: Int
    }

    private var bytes: [UInt8] = []
    private var records: [Record] = []

    public init() {}

    /// A batch with room for about this many packets and bytes, so that filling it copies each
    /// packet once.
    public init(reservingPackets packets: Int, bytes byteCount: Int) {
        records.reserveCapacity(packets)
        bytes.reserveCapacity(byteCount)
    }

    public var isEmpty: Bool { records.isEmpty }
    public var byteCount: Int { bytes.count }
    public var packetCount: Int { records.count }

    public mutating func append(_ packet: CapturedPacket) {
        records.append(Record(timestamp: packet.timestamp, linkType: packet.linkType, start: bytes.count,
                              count: packet.bytes.count, originalLength: packet.originalLength))
        bytes.appendBytes(packet.bytes)
    }

    public func forEachPacket(_ body: (CapturedPacket) -> Void) {
        bytes.withUnsafeBytes { all in
            for record in records {
                body(CapturedPacket(
                    timestamp: record.timestamp, linkType: record.linkType,
                    bytes: UnsafeRawBufferPointer(rebasing: all[record.start..<(record.start + record.count)]),
                    originalLength: record.originalLength))
            }
        }
    }
}
